// Tests for server/web/oidc against a REAL OpenID Connect provider: glewlwyd (Debian's
// package), started for the run by the ctest fixture idp.glewlwyd.start
// (tests/support/idp/glewlwyd.sh), on 127.0.0.1 over TLS. The fixture's idp.json is named by
// the environment variable JITGATE_TEST_IDP; without it every test here FAILS (never skips).
// The browser's part of the sign-in is done with libcurl through glewlwyd's REST API (what its
// login page calls): POST /api/auth/ with the password, then the authorization URL with the
// session cookie and g_continue, whose 302 carries the code.
#include "server/web/oidc.hpp"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"

namespace {

namespace oidc = jitgate::server::web::oidc;
using jitgate::Error;
using jitgate::ErrorCode;
using Json = nlohmann::json;

struct Idp {
    std::string issuer, base_url, ca_file, client_id, client_secret, redirect_uri;
    Json users;
    Json issuers; // alg -> the issuer of the same IdP that signs with it
};

std::int64_t now_unix() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Runs `f`, expects an Error with `code` whose message contains `part`.
template <typename F>
void expect_error(F&& f, ErrorCode code, const std::string& part) {
    try {
        f();
        ADD_FAILURE() << "no error; expected one containing \"" << part << "\"";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), code) << e.what();
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).rfind("oidc: ", 0), 0u) << e.what();
    }
}

extern "C" std::size_t collect(char* p, std::size_t s, std::size_t n, void* out) {
    static_cast<std::string*>(out)->append(p, s * n);
    return s * n;
}

// The query parameter `name` of `url`, percent-decoded (the values here are base64url: no '+').
std::string query_param(const std::string& url, const std::string& name) {
    const auto q = url.find('?');
    if (q == std::string::npos) return "";
    std::istringstream in(url.substr(q + 1));
    std::string pair;
    while (std::getline(in, pair, '&')) {
        if (pair.rfind(name + "=", 0) == 0) {
            int len = 0;
            char* raw = curl_easy_unescape(nullptr, pair.c_str() + name.size() + 1, 0, &len);
            std::string v(raw, static_cast<std::size_t>(len));
            curl_free(raw);
            return v;
        }
    }
    return "";
}

class OidcTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }

    void SetUp() override {
        const char* path = std::getenv("JITGATE_TEST_IDP");
        ASSERT_NE(path, nullptr) << "JITGATE_TEST_IDP is not set: run these tests with ctest, whose fixture "
                                    "idp.glewlwyd.start starts glewlwyd (tests/support/idp/glewlwyd.sh)";
        std::ifstream in(path);
        ASSERT_TRUE(in.good()) << "cannot read " << path << ": did idp.glewlwyd.start fail? (is glewlwyd installed?)";
        const Json j = Json::parse(in);
        idp.issuer = j.at("issuer");
        idp.base_url = j.at("base_url");
        idp.ca_file = j.at("ca_file");
        idp.client_id = j.at("client_id");
        idp.client_secret = j.at("client_secret");
        idp.redirect_uri = j.at("redirect_uris").at(0);
        idp.users = j.at("users");
        idp.issuers = j.at("issuers");
    }

    oidc::Settings settings() const {
        oidc::Settings s;
        s.issuer = idp.issuer;
        s.client_id = idp.client_id;
        s.client_secret = idp.client_secret;
        s.redirect_uri = idp.redirect_uri;
        s.ca_file = idp.ca_file;
        s.groups = {{"sox-approvers", "sox-approvers"}, {"ops", "ops-oncall"}}; // "finance", "sox-auditors": unmapped
        return s;
    }

    // The browser's part: signs in as `user` through glewlwyd's REST API, then follows the
    // authorization URL once; returns the callback's query (code, state or error).
    oidc::Callback sign_in(const std::string& user, const std::string& auth_url, std::string password = "") {
        if (password.empty()) password = idp.users.at(user).at("password");
        std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> c(curl_easy_init(), &curl_easy_cleanup);
        EXPECT_TRUE(c);
        std::string body;
        curl_easy_setopt(c.get(), CURLOPT_CAINFO, idp.ca_file.c_str());
        curl_easy_setopt(c.get(), CURLOPT_COOKIEFILE, ""); // cookies on, kept in the handle
        curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, &collect);
        curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c.get(), CURLOPT_TIMEOUT, 20L);
        const std::string login_url = idp.base_url + "/api/auth/";
        const std::string login = Json{{"username", user}, {"password", password}}.dump();
        curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
        curl_easy_setopt(c.get(), CURLOPT_URL, login_url.c_str());
        curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, login.c_str());
        EXPECT_EQ(curl_easy_perform(c.get()), CURLE_OK);
        curl_slist_free_all(headers);
        long status = 0;
        curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
        EXPECT_EQ(status, 200) << "login of " << user << ": " << body;

        const std::string url = auth_url + "&g_continue";
        curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, nullptr);
        curl_easy_setopt(c.get(), CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
        EXPECT_EQ(curl_easy_perform(c.get()), CURLE_OK);
        curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
        char* location = nullptr;
        curl_easy_getinfo(c.get(), CURLINFO_REDIRECT_URL, &location);
        EXPECT_EQ(status, 302);
        const std::string loc = location != nullptr ? location : "";
        EXPECT_EQ(loc.rfind(idp.redirect_uri + "?", 0), 0u) << "Location: " << loc;
        return oidc::Callback{query_param(loc, "code"), query_param(loc, "state"), query_param(loc, "error"),
                              query_param(loc, "error_description")};
    }

    // A real ID token for `user` (and the nonce it carries).
    std::pair<std::string, std::string> id_token_for(oidc::Client& client, const std::string& user) {
        const oidc::AuthorizationRequest req = client.begin();
        const oidc::Callback cb = sign_in(user, req.url);
        const oidc::TokenResponse tokens = client.exchange_code(cb.code, req.pending.code_verifier);
        return {tokens.id_token, req.pending.nonce};
    }

    Idp idp;
};

