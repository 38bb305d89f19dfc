// lib/grant_token.cpp — see grant_token.hpp and docs/protocol.md §7.
#include "lib/grant_token.hpp"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <new>
#include <set>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"
#include "lib/audit_event.hpp"
#include "lib/config_file.hpp"
#include "lib/openssl_ptr.hpp"
#include "lib/strict_json.hpp"

namespace jitgate::grant_token {
namespace {

using Json = nlohmann::json;

constexpr std::size_t k_max_key_file_bytes = 64 * 1024;
constexpr std::size_t k_max_shown_bytes = 64;
constexpr std::size_t k_ed25519_signature_bytes = 64;
constexpr std::size_t k_nonce_bytes = 32;

// A token value made safe for a reason line: cut to 64 bytes (at a UTF-8 boundary), escaped,
// in double quotes, with "..." after the quote when it was cut.
std::string shown(std::string_view value) {
    const std::string_view kept = text::utf8_prefix(value, k_max_shown_bytes);
    std::string out = "\"" + text::escape_for_log(kept) + "\"";
    if (kept.size() < value.size()) out += text::k_cut_marker;
    return out;
}

// Thrown inside verify() only; carries the reason without the "grant: " prefix.
struct Rejected {
    std::string reason;
};

[[noreturn]] void reject(std::string reason) {
    throw Rejected{std::move(reason)};
}

// a - b without overflow (the values come from the token).
std::int64_t saturating_sub(std::int64_t a, std::int64_t b) noexcept {
    std::int64_t r = 0;
    if (__builtin_sub_overflow(a, b, &r))
        return b < 0 ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
    return r;
}

std::int64_t saturating_add(std::int64_t a, std::int64_t b) noexcept {
    std::int64_t r = 0;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
    return r;
}

// Decodes one JWS part. SECURITY NOTE: only the canonical encoding is accepted (re-encoding
// gives the same text), so one signature has exactly one textual form.
std::string decode_part(std::string_view part, const char* what) {
    if (part.empty()) reject(std::string(what) + " part is empty");
    std::string bytes;
    try {
        bytes = text::base64url_decode(part);
    } catch (const Error&) {
        reject(std::string(what) + " is not base64url");
    }
    if (text::base64url_encode(bytes) != part) reject(std::string(what) + " is not canonical base64url");
    return bytes;
}

// Parses a JSON object through lib/strict_json. SECURITY NOTE: a duplicate member is refused
// (RFC 7515 §5.2 allows that) rather than letting "the last one wins" differ between signer
// and verifier; nesting is bounded.
Json parse_object(const std::string& bytes, const char* what) {
    strict_json::Parsed parsed = strict_json::parse_object(bytes);
    if (!parsed.error.empty()) reject(std::string(what) + " " + parsed.error);
    return std::move(parsed.value);
}

const Json* member(const Json& obj, const char* name) {
    const auto it = obj.find(name);
    return it == obj.end() ? nullptr : &*it;
}

std::string claim_string(const Json& payload, const char* name) {
    const Json* v = member(payload, name);
    if (v == nullptr) reject(std::string("claim \"") + name + "\" is missing");
    if (!v->is_string()) reject(std::string("claim \"") + name + "\" is not a string");
    return v->get<std::string>();
}

// Integers only: 5, not 5.0, 5e0 or "5". nlohmann reads a non-negative integer as unsigned.
std::int64_t integer_value(const Json& v, const char* name) {
    if (v.is_number_unsigned()) {
        const auto u = v.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            reject(std::string("claim \"") + name + "\" is out of range");
        return static_cast<std::int64_t>(u);
    }
    if (v.is_number_integer()) return v.get<std::int64_t>();
    reject(std::string("claim \"") + name + "\" is not an integer");
}

std::int64_t claim_integer(const Json& payload, const char* name) {
    const Json* v = member(payload, name);
    if (v == nullptr) reject(std::string("claim \"") + name + "\" is missing");
    return integer_value(*v, name);
}

void check_expected(const Expected& e) {
    const std::pair<const char*, const std::string*> required[] = {{"request_id", &e.request_id},
                                                                   {"nonce", &e.nonce},
                                                                   {"host", &e.host},
                                                                   {"user", &e.user},
                                                                   {"kind", &e.kind},
                                                                   {"scope", &e.scope}};
    for (const auto& [name, value] : required)
        if (value->empty()) reject(std::string("this host's expectation has no ") + name + " (internal error)");
    if (e.scope != "command" && e.scope != "session" && e.scope != "login")
        reject("this host asked for unknown scope " + shown(e.scope) + " (internal error)");
    if (e.scope == "command" && e.cmd_sha256.empty())
        reject("this host has no command hash for scope \"command\" (internal error)");
    if (e.approvals_needed < 1 || e.approvals_needed > 5)
        reject("this host's approvals_needed " + std::to_string(e.approvals_needed) + " is not 1-5 (internal error)");
}

// Returns the kid of a header that passes §7.1.
std::string check_header(const Json& header, const KeyRing& keys) {
    const Json* alg = member(header, "alg");
    if (alg == nullptr) reject("header has no alg");
    if (!alg->is_string()) reject("alg is not a string");
    // SECURITY NOTE: exactly "EdDSA". Anything else — "none", HS256 keyed with the public key,
    // RS256, a different case — is the algorithm-confusion family of attacks.
    if (alg->get<std::string>() != "EdDSA") reject("alg " + shown(alg->get<std::string>()) + " is not EdDSA");
    // SECURITY NOTE: keys come from the host's config, never from the token; and an extension
    // we would not understand (crit) must not be ignored.
    for (const char* refused : {"crit", "jku", "jwk", "x5u", "x5c"})
        if (header.contains(refused))
            reject(std::string("header member \"") + refused + "\" is refused (keys come from this host's config)");
    const Json* kid = member(header, "kid");
    if (kid == nullptr) reject("header has no kid");
    if (!kid->is_string()) reject("kid is not a string");
    std::string k = kid->get<std::string>();
    if (!keys.contains(k)) reject("unknown kid " + shown(k));
    return k;
}

// The condition names an automatic grant may carry (§7.2 `auto`).
bool is_auto_condition(std::string_view condition) {
    return condition == "on_call";
}

void check_approvers(const Json& payload, const Expected& e, Claims& c) {
    if (const Json* automatic = member(payload, "auto"); automatic != nullptr) {
        if (!automatic->is_string()) reject("claim \"auto\" is not a string");
        c.auto_condition = automatic->get<std::string>();
        if (!is_auto_condition(c.auto_condition)) reject("unknown automatic approval " + shown(c.auto_condition));
        // SECURITY NOTE: an automatic grant is accepted only for a rule that opted in to exactly
        // this condition (and validate() refuses that opt-in where two approvals are needed
        // unless auto_approve_sod says so): the service's word alone never replaces approvers.
        if (e.auto_allowed.empty() || c.auto_condition != e.auto_allowed)
            reject("automatic approval (" + shown(c.auto_condition) +
                   ") is not allowed by this host's rule (auto_approve)");
    }
    const Json* list = member(payload, "approvers");
    if (list == nullptr) reject("claim \"approvers\" is missing");
    if (!list->is_array()) reject("claim \"approvers\" is not an array");
    std::set<std::string> distinct;
    for (std::size_t i = 0; i < list->size(); ++i) {
        const Json& a = (*list)[i];
        const std::string at = "approvers[" + std::to_string(i) + "]";
        if (!a.is_string()) reject(at + " is not a string");
        std::string name = a.get<std::string>();
        if (name.empty()) reject(at + " is empty");
        // SECURITY NOTE: "distinct names" (§7.2) is enforced by refusing the grant: a service
        // that names one approver twice is broken, and must not look like two approvals.
        if (!distinct.insert(name).second) reject("approver " + shown(name) + " is named twice");
        if (name == e.user) reject("approver " + shown(name) + " is the requester");
        if (!e.login_user.empty() && name == e.login_user)
            reject("approver " + shown(name) + " owns the requester's login session");
        c.approvers.push_back(std::move(name));
    }
    if (!c.auto_condition.empty()) {
        // One or the other: approvers beside `auto` would make the record say two things.
        if (!c.approvers.empty()) reject("an automatic approval names approvers");
        return;
    }
    if (c.approvers.size() < static_cast<std::size_t>(e.approvals_needed))
        reject(std::to_string(c.approvers.size()) + " approver(s), " + std::to_string(e.approvals_needed) + " needed");
}

void check_times(const Json& payload, const Expected& e, Claims& c) {
    if (const Json* iat = member(payload, "iat"); iat != nullptr) c.iat = integer_value(*iat, "iat");
    c.nbf = claim_integer(payload, "nbf");
    c.exp = claim_integer(payload, "exp");
    if (c.nbf > saturating_add(e.now_unix, e.skew_s))
        reject("not valid for another " + std::to_string(saturating_sub(c.nbf, e.now_unix)) + " s");
    if (saturating_sub(e.now_unix, e.skew_s) >= c.exp)
        reject("expired " + std::to_string(saturating_sub(e.now_unix, c.exp)) + " s ago");
    if (c.nbf >= c.exp) reject("nbf " + std::to_string(c.nbf) + " is not before exp " + std::to_string(c.exp));
}

// §7.2, in the order of its table. Only called once the signature has verified.
Claims check_claims(const Json& payload, const Expected& e) {
    Claims c;
    if (const Json* iss = member(payload, "iss"); iss != nullptr) {
        if (!iss->is_string()) reject("claim \"iss\" is not a string");
        c.iss = iss->get<std::string>();
    }
    if (!e.issuer.empty()) {
        if (member(payload, "iss") == nullptr) reject("claim \"iss\" is missing (an issuer is configured)");
        if (c.iss != e.issuer) reject("issuer " + shown(c.iss) + " is not " + shown(e.issuer));
    }

    c.jti = claim_string(payload, "jti");
    const bool printable = std::all_of(c.jti.begin(), c.jti.end(), [](char ch) { return ch >= 0x20 && ch <= 0x7E; });
    if (c.jti.empty() || c.jti.size() > 128 || !printable)
        reject("jti " + shown(c.jti) + " is not 1-128 printable ASCII");

    c.rid = claim_string(payload, "rid");
    if (c.rid != e.request_id) reject("rid " + shown(c.rid) + " is not this request's id");
    c.nonce = claim_string(payload, "nonce");
    // SECURITY NOTE: the nonce is what makes a grant for an earlier request a replay.
    if (c.nonce != e.nonce) reject("nonce does not match this request");
    c.host = claim_string(payload, "host");
    if (c.host != e.host) reject("host " + shown(c.host) + " is not this host");
    c.sub = claim_string(payload, "sub");
    if (c.sub != e.user) reject("sub " + shown(c.sub) + " is not the requester");
    c.kind = claim_string(payload, "kind");
    if (c.kind != e.kind) reject("kind " + shown(c.kind) + " is not this request's kind");
    c.scope = claim_string(payload, "scope");
    if (c.scope != e.scope) reject("scope " + shown(c.scope) + " is not this request's scope");

    const Json* hash = member(payload, "cmd_sha256");
    if (hash != nullptr && !hash->is_string()) reject("claim \"cmd_sha256\" is not a string");
    if (hash != nullptr) c.cmd_sha256 = hash->get<std::string>();
    if (e.scope == "command") {
        if (hash == nullptr) reject("claim \"cmd_sha256\" is missing (scope \"command\")");
        if (c.cmd_sha256 != e.cmd_sha256) reject("cmd_sha256 does not match the command");
    } else if (!c.cmd_sha256.empty()) {
        // SECURITY NOTE: a hash in a session or login grant means signer and host disagree
        // about what is being granted; refuse rather than guess.
        reject("cmd_sha256 must be absent or empty for scope " + shown(e.scope));
    }

    check_approvers(payload, e, c);
    check_times(payload, e, c);
    return c;
}

Verdict verify_or_throw(std::string_view jws, const KeyRing& keys, const Expected& expected) {
    check_expected(expected);
    if (jws.size() > k_max_token_bytes)
        reject(std::to_string(jws.size()) + " bytes, more than " + std::to_string(k_max_token_bytes));
    const auto dots = static_cast<std::size_t>(std::count(jws.begin(), jws.end(), '.'));
    if (dots != 2) reject(std::to_string(dots + 1) + " part(s), a compact JWS has 3");
    const std::size_t dot1 = jws.find('.');
    const std::size_t dot2 = jws.find('.', dot1 + 1);
    const std::string_view header_b64 = jws.substr(0, dot1);
    const std::string_view payload_b64 = jws.substr(dot1 + 1, dot2 - dot1 - 1);
    const std::string_view signature_b64 = jws.substr(dot2 + 1);

    const Json header = parse_object(decode_part(header_b64, "header"), "header");
    std::string kid = check_header(header, keys);
    const std::string payload_bytes = decode_part(payload_b64, "payload");
    const std::string signature = decode_part(signature_b64, "signature");
    if (signature.size() != k_ed25519_signature_bytes)
        reject("signature is " + std::to_string(signature.size()) + " bytes, Ed25519 has 64");
    // SECURITY NOTE: the signature covers the ASCII text of the first two parts as received;
    // no claim is looked at before it verifies.
    if (!keys.verify_signature(kid, jws.substr(0, dot2), signature)) reject("signature does not verify");

    Verdict v;
    v.claims = check_claims(parse_object(payload_bytes, "payload"), expected);
    v.claims.kid = std::move(kid);
    v.ok = true;
    return v;
}

// One deleter for every OpenSSL type (lib/openssl_ptr.hpp).
using MdCtxFree = ossl::Free;
using BioFree = ossl::Free;
using EvpPkeyFree = ossl::Free;

bool valid_kid(std::string_view kid) noexcept {
    if (kid.empty() || kid.size() > 64) return false;
    return std::all_of(kid.begin(), kid.end(), [](char ch) {
        return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
               ch == '_' || ch == '-';
    });
}

void check_kid(const std::string& kid, const std::string& source) {
    if (!valid_kid(kid))
        throw Error(ErrorCode::bad_input, source, "kid " + shown(kid) + " is not 1-64 characters of [A-Za-z0-9._-]");
}

// Secret text that is wiped before its memory is freed (the PEM of a private key).
class SecretText {
public:
    SecretText() = default;
    SecretText(const SecretText&) = delete;
    SecretText& operator=(const SecretText&) = delete;
    ~SecretText() { wipe(); }
    std::string& str() noexcept { return m_text; }
    void wipe() noexcept {
        if (!m_text.empty()) OPENSSL_cleanse(m_text.data(), m_text.size());
        m_text.clear();
    }

private:
    std::string m_text;
};

struct FdClose {
    int fd = -1;
    ~FdClose() {
        if (fd >= 0) close(fd);
    }
};

// std::error_code is thread-safe where strerror() is not.
std::string errno_text() {
    return std::error_code(errno, std::generic_category()).message();
}

std::string mode_text(mode_t mode) {
    std::array<char, 8> buf{};
    std::snprintf(buf.data(), buf.size(), "%04o", static_cast<unsigned>(mode & 07777));
    return buf.data();
}

// The PEM of `key` written by `write` (PEM_write_bio_PUBKEY or a PKCS#8 writer).
template <typename Write>
std::string pem_of(Write write, const char* what) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    if (!bio) throw std::bad_alloc();
    if (write(bio.get()) != 1) {
        ERR_clear_error();
        throw Error(ErrorCode::internal, "signing key", std::string("cannot write the ") + what);
    }
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    std::string out(data, static_cast<std::size_t>(n));
    if (n > 0) OPENSSL_cleanse(data, static_cast<std::size_t>(n));
    return out;
}

// No passphrase: an encrypted key makes the read fail (a service cannot type one at start-up).
int no_passphrase(char*, int, int, void*) {
    return -1;
}

// The checks that come after the signature is known good are the verifier's; these are the
// ones every host applies whatever it asked for (§7.2), so a signer's bug fails at the signer.
void check_grant_claims(const Claims& c) {
    const auto bad = [](const std::string& what) { throw Error(ErrorCode::bad_input, "grant claims", what); };
    const bool printable = std::all_of(c.jti.begin(), c.jti.end(), [](char ch) { return ch >= 0x20 && ch <= 0x7E; });
    if (c.jti.empty() || c.jti.size() > 128 || !printable) bad("jti " + shown(c.jti) + " is not 1-128 printable ASCII");
    const std::pair<const char*, const std::string*> required[] = {{"rid", &c.rid},   {"nonce", &c.nonce},
                                                                   {"host", &c.host}, {"sub", &c.sub},
                                                                   {"kind", &c.kind}, {"scope", &c.scope}};
    for (const auto& [name, value] : required)
        if (value->empty()) bad(std::string("claim \"") + name + "\" is empty");
    if (c.scope != "command" && c.scope != "session" && c.scope != "login") bad("unknown scope " + shown(c.scope));
    if (c.scope == "command" && c.cmd_sha256.empty()) bad("scope \"command\" needs cmd_sha256");
    if (c.scope != "command" && !c.cmd_sha256.empty()) bad("cmd_sha256 is only for scope \"command\"");
    if (!c.auto_condition.empty()) {
        if (!is_auto_condition(c.auto_condition)) bad("unknown automatic approval " + shown(c.auto_condition));
        if (!c.approvers.empty()) bad("an automatic approval names approvers");
    } else if (c.approvers.empty()) {
        bad("no approvers");
    }
    std::set<std::string> distinct;
    for (const auto& a : c.approvers) {
        if (a.empty()) bad("an approver's name is empty");
        if (!distinct.insert(a).second) bad("approver " + shown(a) + " is named twice");
        if (a == c.sub) bad("approver " + shown(a) + " is the requester");
    }
    if (c.nbf >= c.exp) bad("nbf " + std::to_string(c.nbf) + " is not before exp " + std::to_string(c.exp));
}

} // namespace

