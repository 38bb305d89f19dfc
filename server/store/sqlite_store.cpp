// server/store/sqlite_store.cpp — the Store on SQLite: one file, one node (the default).
//
// Every write runs in BEGIN IMMEDIATE, so the write lock is taken before the first read of a
// read-check-write sequence (approve, finish, claim_notices): two connections (the loop thread
// and the notifier thread, or another process) are serialised by SQLite and a check can never
// go stale before its write. The busy timeout (sqlite_db.cpp) makes the second one wait.
#include "server/store/rows.hpp"
#include "server/store/schema.hpp"
#include "server/store/sqlite_db.hpp"
#include "server/store/sqlite_search.hpp"
#include "server/store/store.hpp"

#include <jitgate/error.hpp>

#include <algorithm>
#include <limits>
#include <tuple>
#include <type_traits>

namespace jitgate::server::store {

namespace {

using sqlite::Query;
using sqlite::Transaction;

std::int64_t limit_value(std::size_t limit) {
    return static_cast<std::int64_t>(std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max()));
}

Request read_request(const Query& q) {
    Request r;
    r.host = q.text(c_host);
    r.id = q.text(c_id);
    r.body = q.text(c_body);
    r.requester = q.text(c_requester);
    r.requester_login = q.text(c_requester_login);
    r.rule = q.text(c_rule);
    r.status = status_from_column(q.text(c_status));
    r.approvals_needed = static_cast<int>(q.integer(c_approvals_needed));
    r.approver_groups = list_from_json(q.text(c_approver_groups));
    r.created_at = q.integer(c_created_at);
    r.expires_at = q.integer(c_expires_at);
    r.decided_at = q.integer(c_decided_at);
    r.grant = q.text(c_grant);
    r.grant_id = q.text(c_grant_id);
    r.decided_by = q.text(c_decided_by);
    r.decision_reason = q.text(c_decision_reason);
    r.ticket_check = q.text(c_ticket_check);
    return r;
}

class SqliteStore final : public Store {
public:
    explicit SqliteStore(const std::string& path) : m_db(path, false) {
        require_current_schema(schema_version(m_db), "sqlite " + path);
    }

    CreateResult create(const Request& request, const Event& filed, std::size_t max_pending) override {
        check_new_request(request);
        // BEGIN IMMEDIATE: no other writer between the count and the insert.
        Transaction tx(m_db, Transaction::Kind::write);
        if (max_pending > 0) {
            if (auto existing = load(request.host, request.id)) {
                CreateResult result{false, std::move(*existing)};
                tx.commit();
                return result;
            }
            std::size_t pending = 0;
            {
                // Counted up to the limit only: the work per filing is bounded by the limit, not
                // by how many requests the host has pending (index requests_host_pending).
                Query q(m_db, "SELECT count(*) FROM (SELECT 1 FROM requests WHERE host = ?1 AND status = 'pending' "
                              "AND expires_at > ?2 LIMIT ?3)");
                q.text(1, request.host)
                    .integer(2, request.created_at)
                    .integer(3, static_cast<std::int64_t>(max_pending));
                if (q.step()) pending = static_cast<std::size_t>(q.integer(0));
            }
            if (pending >= max_pending) {
                CreateResult result;
                result.over_limit = true;
                result.pending = pending;
                tx.commit();
                return result;
            }
        }
        bool created = false;
        {
            Query q(m_db, "INSERT INTO requests (" JITGATE_REQUEST_COLUMNS ") VALUES "
                          "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) "
                          "ON CONFLICT (host, id) DO NOTHING RETURNING host");
            q.text(1 + c_host, request.host)
                .text(1 + c_id, request.id)
                .text(1 + c_body, request.body)
                .text(1 + c_requester, request.requester)
                .text(1 + c_requester_login, request.requester_login)
                .text(1 + c_rule, request.rule)
                .text(1 + c_status, to_string(Status::pending))
                .integer(1 + c_approvals_needed, request.approvals_needed)
                .text(1 + c_approver_groups, list_to_json(request.approver_groups))
                .integer(1 + c_created_at, request.created_at)
                .integer(1 + c_expires_at, request.expires_at)
                .integer(1 + c_decided_at, 0)
                .text(1 + c_grant, "")
                .text(1 + c_grant_id, "")
                .text(1 + c_decided_by, request.decided_by)
                .text(1 + c_decision_reason, request.decision_reason)
                .text(1 + c_ticket_check, request.ticket_check);
            created = q.step();
            q.run();
        }
        if (created) insert_event(filed);
        CreateResult result{created, load_or_fail(request.host, request.id)};
        tx.commit();
        return result;
    }

    std::optional<Request> find(std::string_view host, std::string_view id) override {
        Transaction tx(m_db, Transaction::Kind::read);
        auto request = load(host, id);
        tx.commit();
        return request;
    }

    std::vector<Request> pending(std::size_t limit) override {
        Transaction tx(m_db, Transaction::Kind::read);
        std::vector<Request> out;
        {
            Query q(m_db, "SELECT " JITGATE_REQUEST_COLUMNS " FROM requests WHERE status = 'pending' "
                          "ORDER BY created_at, host, id LIMIT ?1");
            q.integer(1, limit_value(limit));
            while (q.step()) out.push_back(read_request(q));
        }
        for (Request& r : out) r.approvals = load_approvals(r.host, r.id);
        tx.commit();
        return out;
    }

    std::vector<Request> pending_after(const PendingKey& after, std::size_t limit) override {
        Transaction tx(m_db, Transaction::Kind::read);
        std::vector<Request> out;
        {
            Query q(m_db, "SELECT " JITGATE_REQUEST_COLUMNS " FROM requests WHERE status = 'pending' "
                          "AND (created_at, host, id) > (?1, ?2, ?3) ORDER BY created_at, host, id LIMIT ?4");
            q.integer(1, after.created_at).text(2, after.host).text(3, after.id).integer(4, limit_value(limit));
            while (q.step()) out.push_back(read_request(q));
        }
        for (Request& r : out) r.approvals = load_approvals(r.host, r.id);
        tx.commit();
        return out;
    }

    std::vector<Request> pending_from(std::int64_t created_at, std::size_t skip, std::size_t limit) override {
        Transaction tx(m_db, Transaction::Kind::read);
        std::vector<Request> out;
        {
            Query q(m_db, "SELECT " JITGATE_REQUEST_COLUMNS " FROM requests WHERE status = 'pending' "
                          "AND created_at >= ?1 ORDER BY created_at, host, id LIMIT ?2 OFFSET ?3");
            q.integer(1, created_at).integer(2, limit_value(limit)).integer(3, limit_value(skip));
            while (q.step()) out.push_back(read_request(q));
        }
        for (Request& r : out) r.approvals = load_approvals(r.host, r.id);
        tx.commit();
        return out;
    }

