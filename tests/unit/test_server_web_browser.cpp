// tests/unit/test_server_web_browser.cpp — the web UI's browser-facing rules
// (server/web/browser.hpp): tokens, cookies, forms, local redirect targets, the Origin check
// and the security headers.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "server/web/browser.hpp"

#include <jitgate/error.hpp>

namespace {

namespace browser = jitgate::server::web::browser;
using jitgate::server::http::Fields;
using jitgate::server::http::Response;

TEST(WebBrowser, RandomTokensAreFreshBase64url) {
    std::set<std::string> seen;
    for (int i = 0; i < 64; ++i) {
        const std::string token = browser::random_token();
        EXPECT_TRUE(browser::is_token(token)) << token;
        EXPECT_EQ(token.size(), 43u);
        EXPECT_TRUE(seen.insert(token).second) << "a token repeated: " << token;
    }
}

TEST(WebBrowser, IsTokenRefusesAnythingElse) {
    const auto ending_in = [](char last) {
        std::string token(42, 'A');
        token.push_back(last);
        return token;
    };
    EXPECT_TRUE(browser::is_token(ending_in('_')));
    EXPECT_TRUE(browser::is_token(ending_in('-')));
    EXPECT_FALSE(browser::is_token(std::string(42, 'A')));
    EXPECT_FALSE(browser::is_token(std::string(44, 'A')));
    EXPECT_FALSE(browser::is_token(ending_in('=')));
    EXPECT_FALSE(browser::is_token(ending_in('+')));
    EXPECT_FALSE(browser::is_token(ending_in(';')));
    EXPECT_FALSE(browser::is_token(""));
}

TEST(WebBrowser, Sha256HexMatchesTheStandardVector) {
    EXPECT_EQ(browser::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(browser::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(WebBrowser, SameSecretNeedsEqualNonEmptyValues) {
    EXPECT_TRUE(browser::same_secret("abcdef", "abcdef"));
    EXPECT_FALSE(browser::same_secret("abcdef", "abcdeg"));
    EXPECT_FALSE(browser::same_secret("abcdef", "abcde"));
    EXPECT_FALSE(browser::same_secret("", ""));
    EXPECT_FALSE(browser::same_secret("abc", ""));
}

TEST(WebBrowser, CookieFindsTheNamedValueAcrossHeaders) {
    const Fields headers = {{"cookie", "a=1; __Host-jitgate_session=tok; b=2"}, {"cookie", "c=3"}};
    EXPECT_EQ(browser::cookie(headers, "__Host-jitgate_session"), "tok");
    EXPECT_EQ(browser::cookie(headers, "c"), "3");
    EXPECT_EQ(browser::cookie(headers, "missing"), std::nullopt);
    EXPECT_EQ(browser::cookie({{"cookie", "x=\"quoted\""}}, "x"), "quoted");
    // A prefix of another cookie's name is not that cookie.
    EXPECT_EQ(browser::cookie({{"cookie", "__Host-jitgate_session_old=tok"}}, "__Host-jitgate_session"), std::nullopt);
    // Only the Cookie header counts.
    EXPECT_EQ(browser::cookie({{"x-cookie", "a=1"}}, "a"), std::nullopt);
}

TEST(WebBrowser, CookieGivenTwiceWithDifferentValuesIsTrustedNeither) {
    EXPECT_EQ(browser::cookie({{"cookie", "s=one; s=two"}}, "s"), std::nullopt);
    EXPECT_EQ(browser::cookie({{"cookie", "s=one"}, {"cookie", "s=two"}}, "s"), std::nullopt);
    EXPECT_EQ(browser::cookie({{"cookie", "s=one; s=one"}}, "s"), "one");
}

TEST(WebBrowser, SetCookieCarriesEveryProtection) {
    const std::string header = browser::set_cookie(browser::k_session_cookie, "abc-_DEF", 28800);
    EXPECT_EQ(header, "__Host-jitgate_session=abc-_DEF; Secure; HttpOnly; SameSite=Lax; Path=/; Max-Age=28800");
    EXPECT_EQ(browser::clear_cookie(browser::k_login_cookie),
              "__Host-jitgate_login=; Secure; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
    EXPECT_THROW(browser::set_cookie("s", "a;b", 1), jitgate::Error);
    EXPECT_THROW(browser::set_cookie("s", "a\r\nSet-Cookie: x=y", 1), jitgate::Error);
    EXPECT_THROW(browser::set_cookie("s", "", 1), jitgate::Error);
}

TEST(WebBrowser, ParseFormDecodesPlusAndPercent) {
    const auto form = browser::parse_form("comment=Looks+good%21%0A%3Cb%3E&csrf=abc");
    ASSERT_TRUE(form.has_value());
    EXPECT_EQ(browser::field(*form, "comment"), "Looks good!\n<b>");
    EXPECT_EQ(browser::field(*form, "csrf"), "abc");
    EXPECT_EQ(browser::field(*form, "other"), std::nullopt);
    const auto empty_value = browser::parse_form("comment=&csrf=x");
    ASSERT_TRUE(empty_value.has_value());
    EXPECT_EQ(browser::field(*empty_value, "comment"), "");
    ASSERT_TRUE(browser::parse_form("").has_value());
    EXPECT_TRUE(browser::parse_form("")->empty());
}

TEST(WebBrowser, ParseFormRefusesMalformedOrAmbiguousBodies) {
    EXPECT_EQ(browser::parse_form("comment=%"), std::nullopt);
    EXPECT_EQ(browser::parse_form("comment=%4"), std::nullopt);
    EXPECT_EQ(browser::parse_form("comment=%zz"), std::nullopt);
    EXPECT_EQ(browser::parse_form("comment"), std::nullopt);
    EXPECT_EQ(browser::parse_form("=x"), std::nullopt);
    EXPECT_EQ(browser::parse_form("csrf=a&csrf=b"), std::nullopt);
    EXPECT_EQ(browser::parse_form("csrf=a&csr%66=a"), std::nullopt); // the same name, encoded
}

TEST(WebBrowser, FormContentType) {
    EXPECT_TRUE(browser::is_form_content_type({{"content-type", "application/x-www-form-urlencoded"}}));
    EXPECT_TRUE(browser::is_form_content_type({{"content-type", "Application/X-WWW-Form-Urlencoded; charset=UTF-8"}}));
    EXPECT_FALSE(browser::is_form_content_type({{"content-type", "multipart/form-data; boundary=x"}}));
    EXPECT_FALSE(browser::is_form_content_type({{"content-type", "text/plain"}}));
    EXPECT_FALSE(browser::is_form_content_type({}));
}

TEST(WebBrowser, UrlEncodeLeavesOnlyUnreserved) {
    EXPECT_EQ(browser::url_encode("R-7F3K9Q"), "R-7F3K9Q");
    EXPECT_EQ(browser::url_encode("a b/c?d&e=f\"<"), "a%20b%2Fc%3Fd%26e%3Df%22%3C");
    EXPECT_EQ(browser::url_encode("\xff"), "%FF");
}

TEST(WebBrowser, LocalPathsOnlyForReturnTo) {
    EXPECT_TRUE(browser::is_local_path("/"));
    EXPECT_TRUE(browser::is_local_path("/r/pay-db-01/R-7F3K9Q"));
    EXPECT_TRUE(browser::is_local_path("/history?before=1700000000"));
    EXPECT_FALSE(browser::is_local_path(""));
    EXPECT_FALSE(browser::is_local_path("//evil.example.com/"));
    EXPECT_FALSE(browser::is_local_path("/\\evil.example.com/"));
    EXPECT_FALSE(browser::is_local_path("https://evil.example.com/"));
    EXPECT_FALSE(browser::is_local_path("evil.example.com"));
    EXPECT_FALSE(browser::is_local_path("/a\\b"));
    EXPECT_FALSE(browser::is_local_path("/a\r\nLocation: https://evil/"));
    EXPECT_FALSE(browser::is_local_path("/a b"));
    EXPECT_FALSE(browser::is_local_path("/\t/evil.example.com"));
    EXPECT_FALSE(browser::is_local_path("/caf\xc3\xa9"));
    EXPECT_FALSE(browser::is_local_path("/" + std::string(2048, 'a')));
}

TEST(WebBrowser, OriginOfAPublicUrl) {
    EXPECT_EQ(browser::origin_of("https://approvals.example.com"), "https://approvals.example.com");
    EXPECT_EQ(browser::origin_of("https://Approvals.Example.COM/"), "https://approvals.example.com");
    EXPECT_EQ(browser::origin_of("https://approvals.example.com:443/x"), "https://approvals.example.com");
    EXPECT_EQ(browser::origin_of("https://approvals.example.com:8444"), "https://approvals.example.com:8444");
    EXPECT_EQ(browser::origin_of("https://[::1]:8444/"), "https://[::1]:8444");
    EXPECT_EQ(browser::origin_of("http://approvals.example.com"), "");
    EXPECT_EQ(browser::origin_of("https://user@approvals.example.com"), "");
    EXPECT_EQ(browser::origin_of("https://approvals.example.com:x"), "");
    EXPECT_EQ(browser::origin_of("https://"), "");
    EXPECT_EQ(browser::origin_of(""), "");
}

TEST(WebBrowser, SameOriginRequest) {
    const std::string origin = "https://approvals.example.com";
    EXPECT_TRUE(browser::same_origin_request({}, origin)); // no Origin header: the CSRF token decides
    EXPECT_TRUE(browser::same_origin_request({{"origin", origin}, {"sec-fetch-site", "same-origin"}}, origin));
    EXPECT_FALSE(browser::same_origin_request({{"origin", "https://evil.example.com"}}, origin));
    EXPECT_FALSE(browser::same_origin_request({{"origin", "null"}}, origin));
    EXPECT_FALSE(browser::same_origin_request({{"origin", origin + ":443"}}, origin));
    EXPECT_FALSE(browser::same_origin_request({{"sec-fetch-site", "cross-site"}}, origin));
    EXPECT_FALSE(browser::same_origin_request({{"sec-fetch-site", "same-site"}}, origin));
    EXPECT_FALSE(browser::same_origin_request({}, "")); // no configured origin: fail closed
}

// The evidence report's policy: only the style whose SHA-256 (base64, CSP level 2) it names.
TEST(WebBrowser, TheStyleHashPolicyNamesTheStylesSha256AndNothingElse) {
    EXPECT_EQ(browser::style_hash_policy("abc"),
              "default-src 'none'; style-src 'sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0='; "
              "frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
    EXPECT_NE(browser::style_hash_policy("").find("'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"),
              std::string::npos);
    Response response;
    response.headers = {{"Content-Security-Policy", "default-src *"}};
    browser::add_security_headers(response, browser::style_hash_policy("abc"));
    int policies = 0;
    for (const auto& [n, v] : response.headers)
        if (n == "Content-Security-Policy") {
            ++policies;
            EXPECT_EQ(v, browser::style_hash_policy("abc"));
        }
    EXPECT_EQ(policies, 1);
    bool frame_options = false;
    for (const auto& [n, v] : response.headers)
        frame_options = frame_options || (n == "X-Frame-Options" && v == "DENY");
    EXPECT_TRUE(frame_options);
}

TEST(WebBrowser, SecurityHeadersAreExactAndReplaceOthers) {
    Response response;
    response.headers = {{"Content-Type", "text/html"}, {"cache-control", "public"}};
    browser::add_security_headers(response);
    auto value = [&](const std::string& name) {
        std::string found;
        int count = 0;
        for (const auto& [n, v] : response.headers) {
            std::string lower = n;
            for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            if (lower == name) {
                found = v;
                ++count;
            }
        }
        EXPECT_EQ(count, 1) << name;
        return found;
    };
    EXPECT_EQ(value("content-security-policy"),
              "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
              "base-uri 'none'");
    EXPECT_EQ(value("x-frame-options"), "DENY");
    EXPECT_EQ(value("referrer-policy"), "same-origin");
    EXPECT_EQ(value("strict-transport-security"), "max-age=31536000");
    EXPECT_EQ(value("cache-control"), "no-store");
    EXPECT_EQ(value("x-content-type-options"), "nosniff");
    EXPECT_EQ(value("content-type"), "text/html");
}

} // namespace
