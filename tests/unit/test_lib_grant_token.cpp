// Unit tests of the grant verifier (docs/protocol.md §7): every refusal has its own test that
// checks both the denial and its reason. Keys are generated here; a small test-only signer
// makes the tokens, including the malformed and malicious ones. At the end: the shared signer
// (SigningKey, sign, grant_claims), checked against the verifier, RFC 8032 and its key files.
#include <gtest/gtest.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"
#include "lib/grant_token.hpp"

namespace {

using namespace jitgate;
using Json = nlohmann::json;
namespace gt = grant_token;

constexpr std::int64_t k_now = 1795512100;

struct PkeyFree {
    void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

Pkey keygen(const char* type) {
    Pkey k(EVP_PKEY_Q_keygen(nullptr, nullptr, type));
    if (!k) throw std::runtime_error(std::string("keygen failed: ") + type);
    return k;
}

std::string public_pem(EVP_PKEY* key) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) throw std::runtime_error("PEM_write_bio_PUBKEY");
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

std::string private_pem(EVP_PKEY* key) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
        throw std::runtime_error("PEM_write_bio_PrivateKey");
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

const unsigned char* bytes_of(const std::string& s) {
    return reinterpret_cast<const unsigned char*>(s.data());
}

// The test-only signer: Ed25519 over the ASCII of "header.payload".
std::string ed25519_sign(EVP_PKEY* key, const std::string& message) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    std::string sig(64, '\0');
    std::size_t len = sig.size();
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key) != 1 ||
        EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, bytes_of(message),
                       message.size()) != 1)
        throw std::runtime_error("EVP_DigestSign");
    sig.resize(len);
    return sig;
}

std::string hmac_sha256(const std::string& key, const std::string& message) {
    std::string mac(32, '\0');
    std::size_t len = 0;
    if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(), bytes_of(message),
                  message.size(), reinterpret_cast<unsigned char*>(mac.data()), mac.size(), &len) == nullptr)
        throw std::runtime_error("EVP_Q_mac");
    mac.resize(len);
    return mac;
}

std::string b64(const std::string& s) {
    return text::base64url_encode(s);
}

// A JWS from raw header and payload text (so tests can sign JSON that dump() never makes).
std::string sign_raw(const std::string& header_text, const std::string& payload_text, EVP_PKEY* key) {
    const std::string input = b64(header_text) + "." + b64(payload_text);
    return input + "." + b64(ed25519_sign(key, input));
}

std::string sign(const Json& header, const Json& payload, EVP_PKEY* key) {
    return sign_raw(header.dump(), payload.dump(), key);
}

std::vector<std::string> split(const std::string& jws) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
        const std::size_t dot = jws.find('.', start);
        parts.push_back(jws.substr(start, dot - start));
        if (dot == std::string::npos) return parts;
        start = dot + 1;
    }
}

const std::vector<std::string> k_argv{"/usr/bin/systemctl", "restart", "nginx"};

class GrantToken : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        s_k1 = keygen("ED25519").release();
        s_k2 = keygen("ED25519").release();
        s_other = keygen("ED25519").release();
    }
    static void TearDownTestSuite() {
        EVP_PKEY_free(s_k1);
        EVP_PKEY_free(s_k2);
        EVP_PKEY_free(s_other);
    }

    void SetUp() override {
        m_keys.add_pem("k1", public_pem(s_k1), "test:k1");
        m_keys.add_pem("k2", public_pem(s_k2), "test:k2");
        m_expected.request_id = "R-7F3K9Q2M4X1B";
        m_expected.nonce = "q1xJr0b3c8Rk6fYgZ0HkK5P4n2mW9sVtLqE1dA7uC3o";
        m_expected.host = "pay-db-01";
        m_expected.user = "alice";
        m_expected.kind = "sudo";
        m_expected.scope = "command";
        m_expected.cmd_sha256 = gt::cmd_sha256(gt::CommandBinding{
            "root", "root", "/home/alice", "", "/usr/bin/systemctl", "/usr/bin/systemctl", k_argv, {}});
        m_expected.approvals_needed = 2;
        m_expected.now_unix = k_now;
        m_expected.skew_s = 30;

        m_header = {{"alg", "EdDSA"}, {"kid", "k1"}, {"typ", "JWT"}};
        m_payload = {{"iss", "approvals.example.com"},
                     {"jti", "G-2b9f1c7e"},
                     {"rid", m_expected.request_id},
                     {"nonce", m_expected.nonce},
                     {"host", "pay-db-01"},
                     {"sub", "alice"},
                     {"kind", "sudo"},
                     {"scope", "command"},
                     {"cmd_sha256", m_expected.cmd_sha256},
                     {"approvers", {"bob", "carol"}},
                     {"iat", k_now - 100},
                     {"nbf", k_now - 100},
                     {"exp", k_now + 800}};
    }

    gt::Verdict check(const std::string& jws) const { return gt::verify(jws, m_keys, m_expected); }
    std::string signed_grant() const { return sign(m_header, m_payload, s_k1); }

    // Asserts a denial whose reason starts "grant: " and contains `reason`.
    void expect_refused(const std::string& jws, const std::string& reason) const {
        const gt::Verdict v = check(jws);
        EXPECT_FALSE(v.ok) << "accepted a grant that should fail with: " << reason;
        EXPECT_EQ(v.reason.rfind("grant: ", 0), 0u) << v.reason;
        EXPECT_NE(v.reason.find(reason), std::string::npos) << "reason was: " << v.reason;
        EXPECT_EQ(v.reason.find('\n'), std::string::npos);
        EXPECT_TRUE(v.claims.jti.empty()) << "claims of a refused grant must stay empty";
    }
    void expect_accepted(const std::string& jws) const {
        const gt::Verdict v = check(jws);
        EXPECT_TRUE(v.ok) << v.reason;
    }
    // A claim changed (or removed, for a discarded Json) in an otherwise valid, signed grant.
    std::string with_claim(const std::string& name, const Json& value) const {
        Json p = m_payload;
        if (value.is_discarded())
            p.erase(name);
        else
            p[name] = value;
        return sign(m_header, p, s_k1);
    }
    std::string with_header(const std::string& name, const Json& value) const {
        Json h = m_header;
        if (value.is_discarded())
            h.erase(name);
        else
            h[name] = value;
        return sign(h, m_payload, s_k1);
    }
    static Json removed() { return Json(Json::value_t::discarded); }

    static EVP_PKEY* s_k1;
    static EVP_PKEY* s_k2;
    static EVP_PKEY* s_other;
    gt::KeyRing m_keys;
    gt::Expected m_expected;
    Json m_header;
    Json m_payload;
};

EVP_PKEY* GrantToken::s_k1 = nullptr;
EVP_PKEY* GrantToken::s_k2 = nullptr;
EVP_PKEY* GrantToken::s_other = nullptr;

// --- the good path ---------------------------------------------------------------------------

TEST_F(GrantToken, ValidGrantPassesAndReturnsEveryClaim) {
    const gt::Verdict v = check(signed_grant());
    ASSERT_TRUE(v.ok) << v.reason;
    EXPECT_TRUE(v.reason.empty());
    EXPECT_EQ(v.claims.kid, "k1");
    EXPECT_EQ(v.claims.iss, "approvals.example.com");
    EXPECT_EQ(v.claims.jti, "G-2b9f1c7e");
    EXPECT_EQ(v.claims.rid, "R-7F3K9Q2M4X1B");
    EXPECT_EQ(v.claims.nonce, m_expected.nonce);
    EXPECT_EQ(v.claims.host, "pay-db-01");
    EXPECT_EQ(v.claims.sub, "alice");
    EXPECT_EQ(v.claims.kind, "sudo");
    EXPECT_EQ(v.claims.scope, "command");
    EXPECT_EQ(v.claims.cmd_sha256, m_expected.cmd_sha256);
    EXPECT_EQ(v.claims.approvers, (std::vector<std::string>{"bob", "carol"}));
    EXPECT_EQ(v.claims.iat, k_now - 100);
    EXPECT_EQ(v.claims.nbf, k_now - 100);
    EXPECT_EQ(v.claims.exp, k_now + 800);
}

