// lib/grant_token.hpp — the grant verifier: docs/protocol.md §7.
//
// A grant is a compact JWS (EdDSA, Ed25519) that the approval service signs. The host trusts
// nothing in it until the signature verifies with a key from its own config (KeyRing), and
// then nothing that differs from what it asked for (Expected). Every failure is a denial with
// a precise, one-line reason for the audit trail. Also here: the command hash of §7.3 and the
// request nonce, the two values the host puts in a request so that a grant can be bound to it.
// And the signing side, for jitgate-server (and the test peers): SigningKey and sign(), one
// piece of code with the verifier (the same base64url, the same header, the same limits), so
// the server cannot produce a grant the hosts read differently.
// Depends on common/ (text, error), lib/config_file (the key file check), OpenSSL and
// nlohmann::json; knows nothing of HTTP or config.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <openssl/types.h>

namespace jitgate::grant_token {

// Largest grant accepted, in bytes (§7.1: "at most 16 KiB in total").
inline constexpr std::size_t k_max_token_bytes = 16 * 1024;

// A set of Ed25519 public keys by kid, so that several can be live while the service rotates
// its signing key. Owns its keys. Move-only.
// Thread-safety: the const members may be called concurrently (OpenSSL allows shared read-only
// use of an EVP_PKEY); add_pem/add_file need exclusive access.
class KeyRing {
public:
    KeyRing();
    ~KeyRing();
    KeyRing(KeyRing&&) noexcept;
    KeyRing& operator=(KeyRing&&) noexcept;
    KeyRing(const KeyRing&) = delete;
    KeyRing& operator=(const KeyRing&) = delete;

    // Adds the PEM "PUBLIC KEY" (SubjectPublicKeyInfo) in `pem` under `kid`.
    // Throws Error(bad_input) with context `source` (e.g. the config file or key file) when
    // `kid` is not 1-64 characters of [A-Za-z0-9._-], when `kid` is already in the ring, when
    // `pem` holds no PEM public key, or when the key is not Ed25519 (RSA, EC, ... are refused:
    // §7.1 allows EdDSA only). On a throw the ring is unchanged.
    void add_pem(const std::string& kid, const std::string& pem, const std::string& source);
    // Reads the file at `path` (at most 64 KiB) and add_pem's it with `path` as the source.
    // Throws Error(bad_input) naming the file if it cannot be read, and as add_pem does.
    void add_file(const std::string& kid, const std::string& path);

    bool empty() const noexcept { return m_keys.empty(); }
    std::size_t size() const noexcept { return m_keys.size(); }
    bool contains(std::string_view kid) const noexcept;
    // The configured kids, sorted (for the start-up log line).
    std::vector<std::string> kids() const;

