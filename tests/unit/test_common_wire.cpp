// Unit tests of the frame codec and the typed message accessors (common/).
#include <gtest/gtest.h>

#include "jitgate/error.hpp"
#include "jitgate/messages.hpp"
#include "jitgate/wire.hpp"

namespace {

using jitgate::Error;
using jitgate::wire::FrameDecoder;
using jitgate::wire::Json;

std::string header(std::uint32_t n) {
    return {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n)};
}

TEST(Wire, RoundTripsOneFrame) {
    FrameDecoder d;
    d.feed(jitgate::wire::encode(Json{{"type", "ping"}, {"n", 1}}));
    const auto m = d.next();
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ((*m)["type"], "ping");
    EXPECT_FALSE(d.next().has_value());
    EXPECT_FALSE(d.has_partial());
}

TEST(Wire, HeaderIsBigEndianLength) {
    const std::string f = jitgate::wire::encode(Json{{"a", 1}});
    const std::string payload = R"({"a":1})";
    EXPECT_EQ(f, header(static_cast<std::uint32_t>(payload.size())) + payload);
}

TEST(Wire, ByteByByteAndTwoFramesInOneRead) {
    const std::string two = jitgate::wire::encode(Json{{"x", 1}}) + jitgate::wire::encode(Json{{"x", 2}});
    FrameDecoder d;
    for (std::size_t i = 0; i + 1 < two.size(); ++i) d.feed(two.substr(i, 1));
    ASSERT_EQ(d.next().value()["x"], 1);
    EXPECT_FALSE(d.next().has_value()); // the second frame lacks its last byte
    EXPECT_TRUE(d.has_partial());
    d.feed(two.substr(two.size() - 1));
    EXPECT_EQ(d.next().value()["x"], 2);
}

// The decoder gives its buffer back once it handed out all it held (the daemon keeps one
// decoder per waiting request): the next frame, whole or in pieces, still decodes.
TEST(Wire, NextFrameAfterEverythingWasConsumed) {
    FrameDecoder d;
    d.feed(jitgate::wire::encode(Json{{"x", 1}}));
    ASSERT_EQ(d.next().value()["x"], 1);
    EXPECT_FALSE(d.has_partial());
    const std::string second = jitgate::wire::encode(Json{{"x", 2}, {"pad", std::string(300, 'p')}});
    d.feed(second.substr(0, 3));
    EXPECT_FALSE(d.next().has_value());
    EXPECT_TRUE(d.has_partial());
    d.feed(second.substr(3));
    const auto m = d.next();
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ((*m)["x"], 2);
    EXPECT_EQ((*m)["pad"], std::string(300, 'p'));
    EXPECT_FALSE(d.has_partial());
    EXPECT_FALSE(d.next().has_value());
}

TEST(Wire, TruncatedFrameWaitsAndReportsPartial) {
    FrameDecoder d;
    d.feed(header(10) + "{\"a\":");
    EXPECT_FALSE(d.next().has_value());
    EXPECT_TRUE(d.has_partial());
    FrameDecoder h;
    h.feed(std::string("\0\0", 2));
    EXPECT_FALSE(h.next().has_value());
    EXPECT_TRUE(h.has_partial());
}

TEST(Wire, OversizedLengthIsRejectedBeforeBuffering) {
    FrameDecoder d;
    d.feed(header(jitgate::wire::k_max_frame + 1));
    EXPECT_THROW(d.next(), Error);
}

TEST(Wire, MaximumFrameIsAccepted) {
    std::string big(jitgate::wire::k_max_frame - std::string(R"({"s":""})").size(), 'a');
    const Json m{{"s", big}};
    const std::string f = jitgate::wire::encode(m);
    EXPECT_EQ(f.size(), jitgate::wire::k_max_frame + 4);
    FrameDecoder d;
    d.feed(f);
    EXPECT_EQ(d.next().value()["s"].get<std::string>().size(), big.size());
}

TEST(Wire, EncodeRefusesOversizedMessage) {
    const Json m{{"s", std::string(jitgate::wire::k_max_frame, 'a')}};
    EXPECT_THROW(jitgate::wire::encode(m), Error);
}

