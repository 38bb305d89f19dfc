// Unit tests of server/config/config.cpp: the shipped example, the defaults, every validation
// error (one tests/fixtures/server/bad-*.yaml per error, with its exact file:line:column
// message), and the checks of the files the config names (ownership, mode, existence).
#include "server/config/config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lib/grant_token.hpp"

namespace jitgate::server::config {
namespace {

namespace fs = std::filesystem;
using jitgate::config::Problem;

const fs::path k_fixtures = fs::path(JITGATE_FIXTURES) / "server";

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string all_problems(const LoadResult& result) {
    std::string out;
    for (const auto& p : result.problems) out += p.to_string() + "\n";
    return out;
}

const std::string k_minimal = "server:\n"
                              "  name: approvals.example.com\n"
                              "  public_url: https://approvals.example.com\n"
                              "hosts:\n"
                              "  cert: /etc/jitgate-server/tls/server.pem\n"
                              "  key: /etc/jitgate-server/tls/server.key\n"
                              "  client_ca: /etc/jitgate-server/tls/hosts-ca.pem\n"
                              "signing:\n"
                              "  keys:\n"
                              "    - kid: k1\n"
                              "      private_key: /etc/jitgate-server/keys/k1.key\n";

TEST(ServerConfig, ExampleConfigParsesWithEveryKey) {
    const std::string path = JITGATE_SOURCE_DIR "/config/jitgate-server.yaml";
    const LoadResult result = parse(read_file(path), path);
    ASSERT_TRUE(result.problems.empty()) << all_problems(result);
    const Config& c = result.config;
    EXPECT_EQ(c.source, path);
    EXPECT_EQ(c.server.name, "approvals.example.com");
    EXPECT_EQ(c.server.public_url, "https://approvals.example.com");
    EXPECT_EQ(c.hosts.listen.address, "0.0.0.0");
    EXPECT_EQ(c.hosts.listen.port, 8443);
    EXPECT_EQ(c.hosts.client_ca, "/etc/jitgate-server/tls/hosts-ca.pem");
    EXPECT_EQ(c.hosts.max_timeout, std::chrono::hours(1));
    EXPECT_EQ(c.hosts.max_ttl, std::chrono::hours(8));
    EXPECT_EQ(c.hosts.client_crl, "/etc/jitgate-server/tls/hosts-ca.crl");
    EXPECT_EQ(c.hosts.max_pending_per_host, 64);
    EXPECT_EQ(c.hosts.max_connections_per_address, 0);
    EXPECT_EQ(c.web.max_connections_per_address, 64);
    EXPECT_EQ(c.web.listen.port, 8444);
    EXPECT_EQ(c.web.cert, "/etc/jitgate-server/tls/web.pem");
    EXPECT_EQ(c.oidc.issuer, "https://idp.example.com/realms/corp");
    EXPECT_EQ(c.oidc.client_secret_file, "/etc/jitgate-server/oidc.secret");
    EXPECT_EQ(c.oidc.users.at("alice.anders@example.com"), "alice");
    EXPECT_EQ(c.oidc.groups.at("okta-dba-leads"), "dba-leads");
    EXPECT_EQ(c.oidc.scopes, (std::vector<std::string>{"openid", "profile", "email"}));
    EXPECT_EQ(c.database.sqlite, "/var/lib/jitgate-server/jitgate-server.db");
    ASSERT_EQ(c.signing.keys.size(), 1u);
    EXPECT_EQ(c.signing.keys[0].kid, "k1");
    EXPECT_EQ(c.signing.active, "k1");
    ASSERT_EQ(c.windows.size(), 2u);
    EXPECT_EQ(c.windows[0].name, "business-hours");
    EXPECT_EQ(c.windows[0].timezone, "Europe/Berlin");
    ASSERT_EQ(c.windows[0].weekly.size(), 1u);
    EXPECT_EQ(c.windows[0].weekly[0].from_minute, 8 * 60);
    ASSERT_EQ(c.windows[1].dates.size(), 1u);
    EXPECT_EQ(c.windows[1].dates[0].label, "quarter-end close");
    ASSERT_EQ(c.policy.size(), 4u);
    EXPECT_EQ(c.policy[0].name, "finance");
    EXPECT_EQ(c.policy[0].hosts, (std::vector<std::string>{"pay-*", "ledger-*"}));
    EXPECT_EQ(c.policy[0].min_approvals, 2);
    EXPECT_TRUE(c.policy[0].ticket_check);
    EXPECT_EQ(c.policy[1].unless_windows, std::vector<std::string>{"business-hours"});
    EXPECT_EQ(c.policy[1].approver_groups, std::vector<std::string>{"change-board"});
    EXPECT_EQ(c.policy[2].when_windows, std::vector<std::string>{"q4-freeze"});
    EXPECT_TRUE(c.policy[2].deny);
    EXPECT_FALSE(c.policy[3].deny);
    EXPECT_EQ(c.policy[3].approver_groups, (std::vector<std::string>{"dba-leads", "sox-approvers"}));
    EXPECT_EQ(c.policy[3].min_approvals, 1);
    ASSERT_EQ(c.webhooks.size(), 2u);
    EXPECT_EQ(c.webhooks[0].format, "json");
    EXPECT_EQ(c.webhooks[1].format, "slack");
    EXPECT_EQ(c.ticket_check.timeout, std::chrono::seconds(10));
    EXPECT_EQ(c.audit.syslog_facility, "authpriv");
    EXPECT_EQ(c.audit.auditor_groups, (std::vector<std::string>{"sox-auditors"}));
    EXPECT_EQ(c.audit.break_glass_reviewer_groups, (std::vector<std::string>{"security-reviewers"}));
    EXPECT_EQ(c.audit.break_glass_review_within, std::chrono::hours(24));
}

// audit.retention_months: seven years unless set; a year at least (bad-retention-months.yaml).
TEST(ServerConfig, AuditRetentionIsSevenYearsUnlessSet) {
    const LoadResult none = parse(k_minimal, "min.yaml");
    ASSERT_TRUE(none.problems.empty()) << all_problems(none);
    EXPECT_EQ(none.config.audit.retention_months, 84);
    const LoadResult ten = parse(k_minimal + "audit:\n  retention_months: 120\n", "r.yaml");
    ASSERT_TRUE(ten.problems.empty()) << all_problems(ten);
    EXPECT_EQ(ten.config.audit.retention_months, 120);
    const LoadResult text = parse(k_minimal + "audit:\n  retention_months: 7y\n", "t.yaml");
    EXPECT_FALSE(text.problems.empty());
}

TEST(ServerConfig, BreakGlassReviewersDefaultToTheAuditors) {
    const LoadResult none = parse(k_minimal, "min.yaml");
    ASSERT_TRUE(none.problems.empty()) << all_problems(none);
    EXPECT_TRUE(none.config.audit.auditor_groups.empty());
    EXPECT_TRUE(none.config.audit.break_glass_reviewer_groups.empty());
    EXPECT_EQ(none.config.audit.break_glass_review_within, std::chrono::hours(24));
    const LoadResult auditors =
        parse(k_minimal + "audit:\n  auditor_groups: [sox-auditors]\n  break_glass_review_within: 2h\n", "a.yaml");
    ASSERT_TRUE(auditors.problems.empty()) << all_problems(auditors);
    EXPECT_EQ(auditors.config.audit.break_glass_reviewer_groups, (std::vector<std::string>{"sox-auditors"}));
    EXPECT_EQ(auditors.config.audit.break_glass_review_within, std::chrono::hours(2));
    const LoadResult nobody =
        parse(k_minimal + "audit:\n  auditor_groups: [sox-auditors]\n  break_glass_reviewer_groups: []\n", "n.yaml");
    ASSERT_TRUE(nobody.problems.empty()) << all_problems(nobody);
    EXPECT_TRUE(nobody.config.audit.break_glass_reviewer_groups.empty());
}

TEST(ServerConfig, MinimalConfigGetsTheDefaults) {
    const LoadResult result = parse(k_minimal, "min.yaml");
    ASSERT_TRUE(result.problems.empty()) << all_problems(result);
    const Config& c = result.config;
    EXPECT_EQ(c.hosts.listen.address, "0.0.0.0");
    EXPECT_EQ(c.hosts.listen.port, 8443);
    EXPECT_EQ(c.web.listen.port, 8444);
    // No web certificate: the hosts' pair.
    EXPECT_EQ(c.web.cert, c.hosts.cert);
    EXPECT_EQ(c.web.key, c.hosts.key);
    EXPECT_EQ(c.signing.active, "k1");
    EXPECT_TRUE(c.oidc.issuer.empty());
    EXPECT_EQ(c.database.sqlite, "/var/lib/jitgate-server/jitgate-server.db");
    EXPECT_TRUE(c.database.postgres.empty());
    EXPECT_TRUE(c.policy.empty());
    EXPECT_TRUE(c.hosts.client_crl.empty());
    EXPECT_EQ(c.hosts.max_pending_per_host, 64);
    EXPECT_EQ(c.hosts.max_connections_per_address, 0);
    EXPECT_EQ(c.web.max_connections_per_address, 64);
}

TEST(ServerConfig, SignInLimitsHaveDefaultsAndAreRead) {
    const LoadResult defaults = parse(k_minimal, "min.yaml");
    ASSERT_TRUE(defaults.problems.empty()) << all_problems(defaults);
    EXPECT_EQ(defaults.config.web.sign_in_per_minute, 20);
    EXPECT_EQ(defaults.config.web.sign_in_burst, 10);
    EXPECT_EQ(defaults.config.web.max_sign_ins_in_progress, 10000);
    const LoadResult set = parse(
        k_minimal + "web:\n  sign_in_per_minute: 6\n  sign_in_burst: 3\n  max_sign_ins_in_progress: 50\n", "t.yaml");
    ASSERT_TRUE(set.problems.empty()) << all_problems(set);
    EXPECT_EQ(set.config.web.sign_in_per_minute, 6);
    EXPECT_EQ(set.config.web.sign_in_burst, 3);
    EXPECT_EQ(set.config.web.max_sign_ins_in_progress, 50);
    const LoadResult bad =
        parse(k_minimal + "web:\n  sign_in_per_minute: 6001\n  max_sign_ins_in_progress: x\n", "t.yaml");
    ASSERT_EQ(bad.problems.size(), 2u) << all_problems(bad);
}

TEST(ServerConfig, ListenTakesIpv4AndBracketedIpv6) {
    const LoadResult result =
        parse(k_minimal + "web:\n  listen: \"[::1]:0\"\nhosts_x: 1\n", "t.yaml"); // hosts_x: one known problem
    ASSERT_EQ(result.problems.size(), 1u) << all_problems(result);
    EXPECT_EQ(result.config.web.listen.address, "::1");
    EXPECT_EQ(result.config.web.listen.port, 0);
    EXPECT_NE(result.problems[0].message.find("did you mean 'hosts'"), std::string::npos);
}

TEST(ServerConfig, UnnamedListItemsGetNumberedNames) {
    const LoadResult result = parse(k_minimal + "policy:\n  - approver_groups: [a]\n  - hosts: [\"*\"]\n"
                                                "webhooks:\n  - url: https://hooks.example.com/x\n    format: slack\n",
                                    "t.yaml");
    ASSERT_EQ(result.problems.size(), 1u) << all_problems(result);
    EXPECT_EQ(result.problems[0].to_string(), "t.yaml:14:5: policy 'policy-2': approver_groups is required (who may "
                                              "approve the requests this entry covers)");
    EXPECT_EQ(result.config.policy.at(0).name, "policy-1");
    EXPECT_EQ(result.config.webhooks.at(0).name, "webhook-1");
}

// Each bad-*.yaml holds one error; its first line is "# expect: <line>:<column>: <message>".
TEST(ServerConfig, EveryBadFixtureFailsWithItsExactPositionAndMessage) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(k_fixtures)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind("bad-", 0) == 0 && entry.path().extension() == ".yaml") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    ASSERT_GE(files.size(), 30u);
    for (const fs::path& file : files) {
        SCOPED_TRACE(file.filename().string());
        const std::string text = read_file(file);
        const std::string marker = "# expect: ";
        ASSERT_EQ(text.rfind(marker, 0), 0u) << "first line must be '# expect: ...'";
        const std::string expected = text.substr(marker.size(), text.find('\n') - marker.size());
        const LoadResult result = parse(text, file.string());
        EXPECT_EQ(result.problems.size(), 1u) << all_problems(result);
        if (!result.problems.empty()) {
            EXPECT_EQ(result.problems[0].to_string(), file.string() + ":" + expected);
        }
    }
}

