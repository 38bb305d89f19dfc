// server/store/postgres_store.cpp — the Store on PostgreSQL: replicas that share nothing else.
//
// Races between replicas: approve() locks the request row (SELECT ... FOR UPDATE) before it
// checks anything, so a second approver waits and then sees the first one's result; finish()
// is one conditional UPDATE ... WHERE status = 'pending' (read committed re-checks the
// condition on the row version the first writer left). claim_notices() skips rows another
// notifier holds (FOR UPDATE SKIP LOCKED).
// Wake-ups: every change to a request sends pg_notify('jitgate_requests', '<host> <id>') in
// its own transaction, so listeners hear of it only once it is committed. A second
// connection, opened by the first wake_fd() call, LISTENs; it never runs anything else, so
// its socket is readable exactly when a notification (or a broken connection) is waiting.
// Reconnects: a call that finds its connection broken, or loses it before COMMIT, reconnects
// once and runs again; a second failure, or one during COMMIT (outcome unknown), is an Error(io).
#include "server/store/pg_db.hpp"
#include "server/store/rows.hpp"
#include "server/store/schema.hpp"
#include "server/store/store.hpp"

#include <jitgate/error.hpp>

#include <algorithm>
#include <ctime>
#include <libpq-fe.h>
#include <limits>
#include <map>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

namespace jitgate::server::store {

namespace {

using pg::Result;
using Params = std::vector<std::string>;

// pg_try_advisory_xact_lock key for purge(): one replica purges at a time (migrations use another key).
constexpr const char* k_purge_lock = "29952296202892390";
// pg_advisory_xact_lock key for revoke_grant(): revocations draw their seq one at a time.
constexpr const char* k_revocation_lock = "29952296202892393";

// pg_advisory_xact_lock key for put_login() with a cap: one sign-in start at a time across
// replicas, so the count and the eviction agree (a short transaction of three statements).
constexpr const char* k_logins_lock = "29952296202892391";

// pg_advisory_xact_lock key for ensure_audit_partitions() and prune_audit_month(): one
// replica changes audit_events' partitions at a time.
constexpr const char* k_partitions_lock = "29952296202892392";

constexpr const char* k_read_snapshot = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

std::string str(std::string_view text) {
    return std::string(text);
}
std::string num(std::int64_t value) {
    return std::to_string(value);
}
std::string limit_value(std::size_t limit) {
    return num(static_cast<std::int64_t>(std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max())));
}

Request read_request(const Result& r, int row) {
    Request q;
    q.host = r.text(row, c_host);
    q.id = r.text(row, c_id);
    q.body = r.text(row, c_body);
    q.requester = r.text(row, c_requester);
    q.requester_login = r.text(row, c_requester_login);
    q.rule = r.text(row, c_rule);
    q.status = status_from_column(r.text(row, c_status));
    q.approvals_needed = static_cast<int>(r.integer(row, c_approvals_needed));
    q.approver_groups = list_from_json(r.text(row, c_approver_groups));
    q.created_at = r.integer(row, c_created_at);
    q.expires_at = r.integer(row, c_expires_at);
    q.decided_at = r.integer(row, c_decided_at);
    q.grant = r.text(row, c_grant);
    q.grant_id = r.text(row, c_grant_id);
    q.decided_by = r.text(row, c_decided_by);
    q.decision_reason = r.text(row, c_decision_reason);
    q.ticket_check = r.text(row, c_ticket_check);
    return q;
}

AuditChain read_chain(const Result& r, int row) {
    AuditChain c;
    c.host = r.text(row, 0);
    c.last_seq = r.integer(row, 1);
    c.last_hash = r.text(row, 2);
    c.last_event_id = r.text(row, 3);
    c.broken = chain_broken_from_column(r.text(row, 4));
    c.problem = r.text(row, 5);
    c.problem_seq = r.integer(row, 6);
    c.problem_at = r.integer(row, 7);
    c.last_seen = r.integer(row, 8);
    c.events = r.integer(row, 9);
    c.restarts = r.integer(row, 10);
    c.restart_at = r.integer(row, 11);
    c.restart_previous_seq = r.integer(row, 12);
    c.restart_previous_hash = r.text(row, 13);
    c.reported_seq = r.integer(row, 14);
    c.reported_at = r.integer(row, 15);
    c.pruned_through_seq = r.integer(row, 16);
    c.pruned_through_hash = r.text(row, 17);
    return c;
}

class PostgresStore final : public Store {
public:
    explicit PostgresStore(const std::string& conninfo) : m_conninfo(conninfo), m_db(conninfo) {
        require_current_schema(schema_version(m_db), m_db.where());
        ensure_audit_partitions(static_cast<std::int64_t>(std::time(nullptr)));
    }

    CreateResult create(const Request& request, const Event& filed, std::size_t max_pending) override {
        check_new_request(request);
        return call([&] {
            pg::Transaction tx(m_db);
            if (max_pending > 0) {
                // One filing per host at a time, on every replica, until this transaction ends:
                // two replicas cannot both count max_pending - 1 and both insert.
                m_db.exec("SELECT pg_advisory_xact_lock(hashtextextended('jitgate-pending ' || $1, 0))",
                          {request.host});
                if (auto existing = load(request.host, request.id, false)) {
                    CreateResult result{false, std::move(*existing)};
                    tx.commit();
                    return result;
                }
                // Counted up to the limit only (see the SQLite store).
                const Result counted =
                    m_db.exec("SELECT count(*) FROM (SELECT 1 FROM requests WHERE host = $1 AND status = 'pending' "
                              "AND expires_at > $2::bigint LIMIT $3::bigint) AS p",
                              {request.host, num(request.created_at), num(static_cast<std::int64_t>(max_pending))});
                const auto pending = static_cast<std::size_t>(counted.integer(0, 0));
                if (pending >= max_pending) {
                    CreateResult result;
                    result.over_limit = true;
                    result.pending = pending;
                    tx.commit();
                    return result;
                }
            }
            const Result inserted =
                m_db.exec("INSERT INTO requests (" JITGATE_REQUEST_COLUMNS ") VALUES "
                          "($1, $2, $3, $4, $5, $6, $7, $8::integer, $9, $10::bigint, $11::bigint, $12::bigint, $13, "
                          "$14, $15, $16, $17) "
                          "ON CONFLICT (host, id) DO NOTHING RETURNING host",
                          {request.host, request.id, request.body, request.requester, request.requester_login,
                           request.rule, str(to_string(Status::pending)), num(request.approvals_needed),
                           list_to_json(request.approver_groups), num(request.created_at), num(request.expires_at), "0",
                           "", "", request.decided_by, request.decision_reason, request.ticket_check});
            const bool created = inserted.rows() == 1;
            if (created) {
                insert_event(filed);
                notify(request.host, request.id);
            }
            CreateResult result{created, load_or_fail(request.host, request.id)};
            tx.commit();
            return result;
        });
    }

    std::optional<Request> find(std::string_view host, std::string_view id) override {
        return call([&] {
            pg::Transaction tx(m_db, k_read_snapshot);
            auto request = load(host, id, false);
            tx.commit();
            return request;
        });
    }

    std::vector<Request> pending(std::size_t limit) override {
        return call([&] {
            pg::Transaction tx(m_db, k_read_snapshot);
            const Result rows = m_db.exec("SELECT " JITGATE_REQUEST_COLUMNS " FROM requests WHERE status = 'pending' "
                                          "ORDER BY created_at, host, id LIMIT $1::bigint",
                                          {limit_value(limit)});
            auto out = read_with_approvals(rows);
            tx.commit();
            return out;
        });
    }

    std::vector<Request> pending_after(const PendingKey& after, std::size_t limit) override {
        return call([&] {
            pg::Transaction tx(m_db, k_read_snapshot);
            const Result rows = m_db.exec(
                "SELECT " JITGATE_REQUEST_COLUMNS " FROM requests WHERE status = 'pending' "
                "AND (created_at, host, id) > ($1::bigint, $2, $3) ORDER BY created_at, host, id LIMIT $4::bigint",
                {num(after.created_at), after.host, after.id, limit_value(limit)});
            auto out = read_with_approvals(rows);
            tx.commit();
            return out;
        });
    }

