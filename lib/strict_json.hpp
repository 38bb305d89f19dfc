// lib/strict_json.hpp — parsing JSON that comes from someone else (a grant, a host's request
// body, an IdP's answer) without the ambiguities attackers use: a duplicate member is refused
// (never "the last one wins", which can differ between two parsers looking at the same bytes)
// and nesting is bounded. Depends on nlohmann::json only. Thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace jitgate::strict_json {

inline constexpr std::size_t k_max_depth = 32;

struct Parsed {
    nlohmann::json value; // discarded (is_discarded()) when `error` is set
    std::string error;    // empty on success, else "is not JSON", "has a duplicate member \"x\"", ...
};

// Parses `text` as one JSON value with no duplicate member in any object and at most
// k_max_depth levels of nesting. Never throws except std::bad_alloc.
Parsed parse(std::string_view text);

// As parse(), and the value must be an object ("is not a JSON object" otherwise).
Parsed parse_object(std::string_view text);

} // namespace jitgate::strict_json