TEST(ServerConfig, ValidateChecksAConfigBuiltInCode) {
    Config c;
    c.source = "built";
    EXPECT_FALSE(validate(c).empty());
    c.server.name = "approvals.example.com";
    c.server.public_url = "https://approvals.example.com";
    c.hosts.cert = "/c.pem";
    c.hosts.key = "/c.key";
    c.hosts.client_ca = "/ca.pem";
    c.signing.keys.push_back({"k1", "/k1.key"});
    c.signing.active = "k1";
    EXPECT_TRUE(validate(c).empty());
    c.policy.push_back(PolicyEntry{});
    c.policy.back().name = "p";
    const auto problems = validate(c);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0].to_string(),
              "built: policy 'p': approver_groups is required (who may approve the requests this entry covers)");
}

// --- load(): the files the config names --------------------------------------------------------

class TempDir {
public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "jitgate-server-config-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        m_path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(m_path, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string write(const std::string& name, const std::string& text, mode_t mode) const {
        const std::string file = (m_path / name).string();
        { std::ofstream(file, std::ios::binary | std::ios::trunc) << text; }
        if (chmod(file.c_str(), mode) != 0) throw std::runtime_error("chmod failed");
        return file;
    }
    std::string path(const std::string& name) const { return (m_path / name).string(); }

