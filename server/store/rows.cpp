// server/store/rows.cpp — JSON lists and request checks shared by the SQLite and PostgreSQL stores.
#include "server/store/rows.hpp"

#include <jitgate/error.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <limits>

namespace jitgate::server::store {

std::string list_to_json(const std::vector<std::string>& list) {
    try {
        return nlohmann::json(list).dump();
    } catch (const nlohmann::json::exception&) {
        throw Error(ErrorCode::bad_input, "store", "a group name is not valid UTF-8");
    }
}

std::vector<std::string> list_from_json(const std::string& text) {
    const nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
    if (!value.is_array()) throw Error(ErrorCode::io, "store", "a stored group list is not a JSON array");
    std::vector<std::string> out;
    for (const auto& item : value) {
        if (!item.is_string()) throw Error(ErrorCode::io, "store", "a stored group list holds a non-string");
        out.push_back(item.get<std::string>());
    }
    return out;
}

Status status_from_column(const std::string& text) {
    const auto status = status_from_string(text);
    // Fail closed: an unknown status is never read as pending (approvable) or approved.
    if (!status) throw Error(ErrorCode::io, "store", "a stored request has an unknown status");
    return *status;
}

void check_new_request(const Request& request) {
    if (request.host.empty() || request.id.empty())
        throw Error(ErrorCode::bad_input, "store", "a request needs a host and an id");
    if (request.status != Status::pending || request.decided_at != 0 || !request.grant.empty() ||
        !request.grant_id.empty() || !request.approvals.empty())
        throw Error(ErrorCode::bad_input, "store", "a new request must be pending, undecided and without approvals");
    if (request.approvals_needed < 1)
        throw Error(ErrorCode::bad_input, "store", "a request needs at least one approval");
}

void check_final_status(Status to) {
    if (to != Status::denied && to != Status::expired && to != Status::cancelled)
        throw Error(ErrorCode::bad_input, "store", "finish() moves a request to denied, expired or cancelled only");
}

void check_revocation(const Revocation& revocation) {
    if (revocation.revoked_by.empty()) throw Error(ErrorCode::bad_input, "store", "a revocation names who revoked");
}

std::vector<Revocation> merge_revocations(std::vector<Revocation> rows, std::size_t limit) {
    std::sort(rows.begin(), rows.end(), [](const Revocation& a, const Revocation& b) { return a.seq < b.seq; });
    if (rows.size() > limit) rows.resize(limit);
    return rows;
}

} // namespace jitgate::server::store

