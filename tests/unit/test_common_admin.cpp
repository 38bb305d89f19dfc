// tests/unit/test_common_admin.cpp — the typed approver and admin messages (common/admin.hpp):
// the exact bytes on the wire (docs/wire-protocol.md), round trips, and every missing or
// mistyped field refused with Error(protocol) naming the field.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "jitgate/admin.hpp"
#include "jitgate/error.hpp"
#include "jitgate/wire.hpp"

namespace {

using jitgate::Error;
using jitgate::ErrorCode;
using jitgate::msg::Json;
namespace msg = jitgate::msg;

// Parses `text` with `parse`; the test fails unless it throws Error(protocol) whose context
// is `field`.
void expect_refused(const std::function<void(const Json&)>& parse, const std::string& text, const std::string& field) {
    const Json j = Json::parse(text);
    try {
        parse(j);
        ADD_FAILURE() << "accepted " << text;
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::protocol) << text;
        EXPECT_EQ(e.context(), field) << text << ": " << e.what();
    }
}

TEST(CommonAdmin, RequestsAreTheDocumentedBytes) {
    EXPECT_EQ(msg::to_json(msg::PendingRequest{}).dump(), R"({"type":"pending"})");
    EXPECT_EQ(msg::to_json(msg::GrantsRequest{}).dump(), R"({"type":"grants"})");
    EXPECT_EQ(msg::to_json(msg::StatusRequest{}).dump(), R"({"type":"status"})");
    EXPECT_EQ(msg::to_json(msg::PingRequest{}).dump(), R"({"type":"ping"})");
    EXPECT_EQ(msg::to_json(msg::ApproveRequest{"R-E8A4M1"}).dump(), R"({"id":"R-E8A4M1","type":"approve"})");
    EXPECT_EQ(msg::to_json(msg::DenyRequest{"R-E8A4M1", "not now"}).dump(),
              R"({"id":"R-E8A4M1","reason":"not now","type":"deny"})");
    EXPECT_EQ(msg::to_json(msg::RevokeRequest{"G-6PRGNJ", ""}).dump(),
              R"({"id":"G-6PRGNJ","reason":"","type":"revoke"})");
    // The frame of the example in docs/wire-protocol.md: 15 bytes after the length.
    EXPECT_EQ(jitgate::wire::encode(msg::to_json(msg::PingRequest{})),
              std::string("\0\0\0\x0f", 4) + R"({"type":"ping"})");
}

TEST(CommonAdmin, RepliesAreTheDocumentedBytes) {
    EXPECT_EQ(msg::to_json(msg::OkReply{}).dump(), R"({"type":"ok"})");
    EXPECT_EQ(msg::to_json(msg::OkReply{"revoked G-6PRGNJ", std::nullopt}).dump(),
              R"({"message":"revoked G-6PRGNJ","type":"ok"})");
    EXPECT_EQ(msg::to_json(msg::OkReply{std::nullopt, Json{{"pending", 0}}}).dump(),
              R"({"status":{"pending":0},"type":"ok"})");
    EXPECT_EQ(msg::to_json(msg::ItemReply{Json{{"id", "R-E8A4M1"}}}).dump(),
              R"({"item":{"id":"R-E8A4M1"},"type":"item"})");
    EXPECT_EQ(msg::to_json(msg::EndReply{3}).dump(), R"({"count":3,"type":"end"})");
    EXPECT_EQ(msg::to_json(msg::ErrorReply{"denied", "no pending request R-X"}).dump(),
              R"({"code":"denied","message":"no pending request R-X","type":"error"})");
}

TEST(CommonAdmin, RoundTrips) {
    EXPECT_NO_THROW(msg::pending_from_json(msg::to_json(msg::PendingRequest{})));
    EXPECT_NO_THROW(msg::grants_from_json(msg::to_json(msg::GrantsRequest{})));
    EXPECT_NO_THROW(msg::status_from_json(msg::to_json(msg::StatusRequest{})));
    EXPECT_NO_THROW(msg::ping_from_json(msg::to_json(msg::PingRequest{})));
    EXPECT_EQ(msg::approve_from_json(msg::to_json(msg::ApproveRequest{"r-e8a4m1"})).id, "r-e8a4m1");
    const auto d = msg::deny_from_json(msg::to_json(msg::DenyRequest{"R-1", "wrong host\n"}));
    EXPECT_EQ(d.id, "R-1");
    EXPECT_EQ(d.reason, "wrong host\n");
    const auto r = msg::revoke_from_json(msg::to_json(msg::RevokeRequest{"G-1", "done"}));
    EXPECT_EQ(r.id, "G-1");
    EXPECT_EQ(r.reason, "done");
    EXPECT_EQ(msg::item_from_json(msg::to_json(msg::ItemReply{Json{{"a", Json::array({1, 2})}}})).item,
              (Json{{"a", Json::array({1, 2})}}));
    EXPECT_EQ(msg::end_from_json(msg::to_json(msg::EndReply{7})).count, 7);
    const auto ok = msg::ok_from_json(msg::to_json(msg::OkReply{"approved", Json{{"x", 1}}}));
    EXPECT_EQ(ok.message, "approved");
    EXPECT_EQ(ok.status, (Json{{"x", 1}}));
    const auto bare = msg::ok_from_json(msg::to_json(msg::OkReply{}));
    EXPECT_FALSE(bare.message.has_value());
    EXPECT_FALSE(bare.status.has_value());
    const auto e = msg::error_from_json(msg::to_json(msg::ErrorReply{"internal", "internal error; denied"}));
    EXPECT_EQ(e.code, "internal");
    EXPECT_EQ(e.message, "internal error; denied");
}

