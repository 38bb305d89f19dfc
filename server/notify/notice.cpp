// server/notify/notice.cpp — notice bodies (see notice.hpp).
#include "server/notify/notice.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <ctime>

#include <nlohmann/json.hpp>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"

namespace jitgate::server::notify {

namespace {

using nlohmann::json;

constexpr EventKind k_kinds[] = {EventKind::filed,       EventKind::approval_added, EventKind::approved,
                                 EventKind::denied,      EventKind::expired,        EventKind::cancelled,
                                 EventKind::grant_signed};

// How much of each piece of user text a Slack message shows. Slack's own limits are 3,000
// characters for a section's text and 2,000 for a field; these stay well below.
constexpr std::size_t k_slack_command_max = 1000;
constexpr std::size_t k_slack_text_max = 500;
constexpr std::size_t k_slack_name_max = 200;

// A JSON text that never throws on invalid UTF-8 in a hostile string: such bytes become U+FFFD.
std::string dump(const json& value) {
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) out += separator;
        out += item;
    }
    return out;
}

// A Slack-safe list of user names.
std::string slack_names(const std::vector<std::string>& names) {
    std::vector<std::string> shown;
    shown.reserve(names.size());
    for (const auto& name : names) shown.push_back(slack_user_text(name, k_slack_name_max));
    return join(shown, ", ");
}

// The command for a code span: user text, with backticks turned into U+02CB (a look-alike
// that cannot close the span and let the rest of the command be read as formatting).
std::string slack_command(std::string_view command) {
    std::string out;
    for (const char c : slack_user_text(command, k_slack_command_max)) {
        if (c == '`')
            out += "\xCB\x8B";
        else
            out += c;
    }
    return out;
}

// The first line of the message: what happened, who, where. Every piece is escaped here.
std::string slack_headline(EventKind kind, const RequestFacts& f) {
    const std::string who = slack_user_text(f.requester, k_slack_name_max);
    const std::string host = slack_user_text(f.host, k_slack_name_max);
    const std::string what = f.kind.empty() ? std::string("access") : slack_user_text(f.kind, k_slack_name_max);
    switch (kind) {
    case EventKind::filed:
        return ":hourglass_flowing_sand: *Approval needed*: " + who + " asks for " + what + " on " + host;
    case EventKind::approval_added:
        return ":ballot_box_with_check: *Approval added*: " + who + "'s " + what + " on " + host + " (" +
               std::to_string(f.approvers.size()) + " of " + std::to_string(f.approvals_needed) +
               (f.approvers.empty() ? std::string() : ", by " + slack_names(f.approvers)) + ")";
    case EventKind::grant_signed:
        return ":key: *Grant signed*: " + who + "'s " + what + " on " + host +
               (f.grant_id.empty() ? std::string() : " (grant " + slack_user_text(f.grant_id, k_slack_name_max) + ")");
    case EventKind::approved:
        // The service's own approval names no person: its decided_by says so ("jitgate (auto: on_call)").
        if (f.approvers.empty() && !f.decided_by.empty())
            return ":white_check_mark: *Approved automatically*: " + who + "'s " + what + " on " + host + " (by " +
                   slack_user_text(f.decided_by, k_slack_name_max) + ")";
        return ":white_check_mark: *Approved*: " + who + "'s " + what + " on " + host +
               (f.approvers.empty() ? std::string() : " (by " + slack_names(f.approvers) + ")");
    case EventKind::denied:
        return ":no_entry: *Denied*: " + who + "'s " + what + " on " + host +
               (f.decided_by.empty() ? std::string() : " (by " + slack_user_text(f.decided_by, k_slack_name_max) + ")");
    case EventKind::expired:
        return ":alarm_clock: *Expired*: nobody decided " + who + "'s " + what + " on " + host + " in time";
    case EventKind::cancelled:
        return ":heavy_multiplication_x: *Cancelled*: " + who + "'s " + what + " on " + host;
    }
    return {};
}

