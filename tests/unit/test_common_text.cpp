// tests/unit/test_common_text.cpp — escaping and encoding user-controlled text (common/text).
#include <gtest/gtest.h>

#include <algorithm>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"

namespace {

using namespace jitgate::text;

TEST(Text, Utf8Validation) {
    EXPECT_TRUE(is_valid_utf8("plain"));
    EXPECT_TRUE(is_valid_utf8("grüße €"));
    EXPECT_TRUE(is_valid_utf8("\xf0\x9f\x94\x91"));
    EXPECT_FALSE(is_valid_utf8("\xff"));
    EXPECT_FALSE(is_valid_utf8("\xc3"));             // truncated
    EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));         // overlong '/'
    EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));     // surrogate
    EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80")); // past U+10FFFF
}

TEST(Text, EscapeRemovesEveryControlCharacter) {
    EXPECT_EQ(escape_for_log("a\nb\rc\td"), "a\\nb\\rc\\td");
    EXPECT_EQ(escape_for_log("\x1b[31mred"), "\\x1b[31mred");
    EXPECT_EQ(escape_for_log(std::string("nul\0x", 5)), "nul\\x00x");
    EXPECT_EQ(escape_for_log("del\x7f"), "del\\x7f");
    EXPECT_EQ(escape_for_log("csi\xc2\x9b"), "csi\\xc2\\x9b"); // C1 control
    EXPECT_EQ(escape_for_log("back\\slash"), "back\\\\slash");
    EXPECT_EQ(escape_for_log("bad\xff\xfe"), "bad\\xff\\xfe");
    EXPECT_EQ(escape_for_log("grüße"), "grüße");
    for (int c = 0; c < 256; ++c) {
        const std::string out = escape_for_log(std::string(1, static_cast<char>(c)));
        EXPECT_TRUE(is_valid_utf8(out));
        for (unsigned char ch : out) EXPECT_FALSE(ch < 0x20 || ch == 0x7f) << c;
    }
}

TEST(Text, EscapeShowsInvisibleAndReorderingCharacters) {
    EXPECT_EQ(escape_for_log("a\u202Eb"), "a\\u{202e}b");             // right-to-left override
    EXPECT_EQ(escape_for_log("x\u200By"), "x\\u{200b}y");             // zero-width space
    EXPECT_EQ(escape_for_log("two\u00A0words"), "two\\u{00a0}words"); // looks like a space
    EXPECT_EQ(escape_for_log("\uFEFF"), "\\u{feff}");
    EXPECT_EQ(escape_for_log("grüße €"), "grüße €");
}

TEST(Text, EscapeIsUnambiguous) {
    // a literal backslash-x sequence must not look like an escaped byte
    EXPECT_NE(escape_for_log("\\x1b"), escape_for_log("\x1b"));
}

TEST(Text, DisplayArgvQuotesSpacesAndEmpties) {
    EXPECT_EQ(display_argv({"systemctl", "restart", "payments"}), "systemctl restart payments");
    EXPECT_EQ(display_argv({"echo", "a b", ""}), "echo 'a b' ''");
    EXPECT_EQ(display_argv({"echo", "it's"}), "echo 'it\\'s'");
    EXPECT_EQ(display_argv({"echo", "x\ny"}), "echo x\\ny");
}

TEST(Text, Base64RoundTripAndRejectsGarbage) {
    for (const std::string& s :
         {std::string(), std::string("f"), std::string("fo"), std::string("foo"), std::string("\xff\x00\x10", 3)})
        EXPECT_EQ(base64_decode(base64_encode(s)), s);
    EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
    EXPECT_THROW(base64_decode("abc"), jitgate::Error);
    EXPECT_THROW(base64_decode("ab!d"), jitgate::Error);
    EXPECT_THROW(base64_decode("a=bc"), jitgate::Error);
}

TEST(Text, Base64UrlHasNoPaddingAndTheUrlAlphabet) {
    for (const std::string& s :
         {std::string(), std::string("f"), std::string("fo"), std::string("foo"), std::string("\xfb\xff\xbf", 3)})
        EXPECT_EQ(base64url_decode(base64url_encode(s)), s);
    EXPECT_EQ(base64url_encode("\xfb\xff\xbf"), "-_-_");
    EXPECT_EQ(base64url_encode("f"), "Zg");
    EXPECT_EQ(base64url_decode("Zg"), "f");
    EXPECT_THROW(base64url_decode("Zg=="), jitgate::Error);
    EXPECT_THROW(base64url_decode("+/+/"), jitgate::Error);
    EXPECT_THROW(base64url_decode("Zm9vY"), jitgate::Error);
    EXPECT_THROW(base64url_decode("Zm.v"), jitgate::Error);
}

TEST(Text, ArgumentsTravelAsStringsOrBase64) {
    EXPECT_TRUE(arg_to_json("plain").is_string());
    const auto j = arg_to_json(std::string("\xff", 1));
    ASSERT_TRUE(j.is_object());
    EXPECT_EQ(arg_from_json(j), std::string("\xff", 1));
    EXPECT_THROW(arg_from_json(nlohmann::json(5)), jitgate::Error);
    EXPECT_THROW(arg_from_json(nlohmann::json{{"b64", 1}}), jitgate::Error);
    EXPECT_THROW(arg_from_json(nlohmann::json{{"b64", "QQ=="}, {"x", 1}}), jitgate::Error);
}

TEST(Text, PrintableKeepsCleanTextAndEscapesTheRestAsAWhole) {
    EXPECT_EQ(printable("approved by bob \u00e9"), "approved by bob \u00e9");
    EXPECT_EQ(printable("a\\b"), "a\\b"); // clean text is not escaped twice
    EXPECT_EQ(printable("a\\b\n"), escape_for_log("a\\b\n"));
    EXPECT_EQ(printable("x\xff"), escape_for_log("x\xff"));
}

TEST(Text, ShownCutsAtACharacterBoundaryWithTheOneMarker) {
    EXPECT_EQ(k_cut_marker, "...");
    EXPECT_EQ(shown("short", 10), "short");
    EXPECT_EQ(shown("abcdef", 3), "abc...");
    EXPECT_EQ(shown("ab\u00e9", 3), "ab..."); // never half of the two-byte \u00e9
    EXPECT_EQ(shown("a\nb", 10), "a\\nb");
    EXPECT_EQ(utf8_prefix("ab\u00e9", 3), "ab");
    EXPECT_EQ(utf8_prefix("ab\u00e9", 4), "ab\u00e9");
}

TEST(Text, Plural) {
    EXPECT_EQ(plural(0, "event", "events"), "0 events");
    EXPECT_EQ(plural(1, "event", "events"), "1 event");
    EXPECT_EQ(plural(2, "byte", "bytes"), "2 bytes");
}

} // namespace
