// Unit tests for the pipelined group commit: the Auditor's committer thread (start_commit,
// finish_commit, commit_event_fd) and the daemon's server, which releases a reply only once
// the audit events recorded before it are durable. A test seam (audit::Options::sync_fn)
// stands in for fdatasync: a gate the test opens, or a failure. Nothing here asserts timing:
// a gate that is closed keeps a sync in flight for as long as the test needs.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "audit_fixture.hpp"
#include "daemon/audit/auditor.hpp"
#include "daemon/config/config.hpp"
#include "daemon/server/server.hpp"
#include "file_helpers.hpp"
#include "jitgate/error.hpp"
#include "jitgate/wire.hpp"

namespace {

using jitgate::Error;
using namespace jitgate::audit;
using namespace jitgate::test::audit_fixture;
namespace fs = std::filesystem;
using jitgate::test::read_all;
using jitgate::test::split_lines;

// Stands in for fdatasync: each call waits until the test lets one through (or all), then
// does the real fdatasync, or fails with `fail_errno` if that is set. Records the inode of
// each descriptor it syncs, in order, and whether the descriptor was still open.
class SyncGate {
public:
    int sync(int fd) {
        struct stat st {};
        const bool open = ::fstat(fd, &st) == 0;
        std::unique_lock<std::mutex> lock(m_mutex);
        m_calls.push_back(Call{open ? st.st_ino : 0, open});
        ++m_waiting;
        m_cv.notify_all();
        m_cv.wait(lock, [this] { return m_open || m_passes > 0; });
        if (!m_open) --m_passes;
        --m_waiting;
        if (m_fail_errno != 0) {
            errno = m_fail_errno;
            return -1;
        }
        lock.unlock();
        return ::fdatasync(fd);
    }
    std::function<int(int)> fn() {
        return [this](int fd) { return sync(fd); };
    }
    // Waits until a sync is blocked in the gate.
    void await_waiting() {
        std::unique_lock<std::mutex> lock(m_mutex);
        m_cv.wait(lock, [this] { return m_waiting > 0; });
    }
    void pass(int n = 1) {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_passes += n;
        m_cv.notify_all();
    }
    void open() {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_open = true;
        m_cv.notify_all();
    }
    void fail_with(int err) {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_fail_errno = err;
    }
    struct Call {
        ino_t ino;
        bool open;
    };
    std::vector<Call> calls() {
        std::lock_guard<std::mutex> lock(m_mutex);
        return m_calls;
    }

private:
    std::mutex m_mutex;
    std::condition_variable m_cv;
    bool m_open = false;
    int m_passes = 0;
    int m_waiting = 0;
    int m_fail_errno = 0;
    std::vector<Call> m_calls;
};

// Waits (no limit: the test's own timeout bounds it) until the commit descriptor is readable.
void await_commit(int fd) {
    pollfd p{fd, POLLIN, 0};
    while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
}

ino_t inode_of(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

class PipelineTest : public AuditTest {};

TEST_F(PipelineTest, DurableSeqMovesOnlyWhenTheSyncInFlightReturnedAndCoversWhatItWasGiven) {
    SyncGate gate;
    Options o = options();
    o.sync_fn = gate.fn();
    Auditor a(o);
    std::vector<std::uint64_t> hook;
    a.set_durable_hook([&](std::uint64_t s) { hook.push_back(s); });
    a.set_group_commit(true);
    const int efd = a.commit_event_fd();
    record_events(a, 3);
    ASSERT_TRUE(a.start_commit());
    EXPECT_TRUE(a.commit_in_flight());
    gate.await_waiting();
    // The loop goes on writing while the sync is in flight; no second sync starts.
    record_events(a, 2);
    EXPECT_FALSE(a.start_commit()) << "at most one fdatasync in flight";
    EXPECT_EQ(a.finish_commit(), 0u) << "nothing is durable while the sync has not returned";
    EXPECT_EQ(a.durable_seq(), 0u);
    EXPECT_TRUE(hook.empty());

    gate.pass();
    await_commit(efd);
    EXPECT_EQ(a.finish_commit(), 3u) << "the sync covers the lines written before it started, no more";
    EXPECT_EQ(a.durable_seq(), 3u);
    EXPECT_EQ(hook, std::vector<std::uint64_t>{3});
    EXPECT_TRUE(a.has_unsynced());

    ASSERT_TRUE(a.start_commit()) << "the next sync covers what was written meanwhile";
    gate.pass();
    await_commit(efd);
    EXPECT_EQ(a.finish_commit(), 5u);
    EXPECT_EQ((hook), (std::vector<std::uint64_t>{3, 5}));
    EXPECT_FALSE(a.has_unsynced());
    EXPECT_FALSE(a.start_commit()) << "nothing left to sync";
    EXPECT_EQ(gate.calls().size(), 2u);
    EXPECT_TRUE(verify_spool(m_dir).ok) << problems_text(verify_spool(m_dir));
}

TEST_F(PipelineTest, AFailedSyncInFlightBreaksTheSpoolForGood) {
    SyncGate gate;
    Options o = options();
    o.sync_fn = gate.fn();
    Auditor a(o);
    a.set_group_commit(true);
    const int efd = a.commit_event_fd();
    record_events(a, 2);
    ASSERT_TRUE(a.start_commit());
    gate.await_waiting();
    record_events(a, 1);
    gate.fail_with(EIO);
    gate.pass();
    await_commit(efd);
    EXPECT_THROW(a.finish_commit(), Error);
    EXPECT_TRUE(a.commit_failed());
    EXPECT_EQ(a.durable_seq(), 0u) << "nothing after a failed fdatasync is durable";
    EXPECT_THROW(a.record({{"type", type::daemon_started}}), Error) << "fail closed";
    EXPECT_THROW(a.sync(), Error) << "a later sync must not make the failed batch count as durable";
    EXPECT_FALSE(a.start_commit());
    EXPECT_EQ(a.durable_seq(), 0u);
    gate.open();
}

TEST_F(PipelineTest, ASegmentRolledOverDuringASyncIsSyncedBeforeTheNewOneAndStaysOpenUntilThen) {
    SyncGate gate;
    Options o = options();
    o.segment_bytes = 300; // one event fills a segment
    o.sync_fn = gate.fn();
    Auditor a(o);
    a.set_group_commit(true);
    const int efd = a.commit_event_fd();
    record_events(a, 1);
    ASSERT_TRUE(a.start_commit()); // syncs seq 1 in segment 1
    gate.await_waiting();
    record_events(a, 2); // seq 2, 3: still segment 1 (it rolls over after a sync)
    gate.pass();
    await_commit(efd);
    EXPECT_EQ(a.finish_commit(), 1u);
    // Rolled over: the next line starts segment 4 while 2 and 3 in segment 1 are not durable.
    const auto segs = spool::list_segments(m_dir);
    ASSERT_EQ(segs.size(), 2u);
    EXPECT_EQ(segs[1].first_seq, 4u);
    record_events(a, 1); // seq 4
    ASSERT_TRUE(a.start_commit());
    gate.open();
    await_commit(efd);
    EXPECT_EQ(a.finish_commit(), 4u);
    const auto calls = gate.calls();
    ASSERT_EQ(calls.size(), 3u);
    EXPECT_EQ(calls[0].ino, inode_of(segment(1)));
    EXPECT_EQ(calls[1].ino, inode_of(segment(1))) << "the old segment first";
    EXPECT_TRUE(calls[1].open) << "its descriptor is not closed under the committer";
    EXPECT_EQ(calls[2].ino, inode_of(segment(4)));
    EXPECT_EQ(split_lines(read_all(segment(1))).size(), 3u);
    EXPECT_EQ(split_lines(read_all(segment(4))).size(), 1u);
    EXPECT_TRUE(verify_spool(m_dir).ok) << problems_text(verify_spool(m_dir));
}

TEST_F(PipelineTest, SyncWaitsForTheSyncInFlightThenSyncsTheRest) {
    SyncGate gate;
    Options o = options();
    o.sync_fn = gate.fn();
    std::vector<std::uint64_t> hook;
    {
        Auditor a(o);
        a.set_durable_hook([&](std::uint64_t s) { hook.push_back(s); });
        a.set_group_commit(true);
        a.commit_event_fd();
        record_events(a, 2);
        ASSERT_TRUE(a.start_commit());
        gate.await_waiting();
        record_events(a, 2);
        std::thread opener([&] { gate.open(); });
        a.sync(); // the final sync of a stop
        opener.join();
        EXPECT_EQ(a.durable_seq(), 4u);
        EXPECT_FALSE(a.commit_in_flight());
        record_events(a, 1);
        ASSERT_TRUE(a.start_commit()); // destroyed with this one in flight: it finishes first
    }
    EXPECT_EQ((hook), (std::vector<std::uint64_t>{2, 4}));
    EXPECT_TRUE(verify_spool(m_dir).ok) << problems_text(verify_spool(m_dir));
}

TEST_F(PipelineTest, TheLineIsTheCanonicalFormWhereverTheHashMemberFallsAndWhateverTheValuesHold) {
    // record() serialises once and splices the hash member in: the line must still be exactly
    // canonical_bytes() of the stamped event, for keys before and after "hash", nested "hash"
    // keys, and strings full of the structure characters.
    Auditor a(options());
    const std::vector<Json> events = {
        {{"type", type::error}, {"a", "x,y}{\\\"],"}, {"details", {{"hash", ",{"}, {"z", {1, {{"q", "}"}}}}}}},
        {{"type", type::error}},
        {{"type", type::error}, {"aaa", {{"b", "\\"}}}, {"hash0", 1}, {"has", 2}, {"zz", "]"}},
        {{"type", type::error}, {"hash", "a caller's hash is replaced"}, {"\x01key", "\"quoted\""}},
    };
    std::string expected;
    for (const auto& in : events) {
        const Json e = a.record(in);
        Json without = e;
        without.erase("hash");
        EXPECT_EQ(e["hash"], sha256_hex(canonical_bytes(without)));
        expected += canonical_bytes(e) + "\n";
    }
    EXPECT_EQ(read_all(m_journal), expected);
    EXPECT_TRUE(verify_spool(m_dir).ok) << problems_text(verify_spool(m_dir));
}

// --- The server: replies wait for their events --------------------------------------------

// Run twice: the loop syncing an idle batch itself (the default), and always through the
// committer thread (set_commit_inline_when_idle(false)); the guarantee is the same.
class ServerCommitTest : public AuditTest, public ::testing::WithParamInterface<bool> {
protected:
    // `syslog_socket`: where the Auditor sends its syslog copies ("" for none).
    void start(SyncGate& gate, const std::string& syslog_socket = "") {
        Options o = options();
        o.sync_fn = gate.fn();
        if (!syslog_socket.empty()) {
            o.syslog = true;
            o.syslog_socket = syslog_socket;
        }
        m_auditor = std::make_unique<Auditor>(o);
        m_auditor->set_group_commit(true);
        auto cfg = std::make_shared<jitgate::config::Config>();
        cfg->daemon.socket = m_dir + "/jitgated.sock";
        cfg->audit.spool_dir = m_dir;
        m_socket = cfg->daemon.socket;
        std::promise<void> ready;
        auto started = ready.get_future();
        m_thread = std::thread([this, cfg, &ready] {
            // The server blocks SIGTERM in this thread and reads it from its signalfd.
            jitgate::server::Server server("", cfg, *m_auditor);
            server.set_commit_inline_when_idle(GetParam());
            ready.set_value();
            m_rc = server.run();
        });
        started.wait();
    }
    void stop() {
        if (!m_thread.joinable()) return;
        ::pthread_kill(m_thread.native_handle(), SIGTERM);
        m_thread.join();
    }
    void TearDown() override {
        stop();
        m_auditor.reset();
        AuditTest::TearDown();
    }

    int connect_client() {
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, m_socket.c_str(), sizeof addr.sun_path - 1);
        EXPECT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
        return fd;
    }
    static void send_frame(int fd, const jitgate::wire::Json& m) {
        const std::string f = jitgate::wire::encode(m);
        ASSERT_EQ(::send(fd, f.data(), f.size(), MSG_NOSIGNAL), static_cast<ssize_t>(f.size()));
    }
    // True if something (a frame or the close) arrives within `ms`.
    static bool readable_within(int fd, int ms) {
        pollfd p{fd, POLLIN, 0};
        return ::poll(&p, 1, ms) > 0;
    }
    // The next frame, or nullopt at EOF (waits as long as it takes).
    static std::optional<jitgate::wire::Json> read_frame(int fd) {
        jitgate::wire::FrameDecoder d;
        char buf[4096];
        for (;;) {
            if (auto m = d.next()) return m;
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) return std::nullopt;
            d.feed(std::string_view(buf, static_cast<std::size_t>(n)));
        }
    }

