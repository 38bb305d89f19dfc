// Unit tests of the frame codec and the typed message accessors (common/).
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "jitgate/error.hpp"
#include "jitgate/messages.hpp"
#include "jitgate/text.hpp"
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

// The plugins send their requests through wire::ObjectWriter (msg::encode), not through a Json:
// the daemon must get the very bytes the Json would have given, whatever the strings hold.
TEST(Wire, ObjectWriterEscapesEveryByteAsDumpDoes) {
    for (int c = 0; c < 256; ++c) {
        const std::string s{'a', static_cast<char>(c), 'b'};
        jitgate::wire::ObjectWriter w;
        w.arg("a", s); // in Json's key order
        w.string("s", s);
        EXPECT_EQ(std::move(w).frame(), jitgate::wire::encode(Json{{"s", s}, {"a", jitgate::text::arg_to_json(s)}}))
            << "byte " << c;
    }
    for (const std::string& s :
         {std::string(), std::string("\xc3\xa9t\xc3\xa9"), std::string("\xf0\x9f\x94\x91"),
          std::string("\xe2\x80\xa8\xe2\x80\xae"), std::string("\xed\xa0\x80"), std::string("\xc0\xaf"),
          std::string("\xf4\x90\x80\x80"), std::string("\xe2\x82"), std::string("x\0y", 3), std::string("\"\\/\x7f")}) {
        jitgate::wire::ObjectWriter w;
        w.string("s", s);
        w.argv("v", {s, "plain", s});
        EXPECT_EQ(std::move(w).frame(),
                  jitgate::wire::encode(
                      Json{{"s", s}, {"v", jitgate::text::argv_to_json(std::vector<std::string>{s, "plain", s})}}))
            << jitgate::text::escape_for_log(s);
    }
}

// Keys go out unescaped: a key that is not a protocol member name is refused, never written
// (it could add or repeat a member).
TEST(Wire, ObjectWriterRefusesAKeyThatIsNotAMemberName) {
    for (const std::string& key : {std::string("a\",\"type"), std::string(), std::string("Type"), std::string("a b"),
                                   std::string("a\\"), std::string("x\0y", 3)}) {
        jitgate::wire::ObjectWriter w;
        EXPECT_THROW(w.string(key, "v"), Error) << jitgate::text::escape_for_log(key);
        EXPECT_THROW(w.integer(key, 1), Error);
        EXPECT_THROW(w.argv(key, {"v"}), Error);
    }
    jitgate::wire::ObjectWriter w;
    EXPECT_NO_THROW(w.string("command_realpath2", "v"));
}

namespace {
// Every member of a check set, the strings hostile: quotes, control characters, bytes that are
// not UTF-8, in arguments and in the plain string members alike.
jitgate::msg::CheckRequest full_check() {
    const std::string bad("x\xff\"\\\n\x01\xc3\0", 8);
    jitgate::msg::CheckRequest r;
    r.user = "al\"ice" + bad;
    r.uid = 2001;
    r.pid = std::numeric_limits<std::int64_t>::max();
    r.runas_user = "root" + bad;
    r.runas_uid = 0;
    r.command = "/usr/bin/echo" + bad;
    r.run_argv = {"echo", "line1\nline2", std::string("\xff\xfe", 2), "\x1b[31m", "caf\xc3\xa9"};
    r.submit_argv = {"-u", "root", bad};
    r.argv_truncated = true;
    r.argv_bytes = 123;
    r.cwd = "/home/al ice\t" + bad;
    r.tty = "/dev/pts/1" + bad;
    r.service = "sudo" + bad;
    r.remote_host = "10.0.0.1" + bad;
    r.reason = "INC-1 \xe2\x80\xae" + bad;
    r.ticket = "T-1";
    r.break_glass_reason = bad;
    r.interactive = true;
    r.requester = "bob" + bad;
    r.runas_group = "wheel" + bad;
    r.runas_gid = -1;
    r.run_cwd = "/";
    r.chroot = "/srv/jail" + bad;
    r.run_env = {"PATH=/usr/bin", "PS1=\\u@\\h$ ", "X=" + bad};
    r.env_truncated = true;
    r.sudo_args = {"-E", "FOO=" + bad};
    r.command_realpath = "/usr/bin/echo";
    r.command_dev = 2049;
    r.command_ino = std::numeric_limits<std::int64_t>::min();
    return r;
}
} // namespace

TEST(Messages, CheckRequestEncodesAsItsJson) {
    using Intercept = jitgate::msg::CheckRequest::Intercept;
    EXPECT_EQ(jitgate::msg::encode(jitgate::msg::CheckRequest{}),
              jitgate::wire::encode(jitgate::msg::to_json(jitgate::msg::CheckRequest{})));
    for (const Intercept intercept : {Intercept::unknown, Intercept::off, Intercept::on}) {
        for (const bool sub_command : {false, true}) {
            auto r = full_check();
            r.intercept = intercept;
            r.intercept_limit = intercept == Intercept::on ? "no_verify" : "";
            r.intercepted = sub_command;
            r.parent_request_id = "r-1\"";
            r.parent_grant_id = "g-\xff";
            r.noninteractive = sub_command;
            EXPECT_EQ(jitgate::msg::encode(r), jitgate::wire::encode(jitgate::msg::to_json(r)))
                << "intercept " << static_cast<int>(intercept) << ", sub-command " << sub_command;
        }
    }
}

TEST(Messages, CheckRequestOverTheFrameLimitIsRefusedAsEncodeRefusesIt) {
    auto r = full_check();
    r.run_env.assign(2, std::string(jitgate::wire::k_max_frame / 2, 'e'));
    EXPECT_THROW(jitgate::wire::encode(jitgate::msg::to_json(r)), Error);
    EXPECT_THROW(jitgate::msg::encode(r), Error);
}

TEST(Messages, FinishedReportEncodesAsItsJson) {
    const std::string bad("x\xff\"\\\n\x01\xc3\0", 8);
    jitgate::msg::FinishedReport f;
    EXPECT_EQ(jitgate::msg::encode(f), jitgate::wire::encode(jitgate::msg::to_json(f)));
    f.user = "alice" + bad;
    f.uid = 1000;
    f.pid = 4242;
    f.runas_user = "root" + bad;
    f.command = "/usr/bin/true" + bad;
    f.run_argv = {"true", bad, "caf\xc3\xa9"};
    f.request_id = "r-1" + bad;
    f.grant_id = "g-1" + bad;
    f.status_type = "signal";
    f.exit_status = -1;
    f.signal = 9;
    f.exec_errno = 2;
    f.duration_ms = 12345;
    f.tty = "/dev/pts/0" + bad;
    EXPECT_EQ(jitgate::msg::encode(f), jitgate::wire::encode(jitgate::msg::to_json(f)));
}

} // namespace
