// Unit tests of time windows (lib/time_windows.cpp, match.when/unless in rules.cpp): every
// instant is fixed and passed in, zones and DST come from the system tzdb.
#include "lib/time_windows.hpp"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "daemon/policy/rules.hpp"

namespace jitgate {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

// An RFC 3339 UTC instant as a time_point (parse_rfc3339 is tested below on its own).
system_clock::time_point at(const std::string& utc) {
    const auto t = windows::parse_rfc3339(utc);
    EXPECT_TRUE(t.has_value()) << utc;
    return system_clock::time_point{seconds{t.value_or(0)}};
}

std::string all_problems(const config::LoadResult& r) {
    std::string s;
    for (const auto& p : r.problems) s += p.to_string() + "\n";
    return s;
}

config::Config load(const std::string& yaml) {
    const auto r = config::parse_config(yaml, "test.yaml");
    EXPECT_TRUE(r.config.has_value()) << all_problems(r);
    return r.config.value_or(config::Config{});
}

const std::string k_business_hours = R"(
windows:
  business-hours:
    timezone: Europe/Berlin
    weekly:
      - {days: [mon, tue, wed, thu, fri], from: "08:00", to: "18:00"}
)";

bool holds(const config::Config& c, const std::string& name, const std::string& utc) {
    const config::Window* w = windows::find(c, name);
    EXPECT_NE(w, nullptr) << name;
    return w != nullptr && windows::holds(*w, at(utc));
}

TEST(ConfigWindows, BusinessHoursStayLocalAcrossTheSpringChange) {
    const auto c = load(k_business_hours);
    // Monday 23 March 2026, CET (UTC+1): 08:00 local is 07:00Z.
    EXPECT_FALSE(holds(c, "business-hours", "2026-03-23T06:59:59Z"));
    EXPECT_TRUE(holds(c, "business-hours", "2026-03-23T07:00:00Z"));
    EXPECT_TRUE(holds(c, "business-hours", "2026-03-23T16:59:59Z"));
    EXPECT_FALSE(holds(c, "business-hours", "2026-03-23T17:00:00Z"));
    // Clocks go forward on Sunday 29 March; Monday 30 March is CEST (UTC+2): 08:00 is 06:00Z.
    EXPECT_FALSE(holds(c, "business-hours", "2026-03-30T05:59:59Z"));
    EXPECT_TRUE(holds(c, "business-hours", "2026-03-30T06:00:00Z"));
    EXPECT_TRUE(holds(c, "business-hours", "2026-03-30T15:59:59Z"));
    EXPECT_FALSE(holds(c, "business-hours", "2026-03-30T16:00:00Z"));
    // The Sunday itself is not a business day.
    EXPECT_FALSE(holds(c, "business-hours", "2026-03-29T10:00:00Z"));
}

TEST(ConfigWindows, BusinessHoursStayLocalAcrossTheAutumnChange) {
    const auto c = load(k_business_hours);
    // Friday 23 October 2026, CEST: 08:00 is 06:00Z.
    EXPECT_FALSE(holds(c, "business-hours", "2026-10-23T05:59:59Z"));
    EXPECT_TRUE(holds(c, "business-hours", "2026-10-23T06:00:00Z"));
    // Clocks go back on Sunday 25 October; Monday 26 October is CET: 08:00 is 07:00Z.
    EXPECT_FALSE(holds(c, "business-hours", "2026-10-26T06:59:59Z"));
    EXPECT_TRUE(holds(c, "business-hours", "2026-10-26T07:00:00Z"));
    EXPECT_TRUE(holds(c, "business-hours", "2026-10-26T16:59:59Z"));
    EXPECT_FALSE(holds(c, "business-hours", "2026-10-26T17:00:00Z"));
}

const std::string k_freeze = R"(
windows:
  q4-freeze:
    timezone: America/New_York
    dates: [{from: "2026-12-20T00:00", to: "2027-01-05T00:00", label: "Q4 close"}]
)";

