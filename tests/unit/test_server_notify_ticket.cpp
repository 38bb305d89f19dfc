// tests/unit/test_server_notify_ticket.cpp — server/notify/ticket: the ticket check against a
// fake ServiceNow (a real HTTPS peer on 127.0.0.1 answering like the Table API), the pure
// helpers (dotted paths, dates), and the worker thread.
#include "server/notify/ticket.hpp"

#include "server_notify_peers.hpp"

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "jitgate/error.hpp"

namespace {

namespace notify = jitgate::server::notify;
using jitgate::test::Answer;
using jitgate::test::HttpsPeer;
using jitgate::test::ScratchDir;
using nlohmann::json;
using namespace std::chrono_literals;

const std::int64_t k_now = *notify::parse_ticket_time("2026-11-29 10:00:00");

// A ServiceNow Table API answer for one change request.
std::string change(const std::string& approval, const std::string& start, const std::string& end) {
    return json{{"result", json::array({{{"number", "CHG0001234"},
                                         {"approval", approval},
                                         {"start_date", start},
                                         {"end_date", end},
                                         {"state", "-1"}}})}}
        .dump();
}

class NotifyTicket : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        ASSERT_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
        s_pki = std::make_unique<ScratchDir>();
        jitgate::test::make_pki(s_pki->path());
    }
    static void TearDownTestSuite() { s_pki.reset(); }

    void SetUp() override {
        m_peer = std::make_unique<HttpsPeer>(*s_pki / "server.pem", *s_pki / "server.key");
        m_settings.url = m_peer->url("/api/now/table/change_request") +
                         "?sysparm_query=number%3D{ticket}&sysparm_fields=approval,start_date,end_date&sysparm_limit=1";
        m_settings.ca_file = *s_pki / "ca.pem";
        m_settings.timeout = 10s;
    }

    void answer(int status, const std::string& body) { m_peer->queue(Answer{status, body, "application/json"}); }
    notify::TicketAnswer check(const std::string& ticket) {
        return notify::check_ticket(m_settings, "servicenow-token", ticket, k_now);
    }

    static std::unique_ptr<ScratchDir> s_pki;
    std::unique_ptr<HttpsPeer> m_peer;
    jitgate::server::config::Config::TicketCheck m_settings;
};

std::unique_ptr<ScratchDir> NotifyTicket::s_pki;

TEST_F(NotifyTicket, ApprovedAndInWindowIsOk) {
    answer(200, change("approved", "2026-11-29 09:00:00", "2026-11-29 12:00:00"));
    const auto result = check("CHG0001234");
    EXPECT_TRUE(result.ok) << result.why;
    EXPECT_NE(result.why.find("2026-11-29T09:00:00Z to 2026-11-29T12:00:00Z"), std::string::npos) << result.why;
    const auto got = m_peer->received();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].method, "GET");
    EXPECT_EQ(got[0].path, "/api/now/table/change_request");
    EXPECT_EQ(got[0].params.find("sysparm_query")->second, "number=CHG0001234");
    EXPECT_EQ(got[0].header("Authorization"), "Bearer servicenow-token");
    EXPECT_EQ(got[0].header("Accept"), "application/json");
}

TEST_F(NotifyTicket, WindowEdgesAreInside) {
    answer(200, change("approved", "2026-11-29 10:00:00", "2026-11-29 10:00:00"));
    const auto result = check("CHG0001234");
    EXPECT_TRUE(result.ok) << result.why;
}

TEST_F(NotifyTicket, NotApprovedIsNotOk) {
    answer(200, change("requested", "2026-11-29 09:00:00", "2026-11-29 12:00:00"));
    const auto result = check("CHG0001234");
    EXPECT_FALSE(result.ok);
    EXPECT_NE(result.why.find("not approved"), std::string::npos) << result.why;
    EXPECT_NE(result.why.find("\"requested\""), std::string::npos) << result.why;
}

TEST_F(NotifyTicket, OutsideTheWindowIsNotOk) {
    answer(200, change("approved", "2026-11-29 10:00:01", "2026-11-29 12:00:00"));
    auto result = check("CHG0001234");
    EXPECT_FALSE(result.ok);
    EXPECT_NE(result.why.find("has not started"), std::string::npos) << result.why;

    answer(200, change("approved", "2026-11-28 22:00:00", "2026-11-29 09:59:59"));
    result = check("CHG0001234");
    EXPECT_FALSE(result.ok);
    EXPECT_NE(result.why.find("is over"), std::string::npos) << result.why;
}

TEST_F(NotifyTicket, NotFoundIsNotOk) {
    answer(404, R"({"error":{"message":"No Record found"}})");
    const auto result = check("CHG0009999");
    EXPECT_FALSE(result.ok);
    EXPECT_NE(result.why.find("answered 404"), std::string::npos) << result.why;
}

