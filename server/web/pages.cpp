// server/web/pages.cpp — the approvers' HTML pages (see pages.hpp for the escaping rules).
#include "server/web/pages.hpp"

#include "server/web/browser.hpp"

#include <jitgate/error.hpp>
#include <jitgate/text.hpp>

#include <nlohmann/json.hpp>

#include <ctime>
#include <initializer_list>

namespace jitgate::server::web::pages {
namespace {

using nlohmann::json;

// --- reading a request body defensively ---

// The member at `path`, or null when any step is missing or not an object.
const json* member(const json& root, std::initializer_list<const char*> path) {
    const json* current = &root;
    for (const char* key : path) {
        if (!current->is_object()) return nullptr;
        const auto it = current->find(key);
        if (it == current->end()) return nullptr;
        current = &*it;
    }
    return current;
}

std::optional<std::string> string_at(const json& root, std::initializer_list<const char*> path) {
    const json* j = member(root, path);
    if (j == nullptr || !j->is_string()) return std::nullopt;
    return j->get<std::string>();
}

std::optional<std::int64_t> integer_at(const json& root, std::initializer_list<const char*> path) {
    const json* j = member(root, path);
    if (j == nullptr || !j->is_number_integer()) return std::nullopt;
    return j->get<std::int64_t>();
}

// --- HTML pieces ---

const std::string k_missing = "<span class=\"missing\">(missing)</span>";
const std::string k_none = "<span class=\"none\">(none)</span>";

// Exact text, "(none)" when empty.
std::string exact_or_none(std::string_view text) {
    return text.empty() ? k_none : exact_text(text);
}
std::string host_or_none(std::string_view text) {
    return text.empty() ? k_none : host_text(text);
}

std::string exact_member(const json& root, std::initializer_list<const char*> path) {
    const auto value = string_at(root, path);
    return value ? exact_or_none(*value) : k_missing;
}

std::string host_member(const json& root, std::initializer_list<const char*> path) {
    const auto value = string_at(root, path);
    return value ? host_or_none(*value) : k_missing;
}

std::string integer_member(const json& root, std::initializer_list<const char*> path) {
    const auto value = integer_at(root, path);
    return value ? std::to_string(*value) : k_missing;
}

std::string row(std::string_view label, const std::string& value_html) {
    std::string out = "<tr><th scope=\"row\">";
    out += label;
    out += "</th><td>";
    out += value_html;
    out += "</td></tr>\n";
    return out;
}

// The `exp` claim of a grant (a compact JWS the service signed), or 0 when it cannot be read.
std::int64_t grant_expiry(const std::string& jws) {
    const std::size_t a = jws.find('.');
    const std::size_t b = a == std::string::npos ? a : jws.find('.', a + 1);
    if (b == std::string::npos) return 0;
    try {
        const json claims = json::parse(text::base64url_decode(std::string_view(jws).substr(a + 1, b - a - 1)));
        const auto exp = claims.find("exp");
        return exp != claims.end() && exp->is_number_integer() ? exp->get<std::int64_t>() : 0;
    } catch (const std::exception&) {
        return 0;
    }
}

std::string time_element(std::int64_t unix_s) {
    if (unix_s == 0) return "-";
    const std::string shown = format_time(unix_s);
    std::string iso = shown;
    if (iso.size() == 23) iso = iso.substr(0, 10) + "T" + iso.substr(11, 8) + "Z";
    return "<time datetime=\"" + html_escape(iso) + "\">" + html_escape(shown) + "</time>";
}

// True when showing `text` escaped changes more than its backslashes: it holds a control,
// invisible or bidi character, or bytes that are not UTF-8. Approvers get told.
bool has_hidden_characters(std::string_view text) {
    std::string without_backslashes;
    for (const char c : text)
        if (c != '\\') without_backslashes += c;
    return text::escape_for_log(without_backslashes) != without_backslashes;
}

// A list of strings (tags, groups) as exact text separated by commas.
std::string string_list(const json* list) {
    if (list == nullptr || !list->is_array()) return k_missing;
    if (list->empty()) return k_none;
    std::string out;
    for (const auto& item : *list) {
        if (!out.empty()) out += ", ";
        out += item.is_string() ? exact_text(item.get<std::string>()) : k_missing;
    }
    return out;
}

std::string string_list(const std::vector<std::string>& list) {
    if (list.empty()) return k_none;
    std::string out;
    for (const auto& item : list) {
        if (!out.empty()) out += ", ";
        out += exact_text(item);
    }
    return out;
}

// JSON text (the ticket check's answer) for a <pre>: pretty-printed, each line made visible.
std::string json_block(const std::string& text) {
    const json parsed = json::parse(text, nullptr, false);
    const std::string pretty =
        parsed.is_discarded() ? text : parsed.dump(2, ' ', false, json::error_handler_t::replace);
    std::string out;
    std::string_view rest = pretty;
    while (true) {
        const auto nl = rest.find('\n');
        out += exact_text(rest.substr(0, nl));
        if (nl == std::string_view::npos) break;
        out += '\n';
        rest.remove_prefix(nl + 1);
    }
    return out;
}

// What a request asks for, in one line: the command's display, or the login.
std::string summary(const json& body) {
    const auto kind = string_at(body, {"kind"});
    if (kind && *kind == "login") {
        std::string out = "log in as " + exact_member(body, {"account", "user"});
        if (const auto service = string_at(body, {"action", "service"}); service && !service->empty())
            out += " via " + host_text(*service);
        if (const auto remote = string_at(body, {"action", "remote_host"}); remote && !remote->empty())
            out += " from " + host_text(*remote);
        return out;
    }
    const auto display = string_at(body, {"action", "display"});
    return display ? "<code>" + host_or_none(*display) + "</code>" : k_missing;
}

std::string request_link(const store::Request& request) {
    return "<a href=\"" + html_escape(request_path(request.host, request.id)) + "\">" + exact_text(request.id) + "</a>";
}

std::string csrf_field(const Viewer& viewer) {
    return "<input type=\"hidden\" name=\"csrf\" value=\"" + html_escape(viewer.csrf_token) + "\">";
}

std::string document(const Frame& frame, std::string_view title, const std::string& content) {
    std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>";
    out += html_escape(title);
    out += " - ";
    out += exact_text(frame.site_name);
    out += "</title>\n<link rel=\"stylesheet\" href=\"/style.css\">\n</head>\n<body>\n<header>\n<p class=\"site\">";
    out += exact_text(frame.site_name);
    out += " approvals</p>\n";
    if (frame.viewer != nullptr) {
        out += "<nav aria-label=\"Main\"><ul><li><a href=\"/\">Pending</a></li>"
               "<li><a href=\"/history\">History</a></li>";
        if (frame.viewer->auditor) out += "<li><a href=\"/audit\">Audit</a></li>";
        out += "</ul></nav>\n<p class=\"viewer\">Signed in as ";
        out += exact_text(frame.viewer->display_name.empty() ? frame.viewer->unix_user : frame.viewer->display_name);
        out += " (<span class=\"unix-user\">" + exact_text(frame.viewer->unix_user) + "</span>)</p>\n";
        out += "<form method=\"post\" action=\"/logout\" class=\"sign-out\">" + csrf_field(*frame.viewer) +
               "<button type=\"submit\">Sign out</button></form>\n";
    }
    out += "</header>\n<main>\n";
    out += content;
    out += "</main>\n</body>\n</html>\n";
    return out;
}

std::string status_name(store::Status status) {
    return std::string(store::to_string(status));
}

// Who decided a final request, for the history.
std::string decided_by(const store::Request& request) {
    // The service's own approval (docs/server.md, "Automatic approval") names no person: shown
    // as recorded, "jitgate (auto: on_call)".
    if (request.status == store::Status::approved && request.approvals.empty() && !request.decided_by.empty())
        return exact_or_none(request.decided_by);
    if (request.status == store::Status::approved) {
        std::vector<std::string> names;
        for (const auto& approval : request.approvals) names.push_back(approval.approver);
        return string_list(names);
    }
    std::string out = exact_or_none(request.decided_by);
    if (!request.decision_reason.empty()) out += ": " + exact_text(request.decision_reason);
    return out;
}

// The forms the service will accept: approve and deny are offered separately (a ticket check
// that has not passed blocks approving only), with the reason when approving is not offered.
std::string decision_forms(const Viewer& viewer, const store::Request& request,
                           const service::Decidability& decidability) {
    const std::string base = html_escape(request_path(request.host, request.id));
    std::string out = "<section aria-labelledby=\"decide\">\n<h2 id=\"decide\">Your decision</h2>\n";
    if (decidability.may_approve)
        out += "<form method=\"post\" action=\"" + base + "/approve\" class=\"approve\">\n" + csrf_field(viewer) +
               "\n<p><label for=\"approve-comment\">Comment (optional)</label><br>\n"
               "<textarea id=\"approve-comment\" name=\"comment\" rows=\"3\" cols=\"60\"></textarea></p>\n"
               "<p><button type=\"submit\">Approve</button></p>\n</form>\n";
    else
        out +=
            "<p class=\"why-not\">You cannot approve this request: " + exact_or_none(decidability.why_not) + "</p>\n";
    if (decidability.may_deny)
        out += "<form method=\"post\" action=\"" + base + "/deny\" class=\"deny\">\n" + csrf_field(viewer) +
               "\n<p><label for=\"deny-comment\">Reason for the denial (required)</label><br>\n"
               "<textarea id=\"deny-comment\" name=\"comment\" rows=\"3\" cols=\"60\" required></textarea></p>\n"
               "<p><button type=\"submit\">Deny</button></p>\n</form>\n";
    else
        out +=
            "<p class=\"why-not\">You cannot deny this request: " + exact_or_none(decidability.why_not_deny) + "</p>\n";
    return out + "</section>\n";
}

std::string argv_section(const json& body) {
    std::string out = "<section aria-labelledby=\"argv\">\n<h2 id=\"argv\">Arguments, one per row</h2>\n";
    const json* argv = member(body, {"action", "argv"});
    if (argv == nullptr || !argv->is_array()) return out + "<p>" + k_missing + "</p>\n</section>\n";
    if (argv->empty()) return out + "<p>" + k_none + "</p>\n</section>\n";
    out += "<table class=\"argv\">\n<thead><tr><th scope=\"col\">#</th><th scope=\"col\">Argument</th>"
           "<th scope=\"col\">Note</th></tr></thead>\n<tbody>\n";
    std::size_t index = 0;
    for (const auto& element : *argv) {
        std::string value;
        std::string note;
        if (element.is_string()) {
            const auto arg = element.get<std::string>();
            value = "<code>" + exact_or_none(arg) + "</code>";
            if (has_hidden_characters(arg)) note = "holds control or invisible characters, shown escaped";
        } else if (const auto b64 = string_at(element, {"b64"}); b64 && element.size() == 1) {
            try {
                value = "<code>" + exact_or_none(text::base64_decode(*b64)) + "</code>";
                note = "not UTF-8: decoded from base64, bytes shown as \\xNN";
            } catch (const Error&) {
                value = k_missing;
                note = "invalid base64";
            }
        } else {
            value = k_missing;
            note = "neither a string nor {\"b64\": ...}";
        }
        out += "<tr" + std::string(note.empty() ? "" : " class=\"marked\"") + "><td>" + std::to_string(index++) +
               "</td><td>" + value + "</td><td>" + html_escape(note) + "</td></tr>\n";
    }
    return out + "</tbody>\n</table>\n</section>\n";
}

std::vector<std::string> code_loading_names(const json& body) {
    std::vector<std::string> names;
    const json* list = member(body, {"action", "env_code_loading"});
    if (list == nullptr || !list->is_array()) return names;
    for (const auto& item : *list)
        if (item.is_string()) names.push_back(item.get<std::string>());
    return names;
}

std::string env_section(const json& body, const std::vector<std::string>& code_loading) {
    std::string out = "<section aria-labelledby=\"env\">\n<h2 id=\"env\">Environment the grant binds</h2>\n";
    const json* env = member(body, {"action", "env"});
    if (env == nullptr || !env->is_array()) return out + "<p>" + k_missing + "</p>\n</section>\n";
    if (env->empty()) return out + "<p>" + k_none + "</p>\n</section>\n";
    out += "<table class=\"env\">\n<thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Value</th>"
           "<th scope=\"col\">Note</th></tr></thead>\n<tbody>\n";
    for (const auto& element : *env) {
        std::string entry;
        bool decoded = false;
        try {
            entry = text::arg_from_json(element);
            decoded = !element.is_string();
        } catch (const Error&) {
            out += "<tr class=\"marked\"><td>" + k_missing + "</td><td>" + k_missing +
                   "</td><td>neither a string nor {&quot;b64&quot;: ...}</td></tr>\n";
            continue;
        }
        const auto eq = entry.find('=');
        const std::string name = entry.substr(0, eq);
        const std::string value = eq == std::string::npos ? std::string() : entry.substr(eq + 1);
        bool loads_code = false;
        for (const auto& flagged : code_loading)
            if (flagged == name || flagged == text::escape_for_log(name)) loads_code = true;
        std::string note;
        if (loads_code) note = "WARNING: makes programs load or run other code";
        if (decoded)
            note += std::string(note.empty() ? "" : "; ") + "not UTF-8: decoded from base64, bytes shown as \\xNN";
        else if (has_hidden_characters(entry))
            note += std::string(note.empty() ? "" : "; ") + "holds control or invisible characters, shown escaped";
        out += std::string("<tr") +
               (loads_code     ? " class=\"warning\""
                : note.empty() ? ""
                               : " class=\"marked\"") +
               "><td><code>" + exact_or_none(name) + "</code></td><td><code>" +
               (eq == std::string::npos ? k_missing : exact_text(value)) + "</code></td><td>" + html_escape(note) +
               "</td></tr>\n";
    }
    return out + "</tbody>\n</table>\n</section>\n";
}

std::string approvals_table(const store::Request& request) {
    if (request.approvals.empty()) return "<p>" + k_none + "</p>\n";
    std::string out = "<table class=\"approvals\">\n<thead><tr><th scope=\"col\">Approver</th>"
                      "<th scope=\"col\">Signed in as</th><th scope=\"col\">When</th><th scope=\"col\">Via</th>"
                      "<th scope=\"col\">From</th><th scope=\"col\">Comment</th></tr></thead>\n<tbody>\n";
    for (const auto& approval : request.approvals) {
        out += "<tr><td>" + exact_or_none(approval.approver) + "</td><td>" + exact_or_none(approval.identity) +
               "</td><td>" + time_element(approval.at) + "</td><td>" + exact_or_none(approval.via) + "</td><td>" +
               exact_or_none(approval.source_address) + "</td><td>" + exact_or_none(approval.comment) + "</td></tr>\n";
    }
    return out + "</tbody>\n</table>\n";
}

std::string user_with_uid(const json& body, const char* object, const char* user_key, const char* uid_key) {
    const auto user = string_at(body, {object, user_key});
    const json* uid = member(body, {object, uid_key});
    if (!user && uid == nullptr) return k_none;
    std::string out = user ? exact_or_none(*user) : k_missing;
    out += " (uid ";
    out += uid != nullptr && uid->is_number_integer() ? std::to_string(uid->get<std::int64_t>()) : k_missing;
    out += ")";
    return out;
}

} // namespace

// --- text ---

std::string html_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size() + text.size() / 8);
    for (const char c : text) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        case '\'':
            out += "&#39;";
            break;
        default:
            out += c;
        }
    }
    return out;
}

