// server/store/sqlite_db.cpp — the SQLite connection, statement and transaction wrappers.
#include "server/store/sqlite_db.hpp"

#include <jitgate/error.hpp>
#include <jitgate/text.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <sqlite3.h>
#include <thread>
#include <unistd.h>

namespace jitgate::server::store::sqlite {

namespace {

// Long enough for another connection's write transaction (they are short: a few statements
// and one fsync), short enough that a wedged writer shows up as an error, not a hang.
constexpr int k_busy_timeout_ms = 10000;

// Creates the file with mode 0600 if it is missing: it holds session token hashes and grants,
// and SQLite gives its -wal and -shm files the main file's mode.
void create_private_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
        ::close(fd);
        return;
    }
    if (errno != EEXIST)
        throw Error(ErrorCode::io, "sqlite " + path,
                    std::string("cannot create the database file: ") + std::strerror(errno));
}

} // namespace

Db::Db(const std::string& path, bool create) : m_path(path) {
    if (path.empty()) throw Error(ErrorCode::bad_input, "sqlite", "no database path configured");
    if (create) create_private_file(path);
    const int rc = sqlite3_open_v2(path.c_str(), &m_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
        const std::string message = m_db != nullptr ? sqlite3_errmsg(m_db) : sqlite3_errstr(rc);
        sqlite3_close(m_db);
        m_db = nullptr;
        if (rc == SQLITE_CANTOPEN && !create)
            throw Error(ErrorCode::bad_input, "sqlite " + path,
                        "cannot open the database (" + message + "); create it with `jitgate-server migrate`");
        throw Error(ErrorCode::io, "sqlite " + path, message);
    }
    sqlite3_extended_result_codes(m_db, 1);
    sqlite3_busy_timeout(m_db, k_busy_timeout_ms);
    // Defensive: no writable_schema tricks or other ways to corrupt the file through SQL.
    sqlite3_db_config(m_db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    sqlite3_db_config(m_db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
    try {
        // WAL: readers never block the writer and the file survives a crash at any point;
        // synchronous=FULL: a committed transaction is on disk when the call returns.
        set_wal_journal();
        exec("PRAGMA synchronous=FULL");
        // The log is copied back by SqliteCheckpointer's thread; a connection does it on its
        // own only past this many pages (store.hpp).
        exec("PRAGMA wal_autocheckpoint=10000");
        exec("PRAGMA foreign_keys=ON");
    } catch (...) {
        for (auto& [sql, stmt] : m_statements) sqlite3_finalize(stmt);
        m_statements.clear();
        sqlite3_close(m_db);
        m_db = nullptr;
        throw;
    }
}

Db::~Db() {
    for (auto& [sql, stmt] : m_statements) sqlite3_finalize(stmt);
    sqlite3_close(m_db);
}

void Db::exec(const char* sql) {
    Query query(*this, sql);
    query.run();
}

std::int64_t Db::changes() const noexcept {
    return sqlite3_changes64(m_db);
}

void Db::set_wal_journal() {
    // Switching a new database file to WAL needs it to itself for a moment, and SQLite answers
    // another connection doing the same (several processes starting on a fresh file) with
    // SQLITE_BUSY at once, without its busy handler: tried again for up to the busy timeout.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(k_busy_timeout_ms);
    for (;;) {
        sqlite3_stmt* stmt = nullptr;
        if (sqlite3_prepare_v2(m_db, "PRAGMA journal_mode=WAL", -1, &stmt, nullptr) != SQLITE_OK) fail("prepare");
        const int rc = sqlite3_step(stmt);
        const std::string mode = rc == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr
                                     ? std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)))
                                     : std::string();
        sqlite3_finalize(stmt);
        if (rc == SQLITE_ROW) {
            if (mode != "wal") fail("cannot switch to WAL journal mode");
            return;
        }
        if ((rc & 0xFF) != SQLITE_BUSY || std::chrono::steady_clock::now() >= deadline) fail("step");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

void Db::fail(std::string_view what) const {
    throw Error(ErrorCode::io, "sqlite " + m_path, std::string(what) + ": " + sqlite3_errmsg(m_db));
}

sqlite3_stmt* Db::statement(const char* sql) {
    if (auto it = m_statements.find(std::string_view(sql)); it != m_statements.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(m_db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) fail("prepare");
    m_statements.emplace(sql, stmt);
    return stmt;
}

Query::Query(Db& db, const char* sql) : m_db(db), m_stmt(db.statement(sql)) {
    // A statement is used by one Query at a time; a nested use of the same SQL is a bug here.
    if (sqlite3_stmt_busy(m_stmt) != 0) throw Error(ErrorCode::internal, "sqlite", "statement already in use");
}

Query::~Query() {
    sqlite3_reset(m_stmt);
    sqlite3_clear_bindings(m_stmt);
}

Query& Query::text(int index, std::string_view value) {
    // The same rule as the PostgreSQL store (which cannot hold either): bad input, refused.
    if (value.find('\0') != std::string_view::npos || !text::is_valid_utf8(value))
        throw Error(ErrorCode::bad_input, "store", "a text value holds NUL or invalid UTF-8");
    if (sqlite3_bind_text64(m_stmt, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8) != SQLITE_OK)
        m_db.fail("bind");
    return *this;
}

Query& Query::integer(int index, std::int64_t value) {
    if (sqlite3_bind_int64(m_stmt, index, value) != SQLITE_OK) m_db.fail("bind");
    return *this;
}

bool Query::step() {
    const int rc = sqlite3_step(m_stmt);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    m_db.fail("step");
}

void Query::run() {
    while (step()) {
    }
}

std::string Query::text(int column) const {
    const auto* data = sqlite3_column_text(m_stmt, column);
    const int size = sqlite3_column_bytes(m_stmt, column);
    return data != nullptr ? std::string(reinterpret_cast<const char*>(data), static_cast<std::size_t>(size))
                           : std::string();
}

std::int64_t Query::integer(int column) const {
    return sqlite3_column_int64(m_stmt, column);
}

Transaction::Transaction(Db& db, Kind kind) : m_db(db) {
    switch (kind) {
    case Kind::read:
        db.exec("BEGIN");
        break;
    case Kind::write:
        db.exec("BEGIN IMMEDIATE");
        break;
    case Kind::exclusive:
        db.exec("BEGIN EXCLUSIVE");
        break;
    }
}

Transaction::~Transaction() {
    if (!m_open) return;
    try {
        m_db.exec("ROLLBACK");
    } catch (...) {
        // The transaction is gone either way (SQLite rolls back on error); nothing to report
        // from a destructor that may run during another exception.
    }
}

void Transaction::commit() {
    m_db.exec("COMMIT");
    m_open = false;
}

} // namespace jitgate::server::store::sqlite
