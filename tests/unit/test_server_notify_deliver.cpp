// tests/unit/test_server_notify_deliver.cpp — server/notify/deliver against real HTTPS
// receivers on 127.0.0.1 (cpp-httplib + OpenSSL, certificates made for the run): the signed
// JSON body, the Slack body, what is retried and what is given up, redirects, a certificate
// from another CA; and the retry schedule.
#include "server/notify/deliver.hpp"

#include "server_notify_peers.hpp"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "jitgate/error.hpp"
#include "server/notify/notice.hpp"
#include "server/notify/transfer.hpp"

namespace {

namespace notify = jitgate::server::notify;
using jitgate::test::Answer;
using jitgate::test::HttpsPeer;
using jitgate::test::ScratchDir;
using nlohmann::json;
using notify::Outcome;
using namespace std::chrono_literals;

constexpr std::int64_t k_now = 1'800'000'000;

// The receiver's side of the signature, written here independently of deliver.cpp: split the
// header, recompute HMAC-SHA256(secret, t + "." + body) with OpenSSL, compare.
bool receiver_verifies(const std::string& header, const std::string& secret, const std::string& body,
                       std::int64_t& t_out) {
    const auto comma = header.find(',');
    if (header.rfind("t=", 0) != 0 || comma == std::string::npos || header.compare(comma, 4, ",v1=") != 0) return false;
    const std::string t = header.substr(2, comma - 2);
    const std::string v1 = header.substr(comma + 4);
    const std::string text = t + "." + body;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac, &len);
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned int i = 0; i < len; ++i) std::snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    t_out = std::stoll(t);
    return CRYPTO_memcmp(hex, v1.data(), std::min<std::size_t>(v1.size(), 2 * len)) == 0 && v1.size() == 2 * len;
}

notify::RequestFacts facts() {
    notify::RequestFacts f;
    f.host = "db1";
    f.id = "R-1";
    f.requester = "alice";
    f.kind = "sudo";
    f.command = "id";
    f.reason = "<!channel> look <http://evil|here>";
    f.link = notify::request_link("https://approvals.example", f.host, f.id);
    return f;
}

class NotifyDeliver : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        ASSERT_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
        s_pki = std::make_unique<ScratchDir>();
        jitgate::test::make_pki(s_pki->path());
    }
    static void TearDownTestSuite() { s_pki.reset(); }

    void SetUp() override { m_peer = std::make_unique<HttpsPeer>(pki("server.pem"), pki("server.key")); }

    static std::string pki(const std::string& name) { return *s_pki / name; }

    notify::Target json_target() const {
        notify::Target t;
        t.name = "siem";
        t.url = m_peer->url("/hook");
        t.format = notify::Format::json;
        t.secret = "correct horse battery staple";
        t.ca_file = pki("ca.pem");
        t.connect_timeout = 5s;
        t.timeout = 10s;
        return t;
    }
    static std::string json_notice() {
        return notify::json_body(notify::EventKind::filed, facts(), "approvals", "0123456789abcdef0123456789abcdef",
                                 k_now);
    }

    static std::unique_ptr<ScratchDir> s_pki;
    std::unique_ptr<HttpsPeer> m_peer;
};

std::unique_ptr<ScratchDir> NotifyDeliver::s_pki;