TEST(Wire, ZeroLengthNonJsonAndNonObjectAreProtocolErrors) {
    for (const std::string& payload : {std::string(), std::string("not json"), std::string("[1,2]"),
                                       std::string("\"s\""), std::string("{\"a\":1} trailing")}) {
        FrameDecoder d;
        d.feed(header(static_cast<std::uint32_t>(payload.size())) + payload);
        try {
            d.next();
            ADD_FAILURE() << "accepted payload: " << payload;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), jitgate::ErrorCode::protocol);
        }
    }
}

TEST(Wire, PeerCannotMakeUsBufferUnbounded) {
    FrameDecoder d;
    d.feed(header(jitgate::wire::k_max_frame));
    const std::string chunk(jitgate::wire::k_max_frame, 'x');
    d.feed(chunk); // one whole frame's worth is fine
    EXPECT_THROW(d.feed(chunk + chunk), Error);
}

TEST(Wire, TypedAccessorsRejectWrongTypes) {
    const Json m{{"s", "x"}, {"i", 5}, {"b", true}, {"n", nullptr}};
    EXPECT_EQ(jitgate::wire::require_string(m, "s"), "x");
    EXPECT_THROW(jitgate::wire::require_string(m, "i"), Error);
    EXPECT_THROW(jitgate::wire::require_string(m, "missing"), Error);
    EXPECT_EQ(jitgate::wire::require_int(m, "i"), 5);
    EXPECT_THROW(jitgate::wire::require_int(m, "s"), Error);
    EXPECT_EQ(jitgate::wire::optional_int(m, "n", 7), 7);
    EXPECT_THROW(jitgate::wire::optional_bool(m, "s", false), Error);
    EXPECT_TRUE(jitgate::wire::optional_bool(m, "b", false));
}

TEST(Messages, CheckRequestRoundTripKeepsRawBytes) {
    jitgate::msg::CheckRequest r;
    r.user = "alice";
    r.uid = 2001;
    r.command = "/usr/bin/echo";
    r.run_argv = {"echo", "line1\nline2", std::string("\xff\xfe", 2), "\x1b[31m"};
    r.reason = std::string("bad \xc3", 5);
    const auto back = jitgate::msg::check_from_json(jitgate::msg::to_json(r));
    EXPECT_EQ(back.run_argv, r.run_argv);
    EXPECT_EQ(back.reason, r.reason);
    EXPECT_EQ(back.user, "alice");
    EXPECT_EQ(back.uid, 2001);
}

TEST(Messages, CheckRequestRejectsBadFields) {
    auto j = jitgate::msg::to_json(jitgate::msg::CheckRequest{});
    j["kind"] = "telnet";
    EXPECT_THROW(jitgate::msg::check_from_json(j), Error);
    j["kind"] = "sudo";
    j["uid"] = "2001";
    EXPECT_THROW(jitgate::msg::check_from_json(j), Error);
    j["uid"] = 2001;
    j["run_argv"] = Json::array({1, 2});
    EXPECT_THROW(jitgate::msg::check_from_json(j), Error);
    j["run_argv"] = Json::array();
    j["v"] = 2;
    EXPECT_THROW(jitgate::msg::check_from_json(j), Error);
}

TEST(Messages, DecisionNeedsABooleanAllow) {
    EXPECT_THROW(jitgate::msg::decision_from_json(Json{{"type", "decision"}}), Error);
    EXPECT_THROW(jitgate::msg::decision_from_json(Json{{"allow", 1}}), Error);
    EXPECT_FALSE(jitgate::msg::decision_from_json(Json{{"allow", false}}).allow);
}

TEST(Messages, FinishedReportValidatesStatusType) {
    jitgate::msg::FinishedReport f;
    f.user = "alice";
    f.uid = 1;
    f.status_type = "exit";
    f.exit_status = 3;
    EXPECT_EQ(jitgate::msg::finished_from_json(jitgate::msg::to_json(f)).exit_status, 3);
    auto j = jitgate::msg::to_json(f);
    j["status_type"] = "exploded";
    EXPECT_THROW(jitgate::msg::finished_from_json(j), Error);
}

} // namespace
