// server/http/tls.cpp — the listeners' TLS context (files checked and loaded) and the client
// identity read from a verified peer certificate.
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>

#include <jitgate/error.hpp>
#include <jitgate/text.hpp>

#include "lib/config_file.hpp"
#include "server/http/internal.hpp"

namespace jitgate::server::http::detail {
namespace {

// OpenSSL's queued errors as one line (and the queue emptied).
std::string openssl_errors() {
    std::string out;
    while (const unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? "unknown OpenSSL error" : out;
}

[[noreturn]] void fail(const std::string& file, const std::string& what) {
    const std::string why = openssl_errors();
    throw Error(ErrorCode::bad_input, file, what + " (" + why + ")");
}

// SECURITY NOTE: the private key must be root's (or the server user's) and readable by nobody else — the same
// rule as a config file (not group/world-writable) plus not group/world-readable.
void check_key_file(const std::string& path) {
    // Owned by root, or by the user the server runs as (systemd User=jitgate-server).
    if (auto problem = config::check_file_security(path, ::geteuid()))
        throw Error(ErrorCode::bad_input, path, problem->message);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw Error(ErrorCode::bad_input, path, "cannot read the private key");
    if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0)
        throw Error(ErrorCode::bad_input, path,
                    "the private key is group- or world-readable; fix with: chmod go-rwx " + path);
}

// A name from a certificate we accept: printable ASCII only (no NUL, control, or non-ASCII
// byte that could make two different names look alike in a log or a comparison).
bool acceptable_name(std::string_view name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

void add_name(std::vector<std::string>& names, std::string name) {
    if (!acceptable_name(name)) return;
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(std::move(name));
}

std::string to_hex(const unsigned char* p, std::size_t n) {
    static const char k_digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(n * 2);
    for (std::size_t i = 0; i < n; ++i) {
        out += k_digits[p[i] >> 4];
        out += k_digits[p[i] & 0x0f];
    }
    return out;
}

struct CrlFree {
    void operator()(X509_CRL* crl) const noexcept { X509_CRL_free(crl); }
};
using CrlPtr = std::unique_ptr<X509_CRL, CrlFree>;
struct X509Free {
    void operator()(X509* x) const noexcept { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

std::string name_text(const X509_NAME* name) {
    std::string out;
    if (BIO* bio = BIO_new(BIO_s_mem())) {
        if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
            char* data = nullptr;
            const long len = BIO_get_mem_data(bio, &data);
            if (len > 0) out = text::escape_for_log(std::string_view(data, static_cast<std::size_t>(len)));
        }
        BIO_free(bio);
    }
    return out.empty() ? "(no name)" : out;
}

// Every PEM certificate of `path` (the client CA file).
std::vector<X509Ptr> read_certificates(const std::string& path) {
    std::vector<X509Ptr> out;
    BIO* bio = BIO_new_file(path.c_str(), "r");
    if (bio == nullptr) fail(path, "cannot read the client CA certificates");
    while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) out.emplace_back(x);
    BIO_free(bio);
    ERR_clear_error(); // the end of the file reads as an error
    return out;
}

// The CRLs of tls.client_crl_file, each checked: PEM, issued and signed by a CA of
// tls.client_ca_file, lastUpdate not in the future, nextUpdate set and not past. Throws
// Error(bad_input) naming the file otherwise.
std::vector<CrlPtr> read_crls(const TlsSettings& tls) {
    const std::string& path = tls.client_crl_file;
    if (tls.client_ca_file.empty())
        throw Error(ErrorCode::bad_input, path, "a CRL file needs the client CA file it belongs to");
    ERR_clear_error();
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        throw Error(ErrorCode::bad_input, path, "cannot read the CRL file (missing, or not a regular file)");
    BIO* bio = BIO_new_file(path.c_str(), "r");
    if (bio == nullptr) fail(path, "cannot read the CRL file");
    std::vector<CrlPtr> crls;
    while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio, nullptr, nullptr, nullptr)) crls.emplace_back(crl);
    // Anything but a clean end of file after the last CRL is a damaged file, not a shorter list.
    const unsigned long last = ERR_peek_last_error();
    const bool clean_end =
        last == 0 || (ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE);
    BIO_free(bio);
    if (!clean_end) fail(path, "cannot parse the CRL file");
    ERR_clear_error();
    if (crls.empty()) throw Error(ErrorCode::bad_input, path, "no CRL in the file (expected PEM \"X509 CRL\" blocks)");

