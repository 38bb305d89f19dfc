// Unit tests of server/service/protocol and policy: the checks a host's request body must
// pass at the server (docs/protocol.md §4), wait (§5), cancel (§6), the status body (§5.1),
// and the approver policy (raise, never lower).
#include "server/service/policy.hpp"
#include "server/service/protocol.hpp"

#include <chrono>
#include <optional>

#include "lib/time_windows.hpp"
#include "server/config/config.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace {

using jitgate::server::protocol::check_cancel;
using jitgate::server::protocol::check_filed;
using jitgate::server::protocol::is_host_name;
using jitgate::server::protocol::parse_wait;
using Json = nlohmann::json;

// The example request of docs/protocol.md §4.
Json example() {
    return Json::parse(R"({
  "protocol": 1, "id": "R-7F3K9Q", "nonce": "q1xJr0b3c8Rk6fYgZ0HkK5P4n2mW9sVtLqE1dA7uC3o",
  "host": "pay-db-01", "host_environment": "production", "host_tags": ["finance"],
  "requester": {"user": "alice", "uid": 2001, "login_uid": 2001, "login_user": "alice"},
  "account": {"user": "alice", "uid": 2001}, "kind": "sudo", "scope": "command",
  "action": {"command": "/usr/bin/systemctl", "argv": ["/usr/bin/systemctl", "restart", "nginx"],
    "display": "/usr/bin/systemctl restart nginx", "runas": "root", "runas_group": "root",
    "cwd": "/home/alice", "chroot": "", "program": "/usr/bin/systemctl", "env": [], "env_code_loading": [],
    "tty": "/dev/pts/3", "service": "", "remote_host": "",
    "cmd_sha256": "7b9c9c6941391da209129e4c89d8a4bb2665a33870a965fafa307678db3d732b"},
  "reason": "restart after config change", "ticket": "CHG0001234", "rule": "finance",
  "approvals_needed": 2, "approver_groups": ["sox-approvers"], "ttl_s": 900, "timeout_s": 1800})");
}

std::string error_of(const Json& body) {
    const auto check = check_filed(body.dump());
    EXPECT_FALSE(check.filed.has_value()) << body.dump();
    return check.error;
}

TEST(ServerProtocol, TheDocumentedExampleIsValid) {
    const auto check = check_filed(example().dump());
    ASSERT_TRUE(check.filed.has_value()) << check.error;
    EXPECT_EQ(check.filed->host, "pay-db-01");
    EXPECT_EQ(check.filed->requester, "alice");
    EXPECT_EQ(check.filed->requester_login, "alice");
    EXPECT_EQ(check.filed->approvals_needed, 2);
    EXPECT_EQ(check.filed->tags, std::vector<std::string>{"finance"});
}

TEST(ServerProtocol, CanonicalTextIgnoresMemberOrderAndSpaces) {
    const std::string a = check_filed(example().dump()).filed->canonical;
    const std::string b = check_filed(example().dump(4)).filed->canonical;
    EXPECT_EQ(a, b);
    Json other = example();
    other["reason"] = "another reason";
    EXPECT_NE(a, check_filed(other.dump()).filed->canonical);
}

TEST(ServerProtocol, DuplicateMembersAreRefused) {
    std::string text = example().dump();
    text.insert(1, R"("host":"other-host",)");
    EXPECT_NE(check_filed(text).error.find("duplicate member"), std::string::npos);
}

TEST(ServerProtocol, EveryMemberIsRequired) {
    for (const char* name :
         {"protocol", "id", "nonce", "host", "host_environment", "host_tags", "requester", "account", "kind", "scope",
          "action", "reason", "ticket", "rule", "approvals_needed", "approver_groups", "ttl_s", "timeout_s"}) {
        Json body = example();
        body.erase(name);
        EXPECT_NE(error_of(body).find(std::string("\"") + name + "\" is missing"), std::string::npos) << name;
    }
    Json body = example();
    body["action"].erase("cmd_sha256");
    EXPECT_NE(error_of(body).find("action.cmd_sha256"), std::string::npos);
}

