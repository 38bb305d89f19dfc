#include "daemon/server/server.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/config/load.hpp"
#include "daemon/policy/identity.hpp"
#include "daemon/server/handlers.hpp"
#include "daemon/setup.hpp"
#include "jitgate/admin.hpp"
#include "jitgate/error.hpp"
#include "jitgate/messages.hpp"
#include "jitgate/passwd.hpp"
#include "jitgate/text.hpp"
#include "jitgate/wire.hpp"

namespace jitgate::server {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

constexpr auto k_idle_limit = std::chrono::seconds(30); // no request on a fresh connection
constexpr std::size_t k_max_outbuf = 4 * 1024 * 1024;   // a client that never reads
constexpr int k_max_events = 256;
// SECURITY NOTE: local users must not be able to crowd out sudo and sshd. Non-root peers
// (jitgatectl) get at most k_max_per_user connections and never the last k_root_reserve slots.
constexpr std::size_t k_max_per_user = 16;
constexpr std::size_t k_root_reserve = 256;
// User-controlled text in an error record is cut to this many bytes (before escaping); how
// many of a non-root peer's refusals are recorded is the broker's (audit_budget.hpp).
constexpr std::size_t k_max_error_detail = 256;
// Out of descriptors: at most one record per interval; without a reserve descriptor, accepting
// pauses this long (the listening socket would otherwise wake the loop at once, forever).
constexpr auto k_fd_report_interval = std::chrono::seconds(10);
constexpr auto k_accept_pause = std::chrono::milliseconds(100);
// How long a stop waits for the approval service to take the cancels of waiting requests.
constexpr auto k_shutdown_cancel_limit = std::chrono::seconds(3);

std::string bounded(const std::string& s) {
    if (s.size() <= k_max_error_detail) return text::escape_for_log(s);
    return text::escape_for_log(s.substr(0, k_max_error_detail)) + "...[" + std::to_string(s.size()) + " bytes]";
}

std::string errno_text() {
    return std::strerror(errno);
}

} // namespace

// One client. Implements the broker's Responder by queueing frames.
class Connection final : public broker::Responder {
public:
    Connection(Server& server, int fd, identity::Peer peer)
        : m_server(server), m_fd(fd), m_peer(peer), m_last(Clock::now()) {}

    void notice(const std::string& text, std::int64_t wait_s) override {
        Json m{{"type", msg::k_notice}, {"text", text}};
        if (wait_s >= 0) m["wait_s"] = wait_s;
        send(m);
    }
    void prompt(const std::string& field, const std::string& text, bool echo) override {
        m_last = Clock::now();
        send(Json{{"type", msg::k_prompt}, {"field", field}, {"text", text}, {"echo", echo}});
    }
    void decide(const msg::Decision& decision) override {
        send(msg::to_json(decision));
        m_decided = true; // the session is dropped by the server once the broker has returned
    }
    // The broker ended the conversation (a prompt timed out): the decision goes out with the
    // batch's commit, then the connection closes.
    void hang_up() override { close_after_flush(); }

