// server/report/build.cpp — report::build: reads the period through the Store's "reading for
// auditors" methods and assembles the Report (see report.hpp and docs/server.md).
//
// Three reads, each paged: the hosts' events of the period in time order (the joined view and
// the exceptions the hosts recorded), the server's events of the period (refused approvals,
// chain problems), and, for each host, its events in seq order from the one before the
// period's first to the period's last (the chain re-verified line by line).
#include "server/report/report.hpp"

#include "lib/audit_chain.hpp"
#include "lib/audit_event.hpp"

#include <jitgate/error.hpp>
#include <jitgate/text.hpp>

#include <fnmatch.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>

namespace jitgate::server::report {

namespace {

using audit::Json;

constexpr std::size_t k_page = 2000;
// Said by the service (server/service/policy.cpp) when an approver tries their own request.
constexpr const char* k_own_request = "you cannot decide your own request";

std::string text_of(const Json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<std::int64_t> integer_of(const Json& j, const char* key) {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) return std::nullopt;
    return it->get<std::int64_t>();
}

std::vector<std::string> list_of(const Json& j, const char* key) {
    std::vector<std::string> out;
    const auto it = j.find(key);
    if (it == j.end() || !it->is_array()) return out;
    for (const Json& v : *it)
        if (v.is_string()) out.push_back(v.get<std::string>());
    return out;
}

// RFC 3339 with milliseconds, as hosts write it: the bounds of the period as text.
std::string host_time(std::int64_t unix_s) {
    std::string t = rfc3339(unix_s);
    t.insert(t.size() - 1, ".000");
    return t;
}

// Copies what a decision or request event says about the action; fields already known (from
// access.requested) stay unless the later event has them too.
void take_fields(Action& a, const Json& j) {
    const auto set = [&](std::string& field, const char* key) {
        std::string v = text_of(j, key);
        if (!v.empty()) field = std::move(v);
    };
    set(a.request_id, "request_id");
    set(a.grant_id, "grant_id");
    set(a.kind, "kind");
    set(a.user, "user");
    set(a.requester, "requester");
    set(a.login_user, "login_user");
    set(a.command, "command");
    if (a.command.empty() || text_of(j, "kind") == "login") set(a.command, "service");
    set(a.runas, "runas");
    set(a.remote_host, "remote_host");
    set(a.rule, "rule");
    set(a.reason, "reason");
    set(a.ticket, "ticket");
    set(a.break_glass_reason, "break_glass_reason");
    set(a.message, "message");
    set(a.outcome, "outcome");
    set(a.approval_service, "approval_service");
    set(a.service_grant_id, "service_grant_id");
    set(a.scope, "scope");
    if (j.contains("argv")) a.argv = list_of(j, "argv");
    if (a.requester.empty()) a.requester = a.user;
}

// What pairs an allowed action with its command.finished or session.opened (docs/audit.md,
// "Things to know when reading the trail"): the same user, command and argv, and the same
// request_id and grant_id (both empty for an allow rule or break-glass).
std::string pairing_key(const std::string& kind, const std::string& user, const std::string& command,
                        const std::vector<std::string>& argv, const std::string& request_id,
                        const std::string& grant_id) {
    std::string key = kind;
    for (const std::string* part : {&user, &request_id, &grant_id}) {
        key += '\0';
        key += *part;
    }
    if (kind != "login") {
        key += '\0';
        key += command;
        for (const std::string& arg : argv) {
            key += '\0';
            key += arg;
        }
    }
    return key;
}

std::int64_t seconds_of(const std::string& time) {
    return parse_time(time, false).value_or(0);
}

std::optional<std::int64_t> nearest_rank(std::vector<std::int64_t> values, double p) {
    if (values.empty()) return std::nullopt;
    std::sort(values.begin(), values.end());
    const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(values.size())));
    return values[std::max<std::size_t>(rank, 1) - 1];
}

// --- the cross-check of a service approval (Builder::cross_check) ---

void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// Whether `text` is exactly text::escape_for_log's output for bytes that are not valid UTF-8:
// jitgated files a requester's or account's name that is not UTF-8 with the service in that
// escaped form (daemon/approval/service.cpp body_of), and any other name as it is.
bool escapes_invalid_utf8(std::string_view text) {
    if (text.find('\\') == std::string_view::npos) return false;
    std::string raw;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\\') {
            raw += text[i];
            continue;
        }
        if (++i >= text.size()) return false;
        const char c = text[i];
        if (c == '\\' || c == 'n' || c == 'r' || c == 't') {
            raw += c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : '\\';
        } else if (c == 'x' || c == 'u') {
            const bool braced = c == 'u';
            if (braced && (++i >= text.size() || text[i] != '{')) return false;
            std::uint32_t value = 0;
            std::size_t digits = 0;
            while (i + 1 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) != 0 &&
                   digits < (braced ? 6u : 2u)) {
                const char d = text[++i];
                value = value * 16 + static_cast<std::uint32_t>(d <= '9' ? d - '0' : (d | 0x20) - 'a' + 10);
                ++digits;
            }
            if (digits == 0 || (!braced && digits != 2)) return false;
            if (braced) {
                if (++i >= text.size() || text[i] != '}' || value > 0x10FFFF) return false;
                append_utf8(raw, value);
            } else {
                raw += static_cast<char>(value);
            }
        } else {
            return false;
        }
    }
    return !text::is_valid_utf8(raw) && text::escape_for_log(raw) == text;
}