TEST_F(GrantToken, OptionalClaimsMayBeAbsent) {
    Json p = m_payload;
    p.erase("iss");
    p.erase("iat");
    const gt::Verdict v = gt::verify(sign(m_header, p, s_k1), m_keys, m_expected);
    ASSERT_TRUE(v.ok) << v.reason;
    EXPECT_EQ(v.claims.iss, "");
    EXPECT_EQ(v.claims.iat, 0);
}

TEST_F(GrantToken, UnknownClaimsAndTypAreIgnored) {
    Json p = m_payload;
    p["future_claim"] = {{"x", 1}};
    Json h = m_header;
    h.erase("typ");
    expect_accepted(sign(h, p, s_k1));
}

// --- signature -------------------------------------------------------------------------------

TEST_F(GrantToken, ForgedSignatureOneBitFlippedIsRefused) {
    auto parts = split(signed_grant());
    std::string sig = text::base64url_decode(parts[2]);
    sig[17] = static_cast<char>(sig[17] ^ 0x01);
    expect_refused(parts[0] + "." + parts[1] + "." + b64(sig), "grant: signature does not verify");
}

TEST_F(GrantToken, PayloadChangedAfterSigningIsRefused) {
    auto parts = split(signed_grant());
    Json p = m_payload;
    p["approvers"] = {"bob", "carol", "dave"};
    expect_refused(parts[0] + "." + b64(p.dump()) + "." + parts[2], "grant: signature does not verify");
}

TEST_F(GrantToken, SignatureByAnotherKeyUnderAKnownKidIsRefused) {
    expect_refused(sign(m_header, m_payload, s_other), "grant: signature does not verify");
    // and k2's signature under k1's name
    expect_refused(sign(m_header, m_payload, s_k2), "grant: signature does not verify");
}

TEST_F(GrantToken, SignatureOfWrongLengthIsRefused) {
    auto parts = split(signed_grant());
    const std::string sig = text::base64url_decode(parts[2]);
    expect_refused(parts[0] + "." + parts[1] + "." + b64(sig.substr(0, 63)), "grant: signature is 63 bytes");
    expect_refused(parts[0] + "." + parts[1] + "." + b64(sig + "x"), "grant: signature is 65 bytes");
}

TEST_F(GrantToken, UnknownKidIsRefused) {
    expect_refused(with_header("kid", "k3"), "grant: unknown kid \"k3\"");
}

TEST_F(GrantToken, MissingKidIsRefused) {
    expect_refused(with_header("kid", removed()), "grant: header has no kid");
}

TEST_F(GrantToken, KidNotAStringIsRefused) {
    expect_refused(with_header("kid", 1), "grant: kid is not a string");
    expect_refused(with_header("kid", {"k1"}), "grant: kid is not a string");
}

// --- the header: algorithm confusion and keys from the token ---------------------------------

TEST_F(GrantToken, AlgNoneWithSignatureIsRefused) {
    expect_refused(with_header("alg", "none"), "grant: alg \"none\" is not EdDSA");
}

TEST_F(GrantToken, AlgNoneWithoutSignatureIsRefused) {
    Json h = m_header;
    h["alg"] = "none";
    const std::string unsecured = b64(h.dump()) + "." + b64(m_payload.dump());
    expect_refused(unsecured + ".", "grant: alg \"none\" is not EdDSA"); // RFC 7519 unsecured form
    expect_refused(unsecured, "grant: 2 part(s)");
}

TEST_F(GrantToken, AlgHs256KeyedWithThePublicKeyIsRefused) {
    // The classic confusion: an HMAC whose key is the verifier's public key PEM.
    Json h = m_header;
    h["alg"] = "HS256";
    const std::string input = b64(h.dump()) + "." + b64(m_payload.dump());
    const std::string forged = input + "." + b64(hmac_sha256(public_pem(s_k1), input));
    expect_refused(forged, "grant: alg \"HS256\" is not EdDSA");
}

TEST_F(GrantToken, AlgOfAnotherCaseIsRefused) {
    expect_refused(with_header("alg", "eddsa"), "grant: alg \"eddsa\" is not EdDSA");
    expect_refused(with_header("alg", "Ed25519"), "grant: alg \"Ed25519\" is not EdDSA");
}

TEST_F(GrantToken, AlgMissingOrNotAStringIsRefused) {
    expect_refused(with_header("alg", removed()), "grant: header has no alg");
    expect_refused(with_header("alg", {"EdDSA"}), "grant: alg is not a string");
}

TEST_F(GrantToken, CritHeaderIsRefused) {
    expect_refused(with_header("crit", {"exp"}), "grant: header member \"crit\" is refused");
}

TEST_F(GrantToken, JwkHeaderIsRefused) {
    // The attacker's own key in the token, and a signature by it.
    Json h = m_header;
    h["jwk"] = {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}};
    expect_refused(sign(h, m_payload, s_other), "grant: header member \"jwk\" is refused");
}

TEST_F(GrantToken, JkuX5uX5cHeadersAreRefused) {
    expect_refused(with_header("jku", "https://evil.example/keys"), "grant: header member \"jku\" is refused");
    expect_refused(with_header("x5u", "https://evil.example/cert"), "grant: header member \"x5u\" is refused");
    expect_refused(with_header("x5c", {"MIIB"}), "grant: header member \"x5c\" is refused");
}

TEST_F(GrantToken, DuplicateHeaderMemberIsRefused) {
    const std::string header = R"({"alg":"EdDSA","kid":"k1","alg":"none"})";
    expect_refused(sign_raw(header, m_payload.dump(), s_k1), "grant: header has a duplicate member \"alg\"");
}

// --- form ------------------------------------------------------------------------------------

TEST_F(GrantToken, TwoPartsAreRefused) {
    auto parts = split(signed_grant());
    expect_refused(parts[0] + "." + parts[1], "grant: 2 part(s), a compact JWS has 3");
}

TEST_F(GrantToken, FourPartsAreRefused) {
    expect_refused(signed_grant() + ".AAAA", "grant: 4 part(s), a compact JWS has 3");
    expect_refused("", "grant: 1 part(s)");
}

TEST_F(GrantToken, EmptyPartsAreRefused) {
    auto parts = split(signed_grant());
    expect_refused("." + parts[1] + "." + parts[2], "grant: header part is empty");
    expect_refused(parts[0] + ".." + parts[2], "grant: payload part is empty");
    expect_refused(parts[0] + "." + parts[1] + ".", "grant: signature part is empty");
    expect_refused("..", "grant: header part is empty");
}

TEST_F(GrantToken, BadBase64urlIsRefused) {
    auto parts = split(signed_grant());
    expect_refused(parts[0] + "=." + parts[1] + "." + parts[2], "grant: header is not base64url");
    expect_refused(parts[0] + "." + parts[1] + "+." + parts[2], "grant: payload is not base64url");
    expect_refused(parts[0] + "." + parts[1] + "." + parts[2] + "*", "grant: signature is not base64url");
    expect_refused(parts[0] + "." + parts[1] + "." + parts[2] + "AAA", "grant: signature is not base64url");
    expect_refused("e yJ." + parts[1] + "." + parts[2], "grant: header is not base64url");
}

TEST_F(GrantToken, NonCanonicalBase64urlIsRefused) {
    // 64 bytes take 86 characters; the last carries 2 bits of data and 4 unused bits that
    // must be zero. A final 'B' (000001) decodes to the same bytes as 'A' (000000).
    auto parts = split(signed_grant());
    std::string sig = text::base64url_decode(parts[2]);
    sig[63] = '\0';
    const std::string canonical = b64(sig);
    ASSERT_EQ(canonical.back(), 'A');
    std::string other = canonical;
    other.back() = 'B';
    ASSERT_EQ(text::base64url_decode(other), sig) << "the decoder ignores unused bits; the verifier must not";
    expect_refused(parts[0] + "." + parts[1] + "." + other, "grant: signature is not canonical base64url");
}

