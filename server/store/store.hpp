// server/store/store.hpp — jitgate-server's database: SQLite (one node, the default) or
// PostgreSQL (replicas behind a load balancer). Everything the server remembers is here, so a
// replica holds no state another replica needs: requests and their approvals, the server's own
// audit events, the hosts' audit events (the fleet's audit store, docs/audit.md §5) with each
// host's chain state, web sign-in sessions, pending OpenID Connect logins and the webhook outbox.
//
// Every call is synchronous and durable on return (SQLite: WAL, synchronous=FULL; PostgreSQL:
// a committed transaction). Every state change that must not happen twice (approve, finish) is
// one transaction with a condition on the current state, so two replicas racing on the same
// request cannot approve it twice or approve a denied one.
//
// Threading: a Store is one database connection; use it from one thread at a time. Each thread
// that needs the database (the loop thread, the notifier) opens its own.
// Errors: throws Error(io) with the database's message when the database fails or is
// unreachable, Error(bad_input) for a schema newer or older than this program knows, and
// Error(bad_input) for a text value holding NUL or invalid UTF-8 (PostgreSQL cannot store
// either; SQLite refuses them the same way). Never returns half-applied changes. PostgreSQL: a
// call that finds its connection broken, or loses it before COMMIT, reconnects once and runs
// again (so a Signer may be called a second time; the first grant was never stored); a second
// failure, or one during COMMIT (outcome unknown), is an Error(io).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jitgate::server::store {

// The schema version this program reads and writes. `jitgate-server migrate` brings a
// database to it; open_* refuses any other version with a message that says what to run.
inline constexpr int k_schema_version = 7;

enum class Status { pending, approved, denied, expired, cancelled };
std::string_view to_string(Status status) noexcept;
std::optional<Status> status_from_string(std::string_view text) noexcept;

// One person's approval of one request.
struct Approval {
    std::string approver;       // the approver's Unix user name, as it goes into the grant's `approvers`
    std::string identity;       // who signed in: the IdP's issuer and subject ("https://idp/ sub"), or the CLI identity
    std::string comment;        // free text from the approver (hostile: escape when shown)
    std::string source_address; // where the approver acted from
    std::string via;            // "web", "cli"
    std::int64_t at = 0;        // Unix seconds; approve() stores `now` when 0
};

// One request, as filed by a host (docs/protocol.md §4) and as the server decided it.
struct Request {
    std::string host;            // the host the client certificate identified (never the body's word alone)
    std::string id;              // the host's request id
    std::string body;            // the POST body as a canonical JSON text (nlohmann dump of the parsed value)
    std::string requester;       // requester.user, copied out of the body for queries
    std::string requester_login; // requester.login_user, or empty
    std::string rule;            // the host's rule name
    Status status = Status::pending;
    int approvals_needed = 1;                 // effective: the host's, raised (never lowered) by server policy
    std::vector<std::string> approver_groups; // the server's groups that may approve, after policy
    std::int64_t created_at = 0;
    std::int64_t expires_at = 0;
    std::int64_t decided_at = 0;     // 0 while pending
    std::string grant;               // approved: the JWS
    std::string grant_id;            // approved: its jti
    std::string decided_by;          // denied: the approver (Unix name); cancelled: "host"; expired: "server";
                                     // approved automatically: "jitgate (auto: <condition>)"
    std::string decision_reason;     // denied: the comment; cancelled: the host's reason
    std::string ticket_check;        // the ticket check's recorded answer as JSON text, empty if none
    std::vector<Approval> approvals; // oldest first
};

struct CreateResult {
    bool created = false; // false: (host, id) existed and `request` is the stored one, or over_limit
    Request request;
    // The host already held `max_pending` pending requests: nothing was stored, `request` is
    // empty and `pending` says how many it holds.
    bool over_limit = false;
    std::size_t pending = 0;
};

enum class ApproveOutcome {
    added,            // the approval was recorded; more are needed
    approved,         // the approval was recorded and completed the request: grant stored, status approved
    not_pending,      // the request is final (or expired at `now`): nothing changed
    already_approved, // this approver (by Unix name) already approved it: nothing changed
};

struct ApproveResult {
    ApproveOutcome outcome = ApproveOutcome::not_pending;
    Request request; // as stored after the call
};

// One entry of the server's own audit trail (also sent to syslog by the caller).
struct Event {
    std::int64_t at = 0;
    std::string type; // e.g. "request.filed", "request.approved", "signin.succeeded", "grant.signed"
    std::string host; // empty when not about a request
    std::string request_id;
    std::string actor;    // a Unix name, "host:<name>" or "server"
    std::string identity; // the IdP identity, if any
    std::string source_address;
    std::string detail; // a JSON object as text; stored as "{}" when empty
};