TEST_F(OidcTest, DiscoveryMatchesTheIssuerAndFindsTheEndpoints) {
    oidc::Client client(settings());
    const oidc::ProviderMetadata m = client.discover();
    EXPECT_EQ(m.issuer, idp.issuer);
    EXPECT_EQ(m.authorization_endpoint, idp.issuer + "/auth");
    EXPECT_EQ(m.token_endpoint, idp.issuer + "/token");
    EXPECT_EQ(m.jwks_uri, idp.issuer + "/jwks");
    EXPECT_GE(client.refresh_keys(), 1u);
}

TEST_F(OidcTest, FullCodeFlowWithPkceSignsBobIn) {
    oidc::Client client(settings());
    const oidc::AuthorizationRequest req = client.begin();
    EXPECT_EQ(req.url.rfind(idp.issuer + "/auth?", 0), 0u) << req.url;
    EXPECT_EQ(query_param(req.url, "response_type"), "code");
    EXPECT_EQ(query_param(req.url, "client_id"), idp.client_id);
    EXPECT_EQ(query_param(req.url, "redirect_uri"), idp.redirect_uri);
    EXPECT_EQ(query_param(req.url, "scope"), "openid profile email");
    EXPECT_EQ(query_param(req.url, "state"), req.pending.state);
    EXPECT_EQ(query_param(req.url, "nonce"), req.pending.nonce);
    EXPECT_EQ(query_param(req.url, "code_challenge_method"), "S256");
    EXPECT_EQ(query_param(req.url, "code_challenge"), oidc::code_challenge_s256(req.pending.code_verifier));
    EXPECT_EQ(req.pending.state.size(), 43u);
    EXPECT_EQ(req.pending.code_verifier.size(), 43u);
    EXPECT_NE(req.pending.state, req.pending.nonce);
    EXPECT_EQ(req.url.find(req.pending.code_verifier), std::string::npos) << "the verifier must never leave the server";

    const oidc::Callback cb = sign_in("bob", req.url);
    ASSERT_FALSE(cb.code.empty()) << cb.error;
    EXPECT_EQ(cb.state, req.pending.state);
    const oidc::Identity id = client.finish(cb, req.pending);
    EXPECT_EQ(id.issuer, idp.issuer);
    EXPECT_FALSE(id.subject.empty());
    EXPECT_EQ(id.username, "bob");
    EXPECT_EQ(id.groups, std::vector<std::string>{"sox-approvers"});
    EXPECT_EQ(id.display_name, "Bob Brown");
}

