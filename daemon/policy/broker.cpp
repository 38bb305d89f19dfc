#include "daemon/policy/broker.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sys/random.h>

#include "daemon/policy/binding.hpp"
#include "daemon/policy/broker_detail.hpp"
#include "jitgate/error.hpp"
#include "jitgate/text.hpp"

namespace jitgate::broker {

using std::chrono::duration_cast;
using std::chrono::seconds;

// The helpers broker.cpp and admin.cpp share (broker_detail.hpp).
namespace detail {

std::int64_t now_unix() {
    return duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

Json escaped_argv(const std::vector<std::string>& argv) {
    Json out = Json::array();
    for (const auto& a : argv) out.push_back(text::escape_for_log(a));
    return out;
}

std::string esc(const std::string& s) { return text::escape_for_log(s); }

// What will run, as an approver should read it: the resolved path, then the arguments.
std::string display_command(const std::string& command, std::vector<std::string> argv) {
    if (argv.empty()) argv.push_back(command);
    else if (!command.empty()) argv[0] = command;
    return text::display_argv(argv);
}

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return {};
    const auto e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

std::string plural(long n, const char* one, const char* many) { return std::to_string(n) + " " + (n == 1 ? one : many); }

// Each listed request fits in a frame, however hostile its argv: display fields are cut.
constexpr std::size_t k_max_display = 4096;

std::string cut(std::string s) {
    if (s.size() <= k_max_display) return s;
    const auto n = s.size();
    s.resize(k_max_display);
    while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0u) == 0x80u) s.pop_back(); // whole characters
    if (!s.empty() && static_cast<unsigned char>(s.back()) >= 0xC0u) s.pop_back();
    return s + "...[" + std::to_string(n) + " bytes]";
}

// Who asks: the person the server found from the kernel, or (no server, or nothing found)
// the request's user, which is who asks for sudo and for a login through sshd.
std::int64_t requester_uid(const CheckSession& s) { return s.requester.uid >= 0 ? s.requester.uid : s.request.uid; }

std::string requester_name(const CheckSession& s) { return s.requester.uid >= 0 ? s.requester.name : s.request.user; }

// The binding facts an approver and an auditor see, added to `j` (sudo only).
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

msg::Decision deny_with(std::string outcome, std::string message, const CheckSession& s) {
    msg::Decision d;
    d.allow = false;
    d.outcome = std::move(outcome);
    d.message = std::move(message);
    d.rule = s.rule->name;
    d.request_id = s.request_id;
    return d;
}

} // namespace detail

using namespace detail;

namespace {

constexpr std::size_t k_max_reason = 1024;
// SECURITY NOTE: std::regex backtracks; a bounded ticket keeps a hostile one cheap to match.
constexpr std::size_t k_max_ticket = 128;
// SECURITY NOTE: one user cannot fill the host's pending slots for everyone else.
constexpr std::size_t k_max_pending_per_user = 100;
// What the user, and the approver, are told when an event cannot be made durable.
constexpr const char* k_spool_unwritable = "jitgate: denied: the audit spool cannot be written (see jitgated's log)";

// What an approval of `s` covers: a login grant only ever covers logins, and a sudo grant
// never covers a login. Grants, the service's request and its grant's check all use this.
config::Scope scope_of(const CheckSession& s) {
    return s.request.kind == "login" ? config::Scope::login : s.rule->scope;
}

// Everything an approval of `s` in scope command is bound to; the grant cache's key and the
// service's cmd_sha256 are both built from it, so they cannot drift apart.
grants::Action action_of(const CheckSession& s) {
    const auto& r = s.request;
    grants::Action a{r.user,        r.kind,          s.rule->name, r.runas_user, r.command, &r.run_argv,
                     binding::run_cwd(r), r.runas_group, r.chroot,     s.program,    &s.bound_env};
    a.requester_uid = requester_uid(s);
    a.login_uid = s.requester.login_uid;
    return a;
}

grant_token::CommandBinding command_binding_of(const CheckSession& s) {
    const auto& r = s.request;
    return grant_token::CommandBinding{r.runas_user, r.runas_group, binding::run_cwd(r), r.chroot,
                                       r.command,    s.program,     r.run_argv,          s.bound_env};
}

} // namespace