// The grant a store asks its caller to sign when an approval completes a request.
struct SignedGrant {
    std::string token; // the compact JWS
    std::string id;    // its jti
    // The grant's audit event ("grant.signed"), recorded in the transaction that stores the
    // grant, so a signed grant never exists without it (nor the event without the grant).
    // Not recorded when its type is empty.
    Event event;
};
using Signer = std::function<SignedGrant(const Request& completed)>;

// The revocation of an approved request's grant (docs/protocol.md §12): who ended it, when
// and why. `seq` is the store's cursor for the hosts' long poll: it grows with each revocation
// in commit order, across replicas.
struct Revocation {
    std::int64_t seq = 0;
    std::string host;
    std::string request_id;
    std::string grant_id;       // the grant's jti
    std::string revoked_by;     // a Unix name (web), or "admin:<name>" (CLI)
    std::string identity;       // the IdP identity, if any
    std::string source_address; // where it was done from
    std::string via;            // "web", "cli"
    std::string reason;         // free text (hostile: escape when shown)
    std::int64_t revoked_at = 0;
};

enum class RevokeOutcome {
    revoked,         // stored now, with its event
    already_revoked, // revoked before (by anyone): nothing changed, `revocation` is the stored one
    not_found,       // no such request: nothing changed
    not_approved,    // the request has no grant (pending, denied, expired, cancelled): nothing changed
};

struct RevokeResult {
    RevokeOutcome outcome = RevokeOutcome::not_found;
    Request request;       // as stored (empty when not_found)
    Revocation revocation; // revoked, already_revoked: as stored
};

// A signed-in approver's web session. The browser holds a random token; only its SHA-256 is stored.
struct Session {
    std::string token_sha256;
    std::string identity;  // issuer + subject
    std::string unix_user; // the mapped Unix name
    std::string display_name;
    std::vector<std::string> groups; // approver groups after the claim mapping
    std::string csrf_token;
    std::int64_t created_at = 0;
    std::int64_t expires_at = 0;
};

// An OpenID Connect sign-in in progress (between the redirect to the IdP and the callback).
struct LoginState {
    std::string state;         // the `state` parameter (random)
    std::string nonce;         // the ID token's expected nonce
    std::string code_verifier; // PKCE
    std::string return_to;     // a local path to go back to
    std::int64_t expires_at = 0;
};

// A notice waiting to be delivered (webhook outbox).
struct Notice {
    std::int64_t id = 0;
    std::string target; // the configured webhook's name
    std::string body;   // what to send
    int attempts = 0;   // deliveries started, counted at claim time (this one included),
                        // so a notice that kills its notifier still runs out of attempts
    std::int64_t next_attempt_at = 0;
    std::string last_error;
};

// One event of a host's batch (docs/audit.md §5), already checked by the caller: the line is
// exactly the canonical form of the event and its hash matches (lib/audit_chain check_line).
struct AuditEvent {
    std::string event_id;
    std::int64_t seq = 0; // 1 .. INT64_MAX (both databases hold a signed 64-bit integer)
    std::string hash;
    std::string prev_hash;
    std::string time;       // the event's RFC 3339 time, as sent
    std::string type;       // e.g. "access.requested"
    std::string request_id; // the event's request_id, or empty
    std::string line;       // the line exactly as sent, without its '\n'
    std::string user;       // the event's `user`, or empty (column user_name, for search)
};

// What the store knows of one host's chain: the last event it acknowledged in chain order (the
// newest event that was new when it arrived) and the first problem ever seen.
struct AuditChain {
    std::string host;
    std::int64_t last_seq = 0; // 0: no event yet
    std::string last_hash;     // of the event with last_seq
    std::string last_event_id; // of the event with last_seq
    bool broken = false;       // a gap or a fork was seen (never cleared by the store)
    std::string problem;       // the first problem, one line; empty while not broken
    std::int64_t problem_seq = 0;
    std::int64_t problem_at = 0; // Unix seconds
    std::int64_t last_seen = 0;  // Unix seconds of the last batch stored
    std::int64_t events = 0;     // events stored for the host (duplicates not counted)
    // New chains at seq 1 after events ("audit.chain_restarted": a wiped spool or a reinstalled
    // host), and the last one: when, and the last seq and hash of the chain it ended.
    std::int64_t restarts = 0;
    std::int64_t restart_at = 0; // Unix seconds; 0: never
    std::int64_t restart_previous_seq = 0;
    std::string restart_previous_hash;
    // Shipping backlog: the host's own newest seq as its shipper last reported it with a batch
    // (0: never reported, or not by the last batch: IngestOptions::reported_seq), and when it
    // last did. The backlog is reported_seq - last_seq while positive (shipping_backlog below).
    std::int64_t reported_seq = 0;
    std::int64_t reported_at = 0; // Unix seconds
    // Retention: the chain's events up to this seq were pruned (the last event pruned, in
    // arrival order, of the host's last pruned month). `jitgate-server audit prune` deletes a
    // month only after its archive directory passed verify_archives() and its MANIFEST.json's
    // SHA-256 equalled both the export's record (audit_archives) and the manifest the store's
    // events gave at the prune (report::prune_before); the archive is not kept or re-checked by
    // the store afterwards. The first stored event's prev_hash must equal pruned_through_hash.
    // 0 / '': nothing pruned.
    std::int64_t pruned_through_seq = 0;
    std::string pruned_through_hash;
};

