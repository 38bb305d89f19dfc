// tests/unit/test_approval_service_client.cpp — the approval service client's set-up, without
// a network: what it refuses before it ever sends a request.
#include "daemon/approval/service.hpp"
#include "daemon/approval/service_client.hpp"

#include <curl/curl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "file_helpers.hpp"
#include "jitgate/error.hpp"
#include "lib/grant_token.hpp"

namespace {

namespace fs = std::filesystem;
using jitgate::Error;
using jitgate::test::write_all;

struct NoListener : jitgate::service::Listener {
    void on_service_outcome(const std::string&, const jitgate::service::Outcome&) override {}
};

class ServiceClientTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }
    void SetUp() override {
        std::string templ = ::testing::TempDir() + "jitgate-service-XXXXXX";
        ASSERT_NE(::mkdtemp(templ.data()), nullptr);
        m_dir = templ;
        for (const char* f : {"/ca.pem", "/client.pem", "/client.key"})
            write_all(m_dir + f, "not parsed before a transfer\n");
        m_settings.url = "https://approvals.example:8443";
        m_settings.ca_file = m_dir + "/ca.pem";
        m_settings.client_cert = m_dir + "/client.pem";
        m_settings.client_key = m_dir + "/client.key";
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(m_dir, ec);
    }

    std::string m_dir;
    jitgate::config::Config::Approval::Service m_settings;
    NoListener m_listener;
};

TEST_F(ServiceClientTest, StartsWithGoodSettings) {
    EXPECT_NO_THROW(jitgate::service::ServiceClient(m_settings, m_listener));
}

// Regression: curl_easy_setopt's return code was ignored, so an option libcurl refused was left
// at its default (here: no proxy at all) and every request failed later, or went out unproxied.
TEST_F(ServiceClientTest, RefusedCurlOptionIsAStartUpError) {
    // libcurl refuses a string option longer than CURL_MAX_INPUT_LENGTH (8,000,000 bytes).
    m_settings.proxy = "http://" + std::string(8'000'001, 'p') + ":3128";
    try {
        jitgate::service::ServiceClient client(m_settings, m_listener);
        ADD_FAILURE() << "the client must refuse to start with an option libcurl refused";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("refuses the option CURLOPT_PROXY"), std::string::npos) << e.what();
    }
}

// §12: a request approved and then revoked before this host fetched its grant is final
// without a grant.
TEST(ParseStatus, RevokedIsFinalWithoutAGrant) {
    using Kind = jitgate::service::Outcome::Kind;
    auto o = jitgate::service::parse_status(R"({"protocol":1,"id":"R-1","status":"cancelled","revoked":true,)"
                                            R"("revoked_by":"carol","reason":"revoked at the service by carol"})",
                                            "R-1");
    EXPECT_EQ(o.kind, Kind::revoked);
    EXPECT_EQ(o.revoked_by, "carol");
    EXPECT_EQ(o.reason, "revoked at the service by carol");
    EXPECT_TRUE(o.grant.empty());
    o = jitgate::service::parse_status(R"({"protocol":1,"id":"R-1","status":"cancelled","revoked":false})", "R-1");
    EXPECT_EQ(o.kind, Kind::cancelled);
    o = jitgate::service::parse_status(R"({"protocol":1,"id":"R-1","status":"cancelled"})", "R-1");
    EXPECT_EQ(o.kind, Kind::cancelled);
    // Wrong types: a failure (the host denies either way).
    o = jitgate::service::parse_status(R"({"protocol":1,"id":"R-1","status":"cancelled","revoked":"yes"})", "R-1");
    EXPECT_EQ(o.kind, Kind::failed);
    o = jitgate::service::parse_status(
        R"({"protocol":1,"id":"R-1","status":"cancelled","revoked":true,"revoked_by":5})", "R-1");
    EXPECT_EQ(o.kind, Kind::failed);
    // No new status within v1 (§10): "revoked" is unknown, a failure.
    o = jitgate::service::parse_status(R"({"protocol":1,"id":"R-1","status":"revoked"})", "R-1");
    EXPECT_EQ(o.kind, Kind::failed);
}