const std::shared_ptr<const config::Rule>& no_rule() {
    static const auto empty = std::make_shared<const config::Rule>();
    return empty;
}

std::string join_names(const std::vector<std::string>& names) {
    std::string out;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i > 0) out += i + 1 == names.size() ? " and " : ", ";
        out += names[i];
    }
    return out;
}

Broker::Broker(std::shared_ptr<const config::Config> config, audit::Auditor& auditor)
    : m_config(std::move(config)), m_auditor(auditor), m_started_unix(now_unix()) {}

void Broker::set_service(service::ServiceClient* client, std::shared_ptr<const grant_token::KeyRing> keys) {
    m_service = client;
    m_keys = std::move(keys);
}

void Broker::set_config(std::shared_ptr<const config::Config> config) { m_config = std::move(config); }

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
    Json e{{"type", type}, {"kind", r.kind}, {"user", esc(r.user)}, {"uid", r.uid}, {"peer_pid", s.peer.pid}};
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
    if (!r.tty.empty()) e["tty"] = esc(r.tty);
    if (!r.service.empty()) e["service"] = esc(r.service);
    if (!r.remote_host.empty()) e["remote_host"] = esc(r.remote_host);
    if (!r.reason.empty()) e["reason"] = esc(r.reason);
    if (!r.ticket.empty()) e["ticket"] = esc(r.ticket);
    if (!s.rule->name.empty()) e["rule"] = s.rule->name;
    if (!s.request_id.empty()) e["request_id"] = s.request_id;
    return e;
}