TEST(ConfigWindows, FreezeBoundariesToTheSecond) {
    const auto c = load(k_freeze);
    // New York is on EST (UTC-5) for the whole period.
    EXPECT_FALSE(holds(c, "q4-freeze", "2026-12-20T04:59:59Z"));
    EXPECT_TRUE(holds(c, "q4-freeze", "2026-12-20T05:00:00Z"));
    EXPECT_TRUE(holds(c, "q4-freeze", "2027-01-05T04:59:59Z"));
    EXPECT_FALSE(holds(c, "q4-freeze", "2027-01-05T05:00:00Z")); // 'to' is exclusive
    const auto* w = windows::find(c, "q4-freeze");
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(windows::describe(*w, at("2026-12-24T12:00:00Z")),
              "q4-freeze (2026-12-20T00:00 to 2027-01-05T00:00 America/New_York, Q4 close)");
}

TEST(ConfigWindows, RepeatedLocalTimeMeansItsFirstOccurrence) {
    // 02:30 happens twice in Berlin on 25 October 2026: at 00:30Z (CEST) and 01:30Z (CET).
    EXPECT_EQ(windows::local_to_unix("Europe/Berlin", "2026-10-25T02:30"),
              windows::parse_rfc3339("2026-10-25T00:30:00Z"));
    // A weekly span is judged on the wall clock: both passes through 02:xx are inside it.
    const auto c = load(R"(
windows:
  night:
    timezone: Europe/Berlin
    weekly: [{days: [sun], from: "02:00", to: "03:00"}]
)");
    EXPECT_FALSE(holds(c, "night", "2026-10-24T23:59:59Z"));
    EXPECT_TRUE(holds(c, "night", "2026-10-25T00:30:00Z"));
    EXPECT_TRUE(holds(c, "night", "2026-10-25T01:30:00Z"));
    EXPECT_FALSE(holds(c, "night", "2026-10-25T02:00:00Z"));
    // 29 March: 02:00-03:00 does not exist; the span never holds that night.
    EXPECT_FALSE(holds(c, "night", "2026-03-29T00:59:59Z"));
    EXPECT_FALSE(holds(c, "night", "2026-03-29T01:00:00Z"));
}

TEST(ConfigWindows, NonExistentLocalTimeMeansTheInstantTheClocksJump) {
    // 02:30 does not exist in Berlin on 29 March 2026: the clocks jump from 02:00 CET to 03:00
    // CEST, at 01:00Z.
    EXPECT_EQ(windows::local_to_unix("Europe/Berlin", "2026-03-29T02:30"),
              windows::parse_rfc3339("2026-03-29T01:00:00Z"));
    const auto c = load(R"(
windows:
  change:
    timezone: Europe/Berlin
    dates: [{from: "2026-03-29T02:30", to: "2026-03-29T04:00"}]
)");
    EXPECT_FALSE(holds(c, "change", "2026-03-29T00:59:59Z"));
    EXPECT_TRUE(holds(c, "change", "2026-03-29T01:00:00Z"));
    EXPECT_TRUE(holds(c, "change", "2026-03-29T01:59:59Z"));
    EXPECT_FALSE(holds(c, "change", "2026-03-29T02:00:00Z"));
}

TEST(ConfigWindows, OvernightWeeklySpanBelongsToTheDayItStarts) {
    const auto c = load(R"(
windows:
  nights:
    timezone: UTC
    weekly: [{days: [fri], from: "22:00", to: "06:00"}]
)");
    EXPECT_TRUE(holds(c, "nights", "2026-11-27T23:00:00Z")); // Friday night
    EXPECT_TRUE(holds(c, "nights", "2026-11-28T05:59:59Z")); // Saturday morning
    EXPECT_FALSE(holds(c, "nights", "2026-11-28T06:00:00Z"));
    EXPECT_FALSE(holds(c, "nights", "2026-11-28T23:00:00Z")); // Saturday night
}