// Whether the host's `recorded` name (escaped, as every host event holds it) is the service's
// `filed` one (as the host filed it: see escapes_invalid_utf8).
bool same_name(const std::string& recorded, const std::string& filed) {
    return recorded == text::escape_for_log(filed) || (recorded == filed && escapes_invalid_utf8(filed));
}

// A value of a request_mismatch's detail: quoted, cut at 200 bytes.
std::string shown_value(const std::string& value) {
    constexpr std::size_t k_max = 200;
    const std::string cut = value.size() > k_max ? std::string(text::utf8_prefix(value, k_max)) + "..." : value;
    return Json(cut).dump(-1, ' ', false, Json::error_handler_t::replace);
}

// What the approval service filed that an approval must bind, out of a request's body (the
// body itself is not kept: a period can join many requests). Members the body does not hold
// are absent (a body is checked at filing: docs/protocol.md §4).
struct Filed {
    std::optional<std::string> host, kind, scope, user, command, service, runas, remote_host;
    std::optional<std::vector<std::string>> argv; // each argument as the host escapes it; nullopt: none or unreadable
    bool argv_unreadable = false;
};

Filed filed_of(const std::string& body) {
    Filed f;
    const Json j = Json::parse(body, nullptr, false);
    if (!j.is_object()) return f;
    const auto text_member = [](const Json& o, const char* key) -> std::optional<std::string> {
        const auto it = o.find(key);
        if (it == o.end() || !it->is_string()) return std::nullopt;
        return it->get<std::string>();
    };
    f.host = text_member(j, "host");
    f.kind = text_member(j, "kind");
    f.scope = text_member(j, "scope");
    if (const auto account = j.find("account"); account != j.end() && account->is_object())
        f.user = text_member(*account, "user");
    if (const auto action = j.find("action"); action != j.end() && action->is_object()) {
        f.command = text_member(*action, "command");
        f.service = text_member(*action, "service");
        f.runas = text_member(*action, "runas");
        f.remote_host = text_member(*action, "remote_host");
        if (const auto argv = action->find("argv"); argv != action->end()) {
            try {
                std::vector<std::string> out;
                for (const std::string& arg : text::argv_from_json(*argv)) out.push_back(text::escape_for_log(arg));
                f.argv = std::move(out);
            } catch (const std::exception&) {
                f.argv_unreadable = true;
            }
        }
    }
    return f;
}

class Builder {
public:
    Builder(store::Store& store, const Options& options) : m_store(store) {
        m_report.options = options;
        m_report.generated_at = rfc3339(options.now);
    }

    Report run() {
        read_hosts();
        read_host_events();
        join_requests();
        read_server_events();
        never_shipped();
        verify_chains();
        break_glass_reviews();
        summarise();
        return std::move(m_report);
    }

private:
    struct HostState {
        std::size_t index = 0;                                                // into m_report.hosts
        std::unordered_map<std::string, std::deque<std::size_t>> awaiting;    // pairing key → actions
        std::map<std::pair<std::string, std::int64_t>, std::size_t> sessions; // (user, peer_pid) → action
    };

    bool wanted(const std::string& host) const {
        return ::fnmatch(m_report.options.hosts.c_str(), host.c_str(), 0) == 0;
    }

    void read_hosts() {
        std::string after;
        for (;;) {
            const std::vector<store::AuditChain> page = m_store.audit_chains_after(after, k_page);
            for (const store::AuditChain& c : page) {
                if (!wanted(c.host)) continue;
                HostChainCheck h;
                h.host = c.host;
                h.stored_events = c.events;
                h.overall_last_seq = c.last_seq;
                h.overall_last_hash = c.last_hash;
                h.broken = c.broken;
                h.problem = c.problem;
                h.problem_seq = c.problem_seq;
                h.problem_at = c.problem_at;
                h.last_seen = c.last_seen;
                h.pruned_through_seq = c.pruned_through_seq;
                h.pruned_through_hash = c.pruned_through_hash;
                h.silent = m_report.options.now - c.last_seen > m_report.options.silent_after;
                m_hosts[c.host].index = m_report.hosts.size();
                m_report.hosts.push_back(std::move(h));
            }
            if (page.size() < k_page) break;
            after = page.back().host;
        }
    }

