// Unit tests of automatic approval (daemon/policy/auto_approve.cpp) and of the time window a
// decision carries, through the broker with a fixed wall clock: a recording Responder stands in
// for the client, a real Auditor writes the journal.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "daemon/policy/broker.hpp"
#include "lib/time_windows.hpp"
#include "tests/unit/live_fake.hpp"

namespace {

using namespace jitgate;
using std::chrono::seconds;
using std::chrono::system_clock;

struct Recorder : broker::Responder {
    std::vector<std::string> notices;
    std::optional<msg::Decision> decision;
    void notice(const std::string& text, std::int64_t) override { notices.push_back(text); }
    void prompt(const std::string&, const std::string&, bool) override {}
    void decide(const msg::Decision& d) override { decision = d; }
};

system_clock::time_point at(const std::string& utc) {
    return system_clock::time_point{seconds{windows::parse_rfc3339(utc).value()}};
}

class AutoApproveTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/jitgate-auto-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
        std::filesystem::create_directory(m_dir + "/spool");
        audit::Options o;
        o.spool_dir = m_dir + "/spool";
        o.host = "test-host";
        o.syslog = false;
        m_auditor = std::make_unique<audit::Auditor>(o);
        // nobody (uid 65534, on every test machine) is on call for the night of 29 November.
        write_on_call("on_call:\n  - {user: nobody, from: \"2026-11-29T18:00:00Z\", to: \"2026-11-30T06:00:00Z\"}\n");
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }

    void write_on_call(const std::string& text) {
        std::ofstream(m_dir + "/oncall.yaml") << text;
        chmod((m_dir + "/oncall.yaml").c_str(), 0644);
    }

    static config::Rule on_call_rule(int approvals = 1) {
        config::Rule r;
        r.name = approvals > 1 ? "finance" : "on-call";
        r.approvals = approvals;
        r.auto_approve.set = true;
        r.auto_approve.on_call = true;
        return r;
    }

    std::unique_ptr<broker::Broker> make(std::vector<config::Rule> rules, std::vector<config::Window> windows = {}) {
        auto cfg = std::make_shared<config::Config>();
        cfg->host.name = "test-host";
        cfg->approval.approver_groups = {"approvers"};
        cfg->approval.on_call_file = m_dir + "/oncall.yaml";
        cfg->windows = std::move(windows);
        cfg->rules = std::move(rules);
        auto b = std::make_unique<broker::Broker>(cfg, *m_auditor);
        test::fake_processes(*b);
        b->set_wall_clock([this] { return m_now; });
        return b;
    }

    static broker::CheckSession session(std::vector<std::string> argv) {
        broker::CheckSession s;
        s.request.kind = "sudo";
        s.request.user = "nobody";
        s.request.uid = 65534;
        s.request.runas_user = "root";
        s.request.command = argv[0];
        s.request.run_argv = std::move(argv);
        s.peer.pid = test::k_fake_sudo_pid;
        s.peer.uid = 0;
        return s;
    }

    std::string journal() const {
        std::string all;
        for (const auto& entry : std::filesystem::directory_iterator(m_dir + "/spool")) {
            if (entry.path().filename().string().rfind("seg-", 0) != 0) continue;
            std::ifstream in(entry.path());
            all += std::string(std::istreambuf_iterator<char>(in), {});
        }
        return all;
    }

    std::string m_dir;
    std::unique_ptr<audit::Auditor> m_auditor;
    system_clock::time_point m_now = at("2026-11-29T21:00:00Z");
};