TEST_F(GrantToken, HeaderNotJsonIsRefused) {
    expect_refused(sign_raw("{\"alg\":\"EdDSA\",", m_payload.dump(), s_k1), "grant: header is not JSON");
}

TEST_F(GrantToken, HeaderNotAnObjectIsRefused) {
    expect_refused(sign_raw(R"(["EdDSA","k1"])", m_payload.dump(), s_k1), "grant: header is not a JSON object");
}

TEST_F(GrantToken, PayloadNotJsonIsRefused) {
    expect_refused(sign_raw(m_header.dump(), "{\"rid\":", s_k1), "grant: payload is not JSON");
    expect_refused(sign_raw(m_header.dump(), "{\"rid\":\"\xff\"}", s_k1), "grant: payload is not JSON");
}

TEST_F(GrantToken, PayloadArrayIsRefused) {
    expect_refused(sign(m_header, Json::array({m_payload}), s_k1), "grant: payload is not a JSON object");
}

TEST_F(GrantToken, DuplicatePayloadMemberIsRefused) {
    std::string p = m_payload.dump();
    p.insert(1, "\"sub\":\"mallory\",");
    expect_refused(sign_raw(m_header.dump(), p, s_k1), "grant: payload has a duplicate member \"sub\"");
}

TEST_F(GrantToken, OverSizeTokenIsRefused) {
    Json p = m_payload;
    p["pad"] = std::string(16 * 1024, 'x');
    const std::string jws = sign(m_header, p, s_k1);
    ASSERT_GT(jws.size(), gt::k_max_token_bytes);
    expect_refused(jws, "more than 16384");
}

TEST_F(GrantToken, TokenOfExactly16KiBPasses) {
    // Find a padding claim that makes the token exactly 16384 bytes (base64url never has a
    // length of 1 mod 4, so the header's typ varies too).
    for (int typ_pad = 0; typ_pad < 4; ++typ_pad) {
        Json h = m_header;
        h["typ"] = "JWT" + std::string(static_cast<std::size_t>(typ_pad), ' ');
        for (std::size_t n = 11000; n < 12400; ++n) {
            Json p = m_payload;
            p["pad"] = std::string(n, 'x');
            const std::string jws = sign(h, p, s_k1);
            if (jws.size() > gt::k_max_token_bytes) break;
            if (jws.size() == gt::k_max_token_bytes) {
                expect_accepted(jws);
                expect_refused(jws + "A", "grant: 16385 bytes");
                return;
            }
        }
    }
    FAIL() << "no padding gives a 16384-byte token";
}

// --- claims ----------------------------------------------------------------------------------

TEST_F(GrantToken, WrongRidIsRefused) {
    expect_refused(with_claim("rid", "R-000000000000"), "grant: rid \"R-000000000000\" is not this request's id");
}

