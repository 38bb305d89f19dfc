// Unit tests of the offline break-glass rule (common/offline): with jitgated unreachable, only
// a member of the configured group with a long enough reason passes; every other failure and
// every other user fails closed.
#include <gtest/gtest.h>

#include "jitgate/offline.hpp"

using jitgate::ErrorCode;
using jitgate::Status;

namespace {
constexpr const char* k_reason = "disk full on db1, paging"; // >= 10 characters
Status failure(ErrorCode c) {
    return Status::failure(c, "detail");
}
} // namespace

TEST(Offline, OnlyUnreachableUntrustedAndTimeoutCountAsOffline) {
    EXPECT_TRUE(jitgate::is_offline(ErrorCode::daemon_unreachable));
    EXPECT_TRUE(jitgate::is_offline(ErrorCode::untrusted_daemon));
    EXPECT_TRUE(jitgate::is_offline(ErrorCode::timeout));
    for (ErrorCode c : {ErrorCode::ok, ErrorCode::denied, ErrorCode::protocol, ErrorCode::interrupted,
                        ErrorCode::bad_input, ErrorCode::internal})
        EXPECT_FALSE(jitgate::is_offline(c)) << jitgate::to_string(c);
}

TEST(Offline, ReasonNeedsTenCharactersBesidesWhitespace) {
    EXPECT_FALSE(jitgate::offline_break_glass_reason_ok(""));
    EXPECT_FALSE(jitgate::offline_break_glass_reason_ok("   \t\n  "));
    EXPECT_FALSE(jitgate::offline_break_glass_reason_ok("123456789"));
    EXPECT_FALSE(jitgate::offline_break_glass_reason_ok("   123456789 \n"));
    EXPECT_TRUE(jitgate::offline_break_glass_reason_ok("1234567890"));
    EXPECT_TRUE(jitgate::offline_break_glass_reason_ok("  12345 7890  "));
}

// The decision table: (why, group membership, reason) -> pass?
TEST(Offline, BreakGlassDecisionTable) {
    struct Row {
        ErrorCode why;
        const char* user;
        const char* group;
        const char* reason;
        bool pass;
    };
    const Row rows[] = {
        {ErrorCode::daemon_unreachable, "root", "root", k_reason, true},
        {ErrorCode::untrusted_daemon, "root", "root", k_reason, true},
        {ErrorCode::timeout, "root", "root", k_reason, true},
        {ErrorCode::daemon_unreachable, "root", "root", "short", false},                     // reason too short
        {ErrorCode::daemon_unreachable, "root", "root", "", false},                          // no reason
        {ErrorCode::daemon_unreachable, "root", "", k_reason, false},                        // break-glass disabled
        {ErrorCode::daemon_unreachable, "nobody", "root", k_reason, false},                  // not in the group
        {ErrorCode::daemon_unreachable, "jitgate-no-such-user-x9", "root", k_reason, false}, // lookup fails
        {ErrorCode::denied, "root", "root", k_reason, false},                                // the daemon said no
        {ErrorCode::protocol, "root", "root", k_reason, false},
        {ErrorCode::interrupted, "root", "root", k_reason, false},
        {ErrorCode::internal, "root", "root", k_reason, false},
        {ErrorCode::bad_input, "root", "root", k_reason, false},
        {ErrorCode::ok, "root", "root", k_reason, false},
    };
    for (const auto& row : rows)
        EXPECT_EQ(jitgate::offline_break_glass_allowed(failure(row.why), row.user, row.reason, row.group), row.pass)
            << jitgate::to_string(row.why) << " user=" << row.user << " group=" << row.group << " reason='"
            << row.reason << "'";
}