// The host's shipping backlog (docs/audit.md §5 "Jitgate-Spool-Seq"): how many of its events
// its shipper had not yet had stored when it sent the last batch, reported_seq - last_seq (0
// when negative). nullopt when unknown (reported_seq 0: the last batch did not report it, a
// jitgated that does not send it or a value ignored as invalid): never shown as 0.
inline std::optional<std::int64_t> shipping_backlog(const AuditChain& chain) noexcept {
    if (chain.reported_seq <= 0) return std::nullopt;
    return chain.reported_seq > chain.last_seq ? chain.reported_seq - chain.last_seq : 0;
}

struct IngestResult {
    // false: an event_id of the batch is stored with other bytes (`conflict_event_id`): nothing
    // of the batch was stored, and the state is unchanged.
    bool stored = false;
    std::string conflict_event_id;
    std::size_t added = 0;      // events new to the store
    std::size_t duplicates = 0; // events it held already, byte for byte (or held and pruned: provably_pruned)
    // The server's own events recorded in the batch's transaction ("audit.chain_started",
    // "audit.chain_restarted", "audit.chain_gap", "audit.chain_fork"), for the caller's syslog
    // and webhooks.
    std::vector<Event> chain_events;
    AuditChain chain; // after the batch
    // New `access.break_glass` events of the batch, each of which opened a review item in the
    // batch's transaction (a duplicate opens none).
    std::size_t reviews_opened = 0;
};

// How ingest() treats what it stores. Defaults are the server's config defaults.
struct IngestOptions {
    // A new `access.break_glass` event opens a review item due at received time + this
    // (audit.break_glass_review_within). Must be > 0 (Error(bad_input) otherwise).
    std::int64_t break_glass_review_within_s = 24 * 3600;
    // The host's newest seq as its shipper reported it with this batch (the Jitgate-Spool-Seq
    // header, checked by the caller): stored in the batch's transaction as the chain's
    // reported_seq, with reported_at = now. 0: not reported: reported_seq becomes 0 (the backlog
    // is unknown: an earlier batch's figure would be stale), reported_at stays (when a batch last
    // reported). Negative: Error(bad_input).
    std::int64_t reported_seq = 0;
};

// --- break-glass reviews (docs/server.md "Break-glass review") ---
// One per stored `access.break_glass` event: opened by ingest(), closed once by a reviewer with
// a note. Every text member but `status` comes from a host or a reviewer: hostile.
struct BreakGlassReview {
    std::string host;
    std::string event_id;
    std::string user_name; // the event's `user` (who broke the glass)
    std::string time;      // the event's RFC 3339 time, as the host sent it
    std::int64_t opened_at = 0;
    std::int64_t due_at = 0;
    bool closed = false;
    std::string reviewer;          // closed: the reviewer's Unix name
    std::string reviewer_identity; // closed: the reviewer's IdP identity
    std::string note;              // closed: the reviewer's note
    std::int64_t closed_at = 0;
    std::int64_t overdue_alerted_at = 0; // 0: no overdue alert raised yet
};

enum class ReviewList {
    open,   // open items, the first due first: (due_at, host, event_id) ascending
    closed, // closed items, the last closed first: closed_at descending, then (host, event_id)
};

// Where a page of reviews starts: after this item in the list's order. `at` is due_at for
// ReviewList::open and closed_at for ReviewList::closed.
struct ReviewKey {
    std::int64_t at = 0;
    std::string host;
    std::string event_id;
};

enum class CloseOutcome {
    closed,         // the item was open and is now closed; the event was recorded
    not_found,      // no such item: nothing changed
    already_closed, // closed before (by this or another reviewer): nothing changed
    own_use,        // the reviewer is the event's user or login_user: refused, nothing changed
};

struct CloseResult {
    CloseOutcome outcome = CloseOutcome::not_found;
    BreakGlassReview review; // as stored after the call (empty when not_found)
};

// A search of the hosts' stored events (the auditor's page). Empty members do not filter.
// `from` and `to` compare with the event's RFC 3339 UTC time as text (from inclusive, to
// exclusive): "2026-11-24" and "2026-11-24T03:05:47.818Z" are both fine bounds.
struct AuditSearch {
    std::string host;
    std::string user;
    std::string type;
    std::string from;
    std::string to;
    bool oldest_first = false;         // false: newest stored first
    std::optional<std::int64_t> after; // keyset: continue after this row (StoredAuditEvent::row)
    std::size_t limit = 100;
};

struct StoredAuditEvent {
    std::int64_t row = 0; // the store's row id: arrival order, the search's paging key
    std::string host;
    std::int64_t received_at = 0;
    AuditEvent event;
};