void KeyRing::PkeyFree::operator()(EVP_PKEY* key) const noexcept {
    EVP_PKEY_free(key);
}

KeyRing::KeyRing() = default;
KeyRing::~KeyRing() = default;
KeyRing::KeyRing(KeyRing&&) noexcept = default;
KeyRing& KeyRing::operator=(KeyRing&&) noexcept = default;

void KeyRing::add_pem(const std::string& kid, const std::string& pem, const std::string& source) {
    if (!valid_kid(kid))
        throw Error(ErrorCode::bad_input, source, "kid " + shown(kid) + " is not 1-64 characters of [A-Za-z0-9._-]");
    if (contains(kid)) throw Error(ErrorCode::bad_input, source, "kid " + shown(kid) + " is already configured");
    if (pem.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
        throw Error(ErrorCode::bad_input, source, "not a PEM public key (too large)");
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) throw std::bad_alloc();
    std::unique_ptr<EVP_PKEY, PkeyFree> key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    ERR_clear_error(); // the reason is ours to give; leave no stale error for the next caller
    if (!key) throw Error(ErrorCode::bad_input, source, "not a PEM public key (\"-----BEGIN PUBLIC KEY-----\")");
    if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_ED25519) {
        const char* type = EVP_PKEY_get0_type_name(key.get());
        throw Error(ErrorCode::bad_input, source,
                    std::string("key for kid \"") + kid + "\" is " + (type != nullptr ? type : "unknown") +
                        ", not Ed25519 (grants are EdDSA only)");
    }
    m_keys.emplace(kid, std::move(key));
}

