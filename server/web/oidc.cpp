// server/web/oidc.cpp — the OpenID Connect relying party (see oidc.hpp).
#include "server/web/oidc.hpp"

#include "lib/openssl_ptr.hpp"
#include "lib/strict_json.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <utility>

#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"
#include "lib/curl_option.hpp"
#include "lib/https.hpp"

namespace jitgate::server::web::oidc {

using Json = nlohmann::json;

namespace {

constexpr std::size_t k_max_id_token_bytes = 64 * 1024;
constexpr std::size_t k_max_response_bytes = 1024 * 1024;
constexpr std::size_t k_max_shown = 64;
constexpr std::size_t k_random_bytes = 32;
constexpr std::size_t k_max_code_bytes = 4096;
constexpr std::size_t k_max_display_name = 128;
constexpr int k_min_rsa_bits = 2048;

[[noreturn]] void fail(ErrorCode code, const std::string& detail) {
    throw Error(code, "oidc", detail);
}

// A value from the IdP or the browser for a message: escaped, cut, in quotes.
std::string q(std::string_view v) {
    return "\"" + text::shown(v, k_max_shown) + "\"";
}

bool equal_ct(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && !a.empty() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string random_b64url(std::size_t bytes) {
    std::string raw(bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(raw.size())) != 1)
        fail(ErrorCode::internal, "RAND_bytes failed: no random state, nonce or verifier");
    return text::base64url_encode(raw);
}

// RFC 3986 percent-encoding of everything but the unreserved characters.
std::string percent_encode(std::string_view s) {
    static constexpr char k_hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size() * 3);
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (alnum || c == '-' || c == '.' || c == '_' || c == '~') {
            out += ch;
        } else {
            out += '%';
            out += k_hex[c >> 4];
            out += k_hex[c & 0x0f];
        }
    }
    return out;
}

std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields) {
    std::string out;
    for (const auto& [k, v] : fields) {
        if (!out.empty()) out += '&';
        out += percent_encode(k) + "=" + percent_encode(v);
    }
    return out;
}

// Checks that `url` is https://HOST... (or http:// on a loopback host when allowed), with no
// user info, no fragment, no space or control character. Returns whether it is plain http.
bool check_url(const std::string& url, bool allow_http_loopback, const std::string& what, ErrorCode code) {
    for (const char ch : url) {
        const auto c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c >= 0x7f) fail(code, what + " " + q(url) + " has a space, control or non-ASCII character");
    }
    bool http = false;
    std::string_view rest;
    if (url.rfind("https://", 0) == 0) {
        rest = std::string_view(url).substr(8);
    } else if (url.rfind("http://", 0) == 0) {
        http = true;
        rest = std::string_view(url).substr(7);
    } else {
        fail(code, what + " " + q(url) + " is not an https:// URL");
    }
    const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
    if (authority.empty()) fail(code, what + " " + q(url) + " has no host");
    if (authority.find('@') != std::string_view::npos) fail(code, what + " " + q(url) + " has user info");
    if (url.find('#') != std::string::npos) fail(code, what + " " + q(url) + " has a fragment");
    std::string_view host = authority;
    if (host.front() == '[') {
        const auto end = host.find(']');
        if (end == std::string_view::npos) fail(code, what + " " + q(url) + " has a bad IPv6 host");
        host = host.substr(1, end - 1);
    } else {
        host = host.substr(0, host.find(':'));
    }
    if (http) {
        // SECURITY NOTE: plain http only for a test IdP on this machine, and only when the
        // config says so explicitly; a code, a client secret and an ID token travel over it.
        const bool loopback = host == "127.0.0.1" || host == "::1" || host == "localhost";
        if (!allow_http_loopback || !loopback)
            fail(code,
                 what + " " + q(url) +
                     " is not https (plain http is allowed only for a loopback test IdP with allow_http_loopback)");
    }
    return http;
}

// Parses a JSON object through lib/strict_json: a duplicate member is refused (the IdP and we
// must not read different values), nesting is bounded. `code` is the error code for a refusal.
Json parse_object(std::string_view bytes, const std::string& what, ErrorCode code) {
    strict_json::Parsed parsed = strict_json::parse_object(bytes);
    if (!parsed.error.empty()) fail(code, what + " " + parsed.error);
    return std::move(parsed.value);
}

const Json* member(const Json& obj, const char* name) {
    const auto it = obj.find(name);
    return it == obj.end() ? nullptr : &*it;
}

std::string string_member(const Json& obj, const char* name, const std::string& what, ErrorCode code) {
    const Json* v = member(obj, name);
    if (v == nullptr || !v->is_string() || v->get_ref<const std::string&>().empty())
        fail(code, what + " has no string \"" + name + "\"");
    return v->get<std::string>();
}