// A revocation that names a request still waiting here is remembered with it (bounded), and the
// grant it names is refused when it arrives; one naming no waiting request is not kept.
TEST_F(ServiceClientTest, RemembersRevocationsOfWaitingRequests) {
    jitgate::service::ServiceClient client(m_settings, m_listener);
    jitgate::service::Revocation r;
    r.seq = 7;
    r.host = "web-01";
    r.request_id = "R-WAIT";
    r.grant_id = "G-1";
    EXPECT_FALSE(client.note_revocation(r)) << "no such request waits";
    client.submit("R-WAIT", nlohmann::json::object());
    EXPECT_TRUE(client.note_revocation(r));
    EXPECT_TRUE(client.note_revocation(r)) << "the same one again";
    client.cancel("R-WAIT", "client_gone");
    EXPECT_FALSE(client.note_revocation(r)) << "no longer waiting";

    jitgate::service::Outcome o;
    o.kind = jitgate::service::Outcome::Kind::approved;
    o.revoked_while_waiting = {r};
    const jitgate::service::Revocation* which = nullptr;
    EXPECT_TRUE(jitgate::service::revoked_while_waiting(o, "G-1", &which));
    ASSERT_NE(which, nullptr);
    EXPECT_EQ(which->seq, 7);
    EXPECT_FALSE(jitgate::service::revoked_while_waiting(o, "G-2"));
    o.revoked_overflow = true; // more than were kept: every grant of it is refused
    EXPECT_TRUE(jitgate::service::revoked_while_waiting(o, "G-2"));
}

// GET /v1/revocations's answer is hostile input (docs/protocol.md §12): exactly the form, or
// nothing of it is used.
TEST(ParseRevocations, TakesTheFormAndRefusesAnythingElse) {
    const auto page = jitgate::service::parse_revocations(
        R"({"protocol":1,"cursor":42,"extra":"ignored","revocations":[{"seq":41,"host":"web-01","request_id":"R-1",)"
        R"("grant_id":"G-1","revoked_by":"carol","reason":"","revoked_at":"2026-11-24T03:12:09Z","more":1}]})");
    ASSERT_TRUE(page.ok) << page.problem;
    EXPECT_EQ(page.cursor, 42);
    ASSERT_EQ(page.revocations.size(), 1u);
    EXPECT_EQ(page.revocations[0].seq, 41);
    EXPECT_EQ(page.revocations[0].host, "web-01");
    EXPECT_EQ(page.revocations[0].request_id, "R-1");
    EXPECT_EQ(page.revocations[0].grant_id, "G-1");
    EXPECT_EQ(page.revocations[0].revoked_by, "carol");
    EXPECT_TRUE(jitgate::service::parse_revocations(R"({"protocol":1,"cursor":0,"revocations":[]})").ok);

    const std::string entry = R"("host":"h","request_id":"R-1","grant_id":"G-1","revoked_by":"c","reason":"",)"
                              R"("revoked_at":"t")";
    for (const std::string& bad : std::vector<std::string>{
             std::string("not json"),
             std::string("[]"),
             std::string(R"({"cursor":1,"revocations":[]})"),                          // no protocol
             std::string(R"({"protocol":2,"cursor":1,"revocations":[]})"),             // another protocol
             std::string(R"({"protocol":1,"revocations":[]})"),                        // no cursor
             std::string(R"({"protocol":1,"cursor":-1,"revocations":[]})"),            // negative cursor
             std::string(R"({"protocol":1,"cursor":"5","revocations":[]})"),           // a string cursor
             std::string(R"({"protocol":1,"cursor":1.5,"revocations":[]})"),           // not an integer
             std::string(R"({"protocol":1,"cursor":1})"),                              // no list
             std::string(R"({"protocol":1,"cursor":1,"revocations":{}})"),             // not a list
             std::string(R"({"protocol":1,"cursor":1,"revocations":[1]})"),            // not an object
             R"({"protocol":1,"cursor":5,"revocations":[{"seq":6,)" + entry + "}]}",   // seq above the cursor
             R"({"protocol":1,"cursor":5,"revocations":[{"seq":0,)" + entry + "}]}",   // seq below 1
             R"({"protocol":1,"cursor":5,"revocations":[{"seq":"1",)" + entry + "}]}", // seq a string
             std::string(R"({"protocol":1,"cursor":5,"revocations":[{"seq":1,"host":"h","request_id":"R-1"}]})"),
             std::string(R"({"protocol":1,"cursor":5,"revocations":[{"seq":1,"host":7,"request_id":"R-1",)"
                         R"("grant_id":"G-1","revoked_by":"c","reason":"","revoked_at":"t"}]})"),
             R"({"protocol":1,"cursor":5,"revocations":[{"seq":1,"host":"h","request_id":"R-1","grant_id":"G-1",)"
             R"("revoked_by":"c","reason":")" +
                 std::string(3000, 'x') + R"(","revoked_at":"t"}]})",
         })
        EXPECT_FALSE(jitgate::service::parse_revocations(bad).ok) << bad.substr(0, 200);
    std::string many = R"({"protocol":1,"cursor":2000,"revocations":[)";
    for (int i = 1; i <= 1001; ++i) many += std::string(i > 1 ? "," : "") + R"({"seq":1,)" + entry + "}";
    many += "]}";
    EXPECT_FALSE(jitgate::service::parse_revocations(many).ok) << "more than 1,000";
}

