// server/store/pg_db.hpp — private to server/store: a thin RAII layer over libpq (one
// connection, results, transactions). Used by postgres_store.cpp and migrations.cpp; nothing
// outside server/store includes it.
//
// Every value reaches PostgreSQL as a parameter of PQexecParams: SQL text here is always a
// literal of the program, never built from data. Integer parameters are sent as decimal text
// and cast in the SQL ($1::bigint).
// SECURITY NOTE: the conninfo may hold a password; messages name the server by describe()
// (host, port, database, user), never by the conninfo itself.
// Threading: one Connection per thread. Errors: Error(io) with PostgreSQL's message;
// ConnectionLost (also an Error(io)) when the connection itself broke, so the store can
// reconnect and retry a transaction that never reached COMMIT.
#pragma once

#include <jitgate/error.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

struct pg_conn;
struct pg_result;

namespace jitgate::server::store::pg {

// "host=db1 port=5432 dbname=jitgate user=jitgate": the parts of a conninfo safe to log.
std::string describe(const std::string& conninfo);

// Throws Error(bad_input) for text PostgreSQL cannot take as a parameter: NUL (libpq would cut
// the value there) or invalid UTF-8 (the server would refuse it). exec() checks every parameter;
// values sent inside a JSON parameter are checked with this first.
void require_storable(const std::string& value);

class ConnectionLost : public Error {
public:
    explicit ConnectionLost(std::string context, const std::string& detail)
        : Error(ErrorCode::io, std::move(context), detail) {}
};

class Result {
public:
    explicit Result(pg_result* result) noexcept : m_result(result) {}
    ~Result();
    Result(Result&& other) noexcept : m_result(other.m_result) { other.m_result = nullptr; }
    Result& operator=(Result&&) = delete;
    Result(const Result&) = delete;

    int rows() const noexcept;
    // The number of rows an INSERT, UPDATE or DELETE changed.
    std::int64_t affected() const;
    std::string text(int row, int column) const;
    // Throws Error(io) if the column is not an integer (a corrupt or foreign database).
    std::int64_t integer(int row, int column) const;

private:
    pg_result* m_result;
};

class Connection {
public:
    // Connects; throws Error(io) naming describe(conninfo) if the server is unreachable.
    explicit Connection(std::string conninfo);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // PQexecParams with text parameters. A parameter holding NUL or invalid UTF-8 throws
    // Error(bad_input) before anything is sent.
    Result exec(const char* sql, const std::vector<std::string>& params = {});
    bool broken() const noexcept;
    // Replaces the connection by a new one (throws Error(io) if that fails).
    void reconnect();
    pg_conn* handle() const noexcept { return m_conn; }
    int backend_pid() const noexcept;
    const std::string& where() const noexcept { return m_where; }

private:
    std::string m_conninfo;
    std::string m_where;
    pg_conn* m_conn = nullptr;
};

// BEGIN on construction, ROLLBACK on destruction unless committed. A connection that breaks
// during COMMIT leaves the outcome unknown: commit() then throws a plain Error(io), never
// ConnectionLost, so the call is not retried.
class Transaction {
public:
    // `begin`: "BEGIN" (read committed, for writes that lock what they check) or a BEGIN with
    // another isolation level (e.g. a read-only snapshot for multi-statement reads).
    explicit Transaction(Connection& connection, const char* begin = "BEGIN");
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();

private:
    Connection& m_connection;
    bool m_open = true;
};

} // namespace jitgate::server::store::pg
