// server/service/keys.hpp — the server's grant signing keys: the set it loads at start-up
// (every key of signing.keys; the active one signs) and `keygen`, which makes a new pair.
//
// The signing itself is lib/grant_token's (SigningKey, sign): the hosts verify with the same
// code. Threading: a loaded KeySet is immutable; its const members may be called from any
// thread. Errors: jitgate::Error(bad_input) naming the file and what to do; never a secret in a
// message. Depends on lib/ and server/config only.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lib/grant_token.hpp"
#include "server/config/config.hpp"

namespace jitgate::server::service {

class KeySet {
public:
    // Loads every key of `signing` with grant_token::SigningKey::load (the file must be owned
    // by root or `allowed_uid` and have mode 0600 or 0400). Throws Error(bad_input) for the
    // first key that cannot be loaded ("signing.keys[1] (kid k2): /path: mode 0644 ..."), for an
    // empty list, a kid listed twice, and an `active` that names no key.
    static KeySet load(const config::Config::Signing& signing, unsigned allowed_uid = 0);
    // From keys already made (tests); same checks as load() for kids and `active`.
    static KeySet from_keys(std::vector<grant_token::SigningKey> keys, const std::string& active);

    // The key that signs new grants. Never null.
    const grant_token::SigningKey& active() const noexcept { return m_keys[m_active]; }
    // The key named `kid`, or null.
    const grant_token::SigningKey* find(std::string_view kid) const noexcept;
    // The kids in config order (for the start-up log line).
    std::vector<std::string> kids() const;
    // grant_token::sign(active(), claims): checks the claims (grant_token::grant_claims) and
    // returns the compact JWS. Throws Error(bad_input) for claims a host would refuse.
    std::string sign(const grant_token::Claims& claims) const;

private:
    KeySet() = default;
    std::vector<grant_token::SigningKey> m_keys;
    std::size_t m_active = 0;
};

// What keygen() wrote.
struct KeygenResult {
    std::string private_key; // <dir>/<kid>.key: PKCS#8 PEM, mode 0600
    std::string public_key;  // <dir>/<kid>.pub: SubjectPublicKeyInfo PEM, mode 0644
    std::string public_pem;  // its content (what hosts list under approval.service.public_keys)
};

// Makes a new Ed25519 pair in the existing directory `dir`: `<kid>.key` (0600) and
// `<kid>.pub` (0644), both created with O_EXCL|O_NOFOLLOW, written and fsync'ed (and the
// directory too). SECURITY NOTE: never overwrites: if either file exists nothing is written
// (a half-made pair is removed), so a typo cannot destroy a key in use. The modes are set
// with fchmod, whatever the umask. Throws Error(bad_input) for a bad kid (1-64 of
// [A-Za-z0-9._-]), a missing directory or an existing file; Error(internal) on I/O errors.
KeygenResult keygen(const std::string& dir, const std::string& kid);

} // namespace jitgate::server::service
