// daemon/policy/live.cpp — live sessions under grants: recorded, warned, ended (live.hpp).
#include "daemon/policy/live.hpp"

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace jitgate::live {

namespace {

std::int64_t system_now_unix() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string utc_clock(std::int64_t unix_s) {
    const std::time_t t = static_cast<std::time_t>(unix_s);
    std::tm tm{};
    if (gmtime_r(&t, &tm) == nullptr) return "?";
    char buf[32];
    std::strftime(buf, sizeof buf, "%H:%M:%S UTC", &tm);
    return buf;
}

// "/dev/pts/3" from what the plugins report: sudo says "/dev/pts/3", PAM "pts/3" or "/dev/pts/3",
// sshd "ssh" when there is no terminal. Empty if it names no terminal under /dev.
std::string tty_path(const std::string& tty) {
    if (tty.empty() || tty.find("..") != std::string::npos) return {};
    std::string p = tty.rfind("/dev/", 0) == 0 ? tty : "/dev/" + tty;
    // Only the terminals people log in on: pseudo-terminals (/dev/pts/N) and the console's
    // virtual terminals (/dev/ttyN); never /dev/tty0 (the active console), serial lines or
    // /dev/tty itself.
    const auto digits_after = [&](std::string_view prefix) {
        if (p.rfind(prefix, 0) != 0 || p.size() == prefix.size()) return false;
        return p.find_first_not_of("0123456789", prefix.size()) == std::string::npos;
    };
    if (!digits_after("/dev/pts/") && !(digits_after("/dev/tty") && p != "/dev/tty0")) return {};
    return p;
}

} // namespace

std::size_t Registry::count_for(std::int64_t requester_uid) const {
    std::size_t n = 0;
    for (const auto& [id, s] : m_sessions)
        if (s.requester_uid == requester_uid && s.stage != Session::Stage::kept) ++n;
    return n;
}

std::optional<std::uint64_t> start_time_of(pid_t pid) {
    if (pid <= 0) return std::nullopt;
    const std::string path = "/proc/" + std::to_string(pid) + "/stat";
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT || errno == ESRCH ? std::nullopt : std::optional(k_unreadable);
    char buf[1024];
    ssize_t n = -1;
    do {
        n = ::read(fd, buf, sizeof(buf) - 1);
    } while (n < 0 && errno == EINTR);
    const int error = errno;
    ::close(fd);
    if (n < 0) return error == ESRCH ? std::nullopt : std::optional(k_unreadable);
    const std::string_view line(buf, static_cast<std::size_t>(n));
    const auto close = line.rfind(')');
    if (close == std::string_view::npos) return std::nullopt;
    // After ") ": field 3 (state) onwards; the start time is field 22, the 20th from here.
    // Split on whitespace in place, as `>>` would: no stream is built for the lookup that
    // every decision allowed by a grant makes (a std::istringstream was 70% of its cost).
    constexpr std::string_view k_space = " \t\n\v\f\r";
    std::string_view rest = line.substr(close + 1);
    std::string_view field;
    for (int i = 3; i <= 22; ++i) {
        const auto start = rest.find_first_not_of(k_space);
        if (start == std::string_view::npos) return std::nullopt;
        rest.remove_prefix(start);
        field = rest.substr(0, rest.find_first_of(k_space));
        rest.remove_prefix(field.size());
    }
    if (field.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
    if (ec != std::errc{} || end != field.data() + field.size()) return std::nullopt; // out of range
    return value;
}

bool write_to_tty(const std::string& tty, const std::string& line) {
    const std::string path = tty_path(tty);
    if (path.empty()) return false;
    // SECURITY NOTE: O_NOFOLLOW and the checks below: the daemon writes only to a terminal
    // device, never through a link or to a file that took the terminal's name. O_NOCTTY: it
    // never becomes the daemon's controlling terminal. O_NONBLOCK: a terminal that does not
    // take the line (scroll lock, flow control) cannot stall the event loop.
    const int fd = ::open(path.c_str(), O_WRONLY | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st {};
    bool ok = ::fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && ::isatty(fd) == 1;
    if (ok) {
        const std::string text = "\r\n" + line + "\r\n";
        ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    }
    ::close(fd);
    return ok;
}

namespace {

// Field `n` (3 or more) of /proc/<pid>/stat, counted after the command name; "" if unreadable.
std::string stat_field(pid_t pid, int n) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!in || !std::getline(in, line)) return {};
    const auto close = line.rfind(')');
    if (close == std::string::npos) return {};
    std::istringstream rest(line.substr(close + 1));
    std::string field;
    for (int i = 3; i <= n; ++i)
        if (!(rest >> field)) return {};
    return field;
}

// "/dev/pts/N" or "/dev/ttyN" for a tty_nr (the kernel's dev_t encoding of field 7).
std::string tty_of_device(unsigned long long nr) {
    const unsigned long long major = (nr >> 8) & 0xfff;
    const unsigned long long minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);
    if (major >= 136 && major <= 143) return "/dev/pts/" + std::to_string((major - 136) * 256 + minor);
    if (major == 4 && minor >= 1 && minor < 64) return "/dev/tty" + std::to_string(minor);
    return {};
}

} // namespace