    void send(const Json& m) {
        if (m_dead) return;
        std::string frame;
        try {
            frame = wire::encode(m);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "jitgated: cannot encode a reply: %s\n", e.what());
            mark_dead();
            return;
        }
        // SECURITY NOTE: the broker's Responder contract (session.hpp): nothing leaves before
        // the audit events recorded so far are durable. Every frame is tagged with the last
        // seq recorded when it was queued and waits until that seq is durable
        // (Server::release_durable), so no one hears of a decision that could still be lost.
        const std::uint64_t wait_for = m_server.m_auditor.last_seq();
        if (m_held.empty()) m_server.m_held.push_back(m_fd);
        m_held += frame;
        // Seqs only grow, so the marks are in order; frames waiting for the same seq share one.
        if (!m_marks.empty() && m_marks.back().first == wait_for)
            m_marks.back().second = m_held.size();
        else
            m_marks.emplace_back(wait_for, m_held.size());
    }

    // Moves out the held frames that wait for events <= durable, and sends them. Returns
    // true if frames stay held (they wait for a later seq).
    bool release(std::uint64_t durable) {
        std::size_t end = 0, k = 0;
        while (k < m_marks.size() && m_marks[k].first <= durable) end = m_marks[k++].second;
        if (k == 0) return !m_held.empty();
        if (end == m_held.size() && m_out.empty()) {
            m_out.swap(m_held);
            m_held.clear();
        } else {
            m_out.append(m_held, 0, end);
            m_held.erase(0, end);
        }
        m_marks.erase(m_marks.begin(), m_marks.begin() + static_cast<std::ptrdiff_t>(k));
        for (auto& mark : m_marks) mark.second -= end;
        if (m_held.empty()) { // nothing held: no capacity kept while the client waits (issue 17)
            std::string().swap(m_held);
            decltype(m_marks)().swap(m_marks);
        }
        flush();
        return !m_held.empty();
    }

    // The events these frames wait for can never be durable (the spool is broken): they are
    // dropped and the connection closes, so the client denies.
    void drop_held() {
        m_held.clear();
        m_marks.clear();
        mark_dead();
    }

    bool has_held() const noexcept { return !m_held.empty(); }

    // A dead connection kept open until its held frames went out: the loop stops watching it
    // (a peer that hung up would wake it at once, every turn, meanwhile); what is released
    // then is sent best effort, as closing would.
    void stop_watching() {
        if (m_quiet) return;
        m_quiet = true;
        ::epoll_ctl(m_server.m_epoll, EPOLL_CTL_DEL, m_fd, nullptr);
    }

    void flush() {
        while (!m_out.empty()) {
            const ssize_t n = ::send(m_fd, m_out.data(), m_out.size(), MSG_NOSIGNAL);
            if (n > 0) {
                m_out.erase(0, static_cast<std::size_t>(n));
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            mark_dead();
            return;
        }
        if (m_out.size() > k_max_outbuf) {
            mark_dead();
            return;
        }
        // All sent: the buffer goes back to the heap, so a connection that waits for approvers
        // keeps no frame-sized capacity (issue 17, memory per waiting request).
        if (m_out.empty()) std::string().swap(m_out);
        want_write(!m_out.empty());
    }

    void want_write(bool on) {
        if (on == m_writing) return;
        if (m_quiet) return;
        m_writing = on;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0u);
        ev.data.fd = m_fd;
        ::epoll_ctl(m_server.m_epoll, EPOLL_CTL_MOD, m_fd, &ev);
    }

    void mark_dead() {
        if (m_dead) return;
        m_dead = true;
        m_server.m_dead.push_back(m_fd);
    }

    // Close after what is queued has been sent (best effort, bounded by the socket buffer).
    void close_after_flush() {
        flush();
        mark_dead();
    }

    Server& m_server;
    int m_fd;
    identity::Peer m_peer;
    Clock::time_point m_last;
    wire::FrameDecoder m_decoder;
    std::string m_out;  // released: may be sent
    std::string m_held; // waiting for their audit events to be durable
    // (seq waited for, end offset in m_held) for each run of frames, in order.
    std::vector<std::pair<std::uint64_t, std::size_t>> m_marks;
    bool m_writing = false;
    bool m_quiet = false; // stop_watching()
    bool m_dead = false;
    bool m_decided = false;
    // A check under way; shared with its Request while it waits for approvers.
    std::shared_ptr<broker::CheckSession> m_session;
    broker::Step m_step = broker::Step::done;
};