    std::unique_ptr<Auditor> m_auditor;
    std::thread m_thread;
    std::string m_socket;
    int m_rc = -1;
};

TEST_P(ServerCommitTest, AReplyIsHeldWhileItsEventIsNotDurableAndSentOnceItIs) {
    SyncGate gate;
    start(gate);
    const std::uint64_t before = m_auditor->durable_seq();
    const int a = connect_client();
    // Unknown type: a protocol error, recorded (an error event) and answered, then closed.
    send_frame(a, {{"type", "no-such-message"}});
    gate.await_waiting(); // its event is written and its sync is in flight
    // A second client's ping records nothing, but the event above was recorded before its
    // reply: that reply waits too.
    const int b = connect_client();
    send_frame(b, {{"type", "ping"}});
    EXPECT_FALSE(readable_within(a, 300)) << "no reply before its audit event is durable";
    EXPECT_FALSE(readable_within(b, 0));
    EXPECT_EQ(m_auditor->durable_seq(), before);
    gate.open();
    const auto reply = read_frame(a);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ((*reply)["type"], "error");
    EXPECT_EQ((*reply)["code"], "protocol");
    EXPECT_FALSE(read_frame(a).has_value()) << "closed after the error";
    const auto pong = read_frame(b);
    ASSERT_TRUE(pong.has_value());
    EXPECT_EQ((*pong)["type"], "ok");
    EXPECT_GT(m_auditor->durable_seq(), before);
    ::close(a);
    ::close(b);
    stop();
    EXPECT_EQ(m_rc, 0);
    EXPECT_EQ(m_auditor->durable_seq(), m_auditor->last_seq()) << "the stop's event is durable too";
}

