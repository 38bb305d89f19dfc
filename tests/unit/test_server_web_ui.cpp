// tests/unit/test_server_web_ui.cpp — the approvers' web UI (server/web/web_ui.hpp) end to end
// without a network: WebUi::respond() over the real Service and the real SQLite store (a
// scratch database per test), with the IdP replaced by a double of the SignIn interface (the
// real OpenID Connect client is tested against a real IdP elsewhere; here the point is what the
// web UI does with its answers and its failures).
//
// It covers: routing (404/405), the redirect to sign-in, the sign-in (state bound to the
// browser, one use, IdP refusals, a new session token each time, only the token's SHA-256
// stored, the events recorded), CSRF and Origin on every POST (403 and nothing changed),
// approve and deny through the Service (a denial needs a comment, no self-approval), session
// expiry, sign-out, and the security headers on every answer.
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "lib/audit_event.hpp"
#include "lib/grant_token.hpp"
#include "server/config/config.hpp"
#include "server/http/http.hpp"
#include "server/service/service.hpp"
#include "server/store/store.hpp"
#include "server/web/browser.hpp"
#include "server/web/sign_in.hpp"
#include "server/web/sign_in_limit.hpp"
#include "server/web/web_ui.hpp"

#include <jitgate/error.hpp>
#include <jitgate/text.hpp>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

// The grant signing key for this test run: a fresh Ed25519 key from lib/grant_token's signer.
const jitgate::grant_token::SigningKey& signing_key_for_the_run() {
    static const jitgate::grant_token::SigningKey key = jitgate::grant_token::SigningKey::generate("k-test");
    return key;
}

namespace {

namespace web = jitgate::server::web;
namespace browser = jitgate::server::web::browser;
namespace store = jitgate::server::store;
namespace service = jitgate::server::service;
namespace http = jitgate::server::http;
namespace config = jitgate::server::config;
using nlohmann::json;

constexpr std::int64_t k_start = 1'700'000'000;
const std::string k_origin = "https://approvals.example.test";

// The IdP's side of a sign-in, as the web UI sees it through SignIn.
class FakeIdp : public web::SignIn {
public:
    std::int64_t* now = nullptr;
    std::string last_return_to;
    int begun = 0;
    // What complete() answers for the code "good": who signs in next.
    web::Identity next{"https://idp.example.test/", "sub-bob", "bob", "Bob Builder", {"sox-approvers"}};

    bool unreachable = false; // begin() fails as when the IdP's discovery document cannot be fetched

    // While closed, begin() on any thread but the test's waits (an IdP that hangs, seen from
    // the sign-in worker); at_gate counts the callers waiting.
    void close_gate() {
        const std::lock_guard<std::mutex> lock(m_gate_mutex);
        m_gate_closed = true;
    }
    void open_gate() {
        {
            const std::lock_guard<std::mutex> lock(m_gate_mutex);
            m_gate_closed = false;
        }
        m_gate.notify_all();
    }
    void wait_for_one_at_gate() {
        std::unique_lock<std::mutex> lock(m_gate_mutex);
        m_gate.wait(lock, [this] { return m_at_gate > 0; });
    }

    std::pair<std::string, store::LoginState> begin(const std::string& return_to) override {
        if (std::this_thread::get_id() != m_test_thread) {
            std::unique_lock<std::mutex> lock(m_gate_mutex);
            ++m_at_gate;
            m_gate.notify_all();
            m_gate.wait(lock, [this] { return !m_gate_closed; });
            --m_at_gate;
        }
        ++begun;
        if (unreachable)
            throw jitgate::Error(jitgate::ErrorCode::timeout, "oidc", "cannot fetch the discovery document");
        last_return_to = return_to;
        store::LoginState login;
        login.state = browser::random_token();
        login.nonce = browser::random_token();
        login.code_verifier = browser::random_token();
        login.return_to = return_to;
        login.expires_at = *now + 600;
        return {"https://idp.example.test/authorize?client_id=jitgate&state=" + login.state, login};
    }

    web::Identity complete(const std::string& code, const store::LoginState& login) override {
        if (code != "good")
            throw jitgate::Error(jitgate::ErrorCode::denied, "oidc", "the token endpoint refused the code " + code);
        if (login.nonce.empty()) throw jitgate::Error(jitgate::ErrorCode::internal, "oidc", "no nonce");
        return next;
    }

private:
    std::thread::id m_test_thread = std::this_thread::get_id();
    std::mutex m_gate_mutex;
    std::condition_variable m_gate;
    bool m_gate_closed = false;
    int m_at_gate = 0;
};

// One browser: its cookies, sent with every request.
struct Browser {
    std::map<std::string, std::string> cookies;

    void take_cookies(const http::Response& response) {
        for (const auto& [name, value] : response.headers) {
            if (name != "Set-Cookie") continue;
            const auto eq = value.find('=');
            const auto semi = value.find(';');
            const std::string cookie_name = value.substr(0, eq);
            const std::string cookie_value = value.substr(eq + 1, semi - eq - 1);
            if (value.find("Max-Age=0") != std::string::npos)
                cookies.erase(cookie_name);
            else
                cookies[cookie_name] = cookie_value;
        }
    }
    std::string cookie_header() const {
        std::string out;
        for (const auto& [name, value] : cookies) out += (out.empty() ? "" : "; ") + name + "=" + value;
        return out;
    }
};

std::string header_of(const http::Response& response, const std::string& name) {
    for (const auto& [n, v] : response.headers)
        if (n == name) return v;
    return {};
}

std::vector<std::string> set_cookies(const http::Response& response) {
    std::vector<std::string> out;
    for (const auto& [n, v] : response.headers)
        if (n == "Set-Cookie") out.push_back(v);
    return out;
}

json request_body(const std::string& requester) {
    return json::parse(R"({
      "protocol": 1, "id": "R-7F3K9Q", "nonce": "q1xJr0b3c8Rk6fYgZ0HkK5P4n2mW9sVtLqE1dA7uC3o",
      "host": "pay-db-01", "host_environment": "production", "host_tags": ["finance"],
      "requester": {"user": ")" +
                       requester + R"(", "uid": 2001},
      "account": {"user": ")" +
                       requester + R"(", "uid": 2001},
      "kind": "sudo", "scope": "command",
      "action": {"command": "/usr/bin/systemctl", "argv": ["/usr/bin/systemctl", "restart", "nginx"],
                 "display": "/usr/bin/systemctl restart nginx", "runas": "root", "runas_group": "root",
                 "cwd": "/", "chroot": "", "program": "/usr/bin/systemctl", "env": [], "env_code_loading": [],
                 "tty": "", "service": "", "remote_host": "",
                 "cmd_sha256": "7b9c9c6941391da209129e4c89d8a4bb2665a33870a965fafa307678db3d732b"},
      "reason": "restart", "ticket": "", "rule": "finance", "approvals_needed": 1,
      "approver_groups": ["sox-approvers"], "ttl_s": 900, "timeout_s": 1800})");
}

class WebUiTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/jitgate-web-ui-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        m_dir = pattern;
        const std::string db = m_dir + "/server.db";
        store::migrate_sqlite(db);
        m_store = store::open_sqlite(db);

        m_config.server.name = "Example";
        m_config.server.public_url = k_origin;
        m_config.web.session_ttl = std::chrono::hours(8);
        config::PolicyEntry everyone;
        everyone.name = "all";
        everyone.approver_groups = {"sox-approvers"};
        m_config.policy = {everyone};

        m_idp.now = &m_now;
        m_service = std::make_unique<service::Service>(m_config, *m_store, signing_key_for_the_run(), m_loop,
                                                       service::Clock{[this] { return m_now; }});
        rebuild_ui();
    }

    void TearDown() override {
        m_ui.reset();
        m_service.reset();
        m_store.reset();
        std::filesystem::remove_all(m_dir);
    }

    // A pending request from `requester` on pay-db-01, as the host API would have stored it.
    void file_request(const std::string& requester = "alice", int approvals_needed = 1) {
        store::Request r;
        r.host = "pay-db-01";
        r.id = "R-7F3K9Q";
        r.body = request_body(requester).dump();
        r.requester = requester;
        r.rule = "finance";
        r.approvals_needed = approvals_needed;
        r.approver_groups = {"sox-approvers"};
        r.created_at = m_now;
        r.expires_at = m_now + 1800;
        store::Event filed;
        filed.at = m_now;
        filed.type = "request.filed";
        filed.host = r.host;
        filed.request_id = r.id;
        filed.actor = "host:pay-db-01";
        ASSERT_TRUE(m_store->create(r, filed).created);
    }

    // A window "q4-freeze" of one dated period [from, to) and a policy entry "freeze" that
    // refuses while it holds (the server's change freeze, docs/server.md).
    void add_freeze(std::int64_t from, std::int64_t to, const std::string& from_text = "",
                    const std::string& to_text = "") {
        jitgate::config::Window freeze;
        freeze.name = "q4-freeze";
        freeze.timezone = "Etc/UTC";
        jitgate::config::DatedPeriod period;
        period.from = from_text;
        period.to = to_text;
        period.from_unix = from;
        period.to_unix = to;
        freeze.dates = {period};
        m_config.windows = {freeze};
        config::PolicyEntry deny;
        deny.name = "freeze";
        deny.when_windows = {"q4-freeze"};
        deny.deny = true;
        m_config.policy.push_back(deny);
    }

    http::Response send(Browser& b, const std::string& method, const std::string& path, const http::Fields& query = {},
                        const std::string& body = "", http::Fields extra_headers = {}) {
        http::Request request;
        request.method = method;
        request.path = path;
        request.query = query;
        request.peer_address = m_peer;
        if (!b.cookies.empty()) request.headers.emplace_back("cookie", b.cookie_header());
        if (method == "POST") request.headers.emplace_back("content-type", "application/x-www-form-urlencoded");
        for (auto& h : extra_headers) request.headers.push_back(std::move(h));
        request.body = body;
        http::Response response = m_ui->respond(request);
        check_security_headers(response);
        b.take_cookies(response);
        return response;
    }

    static void check_security_headers(const http::Response& response) {
        EXPECT_EQ(header_of(response, "Content-Security-Policy"), browser::k_content_security_policy);
        EXPECT_EQ(header_of(response, "X-Frame-Options"), "DENY");
        EXPECT_EQ(header_of(response, "Referrer-Policy"), "same-origin");
        EXPECT_EQ(header_of(response, "Cache-Control"), "no-store");
        EXPECT_FALSE(header_of(response, "Strict-Transport-Security").empty());
    }

    // Signs `b` in as m_idp.next, coming back to `return_to`; returns the callback's answer.
    http::Response sign_in(Browser& b, const std::string& return_to = "/") {
        const http::Response login = send(b, "GET", "/login", {{"return_to", return_to}});
        EXPECT_EQ(login.status, 303);
        const std::string state = b.cookies[std::string(browser::k_login_cookie)];
        EXPECT_TRUE(browser::is_cookie_value(state));
        return send(b, "GET", "/oidc/callback", {{"code", "good"}, {"state", state}});
    }

    std::string csrf_of(Browser& b) {
        const http::Response page = send(b, "GET", "/");
        std::smatch m;
        EXPECT_TRUE(std::regex_search(page.body, m, std::regex("name=\"csrf\" value=\"([^\"]+)\"")));
        return m.size() > 1 ? m[1].str() : std::string();
    }

    store::Request stored() {
        const auto r = m_store->find("pay-db-01", "R-7F3K9Q");
        EXPECT_TRUE(r.has_value());
        return r.value_or(store::Request{});
    }

    std::vector<store::Event> sign_in_events(const std::string& type) {
        std::vector<store::Event> out;
        for (auto& e : m_store->events("", ""))
            if (e.type == type) out.push_back(e);
        return out;
    }

    // Builds the web UI again after a change of m_config; its log lines go to m_rate_limited_lines.
    void rebuild_ui() {
        m_ui = std::make_unique<web::WebUi>(m_config, *m_service, *m_store, m_idp);
        m_ui->log_rate_limited = [this](const store::Event& e) { m_rate_limited_lines.push_back(e); };
    }

    std::string m_dir;
    std::string m_peer = "192.0.2.10"; // the address the next request comes from
    std::vector<store::Event> m_rate_limited_lines;
    std::int64_t m_now = k_start;
    config::Config m_config;
    std::unique_ptr<store::Store> m_store;
    http::EventLoop m_loop;
    FakeIdp m_idp;
    std::unique_ptr<service::Service> m_service;
    std::unique_ptr<web::WebUi> m_ui;
};