// A hostile service repeating entries the host had (seq <= the cursor it sent) is refused, so
// the host cannot be made to handle them again and again; one that went back (a restore: its
// cursor below the one sent) is believed; seqs must grow within a page.
TEST(ParseRevocations, RefusesEntriesAtOrBelowTheCursorSent) {
    const auto page_of = [](std::int64_t cursor, std::vector<int> seqs) {
        std::string body = R"({"protocol":1,"cursor":)" + std::to_string(cursor) + R"(,"revocations":[)";
        for (std::size_t i = 0; i < seqs.size(); ++i)
            body += std::string(i > 0 ? "," : "") + R"({"seq":)" + std::to_string(seqs[i]) +
                    R"(,"host":"h","request_id":"R-1","grant_id":"G-1","revoked_by":"c","reason":"","revoked_at":"t"})";
        return body + "]}";
    };
    EXPECT_TRUE(jitgate::service::parse_revocations(page_of(12, {11, 12}), 10).ok);
    EXPECT_FALSE(jitgate::service::parse_revocations(page_of(12, {10, 12}), 10).ok) << "10 was had";
    EXPECT_FALSE(jitgate::service::parse_revocations(page_of(10, {9}), 10).ok) << "a repeat";
    EXPECT_FALSE(jitgate::service::parse_revocations(page_of(12, {12, 11}), 10).ok) << "out of order";
    EXPECT_FALSE(jitgate::service::parse_revocations(page_of(12, {11, 11}), 10).ok) << "twice";
    EXPECT_TRUE(jitgate::service::parse_revocations(page_of(10, {}), 10).ok) << "nothing new";
    // The service went back (cursor 5 < 10 sent): its entries are believed.
    EXPECT_TRUE(jitgate::service::parse_revocations(page_of(5, {3, 5}), 10).ok);
}

} // namespace

