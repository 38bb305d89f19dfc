// daemon/policy/identity.cpp — peer credentials, and what a pidfd or /proc says of the requesting process.
#include "daemon/policy/identity.hpp"

#include "jitgate/passwd.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <limits>
#include <string_view>

// The pidfd interface, for headers older than the kernels that have it (Debian 12's
// linux-libc-dev 6.1 has neither constant). <linux/pidfd.h> is not included: its
// <linux/fcntl.h> clashes with glibc's <fcntl.h>.
#ifndef SO_PEERPIDFD
// Linux 6.5: include/uapi/asm-generic/socket.h, and arch/{sparc,parisc}/include/uapi/asm/socket.h.
#if defined(__sparc__)
#define SO_PEERPIDFD 0x0056
#elif defined(__hppa__)
#define SO_PEERPIDFD 0x404B
#else
#define SO_PEERPIDFD 77
#endif
#endif
// include/uapi/linux/pidfd.h, Linux 6.13 (PIDFD_GET_INFO and struct pidfd_info).
#ifndef PIDFS_IOCTL_MAGIC
#define PIDFS_IOCTL_MAGIC 0xFF
#endif
#ifndef PIDFD_INFO_PID
#define PIDFD_INFO_PID (1UL << 0)
#endif
#ifndef PIDFD_INFO_CREDS
#define PIDFD_INFO_CREDS (1UL << 1)
#endif

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

// struct pidfd_info as Linux 6.13 published it (include/uapi/linux/pidfd.h,
// PIDFD_INFO_SIZE_VER0: 64 bytes), defined here whatever the headers have: the ioctl's number
// carries the struct's size, and every kernel with PIDFD_GET_INFO answers a 64-byte one (a
// later kernel copies out the part of its longer struct that fits).
struct PidfdInfoV0 {
    std::uint64_t mask;
    std::uint64_t cgroupid;
    std::uint32_t pid;
    std::uint32_t tgid;
    std::uint32_t ppid;
    std::uint32_t ruid;
    std::uint32_t rgid;
    std::uint32_t euid;
    std::uint32_t egid;
    std::uint32_t suid;
    std::uint32_t sgid;
    std::uint32_t fsuid;
    std::uint32_t fsgid;
    std::int32_t exit_code;
};
static_assert(sizeof(PidfdInfoV0) == 64);
constexpr unsigned long k_pidfd_get_info = _IOWR(PIDFS_IOCTL_MAGIC, 11, PidfdInfoV0); // PIDFD_GET_INFO

// Set once the kernel has said it lacks SO_PEERPIDFD or PIDFD_GET_INFO: later reads go
// straight to /proc instead of failing the same call again each decision.
std::atomic<bool> g_pidfd_unsupported{false};

enum class PidfdRead { read, unsupported, refused };