TEST_F(AutoApproveTest, OnCallUserInsideTheirTimeIsApprovedAndItIsRecordedAsSuch) {
    auto b = make({on_call_rule()});
    Recorder r;
    auto s = session({"/usr/bin/systemctl", "restart", "payments"});
    ASSERT_EQ(b->begin_check(s, r), broker::Step::done);
    ASSERT_TRUE(r.decision);
    EXPECT_TRUE(r.decision->allow);
    EXPECT_EQ(r.decision->outcome, msg::Outcome::approved);
    EXPECT_FALSE(r.decision->grant_id.empty());
    EXPECT_NE(r.decision->message.find("automatically (on_call)"), std::string::npos) << r.decision->message;
    EXPECT_EQ(b->pending_count(), 0U);
    const std::string j = journal();
    EXPECT_NE(j.find("\"type\":\"access.auto_approved\""), std::string::npos) << j;
    EXPECT_NE(j.find("\"condition\":\"on_call\""), std::string::npos) << j;
    EXPECT_EQ(j.find("\"type\":\"access.approved\""), std::string::npos) << "no person approved";
    // A time-boxed grant like any other: the same command again takes the fast path.
    broker::Caller root;
    root.peer.uid = 0;
    const auto grants = b->list_grants(root);
    ASSERT_EQ(grants.size(), 1U);
    EXPECT_EQ(grants[0]["auto_approved"], "on_call");
    EXPECT_EQ(grants[0]["expires"].get<std::int64_t>() - grants[0]["granted"].get<std::int64_t>(), 15 * 60);
    Recorder again;
    auto s2 = session({"/usr/bin/systemctl", "restart", "payments"});
    b->begin_check(s2, again);
    ASSERT_TRUE(again.decision);
    EXPECT_EQ(again.decision->outcome, msg::Outcome::grant);
    // Its use is recorded as the use of an automatic approval.
    const std::string after = journal();
    const auto use = after.find("\"type\":\"access.allowed_by_grant\"");
    ASSERT_NE(use, std::string::npos) << after;
    const std::string line = after.substr(after.rfind('\n', use) + 1, after.find('\n', use) - after.rfind('\n', use));
    EXPECT_NE(line.find("\"auto_approved\":true"), std::string::npos) << line;
    EXPECT_NE(line.find("\"condition\":\"on_call\""), std::string::npos) << line;
}

TEST_F(AutoApproveTest, OutsideTheirOnCallTimeTheRequestWaitsForAPerson) {
    m_now = at("2026-11-30T06:00:00Z"); // the first second after their shift
    auto b = make({on_call_rule()});
    Recorder r;
    auto s = session({"/usr/bin/systemctl", "restart", "payments"});
    EXPECT_EQ(b->begin_check(s, r), broker::Step::waiting);
    EXPECT_FALSE(r.decision);
    EXPECT_EQ(b->pending_count(), 1U);
    EXPECT_EQ(journal().find("access.auto_approved"), std::string::npos);
}

TEST_F(AutoApproveTest, TwoApprovalRuleIsNeverAutoApprovedWithoutExplicitConsent) {
    // A Config built in code skips validate(), which refuses this; the broker refuses it too.
    auto b = make({on_call_rule(2)});
    Recorder r;
    auto s = session({"/usr/bin/psql", "finance"});
    EXPECT_EQ(b->begin_check(s, r), broker::Step::waiting);
    EXPECT_FALSE(r.decision);
    EXPECT_EQ(journal().find("access.auto_approved"), std::string::npos);
}

TEST_F(AutoApproveTest, BadOnCallFileMeansNoAutomaticApproval) {
    for (const char* text : {"on_call:\n  - {user: nobody, from: \"2026-11-29T18:00:00Z\", to: \"soon\"}\n",
                             "on_call:\n  - {user: nobody, from: \"2026-11-29T18:00:00Z\", to: "
                             "\"2026-11-30T06:00:00Z\", role: primary}\n",
                             "not: [valid"}) {
        SCOPED_TRACE(text);
        write_on_call(text);
        auto b = make({on_call_rule()});
        Recorder r;
        auto s = session({"/usr/bin/systemctl", "restart", "payments"});
        EXPECT_EQ(b->begin_check(s, r), broker::Step::waiting);
        EXPECT_FALSE(r.decision);
    }
    std::filesystem::remove(m_dir + "/oncall.yaml");
    auto b = make({on_call_rule()});
    Recorder r;
    auto s = session({"/usr/bin/systemctl", "restart", "payments"});
    EXPECT_EQ(b->begin_check(s, r), broker::Step::waiting);
    EXPECT_EQ(journal().find("access.auto_approved"), std::string::npos);
}

TEST_F(AutoApproveTest, ABadOnCallFileIsReportedOnceNotAtEveryCheck) {
    write_on_call("on_call:\n  - {user: nobody, from: \"2026-11-29T18:00:00Z\", to: \"later\"}\n");
    auto b = make({on_call_rule()});
    ::testing::internal::CaptureStderr();
    for (int i = 0; i < 3; ++i) {
        Recorder r;
        auto s = session({"/usr/bin/systemctl", "restart", "payments"});
        EXPECT_EQ(b->begin_check(s, r), broker::Step::waiting);
    }
    const std::string err = ::testing::internal::GetCapturedStderr();
    const auto first = err.find("no automatic approval by rule 'on-call' (on_call)");
    ASSERT_NE(first, std::string::npos) << err;
    EXPECT_EQ(err.find("no automatic approval", first + 1), std::string::npos) << err;
}

