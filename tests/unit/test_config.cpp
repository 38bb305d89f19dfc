// Unit tests of daemon/config/config.cpp: the YAML schema, every validation error (one
// tests/fixtures/config/bad-*.yaml per error), durations and the config file permission check.
#include "daemon/config/config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace jitgate::config {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;
using std::chrono::minutes;

const fs::path k_fixtures = fs::path(JITGATE_FIXTURES) / "config";

std::string all_problems(const LoadResult& result) {
    std::string out;
    for (const auto& p : result.problems) {
        out += p.to_string() + "\n";
    }
    return out;
}

bool has_problem(const LoadResult& result, const std::string& needle) {
    return std::any_of(result.problems.begin(), result.problems.end(),
                       [&](const Problem& p) { return p.message.find(needle) != std::string::npos; });
}

// A private directory for files whose mode and type the tests control; removed afterwards.
class TempDir {
public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "jitgate-config-test-XXXXXX").string();
        const char* made = mkdtemp(pattern.data());
        if (made == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        m_path = made;
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(m_path, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    fs::path write(const std::string& name, const std::string& text, mode_t mode) const {
        const fs::path file = m_path / name;
        std::ofstream(file) << text;
        chmod(file.c_str(), mode);
        return file;
    }
    const fs::path& path() const { return m_path; }

private:
    fs::path m_path;
};

TEST(DaemonConfig, EmptyTextIsAValidConfigWithDefaults) {
    for (const std::string text : {"", "# only a comment\n", "\n\n"}) {
        const LoadResult result = parse_config(text, "empty.yaml");
        ASSERT_TRUE(result.config.has_value()) << all_problems(result);
        const Config& c = *result.config;
        EXPECT_EQ(c.source, "empty.yaml");
        EXPECT_EQ(c.daemon.socket, "/run/jitgate/jitgated.sock");
        EXPECT_EQ(c.daemon.max_clients, 16384);
        EXPECT_EQ(c.approval.backend, "local");
        EXPECT_EQ(c.approval.approver_groups, std::vector<std::string>{"jitgate-approvers"});
        EXPECT_EQ(c.break_glass.min_reason_length, 10U);
        EXPECT_TRUE(c.audit.syslog);
        EXPECT_TRUE(c.rules.empty());
    }
}

TEST(DaemonConfig, HostNameDefaultsToGethostname) {
    std::array<char, 256> name{};
    ASSERT_EQ(gethostname(name.data(), name.size() - 1), 0);
    const LoadResult result = parse_config("host:\n  environment: staging\n", "t.yaml");
    ASSERT_TRUE(result.config) << all_problems(result);
    EXPECT_EQ(result.config->host.name, name.data());
    EXPECT_EQ(result.config->host.environment, "staging");
}

// Root is an account, not a person: it may not approve unless the config says so.
TEST(DaemonConfig, AllowRootDefaultsToFalseAndParses) {
    const LoadResult off = parse_config("approval:\n  backend: local\n", "t.yaml");
    ASSERT_TRUE(off.config) << all_problems(off);
    EXPECT_FALSE(off.config->approval.allow_root);
    const LoadResult on = parse_config("approval:\n  allow_root: true\n", "t.yaml");
    ASSERT_TRUE(on.config) << all_problems(on);
    EXPECT_TRUE(on.config->approval.allow_root);
    const LoadResult bad = parse_config("approval:\n  allow_root: sometimes\n", "t.yaml");
    EXPECT_FALSE(bad.config);
    const LoadResult misplaced = parse_config("allow_root: true\n", "t.yaml");
    EXPECT_FALSE(misplaced.config);
}

TEST(DaemonConfig, GoodFullFixtureSetsEveryKey) {
    const LoadResult result = load_config((k_fixtures / "good-full.yaml").string());
    ASSERT_TRUE(result.config.has_value()) << all_problems(result);
    const Config& c = *result.config;
    EXPECT_EQ(c.host.name, "pay-db-01");
    EXPECT_EQ(c.host.environment, "production");
    EXPECT_EQ(c.host.tags, (std::vector<std::string>{"finance", "pci"}));
    EXPECT_EQ(c.daemon.socket, "/run/jitgate/test.sock");
    EXPECT_EQ(c.daemon.max_clients, 64);
    EXPECT_EQ(c.daemon.max_pending, 32);
    EXPECT_EQ(c.approval.approver_groups, (std::vector<std::string>{"sox-approvers", "dba-leads"}));
    EXPECT_EQ(c.break_glass.group, "jitgate-breakglass");
    EXPECT_EQ(c.break_glass.min_reason_length, 20U);
    EXPECT_EQ(c.approval.backend, "service");
    const auto& svc = c.approval.service;
    EXPECT_EQ(svc.url, "https://approvals.example.com/jitgate");
    EXPECT_EQ(svc.ca_file, "/etc/jitgate/service-ca.pem");
    EXPECT_EQ(svc.client_cert, "/etc/jitgate/host.pem");
    EXPECT_EQ(svc.client_key, "/etc/jitgate/host.key");
    EXPECT_EQ(svc.proxy, "http://proxy.example.com:3128");
    EXPECT_EQ(svc.connect_timeout, std::chrono::seconds(3));
    EXPECT_EQ(svc.request_timeout, std::chrono::seconds(20));
    EXPECT_EQ(svc.poll_wait, std::chrono::seconds(50));
    EXPECT_EQ(svc.retries, 5);
    EXPECT_EQ(svc.issuer, "approvals.example.com");
    EXPECT_EQ(svc.clock_skew, std::chrono::seconds(10));
    EXPECT_EQ(svc.public_keys,
              (std::vector<std::pair<std::string, std::string>>{{"k2026", "/etc/jitgate/keys/k2026.pub"},
                                                                {"k2027", "/etc/jitgate/keys/k2027.pub"}}));
    EXPECT_EQ(c.audit.spool_dir, "/var/lib/jitgate/test-spool");
    EXPECT_EQ(c.audit.spool_max_bytes, 2ULL << 30);
    EXPECT_EQ(c.audit.segment_bytes, 16ULL << 20);
    EXPECT_TRUE(c.audit.break_glass_when_full);
    EXPECT_FALSE(c.audit.syslog);
    EXPECT_EQ(c.audit.syslog_socket, "/run/systemd/journal/dev-log");
    const auto& store = c.audit.store;
    EXPECT_EQ(store.url, "https://audit.example.com/services/collector/event");
    EXPECT_EQ(store.format, "splunk_hec");
    EXPECT_EQ(store.ca_file, "/etc/jitgate/store-ca.pem");
    EXPECT_EQ(store.client_cert, "/etc/jitgate/host.pem");
    EXPECT_EQ(store.client_key, "/etc/jitgate/host.key");
    EXPECT_EQ(store.token_file, "/etc/jitgate/store.token");
    EXPECT_EQ(store.proxy, "http://proxy.example.com:3128");
    EXPECT_EQ(store.connect_timeout, std::chrono::seconds(4));
    EXPECT_EQ(store.timeout, std::chrono::seconds(60));
    EXPECT_EQ(store.batch_events, 200);
    EXPECT_EQ(store.batch_bytes, 512U * 1024U);
    EXPECT_EQ(store.retry_min, std::chrono::seconds(2));
    EXPECT_EQ(store.retry_max, std::chrono::seconds(600));
    EXPECT_EQ(store.splunk_index, "sox");
    EXPECT_EQ(store.splunk_sourcetype, "jitgate:audit:test");
    ASSERT_EQ(c.rules.size(), 5U);

    const Rule& status = c.rules[0];
    EXPECT_EQ(status.name, "status");
    EXPECT_EQ(status.line, 60);
    EXPECT_EQ(status.action, Action::allow);
    EXPECT_EQ(status.match.kinds, std::vector<std::string>{"sudo"});
    EXPECT_EQ(status.match.users, (std::vector<std::string>{"alice", "%ops"}));
    EXPECT_EQ(status.match.commands.size(), 2U);
    EXPECT_EQ(status.match.runas, std::vector<std::string>{"root"}); // scalar read as a list
    EXPECT_EQ(status.message, "status is always allowed");

    EXPECT_EQ(c.rules[1].action, Action::deny);

    const Rule& finance = c.rules[2];
    EXPECT_EQ(finance.action, Action::require_approval);
    EXPECT_EQ(finance.approvals, 2);
    EXPECT_EQ(finance.ttl, minutes(30));
    EXPECT_EQ(finance.scope, Scope::session);
    EXPECT_TRUE(finance.reason_required);
    EXPECT_EQ(finance.ticket_pattern, "^CHG[0-9]{7}$");
    ASSERT_TRUE(finance.ticket_regex.has_value());
    EXPECT_TRUE(std::regex_search("CHG1234567", *finance.ticket_regex));
    EXPECT_FALSE(std::regex_search("CHG123", *finance.ticket_regex));
    EXPECT_EQ(finance.timeout, hours(1));
    EXPECT_EQ(finance.approver_groups, std::vector<std::string>{"sox-approvers"});
    EXPECT_EQ(finance.noninteractive, NonInteractive::wait);
    EXPECT_EQ(finance.match.runas, (std::vector<std::string>{"root", "postgres"}));
    EXPECT_EQ(finance.match.host.environments, (std::vector<std::string>{"production", "staging"}));
    EXPECT_EQ(finance.match.host.tags, std::vector<std::string>{"finance"});

    const Rule& ssh = c.rules[3];
    EXPECT_EQ(ssh.match.kinds, std::vector<std::string>{"login"});
    EXPECT_EQ(ssh.match.users, std::vector<std::string>{"%ops"});
    EXPECT_EQ(ssh.match.services, std::vector<std::string>{"sshd"});
    EXPECT_EQ(ssh.match.remote_hosts.size(), 3U);
    EXPECT_EQ(ssh.match.host.environments, std::vector<std::string>{"production"});
    EXPECT_EQ(ssh.match.host.tags, std::vector<std::string>{"pci"});
    EXPECT_EQ(ssh.ttl, hours(1)); // a bare number is seconds
    EXPECT_EQ(ssh.scope, Scope::login);
    EXPECT_FALSE(ssh.reason_required);
    EXPECT_FALSE(ssh.ticket_regex.has_value());
    EXPECT_EQ(ssh.timeout, std::chrono::seconds(90));

    const Rule& unnamed = c.rules[4];
    EXPECT_EQ(unnamed.name, "rule-5");
    EXPECT_EQ(unnamed.action, Action::require_approval);
    EXPECT_EQ(unnamed.approvals, 1);
    EXPECT_EQ(unnamed.ttl, minutes(15));
    EXPECT_EQ(unnamed.timeout, minutes(10));
    EXPECT_EQ(unnamed.scope, Scope::command);
    EXPECT_EQ(unnamed.noninteractive, NonInteractive::file);
}

// Each bad-*.yaml holds one error; its first line says "# expect: <part of the message>".
TEST(DaemonConfig, EveryBadFixtureFailsWithItsMessageAndALine) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(k_fixtures)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind("bad-", 0) == 0 && entry.path().extension() == ".yaml") {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    ASSERT_GE(files.size(), 12U);
    for (const fs::path& file : files) {
        SCOPED_TRACE(file.filename().string());
        std::ifstream in(file);
        std::string first_line;
        std::getline(in, first_line);
        const std::string marker = "# expect: ";
        ASSERT_EQ(first_line.rfind(marker, 0), 0U) << "first line must be '# expect: ...'";
        const std::string expected = first_line.substr(marker.size());

        const LoadResult result = load_config(file.string());
        EXPECT_FALSE(result.config.has_value());
        const auto it = std::find_if(result.problems.begin(), result.problems.end(),
                                     [&](const Problem& p) { return p.message.find(expected) != std::string::npos; });
        ASSERT_NE(it, result.problems.end()) << "expected '" << expected << "' in:\n" << all_problems(result);
        EXPECT_GT(it->line, 0) << it->to_string();
        EXPECT_GT(it->column, 0) << it->to_string();
        EXPECT_EQ(it->file, file.string());
        // One error per fixture, so a fixture cannot pass on some other error's message.
        EXPECT_EQ(result.problems.size(), 1U) << all_problems(result);
    }
}