    void read_host_events() {
        const std::string from = host_time(m_report.options.from);
        const std::string to = host_time(m_report.options.to);
        std::string after_time;
        std::int64_t after_id = 0;
        for (;;) {
            const std::vector<store::StoredAuditEvent> page =
                m_store.audit_events_in_period(from, to, after_time, after_id, k_page);
            for (const store::StoredAuditEvent& e : page) take(e);
            if (page.size() < k_page) break;
            after_time = page.back().event.time;
            after_id = page.back().row;
        }
        // Requests filed in the period without a decision in it.
        for (auto& [key, action] : m_requested) {
            action.decision = "pending";
            m_report.actions.push_back(std::move(action));
        }
        m_requested.clear();
    }

    void take(const store::StoredAuditEvent& stored) {
        const auto state = m_hosts.find(stored.host);
        if (state == m_hosts.end()) return; // not a host of the pattern
        ++m_report.summary.host_events;
        const store::AuditEvent& e = stored.event;
        HostChainCheck& h = m_report.hosts[state->second.index];
        ++h.events_in_period;
        if (h.first_seq == 0 || e.seq < h.first_seq) {
            h.first_seq = e.seq;
            h.first_hash = e.hash;
            h.first_time = e.time;
        }
        if (e.seq >= h.last_seq) {
            h.last_seq = e.seq;
            h.last_hash = e.hash;
            h.last_time = e.time;
        }
        const std::string& type = e.type;
        if (type.rfind("access.", 0) != 0 && type != audit::type::command_finished &&
            type != audit::type::session_opened && type != audit::type::session_closed && type != audit::type::error)
            return; // nothing for the joined view or the exceptions
        // An unreadable line is the chain check's finding; here it has nothing to say.
        const Json j = Json::parse(e.line, nullptr, false);
        if (!j.is_object()) return;
        if (type == audit::type::requested) {
            Action a;
            a.host = stored.host;
            take_fields(a, j);
            a.requested_time = e.time;
            if (!a.request_id.empty()) m_requested[{stored.host, a.request_id}] = std::move(a);
        } else if (type == audit::type::approved || type == audit::type::denied || type == audit::type::timeout ||
                   type == audit::type::cancelled || type == audit::type::allowed_by_rule ||
                   type == audit::type::allowed_by_grant || type == audit::type::break_glass ||
                   type == audit::type::auto_approved) {
            decision(state->second, stored, j);
        } else if (type == audit::type::command_finished) {
            finished(state->second, e, j);
        } else if (type == audit::type::session_opened) {
            opened(state->second, e, j);
        } else if (type == audit::type::session_closed) {
            closed(state->second, e, j);
        } else if (type == audit::type::error && text_of(j, "refused") == "self_approval") {
            exception("refused_self_approval", stored.host, e.time, text_of(j, "request_id"),
                      text_of(j, "requester").empty() ? text_of(j, "user") : text_of(j, "requester"),
                      "approver " + text_of(j, "approver") + ": " + text_of(j, "message"), e.event_id);
        }
    }

    void decision(HostState& state, const store::StoredAuditEvent& stored, const Json& j) {
        const store::AuditEvent& e = stored.event;
        Action a;
        const std::string request_id = text_of(j, "request_id");
        // allowed_by_grant names the request that made its grant: that request's action is
        // another one (its access.approved), so it starts afresh.
        if (!request_id.empty() && e.type != audit::type::allowed_by_grant) {
            const auto it = m_requested.find({stored.host, request_id});
            if (it != m_requested.end()) {
                a = std::move(it->second);
                m_requested.erase(it);
            }
        }
        a.host = stored.host;
        take_fields(a, j);
        a.decision = e.type.substr(std::string_view("access.").size());
        a.decided_time = e.time;
        a.decision_event_id = e.event_id;
        // An automatic approval is the service's too when the service signed it (its `auto`
        // grant): still counted apart from people's approvals (summarise()), and cross-checked.
        if (e.type == audit::type::approved || e.type == audit::type::auto_approved)
            a.approval_source = !a.service_grant_id.empty() || !a.approval_service.empty() ? "service" : "local";
        if (a.approvals.empty())
            for (const std::string& name : list_of(j, "approvers"))
                a.approvals.push_back(ApprovalRecord{name, "", "", "host", "", 0});
        if (e.type == audit::type::denied) {
            const std::string rejected = text_of(j, "grant_rejected");
            if (!rejected.empty() || a.outcome == "invalid_grant")
                exception("grant_rejected", stored.host, e.time, a.request_id, a.requester,
                          rejected.empty() ? a.message : rejected, e.event_id);
            const auto spool = j.find("spool_full");
            if (spool != j.end() && spool->is_boolean() && spool->get<bool>())
                exception("spool_full", stored.host, e.time, a.request_id, a.requester, a.message, e.event_id);
        }
        const bool allowed = e.type == audit::type::approved || e.type == audit::type::allowed_by_rule ||
                             e.type == audit::type::allowed_by_grant || e.type == audit::type::break_glass ||
                             e.type == audit::type::auto_approved;
        const std::size_t index = m_report.actions.size();
        if (allowed)
            state.awaiting[pairing_key(a.kind, a.user, a.command, a.argv, a.request_id, a.grant_id)].push_back(index);
        if (e.type == audit::type::break_glass) {
            BreakGlassUse use;
            use.action = index;
            use.host = stored.host;
            use.event_id = e.event_id;
            use.time = e.time;
            use.user = a.user;
            use.reason = a.break_glass_reason;
            m_report.break_glass.push_back(std::move(use));
        }
        m_report.actions.push_back(std::move(a));
    }