private:
    fs::path m_path;
};

// A config whose files all exist with safe modes, in `dir`.
struct FileSetup {
    explicit FileSetup(const TempDir& dir) {
        dir.write("server.pem", "cert", 0644);
        dir.write("server.key", "key", 0600);
        dir.write("hosts-ca.pem", "ca", 0644);
        dir.write("k1.key", grant_token::SigningKey::generate("k1").private_key_pem(), 0600);
        dir.write("hook.secret", "s3cret", 0400);
        config = dir.write("server.yaml",
                           "server:\n"
                           "  name: approvals.example.com\n"
                           "  public_url: https://approvals.example.com\n"
                           "hosts:\n"
                           "  cert: " +
                               dir.path("server.pem") +
                               "\n"
                               "  key: " +
                               dir.path("server.key") +
                               "\n"
                               "  client_ca: " +
                               dir.path("hosts-ca.pem") +
                               "\n"
                               "signing:\n"
                               "  keys:\n"
                               "    - kid: k1\n"
                               "      private_key: " +
                               dir.path("k1.key") +
                               "\n"
                               "webhooks:\n"
                               "  - name: bus\n"
                               "    url: https://hooks.example.com/x\n"
                               "    secret_file: " +
                               dir.path("hook.secret") + "\n",
                           0644);
    }
    std::string config;
};

