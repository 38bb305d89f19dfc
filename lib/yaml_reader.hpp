// lib/yaml_reader.hpp — the YAML side of reading a jitgate config file, shared by jitgated's
// config (daemon/config/) and jitgate-server's (server/config/): each of them owns only its
// schema (which sections, which keys, what they mean) and builds it from these pieces.
//
// What lives here: positions (file:line:column of every value, keyed by a path such as
// "rules[2].approvals"), the typed readers (string, integer, bool, list, duration, size, enum)
// that report a wrong type with the key's name and position, unknown keys with "did you mean"
// (edit distance) or "it belongs under", duplicate keys, and the one guarded way to turn text
// into a YAML document (a second document, stray tokens and syntax errors become problems with
// a hint, never an exception). Every message goes through escaped(): config text reaches
// terminals and logs.
//
// Threading: a Reader is used by one thread; the free functions are thread-safe.
// Errors: nothing here throws for bad content (only std::bad_alloc); problems are collected.
// Depends on yaml-cpp and common/ (text); knows nothing of either program's schema.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "lib/config_file.hpp"

namespace jitgate::config {

// Where a value came from. 1-based; 0 means unknown.
struct Position {
    int line = 0;
    int column = 0;
};

// Positions keyed by path: "daemon.socket", "rules[2].approvals", "rules[2].match.kind[1]".
using Positions = std::unordered_map<std::string, Position>;

// yaml-cpp counts from 0 and uses -1 for "no mark"; Position counts from 1 and uses 0.
Position position_of(const YAML::Mark& mark) noexcept;

// The most precise recorded position for `path`: "a[1].b.c[0]", then "a[1].b.c", "a[1].b",
// "a[1]", "a"; else {fallback_line, 0}. `positions` may be null (a config built in code).
Position locate(const Positions* positions, std::string path, int fallback_line);

// Config text made safe for a message: ASCII control characters become \xNN, runs of non-ASCII
// bytes go through text::escape_for_log (invalid UTF-8, C1 controls, bidi and invisible
// characters escaped). Backslashes stay as they are. Escaping escaped text changes nothing.
std::string escaped(std::string_view text);
// A value quoted for a message: 'escaped', cut after 60 bytes at a character boundary.
std::string shown(std::string_view text);
// A node for a message: its quoted scalar, "a list", "a mapping" or "nothing".
std::string describe(const YAML::Node& node);
// "a, b or c" with `last_separator` " or ".
std::string join(const std::vector<std::string_view>& words, std::string_view last_separator);
// Levenshtein distance (for "did you mean").
std::size_t edit_distance(std::string_view a, std::string_view b);
// Strict decimal integer, optional '+': yaml-cpp would read "010" as octal and "0x10" as hex.
std::optional<long long> parse_integer(std::string_view text);
bool is_absolute_path(const std::string& path);

// Which keys a mapping may hold, and where a key that belongs elsewhere should go.
struct SectionSpec {
    std::vector<std::string_view> keys;
    std::vector<std::pair<std::string_view, std::string_view>> elsewhere; // key -> section
};

// Where the reader is, for messages and positions.
struct Where {
    std::string path;       // positions prefix: "daemon", "rules[2]", "rules[2].match"
    std::string key_prefix; // how keys are named in messages: "daemon.", "match.", ""
    std::string in;         // "at top level", "in 'daemon'", "in rule 'x'", ...
    std::string prefix;     // starts every other message: "rule 'x': " or ""

    std::string key_path(std::string_view key) const {
        return path.empty() ? std::string(key) : path + "." + std::string(key);
    }
    std::string key_name(std::string_view key) const { return key_prefix + std::string(key); }
};

// One accepted key of a mapping, with its key node (for its mark) and its value.
struct Entry {
    std::string key;
    YAML::Node key_node;
    YAML::Node value;
};

using Entries = std::vector<Entry>;

// The entry named `key`, or null. The pointer is valid while `entries` is.
const Entry* find(const Entries& entries, std::string_view key);

// The mark to blame for a value: an implicit null ("key:" and nothing) has the mark of
// whatever follows it, so the key is blamed instead.
YAML::Mark value_mark(const Entry& entry);

// Collects problems and positions while a schema is read. A program's parser derives from it
// (or holds one) and calls the typed readers; each returns nullopt when the key is absent or,
// after reporting a problem, when its value is wrong. Not thread-safe.
class Reader {
public:
    explicit Reader(std::string source) : m_source(std::move(source)) {}