TEST(DaemonConfig, ExampleConfigLoadsWithoutProblems) {
    const LoadResult result = load_config(JITGATE_SOURCE_DIR "/config/jitgate.yaml");
    ASSERT_TRUE(result.config.has_value()) << all_problems(result);
    EXPECT_FALSE(result.config->rules.empty());
    EXPECT_EQ(result.config->break_glass.group, "jitgate-breakglass");
}

// docs/config.md repeats the example in full; it must not drift from the file that ships.
TEST(DaemonConfig, DocsShowTheShippedExample) {
    const auto read = [](const std::string& path) {
        std::ifstream in(path);
        return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    };
    const std::string docs = read(JITGATE_SOURCE_DIR "/docs/config.md");
    const std::string example = read(JITGATE_SOURCE_DIR "/config/jitgate.yaml");
    ASSERT_FALSE(example.empty());
    const auto section = docs.find("## A complete example");
    ASSERT_NE(section, std::string::npos);
    const std::string fence = "```yaml\n";
    const auto start = docs.find(fence, section);
    ASSERT_NE(start, std::string::npos);
    const auto end = docs.find("```", start + fence.size());
    ASSERT_NE(end, std::string::npos);
    EXPECT_EQ(docs.substr(start + fence.size(), end - start - fence.size()), example);
}