TEST(ConfigWindows, Rfc3339IsStrict) {
    EXPECT_EQ(windows::parse_rfc3339("2026-11-29T20:00:00+01:00"), windows::parse_rfc3339("2026-11-29T19:00:00Z"));
    EXPECT_EQ(windows::parse_rfc3339("2026-11-29T19:00:00.250Z"), windows::parse_rfc3339("2026-11-29T19:00:00Z"));
    for (const char* bad : {"2026-11-29T19:00:00", "2026-11-29 19:00:00Z", "2026-02-30T00:00:00Z", "2026-11-29T19:00Z",
                            "2026-11-29T24:00:00Z", "2026-11-29T19:00:00+1:00", "2026-11-29T19:00:00Zjunk", ""}) {
        EXPECT_FALSE(windows::parse_rfc3339(bad).has_value()) << bad;
    }
}

rules::Facts sudo(const std::string& command) {
    rules::Facts f;
    f.kind = "sudo";
    f.user = "alice";
    f.user_groups = {"alice", "ops"};
    f.command = command;
    f.argv = {command};
    f.runas_user = "root";
    return f;
}

std::string matched(const config::Config& c, const rules::Facts& f, const std::string& utc) {
    const config::Rule* r = rules::first_match(c, f, at(utc));
    return r == nullptr ? "default" : r->name;
}

// The pattern of docs/config.md: during a freeze, deny some things outright and take two
// approvals from the change board for the rest; outside it, the usual rules.
const std::string k_policy = k_freeze + R"(  business-hours:
    timezone: Europe/Berlin
    weekly: [{days: [mon, tue, wed, thu, fri], from: "08:00", to: "18:00"}]
rules:
  - name: freeze-no-deploys
    match: {commands: ["/usr/bin/deploy *"], when: {window: q4-freeze}}
    action: deny
  - name: freeze-change-board
    match: {when: {window: q4-freeze}}
    action: require_approval
    approvals: 2
    approver_groups: [change-board]
  - name: reads-in-hours
    match: {commands: [/usr/bin/journalctl], when: {window: business-hours}, unless: {window: q4-freeze}}
    action: allow
)";

TEST(ConfigWindows, RulesMatchOnWhenAndUnlessAtTheGivenInstant) {
    const auto c = load(k_policy);
    // Wednesday 9 December 2026, 10:00 Berlin (09:00Z): business hours, no freeze.
    EXPECT_EQ(matched(c, sudo("/usr/bin/journalctl"), "2026-12-09T09:00:00Z"), "reads-in-hours");
    EXPECT_EQ(matched(c, sudo("/usr/bin/deploy"), "2026-12-09T09:00:00Z"), "default");
    // 20:00 Berlin: outside business hours.
    EXPECT_EQ(matched(c, sudo("/usr/bin/journalctl"), "2026-12-09T19:00:00Z"), "default");
    // Monday 21 December, 10:00 Berlin: business hours, but the freeze is on.
    rules::Facts deploy = sudo("/usr/bin/deploy");
    deploy.argv = {"/usr/bin/deploy", "payments"};
    EXPECT_EQ(matched(c, deploy, "2026-12-21T09:00:00Z"), "freeze-no-deploys");
    EXPECT_EQ(matched(c, sudo("/usr/bin/journalctl"), "2026-12-21T09:00:00Z"), "freeze-change-board");
    const config::Rule* board = rules::first_match(c, sudo("/usr/bin/journalctl"), at("2026-12-21T09:00:00Z"));
    ASSERT_NE(board, nullptr);
    EXPECT_EQ(rules::window_in_effect(c, *board, at("2026-12-21T09:00:00Z")),
              "q4-freeze (2026-12-20T00:00 to 2027-01-05T00:00 America/New_York, Q4 close)");
}

bool has_problem(const config::LoadResult& r, const std::string& text) {
    return std::any_of(r.problems.begin(), r.problems.end(),
                       [&](const config::Problem& p) { return p.message.find(text) != std::string::npos; });
}

TEST(ConfigWindows, UnknownZoneIsAConfigError) {
    const auto r =
        config::parse_config("windows:\n  w:\n    timezone: Europe/Berlinn\n    weekly: [{days: [mon], from: "
                             "\"08:00\", to: \"18:00\"}]\n",
                             "t.yaml");
    EXPECT_FALSE(r.config.has_value());
    ASSERT_TRUE(has_problem(r, "unknown time zone 'Europe/Berlinn'")) << all_problems(r);
    EXPECT_EQ(r.problems.front().line, 3);
}

