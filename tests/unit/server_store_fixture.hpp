// tests/unit/server_store_fixture.hpp — what the tests of server/store and of the tools that
// read it (the evidence report) share: a fresh database per test on SQLite (a file in a
// temporary directory) or on the real PostgreSQL 15 of the pg_scratch ctest fixture (its
// conninfo comes through the file named by JITGATE_TEST_PG_CONNINFO_FILE; each case gets its
// own schema, so cases run in parallel; a missing PostgreSQL fails, never skips), and a host's
// chain of real, correctly hashed audit events.
#pragma once

#include "lib/audit_event.hpp"
#include "server/store/store.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <string>
#include <unistd.h>

namespace jitgate::test_store {

using namespace jitgate::server::store;
namespace fs = std::filesystem;

enum class Backend { sqlite, postgres };

inline std::string pg_base_conninfo() {
    const char* file = std::getenv("JITGATE_TEST_PG_CONNINFO_FILE");
    if (file == nullptr || *file == '\0')
        throw std::runtime_error("JITGATE_TEST_PG_CONNINFO_FILE is not set: run this test through ctest, which starts "
                                 "PostgreSQL (the pg_scratch fixture)");
    std::ifstream in(file);
    std::string conninfo;
    if (!std::getline(in, conninfo) || conninfo.empty())
        throw std::runtime_error(std::string("no PostgreSQL conninfo in ") + file + " (did pg_scratch.start fail?)");
    return conninfo;
}

// A libpq connection for the test's own administration (schemas, tampering).
class PgAdmin {
public:
    explicit PgAdmin(const std::string& conninfo) : m_conn(PQconnectdb(conninfo.c_str())) {
        if (PQstatus(m_conn) != CONNECTION_OK)
            throw std::runtime_error(std::string("cannot connect to the test PostgreSQL: ") + PQerrorMessage(m_conn));
    }
    ~PgAdmin() { PQfinish(m_conn); }
    PgAdmin(const PgAdmin&) = delete;
    PgAdmin& operator=(const PgAdmin&) = delete;
    // Test-made SQL only (schema names from the pid and a counter, no outside data).
    std::string run(const std::string& sql) {
        PGresult* r = PQexec(m_conn, sql.c_str());
        const auto status = PQresultStatus(r);
        std::string value = (status == PGRES_TUPLES_OK && PQntuples(r) > 0) ? PQgetvalue(r, 0, 0) : "";
        const std::string error = PQresultErrorMessage(r);
        PQclear(r);
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) throw std::runtime_error(sql + ": " + error);
        return value;
    }

private:
    PGconn* m_conn;
};

// One fresh database per test: a SQLite file in its own directory, or a PostgreSQL schema.
class Database {
public:
    explicit Database(Backend backend) : m_backend(backend) {
        static std::atomic<int> counter{0};
        const std::string tag = std::to_string(::getpid()) + "_" + std::to_string(counter++);
        if (backend == Backend::sqlite) {
            m_dir = fs::temp_directory_path() / ("jitgate-store-" + tag);
            fs::remove_all(m_dir);
            fs::create_directories(m_dir);
            m_path = (m_dir / "store.db").string();
        } else {
            m_base = pg_base_conninfo();
            m_schema = "t_" + tag;
            m_application = "jitgate_test_" + tag;
            PgAdmin admin(m_base);
            admin.run("DROP SCHEMA IF EXISTS " + m_schema + " CASCADE");
            admin.run("CREATE SCHEMA " + m_schema);
            m_path = m_base + " options='-c search_path=" + m_schema + "' application_name=" + m_application;
        }
    }
    ~Database() {
        try {
            if (m_backend == Backend::sqlite) {
                fs::remove_all(m_dir);
            } else {
                PgAdmin admin(m_base);
                admin.run("DROP SCHEMA IF EXISTS " + m_schema + " CASCADE");
            }
        } catch (...) {
        }
    }
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    int migrate() { return m_backend == Backend::sqlite ? migrate_sqlite(m_path) : migrate_postgres(m_path); }
    std::unique_ptr<Store> open() { return m_backend == Backend::sqlite ? open_sqlite(m_path) : open_postgres(m_path); }

    // Records a schema version this program does not know, as a newer release would.
    void pretend_newer_schema() {
        if (m_backend == Backend::sqlite) {
            sqlite3* db = nullptr;
            ASSERT_EQ(sqlite3_open(m_path.c_str(), &db), SQLITE_OK);
            const std::string sql = "INSERT INTO schema_version (version, applied_at) VALUES (" +
                                    std::to_string(k_schema_version + 1) + ", 0)";
            EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
            sqlite3_close(db);
        } else {
            PgAdmin admin(m_base);
            admin.run("INSERT INTO " + m_schema + ".schema_version (version, applied_at) VALUES (" +
                      std::to_string(k_schema_version + 1) + ", 0)");
        }
    }

