// daemon/approval/backend.hpp — the approval backends behind one interface: `local`
// (jitgatectl approve/deny on this host, local.hpp) and `service` (an approval service over
// HTTPS whose signed grants this host verifies, service.hpp).
//
// The broker holds exactly one backend and never asks which one it is: it files requests
// with it, cancels them, and asks it how approvers decide. A backend that decides
// asynchronously (the service) hands its word back through Outcomes, which the broker
// implements. Depends on policy/ for the request and session types, never on the server.
// Not thread-safe: everything runs on the daemon's single event loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/config/config.hpp"
#include "daemon/policy/requests.hpp"

namespace jitgate::approval {

using Json = nlohmann::json;
using broker::Request;

// The broker's side of an asynchronous backend. Each call concerns a request the backend
// found with waiting(); approved() and denied() conclude it (the reference is dead after).
class Outcomes {
public:
    virtual ~Outcomes() = default;
    // The request `id` if it still waits; null if it was decided, timed out or cancelled.
    virtual Request* waiting(const std::string& id) = 0;
    // A progress line for the request's waiting client, if it still has one. `line` must
    // already be escaped and cut.
    virtual void tell(Request& request, const std::string& line) = 0;
    // Approved by `approvers` (escaped): a grant capped at `expires_unix`, recorded with
    // `extra` joined to the audit event, then the client allowed (or denied if the record
    // cannot be made).
    virtual void approved(Request& request, std::vector<std::string> approvers, std::int64_t expires_unix,
                          const Json& extra) = 0;
    // Denied: records `event_type` with `outcome`, `message` and `extra`, then tells the
    // client "jitgate: request <id> <message>". The deny stands even if the record fails.
    virtual void denied(Request& request, const char* event_type, msg::Outcome outcome, const std::string& message,
                        Json extra) = 0;
    // The approval service revoked the grant it signed for request `request_id` with jti
    // `service_grant_id` (docs/protocol.md §12). Ends the live grant of that request whose
    // service grant id is `service_grant_id` exactly as `jitgatectl revoke` does (grant.revoked,
    // its live sessions ended and recorded as session.ended_by_revoke), recorded as revoked at
    // the service by `revoked_by` for `reason` (as received: escaped by the broker), with
    // `extra` joined to the grant.revoked event. Returns false and changes nothing when no live
    // grant matches (unknown, expired, ended, or another request's).
    virtual bool revoked_at_service(const std::string& request_id, const std::string& service_grant_id,
                                    const std::string& revoked_by, const std::string& reason, const Json& extra) = 0;
    // One of a batch for revoked_at_service_batch().
    struct ServiceRevocation {
        std::string request_id, service_grant_id, revoked_by, reason;
        Json extra;
    };
    // revoked_at_service() for each of a page of the feed, in order; element i of the result
    // says whether batch[i] ended a grant. The broker looks its grants up once per batch.
    virtual std::vector<bool> revoked_at_service_batch(const std::vector<ServiceRevocation>& batch) {
        std::vector<bool> out;
        out.reserve(batch.size());
        for (const ServiceRevocation& r : batch)
            out.push_back(revoked_at_service(r.request_id, r.service_grant_id, r.revoked_by, r.reason, r.extra));
        return out;
    }
};

class ApprovalBackend {
public:
    virtual ~ApprovalBackend() = default;

    // SECURITY NOTE: false when another authority decides (the service): a local approver
    // group must not become a second way in, so jitgatectl approve/deny are refused.
    virtual bool allows_local_decisions() const noexcept = 0;
    // Where approvers decide, for messages: the service's URL; empty for local.
    virtual std::string location() const = 0;
    // Takes a new config (a reload). Throws Error, and changes nothing, if it cannot be
    // applied (service: a public key unreadable or unsafe).
    virtual void reload(std::shared_ptr<const config::Config> config) = 0;

    // Binds what the approval must carry back into `request` before it is filed (service: a
    // nonce and the command's hash). Throws std::exception if the action cannot be sent for
    // approval; the broker then denies it.
    virtual void prepare(Request& request) = 0;
    // Adds the backend's facts to the access.requested event of `request`.
    virtual void describe(Json& event) const = 0;
    // Starts the approval of `request`, which is filed and recorded. Never throws except
    // std::bad_alloc; a failure arrives later as an outcome.
    virtual void submit(const Request& request) = 0;
    // Stops the approval of `id` (reason: client_gone, timeout); unknown ids are ignored.
    virtual void cancel(const std::string& id, const std::string& reason) = 0;

    // How approvers decide `id`, in the user's "filed" message ("an approver runs: ...").
    virtual std::string how_to_approve(const std::string& id) const = 0;
    // The same, as a sentence for the waiting client's notice.
    virtual std::string waiting_hint(const std::string& id) const = 0;

    // The descriptor to watch for input in the daemon's loop (call on_ready() then); -1 if none.
    virtual int fd() const noexcept { return -1; }
    virtual void on_ready() {}
    // Shutdown: withdraws whatever still waits, for at most `limit`. Returns the facts for the
    // daemon.stopped event (empty object if none).
    virtual Json shutdown(std::chrono::milliseconds limit) = 0;
    // Sets the backend's fields of `jitgatectl status` ("service", "grants_rejected").
    virtual void add_status(Json& status) const = 0;
};

} // namespace jitgate::approval
