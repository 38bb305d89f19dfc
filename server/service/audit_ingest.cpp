// server/service/audit_ingest.cpp — see audit_ingest.hpp.
#include "server/service/audit_ingest.hpp"

#include "lib/audit_chain.hpp"
#include "lib/strict_json.hpp"
#include "server/service/protocol.hpp"

#include <jitgate/text.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>
#include <utility>

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

// Whether the database takes `s` as text: both stores refuse NUL and invalid UTF-8 (Error
// bad_input), which the host would get as 503 and retry for ever; it is refused here instead.
bool storable(std::string_view s) noexcept {
    return s.find('\0') == std::string_view::npos && text::is_valid_utf8(s);
}

std::string string_member(const Json& event, const char* name) {
    const auto it = event.find(name);
    return it != event.end() && it->is_string() ? it->get<std::string>() : std::string();
}

} // namespace

bool is_chain_alert(std::string_view type) noexcept {
    return type == "audit.chain_gap" || type == "audit.chain_fork" || type == "audit.chain_edited" ||
           type == "audit.chain_restarted";
}

CheckTurns::CheckTurns(std::size_t slots, std::size_t bytes, std::int64_t owed_for_s)
    : m_slots(slots < 1 ? 1 : slots), m_byte_budget(bytes), m_owed_for_s(owed_for_s) {}

CheckTurns::Verdict CheckTurns::admit(const std::string& host, std::size_t per_host, std::size_t bytes,
                                      std::int64_t now) {
    const auto flying = m_in_flight.find(host);
    const std::size_t mine = flying != m_in_flight.end() ? flying->second : 0;
    if (mine >= std::max<std::size_t>(per_host, 1)) return Verdict::host_busy;
    std::erase_if(m_owed, [&](const auto& e) {
        if (now - e.second.last <= m_owed_for_s) return false;
        m_owed_order.erase(e.second.ticket);
        return true;
    });
    const auto owed = m_owed.find(host);
    const bool is_owed = owed != m_owed.end();
    // The host owed a turn longest, other than this one (at most two steps: order is by ticket).
    const Owed* first = nullptr;
    for (const auto& entry : m_owed_order)
        if (entry.second != host) {
            first = &m_owed.at(entry.second);
            break;
        }
    const bool is_first = is_owed && (first == nullptr || owed->second.ticket < first->ticket);
    const std::size_t free = m_slots - std::min(m_slots, m_total);
    // A free slot is kept for each owed host: a host not owed gets one only while more are free
    // than hosts are owed (any owed host may take one: they come back at their own pace).
    const std::size_t owed_to_others = m_owed.size() - (is_owed ? 1 : 0);
    // Bytes: what the waiting bodies hold in memory and the worker has to check (each up to
    // k_max_body); the count only bounds the bookkeeping. Room for the first owed host's batch
    // is held back from everyone else, so it gets in when it comes back.
    const std::size_t reserve = first != nullptr && !is_first ? std::min(first->bytes, m_byte_budget) : 0;
    const bool fits_beside =
        bytes <= m_byte_budget && reserve <= m_byte_budget - bytes && m_bytes <= m_byte_budget - bytes - reserve;
    const bool fits = m_total == 0 ? first == nullptr || is_first || fits_beside : fits_beside;
    const bool admitted = fits && free > 0 && (is_owed || free > owed_to_others);
    if (!admitted) {
        // A host with a batch in flight is never owed: its turn is going on (else it could
        // refresh its claim at each refusal and come back first).
        if (is_owed) {
            owed->second.last = now;
            owed->second.bytes = bytes;
        } else if (mine == 0 && m_owed.size() < k_max_owed) {
            const std::uint64_t ticket = m_next_ticket++;
            m_owed.emplace(host, Owed{ticket, now, bytes});
            m_owed_order.emplace(ticket, host);
        }
        return Verdict::full;
    }
    if (is_owed) {
        m_owed_order.erase(owed->second.ticket);
        m_owed.erase(owed);
    }
    ++m_in_flight[host];
    ++m_total;
    m_bytes += bytes;
    return Verdict::admitted;
}

