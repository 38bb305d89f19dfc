// Unit tests of the live-session registry (daemon/policy/live.hpp) and the broker's session
// operations (live_ops.cpp): pid-reuse guard, deadlines, warning then end, keep, revoke, done,
// requests. Real child processes stand in for sudo front ends where a signal must land.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "daemon/policy/broker.hpp"
#include "daemon/policy/live.hpp"

namespace {

using namespace jitgate;
using namespace std::chrono_literals;
using live::Clock;

// A world of fake processes: pid → start time; records what the registry writes and sends.
struct FakeWorld {
    std::map<pid_t, std::uint64_t> procs;
    std::vector<std::pair<std::string, std::string>> lines; // tty, line
    std::vector<std::pair<pid_t, int>> signals;
    std::map<pid_t, std::string> below; // terminal_below()

    live::Effects effects() {
        live::Effects e;
        e.start_time = [this](pid_t pid) -> std::optional<std::uint64_t> {
            const auto it = procs.find(pid);
            if (it == procs.end()) return std::nullopt;
            return it->second;
        };
        e.write_tty = [this](const std::string& tty, const std::string& line) {
            lines.emplace_back(tty, line);
            return true;
        };
        e.signal = [this](pid_t pid, std::uint64_t start, int sig) {
            const auto it = procs.find(pid);
            if (pid <= 1 || it == procs.end() || it->second != start) return live::SignalResult::gone;
            signals.emplace_back(pid, sig);
            return live::SignalResult::sent;
        };
        // The terminal each process has now: by default the one session_of() reports.
        e.find_tty = [this](pid_t pid) {
            const auto it = below.find(pid);
            return it != below.end() ? it->second : std::string("/dev/pts/7");
        };
        e.now_unix = [] { return std::int64_t{1'700'000'000}; };
        return e;
    }
};

live::Session session_of(pid_t pid, Clock::time_point expires, std::string grant = "G-1", bool keep = false) {
    live::Session s;
    s.kind = "sudo";
    s.user = "alice";
    s.pid = pid;
    s.tty = "/dev/pts/7";
    s.grant_id = std::move(grant);
    s.request_id = "R-1";
    s.expires = expires;
    s.expires_unix = 1'700'000'600;
    s.keep = keep;
    return s;
}

TEST(LiveRegistry, WarnsBeforeTheEndThenEndsThenKillsAfterTheGrace) {
    FakeWorld w;
    w.procs[4242] = 111;
    live::Registry reg(w.effects());
    reg.set_options({120s, 5s, 16});
    const auto t0 = Clock::now();
    ASSERT_TRUE(reg.add(session_of(4242, t0 + 600s), t0));
    ASSERT_TRUE(reg.next_deadline());
    EXPECT_EQ(*reg.next_deadline(), t0 + 480s) << "the warning is due warn_before ahead of the end";
    EXPECT_TRUE(reg.tick(t0 + 479s).empty());
    EXPECT_TRUE(w.lines.empty());
    EXPECT_TRUE(reg.tick(t0 + 480s).empty()) << "a warning is no ending";
    ASSERT_EQ(w.lines.size(), 1u);
    EXPECT_EQ(w.lines[0].first, "/dev/pts/7");
    EXPECT_NE(w.lines[0].second.find("grant G-1 ends in 2m"), std::string::npos) << w.lines[0].second;
    EXPECT_TRUE(w.signals.empty());
    EXPECT_EQ(*reg.next_deadline(), t0 + 600s);
    const auto ended = reg.tick(t0 + 600s);
    ASSERT_EQ(ended.size(), 1u);
    EXPECT_EQ(ended[0].reason, "expiry");
    EXPECT_TRUE(ended[0].signalled);
    EXPECT_TRUE(ended[0].tty_told);
    ASSERT_EQ(w.signals.size(), 2u);
    EXPECT_EQ(w.signals[0], std::make_pair(pid_t{4242}, SIGHUP));
    EXPECT_EQ(w.signals[1], std::make_pair(pid_t{4242}, SIGTERM));
    EXPECT_NE(w.lines.back().second.find("has expired"), std::string::npos);
    EXPECT_EQ(*reg.next_deadline(), t0 + 605s) << "SIGKILL after the grace period";
    const auto killed = reg.tick(t0 + 605s);
    ASSERT_EQ(w.signals.size(), 3u);
    EXPECT_EQ(w.signals[2], std::make_pair(pid_t{4242}, SIGKILL));
    ASSERT_EQ(killed.size(), 1u) << "the SIGKILL is recorded";
    EXPECT_EQ(killed[0].reason, "killed");
    EXPECT_TRUE(killed[0].signalled);
    EXPECT_EQ(reg.size(), 0u);
    EXPECT_FALSE(reg.next_deadline());
}

TEST(LiveRegistry, AReusedPidIsNeverSignalled) {
    FakeWorld w;
    w.procs[4242] = 111;
    live::Registry reg(w.effects());
    reg.set_options({0s, 5s, 16});
    const auto t0 = Clock::now();
    ASSERT_TRUE(reg.add(session_of(4242, t0 + 10s), t0));
    w.procs[4242] = 999; // the sudo exited without a report; another process got its pid
    EXPECT_TRUE(reg.tick(t0 + 10s).empty());
    EXPECT_TRUE(w.signals.empty()) << "a process that is not the recorded one";
    EXPECT_TRUE(w.lines.empty()) << "nor is its terminal told anything";
    EXPECT_EQ(reg.size(), 0u) << "forgotten";
}

TEST(LiveRegistry, ReuseBetweenTheEndAndTheKillIsNotKilled) {
    FakeWorld w;
    w.procs[4242] = 111;
    live::Registry reg(w.effects());
    reg.set_options({0s, 5s, 16});
    const auto t0 = Clock::now();
    ASSERT_TRUE(reg.add(session_of(4242, t0 + 10s), t0));
    ASSERT_EQ(reg.tick(t0 + 10s).size(), 1u);
    w.procs[4242] = 222;
    reg.tick(t0 + 15s);
    EXPECT_EQ(w.signals.size(), 2u) << "HUP and TERM only: no SIGKILL for the new process";
}

TEST(LiveRegistry, InitAndBadPidsAreNeverRecorded) {
    FakeWorld w;
    w.procs[1] = 5;
    w.procs[0] = 5;
    live::Registry reg(w.effects());
    const auto t0 = Clock::now();
    EXPECT_FALSE(reg.add(session_of(1, t0 + 10s), t0));
    EXPECT_FALSE(reg.add(session_of(0, t0 + 10s), t0));
    EXPECT_FALSE(reg.add(session_of(-5, t0 + 10s), t0));
    EXPECT_FALSE(reg.add(session_of(4242, t0 + 10s), t0)) << "no such process";
    EXPECT_EQ(reg.size(), 0u);
}

TEST(LiveRegistry, KeepRecordsOnceAndEndsNothing) {
    FakeWorld w;
    w.procs[4242] = 111;
    live::Registry reg(w.effects());
    reg.set_options({120s, 5s, 16});
    const auto t0 = Clock::now();
    ASSERT_TRUE(reg.add(session_of(4242, t0 + 600s, "G-1", true), t0));
    EXPECT_EQ(*reg.next_deadline(), t0 + 600s) << "no warning when nothing will end";
    const auto ended = reg.tick(t0 + 600s);
    ASSERT_EQ(ended.size(), 1u);
    EXPECT_EQ(ended[0].reason, "kept");
    EXPECT_TRUE(w.signals.empty());
    EXPECT_TRUE(w.lines.empty());
    EXPECT_FALSE(reg.next_deadline());
    EXPECT_EQ(reg.list().size(), 1u) << "still listed while it runs";
    EXPECT_TRUE(reg.remove(4242, "").has_value());
}

TEST(LiveRegistry, EndGrantEndsOnlyThatGrantsSessionsAtOnce) {
    FakeWorld w;
    w.procs[100] = 1;
    w.procs[200] = 2;
    live::Registry reg(w.effects());
    const auto t0 = Clock::now();
    ASSERT_TRUE(reg.add(session_of(100, t0 + 600s, "G-A"), t0));
    ASSERT_TRUE(reg.add(session_of(200, t0 + 600s, "G-B"), t0));
    const auto ended = reg.end_grant("G-A", "revoke", "revoked by bob", t0 + 1s);
    ASSERT_EQ(ended.size(), 1u);
    EXPECT_EQ(ended[0].session.pid, 100);
    EXPECT_EQ(ended[0].reason, "revoke");
    ASSERT_EQ(w.lines.size(), 1u);
    EXPECT_EQ(w.lines[0].second, "revoked by bob");
    EXPECT_EQ(w.signals.size(), 2u);
    EXPECT_TRUE(reg.end_grant("G-A", "revoke", "again", t0 + 2s).empty()) << "already ending";
    // the front end reports its end: nothing more is sent
    EXPECT_TRUE(reg.remove(100, "G-A").has_value());
    reg.tick(t0 + 10s);
    EXPECT_EQ(w.signals.size(), 2u);
    EXPECT_EQ(reg.size(), 1u);
}

TEST(LiveRegistry, ASessionReportedWithoutTerminalIsToldOnTheOneBelowIt) {
    FakeWorld w;
    w.procs[300] = 1;
    w.below[300] = "/dev/pts/9";
    live::Registry reg(w.effects());
    const auto t0 = Clock::now();
    auto s = session_of(300, t0 + 600s);
    s.tty = "ssh"; // sshd's PAM_TTY before the pty exists
    ASSERT_TRUE(reg.add(s, t0));
    reg.end_grant("G-1", "revoke", "revoked", t0);
    ASSERT_EQ(w.lines.size(), 1u);
    EXPECT_EQ(w.lines[0].first, "/dev/pts/9");
}

TEST(LiveRegistry, AnApprovedExtensionMovesSessionsToTheNewDeadline) {
    FakeWorld w;
    w.procs[400] = 1;
    live::Registry reg(w.effects());
    reg.set_options({2s, 1s, 16});
    const auto t0 = Clock::now();
    ASSERT_TRUE(reg.add(session_of(400, t0 + 10s, "G-OLD"), t0));
    reg.tick(t0 + 8s); // warned
    EXPECT_EQ(w.lines.size(), 1u);
    EXPECT_EQ(reg.rebind("G-OLD", "G-NEW", 1'700'000'900, t0 + 100s, t0 + 9s), 1u);
    EXPECT_TRUE(reg.tick(t0 + 10s).empty()) << "the old deadline no longer ends it";
    EXPECT_TRUE(w.signals.empty());
    EXPECT_EQ(*reg.next_deadline(), t0 + 98s) << "warned again before the new end";
    const auto ended = reg.tick(t0 + 100s);
    ASSERT_EQ(ended.size(), 1u);
    EXPECT_EQ(ended[0].session.grant_id, "G-NEW");
}

TEST(LiveRegistry, BoundedAndGoneSessionsMakeRoom) {
    FakeWorld w;
    live::Registry reg(w.effects());
    reg.set_options({0s, 5s, 2});
    const auto t0 = Clock::now();
    w.procs[10] = 1;
    w.procs[11] = 1;
    w.procs[12] = 1;
    ASSERT_TRUE(reg.add(session_of(10, t0 + 60s), t0));
    ASSERT_TRUE(reg.add(session_of(11, t0 + 60s), t0));
    EXPECT_FALSE(reg.add(session_of(12, t0 + 60s), t0)) << "full";
    w.procs.erase(10);
    EXPECT_TRUE(reg.add(session_of(12, t0 + 60s), t0)) << "a gone session made room";
}

TEST(LiveRegistry, ATerminalTheSessionGaveUpIsNeverWritten) {
    FakeWorld w;
    live::Registry reg(w.effects());
    reg.set_options({120s, 5s, 16});
    const auto t0 = Clock::now();
    w.procs[40] = 1;
    w.procs[41] = 1;
    ASSERT_TRUE(reg.add(session_of(40, t0 + 600s), t0));
    ASSERT_TRUE(reg.add(session_of(41, t0 + 600s, "G-2"), t0));
    w.below[40] = "";           // it has no terminal any more
    w.below[41] = "/dev/pts/8"; // pts/7 is someone else's now
    reg.tick(t0 + 481s);        // both warned
    EXPECT_TRUE(w.lines.empty());
    reg.end_grant("G-2", "revoke", "revoked by bob", t0 + 482s);
    EXPECT_TRUE(w.lines.empty()) << "nor told of the end";
    EXPECT_EQ(w.signals.size(), 2u) << "the session still ends: HUP and TERM";
}

TEST(LiveRegistry, AnEndReportFromAReusedPidForgetsOnlyItsOwnSession) {
    FakeWorld w;
    live::Registry reg(w.effects());
    const auto t0 = Clock::now();
    w.procs[50] = 7;
    ASSERT_TRUE(reg.add(session_of(50, t0 + 600s), t0));
    w.procs[50] = 8; // the recorded process ended unreported; pid 50 is another sudo now
    EXPECT_FALSE(reg.remove(50, {})) << "not the recorded process";
    w.procs[50] = 7;
    EXPECT_TRUE(reg.remove(50, {}));
}

TEST(LiveRegistry, AProcessThatCannotBeReadNowIsNeitherForgottenNorSignalledBlind) {
    FakeWorld w;
    live::Registry reg(w.effects());
    reg.set_options({0s, 5s, 16});
    const auto t0 = Clock::now();
    w.procs[60] = 3;
    ASSERT_TRUE(reg.add(session_of(60, t0 + 60s), t0));
    w.procs[60] = live::k_unreadable; // EMFILE at the deadline
    EXPECT_TRUE(reg.tick(t0 + 61s).empty());
    EXPECT_TRUE(w.signals.empty()) << "nothing signalled blind";
    EXPECT_EQ(reg.size(), 1u) << "and not forgotten";
    ASSERT_TRUE(reg.next_deadline());
    w.procs[60] = 3; // readable again: it is ended
    const auto ended = reg.tick(*reg.next_deadline());
    ASSERT_EQ(ended.size(), 1u);
    EXPECT_TRUE(ended[0].signalled);
    EXPECT_FALSE(w.signals.empty());
}

TEST(LiveRegistry, CountsEachPersonsFollowedSessions) {
    FakeWorld w;
    live::Registry reg(w.effects());
    const auto t0 = Clock::now();
    for (pid_t pid = 100; pid < 103; ++pid) {
        w.procs[pid] = 1;
        auto s = session_of(pid, t0 + 60s);
        s.requester_uid = pid == 102 ? 2002 : 2001;
        ASSERT_TRUE(reg.add(s, t0));
    }
    EXPECT_EQ(reg.count_for(2001), 2u);
    EXPECT_EQ(reg.count_for(2002), 1u);
    EXPECT_EQ(reg.count_for(2003), 0u);
}

TEST(LiveProcess, StartTimeGuardsRealSignals) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        pause();
        _exit(0);
    }
    const auto st = live::start_time_of(child);
    ASSERT_TRUE(st.has_value());
    EXPECT_EQ(live::start_time_of(getpid()).has_value(), true);
    EXPECT_EQ(live::signal_if_same(child, *st + 1, SIGTERM), live::SignalResult::gone) << "another start time";
    EXPECT_EQ(live::signal_if_same(1, 0, 0), live::SignalResult::gone) << "never init";
    EXPECT_EQ(live::signal_if_same(child, *st, SIGTERM), live::SignalResult::sent);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGTERM);
    EXPECT_FALSE(live::start_time_of(child).has_value()) << "reaped";
}

// The command name in /proc/<pid>/stat is the process's to choose: one with ") " and numbers in
// it must not shift the fields that follow it (the start time is read after the last ')').
TEST(LiveProcess, StartTimeIgnoresACommandNameThatLooksLikeFields) {
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(ready[0]);
        prctl(PR_SET_NAME, "x) 1 2\t3)4 5", 0, 0, 0);
        (void)!write(ready[1], "r", 1);
        pause();
        _exit(0);
    }
    ::close(ready[1]);
    char c = 0;
    ASSERT_EQ(read(ready[0], &c, 1), 1);
    ::close(ready[0]);
    std::ifstream in("/proc/" + std::to_string(child) + "/stat");
    std::string line;
    std::getline(in, line);
    ASSERT_NE(line.find("(x) 1 2\t3)4 5)"), std::string::npos) << line;
    // The start time is field 22 of proc(5), the 20th after the command name.
    std::vector<std::string> fields;
    std::istringstream rest(line.substr(line.rfind(')') + 1));
    for (std::string f; rest >> f;) fields.push_back(f);
    ASSERT_GE(fields.size(), 20u);
    const auto st = live::start_time_of(child);
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    ASSERT_TRUE(st.has_value());
    EXPECT_EQ(std::to_string(*st), fields[19]);
}

TEST(LiveProcess, TerminalBelowFindsNoneWithoutOne) {
    // The test runs without a controlling terminal under ctest; a child has none either.
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        setsid(); // no controlling terminal
        pause();
        _exit(0);
    }
    usleep(20'000);
    EXPECT_EQ(live::terminal_below(child), "");
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
}

TEST(LiveProcess, OnlyTerminalsAreWritten) {
    EXPECT_FALSE(live::write_to_tty("", "x"));
    EXPECT_FALSE(live::write_to_tty("ssh", "x")) << "sshd's name for no terminal";
    EXPECT_FALSE(live::write_to_tty("/etc/passwd", "x"));
    EXPECT_FALSE(live::write_to_tty("/dev/pts/../../etc/passwd", "x"));
    EXPECT_FALSE(live::write_to_tty("/dev/null", "x")) << "a character device, but no terminal";
    // A path named like a terminal that is a regular file or a link is refused too.
    EXPECT_FALSE(live::write_to_tty("/dev/pts/999999", "x"));
    // Only /dev/pts/N and /dev/ttyN: not the active console, serial lines or /dev/tty itself.
    EXPECT_FALSE(live::write_to_tty("/dev/tty0", "x"));
    EXPECT_FALSE(live::write_to_tty("/dev/ttyS0", "x"));
    EXPECT_FALSE(live::write_to_tty("/dev/tty", "x"));
    EXPECT_FALSE(live::write_to_tty("/dev/pts/ptmx", "x"));
}

// The broker's part, with a real Auditor and a real child process as the "sudo front end".
class BrokerLiveTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/jitgate-live-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
        audit::Options o;
        o.spool_dir = m_dir;
        o.host = "test-host";
        o.syslog = false;
        m_auditor = std::make_unique<audit::Auditor>(o);
        m_child = fork();
        ASSERT_GE(m_child, 0);
        if (m_child == 0) {
            pause();
            _exit(0);
        }
    }
    void TearDown() override {
        if (m_child > 0) {
            kill(m_child, SIGKILL);
            waitpid(m_child, nullptr, 0);
        }
        std::filesystem::remove_all(m_dir);
    }

    std::unique_ptr<broker::Broker> make(config::OnExpiry on_expiry = config::OnExpiry::end) {
        auto cfg = std::make_shared<config::Config>();
        cfg->host.name = "test-host";
        cfg->approval.approver_groups = {"approvers"};
        config::Rule r;
        r.name = "sessions";
        r.scope = config::Scope::session;
        r.ttl = config::Seconds(60);
        r.on_expiry = on_expiry;
        cfg->rules = {r};
        cfg->sessions.warn_before = config::Seconds(0);
        return std::make_unique<broker::Broker>(cfg, *m_auditor);
    }

    // nobody runs sudo; the front end is m_child. Returns the grant id once approved by bob.
    std::string approved(broker::Broker& b) {
        broker::CheckSession s;
        s.request.kind = "sudo";
        s.request.user = "nobody";
        s.request.uid = 65534;
        s.request.runas_user = "root";
        s.request.command = "/usr/bin/sleep";
        s.request.run_argv = {"/usr/bin/sleep", "300"};
        s.peer.pid = m_child;
        s.peer.uid = 0;
        struct Rec : broker::Responder {
            std::optional<msg::Decision> d;
            void notice(const std::string&, std::int64_t) override {}
            void prompt(const std::string&, const std::string&, bool) override {}
            void decide(const msg::Decision& x) override { d = x; }
        } r;
        EXPECT_EQ(b.begin_check(s, r), broker::Step::waiting);
        broker::Caller bob;
        bob.name = "bob";
        bob.peer.uid = 2002;
        bob.groups = {"approvers"};
        EXPECT_TRUE(b.approve(bob, s.request_id).ok);
        EXPECT_TRUE(r.d && r.d->allow);
        return r.d ? r.d->grant_id : std::string();
    }

    bool child_died_of(int sig, int tries = 200) {
        int status = 0;
        for (int i = 0; i < tries; ++i) {
            if (waitpid(m_child, &status, WNOHANG) == m_child) {
                m_child = -1;
                return WIFSIGNALED(status) && WTERMSIG(status) == sig;
            }
            usleep(10'000);
        }
        return false;
    }

    std::string journal() const {
        std::string all;
        for (const auto& entry : std::filesystem::directory_iterator(m_dir)) {
            if (entry.path().filename().string().rfind("seg-", 0) != 0) continue;
            std::ifstream in(entry.path());
            all += std::string(std::istreambuf_iterator<char>(in), {});
        }
        return all;
    }

    static broker::Caller user(std::string name, uid_t uid) {
        broker::Caller c;
        c.name = std::move(name);
        c.peer.uid = uid;
        return c;
    }

    std::string m_dir;
    std::unique_ptr<audit::Auditor> m_auditor;
    pid_t m_child = -1;
};