    std::vector<Request> pending_from(std::int64_t created_at, std::size_t skip, std::size_t limit) override {
        return call([&] {
            pg::Transaction tx(m_db, k_read_snapshot);
            const Result rows = m_db.exec(
                "SELECT " JITGATE_REQUEST_COLUMNS " FROM requests WHERE status = 'pending' "
                "AND created_at >= $1::bigint ORDER BY created_at, host, id LIMIT $2::bigint OFFSET $3::bigint",
                {num(created_at), limit_value(limit), limit_value(skip)});
            auto out = read_with_approvals(rows);
            tx.commit();
            return out;
        });
    }

    std::vector<Request> history(std::int64_t before, std::size_t limit) override {
        return call([&] {
            pg::Transaction tx(m_db, k_read_snapshot);
            const Result rows = m_db.exec("SELECT " JITGATE_REQUEST_COLUMNS " FROM requests "
                                          "WHERE status <> 'pending' AND decided_at < $1::bigint "
                                          "ORDER BY decided_at DESC, host, id LIMIT $2::bigint",
                                          {num(before), limit_value(limit)});
            auto out = read_with_approvals(rows);
            tx.commit();
            return out;
        });
    }

    ApproveResult approve(std::string_view host, std::string_view id, const Approval& approval, std::int64_t now,
                          const Signer& sign, const Event& event) override {
        return call([&] {
            pg::Transaction tx(m_db);
            ApproveResult result;
            // FOR UPDATE: a second approve() (or finish()) of this request, on any replica,
            // waits here until this transaction ends, then reads what it left.
            auto current = load(host, id, true);
            if (!current) return result; // unknown: not_pending, empty request
            result.request = *current;
            if (current->status != Status::pending || current->expires_at <= now) return result;
            for (const Approval& a : current->approvals)
                if (a.approver == approval.approver) {
                    result.outcome = ApproveOutcome::already_approved;
                    return result;
                }
            Approval stored = approval;
            if (stored.at == 0) stored.at = now;
            Event grant_event;
            m_db.exec("INSERT INTO approvals (host, id, " JITGATE_APPROVAL_COLUMNS ") "
                      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint)",
                      {str(host), str(id), stored.approver, stored.identity, stored.comment, stored.source_address,
                       stored.via, num(stored.at)});
            current->approvals.push_back(stored);
            if (static_cast<int>(current->approvals.size()) >= current->approvals_needed) {
                current->status = Status::approved;
                current->decided_at = now;
                // A throw from the signer leaves before commit(): the transaction rolls back,
                // the approval above included.
                const SignedGrant grant = sign(*current);
                if (grant.token.empty() || grant.id.empty())
                    throw Error(ErrorCode::internal, "store", "the grant signer returned an empty grant");
                current->grant = grant.token;
                current->grant_id = grant.id;
                grant_event = grant.event;
                const Result updated = m_db.exec(
                    "UPDATE requests SET status = 'approved', \"grant\" = $3, grant_id = $4, decided_at = $5::bigint "
                    "WHERE host = $1 AND id = $2 AND status = 'pending' RETURNING host",
                    {str(host), str(id), grant.token, grant.id, num(now)});
                if (updated.rows() != 1)
                    throw Error(ErrorCode::internal, "store", "the request changed during approve()");
                result.outcome = ApproveOutcome::approved;
            } else {
                result.outcome = ApproveOutcome::added;
            }
            result.request = *current;
            insert_event(event);
            // In this transaction: the grant and its event commit together or not at all.
            if (!grant_event.type.empty()) insert_event(grant_event);
            notify(host, id);
            tx.commit();
            return result;
        });
    }

    ApproveResult approve_automatically(std::string_view host, std::string_view id, const std::string& decided_by,
                                        std::int64_t now, const Signer& sign, const Event& event) override {
        return call([&] {
            pg::Transaction tx(m_db);
            ApproveResult result;
            auto current = load(host, id, true); // FOR UPDATE, as in approve()
            if (!current) return result;
            result.request = *current;
            if (current->status != Status::pending || current->expires_at <= now) return result;
            current->status = Status::approved;
            current->decided_at = now;
            current->decided_by = decided_by;
            const SignedGrant grant = sign(*current);
            if (grant.token.empty() || grant.id.empty())
                throw Error(ErrorCode::internal, "store", "the grant signer returned an empty grant");
            current->grant = grant.token;
            current->grant_id = grant.id;
            const Result updated = m_db.exec("UPDATE requests SET status = 'approved', \"grant\" = $3, grant_id = $4, "
                                             "decided_at = $5::bigint, decided_by = $6 WHERE host = $1 AND id = $2 AND "
                                             "status = 'pending' RETURNING host",
                                             {str(host), str(id), grant.token, grant.id, num(now), decided_by});
            if (updated.rows() != 1)
                throw Error(ErrorCode::internal, "store", "the request changed during approve_automatically()");
            result.outcome = ApproveOutcome::approved;
            result.request = *current;
            insert_event(event);
            if (!grant.event.type.empty()) insert_event(grant.event);
            notify(host, id);
            tx.commit();
            return result;
        });
    }

    std::optional<Request> finish(std::string_view host, std::string_view id, Status to, const std::string& decided_by,
                                  const std::string& reason, std::int64_t now, const Event& event) override {
        check_final_status(to);
        return call([&]() -> std::optional<Request> {
            pg::Transaction tx(m_db);
            const Result updated = m_db.exec(
                "UPDATE requests SET status = $3, decided_at = $4::bigint, decided_by = $5, decision_reason = $6 "
                "WHERE host = $1 AND id = $2 AND status = 'pending' RETURNING host",
                {str(host), str(id), str(to_string(to)), num(now), decided_by, reason});
            if (updated.rows() != 1) return std::nullopt;
            insert_event(event);
            notify(host, id);
            auto request = load_or_fail(host, id);
            tx.commit();
            return request;
        });
    }

    RevokeResult revoke_grant(std::string_view host, std::string_view id, const Revocation& revocation,
                              const Event& event) override {
        check_revocation(revocation);
        return call([&] {
            pg::Transaction tx(m_db);
            RevokeResult result;
            // FOR UPDATE: a second revocation of this request, on any replica, waits here.
            std::optional<Request> request = load(host, id, true);
            if (!request) return result; // not_found
            result.request = std::move(*request);
            if (result.request.status != Status::approved || result.request.grant_id.empty()) {
                result.outcome = RevokeOutcome::not_approved;
                return result;
            }
            if (std::optional<Revocation> earlier = load_revocation(host, id)) {
                result.outcome = RevokeOutcome::already_revoked;
                result.revocation = std::move(*earlier);
                return result;
            }
            // One revocation at a time across replicas, taken before the next seq is drawn: seq
            // order is commit order, so a host's cursor never passes a row not yet committed.
            m_db.exec("SELECT pg_advisory_xact_lock($1::bigint)", {k_revocation_lock});
            const Result inserted = m_db.exec(
                "INSERT INTO revocations (host, request_id, grant_id, revoked_by, identity, source_address, via, "
                "reason, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::bigint) "
                "RETURNING " JITGATE_REVOCATION_COLUMNS,
                {str(host), str(id), result.request.grant_id, revocation.revoked_by, revocation.identity,
                 revocation.source_address, revocation.via, revocation.reason, num(revocation.revoked_at)});
            if (inserted.rows() != 1) throw Error(ErrorCode::internal, "store", "a revocation was not stored");
            insert_event(event);
            notify(host, id);
            tx.commit();
            result.outcome = RevokeOutcome::revoked;
            result.revocation = read_revocation(inserted, 0);
            return result;
        });
    }

    std::optional<Revocation> find_revocation(std::string_view host, std::string_view id) override {
        return call([&] { return load_revocation(host, id); });
    }

    std::vector<std::string> hosts_of_request(std::string_view id, std::size_t limit) override {
        return call([&] {
            const Result rows = m_db.exec("SELECT host FROM requests WHERE id = $1 ORDER BY host LIMIT $2::bigint",
                                          {str(id), limit_value(limit)});
            std::vector<std::string> out;
            for (int i = 0; i < rows.rows(); ++i) out.push_back(rows.text(i, 0));
            return out;
        });
    }

