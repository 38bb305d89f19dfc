// jitgate/client.hpp — the blocking socket client used by the plugins, jitgatectl and bench.
//
// Not thread-safe; a Connection belongs to one caller. No exceptions escape: every
// function returns a Status. All I/O is bounded by a poll() deadline, and a wait can be
// interrupted through a caller-owned flag set from a signal handler.
#pragma once

#include <csignal>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "jitgate/client_options.hpp"
#include "jitgate/error.hpp"
#include "jitgate/messages.hpp"
#include "jitgate/wire.hpp"

namespace jitgate::client {

class Connection {
public:
    Connection() = default;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    Connection(Connection&& other) noexcept;
    Connection& operator=(Connection&& other) noexcept;
    ~Connection();

    // Connects to the daemon. SECURITY NOTE: the socket must be a socket owned by root or by
    // the daemon user, and the peer (SO_PEERCRED) must run as that same uid; otherwise
    // untrusted_daemon. A missing socket or a refused connection is daemon_unreachable,
    // with the socket path in the detail.
    Status open(const Options& options);

    Status send(const wire::Json& message);
    // The same for the plugins' requests, written without building a Json (msg::encode).
    Status send(const msg::CheckRequest& request);
    Status send(const msg::FinishedReport& report);
    // Waits at most timeout_ms (-1: no limit) for one message. If `interrupted` becomes
    // non-zero while waiting (a signal handler sets it; the wait returns EINTR) the wait ends
    // with ErrorCode::interrupted. EOF is daemon_unreachable ("daemon closed the connection").
    // With `interrupted`, asynchronous signals are blocked while the flag is checked and taken
    // only inside the wait (ppoll), so a signal arriving between the check and the wait still
    // ends it at once. `wake_signals` (may be null) are unblocked inside the wait even if the
    // caller blocks them; the others keep the caller's mask. The masks are the calling
    // thread's (the plugins and jitgatectl have no other threads).
    Status receive(wire::Json& out, int timeout_ms, const volatile std::sig_atomic_t* interrupted = nullptr,
                   const sigset_t* wake_signals = nullptr);

    void close() noexcept;
    bool is_open() const noexcept { return m_fd >= 0; }

private:
    // Sends the frame `encode()` returns; a throw from it is a protocol failure.
    template <typename Encode>
    Status send_encoded(Encode&& encode);

    int m_fd = -1;
    wire::FrameDecoder m_decoder;
};

// What a plugin must be able to do with its user while a check runs.
struct UserIo {
    // Shows one line to the user (already escaped by the daemon).
    std::function<void(const std::string&)> notice;
    // Optional: the notice that starts the wait for approvers (it carries the request id).
    // Unset: it goes to `notice` like any other.
    std::function<void(const std::string&)> waiting;
    // Asks the user; returns nullopt if the user cannot be asked or gave up.
    std::function<std::optional<std::string>(const std::string& prompt, bool echo)> prompt;
};

// Runs a whole check conversation: sends the request, shows notices, answers prompts, and
// returns the daemon's decision. On failure (daemon down, protocol error, interrupted)
// returns that Status and `out` is a deny. Interrupting closes the connection, which the
// daemon treats as a cancel. `interrupted` and `wake_signals` are as for receive().
Status run_check(const Options& options, const msg::CheckRequest& request, const UserIo& io,
                 const volatile std::sig_atomic_t* interrupted, msg::Decision& out,
                 const sigset_t* wake_signals = nullptr);

// Sends one request and collects every reply until a message of type "end", "ok",
// "decision" or "error" (inclusive). For jitgatectl and tests.
Status request(const Options& options, const wire::Json& message, std::vector<wire::Json>& replies);
// Sends a report (the sudo plugin's command.finished, written without building a Json; the PAM
// module's session report) and returns success only if the daemon answered "ok", which it does
// once the event is durable. Anything else (the daemon unreachable, an "error" reply: the report
// refused, the event not recorded) is a failure, so the caller keeps the record elsewhere.
Status report(const Options& options, const msg::FinishedReport& finished);
Status report(const Options& options, const wire::Json& message);

} // namespace jitgate::client