    // The oldest allowed action still waiting for what `j` reports; nullopt if none.
    std::optional<std::size_t> claim(HostState& state, const std::string& kind, const Json& j) {
        const auto it =
            state.awaiting.find(pairing_key(kind, text_of(j, "user"), text_of(j, "command"), list_of(j, "argv"),
                                            text_of(j, "request_id"), text_of(j, "grant_id")));
        if (it == state.awaiting.end() || it->second.empty()) return std::nullopt;
        const std::size_t index = it->second.front();
        it->second.pop_front();
        if (it->second.empty()) state.awaiting.erase(it);
        return index;
    }

    void finished(HostState& state, const store::AuditEvent& e, const Json& j) {
        const auto index = claim(state, text_of(j, "kind").empty() ? "sudo" : text_of(j, "kind"), j);
        if (!index) return;
        Action& a = m_report.actions[*index];
        a.result_type = "command";
        a.action_time = e.time;
        a.status_type = text_of(j, "status_type");
        a.exit_status = integer_of(j, "exit_status");
        a.signal = integer_of(j, "signal");
        a.duration_ms = integer_of(j, "duration_ms");
    }

    void opened(HostState& state, const store::AuditEvent& e, const Json& j) {
        const auto index = claim(state, "login", j);
        if (!index) return;
        Action& a = m_report.actions[*index];
        a.result_type = "session";
        a.action_time = e.time;
        state.sessions[{text_of(j, "user"), integer_of(j, "peer_pid").value_or(0)}] = *index;
    }

    void closed(HostState& state, const store::AuditEvent& e, const Json& j) {
        const auto it = state.sessions.find({text_of(j, "user"), integer_of(j, "peer_pid").value_or(0)});
        if (it == state.sessions.end()) return;
        Action& a = m_report.actions[it->second];
        a.end_time = e.time;
        a.duration_ms = integer_of(j, "duration_ms");
        state.sessions.erase(it);
    }

    void exception(std::string kind, std::string host, std::string time, std::string request_id, std::string user,
                   std::string detail, std::string event_id) {
        m_report.exceptions.push_back(Exception{std::move(kind), std::move(host), std::move(time),
                                                std::move(request_id), std::move(user), std::move(detail),
                                                std::move(event_id), std::string()});
    }

    // Each action with a request id gets the approval service's record of it (one read per
    // request, shared by the actions of the same request).
    void join_requests() {
        struct Known {
            std::optional<store::Request> request;
            Filed filed;
        };
        std::map<std::pair<std::string, std::string>, Known> seen;
        for (Action& a : m_report.actions) {
            if (a.request_id.empty()) {
                check_self_approval(a);
                if (a.approval_source == "service") cross_check(a, nullptr, Filed{});
                continue;
            }
            auto [it, inserted] = seen.try_emplace({a.host, a.request_id});
            if (inserted) {
                it->second.request = m_store.find(a.host, a.request_id);
                if (it->second.request) {
                    it->second.filed = filed_of(it->second.request->body);
                    it->second.request->body.clear(); // not shown; frees the memory
                }
            }
            // SECURITY NOTE: whether an approval was the service's is not the host's word alone:
            // one whose request id the service holds for this host is cross-checked whatever the
            // host's events say of the service (a host that left approval_service and
            // service_grant_id out of both events would otherwise escape the check).
            const bool named_service = a.approval_source == "service";
            // An automatic approval the host records is an approval too: the service's record of
            // the request makes it the service's, and a pending or denied request is flagged.
            if ((a.decision == "approved" || a.decision == "auto_approved") && it->second.request)
                a.approval_source = "service";
            if (a.approval_source == "service")
                cross_check(a, it->second.request ? &*it->second.request : nullptr, it->second.filed, named_service);
            if (const auto& r = it->second.request) {
                a.request_found = true;
                a.server_status = std::string(store::to_string(r->status));
                a.filed_at = r->created_at;
                a.server_decided_at = r->decided_at;
                a.decided_by = r->decided_by;
                a.decision_reason = r->decision_reason;
                a.approvals.clear();
                for (const store::Approval& p : r->approvals)
                    a.approvals.push_back(
                        ApprovalRecord{p.approver, p.identity, p.source_address, p.via, p.comment, p.at});
                if (a.decision == "approved" && r->status == store::Status::approved)
                    a.delay_s = r->decided_at - r->created_at;
                check_self_approval(a, &*r);
            } else {
                check_self_approval(a);
            }
            if (a.decision == "approved" && !a.delay_s && !a.requested_time.empty())
                a.delay_s = seconds_of(a.decided_time) - seconds_of(a.requested_time);
        }
    }

