// daemon/policy/intercept.cpp — sudo's intercept mode (docs/intercept.md): the checks of the
// programs a command executes inside sudo (sub-commands), and rules that require intercept.
//
// A sub-command is judged on the fast path only: the rules (allow, deny), then the live grant
// that admitted its parent command. It never files a request and never prompts: there is no
// conversation with the user inside the shell, and an approver cannot be kept waiting on every
// `ls`. What it can pass is never more than a fresh `sudo <sub-command>` by the same person
// would pass without asking, and each one is recorded as command.intercepted.
#include <algorithm>
#include <cstdlib>

#include "daemon/policy/binding.hpp"
#include "daemon/policy/broker.hpp"
#include "daemon/policy/broker_detail.hpp"

namespace jitgate::broker {
namespace detail {

std::string intercept_refusal(const CheckSession& s) {
    const auto& r = s.request;
    if (r.kind != "sudo" || r.intercepted || !s.rule->intercept || s.rule->action == config::Action::deny) return {};
    using Intercept = msg::CheckRequest::Intercept;
    const std::string head = "jitgate: denied: rule '" + s.rule->name +
                             "' requires sudo's intercept mode, so that every program this command runs is checked "
                             "too; ";
    if (r.intercept == Intercept::on) {
        // SECURITY NOTE: intercept that can be slipped past is no intercept (docs/intercept.md).
        if (r.intercept_limit == "dso")
            return head + "sudo would intercept through a preloaded library, which static programs and direct "
                          "system calls escape: ask the admin for 'Defaults intercept_type=trace' in sudoers";
        if (r.intercept_limit == "no_verify")
            return head + "sudo would not verify that what runs is what was checked: ask the admin to remove "
                          "'!intercept_verify' from sudoers";
        if (r.intercept_limit == "traced")
            return head + "this sudo is itself being traced (a debugger or strace), so sudo could not trace the "
                          "command: run sudo without it";
        return {};
    }
    // SECURITY NOTE: a client that does not say is treated as one without intercept (fail closed).
    if (r.intercept == Intercept::unknown)
        return head + "this sudo plugin does not report it (update jitgate's sudo plugin)";
    return head + "ask the admin to enable 'Defaults intercept' (or the INTERCEPT tag) in sudoers for this command";
}

} // namespace detail

namespace {

using namespace detail;

// The action a grant was made for, as GrantCache::add keys it.
grants::Action action_of_grant(const grants::Grant& g) {
    grants::Action a{g.user, g.kind,        g.rule,   g.runas_user, g.command, &g.argv,
                     g.cwd,  g.runas_group, g.chroot, g.program,    &g.env};
    a.requester_uid = g.requester_uid;
    a.login_uid = g.login_uid;
    return a;
}

} // namespace

Step Broker::check_intercepted(CheckSession& s, Responder& responder) {
    const auto& cfg = *m_config;
    const auto& r = s.request;
    const rules::FileIdOf id_of = binding::file_id_pair;
    const config::Rule* rule = rules::first_match(cfg, s.facts, m_wall_clock(), id_of);
    s.rule = rule != nullptr
                 ? std::shared_ptr<const config::Rule>(m_config, rule)
                 : std::shared_ptr<const config::Rule>(std::shared_ptr<const config::Rule>{}, &rules::default_rule());

    Json e = event_for(audit::type::command_intercepted, s);
    if (!r.parent_request_id.empty()) e["request_id"] = esc(r.parent_request_id);
    if (!r.parent_grant_id.empty()) e["grant_id"] = esc(r.parent_grant_id);
    const std::string what = "jitgate: denied: " + esc(r.command) + " (run inside sudo): ";
    const auto deny = [&](std::string message, const char* why) {
        e["decision"] = "denied";
        e["why"] = why;
        return decide(s, responder, deny_with(msg::Outcome::denied, std::move(message), s), e);
    };
    const auto allow = [&](msg::Outcome outcome, const std::string& grant_id, const char* why) {
        msg::Decision d;
        d.allow = true;
        d.outcome = outcome;
        d.rule = s.rule->name;
        d.grant_id = grant_id;
        d.request_id = r.parent_request_id;
        e["decision"] = "allowed";
        e["why"] = why;
        return decide(s, responder, d, e);
    };

    switch (s.rule->action) {
    case config::Action::allow:
        // SECURITY NOTE: sudo resets a fresh sudo's environment but hands a sub-command the
        // shell's as it is. An allow rule admits a program, not code the environment makes it
        // load without executing anything (LD_PRELOAD, PYTHONPATH, BASH_ENV, ...), which sudo
        // would not see; a program the environment makes it execute is a sub-command itself.
        if (const auto loaders = binding::hidden_code_loading(r.run_env); !loaders.empty() || r.env_truncated) {
            e["env_code_loading"] = escaped_argv(loaders);
            return deny(what + "its environment sets " +
                            (loaders.empty() ? std::string("more than can be checked") : join_names(loaders)) +
                            ", which a sudo of its own would remove; rule '" + s.rule->name +
                            "' allows the program, not code loaded into it",
                        "code_loading_env");
        }
        return allow(msg::Outcome::allowed_by_rule, {}, "rule");
    case config::Action::deny:
        return deny(what + "denied by rule '" + s.rule->name + "'" +
                        (s.rule->message.empty() ? std::string() : ": " + s.rule->message),
                    "rule");
    case config::Action::require_approval:
        break;
    }

    if (r.parent_grant_id.empty()) {
        // A break-glass command's sub-commands pass as break-glass, under the same conditions.
        if (!r.break_glass_reason.empty()) {
            const auto& bg = cfg.break_glass;
            e["break_glass_reason"] = esc(r.break_glass_reason);
            if (!bg.group.empty() && contains(s.facts.user_groups, bg.group) &&
                trim(r.break_glass_reason).size() >= bg.min_reason_length)
                return allow(msg::Outcome::break_glass, {}, "break_glass");
            return deny(what + "break-glass refused for " + esc(r.user), "break_glass_refused");
        }
        return deny(what + "no grant admitted the command that runs it (rule '" + s.rule->name +
                        "' needs approval), and a command inside sudo is never sent for approval; run it with "
                        "sudo on its own",
                    "no_grant");
    }

    // SECURITY NOTE: only the grant that admitted the parent counts, and only while it lives:
    // once it has expired or been revoked, every further sub-command is refused.
    const auto live = m_grants.list(Clock::now());
    const auto g =
        std::find_if(live.begin(), live.end(), [&](const grants::Grant& x) { return x.id == r.parent_grant_id; });
    if (g == live.end())
        return deny(what + "grant " + esc(r.parent_grant_id) +
                        " that admitted this sudo has expired or was revoked; nothing more runs under it",
                    "grant_gone");
    grants::Action a{r.user,        r.kind,   s.rule->name, r.runas_user, r.command, &r.run_argv, binding::run_cwd(r),
                     r.runas_group, r.chroot, s.program,    &s.bound_env};
    a.requester_uid = requester_uid(s);
    a.login_uid = s.requester.login_uid;
    // Covered exactly when the cache would find this grant for `sudo <sub-command>`: scope
    // session covers the same person's commands under the grant's rule; scope command only
    // the very command it was granted for (so, in practice, none of its children).
    if (grants::GrantCache::key_for(a, g->scope) != grants::GrantCache::key_for(action_of_grant(*g), g->scope)) {
        e["scope"] = config::to_string(g->scope);
        if (g->scope == config::Scope::command)
            return deny(what + "grant " + g->id +
                            " has scope command and covers only the command it was approved for; a rule must "
                            "allow what it runs, or use a scope session rule",
                        "not_covered");
        return deny(what + "it falls under rule '" + s.rule->name + "', and grant " + g->id + " covers only rule '" +
                        g->rule + "' for " + esc(g->requester),
                    "not_covered");
    }
    e["scope"] = config::to_string(g->scope);
    e["expires"] = g->expires_unix;
    e["request_id"] = esc(g->request_id); // the grant's, not the plugin's word for it
    return allow(msg::Outcome::grant, g->id, "grant");
}

} // namespace jitgate::broker