TEST_F(AutoApproveTest, OnCallNeedsThePersonWhoLoggedInOnCallToo) {
    // nobody is on call; root (login uid 0) running a process as nobody is not.
    auto b = make({on_call_rule()});
    auto as_nobody = [](std::int64_t login_uid, const std::string& login_name) {
        auto s = session({"/usr/bin/systemctl", "restart", "payments"});
        s.requester.uid = 65534;
        s.requester.name = "nobody";
        s.requester.login_uid = login_uid;
        s.requester.login_name = login_name;
        return s;
    };
    Recorder r1, r2, r3;
    auto other = as_nobody(0, "root");
    EXPECT_EQ(b->begin_check(other, r1), broker::Step::waiting) << "someone else running as the on-call user";
    auto unknown = as_nobody(4242, "");
    EXPECT_EQ(b->begin_check(unknown, r2), broker::Step::waiting) << "a login uid with no name";
    auto self = as_nobody(65534, "nobody");
    EXPECT_EQ(b->begin_check(self, r3), broker::Step::done) << "the on-call person in their own session";
}

TEST_F(AutoApproveTest, ALoginIsNeverApprovedByOnCall) {
    auto b = make({on_call_rule()});
    broker::CheckSession s;
    s.request.kind = "login";
    s.request.user = "nobody";
    s.request.uid = 65534;
    s.peer.pid = test::k_fake_sudo_pid;
    s.peer.uid = 0;
    Recorder r;
    b->begin_check(s, r);
    EXPECT_FALSE(r.decision && r.decision->allow);
    EXPECT_EQ(journal().find("access.auto_approved"), std::string::npos) << journal();
}

TEST_F(AutoApproveTest, AllListedConditionsMustHold) {
    config::Rule rule = on_call_rule();
    rule.auto_approve.commands = {"/usr/bin/systemctl status *"};
    auto b = make({rule});
    Recorder held, approved;
    auto restart = session({"/usr/bin/systemctl", "restart", "payments"});
    EXPECT_EQ(b->begin_check(restart, held), broker::Step::waiting) << "on call, but not a listed command";
    auto status = session({"/usr/bin/systemctl", "status", "payments"});
    ASSERT_EQ(b->begin_check(status, approved), broker::Step::done);
    ASSERT_TRUE(approved.decision);
    EXPECT_TRUE(approved.decision->allow);
    EXPECT_NE(journal().find("\"condition\":\"on_call+commands\""), std::string::npos);
}

TEST_F(AutoApproveTest, ACommandsApprovalNeverMakesASessionGrant) {
    // A Config built in code skips validate(), which refuses this rule: the grant an automatic
    // approval by `commands` makes covers that command only, whatever the rule's scope says.
    config::Rule rule;
    rule.name = "ops";
    rule.scope = config::Scope::session;
    rule.auto_approve.set = true;
    rule.auto_approve.commands = {"/usr/bin/systemctl status payments"};
    auto b = make({rule});
    Recorder approved;
    auto status = session({"/usr/bin/systemctl", "status", "payments"});
    ASSERT_EQ(b->begin_check(status, approved), broker::Step::done);
    ASSERT_TRUE(approved.decision);
    EXPECT_TRUE(approved.decision->allow);
    broker::Caller root;
    root.peer.uid = 0;
    const auto grants = b->list_grants(root);
    ASSERT_EQ(grants.size(), 1U);
    EXPECT_EQ(grants[0]["scope"], "command");
    Recorder held;
    auto restart = session({"/usr/bin/systemctl", "restart", "payments"});
    EXPECT_EQ(b->begin_check(restart, held), broker::Step::waiting) << "the grant must not cover another command";
    EXPECT_FALSE(held.decision);
}

