// server/service/service.hpp — the approval service's core: protocol v1 for hosts
// (docs/protocol.md), the request state machine, the server's approver policy, the grants it
// signs, and the hosts' audit shipping (docs/audit.md §5; batch checks in audit_ingest.hpp).
// The host API's HTTP handler, the web UI and the approver CLI all act through it.
//
// Who may do what (SECURITY NOTE):
//  - a host is who its client certificate names; it files, polls and cancels only its own
//    requests (another host's request is 404, exactly like an unknown one);
//  - an approver is a signed-in person (OpenID Connect) mapped to one Unix name; they may act
//    on a request only if one of their approver groups is among the request's (server policy),
//    never on their own request (the requester or the requester's login user), and each person
//    counts once: N approvals are N different Unix names;
//  - nothing is approved twice: the store completes a request in one conditional transaction.
//
// Threading: the loop thread only (Store and Reply are single-threaded). Errors: host and
// approver mistakes are answers (4xx, ActionResult), never exceptions; a database failure is
// an Error(io) from the store, answered 503 to hosts and shown as a failure to approvers.
#pragma once

#include "server/config/config.hpp"
#include "server/http/http.hpp"
#include "server/http/worker.hpp"
#include "server/service/audit_ingest.hpp"
#include "server/service/policy.hpp"
#include "server/service/protocol.hpp"
#include "server/store/store.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace jitgate::grant_token {
class SigningKey;
}

namespace jitgate::server::service {

// A signed-in person acting on requests.
struct Approver {
    std::string identity;  // the IdP's issuer + subject
    std::string unix_user; // the mapped Unix name: what goes into a grant's `approvers`
    std::string display_name;
    std::vector<std::string> groups; // approver groups after the claim mapping
};

enum class ActionStatus {
    done,            // the approval or denial was recorded
    approved,        // the approval completed the request: the grant was signed
    not_found,       // no such request
    not_pending,     // already final or expired
    forbidden,       // not in an approver group of this request, or not allowed by the ticket check
    own_request,     // the approver is the requester (or the requester's login user)
    already_voted,   // this person already approved
    invalid,         // e.g. a comment too long or a denial without a comment
    not_approved,    // a revocation of a request that has no grant (pending, denied, expired, cancelled)
    already_revoked, // the grant was revoked before: nothing changed (idempotent)
};

struct ActionResult {
    ActionStatus status = ActionStatus::not_found;
    std::string message; // one line for the approver
};

// What an approver may do with one request: exactly what approve() and deny() will accept
// (the web UI shows a button only when the service would take it). Approving and denying
// differ: a ticket check that has not passed, or an earlier approval by the same person, blocks
// approving but not denying (denying is the safe direction, and people change their minds).
struct Decidability {
    bool may_approve = false;
    std::string why_not; // why approving is refused; empty when may_approve
    bool may_deny = false;
    std::string why_not_deny; // why denying is refused; empty when may_deny
};

// Sources of time and randomness, so tests can drive them.
struct Clock {
    std::function<std::int64_t()> now = nullptr; // Unix seconds; null: the system clock
};

class Service {
public:
    Service(const config::Config& config, store::Store& store, const grant_token::SigningKey& signing_key,
            http::EventLoop& loop, Clock clock = {});
    ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    // Starts the periodic work on the loop: expiry of due requests (every second), the purge
    // (every k_purge_interval) and, with a store that has other writers, wake-ups from other
    // replicas.
    void start();

    // Deletes what expires by itself from the store (store::Store::purge): sessions and
    // sign-ins expired by now, and delivered notices older than k_keep_delivered_notices.
    // Never a request, an approval or an event. Errors: the store's (Error(io)); start()'s
    // timer logs them and tries again next time. Loop thread only.
    store::Store::Purged purge();
    static constexpr std::chrono::seconds k_purge_interval{60};
    static constexpr std::chrono::seconds k_keep_delivered_notices{24 * 3600};
    // How often the purge timer also makes sure the audit store's monthly partitions exist
    // (store::Store::ensure_audit_partitions: this month and the next two).
    static constexpr std::chrono::seconds k_partitions_interval{3600};

    // The host API: POST /v1/requests, GET /v1/requests/{id}?wait=N, POST /v1/requests/{id}/cancel,
    // GET /v1/revocations?after=CURSOR&wait=N (protocol §12), and the audit store's POST /v1/audit/events
    // (docs/audit.md §5) and GET /v1/audit/state. Only POST /v1/audit/events takes a body over k_max_host_body (the
    // listener must allow audit_ingest::k_max_body on k_audit_events_path).
    static constexpr const char* k_audit_events_path = "/v1/audit/events";

