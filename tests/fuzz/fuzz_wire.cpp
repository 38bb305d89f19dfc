// Fuzz target: the frame decoder and the typed messages of the local protocol
// (common/src/wire.cpp, messages.cpp): what jitgated reads from any local peer, and what the
// plugins read from the socket.
// The first input byte sets how the rest is cut into feed() calls. Properties: only
// jitgate::Error escapes (no other exception, no crash); every decoded message is a JSON
// object that re-encodes into one frame and decodes back the same; a message that parses as a
// check / finished / session / decision converts back to JSON that parses to the same JSON.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "jitgate/error.hpp"
#include "jitgate/messages.hpp"
#include "jitgate/wire.hpp"

namespace {

using jitgate::fuzz::require;
using Json = nlohmann::json;

template <typename Parse>
void round_trip(const Json& j, Parse parse, const char* what) {
    try {
        const auto typed = parse(j);
        const Json again = jitgate::msg::to_json(typed);
        require(jitgate::msg::to_json(parse(again)) == again, what,
                j.dump(-1, ' ', false, Json::error_handler_t::replace));
    } catch (const jitgate::Error&) {
    }
}

void check_message(const Json& m) {
    require(m.is_object(), "decoder returned a non-object");
    // Re-encoding may refuse (the replacement of invalid UTF-8 can grow a payload past the limit).
    try {
        const std::string frame = jitgate::wire::encode(m);
        jitgate::wire::FrameDecoder d;
        d.feed(frame);
        const auto back = d.next();
        require(back.has_value() && !d.has_partial(), "a re-encoded frame does not decode as one frame", frame);
        // Compared as text: a number too big for a double was read as infinity and is written as null.
        require(back->dump() == m.dump(), "a re-encoded message changed", frame);
    } catch (const jitgate::Error&) {
    }
    round_trip(m, jitgate::msg::check_from_json, "check does not round-trip");
    round_trip(m, jitgate::msg::finished_from_json, "finished does not round-trip");
    round_trip(m, jitgate::msg::session_from_json, "session does not round-trip");
    round_trip(m, jitgate::msg::decision_from_json, "decision does not round-trip");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t chunk = 1 + data[0] % 64 * (data[0] >= 128 ? 1024 : 1);
    const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
    jitgate::wire::FrameDecoder decoder;
    try {
        for (std::size_t pos = 0; pos < stream.size(); pos += chunk) {
            decoder.feed(stream.substr(pos, chunk));
            while (auto m = decoder.next()) check_message(*m);
        }
    } catch (const jitgate::Error&) {
        // The connection would be closed here; nothing more to check.
    }
    return 0;
}
