// jitgate_bench — what jitgate costs on every privileged action (docs/PERFORMANCE.md).
//
// Starts its own jitgated (the binary given) on a scratch config, and measures through the
// same client library the plugins use:
//   1. fast-path decision latency (allow rule; live grant): p50/p99/p99.9
//   2. fast-path throughput with 1, 2, 8, 64 concurrent clients (Google Benchmark)
//   4. N requests waiting for approval at once: daemon RSS and fast-path p99 meanwhile. The
//      daemon holds at most 100 waiting requests per user, so they are filed by N/100 users,
//      one child process each; the users exist only in the bench's private mount namespace
//      (a copy of /etc/passwd with them appended, bind-mounted over the real one)
//   5. idle RSS and start-up time to ready
//   6. time from an approval to the waiting client's allow: local backend (jitgatectl's
//      approve), and service backend (the test approval service of tests/support, approved
//      over its admin API; the daemon's long poll wakes, it verifies the Ed25519 grant)
//   D. durable audit events per second with group commit, 1, 8, 64 clients, and the
//      daemon's fdatasync calls per second meanwhile (counted by the fsync_count.so shim)
// (3, real `sudo -n true` against plain sudo, is bench/run.sh's job: it needs a namespace.)
//
// usage (as root): jitgate_bench PATH/TO/jitgated [--quick] [--fsync-count=fsync_count.so]
//     [--approval-service=jitgate-test-approval-service --make-pki=tests/support/make_pki.sh
//      [--tcp-nodelay=tcp_nodelay.so]] [--sections=1,2,4,5,6,D] [google-benchmark flags]
// Without --fsync-count the D rows have no fdatasync count; without --approval-service and
// --make-pki there is no service-backend row; --tcp-nodelay adds a second service-backend run
// with TCP_NODELAY forced on the test service's connections (see tcp_nodelay.cpp).
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

#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <fcntl.h>
#include <mutex>
#include <netinet/in.h>
#include <optional>
#include <pthread.h>
#include <pwd.h>
#include <regex>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "jitgate/check.hpp"
#include "jitgate/client.hpp"
#include "jitgate/messages.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using jitgate::wire::Json;

constexpr uid_t k_bench_uid = 65534; // the requester: "nobody" (real uid), with euid 0 like sudo
std::string g_daemon_bin;
std::string g_dir;
std::string g_config; // the config the next start_daemon() uses
jitgate::client::Options g_opts;
pid_t g_daemon = -1;
std::string g_fsync_count_lib; // --fsync-count: LD_PRELOAD'ed into the D section's daemon
std::string g_service_bin;     // --approval-service
std::string g_nodelay_lib;     // --tcp-nodelay: LD_PRELOAD'ed into a second run of the service
std::string g_make_pki;        // --make-pki
pid_t g_service = -1;          // the test approval service, while it runs

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

double us_since(Clock::time_point t) {
    return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// "median (min..max)" of repeated measurements.
std::string spread(std::vector<double> v, const char* unit, int precision = 1) {
    std::sort(v.begin(), v.end());
    char buf[160];
    std::snprintf(buf, sizeof buf, "%.*f %s (%.*f..%.*f, n=%zu)", precision, median(v), unit, precision, v.front(),
                  precision, v.back(), v.size());
    return buf;
}

// A field of /proc/PID/status in KiB: "VmRSS" (all resident pages, shared library code
// included) or "RssAnon" (the process's own memory: heap, stacks).
long status_kib(pid_t pid, const std::string& field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    const std::string key = field + ":";
    for (std::string line; std::getline(in, line);)
        if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + key.size());
    return -1;
}
long rss_kib(pid_t pid) {
    return status_kib(pid, "VmRSS");
}
long anon_kib(pid_t pid) {
    return status_kib(pid, "RssAnon");
}

// Writes a daemon config at `path` with its own spool directory (created here). `approval` is
// the approval section (YAML, at column 0).
void write_config(const std::string& path, const std::string& spool, const std::string& approval) {
    ::mkdir(spool.c_str(), 0750);
    std::ofstream c(path);
    c << "host: {name: bench-host}\n"
      << "daemon: {socket: " << g_opts.socket_path << ", max_clients: 30000, max_pending: 30000}\n"
      << approval
      // A full spool denies every privileged action; the bench's millions of events stay
      // (no store ships them), so the cap is raised far above what one run writes (~1.5 GB).
      << "audit: {spool_dir: " << spool << ", spool_max_size: 64GiB, syslog: false}\n"
      << "rules:\n"
      << "  - name: fast\n    match: {kind: sudo, commands: [/usr/bin/true]}\n    action: allow\n"
      << "  - name: gated\n    match: {kind: sudo}\n    ttl: 1h\n    timeout: 1h\n";
}

