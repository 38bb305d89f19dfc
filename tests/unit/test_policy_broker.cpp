// Unit tests of the broker's decisions, without sockets: a recording Responder stands in for
// the client connection, and a real Auditor writes to a temporary journal.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <unistd.h>

#include "daemon/policy/broker.hpp"
#include "daemon/policy/identity.hpp"
#include "jitgate/error.hpp"
#include "jitgate/passwd.hpp"
#include "tests/unit/live_fake.hpp"

namespace {

using namespace jitgate;

struct Recorder : broker::Responder {
    std::vector<std::string> notices;
    std::vector<std::string> prompts;
    std::optional<msg::Decision> decision;
    void notice(const std::string& text, std::int64_t) override { notices.push_back(text); }
    void prompt(const std::string& field, const std::string&, bool) override { prompts.push_back(field); }
    void decide(const msg::Decision& d) override { decision = d; }
};

class BrokerTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/jitgate-broker-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
        audit::Options o;
        o.spool_dir = m_dir;
        o.host = "test-host";
        o.syslog = false;
        m_auditor = std::make_unique<audit::Auditor>(o);
    }
    void TearDown() override { std::system(("rm -rf " + m_dir).c_str()); }

    // A request of `argv` approved "by the service" (the broker as the service backend's
    // Outcomes) with service grant id `jti`, for 10 minutes; returns its request id.
    std::string grant_from_service(broker::Broker& b, std::vector<std::string> argv, const std::string& jti) {
        approval::Outcomes& outcomes = b;
        const auto exp = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch() + std::chrono::minutes(10))
                             .count();
        Recorder r;
        auto s = session(std::move(argv));
        EXPECT_EQ(b.begin_check(s, r), broker::Step::waiting);
        const std::string id = s.request_id; // the session forgets it once decided
        broker::Request* q = outcomes.waiting(id);
        EXPECT_NE(q, nullptr);
        if (q != nullptr) outcomes.approved(*q, {"bob"}, exp, approval::Json{{"service_grant_id", jti}});
        EXPECT_TRUE(r.decision && r.decision->allow);
        return id;
    }
    std::unique_ptr<broker::Broker> make(std::vector<config::Rule> rules, std::string break_glass = {}) {
        auto cfg = std::make_shared<config::Config>();
        cfg->host.name = "test-host";
        cfg->approval.approver_groups = {"approvers"};
        cfg->break_glass.group = std::move(break_glass);
        cfg->rules = std::move(rules);
        auto b = std::make_unique<broker::Broker>(cfg, *m_auditor);
        test::fake_processes(*b);
        return b;
    }

    static config::Rule rule(const std::string& name, config::Action action, std::vector<std::string> commands = {}) {
        config::Rule r;
        r.name = name;
        r.action = action;
        r.match.commands = std::move(commands);
        return r;
    }

    // The requester must exist on the machine running the tests: an unknown user's groups
    // cannot be read, and the broker denies such a request (see UnknownUserIsDenied).
    static broker::CheckSession session(std::vector<std::string> argv, std::string user = "nobody",
                                        std::int64_t uid = 65534) {
        broker::CheckSession s;
        s.request.kind = "sudo";
        s.request.user = std::move(user);
        s.request.uid = uid;
        s.request.runas_user = "root";
        s.request.command = argv.empty() ? "" : argv[0];
        s.request.run_argv = std::move(argv);
        s.peer.pid = test::k_fake_sudo_pid;
        s.peer.uid = 0;
        return s;
    }

    static broker::Caller approver(std::string name, uid_t uid) {
        broker::Caller c;
        c.name = std::move(name);
        c.peer.uid = uid;
        c.groups = {"approvers"};
        return c;
    }

    // `asker` (uid `asker_uid`, session login uid `login_uid`) running `su root`, as the server
    // finds the requester from the kernel.
    static broker::CheckSession su_root(std::string asker, std::int64_t asker_uid, std::int64_t login_uid = -1) {
        broker::CheckSession s;
        s.request.kind = "login";
        s.request.user = "root";
        s.request.uid = 0;
        s.request.service = "su";
        s.request.reason = "rotate the payments keys";
        s.request.interactive = true;
        s.peer.pid = test::k_fake_sudo_pid;
        s.peer.uid = 0;
        s.requester.uid = asker_uid;
        s.requester.name = std::move(asker);
        s.requester.login_uid = login_uid;
        if (login_uid >= 0) s.requester.login_name = "uid " + std::to_string(login_uid);
        return s;
    }

    // `name` working in the login session of `login_uid`.
    static broker::Caller in_session(std::string name, uid_t uid, std::int64_t login_uid, std::string login_name) {
        broker::Caller c = approver(std::move(name), uid);
        c.login_uid = login_uid;
        c.login_name = std::move(login_name);
        return c;
    }

    // Every event in the spool (one segment at these sizes).
    std::string journal() const {
        std::string all;
        for (const auto& entry : std::filesystem::directory_iterator(m_dir)) {
            if (entry.path().filename().string().rfind("seg-", 0) != 0) continue;
            std::ifstream in(entry.path());
            all += std::string(std::istreambuf_iterator<char>(in), {});
        }
        return all;
    }

    std::string m_dir;
    std::unique_ptr<audit::Auditor> m_auditor;
};