TEST_F(BrokerLiveTest, RevokeEndsTheGrantsSessionAtOnce) {
    auto b = make();
    const std::string grant = approved(*b);
    ASSERT_EQ(b->live_sessions().size(), 1u);
    EXPECT_EQ(b->sessions(user("nobody", 65534)).size(), 1u) << "their own";
    EXPECT_EQ(b->sessions(user("mallory", 2005)).size(), 0u) << "not someone else's";
    EXPECT_EQ(b->sessions(user("root", 0)).size(), 1u);
    const pid_t pid = m_child;
    const auto r = b->revoke(user("bob", 2002), grant, "change window closed");
    EXPECT_TRUE(r.ok);
    EXPECT_NE(r.message.find("ended 1 session"), std::string::npos) << r.message;
    EXPECT_TRUE(child_died_of(SIGHUP));
    const auto j = journal();
    EXPECT_NE(j.find("\"type\":\"session.ended_by_revoke\""), std::string::npos);
    EXPECT_NE(j.find("\"revoked_by\":\"bob\""), std::string::npos);
    EXPECT_NE(j.find("\"pid\":" + std::to_string(pid)), std::string::npos);
    EXPECT_EQ(b->live_sessions().list().size(), 0u) << "the process is gone: forgotten";
}

TEST_F(BrokerLiveTest, ExpiryEndsTheSession) {
    auto b = make();
    const std::string grant = approved(*b);
    ASSERT_TRUE(b->next_deadline());
    b->expire(Clock::now() + 61s);
    EXPECT_TRUE(child_died_of(SIGHUP));
    const auto j = journal();
    EXPECT_NE(j.find("\"type\":\"session.ended_by_expiry\""), std::string::npos);
    EXPECT_NE(j.find("\"grant_id\":\"" + grant + "\""), std::string::npos);
    EXPECT_NE(j.find("\"reason\":\"expiry\""), std::string::npos);
}

