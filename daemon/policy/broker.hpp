// daemon/policy/broker.hpp — decisions: rules, the grant cache, waiting requests and approvals.
//
// The broker knows nothing of sockets. The server hands it a CheckSession and a Responder
// (its way to talk to the waiting client, session.hpp, whose contract keeps replies behind
// their durable audit records) and calls back when input arrives, when the client goes away,
// or when time passes (next_deadline/expire: waiting requests and open prompts). Requests
// waiting for approvers sit in a Requests registry and are decided through exactly one
// approval backend (approval/backend.hpp). Every step is audited before it takes effect; if the audit
// journal cannot be written the action is denied (fail closed).
// Not thread-safe: the daemon's single event loop owns it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/approval/backend.hpp"
#include "daemon/audit/auditor.hpp"
#include "daemon/audit/budget.hpp"
#include "daemon/audit/shipper.hpp"
#include "daemon/config/config.hpp"
#include "daemon/policy/grants.hpp"
#include "daemon/policy/identity.hpp"
#include "daemon/policy/live.hpp"
#include "daemon/policy/requests.hpp"
#include "daemon/policy/rules.hpp"
#include "daemon/policy/session.hpp"
#include "jitgate/messages.hpp"

namespace jitgate::broker {

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

// How long a person may take to type a reason or a ticket at a prompt.
inline constexpr std::chrono::seconds k_prompt_limit = std::chrono::minutes(5);

class Broker final : public approval::Outcomes {
public:
    // Starts with the local approval backend (approval::LocalBackend); set_backend() replaces it.
    Broker(std::shared_ptr<const config::Config> config, audit::Auditor& auditor);
    ~Broker() override;
    Broker(const Broker&) = delete;
    Broker& operator=(const Broker&) = delete;

    // The approval backend for requests filed from now on (setup::make_backend builds the one
    // the config names; it may hold this broker as its Outcomes). Throws Error(internal) if
    // `backend` is null: the broker always has exactly one.
    void set_backend(std::unique_ptr<approval::ApprovalBackend> backend);
    approval::ApprovalBackend& backend() noexcept { return *m_backend; }
    // The sender to the central store, for `status` (may stay null: no store configured).
    void set_shipper(const audit::Shipper* shipper) noexcept { m_shipper = shipper; }

    // Replaces the config; waiting requests keep the rule they matched. Throws Error, and
    // changes nothing, if the backend cannot take it (ApprovalBackend::reload).
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
    // expire() calls it for every prompt open longer than k_prompt_limit (then hang_up()).
    Step input_timed_out(CheckSession& session, Responder& responder, std::chrono::seconds limit);
    // The sudo audit plugin's report of how a command ended.
    void finished(const msg::FinishedReport& report, const identity::Peer& peer);
    // The PAM module's report of a login session opening or closing.
    void session(const msg::SessionReport& report, const identity::Peer& peer);

