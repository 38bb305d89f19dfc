// daemon/policy/live_ops.cpp — the broker's part in "access ends when the grant ends"
// (docs/sessions.md): recording the live sessions that grants admit, recording how they end,
// and the requester's own operations (sessions, done, requests).
//
// Broker members for the reason admin.cpp gives: they change the grant cache and the
// live-session registry under the broker's single-threaded invariants.
#include <algorithm>

#include "daemon/policy/binding.hpp"
#include "daemon/policy/broker.hpp"
#include "daemon/policy/broker_detail.hpp"
#include "jitgate/text.hpp"

namespace jitgate::broker {

using namespace detail;

namespace {

// Decided requests kept for `jitgatectl requests`: at most this many, none older than this.
// SECURITY NOTE: memory stays bounded whatever local users file; the audit trail, not this
// list, is the record.
constexpr std::size_t k_decided_max = 1000;
constexpr std::int64_t k_decided_max_age_s = 24 * 3600;
// The cap of waiting requests per person, as broker.cpp's k_max_pending_per_user.
constexpr std::size_t k_max_pending_extensions = 100;

std::string upper_id(std::string s) {
    for (auto& c : s) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    return s;
}

const char* event_type_for(const std::string& reason) {
    if (reason == "expiry") return audit::type::session_ended_by_expiry;
    if (reason == "kept") return audit::type::session_kept_after_expiry;
    if (reason == "killed") return audit::type::session_killed;
    return audit::type::session_ended_by_revoke; // revoke, released
}

} // namespace

bool Broker::track(const CheckSession& s, const msg::Decision& d) {
    // A sub-command under intercept runs inside the sudo already followed (the same front end).
    if (d.grant_id.empty() || s.request.kind != "sudo" || s.request.intercepted) return true;
    const grants::Grant* g = m_grants.by_id(d.grant_id, Clock::now());
    if (g == nullptr || (g->scope != config::Scope::command && g->scope != config::Scope::session)) return true;
    live::Session ls;
    ls.kind = "sudo";
    ls.user = s.request.user;
    ls.uid = s.request.uid;
    ls.requester = requester_name(s);
    ls.requester_uid = requester_uid(s);
    // SECURITY NOTE: the kernel's pid of the connected sudo front end (SO_PEERCRED), not the
    // request's "pid" claim.
    ls.pid = s.peer.pid;
    ls.tty = s.request.tty;
    ls.grant_id = g->id;
    ls.request_id = g->request_id;
    ls.what = cut(display_command(s.request.command, s.request.run_argv));
    ls.expires_unix = g->expires_unix;
    ls.expires = g->expires;
    ls.keep = g->keep_sessions;
    const bool keep = g->keep_sessions;
    const std::string grant_id = g->id;
    if (m_live.count_for(ls.requester_uid) < live::k_max_sessions_per_requester &&
        m_live.add(std::move(ls), Clock::now()))
        return true;
    std::fprintf(stderr, "jitgated: cannot follow sudo pid %d under grant %s (gone or too many sessions)\n",
                 static_cast<int>(s.peer.pid), grant_id.c_str());
    // A session kept past its grant anyway loses nothing by not being followed.
    return keep;
}

bool Broker::track_login(const msg::SessionReport& r, const identity::Peer& peer) {
    if (r.grant_id.empty()) return true;
    const grants::Grant* g = m_grants.by_id(upper_id(r.grant_id), Clock::now());
    // Only a login grant of this very user admits a login session.
    if (g == nullptr || g->kind != "login" || g->user != r.user) return true;
    live::Session ls;
    ls.kind = "login";
    ls.user = r.user;
    ls.uid = r.uid;
    ls.requester = g->requester;
    ls.requester_uid = g->requester_uid;
    // SECURITY NOTE: the process that opened the PAM session (sshd's session process, login),
    // as the kernel names the connected peer.
    ls.pid = peer.pid;
    ls.tty = r.tty;
    ls.grant_id = g->id;
    ls.request_id = g->request_id;
    ls.what = esc(r.service) + (r.remote_host.empty() ? "" : " from " + esc(r.remote_host));
    ls.expires_unix = g->expires_unix;
    ls.expires = g->expires;
    ls.keep = g->keep_sessions;
    const bool keep = g->keep_sessions;
    const std::string grant_id = g->id;
    if (m_live.count_for(ls.requester_uid) < live::k_max_sessions_per_requester &&
        m_live.add(std::move(ls), Clock::now()))
        return true;
    std::fprintf(stderr, "jitgated: cannot follow login pid %d under grant %s (gone or too many sessions)\n",
                 static_cast<int>(peer.pid), grant_id.c_str());
    return keep;
}

void Broker::record_endings(const std::vector<live::Ended>& endings, const Json& extra) {
    for (const auto& x : endings) {
        const auto& s = x.session;
        Json e{{"type", event_type_for(x.reason)},
               {"kind", s.kind},
               {"user", esc(s.user)},
               {"uid", s.uid},
               {"requester", esc(s.requester)},
               {"requester_uid", s.requester_uid},
               {"grant_id", s.grant_id},
               {"request_id", s.request_id},
               {"pid", s.pid},
               {"reason", x.reason},
               {"what", s.what},
               {"grant_expires", s.expires_unix},
               {"started", s.started_unix}};
        if (!s.tty.empty()) e["tty"] = esc(s.tty);
        if (x.reason != "kept") {
            e["signalled"] = x.signalled;
            e["tty_told"] = x.tty_told;
            if (x.gone) e["already_gone"] = true;
            if (!x.signalled && !x.gone) e["signal_error"] = x.signal_error;
        }
        for (const auto& [key, value] : extra.items()) e[key] = value;
        if (!x.signalled && !x.gone && x.reason != "kept")
            std::fprintf(stderr, "jitgated: could not signal pid %d to end its session under grant %s: %s\n",
                         static_cast<int>(s.pid), s.grant_id.c_str(), x.signal_error.c_str());
        audit(std::move(e));
    }
}

void Broker::remember_decision(const Request& q, const msg::Decision& d) {
    const auto& r = q.session->request;
    Json j{{"id", q.id},
           {"user", esc(r.user)},
           {"kind", r.kind},
           {"rule", q.session->rule->name},
           {"state", "decided"},
           {"outcome", msg::to_string(d.outcome)},
           {"message", d.message},
           {"approvers", q.approvers},
           {"created", q.created_unix},
           {"decided", now_unix()}};
    if (r.kind == "sudo") j["display"] = cut(display_command(r.command, r.run_argv));
    if (!d.grant_id.empty()) j["grant_id"] = d.grant_id;
    m_decided.push_back(Decided{requester_uid(*q.session), now_unix(), std::move(j)});
    while (m_decided.size() > k_decided_max) m_decided.pop_front();
}

std::vector<Json> Broker::my_requests(const Caller& c) const {
    const auto uid = static_cast<std::int64_t>(c.peer.uid);
    const auto now = now_unix();
    const auto mono = Clock::now();
    std::vector<Json> out;
    std::vector<const Request*> waiting;
    for (const auto& [id, q] : m_requests)
        if (requester_uid(*q.session) == uid) waiting.push_back(&q);
    std::sort(waiting.begin(), waiting.end(),
              [](const Request* a, const Request* b) { return a->created_unix < b->created_unix; });
    for (const Request* q : waiting) {
        const auto& r = q->session->request;
        Json j{{"id", q->id},
               {"user", esc(r.user)},
               {"kind", r.kind},
               {"rule", q->session->rule->name},
               {"state", "pending"},
               {"approvals_needed", q->approvals_needed},
               {"approvers", q->approvers},
               {"approver_groups", q->approver_groups},
               {"created", q->created_unix},
               {"expires_in_s", std::chrono::duration_cast<std::chrono::seconds>(q->deadline - mono).count()},
               {"waiting", q->responder != nullptr}};
        if (r.kind == "sudo") j["display"] = cut(display_command(r.command, r.run_argv));
        if (!q->extends.empty()) j["extends"] = q->extends;
        out.push_back(std::move(j));
    }
    for (const auto& d : m_decided)
        if (d.requester_uid == uid && now - d.decided_unix <= k_decided_max_age_s) out.push_back(d.view);
    return out;
}

std::vector<Json> Broker::sessions(const Caller& c) {
    const bool all = c.peer.uid == 0 || is_approver_anywhere(c);
    const auto now = now_unix();
    std::vector<Json> out;
    for (const auto& s : m_live.list()) {
        if (!all && s.user != c.name && s.requester != c.name) continue;
        Json j{{"user", esc(s.user)},
               {"requester", esc(s.requester)},
               {"kind", s.kind},
               {"pid", s.pid},
               {"tty", esc(s.tty)},
               {"grant_id", s.grant_id},
               {"request_id", s.request_id},
               {"what", s.what},
               {"started", s.started_unix},
               {"expires", s.expires_unix},
               {"expires_in_s", s.expires_unix - now},
               {"on_expiry", s.keep ? "keep" : "end"}};
        if (s.stage == live::Session::Stage::ending) j["ending"] = s.end_reason;
        if (s.stage == live::Session::Stage::kept) j["kept"] = true;
        out.push_back(std::move(j));
    }
    return out;
}

OpResult Broker::release(const Caller& c, const std::string& raw_id) {
    const auto uid = static_cast<std::int64_t>(c.peer.uid);
    std::vector<std::string> ids;
    if (raw_id.empty()) {
        for (const auto& g : m_grants.list(Clock::now()))
            if (g.requester_uid == uid) ids.push_back(g.id);
        if (ids.empty()) return {false, "you have no live grants"};
    } else {
        const std::string id = upper_id(raw_id);
        const grants::Grant* g = m_grants.by_id(id, Clock::now());
        if (g == nullptr) return {false, "no live grant " + esc(raw_id)};
        // SECURITY NOTE: by the kernel's uid of the caller: only the person the grant was
        // given to (or root) ends it this way; approvers use revoke, which is recorded as theirs.
        if (c.peer.uid != 0 && g->requester_uid != uid)
            return {false, "grant " + id + " is not yours (use jitgatectl revoke as an approver)"};
        ids.push_back(id);
    }
    std::size_t ended = 0;
    for (const auto& id : ids) {
        auto g = m_grants.revoke(id);
        if (!g) continue;
        audit(Json{{"type", audit::type::grant_released},
                   {"grant_id", g->id},
                   {"request_id", g->request_id},
                   {"user", esc(g->user)},
                   {"uid", uid},
                   {"kind", g->kind},
                   {"rule", g->rule},
                   {"released_by", esc(c.name)}});
        const auto endings = m_live.end_grant(
            g->id, "released",
            "jitgate: grant " + g->id + " was released by " + esc(c.name) + "; ending this session now.", Clock::now());
        ended += endings.size();
        record_endings(endings, Json{{"released_by", esc(c.name)}});
    }
    return {true, "released " + join_names(ids) +
                      (ended == 0 ? std::string() : "; ended " + text::plural(ended, "session", "sessions"))};
}

void Broker::remember_origin(const std::string& grant_id, const Request& q) {
    const auto now = Clock::now();
    std::erase_if(m_grant_origin, [&](const auto& kv) { return m_grants.by_id(kv.first, now) == nullptr; });
    CheckSession origin = *q.session;
    origin.request_id.clear();
    origin.awaiting.clear();
    m_grant_origin.insert_or_assign(grant_id, std::move(origin));
}

OpResult Broker::extend(const Caller& c, const std::string& raw_id, const std::string& reason) {
    const std::string id = upper_id(raw_id);
    const grants::Grant* g = m_grants.by_id(id, Clock::now());
    const auto origin = m_grant_origin.find(id);
    if (g == nullptr || origin == m_grant_origin.end()) return {false, "no live grant " + esc(raw_id)};
    // SECURITY NOTE: by the kernel's uid: only the person the grant was given to asks for more
    // of it; the approvers then judge it like any request (and the requester cannot approve it).
    if (g->requester_uid != static_cast<std::int64_t>(c.peer.uid))
        return {false, "grant " + id + " is not yours; only its requester may ask to extend it"};
    for (const auto& [rid, q] : m_requests)
        if (q.extends == id) return {false, "request " + rid + " to extend " + id + " is already waiting"};
    if (m_requests.count_for(requester_uid(origin->second)) >= k_max_pending_extensions ||
        m_requests.size() >= static_cast<std::size_t>(m_config->daemon.max_pending))
        return {false, "too many requests are waiting; try again later"};
    if (const auto full = spool_full_refusal(false); !full.empty()) return {false, full};

    Request q;
    q.session = std::make_shared<CheckSession>(origin->second);
    CheckSession& s = *q.session;
    // SECURITY NOTE: an extension is judged by the rules as they are now, not as they were when
    // the grant was approved: the same require_approval rule must still match at this instant,
    // and its current approvals, approver groups, TTL and on_expiry apply.
    if (const std::string changed = window_change(s); !changed.empty())
        return {false, "grant " + id + " cannot be extended: " + changed + " (ask for it anew)"};
    {
        const rules::FileIdOf id_of = binding::file_id_pair;
        const config::Rule* now_rule = rules::first_match(*m_config, s.facts, m_wall_clock(), id_of);
        s.rule = now_rule != nullptr ? std::shared_ptr<const config::Rule>(m_config, now_rule)
                                     : std::shared_ptr<const config::Rule>(std::shared_ptr<const config::Rule>{},
                                                                           &rules::default_rule());
        if (s.rule->action != config::Action::require_approval)
            return {false,
                    "grant " + id + " cannot be extended: its rule '" + s.rule->name + "' no longer asks for approval"};
    }
    const std::string why = trim(reason).empty() ? "extension of " + id : trim(reason);
    s.request.reason = why.substr(0, 1024);
    q.id = new_id("R-");
    s.request_id = q.id;
    q.extends = id;
    q.approvals_needed = s.rule->approvals;
    q.approver_groups = s.rule->approver_groups.empty() ? m_config->approval.approver_groups : s.rule->approver_groups;
    q.created_unix = now_unix();
    q.deadline = Clock::now() + s.rule->timeout;
    try {
        m_backend->prepare(q);
    } catch (const std::exception& e) {
        return {false, std::string("this extension cannot be sent for approval: ") + esc(e.what())};
    }
    Json e = event_for(audit::type::requested, s);
    e["approvals_needed"] = q.approvals_needed;
    e["approver_groups"] = q.approver_groups;
    e["scope"] = config::to_string(s.rule->scope);
    e["ttl_s"] = static_cast<std::int64_t>(s.rule->ttl.count());
    e["timeout_s"] = static_cast<std::int64_t>(s.rule->timeout.count());
    e["waiting"] = false;
    e["extends"] = id;
    m_backend->describe(e);
    if (!audit(std::move(e))) return {false, "the audit spool cannot be written; nothing was filed"};
    const std::string rid = q.id;
    const std::string ttl = config::format_duration(s.rule->ttl);
    m_backend->submit(q);
    const std::string how = m_backend->how_to_approve(rid);
    m_requests.add(std::move(q)); // `s` is gone with it
    return {true, "request " + rid + " filed to extend " + id + " by " + ttl + " from its approval (" + how +
                      "); until then " + id + " ends as before"};
}

} // namespace jitgate::broker