// Counts the journal's lines that hold every one of `needles`.
static std::size_t count_lines_with(const std::string& journal, std::initializer_list<std::string> needles) {
    std::size_t n = 0, start = 0;
    while (start < journal.size()) {
        std::size_t end = journal.find('\n', start);
        if (end == std::string::npos) end = journal.size();
        const std::string line = journal.substr(start, end - start);
        bool all = true;
        for (const auto& needle : needles) all = all && line.find(needle) != std::string::npos;
        n += all ? 1 : 0;
        start = end + 1;
    }
    return n;
}

TEST_F(BrokerTest, AllowAndDenyRulesDecideAtOnce) {
    auto b = make(
        {rule("ok", config::Action::allow, {"/usr/bin/true"}), rule("no", config::Action::deny, {"/usr/bin/bash*"})});
    Recorder r1, r2;
    auto s1 = session({"/usr/bin/true"});
    EXPECT_EQ(b->begin_check(s1, r1), broker::Step::done);
    ASSERT_TRUE(r1.decision);
    EXPECT_TRUE(r1.decision->allow);
    EXPECT_EQ(r1.decision->outcome, jitgate::msg::Outcome::allowed_by_rule);
    auto s2 = session({"/usr/bin/bash"});
    b->begin_check(s2, r2);
    ASSERT_TRUE(r2.decision);
    EXPECT_FALSE(r2.decision->allow);
    EXPECT_NE(r2.decision->message.find("denied by rule 'no'"), std::string::npos);
    EXPECT_NE(journal().find("access.allowed_by_rule"), std::string::npos);
}

TEST_F(BrokerTest, ASessionTheGrantCouldNotEndIsRefusedAndRecorded) {
    auto b = make({});
    Recorder r;
    auto s = session({"/usr/bin/systemctl", "restart", "payments"});
    ASSERT_EQ(b->begin_check(s, r), broker::Step::waiting);
    ASSERT_TRUE(b->approve(approver("bob", 2002), s.request_id).ok);
    ASSERT_TRUE(r.decision && r.decision->allow);
    // one person's sessions under on_expiry: end are followed up to the per-person bound
    for (pid_t pid = 5000; b->live_sessions().count_for(65534) < live::k_max_sessions_per_requester; ++pid) {
        Recorder again;
        auto run = session({"/usr/bin/systemctl", "restart", "payments"});
        run.peer.pid = pid;
        ASSERT_EQ(b->begin_check(run, again), broker::Step::done);
        ASSERT_TRUE(again.decision && again.decision->allow) << pid;
    }
    Recorder over;
    auto run = session({"/usr/bin/systemctl", "restart", "payments"});
    run.peer.pid = 9999;
    ASSERT_EQ(b->begin_check(run, over), broker::Step::done);
    ASSERT_TRUE(over.decision);
    EXPECT_FALSE(over.decision->allow) << "it would outlive its grant";
    EXPECT_NE(over.decision->message.find("could not be followed to the end of grant"), std::string::npos)
        << over.decision->message;
    EXPECT_NE(journal().find("\"not_followed\":true"), std::string::npos);
}

TEST_F(BrokerTest, ApprovalFlowCreatesAGrantForTheFastPath) {
    auto b = make({});
    Recorder r;
    auto s = session({"/usr/bin/systemctl", "restart", "payments"});
    ASSERT_EQ(b->begin_check(s, r), broker::Step::waiting);
    ASSERT_EQ(b->pending_count(), 1u);
    const std::string id = s.request_id;
    EXPECT_FALSE(b->approve(approver("nobody", 65534), id).ok) << "self-approval";
    broker::Caller outsider = approver("mallory", 2005);
    outsider.groups = {"users"};
    EXPECT_FALSE(b->approve(outsider, id).ok);
    EXPECT_FALSE(r.decision.has_value());
    EXPECT_TRUE(b->approve(approver("bob", 2002), id).ok);
    ASSERT_TRUE(r.decision);
    EXPECT_TRUE(r.decision->allow);
    EXPECT_EQ(r.decision->outcome, jitgate::msg::Outcome::approved);
    EXPECT_EQ(b->pending_count(), 0u);
    Recorder again;
    auto s2 = session({"/usr/bin/systemctl", "restart", "payments"});
    EXPECT_EQ(b->begin_check(s2, again), broker::Step::done);
    ASSERT_TRUE(again.decision);
    EXPECT_EQ(again.decision->outcome, jitgate::msg::Outcome::grant);
    EXPECT_EQ(again.decision->grant_id, r.decision->grant_id);
}

// The server's sessions are owned by a shared_ptr: a filed request holds that session, not a
// copy (one CheckSession per waiting request, issue 17); a session on the stack is copied. The
// shared one is approved, and a client going away is cancelled, as before.
TEST_F(BrokerTest, AFiledRequestHoldsTheServersSessionNotACopy) {
    auto b = make({});
    approval::Outcomes& outcomes = *b;
    Recorder r;
    auto s = std::make_shared<broker::CheckSession>(session({"/usr/bin/systemctl", "restart", "payments"}));
    ASSERT_EQ(b->begin_check(*s, r), broker::Step::waiting);
    const std::string id = s->request_id;
    broker::Request* q = outcomes.waiting(id);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->session.get(), s.get());
    Recorder r2;
    auto local = session({"/usr/bin/systemctl", "restart", "billing"});
    ASSERT_EQ(b->begin_check(local, r2), broker::Step::waiting);
    broker::Request* q2 = outcomes.waiting(local.request_id);
    ASSERT_NE(q2, nullptr);
    EXPECT_EQ(q2->session->request.run_argv, local.request.run_argv);
    EXPECT_EQ(q2->session->request_id, local.request_id);
    // A session no shared pointer owns is copied: changing it afterwards changes nothing filed.
    local.request.run_argv.back() = "ledger";
    EXPECT_EQ(q2->session->request.run_argv.back(), "billing");

    EXPECT_TRUE(b->approve(approver("bob", 2002), id).ok);
    ASSERT_TRUE(r.decision);
    EXPECT_TRUE(r.decision->allow);
    EXPECT_EQ(r.decision->request_id, id);
    EXPECT_TRUE(s->request_id.empty()); // decided: the session no longer waits
    b->client_gone(local);
    EXPECT_EQ(b->pending_count(), 0u);
    EXPECT_TRUE(local.request_id.empty());
}