// The notification's fallback text (shown in push notifications, where blocks are not).
std::string slack_summary(EventKind kind, const RequestFacts& f, std::string_view server_name) {
    std::string word;
    switch (kind) {
    case EventKind::filed:
        word = "Approval needed";
        break;
    case EventKind::approval_added:
        word = "Approval added";
        break;
    case EventKind::grant_signed:
        word = "Grant signed";
        break;
    case EventKind::approved:
        word = "Approved";
        break;
    case EventKind::denied:
        word = "Denied";
        break;
    case EventKind::expired:
        word = "Expired";
        break;
    case EventKind::cancelled:
        word = "Cancelled";
        break;
    }
    std::string text = "[" + slack_user_text(server_name, k_slack_name_max) + "] " + word + ": " +
                       slack_user_text(f.requester, k_slack_name_max) + " on " +
                       slack_user_text(f.host, k_slack_name_max);
    if (!f.command.empty()) text += ": " + slack_user_text(f.command, k_slack_text_max);
    text += " (" + slack_user_text(f.id, k_slack_name_max) + ")";
    return text;
}

json mrkdwn(const std::string& text) {
    return json{{"type", "mrkdwn"}, {"text", text}};
}

} // namespace

std::string_view event_type(EventKind kind) noexcept {
    switch (kind) {
    case EventKind::filed:
        return "request.filed";
    case EventKind::approval_added:
        return "request.approval_added";
    case EventKind::grant_signed:
        return "grant.signed";
    case EventKind::approved:
        return "request.approved";
    case EventKind::denied:
        return "request.denied";
    case EventKind::expired:
        return "request.expired";
    case EventKind::cancelled:
        return "request.cancelled";
    }
    return "request.filed";
}

std::optional<EventKind> event_from_type(std::string_view type) noexcept {
    for (const EventKind kind : k_kinds)
        if (event_type(kind) == type) return kind;
    return std::nullopt;
}

std::string url_encode(std::string_view text) {
    static constexpr char k_hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u == '-' || u == '.' ||
            u == '_' || u == '~') {
            out += c;
        } else {
            out += '%';
            out += k_hex[u >> 4];
            out += k_hex[u & 0x0F];
        }
    }
    return out;
}

std::string request_link(std::string_view public_url, std::string_view host, std::string_view id) {
    std::string base(public_url);
    while (!base.empty() && base.back() == '/') base.pop_back();
    return base + "/r/" + url_encode(host) + "/" + url_encode(id);
}

std::string rfc3339(std::int64_t unix_seconds) {
    const auto t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    if (::gmtime_r(&t, &tm) == nullptr) return "1970-01-01T00:00:00Z";
    char buf[32];
    const std::size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return std::string(buf, n);
}

std::string new_delivery_id() {
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof(bytes)) != 1)
        throw Error(ErrorCode::internal, "notify", "the random generator failed (RAND_bytes)");
    static constexpr char k_hex[] = "0123456789abcdef";
    std::string id;
    for (const unsigned char b : bytes) {
        id += k_hex[b >> 4];
        id += k_hex[b & 0x0F];
    }
    return id;
}

std::string json_body(EventKind kind, const RequestFacts& f, std::string_view server_name, std::string_view delivery_id,
                      std::int64_t occurred_at) {
    json request = {
        {"host", f.host},
        {"environment", f.environment},
        {"tags", f.tags},
        {"id", f.id},
        {"requester", f.requester},
        {"account", f.account},
        {"kind", f.kind},
        {"scope", f.scope},
        {"command", f.command},
        {"runas", f.runas},
        {"reason", f.reason},
        {"ticket", f.ticket},
        {"rule", f.rule},
        {"approvals_needed", f.approvals_needed},
        {"approvals", f.approvers.size()},
        {"approvers", f.approvers},
        {"decided_by", f.decided_by},
        {"decision_reason", f.decision_reason},
        {"grant_id", f.grant_id},
        {"expires_at", f.expires_at > 0 ? json(rfc3339(f.expires_at)) : json(nullptr)},
        {"link", f.link},
    };
    const json body = {
        {"type", event_type(kind)}, {"delivery_id", delivery_id},    {"occurred_at", rfc3339(occurred_at)},
        {"server", server_name},    {"request", std::move(request)},
    };
    return dump(body);
}