TEST(DaemonConfig, CollectsEveryProblemInFileOrder) {
    const std::string text = "daemon:\n"
                             "  socket: relative.sock\n"
                             "rules:\n"
                             "  - name: a\n"
                             "    aproval: 2\n"
                             "    ttl: soon\n"
                             "  - name: a\n"
                             "    approvals: 9\n";
    const LoadResult result = parse_config(text, "multi.yaml");
    EXPECT_FALSE(result.config);
    ASSERT_EQ(result.problems.size(), 5U) << all_problems(result);
    EXPECT_EQ(result.problems[0].to_string(),
              "multi.yaml:2:11: daemon.socket must be an absolute path, got 'relative.sock'");
    EXPECT_EQ(result.problems[1].to_string(),
              "multi.yaml:5:5: unknown key 'aproval' in rule 'a' (did you mean 'approvals'?)");
    EXPECT_EQ(result.problems[2].line, 6);
    EXPECT_EQ(result.problems[3].to_string(), "multi.yaml:7:11: duplicate rule name 'a' (first at line 4)");
    EXPECT_EQ(result.problems[4].to_string(), "multi.yaml:8:16: rule 'a': approvals must be 1..5, got 9");
}

TEST(DaemonConfig, RuleNameDefaultsToItsPositionAndLineIsRecorded) {
    const LoadResult result = parse_config("rules:\n  - action: deny\n\n  - action: allow\n", "r");
    ASSERT_TRUE(result.config) << all_problems(result);
    ASSERT_EQ(result.config->rules.size(), 2U);
    EXPECT_EQ(result.config->rules[0].name, "rule-1");
    EXPECT_EQ(result.config->rules[0].line, 2);
    EXPECT_EQ(result.config->rules[1].name, "rule-2");
    EXPECT_EQ(result.config->rules[1].line, 4);
}

