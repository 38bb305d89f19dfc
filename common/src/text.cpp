#include "jitgate/text.hpp"

#include <array>
#include <cstdint>
#include <cstdio>

#include "jitgate/error.hpp"

namespace jitgate::text {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not valid there.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = byte(i);
    if (c < 0x80) return 1;
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07u;
    } else
        return 0;
    if (i + len > s.size()) return 0;
    for (std::size_t k = 1; k < len; ++k) {
        const unsigned char cc = byte(i + k);
        if ((cc & 0xC0u) != 0x80u) return 0;
        cp = (cp << 6) | (cc & 0x3Fu);
    }
    // Overlongs, surrogates and code points past U+10FFFF are invalid.
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

// Code point of a valid multi-byte sequence.
std::uint32_t code_point(std::string_view s, std::size_t i, std::size_t len) noexcept {
    const auto b = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(s[i + k])); };
    if (len == 2) return ((b(0) & 0x1Fu) << 6) | (b(1) & 0x3Fu);
    if (len == 3) return ((b(0) & 0x0Fu) << 12) | ((b(1) & 0x3Fu) << 6) | (b(2) & 0x3Fu);
    return ((b(0) & 0x07u) << 18) | ((b(1) & 0x3Fu) << 12) | ((b(2) & 0x3Fu) << 6) | (b(3) & 0x3Fu);
}

// SECURITY NOTE: characters that are invisible, look like a space, or reorder text (bidi
// controls) would let an argv read differently to an approver than what runs.
bool deceptive(std::uint32_t cp) noexcept {
    return cp == 0x00A0 || cp == 0x00AD || cp == 0x034F || cp == 0x061C || cp == 0x1680 || cp == 0x180E ||
           (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x206F) ||
           cp == 0x3000 || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB) || (cp >= 0xE0000 && cp <= 0xE007F);
}

void append_hex_escape(std::string& out, unsigned char c) {
    static constexpr char k_hex[] = "0123456789abcdef";
    out += "\\x";
    out += k_hex[c >> 4];
    out += k_hex[c & 0x0F];
}

constexpr std::string_view k_b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

} // namespace

bool is_valid_utf8(std::string_view s) noexcept {
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8_sequence_length(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string escape_for_log(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        const std::size_t n = utf8_sequence_length(s, i);
        if (n == 0) { // invalid byte: show it, never pass it through
            append_hex_escape(out, c);
            ++i;
            continue;
        }
        if (n == 1) {
            if (c == '\\')
                out += "\\\\";
            else if (c == '\n')
                out += "\\n";
            else if (c == '\r')
                out += "\\r";
            else if (c == '\t')
                out += "\\t";
            else if (c < 0x20 || c == 0x7F)
                append_hex_escape(out, c);
            else
                out += static_cast<char>(c);
        } else if (n == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0) {
            // C1 controls (U+0080..U+009F): some terminals act on them (CSI is U+009B).
            append_hex_escape(out, c);
            append_hex_escape(out, static_cast<unsigned char>(s[i + 1]));
        } else if (const std::uint32_t cp = code_point(s, i, n); deceptive(cp)) {
            char buf[16];
            std::snprintf(buf, sizeof buf, "\\u{%04x}", static_cast<unsigned>(cp));
            out += buf;
        } else {
            out.append(s.substr(i, n));
        }
        i += n;
    }
    return out;
}

std::string display_argv(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& arg : argv) {
        if (!out.empty()) out += ' ';
        const std::string e = escape_for_log(arg);
        if (e.empty() || e.find_first_of(" '") != std::string::npos) {
            out += '\'';
            for (char ch : e) {
                if (ch == '\'')
                    out += "\\'";
                else
                    out += ch;
            }
            out += '\'';
        } else {
            out += e;
        }
    }
    return out;
}

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const auto v = (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16) |
                       (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
        out += k_b64[(v >> 18) & 63];
        out += k_b64[(v >> 12) & 63];
        out += k_b64[(v >> 6) & 63];
        out += k_b64[v & 63];
    }
    if (i < bytes.size()) {
        auto v = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
        if (i + 1 < bytes.size()) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
        out += k_b64[(v >> 18) & 63];
        out += k_b64[(v >> 12) & 63];
        out += i + 1 < bytes.size() ? k_b64[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::string base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) throw Error(ErrorCode::protocol, "base64", "length is not a multiple of 4");
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        std::uint32_t v = 0;
        int pad = 0;
        for (std::size_t k = 0; k < 4; ++k) {
            const char ch = text[i + k];
            std::uint32_t d = 0;
            if (ch == '=' && i + 4 == text.size() && k >= 2) {
                ++pad;
            } else {
                const auto pos = pad == 0 ? k_b64.find(ch) : std::string_view::npos;
                if (pos == std::string_view::npos) throw Error(ErrorCode::protocol, "base64", "invalid character");
                d = static_cast<std::uint32_t>(pos);
            }
            v = (v << 6) | d;
        }
        out += static_cast<char>((v >> 16) & 0xFF);
        if (pad < 2) out += static_cast<char>((v >> 8) & 0xFF);
        if (pad < 1) out += static_cast<char>(v & 0xFF);
    }
    return out;
}