TEST_F(WebUiTest, HealthAndStylesheetNeedNoSession) {
    Browser b;
    const auto health = send(b, "GET", "/healthz");
    EXPECT_EQ(health.status, 200);
    EXPECT_EQ(health.body, "ok");
    const auto css = send(b, "GET", "/style.css");
    EXPECT_EQ(css.status, 200);
    EXPECT_EQ(header_of(css, "Content-Type"), "text/css; charset=utf-8");
    EXPECT_NE(css.body.find("body {"), std::string::npos);
}

TEST_F(WebUiTest, UnknownPathsAndWrongMethods) {
    Browser b;
    EXPECT_EQ(send(b, "GET", "/nope").status, 404);
    EXPECT_EQ(send(b, "GET", "/r/pay-db-01/not-an-id").status, 404);
    EXPECT_EQ(send(b, "GET", "/r/pay db/R-7F3K9Q").status, 404);
    EXPECT_EQ(send(b, "GET", "/r/pay-db-01/R-7F3K9Q/other").status, 404);
    EXPECT_EQ(send(b, "DELETE", "/").status, 405);
    EXPECT_EQ(send(b, "GET", "/r/pay-db-01/R-7F3K9Q/approve").status, 405);
    EXPECT_EQ(send(b, "POST", "/history").status, 405);
    EXPECT_EQ(send(b, "POST", "/healthz").status, 405);
}

TEST_F(WebUiTest, PagesRedirectToSignInWithoutASession) {
    Browser b;
    const auto home = send(b, "GET", "/");
    EXPECT_EQ(home.status, 303);
    EXPECT_EQ(header_of(home, "Location"), "/login?return_to=%2F");
    const auto detail = send(b, "GET", "/r/pay-db-01/R-7F3K9Q");
    EXPECT_EQ(header_of(detail, "Location"), "/login?return_to=%2Fr%2Fpay-db-01%2FR-7F3K9Q");
    Browser forged;
    forged.cookies[std::string(browser::k_session_cookie)] = browser::random_token();
    EXPECT_EQ(send(forged, "GET", "/history").status, 303);
}

TEST_F(WebUiTest, LoginBindsTheStateToThisBrowserAndKeepsOnlyLocalReturnPaths) {
    Browser b;
    const auto login = send(b, "GET", "/login", {{"return_to", "//evil.example.com/"}});
    EXPECT_EQ(login.status, 303);
    EXPECT_EQ(m_idp.last_return_to, "/");
    const std::string state = b.cookies[std::string(browser::k_login_cookie)];
    EXPECT_EQ(header_of(login, "Location"), "https://idp.example.test/authorize?client_id=jitgate&state=" + state);
    ASSERT_EQ(set_cookies(login).size(), 1u);
    EXPECT_EQ(set_cookies(login)[0],
              "__Host-jitgate_login=" + state + "; Secure; HttpOnly; SameSite=Lax; Path=/; Max-Age=600");
    send(b, "GET", "/login", {{"return_to", "/r/pay-db-01/R-7F3K9Q"}});
    EXPECT_EQ(m_idp.last_return_to, "/r/pay-db-01/R-7F3K9Q");
}

TEST_F(WebUiTest, AnUnreachableIdpIsAFailedStartNotADatabaseError) {
    m_idp.unreachable = true;
    Browser b;
    const auto login = send(b, "GET", "/login", {{"return_to", "/"}});
    EXPECT_EQ(login.status, 502);
    EXPECT_NE(login.body.find("cannot fetch the discovery document"), std::string::npos);
    EXPECT_TRUE(b.cookies.empty());
}

TEST_F(WebUiTest, CallbackMakesASessionStoredOnlyAsItsHash) {
    Browser b;
    const auto done = sign_in(b, "/r/pay-db-01/R-7F3K9Q");
    EXPECT_EQ(done.status, 303);
    EXPECT_EQ(header_of(done, "Location"), "/r/pay-db-01/R-7F3K9Q");
    const std::string token = b.cookies[std::string(browser::k_session_cookie)];
    ASSERT_TRUE(browser::is_token(token));
    EXPECT_EQ(b.cookies.count(std::string(browser::k_login_cookie)), 0u) << "the login cookie is cleared";
    bool attributes = false;
    for (const auto& c : set_cookies(done))
        if (c == "__Host-jitgate_session=" + token + "; Secure; HttpOnly; SameSite=Lax; Path=/; Max-Age=28800")
            attributes = true;
    EXPECT_TRUE(attributes);

    const auto session = m_store->find_session(browser::sha256_hex(token), m_now);
    ASSERT_TRUE(session.has_value());
    EXPECT_EQ(session->unix_user, "bob");
    EXPECT_EQ(session->identity, "https://idp.example.test/ sub-bob");
    EXPECT_EQ(session->expires_at, m_now + 8 * 3600);
    EXPECT_FALSE(m_store->find_session(token, m_now).has_value()) << "the raw token is never a key";

    const auto events = sign_in_events("signin.succeeded");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].actor, "bob");
    EXPECT_EQ(events[0].source_address, "192.0.2.10");

    const auto home = send(b, "GET", "/");
    EXPECT_EQ(home.status, 200);
    EXPECT_NE(home.body.find("Bob Builder"), std::string::npos);
}

TEST_F(WebUiTest, CallbackIsOneUse) {
    Browser b;
    send(b, "GET", "/login", {{"return_to", "/"}});
    const std::string state = b.cookies[std::string(browser::k_login_cookie)];
    Browser replay = b;
    EXPECT_EQ(send(b, "GET", "/oidc/callback", {{"code", "good"}, {"state", state}}).status, 303);
    const auto again = send(replay, "GET", "/oidc/callback", {{"code", "good"}, {"state", state}});
    EXPECT_EQ(again.status, 400);
    EXPECT_EQ(replay.cookies.count(std::string(browser::k_session_cookie)), 0u);
    EXPECT_EQ(sign_in_events("signin.failed").size(), 1u);
}

TEST_F(WebUiTest, CallbackFromAnotherBrowserFailsAndLeavesTheStateUsable) {
    Browser victim_of_login_csrf;
    Browser starter;
    send(starter, "GET", "/login", {{"return_to", "/"}});
    const std::string state = starter.cookies[std::string(browser::k_login_cookie)];
    const auto foreign = send(victim_of_login_csrf, "GET", "/oidc/callback", {{"code", "good"}, {"state", state}});
    EXPECT_EQ(foreign.status, 400);
    EXPECT_EQ(victim_of_login_csrf.cookies.count(std::string(browser::k_session_cookie)), 0u);
    EXPECT_EQ(sign_in_events("signin.failed").size(), 1u);
    EXPECT_EQ(send(starter, "GET", "/oidc/callback", {{"code", "good"}, {"state", state}}).status, 303);
}

TEST_F(WebUiTest, IdpRefusalsAreFailedSignIns) {
    Browser b;
    send(b, "GET", "/login", {{"return_to", "/"}});
    std::string state = b.cookies[std::string(browser::k_login_cookie)];
    const auto refused = send(b, "GET", "/oidc/callback",
                              {{"error", "access_denied"}, {"error_description", "<b>no</b>"}, {"state", state}});
    EXPECT_EQ(refused.status, 401);
    EXPECT_NE(refused.body.find("access_denied"), std::string::npos);
    EXPECT_NE(refused.body.find("&lt;b&gt;no&lt;/b&gt;"), std::string::npos);

    send(b, "GET", "/login", {{"return_to", "/"}});
    state = b.cookies[std::string(browser::k_login_cookie)];
    const auto bad_code = send(b, "GET", "/oidc/callback", {{"code", "<bad>"}, {"state", state}});
    EXPECT_EQ(bad_code.status, 401);
    EXPECT_NE(bad_code.body.find("refused the code &lt;bad&gt;"), std::string::npos);
    EXPECT_EQ(b.cookies.count(std::string(browser::k_session_cookie)), 0u);

    m_idp.next.username = "";
    send(b, "GET", "/login", {{"return_to", "/"}});
    state = b.cookies[std::string(browser::k_login_cookie)];
    EXPECT_EQ(send(b, "GET", "/oidc/callback", {{"code", "good"}, {"state", state}}).status, 401);
    EXPECT_EQ(b.cookies.count(std::string(browser::k_session_cookie)), 0u);
    EXPECT_EQ(sign_in_events("signin.failed").size(), 3u);
    EXPECT_EQ(sign_in_events("signin.succeeded").size(), 0u);
}

TEST_F(WebUiTest, EverySignInMakesANewToken) {
    Browser b;
    sign_in(b);
    const std::string first = b.cookies[std::string(browser::k_session_cookie)];
    sign_in(b);
    const std::string second = b.cookies[std::string(browser::k_session_cookie)];
    EXPECT_NE(first, second);
    EXPECT_FALSE(m_store->find_session(browser::sha256_hex(first), m_now).has_value()) << "the old session ended";
    EXPECT_TRUE(m_store->find_session(browser::sha256_hex(second), m_now).has_value());
}

TEST_F(WebUiTest, ApproveWithTheCsrfTokenGoesThroughTheService) {
    file_request("alice");
    Browser b;
    sign_in(b);
    const std::string csrf = csrf_of(b);
    const auto detail = send(b, "GET", "/r/pay-db-01/R-7F3K9Q");
    EXPECT_EQ(detail.status, 200);
    EXPECT_NE(detail.body.find("value=\"" + csrf + "\""), std::string::npos);
    EXPECT_NE(detail.body.find("/r/pay-db-01/R-7F3K9Q/approve"), std::string::npos);

    const auto approved = send(b, "POST", "/r/pay-db-01/R-7F3K9Q/approve", {}, "comment=fine+by+me&csrf=" + csrf,
                               {{"origin", k_origin}, {"sec-fetch-site", "same-origin"}});
    EXPECT_EQ(approved.status, 200);
    const store::Request r = stored();
    EXPECT_EQ(r.status, store::Status::approved);
    ASSERT_EQ(r.approvals.size(), 1u);
    EXPECT_EQ(r.approvals[0].approver, "bob");
    EXPECT_EQ(r.approvals[0].comment, "fine by me");
    EXPECT_EQ(r.approvals[0].via, "web");
    EXPECT_EQ(r.approvals[0].source_address, "192.0.2.10");

    // The grant passes every check the host makes, with the claims the request asked for.
    jitgate::grant_token::KeyRing ring;
    ring.add_pem("k-test", signing_key_for_the_run().public_key_pem(), "the run's key");
    jitgate::grant_token::Expected want;
    want.request_id = "R-7F3K9Q";
    want.nonce = "q1xJr0b3c8Rk6fYgZ0HkK5P4n2mW9sVtLqE1dA7uC3o";
    want.host = "pay-db-01";
    want.user = "alice";
    want.kind = "sudo";
    want.scope = "command";
    want.cmd_sha256 = "7b9c9c6941391da209129e4c89d8a4bb2665a33870a965fafa307678db3d732b";
    want.issuer = "Example";
    want.now_unix = m_now;
    const jitgate::grant_token::Verdict verdict = jitgate::grant_token::verify(r.grant, ring, want);
    ASSERT_TRUE(verdict.ok) << verdict.reason;
    EXPECT_EQ(verdict.claims.approvers, std::vector<std::string>{"bob"});
    EXPECT_EQ(verdict.claims.jti, r.grant_id);
    EXPECT_EQ(verdict.claims.nbf, m_now);
    EXPECT_EQ(verdict.claims.exp, m_now + 900); // ttl_s, under the default hosts.max_ttl
}

