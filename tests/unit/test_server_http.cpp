// tests/unit/test_server_http.cpp — server/http: the event loop, and the TLS listeners over real
// TLS on 127.0.0.1 with a PKI made for the run (tests/support/make_pki.sh): mutual TLS and the
// client identity, browser listeners, limits, deferred replies, clients that go away while
// their request is parked (run this file under AddressSanitizer too), and 1,000 parked
// requests answered from another thread (it prints the server process's resident memory).
// Clients are libcurl, or raw OpenSSL where a test must control the socket itself.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "daemon/audit/auditor.hpp"
#include "daemon/audit/shipper.hpp"
#include "jitgate/error.hpp"
#include "lib/audit_event.hpp"
#include "lib/grant_token.hpp"
#include "server/config/config.hpp"
#include "server/http/http.hpp"
#include "server/http/internal.hpp"
#include "server/http/worker.hpp"
#include "server/service/audit_ingest.hpp"
#include "server/service/service.hpp"
#include "server/store/store.hpp"

// One allocation of an armed size fails (std::bad_alloc), on whichever thread makes it: how a
// test makes the audit batch check run out of memory on the worker. Every other allocation is
// malloc's.
std::atomic<std::size_t> g_fail_allocation_of{0};

void* operator new(std::size_t size) {
    std::size_t armed = size;
    if (size != 0 && g_fail_allocation_of.compare_exchange_strong(armed, 0)) throw std::bad_alloc();
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
// g++ takes these replacements' free() for a mismatch with the new-expressions it sees inlined.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}

namespace {

namespace http = jitgate::server::http;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// The PKI of the run

fs::path g_pki;

std::string pki(const std::string& name) {
    return (g_pki / name).string();
}

// Runs a shell command; its output goes to a log whose text is returned on failure.
::testing::AssertionResult shell(const std::string& command) {
    const std::string log = (g_pki.empty() ? fs::temp_directory_path() : g_pki).string() + "/shell.log";
    const int rc = std::system(("(" + command + ") >'" + log + "' 2>&1").c_str());
    if (rc == 0) return ::testing::AssertionSuccess();
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    return ::testing::AssertionFailure() << command << " failed (" << rc << "): " << ss.str();
}

class HttpEnvironment : public ::testing::Environment {
public:
    void SetUp() override {
        char tmpl[] = "/tmp/jitgate-http-test.XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        g_pki = tmpl;
        ASSERT_TRUE(shell("bash '" JITGATE_SOURCE_DIR "/tests/support/make_pki.sh' '" + g_pki.string() + "'"));
        // A client certificate with DNS names, and one whose CN is not ASCII (left out).
        const std::string d = "'" + g_pki.string() + "'";
        ASSERT_TRUE(shell("cd " + d +
                          " && umask 077 && "
                          "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out san.key && "
                          "openssl req -new -key san.key -subj /CN=sanhost -out san.csr && "
                          "printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
                          "extendedKeyUsage=clientAuth\\nsubjectAltName=DNS:sanhost.example,IP:10.0.0.1,"
                          "DNS:alias.example\\n' > client.ext && "
                          "openssl x509 -req -in san.csr -CA ca.pem -CAkey ca.key -set_serial 0x5a1 -days 30 "
                          "-extfile client.ext -out san.pem && "
                          "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out utf8.key && "
                          "openssl req -new -utf8 -key utf8.key -subj '/CN=h\xc3\xb4st' -out utf8.csr && "
                          "printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
                          "extendedKeyUsage=clientAuth\\nsubjectAltName=DNS:good.example\\n' > utf8.ext && "
                          "openssl x509 -req -in utf8.csr -CA ca.pem -CAkey ca.key -set_serial 0x5a2 -days 30 "
                          "-extfile utf8.ext -out utf8.pem"));
        // Host certificates fleet-1 .. fleet-8 (CN only): a fleet shipping audit batches at once.
        ASSERT_TRUE(shell("cd " + d +
                          " && umask 077 && printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,"
                          "digitalSignature\\nextendedKeyUsage=clientAuth\\n' > fleet.ext && "
                          "for i in 1 2 3 4 5 6 7 8; do "
                          "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out fleet-$i.key && "
                          "openssl req -new -key fleet-$i.key -subj /CN=fleet-$i -out fleet-$i.csr && "
                          "openssl x509 -req -in fleet-$i.csr -CA ca.pem -CAkey ca.key -set_serial 0x6b$i -days 30 "
                          "-extfile fleet.ext -out fleet-$i.pem || exit 1; done"));
        ASSERT_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
        // 1,000 connections on each side of the loopback need more than the usual 1,024 fds.
        rlimit rl{};
        ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
        rl.rlim_cur = rl.rlim_max;
        ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &rl), 0);
        ASSERT_GE(rl.rlim_cur, 2200u) << "the 1,000-connection test needs more file descriptors";
    }
    void TearDown() override {
        curl_global_cleanup();
        std::error_code ec;
        if (!g_pki.empty()) fs::remove_all(g_pki, ec);
    }
};

const auto* const g_env = ::testing::AddGlobalTestEnvironment(new HttpEnvironment);

http::TlsSettings host_tls() {
    return {pki("server.pem"), pki("server.key"), pki("ca.pem"), ""};
}
http::TlsSettings browser_tls() {
    return {pki("server.pem"), pki("server.key"), "", ""};
}

// ---------------------------------------------------------------------------------------------
// A server on a loop thread

// Waits (up to a generous deadline, never a timing assertion) until `done` holds.
bool eventually(const std::function<bool()>& done, std::chrono::seconds limit = 60s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

class Server {
public:
    Server(const http::TlsSettings& tls, const http::Limits& limits, http::Handler handler)
        : m_listener(std::make_unique<http::Listener>(loop, "127.0.0.1", 0, tls, limits, std::move(handler))) {
        m_port = m_listener->port();
        m_thread = std::thread([this] { loop.run(); });
    }
    ~Server() { stop(); }
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Stops the loop and frees the listener (and so every connection) off the loop thread.
    void stop() {
        if (m_thread.joinable()) {
            loop.stop();
            m_thread.join();
        }
        m_listener.reset();
    }
    // Runs `work` on the loop thread and waits for it.
    void on_loop(std::function<void()> work) {
        std::promise<void> done;
        loop.post([&] {
            work();
            done.set_value();
        });
        done.get_future().wait();
    }
    std::uint16_t port() const { return m_port; }
    std::string url(const std::string& path) const { return "https://127.0.0.1:" + std::to_string(port()) + path; }

    http::EventLoop loop;

private:
    std::unique_ptr<http::Listener> m_listener;
    std::uint16_t m_port = 0;
    std::thread m_thread;
};

// ---------------------------------------------------------------------------------------------
// libcurl client

struct Fetched {
    CURLcode code = CURLE_OK;
    long status = 0;
    std::string body;
    std::vector<std::string> headers; // "name: value" lines as received
    std::string error;

    bool has_header(const std::string& line) const {
        for (const auto& h : headers)
            if (h == line) return true;
        return false;
    }
};

struct FetchOptions {
    std::string method = "GET";
    std::string body;
    std::string cert = "client.pem"; // "" for none
    std::string key = "client.key";
    std::vector<std::string> headers;
    bool path_as_is = false;
};

std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
}

std::size_t collect_header(char* data, std::size_t size, std::size_t n, void* out) {
    std::string line(data, size * n);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (!line.empty()) static_cast<std::vector<std::string>*>(out)->push_back(line);
    return size * n;
}

// Sets up `h` for one transfer to the test server, writing into `out`.
curl_slist* prepare(CURL* h, const std::string& url, const FetchOptions& o, Fetched& out, char* errbuf) {
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CAINFO, pki("ca.pem").c_str());
    if (!o.cert.empty()) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, pki(o.cert).c_str());
        curl_easy_setopt(h, CURLOPT_SSLKEY, pki(o.key).c_str());
    }
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out.body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &collect_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &out.headers);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (o.path_as_is) curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    if (o.method == "POST") {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, o.body.data());
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(o.body.size()));
    } else if (o.method == "HEAD") {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (o.method != "GET") {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, o.method.c_str());
    }
    curl_slist* list = nullptr;
    for (const auto& hdr : o.headers) list = curl_slist_append(list, hdr.c_str());
    if (list != nullptr) curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    return list;
}

Fetched fetch(const std::string& url, const FetchOptions& o = {}) {
    Fetched out;
    CURL* h = curl_easy_init();
    char errbuf[CURL_ERROR_SIZE] = {};
    curl_slist* list = prepare(h, url, o, out, errbuf);
    out.code = curl_easy_perform(h);
    out.error = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(out.code);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out.status);
    curl_slist_free_all(list);
    curl_easy_cleanup(h);
    return out;
}

// ---------------------------------------------------------------------------------------------
// Raw OpenSSL client, for tests that must close the socket themselves

