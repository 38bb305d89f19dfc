// server/web/pages.hpp — the approvers' and the auditors' HTML pages: pure functions from what
// the store and the service know to one complete HTML document (or the one stylesheet). No I/O,
// no HTTP.
//
// SECURITY NOTE: everything a page shows comes from someone who may be hostile (a host's
// request body, an approver's comment, the IdP's names, the database). Every piece of text
// goes through html_escape (& < > " ' — text and attribute values alike) after being made
// visible: control characters, invalid UTF-8, bidirectional and zero-width characters are
// shown as \xNN or \u{XXXX}, so an argv cannot read differently from what would run. The
// pages hold no script and no inline style (the Content-Security-Policy allows neither); they
// work without JavaScript. A request body is parsed defensively: a missing or wrong-typed
// member is shown as "(missing)", never a crash.
//
// Threading: stateless; thread-safe. Errors: none thrown for bad content (std::bad_alloc only).
// Must not depend on the web UI's routing, the HTTP layer's implementation or a database.
#pragma once

#include "server/service/service.hpp"
#include "server/store/store.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jitgate::server::web::pages {

// The signed-in person a page is for.
struct Viewer {
    std::string unix_user;
    std::string display_name;
    std::string csrf_token; // a hidden field of every form on the page
    bool auditor = false;   // may read the auditors' pages: the frame links to /audit
};

// What every page's frame shows.
struct Frame {
    std::string site_name;          // Config::Server::name
    const Viewer* viewer = nullptr; // null: nobody signed in (no navigation, no sign-out button)
};

// One row of the pending list: a request and what this viewer may do with it.
struct PendingRow {
    store::Request request;
    service::Decidability decidability;
};

// --- text ---
// & < > " ' as entities: safe in element content and in quoted attribute values.
std::string html_escape(std::string_view text);
// Text that arrives exact (argv, env, user names, comments): every control character, invalid
// UTF-8 byte, bidi or zero-width character escaped (text::escape_for_log; a backslash is
// shown doubled), then html_escape.
std::string exact_text(std::string_view bytes);
// Text the host escaped already (docs/protocol.md §4: display, command, runas, cwd, tty,
// reason, ticket...; a backslash is written "\\" there): the same dangerous characters are
// escaped, in case the host did not, but backslashes are kept as they are (not doubled), then
// html_escape.
std::string host_text(std::string_view text);
// "2026-11-29 08:07:06 UTC" (UTC); "-" for 0.
std::string format_time(std::int64_t unix_s);
// "1 h 5 min", "4 min 10 s", "45 s"; "expired" when <= 0.
std::string format_time_left(std::int64_t seconds);
// "/r/{host}/{id}" with both segments percent-encoded (not HTML-escaped).
std::string request_path(std::string_view host, std::string_view id);

// --- pages (each a complete HTML document) ---
// The pending requests, oldest first. `next`: the path of the next page when more may follow
// (the list was cut at the page's limit, or the page stopped reading); `continued`: this page
// starts after an earlier one.
std::string pending(const Frame& frame, const std::vector<PendingRow>& rows, std::int64_t now,
                    const std::optional<std::string>& next, bool continued);
// One request in full, with the approve form when the viewer may approve it and the deny form
// when they may deny it (each as the service would accept it), and why when one is missing.
// `revocation`: the grant's revocation, shown when set; `may_revoke`: the viewer may revoke
// the grant (service::Service::may_revoke), shown as a form (CSRF) when not revoked yet.
std::string request_detail(const Frame& frame, const store::Request& request, const service::Decidability& decidability,
                           std::int64_t now, const store::Revocation* revocation = nullptr, bool may_revoke = false);
// What an approve or deny did: the service's one-line message and links back.
std::string action_result(const Frame& frame, std::string_view host, std::string_view id, bool succeeded,
                          std::string_view message);
// Final requests, newest decision first. `older_before`, when set, links to the next page
// (/history?before=N).
std::string history(const Frame& frame, const std::vector<store::Request>& requests,
                    std::optional<std::int64_t> older_before);
// The sign-in page: an optional message (why you are here) and the link that starts a sign-in
// coming back to `return_to` (a local path).
std::string sign_in(const Frame& frame, std::string_view message, std::string_view return_to);
// An error page: the status and a one-line message.
std::string error_page(const Frame& frame, int status, std::string_view message);

// --- the auditors' pages (read-only, but for closing a break-glass review) ---

// "/audit/reviews/{host}/{event_id}" with both segments percent-encoded (not HTML-escaped).
std::string review_path(std::string_view host, std::string_view event_id);

// Each host's audit state, by host name. `next`: the path of the next page, when more may follow.
std::string audit_hosts(const Frame& frame, const std::vector<store::AuditHostStatus>& hosts, std::int64_t now,
                        const std::optional<std::string>& next);

// The event search: the form (filled with what was asked) and the events found.
struct EventSearchForm {
    std::string host;
    std::string user;
    std::string type;
    std::string from;
    std::string to;
    bool oldest_first = false;
};
std::string audit_events(const Frame& frame, const EventSearchForm& form,
                         const std::vector<store::StoredAuditEvent>& events, const std::optional<std::string>& next);

// The evidence report's form (GET /audit/report): the period, the hosts and the format, filled
// with what was asked; `message`, when not empty, says what was wrong with it.
struct ReportForm {
    std::string from;
    std::string to;
    std::string hosts = "*";
    std::string format = "html";
};
std::string audit_report_form(const Frame& frame, const ReportForm& form, std::string_view message);

// The break-glass review items: open ones (overdue flagged) and recently closed ones; either
// list may be absent (a page of one list only). `next_open`, `next_closed`: paths of the lists'
// next pages.
std::string audit_reviews(const Frame& frame, const std::optional<std::vector<store::BreakGlassReview>>& open,
                          const std::optional<std::vector<store::BreakGlassReview>>& closed, std::int64_t now,
                          const std::optional<std::string>& next_open, const std::optional<std::string>& next_closed);

// One review item: the break-glass event, what its user did on the host in the window after it,
// and the close form when the viewer may close it (else why not).
struct ReviewDetail {
    store::BreakGlassReview review;
    std::optional<store::StoredAuditEvent> event; // the access.break_glass event (nullopt: not stored)
    std::vector<store::StoredAuditEvent> during;  // the user's events on the host in the window
    std::string window;                           // one line saying which window `during` covers
    bool during_cut = false;                      // more events than shown
    bool may_close = false;
    std::string why_not; // why the viewer may not close it (when open and !may_close)
};
std::string audit_review(const Frame& frame, const ReviewDetail& detail, std::int64_t now);
// What a close did: the message and links back.
std::string review_result(const Frame& frame, std::string_view host, std::string_view event_id, bool succeeded,
                          std::string_view message);

// The one stylesheet (/style.css).
std::string_view stylesheet() noexcept;

} // namespace jitgate::server::web::pages