TEST(ConfigWindows, TheHostsLocalZoneIsAConfigError) {
    // It moves whenever someone changes /etc/localtime; a window names its zone.
    const auto r = config::parse_config(
        "windows:\n  w:\n    timezone: localtime\n    weekly: [{days: [mon], from: \"08:00\", to: \"18:00\"}]\n",
        "t.yaml");
    EXPECT_FALSE(r.config.has_value());
    EXPECT_TRUE(has_problem(r, "is the host's local zone")) << all_problems(r);
}

TEST(ConfigWindows, AZoneWhoseDataCannotBeReadIsAnErrorNotACrash) {
    // In a child with its own mount namespace (the host is not touched), an empty file stands in
    // for one zone's data: the tz library throws when it reads it.
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        char tmpl[] = "/tmp/jitgate-tz-XXXXXX";
        const int fd = mkstemp(tmpl);
        int code = 10;
        if (fd >= 0 && unshare(CLONE_NEWNS) == 0 && mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
            mount(tmpl, "/usr/share/zoneinfo/Pacific/Chatham", nullptr, MS_BIND, nullptr) == 0) {
            code = 0;
            const auto error = windows::zone_error("Pacific/Chatham");
            if (!error || error->find("cannot be read") == std::string::npos) code |= 1;
            config::Window w;
            w.name = "w";
            w.timezone = "Pacific/Chatham";
            w.weekly.push_back({0x7f, 0, 24 * 60});
            std::string why;
            try {
                if (windows::evaluate(w, system_clock::now(), why).has_value() || why.empty()) code |= 2;
                if (windows::holds(w, system_clock::now())) code |= 4;
                if (windows::local_to_unix("Pacific/Chatham", "2026-11-29T08:00")) code |= 8;
            } catch (...) {
                code |= 16;
            }
        }
        unlink(tmpl);
        _exit(code);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "the child died: something threw or aborted";
    EXPECT_EQ(WEXITSTATUS(status), 0) << "bits: 1 zone_error, 2 evaluate, 4 holds, 8 local_to_unix, 16 threw, 10 setup";
}