TEST_F(NotifyDeliver, JsonBodyIsReceivedAndItsSignatureVerifies) {
    const std::string body = json_notice();
    const auto result = notify::deliver(json_target(), body, k_now + 5);
    EXPECT_EQ(result.outcome, Outcome::delivered) << result.error;
    EXPECT_EQ(result.status, 200);
    const auto got = m_peer->received();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].method, "POST");
    EXPECT_EQ(got[0].path, "/hook");
    EXPECT_EQ(got[0].body, body);
    EXPECT_EQ(got[0].header("Content-Type"), "application/json");
    EXPECT_EQ(got[0].header("Jitgate-Delivery"), "0123456789abcdef0123456789abcdef");
    const std::string signature = got[0].header("Jitgate-Signature");
    std::int64_t t = 0;
    EXPECT_TRUE(receiver_verifies(signature, "correct horse battery staple", got[0].body, t)) << signature;
    EXPECT_EQ(t, k_now + 5);
    // The same check fails with another secret, or with a body changed by one byte.
    EXPECT_FALSE(receiver_verifies(signature, "another secret", got[0].body, t));
    std::string tampered = got[0].body;
    tampered[tampered.size() / 2] ^= 0x01;
    EXPECT_FALSE(receiver_verifies(signature, "correct horse battery staple", tampered, t));
    // deliver's own helper agrees with the receiver's recipe.
    EXPECT_EQ(notify::signature_header("correct horse battery staple", k_now + 5, body), signature);
}

TEST_F(NotifyDeliver, SlackBodyIsReceivedUnsignedAndEscaped) {
    notify::Target target = json_target();
    target.format = notify::Format::slack;
    target.secret.clear();
    const std::string body = notify::slack_body(notify::EventKind::filed, facts(), "approvals");
    const auto result = notify::deliver(target, body, k_now);
    EXPECT_EQ(result.outcome, Outcome::delivered) << result.error;
    const auto got = m_peer->received();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].body, body);
    EXPECT_EQ(got[0].header("Jitgate-Signature"), "");
    const json slack = json::parse(got[0].body);
    EXPECT_TRUE(slack["blocks"].is_array());
    EXPECT_EQ(got[0].body.find("<!channel>"), std::string::npos);
    EXPECT_EQ(got[0].body.find("<http://evil"), std::string::npos);
    EXPECT_NE(got[0].body.find("&lt;!channel&gt;"), std::string::npos);
}

TEST_F(NotifyDeliver, ServerErrorsAndThrottlingAreRetried) {
    m_peer->queue(Answer{500, "database down"});
    m_peer->queue(Answer{503, ""});
    m_peer->queue(Answer{408, ""});
    m_peer->queue(Answer{429, "slow down", "text/plain", {{"Retry-After", "120"}}});
    for (const long status : {500L, 503L, 408L, 429L}) {
        const auto result = notify::deliver(json_target(), json_notice(), k_now);
        EXPECT_EQ(result.outcome, Outcome::retry) << status;
        EXPECT_EQ(result.status, status);
        EXPECT_NE(result.error.find(std::to_string(status)), std::string::npos) << result.error;
        if (status == 429) {
            ASSERT_TRUE(result.retry_after.has_value());
            EXPECT_EQ(*result.retry_after, 120s);
        }
    }
    EXPECT_EQ(m_peer->received().size(), 4u);
}

TEST_F(NotifyDeliver, ClientErrorsAreGivenUp) {
    for (const int status : {400, 401, 403, 404, 410, 413}) {
        m_peer->queue(Answer{status, "no_service"});
        const auto result = notify::deliver(json_target(), json_notice(), k_now);
        EXPECT_EQ(result.outcome, Outcome::give_up) << status;
        EXPECT_NE(result.error.find(std::to_string(status) + ": no_service"), std::string::npos) << result.error;
    }
}

TEST_F(NotifyDeliver, ReceiverDownIsRetried) {
    notify::Target target = json_target();
    target.url = "https://127.0.0.1:" + std::to_string(jitgate::test::closed_port()) + "/hook";
    const auto result = notify::deliver(target, json_notice(), k_now);
    EXPECT_EQ(result.outcome, Outcome::retry);
    EXPECT_EQ(result.status, 0);
    EXPECT_FALSE(result.error.empty());
}

TEST_F(NotifyDeliver, SlowReceiverTimesOutAndIsRetried) {
    m_peer->queue(Answer{200, "ok", "text/plain", {}, 3s});
    notify::Target target = json_target();
    target.timeout = 1s;
    const auto result = notify::deliver(target, json_notice(), k_now);
    EXPECT_EQ(result.outcome, Outcome::retry);
    EXPECT_NE(result.error.find("imed out"), std::string::npos) << result.error;
}