    std::vector<Request> history(std::int64_t before, std::size_t limit) override {
        Transaction tx(m_db, Transaction::Kind::read);
        std::vector<Request> out;
        {
            Query q(m_db,
                    "SELECT " JITGATE_REQUEST_COLUMNS " FROM requests WHERE status <> 'pending' AND decided_at < ?1 "
                    "ORDER BY decided_at DESC, host, id LIMIT ?2");
            q.integer(1, before).integer(2, limit_value(limit));
            while (q.step()) out.push_back(read_request(q));
        }
        for (Request& r : out) r.approvals = load_approvals(r.host, r.id);
        tx.commit();
        return out;
    }

    ApproveResult approve(std::string_view host, std::string_view id, const Approval& approval, std::int64_t now,
                          const Signer& sign, const Event& event) override {
        Transaction tx(m_db, Transaction::Kind::write);
        ApproveResult result;
        auto current = load(host, id);
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
        {
            Query q(m_db, "INSERT INTO approvals (host, id, " JITGATE_APPROVAL_COLUMNS
                          ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
            q.text(1, host)
                .text(2, id)
                .text(3, stored.approver)
                .text(4, stored.identity)
                .text(5, stored.comment)
                .text(6, stored.source_address)
                .text(7, stored.via)
                .integer(8, stored.at)
                .run();
        }
        current->approvals.push_back(stored);
        if (static_cast<int>(current->approvals.size()) >= current->approvals_needed) {
            current->status = Status::approved;
            current->decided_at = now;
            // A throw from the signer leaves this function before commit(): the transaction
            // rolls back and the approval above is not stored either.
            const SignedGrant grant = sign(*current);
            if (grant.token.empty() || grant.id.empty())
                throw Error(ErrorCode::internal, "store", "the grant signer returned an empty grant");
            current->grant = grant.token;
            current->grant_id = grant.id;
            grant_event = grant.event;
            Query q(m_db, "UPDATE requests SET status = 'approved', \"grant\" = ?3, grant_id = ?4, decided_at = ?5 "
                          "WHERE host = ?1 AND id = ?2 AND status = 'pending' RETURNING host");
            q.text(1, host).text(2, id).text(3, grant.token).text(4, grant.id).integer(5, now);
            if (!q.step()) throw Error(ErrorCode::internal, "store", "the request changed during approve()");
            q.run();
            result.outcome = ApproveOutcome::approved;
        } else {
            result.outcome = ApproveOutcome::added;
        }
        result.request = *current;
        insert_event(event);
        // In this transaction: the grant and its event commit together or not at all.
        if (!grant_event.type.empty()) insert_event(grant_event);
        tx.commit();
        return result;
    }

    ApproveResult approve_automatically(std::string_view host, std::string_view id, const std::string& decided_by,
                                        std::int64_t now, const Signer& sign, const Event& event) override {
        Transaction tx(m_db, Transaction::Kind::write);
        ApproveResult result;
        auto current = load(host, id);
        if (!current) return result;
        result.request = *current;
        if (current->status != Status::pending || current->expires_at <= now) return result;
        current->status = Status::approved;
        current->decided_at = now;
        current->decided_by = decided_by;
        // A throw from the signer leaves before commit(): nothing is stored.
        const SignedGrant grant = sign(*current);
        if (grant.token.empty() || grant.id.empty())
            throw Error(ErrorCode::internal, "store", "the grant signer returned an empty grant");
        current->grant = grant.token;
        current->grant_id = grant.id;
        {
            Query q(m_db, "UPDATE requests SET status = 'approved', \"grant\" = ?3, grant_id = ?4, decided_at = ?5, "
                          "decided_by = ?6 WHERE host = ?1 AND id = ?2 AND status = 'pending' RETURNING host");
            q.text(1, host).text(2, id).text(3, grant.token).text(4, grant.id).integer(5, now).text(6, decided_by);
            if (!q.step())
                throw Error(ErrorCode::internal, "store", "the request changed during approve_automatically()");
            q.run();
        }
        result.outcome = ApproveOutcome::approved;
        result.request = *current;
        insert_event(event);
        if (!grant.event.type.empty()) insert_event(grant.event);
        tx.commit();
        return result;
    }

    std::optional<Request> finish(std::string_view host, std::string_view id, Status to, const std::string& decided_by,
                                  const std::string& reason, std::int64_t now, const Event& event) override {
        check_final_status(to);
        Transaction tx(m_db, Transaction::Kind::write);
        bool changed = false;
        {
            Query q(m_db, "UPDATE requests SET status = ?3, decided_at = ?4, decided_by = ?5, decision_reason = ?6 "
                          "WHERE host = ?1 AND id = ?2 AND status = 'pending' RETURNING host");
            q.text(1, host).text(2, id).text(3, to_string(to)).integer(4, now).text(5, decided_by).text(6, reason);
            changed = q.step();
            q.run();
        }
        if (!changed) return std::nullopt;
        insert_event(event);
        auto request = load_or_fail(host, id);
        tx.commit();
        return request;
    }

    std::vector<std::pair<std::string, std::string>> due(std::int64_t now, std::size_t limit) override {
        Query q(m_db, "SELECT host, id FROM requests WHERE status = 'pending' AND expires_at <= ?1 "
                      "ORDER BY expires_at, host, id LIMIT ?2");
        q.integer(1, now).integer(2, limit_value(limit));
        std::vector<std::pair<std::string, std::string>> out;
        while (q.step()) out.emplace_back(q.text(0), q.text(1));
        return out;
    }

    void set_ticket_check(std::string_view host, std::string_view id, const std::string& answer_json) override {
        write([&] {
            Query q(m_db, "UPDATE requests SET ticket_check = ?3 WHERE host = ?1 AND id = ?2");
            q.text(1, host).text(2, id).text(3, answer_json).run();
        });
    }

    Purged purge(std::int64_t expired_before, std::int64_t delivered_before) override {
        // One writer at a time on SQLite (BEGIN IMMEDIATE): concurrent purges just queue.
        Transaction tx(m_db, Transaction::Kind::write);
        Purged purged;
        {
            Query q(m_db, "DELETE FROM sessions WHERE expires_at < ?1");
            q.integer(1, expired_before).run();
            purged.sessions = static_cast<std::size_t>(m_db.changes());
        }
        {
            Query q(m_db, "DELETE FROM logins WHERE expires_at < ?1");
            q.integer(1, expired_before).run();
            purged.logins = static_cast<std::size_t>(m_db.changes());
        }
        {
            Query q(m_db, "DELETE FROM notices WHERE state = 'delivered' AND next_attempt_at < ?1");
            q.integer(1, delivered_before).run();
            purged.notices = static_cast<std::size_t>(m_db.changes());
        }
        tx.commit();
        return purged;
    }

    RevokeResult revoke_grant(std::string_view host, std::string_view id, const Revocation& revocation,
                              const Event& event) override {
        check_revocation(revocation);
        Transaction tx(m_db, Transaction::Kind::write);
        RevokeResult result;
        std::optional<Request> request = load(host, id);
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
        {
            Query q(m_db, "INSERT INTO revocations (host, request_id, grant_id, revoked_by, identity, source_address, "
                          "via, reason, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
            q.text(1, host)
                .text(2, id)
                .text(3, result.request.grant_id)
                .text(4, revocation.revoked_by)
                .text(5, revocation.identity)
                .text(6, revocation.source_address)
                .text(7, revocation.via)
                .text(8, revocation.reason)
                .integer(9, revocation.revoked_at)
                .run();
        }
        insert_event(event);
        std::optional<Revocation> stored = load_revocation(host, id);
        if (!stored) throw Error(ErrorCode::internal, "store", "a revocation vanished inside its transaction");
        tx.commit();
        result.outcome = RevokeOutcome::revoked;
        result.revocation = std::move(*stored);
        return result;
    }

    std::optional<Revocation> find_revocation(std::string_view host, std::string_view id) override {
        Transaction tx(m_db, Transaction::Kind::read);
        auto revocation = load_revocation(host, id);
        tx.commit();
        return revocation;
    }

    std::vector<std::string> hosts_of_request(std::string_view id, std::size_t limit) override {
        Query q(m_db, "SELECT host FROM requests WHERE id = ?1 ORDER BY host LIMIT ?2");
        q.text(1, id).integer(2, limit_value(limit));
        std::vector<std::string> out;
        while (q.step()) out.push_back(q.text(0));
        return out;
    }

    std::vector<Revocation> revocations_after(const std::vector<std::string>& hosts, std::int64_t after,
                                              std::int64_t upto, std::int64_t since, std::size_t limit) override {
        Transaction tx(m_db, Transaction::Kind::read);
        std::vector<Revocation> out;
        for (const std::string& host : hosts) {
            Query q(m_db, "SELECT " JITGATE_REVOCATION_COLUMNS " FROM revocations WHERE host = ?1 AND seq > ?2 "
                          "AND seq <= ?5 AND revoked_at >= ?3 ORDER BY seq LIMIT ?4");
            q.text(1, host).integer(2, after).integer(3, since).integer(4, limit_value(limit)).integer(5, upto);
            while (q.step()) out.push_back(read_revocation(q));
        }
        tx.commit();
        return merge_revocations(std::move(out), limit);
    }

    std::vector<std::string> hosts_revoked_after(std::int64_t after, std::size_t limit) override {
        Transaction tx(m_db, Transaction::Kind::read);
        Query q(m_db, "SELECT DISTINCT host FROM revocations WHERE seq > ?1 ORDER BY host LIMIT ?2");
        q.integer(1, after).integer(2, limit_value(limit));
        std::vector<std::string> out;
        while (q.step()) out.push_back(q.text(0));
        tx.commit();
        return out;
    }

    std::int64_t last_revocation_seq(const std::vector<std::string>& hosts) override {
        Transaction tx(m_db, Transaction::Kind::read);
        std::int64_t last = 0;
        if (hosts.empty()) {
            Query q(m_db, "SELECT coalesce(max(seq), 0) FROM revocations");
            if (q.step()) last = q.integer(0);
        }
        for (const std::string& host : hosts) {
            Query q(m_db, "SELECT coalesce(max(seq), 0) FROM revocations WHERE host = ?1");
            q.text(1, host);
            if (q.step()) last = std::max(last, q.integer(0));
        }
        tx.commit();
        return last;
    }

    void record(const Event& event) override {
        write([&] { insert_event(event); });
    }

    std::vector<Event> events(std::string_view host, std::string_view request_id) override {
        Query q(m_db, "SELECT at, type, host, request_id, actor, identity, source_address, detail FROM events "
                      "WHERE host = ?1 AND request_id = ?2 ORDER BY id");
        q.text(1, host).text(2, request_id);
        std::vector<Event> out;
        while (q.step())
            out.push_back(
                Event{q.integer(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5), q.text(6), q.text(7)});
        return out;
    }

    void put_session(const Session& s) override {
        write([&] {
            Query q(
                m_db,
                "INSERT INTO sessions (token_sha256, identity, unix_user, display_name, approver_groups, csrf_token, "
                "created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                "ON CONFLICT (token_sha256) DO UPDATE SET identity = excluded.identity, "
                "unix_user = excluded.unix_user, display_name = excluded.display_name, "
                "approver_groups = excluded.approver_groups, csrf_token = excluded.csrf_token, "
                "created_at = excluded.created_at, expires_at = excluded.expires_at");
            q.text(1, s.token_sha256)
                .text(2, s.identity)
                .text(3, s.unix_user)
                .text(4, s.display_name)
                .text(5, list_to_json(s.groups))
                .text(6, s.csrf_token)
                .integer(7, s.created_at)
                .integer(8, s.expires_at)
                .run();
        });
    }

    std::optional<Session> find_session(std::string_view token_sha256, std::int64_t now) override {
        Query q(m_db,
                "SELECT token_sha256, identity, unix_user, display_name, approver_groups, csrf_token, created_at, "
                "expires_at FROM sessions WHERE token_sha256 = ?1 AND expires_at > ?2");
        q.text(1, token_sha256).integer(2, now);
        if (!q.step()) return std::nullopt;
        return Session{q.text(0), q.text(1),    q.text(2),   q.text(3), list_from_json(q.text(4)),
                       q.text(5), q.integer(6), q.integer(7)};
    }

    void delete_session(std::string_view token_sha256) override {
        write([&] {
            Query q(m_db, "DELETE FROM sessions WHERE token_sha256 = ?1");
            q.text(1, token_sha256).run();
        });
    }

    std::size_t put_login(const LoginState& login, std::int64_t now, std::size_t max_in_progress) override {
        return write([&] {
            // BEGIN IMMEDIATE: no other writer between the count and the insert.
            std::size_t outstanding = 0;
            {
                Query q(m_db, "SELECT count(*) FROM logins WHERE expires_at > ?1");
                q.integer(1, now);
                if (q.step()) outstanding = static_cast<std::size_t>(q.integer(0));
            }
            const std::size_t cap = std::max<std::size_t>(max_in_progress, 1);
            std::size_t evicted = 0;
            if (outstanding >= cap) {
                Query q(m_db, "DELETE FROM logins WHERE state IN (SELECT state FROM logins WHERE expires_at > ?1 "
                              "ORDER BY expires_at, state LIMIT ?2)");
                q.integer(1, now).integer(2, static_cast<std::int64_t>(outstanding - cap + 1)).run();
                evicted = static_cast<std::size_t>(m_db.changes());
            }
            Query q(
                m_db,
                "INSERT INTO logins (state, nonce, code_verifier, return_to, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)");
            q.text(1, login.state)
                .text(2, login.nonce)
                .text(3, login.code_verifier)
                .text(4, login.return_to)
                .integer(5, login.expires_at)
                .run();
            return evicted;
        });
    }

    std::optional<LoginState> take_login(std::string_view state, std::int64_t now) override {
        return write([&]() -> std::optional<LoginState> {
            // One statement: the row is gone for every other caller the moment it is read.
            Query q(m_db,
                    "DELETE FROM logins WHERE state = ?1 RETURNING state, nonce, code_verifier, return_to, expires_at");
            q.text(1, state);
            if (!q.step()) return std::nullopt;
            LoginState login{q.text(0), q.text(1), q.text(2), q.text(3), q.integer(4)};
            q.run();
            if (login.expires_at <= now) return std::nullopt;
            return login;
        });
    }

    std::size_t count_logins(std::int64_t now) override {
        Query q(m_db, "SELECT count(*) FROM logins WHERE expires_at > ?1");
        q.integer(1, now);
        if (!q.step()) return 0;
        return static_cast<std::size_t>(q.integer(0));
    }

    std::size_t delete_sessions_of(std::string_view unix_user) override {
        return write([&] {
            Query q(m_db, "DELETE FROM sessions WHERE unix_user = ?1");
            q.text(1, unix_user).run();
            return static_cast<std::size_t>(m_db.changes());
        });
    }

    std::size_t delete_sessions_of(std::string_view unix_user, const SessionsAudit& audit) override {
        return write([&] {
            Query q(m_db, "DELETE FROM sessions WHERE unix_user = ?1");
            q.text(1, unix_user).run();
            const auto deleted = static_cast<std::size_t>(m_db.changes());
            if (deleted > 0) insert_event(audit(deleted));
            return deleted;
        });
    }

    void enqueue(const std::string& target, const std::string& body, std::int64_t now) override {
        write([&] {
            Query q(m_db, "INSERT INTO notices (target, body, next_attempt_at) VALUES (?1, ?2, ?3)");
            q.text(1, target).text(2, body).integer(3, now).run();
        });
    }

    std::vector<Notice> claim_notices(std::int64_t now, std::size_t limit, int lease_s) override {
        if (lease_s <= 0) throw Error(ErrorCode::bad_input, "store", "a notice lease must be positive");
        Transaction tx(m_db, Transaction::Kind::write);
        std::vector<Notice> out;
        {
            Query q(m_db,
                    "UPDATE notices SET claimed_until = ?2, attempts = attempts + 1 WHERE id IN "
                    "(SELECT id FROM notices WHERE state = 'pending' AND next_attempt_at <= ?1 AND claimed_until <= ?1 "
                    "ORDER BY next_attempt_at, id LIMIT ?3) "
                    "RETURNING id, target, body, attempts, next_attempt_at, last_error");
            q.integer(1, now).integer(2, now + lease_s).integer(3, limit_value(limit));
            while (q.step())
                out.push_back(Notice{q.integer(0), q.text(1), q.text(2), static_cast<int>(q.integer(3)), q.integer(4),
                                     q.text(5)});
        }
        tx.commit();
        std::sort(out.begin(), out.end(), [](const Notice& a, const Notice& b) {
            return std::pair(a.next_attempt_at, a.id) < std::pair(b.next_attempt_at, b.id);
        });
        return out;
    }

    void notice_delivered(std::int64_t id) override {
        write([&] {
            Query q(m_db,
                    "UPDATE notices SET state = 'delivered', claimed_until = 0 WHERE id = ?1 AND state = 'pending'");
            q.integer(1, id).run();
        });
    }

    void notice_failed(std::int64_t id, std::int64_t next_attempt_at, const std::string& error) override {
        write([&] {
            Query q(m_db, "UPDATE notices SET next_attempt_at = ?2, last_error = ?3, claimed_until = 0 "
                          "WHERE id = ?1 AND state = 'pending'");
            q.integer(1, id).integer(2, next_attempt_at).text(3, error).run();
        });
    }

    void notice_dropped(std::int64_t id, const std::string& error) override {
        write([&] {
            Query q(m_db, "UPDATE notices SET state = 'dropped', last_error = ?2, claimed_until = 0 "
                          "WHERE id = ?1 AND state = 'pending'");
            q.integer(1, id).text(2, error).run();
        });
    }

    IngestResult ingest(const std::string& host, const std::vector<AuditEvent>& events, std::int64_t now,
                        const IngestOptions& options) override {
        check_ingest(host, events);
        check_ingest_options(options);
        // BEGIN IMMEDIATE: batches of one host (and of all hosts) are serialised, so the chain
        // state read here is the one this batch continues.
        Transaction tx(m_db, Transaction::Kind::write);
        std::optional<AuditChain> before = load_chain(host);
        bool known = before.has_value();
        AuditChain chain = before.value_or(AuditChain{});
        chain.host = host;
        // Never before the host's last batch (a clock stepped back): the months that retention
        // exports and prunes by received time keep each host's events in chain order.
        const std::int64_t received = std::max(now, chain.last_seen);
        refuse_pruned_month(received);
        IngestResult result;
        const std::vector<bool> pruned = provably_pruned(chain, events);
        std::size_t index = 0;
        for (const AuditEvent& e : events) {
            if (pruned[index++]) {
                ++result.duplicates; // held and pruned after its month was archived
                continue;
            }
            bool inserted = false;
            {
                Query q(m_db, "INSERT INTO audit_events (host, event_id, seq, hash, prev_hash, time, type, request_id, "
                              "line, received_at, user_name) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
                              "ON CONFLICT (host, event_id) DO NOTHING RETURNING id");
                q.text(1, host)
                    .text(2, e.event_id)
                    .integer(3, e.seq)
                    .text(4, e.hash)
                    .text(5, e.prev_hash)
                    .text(6, e.time)
                    .text(7, e.type)
                    .text(8, e.request_id)
                    .text(9, e.line)
                    .integer(10, received)
                    .text(11, e.user);
                inserted = q.step();
                q.run();
            }
            if (!inserted) {
                Query q(m_db, "SELECT line FROM audit_events WHERE host = ?1 AND event_id = ?2");
                q.text(1, host).text(2, e.event_id);
                if (!q.step() || q.text(0) != e.line) {
                    // The transaction rolls back: nothing of the batch is stored.
                    IngestResult refused;
                    refused.conflict_event_id = e.event_id;
                    if (before) refused.chain = *before;
                    refused.chain.host = host;
                    return refused;
                }
                ++result.duplicates;
                continue;
            }
            ++result.added;
            if (e.type == k_break_glass_type) {
                open_review(host, e, now, options);
                ++result.reviews_opened;
            }
            Event event = advance_chain(chain, known, e, now);
            known = true;
            if (!event.type.empty()) {
                insert_event(event);
                result.chain_events.push_back(std::move(event));
            }
        }
        if (known) {
            chain.last_seen = received;
            chain.reported_seq = options.reported_seq;
            if (options.reported_seq > 0) chain.reported_at = received;
            save_chain(chain);
        }
        tx.commit();
        result.stored = true;
        result.chain = std::move(chain);
        return result;
    }

    std::optional<AuditChain> mark_chain_broken(const std::string& host, const std::string& problem, std::int64_t seq,
                                                std::int64_t now, const Event& event) override {
        check_mark_broken(host, problem);
        return write([&] {
            std::optional<AuditChain> chain = load_chain(host);
            if (chain && mark_broken(*chain, problem, seq, now)) save_chain(*chain);
            insert_event(event);
            return chain;
        });
    }

    std::optional<AuditChain> audit_chain(std::string_view host) override {
        Transaction tx(m_db, Transaction::Kind::read);
        auto chain = load_chain(host);
        tx.commit();
        return chain;
    }

    std::vector<AuditEvent> audit_events(std::string_view host, std::int64_t from_seq, std::int64_t to_seq,
                                         std::size_t limit) override {
        Transaction tx(m_db, Transaction::Kind::read);
        std::vector<AuditEvent> out;
        {
            Query q(m_db,
                    "SELECT event_id, seq, hash, prev_hash, time, type, request_id, line, user_name FROM audit_events "
                    "WHERE host = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY id LIMIT ?4");
            q.text(1, host).integer(2, from_seq).integer(3, to_seq).integer(4, limit_value(limit));
            while (q.step())
                out.push_back(AuditEvent{q.text(0), q.integer(1), q.text(2), q.text(3), q.text(4), q.text(5), q.text(6),
                                         q.text(7), q.text(8)});
        }
        tx.commit();
        return out;
    }

    // --- break-glass reviews ---

    std::vector<BreakGlassReview> break_glass_reviews(ReviewList which, const std::optional<ReviewKey>& after,
                                                      std::size_t limit) override {
        Transaction tx(m_db, Transaction::Kind::read);
        std::vector<BreakGlassReview> out;
        {
            // Keyset: open ascending by (due_at, host, event_id); closed descending by closed_at,
            // then ascending by (host, event_id). Without `after`, from the list's start.
            Query q(m_db, which == ReviewList::open
                              ? "SELECT " JITGATE_REVIEW_COLUMNS " FROM break_glass_reviews WHERE status = 'open' "
                                "AND (?1 = 0 OR (due_at, host, event_id) > (?2, ?3, ?4)) "
                                "ORDER BY due_at, host, event_id LIMIT ?5"
                              : "SELECT " JITGATE_REVIEW_COLUMNS " FROM break_glass_reviews WHERE status = 'closed' "
                                "AND (?1 = 0 OR closed_at < ?2 OR (closed_at = ?2 AND (host, event_id) > (?3, ?4))) "
                                "ORDER BY closed_at DESC, host, event_id LIMIT ?5");
            q.integer(1, after ? 1 : 0)
                .integer(2, after ? after->at : 0)
                .text(3, after ? after->host : std::string())
                .text(4, after ? after->event_id : std::string())
                .integer(5, limit_value(limit));
            while (q.step()) out.push_back(read_review(q));
        }
        tx.commit();
        return out;
    }

    std::optional<BreakGlassReview> find_break_glass_review(std::string_view host, std::string_view event_id) override {
        Transaction tx(m_db, Transaction::Kind::read);
        auto review = load_review(host, event_id);
        tx.commit();
        return review;
    }

    CloseResult close_break_glass_review(std::string_view host, std::string_view event_id, const std::string& reviewer,
                                         const std::string& reviewer_identity, const std::string& note,
                                         std::int64_t now, const Event& event) override {
        check_close(reviewer, note);
        // BEGIN IMMEDIATE: no other writer between the checks and the update.
        Transaction tx(m_db, Transaction::Kind::write);
        CloseResult result;
        auto current = load_review(host, event_id);
        if (!current) return result;
        result.review = *current;
        if (current->closed) {
            result.outcome = CloseOutcome::already_closed;
            return result;
        }
        if (own_break_glass_use(reviewer, current->user_name, stored_line(host, event_id))) {
            result.outcome = CloseOutcome::own_use;
            return result;
        }
        {
            Query q(m_db, "UPDATE break_glass_reviews SET status = 'closed', reviewer = ?3, reviewer_identity = ?4, "
                          "note = ?5, closed_at = ?6 WHERE host = ?1 AND event_id = ?2 AND status = 'open'");
            q.text(1, host)
                .text(2, event_id)
                .text(3, reviewer)
                .text(4, reviewer_identity)
                .text(5, note)
                .integer(6, now);
            q.run();
        }
        if (m_db.changes() != 1) throw Error(ErrorCode::internal, "store", "a review changed inside its transaction");
        insert_event(event);
        result.outcome = CloseOutcome::closed;
        result.review = *load_review(host, event_id);
        tx.commit();
        return result;
    }

    std::vector<BreakGlassReview> claim_overdue_break_glass_reviews(std::int64_t now, std::size_t limit,
                                                                    const OverdueAudit& audit) override {
        // BEGIN IMMEDIATE serialises claimers (every replica's file is the same file).
        Transaction tx(m_db, Transaction::Kind::write);
        std::vector<BreakGlassReview> out;
        {
            Query q(m_db, "UPDATE break_glass_reviews SET overdue_alerted_at = ?1 WHERE (host, event_id) IN "
                          "(SELECT host, event_id FROM break_glass_reviews WHERE status = 'open' AND due_at <= ?1 "
                          "AND overdue_alerted_at = 0 ORDER BY due_at, host, event_id LIMIT ?2) "
                          "RETURNING " JITGATE_REVIEW_COLUMNS);
            q.integer(1, now).integer(2, limit_value(limit));
            while (q.step()) out.push_back(read_review(q));
        }
        std::sort(out.begin(), out.end(), [](const BreakGlassReview& a, const BreakGlassReview& b) {
            return std::tie(a.due_at, a.host, a.event_id) < std::tie(b.due_at, b.host, b.event_id);
        });
        for (const BreakGlassReview& r : out) insert_event(audit(r));
        tx.commit();
        return out;
    }

    std::vector<AuditHostStatus> audit_hosts(std::string_view after_host, std::size_t limit) override {
        Transaction tx(m_db, Transaction::Kind::read);
        std::vector<AuditHostStatus> out;
        {
            Query q(m_db,
                    "SELECT " JITGATE_CHAIN_COLUMNS ", (SELECT count(*) FROM break_glass_reviews r "
                    "WHERE r.host = audit_chains.host AND r.status = 'open'), coalesce((SELECT e.time FROM "
                    "audit_events e WHERE e.host = audit_chains.host AND e.event_id = audit_chains.last_event_id), "
                    "'') FROM audit_chains WHERE host > ?1 AND last_seq > 0 ORDER BY host LIMIT ?2");
            q.text(1, after_host).integer(2, limit_value(limit));
            while (q.step())
                out.push_back(AuditHostStatus{read_chain(q), q.text(k_chain_columns + 1), q.integer(k_chain_columns)});
        }
        tx.commit();
        return out;
    }

    std::optional<StoredAuditEvent> find_audit_event(std::string_view host, std::string_view event_id) override {
        Query q(m_db, "SELECT id, host, received_at, " JITGATE_AUDIT_EVENT_COLUMNS " FROM audit_events "
                      "WHERE host = ?1 AND event_id = ?2");
        q.text(1, host).text(2, event_id);
        if (!q.step()) return std::nullopt;
        return read_stored_event(q);
    }

    std::vector<StoredAuditEvent> search_audit_events(const AuditSearch& s) override {
        Transaction tx(m_db, Transaction::Kind::read);
        std::vector<StoredAuditEvent> out;
        {
            // SECURITY NOTE: the statement is put together from literal fragments of the program
            // (sqlite_audit_search_sql); every value stays a bound parameter.
            const std::string sql = sqlite_audit_search_sql(s);
            Query q(m_db, sql.c_str());
            q.text(1, s.host)
                .text(2, s.user)
                .text(3, s.type)
                .text(4, s.from)
                .text(5, s.to)
                .integer(6, s.after.value_or(s.oldest_first ? 0 : std::numeric_limits<std::int64_t>::max()))
                .integer(7, limit_value(s.limit));
            while (q.step()) out.push_back(read_stored_event(q));
        }
        tx.commit();
        return out;
    }

    // --- end of break-glass reviews ---

    // --- reading for auditors ---
    std::vector<StoredAuditEvent> audit_events_in_period(const std::string& from_time, const std::string& to_time,
                                                         const std::string& after_time, std::int64_t after_id,
                                                         std::size_t limit) override {
        // Index audit_events_time (time, and the rowid every SQLite index ends with).
        Query q(m_db, "SELECT id, host, received_at, " JITGATE_AUDIT_EVENT_COLUMNS
                      " FROM audit_events WHERE time >= ?1 AND time < ?2 "
                      "AND (time, id) > (?3, ?4) ORDER BY time, id LIMIT ?5");
        q.text(1, from_time).text(2, to_time).text(3, after_time).integer(4, after_id).integer(5, limit_value(limit));
        return read_stored_events(q);
    }

    std::vector<StoredAuditEvent> audit_events_by_seq(std::string_view host, std::int64_t after_seq,
                                                      std::int64_t after_id, std::int64_t to_seq,
                                                      std::size_t limit) override {
        // Index audit_events_seq (host, seq, rowid).
        Query q(m_db, "SELECT id, host, received_at, " JITGATE_AUDIT_EVENT_COLUMNS
                      " FROM audit_events WHERE host = ?1 AND seq <= ?4 "
                      "AND (seq, id) > (?2, ?3) ORDER BY seq, id LIMIT ?5");
        q.text(1, host).integer(2, after_seq).integer(3, after_id).integer(4, to_seq).integer(5, limit_value(limit));
        return read_stored_events(q);
    }

    std::vector<StoredEvent> events_in_period(std::int64_t from, std::int64_t to, std::int64_t after_at,
                                              std::int64_t after_id, std::size_t limit) override {
        Query q(m_db, "SELECT id, at, type, host, request_id, actor, identity, source_address, detail FROM events "
                      "WHERE at >= ?1 AND at < ?2 AND (at, id) > (?3, ?4) ORDER BY at, id LIMIT ?5");
        q.integer(1, from).integer(2, to).integer(3, after_at).integer(4, after_id).integer(5, limit_value(limit));
        std::vector<StoredEvent> out;
        while (q.step())
            out.push_back(StoredEvent{q.integer(0), Event{q.integer(1), q.text(2), q.text(3), q.text(4), q.text(5),
                                                          q.text(6), q.text(7), q.text(8)}});
        return out;
    }

    std::vector<AuditChain> audit_chains_after(std::string_view after_host, std::size_t limit) override {
        std::vector<AuditChain> out;
        Query q(m_db, "SELECT " JITGATE_CHAIN_COLUMNS
                      " FROM audit_chains WHERE host > ?1 AND last_seq > 0 ORDER BY host LIMIT ?2");
        q.text(1, after_host).integer(2, limit_value(limit));
        while (q.step()) out.push_back(read_chain(q));
        return out;
    }

    // --- retention ---

    void ensure_audit_partitions(std::int64_t) override {} // one table: nothing to prepare

    // As PostgreSQL, which never makes a pruned month's partition again: nothing is stored in a
    // month already pruned (a server clock set back years).
    void refuse_pruned_month(std::int64_t now) {
        const Month month = month_of(now);
        Query q(m_db, "SELECT 1 FROM audit_archives WHERE month = ?1 AND pruned_at <> 0");
        q.text(1, month.name);
        if (q.step()) throw_pruned_month(now, month.name);
    }

    std::vector<StoredAuditEvent> audit_events_received(std::int64_t from, std::int64_t to, std::int64_t after_id,
                                                        std::size_t limit) override {
        // By rowid between the month's first and last rows (found once each through the index
        // audit_events_received; none: an empty range), from after_id; received_at filters every
        // row (it grows with the rowid but for clock steps, so the range is not assumed to hold
        // only the month).
        Query q(m_db, "SELECT id, host, received_at, " JITGATE_AUDIT_EVENT_COLUMNS
                      " FROM audit_events NOT INDEXED WHERE id > max(?3, coalesce((SELECT min(id) FROM audit_events "
                      "WHERE received_at >= ?1 AND received_at < ?2), 9223372036854775807) - 1) "
                      "AND id <= coalesce((SELECT max(id) FROM audit_events WHERE received_at >= ?1 "
                      "AND received_at < ?2), 0) AND received_at >= ?1 AND received_at < ?2 ORDER BY id LIMIT ?4");
        q.integer(1, from).integer(2, to).integer(3, after_id).integer(4, limit_value(limit));
        return read_stored_events(q);
    }

    std::optional<std::int64_t> oldest_audit_received() override {
        // Index audit_events_received.
        Query q(m_db, "SELECT min(received_at) FROM audit_events");
        if (!q.step() || q.text(0).empty()) return std::nullopt;
        return q.integer(0);
    }

    std::optional<std::int64_t> newest_audit_received() override {
        // Index audit_events_received.
        Query q(m_db, "SELECT max(received_at) FROM audit_events");
        if (!q.step() || q.text(0).empty()) return std::nullopt;
        return q.integer(0);
    }

    std::optional<AuditArchive> audit_archive(std::string_view month) override {
        Query q(m_db, "SELECT " JITGATE_ARCHIVE_COLUMNS " FROM audit_archives WHERE month = ?1");
        q.text(1, month);
        if (!q.step()) return std::nullopt;
        return read_archive(q);
    }

    std::vector<AuditArchive> audit_archives() override {
        Query q(m_db, "SELECT " JITGATE_ARCHIVE_COLUMNS " FROM audit_archives ORDER BY month");
        std::vector<AuditArchive> out;
        while (q.step()) out.push_back(read_archive(q));
        return out;
    }

    AuditArchive record_audit_archive(const AuditArchive& a, const Event& event) override {
        Transaction tx(m_db, Transaction::Kind::write);
        {
            Query q(m_db, "INSERT INTO audit_archives (" JITGATE_ARCHIVE_COLUMNS
                          ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0) ON CONFLICT (month) DO NOTHING");
            q.text(1, a.month)
                .integer(2, a.received_from)
                .integer(3, a.received_to)
                .integer(4, a.events)
                .integer(5, a.hosts)
                .text(6, a.manifest_sha256)
                .integer(7, a.exported_at)
                .text(8, a.exported_by)
                .run();
        }
        if (m_db.changes() == 1) insert_event(event);
        std::optional<AuditArchive> stored = audit_archive(a.month);
        if (!stored) throw Error(ErrorCode::internal, "store", "an archive record vanished");
        tx.commit();
        return std::move(*stored);
    }

    PruneResult prune_audit_month(const AuditArchive& a, std::int64_t now, const Event& event,
                                  const ManifestOf& manifest_sha256) override {
        // One transaction: the anchors, the deletion and the record go together or not at all.
        // (Deleting in several transactions would leave a half-pruned month that no archive
        // check could tell from rows deleted by hand.)
        Transaction tx(m_db, Transaction::Kind::write);
        check_prunable(audit_archive(a.month), a);
        std::int64_t count = 0;
        {
            Query q(m_db, "SELECT count(*) FROM audit_events WHERE received_at >= ?1 AND received_at < ?2");
            q.integer(1, a.received_from).integer(2, a.received_to);
            count = q.step() ? q.integer(0) : 0;
        }
        check_prune_count(a, count);
        // Read again inside the write transaction: no batch can change the month meanwhile.
        check_prune_manifest(a, manifest_sha256([&](std::int64_t after_id, std::size_t limit) {
                                 return audit_events_received(a.received_from, a.received_to, after_id, limit);
                             }));
        PruneResult result;
        result.events = count;
        {
            // Each host's last event of the month in arrival order becomes its anchor.
            Query q(m_db, "UPDATE audit_chains SET pruned_through_seq = l.seq, pruned_through_hash = l.hash FROM "
                          "(SELECT e.host, e.seq, e.hash FROM audit_events e WHERE e.id IN (SELECT max(id) FROM "
                          "audit_events WHERE received_at >= ?1 AND received_at < ?2 GROUP BY host)) AS l "
                          "WHERE audit_chains.host = l.host");
            q.integer(1, a.received_from).integer(2, a.received_to).run();
            result.hosts = m_db.changes();
        }
        {
            Query q(m_db, "DELETE FROM audit_events WHERE received_at >= ?1 AND received_at < ?2");
            q.integer(1, a.received_from).integer(2, a.received_to).run();
            if (m_db.changes() != count)
                throw Error(ErrorCode::internal, "store", "prune " + a.month + ": the deletion changed its count");
        }
        {
            Query q(m_db, "UPDATE audit_archives SET pruned_at = ?2 WHERE month = ?1");
            q.text(1, a.month).integer(2, now).run();
        }
        insert_event(event);
        tx.commit();
        return result;
    }

    int wake_fd() override { return -1; }
    std::vector<std::pair<std::string, std::string>> take_wakeups() override { return {}; }

private:
    // Runs `body` in BEGIN IMMEDIATE ... COMMIT (every write, even a single statement, so no
    // write ever has to upgrade a read lock).
    template <class F>
    auto write(F&& body) -> decltype(body()) {
        Transaction tx(m_db, Transaction::Kind::write);
        if constexpr (std::is_void_v<decltype(body())>) {
            body();
            tx.commit();
        } else {
            auto result = body();
            tx.commit();
            return result;
        }
    }

    std::optional<Request> load(std::string_view host, std::string_view id) {
        std::optional<Request> request;
        {
            Query q(m_db, "SELECT " JITGATE_REQUEST_COLUMNS " FROM requests WHERE host = ?1 AND id = ?2");
            q.text(1, host).text(2, id);
            if (!q.step()) return std::nullopt;
            request = read_request(q);
        }
        request->approvals = load_approvals(host, id);
        return request;
    }

    static Revocation read_revocation(const Query& q) {
        return Revocation{q.integer(0), q.text(1), q.text(2), q.text(3), q.text(4),
                          q.text(5),    q.text(6), q.text(7), q.text(8), q.integer(9)};
    }

    std::optional<Revocation> load_revocation(std::string_view host, std::string_view id) {
        Query q(m_db, "SELECT " JITGATE_REVOCATION_COLUMNS " FROM revocations WHERE host = ?1 AND request_id = ?2");
        q.text(1, host).text(2, id);
        if (!q.step()) return std::nullopt;
        return read_revocation(q);
    }

    Request load_or_fail(std::string_view host, std::string_view id) {
        auto request = load(host, id);
        if (!request) throw Error(ErrorCode::internal, "store", "a request vanished inside its transaction");
        return std::move(*request);
    }

    std::vector<Approval> load_approvals(std::string_view host, std::string_view id) {
        Query q(m_db, "SELECT " JITGATE_APPROVAL_COLUMNS " FROM approvals WHERE host = ?1 AND id = ?2 ORDER BY seq");
        q.text(1, host).text(2, id);
        std::vector<Approval> out;
        while (q.step()) out.push_back(Approval{q.text(0), q.text(1), q.text(2), q.text(3), q.text(4), q.integer(5)});
        return out;
    }

    // --- break-glass reviews ---
    void open_review(const std::string& host, const AuditEvent& e, std::int64_t now, const IngestOptions& options) {
        Query q(m_db, "INSERT INTO break_glass_reviews (host, event_id, user_name, time, opened_at, due_at) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (host, event_id) DO NOTHING");
        q.text(1, host)
            .text(2, e.event_id)
            .text(3, e.user)
            .text(4, e.time)
            .integer(5, now)
            .integer(6, now + options.break_glass_review_within_s)
            .run();
    }

    static BreakGlassReview read_review(const Query& q) {
        BreakGlassReview r;
        r.host = q.text(0);
        r.event_id = q.text(1);
        r.user_name = q.text(2);
        r.time = q.text(3);
        r.opened_at = q.integer(4);
        r.due_at = q.integer(5);
        r.closed = review_closed_from_column(q.text(6));
        r.reviewer = q.text(7);
        r.reviewer_identity = q.text(8);
        r.note = q.text(9);
        r.closed_at = q.integer(10);
        r.overdue_alerted_at = q.integer(11);
        return r;
    }

    // id, host, received_at, then JITGATE_AUDIT_EVENT_COLUMNS.
    static StoredAuditEvent read_stored_event(const Query& q) {
        return StoredAuditEvent{q.integer(0), q.text(1), q.integer(2),
                                AuditEvent{q.text(3), q.integer(4), q.text(5), q.text(6), q.text(7), q.text(8),
                                           q.text(9), q.text(10), q.text(11)}};
    }

    std::optional<BreakGlassReview> load_review(std::string_view host, std::string_view event_id) {
        Query q(m_db, "SELECT " JITGATE_REVIEW_COLUMNS " FROM break_glass_reviews WHERE host = ?1 AND event_id = ?2");
        q.text(1, host).text(2, event_id);
        if (!q.step()) return std::nullopt;
        return read_review(q);
    }

    std::string stored_line(std::string_view host, std::string_view event_id) {
        Query q(m_db, "SELECT line FROM audit_events WHERE host = ?1 AND event_id = ?2");
        q.text(1, host).text(2, event_id);
        return q.step() ? q.text(0) : std::string();
    }
    // --- end of break-glass reviews ---

    std::optional<AuditChain> load_chain(std::string_view host) {
        Query q(m_db, "SELECT " JITGATE_CHAIN_COLUMNS " FROM audit_chains WHERE host = ?1");
        q.text(1, host);
        if (!q.step()) return std::nullopt;
        return read_chain(q);
    }

    static AuditChain read_chain(const Query& q) {
        AuditChain c;
        c.host = q.text(0);
        c.last_seq = q.integer(1);
        c.last_hash = q.text(2);
        c.last_event_id = q.text(3);
        c.broken = chain_broken_from_column(q.text(4));
        c.problem = q.text(5);
        c.problem_seq = q.integer(6);
        c.problem_at = q.integer(7);
        c.last_seen = q.integer(8);
        c.events = q.integer(9);
        c.restarts = q.integer(10);
        c.restart_at = q.integer(11);
        c.restart_previous_seq = q.integer(12);
        c.restart_previous_hash = q.text(13);
        c.reported_seq = q.integer(14);
        c.reported_at = q.integer(15);
        c.pruned_through_seq = q.integer(16);
        c.pruned_through_hash = q.text(17);
        return c;
    }

    static AuditArchive read_archive(const Query& q) {
        return AuditArchive{q.text(0), q.integer(1), q.integer(2), q.integer(3), q.integer(4),
                            q.text(5), q.integer(6), q.text(7),    q.integer(8)};
    }

    static std::vector<StoredAuditEvent> read_stored_events(Query& q) {
        std::vector<StoredAuditEvent> out;
        while (q.step()) out.push_back(read_stored_event(q));
        return out;
    }

    void save_chain(const AuditChain& c) {
        Query q(m_db, "INSERT INTO audit_chains (" JITGATE_CHAIN_COLUMNS ") VALUES "
                      "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) "
                      "ON CONFLICT (host) DO UPDATE SET "
                      "last_seq = excluded.last_seq, last_hash = excluded.last_hash, "
                      "last_event_id = excluded.last_event_id, status = excluded.status, problem = excluded.problem, "
                      "problem_seq = excluded.problem_seq, problem_at = excluded.problem_at, "
                      "last_seen = excluded.last_seen, events = excluded.events, restarts = excluded.restarts, "
                      "restart_at = excluded.restart_at, restart_previous_seq = excluded.restart_previous_seq, "
                      "restart_previous_hash = excluded.restart_previous_hash, reported_seq = excluded.reported_seq, "
                      "reported_at = excluded.reported_at, pruned_through_seq = excluded.pruned_through_seq, "
                      "pruned_through_hash = excluded.pruned_through_hash");
        q.text(1, c.host)
            .integer(2, c.last_seq)
            .text(3, c.last_hash)
            .text(4, c.last_event_id)
            .text(5, c.broken ? "broken" : "ok")
            .text(6, c.problem)
            .integer(7, c.problem_seq)
            .integer(8, c.problem_at)
            .integer(9, c.last_seen)
            .integer(10, c.events)
            .integer(11, c.restarts)
            .integer(12, c.restart_at)
            .integer(13, c.restart_previous_seq)
            .text(14, c.restart_previous_hash)
            .integer(15, c.reported_seq)
            .integer(16, c.reported_at)
            .integer(17, c.pruned_through_seq)
            .text(18, c.pruned_through_hash)
            .run();
    }

    void insert_event(const Event& e) {
        Query q(m_db, "INSERT INTO events (at, type, host, request_id, actor, identity, source_address, detail) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
        q.integer(1, e.at)
            .text(2, e.type)
            .text(3, e.host)
            .text(4, e.request_id)
            .text(5, e.actor)
            .text(6, e.identity)
            .text(7, e.source_address)
            .text(8, e.detail.empty() ? std::string("{}") : e.detail)
            .run();
    }

    sqlite::Db m_db;
};

} // namespace

std::string sqlite_audit_search_sql(const AuditSearch& search) {
    // A filter left out, rather than `(?1 = '' OR host = ?1)`: SQLite cannot use an index for
    // such an OR, and scanned the whole table (on the event loop) for every search. At most 64
    // texts, so the statement cache stays small. ?7 always appears, so ?1..?7 can all be bound.
    std::string sql = "SELECT id, host, received_at, " JITGATE_AUDIT_EVENT_COLUMNS " FROM audit_events WHERE ";
    sql += search.oldest_first ? "id > ?6" : "id < ?6";
    if (!search.host.empty()) sql += " AND host = ?1";
    // `user_name <> ''` lets SQLite use the partial index audit_events_user.
    if (!search.user.empty()) sql += " AND user_name = ?2 AND user_name <> ''";
    if (!search.type.empty()) sql += " AND type = ?3";
    if (!search.from.empty()) sql += " AND time >= ?4";
    if (!search.to.empty()) sql += " AND time < ?5";
    sql += search.oldest_first ? " ORDER BY id LIMIT ?7" : " ORDER BY id DESC LIMIT ?7";
    return sql;
}

std::unique_ptr<Store> open_sqlite(const std::string& path) {
    return std::make_unique<SqliteStore>(path);
}

} // namespace jitgate::server::store