    // SECURITY NOTE: an action the host says the approval service approved must be an approval
    // the service recorded, of the same request: not_approved_at_service when the service has
    // no such request of the host or did not approve it (a host, or someone writing its events,
    // claiming an approval nobody gave), request_mismatch when the service approved something
    // else than what the host recorded. Compared, exactly, is what both sides keep of what an
    // approval binds: the host, the requester (and their login user), the account, the kind,
    // the command (a login: the PAM service), its argv, the run-as user, the remote host, the
    // rule, the grant's scope, the service's grant id and whether the approval was automatic. Text filed with the
    // service is compared in the escaped form in which the host records it. `named_service`: the host's events named
    // the service (else the service's record of the request id made it the service's).
    void cross_check(Action& a, const store::Request* r, const Filed& f, bool named_service = true) {
        if (r == nullptr || r->status != store::Status::approved) {
            a.service_check = "not_approved_at_service";
            std::string detail = named_service ? "the host recorded an approval by the approval service"
                                               : "the host recorded an approval without naming the approval service, "
                                                 "of a request the service holds";
            if (a.request_id.empty())
                detail += " without a request id";
            else if (r == nullptr)
                detail += ", and the service has no request " + a.request_id + " of this host";
            else
                detail += ", and the service's request is " + std::string(store::to_string(r->status)) +
                          (r->decided_at > 0 ? " (" + rfc3339(r->decided_at) + ")" : "");
            exception("not_approved_at_service", a.host, a.decided_time, a.request_id, a.requester, std::move(detail),
                      a.decision_event_id);
            return;
        }
        std::vector<std::string> fields;
        std::string detail;
        const auto differs = [&](const char* field, const std::string& recorded, const std::string& filed) {
            fields.emplace_back(field);
            detail += std::string(detail.empty() ? "" : "; ") + field + ": host " + shown_value(recorded) +
                      ", service " + shown_value(filed);
        };
        const auto compare = [&](const char* field, const std::string& recorded,
                                 const std::optional<std::string>& filed) {
            if (filed && recorded != *filed) differs(field, recorded, *filed);
        };
        compare("host", a.host, r->host);
        compare("host", a.host, f.host);
        if (!same_name(a.requester, r->requester))
            differs("requester", a.requester, text::escape_for_log(r->requester));
        compare("login_user", a.login_user, r->requester_login);
        if (f.user && !same_name(a.user, *f.user)) differs("user", a.user, text::escape_for_log(*f.user));
        compare("kind", a.kind, f.kind);
        compare("command", a.command, a.kind == "login" ? f.service : f.command);
        if (a.kind != "login") {
            if (f.argv_unreadable) {
                differs("argv", Json(a.argv).dump(-1, ' ', false, Json::error_handler_t::replace), "(unreadable)");
            } else if (f.argv && *f.argv != a.argv) {
                differs("argv", Json(a.argv).dump(-1, ' ', false, Json::error_handler_t::replace),
                        Json(*f.argv).dump(-1, ' ', false, Json::error_handler_t::replace));
            }
            compare("runas", a.runas, f.runas);
        }
        compare("remote_host", a.remote_host, f.remote_host);
        compare("rule", a.rule, r->rule);
        compare("scope", a.scope, f.scope);
        compare("service_grant_id", a.service_grant_id, r->grant_id);
        // SECURITY NOTE: who decided must agree too: a host recording an automatic approval of
        // a request people approved (or a person's approval of one the service approved by
        // itself) hides, or invents, a person's decision.
        const bool service_auto = r->decided_by.rfind("jitgate (auto: ", 0) == 0;
        if ((a.decision == "auto_approved") != service_auto)
            differs("automatic", a.decision == "auto_approved" ? "automatic" : "by a person",
                    service_auto ? "automatic (" + r->decided_by + ")" : "by a person (" + r->decided_by + ")");
        if (fields.empty()) {
            a.service_check = "ok";
            return;
        }
        // One name per field, in the order compared (the host is compared twice).
        fields.erase(std::unique(fields.begin(), fields.end()), fields.end());
        a.service_check = "request_mismatch";
        a.service_mismatch = fields;
        exception("request_mismatch", a.host, a.decided_time, a.request_id, a.requester,
                  "the approval service approved request " + a.request_id + " with other values: " + detail,
                  a.decision_event_id);
    }