    // Adds a problem at `mark`. The message is escaped here, at the one sink: a message can
    // name a key taken from the file and must not carry its raw bytes to a terminal.
    void add(const YAML::Mark& mark, std::string message);
    // Records where the value at `path` came from.
    void record(const std::string& path, const YAML::Mark& mark);

    const std::string& source() const noexcept { return m_source; }
    std::vector<Problem>& problems() noexcept { return m_problems; }
    const Positions& positions() const noexcept { return m_positions; }

    // The accepted entries of the mapping `node`: unknown keys ("did you mean", "it belongs
    // under"), duplicate keys (neither wins) and non-scalar keys are reported and left out.
    // A non-mapping gives no entries (the caller reports the wrong type, naming the key).
    Entries entries(const YAML::Node& node, const Where& where, const SectionSpec& spec);
    // The entries of the mapping under `key` of `parent`: none if absent or null; a non-mapping
    // is reported as a wrong type.
    Entries section(const Entries& parent, std::string_view key, const Where& parent_where, const Where& where,
                    const SectionSpec& spec);
    // "wrong type for '<key>': expected <expected>, got <value>".
    void wrong_type(const Where& where, const Entry& entry, std::string_view expected);

    std::optional<std::string> string_value(const Where& where, const Entry* entry);
    // A decimal integer in int's range; `expected` names it in the message ("an integer 1..5").
    std::optional<long long> integer_value(const Where& where, const Entry* entry, std::string_view expected);
    std::optional<bool> bool_value(const Where& where, const Entry* entry);
    // A list of strings; a single string is a one-element list, null an empty one. Records
    // the position of each item as "<path>[i]".
    std::optional<std::vector<std::string>> list_value(const Where& where, const Entry* entry);
    // A mapping of strings to strings, in file order; null is an empty one. A non-string key or
    // value and a duplicate key are reported (and the whole value refused). Records each
    // value's position as "<path>.<key>". `expected` names it ("a mapping of IdP name to Unix name").
    std::optional<std::vector<std::pair<std::string, std::string>>>
    string_map_value(const Where& where, const Entry* entry, std::string_view expected);
    // parse_duration() of the value ("30s", "15m", "2h", "1d", seconds).
    std::optional<Seconds> duration_value(const Where& where, const Entry* entry);
    // parse_size() of the value ("4096", "512KiB", "8MiB", "1GiB").
    std::optional<std::uint64_t> size_value(const Where& where, const Entry* entry);
    // One of `names`; anything else: "bad value 'x' for '<key>': expected a, b or c".
    template <typename Enum>
    std::optional<Enum> enum_value(const Where& where, const Entry* entry,
                                   const std::vector<std::pair<std::string_view, Enum>>& names) {
        const auto text = string_value(where, entry);
        if (!text) {
            return std::nullopt;
        }
        std::vector<std::string_view> choices;
        for (const auto& [name, value] : names) {
            if (name == *text) {
                return value;
            }
            choices.push_back(name);
        }
        add(entry->value.Mark(), where.prefix + "bad value " + shown(*text) + " for '" + where.key_name(entry->key) +
                                     "': expected " + join(choices, " or "));
        return std::nullopt;
    }

private:
    std::string m_source;
    std::vector<Problem> m_problems;
    Positions m_positions;
};

// Reads `text` as a single YAML document and calls `build(root)` (root is null for an empty
// text), inside one guard: syntax errors (with a hint for an unquoted "%group" or "*glob"), a
// second document, stray tokens and any YAML::Exception thrown by `build` become problems of
// `reader`. `build` is not called when nothing trustworthy could be built. Returns whether
// `build` ran to its end.
bool read_document(const std::string& text, Reader& reader, const std::function<void(const YAML::Node&)>& build);

// Reads the whole file at `path` into `text`. Returns a problem ("cannot open <what>: ...",
// "cannot read <what>: ...") on failure. `what` is e.g. "the config".
std::optional<Problem> read_text_file(const std::string& path, std::string_view what, std::string& text);

// Sorts problems into file order (line, then column; stable), so a list reads top to bottom
// next to the file.
void sort_in_file_order(std::vector<Problem>& problems);

} // namespace jitgate::config
