// tests/unit/server_notify_peers.hpp — real HTTPS peers on 127.0.0.1 for the tests of
// server/notify (webhook receivers, a fake ServiceNow): cpp-httplib with OpenSSL, serving a
// certificate from the throw-away PKI that tests/support/make_pki.sh makes for the run.
// Also the central audit store's state for test_audit_store_check.cpp (mutual TLS). Include only
// from those tests (tests/unit/CMakeLists.txt links cpp-httplib into them).
#pragma once

// The macros Debian's libcpp-httplib was built with (its pkg-config Cflags): the classes must
// look the same here as in the library.
#define CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_ZLIB_SUPPORT
#define CPPHTTPLIB_BROTLI_SUPPORT
#include <httplib.h>

#include <netinet/in.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace jitgate::test {

// A scratch directory, removed with everything in it at the end of its scope.
class ScratchDir {
public:
    ScratchDir() {
        std::string templ = std::filesystem::temp_directory_path().string() + "/jitgate-notify-XXXXXX";
        if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        m_path = templ;
    }
    ~ScratchDir() {
        std::error_code ec;
        std::filesystem::remove_all(m_path, ec);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    const std::string& path() const { return m_path; }
    std::string operator/(const std::string& name) const { return m_path + "/" + name; }

private:
    std::string m_path;
};

// Runs tests/support/make_pki.sh into `dir` (ca.pem, server.pem/.key for 127.0.0.1,
// other-ca.pem, other-server.pem/.key signed by that unrelated CA). Throws if it fails: a
// missing openssl is a loud failure, never a skip.
inline void make_pki(const std::string& dir) {
    const std::string command =
        std::string("bash '") + JITGATE_SOURCE_DIR + "/tests/support/make_pki.sh' '" + dir + "'";
    if (std::system(command.c_str()) != 0) throw std::runtime_error("make_pki.sh failed: " + command);
}

// One request as the peer received it.
struct Received {
    std::string method;
    std::string path;                               // without the query
    std::multimap<std::string, std::string> params; // the query, decoded
    std::multimap<std::string, std::string> headers;
    std::string body;

    std::string header(const std::string& name) const {
        // httplib keeps header names as sent; compare without case.
        for (const auto& [key, value] : headers)
            if (strcasecmp(key.c_str(), name.c_str()) == 0) return value;
        return {};
    }
};

// What the peer answers to one request.
struct Answer {
    Answer() = default;
    Answer(int status_, std::string body_ = "", std::string content_type_ = "text/plain",
           std::map<std::string, std::string> headers_ = {}, std::chrono::milliseconds delay_ = {})
        : status(status_), body(std::move(body_)), content_type(std::move(content_type_)), headers(std::move(headers_)),
          delay(delay_) {}

    int status = 200;
    std::string body = "ok";
    std::string content_type = "text/plain";
    std::map<std::string, std::string> headers;
    std::chrono::milliseconds delay{0}; // waited before answering (a slow receiver)
};

// An HTTPS server on 127.0.0.1 (ephemeral port) that records every request and answers with
// the queued answers in order, then with the default answer. With `client_ca`, a client must
// present a certificate that CA signed (mutual TLS), or its handshake fails.
class HttpsPeer {
public:
    HttpsPeer(const std::string& cert, const std::string& key, const std::string& client_ca = "")
        : m_server(cert.c_str(), key.c_str(), client_ca.empty() ? nullptr : client_ca.c_str()) {
        if (!m_server.is_valid()) throw std::runtime_error("cannot load the peer's certificate " + cert);
        const auto handler = [this](const httplib::Request& req, httplib::Response& res) {
            Answer answer;
            {
                std::lock_guard lock(m_mutex);
                Received r;
                r.method = req.method;
                r.path = req.path;
                for (const auto& [k, v] : req.params) r.params.emplace(k, v);
                for (const auto& [k, v] : req.headers) r.headers.emplace(k, v);
                r.body = req.body;
                m_received.push_back(std::move(r));
                if (!m_answers.empty()) {
                    answer = m_answers.front();
                    m_answers.pop_front();
                } else {
                    answer = m_default;
                }
            }
            if (answer.delay.count() > 0) std::this_thread::sleep_for(answer.delay);
            res.status = answer.status;
            for (const auto& [k, v] : answer.headers) res.set_header(k.c_str(), v);
            res.set_content(answer.body, answer.content_type.c_str());
        };
        m_server.Get(R"(/.*)", handler);
        m_server.Post(R"(/.*)", handler);
        m_port = m_server.bind_to_any_port("127.0.0.1");
        if (m_port <= 0) throw std::runtime_error("cannot listen on 127.0.0.1");
        m_thread = std::thread([this] { m_server.listen_after_bind(); });
        // stop() does nothing to a server that is not running yet: wait for it, so that the
        // destructor of a peer nobody called cannot hang in join().
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (!m_server.is_running()) {
            if (std::chrono::steady_clock::now() > deadline) {
                std::fprintf(stderr, "the HTTPS peer did not start listening within 30 s\n");
                std::abort(); // its thread still uses the server: no way to unwind safely
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    ~HttpsPeer() {
        m_server.stop();
        if (m_thread.joinable()) m_thread.join();
    }
    HttpsPeer(const HttpsPeer&) = delete;
    HttpsPeer& operator=(const HttpsPeer&) = delete;

    std::string url(const std::string& path) const { return "https://127.0.0.1:" + std::to_string(m_port) + path; }
    int port() const { return m_port; }

    void queue(Answer answer) {
        std::lock_guard lock(m_mutex);
        m_answers.push_back(std::move(answer));
    }
    void set_default(Answer answer) {
        std::lock_guard lock(m_mutex);
        m_default = std::move(answer);
    }
    std::vector<Received> received() const {
        std::lock_guard lock(m_mutex);
        return m_received;
    }

private:
    httplib::SSLServer m_server;
    int m_port = 0;
    std::thread m_thread;
    mutable std::mutex m_mutex;
    std::deque<Answer> m_answers;
    Answer m_default;
    std::vector<Received> m_received;
};

// A port on 127.0.0.1 where nothing listens (bound, then closed).
inline int closed_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        throw std::runtime_error("cannot bind a port on 127.0.0.1");
    ::close(fd); // bound but never listening: a connection is refused
    return ntohs(addr.sin_port);
}

} // namespace jitgate::test
