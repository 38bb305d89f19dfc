// daemon/policy/broker.cpp — the decision pipeline: rules, grants, prompts, requests and their
// outcomes. The jitgatectl operations (pending, grants, approve, deny, revoke) are in admin.cpp.
#include "daemon/policy/broker.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sys/random.h>

#include "daemon/approval/local.hpp"
#include "daemon/policy/binding.hpp"
#include "daemon/policy/broker_detail.hpp"
#include "jitgate/error.hpp"
#include "jitgate/passwd.hpp"
#include "jitgate/text.hpp"

namespace jitgate::broker {
namespace detail {

using std::chrono::duration_cast;
using std::chrono::seconds;

std::int64_t now_unix() {
    return duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

void add_binding(Json& j, const CheckSession& s) {
    const auto& r = s.request;
    if (!r.runas_group.empty()) j["runas_group"] = esc(r.runas_group);
    const std::string where = binding::run_cwd(r);
    if (!where.empty()) j["run_cwd"] = esc(where);
    if (!r.chroot.empty()) j["chroot"] = esc(r.chroot);
    if (!s.program.empty() && s.program != r.command) j["program"] = esc(s.program);
    if (!s.bound_env.empty()) {
        j["env"] = escaped_argv(s.bound_env);
        const auto loaders = binding::code_loading_names(s.bound_env);
        if (!loaders.empty()) j["env_code_loading"] = escaped_argv(loaders);
    }
}

msg::Decision deny_with(msg::Outcome outcome, std::string message, const CheckSession& s) {
    msg::Decision d;
    d.allow = false;
    d.outcome = outcome;
    d.message = std::move(message);
    d.rule = s.rule->name;
    d.request_id = s.request_id;
    return d;
}

} // namespace detail

namespace {

using namespace detail;

using std::chrono::duration_cast;
using std::chrono::seconds;

constexpr std::size_t k_max_reason = 1024;
// SECURITY NOTE: std::regex backtracks; a bounded ticket keeps a hostile one cheap to match.
constexpr std::size_t k_max_ticket = 128;
// SECURITY NOTE: one user cannot fill the host's pending slots for everyone else.
constexpr std::size_t k_max_pending_per_user = 100;
// What the user, and the approver, are told when an event cannot be made durable.
constexpr const char* k_spool_unwritable = "jitgate: denied: the audit spool cannot be written (see jitgated's log)";

// Everything an approval of `s` in scope command is bound to; the grant cache's key and the
// service's cmd_sha256 are both built from it, so they cannot drift apart.
grants::Action action_of(const CheckSession& s) {
    const auto& r = s.request;
    grants::Action a{r.user,        r.kind,   s.rule->name, r.runas_user, r.command, &r.run_argv, binding::run_cwd(r),
                     r.runas_group, r.chroot, s.program,    &s.bound_env};
    a.requester_uid = requester_uid(s);
    a.login_uid = s.requester.login_uid;
    return a;
}

} // namespace

Broker::Broker(std::shared_ptr<const config::Config> config, audit::Auditor& auditor)
    : m_config(std::move(config)), m_auditor(auditor), m_backend(std::make_unique<approval::LocalBackend>()),
      m_started_unix(now_unix()) {
    m_live.set_options({m_config->sessions.warn_before, m_config->sessions.grace});
}

Broker::~Broker() = default;

void Broker::set_backend(std::unique_ptr<approval::ApprovalBackend> backend) {
    if (!backend) throw Error(ErrorCode::internal, "approval backend", "none given");
    m_backend = std::move(backend);
}

void Broker::set_config(std::shared_ptr<const config::Config> config) {
    m_backend->reload(config); // throws before anything changes
    m_config = std::move(config);
    // Sessions already recorded keep their deadlines; the warning and grace apply from now.
    auto options = m_live.options();
    options.warn_before = m_config->sessions.warn_before;
    options.grace = m_config->sessions.grace;
    m_live.set_options(options);
}

bool Broker::audit(Json event) {
    return record(std::move(event), true);
}

bool Broker::record(Json event, bool charge) {
    std::optional<std::int64_t> uid;
    if (const auto it = event.find("uid"); charge && it != event.end() && it->is_number_integer())
        uid = it->get<std::int64_t>();
    try {
        m_auditor.record(std::move(event));
        if (uid) m_share.charge(*uid, m_auditor.spool_bytes(), m_auditor.options().max_bytes);
        return true;
    } catch (const std::exception& e) {
        ++m_audit_failures;
        std::fprintf(stderr, "jitgated: audit spool write failed, denying: %s\n", e.what());
        return false;
    }
}

bool Broker::audit_refusal(uid_t peer_uid, Json event) {
    if (peer_uid != 0 && !m_refusals.admit(peer_uid, Clock::now())) return true; // counted, summarised later
    // Not charged to the requester it may name: the refusal is the peer's doing.
    return record(std::move(event), false);
}

void Broker::report_suppressed(Clock::time_point now, bool final) {
    const auto window = [](std::uint64_t s) {
        return s == 60 ? std::string("a minute") : "per " + std::to_string(s) + " s";
    };
    for (const auto& r : final ? m_refusals.take_all() : m_refusals.take_due(now))
        record(Json{{"type", audit::type::error},
                    {"message", std::to_string(r.suppressed) + " more refusals caused by uid " + std::to_string(r.uid) +
                                    " were not recorded one by one (at most " +
                                    std::to_string(m_refusals.per_window()) + " " + window(r.window_s) + " are)"},
                    {"peer_uid", r.uid},
                    {"suppressed", r.suppressed},
                    {"rate_limited", true}},
               false);
    for (const auto& r : final ? m_share_denials.take_all() : m_share_denials.take_due(now))
        record(Json{{"type", audit::type::error},
                    {"message", std::to_string(r.suppressed) + " checks for uid " + std::to_string(r.uid) +
                                    " were denied without a record each: the audit spool is above " +
                                    std::to_string(m_share.percent()) +
                                    " % of its limit and this uid has added its share of " +
                                    std::to_string(m_share.events_per_uid()) + " events since"},
                    {"uid", r.uid},
                    {"suppressed", r.suppressed},
                    {"spool_share", true}},
               false);
}

std::string Broker::new_id(const char* prefix) const {
    // Crockford base32: no I, L, O or U, so ids read aloud or typed are unambiguous.
    static constexpr char k_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    for (;;) {
        // 10 characters (50 bits): ids stay unique per host for years of requests, which the
        // approval service relies on (docs/protocol.md §3), and are still short to type.
        unsigned char raw[10];
        if (getrandom(raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw))
            throw Error(ErrorCode::internal, "getrandom", "no randomness for a request id");
        std::string id = prefix;
        for (unsigned char b : raw) id += k_alphabet[b & 31u];
        if (!m_requests.contains(id)) return id;
    }
}

Json Broker::event_for(const char* type, const CheckSession& s) const {
    const auto& r = s.request;
    // Member by member: a Json made from an initializer list of pairs builds each pair as a
    // two-element array first (messages.cpp, put()); this runs for every decision.
    Json e = Json::object();
    e["type"] = type;
    e["kind"] = r.kind;
    e["user"] = esc(r.user);
    e["uid"] = r.uid;
    e["peer_pid"] = s.peer.pid;
    // Who asks and which account they want can differ (su, login): both are recorded.
    e["requester"] = esc(requester_name(s));
    e["requester_uid"] = requester_uid(s);
    if (s.requester.login_uid >= 0) {
        e["login_uid"] = s.requester.login_uid;
        e["login_user"] = esc(s.requester.login_name);
    }
    if (!r.requester.empty() && r.requester != requester_name(s)) e["requester_claim"] = esc(r.requester);
    if (r.kind == "sudo") {
        e["command"] = esc(r.command);
        e["argv"] = escaped_argv(r.run_argv);
        if (r.submit_argv != r.run_argv && !r.submit_argv.empty()) e["submit_argv"] = escaped_argv(r.submit_argv);
        e["runas"] = esc(r.runas_user);
        if (!r.cwd.empty()) e["cwd"] = esc(r.cwd);
        add_binding(e, s);
    }
    if (r.argv_truncated) {
        e["argv_truncated"] = true;
        e["argv_bytes"] = r.argv_bytes;
    }
    if (r.intercepted) { // a sub-command: what admitted the command that ran it
        e["intercepted"] = true;
        if (!r.parent_request_id.empty()) e["parent_request_id"] = esc(r.parent_request_id);
        if (!r.parent_grant_id.empty()) e["parent_grant_id"] = esc(r.parent_grant_id);
    }
    if (!r.tty.empty()) e["tty"] = esc(r.tty);
    if (!r.service.empty()) e["service"] = esc(r.service);
    if (!r.remote_host.empty()) e["remote_host"] = esc(r.remote_host);
    if (!r.reason.empty()) e["reason"] = esc(r.reason);
    if (!r.ticket.empty()) e["ticket"] = esc(r.ticket);
    if (!s.rule->name.empty()) e["rule"] = s.rule->name;
    if (!s.request_id.empty()) e["request_id"] = s.request_id;
    if (!s.window.empty()) e["window"] = s.window;
    return e;
}

Step Broker::decide(CheckSession& session, Responder& responder, msg::Decision decision, Json event) {
    // SECURITY NOTE: a session the grant must end (on_expiry: end) but that cannot be followed
    // (its requester already has k_max_sessions_per_requester, or the registry is full) would
    // outlive its grant: refused, and recorded as refused.
    const bool followed = !decision.allow || track(session, decision);
    if (!followed) {
        decision.allow = false;
        decision.outcome = msg::Outcome::denied;
        decision.message = "jitgate: denied: this command could not be followed to the end of grant " +
                           decision.grant_id + " (too many live sessions; end some first, see jitgatectl sessions)";
        event["type"] = audit::type::denied;
        event["not_followed"] = true;
    }
    event["outcome"] = msg::to_string(decision.outcome);
    event["message"] = decision.message;
    if (!decision.grant_id.empty()) event["grant_id"] = decision.grant_id;
    // SECURITY NOTE: the record comes first. An allow whose record cannot be made durable
    // becomes a deny: an unrecorded privileged action is a failed control.
    if (!audit(std::move(event)) && decision.allow) {
        decision.allow = false;
        decision.outcome = msg::Outcome::error;
        decision.message = k_spool_unwritable;
        m_live.remove(session.peer.pid, decision.grant_id);
    }
    ++m_decisions;
    responder.decide(decision);
    return Step::done;
}

Step Broker::begin_check(CheckSession& s, Responder& responder) {
    const auto& cfg = *m_config;
    auto& r = s.request;
    // SECURITY NOTE: near the spool's limit one user may not use up what is left (a denied run
    // is a record too, and a full spool denies everyone): past its share this uid's checks are
    // denied and counted into one summary a window instead of one record each.
    if (!m_share.may_add(r.uid, m_auditor.spool_bytes(), m_auditor.options().max_bytes)) {
        m_share_denials.admit(static_cast<std::uint32_t>(r.uid), Clock::now());
        ++m_decisions;
        responder.decide(
            deny_with(msg::Outcome::error,
                      "jitgate: denied: the audit spool is nearly full (the central audit store is not taking "
                      "events) and " +
                          esc(r.user) +
                          " has used their share of what is left; privileged access "
                          "resumes once the store accepts events",
                      s));
        return Step::done;
    }
    // The user's groups and the run-as user's entry as one version of the databases, each
    // file checked once (nss_cache.hpp).
    const nss::Batch lookups;
    auto groups = group_names_of(r.user);
    s.facts = rules::Facts{r.kind,
                           r.user,
                           groups.value_or(std::vector<std::string>{}),
                           r.command,
                           r.run_argv,
                           r.runas_user,
                           r.service,
                           r.remote_host,
                           {},
                           {},
                           -1,
                           -1};
    if (r.kind == "sudo") {
        // What the grant binds and the rules judge: the program whatever it is called, and the
        // environment it gets (docs/wire-protocol.md, "Binding").
        std::string canonical = r.command_realpath;
        if (canonical.empty() && r.chroot.empty()) {
            // An older client: resolve here (ProtectHome hides users' homes from the daemon).
            if (char* resolved = realpath(r.command.c_str(), nullptr)) {
                canonical = resolved;
                std::free(resolved);
            }
        }
        s.program = canonical.empty() ? binding::lexically_normal(r.command) : canonical;
        s.facts.program_paths = binding::program_spellings(r.command, canonical);
        s.facts.typed_paths = {binding::lexically_normal(r.command)};
        s.facts.command_dev = r.command_dev;
        s.facts.command_ino = r.command_ino;
        if (s.facts.command_dev < 0 && r.chroot.empty())
            if (const auto id = binding::file_id(r.command)) {
                s.facts.command_dev = id->dev;
                s.facts.command_ino = id->ino;
            }
        s.bound_env = binding::bound_env(r.run_env, r.sudo_args, binding::runas_defaults(r.runas_user));
    }
    if (!groups) // a %group rule could not be judged: deny rather than skip it
        return decide(s, responder,
                      deny_with(msg::Outcome::error,
                                "jitgate: denied: cannot read the groups of " + esc(r.user) +
                                    " from the system's user database (fail closed)",
                                s),
                      event_for(audit::type::denied, s));

    if (r.argv_truncated) {
        return decide(s, responder,
                      deny_with(msg::Outcome::denied,
                                "jitgate: denied: the command line is " + std::to_string(r.argv_bytes) +
                                    " bytes; jitgate judges at most " + std::to_string(msg::k_argv_budget) + " bytes",
                                s),
                      event_for(audit::type::denied, s));
    }

    if (r.env_truncated) {
        return decide(s, responder,
                      deny_with(msg::Outcome::denied,
                                "jitgate: denied: the command's environment is larger than " +
                                    std::to_string(msg::k_env_budget) + " bytes; jitgate cannot bind it to an approval",
                                s),
                      event_for(audit::type::denied, s));
    }

    if (const auto full = spool_full_refusal(!r.break_glass_reason.empty()); !full.empty()) {
        Json e = event_for(audit::type::denied, s);
        e["spool_full"] = true;
        if (!r.break_glass_reason.empty()) e["break_glass_reason"] = esc(r.break_glass_reason);
        return decide(s, responder, deny_with(msg::Outcome::error, full, s), std::move(e));
    }

    if (r.intercepted) return check_intercepted(s, responder);

    if (!r.break_glass_reason.empty()) {
        const auto& bg = cfg.break_glass;
        std::string why;
        if (bg.group.empty())
            why = "break-glass is not enabled on this host";
        else if (!contains(s.facts.user_groups, bg.group))
            why = esc(r.user) + " is not in the break-glass group '" + bg.group + "'";
        else if (trim(r.break_glass_reason).size() < bg.min_reason_length)
            why = "a break-glass reason needs at least " + std::to_string(bg.min_reason_length) + " characters";
        Json e = event_for(why.empty() ? audit::type::break_glass : audit::type::denied, s);
        e["break_glass_reason"] = esc(r.break_glass_reason);
        if (!why.empty())
            return decide(s, responder, deny_with(msg::Outcome::denied, "jitgate: break-glass refused: " + why, s),
                          std::move(e));
        msg::Decision d;
        d.allow = true;
        d.outcome = msg::Outcome::break_glass;
        d.message =
            "jitgate: BREAK-GLASS access recorded and alerted to the security team: " + esc(r.break_glass_reason);
        return decide(s, responder, std::move(d), std::move(e));
    }

    const rules::FileIdOf id_of = binding::file_id_pair;
    const auto wall_now = m_wall_clock();
    const config::Rule* rule = rules::first_match(cfg, s.facts, wall_now, id_of);
    // Shares the config the rule came from (a reload does not change a request under way);
    // the default rule is a static.
    s.rule = rule != nullptr
                 ? std::shared_ptr<const config::Rule>(m_config, rule)
                 : std::shared_ptr<const config::Rule>(std::shared_ptr<const config::Rule>{}, &rules::default_rule());
    s.window = rules::window_in_effect(cfg, *s.rule, wall_now);
    if (const std::string why = rules::windows_error(cfg, rule, wall_now); !why.empty())
        return decide(s, responder, deny_with(msg::Outcome::denied, "jitgate: denied: " + why, s),
                      event_for(audit::type::denied, s));

    if (const std::string why = intercept_refusal(s); !why.empty()) {
        Json e = event_for(audit::type::denied, s);
        e["intercept_required"] = true;
        return decide(s, responder, deny_with(msg::Outcome::denied, why, s), std::move(e));
    }

    switch (s.rule->action) {
    case config::Action::allow: {
        // SECURITY NOTE: an allow rule admits a program, not code its environment makes it load
        // without executing anything (LD_PRELOAD, PYTHONPATH, BASH_ENV, ...). sudo removes those
        // unless sudoers keeps them (env_keep, !env_reset, setenv, a SETENV tag: `jitgatectl
        // doctor` lists such rules); nobody approved that code, so it is refused as for a
        // sub-command under intercept. An approved command binds its environment instead.
        if (const auto loaders = binding::hidden_code_loading(r.run_env); !loaders.empty()) {
            Json e = event_for(audit::type::denied, s);
            e["env_code_loading"] = escaped_argv(loaders);
            e["why"] = "code_loading_env";
            return decide(s, responder,
                          deny_with(msg::Outcome::denied,
                                    "jitgate: denied: the command's environment sets " + join_names(loaders) +
                                        "; rule '" + s.rule->name +
                                        "' allows the program, not code loaded into it (ask sudo without them)",
                                    s),
                          std::move(e));
        }
        msg::Decision d;
        d.allow = true;
        d.outcome = msg::Outcome::allowed_by_rule;
        d.rule = s.rule->name;
        return decide(s, responder, std::move(d), event_for(audit::type::allowed_by_rule, s));
    }
    case config::Action::deny: {
        std::string m = "jitgate: denied by rule '" + s.rule->name + "'";
        if (!s.window.empty()) m += " (window " + s.window + ")";
        if (!s.rule->message.empty()) m += ": " + s.rule->message;
        return decide(s, responder, deny_with(msg::Outcome::denied, m, s), event_for(audit::type::denied, s));
    }
    case config::Action::require_approval:
        break;
    }

    if (const grants::Grant* g = m_grants.find(action_of(s), Clock::now())) {
        msg::Decision d;
        d.allow = true;
        d.outcome = msg::Outcome::grant;
        d.rule = s.rule->name;
        d.grant_id = g->id;
        d.request_id = g->request_id;
        Json e = event_for(audit::type::allowed_by_grant, s);
        e["request_id"] = g->request_id;
        e["approvers"] = g->approvers;
        e["scope"] = config::to_string(g->scope);
        e["expires"] = g->expires_unix;
        if (!g->auto_condition.empty()) {
            // No person approved this grant: its uses say so, as its access.auto_approved did.
            e["auto_approved"] = true;
            e["condition"] = g->auto_condition;
        }
        return decide(s, responder, std::move(d), std::move(e));
    }
    return evaluate(s, responder);
}

Step Broker::evaluate(CheckSession& s, Responder& responder) {
    auto& r = s.request;
    const bool can_prompt = r.interactive && !r.noninteractive;
    const char* what = r.kind == "sudo" ? "command" : "login";
    if (r.reason.size() > k_max_reason || r.ticket.size() > k_max_ticket)
        return decide(s, responder,
                      deny_with(msg::Outcome::denied,
                                "jitgate: denied: a reason is at most " + std::to_string(k_max_reason) +
                                    " bytes and a ticket at most " + std::to_string(k_max_ticket),
                                s),
                      event_for(audit::type::denied, s));
    // A login's scope is always the login: a rule written for both kinds grants no sudo here.
    if (s.rule->reason_required && trim(r.reason).empty()) {
        if (can_prompt) return ask(s, responder, "reason", std::string("jitgate: reason for this ") + what + ": ");
        return decide(
            s, responder,
            deny_with(msg::Outcome::denied,
                      "jitgate: denied: rule '" + s.rule->name + "' requires a reason; " +
                          (r.kind == "login" ? std::string("log in interactively (keyboard-interactive) to give one")
                                             : std::string("give it at the prompt or set JITGATE_REASON")),
                      s),
            event_for(audit::type::denied, s));
    }
    if (!s.rule->ticket_pattern.empty()) {
        if (trim(r.ticket).empty()) {
            if (can_prompt)
                return ask(s, responder, "ticket", "jitgate: change ticket (" + esc(s.rule->ticket_pattern) + "): ");
            return decide(
                s, responder,
                deny_with(msg::Outcome::denied,
                          "jitgate: denied: rule '" + s.rule->name + "' requires a ticket matching " +
                              esc(s.rule->ticket_pattern) +
                              (r.kind == "login" ? "; log in interactively to give one" : "; set JITGATE_TICKET"),
                          s),
                event_for(audit::type::denied, s));
        }
        r.ticket = trim(r.ticket);
        if (!s.rule->ticket_regex || !std::regex_search(r.ticket, *s.rule->ticket_regex)) {
            return decide(s, responder,
                          deny_with(msg::Outcome::denied,
                                    "jitgate: denied: ticket '" + esc(r.ticket) + "' does not match " +
                                        esc(s.rule->ticket_pattern),
                                    s),
                          event_for(audit::type::denied, s));
        }
    }
    if (const std::string condition = auto_approval(s); !condition.empty())
        return approve_automatically(s, responder, condition);
    return file_request(s, responder);
}

Step Broker::give_input(CheckSession& s, Responder& responder, const std::string& field, bool given,
                        const std::string& value) {
    if (s.awaiting.empty() || field != s.awaiting)
        throw Error(ErrorCode::protocol, "input", "not expecting an answer for '" + esc(field) + "'");
    close_prompt(s);
    s.awaiting.clear();
    const std::string answer = trim(value);
    if (!given || answer.empty())
        return decide(s, responder, deny_with(msg::Outcome::denied, "jitgate: denied: no " + field + " given", s),
                      event_for(audit::type::denied, s));
    if (answer.size() > k_max_reason)
        return decide(
            s, responder,
            deny_with(msg::Outcome::denied,
                      "jitgate: denied: the " + field + " is longer than " + std::to_string(k_max_reason) + " bytes",
                      s),
            event_for(audit::type::denied, s));
    (field == "reason" ? s.request.reason : s.request.ticket) = answer;
    return evaluate(s, responder);
}

Step Broker::file_request(CheckSession& s, Responder& responder) {
    const auto& cfg = *m_config;
    const auto& r = s.request;
    const bool detach = r.noninteractive && s.rule->noninteractive == config::NonInteractive::file;

    // Automation re-running `sudo -n` before anyone approved: point at the request already filed.
    if (detach) {
        for (const auto& [id, q] : m_requests) {
            const auto& o = q.session->request;
            if (q.responder == nullptr && o.uid == r.uid &&
                grants::GrantCache::key_for(action_of(*q.session), config::Scope::command) ==
                    grants::GrantCache::key_for(action_of(s), config::Scope::command)) {
                s.request_id = id;
                msg::Decision d = deny_with(msg::Outcome::filed,
                                            "jitgate: request " + id + " is still waiting for approval; " +
                                                (r.kind == "login" ? "log in again" : "run the command again") +
                                                " once it is approved",
                                            s);
                ++m_decisions;
                responder.decide(d);
                return Step::done;
            }
        }
    }
    // Counted per person who asks: every `su root` names root, but each caller has their own cap.
    const std::size_t mine = m_requests.count_for(requester_uid(s));
    if (mine >= k_max_pending_per_user)
        return decide(s, responder,
                      deny_with(msg::Outcome::error,
                                "jitgate: denied: " + esc(requester_name(s)) + " already has " + std::to_string(mine) +
                                    " requests waiting; wait for them to be decided",
                                s),
                      event_for(audit::type::denied, s));
    if (m_requests.size() >= static_cast<std::size_t>(cfg.daemon.max_pending))
        return decide(s, responder,
                      deny_with(msg::Outcome::error,
                                "jitgate: denied: " + std::to_string(m_requests.size()) +
                                    " requests are already waiting; try again later",
                                s),
                      event_for(audit::type::denied, s));

    Request q;
    q.id = new_id("R-");
    s.request_id = q.id;
    q.approvals_needed = s.rule->approvals;
    q.approver_groups = s.rule->approver_groups.empty() ? cfg.approval.approver_groups : s.rule->approver_groups;
    q.created_unix = now_unix();
    q.deadline = Clock::now() + s.rule->timeout;
    const auto timeout_s = static_cast<std::int64_t>(s.rule->timeout.count());
    q.session = share_session(s);
    try {
        m_backend->prepare(q);
    } catch (const std::exception& e) {
        s.request_id.clear();
        Json ev = event_for(audit::type::denied, s);
        ev["error"] = esc(e.what());
        return decide(
            s, responder,
            deny_with(msg::Outcome::error,
                      std::string("jitgate: denied: this action cannot be sent for approval: ") + esc(e.what()), s),
            std::move(ev));
    }

    Json e = event_for(audit::type::requested, s);
    e["approvals_needed"] = q.approvals_needed;
    e["approver_groups"] = q.approver_groups;
    e["scope"] = config::to_string(s.rule->scope);
    e["ttl_s"] = static_cast<std::int64_t>(s.rule->ttl.count());
    e["timeout_s"] = timeout_s;
    e["waiting"] = !detach;
    m_backend->describe(e);
    if (!audit(std::move(e))) {
        s.request_id.clear();
        return decide(s, responder, deny_with(msg::Outcome::error, k_spool_unwritable, s),
                      event_for(audit::type::error, s));
    }
    responder.notice("jitgate: approval required by rule '" + s.rule->name + "'" +
                         (s.window.empty() ? std::string() : " (window " + s.window + ")") + ": " +
                         text::plural(static_cast<std::uint64_t>(q.approvals_needed), "approval", "approvals") +
                         " from " + join_names(q.approver_groups) +
                         (q.approvals_needed > 1 ? " (different people)" : "") + "." +
                         (s.rule->message.empty() ? "" : " " + esc(s.rule->message)),
                     -1);
    const std::string id = q.id;
    m_backend->submit(q);
    const std::string how = m_backend->how_to_approve(id);
    if (detach) {
        m_requests.add(std::move(q));
        const bool login = r.kind == "login";
        msg::Decision d = deny_with(msg::Outcome::filed,
                                    "jitgate: request " + id + " filed; " +
                                        (login ? "a non-interactive login does not wait. Log in again"
                                               : "sudo -n does not wait. Run the command again") +
                                        " once it is approved (" + how + ")",
                                    s);
        ++m_decisions;
        responder.decide(d);
        return Step::done;
    }
    q.responder = &responder;
    q.live = &s;
    m_requests.add(std::move(q));
    responder.notice("jitgate: request " + id + " sent; waiting up to " + config::format_duration(s.rule->timeout) +
                         " (Ctrl-C cancels). " + m_backend->waiting_hint(id),
                     timeout_s);
    return Step::waiting;
}

void Broker::conclude(Request& q, const msg::Decision& approved) {
    msg::Decision decision = approved;
    // As in decide(): a session its grant must end but that cannot be followed is refused.
    if (decision.allow && q.live != nullptr && !track(*q.live, decision)) {
        decision.allow = false;
        decision.outcome = msg::Outcome::denied;
        decision.message = "jitgate: denied: this command could not be followed to the end of grant " +
                           decision.grant_id + " (too many live sessions; end some first, see jitgatectl sessions)";
        Json e = event_for(audit::type::denied, *q.live);
        e["outcome"] = msg::to_string(decision.outcome);
        e["message"] = decision.message;
        e["grant_id"] = decision.grant_id;
        e["not_followed"] = true;
        audit(std::move(e)); // a deny stands even if it could not be recorded
    }
    remember_decision(q, decision);
    if (q.responder != nullptr) {
        if (q.live != nullptr) q.live->request_id.clear();
        ++m_decisions;
        q.responder->decide(decision);
    }
    m_requests.remove(q.id);
}

Step Broker::input_timed_out(CheckSession& s, Responder& responder, std::chrono::seconds limit) {
    if (s.awaiting.empty()) return Step::done;
    const std::string field = s.awaiting;
    close_prompt(s);
    s.awaiting.clear(); // answered by the timeout: the closing connection is no cancel
    const std::string after = config::format_duration(limit);
    return decide(
        s, responder,
        deny_with(msg::Outcome::timeout, "jitgate: denied: no " + field + " given at the prompt within " + after, s),
        event_for(audit::type::timeout, s));
}

void Broker::client_gone(CheckSession& s) {
    if (!s.awaiting.empty()) {
        Json e = event_for(audit::type::cancelled, s);
        e["message"] = "the client went away while being asked for a " + s.awaiting;
        close_prompt(s);
        s.awaiting.clear();
        audit(std::move(e));
        return;
    }
    if (s.request_id.empty()) return;
    const auto it = m_requests.find(s.request_id);
    if (it == m_requests.end() || it->second.live != &s) return;
    Json e = event_for(audit::type::cancelled, *it->second.session);
    e["message"] = "the requester gave up while waiting (Ctrl-C, killed or disconnected)";
    e["approvers"] = it->second.approvers;
    audit(std::move(e));
    msg::Decision gone;
    gone.outcome = msg::Outcome::cancelled;
    gone.message = "cancelled: the requester gave up while waiting";
    remember_decision(it->second, gone);
    m_backend->cancel(s.request_id, "client_gone");
    m_requests.remove(s.request_id);
    s.request_id.clear();
}

void Broker::finished(const msg::FinishedReport& f, const identity::Peer& peer) {
    Json e{{"type", audit::type::command_finished},
           {"kind", f.kind},
           {"user", esc(f.user)},
           {"uid", f.uid},
           {"peer_pid", peer.pid},
           {"command", esc(f.command)},
           {"argv", escaped_argv(f.run_argv)},
           {"runas", esc(f.runas_user)},
           {"status_type", f.status_type}};
    if (!f.request_id.empty()) e["request_id"] = esc(f.request_id);
    if (!f.grant_id.empty()) e["grant_id"] = esc(f.grant_id);
    if (!f.tty.empty()) e["tty"] = esc(f.tty);
    if (f.status_type == "exit") e["exit_status"] = f.exit_status;
    if (f.status_type == "signal") e["signal"] = f.signal;
    if (f.status_type == "exec_error") e["exec_errno"] = f.exec_errno;
    if (f.duration_ms >= 0) e["duration_ms"] = f.duration_ms;
    // The front end that reports is the process that was recorded (the kernel's pid).
    if (const auto ended = m_live.remove(peer.pid, {}); ended && ended->stage == live::Session::Stage::ending)
        e["ended_by"] = ended->end_reason;
    else if (ended && ended->stage == live::Session::Stage::kept)
        e["kept_after_expiry"] = true;
    audit(std::move(e));
}

void Broker::session(const msg::SessionReport& r, const identity::Peer& peer) {
    Json e{{"type", r.event == "opened" ? audit::type::session_opened : audit::type::session_closed},
           {"kind", "login"},
           {"user", esc(r.user)},
           {"uid", r.uid},
           {"peer_pid", peer.pid}};
    if (!r.service.empty()) e["service"] = esc(r.service);
    if (!r.remote_host.empty()) e["remote_host"] = esc(r.remote_host);
    if (!r.tty.empty()) e["tty"] = esc(r.tty);
    if (!r.request_id.empty()) e["request_id"] = esc(r.request_id);
    if (!r.grant_id.empty()) e["grant_id"] = esc(r.grant_id);
    if (r.event == "closed" && r.duration_ms >= 0) e["duration_ms"] = r.duration_ms;
    if (r.event == "opened") {
        // A login the grant cannot end is recorded as such (the PAM session is already open).
        if (!track_login(r, peer)) e["not_followed"] = true;
    } else if (const auto ended = m_live.remove(peer.pid, {}); ended && ended->stage == live::Session::Stage::ending) {
        e["ended_by"] = ended->end_reason;
    } else if (ended && ended->stage == live::Session::Stage::kept) {
        e["kept_after_expiry"] = true;
    }
    audit(std::move(e));
}

std::string Broker::spool_full_refusal(bool break_glass) const {
    // SECURITY NOTE: a full spool means records are not reaching the central store. New
    // privileged actions stop (break-glass too, unless the config keeps it) rather than pile up
    // unshipped; denials are still recorded, the bound is soft for records.
    if (!m_auditor.spool_full()) return {};
    if (break_glass && m_config->audit.break_glass_when_full) return {};
    const auto mib = [](std::uint64_t bytes) {
        return bytes >= (1ULL << 20) ? std::to_string(bytes >> 20) + " MiB" : std::to_string(bytes >> 10) + " KiB";
    };
    return "jitgate: denied: the audit spool is full (" + mib(m_auditor.spool_bytes()) + " of " +
           mib(m_config->audit.spool_max_bytes) +
           "): audit records are not reaching the central audit store; privileged access resumes once it accepts them" +
           (m_config->audit.break_glass_when_full ? " (break-glass still works)" : "");
}

std::string Broker::window_change(const CheckSession& s) const {
    const auto& cfg = *m_config;
    const rules::FileIdOf id_of = binding::file_id_pair;
    const auto now = m_wall_clock();
    const config::Rule* rule = rules::first_match(cfg, s.facts, now, id_of);
    if (const std::string why = rules::windows_error(cfg, rule, now); !why.empty()) return why;
    const config::Rule& current = rule != nullptr ? *rule : rules::default_rule();
    const std::string window = rules::window_in_effect(cfg, current, now);
    if (current.name == s.rule->name && window == s.window) return {};
    return "the time window changed while it waited: now rule '" + current.name + "' applies" +
           (window.empty() ? std::string() : " (window " + window + ")") + "; ask again";
}

OpResult Broker::grant(Request& q, const std::string& approved_by, std::int64_t expires_unix, const Json& extra) {
    const auto& r = q.session->request;
    const std::string id = q.id;
    if (const auto full = spool_full_refusal(false); !full.empty()) {
        Json e = event_for(audit::type::denied, *q.session);
        e["spool_full"] = true;
        e["outcome"] = "error";
        e["message"] = full;
        audit(std::move(e));
        msg::Decision d = deny_with(msg::Outcome::error, full, *q.session);
        d.request_id = id;
        conclude(q, d);
        return {false, "request " + id + " denied: the audit spool is full"};
    }
    // SECURITY NOTE: the rule and its window were judged when the request came in; the
    // approval may come up to the rule's timeout later, after a freeze began or the hours
    // ended. Judged again now, with this instant and the request's facts: a different rule or
    // window means the approval was given for a situation that no longer holds.
    if (const std::string changed = window_change(*q.session); !changed.empty()) {
        Json e = event_for(audit::type::denied, *q.session);
        e["outcome"] = msg::to_string(msg::Outcome::denied);
        e["message"] = changed;
        e["window_changed"] = true;
        audit(std::move(e)); // a deny stands even if it could not be recorded
        msg::Decision d = deny_with(msg::Outcome::denied, "jitgate: request " + id + " denied: " + changed, *q.session);
        d.request_id = id;
        conclude(q, d);
        return {false, "request " + id + " denied: " + changed};
    }
    // SECURITY NOTE: an extension continues a live grant. Once that grant was revoked, released
    // or expired, approving the extension would bring back access someone ended: denied.
    if (!q.extends.empty() && m_grants.by_id(q.extends, Clock::now()) == nullptr) {
        const std::string ended = "grant " + q.extends + " that it extends has ended (revoked, released or expired)";
        Json e = event_for(audit::type::denied, *q.session);
        e["outcome"] = msg::to_string(msg::Outcome::denied);
        e["message"] = ended;
        e["extends"] = q.extends;
        audit(std::move(e)); // a deny stands even if it could not be recorded
        msg::Decision d = deny_with(msg::Outcome::denied, "jitgate: request " + id + " denied: " + ended, *q.session);
        d.request_id = id;
        conclude(q, d);
        return {false, "request " + id + " denied: " + ended + "; ask anew"};
    }
    grants::Grant g;
    g.id = new_id("G-");
    g.request_id = id;
    g.user = r.user;
    g.kind = r.kind;
    g.requester = requester_name(*q.session);
    g.requester_uid = requester_uid(*q.session);
    g.login_uid = q.session->requester.login_uid;
    g.scope = scope_of(*q.session);
    g.rule = q.session->rule->name;
    g.runas_user = r.runas_user;
    g.command = r.command;
    g.argv = r.run_argv;
    g.cwd = binding::run_cwd(r);
    g.runas_group = r.runas_group;
    g.chroot = r.chroot;
    g.program = q.session->program;
    g.env = q.session->bound_env;
    g.approvers = q.approvers;
    g.reason = r.reason;
    g.ticket = r.ticket;
    g.window = q.session->window;
    if (const auto c = extra.find("condition"); c != extra.end() && c->is_string()) g.auto_condition = *c;
    if (const auto j = extra.find("service_grant_id"); j != extra.end() && j->is_string()) g.service_grant_id = *j;
    g.keep_sessions = q.session->rule->on_expiry == config::OnExpiry::keep;
    // SECURITY NOTE: validate() refuses auto_approve.commands on a rule whose scope is not
    // command; checked again because a session grant holds no command: one automatically
    // approved low-risk command must never open the rule's other commands to the session.
    if (!g.auto_condition.empty() && !q.session->rule->auto_approve.commands.empty() &&
        g.scope == config::Scope::session)
        g.scope = config::Scope::command;
    // The TTL counts from the approval, not from the request; a service grant's exp caps it.
    g.granted_unix = now_unix();
    auto ttl_s = static_cast<std::int64_t>(q.session->rule->ttl.count());
    if (expires_unix > 0) ttl_s = std::clamp<std::int64_t>(expires_unix - g.granted_unix, 0, ttl_s);
    g.expires_unix = g.granted_unix + ttl_s;
    g.expires = Clock::now() + seconds(ttl_s);

    Json e = event_for(audit::type::approved, *q.session);
    e["approvers"] = q.approvers;
    e["approvals_needed"] = q.approvals_needed;
    e["grant_id"] = g.id;
    e["scope"] = config::to_string(g.scope);
    e["ttl_s"] = ttl_s;
    e["expires"] = g.expires_unix;
    if (!q.extends.empty()) e["extends"] = q.extends;
    for (const auto& [key, value] : extra.items()) e[key] = value;
    if (!audit(std::move(e))) {
        if (!m_backend->allows_local_decisions() || q.approvers.empty()) {
            // (No approvers: an automatic approval, whose requester waits for this answer.)
            // No local approver can retry: the request ends here, denied (fail closed).
            msg::Decision d = deny_with(msg::Outcome::error, k_spool_unwritable, *q.session);
            d.request_id = id;
            conclude(q, d);
            return {false, "the audit spool cannot be written; request " + id + " denied"};
        }
        q.approvers.pop_back();
        q.approver_uids.pop_back();
        return {false, k_approval_not_recorded};
    }
    const std::string ttl = config::format_duration(seconds(ttl_s));
    const std::string grant_id = g.id;
    const std::int64_t expires_unix_granted = g.expires_unix;
    const Clock::time_point expires_at = g.expires;
    m_grants.add(std::move(g));
    remember_origin(grant_id, q);
    if (!q.extends.empty()) m_live.rebind(q.extends, grant_id, expires_unix_granted, expires_at, Clock::now());

    msg::Decision d;
    d.allow = true;
    d.outcome = msg::Outcome::approved;
    d.message =
        "jitgate: approved by " + approved_by + " (request " + id + "); grant " + grant_id + " valid for " + ttl;
    d.request_id = id;
    d.grant_id = grant_id;
    d.rule = q.session->rule->name;
    conclude(q, d);
    return {true, "approved " + id + "; grant " + grant_id + " valid for " + ttl};
}

Request* Broker::waiting(const std::string& id) {
    const auto it = m_requests.find(id);
    return it == m_requests.end() ? nullptr : &it->second;
}

void Broker::tell(Request& q, const std::string& line) {
    if (q.responder != nullptr) q.responder->notice(line, -1);
}

void Broker::approved(Request& q, std::vector<std::string> approvers, std::int64_t expires_unix, const Json& extra) {
    q.approvers = std::move(approvers);
    std::string by = join_names(q.approvers);
    // A service's automatic grant names nobody: the service decided (the grant's `auto`).
    if (const auto c = extra.find("condition"); q.approvers.empty() && c != extra.end() && c->is_string())
        by = "the approval service automatically (" + c->get<std::string>() + ")";
    grant(q, by, expires_unix, extra);
}

void Broker::denied(Request& q, const char* event_type, msg::Outcome outcome, const std::string& message, Json extra) {
    Json e = event_for(event_type, *q.session);
    e["outcome"] = msg::to_string(outcome);
    e["message"] = message;
    for (const auto& [key, value] : extra.items()) e[key] = value;
    audit(std::move(e)); // a deny stands even if it could not be recorded
    msg::Decision d = deny_with(outcome, "jitgate: request " + q.id + " " + message, *q.session);
    d.request_id = q.id;
    conclude(q, d);
}

Json Broker::status() const {
    Json s{{"host", m_config->host.name},
           {"config", m_config->source},
           {"backend", m_config->approval.backend},
           {"pending", m_requests.size()},
           {"grants", m_grants.size()},
           {"sessions", m_live.size()},
           {"decisions", m_decisions},
           {"audit_seq", m_auditor.last_seq()},
           {"audit_failures", m_audit_failures},
           {"syslog_failures", m_auditor.syslog_failures()},
           {"audit", m_shipper != nullptr ? m_shipper->status() : m_auditor.stats()},
           {"uptime_s", now_unix() - m_started_unix}};
    m_backend->add_status(s); // "service", "grants_rejected"
    return s;
}

Step Broker::ask(CheckSession& s, Responder& responder, const char* field, const std::string& text) {
    close_prompt(s);
    s.awaiting = field;
    // The deadline counts from this prompt: an answer that asks the next question restarts it.
    const auto deadline = Clock::now() + k_prompt_limit;
    m_prompts[&s] = OpenPrompt{deadline, &responder};
    m_prompt_deadlines.emplace(deadline, &s);
    responder.prompt(field, text, true);
    return Step::awaiting_input;
}

void Broker::close_prompt(CheckSession& s) {
    const auto it = m_prompts.find(&s);
    if (it == m_prompts.end()) return;
    m_prompt_deadlines.erase({it->second.deadline, &s});
    m_prompts.erase(it);
}

std::optional<Clock::time_point> Broker::next_deadline() const {
    auto next = m_requests.next_deadline();
    if (const auto live = m_live.next_deadline(); live && (!next || *live < *next)) next = live;
    if (!m_prompt_deadlines.empty() && (!next || m_prompt_deadlines.begin()->first < *next))
        next = m_prompt_deadlines.begin()->first;
    return next;
}

void Broker::expire(Clock::time_point now) {
    // A prompt left unanswered is a timeout, not a cancel: recorded as access.timeout, and the
    // conversation ends (the client is not kept waiting on a connection nobody answers).
    while (!m_prompt_deadlines.empty() && m_prompt_deadlines.begin()->first <= now) {
        CheckSession& s = *m_prompt_deadlines.begin()->second;
        Responder& responder = *m_prompts.at(&s).responder;
        close_prompt(s); // first: the loop ends whatever input_timed_out finds
        input_timed_out(s, responder, k_prompt_limit);
        responder.hang_up();
    }
    for (const auto& id : m_requests.expired(now)) {
        const auto it = m_requests.find(id);
        if (it == m_requests.end()) continue;
        Request& q = it->second;
        const std::string after = config::format_duration(q.session->rule->timeout);
        Json e = event_for(audit::type::timeout, *q.session);
        e["approvers"] = q.approvers;
        e["message"] = "no decision within " + after;
        audit(std::move(e));
        msg::Decision d =
            deny_with(msg::Outcome::timeout,
                      "jitgate: request " + id + " timed out after " + after + " without approval", *q.session);
        d.request_id = id;
        m_backend->cancel(id, "timeout");
        conclude(q, d);
    }
    record_endings(m_live.tick(now), Json::object());
}

} // namespace jitgate::broker
