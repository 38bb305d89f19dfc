// server/http/http.hpp — the HTTP(S) layer of jitgate-server, on libevent (evhttp over OpenSSL
// bufferevents): one event loop thread holds every connection, so a long poll costs a parked
// reply and a timer, never a thread. Listeners speak TLS 1.2+ only; a listener for hosts asks
// for and verifies a client certificate (mutual TLS, docs/protocol.md §2), a listener for
// browsers does not.
//
// Threading: everything here runs on the loop thread, except EventLoop::post() and
// EventLoop::stop(), which any thread may call. Handlers are called on the loop thread and
// must not block for long (the database calls of a request are the accepted exception).
// Reply, Timer and the watch handle are used on the loop thread only (from another thread:
// post() a function that uses them). Declare the EventLoop first: a Listener must go before its
// loop (Replies and Timers may outlive both; they are then inert).
// Depends on libevent, OpenSSL, lib/ (check_file_security) and common/; knows nothing of the
// protocol.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct event_base;

namespace jitgate::server::http {

// The verified client certificate of a mutual-TLS connection. Empty `names` means no
// certificate (a browser listener) — a host listener never calls a handler without one (a
// verified certificate without a usable name is answered 403 by the layer).
struct ClientIdentity {
    // The subject CN (only when there is exactly one), then every DNS subject alternative name;
    // a name that is not printable ASCII (NUL, control, non-ASCII) is left out, duplicates too.
    std::vector<std::string> names;
    std::string fingerprint;                       // SHA-256 of the DER certificate, lowercase hex
    std::string subject;                           // the subject as one line (for logs), escaped
    bool may_act_for(std::string_view host) const; // host equals one of `names`, byte for byte
};

using Fields = std::vector<std::pair<std::string, std::string>>;

struct Request {
    std::string method;       // "GET", "POST", ...
    std::string path;         // the decoded path, without the query; never contains "?"
    Fields query;             // decoded name/value pairs, in order; a name may repeat
    Fields headers;           // names in lower case, in order
    std::string body;         // at most Limits::max_body bytes (else the layer answered 413 itself)
    std::string peer_address; // the TCP peer, e.g. "127.0.0.1" or "::1"
    ClientIdentity client;

    const std::string* header(std::string_view lower_case_name) const;   // first one, or null
    std::optional<std::string> query_value(std::string_view name) const; // first one
};

// The layer sets Content-Length, `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`
// on every response and ignores those (and Transfer-Encoding, Connection) in `headers`. A status
// outside 100..599 or a header name/value that is not valid HTTP (CR, LF, NUL) sends a 500.
struct Response {
    int status = 200;
    Fields headers; // Content-Type among them
    std::string body;
};

// The right to answer one request, exactly once. Move-only. A Reply destroyed without send()
// answers 500 (a bug must not leave a client hanging); a second send() is ignored (logged). If
// the client went away, send() is a no-op; gone() says so, and on_gone() (if set) is called
// once, on the loop thread, when the connection closes before the answer (at once if it had
// closed already; never after send()). The close is seen while the request is parked, unless
// the client sent more data first (a pipelined request): then it is seen at send().
// Loop thread only.
class Reply {
public:
    Reply() = default;
    ~Reply();
    Reply(Reply&&) noexcept;
    Reply& operator=(Reply&&) noexcept;
    Reply(const Reply&) = delete;
    Reply& operator=(const Reply&) = delete;

    void send(Response response);
    bool gone() const noexcept;
    bool answered() const noexcept;
    void on_gone(std::function<void()> callback);

    struct State; // the layer's; opaque here
    explicit Reply(std::shared_ptr<State> state);

private:
    std::shared_ptr<State> m_state;
};

using Handler = std::function<void(Request&&, Reply&&)>;

// A one-shot timer on the loop. Destroying or cancel()ing it before it fires means it never
// fires. Move-only.
class Timer {
public:
    Timer() = default;
    ~Timer();
    Timer(Timer&&) noexcept;
    Timer& operator=(Timer&&) noexcept;
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;
    void cancel() noexcept;
    bool armed() const noexcept;