TEST_F(GrantToken, WrongNonceIsRefused) {
    expect_refused(with_claim("nonce", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                   "grant: nonce does not match this request");
}

TEST_F(GrantToken, WrongHostIsRefused) {
    expect_refused(with_claim("host", "web-01"), "grant: host \"web-01\" is not this host");
}

TEST_F(GrantToken, WrongSubIsRefused) {
    expect_refused(with_claim("sub", "mallory"), "grant: sub \"mallory\" is not the requester");
}

TEST_F(GrantToken, WrongKindIsRefused) {
    expect_refused(with_claim("kind", "login"), "grant: kind \"login\" is not this request's kind");
}

TEST_F(GrantToken, WrongScopeIsRefused) {
    expect_refused(with_claim("scope", "session"), "grant: scope \"session\" is not this request's scope");
}

TEST_F(GrantToken, MissingRequiredClaimsAreRefused) {
    for (const char* name : {"jti", "rid", "nonce", "host", "sub", "kind", "scope"})
        expect_refused(with_claim(name, removed()), std::string("grant: claim \"") + name + "\" is missing");
    expect_refused(with_claim("approvers", removed()), "grant: claim \"approvers\" is missing");
    expect_refused(with_claim("nbf", removed()), "grant: claim \"nbf\" is missing");
    expect_refused(with_claim("exp", removed()), "grant: claim \"exp\" is missing");
}

TEST_F(GrantToken, ClaimOfWrongTypeIsRefused) {
    expect_refused(with_claim("host", 1), "grant: claim \"host\" is not a string");
    expect_refused(with_claim("rid", Json(nullptr)), "grant: claim \"rid\" is not a string");
    expect_refused(with_claim("sub", {"alice"}), "grant: claim \"sub\" is not a string");
    expect_refused(with_claim("iss", true), "grant: claim \"iss\" is not a string");
}

TEST_F(GrantToken, BadJtiIsRefused) {
    expect_refused(with_claim("jti", ""), "grant: jti \"\" is not 1-128 printable ASCII");
    expect_refused(with_claim("jti", std::string(129, 'g')), "is not 1-128 printable ASCII");
    expect_refused(with_claim("jti", "G-\x01"), "grant: jti \"G-\\x01\" is not 1-128 printable ASCII");
    expect_refused(with_claim("jti", "G-\xc3\xa9"), "is not 1-128 printable ASCII");
    expect_accepted(with_claim("jti", std::string(128, 'g')));
}

TEST_F(GrantToken, WrongCmdSha256IsRefused) {
    const std::string other = gt::cmd_sha256(gt::CommandBinding{"root",
                                                                "root",
                                                                "/home/alice",
                                                                "",
                                                                "/usr/bin/systemctl",
                                                                "/usr/bin/systemctl",
                                                                {"/usr/bin/systemctl", "stop", "nginx"},
                                                                {}});
    expect_refused(with_claim("cmd_sha256", other), "grant: cmd_sha256 does not match the command");
    std::string upper = m_expected.cmd_sha256;
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    expect_refused(with_claim("cmd_sha256", upper), "grant: cmd_sha256 does not match the command");
}

TEST_F(GrantToken, MissingCmdSha256ForCommandScopeIsRefused) {
    expect_refused(with_claim("cmd_sha256", removed()), "grant: claim \"cmd_sha256\" is missing (scope \"command\")");
    expect_refused(with_claim("cmd_sha256", ""), "grant: cmd_sha256 does not match the command");
}

TEST_F(GrantToken, CmdSha256PresentForSessionScopeIsRefused) {
    m_expected.scope = "session";
    m_expected.cmd_sha256.clear();
    Json p = m_payload;
    p["scope"] = "session";
    expect_refused(sign(m_header, p, s_k1), "grant: cmd_sha256 must be absent or empty for scope \"session\"");
    p["cmd_sha256"] = 0;
    expect_refused(sign(m_header, p, s_k1), "grant: claim \"cmd_sha256\" is not a string");
}

TEST_F(GrantToken, CmdSha256AbsentOrEmptyForSessionAndLoginScopesPasses) {
    m_expected.scope = "session";
    m_expected.cmd_sha256.clear();
    Json p = m_payload;
    p["scope"] = "session";
    p["cmd_sha256"] = "";
    expect_accepted(sign(m_header, p, s_k1));
    m_expected.scope = "login";
    m_expected.kind = "login";
    p["scope"] = "login";
    p["kind"] = "login";
    p.erase("cmd_sha256");
    expect_accepted(sign(m_header, p, s_k1));
}

// --- time ------------------------------------------------------------------------------------

TEST_F(GrantToken, ExpiredGrantIsRefused) {
    Json p = m_payload;
    p["nbf"] = k_now - 1000;
    p["exp"] = k_now - 300;
    expect_refused(sign(m_header, p, s_k1), "grant: expired 300 s ago");
    p["exp"] = k_now - 30; // now - skew < exp fails at equality
    expect_refused(sign(m_header, p, s_k1), "grant: expired 30 s ago");
}

TEST_F(GrantToken, ExpiredWithinSkewPasses) {
    Json p = m_payload;
    p["exp"] = k_now - 29;
    expect_accepted(sign(m_header, p, s_k1));
}

TEST_F(GrantToken, NotYetValidGrantIsRefused) {
    Json p = m_payload;
    p["nbf"] = k_now + 3600;
    p["exp"] = k_now + 4500;
    expect_refused(sign(m_header, p, s_k1), "grant: not valid for another 3600 s");
    p["nbf"] = k_now + 31;
    expect_refused(sign(m_header, p, s_k1), "grant: not valid for another 31 s");
}

TEST_F(GrantToken, NotYetValidWithinSkewPasses) {
    Json p = m_payload;
    p["nbf"] = k_now + 30; // nbf <= now + skew holds at equality
    expect_accepted(sign(m_header, p, s_k1));
}

TEST_F(GrantToken, NbfNotBeforeExpIsRefused) {
    Json p = m_payload;
    p["nbf"] = k_now;
    p["exp"] = k_now;
    m_expected.skew_s = 30;
    expect_refused(sign(m_header, p, s_k1), "grant: nbf 1795512100 is not before exp 1795512100");
    p["exp"] = k_now - 1;
    expect_refused(sign(m_header, p, s_k1), "is not before exp");
}

TEST_F(GrantToken, ExpAsStringIsRefused) {
    expect_refused(with_claim("exp", std::to_string(k_now + 800)), "grant: claim \"exp\" is not an integer");
}

TEST_F(GrantToken, ExpAsFloatIsRefused) {
    expect_refused(with_claim("exp", static_cast<double>(k_now + 800)), "grant: claim \"exp\" is not an integer");
    // 1.7955129e9 written in exponent form is a float too
    Json p = m_payload;
    p.erase("exp");
    std::string text = p.dump();
    text.insert(1, "\"exp\":1.7955129e9,");
    expect_refused(sign_raw(m_header.dump(), text, s_k1), "grant: claim \"exp\" is not an integer");
}

TEST_F(GrantToken, NbfAndIatMustBeIntegers) {
    expect_refused(with_claim("nbf", "0"), "grant: claim \"nbf\" is not an integer");
    expect_refused(with_claim("iat", 1.5), "grant: claim \"iat\" is not an integer");
    expect_refused(with_claim("iat", Json(nullptr)), "grant: claim \"iat\" is not an integer");
}

TEST_F(GrantToken, TimesOutOfRangeAreRefusedWithoutOverflow) {
    expect_refused(with_claim("exp", Json(std::uint64_t{1} << 63)), "grant: claim \"exp\" is out of range");
    Json p = m_payload;
    p["nbf"] = std::numeric_limits<std::int64_t>::min();
    p["exp"] = std::numeric_limits<std::int64_t>::min() + 1;
    expect_refused(sign(m_header, p, s_k1), "grant: expired 9223372036854775807 s ago"); // saturated
    p["nbf"] = std::numeric_limits<std::int64_t>::max() - 1;
    p["exp"] = std::numeric_limits<std::int64_t>::max();
    expect_refused(sign(m_header, p, s_k1), "grant: not valid for another");
}

// --- approvers -------------------------------------------------------------------------------

TEST_F(GrantToken, ApproversMissingIsRefused) {
    expect_refused(with_claim("approvers", removed()), "grant: claim \"approvers\" is missing");
}

TEST_F(GrantToken, ApproversNotAnArrayIsRefused) {
    expect_refused(with_claim("approvers", "bob,carol"), "grant: claim \"approvers\" is not an array");
    expect_refused(with_claim("approvers", {{"bob", true}}), "grant: claim \"approvers\" is not an array");
}

TEST_F(GrantToken, ApproverNotAStringIsRefused) {
    expect_refused(with_claim("approvers", Json::array({"bob", 7})), "grant: approvers[1] is not a string");
}

TEST_F(GrantToken, DuplicateApproverIsCountedOnceSoTwoNeededFails) {
    expect_refused(with_claim("approvers", {"bob", "bob"}), "grant: approver \"bob\" is named twice");
    // Refused outright, not just counted once: a duplicate means a broken signer.
    m_expected.approvals_needed = 1;
    expect_refused(with_claim("approvers", {"bob", "bob"}), "grant: approver \"bob\" is named twice");
}

TEST_F(GrantToken, EmptyApproverIsRefused) {
    expect_refused(with_claim("approvers", {"bob", ""}), "grant: approvers[1] is empty");
}

TEST_F(GrantToken, TooFewApproversIsRefused) {
    expect_refused(with_claim("approvers", {"bob"}), "grant: 1 approver(s), 2 needed");
    expect_refused(with_claim("approvers", Json::array()), "grant: 0 approver(s), 2 needed");
    m_expected.approvals_needed = 3;
    expect_refused(signed_grant(), "grant: 2 approver(s), 3 needed");
}

TEST_F(GrantToken, MoreApproversThanNeededPasses) {
    expect_accepted(with_claim("approvers", {"bob", "carol", "dave"}));
}

TEST_F(GrantToken, RequesterAmongApproversIsRefused) {
    expect_refused(with_claim("approvers", {"bob", "alice"}), "grant: approver \"alice\" is the requester");
    m_expected.approvals_needed = 1;
    expect_refused(with_claim("approvers", {"alice"}), "grant: approver \"alice\" is the requester");
}

// A shared account used from bob's login session is bob: bob cannot approve it at the service.
TEST_F(GrantToken, RequestersLoginSessionOwnerAmongApproversIsRefused) {
    m_expected.login_user = "bob";
    expect_refused(with_claim("approvers", {"bob", "carol"}),
                   "grant: approver \"bob\" owns the requester's login session");
    m_expected.login_user = "dave";
    expect_accepted(with_claim("approvers", {"bob", "carol"}));
}

// --- issuer ----------------------------------------------------------------------------------

TEST_F(GrantToken, IssuerMismatchIsRefusedWhenConfigured) {
    m_expected.issuer = "approvals.example.com";
    expect_accepted(signed_grant());
    expect_refused(with_claim("iss", "evil.example.com"),
                   "grant: issuer \"evil.example.com\" is not \"approvals.example.com\"");
    expect_refused(with_claim("iss", removed()), "grant: claim \"iss\" is missing");
}

TEST_F(GrantToken, IssuerIsNotComparedWhenNotConfigured) {
    expect_accepted(with_claim("iss", "anyone"));
}

// --- the reason line and the caller's expectation --------------------------------------------

TEST_F(GrantToken, TokenValuesInReasonsAreEscapedAndCut) {
    const std::string evil = "\x1b[2J\r\nforged line " + std::string(200, 'x');
    const gt::Verdict v = check(with_claim("host", evil));
    ASSERT_FALSE(v.ok);
    EXPECT_EQ(v.reason.find('\x1b'), std::string::npos);
    EXPECT_EQ(v.reason.find('\n'), std::string::npos);
    EXPECT_EQ(v.reason.find('\r'), std::string::npos);
    EXPECT_NE(v.reason.find("\\x1b[2J\\r\\nforged line"), std::string::npos) << v.reason;
    EXPECT_NE(v.reason.find("\"... is not this host"), std::string::npos) << v.reason;
    EXPECT_LT(v.reason.size(), 140u) << v.reason;

    const gt::Verdict k = check(with_header("kid", std::string(100, 'k') + "\xe2\x82\xac"));
    ASSERT_FALSE(k.ok);
    EXPECT_TRUE(text::is_valid_utf8(k.reason));
    EXPECT_LT(k.reason.size(), 100u) << k.reason;
}

TEST_F(GrantToken, EmptyExpectationNeverMatchesEmptyClaims) {
    m_expected.nonce.clear();
    expect_refused(with_claim("nonce", ""), "grant: this host's expectation has no nonce");
}

TEST_F(GrantToken, CommandScopeWithoutHostHashIsRefused) {
    m_expected.cmd_sha256.clear();
    expect_refused(with_claim("cmd_sha256", ""), "grant: this host has no command hash");
}

TEST_F(GrantToken, ApprovalsNeededOutOfRangeIsRefused) {
    m_expected.approvals_needed = 0;
    expect_refused(with_claim("approvers", Json::array()), "approvals_needed 0 is not 1-5");
}

// --- the key ring ----------------------------------------------------------------------------

TEST_F(GrantToken, RotationBothKeysVerifyTheirGrants) {
    ASSERT_EQ(m_keys.size(), 2u);
    const gt::Verdict v1 = check(signed_grant());
    ASSERT_TRUE(v1.ok) << v1.reason;
    EXPECT_EQ(v1.claims.kid, "k1");
    Json h = m_header;
    h["kid"] = "k2";
    const gt::Verdict v2 = check(sign(h, m_payload, s_k2));
    ASSERT_TRUE(v2.ok) << v2.reason;
    EXPECT_EQ(v2.claims.kid, "k2");
    // k1's signature under k2's name does not verify.
    expect_refused(sign(h, m_payload, s_k1), "grant: signature does not verify");
    EXPECT_EQ(m_keys.kids(), (std::vector<std::string>{"k1", "k2"}));
}

TEST_F(GrantToken, EmptyKeyRingRefusesEverything) {
    gt::KeyRing none;
    EXPECT_TRUE(none.empty());
    const gt::Verdict v = gt::verify(signed_grant(), none, m_expected);
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.reason, "grant: unknown kid \"k1\"");
}