std::string exact_text(std::string_view bytes) {
    return html_escape(text::escape_for_log(bytes));
}

std::string host_text(std::string_view text) {
    // Escaping each piece between backslashes escapes exactly the dangerous characters and
    // leaves the host's own "\\" and "\xNN" as they were. A backslash byte never sits inside
    // a UTF-8 sequence, so no character is split.
    std::string out;
    std::string_view rest = text;
    while (true) {
        const auto slash = rest.find('\\');
        out += text::escape_for_log(rest.substr(0, slash));
        if (slash == std::string_view::npos) break;
        out += '\\';
        rest.remove_prefix(slash + 1);
    }
    return html_escape(out);
}

std::string format_time(std::int64_t unix_s) {
    if (unix_s == 0) return "-";
    const auto t = static_cast<std::time_t>(unix_s);
    std::tm tm{};
    if (gmtime_r(&t, &tm) == nullptr) return "(invalid time)";
    char buf[64];
    if (std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0) return "(invalid time)";
    return buf;
}

std::string format_time_left(std::int64_t seconds) {
    if (seconds <= 0) return "expired";
    const std::int64_t h = seconds / 3600;
    const std::int64_t m = (seconds % 3600) / 60;
    const std::int64_t s = seconds % 60;
    if (h > 0) return std::to_string(h) + " h " + std::to_string(m) + " min";
    if (m > 0) return std::to_string(m) + " min " + std::to_string(s) + " s";
    return std::to_string(s) + " s";
}