std::string slack_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
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
        default:
            out += c;
        }
    }
    return out;
}

std::string slack_user_text(std::string_view text, std::size_t max) {
    const std::string escaped = slack_escape(text::shown(text, max));
    std::string out;
    out.reserve(escaped.size());
    for (const char c : escaped) {
        out += c;
        // U+200B ZERO WIDTH SPACE: "@channel" stays readable but is no longer a keyword.
        if (c == '@') out += "\xE2\x80\x8B";
    }
    return out;
}

std::string slack_body(EventKind kind, const RequestFacts& f, std::string_view server_name) {
    std::string top = slack_headline(kind, f);
    if (!f.command.empty()) top += "\n`" + slack_command(f.command) + "`";

    json fields = json::array();
    const auto field = [&fields](std::string_view label, const std::string& value) {
        if (!value.empty() && fields.size() < 10) fields.push_back(mrkdwn("*" + std::string(label) + "*\n" + value));
    };
    std::string host = slack_user_text(f.host, k_slack_name_max);
    if (!f.environment.empty()) host += " (" + slack_user_text(f.environment, k_slack_name_max) + ")";
    field("Host", host);
    field("Requester", slack_user_text(f.requester, k_slack_name_max) +
                           (f.account.empty() ? std::string() : " as " + slack_user_text(f.account, k_slack_name_max)));
    field("Run as", slack_user_text(f.runas, k_slack_name_max));
    field("Scope", slack_user_text(f.scope, k_slack_name_max));
    field("Reason", slack_user_text(f.reason, k_slack_text_max));
    field("Ticket", slack_user_text(f.ticket, k_slack_name_max));
    std::string approvals = std::to_string(f.approvers.size()) + " of " + std::to_string(f.approvals_needed);
    if (!f.approvers.empty()) approvals += ": " + slack_names(f.approvers);
    field("Approvals", approvals);
    if (kind == EventKind::denied || kind == EventKind::cancelled) {
        std::string decision = slack_user_text(f.decided_by, k_slack_name_max);
        if (!f.decision_reason.empty())
            decision += (decision.empty() ? "" : ": ") + slack_user_text(f.decision_reason, k_slack_text_max);
        field(kind == EventKind::denied ? "Denied by" : "Cancelled", decision);
    }
    if (kind == EventKind::filed && f.expires_at > 0) field("Expires", rfc3339(f.expires_at));
    field("Rule", slack_user_text(f.rule, k_slack_name_max));

    json blocks = json::array();
    blocks.push_back({{"type", "section"}, {"text", mrkdwn(top)}});
    if (!fields.empty()) blocks.push_back({{"type", "section"}, {"fields", std::move(fields)}});
    std::string context = "jitgate";
    if (!server_name.empty()) context += " · " + slack_user_text(server_name, k_slack_name_max);
    context += " · request " + slack_user_text(f.id, k_slack_name_max);
    if (!f.link.empty()) {
        // The link is built by request_link() (host and id percent-encoded, so no '|' or '>'
        // of theirs can end it); escaped anyway, as Slack asks of every URL in <...>.
        context += " · <" + slack_escape(f.link) + "|open>";
        blocks.push_back({{"type", "actions"},
                          {"elements", json::array({{{"type", "button"},
                                                     {"text", {{"type", "plain_text"}, {"text", "Open request"}}},
                                                     {"url", f.link}}})}});
    }
    blocks.push_back({{"type", "context"}, {"elements", json::array({mrkdwn(context)})}});

    const json body = {
        {"text", slack_summary(kind, f, server_name)},
        {"blocks", std::move(blocks)},
        {"unfurl_links", false},
        {"unfurl_media", false},
    };
    return dump(body);
}

