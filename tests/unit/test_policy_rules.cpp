// Unit tests of daemon/policy/rules.cpp: first-match evaluation over configs written as YAML, the way
// admins write them.
#include "daemon/policy/rules.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace jitgate::rules {
namespace {

config::Config load(const std::string& yaml) {
    config::LoadResult result = config::parse_config(yaml, "test.yaml");
    std::string problems;
    for (const auto& p : result.problems) {
        problems += p.to_string() + "\n";
    }
    EXPECT_TRUE(result.config.has_value()) << problems;
    return result.config.value_or(config::Config{});
}

Facts sudo_facts(std::string command, std::vector<std::string> args = {}) {
    Facts facts;
    facts.kind = "sudo";
    facts.user = "alice";
    facts.user_groups = {"alice", "ops"};
    facts.command = command;
    facts.argv.push_back(command);
    for (auto& a : args) {
        facts.argv.push_back(std::move(a));
    }
    facts.runas_user = "root";
    return facts;
}

Facts login_facts(std::string remote) {
    Facts facts;
    facts.kind = "login";
    facts.user = "alice";
    facts.user_groups = {"alice", "ops"};
    facts.service = "sshd";
    facts.remote_host = std::move(remote);
    return facts;
}

// The name of the matching rule, or "default".
std::string matched(const config::Config& config, const Facts& facts) {
    const config::Rule* rule = first_match(config, facts);
    return rule == nullptr ? default_rule().name : rule->name;
}

TEST(DaemonRules, CommandLineJoinsPathAndArgumentsWithSingleSpaces) {
    Facts facts = sudo_facts("/usr/bin/systemctl", {"restart", "payments"});
    facts.argv[0] = "systemctl"; // argv[0] is what the user typed; the resolved path wins
    EXPECT_EQ(command_line_for_match(facts), "/usr/bin/systemctl restart payments");
    facts.argv.clear();
    EXPECT_EQ(command_line_for_match(facts), "/usr/bin/systemctl");
}

TEST(DaemonRules, FirstMatchingRuleWinsInFileOrder) {
    const config::Config config = load(R"(
rules:
  - name: status
    match: {commands: ["/usr/bin/systemctl status *"]}
    action: allow
  - name: any-systemctl
    match: {commands: ["/usr/bin/systemctl *"]}
    action: deny
  - name: status-again
    match: {commands: ["/usr/bin/systemctl status *"]}
    action: deny
)");
    EXPECT_EQ(matched(config, sudo_facts("/usr/bin/systemctl", {"status", "nginx"})), "status");
    EXPECT_EQ(matched(config, sudo_facts("/usr/bin/systemctl", {"restart", "nginx"})), "any-systemctl");
}

TEST(DaemonRules, NothingMatchingMeansTheDefaultRule) {
    const config::Config config = load(R"(
rules:
  - name: status
    match: {commands: ["/usr/bin/systemctl status *"]}
    action: allow
)");
    EXPECT_EQ(first_match(config, sudo_facts("/usr/bin/id")), nullptr);
    const config::Rule& fallback = default_rule();
    EXPECT_EQ(fallback.name, "default");
    EXPECT_EQ(fallback.action, config::Action::require_approval);
    EXPECT_EQ(fallback.approvals, 1);
    EXPECT_EQ(fallback.ttl, std::chrono::minutes(15));
    EXPECT_EQ(&fallback, &default_rule());
}

TEST(DaemonRules, EmptyMatchMatchesEverything) {
    const config::Config config = load("rules:\n  - name: all\n");
    EXPECT_EQ(matched(config, sudo_facts("/usr/bin/id")), "all");
    EXPECT_EQ(matched(config, login_facts("10.1.2.3")), "all");
}

TEST(DaemonRules, KindFilter) {
    const config::Config config = load(R"(
rules:
  - name: logins
    match: {kind: login}
  - name: sudo
    match: {kind: [sudo]}
)");
    EXPECT_EQ(matched(config, sudo_facts("/usr/bin/id")), "sudo");
    EXPECT_EQ(matched(config, login_facts("10.1.2.3")), "logins");
}

TEST(DaemonRules, UsersByNameAndByGroup) {
    const config::Config config = load(R"(
rules:
  - name: bob
    match: {users: [bob]}
  - name: dba
    match: {users: ["%dba"]}
  - name: ops
    match: {users: [carol, "%ops"]}
)");
    Facts facts = sudo_facts("/usr/bin/id");
    EXPECT_EQ(matched(config, facts), "ops");
    facts.user = "bob";
    EXPECT_EQ(matched(config, facts), "bob");
    facts.user = "dave";
    facts.user_groups = {"dba"};
    EXPECT_EQ(matched(config, facts), "dba");
    facts.user_groups = {"dbadmins"}; // a group is matched exactly, not as a prefix
    EXPECT_EQ(matched(config, facts), "default");
    facts.user = "ops"; // a user named like a group is not the group
    facts.user_groups = {};
    EXPECT_EQ(matched(config, facts), "default");
}

TEST(DaemonRules, StarInACommandGlobMatchesSpacesAndSlashes) {
    const config::Config config = load(R"(
rules:
  - name: logs
    match: {commands: ["/usr/bin/less /var/log/*"]}
  - name: restart
    match: {commands: ["/usr/bin/systemctl restart *"]}
  - name: exact
    match: {commands: [/usr/bin/systemctl daemon-reload]}
)");
    EXPECT_EQ(matched(config, sudo_facts("/usr/bin/less", {"/var/log/nginx/error.log"})), "logs");
    EXPECT_EQ(matched(config, sudo_facts("/usr/bin/systemctl", {"restart", "a", "b"})), "restart");
    EXPECT_EQ(matched(config, sudo_facts("/usr/bin/systemctl", {"restart"})), "default");
    EXPECT_EQ(matched(config, sudo_facts("/usr/bin/systemctl", {"daemon-reload"})), "exact");
    EXPECT_EQ(matched(config, sudo_facts("/usr/bin/systemctl", {"daemon-reload", "x"})), "default");
    EXPECT_EQ(matched(config, sudo_facts("/usr/local/bin/systemctl", {"restart", "a"})), "default");
}

TEST(DaemonRules, BareNameMatchesTheProgramInAnyDirectoryWithAnyArguments) {
    const config::Config config = load(R"(
rules:
  - name: journal
    match: {commands: [journalctl]}
  - name: editors
    match: {commands: ["vi*"]}
  - name: with-args
    match: {commands: ["id -u"]}
)");
    EXPECT_EQ(matched(config, sudo_facts("/usr/bin/journalctl", {"-u", "nginx"})), "journal");
    EXPECT_EQ(matched(config, sudo_facts("/bin/journalctl")), "journal");
    EXPECT_EQ(matched(config, sudo_facts("/usr/bin/vim", {"/etc/hosts"})), "editors");
    // A glob with a space is matched against the whole line, which starts with the full path.
    EXPECT_EQ(matched(config, sudo_facts("/usr/bin/id", {"-u"})), "default");
}

TEST(DaemonRules, CommandRulesNeverMatchLogins) {
    const config::Config config = load("rules:\n  - name: any\n    match: {commands: ['*']}\n");
    EXPECT_EQ(matched(config, sudo_facts("/usr/bin/id")), "any");
    EXPECT_EQ(matched(config, login_facts("10.0.0.1")), "default");
}

TEST(DaemonRules, RunAs) {
    const config::Config config = load(R"(
rules:
  - name: postgres
    match: {runas: [postgres]}
  - name: root
    match: {runas: root}
)");
    Facts facts = sudo_facts("/usr/bin/psql");
    EXPECT_EQ(matched(config, facts), "root");
    facts.runas_user = "postgres";
    EXPECT_EQ(matched(config, facts), "postgres");
    facts.runas_user = "www-data";
    EXPECT_EQ(matched(config, facts), "default");
}

TEST(DaemonRules, ServicesAndRemoteHosts) {
    const config::Config config = load(R"(
rules:
  - name: console
    match: {kind: login, services: [login]}
  - name: corp
    match: {kind: login, services: [sshd], remote_hosts: [10.0.0.0/8, "*.corp.example.com"]}
)");
    EXPECT_EQ(matched(config, login_facts("10.20.30.40")), "corp");
    EXPECT_EQ(matched(config, login_facts("Bastion.CORP.example.com")), "corp");
    EXPECT_EQ(matched(config, login_facts("192.168.1.1")), "default");
    EXPECT_EQ(matched(config, login_facts("")), "default"); // no remote host: not "corp"
    Facts console = login_facts("");
    console.service = "login";
    EXPECT_EQ(matched(config, console), "console");
}

TEST(DaemonRules, HostEnvironmentAndTags) {
    const std::string rules = R"(
rules:
  - name: finance-prod
    match: {host: {environment: [production], tags: [finance, sox]}}
  - name: prod
    match: {host: {environment: production}}
  - name: staging-or-dev
    match: {host: {environment: [staging, dev]}}
)";
    const auto host = [&rules](const std::string& environment, const std::string& tags) {
        return load("host: {name: h, environment: " + environment + ", tags: " + tags + "}\n" + rules);
    };
    const Facts facts = sudo_facts("/usr/bin/id");
    EXPECT_EQ(matched(host("production", "[finance, sox, pci]"), facts), "finance-prod");
    EXPECT_EQ(matched(host("production", "[finance]"), facts), "prod"); // every tag is needed
    EXPECT_EQ(matched(host("dev", "[finance, sox]"), facts), "staging-or-dev");
    EXPECT_EQ(matched(host("qa", "[]"), facts), "default");
}