// A revocation from the approval service (docs/protocol.md §12) is hostile input: it ends only
// the live grant of that request with that service grant id, exactly as jitgatectl revoke would.
TEST_F(BrokerTest, AServiceRevocationEndsOnlyTheGrantItNames) {
    auto b = make({});
    approval::Outcomes& outcomes = *b;
    // Two grants "from the service" (the broker as the service backend's Outcomes).
    const auto granted = [&](std::vector<std::string> argv, const std::string& jti) {
        return grant_from_service(*b, std::move(argv), jti);
    };
    const std::string first = granted({"/usr/bin/systemctl", "restart", "payments"}, "G-aaa");
    const std::string second = granted({"/usr/bin/systemctl", "restart", "ledger"}, "G-bbb");
    const auto answers = [&](std::vector<std::string> argv) {
        Recorder r;
        auto s = session(std::move(argv));
        const bool by_grant = b->begin_check(s, r) == broker::Step::done && r.decision &&
                              r.decision->outcome == jitgate::msg::Outcome::grant;
        if (!by_grant && b->pending_count() > 0) b->client_gone(s);
        return by_grant;
    };
    // Wrong jti for the request, another request's jti, an unknown request, empty ids: nothing.
    EXPECT_FALSE(outcomes.revoked_at_service(first, "G-bbb", "carol", "", approval::Json::object()));
    EXPECT_FALSE(outcomes.revoked_at_service(second, "G-aaa", "carol", "", approval::Json::object()));
    EXPECT_FALSE(outcomes.revoked_at_service("R-NOSUCH", "G-aaa", "carol", "", approval::Json::object()));
    EXPECT_FALSE(outcomes.revoked_at_service(first, "", "carol", "", approval::Json::object()));
    EXPECT_FALSE(outcomes.revoked_at_service("", "", "carol", "", approval::Json::object()));
    EXPECT_TRUE(answers({"/usr/bin/systemctl", "restart", "payments"}));
    EXPECT_TRUE(answers({"/usr/bin/systemctl", "restart", "ledger"}));
    EXPECT_EQ(journal().find("\"type\":\"grant.revoked\""), std::string::npos);

    // The right one: that grant ends (grant.revoked, who and where), the other stays.
    EXPECT_TRUE(outcomes.revoked_at_service(first, "G-aaa", "carol\x1b[2J", "incident closed",
                                            approval::Json{{"via", "approval_service"}}));
    EXPECT_FALSE(answers({"/usr/bin/systemctl", "restart", "payments"}));
    EXPECT_TRUE(answers({"/usr/bin/systemctl", "restart", "ledger"}));
    const std::string j = journal();
    EXPECT_EQ(count_lines_with(j, {"\"type\":\"grant.revoked\"", "\"request_id\":\"" + first + "\"",
                                   "\"revoked_at_service\":true", "\"service_grant_id\":\"G-aaa\"",
                                   "\"reason\":\"incident closed\"", "\"via\":\"approval_service\""}),
              1u);
    EXPECT_EQ(j.find("\x1b"), std::string::npos) << "the service's text is escaped";
    // Once ended, the same revocation again changes nothing.
    EXPECT_FALSE(outcomes.revoked_at_service(first, "G-aaa", "carol", "", approval::Json::object()));

    // A grant approved here (no service grant id) is never ended by the service's word.
    Recorder r;
    auto s = session({"/usr/bin/systemctl", "restart", "billing"});
    ASSERT_EQ(b->begin_check(s, r), broker::Step::waiting);
    const std::string local = s.request_id;
    ASSERT_TRUE(b->approve(approver("bob", 2002), local).ok);
    EXPECT_FALSE(outcomes.revoked_at_service(local, "", "carol", "", approval::Json::object()));
    EXPECT_FALSE(outcomes.revoked_at_service(local, r.decision->grant_id, "carol", "", approval::Json::object()));
    EXPECT_TRUE(answers({"/usr/bin/systemctl", "restart", "billing"}));
}