// One host of the audit store as the auditors' overview shows it.
struct AuditHostStatus {
    AuditChain chain;
    std::string last_event_time;   // the `time` of the chain's last event, as the host sent it
    std::int64_t open_reviews = 0; // open break-glass review items of the host
};

// --- reading for auditors (the evidence report, server/report/) ---
// A server event with its row id.
struct StoredEvent {
    std::int64_t id = 0;
    Event event;
};

// --- retention (docs/server.md "Retention and archives") ---
// The record of one month's archive export (`jitgate-server audit export`): the hosts' events
// with received_from <= received_at < received_to (server clock, UTC calendar month), how many,
// of how many hosts, and the SHA-256 of the archive's MANIFEST.json, which names every file's
// SHA-256. A prune requires it and re-computes the manifest from the store before deleting.
struct AuditArchive {
    std::string month; // "YYYY-MM"
    std::int64_t received_from = 0;
    std::int64_t received_to = 0;
    std::int64_t events = 0;
    std::int64_t hosts = 0;
    std::string manifest_sha256;
    std::int64_t exported_at = 0;
    std::string exported_by;    // who ran the export (a Unix name)
    std::int64_t pruned_at = 0; // 0: the month's events are still stored
};

// A calendar month in UTC: its name "YYYY-MM" and its Unix-seconds bounds [from, to).
struct Month {
    std::string name;
    std::int64_t from = 0;
    std::int64_t to = 0;
};
// "YYYY-MM" with a year 1970..9999 and a month 01..12, exactly; nullopt otherwise. Pure.
std::optional<Month> parse_month(std::string_view text);
// The month holding Unix time `t` (t >= 0; earlier times give January 1970). Pure.
Month month_of(std::int64_t t);
// The month after `m`. Pure.
Month next_month(const Month& m);

struct PruneResult {
    std::int64_t events = 0; // events deleted
    std::int64_t hosts = 0;  // chains whose anchor (pruned_through_seq/hash) moved
};

// SECURITY NOTE: whether `reviewer` (a Unix name) is the person who broke the glass in the
// stored event `line` of a review item whose user is `user_name`: the event's `user`, its
// `login_user` (the session's login, e.g. bob under `sudo -u`) or its `requester` (who asked,
// e.g. bob running `su root`, whose user is root). Nobody reviews their own use through any of
// these names. Used by both stores' close_break_glass_review() and the review page.
bool own_break_glass_use(const std::string& reviewer, const std::string& user_name, const std::string& line);

class Store {
public:
    virtual ~Store() = default;

    // --- requests (docs/protocol.md) ---
    // Inserts `request` unless (host, id) exists; returns the stored request either way. The
    // caller compares bodies for the 200/409 answer. Records `filed` in the same transaction.
    // With max_pending > 0, a new request is refused (over_limit, nothing stored) when its host
    // already holds that many requests that are pending and not expired at request.created_at;
    // an existing (host, id) is returned as above whatever the count (a retry is not new). The
    // count and the insert are one transaction, serialised per host across replicas, so the
    // limit holds exactly. Error(bad_input) unless `request` is new: pending, decided_at 0, no
    // grant, no approvals, approvals_needed >= 1, host and id not empty.
    virtual CreateResult create(const Request& request, const Event& filed, std::size_t max_pending = 0) = 0;
    virtual std::optional<Request> find(std::string_view host, std::string_view id) = 0;
    virtual std::vector<Request> pending(std::size_t limit) = 0; // oldest first
    // The pending requests after `after` in the same order (created_at, host, id): keyset
    // paging, so a page costs the same however many requests come before it.
    struct PendingKey {
        std::int64_t created_at = 0;
        std::string host;
        std::string id;
    };
    virtual std::vector<Request> pending_after(const PendingKey& after, std::size_t limit) = 0;
    // The pending requests created at `created_at` or later, in the same order, skipping the
    // first `skip` of them (those of the second `created_at` already seen): a place in the list
    // that names no request (the web UI's "next page" link). Costs `skip` more rows.
    virtual std::vector<Request> pending_from(std::int64_t created_at, std::size_t skip, std::size_t limit) = 0;
    virtual std::vector<Request>
    history(std::int64_t before,
            std::size_t limit) = 0; // final ones decided strictly before `before`, newest decision first
    // Records `approval` if the request is pending and not expired at `now`, and this approver
    // has not approved it. If the approvals then reach approvals_needed, calls `sign` inside the
    // transaction and stores the grant with status approved. `event` is recorded in the same
    // transaction when something changed, then the grant's own event (SignedGrant::event). `sign` sees the request as
    // it will be stored: every approval (this one last), status approved, decided_at = now, grant empty. If `sign`
    // throws, nothing is stored (not even the approval) and the exception propagates; an empty
    // token or id is Error(internal). An unknown (host, id) is not_pending with an empty request.
    virtual ApproveResult approve(std::string_view host, std::string_view id, const Approval& approval,
                                  std::int64_t now, const Signer& sign, const Event& event) = 0;
    // The service's own approval (docs/server.md, "Automatic approval"): if the request is
    // pending and not expired at `now`, calls `sign` inside the transaction (it sees the request
    // with status approved, decided_at = now, decided_by = `decided_by`, no approvals), stores
    // the grant with status approved and `decided_by`, and records `event`, then the grant's
    // event, in that transaction. No approval row: nobody approved. Outcome approved, or
    // not_pending (nothing changed). `sign` throwing or returning an empty grant as in approve().
    virtual ApproveResult approve_automatically(std::string_view host, std::string_view id,
                                                const std::string& decided_by, std::int64_t now, const Signer& sign,
                                                const Event& event) = 0;
    // Moves a pending request to `to` (denied, expired or cancelled) with who and why. Returns
    // the request after the change, or nullopt if it was not pending or is unknown (nothing
    // changed). Error(bad_input) if `to` is pending or approved.
    virtual std::optional<Request> finish(std::string_view host, std::string_view id, Status to,
                                          const std::string& decided_by, const std::string& reason, std::int64_t now,
                                          const Event& event) = 0;
    // Pending requests whose expires_at <= now, as (host, id).
    virtual std::vector<std::pair<std::string, std::string>> due(std::int64_t now, std::size_t limit) = 0;
    virtual void set_ticket_check(std::string_view host, std::string_view id,
                                  const std::string& answer_json) = 0; // unknown: no-op
    // Deletes web sessions and sign-ins that expired before `expired_before`, and delivered
    // notices last due before `delivered_before`; returns how many of each went. Requests,
    // their approvals and the server's events are never deleted here: they are the approval
    // record auditors need (their retention is a decision of its own), and dropped notices stay
    // as evidence. Safe to call from several replicas at once: on PostgreSQL a call that finds
    // another replica purging (a transaction advisory lock) returns zeros at once.
    struct Purged {
        std::size_t sessions = 0;
        std::size_t logins = 0;
        std::size_t notices = 0;
    };
    virtual Purged purge(std::int64_t expired_before, std::int64_t delivered_before) = 0;