namespace {

// The host's side of the service's automatic approval: which `auto` grant a rule accepts (and
// asks for in §4 `auto_approve`). Only a require_approval rule with auto_approve {on_call: true};
// approvals >= 2 only with auto_approve_sod; never a login.
TEST(ServiceAutoCondition, OnlyARuleThatOptedInAcceptsAnAutomaticGrant) {
    namespace config = jitgate::config;
    config::Rule rule;
    rule.name = "ops";
    rule.action = config::Action::require_approval;
    EXPECT_EQ(jitgate::approval::service_auto_condition(rule, "sudo"), "");
    rule.auto_approve.set = true;
    rule.auto_approve.on_call = true;
    EXPECT_EQ(jitgate::approval::service_auto_condition(rule, "sudo"), "on_call");
    EXPECT_EQ(jitgate::approval::service_auto_condition(rule, "login"), "");
    rule.approvals = 2;
    EXPECT_EQ(jitgate::approval::service_auto_condition(rule, "sudo"), "");
    rule.auto_approve_sod = true;
    EXPECT_EQ(jitgate::approval::service_auto_condition(rule, "sudo"), "on_call");
    rule.auto_approve.window = "business"; // refused by validate() with the service backend
    EXPECT_EQ(jitgate::approval::service_auto_condition(rule, "sudo"), "");
    rule.auto_approve.window.clear();
    rule.action = config::Action::allow;
    EXPECT_EQ(jitgate::approval::service_auto_condition(rule, "sudo"), "");

    // What verify() then does with an automatic grant for a rule that did not opt in.
    namespace gt = jitgate::grant_token;
    const gt::SigningKey key = gt::SigningKey::generate("k1");
    gt::KeyRing keys;
    keys.add_pem("k1", key.public_key_pem(), "test");
    gt::Claims c;
    c.jti = "G-1";
    c.rid = "R-AAAA1";
    c.nonce = gt::new_nonce();
    c.host = "h";
    c.sub = "alice";
    c.kind = "sudo";
    c.scope = "session";
    c.auto_condition = "on_call";
    c.nbf = 1'800'000'000;
    c.exp = c.nbf + 600;
    gt::Expected e;
    e.request_id = c.rid;
    e.nonce = c.nonce;
    e.host = c.host;
    e.user = c.sub;
    e.kind = c.kind;
    e.scope = c.scope;
    e.now_unix = c.nbf + 1;
    config::Rule plain;
    plain.action = config::Action::require_approval;
    e.auto_allowed = jitgate::approval::service_auto_condition(plain, "sudo");
    const gt::Verdict refused = gt::verify(gt::sign(key, c), keys, e);
    EXPECT_FALSE(refused.ok);
    EXPECT_NE(refused.reason.find("is not allowed by this host's rule"), std::string::npos) << refused.reason;
    rule.action = config::Action::require_approval;
    e.auto_allowed = jitgate::approval::service_auto_condition(rule, "sudo");
    const gt::Verdict accepted = gt::verify(gt::sign(key, c), keys, e);
    EXPECT_TRUE(accepted.ok) << accepted.reason;

    // A rule needing two approvals that opted in without auto_approve_sod (validate() refuses
    // it; a config built otherwise must not slip through): the automatic grant is refused.
    config::Rule two = rule;
    two.approvals = 2;
    two.auto_approve_sod = false;
    e.approvals_needed = 2;
    e.auto_allowed = jitgate::approval::service_auto_condition(two, "sudo");
    const gt::Verdict two_refused = gt::verify(gt::sign(key, c), keys, e);
    EXPECT_FALSE(two_refused.ok);
    EXPECT_NE(two_refused.reason.find("is not allowed by this host's rule"), std::string::npos) << two_refused.reason;
    // Said in as many words, the rule takes the automatic grant in place of its two approvals.
    two.auto_approve_sod = true;
    e.auto_allowed = jitgate::approval::service_auto_condition(two, "sudo");
    const gt::Verdict two_accepted = gt::verify(gt::sign(key, c), keys, e);
    EXPECT_TRUE(two_accepted.ok) << two_accepted.reason;
}

} // namespace