TEST(ConfigWindows, BadWindowsAndReferencesAreConfigErrors) {
    const std::pair<const char*, const char*> cases[] = {
        {"windows:\n  w: {timezone: UTC, weekly: [{days: [mon], from: \"8:00\", to: \"18:00\"}]}\n", "bad time '8:00'"},
        {"windows:\n  w: {timezone: UTC, weekly: [{days: [mo], from: \"08:00\", to: \"18:00\"}]}\n",
         "unknown day 'mo'"},
        {"windows:\n  w: {timezone: UTC, dates: [{from: \"2026-12-20T00:00\", to: \"2026-12-19T00:00\"}]}\n",
         "'from' must be before 'to'"},
        {"windows:\n  w: {timezone: UTC, dates: [{from: \"2026-12-20T00:00Z\", to: \"2026-12-21T00:00\"}]}\n",
         "bad time '2026-12-20T00:00Z'"},
        {"windows:\n  w: {weekly: [{days: [mon], from: \"08:00\", to: \"18:00\"}]}\n", "'timezone' is required"},
        {"rules:\n  - {name: r, match: {when: {window: nope}}, action: deny}\n", "unknown window 'nope'"},
        {"approval: {on_call_file: /x}\nrules:\n  - {name: r, approvals: 2, auto_approve: {on_call: true}}\n",
         "would bypass segregation of duties"},
        {"rules:\n  - {name: r, auto_approve: {on_call: true}}\n", "needs approval.on_call_file"},
        {"rules:\n  - {name: r, auto_approve: {}}\n", "names no condition"},
        {"rules:\n  - {name: r, action: allow, auto_approve: {on_call: true}}\n", "does not take 'auto_approve'"},
        {"rules:\n  - {name: r, auto_approve_sod: true}\n", "auto_approve_sod without auto_approve"},
        {"rules:\n  - {name: r, scope: session, auto_approve: {commands: [\"/usr/bin/journalctl -u x\"]}}\n",
         "auto_approve.commands needs scope: command"},
        {"rules:\n  - {name: r, auto_approve: {commands: [\"journalctl -u x\"]}}\n",
         "must start with the program's absolute path"},
        {"approval: {on_call_file: /x}\nrules:\n  - {name: r, match: {kind: login}, auto_approve: {on_call: true}}\n",
         "auto_approve.on_call cannot approve logins"},
        {"windows:\n  \"a\\e[31mb\": {timezone: UTC, weekly: [{days: [mon], from: \"08:00\", to: \"18:00\"}]}\n",
         "may use only A-Z a-z 0-9 . _ -"},
        {"windows:\n  \"night freeze\": {timezone: UTC, weekly: [{days: [mon], from: \"08:00\", to: \"18:00\"}]}\n",
         "may use only A-Z a-z 0-9 . _ -"},
    };
    for (const auto& [yaml, expected] : cases) {
        const auto r = config::parse_config(yaml, "t.yaml");
        EXPECT_FALSE(r.config.has_value()) << yaml;
        EXPECT_TRUE(has_problem(r, expected)) << yaml << "\nexpected: " << expected << "\n" << all_problems(r);
    }
    // With approvals: 2 the explicit consent makes it valid.
    const auto ok = config::parse_config(
        "approval: {on_call_file: /x}\nrules:\n  - {name: r, approvals: 2, auto_approve: {on_call: true}, "
        "auto_approve_sod: true}\n",
        "t.yaml");
    EXPECT_TRUE(ok.config.has_value()) << all_problems(ok);
}

// With the service backend, auto_approve {on_call: true} is the host's opt-in (the service's
// on-call file decides, so approval.on_call_file is not needed); the conditions the host would
// judge (commands, window) are refused, and so is on_call for two approvals without consent.
TEST(ConfigWindows, WithTheServiceBackendAutoApprovalIsOnCallOnly) {
    config::Config c;
    c.approval.backend = "service";
    config::Rule r;
    r.name = "r";
    r.auto_approve.set = true;
    r.auto_approve.on_call = true;
    c.rules.push_back(r);
    const auto message_in = [](const std::vector<config::Problem>& problems, const std::string& text) {
        return std::any_of(problems.begin(), problems.end(),
                           [&](const config::Problem& p) { return p.message.find(text) != std::string::npos; });
    };
    auto problems = config::validate(c);
    EXPECT_FALSE(message_in(problems, "auto_approve")) << (problems.empty() ? "" : problems.front().message);
    c.rules[0].auto_approve.window = "business";
    problems = config::validate(c);
    EXPECT_TRUE(message_in(problems, "with approval.backend 'service' auto_approve takes on_call only"));
    c.rules[0].auto_approve.window.clear();
    c.rules[0].auto_approve.commands = {"/usr/bin/journalctl"};
    c.rules[0].scope = config::Scope::command;
    problems = config::validate(c);
    EXPECT_TRUE(message_in(problems, "with approval.backend 'service' auto_approve takes on_call only"));
    c.rules[0].auto_approve.commands.clear();
    c.rules[0].approvals = 2;
    problems = config::validate(c);
    EXPECT_TRUE(message_in(problems, "would bypass segregation of duties"));
    c.rules[0].auto_approve_sod = true;
    problems = config::validate(c);
    EXPECT_FALSE(message_in(problems, "auto_approve"));
    c.rules[0].match.kinds = {"login"};
    problems = config::validate(c);
    EXPECT_TRUE(message_in(problems, "auto_approve.on_call cannot approve logins"));
    // The local backend still needs its own on-call file.
    c.approval.backend = "local";
    c.rules[0].match.kinds.clear();
    problems = config::validate(c);
    EXPECT_TRUE(message_in(problems, "auto_approve.on_call needs approval.on_call_file"));
}

