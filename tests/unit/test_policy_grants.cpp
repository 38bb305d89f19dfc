// Unit tests of the grant cache: scope and expiry.
#include <gtest/gtest.h>

#include "daemon/policy/grants.hpp"

namespace {

using namespace jitgate;
using grants::Clock;

grants::Grant make(const std::string& id, config::Scope scope, std::vector<std::string> argv,
                   Clock::time_point expires) {
    grants::Grant g;
    g.id = id;
    g.user = "alice";
    g.kind = "sudo";
    g.scope = scope;
    g.rule = "restarts";
    g.runas_user = "root";
    g.command = "/usr/bin/systemctl";
    g.argv = std::move(argv);
    g.expires = expires;
    return g;
}

TEST(Grants, CommandScopeCoversOnlyTheExactAction) {
    grants::GrantCache cache;
    const auto now = Clock::now();
    cache.add(make("G-1", config::Scope::command, {"systemctl", "restart", "payments"}, now + std::chrono::minutes(5)));
    std::vector<std::string> same{"systemctl", "restart", "payments"};
    std::vector<std::string> other{"systemctl", "restart", "ledger"};
    std::vector<std::string> joined{"systemctl", "restart payments"}; // same text, other split
    grants::Action a{"alice", "sudo", "restarts", "root", "/usr/bin/systemctl", &same, "", "", "", "", nullptr};
    ASSERT_NE(cache.find(a, now), nullptr);
    EXPECT_EQ(cache.find(a, now)->id, "G-1");
    a.argv = &other;
    EXPECT_EQ(cache.find(a, now), nullptr);
    a.argv = &joined;
    EXPECT_EQ(cache.find(a, now), nullptr);
    a.argv = &same;
    a.runas_user = "postgres";
    EXPECT_EQ(cache.find(a, now), nullptr);
    a.runas_user = "root";
    a.user = "bob";
    EXPECT_EQ(cache.find(a, now), nullptr);
    a.user = "alice";
    a.rule = "other-rule";
    EXPECT_EQ(cache.find(a, now), nullptr);
}

TEST(Grants, CommandScopeBindsTheWorkingDirectory) {
    grants::GrantCache cache;
    const auto now = Clock::now();
    auto g = make("G-9", config::Scope::command, {"chown", "alice", "./app.conf"}, now + std::chrono::minutes(5));
    g.cwd = "/home/alice/tmp";
    cache.add(g);
    std::vector<std::string> argv{"chown", "alice", "./app.conf"};
    grants::Action a{"alice", "sudo", "restarts", "root", "/usr/bin/systemctl", &argv, "/home/alice/tmp",
                     "",      "",     "",         nullptr};
    EXPECT_NE(cache.find(a, now), nullptr);
    a.cwd = "/etc/app";
    EXPECT_EQ(cache.find(a, now), nullptr);
}

TEST(Grants, SessionScopeCoversAnyCommandOfThatUserAndRule) {
    grants::GrantCache cache;
    const auto now = Clock::now();
    cache.add(make("G-2", config::Scope::session, {}, now + std::chrono::minutes(5)));
    std::vector<std::string> any{"journalctl", "-u", "payments"};
    grants::Action a{"alice", "sudo", "restarts", "postgres", "/usr/bin/journalctl", &any, "", "", "", "", nullptr};
    ASSERT_NE(cache.find(a, now), nullptr);
    a.user = "bob";
    EXPECT_EQ(cache.find(a, now), nullptr);
    a.user = "alice";
    a.kind = "login";
    EXPECT_EQ(cache.find(a, now), nullptr) << "a sudo session grant never covers a login";
}

TEST(Grants, ExpiredGrantsAreGoneAtTheirExpiry) {
    grants::GrantCache cache;
    const auto now = Clock::now();
    cache.add(make("G-3", config::Scope::command, {"x"}, now + std::chrono::seconds(10)));
    std::vector<std::string> argv{"x"};
    grants::Action a{"alice", "sudo", "restarts", "root", "/usr/bin/systemctl", &argv, "", "", "", "", nullptr};
    EXPECT_NE(cache.find(a, now + std::chrono::seconds(9)), nullptr);
    EXPECT_EQ(cache.find(a, now + std::chrono::seconds(10)), nullptr);
    EXPECT_EQ(cache.size(), 0u);
}

TEST(Grants, RevokeAndList) {
    grants::GrantCache cache;
    const auto now = Clock::now();
    cache.add(make("G-4", config::Scope::command, {"a"}, now + std::chrono::minutes(1)));
    cache.add(make("G-5", config::Scope::command, {"b"}, now - std::chrono::seconds(1)));
    EXPECT_EQ(cache.list(now).size(), 1u);
    EXPECT_TRUE(cache.revoke("G-4").has_value());
    EXPECT_FALSE(cache.revoke("G-4").has_value());
    EXPECT_EQ(cache.list(now).size(), 0u);
}

TEST(Grants, KeysAreInjective) {
    std::vector<std::string> a1{"ab", "c"}, a2{"a", "bc"};
    grants::Action x{"u", "sudo", "r", "root", "/c", &a1, "", "", "", "", nullptr};
    grants::Action y{"u", "sudo", "r", "root", "/c", &a2, "", "", "", "", nullptr};
    EXPECT_NE(grants::GrantCache::key_for(x, config::Scope::command),
              grants::GrantCache::key_for(y, config::Scope::command));
    // An argument is not an environment entry: argv {"/c", "A=b"} is not argv {"/c"} with env {"A=b"}.
    std::vector<std::string> with_arg{"/c", "A=b"}, bare{"/c"}, env{"A=b"};
    grants::Action as_arg{"u", "sudo", "r", "root", "/c", &with_arg, "", "", "", "", nullptr};
    grants::Action as_env{"u", "sudo", "r", "root", "/c", &bare, "", "", "", "", &env};
    EXPECT_NE(grants::GrantCache::key_for(as_arg, config::Scope::command),
              grants::GrantCache::key_for(as_env, config::Scope::command));
}

// Regression: a grant covers exactly what the approver saw. A grant approved for `sudo true`
// must not cover it with another run-as group (-g), environment (VAR=value, -E), run cwd (-D),
// chroot (-R) or program behind the same path.
TEST(Grants, CommandScopeBindsGroupEnvCwdChrootAndProgram) {
    grants::GrantCache cache;
    const auto now = Clock::now();
    grants::Grant g = make("G-7", config::Scope::command, {"/usr/bin/true"}, now + std::chrono::minutes(5));
    g.cwd = "/home/alice";
    g.runas_group = "root";
    g.program = "/usr/bin/true";
    g.env = {"PATH=/usr/sbin:/usr/bin"};
    cache.add(g);
    std::vector<std::string> argv{"/usr/bin/true"};
    std::vector<std::string> env{"PATH=/usr/sbin:/usr/bin"};
    const grants::Action same{"alice", "sudo", "restarts",      "root", "/usr/bin/systemctl", &argv, "/home/alice",
                              "root",  "",     "/usr/bin/true", &env};
    ASSERT_NE(cache.find(same, now), nullptr);

    auto changed = same;
    changed.runas_group = "shadow";
    EXPECT_EQ(cache.find(changed, now), nullptr) << "sudo -g";
    changed = same;
    std::vector<std::string> preload{"LD_PRELOAD=/tmp/x.so", "PATH=/usr/sbin:/usr/bin"};
    changed.env = &preload;
    EXPECT_EQ(cache.find(changed, now), nullptr) << "LD_PRELOAD";
    std::vector<std::string> none;
    changed.env = &none;
    EXPECT_EQ(cache.find(changed, now), nullptr) << "a different (smaller) environment";
    changed = same;
    changed.cwd = "/tmp";
    EXPECT_EQ(cache.find(changed, now), nullptr) << "sudo -D";
    changed = same;
    changed.chroot = "/srv/jail";
    EXPECT_EQ(cache.find(changed, now), nullptr) << "sudo -R";
    changed = same;
    changed.program = "/usr/bin/bash";
    EXPECT_EQ(cache.find(changed, now), nullptr) << "the path now names another program";
}

} // namespace