    std::vector<Revocation> revocations_after(const std::vector<std::string>& hosts, std::int64_t after,
                                              std::int64_t upto, std::int64_t since, std::size_t limit) override {
        return call([&] {
            std::vector<Revocation> out;
            for (const std::string& host : hosts) {
                const Result rows = m_db.exec("SELECT " JITGATE_REVOCATION_COLUMNS " FROM revocations WHERE host = $1 "
                                              "AND seq > $2::bigint AND seq <= $5::bigint AND revoked_at >= "
                                              "$3::bigint ORDER BY seq LIMIT $4::bigint",
                                              {host, num(after), num(since), limit_value(limit), num(upto)});
                for (int i = 0; i < rows.rows(); ++i) out.push_back(read_revocation(rows, i));
            }
            return merge_revocations(std::move(out), limit);
        });
    }

    std::vector<std::string> hosts_revoked_after(std::int64_t after, std::size_t limit) override {
        return call([&] {
            const Result rows =
                m_db.exec("SELECT DISTINCT host FROM revocations WHERE seq > $1::bigint ORDER BY host LIMIT $2::bigint",
                          {num(after), limit_value(limit)});
            std::vector<std::string> out;
            for (int i = 0; i < rows.rows(); ++i) out.push_back(rows.text(i, 0));
            return out;
        });
    }

    std::int64_t last_revocation_seq(const std::vector<std::string>& hosts) override {
        return call([&] {
            std::int64_t last = 0;
            if (hosts.empty()) last = m_db.exec("SELECT coalesce(max(seq), 0) FROM revocations").integer(0, 0);
            for (const std::string& host : hosts) {
                const Result r = m_db.exec("SELECT coalesce(max(seq), 0) FROM revocations WHERE host = $1", {host});
                last = std::max(last, r.integer(0, 0));
            }
            return last;
        });
    }

    std::vector<std::pair<std::string, std::string>> due(std::int64_t now, std::size_t limit) override {
        return call([&] {
            const Result rows =
                m_db.exec("SELECT host, id FROM requests WHERE status = 'pending' AND expires_at <= $1::bigint "
                          "ORDER BY expires_at, host, id LIMIT $2::bigint",
                          {num(now), limit_value(limit)});
            std::vector<std::pair<std::string, std::string>> out;
            for (int i = 0; i < rows.rows(); ++i) out.emplace_back(rows.text(i, 0), rows.text(i, 1));
            return out;
        });
    }

    void set_ticket_check(std::string_view host, std::string_view id, const std::string& answer_json) override {
        call([&] {
            pg::Transaction tx(m_db);
            const Result updated =
                m_db.exec("UPDATE requests SET ticket_check = $3 WHERE host = $1 AND id = $2 RETURNING host",
                          {str(host), str(id), answer_json});
            if (updated.rows() == 1) notify(host, id);
            tx.commit();
        });
    }

    Purged purge(std::int64_t expired_before, std::int64_t delivered_before) override {
        return call([&] {
            pg::Transaction tx(m_db);
            // Replicas purge on their own timers: one at a time (two DELETEs of the same rows
            // in different orders could deadlock), and a replica that finds the lock taken
            // leaves the work to the one holding it.
            const Result locked = m_db.exec("SELECT pg_try_advisory_xact_lock($1::bigint)", {k_purge_lock});
            if (locked.text(0, 0) != "t") return Purged{};
            Purged purged;
            const Params expired{num(expired_before)};
            purged.sessions = static_cast<std::size_t>(
                m_db.exec("DELETE FROM sessions WHERE expires_at < $1::bigint", expired).affected());
            purged.logins = static_cast<std::size_t>(
                m_db.exec("DELETE FROM logins WHERE expires_at < $1::bigint", expired).affected());
            purged.notices = static_cast<std::size_t>(
                m_db.exec("DELETE FROM notices WHERE state = 'delivered' AND next_attempt_at < $1::bigint",
                          {num(delivered_before)})
                    .affected());
            tx.commit();
            return purged;
        });
    }

    void record(const Event& event) override {
        call([&] { insert_event(event); });
    }

    std::vector<Event> events(std::string_view host, std::string_view request_id) override {
        return call([&] {
            const Result rows =
                m_db.exec("SELECT at, type, host, request_id, actor, identity, source_address, detail FROM events "
                          "WHERE host = $1 AND request_id = $2 ORDER BY id",
                          {str(host), str(request_id)});
            std::vector<Event> out;
            for (int i = 0; i < rows.rows(); ++i)
                out.push_back(Event{rows.integer(i, 0), rows.text(i, 1), rows.text(i, 2), rows.text(i, 3),
                                    rows.text(i, 4), rows.text(i, 5), rows.text(i, 6), rows.text(i, 7)});
            return out;
        });
    }

    void put_session(const Session& s) override {
        call([&] {
            m_db.exec(
                "INSERT INTO sessions (token_sha256, identity, unix_user, display_name, approver_groups, csrf_token, "
                "created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7::bigint, $8::bigint) "
                "ON CONFLICT (token_sha256) DO UPDATE SET identity = excluded.identity, "
                "unix_user = excluded.unix_user, display_name = excluded.display_name, "
                "approver_groups = excluded.approver_groups, csrf_token = excluded.csrf_token, "
                "created_at = excluded.created_at, expires_at = excluded.expires_at",
                {s.token_sha256, s.identity, s.unix_user, s.display_name, list_to_json(s.groups), s.csrf_token,
                 num(s.created_at), num(s.expires_at)});
        });
    }

    std::optional<Session> find_session(std::string_view token_sha256, std::int64_t now) override {
        return call([&]() -> std::optional<Session> {
            const Result r =
                m_db.exec("SELECT token_sha256, identity, unix_user, display_name, approver_groups, csrf_token, "
                          "created_at, expires_at FROM sessions WHERE token_sha256 = $1 AND expires_at > $2::bigint",
                          {str(token_sha256), num(now)});
            if (r.rows() != 1) return std::nullopt;
            return Session{r.text(0, 0), r.text(0, 1),    r.text(0, 2),   r.text(0, 3), list_from_json(r.text(0, 4)),
                           r.text(0, 5), r.integer(0, 6), r.integer(0, 7)};
        });
    }

    void delete_session(std::string_view token_sha256) override {
        call([&] { m_db.exec("DELETE FROM sessions WHERE token_sha256 = $1", {str(token_sha256)}); });
    }

    std::size_t put_login(const LoginState& login, std::int64_t now, std::size_t max_in_progress) override {
        return call([&] {
            pg::Transaction tx(m_db);
            m_db.exec("SELECT pg_advisory_xact_lock($1::bigint)", {k_logins_lock});
            const auto outstanding = static_cast<std::size_t>(
                m_db.exec("SELECT count(*) FROM logins WHERE expires_at > $1::bigint", {num(now)}).integer(0, 0));
            const std::size_t cap = std::max<std::size_t>(max_in_progress, 1);
            std::size_t evicted = 0;
            if (outstanding >= cap)
                evicted = static_cast<std::size_t>(
                    m_db.exec(
                            "DELETE FROM logins WHERE state IN (SELECT state FROM logins WHERE expires_at > $1::bigint "
                            "ORDER BY expires_at, state LIMIT $2::bigint)",
                            {num(now), num(static_cast<std::int64_t>(outstanding - cap + 1))})
                        .affected());
            m_db.exec("INSERT INTO logins (state, nonce, code_verifier, return_to, expires_at) "
                      "VALUES ($1, $2, $3, $4, $5::bigint)",
                      {login.state, login.nonce, login.code_verifier, login.return_to, num(login.expires_at)});
            tx.commit();
            return evicted;
        });
    }

    std::optional<LoginState> take_login(std::string_view state, std::int64_t now) override {
        return call([&]() -> std::optional<LoginState> {
            // One statement: the row is gone for every other caller the moment it is read.
            const Result r = m_db.exec(
                "DELETE FROM logins WHERE state = $1 RETURNING state, nonce, code_verifier, return_to, expires_at",
                {str(state)});
            if (r.rows() != 1) return std::nullopt;
            LoginState login{r.text(0, 0), r.text(0, 1), r.text(0, 2), r.text(0, 3), r.integer(0, 4)};
            if (login.expires_at <= now) return std::nullopt;
            return login;
        });
    }