TEST(CommonAdmin, OptionalFieldsMayBeAbsentOrNull) {
    EXPECT_EQ(msg::deny_from_json(Json::parse(R"({"type":"deny","id":"R-1"})")).reason, "");
    EXPECT_EQ(msg::revoke_from_json(Json::parse(R"({"type":"revoke","id":"G-1","reason":null})")).reason, "");
    EXPECT_FALSE(msg::ok_from_json(Json::parse(R"({"type":"ok","message":null,"status":null})")).message.has_value());
}

TEST(CommonAdmin, MissingOrMistypedFieldsAreRefused) {
    const auto approve = [](const Json& j) { msg::approve_from_json(j); };
    const auto deny = [](const Json& j) { msg::deny_from_json(j); };
    const auto revoke = [](const Json& j) { msg::revoke_from_json(j); };
    const auto item = [](const Json& j) { msg::item_from_json(j); };
    const auto end = [](const Json& j) { msg::end_from_json(j); };
    const auto ok = [](const Json& j) { msg::ok_from_json(j); };
    const auto error = [](const Json& j) { msg::error_from_json(j); };

    expect_refused(approve, R"({"type":"approve"})", "id");
    expect_refused(approve, R"({"type":"approve","id":7})", "id");
    expect_refused(approve, R"({"type":"approve","id":null})", "id");
    expect_refused(approve, R"({"type":"approve","id":"R-1","reason":7})", "reason");
    expect_refused(deny, R"({"type":"deny","reason":"x"})", "id");
    expect_refused(deny, R"({"type":"deny","id":["R-1"]})", "id");
    expect_refused(deny, R"({"type":"deny","id":"R-1","reason":1})", "reason");
    expect_refused(revoke, R"({"type":"revoke"})", "id");
    expect_refused(revoke, R"({"type":"revoke","id":{}})", "id");
    expect_refused(revoke, R"({"type":"revoke","id":"G-1","reason":false})", "reason");
    expect_refused(item, R"({"type":"item"})", "item");
    expect_refused(item, R"({"type":"item","item":"R-1"})", "item");
    expect_refused(item, R"({"type":"item","item":[1]})", "item");
    expect_refused(end, R"({"type":"end"})", "count");
    expect_refused(end, R"({"type":"end","count":"3"})", "count");
    expect_refused(end, R"({"type":"end","count":1.5})", "count");
    expect_refused(ok, R"({"type":"ok","message":1})", "message");
    expect_refused(ok, R"({"type":"ok","status":[]})", "status");
    expect_refused(error, R"({"type":"error","message":"x"})", "code");
    expect_refused(error, R"({"type":"error","code":1,"message":"x"})", "code");
    expect_refused(error, R"({"type":"error","code":"denied"})", "message");
    expect_refused(error, R"({"type":"error","code":"denied","message":{}})", "message");
}

TEST(CommonAdmin, AMessageOfAnotherTypeIsRefused) {
    const auto pending = [](const Json& j) { msg::pending_from_json(j); };
    const auto ok = [](const Json& j) { msg::ok_from_json(j); };
    const auto approve = [](const Json& j) { msg::approve_from_json(j); };
    expect_refused(pending, R"({"type":"grants"})", "type");
    expect_refused(pending, R"({})", "type");
    expect_refused(pending, R"({"type":1})", "type");
    expect_refused(pending, R"([])", "type");
    expect_refused(ok, R"({"type":"error","code":"denied","message":"x"})", "type");
    expect_refused(approve, R"({"type":"deny","id":"R-1"})", "type");
    EXPECT_EQ(msg::type_of(Json::parse(R"({"type":"end","count":0})")), msg::k_end);
    EXPECT_THROW(msg::type_of(Json::parse("\"ok\"")), Error);
}

} // namespace