// Revoking a grant (docs/server.md "Revoking a grant"): a POST with the session's CSRF token,
// only by someone who could have approved the request, stored once with who, where and why.
// Who may revoke is judged whatever the request's status: a revocation sent by someone outside
// its approver groups while it is pending is refused as such (403), not passed on to the store,
// where it would succeed if another replica approved the request in between.
TEST_F(WebUiTest, AnOutsidersRevocationOfAPendingRequestIsRefusedNotDeferred) {
    file_request("alice");
    const http::Fields headers{{"origin", k_origin}, {"sec-fetch-site", "same-origin"}};
    Browser alice;
    m_idp.next = {"https://idp.example.test/", "sub-alice", "alice", "Alice", {}};
    sign_in(alice);
    EXPECT_EQ(
        send(alice, "POST", "/r/pay-db-01/R-7F3K9Q/revoke", {}, "comment=x&csrf=" + csrf_of(alice), headers).status,
        403);
    service::Approver outsider{"https://idp.example.test/ sub-eve", "eve", "Eve", {"ops"}};
    EXPECT_EQ(m_service->revoke(outsider, "pay-db-01", "R-7F3K9Q", "x", "192.0.2.10", "web").status,
              service::ActionStatus::forbidden);
    EXPECT_FALSE(m_store->find_revocation("pay-db-01", "R-7F3K9Q"));
}

TEST_F(WebUiTest, AnApproverRevokesTheGrantThroughThePageAndNobodyElseCan) {
    file_request("alice");
    const http::Fields headers{{"origin", k_origin}, {"sec-fetch-site", "same-origin"}};
    const std::string revoke_path = "/r/pay-db-01/R-7F3K9Q/revoke";
    Browser bob;
    sign_in(bob);
    const std::string csrf = csrf_of(bob);
    // Pending: no form, and a revocation is refused (nothing to revoke).
    EXPECT_EQ(send(bob, "GET", "/r/pay-db-01/R-7F3K9Q").body.find(revoke_path), std::string::npos);
    EXPECT_EQ(send(bob, "POST", revoke_path, {}, "comment=x&csrf=" + csrf, headers).status, 409);
    ASSERT_EQ(send(bob, "POST", "/r/pay-db-01/R-7F3K9Q/approve", {}, "comment=ok&csrf=" + csrf, headers).status, 200);
    ASSERT_EQ(stored().status, store::Status::approved);
    EXPECT_NE(send(bob, "GET", "/r/pay-db-01/R-7F3K9Q").body.find(revoke_path), std::string::npos);

    // Without the token, or from another origin: 403, nothing stored.
    EXPECT_EQ(send(bob, "POST", revoke_path, {}, "comment=x", headers).status, 403);
    EXPECT_EQ(
        send(bob, "POST", revoke_path, {}, "comment=x&csrf=" + csrf, {{"origin", "https://evil.example.com"}}).status,
        403);
    // Someone of another group does not even see the request; the requester (no approver
    // group) sees it but may not revoke it: refused and recorded.
    Browser eve;
    m_idp.next = {"https://idp.example.test/", "sub-eve", "eve", "Eve", {"ops"}};
    sign_in(eve);
    EXPECT_EQ(send(eve, "POST", revoke_path, {}, "comment=x&csrf=" + csrf_of(eve), headers).status, 404);
    Browser alice;
    m_idp.next = {"https://idp.example.test/", "sub-alice", "alice", "Alice", {}};
    sign_in(alice);
    EXPECT_EQ(send(alice, "GET", "/r/pay-db-01/R-7F3K9Q").body.find(revoke_path), std::string::npos);
    EXPECT_EQ(send(alice, "POST", revoke_path, {}, "comment=x&csrf=" + csrf_of(alice), headers).status, 403);
    EXPECT_FALSE(m_store->find_revocation("pay-db-01", "R-7F3K9Q"));
    bool refused_recorded = false;
    for (const store::Event& e : m_store->events("pay-db-01", "R-7F3K9Q"))
        refused_recorded = refused_recorded || (e.type == "revocation.refused" && e.actor == "alice");
    EXPECT_TRUE(refused_recorded);
    // Refused again within the minute: refused, but recorded once (the count carried by the next).
    EXPECT_EQ(send(alice, "POST", revoke_path, {}, "comment=x&csrf=" + csrf_of(alice), headers).status, 403);
    EXPECT_EQ(send(alice, "POST", revoke_path, {}, "comment=x&csrf=" + csrf_of(alice), headers).status, 403);
    int refused_events = 0;
    for (const store::Event& e : m_store->events("pay-db-01", "R-7F3K9Q"))
        refused_events += e.type == "revocation.refused" ? 1 : 0;
    EXPECT_EQ(refused_events, 1);

    // bob revokes: stored with who, from where, via the web, and why; once.
    const auto revoked = send(bob, "POST", revoke_path, {}, "comment=incident+closed&csrf=" + csrf, headers);
    EXPECT_EQ(revoked.status, 200);
    EXPECT_NE(revoked.body.find("revoked grant " + stored().grant_id), std::string::npos) << revoked.body;
    const auto r = m_store->find_revocation("pay-db-01", "R-7F3K9Q");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->revoked_by, "bob");
    EXPECT_EQ(r->identity, "https://idp.example.test/ sub-bob");
    EXPECT_EQ(r->via, "web");
    EXPECT_EQ(r->reason, "incident closed");
    EXPECT_EQ(r->source_address, "192.0.2.10");
    EXPECT_EQ(r->grant_id, stored().grant_id);
    const auto again = send(bob, "POST", revoke_path, {}, "comment=again&csrf=" + csrf, headers);
    EXPECT_EQ(again.status, 200);
    EXPECT_NE(again.body.find("revoked already"), std::string::npos);
    int revoked_events = 0;
    for (const store::Event& e : m_store->events("pay-db-01", "R-7F3K9Q"))
        revoked_events += e.type == "grant.revoked" ? 1 : 0;
    EXPECT_EQ(revoked_events, 1);
    const auto page = send(bob, "GET", "/r/pay-db-01/R-7F3K9Q").body;
    EXPECT_NE(page.find("<strong>revoked</strong>"), std::string::npos);
    EXPECT_EQ(page.find(revoke_path), std::string::npos) << "no form once revoked";

    // The host that has not fetched the grant yet is told "cancelled" (revoked), without the grant.
    const auto status = nlohmann::json::parse(m_service->status_body(stored()));
    EXPECT_EQ(status["status"], "cancelled");
    EXPECT_EQ(status["revoked"], true);
    EXPECT_FALSE(status.contains("grant"));
    EXPECT_EQ(status["revoked_by"], "bob");
    // The host's feed (§12): the revocation, with the newest seq as the cursor.
    const std::vector<std::string> hosts{"pay-db-01"};
    auto feed = nlohmann::json::parse(m_service->revocations_answer(hosts, 0, false).value());
    ASSERT_EQ(feed["revocations"].size(), 1u);
    EXPECT_EQ(feed["cursor"], r->seq);
    EXPECT_FALSE(m_service->revocations_answer(hosts, r->seq, false)) << "nothing new: the poll waits";
    // A cursor ahead of the database (restored from a backup): answered at once, read from 0.
    const auto ahead = m_service->revocations_answer(hosts, r->seq + 1000, false);
    ASSERT_TRUE(ahead);
    feed = nlohmann::json::parse(*ahead);
    EXPECT_EQ(feed["cursor"], r->seq);
    ASSERT_EQ(feed["revocations"].size(), 1u);
    EXPECT_EQ(feed["revocations"][0]["request_id"], "R-7F3K9Q");
}

// A revocation's reason is one line of text: control characters are refused with a clear error.
TEST_F(WebUiTest, ARevocationReasonWithControlCharactersIsRefused) {
    file_request("alice");
    const http::Fields headers{{"origin", k_origin}, {"sec-fetch-site", "same-origin"}};
    Browser bob;
    sign_in(bob);
    const std::string csrf = csrf_of(bob);
    ASSERT_EQ(send(bob, "POST", "/r/pay-db-01/R-7F3K9Q/approve", {}, "comment=ok&csrf=" + csrf, headers).status, 200);
    const auto refused =
        send(bob, "POST", "/r/pay-db-01/R-7F3K9Q/revoke", {}, "comment=a%1B%5B2Jb&csrf=" + csrf, headers);
    EXPECT_EQ(refused.status, 400);
    EXPECT_NE(refused.body.find("control characters"), std::string::npos) << refused.body;
    EXPECT_FALSE(m_store->find_revocation("pay-db-01", "R-7F3K9Q"));
}

TEST_F(WebUiTest, PostWithoutAValidCsrfTokenIs403AndChangesNothing) {
    file_request("alice");
    Browser b;
    sign_in(b);
    Browser other;
    sign_in(other);
    const std::string others_csrf = csrf_of(other);
    for (const std::string& body : {std::string("comment=x"), std::string("comment=x&csrf="),
                                    std::string("comment=x&csrf=wrong"), "comment=x&csrf=" + others_csrf}) {
        SCOPED_TRACE(body);
        EXPECT_EQ(send(b, "POST", "/r/pay-db-01/R-7F3K9Q/approve", {}, body).status, 403);
        EXPECT_EQ(send(b, "POST", "/r/pay-db-01/R-7F3K9Q/deny", {}, body).status, 403);
        EXPECT_EQ(send(b, "POST", "/logout", {}, body).status, 403);
    }
    const store::Request r = stored();
    EXPECT_EQ(r.status, store::Status::pending);
    EXPECT_TRUE(r.approvals.empty());
    EXPECT_EQ(send(b, "GET", "/").status, 200) << "still signed in";
}

TEST_F(WebUiTest, PostFromAnotherOriginIs403AndChangesNothing) {
    file_request("alice");
    Browser b;
    sign_in(b);
    const std::string body = "comment=x&csrf=" + csrf_of(b);
    EXPECT_EQ(
        send(b, "POST", "/r/pay-db-01/R-7F3K9Q/approve", {}, body, {{"origin", "https://evil.example.com"}}).status,
        403);
    EXPECT_EQ(send(b, "POST", "/r/pay-db-01/R-7F3K9Q/approve", {}, body, {{"origin", "null"}}).status, 403);
    EXPECT_EQ(send(b, "POST", "/r/pay-db-01/R-7F3K9Q/approve", {}, body, {{"sec-fetch-site", "cross-site"}}).status,
              403);
    EXPECT_EQ(stored().status, store::Status::pending);
    EXPECT_TRUE(stored().approvals.empty());
}

TEST_F(WebUiTest, PostWithoutASessionIs403AndChangesNothing) {
    file_request("alice");
    Browser b;
    EXPECT_EQ(send(b, "POST", "/r/pay-db-01/R-7F3K9Q/approve", {}, "comment=x&csrf=x").status, 403);
    EXPECT_EQ(stored().status, store::Status::pending);
}

TEST_F(WebUiTest, ADenialNeedsAComment) {
    file_request("alice");
    Browser b;
    sign_in(b);
    const std::string csrf = csrf_of(b);
    const auto empty = send(b, "POST", "/r/pay-db-01/R-7F3K9Q/deny", {}, "comment=&csrf=" + csrf);
    EXPECT_EQ(empty.status, 400);
    EXPECT_EQ(stored().status, store::Status::pending);
    const auto denied = send(b, "POST", "/r/pay-db-01/R-7F3K9Q/deny", {}, "comment=not+now&csrf=" + csrf);
    EXPECT_EQ(denied.status, 200);
    const store::Request r = stored();
    EXPECT_EQ(r.status, store::Status::denied);
    EXPECT_EQ(r.decided_by, "bob");
    EXPECT_EQ(r.decision_reason, "not now");
    const auto history = send(b, "GET", "/history");
    EXPECT_EQ(history.status, 200);
    EXPECT_NE(history.body.find("R-7F3K9Q"), std::string::npos);
}

