// server/web/browser.hpp — what the web UI checks in a browser's request and sets on every
// answer: cookies, url-encoded forms, session and CSRF tokens, the Origin check, local redirect
// targets and the security headers. Pure functions over the HTTP layer's plain structs (no
// HTTP, database or service code), so each rule is tested on its own
// (tests/unit/test_server_web_browser.cpp).
//
// Threading: stateless; every function is thread-safe. Errors: parsers return nullopt (or
// false) for anything malformed, so the caller fails closed; random_token() throws
// Error(internal) when the system's random generator fails.
// Must not depend on the web UI, the service, the store implementations or libevent.
#pragma once

#include "server/http/http.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace jitgate::server::web::browser {

// SECURITY NOTE: the "__Host-" prefix makes the browser refuse the cookie unless it is Secure,
// has Path=/ and no Domain, so a sibling subdomain cannot plant or overwrite it.
inline constexpr std::string_view k_session_cookie = "__Host-jitgate_session";
// Binds a sign-in in progress to the browser that started it (its value is the login's
// `state`): a callback URL made by someone else, for their own IdP account, fails in another
// browser (login CSRF).
inline constexpr std::string_view k_login_cookie = "__Host-jitgate_login";

// 32 bytes from RAND_bytes as base64url without padding (43 characters). Throws Error(internal)
// if the generator fails: no session or CSRF token without fresh randomness.
std::string random_token();
// True for exactly what random_token() makes: 43 characters of the base64url alphabet.
bool is_token(std::string_view text) noexcept;
// SHA-256 of `bytes`, lower-case hex (how a session token is stored). Throws Error(internal).
std::string sha256_hex(std::string_view bytes);
// Constant-time equality of two secrets (CRYPTO_memcmp). False when either is empty or the
// lengths differ (a length is not secret: every token has the same one).
bool same_secret(std::string_view a, std::string_view b) noexcept;

// The first header named `lower_case_name`, or null.
const std::string* header(const http::Fields& headers, std::string_view lower_case_name);

// The value of cookie `name` in the request's Cookie header(s). Nullopt when absent, or when
// it appears more than once with different values (the browser's order is not a reason to
// trust one: fail closed).
std::optional<std::string> cookie(const http::Fields& headers, std::string_view name);
// A Set-Cookie value: Secure; HttpOnly; SameSite=Lax; Path=/; Max-Age=`max_age_s`.
// `value` must be cookie-safe (is_cookie_value), else Error(internal).
std::string set_cookie(std::string_view name, std::string_view value, std::int64_t max_age_s);
// A Set-Cookie value that deletes cookie `name` (same attributes, Max-Age=0).
std::string clear_cookie(std::string_view name);
// True for a non-empty value of at most 256 characters from [A-Za-z0-9._~-].
bool is_cookie_value(std::string_view value) noexcept;

// Decodes an application/x-www-form-urlencoded body ("+" is a space, %XX a byte). Nullopt
// when malformed: a bad %-escape, a field without "=", or a name given twice (which one
// counts would be a guess).
std::optional<http::Fields> parse_form(std::string_view body);
// The value of field `name`, or nullopt.
std::optional<std::string> field(const http::Fields& fields, std::string_view name);
// True when the Content-Type header names application/x-www-form-urlencoded (parameters such
// as "; charset=UTF-8" allowed).
bool is_form_content_type(const http::Fields& headers);
// Percent-encodes everything but [A-Za-z0-9._~-] (for a path segment or a query value).
std::string url_encode(std::string_view text);

// True when `path` is safe to redirect to after sign-in: it starts with "/", not with "//"
// or "/\" (which browsers read as another host), holds only printable ASCII without a
// backslash (no header splitting, no look-alikes), and is at most 2048 bytes.
bool is_local_path(std::string_view path) noexcept;

// "https://host[:port]" of `url`, lower-cased, the default port dropped: what a browser sends
// as Origin for pages of `url`. Empty when `url` is not an https:// URL with a host.
std::string origin_of(std::string_view url);
// The cross-site check for a state-changing request: the Origin header, if present, equals
// `expected_origin` exactly, and Sec-Fetch-Site, if present, is "same-origin". SECURITY NOTE:
// on its own this is a second line behind the CSRF token, never the only one.
bool same_origin_request(const http::Fields& headers, std::string_view expected_origin);
// True when the browser says the request comes from another site (Sec-Fetch-Site present and
// neither "same-origin" nor "none", the latter being an address typed or bookmarked): for GET
// routes that start costly work (the evidence report), which a link on another site must not
// start in a signed-in auditor's name.
bool cross_site_request(const http::Fields& headers);

// Adds the headers every answer of the web UI carries: a strict Content-Security-Policy (no
// script at all, styles only from our own /style.css), X-Frame-Options DENY,
// Referrer-Policy same-origin (not no-referrer: under no-referrer a browser sends "Origin: null"
// with our own forms, which the Origin check refuses), Strict-Transport-Security, Cache-Control no-store,
// X-Content-Type-Options nosniff. Replaces any of them already present.
void add_security_headers(http::Response& response);
// The same with another Content-Security-Policy (the evidence report's page: style_hash_policy).
void add_security_headers(http::Response& response, std::string_view content_security_policy);

// SECURITY NOTE: the policy for a document whose only styling is one inline <style> element
// whose content is `style` (the evidence report, a self-contained document that must also
// render as a file and a PDF): default-src 'none', and style-src only that element, by its
// SHA-256 ('sha256-<base64>', CSP level 2). Nothing else loads or runs: no script, image, font,
// frame or form target. Throws Error(internal) when SHA-256 fails.
std::string style_hash_policy(std::string_view style);

// The exact Content-Security-Policy value.
inline constexpr std::string_view k_content_security_policy =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'";

} // namespace jitgate::server::web::browser