TEST(DaemonConfig, LoginOnlyRuleDefaultsToLoginScope) {
    const LoadResult result = parse_config("rules:\n  - match: {kind: login}\n  - match: {kind: [sudo, login]}\n", "r");
    ASSERT_TRUE(result.config) << all_problems(result);
    EXPECT_EQ(result.config->rules[0].scope, Scope::login);
    EXPECT_EQ(result.config->rules[1].scope, Scope::command);
}

TEST(DaemonConfig, RuleApproverGroupsFallBackOnlyWhenBothAreEmpty) {
    const LoadResult ok = parse_config("approval: {approver_groups: []}\nrules:\n  - approver_groups: [sox]\n", "r");
    EXPECT_TRUE(has_problem(ok, "approval.approver_groups is empty"));
    EXPECT_FALSE(has_problem(ok, "nobody could approve")) << all_problems(ok);

    const LoadResult bad = parse_config("approval: {approver_groups: []}\nrules:\n  - name: x\n", "r");
    EXPECT_TRUE(has_problem(bad, "rule 'x': approvals: 1 but approver_groups is empty")) << all_problems(bad);
}

TEST(DaemonConfig, MissingFileIsAProblemWithTheSystemError) {
    const LoadResult result = load_config("/nonexistent/jitgate.yaml");
    EXPECT_FALSE(result.config);
    ASSERT_EQ(result.problems.size(), 1U);
    EXPECT_EQ(result.problems[0].to_string(),
              "/nonexistent/jitgate.yaml: cannot open the config: No such file or directory");
}

