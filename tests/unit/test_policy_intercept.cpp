// Unit tests of sub-command checks under sudo's intercept mode (daemon/policy/intercept.cpp)
// and of rules that require intercept, without sockets: a recording Responder stands in for
// the client, a real Auditor writes to a temporary journal.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/policy/broker.hpp"
#include "jitgate/error.hpp"
#include "jitgate/messages.hpp"
#include "tests/unit/live_fake.hpp"

namespace {

using namespace jitgate;
using Intercept = msg::CheckRequest::Intercept;

struct Recorder : broker::Responder {
    std::vector<std::string> prompts;
    std::optional<msg::Decision> decision;
    void notice(const std::string&, std::int64_t) override {}
    void prompt(const std::string& field, const std::string&, bool) override { prompts.push_back(field); }
    void decide(const msg::Decision& d) override { decision = d; }
};

class InterceptTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/jitgate-intercept-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
        audit::Options o;
        o.spool_dir = m_dir;
        o.host = "test-host";
        o.syslog = false;
        m_auditor = std::make_unique<audit::Auditor>(o);
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }

    // Rules: /usr/bin/true allowed, bash denied, then `last` (require_approval).
    std::unique_ptr<broker::Broker> make(config::Rule last, std::string break_glass_group = {}) {
        auto cfg = std::make_shared<config::Config>();
        cfg->host.name = "test-host";
        cfg->break_glass.group = std::move(break_glass_group);
        cfg->approval.approver_groups = {"approvers"};
        config::Rule ok;
        ok.name = "ok";
        ok.action = config::Action::allow;
        ok.match.commands = {"/usr/bin/true"};
        config::Rule no;
        no.name = "no-shells";
        no.action = config::Action::deny;
        no.match.commands = {"/usr/bin/bash*"};
        no.message = "no root shells";
        cfg->rules = {ok, no, std::move(last)};
        auto b = std::make_unique<broker::Broker>(cfg, *m_auditor);
        test::fake_processes(*b);
        return b;
    }

    static config::Rule approval_rule(config::Scope scope) {
        config::Rule r;
        r.name = "ops";
        r.scope = scope;
        return r;
    }

    // `nobody` (who exists on every test machine, so its groups can be read) running argv.
    static broker::CheckSession session(std::vector<std::string> argv, std::string user = "nobody",
                                        std::int64_t uid = 65534) {
        broker::CheckSession s;
        s.request.kind = "sudo";
        s.request.user = std::move(user);
        s.request.uid = uid;
        s.request.runas_user = "root";
        s.request.command = argv.front();
        s.request.run_argv = std::move(argv);
        s.request.intercept = Intercept::on;
        s.peer.pid = test::k_fake_sudo_pid;
        s.peer.uid = 0;
        return s;
    }

    static broker::CheckSession sub(std::vector<std::string> argv, const std::string& request_id,
                                    const std::string& grant_id) {
        auto s = session(std::move(argv));
        s.request.intercepted = true;
        s.request.parent_request_id = request_id;
        s.request.parent_grant_id = grant_id;
        return s;
    }

    static broker::Caller approver() {
        broker::Caller c;
        c.name = "bob";
        c.peer.uid = 2002;
        c.groups = {"approvers"};
        return c;
    }

    // Approves `sudo sh` for nobody; sets m_request and m_grant.
    void approve_parent(broker::Broker& b) {
        Recorder r;
        auto s = session({"/usr/bin/sh"});
        ASSERT_EQ(b.begin_check(s, r), broker::Step::waiting);
        m_request = s.request_id;
        ASSERT_TRUE(b.approve(approver(), m_request).ok);
        ASSERT_TRUE(r.decision && r.decision->allow);
        m_grant = r.decision->grant_id;
        ASSERT_FALSE(m_grant.empty());
    }

    msg::Decision check(broker::Broker& b, broker::CheckSession s) {
        Recorder r;
        EXPECT_EQ(b.begin_check(s, r), broker::Step::done) << "a sub-command never waits";
        EXPECT_TRUE(r.prompts.empty()) << "a sub-command is never prompted";
        return r.decision.value_or(msg::Decision{});
    }

    std::string journal() const {
        std::string all;
        for (const auto& entry : std::filesystem::directory_iterator(m_dir)) {
            if (entry.path().filename().string().rfind("seg-", 0) != 0) continue;
            std::ifstream in(entry.path());
            all += std::string(std::istreambuf_iterator<char>(in), {});
        }
        return all;
    }

    std::size_t intercepted_lines_with(const std::string& needle) const {
        std::size_t n = 0;
        std::istringstream in(journal());
        for (std::string line; std::getline(in, line);)
            if (line.find("\"type\":\"command.intercepted\"") != std::string::npos &&
                line.find(needle) != std::string::npos)
                ++n;
        return n;
    }

    std::string m_dir;
    std::unique_ptr<audit::Auditor> m_auditor;
    std::string m_request, m_grant;
};