// The bench approves as root (it runs as root); a real host approves as a person (allow_root).
const char* const k_local_approval = "approval: {backend: local, approver_groups: [root], allow_root: true}\n";

// fork + exec as a plain root process. The bench itself may run as "nobody" with euid 0 by
// then: the child takes back uid 0 so that the exec is not a secure (AT_SECURE) one, which
// would ignore LD_PRELOAD. Output goes to `log` (the child must not hold the caller's pipe).
pid_t spawn(const std::vector<std::string>& argv, const std::string& log, const std::vector<std::string>& env = {}) {
    // Everything exec needs is built before fork (no allocation in the child).
    std::vector<char*> args, envp;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
        if (setresuid(0, 0, 0) != 0) _exit(126);
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
        }
        execve(args[0], args.data(), envp.data());
        _exit(127);
    }
    return pid;
}

void start_daemon(const std::vector<std::string>& env = {}) {
    g_daemon = spawn({g_daemon_bin, "--config", g_config}, g_dir + "/daemon.log", env);
    for (int i = 0; i < 5000; ++i) {
        std::vector<Json> r;
        if (jitgate::client::request(g_opts, Json{{"type", "ping"}}, r).ok()) return;
        usleep(200);
    }
    std::fprintf(stderr, "jitgated did not come up (see %s/daemon.log)\n", g_dir.c_str());
    std::exit(1);
}

// Whatever way the bench ends (std::exit included), it leaves no daemon or service behind.
void kill_children() {
    if (g_daemon > 0) kill(g_daemon, SIGTERM), waitpid(g_daemon, nullptr, 0);
    if (g_service > 0) kill(g_service, SIGTERM), waitpid(g_service, nullptr, 0);
}

void stop_daemon() {
    if (g_daemon <= 0) return; // never kill(-1, ...)
    kill(g_daemon, SIGTERM);
    waitpid(g_daemon, nullptr, 0);
    g_daemon = -1;
}