Server::Server(std::string config_path, std::shared_ptr<const config::Config> config, audit::Auditor& auditor,
               const audit::Shipper* shipper)
    : m_config_path(std::move(config_path)), m_socket_path(config->daemon.socket), m_auditor(auditor),
      m_broker(config, auditor), m_next_sweep(Clock::now()) {
    m_broker.set_shipper(shipper);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) throw Error(ErrorCode::internal, "sigprocmask", errno_text());
    std::signal(SIGPIPE, SIG_IGN);
    m_signal = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (m_signal < 0) throw Error(ErrorCode::internal, "signalfd", errno_text());

    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (m_socket_path.size() >= sizeof addr.sun_path)
        throw Error(ErrorCode::bad_input, m_socket_path, "socket path too long");
    std::memcpy(addr.sun_path, m_socket_path.c_str(), m_socket_path.size() + 1);

    // A socket file left by a crash is replaced; one that a live daemon answers on is not.
    struct stat st {};
    if (::lstat(m_socket_path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            throw Error(ErrorCode::bad_input, m_socket_path, "exists and is not a socket; refusing to replace it");
        const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const bool live = probe >= 0 && ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
        if (probe >= 0) ::close(probe);
        if (live) throw Error(ErrorCode::bad_input, m_socket_path, "another jitgated is already listening there");
        ::unlink(m_socket_path.c_str());
    }
    m_listen = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (m_listen < 0) throw Error(ErrorCode::internal, "socket", errno_text());
    if (::bind(m_listen, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        throw Error(ErrorCode::internal, m_socket_path, "bind: " + errno_text());
    // SECURITY NOTE: anyone may connect; what a peer may do is decided per request from its
    // kernel credentials (SO_PEERCRED), never from the socket's mode.
    if (::chmod(m_socket_path.c_str(), 0666) != 0)
        throw Error(ErrorCode::internal, m_socket_path, "chmod: " + errno_text());
    if (::listen(m_listen, 4096) != 0) throw Error(ErrorCode::internal, m_socket_path, "listen: " + errno_text());

    // Held only to be given up when accept() hits EMFILE: see shed_connection().
    m_reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (m_reserve_fd < 0)
        std::fprintf(stderr, "jitgated: cannot open /dev/null for a reserve descriptor: %s\n", errno_text().c_str());

    m_epoll = epoll_create1(EPOLL_CLOEXEC);
    if (m_epoll < 0) throw Error(ErrorCode::internal, "epoll_create1", errno_text());
    // The committer thread (Auditor) signals a finished fdatasync here.
    m_commit_fd = m_auditor.commit_event_fd();
    // The syslog copies go out after the replies they held back (release_durable).
    m_auditor.set_defer_syslog(true);
    std::vector<int> watched{m_listen, m_signal, m_commit_fd};
    m_broker.set_backend(setup::make_backend(config, m_broker));
    if (m_broker.backend().fd() >= 0) watched.push_back(m_broker.backend().fd());
    for (int fd : watched) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (epoll_ctl(m_epoll, EPOLL_CTL_ADD, fd, &ev) != 0)
            throw Error(ErrorCode::internal, "epoll_ctl", errno_text());
    }
}

Server::~Server() {
    for (auto& [fd, c] : m_clients) ::close(fd);
    if (m_listen >= 0) {
        ::close(m_listen);
        ::unlink(m_socket_path.c_str());
    }
    if (m_epoll >= 0) ::close(m_epoll);
    if (m_signal >= 0) ::close(m_signal);
    if (m_reserve_fd >= 0) ::close(m_reserve_fd);
}

int Server::run() {
    epoll_event events[k_max_events];
    while (!m_stop) {
        int timeout_ms = 1000;
        if (const auto next = m_broker.next_deadline()) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*next - Clock::now()).count() + 1;
            timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, 1000));
        }
        if (m_accept_paused) {
            if (Clock::now() >= m_accept_resume)
                pause_accepting(false);
            else
                timeout_ms = std::min(timeout_ms, static_cast<int>(k_accept_pause.count()));
        }
        const int n = epoll_wait(m_epoll, events, k_max_events, timeout_ms);
        if (n < 0 && errno != EINTR) throw Error(ErrorCode::internal, "epoll_wait", errno_text());
        for (int i = 0; i < n; ++i) {
            const int fd = events[i].data.fd;
            if (fd == m_listen)
                accept_clients();
            else if (fd == m_commit_fd)
                on_commit_done();
            else if (fd == m_signal)
                on_signal();
            else if (fd == m_broker.backend().fd())
                m_broker.backend().on_ready();
            else if (const auto it = m_clients.find(fd); it != m_clients.end())
                handle_io(*it->second, events[i].events);
        }
        m_broker.expire(Clock::now());
        release_durable();
        sweep(); // what closing connections records (a cancelled wait) goes into the commit
        commit();
    }
    m_broker.report_suppressed(Clock::now(), true);
    Json stopped{{"type", audit::type::daemon_stopped}, {"pending_dropped", m_broker.pending_count()}};
    // Whatever still waits is withdrawn from the backend, bounded so a dead service cannot
    // hang the stop.
    const Json withdrawn = m_broker.backend().shutdown(k_shutdown_cancel_limit);
    for (const auto& [key, value] : withdrawn.items()) stopped[key] = value;
    m_broker.audit(std::move(stopped));
    // The final commit: waits for one in flight, then syncs the rest; the replies it covers
    // still go out (best effort) before the connections close.
    try {
        m_auditor.sync();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgated: %s; dropping %zu held replies (their clients deny)\n", e.what(), m_held.size());
        release_durable();
        return 1;
    }
    release_durable();
    return 0;
}

void Server::commit() {
    if (!m_auditor.has_unsynced() || m_auditor.commit_in_flight() || m_auditor.commit_failed()) return;
    if (m_commit_inline_when_idle && !m_stop) {
        // With nothing to read, the loop would only wait for the committer: it syncs itself,
        // which spares a lone client two thread wake-ups. Level-triggered, so peeking drops
        // nothing: what is ready now is reported again by the next epoll_wait.
        epoll_event ev{};
        if (::epoll_wait(m_epoll, &ev, 1, 0) == 0) {
            try {
                m_auditor.sync();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "jitgated: %s; dropping %zu held replies (their clients deny)\n", e.what(),
                             m_held.size());
            }
            release_durable();
            sweep();
            // What closing recorded: no turn may end with unsynced events and nothing to wake it.
            m_auditor.start_commit();
            return;
        }
    }
    m_auditor.start_commit();
}

