// lib/audit_event.cpp — canonical bytes and SHA-256 of audit events.
#include "lib/audit_event.hpp"

#include <openssl/evp.h>

#include <array>

#include "jitgate/error.hpp"

namespace jitgate::audit {

std::string canonical_bytes(const Json& event_without_hash) {
    return event_without_hash.dump(-1, ' ', false, Json::error_handler_t::strict);
}

std::string sha256_hex(const std::string& bytes) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int md_len = 0;
    // Fetched once: EVP_sha256() makes OpenSSL 3 look the algorithm up again on every digest
    // (half the cost of hashing an event). Thread-safe static initialisation; never freed.
    static EVP_MD* const fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    const EVP_MD* const sha256 = fetched != nullptr ? fetched : EVP_sha256();
    if (EVP_Digest(bytes.data(), bytes.size(), md.data(), &md_len, sha256, nullptr) != 1)
        throw Error(ErrorCode::internal, "audit", "SHA-256 failed (OpenSSL EVP_Digest)");
    static constexpr char k_hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * md_len);
    for (unsigned int i = 0; i < md_len; ++i) {
        out += k_hex[md[i] >> 4];
        out += k_hex[md[i] & 0x0F];
    }
    return out;
}

} // namespace jitgate::audit