// A NumericDate (RFC 7519 §2): an integer, or a finite number (taken down to the second).
std::int64_t numeric_date(const Json& v, const char* name) {
    if (v.is_number_unsigned()) {
        const auto u = v.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            fail(ErrorCode::denied, std::string("ID token claim \"") + name + "\" is out of range");
        return static_cast<std::int64_t>(u);
    }
    if (v.is_number_integer()) return v.get<std::int64_t>();
    if (v.is_number_float()) {
        const double d = v.get<double>();
        if (!std::isfinite(d) || d < -9.0e18 || d > 9.0e18)
            fail(ErrorCode::denied, std::string("ID token claim \"") + name + "\" is out of range");
        return static_cast<std::int64_t>(std::floor(d));
    }
    fail(ErrorCode::denied, std::string("ID token claim \"") + name + "\" is not a number");
}

// --- HTTP -------------------------------------------------------------------------------

struct CurlFree {
    void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); }
};
struct SlistFree {
    void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};

struct Body {
    std::string data;
    bool too_large = false;
};

extern "C" std::size_t collect_body(char* ptr, std::size_t size, std::size_t nmemb, void* userdata) noexcept {
    auto* body = static_cast<Body*>(userdata);
    const std::size_t n = size * nmemb;
    if (body->data.size() + n > k_max_response_bytes) {
        body->too_large = true;
        return 0; // aborts the transfer
    }
    try {
        body->data.append(ptr, n);
    } catch (...) {
        return 0;
    }
    return n;
}

struct HttpResult {
    long status = 0;
    std::string body;
};

// One request to the IdP under lib/https's policy. `form` set: POST of that form body.
// `basic`: an Authorization header value (a secret: never shown).
HttpResult http_call(const Settings& s, const std::string& url, const std::string* form, const std::string& basic,
                     const std::string& what) {
    const bool http = check_url(url, s.allow_http_loopback, what + " URL", ErrorCode::protocol);
    std::unique_ptr<CURL, CurlFree> easy(curl_easy_init());
    if (!easy) fail(ErrorCode::internal, "curl_easy_init failed");
    https::Policy policy;
    policy.ca_file = s.ca_file.empty() ? k_system_ca_bundle : s.ca_file;
    policy.allow_plain_http = http;
    policy.connect_timeout = std::min<std::chrono::milliseconds>(s.timeout, std::chrono::milliseconds(5000));
    policy.timeout = s.timeout;
    https::apply_policy(easy.get(), policy);

    Body body;
    std::unique_ptr<curl_slist, SlistFree> headers;
    const auto add_header = [&](const std::string& h) {
        curl_slist* l = curl_slist_append(headers.get(), h.c_str());
        if (l == nullptr) fail(ErrorCode::internal, "curl_slist_append failed");
        (void)headers.release();
        headers.reset(l);
    };
    add_header("Accept: application/json");
    if (!basic.empty()) add_header("Authorization: " + basic);
    JITGATE_SETOPT(easy.get(), CURLOPT_URL, url.c_str());
    JITGATE_SETOPT(easy.get(), CURLOPT_USERAGENT, "jitgate-server");
    JITGATE_SETOPT(easy.get(), CURLOPT_WRITEFUNCTION, &collect_body);
    JITGATE_SETOPT(easy.get(), CURLOPT_WRITEDATA, static_cast<void*>(&body));
    if (form != nullptr) {
        add_header("Content-Type: application/x-www-form-urlencoded");
        JITGATE_SETOPT(easy.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(form->size()));
        JITGATE_SETOPT(easy.get(), CURLOPT_POSTFIELDS, form->c_str());
    }
    JITGATE_SETOPT(easy.get(), CURLOPT_HTTPHEADER, headers.get());

    const CURLcode rc = curl_easy_perform(easy.get());
    if (body.too_large) fail(ErrorCode::protocol, what + ": the IdP's answer is larger than 1 MiB");
    if (rc != CURLE_OK)
        fail(ErrorCode::internal, what + ": cannot reach the IdP at " + q(url) + ": " + curl_easy_strerror(rc));
    HttpResult out;
    curl_easy_getinfo(easy.get(), CURLINFO_RESPONSE_CODE, &out.status);
    out.body = std::move(body.data);
    return out;
}

// --- keys -------------------------------------------------------------------------------

// One deleter for every OpenSSL type (lib/openssl_ptr.hpp).
using PkeyFree = ossl::Free;
using PkeyCtxFree = ossl::Free;
using MdCtxFree = ossl::Free;
using BnFree = ossl::Free;
using ParamBldFree = ossl::Free;
using ParamFree = ossl::Free;
using EcdsaSigFree = ossl::Free;

