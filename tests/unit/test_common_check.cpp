// Unit tests of the plugins' one check (common/check) where no daemon is needed: with the
// socket missing, only break-glass by a member of the configured group passes, and the PAM
// flavour asks that member for the reason first.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "jitgate/check.hpp"

using jitgate::Verdict;

namespace {
constexpr const char* k_reason = "db1 down, restoring from backup";

jitgate::PluginOptions offline_options(const std::string& group) {
    jitgate::PluginOptions o;
    o.client.socket_path = "/nonexistent/jitgate-test/jitgated.sock";
    o.client.connect_timeout_ms = 100;
    o.break_glass_group = group;
    return o;
}

jitgate::msg::CheckRequest request_of(const std::string& user, const std::string& reason) {
    jitgate::msg::CheckRequest r;
    r.kind = "sudo";
    r.user = user;
    r.uid = 0;
    r.break_glass_reason = reason;
    return r;
}
} // namespace

TEST(Check, DaemonUnreachableWithoutBreakGlassIsUnavailable) {
    auto r = request_of("root", "");
    const auto res = jitgate::check(offline_options("root"), r, {}, {});
    EXPECT_EQ(res.verdict, Verdict::unavailable);
    EXPECT_EQ(res.status.code, jitgate::ErrorCode::daemon_unreachable);
    EXPECT_FALSE(res.decision.allow);
    EXPECT_EQ(res.decision.outcome, jitgate::msg::Outcome::error);
}

TEST(Check, DaemonUnreachableBreakGlassPassesOnlyForTheGroup) {
    auto r = request_of("root", k_reason);
    EXPECT_EQ(jitgate::check(offline_options("root"), r, {}, {}).verdict, Verdict::offline_break_glass);
    auto n = request_of("nobody", k_reason);
    EXPECT_EQ(jitgate::check(offline_options("root"), n, {}, {}).verdict, Verdict::unavailable);
    auto disabled = request_of("root", k_reason);
    EXPECT_EQ(jitgate::check(offline_options(""), disabled, {}, {}).verdict, Verdict::unavailable);
    auto short_reason = request_of("root", "because");
    EXPECT_EQ(jitgate::check(offline_options("root"), short_reason, {}, {}).verdict, Verdict::unavailable);
}

TEST(Check, AsksAGroupMemberForTheReasonOnlyWhenTold) {
    std::vector<std::string> asked;
    jitgate::client::UserIo io;
    io.prompt = [&](const std::string& text, bool echo) -> std::optional<std::string> {
        asked.push_back(text);
        EXPECT_TRUE(echo);
        return std::string(k_reason);
    };
    jitgate::CheckSettings ask;
    ask.ask_break_glass_reason = true;

    auto r = request_of("root", "");
    r.interactive = true;
    EXPECT_EQ(jitgate::check(offline_options("root"), r, io, ask).verdict, Verdict::offline_break_glass);
    ASSERT_EQ(asked.size(), 1u);
    EXPECT_EQ(asked.front(), jitgate::k_break_glass_prompt);
    EXPECT_EQ(r.break_glass_reason, k_reason);

    asked.clear();
    auto not_interactive = request_of("root", "");
    EXPECT_EQ(jitgate::check(offline_options("root"), not_interactive, io, ask).verdict, Verdict::unavailable);
    auto not_member = request_of("nobody", "");
    not_member.interactive = true;
    EXPECT_EQ(jitgate::check(offline_options("root"), not_member, io, ask).verdict, Verdict::unavailable);
    auto not_told = request_of("root", "");
    not_told.interactive = true;
    EXPECT_EQ(jitgate::check(offline_options("root"), not_told, io, {}).verdict, Verdict::unavailable);
    EXPECT_TRUE(asked.empty());
}