void KeyRing::add_file(const std::string& kid, const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorCode::bad_input, path, std::string("cannot open: ") + std::strerror(errno));
    std::string pem;
    std::array<char, 4096> buf{};
    while (in.read(buf.data(), buf.size()) || in.gcount() > 0) {
        pem.append(buf.data(), static_cast<std::size_t>(in.gcount()));
        if (pem.size() > k_max_key_file_bytes)
            throw Error(ErrorCode::bad_input, path, "larger than 64 KiB; not a public key file");
    }
    if (in.bad()) throw Error(ErrorCode::bad_input, path, "read error");
    add_pem(kid, pem, path);
}

bool KeyRing::contains(std::string_view kid) const noexcept {
    return m_keys.find(kid) != m_keys.end();
}

std::vector<std::string> KeyRing::kids() const {
    std::vector<std::string> out;
    out.reserve(m_keys.size());
    for (const auto& entry : m_keys) out.push_back(entry.first);
    return out;
}

bool KeyRing::verify_signature(std::string_view kid, std::string_view message,
                               std::string_view signature) const noexcept {
    const auto it = m_keys.find(kid);
    if (it == m_keys.end()) return false;
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    // Ed25519 is "pure" EdDSA: no digest is named (RFC 8032; OpenSSL takes NULL).
    const bool ok =
        ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, it->second.get()) == 1 &&
        EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                         reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
    if (!ok) ERR_clear_error();
    return ok;
}

