// server/store/migrations.cpp — the versioned schema of jitgate-server's database, for SQLite
// and PostgreSQL, and `jitgate-server migrate` (migrate_sqlite, migrate_postgres).
//
// Each step takes the database from version N-1 to N and records N in schema_version; the
// steps a database still needs run in one transaction (both databases have transactional DDL),
// so a crash leaves it at the version it had or at the newest, never in between. Several
// migrators (replicas starting together) are serialised: BEGIN EXCLUSIVE on SQLite,
// pg_advisory_xact_lock on PostgreSQL; the second one finds the step done and skips it.
// To change the schema, append a step (never edit a released one) and raise k_schema_version.
#include "server/store/schema.hpp"
#include "server/store/store.hpp"

#include <jitgate/error.hpp>

#include <ctime>
#include <initializer_list>

namespace jitgate::server::store {

namespace {

struct Step {
    int version;
    std::initializer_list<const char*> sqlite;
    std::initializer_list<const char*> postgres;
};

// Times are Unix seconds. Text columns are NOT NULL with '' for "none", as the structs in
// store.hpp have them. `grant` is quoted: it is an SQL keyword.
const Step k_steps[] = {
    {1,
     {
         R"(CREATE TABLE requests (
              host TEXT NOT NULL,
              id TEXT NOT NULL,
              body TEXT NOT NULL,
              requester TEXT NOT NULL,
              requester_login TEXT NOT NULL DEFAULT '',
              rule TEXT NOT NULL DEFAULT '',
              status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
              approvals_needed INTEGER NOT NULL CHECK (approvals_needed >= 1),
              approver_groups TEXT NOT NULL DEFAULT '[]',
              created_at INTEGER NOT NULL,
              expires_at INTEGER NOT NULL,
              decided_at INTEGER NOT NULL DEFAULT 0,
              "grant" TEXT NOT NULL DEFAULT '',
              grant_id TEXT NOT NULL DEFAULT '',
              decided_by TEXT NOT NULL DEFAULT '',
              decision_reason TEXT NOT NULL DEFAULT '',
              ticket_check TEXT NOT NULL DEFAULT '',
              PRIMARY KEY (host, id),
              CHECK (status <> 'approved' OR "grant" <> '')
            ) STRICT)",
         "CREATE INDEX requests_pending ON requests (status, created_at)",
         "CREATE INDEX requests_due ON requests (status, expires_at)",
         "CREATE INDEX requests_history ON requests (decided_at)",
         R"(CREATE TABLE approvals (
              seq INTEGER PRIMARY KEY,
              host TEXT NOT NULL,
              id TEXT NOT NULL,
              approver TEXT NOT NULL,
              identity TEXT NOT NULL DEFAULT '',
              comment TEXT NOT NULL DEFAULT '',
              source_address TEXT NOT NULL DEFAULT '',
              via TEXT NOT NULL DEFAULT '',
              at INTEGER NOT NULL,
              UNIQUE (host, id, approver),
              FOREIGN KEY (host, id) REFERENCES requests (host, id) ON DELETE CASCADE
            ) STRICT)",
         R"(CREATE TABLE events (
              id INTEGER PRIMARY KEY,
              at INTEGER NOT NULL,
              type TEXT NOT NULL,
              host TEXT NOT NULL DEFAULT '',
              request_id TEXT NOT NULL DEFAULT '',
              actor TEXT NOT NULL DEFAULT '',
              identity TEXT NOT NULL DEFAULT '',
              source_address TEXT NOT NULL DEFAULT '',
              detail TEXT NOT NULL DEFAULT '{}'
            ) STRICT)",
         "CREATE INDEX events_request ON events (host, request_id, id)",
         R"(CREATE TABLE sessions (
              token_sha256 TEXT PRIMARY KEY,
              identity TEXT NOT NULL,
              unix_user TEXT NOT NULL,
              display_name TEXT NOT NULL DEFAULT '',
              approver_groups TEXT NOT NULL DEFAULT '[]',
              csrf_token TEXT NOT NULL,
              created_at INTEGER NOT NULL,
              expires_at INTEGER NOT NULL
            ) STRICT)",
         "CREATE INDEX sessions_expiry ON sessions (expires_at)",
         R"(CREATE TABLE logins (
              state TEXT PRIMARY KEY,
              nonce TEXT NOT NULL,
              code_verifier TEXT NOT NULL,
              return_to TEXT NOT NULL DEFAULT '',
              expires_at INTEGER NOT NULL
            ) STRICT)",
         "CREATE INDEX logins_expiry ON logins (expires_at)",
         R"(CREATE TABLE notices (
              id INTEGER PRIMARY KEY,
              target TEXT NOT NULL,
              body TEXT NOT NULL,
              attempts INTEGER NOT NULL DEFAULT 0,
              next_attempt_at INTEGER NOT NULL,
              claimed_until INTEGER NOT NULL DEFAULT 0,
              last_error TEXT NOT NULL DEFAULT '',
              state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dropped'))
            ) STRICT)",
         "CREATE INDEX notices_due ON notices (state, next_attempt_at)",
     },
     {
         R"(CREATE TABLE requests (
              host TEXT NOT NULL,
              id TEXT NOT NULL,
              body TEXT NOT NULL,
              requester TEXT NOT NULL,
              requester_login TEXT NOT NULL DEFAULT '',
              rule TEXT NOT NULL DEFAULT '',
              status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
              approvals_needed INTEGER NOT NULL CHECK (approvals_needed >= 1),
              approver_groups TEXT NOT NULL DEFAULT '[]',
              created_at BIGINT NOT NULL,
              expires_at BIGINT NOT NULL,
              decided_at BIGINT NOT NULL DEFAULT 0,
              "grant" TEXT NOT NULL DEFAULT '',
              grant_id TEXT NOT NULL DEFAULT '',
              decided_by TEXT NOT NULL DEFAULT '',
              decision_reason TEXT NOT NULL DEFAULT '',
              ticket_check TEXT NOT NULL DEFAULT '',
              PRIMARY KEY (host, id),
              CHECK (status <> 'approved' OR "grant" <> '')
            ))",
         "CREATE INDEX requests_pending ON requests (status, created_at)",
         "CREATE INDEX requests_due ON requests (status, expires_at)",
         "CREATE INDEX requests_history ON requests (decided_at)",
         R"(CREATE TABLE approvals (
              seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              host TEXT NOT NULL,
              id TEXT NOT NULL,
              approver TEXT NOT NULL,
              identity TEXT NOT NULL DEFAULT '',
              comment TEXT NOT NULL DEFAULT '',
              source_address TEXT NOT NULL DEFAULT '',
              via TEXT NOT NULL DEFAULT '',
              at BIGINT NOT NULL,
              UNIQUE (host, id, approver),
              FOREIGN KEY (host, id) REFERENCES requests (host, id) ON DELETE CASCADE
            ))",
         R"(CREATE TABLE events (
              id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              at BIGINT NOT NULL,
              type TEXT NOT NULL,
              host TEXT NOT NULL DEFAULT '',
              request_id TEXT NOT NULL DEFAULT '',
              actor TEXT NOT NULL DEFAULT '',
              identity TEXT NOT NULL DEFAULT '',
              source_address TEXT NOT NULL DEFAULT '',
              detail TEXT NOT NULL DEFAULT '{}'
            ))",
         "CREATE INDEX events_request ON events (host, request_id, id)",
         R"(CREATE TABLE sessions (
              token_sha256 TEXT PRIMARY KEY,
              identity TEXT NOT NULL,
              unix_user TEXT NOT NULL,
              display_name TEXT NOT NULL DEFAULT '',
              approver_groups TEXT NOT NULL DEFAULT '[]',
              csrf_token TEXT NOT NULL,
              created_at BIGINT NOT NULL,
              expires_at BIGINT NOT NULL
            ))",
         "CREATE INDEX sessions_expiry ON sessions (expires_at)",
         R"(CREATE TABLE logins (
              state TEXT PRIMARY KEY,
              nonce TEXT NOT NULL,
              code_verifier TEXT NOT NULL,
              return_to TEXT NOT NULL DEFAULT '',
              expires_at BIGINT NOT NULL
            ))",
         "CREATE INDEX logins_expiry ON logins (expires_at)",
         R"(CREATE TABLE notices (
              id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              target TEXT NOT NULL,
              body TEXT NOT NULL,
              attempts INTEGER NOT NULL DEFAULT 0,
              next_attempt_at BIGINT NOT NULL,
              claimed_until BIGINT NOT NULL DEFAULT 0,
              last_error TEXT NOT NULL DEFAULT '',
              state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dropped'))
            ))",
         "CREATE INDEX notices_due ON notices (state, next_attempt_at)",
     }},
    // 2: the fleet's audit store (docs/audit.md §5): every host's events as sent, unique per
    // (host, event_id), and each host's chain state. `line` is the event exactly as the host
    // sent it (its hash can be checked again at any time); the other columns are copies of its
    // members for queries; and an index for the per-host pending count. PostgreSQL: not partitioned yet (one table;
    // monthly partitions are a later step, see docs/server.md "Audit store").
    {2,
     {
         R"(CREATE TABLE audit_events (
              id INTEGER PRIMARY KEY,
              host TEXT NOT NULL,
              event_id TEXT NOT NULL,
              seq INTEGER NOT NULL CHECK (seq >= 1),
              hash TEXT NOT NULL,
              prev_hash TEXT NOT NULL,
              time TEXT NOT NULL,
              type TEXT NOT NULL,
              request_id TEXT NOT NULL DEFAULT '',
              line TEXT NOT NULL,
              received_at INTEGER NOT NULL,
              UNIQUE (host, event_id)
            ) STRICT)",
         "CREATE INDEX audit_events_seq ON audit_events (host, seq)",
         "CREATE INDEX audit_events_request ON audit_events (host, request_id) WHERE request_id <> ''",
         R"(CREATE TABLE audit_chains (
              host TEXT PRIMARY KEY,
              last_seq INTEGER NOT NULL DEFAULT 0,
              last_hash TEXT NOT NULL DEFAULT '',
              last_event_id TEXT NOT NULL DEFAULT '',
              status TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'broken')),
              problem TEXT NOT NULL DEFAULT '',
              problem_seq INTEGER NOT NULL DEFAULT 0,
              problem_at INTEGER NOT NULL DEFAULT 0,
              last_seen INTEGER NOT NULL DEFAULT 0,
              events INTEGER NOT NULL DEFAULT 0
            ) STRICT)",
         // A filing counts its host's pending requests up to hosts.max_pending_per_host: with
         // this index that reads at most that many entries, whatever the host's history.
         "CREATE INDEX requests_host_pending ON requests (host, status, expires_at)",
     },
     {
         R"(CREATE TABLE audit_events (
              id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              host TEXT NOT NULL,
              event_id TEXT NOT NULL,
              seq BIGINT NOT NULL CHECK (seq >= 1),
              hash TEXT NOT NULL,
              prev_hash TEXT NOT NULL,
              time TEXT NOT NULL,
              type TEXT NOT NULL,
              request_id TEXT NOT NULL DEFAULT '',
              line TEXT NOT NULL,
              received_at BIGINT NOT NULL,
              UNIQUE (host, event_id)
            ))",
         "CREATE INDEX audit_events_seq ON audit_events (host, seq)",
         "CREATE INDEX audit_events_request ON audit_events (host, request_id) WHERE request_id <> ''",
         R"(CREATE TABLE audit_chains (
              host TEXT PRIMARY KEY,
              last_seq BIGINT NOT NULL DEFAULT 0,
              last_hash TEXT NOT NULL DEFAULT '',
              last_event_id TEXT NOT NULL DEFAULT '',
              status TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'broken')),
              problem TEXT NOT NULL DEFAULT '',
              problem_seq BIGINT NOT NULL DEFAULT 0,
              problem_at BIGINT NOT NULL DEFAULT 0,
              last_seen BIGINT NOT NULL DEFAULT 0,
              events BIGINT NOT NULL DEFAULT 0
            ))",
         "CREATE INDEX requests_host_pending ON requests (host, status, expires_at)",
     }},
    // Version 3: what auditors read (issue 14). The user of each host event as a column (search by
    // user), indexes for reading by time, type and user (the evidence report and the auditor's
    // search over millions of events), the server's events and requests by time, and the
    // break-glass reviews: one per stored `access.break_glass` event, opened in the ingest
    // transaction, closed by a reviewer other than the user with a note.
    {3,
     {
         "ALTER TABLE audit_events ADD COLUMN user_name TEXT NOT NULL DEFAULT ''",
         "CREATE INDEX audit_events_time ON audit_events (time)",
         "CREATE INDEX audit_events_user ON audit_events (user_name, time) WHERE user_name <> ''",
         "CREATE INDEX audit_events_type ON audit_events (type, time)",
         "CREATE INDEX events_at ON events (at)",
         "CREATE INDEX requests_created ON requests (created_at)",
         R"(CREATE TABLE break_glass_reviews (
              host TEXT NOT NULL,
              event_id TEXT NOT NULL,
              user_name TEXT NOT NULL DEFAULT '',
              time TEXT NOT NULL,
              opened_at INTEGER NOT NULL,
              due_at INTEGER NOT NULL,
              status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
              reviewer TEXT NOT NULL DEFAULT '',
              reviewer_identity TEXT NOT NULL DEFAULT '',
              note TEXT NOT NULL DEFAULT '',
              closed_at INTEGER NOT NULL DEFAULT 0,
              overdue_alerted_at INTEGER NOT NULL DEFAULT 0,
              PRIMARY KEY (host, event_id)
            ) STRICT)",
         "CREATE INDEX break_glass_due ON break_glass_reviews (status, due_at)",
         "CREATE INDEX break_glass_time ON break_glass_reviews (time)",
     },
     {
         "ALTER TABLE audit_events ADD COLUMN user_name TEXT NOT NULL DEFAULT ''",
         "CREATE INDEX audit_events_time ON audit_events (time)",
         "CREATE INDEX audit_events_user ON audit_events (user_name, time) WHERE user_name <> ''",
         "CREATE INDEX audit_events_type ON audit_events (type, time)",
         "CREATE INDEX events_at ON events (at)",
         "CREATE INDEX requests_created ON requests (created_at)",
         R"(CREATE TABLE break_glass_reviews (
              host TEXT NOT NULL,
              event_id TEXT NOT NULL,
              user_name TEXT NOT NULL DEFAULT '',
              time TEXT NOT NULL,
              opened_at BIGINT NOT NULL,
              due_at BIGINT NOT NULL,
              status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
              reviewer TEXT NOT NULL DEFAULT '',
              reviewer_identity TEXT NOT NULL DEFAULT '',
              note TEXT NOT NULL DEFAULT '',
              closed_at BIGINT NOT NULL DEFAULT 0,
              overdue_alerted_at BIGINT NOT NULL DEFAULT 0,
              PRIMARY KEY (host, event_id)
            ))",
         "CREATE INDEX break_glass_due ON break_glass_reviews (status, due_at)",
         "CREATE INDEX break_glass_time ON break_glass_reviews (time)",
     }},
    // Version 4: a host's chain started over at seq 1 (a wiped spool, a reinstalled host) is
    // shown in GET /v1/audit/state: how many times, and the last one's time and the seq and
    // hash of the chain it ended (issue 14).
    {4,
     {
         "ALTER TABLE audit_chains ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0",
         "ALTER TABLE audit_chains ADD COLUMN restart_at INTEGER NOT NULL DEFAULT 0",
         "ALTER TABLE audit_chains ADD COLUMN restart_previous_seq INTEGER NOT NULL DEFAULT 0",
         "ALTER TABLE audit_chains ADD COLUMN restart_previous_hash TEXT NOT NULL DEFAULT ''",
     },
     {
         "ALTER TABLE audit_chains ADD COLUMN restarts BIGINT NOT NULL DEFAULT 0",
         "ALTER TABLE audit_chains ADD COLUMN restart_at BIGINT NOT NULL DEFAULT 0",
         "ALTER TABLE audit_chains ADD COLUMN restart_previous_seq BIGINT NOT NULL DEFAULT 0",
         "ALTER TABLE audit_chains ADD COLUMN restart_previous_hash TEXT NOT NULL DEFAULT ''",
     }},
    // Version 5 (issue 14): each host's shipping backlog as its shipper reports it; the retention
    // anchor of a chain whose oldest months were pruned; and the record of archive exports, which
    // a prune requires.
    {5,
     {
         "ALTER TABLE audit_chains ADD COLUMN reported_seq INTEGER NOT NULL DEFAULT 0",
         "ALTER TABLE audit_chains ADD COLUMN reported_at INTEGER NOT NULL DEFAULT 0",
         "ALTER TABLE audit_chains ADD COLUMN pruned_through_seq INTEGER NOT NULL DEFAULT 0",
         "ALTER TABLE audit_chains ADD COLUMN pruned_through_hash TEXT NOT NULL DEFAULT ''",
         R"(CREATE TABLE audit_archives (
              month TEXT PRIMARY KEY CHECK (length(month) = 7),
              received_from INTEGER NOT NULL,
              received_to INTEGER NOT NULL,
              events INTEGER NOT NULL,
              hosts INTEGER NOT NULL,
              manifest_sha256 TEXT NOT NULL,
              exported_at INTEGER NOT NULL,
              exported_by TEXT NOT NULL DEFAULT '',
              pruned_at INTEGER NOT NULL DEFAULT 0
            ) STRICT)",
     },
     {
         "ALTER TABLE audit_chains ADD COLUMN reported_seq BIGINT NOT NULL DEFAULT 0",
         "ALTER TABLE audit_chains ADD COLUMN reported_at BIGINT NOT NULL DEFAULT 0",
         "ALTER TABLE audit_chains ADD COLUMN pruned_through_seq BIGINT NOT NULL DEFAULT 0",
         "ALTER TABLE audit_chains ADD COLUMN pruned_through_hash TEXT NOT NULL DEFAULT ''",
         R"(CREATE TABLE audit_archives (
              month TEXT PRIMARY KEY CHECK (length(month) = 7),
              received_from BIGINT NOT NULL,
              received_to BIGINT NOT NULL,
              events BIGINT NOT NULL,
              hosts BIGINT NOT NULL,
              manifest_sha256 TEXT NOT NULL,
              exported_at BIGINT NOT NULL,
              exported_by TEXT NOT NULL DEFAULT '',
              pruned_at BIGINT NOT NULL DEFAULT 0
            ))",
     }},
    // Version 6 (issue 14, retention): the month of each event by the server's clock
    // (received_at, never the host's `time`: a host's word would let it pick its partitions)
    // for the export, the prune and the oldest month. PostgreSQL: audit_events becomes
    // PARTITION BY RANGE (received_at), one partition per UTC calendar month
    // (audit_events_y2026m11), so a prune drops a month as one partition. The old table is
    // converted in this step: every row moves with its id; partitions are made for every month
    // present and the current one (the store adds the next ones: ensure_audit_partitions).
    // PostgreSQL 15 has no identity column on a partitioned table: ids come from a sequence.
    // A primary key or unique index of a partitioned table must hold the partition key, so
    // (host, event_id) is no longer a unique index: ingest() keeps it unique by holding the
    // host's audit_chains row FOR UPDATE and reading the batch's stored event_ids before its
    // INSERT (every writer of a host's events does both), and the index below serves that read.
    // No DEFAULT partition: an event for a month without one fails its batch (the host retries).
    {6,
     {
         "CREATE INDEX audit_events_received ON audit_events (received_at)",
     },
     {
         // The partition of the month holding Unix time t, created if missing; returns its name.
         // Names and bounds come from the month, never from data.
         R"(CREATE FUNCTION jitgate_audit_partition(t bigint) RETURNS text LANGUAGE plpgsql AS $f$
            DECLARE
              m timestamp := date_trunc('month', to_timestamp(t) AT TIME ZONE 'UTC');
              name text := 'audit_events_y' || to_char(m, 'YYYY') || 'm' || to_char(m, 'MM');
              lo bigint := extract(epoch FROM m AT TIME ZONE 'UTC')::bigint;
              hi bigint := extract(epoch FROM (m + interval '1 month') AT TIME ZONE 'UTC')::bigint;
            BEGIN
              IF to_regclass(quote_ident(name)) IS NULL THEN
                EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%s) TO (%s)', name, lo, hi);
              END IF;
              RETURN name;
            END $f$)",
         // Detaches and drops the partition of the month starting at Unix time t (a prune);
         // false when there is none. Refuses a partition whose bounds are not that month.
         R"(CREATE FUNCTION jitgate_drop_audit_partition(t bigint) RETURNS boolean LANGUAGE plpgsql AS $f$
            DECLARE
              m timestamp := date_trunc('month', to_timestamp(t) AT TIME ZONE 'UTC');
              name text := 'audit_events_y' || to_char(m, 'YYYY') || 'm' || to_char(m, 'MM');
              lo bigint := extract(epoch FROM m AT TIME ZONE 'UTC')::bigint;
              hi bigint := extract(epoch FROM (m + interval '1 month') AT TIME ZONE 'UTC')::bigint;
              bound text;
            BEGIN
              IF lo <> t THEN
                RAISE EXCEPTION 'jitgate_drop_audit_partition: % is not the start of a month', t;
              END IF;
              SELECT pg_get_expr(c.relpartbound, c.oid) INTO bound FROM pg_class c
                JOIN pg_inherits i ON i.inhrelid = c.oid
                WHERE c.oid = to_regclass(quote_ident(name)) AND i.inhparent = to_regclass('audit_events');
              IF bound IS NULL THEN
                RETURN false;
              END IF;
              IF replace(bound, '''', '') <> format('FOR VALUES FROM (%s) TO (%s)', lo, hi) THEN
                RAISE EXCEPTION 'partition % has bounds %, not the month % .. %', name, bound, lo, hi;
              END IF;
              EXECUTE format('ALTER TABLE audit_events DETACH PARTITION %I', name);
              EXECUTE format('DROP TABLE %I', name);
              RETURN true;
            END $f$)",
         "ALTER TABLE audit_events RENAME TO audit_events_v5",
         "CREATE SEQUENCE audit_events_ids AS bigint",
         R"(CREATE TABLE audit_events (
              id BIGINT NOT NULL DEFAULT nextval('audit_events_ids'),
              host TEXT NOT NULL,
              event_id TEXT NOT NULL,
              seq BIGINT NOT NULL CHECK (seq >= 1),
              hash TEXT NOT NULL,
              prev_hash TEXT NOT NULL,
              time TEXT NOT NULL,
              type TEXT NOT NULL,
              request_id TEXT NOT NULL DEFAULT '',
              line TEXT NOT NULL,
              received_at BIGINT NOT NULL,
              user_name TEXT NOT NULL DEFAULT ''
            ) PARTITION BY RANGE (received_at))",
         "SELECT count(jitgate_audit_partition(t)) FROM (SELECT min(received_at) AS t FROM audit_events_v5 "
         "GROUP BY date_trunc('month', to_timestamp(received_at) AT TIME ZONE 'UTC')) AS months",
         "SELECT jitgate_audit_partition(extract(epoch FROM now())::bigint)",
         "INSERT INTO audit_events (id, host, event_id, seq, hash, prev_hash, time, type, request_id, line, "
         "received_at, user_name) SELECT id, host, event_id, seq, hash, prev_hash, time, type, request_id, line, "
         "received_at, user_name FROM audit_events_v5 ORDER BY id",
         "SELECT setval('audit_events_ids', coalesce((SELECT max(id) FROM audit_events_v5), 1), "
         "(SELECT count(*) > 0 FROM audit_events_v5))",
         "DROP TABLE audit_events_v5",
         "ALTER SEQUENCE audit_events_ids OWNED BY audit_events.id",
         "ALTER TABLE audit_events ADD PRIMARY KEY (id, received_at)",
         "CREATE INDEX audit_events_event_id ON audit_events (host, event_id)",
         "CREATE INDEX audit_events_seq ON audit_events (host, seq)",
         "CREATE INDEX audit_events_request ON audit_events (host, request_id) WHERE request_id <> ''",
         "CREATE INDEX audit_events_time ON audit_events (time)",
         "CREATE INDEX audit_events_user ON audit_events (user_name, time) WHERE user_name <> ''",
         "CREATE INDEX audit_events_type ON audit_events (type, time)",
         "CREATE INDEX audit_events_received ON audit_events (received_at)",
     }},
    // Revocations of signed grants (docs/protocol.md §12). `seq` is the hosts' cursor: it only
    // grows, and rows are never deleted. Both stores give seq in commit order (SQLite: one
    // writer; PostgreSQL: revoke_grant() takes an advisory lock before it draws the next seq),
    // so a host that saw seq N has seen every row below N. One row per request: a second
    // revocation of the same grant changes nothing.
    {7,
     {
         R"(CREATE TABLE revocations (
              seq INTEGER PRIMARY KEY AUTOINCREMENT,
              host TEXT NOT NULL,
              request_id TEXT NOT NULL,
              grant_id TEXT NOT NULL,
              revoked_by TEXT NOT NULL,
              identity TEXT NOT NULL DEFAULT '',
              source_address TEXT NOT NULL DEFAULT '',
              via TEXT NOT NULL DEFAULT '',
              reason TEXT NOT NULL DEFAULT '',
              revoked_at INTEGER NOT NULL,
              UNIQUE (host, request_id),
              FOREIGN KEY (host, request_id) REFERENCES requests (host, id)
            ) STRICT)",
         "CREATE INDEX revocations_host ON revocations (host, seq)",
     },
     {
         R"(CREATE TABLE revocations (
              seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              host TEXT NOT NULL,
              request_id TEXT NOT NULL,
              grant_id TEXT NOT NULL,
              revoked_by TEXT NOT NULL,
              identity TEXT NOT NULL DEFAULT '',
              source_address TEXT NOT NULL DEFAULT '',
              via TEXT NOT NULL DEFAULT '',
              reason TEXT NOT NULL DEFAULT '',
              revoked_at BIGINT NOT NULL,
              UNIQUE (host, request_id),
              FOREIGN KEY (host, request_id) REFERENCES requests (host, id)
            ))",
         "CREATE INDEX revocations_host ON revocations (host, seq)",
     }},
};

static_assert(std::size(k_steps) == static_cast<std::size_t>(k_schema_version), "one step per schema version");

// Serialises migrators on one PostgreSQL database ("jitgate" in ASCII).
constexpr const char* k_migrate_lock = "29952296202892389";

constexpr const char* k_sqlite_version_table =
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT";
constexpr const char* k_postgres_version_table =
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)";

std::string newer_message(int found) {
    return "the database schema is version " + std::to_string(found) + ", newer than this program's (" +
           std::to_string(k_schema_version) +
           "): upgrade jitgate-server to a release that knows it (`jitgate-server migrate` never downgrades)";
}

} // namespace

void require_current_schema(int found, const std::string& where) {
    if (found == k_schema_version) return;
    if (found == 0)
        throw Error(ErrorCode::bad_input, where,
                    "the database has no jitgate-server schema; run `jitgate-server migrate`");
    if (found < k_schema_version)
        throw Error(ErrorCode::bad_input, where,
                    "the database schema is version " + std::to_string(found) + ", older than this program's (" +
                        std::to_string(k_schema_version) + "); run `jitgate-server migrate`");
    throw Error(ErrorCode::bad_input, where, newer_message(found));
}

int schema_version(sqlite::Db& db) {
    sqlite::Query table(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'");
    if (!table.step() || table.integer(0) == 0) return 0;
    sqlite::Query version(db, "SELECT coalesce(max(version), 0) FROM schema_version");
    return version.step() ? static_cast<int>(version.integer(0)) : 0;
}

int schema_version(pg::Connection& connection) {
    const pg::Result table = connection.exec("SELECT to_regclass('schema_version') IS NOT NULL");
    if (table.rows() != 1 || table.text(0, 0) != "t") return 0;
    const pg::Result version = connection.exec("SELECT coalesce(max(version), 0) FROM schema_version");
    return static_cast<int>(version.integer(0, 0));
}

int migrate_sqlite(const std::string& path, int up_to) {
    if (up_to <= 0) up_to = k_schema_version;
    sqlite::Db db(path, true);
    const std::string where = "sqlite " + path;
    sqlite::Transaction tx(db, sqlite::Transaction::Kind::exclusive);
    db.exec(k_sqlite_version_table);
    const int before = schema_version(db);
    if (before > k_schema_version) throw Error(ErrorCode::bad_input, where, newer_message(before));
    for (const Step& step : k_steps) {
        if (step.version > up_to) break;
        if (before >= step.version) continue; // done earlier, or by a migrator that ran meanwhile
        for (const char* sql : step.sqlite) db.exec(sql);
        sqlite::Query record(db, "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)");
        record.integer(1, step.version).integer(2, static_cast<std::int64_t>(std::time(nullptr))).run();
    }
    tx.commit();
    return before;
}

int migrate_postgres(const std::string& conninfo, int up_to) {
    if (up_to <= 0) up_to = k_schema_version;
    pg::Connection connection(conninfo);
    pg::Transaction tx(connection);
    connection.exec("SELECT pg_advisory_xact_lock($1::bigint)", {k_migrate_lock});
    connection.exec(k_postgres_version_table);
    const int before = schema_version(connection);
    if (before > k_schema_version) throw Error(ErrorCode::bad_input, connection.where(), newer_message(before));
    for (const Step& step : k_steps) {
        if (step.version > up_to) break;
        if (before >= step.version) continue;
        for (const char* sql : step.postgres) connection.exec(sql);
        connection.exec("INSERT INTO schema_version (version, applied_at) VALUES ($1::integer, $2::bigint)",
                        {std::to_string(step.version), std::to_string(std::time(nullptr))});
    }
    tx.commit();
    return before;
}

} // namespace jitgate::server::store