TEST_F(NotifyDeliver, RedirectIsNotFollowed) {
    m_peer->queue(Answer{302, "", "text/plain", {{"Location", m_peer->url("/elsewhere")}}});
    const auto result = notify::deliver(json_target(), json_notice(), k_now);
    EXPECT_EQ(result.outcome, Outcome::give_up);
    EXPECT_EQ(result.status, 302);
    EXPECT_NE(result.error.find("redirect"), std::string::npos) << result.error;
    const auto got = m_peer->received();
    ASSERT_EQ(got.size(), 1u) << "the redirect was followed";
    EXPECT_EQ(got[0].path, "/hook");
}

TEST_F(NotifyDeliver, CertificateFromAnotherCaFails) {
    HttpsPeer impostor(pki("other-server.pem"), pki("other-server.key"));
    notify::Target target = json_target();
    target.url = impostor.url("/hook");
    const auto result = notify::deliver(target, json_notice(), k_now);
    EXPECT_NE(result.outcome, Outcome::delivered);
    EXPECT_EQ(result.status, 0);
    EXPECT_NE(result.error.find("certificate"), std::string::npos) << result.error;
    EXPECT_TRUE(impostor.received().empty()) << "the body reached a receiver that was not verified";
}

TEST_F(NotifyDeliver, PlainHttpIsRefused) {
    notify::Target target = json_target();
    target.url = "http://127.0.0.1:" + std::to_string(m_peer->port()) + "/hook";
    const auto result = notify::deliver(target, json_notice(), k_now);
    EXPECT_EQ(result.outcome, Outcome::give_up) << result.error;
    EXPECT_TRUE(m_peer->received().empty());
}

TEST_F(NotifyDeliver, JsonNoticeWithoutDeliveryIdIsGivenUpUnsent) {
    for (const char* body : {"{}", "not json", R"({"delivery_id":"a\r\nX-Evil: 1"})"}) {
        const auto result = notify::deliver(json_target(), body, k_now);
        EXPECT_EQ(result.outcome, Outcome::give_up) << body;
    }
    EXPECT_TRUE(m_peer->received().empty());
}

TEST_F(NotifyDeliver, LongAnswerIsCutAndTheStatusCounts) {
    m_peer->queue(Answer{200, std::string(512 * 1024, 'x')});
    const auto result = notify::deliver(json_target(), json_notice(), k_now);
    EXPECT_EQ(result.outcome, Outcome::delivered) << result.error;
}

TEST(NotifyBackoff, ExponentialFromFiveSecondsCappedAtTenMinutes) {
    EXPECT_EQ(notify::backoff(1, 0.0), 5s);
    EXPECT_EQ(notify::backoff(2, 0.0), 10s);
    EXPECT_EQ(notify::backoff(7, 0.0), 320s);
    EXPECT_EQ(notify::backoff(8, 0.0), 600s);
    EXPECT_EQ(notify::backoff(100, 0.0), 600s);
    EXPECT_EQ(notify::backoff(3, 1.0), 24s);
    EXPECT_EQ(notify::backoff(3, -1.0), 16s);
    EXPECT_EQ(notify::backoff(100, 1.0), 720s);
    EXPECT_EQ(notify::backoff(100, -1.0), 480s);
    // Retry-After wins when longer, within the cap.
    EXPECT_EQ(notify::backoff(1, 0.0, 120s), 120s);
    EXPECT_EQ(notify::backoff(4, 0.0, 1s), 40s);
    EXPECT_EQ(notify::backoff(1, 0.0, 86400s), 600s);
}

TEST(NotifyBackoff, GivenUpAfterTwentyFourHours) {
    // 5+10+...+320 = 635 s after 7 failures, then 600 s each: 24 h is reached at failure 150.
    EXPECT_FALSE(notify::exhausted(1));
    EXPECT_FALSE(notify::exhausted(149));
    EXPECT_TRUE(notify::exhausted(150));
    EXPECT_TRUE(notify::exhausted(1000));
}