std::string terminal_below(pid_t pid) {
    std::vector<pid_t> queue{pid};
    for (std::size_t i = 0; i < queue.size() && i < k_max_walk; ++i) {
        const std::string nr = stat_field(queue[i], 7);
        if (!nr.empty() && nr != "0" && nr.find_first_not_of("0123456789") == std::string::npos) {
            const std::string path = tty_of_device(std::stoull(nr));
            if (!path.empty()) return path;
        }
        const std::string p = std::to_string(queue[i]);
        std::ifstream children("/proc/" + p + "/task/" + p + "/children");
        long child = 0;
        while (children >> child)
            if (child > 1) queue.push_back(static_cast<pid_t>(child));
    }
    return {};
}

SignalResult signal_if_same(pid_t pid, std::uint64_t start_time, int sig) {
    // SECURITY NOTE: never 0, 1 or a negative pid (the daemon's own group, init, a process
    // group), and never a pid whose process is not the one recorded. The window between this
    // read and kill() is a few microseconds; a pid would have to be freed and reused in it.
    if (pid <= 1) return SignalResult::gone;
    const auto now = start_time_of(pid);
    if (now == k_unreadable) {
        errno = EAGAIN; // not known to be gone: said as a failure, tried again later
        return SignalResult::failed;
    }
    if (!now || *now != start_time) return SignalResult::gone;
    if (::kill(pid, sig) == 0) return SignalResult::sent;
    return errno == ESRCH ? SignalResult::gone : SignalResult::failed;
}

std::string format_left(std::int64_t s) {
    if (s < 0) s = 0;
    if (s >= 3600 && s % 3600 == 0) return std::to_string(s / 3600) + "h";
    if (s >= 60 && s % 60 == 0) return std::to_string(s / 60) + "m";
    if (s >= 60) return std::to_string(s / 60) + "m" + std::to_string(s % 60) + "s";
    return std::to_string(s) + "s";
}

Registry::Registry(Effects effects) : m_effects(std::move(effects)) {
    if (!m_effects.now_unix) m_effects.now_unix = system_now_unix;
}

void Registry::schedule(Session& s, Clock::time_point next) {
    if (s.next != Clock::time_point::max()) m_due.erase({s.next, s.id});
    s.next = next;
    if (next != Clock::time_point::max()) m_due.emplace(next, s.id);
}

void Registry::erase(std::map<std::uint64_t, Session>::iterator it) {
    if (it->second.next != Clock::time_point::max()) m_due.erase({it->second.next, it->first});
    m_sessions.erase(it);
}

void Registry::forget_gone() {
    for (auto it = m_sessions.begin(); it != m_sessions.end();) {
        const auto st = m_effects.start_time(it->second.pid);
        auto next = std::next(it);
        if (st != k_unreadable && (!st || *st != it->second.start_time)) erase(it);
        it = next;
    }
}