TEST_F(InterceptTest, SessionGrantCoversSubCommandsAndEachIsRecordedWithItsParent) {
    auto b = make(approval_rule(config::Scope::session));
    approve_parent(*b);
    const auto d = check(*b, sub({"/usr/bin/systemctl", "restart", "payments"}, m_request, m_grant));
    EXPECT_TRUE(d.allow);
    EXPECT_EQ(d.outcome, msg::Outcome::grant);
    EXPECT_EQ(d.grant_id, m_grant);
    EXPECT_EQ(d.request_id, m_request);
    EXPECT_EQ(intercepted_lines_with("\"parent_request_id\":\"" + m_request + "\""), 1u);
    EXPECT_EQ(intercepted_lines_with("\"decision\":\"allowed\""), 1u);
    EXPECT_EQ(intercepted_lines_with("\"argv\":[\"/usr/bin/systemctl\",\"restart\",\"payments\"]"), 1u);
    EXPECT_EQ(b->pending_count(), 0u);
}

TEST_F(InterceptTest, RulesJudgeSubCommandsFirst) {
    auto b = make(approval_rule(config::Scope::session));
    approve_parent(*b);
    const auto denied = check(*b, sub({"/usr/bin/bash", "-i"}, m_request, m_grant));
    EXPECT_FALSE(denied.allow);
    EXPECT_EQ(denied.outcome, msg::Outcome::denied);
    EXPECT_EQ(denied.message,
              "jitgate: denied: /usr/bin/bash (run inside sudo): denied by rule 'no-shells': no root shells");
    const auto allowed = check(*b, sub({"/usr/bin/true"}, m_request, ""));
    EXPECT_TRUE(allowed.allow);
    EXPECT_EQ(allowed.outcome, msg::Outcome::allowed_by_rule);
    EXPECT_EQ(intercepted_lines_with("\"why\":\"rule\""), 2u);
}

TEST_F(InterceptTest, WithoutAGrantASubCommandIsDeniedNeverFiledNorPrompted) {
    auto rule = approval_rule(config::Scope::session);
    rule.reason_required = true;
    auto b = make(rule);
    auto s = sub({"/usr/bin/systemctl", "stop", "payments"}, "", "");
    s.request.interactive = true; // even a client that claims it could prompt
    const auto d = check(*b, s);
    EXPECT_FALSE(d.allow);
    EXPECT_NE(d.message.find("no grant admitted the command that runs it"), std::string::npos) << d.message;
    EXPECT_EQ(b->pending_count(), 0u);
    EXPECT_EQ(journal().find("access.requested"), std::string::npos);
    EXPECT_EQ(intercepted_lines_with("\"why\":\"no_grant\""), 1u);
}

TEST_F(InterceptTest, NothingPassesUnderARevokedOrUnknownGrant) {
    auto b = make(approval_rule(config::Scope::session));
    approve_parent(*b);
    EXPECT_TRUE(check(*b, sub({"/usr/bin/id"}, m_request, m_grant)).allow);
    ASSERT_TRUE(b->revoke(approver(), m_grant, "window closed").ok);
    const auto d = check(*b, sub({"/usr/bin/id"}, m_request, m_grant));
    EXPECT_FALSE(d.allow);
    EXPECT_NE(d.message.find("grant " + m_grant + " that admitted this sudo has expired or was revoked"),
              std::string::npos)
        << d.message;
    EXPECT_FALSE(check(*b, sub({"/usr/bin/id"}, m_request, "G-FORGED0000")).allow);
    EXPECT_EQ(intercepted_lines_with("\"why\":\"grant_gone\""), 2u);
}