TEST_F(OidcTest, EveryAllowedAlgorithmVerifies) {
    // The same IdP has one issuer per signing algorithm: RS256, ES256 (P-256) and EdDSA (Ed25519).
    for (const char* alg : {"RS256", "ES256", "EdDSA"}) {
        SCOPED_TRACE(alg);
        oidc::Settings s = settings();
        s.issuer = idp.issuers.at(alg);
        oidc::Client client(s);
        const auto token_nonce = id_token_for(client, "carol");
        const std::string& token = token_nonce.first;
        const std::string& nonce = token_nonce.second;
        const oidc::VerifiedToken v = client.verify_id_token(token, nonce, now_unix());
        EXPECT_EQ(v.alg, alg);
        EXPECT_EQ(v.claims.at("iss"), s.issuer);
        EXPECT_EQ(client.identity_from_claims(v.claims).username, "carol");
        // A signature bit flipped is refused for this algorithm too.
        const auto dot2 = token.rfind('.');
        std::string sig = jitgate::text::base64url_decode(token.substr(dot2 + 1));
        sig[0] = static_cast<char>(sig[0] ^ 0x01);
        const std::string bad = token.substr(0, dot2 + 1) + jitgate::text::base64url_encode(sig);
        expect_error([&] { client.verify_id_token(bad, nonce, now_unix()); }, ErrorCode::denied, "signature");
        // And a token of this issuer is not one of the RS256 issuer's.
        oidc::Client rs256(settings());
        if (std::string(alg) != "RS256")
            expect_error([&] { rs256.verify_id_token(token, nonce, now_unix()); }, ErrorCode::denied, "");
    }
}

TEST_F(OidcTest, ClientSecretPostWorksToo) {
    oidc::Settings s = settings();
    s.token_auth = oidc::TokenAuth::client_secret_post;
    oidc::Client client(s);
    const oidc::AuthorizationRequest req = client.begin();
    const oidc::Identity id = client.finish(sign_in("dave", req.url), req.pending);
    EXPECT_EQ(id.username, "dave");
    EXPECT_EQ(id.groups, std::vector<std::string>{"ops-oncall"});
}

TEST_F(OidcTest, GroupsAreMappedAndUnmappedOnesIgnored) {
    oidc::Client client(settings());
    const auto identity = [&](const std::string& user) {
        const oidc::AuthorizationRequest req = client.begin();
        return client.finish(sign_in(user, req.url), req.pending);
    };
    EXPECT_EQ(identity("carol").groups, std::vector<std::string>{"sox-approvers"}); // "finance" unmapped
    EXPECT_EQ(identity("dave").groups, std::vector<std::string>{"ops-oncall"});     // renamed
    EXPECT_EQ(identity("erin").groups, std::vector<std::string>{"ops-oncall"});     // "sox-auditors" unmapped
    EXPECT_TRUE(identity("alice").groups.empty());                                  // no groups claim at all
}

TEST_F(OidcTest, UsersAreMappedToUnixNames) {
    oidc::Settings s = settings();
    s.users = {{"erin", "erin_e"}};
    oidc::Client client(s);
    const oidc::AuthorizationRequest req = client.begin();
    const oidc::Identity id = client.finish(sign_in("erin", req.url), req.pending);
    EXPECT_EQ(id.username, "erin_e");
    EXPECT_EQ(id.display_name, "Erin Eze");
}

TEST_F(OidcTest, UnmappedNameThatOidcUsersGivesToSomeoneElseIsRefused) {
    // erin is mapped to the Unix name carol; the IdP's own carol (unmapped) may not pass through
    // as carol too: two IdP people would be one Unix name, and the one-person rule would not hold.
    oidc::Settings s = settings();
    s.users = {{"erin", "carol"}};
    oidc::Client client(s);
    const oidc::AuthorizationRequest req = client.begin();
    const oidc::Callback cb = sign_in("carol", req.url);
    expect_error([&] { client.finish(cb, req.pending); }, ErrorCode::denied, "is not mapped, but oidc.users maps");

    // The mapped one is who the mapping says.
    const oidc::AuthorizationRequest req2 = client.begin();
    EXPECT_EQ(client.finish(sign_in("erin", req2.url), req2.pending).username, "carol");
}