Step Broker::decide(CheckSession& /*session*/, Responder& responder, msg::Decision decision, Json event) {
    event["outcome"] = decision.outcome;
    event["message"] = decision.message;
    if (!decision.grant_id.empty()) event["grant_id"] = decision.grant_id;
    // SECURITY NOTE: the record comes first. An allow whose record cannot be made durable
    // becomes a deny: an unrecorded privileged action is a failed control.
    if (!audit(std::move(event)) && decision.allow) {
        decision.allow = false;
        decision.outcome = "error";
        decision.message = k_spool_unwritable;
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
            deny_with("error",
                      "jitgate: denied: the audit spool is nearly full (the central audit store is not taking "
                      "events) and " +
                          esc(r.user) +
                          " has used their share of what is left; privileged access "
                          "resumes once the store accepts events",
                      s));
        return Step::done;
    }
    auto groups = identity::groups_of(r.user);
    s.facts = rules::Facts{r.kind, r.user, groups.value_or(std::vector<std::string>{}), r.command, r.run_argv,
                           r.runas_user, r.service, r.remote_host, {}, {}, -1, -1};
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
                      deny_with("error", "jitgate: denied: cannot read the groups of " + esc(r.user) +
                                             " from the system's user database (fail closed)", s),
                      event_for(audit::type::denied, s));

    if (r.argv_truncated) {
        return decide(s, responder,
                      deny_with("denied",
                                "jitgate: denied: the command line is " + std::to_string(r.argv_bytes) +
                                    " bytes; jitgate judges at most " + std::to_string(msg::k_argv_budget) + " bytes",
                                s),
                      event_for(audit::type::denied, s));
    }

    if (r.env_truncated) {
        return decide(s, responder,
                      deny_with("denied",
                                "jitgate: denied: the command's environment is larger than " +
                                    std::to_string(msg::k_env_budget) + " bytes; jitgate cannot bind it to an approval",
                                s),
                      event_for(audit::type::denied, s));
    }

    if (const auto full = spool_full_refusal(!r.break_glass_reason.empty()); !full.empty()) {
        Json e = event_for(audit::type::denied, s);
        e["spool_full"] = true;
        if (!r.break_glass_reason.empty()) e["break_glass_reason"] = esc(r.break_glass_reason);
        return decide(s, responder, deny_with("error", full, s), std::move(e));
    }

    if (!r.break_glass_reason.empty()) {
        const auto& bg = cfg.break_glass;
        std::string why;
        if (bg.group.empty()) why = "break-glass is not enabled on this host";
        else if (!contains(s.facts.user_groups, bg.group)) why = esc(r.user) + " is not in the break-glass group '" + bg.group + "'";
        else if (trim(r.break_glass_reason).size() < bg.min_reason_length)
            why = "a break-glass reason needs at least " + std::to_string(bg.min_reason_length) + " characters";
        Json e = event_for(why.empty() ? audit::type::break_glass : audit::type::denied, s);
        e["break_glass_reason"] = esc(r.break_glass_reason);
        if (!why.empty()) return decide(s, responder, deny_with("denied", "jitgate: break-glass refused: " + why, s), e);
        msg::Decision d;
        d.allow = true;
        d.outcome = "break_glass";
        d.message = "jitgate: BREAK-GLASS access recorded and alerted to the security team: " + esc(r.break_glass_reason);
        return decide(s, responder, d, e);
    }

    const auto id_of = [](const std::string& path) -> std::optional<std::pair<std::int64_t, std::int64_t>> {
        const auto id = binding::file_id(path);
        if (!id) return std::nullopt;
        return std::pair{id->dev, id->ino};
    };
    const config::Rule* rule = rules::first_match(cfg, s.facts, id_of);
    // Shares the config the rule came from (a reload does not change a request under way);
    // the default rule is a static.
    s.rule = rule != nullptr ? std::shared_ptr<const config::Rule>(m_config, rule)
                             : std::shared_ptr<const config::Rule>(std::shared_ptr<const config::Rule>{}, &rules::default_rule());

    switch (s.rule->action) {
    case config::Action::allow: {
        msg::Decision d;
        d.allow = true;
        d.outcome = "allowed_by_rule";
        d.rule = s.rule->name;
        return decide(s, responder, d, event_for(audit::type::allowed_by_rule, s));
    }
    case config::Action::deny: {
        std::string m = "jitgate: denied by rule '" + s.rule->name + "'";
        if (!s.rule->message.empty()) m += ": " + s.rule->message;
        return decide(s, responder, deny_with("denied", m, s), event_for(audit::type::denied, s));
    }
    case config::Action::require_approval:
        break;
    }

    if (const grants::Grant* g = m_grants.find(action_of(s), Clock::now())) {
        msg::Decision d;
        d.allow = true;
        d.outcome = "grant";
        d.rule = s.rule->name;
        d.grant_id = g->id;
        d.request_id = g->request_id;
        Json e = event_for(audit::type::allowed_by_grant, s);
        e["request_id"] = g->request_id;
        e["approvers"] = g->approvers;
        e["scope"] = config::to_string(g->scope);
        e["expires"] = g->expires_unix;
        return decide(s, responder, d, e);
    }
    return evaluate(s, responder);
}