    // True if `signature` is a valid Ed25519 signature of `message` by the key named `kid`.
    // False for an unknown kid and on any OpenSSL failure (fail closed). Never throws.
    bool verify_signature(std::string_view kid, std::string_view message, std::string_view signature) const noexcept;

private:
    struct PkeyFree {
        void operator()(EVP_PKEY* key) const noexcept;
    };
    std::map<std::string, std::unique_ptr<EVP_PKEY, PkeyFree>, std::less<>> m_keys;
};

// What this host asked for; a grant must match every member. Empty strings never match:
// verify() refuses an Expected whose request_id, nonce, host, user, kind or scope is empty
// (a caller's bug must not let an empty claim pass).
struct Expected {
    std::string request_id;
    std::string nonce;
    std::string host;
    std::string user;          // the requester; must be `sub`, and must not be among the approvers
    std::string kind;          // "sudo" | "login"
    std::string scope;         // "command" | "session" | "login"
    std::string cmd_sha256;    // cmd_sha256() of the action; required (non-empty) for scope "command"
    int approvals_needed = 1;  // 1..5 (§4); anything else is refused
    std::string issuer;        // empty: `iss` is not compared (but must still be a string if present)
    std::int64_t now_unix = 0; // the host's clock, seconds since the epoch
    std::int64_t skew_s = 30;  // clock tolerance (§7.2)
    // The name of the requester's login session owner (audit login uid), or empty: also must
    // not be among the approvers (a shared account used from bob's session is bob).
    std::string login_user;
    // The automatic approval this host's rule accepts (§7.2 `auto`): "on_call", or empty: none.
    // SECURITY NOTE: a grant with `auto` has no approvers; it is accepted only when it names
    // exactly this condition. Empty refuses every automatic grant (the default: fail closed).
    std::string auto_allowed;
};

// The claims of a verified grant (§7.2). Optional claims that are absent are empty / 0.
struct Claims {
    std::string kid; // from the header: which configured key signed it
    std::string iss;
    std::string jti;
    std::string rid;
    std::string nonce;
    std::string host;
    std::string sub;
    std::string kind;
    std::string scope;
    std::string cmd_sha256;
    std::vector<std::string> approvers; // empty exactly when `auto_condition` is set
    std::string auto_condition;         // `auto`: the condition that approved it ("on_call"), or empty
    std::int64_t iat = 0;
    std::int64_t nbf = 0;
    std::int64_t exp = 0;
};

// The outcome. ok: every check passed and `claims` holds the grant. Not ok: `reason` is one
// printable line starting "grant: " (values from the token escaped and cut to 64 bytes), and
// `claims` is left empty so that nothing unverified can be used by mistake.
struct Verdict {
    bool ok = false;
    std::string reason;
    Claims claims;
};

// Verifies the grant `jws` against `keys` and `expected`.
// Order (every step fails closed): `expected` is complete (see Expected); size <= 16 KiB;
// exactly 3 non-empty, canonical base64url parts; the header is a JSON object without
// duplicate members, with alg exactly "EdDSA", no crit/jku/jwk/x5u/x5c, and a string kid that
// is in `keys`; the Ed25519 signature over "header.payload" verifies; only then is the payload
// parsed (a JSON object without duplicate members) and every claim of §7.2 checked, with
// strict types (strings are strings, times are integers — no floats, no strings — approvers an
// array of distinct non-empty strings).
// Never throws except std::bad_alloc; an unexpected exception becomes a refusal.
// Thread-safe (no shared state beyond the const `keys`).
Verdict verify(std::string_view jws, const KeyRing& keys, const Expected& expected);

// A key id as §7.1 allows it: 1 to 64 characters of [A-Za-z0-9._-]. Thread-safe.
bool is_valid_kid(std::string_view kid) noexcept;

// ---------------------------------------------------------------------------------------------
// Signing (the approval service's side).

// An Ed25519 private key that signs grants, under its kid. Owns its key. Move-only.
// Thread-safety: the const members may be called concurrently.
class SigningKey {
public:
    // Loads the unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----") Ed25519 key at `path`.
    // SECURITY NOTE: whoever can read this file can approve anything on every host that trusts
    // the kid, so the file must pass config::check_file_security(path, allowed_uid) (a regular
    // file, not a symlink, owned by root or `allowed_uid`, not group/world-writable) AND have
    // mode exactly 0600 or 0400 (nobody else may even read it). The open file is checked again
    // with fstat, so a file swapped after the path check is caught.
    // Throws Error(bad_input) with context `path` naming what is wrong and how to fix it
    // (ownership, mode, not a key, encrypted, not Ed25519, larger than 64 KiB, kid not 1-64
    // characters of [A-Za-z0-9._-]). Never leaves the key's text in freed memory.
    static SigningKey load(const std::string& kid, const std::string& path, unsigned allowed_uid = 0);
    // From PEM text (no file checks: a key made in memory); `source` names it in errors.
    // Throws Error(bad_input) as load() does for the content.
    static SigningKey from_pem(const std::string& kid, const std::string& pem, const std::string& source);
    // From the 32-byte RFC 8032 private key (the seed): deterministic keys for test vectors and
    // the fuzzers. Throws Error(bad_input) if `seed` is not 32 bytes or `kid` is bad.
    static SigningKey from_seed(const std::string& kid, std::string_view seed);
    // A fresh key from OpenSSL's RNG. Throws Error(bad_input) for a bad kid, Error(internal) if
    // OpenSSL fails.
    static SigningKey generate(const std::string& kid);

