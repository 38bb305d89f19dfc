// bench/server_bench.cpp — load for a running jitgate-server, as hosts and approvers make it:
// every host call is a real mutual-TLS connection with a host certificate (libcurl multi, one
// thread), every approval a real POST to the web UI with a session cookie and its CSRF token.
// Driven by bench/server_bench.sh, which makes the PKI, the keys, the config and the servers;
// the figures go to docs/PERFORMANCE.md ("jitgate-server"). Not a test: it measures, it asserts
// only that each answer is the one the protocol promises (else it stops with exit 1, so a
// figure is never made of errors).
//
// Modes (each prints `RESULT key=value ...` lines):
//   rate     files --count requests with --concurrency keep-alive connections; requests/s (and,
//            with --server-pid, the server's CPU per filing).
//   park     files --count requests, parks one long poll (GET ?wait=60) per request, each on
//            its own connection, then samples --server-pid's VmRSS and CPU (utime+stime) over
//            --idle seconds while nothing moves.
//   latency  per request: park a poll (on --hosts-url), approve through the web UI (on
//            --web-url, maybe another replica), time from the approve POST to the poll's answer
//            carrying the grant; p50/p99.
//   ingest   --hosts N hosts (bench-01..bench-NN, one certificate naming them all) each ship
//            --count hash-chained audit events in batches of --batch to POST /v1/audit/events
//            (docs/audit.md §5), every host on its own keep-alive connection and one batch at a
//            time, as jitgated ships; events/s acknowledged (each acknowledgement comes after
//            the commit). The events are made and hashed before the clock starts.
// The approver's session is written straight into the server's database (--sqlite PATH or
// --postgres CONNINFO) through server/store, as the OIDC callback would after a sign-in: the
// bench measures the service, not the identity provider.
//
// Threading: one thread. Errors: a failed call or a wrong answer ends the run with a one-line
// message and exit 1.
#include "lib/audit_event.hpp"
#include "server/store/store.hpp"
#include "server/web/browser.hpp"

#include <nlohmann/json.hpp>

#include <curl/curl.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& message) {
    std::fprintf(stderr, "server_bench: %s\n", message.c_str());
    std::exit(1);
}

struct Options {
    std::string mode;
    std::string hosts_url; // https://127.0.0.1:PORT (mutual TLS)
    std::string web_url;   // https://127.0.0.1:PORT (= the server's public_url)
    std::string ca, cert, key;
    std::string host = "bench-01";
    std::string sqlite, postgres;
    int count = 1000;
    int concurrency = 16;
    int idle_s = 30;
    long server_pid = 0;
    int hosts = 16; // ingest
    int batch = 500;
};

Options parse(int argc, char** argv) {
    Options o;
    if (argc < 2) die("usage: server_bench rate|park|latency|ingest --hosts-url U --ca F --cert F --key F [...]");
    o.mode = argv[1];
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) die("missing value after " + a);
        const std::string v = argv[++i];
        if (a == "--hosts-url")
            o.hosts_url = v;
        else if (a == "--web-url")
            o.web_url = v;
        else if (a == "--ca")
            o.ca = v;
        else if (a == "--cert")
            o.cert = v;
        else if (a == "--key")
            o.key = v;
        else if (a == "--host")
            o.host = v;
        else if (a == "--sqlite")
            o.sqlite = v;
        else if (a == "--postgres")
            o.postgres = v;
        else if (a == "--count")
            o.count = std::stoi(v);
        else if (a == "--concurrency")
            o.concurrency = std::stoi(v);
        else if (a == "--idle")
            o.idle_s = std::stoi(v);
        else if (a == "--server-pid")
            o.server_pid = std::stol(v);
        else if (a == "--hosts")
            o.hosts = std::stoi(v);
        else if (a == "--batch")
            o.batch = std::stoi(v);
        else
            die("unknown option " + a);
    }
    if (o.hosts_url.empty() || o.ca.empty() || o.cert.empty() || o.key.empty())
        die("--hosts-url, --ca, --cert and --key are required");
    if (o.count < 1 || o.concurrency < 1 || o.idle_s < 1 || o.hosts < 1 || o.hosts > 99 || o.batch < 1 ||
        o.batch > 10000)
        die("--count, --concurrency and --idle must be positive, --hosts 1..99, --batch 1..10000");
    return o;
}

