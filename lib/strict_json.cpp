// lib/strict_json.cpp — see strict_json.hpp.
#include "lib/strict_json.hpp"

#include "jitgate/text.hpp"

#include <set>
#include <vector>

namespace jitgate::strict_json {

namespace {

// The duplicate name cut to 64 bytes (at a UTF-8 boundary), escaped, in quotes, with the cut
// marker after the quote when it was cut.
std::string duplicate_message(const std::string& name) {
    const std::string_view kept = text::utf8_prefix(name, 64);
    std::string out = "has a duplicate member \"" + text::escape_for_log(kept) + "\"";
    if (kept.size() < name.size()) out += text::k_cut_marker;
    return out;
}

} // namespace

Parsed parse(std::string_view text) {
    using Json = nlohmann::json;
    std::vector<std::set<std::string>> seen; // the keys of each open object
    std::size_t depth = 0;
    std::string problem;
    const Json::parser_callback_t check = [&](int, Json::parse_event_t event, Json& parsed) {
        switch (event) {
        case Json::parse_event_t::object_start:
            seen.emplace_back();
            [[fallthrough]];
        case Json::parse_event_t::array_start:
            if (++depth > k_max_depth && problem.empty())
                problem = "nests deeper than " + std::to_string(k_max_depth) + " levels";
            break;
        case Json::parse_event_t::object_end:
            if (!seen.empty()) seen.pop_back();
            [[fallthrough]];
        case Json::parse_event_t::array_end:
            if (depth > 0) --depth;
            break;
        case Json::parse_event_t::key:
            if (!seen.empty() && parsed.is_string() && !seen.back().insert(parsed.get<std::string>()).second &&
                problem.empty())
                problem = duplicate_message(parsed.get<std::string>());
            break;
        case Json::parse_event_t::value:
            break;
        }
        return true;
    };
    Parsed out;
    out.value = Json::parse(text.begin(), text.end(), check, /*allow_exceptions=*/false);
    if (out.value.is_discarded()) {
        out.error = "is not JSON";
    } else if (!problem.empty()) {
        out.error = problem;
        out.value = Json(Json::value_t::discarded);
    }
    return out;
}

Parsed parse_object(std::string_view text) {
    Parsed out = parse(text);
    if (out.error.empty() && !out.value.is_object()) {
        out.error = "is not a JSON object";
        out.value = nlohmann::json(nlohmann::json::value_t::discarded);
    }
    return out;
}

} // namespace jitgate::strict_json