TEST(ServerConfigLoad, SafeFilesLoadWithoutProblems) {
    TempDir dir;
    FileSetup setup(dir);
    const LoadResult result = load(setup.config, getuid());
    EXPECT_TRUE(result.problems.empty()) << all_problems(result);
    EXPECT_EQ(result.config.signing.keys.at(0).private_key, dir.path("k1.key"));
}

TEST(ServerConfigLoad, ReadableSigningKeyIsBlamedAtItsKey) {
    TempDir dir;
    FileSetup setup(dir);
    chmod(dir.path("k1.key").c_str(), 0640);
    const LoadResult result = load(setup.config, getuid());
    ASSERT_EQ(result.problems.size(), 1u) << all_problems(result);
    EXPECT_EQ(result.problems[0].to_string(),
              setup.config + ":11:20: signing.keys[0].private_key: " + dir.path("k1.key") +
                  ": mode 0640 lets others read this secret; it must be 0600 or 0400 (fix with: chmod 0600 " +
                  dir.path("k1.key") + ")");
}

TEST(ServerConfigLoad, ReadableSecretAndWritableCaAreRefused) {
    TempDir dir;
    FileSetup setup(dir);
    chmod(dir.path("hook.secret").c_str(), 0644);
    chmod(dir.path("hosts-ca.pem").c_str(), 0664);
    const LoadResult result = load(setup.config, getuid());
    ASSERT_EQ(result.problems.size(), 2u) << all_problems(result);
    EXPECT_EQ(result.problems[0].to_string(), setup.config + ":7:14: hosts.client_ca: " + dir.path("hosts-ca.pem") +
                                                  ": is group-writable (mode 0664); fix with: chmod go-w " +
                                                  dir.path("hosts-ca.pem"));
    EXPECT_EQ(result.problems[1].to_string(),
              setup.config + ":15:18: webhooks[0].secret_file: " + dir.path("hook.secret") +
                  ": mode 0644 lets others read this secret; it must be 0600 or 0400 (fix with: chmod 0600 " +
                  dir.path("hook.secret") + ")");
}