    // Moves the checks of audit batches (audit_ingest::check_batch: seconds for a hostile 32 MiB
    // body, which would hold every host's poll and filing) off the loop thread onto one worker
    // thread, with at most `limits` in flight (queued or being checked) and one per host (below):
    // beyond that a batch is answered 503 with Retry-After (k_busy_retry_after_s), nothing
    // stored, and jitgated sends it again after its back-off; so is a batch whose check threw
    // (out of memory), answered from the loop thread like every batch. `post` runs a function on
    // the loop thread (EventLoop::post); the store's part runs there. Without this call (tests)
    // the checks run on the loop. Call once, before serving.
    struct AuditQueueLimits {
        // Bodies in flight: what they hold in memory and what the worker has to check first
        // (about 100,000 events of jitgated's, a few seconds of checking). The count only bounds
        // the bookkeeping: a fleet's hosts ship at once, and each refusal costs the host a
        // back-off of seconds to minutes, so the queue must hold a fleet's ordinary batches.
        std::size_t batches = 1024;
        std::size_t bytes = 64 * 1024 * 1024;
    };
    void offload_audit_checks(http::Worker::Post post, AuditQueueLimits limits);
    void offload_audit_checks(http::Worker::Post post) { offload_audit_checks(std::move(post), AuditQueueLimits{}); }
    // SECURITY NOTE: the slots are the fleet's: each host has at most one batch queued or
    // checked (a second one at the same time is 503 at once, taking no slot; a certificate
    // naming several hosts has one per name), and a host refused
    // for a full queue is owed a turn for k_owed_turn_s: a freed slot goes to an owed host before
    // one just served (audit_ingest::CheckTurns). Busy refusals go to syslog ("audit.batch_busy"),
    // at most once a minute for the fleet and once a minute per host.
    static constexpr int k_busy_retry_after_s = 5;
    // Longer than jitgated's longest back-off (audit.store.retry_max, 5 minutes by default).
    static constexpr std::int64_t k_owed_turn_s = 600;
    static constexpr std::size_t k_max_host_body = 64 * 1024;
    void handle_host(http::Request&& request, http::Reply&& reply);

    // Approver actions. `source_address` and `via` ("web", "cli") go to the audit trail.
    ActionResult approve(const Approver& approver, const std::string& host, const std::string& id,
                         const std::string& comment, const std::string& source_address, const std::string& via);
    ActionResult deny(const Approver& approver, const std::string& host, const std::string& id,
                      const std::string& comment, const std::string& source_address, const std::string& via);
    Decidability decidability(const Approver& approver, const store::Request& request) const;
    // Revokes the grant of approved request (host, id) (docs/protocol.md §12): stored with who,
    // when and why, with a "grant.revoked" event in the same transaction, then the host's
    // revocation polls are answered (on every replica: the store's wake-ups, and each second
    // a look at the newest revocation). The approver must be in one of the request's approver
    // groups (may_revoke); an admin revokes through `jitgate-server grants revoke`, which goes to
    // the store directly (commands.hpp). Idempotent: a second revocation is already_revoked and
    // records nothing. not_found, not_approved (no grant), forbidden (recorded as
    // "revocation.refused", like refused approvals) and invalid (a reason over 2 KiB or not
    // UTF-8) change nothing.
    ActionResult revoke(const Approver& who, const std::string& host, const std::string& id, const std::string& reason,
                        const std::string& source_address, const std::string& via);
    // Whether `approver` may revoke `request`'s grant: it is approved and one of their approver
    // groups is among the request's (the people who could have approved it). The requester may
    // too when they are such an approver (revoking is the safe direction).
    bool may_revoke(const Approver& approver, const store::Request& request) const;
    // `approver` is in one of the request's approver groups (fixed at filing), whatever its status.
    bool in_revoking_groups(const Approver& approver, const store::Request& request) const;
    // A revocation poll returns at most this many; the host polls again at once for the rest.
    static constexpr std::size_t k_revocations_page = 100;
    // Records the ticket check's answer (`answer_json` as stored) and audits it.
    void record_ticket_check(const std::string& host, const std::string& id, bool ok, const std::string& why,
                             const std::string& answer_json);