    // jitgatectl operations (admin.cpp). SECURITY NOTE: who may use pending and revoke at all
    // (root, or a member of any approver group) is checked by the server's handler table
    // (daemon/server/handlers.hpp) before these run; they check only what depends on the
    // request: approve and deny refuse (ok false, a message for the caller) anyone outside the
    // request's approver groups, approve also the requester and a second approval by the same
    // person. Views are escaped for terminals; list_grants shows a caller who is neither root
    // nor an approver only their own grants.
    std::vector<Json> pending(const Caller& caller) const;
    std::vector<Json> list_grants(const Caller& caller);
    OpResult approve(const Caller& caller, const std::string& request_id);
    OpResult deny(const Caller& caller, const std::string& request_id, const std::string& reason);
    OpResult revoke(const Caller& caller, const std::string& grant_id, const std::string& reason);
    // Live sessions and the requester's own view (live_ops.cpp, docs/sessions.md). Who may call
    // them at all is the handler table's (any local user); what each shows or does depends on
    // the caller: sessions() shows root and approvers every live session, others their own;
    // release() ends `grant_id` (empty: every live grant the caller asked for) only for its
    // requester (by the kernel's uid) or root, records grant.released and ends its sessions;
    // my_requests() shows the caller's own waiting requests and recent decisions.
    std::vector<Json> sessions(const Caller& caller);
    OpResult release(const Caller& caller, const std::string& grant_id);
    std::vector<Json> my_requests(const Caller& caller) const;
    // `jitgatectl extend`: files a new request for the same action as live grant `grant_id`,
    // which needs a new approval like any other (never a silent renewal); once approved, the
    // new grant takes over the old one's live sessions and their deadlines. Only the grant's
    // requester (by the kernel's uid). The request does not wait on this connection: the
    // requester follows it with `jitgatectl requests`.
    OpResult extend(const Caller& caller, const std::string& grant_id, const std::string& reason);
    // The live-session registry (tests; the broker feeds it from checks and reports).
    live::Registry& live_sessions() noexcept { return m_live; }
    // Whether `caller` is in the global approver groups or any rule's (by the kernel's uid's
    // groups, never a claim).
    bool is_approver_anywhere(const Caller& caller) const;
    Json status() const;

    // Earliest deadline (a waiting request's, or an open prompt's), for the event loop's
    // timer; nullopt if none.
    std::optional<Clock::time_point> next_deadline() const;
    // Times out every request and every open prompt whose deadline has passed: each is
    // recorded, then its waiting client told (Responder contract: held until durable).
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
    // The wall clock that rules' time windows and the on-call list are judged by (default
    // std::chrono::system_clock::now); tests set a fixed instant.
    using WallClock = std::function<std::chrono::system_clock::time_point()>;
    void set_wall_clock(WallClock clock) { m_wall_clock = std::move(clock); }

private:
    // A prompt waiting for the user's answer: the session is the connection's, valid until
    // give_input, input_timed_out or client_gone closes the prompt.
    struct OpenPrompt {
        Clock::time_point deadline;
        Responder* responder = nullptr;
    };