jitgate::msg::CheckRequest request_for(std::vector<std::string> argv, const std::string& user = "nobody",
                                       uid_t uid = k_bench_uid) {
    jitgate::msg::CheckRequest r;
    r.user = user;
    r.uid = uid;
    r.pid = getpid();
    r.runas_user = "root";
    r.runas_uid = 0;
    r.command = argv.front();
    r.run_argv = std::move(argv);
    jitgate::fill_program(r); // the canonical path and file identity, as the sudo plugin sends them
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

// Files a request for `argv` and approves it as root (jitgatectl's approve); returns
// microseconds from sending the approval to the waiting client holding its allow. If the
// daemon refuses the approval, the waiting client gives up (its connection closes, which the
// daemon takes as a cancel) and `why` says what the daemon answered.
std::optional<double> approve_once(const std::vector<std::string>& argv, std::string& why) {
    std::atomic<bool> allowed{false}, finished{false};
    volatile std::sig_atomic_t give_up = 0;
    Clock::time_point done;
    std::thread waiter([&] {
        jitgate::msg::Decision d;
        allowed = jitgate::client::run_check(g_opts, request_for(argv), {}, &give_up, d).ok() && d.allow;
        done = Clock::now();
        finished = true;
    });
    const std::string id = pending_id();
    const auto t0 = Clock::now();
    std::vector<Json> r;
    const auto st = jitgate::client::request(g_opts, Json{{"type", "approve"}, {"id", id}}, r);
    if (!st.ok() || r.empty() || r.back().value("type", "") != "ok") {
        why = "the daemon refused the approval: " +
              (!r.empty() ? r.back().value("message", std::string("?")) : std::string("no answer"));
        give_up = 1;
        while (!finished) { // the signal makes its poll() return EINTR; repeat in case it was not in poll() yet
            pthread_kill(waiter.native_handle(), SIGUSR1);
            usleep(10000);
        }
        waiter.join();
        return std::nullopt;
    }
    waiter.join();
    if (!allowed) {
        why = "approval of " + id + " did not allow";
        return std::nullopt;
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

// Collects Google Benchmark's per-thread-count throughput into the table as well: the spread
// of the repetitions. The console shows only the aggregates (mean, median, stddev, cv) of
// repeated runs, as --benchmark_report_aggregates_only would; that flag would hide the single
// repetitions from this reporter too, so then only the median is published.
class TableReporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        std::vector<Run> shown;
        for (const auto& run : runs) {
            const auto it = run.counters.find("items_per_second");
            if (run.run_type == Run::RT_Iteration) {
                if (it != run.counters.end()) m_rates[run.run_name.str()].push_back(it->second.value);
                if (run.repetitions <= 1) shown.push_back(run);
            } else {
                shown.push_back(run);
                if (run.aggregate_name == "median" && it != run.counters.end())
                    m_medians[run.run_name.str()] = it->second.value;
            }
        }
        if (!shown.empty()) ConsoleReporter::ReportRuns(shown);
    }
    void publish() {
        for (auto& [name, v] : m_rates) add_row("2. throughput " + name, spread(v, "decisions/s", 0));
        for (auto& [name, rate] : m_medians)
            if (m_rates.find(name) == m_rates.end())
                add_row("2. throughput " + name,
                        std::to_string(static_cast<long>(rate)) + " decisions/s (median; spread not reported)");
    }

private:
    std::map<std::string, std::vector<double>> m_rates;
    std::map<std::string, double> m_medians;
};

// --- 4. many requests waiting ---

constexpr int k_pending_per_user = 100; // the daemon's cap on one user's waiting requests
constexpr uid_t k_first_bench_uid = 4000000;
int g_bench_users = 0; // users made by add_bench_users()

std::string bench_user(int i) {
    char name[32];
    std::snprintf(name, sizeof name, "jgbench%03d", i);
    return name;
}

// Makes `count` users jgbench000.. (uids from k_first_bench_uid, primary group nogroup) that
// exist only for this process and its children: the process moves to a private mount
// namespace and bind-mounts a copy of /etc/passwd with them appended over /etc/passwd. The
// machine's own /etc/passwd is not written. Returns false (with the reason on stderr) if the
// namespace or the mount cannot be made, or a uid is already in use.
bool add_bench_users(int count) {
    for (int i = 0; i < count; ++i)
        if (getpwuid(k_first_bench_uid + static_cast<uid_t>(i)) != nullptr) {
            std::fprintf(stderr, "uid %u is in use: no bench users\n", k_first_bench_uid + static_cast<uid_t>(i));
            return false;
        }
    if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        std::perror("private mount namespace for the bench users");
        return false;
    }
    const std::string copy = g_dir + "/passwd";
    {
        std::ifstream in("/etc/passwd");
        std::ofstream out(copy);
        out << in.rdbuf();
        for (int i = 0; i < count; ++i)
            out << bench_user(i) << ":x:" << k_first_bench_uid + static_cast<uid_t>(i)
                << ":65534:jitgate bench:/nonexistent:/usr/sbin/nologin\n";
        if (!out.flush()) return false;
    }
    ::chmod(copy.c_str(), 0644);
    if (mount(copy.c_str(), "/etc/passwd", nullptr, MS_BIND, nullptr) != 0) {
        std::perror("bind-mounting the bench users' passwd");
        return false;
    }
    g_bench_users = count;
    return true;
}

// p99 of 5 runs of 20,000 allow-rule decisions (the fast path), one figure per run.
std::vector<double> fast_path_p99s() {
    std::vector<double> p99;
    for (int k = 0; k < 5; ++k) p99.push_back(percentile(latencies(request_for({"/usr/bin/true"}), 20000), 0.99));
    return p99;
}

int status_pending() {
    std::vector<Json> st;
    if (!jitgate::client::request(g_opts, Json{{"type", "status"}}, st).ok() || st.empty()) return -1;
    return st.back()["status"].value("pending", -1);
}

