// jitgate/error.hpp — the one error vocabulary shared by plugins, daemon and CLI.
//
// Failures carry a code and a human-readable detail. The plugins' check (jitgate/check.hpp)
// turns a code into a Verdict, which each plugin maps to its host's status in exactly one
// function (to_sudo_status, to_pam_status).
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace jitgate {

enum class ErrorCode {
    ok,
    denied,             // the daemon (or policy) said no
    daemon_unreachable, // no socket, connection refused, connect timeout
    untrusted_daemon,   // socket or peer not owned by root / the daemon user
    protocol,           // malformed frame, unexpected message, version mismatch
    timeout,            // no answer before the deadline
    interrupted,        // the user pressed Ctrl-C (or a terminating signal arrived)
    bad_input,          // bad plugin option, bad argument, bad config
    internal,           // anything else; always fails closed
    io,                 // a database or file could not be read or written (jitgate-server's store)
};

// Returns a stable lower-case name ("daemon_unreachable"), used in logs and on the wire.
const char* to_string(ErrorCode code) noexcept;

// A result: ok, or a code with a detail. Cheap to copy; never throws on inspection.
struct Status {
    ErrorCode code = ErrorCode::ok;
    std::string detail;

    bool ok() const noexcept { return code == ErrorCode::ok; }
    static Status success() { return {}; }
    static Status failure(ErrorCode c, std::string d) { return {c, std::move(d)}; }
};

// The one exception type of the project (daemon and CLI only; never thrown across a C ABI).
// `context` names where it happened (e.g. a file:line), `detail` says what is wrong.
class Error : public std::runtime_error {
public:
    Error(ErrorCode code, std::string context, const std::string& detail)
        : std::runtime_error(context.empty() ? detail : context + ": " + detail), m_code(code),
          m_context(std::move(context)) {}
    ErrorCode code() const noexcept { return m_code; }
    const std::string& context() const noexcept { return m_context; }

private:
    ErrorCode m_code;
    std::string m_context;
};

} // namespace jitgate