    void check_self_approval(Action& a, const store::Request* r = nullptr) {
        for (const ApprovalRecord& p : a.approvals) {
            const bool self = p.approver == a.requester || p.approver == a.user ||
                              (!a.login_user.empty() && p.approver == a.login_user) ||
                              (r != nullptr && (p.approver == r->requester ||
                                                (!r->requester_login.empty() && p.approver == r->requester_login)));
            if (!self) continue;
            a.self_approved = true;
            exception("approver_is_requester", a.host, a.decided_time, a.request_id, a.requester,
                      "approved by " + p.approver + ", who is the requester or the requester's login user",
                      a.decision_event_id);
        }
    }

    void read_server_events() {
        std::int64_t after_at = std::numeric_limits<std::int64_t>::min();
        std::int64_t after_id = 0;
        for (;;) {
            const std::vector<store::StoredEvent> page =
                m_store.events_in_period(m_report.options.from, m_report.options.to, after_at, after_id, k_page);
            for (const store::StoredEvent& s : page) server_event(s.event);
            if (page.size() < k_page) break;
            after_at = page.back().event.at;
            after_id = page.back().id;
        }
    }

    void server_event(const store::Event& e) {
        if (e.type == "grant.signed") {
            signed_grant(e);
            return;
        }
        const bool refused = e.type == "approval.refused" || e.type == "denial.refused";
        const bool chain = e.type == "audit.chain_gap" || e.type == "audit.chain_fork";
        if ((!refused && !chain) || !wanted(e.host)) return;
        const Json detail = Json::parse(e.detail, nullptr, false);
        if (refused) {
            const std::string why = detail.is_object() ? text_of(detail, "why") : std::string();
            exception(why == k_own_request ? "refused_self_approval" : "approval_refused", e.host, rfc3339(e.at),
                      e.request_id, e.actor, e.type + " (" + e.identity + " from " + e.source_address + "): " + why,
                      "");
        } else {
            exception("chain_broken", e.host, rfc3339(e.at), "", "",
                      e.type + ": " + (detail.is_object() ? text_of(detail, "problem") : e.detail),
                      detail.is_object() ? text_of(detail, "event_id") : "");
        }
    }

    // A grant the service signed in the period (recorded in the transaction that approved its
    // request): its host is a candidate of never_shipped() unless the store holds an event of
    // the host dated in the period.
    void signed_grant(const store::Event& e) {
        if (e.host.empty() || e.request_id.empty() || !wanted(e.host)) return;
        const auto host = m_hosts.find(e.host);
        if (host != m_hosts.end() && m_report.hosts[host->second.index].events_in_period > 0) return;
        m_unshipped[e.host].push_back({e.at, e.request_id});
    }

    // SECURITY NOTE: a host the approval service approved requests of in the period, whose events
    // of the period the store does not hold at all (it never shipped one, or none dated in the
    // period), is an exception: everything it did with those approvals is missing from this
    // report. One exception per host, naming its first approved request. Single approved
    // requests without a host event are not exceptions: a user who gave up just before the
    // approval, or a daemon stopped meanwhile, leaves an approved request the host never used.
    void never_shipped() {
        for (const auto& [host, grants] : m_unshipped) {
            std::size_t approved = 0;
            const std::pair<std::int64_t, std::string>* first = nullptr;
            std::string requester;
            std::set<std::string> counted;
            for (const auto& grant : grants) {
                if (!counted.insert(grant.second).second) continue;
                const auto r = m_store.find(host, grant.second);
                if (!r || r->status != store::Status::approved) continue;
                ++approved;
                if (first == nullptr) {
                    first = &grant;
                    requester = r->requester;
                }
            }
            if (first == nullptr) continue;
            std::string detail = "the approval service approved " + text::plural(approved, "request", "requests") +
                                 " of this host in the period (the first: " + first->second + " at " +
                                 rfc3339(first->first) + "), and ";
            const std::optional<store::AuditChain> chain = m_store.audit_chain(host);
            if (!chain) {
                detail += "the store holds no event of this host at all: it never shipped one";
            } else {
                detail += "the store holds none of its events dated in the period (" +
                          text::plural(static_cast<std::uint64_t>(chain->events), "event", "events") +
                          " stored, the last batch received " +
                          (chain->last_seen > 0 ? rfc3339(chain->last_seen) : std::string("never")) + ")";
                if (const auto backlog = store::shipping_backlog(*chain))
                    detail += "; its shipper reported " +
                              text::plural(static_cast<std::uint64_t>(*backlog), "event", "events") +
                              " not yet shipped at " + rfc3339(chain->reported_at);
            }
            exception("host_never_shipped", host, rfc3339(first->first), first->second, text::escape_for_log(requester),
                      std::move(detail), "");
        }
    }

