// server/http/listener.cpp — Listener (evhttp over OpenSSL bufferevents) and Reply.
//
// libevent 2.1's evhttp has three traps this file works around, each marked where it is:
//  1. evhttp stops reading a connection once a request is read, so a client that goes away
//     while its request is parked is not seen until the answer is written. We read again while
//     parked, with our own read callback (evhttp's would abort the process on data it does not
//     expect in that state), so a close reaches evhttp's error callback and our close callback.
//  2. When the client goes away, evhttp frees the connection; a parked request is either handed
//     to us (EOF, timeout: req->evcon is NULL, we must free it) or freed by evhttp right after
//     the close callback (evhttp_free). The close callback tells the two apart and forgets the
//     request either way: nothing here touches an evhttp_request after its connection closed.
//  3. evhttp 2.1 has no connection limit and treats a NULL from the bufferevent callback as "use
//     plain TCP". Beyond the limit (or when OpenSSL cannot make a session) the callback returns
//     a bufferevent that cannot take the socket, and evhttp closes it; never plain HTTP.
//  4. That callback is not told the peer's address (evhttp 2.1 has no hook that is), so the
//     per-address limit is checked just after it: the callback queues the new connection and
//     activates an event that runs in the same pass of the loop, before the socket is first
//     read; over the limit, the socket is shut down there, so evhttp sees an EOF at once and
//     frees the connection as for a client that left without a word (no TLS work was done).
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <system_error>
#include <unordered_map>
#include <vector>

#include <jitgate/error.hpp>

#include "server/http/http.hpp"
#include "server/http/internal.hpp"

namespace jitgate::server::http {

namespace {

// The open TLS connections of one listener, in all and per source address. Shared with every
// connection's SSL object, whose ex_data free callback counts it down: an SSL may be freed
// after its Listener is gone. Loop thread only.
struct ConnectionCount {
    std::size_t open = 0;
    std::size_t max = 0;
    std::size_t max_per_address = 0; // 0: no limit
    std::unordered_map<std::string, std::size_t> per_address;
};

// One accepted connection, owned by its SSL's ex_data (so it ends exactly when the SSL does).
struct Connection {
    std::shared_ptr<ConnectionCount> count;
    bufferevent* bev = nullptr; // alive as long as the SSL (which the bufferevent frees)
    std::string address;        // counted under this address once checked; empty before
    explicit Connection(std::shared_ptr<ConnectionCount> c) : count(std::move(c)) { ++count->open; }
    ~Connection() {
        if (count->open > 0) --count->open;
        if (address.empty()) return;
        const auto it = count->per_address.find(address);
        if (it != count->per_address.end() && --it->second == 0) count->per_address.erase(it);
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
};

void count_down(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/, void* /*argp*/) {
    delete static_cast<std::shared_ptr<Connection>*>(ptr);
}

// The per-address limit's key of a connected socket's peer (detail::address_key). Empty if unknown.
std::string peer_address(int fd, bool per_ipv6_64) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    if (fd < 0 || ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
    return detail::address_key(ss, per_ipv6_64);
}

int connection_index() {
    static const int index = [] {
        const int i = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, &count_down);
        if (i < 0) throw Error(ErrorCode::internal, "TLS", "cannot register connection data");
        return i;
    }();
    return index;
}

timeval to_timeval(std::chrono::seconds s) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(s.count() > 0 ? s.count() : 1);
    return tv;
}

bool is_token_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool valid_header(const std::string& name, const std::string& value) {
    if (name.empty()) return false;
    for (const char c : name)
        if (c == '\0' || !is_token_char(c)) return false;
    for (const char c : value)
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return false;
    return true;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
        if (std::tolower(x) != std::tolower(y)) return false;
    }
    return true;
}

// The headers the layer owns: set on every response, never taken from a handler.
bool layer_header(std::string_view name) {
    return iequals(name, "Content-Length") || iequals(name, "Cache-Control") ||
           iequals(name, "X-Content-Type-Options") || iequals(name, "Transfer-Encoding") || iequals(name, "Connection");
}

