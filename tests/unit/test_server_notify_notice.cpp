// tests/unit/test_server_notify_notice.cpp — the notice bodies of server/notify/notice: the
// generic JSON body's fields, the Slack body's shape, and that hostile text can neither break
// the JSON nor form a Slack mention or link.
#include "server/config/config.hpp"
#include "server/notify/notice.hpp"

#include "jitgate/text.hpp"

#include <algorithm>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

using jitgate::server::notify::EventKind;
using jitgate::server::notify::RequestFacts;
using nlohmann::json;
namespace notify = jitgate::server::notify;

RequestFacts sample() {
    RequestFacts f;
    f.host = "db1.example.com";
    f.environment = "production";
    f.tags = {"finance", "sox"};
    f.id = "R-7F3K";
    f.requester = "alice";
    f.kind = "sudo";
    f.scope = "command";
    f.command = "systemctl restart postgresql";
    f.runas = "root";
    f.reason = "disk full";
    f.ticket = "CHG0001234";
    f.rule = "prod-sudo";
    f.approvals_needed = 2;
    f.approvers = {"bob"};
    f.expires_at = 1'800'000'000;
    f.link = notify::request_link("https://approvals.example.com/", f.host, f.id);
    return f;
}

// Every text a Slack body shows, concatenated: the fallback text and every block's texts.
std::string slack_texts(const json& body) {
    std::string all = body.at("text").get<std::string>() + "\n";
    for (const auto& block : body.at("blocks")) {
        if (block.contains("text")) all += block["text"]["text"].get<std::string>() + "\n";
        if (block.contains("fields"))
            for (const auto& field : block["fields"]) all += field["text"].get<std::string>() + "\n";
        if (block.contains("elements"))
            for (const auto& element : block["elements"])
                if (element.contains("text")) {
                    const auto& t = element["text"];
                    all += (t.is_string() ? t.get<std::string>() : t["text"].get<std::string>()) + "\n";
                }
    }
    return all;
}

TEST(NotifyNotice, EventTypesRoundTrip) {
    for (const EventKind kind : {EventKind::filed, EventKind::approval_added, EventKind::approved, EventKind::denied,
                                 EventKind::expired, EventKind::cancelled, EventKind::grant_signed})
        EXPECT_EQ(notify::event_from_type(notify::event_type(kind)), kind);
    EXPECT_EQ(notify::event_type(EventKind::denied), "request.denied");
    EXPECT_EQ(notify::event_type(EventKind::approval_added), "request.approval_added");
    EXPECT_EQ(notify::event_type(EventKind::grant_signed), "grant.signed");
    EXPECT_FALSE(notify::event_from_type("request.unknown").has_value());
}

TEST(NotifyNotice, LinkEncodesHostAndId) {
    EXPECT_EQ(notify::request_link("https://a.example/", "db1", "R-1"), "https://a.example/r/db1/R-1");
    EXPECT_EQ(notify::request_link("https://a.example", "h/../x", "a|b>c d"),
              "https://a.example/r/h%2F..%2Fx/a%7Cb%3Ec%20d");
    EXPECT_EQ(notify::url_encode("AZaz09-._~"), "AZaz09-._~");
    EXPECT_EQ(notify::url_encode("\xC3\xA9&?#"), "%C3%A9%26%3F%23");
}

