// server/notify/notice.hpp — the bodies of jitgate-server's outbound notices (webhooks): the
// generic JSON body (signed at delivery, see deliver.hpp) and the Slack incoming-webhook body,
// built from the facts of one request and one event about it. docs/webhooks.md describes both.
//
// Pure functions: no I/O, no clock (the caller passes `now`), no database; the one impurity is
// new_delivery_id(), which reads OpenSSL's random generator. Thread-safe.
// Errors: none for hostile text (it is escaped, cut and made valid UTF-8); std::bad_alloc only,
// and Error(internal) from new_delivery_id() if the random generator fails.
// Must not depend on the store, the HTTP layer or libcurl: the service builds a body with these
// in its decision path and hands it to store.enqueue(); the notifier only delivers it.
//
// SECURITY NOTE: everything in RequestFacts except `link` comes from a host or an approver and
// is hostile. In the JSON body it is only ever a JSON string (invalid UTF-8 replaced). In the
// Slack body it is escaped so that it can never form a mention (<!channel>, <@U123>) or a
// link with a label of its choosing (<http://x|y>): & < > become entities, control characters
// become visible \xNN, and "@" is followed by a zero-width space in case the webhook's app has
// link_names enabled.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/config/config.hpp"

namespace jitgate::server::notify {

// What happened to a request: the webhook events that Config::Webhook::events may list
// (config::k_webhook_events on the lead's branch).
enum class EventKind {
    filed,          // request.filed
    approval_added, // request.approval_added: an approval was recorded, more are needed
    approved,       // request.approved: the last approval needed arrived
    denied,         // request.denied
    expired,        // request.expired
    cancelled,      // request.cancelled
    grant_signed,   // grant.signed: the server signed the request's grant (grant_id set)
};

// "request.filed", "request.approved", ..., "grant.signed" (the `type` of the JSON body and the
// names that Config::Webhook::events lists).
std::string_view event_type(EventKind kind) noexcept;
std::optional<EventKind> event_from_type(std::string_view type) noexcept;

// One request as a notice shows it. The caller fills it from the stored request and the
// configuration. The JSON body always has every field ("" when unknown); the Slack body leaves
// empty ones out.
struct RequestFacts {
    std::string host;              // from the host's certificate
    std::string environment;       // the host's environment ("production"), if it sent one
    std::vector<std::string> tags; // the host's tags
    std::string id;                // the host's request id
    std::string requester;         // the Unix user asking
    std::string account;           // the login account (kind login), if different
    std::string kind;              // "sudo", "login"
    std::string scope;             // "command", "session", "login"
    std::string command;           // the display command (already one line, as text::display_argv gives it)
    std::string runas;             // the run-as user
    std::string reason;            // the requester's reason
    std::string ticket;            // the requester's ticket
    std::string rule;              // the host's rule name
    int approvals_needed = 1;
    std::vector<std::string> approvers; // Unix names of those who approved so far, oldest first
    std::string decided_by;             // denied: the approver; cancelled: "host"; expired: "server";
                                        // approved automatically: "jitgate (auto: on_call)"
    std::string decision_reason;        // denied: the approver's comment; cancelled: the host's reason
    std::string grant_id;               // approved, grant.signed: the grant's id (jti)
    std::int64_t expires_at = 0;        // Unix seconds; 0: unknown
    std::string link;                   // request_link(): where an approver reviews it
};

// RFC 3986 percent-encoding of everything but the unreserved characters A-Z a-z 0-9 - . _ ~
std::string url_encode(std::string_view text);

// public_url + "/r/" + url_encode(host) + "/" + url_encode(id); a trailing "/" of public_url
// is not doubled.
std::string request_link(std::string_view public_url, std::string_view host, std::string_view id);

// Unix seconds as RFC 3339 UTC: "2026-11-29T08:12:08Z".
std::string rfc3339(std::int64_t unix_seconds);

// 32 lower-case hex digits from OpenSSL's RAND_bytes: the `delivery_id` of a JSON notice (the
// same across the retries of one notice, so a receiver can drop duplicates).
// Throws Error(internal) if the random generator fails.
std::string new_delivery_id();

// The generic JSON body (compact JSON text):
//   {"type":"request.filed","delivery_id":"...","occurred_at":"2026-...Z","server":"<name>",
//    "request":{"host":..., "id":..., ..., "link":...}}
// The field list is in docs/webhooks.md.
std::string json_body(EventKind kind, const RequestFacts& facts, std::string_view server_name,
                      std::string_view delivery_id, std::int64_t occurred_at);

// The Slack incoming-webhook body (compact JSON text): {"text": <one-line summary, the
// notification's fallback>, "blocks": [...], "unfurl_links": false, "unfurl_media": false},
// one message per event, with a button and a link to facts.link.
std::string slack_body(EventKind kind, const RequestFacts& facts, std::string_view server_name);

// Slack's escaping of text for mrkdwn: & < > as &amp; &lt; &gt;. Nothing else.
std::string slack_escape(std::string_view text);

// User-controlled text for a Slack message: made printable (text::shown: control characters
// and invalid UTF-8 as \xNN), cut to `max` bytes, Slack-escaped, and "@" followed by a
// zero-width space.
std::string slack_user_text(std::string_view text, std::size_t max);

// One notice to put in the outbox: store.enqueue(target, body, now).
struct Outgoing {
    std::string target; // the webhook's name
    std::string body;
};

// The notices one event gives: one per configured webhook whose `events` lists
// event_type(kind), in the webhook's format ("json": a fresh delivery_id each; "slack").
// A webhook with another format is skipped (config validation refuses it).
std::vector<Outgoing> notices_for(const std::vector<config::Webhook>& webhooks, std::string_view server_name,
                                  EventKind kind, const RequestFacts& facts, std::int64_t now);

// A host's audit chain broke at the server's ingest (server.md §10): "audit.chain_gap",
// "audit.chain_fork" or "audit.chain_edited" (an event came again with other content), or it
// started over at seq 1: "audit.chain_restarted" (a wiped spool or a reinstalled host).
// Everything but `type` comes from the host and is hostile.
struct ChainFacts {
    std::string type;
    std::string host;
    std::int64_t seq = 0;
    std::string event_id;
    std::string problem; // one line, as the store wrote it
};

// The notices a chain problem gives: one per webhook whose `events` lists facts.type.
//   json:  {"type":"audit.chain_gap","delivery_id":"...","occurred_at":"...","server":"<name>",
//           "chain":{"host":...,"seq":N,"event_id":...,"problem":...}}
//   slack: {"text": one line naming the host and the problem, "unfurl_links":false,
//           "unfurl_media":false}
std::vector<Outgoing> chain_notices_for(const std::vector<config::Webhook>& webhooks, std::string_view server_name,
                                        const ChainFacts& facts, std::int64_t now);

// A break-glass review item is still open past its due time (server.md "Break-glass review"):
// "break_glass.review_overdue". host, event_id, user and time come from the host (hostile);
// link is the server's own (public_url + the review's path).
struct BreakGlassFacts {
    std::string host;
    std::string event_id;
    std::string user;        // who broke the glass
    std::string time;        // the event's time, as the host sent it
    std::int64_t due_at = 0; // Unix seconds
    std::string link;        // where a reviewer closes it
};

// The notices an overdue review gives: one per webhook whose `events` lists
// "break_glass.review_overdue".
//   json:  {"type":"break_glass.review_overdue","delivery_id":"...","occurred_at":"...",
//           "server":"<name>","review":{"host":...,"event_id":...,"user":...,"time":...,
//           "due_at":"RFC 3339","link":...}}
//   slack: {"text": one line naming the user, the host, the due time and the link,
//           "unfurl_links":false,"unfurl_media":false}
std::vector<Outgoing> break_glass_notices_for(const std::vector<config::Webhook>& webhooks,
                                              std::string_view server_name, const BreakGlassFacts& facts,
                                              std::int64_t now);

} // namespace jitgate::server::notify
