// common/src/client.cpp — the blocking socket client (see jitgate/client.hpp).
#include "jitgate/client.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "jitgate/admin.hpp"
#include "jitgate/passwd.hpp"
#include "jitgate/text.hpp"

namespace jitgate::client {
namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text(int err) {
    return std::strerror(err);
}

// uid of the daemon's system user, or -1 if there is no such user (then only root is trusted).
long daemon_uid(const std::string& name) {
    const auto uid = name.empty() ? std::nullopt : uid_of(name);
    return uid ? static_cast<long>(*uid) : -1;
}

bool trusted_uid(uid_t uid, long daemon) {
    return uid == 0 || (daemon >= 0 && static_cast<long>(uid) == daemon);
}

int remaining_ms(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

// Blocks every asynchronous signal for its lifetime (the flag check and the wait), so a
// signal can be taken only inside ppoll(): one that arrives just after the check stays
// pending and ends the wait at once instead of being missed until the deadline. Faults
// (SIGSEGV and the like) stay unblocked: blocking them would only hide a crash.
class SignalGate {
public:
    explicit SignalGate(const sigset_t* wake) {
        sigset_t all;
        sigfillset(&all);
        for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT}) sigdelset(&all, sig);
        m_blocked = ::sigprocmask(SIG_BLOCK, &all, &m_old) == 0;
        m_wait = m_old;
        if (wake != nullptr)
            for (int sig = 1; sig < NSIG; ++sig)
                if (sigismember(wake, sig) == 1) sigdelset(&m_wait, sig);
    }
    ~SignalGate() {
        if (m_blocked) ::sigprocmask(SIG_SETMASK, &m_old, nullptr);
    }
    SignalGate(const SignalGate&) = delete;
    SignalGate& operator=(const SignalGate&) = delete;

    // The mask for ppoll(): the caller's, with the wake signals unblocked; null (keep the
    // current mask) if blocking failed, so a failure never unblocks more than the caller did.
    const sigset_t* wait_mask() const noexcept { return m_blocked ? &m_wait : nullptr; }

private:
    sigset_t m_old{};
    sigset_t m_wait{};
    bool m_blocked = false;
};

// poll() for one descriptor; with `interrupted`, the flag is checked and the wait entered
// atomically with respect to signals (see SignalGate). Returns poll's result, or -2 if the
// flag was already set (errno untouched).
int wait_readable(int fd, int timeout_ms, const volatile std::sig_atomic_t* interrupted, const sigset_t* wake) {
    pollfd p{fd, POLLIN, 0};
    if (interrupted == nullptr) return ::poll(&p, 1, timeout_ms);
    int r = 0;
    int err = 0;
    {
        SignalGate gate(wake);
        if (*interrupted) return -2;
        timespec ts{timeout_ms / 1000, static_cast<long>(timeout_ms % 1000) * 1000000L};
        r = ::ppoll(&p, 1, timeout_ms < 0 ? nullptr : &ts, gate.wait_mask());
        err = errno;
    }
    errno = err; // restoring the mask must not hide ppoll's errno
    return r;
}

} // namespace

Connection::Connection(Connection&& other) noexcept : m_fd(other.m_fd), m_decoder(std::move(other.m_decoder)) {
    other.m_fd = -1;
}

Connection& Connection::operator=(Connection&& other) noexcept {
    if (this != &other) {
        close();
        m_fd = other.m_fd;
        m_decoder = std::move(other.m_decoder);
        other.m_fd = -1;
    }
    return *this;
}

Connection::~Connection() {
    close();
}

void Connection::close() noexcept {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = -1;
    m_decoder = wire::FrameDecoder{};
}