TEST_F(NotifyTicket, BadJsonIsNotOk) {
    answer(200, "<html>login page</html>");
    const auto result = check("CHG0001234");
    EXPECT_FALSE(result.ok);
    EXPECT_NE(result.why.find("not JSON"), std::string::npos) << result.why;
}

TEST_F(NotifyTicket, MissingOrBadFieldsAreNotOk) {
    answer(200, R"({"result":[]})"); // ServiceNow's answer for an unknown number
    auto result = check("CHG0001234");
    EXPECT_FALSE(result.ok);
    EXPECT_NE(result.why.find("has no \"result.0.approval\""), std::string::npos) << result.why;

    answer(200, change("approved", "", "2026-11-29 12:00:00")); // no planned start
    result = check("CHG0001234");
    EXPECT_FALSE(result.ok);
    EXPECT_NE(result.why.find("result.0.start_date"), std::string::npos) << result.why;

    answer(200, change("approved", "2026-11-29 09:00:00", "tomorrow"));
    result = check("CHG0001234");
    EXPECT_FALSE(result.ok);
    EXPECT_NE(result.why.find("\"tomorrow\""), std::string::npos) << result.why;
}

TEST_F(NotifyTicket, HostileTicketIsRefusedBeforeAnyCall) {
    for (const std::string& ticket : {std::string("CHG1^ORnumberISNOTEMPTY"), std::string("CHG1&sysparm_limit=1000"),
                                      std::string("../../sys_user"), std::string("CHG 1"), std::string(""),
                                      std::string(101, 'A'), std::string("CHG1\r\nX: y"), std::string("CHG\xC3\xA9")}) {
        const auto result = check(ticket);
        EXPECT_FALSE(result.ok) << ticket;
        EXPECT_NE(result.why.find("refused without asking"), std::string::npos) << result.why;
    }
    EXPECT_TRUE(m_peer->received().empty());
}

TEST_F(NotifyTicket, HugeAnswerIsNotOk) {
    answer(200, R"({"result":[{"approval":"approved","pad":")" + std::string(2 * 1024 * 1024, 'x') + "\"}]}");
    const auto result = check("CHG0001234");
    EXPECT_FALSE(result.ok);
    EXPECT_NE(result.why.find("larger than 1 MiB"), std::string::npos) << result.why;
}

TEST_F(NotifyTicket, RedirectIsNotFollowed) {
    m_peer->queue(Answer{302, "", "text/plain", {{"Location", m_peer->url("/login")}}});
    const auto result = check("CHG0001234");
    EXPECT_FALSE(result.ok);
    EXPECT_NE(result.why.find("302"), std::string::npos) << result.why;
    EXPECT_EQ(m_peer->received().size(), 1u);
}

TEST_F(NotifyTicket, CertificateFromAnotherCaIsNotOk) {
    HttpsPeer impostor(*s_pki / "other-server.pem", *s_pki / "other-server.key");
    m_settings.url = impostor.url("/api/now/table/change_request?number={ticket}");
    const auto result = check("CHG0001234");
    EXPECT_FALSE(result.ok);
    EXPECT_NE(result.why.find("cannot reach the ticket system"), std::string::npos) << result.why;
    EXPECT_TRUE(impostor.received().empty());
}

TEST_F(NotifyTicket, UnreachableIsNotOk) {
    m_settings.url = "https://127.0.0.1:" + std::to_string(jitgate::test::closed_port()) + "/x?n={ticket}";
    const auto result = check("CHG0001234");
    EXPECT_FALSE(result.ok);
    EXPECT_NE(result.why.find("cannot reach"), std::string::npos) << result.why;
}

TEST_F(NotifyTicket, CheckerRunsOnItsWorkerAndCallsBack) {
    ScratchDir dir;
    std::ofstream(dir / "token") << "worker-token\n";
    m_settings.token_file = dir / "token";
    answer(200, change("approved", "2026-11-29 09:00:00", "2026-11-29 12:00:00"));
    answer(200, change("rejected", "2026-11-29 09:00:00", "2026-11-29 12:00:00"));

    std::mutex mutex;
    std::condition_variable cv;
    std::vector<std::pair<std::string, notify::TicketAnswer>> results;
    std::vector<std::thread::id> threads;
    notify::TicketChecker checker(m_settings, [] { return k_now; });
    for (const char* ticket : {"CHG0000001", "CHG0000002", "bad ticket!"}) {
        ASSERT_TRUE(checker.post(ticket, [&, t = std::string(ticket)](const notify::TicketAnswer& a) {
            std::lock_guard lock(mutex);
            results.emplace_back(t, a);
            threads.push_back(std::this_thread::get_id());
            cv.notify_all();
        }));
    }
    {
        std::unique_lock lock(mutex);
        ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return results.size() == 3; }));
    }
    checker.stop();
    EXPECT_EQ(results[0].first, "CHG0000001");
    EXPECT_TRUE(results[0].second.ok) << results[0].second.why;
    EXPECT_FALSE(results[1].second.ok);
    EXPECT_FALSE(results[2].second.ok);
    for (const auto& id : threads) EXPECT_NE(id, std::this_thread::get_id());
    const auto got = m_peer->received();
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].header("Authorization"), "Bearer worker-token");
    // After stop(), nothing is accepted.
    EXPECT_FALSE(checker.post("CHG0000003", [](const notify::TicketAnswer&) {}));
}

