// daemon/approval/service.cpp — the `service` approval backend: the create body, the outcomes
// of the approval service, and the verification of its grants.
#include "daemon/approval/service.hpp"

#include <chrono>
#include <cstdio>

#include "daemon/audit/auditor.hpp"
#include "daemon/policy/binding.hpp"
#include "jitgate/error.hpp"
#include "jitgate/text.hpp"

namespace jitgate::approval {
namespace {

using broker::CheckSession;
using broker::cut;
using broker::esc;

std::int64_t now_unix() {
    using namespace std::chrono;
    return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

grant_token::CommandBinding command_binding_of(const CheckSession& s) {
    const auto& r = s.request;
    return grant_token::CommandBinding{r.runas_user, r.runas_group, binding::run_cwd(r), r.chroot,
                                       r.command,    s.program,     r.run_argv,          s.bound_env};
}

} // namespace

std::string service_auto_condition(const config::Rule& rule, const std::string& kind) {
    // SECURITY NOTE: the same conditions as validate() and the local path (Broker::auto_approval),
    // checked again here because this decides which automatic grants the host accepts: only a
    // require_approval rule that opted in with on_call; never where two approvals are needed
    // unless auto_approve_sod says so; never a login (its requester is the account itself).
    const config::AutoApprove& a = rule.auto_approve;
    if (!a.set || !a.on_call || rule.action != config::Action::require_approval) return {};
    if (!a.commands.empty() || !a.window.empty()) return {}; // refused by validate() with this backend
    if (rule.approvals >= 2 && !rule.auto_approve_sod) return {};
    if (kind != "sudo") return {};
    return "on_call";
}

ServiceBackend::ServiceBackend(std::shared_ptr<const config::Config> config, Outcomes& outcomes)
    : m_config(std::move(config)), m_outcomes(outcomes), m_keys(load_keys(*m_config)),
      m_client(std::make_unique<service::ServiceClient>(m_config->approval.service,
                                                        static_cast<service::Listener&>(*this))) {}

ServiceBackend::~ServiceBackend() = default;

std::shared_ptr<const grant_token::KeyRing> ServiceBackend::load_keys(const config::Config& config) {
    // SECURITY NOTE: whoever can write a public key file can mint grants, and whoever can write
    // the CA file can impersonate the service: both get the config file's ownership check.
    auto keys = std::make_shared<grant_token::KeyRing>();
    for (const auto& [kid, file] : config.approval.service.public_keys) {
        if (const auto p = config::check_file_security(file)) throw Error(ErrorCode::bad_input, file, p->message);
        keys->add_file(kid, file);
    }
    if (const auto p = config::check_file_security(config.approval.service.ca_file))
        throw Error(ErrorCode::bad_input, config.approval.service.ca_file, p->message);
    return keys;
}

void ServiceBackend::reload(std::shared_ptr<const config::Config> config) {
    auto keys = load_keys(*config); // throws before anything changes
    m_keys = std::move(keys);
    m_config = std::move(config);
}

void ServiceBackend::prepare(Request& q) {
    q.nonce = grant_token::new_nonce();
    if (broker::scope_of(*q.session) == config::Scope::command)
        q.cmd_sha256 = grant_token::cmd_sha256(command_binding_of(*q.session));
}

void ServiceBackend::describe(Json& event) const {
    event["approval_service"] = m_client->base_url();
}

void ServiceBackend::submit(const Request& q) {
    m_client->submit(q.id, body_of(q));
}

void ServiceBackend::cancel(const std::string& id, const std::string& reason) {
    m_client->cancel(id, reason);
}

std::string ServiceBackend::how_to_approve(const std::string&) const {
    return "approvers decide at the approval service " + m_client->base_url();
}

std::string ServiceBackend::waiting_hint(const std::string&) const {
    return "Approvers decide at the approval service.";
}

Json ServiceBackend::shutdown(std::chrono::milliseconds limit) {
    // Requests still waiting are withdrawn at the service (reason "shutdown"), so no one
    // approves what nobody waits for any more; bounded, so a dead service cannot hang stop.
    Json out = Json::object();
    out["cancelled_at_service"] = m_client->cancel_all("shutdown");
    out["cancels_unsent"] = m_client->drain(limit);
    return out;
}

void ServiceBackend::add_status(Json& status) const {
    status["service"] = m_client->status();
    status["grants_rejected"] = m_grants_rejected;
    status["service_revocations"] = {{"applied", m_revocations_applied},
                                     {"ignored", m_revocations_ignored},
                                     {"before_grant", m_revocations_pending}};
}

Json ServiceBackend::body_of(const Request& q) const {
    const auto& cfg = *m_config;
    const auto& r = q.session->request;
    const std::string scope = config::to_string(broker::scope_of(*q.session));
    const std::string asker = broker::requester_name(*q.session);
    Json requester{{"user", text::is_valid_utf8(asker) ? asker : esc(asker)},
                   {"uid", broker::requester_uid(*q.session)}};
    if (q.session->requester.login_uid >= 0) {
        requester["login_uid"] = q.session->requester.login_uid;
        requester["login_user"] = esc(q.session->requester.login_name);
    }
    Json body{{"protocol", 1},
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
                {"display", r.kind == "login" ? std::string() : cut(broker::display_command(r.command, r.run_argv))},
                {"runas", esc(r.runas_user)},
                {"runas_group", esc(r.runas_group)},
                {"cwd", esc(binding::run_cwd(r))},
                {"chroot", esc(r.chroot)},
                {"program", esc(q.session->program)},
                {"env", text::argv_to_json(q.session->bound_env)},
                {"env_code_loading", broker::escaped_argv(binding::code_loading_names(q.session->bound_env))},
                {"tty", esc(r.tty)},
                {"service", esc(r.service)},
                {"remote_host", esc(r.remote_host)},
                {"cmd_sha256", q.cmd_sha256}}},
              {"reason", esc(r.reason)},
              {"ticket", esc(r.ticket)},
              {"rule", q.session->rule->name},
              {"approvals_needed", q.approvals_needed},
              {"approver_groups", q.approver_groups},
              {"ttl_s", static_cast<std::int64_t>(q.session->rule->ttl.count())},
              {"timeout_s", static_cast<std::int64_t>(q.session->rule->timeout.count())}};
    // §4 `auto_approve`: the rule lets the service approve automatically (its policy decides).
    // Only sent when set, so a body without it is what an older host sends.
    if (const std::string condition = service_auto_condition(*q.session->rule, r.kind); !condition.empty())
        body["auto_approve"] = Json::array({condition});
    return body;
}