Verdict verify(std::string_view jws, const KeyRing& keys, const Expected& expected) {
    try {
        return verify_or_throw(jws, keys, expected);
    } catch (const Rejected& r) {
        return Verdict{false, "grant: " + r.reason, {}};
    } catch (const std::bad_alloc&) {
        throw;
    } catch (const std::exception& e) { // fail closed on anything unforeseen
        return Verdict{false, "grant: internal error: " + text::escape_for_log(e.what()), {}};
    }
}

// ---------------------------------------------------------------------------------------------
// Signing.

SigningKey::SigningKey(std::string kid, EVP_PKEY* key) noexcept : m_kid(std::move(kid)), m_key(key) {}

SigningKey::SigningKey(SigningKey&& other) noexcept
    : m_kid(std::move(other.m_kid)), m_key(std::exchange(other.m_key, nullptr)) {}

SigningKey& SigningKey::operator=(SigningKey&& other) noexcept {
    if (this != &other) {
        EVP_PKEY_free(m_key);
        m_kid = std::move(other.m_kid);
        m_key = std::exchange(other.m_key, nullptr);
    }
    return *this;
}

SigningKey::~SigningKey() {
    EVP_PKEY_free(m_key);
}

SigningKey SigningKey::from_pem(const std::string& kid, const std::string& pem, const std::string& source) {
    check_kid(kid, source);
    if (pem.size() > k_max_key_file_bytes)
        throw Error(ErrorCode::bad_input, source, "larger than 64 KiB; not a private key");
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) throw std::bad_alloc();
    std::unique_ptr<EVP_PKEY, EvpPkeyFree> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
    ERR_clear_error();
    if (!key) {
        const bool encrypted = pem.find("ENCRYPTED") != std::string::npos;
        throw Error(ErrorCode::bad_input, source,
                    encrypted ? "the private key is encrypted; jitgate-server needs it unencrypted (mode 0600, root)"
                              : "not a PEM private key (\"-----BEGIN PRIVATE KEY-----\", PKCS#8)");
    }
    if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_ED25519) {
        const char* type = EVP_PKEY_get0_type_name(key.get());
        throw Error(ErrorCode::bad_input, source,
                    std::string("key for kid \"") + kid + "\" is " + (type != nullptr ? type : "unknown") +
                        ", not Ed25519 (grants are EdDSA only)");
    }
    return SigningKey(kid, key.release());
}

