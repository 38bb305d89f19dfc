// Unit tests of who the kernel says a process is: the real and audit login uids of a socket's
// peer, through a pidfd and through /proc (ReadVia::proc forces the path that kernels before
// 6.13 take), and the requester of a check. Peers are this test or a child that connects to it
// over an abstract Unix socket; they hold with or without root (the setuid-like child needs it).
#include <gtest/gtest.h>

#include <climits>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "daemon/policy/identity.hpp"

namespace {

using namespace jitgate;

// What /proc/self/loginuid says, or nullopt where the kernel has no audit support.
std::optional<long long> raw_loginuid() {
    std::ifstream in("/proc/self/loginuid");
    long long v = 0;
    if (!(in >> v)) return std::nullopt;
    return v;
}

TEST(DaemonIdentity, LoginUidOfThisProcessMatchesTheKernel) {
    const auto raw = raw_loginuid();
    const std::optional<std::int64_t> got = identity::login_uid_of(::getpid());
    ASSERT_TRUE(got.has_value()) << "this process is alive: its login uid must be read";
    if (!raw || *raw == identity::k_login_uid_unset)
        EXPECT_EQ(*got, -1) << "unset (or a kernel that keeps none) reads as -1";
    else
        EXPECT_EQ(*got, *raw);
}

TEST(DaemonIdentity, RealUidOfThisProcessMatchesTheKernel) {
    EXPECT_EQ(identity::real_uid_of(::getpid()), std::optional<uid_t>(::getuid()));
    EXPECT_FALSE(identity::real_uid_of(INT_MAX).has_value());
    EXPECT_FALSE(identity::real_uid_of(-1).has_value());
    EXPECT_FALSE(identity::real_uid_of(0).has_value());
}

// A login uid that cannot be read is no answer, never "unset": an approver whose process is
// gone must not pass the self-approval check as "no session owner" (found in review).
TEST(DaemonIdentity, LoginUidOfAGoneProcessCannotBeRead) {
    if (::access("/proc/self/loginuid", F_OK) != 0) GTEST_SKIP() << "this kernel keeps no login uids";
    EXPECT_FALSE(identity::login_uid_of(INT_MAX).has_value());
    EXPECT_FALSE(identity::login_uid_of(-1).has_value());
    EXPECT_FALSE(identity::login_uid_of(0).has_value());
}

// Both ways of reading, for each test of a peer.
constexpr identity::ReadVia k_both[] = {identity::ReadVia::pidfd_where_supported, identity::ReadVia::proc};

const char* via_name(identity::ReadVia via) {
    return via == identity::ReadVia::proc ? "/proc (forced)" : "pidfd where supported";
}

// Whether this kernel is 6.13 or later (SO_PEERPIDFD and PIDFD_GET_INFO with creds), where
// ids_of must read through the pidfd rather than fall back to /proc.
bool kernel_has_pidfd_info() {
    utsname u{};
    if (::uname(&u) != 0) return false;
    int major = 0;
    int minor = 0;
    if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
    return major > 6 || (major == 6 && minor >= 13);
}

// A child process connected to this one over an abstract Unix socket; `fd` is this side,
// accepted, and `peer` its SO_PEERCRED. The child runs `before_connect` (true: go on), connects,
// writes one byte ('1' if before_connect says so, else '0'), then waits until killed, or exits
// at once if `exit_after_connect`. The destructor kills and reaps it if still there.
struct ConnectedChild {
    pid_t pid = -1;
    int fd = -1;
    identity::Peer peer;
    char said = 0;

    template <typename Before>
    ConnectedChild(Before&& before_connect, bool exit_after_connect) {
        static int counter = 0;
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        const int n = std::snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "jitgate-test-identity-%d-%d",
                                    static_cast<int>(::getpid()), ++counter);
        const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + static_cast<std::size_t>(n));
        const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (listener < 0 || ::bind(listener, reinterpret_cast<const sockaddr*>(&addr), len) != 0 ||
            ::listen(listener, 1) != 0) {
            ADD_FAILURE() << "listen: " << std::strerror(errno);
            if (listener >= 0) ::close(listener);
            return;
        }
        pid = ::fork();
        if (pid == 0) {
            const char set = before_connect() ? '1' : '0';
            const int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
            if (s < 0 || ::connect(s, reinterpret_cast<const sockaddr*>(&addr), len) != 0) ::_exit(1);
            if (::write(s, &set, 1) != 1) ::_exit(1);
            if (exit_after_connect) ::_exit(0);
            ::pause();
            ::_exit(0);
        }
        pollfd ready{listener, POLLIN, 0};
        if (pid > 0 && ::poll(&ready, 1, 10'000) == 1) { // a child that failed never connects
            fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd >= 0 && ::read(fd, &said, 1) != 1) said = 0;
            if (fd >= 0) {
                const auto p = identity::peer_of(fd);
                if (p) peer = *p;
            }
        }
        ::close(listener);
        if (pid < 0 || fd < 0 || said == 0) ADD_FAILURE() << "the child did not connect";
    }
    ConnectedChild(const ConnectedChild&) = delete;
    ConnectedChild& operator=(const ConnectedChild&) = delete;
    ~ConnectedChild() {
        reap(true);
        if (fd >= 0) ::close(fd);
    }
    // Waits for the child to end (killing it first if `kill`), so that its pid is freed.
    void reap(bool kill) {
        if (pid <= 0) return;
        if (kill) ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        pid = -1;
    }
};