std::string request_path(std::string_view host, std::string_view id) {
    return "/r/" + browser::url_encode(host) + "/" + browser::url_encode(id);
}

// --- pages ---

std::string pending(const Frame& frame, const std::vector<PendingRow>& rows, std::int64_t now,
                    const std::optional<std::string>& next, bool continued) {
    std::string content = "<h1>Pending requests</h1>\n";
    if (continued) content += "<p>Continued from <a href=\"/\">the oldest requests</a>.</p>\n";
    const std::string next_link =
        next ? "<p><a href=\"" + html_escape(*next) + "\">Newer pending requests</a></p>\n" : std::string();
    if (rows.empty()) {
        if (!next)
            return document(frame, "Pending requests",
                            content +
                                (continued ? "<p>Nothing more is waiting.</p>\n" : "<p>Nothing is waiting.</p>\n"));
        return document(frame, "Pending requests",
                        content +
                            "<p>None of the requests read for this page is yours to see; more are waiting.</p>\n" +
                            next_link);
    }
    content += "<table class=\"pending\">\n<caption>" + text::plural(rows.size(), "request", "requests") +
               " waiting, oldest first</caption>\n<thead><tr><th scope=\"col\">Request</th>"
               "<th scope=\"col\">Host</th><th scope=\"col\">Environment</th><th scope=\"col\">Tags</th>"
               "<th scope=\"col\">Requester</th><th scope=\"col\">Asks for</th><th scope=\"col\">Rule</th>"
               "<th scope=\"col\">Approvals</th><th scope=\"col\">Time left</th><th scope=\"col\">You</th>"
               "</tr></thead>\n<tbody>\n";
    for (const auto& item : rows) {
        const auto& request = item.request;
        const json body = json::parse(request.body, nullptr, false);
        const json& b = body.is_object() ? body : json::object();
        content += "<tr><td>" + request_link(request) + "</td><td>" + exact_text(request.host) + "</td><td>" +
                   exact_member(b, {"host_environment"}) + "</td><td>" + string_list(member(b, {"host_tags"})) +
                   "</td><td>" + exact_or_none(request.requester) + "</td><td>" + summary(b) + "</td><td>" +
                   exact_or_none(request.rule) + "</td><td>" + std::to_string(request.approvals.size()) + " of " +
                   std::to_string(request.approvals_needed) + "</td><td>" +
                   html_escape(format_time_left(request.expires_at - now)) + "</td><td>" +
                   (item.decidability.may_approve ? std::string("<strong>you may decide</strong>")
                    : item.decidability.may_deny
                        ? "<strong>you may deny</strong>; <span class=\"why-not\">approving is blocked: " +
                              exact_or_none(item.decidability.why_not) + "</span>"
                        : "<span class=\"why-not\">" + exact_or_none(item.decidability.why_not) + "</span>") +
                   "</td></tr>\n";
    }
    content += "</tbody>\n</table>\n";
    if (next)
        content +=
            "<p>More requests may be waiting than this page shows; the oldest are shown first.</p>\n" + next_link;
    return document(frame, "Pending requests", content);
}

