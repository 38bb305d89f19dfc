#include "jitgate/wire.hpp"

#include <algorithm>
#include <charconv>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"

namespace jitgate::wire {
namespace {

void check_payload_size(std::size_t size) {
    if (size > k_max_frame)
        throw Error(ErrorCode::protocol, "frame",
                    "message of " + std::to_string(size) + " bytes exceeds the limit of " +
                        std::to_string(k_max_frame));
}

// `s` as a JSON string, exactly as Json::dump(-1, ' ', false, replace) writes it: valid UTF-8 is
// copied but for '"', '\\' and the control characters below 0x20 (short escapes where JSON has
// them, else \u00xx); anything else is left to dump itself, which replaces the bad bytes.
void append_string(std::string& out, std::string_view s) {
    bool ascii = true;
    for (const char c : s) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
    if (!ascii && !text::is_valid_utf8(s)) {
        out += Json(std::string(s)).dump(-1, ' ', false, Json::error_handler_t::replace);
        return;
    }
    static constexpr char k_hex[] = "0123456789abcdef";
    out += '"';
    std::size_t copied = 0; // s[copied, i) needs no escape and is not yet in `out`
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        out.append(s.substr(copied, i - copied));
        copied = i + 1;
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\b':
            out += "\\b";
            break;
        case '\t':
            out += "\\t";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\f':
            out += "\\f";
            break;
        case '\r':
            out += "\\r";
            break;
        default:
            out += "\\u00";
            out += k_hex[c >> 4];
            out += k_hex[c & 0x0F];
        }
    }
    out.append(s.substr(copied));
    out += '"';
}

} // namespace

std::string encode(const Json& msg) {
    // Replace, never throw, on invalid UTF-8: callers put raw bytes only through
    // text::arg_to_json, so this is a last line of defence, not a data path.
    const std::string payload = msg.dump(-1, ' ', false, Json::error_handler_t::replace);
    check_payload_size(payload.size());
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

ObjectWriter::ObjectWriter() {
    m_out.reserve(1024);
    m_out.assign(k_header_size, '\0'); // the length, once known
    m_out += '{';
}

void ObjectWriter::key(std::string_view key) {
    // Keys are written as they are, unescaped: only the protocol's own names ([a-z0-9_]) may be
    // keys, never a value from a user (it could add or repeat a member). A caller that breaks
    // this gets an error, which the plugins turn into a denial.
    if (key.empty() || !std::all_of(key.begin(), key.end(), [](char ch) {
            return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
        }))
        throw Error(ErrorCode::internal, "wire",
                    "not a protocol member name: " + text::escape_for_log(std::string(key)));
    if (m_out.size() > k_header_size + 1) m_out += ',';
    m_out += '"';
    m_out += key;
    m_out += "\":";
}

void ObjectWriter::string(std::string_view key, std::string_view value) {
    this->key(key);
    append_string(m_out, value);
}

void ObjectWriter::integer(std::string_view key, std::int64_t value) {
    this->key(key);
    char buf[24];
    const auto res = std::to_chars(buf, buf + sizeof buf, value);
    m_out.append(buf, res.ptr);
}

void ObjectWriter::boolean(std::string_view key, bool value) {
    this->key(key);
    m_out += value ? "true" : "false";
}

void ObjectWriter::arg_value(std::string_view value) {
    if (text::is_valid_utf8(value)) {
        append_string(m_out, value);
        return;
    }
    m_out += "{\"b64\":\"";
    m_out += text::base64_encode(value);
    m_out += "\"}";
}

void ObjectWriter::arg(std::string_view key, std::string_view value) {
    this->key(key);
    arg_value(value);
}

void ObjectWriter::argv(std::string_view key, const std::vector<std::string>& values) {
    this->key(key);
    m_out += '[';
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) m_out += ',';
        arg_value(values[i]);
    }
    m_out += ']';
}

std::string ObjectWriter::frame() && {
    m_out += '}';
    const std::size_t size = m_out.size() - k_header_size;
    check_payload_size(size);
    const auto n = static_cast<std::uint32_t>(size);
    m_out[0] = static_cast<char>((n >> 24) & 0xFF);
    m_out[1] = static_cast<char>((n >> 16) & 0xFF);
    m_out[2] = static_cast<char>((n >> 8) & 0xFF);
    m_out[3] = static_cast<char>(n & 0xFF);
    return std::move(m_out);
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