std::string base64url_encode(std::string_view bytes) {
    std::string out = base64_encode(bytes);
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (auto& ch : out) {
        if (ch == '+')
            ch = '-';
        else if (ch == '/')
            ch = '_';
    }
    return out;
}

std::string base64url_decode(std::string_view text) {
    if (text.size() % 4 == 1) throw Error(ErrorCode::protocol, "base64url", "impossible length");
    std::string std_form;
    std_form.reserve(text.size() + 3);
    for (const char ch : text) {
        if (ch == '+' || ch == '/' || ch == '=') throw Error(ErrorCode::protocol, "base64url", "invalid character");
        std_form += ch == '-' ? '+' : ch == '_' ? '/' : ch;
    }
    while (std_form.size() % 4 != 0) std_form += '=';
    return base64_decode(std_form);
}

nlohmann::json arg_to_json(const std::string& arg) {
    if (is_valid_utf8(arg)) return arg;
    return nlohmann::json{{"b64", base64_encode(arg)}};
}

std::string arg_from_json(const nlohmann::json& j) {
    if (j.is_string()) return j.get<std::string>();
    if (j.is_object() && j.size() == 1 && j.contains("b64") && j["b64"].is_string())
        return base64_decode(j["b64"].get<std::string>());
    throw Error(ErrorCode::protocol, "argv", "an argument must be a string or {\"b64\": string}");
}

nlohmann::json argv_to_json(const std::vector<std::string>& argv) {
    auto out = nlohmann::json::array();
    for (const auto& a : argv) out.push_back(arg_to_json(a));
    return out;
}

std::vector<std::string> argv_from_json(const nlohmann::json& j) {
    if (!j.is_array()) throw Error(ErrorCode::protocol, "argv", "expected an array");
    std::vector<std::string> out;
    out.reserve(j.size());
    for (const auto& a : j) out.push_back(arg_from_json(a));
    return out;
}

std::string printable(std::string_view s) {
    bool plain = is_valid_utf8(s);
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F) plain = false;
    }
    return plain ? std::string(s) : escape_for_log(s);
}

std::string_view utf8_prefix(std::string_view s, std::size_t max) noexcept {
    if (s.size() <= max) return s;
    std::size_t cut = max;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0u) == 0x80u) --cut;
    return s.substr(0, cut);
}

std::string shown(std::string_view s, std::size_t max) {
    const std::string_view kept = utf8_prefix(s, max);
    std::string out = escape_for_log(kept);
    if (kept.size() < s.size()) out += k_cut_marker;
    return out;
}

std::string plural(std::uint64_t n, std::string_view one, std::string_view many) {
    std::string out = std::to_string(n);
    out += ' ';
    out += n == 1 ? one : many;
    return out;
}

} // namespace jitgate::text