TEST_F(OidcTest, NameThatIsNotAUnixNameIsRefused) {
    oidc::Settings s = settings();
    s.users = {{"carol", "Carol.Chen"}}; // a mapping to something no Unix host has
    oidc::Client client(s);
    const oidc::AuthorizationRequest req = client.begin();
    const oidc::Callback cb = sign_in("carol", req.url);
    expect_error([&] { client.finish(cb, req.pending); }, ErrorCode::denied, "is not a Unix user name");

    // And a username claim that is absent.
    oidc::Settings s2 = settings();
    s2.username_claim = "employee_number";
    oidc::Client client2(s2);
    const oidc::AuthorizationRequest req2 = client2.begin();
    const oidc::Callback cb2 = sign_in("carol", req2.url);
    expect_error([&] { client2.finish(cb2, req2.pending); }, ErrorCode::denied, "no string claim \"employee_number\"");
}

TEST_F(OidcTest, WrongNonceIsRefused) {
    oidc::Client client(settings());
    const auto token_nonce = id_token_for(client, "bob");
    const std::string& token = token_nonce.first;
    const std::string& nonce = token_nonce.second;
    EXPECT_NO_THROW(client.verify_id_token(token, nonce, now_unix())); // the real one passes
    expect_error([&] { client.verify_id_token(token, nonce + "x", now_unix()); }, ErrorCode::denied, "nonce");
    expect_error([&] { client.verify_id_token(token, "", now_unix()); }, ErrorCode::denied, "nonce");
    // Another sign-in's token, presented to this one (its pending nonce differs).
    const auto token2_nonce2 = id_token_for(client, "bob");
    const std::string& token2 = token2_nonce2.first;
    const std::string& nonce2 = token2_nonce2.second;
    EXPECT_NE(nonce2, nonce);
    EXPECT_NO_THROW(client.verify_id_token(token2, nonce2, now_unix()));
    expect_error([&] { client.verify_id_token(token2, nonce, now_unix()); }, ErrorCode::denied, "nonce");
}

TEST_F(OidcTest, TamperedIdTokenIsRefused) {
    oidc::Client client(settings());
    const auto token_nonce = id_token_for(client, "alice");
    const std::string& token = token_nonce.first;
    const std::string& nonce = token_nonce.second;
    const auto dot1 = token.find('.');
    const auto dot2 = token.find('.', dot1 + 1);
    const std::string header_b64 = token.substr(0, dot1);
    const std::string payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
    const std::string sig_b64 = token.substr(dot2 + 1);

    // alice makes herself an approver: groups added, signature kept.
    Json payload = Json::parse(jitgate::text::base64url_decode(payload_b64));
    payload["groups"] = Json::array({"sox-approvers"});
    const std::string forged = header_b64 + "." + jitgate::text::base64url_encode(payload.dump()) + "." + sig_b64;
    expect_error([&] { client.verify_id_token(forged, nonce, now_unix()); }, ErrorCode::denied,
                 "signature does not verify");

    // One bit of the signature flipped.
    std::string sig = jitgate::text::base64url_decode(sig_b64);
    sig[sig.size() / 2] = static_cast<char>(sig[sig.size() / 2] ^ 0x01);
    const std::string bad_sig = header_b64 + "." + payload_b64 + "." + jitgate::text::base64url_encode(sig);
    expect_error([&] { client.verify_id_token(bad_sig, nonce, now_unix()); }, ErrorCode::denied,
                 "signature does not verify");

    // alg none and HS256 (keyed with anything) are refused before any key is looked at.
    Json header = Json::parse(jitgate::text::base64url_decode(header_b64));
    for (const char* alg : {"none", "HS256", "RS384", "PS256"}) {
        header["alg"] = alg;
        const std::string t = jitgate::text::base64url_encode(header.dump()) + "." + payload_b64 + "." + sig_b64;
        expect_error([&] { client.verify_id_token(t, nonce, now_unix()); }, ErrorCode::denied, "is not allowed");
    }
    const std::string unsigned_token = jitgate::text::base64url_encode(R"({"alg":"none"})") + "." + payload_b64 + ".";
    expect_error([&] { client.verify_id_token(unsigned_token, nonce, now_unix()); }, ErrorCode::denied, "ID token");

    // A kid the IdP does not have.
    header = Json::parse(jitgate::text::base64url_decode(header_b64));
    header["kid"] = "not-a-kid-of-this-idp";
    const std::string other_kid = jitgate::text::base64url_encode(header.dump()) + "." + payload_b64 + "." + sig_b64;
    expect_error([&] { client.verify_id_token(other_kid, nonce, now_unix()); }, ErrorCode::denied,
                 "is not in the IdP's JWKS");

    // Not three parts; a header with a key of its own.
    expect_error([&] { client.verify_id_token(header_b64 + "." + payload_b64, nonce, now_unix()); }, ErrorCode::denied,
                 "three parts");
    header = Json::parse(jitgate::text::base64url_decode(header_b64));
    header["jwk"] = Json::object();
    const std::string with_jwk = jitgate::text::base64url_encode(header.dump()) + "." + payload_b64 + "." + sig_b64;
    expect_error([&] { client.verify_id_token(with_jwk, nonce, now_unix()); }, ErrorCode::denied, "\"jwk\"");

    // The untouched token passes: the checks above refuse the changes, not the token.
    EXPECT_NO_THROW(client.verify_id_token(token, nonce, now_unix()));
}