// Runs add_pem and returns the Error's message ("" if it did not throw).
std::string add_pem_error(gt::KeyRing& ring, const std::string& kid, const std::string& pem) {
    try {
        ring.add_pem(kid, pem, "/etc/jitgate/keys/test.pem");
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::bad_input);
        EXPECT_EQ(e.context(), "/etc/jitgate/keys/test.pem");
        return e.what();
    }
    return "";
}

TEST(GrantTokenKeyRing, AddPemRefusesRsaKey) {
    gt::KeyRing ring;
    Pkey rsa(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(1024)));
    ASSERT_TRUE(rsa);
    EXPECT_NE(add_pem_error(ring, "k1", public_pem(rsa.get())).find("is RSA, not Ed25519"), std::string::npos);
    EXPECT_TRUE(ring.empty());
}

TEST(GrantTokenKeyRing, AddPemRefusesEcAndOtherCurves) {
    gt::KeyRing ring;
    Pkey ec(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    ASSERT_TRUE(ec);
    EXPECT_NE(add_pem_error(ring, "k1", public_pem(ec.get())).find("is EC, not Ed25519"), std::string::npos);
    EXPECT_NE(add_pem_error(ring, "k1", public_pem(keygen("X25519").get())).find("not Ed25519"), std::string::npos);
    EXPECT_NE(add_pem_error(ring, "k1", public_pem(keygen("ED448").get())).find("not Ed25519"), std::string::npos);
    EXPECT_TRUE(ring.empty());
}

TEST(GrantTokenKeyRing, AddPemRefusesGarbageAndPrivateKeys) {
    gt::KeyRing ring;
    EXPECT_NE(add_pem_error(ring, "k1", "").find("not a PEM public key"), std::string::npos);
    EXPECT_NE(add_pem_error(ring, "k1", "hello").find("not a PEM public key"), std::string::npos);
    EXPECT_NE(add_pem_error(ring, "k1", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                  .find("not a PEM public key"),
              std::string::npos);
    const Pkey k = keygen("ED25519");
    EXPECT_NE(add_pem_error(ring, "k1", private_pem(k.get())).find("not a PEM public key"), std::string::npos);
    EXPECT_TRUE(ring.empty());
    EXPECT_EQ(ERR_peek_error(), 0ul) << "no stale OpenSSL error left behind";
}

TEST(GrantTokenKeyRing, AddPemRefusesBadKid) {
    gt::KeyRing ring;
    const std::string pem = public_pem(keygen("ED25519").get());
    for (const std::string& kid : {std::string(), std::string(65, 'k'), std::string("k/1"), std::string("k 1"),
                                   std::string("k\n1"), std::string("k\xc3\xa9")})
        EXPECT_NE(add_pem_error(ring, kid, pem).find("is not 1-64 characters of [A-Za-z0-9._-]"), std::string::npos)
            << text::escape_for_log(kid);
    EXPECT_TRUE(ring.empty());
    EXPECT_EQ(add_pem_error(ring, std::string(64, 'k'), pem), "");
    EXPECT_EQ(add_pem_error(ring, "Key_2026-01.v2", pem), "");
    EXPECT_EQ(ring.size(), 2u);
}

TEST(GrantTokenKeyRing, AddPemRefusesDuplicateKid) {
    gt::KeyRing ring;
    EXPECT_EQ(add_pem_error(ring, "k1", public_pem(keygen("ED25519").get())), "");
    EXPECT_NE(add_pem_error(ring, "k1", public_pem(keygen("ED25519").get())).find("kid \"k1\" is already configured"),
              std::string::npos);
    EXPECT_EQ(ring.size(), 1u);
}

TEST(GrantTokenKeyRing, AddFileReadsAKeyAndNamesAMissingFile) {
    const auto dir = std::filesystem::temp_directory_path() / ("jitgate-gt-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    const auto path = (dir / "k1.pem").string();
    { std::ofstream(path) << public_pem(keygen("ED25519").get()); }
    gt::KeyRing ring;
    ring.add_file("k1", path);
    EXPECT_TRUE(ring.contains("k1"));
    try {
        ring.add_file("k2", (dir / "missing.pem").string());
        ADD_FAILURE() << "no throw for a missing file";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::bad_input);
        EXPECT_NE(std::string(e.what()).find("missing.pem"), std::string::npos) << e.what();
    }
    { std::ofstream(path) << "not a key"; }
    try {
        ring.add_file("k3", path);
        ADD_FAILURE() << "no throw for a file that holds no key";
    } catch (const Error& e) {
        EXPECT_EQ(e.context(), path);
    }
    std::filesystem::remove_all(dir);
}

// --- cmd_sha256 and the nonce ----------------------------------------------------------------

// The binding of a plain `sudo CMD` by root:root in `cwd`, program = command, no bound env.
gt::CommandBinding plain(const std::string& runas, const std::string& cwd, const std::string& command,
                         const std::vector<std::string>& argv) {
    return gt::CommandBinding{runas, "root", cwd, "", command, command, argv, {}};
}

TEST(GrantTokenCmdSha256, MatchesIndependentlyComputedVectors) {
    // printf '%s' '{"argv":["/bin/true"],"chroot":"","command":"/bin/true","cwd":"/","env":[],
    //   "program":"/usr/bin/true","runas":"root","runas_group":"root"}' | sha256sum   (one line)
    EXPECT_EQ(gt::cmd_sha256({"root", "root", "/", "", "/bin/true", "/usr/bin/true", {"/bin/true"}, {}}),
              "8c8fb21caab614428733de27bef8543b649fdf3c007c04c29a6449823b3e2c5f");
    // printf '%s' '{"argv":["/usr/bin/systemctl","restart","nginx"],"chroot":"","command":"/usr/bin/systemctl",
    //   "cwd":"/home/alice","env":[],"program":"/usr/bin/systemctl","runas":"root","runas_group":"root"}' | sha256sum
    EXPECT_EQ(gt::cmd_sha256(plain("root", "/home/alice", "/usr/bin/systemctl", k_argv)),
              "7b9c9c6941391da209129e4c89d8a4bb2665a33870a965fafa307678db3d732b");
}

TEST(GrantTokenCmdSha256, EscapesAndNonUtf8ArgumentsMatchTheWireForm) {
    // Python: json.dumps({"argv": [...], "chroot": "", "command": ..., "cwd": ..., "env": [...],
    //   "program": ..., "runas": ..., "runas_group": ...}, separators=(",", ":"), ensure_ascii=False),
    // with b"\xff\xfe" as {"b64": "//4="} and b"X=\xff" as {"b64": "WD3/"}:
    // {"argv":["/bin/echo","a\"b\\c\n\u0001<DEL>","é<U+202E>",{"b64":"//4="},""],"chroot":"",
    //  "command":"/bin/echo","cwd":"/tmp/café","env":["LD_PRELOAD=/tmp/x.so",{"b64":"WD3/"}],
    //  "program":"/bin/echo","runas":"root","runas_group":"root"}
    auto b = plain("root", "/tmp/caf\xc3\xa9", "/bin/echo",
                   {"/bin/echo", "a\"b\\c\n\x01\x7f", "\xc3\xa9\xe2\x80\xae", "\xff\xfe", ""});
    b.env = {"LD_PRELOAD=/tmp/x.so", "X=\xff"};
    EXPECT_EQ(gt::cmd_sha256(b), "694748e2213517d291bbb16ea14fc188173b9621dfbd1f487100d755705fcc05");
}

TEST(GrantTokenCmdSha256, EachPartChangesTheHash) {
    const auto base_binding = plain("root", "/home/alice", "/usr/bin/systemctl", k_argv);
    const std::string base = gt::cmd_sha256(base_binding);
    EXPECT_EQ(base.size(), 64u);
    EXPECT_EQ(base.find_first_not_of("0123456789abcdef"), std::string::npos);
    std::set<std::string> seen{base};
    EXPECT_TRUE(seen.insert(gt::cmd_sha256(plain("postgres", "/home/alice", "/usr/bin/systemctl", k_argv))).second);
    EXPECT_TRUE(seen.insert(gt::cmd_sha256(plain("root", "/etc", "/usr/bin/systemctl", k_argv))).second);
    EXPECT_TRUE(seen.insert(gt::cmd_sha256(plain("root", "/home/alice", "/bin/systemctl", k_argv))).second);
    EXPECT_TRUE(seen.insert(gt::cmd_sha256(plain("root", "/home/alice", "/usr/bin/systemctl",
                                                 {"/usr/bin/systemctl", "stop", "nginx"})))
                    .second);
    EXPECT_TRUE(seen.insert(gt::cmd_sha256(plain("root", "/home/alice", "/usr/bin/systemctl",
                                                 {"/usr/bin/systemctl", "restart nginx"})))
                    .second)
        << "the same text split differently is a different action";
    EXPECT_TRUE(seen.insert(gt::cmd_sha256(plain("root", "/home/alice", "/usr/bin/systemctl",
                                                 {"/usr/bin/systemctl", "restart", "nginx", ""})))
                    .second);
    // A non-UTF-8 argument and the text of its b64 form are different actions.
    EXPECT_NE(gt::cmd_sha256(plain("root", "/", "/bin/x", {"\xff"})),
              gt::cmd_sha256(plain("root", "/", "/bin/x", {"/w=="})));
}

// Regression: a grant covers exactly what the approver saw. The run-as group (sudo -g), the
// environment (sudo LD_PRELOAD=...), the run cwd (sudo -D), the chroot (sudo -R) and the
// program a path resolves to each change the hash.
TEST(GrantTokenCmdSha256, GroupEnvCwdChrootAndProgramChangeTheHash) {
    const auto base = plain("root", "/", "/usr/bin/true", {"/usr/bin/true"});
    std::set<std::string> seen{gt::cmd_sha256(base)};
    auto b = base;
    b.runas_group = "shadow";
    EXPECT_TRUE(seen.insert(gt::cmd_sha256(b)).second) << "runas_group";
    b = base;
    b.env = {"LD_PRELOAD=/tmp/x.so"};
    EXPECT_TRUE(seen.insert(gt::cmd_sha256(b)).second) << "env";
    b.env = {"LD_PRELOAD=/tmp/y.so"};
    EXPECT_TRUE(seen.insert(gt::cmd_sha256(b)).second) << "env value";
    b = base;
    b.cwd = "/tmp";
    EXPECT_TRUE(seen.insert(gt::cmd_sha256(b)).second) << "cwd";
    b = base;
    b.chroot = "/srv/jail";
    EXPECT_TRUE(seen.insert(gt::cmd_sha256(b)).second) << "chroot";
    b = base;
    b.program = "/usr/bin/bash";
    EXPECT_TRUE(seen.insert(gt::cmd_sha256(b)).second) << "program";
    // An environment entry is not an argument: moving "A=b" from argv to env changes the hash.
    b = base;
    b.argv.push_back("A=b");
    auto c = base;
    c.env = {"A=b"};
    EXPECT_NE(gt::cmd_sha256(b), gt::cmd_sha256(c));
}

TEST(GrantTokenCmdSha256, NonUtf8StringMembersThrow) {
    EXPECT_THROW(gt::cmd_sha256(plain("root", "/tmp/\xff", "/bin/true", {"/bin/true"})), Error);
    EXPECT_THROW(gt::cmd_sha256(plain("ro\xc0\xafot", "/", "/bin/true", {"/bin/true"})), Error);
    EXPECT_THROW(gt::cmd_sha256(plain("root", "/", "/bin/\xfe", {"/bin/true"})), Error);
    auto b = plain("root", "/", "/bin/true", {"/bin/true"});
    b.runas_group = "\xff";
    EXPECT_THROW(gt::cmd_sha256(b), Error);
    b = plain("root", "/", "/bin/true", {"/bin/true"});
    b.chroot = "/\xff";
    EXPECT_THROW(gt::cmd_sha256(b), Error);
    b = plain("root", "/", "/bin/true", {"/bin/true"});
    b.program = "/\xff";
    EXPECT_THROW(gt::cmd_sha256(b), Error);
}

TEST(GrantTokenNonce, Is43Base64urlCharactersAndFresh) {
    std::set<std::string> seen;
    for (int i = 0; i < 100; ++i) {
        const std::string n = gt::new_nonce();
        EXPECT_EQ(n.size(), 43u);
        EXPECT_EQ(n.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                  std::string::npos);
        EXPECT_EQ(text::base64url_decode(n).size(), 32u);
        EXPECT_TRUE(seen.insert(n).second);
    }
}

// --- the shared signer -----------------------------------------------------------------------

// A private directory removed afterwards.
class KeyDir {
public:
    KeyDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "jitgate-signer-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        m_path = pattern;
    }
    ~KeyDir() {
        std::error_code ignored;
        std::filesystem::remove_all(m_path, ignored);
    }
    KeyDir(const KeyDir&) = delete;
    KeyDir& operator=(const KeyDir&) = delete;
    std::string write(const std::string& name, const std::string& text, mode_t mode) const {
        const std::string file = (m_path / name).string();
        { std::ofstream(file, std::ios::binary | std::ios::trunc) << text; }
        if (chmod(file.c_str(), mode) != 0) throw std::runtime_error("chmod failed");
        return file;
    }
    const std::filesystem::path& path() const { return m_path; }

private:
    std::filesystem::path m_path;
};

// The message of the Error that load() throws ("" if it loads).
std::string load_error(const std::string& kid, const std::string& path, unsigned allowed_uid) {
    try {
        gt::SigningKey::load(kid, path, allowed_uid);
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::bad_input);
        EXPECT_EQ(e.context(), path);
        return e.what();
    }
    return "";
}

