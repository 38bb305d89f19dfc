// server/web/web_ui.hpp — the approvers' web UI, served by the server's browser listener:
// routing, sign-in sessions, CSRF, and the approve/deny actions (which go through the
// Service, the one place that decides who may do what).
//
// Routes (anything else is 404; a known path with another method is 405):
//   GET  /                          pending requests            (signed in)
//   GET  /r/{host}/{id}             one request, with the forms (signed in)
//   POST /r/{host}/{id}/approve     form: comment, csrf         (signed in)
//   POST /r/{host}/{id}/deny        form: comment, csrf         (signed in)
//   POST /r/{host}/{id}/revoke      form: comment, csrf         (signed in; revokes the grant)
//   GET  /history[?before=N]        decided requests            (signed in)
//   GET  /login?return_to=/path     starts an OpenID Connect sign-in
//   GET  /oidc/callback?code&state  finishes it (or ?error=...)
//   POST /logout                    form: csrf                  (signed in)
//   GET  /style.css, GET /healthz   no session
// The auditors' pages (signed in, and a member of audit.auditor_groups or
// audit.break_glass_reviewer_groups; anyone else gets 403):
//   GET  /audit[?after=HOST]                          each host's chain state and open reviews
//   GET  /audit/events?host&user&type&from&to&order&after   search the hosts' events
//   GET  /audit/reviews[?list=open|closed&at&host&event]     break-glass review items
//   GET  /audit/reviews/{host}/{event_id}             one item: the event, what followed, the form
//   POST /audit/reviews/{host}/{event_id}/close       form: note, csrf (reviewer groups only)
//   GET  /audit/report[?from&to&hosts&format]         the evidence report (auditor groups only):
//        without parameters its form; with them the report (html shown, pdf/csv/json downloaded)
// A signed-in page without a valid session redirects (303) to /login?return_to=<that page>.
//
// SECURITY NOTE: auditors are read-only: being an auditor adds no approver group, so an
// auditor approves nothing unless also an approver. A reviewer never closes the review of
// their own break-glass use (the event's user or login_user): the page offers no form and the
// store refuses it inside the closing transaction (403).
//
// SECURITY NOTE: sessions are a random 32-byte token in the cookie __Host-jitgate_session
// (Secure; HttpOnly; SameSite=Lax — browser.cpp says why Lax); the store keeps only its
// SHA-256, and a sign-in always makes a new token (no session fixation). Every POST needs a
// same-origin Origin (when the browser sends one) and the session's CSRF token (compared in
// constant time); without them it is 403 and nothing changes. `return_to` is kept only when it
// is a local path, so the sign-in is no open redirect. The sign-in's `state` is also held in a
// cookie of the browser that started it, so a callback link made for someone else's account
// fails (login CSRF). Every answer carries the security headers (browser::add_security_headers).
//
// SECURITY NOTE: the two sign-in routes answer anyone, so they are limited before they store
// or ask anything: per source address (SignInLimit: web.sign_in_per_minute and
// web.sign_in_burst; both routes spend from the same bucket) and, for /login, by the number of
// sign-ins in progress in the store (web.max_sign_ins_in_progress, across replicas). Over a
// limit the answer is 429 with Retry-After and a page saying why; nothing is stored, and a
// syslog line says so at most once a minute (with how many were refused since the last one).
//
// Threading: the loop thread only, like the Service and the Store it uses. Errors: respond()
// and handle() never throw; a database failure (Error(io)) is a 503 page, anything else a 500
// page, each logged as one escaped line on stderr.
// Must not depend on the HTTP layer's implementation beyond its structs (respond() is tested
// without a network), nor on the OpenID Connect client (it sees only SignIn).
#pragma once

#include "server/config/config.hpp"
#include "server/http/http.hpp"
#include "server/http/worker.hpp"
#include "server/report/report.hpp"
#include "server/service/service.hpp"
#include "server/store/store.hpp"
#include "server/web/pages.hpp"
#include "server/web/sign_in.hpp"
#include "server/web/sign_in_limit.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace jitgate::server::web {

class WebUi {
public:
    // Keeps references to all four; they must outlive the WebUi.
    WebUi(const config::Config& config, service::Service& service, store::Store& store, SignIn& sign_in);
    WebUi(const WebUi&) = delete;
    WebUi& operator=(const WebUi&) = delete;

    // The browser listener's handler: answers with respond(request), except for the two
    // sign-in routes once offload_sign_in() was called.
    void handle(http::Request&& request, http::Reply&& reply);