TEST_P(ServerCommitTest, AFailedSyncDropsHeldRepliesAndNothingIsReleasedAfterIt) {
    SyncGate gate;
    start(gate);
    const int a = connect_client();
    send_frame(a, {{"type", "no-such-message"}});
    gate.await_waiting();
    gate.fail_with(EIO);
    gate.open();
    EXPECT_FALSE(read_frame(a).has_value()) << "the connection closes without the reply: the client denies";
    EXPECT_TRUE(m_auditor->commit_failed());
    // Later replies are dropped too, even one that records nothing.
    const int b = connect_client();
    send_frame(b, {{"type", "ping"}});
    EXPECT_FALSE(read_frame(b).has_value());
    ::close(a);
    ::close(b);
    stop();
    EXPECT_EQ(m_rc, 1) << "the final sync cannot succeed on a broken spool";
}

TEST_P(ServerCommitTest, AStopWithASyncInFlightWaitsForItAndStillSendsTheReply) {
    SyncGate gate;
    start(gate);
    const int a = connect_client();
    send_frame(a, {{"type", "no-such-message"}});
    gate.await_waiting();
    ::pthread_kill(m_thread.native_handle(), SIGTERM);
    EXPECT_FALSE(readable_within(a, 200)) << "still not durable";
    gate.open();
    const auto reply = read_frame(a);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ((*reply)["code"], "protocol");
    m_thread.join();
    EXPECT_EQ(m_rc, 0);
    EXPECT_EQ(m_auditor->durable_seq(), m_auditor->last_seq());
    ::close(a);
}