gt::Claims good_claims(const gt::Expected& e) {
    gt::Claims c;
    c.iss = "approvals.example.com";
    c.jti = "G-7Q2M4X";
    c.rid = e.request_id;
    c.nonce = e.nonce;
    c.host = e.host;
    c.sub = e.user;
    c.kind = e.kind;
    c.scope = e.scope;
    c.cmd_sha256 = e.cmd_sha256;
    c.approvers = {"bob", "carol"};
    c.iat = k_now - 5;
    c.nbf = k_now - 5;
    c.exp = k_now + 900;
    return c;
}

TEST_F(GrantToken, SharedSignerRoundTripsThroughTheVerifier) {
    const gt::SigningKey key = gt::SigningKey::generate("k-new");
    m_keys.add_pem("k-new", key.public_key_pem(), "test:k-new");
    const gt::Claims sent = good_claims(m_expected);
    const std::string jws = gt::sign(key, sent);
    const gt::Verdict v = check(jws);
    ASSERT_TRUE(v.ok) << v.reason;
    EXPECT_EQ(v.claims.kid, "k-new");
    EXPECT_EQ(v.claims.iss, sent.iss);
    EXPECT_EQ(v.claims.jti, sent.jti);
    EXPECT_EQ(v.claims.rid, sent.rid);
    EXPECT_EQ(v.claims.nonce, sent.nonce);
    EXPECT_EQ(v.claims.host, sent.host);
    EXPECT_EQ(v.claims.sub, sent.sub);
    EXPECT_EQ(v.claims.kind, sent.kind);
    EXPECT_EQ(v.claims.scope, sent.scope);
    EXPECT_EQ(v.claims.cmd_sha256, sent.cmd_sha256);
    EXPECT_EQ(v.claims.approvers, sent.approvers);
    EXPECT_EQ(v.claims.iat, sent.iat);
    EXPECT_EQ(v.claims.nbf, sent.nbf);
    EXPECT_EQ(v.claims.exp, sent.exp);
}

