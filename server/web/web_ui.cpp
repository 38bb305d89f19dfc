// server/web/web_ui.cpp — the approvers' web UI: routing, sessions, CSRF, sign-in and actions.
#include "server/web/web_ui.hpp"

#include "server/notify/notice.hpp"
#include "server/notify/ticket.hpp"
#include "server/service/audit_log.hpp"
#include "server/service/protocol.hpp"
#include "server/web/browser.hpp"

#include <jitgate/error.hpp>
#include <jitgate/text.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <variant>
#include <vector>

namespace jitgate::server::web {
namespace {

constexpr std::string_view k_html = "text/html; charset=utf-8";

// The login cookie lives as long as the login state, within these bounds.
constexpr std::int64_t k_login_cookie_min_s = 60;
constexpr std::int64_t k_login_cookie_max_s = 3600;

std::vector<std::string> split_path(std::string_view path) {
    std::vector<std::string> parts;
    if (path.empty() || path.front() != '/') return parts;
    path.remove_prefix(1);
    while (true) {
        const auto slash = path.find('/');
        parts.emplace_back(path.substr(0, slash));
        if (slash == std::string_view::npos) break;
        path.remove_prefix(slash + 1);
    }
    return parts;
}

http::Response redirect(const std::string& location) {
    http::Response response;
    response.status = 303;
    response.headers.emplace_back("Location", location);
    response.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    response.body = "See " + location + "\n";
    return response;
}

http::Response method_not_allowed(std::string_view allow) {
    http::Response response;
    response.status = 405;
    response.headers.emplace_back("Allow", std::string(allow));
    response.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    response.body = "method not allowed\n";
    return response;
}

http::Response plain(int status, std::string_view content_type, std::string body) {
    http::Response response;
    response.status = status;
    response.headers.emplace_back("Content-Type", std::string(content_type));
    response.body = std::move(body);
    return response;
}

// A header value we are about to send must not split the header (a URL from the IdP client).
bool header_safe(std::string_view value) noexcept {
    return !value.empty() && std::all_of(value.begin(), value.end(), [](char c) { return c > 0x20 && c < 0x7F; });
}

std::string login_path(std::string_view return_to) {
    return "/login?return_to=" + browser::url_encode(browser::is_local_path(return_to) ? return_to : "/");
}

// A strictly decimal, non-negative Unix time, or nullopt.
std::optional<std::int64_t> parse_unix_time(std::string_view text) noexcept {
    if (text.empty() || text.size() > 15) return std::nullopt;
    std::int64_t value = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + (c - '0');
    }
    return value;
}

// Search text (a user or type): at most 256 bytes of UTF-8 without control characters.
bool is_search_text(std::string_view text) noexcept {
    return text.size() <= 256 && text::is_valid_utf8(text) &&
           std::none_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
}

// A time bound of the event search: a prefix of "2026-11-24T03:05:47.818Z" (at least the
// year), or the whole seconds with a "Z" ("2026-11-24T03:05:47Z"). Events' times compare as
// text (docs/audit.md: RFC 3339 UTC with milliseconds), so a prefix means its start.
bool is_time_bound(std::string_view text) noexcept {
    constexpr std::string_view k_template = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (text.size() == 20 && text.back() == 'Z') text.remove_suffix(1);
    if (text.size() < 4 || text.size() > k_template.size()) return false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char want = k_template[i];
        if (want == 'd' ? (text[i] < '0' || text[i] > '9') : text[i] != want) return false;
    }
    return true;
}

// The event's time plus `seconds`, as "YYYY-MM-DDTHH:MM:SSZ"; nullopt when the time is not
// RFC 3339 UTC as hosts write it.
std::optional<std::string> time_after(std::string_view event_time, std::int64_t seconds) {
    if (event_time.size() < 19) return std::nullopt;
    const auto start = notify::parse_ticket_time(event_time.substr(0, 19));
    if (!start) return std::nullopt;
    return notify::rfc3339(*start + seconds);
}

int status_of(service::ActionStatus status) {
    switch (status) {
    case service::ActionStatus::done:
    case service::ActionStatus::approved:
        return 200;
    case service::ActionStatus::not_found:
        return 404;
    case service::ActionStatus::not_pending:
    case service::ActionStatus::already_voted:
    case service::ActionStatus::not_approved:
        return 409;
    case service::ActionStatus::already_revoked:
        return 200;
    case service::ActionStatus::forbidden:
    case service::ActionStatus::own_request:
        return 403;
    case service::ActionStatus::invalid:
        return 400;
    }
    return 500;
}

// Said when the service gave no message of its own.
std::string default_message(service::ActionStatus status, bool approve) {
    switch (status) {
    case service::ActionStatus::done:
        return approve ? "Your approval was recorded." : "The request was denied.";
    case service::ActionStatus::approved:
        return "Your approval completed the request: it is approved.";
    case service::ActionStatus::not_found:
        return "There is no such request.";
    case service::ActionStatus::not_pending:
        return "This request is no longer pending.";
    case service::ActionStatus::forbidden:
        return "You may not decide this request.";
    case service::ActionStatus::own_request:
        return "You may not decide your own request.";
    case service::ActionStatus::already_voted:
        return "You have already approved this request.";
    case service::ActionStatus::invalid:
        return approve ? "The approval was refused." : "A denial needs a comment.";
    case service::ActionStatus::not_approved:
        return "This request has no grant to revoke.";
    case service::ActionStatus::already_revoked:
        return "This grant was revoked already.";
    }
    return "Unknown result.";
}

std::string identity_of(const Identity& identity) {
    return identity.issuer + " " + identity.subject;
}

void log_line(std::string_view what) {
    std::fprintf(stderr, "jitgate-server: web: %s\n", text::shown(what, 1000).c_str());
}

} // namespace

bool is_host_name(std::string_view host) noexcept {
    return protocol::is_host_name(host);
}

bool is_event_id(std::string_view id) noexcept {
    if (id.empty() || id.size() > 128) return false;
    return std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '.' || c == '_' ||
               c == ':' || c == '-';
    });
}

