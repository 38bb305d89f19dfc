// bench/report_bench.cpp — how long the evidence report (server/report) takes over a day of
// N host events on SQLite (docs/PERFORMANCE.md). Not a test: it prints, it asserts nothing.
//
//   report_bench DIR [EVENTS]    (EVENTS default 1000000)
//   report_bench DIR reuse       (times the report over DIR/report.db made by an earlier run)
//
// Makes DIR/report.db: 16 hosts, each a valid hash chain of real events (lib/audit_event), in
// cycles of ten: a request approved by bob and its command.finished, two allow-rule commands
// and theirs, a denied request, a config.loaded; the approval service's requests and
// approvals for every request. The rows are written straight into the tables in one
// transaction (the generator is not what is measured), then report::build and render are timed.
#include "lib/audit_event.hpp"
#include "server/report/report.hpp"
#include "server/store/store.hpp"

#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

void check(int rc, sqlite3* db, const char* what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        throw std::runtime_error(std::string(what) + ": " + sqlite3_errmsg(db));
}

struct Statement {
    Statement(sqlite3* db, const char* sql) : m_db(db) {
        check(sqlite3_prepare_v2(db, sql, -1, &m_stmt, nullptr), db, sql);
    }
    ~Statement() { sqlite3_finalize(m_stmt); }
    Statement& text(int i, const std::string& v) {
        sqlite3_bind_text(m_stmt, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Statement& integer(int i, std::int64_t v) {
        sqlite3_bind_int64(m_stmt, i, v);
        return *this;
    }
    void run() {
        check(sqlite3_step(m_stmt), m_db, "step");
        sqlite3_reset(m_stmt);
    }
    sqlite3* m_db;
    sqlite3_stmt* m_stmt = nullptr;
};

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

void generate(const std::string& path, std::int64_t total, std::int64_t day) {
    std::filesystem::remove(path);
    jitgate::server::store::migrate_sqlite(path);

    sqlite3* db = nullptr;
    check(sqlite3_open(path.c_str(), &db), db, "open");
    check(sqlite3_exec(db, "PRAGMA synchronous=OFF; BEGIN", nullptr, nullptr, nullptr), db, "begin");
    const auto generating = Clock::now();
    {
        Statement event(db, "INSERT INTO audit_events (host, event_id, seq, hash, prev_hash, time, type, request_id, "
                            "line, received_at, user_name) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
        Statement request(db,
                          "INSERT INTO requests (host, id, body, requester, requester_login, rule, status, "
                          "approvals_needed, created_at, expires_at, decided_at, \"grant\", grant_id, decided_by) "
                          "VALUES (?1, ?2, '{}', 'alice', 'alice', 'default-approval', ?3, 1, ?4, ?5, ?6, ?7, ?8, ?9)");
        Statement approval(db, "INSERT INTO approvals (host, id, approver, identity, source_address, via, at) "
                               "VALUES (?1, ?2, 'bob', 'https://idp/ bob', '10.0.0.9', 'web', ?3)");
        constexpr int k_hosts = 16;
        std::vector<std::int64_t> seq(k_hosts, 0);
        std::vector<std::string> last(k_hosts, jitgate::audit::k_genesis_hash);
        std::int64_t written = 0;
        std::int64_t cycle = 0;
        while (written < total) {
            const int h = static_cast<int>(cycle % k_hosts);
            const std::string host = "host-" + std::to_string(h);
            const std::int64_t base_ms = (day * 1000) + (written * 86400000LL / total);
            int step = 0;
            const auto emit = [&](Json e) {
                const std::int64_t ms = base_ms + step++;
                char time[40];
                const std::string second = jitgate::server::report::rfc3339(ms / 1000);
                std::snprintf(time, sizeof time, "%.*s.%03dZ", static_cast<int>(second.size() - 1), second.c_str(),
                              static_cast<int>(ms % 1000));
                e["event_id"] = host + "-" + std::to_string(seq[h] + 1);
                e["host"] = host;
                e["seq"] = ++seq[h];
                e["prev_hash"] = last[h];
                e["time"] = time;
                e["hash"] = jitgate::audit::sha256_hex(jitgate::audit::canonical_bytes(e));
                event.text(1, host)
                    .text(2, e["event_id"].get<std::string>())
                    .integer(3, seq[h])
                    .text(4, e["hash"].get<std::string>())
                    .text(5, last[h])
                    .text(6, time)
                    .text(7, e["type"].get<std::string>())
                    .text(8, e.value("request_id", std::string()))
                    .text(9, e.dump())
                    .integer(10, ms / 1000)
                    .text(11, e.value("user", std::string()))
                    .run();
                last[h] = e["hash"].get<std::string>();
                ++written;
            };
            const auto sudo = [&](const char* type, const std::string& user, const char* command) {
                return Json{{"type", type},       {"user", user},      {"requester", user}, {"kind", "sudo"},
                            {"command", command}, {"argv", {command}}, {"runas", "root"}};
            };
            const std::string approved = "R-A" + std::to_string(cycle);
            const std::string denied = "R-D" + std::to_string(cycle);
            Json e = sudo("access.requested", "alice", "/usr/bin/systemctl");
            e["request_id"] = approved;
            e["rule"] = "default-approval";
            e["reason"] = "bench";
            emit(e);
            e["type"] = "access.approved";
            e["grant_id"] = "G-" + std::to_string(cycle);
            e["approvers"] = {"bob"};
            emit(e);
            e["type"] = "command.finished";
            e["status_type"] = "exit";
            e["exit_status"] = 0;
            e["duration_ms"] = 12;
            emit(e);
            for (int i = 0; i < 2; ++i) {
                e = sudo("access.allowed_by_rule", "mallory", "/usr/bin/true");
                e["rule"] = "read-only";
                emit(e);
                e["type"] = "command.finished";
                e["status_type"] = "exit";
                e["exit_status"] = 0;
                emit(e);
            }
            e = sudo("access.requested", "alice", "/usr/bin/psql");
            e["request_id"] = denied;
            e["rule"] = "default-approval";
            emit(e);
            e["type"] = "access.denied";
            e["denied_by"] = "carol";
            emit(e);
            emit(Json{{"type", "config.loaded"}, {"rules", 7}});
            const std::int64_t at = base_ms / 1000;
            request.text(1, host)
                .text(2, approved)
                .text(3, "approved")
                .integer(4, at)
                .integer(5, at + 900)
                .integer(6, at + 30)
                .text(7, "jws")
                .text(8, "G")
                .text(9, "")
                .run();
            approval.text(1, host).text(2, approved).integer(3, at + 30).run();
            request.text(1, host)
                .text(2, denied)
                .text(3, "denied")
                .integer(4, at)
                .integer(5, at + 900)
                .integer(6, at + 40)
                .text(7, "")
                .text(8, "")
                .text(9, "carol")
                .run();
            ++cycle;
        }
        Statement chain(db, "INSERT INTO audit_chains (host, last_seq, last_hash, last_event_id, last_seen, events) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?2)");
        for (int h = 0; h < k_hosts; ++h)
            chain.text(1, "host-" + std::to_string(h))
                .integer(2, seq[h])
                .text(3, last[h])
                .text(4, "host-" + std::to_string(h) + "-" + std::to_string(seq[h]))
                .integer(5, day + 86400)
                .run();
    }
    check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db, "commit");
    sqlite3_close(db);
    std::printf("generated %lld events in %.1f s\n", static_cast<long long>(total), seconds_since(generating));
}

double cpu_seconds() {
    return static_cast<double>(std::clock()) / CLOCKS_PER_SEC;
}

void time_report(const std::string& path, std::int64_t day) {
    auto store = jitgate::server::store::open_sqlite(path);
    jitgate::server::report::Options options;
    options.from = day;
    options.to = day + 86400;
    options.now = day + 86400;
    const auto building = Clock::now();
    const double cpu = cpu_seconds();
    const auto report = jitgate::server::report::build(*store, options);
    const double build_s = seconds_since(building);
    const double build_cpu = cpu_seconds() - cpu;
    std::printf(
        "report::build: %.1f s wall, %.1f s CPU (%lld events, %zu actions, %zu exceptions, hosts verified:", build_s,
        build_cpu, static_cast<long long>(report.summary.host_events), report.actions.size(), report.exceptions.size());
    for (const auto& h : report.hosts) std::printf(" %s", h.verified ? "ok" : "FAILED");
    std::printf(")\n");
    for (const auto format : {jitgate::server::report::Format::json, jitgate::server::report::Format::csv,
                              jitgate::server::report::Format::html}) {
        const auto rendering = Clock::now();
        const std::string out = jitgate::server::report::render(report, format);
        std::printf("render %s: %.1f s, %.1f MiB\n",
                    format == jitgate::server::report::Format::json  ? "json"
                    : format == jitgate::server::report::Format::csv ? "csv"
                                                                     : "html",
                    seconds_since(rendering), static_cast<double>(out.size()) / (1024.0 * 1024.0));
    }
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: report_bench DIR [EVENTS]\n");
        return 2;
    }
    const std::string path = std::string(argv[1]) + "/report.db";
    const bool reuse = argc > 2 && std::string(argv[2]) == "reuse";
    const std::int64_t total = argc > 2 && !reuse ? std::stoll(argv[2]) : 1000000;
    const std::int64_t day = jitgate::server::report::parse_time("2026-11-24", false).value();
    if (!reuse) generate(path, total, day);
    time_report(path, day);
    return 0;
}
