// server/http/internal.hpp — private to server/http/: the one log line of the HTTP layer, the
// guard that keeps C++ exceptions out of libevent's C callbacks, the strict decoders of paths
// and queries, and the TLS context and client identity (tls.cpp).
//
// Threading: the decoders are pure and thread-safe; the rest runs on the loop thread.
// Errors: the decoders return nullopt for input they refuse (the listener answers 400); the TLS
// context throws Error(bad_input) naming the file. Not for use outside server/http/.
#pragma once

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "server/http/http.hpp"

namespace jitgate::server::http::detail {

// One line on stderr ("jitgate-server: http: ..."), escaped; never throws.
void log(std::string_view message) noexcept;

// A security-relevant line (a refused connection or certificate) on stderr and syslog
// (LOG_WARNING, the facility of the process's openlog), at most one per `kind` every 10 s: a
// flood must not flood the logs; the next line says how many were held back. Thread-safe.
void log_refusal(std::string_view kind, std::string_view message) noexcept;

// Runs `f`; an exception is logged with `where` and swallowed. For every C callback.
template <class F>
void guarded(const char* where, F&& f) noexcept {
    try {
        f();
    } catch (const std::exception& e) {
        log(std::string(where) + ": " + e.what());
    } catch (...) {
        log(std::string(where) + ": unknown exception");
    }
}

// The decoded path of a request target's raw path: %XX escapes decoded ('+' stays '+').
// Refuses (nullopt) a path that is empty or does not start with '/', an invalid or truncated
// escape, and a decoded path holding "..", a '?', NUL or any other control character.
std::optional<std::string> decode_path(std::string_view raw);

// The decoded name/value pairs of a raw query ("a=1&b=x+y&c"): '+' is a space, %XX decoded,
// a name without '=' has an empty value, empty pieces are skipped. Refuses (nullopt) an
// invalid escape or a decoded NUL.
std::optional<Fields> decode_query(std::string_view raw);

// The key under which a connection from `peer` counts against the per-address limit: the
// numeric IPv4 address ("192.0.2.7"; an IPv4-mapped IPv6 address too), the IPv6 address
// ("2001:db8::1"), or with `per_ipv6_64` its /64 ("2001:db8::/64"). Empty for another family
// or an unreadable address (the caller refuses it).
std::string address_key(const sockaddr_storage& peer, bool per_ipv6_64);

struct SslCtxFree {
    void operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// The server's TLS context: TLS 1.2 minimum, OpenSSL's defaults at security level 2 (ECDHE
// with AEAD ciphers only for TLS 1.2), no renegotiation, buffers released when idle; with a
// client CA file, a client certificate is required and verified against it.
// Throws Error(bad_input) naming the file for an unreadable, unsafe or invalid file.
SslCtxPtr make_server_context(const TlsSettings& tls);

// The identity in the verified peer certificate of `ssl`; empty names when there is none or
// it did not verify. Names with NUL or non-printable characters are left out.
ClientIdentity identity_of(SSL* ssl);

} // namespace jitgate::server::http::detail