// Writes `response` on `req` (which evhttp then owns and frees). A response the layer cannot
// send as given (bad status or header) becomes a 500, and the reason is logged.
void write_response(evhttp_request* req, Response response) {
    evkeyvalq* out = evhttp_request_get_output_headers(req);
    bool ok = response.status >= 100 && response.status <= 599;
    if (!ok) detail::log("handler answered with status " + std::to_string(response.status) + "; sent 500");
    for (const auto& [name, value] : response.headers) {
        if (!ok) break;
        if (layer_header(name)) continue;
        if (!valid_header(name, value) || evhttp_add_header(out, name.c_str(), value.c_str()) != 0) {
            detail::log("handler set an invalid header '" + name + "'; sent 500");
            ok = false;
        }
    }
    if (!ok) {
        evhttp_clear_headers(out);
        response = text_response(500, "text/plain; charset=utf-8", "internal error\n");
        evhttp_add_header(out, "Content-Type", "text/plain; charset=utf-8");
    }
    evhttp_add_header(out, "Cache-Control", "no-store");
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(out, "Content-Length", std::to_string(response.body.size()).c_str());
    evbuffer* body = evbuffer_new();
    if (body == nullptr || evbuffer_add(body, response.body.data(), response.body.size()) != 0) {
        if (body != nullptr) evbuffer_free(body);
        // Out of memory: close rather than send a wrong Content-Length.
        evhttp_send_reply(req, 500, nullptr, nullptr);
        return;
    }
    evhttp_send_reply(req, response.status, nullptr, body);
    evbuffer_free(body);
}

const char* method_name(evhttp_cmd_type type) {
    switch (type) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    default:
        return nullptr; // evhttp_set_allowed_methods keeps the others out
    }
}

} // namespace

// One parked request. Owned by its Reply; registered as the connection's close callback
// argument while unanswered (every path that ends the State clears that registration first).
struct Reply::State : std::enable_shared_from_this<Reply::State> {
    evhttp_request* req = nullptr;     // null once answered or gone
    evhttp_connection* conn = nullptr; // idem
    timeval read_timeout{};
    timeval write_timeout{};
    std::function<void()> on_gone;
    bool answered = false;
    bool gone = false;

    ~State() {
        if (req != nullptr && !answered && !gone) {
            detail::log("a request was dropped unanswered; sent 500");
            answered = true;
            detail::guarded("reply",
                            [&] { deliver(text_response(500, "text/plain; charset=utf-8", "internal error\n")); });
        }
    }

    void deliver(Response response) {
        evhttp_request* r = req;
        evhttp_connection* c = conn;
        req = nullptr;
        conn = nullptr;
        evhttp_connection_set_closecb(c, nullptr, nullptr);
        // Parked, the connection had no read timeout (trap 1); keep-alive gets it back.
        bufferevent_set_timeouts(evhttp_connection_get_bufferevent(c), &read_timeout, &write_timeout);
        write_response(r, std::move(response));
    }

    // evhttp's close callback: the connection is being freed (trap 2).
    static void on_close(evhttp_connection* c, void* arg) noexcept {
        auto* self = static_cast<State*>(arg);
        evhttp_connection_set_closecb(c, nullptr, nullptr);
        if (self->req != nullptr && evhttp_request_get_connection(self->req) == nullptr)
            evhttp_request_free(self->req); // handed to us by evhttp (EOF, timeout)
        self->req = nullptr;
        self->conn = nullptr;
        self->gone = true;
        auto keep = self->shared_from_this(); // on_gone may destroy the Reply
        auto callback = std::move(self->on_gone);
        self->on_gone = nullptr;
        if (callback) detail::guarded("on_gone", callback);
    }

    // Trap 1: data while parked (a pipelined request) is left for after the answer; reading
    // stops, so only a close that comes first is seen.
    static void on_parked_read(bufferevent* bev, void*) noexcept { bufferevent_disable(bev, EV_READ); }
};

Reply::Reply(std::shared_ptr<State> state) : m_state(std::move(state)) {}
Reply::~Reply() = default;
Reply::Reply(Reply&&) noexcept = default;
Reply& Reply::operator=(Reply&& other) noexcept {
    if (this != &other) m_state = std::move(other.m_state); // the old one answers 500 if it must
    return *this;
}

void Reply::send(Response response) {
    if (!m_state) {
        detail::log("send() on an empty Reply; ignored");
        return;
    }
    if (m_state->answered) {
        detail::log("a request was answered twice; the second answer is ignored");
        return;
    }
    m_state->answered = true;
    m_state->on_gone = nullptr;
    if (m_state->gone) return;
    m_state->deliver(std::move(response));
}

bool Reply::gone() const noexcept {
    return m_state && m_state->gone;
}
bool Reply::answered() const noexcept {
    return m_state && m_state->answered;
}

void Reply::on_gone(std::function<void()> callback) {
    if (!m_state || m_state->answered) return;
    if (m_state->gone) {
        // Already gone: called now, so a late on_gone() is never silently lost.
        if (callback) detail::guarded("on_gone", callback);
        return;
    }
    m_state->on_gone = std::move(callback);
}