// Holds `n` requests waiting for approval, as n sudo sessions waiting for approvers would:
// users of k_pending_per_user requests each, one child process per user with that user as its
// real uid and euid 0 (as a setuid sudo has: the daemon checks the real uid of its peer).
// Reports the daemon's RSS and the fast-path p99 meanwhile, against `idle_p99` and `idle_anon`
// (the same measures with nothing waiting).
void waiting_section(int n, const std::vector<double>& idle_p99, long idle_anon) {
    const std::string what = "4. " + std::to_string(n) + " waiting";
    const int users = (n + k_pending_per_user - 1) / k_pending_per_user;
    if (users > g_bench_users) {
        add_row(what,
                "not measured: needs " + std::to_string(users) + " bench users, has " + std::to_string(g_bench_users));
        return;
    }
    int ready[2], release[2];
    if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(release, O_CLOEXEC) != 0) {
        std::perror("pipe");
        std::exit(1);
    }
    std::vector<pid_t> holders;
    for (int u = 0; u < users; ++u) {
        const int count = std::min(k_pending_per_user, n - u * k_pending_per_user);
        const std::string user = bench_user(u);
        const uid_t uid = k_first_bench_uid + static_cast<uid_t>(u);
        const pid_t pid = fork();
        if (pid < 0) {
            std::perror("fork");
            std::exit(1);
        }
        if (pid == 0) { // one user's sudo sessions; _exit, so no atexit handler of the bench runs here
            ::close(ready[0]);
            ::close(release[1]);
            char ok = 'y';
            std::vector<jitgate::client::Connection> held(static_cast<std::size_t>(count));
            if (setresuid(uid, 0, 0) != 0) ok = 'u';
            for (int i = 0; i < count && ok == 'y'; ++i) {
                auto& c = held[static_cast<std::size_t>(i)];
                const auto r = request_for({"/usr/bin/id", "wait", std::to_string(u), std::to_string(i)}, user, uid);
                if (!c.open(g_opts).ok() || !c.send(jitgate::msg::to_json(r)).ok()) ok = 'c';
            }
            (void)!::write(ready[1], &ok, 1);
            char c;
            while (::read(release[0], &c, 1) < 0 && errno == EINTR) {
            } // EOF: the parent lets go
            _exit(0);
        }
        holders.push_back(pid);
    }
    ::close(ready[1]);
    ::close(release[0]);
    const auto t0 = Clock::now();
    int failed = 0;
    for (int u = 0; u < users; ++u) {
        char ok = 0;
        if (::read(ready[0], &ok, 1) != 1 || ok != 'y') ++failed;
    }
    ::close(ready[0]);
    int pending = -1;
    for (int i = 0; i < 30000 && (pending = status_pending()) < n; ++i) usleep(1000);
    const double filed_s = us_since(t0) / 1e6;
    if (failed > 0 || pending < n) {
        std::fprintf(stderr, "%s: %d holders failed, %d of %d requests waiting (see %s/daemon.log)\n", what.c_str(),
                     failed, pending, n, g_dir.c_str());
        add_row(what, "not measured: only " + std::to_string(pending) + " requests were held");
    } else {
        const long rss = rss_kib(g_daemon), anon = anon_kib(g_daemon);
        const auto p99 = fast_path_p99s();
        char ratio[96], mem[200];
        std::snprintf(ratio, sizeof ratio, "; %.2fx the idle median (%.1f us)", median(p99) / median(idle_p99),
                      median(idle_p99));
        std::snprintf(mem, sizeof mem,
                      "%.1f MiB (%ld KiB); own memory (RssAnon) %.1f MiB, %.2f KiB per waiting request",
                      static_cast<double>(rss) / 1024.0, rss, static_cast<double>(anon) / 1024.0,
                      static_cast<double>(anon - idle_anon) / n);
        add_row(what + ": daemon RSS", mem);
        add_row(what + ": fast-path p99", spread(p99, "us") + ratio);
        char filed[64];
        std::snprintf(filed, sizeof filed, "%.2f s for %d requests from %d users", filed_s, n, users);
        add_row(what + ": time to file them all", filed);
    }
    ::close(release[1]); // the holders exit; the daemon sees their connections go and cancels
    for (const pid_t pid : holders) waitpid(pid, nullptr, 0);
    for (int i = 0; i < 30000 && status_pending() != 0; ++i) usleep(1000);
}

// --- D. durable audit events per second with group commit ---

// The daemon's status: {"audit": {"durable_seq", ...}, ...}; 0 if it does not answer.
std::uint64_t durable_seq() {
    std::vector<Json> r;
    if (!jitgate::client::request(g_opts, Json{{"type", "status"}}, r).ok() || r.empty()) return 0;
    const Json& st = r.back()["status"];
    if (st.contains("audit") && st["audit"].is_object() && st["audit"].contains("durable_seq"))
        return st["audit"]["durable_seq"].get<std::uint64_t>();
    return st.value("audit_seq", std::uint64_t{0});
}

// The fsync_count.so shim's shared page ([0] fdatasync calls, [1] fsync calls), or nullptr.
const unsigned long* map_sync_counts(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nullptr;
    void* p = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    return p == MAP_FAILED ? nullptr : static_cast<const unsigned long*>(p);
}