// The pidfd path of ids_of (its contract there).
PidfdRead read_via_pidfd(int socket_fd, const Peer& peer, LoginUid login, PeerIds& out) {
    // Read first, with no other descriptor held; the ioctl below confirms the number was
    // still the peer's (header).
    std::int64_t login_uid = -1;
    if (login == LoginUid::read) {
        const auto read = login_uid_of(peer.pid);
        if (!read) return PidfdRead::refused;
        login_uid = *read;
    }
    int pidfd = -1;
    socklen_t len = sizeof pidfd;
    if (::getsockopt(socket_fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0)
        // Only ENOPROTOOPT says the kernel (before 6.5) does not know the option. EINVAL, ESRCH
        // or ENOENT (which one depends on the kernel's version) say the peer was reaped: no
        // /proc read then, its pid may already name another process (dbus-broker reads them the
        // same way). ENODATA (no peer), EMFILE and the rest: fail closed.
        return errno == ENOPROTOOPT ? PidfdRead::unsupported : PidfdRead::refused;
    if (len != sizeof pidfd || pidfd < 0) {
        if (pidfd >= 0) ::close(pidfd);
        return PidfdRead::refused;
    }
    PidfdInfoV0 info{};
    info.mask = PIDFD_INFO_PID | PIDFD_INFO_CREDS;
    const int rc = ::ioctl(pidfd, k_pidfd_get_info, &info);
    const int err = errno;
    ::close(pidfd);
    if (rc != 0)
        // ENOTTY: no pidfd ioctls (before 6.11) or no PIDFD_GET_INFO; EINVAL: 6.11 and 6.12
        // refuse an argument to their namespace ioctls. ESRCH: the peer was reaped.
        return err == ENOTTY || err == EINVAL || err == EOPNOTSUPP ? PidfdRead::unsupported : PidfdRead::refused;
    constexpr std::uint64_t wanted = PIDFD_INFO_PID | PIDFD_INFO_CREDS;
    if ((info.mask & wanted) != wanted || static_cast<pid_t>(info.pid) != peer.pid) return PidfdRead::refused;
    out.real_uid = static_cast<uid_t>(info.ruid);
    out.login_uid = login_uid;
    out.via_pidfd = true;
    return PidfdRead::read;
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

std::optional<std::int64_t> login_uid_of(pid_t pid) {
    // A kernel without audit keeps no login uids: no loginuid file in any /proc/<pid>.
    // Only ENOENT says so: any other failure to look keeps the strict reading (fail closed).
    static const bool kernel_has_login_uids = ::access("/proc/self/loginuid", F_OK) == 0 || errno != ENOENT;
    if (!kernel_has_login_uids) return pid > 0 ? std::optional<std::int64_t>(-1) : std::nullopt;
    // The kernel writes the whole value (at most 10 digits) in one read.
    char buf[32];
    const ssize_t n = read_proc(pid, "loginuid", buf, sizeof buf, [](std::string_view) { return true; });
    if (n <= 0 || n > 11) return std::nullopt;
    std::string_view text(buf, static_cast<std::size_t>(n));
    if (text.back() == '\n') text.remove_suffix(1);
    if (text.empty() || text.size() > 10 || text.find_first_not_of("0123456789") != std::string_view::npos)
        return std::nullopt;
    const auto value = leading_number(text, static_cast<std::uint64_t>(k_login_uid_unset));
    if (!value) return std::nullopt;
    return static_cast<std::int64_t>(*value) >= k_login_uid_unset ? -1 : static_cast<std::int64_t>(*value);
}

std::optional<PeerIds> ids_of(int socket_fd, const Peer& peer, LoginUid login, ReadVia via) {
    if (peer.pid <= 0) return std::nullopt; // not in our pid namespace, or no peer at all
    if (via == ReadVia::pidfd_where_supported && !g_pidfd_unsupported.load(std::memory_order_relaxed)) {
        PeerIds ids;
        switch (read_via_pidfd(socket_fd, peer, login, ids)) {
        case PidfdRead::read:
            return ids;
        case PidfdRead::refused:
            return std::nullopt;
        case PidfdRead::unsupported:
            g_pidfd_unsupported.store(true, std::memory_order_relaxed);
            break;
        }
    }
    const auto real = real_uid_of(peer.pid);
    if (!real) return std::nullopt;
    PeerIds ids;
    ids.real_uid = *real;
    if (login == LoginUid::read) {
        const auto login_uid = login_uid_of(peer.pid);
        if (!login_uid) return std::nullopt;
        ids.login_uid = *login_uid;
    }
    return ids;
}

Requester requester_of(const PeerIds& ids, std::int64_t account_uid) {
    const nss::Batch lookups; // the two names, each file checked once (nss_cache.hpp)
    Requester r;
    r.uid = ids.real_uid != 0 ? static_cast<std::int64_t>(ids.real_uid) : account_uid;
    r.name = r.uid >= 0 ? user_name_of(static_cast<unsigned>(r.uid)).value_or("uid " + std::to_string(r.uid))
                        : std::string();
    r.login_uid = ids.login_uid;
    if (r.login_uid >= 0)
        r.login_name = user_name_of(static_cast<unsigned>(r.login_uid)).value_or("uid " + std::to_string(r.login_uid));
    return r;
}

} // namespace jitgate::identity
