// daemon/policy/auto_approve.cpp — automatic approval (docs/config.md, "Automatic approval"): a
// require_approval rule's auto_approve conditions, judged after the reason and ticket were
// given, and the grant that follows, recorded as access.auto_approved (never as a person's
// access.approved).
#include <cstdio>

#include "daemon/config/windows.hpp"
#include "daemon/policy/binding.hpp"
#include "daemon/policy/broker.hpp"
#include "daemon/policy/broker_detail.hpp"

namespace jitgate::broker {

std::string Broker::auto_approval(const CheckSession& s) const {
    const config::AutoApprove& a = s.rule->auto_approve;
    if (!a.set || s.rule->action != config::Action::require_approval) return {};
    // SECURITY NOTE: validate() refuses both of these; checked again because an automatic
    // approval must never be the result of a config that slipped past it (a Config built in
    // code, a future key): two approvals keep one person from acting alone, and with backend
    // service only the service approves.
    if (s.rule->approvals >= 2 && !s.rule->auto_approve_sod) return {};
    if (m_config->approval.backend != "local" || !m_backend->allows_local_decisions()) return {};
    const auto now = m_wall_clock();
    std::string held;
    const auto add = [&held](const std::string& condition) { held += (held.empty() ? "" : "+") + condition; };
    if (a.on_call) {
        // Read at each use: the on-call sync rewrites the file whenever the rota changes.
        std::vector<windows::OnCall> list;
        if (const auto error = windows::read_on_call_file(m_config->approval.on_call_file, list)) {
            // Fail closed: a broken rota approves nobody; the request goes to people.
            std::fprintf(stderr, "jitgated: warning: no automatic approval by rule '%s' (on_call): %s\n",
                         s.rule->name.c_str(), esc(*error).c_str());
            return {};
        }
        if (!windows::on_call(list, requester_name(s), now)) return {};
        add("on_call");
    }
    if (!a.commands.empty()) {
        const auto id_of = [](const std::string& path) -> std::optional<std::pair<std::int64_t, std::int64_t>> {
            const auto id = binding::file_id(path);
            if (!id) return std::nullopt;
            return std::pair{id->dev, id->ino};
        };
        if (!rules::commands_listed(a.commands, s.facts, id_of)) return {};
        add("commands");
    }
    if (!a.window.empty()) {
        const config::Window* w = windows::find(*m_config, a.window);
        if (w == nullptr || !windows::holds(*w, now)) return {};
        add("window " + a.window);
    }
    return held;
}

Step Broker::approve_automatically(CheckSession& s, Responder& responder, const std::string& condition) {
    const auto& cfg = *m_config;
    Request q;
    q.id = new_id("R-");
    s.request_id = q.id;
    q.approvals_needed = s.rule->approvals;
    q.approver_groups = s.rule->approver_groups.empty() ? cfg.approval.approver_groups : s.rule->approver_groups;
    q.created_unix = detail::now_unix();
    q.deadline = Clock::now() + s.rule->timeout;
    q.session = s;
    q.responder = &responder;
    q.live = &s;
    // Not filed with the backend and not listed as pending: nobody is asked. The grant is the
    // same time-boxed, bound grant a person's approval makes; its one record says who decided.
    const Json extra{{"type", audit::type::auto_approved}, {"condition", condition}, {"auto_approved", true}};
    grant(q, "jitgate automatically (" + condition + ")", 0, extra);
    return Step::done;
}

} // namespace jitgate::broker
