// tests/unit/test_common_plugin_options.cpp — the options of sudo.conf and PAM lines
// (common/plugin_options).
#include <gtest/gtest.h>

#include "jitgate/plugin_options.hpp"

namespace {

TEST(PluginOptions, ParsesKnownAndReportsTheRest) {
    const auto o = jitgate::parse_plugin_options(
        {"socket=/run/x.sock", "break_glass_group=bg", "connect_timeout=250", "daemon_user=jg", "colour=blue"});
    EXPECT_EQ(o.client.socket_path, "/run/x.sock");
    EXPECT_EQ(o.break_glass_group, "bg");
    EXPECT_EQ(o.client.connect_timeout_ms, 250);
    EXPECT_EQ(o.client.daemon_user, "jg");
    ASSERT_EQ(o.unknown.size(), 1u);
    EXPECT_TRUE(o.errors.empty());
    const auto bad = jitgate::parse_plugin_options({"socket=relative", "connect_timeout=fast", "connect_timeout=5"});
    EXPECT_EQ(bad.errors.size(), 3u);
}

TEST(PluginOptions, FindValue) {
    char a[] = "user=alice";
    char b[] = "uid=2001";
    char c[] = "username=x";
    char* kv[] = {c, a, b, nullptr};
    EXPECT_STREQ(jitgate::find_value(kv, "user"), "alice");
    EXPECT_STREQ(jitgate::find_value(kv, "uid"), "2001");
    EXPECT_EQ(jitgate::find_value(kv, "tty"), nullptr);
    EXPECT_EQ(jitgate::find_value(nullptr, "tty"), nullptr);
}

} // namespace