Status Connection::open(const Options& options) {
    close();
    const std::string& path = options.socket_path;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path)
        return Status::failure(ErrorCode::bad_input, "socket path '" + path + "' is empty or too long");
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);

    // SECURITY NOTE: check the socket before talking to it, as SSSD's check_server_cred does:
    // only root or the daemon user may own it, so no other user can pose as the daemon.
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return Status::failure(ErrorCode::daemon_unreachable, "cannot reach jitgated at " + path + ": " +
                                                                  errno_text(errno) + " (is jitgated running?)");
    // Look the daemon user up only for a socket root does not own: an NSS lookup can cost
    // tens of microseconds (more for a missing user), and this is the fast path.
    const long daemon = st.st_uid == 0 ? -1 : daemon_uid(options.daemon_user);
    if (!S_ISSOCK(st.st_mode)) return Status::failure(ErrorCode::untrusted_daemon, path + " is not a socket");
    if (!trusted_uid(st.st_uid, daemon))
        return Status::failure(ErrorCode::untrusted_daemon, path + " is owned by uid " + std::to_string(st.st_uid) +
                                                                ", not root or " + options.daemon_user);

    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return Status::failure(ErrorCode::internal, "socket(): " + errno_text(errno));
    m_fd = fd;
    // A Unix socket connects at once or not at all: EAGAIN means the daemon's listen backlog
    // is full (it is busy), so try again until the connect deadline.
    const auto deadline = Clock::now() + std::chrono::milliseconds(options.connect_timeout_ms);
    while (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        const int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN && Clock::now() < deadline) {
            ::usleep(1000);
            continue;
        }
        close();
        return Status::failure(ErrorCode::daemon_unreachable,
                               "cannot reach jitgated at " + path + ": " +
                                   (err == EAGAIN ? std::string("it is not accepting connections (backlog full)")
                                                  : errno_text(err) + " (is jitgated running?)"));
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != st.st_uid ||
        !trusted_uid(cred.uid, daemon)) {
        close();
        return Status::failure(ErrorCode::untrusted_daemon,
                               "the process behind " + path + " runs as uid " + std::to_string(cred.uid) +
                                   ", not as the socket's owner (root or " + options.daemon_user + ")");
    }
    return Status::success();
}

Status Connection::send(const wire::Json& message) {
    return send_encoded([&] { return wire::encode(message); });
}

Status Connection::send(const msg::CheckRequest& request) {
    return send_encoded([&] { return msg::encode(request); });
}

Status Connection::send(const msg::FinishedReport& report) {
    return send_encoded([&] { return msg::encode(report); });
}

template <typename Encode>
Status Connection::send_encoded(Encode&& encode) {
    if (m_fd < 0) return Status::failure(ErrorCode::internal, "send on a closed connection");
    std::string frame;
    try {
        frame = encode();
    } catch (const std::exception& e) {
        return Status::failure(ErrorCode::protocol, e.what());
    }
    std::size_t off = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (off < frame.size()) {
        // MSG_NOSIGNAL: a dead daemon gives EPIPE, never a SIGPIPE that kills sudo.
        const ssize_t n = ::send(m_fd, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pollfd p{m_fd, POLLOUT, 0};
            if (::poll(&p, 1, remaining_ms(deadline)) <= 0)
                return Status::failure(ErrorCode::timeout, "sending to jitgated timed out");
            continue;
        }
        const int err = errno;
        close();
        return Status::failure(ErrorCode::daemon_unreachable, "jitgated closed the connection: " + errno_text(err));
    }
    return Status::success();
}

Status Connection::receive(wire::Json& out, int timeout_ms, const volatile std::sig_atomic_t* interrupted,
                           const sigset_t* wake_signals) {
    if (m_fd < 0) return Status::failure(ErrorCode::internal, "receive on a closed connection");
    const auto deadline =
        timeout_ms < 0 ? Clock::time_point::max() : Clock::now() + std::chrono::milliseconds(timeout_ms);
    char buf[16384];
    for (;;) {
        try {
            if (auto msg = m_decoder.next()) {
                out = std::move(*msg);
                return Status::success();
            }
        } catch (const std::exception& e) {
            close();
            return Status::failure(ErrorCode::protocol, std::string("bad message from jitgated: ") + e.what());
        }
        const int wait = timeout_ms < 0 ? -1 : remaining_ms(deadline);
        const int r = wait_readable(m_fd, wait, interrupted, wake_signals);
        if (r == -2) return Status::failure(ErrorCode::interrupted, "interrupted");
        if (r < 0) {
            if (errno == EINTR) continue; // the flag is checked in the next wait
            return Status::failure(ErrorCode::internal, "poll(): " + errno_text(errno));
        }
        if (r == 0) return Status::failure(ErrorCode::timeout, "no answer from jitgated in time");
        const ssize_t n = ::recv(m_fd, buf, sizeof buf, 0);
        if (n > 0) {
            try {
                m_decoder.feed(std::string_view(buf, static_cast<std::size_t>(n)));
            } catch (const std::exception& e) {
                close();
                return Status::failure(ErrorCode::protocol, std::string("bad message from jitgated: ") + e.what());
            }
            continue;
        }
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        close();
        return Status::failure(ErrorCode::daemon_unreachable, "jitgated closed the connection");
    }
}

namespace {
Status run_check_unguarded(const Options& options, const msg::CheckRequest& request, const UserIo& io,
                           const volatile std::sig_atomic_t* interrupted, msg::Decision& out,
                           const sigset_t* wake_signals);
} // namespace