using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// Decodes a base64url JWK member; nullopt-like empty string with ok=false on bad input.
bool jwk_bytes(const Json& jwk, const char* name, std::string& out) {
    const Json* v = member(jwk, name);
    if (v == nullptr || !v->is_string() || v->get_ref<const std::string&>().empty()) return false;
    try {
        out = text::base64url_decode(v->get_ref<const std::string&>());
    } catch (const Error&) {
        return false;
    }
    return !out.empty();
}

BIGNUM* to_bn(const std::string& bytes) {
    return BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()), nullptr);
}

Pkey from_params(const char* type, OSSL_PARAM* params) {
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* raw = nullptr;
    if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1)
        return nullptr;
    Pkey key(raw);
    // The point is on the curve / the modulus is sane: checked, not assumed.
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    if (!check || EVP_PKEY_public_check(check.get()) != 1) return nullptr;
    return key;
}

Pkey rsa_key(const Json& jwk) {
    std::string n, e;
    if (!jwk_bytes(jwk, "n", n) || !jwk_bytes(jwk, "e", e)) return nullptr;
    std::unique_ptr<BIGNUM, BnFree> bn_n(to_bn(n)), bn_e(to_bn(e));
    std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
    if (!bn_n || !bn_e || !bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1)
        return nullptr;
    std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
    if (!params) return nullptr;
    Pkey key = from_params("RSA", params.get());
    if (key && EVP_PKEY_get_bits(key.get()) < k_min_rsa_bits) return nullptr;
    return key;
}

Pkey ec_p256_key(const Json& jwk) {
    const Json* crv = member(jwk, "crv");
    if (crv == nullptr || *crv != "P-256") return nullptr;
    std::string x, y;
    if (!jwk_bytes(jwk, "x", x) || !jwk_bytes(jwk, "y", y) || x.size() != 32 || y.size() != 32) return nullptr;
    std::string point = "\x04" + x + y;
    std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
    if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1)
        return nullptr;
    std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
    if (!params) return nullptr;
    return from_params("EC", params.get());
}

Pkey ed25519_key(const Json& jwk) {
    const Json* crv = member(jwk, "crv");
    if (crv == nullptr || *crv != "Ed25519") return nullptr;
    std::string x;
    if (!jwk_bytes(jwk, "x", x) || x.size() != 32) return nullptr;
    return Pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(x.data()),
                                            x.size()));
}

// The JWS alg a key type signs with here (one per type: RS256, ES256, EdDSA).
const char* alg_for_kty(const std::string& kty) {
    if (kty == "RSA") return "RS256";
    if (kty == "EC") return "ES256";
    if (kty == "OKP") return "EdDSA";
    return nullptr;
}

// JWS ES256 signatures are r||s (32 bytes each); OpenSSL wants DER.
bool es256_to_der(std::string_view sig, std::string& der) {
    if (sig.size() != 64) return false;
    std::unique_ptr<ECDSA_SIG, EcdsaSigFree> s(ECDSA_SIG_new());
    BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), 32, nullptr);
    BIGNUM* ss = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + 32, 32, nullptr);
    if (!s || r == nullptr || ss == nullptr || ECDSA_SIG_set0(s.get(), r, ss) != 1) {
        BN_free(r);
        BN_free(ss);
        return false;
    }
    const int len = i2d_ECDSA_SIG(s.get(), nullptr);
    if (len <= 0) return false;
    der.assign(static_cast<std::size_t>(len), '\0');
    auto* p = reinterpret_cast<unsigned char*>(der.data());
    return i2d_ECDSA_SIG(s.get(), &p) == len;
}

bool verify_signature(EVP_PKEY* key, const std::string& alg, std::string_view message, std::string_view sig) {
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    if (!ctx) fail(ErrorCode::internal, "EVP_MD_CTX_new failed");
    std::string der;
    std::string_view to_check = sig;
    const EVP_MD* md = nullptr;
    if (alg == "RS256") {
        md = EVP_sha256();
    } else if (alg == "ES256") {
        md = EVP_sha256();
        if (!es256_to_der(sig, der)) return false;
        to_check = der;
    } else if (alg == "EdDSA") {
        if (sig.size() != 64) return false; // Ed25519 is "pure": no digest
    } else {
        return false;
    }
    if (EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) != 1) return false;
    return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(to_check.data()), to_check.size(),
                            reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
}

// Decodes one JWS part; only the canonical base64url form is accepted.
std::string decode_part(std::string_view part, const char* what) {
    if (part.empty()) fail(ErrorCode::denied, std::string("ID token ") + what + " is empty");
    std::string bytes;
    try {
        bytes = text::base64url_decode(part);
    } catch (const Error&) {
        fail(ErrorCode::denied, std::string("ID token ") + what + " is not base64url");
    }
    if (text::base64url_encode(bytes) != part)
        fail(ErrorCode::denied, std::string("ID token ") + what + " is not canonical base64url");
    return bytes;
}