    // --- grant revocations (docs/protocol.md §12) ---
    // Revokes the grant of approved request (host, id): stores `revocation` (its seq, host,
    // request_id and grant_id are the store's) and records `event` in the same transaction,
    // and wakes other replicas' polls of the host (as for a change of the request). Idempotent:
    // a request revoked before is already_revoked with the first revocation, nothing recorded.
    // Error(bad_input) for an empty revoked_by.
    virtual RevokeResult revoke_grant(std::string_view host, std::string_view id, const Revocation& revocation,
                                      const Event& event) = 0;
    virtual std::optional<Revocation> find_revocation(std::string_view host, std::string_view id) = 0;
    // The hosts holding a request with this id (ids are the hosts' own: unique in practice,
    // not by rule), at most `limit`, by name.
    virtual std::vector<std::string> hosts_of_request(std::string_view id, std::size_t limit) = 0;
    // The revocations of grants issued to any of `hosts` with after < seq <= upto and
    // revoked_at >= since, in seq order, at most `limit`. The caller reads `upto` first with
    // last_revocation_seq(): every seq up to it is committed, so nothing is skipped.
    virtual std::vector<Revocation> revocations_after(const std::vector<std::string>& hosts, std::int64_t after,
                                                      std::int64_t upto, std::int64_t since, std::size_t limit) = 0;
    // The largest seq of a revocation of any of `hosts` (empty: of any host); 0 when none.
    // Every revocation with a smaller seq is committed (seq is drawn in commit order).
    virtual std::int64_t last_revocation_seq(const std::vector<std::string>& hosts) = 0;
    // The hosts with a revocation whose seq > after, at most `limit`, by name: whose parked
    // polls a new revocation may answer.
    virtual std::vector<std::string> hosts_revoked_after(std::int64_t after, std::size_t limit) = 0;

    // --- the server's own audit ---
    virtual void record(const Event& event) = 0;
    virtual std::vector<Event> events(std::string_view host, std::string_view request_id) = 0;