TEST_F(WebUiTest, NobodyApprovesTheirOwnRequest) {
    file_request("bob");
    Browser b;
    sign_in(b); // as bob
    const auto detail = send(b, "GET", "/r/pay-db-01/R-7F3K9Q");
    EXPECT_EQ(detail.body.find("/approve\""), std::string::npos);
    EXPECT_NE(detail.body.find("You cannot decide this request"), std::string::npos);
    const auto refused = send(b, "POST", "/r/pay-db-01/R-7F3K9Q/approve", {}, "comment=&csrf=" + csrf_of(b));
    EXPECT_EQ(refused.status, 403);
    EXPECT_EQ(stored().status, store::Status::pending);
}

// The bug: the page hid Deny whenever Approve was not allowed, so a request whose ticket check
// had not passed could not be denied through the page, though the service accepts the denial.
TEST_F(WebUiTest, ATicketCheckThatHasNotPassedBlocksApprovalButNotDenial) {
    file_request("alice");
    m_store->set_ticket_check("pay-db-01", "R-7F3K9Q",
                              R"({"required": true, "ok": false, "why": "CHG0001234 is not in implementation"})");
    Browser b;
    sign_in(b); // as bob
    const auto detail = send(b, "GET", "/r/pay-db-01/R-7F3K9Q");
    EXPECT_EQ(detail.status, 200);
    EXPECT_EQ(detail.body.find("/approve\""), std::string::npos);
    EXPECT_NE(detail.body.find("action=\"/r/pay-db-01/R-7F3K9Q/deny\""), std::string::npos);
    EXPECT_NE(detail.body.find("You cannot approve this request: the ticket check has not passed: CHG0001234 is not in "
                               "implementation"),
              std::string::npos);
    const auto list = send(b, "GET", "/");
    EXPECT_NE(list.body.find("<strong>you may deny</strong>"), std::string::npos);

    const std::string csrf = csrf_of(b);
    EXPECT_EQ(send(b, "POST", "/r/pay-db-01/R-7F3K9Q/approve", {}, "comment=&csrf=" + csrf).status, 403);
    EXPECT_EQ(stored().status, store::Status::pending);
    EXPECT_EQ(send(b, "POST", "/r/pay-db-01/R-7F3K9Q/deny", {}, "comment=no+ticket&csrf=" + csrf).status, 200);
    EXPECT_EQ(stored().status, store::Status::denied);
    EXPECT_EQ(stored().decided_by, "bob");
}

// A change freeze that begins while a request waits: it can no longer be approved (the policy in
// force at approval counts, not the one at filing), but it can be denied; once the freeze is
// over it can be approved again.
TEST_F(WebUiTest, AFreezeThatBeganWhileARequestWaitedBlocksApprovalButNotDenial) {
    add_freeze(k_start + 600, k_start + 1200, "2023-11-14T22:23", "2023-11-14T22:33");
    file_request("alice");
    m_now = k_start + 900;
    Browser b;
    sign_in(b); // as bob
    const auto detail = send(b, "GET", "/r/pay-db-01/R-7F3K9Q");
    EXPECT_NE(detail.body.find("You cannot approve this request: refused now by policy &#39;freeze&#39; (window "
                               "q4-freeze (2023-11-14T22:23 to 2023-11-14T22:33 Etc/UTC))"),
              std::string::npos)
        << detail.body;
    const std::string csrf = csrf_of(b);
    EXPECT_EQ(send(b, "POST", "/r/pay-db-01/R-7F3K9Q/approve", {}, "comment=&csrf=" + csrf).status, 403);
    EXPECT_EQ(stored().status, store::Status::pending);

    m_now = k_start + 1200; // the end is exclusive: over
    EXPECT_EQ(send(b, "POST", "/r/pay-db-01/R-7F3K9Q/approve", {}, "comment=&csrf=" + csrf_of(b)).status, 200);
    EXPECT_EQ(stored().status, store::Status::approved);
}

TEST_F(WebUiTest, AFreezeDoesNotStopADenial) {
    add_freeze(k_start - 60, k_start + 3600);
    file_request("alice");
    Browser b;
    sign_in(b);
    EXPECT_EQ(send(b, "POST", "/r/pay-db-01/R-7F3K9Q/deny", {}, "comment=frozen&csrf=" + csrf_of(b)).status, 200);
    EXPECT_EQ(stored().status, store::Status::denied);
}

// Someone who approved (one of two needed) may still deny: the page offers exactly that.
TEST_F(WebUiTest, AnApproverWhoApprovedMayStillDenyThroughThePage) {
    file_request("alice", 2);
    Browser b;
    sign_in(b); // as bob
    const std::string csrf = csrf_of(b);
    EXPECT_EQ(send(b, "POST", "/r/pay-db-01/R-7F3K9Q/approve", {}, "comment=&csrf=" + csrf).status, 200);
    const auto detail = send(b, "GET", "/r/pay-db-01/R-7F3K9Q");
    EXPECT_EQ(detail.body.find("/approve\""), std::string::npos);
    EXPECT_NE(detail.body.find("You cannot approve this request: you have already approved this request"),
              std::string::npos);
    EXPECT_NE(detail.body.find("action=\"/r/pay-db-01/R-7F3K9Q/deny\""), std::string::npos);
    EXPECT_EQ(send(b, "POST", "/r/pay-db-01/R-7F3K9Q/deny", {}, "comment=changed+my+mind&csrf=" + csrf).status, 200);
    EXPECT_EQ(stored().status, store::Status::denied);
}

TEST_F(WebUiTest, HistoryTakesOnlyAWholeNumberBefore) {
    Browser b;
    sign_in(b);
    EXPECT_EQ(send(b, "GET", "/history", {{"before", "1700000000"}}).status, 200);
    EXPECT_EQ(send(b, "GET", "/history", {{"before", "-1"}}).status, 400);
    EXPECT_EQ(send(b, "GET", "/history", {{"before", "12abc"}}).status, 400);
    EXPECT_EQ(send(b, "GET", "/history", {{"before", ""}}).status, 400);
}

TEST_F(WebUiTest, AnUnknownRequestIs404) {
    Browser b;
    sign_in(b);
    EXPECT_EQ(send(b, "GET", "/r/pay-db-01/R-NOPE1").status, 404);
    EXPECT_EQ(send(b, "POST", "/r/pay-db-01/R-NOPE1/approve", {}, "comment=&csrf=" + csrf_of(b)).status, 404);
}

TEST_F(WebUiTest, AnExpiredSessionSendsBackToSignIn) {
    Browser b;
    sign_in(b);
    EXPECT_EQ(send(b, "GET", "/").status, 200);
    m_now += 8 * 3600;
    const auto expired = send(b, "GET", "/");
    EXPECT_EQ(expired.status, 303);
    EXPECT_EQ(header_of(expired, "Location"), "/login?return_to=%2F");
}

TEST_F(WebUiTest, SignOutEndsTheSession) {
    Browser b;
    sign_in(b);
    const std::string token = b.cookies[std::string(browser::k_session_cookie)];
    const auto out = send(b, "POST", "/logout", {}, "csrf=" + csrf_of(b));
    EXPECT_EQ(out.status, 200);
    EXPECT_EQ(b.cookies.count(std::string(browser::k_session_cookie)), 0u);
    EXPECT_FALSE(m_store->find_session(browser::sha256_hex(token), m_now).has_value());
    Browser stolen;
    stolen.cookies[std::string(browser::k_session_cookie)] = token;
    EXPECT_EQ(send(stolen, "GET", "/").status, 303);
}

// --- the limits on the sign-in routes (web.sign_in_per_minute, web.sign_in_burst,
// web.max_sign_ins_in_progress) and the purge ---

TEST_F(WebUiTest, ABurstOfSignInsFromOneAddressIs429AfterTheBurstAndStoresNothing) {
    Browser b;
    for (int i = 0; i < 10; ++i) EXPECT_EQ(send(b, "GET", "/login").status, 303) << i; // the default burst
    EXPECT_EQ(m_store->count_logins(m_now), 10u);
    const auto refused = send(b, "GET", "/login");
    EXPECT_EQ(refused.status, 429);
    EXPECT_EQ(header_of(refused, "Retry-After"), "3"); // 20 a minute: one every 3 s
    EXPECT_NE(refused.body.find("Too many sign-in attempts came from your network address. Wait 3 seconds"),
              std::string::npos);
    EXPECT_EQ(m_idp.begun, 10) << "a refused sign-in does not reach the IdP";
    EXPECT_EQ(m_store->count_logins(m_now), 10u) << "a refused sign-in stores no row";
    EXPECT_EQ(send(b, "GET", "/login").status, 429);
    EXPECT_EQ(send(b, "GET", "/oidc/callback", {{"state", "x"}, {"code", "y"}}).status, 429)
        << "the callback spends from the same bucket";

    // Another address is not held up by this one.
    m_peer = "198.51.100.7";
    EXPECT_EQ(send(b, "GET", "/login").status, 303);

    // After the window the first address works again: one token every 3 s, the burst after 30 s.
    m_peer = "192.0.2.10";
    m_now += 2;
    EXPECT_EQ(send(b, "GET", "/login").status, 429);
    m_now += 1;
    EXPECT_EQ(send(b, "GET", "/login").status, 303);
    EXPECT_EQ(send(b, "GET", "/login").status, 429);
    m_now += 30;
    for (int i = 0; i < 10; ++i) EXPECT_EQ(send(b, "GET", "/login").status, 303) << i;
    EXPECT_EQ(send(b, "GET", "/login").status, 429);
}

TEST_F(WebUiTest, RateLimitedSignInsAreLoggedAtMostOnceAMinute) {
    Browser b;
    for (int i = 0; i < 10; ++i) send(b, "GET", "/login");
    for (int i = 0; i < 5; ++i) EXPECT_EQ(send(b, "GET", "/login").status, 429);
    ASSERT_EQ(m_rate_limited_lines.size(), 1u);
    EXPECT_EQ(m_rate_limited_lines[0].type, "signin.rate_limited");
    EXPECT_EQ(m_rate_limited_lines[0].source_address, "192.0.2.10");
    EXPECT_NE(m_rate_limited_lines[0].detail.find("too many sign-in requests from this address"), std::string::npos);
    m_now += 60;
    for (int i = 0; i < 10; ++i) send(b, "GET", "/login");
    EXPECT_EQ(send(b, "GET", "/login").status, 429);
    ASSERT_EQ(m_rate_limited_lines.size(), 2u);
    EXPECT_NE(m_rate_limited_lines[1].detail.find("\"refused_since_last_line\":4"), std::string::npos)
        << m_rate_limited_lines[1].detail;
    EXPECT_TRUE(sign_in_events("signin.rate_limited").empty()) << "never stored: that would be the growth";
}

TEST_F(WebUiTest, TheLimitsAreTakenFromTheConfig) {
    m_config.web.sign_in_per_minute = 60;
    m_config.web.sign_in_burst = 2;
    rebuild_ui();
    Browser b;
    EXPECT_EQ(send(b, "GET", "/login").status, 303);
    EXPECT_EQ(send(b, "GET", "/login").status, 303);
    const auto refused = send(b, "GET", "/login");
    EXPECT_EQ(refused.status, 429);
    EXPECT_EQ(header_of(refused, "Retry-After"), "1");
    m_now += 1;
    EXPECT_EQ(send(b, "GET", "/login").status, 303);
}