bool printable_name(std::string_view s) {
    if (s.empty() || s.size() > k_max_display_name || !text::is_valid_utf8(s)) return false;
    return std::none_of(s.begin(), s.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c < 0x20 || c == 0x7f;
    });
}

} // namespace

// --- Keys -------------------------------------------------------------------------------

struct Client::Keys {
    struct Key {
        std::shared_ptr<EVP_PKEY> pkey;
        std::string alg; // the one alg this key verifies
    };
    std::map<std::string, Key, std::less<>> by_kid;
};

namespace {

std::shared_ptr<const Client::Keys> parse_jwks(std::string_view body) {
    const Json jwks = parse_object(body, "the JWKS", ErrorCode::protocol);
    const Json* keys = member(jwks, "keys");
    if (keys == nullptr || !keys->is_array()) fail(ErrorCode::protocol, "the JWKS has no \"keys\" array");
    auto out = std::make_shared<Client::Keys>();
    for (const Json& jwk : *keys) {
        if (!jwk.is_object()) continue;
        const Json* kid = member(jwk, "kid");
        const Json* kty = member(jwk, "kty");
        const Json* use = member(jwk, "use");
        const Json* alg = member(jwk, "alg");
        if (kid == nullptr || !kid->is_string() || kid->get_ref<const std::string&>().empty()) continue;
        if (kty == nullptr || !kty->is_string()) continue;
        if (use != nullptr && *use != "sig") continue; // an encryption key never verifies a token
        const char* key_alg = alg_for_kty(kty->get<std::string>());
        if (key_alg == nullptr) continue;
        if (alg != nullptr && *alg != key_alg) continue; // e.g. an RSA key for PS256 only
        Pkey pkey = kty->get<std::string>() == "RSA"  ? rsa_key(jwk)
                    : kty->get<std::string>() == "EC" ? ec_p256_key(jwk)
                                                      : ed25519_key(jwk);
        if (!pkey) continue;
        const std::string& id = kid->get_ref<const std::string&>();
        // SECURITY NOTE: two usable keys under one kid would make "which key" ambiguous.
        if (out->by_kid.count(id) != 0) fail(ErrorCode::protocol, "the JWKS has the kid " + q(id) + " twice");
        out->by_kid.emplace(id, Client::Keys::Key{std::shared_ptr<EVP_PKEY>(pkey.release(), PkeyFree{}), key_alg});
    }
    if (out->by_kid.empty())
        fail(ErrorCode::protocol,
             "the JWKS has no usable signing key (RSA >= 2048 bits, EC P-256 or Ed25519, with a kid)");
    return out;
}

} // namespace

// --- public -----------------------------------------------------------------------------

bool is_unix_user_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > 32) return false;
    const auto lower_or_underscore = [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; };
    if (!lower_or_underscore(name.front())) return false;
    // '.' too: directory-backed hosts (SSSD, AD) name people john.doe, and a mapping that had
    // to pick another spelling would never equal the requester's name (the one-person rule).
    return std::all_of(name.begin() + 1, name.end(), [&](char c) {
        return lower_or_underscore(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
    });
}

std::string code_challenge_s256(std::string_view code_verifier) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    unsigned int len = 0;
    if (EVP_Digest(code_verifier.data(), code_verifier.size(), digest, &len, EVP_sha256(), nullptr) != 1 ||
        len != SHA256_DIGEST_LENGTH)
        fail(ErrorCode::internal, "SHA-256 failed");
    return text::base64url_encode(std::string_view(reinterpret_cast<const char*>(digest), len));
}

Settings settings_from_config(const config::Config::Oidc& oidc, std::string client_secret, std::string redirect_uri) {
    Settings s;
    s.issuer = oidc.issuer;
    s.client_id = oidc.client_id;
    s.client_secret = std::move(client_secret);
    s.redirect_uri = std::move(redirect_uri);
    s.ca_file = oidc.ca_file;
    s.scopes = oidc.scopes;
    s.username_claim = oidc.username_claim;
    s.groups_claim = oidc.groups_claim;
    s.users = oidc.users;
    s.groups = oidc.groups;
    if (oidc.token_endpoint_auth == "client_secret_basic") {
        s.token_auth = TokenAuth::client_secret_basic;
    } else if (oidc.token_endpoint_auth == "client_secret_post") {
        s.token_auth = TokenAuth::client_secret_post;
    } else {
        throw Error(ErrorCode::bad_input, "oidc",
                    "token_endpoint_auth must be client_secret_basic or client_secret_post, not " +
                        q(oidc.token_endpoint_auth));
    }
    s.allow_http_loopback = oidc.allow_http_loopback;
    return s;
}