void ServiceBackend::on_service_outcome(const std::string& id, const service::Outcome& o) {
    Request* found = m_outcomes.waiting(id);
    if (found == nullptr) return;
    Request& q = *found;
    const auto& r = q.session->request;
    using Kind = service::Outcome::Kind;
    switch (o.kind) {
    case Kind::pending: {
        // Text from the service reaches a terminal: escaped and cut like any other input.
        std::string line = "jitgate: request " + id + ":";
        if (!o.message.empty()) line += " " + cut(esc(o.message)) + ".";
        if (!o.approvers_notified.empty()) {
            std::vector<std::string> names;
            for (const auto& n : o.approvers_notified) names.push_back(esc(n.substr(0, 128)));
            line += " Notified: " + broker::join_names(names) + ".";
        }
        if (!o.approve_url.empty()) line += " Approve at " + cut(esc(o.approve_url));
        m_outcomes.tell(q, line);
        return;
    }
    case Kind::approved: {
        grant_token::Expected ex;
        ex.request_id = id;
        ex.nonce = q.nonce;
        ex.host = m_config->host.name;
        ex.user = broker::requester_name(*q.session); // the grant's sub: who asked (§7.2)
        ex.login_user = q.session->requester.login_name;
        ex.kind = r.kind;
        ex.scope = config::to_string(broker::scope_of(*q.session));
        ex.cmd_sha256 = q.cmd_sha256;
        ex.approvals_needed = q.approvals_needed;
        ex.issuer = m_config->approval.service.issuer;
        ex.now_unix = now_unix();
        ex.skew_s = static_cast<std::int64_t>(m_config->approval.service.clock_skew.count());
        // Empty unless this request's rule opted in: an automatic grant for any other rule is
        // refused by verify() (and counted in grants_rejected like every refused grant).
        ex.auto_allowed = service_auto_condition(*q.session->rule, r.kind);
        const auto v = m_keys ? grant_token::verify(o.grant, *m_keys, ex)
                              : grant_token::Verdict{false, "grant: no public keys configured", {}};
        if (!v.ok) {
            ++m_grants_rejected;
            // SECURITY NOTE: a grant that does not verify is a denial, never a retry: the
            // service (or someone in between) said yes in a way this host cannot trust.
            m_outcomes.denied(q, audit::type::denied, msg::Outcome::invalid_grant,
                              "denied: the approval service's " + v.reason, Json{{"grant_rejected", v.reason}});
            return;
        }
        // SECURITY NOTE: the service's feed named this grant (or more of this request's than
        // are kept) as revoked while the request still waited here: it is refused, never used.
        if (const service::Revocation* rv = nullptr; service::revoked_while_waiting(o, v.claims.jti, &rv)) {
            ++m_revocations_applied;
            Json extra{{"service_grant_id", esc(v.claims.jti)},
                       {"revoked_at_service", true},
                       {"approval_service", m_client->base_url()}};
            std::string message = "denied: its grant was revoked at the approval service before it arrived";
            if (rv != nullptr) {
                extra["revoked_by"] = esc(rv->revoked_by.substr(0, 128));
                extra["reason"] = cut(esc(rv->reason));
                extra["service_revocation_seq"] = rv->seq;
                message = "denied: its grant was revoked at the approval service by " +
                          esc(rv->revoked_by.substr(0, 128)) + " before it arrived";
            }
            m_outcomes.denied(q, audit::type::denied, msg::Outcome::denied, message, std::move(extra));
            return;
        }
        // Names from the service reach logs and terminals: escaped like any other input.
        std::vector<std::string> approvers;
        for (const auto& a : v.claims.approvers) approvers.push_back(esc(a));
        // From the first grant on, the service's revocations are watched (§12): a host that
        // holds no grant of the service has nothing to revoke.
        m_client->watch_revocations();
        Json extra{
            {"service_grant_id", esc(v.claims.jti)}, {"kid", v.claims.kid}, {"approval_service", m_client->base_url()}};
        if (!v.claims.auto_condition.empty()) {
            // Recorded as the local path records it (access.auto_approved, never a person's
            // access.approved); service_grant_id and approval_service say the service decided.
            extra["type"] = audit::type::auto_approved;
            extra["condition"] = v.claims.auto_condition;
            extra["auto_approved"] = true;
        }
        m_outcomes.approved(q, std::move(approvers), v.claims.exp, extra);
        // The request is concluded either way (allowed, or denied with its reason): `q` is
        // gone now.
        return;
    }
    case Kind::denied: {
        const std::string why = broker::trim(o.reason).empty() ? "no reason given" : cut(esc(broker::trim(o.reason)));
        const std::string by = o.denied_by.empty() ? "the approval service" : esc(o.denied_by.substr(0, 128));
        m_outcomes.denied(q, audit::type::denied, msg::Outcome::denied, "denied by " + by + ": " + why,
                          Json{{"denied_by", by}, {"deny_reason", why}});
        return;
    }
    case Kind::revoked: {
        // §12: approved at the service, then its grant revoked before this host fetched it.
        // (§12: "cancelled" with revoked: true.)
        const std::string why =
            broker::trim(o.reason).empty() ? "revoked at the service" : cut(esc(broker::trim(o.reason)));
        const std::string by = o.revoked_by.empty() ? "the approval service" : esc(o.revoked_by.substr(0, 128));
        m_outcomes.denied(q, audit::type::cancelled, msg::Outcome::cancelled,
                          "was approved, then its grant was revoked at the approval service (" + why + ")",
                          Json{{"revoked_at_service", true}, {"revoked_by", by}, {"reason", why}});
        return;
    }
    case Kind::expired:
        m_outcomes.denied(q, audit::type::timeout, msg::Outcome::timeout,
                          "expired at the approval service without a decision", Json::object());
        return;
    case Kind::cancelled:
        m_outcomes.denied(q, audit::type::cancelled, msg::Outcome::cancelled, "was cancelled at the approval service",
                          Json::object());
        return;
    case Kind::failed:
        m_outcomes.denied(q, audit::type::denied, msg::Outcome::error, "denied: " + cut(esc(o.reason)), Json::object());
        return;
    }
}

