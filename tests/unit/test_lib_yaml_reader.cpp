// Unit tests of lib/yaml_reader: the shared pieces jitgated's and jitgate-server's configs are
// read with, on their own (each program's schema has its own tests: test_config.cpp,
// test_server_config.cpp).
#include "lib/yaml_reader.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace jitgate::config {
namespace {

const SectionSpec k_spec{{"name", "count", "tags", "users", "enabled"}, {{"socket", "daemon"}}};
const Where k_where{"top", "top.", "in 'top'", ""};

// Reads `text` with `k_spec` and returns the reader's problems as "line:column: message".
struct Read {
    Reader reader{"t.yaml"};
    Entries entries;
    explicit Read(const std::string& text) {
        read_document(text, reader, [&](const YAML::Node& root) { entries = reader.entries(root, k_where, k_spec); });
    }
    std::vector<std::string> problems() {
        std::vector<std::string> out;
        for (const auto& p : reader.problems()) out.push_back(p.to_string());
        return out;
    }
};

TEST(YamlReader, UnknownKeysSuggestATypoOrTheRightSection) {
    Read r("nmae: x\nsocket: /run/x\nzzz: 1\n");
    EXPECT_EQ(r.problems(), (std::vector<std::string>{
                                "t.yaml:1:1: unknown key 'nmae' in 'top' (did you mean 'name'?)",
                                "t.yaml:2:1: unknown key 'socket' in 'top' (it belongs under 'daemon')",
                                "t.yaml:3:1: unknown key 'zzz' in 'top'",
                            }));
    EXPECT_TRUE(r.entries.empty());
}

TEST(YamlReader, DuplicateKeysAreRefusedAndNeitherWins) {
    Read r("name: a\nname: b\n");
    EXPECT_EQ(r.problems(), (std::vector<std::string>{"t.yaml:2:1: duplicate key 'name' in 'top' (first at line 1)"}));
    ASSERT_EQ(r.entries.size(), 1u);
}

TEST(YamlReader, TypedReadersReportTheKeyAndPosition) {
    Read r("count: 010x\ntags: {a: b}\nenabled: maybe\nname: [x]\n");
    EXPECT_FALSE(r.reader.integer_value(k_where, find(r.entries, "count"), "an integer"));
    EXPECT_FALSE(r.reader.list_value(k_where, find(r.entries, "tags")));
    EXPECT_FALSE(r.reader.bool_value(k_where, find(r.entries, "enabled")));
    EXPECT_FALSE(r.reader.string_value(k_where, find(r.entries, "name")));
    EXPECT_EQ(r.problems(), (std::vector<std::string>{
                                "t.yaml:1:8: wrong type for 'top.count': expected an integer, got '010x'",
                                "t.yaml:2:7: wrong type for 'top.tags': expected a list of strings, got a mapping",
                                "t.yaml:3:10: wrong type for 'top.enabled': expected true or false, got 'maybe'",
                                "t.yaml:4:7: wrong type for 'top.name': expected a string, got a list",
                            }));
}

TEST(YamlReader, ListsAcceptOneStringAndRecordEachItem) {
    Read r("tags: solo\nusers: [a, b]\n");
    EXPECT_EQ(*r.reader.list_value(k_where, find(r.entries, "tags")), std::vector<std::string>{"solo"});
    EXPECT_EQ(*r.reader.list_value(k_where, find(r.entries, "users")), (std::vector<std::string>{"a", "b"}));
    const Position b = locate(&r.reader.positions(), "top.users[1]", 0);
    EXPECT_EQ(b.line, 2);
    EXPECT_EQ(b.column, 12);
    // An unrecorded path falls back to its closest recorded parent, then to the fallback line.
    const Position parent = locate(&r.reader.positions(), "top.users[7].x", 0);
    EXPECT_EQ(parent.line, 2);
    EXPECT_EQ(parent.column, 8);
    EXPECT_EQ(locate(&r.reader.positions(), "elsewhere", 9).line, 9);
    EXPECT_EQ(locate(nullptr, "top.users", 3).line, 3);
}

TEST(YamlReader, StringMapsRefuseDuplicatesAndNonStrings) {
    Read good("users: {alice.a: alice, bob.b: bob}\n");
    const auto map = good.reader.string_map_value(k_where, find(good.entries, "users"), "a mapping");
    ASSERT_TRUE(map);
    EXPECT_EQ(map->size(), 2u);
    EXPECT_EQ(locate(&good.reader.positions(), "top.users.bob.b", 0).column, 32);

    Read bad("users:\n  a: x\n  a: y\n  b: [1]\n");
    EXPECT_FALSE(bad.reader.string_map_value(k_where, find(bad.entries, "users"), "a mapping"));
    EXPECT_EQ(bad.problems(), (std::vector<std::string>{
                                  "t.yaml:3:3: duplicate key 'a' in 'top.users'",
                                  "t.yaml:4:3: 'top.users': each entry must be '<string>: <string>', got a list",
                              }));
}

TEST(YamlReader, EnumsListTheChoices) {
    Read r("name: purple\n");
    const auto v = r.reader.enum_value<int>(k_where, find(r.entries, "name"), {{"red", 1}, {"green", 2}, {"blue", 3}});
    EXPECT_FALSE(v);
    EXPECT_EQ(r.problems(),
              (std::vector<std::string>{"t.yaml:1:7: bad value 'purple' for 'top.name': expected red, green or blue"}));
}

TEST(YamlReader, SecondDocumentsAndSyntaxErrorsAreProblemsNotExceptions) {
    Read two("name: a\n---\nname: b\n");
    EXPECT_EQ(two.problems().size(), 1u);
    EXPECT_NE(two.problems()[0].find("single YAML document"), std::string::npos);
    Read stray("]\n");
    ASSERT_EQ(stray.problems().size(), 1u);
    EXPECT_NE(stray.problems()[0].find("YAML syntax error"), std::string::npos);
    Read group("tags: [%wheel]\n");
    ASSERT_EQ(group.problems().size(), 1u);
    EXPECT_NE(group.problems()[0].find("(quote a group entry: \"%group\")"), std::string::npos);
}

TEST(YamlReader, MessagesEscapeControlAndInvisibleCharacters) {
    Read r("\"na\\x1bme\\u202e\": 1\n");
    ASSERT_EQ(r.problems().size(), 1u);
    const std::string p = r.problems()[0];
    EXPECT_EQ(p.find('\x1b'), std::string::npos) << p;
    EXPECT_EQ(p.find("\xe2\x80\xae"), std::string::npos) << p;
    EXPECT_NE(p.find("\\x1b"), std::string::npos) << p;
    EXPECT_EQ(escaped(escaped("a\x01b")), escaped("a\x01b"));
    EXPECT_EQ(shown(std::string(100, 'x')), "'" + std::string(60, 'x') + "...'");
}

TEST(YamlReader, StrictIntegersDurationsAndSizes) {
    EXPECT_EQ(parse_integer("42"), 42);
    EXPECT_EQ(parse_integer("+7"), 7);
    EXPECT_EQ(parse_integer("-3"), -3);
    for (const char* bad : {"", "0x10", "1.5", "1e3", " 1", "1 "}) EXPECT_FALSE(parse_integer(bad)) << bad;
    EXPECT_EQ(parse_duration("15m"), std::chrono::minutes(15));
    EXPECT_FALSE(parse_duration("-1s"));
    EXPECT_EQ(parse_size("8MiB"), 8u << 20);
    EXPECT_FALSE(parse_size("0"));
    EXPECT_EQ(format_duration(std::chrono::hours(2)), "2h");
}

} // namespace
} // namespace jitgate::config