TEST(ServerProtocol, TypesAndFormsAreStrict) {
    const std::vector<std::pair<std::string, Json>> bad = {
        {"/protocol", 2},
        {"/protocol", "1"},
        {"/id", "R-7f3k9q"},
        {"/id", "R-123"},
        {"/id", "X-7F3K9Q"},
        {"/nonce", "short"},
        {"/nonce", "q1xJr0b3c8Rk6fYgZ0HkK5P4n2mW9sVtLqE1dA7uC3o="},
        {"/host", ""},
        {"/host", "pay\ndb"},
        {"/host", 5},
        {"/kind", "su"},
        {"/scope", "login"},
        {"/approvals_needed", 0},
        {"/approvals_needed", 6},
        {"/approvals_needed", 2.0},
        {"/ttl_s", 0},
        {"/ttl_s", "900"},
        {"/requester/user", ""},
        {"/requester/uid", -1},
        {"/action/argv", Json::array({1})},
        {"/action/argv", Json::array({Json{{"b64", "not base64!"}}})},
        {"/action/cmd_sha256", "7B9C9C6941391DA209129E4C89D8A4BB2665A33870A965FAFA307678DB3D732B"},
        {"/action/cmd_sha256", ""},
        {"/host_tags", Json::array({""})},
        {"/approver_groups", "sox-approvers"},
        {"/reason", std::string("a\0b", 3)},
    };
    for (const auto& [pointer, value] : bad) {
        Json body = example();
        body[Json::json_pointer(pointer)] = value;
        EXPECT_FALSE(error_of(body).empty()) << pointer << " = " << value.dump();
    }
}

// A certificate can name a host "pay db" or "pay/db" (a CN is free text), but such a request's
// page could not be opened (/r/{host}/{id} takes [A-Za-z0-9._-] only): it is refused at filing.
// So is "." or a name with ".." (all in that alphabet): the page's URL would hold a dot segment,
// which a browser rewrites and the HTTP layer refuses.
TEST(ServerProtocol, HostNamesOutsideTheUrlAlphabetAreRefusedWhenFiled) {
    for (const std::string& host :
         std::vector<std::string>{"pay db", "pay/db", "pay%2Fdb", "pay-db-01\u00e9", "caf\xc3\xa9", "a:b",
                                  "*.example.com", std::string(254, 'a'), ".", "..", "pay..db", "pay-db.."}) {
        Json body = example();
        body["host"] = host;
        EXPECT_NE(error_of(body).find("member \"host\" is not a host name"), std::string::npos) << host;
    }
    for (const std::string& host :
         std::vector<std::string>{"pay-db-01", "pay_db.example.com", "A1", std::string(253, 'a'), "pay-db.", ".pay"}) {
        Json body = example();
        body["host"] = host;
        EXPECT_TRUE(check_filed(body.dump()).filed.has_value()) << host;
        EXPECT_TRUE(is_host_name(host));
    }
}

TEST(ServerProtocol, OnlyTheThreeKindScopePairs) {
    Json body = example();
    body["scope"] = "session";
    body["action"]["cmd_sha256"] = "";
    EXPECT_TRUE(check_filed(body.dump()).filed.has_value());
    body["scope"] = "session";
    body["action"]["cmd_sha256"] = example()["action"]["cmd_sha256"];
    EXPECT_NE(error_of(body).find("must be empty for scope session"), std::string::npos);
    body = example();
    body["kind"] = "login";
    body["scope"] = "command";
    EXPECT_NE(error_of(body).find("is not one of"), std::string::npos);
}

TEST(ServerProtocol, NotJsonOrNotAnObject) {
    EXPECT_EQ(check_filed("{").error, "the body is not JSON");
    EXPECT_EQ(check_filed("[1]").error, "the body is not a JSON object");
    EXPECT_EQ(check_filed(std::string(40, '[') + std::string(40, ']')).error.find("nests deeper"),
              std::string("the body ").size());
}