    // --- the hosts' audit events (docs/audit.md §5) ---
    // Stores one batch of `host`'s events in one transaction, deduplicated by (host, event_id):
    // an event_id stored already must come with the same line (a duplicate, counted and
    // skipped), else nothing is stored (stored = false). Each new event is checked against the
    // host's chain in batch order: it must follow the last acknowledged (seq, hash); seq 1 with
    // the genesis prev_hash starts a new chain ("audit.chain_restarted", or "audit.chain_started"
    // for a host's first event); a host's first event at another seq starts the record there
    // ("audit.chain_started"); a jump in seq is a gap ("audit.chain_gap") and a seq that does not
    // follow by its prev_hash, or comes again with a new event_id, is a fork
    // ("audit.chain_fork"). SECURITY NOTE: a broken chain never refuses events (they are the
    // evidence): they are stored, the chain is marked broken with its first problem, the
    // server's event is recorded in the same transaction, and the chain then follows the new
    // event (each later problem is reported again, each once). Concurrent batches of one host
    // (replicas) are serialised. `events` must be non-empty; host not empty.
    // Every new `access.break_glass` event opens a review item (BreakGlassReview) in the same
    // transaction, due at now + options.break_glass_review_within_s; a duplicate opens none.
    virtual IngestResult ingest(const std::string& host, const std::vector<AuditEvent>& events, std::int64_t now,
                                const IngestOptions& options = {}) = 0;
    // Marks `host`'s chain broken with `problem` at `seq` unless it is broken already (only the
    // first problem is kept), and records `event` in the same transaction either way. For a
    // problem seen outside a stored batch: an event_id sent again with other content (the 409 of
    // docs/audit.md §5), whose batch's transaction stored nothing. Serialised with ingest() per
    // host. Returns the chain after it; nullopt for a host without a stored event (nothing
    // marked; `event` still recorded). host and problem not empty (Error bad_input).
    virtual std::optional<AuditChain> mark_chain_broken(const std::string& host, const std::string& problem,
                                                        std::int64_t seq, std::int64_t now, const Event& event) = 0;
    // The host's chain state; nullopt before its first event.
    virtual std::optional<AuditChain> audit_chain(std::string_view host) = 0;
    // The host's stored events with seq in [from_seq, to_seq], in arrival order (for tests,
    // exports and verification).
    virtual std::vector<AuditEvent> audit_events(std::string_view host, std::int64_t from_seq, std::int64_t to_seq,
                                                 std::size_t limit) = 0;

    // --- break-glass reviews ---
    // A page of review items in `which` order, after `after` (keyset paging; nullopt: from the
    // start), at most `limit`.
    virtual std::vector<BreakGlassReview> break_glass_reviews(ReviewList which, const std::optional<ReviewKey>& after,
                                                              std::size_t limit) = 0;
    virtual std::optional<BreakGlassReview> find_break_glass_review(std::string_view host,
                                                                    std::string_view event_id) = 0;
    // Closes the item if it is open, in one transaction with `event` (the caller's
    // "break_glass.reviewed"), with reviewer, identity, note and closed_at = now.
    // SECURITY NOTE: refused (own_use) when `reviewer` is the event's user or the `login_user`
    // of its stored line: nobody closes the review of their own break-glass use, whatever the
    // caller checked. Two reviewers racing: one closes, the other gets already_closed.
    // Error(bad_input) for an empty reviewer or note.
    virtual CloseResult close_break_glass_review(std::string_view host, std::string_view event_id,
                                                 const std::string& reviewer, const std::string& reviewer_identity,
                                                 const std::string& note, std::int64_t now, const Event& event) = 0;
    // Claims up to `limit` open items due at or before `now` whose overdue alert was not
    // raised yet: sets overdue_alerted_at = now and records audit(item) for each in the same
    // transaction, so each item is claimed once across replicas (a second caller does not see
    // it). Returns the claimed items (overdue_alerted_at = now), the first due first. A throw
    // from `audit` claims nothing.
    using OverdueAudit = std::function<Event(const BreakGlassReview&)>;
    virtual std::vector<BreakGlassReview> claim_overdue_break_glass_reviews(std::int64_t now, std::size_t limit,
                                                                            const OverdueAudit& audit) = 0;
    // The hosts of the audit store with their chain state and open review count, by host name,
    // after `after_host` (keyset; empty: from the first), at most `limit`.
    virtual std::vector<AuditHostStatus> audit_hosts(std::string_view after_host, std::size_t limit) = 0;
    // One stored event of a host by its event_id; nullopt when unknown.
    virtual std::optional<StoredAuditEvent> find_audit_event(std::string_view host, std::string_view event_id) = 0;
    // The hosts' stored events matching `search`, in arrival order (newest first unless
    // oldest_first), after search.after, at most search.limit.
    virtual std::vector<StoredAuditEvent> search_audit_events(const AuditSearch& search) = 0;
    // --- reading for auditors ---
    // Read-only, one statement per call: a report over millions of rows pages through them
    // (keyset paging: pass the key of the last row of the previous page; a page costs the same
    // wherever it starts) and holds no transaction open between pages.
    //
    // Host events with from_time <= time < to_time, in (time, id) order, after the row
    // (after_time, after_id) (start with "" and 0). Times compare as text: hosts write RFC 3339
    // in UTC with milliseconds (docs/audit.md §2), so text order is time order.
    virtual std::vector<StoredAuditEvent> audit_events_in_period(const std::string& from_time,
                                                                 const std::string& to_time,
                                                                 const std::string& after_time, std::int64_t after_id,
                                                                 std::size_t limit) = 0;
    // One host's events with seq <= to_seq, in (seq, id) order, after (after_seq, after_id): the
    // chain as the host numbered it, duplicates of a seq (a fork) one after the other.
    virtual std::vector<StoredAuditEvent> audit_events_by_seq(std::string_view host, std::int64_t after_seq,
                                                              std::int64_t after_id, std::int64_t to_seq,
                                                              std::size_t limit) = 0;
    // The server's own events with from <= at < to, in (at, id) order, after (after_at, after_id).
    virtual std::vector<StoredEvent> events_in_period(std::int64_t from, std::int64_t to, std::int64_t after_at,
                                                      std::int64_t after_id, std::size_t limit) = 0;
    // Every host's chain state with at least one event, by host name, after `after_host`.
    virtual std::vector<AuditChain> audit_chains_after(std::string_view after_host, std::size_t limit) = 0;