    // Asks the client of `session` for `field` and keeps the prompt's deadline.
    Step ask(CheckSession& session, Responder& responder, const char* field, const std::string& text);
    // Forgets the open prompt of `session` (none: nothing).
    void close_prompt(CheckSession& session);
    Step evaluate(CheckSession& session, Responder& responder);
    // A sub-command under sudo's intercept mode (request.intercepted): judged on the fast path
    // only, never filed, never prompted (intercept.cpp, docs/intercept.md).
    Step check_intercepted(CheckSession& session, Responder& responder);
    Step file_request(CheckSession& session, Responder& responder);
    // Automatic approval (auto_approve.cpp): the condition that held ("on_call",
    // "commands", "window", joined by '+'), or empty if the rule has none or one failed.
    std::string auto_approval(const CheckSession& session) const;
    // Grants `session` at once, recorded as access.auto_approved with `condition`.
    Step approve_automatically(CheckSession& session, Responder& responder, const std::string& condition);
    void conclude(Request& request, const msg::Decision& decision);
    // Turns an approved request into a grant (cached, audited) and allows its waiting client.
    // `expires_unix` caps the rule's TTL (a service grant's exp); `extra` joins the audit event.
    // Concludes (and frees) the request, allowed or denied (spool full; with a backend that
    // allows no local decisions also an audit failure) — except, when local approvers decide,
    // if the approval could not be recorded: then it returns false and the request keeps
    // waiting for a retry.
    OpResult grant(Request& request, const std::string& approved_by, std::int64_t expires_unix, const Json& extra);
    // Empty if the rule and window `session` was judged under still apply now (the rules matched
    // again at the wall clock); else why not, as told to the requester.
    std::string window_change(const CheckSession& session) const;
    // approval::Outcomes: what an asynchronous backend says about a waiting request.
    Request* waiting(const std::string& id) override;
    void tell(Request& request, const std::string& line) override;
    void approved(Request& request, std::vector<std::string> approvers, std::int64_t expires_unix,
                  const Json& extra) override;
    void denied(Request& request, const char* event_type, msg::Outcome outcome, const std::string& message,
                Json extra) override;
    bool revoked_at_service(const std::string& request_id, const std::string& service_grant_id,
                            const std::string& revoked_by, const std::string& reason, const Json& extra) override;
    std::vector<bool> revoked_at_service_batch(const std::vector<ServiceRevocation>& batch) override;
    // What revoke() and revoked_at_service() share once the grant left the cache: grant.revoked
    // (revoked_by as given, escaped; reason escaped here; `extra` joined), then its live sessions
    // ended with a line saying who revoked it (`where`: "" or " at the approval service") and
    // recorded. Returns how many sessions ended.
    std::size_t end_revoked_grant(const grants::Grant& grant, const std::string& revoked_by, const std::string& where,
                                  const std::string& reason, const Json& extra);
    // Records a live session for an allowed sudo check under a grant (live_ops.cpp).
    // Returns false only when the session must end with its grant (on_expiry: end) and cannot
    // be followed (the requester's k_max_sessions_per_requester, or the registry full).
    bool track(const CheckSession& session, const msg::Decision& decision);
    // Records a live login session opened under a login grant (the PAM module's report).
    bool track_login(const msg::SessionReport& report, const identity::Peer& peer);
    // Records each ending (session.ended_by_*, session.kept_after_expiry).
    void record_endings(const std::vector<live::Ended>& endings, const Json& extra);
    // Remembers how request `q` was decided, for my_requests() (bounded, k_decided_*).
    void remember_decision(const Request& q, const msg::Decision& decision);
    // Keeps what `grant_id` was granted for (extend()) and forgets what ended grants were.
    void remember_origin(const std::string& grant_id, const Request& q);
    // Non-empty (the user's message) when the spool is full and this action may not pass.
    std::string spool_full_refusal(bool break_glass) const;
    Json event_for(const char* type, const CheckSession& session) const;
    Step decide(CheckSession& session, Responder& responder, msg::Decision decision, Json event);
    std::string new_id(const char* prefix) const;
    // audit() and audit_refusal(): records `event`, counting it against its "uid"'s spool share
    // if `charge`.
    bool record(Json event, bool charge);

    std::shared_ptr<const config::Config> m_config;
    audit::Auditor& m_auditor;
    std::unique_ptr<approval::ApprovalBackend> m_backend; // never null
    const audit::Shipper* m_shipper = nullptr;
    grants::GrantCache m_grants;
    Requests m_requests;
    std::unordered_map<CheckSession*, OpenPrompt> m_prompts;
    std::set<std::pair<Clock::time_point, CheckSession*>> m_prompt_deadlines;
    // What local users can make the daemon record (audit_budget.hpp).
    audit::RefusalLimiter m_refusals{audit::k_refusals_per_window, audit::k_refusal_window};
    audit::RefusalLimiter m_share_denials{0, audit::k_refusal_window}; // counted only, summarised
    audit::SpoolShare m_share{audit::k_share_percent, audit::k_share_events_per_uid};
    live::Registry m_live;
    // What each live grant was granted for (the approved check), for extend(); pruned as grants end.
    std::unordered_map<std::string, CheckSession> m_grant_origin;
    // Recently decided requests, oldest first: bounded by count and age (live_ops.cpp).
    struct Decided {
        std::int64_t requester_uid = -1;
        std::int64_t decided_unix = 0;
        Json view;
    };
    std::deque<Decided> m_decided;
    std::uint64_t m_decisions = 0;
    std::uint64_t m_audit_failures = 0;
    std::int64_t m_started_unix = 0;
    WallClock m_wall_clock = [] { return std::chrono::system_clock::now(); };
};

} // namespace jitgate::broker
