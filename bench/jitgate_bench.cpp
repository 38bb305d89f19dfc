// jitgate_bench — what jitgate costs on every privileged action (docs/PERFORMANCE.md).
//
// Starts its own jitgated (the binary given) on a scratch config, and measures through the
// same client library the plugins use:
//   1. fast-path decision latency (allow rule; live grant): p50/p99/p99.9
//   2. fast-path throughput with 1, 2, 8, 64 concurrent clients (Google Benchmark)
//   4. N requests waiting for approval at once: daemon RSS and fast-path p99 meanwhile
//   5. idle RSS and start-up time to ready
//   6. time from an approval to the waiting client's allow
// (3, real `sudo -n true` against plain sudo, is bench/run.sh's job: it needs a namespace.)
// Every figure is reported as the median of several repetitions with its min..max spread.
// Must run as root: the fast path only answers root peers, like sudo.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <benchmark/benchmark.h>
#include <fcntl.h>

#include "jitgate/client.hpp"
#include "jitgate/messages.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using jitgate::wire::Json;

constexpr uid_t k_bench_uid = 65534; // the requester: "nobody" (real uid), with euid 0 like sudo
std::string g_daemon_bin;
std::string g_dir;
jitgate::client::Options g_opts;
pid_t g_daemon = -1;

struct Row {
    std::string what;
    std::string value;
};
std::vector<Row> g_table;

// Rows are printed as they are measured (so a run cut short still tells what it saw) and
// again, all together, at the end.
void add_row(std::string what, std::string value) {
    std::fprintf(stderr, "row: %-58s %s\n", what.c_str(), value.c_str());
    g_table.push_back({std::move(what), std::move(value)});
}

double us_since(Clock::time_point t) { return std::chrono::duration<double, std::micro>(Clock::now() - t).count(); }

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// "median (min..max)" of repeated measurements.
std::string spread(std::vector<double> v, const char* unit, int precision = 1) {
    std::sort(v.begin(), v.end());
    char buf[160];
    std::snprintf(buf, sizeof buf, "%.*f %s (%.*f..%.*f, n=%zu)", precision, v[v.size() / 2], unit, precision, v.front(),
                  precision, v.back(), v.size());
    return buf;
}

long rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    return -1;
}

void write_config() {
    std::ofstream c(g_dir + "/jitgate.yaml");
    c << "host: {name: bench-host}\n"
      << "daemon: {socket: " << g_dir << "/jitgated.sock, max_clients: 30000, max_pending: 30000}\n"
      << "approval: {backend: local, approver_groups: [root]}\n"
      << "audit: {journal: " << g_dir << "/audit.jsonl, syslog: false}\n"
      << "rules:\n"
      << "  - name: fast\n    match: {kind: sudo, commands: [/usr/bin/true]}\n    action: allow\n"
      << "  - name: gated\n    match: {kind: sudo}\n    ttl: 1h\n    timeout: 1h\n";
}