Client::Client(Settings settings) : m_settings(std::move(settings)) {
    const auto bad = [](const std::string& what) { throw Error(ErrorCode::bad_input, "oidc", what); };
    if (m_settings.issuer.empty()) bad("issuer is not set");
    if (m_settings.client_id.empty()) bad("client_id is not set");
    if (m_settings.client_secret.empty()) bad("the client secret is empty");
    if (m_settings.redirect_uri.empty()) bad("redirect_uri is not set");
    check_url(m_settings.issuer, m_settings.allow_http_loopback, "issuer", ErrorCode::bad_input);
    check_url(m_settings.redirect_uri, m_settings.allow_http_loopback, "redirect_uri", ErrorCode::bad_input);
    if (std::find(m_settings.scopes.begin(), m_settings.scopes.end(), "openid") == m_settings.scopes.end())
        bad("scopes must contain \"openid\"");
    for (const auto& s : m_settings.scopes)
        if (s.empty() || s.find_first_of(" \t\r\n\"\\") != std::string::npos) bad("bad scope " + q(s));
    if (m_settings.username_claim.empty()) bad("username_claim is empty");
    if (m_settings.groups_claim.empty()) bad("groups_claim is empty");
    const std::string ca = m_settings.ca_file.empty() ? k_system_ca_bundle : m_settings.ca_file;
    if (!std::ifstream(ca).good()) bad("cannot read the CA file " + q(ca));
    if (m_settings.clock_skew.count() < 0 || m_settings.clock_skew.count() > 600) bad("clock_skew must be 0-600 s");
    if (m_settings.max_token_age.count() <= 0) bad("max_token_age must be positive");
}

Client::~Client() = default;

ProviderMetadata Client::discover() {
    std::string url = m_settings.issuer;
    if (!url.empty() && url.back() == '/') url.pop_back(); // OIDC Discovery §4
    url += "/.well-known/openid-configuration";
    const HttpResult r = http_call(m_settings, url, nullptr, "", "discovery");
    if (r.status != 200)
        fail(ErrorCode::protocol, "discovery: the IdP answered HTTP " + std::to_string(r.status) + " for " + q(url));
    const Json doc = parse_object(r.body, "the discovery document", ErrorCode::protocol);

    ProviderMetadata m;
    m.issuer = string_member(doc, "issuer", "the discovery document", ErrorCode::protocol);
    // SECURITY NOTE: exact match (OIDC Discovery §4.3): an IdP that names another issuer could
    // mint tokens we would then accept as this one's.
    if (m.issuer != m_settings.issuer)
        fail(ErrorCode::protocol,
             "discovery: the IdP's issuer " + q(m.issuer) + " is not the configured " + q(m_settings.issuer));
    m.authorization_endpoint =
        string_member(doc, "authorization_endpoint", "the discovery document", ErrorCode::protocol);
    m.token_endpoint = string_member(doc, "token_endpoint", "the discovery document", ErrorCode::protocol);
    m.jwks_uri = string_member(doc, "jwks_uri", "the discovery document", ErrorCode::protocol);
    check_url(m.authorization_endpoint, m_settings.allow_http_loopback, "authorization_endpoint", ErrorCode::protocol);
    check_url(m.token_endpoint, m_settings.allow_http_loopback, "token_endpoint", ErrorCode::protocol);
    check_url(m.jwks_uri, m_settings.allow_http_loopback, "jwks_uri", ErrorCode::protocol);
    if (const Json* methods = member(doc, "code_challenge_methods_supported"); methods != nullptr) {
        if (!methods->is_array() || std::find(methods->begin(), methods->end(), Json("S256")) == methods->end())
            fail(ErrorCode::protocol,
                 "discovery: the IdP does not support PKCE S256 (code_challenge_methods_supported)");
    }
    if (const Json* algs = member(doc, "id_token_signing_alg_values_supported"); algs != nullptr) {
        const bool any = algs->is_array() && std::any_of(algs->begin(), algs->end(), [](const Json& a) {
                             return a == "RS256" || a == "ES256" || a == "EdDSA";
                         });
        if (!any) fail(ErrorCode::protocol, "discovery: the IdP signs ID tokens with none of RS256, ES256, EdDSA");
    }

    std::shared_ptr<const Keys> keys = fetch_keys(m.jwks_uri);
    std::lock_guard lock(m_mutex);
    m_metadata = m;
    m_keys = std::move(keys);
    m_last_jwks_fetch = std::chrono::steady_clock::now();
    m_discovered = true;
    return m;
}

ProviderMetadata Client::metadata() {
    {
        std::lock_guard lock(m_mutex);
        if (m_discovered) return m_metadata;
    }
    return discover();
}

std::shared_ptr<const Client::Keys> Client::fetch_keys(const std::string& jwks_uri) {
    ++m_jwks_fetches;
    const HttpResult r = http_call(m_settings, jwks_uri, nullptr, "", "JWKS");
    if (r.status != 200) fail(ErrorCode::protocol, "JWKS: the IdP answered HTTP " + std::to_string(r.status));
    return parse_jwks(r.body);
}

