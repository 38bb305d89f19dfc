// tests/unit/test_server_notify_notifier.cpp — server/notify/notifier: the outbox loop against a
// real HTTPS receiver on 127.0.0.1, with an injected clock. The outbox is OutboxDouble, a test
// double of the Store's outbox methods only, until the real SQLite store lands (the lead switches
// these tests to store::open_sqlite at merge).
#include "server/notify/notifier.hpp"

#include "server_notify_peers.hpp"
#include "server_outbox_double.hpp"

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/notify/notice.hpp"

namespace {

namespace notify = jitgate::server::notify;
using jitgate::test::Answer;
using jitgate::test::HttpsPeer;
using jitgate::test::OutboxDouble;
using jitgate::test::ScratchDir;
using nlohmann::json;
using State = OutboxDouble::State;
using namespace std::chrono_literals;

constexpr const char* k_secret = "notifier-test-secret";

// Waits (up to 30 s, so a hung notifier fails instead of hanging the run) until `done`.
bool eventually(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

class NotifyNotifier : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        ASSERT_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
        s_pki = std::make_unique<ScratchDir>();
        jitgate::test::make_pki(s_pki->path());
    }
    static void TearDownTestSuite() { s_pki.reset(); }

    void SetUp() override {
        m_peer = std::make_unique<HttpsPeer>(*s_pki / "server.pem", *s_pki / "server.key");
        notify::Target t;
        t.name = "siem";
        t.url = m_peer->url("/hook");
        t.format = notify::Format::json;
        t.secret = k_secret;
        t.ca_file = *s_pki / "ca.pem";
        m_targets = {t};
    }

    notify::Clock clock() {
        return [this] { return m_now.load(); };
    }
    notify::Log log() {
        return [this](std::string_view line) {
            std::lock_guard lock(m_log_mutex);
            m_log.emplace_back(line);
        };
    }
    std::vector<std::string> logged() {
        std::lock_guard lock(m_log_mutex);
        return m_log;
    }
    notify::PassResult pass() {
        return notify::run_pass(
            m_outbox, m_targets, clock(), notify::NotifierOptions{}, [] { return 0.0; }, log());
    }
    std::string notice_body(const std::string& delivery_id) {
        notify::RequestFacts f;
        f.host = "db1";
        f.id = "R-42";
        f.requester = "alice";
        return notify::json_body(notify::EventKind::filed, f, "approvals", delivery_id, m_now.load());
    }

    static std::unique_ptr<ScratchDir> s_pki;
    std::unique_ptr<HttpsPeer> m_peer;
    std::vector<notify::Target> m_targets;
    OutboxDouble m_outbox;
    std::atomic<std::int64_t> m_now{1'800'000'000};
    std::mutex m_log_mutex;
    std::vector<std::string> m_log;
};

std::unique_ptr<ScratchDir> NotifyNotifier::s_pki;

TEST_F(NotifyNotifier, ServerErrorIsRetriedThenDelivered) {
    m_peer->queue(Answer{500, "try later"});
    m_outbox.enqueue("siem", notice_body("d-500"), m_now);

    const auto first = pass();
    EXPECT_EQ(first.claimed, 1u);
    EXPECT_EQ(first.retried, 1u);
    auto row = m_outbox.row(1);
    EXPECT_EQ(row.state, State::waiting);
    EXPECT_EQ(row.notice.attempts, 1);
    EXPECT_EQ(row.notice.next_attempt_at, m_now + 5); // first backoff, no jitter
    ASSERT_TRUE(first.next_due.has_value());
    EXPECT_EQ(*first.next_due, m_now + 5);
    EXPECT_NE(row.notice.last_error.find("500"), std::string::npos) << row.notice.last_error;

    // Not due yet: nothing is claimed, nothing sent.
    EXPECT_EQ(pass().claimed, 0u);
    EXPECT_EQ(m_peer->received().size(), 1u);

    m_now += 5;
    const auto second = pass();
    EXPECT_EQ(second.delivered, 1u);
    EXPECT_EQ(m_outbox.row(1).state, State::delivered);
    const auto got = m_peer->received();
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].body, got[1].body);
    EXPECT_EQ(got[1].header("Jitgate-Delivery"), "d-500");
    // Each attempt is signed at its own time, so a receiver's 5-minute window holds for retries.
    EXPECT_EQ(got[1].header("Jitgate-Signature").rfind("t=" + std::to_string(m_now.load()) + ",v1=", 0), 0u);
    for (const auto& line : logged()) EXPECT_EQ(line.find(k_secret), std::string::npos) << line;
}

TEST_F(NotifyNotifier, ClientErrorIsDroppedAndAudited) {
    m_peer->queue(Answer{400, "invalid_payload"});
    m_outbox.enqueue("siem", notice_body("d-400"), m_now);
    const auto result = pass();
    EXPECT_EQ(result.dropped, 1u);
    const auto row = m_outbox.row(1);
    EXPECT_EQ(row.state, State::dropped);
    EXPECT_NE(row.notice.last_error.find("400"), std::string::npos);
    const auto events = m_outbox.recorded();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].type, "notice.dropped");
    EXPECT_EQ(events[0].actor, "server");
    EXPECT_EQ(events[0].host, "db1");
    EXPECT_EQ(events[0].request_id, "R-42");
    EXPECT_EQ(events[0].at, m_now.load());
    EXPECT_EQ(json::parse(events[0].detail)["attempts"], 1);
    const json detail = json::parse(events[0].detail);
    EXPECT_EQ(detail["target"], "siem");
    EXPECT_EQ(detail["notice_id"], 1);
    EXPECT_NE(detail["error"].get<std::string>().find("invalid_payload"), std::string::npos);
    // Never tried again.
    m_now += 86400;
    EXPECT_EQ(pass().claimed, 0u);
    EXPECT_EQ(m_peer->received().size(), 1u);
}