    std::size_t count_logins(std::int64_t now) override {
        return call([&] {
            const Result r = m_db.exec("SELECT count(*) FROM logins WHERE expires_at > $1::bigint", {num(now)});
            return static_cast<std::size_t>(r.integer(0, 0));
        });
    }

    std::size_t delete_sessions_of(std::string_view unix_user) override {
        return call([&] {
            return static_cast<std::size_t>(
                m_db.exec("DELETE FROM sessions WHERE unix_user = $1", {str(unix_user)}).affected());
        });
    }

    std::size_t delete_sessions_of(std::string_view unix_user, const SessionsAudit& audit) override {
        return call([&] {
            pg::Transaction tx(m_db);
            const auto deleted = static_cast<std::size_t>(
                m_db.exec("DELETE FROM sessions WHERE unix_user = $1", {str(unix_user)}).affected());
            if (deleted > 0) insert_event(audit(deleted));
            tx.commit();
            return deleted;
        });
    }

    void enqueue(const std::string& target, const std::string& body, std::int64_t now) override {
        call([&] {
            m_db.exec("INSERT INTO notices (target, body, next_attempt_at) VALUES ($1, $2, $3::bigint)",
                      {target, body, num(now)});
        });
    }

    std::vector<Notice> claim_notices(std::int64_t now, std::size_t limit, int lease_s) override {
        if (lease_s <= 0) throw Error(ErrorCode::bad_input, "store", "a notice lease must be positive");
        return call([&] {
            const Result r = m_db.exec(
                "UPDATE notices SET claimed_until = $2::bigint, attempts = attempts + 1 WHERE id IN "
                "(SELECT id FROM notices WHERE state = 'pending' AND next_attempt_at <= $1::bigint "
                "AND claimed_until <= $1::bigint ORDER BY next_attempt_at, id LIMIT $3::bigint FOR UPDATE SKIP LOCKED) "
                "RETURNING id, target, body, attempts, next_attempt_at, last_error",
                {num(now), num(now + lease_s), limit_value(limit)});
            std::vector<Notice> out;
            for (int i = 0; i < r.rows(); ++i)
                out.push_back(Notice{r.integer(i, 0), r.text(i, 1), r.text(i, 2), static_cast<int>(r.integer(i, 3)),
                                     r.integer(i, 4), r.text(i, 5)});
            std::sort(out.begin(), out.end(), [](const Notice& a, const Notice& b) {
                return std::pair(a.next_attempt_at, a.id) < std::pair(b.next_attempt_at, b.id);
            });
            return out;
        });
    }

    void notice_delivered(std::int64_t id) override {
        call([&] {
            m_db.exec(
                "UPDATE notices SET state = 'delivered', claimed_until = 0 WHERE id = $1::bigint AND state = 'pending'",
                {num(id)});
        });
    }

    void notice_failed(std::int64_t id, std::int64_t next_attempt_at, const std::string& error) override {
        call([&] {
            m_db.exec("UPDATE notices SET next_attempt_at = $2::bigint, last_error = $3, claimed_until = 0 "
                      "WHERE id = $1::bigint AND state = 'pending'",
                      {num(id), num(next_attempt_at), error});
        });
    }

    void notice_dropped(std::int64_t id, const std::string& error) override {
        call([&] {
            m_db.exec("UPDATE notices SET state = 'dropped', last_error = $2, claimed_until = 0 "
                      "WHERE id = $1::bigint AND state = 'pending'",
                      {num(id), error});
        });
    }

    IngestResult ingest(const std::string& host, const std::vector<AuditEvent>& events, std::int64_t now,
                        const IngestOptions& options) override {
        check_ingest(host, events);
        check_ingest_options(options);
        // The partition of `now`'s month (the server's clock, never the host's word) is made
        // sure of once per month by each Store, in a short transaction of its own: the
        // housekeeping makes it two months ahead, this covers a server that skipped it (a clock
        // step, a housekeeping that failed). Should it still be missing, the INSERT fails below.
        if (const Month month = month_of(now); m_partition_month != month.name) {
            ensure_audit_partitions(now);
            m_partition_month = month.name;
        }
        return call([&] {
            pg::Transaction tx(m_db);
            // The host's chain row, locked until COMMIT: batches of one host arriving at two
            // replicas at once are serialised, and the second sees the first one's events.
            m_db.exec("INSERT INTO audit_chains (host) VALUES ($1) ON CONFLICT (host) DO NOTHING", {host});
            const Result row =
                m_db.exec("SELECT " JITGATE_CHAIN_COLUMNS " FROM audit_chains WHERE host = $1 FOR UPDATE", {host});
            if (row.rows() != 1)
                throw Error(ErrorCode::internal, "store", "a chain row vanished inside its transaction");
            const AuditChain before = read_chain(row, 0);
            AuditChain chain = before;
            bool known = before.last_seq > 0;
            // Never before the host's last batch (a replica with a slow clock, a clock stepped
            // back): the months that retention exports and prunes by received time keep each
            // host's events in chain order. That month's partition exists: the batch before it
            // was stored there.
            const std::int64_t received = std::max(now, before.last_seen);
            IngestResult result;
            // A batch is three statements whatever its size (a round trip per event was the
            // whole cost of ingest: docs/PERFORMANCE.md): the batch's event_ids already stored,
            // then the chain checks here, then one INSERT of every new event from a JSON array.
            nlohmann::json ids = nlohmann::json::array();
            for (const AuditEvent& e : events) {
                for (const std::string* text :
                     {&e.event_id, &e.hash, &e.prev_hash, &e.time, &e.type, &e.request_id, &e.line, &e.user})
                    pg::require_storable(*text);
                ids.push_back(e.event_id);
            }
            const Result stored = m_db.exec("SELECT event_id, line FROM audit_events WHERE host = $1 AND event_id IN "
                                            "(SELECT json_array_elements_text($2::json))",
                                            {host, ids.dump()});
            std::map<std::string, std::string> lines; // event_id -> line, stored or new in this batch
            for (int i = 0; i < stored.rows(); ++i) lines.emplace(stored.text(i, 0), stored.text(i, 1));
            nlohmann::json fresh = nlohmann::json::array();
            const std::vector<bool> pruned = provably_pruned(before, events);
            std::size_t index = 0;
            for (const AuditEvent& e : events) {
                if (pruned[index++]) {
                    ++result.duplicates; // held and pruned after its month was archived
                    continue;
                }
                const auto [it, added] = lines.emplace(e.event_id, e.line);
                if (!added) {
                    if (it->second != e.line) {
                        // The transaction rolls back: nothing of the batch is stored.
                        IngestResult refused;
                        refused.conflict_event_id = e.event_id;
                        refused.chain = before;
                        return refused;
                    }
                    ++result.duplicates;
                    continue;
                }
                fresh.push_back({{"event_id", e.event_id},
                                 {"seq", e.seq},
                                 {"hash", e.hash},
                                 {"prev_hash", e.prev_hash},
                                 {"time", e.time},
                                 {"type", e.type},
                                 {"request_id", e.request_id},
                                 {"line", e.line},
                                 {"user_name", e.user}});
                ++result.added;
                if (e.type == k_break_glass_type) {
                    open_review(host, e, now, options);
                    ++result.reviews_opened;
                }
                Event event = advance_chain(chain, known, e, now);
                known = true;
                if (!event.type.empty()) result.chain_events.push_back(std::move(event));
            }
            if (!fresh.empty()) {
                // WITH ORDINALITY ... ORDER BY: ids are given in batch order (arrival order).
                // No ON CONFLICT: (host, event_id) has no unique index on the partitioned table
                // (migrations.cpp, version 6); the chain row's lock and the read above keep it
                // unique. A month without a partition fails here (insert_into_partition).
                const Result inserted = insert_into_partition(received, [&] {
                    return m_db.exec(
                        "INSERT INTO audit_events (host, event_id, seq, hash, prev_hash, time, type, request_id, line, "
                        "received_at, user_name) SELECT $1, x.event_id, x.seq, x.hash, x.prev_hash, x.time, x.type, "
                        "x.request_id, x.line, $2::bigint, x.user_name FROM ROWS FROM (json_to_recordset($3::json) AS "
                        "(event_id text, seq bigint, hash text, prev_hash text, time text, type text, request_id text, "
                        "line text, user_name text)) WITH ORDINALITY AS x(event_id, seq, hash, prev_hash, time, type, "
                        "request_id, line, user_name, ord) ORDER BY x.ord",
                        {host, num(received), fresh.dump()});
                });
                if (inserted.affected() != static_cast<std::int64_t>(fresh.size()))
                    throw Error(ErrorCode::internal, "store",
                                "ingest: another writer stored events of the host inside its locked transaction");
            }
            for (const Event& event : result.chain_events) insert_event(event);
            chain.last_seen = received;
            chain.reported_seq = options.reported_seq;
            if (options.reported_seq > 0) chain.reported_at = received;
            m_db.exec("UPDATE audit_chains SET last_seq = $2::bigint, last_hash = $3, last_event_id = $4, status = $5, "
                      "problem = $6, problem_seq = $7::bigint, problem_at = $8::bigint, last_seen = $9::bigint, "
                      "events = $10::bigint, restarts = $11::bigint, restart_at = $12::bigint, "
                      "restart_previous_seq = $13::bigint, restart_previous_hash = $14, reported_seq = $15::bigint, "
                      "reported_at = $16::bigint WHERE host = $1",
                      {host, num(chain.last_seq), chain.last_hash, chain.last_event_id, chain.broken ? "broken" : "ok",
                       chain.problem, num(chain.problem_seq), num(chain.problem_at), num(chain.last_seen),
                       num(chain.events), num(chain.restarts), num(chain.restart_at), num(chain.restart_previous_seq),
                       chain.restart_previous_hash, num(chain.reported_seq), num(chain.reported_at)});
            tx.commit();
            result.stored = true;
            result.chain = std::move(chain);
            return result;
        });
    }