TEST_F(OidcTest, UnknownKidRefetchesTheJwksAtMostOncePerInterval) {
    oidc::Client client(settings()); // jwks_refetch_interval: 60 s
    const auto token_nonce = id_token_for(client, "bob");
    const std::string& token = token_nonce.first;
    const std::string& nonce = token_nonce.second;
    EXPECT_EQ(client.jwks_fetches(), 1u); // at discovery
    const auto dot1 = token.find('.');
    Json header = Json::parse(jitgate::text::base64url_decode(token.substr(0, dot1)));
    header["kid"] = "rotated-in-maybe";
    const std::string other_kid = jitgate::text::base64url_encode(header.dump()) + token.substr(dot1);
    // Right after discovery: refused without asking the IdP again.
    expect_error([&] { client.verify_id_token(other_kid, nonce, now_unix()); }, ErrorCode::denied,
                 "not in the IdP's JWKS");
    expect_error([&] { client.verify_id_token(other_kid, nonce, now_unix()); }, ErrorCode::denied,
                 "not in the IdP's JWKS");
    EXPECT_EQ(client.jwks_fetches(), 1u);

    // With no interval, each unknown kid refetches once; a known kid never does.
    oidc::Settings s = settings();
    s.jwks_refetch_interval = std::chrono::seconds(0);
    oidc::Client eager(s);
    eager.discover();
    EXPECT_EQ(eager.jwks_fetches(), 1u);
    expect_error([&] { eager.verify_id_token(other_kid, nonce, now_unix()); }, ErrorCode::denied,
                 "not in the IdP's JWKS");
    EXPECT_EQ(eager.jwks_fetches(), 2u);
    EXPECT_NO_THROW(eager.verify_id_token(token, nonce, now_unix()));
    EXPECT_EQ(eager.jwks_fetches(), 2u);
}

TEST_F(OidcTest, WrongAudienceIsRefused) {
    oidc::Client client(settings());
    const auto token_nonce = id_token_for(client, "bob");
    const std::string& token = token_nonce.first;
    const std::string& nonce = token_nonce.second;
    // Another relying party of the same IdP must not accept a token issued to jitgate-server.
    oidc::Settings other = settings();
    other.client_id = "another-client";
    oidc::Client other_client(other);
    expect_error([&] { other_client.verify_id_token(token, nonce, now_unix()); }, ErrorCode::denied, "aud");
}

TEST_F(OidcTest, WrongIssuerIsRefused) {
    // The same IdP, configured with a different issuer spelling: discovery refuses it.
    oidc::Settings s = settings();
    s.issuer = idp.issuer + "/";
    oidc::Client client(s);
    expect_error([&] { client.discover(); }, ErrorCode::protocol, "is not the configured");
}