Step Broker::evaluate(CheckSession& s, Responder& responder) {
    auto& r = s.request;
    const bool can_prompt = r.interactive && !r.noninteractive;
    const char* what = r.kind == "sudo" ? "command" : "login";
    if (r.reason.size() > k_max_reason || r.ticket.size() > k_max_ticket)
        return decide(s, responder,
                      deny_with("denied", "jitgate: denied: a reason is at most " + std::to_string(k_max_reason) +
                                              " bytes and a ticket at most " + std::to_string(k_max_ticket), s),
                      event_for(audit::type::denied, s));
    // A login's scope is always the login: a rule written for both kinds grants no sudo here.
    if (s.rule->reason_required && trim(r.reason).empty()) {
        if (can_prompt) {
            s.awaiting = "reason";
            responder.prompt("reason", std::string("jitgate: reason for this ") + what + ": ", true);
            return Step::awaiting_input;
        }
        return decide(s, responder,
                      deny_with("denied", "jitgate: denied: rule '" + s.rule->name + "' requires a reason; " +
                                              (r.kind == "login" ? std::string("log in interactively (keyboard-interactive) to give one")
                                                                 : std::string("give it at the prompt or set JITGATE_REASON")), s),
                      event_for(audit::type::denied, s));
    }
    if (!s.rule->ticket_pattern.empty()) {
        if (trim(r.ticket).empty()) {
            if (can_prompt) {
                s.awaiting = "ticket";
                responder.prompt("ticket", "jitgate: change ticket (" + esc(s.rule->ticket_pattern) + "): ", true);
                return Step::awaiting_input;
            }
            return decide(s, responder,
                          deny_with("denied", "jitgate: denied: rule '" + s.rule->name + "' requires a ticket matching " +
                                                  esc(s.rule->ticket_pattern) +
                                                  (r.kind == "login" ? "; log in interactively to give one" : "; set JITGATE_TICKET"), s),
                          event_for(audit::type::denied, s));
        }
        r.ticket = trim(r.ticket);
        if (!s.rule->ticket_regex || !std::regex_search(r.ticket, *s.rule->ticket_regex)) {
            return decide(s, responder,
                          deny_with("denied", "jitgate: denied: ticket '" + esc(r.ticket) + "' does not match " +
                                                  esc(s.rule->ticket_pattern), s),
                          event_for(audit::type::denied, s));
        }
    }
    return file_request(s, responder);
}

