// Unit tests of the typed decision outcome (common/messages): every outcome travels under its
// wire name and back, and a decision with a name we do not know is refused, never guessed at.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "jitgate/error.hpp"
#include "jitgate/messages.hpp"

using jitgate::msg::Json;
using jitgate::msg::Outcome;

namespace {
// Every enumerator with its name in docs/wire-protocol.md (and the two the broker adds for the
// approval service: cancelled, invalid_grant).
const std::pair<Outcome, const char*> k_all[] = {
    {Outcome::allowed_by_rule, "allowed_by_rule"},
    {Outcome::grant, "grant"},
    {Outcome::approved, "approved"},
    {Outcome::break_glass, "break_glass"},
    {Outcome::denied, "denied"},
    {Outcome::timeout, "timeout"},
    {Outcome::filed, "filed"},
    {Outcome::cancelled, "cancelled"},
    {Outcome::invalid_grant, "invalid_grant"},
    {Outcome::error, "error"},
};
} // namespace

TEST(Outcome, EveryOutcomeRoundTripsUnderItsWireName) {
    std::set<std::string> names;
    for (const auto& [outcome, name] : k_all) {
        EXPECT_STREQ(jitgate::msg::to_string(outcome), name);
        EXPECT_EQ(jitgate::msg::outcome_from_string(name), outcome) << name;
        names.insert(name);
    }
    EXPECT_EQ(names.size(), std::size(k_all)) << "two outcomes share a name";
}

TEST(Outcome, DecisionKeepsItsWireFormat) {
    jitgate::msg::Decision d;
    d.allow = true;
    d.outcome = Outcome::allowed_by_rule;
    d.rule = "ops";
    const Json j = jitgate::msg::to_json(d);
    EXPECT_EQ(j.at("outcome"), "allowed_by_rule");
    EXPECT_EQ(j.at("type"), "decision");
    const auto back = jitgate::msg::decision_from_json(j);
    EXPECT_TRUE(back.allow);
    EXPECT_EQ(back.outcome, Outcome::allowed_by_rule);
    EXPECT_EQ(back.rule, "ops");
}

TEST(Outcome, UnknownOutcomeIsAProtocolError) {
    for (const char* bad : {"allowed", "ALLOWED_BY_RULE", "grant ", "ok", "\x1b[31m"}) {
        try {
            (void)jitgate::msg::outcome_from_string(bad);
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const jitgate::Error& e) {
            EXPECT_EQ(e.code(), jitgate::ErrorCode::protocol);
        }
        EXPECT_THROW(jitgate::msg::decision_from_json(Json{{"allow", true}, {"outcome", bad}}), jitgate::Error) << bad;
    }
    EXPECT_THROW(jitgate::msg::decision_from_json(Json{{"allow", true}, {"outcome", 1}}), jitgate::Error);
}

TEST(Outcome, AbsentOutcomeReadsAsError) {
    const auto d = jitgate::msg::decision_from_json(Json{{"allow", false}});
    EXPECT_EQ(d.outcome, Outcome::error);
    EXPECT_EQ(jitgate::msg::Decision{}.outcome, Outcome::error);
}
