// tests/unit/test_audit_budget.cpp — the per-uid bounds on what local users can make
// the daemon record (daemon/audit_budget.hpp).
#include "daemon/audit/budget.hpp"

#include <gtest/gtest.h>

namespace {

using jitgate::audit::RefusalLimiter;
using jitgate::audit::SpoolShare;
using namespace std::chrono_literals;

TEST(RefusalLimiter, FirstNPerWindowAreRecordedTheRestCountedOnce) {
    RefusalLimiter l(3, 60s);
    const auto t0 = RefusalLimiter::Clock::now();
    int recorded = 0;
    for (int i = 0; i < 5000; ++i) recorded += l.admit(2005, t0 + std::chrono::milliseconds(i)) ? 1 : 0;
    EXPECT_EQ(recorded, 3);
    EXPECT_TRUE(l.take_due(t0 + 59s).empty()) << "the window has not ended";
    const auto due = l.take_due(t0 + 60s);
    ASSERT_EQ(due.size(), 1u);
    EXPECT_EQ(due[0].uid, 2005u);
    EXPECT_EQ(due[0].suppressed, 4997u);
    EXPECT_EQ(due[0].window_s, 60u);
    EXPECT_TRUE(l.take_due(t0 + 61s).empty()) << "each count is reported once";
    EXPECT_EQ(l.tracked(), 0u) << "an ended window is forgotten";
}

TEST(RefusalLimiter, UidsAreIndependentAndANewWindowStartsAfresh) {
    RefusalLimiter l(2, 60s);
    const auto t0 = RefusalLimiter::Clock::now();
    EXPECT_TRUE(l.admit(1, t0));
    EXPECT_TRUE(l.admit(1, t0));
    EXPECT_FALSE(l.admit(1, t0));
    EXPECT_TRUE(l.admit(2, t0)) << "another user's refusals still fit";
    // The flood goes on past the window: the old window's count is kept for the summary.
    EXPECT_TRUE(l.admit(1, t0 + 61s));
    const auto due = l.take_due(t0 + 62s);
    ASSERT_EQ(due.size(), 1u);
    EXPECT_EQ(due[0].uid, 1u);
    EXPECT_EQ(due[0].suppressed, 1u);
    EXPECT_FALSE(l.admit(1, t0 + 62s) && l.admit(1, t0 + 62s)) << "two recorded in the new window at most";
}

TEST(RefusalLimiter, ZeroPerWindowCountsEverythingAndTakeAllFlushes) {
    RefusalLimiter l(0, 60s);
    const auto t0 = RefusalLimiter::Clock::now();
    for (int i = 0; i < 7; ++i) EXPECT_FALSE(l.admit(3, t0));
    const auto all = l.take_all();
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].suppressed, 7u);
    EXPECT_TRUE(l.take_all().empty());
}

TEST(SpoolShare, AboveTheThresholdEachUidGetsItsShare) {
    SpoolShare share(80, 5);
    const std::uint64_t max = 1000;
    EXPECT_FALSE(share.near_full(799, max));
    EXPECT_TRUE(share.near_full(800, max));
    for (int i = 0; i < 100; ++i) share.charge(2001, 700, max); // below: not counted
    EXPECT_TRUE(share.may_add(2001, 850, max));
    for (int i = 0; i < 5; ++i) share.charge(2001, 850, max);
    EXPECT_FALSE(share.may_add(2001, 860, max)) << "the share is used up";
    EXPECT_TRUE(share.may_add(2002, 860, max)) << "other users still fit";
    EXPECT_TRUE(share.may_add(2001, 500, max)) << "drained: allowed again";
    EXPECT_TRUE(share.may_add(2001, 850, max)) << "a new episode starts afresh";
}

TEST(SpoolShare, ThresholdDoesNotOverflowForHugeLimits) {
    SpoolShare share(80, 5);
    const std::uint64_t max = UINT64_MAX;
    EXPECT_FALSE(share.near_full(max / 2, max));
    EXPECT_TRUE(share.near_full(max - 1, max));
}

} // namespace