TEST(DaemonRules, RemoteHostExactAndGlob) {
    EXPECT_TRUE(remote_host_matches("bastion.example.com", "bastion.example.com"));
    EXPECT_TRUE(remote_host_matches("bastion.example.com", "BASTION.example.com"));
    EXPECT_TRUE(remote_host_matches("*.example.com", "a.b.example.com"));
    EXPECT_FALSE(remote_host_matches("*.example.com", "example.com"));
    EXPECT_FALSE(remote_host_matches("*.example.com", "a.example.com.evil.net"));
    EXPECT_TRUE(remote_host_matches("10.1.2.*", "10.1.2.3"));
    EXPECT_FALSE(remote_host_matches("*", ""));
    EXPECT_FALSE(remote_host_matches("", "host"));
}

TEST(DaemonRules, RemoteHostIpv4Cidr) {
    EXPECT_TRUE(remote_host_matches("10.0.0.0/8", "10.255.1.2"));
    EXPECT_FALSE(remote_host_matches("10.0.0.0/8", "11.0.0.1"));
    EXPECT_TRUE(remote_host_matches("192.168.4.0/22", "192.168.7.255"));
    EXPECT_FALSE(remote_host_matches("192.168.4.0/22", "192.168.8.0"));
    EXPECT_TRUE(remote_host_matches("192.0.2.7/32", "192.0.2.7"));
    EXPECT_FALSE(remote_host_matches("192.0.2.7/32", "192.0.2.8"));
    EXPECT_TRUE(remote_host_matches("0.0.0.0/0", "203.0.113.9"));
    EXPECT_TRUE(remote_host_matches("10.0.0.0/8", "::ffff:10.1.2.3")); // v4 via a v6 socket
    EXPECT_FALSE(remote_host_matches("10.0.0.0/8", "2001:db8::1"));
    EXPECT_FALSE(remote_host_matches("10.0.0.0/8", "ten.example.com"));
    EXPECT_FALSE(remote_host_matches("10.0.0.0/33", "10.0.0.1")); // broken patterns never match
    EXPECT_FALSE(remote_host_matches("10.0.0.0/", "10.0.0.1"));
    EXPECT_FALSE(remote_host_matches("10.0.0.0/x", "10.0.0.1"));
}