// A page of the feed goes to the broker as one batch: each entry is matched as alone would be,
// a repeat in the same page ends nothing more, and the result says which ended a grant.
TEST_F(BrokerTest, AServiceRevocationBatchEndsEachNamedGrantOnce) {
    auto b = make({});
    approval::Outcomes& outcomes = *b;
    const auto granted = [&](std::vector<std::string> argv, const std::string& jti) {
        return grant_from_service(*b, std::move(argv), jti);
    };
    const std::string first = granted({"/usr/bin/systemctl", "restart", "payments"}, "G-aaa");
    const std::string second = granted({"/usr/bin/systemctl", "restart", "ledger"}, "G-bbb");
    const std::string third = granted({"/usr/bin/systemctl", "restart", "billing"}, "G-ccc");
    const auto entry = [](const std::string& rid, const std::string& jti) {
        return approval::Outcomes::ServiceRevocation{rid, jti, "carol", "", approval::Json::object()};
    };
    const std::vector<bool> ended =
        outcomes.revoked_at_service_batch({entry(first, "G-aaa"), entry(first, "G-aaa"), entry(second, "G-aaa"),
                                           entry("R-NOSUCH", "G-bbb"), entry(third, "G-ccc")});
    EXPECT_EQ(ended, (std::vector<bool>{true, false, false, false, true}));
    EXPECT_EQ(count_lines_with(journal(), {"\"type\":\"grant.revoked\"", "\"revoked_at_service\":true"}), 2u);
    EXPECT_TRUE(outcomes.revoked_at_service_batch({}).empty());
    // The one not named is still live.
    EXPECT_TRUE(outcomes.revoked_at_service(second, "G-bbb", "carol", "", approval::Json::object()));
}

TEST_F(BrokerTest, SelfApprovalIsRefusedByUidEvenUnderAnotherName) {
    auto b = make({});
    Recorder r;
    auto s = session({"/usr/bin/id"});
    b->begin_check(s, r);
    EXPECT_FALSE(b->approve(approver("alias-of-nobody", 65534), s.request_id).ok);
    EXPECT_EQ(b->pending_count(), 1u);
}

TEST_F(BrokerTest, TwoApprovalsNeedTwoPeople) {
    auto rl = rule("two", config::Action::require_approval);
    rl.approvals = 2;
    auto b = make({rl});
    Recorder r;
    auto s = session({"/usr/bin/id"});
    b->begin_check(s, r);
    EXPECT_TRUE(b->approve(approver("bob", 2002), s.request_id).ok);
    EXPECT_FALSE(r.decision.has_value());
    EXPECT_FALSE(b->approve(approver("bob", 2002), s.request_id).ok);
    EXPECT_FALSE(b->approve(approver("bob-again", 2002), s.request_id).ok) << "same uid, other name";
    EXPECT_TRUE(b->approve(approver("carol", 2003), s.request_id).ok);
    ASSERT_TRUE(r.decision);
    EXPECT_TRUE(r.decision->allow);
}

TEST_F(BrokerTest, DenyTimeoutAndCancel) {
    auto b = make({});
    Recorder r1, r2, r3;
    auto s1 = session({"/usr/bin/a"});
    auto s2 = session({"/usr/bin/b"});
    auto s3 = session({"/usr/bin/c"});
    b->begin_check(s1, r1);
    b->begin_check(s2, r2);
    b->begin_check(s3, r3);
    EXPECT_TRUE(b->deny(approver("bob", 2002), s1.request_id, "not now").ok);
    ASSERT_TRUE(r1.decision);
    EXPECT_FALSE(r1.decision->allow);
    EXPECT_NE(r1.decision->message.find("denied by bob: not now"), std::string::npos);
    b->client_gone(s2);
    EXPECT_FALSE(r2.decision.has_value());
    EXPECT_EQ(b->pending_count(), 1u);
    b->expire(broker::Clock::now() + std::chrono::hours(1));
    ASSERT_TRUE(r3.decision);
    EXPECT_EQ(r3.decision->outcome, jitgate::msg::Outcome::timeout);
    EXPECT_EQ(b->pending_count(), 0u);
    const auto j = journal();
    EXPECT_NE(j.find("access.cancelled"), std::string::npos);
    EXPECT_NE(j.find("access.timeout"), std::string::npos);
}

TEST_F(BrokerTest, ReasonAndTicketRules) {
    auto rl = rule("ticketed", config::Action::require_approval);
    rl.reason_required = true;
    rl.ticket_pattern = "^CHG[0-9]{7}$";
    rl.ticket_regex.emplace(rl.ticket_pattern);
    auto b = make({rl});
    Recorder r1, r2, r3, r4;
    auto s1 = session({"/x"});
    s1.request.noninteractive = true;
    b->begin_check(s1, r1);
    ASSERT_TRUE(r1.decision);
    EXPECT_NE(r1.decision->message.find("requires a reason"), std::string::npos);
    auto s2 = session({"/x"});
    s2.request.interactive = true;
    EXPECT_EQ(b->begin_check(s2, r2), broker::Step::awaiting_input);
    EXPECT_EQ(r2.prompts, std::vector<std::string>{"reason"});
    EXPECT_EQ(b->give_input(s2, r2, "reason", true, "fix it"), broker::Step::awaiting_input);
    EXPECT_EQ(b->give_input(s2, r2, "ticket", true, "CHG1234567"), broker::Step::waiting);
    auto s3 = session({"/x"});
    s3.request.reason = "r";
    s3.request.ticket = "INC1";
    b->begin_check(s3, r3);
    ASSERT_TRUE(r3.decision);
    EXPECT_NE(r3.decision->message.find("does not match"), std::string::npos);
    auto s4 = session({"/x"});
    s4.request.interactive = true;
    b->begin_check(s4, r4);
    EXPECT_THROW(b->give_input(s4, r4, "ticket", true, "x"), Error) << "answer to a question not asked";
}