// For each client count: `reps` windows of `seconds` in which every client makes allow-rule
// decisions back to back (each one records an access event that is fdatasync'ed, with group
// commit, before its reply). Events made durable come from the spool's durable_seq before and
// after the window; fdatasync calls from the shim, when loaded.
void durable_section(int reps, double seconds) {
    const std::string counts_file = g_dir + "/sync-counts";
    std::vector<std::string> env;
    if (!g_fsync_count_lib.empty()) {
        env.push_back("LD_PRELOAD=" + g_fsync_count_lib);
        env.push_back("JITGATE_FSYNC_COUNT_FILE=" + counts_file);
    }
    g_config = g_dir + "/jitgate-durable.yaml";
    write_config(g_config, g_dir + "/spool-durable", k_local_approval);
    start_daemon(env);
    const unsigned long* counts = env.empty() ? nullptr : map_sync_counts(counts_file);
    if (!env.empty() && counts == nullptr)
        std::fprintf(stderr, "fsync_count.so did not map %s: no fdatasync counts\n", counts_file.c_str());
    const auto r = request_for({"/usr/bin/true"});
    for (int clients : {1, 8, 64}) {
        std::vector<double> eps, fps, per_sync, per_decision;
        for (int k = 0; k < reps; ++k) {
            std::atomic<bool> stop{false};
            std::atomic<long> decisions{0};
            const std::uint64_t seq0 = durable_seq();
            const unsigned long syncs0 = counts != nullptr ? __atomic_load_n(&counts[0], __ATOMIC_RELAXED) : 0;
            const auto t0 = Clock::now();
            std::vector<std::thread> threads;
            for (int c = 0; c < clients; ++c)
                threads.emplace_back([&] {
                    while (!stop.load(std::memory_order_relaxed)) {
                        if (!decide(r)) {
                            std::fprintf(stderr, "fast path denied\n");
                            std::exit(1);
                        }
                        decisions.fetch_add(1, std::memory_order_relaxed);
                    }
                });
            std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
            stop = true;
            for (auto& t : threads) t.join();
            // Every decision was answered, so its event was durable before this status.
            const std::uint64_t seq1 = durable_seq();
            const unsigned long syncs1 = counts != nullptr ? __atomic_load_n(&counts[0], __ATOMIC_RELAXED) : 0;
            const double s = us_since(t0) / 1e6;
            const auto events = static_cast<double>(seq1 - seq0);
            eps.push_back(events / s);
            per_decision.push_back(events / static_cast<double>(std::max(1L, decisions.load())));
            if (counts != nullptr) {
                const auto syncs = static_cast<double>(syncs1 - syncs0);
                fps.push_back(syncs / s);
                per_sync.push_back(syncs > 0 ? events / syncs : 0);
            }
        }
        const std::string n = std::to_string(clients) + (clients == 1 ? " client" : " clients");
        add_row("D. durable audit events/s, " + n, spread(eps, "events/s", 0));
        if (!fps.empty()) {
            add_row("D. fdatasync calls/s, " + n, spread(fps, "fdatasync/s", 0));
            add_row("D. events per fdatasync (batch), " + n, spread(per_sync, "events", 2));
        }
        std::sort(per_decision.begin(), per_decision.end());
        if (per_decision.front() < 0.99 || per_decision.back() > 1.01)
            std::fprintf(stderr, "note: %.3f..%.3f durable events per decision (expected 1)\n", per_decision.front(),
                         per_decision.back());
    }
    if (counts == nullptr && g_fsync_count_lib.empty())
        add_row("D. fdatasync calls/s", "not measured (no --fsync-count shim)");
    stop_daemon();
}

// --- 6. approval to allow, service backend ---

// One plain HTTP/1.1 call to 127.0.0.1:port (the test service's admin API); returns the status
// code (0 if the call failed) and puts the body in `out`.
int http_call(int port, const std::string& method, const std::string& path, const std::string& body, std::string& out) {
    out.clear();
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return 0;
    }
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    if (method != "GET")
        req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n" + body;
    for (std::size_t off = 0; off < req.size();) {
        const ssize_t n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
        if (n <= 0) {
            ::close(fd);
            return 0;
        }
        off += static_cast<std::size_t>(n);
    }
    std::string resp;
    char buf[8192];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) resp.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    int status = 0;
    if (resp.rfind("HTTP/1.", 0) == 0 && resp.size() > 12) status = std::atoi(resp.c_str() + 9);
    if (const auto p = resp.find("\r\n\r\n"); p != std::string::npos) out = resp.substr(p + 4);
    return status;
}

int read_port(const std::string& file) {
    std::ifstream in(file);
    int port = 0;
    in >> port;
    return port;
}

