// daemon/policy/broker.hpp — decisions: rules, the grant cache, waiting requests and approvals.
//
// The broker knows nothing of sockets. The server hands it a CheckSession and a Responder
// (its way to talk to the waiting client) and calls back when input arrives, when the client
// goes away, or when time passes. Every step is audited before it takes effect; if the audit
// journal cannot be written the action is denied (fail closed).
// Not thread-safe: the daemon's single event loop owns it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/approval/service_client.hpp"
#include "daemon/audit/auditor.hpp"
#include "daemon/audit/budget.hpp"
#include "daemon/config/config.hpp"
#include "lib/grant_token.hpp"
#include "daemon/policy/grants.hpp"
#include "daemon/policy/identity.hpp"
#include "jitgate/messages.hpp"
#include "daemon/policy/rules.hpp"
#include "daemon/audit/shipper.hpp"

namespace jitgate::broker {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// How the broker talks to the client of a check. Implemented by the server's connection.
class Responder {
public:
    virtual ~Responder() = default;
    // One line for the user; wait_s >= 0 tells the client how long it may now wait.
    virtual void notice(const std::string& text, std::int64_t wait_s) = 0;
    virtual void prompt(const std::string& field, const std::string& text, bool echo) = 0;
    virtual void decide(const msg::Decision& decision) = 0;
};

// The empty rule a session starts with (shared, never changed).
const std::shared_ptr<const config::Rule>& no_rule();

// A check in progress; owned by the connection for as long as the conversation lasts.
struct CheckSession {
    msg::CheckRequest request;
    identity::Peer peer;
    rules::Facts facts;
    // The rule it is judged by, never null: until a rule matched, an empty one (no name). It
    // holds the config it belongs to, so a reload does not change a request under way.
    std::shared_ptr<const config::Rule> rule = no_rule();
    std::string awaiting;      // the field being prompted for ("reason", "ticket"), or empty
    std::string request_id;    // set while waiting for approvers
    // Who asks, from the kernel (the server fills it before begin_check). Left empty (uid -1)
    // the requester is the request's user: how sudo checks are judged without a server.
    identity::Requester requester;
    // Derived by begin_check for sudo (binding.hpp); a command grant binds them.
    std::vector<std::string> bound_env; // the security-relevant part of run_envp, sorted
    std::string program;                // canonical path of the command
};

enum class Step { done, awaiting_input, waiting };

// An approver or admin talking to the daemon (jitgatectl); identity from the kernel.
struct Caller {
    identity::Peer peer;
    std::string name;
    std::vector<std::string> groups;
    std::int64_t login_uid = -1; // audit login uid of the caller's process; -1 unset or unknown
    std::string login_name;      // user name of login_uid, empty if unset
};

struct OpResult {
    bool ok = false;
    std::string message;
};

class Broker final : public service::Listener {
public:
    Broker(std::shared_ptr<const config::Config> config, audit::Auditor& auditor);

    // Backend "service": requests go to `client` and its grants are verified against `keys`.
    // Both outlive the broker (the server owns them). Without this call the backend is local.
    void set_service(service::ServiceClient* client, std::shared_ptr<const grant_token::KeyRing> keys);
    // The approval service's word about a request (pending notices, approved with a grant to
    // verify, denied, expired, cancelled, failed).
    void on_service_outcome(const std::string& request_id, const service::Outcome& outcome) override;
    // The sender to the central store, for `status` (may stay null: no store configured).
    void set_shipper(const audit::Shipper* shipper) noexcept { m_shipper = shipper; }

    // Replaces the config; waiting requests keep the rule they matched.
    void set_config(std::shared_ptr<const config::Config> config);
    const config::Config& config() const noexcept { return *m_config; }

    // A check from a peer the server has already authenticated (euid 0, user cross-checked).
    Step begin_check(CheckSession& session, Responder& responder);
    // The client's answer to a prompt.
    Step give_input(CheckSession& session, Responder& responder, const std::string& field, bool given,
                    const std::string& value);
    // The client of `session` went away (Ctrl-C, kill, crash): a waiting request is cancelled.
    void client_gone(CheckSession& session);
    // The user left the open prompt (reason, ticket) unanswered for too long: records
    // access.timeout, tells `responder` "timeout" and returns Step::done; a later client_gone
    // records nothing more. Does nothing and returns Step::done if no prompt is open.
    Step input_timed_out(CheckSession& session, Responder& responder, std::chrono::seconds limit);
    // The sudo audit plugin's report of how a command ended.
    void finished(const msg::FinishedReport& report, const identity::Peer& peer);
    // The PAM module's report of a login session opening or closing.
    void session(const msg::SessionReport& report, const identity::Peer& peer);

    // jitgatectl operations; authorisation by the caller's groups (from the kernel's uid).
    // Throws Error(denied) if the caller may not see them.
    std::vector<Json> pending(const Caller& caller) const;
    std::vector<Json> list_grants(const Caller& caller);
    OpResult approve(const Caller& caller, const std::string& request_id);
    OpResult deny(const Caller& caller, const std::string& request_id, const std::string& reason);
    OpResult revoke(const Caller& caller, const std::string& grant_id, const std::string& reason);
    Json status() const;