Step Broker::give_input(CheckSession& s, Responder& responder, const std::string& field, bool given,
                        const std::string& value) {
    if (s.awaiting.empty() || field != s.awaiting)
        throw Error(ErrorCode::protocol, "input", "not expecting an answer for '" + esc(field) + "'");
    s.awaiting.clear();
    const std::string answer = trim(value);
    if (!given || answer.empty())
        return decide(s, responder, deny_with("denied", "jitgate: denied: no " + field + " given", s),
                      event_for(audit::type::denied, s));
    if (answer.size() > k_max_reason)
        return decide(s, responder,
                      deny_with("denied", "jitgate: denied: the " + field + " is longer than " +
                                              std::to_string(k_max_reason) + " bytes", s),
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
            const auto& o = q.session.request;
            if (q.responder == nullptr && o.uid == r.uid &&
                grants::GrantCache::key_for(action_of(q.session), config::Scope::command) ==
                    grants::GrantCache::key_for(action_of(s), config::Scope::command)) {
                s.request_id = id;
                msg::Decision d = deny_with("filed", "jitgate: request " + id + " is still waiting for approval; " +
                                                         (r.kind == "login" ? "log in again" : "run the command again") +
                                                         " once it is approved", s);
                ++m_decisions;
                responder.decide(d);
                return Step::done;
            }
        }
    }
    // Counted per person who asks: every `su root` names root, but each caller has their own cap.
    const auto counted = m_pending_by_uid.find(requester_uid(s));
    const std::size_t mine = counted == m_pending_by_uid.end() ? 0 : counted->second;
    if (mine >= k_max_pending_per_user)
        return decide(s, responder,
                      deny_with("error", "jitgate: denied: " + esc(requester_name(s)) + " already has " +
                                             std::to_string(mine) +
                                             " requests waiting; wait for them to be decided", s),
                      event_for(audit::type::denied, s));
    if (m_requests.size() >= static_cast<std::size_t>(cfg.daemon.max_pending))
        return decide(s, responder,
                      deny_with("error", "jitgate: denied: " + std::to_string(m_requests.size()) +
                                             " requests are already waiting; try again later", s),
                      event_for(audit::type::denied, s));

    Request q;
    q.id = new_id("R-");
    s.request_id = q.id;
    q.approvals_needed = s.rule->approvals;
    q.approver_groups = s.rule->approver_groups.empty() ? cfg.approval.approver_groups : s.rule->approver_groups;
    q.created_unix = now_unix();
    q.deadline = Clock::now() + s.rule->timeout;
    const auto timeout_s = static_cast<std::int64_t>(s.rule->timeout.count());
    if (m_service != nullptr) {
        const bool command_scope = scope_of(s) == config::Scope::command;
        try {
            q.nonce = grant_token::new_nonce();
            if (command_scope) q.cmd_sha256 = grant_token::cmd_sha256(command_binding_of(s));
        } catch (const std::exception& e) {
            s.request_id.clear();
            Json ev = event_for(audit::type::denied, s);
            ev["error"] = esc(e.what());
            return decide(s, responder,
                          deny_with("error", std::string("jitgate: denied: this action cannot be sent for approval: ") +
                                                 esc(e.what()), s),
                          std::move(ev));
        }
    }

    Json e = event_for(audit::type::requested, s);
    e["approvals_needed"] = q.approvals_needed;
    e["approver_groups"] = q.approver_groups;
    e["scope"] = config::to_string(s.rule->scope);
    e["ttl_s"] = static_cast<std::int64_t>(s.rule->ttl.count());
    e["timeout_s"] = timeout_s;
    e["waiting"] = !detach;
    if (m_service != nullptr) e["approval_service"] = m_service->base_url();
    if (!audit(std::move(e))) {
        s.request_id.clear();
        return decide(s, responder,
                      deny_with("error", k_spool_unwritable, s), event_for(audit::type::error, s));
    }
    q.session = s;
    responder.notice("jitgate: approval required by rule '" + s.rule->name + "': " +
                         plural(q.approvals_needed, "approval", "approvals") + " from " + join_names(q.approver_groups) +
                         (q.approvals_needed > 1 ? " (different people)" : "") + "." +
                         (s.rule->message.empty() ? "" : " " + esc(s.rule->message)),
                     -1);
    const std::string id = q.id;
    if (m_service != nullptr) m_service->submit(id, service_body(q));
    const std::string how = m_service != nullptr ? "approvers decide at the approval service " + m_service->base_url()
                                                 : "an approver runs: jitgatectl approve " + id;
    if (detach) {
        add(std::move(q));
        const bool login = r.kind == "login";
        msg::Decision d = deny_with("filed", "jitgate: request " + id + " filed; " +
                                                 (login ? "a non-interactive login does not wait. Log in again"
                                                        : "sudo -n does not wait. Run the command again") +
                                                 " once it is approved (" + how + ")", s);
        ++m_decisions;
        responder.decide(d);
        return Step::done;
    }
    q.responder = &responder;
    q.live = &s;
    add(std::move(q));
    responder.notice("jitgate: request " + id + " sent; waiting up to " + config::format_duration(s.rule->timeout) +
                         " (Ctrl-C cancels). " + (m_service != nullptr ? "Approvers decide at the approval service."
                                                                      : "An approver runs: jitgatectl approve " + id),
                     timeout_s);
    return Step::waiting;
}

void Broker::conclude(Request& q, const msg::Decision& decision) {
    if (q.responder != nullptr) {
        if (q.live != nullptr) q.live->request_id.clear();
        ++m_decisions;
        q.responder->decide(decision);
    }
    remove(q.id);
}

void Broker::add(Request q) {
    m_deadlines.emplace(q.deadline, q.id);
    ++m_pending_by_uid[requester_uid(q.session)];
    const std::string id = q.id;
    m_requests.emplace(id, std::move(q));
}

void Broker::remove(const std::string& id) {
    const auto it = m_requests.find(id);
    if (it == m_requests.end()) return;
    m_deadlines.erase({it->second.deadline, id});
    const auto counted = m_pending_by_uid.find(requester_uid(it->second.session));
    if (counted != m_pending_by_uid.end() && --counted->second == 0) m_pending_by_uid.erase(counted);
    m_requests.erase(it);
}

Step Broker::input_timed_out(CheckSession& s, Responder& responder, std::chrono::seconds limit) {
    if (s.awaiting.empty()) return Step::done;
    const std::string field = s.awaiting;
    s.awaiting.clear(); // answered by the timeout: the closing connection is no cancel
    const std::string after = config::format_duration(limit);
    return decide(s, responder,
                  deny_with("timeout", "jitgate: denied: no " + field + " given at the prompt within " + after, s),
                  event_for(audit::type::timeout, s));
}