void start_daemon() {
    g_daemon = fork();
    if (g_daemon == 0) {
        // The daemon's own chatter goes to a file: it must not hold the caller's pipe open.
        const int log = ::open((g_dir + "/daemon.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (log >= 0) {
            ::dup2(log, 1);
            ::dup2(log, 2);
        }
        execl(g_daemon_bin.c_str(), g_daemon_bin.c_str(), "--config", (g_dir + "/jitgate.yaml").c_str(), nullptr);
        _exit(127);
    }
    for (int i = 0; i < 5000; ++i) {
        std::vector<Json> r;
        if (jitgate::client::request(g_opts, Json{{"type", "ping"}}, r).ok()) return;
        usleep(200);
    }
    std::fprintf(stderr, "jitgated did not come up\n");
    std::exit(1);
}

void stop_daemon() {
    kill(g_daemon, SIGTERM);
    waitpid(g_daemon, nullptr, 0);
    g_daemon = -1;
}

jitgate::msg::CheckRequest request_for(std::vector<std::string> argv) {
    jitgate::msg::CheckRequest r;
    r.user = "nobody";
    r.uid = k_bench_uid;
    r.pid = getpid();
    r.runas_user = "root";
    r.runas_uid = 0;
    r.command = argv.front();
    r.run_argv = std::move(argv);
    return r;
}

// One fast-path decision, as the plugin makes it: connect, check, read the decision.
bool decide(const jitgate::msg::CheckRequest& r) {
    jitgate::msg::Decision d;
    return jitgate::client::run_check(g_opts, r, {}, nullptr, d).ok() && d.allow;
}

std::string pending_id() {
    for (int i = 0; i < 20000; ++i) {
        std::vector<Json> r;
        if (jitgate::client::request(g_opts, Json{{"type", "pending"}}, r).ok())
            for (const auto& m : r)
                if (m.value("type", "") == "item") return m["item"]["id"];
        usleep(100);
    }
    return {};
}

// Files a request for `argv` and approves it; returns microseconds from sending the approval
// to the waiting client holding its allow.
double approve_once(const std::vector<std::string>& argv) {
    std::atomic<bool> allowed{false};
    Clock::time_point done;
    std::thread waiter([&] {
        allowed = decide(request_for(argv));
        done = Clock::now();
    });
    const std::string id = pending_id();
    const auto t0 = Clock::now();
    std::vector<Json> r;
    jitgate::client::request(g_opts, Json{{"type", "approve"}, {"id", id}}, r);
    waiter.join();
    if (!allowed) {
        std::fprintf(stderr, "approval of %s did not allow\n", id.c_str());
        std::exit(1);
    }
    return std::chrono::duration<double, std::micro>(done - t0).count();
}

std::vector<double> latencies(const jitgate::msg::CheckRequest& r, int n) {
    std::vector<double> v;
    v.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        const auto t = Clock::now();
        if (!decide(r)) {
            std::fprintf(stderr, "fast path denied\n");
            std::exit(1);
        }
        v.push_back(us_since(t));
    }
    return v;
}

void latency_section(const char* label, const jitgate::msg::CheckRequest& r, int n, int reps) {
    std::vector<double> p50, p99, p999;
    for (int k = 0; k < reps; ++k) {
        const auto v = latencies(r, n);
        p50.push_back(percentile(v, 0.50));
        p99.push_back(percentile(v, 0.99));
        p999.push_back(percentile(v, 0.999));
    }
    add_row(std::string("1. fast path, ") + label + ": p50", spread(p50, "us"));
    add_row(std::string("1. fast path, ") + label + ": p99", spread(p99, "us"));
    add_row(std::string("1. fast path, ") + label + ": p99.9", spread(p999, "us"));
}

void BM_FastPathAllowRule(benchmark::State& state) {
    const auto r = request_for({"/usr/bin/true"});
    for (auto _ : state)
        if (!decide(r)) state.SkipWithError("denied");
    state.SetItemsProcessed(state.iterations());
}

void BM_FastPathGrant(benchmark::State& state) {
    const auto r = request_for({"/usr/bin/id", "granted"});
    for (auto _ : state)
        if (!decide(r)) state.SkipWithError("denied");
    state.SetItemsProcessed(state.iterations());
}

// Collects Google Benchmark's per-thread-count throughput into the table as well.
class TableReporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (const auto& run : runs) {
            if (run.run_type != Run::RT_Iteration) continue;
            const auto it = run.counters.find("items_per_second");
            if (it != run.counters.end()) m_rates[run.run_name.str()].push_back(it->second.value);
        }
    }
    void publish() {
        for (auto& [name, v] : m_rates) add_row("2. throughput " + name, spread(v, "decisions/s", 0));
    }

private:
    std::map<std::string, std::vector<double>> m_rates;
};

