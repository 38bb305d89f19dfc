// lib/grant_token.hpp — the grant verifier: docs/protocol.md §7.
//
// A grant is a compact JWS (EdDSA, Ed25519) that the approval service signs. The host trusts
// nothing in it until the signature verifies with a key from its own config (KeyRing), and
// then nothing that differs from what it asked for (Expected). Every failure is a denial with
// a precise, one-line reason for the audit trail. Also here: the command hash of §7.3 and the
// request nonce, the two values the host puts in a request so that a grant can be bound to it.
// Depends on common/ (text, error), OpenSSL and nlohmann::json; knows nothing of HTTP or config.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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
    std::vector<std::string> approvers;
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