class WindowFile : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/jitgate-windows-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }
    std::string write(const std::string& name, const std::string& text) {
        const std::string path = m_dir + "/" + name;
        std::ofstream(path) << text;
        chmod(path.c_str(), 0644);
        return path;
    }
    std::string config_with(const std::string& file) {
        return "windows:\n  q4-freeze:\n    timezone: America/New_York\n    file: " + file + "\n";
    }
    std::string m_dir;
};

TEST_F(WindowFile, PeriodsFromTheCalendarFileCount) {
    const auto file =
        write("q4.yaml", "# written by the change calendar\nperiods:\n"
                         "  - {from: \"2026-12-20T00:00\", to: \"2027-01-05T00:00\", label: CHG0001234}\n");
    const auto c = load(config_with(file));
    EXPECT_FALSE(holds(c, "q4-freeze", "2026-12-20T04:59:59Z"));
    EXPECT_TRUE(holds(c, "q4-freeze", "2026-12-20T05:00:00Z"));
    const auto empty = write("none.yaml", "periods: []\n");
    EXPECT_FALSE(holds(load(config_with(empty)), "q4-freeze", "2026-12-20T05:00:00Z"));
}

// A program without a reload (jitgate-server) must notice that the calendar changed since it read
// it: file_changed() says so for a rewritten, replaced or removed file.
TEST_F(WindowFile, AChangedCalendarFileIsNoticed) {
    const auto file = write("q4.yaml", "periods: []\n");
    const auto c = load(config_with(file));
    const config::Window* w = windows::find(c, "q4-freeze");
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(windows::file_changed(*w), std::nullopt);
    write("q4.yaml", "periods:\n  - {from: \"2026-12-20T00:00\", to: \"2027-01-05T00:00\"}\n");
    const auto changed = windows::file_changed(*w);
    ASSERT_TRUE(changed.has_value());
    EXPECT_NE(changed->find("changed since it was read"), std::string::npos) << *changed;
    std::filesystem::remove(file);
    const auto gone = windows::file_changed(*w);
    ASSERT_TRUE(gone.has_value());
    EXPECT_NE(gone->find("is gone"), std::string::npos) << *gone;
    config::Window inline_only;
    EXPECT_EQ(windows::file_changed(inline_only), std::nullopt) << "no file, nothing to change";
}

TEST_F(WindowFile, MissingFileFailsTheConfigNamingTheFile) {
    const auto r = config::parse_config(config_with(m_dir + "/missing.yaml"), "t.yaml");
    EXPECT_FALSE(r.config.has_value());
    ASSERT_FALSE(r.problems.empty());
    EXPECT_EQ(r.problems.front().file, m_dir + "/missing.yaml") << all_problems(r);
}

TEST_F(WindowFile, BadFileFailsTheConfigNamingFileAndLine) {
    const auto file = write("q4.yaml", "periods:\n  - {from: \"2026-12-20T00:00\", to: \"2027-01-05T00:00\"}\n"
                                       "  - {from: \"2026-12-32T00:00\", to: \"2027-01-05T00:00\"}\n");
    const auto r = config::parse_config(config_with(file), "t.yaml");
    EXPECT_FALSE(r.config.has_value());
    ASSERT_EQ(r.problems.size(), 1U) << all_problems(r);
    EXPECT_EQ(r.problems[0].file, file);
    EXPECT_EQ(r.problems[0].line, 3);
    EXPECT_NE(r.problems[0].message.find("bad time '2026-12-32T00:00'"), std::string::npos) << all_problems(r);
    for (const char* text :
         {"", "periods:\n", "periods: [{from: \"2026-12-20T00:00\"}]\n",
          "periods: [{from: \"2026-12-20T00:00\", to: \"2027-01-05T00:00\", extra: 1}]\n", "freezes: []\n"}) {
        const auto bad = write("bad.yaml", text);
        EXPECT_FALSE(config::parse_config(config_with(bad), "t.yaml").config.has_value()) << text;
    }
}