std::string random_bytes(std::size_t n) {
    std::string out(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) die("RAND_bytes failed");
    return out;
}

std::string base64url(const std::string& bytes) {
    static constexpr char k_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (const unsigned char c : bytes) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += k_alphabet[(acc >> bits) & 0x3F];
        }
    }
    if (bits > 0) out += k_alphabet[(acc << (6 - bits)) & 0x3F];
    return out;
}

std::string hex(const std::string& bytes) {
    static constexpr char k_hex[] = "0123456789abcdef";
    std::string out;
    for (const unsigned char c : bytes) {
        out += k_hex[c >> 4];
        out += k_hex[c & 0x0F];
    }
    return out;
}

// Request ids unique in this run: "R-" + 4 random characters + a 6-digit base-36 counter.
class IdMaker {
public:
    IdMaker() {
        static constexpr char k_chars[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        for (const unsigned char c : random_bytes(4)) m_prefix += k_chars[c % 36];
    }
    std::string next() {
        static constexpr char k_chars[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        std::string digits(6, '0');
        long n = m_counter++;
        for (int i = 5; i >= 0; --i, n /= 36) digits[static_cast<std::size_t>(i)] = k_chars[n % 36];
        return "R-" + m_prefix + digits;
    }

private:
    std::string m_prefix;
    long m_counter = 0;
};

// The body of docs/protocol.md §4, for `sudo systemctl restart nginx` by alice.
std::string request_body(const std::string& host, const std::string& id) {
    const std::string nonce = base64url(random_bytes(32));
    unsigned char digest[SHA256_DIGEST_LENGTH];
    const std::string seed = id + nonce;
    SHA256(reinterpret_cast<const unsigned char*>(seed.data()), seed.size(), digest);
    const std::string cmd_sha256 = hex(std::string(reinterpret_cast<const char*>(digest), sizeof digest));
    std::ostringstream b;
    b << R"({"protocol":1,"id":")" << id << R"(","nonce":")" << nonce << R"(","host":")" << host
      << R"(","host_environment":"production","host_tags":["finance"],)"
      << R"("requester":{"user":"alice","uid":2001,"login_uid":2001,"login_user":"alice"},)"
      << R"("account":{"user":"alice","uid":2001},"kind":"sudo","scope":"command",)"
      << R"("action":{"command":"/usr/bin/systemctl","argv":["/usr/bin/systemctl","restart","nginx"],)"
      << R"("display":"/usr/bin/systemctl restart nginx","runas":"root","runas_group":"root",)"
      << R"("cwd":"/home/alice","chroot":"","program":"/usr/bin/systemctl","env":[],"env_code_loading":[],)"
      << R"("tty":"/dev/pts/3","service":"","remote_host":"","cmd_sha256":")" << cmd_sha256 << R"("},)"
      << R"("reason":"bench","ticket":"CHG0001234","rule":"finance","approvals_needed":1,)"
      << R"("approver_groups":["sox-approvers"],"ttl_s":900,"timeout_s":1800})";
    return b.str();
}

// One HTTP exchange on a curl easy handle; the handle (and so its connection, through the
// multi's pool) is reused for the next exchange.
struct Transfer {
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    std::string post;     // the body of a POST (curl does not copy it: CURLOPT_POSTFIELDS)
    std::string response; // the answer's body
    std::string id;       // the request id this transfer is about
    bool sent = false;    // the request's headers went out
    bool done = false;
    CURLcode result = CURLE_OK;
    long status = 0;
    Clock::time_point sent_at, done_at;

    Transfer() {
        easy = curl_easy_init();
        if (easy == nullptr) die("curl_easy_init failed");
    }
    ~Transfer() {
        curl_easy_cleanup(easy);
        curl_slist_free_all(headers);
    }
    Transfer(const Transfer&) = delete;
    Transfer& operator=(const Transfer&) = delete;

    void reset_state() {
        response.clear();
        sent = done = false;
        result = CURLE_OK;
        status = 0;
    }
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    if (t->response.size() + size * n > 1024 * 1024) return 0;
    t->response.append(data, size * n);
    return size * n;
}