    const std::vector<X509Ptr> cas = read_certificates(tls.client_ca_file);
    for (const CrlPtr& crl : crls) {
        const X509_NAME* issuer = X509_CRL_get_issuer(crl.get());
        const std::string who = "the CRL of " + name_text(issuer);
        const X509* ca = nullptr;
        for (const X509Ptr& c : cas)
            if (X509_NAME_cmp(X509_get_subject_name(c.get()), issuer) == 0) ca = c.get();
        if (ca == nullptr)
            throw Error(ErrorCode::bad_input, path,
                        who + " is not from a CA of the client CA file " + tls.client_ca_file);
        EVP_PKEY* key = X509_get0_pubkey(ca);
        if (key == nullptr || X509_CRL_verify(crl.get(), key) != 1) {
            ERR_clear_error();
            throw Error(ErrorCode::bad_input, path, who + " does not verify with that CA's key");
        }
        if (X509_cmp_current_time(X509_CRL_get0_lastUpdate(crl.get())) > 0)
            throw Error(ErrorCode::bad_input, path, who + " is not valid yet (lastUpdate is in the future)");
        const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl.get());
        if (next == nullptr)
            throw Error(ErrorCode::bad_input, path, who + " has no nextUpdate (it would never go stale)");
        if (X509_cmp_current_time(next) <= 0)
            throw Error(ErrorCode::bad_input, path,
                        who + " has expired (nextUpdate is past): publish a fresh one from the CA and restart");
    }
    return crls;
}

// Logs why a client certificate was refused (revoked, unknown CA, expired, ...). OpenSSL's
// verdict stands: this only reports it.
int log_verify(int ok, X509_STORE_CTX* store) noexcept {
    if (ok == 1) return ok;
    try {
        const int error = X509_STORE_CTX_get_error(store);
        const int depth = X509_STORE_CTX_get_error_depth(store);
        X509* cert = X509_STORE_CTX_get_current_cert(store);
        std::string from;
        auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
        const int fd = ssl != nullptr ? SSL_get_fd(ssl) : -1;
        sockaddr_storage ss{};
        socklen_t len = sizeof(ss);
        char host[64] = {};
        if (fd >= 0 && ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 &&
            ::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof(host), nullptr, 0, NI_NUMERICHOST) == 0)
            from = std::string(" from ") + host;
        std::string serial;
        if (cert != nullptr) {
            if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
                if (char* hex = BN_bn2hex(bn)) {
                    serial = std::string(" serial ") + hex;
                    OPENSSL_free(hex);
                }
                BN_free(bn);
            }
        }
        // One rate-limit window per reason: a flood of one kind does not hide a revoked one.
        log_refusal("client certificate " + std::to_string(error),
                    "client certificate refused" + from + ": " +
                        (cert != nullptr ? name_text(X509_get_subject_name(cert)) : std::string("(none)")) + serial +
                        " at chain depth " + std::to_string(depth) + ": " + X509_verify_cert_error_string(error));
    } catch (...) {
    }
    return ok;
}

} // namespace