TEST(ServerProtocol, Wait) {
    EXPECT_EQ(parse_wait(std::nullopt), 0);
    EXPECT_EQ(parse_wait("25"), 25);
    EXPECT_EQ(parse_wait("600"), 60);
    EXPECT_EQ(parse_wait("-3"), 0);
    for (const char* bad : {"", "25.0", "25s", " 25", "0x10", "99999999999999999999999"})
        EXPECT_FALSE(parse_wait(std::string(bad)).has_value()) << bad;
}

TEST(ServerProtocol, Cancel) {
    EXPECT_EQ(check_cancel(R"({"protocol":1,"reason":"timeout"})"), "timeout");
    EXPECT_EQ(check_cancel(R"({"protocol":1,"reason":"shutdown","extra":true})"), "shutdown");
    EXPECT_EQ(check_cancel(R"({"protocol":1,"reason":"odd"})")->rfind("client_gone", 0), 0u);
    EXPECT_FALSE(check_cancel(R"({"protocol":2,"reason":"timeout"})"));
    EXPECT_FALSE(check_cancel(R"({"protocol":1})"));
    EXPECT_FALSE(check_cancel(R"({"protocol":1,"reason":5})"));
    EXPECT_FALSE(check_cancel("nope"));
}

TEST(ServerProtocol, StatusBodies) {
    jitgate::server::store::Request r;
    r.id = "R-7F3K9Q";
    r.approvals_needed = 2;
    r.approver_groups = {"sox-approvers"};
    r.expires_at = 1795516200;
    Json j = Json::parse(jitgate::server::protocol::status_json(r, "https://a.example/r/h/R-7F3K9Q"));
    EXPECT_EQ(j["protocol"], 1);
    EXPECT_EQ(j["status"], "pending");
    EXPECT_EQ(j["approve_url"], "https://a.example/r/h/R-7F3K9Q");
    EXPECT_EQ(j["message"], "Waiting for 2 approvals");
    EXPECT_EQ(j["expires_at"], "2026-11-24T10:30:00Z");
    r.status = jitgate::server::store::Status::approved;
    r.grant = "a.b.c";
    r.approvals = {{"bob", "", "", "", "web", 0}, {"carol", "", "", "", "web", 0}};
    j = Json::parse(jitgate::server::protocol::status_json(r, "x"));
    EXPECT_EQ(j["grant"], "a.b.c");
    EXPECT_EQ(j["approvers"], Json::array({"bob", "carol"}));
    EXPECT_FALSE(j.contains("approve_url"));
    r.status = jitgate::server::store::Status::denied;
    r.decided_by = "bob";
    r.decision_reason = "not now";
    j = Json::parse(jitgate::server::protocol::status_json(r, "x"));
    EXPECT_EQ(j["denied_by"], "bob");
    EXPECT_EQ(j["reason"], "not now");
    EXPECT_FALSE(j.contains("grant"));
}

// A revoked grant is never handed out again: the status is final ("cancelled", revoked: true),
// without the grant, with who and why (cut at a UTF-8 boundary); every host denies on it.
TEST(ServerProtocol, RevokedRequestHasNoGrant) {
    jitgate::server::store::Request r;
    r.id = "R-7F3K9Q";
    r.status = jitgate::server::store::Status::approved;
    r.grant = "a.b.c";
    jitgate::server::store::Revocation v;
    v.revoked_by = "carol";
    v.reason = std::string(255, 'x') + "\xc3\xa9" + std::string(100, 'y'); // an é across byte 256
    Json j = Json::parse(jitgate::server::protocol::status_json(r, "x", &v));
    EXPECT_EQ(j["status"], "cancelled") << "no new status within v1 (§10)";
    EXPECT_EQ(j["revoked"], true);
    EXPECT_EQ(j["id"], "R-7F3K9Q");
    EXPECT_FALSE(j.contains("grant"));
    EXPECT_FALSE(j.contains("approvers"));
    EXPECT_EQ(j["revoked_by"], "carol");
    EXPECT_EQ(j["reason"], "revoked at the service by carol: " + std::string(255, 'x'));
    v.reason.clear();
    j = Json::parse(jitgate::server::protocol::status_json(r, "x", &v));
    EXPECT_EQ(j["reason"], "revoked at the service by carol");
    EXPECT_EQ(jitgate::server::protocol::cut_reason("short"), "short");
    // Only an approved request is ever answered as revoked.
    r.status = jitgate::server::store::Status::denied;
    j = Json::parse(jitgate::server::protocol::status_json(r, "x", &v));
    EXPECT_EQ(j["status"], "denied");
}