    // Called after each change of a request ("request.filed", "request.approval_added",
    // "request.approved", "request.denied", "request.expired", "request.cancelled"), on the loop
    // thread, after the change is durable: main enqueues the webhook notices here. Its
    // failures are logged and never undo or block a decision. May be empty.
    std::function<void(const std::string& type, const store::Request& request)> on_event;
    // Called on the loop thread for each event about a host's audit chain, after its batch was
    // committed ("audit.chain_started", "audit.chain_restarted", "audit.chain_gap",
    // "audit.chain_fork"), or after a 409 marked the chain broken ("audit.chain_edited"); already
    // in the database and on syslog. May be empty. Its failures
    // are logged and never refuse the batch.
    std::function<void(const store::Event& event)> on_audit_chain_event;
    // Called on the loop thread for each break-glass review item that just became overdue
    // (claimed by alert_overdue_reviews(): once per item across replicas), after its
    // "break_glass.review_overdue" event is in the database and on syslog at alert: main
    // enqueues the webhook notices. May be empty; its failures are logged.
    std::function<void(const store::BreakGlassReview& review)> on_break_glass_overdue;

    // Claims the open break-glass review items due by now whose alert was not raised yet
    // (store::Store::claim_overdue_break_glass_reviews), records and logs
    // "break_glass.review_overdue" for each at alert, and calls on_break_glass_overdue. Returns
    // how many. start() runs it every k_review_check_interval. Errors: the store's (Error(io)).
    std::size_t alert_overdue_reviews();
    static constexpr std::chrono::seconds k_review_check_interval{30};
    static constexpr std::size_t k_review_alert_batch = 100;
    // The server event of a closed review ("break_glass.reviewed"), for the store's close call.
    store::Event review_closed_event(const store::BreakGlassReview& review, const std::string& reviewer,
                                     const std::string& identity, const std::string& source_address,
                                     const std::string& note) const;
    // public_url + "/audit/reviews/" + host + "/" + event_id (both percent-encoded).
    std::string review_url(const std::string& host, const std::string& event_id) const;
    // Called after a request that needs the ticket check was filed: main starts the check and
    // records its answer (store::Store::set_ticket_check). May be empty.
    std::function<void(const std::string& host, const std::string& id, const std::string& ticket)>
        on_ticket_check_needed;

    std::int64_t now() const;
    const config::Config& config() const noexcept { return m_config; }
    store::Store& store() noexcept { return m_store; }

    // The page where approvers act on a request: public_url + "/r/" + host + "/" + id.
    std::string request_url(const std::string& host, const std::string& id) const;

    // §12: the answer to GET /v1/revocations for `hosts` after `after`: nullopt when there is
    // nothing new and `final` is false (keep waiting). A cursor ahead of the database (a
    // restore) is answered at once, read as if from 0.
    std::optional<std::string> revocations_answer(const std::vector<std::string>& hosts, std::int64_t after,
                                                  bool final);
    // §5.1's request status of `request` for its host: an approved request whose grant was
    // revoked is answered "cancelled" (revoked: true), without the grant (protocol::status_json).
    std::string status_body(const store::Request& request);

private:
    struct Waiter;
    void file(http::Request&& request, http::Reply&& reply);
    void poll(const std::string& id, http::Request&& request, http::Reply&& reply);
    void cancel(const std::string& id, http::Request&& request, http::Reply&& reply);
    void ingest_audit(http::Request&& request, http::Reply&& reply);
    // The store's part of an ingest, on the loop thread, after check_batch.
    void store_batch(const http::Request& request, http::Reply& reply, audit_ingest::BatchCheck&& check);
    // A batch's Jitgate-Spool-Seq that was not valid: "audit.spool_seq_ignored" to syslog.
    void spool_seq_ignored(const http::Request& request, const std::string& host, const std::string& problem,
                           std::int64_t t);
    // Logs a batch refused "busy" (CheckTurns: host_busy or full) to syslog, throttled.
    void refuse_busy(const http::Request& request, bool host_busy);
    // Answers a refused batch; records it (throttled) as "audit.batch_refused" when `alert`.
    void refuse_batch(const http::Request& request, http::Reply& reply, int status, const std::string& code,
                      const std::string& message, bool alert);
    void audit_state(http::Request&& request, http::Reply&& reply);
    // After a 409: marks the host's chain broken, records and raises "audit.chain_edited"
    // (throttled per host like the refusals). Never throws.
    void chain_edited(const http::Request& request, const std::string& host,
                      const std::vector<store::AuditEvent>& events, const std::string& event_id, std::int64_t t);
    // Syslog (alert for a break) and on_audit_chain_event for a recorded chain event.
    void chain_event_recorded(const store::Event& e);
    void wake(const std::string& host, const std::string& id);
    void forget(const std::pair<std::string, std::string>& key, const std::weak_ptr<Waiter>& waiter);
    // GET /v1/revocations?after=CURSOR&wait=N (§12): the revocations of grants issued to the
    // client certificate's hosts, parked like a request poll until there is one or `wait` ends.
    struct RevocationWaiter;
    void revocations(http::Request&& request, http::Reply&& reply);
    // Answers every parked revocation poll of `host` (every host: empty) that now has something.
    void wake_revocations(const std::string& host);
    // Each second: a revocation made elsewhere (the CLI on SQLite, a lost notification) wakes
    // the parked polls too.
    void check_revocations();
    void expire(const std::string& host, const std::string& id);
    void start_expiry();
    void start_purge();
    void start_review_alerts();
    void expire_due();
    // Whether this pending-cap refusal of `host` at `t` is recorded (the first of its minute).
    bool record_refusal(const std::string& host, std::int64_t t) { return record_refusal(m_refusals, host, t); }
    struct Refusals;
    // The same over `table`, for any key (the first refusal of each key's minute is recorded).
    static bool record_refusal(std::map<std::string, Refusals, std::less<>>& table, const std::string& key,
                               std::int64_t t);
    void take_wakeups();
    void notify(const std::string& type, const store::Request& request);
    // Automatic approval (docs/server.md, "Automatic approval"): whether the service may
    // approve `filed` by itself at `t`.
    struct AutoDecision {
        std::string condition; // "on_call", or empty with why_not set
        std::string why_not;
        std::vector<std::string> files; // the on-call files that said the requester is on call
        std::int64_t until = 0;         // the earliest end of the on-call entries that held
    };
    AutoDecision auto_condition(const protocol::Filed& filed, const PolicyDecision& policy, std::int64_t t) const;
    // Approves the pending `request` by itself under `condition`; false if it was no longer
    // pending (another replica decided it). Records request.auto_approved and grant.signed.
    bool approve_automatically(const store::Request& request, const AutoDecision& decision, std::int64_t t,
                               const http::Request& filing);
    // The grant of `done` (approved now, at `t`): its claims checked and signed, and its
    // grant.signed event in `signed_event`. `auto_condition` empty: the approvers of `done`.
    // `auto_until` (automatic only): the end of the on-call shift that held; the grant ends then.
    store::SignedGrant sign_grant(const store::Request& done, std::int64_t t, const std::string& auto_condition,
                                  std::int64_t auto_until, store::Event& signed_event);
    std::optional<store::Request> find_for(const http::ClientIdentity& client, const std::string& id);

