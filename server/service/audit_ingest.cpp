// server/service/audit_ingest.cpp — see audit_ingest.hpp.
#include "server/service/audit_ingest.hpp"

#include "lib/audit_chain.hpp"
#include "lib/strict_json.hpp"
#include "server/service/protocol.hpp"

#include <jitgate/text.hpp>

#include <cctype>
#include <cstdint>
#include <limits>

#include <nlohmann/json.hpp>

namespace jitgate::server::audit_ingest {
namespace {

using Json = nlohmann::json;

Refusal refuse(int status, std::string code, std::string message) {
    return Refusal{status, std::move(code), std::move(message)};
}

// "line 3 (seq 7, event_id …)": what names a line in a refusal; hostile text shown escaped.
std::string line_name(std::size_t number, const Json& event) {
    std::string out = "line " + std::to_string(number);
    if (!event.is_object()) return out;
    std::string inner;
    if (event.contains("seq") && event["seq"].is_number_integer()) inner = "seq " + event["seq"].dump();
    if (event.contains("event_id") && event["event_id"].is_string()) {
        if (!inner.empty()) inner += ", ";
        inner += "event_id " + text::shown(event["event_id"].get_ref<const std::string&>(), 80);
    }
    return inner.empty() ? out : out + " (" + inner + ")";
}

std::string string_member(const Json& event, const char* name) {
    const auto it = event.find(name);
    return it != event.end() && it->is_string() ? it->get<std::string>() : std::string();
}

} // namespace

bool is_ndjson(const std::string* content_type) noexcept {
    if (content_type == nullptr) return false;
    std::string_view v = *content_type;
    const auto semicolon = v.find(';');
    if (semicolon != std::string_view::npos) v = v.substr(0, semicolon);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    constexpr std::string_view want = "application/x-ndjson";
    if (v.size() != want.size()) return false;
    for (std::size_t i = 0; i < v.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(v[i])) != want[i]) return false;
    return true;
}

BatchCheck check_batch(std::string_view body, const std::function<bool(const std::string&)>& may_act_for) {
    BatchCheck out;
    if (body.empty()) {
        out.refused = refuse(400, "invalid_request", "the batch is empty (one event per line, each ending in \\n)");
        return out;
    }
    if (body.back() != '\n') {
        out.refused = refuse(400, "invalid_request", "the batch's last line does not end in \\n (a cut body?)");
        return out;
    }
    std::size_t lines = 0;
    for (const char c : body)
        if (c == '\n') ++lines;
    if (lines > k_max_lines) {
        out.refused = refuse(413, "too_large",
                             "the batch has " + std::to_string(lines) + " lines; at most " +
                                 std::to_string(k_max_lines) + " are taken (audit.store.batch_events)");
        return out;
    }
    out.events.reserve(lines);
    std::size_t number = 0;
    std::size_t start = 0;
    while (start < body.size()) {
        const std::size_t end = body.find('\n', start);
        const std::string line(body.substr(start, end - start));
        start = end + 1;
        ++number;
        const strict_json::Parsed parsed = strict_json::parse_object(line);
        if (!parsed.error.empty()) {
            out.refused = refuse(400, "invalid_request", "line " + std::to_string(number) + " " + parsed.error);
            out.events.clear();
            return out;
        }
        const audit::LineCheck check = audit::check_line(line);
        if (!check.problem.empty()) {
            out.refused =
                refuse(422, "invalid_event",
                       line_name(number, parsed.value) + ": " + check.problem + "; nothing of the batch was stored");
            out.events.clear();
            return out;
        }
        const Json& e = check.event;
        const auto seq = e["seq"].get<std::uint64_t>();
        if (seq < 1 || seq > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            out.refused = refuse(422, "invalid_event",
                                 line_name(number, e) + ": seq must be 1 or more (and fit a signed 64-bit integer)");
            out.events.clear();
            return out;
        }
        const std::string host = string_member(e, "host");
        if (!may_act_for(host)) {
            out.refused = refuse(403, "forbidden",
                                 line_name(number, e) + " is an event of host \"" + text::shown(host, 128) +
                                     "\", which the client certificate may not act for; nothing of the batch "
                                     "was stored");
            out.events.clear();
            return out;
        }
        if (out.events.empty()) {
            out.host = host;
        } else if (host != out.host) {
            out.refused = refuse(400, "invalid_request",
                                 line_name(number, e) + " is an event of host \"" + text::shown(host, 128) +
                                     "\" after events of \"" + text::shown(out.host, 128) +
                                     "\": a batch holds the events of one host only");
            out.events.clear();
            return out;
        }
        store::AuditEvent event;
        event.event_id = string_member(e, "event_id");
        event.seq = static_cast<std::int64_t>(seq);
        event.hash = string_member(e, "hash");
        event.prev_hash = string_member(e, "prev_hash");
        event.time = string_member(e, "time");
        event.type = string_member(e, "type");
        event.request_id = string_member(e, "request_id");
        event.line = line;
        event.user = string_member(e, "user");
        if (event.event_id.empty()) {
            out.refused = refuse(422, "invalid_event", line_name(number, e) + ": an empty event_id");
            out.events.clear();
            return out;
        }
        out.events.push_back(std::move(event));
    }
    if (out.refused) out.host.clear();
    return out;
}

std::string ack_json(std::size_t stored, const std::string& last_event_id, std::size_t added, std::size_t duplicates) {
    return Json{{"stored", stored}, {"last_event_id", last_event_id}, {"new", added}, {"duplicates", duplicates}}.dump(
        -1, ' ', false, Json::error_handler_t::replace);
}

std::string state_json(const std::string& host, const std::optional<store::AuditChain>& chain) {
    Json out{{"host", host},  {"last_seq", 0},    {"last_hash", ""}, {"last_event_id", ""}, {"chain", "ok"},
             {"problem", ""}, {"problem_seq", 0}, {"last_seen", ""}, {"events", 0}};
    if (chain) {
        out["last_seq"] = chain->last_seq;
        out["last_hash"] = chain->last_hash;
        out["last_event_id"] = chain->last_event_id;
        out["chain"] = chain->broken ? "broken" : "ok";
        out["problem"] = chain->problem;
        out["problem_seq"] = chain->problem_seq;
        out["last_seen"] = chain->last_seen > 0 ? protocol::rfc3339(chain->last_seen) : "";
        out["events"] = chain->events;
    }
    return out.dump(-1, ' ', false, Json::error_handler_t::replace);
}

} // namespace jitgate::server::audit_ingest
