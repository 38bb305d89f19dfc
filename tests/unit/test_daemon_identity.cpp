// Unit tests of who the kernel says a process is: the audit login uid and the requester of a
// check. They read this test's own /proc entries, so they hold with or without root.
#include <gtest/gtest.h>

#include <climits>
#include <fstream>
#include <string>
#include <unistd.h>

#include "identity.hpp"

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
    if (!raw || *raw == identity::k_login_uid_unset) EXPECT_EQ(got, -1) << "unset or unknown reads as -1";
    else EXPECT_EQ(got, *raw);
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
    if (::getuid() == 0) EXPECT_EQ(r->uid, 4242);
    else EXPECT_EQ(r->uid, static_cast<std::int64_t>(::getuid()));
    EXPECT_FALSE(r->name.empty());
    EXPECT_EQ(r->login_uid, identity::login_uid_of(::getpid()));
    EXPECT_EQ(r->login_uid < 0, r->login_name.empty());
}

TEST(DaemonIdentity, RequesterOfAGoneProcessIsRefused) {
    identity::Peer peer{INT_MAX, 0, 0};
    EXPECT_FALSE(identity::requester_of(peer, 0).has_value());
}

} // namespace