bool Registry::add(Session s, Clock::time_point now) {
    if (s.pid <= 1) return false;
    const auto st = m_effects.start_time(s.pid);
    if (!st || *st == k_unreadable) return false;
    s.start_time = *st;
    // The same process again (a sudo front end asks once; a PAM stack may report twice).
    for (auto it = m_sessions.begin(); it != m_sessions.end(); ++it)
        if (it->second.pid == s.pid && it->second.start_time == s.start_time) {
            erase(it);
            break;
        }
    if (m_sessions.size() >= m_options.max_sessions) forget_gone();
    if (m_sessions.size() >= m_options.max_sessions) return false;
    s.id = m_next_id++;
    s.stage = Session::Stage::live;
    s.next = Clock::time_point::max();
    if (s.started_unix == 0) s.started_unix = m_effects.now_unix();
    auto& stored = m_sessions.emplace(s.id, std::move(s)).first->second;
    schedule(stored, first_step(stored, now));
    return true;
}

Clock::time_point Registry::first_step(const Session& s, Clock::time_point now) const {
    if (s.keep || m_options.warn_before.count() <= 0) return s.expires;
    return std::max(now, s.expires - m_options.warn_before);
}

std::size_t Registry::rebind(const std::string& from, const std::string& to, std::int64_t expires_unix,
                             Clock::time_point expires, Clock::time_point now) {
    std::size_t moved = 0;
    for (auto& [id, s] : m_sessions) {
        if (s.grant_id != from || s.stage == Session::Stage::ending || s.stage == Session::Stage::kept) continue;
        s.grant_id = to;
        s.expires_unix = expires_unix;
        s.expires = expires;
        s.stage = Session::Stage::live;
        schedule(s, first_step(s, now));
        ++moved;
    }
    return moved;
}

std::optional<Session> Registry::remove(pid_t pid, const std::string& grant_id) {
    // The reporting process is connected, so its start time can be read: an older session
    // recorded under the same (since reused) pid is not the one that ended.
    const auto started = m_effects.start_time(pid);
    for (auto it = m_sessions.begin(); it != m_sessions.end(); ++it) {
        if (it->second.pid != pid) continue;
        if (started && *started != k_unreadable && it->second.start_time != *started) continue;
        if (!grant_id.empty() && it->second.grant_id != grant_id) continue;
        Session s = it->second;
        erase(it);
        return s;
    }
    return std::nullopt;
}

bool Registry::tell(const Session& s, const std::string& line) {
    // SECURITY NOTE: only the terminal the kernel says the session has now (the controlling
    // terminal of its process, or of the first process below it that has one). A terminal the
    // session gave up (`sudo cmd & disown; exit`) may be another user's login by now: the
    // terminal reported at admission is written only while it is still the session's.
    const std::string now = m_effects.find_tty(s.pid);
    if (now.empty()) return false;
    const std::string reported = tty_path(s.tty);
    if (!reported.empty() && reported != now) return false;
    return m_effects.write_tty(now, line);
}

Ended Registry::end(Session& s, const std::string& reason, const std::string& line, Clock::time_point now) {
    Ended e;
    e.reason = reason;
    s.end_reason = reason;
    const auto st = m_effects.start_time(s.pid);
    if (st == k_unreadable) {
        // Not known to be gone: nothing is signalled blind; the SIGKILL step looks again.
        e.signal_error = "cannot read /proc/" + std::to_string(s.pid) + "/stat now";
    } else if (!st || *st != s.start_time) {
        e.gone = true;
    } else {
        // The line goes first (once the process is known to be the recorded one, so a stranger
        // who now has the terminal is not told about somebody else's grant): the signals may
        // take the terminal away at once (sshd closes the pty as it ends).
        e.tty_told = tell(s, line);
        const auto first = m_effects.signal(s.pid, s.start_time, SIGHUP);
        const auto second = m_effects.signal(s.pid, s.start_time, SIGTERM);
        e.signalled = first == SignalResult::sent || second == SignalResult::sent;
        e.gone = !e.signalled && first == SignalResult::gone && second == SignalResult::gone;
        if (!e.signalled && !e.gone) e.signal_error = std::strerror(errno);
    }
    s.stage = Session::Stage::ending;
    e.session = s;
    schedule(s, now + m_options.grace);
    return e;
}