std::size_t Client::refresh_keys() {
    const ProviderMetadata m = metadata();
    std::shared_ptr<const Keys> keys = fetch_keys(m.jwks_uri);
    std::lock_guard lock(m_mutex);
    m_keys = keys;
    m_last_jwks_fetch = std::chrono::steady_clock::now();
    return keys->by_kid.size();
}

std::shared_ptr<const Client::Keys> Client::keys_for(std::string_view kid) {
    const ProviderMetadata m = metadata();
    {
        std::lock_guard lock(m_mutex);
        if (m_keys && m_keys->by_kid.find(kid) != m_keys->by_kid.end()) return m_keys;
        // SECURITY NOTE: an unknown kid may be a key the IdP just rotated in — or a stream of
        // forged tokens meant to make us hammer the IdP. One fetch per interval at most.
        if (std::chrono::steady_clock::now() - m_last_jwks_fetch < m_settings.jwks_refetch_interval) return m_keys;
        m_last_jwks_fetch = std::chrono::steady_clock::now();
    }
    std::shared_ptr<const Keys> keys = fetch_keys(m.jwks_uri);
    std::lock_guard lock(m_mutex);
    m_keys = keys;
    return keys;
}

AuthorizationRequest Client::begin() {
    const ProviderMetadata m = metadata();
    AuthorizationRequest out;
    out.pending.state = random_b64url(k_random_bytes);
    out.pending.nonce = random_b64url(k_random_bytes);
    out.pending.code_verifier = random_b64url(k_random_bytes);
    std::string scope;
    for (const auto& s : m_settings.scopes) scope += (scope.empty() ? "" : " ") + s;
    out.url = m.authorization_endpoint;
    out.url += m.authorization_endpoint.find('?') == std::string::npos ? '?' : '&';
    out.url += form_encode({{"response_type", "code"},
                            {"client_id", m_settings.client_id},
                            {"redirect_uri", m_settings.redirect_uri},
                            {"scope", scope},
                            {"state", out.pending.state},
                            {"nonce", out.pending.nonce},
                            {"code_challenge", code_challenge_s256(out.pending.code_verifier)},
                            {"code_challenge_method", "S256"}});
    return out;
}

TokenResponse Client::exchange_code(const std::string& code, const std::string& code_verifier) {
    if (code.empty() || code.size() > k_max_code_bytes)
        fail(ErrorCode::denied, "the authorization code is empty or too long");
    if (code_verifier.size() < 43 || code_verifier.size() > 128)
        fail(ErrorCode::denied, "the PKCE code verifier is not 43-128 characters");
    const ProviderMetadata m = metadata();
    std::vector<std::pair<std::string, std::string>> fields = {
        {"grant_type", "authorization_code"},
        {"code", code},
        {"redirect_uri", m_settings.redirect_uri},
        {"code_verifier", code_verifier},
    };
    std::string basic;
    if (m_settings.token_auth == TokenAuth::client_secret_basic) {
        // RFC 6749 §2.3.1: both parts form-urlencoded before the Basic encoding.
        basic = "Basic " + text::base64_encode(percent_encode(m_settings.client_id) + ":" +
                                               percent_encode(m_settings.client_secret));
    } else {
        fields.emplace_back("client_id", m_settings.client_id);
        fields.emplace_back("client_secret", m_settings.client_secret);
    }
    const std::string form = form_encode(fields);
    const HttpResult r = http_call(m_settings, m.token_endpoint, &form, basic, "token endpoint");
    if (r.status != 200) {
        std::string why = "HTTP " + std::to_string(r.status);
        const Json err = Json::parse(r.body, nullptr, /*allow_exceptions=*/false);
        if (err.is_object() && err.contains("error") && err["error"].is_string())
            why += " " + q(err["error"].get<std::string>());
        fail(ErrorCode::denied, "the IdP refused the authorization code: " + why);
    }
    const Json doc = parse_object(r.body, "the token response", ErrorCode::protocol);
    TokenResponse out;
    out.id_token = string_member(doc, "id_token", "the token response", ErrorCode::protocol);
    const std::string type = string_member(doc, "token_type", "the token response", ErrorCode::protocol);
    std::string lower = type;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
    if (lower != "bearer") fail(ErrorCode::protocol, "the token response's token_type is " + q(type) + ", not Bearer");
    if (const Json* at = member(doc, "access_token"); at != nullptr && at->is_string())
        out.access_token = at->get<std::string>();
    return out;
}