TEST_F(OidcTest, ExpiredOrFutureTokenIsRefused) {
    oidc::Client client(settings());
    const auto token_nonce = id_token_for(client, "bob");
    const std::string& token = token_nonce.first;
    const std::string& nonce = token_nonce.second;
    const std::int64_t now = now_unix();
    EXPECT_NO_THROW(client.verify_id_token(token, nonce, now));
    expect_error([&] { client.verify_id_token(token, nonce, now + 24 * 3600); }, ErrorCode::denied, "expired");
    expect_error([&] { client.verify_id_token(token, nonce, now - 3600); }, ErrorCode::denied, "future");
}

TEST_F(OidcTest, CodeReusedIsRefusedByTheIdp) {
    oidc::Client client(settings());
    const oidc::AuthorizationRequest req = client.begin();
    const oidc::Callback cb = sign_in("carol", req.url);
    EXPECT_EQ(client.finish(cb, req.pending).username, "carol");
    expect_error([&] { client.finish(cb, req.pending); }, ErrorCode::denied, "the IdP refused the authorization code");
}

TEST_F(OidcTest, WrongCodeVerifierIsRefusedByTheIdp) {
    oidc::Client client(settings());
    const oidc::AuthorizationRequest req = client.begin();
    const oidc::Callback cb = sign_in("bob", req.url);
    oidc::PendingLogin other = req.pending;
    other.code_verifier = client.begin().pending.code_verifier;
    expect_error([&] { client.finish(cb, other); }, ErrorCode::denied, "the IdP refused the authorization code");
}

TEST_F(OidcTest, WrongStateOrIdpErrorIsRefusedBeforeTheCodeIsSpent) {
    oidc::Client client(settings());
    const oidc::AuthorizationRequest req = client.begin();
    oidc::Callback cb = sign_in("bob", req.url);
    oidc::Callback bad_state = cb;
    bad_state.state = client.begin().pending.state;
    expect_error([&] { client.finish(bad_state, req.pending); }, ErrorCode::denied, "state");
    bad_state.state = "";
    expect_error([&] { client.finish(bad_state, req.pending); }, ErrorCode::denied, "state");
    oidc::Callback refused = cb;
    refused.error = "access_denied";
    expect_error([&] { client.finish(refused, req.pending); }, ErrorCode::denied, "access_denied");
    // The code was not spent by those: it still signs bob in.
    EXPECT_EQ(client.finish(cb, req.pending).username, "bob");
}

TEST_F(OidcTest, WrongClientSecretIsRefusedByTheIdp) {
    oidc::Settings s = settings();
    s.client_secret = "not-the-secret";
    oidc::Client client(s);
    const oidc::AuthorizationRequest req = client.begin();
    const oidc::Callback cb = sign_in("bob", req.url);
    expect_error([&] { client.finish(cb, req.pending); }, ErrorCode::denied, "the IdP refused the authorization code");
}

TEST_F(OidcTest, WrongPasswordGetsNoSession) {
    // The IdP itself refuses a wrong password (the REST login answers 401).
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> c(curl_easy_init(), &curl_easy_cleanup);
    std::string body;
    const std::string url = idp.base_url + "/api/auth/";
    const std::string login = Json{{"username", "bob"}, {"password", "wrong"}}.dump();
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    curl_easy_setopt(c.get(), CURLOPT_CAINFO, idp.ca_file.c_str());
    curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, login.c_str());
    curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, &collect);
    curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &body);
    ASSERT_EQ(curl_easy_perform(c.get()), CURLE_OK);
    curl_slist_free_all(headers);
    long status = 0;
    curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
    EXPECT_EQ(status, 401);
}

TEST_F(OidcTest, TlsIsPinnedToTheConfiguredCa) {
    // The system's CA bundle does not know the run's CA: the IdP cannot be reached through it.
    oidc::Settings s = settings();
    s.ca_file = "";
    oidc::Client client(s);
    expect_error([&] { client.discover(); }, ErrorCode::internal, "cannot reach the IdP");
}