struct Listener::Impl {
    EventLoop& loop;
    Limits limits;
    Handler handler;
    bool host_listener = false;
    detail::SslCtxPtr ctx;
    evhttp* http = nullptr;
    std::uint16_t port = 0;
    timeval read_timeout{};
    timeval write_timeout{};
    std::shared_ptr<ConnectionCount> count = std::make_shared<ConnectionCount>();
    // Trap 4: connections accepted but not yet checked against the per-address limit, and the
    // event that checks them (activated by on_connection).
    std::vector<std::weak_ptr<Connection>> unchecked;
    event* check_event = nullptr;
    std::string name; // "hosts" or "web", for logs

    Impl(EventLoop& l, const Limits& lim, Handler h) : loop(l), limits(lim), handler(std::move(h)) {}
    ~Impl() {
        if (check_event != nullptr) event_free(check_event);
    }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    // Trap 3: a bufferevent that evhttp cannot give a socket to; it then closes the socket.
    static bufferevent* refusal(event_base* base) noexcept {
        bufferevent* pair[2] = {nullptr, nullptr};
        if (bufferevent_pair_new(base, BEV_OPT_CLOSE_ON_FREE, pair) != 0) return nullptr;
        bufferevent_free(pair[1]);
        return pair[0];
    }

    static bufferevent* on_connection(event_base* base, void* arg) noexcept {
        auto* self = static_cast<Impl*>(arg);
        try {
            if (self->count->open >= self->count->max) {
                detail::log_refusal(self->name + " global", "connection to the " + self->name + " listener refused: " +
                                                                std::to_string(self->count->open) +
                                                                " connections open, the limit");
                return refusal(base);
            }
            SSL* ssl = SSL_new(self->ctx.get());
            if (ssl == nullptr) return refusal(base);
            auto* holder = new std::shared_ptr<Connection>(std::make_shared<Connection>(self->count));
            const std::weak_ptr<Connection> connection = *holder;
            if (SSL_set_ex_data(ssl, connection_index(), holder) != 1) {
                delete holder;
                SSL_free(ssl);
                return refusal(base);
            }
            // Frees the SSL (and so counts down) on failure and when the connection ends.
            bufferevent* bev =
                bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
            if (bev == nullptr) return refusal(base);
            if (self->count->max_per_address > 0) {
                connection.lock()->bev = bev;
                self->unchecked.push_back(connection);
                event_active(self->check_event, EV_TIMEOUT, 1); // trap 4: runs in this pass of the loop
            }
            return bev;
        } catch (...) {
            return refusal(base);
        }
    }

    // Trap 4: the per-address limit, for the connections accepted since the last call. Each is
    // counted under its peer's address, or shut down (before any read: no TLS work) and logged.
    static void on_check(evutil_socket_t, short, void* arg) noexcept {
        auto* self = static_cast<Impl*>(arg);
        std::vector<std::weak_ptr<Connection>> batch;
        batch.swap(self->unchecked);
        for (const auto& weak : batch) {
            const std::shared_ptr<Connection> c = weak.lock();
            if (!c || c->bev == nullptr) continue; // already gone
            detail::guarded("connection check", [&] {
                const int fd = static_cast<int>(bufferevent_getfd(c->bev));
                std::string address = peer_address(fd, self->limits.per_ipv6_64);
                // SECURITY NOTE: an address we cannot read is refused (fail closed).
                std::size_t& n = self->count->per_address[address.empty() ? std::string("?") : address];
                if (address.empty() || n >= self->count->max_per_address) {
                    if (n == 0) self->count->per_address.erase(address.empty() ? std::string("?") : address);
                    detail::log_refusal(
                        self->name + " per-address",
                        "connection from " + (address.empty() ? std::string("an unknown address") : address) +
                            " to the " + self->name + " listener refused: " + std::to_string(n) +
                            " connections open from that address, the limit (" + self->name +
                            ".max_connections_per_address: " + std::to_string(self->count->max_per_address) + ")");
                    if (fd >= 0) ::shutdown(fd, SHUT_RDWR); // evhttp sees EOF and frees the connection
                    return;
                }
                ++n;
                c->address = std::move(address);
            });
        }
    }

    // Answers `req` at once with the layer's own headers (errors found before any handler).
    static void answer_now(evhttp_request* req, int status, const char* message) {
        write_response(req, text_response(status, "text/plain; charset=utf-8", std::string(message) + "\n"));
    }