std::vector<Ended> Registry::end_grant(const std::string& grant_id, const std::string& reason, const std::string& line,
                                       Clock::time_point now) {
    std::vector<Ended> out;
    std::vector<std::uint64_t> gone;
    for (auto& [id, s] : m_sessions) {
        if (s.grant_id != grant_id || s.stage == Session::Stage::ending) continue;
        out.push_back(end(s, reason, line, now));
        if (out.back().gone) gone.push_back(id);
    }
    for (auto id : gone)
        if (const auto it = m_sessions.find(id); it != m_sessions.end()) erase(it);
    return out;
}

std::vector<Session> Registry::list() {
    forget_gone();
    std::vector<Session> out;
    for (const auto& [id, s] : m_sessions) out.push_back(s);
    return out;
}

std::optional<Clock::time_point> Registry::next_deadline() const {
    if (m_due.empty()) return std::nullopt;
    return m_due.begin()->first;
}

std::vector<Ended> Registry::tick(Clock::time_point now) {
    std::vector<Ended> out;
    while (!m_due.empty() && m_due.begin()->first <= now) {
        const auto id = m_due.begin()->second;
        m_due.erase(m_due.begin());
        const auto it = m_sessions.find(id);
        if (it == m_sessions.end()) continue;
        Session& s = it->second;
        s.next = Clock::time_point::max();
        const auto st = m_effects.start_time(s.pid);
        if (st == k_unreadable) { // EMFILE, ENOMEM...: not known to be gone; look again soon
            schedule(s, now + std::chrono::seconds(1));
            continue;
        }
        if (!st || *st != s.start_time) { // ended without a report (killed, crashed): forget it
            erase(it);
            continue;
        }
        switch (s.stage) {
        case Session::Stage::live:
            if (s.keep && now >= s.expires) {
                // on_expiry: keep: one record that the session outlived its grant, nothing ended.
                Ended e;
                e.reason = "kept";
                s.stage = Session::Stage::kept; // nothing more to do; listed until it ends
                e.session = s;
                out.push_back(std::move(e));
                break;
            }
            if (now < s.expires) {
                // Rounded up: "ends in 2m" two minutes ahead, not "1m59s".
                const auto left = std::chrono::ceil<std::chrono::seconds>(s.expires - now).count();
                tell(s, "jitgate: grant " + s.grant_id + " ends in " + format_left(left) + " (at " +
                            utc_clock(s.expires_unix) +
                            "); this session will then be ended. Save your work; ask for a new "
                            "approval to continue.");
                s.stage = Session::Stage::warned;
                schedule(s, s.expires);
                break;
            }
            [[fallthrough]];
        case Session::Stage::warned: {
            auto e = end(s, "expiry", "jitgate: grant " + s.grant_id + " has expired; ending this session now.", now);
            const bool gone = e.gone;
            out.push_back(std::move(e));
            if (gone) erase(it);
            break;
        }
        case Session::Stage::ending: {
            // SECURITY NOTE: the grace period is over and the process is still the recorded one.
            // Recorded either way (session.killed): the process never reports its own end.
            const auto result = m_effects.signal(s.pid, s.start_time, SIGKILL);
            if (result != SignalResult::gone) {
                Ended e;
                e.reason = "killed";
                e.signalled = result == SignalResult::sent;
                if (!e.signalled) e.signal_error = std::strerror(errno);
                e.session = s;
                out.push_back(std::move(e));
            }
            erase(it);
            break;
        }
        case Session::Stage::kept:
            break;
        }
    }
    return out;
}

} // namespace jitgate::live
