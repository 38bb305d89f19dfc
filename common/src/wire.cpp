#include "jitgate/wire.hpp"

#include "jitgate/error.hpp"

namespace jitgate::wire {

std::string encode(const Json& msg) {
    // Replace, never throw, on invalid UTF-8: callers put raw bytes only through
    // text::arg_to_json, so this is a last line of defence, not a data path.
    const std::string payload = msg.dump(-1, ' ', false, Json::error_handler_t::replace);
    if (payload.size() > k_max_frame)
        throw Error(ErrorCode::protocol, "frame",
                    "message of " + std::to_string(payload.size()) + " bytes exceeds the limit of " +
                        std::to_string(k_max_frame));
    const auto n = static_cast<std::uint32_t>(payload.size());
    std::string out;
    out.reserve(k_header_size + payload.size());
    out += static_cast<char>((n >> 24) & 0xFF);
    out += static_cast<char>((n >> 16) & 0xFF);
    out += static_cast<char>((n >> 8) & 0xFF);
    out += static_cast<char>(n & 0xFF);
    out += payload;
    return out;
}

void FrameDecoder::feed(std::string_view bytes) {
    // Compact what has been consumed so a long-lived connection does not grow its buffer (a
    // buffer consumed to its end was already given back by next()).
    if (m_pos > k_max_frame) {
        m_buf.erase(0, m_pos);
        m_pos = 0;
    }
    if (m_buf.size() - m_pos + bytes.size() > 2 * (k_max_frame + k_header_size))
        throw Error(ErrorCode::protocol, "frame", "peer sent more than two frames without waiting");
    m_buf.append(bytes);
}

std::optional<Json> FrameDecoder::next() {
    if (m_buf.size() - m_pos < k_header_size) return std::nullopt;
    const auto b = [&](std::size_t i) {
        return static_cast<std::uint32_t>(static_cast<unsigned char>(m_buf[m_pos + i]));
    };
    const std::uint32_t n = (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
    if (n == 0) throw Error(ErrorCode::protocol, "frame", "empty frame");
    if (n > k_max_frame)
        throw Error(ErrorCode::protocol, "frame",
                    "frame of " + std::to_string(n) + " bytes exceeds the limit of " + std::to_string(k_max_frame));
    if (m_buf.size() - m_pos < k_header_size + n) return std::nullopt;
    const std::string_view payload(m_buf.data() + m_pos + k_header_size, n);
    m_pos += k_header_size + n;
    Json msg = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
    // Everything buffered is consumed: give the buffer back rather than keep a frame's worth
    // of capacity for as long as the connection lasts (the daemon holds one connection per
    // waiting request, which sends nothing more while it waits).
    if (m_pos == m_buf.size()) {
        std::string().swap(m_buf);
        m_pos = 0;
    }
    if (msg.is_discarded()) throw Error(ErrorCode::protocol, "frame", "payload is not valid JSON");
    if (!msg.is_object()) throw Error(ErrorCode::protocol, "frame", "payload is not a JSON object");
    return msg;
}

namespace {
[[noreturn]] void bad_field(const char* field, const char* what) {
    throw Error(ErrorCode::protocol, field, what);
}
} // namespace

std::string require_string(const Json& msg, const char* field) {
    const auto it = msg.find(field);
    if (it == msg.end()) bad_field(field, "missing");
    if (!it->is_string()) bad_field(field, "must be a string");
    return it->get<std::string>();
}

std::string optional_string(const Json& msg, const char* field, std::string fallback) {
    const auto it = msg.find(field);
    if (it == msg.end() || it->is_null()) return fallback;
    if (!it->is_string()) bad_field(field, "must be a string");
    return it->get<std::string>();
}

std::int64_t require_int(const Json& msg, const char* field) {
    const auto it = msg.find(field);
    if (it == msg.end()) bad_field(field, "missing");
    if (!it->is_number_integer()) bad_field(field, "must be an integer");
    return it->get<std::int64_t>();
}

std::int64_t optional_int(const Json& msg, const char* field, std::int64_t fallback) {
    const auto it = msg.find(field);
    if (it == msg.end() || it->is_null()) return fallback;
    if (!it->is_number_integer()) bad_field(field, "must be an integer");
    return it->get<std::int64_t>();
}

bool optional_bool(const Json& msg, const char* field, bool fallback) {
    const auto it = msg.find(field);
    if (it == msg.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) bad_field(field, "must be a boolean");
    return it->get<bool>();
}

} // namespace jitgate::wire
