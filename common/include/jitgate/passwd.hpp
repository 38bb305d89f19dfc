// jitgate/passwd.hpp — the system's user and group databases (NSS), for plugins and daemon alike.
//
// One place for the reentrant getpw*_r / getgr*_r calls and their growing scratch space. Every
// function is thread-safe (reentrant NSS calls only) and never throws except std::bad_alloc.
// A failed lookup is never read as "nobody" or "no groups": callers fail closed.
//
// The plugins call NSS directly, every time. The daemon may install a cache in front of it
// (install_lookups; daemon/policy/nss_cache.hpp): nothing here caches on its own.
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

// One passwd entry, as much of it as jitgate uses.
struct UserRecord {
    std::string name;
    unsigned uid = 0;
    unsigned gid = 0;
    std::string home;
    std::string shell; // as the database has it (may be empty)
};
// The passwd entry of `name`; nullopt if unknown or the lookup failed.
std::optional<UserRecord> user_record_of(const std::string& name);

namespace nss {

// What one lookup found: the entry, no such entry, or an error (which is never "no such").
enum class Found { yes, no, error };

// The uncached lookups, straight to NSS.
Found user_by_name(const std::string& name, UserRecord& out);
Found user_by_uid(unsigned uid, UserRecord& out);
Found groups_of(const std::string& user, std::vector<std::string>& out);

// What the functions above (jitgate::user_name_of ...) ask. By default NSS itself (the
// functions in this namespace); the daemon installs its cache here at start-up, before any
// thread starts. Plugins never install one.
class Lookups {
public:
    virtual ~Lookups() = default;
    virtual Found user_by_name(const std::string& name, UserRecord& out) = 0;
    virtual Found user_by_uid(unsigned uid, UserRecord& out) = 0;
    virtual Found groups_of(const std::string& user, std::vector<std::string>& out) = 0;
    // Brackets the lookups of one decision (Batch); nothing by default.
    virtual void begin_batch() {}
    virtual void end_batch() {}
};
// Installs `lookups` (nullptr: back to NSS itself). It must outlive every lookup.
void install_lookups(Lookups* lookups) noexcept;

// The lookups of one decision, while it lives: the installed Lookups may treat them as one
// (the daemon's cache checks each file once; nss_cache.hpp). Nothing when none is installed.
class Batch {
public:
    Batch();
    ~Batch();
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

private:
    Lookups* m_lookups;
};

} // namespace nss

} // namespace jitgate