    std::optional<AuditChain> mark_chain_broken(const std::string& host, const std::string& problem, std::int64_t seq,
                                                std::int64_t now, const Event& event) override {
        check_mark_broken(host, problem);
        return call([&]() -> std::optional<AuditChain> {
            pg::Transaction tx(m_db);
            // FOR UPDATE: serialised with ingest() of the same host on any replica.
            const Result row = m_db.exec("SELECT " JITGATE_CHAIN_COLUMNS
                                         " FROM audit_chains WHERE host = $1 AND last_seq > 0 FOR UPDATE",
                                         {host});
            std::optional<AuditChain> chain;
            if (row.rows() == 1) chain = read_chain(row, 0);
            if (chain && mark_broken(*chain, problem, seq, now))
                m_db.exec("UPDATE audit_chains SET status = 'broken', problem = $2, problem_seq = $3::bigint, "
                          "problem_at = $4::bigint WHERE host = $1",
                          {host, chain->problem, num(chain->problem_seq), num(chain->problem_at)});
            insert_event(event);
            tx.commit();
            return chain;
        });
    }

    std::optional<AuditChain> audit_chain(std::string_view host) override {
        return call([&]() -> std::optional<AuditChain> {
            const Result row = m_db.exec(
                "SELECT " JITGATE_CHAIN_COLUMNS " FROM audit_chains WHERE host = $1 AND last_seq > 0", {str(host)});
            if (row.rows() != 1) return std::nullopt;
            return read_chain(row, 0);
        });
    }

    std::vector<AuditEvent> audit_events(std::string_view host, std::int64_t from_seq, std::int64_t to_seq,
                                         std::size_t limit) override {
        return call([&] {
            const Result r =
                m_db.exec("SELECT event_id, seq, hash, prev_hash, time, type, request_id, line, "
                          "user_name FROM audit_events WHERE host = $1 AND seq BETWEEN $2::bigint AND $3::bigint "
                          "ORDER BY id LIMIT $4::bigint",
                          {str(host), num(from_seq), num(to_seq), limit_value(limit)});
            std::vector<AuditEvent> out;
            for (int i = 0; i < r.rows(); ++i)
                out.push_back(AuditEvent{r.text(i, 0), r.integer(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4),
                                         r.text(i, 5), r.text(i, 6), r.text(i, 7), r.text(i, 8)});
            return out;
        });
    }

    // --- break-glass reviews ---

    std::vector<BreakGlassReview> break_glass_reviews(ReviewList which, const std::optional<ReviewKey>& after,
                                                      std::size_t limit) override {
        return call([&] {
            // Keyset as in the SQLite store.
            const Result r = m_db.exec(
                which == ReviewList::open
                    ? "SELECT " JITGATE_REVIEW_COLUMNS " FROM break_glass_reviews WHERE status = 'open' "
                      "AND ($1::integer = 0 OR (due_at, host, event_id) > ($2::bigint, $3, $4)) "
                      "ORDER BY due_at, host, event_id LIMIT $5::bigint"
                    : "SELECT " JITGATE_REVIEW_COLUMNS " FROM break_glass_reviews WHERE status = 'closed' "
                      "AND ($1::integer = 0 OR closed_at < $2::bigint OR (closed_at = $2::bigint AND "
                      "(host, event_id) > ($3, $4))) ORDER BY closed_at DESC, host, event_id LIMIT $5::bigint",
                {after ? "1" : "0", num(after ? after->at : 0), after ? after->host : std::string(),
                 after ? after->event_id : std::string(), limit_value(limit)});
            std::vector<BreakGlassReview> out;
            for (int i = 0; i < r.rows(); ++i) out.push_back(read_review(r, i));
            return out;
        });
    }

    std::optional<BreakGlassReview> find_break_glass_review(std::string_view host, std::string_view event_id) override {
        return call([&] { return load_review(host, event_id, false); });
    }

    CloseResult close_break_glass_review(std::string_view host, std::string_view event_id, const std::string& reviewer,
                                         const std::string& reviewer_identity, const std::string& note,
                                         std::int64_t now, const Event& event) override {
        check_close(reviewer, note);
        return call([&] {
            pg::Transaction tx(m_db);
            CloseResult result;
            // Locked until COMMIT: a second reviewer waits, then sees it closed.
            auto current = load_review(host, event_id, true);
            if (!current) return result;
            result.review = *current;
            if (current->closed) {
                result.outcome = CloseOutcome::already_closed;
                return result;
            }
            const Result line = m_db.exec("SELECT line FROM audit_events WHERE host = $1 AND event_id = $2",
                                          {str(host), str(event_id)});
            if (own_break_glass_use(reviewer, current->user_name, line.rows() == 1 ? line.text(0, 0) : std::string())) {
                result.outcome = CloseOutcome::own_use;
                return result;
            }
            const Result updated = m_db.exec(
                "UPDATE break_glass_reviews SET status = 'closed', reviewer = $3, reviewer_identity = $4, note = $5, "
                "closed_at = $6::bigint WHERE host = $1 AND event_id = $2 AND status = 'open' "
                "RETURNING " JITGATE_REVIEW_COLUMNS,
                {str(host), str(event_id), reviewer, reviewer_identity, note, num(now)});
            if (updated.rows() != 1)
                throw Error(ErrorCode::internal, "store", "a review changed inside its transaction");
            insert_event(event);
            result.outcome = CloseOutcome::closed;
            result.review = read_review(updated, 0);
            tx.commit();
            return result;
        });
    }

    std::vector<BreakGlassReview> claim_overdue_break_glass_reviews(std::int64_t now, std::size_t limit,
                                                                    const OverdueAudit& audit) override {
        return call([&] {
            pg::Transaction tx(m_db);
            // Rows another replica is claiming are skipped (SKIP LOCKED); the condition on
            // overdue_alerted_at is checked again on the locked row, so each is claimed once.
            const Result r = m_db.exec(
                "UPDATE break_glass_reviews SET overdue_alerted_at = $1::bigint WHERE (host, event_id) IN "
                "(SELECT host, event_id FROM break_glass_reviews WHERE status = 'open' AND due_at <= $1::bigint "
                "AND overdue_alerted_at = 0 ORDER BY due_at, host, event_id LIMIT $2::bigint FOR UPDATE SKIP LOCKED) "
                "AND status = 'open' AND overdue_alerted_at = 0 RETURNING " JITGATE_REVIEW_COLUMNS,
                {num(now), limit_value(limit)});
            std::vector<BreakGlassReview> out;
            for (int i = 0; i < r.rows(); ++i) out.push_back(read_review(r, i));
            std::sort(out.begin(), out.end(), [](const BreakGlassReview& a, const BreakGlassReview& b) {
                return std::tie(a.due_at, a.host, a.event_id) < std::tie(b.due_at, b.host, b.event_id);
            });
            for (const BreakGlassReview& review : out) insert_event(audit(review));
            tx.commit();
            return out;
        });
    }

