// daemon/policy/identity.hpp — who is on the other end of the socket, from the kernel, never from a claim.
// Name and group lookups are jitgate/passwd.hpp (common/), which the plugins share.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <sys/types.h>

namespace jitgate::identity {

struct Peer {
    pid_t pid = -1;
    uid_t uid = static_cast<uid_t>(-1); // effective uid at connect time (SO_PEERCRED)
    gid_t gid = static_cast<gid_t>(-1);
};

// SO_PEERCRED of a connected Unix socket; nullopt if the kernel does not say.
std::optional<Peer> peer_of(int fd) noexcept;

// Real uid of a live process, read from /proc/<pid>/status ("Uid:" first field): the /proc
// path of ids_of (below), for kernels without pidfd credentials. nullopt if it cannot be read.
// SECURITY NOTE: sudo is setuid root, so its real uid is the invoking user's; this is how the
// daemon checks that the user a sudo front end claims is the one who ran it. A pid names a
// process only until that process is reaped: the number is the peer's while the peer lives
// (it is connected to us, and normally holds the socket until it has its answer), but a peer
// that exited while its descriptor stays open elsewhere (inherited, passed) leaves a number
// that another process can take. ids_of closes that gap where the kernel lets it.
std::optional<uid_t> real_uid_of(pid_t pid);

// The kernel's "unset" audit login uid ((uid_t)-1), as /proc/<pid>/loginuid shows it.
inline constexpr std::int64_t k_login_uid_unset = 4294967295;

// The audit login uid of a live process, from /proc/<pid>/loginuid: the uid pam_loginuid
// recorded when the session that the process belongs to began, inherited by every child
// (su, sudo, newgrp keep it). Returns -1 where the kernel says there is none: the unset value,
// or a kernel that keeps no login uids (no /proc/self/loginuid: built without audit). Returns
// nullopt if it cannot be read (the process is gone, descriptors are exhausted, anything
// else): callers refuse, since "no session owner" would let a shared account used from the
// requester's own session pass the self-approval check. Never throws. Thread-safe.
// SECURITY NOTE: what the login uid proves is limited (docs/pam.md, "Who asks"): it is set
// once per session by pam_loginuid; an unprivileged process can never change it; root (with
// CAP_AUDIT_CONTROL) can change it unless the kernel's loginuid_immutable is set. It names
// the person who logged in only where the host runs pam_loginuid in every login service.
std::optional<std::int64_t> login_uid_of(pid_t pid);

// How ids_of reads: `pidfd_where_supported` in the daemon; `proc` forces the /proc path that
// kernels before 6.13 take, so that tests can run both on one kernel.
enum class ReadVia { pidfd_where_supported, proc };
// Whether ids_of reads the login uid as well (a check needs it; a finished report does not).
enum class LoginUid { skip, read };

// What the kernel says of the process at the other end of a connected socket.
struct PeerIds {
    uid_t real_uid = static_cast<uid_t>(-1);
    std::int64_t login_uid = -1; // as login_uid_of: -1 unset (or LoginUid::skip)
    bool via_pidfd = false;      // read through a pidfd (else /proc): for tests and measurements
};

// The real uid (and, if asked, the audit login uid) of the process that `peer` (peer_of of
// `socket_fd`, a connected Unix socket) names. Identity is that of real_uid_of and
// login_uid_of; only how it is read differs:
// - pidfd: getsockopt(SO_PEERPIDFD) (Linux 6.5) gives a pidfd of the process that connected;
//   ioctl(PIDFD_GET_INFO) (Linux 6.13) gives its real uid and its pid, which must be peer.pid.
//   The login uid is read from /proc/<pid>/loginuid first, before getsockopt (so a read never
//   needs two descriptors at once: with one free, a check must not lose its login uid), and
//   the ioctl then confirms the number was the peer's all along. No /proc/<pid>/status
//   for the kernel to format: 6-9 us less per check, 0.57x (docs/PERFORMANCE.md, "The peer
//   through a pidfd").
// - /proc: real_uid_of, then login_uid_of, as before pidfds: where the kernel lacks either
//   call (ENOPROTOOPT from getsockopt: before 6.5; ENOTTY, EINVAL or EOPNOTSUPP from the
//   ioctl: 6.5 to 6.12); remembered for the life of the process (the kernel stays the same).
// Returns nullopt (callers refuse: fail closed) if the process cannot be read: it is gone,
// its pid is no longer peer.pid, the pidfd or /proc says nothing, its login uid (if asked)
// cannot be read, or any other error (descriptors exhausted: EMFILE). One descriptor at a
// time; the pidfd is closed before returning. Never throws. Thread-safe.
// SECURITY NOTE: what the pidfd path guarantees. A pidfd names one process for good (its
// struct pid is never given another number), and PIDFD_GET_INFO succeeds only while that
// process has not been reaped; the kernel frees a pid number for another process only when
// the process holding it is reaped. So when the ioctl succeeds after the login uid was read
// and reports pid == peer.pid, the number peer.pid belonged to the process that connected
// all the time from before the read until the ioctl: the login uid and the real uid were both
// read from that process, never from one that took over its number after it was reaped (the
// /proc path cannot tell: see real_uid_of). A peer that exited but is not yet reaped (a
// zombie) still holds its number and is read like a live one, as on the /proc path. A peer
// already reaped is refused (ESRCH from the ioctl, or SO_PEERPIDFD itself fails: EINVAL,
// ESRCH or ENOENT by kernel version), never read from /proc.
// It does not say that the process still holds the socket (it may have handed it on; the
// facts are those of the process that connected, as SO_PEERCRED's are), nor that its
// credentials are those it had at connect (both paths read its current ones, between the
// read and the decision it can still change them: setresuid, or execve of a setuid program),
// nor anything if /proc is not the daemon's pid namespace's (the unit's own /proc is).
std::optional<PeerIds> ids_of(int socket_fd, const Peer& peer, LoginUid login,
                              ReadVia via = ReadVia::pidfd_where_supported);

// Who asks for an action: the person, as the kernel sees the requesting process.
struct Requester {
    std::int64_t uid = -1;       // the caller's real uid; for a root service (sshd, login): the account
    std::string name;            // user name of `uid` ("uid N" if unknown)
    std::int64_t login_uid = -1; // audit login uid of the caller's session; -1 unset or unknown
    std::string login_name;      // user name of login_uid, empty if unset
};

// The requester of a check from the peer whose `ids` were just read (ids_of with
// LoginUid::read) that names `account` (uid `account_uid`) as the user: the real uid of the
// peer process when it is not root (su, sudo: the person who ran the setuid program), else
// the account itself (sshd and login run as root for the person logging in). Reads no /proc:
// one decision reads the peer once (ids_of). Looks the names up (NSS). Never throws but
// std::bad_alloc.
Requester requester_of(const PeerIds& ids, std::int64_t account_uid);

} // namespace jitgate::identity