SigningKey SigningKey::load(const std::string& kid, const std::string& path, unsigned allowed_uid) {
    check_kid(kid, path);
    struct stat path_st {};
    if (lstat(path.c_str(), &path_st) != 0)
        throw Error(ErrorCode::bad_input, path, "cannot read the signing key: " + errno_text());
    if (auto problem = config::check_file_security(path, allowed_uid))
        throw Error(ErrorCode::bad_input, path, problem->message);
    // O_NOFOLLOW and fstat: the checks hold for the file actually read, not just the path.
    FdClose fd{open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY)};
    if (fd.fd < 0) throw Error(ErrorCode::bad_input, path, std::string("cannot open: ") + errno_text());
    struct stat st {};
    if (fstat(fd.fd, &st) != 0) throw Error(ErrorCode::bad_input, path, std::string("cannot stat: ") + errno_text());
    if (!S_ISREG(st.st_mode)) throw Error(ErrorCode::bad_input, path, "is not a regular file");
    if (st.st_uid != 0 && st.st_uid != allowed_uid)
        throw Error(ErrorCode::bad_input, path,
                    "is owned by uid " + std::to_string(st.st_uid) + "; a signing key must be owned by root");
    const mode_t mode = st.st_mode & 07777;
    if (mode != 0600 && mode != 0400)
        throw Error(ErrorCode::bad_input, path,
                    "mode " + mode_text(mode) +
                        " lets others read or run the signing key; it must be 0600 or 0400 (fix with: chmod 0600 " +
                        path + ")");
    SecretText pem;
    std::array<char, 4096> buf{};
    for (;;) {
        const ssize_t n = read(fd.fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const std::string error = errno_text();
            OPENSSL_cleanse(buf.data(), buf.size());
            throw Error(ErrorCode::bad_input, path, "read error: " + error);
        }
        if (n == 0) break;
        pem.str().append(buf.data(), static_cast<std::size_t>(n));
        if (pem.str().size() > k_max_key_file_bytes) {
            OPENSSL_cleanse(buf.data(), buf.size());
            throw Error(ErrorCode::bad_input, path, "larger than 64 KiB; not a private key file");
        }
    }
    OPENSSL_cleanse(buf.data(), buf.size());
    return from_pem(kid, pem.str(), path);
}

