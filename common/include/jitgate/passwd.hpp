// jitgate/passwd.hpp — the system's user and group databases (NSS), for plugins and daemon alike.
//
// One place for the reentrant getpw*_r / getgr*_r calls and their growing scratch space. Every
// function is thread-safe (reentrant NSS calls only) and never throws except std::bad_alloc.
// A failed lookup is never read as "nobody" or "no groups": callers fail closed.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace jitgate {

// Names of every group `user` belongs to (primary and supplementary), from the system's
// group database. nullopt if the user is unknown or a lookup failed (NSS error, a group too
// big for 4 MiB): callers must then fail closed, never read it as "no groups" (a `%group`
// deny rule would otherwise be skipped).
std::optional<std::vector<std::string>> group_names_of(const std::string& user);
// Name of `uid` / uid of `name` from the passwd database; nullopt if unknown or the lookup
// failed. Scratch space grows on ERANGE.
std::optional<std::string> user_name_of(unsigned uid);
std::optional<unsigned> uid_of(const std::string& name);
// Name of group `gid` from the group database; nullopt if unknown or the lookup failed.
std::optional<std::string> group_name_of(unsigned gid);
// True if `user` is in `group` (false for an empty group name or a failed lookup).
bool user_in_group(const std::string& user, const std::string& group);

} // namespace jitgate