// Regression: a prompt left unanswered until the daemon's limit was recorded as
// access.cancelled (the server closed the connection and the broker took it for a Ctrl-C).
TEST_F(BrokerTest, PromptTimeoutIsRecordedAsTimeoutNotCancelled) {
    auto rl = rule("reasoned", config::Action::require_approval);
    rl.reason_required = true;
    auto b = make({rl});
    Recorder r;
    auto s = session({"/x"});
    s.request.interactive = true;
    ASSERT_EQ(b->begin_check(s, r), broker::Step::awaiting_input);
    EXPECT_EQ(b->input_timed_out(s, r, std::chrono::minutes(5)), broker::Step::done);
    ASSERT_TRUE(r.decision.has_value());
    EXPECT_FALSE(r.decision->allow);
    EXPECT_EQ(r.decision->outcome, jitgate::msg::Outcome::timeout);
    EXPECT_NE(r.decision->message.find("no reason given at the prompt within 5m"), std::string::npos);
    b->client_gone(s); // the server then closes the connection
    const auto j = journal();
    EXPECT_NE(j.find("\"type\":\"access.timeout\""), std::string::npos) << j;
    EXPECT_EQ(j.find("access.cancelled"), std::string::npos) << j;
    EXPECT_EQ(b->pending_count(), 0u);
    // Nothing was open any more: a second timeout is a no-op.
    Recorder again;
    EXPECT_EQ(b->input_timed_out(s, again, std::chrono::minutes(5)), broker::Step::done);
    EXPECT_FALSE(again.decision.has_value());
}

// The prompt's deadline is the broker's: expire() times out a prompt left open longer than
// k_prompt_limit, records access.timeout and hangs up; an answer in time closes the deadline.
TEST_F(BrokerTest, ExpireTimesOutAnUnansweredPrompt) {
    struct HangUpRecorder : Recorder {
        int hang_ups = 0;
        void hang_up() override { ++hang_ups; }
    };
    auto rl = rule("reasoned", config::Action::require_approval);
    rl.reason_required = true;
    auto b = make({rl});
    HangUpRecorder r;
    auto s = session({"/x"});
    s.request.interactive = true;
    const auto before = broker::Clock::now();
    ASSERT_EQ(b->begin_check(s, r), broker::Step::awaiting_input);
    ASSERT_TRUE(b->next_deadline().has_value());
    EXPECT_GE(*b->next_deadline(), before + broker::k_prompt_limit);
    b->expire(broker::Clock::now() + broker::k_prompt_limit - std::chrono::seconds(10));
    EXPECT_FALSE(r.decision.has_value()) << "not yet";
    b->expire(broker::Clock::now() + broker::k_prompt_limit + std::chrono::seconds(1));
    ASSERT_TRUE(r.decision.has_value());
    EXPECT_EQ(r.decision->outcome, jitgate::msg::Outcome::timeout);
    EXPECT_NE(r.decision->message.find("no reason given at the prompt within 5m"), std::string::npos);
    EXPECT_EQ(r.hang_ups, 1);
    EXPECT_FALSE(b->next_deadline().has_value());
    b->client_gone(s);
    const auto j = journal();
    EXPECT_NE(j.find("\"type\":\"access.timeout\""), std::string::npos) << j;
    EXPECT_EQ(j.find("access.cancelled"), std::string::npos) << j;

    // Answered in time: no prompt deadline is left behind.
    HangUpRecorder r2;
    auto s2 = session({"/x"});
    s2.request.interactive = true;
    ASSERT_EQ(b->begin_check(s2, r2), broker::Step::awaiting_input);
    ASSERT_EQ(b->give_input(s2, r2, "reason", true, "fix it"), broker::Step::waiting);
    const auto request_deadline = b->next_deadline();
    ASSERT_TRUE(request_deadline.has_value());
    b->client_gone(s2);
    EXPECT_FALSE(b->next_deadline().has_value());
    EXPECT_EQ(r2.hang_ups, 0);
}

TEST_F(BrokerTest, NonInteractiveFilesOnceAndReturns) {
    auto b = make({});
    Recorder r1, r2;
    auto s1 = session({"/usr/bin/id"});
    s1.request.noninteractive = true;
    EXPECT_EQ(b->begin_check(s1, r1), broker::Step::done);
    ASSERT_TRUE(r1.decision);
    EXPECT_EQ(r1.decision->outcome, jitgate::msg::Outcome::filed);
    auto s2 = session({"/usr/bin/id"});
    s2.request.noninteractive = true;
    b->begin_check(s2, r2);
    ASSERT_TRUE(r2.decision);
    EXPECT_NE(r2.decision->message.find("still waiting"), std::string::npos);
    EXPECT_EQ(b->pending_count(), 1u);
}

TEST_F(BrokerTest, TruncatedArgvIsDenied) {
    auto b = make({rule("all", config::Action::allow)});
    Recorder r;
    auto s = session({"/usr/bin/echo"});
    s.request.argv_truncated = true;
    s.request.argv_bytes = 1 << 20;
    EXPECT_EQ(b->begin_check(s, r), broker::Step::done);
    // The allow-all rule would let the command through: only the truncation denies it, so the
    // denial must carry the truncation's reason, not just any "no".
    ASSERT_TRUE(r.decision);
    EXPECT_FALSE(r.decision->allow);
    EXPECT_EQ(r.decision->outcome, jitgate::msg::Outcome::denied);
    EXPECT_EQ(r.decision->message, "jitgate: denied: the command line is 1048576 bytes; jitgate judges at most " +
                                       std::to_string(msg::k_argv_budget) + " bytes");
    EXPECT_EQ(count_lines_with(journal(), {"\"type\":\"access.denied\"", "\"argv_truncated\":true",
                                           "\"argv_bytes\":1048576", "\"outcome\":\"denied\""}),
              1u)
        << journal();
}

