// Unit tests of who the kernel says a process is: the audit login uid and the requester of a
// check. They read this test's own /proc entries, so they hold with or without root.
#include <gtest/gtest.h>

#include <climits>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

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
    const std::int64_t got = identity::login_uid_of(::getpid());
    if (!raw || *raw == identity::k_login_uid_unset)
        EXPECT_EQ(got, -1) << "unset or unknown reads as -1";
    else
        EXPECT_EQ(got, *raw);
}

TEST(DaemonIdentity, RealUidOfThisProcessMatchesTheKernel) {
    EXPECT_EQ(identity::real_uid_of(::getpid()), std::optional<uid_t>(::getuid()));
    EXPECT_FALSE(identity::real_uid_of(INT_MAX).has_value());
    EXPECT_FALSE(identity::real_uid_of(-1).has_value());
    EXPECT_FALSE(identity::real_uid_of(0).has_value());
}

TEST(DaemonIdentity, LoginUidOfAGoneProcessIsUnknown) {
    EXPECT_EQ(identity::login_uid_of(INT_MAX), -1);
    EXPECT_EQ(identity::login_uid_of(-1), -1);
}

// A non-root caller (su, sudo: setuid root, real uid the person's) is the requester, whatever
// account it names; a root caller (sshd, login) asks for the account itself.
TEST(DaemonIdentity, RequesterIsTheCallersRealUidUnlessRoot) {
    identity::Peer peer{::getpid(), 0, 0};
    const auto r = identity::requester_of(peer, 4242);
    ASSERT_TRUE(r.has_value());
    if (::getuid() == 0)
        EXPECT_EQ(r->uid, 4242);
    else
        EXPECT_EQ(r->uid, static_cast<std::int64_t>(::getuid()));
    EXPECT_FALSE(r->name.empty());
    EXPECT_EQ(r->login_uid, identity::login_uid_of(::getpid()));
    EXPECT_EQ(r->login_uid < 0, r->login_name.empty());
}

// su's situation, where the test can create it (as root): a process with real uid 65534 and
// effective uid 0, in a session whose login uid it set itself before.
TEST(DaemonIdentity, SetuidCallerIsTheRequesterAndItsLoginUidIsRead) {
    if (::geteuid() != 0)
        GTEST_SKIP()
            << "needs root to make a setuid-like child; RequesterIsTheCallersRealUidUnlessRoot covers non-root";
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(ready[0]);
        char set = '0';
        {
            std::ofstream out("/proc/self/loginuid");
            out << 2002;
            out.flush();
            if (out) set = '1';
        }
        if (::setresuid(65534, 0, 0) != 0) ::_exit(1);
        if (::write(ready[1], &set, 1) != 1) ::_exit(1);
        ::pause();
        ::_exit(0);
    }
    ::close(ready[1]);
    char set = 0;
    ASSERT_EQ(::read(ready[0], &set, 1), 1);
    ::close(ready[0]);
    const auto r = identity::requester_of(identity::Peer{child, 0, 0}, 0);
    const std::int64_t login = identity::login_uid_of(child);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->uid, 65534) << "the caller, not the account (0) it asks for";
    if (set == '1') {
        EXPECT_EQ(login, 2002);
        EXPECT_EQ(r->login_uid, 2002);
    } else {
        std::fprintf(stderr,
                     "note: this kernel does not let the test set a login uid; only the real uid was checked\n");
    }
}

TEST(DaemonIdentity, RequesterOfAGoneProcessIsRefused) {
    identity::Peer peer{INT_MAX, 0, 0};
    EXPECT_FALSE(identity::requester_of(peer, 0).has_value());
}

} // namespace