// At web.max_sign_ins_in_progress a new sign-in is never refused: the oldest one in progress is
// evicted, so the cap bounds the table but no number of addresses can lock approvers out. The
// evicted browser's callback says the sign-in expired; the pressure is logged once a minute.
TEST_F(WebUiTest, AtTheCapOfSignInsInProgressTheOldestIsEvictedNotTheNewOneRefused) {
    m_config.web.max_sign_ins_in_progress = 3;
    rebuild_ui();
    Browser oldest;
    m_peer = "203.0.113.1";
    EXPECT_EQ(send(oldest, "GET", "/login").status, 303);
    m_now += 1;
    std::vector<Browser> others(2);
    for (int i = 0; i < 2; ++i) {
        m_peer = "198.51.10" + std::to_string(i) + ".1";
        EXPECT_EQ(send(others[i], "GET", "/login").status, 303);
    }
    EXPECT_EQ(m_store->count_logins(m_now), 3u);
    EXPECT_TRUE(m_rate_limited_lines.empty());
    m_now += 1;
    Browser newest;
    m_peer = "192.0.2.99";
    EXPECT_EQ(send(newest, "GET", "/login").status, 303) << "a full table does not refuse a new sign-in";
    EXPECT_EQ(m_store->count_logins(m_now), 3u) << "the table stays at the cap";
    EXPECT_EQ(m_idp.begun, 4);
    ASSERT_EQ(m_rate_limited_lines.size(), 1u);
    EXPECT_EQ(m_rate_limited_lines[0].type, "signin.evicted");
    EXPECT_NE(m_rate_limited_lines[0].detail.find("\"evicted_since_last_line\":1"), std::string::npos)
        << m_rate_limited_lines[0].detail;

    // The evicted sign-in comes back from the IdP: a clear page to start again.
    m_peer = "203.0.113.1";
    const std::string evicted_state = oldest.cookies[std::string(browser::k_login_cookie)];
    const auto expired = send(oldest, "GET", "/oidc/callback", {{"code", "good"}, {"state", evicted_state}});
    EXPECT_EQ(expired.status, 400);
    EXPECT_NE(expired.body.find("This sign-in has expired"), std::string::npos) << expired.body;
    EXPECT_NE(expired.body.find("Start again"), std::string::npos);
    EXPECT_EQ(send(oldest, "GET", "/").status, 303) << "not signed in";

    // The others still finish.
    m_peer = "192.0.2.99";
    const std::string state = newest.cookies[std::string(browser::k_login_cookie)];
    EXPECT_EQ(send(newest, "GET", "/oidc/callback", {{"code", "good"}, {"state", state}}).status, 303);

    // More evictions within the minute are counted, not logged; the next line carries the count.
    for (int i = 0; i < 5; ++i) {
        Browser b;
        m_peer = "192.0.3" + std::to_string(i) + ".1";
        EXPECT_EQ(send(b, "GET", "/login").status, 303);
    }
    EXPECT_EQ(m_rate_limited_lines.size(), 1u);
    m_now += 60;
    Browser late;
    m_peer = "192.0.40.1";
    EXPECT_EQ(send(late, "GET", "/login").status, 303);
    ASSERT_EQ(m_rate_limited_lines.size(), 2u);
    EXPECT_NE(m_rate_limited_lines[1].detail.find("\"evicted_since_last_line\":5"), std::string::npos)
        << m_rate_limited_lines[1].detail; // 4 of the 5 (one took newest's freed place) and late's
    EXPECT_EQ(m_store->count_logins(m_now), 3u);
}

// A sign-in refused because the worker's queue for the IdP is full (503) gives its address's
// token back: only the sign-in limits spend tokens.
TEST_F(WebUiTest, ASignInRefusedBecauseTheIdpQueueIsFullSpendsNoToken) {
    m_config.web.sign_in_burst = 100;
    rebuild_ui();
    std::mutex posted_mutex;
    std::vector<std::function<void()>> posted; // finished IdP calls, never run back on a loop here
    m_ui->offload_sign_in([&](std::function<void()> f) {
        const std::lock_guard<std::mutex> lock(posted_mutex);
        posted.push_back(std::move(f));
    });
    const auto start = [&] {
        http::Request request;
        request.method = "GET";
        request.path = "/login";
        request.peer_address = m_peer;
        m_ui->handle(std::move(request), http::Reply{});
    };
    m_idp.close_gate();
    start();
    m_idp.wait_for_one_at_gate(); // the worker hangs at the IdP with the first one
    for (std::size_t i = 0; i < web::WebUi::k_max_waiting_sign_ins; ++i) start(); // the queue is full
    for (int i = 0; i < 20; ++i) start();                                         // 503 each: busy, not limited
    // 100 - 65 tokens are left: the 20 refusals spent none.
    int started = 0;
    for (;;) {
        Browser b;
        if (send(b, "GET", "/login").status != 303) break;
        ++started;
    }
    EXPECT_EQ(started, 35);
    m_idp.open_gate();
    m_ui.reset(); // joins the worker before `posted` goes
}

// One network (an IPv4 /24, an IPv6 /48) has a bucket of its own, 4 x the per-address one:
// its addresses or /64s cannot each take the per-address allowance.
TEST_F(WebUiTest, OneNetworkSharesABucketOfFourTimesThePerAddressAllowance) {
    int started = 0;
    for (int host = 1; host <= 10; ++host) {
        m_peer = "192.0.2." + std::to_string(host);
        for (;;) {
            Browser b;
            if (send(b, "GET", "/login").status != 303) break;
            ++started;
        }
    }
    EXPECT_EQ(started, 40) << "4 x the burst of 10 for the whole /24";
    m_peer = "192.0.3.1";
    Browser other;
    EXPECT_EQ(send(other, "GET", "/login").status, 303) << "another /24";
    started = 0;
    for (int net = 0; net < 10; ++net) {
        m_peer = "2001:db8:7:" + std::to_string(net) + "::1";
        for (;;) {
            Browser b;
            if (send(b, "GET", "/login").status != 303) break;
            ++started;
        }
    }
    EXPECT_EQ(started, 40) << "4 x the burst of 10 for the whole /48";
    m_peer = "2001:db8:8::1";
    EXPECT_EQ(send(other, "GET", "/login").status, 303) << "another /48";
}

// A request refused by the network's bucket spends nothing of its address's.
TEST_F(WebUiTest, ARequestRefusedByItsNetworkSpendsNoTokenOfItsAddress) {
    for (int host = 1; host <= 4; ++host) {
        m_peer = "192.0.2." + std::to_string(host);
        for (int i = 0; i < 10; ++i) {
            Browser b;
            ASSERT_EQ(send(b, "GET", "/login").status, 303);
        }
    }
    m_peer = "192.0.2.5";
    for (int i = 0; i < 30; ++i) {
        Browser b;
        EXPECT_EQ(send(b, "GET", "/login").status, 429) << "the /24 is spent";
    }
    // 3 s later the /24 has refilled 4 tokens (80 a minute). Had the 30 refusals spent
    // 192.0.2.5's own tokens, it would have refilled only 1 (20 a minute) by now.
    m_now += 3;
    int started = 0;
    for (;;) {
        Browser again;
        if (send(again, "GET", "/login").status != 303) break;
        ++started;
    }
    EXPECT_EQ(started, 4) << "the network's 4 tokens, the address's own untouched by the 30 refusals";
}

// Security review finding: with the default limits, one attacker holding an ordinary
// residential IPv6 /56 (here 120 of its 256 /64s), or as many IPv4 addresses, kept
// web.max_sign_ins_in_progress (10,000) full by itself, each /64 within its own per-address
// limit: 10,000 sign-ins lasting 600 s need 1,000 new ones a minute, 50 /64s at 20 a minute.
// Then no approver anywhere could start a sign-in. Now the cap evicts the oldest sign-in
// instead of refusing a new one, and the /48 (IPv4: /24) has a bucket of its own.
TEST_F(WebUiTest, OneSmallNetworkCannotLockEveryApproverOutOfSignIn) {
    // The attacker starts sign-ins without cookies, each /64 as fast as its own limit allows,
    // for 25 minutes (a sign-in lasts 600 s: the last 5 minutes are the steady state); an
    // approver tries every 30 s in those, from an address of their own, after the attacker's turn.
    int refused = 0, tries = 0;
    for (std::int64_t second = 0; second <= 1500; second += 3) {
        m_now = k_start + second;
        for (int prefix = 0; prefix < 120; ++prefix) {
            m_peer = "2001:db8:0:" + std::to_string(prefix) + "::" + std::to_string(second + 1);
            for (;;) {
                Browser attacker; // no cookies: every start is a new sign-in
                if (send(attacker, "GET", "/login").status != 303) break;
            }
        }
        if (second >= 1200 && second % 30 == 0) {
            Browser approver;
            m_peer = "198.51.100." + std::to_string(second % 250);
            ++tries;
            if (send(approver, "GET", "/login").status == 429) ++refused;
        }
    }
    EXPECT_EQ(refused, 0) << "one /56 locked every approver out of sign-in in " << refused << " of " << tries
                          << " tries (" << m_store->count_logins(m_now) << " sign-ins in progress)";
}

// Security review finding: hosts.max_pending_per_host (64) does not keep a few hosts from
// filling the approvers' queue. The pending page listed the oldest 201 pending requests of the
// whole service and only then dropped those the viewer may not see, with no further page: four
// hosts at their limit (or one certificate naming four hosts), filing for a group bob is not
// even in, pushed every newer request off bob's page, which then said "Nothing is waiting.".
// Now the page reads on past the requests bob may not see (bounded, with a link onward).
TEST_F(WebUiTest, FourHostsAtTheirPendingLimitDoNotHideOtherRequestsFromTheQueue) {
    for (int host = 0; host < 4; ++host)
        for (int i = 0; i < 64; ++i) {
            store::Request r;
            r.host = "flood-" + std::to_string(host);
            r.id = "R-F" + std::to_string(host) + "N" + std::to_string(1000 + i);
            r.body = request_body("mallory").dump();
            r.requester = "mallory";
            r.rule = "finance";
            r.approvals_needed = 1;
            r.approver_groups = {"other-approvers"};
            r.created_at = m_now;
            r.expires_at = m_now + 3600;
            store::Event filed;
            filed.at = m_now;
            filed.type = "request.filed";
            filed.host = r.host;
            filed.request_id = r.id;
            ASSERT_TRUE(m_store->create(r, filed, 64).created) << "within the per-host limit";
        }
    m_now += 1;
    file_request("alice"); // pay-db-01 R-7F3K9Q, for sox-approvers: bob's to decide
    Browser b;
    sign_in(b);
    const auto queue = send(b, "GET", "/");
    ASSERT_EQ(queue.status, 200);
    EXPECT_NE(queue.body.find("R-7F3K9Q"), std::string::npos)
        << "alice's request, which bob may decide, is not on bob's pending page"
        << (queue.body.find("Nothing is waiting.") != std::string::npos ? ", which says \"Nothing is waiting.\"" : "");
}

// The pending page reads at most k_max_scanned_per_page requests a view and links on: with
// more invisible requests ahead than that, the viewer follows "Newer pending requests" to their
// own, and a full page links to the rest.
TEST_F(WebUiTest, ThePendingPageLinksOnPastRequestsTheViewerMayNotSee) {
    const auto add = [&](const std::string& host, const std::string& id, const std::string& group) {
        store::Request r;
        r.host = host;
        r.id = id;
        r.body = request_body("mallory").dump();
        r.requester = "mallory";
        r.rule = "finance";
        r.approvals_needed = 1;
        r.approver_groups = {group};
        r.created_at = m_now;
        r.expires_at = m_now + 3600;
        store::Event filed;
        filed.at = m_now;
        filed.type = "request.filed";
        filed.host = r.host;
        filed.request_id = r.id;
        ASSERT_TRUE(m_store->create(r, filed).created);
    };
    const std::size_t invisible = web::WebUi::k_max_scanned_per_page + 50;
    for (std::size_t i = 0; i < invisible; ++i) add("flood", "R-F" + std::to_string(10000 + i), "other-approvers");
    m_now += 1;
    for (std::size_t i = 0; i <= web::WebUi::k_page_size; ++i)
        add("visible", "R-V" + std::to_string(10000 + i), "sox-approvers");
    Browser b;
    sign_in(b);
    const std::regex next_link(R"re(<a href="/\?after=(\d+)&amp;skip=(\d+)">Newer pending requests</a>)re");
    const auto count_visible = [](const std::string& body) {
        std::size_t n = 0;
        for (std::size_t at = body.find(">R-V"); at != std::string::npos; at = body.find(">R-V", at + 1)) ++n;
        return n;
    };

    const auto first = send(b, "GET", "/");
    ASSERT_EQ(first.status, 200);
    EXPECT_EQ(count_visible(first.body), 0u) << "the first view reads only the flood";
    EXPECT_EQ(first.body.find("Nothing is waiting"), std::string::npos);
    EXPECT_EQ(first.body.find("R-F"), std::string::npos) << "no request bob may not see, not even in the link";
    EXPECT_EQ(first.body.find("flood"), std::string::npos);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(first.body, m, next_link)) << first.body;

    const auto second = send(b, "GET", "/", {{"after", m[1].str()}, {"skip", m[2].str()}});
    ASSERT_EQ(second.status, 200);
    EXPECT_EQ(count_visible(second.body), web::WebUi::k_page_size);
    EXPECT_NE(second.body.find(">R-V10000<"), std::string::npos);
    ASSERT_TRUE(std::regex_search(second.body, m, next_link)) << "a full page links to the rest";

    const auto third = send(b, "GET", "/", {{"after", m[1].str()}, {"skip", m[2].str()}});
    ASSERT_EQ(third.status, 200);
    EXPECT_EQ(count_visible(third.body), 1u);
    EXPECT_NE(third.body.find(">R-V10200<"), std::string::npos);
    EXPECT_FALSE(std::regex_search(third.body, m, next_link)) << "nothing after the last";

    EXPECT_EQ(send(b, "GET", "/", {{"after", "x"}, {"skip", "0"}}).status, 400);
    EXPECT_EQ(send(b, "GET", "/", {{"after", "1"}, {"skip", "-1"}}).status, 400);
    EXPECT_EQ(send(b, "GET", "/", {{"after", "1"}}).status, 400);
}