// Requests whose headers went out, over every transfer (a counter, so that waiting for 10,000
// polls to be sent is not a scan of 10,000 transfers per loop turn).
std::size_t g_requests_sent = 0;

// CURLINFO_HEADER_OUT: the request left; for a long poll, the server parks it soon after.
int on_debug(CURL*, curl_infotype type, char*, size_t, void* user) {
    if (type == CURLINFO_HEADER_OUT) {
        auto* t = static_cast<Transfer*>(user);
        if (!t->sent) {
            t->sent = true;
            t->sent_at = Clock::now();
            ++g_requests_sent;
        }
    }
    return 0;
}

void setopt_common(Transfer& t, const std::string& url, const std::string& ca) {
    CURL* e = t.easy;
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_CAINFO, ca.c_str());
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(e, CURLOPT_DEBUGDATA, &t);
    curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 60L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 180L);
}

// A host: mutual TLS with the host's certificate.
void as_host(Transfer& t, const Options& o, const std::string& url, const char* content_type = "application/json") {
    setopt_common(t, url, o.ca);
    curl_easy_setopt(t.easy, CURLOPT_SSLCERT, o.cert.c_str());
    curl_easy_setopt(t.easy, CURLOPT_SSLKEY, o.key.c_str());
    curl_slist_free_all(t.headers);
    t.headers = nullptr;
    t.headers = curl_slist_append(t.headers, "Accept: application/json");
    t.headers = curl_slist_append(t.headers, "Jitgate-Protocol: 1");
    t.headers = curl_slist_append(t.headers, "User-Agent: server_bench");
    if (!t.post.empty())
        t.headers = curl_slist_append(t.headers, (std::string("Content-Type: ") + content_type).c_str());
    curl_easy_setopt(t.easy, CURLOPT_HTTPHEADER, t.headers);
    if (!t.post.empty()) {
        curl_easy_setopt(t.easy, CURLOPT_POSTFIELDS, t.post.c_str());
        curl_easy_setopt(t.easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(t.post.size()));
    } else {
        curl_easy_setopt(t.easy, CURLOPT_HTTPGET, 1L);
    }
}

class Multi {
public:
    explicit Multi(long max_host_connections = 0) {
        m_multi = curl_multi_init();
        if (m_multi == nullptr) die("curl_multi_init failed");
        curl_multi_setopt(m_multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host_connections);
        curl_multi_setopt(m_multi, CURLMOPT_MAXCONNECTS, 20000L);
    }
    ~Multi() { curl_multi_cleanup(m_multi); }
    Multi(const Multi&) = delete;
    Multi& operator=(const Multi&) = delete;

    void add(Transfer& t) {
        t.reset_state();
        m_by_easy[t.easy] = &t;
        if (curl_multi_add_handle(m_multi, t.easy) != CURLM_OK) die("curl_multi_add_handle failed");
    }
    // Runs transfers for up to `timeout_ms`; returns those that finished (removed from the multi).
    std::vector<Transfer*> step(int timeout_ms) {
        int running = 0;
        if (curl_multi_perform(m_multi, &running) != CURLM_OK) die("curl_multi_perform failed");
        std::vector<Transfer*> finished = collect();
        if (finished.empty() && timeout_ms > 0) {
            curl_multi_poll(m_multi, nullptr, 0, timeout_ms, nullptr);
            if (curl_multi_perform(m_multi, &running) != CURLM_OK) die("curl_multi_perform failed");
            finished = collect();
        }
        return finished;
    }

private:
    std::vector<Transfer*> collect() {
        std::vector<Transfer*> out;
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(m_multi, &left)) {
            if (msg->msg != CURLMSG_DONE) continue;
            Transfer* t = m_by_easy.at(msg->easy_handle);
            t->done = true;
            t->done_at = Clock::now();
            t->result = msg->data.result;
            curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
            curl_multi_remove_handle(m_multi, t->easy);
            m_by_easy.erase(t->easy);
            out.push_back(t);
        }
        return out;
    }

    CURLM* m_multi = nullptr;
    std::map<CURL*, Transfer*> m_by_easy;
};