SslCtxPtr make_server_context(const TlsSettings& tls) {
    ERR_clear_error();
    SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) fail("TLS", "cannot create a TLS context");
    SSL_CTX_set_security_level(ctx.get(), 2);
    if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1) fail("TLS", "cannot require TLS 1.2");
    // TLS 1.2: forward secrecy and AEAD only. TLS 1.3 keeps OpenSSL's (all good) suites.
    if (SSL_CTX_set_cipher_list(ctx.get(), "ECDHE+AESGCM:ECDHE+CHACHA20") != 1)
        fail("TLS", "cannot set the cipher list");
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    // An idle connection (a parked long poll) gives its read and write buffers back: ~34 KiB
    // each otherwise, which 10,000 hosts cannot afford.
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char k_session_context[] = "jitgate-server";
    SSL_CTX_set_session_id_context(ctx.get(), k_session_context, sizeof(k_session_context) - 1);

    if (tls.cert_file.empty()) throw Error(ErrorCode::bad_input, "TLS", "no certificate file");
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), tls.cert_file.c_str()) != 1)
        fail(tls.cert_file, "cannot load the certificate chain");
    if (tls.key_file.empty()) throw Error(ErrorCode::bad_input, "TLS", "no private key file");
    check_key_file(tls.key_file);
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
        fail(tls.key_file, "cannot load the private key");
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
        fail(tls.key_file, "the private key does not match the certificate " + tls.cert_file);

    if (!tls.client_ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(ctx.get(), tls.client_ca_file.c_str(), nullptr) != 1)
            fail(tls.client_ca_file, "cannot load the client CA certificates");
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca_file.c_str());
        if (names == nullptr) fail(tls.client_ca_file, "no CA certificate in the client CA file");
        SSL_CTX_set_client_CA_list(ctx.get(), names);
        // SECURITY NOTE: fail closed — no certificate, or one that does not chain to these CAs
        // (with the clientAuth purpose, OpenSSL's default on a server), ends the handshake.
        SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, &log_verify);
        SSL_CTX_set_verify_depth(ctx.get(), 4);
    }
    if (!tls.client_crl_file.empty()) {
        // SECURITY NOTE: with a CRL file every certificate of a client's chain is checked
        // against it (CRL_CHECK_ALL): revoked fails the handshake, and so does a CA of the chain
        // without a CRL here or a CRL that expired while the server runs (fail closed).
        X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
        for (const CrlPtr& crl : read_crls(tls))
            if (X509_STORE_add_crl(store, crl.get()) != 1) fail(tls.client_crl_file, "cannot use the CRL");
        if (X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL) != 1)
            fail(tls.client_crl_file, "cannot turn on the revocation check");
    }
    return ctx;
}

ClientIdentity identity_of(SSL* ssl) {
    ClientIdentity id;
    X509* cert = ssl != nullptr ? SSL_get0_peer_certificate(ssl) : nullptr;
    if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return id;

    X509_NAME* subject = X509_get_subject_name(cert);
    // Exactly one CN: with two, which one names the host would be a guess.
    const int cn = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (cn >= 0 && X509_NAME_get_index_by_NID(subject, NID_commonName, cn) < 0) {
        unsigned char* utf8 = nullptr;
        const int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, cn)));
        if (n >= 0) {
            std::string name(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(n));
            OPENSSL_free(utf8);
            add_name(id.names, std::move(name));
        }
    }
    auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    if (sans != nullptr) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
            const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
            if (gn->type != GEN_DNS) continue;
            const ASN1_IA5STRING* dns = gn->d.dNSName;
            add_name(id.names, std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                                           static_cast<std::size_t>(ASN1_STRING_length(dns))));
        }
        GENERAL_NAMES_free(sans);
    }

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (X509_digest(cert, EVP_sha256(), md, &md_len) == 1) id.fingerprint = to_hex(md, md_len);

    if (BIO* bio = BIO_new(BIO_s_mem())) {
        if (X509_NAME_print_ex(bio, subject, 0, XN_FLAG_RFC2253) >= 0) {
            char* data = nullptr;
            const long len = BIO_get_mem_data(bio, &data);
            if (len > 0) id.subject = text::escape_for_log(std::string_view(data, static_cast<std::size_t>(len)));
        }
        BIO_free(bio);
    }
    // Without a fingerprint the certificate cannot be named: treat it as none (fail closed).
    if (id.fingerprint.empty()) id.names.clear();
    return id;
}

} // namespace jitgate::server::http::detail

namespace jitgate::server::http {

std::size_t check_client_crl(const TlsSettings& tls) {
    return detail::read_crls(tls).size();
}

} // namespace jitgate::server::http