    int migrate_up_to(int version) {
        return m_backend == Backend::sqlite ? migrate_sqlite(m_path, version) : migrate_postgres(m_path, version);
    }

    // Runs test-made SQL on the database directly (as an older release would have written it).
    void exec(const std::string& sql) {
        if (m_backend == Backend::sqlite) {
            sqlite3* db = nullptr;
            ASSERT_EQ(sqlite3_open(m_path.c_str(), &db), SQLITE_OK);
            char* message = nullptr;
            const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
            EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (message != nullptr ? message : "");
            sqlite3_free(message);
            sqlite3_close(db);
        } else {
            PgAdmin admin(m_base);
            admin.run("SET search_path = " + m_schema + "; " + sql);
        }
    }

    // PostgreSQL only: the first value of test-made SQL run in the test's schema ("" for none).
    std::string pg_value(const std::string& sql) {
        PgAdmin admin(m_base);
        return admin.run("SET search_path = " + m_schema + "; " + sql);
    }

    // Ends the store's PostgreSQL sessions from outside (a server restart, a failover).
    int terminate_connections() {
        PgAdmin admin(m_base);
        return std::stoi(
            admin.run("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '" +
                      m_application + "'"));
    }

    const std::string& path() const { return m_path; }

private:
    Backend m_backend;
    fs::path m_dir;
    std::string m_path; // SQLite file, or the store's conninfo
    std::string m_base;
    std::string m_schema;
    std::string m_application;
};

inline std::string backend_name(const testing::TestParamInfo<Backend>& info) {
    return info.param == Backend::sqlite ? "sqlite" : "postgres";
}

// A host's chain of real events: each line is the canonical form with its SHA-256 hash, as
// jitgated writes them (lib/audit_event).
class HostChain {
public:
    explicit HostChain(std::string host) : m_host(std::move(host)) {}
    // The next event of the chain (seq last + 1, prev_hash the last hash).
    AuditEvent next(const std::string& type = "access.allowed_by_rule", const std::string& request_id = "") {
        return make(m_seq + 1, m_hash, type, request_id);
    }
    // An event at any seq and prev_hash; the chain continues from it.
    AuditEvent make(std::int64_t seq, std::string prev_hash, const std::string& type = "command.finished",
                    const std::string& request_id = "", const std::string& user = "alice") {
        nlohmann::json e{{"time", "2026-11-24T03:05:56.548Z"}, {"type", type}, {"user", user}};
        if (!request_id.empty()) e["request_id"] = request_id;
        return make_with(seq, std::move(prev_hash), std::move(e));
    }
    // The next event with these members (type, time, user, request_id, command, argv...); the
    // common ones (event_id, host, seq, prev_hash, hash) are set here, time if missing.
    AuditEvent next_with(nlohmann::json members) { return make_with(m_seq + 1, m_hash, std::move(members)); }
    AuditEvent make_with(std::int64_t seq, std::string prev_hash, nlohmann::json e) {
        e["event_id"] = m_host + "-ev-" + std::to_string(++m_counter);
        e["host"] = m_host;
        e["seq"] = seq;
        e["prev_hash"] = prev_hash;
        if (!e.contains("time")) e["time"] = "2026-11-24T03:05:56.548Z";
        e["hash"] = jitgate::audit::sha256_hex(jitgate::audit::canonical_bytes(e));
        m_seq = seq;
        m_hash = e["hash"].get<std::string>();
        return AuditEvent{e["event_id"].get<std::string>(),
                          seq,
                          m_hash,
                          prev_hash,
                          e["time"].get<std::string>(),
                          e.value("type", std::string()),
                          e.value("request_id", std::string()),
                          e.dump(),
                          e.value("user", std::string())};
    }
    // The next event of the chain by `user`, with more members (login_user, time, ...).
    AuditEvent next_by(const std::string& type, const std::string& user, const nlohmann::json& extra = {}) {
        nlohmann::json members = extra.is_null() ? nlohmann::json::object() : extra;
        members["type"] = type;
        members["user"] = user;
        return next_with(std::move(members));
    }
    // Starts over: the next event is seq 1 with the genesis prev_hash.
    void reset() {
        m_seq = 0;
        m_hash = jitgate::audit::k_genesis_hash;
    }
    std::int64_t seq() const { return m_seq; }
    const std::string& hash() const { return m_hash; }

private:
    std::string m_host;
    std::int64_t m_seq = 0;
    std::string m_hash = jitgate::audit::k_genesis_hash;
    int m_counter = 0;
};

} // namespace jitgate::test_store
