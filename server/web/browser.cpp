// server/web/browser.cpp — cookies, forms, tokens, origin checks and security headers for the web UI.
#include "server/web/browser.hpp"

#include <jitgate/error.hpp>
#include <jitgate/text.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cctype>

namespace jitgate::server::web::browser {
namespace {

bool is_unreserved(unsigned char c) noexcept {
    return std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~';
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::optional<std::string> form_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '+') {
            out += ' ';
        } else if (c == '%') {
            if (i + 2 >= text.size()) return std::nullopt;
            const int hi = hex_value(text[i + 1]);
            const int lo = hex_value(text[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string_view trim(std::string_view text) noexcept {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

void set_header(http::Response& response, std::string_view name, std::string_view value) {
    auto& headers = response.headers;
    headers.erase(
        std::remove_if(headers.begin(), headers.end(), [&](const auto& h) { return lower(h.first) == lower(name); }),
        headers.end());
    headers.emplace_back(std::string(name), std::string(value));
}

} // namespace

std::string random_token() {
    std::array<unsigned char, 32> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
        throw Error(ErrorCode::internal, "web", "RAND_bytes failed; no session without fresh randomness");
    return text::base64url_encode(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

bool is_token(std::string_view text) noexcept {
    return text.size() == 43 && std::all_of(text.begin(), text.end(), [](char c) {
               const auto u = static_cast<unsigned char>(c);
               return std::isalnum(u) != 0 || c == '-' || c == '_';
           });
}

namespace {

// The 32 bytes of SHA-256 of `bytes`. Throws Error(internal).
std::string sha256_raw(std::string_view bytes) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int md_len = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), md.data(), &md_len, EVP_sha256(), nullptr) != 1)
        throw Error(ErrorCode::internal, "web", "SHA-256 failed (OpenSSL EVP_Digest)");
    return std::string(reinterpret_cast<const char*>(md.data()), md_len);
}

} // namespace

std::string sha256_hex(std::string_view bytes) {
    static constexpr char k_hex[] = "0123456789abcdef";
    const std::string md = sha256_raw(bytes);
    std::string out;
    out.reserve(md.size() * 2);
    for (const char c : md) {
        const auto u = static_cast<unsigned char>(c);
        out += k_hex[u >> 4];
        out += k_hex[u & 0x0F];
    }
    return out;
}

bool same_secret(std::string_view a, std::string_view b) noexcept {
    if (a.empty() || a.size() != b.size()) return false;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

const std::string* header(const http::Fields& headers, std::string_view lower_case_name) {
    for (const auto& [name, value] : headers)
        if (name == lower_case_name) return &value;
    return nullptr;
}

std::optional<std::string> cookie(const http::Fields& headers, std::string_view name) {
    std::optional<std::string> found;
    for (const auto& [header_name, value] : headers) {
        if (header_name != "cookie") continue;
        std::string_view rest = value;
        while (!rest.empty()) {
            const auto semi = rest.find(';');
            const std::string_view pair = trim(rest.substr(0, semi));
            rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
            const auto eq = pair.find('=');
            if (eq == std::string_view::npos || trim(pair.substr(0, eq)) != name) continue;
            std::string_view v = trim(pair.substr(eq + 1));
            if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
            if (found && *found != v) return std::nullopt; // two different values: trust neither
            found = std::string(v);
        }
    }
    return found;
}

bool is_cookie_value(std::string_view value) noexcept {
    return !value.empty() && value.size() <= 256 &&
           std::all_of(value.begin(), value.end(), [](char c) { return is_unreserved(static_cast<unsigned char>(c)); });
}

// SECURITY NOTE: SameSite=Lax, not Strict, for both cookies.
//  - The login cookie must come back on the IdP's redirect to /oidc/callback, a cross-site
//    top-level navigation: Strict would drop it there, Lax sends it (GET only).
//  - The session cookie would not be needed by the callback (the login state is found in the
//    store by `state`), but Strict breaks two things approvers do every day: a link from a
//    notice (Slack, mail) to /r/{host}/{id} is a cross-site navigation, so under Strict the
//    page would look signed out and send them through the IdP for a new session each time;
//    and the callback's redirect to `return_to` still belongs to the IdP-initiated navigation,
//    so the fresh cookie would not be sent with it either (a sign-in loop without an extra
//    page in between). What Strict adds over Lax is keeping the cookie off cross-site GETs,
//    and every GET here only reads. Lax already keeps it off cross-site POSTs, which are the
//    only requests that change anything, and those also need the CSRF token and a
//    same-origin Origin.
std::string set_cookie(std::string_view name, std::string_view value, std::int64_t max_age_s) {
    if (!is_cookie_value(value))
        throw Error(ErrorCode::internal, "web", "refusing a cookie value that is not cookie-safe");
    return std::string(name) + "=" + std::string(value) +
           "; Secure; HttpOnly; SameSite=Lax; Path=/; Max-Age=" + std::to_string(std::max<std::int64_t>(max_age_s, 0));
}

std::string clear_cookie(std::string_view name) {
    return std::string(name) + "=; Secure; HttpOnly; SameSite=Lax; Path=/; Max-Age=0";
}

std::optional<http::Fields> parse_form(std::string_view body) {
    http::Fields fields;
    std::string_view rest = body;
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        if (pair.empty()) continue;
        const auto eq = pair.find('=');
        if (eq == std::string_view::npos) return std::nullopt;
        auto name = form_decode(pair.substr(0, eq));
        auto value = form_decode(pair.substr(eq + 1));
        if (!name || !value || name->empty()) return std::nullopt;
        for (const auto& existing : fields)
            if (existing.first == *name) return std::nullopt;
        fields.emplace_back(std::move(*name), std::move(*value));
    }
    return fields;
}

std::optional<std::string> field(const http::Fields& fields, std::string_view name) {
    for (const auto& [n, v] : fields)
        if (n == name) return v;
    return std::nullopt;
}

bool is_form_content_type(const http::Fields& headers) {
    const std::string* type = header(headers, "content-type");
    if (type == nullptr) return false;
    const std::string_view media = trim(std::string_view(*type).substr(0, type->find(';')));
    return lower(media) == "application/x-www-form-urlencoded";
}

std::string url_encode(std::string_view text) {
    static constexpr char k_hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (is_unreserved(u)) {
            out += c;
        } else {
            out += '%';
            out += k_hex[u >> 4];
            out += k_hex[u & 0x0F];
        }
    }
    return out;
}

bool is_local_path(std::string_view path) noexcept {
    if (path.empty() || path.size() > 2048 || path.front() != '/') return false;
    if (path.size() >= 2 && (path[1] == '/' || path[1] == '\\')) return false;
    return std::all_of(path.begin(), path.end(), [](char c) { return c > 0x20 && c < 0x7F && c != '\\'; });
}

std::string origin_of(std::string_view url) {
    constexpr std::string_view k_scheme = "https://";
    if (url.size() <= k_scheme.size() || lower(url.substr(0, k_scheme.size())) != k_scheme) return {};
    std::string_view authority = url.substr(k_scheme.size());
    authority = authority.substr(0, authority.find_first_of("/?#"));
    if (authority.empty() || authority.find('@') != std::string_view::npos) return {};
    std::string host_port = lower(authority);
    // A bracketed IPv6 literal keeps its colons; only a colon after it starts the port.
    const auto close = host_port.rfind(']');
    const auto colon = host_port.rfind(':');
    if (colon != std::string::npos && (close == std::string::npos || colon > close)) {
        const std::string port = host_port.substr(colon + 1);
        if (port.empty() || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return {};
        if (port == "443") host_port.erase(colon);
        if (colon == 0) return {};
    }
    return "https://" + host_port;
}

bool same_origin_request(const http::Fields& headers, std::string_view expected_origin) {
    if (expected_origin.empty()) return false;
    if (const std::string* origin = header(headers, "origin"); origin != nullptr && *origin != expected_origin)
        return false;
    if (const std::string* site = header(headers, "sec-fetch-site"); site != nullptr && *site != "same-origin")
        return false;
    return true;
}

bool cross_site_request(const http::Fields& headers) {
    const std::string* site = header(headers, "sec-fetch-site");
    return site != nullptr && *site != "same-origin" && *site != "none";
}

std::string style_hash_policy(std::string_view style) {
    return "default-src 'none'; style-src 'sha256-" + text::base64_encode(sha256_raw(style)) +
           "'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
}

void add_security_headers(http::Response& response) {
    add_security_headers(response, k_content_security_policy);
}

void add_security_headers(http::Response& response, std::string_view content_security_policy) {
    set_header(response, "Content-Security-Policy", content_security_policy);
    set_header(response, "X-Frame-Options", "DENY");
    set_header(response, "Referrer-Policy", "same-origin");
    set_header(response, "Strict-Transport-Security", "max-age=31536000");
    set_header(response, "Cache-Control", "no-store");
    set_header(response, "X-Content-Type-Options", "nosniff");
}

} // namespace jitgate::server::web::browser