void expect(const Transfer& t, long status, const std::string& what) {
    if (t.result != CURLE_OK) die(what + " " + t.id + ": " + curl_easy_strerror(t.result));
    if (t.status != status)
        die(what + " " + t.id + ": HTTP " + std::to_string(t.status) + " (want " + std::to_string(status) +
            "): " + t.response.substr(0, 300));
}

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// Files `count` requests over `concurrency` keep-alive connections; returns their ids.
std::vector<std::string> file_requests(const Options& o, int count, int concurrency, double* rate) {
    IdMaker ids;
    std::vector<std::string> filed;
    filed.reserve(static_cast<std::size_t>(count));
    Multi multi(concurrency);
    std::vector<std::unique_ptr<Transfer>> slots;
    int started = 0;
    auto start_next = [&](Transfer& t) {
        t.id = ids.next();
        t.post = request_body(o.host, t.id);
        as_host(t, o, o.hosts_url + "/v1/requests");
        multi.add(t);
        ++started;
    };
    const Clock::time_point begin = Clock::now();
    for (int i = 0; i < std::min(concurrency, count); ++i) {
        slots.push_back(std::make_unique<Transfer>());
        start_next(*slots.back());
    }
    while (static_cast<int>(filed.size()) < count) {
        for (Transfer* t : multi.step(100)) {
            expect(*t, 201, "POST /v1/requests");
            if (t->response.find("\"pending\"") == std::string::npos)
                die("a new request is not pending: " + t->response);
            filed.push_back(t->id);
            if (started < count) start_next(*t);
        }
    }
    const double elapsed = seconds_since(begin);
    if (rate != nullptr) *rate = count / elapsed;
    return filed;
}

struct ProcSample {
    long rss_kib = 0;
    long cpu_ticks = 0; // utime + stime
};

// This process's CPU time so far (user + system), seconds.
double own_cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const auto secs = [](const timeval& tv) {
        return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
    };
    return secs(usage.ru_utime) + secs(usage.ru_stime);
}

double mib(long kib) {
    return static_cast<double>(kib) / 1024.0;
}

ProcSample sample(long pid) {
    ProcSample s;
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmRSS:", 0) == 0) s.rss_kib = std::stol(line.substr(6));
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close = all.rfind(')');
    if (close == std::string::npos || s.rss_kib == 0) die("cannot read /proc/" + std::to_string(pid));
    std::istringstream rest(all.substr(close + 2));
    std::vector<std::string> fields;
    std::string f;
    while (rest >> f) fields.push_back(f);
    // Fields from the state (field 3): utime is field 14, stime field 15.
    if (fields.size() < 13) die("short /proc/PID/stat");
    s.cpu_ticks = std::stol(fields[11]) + std::stol(fields[12]);
    return s;
}

