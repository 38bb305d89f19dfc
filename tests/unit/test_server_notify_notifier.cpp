// tests/unit/test_server_notify_notifier.cpp — server/notify/notifier: the outbox loop against a
// real HTTPS receiver on 127.0.0.1, with an injected clock. The outbox is the real SQLite store
// (store::open_sqlite on a scratch file, after store::migrate_sqlite); the tests read the notice
// rows and the audit events back through the sqlite3 C API on the same file.
#include "server/notify/notifier.hpp"

#include "server_notify_peers.hpp"

#include <curl/curl.h>
#include <sqlite3.h>

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
#include "server/store/store.hpp"

namespace {

namespace notify = jitgate::server::notify;
using jitgate::test::Answer;
using jitgate::test::HttpsPeer;
using jitgate::test::ScratchDir;
using nlohmann::json;
namespace store = jitgate::server::store;
using namespace std::chrono_literals;

// A notice row's delivery state, as the `notices` table stores it (server/store/migrations.cpp).
enum class State { waiting, delivered, dropped };

// Reads the outbox and the events of a migrated SQLite file directly (its own connection, so
// it sees what the notifier's connection committed). Throws on any SQLite failure.
class Inspect {
public:
    explicit Inspect(const std::string& path) {
        if (sqlite3_open_v2(path.c_str(), &m_db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
            const std::string message = m_db != nullptr ? sqlite3_errmsg(m_db) : "out of memory";
            sqlite3_close(m_db);
            throw std::runtime_error("cannot open " + path + ": " + message);
        }
        sqlite3_busy_timeout(m_db, 10000);
    }
    ~Inspect() { sqlite3_close(m_db); }
    Inspect(const Inspect&) = delete;
    Inspect& operator=(const Inspect&) = delete;

    struct Row {
        store::Notice notice;
        State state = State::waiting;
    };
    Row row(std::int64_t id) {
        Statement q(m_db, "SELECT id, target, body, attempts, next_attempt_at, last_error, state "
                          "FROM notices WHERE id = ?1");
        sqlite3_bind_int64(q.get(), 1, id);
        if (q.step() != SQLITE_ROW) throw std::runtime_error("no notice " + std::to_string(id));
        Row r;
        r.notice.id = sqlite3_column_int64(q.get(), 0);
        r.notice.target = q.text(1);
        r.notice.body = q.text(2);
        r.notice.attempts = sqlite3_column_int(q.get(), 3);
        r.notice.next_attempt_at = sqlite3_column_int64(q.get(), 4);
        r.notice.last_error = q.text(5);
        const std::string state = q.text(6);
        if (state == "pending")
            r.state = State::waiting;
        else if (state == "delivered")
            r.state = State::delivered;
        else if (state == "dropped")
            r.state = State::dropped;
        else
            throw std::runtime_error("unknown notice state " + state);
        return r;
    }
    // Every audit event in the database, oldest first.
    std::vector<store::Event> events() {
        Statement q(m_db, "SELECT at, type, host, request_id, actor, identity, source_address, detail "
                          "FROM events ORDER BY id");
        std::vector<store::Event> out;
        while (q.step() == SQLITE_ROW)
            out.push_back(store::Event{sqlite3_column_int64(q.get(), 0), q.text(1), q.text(2), q.text(3), q.text(4),
                                       q.text(5), q.text(6), q.text(7)});
        return out;
    }
    // Sets a notice's attempts so far (a notice retried for a long time).
    void set_attempts(std::int64_t id, int attempts) {
        Statement q(m_db, "UPDATE notices SET attempts = ?2 WHERE id = ?1");
        sqlite3_bind_int64(q.get(), 1, id);
        sqlite3_bind_int(q.get(), 2, attempts);
        if (q.step() != SQLITE_DONE || sqlite3_changes(m_db) != 1)
            throw std::runtime_error("cannot set attempts of notice " + std::to_string(id));
    }
    // The id of the newest notice.
    std::int64_t last_notice() {
        Statement q(m_db, "SELECT max(id) FROM notices");
        if (q.step() != SQLITE_ROW || sqlite3_column_type(q.get(), 0) == SQLITE_NULL)
            throw std::runtime_error("no notice in the outbox");
        return sqlite3_column_int64(q.get(), 0);
    }

private:
    class Statement {
    public:
        Statement(sqlite3* db, const char* sql) : m_db(db) {
            if (sqlite3_prepare_v2(db, sql, -1, &m_stmt, nullptr) != SQLITE_OK)
                throw std::runtime_error(std::string("sqlite: ") + sqlite3_errmsg(db));
        }
        ~Statement() { sqlite3_finalize(m_stmt); }
        Statement(const Statement&) = delete;
        Statement& operator=(const Statement&) = delete;
        sqlite3_stmt* get() const { return m_stmt; }
        int step() {
            const int rc = sqlite3_step(m_stmt);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                throw std::runtime_error(std::string("sqlite: ") + sqlite3_errmsg(m_db));
            return rc;
        }
        std::string text(int column) const {
            const auto* p = sqlite3_column_text(m_stmt, column);
            return p != nullptr ? std::string(reinterpret_cast<const char*>(p),
                                              static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, column)))
                                : std::string();
        }

