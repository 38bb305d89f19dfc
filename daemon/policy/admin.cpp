// daemon/policy/admin.cpp — the approver and admin operations of the broker (jitgatectl):
// the pending and grants views, approve, deny, revoke.
//
// Who may use these operations at all (root, or a member of any approver group, for pending
// and revoke) is decided once, by the server's handler table (daemon/server/handlers.cpp),
// before any of them runs. What is left here is what depends on the request at hand: the
// approver is in this request's approver groups, is not the requester, and each approval is
// another person's.
//
// These stay Broker members rather than a class of their own: approve and deny change the
// request registry and conclude a waiting client through the same grant()/conclude() path as
// the service backend's outcomes, under the broker's single-threaded invariants. A separate
// class would need the broker's private state (friendship) or a wider public interface, and
// would be a second owner of that state.
#include <algorithm>
#include <unordered_map>

#include "daemon/policy/broker.hpp"
#include "daemon/policy/broker_detail.hpp"
#include "jitgate/text.hpp"

namespace jitgate::broker {

using namespace detail;
using std::chrono::duration_cast;
using std::chrono::seconds;

namespace {

bool shares_group(const std::vector<std::string>& mine, const std::vector<std::string>& wanted) {
    return std::any_of(wanted.begin(), wanted.end(), [&](const std::string& g) { return contains(mine, g); });
}

std::string upper(std::string s) {
    for (auto& c : s) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    return s;
}

// How an approver is named in records and messages: the account, and the person whose
// session it acts in when that is someone else ("ops (login carol)").
std::string approver_display(const Caller& c) {
    if (c.login_uid < 0 || c.login_uid == static_cast<std::int64_t>(c.peer.uid)) return c.name;
    return c.name + " (login " + c.login_name + ")";
}

} // namespace

bool Broker::is_approver_anywhere(const Caller& c) const {
    const auto& cfg = *m_config;
    if (shares_group(c.groups, cfg.approval.approver_groups)) return true;
    return std::any_of(cfg.rules.begin(), cfg.rules.end(),
                       [&](const config::Rule& r) { return shares_group(c.groups, r.approver_groups); });
}

// Every caller the handler table lets through (root, any approver) sees every pending request.
std::vector<Json> Broker::pending(const Caller& /*caller*/) const {
    std::vector<const Request*> list;
    for (const auto& [id, q] : m_requests) list.push_back(&q);
    std::sort(list.begin(), list.end(),
              [](const Request* a, const Request* b) { return a->created_unix < b->created_unix; });
    std::vector<Json> out;
    const auto now = now_unix();
    const auto mono = Clock::now();
    for (const Request* q : list) {
        const auto& r = q->session->request;
        Json j{{"id", q->id},
               {"host", m_config->host.name},
               {"user", esc(r.user)},
               {"requester", esc(requester_name(*q->session))},
               {"requester_uid", requester_uid(*q->session)},
               {"kind", r.kind},
               {"rule", q->session->rule->name},
               {"approvals_needed", q->approvals_needed},
               {"approvers", q->approvers},
               {"approver_groups", q->approver_groups},
               {"age_s", now - q->created_unix},
               {"expires_in_s", duration_cast<seconds>(q->deadline - mono).count()},
               {"waiting", q->responder != nullptr},
               {"reason", esc(r.reason)},
               {"ticket", esc(r.ticket)}};
        if (r.kind == "sudo") {
            j["command"] = cut(esc(r.command));
            j["display"] = cut(display_command(r.command, r.run_argv));
            if (r.submit_argv != r.run_argv && !r.submit_argv.empty())
                j["submit_display"] = cut(text::display_argv(r.submit_argv));
            j["runas"] = esc(r.runas_user);
            j["cwd"] = esc(r.cwd);
            add_binding(j, *q->session);
        }
        if (!r.tty.empty()) j["tty"] = esc(r.tty);
        if (!r.service.empty()) j["service"] = esc(r.service);
        if (!q->session->window.empty()) j["window"] = q->session->window;
        if (!r.remote_host.empty()) j["remote_host"] = esc(r.remote_host);
        if (q->session->requester.login_uid >= 0) {
            j["login_uid"] = q->session->requester.login_uid;
            j["login_user"] = esc(q->session->requester.login_name);
        }
        if (!q->extends.empty()) j["extends"] = q->extends; // jitgatectl extend: a new approval of the same action
        out.push_back(std::move(j));
    }
    return out;
}

OpResult Broker::approve(const Caller& c, const std::string& raw_id) {
    const std::string id = upper(raw_id);
    // SECURITY NOTE: with the service backend the service is the only authority; a local
    // approver group must not become a second way in.
    if (!m_backend->allows_local_decisions())
        return {false, "this host's approvals are given at the approval service " + m_backend->location() +
                           ", not with jitgatectl"};
    const auto it = m_requests.find(id);
    if (it == m_requests.end())
        return {false, "no pending request " + esc(raw_id) + " (already decided, timed out or cancelled?)"};
    Request& q = it->second;
    Json refused = event_for(audit::type::error, *q.session);
    refused["approver"] = esc(c.name);
    refused["approver_uid"] = c.peer.uid;
    if (c.login_uid >= 0) {
        refused["approver_login_uid"] = c.login_uid;
        refused["approver_login_user"] = esc(c.login_name);
    }
    // SECURITY NOTE: root is an account, not a person: an approval given as root names nobody
    // an auditor can hold to it, and anyone who can become root on the host (including the
    // requester, once approved) could approve. Off unless approval.allow_root says otherwise.
    if (c.peer.uid == 0 && !m_config->approval.allow_root) {
        refused["refused"] = "root";
        refused["message"] = "approval refused: root may not approve (approval.allow_root is false)";
        audit_refusal(c.peer.uid, refused);
        return {false,
                "root may not approve requests on this host (approval.allow_root is false); approve as yourself"};
    }
    if (!shares_group(c.groups, q.approver_groups)) {
        refused["refused"] = "not_approver";
        refused["message"] = "approval refused: " + esc(c.name) + " is not in " + join_names(q.approver_groups);
        audit_refusal(c.peer.uid, refused);
        return {false, esc(c.name) + " is not in the approver group(s) " + join_names(q.approver_groups) + " of " + id};
    }
    // SECURITY NOTE: identity from the kernel, never from a claim. The approver is the
    // requester if their uid or their session's login uid is the requester's uid or the
    // requester's login uid, or their name is the requester's: a second account name sharing
    // alice's uid, a shared account (ops) used from alice's session, or root in alice's session
    // cannot approve alice either. For su the requester is the caller, not the target account.
    const std::int64_t asker = requester_uid(*q.session);
    const std::int64_t asker_login = q.session->requester.login_uid;
    const auto is_asker = [&](std::int64_t uid) { return uid >= 0 && (uid == asker || uid == asker_login); };
    const bool same_uid = is_asker(static_cast<std::int64_t>(c.peer.uid)) || c.name == requester_name(*q.session);
    if (same_uid || is_asker(c.login_uid)) {
        refused["refused"] = "self_approval";
        refused["message"] = same_uid ? std::string("approval refused: the requester cannot approve their own request")
                                      : "approval refused: the approver acts in the requester's login session "
                                        "(login uid " +
                                            std::to_string(c.login_uid) + ")";
        audit_refusal(c.peer.uid, refused);
        if (same_uid) return {false, "you cannot approve your own request " + id};
        return {false, "you cannot approve your own request " + id + ": this session belongs to " + esc(c.login_name) +
                           " (login uid " + std::to_string(c.login_uid) + "), who asked for it"};
    }
    // One person, one approval: counted by the login uid where the kernel knows it.
    const std::int64_t person = c.login_uid >= 0 ? c.login_uid : static_cast<std::int64_t>(c.peer.uid);
    const std::string shown = approver_display(c);
    if (contains(q.approvers, shown) ||
        std::find(q.approver_uids.begin(), q.approver_uids.end(), person) != q.approver_uids.end())
        return {false, "you have already approved " + id + "; it needs " +
                           text::plural(static_cast<std::uint64_t>(q.approvals_needed), "approval", "approvals") +
                           " from different people"};

    q.approvers.push_back(shown);
    q.approver_uids.push_back(person);
    const auto have = static_cast<int>(q.approvers.size());
    if (have < q.approvals_needed) {
        Json e = event_for(audit::type::approval_recorded, *q.session);
        e["approvers"] = q.approvers;
        e["approvals_needed"] = q.approvals_needed;
        if (!audit(std::move(e))) {
            q.approvers.pop_back();
            q.approver_uids.pop_back();
            return {false, k_approval_not_recorded};
        }
        if (q.responder != nullptr)
            q.responder->notice("jitgate: " + esc(shown) + " approved (" + std::to_string(have) + " of " +
                                    std::to_string(q.approvals_needed) + "); waiting for " +
                                    text::plural(static_cast<std::uint64_t>(q.approvals_needed - have), "more approval",
                                                 "more approvals") +
                                    ".",
                                -1);
        return {true, "approval recorded for " + id + " (" + std::to_string(have) + " of " +
                          std::to_string(q.approvals_needed) + ")"};
    }

    return grant(q, esc(join_names(q.approvers)), 0, Json::object());
}

OpResult Broker::deny(const Caller& c, const std::string& raw_id, const std::string& reason) {
    const std::string id = upper(raw_id);
    if (!m_backend->allows_local_decisions())
        return {false, "this host's requests are decided at the approval service " + m_backend->location() +
                           ", not with jitgatectl"};
    const auto it = m_requests.find(id);
    if (it == m_requests.end())
        return {false, "no pending request " + esc(raw_id) + " (already decided, timed out or cancelled?)"};
    Request& q = it->second;
    if (!shares_group(c.groups, q.approver_groups))
        return {false, esc(c.name) + " is not in the approver group(s) " + join_names(q.approver_groups) + " of " + id};
    const std::string why = trim(reason).empty() ? "no reason given" : esc(trim(reason));
    Json e = event_for(audit::type::denied, *q.session);
    e["denied_by"] = esc(c.name);
    e["deny_reason"] = why;
    e["approvers"] = q.approvers;
    e["outcome"] = "denied";
    audit(std::move(e)); // a deny stands even if it could not be recorded
    msg::Decision d = deny_with(msg::Outcome::denied,
                                "jitgate: request " + id + " denied by " + esc(c.name) + ": " + why, *q.session);
    d.request_id = id;
    conclude(q, d);
    return {true, "denied " + id};
}

std::vector<Json> Broker::list_grants(const Caller& c) {
    const bool all = c.peer.uid == 0 || is_approver_anywhere(c);
    std::vector<Json> out;
    const auto now = now_unix();
    for (const auto& g : m_grants.list(Clock::now())) {
        if (!all && g.user != c.name && g.requester != c.name) continue;
        Json j{{"id", g.id},
               {"request_id", g.request_id},
               {"user", esc(g.user)},
               {"requester", esc(g.requester)},
               {"kind", g.kind},
               {"scope", config::to_string(g.scope)},
               {"rule", g.rule},
               {"approvers", g.approvers},
               {"granted", g.granted_unix},
               {"expires", g.expires_unix},
               {"expires_in_s", g.expires_unix - now}};
        if (!g.window.empty()) j["window"] = g.window;
        if (!g.auto_condition.empty()) j["auto_approved"] = g.auto_condition;
        if (g.scope == config::Scope::command) {
            j["display"] = cut(display_command(g.command, g.argv));
            j["runas"] = esc(g.runas_user);
            if (!g.runas_group.empty()) j["runas_group"] = esc(g.runas_group);
            if (!g.cwd.empty()) j["run_cwd"] = esc(g.cwd);
            if (!g.chroot.empty()) j["chroot"] = esc(g.chroot);
            if (!g.env.empty()) j["env"] = escaped_argv(g.env);
        }
        out.push_back(std::move(j));
    }
    return out;
}

OpResult Broker::revoke(const Caller& c, const std::string& grant_id, const std::string& reason) {
    auto g = m_grants.revoke(upper(grant_id));
    if (!g) return {false, "no live grant " + esc(grant_id)};
    const std::size_t ended = end_revoked_grant(*g, esc(c.name), "", reason, Json::object());
    return {true, "revoked " + g->id +
                      (ended == 0 ? std::string() : "; ended " + text::plural(ended, "session", "sessions"))};
}

// SECURITY NOTE: the service's word ends only a grant this host holds for that very request and
// that very service grant (jti): a revocation naming another request's grant, a local grant or
// an id this host never saw changes nothing.
bool Broker::revoked_at_service(const std::string& request_id, const std::string& service_grant_id,
                                const std::string& revoked_by, const std::string& reason, const Json& extra) {
    return revoked_at_service_batch({{request_id, service_grant_id, revoked_by, reason, extra}}).front();
}

std::vector<bool> Broker::revoked_at_service_batch(const std::vector<ServiceRevocation>& batch) {
    std::vector<bool> out(batch.size(), false);
    if (batch.empty()) return out;
    // The live grants that came from the service, by request id: looked up once per page, not
    // once per entry (a page may hold 1,000 entries, the cache many grants).
    std::unordered_multimap<std::string, std::pair<std::string, std::string>> by_request; // rid -> (jti, id)
    for (const grants::Grant& g : m_grants.list(Clock::now()))
        if (!g.service_grant_id.empty()) by_request.emplace(g.request_id, std::pair{g.service_grant_id, g.id});
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const ServiceRevocation& r = batch[i];
        if (r.request_id.empty() || r.service_grant_id.empty()) continue;
        std::string id;
        const auto [first, last] = by_request.equal_range(r.request_id);
        for (auto it = first; it != last; ++it)
            if (it->second.first == esc(r.service_grant_id)) {
                id = it->second.second;
                break;
            }
        if (id.empty()) continue;
        auto g = m_grants.revoke(id); // nullopt: ended meanwhile, or by an earlier entry
        if (!g) continue;
        Json e = r.extra;
        e["service_grant_id"] = g->service_grant_id;
        e["revoked_at_service"] = true;
        end_revoked_grant(*g, esc(r.revoked_by), " at the approval service", r.reason, e);
        out[i] = true;
    }
    return out;
}

std::size_t Broker::end_revoked_grant(const grants::Grant& g, const std::string& revoked_by, const std::string& where,
                                      const std::string& reason, const Json& extra) {
    Json e{{"type", audit::type::grant_revoked},
           {"grant_id", g.id},
           {"request_id", g.request_id},
           {"user", esc(g.user)},
           {"kind", g.kind},
           {"rule", g.rule},
           {"revoked_by", revoked_by},
           {"reason", esc(trim(reason))}};
    for (const auto& [key, value] : extra.items()) e[key] = value;
    audit(std::move(e));
    // Access ends when the grant ends: its live sessions end now, with a line saying why.
    const std::string why = trim(reason).empty() ? std::string() : " (" + cut(esc(trim(reason))) + ")";
    const auto endings = m_live.end_grant(g.id, "revoke",
                                          "jitgate: grant " + g.id + " was revoked by " + revoked_by + where + why +
                                              "; ending this session now.",
                                          Clock::now());
    Json ended_extra{{"revoked_by", revoked_by}};
    if (!where.empty()) ended_extra["revoked_at_service"] = true;
    record_endings(endings, ended_extra);
    return endings.size();
}

} // namespace jitgate::broker