void CheckTurns::done(const std::string& host, std::size_t bytes) {
    const auto it = m_in_flight.find(host);
    if (it == m_in_flight.end()) return;
    --m_total;
    m_bytes -= std::min(m_bytes, bytes);
    if (--it->second == 0) m_in_flight.erase(it);
}

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
        ++number;
        if (end - start > k_max_line) {
            out.refused = refuse(413, "too_large",
                                 "line " + std::to_string(number) + " is " + std::to_string(end - start) +
                                     " bytes; an event is at most " + std::to_string(k_max_line) +
                                     " bytes (more than jitgated writes); nothing of the batch was stored");
            out.events.clear();
            return out;
        }
        const std::string line(body.substr(start, end - start));
        start = end + 1;
        strict_json::Parsed parsed = strict_json::parse_object(line);
        if (!parsed.error.empty()) {
            out.refused = refuse(400, "invalid_request", "line " + std::to_string(number) + " " + parsed.error);
            out.events.clear();
            return out;
        }
        // Parsed once: the strict parse's value is what the chain check looks at.
        const audit::LineCheck check = audit::check_parsed_line(line, std::move(parsed.value));
        if (!check.problem.empty()) {
            out.refused =
                refuse(422, "invalid_event",
                       line_name(number, check.event) + ": " + check.problem + "; nothing of the batch was stored");
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
        // SECURITY NOTE: every value the store keeps as text must be text it takes, checked
        // here: a NUL (a \u0000 escape) or invalid UTF-8 the store refuses would otherwise fail
        // the transaction (503) and the host would resend the batch for ever.
        const std::pair<const char*, const std::string*> texts[] = {{"event_id", &event.event_id},
                                                                    {"host", &host},
                                                                    {"time", &event.time},
                                                                    {"type", &event.type},
                                                                    {"request_id", &event.request_id},
                                                                    {"user", &event.user},
                                                                    {"hash", &event.hash},
                                                                    {"prev_hash", &event.prev_hash},
                                                                    {"the line", &event.line}};
        for (const auto& [name, value] : texts) {
            if (storable(*value)) continue;
            out.refused = refuse(422, "invalid_event",
                                 line_name(number, e) + ": " + name +
                                     " holds a NUL (\\u0000) or invalid UTF-8, which the store does not keep; "
                                     "nothing of the batch was stored");
            out.events.clear();
            return out;
        }
        out.events.push_back(std::move(event));
    }
    if (out.refused) out.host.clear();
    return out;
}

SpoolSeq spool_seq(const std::string* header, const std::vector<store::AuditEvent>& events) {
    SpoolSeq out;
    if (header == nullptr) return out;
    const std::string& v = *header;
    const auto shown = [&] { return "\"" + text::shown(v, 40) + "\""; };
    const bool digits =
        !v.empty() && v.size() <= 19 && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || v[0] == '0') {
        out.problem = "Jitgate-Spool-Seq " + shown() + " is not a seq (1 to 9223372036854775807, digits only)";
        return out;
    }
    std::uint64_t value = 0;
    for (const char c : v) value = value * 10 + static_cast<std::uint64_t>(c - '0'); // 19 digits fit
    if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        out.problem = "Jitgate-Spool-Seq " + shown() + " is larger than a seq can be";
        return out;
    }
    std::int64_t largest = 0;
    for (const store::AuditEvent& e : events) largest = std::max(largest, e.seq);
    if (static_cast<std::int64_t>(value) < largest) {
        out.problem = "Jitgate-Spool-Seq " + shown() + " is below the batch's own seq " + std::to_string(largest);
        return out;
    }
    out.seq = static_cast<std::int64_t>(value);
    return out;
}

std::string ack_json(std::size_t stored, const std::string& last_event_id, std::size_t added, std::size_t duplicates) {
    return Json{{"stored", stored}, {"last_event_id", last_event_id}, {"new", added}, {"duplicates", duplicates}}.dump(
        -1, ' ', false, Json::error_handler_t::replace);
}

std::string state_json(const std::string& host, const std::optional<store::AuditChain>& chain) {
    Json out{{"host", host},
             {"last_seq", 0},
             {"last_hash", ""},
             {"last_event_id", ""},
             {"chain", "ok"},
             {"problem", ""},
             {"problem_seq", 0},
             {"last_seen", ""},
             {"events", 0},
             {"restarts", 0},
             {"restart_at", ""},
             {"restart_previous_seq", 0},
             {"restart_previous_hash", ""},
             {"reported_seq", 0},
             {"reported_at", ""},
             {"backlog", nullptr}};
    if (chain) {
        out["last_seq"] = chain->last_seq;
        out["last_hash"] = chain->last_hash;
        out["last_event_id"] = chain->last_event_id;
        out["chain"] = chain->broken ? "broken" : "ok";
        out["problem"] = chain->problem;
        out["problem_seq"] = chain->problem_seq;
        out["last_seen"] = chain->last_seen > 0 ? protocol::rfc3339(chain->last_seen) : "";
        out["events"] = chain->events;
        out["restarts"] = chain->restarts;
        out["restart_at"] = chain->restart_at > 0 ? protocol::rfc3339(chain->restart_at) : "";
        out["restart_previous_seq"] = chain->restart_previous_seq;
        out["restart_previous_hash"] = chain->restart_previous_hash;
        out["reported_seq"] = chain->reported_seq;
        out["reported_at"] = chain->reported_at > 0 ? protocol::rfc3339(chain->reported_at) : "";
        if (const auto backlog = store::shipping_backlog(*chain)) out["backlog"] = *backlog;
    }
    return out.dump(-1, ' ', false, Json::error_handler_t::replace);
}

} // namespace jitgate::server::audit_ingest
