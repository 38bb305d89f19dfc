// server/service/protocol.hpp — protocol v1's wire forms at the server (docs/protocol.md): the
// checks of a filed request (§4), the `wait` parameter (§5), the cancel body (§6), the request
// status (§5.1) and the error body (§8). Pure functions: no I/O, no clock, no database.
// Every function here takes hostile input and never throws except std::bad_alloc.
#pragma once

#include "server/store/store.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace jitgate::server::protocol {

// A request body that passed every check of §4, with the members the server acts on.
struct Filed {
    nlohmann::json body;   // the whole parsed body (kept as filed; unknown members too)
    std::string canonical; // body.dump(): equal values give equal text (idempotency, §4)
    std::string id;
    std::string nonce;
    std::string host;
    std::string environment;
    std::vector<std::string> tags;
    std::string requester;       // requester.user
    std::string requester_login; // requester.login_user, or empty
    bool has_login_uid = false;  // requester.login_uid was sent: the session's login user is known to the host
    std::string account;         // account.user
    std::string kind;            // sudo | login
    std::string scope;           // command | session | login
    std::string cmd_sha256;      // scope command only
    std::string rule;
    std::string ticket;
    int approvals_needed = 1;
    std::vector<std::string> approver_groups;
    std::int64_t ttl_s = 0;
    std::int64_t timeout_s = 0;
    // `auto_approve` (optional): the automatic approvals the host's rule allows, e.g. ["on_call"]
    // (§4). Only a wish: the server's policy must allow it too. Absent: none.
    std::vector<std::string> auto_approve;
};

struct FileCheck {
    std::optional<Filed> filed; // set when valid
    std::string error;          // else one line for the 400 answer
};

// §4: parses and checks a POST /v1/requests body. Stricter than "valid JSON": every member
// present with its type, the forms of §3, the three kind/scope pairs, approvals 1-5, ttl and
// timeout positive, text members without NUL, names without control characters.
FileCheck check_filed(std::string_view body);

// §3: "R-" followed by 4 to 32 of [0-9A-Z].
bool is_request_id(std::string_view id) noexcept;

// §4: a host name as a certificate names it (subject CN or DNS SAN): 1 to 253 of
// [A-Za-z0-9._-], neither "." nor holding ".." (a dot segment in the page's URL). A `host` outside this is refused when
// filed (400), so every filed request has a name that can be put in its page's URL, a log line and a grant without
// escaping.
bool is_host_name(std::string_view host) noexcept;

// §5: the `wait` query value. nullopt for a value that is not an integer (400); else clamped
// to 0..60. A missing value is 0 (the caller passes nullopt → 0).
std::optional<int> parse_wait(const std::optional<std::string>& value) noexcept;

// §6: the cancel body; the reason, or nullopt for a body that is not a JSON object with
// `protocol` 1 and a string `reason`. An unknown reason is kept (treated like client_gone).
std::optional<std::string> check_cancel(std::string_view body);

// §5.1: the request status of `request`. `approve_url` is shown while pending. An approved
// request whose grant was revoked (`revoked` non-null, §12) is final without its grant:
// status "cancelled" (no new status within v1, §10: every host denies on it) with the
// optional members `revoked` (true), `revoked_by` and `reason` ("revoked at the service by
// WHO[: WHY]", WHY cut to k_max_revoked_reason bytes).
std::string status_json(const store::Request& request, const std::string& approve_url,
                        const store::Revocation* revoked = nullptr);

// The longest revocation reason sent to hosts (status and feed, §12), cut at a UTF-8 boundary.
inline constexpr std::size_t k_max_revoked_reason = 256;
std::string cut_reason(const std::string& reason);

// Why a revocation's reason (web form or `grants revoke --reason`) is refused, or nullopt: it
// must be UTF-8 of at most `max_bytes`, one line without control characters (C0, DEL, C1):
// it reaches hosts' logs and terminals, and escaping them would blow up the feed (§12).
std::optional<std::string> revoke_reason_problem(const std::string& reason, std::size_t max_bytes);

// §12: the answer to GET /v1/revocations from `rows` (seq order, every seq in (after, last]),
// read with a limit of `page_limit`. Entries are added while the body stays under `max_bytes`
// (always at least one), each reason cut by cut_reason(). The cursor is `last` when every row
// went in and the read was not cut by its limit; else the seq of the last entry sent, so the
// next call goes on from there and no revocation is skipped.
inline constexpr std::size_t k_max_revocations_body = 32 * 1024;
std::string revocations_json(const std::vector<store::Revocation>& rows, std::int64_t last, std::size_t page_limit,
                             std::size_t max_bytes = k_max_revocations_body);

// §8: {"error":{"code":...,"message":...}}.
std::string error_json(std::string_view code, std::string_view message);

// RFC 3339 UTC ("2026-11-24T10:30:00Z") of Unix seconds.
std::string rfc3339(std::int64_t unix_seconds);

} // namespace jitgate::server::protocol