TEST_F(WebUiTest, ThePurgeRemovesExpiredSignInsAndSessionsAndKeepsDecidedRequests) {
    file_request("alice");
    Browser b;
    sign_in(b);
    ASSERT_EQ(send(b, "POST", "/r/pay-db-01/R-7F3K9Q/deny", {}, "comment=no&csrf=" + csrf_of(b)).status, 200);
    for (int i = 0; i < 5; ++i) send(b, "GET", "/login"); // abandoned sign-ins
    const std::string token = b.cookies[std::string(browser::k_session_cookie)];
    EXPECT_EQ(m_service->purge().logins, 0u) << "nothing has expired yet";
    EXPECT_EQ(m_store->count_logins(0), 5u);

    m_now += 8 * 3600 + 1; // past the logins' and the session's expiry
    const store::Store::Purged purged = m_service->purge();
    EXPECT_EQ(purged.logins, 5u);
    EXPECT_EQ(purged.sessions, 1u);
    EXPECT_EQ(m_store->count_logins(0), 0u);
    EXPECT_FALSE(m_store->find_session(browser::sha256_hex(token), 0));
    EXPECT_EQ(stored().status, store::Status::denied) << "the approval record is kept";
    EXPECT_FALSE(m_store->events("pay-db-01", "R-7F3K9Q").empty());
}

TEST(SignInLimit, AnIpv6AddressCountsPerSlash64) {
    EXPECT_EQ(web::SignInLimit::key_of("192.0.2.1"), "192.0.2.1");
    EXPECT_EQ(web::SignInLimit::key_of("2001:db8:1:2:a:b:c:d"), "2001:db8:1:2::/64");
    EXPECT_EQ(web::SignInLimit::key_of("2001:0db8:0001:0002::ffff"), "2001:db8:1:2::/64");
    EXPECT_EQ(web::SignInLimit::key_of("::ffff:192.0.2.1"), "192.0.2.1");
    EXPECT_EQ(web::SignInLimit::key_of("not an address"), "not an address");
    web::SignInLimit limit(20, 2);
    EXPECT_EQ(limit.take("2001:db8:1:2::1", 0), 0);
    EXPECT_EQ(limit.take("2001:db8:1:2::2", 0), 0);
    EXPECT_EQ(limit.take("2001:db8:1:2::3", 0), 3) << "the same /64";
    EXPECT_EQ(limit.take("2001:db8:1:3::1", 0), 0) << "another /64";
}

TEST(SignInLimit, TheTableIsBoundedAndForgetsTheBucketUsedLongestAgo) {
    // Addresses in /24s of their own, so only the per-address buckets hold them.
    web::SignInLimit limit(1, 1, 3);
    EXPECT_EQ(limit.take("10.0.1.1", 0), 0);
    EXPECT_EQ(limit.take("10.0.2.1", 0), 0);
    EXPECT_EQ(limit.take("10.0.3.1", 0), 0);
    EXPECT_EQ(limit.take("10.0.1.1", 1), 59) << "one a minute: 59 s more";
    EXPECT_EQ(limit.take("10.0.4.1", 1), 0); // evicts 10.0.2.1, the one used longest ago
    EXPECT_EQ(limit.tracked(), 3u);
    EXPECT_EQ(limit.take("10.0.1.1", 2), 58) << "still tracked: used recently";
    EXPECT_EQ(limit.take("10.0.2.1", 2), 0) << "forgotten: a full bucket again";
    EXPECT_EQ(limit.tracked(), 3u);
    for (int i = 0; i < 1000; ++i)
        limit.take("10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".1", 3);
    EXPECT_EQ(limit.tracked(), 3u);
}

TEST(SignInLimit, ANetworkIsAnIpv4Slash24OrAnIpv6Slash48) {
    EXPECT_EQ(web::SignInLimit::network_of("192.0.2.77"), "192.0.2.0/24");
    EXPECT_EQ(web::SignInLimit::network_of("::ffff:192.0.2.77"), "192.0.2.0/24");
    EXPECT_EQ(web::SignInLimit::network_of("2001:db8:1:2:a:b:c:d"), "2001:db8:1::/48");
    EXPECT_EQ(web::SignInLimit::network_of("2001:db8:1:ffff::1"), "2001:db8:1::/48");
    EXPECT_EQ(web::SignInLimit::network_of("not an address"), "not an address");
    // Burst 1 a address, 4 for the network; a refusal by either spends nothing.
    web::SignInLimit limit(1, 1);
    for (int i = 1; i <= 4; ++i) EXPECT_EQ(limit.take("10.9.9." + std::to_string(i), 0), 0) << i;
    EXPECT_GT(limit.take("10.9.9.5", 0), 0) << "the /24 is spent";
    EXPECT_GT(limit.take("10.9.9.1", 0), 0);
    EXPECT_EQ(limit.take("10.9.10.1", 0), 0) << "another /24";
    limit.give_back("10.9.9.1");
    EXPECT_EQ(limit.take("10.9.9.1", 0), 0) << "a given-back token is the address's and the network's again";
    EXPECT_GT(limit.take("10.9.9.1", 0), 0);
}

TEST(SignInLimit, AClockThatStepsBackRefillsNothing) {
    web::SignInLimit limit(60, 1);
    EXPECT_EQ(limit.take("10.0.0.1", 100), 0);
    EXPECT_EQ(limit.take("10.0.0.1", 50), 1);
    EXPECT_EQ(limit.take("10.0.0.1", 101), 0);
}

// --- the auditors' pages and break-glass reviews ---

// A host's events with a real chain, stored as the ingest would store them.
class AuditFixture {
public:
    explicit AuditFixture(std::string host) : m_host(std::move(host)) {}
    store::AuditEvent next(const std::string& type, const std::string& user, json extra = json::object()) {
        json e{{"event_id", m_host + "-ev-" + std::to_string(++m_seq)},
               {"host", m_host},
               {"seq", m_seq},
               {"prev_hash", m_hash},
               {"time", "2026-11-24T03:05:" + std::to_string(10 + m_seq) + ".000Z"},
               {"type", type},
               {"user", user}};
        for (const auto& [k, v] : extra.items()) e[k] = v;
        e["hash"] = jitgate::audit::sha256_hex(jitgate::audit::canonical_bytes(e));
        m_hash = e["hash"].get<std::string>();
        return store::AuditEvent{e["event_id"].get<std::string>(),
                                 m_seq,
                                 m_hash,
                                 e["prev_hash"].get<std::string>(),
                                 e["time"].get<std::string>(),
                                 type,
                                 "",
                                 e.dump(),
                                 user};
    }

private:
    std::string m_host;
    std::int64_t m_seq = 0;
    std::string m_hash = jitgate::audit::k_genesis_hash;
};

class AuditPagesTest : public WebUiTest {
protected:
    void SetUp() override {
        WebUiTest::SetUp();
        m_config.audit.auditor_groups = {"sox-auditors"};
        m_config.audit.break_glass_reviewer_groups = {"security-reviewers"};
        m_config.audit.break_glass_review_within = std::chrono::hours(1);
    }

    // Stores a break-glass use by `user` on fin-db-01 and the command it ran; returns its event id.
    std::string break_glass(const std::string& user, json extra = json::object()) {
        extra["break_glass_reason"] = "payments down <script>alert(1)</script>";
        extra["command"] = "/usr/bin/systemctl";
        const store::AuditEvent glass = m_chain.next("access.break_glass", user, extra);
        const store::AuditEvent ran =
            m_chain.next("command.finished", user, {{"command", "/usr/bin/rm"}, {"argv", {"/usr/bin/rm", "<b>x"}}});
        store::IngestOptions options;
        options.break_glass_review_within_s = m_config.audit.break_glass_review_within.count();
        EXPECT_EQ(m_store->ingest("fin-db-01", {glass, ran}, m_now, options).reviews_opened, 1u);
        return glass.event_id;
    }

    void sign_in_as(Browser& b, const std::string& user, std::vector<std::string> groups) {
        m_idp.next = web::Identity{"https://idp.example.test/", "sub-" + user, user, user, std::move(groups)};
        EXPECT_EQ(sign_in(b).status, 303);
    }

    http::Response close(Browser& b, const std::string& event_id, const std::string& body) {
        return send(b, "POST", "/audit/reviews/fin-db-01/" + event_id + "/close", {}, body, {{"origin", k_origin}});
    }

    AuditFixture m_chain{"fin-db-01"};
};

TEST_F(AuditPagesTest, AnAuditorReadsTheAuditPagesAndOthersGet403) {
    const std::string id = break_glass("dave");
    Browser approver;
    sign_in_as(approver, "bob", {"sox-approvers"});
    EXPECT_EQ(send(approver, "GET", "/").body.find("href=\"/audit\""), std::string::npos) << "no Audit link";
    for (const std::string& path :
         std::vector<std::string>{"/audit", "/audit/events", "/audit/reviews", "/audit/reviews/fin-db-01/" + id}) {
        const auto refused = send(approver, "GET", path);
        EXPECT_EQ(refused.status, 403) << path;
        EXPECT_NE(refused.body.find("auditors"), std::string::npos) << path;
        EXPECT_EQ(refused.body.find("fin-db-01"), std::string::npos) << path;
    }

    Browser auditor;
    sign_in_as(auditor, "carol", {"sox-auditors"});
    const auto home = send(auditor, "GET", "/audit");
    EXPECT_EQ(home.status, 200);
    EXPECT_NE(home.body.find("href=\"/audit\""), std::string::npos) << "the frame links to Audit";
    EXPECT_NE(home.body.find("fin-db-01"), std::string::npos);
    EXPECT_NE(home.body.find("2026-11-24T03:05:12.000Z"), std::string::npos) << "the last event's time";
    const auto events = send(auditor, "GET", "/audit/events", {{"host", "fin-db-01"}, {"user", "dave"}});
    EXPECT_EQ(events.status, 200);
    EXPECT_NE(events.body.find("access.break_glass"), std::string::npos);
    EXPECT_NE(events.body.find("command.finished"), std::string::npos);
    const auto none = send(auditor, "GET", "/audit/events", {{"user", "nobody"}});
    EXPECT_NE(none.body.find("No event matches"), std::string::npos);
    EXPECT_EQ(send(auditor, "GET", "/audit/events", {{"from", "yesterday"}}).status, 400);
    EXPECT_EQ(send(auditor, "GET", "/audit/events", {{"host", "a b"}}).status, 400);
    EXPECT_EQ(send(auditor, "GET", "/audit/events", {{"after", "-1"}}).status, 400);
    const auto reviews = send(auditor, "GET", "/audit/reviews");
    EXPECT_EQ(reviews.status, 200);
    EXPECT_NE(reviews.body.find("/audit/reviews/fin-db-01/" + id), std::string::npos);
    const auto detail = send(auditor, "GET", "/audit/reviews/fin-db-01/" + id);
    EXPECT_EQ(detail.status, 200);
    EXPECT_EQ(detail.body.find("/close\""), std::string::npos) << "an auditor who is no reviewer gets no form";
    EXPECT_NE(detail.body.find("break-glass reviewers"), std::string::npos);
    EXPECT_EQ(send(auditor, "GET", "/audit/reviews/fin-db-01/unknown-id").status, 404);
    EXPECT_EQ(send(auditor, "GET", "/audit/reviews/fin-db-01/" + id + "/other").status, 404);
    EXPECT_EQ(send(auditor, "GET", "/audit/reviews/fin-db-01/" + id + "/close").status, 405);
    // Read-only: the auditor closes nothing.
    const auto closed = close(auditor, id, "note=fine&csrf=" + csrf_of(auditor));
    EXPECT_EQ(closed.status, 403);
    EXPECT_FALSE(m_store->find_break_glass_review("fin-db-01", id)->closed);
}

TEST_F(AuditPagesTest, TheEventSearchPagesOnAfterTheLastRowShown) {
    std::vector<store::AuditEvent> batch;
    for (std::size_t i = 0; i < web::WebUi::k_events_page_size + 5; ++i)
        batch.push_back(m_chain.next("command.finished", "alice"));
    ASSERT_TRUE(m_store->ingest("fin-db-01", batch, m_now).stored);
    const auto row = [](std::int64_t seq) { return "<td>fin-db-01</td><td>" + std::to_string(seq) + "</td>"; };
    const std::int64_t last = batch.back().seq;
    Browser auditor;
    sign_in_as(auditor, "carol", {"sox-auditors"});
    const auto first = send(auditor, "GET", "/audit/events", {{"host", "fin-db-01"}, {"order", "oldest"}});
    EXPECT_EQ(first.status, 200);
    EXPECT_NE(first.body.find(row(1)), std::string::npos);
    EXPECT_EQ(first.body.find(row(last)), std::string::npos);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(
        first.body, m,
        std::regex(R"re(href="(/audit/events\?order=oldest&amp;host=fin-db-01&amp;after=([0-9]+))">More events)re")));
    const auto second =
        send(auditor, "GET", "/audit/events", {{"order", "oldest"}, {"host", "fin-db-01"}, {"after", m[2].str()}});
    EXPECT_EQ(second.status, 200);
    EXPECT_EQ(second.body.find(row(1)), std::string::npos);
    EXPECT_NE(second.body.find(row(last)), std::string::npos);
    EXPECT_EQ(second.body.find("More events"), std::string::npos);
}

