// server/store/pg_db.cpp — the libpq connection, result and transaction wrappers.
#include "server/store/pg_db.hpp"

#include <jitgate/text.hpp>

#include <charconv>
#include <libpq-fe.h>

namespace jitgate::server::store::pg {

namespace {

// PostgreSQL's messages end with a newline (sometimes several lines); keep one clean line.
std::string one_line(const char* message) {
    std::string text = message != nullptr ? message : "";
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    for (char& c : text)
        if (c == '\n') c = ' ';
    return text.empty() ? "unknown error" : text;
}

} // namespace

std::string describe(const std::string& conninfo) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
    if (options == nullptr) {
        PQfreemem(error);
        return "postgres (unparsable conninfo)";
    }
    std::string out = "postgres";
    for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
        const std::string_view key = o->keyword;
        if (o->val == nullptr ||
            (key != "host" && key != "hostaddr" && key != "port" && key != "dbname" && key != "user"))
            continue;
        out += ' ';
        out += key;
        out += '=';
        out += text::escape_for_log(o->val);
    }
    PQconninfoFree(options);
    return out;
}

Result::~Result() {
    PQclear(m_result);
}

int Result::rows() const noexcept {
    return PQntuples(m_result);
}

std::int64_t Result::affected() const {
    const char* text = PQcmdTuples(m_result);
    std::int64_t value = 0;
    std::from_chars(text, text + std::char_traits<char>::length(text), value);
    return value;
}

std::string Result::text(int row, int column) const {
    return std::string(PQgetvalue(m_result, row, column), static_cast<std::size_t>(PQgetlength(m_result, row, column)));
}

std::int64_t Result::integer(int row, int column) const {
    const char* text = PQgetvalue(m_result, row, column);
    const char* end = text + PQgetlength(m_result, row, column);
    std::int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(text, end, value);
    if (ec != std::errc() || ptr != end || text == end)
        throw Error(ErrorCode::io, "postgres", "expected an integer in column " + std::to_string(column));
    return value;
}

Connection::Connection(std::string conninfo) : m_conninfo(std::move(conninfo)), m_where(describe(m_conninfo)) {
    reconnect();
}

Connection::~Connection() {
    PQfinish(m_conn);
}

void Connection::reconnect() {
    PQfinish(m_conn);
    m_conn = nullptr;
    // expand_dbname: the conninfo is a whole connection string; the application name is only
    // a fallback so an administrator's own choice wins.
    const char* keywords[] = {"dbname", "fallback_application_name", "client_encoding", nullptr};
    const char* values[] = {m_conninfo.c_str(), "jitgate-server", "UTF8", nullptr};
    m_conn = PQconnectdbParams(keywords, values, 1);
    if (m_conn == nullptr) throw Error(ErrorCode::io, m_where, "out of memory");
    if (PQstatus(m_conn) != CONNECTION_OK) {
        const std::string message = one_line(PQerrorMessage(m_conn));
        PQfinish(m_conn);
        m_conn = nullptr;
        throw Error(ErrorCode::io, m_where, "cannot connect: " + message);
    }
}

bool Connection::broken() const noexcept {
    return m_conn == nullptr || PQstatus(m_conn) != CONNECTION_OK;
}

int Connection::backend_pid() const noexcept {
    return m_conn != nullptr ? PQbackendPID(m_conn) : 0;
}

void require_storable(const std::string& value) {
    // libpq takes C strings: a NUL would cut the value silently; PostgreSQL would refuse
    // invalid UTF-8 with a server error. Both are bad input, refused here the same way the
    // SQLite store refuses them.
    if (value.find('\0') != std::string::npos || !text::is_valid_utf8(value))
        throw Error(ErrorCode::bad_input, "store", "a text value holds NUL or invalid UTF-8");
}

Result Connection::exec(const char* sql, const std::vector<std::string>& params) {
    if (m_conn == nullptr) throw ConnectionLost(m_where, "not connected");
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const std::string& p : params) {
        require_storable(p);
        values.push_back(p.c_str());
    }
    PGresult* raw =
        PQexecParams(m_conn, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0);
    const ExecStatusType status = PQresultStatus(raw);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return Result(raw);
    const std::string message = one_line(raw != nullptr ? PQresultErrorMessage(raw) : PQerrorMessage(m_conn));
    PQclear(raw);
    if (PQstatus(m_conn) != CONNECTION_OK) throw ConnectionLost(m_where, "connection lost: " + message);
    throw Error(ErrorCode::io, m_where, message);
}

Transaction::Transaction(Connection& connection, const char* begin) : m_connection(connection) {
    connection.exec(begin);
}

Transaction::~Transaction() {
    if (!m_open || m_connection.broken()) return;
    try {
        m_connection.exec("ROLLBACK");
    } catch (...) {
        // The server rolls back a transaction whose connection goes away; nothing to report
        // from a destructor that may run during another exception.
    }
}

void Transaction::commit() {
    m_open = false;
    try {
        m_connection.exec("COMMIT");
    } catch (const ConnectionLost& lost) {
        throw Error(ErrorCode::io, m_connection.where(),
                    std::string("the connection broke during COMMIT; the change may or may not be stored: ") +
                        lost.what());
    }
}

} // namespace jitgate::server::store::pg