namespace jitgate::server::store {

namespace {

constexpr const char* k_genesis = "0000000000000000000000000000000000000000000000000000000000000000";

bool is_hash(const std::string& text) {
    if (text.size() != 64) return false;
    for (const char c : text)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

Event chain_event(const std::string& type, const AuditChain& chain, const AuditEvent& e, std::int64_t now,
                  nlohmann::json detail) {
    Event out;
    out.at = now;
    out.type = type;
    out.host = chain.host;
    out.request_id = e.request_id;
    out.actor = "host:" + chain.host;
    detail["seq"] = e.seq;
    detail["event_id"] = e.event_id;
    out.detail = detail.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return out;
}

} // namespace

bool chain_broken_from_column(const std::string& text) {
    if (text == "ok") return false;
    if (text == "broken") return true;
    throw Error(ErrorCode::io, "store", "a stored chain status is neither ok nor broken");
}

void check_ingest(const std::string& host, const std::vector<AuditEvent>& events) {
    if (host.empty()) throw Error(ErrorCode::bad_input, "store", "ingest: no host");
    if (events.empty()) throw Error(ErrorCode::bad_input, "store", "ingest: an empty batch");
    for (const AuditEvent& e : events)
        if (e.event_id.empty() || e.seq < 1 || !is_hash(e.hash) || !is_hash(e.prev_hash))
            throw Error(ErrorCode::bad_input, "store", "ingest: an unchecked event (seq, event_id, hash or prev_hash)");
}

void check_mark_broken(const std::string& host, const std::string& problem) {
    if (host.empty()) throw Error(ErrorCode::bad_input, "store", "mark_chain_broken: no host");
    if (problem.empty()) throw Error(ErrorCode::bad_input, "store", "mark_chain_broken: no problem");
}

bool mark_broken(AuditChain& chain, const std::string& problem, std::int64_t seq, std::int64_t now) {
    if (chain.broken) return false;
    chain.broken = true;
    chain.problem = problem;
    chain.problem_seq = seq;
    chain.problem_at = now;
    return true;
}

Event advance_chain(AuditChain& chain, bool known, const AuditEvent& e, std::int64_t now) {
    Event out;
    const bool genesis = e.seq == 1 && e.prev_hash == k_genesis;
    std::string problem;
    if (!known || chain.last_seq == 0) {
        // The first event this store gets from the host: a chain's start (seq 1), or a host
        // that shipped elsewhere before (the record starts here; nothing to compare with).
        out = chain_event("audit.chain_started", chain, e, now, {{"genesis", genesis}});
    } else if (genesis) {
        // docs/audit.md "Starting a new chain": a reset spool or a reinstalled host. Recorded,
        // not an attack in itself; the old chain stays stored.
        // Raised as an alert by the caller: a wiped spool loses what was not shipped yet.
        out = chain_event("audit.chain_restarted", chain, e, now,
                          {{"previous_last_seq", chain.last_seq},
                           {"previous_last_hash", chain.last_hash},
                           {"problem", "a new chain at seq 1 after seq " + std::to_string(chain.last_seq) +
                                           " (the spool was wiped or the host reinstalled)"}});
        chain.restarts += 1;
        chain.restart_at = now;
        chain.restart_previous_seq = chain.last_seq;
        chain.restart_previous_hash = chain.last_hash;
    } else if (e.seq - 1 == chain.last_seq) {
        // Written as e.seq - 1 (e.seq >= 1): chain.last_seq + 1 overflows when a host sent
        // seq INT64_MAX.
        if (e.prev_hash != chain.last_hash) {
            problem = "fork at seq " + std::to_string(e.seq) + ": its prev_hash is not the hash of seq " +
                      std::to_string(chain.last_seq) + " as stored (event " + chain.last_event_id + ")";
            out = chain_event(
                "audit.chain_fork", chain, e, now,
                {{"problem", problem}, {"prev_hash", e.prev_hash}, {"expected_prev_hash", chain.last_hash}});
        }
    } else if (e.seq - 1 > chain.last_seq) {
        const std::int64_t missing = e.seq - 1 - chain.last_seq; // both >= 0: no overflow
        problem = "gap: seq " + std::to_string(e.seq) + " follows " + std::to_string(chain.last_seq) + " (" +
                  std::to_string(missing) + (missing == 1 ? " event" : " events") + " missing)";
        out = chain_event("audit.chain_gap", chain, e, now,
                          {{"problem", problem}, {"expected_seq", chain.last_seq + 1}, {"missing", missing}});
    } else {
        // A (host, seq) the store holds already, under another event_id: the host's spool was
        // rolled back or rewritten (docs/audit.md §4, "A spool cut below what the store
        // acknowledged").
        problem = "fork: seq " + std::to_string(e.seq) + " arrives again with a new event_id after seq " +
                  std::to_string(chain.last_seq) + " (the host's spool was rolled back or rewritten)";
        nlohmann::json detail{{"problem", problem}};
        // No seq follows INT64_MAX (the largest the store takes): then none is expected.
        if (chain.last_seq < std::numeric_limits<std::int64_t>::max()) detail["expected_seq"] = chain.last_seq + 1;
        out = chain_event("audit.chain_fork", chain, e, now, std::move(detail));
    }
    if (!problem.empty()) mark_broken(chain, problem, e.seq, now);
    chain.last_seq = e.seq;
    chain.last_hash = e.hash;
    chain.last_event_id = e.event_id;
    chain.last_seen = now;
    chain.events += 1;
    return out;
}

std::vector<bool> provably_pruned(const AuditChain& chain, const std::vector<AuditEvent>& batch) {
    std::vector<bool> out(batch.size(), false);
    if (chain.pruned_through_seq <= 0 || !is_hash(chain.pruned_through_hash)) return out;
    for (std::size_t i = batch.size(); i-- > 0;) {
        if (batch[i].seq == chain.pruned_through_seq && batch[i].hash == chain.pruned_through_hash) {
            out[i] = true;
            continue;
        }
        // Continued by the next event, itself provably pruned.
        if (i + 1 < batch.size() && out[i + 1] && batch[i].seq < chain.pruned_through_seq &&
            batch[i].seq + 1 == batch[i + 1].seq && batch[i].hash == batch[i + 1].prev_hash)
            out[i] = true;
    }
    return out;
}

} // namespace jitgate::server::store

// --- break-glass reviews ---
namespace jitgate::server::store {

bool review_closed_from_column(const std::string& text) {
    if (text == "open") return false;
    if (text == "closed") return true;
    throw Error(ErrorCode::io, "store", "a stored break-glass review is neither open nor closed");
}

void check_ingest_options(const IngestOptions& options) {
    if (options.break_glass_review_within_s <= 0)
        throw Error(ErrorCode::bad_input, "store", "ingest: the break-glass review time must be positive");
    if (options.reported_seq < 0)
        throw Error(ErrorCode::bad_input, "store", "ingest: a reported spool seq cannot be negative");
}

void check_close(const std::string& reviewer, const std::string& note) {
    if (reviewer.empty()) throw Error(ErrorCode::bad_input, "store", "a break-glass review needs a reviewer");
    if (note.empty()) throw Error(ErrorCode::bad_input, "store", "a break-glass review needs a note");
}

bool own_break_glass_use(const std::string& reviewer, const std::string& user_name, const std::string& line) {
    if (reviewer.empty()) return true; // nobody unnamed closes a review (fail closed)
    if (reviewer == user_name) return true;
    const nlohmann::json value = nlohmann::json::parse(line, nullptr, false);
    // A line that is not a JSON object is a corrupt row (it was checked at ingest): only the
    // user column is known, and nobody else is exempted.
    if (!value.is_object()) return false;
    for (const char* who : {"login_user", "requester"}) {
        const auto it = value.find(who);
        if (it != value.end() && it->is_string() && it->get_ref<const std::string&>() == reviewer) return true;
    }
    return false;
}

// --- months (retention) ---
namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

Month make_month(int year, int month) {
    char name[16];
    std::snprintf(name, sizeof name, "%04d-%02d", year, month);
    const int next_year = month == 12 ? year + 1 : year;
    const int next = month == 12 ? 1 : month + 1;
    return Month{name, days_from_civil(year, static_cast<unsigned>(month), 1) * 86400,
                 days_from_civil(next_year, static_cast<unsigned>(next), 1) * 86400};
}

} // namespace

std::optional<Month> parse_month(std::string_view text) {
    if (text.size() != 7 || text[4] != '-') return std::nullopt;
    for (const std::size_t i : {0, 1, 2, 3, 5, 6})
        if (text[i] < '0' || text[i] > '9') return std::nullopt;
    const int year = (text[0] - '0') * 1000 + (text[1] - '0') * 100 + (text[2] - '0') * 10 + (text[3] - '0');
    const int month = (text[5] - '0') * 10 + (text[6] - '0');
    if (year < 1970 || month < 1 || month > 12) return std::nullopt;
    return make_month(year, month);
}

Month month_of(std::int64_t t) {
    if (t < 0) t = 0;
    // civil_from_days, for the year and month only.
    const std::int64_t z = t / 86400 + 719468;
    const std::int64_t era = z / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
    return make_month(static_cast<int>(y), static_cast<int>(m));
}

Month next_month(const Month& m) {
    return month_of(m.to);
}

void check_prunable(const std::optional<AuditArchive>& stored, const AuditArchive& wanted) {
    const std::string where = "prune " + wanted.month;
    if (!stored) throw Error(ErrorCode::bad_input, where, "the month has no archive record (export it first)");
    if (stored->pruned_at != 0) throw Error(ErrorCode::bad_input, where, "the month was pruned already");
    if (stored->manifest_sha256 != wanted.manifest_sha256 || stored->received_from != wanted.received_from ||
        stored->received_to != wanted.received_to)
        throw Error(ErrorCode::bad_input, where, "the archive record changed since it was checked");
}

void check_prune_count(const AuditArchive& wanted, std::int64_t count) {
    if (count != wanted.events)
        throw Error(ErrorCode::bad_input, "prune " + wanted.month,
                    "the month holds " + std::to_string(count) + " events, the archive " +
                        std::to_string(wanted.events) + ": nothing was deleted");
}

void check_prune_manifest(const AuditArchive& wanted, const std::string& now_sha256) {
    if (now_sha256 != wanted.manifest_sha256)
        throw Error(ErrorCode::bad_input, "prune " + wanted.month,
                    "the month's events changed while the prune checked them (manifest SHA-256 now " + now_sha256 +
                        ", the archive's " + wanted.manifest_sha256 + "): nothing was deleted");
}

void throw_pruned_month(std::int64_t now, const std::string& month) {
    throw Error(ErrorCode::io, "store",
                "the server's clock (Unix time " + std::to_string(now) + ") is in " + month +
                    ", a month already pruned (audit_archives): its partition is not made again and no event is "
                    "stored in it (the hosts keep theirs in their spool); correct the server's clock");
}

} // namespace jitgate::server::store
