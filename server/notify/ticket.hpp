// server/notify/ticket.hpp — the ticket check: before a request that a policy entry marks
// `ticket_check: true` may be approved, its ticket must be an approved change whose window is
// open now, as the ticket system (ServiceNow's Table API, or anything answering JSON) says.
//
// One check: the ticket is refused before any call unless it is 1-100 characters of
// [A-Za-z0-9._-]; then GET Config::TicketCheck::url with "{ticket}" replaced by the
// (URL-encoded) ticket, with "Authorization: Bearer <token_file>", over HTTPS through lib/https's
// policy (no redirects, the pinned ca_file or libcurl's built-in trust store, the configured
// timeout). A 200 answer of at most 1 MiB is parsed as JSON and three fields are read by a
// small dotted path with numeric indexes ("result.0.approval"). The ticket is ok only if the
// approved field equals approved_value and window start <= now <= window end. Dates are
// "YYYY-MM-DD HH:MM:SS" in UTC (ServiceNow's API format) or RFC 3339 with a "Z".
//
// SECURITY NOTE: fail closed. A network error, a status other than 200, an answer too large,
// not JSON, a missing or ill-typed field, an unparseable date: each is "not ok" with the reason.
// The answer is hostile text: it is shown only through text::shown, cut short.
//
// Threading: check_ticket() blocks for up to the configured timeout; it and the pure helpers
// are thread-safe. TicketChecker runs checks on its own worker thread and calls each result's
// callback on that thread; the caller posts it back to its own loop.
// Errors: results are values; only reading token_file throws (Error(bad_input)).
// Must not depend on the store or the HTTP server.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

#include "server/config/config.hpp"

namespace jitgate::server::notify {

struct TicketAnswer {
    bool ok = false;
    std::string why; // one printable line, for the approver's page and the audit
    // What the store keeps (store.set_ticket_check): {"ok":..., "why":..., "checked_at": unix}.
    std::string to_json(std::int64_t checked_at) const;
};

inline constexpr std::size_t k_max_ticket_length = 100;
inline constexpr std::size_t k_max_ticket_answer = 1024 * 1024;

// True if `ticket` is 1..k_max_ticket_length characters of A-Z a-z 0-9 . _ -
bool ticket_is_acceptable(std::string_view ticket) noexcept;

// `url_template` with every "{ticket}" replaced by url_encode(ticket).
std::string ticket_url(std::string_view url_template, std::string_view ticket);

// The value at `path` in `doc`: dot-separated object keys, and array indexes as decimal
// numbers ("result.0.approval"). nullptr if any step is missing, has the wrong type, or the
// path is empty or malformed. The result points into `doc`.
const nlohmann::json* find_field(const nlohmann::json& doc, std::string_view path);

// "YYYY-MM-DD HH:MM:SS" (UTC), "YYYY-MM-DDTHH:MM:SS" (UTC) or the same with a trailing "Z",
// as Unix seconds; nullopt for anything else (including a date that does not exist).
std::optional<std::int64_t> parse_ticket_time(std::string_view text);

// The decision on a parsed answer (pure): see the header comment.
TicketAnswer decide_ticket(const nlohmann::json& answer, const config::Config::TicketCheck& settings, std::int64_t now);

// One whole check (blocking). `token` may be empty (no Authorization header). Never throws
// except std::bad_alloc; every failure is a not-ok answer.
TicketAnswer check_ticket(const config::Config::TicketCheck& settings, const std::string& token,
                          std::string_view ticket, std::int64_t now);

// The first line of a token file, blanks around it removed. Throws Error(bad_input) if the file
// cannot be read, is empty, or the token holds a control character (it goes into a header).
std::string read_token_file(const std::string& path);

// Checks in the background, one at a time, in the order posted.
class TicketChecker {
public:
    using Done = std::function<void(const TicketAnswer&)>;
    using Clock = std::function<std::int64_t()>; // Unix seconds

    // Reads settings.token_file (if set) and starts the worker thread. Throws Error(bad_input)
    // for an unreadable token file, std::system_error if no thread can be started.
    explicit TicketChecker(config::Config::TicketCheck settings, Clock clock = {}, std::size_t max_queue = 256);
    ~TicketChecker(); // stop()
    TicketChecker(const TicketChecker&) = delete;
    TicketChecker& operator=(const TicketChecker&) = delete;

    // Queues a check of `ticket`; `done` is called once, on the worker thread, with the answer.
    // Returns false (and never calls `done`) when the queue already holds max_queue checks or
    // the checker is stopping. Thread-safe; never blocks on the network.
    bool post(std::string ticket, Done done);
    // Lets the check in progress finish (its callback is called), drops the queued ones
    // without calling them, and joins the worker. Idempotent.
    void stop() noexcept;

private:
    void run() noexcept;

    config::Config::TicketCheck m_settings;
    std::string m_token; // never logged
    Clock m_clock;
    std::size_t m_max_queue;
    std::mutex m_mutex;
    std::condition_variable m_cv;
    std::deque<std::pair<std::string, Done>> m_queue;
    bool m_stopping = false;
    std::thread m_thread;
};

} // namespace jitgate::server::notify