TEST(DaemonConfig, DirectoryIsAProblem) {
    const TempDir dir;
    const LoadResult result = load_config(dir.path().string());
    EXPECT_FALSE(result.config);
    EXPECT_TRUE(has_problem(result, "Is a directory")) << all_problems(result);
}

TEST(DaemonConfig, ValidateChecksAConfigBuiltInCode) {
    Config config;
    config.source = "built-in";
    config.daemon.socket = "jitgated.sock";
    Rule first;
    first.name = "same";
    first.line = 4;
    Rule second;
    second.name = "same";
    second.approvals = 0;
    second.ttl = hours(25);
    second.ticket_pattern = "([";
    config.rules = {first, second};
    const std::vector<Problem> problems = validate(config);
    std::string text;
    for (const auto& p : problems) {
        text += p.to_string() + "\n";
    }
    EXPECT_NE(text.find("built-in: daemon.socket must be an absolute path"), std::string::npos) << text;
    EXPECT_NE(text.find("duplicate rule name 'same' (first at line 4)"), std::string::npos);
    EXPECT_NE(text.find("rule 'same': approvals must be 1..5, got 0"), std::string::npos);
    EXPECT_NE(text.find("rule 'same': ttl must be at most 24h, got 25h"), std::string::npos);
    EXPECT_NE(text.find("rule 'same': bad ticket_pattern '(['"), std::string::npos);
    EXPECT_EQ(problems.size(), 5U) << text;

    EXPECT_TRUE(validate(Config{}).empty());
}

TEST(DaemonConfig, AllowAndDenyRulesIgnoreApprovalSettingsInValidate) {
    Config config;
    Rule rule;
    rule.name = "deny-logins";
    rule.action = Action::deny;
    rule.match.kinds = {"login"}; // default scope command would be wrong for require_approval
    rule.approvals = 0;
    config.rules = {rule};
    const std::vector<Problem> problems = validate(config);
    EXPECT_TRUE(problems.empty()) << problems.front().to_string();
}

TEST(DaemonConfig, ProblemToStringOmitsUnknownPositions) {
    EXPECT_EQ((Problem{"f.yaml", 3, 7, "m"}).to_string(), "f.yaml:3:7: m");
    EXPECT_EQ((Problem{"f.yaml", 3, 0, "m"}).to_string(), "f.yaml:3: m");
    EXPECT_EQ((Problem{"f.yaml", 0, 0, "m"}).to_string(), "f.yaml: m");
}

TEST(DaemonConfig, MessagesEscapeControlCharacters) {
    const LoadResult result = parse_config("rules:\n  - action: \"al\\x1b[2Jlow\"\n", "r");
    ASSERT_EQ(result.problems.size(), 1U);
    EXPECT_NE(result.problems[0].message.find("'al\\x1b[2Jlow'"), std::string::npos) << result.problems[0].message;
}

TEST(DaemonConfig, IntegersAreDecimalOnly) {
    // yaml-cpp alone would read 010 as octal 8.
    const LoadResult result = parse_config("daemon: {max_clients: 010, max_pending: 0x10}\n", "r");
    ASSERT_EQ(result.problems.size(), 1U) << all_problems(result);
    EXPECT_TRUE(has_problem(result, "wrong type for 'daemon.max_pending'"));
    const LoadResult ok = parse_config("daemon: {max_clients: 010}\n", "r");
    ASSERT_TRUE(ok.config);
    EXPECT_EQ(ok.config->daemon.max_clients, 10);
}

TEST(DaemonConfig, ParseDuration) {
    EXPECT_EQ(parse_duration("30s"), std::chrono::seconds(30));
    EXPECT_EQ(parse_duration("15m"), minutes(15));
    EXPECT_EQ(parse_duration("2h"), hours(2));
    EXPECT_EQ(parse_duration("1d"), hours(24));
    EXPECT_EQ(parse_duration("900"), minutes(15));
    for (const char* bad : {"", "0", "0s", "-5s", "+5s", "5 m", " 5m", "5m ", "1.5h", "m", "5w", "5M", "1h30m",
                            "99999999999999999999", "9999999999999999d"}) {
        EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
    }
}