std::vector<Outgoing> notices_for(const std::vector<config::Webhook>& webhooks, std::string_view server_name,
                                  EventKind kind, const RequestFacts& facts, std::int64_t now) {
    std::vector<Outgoing> out;
    const std::string_view type = event_type(kind);
    for (const auto& hook : webhooks) {
        if (std::find(hook.events.begin(), hook.events.end(), type) == hook.events.end()) continue;
        if (hook.format == "json")
            out.push_back({hook.name, json_body(kind, facts, server_name, new_delivery_id(), now)});
        else if (hook.format == "slack")
            out.push_back({hook.name, slack_body(kind, facts, server_name)});
    }
    return out;
}

std::vector<Outgoing> chain_notices_for(const std::vector<config::Webhook>& webhooks, std::string_view server_name,
                                        const ChainFacts& f, std::int64_t now) {
    std::vector<Outgoing> out;
    for (const auto& hook : webhooks) {
        if (std::find(hook.events.begin(), hook.events.end(), f.type) == hook.events.end()) continue;
        if (hook.format == "json") {
            const json body = {
                {"type", f.type},
                {"delivery_id", new_delivery_id()},
                {"occurred_at", rfc3339(now)},
                {"server", server_name},
                {"chain", {{"host", f.host}, {"seq", f.seq}, {"event_id", f.event_id}, {"problem", f.problem}}},
            };
            out.push_back({hook.name, dump(body)});
        } else if (hook.format == "slack") {
            const std::string what = f.type == "audit.chain_gap"         ? " is broken (events are missing): "
                                     : f.type == "audit.chain_edited"    ? " is broken (an event was edited): "
                                     : f.type == "audit.chain_restarted" ? " started over at seq 1 (a wiped spool or "
                                                                           "a reinstalled host?): "
                                                                         : " is broken (the chain forked): ";
            const json body = {
                {"text", ":rotating_light: Audit chain of host " + slack_user_text(f.host, k_slack_name_max) + what +
                             slack_user_text(f.problem, k_slack_text_max) + " — reported by " +
                             slack_user_text(server_name, k_slack_name_max)},
                {"unfurl_links", false},
                {"unfurl_media", false},
            };
            out.push_back({hook.name, dump(body)});
        }
    }
    return out;
}

std::vector<Outgoing> break_glass_notices_for(const std::vector<config::Webhook>& webhooks,
                                              std::string_view server_name, const BreakGlassFacts& f,
                                              std::int64_t now) {
    constexpr std::string_view k_type = "break_glass.review_overdue";
    std::vector<Outgoing> out;
    for (const auto& hook : webhooks) {
        if (std::find(hook.events.begin(), hook.events.end(), k_type) == hook.events.end()) continue;
        if (hook.format == "json") {
            const json body = {
                {"type", k_type},
                {"delivery_id", new_delivery_id()},
                {"occurred_at", rfc3339(now)},
                {"server", server_name},
                {"review",
                 {{"host", f.host},
                  {"event_id", f.event_id},
                  {"user", f.user},
                  {"time", f.time},
                  {"due_at", rfc3339(f.due_at)},
                  {"link", f.link}}},
            };
            out.push_back({hook.name, dump(body)});
        } else if (hook.format == "slack") {
            const json body = {
                {"text", ":rotating_light: Break-glass use by " + slack_user_text(f.user, k_slack_name_max) +
                             " on host " + slack_user_text(f.host, k_slack_name_max) + " at " +
                             slack_user_text(f.time, k_slack_name_max) + " is not reviewed (due " + rfc3339(f.due_at) +
                             "): " + slack_user_text(f.link, k_slack_text_max) + " — reported by " +
                             slack_user_text(server_name, k_slack_name_max)},
                {"unfurl_links", false},
                {"unfurl_media", false},
            };
            out.push_back({hook.name, dump(body)});
        }
    }
    return out;
}

} // namespace jitgate::server::notify