    private:
        sqlite3* m_db;
        sqlite3_stmt* m_stmt = nullptr;
    };
    sqlite3* m_db = nullptr;
};

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
        m_db_dir = std::make_unique<ScratchDir>();
        m_db_path = *m_db_dir / "server.db";
        ASSERT_EQ(store::migrate_sqlite(m_db_path), 0);
        m_store = store::open_sqlite(m_db_path);
        m_inspect = std::make_unique<Inspect>(m_db_path);
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
    // Puts a notice in the outbox (through the Store, as the decision path does); returns its id.
    std::int64_t enqueue(const std::string& target, const std::string& body) {
        m_store->enqueue(target, body, m_now.load());
        return m_inspect->last_notice();
    }
    Inspect::Row row(std::int64_t id) { return m_inspect->row(id); }
    // A Store factory for the notifier's thread: its own connection to the same file.
    notify::StoreFactory open_store() {
        return [path = m_db_path] { return store::open_sqlite(path); };
    }
    notify::PassResult pass() {
        return notify::run_pass(
            *m_store, m_targets, clock(), notify::NotifierOptions{}, [] { return 0.0; }, log());
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
    std::unique_ptr<ScratchDir> m_db_dir;
    std::string m_db_path;
    std::unique_ptr<store::Store> m_store;
    std::unique_ptr<Inspect> m_inspect;
    std::atomic<std::int64_t> m_now{1'800'000'000};
    std::mutex m_log_mutex;
    std::vector<std::string> m_log;
};

std::unique_ptr<ScratchDir> NotifyNotifier::s_pki;

TEST_F(NotifyNotifier, ServerErrorIsRetriedThenDelivered) {
    m_peer->queue(Answer{500, "try later"});
    const auto id = enqueue("siem", notice_body("d-500"));

    const auto first = pass();
    EXPECT_EQ(first.claimed, 1u);
    EXPECT_EQ(first.retried, 1u);
    auto r = row(id);
    EXPECT_EQ(r.state, State::waiting);
    EXPECT_EQ(r.notice.attempts, 1);
    EXPECT_EQ(r.notice.next_attempt_at, m_now + 5); // first backoff, no jitter
    ASSERT_TRUE(first.next_due.has_value());
    EXPECT_EQ(*first.next_due, m_now + 5);
    EXPECT_NE(r.notice.last_error.find("500"), std::string::npos) << r.notice.last_error;

    // Not due yet: nothing is claimed, nothing sent.
    EXPECT_EQ(pass().claimed, 0u);
    EXPECT_EQ(m_peer->received().size(), 1u);

    m_now += 5;
    const auto second = pass();
    EXPECT_EQ(second.delivered, 1u);
    EXPECT_EQ(row(id).state, State::delivered);
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
    const auto id = enqueue("siem", notice_body("d-400"));
    const auto result = pass();
    EXPECT_EQ(result.dropped, 1u);
    const auto r = row(id);
    EXPECT_EQ(r.state, State::dropped);
    EXPECT_NE(r.notice.last_error.find("400"), std::string::npos);
    const auto events = m_inspect->events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].type, "notice.dropped");
    EXPECT_EQ(events[0].actor, "server");
    EXPECT_EQ(events[0].host, "db1");
    EXPECT_EQ(events[0].request_id, "R-42");
    EXPECT_EQ(events[0].at, m_now.load());
    EXPECT_EQ(json::parse(events[0].detail)["attempts"], 1);
    const json detail = json::parse(events[0].detail);
    EXPECT_EQ(detail["target"], "siem");
    EXPECT_EQ(detail["notice_id"], id);
    EXPECT_NE(detail["error"].get<std::string>().find("invalid_payload"), std::string::npos);
    // Never tried again.
    m_now += 86400;
    EXPECT_EQ(pass().claimed, 0u);
    EXPECT_EQ(m_peer->received().size(), 1u);
}

