// daemon/policy/live.hpp — the live privileged sessions opened under grants, and how they end
// when their grant ends (docs/sessions.md).
//
// A live session is a sudo front end admitted by a `command`- or `session`-scope grant, or the
// sshd/login process whose PAM session a `login` grant admitted. The broker adds one when it
// allows such an action and removes it when the plugin reports its end (command.finished,
// session closed). When the grant nears its end the registry writes a warning to the session's
// terminal; at the end (expiry, revoke, `jitgatectl done`) it writes a last line and sends
// SIGHUP and SIGTERM to the recorded process, then SIGKILL after a grace period.
//
// SECURITY NOTE: the pid comes from the kernel (SO_PEERCRED of the plugin's connection), never
// from a claim, and is recorded with the process's start time (/proc/<pid>/stat field 22),
// read while the process is still connected to the daemon. Before every signal the start time
// is read again: a pid that now names another process (reuse) is never signalled, and pids
// 0 and 1 (and negative ones, which would name process groups) are never recorded.
//
// Not thread-safe: the daemon's single event loop owns it. Nothing here blocks: the terminal is
// opened non-blocking and a write that would block is dropped.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace jitgate::live {

using Clock = std::chrono::steady_clock;

// What start_time_of() says when /proc/<pid>/stat exists but cannot be read now (EMFILE,
// ENOMEM, ...): the process is not known to be gone, so it is neither forgotten nor signalled
// blind; the registry looks again.
inline constexpr std::uint64_t k_unreadable = ~std::uint64_t{0};

// The start time of process `pid` in clock ticks since boot (/proc/<pid>/stat field 22),
// nullopt if it is gone (ENOENT, ESRCH) or its line cannot be parsed, k_unreadable if it
// cannot be read now. Parses after the last ')' (the command name may hold
// spaces and parentheses). Never throws except std::bad_alloc.
std::optional<std::uint64_t> start_time_of(pid_t pid);

// Writes `line` (plus "\r\n") to the terminal `tty` ("/dev/pts/3", "pts/3", "tty1"): opened
// O_WRONLY|O_NOCTTY|O_NONBLOCK|O_NOFOLLOW|O_CLOEXEC, written only if it is a character device
// that is a terminal, and never waited on (a full terminal drops the line). Returns false if
// nothing was written. The line must already be escaped. Never throws except std::bad_alloc.
bool write_to_tty(const std::string& tty, const std::string& line);

// The controlling terminal of `pid` or of the first of its descendants that has one
// (/proc/<pid>/stat field 7, children from /proc/<pid>/task/<pid>/children), as a /dev path;
// "" if none (or the kernel has no children lists). At most k_max_walk processes are looked at.
// Why: sshd opens the PAM session before it allocates the pty, so its report names no
// terminal ("ssh"); the session's shell below it has one. Never throws except std::bad_alloc.
std::string terminal_below(pid_t pid);
inline constexpr std::size_t k_max_walk = 64;

enum class SignalResult { sent, gone, failed };
// Sends `sig` to `pid` only if pid > 1 and the process's start time is still `start_time`:
// gone if it is not (exited, or the pid names another process now), failed if kill() failed
// (errno kept, e.g. EPERM: the daemon lacks CAP_KILL).
SignalResult signal_if_same(pid_t pid, std::uint64_t start_time, int sig);

// What the registry does to the outside world; tests replace it.
struct Effects {
    std::function<std::optional<std::uint64_t>(pid_t)> start_time = start_time_of;
    std::function<bool(const std::string&, const std::string&)> write_tty = write_to_tty;
    std::function<std::string(pid_t)> find_tty = terminal_below;
    std::function<SignalResult(pid_t, std::uint64_t, int)> signal = signal_if_same;
    std::function<std::int64_t()> now_unix;
};

struct Session {
    std::uint64_t id = 0; // the registry's own, for ordering
    std::string kind;     // "sudo" or "login"
    std::string user;
    std::int64_t uid = -1;
    std::string requester;
    std::int64_t requester_uid = -1;
    pid_t pid = -1;
    std::uint64_t start_time = 0;
    std::string tty; // as the plugin reported it (may be empty)
    std::string grant_id;
    std::string request_id;
    std::string what; // the command (sudo) or "service from host" (login), escaped
    std::int64_t started_unix = 0;
    std::int64_t expires_unix = 0; // the grant's end
    Clock::time_point expires;
    bool keep = false; // rule on_expiry: keep
    // Progress: nothing yet, warned, told to end (HUP+TERM sent; SIGKILL follows), or kept past
    // its grant (on_expiry: keep).
    enum class Stage { live, warned, ending, kept } stage = Stage::live;
    Clock::time_point next; // when the next step is due (Clock::time_point::max(): none)
    std::string end_reason; // "expiry", "revoke", "released"
};