void ServiceBackend::on_service_revocations(const std::vector<service::Revocation>& revocations) {
    // SECURITY NOTE: hostile input. Only a revocation for this host, of a grant it holds for
    // that request with that service grant id, ends anything (the broker matches both).
    // This host's, handed to the broker as one batch (its grants looked up once).
    std::vector<Outcomes::ServiceRevocation> batch;
    std::vector<std::size_t> index_of; // batch entry -> revocations index
    for (std::size_t i = 0; i < revocations.size(); ++i) {
        const service::Revocation& r = revocations[i];
        if (r.host != m_config->host.name) continue;
        batch.push_back({r.request_id, r.grant_id, r.revoked_by, r.reason,
                         Json{{"via", "approval_service"},
                              {"approval_service", m_client->base_url()},
                              {"service_revoked_at", esc(r.revoked_at)},
                              {"service_revocation_seq", r.seq}}});
        index_of.push_back(i);
    }
    std::vector<bool> applied_at(revocations.size(), false);
    const std::vector<bool> results = m_outcomes.revoked_at_service_batch(batch);
    for (std::size_t k = 0; k < results.size() && k < index_of.size(); ++k) applied_at[index_of[k]] = results[k];
    for (std::size_t i = 0; i < revocations.size(); ++i) {
        const service::Revocation& r = revocations[i];
        if (applied_at[i]) {
            ++m_revocations_applied;
            continue;
        }
        // A grant of a request still waiting here (its answer not fetched yet, or in flight):
        // remembered with the request, and the grant refused when it arrives.
        if (r.host == m_config->host.name && m_client->note_revocation(r)) {
            ++m_revocations_pending;
            continue;
        }
        // Not ours, or no longer live (expired, released, revoked here, a restart): nothing to
        // end. Said at most once a minute, with the count since.
        ++m_revocations_ignored;
        ++m_ignored_unlogged;
        const auto now = std::chrono::steady_clock::now();
        if (m_ignored_logged == std::chrono::steady_clock::time_point{} ||
            now - m_ignored_logged >= std::chrono::minutes(1)) {
            std::fprintf(stderr,
                         "jitgated: ignored %llu revocation(s) from the approval service that name no live grant of "
                         "this host (last: request %s, grant %s, host %s)\n",
                         static_cast<unsigned long long>(m_ignored_unlogged), cut(esc(r.request_id)).c_str(),
                         cut(esc(r.grant_id)).c_str(), cut(esc(r.host)).c_str());
            m_ignored_unlogged = 0;
            m_ignored_logged = now;
        }
    }
}

} // namespace jitgate::approval