TEST(NotifyNotice, Rfc3339) {
    EXPECT_EQ(notify::rfc3339(0), "1970-01-01T00:00:00Z");
    EXPECT_EQ(notify::rfc3339(1'800'000'000), "2027-01-15T08:00:00Z");
}

TEST(NotifyNotice, DeliveryIdsAreFreshHex) {
    const std::string a = notify::new_delivery_id();
    const std::string b = notify::new_delivery_id();
    EXPECT_EQ(a.size(), 32u);
    EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos) << a;
    EXPECT_NE(a, b);
}

TEST(NotifyNotice, JsonBodyHasEveryField) {
    const json body = json::parse(notify::json_body(EventKind::approved, sample(), "approvals", "d-1", 1'800'000'060));
    EXPECT_EQ(body["type"], "request.approved");
    EXPECT_EQ(body["delivery_id"], "d-1");
    EXPECT_EQ(body["occurred_at"], "2027-01-15T08:01:00Z");
    EXPECT_EQ(body["server"], "approvals");
    const json& r = body["request"];
    EXPECT_EQ(r["host"], "db1.example.com");
    EXPECT_EQ(r["environment"], "production");
    EXPECT_EQ(r["tags"], json::array({"finance", "sox"}));
    EXPECT_EQ(r["id"], "R-7F3K");
    EXPECT_EQ(r["requester"], "alice");
    EXPECT_EQ(r["account"], "");
    EXPECT_EQ(r["kind"], "sudo");
    EXPECT_EQ(r["scope"], "command");
    EXPECT_EQ(r["command"], "systemctl restart postgresql");
    EXPECT_EQ(r["runas"], "root");
    EXPECT_EQ(r["reason"], "disk full");
    EXPECT_EQ(r["ticket"], "CHG0001234");
    EXPECT_EQ(r["rule"], "prod-sudo");
    EXPECT_EQ(r["approvals_needed"], 2);
    EXPECT_EQ(r["approvals"], 1);
    EXPECT_EQ(r["approvers"], json::array({"bob"}));
    EXPECT_EQ(r["decided_by"], "");
    EXPECT_EQ(r["decision_reason"], "");
    EXPECT_EQ(r["grant_id"], "");
    EXPECT_EQ(r["expires_at"], "2027-01-15T08:00:00Z");
    EXPECT_EQ(r["link"], "https://approvals.example.com/r/db1.example.com/R-7F3K");
}

// Invalid UTF-8 and quotes in hostile text neither throw nor break the JSON text.
TEST(NotifyNotice, JsonBodySurvivesHostileText) {
    RequestFacts f = sample();
    f.reason = "\"},\"type\":\"request.approved\n\xFF\xFE";
    f.command = std::string("rm -rf /\0x", 10);
    const std::string text = notify::json_body(EventKind::filed, f, "s", "d", 1);
    const json body = json::parse(text);
    EXPECT_EQ(body["type"], "request.filed");
    const std::string reason = body["request"]["reason"];
    EXPECT_EQ(reason.rfind("\"},\"type\":\"request.approved\n", 0), 0u) << reason;
    EXPECT_TRUE(jitgate::text::is_valid_utf8(reason)) << "invalid UTF-8 went out as is";
    EXPECT_EQ(body["request"]["command"].get<std::string>().size(), 10u);
}

TEST(NotifyNotice, SlackBodyShape) {
    const json body = json::parse(notify::slack_body(EventKind::filed, sample(), "approvals"));
    ASSERT_TRUE(body.contains("text"));
    EXPECT_NE(body["text"].get<std::string>().find("Approval needed"), std::string::npos) << body["text"];
    EXPECT_EQ(body["unfurl_links"], false);
    EXPECT_EQ(body["unfurl_media"], false);
    const json& blocks = body["blocks"];
    ASSERT_EQ(blocks.size(), 4u) << blocks.dump();
    EXPECT_EQ(blocks[0]["type"], "section");
    EXPECT_EQ(blocks[0]["text"]["type"], "mrkdwn");
    EXPECT_NE(blocks[0]["text"]["text"].get<std::string>().find("`systemctl restart postgresql`"), std::string::npos);
    EXPECT_EQ(blocks[1]["type"], "section");
    EXPECT_LE(blocks[1]["fields"].size(), 10u);
    EXPECT_EQ(blocks[2]["type"], "actions");
    EXPECT_EQ(blocks[2]["elements"][0]["type"], "button");
    EXPECT_EQ(blocks[2]["elements"][0]["url"], "https://approvals.example.com/r/db1.example.com/R-7F3K");
    EXPECT_EQ(blocks[3]["type"], "context");
    const std::string texts = slack_texts(body);
    for (const char* expected :
         {"db1.example.com (production)", "alice", "root", "disk full", "CHG0001234", "1 of 2: bob", "prod-sudo",
          "2027-01-15T08:00:00Z", "<https://approvals.example.com/r/db1.example.com/R-7F3K|open>"})
        EXPECT_NE(texts.find(expected), std::string::npos) << expected << " not in\n" << texts;
}

// The service's own approval (docs/server.md, "Automatic approval"): no approver, and the
// message says who decided instead.
TEST(NotifyNotice, AnAutomaticApprovalSaysWhoDecided) {
    RequestFacts f = sample();
    f.approvers.clear();
    f.decided_by = "jitgate (auto: on_call)";
    const std::string text = slack_texts(json::parse(notify::slack_body(EventKind::approved, f, "s")));
    EXPECT_NE(text.find("*Approved automatically*"), std::string::npos) << text;
    EXPECT_NE(text.find("(by jitgate (auto: on_call))"), std::string::npos) << text;
    const json body = json::parse(notify::json_body(EventKind::approved, f, "s", "d-1", 1'796'032'800));
    EXPECT_EQ(body.at("request").at("decided_by"), "jitgate (auto: on_call)");
    EXPECT_EQ(body.at("request").at("approvers"), json::array());
}

TEST(NotifyNotice, SlackBodyPerEvent) {
    RequestFacts f = sample();
    f.decided_by = "carol";
    f.decision_reason = "not during the freeze";
    const std::string denied = slack_texts(json::parse(notify::slack_body(EventKind::denied, f, "s")));
    EXPECT_NE(denied.find("*Denied*"), std::string::npos) << denied;
    EXPECT_NE(denied.find("carol: not during the freeze"), std::string::npos) << denied;
    EXPECT_NE(slack_texts(json::parse(notify::slack_body(EventKind::approved, f, "s"))).find("*Approved*"),
              std::string::npos);
    EXPECT_NE(slack_texts(json::parse(notify::slack_body(EventKind::expired, f, "s"))).find("*Expired*"),
              std::string::npos);
    EXPECT_NE(slack_texts(json::parse(notify::slack_body(EventKind::cancelled, f, "s"))).find("*Cancelled*"),
              std::string::npos);
    const std::string added = slack_texts(json::parse(notify::slack_body(EventKind::approval_added, f, "s")));
    EXPECT_NE(added.find("*Approval added*"), std::string::npos) << added;
    EXPECT_NE(added.find("(1 of 2, by bob)"), std::string::npos) << added;
    f.grant_id = "G-6RQ46DWNRR";
    const std::string signed_ = slack_texts(json::parse(notify::slack_body(EventKind::grant_signed, f, "s")));
    EXPECT_NE(signed_.find("*Grant signed*"), std::string::npos) << signed_;
    EXPECT_NE(signed_.find("G-6RQ46DWNRR"), std::string::npos) << signed_;
}

// Regression guard for the Slack injection: a requester's reason, command, ticket or name can
// never become a mention (<!channel>, <@U1>) or a labelled link (<http://x|y>).
TEST(NotifyNotice, SlackBodyEscapesHostileText) {
    RequestFacts f = sample();
    f.reason = "<!channel> urgent <http://evil.example|https://approvals.example.com> & more";
    f.command = "echo <@U012AB3CD> `whoami` <!here>";
    f.ticket = "<!everyone>";
    f.requester = "mallory<!subteam^S1>";
    f.host = "db1>\n*fake*";
    f.id = "R-1|x>";
    f.approvers = {"<@U999>"};
    f.decided_by = "<!channel>";
    f.decision_reason = "@channel please";
    f.grant_id = "<!here>";
    for (const EventKind kind : {EventKind::filed, EventKind::approval_added, EventKind::approved, EventKind::denied,
                                 EventKind::expired, EventKind::cancelled, EventKind::grant_signed}) {
        const json body = json::parse(notify::slack_body(kind, f, "<!channel>"));
        const std::string texts = slack_texts(body);
        // The only '<' in any text is our own link to the request.
        const std::string own_link = "<" + f.link + "|open>";
        std::string rest = texts;
        for (std::size_t at; (at = rest.find(own_link)) != std::string::npos;) rest.erase(at, own_link.size());
        EXPECT_EQ(rest.find('<'), std::string::npos) << rest;
        EXPECT_EQ(rest.find('>'), std::string::npos) << rest;
        EXPECT_NE(texts.find("&lt;!channel&gt;"), std::string::npos) << texts;
        EXPECT_EQ(texts.find("@channel"), std::string::npos) << "a bare @channel survived: " << texts;
        // Control characters are shown, not obeyed: no newline from the host name.
        EXPECT_EQ(texts.find("db1&gt;\n"), std::string::npos) << texts;
        // The button's URL is ours, built from the encoded host and id.
        EXPECT_EQ(body["blocks"][2]["elements"][0]["url"], f.link);
    }
    const json filed = json::parse(notify::slack_body(EventKind::filed, f, "s"));
    const std::string top = filed["blocks"][0]["text"]["text"];
    const std::string fields = filed["blocks"][1]["fields"].dump();
    EXPECT_NE(fields.find("&lt;http://evil.example|"), std::string::npos) << fields;
    EXPECT_EQ(top.find("`whoami`"), std::string::npos) << "a backtick closed the command's code span: " << top;
}

TEST(NotifyNotice, SlackUserTextHelpers) {
    EXPECT_EQ(notify::slack_escape("a&b<c>d"), "a&amp;b&lt;c&gt;d");
    EXPECT_EQ(notify::slack_user_text("x@here", 100), "x@\xE2\x80\x8Bhere");
    EXPECT_EQ(notify::slack_user_text("line1\nline2", 100), "line1\\nline2");
    EXPECT_EQ(notify::slack_user_text(std::string(50, 'a'), 10), std::string(10, 'a') + "...");
}

TEST(NotifyNotice, NoticesForFollowTheWebhooksEvents) {
    jitgate::server::config::Webhook json_hook;
    json_hook.name = "siem";
    json_hook.format = "json";
    json_hook.events = {"request.filed", "request.denied"};
    jitgate::server::config::Webhook slack_hook;
    slack_hook.name = "chat";
    slack_hook.format = "slack";
    slack_hook.events = {"request.filed"};
    const std::vector hooks{json_hook, slack_hook};

    const auto filed = notify::notices_for(hooks, "s", EventKind::filed, sample(), 100);
    ASSERT_EQ(filed.size(), 2u);
    EXPECT_EQ(filed[0].target, "siem");
    EXPECT_EQ(json::parse(filed[0].body)["type"], "request.filed");
    EXPECT_EQ(json::parse(filed[0].body)["delivery_id"].get<std::string>().size(), 32u);
    EXPECT_EQ(filed[1].target, "chat");
    EXPECT_TRUE(json::parse(filed[1].body).contains("blocks"));

    const auto denied = notify::notices_for(hooks, "s", EventKind::denied, sample(), 100);
    ASSERT_EQ(denied.size(), 1u);
    EXPECT_EQ(denied[0].target, "siem");
    EXPECT_TRUE(notify::notices_for(hooks, "s", EventKind::approved, sample(), 100).empty());

    // Two notices of the same event get different delivery ids (each is its own delivery).
    const auto again = notify::notices_for(hooks, "s", EventKind::filed, sample(), 100);
    EXPECT_NE(json::parse(again[0].body)["delivery_id"], json::parse(filed[0].body)["delivery_id"]);
}

// A broken audit chain at ingest: a notice to each webhook that lists the type; the host's
// text stays inert in Slack.
TEST(NotifyNotice, ChainNoticesFollowTheWebhooksEvents) {
    jitgate::server::config::Webhook json_hook;
    json_hook.name = "siem";
    json_hook.format = "json";
    json_hook.events = {"audit.chain_gap", "audit.chain_fork"};
    jitgate::server::config::Webhook slack_hook;
    slack_hook.name = "chat";
    slack_hook.format = "slack";
    slack_hook.events = {"audit.chain_fork"};
    const std::vector hooks{json_hook, slack_hook};
    notify::ChainFacts gap{"audit.chain_gap", "fin-db-01", 5, "ev-5", "gap: seq 5 follows 2 (2 events missing)"};
    const auto gaps = notify::chain_notices_for(hooks, "approvals.test", gap, 100);
    ASSERT_EQ(gaps.size(), 1u);
    EXPECT_EQ(gaps[0].target, "siem");
    const json body = json::parse(gaps[0].body);
    EXPECT_EQ(body["type"], "audit.chain_gap");
    EXPECT_EQ(body["server"], "approvals.test");
    EXPECT_EQ(body["delivery_id"].get<std::string>().size(), 32u);
    EXPECT_EQ(body["chain"]["host"], "fin-db-01");
    EXPECT_EQ(body["chain"]["seq"], 5);
    EXPECT_EQ(body["chain"]["event_id"], "ev-5");
    EXPECT_EQ(body["chain"]["problem"], gap.problem);
    notify::ChainFacts fork{"audit.chain_fork", "fin-db-01", 3, "ev-3", "fork at seq 3 <!channel> @here"};
    const auto forks = notify::chain_notices_for(hooks, "approvals.test", fork, 100);
    ASSERT_EQ(forks.size(), 2u);
    EXPECT_EQ(forks[1].target, "chat");
    const std::string text = json::parse(forks[1].body)["text"];
    EXPECT_NE(text.find("fin-db-01"), std::string::npos) << text;
    EXPECT_EQ(text.find("<!channel>"), std::string::npos) << text;
    EXPECT_NE(text.find("&lt;!channel&gt;"), std::string::npos) << text;
    jitgate::server::config::Webhook quiet = json_hook;
    quiet.events = {"request.filed"};
    EXPECT_TRUE(notify::chain_notices_for({quiet}, "s", gap, 100).empty());
}

// An edited event resent (a 409) and a chain started over at seq 1 are webhook-able too (they
// were syslog-only, or not alerts at all); each says what happened in Slack.
TEST(NotifyNotice, EditedAndRestartedChainsAreNoticesToo) {
    jitgate::server::config::Webhook slack_hook;
    slack_hook.name = "chat";
    slack_hook.format = "slack";
    slack_hook.events = {"audit.chain_edited", "audit.chain_restarted"};
    const notify::ChainFacts edited{"audit.chain_edited", "fin-db-01", 2, "ev-2",
                                    "event ev-2 (seq 2) came again with other content (edited)"};
    const auto e = notify::chain_notices_for({slack_hook}, "approvals.test", edited, 100);
    ASSERT_EQ(e.size(), 1u);
    const std::string edited_text = json::parse(e[0].body)["text"];
    EXPECT_NE(edited_text.find("is broken (an event was edited)"), std::string::npos) << edited_text;
    const notify::ChainFacts restarted{"audit.chain_restarted", "fin-db-01", 1, "ev-9",
                                       "a new chain at seq 1 after seq 41"};
    const auto r = notify::chain_notices_for({slack_hook}, "approvals.test", restarted, 100);
    ASSERT_EQ(r.size(), 1u);
    const std::string restarted_text = json::parse(r[0].body)["text"];
    EXPECT_NE(restarted_text.find("started over at seq 1"), std::string::npos) << restarted_text;
    EXPECT_NE(restarted_text.find("after seq 41"), std::string::npos) << restarted_text;
    for (const std::string type : {"audit.chain_edited", "audit.chain_restarted"})
        EXPECT_NE(std::find(std::begin(jitgate::server::config::k_webhook_events),
                            std::end(jitgate::server::config::k_webhook_events), type),
                  std::end(jitgate::server::config::k_webhook_events))
            << type;
}

TEST(NotifyNotice, AnOverdueBreakGlassReviewGoesToTheHooksListingIt) {
    jitgate::server::config::Webhook json_hook;
    json_hook.name = "siem";
    json_hook.format = "json";
    json_hook.events = {"break_glass.review_overdue"};
    jitgate::server::config::Webhook slack_hook;
    slack_hook.name = "chat";
    slack_hook.format = "slack";
    slack_hook.events = {"break_glass.review_overdue"};
    jitgate::server::config::Webhook quiet = json_hook;
    quiet.name = "quiet";
    quiet.events = {"request.filed"};
    const notify::BreakGlassFacts facts{"fin-db-01",       "ev-9",
                                        "dave <!channel>", "2026-11-24T03:05:42.870Z",
                                        1795490440,        "https://approvals.test/audit/reviews/fin-db-01/ev-9"};
    const auto out = notify::break_glass_notices_for({json_hook, slack_hook, quiet}, "approvals.test", facts, 100);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].target, "siem");
    const json body = json::parse(out[0].body);
    EXPECT_EQ(body["type"], "break_glass.review_overdue");
    EXPECT_EQ(body["server"], "approvals.test");
    EXPECT_EQ(body["review"]["host"], "fin-db-01");
    EXPECT_EQ(body["review"]["event_id"], "ev-9");
    EXPECT_EQ(body["review"]["user"], "dave <!channel>");
    EXPECT_EQ(body["review"]["time"], "2026-11-24T03:05:42.870Z");
    EXPECT_EQ(body["review"]["due_at"], "2026-11-24T03:20:40Z");
    EXPECT_EQ(body["review"]["link"], facts.link);
    const std::string text = json::parse(out[1].body)["text"];
    EXPECT_NE(text.find("fin-db-01"), std::string::npos) << text;
    EXPECT_EQ(text.find("<!channel>"), std::string::npos) << text;
    EXPECT_NE(text.find(facts.link), std::string::npos) << text;
}

} // namespace