int park(const Options& o) {
    if (o.server_pid <= 0) die("park needs --server-pid");
    const long hz = sysconf(_SC_CLK_TCK);
    const ProcSample before = sample(o.server_pid);
    double rate = 0;
    const std::vector<std::string> ids = file_requests(o, o.count, o.concurrency, &rate);
    std::printf("RESULT filed=%d concurrency=%d rate_per_s=%.0f\n", o.count, o.concurrency, rate);
    const ProcSample after_filing = sample(o.server_pid);

    // One poll per request, each on a connection of its own (no connection is free while all
    // are parked). At most k_ramp handshakes at once, so the listen backlog never overflows.
    constexpr std::size_t k_ramp = 200;
    Multi multi(0);
    std::vector<std::unique_ptr<Transfer>> polls;
    polls.reserve(ids.size());
    for (const std::string& id : ids) {
        polls.push_back(std::make_unique<Transfer>());
        polls.back()->id = id;
        as_host(*polls.back(), o, o.hosts_url + "/v1/requests/" + id + "?wait=60");
    }
    const Clock::time_point begin = Clock::now();
    std::size_t added = 0;
    long answered_early = 0; // polls answered (pending, after their 60 s) and sent again
    const std::size_t sent_before = g_requests_sent;
    const auto first_sends = [&]() { return g_requests_sent - sent_before - static_cast<std::size_t>(answered_early); };
    while (first_sends() < polls.size()) {
        while (added < polls.size() && added < first_sends() + k_ramp) multi.add(*polls[added++]);
        for (Transfer* t : multi.step(20)) {
            expect(*t, 200, "GET (parking)");
            ++answered_early;
            multi.add(*t);
        }
    }
    const double park_s = seconds_since(begin);
    const ProcSample parked = sample(o.server_pid);
    const double own_cpu_s = own_cpu_seconds();
    // Let the last requests reach the handler and park.
    const Clock::time_point settle = Clock::now() + std::chrono::seconds(2);
    while (Clock::now() < settle)
        for (Transfer* t : multi.step(100)) {
            expect(*t, 200, "GET (settling)");
            ++answered_early;
            multi.add(*t);
        }
    const ProcSample start = sample(o.server_pid);
    const Clock::time_point window_start = Clock::now();
    long answered_in_window = 0;
    const Clock::time_point window_end = window_start + std::chrono::seconds(o.idle_s);
    while (Clock::now() < window_end)
        for (Transfer* t : multi.step(500)) {
            expect(*t, 200, "GET (idle)");
            ++answered_in_window;
            multi.add(*t);
        }
    const double window_s = seconds_since(window_start);
    const ProcSample end = sample(o.server_pid);
    const double cpu_s = static_cast<double>(end.cpu_ticks - start.cpu_ticks) / static_cast<double>(hz);
    std::printf("RESULT polls=%zu park_s=%.1f server_cpu_parking_s=%.1f bench_cpu_total_s=%.1f "
                "answered_before_window=%ld answered_in_window=%ld\n",
                polls.size(), park_s,
                static_cast<double>(parked.cpu_ticks - after_filing.cpu_ticks) / static_cast<double>(hz), own_cpu_s,
                answered_early, answered_in_window);
    std::printf("RESULT rss_start_mib=%.1f rss_after_filing_mib=%.1f rss_parked_mib=%.1f rss_parked_end_mib=%.1f "
                "per_poll_kib=%.1f\n",
                mib(before.rss_kib), mib(after_filing.rss_kib), mib(start.rss_kib), mib(end.rss_kib),
                static_cast<double>(start.rss_kib - after_filing.rss_kib) / static_cast<double>(polls.size()));
    std::printf("RESULT idle_window_s=%.1f cpu_s=%.3f cpu_percent=%.2f\n", window_s, cpu_s, 100.0 * cpu_s / window_s);
    return 0;
}

// The approver "bob" (group sox-approvers), signed in: a session row as the OIDC callback
// writes it. Returns the browser's cookie token and the session's CSRF token.
std::pair<std::string, std::string> sign_in_bob(const Options& o) {
    namespace store = jitgate::server::store;
    namespace browser = jitgate::server::web::browser;
    std::unique_ptr<store::Store> db = !o.postgres.empty() ? store::open_postgres(o.postgres)
                                       : !o.sqlite.empty() ? store::open_sqlite(o.sqlite)
                                                           : nullptr;
    if (!db) die("latency needs --sqlite PATH or --postgres CONNINFO (where the approver session goes)");
    const std::string token = browser::random_token();
    store::Session s;
    s.token_sha256 = browser::sha256_hex(token);
    s.identity = "https://idp.bench/ bob";
    s.unix_user = "bob";
    s.display_name = "Bob (bench)";
    s.groups = {"sox-approvers"};
    s.csrf_token = browser::random_token();
    s.created_at =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    s.expires_at = s.created_at + 3600;
    db->put_session(s);
    return {token, s.csrf_token};
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    const auto index = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(index, v.size() - 1)];
}

