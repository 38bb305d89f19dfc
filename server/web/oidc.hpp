// server/web/oidc.hpp — OpenID Connect sign-in for approvers: the relying party of the
// authorization code flow with PKCE (S256), against the company's IdP.
//
// Owns: discovery ({issuer}/.well-known/openid-configuration), the IdP's signing keys (JWKS,
// cached, refetched on an unknown kid at most once per interval), the authorization URL
// (state, nonce, code_challenge from RAND_bytes), the code exchange at the token endpoint
// (client_secret_basic or client_secret_post, libcurl under lib/https's policy), the ID token
// check (OpenSSL EVP: RS256, ES256 or EdDSA only; kid, signature, iss, aud, azp, exp, iat, nbf,
// nonce), and the mapping of its claims to an Identity (Unix user name, approver groups).
// It does not own sessions, cookies, pages or the HTTP server (server/web's other units and
// server/http do): the caller keeps the PendingLogin of begin() — bound to the browser — until
// the callback, and passes it to finish().
//
// Threading: a Client is thread-safe (its cached metadata and keys sit behind a mutex). Calls
// that talk to the IdP (discover, begin before the first discovery, finish, refresh_keys) block
// for up to Settings::timeout per request: do not make them on the event loop thread.
// Errors: jitgate::Error. bad_input: bad settings (at construction). protocol: the IdP's
// answer is malformed or does not match its configuration (issuer mismatch, plain http,
// missing endpoint). denied: the sign-in is refused (bad state, the IdP's error, a code the IdP
// refuses, an ID token that fails a check, a user name that is not a Unix name). internal:
// libcurl, OpenSSL or the RNG failed, or the IdP cannot be reached. Every message is one line
// that starts with "oidc: " and quotes values from the IdP or browser escaped and cut short.
// Never logs, never puts a secret (client secret, code, verifier, token) in a message.
// Depends on lib/ (https policy), common/ (text, error), OpenSSL, libcurl, nlohmann-json and
// server/config's Config::Oidc; never on the HTTP layer or the store.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/config/config.hpp"