TEST(DaemonConfig, FormatDurationUsesTheLargestExactUnit) {
    EXPECT_EQ(format_duration(std::chrono::seconds(90)), "90s");
    EXPECT_EQ(format_duration(minutes(15)), "15m");
    EXPECT_EQ(format_duration(hours(2)), "2h");
    EXPECT_EQ(format_duration(hours(48)), "2d");
    EXPECT_EQ(format_duration(std::chrono::seconds(0)), "0s");
    for (const char* text : {"45s", "15m", "2h", "3d"}) {
        EXPECT_EQ(format_duration(*parse_duration(text)), text);
    }
}

TEST(DaemonConfig, ActionAndScopeNames) {
    EXPECT_STREQ(to_string(Action::allow), "allow");
    EXPECT_STREQ(to_string(Action::deny), "deny");
    EXPECT_STREQ(to_string(Action::require_approval), "require_approval");
    EXPECT_STREQ(to_string(Scope::command), "command");
    EXPECT_STREQ(to_string(Scope::session), "session");
    EXPECT_STREQ(to_string(Scope::login), "login");
}

TEST(DaemonConfigFileSecurity, PrivateFileOwnedByTheAllowedUidIsAccepted) {
    const TempDir dir;
    const fs::path file = dir.write("ok.yaml", "{}\n", 0644);
    EXPECT_FALSE(check_file_security(file.string(), getuid()).has_value());
}

TEST(DaemonConfigFileSecurity, WorldWritableFileIsRefusedWithTheFix) {
    const TempDir dir;
    const fs::path file = dir.write("open.yaml", "{}\n", 0666);
    const auto problem = check_file_security(file.string(), getuid());
    ASSERT_TRUE(problem.has_value());
    EXPECT_NE(problem->message.find("group- and world-writable (mode 0666)"), std::string::npos) << problem->message;
    EXPECT_NE(problem->message.find("chmod go-w " + file.string()), std::string::npos);
}

TEST(DaemonConfigFileSecurity, GroupWritableFileIsRefused) {
    const TempDir dir;
    const fs::path file = dir.write("group.yaml", "{}\n", 0664);
    const auto problem = check_file_security(file.string(), getuid());
    ASSERT_TRUE(problem.has_value());
    EXPECT_NE(problem->message.find("is group-writable (mode 0664)"), std::string::npos) << problem->message;
}

TEST(DaemonConfigFileSecurity, FileOwnedBySomeoneElseIsRefused) {
    const TempDir dir;
    const fs::path file = dir.write("theirs.yaml", "{}\n", 0644);
    uid_t owner = getuid();
    if (owner == 0) {
        // As root, hand the file to "nobody"; otherwise it is already not root's.
        owner = 65534;
        ASSERT_EQ(chown(file.c_str(), owner, static_cast<gid_t>(-1)), 0);
    }
    const auto problem = check_file_security(file.string(), 0);
    ASSERT_TRUE(problem.has_value());
    EXPECT_NE(problem->message.find("is owned by uid " + std::to_string(owner) +
                                    " but must be owned by root; fix with: chown root " + file.string()),
              std::string::npos)
        << problem->message;
    EXPECT_FALSE(check_file_security(file.string(), owner).has_value());
}

TEST(DaemonConfigFileSecurity, SymlinkDirectoryAndMissingFileAreRefused) {
    const TempDir dir;
    const fs::path target = dir.write("target.yaml", "{}\n", 0644);
    const fs::path link = dir.path() / "link.yaml";
    fs::create_symlink(target, link);
    const auto symlink_problem = check_file_security(link.string(), getuid());
    ASSERT_TRUE(symlink_problem.has_value());
    EXPECT_NE(symlink_problem->message.find("symbolic link"), std::string::npos);

    const auto dir_problem = check_file_security(dir.path().string(), getuid());
    ASSERT_TRUE(dir_problem.has_value());
    EXPECT_NE(dir_problem->message.find("not a regular file"), std::string::npos);

    const auto missing = check_file_security((dir.path() / "none").string(), getuid());
    ASSERT_TRUE(missing.has_value());
    EXPECT_NE(missing->message.find("No such file or directory"), std::string::npos);
}