// Files a request through the client library, waits until the daemon's long poll for it is
// parked at the service (the service's poll counter is read under the same lock the poll
// waits with), approves it over the admin API and returns microseconds from sending that
// approval to the waiting client holding its allow.
double approve_once_service(int admin_port, const std::vector<std::string>& argv) {
    std::mutex m;
    std::condition_variable cv;
    std::string id;
    std::atomic<bool> allowed{false};
    Clock::time_point done;
    std::thread waiter([&] {
        jitgate::client::UserIo io;
        io.notice = [](const std::string&) {};
        io.waiting = [&](const std::string& text) {
            static const std::regex re("R-[0-9A-Za-z]+");
            std::smatch mt;
            std::lock_guard<std::mutex> lock(m);
            id = std::regex_search(text, mt, re) ? mt.str() : "?";
            cv.notify_all();
        };
        jitgate::msg::Decision d;
        allowed = jitgate::client::run_check(g_opts, request_for(argv), io, nullptr, d).ok() && d.allow;
        done = Clock::now();
        std::lock_guard<std::mutex> lock(m);
        if (id.empty()) id = "?";
        cv.notify_all();
    });
    std::string rid; // the request id, as the waiting notice named it
    {
        std::unique_lock<std::mutex> lock(m);
        cv.wait_for(lock, std::chrono::seconds(10), [&] { return !id.empty(); });
        rid = id;
    }
    std::string body;
    bool parked = false;
    for (int i = 0; i < 20000 && rid != "?" && !rid.empty(); ++i) {
        if (http_call(admin_port, "GET", "/admin/requests/" + rid, "", body) == 200) {
            const Json j = Json::parse(body, nullptr, false);
            if (j.is_object() && j.value("polls", 0) >= 1) {
                parked = true;
                break;
            }
        }
        usleep(250);
    }
    if (!parked) {
        std::fprintf(stderr, "request %s never reached a long poll at the service (see %s/daemon.log)\n", rid.c_str(),
                     g_dir.c_str());
        std::exit(1);
    }
    const auto t0 = Clock::now();
    const int code =
        http_call(admin_port, "POST", "/admin/requests/" + rid + "/approve", R"({"approvers":["bob"]})", body);
    waiter.join();
    if (code != 200 || !allowed) {
        std::fprintf(stderr, "service approval of %s: HTTP %d, %s\n%s\n", rid.c_str(), code,
                     allowed ? "allowed" : "not allowed", body.c_str());
        std::exit(1);
    }
    return std::chrono::duration<double, std::micro>(done - t0).count();
}

// The PKI of the service section; made while the bench still runs as plain root (bash drops
// privileges when its real and effective uids differ). Empty on failure.
std::string make_pki() {
    const std::string dir = g_dir + "/pki";
    const std::string cmd = "bash '" + g_make_pki + "' '" + dir + "'";
    if (std::system(cmd.c_str()) != 0) {
        std::fprintf(stderr, "%s failed: no service-backend row\n", cmd.c_str());
        return {};
    }
    return dir;
}