TEST_F(BrokerTest, BreakGlassNeedsGroupAndReason) {
    // Accounts and groups every Debian machine has: root is in group root, nobody (nogroup)
    // is not. A user who does not exist would be denied earlier, for unknown groups.
    const auto nobody_groups = jitgate::group_names_of("nobody");
    ASSERT_TRUE(nobody_groups) << "the test needs the account nobody";
    ASSERT_EQ(std::count(nobody_groups->begin(), nobody_groups->end(), "root"), 0) << "nobody is in group root";
    auto b = make({}, "root");
    Recorder r1, r2, r3;
    auto s1 = session({"/usr/bin/id"}, "root", 0);
    s1.request.break_glass_reason = "database down, INC-1";
    b->begin_check(s1, r1);
    ASSERT_TRUE(r1.decision);
    EXPECT_TRUE(r1.decision->allow);
    EXPECT_EQ(r1.decision->outcome, jitgate::msg::Outcome::break_glass);
    auto s2 = session({"/usr/bin/id"}, "root", 0);
    s2.request.break_glass_reason = "short";
    b->begin_check(s2, r2);
    ASSERT_TRUE(r2.decision);
    EXPECT_FALSE(r2.decision->allow);
    EXPECT_NE(r2.decision->message.find("break-glass refused: a break-glass reason needs at least"), std::string::npos)
        << r2.decision->message;
    auto s3 = session({"/usr/bin/id"}, "nobody", 65534);
    s3.request.break_glass_reason = "database down, INC-1";
    b->begin_check(s3, r3);
    ASSERT_TRUE(r3.decision);
    EXPECT_FALSE(r3.decision->allow);
    EXPECT_EQ(r3.decision->outcome, jitgate::msg::Outcome::denied);
    EXPECT_EQ(r3.decision->message, "jitgate: break-glass refused: nobody is not in the break-glass group 'root'");
    EXPECT_EQ(count_lines_with(journal(), {"\"type\":\"access.break_glass\""}), 1u) << journal();
}

TEST_F(BrokerTest, UnknownUserIsDenied) {
    auto b = make({rule("all", config::Action::allow)});
    Recorder r;
    auto s = session({"/usr/bin/true"}, "no-such-user-jitgate", 4242);
    b->begin_check(s, r);
    ASSERT_TRUE(r.decision);
    EXPECT_FALSE(r.decision->allow) << "groups unknown: a %group deny rule cannot be judged";
}

TEST_F(BrokerTest, MaxPendingIsEnforced) {
    auto cfg = std::make_shared<config::Config>();
    cfg->daemon.max_pending = 2;
    broker::Broker b(cfg, *m_auditor);
    Recorder r1, r2, r3;
    auto s1 = session({"/a"}), s2 = session({"/b"}), s3 = session({"/c"});
    b.begin_check(s1, r1);
    b.begin_check(s2, r2);
    b.begin_check(s3, r3);
    ASSERT_TRUE(r3.decision);
    EXPECT_FALSE(r3.decision->allow);
    EXPECT_EQ(b.pending_count(), 2u);
}

// Each user may have at most 100 requests waiting; the count follows requests as they are
// filed and as they end (cancelled, decided, timed out), and other users are not affected.
TEST_F(BrokerTest, PerUserPendingCapFollowsRequestsAsTheyEnd) {
    auto b = make({});
    std::deque<broker::CheckSession> sessions;
    std::deque<Recorder> recorders;
    const auto file = [&](const std::string& user, std::int64_t uid) -> Recorder& {
        sessions.push_back(session({"/usr/bin/id", std::to_string(sessions.size())}, user, uid));
        recorders.emplace_back();
        b->begin_check(sessions.back(), recorders.back());
        return recorders.back();
    };
    for (int i = 0; i < 100; ++i) ASSERT_FALSE(file("nobody", 65534).decision) << "request " << i << " should wait";
    const auto& over = file("nobody", 65534);
    ASSERT_TRUE(over.decision);
    EXPECT_FALSE(over.decision->allow);
    EXPECT_NE(over.decision->message.find("nobody already has 100 requests waiting"), std::string::npos)
        << over.decision->message;
    EXPECT_FALSE(file("root", 0).decision) << "another user's requests are not capped by nobody's";
    EXPECT_EQ(b->pending_count(), 101u);

    b->client_gone(sessions[0]); // cancelled: one place free
    EXPECT_FALSE(file("nobody", 65534).decision);
    EXPECT_TRUE(file("nobody", 65534).decision.has_value()) << "full again";
    ASSERT_TRUE(b->deny(approver("bob", 2002), sessions[1].request_id, "no").ok); // decided: one place free
    EXPECT_FALSE(file("nobody", 65534).decision);

    b->expire(broker::Clock::now() + std::chrono::hours(2)); // every request times out
    EXPECT_EQ(b->pending_count(), 0u);
    for (int i = 0; i < 100; ++i) ASSERT_FALSE(file("nobody", 65534).decision) << "after the timeouts, request " << i;
}