// An ending that the broker records (session.ended_by_expiry, session.ended_by_revoke, ...).
struct Ended {
    Session session;
    std::string reason;       // "expiry", "revoke", "released", "kept" (on_expiry: keep, nothing ended)
    bool signalled = false;   // SIGHUP/SIGTERM reached the recorded process
    bool gone = false;        // the process had already ended (or its pid is another's now)
    bool tty_told = false;    // the line reached the terminal
    std::string signal_error; // kill()'s error when signalled is false and gone is false
};

class Registry {
public:
    struct Options {
        std::chrono::seconds warn_before{std::chrono::minutes(2)}; // 0: no warning
        std::chrono::seconds grace{std::chrono::seconds(5)};       // SIGTERM → SIGKILL
        std::size_t max_sessions = 4096;                           // see add()
    };

    explicit Registry(Effects effects = {});

    void set_options(const Options& o) { m_options = o; }
    const Options& options() const noexcept { return m_options; }

    // Records `s` (its pid, grant, expiry, keep). Reads the start time of s.pid now (the
    // caller holds a connection from it, so it is that process). Returns false, recording
    // nothing, if pid <= 1, the start time cannot be read, or the registry is full even after
    // forgetting sessions whose process is gone (bounded memory: an unbounded number of sudo
    // runs that never report their end cannot grow it without limit). A session already
    // recorded for the same process is replaced.
    bool add(Session s, Clock::time_point now);
    // Forgets the session of process `pid` (its end was reported); `grant_id` non-empty must
    // match. Returns the forgotten session, if any.
    std::optional<Session> remove(pid_t pid, const std::string& grant_id);
    // Ends every session of `grant_id` now (revoke, done): writes `line` to each terminal,
    // sends SIGHUP and SIGTERM, and schedules SIGKILL after the grace period.
    std::vector<Ended> end_grant(const std::string& grant_id, const std::string& reason, const std::string& line,
                                 Clock::time_point now);
    // Moves the sessions of grant `from` that are not ending to grant `to` (an approved
    // extension), with its end: warned and ended by the new deadline. Returns how many moved.
    std::size_t rebind(const std::string& from, const std::string& to, std::int64_t expires_unix,
                       Clock::time_point expires, Clock::time_point now);
    // Sessions whose process is still the recorded one, oldest first.
    std::vector<Session> list();
    // The earliest step due (a warning, an end, a SIGKILL); nullopt if none.
    std::optional<Clock::time_point> next_deadline() const;
    // Takes every step due at `now`; returns the endings to record (expiry, kept).
    std::vector<Ended> tick(Clock::time_point now);
    std::size_t size() const noexcept { return m_sessions.size(); }
    // How many sessions of `requester_uid` are followed (kept ones past their grant not counted).
    std::size_t count_for(std::int64_t requester_uid) const;

private:
    void schedule(Session& s, Clock::time_point next);
    // The first step of a session that is live: its warning, or its end (or, kept, its expiry).
    Clock::time_point first_step(const Session& s, Clock::time_point now) const;
    Ended end(Session& s, const std::string& reason, const std::string& line, Clock::time_point now);
    // Writes `line` to the session's terminal: the one reported, else the one below its process.
    bool tell(const Session& s, const std::string& line);
    void forget_gone();
    void erase(std::map<std::uint64_t, Session>::iterator it);

    Effects m_effects;
    Options m_options;
    std::uint64_t m_next_id = 1;
    std::map<std::uint64_t, Session> m_sessions;
    std::set<std::pair<Clock::time_point, std::uint64_t>> m_due;
};

// SECURITY NOTE: one person cannot fill the registry for everyone: beyond this many followed
// sessions of theirs, a new one under an `on_expiry: end` grant is refused (it could not be
// ended with its grant).
inline constexpr std::size_t k_max_sessions_per_requester = 64;

// "2m", "45s": how long until `left` is over, for terminal lines.
std::string format_left(std::int64_t seconds);

} // namespace jitgate::live