TEST_F(BrokerLiveTest, KeepLeavesTheSessionRunning) {
    auto b = make(config::OnExpiry::keep);
    approved(*b);
    b->expire(Clock::now() + 61s);
    EXPECT_FALSE(child_died_of(SIGHUP, 30)) << "still running";
    EXPECT_EQ(kill(m_child, 0), 0);
    EXPECT_NE(journal().find("\"type\":\"session.kept_after_expiry\""), std::string::npos);
}

TEST_F(BrokerLiveTest, DoneIsForTheRequesterOnly) {
    auto b = make();
    const std::string grant = approved(*b);
    const auto refused = b->release(user("mallory", 2005), grant);
    EXPECT_FALSE(refused.ok);
    EXPECT_NE(refused.message.find("not yours"), std::string::npos);
    EXPECT_FALSE(b->release(user("mallory", 2005), "").ok) << "mallory has no grants";
    EXPECT_EQ(kill(m_child, 0), 0);
    const auto r = b->release(user("nobody", 65534), "");
    EXPECT_TRUE(r.ok) << r.message;
    EXPECT_TRUE(child_died_of(SIGHUP));
    const auto j = journal();
    EXPECT_NE(j.find("\"type\":\"grant.released\""), std::string::npos);
    EXPECT_NE(j.find("\"reason\":\"released\""), std::string::npos);
    EXPECT_TRUE(b->list_grants(user("root", 0)).empty()) << "the grant is gone";
}