    static void on_request(evhttp_request* req, void* arg) noexcept {
        auto* self = static_cast<Impl*>(arg);
        evhttp_connection* conn = evhttp_request_get_connection(req);
        bufferevent* bev = conn != nullptr ? evhttp_connection_get_bufferevent(conn) : nullptr;
        SSL* ssl = bev != nullptr ? bufferevent_openssl_get_ssl(bev) : nullptr;
        if (ssl == nullptr) {
            // Trap 3's other side: never serve a request that did not come over TLS.
            detail::log("a request without TLS was refused");
            if (conn != nullptr) evhttp_connection_free(conn);
            return;
        }
        std::shared_ptr<Reply::State> state;
        Request request;
        try {
            const char* method = method_name(evhttp_request_get_command(req));
            if (method == nullptr) return answer_now(req, 405, "method not allowed");
            request.method = method;
            request.client = detail::identity_of(ssl);
            if (self->host_listener && request.client.names.empty())
                return answer_now(req, 403, "the client certificate names no host");
            const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
            const char* raw_path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
            auto path = detail::decode_path(raw_path != nullptr ? raw_path : "");
            if (!path) return answer_now(req, 400, "bad path");
            request.path = std::move(*path);
            const char* raw_query = uri != nullptr ? evhttp_uri_get_query(uri) : nullptr;
            auto query = detail::decode_query(raw_query != nullptr ? raw_query : "");
            if (!query) return answer_now(req, 400, "bad query");
            request.query = std::move(*query);
            const evkeyvalq* headers = evhttp_request_get_input_headers(req);
            for (const evkeyval* h = headers->tqh_first; h != nullptr; h = h->next.tqe_next) {
                std::string name = h->key;
                for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                request.headers.emplace_back(std::move(name), h->value);
            }
            evbuffer* in = evhttp_request_get_input_buffer(req);
            const std::size_t n = evbuffer_get_length(in);
            std::size_t limit = self->limits.max_body;
            for (const std::string& large : self->limits.large_body_paths)
                if (request.path == large) limit = std::max(limit, self->limits.max_large_body);
            if (n > limit) return answer_now(req, 413, "request body too large");
            request.body.resize(n);
            // Removed, not copied: a body waiting for its answer (an audit batch queued for its
            // check) is held once, not twice.
            if (n > 0 && evbuffer_remove(in, request.body.data(), n) != static_cast<int>(n))
                return answer_now(req, 500, "internal error");
            char* address = nullptr;
            ev_uint16_t peer_port = 0;
            evhttp_connection_get_peer(conn, &address, &peer_port);
            request.peer_address = address != nullptr ? address : "";

            state = std::make_shared<Reply::State>();
            state->req = req;
            state->conn = conn;
            state->read_timeout = self->read_timeout;
            state->write_timeout = self->write_timeout;
        } catch (const std::exception& e) {
            detail::log(std::string("request: ") + e.what());
            return answer_now(req, 500, "internal error");
        }
        // Trap 1: watch for the close while parked, without a read timeout (the handler's own
        // timer bounds a long poll) and with a read callback that ignores early data.
        evhttp_connection_set_closecb(conn, &Reply::State::on_close, state.get());
        bufferevent_data_cb read_cb = nullptr, write_cb = nullptr;
        bufferevent_event_cb event_cb = nullptr;
        void* cb_arg = nullptr;
        bufferevent_getcb(bev, &read_cb, &write_cb, &event_cb, &cb_arg);
        bufferevent_setcb(bev, &Reply::State::on_parked_read, write_cb, event_cb, cb_arg);
        bufferevent_set_timeouts(bev, nullptr, &self->write_timeout);
        bufferevent_enable(bev, EV_READ);

        Reply reply(std::move(state));
        detail::guarded("handler", [&] { self->handler(std::move(request), std::move(reply)); });
        // A Reply the handler did not keep ends here: answered 500 by ~State if unanswered.
    }
};