    // --- retention (docs/server.md "Retention and archives") ---
    // PostgreSQL: creates the monthly partitions of audit_events (by received_at, UTC) for the
    // month of `now` and the next two, those missing; replicas are serialised by an advisory
    // lock. Called when the store opens and by the server's housekeeping, so ingest never finds
    // its month without a partition (if it does, the batch fails with Error(io) naming the
    // missing partition: nothing is stored, the host retries). SQLite: nothing to do.
    // A month that audit_archives marks pruned never gets its partition again: the others are
    // made, then Error(io) says the server's clock is in a pruned month (ingest() on either
    // backend refuses a batch received in a pruned month the same way).
    virtual void ensure_audit_partitions(std::int64_t now) = 0;
    // The hosts' events with from <= received_at < to, after row `after_id` (start with 0), in
    // row (arrival) order, at most `limit`: the export's and the prune check's read of a month.
    virtual std::vector<StoredAuditEvent> audit_events_received(std::int64_t from, std::int64_t to,
                                                                std::int64_t after_id, std::size_t limit) = 0;
    // The smallest received_at of a stored host event; nullopt when none is stored.
    virtual std::optional<std::int64_t> oldest_audit_received() = 0;
    // The largest received_at of a stored host event; nullopt when none is stored.
    virtual std::optional<std::int64_t> newest_audit_received() = 0;
    virtual std::optional<AuditArchive> audit_archive(std::string_view month) = 0;
    // Every archive record, by month (one row per exported month: a small table).
    virtual std::vector<AuditArchive> audit_archives() = 0;
    // Stores `archive` unless its month is recorded already, and records `event` (the caller's
    // "audit.exported") in the same transaction when it was stored. Returns the stored record
    // either way: the caller compares manifest_sha256 (evidence must not change between exports).
    virtual AuditArchive record_audit_archive(const AuditArchive& archive, const Event& event) = 0;
    // Deletes the hosts' events of `archive`'s month (received_from <= received_at <
    // received_to) in one transaction with: each such host's anchor set to the last deleted
    // event in arrival order (AuditChain::pruned_through_seq/hash), the archive marked pruned at
    // `now`, and `event` (the caller's "audit.pruned") recorded. The caller has checked the
    // retention, the archive and that a fresh manifest equals the archive's; here, inside the
    // transaction and with the month closed to writers (PostgreSQL: the month's partition locked
    // ACCESS EXCLUSIVE, with a lock_timeout of 10 s so a long reader makes the prune fail rather
    // than stall ingest; SQLite: the write transaction), the stored record must still have that
    // manifest_sha256, not be pruned, the month must still hold exactly archive.events events,
    // and `manifest_sha256` (given a reader of the month's events in arrival order, inside the
    // transaction) must return archive.manifest_sha256 (else Error(bad_input), nothing deleted).
    // PostgreSQL drops the month's partition (DETACH, DROP); SQLite deletes the rows.
    using AuditPageReader = std::function<std::vector<StoredAuditEvent>(std::int64_t after_id, std::size_t limit)>;
    using ManifestOf = std::function<std::string(const AuditPageReader&)>;
    virtual PruneResult prune_audit_month(const AuditArchive& archive, std::int64_t now, const Event& event,
                                          const ManifestOf& manifest_sha256) = 0;

    // --- web sessions and sign-ins ---
    virtual void put_session(const Session& session) = 0;
    virtual std::optional<Session> find_session(std::string_view token_sha256, std::int64_t now) = 0;
    virtual void delete_session(std::string_view token_sha256) = 0;
    // Stores `login` so that at most `max_in_progress` (>= 1) sign-ins are outstanding at `now`
    // afterwards: when the table is full, the oldest outstanding ones (earliest expires_at) are
    // deleted first, in the same transaction (serialised across replicas on PostgreSQL by an
    // advisory lock, BEGIN IMMEDIATE on SQLite). Returns how many were evicted.
    virtual std::size_t put_login(const LoginState& login, std::int64_t now, std::size_t max_in_progress) = 0;
    // Returns and deletes the login (one use only); nullopt if unknown or expired at `now`.
    virtual std::optional<LoginState> take_login(std::string_view state, std::int64_t now) = 0;
    // How many sign-ins are outstanding: stored and not expired at `now` (the web UI's cap on
    // sign-in starts, across replicas).
    virtual std::size_t count_logins(std::int64_t now) = 0;
    // Deletes every session of `unix_user` (an admin ending someone's access now); returns how many.
    virtual std::size_t delete_sessions_of(std::string_view unix_user) = 0;
    // The same, and records audit(count) in the same transaction when count > 0: the event
    // exists exactly when sessions were deleted. A throw from `audit` stores nothing.
    using SessionsAudit = std::function<Event(std::size_t)>;
    virtual std::size_t delete_sessions_of(std::string_view unix_user, const SessionsAudit& audit) = 0;