Status run_check(const Options& options, const msg::CheckRequest& request, const UserIo& io,
                 const volatile std::sig_atomic_t* interrupted, msg::Decision& out, const sigset_t* wake_signals) {
    try {
        return run_check_unguarded(options, request, io, interrupted, out, wake_signals);
    } catch (const std::exception& e) { // a mistyped field from the daemon: deny, never throw
        out = msg::Decision{};
        out.outcome = msg::Outcome::error;
        return Status::failure(ErrorCode::protocol, std::string("bad message from jitgated: ") + e.what());
    }
}

namespace {
Status run_check_unguarded(const Options& options, const msg::CheckRequest& request, const UserIo& io,
                           const volatile std::sig_atomic_t* interrupted, msg::Decision& out,
                           const sigset_t* wake_signals) {
    out = msg::Decision{};
    out.outcome = msg::Outcome::error;
    Connection conn;
    if (Status s = conn.open(options); !s.ok()) return s;
    if (Status s = conn.send(request); !s.ok()) return s;
    int timeout_ms = options.reply_timeout_ms;
    for (;;) {
        wire::Json m;
        if (Status s = conn.receive(m, timeout_ms, interrupted, wake_signals); !s.ok()) {
            conn.close(); // closing is the cancel: the daemon withdraws the request
            return s;
        }
        const std::string type = m.value("type", "");
        if (type == msg::k_notice) {
            // A waiting request tells how long it may wait; stay with it that long (plus slack).
            const auto it = m.find("wait_s");
            const bool starts_wait = it != m.end() && it->is_number_integer();
            if (starts_wait)
                timeout_ms =
                    static_cast<int>(std::clamp<std::int64_t>(it->get<std::int64_t>() + 30, 1, 86400 * 2) * 1000);
            if (starts_wait && io.waiting)
                io.waiting(m.value("text", ""));
            else if (io.notice)
                io.notice(m.value("text", ""));
        } else if (type == msg::k_prompt) {
            const std::string field = m.value("field", "");
            std::optional<std::string> answer;
            if (io.prompt) answer = io.prompt(m.value("text", field + ": "), m.value("echo", true));
            if (interrupted != nullptr && *interrupted) return Status::failure(ErrorCode::interrupted, "interrupted");
            wire::Json reply{{"type", msg::k_input},
                             {"field", field},
                             {"given", answer.has_value()},
                             {"value", text::arg_to_json(answer.value_or(""))}};
            if (Status s = conn.send(reply); !s.ok()) return s;
        } else if (type == msg::k_decision) {
            try {
                out = msg::decision_from_json(m);
            } catch (const std::exception& e) {
                return Status::failure(ErrorCode::protocol, std::string("bad decision from jitgated: ") + e.what());
            }
            return out.allow ? Status::success() : Status::failure(ErrorCode::denied, out.message);
        } else if (type == msg::k_error) {
            return Status::failure(ErrorCode::protocol, "jitgated: " + m.value("message", std::string("error")));
        } else {
            return Status::failure(ErrorCode::protocol, "unexpected message type '" + type + "' from jitgated");
        }
    }
}
} // namespace

namespace {
template <typename Message>
Status request_replies(const Options& options, const Message& message, std::vector<wire::Json>& replies) {
    replies.clear();
    Connection conn;
    if (Status s = conn.open(options); !s.ok()) return s;
    if (Status s = conn.send(message); !s.ok()) return s;
    for (;;) {
        wire::Json m;
        if (Status s = conn.receive(m, options.reply_timeout_ms); !s.ok()) return s;
        const std::string type = m.value("type", "");
        replies.push_back(std::move(m));
        if (type == msg::k_end || type == msg::k_ok || type == msg::k_decision || type == msg::k_error)
            return Status::success();
    }
}
} // namespace

Status request(const Options& options, const wire::Json& message, std::vector<wire::Json>& replies) {
    return request_replies(options, message, replies);
}

namespace {
// A report is recorded only if the daemon answered "ok" (it answers once the event is durable).
template <typename Message>
Status report_to_daemon(const Options& options, const Message& message) {
    std::vector<wire::Json> replies;
    if (Status s = request_replies(options, message, replies); !s.ok()) return s;
    const wire::Json& last = replies.back();
    if (last.value("type", "") == msg::k_ok) return Status::success();
    const auto text = [&last](const char* key) {
        const auto it = last.find(key);
        return it != last.end() && it->is_string() ? it->get<std::string>() : std::string("?");
    };
    return Status::failure(ErrorCode::denied,
                           "jitgated did not record it (" + text("code") + ": " + text("message") + ")");
}
} // namespace

Status report(const Options& options, const msg::FinishedReport& finished) {
    return report_to_daemon(options, finished);
}

Status report(const Options& options, const wire::Json& message) {
    return report_to_daemon(options, message);
}

} // namespace jitgate::client
