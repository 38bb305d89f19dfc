// server/store/rows.hpp — private to server/store: what both database back ends share beyond
// SQL: the column list of a request row, JSON text for string lists, and the checks on what a
// caller asks to store. Errors: Error(bad_input) for a request the store must not accept,
// Error(io) for a row the store cannot read back (a corrupt or foreign database).
#pragma once

#include "server/store/store.hpp"

#include <string>
#include <vector>

namespace jitgate::server::store {

// The columns of `requests` in the order read_request_row-style readers expect them.
#define JITGATE_REQUEST_COLUMNS                                                                                        \
    "host, id, body, requester, requester_login, rule, status, approvals_needed, approver_groups, created_at, "        \
    "expires_at, decided_at, \"grant\", grant_id, decided_by, decision_reason, ticket_check"

// Indexes of those columns.
enum RequestColumn : int {
    c_host,
    c_id,
    c_body,
    c_requester,
    c_requester_login,
    c_rule,
    c_status,
    c_approvals_needed,
    c_approver_groups,
    c_created_at,
    c_expires_at,
    c_decided_at,
    c_grant,
    c_grant_id,
    c_decided_by,
    c_decision_reason,
    c_ticket_check,
};

#define JITGATE_APPROVAL_COLUMNS "approver, identity, comment, source_address, via, at"

std::string list_to_json(const std::vector<std::string>& list);
std::vector<std::string> list_from_json(const std::string& text);
Status status_from_column(const std::string& text);

// The columns of `revocations`, in the order read_revocation expects them.
#define JITGATE_REVOCATION_COLUMNS                                                                                     \
    "seq, host, request_id, grant_id, revoked_by, identity, source_address, via, reason, revoked_at"

// revoke_grant(): Error(bad_input) for an empty revoked_by.
void check_revocation(const Revocation& revocation);
// revocations_after(): the rows of several hosts' queries in seq order, at most `limit`. Pure.
std::vector<Revocation> merge_revocations(std::vector<Revocation> rows, std::size_t limit);

// create(): a new request must be pending, undecided, without approvals, and need at least one.
void check_new_request(const Request& request);
// finish(): only denied, expired or cancelled.
void check_final_status(Status to);

} // namespace jitgate::server::store

namespace jitgate::server::store {

// The columns of `audit_chains`, in the order the stores read them.
#define JITGATE_CHAIN_COLUMNS                                                                                          \
    "host, last_seq, last_hash, last_event_id, status, problem, problem_seq, problem_at, last_seen, events, "          \
    "restarts, restart_at, restart_previous_seq, restart_previous_hash, reported_seq, reported_at, "                   \
    "pruned_through_seq, pruned_through_hash"

// The number of columns in JITGATE_CHAIN_COLUMNS: a query's own columns after it start here.
constexpr int k_chain_columns = 18;

// "ok" → false, "broken" → true; Error(io) for anything else.
bool chain_broken_from_column(const std::string& text);

// ingest(): Error(bad_input) for an empty host or batch, or an event the caller did not check
// (empty event_id, seq < 1, a hash or prev_hash that is not 64 hex digits).
void check_ingest(const std::string& host, const std::vector<AuditEvent>& events);

// mark_chain_broken(): Error(bad_input) for an empty host or problem.
void check_mark_broken(const std::string& host, const std::string& problem);

// mark_chain_broken(): marks `chain` broken with `problem` at `seq` and `now` unless it is
// broken already (the first problem is kept). Returns whether it changed. Pure.
bool mark_broken(AuditChain& chain, const std::string& problem, std::int64_t seq, std::int64_t now);

// ingest(): where the new event `e` leaves the host's chain (`chain`, `known` false before the
// host's first event). Moves the chain to `e` (last seq, hash, event_id; broken and the first
// problem when there is one; last_seen, events) and returns the server event to record, with
// an empty type when there is nothing to record. Pure: both stores run exactly this.
Event advance_chain(AuditChain& chain, bool known, const AuditEvent& e, std::int64_t now);

// ingest(): which events of `batch` are provably ones the store held and pruned (retention), so
// they count as duplicates and are not stored again: an event at the chain's
// pruned_through_seq whose hash is pruned_through_hash (the hash covers the whole event), and
// each event before it in the batch that it continues without a break (seq one less, hash =
// the next one's prev_hash). Any other event, even one with seq <= pruned_through_seq, is not
// provably pruned (a restarted chain at seq 1 looks the same as the old chain's seq 1) and is
// stored as before: advance_chain() reports it (a restart, or a fork). Never drops an event that
// is not provably held.
std::vector<bool> provably_pruned(const AuditChain& chain, const std::vector<AuditEvent>& batch);

} // namespace jitgate::server::store

// --- break-glass reviews ---
namespace jitgate::server::store {

// The columns of `break_glass_reviews`, in the order the stores read them.
#define JITGATE_REVIEW_COLUMNS                                                                                         \
    "host, event_id, user_name, time, opened_at, due_at, status, reviewer, reviewer_identity, note, closed_at, "       \
    "overdue_alerted_at"

// The columns of an `audit_events` row as AuditEvent holds them, in its member order.
#define JITGATE_AUDIT_EVENT_COLUMNS "event_id, seq, hash, prev_hash, time, type, request_id, line, user_name"

// The event type that opens a review item.
inline constexpr const char* k_break_glass_type = "access.break_glass";

// "open" → false, "closed" → true; Error(io) for anything else (fail closed: an unknown status
// is never read as closed).
bool review_closed_from_column(const std::string& text);

// ingest(): Error(bad_input) for a review time that is not positive.
void check_ingest_options(const IngestOptions& options);

// close_break_glass_review(): Error(bad_input) for an empty reviewer or note.
void check_close(const std::string& reviewer, const std::string& note);

} // namespace jitgate::server::store

// --- retention ---
namespace jitgate::server::store {

// The columns of `audit_archives`, in AuditArchive's member order.
#define JITGATE_ARCHIVE_COLUMNS                                                                                        \
    "month, received_from, received_to, events, hosts, manifest_sha256, exported_at, exported_by, pruned_at"

// prune_audit_month(): Error(bad_input) unless `stored` (the month's record, read in the prune's
// transaction) exists, is not pruned, and has the manifest and bounds of `wanted`.
void check_prunable(const std::optional<AuditArchive>& stored, const AuditArchive& wanted);
// prune_audit_month(): Error(bad_input) unless the month holds `count` == wanted.events events.
void check_prune_count(const AuditArchive& wanted, std::int64_t count);
// ensure_audit_partitions() / ingest(): Error(io) for a server clock (`now`) in `month`, a month
// already pruned: its events are never stored again (the hosts keep them in their spool).
[[noreturn]] void throw_pruned_month(std::int64_t now, const std::string& month);
// prune_audit_month(): Error(bad_input) unless the manifest the month's events give inside the
// prune's transaction, `now_sha256`, is still wanted.manifest_sha256.
void check_prune_manifest(const AuditArchive& wanted, const std::string& now_sha256);

} // namespace jitgate::server::store
