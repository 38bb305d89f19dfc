// server/report/render.cpp — report::render: the Report as JSON, CSV, HTML or PDF. The field
// names of the JSON and the CSV header are documented in docs/server.md ("The evidence
// report"); change them only with that text, as auditors' scripts read them.
#include "server/report/report.hpp"

#include "server/report/weasyprint.hpp"
#include "server/web/pages.hpp"

#include <jitgate/error.hpp>

#include <nlohmann/json.hpp>

namespace jitgate::server::report {

namespace {

using Json = nlohmann::ordered_json;

Json optional_int(const std::optional<std::int64_t>& v) {
    return v ? Json(*v) : Json(nullptr);
}

std::string time_or_empty(std::int64_t unix_s) {
    return unix_s > 0 ? rfc3339(unix_s) : std::string();
}

std::vector<std::string> approver_names(const Action& a) {
    std::vector<std::string> out;
    for (const ApprovalRecord& p : a.approvals) out.push_back(p.approver);
    return out;
}

Json action_json(const Action& a) {
    Json approvals = Json::array();
    for (const ApprovalRecord& p : a.approvals)
        approvals.push_back({{"approver", p.approver},
                             {"identity", p.identity},
                             {"source_address", p.source_address},
                             {"via", p.via},
                             {"comment", p.comment},
                             {"at", time_or_empty(p.at)}});
    return Json{{"host", a.host},
                {"decision", a.decision},
                {"outcome", a.outcome},
                {"request_id", a.request_id},
                {"grant_id", a.grant_id},
                {"kind", a.kind},
                {"requester", a.requester},
                {"user", a.user},
                {"login_user", a.login_user},
                {"command", a.command},
                {"argv", a.argv},
                {"runas", a.runas},
                {"remote_host", a.remote_host},
                {"rule", a.rule},
                {"reason", a.reason},
                {"ticket", a.ticket},
                {"break_glass_reason", a.break_glass_reason},
                {"message", a.message},
                {"requested_time", a.requested_time},
                {"decided_time", a.decided_time},
                {"decision_event_id", a.decision_event_id},
                {"request_found", a.request_found},
                {"server_status", a.server_status},
                {"filed_at", time_or_empty(a.filed_at)},
                {"server_decided_at", time_or_empty(a.server_decided_at)},
                {"decided_by", a.decided_by},
                {"decision_reason", a.decision_reason},
                {"approvals", approvals},
                {"delay_s", optional_int(a.delay_s)},
                {"result_type", a.result_type},
                {"action_time", a.action_time},
                {"end_time", a.end_time},
                {"status_type", a.status_type},
                {"exit_status", optional_int(a.exit_status)},
                {"signal", optional_int(a.signal)},
                {"duration_ms", optional_int(a.duration_ms)},
                {"self_approved", a.self_approved},
                {"approval_source", a.approval_source},
                {"service_grant_id", a.service_grant_id},
                {"service_check", a.service_check},
                {"service_mismatch", a.service_mismatch}};
}

std::string to_json(const Report& r) {
    const Summary& s = r.summary;
    Json by = Json::array();
    for (const Count& c : s.by_host_rule) by.push_back({{"host", c.host}, {"rule", c.rule}, {"actions", c.actions}});
    Json actions = Json::array();
    for (const Action& a : r.actions) actions.push_back(action_json(a));
    Json glass = Json::array();
    for (const BreakGlassUse& b : r.break_glass)
        glass.push_back({{"host", b.host},
                         {"event_id", b.event_id},
                         {"time", b.time},
                         {"user", b.user},
                         {"reason", b.reason},
                         {"command", r.actions[b.action].command},
                         {"argv", r.actions[b.action].argv},
                         {"status_type", r.actions[b.action].status_type},
                         {"exit_status", optional_int(r.actions[b.action].exit_status)},
                         {"review_status", b.review_status},
                         {"reviewer", b.reviewer},
                         {"reviewer_identity", b.reviewer_identity},
                         {"note", b.note},
                         {"review_due_at", time_or_empty(b.review_due_at)},
                         {"review_closed_at", time_or_empty(b.review_closed_at)}});
    Json exceptions = Json::array();
    for (const Exception& e : r.exceptions)
        exceptions.push_back({{"kind", e.kind},
                              {"host", e.host},
                              {"time", e.time},
                              {"request_id", e.request_id},
                              {"user", e.user},
                              {"detail", e.detail},
                              {"event_id", e.event_id},
                              {"due", e.due}});
    Json hosts = Json::array();
    for (const HostChainCheck& h : r.hosts)
        hosts.push_back({{"host", h.host},
                         {"events_in_period", h.events_in_period},
                         {"first_seq", h.first_seq},
                         {"first_hash", h.first_hash},
                         {"first_time", h.first_time},
                         {"last_seq", h.last_seq},
                         {"last_hash", h.last_hash},
                         {"last_time", h.last_time},
                         {"before_seq", h.before_seq},
                         {"before_hash", h.before_hash},
                         {"verified_events", h.verified_events},
                         {"verified", h.verified},
                         {"problems", h.problems},
                         {"stored_events", h.stored_events},
                         {"overall_last_seq", h.overall_last_seq},
                         {"overall_last_hash", h.overall_last_hash},
                         {"broken", h.broken},
                         {"problem", h.problem},
                         {"problem_seq", h.problem_seq},
                         {"problem_at", time_or_empty(h.problem_at)},
                         {"last_seen", time_or_empty(h.last_seen)},
                         {"silent", h.silent},
                         {"pruned_through_seq", h.pruned_through_seq},
                         {"pruned_through_hash", h.pruned_through_hash}});
    const Json out{{"report", "jitgate evidence report"},
                   {"format_version", 1},
                   {"from", rfc3339(r.options.from)},
                   {"to", rfc3339(r.options.to)},
                   {"hosts_pattern", r.options.hosts},
                   {"silent_after_s", r.options.silent_after},
                   {"generated_at", r.generated_at},
                   {"summary",
                    {{"actions", s.actions},
                     {"approved", s.approved},
                     {"allowed_by_rule", s.allowed_by_rule},
                     {"auto_approved", s.auto_approved},
                     {"allowed_by_grant", s.allowed_by_grant},
                     {"denials", s.denials},
                     {"timeouts", s.timeouts},
                     {"cancellations", s.cancellations},
                     {"pending", s.pending},
                     {"break_glass", s.break_glass},
                     {"exceptions", s.exceptions},
                     {"host_events", s.host_events},
                     {"hosts", s.hosts},
                     {"delay_median_s", optional_int(s.delay_median_s)},
                     {"delay_p95_s", optional_int(s.delay_p95_s)},
                     {"by_host_rule", by}}},
                   {"actions", actions},
                   {"break_glass", glass},
                   {"exceptions", exceptions},
                   {"hosts", hosts}};
    // Stored text is valid UTF-8 (both stores refuse anything else); replace is a net.
    return out.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

// --- CSV ---

// SECURITY NOTE: a cell a spreadsheet would read as a formula (=, +, -, @, tab, CR first) gets
// a leading apostrophe, so a hostile argv or reason cannot run as one when an auditor opens
// the file; every cell is quoted (RFC 4180), quotes doubled.
std::string csv_cell(std::string_view text) {
    std::string out = "\"";
    if (!text.empty() &&
        (text[0] == '=' || text[0] == '+' || text[0] == '-' || text[0] == '@' || text[0] == '\t' || text[0] == '\r'))
        out += '\'';
    for (const char c : text) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + '"';
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += sep;
        out += items[i];
    }
    return out;
}

std::string int_text(const std::optional<std::int64_t>& v) {
    return v ? std::to_string(*v) : std::string();
}

constexpr const char* k_csv_columns[] = {
    "host",
    "decided_time",
    "decision",
    "outcome",
    "request_id",
    "grant_id",
    "kind",
    "requester",
    "user",
    "login_user",
    "command",
    "argv",
    "runas",
    "rule",
    "reason",
    "ticket",
    "break_glass_reason",
    "requested_time",
    "filed_at",
    "approved_at",
    "approvers",
    "approver_identities",
    "approver_sources",
    "delay_s",
    "result_type",
    "action_time",
    "end_time",
    "status_type",
    "exit_status",
    "signal",
    "duration_ms",
    "server_status",
    "decided_by",
    "decision_reason",
    "self_approved",
    "approval_source",
    "service_grant_id",
    "service_check",
    "service_mismatch",
};

std::string to_csv(const Report& r) {
    std::string out;
    for (std::size_t i = 0; i < std::size(k_csv_columns); ++i) {
        if (i > 0) out += ',';
        out += k_csv_columns[i];
    }
    out += "\r\n";
    for (const Action& a : r.actions) {
        std::vector<std::string> identities;
        std::vector<std::string> sources;
        for (const ApprovalRecord& p : a.approvals) {
            identities.push_back(p.identity);
            sources.push_back(p.source_address + (p.via.empty() ? "" : " via " + p.via));
        }
        const std::vector<std::string> cells{
            a.host,
            a.decided_time,
            a.decision,
            a.outcome,
            a.request_id,
            a.grant_id,
            a.kind,
            a.requester,
            a.user,
            a.login_user,
            a.command,
            nlohmann::json(a.argv).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
            a.runas,
            a.rule,
            a.reason,
            a.ticket,
            a.break_glass_reason,
            a.requested_time,
            time_or_empty(a.filed_at),
            a.server_status == "approved" ? time_or_empty(a.server_decided_at) : std::string(),
            join(approver_names(a), ";"),
            join(identities, ";"),
            join(sources, ";"),
            int_text(a.delay_s),
            a.result_type,
            a.action_time,
            a.end_time,
            a.status_type,
            int_text(a.exit_status),
            int_text(a.signal),
            int_text(a.duration_ms),
            a.server_status,
            a.decided_by,
            a.decision_reason,
            a.self_approved ? "true" : "false",
            a.approval_source,
            a.service_grant_id,
            a.service_check,
            join(a.service_mismatch, ";"),
        };
        for (std::size_t i = 0; i < cells.size(); ++i) {
            if (i > 0) out += ',';
            out += csv_cell(cells[i]);
        }
        out += "\r\n";
    }
    return out;
}

// --- HTML ---

// Host text (escaped by the host already, docs/audit.md "Escaping of user text") and the
// server's exact text each through the web UI's helper for it.
std::string h(std::string_view text) {
    return web::pages::host_text(text);
}
std::string x(std::string_view text) {
    return web::pages::exact_text(text);
}

std::string argv_text(const Action& a) {
    std::string out;
    for (const std::string& arg : a.argv) {
        if (!out.empty()) out += ' ';
        out += arg.empty() || arg.find(' ') != std::string::npos ? "'" + arg + "'" : arg;
    }
    return out.empty() ? a.command : out;
}

std::string result_text(const Action& a) {
    if (a.result_type == "session")
        return "session " + a.action_time + (a.end_time.empty() ? " (still open)" : " – " + a.end_time) +
               (a.duration_ms ? ", " + std::to_string(*a.duration_ms) + " ms" : "");
    if (a.result_type != "command")
        return a.decision == "approved" || a.decision.rfind("allowed", 0) == 0 || a.decision == "break_glass"
                   ? "no command.finished in the period"
                   : "";
    std::string out = a.status_type;
    if (a.exit_status) out += " " + std::to_string(*a.exit_status);
    if (a.signal) out += " " + std::to_string(*a.signal);
    if (a.duration_ms) out += ", " + std::to_string(*a.duration_ms) + " ms";
    return out + " at " + a.action_time;
}

std::string approvals_html(const Action& a) {
    std::string out;
    for (const ApprovalRecord& p : a.approvals) {
        if (!out.empty()) out += "<br>";
        out += "<b>" + x(p.approver) + "</b>";
        if (!p.identity.empty()) out += " (" + x(p.identity) + ")";
        if (!p.source_address.empty()) out += " from " + x(p.source_address);
        if (!p.via.empty()) out += " via " + x(p.via);
        if (p.at > 0) out += " at " + rfc3339(p.at);
        if (!p.comment.empty()) out += ": “" + x(p.comment) + "”";
    }
    if (a.self_approved) out += " <span class=\"bad\">SELF-APPROVED</span>";
    return out;
}

constexpr const char* k_css = R"(
@page { size: A4 landscape; margin: 12mm; @bottom-right { content: "page " counter(page) " of " counter(pages); font-size: 8pt; } }
body { font-family: "DejaVu Sans", sans-serif; font-size: 9pt; color: #000; }
h1 { font-size: 16pt; margin: 0 0 4pt 0; }
h2 { font-size: 12pt; margin: 14pt 0 4pt 0; border-bottom: 1px solid #444; page-break-after: avoid; }
table { border-collapse: collapse; width: 100%; margin-bottom: 8pt; }
th, td { border: 1px solid #888; padding: 2pt 3pt; vertical-align: top; text-align: left; overflow-wrap: break-word; }
th { background: #e4e4e4; }
tr { page-break-inside: avoid; }
.num { text-align: right; }
.mono { font-family: "DejaVu Sans Mono", monospace; font-size: 7.5pt; }
.hash { font-family: "DejaVu Sans Mono", monospace; font-size: 7pt; word-break: break-all; }
.id { white-space: nowrap; }
.actions { font-size: 7pt; }
.bad { color: #a00; font-weight: bold; }
.ok { color: #060; font-weight: bold; }
.meta td { border: none; padding: 0 8pt 0 0; }
)";

// Names, ids and times are never broken across lines (a broken "R-APPROVED01" reads as two).
std::string nb(const std::string& escaped) {
    return "<span class=\"id\">" + escaped + "</span>";
}

std::string row(std::initializer_list<std::string> cells) {
    std::string out = "<tr>";
    for (const std::string& c : cells) out += "<td>" + c + "</td>";
    return out + "</tr>\n";
}

std::string num(std::int64_t v) {
    return std::to_string(v);
}

std::string opt(const std::optional<std::int64_t>& v, std::string_view unit) {
    return v ? std::to_string(*v) + std::string(unit) : "–";
}

std::string to_html(const Report& r) {
    const Summary& s = r.summary;
    std::string o;
    o += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<title>jitgate evidence report " +
         rfc3339(r.options.from) + " – " + rfc3339(r.options.to) + "</title><style>" + k_css +
         "</style></head><body>\n";
    o += "<h1>jitgate evidence report</h1>\n<table class=\"meta\">";
    o += row({"Period", rfc3339(r.options.from) + " to " + rfc3339(r.options.to) + " (end excluded)"});
    o += row({"Hosts", h(r.options.hosts) + " (" + num(s.hosts) + " hosts, " + num(s.host_events) + " events)"});
    o += row({"Generated", r.generated_at});
    o += "</table>\n";

    o += "<h2>Summary</h2>\n<table><tr><th>Actions</th><th>Approved</th><th>Auto-approved</th><th>Allowed by "
         "rule</th><th>Allowed by grant</th><th>Denials</th><th>Timeouts</th><th>Cancelled</th><th>No decision</th>"
         "<th>Break-glass</th><th>Exceptions</th><th>Delay median</th><th>Delay p95</th></tr>\n";
    o += row({num(s.actions), num(s.approved), num(s.auto_approved), num(s.allowed_by_rule), num(s.allowed_by_grant),
              num(s.denials), num(s.timeouts), num(s.cancellations), num(s.pending), num(s.break_glass),
              num(s.exceptions), opt(s.delay_median_s, " s"), opt(s.delay_p95_s, " s")});
    o += "</table>\n<table><tr><th>Host</th><th>Rule</th><th>Actions</th></tr>\n";
    for (const Count& c : s.by_host_rule)
        o += row({nb(h(c.host)), c.rule.empty() ? "(none)" : h(c.rule), num(c.actions)});
    o += "</table>\n";

    o += "<h2>Exceptions</h2>\n";
    if (r.exceptions.empty())
        o += "<p class=\"ok\">None.</p>\n";
    else {
        o += "<table><tr><th>Kind</th><th>Host</th><th>Time</th><th>Request</th><th>User</th><th>Detail</th></tr>\n";
        for (const Exception& e : r.exceptions)
            o += row({"<span class=\"bad id\">" + h(e.kind) + "</span>", nb(h(e.host)), nb(h(e.time)),
                      nb(h(e.request_id)), h(e.user), h(e.detail)});
        o += "</table>\n";
    }

    o += "<h2>Break-glass uses</h2>\n";
    if (r.break_glass.empty())
        o += "<p>None.</p>\n";
    else {
        o += "<table><tr><th>Host</th><th>Time</th><th>User</th><th>Command</th><th>Reason</th><th>Result</th>"
             "<th>Review</th></tr>\n";
        for (const BreakGlassUse& b : r.break_glass) {
            const Action& a = r.actions[b.action];
            std::string review = b.review_status == "none"
                                     ? "<span class=\"bad\">no review item</span>"
                                     : (b.review_status == "closed"
                                            ? "closed by <b>" + x(b.reviewer) + "</b> at " +
                                                  time_or_empty(b.review_closed_at) + ": “" + x(b.note) + "”"
                                            : "<span class=\"bad\">open</span>, due " + time_or_empty(b.review_due_at));
            o += row({nb(h(b.host)), nb(h(b.time)), h(b.user), "<span class=\"mono\">" + h(argv_text(a)) + "</span>",
                      h(b.reason), h(result_text(a)), review});
        }
        o += "</table>\n";
    }

    o += "<h2>Privileged actions</h2>\n<table "
         "class=\"actions\"><tr><th>Host</th><th>Decided</th><th>Decision</th><th>Requester</th>"
         "<th>Command</th><th>Rule</th><th>Reason / ticket</th><th>Request</th><th>Approvers</th><th>Delay</th>"
         "<th>Result</th></tr>\n";
    for (const Action& a : r.actions) {
        std::string requester = h(a.requester);
        if (a.user != a.requester && !a.user.empty()) requester += " as " + h(a.user);
        if (!a.login_user.empty() && a.login_user != a.requester) requester += " (login " + h(a.login_user) + ")";
        std::string reason = h(a.reason.empty() ? a.break_glass_reason : a.reason);
        if (!a.ticket.empty()) reason += "<br>ticket " + nb(h(a.ticket));
        std::string request = nb(h(a.request_id));
        if (!a.request_id.empty())
            request += a.request_found
                           ? "<br>filed " + nb(time_or_empty(a.filed_at)) + "<br>" + h(a.server_status) +
                                 (a.server_decided_at > 0 ? " " + nb(time_or_empty(a.server_decided_at)) : "")
                           : "<br><i>not at the service</i>";
        if (!a.decided_by.empty()) request += "<br>by " + x(a.decided_by) + ": " + x(a.decision_reason);
        if (a.approval_source == "local") request += "<br>approved on the host";
        if (a.service_check == "ok")
            request += "<br><span class=\"ok\">matches the service</span>";
        else if (a.service_check == "not_approved_at_service")
            request += "<br><span class=\"bad\">NOT APPROVED AT THE SERVICE</span>";
        else if (a.service_check == "request_mismatch")
            request +=
                "<br><span class=\"bad\">DIFFERS FROM THE SERVICE: " + h(join(a.service_mismatch, ", ")) + "</span>";
        o += row({nb(h(a.host)), h(a.decided_time),
                  h(a.decision) + (a.outcome.empty() || a.outcome == a.decision ? "" : " (" + h(a.outcome) + ")"),
                  requester,
                  "<span class=\"mono\">" + h(argv_text(a)) + (a.runas.empty() ? "" : " → " + h(a.runas)) + "</span>",
                  h(a.rule), reason, request, approvals_html(a), opt(a.delay_s, " s"), h(result_text(a))});
    }
    o += "</table>\n";

    o += "<h2>Hosts and their chains</h2>\n<p>Each host's events of the period were re-verified from the stored "
         "lines: every line's SHA-256 over its canonical form, every prev_hash against the hash before it, seq "
         "without gaps, from the event before the period's first (“before”) to the period's last. See "
         "docs/server.md, “The evidence report”, to check the figures yourself.</p>\n"
         "<table><tr><th>Host</th><th>Events</th><th>Before (seq, hash)</th><th>First (seq, hash)</th>"
         "<th>Last (seq, hash)</th><th>Verified</th><th>Overall (store)</th><th>Last seen</th></tr>\n";
    for (const HostChainCheck& c : r.hosts) {
        std::string verified;
        if (c.events_in_period == 0)
            verified = "no events in the period";
        else if (c.verified)
            verified = "<span class=\"ok\">OK</span> (" + num(c.verified_events) + " lines)";
        else {
            verified = "<span class=\"bad\">FAILED</span>";
            for (const std::string& p : c.problems) verified += "<br>" + h(p);
        }
        const std::string overall =
            num(c.stored_events) + " events, last seq " + num(c.overall_last_seq) + "<br><span class=\"hash\">" +
            h(c.overall_last_hash) + "</span><br>" +
            (c.broken ? "<span class=\"bad\">broken at seq " + num(c.problem_seq) + ": " + h(c.problem) + "</span>"
                      : "<span class=\"ok\">intact</span>") +
            (c.pruned_through_seq > 0
                 ? "<br>starts after the archived part: pruned through seq " + num(c.pruned_through_seq) +
                       ", its hash <span class=\"hash\">" + h(c.pruned_through_hash) + "</span>"
                 : "");
        o += row(
            {h(c.host), num(c.events_in_period),
             c.before_seq > 0 ? num(c.before_seq) + "<br><span class=\"hash\">" + h(c.before_hash) + "</span>" : "–",
             c.first_seq > 0
                 ? num(c.first_seq) + " " + h(c.first_time) + "<br><span class=\"hash\">" + h(c.first_hash) + "</span>"
                 : "–",
             c.last_seq > 0
                 ? num(c.last_seq) + " " + h(c.last_time) + "<br><span class=\"hash\">" + h(c.last_hash) + "</span>"
                 : "–",
             verified, overall, time_or_empty(c.last_seen) + (c.silent ? " <span class=\"bad\">SILENT</span>" : "")});
    }
    o += "</table>\n</body></html>\n";
    return o;
}

} // namespace

std::optional<Format> format_from_string(std::string_view text) noexcept {
    if (text == "json") return Format::json;
    if (text == "csv") return Format::csv;
    if (text == "html") return Format::html;
    if (text == "pdf") return Format::pdf;
    return std::nullopt;
}

std::string render(const Report& report, Format format) {
    switch (format) {
    case Format::json:
        return to_json(report);
    case Format::csv:
        return to_csv(report);
    case Format::html:
        return to_html(report);
    case Format::pdf:
        return html_to_pdf(to_html(report));
    }
    throw Error(ErrorCode::internal, "report", "unknown format");
}

} // namespace jitgate::server::report