std::string request_detail(const Frame& frame, const store::Request& request, const service::Decidability& decidability,
                           std::int64_t now, const store::Revocation* revocation, bool may_revoke) {
    const json parsed = json::parse(request.body, nullptr, false);
    const bool body_ok = parsed.is_object();
    const json& body = body_ok ? parsed : json::object();
    const std::vector<std::string> code_loading = code_loading_names(body);

    std::string c = "<h1>Request " + exact_text(request.id) + " on " + exact_text(request.host) + "</h1>\n";

    // Warnings first, where nobody scrolls past them.
    std::string warnings;
    if (!body_ok) warnings += "<p>The stored request is not a JSON object; its details cannot be shown.</p>\n";
    if (!code_loading.empty()) {
        std::string names;
        for (const auto& name : code_loading) names += (names.empty() ? "" : ", ") + host_text(name);
        warnings += "<p><strong>Warning:</strong> the command's environment sets variables that make programs load "
                    "or run other code: <code>" +
                    names + "</code>. Approve only if you expect them.</p>\n";
    }
    if (const auto named = string_at(body, {"host"}); body_ok && (!named || *named != request.host))
        warnings += "<p><strong>Warning:</strong> the request body names the host " +
                    (named ? exact_text(*named) : k_missing) + ", not the host its certificate identified.</p>\n";
    if (!warnings.empty()) c += "<div class=\"warning\" role=\"alert\">\n" + warnings + "</div>\n";

    c += "<table class=\"facts\">\n<caption>Status</caption>\n<tbody>\n";
    c += row("Status", "<strong>" + html_escape(status_name(request.status)) + "</strong>");
    c += row("Approvals",
             std::to_string(request.approvals.size()) + " of " + std::to_string(request.approvals_needed) + " needed");
    if (request.status == store::Status::pending)
        c += row("Time left", html_escape(format_time_left(request.expires_at - now)) + " (expires " +
                                  time_element(request.expires_at) + ")");
    c += row("Filed", time_element(request.created_at));
    if (request.status != store::Status::pending) {
        c += row("Decided", time_element(request.decided_at));
        c += row("Decided by", decided_by(request));
        if (!request.grant_id.empty()) c += row("Grant id", exact_text(request.grant_id));
        if (revocation != nullptr) {
            c += row("Grant", "<strong>revoked</strong> " + time_element(revocation->revoked_at) + " by " +
                                  exact_text(revocation->revoked_by));
            c += row("Revocation reason", exact_or_none(revocation->reason));
        }
    }
    c += "</tbody>\n</table>\n";

    c += "<table class=\"facts\">\n<caption>The host</caption>\n<tbody>\n";
    c += row("Host", exact_text(request.host));
    c += row("Environment", exact_member(body, {"host_environment"}));
    c += row("Tags", string_list(member(body, {"host_tags"})));
    c += "</tbody>\n</table>\n";

    c += "<table class=\"facts\">\n<caption>Who asks</caption>\n<tbody>\n";
    c += row("Requester", user_with_uid(body, "requester", "user", "uid"));
    c += row("Login user", user_with_uid(body, "requester", "login_user", "login_uid"));
    c += row("Account", user_with_uid(body, "account", "user", "uid"));
    c += "</tbody>\n</table>\n";

    c += "<table class=\"facts\">\n<caption>What for</caption>\n<tbody>\n";
    c += row("Kind", exact_member(body, {"kind"}));
    c += row("Scope", exact_member(body, {"scope"}));
    c += row("Command", "<code class=\"command\">" + host_member(body, {"action", "display"}) + "</code>");
    c += row("Command path", host_member(body, {"action", "command"}));
    c += row("Program", host_member(body, {"action", "program"}));
    c += row("Run as user", host_member(body, {"action", "runas"}));
    c += row("Run as group", host_member(body, {"action", "runas_group"}));
    c += row("Working directory", host_member(body, {"action", "cwd"}));
    c += row("Chroot", host_member(body, {"action", "chroot"}));
    c += row("Terminal", host_member(body, {"action", "tty"}));
    c += row("PAM service", host_member(body, {"action", "service"}));
    c += row("Remote host", host_member(body, {"action", "remote_host"}));
    c += row("Command SHA-256", exact_member(body, {"action", "cmd_sha256"}));
    c += "</tbody>\n</table>\n";

    c += argv_section(body);
    c += env_section(body, code_loading);

    c += "<table class=\"facts\">\n<caption>Why</caption>\n<tbody>\n";
    c += row("Reason", host_member(body, {"reason"}));
    c += row("Ticket", host_member(body, {"ticket"}));
    c += row("Ticket check",
             request.ticket_check.empty() ? k_none : "<pre>" + json_block(request.ticket_check) + "</pre>");
    c += "</tbody>\n</table>\n";

    c += "<table class=\"facts\">\n<caption>Policy</caption>\n<tbody>\n";
    c += row("Host rule", exact_or_none(request.rule));
    c += row("Approver groups", string_list(request.approver_groups));
    c += row("Approvals needed", std::to_string(request.approvals_needed));
    c += row("Grant lifetime asked (s)", integer_member(body, {"ttl_s"}));
    c += row("Host waits (s)", integer_member(body, {"timeout_s"}));
    c += "</tbody>\n</table>\n";

    c += "<section aria-labelledby=\"approvals\">\n<h2 id=\"approvals\">Approvals so far</h2>\n" +
         approvals_table(request) + "</section>\n";

    if (request.status == store::Status::approved && revocation == nullptr && may_revoke && frame.viewer != nullptr) {
        const std::int64_t exp = grant_expiry(request.grant);
        // A host whose jitgated predates the revocation feed (or whose service path answers 404
        // for it) keeps a grant it already holds until it expires: the page says so.
        const std::string older =
            " A host running a jitgated without the revocation feed keeps a grant it already holds until it "
            "expires; a grant it has not fetched yet is refused to it either way.";
        std::string what = "<p>The host ends the grant and the sessions it opened within seconds." + older + "</p>\n";
        if (exp > 0 && exp <= now)
            what = "<p>This grant expired " + time_element(exp) +
                   ": it has nothing left to end on the host. Sessions a rule keeps past the grant's end "
                   "(<code>on_expiry: keep</code>) are not ended by revoking it. Revoking it still records who "
                   "ended it and why.</p>\n";
        else if (exp > 0)
            what = "<p>The grant expires " + time_element(exp) +
                   ". Revoking it ends it on the host within seconds, with the sessions it opened." + older + "</p>\n";
        c += "<section aria-labelledby=\"revoke\">\n<h2 id=\"revoke\">Revoke the grant</h2>\n" + what +
             "<form method=\"post\" action=\"" + html_escape(request_path(request.host, request.id)) +
             "/revoke\" class=\"revoke\">\n" + csrf_field(*frame.viewer) +
             "\n<p><label for=\"revoke-comment\">Reason (optional, one line)</label><br>\n"
             "<input type=\"text\" id=\"revoke-comment\" name=\"comment\" size=\"60\" maxlength=\"2048\"></p>\n"
             "<p><button type=\"submit\">Revoke</button></p>\n</form>\n</section>\n";
    }
    if (request.status != store::Status::pending)
        c += "<p class=\"final\">This request is final (" + html_escape(status_name(request.status)) +
             "); nothing more can be decided.</p>\n";
    else if (frame.viewer != nullptr && (decidability.may_approve || decidability.may_deny))
        c += decision_forms(*frame.viewer, request, decidability);
    else
        c += "<p class=\"why-not\">You cannot decide this request: " +
             (decidability.why_not.empty()
                  ? std::string(frame.viewer == nullptr ? "you are not signed in" : "not allowed")
                  : exact_text(decidability.why_not)) +
             "</p>\n";

    return document(frame, "Request " + text::escape_for_log(request.id), c);
}

