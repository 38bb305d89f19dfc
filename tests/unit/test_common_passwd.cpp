// Unit tests of the NSS user and group lookups (common/passwd): root and nobody exist on every
// system the tests run on; a name no system has must read as unknown, never as a default.
#include <gtest/gtest.h>

#include <malloc.h>

#include <algorithm>

#include "jitgate/passwd.hpp"

namespace {
constexpr const char* k_no_such_user = "jitgate-no-such-user-x9";
}

TEST(Passwd, RootIsUidZeroBothWays) {
    EXPECT_EQ(jitgate::user_name_of(0), std::optional<std::string>("root"));
    EXPECT_EQ(jitgate::uid_of("root"), std::optional<unsigned>(0));
    EXPECT_EQ(jitgate::group_name_of(0), std::optional<std::string>("root"));
}

TEST(Passwd, NobodyRoundTrips) {
    const auto uid = jitgate::uid_of("nobody");
    ASSERT_TRUE(uid.has_value());
    EXPECT_NE(*uid, 0u);
    EXPECT_EQ(jitgate::user_name_of(*uid), std::optional<std::string>("nobody"));
}

TEST(Passwd, UnknownNamesAndIdsAreNullopt) {
    EXPECT_FALSE(jitgate::uid_of(k_no_such_user).has_value());
    EXPECT_FALSE(jitgate::uid_of("").has_value());
    EXPECT_FALSE(jitgate::user_name_of(4000000000u).has_value());
    EXPECT_FALSE(jitgate::group_name_of(4000000000u).has_value());
    // An unknown user has no group list at all: "no groups" would skip %group deny rules.
    EXPECT_FALSE(jitgate::group_names_of(k_no_such_user).has_value());
}

TEST(Passwd, GroupMembership) {
    EXPECT_TRUE(jitgate::user_in_group("root", "root"));
    EXPECT_FALSE(jitgate::user_in_group("root", "")) << "an empty group name is break-glass disabled";
    EXPECT_FALSE(jitgate::user_in_group(k_no_such_user, "root"));
    EXPECT_FALSE(jitgate::user_in_group("nobody", "root"));
}

// Regression: group_names_of() copied gr_name after the lookup's buffer was freed, so group
// rules were judged on whatever the allocator left there. M_PERTURB makes freed memory garbage.
TEST(PasswdLookups, GroupNamesAreCopiedBeforeTheBufferIsFreed) {
    mallopt(M_PERTURB, 0x41);
    const auto groups = jitgate::group_names_of("root");
    mallopt(M_PERTURB, 0);
    ASSERT_TRUE(groups.has_value());
    EXPECT_NE(std::find(groups->begin(), groups->end(), "root"), groups->end());
}