namespace jitgate::server::web::oidc {

// Debian's bundle of the system's trusted CAs: used when Config::Oidc::ca_file is empty
// ("the system's trust store"), because lib/https never trusts an implicit store.
inline constexpr const char* k_system_ca_bundle = "/etc/ssl/certs/ca-certificates.crt";

// Who signed in. Every member is set by finish() / identity_from_claims().
struct Identity {
    std::string issuer;              // the configured issuer (equal to the token's iss)
    std::string subject;             // the token's sub: stable for this person at this IdP
    std::string username;            // the Unix user name (username_claim, mapped through users)
    std::vector<std::string> groups; // approver groups (groups_claim mapped through groups), sorted, unique
    std::string display_name;        // the token's "name" if printable and short, else username
};

// How the client authenticates at the token endpoint (RFC 6749 §2.3.1, OIDC Core §9).
enum class TokenAuth { client_secret_basic, client_secret_post };

struct Settings {
    std::string issuer; // exactly as the IdP writes it in `iss` (no trailing-slash games)
    std::string client_id;
    std::string client_secret; // the secret itself (the caller reads client_secret_file)
    std::string redirect_uri;  // this server's callback URL, registered at the IdP
    std::string ca_file;       // the CA that signs the IdP's TLS certificate; empty: k_system_ca_bundle
    std::vector<std::string> scopes = {"openid", "profile", "email"}; // must contain "openid"
    std::string username_claim = "preferred_username";
    std::string groups_claim = "groups";
    std::map<std::string, std::string> users;  // IdP user name -> Unix name, where they differ
    std::map<std::string, std::string> groups; // IdP group -> approver group; others ignored
    TokenAuth token_auth = TokenAuth::client_secret_basic;
    // Tests only (an IdP on 127.0.0.1 without TLS): also accept http:// URLs — for the issuer
    // and for every endpoint — whose host is 127.0.0.1, ::1 or localhost. https is accepted
    // regardless. Never implied by anything else.
    bool allow_http_loopback = false;
    std::chrono::seconds clock_skew{60};            // tolerance on exp, iat and nbf
    std::chrono::seconds max_token_age{600};        // an ID token whose iat is older is refused
    std::chrono::seconds jwks_refetch_interval{60}; // at most one JWKS fetch per interval on an unknown kid
    std::chrono::milliseconds timeout{10000};       // each request to the IdP, connection included
};

// The Settings for `oidc` (Config::Oidc) with the secret read by the caller and this server's
// callback URL. Copies every member the two share.
Settings settings_from_config(const config::Config::Oidc& oidc, std::string client_secret, std::string redirect_uri);

// The IdP's discovery document, checked (see Client::discover).
struct ProviderMetadata {
    std::string issuer;
    std::string authorization_endpoint;
    std::string token_endpoint;
    std::string jwks_uri;
};

// What begin() created for one sign-in. The caller stores it server-side, bound to the browser
// that was sent to `url` (e.g. under a random cookie), uses it once in finish(), then deletes it.
// All three values are secrets until the sign-in ends: never log or show them.
struct PendingLogin {
    std::string state;         // 43 characters of base64url (32 random bytes)
    std::string nonce;         // the same
    std::string code_verifier; // the same (RFC 7636: 43-128 characters)
};

struct AuthorizationRequest {
    std::string url; // where to send the browser (302)
    PendingLogin pending;
};

// The query of the callback request (redirect_uri?code=…&state=… or ?error=…&state=…).
struct Callback {
    std::string code;
    std::string state;
    std::string error; // set by the IdP when it refused or failed
    std::string error_description;
};

// The tokens of a successful code exchange.
struct TokenResponse {
    std::string id_token;
    std::string access_token; // may be empty; not used for sign-in
};

// The claims of an ID token that passed every check of verify_id_token().
struct VerifiedToken {
    std::string kid;
    std::string alg;
    nlohmann::json claims; // the whole payload (a JSON object)
};

class Client {
public:
    // Checks `settings`: issuer, client_id, client_secret and redirect_uri set; issuer and
    // redirect_uri https (or http on loopback with allow_http_loopback); "openid" in scopes;
    // claim names non-empty; the ca_file (or the system bundle) readable. Talks to nobody.
    // Throws Error(bad_input) naming the first problem.
    explicit Client(Settings settings);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    const Settings& settings() const noexcept { return m_settings; }

    // Fetches and checks the discovery document: a JSON object whose `issuer` equals
    // Settings::issuer byte for byte (OIDC Discovery §4.3), with authorization_endpoint,
    // token_endpoint and jwks_uri https (or http loopback when allowed); when it lists
    // code_challenge_methods_supported, S256 must be there; when it lists
    // id_token_signing_alg_values_supported, one of RS256/ES256/EdDSA must be there. Then
    // fetches the JWKS. Replaces the cached metadata and keys only when all of that succeeds.
    // Returns the metadata. Throws as the header says (protocol / internal).
    ProviderMetadata discover();

    // The cached metadata, discovering first if there is none yet.
    ProviderMetadata metadata();

    // Starts a sign-in: fresh state, nonce and PKCE verifier (RAND_bytes, base64url), and the
    // authorization URL with response_type=code, client_id, redirect_uri, scope, state, nonce,
    // code_challenge (base64url SHA-256 of the verifier) and code_challenge_method=S256.
    // Discovers first if needed. Throws Error(internal) if the RNG fails.
    AuthorizationRequest begin();

    // Ends a sign-in: the IdP's error refused; `callback.state` must equal `pending.state`
    // (constant time; both non-empty); the code is exchanged (exchange_code) and the ID token
    // checked (verify_id_token with pending.nonce and the current time) and mapped
    // (identity_from_claims). Throws Error(denied) for every refusal.
    Identity finish(const Callback& callback, const PendingLogin& pending);