TEST_F(BrokerLiveTest, RequestsShowTheCallersOwnDecisions) {
    auto b = make();
    const std::string grant = approved(*b);
    const auto mine = b->my_requests(user("nobody", 65534));
    ASSERT_EQ(mine.size(), 1u);
    EXPECT_EQ(mine[0]["outcome"], "approved");
    EXPECT_EQ(mine[0]["grant_id"], grant);
    EXPECT_TRUE(b->my_requests(user("mallory", 2005)).empty());
}

TEST_F(BrokerLiveTest, ExtendFilesANewRequestThatNeedsApproval) {
    auto b = make();
    const std::string grant = approved(*b);
    EXPECT_FALSE(b->extend(user("mallory", 2005), grant, "").ok) << "not the requester";
    EXPECT_FALSE(b->extend(user("bob", 2002), grant, "").ok) << "nor an approver";
    const auto r = b->extend(user("nobody", 65534), grant, "migration runs long");
    ASSERT_TRUE(r.ok) << r.message;
    EXPECT_EQ(b->pending_count(), 1u) << "a request, not a renewal";
    EXPECT_FALSE(b->extend(user("nobody", 65534), grant, "").ok) << "one waiting extension per grant";
    broker::Caller bob;
    bob.name = "bob";
    bob.peer.uid = 2002;
    bob.groups = {"approvers"};
    const auto pending = b->pending(bob);
    ASSERT_EQ(pending.size(), 1u);
    EXPECT_EQ(pending[0]["extends"], grant);
    EXPECT_EQ(pending[0]["reason"], "migration runs long");
    broker::Caller self;
    self.name = "nobody";
    self.peer.uid = 65534;
    self.groups = {"approvers"};
    EXPECT_FALSE(b->approve(self, pending[0]["id"].get<std::string>()).ok) << "no self-approval";
    ASSERT_TRUE(b->approve(bob, pending[0]["id"].get<std::string>()).ok);
    const auto sessions = b->sessions(user("root", 0));
    ASSERT_EQ(sessions.size(), 1u);
    EXPECT_NE(sessions[0]["grant_id"], grant) << "the session moved to the new grant";
    EXPECT_NE(journal().find("\"extends\":\"" + grant + "\""), std::string::npos);
}

