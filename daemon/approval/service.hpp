// daemon/approval/service.hpp — the `service` approval backend: requests go to the approval
// service (ServiceClient, protocol v1 over HTTPS) and its grants are verified here against
// the configured public keys before anything is allowed.
//
// SECURITY NOTE: the service is the only authority (allows_local_decisions() is false), and
// a grant that does not verify is a denial, never a retry. Not thread-safe: the client's
// callbacks run on the daemon's loop, as does everything else.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "daemon/approval/backend.hpp"
#include "daemon/approval/service_client.hpp"
#include "lib/grant_token.hpp"

namespace jitgate::approval {

// The automatic approval a request of `kind` under `rule` lets the service give (the §4
// `auto_approve` the host sends, and the only `auto` grant it accepts): "on_call" for a
// require_approval rule with auto_approve {on_call: true} (approvals >= 2 only with
// auto_approve_sod; kind sudo only), else empty.
std::string service_auto_condition(const config::Rule& rule, const std::string& kind);

class ServiceBackend final : public ApprovalBackend, private service::Listener {
public:
    // Reads the public keys and sets up the HTTPS client of `config`'s approval.service.
    // Throws Error naming the file if a key, the CA, the certificate or the client key cannot
    // be read or is unsafe (ownership, mode), and Error(internal) if libcurl or epoll fails.
    // `outcomes` (the broker) outlives the backend.
    ServiceBackend(std::shared_ptr<const config::Config> config, Outcomes& outcomes);
    ~ServiceBackend() override;
    ServiceBackend(const ServiceBackend&) = delete;
    ServiceBackend& operator=(const ServiceBackend&) = delete;

    bool allows_local_decisions() const noexcept override { return false; }
    std::string location() const override { return m_client->base_url(); }
    // Key rotation: re-reads approval.service.public_keys (the connection settings are the
    // running ones: changing them needs a restart, see setup::reload_refusal).
    void reload(std::shared_ptr<const config::Config> config) override;
    void prepare(Request& request) override;
    void describe(Json& event) const override;
    void submit(const Request& request) override;
    void cancel(const std::string& id, const std::string& reason) override;
    std::string how_to_approve(const std::string& id) const override;
    std::string waiting_hint(const std::string& id) const override;
    int fd() const noexcept override { return m_client->fd(); }
    void on_ready() override { m_client->on_ready(); }
    Json shutdown(std::chrono::milliseconds limit) override;
    void add_status(Json& status) const override;

    // The create body of `request` (docs/protocol.md §4). Exposed for tests.
    Json body_of(const Request& request) const;

    // Reads every configured public key of `config`, after the same ownership check as the
    // config file's, and checks the CA file's; throws Error naming the file that is wrong.
    static std::shared_ptr<const grant_token::KeyRing> load_keys(const config::Config& config);

private:
    // The approval service's word about a request (pending notices, approved with a grant to
    // verify, denied, expired, cancelled, failed).
    void on_service_outcome(const std::string& request_id, const service::Outcome& outcome) override;
    // Revocations made at the service (docs/protocol.md §12): each one of this host's that
    // names a live grant (by request id and the service's grant id) ends it through the broker
    // (Outcomes::revoked_at_service); the others are ignored, with a log line at most once a
    // minute (how many since the last).
    void on_service_revocations(const std::vector<service::Revocation>& revocations) override;

    std::shared_ptr<const config::Config> m_config;
    Outcomes& m_outcomes;
    std::shared_ptr<const grant_token::KeyRing> m_keys;
    std::unique_ptr<service::ServiceClient> m_client;
    std::uint64_t m_grants_rejected = 0;
    std::uint64_t m_revocations_applied = 0;
    std::uint64_t m_revocations_ignored = 0;
    std::uint64_t m_revocations_pending = 0;                  // named a request still waiting: its grant is refused
    std::uint64_t m_ignored_unlogged = 0;                     // ignored since the last log line
    std::chrono::steady_clock::time_point m_ignored_logged{}; // when the last line went out
};

} // namespace jitgate::approval