TEST_F(GrantToken, SharedSignerHeaderIsExactlyEdDSAKidTyp) {
    const gt::SigningKey key = gt::SigningKey::generate("k-new");
    const auto parts = split(gt::sign(key, good_claims(m_expected)));
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_EQ(text::base64url_decode(parts[0]), R"({"alg":"EdDSA","kid":"k-new","typ":"JWT"})");
    EXPECT_EQ(text::base64url_decode(parts[2]).size(), 64u);
    // Session scope: no cmd_sha256 member at all.
    gt::Claims session = good_claims(m_expected);
    session.scope = "session";
    session.cmd_sha256.clear();
    const Json payload = Json::parse(text::base64url_decode(split(gt::sign(key, session))[1]));
    EXPECT_FALSE(payload.contains("cmd_sha256"));
    EXPECT_EQ(payload["scope"], "session");
}

TEST_F(GrantToken, SharedSignerTamperedTokensAreRefused) {
    const gt::SigningKey key = gt::SigningKey::generate("k-new");
    m_keys.add_pem("k-new", key.public_key_pem(), "test:k-new");
    const std::string jws = gt::sign(key, good_claims(m_expected));
    ASSERT_TRUE(check(jws).ok);
    // Another approver list in the payload, the signature kept.
    auto parts = split(jws);
    Json payload = Json::parse(text::base64url_decode(parts[1]));
    payload["approvers"] = {"bob", "dave"};
    expect_refused(parts[0] + "." + b64(payload.dump()) + "." + parts[2], "signature does not verify");
    // One bit of the signature flipped.
    std::string sig = text::base64url_decode(parts[2]);
    sig[10] = static_cast<char>(sig[10] ^ 0x01);
    expect_refused(parts[0] + "." + parts[1] + "." + b64(sig), "signature does not verify");
    // Another key signing under the same kid.
    const gt::SigningKey impostor = gt::SigningKey::generate("k-new");
    expect_refused(gt::sign(impostor, good_claims(m_expected)), "signature does not verify");
    // A kid the host does not know.
    expect_refused(gt::sign(gt::SigningKey::generate("k-other"), good_claims(m_expected)), "unknown kid");
}

// RFC 8032 §7.1, TEST 1: the signer is plain Ed25519, byte for byte.
TEST(GrantTokenSigner, Rfc8032TestVector1) {
    const std::string seed = text::base64url_decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
    ASSERT_EQ(seed.size(), 32u);
    const gt::SigningKey key = gt::SigningKey::from_seed("rfc8032", seed);
    const std::string sig = key.sign_bytes("");
    std::string hex;
    for (const unsigned char b : sig) {
        static const char* digits = "0123456789abcdef";
        hex += digits[b >> 4];
        hex += digits[b & 15];
    }
    EXPECT_EQ(hex, "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                   "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    // The public key of that vector, in the SubjectPublicKeyInfo PEM hosts configure.
    EXPECT_EQ(key.public_key_pem(), "-----BEGIN PUBLIC KEY-----\n"
                                    "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
                                    "-----END PUBLIC KEY-----\n");
    EXPECT_THROW(gt::SigningKey::from_seed("rfc8032", seed.substr(1)), Error);
}

TEST(GrantTokenSigner, GrantClaimsRefusesWhatEveryHostWouldRefuse) {
    gt::Expected e;
    e.request_id = "R-1";
    e.nonce = "n";
    e.host = "h";
    e.user = "alice";
    e.kind = "sudo";
    e.scope = "command";
    e.cmd_sha256 = std::string(64, 'a');
    const auto refused = [&](const std::function<void(gt::Claims&)>& change, const std::string& reason) {
        gt::Claims c = good_claims(e);
        change(c);
        try {
            gt::grant_claims(c);
            ADD_FAILURE() << "no throw; expected: " << reason;
        } catch (const Error& error) {
            EXPECT_EQ(error.code(), ErrorCode::bad_input);
            EXPECT_NE(std::string(error.what()).find(reason), std::string::npos) << error.what();
        }
    };
    EXPECT_NO_THROW(gt::grant_claims(good_claims(e)));
    refused([](gt::Claims& c) { c.approvers = {"bob", "alice"}; }, "approver \"alice\" is the requester");
    refused([](gt::Claims& c) { c.approvers = {"bob", "bob"}; }, "approver \"bob\" is named twice");
    refused([](gt::Claims& c) { c.approvers = {"bob", ""}; }, "an approver's name is empty");
    refused([](gt::Claims& c) { c.approvers.clear(); }, "no approvers");
    refused([](gt::Claims& c) { c.cmd_sha256.clear(); }, "scope \"command\" needs cmd_sha256");
    refused([](gt::Claims& c) { c.scope = "session"; }, "cmd_sha256 is only for scope \"command\"");
    refused([](gt::Claims& c) { c.scope = "root"; }, "unknown scope \"root\"");
    refused([](gt::Claims& c) { c.exp = c.nbf; }, "is not before exp");
    refused([](gt::Claims& c) { c.jti = "G 1\n"; }, "is not 1-128 printable ASCII");
    refused([](gt::Claims& c) { c.nonce.clear(); }, "claim \"nonce\" is empty");
    refused([](gt::Claims& c) { c.host.clear(); }, "claim \"host\" is empty");
}

TEST(GrantTokenSigner, SignRefusesNonObjectsBadUtf8AndOversizeTokens) {
    const gt::SigningKey key = gt::SigningKey::generate("k1");
    EXPECT_THROW(gt::sign(key, Json::array({1, 2})), Error);
    EXPECT_THROW(gt::sign(key, Json{{"sub", "\xff"}}), Error);
    EXPECT_THROW(gt::sign(key, Json{{"pad", std::string(gt::k_max_token_bytes, 'x')}}), Error);
    // The largest payload that signs (binary search) gives a token the verifier's size check
    // still allows, within one base64 step of the limit.
    std::size_t low = 1000;   // signs
    std::size_t high = 16384; // does not
    std::string jws;
    while (high - low > 1) {
        const std::size_t mid = (low + high) / 2;
        try {
            gt::sign(key, Json{{"pad", std::string(mid, 'x')}});
            low = mid;
        } catch (const Error&) {
            high = mid;
        }
    }
    jws = gt::sign(key, Json{{"pad", std::string(low, 'x')}});
    EXPECT_LE(jws.size(), gt::k_max_token_bytes);
    EXPECT_GT(jws.size(), gt::k_max_token_bytes - 4);
}

TEST(GrantTokenSigner, KeyFileRoundTripsAndModes0600And0400Load) {
    KeyDir dir;
    const gt::SigningKey made = gt::SigningKey::generate("k1");
    const std::string pem = made.private_key_pem();
    EXPECT_EQ(pem.rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u) << "PKCS#8";
    for (const mode_t mode : {mode_t{0600}, mode_t{0400}}) {
        const std::string path = dir.write("k1-" + std::to_string(mode) + ".key", pem, mode);
        const gt::SigningKey loaded = gt::SigningKey::load("k1", path, getuid());
        EXPECT_EQ(loaded.kid(), "k1");
        EXPECT_EQ(loaded.public_key_pem(), made.public_key_pem());
        gt::KeyRing ring;
        ring.add_pem("k1", made.public_key_pem(), "test");
        const std::string jws = gt::sign(loaded, Json{{"x", 1}});
        const std::size_t dot = jws.rfind('.');
        EXPECT_TRUE(ring.verify_signature("k1", jws.substr(0, dot), text::base64url_decode(jws.substr(dot + 1))));
    }
}

TEST(GrantTokenSigner, KeyFileReadableByOthersIsRefusedWithTheFix) {
    KeyDir dir;
    const std::string pem = gt::SigningKey::generate("k1").private_key_pem();
    for (const mode_t mode : {mode_t{0644}, mode_t{0640}, mode_t{0604}, mode_t{0700}, mode_t{0440}}) {
        const std::string path = dir.write("k1.key", pem, mode);
        char octal[8];
        std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode));
        EXPECT_EQ(load_error("k1", path, getuid()),
                  path + ": mode " + octal +
                      " lets others read or run the signing key; it must be 0600 or 0400 (fix with: chmod 0600 " +
                      path + ")");
    }
    // Group-writable: check_file_security's own message.
    const std::string path = dir.write("k1.key", pem, 0620);
    EXPECT_NE(load_error("k1", path, getuid()).find("is group-writable (mode 0620); fix with: chmod go-w"),
              std::string::npos);
}

