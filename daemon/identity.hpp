// daemon/identity.hpp — who is on the other end of the socket, from the kernel, never from a claim.
#pragma once

#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace jitgate::identity {

struct Peer {
    pid_t pid = -1;
    uid_t uid = static_cast<uid_t>(-1); // effective uid at connect time (SO_PEERCRED)
    gid_t gid = static_cast<gid_t>(-1);
};

// SO_PEERCRED of a connected Unix socket; nullopt if the kernel does not say.
std::optional<Peer> peer_of(int fd) noexcept;

// Name of `uid` from the passwd database; nullopt if unknown.
std::optional<std::string> user_name(uid_t uid);
// uid of `name`; nullopt if unknown.
std::optional<uid_t> user_uid(const std::string& name);
// Names of all groups `user` belongs to (primary and supplementary); nullopt if the user is
// unknown or the lookup failed (callers fail closed).
std::optional<std::vector<std::string>> groups_of(const std::string& user);

// Real uid of a live process, read from /proc/<pid>/status ("Uid:" first field).
// SECURITY NOTE: sudo is setuid root, so its real uid is the invoking user's; this is how the
// daemon checks that the user a sudo front end claims is the one who ran it. PIDs can be
// reused, but the peer is connected to us, so its pid stays alive and is not reused while
// we read its status.
std::optional<uid_t> real_uid_of(pid_t pid);

} // namespace jitgate::identity