// Regression: su filed the request as the target account (root), so bob, an approver, could
// approve his own `su root`. The requester is the caller, whatever account they ask for.
TEST_F(BrokerTest, SuRequesterCannotApproveOwnSuRoot) {
    auto b = make({});
    Recorder r;
    auto s = su_root("bob", 2002);
    ASSERT_EQ(b->begin_check(s, r), broker::Step::waiting);
    const auto refused = b->approve(approver("bob", 2002), s.request_id);
    EXPECT_FALSE(refused.ok);
    EXPECT_NE(refused.message.find("cannot approve your own request"), std::string::npos) << refused.message;
    EXPECT_NE(journal().find("\"refused\":\"self_approval\""), std::string::npos);
    const auto listed = b->pending(approver("carol", 2003));
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0]["requester"], "bob");
    EXPECT_EQ(listed[0]["user"], "root");
    EXPECT_TRUE(b->approve(approver("carol", 2003), s.request_id).ok);
    ASSERT_TRUE(r.decision);
    EXPECT_TRUE(r.decision->allow);
    EXPECT_NE(journal().find("\"requester\":\"bob\",\"requester_uid\":2002"), std::string::npos) << journal();
}

// Regression: a login grant covered the account, so once alice's `su root` was approved anyone's
// `su root` passed on it for its whole TTL. It covers alice, and only from her own session.
TEST_F(BrokerTest, SuRootGrantIsBoundToItsRequester) {
    auto b = make({});
    Recorder r;
    auto s = su_root("alice", 2001, 2001);
    ASSERT_EQ(b->begin_check(s, r), broker::Step::waiting);
    ASSERT_TRUE(b->approve(approver("carol", 2003), s.request_id).ok);
    ASSERT_TRUE(r.decision && r.decision->allow);

    Recorder again;
    auto s2 = su_root("alice", 2001, 2001);
    EXPECT_EQ(b->begin_check(s2, again), broker::Step::done);
    ASSERT_TRUE(again.decision);
    EXPECT_EQ(again.decision->outcome, jitgate::msg::Outcome::grant);

    Recorder other;
    auto bob = su_root("bob", 2002, 2002);
    EXPECT_EQ(b->begin_check(bob, other), broker::Step::waiting) << "bob's su root must not pass on alice's grant";
    EXPECT_FALSE(other.decision.has_value());

    Recorder elsewhere;
    auto shared = su_root("alice", 2001, 2002); // alice's account used from bob's session
    EXPECT_EQ(b->begin_check(shared, elsewhere), broker::Step::waiting);
}

// An approver in a shared account (ops) whose session belongs to the requester is the requester.
TEST_F(BrokerTest, SharedAccountInRequestersSessionCannotApprove) {
    auto b = make({});
    Recorder r;
    auto s = su_root("bob", 2002, 2002);
    ASSERT_EQ(b->begin_check(s, r), broker::Step::waiting);
    const auto refused = b->approve(in_session("ops", 3000, 2002, "bob"), s.request_id);
    EXPECT_FALSE(refused.ok);
    EXPECT_NE(refused.message.find("this session belongs to bob (login uid 2002)"), std::string::npos)
        << refused.message;
    EXPECT_NE(journal().find("\"approver_login_uid\":2002"), std::string::npos) << journal();
    EXPECT_EQ(b->pending_count(), 1u);
    // The request's own login uid counts too: bob's account from a session of someone else is fine,
    // but any account in a session whose login uid is the requester's is not.
    auto s2 = su_root("ops", 3000, 2002);
    Recorder r2;
    ASSERT_EQ(b->begin_check(s2, r2), broker::Step::waiting);
    EXPECT_FALSE(b->approve(approver("bob", 2002), s2.request_id).ok) << "bob's own session asked, as ops";
    // ops used by carol, from her own session, is carol: she may approve, and is named so.
    EXPECT_TRUE(b->approve(in_session("ops", 3000, 2003, "carol"), s.request_id).ok);
    ASSERT_TRUE(r.decision && r.decision->allow);
    EXPECT_NE(r.decision->message.find("approved by ops (login carol)"), std::string::npos) << r.decision->message;
}

// "Two approvals" means two people: one person approving from two accounts counts once.
TEST_F(BrokerTest, TwoApprovalsFromOnePersonsTwoAccountsCountOnce) {
    auto rl = rule("two", config::Action::require_approval);
    rl.approvals = 2;
    auto b = make({rl});
    Recorder r;
    auto s = session({"/usr/bin/id"});
    b->begin_check(s, r);
    EXPECT_TRUE(b->approve(in_session("bob", 2002, 2002, "bob"), s.request_id).ok);
    EXPECT_FALSE(b->approve(in_session("ops", 3000, 2002, "bob"), s.request_id).ok);
    EXPECT_FALSE(r.decision.has_value());
    EXPECT_TRUE(b->approve(in_session("carol", 2003, 2003, "carol"), s.request_id).ok);
    ASSERT_TRUE(r.decision && r.decision->allow);
}

// Root is an account, not a person: it approves only with approval.allow_root.
TEST_F(BrokerTest, RootMayApproveOnlyWhenAllowed) {
    auto cfg = std::make_shared<config::Config>();
    cfg->host.name = "test-host";
    cfg->approval.approver_groups = {"approvers"};
    auto b = std::make_unique<broker::Broker>(cfg, *m_auditor);
    test::fake_processes(*b);
    Recorder r;
    auto s = su_root("alice", 2001);
    ASSERT_EQ(b->begin_check(s, r), broker::Step::waiting);
    const auto refused = b->approve(approver("root", 0), s.request_id);
    EXPECT_FALSE(refused.ok);
    EXPECT_NE(refused.message.find("approval.allow_root"), std::string::npos) << refused.message;
    EXPECT_NE(journal().find("\"refused\":\"root\""), std::string::npos);

    auto allowed = std::make_shared<config::Config>(*cfg);
    allowed->approval.allow_root = true;
    b->set_config(allowed);
    // ...and even then root in alice's own session is alice.
    EXPECT_FALSE(b->approve(in_session("root", 0, 2001, "alice"), s.request_id).ok);
    EXPECT_TRUE(b->approve(approver("root", 0), s.request_id).ok);
    ASSERT_TRUE(r.decision && r.decision->allow);
}