std::string action_result(const Frame& frame, std::string_view host, std::string_view id, bool succeeded,
                          std::string_view message) {
    std::string c = succeeded ? "<h1>Done</h1>\n" : "<h1>Not done</h1>\n";
    c += "<p class=\"" + std::string(succeeded ? "flash" : "flash failed") + "\" role=\"status\">" +
         exact_or_none(message) + "</p>\n";
    c += "<p><a href=\"" + html_escape(request_path(host, id)) + "\">Back to request " + exact_text(id) +
         "</a> | <a href=\"/\">Pending requests</a></p>\n";
    return document(frame, succeeded ? "Done" : "Not done", c);
}

std::string history(const Frame& frame, const std::vector<store::Request>& requests,
                    std::optional<std::int64_t> older_before) {
    std::string c = "<h1>History</h1>\n";
    if (requests.empty()) {
        c += "<p>No decided requests.</p>\n";
    } else {
        c += "<table class=\"history\">\n<caption>Decided requests, newest first</caption>\n<thead><tr>"
             "<th scope=\"col\">Request</th><th scope=\"col\">Host</th><th scope=\"col\">Requester</th>"
             "<th scope=\"col\">Asked for</th><th scope=\"col\">Status</th><th scope=\"col\">Decided</th>"
             "<th scope=\"col\">Decided by</th></tr></thead>\n<tbody>\n";
        for (const auto& request : requests) {
            const json body = json::parse(request.body, nullptr, false);
            const json& b = body.is_object() ? body : json::object();
            c += "<tr><td>" + request_link(request) + "</td><td>" + exact_text(request.host) + "</td><td>" +
                 exact_or_none(request.requester) + "</td><td>" + summary(b) + "</td><td>" +
                 html_escape(status_name(request.status)) + "</td><td>" + time_element(request.decided_at) +
                 "</td><td>" + decided_by(request) + "</td></tr>\n";
        }
        c += "</tbody>\n</table>\n";
    }
    if (older_before)
        c += "<p><a href=\"/history?before=" + std::to_string(*older_before) + "\">Older requests</a></p>\n";
    return document(frame, "History", c);
}

std::string sign_in(const Frame& frame, std::string_view message, std::string_view return_to) {
    std::string c = "<h1>Sign in</h1>\n";
    if (!message.empty()) c += "<p class=\"flash\" role=\"status\">" + exact_text(message) + "</p>\n";
    const std::string target = browser::is_local_path(return_to) ? std::string(return_to) : std::string("/");
    c += "<p>Approvers sign in with the organisation's single sign-on.</p>\n<p><a class=\"button\" href=\"" +
         html_escape("/login?return_to=" + browser::url_encode(target)) + "\">Sign in</a></p>\n";
    return document(frame, "Sign in", c);
}