// §12: a page never outgrows what a host accepts (64 KiB), however the reasons look: it is cut
// by size (at least one entry), each reason cut to 256 bytes; the cursor then names the last
// entry sent, so nothing is skipped; a whole read ends at `last`.
TEST(ServerProtocol, RevocationPagesAreCutBySizeWithoutSkipping) {
    using jitgate::server::protocol::revocations_json;
    std::vector<jitgate::server::store::Revocation> rows;
    for (int i = 1; i <= 100; ++i) {
        jitgate::server::store::Revocation r;
        r.seq = i * 2;
        r.host = "web-01";
        r.request_id = "R-" + std::to_string(i);
        r.grant_id = "G-" + std::to_string(i);
        r.revoked_by = "carol";
        r.reason = std::string(2048, '"'); // escaping doubles it before the cut
        r.revoked_at = 1795514650;
        rows.push_back(r);
    }
    std::string body = revocations_json(rows, 500, 100);
    EXPECT_LE(body.size(), jitgate::server::protocol::k_max_revocations_body);
    Json j = Json::parse(body);
    const auto& list = j["revocations"];
    ASSERT_GT(list.size(), 1u);
    ASSERT_LT(list.size(), 100u);
    EXPECT_EQ(j["cursor"], list.back()["seq"]) << "cut by size: the cursor is the last entry sent";
    EXPECT_EQ(list[0]["reason"].get<std::string>().size(), 256u);
    // One entry alone is always sent, even over the limit.
    j = Json::parse(revocations_json(rows, 500, 100, 10));
    EXPECT_EQ(j["revocations"].size(), 1u);
    EXPECT_EQ(j["cursor"], 2);
    // A short read, all of it sent: the cursor is `last` (the newest seq of the hosts).
    rows.resize(3);
    j = Json::parse(revocations_json(rows, 500, 100));
    EXPECT_EQ(j["revocations"].size(), 3u);
    EXPECT_EQ(j["cursor"], 500);
    // A read cut by its limit: the cursor is the last row's seq (more may follow).
    j = Json::parse(revocations_json(rows, 500, 3));
    EXPECT_EQ(j["cursor"], 6);
    // Nothing: the cursor is `last`.
    j = Json::parse(revocations_json({}, 500, 100));
    EXPECT_EQ(j["cursor"], 500);
    EXPECT_TRUE(j["revocations"].empty());
}

TEST(ServerProtocol, RevokeReasonsAreOneLineOfText) {
    using jitgate::server::protocol::revoke_reason_problem;
    EXPECT_FALSE(revoke_reason_problem("", 2048));
    EXPECT_FALSE(revoke_reason_problem("wrong ticket \xc3\xa9", 2048));
    for (const std::string& bad :
         {std::string("a\nb"), std::string("a\tb"), std::string("\x1b[2J"), std::string("a\x7f"),
          std::string("a\xc2\x9b"), std::string("a\0b", 3), std::string("\xff")})
        EXPECT_TRUE(revoke_reason_problem(bad, 2048)) << bad;
    EXPECT_TRUE(revoke_reason_problem(std::string(2049, 'x'), 2048));
    EXPECT_NE(revoke_reason_problem("a\nb", 2048)->find("control characters"), std::string::npos);
}