TEST(GrantTokenSigner, KeyFileOwnedBySomeoneElseIsRefused) {
    KeyDir dir;
    const std::string path = dir.write("k1.key", gt::SigningKey::generate("k1").private_key_pem(), 0600);
    unsigned owner = getuid();
    if (getuid() == 0) {
        // As root: give the file to another uid; only root (0) is allowed.
        owner = 4242;
        ASSERT_EQ(chown(path.c_str(), owner, static_cast<gid_t>(-1)), 0);
    }
    // Not root: the file is ours, and only root (allowed_uid 0) is allowed.
    EXPECT_EQ(load_error("k1", path, 0), path + ": is owned by uid " + std::to_string(owner) +
                                             " but must be owned by root; fix with: chown root " + path);
}

TEST(GrantTokenSigner, KeyFileThatIsNoEd25519PrivateKeyIsRefused) {
    KeyDir dir;
    const auto error_for = [&](const std::string& text) {
        return load_error("k1", dir.write("k1.key", text, 0600), getuid());
    };
    EXPECT_NE(error_for("not a key").find("not a PEM private key"), std::string::npos);
    EXPECT_NE(error_for(public_pem(keygen("ED25519").get())).find("not a PEM private key"), std::string::npos);
    Pkey ec(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    ASSERT_TRUE(ec);
    EXPECT_NE(error_for(private_pem(ec.get())).find("is EC, not Ed25519"), std::string::npos);
    // An encrypted key: a service cannot type a passphrase at start-up.
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    Pkey ed(keygen("ED25519"));
    ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(bio.get(), ed.get(), EVP_aes_256_cbc(), nullptr, 0, nullptr,
                                            const_cast<char*>("secret")),
              1);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    EXPECT_NE(error_for(std::string(data, static_cast<std::size_t>(n))).find("is encrypted"), std::string::npos);
    EXPECT_NE(error_for(std::string(70 * 1024, 'x')).find("larger than 64 KiB"), std::string::npos);
    EXPECT_NE(load_error("k 1", dir.write("k1.key", "x", 0600), getuid()).find("is not 1-64 characters"),
              std::string::npos);
}

TEST(GrantTokenSigner, KeyFileSymlinkAndMissingFileAreRefused) {
    KeyDir dir;
    const std::string real = dir.write("real.key", gt::SigningKey::generate("k1").private_key_pem(), 0600);
    const std::string link = (dir.path() / "link.key").string();
    ASSERT_EQ(symlink(real.c_str(), link.c_str()), 0);
    EXPECT_NE(load_error("k1", link, getuid()).find("is a symbolic link"), std::string::npos);
    const std::string missing = (dir.path() / "missing.key").string();
    EXPECT_EQ(load_error("k1", missing, getuid()),
              missing + ": cannot read the signing key: No such file or directory");
}

} // namespace

// --- automatic approval (§7.2 `auto`) ---------------------------------------------------------

// A grant the service approved by itself names no approver and says which condition held; a
// host accepts it only for a rule that opted in to exactly that condition.
TEST_F(GrantToken, AnAutomaticGrantIsAcceptedOnlyWhereTheRuleAllowsIt) {
    Json p = m_payload;
    p["approvers"] = Json::array();
    p["auto"] = "on_call";
    const std::string automatic = sign(m_header, p, s_k1);
    // The default (a rule without auto_approve, or an older host): refused.
    expect_refused(automatic, "automatic approval (\"on_call\") is not allowed by this host's rule");
    m_expected.auto_allowed = "on_call";
    const gt::Verdict v = check(automatic);
    ASSERT_TRUE(v.ok) << v.reason;
    EXPECT_EQ(v.claims.auto_condition, "on_call");
    EXPECT_TRUE(v.claims.approvers.empty());
    // Two approvals needed by the rule do not change that the opt-in decides (the host sets
    // auto_allowed only where auto_approve_sod allows it).
    EXPECT_EQ(m_expected.approvals_needed, 2);
}

TEST_F(GrantToken, AnAutomaticGrantIsNeverMixedWithApproversOrUnknownConditions) {
    m_expected.auto_allowed = "on_call";
    Json p = m_payload;
    p["auto"] = "on_call"; // approvers bob and carol stay
    expect_refused(sign(m_header, p, s_k1), "an automatic approval names approvers");
    p["approvers"] = Json::array();
    p["auto"] = "always";
    expect_refused(sign(m_header, p, s_k1), "unknown automatic approval \"always\"");
    p["auto"] = true;
    expect_refused(sign(m_header, p, s_k1), "claim \"auto\" is not a string");
    // Without `auto`, zero approvers is zero approvals, whatever the host allows.
    p.erase("auto");
    expect_refused(sign(m_header, p, s_k1), "0 approver(s), 2 needed");
}

TEST_F(GrantToken, TheSharedSignerSignsAnAutomaticGrantOnlyWithoutApprovers) {
    const gt::SigningKey key = gt::SigningKey::generate("k-auto");
    m_keys.add_pem("k-auto", key.public_key_pem(), "test:k-auto");
    gt::Claims c = good_claims(m_expected);
    c.auto_condition = "on_call";
    EXPECT_THROW(gt::sign(key, c), jitgate::Error); // approvers beside `auto`
    c.approvers.clear();
    const Json claims = gt::grant_claims(c);
    EXPECT_EQ(claims.at("auto"), "on_call");
    EXPECT_EQ(claims.at("approvers"), Json::array());
    c.auto_condition = "always";
    EXPECT_THROW(gt::sign(key, c), jitgate::Error);
    c.auto_condition.clear();
    EXPECT_THROW(gt::sign(key, c), jitgate::Error); // no approvers and no `auto`
    c.auto_condition = "on_call";
    m_expected.auto_allowed = "on_call";
    const gt::Verdict v = check(gt::sign(key, c));
    ASSERT_TRUE(v.ok) << v.reason;
    EXPECT_EQ(v.claims.auto_condition, "on_call");
}