std::string error_page(const Frame& frame, int status, std::string_view message) {
    std::string c = "<h1>Error " + std::to_string(status) + "</h1>\n<p>" + exact_or_none(message) + "</p>\n";
    c += "<p><a href=\"/\">Pending requests</a></p>\n";
    return document(frame, "Error " + std::to_string(status), c);
}

// --- the auditors' pages ---

namespace {

// A host's event line: the event's members one per line, each made visible (the line itself
// is canonical JSON: one long line), in a <details> so a table of events stays readable.
std::string line_details(const std::string& line) {
    return "<details><summary>line</summary><pre>" + json_block(line) + "</pre></details>";
}

std::string events_table(const std::vector<store::StoredAuditEvent>& events, std::string_view caption) {
    std::string out = "<table class=\"events\">\n<caption>" + html_escape(caption) +
                      "</caption>\n<thead><tr><th scope=\"col\">Time</th><th scope=\"col\">Host</th>"
                      "<th scope=\"col\">Seq</th><th scope=\"col\">Type</th><th scope=\"col\">User</th>"
                      "<th scope=\"col\">Request</th><th scope=\"col\">Event</th></tr></thead>\n<tbody>\n";
    for (const auto& stored : events) {
        const store::AuditEvent& e = stored.event;
        out += "<tr><td>" + exact_or_none(e.time) + "</td><td>" + exact_text(stored.host) + "</td><td>" +
               std::to_string(e.seq) + "</td><td>" + exact_or_none(e.type) + "</td><td>" + exact_or_none(e.user) +
               "</td><td>" + exact_or_none(e.request_id) + "</td><td>" + line_details(e.line) + "</td></tr>\n";
    }
    return out + "</tbody>\n</table>\n";
}

std::string review_link(const store::BreakGlassReview& r) {
    return "<a href=\"" + html_escape(review_path(r.host, r.event_id)) + "\">" + exact_text(r.event_id) + "</a>";
}

std::string text_input(std::string_view id, std::string_view label, const std::string& value,
                       std::string_view placeholder = "") {
    std::string out = "<p><label for=\"" + std::string(id) + "\">" + std::string(label) + "</label><br>\n<input id=\"" +
                      std::string(id) + "\" name=\"" + std::string(id) + "\" value=\"" + html_escape(value) + "\"";
    if (!placeholder.empty()) out += " placeholder=\"" + std::string(placeholder) + "\"";
    return out + "></p>\n";
}

std::string duration_text(std::int64_t seconds) {
    if (seconds < 0) return "-";
    if (seconds < 60) return std::to_string(seconds) + " s";
    const std::int64_t days = seconds / 86400;
    if (days > 0) return std::to_string(days) + " d " + std::to_string((seconds % 86400) / 3600) + " h";
    return format_time_left(seconds);
}

// The shipping backlog as the host's shipper reported it with its last batch
// (store::shipping_backlog): "unknown" when that batch did not report it (with when a batch
// last did), never 0 for a host that does not say.
std::string backlog_cell(const store::AuditChain& chain) {
    const std::optional<std::int64_t> backlog = store::shipping_backlog(chain);
    if (!backlog)
        return chain.reported_at > 0 ? "unknown (last reported " + time_element(chain.reported_at) + ")"
                                     : std::string("unknown");
    const std::string events = text::plural(static_cast<std::uint64_t>(*backlog), "event", "events");
    return (*backlog > 0 ? "<strong>" + events + "</strong>" : events) + " (reported " +
           time_element(chain.reported_at) + ")";
}

} // namespace

std::string review_path(std::string_view host, std::string_view event_id) {
    return "/audit/reviews/" + browser::url_encode(host) + "/" + browser::url_encode(event_id);
}

std::string audit_hosts(const Frame& frame, const std::vector<store::AuditHostStatus>& hosts, std::int64_t now,
                        const std::optional<std::string>& next) {
    std::string c = "<h1>Audit store</h1>\n<p><a href=\"/audit/events\">Search events</a> | "
                    "<a href=\"/audit/reviews\">Break-glass reviews</a> | "
                    "<a href=\"/audit/report\">Evidence report</a></p>\n";
    if (hosts.empty()) {
        c += "<p>No host has shipped events yet.</p>\n";
    } else {
        c += "<table class=\"hosts\">\n<caption>Each host's events, by host name</caption>\n<thead><tr>"
             "<th scope=\"col\">Host</th><th scope=\"col\">Last event</th><th scope=\"col\">Last seq</th>"
             "<th scope=\"col\">Events</th><th scope=\"col\">Chain</th><th scope=\"col\">Last batch received</th>"
             "<th scope=\"col\">Silent for</th><th scope=\"col\">Not yet shipped</th>"
             "<th scope=\"col\">Open break-glass reviews</th></tr></thead>\n<tbody>\n";
        for (const auto& h : hosts) {
            const store::AuditChain& chain = h.chain;
            const std::string state =
                chain.broken ? "<strong class=\"broken\">broken</strong>: " + exact_or_none(chain.problem) + " (seq " +
                                   std::to_string(chain.problem_seq) + ", seen " + time_element(chain.problem_at) + ")"
                             : std::string("ok");
            const std::string host_search = "/audit/events?host=" + browser::url_encode(chain.host);
            c += std::string("<tr") + (chain.broken ? " class=\"marked\"" : "") + "><td><a href=\"" +
                 html_escape(host_search) + "\">" + exact_text(chain.host) + "</a></td><td>" +
                 exact_or_none(h.last_event_time) + "</td><td>" + std::to_string(chain.last_seq) + "</td><td>" +
                 std::to_string(chain.events) + "</td><td>" + state + "</td><td>" + time_element(chain.last_seen) +
                 "</td><td>" + html_escape(duration_text(now - chain.last_seen)) + "</td><td>" + backlog_cell(chain) +
                 "</td><td>" + std::to_string(h.open_reviews) + "</td></tr>\n";
        }
        c += "</tbody>\n</table>\n";
    }
    if (next) c += "<p><a href=\"" + html_escape(*next) + "\">More hosts</a></p>\n";
    return document(frame, "Audit store", c);
}