bool is_request_id(std::string_view id) noexcept {
    if (id.size() < 6 || id.size() > 34 || id.substr(0, 2) != "R-") return false;
    return std::all_of(id.begin() + 2, id.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'); });
}

WebUi::WebUi(const config::Config& config, service::Service& service, store::Store& store, SignIn& sign_in)
    : m_config(config), m_service(service), m_store(store), m_sign_in(sign_in),
      m_origin(browser::origin_of(config.server.public_url)),
      m_sign_in_limit(config.web.sign_in_per_minute, config.web.sign_in_burst) {
    log_rate_limited = [](const store::Event& event) { service::log_event(event); };
}

WebUi::~WebUi() = default;

void WebUi::offload_sign_in(std::function<void(std::function<void()>)> post) {
    m_worker = std::make_unique<http::Worker>("sign-in", k_max_waiting_sign_ins, std::move(post));
}

void WebUi::handle(http::Request&& request, http::Reply&& reply) {
    if (m_worker && request.method == "GET" && (request.path == "/login" || request.path == "/oidc/callback")) {
        handle_sign_in_elsewhere(std::move(request), std::move(reply));
        return;
    }
    if (request.path == "/audit/report") {
        auto shared_reply = std::make_shared<http::Reply>(std::move(reply));
        report(request, [shared_reply](http::Response response) { shared_reply->send(std::move(response)); });
        return;
    }
    reply.send(respond(request));
}

// The sign-in routes with the IdP call on the worker: the loop does the store's part before
// and after; the parked Reply carries the answer.
void WebUi::handle_sign_in_elsewhere(http::Request&& request, http::Reply&& reply) {
    auto shared_reply = std::make_shared<http::Reply>(std::move(reply));
    auto shared_request = std::make_shared<http::Request>(std::move(request));
    const auto answer = [shared_reply](http::Response response) {
        browser::add_security_headers(response);
        shared_reply->send(std::move(response));
    };
    // Runs `step` on the loop like respond() does: errors become pages, never exceptions.
    const auto guarded = [this, shared_request](const std::function<http::Response()>& step) {
        try {
            return step();
        } catch (const Error& e) {
            log_line(shared_request->method + " " + shared_request->path + ": " + e.what());
            return e.code() == ErrorCode::io
                       ? error(503, "The database is not available; nothing was changed. Try again shortly.", nullptr)
                       : error(500, "Something went wrong on the server; nothing was changed.", nullptr);
        } catch (const std::exception& e) {
            log_line(shared_request->method + " " + shared_request->path + ": " + e.what());
            return error(500, "Something went wrong on the server; nothing was changed.", nullptr);
        }
    };
    const auto busy = [this, answer, shared_request]() {
        // Refused for the worker's queue, not for the address: its token is given back.
        m_sign_in_limit.give_back(shared_request->peer_address);
        answer(error(503, "Too many sign-ins are waiting for the identity provider; try again shortly.", nullptr));
    };

    // The limits first, on the loop: a refused sign-in stores nothing and reaches no IdP.
    {
        bool go_on = false;
        http::Response refused = guarded([&]() {
            std::optional<http::Response> limited = sign_in_limited(*shared_request, m_service.now());
            go_on = !limited;
            return limited ? std::move(*limited) : http::Response{};
        });
        if (!go_on) {
            answer(std::move(refused));
            return;
        }
    }

    if (shared_request->path == "/login") {
        std::string return_to = browser::field(shared_request->query, "return_to").value_or("/");
        if (!browser::is_local_path(return_to)) return_to = "/";
        // The IdP call on the worker fills `begun`; the Reply (in `answer`) is held only by the
        // loop's part, so it is answered and ends on the loop thread (Worker::push).
        struct Begun {
            std::optional<std::pair<std::string, store::LoginState>> started;
            std::string failure = "the sign-in could not be started (internal error)";
        };
        auto begun = std::make_shared<Begun>();
        const bool queued = m_worker->push(
            [this, begun, return_to]() {
                try {
                    begun->started = m_sign_in.begin(return_to);
                } catch (const std::exception& e) {
                    begun->failure = e.what();
                }
            },
            [this, shared_request, return_to, answer, guarded, begun](bool) {
                answer(guarded([&]() {
                    if (!begun->started) return begin_failed(frame(nullptr), return_to, begun->failure);
                    return finish_begin(*shared_request, m_service.now(), return_to, std::move(*begun->started));
                }));
            });
        if (!queued) busy();
        return;
    }

    // /oidc/callback: the state and login cookie are checked, and the login state used up, on the loop.
    std::optional<Callback> callback;
    {
        http::Response early;
        bool done = false;
        early = guarded([&]() {
            std::variant<http::Response, Callback> checked = check_callback(*shared_request, m_service.now());
            if (auto* r = std::get_if<http::Response>(&checked)) {
                done = true;
                return std::move(*r);
            }
            callback = std::get<Callback>(std::move(checked));
            return http::Response{};
        });
        if (done || !callback) {
            answer(std::move(early));
            return;
        }
    }
    // As for /login: the worker fills `completed`, the loop's part alone holds the Reply.
    struct Completed {
        std::optional<Identity> identity;
        std::string failure = "the sign-in could not be completed (internal error)";
    };
    auto completed = std::make_shared<Completed>();
    const bool queued = m_worker->push(
        [this, completed, code = callback->code, login = callback->login]() {
            try {
                completed->identity = m_sign_in.complete(code, login);
            } catch (const std::exception& e) {
                completed->failure = e.what();
            }
        },
        [this, shared_request, login = callback->login, answer, guarded, completed](bool) {
            answer(guarded([&]() {
                return complete_sign_in(*shared_request, login, completed->identity,
                                        completed->identity ? std::string() : completed->failure, m_service.now());
            }));
        });
    if (!queued) busy();
}

// The page for a sign-in that could not start (the IdP or its discovery document is
// unreachable or wrong): says so, not "database".
http::Response WebUi::begin_failed(const pages::Frame& frame_, const std::string& return_to,
                                   const std::string& why) const {
    log_line(std::string("sign-in could not start: ") + why);
    return page(502, pages::sign_in(frame_, std::string("The sign-in could not start: ") + why, return_to));
}

http::Response WebUi::respond(const http::Request& request) {
    http::Response response;
    try {
        response = route(request);
    } catch (const Error& e) {
        log_line(std::string(request.method) + " " + request.path + ": " + e.what());
        response = e.code() == ErrorCode::io
                       ? error(503, "The database is not available; nothing was changed. Try again shortly.", nullptr)
                       : error(500, "Something went wrong on the server; nothing was changed.", nullptr);
    } catch (const std::exception& e) {
        log_line(std::string(request.method) + " " + request.path + ": " + e.what());
        response = error(500, "Something went wrong on the server; nothing was changed.", nullptr);
    }
    browser::add_security_headers(response);
    return response;
}

http::Response WebUi::route(const http::Request& request) {
    const std::string& method = request.method;
    const std::string& path = request.path;

    // Routes without a session.
    if (path == "/healthz")
        return method == "GET" ? plain(200, "text/plain; charset=utf-8", "ok") : method_not_allowed("GET");
    if (path == "/style.css")
        return method == "GET" ? plain(200, "text/css; charset=utf-8", std::string(pages::stylesheet()))
                               : method_not_allowed("GET");

    const std::int64_t now = m_service.now();
    if (path == "/login" || path == "/oidc/callback") {
        if (method != "GET") return method_not_allowed("GET");
        if (std::optional<http::Response> refused = sign_in_limited(request, now)) return std::move(*refused);
        return path == "/login" ? begin_sign_in(request, now) : finish_sign_in(request, now);
    }

    // Everything else needs a session; first find which route it is (an unknown path is 404
    // whoever asks, and no redirect is made to a path we do not serve).
    enum class Route {
        pending,
        history,
        logout,
        view,
        approve,
        deny,
        revoke,
        audit_hosts,
        audit_events,
        audit_reviews,
        audit_review,
        audit_close,
        audit_report
    } which{};
    std::string host;
    std::string id;
    const std::vector<std::string> parts = split_path(path);
    if (path == "/") {
        which = Route::pending;
    } else if (path == "/history") {
        which = Route::history;
    } else if (path == "/logout") {
        which = Route::logout;
    } else if (path == "/audit") {
        which = Route::audit_hosts;
    } else if (path == "/audit/events") {
        which = Route::audit_events;
    } else if (path == "/audit/reviews") {
        which = Route::audit_reviews;
    } else if (path == "/audit/report") {
        which = Route::audit_report;
    } else if ((parts.size() == 4 || parts.size() == 5) && parts[0] == "audit" && parts[1] == "reviews" &&
               is_host_name(parts[2]) && is_event_id(parts[3])) {
        host = parts[2];
        id = parts[3];
        if (parts.size() == 4)
            which = Route::audit_review;
        else if (parts[4] == "close")
            which = Route::audit_close;
        else
            return error(404, "There is no such page.", nullptr);
    } else if ((parts.size() == 3 || parts.size() == 4) && parts[0] == "r" && is_host_name(parts[1]) &&
               is_request_id(parts[2])) {
        host = parts[1];
        id = parts[2];
        if (parts.size() == 3)
            which = Route::view;
        else if (parts[3] == "approve")
            which = Route::approve;
        else if (parts[3] == "deny")
            which = Route::deny;
        else if (parts[3] == "revoke")
            which = Route::revoke;
        else
            return error(404, "There is no such page.", nullptr);
    } else {
        return error(404, "There is no such page.", nullptr);
    }

    const bool is_post = which == Route::logout || which == Route::approve || which == Route::deny ||
                         which == Route::revoke || which == Route::audit_close;
    const bool is_audit = which == Route::audit_hosts || which == Route::audit_events ||
                          which == Route::audit_reviews || which == Route::audit_review ||
                          which == Route::audit_close || which == Route::audit_report;
    if (method != (is_post ? "POST" : "GET")) return method_not_allowed(is_post ? "POST" : "GET");

    const std::optional<SignedIn> who = signed_in(request, now);
    if (!is_post) {
        if (!who) return redirect(login_path(path));
        // SECURITY NOTE: the hosts' events hold commands, arguments and reasons of the whole
        // fleet: only auditors and break-glass reviewers read them.
        if (is_audit && !who->auditor && !who->reviewer)
            return error(403, "The audit pages are for auditors (audit.auditor_groups) only.", &who->viewer);
        if (which == Route::audit_report) {
            // SECURITY NOTE: the report is the auditors' evidence; break-glass reviewers read the
            // pages they need for their reviews, not the report.
            if (!who->auditor)
                return error(403, "The evidence report is for auditors (audit.auditor_groups) only.", &who->viewer);
            std::variant<http::Response, ReportJob> checked = check_report(request, *who, now);
            if (auto* answer = std::get_if<http::Response>(&checked)) return std::move(*answer);
            // Never made here: respond() runs on the loop (see offload_reports()).
            return error(503, "The evidence report cannot be made here; nothing was made.", &who->viewer);
        }
        if (which == Route::audit_hosts) return audit_hosts_page(request, *who, now);
        if (which == Route::audit_events) return audit_events_page(request, *who);
        if (which == Route::audit_reviews) return audit_reviews_page(request, *who, now);
        if (which == Route::audit_review) return audit_review_page(*who, host, id, now);
        if (which == Route::pending) return pending_page(request, *who, now);
        if (which == Route::history) return history_page(request, *who, now);
        return request_page(*who, host, id, now);
    }

    // A POST changes something: the Origin check, a session and its CSRF token, or 403.
    if (!browser::same_origin_request(request.headers, m_origin))
        return error(403, "This form was not sent from this site; nothing was changed.", nullptr);
    if (!who) {
        if (which == Route::logout) return sign_out(request);
        return page(403, pages::sign_in(frame(nullptr),
                                        "Your session has ended; nothing was changed. Sign in and try again.",
                                        host.empty()                  ? std::string("/")
                                        : which == Route::audit_close ? pages::review_path(host, id)
                                                                      : pages::request_path(host, id)));
    }
    if (!browser::is_form_content_type(request.headers))
        return error(415, "Expected a form (application/x-www-form-urlencoded); nothing was changed.", &who->viewer);
    const std::optional<http::Fields> form = browser::parse_form(request.body);
    if (!form) return error(400, "The form could not be read; nothing was changed.", &who->viewer);
    const std::optional<std::string> csrf = browser::field(*form, "csrf");
    if (!csrf || !browser::same_secret(*csrf, who->session.csrf_token))
        return error(403,
                     "This form is out of date or was not sent from this site; nothing was changed. Reload the "
                     "page and try again.",
                     &who->viewer);

    if (which == Route::logout) return sign_out(request);
    if (which == Route::audit_close)
        return close_review(request, *who, host, id, browser::field(*form, "note").value_or(""));
    if (which == Route::revoke) return revoke(request, *who, host, id, browser::field(*form, "comment").value_or(""));
    return decide(request, *who, host, id, browser::field(*form, "comment").value_or(""), which == Route::approve);
}

// SECURITY NOTE: a request the viewer may not see answers exactly as an unknown one, and only
// those who may revoke (service::Service::may_revoke) get past the service's own check.
http::Response WebUi::revoke(const http::Request& request, const SignedIn& who, const std::string& host,
                             const std::string& id, const std::string& reason) {
    const std::optional<store::Request> found = m_store.find(host, id);
    if (!found || !may_view(who, *found))
        return page(404, pages::action_result(frame(&who.viewer), host, id, false, "There is no such request."));
    const service::ActionResult result = m_service.revoke(who.approver, host, id, reason, request.peer_address, "web");
    const bool succeeded =
        result.status == service::ActionStatus::done || result.status == service::ActionStatus::already_revoked;
    const std::string message = result.message.empty() ? default_message(result.status, false) : result.message;
    return page(status_of(result.status), pages::action_result(frame(&who.viewer), host, id, succeeded, message));
}

// SECURITY NOTE: a request shows the command, its arguments and environment, the reason and
// the ticket, which may hold secrets; the IdP is usually the whole company. Only the people
// who may decide it (one of their approver groups is among the request's) and its requester
// see it; to everyone else it does not exist.
bool WebUi::may_view(const SignedIn& who, const store::Request& request) {
    const std::string& me = who.approver.unix_user;
    if (!me.empty() && (me == request.requester || me == request.requester_login)) return true;
    return std::any_of(who.approver.groups.begin(), who.approver.groups.end(), [&](const std::string& g) {
        return std::find(request.approver_groups.begin(), request.approver_groups.end(), g) !=
               request.approver_groups.end();
    });
}

std::optional<WebUi::SignedIn> WebUi::signed_in(const http::Request& request, std::int64_t now) {
    const std::optional<std::string> token = browser::cookie(request.headers, browser::k_session_cookie);
    if (!token || !browser::is_token(*token)) return std::nullopt;
    std::optional<store::Session> session = m_store.find_session(browser::sha256_hex(*token), now);
    // The store answers only live sessions; the checks below keep a bad row from counting.
    if (!session || session->expires_at <= now || session->unix_user.empty() || session->csrf_token.empty())
        return std::nullopt;
    SignedIn who;
    const auto member_of = [&](const std::vector<std::string>& groups) {
        return std::any_of(session->groups.begin(), session->groups.end(), [&](const std::string& g) {
            return std::find(groups.begin(), groups.end(), g) != groups.end();
        });
    };
    who.auditor = member_of(m_config.audit.auditor_groups);
    who.reviewer = member_of(m_config.audit.break_glass_reviewer_groups);
    who.viewer = {session->unix_user, session->display_name, session->csrf_token, who.auditor || who.reviewer};
    who.approver = {session->identity, session->unix_user, session->display_name, session->groups};
    who.session = std::move(*session);
    return who;
}

// SECURITY NOTE: the pending requests of the whole service are read in order (created_at, host,
// id) and those the viewer may not see are skipped, batch after batch, until the page holds
// k_page_size rows or k_max_scanned_per_page rows were read: requests of other groups, however
// many, cannot push the viewer's own off the page, and one page view reads at most
// k_max_scanned_per_page rows (5 batches; the first of a later page also skips the rows of its
// starting second already shown). When more may follow, the page links to the next one, which
// starts after the last row read. The link names that place by time and a count only
// (`after`, `skip`: the rows of that second already read), never the host or id of a request
// the viewer may not see. A request decided between two page views moves that count by one:
// the next page may then repeat or miss one request of that second (the first page is exact).
http::Response WebUi::pending_page(const http::Request& request, const SignedIn& who, std::int64_t now) {
    const auto after = browser::field(request.query, "after");
    const auto skip_text = browser::field(request.query, "skip");
    std::int64_t from = 0;
    std::size_t skip = 0;
    if (after || skip_text) {
        const auto at = after ? parse_unix_time(*after) : std::nullopt;
        const auto skipped = skip_text ? parse_unix_time(*skip_text) : std::nullopt;
        if (!at || !skipped || *skipped > 1'000'000'000)
            return error(400, "`after` must be a Unix time in seconds and `skip` a count.", &who.viewer);
        from = *at;
        skip = static_cast<std::size_t>(*skipped);
    }
    std::vector<pages::PendingRow> rows;
    std::optional<store::Store::PendingKey> last; // the last row read
    std::int64_t last_second = from;              // the place the next page starts from...
    std::size_t read_in_last_second = skip;       // ...and how many of that second were read
    std::size_t scanned = 0;
    bool exhausted = false;
    bool full = false;
    while (!full && !exhausted && scanned < k_max_scanned_per_page) {
        std::vector<store::Request> batch = last                  ? m_store.pending_after(*last, k_page_size)
                                            : (after.has_value()) ? m_store.pending_from(from, skip, k_page_size)
                                                                  : m_store.pending(k_page_size);
        exhausted = batch.size() < k_page_size;
        for (std::size_t i = 0; i < batch.size(); ++i) {
            store::Request& r = batch[i];
            ++scanned;
            if (r.created_at == last_second) {
                ++read_in_last_second;
            } else {
                last_second = r.created_at;
                read_in_last_second = 1;
            }
            last = store::Store::PendingKey{r.created_at, r.host, r.id};
            if (may_view(who, r)) {
                service::Decidability decidability = m_service.decidability(who.approver, r);
                rows.push_back({std::move(r), std::move(decidability)});
            }
            if (rows.size() == k_page_size) {
                full = true;
                if (i + 1 < batch.size()) exhausted = false; // rows left in this batch
                break;
            }
        }
    }
    std::optional<std::string> next;
    if (!exhausted && last)
        next = "/?after=" + std::to_string(last_second) + "&skip=" + std::to_string(read_in_last_second);
    return page(200, pages::pending(frame(&who.viewer), rows, now, next, after.has_value()));
}

http::Response WebUi::request_page(const SignedIn& who, const std::string& host, const std::string& id,
                                   std::int64_t now) {
    const std::optional<store::Request> request = m_store.find(host, id);
    // A request someone may not see answers exactly as an unknown one.
    if (!request || !may_view(who, *request)) return error(404, "There is no such request.", &who.viewer);
    const service::Decidability decidability = m_service.decidability(who.approver, *request);
    std::optional<store::Revocation> revocation;
    if (request->status == store::Status::approved) revocation = m_store.find_revocation(host, id);
    return page(200, pages::request_detail(frame(&who.viewer), *request, decidability, now,
                                           revocation ? &*revocation : nullptr,
                                           m_service.may_revoke(who.approver, *request)));
}

http::Response WebUi::decide(const http::Request& request, const SignedIn& who, const std::string& host,
                             const std::string& id, const std::string& comment, bool approve) {
    const service::ActionResult result =
        approve ? m_service.approve(who.approver, host, id, comment, request.peer_address, "web")
                : m_service.deny(who.approver, host, id, comment, request.peer_address, "web");
    const bool succeeded =
        result.status == service::ActionStatus::done || result.status == service::ActionStatus::approved;
    const std::string message = result.message.empty() ? default_message(result.status, approve) : result.message;
    return page(status_of(result.status), pages::action_result(frame(&who.viewer), host, id, succeeded, message));
}

http::Response WebUi::history_page(const http::Request& request, const SignedIn& who, std::int64_t now) {
    std::int64_t before = now + 1;
    if (const auto given = browser::field(request.query, "before")) {
        const auto parsed = parse_unix_time(*given);
        if (!parsed) return error(400, "`before` must be a Unix time in seconds.", &who.viewer);
        before = *parsed;
    }
    std::vector<store::Request> requests = m_store.history(before, k_page_size);
    std::optional<std::int64_t> older;
    if (requests.size() == k_page_size) older = requests.back().decided_at;
    requests.erase(
        std::remove_if(requests.begin(), requests.end(), [&](const store::Request& r) { return !may_view(who, r); }),
        requests.end());
    // A full page may have more behind it. Requests decided in the same second as the last one
    // shown are on the next page only if the store counts `before` as exclusive; the page says
    // so by showing the time.
    return page(200, pages::history(frame(&who.viewer), requests, older));
}

// ---- the auditors' pages ------------------------------------------------------------------

http::Response WebUi::audit_hosts_page(const http::Request& request, const SignedIn& who, std::int64_t now) {
    const std::string after = browser::field(request.query, "after").value_or("");
    if (!after.empty() && !is_host_name(after)) return error(400, "`after` must be a host name.", &who.viewer);
    const std::vector<store::AuditHostStatus> hosts = m_store.audit_hosts(after, k_page_size);
    std::optional<std::string> next;
    if (hosts.size() == k_page_size) next = "/audit?after=" + browser::url_encode(hosts.back().chain.host);
    return page(200, pages::audit_hosts(frame(&who.viewer), hosts, now, next));
}

http::Response WebUi::audit_events_page(const http::Request& request, const SignedIn& who) {
    pages::EventSearchForm form;
    form.host = browser::field(request.query, "host").value_or("");
    form.user = browser::field(request.query, "user").value_or("");
    form.type = browser::field(request.query, "type").value_or("");
    form.from = browser::field(request.query, "from").value_or("");
    form.to = browser::field(request.query, "to").value_or("");
    const std::string order = browser::field(request.query, "order").value_or("newest");
    if (!form.host.empty() && !is_host_name(form.host))
        return error(400, "The host must be a host name (letters, digits, dots, dashes).", &who.viewer);
    if (!is_search_text(form.user) || !is_search_text(form.type))
        return error(400, "The user and the type are at most 256 characters of text.", &who.viewer);
    if ((!form.from.empty() && !is_time_bound(form.from)) || (!form.to.empty() && !is_time_bound(form.to)))
        return error(400, "From and to are UTC times like 2026-11-24 or 2026-11-24T03:05:00Z.", &who.viewer);
    if (order != "newest" && order != "oldest") return error(400, "The order is newest or oldest.", &who.viewer);
    form.oldest_first = order == "oldest";
    store::AuditSearch search{form.host, form.user,         form.type,    form.from,
                              form.to,   form.oldest_first, std::nullopt, k_events_page_size};
    if (const auto after = browser::field(request.query, "after")) {
        const auto row = parse_unix_time(*after); // a non-negative decimal, as row ids are
        if (!row) return error(400, "`after` must be a row number.", &who.viewer);
        search.after = *row;
    }
    const std::vector<store::StoredAuditEvent> events = m_store.search_audit_events(search);
    std::optional<std::string> next;
    if (events.size() == k_events_page_size) {
        std::string link = "/audit/events?order=" + order;
        for (const auto& [name, value] : {std::pair<const char*, const std::string&>{"host", form.host},
                                          {"user", form.user},
                                          {"type", form.type},
                                          {"from", form.from},
                                          {"to", form.to}})
            if (!value.empty()) link += std::string("&") + name + "=" + browser::url_encode(value);
        next = link + "&after=" + std::to_string(events.back().row);
    }
    return page(200, pages::audit_events(frame(&who.viewer), form, events, next));
}

http::Response WebUi::audit_reviews_page(const http::Request& request, const SignedIn& who, std::int64_t now) {
    const auto list = browser::field(request.query, "list");
    const auto next_link = [](const char* which, std::int64_t at, const store::BreakGlassReview& last) {
        return std::string("/audit/reviews?list=") + which + "&at=" + std::to_string(at) +
               "&host=" + browser::url_encode(last.host) + "&event=" + browser::url_encode(last.event_id);
    };
    if (!list) {
        auto open = m_store.break_glass_reviews(store::ReviewList::open, std::nullopt, k_page_size);
        auto closed = m_store.break_glass_reviews(store::ReviewList::closed, std::nullopt, k_closed_reviews_shown);
        std::optional<std::string> next_open;
        std::optional<std::string> next_closed;
        if (open.size() == k_page_size) next_open = next_link("open", open.back().due_at, open.back());
        if (closed.size() == k_closed_reviews_shown)
            next_closed = next_link("closed", closed.back().closed_at, closed.back());
        return page(200, pages::audit_reviews(frame(&who.viewer), open, closed, now, next_open, next_closed));
    }
    if (*list != "open" && *list != "closed") return error(400, "`list` is open or closed.", &who.viewer);
    const auto at = parse_unix_time(browser::field(request.query, "at").value_or(""));
    const std::string host = browser::field(request.query, "host").value_or("");
    const std::string event = browser::field(request.query, "event").value_or("");
    if (!at || !is_host_name(host) || !is_event_id(event))
        return error(400, "A page of reviews starts after an item: `at`, `host` and `event`.", &who.viewer);
    const bool open = *list == "open";
    const auto rows = m_store.break_glass_reviews(open ? store::ReviewList::open : store::ReviewList::closed,
                                                  store::ReviewKey{*at, host, event}, k_page_size);
    std::optional<std::string> next;
    if (rows.size() == k_page_size)
        next = next_link(list->c_str(), open ? rows.back().due_at : rows.back().closed_at, rows.back());
    return page(200, open ? pages::audit_reviews(frame(&who.viewer), rows, std::nullopt, now, next, std::nullopt)
                          : pages::audit_reviews(frame(&who.viewer), std::nullopt, rows, now, std::nullopt, next));
}

http::Response WebUi::audit_review_page(const SignedIn& who, const std::string& host, const std::string& event_id,
                                        std::int64_t now) {
    std::optional<store::BreakGlassReview> review = m_store.find_break_glass_review(host, event_id);
    if (!review) return error(404, "There is no such break-glass review.", &who.viewer);
    pages::ReviewDetail detail;
    detail.review = std::move(*review);
    const store::BreakGlassReview& r = detail.review;
    detail.event = m_store.find_audit_event(host, event_id);
    // What was run during it: every event of the same user on the same host from the
    // break-glass event's time to k_break_glass_window_s later (commands finished, sessions
    // opened and closed, further break-glass uses), oldest first.
    if (const auto until = time_after(r.time, k_break_glass_window_s); until && !r.user_name.empty()) {
        store::AuditSearch during{host, r.user_name, "", r.time, *until, true, std::nullopt, k_events_page_size};
        detail.during = m_store.search_audit_events(during);
        detail.during_cut = detail.during.size() == k_events_page_size;
        detail.window = "Every event of " + text::shown(r.user_name, 256) + " on " + host + " from " + r.time + " to " +
                        *until + " (" + std::to_string(k_break_glass_window_s / 3600) + " hours).";
    } else {
        detail.window = "The event's time or user cannot be read; search the host's events instead.";
    }
    const std::string& me = who.viewer.unix_user;
    if (!who.reviewer)
        detail.why_not = "closing reviews is for the break-glass reviewers (audit.break_glass_reviewer_groups)";
    else if (store::own_break_glass_use(me, r.user_name, detail.event ? detail.event->event.line : std::string()))
        detail.why_not = "this is your own break-glass use; someone else must review it";
    else
        detail.may_close = true;
    return page(200, pages::audit_review(frame(&who.viewer), detail, now));
}

http::Response WebUi::close_review(const http::Request& request, const SignedIn& who, const std::string& host,
                                   const std::string& event_id, const std::string& note) {
    const auto refused = [&](int status, const std::string& message) {
        return page(status, pages::review_result(frame(&who.viewer), host, event_id, false, message));
    };
    if (!who.reviewer)
        return refused(403, "Only the break-glass reviewers (audit.break_glass_reviewer_groups) close reviews; "
                            "nothing was changed.");
    const bool blank =
        std::all_of(note.begin(), note.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
    if (blank || note.size() > k_max_note_bytes || !text::is_valid_utf8(note) || note.find('\0') != std::string::npos)
        return refused(400, "A review needs a note of 1 to " + std::to_string(k_max_note_bytes) +
                                " characters saying what you checked; nothing was changed.");
    const std::optional<store::BreakGlassReview> review = m_store.find_break_glass_review(host, event_id);
    if (!review) return refused(404, "There is no such break-glass review.");
    const store::Event event =
        m_service.review_closed_event(*review, who.viewer.unix_user, who.session.identity, request.peer_address, note);
    // SECURITY NOTE: the store refuses the reviewer's own use (the event's user or login_user)
    // inside the transaction that would close it; the page's missing form is only a courtesy.
    const store::CloseResult result = m_store.close_break_glass_review(host, event_id, who.viewer.unix_user,
                                                                       who.session.identity, note, event.at, event);
    switch (result.outcome) {
    case store::CloseOutcome::closed:
        service::log_event(event);
        return page(200, pages::review_result(frame(&who.viewer), host, event_id, true, "The review is closed."));
    case store::CloseOutcome::own_use:
        return refused(403, "You may not review your own break-glass use; someone else must. Nothing was changed.");
    case store::CloseOutcome::already_closed:
        return refused(409, "This review was closed already (by " + result.review.reviewer + "); nothing was changed.");
    case store::CloseOutcome::not_found:
        break;
    }
    return refused(404, "There is no such break-glass review.");
}

std::optional<http::Response> WebUi::sign_in_limited(const http::Request& request, std::int64_t now) {
    if (const std::int64_t wait = m_sign_in_limit.take(request.peer_address, now); wait > 0)
        return too_many(request, wait,
                        "Too many sign-in attempts came from your network address. Wait " +
                            text::plural(static_cast<std::uint64_t>(wait), "second", "seconds") + " and sign in again.",
                        "too many sign-in requests from this address", now);
    // SECURITY NOTE: each start stores a row until it is used or expires. The global cap
    // (web.max_sign_ins_in_progress) is enforced where the row is stored (finish_begin): at the
    // cap the oldest sign-ins in progress are evicted, never the new one refused, so the cap
    // bounds the table (and the IdP's load) but no number of addresses can lock approvers out.
    return std::nullopt;
}

void WebUi::note_evicted(std::size_t evicted, std::int64_t now) {
    m_evicted_unlogged += evicted;
    if (m_evicted_unlogged == 0) return;
    if (m_evicted_logged_at >= 0 && now - m_evicted_logged_at < k_rate_limited_log_interval_s &&
        now >= m_evicted_logged_at)
        return;
    store::Event event;
    event.at = now;
    event.type = "signin.evicted";
    event.actor = "server";
    event.detail = nlohmann::json{{"why", "web.max_sign_ins_in_progress reached: the oldest sign-ins in progress "
                                          "were ended to make room"},
                                  {"evicted_since_last_line", m_evicted_unlogged},
                                  {"max_sign_ins_in_progress", m_config.web.max_sign_ins_in_progress}}
                       .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (log_rate_limited) log_rate_limited(event);
    m_evicted_logged_at = now;
    m_evicted_unlogged = 0;
}

http::Response WebUi::too_many(const http::Request& request, std::int64_t retry_after_s, const std::string& message,
                               const std::string& why, std::int64_t now) {
    if (m_rate_limited_logged_at < 0 || now - m_rate_limited_logged_at >= k_rate_limited_log_interval_s ||
        now < m_rate_limited_logged_at) {
        store::Event event;
        event.at = now;
        event.type = "signin.rate_limited";
        event.actor = "server";
        event.source_address = request.peer_address;
        event.detail =
            nlohmann::json{{"why", why}, {"path", request.path}, {"refused_since_last_line", m_rate_limited_unlogged}}
                .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        if (log_rate_limited) log_rate_limited(event);
        m_rate_limited_logged_at = now;
        m_rate_limited_unlogged = 0;
    } else {
        ++m_rate_limited_unlogged;
    }
    http::Response response = error(429, message, nullptr);
    response.headers.emplace_back("Retry-After", std::to_string(retry_after_s));
    return response;
}

http::Response WebUi::begin_sign_in(const http::Request& request, std::int64_t now) {
    std::string return_to = browser::field(request.query, "return_to").value_or("/");
    if (!browser::is_local_path(return_to)) return_to = "/";
    std::pair<std::string, store::LoginState> started;
    try {
        started = m_sign_in.begin(return_to);
    } catch (const Error& e) {
        return begin_failed(frame(nullptr), return_to, e.what());
    }
    return finish_begin(request, now, return_to, std::move(started));
}

http::Response WebUi::finish_begin(const http::Request& /*request*/, std::int64_t now, const std::string& return_to,
                                   std::pair<std::string, store::LoginState> started) {
    auto& [url, login] = started;
    login.return_to = return_to;
    if (!header_safe(url) || !browser::is_cookie_value(login.state))
        throw Error(ErrorCode::internal, "sign-in", "the sign-in client returned an unusable URL or state");
    const std::size_t evicted =
        m_store.put_login(login, now, static_cast<std::size_t>(std::max(m_config.web.max_sign_ins_in_progress, 1)));
    note_evicted(evicted, now);
    http::Response response = redirect(url);
    const std::int64_t max_age = std::clamp(login.expires_at - now, k_login_cookie_min_s, k_login_cookie_max_s);
    response.headers.emplace_back("Set-Cookie", browser::set_cookie(browser::k_login_cookie, login.state, max_age));
    return response;
}

std::variant<http::Response, WebUi::Callback> WebUi::check_callback(const http::Request& request, std::int64_t now) {
    const std::optional<std::string> state = browser::field(request.query, "state");
    if (!state || !browser::is_cookie_value(*state))
        return sign_in_failed(request, 400, "The sign-in answer has no valid state; sign in again.", nullptr, now);
    // SECURITY NOTE: the state must be the one this browser was given (the login cookie):
    // checked before the state is used up, so a stranger's link cannot spend a real sign-in.
    const std::optional<std::string> bound = browser::cookie(request.headers, browser::k_login_cookie);
    if (!bound || !browser::same_secret(*bound, *state))
        return sign_in_failed(request, 400,
                              "This sign-in was not started in this browser, or it took too long; sign in again.",
                              nullptr, now);
    const std::optional<store::LoginState> login = m_store.take_login(*state, now);
    if (!login)
        // Unknown state: expired, used already, or evicted at web.max_sign_ins_in_progress.
        return sign_in_failed(request, 400,
                              "This sign-in has expired (or was used already); nothing was signed in. Start again: "
                              "sign in below.",
                              nullptr, now);
    if (const auto idp_error = browser::field(request.query, "error")) {
        const std::string description = browser::field(request.query, "error_description").value_or("");
        return sign_in_failed(request, 401,
                              "The identity provider refused the sign-in: " + text::shown(*idp_error, 100) +
                                  (description.empty() ? "" : " (" + text::shown(description, 300) + ")"),
                              nullptr, now);
    }
    const std::optional<std::string> code = browser::field(request.query, "code");
    if (!code || code->empty())
        return sign_in_failed(request, 400, "The sign-in answer has no code; sign in again.", nullptr, now);

    return Callback{*code, *login};
}

http::Response WebUi::finish_sign_in(const http::Request& request, std::int64_t now) {
    std::variant<http::Response, Callback> checked = check_callback(request, now);
    if (auto* answer = std::get_if<http::Response>(&checked)) return std::move(*answer);
    const Callback& callback = std::get<Callback>(checked);
    try {
        return complete_sign_in(request, callback.login, m_sign_in.complete(callback.code, callback.login), "", now);
    } catch (const Error& e) {
        return complete_sign_in(request, callback.login, std::nullopt, e.what(), now);
    }
}

http::Response WebUi::complete_sign_in(const http::Request& request, const store::LoginState& login,
                                       const std::optional<Identity>& signed_in, const std::string& failure,
                                       std::int64_t now) {
    if (!signed_in) return sign_in_failed(request, 401, std::string("Sign-in failed: ") + failure, nullptr, now);
    const Identity& identity = *signed_in;
    if (identity.issuer.empty() || identity.subject.empty() || identity.username.empty())
        return sign_in_failed(request, 401, "Sign-in failed: the identity provider did not name the user.", &identity,
                              now);

    // A new token for every sign-in (no session fixation); the browser's old one, if any, ends.
    if (const auto old = browser::cookie(request.headers, browser::k_session_cookie); old && browser::is_token(*old))
        m_store.delete_session(browser::sha256_hex(*old));
    const std::string token = browser::random_token();
    store::Session session;
    session.token_sha256 = browser::sha256_hex(token);
    session.identity = identity_of(identity);
    session.unix_user = identity.username;
    session.display_name = identity.display_name;
    session.groups = identity.groups;
    session.csrf_token = browser::random_token();
    session.created_at = now;
    const std::int64_t ttl = m_config.web.session_ttl.count();
    session.expires_at = now + ttl;
    m_store.put_session(session);

    store::Event event;
    event.at = now;
    event.type = "signin.succeeded";
    event.actor = identity.username;
    event.identity = session.identity;
    event.source_address = request.peer_address;
    event.detail = nlohmann::json{{"display_name", identity.display_name}, {"groups", identity.groups}}.dump(
        -1, ' ', false, nlohmann::json::error_handler_t::replace);
    m_store.record(event);

    http::Response response = redirect(browser::is_local_path(login.return_to) ? login.return_to : "/");
    response.headers.emplace_back("Set-Cookie", browser::set_cookie(browser::k_session_cookie, token, ttl));
    response.headers.emplace_back("Set-Cookie", browser::clear_cookie(browser::k_login_cookie));
    return response;
}

http::Response WebUi::sign_in_failed(const http::Request& request, int status, const std::string& message,
                                     const Identity* identity, std::int64_t now) {
    store::Event event;
    event.at = now;
    event.type = "signin.failed";
    if (identity != nullptr) {
        event.actor = identity->username;
        event.identity = identity_of(*identity);
    }
    event.source_address = request.peer_address;
    event.detail = nlohmann::json{{"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    m_store.record(event);
    http::Response response = page(status, pages::sign_in(frame(nullptr), message, "/"));
    response.headers.emplace_back("Set-Cookie", browser::clear_cookie(browser::k_login_cookie));
    return response;
}

http::Response WebUi::sign_out(const http::Request& request) {
    if (const auto token = browser::cookie(request.headers, browser::k_session_cookie);
        token && browser::is_token(*token))
        m_store.delete_session(browser::sha256_hex(*token));
    http::Response response = page(200, pages::sign_in(frame(nullptr), "You are signed out.", "/"));
    response.headers.emplace_back("Set-Cookie", browser::clear_cookie(browser::k_session_cookie));
    return response;
}

http::Response WebUi::page(int status, std::string html) const {
    return plain(status, k_html, std::move(html));
}

http::Response WebUi::error(int status, const std::string& message, const pages::Viewer* viewer) const {
    return page(status, pages::error_page(frame(viewer), status, message));
}

pages::Frame WebUi::frame(const pages::Viewer* viewer) const {
    return {m_config.server.name, viewer};
}

// ---- the evidence report ------------------------------------------------------------------

namespace {

// A --hosts pattern as the form takes it: 1-253 characters of host names and fnmatch(3)'s * ? [ ] !.
bool is_host_pattern(std::string_view pattern) noexcept {
    return !pattern.empty() && pattern.size() <= 253 && std::all_of(pattern.begin(), pattern.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '.' || c == '_' ||
               c == '-' || c == '*' || c == '?' || c == '[' || c == ']' || c == '!';
    });
}

std::string_view content_type_of(report::Format format) noexcept {
    switch (format) {
    case report::Format::html:
        return k_html;
    case report::Format::pdf:
        return "application/pdf";
    case report::Format::csv:
        return "text/csv; charset=utf-8";
    case report::Format::json:
        return "application/json";
    }
    return "application/octet-stream";
}

// "20261129T080000Z": a time as it may stand in a file name.
std::string file_stamp(std::int64_t unix_s) {
    std::string stamp = report::rfc3339(unix_s);
    stamp.erase(std::remove_if(stamp.begin(), stamp.end(), [](char c) { return c == '-' || c == ':'; }), stamp.end());
    return stamp;
}

// The content of the first <style> element of the report's HTML (render() writes exactly one,
// in the head); nullopt when there is none.
std::optional<std::string_view> inline_style(std::string_view html) {
    constexpr std::string_view k_open = "<style>";
    const auto start = html.find(k_open);
    if (start == std::string_view::npos) return std::nullopt;
    const auto end = html.find("</style>", start + k_open.size());
    if (end == std::string_view::npos) return std::nullopt;
    return html.substr(start + k_open.size(), end - start - k_open.size());
}

} // namespace

void WebUi::offload_reports(std::function<void(std::function<void()>)> post,
                            std::function<std::unique_ptr<store::Store>()> open_store) {
    m_open_report_store = std::move(open_store);
    m_report_worker = std::make_unique<http::Worker>("report", 1, std::move(post));
}

void WebUi::report(const http::Request& request, std::function<void(http::Response)> done) {
    // Only a valid report request of a signed-in auditor goes to the report thread; respond()
    // answers everything else (the form, 400, 403, the sign-in redirect, 405) as for any page.
    std::optional<ReportJob> job;
    if (m_report_worker && request.method == "GET") {
        try {
            const std::int64_t now = m_service.now();
            if (const std::optional<SignedIn> who = signed_in(request, now); who && who->auditor) {
                std::variant<http::Response, ReportJob> checked = check_report(request, *who, now);
                if (auto* j = std::get_if<ReportJob>(&checked)) job = std::move(*j);
            }
        } catch (const std::exception&) {
            job.reset(); // respond() meets the same failure, answers and logs it
        }
    }
    if (!job) {
        done(respond(request));
        return;
    }
    // SECURITY NOTE: one report at a time: each reads a whole period, and a second one would
    // only share the database's and the machine's time with the first.
    const auto busy = [this](const std::string& message) {
        http::Response response = error(503, message, nullptr);
        response.headers.emplace_back("Retry-After", std::to_string(k_report_retry_after_s));
        browser::add_security_headers(response);
        return response;
    };
    if (m_report_done) {
        done(busy("A report is being made; try again in a minute."));
        return;
    }
    // The Reply stays on the loop (in m_report_done): the report thread's work holds only the job.
    // `made` is filled on the report thread and read on the loop after it (Worker::push orders
    // the two): the work holds no Reply.
    auto made = std::make_shared<Made>();
    const bool queued = m_report_worker->push(
        [this, job = *job, made]() {
            const auto failed = [&made](const std::exception& e, const std::string& io_message) {
                made->failure = e.what();
                const auto* as_error = dynamic_cast<const Error*>(&e);
                const bool io = as_error != nullptr && as_error->code() == ErrorCode::io;
                made->status = io ? 503 : 500;
                made->message = io ? io_message : "Something went wrong on the server; no report was made.";
            };
            std::optional<report::Report> built;
            try {
                const std::unique_ptr<store::Store> store = m_open_report_store();
                built = report::build(*store, job.options);
            } catch (const std::exception& e) {
                failed(e, "The database is not available; no report was made. Try again shortly.");
            }
            if (built) {
                try {
                    made->document = report::render(*built, job.format);
                } catch (const std::exception& e) {
                    // Error(io) here is the PDF maker (WeasyPrint missing or failing): its message says which.
                    failed(e, std::string("The report could not be made: ") + e.what());
                }
            }
        },
        [this, job = *job, made](bool ok) {
            if (!ok) {
                // The work threw past its own handlers (out of memory): no report.
                made->document.clear();
                made->failure = "the report's work failed";
                made->status = 500;
                made->message = "Something went wrong on the server; no report was made.";
            }
            std::function<void(http::Response)> finish = std::move(m_report_done);
            m_report_done = nullptr;
            if (finish) finish(finish_report(job, std::move(*made)));
        });
    if (!queued) {
        done(busy("A report is being made; try again in a minute."));
        return;
    }
    m_report_done = std::move(done);
}

std::variant<http::Response, WebUi::ReportJob> WebUi::check_report(const http::Request& request, const SignedIn& who,
                                                                   std::int64_t now) const {
    pages::ReportForm form;
    const auto from = browser::field(request.query, "from");
    const auto to = browser::field(request.query, "to");
    const auto hosts = browser::field(request.query, "hosts");
    const auto format = browser::field(request.query, "format");
    form.from = from.value_or("");
    form.to = to.value_or("");
    if (hosts && !hosts->empty()) form.hosts = *hosts;
    if (format) form.format = *format;
    if (!from && !to && !hosts && !format) return page(200, pages::audit_report_form(frame(&who.viewer), form, ""));
    // SECURITY NOTE: a report reads a whole period and records "report.viewed" in the auditor's
    // name: a link on another site (SameSite=Lax sends the cookie on a top-level GET) must not
    // start one. The form itself may be linked to.
    if (browser::cross_site_request(request.headers))
        return error(403, "A report is made from this server's own report form, not from a link on another site.",
                     &who.viewer);
    const auto refused = [&](const std::string& message) {
        return page(400, pages::audit_report_form(frame(&who.viewer), form, message + " Nothing was made."));
    };
    // The report module's own parser, as the CLI's --from and --to: a date or an RFC 3339 time.
    const std::optional<std::int64_t> start = report::parse_time(form.from, false);
    const std::optional<std::int64_t> end = report::parse_time(form.to, true);
    if (!start || !end) return refused("From and to are dates (2026-11-01) or RFC 3339 times (2026-11-01T08:00:00Z).");
    if (*start >= *end) return refused("The period is empty: from must be before to.");
    // SECURITY NOTE: a bounded period bounds what one request makes the server read.
    if (*end - *start > k_max_report_days * 86400)
        return refused("A report covers at most " + std::to_string(k_max_report_days) + " days.");
    if (!is_host_pattern(form.hosts))
        return refused("Hosts is a pattern of host-name characters and * ? [ ] ! (at most 253).");
    const std::optional<report::Format> parsed_format = report::format_from_string(form.format);
    if (!parsed_format) return refused("The format is html, pdf, csv or json.");
    ReportJob job;
    job.options.from = *start;
    job.options.to = *end;
    job.options.hosts = form.hosts;
    job.options.now = now;
    job.format = *parsed_format;
    job.format_name = form.format;
    job.actor = who.viewer.unix_user;
    job.identity = who.session.identity;
    job.source_address = request.peer_address;
    return job;
}

http::Response WebUi::finish_report(const ReportJob& job, Made made) {
    http::Response response;
    try {
        if (!made.failure.empty()) {
            log_line("report " + report::rfc3339(job.options.from) + " to " + report::rfc3339(job.options.to) + ": " +
                     made.failure);
            response = error(made.status, made.message, nullptr);
            browser::add_security_headers(response);
            return response;
        }
        // SECURITY NOTE: an auditor's reading of the evidence is itself evidence: recorded (store
        // and syslog) before anything is sent; when it cannot be recorded, nothing is sent.
        store::Event event;
        event.at = m_service.now();
        event.type = "report.viewed";
        event.actor = job.actor;
        event.identity = job.identity;
        event.source_address = job.source_address;
        event.detail = nlohmann::json{{"from", report::rfc3339(job.options.from)},
                                      {"to", report::rfc3339(job.options.to)},
                                      {"hosts", job.options.hosts},
                                      {"format", job.format_name},
                                      {"bytes", made.document.size()}}
                           .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        m_store.record(event);
        service::log_event(event);

        std::string policy;
        if (job.format == report::Format::html) {
            const std::optional<std::string_view> style = inline_style(made.document);
            // No style element: the policy allows no style at all (the page is plain, not unsafe).
            policy = style ? browser::style_hash_policy(*style)
                           : std::string("default-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
                                         "form-action 'none'");
        }
        response = plain(200, content_type_of(job.format), std::move(made.document));
        if (job.format != report::Format::html)
            response.headers.emplace_back("Content-Disposition",
                                          "attachment; filename=\"jitgate-report-" + file_stamp(job.options.from) +
                                              "-" + file_stamp(job.options.to) + "." + job.format_name + "\"");
        if (policy.empty())
            browser::add_security_headers(response);
        else
            browser::add_security_headers(response, policy);
    } catch (const std::exception& e) {
        log_line(std::string("report: ") + e.what());
        const auto* as_error = dynamic_cast<const Error*>(&e);
        response =
            as_error != nullptr && as_error->code() == ErrorCode::io
                ? error(503, "The database is not available; the report was not sent. Try again shortly.", nullptr)
                : error(500, "Something went wrong on the server; the report was not sent.", nullptr);
        browser::add_security_headers(response);
    }
    return response;
}

} // namespace jitgate::server::web