    std::vector<AuditHostStatus> audit_hosts(std::string_view after_host, std::size_t limit) override {
        return call([&] {
            const Result r = m_db.exec(
                "SELECT " JITGATE_CHAIN_COLUMNS ", (SELECT count(*) FROM break_glass_reviews r "
                "WHERE r.host = audit_chains.host AND r.status = 'open'), coalesce((SELECT e.time FROM audit_events e "
                "WHERE e.host = audit_chains.host AND e.event_id = audit_chains.last_event_id), '') FROM audit_chains "
                "WHERE host > $1 AND last_seq > 0 ORDER BY host LIMIT $2::bigint",
                {str(after_host), limit_value(limit)});
            std::vector<AuditHostStatus> out;
            for (int i = 0; i < r.rows(); ++i)
                out.push_back(
                    AuditHostStatus{read_chain(r, i), r.text(i, k_chain_columns + 1), r.integer(i, k_chain_columns)});
            return out;
        });
    }

    // --- reading for auditors ---
    // SECURITY NOTE: the period compares `time` in the column's collation, the one its index
    // and the ORDER BY use, so paging never skips a row whatever the collation; for the
    // fixed-width RFC 3339 times hosts write, every collation orders them as text does.
    std::vector<StoredAuditEvent> audit_events_in_period(const std::string& from_time, const std::string& to_time,
                                                         const std::string& after_time, std::int64_t after_id,
                                                         std::size_t limit) override {
        return call([&] {
            return read_stored_events_of(
                m_db.exec("SELECT id, host, received_at, " JITGATE_AUDIT_EVENT_COLUMNS
                          " FROM audit_events WHERE time >= $1 AND time < $2 "
                          "AND time >= $3 AND (time, id) > ($3, $4::bigint) ORDER BY time, id LIMIT $5::bigint",
                          {from_time, to_time, after_time, num(after_id), limit_value(limit)}));
        });
    }

    std::vector<StoredAuditEvent> audit_events_by_seq(std::string_view host, std::int64_t after_seq,
                                                      std::int64_t after_id, std::int64_t to_seq,
                                                      std::size_t limit) override {
        return call([&] {
            return read_stored_events_of(
                m_db.exec("SELECT id, host, received_at, " JITGATE_AUDIT_EVENT_COLUMNS
                          " FROM audit_events WHERE host = $1 AND seq <= $4::bigint "
                          "AND seq >= $2::bigint AND (seq, id) > ($2::bigint, $3::bigint) ORDER BY seq, id "
                          "LIMIT $5::bigint",
                          {str(host), num(after_seq), num(after_id), num(to_seq), limit_value(limit)}));
        });
    }

    std::vector<StoredEvent> events_in_period(std::int64_t from, std::int64_t to, std::int64_t after_at,
                                              std::int64_t after_id, std::size_t limit) override {
        return call([&] {
            const Result r =
                m_db.exec("SELECT id, at, type, host, request_id, actor, identity, source_address, detail FROM events "
                          "WHERE at >= $1::bigint AND at < $2::bigint AND at >= $3::bigint AND (at, id) > ($3::bigint, "
                          "$4::bigint) ORDER BY at, id LIMIT $5::bigint",
                          {num(from), num(to), num(after_at), num(after_id), limit_value(limit)});
            std::vector<StoredEvent> out;
            for (int i = 0; i < r.rows(); ++i)
                out.push_back(
                    StoredEvent{r.integer(i, 0), Event{r.integer(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4),
                                                       r.text(i, 5), r.text(i, 6), r.text(i, 7), r.text(i, 8)}});
            return out;
        });
    }

    std::optional<StoredAuditEvent> find_audit_event(std::string_view host, std::string_view event_id) override {
        return call([&]() -> std::optional<StoredAuditEvent> {
            const Result r = m_db.exec("SELECT id, host, received_at, " JITGATE_AUDIT_EVENT_COLUMNS
                                       " FROM audit_events WHERE host = $1 AND event_id = $2",
                                       {str(host), str(event_id)});
            if (r.rows() != 1) return std::nullopt;
            return read_stored_event(r, 0);
        });
    }

    std::vector<StoredAuditEvent> search_audit_events(const AuditSearch& s) override {
        return call([&] {
            const Params params{s.host,
                                s.user,
                                s.type,
                                s.from,
                                s.to,
                                num(s.after.value_or(s.oldest_first ? 0 : std::numeric_limits<std::int64_t>::max())),
                                limit_value(s.limit)};
            // One literal statement per order; an empty filter matches everything.
            const Result r = m_db.exec(
                s.oldest_first
                    ? "SELECT id, host, received_at, " JITGATE_AUDIT_EVENT_COLUMNS " FROM audit_events "
                      "WHERE ($1::text = '' OR host = $1) AND ($2::text = '' OR user_name = $2) AND ($3::text "
                      "= '' OR "
                      "type = $3) "
                      "AND ($4::text = '' OR time >= $4) AND ($5::text = '' OR time < $5) AND id > $6::bigint "
                      "ORDER BY id LIMIT $7::bigint"
                    : "SELECT id, host, received_at, " JITGATE_AUDIT_EVENT_COLUMNS " FROM audit_events "
                      "WHERE ($1::text = '' OR host = $1) AND ($2::text = '' OR user_name = $2) AND ($3::text "
                      "= '' OR "
                      "type = $3) "
                      "AND ($4::text = '' OR time >= $4) AND ($5::text = '' OR time < $5) AND id < $6::bigint "
                      "ORDER BY id DESC LIMIT $7::bigint",
                params);
            std::vector<StoredAuditEvent> out;
            for (int i = 0; i < r.rows(); ++i) out.push_back(read_stored_event(r, i));
            return out;
        });
    }

    // --- end of break-glass reviews ---

    std::vector<AuditChain> audit_chains_after(std::string_view after_host, std::size_t limit) override {
        return call([&] {
            const Result r = m_db.exec("SELECT " JITGATE_CHAIN_COLUMNS " FROM audit_chains WHERE host > $1 AND "
                                       "last_seq > 0 ORDER BY host LIMIT $2::bigint",
                                       {str(after_host), limit_value(limit)});
            std::vector<AuditChain> out;
            for (int i = 0; i < r.rows(); ++i) out.push_back(read_chain(r, i));
            return out;
        });
    }

    // --- retention ---

    void ensure_audit_partitions(std::int64_t now) override {
        call([&] {
            pg::Transaction tx(m_db);
            m_db.exec("SELECT pg_advisory_xact_lock($1::bigint)", {k_partitions_lock});
            Month m = month_of(now);
            std::string pruned; // a month of these already pruned: its partition is never made again
            for (int i = 0; i < 3; ++i, m = next_month(m)) {
                if (m_db.exec("SELECT 1 FROM audit_archives WHERE month = $1 AND pruned_at <> 0", {m.name}).rows() >
                    0) {
                    if (pruned.empty()) pruned = m.name;
                    continue;
                }
                m_db.exec("SELECT jitgate_audit_partition($1::bigint)", {num(m.from)});
            }
            tx.commit();
            if (!pruned.empty()) throw_pruned_month(now, pruned);
        });
    }

    std::vector<StoredAuditEvent> audit_events_received(std::int64_t from, std::int64_t to, std::int64_t after_id,
                                                        std::size_t limit) override {
        return call([&] {
            // The month's partition only (pruned by received_at), in its primary key's order.
            return read_stored_events_of(
                m_db.exec("SELECT id, host, received_at, " JITGATE_AUDIT_EVENT_COLUMNS
                          " FROM audit_events WHERE received_at >= $1::bigint AND received_at < $2::bigint "
                          "AND id > $3::bigint ORDER BY id LIMIT $4::bigint",
                          {num(from), num(to), num(after_id), limit_value(limit)}));
        });
    }