    // POSTs grant_type=authorization_code with `code`, redirect_uri and `code_verifier` to the
    // token endpoint, authenticated per Settings::token_auth. 200 with a JSON object holding a
    // string id_token and token_type Bearer, or Error(denied) with the IdP's error code.
    TokenResponse exchange_code(const std::string& code, const std::string& code_verifier);

    // Checks an ID token (compact JWS), in this order, failing closed at the first problem:
    // at most 64 KiB; three canonical base64url parts; the header a JSON object without
    // duplicate members, `alg` one of RS256, ES256, EdDSA (never none or HS*), no `crit`,
    // `jku`, `jwk`, `x5u` or `x5c`, a string `kid`; the kid in the JWKS (refetched once,
    // rate-limited, when unknown) with a key whose type fits alg (RSA of 2048 bits or more,
    // EC P-256, Ed25519) and whose own `alg`, if set, equals it; the signature; then the payload:
    // a JSON object without duplicate members; iss equal to the issuer; aud a string or array
    // that contains client_id; azp equal to client_id when present, and required when aud has
    // more than one member; sub a non-empty string; exp > now - skew; iat <= now + skew and
    // iat >= now - max_token_age - skew; nbf, if present, <= now + skew; nonce present and
    // equal to `expected_nonce` (constant time; an empty expected nonce refuses everything).
    // Throws Error(denied) with the reason, Error(internal) if OpenSSL fails.
    VerifiedToken verify_id_token(std::string_view id_token, std::string_view expected_nonce, std::int64_t now_unix);

    // Maps verified claims to an Identity: the username claim (a string) through
    // Settings::users (unmapped names stay as they are) must be a Unix user name (see
    // is_unix_user_name), else Error(denied); the groups claim, when present, must be an array
    // of strings (a single string is taken as one group) and each is mapped through
    // Settings::groups, unmapped ones ignored; display name from "name".
    Identity identity_from_claims(const nlohmann::json& claims) const;

    // Fetches the JWKS now (ignoring the rate limit) and replaces the cached keys. Returns the
    // number of usable keys (RSA >= 2048, EC P-256, Ed25519 with use "sig" or no use). Keys of
    // other types are skipped; a JWKS with no usable key is Error(protocol).
    std::size_t refresh_keys();

    // How many times the JWKS was fetched (discovery, refresh_keys, refetches on an unknown
    // kid) — for metrics and for the rate limit's test.
    std::size_t jwks_fetches() const noexcept { return m_jwks_fetches.load(); }

    struct Keys; // the parsed JWKS (defined in oidc.cpp)

private:
    // The keys, refetched first (rate-limited) when `kid` is not among them.
    std::shared_ptr<const Keys> keys_for(std::string_view kid);
    std::shared_ptr<const Keys> fetch_keys(const std::string& jwks_uri);

    const Settings m_settings;
    mutable std::mutex m_mutex; // guards the members below
    bool m_discovered = false;
    ProviderMetadata m_metadata;
    std::shared_ptr<const Keys> m_keys;
    std::chrono::steady_clock::time_point m_last_jwks_fetch{};
    std::atomic<std::size_t> m_jwks_fetches{0};
};

// A Unix user name as jitgate accepts one: 1 to 32 characters of [a-z_][a-z0-9_.-]*: Debian's
// default NAME_REGEX (adduser) without its optional trailing '$' (machine accounts never
// approve), plus '.' (directory-backed names such as john.doe), cut at useradd's 32.
// SECURITY NOTE: the result must be the person's exact name on the hosts (byte for byte):
// that equality is what refuses self-approval. Map IdP names in oidc.users where they differ.
bool is_unix_user_name(std::string_view name) noexcept;

// PKCE S256 (RFC 7636 §4.2): base64url(SHA-256(verifier)) without padding. Throws
// Error(internal) if OpenSSL fails.
std::string code_challenge_s256(std::string_view code_verifier);

} // namespace jitgate::server::web::oidc