class TlsClient {
public:
    // Connects and completes the TLS handshake; ok() says whether it worked.
    // `from`: the local address to connect from (any 127.0.0.0/8 address works on Linux).
    TlsClient(std::uint16_t port, const std::string& cert, const std::string& key, const std::string& from = "") {
        m_ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_load_verify_locations(m_ctx, pki("ca.pem").c_str(), nullptr);
        SSL_CTX_set_verify(m_ctx, SSL_VERIFY_PEER, nullptr);
        if (!cert.empty()) {
            SSL_CTX_use_certificate_chain_file(m_ctx, pki(cert).c_str());
            SSL_CTX_use_PrivateKey_file(m_ctx, pki(key).c_str(), SSL_FILETYPE_PEM);
        }
        m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(port);
        if (!from.empty()) {
            sockaddr_in local{};
            local.sin_family = AF_INET;
            if (::inet_pton(AF_INET, from.c_str(), &local.sin_addr) != 1 ||
                ::bind(m_fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0)
                return;
        }
        if (::connect(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return;
        m_ssl = SSL_new(m_ctx);
        SSL_set_fd(m_ssl, m_fd);
        m_ok = SSL_connect(m_ssl) == 1;
        ERR_clear_error();
    }
    ~TlsClient() {
        if (m_ssl != nullptr) SSL_free(m_ssl);
        if (m_fd >= 0) ::close(m_fd);
        SSL_CTX_free(m_ctx);
    }
    TlsClient(const TlsClient&) = delete;
    TlsClient& operator=(const TlsClient&) = delete;

    bool ok() const { return m_ok; }
    bool write(const std::string& data) {
        return m_ok && SSL_write(m_ssl, data.data(), static_cast<int>(data.size())) == static_cast<int>(data.size());
    }
    // Reads until `marker` has been seen `count` times, or the connection ends.
    std::string read_until(const std::string& marker, int count = 1) {
        std::string got;
        char buf[4096];
        for (;;) {
            int seen = 0;
            for (std::size_t p = got.find(marker); p != std::string::npos; p = got.find(marker, p + 1)) ++seen;
            if (seen >= count) return got;
            const int n = SSL_read(m_ssl, buf, sizeof(buf));
            if (n <= 0) return got;
            got.append(buf, static_cast<std::size_t>(n));
        }
    }
    // A read that tells whether the server ended the connection (handshake refused late).
    bool server_closed() {
        char c;
        return SSL_read(m_ssl, &c, 1) <= 0;
    }
    // Goes away: with close_notify (graceful) or by closing the socket (abrupt).
    void close(bool graceful) {
        if (graceful && m_ok) SSL_shutdown(m_ssl);
        ::close(m_fd);
        m_fd = -1;
    }

private:
    SSL_CTX* m_ctx = nullptr;
    SSL* m_ssl = nullptr;
    int m_fd = -1;
    bool m_ok = false;
};

std::string get_request(const std::string& path) {
    return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
}

// ---------------------------------------------------------------------------------------------
// Handlers

// Answers with what it saw: method, path, query, a header, the body, the peer, the names.
void echo(http::Request&& req, http::Reply&& reply) {
    std::string out = req.method + " " + req.path + "\n";
    for (const auto& [n, v] : req.query) out += "q " + n + "=" + v + "\n";
    if (const auto* h = req.header("x-test")) out += "h " + *h + "\n";
    out += "body " + req.body + "\n";
    out += "peer " + req.peer_address + "\n";
    for (const auto& n : req.client.names) out += "name " + n + "\n";
    out += "fingerprint " + req.client.fingerprint + "\n";
    out += "acts-for-testhost " + std::string(req.client.may_act_for("testhost") ? "yes" : "no") + "\n";
    auto r = http::text_response(200, "text/plain; charset=utf-8", out);
    r.headers.emplace_back("X-Handler", "echo");
    reply.send(std::move(r));
}

// Replies parked by a handler, shared with the test thread.
struct Parked {
    std::mutex mutex;
    std::vector<std::shared_ptr<http::Reply>> replies;
    std::atomic<int> count{0};
    std::atomic<int> gone_calls{0};

    http::Handler handler() {
        return [this](http::Request&&, http::Reply&& reply) {
            auto r = std::make_shared<http::Reply>(std::move(reply));
            r->on_gone([this] { ++gone_calls; });
            std::lock_guard<std::mutex> lock(mutex);
            replies.push_back(std::move(r));
            ++count;
        };
    }
};

std::string sha256_fingerprint_of(const std::string& pem) {
    const std::string out = (g_pki / "fingerprint.txt").string();
    EXPECT_TRUE(shell("openssl x509 -in '" + pki(pem) + "' -noout -fingerprint -sha256 > '" + out + "'"));
    std::ifstream in(out);
    std::string line;
    std::getline(in, line);
    std::string hex;
    for (auto c : line.substr(line.find('=') + 1))
        if (c != ':') hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return hex;
}

// =============================================================================================
// EventLoop

TEST(ServerHttpLoop, PostFromAnotherThreadRunsOnTheLoopThread) {
    http::EventLoop loop;
    std::thread::id loop_id;
    std::atomic<bool> ran{false};
    std::thread runner([&] {
        loop_id = std::this_thread::get_id();
        loop.run();
    });
    std::thread::id work_id;
    std::thread poster([&] {
        loop.post([&] { throw std::runtime_error("a bad callback"); }); // logged, loop goes on
        loop.post([&] {
            work_id = std::this_thread::get_id();
            ran = true;
            loop.stop();
        });
    });
    poster.join();
    runner.join();
    EXPECT_TRUE(ran);
    EXPECT_EQ(work_id, loop_id);
}

TEST(ServerHttpLoop, StopBeforeRunIsNotLost) {
    http::EventLoop loop;
    loop.stop();
    loop.run(); // returns: the test would hang otherwise
    SUCCEED();
}

TEST(ServerHttpLoop, ACancelledOrDestroyedTimerNeverFires) {
    http::EventLoop loop;
    std::vector<std::string> fired;
    auto cancelled = loop.after(1ms, [&] { fired.push_back("cancelled"); });
    auto destroyed = std::make_unique<http::Timer>(loop.after(1ms, [&] { fired.push_back("destroyed"); }));
    auto kept = loop.after(5ms, [&] { fired.push_back("kept"); });
    auto last = loop.after(50ms, [&] {
        fired.push_back("last");
        loop.stop();
    });
    EXPECT_TRUE(cancelled.armed());
    cancelled.cancel();
    destroyed.reset();
    EXPECT_FALSE(cancelled.armed());
    loop.run();
    EXPECT_EQ(fired, (std::vector<std::string>{"kept", "last"}));
    EXPECT_FALSE(kept.armed());
}

TEST(ServerHttpLoop, ATimerMayOutliveItsLoop) {
    http::Timer timer;
    {
        http::EventLoop loop;
        timer = loop.after(1h, [] {});
        EXPECT_TRUE(timer.armed());
    }
    EXPECT_FALSE(timer.armed());
    timer.cancel(); // no use of the freed loop (AddressSanitizer run)
}

TEST(ServerHttpLoop, WatchReadableCallsUntilTheHandleIsDropped) {
    http::EventLoop loop;
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    int calls = 0;
    std::shared_ptr<void> watch;
    std::optional<http::Timer> stopper;
    watch = loop.watch_readable(fds[0], [&] {
        char c;
        ASSERT_EQ(::read(fds[0], &c, 1), 1);
        if (++calls == 2) {
            watch.reset(); // dropped from its own callback
            stopper = loop.after(20ms, [&] { loop.stop(); });
            ASSERT_EQ(::write(fds[1], "z", 1), 1); // not seen: the watch is gone
        }
    });
    ASSERT_EQ(::write(fds[1], "xy", 2), 2);
    loop.run();
    EXPECT_EQ(calls, 2);
    ::close(fds[0]);
    ::close(fds[1]);
}

// =============================================================================================
// Decoders

TEST(ServerHttpDecode, PathsAreDecodedStrictly) {
    using http::detail::decode_path;
    EXPECT_EQ(decode_path("/v1/requests/R-7F3K"), "/v1/requests/R-7F3K");
    EXPECT_EQ(decode_path("/a%20b/%41+"), "/a b/A+");
    for (const char* bad : {"", "v1", "/a/../b", "/..", "/a%2e%2e/b", "/a%2E%2E", "/a%zz", "/a%4", "/a%", "/a%00b",
                            "/a%0ab", "/a%3Fb", "/a%7f"})
        EXPECT_FALSE(decode_path(bad).has_value()) << bad;
}

TEST(ServerHttpDecode, QueriesAreDecodedInOrder) {
    using http::detail::decode_query;
    const auto q = decode_query("wait=25&a=x+y%21&&flag&wait=3&e=");
    ASSERT_TRUE(q.has_value());
    EXPECT_EQ(*q, (http::Fields{{"wait", "25"}, {"a", "x y!"}, {"flag", ""}, {"wait", "3"}, {"e", ""}}));
    EXPECT_TRUE(decode_query("")->empty());
    EXPECT_FALSE(decode_query("a=%zz").has_value());
    EXPECT_FALSE(decode_query("a=%00").has_value());
    EXPECT_FALSE(decode_query("a%=1").has_value());
}

TEST(ServerHttpDecode, RequestAndIdentityHelpers) {
    http::Request r;
    r.headers = {{"x-a", "1"}, {"x-a", "2"}};
    r.query = {{"wait", "25"}, {"wait", "3"}};
    ASSERT_NE(r.header("x-a"), nullptr);
    EXPECT_EQ(*r.header("x-a"), "1");
    EXPECT_EQ(r.header("x-b"), nullptr);
    EXPECT_EQ(r.query_value("wait"), "25");
    EXPECT_FALSE(r.query_value("nope").has_value());
    http::ClientIdentity id;
    id.names = {"host1", "host1.example"};
    EXPECT_TRUE(id.may_act_for("host1.example"));
    EXPECT_FALSE(id.may_act_for("HOST1"));
    EXPECT_FALSE(id.may_act_for("host1."));
    EXPECT_FALSE(id.may_act_for(""));
    EXPECT_FALSE(http::ClientIdentity{}.may_act_for(""));
    const auto j = http::json_response(201, "{}");
    EXPECT_EQ(j.status, 201);
    EXPECT_EQ(j.headers, (http::Fields{{"Content-Type", "application/json"}}));
}

// =============================================================================================
// Listener set-up errors

TEST(ServerHttpListener, BadFilesAreRefusedNamingTheFile) {
    http::EventLoop loop;
    auto expect_bad = [&](const http::TlsSettings& tls, const std::string& file) {
        try {
            http::Listener l(loop, "127.0.0.1", 0, tls, {}, echo);
            ADD_FAILURE() << "accepted " << file;
        } catch (const jitgate::Error& e) {
            EXPECT_EQ(e.code(), jitgate::ErrorCode::bad_input) << e.what();
            EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
        }
    };
    expect_bad({pki("missing.pem"), pki("server.key"), "", ""}, pki("missing.pem"));
    expect_bad({pki("server.pem"), pki("other-server.key"), "", ""}, pki("other-server.key")); // not its key
    expect_bad({pki("server.pem"), pki("server.key"), pki("missing-ca.pem"), ""}, pki("missing-ca.pem"));
    const std::string readable = pki("readable.key");
    fs::copy_file(pki("server.key"), readable, fs::copy_options::overwrite_existing);
    ASSERT_EQ(::chmod(readable.c_str(), 0640), 0);
    expect_bad({pki("server.pem"), readable, "", ""}, readable); // group-readable key
    ASSERT_EQ(::chmod(readable.c_str(), 0602), 0);
    expect_bad({pki("server.pem"), readable, "", ""}, readable); // world-writable key
    try {
        http::Listener l(loop, "not-an-address", 0, browser_tls(), {}, echo);
        ADD_FAILURE() << "accepted a host name as listen address";
    } catch (const jitgate::Error& e) {
        EXPECT_EQ(e.code(), jitgate::ErrorCode::bad_input);
    }
}

TEST(ServerHttpListener, APortInUseIsAnError) {
    http::EventLoop loop;
    http::Listener first(loop, "127.0.0.1", 0, browser_tls(), {}, echo);
    ASSERT_NE(first.port(), 0);
    try {
        http::Listener second(loop, "127.0.0.1", first.port(), browser_tls(), {}, echo);
        ADD_FAILURE() << "bound a port twice";
    } catch (const jitgate::Error& e) {
        EXPECT_EQ(e.code(), jitgate::ErrorCode::internal) << e.what();
        EXPECT_NE(std::string(e.what()).find(std::to_string(first.port())), std::string::npos) << e.what();
    }
}

// =============================================================================================
// Requests over mutual TLS

TEST(ServerHttpListener, GetAndPostRoundTripWithQueryHeadersBodyAndIdentity) {
    Server server(host_tls(), {}, echo);
    const auto fp = sha256_fingerprint_of("client.pem");
    ASSERT_EQ(fp.size(), 64u);

    FetchOptions get;
    get.headers = {"X-Test: hello"};
    const auto g = fetch(server.url("/v1/requests/R-1?wait=25&a=x+y%21&wait=3"), get);
    ASSERT_EQ(g.code, CURLE_OK) << g.error;
    EXPECT_EQ(g.status, 200);
    EXPECT_EQ(g.body, "GET /v1/requests/R-1\nq wait=25\nq a=x y!\nq wait=3\nh hello\nbody \npeer 127.0.0.1\n"
                      "name testhost\nfingerprint " +
                          fp + "\nacts-for-testhost yes\n");
    EXPECT_TRUE(g.has_header("Cache-Control: no-store"));
    EXPECT_TRUE(g.has_header("X-Content-Type-Options: nosniff"));
    EXPECT_TRUE(g.has_header("Content-Length: " + std::to_string(g.body.size())));
    EXPECT_TRUE(g.has_header("Content-Type: text/plain; charset=utf-8"));
    EXPECT_TRUE(g.has_header("X-Handler: echo"));

    FetchOptions post;
    post.method = "POST";
    post.body = std::string("{\"id\":\"R-2\"}\0tail", 17);
    post.headers = {"Content-Type: application/json"};
    const auto p = fetch(server.url("/v1/requests"), post);
    ASSERT_EQ(p.code, CURLE_OK) << p.error;
    EXPECT_EQ(p.status, 200);
    EXPECT_NE(p.body.find("POST /v1/requests\n"), std::string::npos) << p.body;
    EXPECT_NE(p.body.find("body " + post.body + "\n"), std::string::npos) << p.body;

    FetchOptions head;
    head.method = "HEAD";
    const auto h = fetch(server.url("/v1/x"), head);
    ASSERT_EQ(h.code, CURLE_OK) << h.error;
    EXPECT_EQ(h.status, 200);
    EXPECT_TRUE(h.body.empty());
    EXPECT_TRUE(h.has_header("Cache-Control: no-store"));
}

TEST(ServerHttpListener, TheHandlerSeesTheCertificatesNames) {
    Server server(host_tls(), {}, echo);
    FetchOptions o;
    o.cert = "san.pem";
    o.key = "san.key";
    const auto r = fetch(server.url("/"), o);
    ASSERT_EQ(r.code, CURLE_OK) << r.error;
    EXPECT_NE(r.body.find("name sanhost\nname sanhost.example\nname alias.example\nfingerprint " +
                          sha256_fingerprint_of("san.pem") + "\nacts-for-testhost no\n"),
              std::string::npos)
        << r.body;
    // A CN that is not printable ASCII is left out; the DNS name stays.
    o.cert = "utf8.pem";
    o.key = "utf8.key";
    const auto u = fetch(server.url("/"), o);
    ASSERT_EQ(u.code, CURLE_OK) << u.error;
    EXPECT_NE(u.body.find("peer 127.0.0.1\nname good.example\nfingerprint "), std::string::npos) << u.body;
}

TEST(ServerHttpListener, NoClientCertificateFailsTheHandshake) {
    std::atomic<int> calls{0};
    Server server(host_tls(), {}, [&](http::Request&& r, http::Reply&& rep) {
        ++calls;
        echo(std::move(r), std::move(rep));
    });
    FetchOptions o;
    o.cert = "";
    const auto r = fetch(server.url("/"), o);
    EXPECT_NE(r.code, CURLE_OK);
    EXPECT_EQ(r.status, 0) << r.body;
    // The same with raw OpenSSL: under TLS 1.3 the refusal arrives after the client's handshake.
    TlsClient raw(server.port(), "", "");
    if (raw.ok()) {
        raw.write(get_request("/"));
        EXPECT_EQ(raw.read_until("\r\n\r\n"), "");
    }
    EXPECT_EQ(calls, 0);
}

TEST(ServerHttpListener, ACertificateFromAnotherCaFailsTheHandshake) {
    std::atomic<int> calls{0};
    Server server(host_tls(), {}, [&](http::Request&& r, http::Reply&& rep) {
        ++calls;
        echo(std::move(r), std::move(rep));
    });
    FetchOptions o;
    o.cert = "other-client.pem";
    o.key = "other-client.key";
    const auto r = fetch(server.url("/"), o);
    EXPECT_NE(r.code, CURLE_OK);
    EXPECT_EQ(r.status, 0) << r.body;
    // A server certificate of our own CA is not a client certificate (no clientAuth).
    o.cert = "server.pem";
    o.key = "server.key";
    const auto s = fetch(server.url("/"), o);
    EXPECT_NE(s.code, CURLE_OK);
    EXPECT_EQ(calls, 0);
}

TEST(ServerHttpListener, ABrowserListenerWorksWithoutACertificate) {
    Server server(browser_tls(), {}, echo);
    FetchOptions o;
    o.cert = "";
    const auto r = fetch(server.url("/login?next=%2Fpending"), o);
    ASSERT_EQ(r.code, CURLE_OK) << r.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "GET /login\nq next=/pending\nbody \npeer 127.0.0.1\nfingerprint \nacts-for-testhost no\n");
}

TEST(ServerHttpListener, PlainHttpOnATlsPortIsNeverServed) {
    std::atomic<int> calls{0};
    Server server(browser_tls(), {}, [&](http::Request&& r, http::Reply&& rep) {
        ++calls;
        echo(std::move(r), std::move(rep));
    });
    FetchOptions o;
    o.cert = "";
    const auto r = fetch("http://127.0.0.1:" + std::to_string(server.port()) + "/", o);
    EXPECT_NE(r.status, 200) << r.body;
    EXPECT_EQ(calls, 0);
}

// =============================================================================================
// Limits and refusals by the layer

TEST(ServerHttpListener, ABodyOverTheLimitGets413) {
    std::atomic<int> calls{0};
    http::Limits limits;
    limits.max_body = 1024;
    Server server(host_tls(), limits, [&](http::Request&& r, http::Reply&& rep) {
        ++calls;
        echo(std::move(r), std::move(rep));
    });
    FetchOptions o;
    o.method = "POST";
    o.body = std::string(1024, 'a');
    const auto ok = fetch(server.url("/upload"), o);
    ASSERT_EQ(ok.code, CURLE_OK) << ok.error;
    EXPECT_EQ(ok.status, 200);
    o.body = std::string(4096, 'a');
    o.headers = {"Expect:"}; // the body is on its way when the server decides
    const auto big = fetch(server.url("/upload"), o);
    ASSERT_EQ(big.code, CURLE_OK) << big.error;
    EXPECT_EQ(big.status, 413);
    o.headers = {"Expect: 100-continue"};
    const auto expect = fetch(server.url("/upload"), o);
    ASSERT_EQ(expect.code, CURLE_OK) << expect.error;
    EXPECT_EQ(expect.status, 413);
    EXPECT_EQ(calls, 1);
}

// An audit batch is large; only its path takes more than max_body (every other path of the
// listener keeps the small limit).
TEST(ServerHttpListener, OnlyALargeBodyPathTakesBodiesOverMaxBody) {
    std::atomic<int> calls{0};
    http::Limits limits;
    limits.max_body = 1024;
    limits.large_body_paths = {"/v1/audit/events"};
    limits.max_large_body = 64 * 1024;
    Server server(host_tls(), limits, [&](http::Request&& r, http::Reply&& rep) {
        ++calls;
        echo(std::move(r), std::move(rep));
    });
    FetchOptions o;
    o.method = "POST";
    o.headers = {"Expect:"};
    o.body = std::string(60 * 1024, 'a');
    const auto large = fetch(server.url("/v1/audit/events"), o);
    ASSERT_EQ(large.code, CURLE_OK) << large.error;
    EXPECT_EQ(large.status, 200);
    const auto other = fetch(server.url("/v1/requests"), o);
    ASSERT_EQ(other.code, CURLE_OK) << other.error;
    EXPECT_EQ(other.status, 413);
    o.body = std::string(65 * 1024, 'a');
    const auto too_large = fetch(server.url("/v1/audit/events"), o);
    ASSERT_EQ(too_large.code, CURLE_OK) << too_large.error;
    EXPECT_EQ(too_large.status, 413);
    EXPECT_EQ(calls, 1);
}

TEST(ServerHttpListener, HeadersOverTheLimitAreRefused) {
    std::atomic<int> calls{0};
    http::Limits limits;
    limits.max_headers = 2048;
    Server server(host_tls(), limits, [&](http::Request&& r, http::Reply&& rep) {
        ++calls;
        echo(std::move(r), std::move(rep));
    });
    FetchOptions o;
    o.headers = {"X-Big: " + std::string(4096, 'b')};
    const auto r = fetch(server.url("/"), o);
    EXPECT_EQ(r.status, 400) << r.error; // evhttp 2.1 answers 400 (it has no 431)
    EXPECT_EQ(calls, 0);
}

TEST(ServerHttpListener, BadPathsAndQueriesGet400AndOtherMethodsAreRefused) {
    std::atomic<int> calls{0};
    Server server(host_tls(), {}, [&](http::Request&& r, http::Reply&& rep) {
        ++calls;
        echo(std::move(r), std::move(rep));
    });
    FetchOptions o;
    o.path_as_is = true;
    for (const char* path :
         {"/a/../b", "/v1/%2e%2e/x", "/a%zz", "/a%00b", "/a%0d%0aX:%20y", "/a%3Fb", "/x?a=%zz", "/x?a=%00"}) {
        const auto r = fetch(server.url(path), o);
        ASSERT_EQ(r.code, CURLE_OK) << path << ": " << r.error;
        EXPECT_EQ(r.status, 400) << path;
        EXPECT_TRUE(r.has_header("Cache-Control: no-store")) << path; // answered by the layer
        EXPECT_TRUE(r.has_header("X-Content-Type-Options: nosniff")) << path;
    }
    for (const char* method : {"PUT", "DELETE", "OPTIONS", "TRACE"}) {
        FetchOptions m;
        m.method = method;
        const auto r = fetch(server.url("/"), m);
        ASSERT_EQ(r.code, CURLE_OK) << method << ": " << r.error;
        EXPECT_GE(r.status, 400) << method;
    }
    EXPECT_EQ(calls, 0);
}

TEST(ServerHttpListener, ConnectionsBeyondTheLimitAreClosed) {
    Parked parked;
    http::Limits limits;
    limits.max_connections = 1;
    Server server(host_tls(), limits, parked.handler());
    auto first = std::make_unique<TlsClient>(server.port(), "client.pem", "client.key");
    ASSERT_TRUE(first->ok());
    ASSERT_TRUE(first->write(get_request("/park")));
    ASSERT_TRUE(eventually([&] { return parked.count == 1; }));
    {
        TlsClient second(server.port(), "client.pem", "client.key");
        EXPECT_FALSE(second.ok()) << "a second connection was accepted beyond max_connections = 1";
    }
    first->close(false);
    ASSERT_TRUE(eventually([&] { return parked.gone_calls == 1; }));
    // The slot is free again once the server has let go of the first connection.
    std::unique_ptr<TlsClient> third;
    ASSERT_TRUE(eventually([&] {
        third = std::make_unique<TlsClient>(server.port(), "client.pem", "client.key");
        return third->ok();
    }));
    ASSERT_TRUE(third->write(get_request("/y")));
    ASSERT_TRUE(eventually([&] { return parked.count == 2; }));
    server.on_loop([&] {
        std::lock_guard<std::mutex> lock(parked.mutex);
        parked.replies.clear(); // the parked /y answers 500
    });
    EXPECT_NE(third->read_until("\r\n\r\n").find("HTTP/1.1 500"), std::string::npos);
}

// The per-address limit: a second connection from 127.0.0.1 is closed at accept, another
// address is still served, and the place comes back when the first connection ends.
TEST(ServerHttpListener, ConnectionsBeyondThePerAddressLimitAreClosed) {
    Parked parked;
    http::Limits limits;
    limits.max_connections_per_address = 1;
    Server server(host_tls(), limits, parked.handler());
    auto first = std::make_unique<TlsClient>(server.port(), "client.pem", "client.key", "127.0.0.1");
    ASSERT_TRUE(first->ok());
    ASSERT_TRUE(first->write(get_request("/park")));
    ASSERT_TRUE(eventually([&] { return parked.count == 1; }));
    for (int i = 0; i < 3; ++i) {
        TlsClient again(server.port(), "client.pem", "client.key", "127.0.0.1");
        EXPECT_FALSE(again.ok()) << "a second connection from 127.0.0.1 beyond max_connections_per_address = 1";
    }
    // Another address has its own count.
    TlsClient other(server.port(), "client.pem", "client.key", "127.0.0.2");
    ASSERT_TRUE(other.ok()) << "127.0.0.2 was refused for 127.0.0.1's connections";
    ASSERT_TRUE(other.write(get_request("/other")));
    ASSERT_TRUE(eventually([&] { return parked.count == 2; }));
    first->close(false);
    ASSERT_TRUE(eventually([&] { return parked.gone_calls == 1; }));
    std::unique_ptr<TlsClient> third;
    ASSERT_TRUE(eventually([&] {
        third = std::make_unique<TlsClient>(server.port(), "client.pem", "client.key", "127.0.0.1");
        return third->ok();
    })) << "127.0.0.1's place did not come back";
    server.on_loop([&] {
        std::lock_guard<std::mutex> lock(parked.mutex);
        parked.replies.clear();
    });
}

// The per-address limit's key: IPv4 and IPv4-mapped IPv6 as the IPv4 address; IPv6 exactly on
// the hosts' listener and by its /64 on the browsers' one, where every address of one /64 is
// one client (it may connect from any of them: an exact key would not limit it at all).
sockaddr_storage socket_address(const std::string& text) {
    sockaddr_storage ss{};
    if (auto* v4 = reinterpret_cast<sockaddr_in*>(&ss); ::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        return ss;
    }
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    EXPECT_EQ(::inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr), 1) << text;
    v6->sin6_family = AF_INET6;
    return ss;
}

TEST(ServerHttpListener, PerAddressKeysGroupAnIpv6Slash64WhenAsked) {
    using http::detail::address_key;
    EXPECT_EQ(address_key(socket_address("192.0.2.7"), false), "192.0.2.7");
    EXPECT_EQ(address_key(socket_address("192.0.2.7"), true), "192.0.2.7");
    EXPECT_EQ(address_key(socket_address("::ffff:192.0.2.7"), true), "192.0.2.7");
    EXPECT_EQ(address_key(socket_address("::ffff:192.0.2.7"), false), "192.0.2.7");
    EXPECT_EQ(address_key(socket_address("2001:db8:1:2::1"), false), "2001:db8:1:2::1");
    EXPECT_NE(address_key(socket_address("2001:db8:1:2::1"), false),
              address_key(socket_address("2001:db8:1:2:dead:beef:0:2"), false));
    // One /64, one key, whatever the interface identifier.
    EXPECT_EQ(address_key(socket_address("2001:db8:1:2::1"), true), "2001:db8:1:2::/64");
    EXPECT_EQ(address_key(socket_address("2001:db8:1:2:dead:beef:0:2"), true), "2001:db8:1:2::/64");
    EXPECT_EQ(address_key(socket_address("2001:db8:1:3::1"), true), "2001:db8:1:3::/64");
    sockaddr_storage unix_socket{};
    unix_socket.ss_family = AF_UNIX;
    EXPECT_EQ(address_key(unix_socket, true), "");
}

// Over IPv6 with per_ipv6_64: a second connection from ::1 (the /64 "::/64") is closed at
// accept like one from the same IPv4 address.
TEST(ServerHttpListener, PerAddressLimitHoldsOverIpv6ByTheSlash64) {
    http::EventLoop loop;
    Parked parked;
    http::Limits limits;
    limits.max_connections_per_address = 1;
    limits.per_ipv6_64 = true;
    http::Listener listener(loop, "::1", 0, browser_tls(), limits, parked.handler());
    std::thread runner([&] { loop.run(); });
    const auto connect6 = [&]() {
        const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in6 addr{};
        addr.sin6_family = AF_INET6;
        addr.sin6_addr = in6addr_loopback;
        addr.sin6_port = htons(listener.port());
        EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
        return fd;
    };
    const int first = connect6();
    // The first stays open (its handshake is simply not started); the second sees EOF.
    const int second = connect6();
    timeval tv{5, 0};
    ::setsockopt(second, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char byte = 0;
    EXPECT_EQ(::recv(second, &byte, 1, 0), 0) << "a second connection from ::1's /64 was not closed";
    timeval short_tv{0, 300000};
    ::setsockopt(first, SOL_SOCKET, SO_RCVTIMEO, &short_tv, sizeof short_tv);
    errno = 0;
    EXPECT_EQ(::recv(first, &byte, 1, 0), -1) << "the first connection was closed too";
    EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << std::strerror(errno);
    ::close(first);
    ::close(second);
    loop.stop();
    runner.join();
}

http::TlsSettings host_tls_with_crl(const std::string& crl) {
    http::TlsSettings tls = host_tls();
    tls.client_crl_file = crl;
    return tls;
}

// A CRL checked at start-up that goes stale while the server runs (nextUpdate passes) fails
// every later handshake (fail closed: no revocation data is not "not revoked"), until a new
// CRL is published and the server restarted.
TEST(ServerHttpListener, ACrlThatExpiresWhileTheServerRunsFailsEveryHandshake) {
    const std::string cnf = pki("short-crl.cnf");
    {
        std::ofstream out(cnf);
        out << "[ca]\ndefault_ca = c\n[c]\ndatabase = " << pki("ca.db/index.txt")
            << "\ncrlnumber = " << pki("ca.db/crlnumber") << "\ncertificate = " << pki("ca.pem")
            << "\nprivate_key = " << pki("ca.key") << "\ndefault_md = sha256\n";
    }
    ASSERT_TRUE(shell("openssl ca -config '" + cnf + "' -gencrl -crlsec 3 -out '" + pki("short.crl") + "'"));
    Server server(host_tls_with_crl(pki("short.crl")), {}, echo);
    const auto fresh = fetch(server.url("/"));
    ASSERT_EQ(fresh.code, CURLE_OK) << fresh.error;
    EXPECT_EQ(fresh.status, 200);
    std::this_thread::sleep_for(4s);
    const auto stale = fetch(server.url("/"));
    EXPECT_NE(stale.code, CURLE_OK) << "a handshake passed with an expired CRL (status " << stale.status << ")";
    EXPECT_EQ(stale.status, 0) << stale.body;
}

// hosts.client_crl: the CRL made by `openssl ca` (make_pki.sh) revokes revoked-client.pem; a
// real handshake with it is refused, one with client.pem is served. Without the CRL the same
// revoked certificate is accepted (so the refusal is the CRL's doing).
TEST(ServerHttpListener, ARevokedClientCertificateFailsTheHandshake) {
    std::atomic<int> calls{0};
    const auto counting = [&](http::Request&& r, http::Reply&& rep) {
        ++calls;
        echo(std::move(r), std::move(rep));
    };
    {
        Server without(host_tls(), {}, counting);
        FetchOptions o;
        o.cert = "revoked-client.pem";
        o.key = "revoked-client.key";
        const auto r = fetch(without.url("/"), o);
        ASSERT_EQ(r.code, CURLE_OK) << r.error;
        EXPECT_EQ(r.status, 200);
    }
    calls = 0;
    Server server(host_tls_with_crl(pki("ca.crl")), {}, counting);
    const auto good = fetch(server.url("/"));
    ASSERT_EQ(good.code, CURLE_OK) << good.error;
    EXPECT_EQ(good.status, 200);
    EXPECT_NE(good.body.find("name testhost"), std::string::npos) << good.body;
    EXPECT_EQ(calls, 1);

    FetchOptions o;
    o.cert = "revoked-client.pem";
    o.key = "revoked-client.key";
    const auto r = fetch(server.url("/"), o);
    EXPECT_NE(r.code, CURLE_OK);
    EXPECT_EQ(r.status, 0) << r.body;
    // Raw OpenSSL: under TLS 1.3 the refusal arrives after the client's side of the handshake.
    TlsClient raw(server.port(), "revoked-client.pem", "revoked-client.key");
    if (raw.ok()) {
        raw.write(get_request("/"));
        EXPECT_EQ(raw.read_until("\r\n\r\n"), "");
    }
    EXPECT_EQ(calls, 1) << "a revoked certificate reached the handler";
}

// A missing, unparsable, foreign or expired CRL file stops the listener from starting (and
// check-config, which calls check_client_crl), naming the file and what is wrong.
TEST(ServerHttpListener, BadCrlFilesAreRefusedAtStart) {
    EXPECT_EQ(http::check_client_crl(host_tls_with_crl(pki("ca.crl"))), 1u);
    ASSERT_TRUE(shell("cd '" + g_pki.string() +
                      "' && printf 'not a CRL\\n' > garbage.crl && "
                      "head -c 120 ca.crl > truncated.crl && "
                      "printf '[ca]\\ndefault_ca=c\\n[c]\\ndatabase=ca.db/index.txt\\ncrlnumber=ca.db/crlnumber\\n"
                      "certificate=ca.pem\\nprivate_key=ca.key\\ndefault_md=sha256\\n' > crl.cnf && "
                      "openssl ca -config crl.cnf -gencrl -crlsec 1 -out expired.crl"));
    std::this_thread::sleep_for(2100ms); // expired.crl's nextUpdate passes
    struct Case {
        http::TlsSettings tls;
        std::string says;
    };
    http::TlsSettings foreign = host_tls_with_crl(pki("ca.crl"));
    foreign.client_ca_file = pki("other-ca.pem");
    const std::vector<Case> cases = {
        {host_tls_with_crl(pki("missing.crl")), "cannot read the CRL file"},
        {host_tls_with_crl(pki("garbage.crl")), "no CRL in the file"},
        {host_tls_with_crl(pki("truncated.crl")), "cannot parse the CRL file"},
        {host_tls_with_crl(pki("expired.crl")), "has expired"},
        {foreign, "is not from a CA of the client CA file"},
    };
    http::EventLoop loop;
    for (const Case& c : cases) {
        for (const bool listener : {false, true}) {
            try {
                if (listener)
                    http::Listener l(loop, "127.0.0.1", 0, c.tls, {}, echo);
                else
                    http::check_client_crl(c.tls);
                ADD_FAILURE() << c.tls.client_crl_file << " was accepted";
            } catch (const jitgate::Error& e) {
                const std::string what = e.what();
                EXPECT_NE(what.find(c.tls.client_crl_file), std::string::npos) << what;
                EXPECT_NE(what.find(c.says), std::string::npos) << what;
            }
        }
    }
}

// =============================================================================================
// Replies

TEST(ServerHttpReply, ADeferredReplyIsSentLaterFromATimer) {
    std::vector<http::Timer> timers; // loop thread only
    Server* srv = nullptr;
    Server server(host_tls(), {}, [&](http::Request&& req, http::Reply&& reply) {
        auto r = std::make_shared<http::Reply>(std::move(reply));
        const std::string path = req.path;
        timers.push_back(srv->loop.after(30ms, [r, path] {
            EXPECT_FALSE(r->answered());
            r->send(http::json_response(200, "{\"later\":\"" + path + "\"}"));
            EXPECT_TRUE(r->answered());
            EXPECT_FALSE(r->gone());
        }));
    });
    srv = &server;
    const auto r = fetch(server.url("/v1/requests/R-9"));
    ASSERT_EQ(r.code, CURLE_OK) << r.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "{\"later\":\"/v1/requests/R-9\"}");
    EXPECT_TRUE(r.has_header("Content-Type: application/json"));
    EXPECT_TRUE(r.has_header("Cache-Control: no-store"));
    server.stop();
}

TEST(ServerHttpReply, AnUnansweredOrThrowingHandlerGets500) {
    Server server(host_tls(), {}, [](http::Request&& req, http::Reply&& reply) {
        if (req.path == "/throw") throw std::runtime_error("handler bug");
        if (req.path == "/bad-header") {
            http::Response r = http::text_response(200, "text/plain", "x");
            r.headers.emplace_back("X-Evil", "a\r\nSet-Cookie: x=y");
            reply.send(std::move(r));
            return;
        }
        if (req.path == "/bad-status") return reply.send(http::text_response(1000, "text/plain", "x"));
        if (req.path == "/twice") {
            reply.send(http::text_response(201, "text/plain", "first"));
            reply.send(http::text_response(202, "text/plain", "second"));
            return;
        }
        // "/drop": the Reply is neither sent nor kept
    });
    for (const char* path : {"/drop", "/throw", "/bad-header", "/bad-status"}) {
        const auto r = fetch(server.url(path));
        ASSERT_EQ(r.code, CURLE_OK) << path << ": " << r.error;
        EXPECT_EQ(r.status, 500) << path;
        EXPECT_EQ(r.body, "internal error\n") << path;
        EXPECT_FALSE(r.has_header("Set-Cookie: x=y")) << path;
        EXPECT_TRUE(r.has_header("Cache-Control: no-store")) << path;
    }
    const auto t = fetch(server.url("/twice"));
    EXPECT_EQ(t.status, 201);
    EXPECT_EQ(t.body, "first");
}

// The classic evhttp use-after-free: the client goes away while its request is parked; the
// reply is sent afterwards. Run under AddressSanitizer (build-asan) as well.
TEST(ServerHttpReply, AClientThatGoesAwayIsSeenAndALateReplyIsHarmless) {
    for (const bool graceful : {false, true}) {
        Parked parked;
        Server server(host_tls(), {}, parked.handler());
        TlsClient client(server.port(), "client.pem", "client.key");
        ASSERT_TRUE(client.ok());
        ASSERT_TRUE(client.write(get_request("/v1/requests/R-1?wait=25")));
        ASSERT_TRUE(eventually([&] { return parked.count == 1; }));
        client.close(graceful);
        ASSERT_TRUE(eventually([&] { return parked.gone_calls == 1; })) << "graceful=" << graceful;
        server.on_loop([&] {
            std::lock_guard<std::mutex> lock(parked.mutex);
            auto& reply = *parked.replies.front();
            EXPECT_TRUE(reply.gone());
            EXPECT_FALSE(reply.answered());
            reply.send(http::json_response(200, "{}")); // no-op
            EXPECT_TRUE(reply.answered());
            int late = 0;
            reply.on_gone([&] { ++late; }); // answered: not called
            EXPECT_EQ(late, 0);
            parked.replies.clear();
        });
        EXPECT_EQ(parked.gone_calls, 1);
    }
}

TEST(ServerHttpReply, ARequestPipelinedBehindAParkedOneIsServedAfterIt) {
    Parked parked;
    Server server(host_tls(), {}, parked.handler());
    TlsClient client(server.port(), "client.pem", "client.key");
    ASSERT_TRUE(client.ok());
    ASSERT_TRUE(client.write(get_request("/first")));
    ASSERT_TRUE(eventually([&] { return parked.count == 1; }));
    ASSERT_TRUE(client.write(get_request("/second"))); // arrives while /first is parked
    std::this_thread::sleep_for(50ms);                 // let it reach the server (not asserted on)
    server.loop.post([&] {
        std::lock_guard<std::mutex> lock(parked.mutex);
        parked.replies[0]->send(http::text_response(200, "text/plain", "one"));
    });
    ASSERT_TRUE(eventually([&] { return parked.count == 2; }));
    server.loop.post([&] {
        std::lock_guard<std::mutex> lock(parked.mutex);
        parked.replies[1]->send(http::text_response(200, "text/plain", "two"));
    });
    const auto got = client.read_until("two");
    const auto one = got.find("\r\n\r\none");
    const auto two = got.find("\r\n\r\ntwo");
    ASSERT_NE(one, std::string::npos) << got;
    ASSERT_NE(two, std::string::npos) << got;
    EXPECT_LT(one, two);
    EXPECT_EQ(parked.gone_calls, 0);
    server.on_loop([&] {
        std::lock_guard<std::mutex> lock(parked.mutex);
        parked.replies.clear();
    });
}

TEST(ServerHttpReply, ParkedRepliesBecomeGoneWhenTheListenerGoes) {
    Parked parked;
    auto server = std::make_unique<Server>(host_tls(), http::Limits{}, parked.handler());
    TlsClient client(server->port(), "client.pem", "client.key");
    ASSERT_TRUE(client.ok());
    ASSERT_TRUE(client.write(get_request("/park")));
    ASSERT_TRUE(eventually([&] { return parked.count == 1; }));
    server->stop(); // frees the listener and its connections
    EXPECT_EQ(parked.gone_calls, 1);
    ASSERT_EQ(parked.replies.size(), 1u);
    EXPECT_TRUE(parked.replies[0]->gone());
    parked.replies[0]->send(http::json_response(200, "{}")); // no-op, no use of freed memory
    parked.replies.clear();
    server.reset();
}

// Many requests parked at once (clients in a child process, so that the resident memory read
// here is the server's), then answered by post() from this thread, not the loop thread. The
// scale of 10,000 is bench/server_bench's (docs/PERFORMANCE.md); here the point is that every
// parked reply is answered, and 300 keeps the handshakes short under the sanitizers.
TEST(ServerHttpReply, ManyParkedRequestsAnsweredByPostFromAnotherThread) {
    constexpr int k_clients = 300;
    int port_pipe[2];
    ASSERT_EQ(::pipe(port_pipe), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(port_pipe[1]);
        std::uint16_t port = 0;
        if (::read(port_pipe[0], &port, sizeof(port)) != sizeof(port)) ::_exit(3);
        CURLM* multi = curl_multi_init();
        std::vector<CURL*> easy(k_clients);
        std::vector<Fetched> out(k_clients);
        std::vector<std::array<char, CURL_ERROR_SIZE>> errors(k_clients);
        for (int i = 0; i < k_clients; ++i) {
            easy[i] = curl_easy_init();
            prepare(easy[i], "https://127.0.0.1:" + std::to_string(port) + "/park/" + std::to_string(i), {}, out[i],
                    errors[i].data());
            curl_easy_setopt(easy[i], CURLOPT_TIMEOUT, 900L);
            curl_multi_add_handle(multi, easy[i]);
        }
        int running = 1;
        while (running > 0) {
            curl_multi_perform(multi, &running);
            curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
        }
        int bad = 0;
        while (CURLMsg* m = curl_multi_info_read(multi, &running)) {
            if (m->msg != CURLMSG_DONE) continue;
            long status = 0;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            if (m->data.result != CURLE_OK || status != 200) ++bad;
        }
        for (int i = 0; i < k_clients; ++i)
            if (out[i].body != "answer " + std::to_string(i)) {
                if (++bad < 5)
                    std::fprintf(stderr, "client %d got '%s' (%s)\n", i, out[i].body.c_str(), errors[i].data());
            }
        ::_exit(bad == 0 ? 0 : 1);
    }
    ::close(port_pipe[0]);

    auto read_rss_kib = [] {
        std::ifstream in("/proc/self/status");
        std::string line;
        while (std::getline(in, line))
            if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
        return -1L;
    };
    std::vector<std::shared_ptr<http::Reply>> slots(k_clients);
    std::atomic<int> parked{0};
    std::atomic<int> gone{0};
    Server server(host_tls(), {}, [&](http::Request&& req, http::Reply&& reply) {
        const int i = std::stoi(req.path.substr(std::string("/park/").size()));
        slots.at(static_cast<std::size_t>(i)) = std::make_shared<http::Reply>(std::move(reply));
        slots[static_cast<std::size_t>(i)]->on_gone([&] { ++gone; });
        ++parked;
    });
    const long rss_before = read_rss_kib();
    const std::uint16_t port = server.port();
    ASSERT_EQ(::write(port_pipe[1], &port, sizeof(port)), static_cast<ssize_t>(sizeof(port)));
    ::close(port_pipe[1]);
    // 2,000 TLS handshakes on a loaded machine can take minutes: a bound, not a timing test.
    const bool all_parked = eventually([&] { return parked == k_clients; }, 600s);
    if (!all_parked) {
        ::kill(child, SIGKILL);
        ::waitpid(child, nullptr, 0);
    }
    const long rss_parked = read_rss_kib();
    // What the server holds, without what malloc keeps from the 1,000 handshakes at once.
    server.on_loop([] { ::malloc_trim(0); });
    ::malloc_trim(0);
    const long rss_trimmed = read_rss_kib();
    std::cout << "[ RSS      ] server process: " << rss_before << " KiB before, " << rss_parked << " KiB with "
              << parked << " parked TLS connections (" << (rss_parked - rss_before) * 1024 / std::max(1, parked.load())
              << " bytes each); " << rss_trimmed << " KiB after malloc_trim ("
              << (rss_trimmed - rss_before) * 1024 / std::max(1, parked.load()) << " bytes each)\n";
    RecordProperty("rss_kib_before", static_cast<int>(rss_before));
    RecordProperty("rss_kib_parked", static_cast<int>(rss_parked));
    RecordProperty("rss_kib_parked_trimmed", static_cast<int>(rss_trimmed));
    ASSERT_TRUE(all_parked) << parked << " parked";

    std::thread answerer([&] {
        for (int i = 0; i < k_clients; ++i)
            server.loop.post([&, i] {
                auto& r = slots[static_cast<std::size_t>(i)];
                if (r) r->send(http::text_response(200, "text/plain", "answer " + std::to_string(i)));
            });
    });
    answerer.join();
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "clients failed: status " << status;
    EXPECT_EQ(gone, 0);
    server.on_loop([&] { slots.clear(); });
}

// ---------------------------------------------------------------------------------------------
// The worker beside the loop (http/worker.hpp), and the audit store's batch checks on it

TEST(ServerHttpWorker, RunsWorkOnItsThreadAndRefusesBeyondItsQueue) {
    std::mutex m;
    std::condition_variable cv;
    bool open = false;
    std::mutex posted_mutex;
    int posted = 0;
    http::Worker worker("test", 2, [&](std::function<void()> f) {
        f();
        const std::lock_guard<std::mutex> lock(posted_mutex);
        ++posted;
    });
    std::promise<std::thread::id> ran_on;
    ASSERT_TRUE(worker.push(
        [&] {
            ran_on.set_value(std::this_thread::get_id());
            std::unique_lock<std::mutex> lock(m);
            cv.wait(lock, [&] { return open; });
        },
        [](bool ok) { EXPECT_TRUE(ok); }));
    EXPECT_NE(ran_on.get_future().get(), std::this_thread::get_id());
    EXPECT_TRUE(
        worker.push([] { throw std::runtime_error("logged; the worker goes on"); }, [](bool ok) { EXPECT_FALSE(ok); }));
    EXPECT_TRUE(worker.push([] {}, [](bool ok) { EXPECT_TRUE(ok); }));
    EXPECT_FALSE(worker.push([] {}, [](bool) { ADD_FAILURE() << "refused work has no `then`"; }))
        << "two are waiting already: the third is refused";
    {
        const std::lock_guard<std::mutex> lock(m);
        open = true;
    }
    cv.notify_all();
    ASSERT_TRUE(eventually([&] {
        const std::lock_guard<std::mutex> lock(posted_mutex);
        return posted == 3;
    })) << "every piece of work that ran, threw or not, is handed back";
    EXPECT_TRUE(worker.push([] {}, [](bool) {})) << "room again once the queue drained";
}

// Regression: work that threw (out of memory) ended on the worker's thread holding the last
// reference to its request's Reply, whose end sent a 500 through libevent beside the loop. The
// part that follows the work (and all it holds) is run and destroyed on the loop thread only,
// told that the work failed.
TEST(ServerHttpWorker, WhatFollowsWorkThatThrewRunsAndEndsOnTheLoopThread) {
    http::EventLoop loop;
    std::thread loop_thread([&] { loop.run(); });
    std::promise<std::thread::id> loop_id;
    loop.post([&] { loop_id.set_value(std::this_thread::get_id()); });
    const std::thread::id on_loop = loop_id.get_future().get();

    // Records the thread its last copy ends on, as a Reply's State would be.
    struct Witness {
        std::promise<std::thread::id>* ended = nullptr;
        ~Witness() {
            if (ended != nullptr) ended->set_value(std::this_thread::get_id());
        }
    };
    std::promise<std::thread::id> ended;
    std::promise<std::pair<bool, std::thread::id>> followed;
    {
        http::Worker worker("test", 1, [&](std::function<void()> f) { loop.post(std::move(f)); });
        auto witness = std::make_shared<Witness>();
        witness->ended = &ended;
        ASSERT_TRUE(worker.push([] { throw std::bad_alloc(); },
                                [&followed, witness](bool ok) {
                                    followed.set_value({ok, std::this_thread::get_id()});
                                }));
        witness.reset();
        auto followed_future = followed.get_future();
        auto ended_future = ended.get_future();
        const bool came_back = followed_future.wait_for(60s) == std::future_status::ready;
        EXPECT_TRUE(came_back) << "what follows the work never ran";
        if (came_back) {
            const auto [ok, ran_on] = followed_future.get();
            EXPECT_FALSE(ok);
            EXPECT_EQ(ran_on, on_loop);
            ASSERT_EQ(ended_future.wait_for(60s), std::future_status::ready);
            EXPECT_EQ(ended_future.get(), on_loop);
        }
    }
    loop.stop();
    loop_thread.join();
}

// The hand-back to the loop failing (out of memory) is tried again, and never ends what follows
// the work on the worker's thread; a hand-back the loop drops unrun (at its destruction) ends
// it on the dropping thread, not leaked.
TEST(ServerHttpWorker, AFailedHandBackIsTriedAgainAndADroppedOneEndsWhereItIsDropped) {
    struct Witness {
        std::atomic<int>* ended = nullptr;
        std::thread::id* ended_on = nullptr;
        ~Witness() {
            if (ended == nullptr) return;
            *ended_on = std::this_thread::get_id();
            ++*ended;
        }
    };
    std::atomic<int> ended{0};
    std::thread::id ended_on;
    std::mutex m;
    std::vector<std::function<void()>> posted; // the "loop": kept, never run
    std::atomic<int> attempts{0};
    {
        http::Worker worker("test", 1, [&](std::function<void()> f) {
            if (++attempts == 1) throw std::bad_alloc(); // the first hand-back fails
            const std::lock_guard<std::mutex> lock(m);
            posted.push_back(std::move(f));
        });
        auto witness = std::make_shared<Witness>();
        witness->ended = &ended;
        witness->ended_on = &ended_on;
        ASSERT_TRUE(worker.push([] {}, [witness](bool) { ADD_FAILURE() << "never run here"; }));
        witness.reset();
        ASSERT_TRUE(eventually([&] {
            const std::lock_guard<std::mutex> lock(m);
            return posted.size() == 1;
        }));
        EXPECT_EQ(attempts.load(), 2);
        EXPECT_EQ(ended.load(), 0) << "ended on the worker's thread when its hand-back failed";
    }
    posted.clear(); // the loop dropping it unrun
    EXPECT_EQ(ended.load(), 1);
    EXPECT_EQ(ended_on, std::this_thread::get_id());
}

namespace audit_store {

namespace store = jitgate::server::store;
namespace service = jitgate::server::service;
using jitgate::audit::Json;

// One canonical, hashed event line of host `host` (seq 1, genesis): a batch of its own.
std::string event_line(const std::string& host, const std::string& event_id) {
    Json e{{"event_id", event_id},
           {"host", host},
           {"seq", 1},
           {"prev_hash", jitgate::audit::k_genesis_hash},
           {"time", "2026-11-24T03:05:56.548Z"},
           {"type", "command.finished"},
           {"user", "alice"}};
    e["hash"] = jitgate::audit::sha256_hex(jitgate::audit::canonical_bytes(e));
    return e.dump();
}

// A Service on SQLite behind a real hosts listener. Its batch checks run inline on the loop
// unless offload() or offload_gated() moves them to the worker; `clock` is the service's time
// (0: the system clock).
struct AuditServer {
    AuditServer() {
        char tmpl[] = "/tmp/jitgate-ingest-test.XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
        dir = tmpl;
        store::migrate_sqlite(dir + "/server.db");
        db = store::open_sqlite(dir + "/server.db");
        config.server.name = "approvals.test";
        config.server.public_url = "https://approvals.test";
        http::Limits limits;
        limits.large_body_paths = {service::Service::k_audit_events_path};
        limits.max_large_body = jitgate::server::audit_ingest::k_max_body;
        server = std::make_unique<Server>(host_tls(), limits, [this](http::Request&& r, http::Reply&& reply) {
            svc->handle_host(std::move(r), std::move(reply));
        });
        service::Clock service_clock;
        service_clock.now = [this] {
            const std::int64_t t = clock.load();
            return t != 0 ? t : static_cast<std::int64_t>(std::time(nullptr));
        };
        svc = std::make_unique<service::Service>(config, *db, key, server->loop, service_clock);
        svc->on_audit_chain_event = [this](const store::Event& e) { notified.push_back(e.type); };
    }
    ~AuditServer() {
        open_gate(); // a test that stopped early must not leave the worker waiting
        server->stop();
        svc.reset();
        server.reset();
        db.reset();
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    // Checks on the worker, straight back to the loop.
    void offload() {
        svc->offload_audit_checks([this](std::function<void()> work) { server->loop.post(std::move(work)); });
    }
    // Checks on the worker, at most `in_flight` batches, and the worker's way back to the loop
    // held shut until open_gate(): the first batch's check ends there, so the worker stays busy
    // and the next batches wait in its queue. waiting_to_post counts the checks that ended.
    void offload_gated(std::size_t in_flight) {
        service::Service::AuditQueueLimits queue;
        queue.batches = in_flight;
        svc->offload_audit_checks(
            [this](std::function<void()> work) {
                ++waiting_to_post;
                std::unique_lock<std::mutex> lock(gate);
                gate_cv.wait(lock, [this] { return gate_open; });
                server->loop.post(std::move(work));
            },
            queue);
    }
    void open_gate() {
        {
            const std::lock_guard<std::mutex> lock(gate);
            gate_open = true;
        }
        gate_cv.notify_all();
    }
    Fetched post(const std::string& body) {
        FetchOptions o;
        o.method = "POST";
        o.body = body;
        o.headers = {"Content-Type: application/x-ndjson"};
        return fetch(server->url("/v1/audit/events"), o);
    }
    // One event of `host` (event_id ev-I) sent with the certificate `cert` (.pem and .key).
    Fetched post_as(const std::string& host, const std::string& cert, int i) {
        FetchOptions o;
        o.method = "POST";
        o.body = event_line(host, "ev-" + std::to_string(i)) + "\n";
        o.headers = {"Content-Type: application/x-ndjson"};
        o.cert = cert + ".pem";
        o.key = cert + ".key";
        return fetch(server->url("/v1/audit/events"), o);
    }
    // Runs `f` on the loop thread (the store is the loop's).
    template <class F>
    auto on_loop(F f) {
        decltype(f()) out;
        server->on_loop([&] { out = f(); });
        return out;
    }

    std::string dir;
    std::unique_ptr<store::Store> db;
    jitgate::server::config::Config config;
    jitgate::grant_token::SigningKey key = jitgate::grant_token::SigningKey::generate("k-test");
    std::unique_ptr<Server> server;
    std::unique_ptr<service::Service> svc;
    std::vector<std::string> notified; // loop thread
    std::atomic<std::int64_t> clock{0};
    std::atomic<int> waiting_to_post{0};
    std::mutex gate;
    std::condition_variable gate_cv;
    bool gate_open = false;
};

// Regression: a batch was checked on the loop thread, so a large hostile one held every host's
// poll and filing. The checks run on the worker; while it is busy the loop still answers, and
// beyond the worker's queue a batch gets 503 with Retry-After and nothing of it is stored.
TEST(ServerAuditIngestOffTheLoop, TheLoopAnswersWhileBatchesAreCheckedAndAFullQueueIs503) {
    AuditServer s;
    // Five batches in flight at most: one checked (its way back held shut), four queued.
    constexpr std::size_t k_in_flight = 5;
    s.offload_gated(k_in_flight);
    // Batch i comes from host fleet-(i+1): one batch per host, as jitgated sends them.
    const auto post_batch = [&s](int i) {
        const std::string host = "fleet-" + std::to_string(i + 1);
        return s.post_as(host, host, i);
    };
    constexpr int k_queued = static_cast<int>(k_in_flight) - 1;
    constexpr int k_refused = 2;
    std::vector<Fetched> results(1 + k_queued + k_refused);
    std::vector<std::thread> clients;
    clients.emplace_back([&] { results[0] = post_batch(0); });
    ASSERT_TRUE(eventually([&] { return s.waiting_to_post == 1; })) << "the first batch's check never finished";
    // The loop is free while the worker is busy.
    const Fetched state = fetch(s.server->url("/v1/audit/state"));
    EXPECT_EQ(state.status, 200) << state.body;
    std::atomic<int> answered{0};
    for (int i = 1; i < static_cast<int>(results.size()); ++i)
        clients.emplace_back([&, i] {
            results[static_cast<std::size_t>(i)] = post_batch(i);
            ++answered;
        });
    // Whatever order they arrive in, k_queued wait for the worker and the rest are refused now.
    ASSERT_TRUE(eventually([&] { return answered == k_refused; }));
    s.open_gate();
    for (auto& c : clients) c.join();
    int ok = 0;
    int busy = 0;
    for (const Fetched& f : results) {
        if (f.status == 200) {
            ++ok;
        } else {
            EXPECT_EQ(f.status, 503) << f.body;
            EXPECT_TRUE(f.has_header("Retry-After: " + std::to_string(service::Service::k_busy_retry_after_s)))
                << f.body;
            EXPECT_NE(f.body.find("nothing of this batch was stored"), std::string::npos) << f.body;
            ++busy;
        }
    }
    EXPECT_EQ(ok, 1 + k_queued);
    EXPECT_EQ(busy, k_refused);
    s.server->stop();
    std::size_t stored = 0;
    for (int i = 0; i < static_cast<int>(results.size()); ++i) {
        const std::size_t n = s.db->audit_events("fleet-" + std::to_string(i + 1), 1, 1, 100).size();
        EXPECT_EQ(n, results[static_cast<std::size_t>(i)].status == 200 ? 1u : 0u) << "batch " << i;
        stored += n;
    }
    EXPECT_EQ(stored, static_cast<std::size_t>(1 + k_queued)) << "only the acknowledged batches are stored";
}

// Regression: the checking queue was the fleet's, first come first served: one host with a
// valid certificate sending batches in parallel kept it full, and every other host got 503. A
// host has one batch queued or checked at most: its second at the same time is 503 at once
// (taking no slot), and another host's batch still gets in. The refusals go to syslog, at most
// once a minute per host with the count suppressed since.
TEST(ServerAuditIngestOffTheLoop, OneHostHoldsOneSlotAndOtherHostsStillGetIn) {
    AuditServer s;
    s.clock = 1'800'000'000;
    // The way back to the loop held shut, as above: batches stay queued or checked.
    constexpr std::size_t k_in_flight = 5;
    s.offload_gated(k_in_flight);
    ::openlog("jitgate-server-test", LOG_PERROR, LOG_USER); // syslog's lines on stderr too
    ::testing::internal::CaptureStderr();
    std::vector<std::thread> clients;
    Fetched first;
    clients.emplace_back([&] { first = s.post_as("testhost", "client", 0); });
    ASSERT_TRUE(eventually([&] { return s.waiting_to_post == 1; })) << "the first batch's check never finished";
    // The same host again, more than the queue holds, at once: each refused now.
    constexpr int k_more = static_cast<int>(k_in_flight);
    for (int i = 1; i <= k_more; ++i) {
        const Fetched again = s.post_as("testhost", "client", i);
        EXPECT_EQ(again.status, 503) << again.body;
        EXPECT_TRUE(again.has_header("Retry-After: " + std::to_string(service::Service::k_busy_retry_after_s)));
        EXPECT_NE(again.body.find("this host's previous batch is still being checked"), std::string::npos)
            << again.body;
    }
    // Another host's batch takes a free slot: it waits for the worker, not refused.
    Fetched other;
    std::atomic<bool> other_answered{false};
    clients.emplace_back([&] {
        other = s.post_as("fleet-1", "fleet-1", 100);
        other_answered = true;
    });
    std::this_thread::sleep_for(300ms);
    EXPECT_FALSE(other_answered) << "another host was refused: " << other.status << " " << other.body;
    // A minute later the host's refusals are logged again, with the count suppressed meanwhile.
    s.clock += 61;
    EXPECT_EQ(s.post_as("testhost", "client", 99).status, 503);
    s.open_gate();
    for (auto& c : clients) c.join();
    const std::string logged = ::testing::internal::GetCapturedStderr();
    ::closelog();
    ::openlog(nullptr, 0, LOG_USER); // LOG_PERROR off again for the tests that follow
    EXPECT_EQ(first.status, 200) << first.body;
    EXPECT_EQ(other.status, 200) << other.body;
    std::size_t lines = 0;
    for (std::size_t p = logged.find("audit.batch_busy host=\"testhost\""); p != std::string::npos;
         p = logged.find("audit.batch_busy host=\"testhost\"", p + 1))
        ++lines;
    EXPECT_EQ(lines, 2u) << logged;
    EXPECT_NE(logged.find("\"suppressed\":" + std::to_string(k_more - 1)), std::string::npos) << logged;
    s.server->stop();
    EXPECT_EQ(s.db->audit_events("testhost", 1, 1, 100).size(), 1u) << "only the acknowledged batch is stored";
}

// Regression: a batch check that threw (out of memory) on the worker ended the request's Reply
// there: a 500 written through libevent beside the loop. The check's failure goes back to the
// loop, which answers 503 with Retry-After (nothing stored; jitgated sends it again).
TEST(ServerAuditIngestOffTheLoop, ACheckThatRunsOutOfMemoryIs503FromTheLoop) {
    AuditServer s;
    s.offload();
    // check_batch reserves one store::AuditEvent per line before it parses any: a size nothing
    // else here allocates.
    constexpr std::size_t k_lines = 7919;
    g_fail_allocation_of = k_lines * sizeof(store::AuditEvent);
    std::string body;
    for (std::size_t i = 0; i < k_lines; ++i) body += "{}\n";
    FetchOptions o;
    o.method = "POST";
    o.body = body;
    o.headers = {"Content-Type: application/x-ndjson"};
    const Fetched f = fetch(s.server->url("/v1/audit/events"), o);
    EXPECT_EQ(g_fail_allocation_of.load(), 0u) << "the check never ran out of memory";
    g_fail_allocation_of = 0;
    EXPECT_EQ(f.status, 503) << f.body;
    EXPECT_TRUE(f.has_header("Retry-After: " + std::to_string(service::Service::k_busy_retry_after_s))) << f.body;
    EXPECT_NE(f.body.find("nothing of this batch was stored"), std::string::npos) << f.body;
    // The service goes on: the next batch is checked and stored.
    o.body = event_line("testhost", "ev-after") + "\n";
    EXPECT_EQ(fetch(s.server->url("/v1/audit/events"), o).status, 200);
}

// Regression: a 409 (an event_id again with other content: an edited event) refused the batch
// but left the chain "ok". It marks the chain broken, records audit.chain_edited for syslog and
// webhooks, and still answers 409.
TEST(ServerAuditIngestService, AnEditedEventResentIs409AndMarksTheChainBroken) {
    AuditServer s;
    const std::string original = event_line("testhost", "ev-1");
    ASSERT_EQ(s.post(original + "\n").status, 200);
    Json edited = Json::parse(original);
    edited.erase("hash");
    edited["user"] = "mallory";
    edited["hash"] = jitgate::audit::sha256_hex(jitgate::audit::canonical_bytes(edited));
    const Fetched refused = s.post(edited.dump() + "\n");
    EXPECT_EQ(refused.status, 409) << refused.body;
    const auto chain = s.on_loop([&] { return s.db->audit_chain("testhost"); });
    ASSERT_TRUE(chain);
    EXPECT_TRUE(chain->broken);
    EXPECT_EQ(chain->problem, "event ev-1 (seq 1) came again with other content (edited)");
    EXPECT_EQ(s.on_loop([&] { return s.notified; }),
              std::vector<std::string>({"audit.chain_started", "audit.chain_edited"}));
    const Fetched state = fetch(s.server->url("/v1/audit/state"));
    EXPECT_EQ(Json::parse(state.body)["chain"], "broken") << state.body;
    // Again within the minute: still 409, counted, not recorded again.
    EXPECT_EQ(s.post(edited.dump() + "\n").status, 409);
    EXPECT_EQ(s.on_loop([&] { return s.notified.size(); }), 2u);
}

// Runs `sql` on the test's database through a connection of its own (the store's is the loop's).
void run_sql(const std::string& db_path, const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    char* message = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message), SQLITE_OK)
        << (message != nullptr ? message : "");
    sqlite3_free(message);
    sqlite3_close(db);
}

// Regression: the once-a-minute turn of audit.chain_edited was used before the chain was
// marked broken; when that write failed, the chain stayed "ok" and the next 409s of the minute
// were suppressed. A failed mark gives the turn back: the next 409 marks the chain.
TEST(ServerAuditIngestService, AFailedBrokenMarkIsTriedAgainByTheNext409) {
    AuditServer s;
    const std::string original = event_line("testhost", "ev-1");
    ASSERT_EQ(s.post(original + "\n").status, 200);
    Json edited = Json::parse(original);
    edited.erase("hash");
    edited["user"] = "mallory";
    edited["hash"] = jitgate::audit::sha256_hex(jitgate::audit::canonical_bytes(edited));
    // The database refuses the mark's transaction (its audit.chain_edited row).
    run_sql(s.dir + "/server.db",
            "CREATE TRIGGER fail_mark BEFORE INSERT ON events WHEN NEW.type = 'audit.chain_edited' "
            "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;");
    EXPECT_EQ(s.post(edited.dump() + "\n").status, 409);
    auto chain = s.on_loop([&] { return s.db->audit_chain("testhost"); });
    ASSERT_TRUE(chain);
    ASSERT_FALSE(chain->broken) << "the injected failure did not stop the mark";
    run_sql(s.dir + "/server.db", "DROP TRIGGER fail_mark;");
    EXPECT_EQ(s.post(edited.dump() + "\n").status, 409);
    chain = s.on_loop([&] { return s.db->audit_chain("testhost"); });
    ASSERT_TRUE(chain);
    EXPECT_TRUE(chain->broken) << "the 409 within the minute was suppressed: the chain stayed ok";
    EXPECT_EQ(s.on_loop([&] { return s.notified; }),
              std::vector<std::string>({"audit.chain_started", "audit.chain_edited"}));
}

// Regression: an event_id with a \u0000 escape passed the checks and the store's refusal was
// a 503, resent for ever. It is a 422 naming the line; nothing is stored.
TEST(ServerAuditIngestService, ANulInAnEventIdIs422NotA503) {
    AuditServer s;
    const Fetched f = s.post(event_line("testhost", std::string("ev-\0-1", 6)) + "\n");
    EXPECT_EQ(f.status, 422) << f.body;
    EXPECT_NE(f.body.find("event_id holds a NUL"), std::string::npos) << f.body;
    EXPECT_FALSE(s.on_loop([&] { return s.db->audit_chain("testhost"); }));
}

// GET /v1/audit/state answers for the host named by ?host= when the certificate may act for
// it (jitgatectl audit verify --against-store names its host.name), 403 otherwise; without it,
// for the certificate's first name.
TEST(ServerAuditIngestService, TheStateIsForTheHostAskedWhenTheCertificateNamesIt) {
    AuditServer s;
    FetchOptions o;
    o.cert = "san.pem"; // CN sanhost, DNS sanhost.example and alias.example
    o.key = "san.key";
    o.method = "POST";
    o.headers = {"Content-Type: application/x-ndjson"};
    o.body = event_line("alias.example", "ev-alias") + "\n";
    ASSERT_EQ(fetch(s.server->url("/v1/audit/events"), o).status, 200);
    o.method = "GET";
    o.body.clear();
    o.headers.clear();
    const Fetched alias = fetch(s.server->url("/v1/audit/state?host=alias.example"), o);
    ASSERT_EQ(alias.status, 200) << alias.body;
    EXPECT_EQ(Json::parse(alias.body)["host"], "alias.example");
    EXPECT_EQ(Json::parse(alias.body)["last_seq"], 1);
    const Fetched first = fetch(s.server->url("/v1/audit/state"), o);
    ASSERT_EQ(first.status, 200) << first.body;
    EXPECT_EQ(Json::parse(first.body)["host"], "sanhost");
    EXPECT_EQ(Json::parse(first.body)["last_seq"], 0);
    const Fetched other = fetch(s.server->url("/v1/audit/state?host=testhost"), o);
    EXPECT_EQ(other.status, 403) << other.body;
    EXPECT_EQ(Json::parse(other.body)["error"]["message"],
              "the client certificate (CN=sanhost) may not act for host \"testhost\"")
        << other.body;
}

// A new chain at seq 1 after events (a wiped spool) is an alert and in the host's state.
TEST(ServerAuditIngestService, ARestartedChainIsNotifiedAndCountedInTheState) {
    AuditServer s;
    ASSERT_EQ(s.post(event_line("testhost", "ev-1") + "\n").status, 200);
    ASSERT_EQ(s.post(event_line("testhost", "ev-1-again") + "\n").status, 200);
    EXPECT_EQ(s.on_loop([&] { return s.notified; }),
              std::vector<std::string>({"audit.chain_started", "audit.chain_restarted"}));
    const Json state = Json::parse(fetch(s.server->url("/v1/audit/state")).body);
    EXPECT_EQ(state["restarts"], 1) << state.dump();
    EXPECT_EQ(state["restart_previous_seq"], 1) << state.dump();
    EXPECT_EQ(state["chain"], "ok") << state.dump();
}

// One event line of "testhost" at `seq`, following `prev_hash`.
std::string chained_line(std::int64_t seq, const std::string& prev_hash) {
    Json e{{"event_id", "ev-" + std::to_string(seq)},
           {"host", "testhost"},
           {"seq", seq},
           {"prev_hash", prev_hash},
           {"time", "2026-11-24T03:05:56.548Z"},
           {"type", "command.finished"},
           {"user", "alice"}};
    e["hash"] = jitgate::audit::sha256_hex(jitgate::audit::canonical_bytes(e));
    return e.dump();
}

// Jitgate-Spool-Seq: a valid one is stored with the batch and shown as the backlog in the state;
// a missing one leaves the backlog unknown; a hostile one is ignored (the state says unknown)
// and never costs the batch: every batch is answered 200 and stored.
TEST(ServerAuditIngestService, TheSpoolSeqHeaderIsStoredWhenValidAndIgnoredWhenNot) {
    AuditServer s;
    std::string prev = jitgate::audit::k_genesis_hash;
    std::int64_t seq = 0;
    const auto post = [&](std::optional<std::string> header) {
        const std::string l = chained_line(++seq, prev);
        prev = Json::parse(l)["hash"].get<std::string>();
        FetchOptions o;
        o.method = "POST";
        o.body = l + "\n";
        o.headers = {"Content-Type: application/x-ndjson"};
        if (header) o.headers.push_back("Jitgate-Spool-Seq: " + *header);
        return fetch(s.server->url("/v1/audit/events"), o);
    };
    const auto state = [&] { return Json::parse(fetch(s.server->url("/v1/audit/state")).body); };

    ASSERT_EQ(post(std::nullopt).status, 200); // an older jitgated
    Json st = state();
    EXPECT_EQ(st["reported_seq"], 0) << st.dump();
    EXPECT_EQ(st["reported_at"], "") << st.dump();
    EXPECT_TRUE(st["backlog"].is_null()) << "unknown, never 0: " << st.dump();

    ASSERT_EQ(post("40").status, 200); // seq 2 stored, 40 in the spool
    st = state();
    EXPECT_EQ(st["last_seq"], 2) << st.dump();
    EXPECT_EQ(st["reported_seq"], 40) << st.dump();
    EXPECT_NE(st["reported_at"], "") << st.dump();
    EXPECT_EQ(st["backlog"], 38) << st.dump();
    const Json reported_at = st["reported_at"];

    for (const std::string hostile :
         {"abc", "-5", "+41", "041", "2", "99999999999999999999", "9223372036854775808", "41 42", "1e9"}) {
        const Fetched f = post(hostile);
        EXPECT_EQ(f.status, 200) << hostile << ": " << f.body;
        st = state();
        EXPECT_EQ(st["last_seq"], seq) << hostile;
        EXPECT_EQ(st["reported_seq"], 0) << hostile << ": not the earlier batch's figure";
        EXPECT_EQ(st["reported_at"], reported_at) << hostile << ": when a batch last reported";
        EXPECT_TRUE(st["backlog"].is_null()) << hostile << ": " << st.dump();
    }
    ASSERT_EQ(post("9223372036854775807").status, 200);
    st = state();
    EXPECT_EQ(st["reported_seq"], 9223372036854775807) << st.dump();
    EXPECT_EQ(st["backlog"], 9223372036854775807 - seq) << st.dump();
    ASSERT_EQ(post(std::to_string(seq + 1)).status, 200); // the batch's own seq: nothing left
    EXPECT_EQ(state()["backlog"], 0);
    ASSERT_EQ(post(std::nullopt).status, 200); // the header gone again (an older jitgated took over)
    EXPECT_TRUE(state()["backlog"].is_null()) << state().dump();
    EXPECT_EQ(s.on_loop([&] { return s.db->audit_chain("testhost")->events; }), seq) << "every batch stored";
}

// The real shipper against the real server over mutual TLS: each batch reports the spool's
// newest seq, and the server keeps it.
TEST(ServerAuditIngestService, TheShipperReportsItsSpoolToTheServer) {
    AuditServer s;
    const std::string spool = s.dir + "/spool";
    fs::create_directory(spool);
    jitgate::audit::Options ao;
    ao.spool_dir = spool;
    ao.host = "testhost";
    ao.syslog = false;
    jitgate::audit::Auditor auditor(ao);
    for (int i = 0; i < 5; ++i)
        auditor.record({{"type", jitgate::audit::type::command_finished}, {"user", "alice"}, {"exit_status", i}});
    jitgate::audit::ShipperOptions so;
    so.url = s.server->url("/v1/audit/events");
    so.ca_file = pki("ca.pem");
    so.client_cert = pki("client.pem");
    so.client_key = pki("client.key");
    so.batch_events = 2;
    so.retry_min = 20ms;
    so.retry_max = 200ms;
    jitgate::audit::Shipper shipper(so, auditor);
    shipper.start();
    EXPECT_TRUE(eventually([&] { return shipper.shipped_seq() == 5; }, 30s)) << shipper.status().dump();
    shipper.stop();
    const auto chain = s.on_loop([&] { return s.db->audit_chain("testhost"); });
    ASSERT_TRUE(chain);
    EXPECT_EQ(chain->last_seq, 5);
    EXPECT_EQ(chain->reported_seq, 5);
    EXPECT_EQ(chain->reported_at, chain->last_seen);
    EXPECT_EQ(store::shipping_backlog(*chain), 0);
}

} // namespace audit_store

} // namespace