TEST(DaemonRules, RemoteHostIpv6Cidr) {
    EXPECT_TRUE(remote_host_matches("2001:db8::/32", "2001:db8:1234::1"));
    EXPECT_TRUE(remote_host_matches("2001:DB8::/32", "2001:0db8::abcd"));
    EXPECT_FALSE(remote_host_matches("2001:db8::/32", "2001:db9::1"));
    EXPECT_TRUE(remote_host_matches("fd00::/7", "fdff::1"));
    EXPECT_TRUE(remote_host_matches("fd00::/7", "fc00::1"));
    EXPECT_FALSE(remote_host_matches("fd00::/7", "fe80::1"));
    EXPECT_TRUE(remote_host_matches("::1/128", "::1"));
    EXPECT_FALSE(remote_host_matches("2001:db8::/32", "10.0.0.1"));
    EXPECT_FALSE(remote_host_matches("2001:db8::/129", "2001:db8::1"));
}

TEST(DaemonRules, ExampleConfigRoutesTypicalRequests) {
    config::LoadResult result = config::load_config(JITGATE_SOURCE_DIR "/config/jitgate.yaml");
    ASSERT_TRUE(result.config.has_value());
    const config::Config& config = *result.config;
    EXPECT_EQ(matched(config, sudo_facts("/usr/bin/systemctl", {"status", "nginx"})), "systemctl-status");
    EXPECT_EQ(matched(config, sudo_facts("/usr/sbin/mkfs.ext4", {"/dev/sda1"})), "no-disk-wipes");
    // The example host is tagged finance, so the finance rule wins over the restart rule.
    EXPECT_EQ(matched(config, sudo_facts("/usr/bin/systemctl", {"restart", "nginx"})), "finance");
}

} // namespace
} // namespace jitgate::rules