std::string audit_events(const Frame& frame, const EventSearchForm& form,
                         const std::vector<store::StoredAuditEvent>& events, const std::optional<std::string>& next) {
    std::string c = "<h1>Search host events</h1>\n<form method=\"get\" action=\"/audit/events\" class=\"search\">\n";
    c += text_input("host", "Host", form.host);
    c += text_input("user", "User", form.user);
    c += text_input("type", "Type", form.type, "access.break_glass");
    c += text_input("from", "From (UTC, inclusive)", form.from, "2026-11-24 or 2026-11-24T03:05:00Z");
    c += text_input("to", "To (UTC, exclusive)", form.to, "2026-11-25");
    c += std::string("<p><label for=\"order\">Order</label><br>\n<select id=\"order\" name=\"order\">"
                     "<option value=\"newest\"") +
         (form.oldest_first ? "" : " selected") + ">newest first</option><option value=\"oldest\"" +
         (form.oldest_first ? " selected" : "") + ">oldest first</option></select></p>\n" +
         "<p><button type=\"submit\">Search</button></p>\n</form>\n";
    if (events.empty())
        c += "<p>No event matches.</p>\n";
    else
        c += events_table(events, text::plural(events.size(), "event", "events") + ", in arrival order, " +
                                      (form.oldest_first ? "oldest first" : "newest first"));
    if (next) c += "<p><a href=\"" + html_escape(*next) + "\">More events</a></p>\n";
    return document(frame, "Search host events", c);
}

std::string audit_report_form(const Frame& frame, const ReportForm& form, std::string_view message) {
    std::string c = "<h1>Evidence report</h1>\n";
    if (!message.empty()) c += "<p class=\"flash\" role=\"alert\">" + exact_text(message) + "</p>\n";
    c += "<p>For a period of at most a year: every privileged action with its requester, approvers and "
         "outcome, every break-glass use and its review, the exceptions and each host's chain. A large "
         "period takes a while; one report is made at a time.</p>\n"
         "<form method=\"get\" action=\"/audit/report\" class=\"search\">\n";
    c += text_input("from", "From (a date is its start, UTC)", form.from, "2026-11-01");
    c += text_input("to", "To (a date is its end, UTC)", form.to, "2026-11-30");
    c += text_input("hosts", "Hosts (a pattern: * any, ? one character)", form.hosts, "*");
    c += "<p><label for=\"format\">Format</label><br>\n<select id=\"format\" name=\"format\">";
    for (const char* f : {"html", "pdf", "csv", "json"})
        c += std::string("<option value=\"") + f + "\"" + (form.format == f ? " selected" : "") + ">" + f + "</option>";
    c += "</select></p>\n<p><button type=\"submit\">Make the report</button></p>\n</form>\n";
    return document(frame, "Evidence report", c);
}

std::string audit_reviews(const Frame& frame, const std::optional<std::vector<store::BreakGlassReview>>& open,
                          const std::optional<std::vector<store::BreakGlassReview>>& closed, std::int64_t now,
                          const std::optional<std::string>& next_open, const std::optional<std::string>& next_closed) {
    std::string c = "<h1>Break-glass reviews</h1>\n";
    if (open) {
        c += "<section aria-labelledby=\"open\">\n<h2 id=\"open\">Open, the first due first</h2>\n";
        if (open->empty()) {
            c += "<p>No break-glass use waits for review.</p>\n";
        } else {
            c += "<table class=\"reviews\">\n<thead><tr><th scope=\"col\">Event</th><th scope=\"col\">Host</th>"
                 "<th scope=\"col\">User</th><th scope=\"col\">When</th><th scope=\"col\">Due</th>"
                 "<th scope=\"col\">State</th></tr></thead>\n<tbody>\n";
            for (const auto& r : *open) {
                const bool overdue = r.due_at <= now;
                c += std::string("<tr") + (overdue ? " class=\"marked\"" : "") + "><td>" + review_link(r) +
                     "</td><td>" + exact_text(r.host) + "</td><td>" + exact_or_none(r.user_name) + "</td><td>" +
                     exact_or_none(r.time) + "</td><td>" + time_element(r.due_at) + "</td><td>" +
                     (overdue ? std::string("<strong>overdue</strong>")
                              : "due in " + html_escape(format_time_left(r.due_at - now))) +
                     "</td></tr>\n";
            }
            c += "</tbody>\n</table>\n";
        }
        if (next_open) c += "<p><a href=\"" + html_escape(*next_open) + "\">More open items</a></p>\n";
        c += "</section>\n";
    }
    if (closed) {
        c += "<section aria-labelledby=\"closed\">\n<h2 id=\"closed\">Closed, the last closed first</h2>\n";
        if (closed->empty()) {
            c += "<p>None closed yet.</p>\n";
        } else {
            c += "<table class=\"reviews\">\n<thead><tr><th scope=\"col\">Event</th><th scope=\"col\">Host</th>"
                 "<th scope=\"col\">User</th><th scope=\"col\">When</th><th scope=\"col\">Reviewer</th>"
                 "<th scope=\"col\">Closed</th><th scope=\"col\">Note</th></tr></thead>\n<tbody>\n";
            for (const auto& r : *closed)
                c += "<tr><td>" + review_link(r) + "</td><td>" + exact_text(r.host) + "</td><td>" +
                     exact_or_none(r.user_name) + "</td><td>" + exact_or_none(r.time) + "</td><td>" +
                     exact_or_none(r.reviewer) + "</td><td>" + time_element(r.closed_at) + "</td><td>" +
                     exact_or_none(r.note) + "</td></tr>\n";
            c += "</tbody>\n</table>\n";
        }
        if (next_closed) c += "<p><a href=\"" + html_escape(*next_closed) + "\">Older closed items</a></p>\n";
        c += "</section>\n";
    }
    return document(frame, "Break-glass reviews", c);
}