int latency(const Options& o) {
    if (o.web_url.empty()) die("latency needs --web-url");
    const auto [token, csrf] = sign_in_bob(o);
    const std::vector<std::string> ids = file_requests(o, o.count, std::min(o.concurrency, 8), nullptr);

    Multi multi(0);
    Transfer poll;
    Transfer approve;
    const std::string cookie = "Cookie: " + std::string(jitgate::server::web::browser::k_session_cookie) + "=" + token;
    const std::string origin = "Origin: " + o.web_url;
    std::vector<double> ms;
    ms.reserve(ids.size());
    for (const std::string& id : ids) {
        poll.id = id;
        poll.post.clear();
        as_host(poll, o, o.hosts_url + "/v1/requests/" + id + "?wait=60");
        multi.add(poll);
        while (!poll.sent)
            if (!multi.step(50).empty()) expect(poll, 200, "GET (answered before the approval)");
        // The request is out; give the server time to read it and park it.
        const Clock::time_point parked = Clock::now() + std::chrono::milliseconds(20);
        while (Clock::now() < parked)
            if (!multi.step(5).empty()) die("the poll for " + id + " answered before the approval: " + poll.response);

        approve.id = id;
        approve.post = "csrf=" + jitgate::server::web::browser::url_encode(csrf) + "&comment=bench";
        setopt_common(approve, o.web_url + "/r/" + o.host + "/" + id + "/approve", o.ca);
        curl_slist_free_all(approve.headers);
        approve.headers = nullptr;
        approve.headers = curl_slist_append(approve.headers, cookie.c_str());
        approve.headers = curl_slist_append(approve.headers, origin.c_str());
        approve.headers = curl_slist_append(approve.headers, "Content-Type: application/x-www-form-urlencoded");
        curl_easy_setopt(approve.easy, CURLOPT_HTTPHEADER, approve.headers);
        curl_easy_setopt(approve.easy, CURLOPT_POSTFIELDS, approve.post.c_str());
        curl_easy_setopt(approve.easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(approve.post.size()));
        const Clock::time_point t0 = Clock::now();
        multi.add(approve);
        while (!poll.done || !approve.done) multi.step(50);
        expect(approve, 200, "POST approve");
        expect(poll, 200, "GET (after the approval)");
        if (poll.response.find("\"approved\"") == std::string::npos ||
            poll.response.find("\"grant\":\"ey") == std::string::npos)
            die("the poll for " + id + " did not carry a grant: " + poll.response.substr(0, 300));
        ms.push_back(std::chrono::duration<double, std::milli>(poll.done_at - t0).count());
    }
    std::printf("RESULT approvals=%zu p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", ms.size(),
                percentile(ms, 0.50), percentile(ms, 0.90), percentile(ms, 0.99),
                *std::max_element(ms.begin(), ms.end()));
    return 0;
}

int rate(const Options& o) {
    const ProcSample before = o.server_pid > 0 ? sample(o.server_pid) : ProcSample{};
    double per_s = 0;
    file_requests(o, o.count, o.concurrency, &per_s);
    std::printf("RESULT filed=%d concurrency=%d rate_per_s=%.0f", o.count, o.concurrency, per_s);
    if (o.server_pid > 0) {
        const ProcSample after = sample(o.server_pid);
        const double cpu_ms = 1000.0 * static_cast<double>(after.cpu_ticks - before.cpu_ticks) /
                              static_cast<double>(sysconf(_SC_CLK_TCK));
        std::printf(" server_cpu_ms_per_request=%.2f", cpu_ms / o.count);
    }
    std::printf("\n");
    return 0;
}

// One host's events as jitgated writes them: a sudo allowed by a live grant, then its
// command.finished, alternately; canonical form with the hash chain (lib/audit_event).
std::vector<std::string> host_batches(const std::string& host, int count, int batch) {
    std::vector<std::string> batches;
    std::string prev = jitgate::audit::k_genesis_hash;
    std::string body;
    const std::string run = base64url(random_bytes(6));
    for (int seq = 1; seq <= count; ++seq) {
        const bool finished = seq % 2 == 0;
        nlohmann::json e{{"event_id", host + "-" + run + "-" + std::to_string(seq)},
                         {"seq", seq},
                         {"time", "2026-11-29T03:05:47.818Z"},
                         {"host", host},
                         {"type", finished ? "command.finished" : "access.allowed_by_grant"},
                         {"prev_hash", prev},
                         {"user", "alice"},
                         {"uid", 2001},
                         {"kind", "sudo"},
                         {"peer_pid", 40000 + seq % 20000},
                         {"command", "/usr/bin/systemctl"},
                         {"argv", {"/usr/bin/systemctl", "restart", "nginx"}},
                         {"runas", "root"},
                         {"tty", "/dev/pts/3"},
                         {"grant_id", "G-6RQ46DWNRR"},
                         {"rule", "finance"}};
        if (finished) {
            e["status_type"] = "exit";
            e["exit_status"] = 0;
            e["duration_ms"] = 412;
        } else {
            e["cwd"] = "/home/alice";
            e["outcome"] = "grant";
            e["expires"] = 1795000000;
            e["message"] = "allowed by grant G-6RQ46DWNRR";
        }
        const std::string canonical = jitgate::audit::canonical_bytes(e);
        prev = jitgate::audit::sha256_hex(canonical);
        e["hash"] = prev;
        body += e.dump();
        body += '\n';
        if (seq % batch == 0 || seq == count) {
            batches.push_back(std::move(body));
            body.clear();
        }
    }
    return batches;
}