    // Re-verifies each host's chain over the period from the stored lines (report.hpp).
    void verify_chains() {
        for (HostChainCheck& h : m_report.hosts) {
            if (h.silent)
                exception("host_silent", h.host, h.last_seen > 0 ? rfc3339(h.last_seen) : "", "", "",
                          "no batch stored since " + (h.last_seen > 0 ? rfc3339(h.last_seen) : "ever"), "");
            // A broken chain stays broken (the store never clears it): listed in every period,
            // with when it broke.
            if (h.broken)
                exception(
                    "chain_broken", h.host, h.problem_at > 0 ? rfc3339(h.problem_at) : "", "", "",
                    "the store marked the chain broken at seq " + std::to_string(h.problem_seq) + ": " + h.problem, "");
            if (h.first_seq == 0) continue;
            verify(h);
            if (!h.verified) {
                std::string detail;
                for (std::size_t i = 0; i < h.problems.size() && i < 3; ++i)
                    detail += (i > 0 ? "; " : "") + h.problems[i];
                if (h.problems.size() > 3) detail += "; ...";
                exception("chain_verification_failed", h.host, h.first_time, "", "", detail, "");
            }
        }
    }

    void verify(HostChainCheck& h) {
        audit::VerifyResult result;
        audit::ChainVerifier verifier(result, audit::ChainVerifier::Start::free);
        const std::int64_t start = h.first_seq > 1 ? h.first_seq - 1 : h.first_seq;
        std::int64_t after_seq = start - 1;
        std::int64_t after_id = std::numeric_limits<std::int64_t>::max();
        bool first = true;
        for (;;) {
            const std::vector<store::StoredAuditEvent> page =
                m_store.audit_events_by_seq(h.host, after_seq, after_id, h.last_seq, k_page);
            for (const store::StoredAuditEvent& s : page) {
                if (first && s.event.seq == h.first_seq - 1) {
                    h.before_seq = s.event.seq;
                    h.before_hash = s.event.hash;
                }
                if (first) check_pruned_anchor(h, s, verifier);
                first = false;
                ++h.verified_events;
                const std::string where = "seq " + std::to_string(s.event.seq);
                verifier.line(where, s.event.line);
                // The columns are copies of the line's members; a copy that differs is an edit
                // of the database that the line alone would not show.
                if (!columns_match(s)) verifier.problem(where, "the stored columns differ from the line");
            }
            if (page.size() < k_page) break;
            after_seq = page.back().event.seq;
            after_id = page.back().row;
        }
        verifier.finish();
        h.verified = result.ok;
        h.problems = result.problems;
    }

    // SECURITY NOTE: after a prune the chain starts at the anchor (pruned_through_seq/hash, set
    // in the prune's transaction); the verifier alone would accept any first line. The event
    // right after the anchor must continue its hash, and an event after the anchor that the
    // period needs before its first must still be stored: a row deleted outside the prune fails.
    static void check_pruned_anchor(HostChainCheck& h, const store::StoredAuditEvent& first,
                                    audit::ChainVerifier& verifier) {
        const std::int64_t pruned = h.pruned_through_seq;
        if (pruned <= 0) return;
        // The event before the period is stored (a chain that started over after the pruned
        // part reuses its seqs): the chain check links to it as usual.
        if (first.event.seq == h.first_seq - 1) return;
        const std::string where = "seq " + std::to_string(first.event.seq);
        if (h.first_seq - 1 == pruned) {
            // The period starts right after the pruned part; `first` is its first event.
            const Json line = Json::parse(first.event.line, nullptr, false);
            const bool continues = line.is_object() && line.contains("prev_hash") && line["prev_hash"].is_string() &&
                                   line["prev_hash"].get_ref<const std::string&>() == h.pruned_through_hash;
            if (!continues)
                verifier.problem(where, "prev_hash is not the hash of seq " + std::to_string(pruned) +
                                            ", the last event pruned after its month was archived (an event was "
                                            "removed or altered outside `jitgate-server audit prune`)");
        } else if (h.first_seq - 1 > pruned) {
            verifier.problem(where, "seq " + std::to_string(h.first_seq - 1) +
                                        " is not stored, but the chain was pruned only through seq " +
                                        std::to_string(pruned) +
                                        " (events were deleted outside `jitgate-server audit prune`)");
        }
    }