VerifiedToken Client::verify_id_token(std::string_view jwt, std::string_view expected_nonce, std::int64_t now) {
    if (expected_nonce.empty()) fail(ErrorCode::denied, "no nonce to check the ID token against");
    if (jwt.size() > k_max_id_token_bytes) fail(ErrorCode::denied, "the ID token is larger than 64 KiB");
    const auto dot1 = jwt.find('.');
    const auto dot2 = dot1 == std::string_view::npos ? dot1 : jwt.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || jwt.find('.', dot2 + 1) != std::string_view::npos)
        fail(ErrorCode::denied, "the ID token is not a compact JWS (three parts)");
    const std::string header_bytes = decode_part(jwt.substr(0, dot1), "header");
    const std::string payload_bytes = decode_part(jwt.substr(dot1 + 1, dot2 - dot1 - 1), "payload");
    const std::string signature = decode_part(jwt.substr(dot2 + 1), "signature");

    const Json header = parse_object(header_bytes, "the ID token header", ErrorCode::denied);
    const Json* alg = member(header, "alg");
    if (alg == nullptr || !alg->is_string()) fail(ErrorCode::denied, "the ID token header has no alg");
    const std::string alg_s = alg->get<std::string>();
    // SECURITY NOTE: an allow list, never "whatever the token says": "none" and HS256 (a MAC
    // keyed with something public, such as the RSA key) would let anyone mint a token.
    if (alg_s != "RS256" && alg_s != "ES256" && alg_s != "EdDSA")
        fail(ErrorCode::denied, "the ID token's alg " + q(alg_s) + " is not allowed (RS256, ES256, EdDSA)");
    for (const char* banned : {"crit", "jku", "jwk", "x5u", "x5c"})
        if (header.contains(banned)) fail(ErrorCode::denied, std::string("the ID token header has \"") + banned + "\"");
    const Json* kid = member(header, "kid");
    if (kid == nullptr || !kid->is_string() || kid->get_ref<const std::string&>().empty())
        fail(ErrorCode::denied, "the ID token header has no kid");
    const std::string kid_s = kid->get<std::string>();

    const std::shared_ptr<const Keys> keys = keys_for(kid_s);
    const auto it = keys ? keys->by_kid.find(kid_s) : decltype(keys->by_kid.end()){};
    if (!keys || it == keys->by_kid.end())
        fail(ErrorCode::denied, "the ID token's kid " + q(kid_s) + " is not in the IdP's JWKS");
    if (it->second.alg != alg_s)
        fail(ErrorCode::denied, "the ID token's alg " + q(alg_s) + " does not fit its key (" + it->second.alg + ")");
    const std::string_view signed_part = jwt.substr(0, dot2);
    if (!verify_signature(it->second.pkey.get(), alg_s, signed_part, signature))
        fail(ErrorCode::denied, "the ID token's signature does not verify");

    // Only now is the payload read.
    const Json claims = parse_object(payload_bytes, "the ID token payload", ErrorCode::denied);
    const Json* iss = member(claims, "iss");
    if (iss == nullptr || !iss->is_string() || iss->get_ref<const std::string&>() != m_settings.issuer)
        fail(ErrorCode::denied, "the ID token's iss is not the configured issuer");
    const Json* aud = member(claims, "aud");
    std::size_t aud_count = 0;
    bool aud_ok = false;
    if (aud != nullptr && aud->is_string()) {
        aud_count = 1;
        aud_ok = *aud == m_settings.client_id;
    } else if (aud != nullptr && aud->is_array()) {
        aud_count = aud->size();
        for (const Json& a : *aud) {
            if (!a.is_string()) fail(ErrorCode::denied, "the ID token's aud has a member that is not a string");
            if (a == m_settings.client_id) aud_ok = true;
        }
    }
    if (!aud_ok)
        fail(ErrorCode::denied, "the ID token's aud does not contain this client_id " + q(m_settings.client_id));
    const Json* azp = member(claims, "azp");
    if (azp != nullptr && (!azp->is_string() || *azp != m_settings.client_id))
        fail(ErrorCode::denied, "the ID token's azp is not this client_id");
    if (aud_count > 1 && azp == nullptr) fail(ErrorCode::denied, "the ID token has several audiences and no azp");
    const Json* sub = member(claims, "sub");
    if (sub == nullptr || !sub->is_string() || sub->get_ref<const std::string&>().empty() ||
        sub->get_ref<const std::string&>().size() > 255)
        fail(ErrorCode::denied, "the ID token has no sub (a string of 1-255 bytes)");

    const std::int64_t skew = m_settings.clock_skew.count();
    const Json* exp = member(claims, "exp");
    const Json* iat = member(claims, "iat");
    if (exp == nullptr) fail(ErrorCode::denied, "the ID token has no exp");
    if (iat == nullptr) fail(ErrorCode::denied, "the ID token has no iat");
    const std::int64_t exp_v = numeric_date(*exp, "exp");
    const std::int64_t iat_v = numeric_date(*iat, "iat");
    if (exp_v <= now - skew) fail(ErrorCode::denied, "the ID token has expired");
    if (iat_v > now + skew) fail(ErrorCode::denied, "the ID token was issued in the future (iat)");
    if (iat_v < now - m_settings.max_token_age.count() - skew) fail(ErrorCode::denied, "the ID token is too old (iat)");
    if (const Json* nbf = member(claims, "nbf"); nbf != nullptr && numeric_date(*nbf, "nbf") > now + skew)
        fail(ErrorCode::denied, "the ID token is not valid yet (nbf)");
    const Json* nonce = member(claims, "nonce");
    // SECURITY NOTE: the nonce binds the token to the sign-in this browser started; a token
    // from another sign-in (replayed or injected) carries another nonce.
    if (nonce == nullptr || !nonce->is_string() || !equal_ct(nonce->get_ref<const std::string&>(), expected_nonce))
        fail(ErrorCode::denied, "the ID token's nonce is not the one of this sign-in");
    return VerifiedToken{kid_s, alg_s, claims};
}