int ingest(const Options& o) {
    std::vector<std::vector<std::string>> batches;
    std::size_t bytes = 0;
    for (int h = 1; h <= o.hosts; ++h) {
        const std::string name = (h < 10 ? "bench-0" : "bench-") + std::to_string(h);
        batches.push_back(host_batches(name, o.count, o.batch));
        for (const std::string& b : batches.back()) bytes += b.size();
    }
    Multi multi(0);
    std::vector<std::unique_ptr<Transfer>> slots;
    std::vector<std::size_t> next(batches.size(), 0);
    auto start_next = [&](std::size_t h) {
        Transfer& t = *slots[h];
        t.post = batches[h][next[h]];
        t.id = "host " + std::to_string(h + 1) + " batch " + std::to_string(next[h] + 1);
        as_host(t, o, o.hosts_url + "/v1/audit/events", "application/x-ndjson");
        multi.add(t);
    };
    const ProcSample before = o.server_pid > 0 ? sample(o.server_pid) : ProcSample{};
    const Clock::time_point begin = Clock::now();
    std::size_t running = 0;
    for (std::size_t h = 0; h < batches.size(); ++h) {
        slots.push_back(std::make_unique<Transfer>());
        start_next(h);
        ++running;
    }
    std::vector<double> batch_ms;
    while (running > 0) {
        for (Transfer* t : multi.step(100)) {
            std::size_t h = 0;
            while (slots[h].get() != t) ++h;
            expect(*t, 200, "POST /v1/audit/events");
            const std::size_t lines =
                static_cast<std::size_t>(std::count(batches[h][next[h]].begin(), batches[h][next[h]].end(), '\n'));
            const std::string want = "\"stored\":" + std::to_string(lines);
            const std::size_t at = t->response.find(want);
            if (at == std::string::npos ||
                (t->response[at + want.size()] != ',' && t->response[at + want.size()] != '}'))
                die("the acknowledgement of " + t->id + " is not for its " + std::to_string(lines) +
                    " events: " + t->response);
            batch_ms.push_back(std::chrono::duration<double, std::milli>(t->done_at - t->sent_at).count());
            if (++next[h] < batches[h].size())
                start_next(h);
            else
                --running;
        }
    }
    const double elapsed = seconds_since(begin);
    const double events = static_cast<double>(o.hosts) * o.count;
    std::sort(batch_ms.begin(), batch_ms.end());
    std::printf("RESULT hosts=%d events=%.0f batch=%d seconds=%.2f events_per_s=%.0f mib_per_s=%.1f "
                "batch_ms_p50=%.1f batch_ms_p99=%.1f",
                o.hosts, events, o.batch, elapsed, events / elapsed, static_cast<double>(bytes) / elapsed / 1048576.0,
                batch_ms[batch_ms.size() / 2], batch_ms[std::min(batch_ms.size() - 1, batch_ms.size() * 99 / 100)]);
    if (o.server_pid > 0) {
        const ProcSample after = sample(o.server_pid);
        const double cpu_s =
            static_cast<double>(after.cpu_ticks - before.cpu_ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
        std::printf(" server_cpu_us_per_event=%.1f server_cores=%.2f", 1e6 * cpu_s / events, cpu_s / elapsed);
    }
    std::printf(" bytes_per_event=%.0f\n", static_cast<double>(bytes) / events);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        std::setvbuf(stdout, nullptr, _IOLBF, 0); // each RESULT line as it is measured
        const Options o = parse(argc, argv);
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) die("curl_global_init failed");
        if (o.mode == "rate") return rate(o);
        if (o.mode == "park") return park(o);
        if (o.mode == "latency") return latency(o);
        if (o.mode == "ingest") return ingest(o);
        die("unknown mode " + o.mode);
    } catch (const std::exception& e) {
        die(e.what());
    }
}
