// daemon/policy/auto_approve.cpp — automatic approval (docs/config.md, "Automatic approval"): a
// require_approval rule's auto_approve conditions, judged after the reason and ticket were
// given, and the grant that follows, recorded as access.auto_approved (never as a person's
// access.approved).
#include <sys/stat.h>

#include "daemon/policy/binding.hpp"
#include "daemon/policy/broker.hpp"
#include "daemon/policy/broker_detail.hpp"
#include "lib/config_file.hpp"
#include "lib/time_windows.hpp"

namespace jitgate::broker {

namespace {

// Why the program at the canonical `path` is not one only root can change; nullopt if it is.
std::optional<std::string> untrusted_program(const std::string& path) {
    struct stat st {};
    if (path.empty() || path[0] != '/' || lstat(path.c_str(), &st) != 0) return "cannot be checked";
    if (!S_ISREG(st.st_mode)) return "is not a regular file";
    if (st.st_uid != 0) return "is not owned by root";
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) return "is group- or world-writable";
    return config::check_directory_chain(path, 0);
}

} // namespace

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
        // SECURITY NOTE: a login's requester is the account itself (sshd runs as root), so
        // "on call" would approve whoever holds the account's credentials: validate() refuses
        // on_call on a login-only rule, and a login is never approved by on_call here.
        if (s.request.kind == "login") return {};
        // Read at each use: the on-call sync rewrites the file whenever the rota changes.
        std::vector<windows::OnCall> list;
        if (const auto error = windows::read_on_call_file(m_config->approval.on_call_file, list)) {
            // Fail closed: a broken rota approves nobody; the request goes to people.
            windows::warn_throttled("jitgated: warning: no automatic approval by rule '" + s.rule->name +
                                    "' (on_call): " + esc(*error));
            return {};
        }
        if (!windows::on_call(list, requester_name(s), now)) return {};
        // SECURITY NOTE: the real uid says whose process asks, not who sits at the keyboard:
        // anyone who can run processes as an on-call user (sudo -u, su, a shared account) would
        // be approved as them. Where the session's login uid is known, that person must be on
        // call too; a login uid whose name is unknown approves nobody.
        if (s.requester.login_uid >= 0 &&
            (s.requester.login_name.empty() || !windows::on_call(list, s.requester.login_name, now)))
            return {};
        add("on_call");
    }
    if (!a.commands.empty()) {
        const rules::FileIdOf id_of = binding::file_id_pair;
        if (!rules::commands_listed(a.commands, s.facts, id_of)) return {};
        // SECURITY NOTE: validate() requires an absolute path in every entry; checked here too
        // that the program is one only root can change (file and every directory above it), so
        // a name that matched a user's own script (~/bin/journalctl) approves nothing. In a
        // chroot the daemon cannot see the program: no automatic approval by command.
        if (!s.request.chroot.empty()) return {};
        if (const auto why = untrusted_program(s.program)) {
            windows::warn_throttled("jitgated: warning: no automatic approval by rule '" + s.rule->name +
                                    "' (commands): program " + esc(s.program) + ": " + esc(*why));
            return {};
        }
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
    q.session = share_session(s);
    q.responder = &responder;
    q.live = &s;
    // Not filed with the backend and not listed as pending: nobody is asked. The grant is the
    // same time-boxed, bound grant a person's approval makes; its one record says who decided.
    const Json extra{{"type", audit::type::auto_approved}, {"condition", condition}, {"auto_approved", true}};
    grant(q, "jitgate automatically (" + condition + ")", 0, extra);
    return Step::done;
}

} // namespace jitgate::broker