TEST(ServerPolicy, RaisesNeverLowersAndUnionsGroups) {
    using jitgate::server::service::apply_policy;
    jitgate::server::config::PolicyEntry finance;
    finance.name = "finance";
    finance.hosts = {"pay-*"};
    finance.tags = {"finance"};
    finance.approver_groups = {"sox-approvers"};
    finance.min_approvals = 2;
    jitgate::server::config::PolicyEntry prod;
    prod.name = "prod";
    prod.environments = {"production"};
    prod.approver_groups = {"sre"};
    prod.min_approvals = 1;
    jitgate::server::config::Config config;
    config.policy = {finance, prod};
    const auto apply = [&config](const jitgate::server::service::PolicyInput& input) {
        return apply_policy(config, input, std::chrono::system_clock::now());
    };

    auto d = apply({"pay-db-01", "production", {"finance", "pci"}, "r", 1});
    EXPECT_TRUE(d.covered);
    EXPECT_EQ(d.approvals_needed, 2);
    EXPECT_EQ(d.approver_groups, (std::vector<std::string>{"sox-approvers", "sre"}));
    d = apply({"pay-db-01", "production", {"finance"}, "r", 3});
    EXPECT_EQ(d.approvals_needed, 3) << "the host's 3 is never lowered";
    d = apply({"pay-db-01", "staging", {"pci"}, "r", 1});
    EXPECT_FALSE(d.covered) << "finance needs the tag, prod the environment";
    d = apply({"web-01", "production", {}, "r", 1});
    EXPECT_EQ(d.approver_groups, std::vector<std::string>{"sre"});
}

// The server's policy in time: business hours (Berlin), a dated freeze, DST not in the way.
class ServerPolicyWindows : public ::testing::Test {
protected:
    // A server config of the fixed server, hosts and signing parts and `windows_and_policy`.
    static jitgate::server::config::Config config_with(const std::string& windows_and_policy) {
        const std::string yaml = R"(server: {name: approvals.example.com, public_url: "https://approvals.example.com"}
hosts: {cert: /etc/jitgate-server/tls/server.pem, key: /etc/jitgate-server/tls/server.key,
        client_ca: /etc/jitgate-server/tls/hosts-ca.pem}
signing: {keys: [{kid: k1, private_key: /etc/jitgate-server/keys/k1.key}]}
)" + windows_and_policy;
        const auto result = jitgate::server::config::parse(yaml, "test.yaml");
        for (const auto& p : result.problems) ADD_FAILURE() << p.to_string();
        return result.config;
    }
    void SetUp() override {
        m_config = config_with(R"(windows:
  business-hours:
    timezone: Europe/Berlin
    weekly: [{days: [mon, tue, wed, thu, fri], from: "08:00", to: "18:00"}]
  q4-freeze:
    timezone: Europe/Berlin
    dates: [{from: "2026-12-20T00:00", to: "2027-01-04T00:00", label: quarter-end close}]
policy:
  - {name: finance, tags: [finance], approver_groups: [sox-approvers]}
  - {name: after-hours, tags: [finance], unless: {window: business-hours}, approver_groups: [change-board],
     min_approvals: 2}
  - {name: freeze, tags: [finance], when: {window: [q4-freeze]}, deny: true}
)");
    }
    jitgate::server::service::PolicyDecision at(const std::string& utc) const {
        const auto t = jitgate::windows::parse_rfc3339(utc);
        EXPECT_TRUE(t.has_value()) << utc;
        return jitgate::server::service::apply_policy(
            m_config, {"pay-db-01", "production", {"finance"}, "r", 1},
            std::chrono::system_clock::time_point(std::chrono::seconds(t.value_or(0))));
    }
    jitgate::server::config::Config m_config;
};

