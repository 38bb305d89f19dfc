// jitgate/text.hpp — safe handling of user-controlled text (argv, reason, ticket).
//
// Arguments are byte strings: they may hold newlines, terminal escapes and invalid UTF-8.
// On the wire an argument is a JSON string when it is valid UTF-8 and {"b64": "..."}
// otherwise, so that no byte is lost and two different argv never look alike.
// Before any such text reaches a log line or a terminal it goes through escape_for_log().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace jitgate::text {

// True if `s` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s) noexcept;

// Returns printable text: control characters (C0, DEL, C1) and invalid UTF-8 bytes become
// \xNN (or \n, \r, \t), a backslash becomes "\\". The result is valid UTF-8, has no
// control character, and is reversible. Never throws except std::bad_alloc.
std::string escape_for_log(std::string_view s);

// `s` as is when it is already printable (valid UTF-8, no C0 control or DEL), else
// escape_for_log(s) as a whole. For messages built from pieces that were escaped already, so
// they are not escaped twice. Thread-safe; never throws except std::bad_alloc.
std::string printable(std::string_view s);

// The one marker for text cut short in a message.
inline constexpr std::string_view k_cut_marker = "...";

// The longest prefix of `s` of at most `max` bytes that does not end inside a UTF-8 sequence
// (a cut never makes a valid character look like invalid bytes). A view into `s`.
std::string_view utf8_prefix(std::string_view s, std::size_t max) noexcept;

// Someone else's text (a URL, a peer's error, a path) for one line of a log or message:
// escape_for_log of utf8_prefix(s, max), then k_cut_marker if anything was cut. Callers that
// quote the value put the quotes around it themselves. Never throws except std::bad_alloc.
std::string shown(std::string_view s, std::size_t max);

// "1 event", "2 events", "0 events": the count and the right word.
std::string plural(std::uint64_t n, std::string_view one, std::string_view many);

// Joins argv into one escaped display line: each argument escaped, separated by spaces,
// and an argument that is empty or contains a space is shown in single quotes.
std::string display_argv(const std::vector<std::string>& argv);

std::string base64_encode(std::string_view bytes);
// Throws jitgate::Error(protocol) on invalid base64.
std::string base64_decode(std::string_view text);
// RFC 4648 section 5 (URL- and file-safe alphabet, no '=' padding), as JWS uses it.
std::string base64url_encode(std::string_view bytes);
// Throws jitgate::Error(protocol) on a character outside the alphabet, on padding, or on a
// length that no encoding produces (length % 4 == 1).
std::string base64url_decode(std::string_view text);

// Wire form of one argument (see the header comment) and back.
nlohmann::json arg_to_json(const std::string& arg);
// Throws jitgate::Error(protocol) if `j` is neither a string nor {"b64": string}.
std::string arg_from_json(const nlohmann::json& j);

nlohmann::json argv_to_json(const std::vector<std::string>& argv);
std::vector<std::string> argv_from_json(const nlohmann::json& j);

} // namespace jitgate::text