void Broker::client_gone(CheckSession& s) {
    if (!s.awaiting.empty()) {
        Json e = event_for(audit::type::cancelled, s);
        e["message"] = "the client went away while being asked for a " + s.awaiting;
        s.awaiting.clear();
        audit(std::move(e));
        return;
    }
    if (s.request_id.empty()) return;
    const auto it = m_requests.find(s.request_id);
    if (it == m_requests.end() || it->second.live != &s) return;
    Json e = event_for(audit::type::cancelled, it->second.session);
    e["message"] = "the requester gave up while waiting (Ctrl-C, killed or disconnected)";
    e["approvers"] = it->second.approvers;
    audit(std::move(e));
    if (m_service != nullptr) m_service->cancel(s.request_id, "client_gone");
    remove(s.request_id);
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

OpResult Broker::grant(Request& q, const std::string& approved_by, std::int64_t expires_unix, const Json& extra) {
    const auto& r = q.session.request;
    const std::string id = q.id;
    if (const auto full = spool_full_refusal(false); !full.empty()) {
        Json e = event_for(audit::type::denied, q.session);
        e["spool_full"] = true;
        e["outcome"] = "error";
        e["message"] = full;
        audit(std::move(e));
        msg::Decision d = deny_with("error", full, q.session);
        d.request_id = id;
        conclude(q, d);
        return {false, "request " + id + " denied: the audit spool is full"};
    }
    grants::Grant g;
    g.id = new_id("G-");
    g.request_id = id;
    g.user = r.user;
    g.kind = r.kind;
    g.requester = requester_name(q.session);
    g.requester_uid = requester_uid(q.session);
    g.login_uid = q.session.requester.login_uid;
    g.scope = scope_of(q.session);
    g.rule = q.session.rule->name;
    g.runas_user = r.runas_user;
    g.command = r.command;
    g.argv = r.run_argv;
    g.cwd = binding::run_cwd(r);
    g.runas_group = r.runas_group;
    g.chroot = r.chroot;
    g.program = q.session.program;
    g.env = q.session.bound_env;
    g.approvers = q.approvers;
    g.reason = r.reason;
    g.ticket = r.ticket;
    // The TTL counts from the approval, not from the request; a service grant's exp caps it.
    g.granted_unix = now_unix();
    auto ttl_s = static_cast<std::int64_t>(q.session.rule->ttl.count());
    if (expires_unix > 0) ttl_s = std::clamp<std::int64_t>(expires_unix - g.granted_unix, 0, ttl_s);
    g.expires_unix = g.granted_unix + ttl_s;
    g.expires = Clock::now() + seconds(ttl_s);

    Json e = event_for(audit::type::approved, q.session);
    e["approvers"] = q.approvers;
    e["approvals_needed"] = q.approvals_needed;
    e["grant_id"] = g.id;
    e["scope"] = config::to_string(g.scope);
    e["ttl_s"] = ttl_s;
    e["expires"] = g.expires_unix;
    for (const auto& [key, value] : extra.items()) e[key] = value;
    if (!audit(std::move(e))) {
        if (m_service != nullptr) {
            // No local approver can retry: the request ends here, denied (fail closed).
            msg::Decision d = deny_with("error", k_spool_unwritable, q.session);
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
    m_grants.add(std::move(g));

    msg::Decision d;
    d.allow = true;
    d.outcome = "approved";
    d.message = "jitgate: approved by " + approved_by + " (request " + id + "); grant " + grant_id +
                " valid for " + ttl;
    d.request_id = id;
    d.grant_id = grant_id;
    d.rule = q.session.rule->name;
    conclude(q, d);
    return {true, "approved " + id + "; grant " + grant_id + " valid for " + ttl};
}

Json Broker::service_body(const Request& q) const {
    const auto& cfg = *m_config;
    const auto& r = q.session.request;
    const std::string scope = config::to_string(scope_of(q.session));
    const std::string asker = requester_name(q.session);
    Json requester{{"user", text::is_valid_utf8(asker) ? asker : esc(asker)}, {"uid", requester_uid(q.session)}};
    if (q.session.requester.login_uid >= 0) {
        requester["login_uid"] = q.session.requester.login_uid;
        requester["login_user"] = esc(q.session.requester.login_name);
    }
    return Json{{"protocol", 1},
                {"id", q.id},
                {"nonce", q.nonce},
                {"host", cfg.host.name},
                {"host_environment", cfg.host.environment},
                {"host_tags", cfg.host.tags},
                {"requester", requester},
                {"account", {{"user", text::is_valid_utf8(r.user) ? r.user : esc(r.user)}, {"uid", r.uid}}},
                {"kind", r.kind},
                {"scope", scope},
                {"action",
                 {{"command", esc(r.command)},
                  {"argv", text::argv_to_json(r.run_argv)},
                  {"display", r.kind == "login" ? std::string() : cut(display_command(r.command, r.run_argv))},
                  {"runas", esc(r.runas_user)},
                  {"runas_group", esc(r.runas_group)},
                  {"cwd", esc(binding::run_cwd(r))},
                  {"chroot", esc(r.chroot)},
                  {"program", esc(q.session.program)},
                  {"env", text::argv_to_json(q.session.bound_env)},
                  {"env_code_loading", escaped_argv(binding::code_loading_names(q.session.bound_env))},
                  {"tty", esc(r.tty)},
                  {"service", esc(r.service)},
                  {"remote_host", esc(r.remote_host)},
                  {"cmd_sha256", q.cmd_sha256}}},
                {"reason", esc(r.reason)},
                {"ticket", esc(r.ticket)},
                {"rule", q.session.rule->name},
                {"approvals_needed", q.approvals_needed},
                {"approver_groups", q.approver_groups},
                {"ttl_s", static_cast<std::int64_t>(q.session.rule->ttl.count())},
                {"timeout_s", static_cast<std::int64_t>(q.session.rule->timeout.count())}};
}

void Broker::service_deny(Request& q, const char* event_type, const std::string& outcome, const std::string& message,
                          Json extra) {
    Json e = event_for(event_type, q.session);
    e["outcome"] = outcome;
    e["message"] = message;
    for (const auto& [key, value] : extra.items()) e[key] = value;
    audit(std::move(e)); // a deny stands even if it could not be recorded
    msg::Decision d = deny_with(outcome, "jitgate: request " + q.id + " " + message, q.session);
    d.request_id = q.id;
    conclude(q, d);
}

void Broker::on_service_outcome(const std::string& id, const service::Outcome& o) {
    const auto it = m_requests.find(id);
    if (it == m_requests.end()) return;
    Request& q = it->second;
    const auto& r = q.session.request;
    using Kind = service::Outcome::Kind;
    switch (o.kind) {
    case Kind::pending: {
        // Text from the service reaches a terminal: escaped and cut like any other input.
        std::string line = "jitgate: request " + id + ":";
        if (!o.message.empty()) line += " " + cut(esc(o.message)) + ".";
        if (!o.approvers_notified.empty()) {
            std::vector<std::string> names;
            for (const auto& n : o.approvers_notified) names.push_back(esc(n.substr(0, 128)));
            line += " Notified: " + join_names(names) + ".";
        }
        if (!o.approve_url.empty()) line += " Approve at " + cut(esc(o.approve_url));
        if (q.responder != nullptr) q.responder->notice(line, -1);
        return;
    }
    case Kind::approved: {
        grant_token::Expected ex;
        ex.request_id = id;
        ex.nonce = q.nonce;
        ex.host = m_config->host.name;
        ex.user = requester_name(q.session); // the grant's sub: who asked (§7.2)
        ex.login_user = q.session.requester.login_name;
        ex.kind = r.kind;
        ex.scope = config::to_string(scope_of(q.session));
        ex.cmd_sha256 = q.cmd_sha256;
        ex.approvals_needed = q.approvals_needed;
        ex.issuer = m_config->approval.service.issuer;
        ex.now_unix = now_unix();
        ex.skew_s = static_cast<std::int64_t>(m_config->approval.service.clock_skew.count());
        const auto v = m_keys ? grant_token::verify(o.grant, *m_keys, ex)
                              : grant_token::Verdict{false, "grant: no public keys configured", {}};
        if (!v.ok) {
            ++m_grants_rejected;
            // SECURITY NOTE: a grant that does not verify is a denial, never a retry: the
            // service (or someone in between) said yes in a way this host cannot trust.
            service_deny(q, audit::type::denied, "invalid_grant", "denied: the approval service's " + v.reason,
                         Json{{"grant_rejected", v.reason}});
            return;
        }
        // Names from the service reach logs and terminals: escaped like any other input.
        q.approvers.clear();
        for (const auto& a : v.claims.approvers) q.approvers.push_back(esc(a));
        grant(q, join_names(q.approvers), v.claims.exp,
              Json{{"service_grant_id", esc(v.claims.jti)},
                   {"kid", v.claims.kid},
                   {"approval_service", m_service != nullptr ? m_service->base_url() : ""}});
        // grant() concluded the request either way (allowed, or denied with its reason):
        // `q` is gone now.
        return;
    }
    case Kind::denied: {
        const std::string why = trim(o.reason).empty() ? "no reason given" : cut(esc(trim(o.reason)));
        const std::string by = o.denied_by.empty() ? "the approval service" : esc(o.denied_by.substr(0, 128));
        service_deny(q, audit::type::denied, "denied", "denied by " + by + ": " + why,
                     Json{{"denied_by", by}, {"deny_reason", why}});
        return;
    }
    case Kind::expired:
        service_deny(q, audit::type::timeout, "timeout", "expired at the approval service without a decision", Json::object());
        return;
    case Kind::cancelled:
        service_deny(q, audit::type::cancelled, "cancelled", "was cancelled at the approval service", Json::object());
        return;
    case Kind::failed:
        service_deny(q, audit::type::denied, "error", "denied: " + cut(esc(o.reason)), Json::object());
        return;
    }
}

Json Broker::status() const {
    return Json{{"host", m_config->host.name},
                {"config", m_config->source},
                {"backend", m_config->approval.backend},
                {"service", m_service != nullptr ? m_service->status() : Json(nullptr)},
                {"grants_rejected", m_grants_rejected},
                {"pending", m_requests.size()},
                {"grants", m_grants.size()},
                {"decisions", m_decisions},
                {"audit_seq", m_auditor.last_seq()},
                {"audit_failures", m_audit_failures},
                {"syslog_failures", m_auditor.syslog_failures()},
                {"audit", m_shipper != nullptr ? m_shipper->status() : m_auditor.stats()},
                {"uptime_s", now_unix() - m_started_unix}};
}

std::optional<Clock::time_point> Broker::next_deadline() const {
    if (m_deadlines.empty()) return std::nullopt;
    return m_deadlines.begin()->first;
}

void Broker::expire(Clock::time_point now) {
    while (!m_deadlines.empty() && m_deadlines.begin()->first <= now) {
        const std::string id = m_deadlines.begin()->second;
        const auto it = m_requests.find(id);
        if (it == m_requests.end()) {
            m_deadlines.erase(m_deadlines.begin());
            continue;
        }
        Request& q = it->second;
        const std::string after = config::format_duration(q.session.rule->timeout);
        Json e = event_for(audit::type::timeout, q.session);
        e["approvers"] = q.approvers;
        e["message"] = "no decision within " + after;
        audit(std::move(e));
        msg::Decision d = deny_with("timeout", "jitgate: request " + id + " timed out after " + after + " without approval", q.session);
        d.request_id = id;
        if (m_service != nullptr) m_service->cancel(id, "timeout");
        conclude(q, d);
    }
}

} // namespace jitgate::broker