// A peer that is this process: both ends of a socketpair have this process as their peer.
struct SelfPeer {
    int fds[2] = {-1, -1};
    identity::Peer peer;
    SelfPeer() {
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
            ADD_FAILURE() << "socketpair: " << std::strerror(errno);
            return;
        }
        const auto p = identity::peer_of(fds[0]);
        if (p) peer = *p;
    }
    SelfPeer(const SelfPeer&) = delete;
    SelfPeer& operator=(const SelfPeer&) = delete;
    ~SelfPeer() {
        for (const int f : fds)
            if (f >= 0) ::close(f);
    }
};

TEST(DaemonIdentity, IdsOfThisProcessMatchTheKernel) {
    SelfPeer self;
    ASSERT_EQ(self.peer.pid, ::getpid());
    for (const auto via : k_both) {
        SCOPED_TRACE(via_name(via));
        const auto ids = identity::ids_of(self.fds[0], self.peer, identity::LoginUid::read, via);
        ASSERT_TRUE(ids.has_value());
        EXPECT_EQ(ids->real_uid, ::getuid());
        EXPECT_EQ(ids->login_uid, identity::login_uid_of(::getpid()).value());
        if (via == identity::ReadVia::proc) {
            EXPECT_FALSE(ids->via_pidfd);
        } else if (kernel_has_pidfd_info()) {
            EXPECT_TRUE(ids->via_pidfd) << "Linux 6.13 or later: read through the pidfd";
        }
        const auto no_login = identity::ids_of(self.fds[0], self.peer, identity::LoginUid::skip, via);
        ASSERT_TRUE(no_login.has_value());
        EXPECT_EQ(no_login->real_uid, ::getuid());
        EXPECT_EQ(no_login->login_uid, -1) << "not asked for";
    }
}

// The pidfd path reads what the /proc path reads, for a peer that is not this process.
TEST(DaemonIdentity, IdsOfAConnectedChildAreTheSameEitherWay) {
    ConnectedChild child([] { return true; }, false);
    ASSERT_GT(child.peer.pid, 0);
    ASSERT_EQ(child.peer.pid, child.pid);
    const auto via_pidfd = identity::ids_of(child.fd, child.peer, identity::LoginUid::read);
    const auto via_proc = identity::ids_of(child.fd, child.peer, identity::LoginUid::read, identity::ReadVia::proc);
    ASSERT_TRUE(via_pidfd.has_value());
    ASSERT_TRUE(via_proc.has_value());
    EXPECT_EQ(via_pidfd->real_uid, ::getuid());
    EXPECT_EQ(via_pidfd->real_uid, via_proc->real_uid);
    EXPECT_EQ(via_pidfd->login_uid, via_proc->login_uid);
    EXPECT_EQ(via_pidfd->login_uid, identity::login_uid_of(child.pid).value());
    if (kernel_has_pidfd_info()) {
        EXPECT_TRUE(via_pidfd->via_pidfd);
    }
    EXPECT_FALSE(via_proc->via_pidfd);
}

// su's and sudo's situation: a peer whose real uid (65534) is not its effective uid (0, which
// SO_PEERCRED gives), in a session whose login uid it set itself. Both paths read the real uid.
TEST(DaemonIdentity, ARealUidThatIsNotTheEffectiveOneIsRead) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a setuid-like child";
    ConnectedChild child(
        [] {
            bool set = false;
            {
                std::ofstream out("/proc/self/loginuid");
                out << 2002;
                out.flush();
                set = static_cast<bool>(out);
            }
            if (::setresuid(65534, 0, 0) != 0) ::_exit(1);
            return set;
        },
        false);
    ASSERT_GT(child.peer.pid, 0);
    EXPECT_EQ(child.peer.uid, 0u) << "SO_PEERCRED: the effective uid";
    for (const auto via : k_both) {
        SCOPED_TRACE(via_name(via));
        const auto ids = identity::ids_of(child.fd, child.peer, identity::LoginUid::read, via);
        ASSERT_TRUE(ids.has_value());
        EXPECT_EQ(ids->real_uid, 65534u);
        const auto r = identity::requester_of(*ids, 0);
        EXPECT_EQ(r.uid, 65534) << "the caller, not the account (0) it asks for";
        if (child.said == '1') {
            EXPECT_EQ(ids->login_uid, 2002);
            EXPECT_EQ(r.login_uid, 2002);
            EXPECT_FALSE(r.login_name.empty());
        } else {
            std::fprintf(stderr,
                         "note: this kernel does not let the test set a login uid; only the real uid was checked\n");
        }
    }
}

