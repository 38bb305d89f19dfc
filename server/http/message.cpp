// server/http/message.cpp — the plain-data side of the HTTP layer: Request look-ups, response
// helpers, ClientIdentity::may_act_for, and the strict path and query decoders.
#include <optional>

#include "server/http/http.hpp"
#include "server/http/internal.hpp"

namespace jitgate::server::http {

bool ClientIdentity::may_act_for(std::string_view host) const {
    if (host.empty()) return false;
    for (const auto& n : names)
        if (n == host) return true;
    return false;
}

const std::string* Request::header(std::string_view lower_case_name) const {
    for (const auto& [name, value] : headers)
        if (name == lower_case_name) return &value;
    return nullptr;
}

std::optional<std::string> Request::query_value(std::string_view name) const {
    for (const auto& [n, v] : query)
        if (n == name) return v;
    return std::nullopt;
}

Response json_response(int status, std::string body) {
    return text_response(status, "application/json", std::move(body));
}

Response text_response(int status, std::string content_type, std::string body) {
    Response r;
    r.status = status;
    r.headers.emplace_back("Content-Type", std::move(content_type));
    r.body = std::move(body);
    return r;
}

namespace detail {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// %XX-decodes `raw` (and '+' to a space when plus_is_space); nullopt on a bad escape or NUL.
std::optional<std::string> percent_decode(std::string_view raw, bool plus_is_space) {
    std::string out;
    out.reserve(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) {
        char c = raw[i];
        if (c == '%') {
            if (i + 2 >= raw.size()) return std::nullopt; // truncated escape
            const int hi = hex_value(raw[i + 1]);
            const int lo = hex_value(raw[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            c = static_cast<char>(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0') return std::nullopt;
        out += c;
    }
    return out;
}

} // namespace

std::optional<std::string> decode_path(std::string_view raw) {
    if (raw.empty() || raw.front() != '/') return std::nullopt;
    auto path = percent_decode(raw, false);
    if (!path) return std::nullopt;
    // SECURITY NOTE: no handler ever needs "..", '?' or a control character in a path, and a
    // path that has one is either an attack or a bug: refuse it instead of normalising it.
    if (path->find("..") != std::string::npos || path->find('?') != std::string::npos) return std::nullopt;
    for (const char c : *path)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
    return path;
}

std::optional<Fields> decode_query(std::string_view raw) {
    Fields fields;
    std::size_t start = 0;
    while (start <= raw.size()) {
        std::size_t end = raw.find('&', start);
        if (end == std::string_view::npos) end = raw.size();
        const std::string_view piece = raw.substr(start, end - start);
        if (!piece.empty()) {
            const std::size_t eq = piece.find('=');
            auto name = percent_decode(piece.substr(0, eq), true);
            auto value = eq == std::string_view::npos ? std::optional<std::string>(std::string())
                                                      : percent_decode(piece.substr(eq + 1), true);
            if (!name || !value) return std::nullopt;
            fields.emplace_back(std::move(*name), std::move(*value));
        }
        start = end + 1;
    }
    return fields;
}

} // namespace detail
} // namespace jitgate::server::http