SigningKey SigningKey::from_seed(const std::string& kid, std::string_view seed) {
    check_kid(kid, "signing key");
    if (seed.size() != 32) throw Error(ErrorCode::bad_input, "signing key", "an Ed25519 seed is 32 bytes");
    EVP_PKEY* key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                                 reinterpret_cast<const unsigned char*>(seed.data()), seed.size());
    if (key == nullptr) {
        ERR_clear_error();
        throw Error(ErrorCode::internal, "signing key", "cannot make an Ed25519 key from the seed");
    }
    return SigningKey(kid, key);
}

SigningKey SigningKey::generate(const std::string& kid) {
    check_kid(kid, "signing key");
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    if (key == nullptr) {
        ERR_clear_error();
        throw Error(ErrorCode::internal, "signing key", "cannot generate an Ed25519 key");
    }
    return SigningKey(kid, key);
}

std::string SigningKey::public_key_pem() const {
    return pem_of([this](BIO* bio) { return PEM_write_bio_PUBKEY(bio, m_key); }, "public key");
}

std::string SigningKey::private_key_pem() const {
    // PEM_write_bio_PrivateKey writes PKCS#8 ("PRIVATE KEY"), unencrypted.
    return pem_of(
        [this](BIO* bio) { return PEM_write_bio_PrivateKey(bio, m_key, nullptr, nullptr, 0, nullptr, nullptr); },
        "private key");
}