TEST_F(AuditPagesTest, AnAuditorApprovesNothing) {
    file_request("alice");
    Browser auditor;
    sign_in_as(auditor, "carol", {"sox-auditors"});
    EXPECT_EQ(send(auditor, "GET", "/r/pay-db-01/R-7F3K9Q").status, 404);
    const auto approve = send(auditor, "POST", "/r/pay-db-01/R-7F3K9Q/approve", {},
                              "comment=x&csrf=" + csrf_of(auditor), {{"origin", k_origin}});
    EXPECT_NE(approve.status, 200);
    EXPECT_EQ(stored().status, store::Status::pending);
    EXPECT_TRUE(stored().approvals.empty());
}

TEST_F(AuditPagesTest, AReviewerClosesAReviewOnceWithTheCsrfToken) {
    const std::string id = break_glass("dave");
    Browser reviewer;
    sign_in_as(reviewer, "erin", {"security-reviewers"});
    const std::string csrf = csrf_of(reviewer);
    const auto detail = send(reviewer, "GET", "/audit/reviews/fin-db-01/" + id);
    EXPECT_EQ(detail.status, 200);
    EXPECT_NE(detail.body.find("action=\"/audit/reviews/fin-db-01/" + id + "/close\""), std::string::npos);
    EXPECT_NE(detail.body.find("/usr/bin/rm"), std::string::npos) << "what was run during it";

    EXPECT_EQ(close(reviewer, id, "note=checked").status, 403) << "no CSRF token";
    EXPECT_EQ(close(reviewer, id, "note=checked&csrf=" + browser::random_token()).status, 403);
    EXPECT_EQ(send(reviewer, "POST", "/audit/reviews/fin-db-01/" + id + "/close", {}, "note=checked&csrf=" + csrf,
                   {{"origin", "https://evil.example.com"}})
                  .status,
              403);
    EXPECT_EQ(close(reviewer, id, "note=+++&csrf=" + csrf).status, 400) << "a blank note";
    EXPECT_EQ(close(reviewer, id, "note=" + std::string(4001, 'x') + "&csrf=" + csrf).status, 400);
    EXPECT_FALSE(m_store->find_break_glass_review("fin-db-01", id)->closed);

    const auto closed = close(reviewer, id, "note=only+the+restart%2C+as+INC-4711+says&csrf=" + csrf);
    EXPECT_EQ(closed.status, 200);
    const auto review = m_store->find_break_glass_review("fin-db-01", id);
    ASSERT_TRUE(review->closed);
    EXPECT_EQ(review->reviewer, "erin");
    EXPECT_EQ(review->reviewer_identity, "https://idp.example.test/ sub-erin");
    EXPECT_EQ(review->note, "only the restart, as INC-4711 says");
    EXPECT_EQ(review->closed_at, m_now);
    std::size_t recorded = 0;
    for (const auto& e : m_store->events("fin-db-01", ""))
        if (e.type == "break_glass.reviewed") {
            ++recorded;
            EXPECT_EQ(e.actor, "erin");
            EXPECT_EQ(e.source_address, m_peer);
            EXPECT_NE(e.detail.find(id), std::string::npos);
        }
    EXPECT_EQ(recorded, 1u);
    EXPECT_EQ(close(reviewer, id, "note=again&csrf=" + csrf).status, 409);
    const auto list = send(reviewer, "GET", "/audit/reviews");
    EXPECT_NE(list.body.find("only the restart, as INC-4711 says"), std::string::npos);
}

TEST_F(AuditPagesTest, NobodyClosesTheReviewOfTheirOwnBreakGlassUse) {
    const std::string by_user = break_glass("dave");
    const std::string by_login = break_glass("root", {{"login_user", "dave"}});
    const std::string by_requester = break_glass("root", {{"requester", "dave"}}); // `su root` by dave
    Browser dave;
    sign_in_as(dave, "dave", {"security-reviewers"});
    const std::string csrf = csrf_of(dave);
    for (const std::string& id : {by_user, by_login, by_requester}) {
        const auto detail = send(dave, "GET", "/audit/reviews/fin-db-01/" + id);
        EXPECT_EQ(detail.status, 200);
        EXPECT_EQ(detail.body.find("/close\""), std::string::npos) << id;
        EXPECT_NE(detail.body.find("your own break-glass use"), std::string::npos) << id;
        const auto refused = close(dave, id, "note=all+fine&csrf=" + csrf);
        EXPECT_EQ(refused.status, 403) << id;
        EXPECT_NE(refused.body.find("your own break-glass use"), std::string::npos) << id;
        EXPECT_FALSE(m_store->find_break_glass_review("fin-db-01", id)->closed) << id;
    }
}

