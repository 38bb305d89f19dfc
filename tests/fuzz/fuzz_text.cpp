// Fuzz target: text escaping (common/src/text.cpp), the last step before user-controlled text
// (argv, reason, ticket) reaches a log line or an approver's terminal.
// Properties: escape_for_log() and display_argv() never hold a control, bidi or invalid UTF-8
// character; escape_for_log() is reversible (an independent unescaper gets the input back);
// the wire form of an argument and base64url round-trip.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "jitgate/error.hpp"
#include "jitgate/text.hpp"

namespace {

using jitgate::fuzz::require;
using jitgate::fuzz::require_printable;

void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// The inverse of escape_for_log as text.hpp documents it: \\ \n \r \t \xNN \u{HHHH}.
std::string unescape(std::string_view e) {
    std::string out;
    for (std::size_t i = 0; i < e.size();) {
        if (e[i] != '\\') {
            out += e[i++];
            continue;
        }
        require(i + 1 < e.size(), "escape_for_log output ends with a lone backslash", e);
        const char k = e[i + 1];
        if (k == '\\' || k == 'n' || k == 'r' || k == 't') {
            out += k == '\\' ? '\\' : k == 'n' ? '\n' : k == 'r' ? '\r' : '\t';
            i += 2;
        } else if (k == 'x') {
            require(i + 3 < e.size() && hex_digit(e[i + 2]) >= 0 && hex_digit(e[i + 3]) >= 0, "bad \\x escape", e);
            out += static_cast<char>(hex_digit(e[i + 2]) * 16 + hex_digit(e[i + 3]));
            i += 4;
        } else if (k == 'u') {
            const auto close = e.find('}', i);
            require(i + 2 < e.size() && e[i + 2] == '{' && close != std::string_view::npos, "bad \\u escape", e);
            std::uint32_t cp = 0;
            for (std::size_t p = i + 3; p < close; ++p) {
                require(hex_digit(e[p]) >= 0 && close - (i + 3) <= 6, "bad \\u{} digits", e);
                cp = cp * 16 + static_cast<std::uint32_t>(hex_digit(e[p]));
            }
            append_utf8(out, cp);
            i = close + 1;
        } else {
            require(false, "unknown escape in escape_for_log output", e);
        }
    }
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace text = jitgate::text;
    const std::string input(reinterpret_cast<const char*>(data), size);

    const std::string escaped = text::escape_for_log(input);
    require_printable(escaped, "escape_for_log");
    require(unescape(escaped) == input, "escape_for_log is not reversible", input);
    require(text::is_valid_utf8(escaped), "escape_for_log output fails is_valid_utf8", escaped);

    // Split at NUL bytes into an argv (an argument never holds a NUL, as in execve).
    std::vector<std::string> argv(1);
    for (char c : input) {
        if (c == '\0')
            argv.emplace_back();
        else
            argv.back() += c;
    }
    const std::string line = text::display_argv(argv);
    require_printable(line, "display_argv");

    for (const auto& arg : argv) {
        require(text::arg_from_json(text::arg_to_json(arg)) == arg, "arg wire form does not round-trip", arg);
    }
    require(text::base64url_decode(text::base64url_encode(input)) == input, "base64url does not round-trip", input);

    // Decoders on hostile text: a jitgate::Error is the only allowed failure.
    try {
        (void)text::base64url_decode(input);
    } catch (const jitgate::Error&) {
    }
    try {
        (void)text::base64_decode(input);
    } catch (const jitgate::Error&) {
    }
    return 0;
}