// `svc_env`: extra environment of the service (the TCP_NODELAY shim); `variant`: how the row
// names this run.
void service_section(const std::string& pki, int n, const std::vector<std::string>& svc_env,
                     const std::string& variant) {
    const std::string port_file = g_dir + "/svc.port", admin_file = g_dir + "/svc.admin";
    ::unlink(port_file.c_str());
    ::unlink(admin_file.c_str());
    const std::string what = "6. approval to allow (service backend" + variant + ")";
    const pid_t svc = g_service =
        spawn({g_service_bin, "--listen", "127.0.0.1", "--port", "0", "--port-file", port_file, "--admin-port-file",
               admin_file, "--cert", pki + "/server.pem", "--key", pki + "/server.key", "--client-ca", pki + "/ca.pem",
               "--signing-key", pki + "/signing.key", "--kid", "k1"},
              g_dir + "/svc.out", svc_env);
    int port = 0, admin = 0;
    for (int i = 0; i < 200 && (port == 0 || admin == 0); ++i) {
        usleep(25000);
        port = read_port(port_file);
        admin = read_port(admin_file);
    }
    if (port == 0 || admin == 0) {
        std::fprintf(stderr, "the approval service did not come up (see %s/svc.out)\n", g_dir.c_str());
        kill(svc, SIGTERM);
        waitpid(svc, nullptr, 0);
        g_service = -1;
        add_row(what, "not measured: the test approval service did not start");
        return;
    }
    // As tests/integration/service_cases.sh configures it, with the default (realistic) timeouts:
    // a 25 s long poll that the service answers as soon as it decides.
    const std::string approval = "approval:\n  backend: service\n  approver_groups: [root]\n  service:\n"
                                 "    url: https://127.0.0.1:" +
                                 std::to_string(port) +
                                 "\n"
                                 "    ca_file: " +
                                 pki +
                                 "/ca.pem\n"
                                 "    client_cert: " +
                                 pki +
                                 "/client.pem\n"
                                 "    client_key: " +
                                 pki +
                                 "/client.key\n"
                                 "    poll_wait: 25s\n"
                                 "    public_keys:\n      k1: " +
                                 pki + "/signing.pub\n";
    g_config = g_dir + "/jitgate-service.yaml";
    static int runs = 0;
    write_config(g_config, g_dir + "/spool-service-" + std::to_string(++runs), approval);
    start_daemon();
    approve_once_service(admin, {"/usr/bin/id", "svc-warm-up"}); // TLS session and curl connection set up
    std::vector<double> a2r;
    for (int i = 0; i < n; ++i)
        a2r.push_back(approve_once_service(admin, {"/usr/bin/id", "svc", std::to_string(i)}) / 1000.0);
    char p50_p99[96];
    std::snprintf(p50_p99, sizeof p50_p99, "p50 %.3f ms, p99 %.3f ms (n=%zu)", percentile(a2r, 0.50),
                  percentile(a2r, 0.99), a2r.size());
    add_row(what + ", median of " + std::to_string(a2r.size()), spread(a2r, "ms", 3));
    add_row(what + ", p50 / p99", p50_p99);
    stop_daemon();
    kill(svc, SIGTERM);
    waitpid(svc, nullptr, 0);
    g_service = -1;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2 || geteuid() != 0) {
        std::fprintf(stderr,
                     "usage (as root): %s PATH/TO/jitgated [--quick] [--fsync-count=SO] [--approval-service=BIN "
                     "--make-pki=SCRIPT [--tcp-nodelay=SO]] [--sections=1,2,4,5,6,D] [google-benchmark flags]\n",
                     argv[0]);
        return 2;
    }
    g_daemon_bin = argv[1];
    bool quick = false;
    std::string sections = "1,2,4,5,6,D"; // --sections=LIST: which sections run
    int bargc = 1;
    std::vector<char*> bargv{argv[0]};
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        const auto value = [&](const char* name) -> const char* {
            const std::string prefix = std::string(name) + "=";
            return a.rfind(prefix, 0) == 0 ? argv[i] + prefix.size() : nullptr;
        };
        if (a == "--quick")
            quick = true;
        else if (const char* v = value("--fsync-count"))
            g_fsync_count_lib = v;
        else if (const char* v2 = value("--approval-service"))
            g_service_bin = v2;
        else if (const char* v3 = value("--make-pki"))
            g_make_pki = v3;
        else if (const char* v4 = value("--tcp-nodelay"))
            g_nodelay_lib = v4;
        else if (const char* v5 = value("--sections"))
            sections = v5;
        else
            bargv.push_back(argv[i]), ++bargc;
    }
    const auto want = [&](const char* section) {
        return ("," + sections + ",").find(std::string(",") + section + ",") != std::string::npos;
    };
    const int n_latency = quick ? 20000 : 100000;
    const int reps = quick ? 3 : 5;
    char tmpl[] = "/tmp/jitgate-bench-XXXXXX";
    g_dir = mkdtemp(tmpl);
    g_opts.socket_path = g_dir + "/jitgated.sock";
    g_config = g_dir + "/jitgate.yaml";
    write_config(g_config, g_dir + "/spool", k_local_approval);
    const std::string pki = !g_service_bin.empty() && !g_make_pki.empty() ? make_pki() : "";
    // Section 4's requesters (10,000 waiting requests at 100 per user), in a private mount
    // namespace: every daemon of the bench starts after this and sees them.
    if (!add_bench_users(100)) std::fprintf(stderr, "no bench users: section 4 is not measured\n");
    rlimit nofile{65536, 65536};
    setrlimit(RLIMIT_NOFILE, &nofile);
    std::atexit(kill_children);
    struct sigaction wake {}; // SIGUSR1 only interrupts a waiting client's poll() (no SA_RESTART)
    wake.sa_handler = [](int) {};
    sigaction(SIGUSR1, &wake, nullptr);

    // 5. start-up to ready, idle RSS (the last daemon started stays for 1, 2, 4 and 6)
    std::vector<double> startup, idle, idle_anon;
    const int starts = want("5") ? reps : 1;
    for (int k = 0; k < starts; ++k) {
        const auto t = Clock::now();
        start_daemon();
        startup.push_back(us_since(t) / 1000.0);
        idle.push_back(static_cast<double>(rss_kib(g_daemon)) / 1024.0);
        idle_anon.push_back(static_cast<double>(anon_kib(g_daemon)) / 1024.0);
        if (k + 1 < starts) stop_daemon();
    }
    if (want("5")) {
        add_row("5. start-up to ready", spread(startup, "ms", 2));
        add_row("5. idle RSS", spread(idle, "MiB", 1));
        add_row("5. idle own memory (RssAnon)", spread(idle_anon, "MiB", 1));
    }

    // The requester is "nobody" with euid 0, as a setuid sudo of nobody's would be; the
    // approver (this process's euid, root) is then never the requester.
    if (setresuid(k_bench_uid, 0, 0) != 0) {
        std::perror("setresuid");
        return 1;
    }
    // The live grant for the grant fast path. If the daemon refuses local approvals, every row
    // that needs one says so instead of a number, and the rest is still measured.
    std::string no_grant;
    const bool granted = approve_once({"/usr/bin/id", "granted"}, no_grant).has_value();
    if (!granted) std::fprintf(stderr, "no live grant: %s\n", no_grant.c_str());

    if (want("1")) {
        latency_section("allow rule", request_for({"/usr/bin/true"}), n_latency, reps);
        if (granted)
            latency_section("live grant", request_for({"/usr/bin/id", "granted"}), n_latency, reps);
        else
            add_row("1. fast path, live grant", "not measured: " + no_grant);
    }

    // 2. throughput
    for (int threads : {1, 2, 8, 64}) {
        benchmark::RegisterBenchmark("fast_path_allow_rule", BM_FastPathAllowRule)
            ->Threads(threads)
            ->UseRealTime()
            ->MinTime(quick ? 0.5 : 2.0)
            ->Repetitions(reps);
        if (granted)
            benchmark::RegisterBenchmark("fast_path_live_grant", BM_FastPathGrant)
                ->Threads(threads)
                ->UseRealTime()
                ->MinTime(quick ? 0.5 : 2.0)
                ->Repetitions(reps);
    }
    benchmark::Initialize(&bargc, bargv.data());
    TableReporter reporter;
    if (want("2")) {
        benchmark::RunSpecifiedBenchmarks(&reporter);
        reporter.publish();
    }

    // 4. many waiting requests: the idle fast-path p99 and own memory first, as the baseline
    if (want("4")) {
        const long anon0 = anon_kib(g_daemon);
        const auto p99_0 = fast_path_p99s();
        add_row("4. nothing waiting: fast-path p99", spread(p99_0, "us"));
        waiting_section(1000, p99_0, anon0);
        waiting_section(10000, p99_0, anon0);
    }

    // 6. approval to run
    std::vector<double> a2r;
    std::string why;
    for (int i = 0; i < (quick ? 50 : 200) && want("6"); ++i) {
        const auto us = approve_once({"/usr/bin/id", "a2r", std::to_string(i)}, why);
        if (!us) break;
        a2r.push_back(*us / 1000.0);
    }
    if (!why.empty()) {
        add_row("6. approval to allow (local backend)", "not measured: " + why);
    } else if (!a2r.empty()) {
        add_row("6. approval to allow (local backend), median of " + std::to_string(a2r.size()), spread(a2r, "ms", 3));
        add_row("6. approval to allow, p99", std::to_string(percentile(a2r, 0.99)) + " ms");
    }
    stop_daemon();

    // D. durable audit events with group commit (a fresh daemon, with the fsync counter)
    if (want("D")) durable_section(reps, quick ? 1.0 : 2.0);

    // 6. approval to allow, service backend (a fresh daemon against the test service)
    // As the test service runs (cpp-httplib: Nagle on), then with TCP_NODELAY on its sockets.
    if (want("6") && !pki.empty()) {
        service_section(pki, 200, {}, "");
        if (!g_nodelay_lib.empty())
            service_section(pki, 200, {"LD_PRELOAD=" + g_nodelay_lib}, ", service with TCP_NODELAY");
    } else if (want("6")) {
        add_row("6. approval to allow (service backend)", "not measured (no --approval-service/--make-pki, or no PKI)");
    }

    std::printf("\n%-58s %s\n", "measure", "value: median (min..max, n)");
    std::printf("%s\n", std::string(110, '-').c_str());
    for (const auto& row : g_table) std::printf("%-58s %s\n", row.what.c_str(), row.value.c_str());
    if (setresuid(0, 0, 0) != 0) std::perror("setresuid"); // back to root to clean up
    if (std::getenv("JITGATE_BENCH_KEEP") != nullptr) {    // for a look at the daemons' logs and spools
        std::fprintf(stderr, "kept %s\n", g_dir.c_str());
        return 0;
    }
    std::string cmd = "rm -rf " + g_dir;
    return std::system(cmd.c_str()) == 0 ? 0 : 1;
}