TEST_F(WindowFile, GroupWritableFileIsRefused) {
    const auto file = write("q4.yaml", "periods: []\n");
    chmod(file.c_str(), 0664);
    const auto r = config::parse_config(config_with(file), "t.yaml");
    EXPECT_FALSE(r.config.has_value()) << "a file others can change must not decide freezes";
}

TEST_F(WindowFile, FileInADirectoryOthersCanWriteIsRefused) {
    // Whoever can write a directory above the file can replace the file: like sshd's StrictModes.
    const auto good = write("oncall.yaml", "on_call: []\n");
    const auto calendar = write("q4.yaml", "periods: []\n");
    std::vector<windows::OnCall> list;
    ASSERT_FALSE(windows::read_on_call_file(good, list).has_value());
    ASSERT_TRUE(config::parse_config(config_with(calendar), "t.yaml").config.has_value());
    for (const mode_t mode : {0775, 0757}) {
        chmod(m_dir.c_str(), mode);
        const auto error = windows::read_on_call_file(good, list);
        ASSERT_TRUE(error.has_value()) << std::oct << mode;
        EXPECT_NE(error->find("directory " + m_dir + " is group- or world-writable"), std::string::npos) << *error;
        EXPECT_FALSE(config::parse_config(config_with(calendar), "t.yaml").config.has_value());
    }
    chmod(m_dir.c_str(), 0700);
    ASSERT_EQ(chown(m_dir.c_str(), 65534, 65534), 0);
    EXPECT_TRUE(windows::read_on_call_file(good, list).has_value()) << "a directory another user owns";
    ASSERT_EQ(chown(m_dir.c_str(), 0, 0), 0);
    // A symbolic link is refused, even to a good file.
    ASSERT_EQ(symlink(good.c_str(), (m_dir + "/link.yaml").c_str()), 0);
    EXPECT_TRUE(windows::read_on_call_file(m_dir + "/link.yaml", list).has_value());
}

TEST_F(WindowFile, OnCallFileIsReadStrictly) {
    std::vector<windows::OnCall> list;
    const auto good = write("oncall.yaml", "on_call:\n  - {user: alice, from: \"2026-11-29T08:00:00Z\", to: "
                                           "\"2026-11-30T08:00:00+01:00\"}\n");
    ASSERT_FALSE(windows::read_on_call_file(good, list).has_value());
    EXPECT_TRUE(windows::on_call(list, "alice", at("2026-11-29T08:00:00Z")));
    EXPECT_TRUE(windows::on_call(list, "alice", at("2026-11-30T06:59:59Z")));
    EXPECT_FALSE(windows::on_call(list, "alice", at("2026-11-30T07:00:00Z")));
    EXPECT_FALSE(windows::on_call(list, "alice", at("2026-11-29T07:59:59Z")));
    EXPECT_FALSE(windows::on_call(list, "bob", at("2026-11-29T12:00:00Z")));
    // One bad line spoils the file: nobody is on call.
    const auto bad = write(
        "bad.yaml", "on_call:\n  - {user: alice, from: \"2026-11-29T08:00:00Z\", to: "
                    "\"2026-11-30T08:00:00Z\"}\n  - {user: bob, from: \"tomorrow\", to: \"2026-11-30T08:00:00Z\"}\n");
    const auto error = windows::read_on_call_file(bad, list);
    ASSERT_TRUE(error.has_value());
    EXPECT_NE(error->find(bad + ":3:"), std::string::npos) << *error;
    EXPECT_TRUE(list.empty());
    EXPECT_TRUE(windows::read_on_call_file(m_dir + "/missing.yaml", list).has_value());
    // A FIFO (or a device) at the path is refused before it is opened: reading it would block.
    ASSERT_EQ(mkfifo((m_dir + "/fifo.yaml").c_str(), 0644), 0);
    EXPECT_TRUE(windows::read_on_call_file(m_dir + "/fifo.yaml", list).has_value());
    EXPECT_FALSE(config::parse_config(config_with(m_dir + "/fifo.yaml"), "t.yaml").config.has_value());
}

} // namespace
} // namespace jitgate