    std::optional<std::int64_t> oldest_audit_received() override {
        return call([&]() -> std::optional<std::int64_t> {
            const Result r = m_db.exec("SELECT min(received_at) FROM audit_events");
            if (r.rows() != 1 || r.text(0, 0).empty()) return std::nullopt;
            return r.integer(0, 0);
        });
    }

    std::optional<std::int64_t> newest_audit_received() override {
        return call([&]() -> std::optional<std::int64_t> {
            const Result r = m_db.exec("SELECT max(received_at) FROM audit_events");
            if (r.rows() != 1 || r.text(0, 0).empty()) return std::nullopt;
            return r.integer(0, 0);
        });
    }

    std::optional<AuditArchive> audit_archive(std::string_view month) override {
        return call([&]() -> std::optional<AuditArchive> {
            const Result r =
                m_db.exec("SELECT " JITGATE_ARCHIVE_COLUMNS " FROM audit_archives WHERE month = $1", {str(month)});
            if (r.rows() != 1) return std::nullopt;
            return read_archive(r, 0);
        });
    }

    std::vector<AuditArchive> audit_archives() override {
        return call([&] {
            const Result r = m_db.exec("SELECT " JITGATE_ARCHIVE_COLUMNS " FROM audit_archives ORDER BY month");
            std::vector<AuditArchive> out;
            for (int i = 0; i < r.rows(); ++i) out.push_back(read_archive(r, i));
            return out;
        });
    }

    AuditArchive record_audit_archive(const AuditArchive& a, const Event& event) override {
        return call([&] {
            pg::Transaction tx(m_db);
            const Result inserted =
                m_db.exec("INSERT INTO audit_archives (" JITGATE_ARCHIVE_COLUMNS ") VALUES ($1, $2::bigint, "
                          "$3::bigint, $4::bigint, $5::bigint, $6, $7::bigint, $8, 0) ON CONFLICT (month) DO NOTHING",
                          {a.month, num(a.received_from), num(a.received_to), num(a.events), num(a.hosts),
                           a.manifest_sha256, num(a.exported_at), a.exported_by});
            if (inserted.affected() == 1) insert_event(event);
            const Result r =
                m_db.exec("SELECT " JITGATE_ARCHIVE_COLUMNS " FROM audit_archives WHERE month = $1", {a.month});
            if (r.rows() != 1) throw Error(ErrorCode::internal, "store", "an archive record vanished");
            AuditArchive stored = read_archive(r, 0);
            tx.commit();
            return stored;
        });
    }

    PruneResult prune_audit_month(const AuditArchive& a, std::int64_t now, const Event& event,
                                  const ManifestOf& manifest_sha256) override {
        return call([&] {
            pg::Transaction tx(m_db);
            // A lock the prune cannot get within 10 s (a long report reading the month, say) fails
            // the prune, rather than queueing every batch of the fleet behind it.
            m_db.exec("SET LOCAL lock_timeout = '10s'");
            try {
                m_db.exec("SELECT pg_advisory_xact_lock($1::bigint)", {k_partitions_lock});
                // The month's partition closed to writers and readers until COMMIT: a batch
                // committed after the count below would otherwise be dropped with the partition.
                // The statement is built by format('%I') from the month's start only.
                const Result lock = m_db.exec(
                    "SELECT format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', c.relname) FROM pg_class c JOIN "
                    "pg_inherits i ON i.inhrelid = c.oid WHERE i.inhparent = to_regclass('audit_events') AND c.oid = "
                    "to_regclass(quote_ident('audit_events_y' || to_char(date_trunc('month', to_timestamp($1::bigint) "
                    "AT TIME ZONE 'UTC'), 'YYYY') || 'm' || to_char(date_trunc('month', to_timestamp($1::bigint) AT "
                    "TIME ZONE 'UTC'), 'MM')))",
                    {num(a.received_from)});
                if (lock.rows() == 1) m_db.exec(lock.text(0, 0).c_str());
            } catch (const pg::ConnectionLost&) {
                throw;
            } catch (const Error& e) {
                throw Error(ErrorCode::io, "prune " + a.month,
                            std::string("cannot lock the month within 10 s (lock_timeout; a long report or another "
                                        "prune may be reading it): nothing was deleted; run the prune again later (") +
                                e.what() + ")");
            }
            const Result r = m_db.exec(
                "SELECT " JITGATE_ARCHIVE_COLUMNS " FROM audit_archives WHERE month = $1 FOR UPDATE", {a.month});
            check_prunable(r.rows() == 1 ? std::optional<AuditArchive>(read_archive(r, 0)) : std::nullopt, a);
            const std::int64_t count =
                m_db.exec("SELECT count(*) FROM audit_events WHERE received_at >= $1::bigint AND received_at < "
                          "$2::bigint",
                          {num(a.received_from), num(a.received_to)})
                    .integer(0, 0);
            check_prune_count(a, count);
            // The manifest again, under the lock (the same connection and transaction).
            check_prune_manifest(
                a, manifest_sha256([&](std::int64_t after_id, std::size_t limit) {
                    return read_stored_events_of(
                        m_db.exec("SELECT id, host, received_at, " JITGATE_AUDIT_EVENT_COLUMNS
                                  " FROM audit_events WHERE received_at >= $1::bigint AND received_at < "
                                  "$2::bigint AND id > $3::bigint ORDER BY id LIMIT $4::bigint",
                                  {num(a.received_from), num(a.received_to), num(after_id), limit_value(limit)}));
                }));
            // Each host's last event of the month in arrival order becomes its anchor.
            const Result anchors = m_db.exec(
                "UPDATE audit_chains c SET pruned_through_seq = l.seq, pruned_through_hash = l.hash FROM "
                "(SELECT DISTINCT ON (host) host, seq, hash FROM audit_events WHERE received_at >= $1::bigint "
                "AND received_at < $2::bigint ORDER BY host, id DESC) AS l WHERE c.host = l.host",
                {num(a.received_from), num(a.received_to)});
            try {
                // DETACH locks audit_events itself: a long reader of any month holds it up.
                m_db.exec("SELECT jitgate_drop_audit_partition($1::bigint)", {num(a.received_from)});
            } catch (const pg::ConnectionLost&) {
                throw;
            } catch (const Error& e) {
                throw Error(ErrorCode::io, "prune " + a.month,
                            std::string("cannot detach the month's partition (a lock not had within 10 s, "
                                        "lock_timeout, or the error below): nothing was deleted; run the prune "
                                        "again later (") +
                                e.what() + ")");
            }
            // A partition with other bounds (made by hand) would leave rows: refuse rather than
            // pretend.
            const std::int64_t left =
                m_db.exec("SELECT count(*) FROM audit_events WHERE received_at >= $1::bigint AND received_at < "
                          "$2::bigint",
                          {num(a.received_from), num(a.received_to)})
                    .integer(0, 0);
            if (left != 0)
                throw Error(ErrorCode::internal, "store",
                            "prune " + a.month + ": the month's events are not in one partition of their own");
            m_db.exec("UPDATE audit_archives SET pruned_at = $2::bigint WHERE month = $1", {a.month, num(now)});
            insert_event(event);
            tx.commit();
            return PruneResult{count, anchors.affected()};
        });
    }

    int wake_fd() override {
        if (!m_listen) m_listen = listen();
        return PQsocket(m_listen->handle());
    }