TEST_F(OidcTest, SettingsAreCheckedAtConstruction) {
    const auto with = [&](auto change) {
        oidc::Settings s = settings();
        change(s);
        return s;
    };
    expect_error([&] { oidc::Client(with([](oidc::Settings& s) { s.issuer = "http://idp.example.com"; })); },
                 ErrorCode::bad_input, "not https");
    expect_error([&] { oidc::Client(with([](oidc::Settings& s) { s.issuer = "http://127.0.0.1:9/oidc"; })); },
                 ErrorCode::bad_input, "allow_http_loopback");
    EXPECT_NO_THROW(oidc::Client(with([](oidc::Settings& s) {
        s.issuer = "http://127.0.0.1:9/oidc";
        s.allow_http_loopback = true;
    })));
    expect_error(
        [&] {
            oidc::Client(with([](oidc::Settings& s) {
                s.issuer = "http://10.0.0.1/oidc";
                s.allow_http_loopback = true;
            }));
        },
        ErrorCode::bad_input, "not https");
    expect_error([&] { oidc::Client(with([](oidc::Settings& s) { s.issuer = "https://user@idp.example.com"; })); },
                 ErrorCode::bad_input, "user info");
    expect_error([&] { oidc::Client(with([](oidc::Settings& s) { s.scopes = {"profile"}; })); }, ErrorCode::bad_input,
                 "openid");
    expect_error([&] { oidc::Client(with([](oidc::Settings& s) { s.client_secret = ""; })); }, ErrorCode::bad_input,
                 "secret");
    expect_error([&] { oidc::Client(with([](oidc::Settings& s) { s.ca_file = "/nonexistent/ca.pem"; })); },
                 ErrorCode::bad_input, "CA file");
}

TEST(OidcSettings, FromConfig) {
    jitgate::server::config::Config::Oidc c;
    c.issuer = "https://idp.example.com/realms/corp";
    c.client_id = "jitgate-server";
    c.ca_file = "/etc/jitgate-server/idp-ca.pem";
    c.users = {{"Bob.Brown", "bob"}};
    c.groups = {{"SOX Approvers", "sox-approvers"}};
    c.token_endpoint_auth = "client_secret_post";
    const oidc::Settings s = oidc::settings_from_config(c, "s3cret", "https://approvals.example.com/oidc/callback");
    EXPECT_EQ(s.issuer, c.issuer);
    EXPECT_EQ(s.client_id, c.client_id);
    EXPECT_EQ(s.client_secret, "s3cret");
    EXPECT_EQ(s.redirect_uri, "https://approvals.example.com/oidc/callback");
    EXPECT_EQ(s.ca_file, c.ca_file);
    EXPECT_EQ(s.username_claim, "preferred_username");
    EXPECT_EQ(s.groups_claim, "groups");
    EXPECT_EQ(s.users, c.users);
    EXPECT_EQ(s.groups, c.groups);
    EXPECT_EQ(s.scopes, (std::vector<std::string>{"openid", "profile", "email"}));
    EXPECT_EQ(s.token_auth, oidc::TokenAuth::client_secret_post);
    EXPECT_FALSE(s.allow_http_loopback); // off unless the config sets it
    c.token_endpoint_auth = "private_key_jwt";
    expect_error([&] { oidc::settings_from_config(c, "s3cret", "https://a.example.com/cb"); }, ErrorCode::bad_input,
                 "token_endpoint_auth");
}

TEST(OidcNames, UnixUserNames) {
    for (const char* ok : {"bob", "_svc", "a", "dave-ops", "erin_e2", "john.doe", "abcdefghijklmnopqrstuvwxyz012345"})
        EXPECT_TRUE(oidc::is_unix_user_name(ok)) << ok;
    for (const char* bad :
         {"", "Bob", "1bob", "-bob", ".bob", "bob@corp", "bob$", "bob smith", "abcdefghijklmnopqrstuvwxyz0123456",
          "b\xc3\xb6"
          "b"})
        EXPECT_FALSE(oidc::is_unix_user_name(bad)) << bad;
}

TEST(OidcPkce, S256MatchesRfc7636AppendixB) {
    EXPECT_EQ(oidc::code_challenge_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
              "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

} // namespace