TEST_F(BrokerLiveTest, AnExtensionOfARevokedGrantIsNeverGranted) {
    auto b = make();
    const std::string grant = approved(*b);
    ASSERT_TRUE(b->extend(user("nobody", 65534), grant, "migration runs long").ok);
    broker::Caller bob;
    bob.name = "bob";
    bob.peer.uid = 2002;
    bob.groups = {"approvers"};
    const std::string extension = b->pending(bob).at(0)["id"].get<std::string>();
    ASSERT_TRUE(b->revoke(bob, grant, "incident").ok);
    const auto r = b->approve(bob, extension);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.message.find("that it extends has ended"), std::string::npos) << r.message;
    EXPECT_TRUE(b->list_grants(user("root", 0)).empty()) << "no grant came back";
}

TEST_F(BrokerLiveTest, AnExtensionIsJudgedByTheRulesAsTheyAreNow) {
    auto b = make();
    const std::string grant = approved(*b);
    auto cfg = std::make_shared<config::Config>(b->config());
    cfg->rules.front().approvals = 2; // the rule was tightened since the grant
    b->set_config(cfg);
    ASSERT_TRUE(b->extend(user("nobody", 65534), grant, "").ok);
    broker::Caller bob;
    bob.name = "bob";
    bob.peer.uid = 2002;
    bob.groups = {"approvers"};
    const auto pending = b->pending(bob);
    ASSERT_EQ(pending.size(), 1u);
    EXPECT_EQ(pending[0]["approvals_needed"], 2);
    ASSERT_TRUE(b->deny(bob, pending[0]["id"].get<std::string>(), "not now").ok);
    auto allowing = std::make_shared<config::Config>(b->config());
    allowing->rules.front().action = config::Action::allow;
    b->set_config(allowing);
    const auto refused = b->extend(user("nobody", 65534), grant, "");
    EXPECT_FALSE(refused.ok);
    EXPECT_NE(refused.message.find("no longer asks for approval"), std::string::npos) << refused.message;
}

TEST_F(BrokerLiveTest, TheFinishedReportForgetsTheSession) {
    auto b = make();
    approved(*b);
    msg::FinishedReport f;
    f.user = "nobody";
    f.uid = 65534;
    f.status_type = "exit";
    f.exit_status = 0;
    identity::Peer p;
    p.pid = m_child;
    p.uid = 0;
    b->finished(f, p);
    EXPECT_EQ(b->live_sessions().size(), 0u);
    b->expire(Clock::now() + 61s);
    EXPECT_FALSE(child_died_of(SIGHUP, 30)) << "a session that ended is not signalled";
}

} // namespace
