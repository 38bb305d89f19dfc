// server/http/tls.cpp — the listeners' TLS context (files checked and loaded) and the client
// identity read from a verified peer certificate.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
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
        SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
        SSL_CTX_set_verify_depth(ctx.get(), 4);
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
