// server/notify/deliver.hpp — sending one notice to one webhook, and when to try again.
//
// A notice body comes from the outbox (built by notice.hpp at enqueue time). It is POSTed over
// HTTPS with libcurl through lib/https's policy (https only, no redirects followed, the peer
// verified against the webhook's ca_file or libcurl's built-in trust store, timeouts); the
// answer is read up to 64 KiB. A JSON notice is signed:
//   Jitgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//   Jitgate-Delivery: <the body's delivery_id>
// docs/webhooks.md tells a receiver how to verify it and to refuse a t older than 5 minutes.
//
// Threading: deliver() blocks for at most the target's timeouts; thread-safe (no shared state)
// once curl_global_init() ran. The rest is pure.
// Errors: a failed delivery is a Delivery value, never a throw. load_target() throws
// Error(bad_input) for an unreadable or empty secret file, or an unknown format.
// Must not depend on the store or the HTTP server.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/config/config.hpp"

namespace jitgate::server::notify {

enum class Format { json, slack };

// One configured webhook, ready to send to.
struct Target {
    std::string name;
    std::string url; // https://...
    Format format = Format::json;
    std::string secret;  // json: the HMAC key (first line of secret_file). Never logged.
    std::string ca_file; // empty: libcurl's built-in trust store
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds timeout{15000}; // the whole POST
};

// Reads `hook.secret_file` (json format; its first line, surrounding blanks removed) into a
// Target. Throws Error(bad_input) naming the webhook if the file cannot be read, is empty, or
// the format is neither "json" nor "slack".
Target load_target(const config::Webhook& hook);
std::vector<Target> load_targets(const std::vector<config::Webhook>& hooks);

enum class Outcome {
    delivered, // 2xx
    retry,     // 5xx, 408, 429, a timeout, a connection or TLS failure: try again later
    give_up,   // any other status (4xx, a 3xx that is not followed), a body without delivery_id
};
std::string_view to_string(Outcome outcome) noexcept;

struct Delivery {
    Outcome outcome = Outcome::retry;
    long status = 0;   // the HTTP status, 0 if none
    std::string error; // one printable line for the log and the outbox; empty when delivered
    std::optional<std::chrono::seconds> retry_after; // the receiver's Retry-After, if it sent one
};

// POSTs `body` to `target` (Content-Type: application/json). A JSON target's body must hold a
// string "delivery_id"; it is signed with t = `now`.
Delivery deliver(const Target& target, const std::string& body, std::int64_t now);

// "t=<now>,v1=<hex HMAC-SHA256(secret, "<now>.<body>")>".
std::string signature_header(std::string_view secret, std::int64_t now, std::string_view body);
// Lower-case hex HMAC-SHA256 of `data` with `key`.
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// Retry schedule: the n-th failure of a notice (n >= 1) waits 5 s * 2^(n-1), at most 10 min,
// then ±20 % jitter; a receiver's Retry-After replaces the computed wait when it is longer
// (at most 10 min too). A notice is given up once the nominal waits (without jitter) of its
// failures add up to 24 h, about 150 attempts.
inline constexpr std::chrono::seconds k_first_backoff{5};
inline constexpr std::chrono::seconds k_max_backoff{600};
inline constexpr std::chrono::seconds k_give_up_after{24 * 3600};

// The wait after failure number `failures` (>= 1). `jitter` in [-1, 1] scales the ±20 %
// (the notifier draws it at random; tests pass fixed values).
std::chrono::seconds backoff(int failures, double jitter, std::optional<std::chrono::seconds> retry_after = {});
// True when a notice that has failed `failures` times has been retried for 24 h.
bool exhausted(int failures);

} // namespace jitgate::server::notify