TEST_F(ServerPolicyWindows, BusinessHoursNeedOneApprovalAndEveningsTheChangeBoard) {
    // Wednesday 2026-11-25, 10:00 in Berlin (UTC+1).
    auto d = at("2026-11-25T09:00:00Z");
    EXPECT_TRUE(d.covered);
    EXPECT_EQ(d.approvals_needed, 1);
    EXPECT_EQ(d.approver_groups, std::vector<std::string>{"sox-approvers"});
    EXPECT_TRUE(d.denied_by.empty());
    // 18:00 Berlin is outside (the end is exclusive): two approvals, the change board may too.
    d = at("2026-11-25T17:00:00Z");
    EXPECT_EQ(d.approvals_needed, 2);
    EXPECT_EQ(d.approver_groups, (std::vector<std::string>{"change-board", "sox-approvers"}));
    EXPECT_EQ(d.entries, (std::vector<std::string>{"finance", "after-hours"}));
    // In summer time (UTC+2) 08:00 Berlin is 06:00Z: inside, by the wall clock.
    EXPECT_EQ(at("2026-07-01T06:00:00Z").approvals_needed, 1);
    EXPECT_EQ(at("2026-07-01T05:59:59Z").approvals_needed, 2);
}

TEST_F(ServerPolicyWindows, AFreezeRefusesAndSaysWhichWindow) {
    // 2026-12-20T00:00 Berlin is 2026-12-19T23:00Z: the second before is not frozen.
    EXPECT_TRUE(at("2026-12-19T22:59:59Z").denied_by.empty());
    const auto d = at("2026-12-19T23:00:00Z");
    EXPECT_EQ(d.denied_by, "policy 'freeze' (window q4-freeze (2026-12-20T00:00 to 2027-01-04T00:00 Europe/Berlin, "
                           "quarter-end close))");
    EXPECT_EQ(d.windows, std::vector<std::string>{"q4-freeze (2026-12-20T00:00 to 2027-01-04T00:00 Europe/Berlin, "
                                                  "quarter-end close)"});
    EXPECT_TRUE(at("2027-01-03T23:00:00Z").denied_by.empty()) << "the end is exclusive";
}

TEST_F(ServerPolicyWindows, AnApprovalIsJudgedByThePolicyInForceNow) {
    using jitgate::server::service::FiledPolicy;
    using jitgate::server::service::policy_changed;
    const std::vector<std::string> sox{"sox-approvers"}, board{"change-board"};
    const FiledPolicy morning{1, sox, false};
    const FiledPolicy evening{2, {"change-board", "sox-approvers"}, false};
    // Filed on Wednesday morning with one approval needed.
    EXPECT_EQ(policy_changed(morning, at("2026-11-25T09:30:00Z"), sox), std::nullopt);
    // The evening began while it waited: two are needed now.
    const auto more = policy_changed(morning, at("2026-11-25T19:00:00Z"), sox);
    ASSERT_TRUE(more.has_value());
    EXPECT_NE(more->find("now needs 2 approvals"), std::string::npos) << *more;
    // Filed in the evening (two needed) and approved in the evening by the change board: fine.
    EXPECT_EQ(policy_changed(evening, at("2026-11-25T19:00:00Z"), board), std::nullopt);
    // The next morning the change board may no longer decide it: a board approval given in the
    // evening would count under a policy that no longer allows it, whoever approves now.
    const auto groups = policy_changed(evening, at("2026-11-26T09:30:00Z"), sox);
    ASSERT_TRUE(groups.has_value());
    EXPECT_NE(groups->find("'change-board' may not decide it now"), std::string::npos) << *groups;
    // The freeze began: refused, whoever approves.
    const auto frozen = policy_changed(evening, at("2026-12-21T12:00:00Z"), board);
    ASSERT_TRUE(frozen.has_value());
    EXPECT_NE(frozen->find("refused now by policy 'freeze'"), std::string::npos) << *frozen;
}

TEST_F(ServerPolicyWindows, ATicketCheckThatAppliesOnlyNowRefusesTheApproval) {
    using jitgate::server::service::FiledPolicy;
    m_config.policy[1].ticket_check = true; // after-hours asks for the ticket check
    const std::vector<std::string> sox{"sox-approvers"};
    auto evening = at("2026-11-25T19:00:00Z");
    EXPECT_TRUE(evening.ticket_check);
    // Filed in the morning (no ticket check, two approvals anyway for the test): refused now.
    const auto why = jitgate::server::service::policy_changed(FiledPolicy{2, {"change-board", "sox-approvers"}, false},
                                                              evening, sox);
    ASSERT_TRUE(why.has_value());
    EXPECT_NE(why->find("ticket check"), std::string::npos) << *why;
    EXPECT_EQ(
        jitgate::server::service::policy_changed(FiledPolicy{2, {"change-board", "sox-approvers"}, true}, evening, sox),
        std::nullopt);
}

