// Unit tests of the socket client's wait (common/src/client.cpp): how a signal ends it. The
// "daemon" is a listening Unix socket owned by the test's own user, which never answers.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <pwd.h>
#include <string>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

#include "jitgate/client.hpp"
#include "jitgate/messages.hpp"
#include "jitgate/wire.hpp"

namespace {

using namespace jitgate;
using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_flag = 0;
extern "C" void set_flag(int) {
    g_flag = 1;
}

class ClientWaitTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/jitgate-client-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
        m_options.socket_path = m_dir + "/d.sock";
        const passwd* pw = getpwuid(getuid());
        ASSERT_NE(pw, nullptr);
        m_options.daemon_user = pw->pw_name; // the test's own socket is the trusted one
        m_listen = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(m_listen, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        ASSERT_LT(m_options.socket_path.size(), sizeof addr.sun_path);
        m_options.socket_path.copy(addr.sun_path, m_options.socket_path.size());
        ASSERT_EQ(::bind(m_listen, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
        ASSERT_EQ(::listen(m_listen, 4), 0);
        g_flag = 0;
        struct sigaction sa {};
        sa.sa_handler = set_flag;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; // no SA_RESTART, as in the sudo plugin
        ASSERT_EQ(sigaction(SIGUSR1, &sa, &m_old_usr1), 0);
        ASSERT_EQ(sigaction(SIGALRM, &sa, &m_old_alrm), 0);
        ASSERT_EQ(sigprocmask(SIG_SETMASK, nullptr, &m_old_mask), 0);
    }
    void TearDown() override {
        itimerval off{};
        setitimer(ITIMER_REAL, &off, nullptr);
        sigprocmask(SIG_SETMASK, &m_old_mask, nullptr);
        sigaction(SIGUSR1, &m_old_usr1, nullptr);
        sigaction(SIGALRM, &m_old_alrm, nullptr);
        if (m_listen >= 0) ::close(m_listen);
        std::system(("rm -rf " + m_dir).c_str());
    }

    std::string m_dir;
    client::Options m_options;
    int m_listen = -1;
    struct sigaction m_old_usr1 {};
    struct sigaction m_old_alrm {};
    sigset_t m_old_mask{};
};

long long ms_since(Clock::time_point t0) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

// Regression: the sudo plugin checked its Ctrl-C flag and then called poll(); a SIGINT
// landing between the two set the flag too late and was missed until the deadline. The
// signal is made to land in exactly that window: it is pending (blocked, handler not yet
// run, flag still 0) when the wait begins. The wait must take it and end at once.
TEST_F(ClientWaitTest, CtrlCBetweenFlagCheckAndPollIsNotMissed) {
    client::Connection conn;
    ASSERT_TRUE(conn.open(m_options).ok());
    sigset_t wake;
    sigemptyset(&wake);
    sigaddset(&wake, SIGUSR1);
    ASSERT_EQ(sigprocmask(SIG_BLOCK, &wake, nullptr), 0);
    ASSERT_EQ(raise(SIGUSR1), 0);
    ASSERT_EQ(g_flag, 0) << "the handler must not have run yet";

    wire::Json out;
    const auto t0 = Clock::now();
    const Status st = conn.receive(out, 3000, &g_flag, &wake);
    EXPECT_EQ(st.code, ErrorCode::interrupted) << st.detail;
    EXPECT_LT(ms_since(t0), 1000) << "the signal waited for the deadline";
    EXPECT_EQ(g_flag, 1);
    sigset_t now;
    ASSERT_EQ(sigprocmask(SIG_SETMASK, nullptr, &now), 0);
    EXPECT_EQ(sigismember(&now, SIGUSR1), 1) << "the caller's mask is restored after the wait";
}

// A signal arriving during the wait, unblocked by the caller and named nowhere, still ends it.
TEST_F(ClientWaitTest, SignalDuringTheWaitEndsIt) {
    client::Connection conn;
    ASSERT_TRUE(conn.open(m_options).ok());
    itimerval once{};
    once.it_value.tv_usec = 100 * 1000;
    ASSERT_EQ(setitimer(ITIMER_REAL, &once, nullptr), 0);
    wire::Json out;
    const auto t0 = Clock::now();
    const Status st = conn.receive(out, 3000, &g_flag);
    EXPECT_EQ(st.code, ErrorCode::interrupted) << st.detail;
    EXPECT_LT(ms_since(t0), 1000);
    sigset_t now;
    ASSERT_EQ(sigprocmask(SIG_SETMASK, nullptr, &now), 0);
    EXPECT_EQ(sigismember(&now, SIGALRM), 0) << "the caller's mask is restored after the wait";
}

// A flag already set ends the wait before it starts; without a flag the deadline holds.
TEST_F(ClientWaitTest, SetFlagEndsAtOnceAndNoFlagWaitsForTheDeadline) {
    client::Connection conn;
    ASSERT_TRUE(conn.open(m_options).ok());
    wire::Json out;
    g_flag = 1;
    EXPECT_EQ(conn.receive(out, 3000, &g_flag).code, ErrorCode::interrupted);
    const auto t0 = Clock::now();
    EXPECT_EQ(conn.receive(out, 200, nullptr).code, ErrorCode::timeout);
    EXPECT_GE(ms_since(t0), 150);
}

// A report (command.finished, a session) counts as recorded only if the daemon answered "ok":
// an "error" reply (the report refused, the event not recorded), or no answer, is a failure,
// so the plugins write the outcome to syslog themselves.
TEST_F(ClientWaitTest, AReportIsRecordedOnlyWhenTheDaemonAnswersOk) {
    // The "daemon": takes one connection, reads one frame, answers `reply` (or nothing).
    const auto answer_once = [this](std::optional<wire::Json> reply) {
        return std::thread([this, reply] {
            const int fd = ::accept4(m_listen, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) return;
            wire::FrameDecoder d;
            char buf[4096];
            for (;;) {
                if (d.next()) break;
                const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
                if (n <= 0) break;
                d.feed(std::string_view(buf, static_cast<std::size_t>(n)));
            }
            if (reply) {
                const std::string f = wire::encode(*reply);
                (void)::send(fd, f.data(), f.size(), MSG_NOSIGNAL);
            }
            ::close(fd);
        });
    };
    msg::FinishedReport f;
    f.user = "alice";
    f.uid = 1000;
    f.command = "/usr/bin/true";
    f.status_type = "exit";
    const wire::Json session{{"type", "session"}, {"event", "opened"}, {"user", "alice"}, {"uid", 1000}};
    m_options.reply_timeout_ms = 5000;

    for (const bool finished : {true, false}) {
        const auto send = [&] { return finished ? client::report(m_options, f) : client::report(m_options, session); };
        auto t = answer_once(wire::Json{{"type", "ok"}});
        EXPECT_TRUE(send().ok());
        t.join();

        t = answer_once(wire::Json{{"type", "error"}, {"code", "internal"}, {"message", "cannot append to the spool"}});
        const Status refused = send();
        t.join();
        EXPECT_FALSE(refused.ok());
        EXPECT_NE(refused.detail.find("cannot append to the spool"), std::string::npos) << refused.detail;

        t = answer_once(std::nullopt); // closed without an answer
        EXPECT_FALSE(send().ok());
        t.join();

        // An answer that is neither: a decision is no acknowledgement of a report.
        t = answer_once(wire::Json{{"type", "decision"}, {"allow", true}});
        EXPECT_FALSE(send().ok());
        t.join();
    }
}

} // namespace