std::string audit_review(const Frame& frame, const ReviewDetail& d, std::int64_t now) {
    const store::BreakGlassReview& r = d.review;
    std::string c = "<h1>Break-glass use by " + exact_or_none(r.user_name) + " on " + exact_text(r.host) + "</h1>\n";
    c += "<table class=\"facts\">\n<caption>Review</caption>\n<tbody>\n";
    c += row("Event", exact_text(r.event_id));
    c += row("When", exact_or_none(r.time));
    c += row("User", exact_or_none(r.user_name));
    c += row("Opened", time_element(r.opened_at));
    c += row("Due", time_element(r.due_at) + (!r.closed && r.due_at <= now ? " <strong>overdue</strong>" : ""));
    c += row("Status", r.closed ? std::string("<strong>closed</strong>") : std::string("<strong>open</strong>"));
    if (r.closed) {
        c += row("Reviewer", exact_or_none(r.reviewer));
        c += row("Signed in as", exact_or_none(r.reviewer_identity));
        c += row("Closed", time_element(r.closed_at));
        c += row("Note", exact_or_none(r.note));
    }
    c += "</tbody>\n</table>\n";

    c += "<section aria-labelledby=\"event\">\n<h2 id=\"event\">The break-glass event</h2>\n";
    if (d.event) {
        const json parsed = json::parse(d.event->event.line, nullptr, false);
        const json& e = parsed.is_object() ? parsed : json::object();
        c += "<table class=\"facts\">\n<tbody>\n";
        c += row("Reason", host_member(e, {"break_glass_reason"}));
        c += row("Command", "<code>" + host_member(e, {"command"}) + "</code>");
        c += row("Run as", host_member(e, {"runas"}));
        c += row("Login user", e.contains("login_user") ? host_member(e, {"login_user"}) : k_none);
        c += row("Kind", exact_member(e, {"kind"}));
        c += row("Seq", std::to_string(d.event->event.seq));
        c += row("Received", time_element(d.event->received_at));
        c += "</tbody>\n</table>\n<pre>" + json_block(d.event->event.line) + "</pre>\n";
    } else {
        c += "<p>" + k_missing + " The event is not in the store.</p>\n";
    }
    c += "</section>\n";

    c += "<section aria-labelledby=\"during\">\n<h2 id=\"during\">What the user did on the host afterwards</h2>\n<p>" +
         exact_text(d.window) + "</p>\n";
    if (d.during.empty())
        c += "<p>No event of the user in that window.</p>\n";
    else
        c += events_table(d.during, text::plural(d.during.size(), "event", "events") + ", oldest first");
    if (d.during_cut)
        c += "<p>More events follow than this page shows: <a href=\"" +
             html_escape("/audit/events?order=oldest&host=" + browser::url_encode(r.host) +
                         "&user=" + browser::url_encode(r.user_name) + "&from=" + browser::url_encode(r.time)) +
             "\">search them</a>.</p>\n";
    c += "</section>\n";

    if (!r.closed) {
        c += "<section aria-labelledby=\"close\">\n<h2 id=\"close\">Close the review</h2>\n";
        if (d.may_close && frame.viewer != nullptr)
            c += "<form method=\"post\" action=\"" + html_escape(review_path(r.host, r.event_id)) +
                 "/close\" class=\"close-review\">\n" + csrf_field(*frame.viewer) +
                 "\n<p><label for=\"note\">What you checked and found (required)</label><br>\n"
                 "<textarea id=\"note\" name=\"note\" rows=\"4\" cols=\"60\" maxlength=\"4000\" required>"
                 "</textarea></p>\n<p><button type=\"submit\">Close the review</button></p>\n</form>\n";
        else
            c += "<p class=\"why-not\">You cannot close this review: " + exact_or_none(d.why_not) + "</p>\n";
        c += "</section>\n";
    }
    c += "<p><a href=\"/audit/reviews\">All reviews</a></p>\n";
    return document(frame, "Break-glass review", c);
}

std::string review_result(const Frame& frame, std::string_view host, std::string_view event_id, bool succeeded,
                          std::string_view message) {
    std::string c = succeeded ? "<h1>Done</h1>\n" : "<h1>Not done</h1>\n";
    c += "<p class=\"" + std::string(succeeded ? "flash" : "flash failed") + "\" role=\"status\">" +
         exact_or_none(message) + "</p>\n";
    c += "<p><a href=\"" + html_escape(review_path(host, event_id)) +
         "\">Back to the review</a> | "
         "<a href=\"/audit/reviews\">All reviews</a></p>\n";
    return document(frame, succeeded ? "Done" : "Not done", c);
}

std::string_view stylesheet() noexcept {
    return R"css(body { font-family: system-ui, sans-serif; margin: 0; color: #1a1a1a; background: #fff; line-height: 1.4; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 1em; padding: 0.5em 1em; background: #1f3a5f; color: #fff; }
header a { color: #fff; }
header .site { font-weight: bold; margin: 0; }
header nav ul { list-style: none; display: flex; gap: 1em; margin: 0; padding: 0; }
header .viewer { margin: 0 0 0 auto; }
header form { margin: 0; }
main { padding: 1em; max-width: 80em; }
table { border-collapse: collapse; margin: 0 0 1.5em 0; }
caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th[scope="row"] { background: #f2f2f2; white-space: nowrap; }
thead th { background: #e6e6e6; }
code, pre { font-family: ui-monospace, monospace; white-space: pre-wrap; word-break: break-all; }
.missing { color: #a00; font-style: italic; }
.none { color: #666; font-style: italic; }
.warning { background: #fff3cd; border: 2px solid #b8860b; padding: 0.2em 0.8em; margin-bottom: 1em; }
tr.warning { border: 2px solid #b8860b; }
tr.marked { background: #fde2e2; }
.why-not { color: #555; }
.flash { background: #e7f3e7; border: 1px solid #3a7d3a; padding: 0.5em; }
.flash.failed { background: #fde2e2; border-color: #a00; }
form.approve, form.deny { display: inline-block; vertical-align: top; margin-right: 2em; }
button, a.button { font: inherit; padding: 0.3em 1em; }
:focus { outline: 3px solid #1f6feb; outline-offset: 2px; }
)css";
}

} // namespace jitgate::server::web::pages