TEST_F(ServerPolicyWindows, AGrantSignedBeforeAKnownFreezeEndsWhenItBegins) {
    using jitgate::server::service::next_deny_start;
    const auto t = [](const char* utc) { return *jitgate::windows::parse_rfc3339(utc); };
    const jitgate::server::service::PolicyInput finance{"pay-db-01", "production", {"finance"}, "r", 1};
    const auto before = t("2026-12-19T22:00:00Z");
    const auto next = next_deny_start(m_config, finance, before, before + 8 * 3600);
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(next->at, t("2026-12-19T23:00:00Z"));
    EXPECT_EQ(next->what, "policy 'freeze' from 2026-12-19T23:00:00Z (window q4-freeze (2026-12-20T00:00 to "
                          "2027-01-04T00:00 Europe/Berlin, quarter-end close))");
    // A grant that ends before the freeze is not cut short.
    EXPECT_FALSE(next_deny_start(m_config, finance, before, t("2026-12-19T22:59:59Z")));
    // Inside the freeze nothing is signed (apply_policy refuses); a grant signed there anyway
    // (the freeze began between judging and signing) ends at once. After it, no later period
    // is known.
    const auto inside = t("2026-12-20T12:00:00Z");
    EXPECT_EQ(next_deny_start(m_config, finance, inside, inside + 3600)->at, inside);
    EXPECT_FALSE(next_deny_start(m_config, finance, t("2027-01-04T00:00:00Z"), t("2027-01-05T00:00:00Z")));
    // A host the freeze does not cover is not cut short.
    const jitgate::server::service::PolicyInput web{"web-01", "production", {}, "r", 1};
    EXPECT_FALSE(next_deny_start(m_config, web, before, before + 8 * 3600));
}

// A deny entry on weekly hours, or with `unless`, caps a grant as a dated freeze does: the
// first minute it applies, found by looking ahead over the grant's lifetime, across DST.
TEST_F(ServerPolicyWindows, WeeklyAndUnlessDenyEntriesEndAGrantWhenTheyBegin) {
    using jitgate::server::service::next_deny_start;
    const auto t = [](const char* utc) { return *jitgate::windows::parse_rfc3339(utc); };
    const jitgate::server::service::PolicyInput finance{"pay-db-01", "production", {"finance"}, "r", 1};
    // Weekly: no root on finance hosts in the nightly batch, 22:00-06:00 Berlin.
    const auto c = config_with(R"(windows:
  batch:
    timezone: Europe/Berlin
    weekly: [{days: [mon, tue, wed, thu, fri, sat, sun], from: "22:00", to: "06:00"}]
  business-hours:
    timezone: Europe/Berlin
    weekly: [{days: [mon, tue, wed, thu, fri], from: "08:00", to: "18:00"}]
policy:
  - {name: finance, tags: [finance], approver_groups: [sox-approvers]}
  - {name: nightly-batch, tags: [finance], when: {window: batch}, deny: true}
  - {name: office-only, hosts: ["pay-*"], unless: {window: business-hours}, deny: true}
)");
    // Wednesday 2026-11-25 16:30 Berlin (15:30Z), a 4 h grant: office-only applies at 18:00
    // Berlin (17:00Z), before the batch at 22:00.
    auto next = next_deny_start(c, finance, t("2026-11-25T15:30:00Z"), t("2026-11-25T19:30:00Z"));
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(next->at, t("2026-11-25T17:00:00Z"));
    EXPECT_EQ(next->what, "policy 'office-only' from 2026-11-25T17:00:00Z");
    // A host office-only does not cover: the batch window, 22:00 Berlin = 21:00Z in winter...
    const jitgate::server::service::PolicyInput other{"fin-01", "production", {"finance"}, "r", 1};
    next = next_deny_start(c, other, t("2026-11-25T15:30:00Z"), t("2026-11-25T23:30:00Z"));
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(next->at, t("2026-11-25T21:00:00Z"));
    EXPECT_NE(next->what.find("(window batch"), std::string::npos) << next->what;
    // ... and 20:00Z in summer (UTC+2).
    next = next_deny_start(c, other, t("2026-07-01T15:30:00Z"), t("2026-07-01T23:30:00Z"));
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(next->at, t("2026-07-01T20:00:00Z"));
    // Nothing applies within a grant that ends before 22:00 Berlin.
    EXPECT_FALSE(next_deny_start(c, other, t("2026-11-25T15:30:00Z"), t("2026-11-25T20:59:59Z")));
}