void waiting_section(int n) {
    // N clients hold requests open, as N sudo sessions waiting for approvers would.
    std::vector<jitgate::client::Connection> held(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        auto& c = held[static_cast<std::size_t>(i)];
        if (!c.open(g_opts).ok() || !c.send(jitgate::msg::to_json(request_for({"/usr/bin/id", "wait", std::to_string(i)}))).ok()) {
            std::fprintf(stderr, "could not hold request %d\n", i);
            std::exit(1);
        }
    }
    std::vector<Json> st;
    for (int i = 0; i < 2000; ++i) {
        jitgate::client::request(g_opts, Json{{"type", "status"}}, st);
        if (!st.empty() && st.back()["status"].value("pending", 0) >= n) break;
        usleep(1000);
    }
    const long rss = rss_kib(g_daemon);
    std::vector<double> p99;
    for (int k = 0; k < 5; ++k) p99.push_back(percentile(latencies(request_for({"/usr/bin/true"}), 20000), 0.99));
    add_row("4. " + std::to_string(n) + " waiting: daemon RSS", std::to_string(rss / 1024) + " MiB (" + std::to_string(rss) + " KiB)");
    add_row("4. " + std::to_string(n) + " waiting: fast-path p99", spread(p99, "us"));
    held.clear(); // the daemon sees them go and cancels them
    for (int i = 0; i < 5000; ++i) {
        jitgate::client::request(g_opts, Json{{"type", "status"}}, st);
        if (!st.empty() && st.back()["status"].value("pending", 1) == 0) break;
        usleep(1000);
    }
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2 || geteuid() != 0) {
        std::fprintf(stderr, "usage (as root): %s PATH/TO/jitgated [--quick] [google-benchmark flags]\n", argv[0]);
        return 2;
    }
    g_daemon_bin = argv[1];
    const bool quick = argc > 2 && std::string(argv[2]) == "--quick";
    const int n_latency = quick ? 20000 : 100000;
    const int reps = quick ? 3 : 5;
    char tmpl[] = "/tmp/jitgate-bench-XXXXXX";
    g_dir = mkdtemp(tmpl);
    g_opts.socket_path = g_dir + "/jitgated.sock";
    write_config();
    rlimit nofile{65536, 65536};
    setrlimit(RLIMIT_NOFILE, &nofile);

    // 5. start-up to ready, idle RSS
    std::vector<double> startup, idle;
    for (int k = 0; k < reps; ++k) {
        const auto t = Clock::now();
        start_daemon();
        startup.push_back(us_since(t) / 1000.0);
        idle.push_back(static_cast<double>(rss_kib(g_daemon)) / 1024.0);
        if (k + 1 < reps) stop_daemon();
    }
    add_row("5. start-up to ready", spread(startup, "ms", 2));
    add_row("5. idle RSS", spread(idle, "MiB", 1));

    // The requester is "nobody" with euid 0, as a setuid sudo of nobody's would be; the
    // approver (this process's euid, root) is then never the requester.
    if (setresuid(k_bench_uid, 0, 0) != 0) {
        std::perror("setresuid");
        return 1;
    }
    approve_once({"/usr/bin/id", "granted"}); // the live grant for the grant fast path

    latency_section("allow rule", request_for({"/usr/bin/true"}), n_latency, reps);
    latency_section("live grant", request_for({"/usr/bin/id", "granted"}), n_latency, reps);

    // 2. throughput
    for (int threads : {1, 2, 8, 64}) {
        benchmark::RegisterBenchmark("fast_path_allow_rule", BM_FastPathAllowRule)->Threads(threads)->UseRealTime()->MinTime(quick ? 0.5 : 2.0)->Repetitions(reps);
        benchmark::RegisterBenchmark("fast_path_live_grant", BM_FastPathGrant)->Threads(threads)->UseRealTime()->MinTime(quick ? 0.5 : 2.0)->Repetitions(reps);
    }
    int bargc = 1;
    std::vector<char*> bargv{argv[0]};
    for (int i = quick ? 3 : 2; i < argc; ++i) bargv.push_back(argv[i]), ++bargc;
    benchmark::Initialize(&bargc, bargv.data());
    TableReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    reporter.publish();

    // 4. many waiting requests
    waiting_section(1000);
    waiting_section(quick ? 2000 : 10000);

    // 6. approval to run
    std::vector<double> a2r;
    for (int i = 0; i < (quick ? 50 : 200); ++i) a2r.push_back(approve_once({"/usr/bin/id", "a2r", std::to_string(i)}) / 1000.0);
    add_row("6. approval to allow (local backend), median of " + std::to_string(a2r.size()), spread(a2r, "ms", 3));
    add_row("6. approval to allow, p99", std::to_string(percentile(a2r, 0.99)) + " ms");

    // Floor of every audited decision: one durable journal append (write + fdatasync).
    stop_daemon();
    std::printf("\n%-58s %s\n", "measure", "value: median (min..max, n)");
    std::printf("%s\n", std::string(110, '-').c_str());
    for (const auto& row : g_table) std::printf("%-58s %s\n", row.what.c_str(), row.value.c_str());
    if (setresuid(0, 0, 0) != 0) std::perror("setresuid"); // back to root to clean up
    std::string cmd = "rm -rf " + g_dir;
    return std::system(cmd.c_str()) == 0 ? 0 : 1;
}