// With a single descriptor free, the login uid is read or the peer refused, never lost: the
// pidfd path held the pidfd while it opened /proc/<pid>/loginuid, which then failed (EMFILE)
// and read as "unset", so a shared account used from the requester's session passed the
// self-approval check (found in review). Each read now needs one descriptor at a time.
TEST(DaemonIdentity, OneFreeDescriptorNeverLosesTheLoginUid) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to set a child's login uid";
    ConnectedChild child(
        [] {
            std::ofstream out("/proc/self/loginuid");
            out << 2003;
            out.flush();
            return static_cast<bool>(out);
        },
        false);
    ASSERT_GT(child.peer.pid, 0);
    if (child.said != '1') GTEST_SKIP() << "this kernel does not let the test set a login uid";
    rlimit old{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
    int highest = 2;
    for (int fd = 0; fd < 4096; ++fd)
        if (::fcntl(fd, F_GETFD) >= 0) highest = fd;
    for (const auto via : k_both) {
        SCOPED_TRACE(via_name(via));
        // Every descriptor up to the limit taken but one.
        rlimit tight = old;
        tight.rlim_cur = static_cast<rlim_t>(highest + 2);
        ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
        std::vector<int> fillers;
        for (int fd = ::dup(0); fd >= 0; fd = ::dup(0)) fillers.push_back(fd);
        ASSERT_FALSE(fillers.empty());
        ::close(fillers.back());
        fillers.pop_back();
        const auto ids = identity::ids_of(child.fd, child.peer, identity::LoginUid::read, via);
        for (const int fd : fillers) ::close(fd);
        ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
        // Either path needs one descriptor at a time: it reads the login uid, never loses it
        // (nor refuses for want of a second descriptor).
        ASSERT_TRUE(ids.has_value()) << "refused with one descriptor free";
        EXPECT_EQ(ids->login_uid, 2003);
        if (via == identity::ReadVia::pidfd_where_supported && kernel_has_pidfd_info()) {
            EXPECT_TRUE(ids->via_pidfd);
        }
    }
    // With descriptors to spare both paths read it.
    for (const auto via : k_both) {
        const auto ids = identity::ids_of(child.fd, child.peer, identity::LoginUid::read, via);
        ASSERT_TRUE(ids.has_value());
        EXPECT_EQ(ids->login_uid, 2003);
    }
}

// A peer that exited and was reaped is refused either way: nothing is read for its pid.
TEST(DaemonIdentity, APeerThatExitedIsRefused) {
    for (const auto via : k_both) {
        SCOPED_TRACE(via_name(via));
        ConnectedChild child([] { return true; }, true);
        ASSERT_GT(child.peer.pid, 0);
        child.reap(false);
        EXPECT_FALSE(identity::ids_of(child.fd, child.peer, identity::LoginUid::read, via).has_value());
        EXPECT_FALSE(identity::ids_of(child.fd, child.peer, identity::LoginUid::skip, via).has_value());
    }
}

// What a reused pid looks like from the daemon: the pid it has for the peer now names another
// live process (here: this test). Through the pidfd that is refused (the pidfd's process does
// not have that pid); the /proc path cannot tell (SECURITY NOTE in identity.hpp).
TEST(DaemonIdentity, APidThatNoLongerNamesThePeerIsRefusedThroughThePidfd) {
    ConnectedChild child([] { return true; }, false);
    ASSERT_GT(child.peer.pid, 0);
    const auto ids = identity::ids_of(child.fd, child.peer, identity::LoginUid::skip);
    ASSERT_TRUE(ids.has_value());
    if (!ids->via_pidfd) GTEST_SKIP() << "this kernel has no pidfd credentials (before 6.13): /proc only";
    identity::Peer reused = child.peer;
    reused.pid = ::getpid();
    EXPECT_FALSE(identity::ids_of(child.fd, reused, identity::LoginUid::read).has_value());
    EXPECT_FALSE(identity::ids_of(child.fd, reused, identity::LoginUid::skip).has_value());
}

// No pid (the peer is outside our pid namespace), or one that names no process.
TEST(DaemonIdentity, NoPeerPidIsRefused) {
    SelfPeer self;
    for (const auto via : k_both) {
        SCOPED_TRACE(via_name(via));
        for (const pid_t pid : {0, -1, INT_MAX}) {
            identity::Peer peer = self.peer;
            peer.pid = pid;
            EXPECT_FALSE(identity::ids_of(self.fds[0], peer, identity::LoginUid::read, via).has_value());
        }
    }
}

// A non-root caller (su, sudo: setuid root, real uid the person's) is the requester, whatever
// account it names; a root caller (sshd, login) asks for the account itself.
TEST(DaemonIdentity, RequesterIsTheCallersRealUidUnlessRoot) {
    SelfPeer self;
    const auto ids = identity::ids_of(self.fds[0], self.peer, identity::LoginUid::read);
    ASSERT_TRUE(ids.has_value());
    const auto r = identity::requester_of(*ids, 4242);
    if (::getuid() == 0)
        EXPECT_EQ(r.uid, 4242);
    else
        EXPECT_EQ(r.uid, static_cast<std::int64_t>(::getuid()));
    EXPECT_FALSE(r.name.empty());
    EXPECT_EQ(r.login_uid, identity::login_uid_of(::getpid()).value());
    EXPECT_EQ(r.login_uid < 0, r.login_name.empty());
}

} // namespace