    struct State;
    explicit Timer(std::shared_ptr<State> state);

private:
    std::shared_ptr<State> m_state;
};

// The constructor sets SIGPIPE to ignored for the process: a client that closes while its
// answer is written must not kill the server (OpenSSL writes without MSG_NOSIGNAL).
class EventLoop {
public:
    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // Runs until stop(). Exceptions thrown by callbacks are caught, logged and do not stop it.
    void run();
    void stop() noexcept; // any thread; a stop() before run() is kept
    // Any thread; runs `work` on the loop thread, in order. Work still queued when the loop is
    // destroyed is destroyed without running.
    void post(std::function<void()> work);
    Timer after(std::chrono::milliseconds delay, std::function<void()> callback);
    // Calls `callback` on the loop thread whenever `fd` is readable, until the returned
    // handle is destroyed (used for PostgreSQL's LISTEN socket).
    std::shared_ptr<void> watch_readable(int fd, std::function<void()> callback);
    event_base* native() noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

struct TlsSettings {
    std::string cert_file;      // PEM chain, the server's certificate first
    std::string key_file;       // PEM private key (checked like a config file: root-owned, not group/world-readable)
    std::string client_ca_file; // PEM CAs for client certificates; empty: no client certificate asked
    // PEM CRLs (one or more) of the client CAs; empty: no revocation check. With it, every
    // certificate of a client's chain is checked (a CA without a CRL here fails the handshake).
    std::string client_crl_file;
};

// Reads and checks a CRL file for `tls` (check-config and start-up): one or more PEM CRLs, each
// issued and signed by a CA of tls.client_ca_file, each within its validity (lastUpdate not in
// the future, nextUpdate present and not past). Returns how many CRLs it holds. Throws
// Error(bad_input) naming the file and what is wrong (fail closed: a server with a stale or
// unreadable CRL does not start). Thread-safe.
std::size_t check_client_crl(const TlsSettings& tls);

struct Limits {
    std::size_t max_body = 64 * 1024;
    // Exact paths that take bodies up to max_large_body instead (a host's audit batch, several
    // MiB); every other path keeps max_body. SECURITY NOTE: evhttp reads a body before the
    // handler knows its path, so a body up to the larger limit is buffered on any path of this
    // listener before the 413 (only clients past the TLS handshake get that far: on the hosts
    // listener, hosts with a valid certificate).
    std::vector<std::string> large_body_paths;
    std::size_t max_large_body = 0;
    std::size_t max_headers = 16 * 1024;
    // A client that sends nothing for this long is cut: TLS handshake, request, idle keep-alive
    // (until its first request is read, it applies to writes too: evhttp 2.1 has one value).
    // A parked request has no read timeout: the handler's own timer bounds a long poll.
    std::chrono::seconds read_timeout{30};
    std::chrono::seconds write_timeout{30};
    // Open TLS connections of this listener; one more is closed right after accept().
    std::size_t max_connections = 20000;
    // Open connections from one source address (an IPv4 address; an IPv6 address exactly, or
    // by its /64 with per_ipv6_64); one more is closed right after accept(), before any TLS
    // work. 0: no limit.
    std::size_t max_connections_per_address = 0;
    // SECURITY NOTE: count an IPv6 address by its /64 for max_connections_per_address. One
    // client usually holds a whole /64 and may connect from any address of it, so an exact-
    // address limit does not limit it. On for the browsers' listener; off for the hosts' one,
    // where many servers may share one /64 subnet.
    bool per_ipv6_64 = false;
};

// A listening HTTPS server. Answers these itself, without calling the handler:
//  - 400 for a path with "..", NUL, a control character, '?' or an invalid %-escape, or a bad
//    query (with the layer's headers);
//  - from libevent, without the layer's headers: 413 for a body over the limit, 400 for headers
//    over the limit or a malformed request (evhttp 2.1 has no 431), 501 for a method other
//    than GET, POST, HEAD.
// Refuses a TLS handshake without a valid client certificate when client_ca_file is set, or
// with a revoked one when client_crl_file is set; a refused certificate is logged (stderr and
// syslog, rate-limited). A connection beyond max_connections_per_address is closed before its
// handshake and logged likewise.
// `address` is an IPv4 or IPv6 literal.
// Throws Error(bad_input) naming the file for an unreadable, unsafe or invalid certificate or
// key (or for an address that is not an IP literal), and Error(internal) when it cannot bind
// (ErrorCode has no io). Destroy it on the loop thread or while the loop is not running: its
// connections close and parked Replies become gone().
class Listener {
public:
    Listener(EventLoop& loop, const std::string& address, std::uint16_t port, const TlsSettings& tls,
             const Limits& limits, Handler handler);
    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;
    std::uint16_t port() const noexcept; // the bound port (useful with port 0)

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

// Helpers for handlers.
Response json_response(int status, std::string body);
Response text_response(int status, std::string content_type, std::string body);

} // namespace jitgate::server::http
