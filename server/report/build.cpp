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

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
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
                   type == audit::type::allowed_by_grant || type == audit::type::break_glass) {
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
                             e.type == audit::type::allowed_by_grant || e.type == audit::type::break_glass;
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
        std::map<std::pair<std::string, std::string>, std::optional<store::Request>> seen;
        for (Action& a : m_report.actions) {
            if (a.request_id.empty()) {
                check_self_approval(a);
                continue;
            }
            auto [it, inserted] = seen.try_emplace({a.host, a.request_id});
            if (inserted) {
                it->second = m_store.find(a.host, a.request_id);
                if (it->second) it->second->body.clear(); // not shown; frees the memory
            }
            if (const auto& r = it->second) {
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
};

} // namespace

Report build(store::Store& store, const Options& options) {
    if (options.from >= options.to)
        throw Error(ErrorCode::bad_input, "report", "the period is empty: --from must be before --to");
    if (options.hosts.empty()) throw Error(ErrorCode::bad_input, "report", "the host pattern is empty");
    return Builder(store, options).run();
}

} // namespace jitgate::server::report