std::string SigningKey::sign_bytes(std::string_view message) const {
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    std::string sig(k_ed25519_signature_bytes, '\0');
    std::size_t size = sig.size();
    // Ed25519 is "pure" EdDSA: no digest, one-shot EVP_DigestSign only (RFC 8032).
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, m_key) != 1 ||
        EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &size,
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
        size != k_ed25519_signature_bytes) {
        ERR_clear_error();
        throw Error(ErrorCode::internal, "signing key " + m_kid, "Ed25519 signing failed");
    }
    return sig;
}

std::string sign(const SigningKey& key, const Json& claims) {
    if (!claims.is_object()) throw Error(ErrorCode::bad_input, "grant", "the claims are not a JSON object");
    const Json header = {{"alg", "EdDSA"}, {"kid", key.kid()}, {"typ", "JWT"}};
    std::string payload;
    try {
        // strict: a string that is not valid UTF-8 is an error, never silently replaced.
        payload = claims.dump(-1, ' ', false, Json::error_handler_t::strict);
    } catch (const Json::exception&) {
        throw Error(ErrorCode::bad_input, "grant", "a claim is not valid UTF-8");
    }
    const std::string input = text::base64url_encode(header.dump()) + "." + text::base64url_encode(payload);
    // The signature adds 86 characters and a dot; a longer token would be refused by every host.
    if (input.size() + 1 + 86 > k_max_token_bytes)
        throw Error(ErrorCode::bad_input, "grant",
                    "the token would be larger than " + std::to_string(k_max_token_bytes) + " bytes");
    return input + "." + text::base64url_encode(key.sign_bytes(input));
}