TEST_F(NotifyNotifier, ReceiverDownIsRetried) {
    m_targets[0].url = "https://127.0.0.1:" + std::to_string(jitgate::test::closed_port()) + "/hook";
    const auto id = enqueue("siem", notice_body("d-down"));
    EXPECT_EQ(pass().retried, 1u);
    EXPECT_EQ(row(id).state, State::waiting);
    EXPECT_EQ(row(id).notice.attempts, 1);
}

TEST_F(NotifyNotifier, RetriesEndAfterTwentyFourHours) {
    m_peer->set_default(Answer{503, ""});
    const auto id = enqueue("siem", notice_body("d-old"));
    m_inspect->set_attempts(id, 148);
    EXPECT_EQ(pass().retried, 1u); // failure 149: still within 24 h
    m_now += 600;
    const auto last = pass(); // failure 150: 24 h reached
    EXPECT_EQ(last.dropped, 1u);
    EXPECT_EQ(row(id).state, State::dropped);
    EXPECT_NE(row(id).notice.last_error.find("24 h"), std::string::npos);
    EXPECT_EQ(m_inspect->events().size(), 1u);
}

TEST_F(NotifyNotifier, NoticeForAnUnconfiguredWebhookIsDropped) {
    const auto id = enqueue("removed-hook", notice_body("d-x"));
    EXPECT_EQ(pass().dropped, 1u);
    EXPECT_NE(row(id).notice.last_error.find("removed-hook"), std::string::npos);
    EXPECT_TRUE(m_peer->received().empty());
}

// The thread: wake() starts a pass at once (the poll interval is far longer than the test may
// take), a failure waits for its time on the injected clock, stop() joins.
TEST_F(NotifyNotifier, ThreadDeliversOnWakeAndRetriesWhenDue) {
    notify::NotifierOptions options;
    options.poll = 600s;
    notify::Notifier notifier(m_targets, open_store(), clock(), options, log());
    notifier.start();
    ASSERT_TRUE(eventually([&] { return notifier.passes() >= 1; }));

    const auto first = enqueue("siem", notice_body("d-thread-1"));
    notifier.wake();
    ASSERT_TRUE(eventually([&] { return row(first).state == State::delivered; }));

    m_peer->queue(Answer{502, "bad gateway"});
    const auto second = enqueue("siem", notice_body("d-thread-2"));
    notifier.wake();
    // The failure is recorded (attempts alone is counted when the notice is claimed).
    ASSERT_TRUE(eventually([&] { return !row(second).notice.last_error.empty(); }));
    EXPECT_EQ(row(second).notice.attempts, 1);
    EXPECT_EQ(row(second).state, State::waiting);

    m_now += 10; // past the first backoff (5 s ± 20 %)
    notifier.wake();
    ASSERT_TRUE(eventually([&] { return row(second).state == State::delivered; }));
    notifier.stop();
    const auto got = m_peer->received();
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[2].header("Jitgate-Delivery"), "d-thread-2");
}

// A database that cannot be opened is logged and tried again; nothing escapes the thread.
TEST_F(NotifyNotifier, ThreadSurvivesAnUnavailableDatabase) {
    notify::NotifierOptions options;
    options.poll = 50ms;
    std::atomic<int> opens{0};
    notify::Notifier notifier(
        m_targets,
        [path = m_db_path, &opens]() -> std::unique_ptr<store::Store> {
            if (++opens <= 2) throw std::runtime_error("database is locked");
            return store::open_sqlite(path);
        },
        clock(), options, log());
    const auto id = enqueue("siem", notice_body("d-db"));
    notifier.start();
    ASSERT_TRUE(eventually([&] { return row(id).state == State::delivered; }));
    notifier.stop();
    EXPECT_GE(opens.load(), 3);
    const auto lines = logged();
    ASSERT_FALSE(lines.empty());
    EXPECT_NE(lines[0].find("database is locked"), std::string::npos) << lines[0];
}

TEST_F(NotifyNotifier, StopWithoutStartAndTwiceIsHarmless) {
    notify::Notifier notifier(m_targets, open_store(), clock());
    notifier.stop();
    notifier.stop();
    notifier.start(); // after stop(): does nothing
    EXPECT_EQ(notifier.passes(), 0u);
}

} // namespace