TEST(NotifyTarget, LoadsTheSecretFile) {
    ScratchDir dir;
    {
        std::ofstream(dir / "secret") << "  s3cret-value \n second line\n";
        std::ofstream(dir / "empty") << "\n";
    }
    jitgate::server::config::Webhook hook;
    hook.name = "siem";
    hook.url = "https://siem.example/hook";
    hook.format = "json";
    hook.secret_file = dir / "secret";
    const auto target = notify::load_target(hook);
    EXPECT_EQ(target.secret, "s3cret-value");
    EXPECT_EQ(target.format, notify::Format::json);
    hook.secret_file = dir / "empty";
    EXPECT_THROW(notify::load_target(hook), jitgate::Error);
    hook.secret_file = dir / "missing";
    EXPECT_THROW(notify::load_target(hook), jitgate::Error);
    hook.format = "slack";
    EXPECT_EQ(notify::load_target(hook).format, notify::Format::slack);
    hook.format = "teams";
    EXPECT_THROW(notify::load_target(hook), jitgate::Error);
}

} // namespace

namespace {

// docs/webhooks.md shows one body and its signature; they are what this code produces, so a
// receiver that follows the documentation verifies real deliveries.
TEST(NotifyDocs, ExampleBodyAndSignatureMatchTheCode) {
    std::ifstream in(std::string(JITGATE_SOURCE_DIR) + "/docs/webhooks.md");
    ASSERT_TRUE(in) << "docs/webhooks.md not found";
    const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto start = doc.find("```json\n");
    ASSERT_NE(start, std::string::npos);
    const auto end = doc.find("\n```", start + 8);
    const std::string body = doc.substr(start + 8, end - start - 8);

    notify::RequestFacts f;
    f.host = "fin-db-01";
    f.environment = "production";
    f.tags = {"finance"};
    f.id = "R-Z4H8TFAMCE";
    f.requester = "alice";
    f.kind = "sudo";
    f.scope = "command";
    f.command = "/usr/bin/systemctl restart postgresql";
    f.runas = "root";
    f.reason = "restart after config change";
    f.ticket = "CHG0012345";
    f.rule = "finance";
    f.approvals_needed = 2;
    f.expires_at = 1'800'001'800;
    f.link = notify::request_link("https://approvals.example.com", f.host, f.id);
    EXPECT_EQ(
        notify::json_body(notify::EventKind::filed, f, "approvals", "5f0c6a1e9b2d4c7f8a3e1d2c4b5a6978", 1'800'000'000),
        body);
    const std::string header = "t=1800000003,v1=fcef7a098325fd4fdb6e7e0f52cc9d236ea0187cd4596d2ce6111ecb02524467";
    EXPECT_NE(doc.find("Jitgate-Signature: " + header), std::string::npos);
    EXPECT_EQ(notify::signature_header("example-secret-do-not-use", 1'800'000'003, body), header);
}

} // namespace

namespace {

// With no ca_file a webhook is checked against libcurl's built-in trust store, which does not
// hold the run's test CA: the loopback receiver is not trusted.
TEST(NotifySystemTrust, EmptyCaFileMeansTheBuiltInStoreNotAnyCertificate) {
    ASSERT_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    const std::string store = notify::transfer::system_ca_file();
    EXPECT_TRUE(std::filesystem::exists(store)) << store;
    ScratchDir pki;
    jitgate::test::make_pki(pki.path());
    HttpsPeer peer(pki / "server.pem", pki / "server.key");
    notify::Target target;
    target.name = "slack";
    target.url = peer.url("/services/T0/B0/x");
    target.format = notify::Format::slack;
    const auto result = notify::deliver(target, "{}", k_now);
    EXPECT_NE(result.outcome, Outcome::delivered);
    EXPECT_NE(result.error.find("certificate"), std::string::npos) << result.error;
    EXPECT_TRUE(peer.received().empty());
}

} // namespace