TEST_F(NotifyNotifier, ReceiverDownIsRetried) {
    m_targets[0].url = "https://127.0.0.1:" + std::to_string(jitgate::test::closed_port()) + "/hook";
    m_outbox.enqueue("siem", notice_body("d-down"), m_now);
    EXPECT_EQ(pass().retried, 1u);
    EXPECT_EQ(m_outbox.row(1).state, State::waiting);
    EXPECT_EQ(m_outbox.row(1).notice.attempts, 1);
}

TEST_F(NotifyNotifier, RetriesEndAfterTwentyFourHours) {
    m_peer->set_default(Answer{503, ""});
    m_outbox.enqueue("siem", notice_body("d-old"), m_now);
    m_outbox.set_attempts(1, 148);
    EXPECT_EQ(pass().retried, 1u); // failure 149: still within 24 h
    m_now += 600;
    const auto last = pass(); // failure 150: 24 h reached
    EXPECT_EQ(last.dropped, 1u);
    EXPECT_EQ(m_outbox.row(1).state, State::dropped);
    EXPECT_NE(m_outbox.row(1).notice.last_error.find("24 h"), std::string::npos);
    EXPECT_EQ(m_outbox.recorded().size(), 1u);
}

TEST_F(NotifyNotifier, NoticeForAnUnconfiguredWebhookIsDropped) {
    m_outbox.enqueue("removed-hook", notice_body("d-x"), m_now);
    EXPECT_EQ(pass().dropped, 1u);
    EXPECT_NE(m_outbox.row(1).notice.last_error.find("removed-hook"), std::string::npos);
    EXPECT_TRUE(m_peer->received().empty());
}

// The thread: wake() starts a pass at once (the poll interval is far longer than the test may
// take), a failure waits for its time on the injected clock, stop() joins.
TEST_F(NotifyNotifier, ThreadDeliversOnWakeAndRetriesWhenDue) {
    notify::NotifierOptions options;
    options.poll = 600s;
    OutboxDouble shared = m_outbox;
    notify::Notifier notifier(
        m_targets, [shared] { return std::make_unique<OutboxDouble>(shared); }, clock(), options, log());
    notifier.start();
    ASSERT_TRUE(eventually([&] { return notifier.passes() >= 1; }));

    m_outbox.enqueue("siem", notice_body("d-thread-1"), m_now);
    notifier.wake();
    ASSERT_TRUE(eventually([&] { return m_outbox.row(1).state == State::delivered; }));

    m_peer->queue(Answer{502, "bad gateway"});
    m_outbox.enqueue("siem", notice_body("d-thread-2"), m_now);
    notifier.wake();
    // The failure is recorded (attempts alone is counted when the notice is claimed).
    ASSERT_TRUE(eventually([&] { return !m_outbox.row(2).notice.last_error.empty(); }));
    EXPECT_EQ(m_outbox.row(2).notice.attempts, 1);
    EXPECT_EQ(m_outbox.row(2).state, State::waiting);

    m_now += 10; // past the first backoff (5 s ± 20 %)
    notifier.wake();
    ASSERT_TRUE(eventually([&] { return m_outbox.row(2).state == State::delivered; }));
    notifier.stop();
    const auto got = m_peer->received();
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[2].header("Jitgate-Delivery"), "d-thread-2");
}

// A database that cannot be opened is logged and tried again; nothing escapes the thread.
TEST_F(NotifyNotifier, ThreadSurvivesAnUnavailableDatabase) {
    notify::NotifierOptions options;
    options.poll = 50ms;
    OutboxDouble shared = m_outbox;
    std::atomic<int> opens{0};
    notify::Notifier notifier(
        m_targets,
        [shared, &opens]() -> std::unique_ptr<jitgate::server::store::Store> {
            if (++opens <= 2) throw std::runtime_error("database is locked");
            return std::make_unique<OutboxDouble>(shared);
        },
        clock(), options, log());
    m_outbox.enqueue("siem", notice_body("d-db"), m_now);
    notifier.start();
    ASSERT_TRUE(eventually([&] { return m_outbox.row(1).state == State::delivered; }));
    notifier.stop();
    EXPECT_GE(opens.load(), 3);
    const auto lines = logged();
    ASSERT_FALSE(lines.empty());
    EXPECT_NE(lines[0].find("database is locked"), std::string::npos) << lines[0];
}

TEST_F(NotifyNotifier, StopWithoutStartAndTwiceIsHarmless) {
    notify::Notifier notifier(
        m_targets, [] { return std::make_unique<OutboxDouble>(); }, clock());
    notifier.stop();
    notifier.stop();
    notifier.start(); // after stop(): does nothing
    EXPECT_EQ(notifier.passes(), 0u);
}

} // namespace