TEST_F(AuditPagesTest, HostileTextOnTheAuditPagesIsEscaped) {
    const std::string id = break_glass("<img src=x onerror=alert(1)>");
    Browser auditor;
    sign_in_as(auditor, "carol", {"sox-auditors", "security-reviewers"});
    for (const std::string& path :
         std::vector<std::string>{"/audit/reviews", "/audit/reviews/fin-db-01/" + id, "/audit/events"}) {
        const auto page = send(auditor, "GET", path);
        EXPECT_EQ(page.status, 200) << path;
        EXPECT_EQ(page.body.find("<img"), std::string::npos) << path;
        EXPECT_EQ(page.body.find("<script>"), std::string::npos) << path;
        EXPECT_EQ(page.body.find("<b>x"), std::string::npos) << path;
        EXPECT_NE(page.body.find("&lt;img src=x onerror=alert(1)&gt;"), std::string::npos) << path;
    }
    const auto detail = send(auditor, "GET", "/audit/reviews/fin-db-01/" + id);
    EXPECT_NE(detail.body.find("payments down &lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
}

TEST_F(AuditPagesTest, AnOverdueReviewAlertsOnceThroughTheService) {
    const std::string id = break_glass("dave");
    std::vector<std::string> alerted;
    m_service->on_break_glass_overdue = [&](const store::BreakGlassReview& r) { alerted.push_back(r.event_id); };
    EXPECT_EQ(m_service->alert_overdue_reviews(), 0u);
    m_now += 3600;
    EXPECT_EQ(m_service->alert_overdue_reviews(), 1u);
    EXPECT_EQ(m_service->alert_overdue_reviews(), 0u);
    EXPECT_EQ(alerted, std::vector<std::string>{id});
    std::size_t recorded = 0;
    for (const auto& e : m_store->events("fin-db-01", ""))
        if (e.type == "break_glass.review_overdue") {
            ++recorded;
            EXPECT_NE(e.detail.find("/audit/reviews/fin-db-01/" + id), std::string::npos) << e.detail;
        }
    EXPECT_EQ(recorded, 1u);
    Browser auditor;
    sign_in_as(auditor, "carol", {"sox-auditors"});
    EXPECT_NE(send(auditor, "GET", "/audit/reviews").body.find("overdue"), std::string::npos);
}

// --- the evidence report page ---

class ReportPageTest : public AuditPagesTest {
protected:
    void TearDown() override {
        open_gate();
        m_ui.reset(); // joins the report thread before what it uses goes
        AuditPagesTest::TearDown();
    }

    // Reports are made on the report thread with a Store of their own (this fixture's database,
    // a second connection); their answers come back through `posted` (the loop's queue here).
    void offload() {
        m_ui->offload_reports(
            [this](std::function<void()> f) {
                const std::lock_guard<std::mutex> lock(m_mutex);
                m_posted.push_back(std::move(f));
                m_changed.notify_all();
            },
            [this]() {
                std::unique_lock<std::mutex> lock(m_mutex);
                m_store_threads.push_back(std::this_thread::get_id());
                m_changed.wait(lock, [this] { return !m_gate_closed; });
                lock.unlock();
                return store::open_sqlite(m_dir + "/server.db");
            });
    }
    void open_gate() {
        const std::lock_guard<std::mutex> lock(m_mutex);
        m_gate_closed = false;
        m_changed.notify_all();
    }

    http::Request report_request(Browser& b, const http::Fields& query) const {
        http::Request request;
        request.method = "GET";
        request.path = "/audit/report";
        request.query = query;
        request.peer_address = m_peer;
        if (!b.cookies.empty()) request.headers.emplace_back("cookie", b.cookie_header());
        return request;
    }

    // Asks for a report as handle() does; `answers` gets each answer (on this thread, the "loop").
    void ask(Browser& b, const http::Fields& query) {
        m_ui->report(report_request(b, query), [this](http::Response r) { m_answers.push_back(std::move(r)); });
    }
    // Runs what the report thread posted back, once it did (at most 60 s).
    void run_posted() {
        std::vector<std::function<void()>> posted;
        {
            std::unique_lock<std::mutex> lock(m_mutex);
            ASSERT_TRUE(m_changed.wait_for(lock, std::chrono::seconds(60), [this] { return !m_posted.empty(); }));
            posted.swap(m_posted);
        }
        for (auto& f : posted) f();
    }
    http::Response report(Browser& b, const http::Fields& query) {
        const std::size_t before = m_answers.size();
        ask(b, query);
        EXPECT_EQ(m_answers.size(), before) << "the report is made on the report thread, not here";
        run_posted();
        EXPECT_EQ(m_answers.size(), before + 1);
        return m_answers.empty() ? http::Response{} : m_answers.back();
    }

    std::vector<store::Event> viewed() {
        std::vector<store::Event> out;
        for (auto& e : m_store->events("", ""))
            if (e.type == "report.viewed") out.push_back(e);
        return out;
    }

    std::mutex m_mutex;
    std::condition_variable m_changed;
    std::vector<std::function<void()>> m_posted;
    std::vector<std::thread::id> m_store_threads;
    bool m_gate_closed = false;
    std::vector<http::Response> m_answers;
    const http::Fields m_day{{"from", "2026-11-24"}, {"to", "2026-11-24"}, {"hosts", "fin-*"}};
};

TEST_F(ReportPageTest, TheReportIsForAuditorsOnly) {
    break_glass("dave");
    offload();
    Browser auditor;
    sign_in_as(auditor, "carol", {"sox-auditors"});
    EXPECT_NE(send(auditor, "GET", "/audit").body.find("href=\"/audit/report\""), std::string::npos);
    const auto form = send(auditor, "GET", "/audit/report");
    EXPECT_EQ(form.status, 200);
    EXPECT_NE(form.body.find("name=\"from\""), std::string::npos);
    EXPECT_EQ(send(auditor, "POST", "/audit/report", {}, "", {{"origin", k_origin}}).status, 405);
    for (const auto& [user, groups] : std::vector<std::pair<std::string, std::vector<std::string>>>{
             {"bob", {"sox-approvers"}}, {"erin", {"security-reviewers"}}}) {
        Browser other;
        sign_in_as(other, user, groups);
        const auto refused = send(other, "GET", "/audit/report", m_day);
        EXPECT_EQ(refused.status, 403) << user;
        // Through the offloading route too: refused at once, nothing made or posted.
        ask(other, m_day);
        ASSERT_FALSE(m_answers.empty());
        EXPECT_EQ(m_answers.back().status, 403) << user;
        EXPECT_EQ(m_answers.back().body.find("dave"), std::string::npos);
    }
    // A link on another site (the browser says so) starts no report in the auditor's name.
    http::Request from_elsewhere = report_request(auditor, m_day);
    from_elsewhere.headers.emplace_back("sec-fetch-site", "cross-site");
    m_ui->report(std::move(from_elsewhere), [this](http::Response r) { m_answers.push_back(std::move(r)); });
    ASSERT_FALSE(m_answers.empty());
    EXPECT_EQ(m_answers.back().status, 403);
    Browser nobody;
    ask(nobody, m_day);
    EXPECT_EQ(m_answers.back().status, 303) << "signed out: to the sign-in";
    EXPECT_TRUE(m_store_threads.empty());
    EXPECT_TRUE(viewed().empty());
}

TEST_F(ReportPageTest, ABadPeriodHostsOrFormatIsA400Page) {
    offload();
    Browser auditor;
    sign_in_as(auditor, "carol", {"sox-auditors"});
    for (const http::Fields& query :
         std::vector<http::Fields>{{{"from", "yesterday"}, {"to", "2026-11-24"}},
                                   {{"from", "2026-11-24"}},
                                   {{"from", "2026-11-25"}, {"to", "2026-11-24"}},
                                   {{"from", "2026-02-30"}, {"to", "2026-03-01"}},
                                   {{"from", "2025-11-23"}, {"to", "2026-11-24"}}, // 367 days
                                   {{"from", "2026-11-24"}, {"to", "2026-11-24"}, {"hosts", "a b"}},
                                   {{"from", "2026-11-24"}, {"to", "2026-11-24"}, {"hosts", "<script>"}},
                                   {{"from", "2026-11-24"}, {"to", "2026-11-24"}, {"format", "xml"}}}) {
        const auto refused = send(auditor, "GET", "/audit/report", query);
        EXPECT_EQ(refused.status, 400) << query.front().second;
        EXPECT_NE(refused.body.find("Nothing was made"), std::string::npos);
        EXPECT_EQ(refused.body.find("<script>"), std::string::npos);
        ask(auditor, query);
        EXPECT_EQ(m_answers.back().status, 400);
    }
    EXPECT_EQ(send(auditor, "GET", "/audit/report", {{"from", "2025-11-24"}, {"to", "2026-11-24"}, {"format", "json"}})
                  .status,
              503)
        << "366 days is allowed (but respond() never makes a report)";
    EXPECT_TRUE(m_store_threads.empty());
}

// SECURITY NOTE pinned: respond() runs on the loop and never builds a report.
TEST_F(ReportPageTest, WithoutTheReportThreadNoReportIsMade) {
    break_glass("dave");
    Browser auditor;
    sign_in_as(auditor, "carol", {"sox-auditors"});
    const auto refused = send(auditor, "GET", "/audit/report", m_day);
    EXPECT_EQ(refused.status, 503);
    EXPECT_EQ(refused.body.find("dave"), std::string::npos);
    ask(auditor, m_day);
    EXPECT_EQ(m_answers.back().status, 503);
    EXPECT_TRUE(viewed().empty());
}

TEST_F(ReportPageTest, TheHtmlReportAllowsExactlyItsOwnStyleByHash) {
    break_glass("dave");
    offload();
    Browser auditor;
    sign_in_as(auditor, "carol", {"sox-auditors"});
    const auto shown = report(auditor, m_day);
    ASSERT_EQ(shown.status, 200) << shown.body;
    EXPECT_EQ(header_of(shown, "Content-Type"), "text/html; charset=utf-8");
    EXPECT_EQ(header_of(shown, "Content-Disposition"), "");
    EXPECT_NE(shown.body.find("fin-db-01"), std::string::npos);
    EXPECT_NE(shown.body.find("dave"), std::string::npos);
    EXPECT_EQ(shown.body.find("<script>alert"), std::string::npos) << "the reason is escaped";
    // The policy names the SHA-256 of the body's one <style> element, and nothing else.
    std::smatch m;
    ASSERT_TRUE(std::regex_search(shown.body, m, std::regex("<style>([^<]*)</style>")));
    const std::string style = m[1].str();
    ASSERT_FALSE(style.empty());
    EXPECT_EQ(shown.body.find("<style", m.position(0) + 1), std::string::npos) << "one style element";
    EXPECT_EQ(shown.body.find(" style="), std::string::npos) << "no style attribute (a hash does not allow it)";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    ASSERT_EQ(EVP_Digest(style.data(), style.size(), md, &md_len, EVP_sha256(), nullptr), 1);
    const std::string hash = jitgate::text::base64_encode(std::string(reinterpret_cast<char*>(md), md_len));
    EXPECT_EQ(header_of(shown, "Content-Security-Policy"),
              "default-src 'none'; style-src 'sha256-" + hash +
                  "'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
    EXPECT_EQ(header_of(shown, "X-Frame-Options"), "DENY");
    EXPECT_EQ(header_of(shown, "Cache-Control"), "no-store");
    EXPECT_EQ(header_of(shown, "X-Content-Type-Options"), "nosniff");
    EXPECT_FALSE(header_of(shown, "Strict-Transport-Security").empty());
    // Made through a Store of its own, on the report thread.
    ASSERT_EQ(m_store_threads.size(), 1u);
    EXPECT_NE(m_store_threads[0], std::this_thread::get_id());
}

TEST_F(ReportPageTest, CsvJsonAndPdfAreDownloadsAndEachViewIsRecorded) {
    break_glass("dave");
    offload();
    Browser auditor;
    sign_in_as(auditor, "carol", {"sox-auditors"});
    http::Fields query = m_day;
    query.emplace_back("format", "csv");
    const auto csv = report(auditor, query);
    ASSERT_EQ(csv.status, 200) << csv.body;
    EXPECT_EQ(header_of(csv, "Content-Type"), "text/csv; charset=utf-8");
    EXPECT_EQ(header_of(csv, "Content-Disposition"),
              "attachment; filename=\"jitgate-report-20261124T000000Z-20261125T000000Z.csv\"");
    EXPECT_EQ(header_of(csv, "Content-Security-Policy"), browser::k_content_security_policy);
    EXPECT_NE(csv.body.find("dave"), std::string::npos);
    query.back().second = "json";
    const auto json_report = report(auditor, query);
    ASSERT_EQ(json_report.status, 200);
    EXPECT_EQ(header_of(json_report, "Content-Type"), "application/json");
    EXPECT_EQ(header_of(json_report, "Content-Disposition"),
              "attachment; filename=\"jitgate-report-20261124T000000Z-20261125T000000Z.json\"");
    const json parsed = json::parse(json_report.body);
    EXPECT_EQ(parsed["hosts_pattern"], "fin-*");
    EXPECT_EQ(parsed["break_glass"].size(), 1u);
    query.back().second = "pdf"; // WeasyPrint, a test package, on the report thread
    const auto pdf = report(auditor, query);
    ASSERT_EQ(pdf.status, 200) << pdf.body;
    EXPECT_EQ(header_of(pdf, "Content-Type"), "application/pdf");
    EXPECT_EQ(header_of(pdf, "Content-Disposition"),
              "attachment; filename=\"jitgate-report-20261124T000000Z-20261125T000000Z.pdf\"");
    EXPECT_EQ(pdf.body.substr(0, 5), "%PDF-");

    const std::vector<store::Event> events = viewed();
    ASSERT_EQ(events.size(), 3u);
    for (const auto& e : events) {
        EXPECT_EQ(e.actor, "carol");
        EXPECT_EQ(e.identity, "https://idp.example.test/ sub-carol");
        EXPECT_EQ(e.source_address, m_peer);
        const json detail = json::parse(e.detail);
        EXPECT_EQ(detail["from"], "2026-11-24T00:00:00Z");
        EXPECT_EQ(detail["to"], "2026-11-25T00:00:00Z");
        EXPECT_EQ(detail["hosts"], "fin-*");
    }
    EXPECT_EQ(json::parse(events[0].detail)["format"], "csv");
    EXPECT_EQ(json::parse(events[1].detail)["format"], "json");
    EXPECT_EQ(json::parse(events[2].detail)["format"], "pdf");
}

TEST_F(ReportPageTest, OneReportAtATimeASecondGets503WithRetryAfter) {
    break_glass("dave");
    m_gate_closed = true; // the first report waits for its Store
    offload();
    Browser auditor;
    sign_in_as(auditor, "carol", {"sox-auditors"});
    ask(auditor, m_day);
    EXPECT_TRUE(m_answers.empty());
    ask(auditor, m_day);
    ASSERT_EQ(m_answers.size(), 1u);
    EXPECT_EQ(m_answers[0].status, 503);
    EXPECT_EQ(header_of(m_answers[0], "Retry-After"), "60");
    EXPECT_NE(m_answers[0].body.find("being made"), std::string::npos);
    // The rest of the web UI answers meanwhile.
    EXPECT_EQ(send(auditor, "GET", "/audit").status, 200);
    open_gate();
    run_posted();
    ASSERT_EQ(m_answers.size(), 2u);
    EXPECT_EQ(m_answers[1].status, 200);
    EXPECT_EQ(report(auditor, m_day).status, 200) << "free again";
    EXPECT_EQ(viewed().size(), 2u);
}

} // namespace

namespace {

// The service's own approval (docs/server.md, "Automatic approval") names no person: the
// request's page says who decided as recorded, never an empty list of approvers.
TEST_F(WebUiTest, AnAutomaticApprovalShowsWhoDecided) {
    file_request("alice");
    const store::Signer sign = [](const store::Request& done) {
        store::SignedGrant g;
        g.token = "token-of-" + done.id;
        g.id = "G-AUTO";
        return g;
    };
    store::Event approved;
    approved.at = m_now;
    approved.type = "request.auto_approved";
    approved.host = "pay-db-01";
    approved.request_id = "R-7F3K9Q";
    approved.actor = "server";
    ASSERT_EQ(m_store->approve_automatically("pay-db-01", "R-7F3K9Q", "jitgate (auto: on_call)", m_now, sign, approved)
                  .outcome,
              store::ApproveOutcome::approved);
    Browser b;
    sign_in(b);
    const auto detail = send(b, "GET", "/r/pay-db-01/R-7F3K9Q");
    EXPECT_EQ(detail.status, 200);
    EXPECT_NE(detail.body.find("jitgate (auto: on_call)"), std::string::npos) << detail.body;
}

} // namespace