TEST_F(InterceptTest, CommandGrantCoversOnlyItsOwnCommand) {
    auto b = make(approval_rule(config::Scope::command));
    approve_parent(*b);
    const auto child = check(*b, sub({"/usr/bin/id"}, m_request, m_grant));
    EXPECT_FALSE(child.allow);
    EXPECT_NE(child.message.find("has scope command and covers only the command it was approved for"),
              std::string::npos)
        << child.message;
    // the very command it was granted for, exactly (a re-exec of itself)
    EXPECT_TRUE(check(*b, sub({"/usr/bin/sh"}, m_request, m_grant)).allow);
    EXPECT_FALSE(check(*b, sub({"/usr/bin/sh", "-c", "id"}, m_request, m_grant)).allow);
}

TEST_F(InterceptTest, AnotherPersonCannotRideTheParentsGrant) {
    auto b = make(approval_rule(config::Scope::session));
    approve_parent(*b);
    auto s = sub({"/usr/bin/id"}, m_request, m_grant);
    s.request.user = "root";
    s.request.uid = 0;
    const auto d = check(*b, s);
    EXPECT_FALSE(d.allow);
    EXPECT_NE(d.message.find("covers only rule 'ops' for nobody"), std::string::npos) << d.message;
}

TEST_F(InterceptTest, SubCommandUnderAnotherRuleIsNotCovered) {
    auto ops = approval_rule(config::Scope::session);
    ops.match.commands = {"/usr/bin/sh*"};
    auto b = make(ops);
    approve_parent(*b);
    // /usr/bin/id falls under the implicit default rule, not 'ops'
    const auto d = check(*b, sub({"/usr/bin/id"}, m_request, m_grant));
    EXPECT_FALSE(d.allow);
    EXPECT_NE(d.message.find("it falls under rule 'default'"), std::string::npos) << d.message;
}

TEST_F(InterceptTest, RuleRequiringInterceptDeniesASudoWithoutIt) {
    auto rule = approval_rule(config::Scope::session);
    rule.intercept = true;
    auto b = make(rule);
    {
        Recorder r;
        auto s = session({"/usr/bin/sh"});
        s.request.intercept = Intercept::off;
        ASSERT_EQ(b->begin_check(s, r), broker::Step::done);
        ASSERT_TRUE(r.decision);
        EXPECT_FALSE(r.decision->allow);
        EXPECT_NE(r.decision->message.find("enable 'Defaults intercept'"), std::string::npos) << r.decision->message;
    }
    {
        Recorder r;
        auto s = session({"/usr/bin/sh"});
        s.request.intercept = Intercept::unknown; // an older plugin: fail closed, and say why
        ASSERT_EQ(b->begin_check(s, r), broker::Step::done);
        ASSERT_TRUE(r.decision);
        EXPECT_FALSE(r.decision->allow);
        EXPECT_NE(r.decision->message.find("does not report it"), std::string::npos) << r.decision->message;
    }
    EXPECT_EQ(b->pending_count(), 0u) << "nobody is asked to approve what would be denied";
    {
        Recorder r;
        auto s = session({"/usr/bin/sh"}); // intercept on
        EXPECT_EQ(b->begin_check(s, r), broker::Step::waiting);
    }
}

TEST_F(InterceptTest, BreakGlassSubCommandsPassOnlyUnderBreakGlassConditions) {
    auto b = make(approval_rule(config::Scope::session), "nogroup"); // nobody's primary group
    auto s = sub({"/usr/bin/id"}, "", "");
    s.request.break_glass_reason = "payments down, INC-4411";
    const auto d = check(*b, s);
    EXPECT_TRUE(d.allow);
    EXPECT_EQ(d.outcome, msg::Outcome::break_glass);
    EXPECT_EQ(intercepted_lines_with("\"why\":\"break_glass\""), 1u);
    s.request.break_glass_reason = "short"; // below min_reason_length
    EXPECT_FALSE(check(*b, s).allow);
    auto other = make(approval_rule(config::Scope::session), "wheel-breakglass"); // nobody is not in it
    s.request.break_glass_reason = "payments down, INC-4411";
    EXPECT_FALSE(check(*other, s).allow);
}