// The server sends the syslog copies after the replies (issue 17): none is lost or repeated
// for it, in either commit mode, and none goes out before its event is durable.
TEST_P(ServerCommitTest, SyslogCopiesFollowTheRepliesOncePerDurableEvent) {
    SyncGate gate;
    const std::string sock = m_dir + "/log.sock";
    DatagramReceiver receiver(sock);
    start(gate, sock);
    const int a = connect_client();
    send_frame(a, {{"type", "no-such-message"}});
    gate.await_waiting();
    EXPECT_FALSE(readable_within(a, 100));
    EXPECT_EQ(receiver.receive(), "") << "no copy before its event is durable";
    gate.open();
    const auto reply = read_frame(a);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ((*reply)["code"], "protocol");
    ::close(a);
    stop();
    std::vector<std::string> copies;
    for (std::string line = receiver.receive(); !line.empty(); line = receiver.receive()) copies.push_back(line);
    // The error event, then the stop's event; nothing twice.
    ASSERT_EQ(copies.size(), 2u) << ::testing::PrintToString(copies);
    EXPECT_NE(copies[0].find("type=\"error\""), std::string::npos) << copies[0];
    EXPECT_NE(copies[1].find("type=\"daemon.stopped\""), std::string::npos) << copies[1];
    EXPECT_EQ(m_auditor->syslog_failures(), 0u);
}

// An approver's (or any user's) identity is read as a requester's: from the process that
// connected, through a pidfd where the kernel has it. A socket whose connecting process was
// reaped (it forked, handed the socket on, exited) is refused, never read as "no login uid":
// that would let a shared account used from the requester's own session pass the
// self-approval check (found in review).
TEST_P(ServerCommitTest, ACallerWhoseConnectingProcessIsGoneIsRefused) {
    SyncGate gate;
    gate.open();
    start(gate);
    // Connected by a child that then exits and is reaped; this process holds the socket.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, m_socket.c_str(), sizeof addr.sun_path - 1);
    const pid_t child = ::fork();
    if (child == 0) ::_exit(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 ? 0 : 1);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    send_frame(fd, {{"type", "pending"}});
    const auto reply = read_frame(fd);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ((*reply)["type"], "error") << reply->dump();
    EXPECT_NE(reply->value("message", "").find("cannot tell who is asking"), std::string::npos) << reply->dump();
    ::close(fd);
    // The same message from a process that is there is answered.
    const int live = connect_client();
    send_frame(live, {{"type", "pending"}});
    const auto answer = read_frame(live);
    ASSERT_TRUE(answer.has_value());
    EXPECT_EQ((*answer)["type"], "end") << answer->dump();
    ::close(live);
    stop(); // while `gate` lives: the final sync goes through it
}

INSTANTIATE_TEST_SUITE_P(CommitModes, ServerCommitTest, ::testing::Bool(), [](const ::testing::TestParamInfo<bool>& i) {
    return std::string(i.param ? "InlineWhenIdle" : "AlwaysOnTheCommitter");
});

} // namespace
