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
#include <vector>

#include <nlohmann/json.hpp>

namespace jitgate::wire {

using Json = nlohmann::json;

inline constexpr std::size_t k_max_frame = 64 * 1024;
inline constexpr std::size_t k_header_size = 4;
inline constexpr int k_protocol_version = 1;

// Serialises `msg` into one frame (header + payload).
// Throws jitgate::Error(protocol) if the payload would exceed k_max_frame.
std::string encode(const Json& msg);

// Writes one frame holding one JSON object straight into its bytes, without building a Json:
// for the requests a plugin sends once per sudo or login. Building them as a Json, serialising
// and freeing it cost more instructions than everything else the sudo plugin does in sudo
// (docs/PERFORMANCE.md, "The plugin's own cost"). Strings are escaped as Json::dump escapes
// them, and a string that is not valid UTF-8 goes through dump itself (replaced, as encode()
// does), so the members written in Json's sorted key order give exactly encode()'s bytes (the
// unit tests compare the two). Keys are written unescaped, so only protocol member names
// ([a-z0-9_]+) are taken: any other key throws Error(internal).
class ObjectWriter {
public:
    ObjectWriter();
    void string(std::string_view key, std::string_view value);
    void integer(std::string_view key, std::int64_t value);
    void boolean(std::string_view key, bool value);
    // As text::arg_to_json / text::argv_to_json: a string, or {"b64": ...} for bytes that are
    // not valid UTF-8.
    void arg(std::string_view key, std::string_view value);
    void argv(std::string_view key, const std::vector<std::string>& values);
    // Closes the object and returns the frame (header + payload). Throws Error(protocol) if the
    // payload exceeds k_max_frame, as encode() does.
    std::string frame() &&;

private:
    void key(std::string_view key);
    void arg_value(std::string_view value);
    std::string m_out;
};

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