    // Earliest request deadline, for the event loop's timer; nullopt if none.
    std::optional<Clock::time_point> next_deadline() const;
    // Times out every request whose deadline has passed.
    void expire(Clock::time_point now);

    // Records an event; returns false (and reports on stderr) if the journal failed. An event
    // about a requester ("uid") counts against that uid's share of a nearly full spool.
    bool audit(Json event);
    // Records a refusal that a peer with `peer_uid` caused (refused approver operation, protocol
    // error, a check it may not ask for). SECURITY NOTE: root's are always recorded; a non-root
    // uid's only k_refusals_per_window a window, the rest are counted and recorded as one
    // summary by report_suppressed(), so a local user cannot flood the spool. Returns false
    // only if the record failed.
    bool audit_refusal(uid_t peer_uid, Json event);
    // Records one summary per uid for refusals and share denials counted in windows that have
    // ended (`final`: every count, at shutdown). Call about once a second.
    void report_suppressed(Clock::time_point now, bool final = false);
    std::size_t pending_count() const noexcept { return m_requests.size(); }

private:
    struct Request {
        std::string id;
        CheckSession session;              // copy of the facts for listing and auditing
        Responder* responder = nullptr;    // null once the client has gone or was told "filed"
        CheckSession* live = nullptr;      // the connection's session while it waits
        std::vector<std::string> approvers;
        // One entry per approval: the approver's person (login uid if set, else uid), so that
        // "N approvals" means N people, whichever accounts they approved from.
        std::vector<std::int64_t> approver_uids;
        int approvals_needed = 1;
        std::vector<std::string> approver_groups;
        std::int64_t created_unix = 0;
        Clock::time_point deadline;
        std::string nonce;      // service backend: the grant must carry it back
        std::string cmd_sha256; // service backend, scope command: the grant must match it
    };

    Step evaluate(CheckSession& session, Responder& responder);
    Step file_request(CheckSession& session, Responder& responder);
    void conclude(Request& request, const msg::Decision& decision);
    // Turns an approved request into a grant (cached, audited) and allows its waiting client.
    // `expires_unix` caps the rule's TTL (a service grant's exp); `extra` joins the audit event.
    // Concludes (and frees) the request, allowed or denied (spool full; with the service
    // backend also an audit failure) — except with the local backend when the approval could
    // not be recorded: then it returns false and the request keeps waiting for a retry.
    OpResult grant(Request& request, const std::string& approved_by, std::int64_t expires_unix, const Json& extra);
    // Denies a request for a reason of the service backend (denied, expired, failed, bad grant).
    void service_deny(Request& request, const char* event_type, const std::string& outcome,
                      const std::string& message, Json extra);
    Json service_body(const Request& request) const;
    // Non-empty (the user's message) when the spool is full and this action may not pass.
    std::string spool_full_refusal(bool break_glass) const;
    // Files a request in m_requests, m_deadlines and m_pending_by_uid; remove() takes it out
    // of all three.
    void add(Request request);
    void remove(const std::string& id);
    Json event_for(const char* type, const CheckSession& session) const;
    Step decide(CheckSession& session, Responder& responder, msg::Decision decision, Json event);
    bool is_approver_anywhere(const Caller& caller) const;
    std::string new_id(const char* prefix) const;
    // audit() and audit_refusal(): records `event`, counting it against its "uid"'s spool share
    // if `charge`.
    bool record(Json event, bool charge);

    std::shared_ptr<const config::Config> m_config;
    audit::Auditor& m_auditor;
    service::ServiceClient* m_service = nullptr;
    const audit::Shipper* m_shipper = nullptr;
    std::shared_ptr<const grant_token::KeyRing> m_keys;
    std::uint64_t m_grants_rejected = 0;
    grants::GrantCache m_grants;
    std::unordered_map<std::string, Request> m_requests;
    std::set<std::pair<Clock::time_point, std::string>> m_deadlines;
    // Waiting requests per requesting uid: the per-user cap is checked without walking them all.
    std::unordered_map<std::int64_t, std::size_t> m_pending_by_uid;
    // What local users can make the daemon record (audit_budget.hpp).
    audit::RefusalLimiter m_refusals{audit::k_refusals_per_window, audit::k_refusal_window};
    audit::RefusalLimiter m_share_denials{0, audit::k_refusal_window}; // counted only, summarised
    audit::SpoolShare m_share{audit::k_share_percent, audit::k_share_events_per_uid};
    std::uint64_t m_decisions = 0;
    std::uint64_t m_audit_failures = 0;
    std::int64_t m_started_unix = 0;
};

// Lists as shown to people: "a, b and c".
std::string join_names(const std::vector<std::string>& names);

} // namespace jitgate::broker
