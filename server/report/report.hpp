// server/report/report.hpp — the auditor's evidence report (docs/server.md, "The evidence
// report"): for a period, every privileged action built from its hosts' events and joined to
// the approval service's record of it, a summary, every break-glass use with its review, the
// exceptions, and each host's chain as the report re-verified it from the stored lines.
//
// build() only reads (the Store's "reading for auditors" methods, page by page, so a period
// of millions of events never sits in one query result); render() turns a Report into JSON,
// CSV, HTML or PDF (the PDF through WeasyPrint, from the HTML). The web UI calls both.
//
// Threading: build() uses the Store it is given (one thread at a time, as the Store requires);
// render() is pure except for Format::pdf, which runs a subprocess. Errors: build() passes on
// the Store's Error(io); render(pdf) throws Error(io) when WeasyPrint is missing or fails.
// Depends on server/store and lib/ (the chain check); never on the HTTP layer or the service.
#pragma once

#include "server/store/store.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jitgate::server::report {

struct Options {
    std::int64_t from = 0;                 // Unix seconds, included
    std::int64_t to = 0;                   // Unix seconds, excluded
    std::string hosts = "*";               // a glob (fnmatch(3)) over host names
    std::int64_t silent_after = 24 * 3600; // a host whose last batch is older than this (at `now`) is an exception
    std::int64_t now = 0;
};

// One approval as the approval service recorded it.
struct ApprovalRecord {
    std::string approver;
    std::string identity;
    std::string source_address;
    std::string via;
    std::string comment;
    std::int64_t at = 0;
};

// One privileged action: a decision on a host (access.approved, denied, timeout, cancelled,
// allowed_by_rule, allowed_by_grant, break_glass, or a request that got no decision in the
// period), with what came of it and the server's record of its request.
struct Action {
    std::string host;
    std::string decision;   // the decision event's type without "access.", or "pending"
    std::string outcome;    // the host's `outcome` field ("grant", "denied", "invalid_grant", ...), or ""
    std::string request_id; // empty for allowed_by_rule, break_glass, a deny rule
    std::string grant_id;
    std::string kind; // "sudo" or "login"
    std::string user;
    std::string requester; // who asked (`requester`, else `user`)
    std::string login_user;
    std::string command; // sudo: the command; login: the PAM service
    std::vector<std::string> argv;
    std::string runas;
    std::string remote_host;
    std::string rule;
    std::string reason;
    std::string ticket;
    std::string break_glass_reason;
    std::string message;
    std::string requested_time; // RFC 3339 of access.requested, as the host wrote it; "" if none
    std::string decided_time;   // of the decision event
    std::string decision_event_id;
    // What the approval service recorded (request_found false: no such request there).
    bool request_found = false;
    std::string server_status; // pending, approved, denied, expired, cancelled
    std::int64_t filed_at = 0; // Unix seconds
    std::int64_t server_decided_at = 0;
    std::string decided_by;
    std::string decision_reason;
    std::vector<ApprovalRecord> approvals;
    // Request filed → approved, in seconds (the server's times; the host's when the server has
    // no record); nullopt when not approved.
    std::optional<std::int64_t> delay_s;
    // What ran: "command" (command.finished), "session" (session.opened/closed) or "" (nothing
    // recorded in the period).
    std::string result_type;
    std::string action_time; // command.finished / session.opened
    std::string end_time;    // session.closed
    std::string status_type; // exit, signal, exec_error, not_run
    std::optional<std::int64_t> exit_status;
    std::optional<std::int64_t> signal;
    std::optional<std::int64_t> duration_ms;
    // SECURITY NOTE: an approver equal to the requester or the requester's login user must never
    // happen (the service and every host refuse it); when the record shows one, it is flagged
    // here and listed among the exceptions.
    bool self_approved = false;
    // Who approved an `approved` action, as the host's events say: "service" when the host took
    // a grant of the approval service (its access.approved carries `service_grant_id` or
    // `approval_service`, or the request's access.requested carried `approval_service`),
    // "local" otherwise (jitgatectl approve on the host: the service has no record of it); ""
    // for every other decision.
    std::string approval_source;
    std::string approval_service; // the service's URL as the host recorded it, or ""
    std::string service_grant_id; // the service's grant id (jti) as the host recorded it, or ""
    std::string scope;            // the grant's scope as the host recorded it (command, session, login)
    // SECURITY NOTE: approval_source "service" only: the host's record checked against the
    // service's. "ok"; "not_approved_at_service" (no such request there, or not approved) or
    // "request_mismatch" (the service approved something else), both also listed among the
    // exceptions; "" when not checked.
    std::string service_check;
    std::vector<std::string> service_mismatch; // request_mismatch: the fields that differ, in a fixed order
};

struct BreakGlassUse {
    std::size_t action = 0; // index into Report::actions
    std::string host;
    std::string event_id;
    std::string time;
    std::string user;
    std::string reason;
    // "none" (no review item), "open" or "closed".
    std::string review_status = "none";
    std::string reviewer;
    std::string reviewer_identity;
    std::string note;
    std::int64_t review_due_at = 0;
    std::int64_t review_closed_at = 0;
};

