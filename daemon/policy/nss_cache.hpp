// daemon/policy/nss_cache.hpp — the daemon's cache in front of the user and group databases.
//
// Every check needs the claimed user's uid, the requester's name, the user's groups and the
// run-as user's home and shell: without a cache that is /etc/passwd opened and read four or
// five times and /etc/group twice per decision, each behind glibc's stat of nsswitch.conf
// (docs/PERFORMANCE.md). jitgated installs one Cache (jitgate::nss::install_lookups) at
// start-up; the plugins never do and keep asking NSS every time.
//
// SECURITY NOTE: a cached entry is used only while it cannot differ from what NSS would say now
// in a way that matters:
// - Every lookup first stats the files it depends on (/etc/passwd and /etc/nsswitch.conf; for
//   groups /etc/group too). If any of (st_dev, st_ino, st_size, st_mtim, st_ctim) differs from
//   what the entries were filled under, every entry is dropped. So with `files` sources a
//   removal from a group (vigr, gpasswd -d, usermod, or any rewrite of /etc/group, in place or
//   by rename) takes effect on the next decision after the file changed.
// - A change within the file system's timestamp tick that keeps the size would leave the stat
//   unchanged ("racy" in git's sense). Nothing is stored while a file's ctime is less than
//   k_racy_window old, so a later change of a file entries were filled from always moves its
//   ctime (assuming timestamps of 1 s granularity or finer; ext4, xfs, btrfs, tmpfs are ns).
// - When nsswitch.conf names any source other than `files` for passwd, group or initgroups
//   (Debian's default is `files systemd`; sss, ldap, winbind, compat, db), that source can
//   change with no file changing: every entry then expires k_source_ttl after it was looked
//   up. A removal from a group in such a source takes effect within k_source_ttl.
// - Entries from `files` alone also expire k_files_ttl after they were looked up: a backstop
//   for what a stat cannot see (timestamps coarser than 1 s, NFS attribute caching, an NSS call
//   such as getgrouplist that returns what it found when a source failed part-way).
// - nsswitch.conf is read as glibc reads it (a name without its colon counts too); a copy read
//   while the file is racy is read again once it has settled.
// - Names longer than k_max_key_bytes are never stored.
// - Within one decision (jitgate::nss::Batch) each file is stated once, by the first lookup:
//   a change in the microseconds between two lookups of the same decision shows from the next.
// - "No such user" is never kept longer than k_source_ttl, whatever the sources; a lookup that
//   failed (an error, not "no such entry") is never stored.
// - We do not trust the group list that sudo passes to its plugins instead: it is the groups
//   of the invoking process, set at login, so a removal from /etc/group would only take effect
//   when the user logged in again.
// - nscd or sssd's own cache, where the host runs one, sits under this one and keeps its own
//   (longer) expiry: the bound above is then ours plus theirs, as it already was without us.
#pragma once

#include "jitgate/passwd.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace jitgate::nss_cache {

// How long an entry from a non-`files` source (and any "no such user") stays usable. 1 s: a
// person removed from a group in LDAP or userdb and retrying sudo takes longer than that, and
// at most one lookup a second per name reaches the source (nscd keeps 600 s, sssd 5400 s).
inline constexpr std::chrono::seconds k_source_ttl{1};
// A file changed less than this long ago is "racy": nothing is stored from it (see above).
inline constexpr std::chrono::seconds k_racy_window{1};
// How long an entry from `files` alone stays usable while the files keep their stamps: a
// backstop for what a stat cannot see (a file system with coarse or cached times, an NSS
// module that answered partly), not the way changes are noticed.
inline constexpr std::chrono::seconds k_files_ttl{60};
// Entries per table (users by name, users by uid, group lists); a full table is emptied.
inline constexpr std::size_t k_max_entries = 4096;
// Names longer than this are never cached (no real user name is this long): bounds memory.
inline constexpr std::size_t k_max_key_bytes = 256;

struct Options {
    std::string passwd_path = "/etc/passwd";
    std::string group_path = "/etc/group";
    std::string nsswitch_path = "/etc/nsswitch.conf";
    std::chrono::nanoseconds source_ttl = k_source_ttl;
    std::chrono::nanoseconds files_ttl = k_files_ttl;
    std::chrono::nanoseconds racy_window = k_racy_window;
    std::size_t max_entries = k_max_entries;
    // Clocks in nanoseconds: CLOCK_MONOTONIC (expiry) and CLOCK_REALTIME (compared with the
    // files' ctime). Empty: the system's.
    std::function<std::int64_t()> monotonic_ns;
    std::function<std::int64_t()> realtime_ns;
    // Where misses go; nullptr: NSS itself (jitgate::nss::user_by_name ...). Not owned.
    nss::Lookups* source = nullptr;
};

// True if every source nsswitch.conf (its text) names for passwd, group and initgroups is
// `files`; false if any other is named or the passwd or group line is missing.
bool only_files(std::string_view nsswitch_conf);

// Thread-safe (one mutex; lookups come from the event loop only, so it is never contended).
class Cache final : public nss::Lookups {
public:
    explicit Cache(Options options = {});

    nss::Found user_by_name(const std::string& name, UserRecord& out) override;
    nss::Found user_by_uid(unsigned uid, UserRecord& out) override;
    nss::Found groups_of(const std::string& user, std::vector<std::string>& out) override;
    // Between begin_batch and end_batch (jitgate::nss::Batch, around one decision) each file is
    // stated once, by the first lookup that depends on it: the decision sees one version of
    // the databases, and pays at most one stat per file. Batches nest. Event loop only.
    void begin_batch() override;
    void end_batch() override;

    struct Stats {
        std::uint64_t hits = 0, misses = 0, flushes = 0;
        std::size_t entries = 0;
    };
    Stats stats() const;

private:
    struct Stamp {
        std::uint64_t dev = 0, ino = 0;
        std::int64_t size = 0, mtime_s = 0, mtime_ns = 0, ctime_s = 0, ctime_ns = 0;
        bool operator==(const Stamp&) const = default;
    };
    template <typename T>
    struct Entry {
        nss::Found found = nss::Found::no;
        T value{};
        std::int64_t expires_ns = 0; // monotonic
    };
    enum File { passwd_file = 0, group_file = 1, nsswitch_file = 2, file_count = 3 };
    // Stats the files of `mask` (bits of File) and drops every entry if any changed. Returns
    // whether entries may be used and stored now (false: a file cannot be read, or is racy).
    bool validate(unsigned mask);
    void clear();
    std::int64_t expiry_for(nss::Found found, std::int64_t now) const;
    template <typename Map, typename Key, typename T, typename Fetch>
    nss::Found lookup(Map& map, const Key& key, T& out, unsigned mask, Fetch&& fetch);

    Options m_options;
    mutable std::mutex m_mutex;
    std::optional<Stamp> m_stamps[file_count];
    bool m_only_files = false;
    std::unordered_map<std::string, Entry<UserRecord>> m_by_name;
    std::unordered_map<unsigned, Entry<UserRecord>> m_by_uid;
    std::unordered_map<std::string, Entry<std::vector<std::string>>> m_groups;
    Stats m_stats;
    int m_batch_depth = 0;
    unsigned m_batch_checked = 0;  // files stated in the open batch
    unsigned m_batch_unusable = 0; // of those, the ones that could not be stated or were racy
};

} // namespace jitgate::nss_cache