    std::vector<std::pair<std::string, std::string>> take_wakeups() override {
        std::vector<std::pair<std::string, std::string>> out;
        if (!m_listen) return out;
        if (PQconsumeInput(m_listen->handle()) == 0 || m_listen->broken()) {
            // Notifications sent while the connection was down are lost: report the loss as
            // ("", "") so the caller re-checks everything it waits for, and listen again on a
            // new connection (wake_fd() changes).
            m_listen = listen();
            out.emplace_back();
            return out;
        }
        // Our own changes come back to us too; the caller already knows them.
        const int own_pid = m_db.backend_pid();
        std::set<std::pair<std::string, std::string>> seen;
        while (PGnotify* n = PQnotifies(m_listen->handle())) {
            const std::string payload = n->extra != nullptr ? n->extra : "";
            const int from = n->be_pid;
            PQfreemem(n);
            if (from == own_pid) continue;
            // '<host> <id>': a request id never holds a space (protocol §3), so the last
            // space separates them even if a host name held one.
            const auto space = payload.rfind(' ');
            if (space == std::string::npos) continue;
            std::pair<std::string, std::string> key{payload.substr(0, space), payload.substr(space + 1)};
            if (seen.insert(key).second) out.push_back(std::move(key));
        }
        return out;
    }

private:
    // Runs `body`, reconnecting once if the connection is found broken or breaks before COMMIT.
    template <class F>
    auto call(F&& body) -> decltype(body()) {
        bool reconnected = false;
        if (m_db.broken()) {
            m_db.reconnect();
            reconnected = true;
        }
        for (;;) {
            try {
                return body();
            } catch (const pg::ConnectionLost&) {
                if (reconnected) throw;
            }
            m_db.reconnect();
            reconnected = true;
        }
    }

    std::unique_ptr<pg::Connection> listen() {
        auto connection = std::make_unique<pg::Connection>(m_conninfo);
        connection->exec("LISTEN jitgate_requests");
        return connection;
    }

    void notify(std::string_view host, std::string_view id) {
        m_db.exec("SELECT pg_notify('jitgate_requests', $1)", {str(host) + ' ' + str(id)});
    }

    std::optional<Request> load(std::string_view host, std::string_view id, bool lock) {
        const Result r =
            m_db.exec(lock ? "SELECT " JITGATE_REQUEST_COLUMNS " FROM requests WHERE host = $1 AND id = $2 FOR UPDATE"
                           : "SELECT " JITGATE_REQUEST_COLUMNS " FROM requests WHERE host = $1 AND id = $2",
                      {str(host), str(id)});
        if (r.rows() != 1) return std::nullopt;
        Request request = read_request(r, 0);
        request.approvals = load_approvals(host, id);
        return request;
    }

    static Revocation read_revocation(const Result& r, int i) {
        return Revocation{r.integer(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4),
                          r.text(i, 5),    r.text(i, 6), r.text(i, 7), r.text(i, 8), r.integer(i, 9)};
    }

    std::optional<Revocation> load_revocation(std::string_view host, std::string_view id) {
        const Result r =
            m_db.exec("SELECT " JITGATE_REVOCATION_COLUMNS " FROM revocations WHERE host = $1 AND request_id = $2",
                      {str(host), str(id)});
        if (r.rows() != 1) return std::nullopt;
        return read_revocation(r, 0);
    }

    Request load_or_fail(std::string_view host, std::string_view id) {
        auto request = load(host, id, false);
        if (!request) throw Error(ErrorCode::internal, "store", "a request vanished inside its transaction");
        return std::move(*request);
    }

    std::vector<Request> read_with_approvals(const Result& rows) {
        std::vector<Request> out;
        for (int i = 0; i < rows.rows(); ++i) out.push_back(read_request(rows, i));
        for (Request& r : out) r.approvals = load_approvals(r.host, r.id);
        return out;
    }

    std::vector<Approval> load_approvals(std::string_view host, std::string_view id) {
        const Result r =
            m_db.exec("SELECT " JITGATE_APPROVAL_COLUMNS " FROM approvals WHERE host = $1 AND id = $2 ORDER BY seq",
                      {str(host), str(id)});
        std::vector<Approval> out;
        for (int i = 0; i < r.rows(); ++i)
            out.push_back(
                Approval{r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4), r.integer(i, 5)});
        return out;
    }

    // --- break-glass reviews ---
    void open_review(const std::string& host, const AuditEvent& e, std::int64_t now, const IngestOptions& options) {
        m_db.exec("INSERT INTO break_glass_reviews (host, event_id, user_name, time, opened_at, due_at) "
                  "VALUES ($1, $2, $3, $4, $5::bigint, $6::bigint) ON CONFLICT (host, event_id) DO NOTHING",
                  {host, e.event_id, e.user, e.time, num(now), num(now + options.break_glass_review_within_s)});
    }

    static BreakGlassReview read_review(const Result& q, int row) {
        BreakGlassReview r;
        r.host = q.text(row, 0);
        r.event_id = q.text(row, 1);
        r.user_name = q.text(row, 2);
        r.time = q.text(row, 3);
        r.opened_at = q.integer(row, 4);
        r.due_at = q.integer(row, 5);
        r.closed = review_closed_from_column(q.text(row, 6));
        r.reviewer = q.text(row, 7);
        r.reviewer_identity = q.text(row, 8);
        r.note = q.text(row, 9);
        r.closed_at = q.integer(row, 10);
        r.overdue_alerted_at = q.integer(row, 11);
        return r;
    }

    // id, host, received_at, then JITGATE_AUDIT_EVENT_COLUMNS.
    static StoredAuditEvent read_stored_event(const Result& r, int i) {
        return StoredAuditEvent{r.integer(i, 0), r.text(i, 1), r.integer(i, 2),
                                AuditEvent{r.text(i, 3), r.integer(i, 4), r.text(i, 5), r.text(i, 6), r.text(i, 7),
                                           r.text(i, 8), r.text(i, 9), r.text(i, 10), r.text(i, 11)}};
    }
    static std::vector<StoredAuditEvent> read_stored_events_of(const Result& r) {
        std::vector<StoredAuditEvent> out;
        for (int i = 0; i < r.rows(); ++i) out.push_back(read_stored_event(r, i));
        return out;
    }

    std::optional<BreakGlassReview> load_review(std::string_view host, std::string_view event_id, bool lock) {
        const Result r = m_db.exec(
            lock ? "SELECT " JITGATE_REVIEW_COLUMNS " FROM break_glass_reviews WHERE host = $1 AND event_id = $2 "
                   "FOR UPDATE"
                 : "SELECT " JITGATE_REVIEW_COLUMNS " FROM break_glass_reviews WHERE host = $1 AND event_id = $2",
            {str(host), str(event_id)});
        if (r.rows() != 1) return std::nullopt;
        return read_review(r, 0);
    }
    // --- end of break-glass reviews ---

    static AuditArchive read_archive(const Result& r, int row) {
        return AuditArchive{r.text(row, 0), r.integer(row, 1), r.integer(row, 2), r.integer(row, 3), r.integer(row, 4),
                            r.text(row, 5), r.integer(row, 6), r.text(row, 7),    r.integer(row, 8)};
    }

    // Runs `insert` (an INSERT into audit_events at received_at `now`); a month without a
    // partition is an Error(io) that says so (the batch stored nothing; the host retries).
    template <class F>
    Result insert_into_partition(std::int64_t now, F&& insert) {
        try {
            return insert();
        } catch (const pg::ConnectionLost&) {
            throw;
        } catch (const Error& e) {
            if (std::string_view(e.what()).find("no partition") == std::string_view::npos) throw;
            throw Error(ErrorCode::io, m_db.where(),
                        "audit_events has no partition for " + month_of(now).name +
                            " (the server creates the current and next two months at start and hourly; "
                            "the batch was not stored and the host will send it again): " +
                            e.what());
        }
    }

    void insert_event(const Event& e) {
        m_db.exec("INSERT INTO events (at, type, host, request_id, actor, identity, source_address, detail) "
                  "VALUES ($1::bigint, $2, $3, $4, $5, $6, $7, $8)",
                  {num(e.at), e.type, e.host, e.request_id, e.actor, e.identity, e.source_address,
                   e.detail.empty() ? std::string("{}") : e.detail});
    }

    std::string m_conninfo;
    pg::Connection m_db;
    std::unique_ptr<pg::Connection> m_listen; // LISTEN jitgate_requests; opened by the first wake_fd()
    std::string m_partition_month;            // the month ingest() last made sure has its partition
};

} // namespace

std::unique_ptr<Store> open_postgres(const std::string& conninfo) {
    return std::make_unique<PostgresStore>(conninfo);
}

} // namespace jitgate::server::store