// Regression: refused approver operations were recorded without limit: any local user could
// send approve frames for a request they may not act on as fast as the socket allows, each an
// fsync'ed record, until the spool was full and everyone was denied.
TEST_F(BrokerTest, RefusedApprovalFloodIsBoundedPerUid) {
    auto b = make({});
    Recorder r;
    auto s = session({"/usr/bin/systemctl", "restart", "payments"});
    ASSERT_EQ(b->begin_check(s, r), broker::Step::waiting);
    broker::Caller outsider = approver("mallory", 2005);
    outsider.groups = {"users"};
    const auto bytes_before = m_auditor->spool_bytes();
    const auto seq_before = m_auditor->last_seq();
    for (int i = 0; i < 5000; ++i) ASSERT_FALSE(b->approve(outsider, s.request_id).ok);
    for (int i = 0; i < 5000; ++i)
        ASSERT_FALSE(b->approve(approver("nobody", 65534), s.request_id).ok) << "self-approval";
    const std::string j = journal();
    EXPECT_EQ(count_lines_with(j, {"\"approver_uid\":2005", "approval refused"}), audit::k_refusals_per_window);
    EXPECT_EQ(count_lines_with(j, {"\"approver_uid\":65534", "cannot approve their own"}),
              audit::k_refusals_per_window);
    EXPECT_EQ(m_auditor->last_seq() - seq_before, 2 * audit::k_refusals_per_window) << "10,000 refusals, 20 records";
    EXPECT_LT(m_auditor->spool_bytes() - bytes_before, 2 * audit::k_refusals_per_window * 2048);

    // When the window ends, one summary per uid carries the count of the rest.
    b->report_suppressed(broker::Clock::now() + audit::k_refusal_window);
    const std::string after = journal();
    EXPECT_EQ(count_lines_with(after, {"\"peer_uid\":2005", "\"suppressed\":4990", "\"rate_limited\":true"}), 1u);
    EXPECT_EQ(count_lines_with(after, {"\"peer_uid\":65534", "\"suppressed\":4990", "\"rate_limited\":true"}), 1u);
    EXPECT_EQ(m_auditor->last_seq() - seq_before, 2 * audit::k_refusals_per_window + 2);

    // The request is untouched and a real approver still gets through.
    EXPECT_FALSE(r.decision.has_value());
    EXPECT_TRUE(b->approve(approver("bob", 2002), s.request_id).ok);
    EXPECT_TRUE(r.decision && r.decision->allow);
}

// Regression: with the store down, one user's denied runs could fill the spool and lock every
// other user out. Above 80 % of the limit each uid may add only its share.
TEST_F(BrokerTest, OneUserCannotUseUpANearlyFullSpool) {
    m_auditor.reset();
    audit::Options o;
    o.spool_dir = m_dir;
    o.host = "test-host";
    o.syslog = false;
    o.max_bytes = 1 << 20;
    m_auditor = std::make_unique<audit::Auditor>(o);
    const std::string pad(4000, 'x');
    while (m_auditor->spool_bytes() < o.max_bytes / 100 * 81)
        m_auditor->record({{"type", audit::type::config_loaded}, {"message", pad}}); // the daemon's own
    ASSERT_FALSE(m_auditor->spool_full());
    auto b = make(
        {rule("no", config::Action::deny, {"/usr/bin/bash*"}), rule("ok", config::Action::allow, {"/usr/bin/true"})});

    std::size_t denied = 0, unrecorded = 0;
    const auto seq_before = m_auditor->last_seq();
    for (int i = 0; i < 500; ++i) {
        Recorder r;
        auto s = session({"/usr/bin/bash", "-c", std::to_string(i)});
        b->begin_check(s, r);
        ASSERT_TRUE(r.decision);
        ASSERT_FALSE(r.decision->allow);
        ++denied;
        if (r.decision->message.find("used their share") != std::string::npos) ++unrecorded;
    }
    const auto added = m_auditor->last_seq() - seq_before;
    EXPECT_EQ(added, audit::k_share_events_per_uid) << "nobody's 500 denied runs added only its share";
    EXPECT_EQ(unrecorded, denied - audit::k_share_events_per_uid);
    EXPECT_FALSE(m_auditor->spool_full());

    // Another user still gets through, and recorded.
    Recorder other;
    auto s = session({"/usr/bin/true"}, "root", 0);
    b->begin_check(s, other);
    ASSERT_TRUE(other.decision);
    EXPECT_TRUE(other.decision->allow) << other.decision->message;
    EXPECT_EQ(m_auditor->last_seq(), seq_before + added + 1);
    // And the daemon's own events still fit.
    EXPECT_NO_THROW(m_auditor->record({{"type", audit::type::config_loaded}}));

    b->report_suppressed(broker::Clock::now(), true);
    EXPECT_EQ(count_lines_with(
                  journal(), {"\"spool_share\":true", "\"uid\":65534", "\"suppressed\":" + std::to_string(unrecorded)}),
              1u);
}

} // namespace