void Server::on_commit_done() {
    try {
        m_auditor.finish_commit();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgated: %s; dropping %zu held replies (their clients deny)\n", e.what(), m_held.size());
    }
}

void Server::release_durable() {
    release_held();
    // After the replies: a client waits for its event to be durable, never for syslog.
    m_auditor.send_syslog_copies();
}

void Server::release_held() {
    if (m_held.empty()) return;
    const bool failed = m_auditor.commit_failed();
    const std::uint64_t durable = m_auditor.durable_seq();
    std::size_t kept = 0;
    for (const int fd : m_held) {
        const auto it = m_clients.find(fd);
        if (it == m_clients.end()) continue;
        Connection& c = *it->second;
        if (failed)
            c.drop_held();
        else if (c.release(durable))
            m_held[kept++] = fd;
    }
    m_held.resize(kept);
}

void Server::accept_clients() {
    for (;;) {
        const int fd = ::accept4(m_listen, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR) continue;
            if (errno == EMFILE || errno == ENFILE) {
                if (shed_connection(errno)) continue;
                return;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                std::fprintf(stderr, "jitgated: accept: %s\n", errno_text().c_str());
            return;
        }
        const auto peer = identity::peer_of(fd);
        const auto max = static_cast<std::size_t>(m_broker.config().daemon.max_clients);
        const char* why = nullptr;
        if (!peer)
            why = "no peer credentials";
        else if (m_clients.size() >= max)
            why = "too many clients";
        else if (peer->uid != 0 && (m_per_uid[peer->uid] >= k_max_per_user || m_clients.size() + k_root_reserve >= max))
            why = "too many connections from this non-root user";
        if (why != nullptr) {
            // Fail closed: the client sees the connection close and denies.
            std::fprintf(stderr, "jitgated: refusing a connection from uid %d: %s\n",
                         peer ? static_cast<int>(peer->uid) : -1, why);
            ::close(fd);
            continue;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.fd = fd;
        if (epoll_ctl(m_epoll, EPOLL_CTL_ADD, fd, &ev) != 0) {
            ::close(fd);
            continue;
        }
        m_clients.emplace(fd, std::make_unique<Connection>(*this, fd, *peer));
        if (peer->uid != 0) ++m_per_uid[peer->uid];
    }
}

bool Server::shed_connection(int err) {
    m_fd_errno = err;
    bool took = false;
    bool backlog_empty = false;
    if (m_reserve_fd >= 0) {
        ::close(m_reserve_fd);
        const int fd = ::accept4(m_listen, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        backlog_empty = fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        if (fd >= 0) {
            // Fail closed: the client reads this error (or just the close) and denies.
            static const std::string k_frame =
                wire::encode(Json{{"type", msg::k_error},
                                  {"code", "unavailable"},
                                  {"message", "jitgated is out of file descriptors; try again shortly"}});
            (void)::send(fd, k_frame.data(), k_frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            ::close(fd);
            took = true;
        }
    }
    if (!backlog_empty) ++m_fd_refused; // refused, or left waiting while accepting pauses
    m_reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    report_fd_exhaustion(false);
    if (backlog_empty) return false;
    if (m_reserve_fd >= 0 && took) return true;
    pause_accepting(true); // no reserve to be had, or accept fails even with one: back off
    return false;
}

void Server::report_fd_exhaustion(bool force) {
    const auto now = Clock::now();
    if (m_fd_refused == 0 || (!force && now - m_fd_reported < k_fd_report_interval)) return;
    const std::string why = std::strerror(m_fd_errno);
    std::fprintf(stderr, "jitgated: accept: %s; turned away %llu connection(s) since the last report\n", why.c_str(),
                 static_cast<unsigned long long>(m_fd_refused));
    m_broker.audit(
        Json{{"type", audit::type::error},
             {"message", "out of file descriptors (" + why + "): connections turned away, so their checks are denied"},
             {"refused", m_fd_refused}});
    m_fd_refused = 0;
    m_fd_reported = now;
}

void Server::pause_accepting(bool pause) {
    if (pause == m_accept_paused) return;
    epoll_event ev{};
    ev.events = pause ? 0u : static_cast<unsigned>(EPOLLIN);
    ev.data.fd = m_listen;
    if (::epoll_ctl(m_epoll, EPOLL_CTL_MOD, m_listen, &ev) != 0) {
        std::fprintf(stderr, "jitgated: epoll_ctl on the listening socket: %s\n", errno_text().c_str());
        return;
    }
    m_accept_paused = pause;
    if (pause) m_accept_resume = Clock::now() + k_accept_pause;
}

void Server::on_signal() {
    signalfd_siginfo info{};
    while (::read(m_signal, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        if (info.ssi_signo == SIGHUP)
            reload();
        else
            m_stop = true;
    }
}

void Server::reload() {
    // A bad new config keeps the old one: a typo must never open or lock every door.
    config::LoadResult result;
    try {
        result = config::load_checked(m_config_path);
    } catch (const std::exception& e) {
        // Nothing in loading should throw (a bad tz file, say, is a problem); if something
        // does, the reload is refused like any bad config rather than ending the daemon.
        result.config.reset();
        result.problems.push_back(config::Problem{m_config_path, 0, 0, std::string("cannot load: ") + e.what()});
    }
    if (!result.problems.empty() || !result.config) {
        std::string all;
        for (const auto& p : result.problems) all += (all.empty() ? "" : "; ") + p.to_string();
        std::fprintf(stderr, "jitgated: reload of %s failed, keeping the running config: %s\n", m_config_path.c_str(),
                     all.c_str());
        m_broker.audit(Json{{"type", audit::type::error},
                            {"message", "config reload failed; keeping the running config"},
                            {"config", m_config_path},
                            {"problems", text::escape_for_log(all)}});
        return;
    }
    auto fresh = std::make_shared<const config::Config>(std::move(*result.config));
    if (const std::string why = setup::reload_refusal(m_broker.config(), *fresh); !why.empty()) {
        std::fprintf(stderr, "jitgated: reload of %s refused, keeping the running config: %s\n", m_config_path.c_str(),
                     why.c_str());
        m_broker.audit(Json{{"type", audit::type::error},
                            {"message", "config reload refused; keeping the running config"},
                            {"config", m_config_path},
                            {"problems", why}});
        return;
    }
    // Key rotation: the service backend re-reads approval.service.public_keys.
    try {
        m_broker.set_config(fresh);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgated: reload of %s failed, keeping the running config: %s\n", m_config_path.c_str(),
                     e.what());
        m_broker.audit(Json{{"type", audit::type::error},
                            {"message", "config reload failed; keeping the running config"},
                            {"config", m_config_path},
                            {"problems", text::escape_for_log(e.what())}});
        return;
    }
    if (fresh->daemon.socket != m_socket_path)
        std::fprintf(stderr, "jitgated: daemon.socket changed; the new path takes effect on restart\n");
    m_broker.audit(Json{{"type", audit::type::config_loaded},
                        {"config", m_config_path},
                        {"rules", fresh->rules.size()},
                        {"reload", true}});
    std::fprintf(stderr, "jitgated: reloaded %s (%zu rules)\n", m_config_path.c_str(), fresh->rules.size());
}

void Server::handle_io(Connection& c, unsigned events) {
    if (c.m_dead) return;
    if (c.m_decided) { // decided from elsewhere (an approver, a timeout): the conversation is over
        c.m_session.reset();
        c.m_decided = false;
    }
    if (events & EPOLLOUT) c.flush();
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        bool eof = false;
        char buf[16384];
        // Level-triggered: a short read took all there was, so no recv is spent on EAGAIN
        // unless the peer also hung up (then read on to the EOF).
        const bool hung_up = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
        for (;;) {
            const ssize_t n = ::recv(c.m_fd, buf, sizeof buf, 0);
            if (n > 0) {
                try {
                    c.m_decoder.feed(std::string_view(buf, static_cast<std::size_t>(n)));
                } catch (const std::exception& e) {
                    protocol_error(c, e.what());
                    return;
                }
                if (static_cast<std::size_t>(n) < sizeof buf && !hung_up) break;
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            // EOF or error: the client is gone. Whatever it started is cancelled in sweep();
            // complete frames that arrived with the EOF are still handled below.
            eof = true;
            break;
        }
        for (;;) {
            std::optional<Json> m;
            try {
                m = c.m_decoder.next();
            } catch (const std::exception& e) {
                protocol_error(c, e.what());
                return;
            }
            if (!m) break;
            // A non-root peer's idle time counts from accept: pinging must not keep a slot.
            if (c.m_peer.uid == 0) c.m_last = Clock::now();
            dispatch(c, *m);
            if (c.m_decided) {
                c.m_session.reset();
                c.m_decided = false;
            }
        }
        if (eof) {
            if (c.m_decoder.has_partial() && !c.m_session && !c.m_dead)
                protocol_error(c, "truncated frame: the peer closed mid-message");
            c.mark_dead();
        }
    }
}

void Server::protocol_error(Connection& c, const std::string& detail) {
    const std::string d = bounded(detail);
    std::fprintf(stderr, "jitgated: protocol error from pid %d uid %u: %s\n", static_cast<int>(c.m_peer.pid),
                 c.m_peer.uid, d.c_str());
    record_refusal(c, Json{{"type", audit::type::error}, {"message", "protocol error: " + d}});
    c.send(msg::to_json(msg::ErrorReply{"protocol", d}));
    c.close_after_flush();
}

void Server::record_refusal(const Connection& c, Json event) {
    event["peer_pid"] = c.m_peer.pid;
    event["peer_uid"] = c.m_peer.uid;
    // SECURITY NOTE: a local user must not be able to flood the hash-chained spool: the broker
    // records a non-root peer's refusals only up to a bound per uid and summarises the rest.
    m_broker.audit_refusal(c.m_peer.uid, std::move(event));
}

namespace {

// nullopt if the calling process cannot be read (the caller is then refused).
std::optional<broker::Caller> caller_of(int socket_fd, const identity::Peer& peer) {
    // SECURITY NOTE: the session the approver acts in: a shared account used from the
    // requester's session is the requester (broker::Broker::approve). Read as a check reads
    // its requester (identity::ids_of: through a pidfd where the kernel has it, so the login
    // uid is that of the process that connected, never of one that took its pid after it was
    // reaped); a login uid that cannot be read refuses the caller, never reads as "none".
    const auto ids = identity::ids_of(socket_fd, peer, identity::LoginUid::read);
    if (!ids) return std::nullopt;
    broker::Caller c;
    c.peer = peer;
    c.name = user_name_of(peer.uid).value_or("uid " + std::to_string(peer.uid));
    c.groups = group_names_of(c.name).value_or(std::vector<std::string>{}); // none: not an approver
    c.login_uid = ids->login_uid;
    if (c.login_uid >= 0)
        c.login_name = user_name_of(static_cast<unsigned>(c.login_uid)).value_or("uid " + std::to_string(c.login_uid));
    return c;
}

// SECURITY NOTE: for sudo the claimed user must be the one the kernel says ran it: the real
// uid of the connected sudo process (identity::ids_of, through the socket `socket_fd`). That
// the peer is root was checked by the handler table.
std::string refuse_reason(int socket_fd, const identity::Peer& peer, const std::string& kind, const std::string& user,
                          std::int64_t uid, std::optional<uid_t> real_uid) {
    if (user.empty() ||
        std::any_of(user.begin(), user.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0x20; }))
        return "the claimed user name is empty or holds control characters";
    const auto named = uid_of(user);
    if (!named || static_cast<std::int64_t>(*named) != uid)
        return "claimed user '" + text::escape_for_log(user) + "' does not have uid " + std::to_string(uid);
    if (kind == "sudo") {
        if (!real_uid)
            if (const auto ids = identity::ids_of(socket_fd, peer, identity::LoginUid::skip)) real_uid = ids->real_uid;
        if (!real_uid || static_cast<std::int64_t>(*real_uid) != uid)
            return "claimed uid " + std::to_string(uid) + " is not the real uid of the sudo process (pid " +
                   std::to_string(peer.pid) + ")";
    }
    return {};
}

} // namespace

void Server::refuse(Connection& c, const Refusal& r) {
    if (!r.audit_message.empty()) record_refusal(c, Json{{"type", audit::type::error}, {"message", r.audit_message}});
    c.send(msg::to_json(msg::ErrorReply{"denied", r.message}));
    if (r.close) c.close_after_flush();
}

bool Server::refused(Connection& c, const char* what, const std::string& kind, const std::string& user,
                     std::int64_t uid, std::optional<uid_t> real_uid) {
    const auto why = refuse_reason(c.m_fd, c.m_peer, kind, user, uid, real_uid);
    if (why.empty()) return false;
    record_refusal(c, Json{{"type", audit::type::error},
                           {"message", std::string(what) + " refused: " + why},
                           {"user", bounded(user)},
                           {"kind", kind}});
    c.send(msg::to_json(msg::ErrorReply{"denied", "refused: " + why}));
    c.close_after_flush();
    return true;
}

void Server::dispatch(Connection& c, const Json& m) {
    std::string type;
    try {
        type = wire::require_string(m, "type");
        if (c.m_session && type != msg::k_input)
            throw Error(ErrorCode::protocol, "type", "'" + text::escape_for_log(type) + "' while a check is under way");
        const Handler* h = find_handler(type);
        if (h == nullptr)
            throw Error(ErrorCode::protocol, "type", "unknown message type '" + text::escape_for_log(type) + "'");
        // SECURITY NOTE: the one authorisation point (handlers.hpp), before the message is parsed.
        std::optional<broker::Caller> read = broker::Caller{};
        if (needs_caller(h->privilege)) read = caller_of(c.m_fd, c.m_peer);
        if (!read) {
            refuse(c, Refusal{"refused: jitgated cannot tell who is asking (fail closed)",
                              "'" + text::escape_for_log(type) + "' refused: cannot read the calling process (pid " +
                                  std::to_string(c.m_peer.pid) + ")",
                              true});
            return;
        }
        const broker::Caller& caller = *read;
        const bool approver = h->privilege == Privilege::approver && m_broker.is_approver_anywhere(caller);
        if (const auto refusal = authorise(*h, c.m_peer, caller, approver)) {
            refuse(c, *refusal);
            return;
        }
        (this->*(h->handle))(c, m, caller);
    } catch (const Error& e) {
        if (e.code() == ErrorCode::protocol) {
            protocol_error(c, e.what());
        } else {
            c.send(msg::to_json(msg::ErrorReply{to_string(e.code()), e.what()}));
        }
    } catch (const std::exception& e) {
        // A handler bug must not take the daemon down or leave the client hanging: deny it.
        std::fprintf(stderr, "jitgated: internal error handling '%s': %s\n", text::escape_for_log(type).c_str(),
                     e.what());
        m_broker.audit(Json{{"type", audit::type::error},
                            {"message", std::string("internal error: ") + e.what()},
                            {"peer_pid", c.m_peer.pid},
                            {"peer_uid", c.m_peer.uid}});
        if (c.m_session) {
            m_broker.client_gone(*c.m_session);
            c.m_session.reset();
        }
        c.send(msg::to_json(msg::ErrorReply{"internal", "internal error; denied"}));
        c.close_after_flush();
    }
}

void Server::handle_check(Connection& c, const Json& m, const broker::Caller&) {
    auto request = msg::check_from_json(m);
    // One decision: each NSS file is checked once (nss_cache.hpp), the peer process read once
    // (through a pidfd where the kernel can, else /proc/<pid>/status and loginuid).
    const nss::Batch lookups;
    const auto ids = identity::ids_of(c.m_fd, c.m_peer, identity::LoginUid::read);
    const std::optional<uid_t> real = ids ? std::optional<uid_t>(ids->real_uid) : std::nullopt;
    if (refused(c, "check", request.kind, request.user, request.uid, real)) return;
    // SECURITY NOTE: who asks comes from the kernel (the peer's real uid and login uid),
    // never from the request: su's PAM_RUSER is only recorded where it disagrees.
    auto requester = ids ? std::optional(identity::requester_of(*ids, request.uid)) : std::nullopt;
    if (!requester) {
        record_refusal(c, Json{{"type", audit::type::error},
                               {"message", "check refused: cannot read the requesting process (pid " +
                                               std::to_string(c.m_peer.pid) + ")"},
                               {"user", bounded(request.user)},
                               {"kind", request.kind}});
        c.send(msg::to_json(msg::ErrorReply{"denied", "refused: jitgated cannot tell who is asking (fail closed)"}));
        c.close_after_flush();
        return;
    }
    c.m_session = std::make_shared<broker::CheckSession>();
    c.m_session->request = std::move(request);
    c.m_session->peer = c.m_peer;
    c.m_session->requester = std::move(*requester);
    c.m_step = m_broker.begin_check(*c.m_session, c);
}

void Server::handle_input(Connection& c, const Json& m, const broker::Caller&) {
    if (!c.m_session || c.m_step != broker::Step::awaiting_input)
        throw Error(ErrorCode::protocol, "input", "no question is open");
    const auto field = wire::require_string(m, "field");
    const bool given = wire::optional_bool(m, "given", false);
    const auto it = m.find("value");
    const std::string value = it == m.end() ? std::string() : text::arg_from_json(*it);
    c.m_step = m_broker.give_input(*c.m_session, c, field, given, value);
}

void Server::handle_finished(Connection& c, const Json& m, const broker::Caller&) {
    auto report = msg::finished_from_json(m);
    if (refused(c, "finished report", report.kind, report.user, report.uid)) return;
    m_broker.finished(report, c.m_peer);
    c.send(msg::to_json(msg::OkReply{}));
}

void Server::handle_session(Connection& c, const Json& m, const broker::Caller&) {
    auto report = msg::session_from_json(m);
    if (refused(c, "session report", "login", report.user, report.uid)) return;
    m_broker.session(report, c.m_peer);
    c.send(msg::to_json(msg::OkReply{}));
}

void Server::send_items(Connection& c, const std::vector<Json>& items) {
    for (const auto& item : items) c.send(msg::to_json(msg::ItemReply{item}));
    c.send(msg::to_json(msg::EndReply{static_cast<std::int64_t>(items.size())}));
}

void Server::send_result(Connection& c, const broker::OpResult& r) {
    if (r.ok)
        c.send(msg::to_json(msg::OkReply{r.message, std::nullopt}));
    else
        c.send(msg::to_json(msg::ErrorReply{"denied", r.message}));
}

void Server::handle_pending(Connection& c, const Json& m, const broker::Caller& caller) {
    msg::pending_from_json(m);
    send_items(c, m_broker.pending(caller));
}

void Server::handle_grants(Connection& c, const Json& m, const broker::Caller& caller) {
    msg::grants_from_json(m);
    send_items(c, m_broker.list_grants(caller));
}

void Server::handle_approve(Connection& c, const Json& m, const broker::Caller& caller) {
    send_result(c, m_broker.approve(caller, msg::approve_from_json(m).id));
}

void Server::handle_deny(Connection& c, const Json& m, const broker::Caller& caller) {
    const auto q = msg::deny_from_json(m);
    send_result(c, m_broker.deny(caller, q.id, q.reason));
}

void Server::handle_revoke(Connection& c, const Json& m, const broker::Caller& caller) {
    const auto q = msg::revoke_from_json(m);
    send_result(c, m_broker.revoke(caller, q.id, q.reason));
}

void Server::handle_status(Connection& c, const Json& m, const broker::Caller&) {
    msg::status_from_json(m);
    Json s = m_broker.status();
    s["clients"] = m_clients.size();
    s["pid"] = ::getpid();
    c.send(msg::to_json(msg::OkReply{std::nullopt, s}));
}

void Server::handle_ping(Connection& c, const Json& m, const broker::Caller&) {
    msg::ping_from_json(m);
    c.send(msg::to_json(msg::OkReply{}));
}

void Server::handle_sessions(Connection& c, const Json& m, const broker::Caller& caller) {
    msg::sessions_from_json(m);
    send_items(c, m_broker.sessions(caller));
}

void Server::handle_done(Connection& c, const Json& m, const broker::Caller& caller) {
    send_result(c, m_broker.release(caller, msg::done_from_json(m).id));
}

void Server::handle_requests(Connection& c, const Json& m, const broker::Caller& caller) {
    msg::requests_from_json(m);
    send_items(c, m_broker.my_requests(caller));
}

void Server::handle_extend(Connection& c, const Json& m, const broker::Caller& caller) {
    const auto q = msg::extend_from_json(m);
    send_result(c, m_broker.extend(caller, q.id, q.reason));
}

void Server::sweep() {
    const auto now = Clock::now();
    if (now >= m_next_sweep) {
        m_next_sweep = now + std::chrono::seconds(1);
        if (now - m_fd_reported >= k_fd_report_interval) report_fd_exhaustion(true);
        m_broker.report_suppressed(now);
        for (auto& [fd, c] : m_clients) {
            if (c->m_dead) continue;
            // A prompt left unanswered is the broker's to time out (Broker::expire).
            if (!c->m_session && now - c->m_last > k_idle_limit) c->mark_dead();
        }
    }
    // A connection that ends with replies still waiting for their events to be durable (a
    // protocol error, a timed-out prompt) closes once they went out (release_durable).
    std::vector<int> later;
    while (!m_dead.empty()) {
        const int fd = m_dead.back();
        m_dead.pop_back();
        if (const auto it = m_clients.find(fd); it != m_clients.end() && it->second->has_held()) {
            Connection& c = *it->second;
            // The client is gone now, whatever is still to be sent: a request it was waiting on
            // is cancelled in this turn, as it would be if the socket closed at once, so no grant
            // is made for someone who has left.
            if (c.m_session) {
                m_broker.client_gone(*c.m_session);
                c.m_session.reset();
            }
            c.stop_watching();
            later.push_back(fd);
            continue;
        }
        close_connection(fd);
    }
    m_dead = std::move(later);
}

void Server::close_connection(int fd) {
    const auto it = m_clients.find(fd);
    if (it == m_clients.end()) return;
    Connection& c = *it->second;
    if (c.m_session) m_broker.client_gone(*c.m_session);
    if (c.m_peer.uid != 0) {
        const auto u = m_per_uid.find(c.m_peer.uid);
        if (u != m_per_uid.end() && --u->second == 0) m_per_uid.erase(u);
    }
    // Explicitly, though closing would do it while the descriptor is not duplicated: a copy that
    // outlived it (a future fork) must not keep delivering its events under a reused number.
    if (!c.m_quiet) ::epoll_ctl(m_epoll, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    m_clients.erase(it);
}

} // namespace jitgate::server