    // --- webhook outbox ---
    virtual void enqueue(const std::string& target, const std::string& body, std::int64_t now) = 0;
    // Claims up to `limit` notices due at `now` for `lease_s` seconds (another replica's
    // notifier does not see them meanwhile: SKIP LOCKED on PostgreSQL), oldest due first.
    // A claim whose lease ran out (its notifier died) is claimed again. lease_s <= 0: bad_input.
    virtual std::vector<Notice> claim_notices(std::int64_t now, std::size_t limit, int lease_s) = 0;
    virtual void notice_delivered(std::int64_t id) = 0;
    virtual void notice_failed(std::int64_t id, std::int64_t next_attempt_at, const std::string& error) = 0;
    // Gave up: the notice is kept and marked dropped with `error`; the caller audits it (record()).
    virtual void notice_dropped(std::int64_t id, const std::string& error) = 0;

    // --- wake-ups across replicas ---
    // A descriptor that becomes readable when another connection changed a request
    // (PostgreSQL LISTEN jitgate_requests); -1 when the store has no other writers (SQLite).
    // PostgreSQL: a second connection, opened (and LISTENing) on the first call; only
    // take_wakeups() reads it. Notifications sent before the first call are not seen.
    virtual int wake_fd() = 0;
    // The (host, id) pairs changed by others since the last call; never blocks on a healthy
    // connection. Changes made through this Store are not reported (the caller knows them:
    // notifications from this Store's own backend are skipped). A pair ("", "") means the
    // listening connection broke and was replaced, so notifications may have been lost: re-check
    // everything waited for, and call wake_fd() again (the descriptor changed). Throws Error(io)
    // if it cannot reconnect; the old descriptor then stays readable, so the caller must pace retries.
    virtual std::vector<std::pair<std::string, std::string>> take_wakeups() = 0;
};

// Opens an existing database at the current schema version. Throws Error(bad_input) with
// "run `jitgate-server migrate`" when the database or schema is missing or older, or newer than
// this program. open_sqlite never creates the file.
std::unique_ptr<Store> open_sqlite(const std::string& path);
std::unique_ptr<Store> open_postgres(const std::string& conninfo);

// Creates or upgrades the schema to k_schema_version, every missing step in one transaction, and
// returns the version found before (0: a new database). Safe to run on a live database and from
// several replicas at once (an advisory lock on PostgreSQL, BEGIN EXCLUSIVE on SQLite).
// migrate_sqlite creates a missing file with mode 0600. A newer schema: Error(bad_input).
// `up_to` stops at an older version (tests of upgrades); 0 means k_schema_version.
int migrate_sqlite(const std::string& path, int up_to = 0);
int migrate_postgres(const std::string& conninfo, int up_to = 0);

// SQLite only: copies the write-ahead log back into the database file on a thread of its own,
// with a connection of its own, every `every` (PRAGMA wal_checkpoint(PASSIVE): it neither waits
// for nor blocks a reader or the writer). Every connection this program opens leaves that work
// to it and checkpoints by itself only once the log passes 10,000 pages (~40 MiB), should this
// thread fall behind or not run (the CLI, the tests). Without it, the commit that pushed the
// log past SQLite's default 1,000 pages copied the log on the event loop, with an fsync of the
// database file, and every approval waiting behind it paid for it (docs/PERFORMANCE.md).
// A failed checkpoint is reported through `report` and tried again next time: the log only grows
// meanwhile, nothing is lost. The destructor stops and joins the thread.
class SqliteCheckpointer {
public:
    using Report = std::function<void(const std::string&)>;
    SqliteCheckpointer(std::string path, Report report, std::chrono::milliseconds every = std::chrono::seconds(1));
    ~SqliteCheckpointer();
    SqliteCheckpointer(const SqliteCheckpointer&) = delete;
    SqliteCheckpointer& operator=(const SqliteCheckpointer&) = delete;

    // Checkpoints done so far (for tests): each a PASSIVE checkpoint that copied every frame of
    // the log present when it started.
    std::uint64_t completed() const;

private:
    struct State;
    std::unique_ptr<State> m_state;
};

} // namespace jitgate::server::store