// The edges of the look-ahead: a span that starts in the hour the clocks skip, an `unless`
// period that ends on an odd second, and a window that cannot be evaluated (fail closed).
TEST_F(ServerPolicyWindows, TheLookAheadFindsSkippedHoursOddSecondsAndFailsClosed) {
    using jitgate::server::service::next_deny_start;
    const auto t = [](const char* utc) { return *jitgate::windows::parse_rfc3339(utc); };
    const jitgate::server::service::PolicyInput finance{"pay-db-01", "production", {"finance"}, "r", 1};
    auto c = config_with(R"(windows:
  early:
    timezone: Europe/Berlin
    weekly: [{days: [sun], from: "02:30", to: "04:00"}]
  migration:
    timezone: Europe/Berlin
    dates: [{from: "2026-11-25T10:00", to: "2026-11-25T11:17:23"}]
policy:
  - {name: finance, tags: [finance], approver_groups: [sox-approvers]}
  - {name: early-sunday, tags: [finance], when: {window: early}, deny: true}
  - {name: only-during-migration, hosts: ["pay-*"], unless: {window: migration}, deny: true}
)");
    // Sunday 2026-03-29: Berlin skips 02:00-03:00, so 02:30 never comes; the span holds from
    // 03:00 CEST, 01:00Z.
    const jitgate::server::service::PolicyInput fin{"fin-01", "production", {"finance"}, "r", 1};
    auto next = next_deny_start(c, fin, t("2026-03-29T00:10:00Z"), t("2026-03-29T03:00:00Z"));
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(next->at, t("2026-03-29T01:00:00Z"));
    // The migration period ends at 11:17:23 Berlin (10:17:23Z): from that second on the
    // `unless` no longer holds and the deny applies.
    next = next_deny_start(c, finance, t("2026-11-25T09:30:00Z"), t("2026-11-25T12:00:00Z"));
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(next->at, t("2026-11-25T10:17:23Z"));
    // A window that cannot be evaluated ends the grant at once.
    c.policy[1].when_windows = {"no-such-window"};
    next = next_deny_start(c, fin, t("2026-11-25T09:30:00Z"), t("2026-11-25T12:00:00Z"));
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(next->at, t("2026-11-25T09:30:00Z"));
    EXPECT_NE(next->what.find("cannot be evaluated"), std::string::npos) << next->what;
}

TEST_F(ServerPolicyWindows, AWindowThatCannotBeEvaluatedFailsClosed) {
    // A config built in code naming a window that does not exist (validate() would refuse it).
    m_config.policy[2].when_windows = {"no-such-window"};
    const auto d = at("2026-11-25T09:00:00Z");
    EXPECT_NE(d.error.find("no-such-window"), std::string::npos);
    EXPECT_FALSE(d.covered);
    const auto why = jitgate::server::service::policy_changed({1, {"sox-approvers"}, false}, d, {"sox-approvers"});
    ASSERT_TRUE(why.has_value());
    EXPECT_NE(why->find("cannot be evaluated"), std::string::npos);
}

} // namespace