Identity Client::identity_from_claims(const Json& claims) const {
    Identity id;
    id.issuer = m_settings.issuer;
    const Json* sub = member(claims, "sub");
    if (sub == nullptr || !sub->is_string() || sub->get_ref<const std::string&>().empty())
        fail(ErrorCode::denied, "the ID token has no sub");
    id.subject = sub->get<std::string>();

    const Json* name_claim = member(claims, m_settings.username_claim.c_str());
    if (name_claim == nullptr || !name_claim->is_string())
        fail(ErrorCode::denied, "the ID token has no string claim \"" +
                                    text::shown(m_settings.username_claim, k_max_shown) + "\" (username_claim)");
    const std::string idp_name = name_claim->get<std::string>();
    const auto mapped = m_settings.users.find(idp_name);
    id.username = mapped == m_settings.users.end() ? idp_name : mapped->second;
    // SECURITY NOTE: an unmapped IdP name passes through as the Unix name, so it must not be a
    // name that oidc.users gives to someone else: IdP user "alice" (another person, or an
    // account whose preferred_username its owner could edit) would otherwise act as the Unix
    // user alice that "alice.anders@example.com" is mapped to.
    if (mapped == m_settings.users.end())
        for (const auto& [from, to] : m_settings.users)
            if (to == idp_name)
                fail(ErrorCode::denied, "the IdP's user name " + q(idp_name) + " is not mapped, but oidc.users maps " +
                                            q(from) + " to that Unix name; map this IdP user explicitly");
    // SECURITY NOTE: this name is compared with the hosts' Unix names (self-approval, "N
    // different approvers"); anything a Unix name cannot be is refused, never altered.
    if (!is_unix_user_name(id.username))
        fail(ErrorCode::denied, "the IdP's user name " + q(idp_name) +
                                    " is not a Unix user name ([a-z_][a-z0-9_-]{0,31}); map it under oidc.users");

    std::set<std::string> groups;
    if (const Json* g = member(claims, m_settings.groups_claim.c_str()); g != nullptr && !g->is_null()) {
        std::vector<std::string> idp_groups;
        if (g->is_string()) {
            idp_groups.push_back(g->get<std::string>());
        } else if (g->is_array()) {
            for (const Json& e : *g) {
                if (!e.is_string())
                    fail(ErrorCode::denied, "the ID token's groups claim has a member that is not a string");
                idp_groups.push_back(e.get<std::string>());
            }
        } else {
            fail(ErrorCode::denied, "the ID token's groups claim is neither a string nor an array of strings");
        }
        for (const auto& name : idp_groups) {
            const auto m = m_settings.groups.find(name);
            if (m != m_settings.groups.end()) groups.insert(m->second);
        }
    }
    id.groups.assign(groups.begin(), groups.end());
    const Json* display = member(claims, "name");
    id.display_name =
        display != nullptr && display->is_string() && printable_name(display->get_ref<const std::string&>())
            ? display->get<std::string>()
            : id.username;
    return id;
}

Identity Client::finish(const Callback& callback, const PendingLogin& pending) {
    if (!callback.error.empty()) {
        std::string msg = "the IdP refused the sign-in: " + q(callback.error);
        if (!callback.error_description.empty()) msg += " (" + q(callback.error_description) + ")";
        fail(ErrorCode::denied, msg);
    }
    // SECURITY NOTE: state ties the callback to the browser that started the sign-in (CSRF).
    if (!equal_ct(callback.state, pending.state))
        fail(ErrorCode::denied, "the callback's state is not the one of this sign-in");
    if (callback.code.empty()) fail(ErrorCode::denied, "the callback has no code");
    const TokenResponse tokens = exchange_code(callback.code, pending.code_verifier);
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    const VerifiedToken verified = verify_id_token(tokens.id_token, pending.nonce, now);
    return identity_from_claims(verified.claims);
}

} // namespace jitgate::server::web::oidc