TEST_F(InterceptTest, AnAllowRuleAdmitsTheProgramNotCodeItsEnvironmentLoads) {
    auto b = make(approval_rule(config::Scope::session));
    approve_parent(*b);
    auto s = sub({"/usr/bin/true"}, m_request, m_grant);
    s.request.run_env = {"PATH=/usr/bin", "LD_PRELOAD=/tmp/x.so", "PAGER=less"};
    const auto d = check(*b, s);
    EXPECT_FALSE(d.allow);
    EXPECT_NE(d.message.find("its environment sets LD_PRELOAD, which a sudo of its own would remove"),
              std::string::npos)
        << d.message;
    EXPECT_EQ(intercepted_lines_with("\"why\":\"code_loading_env\""), 1u);
    // sudo's own preload of its intercept library (intercept_type=dso) is not the user's
    s.request.run_env = {"LD_PRELOAD=/usr/libexec/sudo/sudo_intercept.so", "PAGER=less", "EDITOR=vi"};
    EXPECT_TRUE(check(*b, s).allow);
    s.request.run_env = {"LD_PRELOAD=/usr/libexec/sudo/sudo_intercept.so:/tmp/x.so"};
    EXPECT_FALSE(check(*b, s).allow);
    s.request.run_env = {"PYTHONPATH=/tmp"};
    EXPECT_FALSE(check(*b, s).allow);
    s.request.run_env.clear();
    s.request.env_truncated = true; // what cannot be seen is not allowed
    EXPECT_FALSE(check(*b, s).allow);
}

TEST_F(InterceptTest, AGrantedSubCommandIsRecordedUnderTheGrantsRequestNotTheClaimedOne) {
    auto b = make(approval_rule(config::Scope::session));
    approve_parent(*b);
    EXPECT_TRUE(check(*b, sub({"/usr/bin/id"}, "R-CLAIMED000", m_grant)).allow);
    EXPECT_EQ(intercepted_lines_with("\"request_id\":\"" + m_request + "\""), 1u);
    EXPECT_EQ(intercepted_lines_with("\"request_id\":\"R-CLAIMED000\""), 0u);
}

TEST_F(InterceptTest, InterceptThatCanBeSlippedPastDoesNotSatisfyARuleRequiringIt) {
    auto rule = approval_rule(config::Scope::session);
    rule.intercept = true;
    auto b = make(rule);
    const std::pair<const char*, const char*> limits[] = {
        {"dso", "intercept_type=trace"}, {"no_verify", "'!intercept_verify'"}, {"traced", "being traced"}};
    for (const auto& [limit, says] : limits) {
        Recorder r;
        auto s = session({"/usr/bin/sh"});
        s.request.intercept_limit = limit;
        ASSERT_EQ(b->begin_check(s, r), broker::Step::done) << limit;
        ASSERT_TRUE(r.decision);
        EXPECT_FALSE(r.decision->allow) << limit;
        EXPECT_NE(r.decision->message.find(says), std::string::npos) << r.decision->message;
    }
    EXPECT_EQ(b->pending_count(), 0u);
}

TEST(InterceptWire, SubCommandFieldsRoundTripAndAbsentInterceptIsUnknown) {
    msg::CheckRequest r;
    r.user = "alice";
    r.uid = 2001;
    r.intercept = Intercept::on;
    r.intercepted = true;
    r.parent_request_id = "R-AAAAAAAAAA";
    r.parent_grant_id = "G-BBBBBBBBBB";
    const auto back = msg::check_from_json(msg::to_json(r));
    EXPECT_EQ(back.intercept, Intercept::on);
    EXPECT_TRUE(back.intercepted);
    EXPECT_EQ(back.parent_request_id, "R-AAAAAAAAAA");
    EXPECT_EQ(back.parent_grant_id, "G-BBBBBBBBBB");
    r.intercept = Intercept::off;
    EXPECT_EQ(msg::check_from_json(msg::to_json(r)).intercept, Intercept::off);
    auto j = msg::to_json(r);
    j.erase("intercept");
    EXPECT_EQ(msg::check_from_json(j).intercept, Intercept::unknown);
    j["intercept"] = "yes";
    EXPECT_THROW(msg::check_from_json(j), Error);
    j["intercept"] = true;
    j["intercept_limit"] = "dso";
    EXPECT_EQ(msg::check_from_json(j).intercept_limit, "dso");
    j["intercept_limit"] = "none-of-these";
    EXPECT_THROW(msg::check_from_json(j), Error);
    j.erase("intercept_limit");
    j["kind"] = "login";
    EXPECT_THROW(msg::check_from_json(j), Error) << "a login is never a sub-command";
}

} // namespace