    // SECURITY NOTE: the sign-in routes call the IdP (discovery, the code exchange), which may
    // take seconds or hang; on the loop thread that would stall every host's poll and filing.
    // After this call, handle() runs those IdP calls on a thread of its own (one, with a queue
    // of at most k_max_waiting_sign_ins; beyond it the browser gets 503) and finishes each
    // sign-in on the loop through `post` (EventLoop::post). respond() stays synchronous.
    void offload_sign_in(std::function<void(std::function<void()>)> post);
    static constexpr std::size_t k_max_waiting_sign_ins = 64;
    ~WebUi();

    // SECURITY NOTE: an evidence report over a long period reads every event of it and may take
    // minutes; on the loop thread that would stop every host's polls and shipping. After this
    // call, GET /audit/report with parameters is made (report::build and render) on a thread of
    // its own with a Store of its own from `open_store` (a Store is one connection, one thread),
    // one report at a time: while one is being made another gets 503 with Retry-After. The
    // answer goes back to the loop through `post` (EventLoop::post), where "report.viewed" is
    // recorded before the report is sent. Without this call the route answers 503 and never
    // builds a report on the calling thread. `open_store` is called on the report thread.
    void offload_reports(std::function<void(std::function<void()>)> post,
                         std::function<std::unique_ptr<store::Store>()> open_store);
    // GET /audit/report as handle() answers it: `done` gets the answer on the loop thread, at
    // once (the form, a refusal, a bad period, busy) or once the report thread has made it.
    // Loop thread only; never throws.
    void report(const http::Request& request, std::function<void(http::Response)> done);
    // The longest period one report covers.
    static constexpr std::int64_t k_max_report_days = 366;
    // Retry-After of the 503 while another report is being made.
    static constexpr std::int64_t k_report_retry_after_s = 60;

    // The whole decision for one request, without the network: the response handle() sends.
    // Never throws.
    http::Response respond(const http::Request& request);

    // How many requests one page lists.
    static constexpr std::size_t k_page_size = 200;
    // How many host events one search page lists (each with its line).
    static constexpr std::size_t k_events_page_size = 100;
    // The recently closed review items on /audit/reviews.
    static constexpr std::size_t k_closed_reviews_shown = 50;
    // A review item's page shows the user's events on the host from the break-glass event's
    // time to this much later (a break-glass grant's longest life: hosts.max_ttl's default).
    static constexpr std::int64_t k_break_glass_window_s = 8 * 3600;
    // A review note is 1..k_max_note_bytes bytes of UTF-8.
    static constexpr std::size_t k_max_note_bytes = 4000;
    // The most pending requests one view of the pending page reads (visible to the viewer or
    // not) before it stops and links to the next page.
    static constexpr std::size_t k_max_scanned_per_page = 5 * k_page_size;

    // Where the "signin.rate_limited" and "signin.evicted" lines go (syslog by default; tests
    // look at them). Never stored in the database: that would be the growth the limits are
    // there to stop.
    std::function<void(const store::Event&)> log_rate_limited;
    // At most one such line (and one "signin.evicted" line) per this many seconds.
    static constexpr std::int64_t k_rate_limited_log_interval_s = 60;

private:
    struct SignedIn {
        store::Session session;
        pages::Viewer viewer;
        service::Approver approver;
        bool auditor = false;  // in audit.auditor_groups
        bool reviewer = false; // in audit.break_glass_reviewer_groups
    };
    static bool may_view(const SignedIn& who, const store::Request& request);