Listener::Listener(EventLoop& loop, const std::string& address, std::uint16_t port, const TlsSettings& tls,
                   const Limits& limits, Handler handler)
    : m_impl(std::make_unique<Impl>(loop, limits, std::move(handler))) {
    auto& impl = *m_impl;
    impl.ctx = detail::make_server_context(tls);
    impl.host_listener = !tls.client_ca_file.empty();
    impl.name = impl.host_listener ? "hosts" : "web";
    impl.count->max = limits.max_connections;
    impl.count->max_per_address = limits.max_connections_per_address;
    impl.read_timeout = to_timeval(limits.read_timeout);
    impl.write_timeout = to_timeval(limits.write_timeout);
    (void)connection_index(); // registered before the first connection, where throwing is fine

    sockaddr_storage ss{};
    socklen_t ss_len = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        ss_len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        ss_len = sizeof(sockaddr_in6);
    } else {
        throw Error(ErrorCode::bad_input, "listen", "'" + address + "' is not an IPv4 or IPv6 address");
    }
    const std::string where = "listen " + address + " port " + std::to_string(port);

    impl.check_event = event_new(loop.native(), -1, 0, &Impl::on_check, &impl);
    if (impl.check_event == nullptr) throw Error(ErrorCode::internal, where, "cannot create the connection check");
    impl.http = evhttp_new(loop.native());
    if (impl.http == nullptr) throw Error(ErrorCode::internal, where, "cannot create the HTTP server");
    evhttp_set_bevcb(impl.http, &Impl::on_connection, &impl);
    evhttp_set_gencb(impl.http, &Impl::on_request, &impl);
    evhttp_set_allowed_methods(impl.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
    evhttp_set_max_body_size(impl.http, static_cast<ev_ssize_t>(std::max(limits.max_body, limits.max_large_body)));
    evhttp_set_max_headers_size(impl.http, static_cast<ev_ssize_t>(limits.max_headers));
    // Handshake and first request: the read timeout for both directions (evhttp 2.1 has one
    // value); each request then sets read and write apart on its connection.
    evhttp_set_timeout_tv(impl.http, &impl.read_timeout);
    evhttp_set_default_content_type(impl.http, "text/plain; charset=utf-8");
    // A body over the limit is read and dropped, so the client sees the 413 instead of a reset.
    evhttp_set_flags(impl.http, EVHTTP_SERVER_LINGERING_CLOSE);

    // SOMAXCONN-sized backlog: a fleet reconnecting after a restart arrives all at once.
    evconnlistener* listener = evconnlistener_new_bind(
        loop.native(), nullptr, nullptr, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 4096,
        reinterpret_cast<sockaddr*>(&ss), static_cast<int>(ss_len));
    if (listener == nullptr) {
        const int error = errno;
        evhttp_free(impl.http);
        throw Error(ErrorCode::internal, where, "cannot listen: " + std::system_category().message(error));
    }
    // No Nagle: an answer is one small write that must leave at once (a parked poll's grant,
    // a status); with Nagle and the peer's delayed ACK each took ~40 ms more (docs/PERFORMANCE.md).
    // Linux gives accepted sockets the listener's TCP_NODELAY.
    const int one = 1;
    if (setsockopt(evconnlistener_get_fd(listener), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        detail::log("cannot set TCP_NODELAY on the listening socket; answers may wait for the peer's ACK");
    if (evhttp_bind_listener(impl.http, listener) == nullptr) {
        evconnlistener_free(listener);
        evhttp_free(impl.http);
        throw Error(ErrorCode::internal, where, "cannot attach the HTTP server");
    }
    sockaddr_storage bound{};
    socklen_t bound_len = sizeof(bound);
    if (getsockname(evconnlistener_get_fd(listener), reinterpret_cast<sockaddr*>(&bound), &bound_len) == 0)
        impl.port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                      : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

Listener::~Listener() {
    // Frees every connection: parked Replies see their close callback and become gone().
    if (m_impl->http != nullptr) evhttp_free(m_impl->http);
}

std::uint16_t Listener::port() const noexcept {
    return m_impl->port;
}

namespace detail {

std::string address_key(const sockaddr_storage& peer, bool per_ipv6_64) {
    char text[INET6_ADDRSTRLEN] = {};
    if (peer.ss_family == AF_INET) {
        const auto* v4 = reinterpret_cast<const sockaddr_in*>(&peer);
        if (inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text)) == nullptr) return "";
        return text;
    }
    if (peer.ss_family != AF_INET6) return "";
    in6_addr six = reinterpret_cast<const sockaddr_in6*>(&peer)->sin6_addr;
    // An IPv4-mapped IPv6 address is written as the IPv4 one (one client, one key).
    if (IN6_IS_ADDR_V4MAPPED(&six)) {
        if (inet_ntop(AF_INET, &six.s6_addr[12], text, sizeof(text)) == nullptr) return "";
        return text;
    }
    if (per_ipv6_64) std::memset(&six.s6_addr[8], 0, 8);
    if (inet_ntop(AF_INET6, &six, text, sizeof(text)) == nullptr) return "";
    return per_ipv6_64 ? std::string(text) + "/64" : std::string(text);
}

} // namespace detail

} // namespace jitgate::server::http
