// jitgate/wire.hpp — framing of the local socket protocol.
//
// A frame is a u32 big-endian payload length followed by that many bytes of UTF-8 JSON
// (one object). Payloads are at most k_max_frame bytes; anything else is a protocol error
// and the receiver closes the connection. See docs/wire-protocol.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace jitgate::wire {

using Json = nlohmann::json;

inline constexpr std::size_t k_max_frame = 64 * 1024;
inline constexpr std::size_t k_header_size = 4;
inline constexpr int k_protocol_version = 1;

// Serialises `msg` into one frame (header + payload).
// Throws jitgate::Error(protocol) if the payload would exceed k_max_frame.
std::string encode(const Json& msg);

// Incremental decoder for a byte stream. Not thread-safe; one per connection.
class FrameDecoder {
public:
    // Appends received bytes. Throws Error(protocol) once more than one frame's worth of
    // bytes is buffered without a complete frame (a peer cannot make us buffer unbounded).
    void feed(std::string_view bytes);

    // Returns the next complete message, or nullopt if more bytes are needed.
    // Throws Error(protocol) for an oversized length, a zero length, invalid JSON,
    // or a payload that is not a JSON object. After a throw the decoder is unusable.
    std::optional<Json> next();

    // True if part of a frame is buffered (a peer closing now truncated a frame).
    bool has_partial() const noexcept { return m_pos < m_buf.size(); }

private:
    std::string m_buf;
    std::size_t m_pos = 0;
};

// Typed accessors that throw Error(protocol, "<field>: <what is wrong>") on a missing
// field or a wrong type. `optional_*` return the fallback when the field is absent or null.
std::string require_string(const Json& msg, const char* field);
std::string optional_string(const Json& msg, const char* field, std::string fallback = {});
std::int64_t require_int(const Json& msg, const char* field);
std::int64_t optional_int(const Json& msg, const char* field, std::int64_t fallback);
bool optional_bool(const Json& msg, const char* field, bool fallback);

} // namespace jitgate::wire
