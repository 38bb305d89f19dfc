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

// Real uid of a live process, read from /proc/<pid>/status ("Uid:" first field).
// SECURITY NOTE: sudo is setuid root, so its real uid is the invoking user's; this is how the
// daemon checks that the user a sudo front end claims is the one who ran it. PIDs can be
// reused, but the peer is connected to us, so its pid stays alive and is not reused while
// we read its status.
std::optional<uid_t> real_uid_of(pid_t pid);

// The kernel's "unset" audit login uid ((uid_t)-1), as /proc/<pid>/loginuid shows it.
inline constexpr std::int64_t k_login_uid_unset = 4294967295;

// The audit login uid of a live process, from /proc/<pid>/loginuid: the uid pam_loginuid
// recorded when the session that the process belongs to began, inherited by every child
// (su, sudo, newgrp keep it). Returns -1 if the kernel does not say (no audit support, the
// process is gone) and -1 for the unset value too: callers treat both as "no session owner
// known". Never throws. Thread-safe.
// SECURITY NOTE: what the login uid proves is limited (docs/pam.md, "Who asks"): it is set
// once per session by pam_loginuid; an unprivileged process can never change it; root (with
// CAP_AUDIT_CONTROL) can change it unless the kernel's loginuid_immutable is set. It names
// the person who logged in only where the host runs pam_loginuid in every login service.
std::int64_t login_uid_of(pid_t pid);

// Who asks for an action: the person, as the kernel sees the requesting process.
struct Requester {
    std::int64_t uid = -1;       // the caller's real uid; for a root service (sshd, login): the account
    std::string name;            // user name of `uid` ("uid N" if unknown)
    std::int64_t login_uid = -1; // audit login uid of the caller's session; -1 unset or unknown
    std::string login_name;      // user name of login_uid, empty if unset
};

// The requester of a check from the connected `peer` that names `account` (uid `account_uid`)
// as the user: the real uid of the peer process when it is not root (su, sudo: the person who
// ran the setuid program), else the account itself (sshd and login run as root for the person
// logging in). nullopt if the peer's /proc entry cannot be read (callers refuse: fail closed).
// `real_uid`: the peer's real uid if the caller has just read it (real_uid_of), so that one
// decision reads /proc/<pid>/status once; nullopt reads it here.
std::optional<Requester> requester_of(const Peer& peer, std::int64_t account_uid,
                                      std::optional<uid_t> real_uid = std::nullopt);

} // namespace jitgate::identity
