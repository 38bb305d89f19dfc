// lib/yaml_reader.cpp — see yaml_reader.hpp. Moved here from daemon/config/config.cpp so that
// jitgated's and jitgate-server's configs read YAML with one piece of code.
#include "lib/yaml_reader.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <sstream>
#include <system_error>

#include <yaml-cpp/eventhandler.h>

#include "jitgate/text.hpp"

namespace jitgate::config {

namespace {

constexpr std::size_t k_max_shown_chars = 60; // longer values are cut in messages

std::string error_text(int error) {
    // std::error_code is thread-safe where strerror() is not.
    return std::error_code(error, std::generic_category()).message();
}

// yaml-cpp's messages for two common slips are cryptic; say what to do instead.
std::string syntax_hint(const std::string& text, const YAML::Mark& mark) {
    if (mark.pos < 0 || static_cast<std::size_t>(mark.pos) >= text.size()) {
        return {};
    }
    const std::string_view rest = std::string_view(text).substr(static_cast<std::size_t>(mark.pos));
    const auto first = rest.find_first_not_of(" \t-[,");
    const char c = first == std::string_view::npos ? '\0' : rest[first];
    if (c == '%') {
        return " (quote a group entry: \"%group\")";
    }
    if (c == '*') {
        return " (quote a glob that starts with '*': \"*...\")";
    }
    return {};
}

// Walks the documents of a YAML stream without building them, to find what YAML::Load() alone
// would hide: a second document, and stray tokens. yaml-cpp 0.7 reports a stray ',', ']' or '}'
// at the start of a document as an empty document without consuming it, so Load() returns an
// empty config and LoadAll() loops forever, allocating (fixed upstream in yaml-cpp PR #1319).
// Such a stuck parser shows as documents that all start at the same mark.
class DocumentProbe final : public YAML::EventHandler {
public:
    struct Finding {
        YAML::Mark mark;
        std::string message;
        bool first_document_usable; // false: the parser is stuck, nothing it built is trustworthy
    };

    // Returns what is wrong, or nullopt when the text is one document (or none). Throws
    // YAML::ParserException on syntax errors, like Load().
    std::optional<Finding> check(const std::string& text) {
        std::istringstream in(text);
        YAML::Parser parser(in);
        std::optional<YAML::Mark> previous_start;
        for (int documents = 0; parser.HandleNextDocument(*this); ++documents) {
            if (previous_start && previous_start->pos == m_start.pos) {
                const auto pos = static_cast<std::size_t>(std::max(m_start.pos, 0));
                const std::string token = pos < text.size() ? shown(text.substr(pos, 1)) : "";
                return Finding{m_start, "YAML syntax error: unexpected " + token, false};
            }
            if (documents > 0 && m_has_content) {
                return Finding{m_start,
                               "the config must be a single YAML document; remove this '---' "
                               "and what follows, or merge it into the first document",
                               true};
            }
            previous_start = m_start;
        }
        return std::nullopt;
    }

private:
    void OnDocumentStart(const YAML::Mark& mark) override {
        m_start = mark;
        m_has_content = false;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override { m_has_content = true; }
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {
        m_has_content = true;
    }
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
        m_has_content = true;
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
        m_has_content = true;
    }
    void OnMapEnd() override {}

    YAML::Mark m_start = YAML::Mark::null_mark();
    bool m_has_content = false;
};

} // namespace

Position position_of(const YAML::Mark& mark) noexcept {
    // yaml-cpp counts from 0 and uses -1 for "no mark"; Problem counts from 1 and uses 0.
    if (mark.line < 0 || mark.column < 0) {
        return {};
    }
    return {mark.line + 1, mark.column + 1};
}

Position locate(const Positions* positions, std::string path, int fallback_line) {
    while (positions != nullptr && !path.empty()) {
        if (const auto it = positions->find(path); it != positions->end()) {
            return it->second;
        }
        const auto cut = path.find_last_of(".[");
        path.resize(cut == std::string::npos ? 0 : cut);
    }
    return {fallback_line, 0};
}

// Config text (and yaml-cpp's messages, which quote it) made safe for a message: messages reach
// terminals and logs. ASCII control characters become \xNN; a run of non-ASCII bytes goes
// through text::escape_for_log, so invalid UTF-8, C1 controls and bidi or invisible characters
// are escaped too. Backslashes stay as they are (patterns are easier to read that way).
std::string escaped(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size();) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte >= 0x80) {
            std::size_t end = i;
            while (end < text.size() && static_cast<unsigned char>(text[end]) >= 0x80) ++end;
            out += text::escape_for_log(text.substr(i, end - i));
            i = end;
            continue;
        }
        if (byte < 0x20 || byte == 0x7f) {
            std::array<char, 8> buf{};
            std::snprintf(buf.data(), buf.size(), "\\x%02x", static_cast<unsigned>(byte));
            out += buf.data();
        } else {
            out += static_cast<char>(byte);
        }
        ++i;
    }
    return out;
}