Json grant_claims(const Claims& c) {
    check_grant_claims(c);
    Json j = {{"jti", c.jti},   {"rid", c.rid},     {"nonce", c.nonce},         {"host", c.host}, {"sub", c.sub},
              {"kind", c.kind}, {"scope", c.scope}, {"approvers", c.approvers}, {"nbf", c.nbf},   {"exp", c.exp}};
    if (!c.iss.empty()) j["iss"] = c.iss;
    if (!c.cmd_sha256.empty()) j["cmd_sha256"] = c.cmd_sha256;
    if (c.iat != 0) j["iat"] = c.iat;
    if (!c.auto_condition.empty()) j["auto"] = c.auto_condition;
    return j;
}

std::string sign(const SigningKey& key, const Claims& c) {
    return sign(key, grant_claims(c));
}

bool is_valid_kid(std::string_view kid) noexcept {
    return valid_kid(kid);
}

std::string cmd_sha256(const CommandBinding& b) {
    for (const auto& [name, value] : {std::pair<const char*, const std::string*>{"runas", &b.runas},
                                      {"runas_group", &b.runas_group},
                                      {"cwd", &b.cwd},
                                      {"chroot", &b.chroot},
                                      {"command", &b.command},
                                      {"program", &b.program}})
        if (!text::is_valid_utf8(*value))
            throw Error(ErrorCode::bad_input, "cmd_sha256", std::string(name) + " is not valid UTF-8");
    // nlohmann::json objects keep their keys sorted, and argv < chroot < command < cwd < env <
    // program < runas < runas_group is exactly the order §7.3 fixes; a unit test pins the bytes.
    const Json action = {{"argv", text::argv_to_json(b.argv)},
                         {"chroot", b.chroot},
                         {"command", b.command},
                         {"cwd", b.cwd},
                         {"env", text::argv_to_json(b.env)},
                         {"program", b.program},
                         {"runas", b.runas},
                         {"runas_group", b.runas_group}};
    // Every string is valid UTF-8 (checked above; arg_to_json guarantees it for argv and env),
    // so the strict handler cannot fire; if it ever did, throwing is the fail-closed outcome.
    const std::string bytes = action.dump(-1, ' ', false, Json::error_handler_t::strict);

    return audit::sha256_hex(bytes); // the same digest as the audit chain's
}

std::string new_nonce() {
    std::array<unsigned char, k_nonce_bytes> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
        ERR_clear_error();
        throw Error(ErrorCode::internal, "nonce", "RAND_bytes failed; no request without a fresh nonce");
    }
    return text::base64url_encode(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

} // namespace jitgate::grant_token