    // Whether the line holds the row's host, event_id, seq and hash as members, and the columns
    // the report selects and classifies events by (time, type, user, request_id): a column
    // edited in the database without its line (a break-glass use retyped, a time moved) is a
    // problem of the chain check, not a silent change of the report. In a canonical event line
    // (one flat object, ChainVerifier checked it) `"name":value` outside a string can only be a
    // member: inside a string every quote is escaped. Cheaper than parsing the line again.
    static bool columns_match(const store::StoredAuditEvent& s) {
        const std::string& line = s.event.line;
        const auto has = [&](const std::string& member) { return line.find(member) != std::string::npos; };
        // A text member: present with this value, or absent when the column is empty.
        const auto text = [&](const char* name, const std::string& value) {
            const std::string key = std::string("\"") + name + "\":";
            return value.empty() ? !has(key) || has(key + "\"\"") : has(key + Json(value).dump());
        };
        const std::string seq = "\"seq\":" + std::to_string(s.event.seq);
        return has("\"hash\":" + Json(s.event.hash).dump()) && has("\"host\":" + Json(s.host).dump()) &&
               has("\"event_id\":" + Json(s.event.event_id).dump()) && (has(seq + ",") || has(seq + "}")) &&
               has("\"time\":" + Json(s.event.time).dump()) && has("\"type\":" + Json(s.event.type).dump()) &&
               text("user", s.event.user) && text("request_id", s.event.request_id);
    }

    // SECURITY NOTE: a break-glass use nobody reviewed (no review item, or one still open past
    // its due time at `now`) is an exception: the report must not say "none" over it.
    void break_glass_reviews() {
        for (BreakGlassUse& use : m_report.break_glass) {
            const auto review = m_store.find_break_glass_review(use.host, use.event_id);
            if (!review) {
                unreviewed(use, "", "no review item");
                continue;
            }
            use.review_status = review->closed ? "closed" : "open";
            use.reviewer = review->reviewer;
            use.reviewer_identity = review->reviewer_identity;
            use.note = review->note;
            use.review_due_at = review->due_at;
            use.review_closed_at = review->closed_at;
            if (!review->closed && review->due_at <= m_report.options.now)
                unreviewed(use, rfc3339(review->due_at), "review open past its due time " + rfc3339(review->due_at));
        }
    }

    void unreviewed(const BreakGlassUse& use, std::string due, std::string detail) {
        exception("break_glass_unreviewed", use.host, use.time, "", use.user, std::move(detail), use.event_id);
        m_report.exceptions.back().due = std::move(due);
    }

    void summarise() {
        Summary& s = m_report.summary;
        std::map<std::pair<std::string, std::string>, std::int64_t> counts;
        std::vector<std::int64_t> delays;
        for (const Action& a : m_report.actions) {
            ++s.actions;
            ++counts[{a.host, a.rule}];
            if (a.decision == "approved") ++s.approved;
            if (a.decision == "allowed_by_rule") ++s.allowed_by_rule;
            if (a.decision == "allowed_by_grant") ++s.allowed_by_grant;
            if (a.decision == "denied") ++s.denials;
            if (a.decision == "timeout") ++s.timeouts;
            if (a.decision == "cancelled") ++s.cancellations;
            if (a.decision == "pending") ++s.pending;
            if (a.decision == "break_glass") ++s.break_glass;
            if (a.decision == "auto_approved") ++s.auto_approved; // no person approved: counted apart
            if (a.delay_s) delays.push_back(*a.delay_s);
        }
        for (const auto& [key, n] : counts) s.by_host_rule.push_back(Count{key.first, key.second, n});
        s.delay_median_s = nearest_rank(delays, 0.5);
        s.delay_p95_s = nearest_rank(delays, 0.95);
        s.hosts = static_cast<std::int64_t>(m_report.hosts.size());
        std::stable_sort(m_report.exceptions.begin(), m_report.exceptions.end(),
                         [](const Exception& a, const Exception& b) { return a.time < b.time; });
        s.exceptions = static_cast<std::int64_t>(m_report.exceptions.size());
    }

    store::Store& m_store;
    Report m_report;
    std::map<std::string, HostState, std::less<>> m_hosts;
    std::map<std::pair<std::string, std::string>, Action> m_requested; // (host, request id) → filed, undecided
    // Hosts without an event in the period → the grants the service signed for them in it
    // (time, request id), in time order.
    std::map<std::string, std::vector<std::pair<std::int64_t, std::string>>> m_unshipped;
};

} // namespace

Report build(store::Store& store, const Options& options) {
    if (options.from >= options.to)
        throw Error(ErrorCode::bad_input, "report", "the period is empty: --from must be before --to");
    if (options.hosts.empty()) throw Error(ErrorCode::bad_input, "report", "the host pattern is empty");
    return Builder(store, options).run();
}

} // namespace jitgate::server::report