// Found by tests/fuzz/fuzz_config: yaml-cpp quotes the offending character in its message, and
// that message went into the problem unescaped (a NUL, an escape sequence or a bidi control
// could reach the terminal of `jitgatectl check-config` and the journal).
bool every_problem_printable(const LoadResult& result) {
    return std::all_of(result.problems.begin(), result.problems.end(), [](const Problem& p) {
        const std::string s = p.to_string();
        const bool controls = std::any_of(s.begin(), s.end(), [](char ch) {
            const auto c = static_cast<unsigned char>(ch);
            return c < 0x20 || c == 0x7f;
        });
        return !controls && s.find("\xe2\x80\xae") == std::string::npos && s.find('\xff') == std::string::npos;
    });
}

TEST(DaemonConfig, YamlSyntaxErrorWithControlCharacterIsEscaped) {
    const LoadResult result = parse_config(std::string("a: \"x\\\0\"\n", 9), "nul.yaml");
    ASSERT_FALSE(result.problems.empty());
    const std::string text = all_problems(result);
    EXPECT_NE(text.find("YAML syntax error"), std::string::npos) << text;
    EXPECT_TRUE(every_problem_printable(result)) << text;
    EXPECT_NE(text.find("\\x00"), std::string::npos) << text;
}

TEST(DaemonConfig, ShownValuesEscapeInvalidUtf8AndBidiControls) {
    const LoadResult result = parse_config("host:\n  name: ok\nsurprise\xe2\x80\xae\xff: 1\n", "bidi.yaml");
    ASSERT_FALSE(result.problems.empty());
    const std::string text = all_problems(result);
    EXPECT_TRUE(every_problem_printable(result)) << text;
    EXPECT_NE(text.find("surprise\\u{202e}\\xff"), std::string::npos) << text;
}

// Regression (found by fuzz_config): a key id from approval.service.public_keys was named raw
// in "... must be an absolute path", so invalid UTF-8 from the file reached the terminal.
TEST(DaemonConfig, KeyIdInProblemIsEscaped) {
    const LoadResult result = parse_config("host:\n  name: ok\napproval:\n  backend: service\n  service:\n"
                                           "    url: https://a.example\n    public_keys:\n      k\xbe: ./rel.pem\n",
                                           "kid.yaml");
    ASSERT_FALSE(result.problems.empty());
    const std::string text = all_problems(result);
    EXPECT_TRUE(every_problem_printable(result)) << text;
    EXPECT_NE(text.find("public_keys.k\\xbe"), std::string::npos) << text;
}

// With the service backend, host.name must be a name the service accepts (protocol §4): one it
// refuses (400) is said by check-config, not found at the first sudo. The local backend keeps
// any name.
TEST(DaemonConfig, ServiceBackendNeedsAHostNameTheServiceAccepts) {
    const auto problems_for = [](const std::string& name, const std::string& backend) {
        return all_problems(parse_config("host:\n  name: \"" + name + "\"\napproval:\n  backend: " + backend +
                                             "\n  service:\n    url: https://a.example\n",
                                         "name.yaml"));
    };
    for (const char* bad : {"pay db", "pay/db", "..", ".", "pay..db", "caf\u00e9"}) {
        EXPECT_NE(problems_for(bad, "service").find("is not a name the approval service accepts"), std::string::npos)
            << bad;
        EXPECT_EQ(problems_for(bad, "local").find("is not a name the approval service accepts"), std::string::npos)
            << bad;
    }
    for (const char* good : {"pay-db-01", "pay_db.example.com", "A1"})
        EXPECT_EQ(problems_for(good, "service").find("host.name"), std::string::npos) << good;
}

TEST(DaemonConfig, SizesTakeBinaryAndDecimalUnits) {
    EXPECT_EQ(parse_size("4096"), 4096U);
    EXPECT_EQ(parse_size("512KiB"), 512U * 1024U);
    EXPECT_EQ(parse_size("8MiB"), 8ULL << 20);
    EXPECT_EQ(parse_size("1GiB"), 1ULL << 30);
    EXPECT_EQ(parse_size("2GB"), 2000000000ULL);
    for (const char* bad : {"", "0", "-1", "1.5GiB", "GiB", "1 GiB", "1gib", "99999999999999999999"})
        EXPECT_FALSE(parse_size(bad).has_value()) << bad;
}

} // namespace
} // namespace jitgate::config