// Something an auditor must look at.
struct Exception {
    // refused_self_approval (host `error`, refused self_approval), approval_refused (the
    // service's approval.refused / denial.refused), grant_rejected (access.denied with
    // grant_rejected or outcome invalid_grant), chain_broken (the store's check on arrival),
    // chain_verification_failed (the report's own check), host_silent, spool_full,
    // approver_is_requester, break_glass_unreviewed (a break-glass use without a review item, or
    // with one still open past its due time at Options::now), not_approved_at_service and
    // request_mismatch (Action::service_check), host_never_shipped (the service approved
    // requests of the host in the period, and the store holds no event of the host dated in it).
    std::string kind;
    std::string host;
    std::string time; // RFC 3339 (host events as written; server times in UTC)
    std::string request_id;
    std::string user;
    std::string detail;
    std::string event_id; // the host event, when there is one
    std::string due;      // break_glass_unreviewed: the review's due time (RFC 3339), "" without one
};

// One host's chain as the report re-verified it from the stored lines: each line's hash
// (lib/audit_chain check_line), each prev_hash against the hash before it, seq without gaps.
struct HostChainCheck {
    std::string host;
    std::int64_t events_in_period = 0;
    std::int64_t first_seq = 0; // in the period; 0 when the host has no event in it
    std::string first_hash;
    std::string first_time;
    std::int64_t last_seq = 0;
    std::string last_hash;
    std::string last_time;
    // The event before first_seq that the period's first event must continue (0: none stored,
    // or first_seq is 1).
    std::int64_t before_seq = 0;
    std::string before_hash;
    std::int64_t verified_events = 0; // lines checked: before_seq .. last_seq
    bool verified = true;             // every line and link between before_seq and last_seq checked out
    std::vector<std::string> problems;
    // Overall, as the store holds it (audit_chains).
    std::int64_t stored_events = 0;
    std::int64_t overall_last_seq = 0;
    std::string overall_last_hash;
    bool broken = false;
    std::string problem;
    std::int64_t problem_seq = 0;
    std::int64_t problem_at = 0; // Unix seconds
    std::int64_t last_seen = 0;
    bool silent = false;
    // Retention: the chain's events up to this seq were pruned after their months were archived
    // (`jitgate-server audit prune`); the first stored event after them must continue this hash.
    // 0 / "": nothing pruned.
    std::int64_t pruned_through_seq = 0;
    std::string pruned_through_hash;
};

struct Count {
    std::string host;
    std::string rule;
    std::int64_t actions = 0;
};

struct Summary {
    std::int64_t actions = 0;
    std::int64_t approved = 0;
    std::int64_t allowed_by_rule = 0;
    std::int64_t auto_approved = 0; // access.auto_approved: granted by a rule's auto_approve, no person
    std::int64_t allowed_by_grant = 0;
    std::int64_t denials = 0;
    std::int64_t timeouts = 0;
    std::int64_t cancellations = 0;
    std::int64_t pending = 0;
    std::int64_t break_glass = 0;
    std::int64_t exceptions = 0;
    std::int64_t host_events = 0; // host events read in the period
    std::int64_t hosts = 0;
    std::optional<std::int64_t> delay_median_s; // nearest rank, over approved actions with a delay
    std::optional<std::int64_t> delay_p95_s;
    std::vector<Count> by_host_rule; // sorted by host, then rule
};

struct Report {
    Options options;
    std::string generated_at; // RFC 3339 of options.now
    Summary summary;
    std::vector<Action> actions; // in decision order (time, then arrival)
    std::vector<BreakGlassUse> break_glass;
    std::vector<Exception> exceptions;
    std::vector<HostChainCheck> hosts; // sorted by host
};

// Builds the report for `options` from `store`, reading only. Error(bad_input) when from >= to
// or the glob is empty; the Store's Error(io) passes through.
Report build(store::Store& store, const Options& options);

enum class Format { json, csv, html, pdf };
std::optional<Format> format_from_string(std::string_view text) noexcept;

// The report as a document of `format`: JSON (one object, field names documented in
// docs/server.md), CSV (the actions table with a header line), HTML (one self-contained
// document, no external resource, every stored string escaped) or PDF (that HTML through
// WeasyPrint). Error(io) when the PDF cannot be made (WeasyPrint missing: says which package).
std::string render(const Report& report, Format format);

// Parses an RFC 3339 time ("2026-11-29T08:00:00Z", "...+02:00", fractions dropped) or a date
// ("2026-11-29", UTC); a date as an end (`end_of_day`) means the end of that day (the next
// day's 00:00). nullopt for anything else.
std::optional<std::int64_t> parse_time(std::string_view text, bool end_of_day);
// "2026-11-29T08:07:06Z".
std::string rfc3339(std::int64_t unix_s);

} // namespace jitgate::server::report