TEST_F(AutoApproveTest, ACommandsApprovalNeedsAProgramOnlyRootCanChange) {
    // The listed path is the program, but a program (or a directory above it) that someone
    // other than root can write is theirs to replace: no automatic approval then.
    const std::string dir = m_dir + "/bin", program = dir + "/journalctl";
    ASSERT_TRUE(std::filesystem::create_directory(dir));
    chmod(dir.c_str(), 0755);
    std::ofstream(program) << "#!/bin/sh\n";
    chmod(program.c_str(), 0755);
    config::Rule rule;
    rule.name = "logs";
    rule.auto_approve.set = true;
    rule.auto_approve.commands = {program + " -u payments"};
    const auto check = [&]() {
        auto b = make({rule});
        Recorder r;
        auto s = session({program, "-u", "payments"});
        return b->begin_check(s, r);
    };
    ASSERT_EQ(getuid(), 0U) << "the test chowns files";
    EXPECT_EQ(check(), broker::Step::done) << "root's program in root's directories";
    ASSERT_EQ(chown(program.c_str(), 65534, 65534), 0);
    EXPECT_EQ(check(), broker::Step::waiting) << "a program owned by another user";
    ASSERT_EQ(chown(program.c_str(), 0, 0), 0);
    chmod(program.c_str(), 0775);
    EXPECT_EQ(check(), broker::Step::waiting) << "a group-writable program";
    chmod(program.c_str(), 0755);
    ASSERT_EQ(chown(dir.c_str(), 65534, 65534), 0);
    EXPECT_EQ(check(), broker::Step::waiting) << "a directory another user owns";
    ASSERT_EQ(chown(dir.c_str(), 0, 0), 0);
    chmod(dir.c_str(), 0777);
    EXPECT_EQ(check(), broker::Step::waiting) << "a world-writable directory (not sticky)";
}

TEST_F(AutoApproveTest, AWindowThatCannotBeEvaluatedDenies) {
    // A Config built in code (or tzdata broken since the load): the window cannot say whether
    // it holds, so whether the deny rule applies is unknown: denied, not passed to the next rule.
    config::Window w;
    w.name = "freeze";
    w.timezone = "Mars/Olympus_Mons";
    w.weekly.push_back({0x7f, 0, 24 * 60});
    config::Rule deny;
    deny.name = "frozen";
    deny.action = config::Action::deny;
    deny.match.when_windows = {"freeze"};
    config::Rule allow;
    allow.name = "anything";
    allow.action = config::Action::allow;
    auto b = make({deny, allow}, {w});
    Recorder r;
    auto s = session({"/usr/bin/systemctl", "restart", "payments"});
    ASSERT_EQ(b->begin_check(s, r), broker::Step::done);
    ASSERT_TRUE(r.decision);
    EXPECT_FALSE(r.decision->allow);
    EXPECT_NE(r.decision->message.find("time window freeze cannot be evaluated"), std::string::npos)
        << r.decision->message;
}

TEST_F(AutoApproveTest, AnApprovalAfterTheWindowChangedGrantsNothing) {
    // Asked at 21:00 outside the freeze, approved at 22:30 after it began: the freeze rule
    // applies now, so the approval given for the ordinary rule makes no grant.
    config::Window freeze;
    freeze.name = "night-freeze";
    freeze.timezone = "UTC";
    config::DatedPeriod p;
    p.from = "2026-11-29T22:00";
    p.to = "2026-11-30T06:00";
    p.from_unix = *windows::local_to_unix(freeze.timezone, p.from);
    p.to_unix = *windows::local_to_unix(freeze.timezone, p.to);
    freeze.dates.push_back(p);
    config::Rule frozen;
    frozen.name = "frozen";
    frozen.action = config::Action::deny;
    frozen.match.when_windows = {"night-freeze"};
    config::Rule ordinary;
    ordinary.name = "ordinary";
    auto b = make({frozen, ordinary}, {freeze});
    broker::Caller bob;
    bob.name = "bob";
    bob.peer.uid = 2002;
    bob.groups = {"approvers"};

    Recorder in_time;
    auto early = session({"/usr/bin/systemctl", "restart", "payments"});
    ASSERT_EQ(b->begin_check(early, in_time), broker::Step::waiting);
    m_now = at("2026-11-29T21:59:59Z");
    EXPECT_TRUE(b->approve(bob, early.request_id).ok) << "the same rule still applies";

    m_now = at("2026-11-29T21:00:00Z");
    Recorder r;
    auto s = session({"/usr/bin/systemctl", "restart", "web"});
    ASSERT_EQ(b->begin_check(s, r), broker::Step::waiting);
    m_now = at("2026-11-29T22:30:00Z");
    const auto result = b->approve(bob, s.request_id);
    EXPECT_FALSE(result.ok);
    ASSERT_TRUE(r.decision);
    EXPECT_FALSE(r.decision->allow);
    EXPECT_NE(r.decision->message.find("the time window changed while it waited: now rule 'frozen' applies"),
              std::string::npos)
        << r.decision->message;
    EXPECT_EQ(b->list_grants(bob).size(), 1U) << "only the first request's grant";
    EXPECT_EQ(b->pending_count(), 0U);
    EXPECT_NE(journal().find("\"window_changed\":true"), std::string::npos);
}