    http::Response route(const http::Request& request);
    std::optional<SignedIn> signed_in(const http::Request& request, std::int64_t now);
    http::Response pending_page(const http::Request& request, const SignedIn& who, std::int64_t now);
    http::Response request_page(const SignedIn& who, const std::string& host, const std::string& id, std::int64_t now);
    http::Response decide(const http::Request& request, const SignedIn& who, const std::string& host,
                          const std::string& id, const std::string& comment, bool approve);
    // POST /r/{host}/{id}/revoke: revokes the request's grant (service::Service::revoke).
    http::Response revoke(const http::Request& request, const SignedIn& who, const std::string& host,
                          const std::string& id, const std::string& reason);
    http::Response history_page(const http::Request& request, const SignedIn& who, std::int64_t now);
    // The auditors' pages.
    http::Response audit_hosts_page(const http::Request& request, const SignedIn& who, std::int64_t now);
    http::Response audit_events_page(const http::Request& request, const SignedIn& who);
    http::Response audit_reviews_page(const http::Request& request, const SignedIn& who, std::int64_t now);
    http::Response audit_review_page(const SignedIn& who, const std::string& host, const std::string& event_id,
                                     std::int64_t now);
    http::Response close_review(const http::Request& request, const SignedIn& who, const std::string& host,
                                const std::string& event_id, const std::string& note);
    // The evidence report.
    struct ReportJob {
        report::Options options;
        report::Format format = report::Format::html;
        std::string format_name;
        std::string actor;    // the auditor's Unix name
        std::string identity; // and IdP identity
        std::string source_address;
    };
    // The form (no parameters), a 400 form (bad parameters) or the report to make.
    std::variant<http::Response, ReportJob> check_report(const http::Request& request, const SignedIn& who,
                                                         std::int64_t now) const;
    // What the report thread made: the document, or a failure (logged) and the page's status and message.
    struct Made {
        std::string document;
        std::string failure;
        int status = 200;
        std::string message;
    };
    // The report's answer on the loop: records "report.viewed", then the document with its
    // headers; or the error page of a failure.
    http::Response finish_report(const ReportJob& job, Made made);
    std::optional<http::Response> sign_in_limited(const http::Request& request, std::int64_t now);
    // Counts sign-ins evicted at the cap; one "signin.evicted" line (log_rate_limited) a minute at most.
    void note_evicted(std::size_t evicted, std::int64_t now);
    http::Response too_many(const http::Request& request, std::int64_t retry_after_s, const std::string& message,
                            const std::string& why, std::int64_t now);
    http::Response begin_sign_in(const http::Request& request, std::int64_t now);
    http::Response finish_sign_in(const http::Request& request, std::int64_t now);
    // finish_sign_in in its two halves around the IdP call: check_callback takes the login
    // state (or answers); complete_sign_in makes the session from what the IdP said.
    struct Callback {
        std::string code;
        store::LoginState login;
    };
    std::variant<http::Response, Callback> check_callback(const http::Request& request, std::int64_t now);
    http::Response complete_sign_in(const http::Request& request, const store::LoginState& login,
                                    const std::optional<Identity>& identity, const std::string& failure,
                                    std::int64_t now);
    http::Response finish_begin(const http::Request& request, std::int64_t now, const std::string& return_to,
                                std::pair<std::string, store::LoginState> started);
    void handle_sign_in_elsewhere(http::Request&& request, http::Reply&& reply);
    http::Response begin_failed(const pages::Frame& frame_, const std::string& return_to, const std::string& why) const;
    http::Response sign_in_failed(const http::Request& request, int status, const std::string& message,
                                  const Identity* identity, std::int64_t now);
    http::Response sign_out(const http::Request& request);
    http::Response page(int status, std::string html) const;
    http::Response error(int status, const std::string& message, const pages::Viewer* viewer) const;
    pages::Frame frame(const pages::Viewer* viewer) const;

    const config::Config& m_config;
    service::Service& m_service;
    store::Store& m_store;
    SignIn& m_sign_in;
    std::string m_origin;                   // the public URL's origin, what a browser sends as Origin
    std::unique_ptr<http::Worker> m_worker; // set by offload_sign_in()
    SignInLimit m_sign_in_limit;
    std::int64_t m_rate_limited_logged_at = -1; // when the last signin.rate_limited line went out
    std::size_t m_rate_limited_unlogged = 0;    // refusals since then
    std::int64_t m_evicted_logged_at = -1;      // when the last signin.evicted line went out
    std::size_t m_evicted_unlogged = 0;         // sign-ins evicted since then
    // Set while a report is being made (the reply waiting for it); loop thread only.
    std::function<void(http::Response)> m_report_done;
    std::function<std::unique_ptr<store::Store>()> m_open_report_store;
    std::unique_ptr<http::Worker> m_report_worker; // last: stopped first, before what its work uses
};

// --- the pieces of routing, exposed for tests ---

// True for a host name as a certificate names it: 1-253 characters of [A-Za-z0-9._-].
bool is_host_name(std::string_view host) noexcept;
// True for a request id (docs/protocol.md §3): "R-" then 4 to 32 of [0-9A-Z].
bool is_request_id(std::string_view id) noexcept;
// True for an audit event id as the review pages take it in their path: 1-128 of
// [A-Za-z0-9._:-] (jitgated's are UUIDs; another id's review is listed but has no page).
bool is_event_id(std::string_view id) noexcept;

} // namespace jitgate::server::web