    SigningKey(SigningKey&&) noexcept;
    SigningKey& operator=(SigningKey&&) noexcept;
    SigningKey(const SigningKey&) = delete;
    SigningKey& operator=(const SigningKey&) = delete;
    ~SigningKey();

    const std::string& kid() const noexcept { return m_kid; }
    // The SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----"): what hosts list under
    // approval.service.public_keys, and what KeyRing::add_pem reads. Throws Error(internal).
    std::string public_key_pem() const;
    // The PKCS#8 PEM of the private key (keygen writes it). Secret: never log it; the caller
    // should OPENSSL_cleanse it when done. Throws Error(internal).
    std::string private_key_pem() const;
    // The 64-byte Ed25519 signature of `message`. Throws Error(internal) if OpenSSL fails.
    // For sign() and for test peers that must build malformed tokens; a service signs grants
    // with sign().
    std::string sign_bytes(std::string_view message) const;

private:
    SigningKey(std::string kid, EVP_PKEY* key) noexcept;
    std::string m_kid;
    EVP_PKEY* m_key = nullptr; // owned
};

// The compact JWS of §7.1 over `claims`: header {"alg":"EdDSA","kid":<key.kid()>,"typ":"JWT"},
// both parts as compact JSON (sorted keys) in the verifier's base64url, the Ed25519 signature.
// `claims` is signed as given (see grant_claims() for a checked set). Throws Error(bad_input)
// if `claims` is not a JSON object, holds a string that is not valid UTF-8, or the token would
// exceed k_max_token_bytes (the hosts would refuse it); Error(internal) if OpenSSL fails.
// Thread-safe.
std::string sign(const SigningKey& key, const nlohmann::json& claims);

// The claims object of §7.2 from `c` (c.kid is ignored: it is the signing key's). `iss` and
// `cmd_sha256` are left out when empty; `iat` when 0. Checks what every host would check
// regardless of its request, so a signer's bug fails here rather than on the host: jti 1-128
// printable ASCII; rid, nonce, host, sub, kind, scope non-empty; scope command|session|login;
// cmd_sha256 set exactly for scope command; approvers non-empty, distinct, no empty name and
// not the requester (`sub`), or, for an automatic approval (`auto_condition` "on_call"), no
// approvers at all; nbf < exp. Throws Error(bad_input) naming the first bad claim.
nlohmann::json grant_claims(const Claims& c);
// sign(key, grant_claims(c)).
std::string sign(const SigningKey& key, const Claims& c);

// Everything a grant of scope command binds (§7.3).
struct CommandBinding {
    std::string runas;       // run-as user
    std::string runas_group; // run-as group (sudo -g, else the run-as user's)
    std::string cwd;         // where the command starts (sudo -D), relative to chroot if set
    std::string chroot;      // sudo -R, or empty
    std::string command;     // the path sudo executes
    std::string program;     // its canonical path (empty if it could not be resolved)
    std::vector<std::string> argv;
    std::vector<std::string> env; // binding::bound_env(): sorted "NAME=value"
};

// §7.3: lowercase hex SHA-256 of
// {"argv":[...],"chroot":"...","command":"...","cwd":"...","env":[...],"program":"...","runas":"...","runas_group":"..."}
// (that key order, no whitespace, nlohmann's JSON string escaping, each argv and env element
// in the wire form of text::arg_to_json). Throws Error(bad_input) if a string member is not
// valid UTF-8 — §7.3 gives those no byte-exact form, and a lossy one would let two different
// actions share a hash; the caller denies. Throws Error(internal) if OpenSSL fails.
std::string cmd_sha256(const CommandBinding& b);

// A fresh request nonce (§3): 32 bytes from RAND_bytes, base64url without padding (43 chars).
// Throws Error(internal) if the RNG fails; never returns a weak nonce.
std::string new_nonce();

} // namespace jitgate::grant_token