TEST_F(AutoApproveTest, TheWindowThatAppliedIsShownRecordedAndCarriedIntoTheGrant) {
    config::Window freeze;
    freeze.name = "q4-freeze";
    freeze.timezone = "America/New_York";
    config::DatedPeriod p;
    p.from = "2026-11-29T00:00";
    p.to = "2026-11-30T00:00";
    p.from_unix = *windows::local_to_unix(freeze.timezone, p.from);
    p.to_unix = *windows::local_to_unix(freeze.timezone, p.to);
    freeze.dates.push_back(p);
    config::Rule board;
    board.name = "freeze-board";
    board.match.when_windows = {"q4-freeze"};
    config::Rule deny;
    deny.name = "freeze-deny";
    deny.action = config::Action::deny;
    deny.match.commands = {"/usr/bin/deploy *"};
    deny.match.when_windows = {"q4-freeze"};
    auto b = make({deny, board}, {freeze});

    Recorder denied;
    auto d = session({"/usr/bin/deploy", "payments"});
    b->begin_check(d, denied);
    ASSERT_TRUE(denied.decision);
    EXPECT_FALSE(denied.decision->allow);
    EXPECT_NE(denied.decision->message.find("window q4-freeze"), std::string::npos) << denied.decision->message;

    Recorder r;
    auto s = session({"/usr/bin/systemctl", "restart", "payments"});
    ASSERT_EQ(b->begin_check(s, r), broker::Step::waiting);
    ASSERT_FALSE(r.notices.empty());
    EXPECT_NE(r.notices[0].find("(window q4-freeze (2026-11-29T00:00 to 2026-11-30T00:00 America/New_York))"),
              std::string::npos)
        << r.notices[0];
    broker::Caller bob;
    bob.name = "bob";
    bob.peer.uid = 2002;
    bob.groups = {"approvers"};
    const auto pending = b->pending(bob);
    ASSERT_EQ(pending.size(), 1U);
    EXPECT_EQ(pending[0]["window"], "q4-freeze (2026-11-29T00:00 to 2026-11-30T00:00 America/New_York)");
    ASSERT_TRUE(b->approve(bob, s.request_id).ok);
    const auto grants = b->list_grants(bob);
    ASSERT_EQ(grants.size(), 1U);
    EXPECT_EQ(grants[0]["window"], pending[0]["window"]);
    const std::string j = journal();
    for (const char* type : {"access.denied", "access.requested", "access.approved"}) {
        EXPECT_NE(j.find(std::string("\"type\":\"") + type + "\"", 0), std::string::npos) << type;
    }
    // Every event of the decision and the request carries it.
    std::size_t lines = 0, with_window = 0, start = 0;
    while (start < j.size()) {
        const auto end = j.find('\n', start);
        const std::string line = j.substr(start, end - start);
        if (line.find("\"request_id\"") != std::string::npos || line.find("access.denied") != std::string::npos) {
            ++lines;
            with_window += line.find("\"window\":\"q4-freeze") != std::string::npos ? 1 : 0;
        }
        start = end == std::string::npos ? j.size() : end + 1;
    }
    EXPECT_EQ(lines, 3U) << j;
    EXPECT_EQ(with_window, lines) << j;
    // Past the freeze the rules fall through: no window.
    m_now = at("2026-11-30T05:00:00Z");
    Recorder later;
    auto s3 = session({"/usr/bin/deploy", "payments"});
    EXPECT_EQ(b->begin_check(s3, later), broker::Step::waiting);
}

} // namespace