    const config::Config& m_config;
    store::Store& m_store;
    const grant_token::SigningKey& m_signing_key;
    http::EventLoop& m_loop;
    Clock m_clock;
    std::map<std::pair<std::string, std::string>, std::vector<std::shared_ptr<Waiter>>> m_waiters;
    // Filings refused for the pending cap, per host: the first of each minute is recorded,
    // the others only counted and carried by the next recorded one ("suppressed"), so a host
    // refiling in a loop cannot grow the events table (jitgated records every one it was refused).
    struct Refusals {
        std::int64_t window_start = 0;
        std::int64_t suppressed = 0;
    };
    static constexpr std::int64_t k_refusal_window_s = 60; // one recorded per key and window
    std::map<std::string, Refusals, std::less<>> m_refusals;
    // Refused audit batches (403, 409, 422), per host and status, recorded the same way: a
    // host sending bad batches in a loop cannot grow the events table or flood syslog at alert.
    std::map<std::string, Refusals, std::less<>> m_batch_refusals;
    // Revocations refused (not in an approver group), per actor and request, the same way: one
    // "revocation.refused" a minute, the next carrying the count suppressed since.
    std::map<std::string, Refusals, std::less<>> m_revoke_refusals;
    // The times of the automatic approvals of the last minute, per host
    // (hosts.max_auto_approvals_per_minute): an automatic filing bypasses max_pending_per_host
    // (nothing stays pending), so a host filing in a loop is bounded here.
    std::map<std::string, std::deque<std::int64_t>, std::less<>> m_auto_recent;
    // Parked revocation polls by host name (a certificate naming several hosts: under each).
    std::map<std::string, std::vector<std::shared_ptr<RevocationWaiter>>, std::less<>> m_revocation_waiters;
    std::int64_t m_newest_revocation = -1; // the newest seq check_revocations() saw; -1: not yet
    http::Timer m_expiry_timer;
    http::Timer m_purge_timer;
    std::int64_t m_partitions_checked_at = 0; // Unix seconds; 0: not yet
    http::Timer m_review_timer;
    std::shared_ptr<void> m_wake_watch;
    // Which hosts' batches are queued or checked on the worker (loop thread).
    audit_ingest::CheckTurns m_check_turns{1, audit_ingest::k_max_body, k_owed_turn_s}; // offload_audit_checks sets it
    // Last: destroyed first, so its thread is joined before anything its work touches goes.
    std::unique_ptr<http::Worker> m_audit_worker; // set by offload_audit_checks()
};

} // namespace jitgate::server::service
