// daemon/policy/identity.cpp — peer credentials and /proc facts about the requesting process.
#include "daemon/policy/identity.hpp"

#include "jitgate/passwd.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <limits>
#include <string_view>

namespace jitgate::identity {

std::optional<Peer> peer_of(int fd) noexcept {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) return std::nullopt;
    return Peer{cred.pid, cred.uid, cred.gid};
}

namespace {

// Reads /proc/<pid>/<name> into `buf` with open/read/close (no iostreams, no allocation),
// until end of file, a full buffer, or `enough` says the text so far holds what is wanted (a
// /proc read returns the whole of a small file at once: one read, not a second for EOF).
// Returns the bytes read (at most size - 1, NUL-terminated), or -1 if it cannot be read.
template <typename Enough>
ssize_t read_proc(pid_t pid, const char* name, char* buf, std::size_t size, Enough&& enough) {
    char path[64];
    const int len = std::snprintf(path, sizeof path, "/proc/%d/%s", static_cast<int>(pid), name);
    if (pid <= 0 || len <= 0 || static_cast<std::size_t>(len) >= sizeof path) return -1;
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return -1;
    std::size_t used = 0;
    while (used + 1 < size) {
        const ssize_t n = ::read(fd, buf + used, size - 1 - used);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            ::close(fd);
            return -1;
        }
        if (n == 0) break;
        used += static_cast<std::size_t>(n);
        if (enough(std::string_view(buf, used))) break;
    }
    ::close(fd);
    buf[used] = '\0';
    return static_cast<ssize_t>(used);
}

// The unsigned decimal at the start of `s` (after blanks), nullopt if none or above `max`.
std::optional<std::uint64_t> leading_number(std::string_view s, std::uint64_t max) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end == s.data() || value > max) return std::nullopt;
    return value;
}

} // namespace

std::optional<uid_t> real_uid_of(pid_t pid) {
    // The "Uid:" line is the ninth of ~55 (~1.5 KiB): 4 KiB holds it on every kernel we know;
    // if a future kernel moved it further, the read fails closed (nullopt), it never guesses.
    char buf[4096];
    const ssize_t n = read_proc(pid, "status", buf, sizeof buf, [](std::string_view text) {
        const auto at = text.find("\nUid:");
        return at != std::string_view::npos && text.find('\n', at + 1) != std::string_view::npos;
    });
    if (n <= 0) return std::nullopt;
    const std::string_view text(buf, static_cast<std::size_t>(n));
    std::size_t at = text.starts_with("Uid:") ? 0 : text.find("\nUid:");
    if (at == std::string_view::npos) return std::nullopt;
    at += text[at] == '\n' ? 5 : 4;
    const auto eol = text.find('\n', at);
    if (eol == std::string_view::npos) return std::nullopt; // a cut line: do not trust it
    const auto real = leading_number(text.substr(at, eol - at), std::numeric_limits<uid_t>::max());
    if (!real) return std::nullopt;
    return static_cast<uid_t>(*real);
}

std::int64_t login_uid_of(pid_t pid) {
    // The kernel writes the whole value (at most 10 digits) in one read.
    char buf[32];
    const ssize_t n = read_proc(pid, "loginuid", buf, sizeof buf, [](std::string_view) { return true; });
    if (n <= 0 || n > 11) return -1;
    std::string_view text(buf, static_cast<std::size_t>(n));
    if (text.back() == '\n') text.remove_suffix(1);
    if (text.empty() || text.size() > 10 || text.find_first_not_of("0123456789") != std::string_view::npos) return -1;
    const auto value = leading_number(text, static_cast<std::uint64_t>(k_login_uid_unset));
    if (!value) return -1;
    return static_cast<std::int64_t>(*value) >= k_login_uid_unset ? -1 : static_cast<std::int64_t>(*value);
}

std::optional<Requester> requester_of(const Peer& peer, std::int64_t account_uid, std::optional<uid_t> real_uid) {
    const auto real = real_uid ? real_uid : real_uid_of(peer.pid);
    if (!real) return std::nullopt;
    const nss::Batch lookups; // the two names, each file checked once (nss_cache.hpp)
    Requester r;
    r.uid = *real != 0 ? static_cast<std::int64_t>(*real) : account_uid;
    r.name = r.uid >= 0 ? user_name_of(static_cast<unsigned>(r.uid)).value_or("uid " + std::to_string(r.uid))
                        : std::string();
    r.login_uid = login_uid_of(peer.pid);
    if (r.login_uid >= 0)
        r.login_name = user_name_of(static_cast<unsigned>(r.login_uid)).value_or("uid " + std::to_string(r.login_uid));
    return r;
}

} // namespace jitgate::identity