TEST(ServerConfigLoad, MissingFileAndForeignOwnerAreRefused) {
    TempDir dir;
    FileSetup setup(dir);
    fs::remove(dir.path("server.key"));
    unsigned owner = getuid();
    if (getuid() == 0) {
        owner = 4242; // as root: another uid owns it; only root is allowed below
        ASSERT_EQ(chown(dir.path("server.pem").c_str(), owner, static_cast<gid_t>(-1)), 0);
        ASSERT_EQ(chown(setup.config.c_str(), owner, static_cast<gid_t>(-1)), 0);
    }
    // allowed_uid 0: only root may own the files. As root, two files belong to uid 4242; as
    // another user, all six (the config and five named files) are ours, so all are refused.
    const LoadResult result = load(setup.config, 0);
    const std::size_t foreign = getuid() == 0 ? 2 : 5;
    ASSERT_EQ(result.problems.size(), foreign + 1) << all_problems(result);
    const auto has = [&result](const std::string& line) {
        return std::any_of(result.problems.begin(), result.problems.end(),
                           [&line](const Problem& p) { return p.to_string() == line; });
    };
    EXPECT_EQ(result.problems[0].to_string(), setup.config + ": the config is owned by uid " + std::to_string(owner) +
                                                  " but must be owned by root; fix with: chown root " + setup.config);
    EXPECT_TRUE(has(setup.config + ":5:9: hosts.cert: " + dir.path("server.pem") + ": is owned by uid " +
                    std::to_string(owner) + " but must be owned by root; fix with: chown root " +
                    dir.path("server.pem")))
        << all_problems(result);
    EXPECT_TRUE(has(setup.config + ":6:8: hosts.key: " + dir.path("server.key") +
                    ": cannot read it: No such file or directory"))
        << all_problems(result);
}

TEST(ServerConfigLoad, MissingConfigIsOneProblem) {
    TempDir dir;
    const LoadResult result = load(dir.path("absent.yaml"), getuid());
    ASSERT_EQ(result.problems.size(), 1u);
    EXPECT_EQ(result.problems[0].to_string(),
              dir.path("absent.yaml") + ": cannot open the config: No such file or directory");
}

} // namespace
} // namespace jitgate::server::config