TEST(NotifyTicketPure, DottedPaths) {
    const json doc = json::parse(R"({"result":[{"approval":"approved","n":{"x":[1,2,{"y":true}]}}],"top":"v"})");
    ASSERT_NE(notify::find_field(doc, "result.0.approval"), nullptr);
    EXPECT_EQ(*notify::find_field(doc, "result.0.approval"), "approved");
    EXPECT_EQ(*notify::find_field(doc, "top"), "v");
    EXPECT_EQ(*notify::find_field(doc, "result.0.n.x.2.y"), true);
    EXPECT_EQ(notify::find_field(doc, "result.1.approval"), nullptr);
    EXPECT_EQ(notify::find_field(doc, "result.x.approval"), nullptr);
    EXPECT_EQ(notify::find_field(doc, "result.-1"), nullptr);
    EXPECT_EQ(notify::find_field(doc, "result..approval"), nullptr);
    EXPECT_EQ(notify::find_field(doc, ""), nullptr);
    EXPECT_EQ(notify::find_field(doc, "top.0"), nullptr);
    EXPECT_EQ(notify::find_field(doc, "result.0."), nullptr);
}

TEST(NotifyTicketPure, Dates) {
    EXPECT_EQ(notify::parse_ticket_time("1970-01-01 00:00:00"), 0);
    EXPECT_EQ(notify::parse_ticket_time("2027-01-15 08:00:00"), 1'800'000'000);
    EXPECT_EQ(notify::parse_ticket_time("2027-01-15T08:00:00"), 1'800'000'000);
    EXPECT_EQ(notify::parse_ticket_time("2027-01-15T08:00:00Z"), 1'800'000'000);
    for (const char* bad :
         {"", "2027-01-15", "2027-02-30 00:00:00", "2027-13-01 00:00:00", "2027-01-15 24:00:00",
          "2027-01-15 08:00:00+02:00", "2027/01/15 08:00:00", " 2027-01-15 08:00:00", "2027-01-15 08:00:0x"})
        EXPECT_FALSE(notify::parse_ticket_time(bad).has_value()) << bad;
}

TEST(NotifyTicketPure, DecisionWithOtherFieldNames) {
    jitgate::server::config::Config::TicketCheck settings;
    settings.approved_field = "fields.approved";
    settings.approved_value = "true";
    settings.window_start_field = "fields.window.0";
    settings.window_end_field = "fields.window.1";
    const json yes =
        json::parse(R"({"fields":{"approved":true,"window":["2026-11-29T09:00:00Z","2026-11-29T11:00:00Z"]}})");
    EXPECT_TRUE(notify::decide_ticket(yes, settings, k_now).ok);
    const json no =
        json::parse(R"({"fields":{"approved":false,"window":["2026-11-29 09:00:00","2026-11-29 11:00:00"]}})");
    EXPECT_FALSE(notify::decide_ticket(no, settings, k_now).ok);
    const json odd = json::parse(R"({"fields":{"approved":{"v":true},"window":[]}})");
    EXPECT_FALSE(notify::decide_ticket(odd, settings, k_now).ok);
}

TEST(NotifyTicketPure, UrlAndTicketShape) {
    EXPECT_EQ(notify::ticket_url("https://x/a?q={ticket}&r={ticket}", "CHG1"), "https://x/a?q=CHG1&r=CHG1");
    EXPECT_TRUE(notify::ticket_is_acceptable("CHG0001234"));
    EXPECT_TRUE(notify::ticket_is_acceptable("INC-1.2_3"));
    EXPECT_FALSE(notify::ticket_is_acceptable("CHG1/2"));
    EXPECT_FALSE(notify::ticket_is_acceptable("{ticket}"));
    const auto answer = notify::TicketAnswer{false, "why \"quoted\""};
    const json stored = json::parse(answer.to_json(42));
    EXPECT_EQ(stored["ok"], false);
    EXPECT_EQ(stored["why"], "why \"quoted\"");
    EXPECT_EQ(stored["checked_at"], 42);
}

TEST(NotifyTicketPure, TokenFile) {
    ScratchDir dir;
    std::ofstream(dir / "good") << "  abc.def \nrest\n";
    std::ofstream(dir / "empty") << "";
    std::ofstream(dir / "control") << "abc\x01"
                                      "def\n";
    EXPECT_EQ(notify::read_token_file(dir / "good"), "abc.def");
    EXPECT_THROW(notify::read_token_file(dir / "empty"), jitgate::Error);
    EXPECT_THROW(notify::read_token_file(dir / "control"), jitgate::Error);
    EXPECT_THROW(notify::read_token_file(dir / "missing"), jitgate::Error);
}

} // namespace
