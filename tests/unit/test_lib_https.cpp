// Unit tests for lib/https: the libcurl TLS/HTTPS policy, checked by real transfers to a
// plain-TCP peer on 127.0.0.1 (no network beyond loopback) where libcurl cannot show an option
// through curl_easy_getinfo.
#include "lib/https.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "jitgate/error.hpp"

namespace {

using jitgate::Error;
using jitgate::ErrorCode;
using jitgate::https::apply_policy;
using jitgate::https::Policy;
using namespace std::chrono_literals;

// A TCP listener on 127.0.0.1 that answers each of `answers` connections with one fixed HTTP
// response, then closes. With answers == 0 it only listens (a connection waits in the backlog).
class LoopbackPeer {
public:
    LoopbackPeer(std::string response, int answers) : m_response(std::move(response)) {
        m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(addr);
        if (m_fd < 0 || ::bind(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(m_fd, 8) != 0 ||
            ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
            throw std::runtime_error(std::string("cannot listen on 127.0.0.1: ") + std::strerror(errno));
        m_port = ntohs(addr.sin_port);
        if (answers > 0)
            m_thread = std::thread([this, answers] {
                for (int i = 0; i < answers; ++i) {
                    const int c = ::accept(m_fd, nullptr, nullptr);
                    if (c < 0) return;
                    char buf[4096];
                    (void)::recv(c, buf, sizeof(buf), 0); // the request; its content does not matter
                    (void)::send(c, m_response.data(), m_response.size(), MSG_NOSIGNAL);
                    ::close(c);
                }
            });
    }
    ~LoopbackPeer() {
        ::shutdown(m_fd, SHUT_RDWR); // wakes a blocked accept()
        if (m_thread.joinable()) m_thread.join();
        ::close(m_fd);
    }
    LoopbackPeer(const LoopbackPeer&) = delete;
    LoopbackPeer& operator=(const LoopbackPeer&) = delete;

    std::string url(const std::string& scheme, const std::string& path = "/") const {
        return scheme + "://127.0.0.1:" + std::to_string(m_port) + path;
    }

private:
    std::string m_response;
    int m_fd = -1;
    int m_port = 0;
    std::thread m_thread;
};

struct Easy {
    CURL* h = curl_easy_init();
    ~Easy() { curl_easy_cleanup(h); }
};

std::size_t discard(char*, std::size_t size, std::size_t n, void*) {
    return size * n;
}

Policy test_policy() {
    Policy p;
    p.ca_file = "/nonexistent/ca.pem"; // never read: no transfer here gets as far as TLS
    p.connect_timeout = 2s;
    p.timeout = 3s;
    return p;
}

CURLcode perform(CURL* h, const std::string& url) {
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &discard);
    return curl_easy_perform(h);
}

TEST(HttpsPolicy, PlainHttpIsRefusedBeforeAnyConnection) {
    LoopbackPeer peer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0);
    Easy e;
    ASSERT_NE(e.h, nullptr);
    apply_policy(e.h, test_policy());
    EXPECT_EQ(perform(e.h, peer.url("http")), CURLE_UNSUPPORTED_PROTOCOL);
}

TEST(HttpsPolicy, OtherSchemesAreRefusedEvenWhenPlainHttpIsAllowed) {
    Policy p = test_policy();
    p.allow_plain_http = true;
    for (const char* url :
         {"ftp://127.0.0.1:1/x", "file:///dev/null", "gopher://127.0.0.1:1/x", "dict://127.0.0.1:1/x"}) {
        Easy e;
        apply_policy(e.h, p);
        EXPECT_EQ(perform(e.h, url), CURLE_UNSUPPORTED_PROTOCOL) << url;
    }
}

// The test-only plain-http mode reaches the peer directly, never through a proxy from the
// environment, and does not follow its redirect (to plain http, or anywhere).
TEST(HttpsPolicy, RedirectsAreNotFollowedAndEnvironmentProxiesIgnored) {
    LoopbackPeer peer("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n", 1);
    ::setenv("http_proxy", "http://127.0.0.1:1", 1);
    ::setenv("https_proxy", "http://127.0.0.1:1", 1);
    ::setenv("all_proxy", "http://127.0.0.1:1", 1);
    Policy p = test_policy();
    p.allow_plain_http = true;
    Easy e;
    apply_policy(e.h, p);
    const CURLcode rc = perform(e.h, peer.url("http", "/start"));
    ::unsetenv("http_proxy");
    ::unsetenv("https_proxy");
    ::unsetenv("all_proxy");
    ASSERT_EQ(rc, CURLE_OK) << curl_easy_strerror(rc) << " (an environment proxy was used?)";
    long status = 0;
    long redirects = -1;
    char* effective = nullptr;
    curl_easy_getinfo(e.h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e.h, CURLINFO_REDIRECT_COUNT, &redirects);
    curl_easy_getinfo(e.h, CURLINFO_EFFECTIVE_URL, &effective);
    EXPECT_EQ(status, 302);
    EXPECT_EQ(redirects, 0);
    ASSERT_NE(effective, nullptr);
    EXPECT_EQ(std::string(effective), peer.url("http", "/start"));
}

TEST(HttpsPolicy, HttpsWithoutAPinnedCaIsRefused) {
    Policy p = test_policy();
    p.ca_file.clear();
    Easy e;
    try {
        apply_policy(e.h, p);
        ADD_FAILURE() << "an https policy without ca_file was accepted";
    } catch (const Error& err) {
        EXPECT_EQ(err.code(), ErrorCode::bad_input);
        EXPECT_NE(std::string(err.what()).find("ca_file"), std::string::npos) << err.what();
    }
}

TEST(HttpsPolicy, ClientCertificateAndKeyGoTogether) {
    Policy p = test_policy();
    p.client_cert = "/etc/jitgate/host.crt";
    Easy e;
    EXPECT_THROW(apply_policy(e.h, p), Error);
    p.client_cert.clear();
    p.client_key = "/etc/jitgate/host.key";
    EXPECT_THROW(apply_policy(e.h, p), Error);
    p.client_cert = "/etc/jitgate/host.crt";
    EXPECT_NO_THROW(apply_policy(e.h, p));
}

// The pinned CA is the only trust anchor: a file that does not exist fails the TLS set-up
// instead of falling back to the system store. The peer speaks no TLS, so any other outcome
// than a CA error or a handshake error would mean the CA file was not used.
TEST(HttpsPolicy, AnUnreadableCaFileFailsTheTransfer) {
    LoopbackPeer peer("not TLS\r\n", 1);
    Easy e;
    apply_policy(e.h, test_policy());
    const CURLcode rc = perform(e.h, peer.url("https"));
    EXPECT_NE(rc, CURLE_OK);
    EXPECT_TRUE(rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION)
        << curl_easy_strerror(rc);
}

} // namespace