// Quotes a value for a message, escaped (config's own way, see escaped()), and cut after
// k_max_shown_chars bytes at a character boundary, with text's one cut marker.
std::string shown(std::string_view text) {
    const std::string_view kept = text::utf8_prefix(text, k_max_shown_chars);
    return "'" + escaped(kept) + (kept.size() < text.size() ? std::string(text::k_cut_marker) : "") + "'";
}

std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
    case YAML::NodeType::Scalar:
        return shown(node.Scalar());
    case YAML::NodeType::Sequence:
        return "a list";
    case YAML::NodeType::Map:
        return "a mapping";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
        break;
    }
    return "nothing";
}

std::string join(const std::vector<std::string_view>& words, std::string_view last_separator) {
    std::string out;
    for (std::size_t i = 0; i < words.size(); ++i) {
        if (i > 0) {
            out += (i + 1 == words.size()) ? last_separator : std::string_view(", ");
        }
        out += words[i];
    }
    return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            const std::size_t substitution = diagonal + (a[i - 1] == b[j - 1] ? 0U : 1U);
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitution});
            diagonal = above;
        }
    }
    return row[b.size()];
}

// Strict decimal integer: yaml-cpp's own conversion would read "010" as octal and "0x10" as hex.
std::optional<long long> parse_integer(std::string_view text) {
    if (!text.empty() && text.front() == '+') {
        text.remove_prefix(1);
    }
    long long value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

bool is_absolute_path(const std::string& path) {
    return !path.empty() && path.front() == '/';
}

const Entry* find(const Entries& entries, std::string_view key) {
    const auto it = std::find_if(entries.begin(), entries.end(), [key](const Entry& e) { return e.key == key; });
    return it == entries.end() ? nullptr : &*it;
}

// The mark to blame for a value: an implicit null ("key:" and nothing) has the mark of
// whatever follows it, so blame the key instead.
YAML::Mark value_mark(const Entry& entry) {
    return entry.value.IsNull() ? entry.key_node.Mark() : entry.value.Mark();
}

void Reader::add(const YAML::Mark& mark, std::string message) {
    const Position position = position_of(mark);
    // escaped() leaves escaped text as it is, so a value quoted with shown() is not escaped twice.
    m_problems.push_back({m_source, position.line, position.column, escaped(message)});
}

void Reader::record(const std::string& path, const YAML::Mark& mark) {
    m_positions[path] = position_of(mark);
}

Entries Reader::entries(const YAML::Node& node, const Where& where, const SectionSpec& spec) {
    Entries result;
    if (!node.IsMap()) {
        return result; // the caller reports the wrong type, naming the key
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
        const YAML::Node key_node = it->first;
        if (!key_node.IsScalar()) {
            add(key_node.Mark(),
                where.prefix + "keys must be plain strings, got " + describe(key_node) + " " + where.in);
            continue;
        }
        const std::string& key = key_node.Scalar();
        if (const Entry* first = find(result, key)) {
            // yaml-cpp keeps both; which one wins would be an accident, so neither does.
            add(key_node.Mark(), "duplicate key " + shown(key) + " " + where.in + " (first at line " +
                                     std::to_string(position_of(first->key_node.Mark()).line) + ")");
            continue;
        }
        if (std::find(spec.keys.begin(), spec.keys.end(), key) == spec.keys.end()) {
            std::string message = "unknown key " + shown(key) + " " + where.in;
            std::string_view best;
            std::size_t best_distance = 3; // more than two edits away is not a typo
            for (const std::string_view candidate : spec.keys) {
                const std::size_t distance = edit_distance(key, candidate);
                if (distance < best_distance && distance < candidate.size()) {
                    best = candidate;
                    best_distance = distance;
                }
            }
            const auto moved = std::find_if(spec.elsewhere.begin(), spec.elsewhere.end(),
                                            [&key](const auto& e) { return e.first == key; });
            if (!best.empty()) {
                message += " (did you mean '" + std::string(best) + "'?)";
            } else if (moved != spec.elsewhere.end()) {
                message += " (it belongs under '" + std::string(moved->second) + "')";
            }
            add(key_node.Mark(), std::move(message));
            continue;
        }
        Entry entry{key, key_node, it->second};
        record(where.key_path(key), value_mark(entry));
        result.push_back(std::move(entry));
    }
    return result;
}

Entries Reader::section(const Entries& parent, std::string_view key, const Where& parent_where, const Where& where,
                        const SectionSpec& spec) {
    const Entry* entry = find(parent, key);
    if (entry == nullptr || entry->value.IsNull()) {
        return {}; // absent or "key:" with nothing: all defaults
    }
    if (!entry->value.IsMap()) {
        wrong_type(parent_where, *entry, "a mapping");
        return {};
    }
    return entries(entry->value, where, spec);
}

void Reader::wrong_type(const Where& where, const Entry& entry, std::string_view expected) {
    add(value_mark(entry), where.prefix + "wrong type for '" + where.key_name(entry.key) + "': expected " +
                               std::string(expected) + ", got " + describe(entry.value));
}

std::optional<std::string> Reader::string_value(const Where& where, const Entry* entry) {
    if (entry == nullptr) {
        return std::nullopt;
    }
    if (!entry->value.IsScalar()) {
        wrong_type(where, *entry, "a string");
        return std::nullopt;
    }
    return entry->value.Scalar();
}

std::optional<long long> Reader::integer_value(const Where& where, const Entry* entry, std::string_view expected) {
    if (entry == nullptr) {
        return std::nullopt;
    }
    const auto value = entry->value.IsScalar() ? parse_integer(entry->value.Scalar()) : std::nullopt;
    if (!value || *value < INT_MIN || *value > INT_MAX) {
        wrong_type(where, *entry, expected);
        return std::nullopt;
    }
    return value;
}

std::optional<bool> Reader::bool_value(const Where& where, const Entry* entry) {
    if (entry == nullptr) {
        return std::nullopt;
    }
    bool value = false;
    if (!entry->value.IsScalar() || !YAML::convert<bool>::decode(entry->value, value)) {
        wrong_type(where, *entry, "true or false");
        return std::nullopt;
    }
    return value;
}

// A single string where a list is expected is read as a one-element list: "kind: sudo" and
// "kind: [sudo]" mean the same, and nobody should have to remember which keys allow which.
std::optional<std::vector<std::string>> Reader::list_value(const Where& where, const Entry* entry) {
    if (entry == nullptr) {
        return std::nullopt;
    }
    const std::string path = where.key_path(entry->key);
    std::vector<std::string> values;
    if (entry->value.IsNull()) {
        return values;
    }
    if (entry->value.IsScalar()) {
        record(path + "[0]", entry->value.Mark());
        values.push_back(entry->value.Scalar());
        return values;
    }
    if (!entry->value.IsSequence()) {
        wrong_type(where, *entry, "a list of strings");
        return std::nullopt;
    }
    bool ok = true;
    for (std::size_t i = 0; i < entry->value.size(); ++i) {
        const YAML::Node item = entry->value[i];
        if (!item.IsScalar()) {
            add(item.IsNull() ? entry->value.Mark() : item.Mark(),
                where.prefix + "wrong type for item " + std::to_string(i + 1) + " of '" + where.key_name(entry->key) +
                    "': expected a string, got " + describe(item));
            ok = false;
            continue;
        }
        record(path + "[" + std::to_string(i) + "]", item.Mark());
        values.push_back(item.Scalar());
    }
    if (!ok) {
        return std::nullopt;
    }
    return values;
}

std::optional<std::vector<std::pair<std::string, std::string>>>
Reader::string_map_value(const Where& where, const Entry* entry, std::string_view expected) {
    if (entry == nullptr) {
        return std::nullopt;
    }
    std::vector<std::pair<std::string, std::string>> values;
    if (entry->value.IsNull()) {
        return values;
    }
    if (!entry->value.IsMap()) {
        wrong_type(where, *entry, expected);
        return std::nullopt;
    }
    const std::string path = where.key_path(entry->key);
    bool ok = true;
    for (auto it = entry->value.begin(); it != entry->value.end(); ++it) {
        if (!it->first.IsScalar() || !it->second.IsScalar()) {
            add(it->first.Mark(), where.prefix + "'" + where.key_name(entry->key) + "': each entry must be " +
                                      "'<string>: <string>', got " + describe(it->second));
            ok = false;
            continue;
        }
        const std::string& key = it->first.Scalar();
        const auto first = std::find_if(values.begin(), values.end(), [&key](const auto& v) { return v.first == key; });
        if (first != values.end()) {
            add(it->first.Mark(),
                where.prefix + "duplicate key " + shown(key) + " in '" + where.key_name(entry->key) + "'");
            ok = false;
            continue;
        }
        record(path + "." + key, it->second.Mark());
        values.emplace_back(key, it->second.Scalar());
    }
    if (!ok) {
        return std::nullopt;
    }
    return values;
}

std::optional<Seconds> Reader::duration_value(const Where& where, const Entry* entry) {
    if (entry == nullptr) {
        return std::nullopt;
    }
    if (!entry->value.IsScalar()) {
        wrong_type(where, *entry, "a duration such as 15m");
        return std::nullopt;
    }
    auto value = parse_duration(entry->value.Scalar());
    if (!value) {
        add(entry->value.Mark(), where.prefix + "bad duration " + shown(entry->value.Scalar()) + " for '" +
                                     where.key_name(entry->key) +
                                     "': expected a positive number of seconds, or a positive number followed by "
                                     "s, m, h or d (e.g. 30s, 15m, 2h, 1d)");
    }
    return value;
}

std::optional<std::uint64_t> Reader::size_value(const Where& where, const Entry* entry) {
    if (entry == nullptr) {
        return std::nullopt;
    }
    const auto value = entry->value.IsScalar() ? parse_size(entry->value.Scalar()) : std::nullopt;
    if (!value) {
        wrong_type(where, *entry, "a size such as 4096, 512KiB, 8MiB or 1GiB");
    }
    return value;
}

bool read_document(const std::string& text, Reader& reader, const std::function<void(const YAML::Node&)>& build) {
    try {
        const auto finding = DocumentProbe().check(text);
        if (finding) {
            reader.add(finding->mark, finding->message);
        }
        if (!finding || finding->first_document_usable) {
            build(YAML::Load(text));
            return true;
        }
    } catch (const YAML::ParserException& e) {
        reader.add(e.mark, "YAML syntax error: " + escaped(e.msg) + syntax_hint(text, e.mark));
    } catch (const YAML::Exception& e) {
        reader.add(e.mark, "cannot read the YAML: " + escaped(e.msg));
    }
    return false;
}

std::optional<Problem> read_text_file(const std::string& path, std::string_view what, std::string& text) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return Problem{path, 0, 0, "cannot open " + std::string(what) + ": " + error_text(errno)};
    }
    text.clear();
    std::array<char, 65536> buffer{};
    for (;;) {
        const ssize_t n = read(fd, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            const int error = errno;
            close(fd);
            return Problem{path, 0, 0, "cannot read " + std::string(what) + ": " + error_text(error)};
        }
        if (n == 0) {
            break;
        }
        text.append(buffer.data(), static_cast<std::size_t>(n));
    }
    close(fd);
    return std::nullopt;
}

void sort_in_file_order(std::vector<Problem>& problems) {
    std::stable_sort(problems.begin(), problems.end(), [](const Problem& a, const Problem& b) {
        return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
}

} // namespace jitgate::config
