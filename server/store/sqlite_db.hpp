// server/store/sqlite_db.hpp — private to server/store: a thin RAII layer over the SQLite C API
// (one connection, its prepared statements, transactions). Used by sqlite_store.cpp and
// migrations.cpp; nothing outside server/store includes it.
//
// Every value reaches SQLite through sqlite3_bind_*: SQL text here is always a literal of the
// program (or put together from such literals, sqlite_search.hpp), never built from data.
// Threading: one Db per thread (the connection is opened SQLITE_OPEN_NOMUTEX).
// Errors: every failure throws Error(io) naming the database file and SQLite's message.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace jitgate::server::store::sqlite {

class Db {
public:
    // Opens `path` (creating it, mode 0600, only if `create`), sets WAL, synchronous=FULL,
    // foreign_keys=ON and a busy timeout so several connections (threads or processes) share it.
    Db(const std::string& path, bool create);
    ~Db();
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;

    // Runs SQL without parameters and without rows (PRAGMA, BEGIN, DDL).
    void exec(const char* sql);
    // Rows changed by the last INSERT, UPDATE or DELETE.
    std::int64_t changes() const noexcept;
    [[noreturn]] void fail(std::string_view what) const;
    const std::string& path() const noexcept { return m_path; }

private:
    friend class Query;
    sqlite3_stmt* statement(const char* sql);
    // PRAGMA journal_mode=WAL, tried again while another connection holds the new file (BUSY).
    void set_wal_journal();

    std::string m_path;
    sqlite3* m_db = nullptr;
    std::map<std::string, sqlite3_stmt*, std::less<>> m_statements; // prepared once, reused
};

// One use of a cached prepared statement: bind, step, read; reset on destruction. Parameters
// are numbered from 1 (?1, ?2, ...).
class Query {
public:
    Query(Db& db, const char* sql);
    ~Query();
    Query(const Query&) = delete;
    Query& operator=(const Query&) = delete;

    // Error(bad_input) for text holding NUL or invalid UTF-8 (the PostgreSQL store cannot hold
    // them, so neither does this one).
    Query& text(int index, std::string_view value);
    Query& integer(int index, std::int64_t value);
    // true: a row is ready to read; false: done.
    bool step();
    // Steps to the end; for statements without rows.
    void run();

    std::string text(int column) const;
    std::int64_t integer(int column) const;

private:
    Db& m_db;
    sqlite3_stmt* m_stmt;
};

// BEGIN (deferred, for reads), BEGIN IMMEDIATE (writes: takes the write lock at once, so a
// read-then-write never fails with SQLITE_BUSY half-way) or BEGIN EXCLUSIVE (migrations).
// Rolls back on destruction unless committed.
class Transaction {
public:
    enum class Kind { read, write, exclusive };
    Transaction(Db& db, Kind kind);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();

private:
    Db& m_db;
    bool m_open = true;
};

} // namespace jitgate::server::store::sqlite
