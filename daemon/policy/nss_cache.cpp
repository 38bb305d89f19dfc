// daemon/policy/nss_cache.cpp — the daemon's user and group lookup cache (nss_cache.hpp).
#include "daemon/policy/nss_cache.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <limits>

namespace jitgate::nss_cache {
namespace {

std::int64_t clock_ns(clockid_t id) {
    timespec ts{};
    ::clock_gettime(id, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// The whole of a small file (nsswitch.conf), nullopt if it cannot be read or exceeds 1 MiB.
std::optional<std::string> read_small_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return std::nullopt;
    std::string text;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 || text.size() + static_cast<std::size_t>(n) > (1u << 20)) {
            ::close(fd);
            return std::nullopt;
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return text;
}

// Forwards to NSS itself.
class Direct final : public nss::Lookups {
public:
    nss::Found user_by_name(const std::string& name, UserRecord& out) override { return nss::user_by_name(name, out); }
    nss::Found user_by_uid(unsigned uid, UserRecord& out) override { return nss::user_by_uid(uid, out); }
    nss::Found groups_of(const std::string& user, std::vector<std::string>& out) override {
        return nss::groups_of(user, out);
    }
};
Direct g_direct;

} // namespace

bool only_files(std::string_view conf) {
    // Read as glibc reads it (nss_database.c): the database name ends at a blank or ':', the colon
    // may be missing, and for a database named twice the last line counts. Stricter where it can
    // be: any passwd/group/initgroups line naming anything but `files` (or nothing) is "not only
    // files", wherever it stands.
    bool saw_passwd = false, saw_group = false;
    const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
    while (!conf.empty()) {
        const auto eol = conf.find('\n');
        std::string_view line = conf.substr(0, eol);
        conf.remove_prefix(eol == std::string_view::npos ? conf.size() : eol + 1);
        line = line.substr(0, line.find('#'));
        while (!line.empty() && blank(line.front())) line.remove_prefix(1);
        std::size_t name_end = 0;
        while (name_end < line.size() && !blank(line[name_end]) && line[name_end] != ':') ++name_end;
        const std::string_view db = line.substr(0, name_end);
        if (db != "passwd" && db != "group" && db != "initgroups") continue;
        if (db == "passwd") saw_passwd = true;
        if (db == "group") saw_group = true;
        std::string_view rest = line.substr(name_end);
        while (!rest.empty() && blank(rest.front())) rest.remove_prefix(1);
        if (!rest.empty() && rest.front() == ':') rest.remove_prefix(1);
        bool any_source = false;
        while (!rest.empty()) {
            const char c = rest.front();
            if (blank(c)) {
                rest.remove_prefix(1);
            } else if (c == '[') { // an action, [NOTFOUND=return]: not a source
                const auto close = rest.find(']');
                if (close == std::string_view::npos) return false; // malformed: assume the worst
                rest.remove_prefix(close + 1);
            } else {
                const auto end = rest.find_first_of(" \t\r[");
                if (rest.substr(0, end) != "files") return false;
                any_source = true;
                rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
            }
        }
        if (!any_source) return false; // no source: glibc's default for it, which is not ours to guess
    }
    return saw_passwd && saw_group;
}

namespace {
std::size_t key_size(const std::string& key) {
    return key.size();
}
std::size_t key_size(unsigned) {
    return 0;
}
} // namespace

Cache::Cache(Options options) : m_options(std::move(options)) {
    if (!m_options.monotonic_ns) m_options.monotonic_ns = [] { return clock_ns(CLOCK_MONOTONIC); };
    if (!m_options.realtime_ns) m_options.realtime_ns = [] { return clock_ns(CLOCK_REALTIME); };
    if (m_options.source == nullptr) m_options.source = &g_direct;
}

void Cache::clear() {
    if (!m_by_name.empty() || !m_by_uid.empty() || !m_groups.empty()) ++m_stats.flushes;
    m_by_name.clear();
    m_by_uid.clear();
    m_groups.clear();
}

bool Cache::validate(unsigned mask) {
    const std::string* paths[file_count] = {&m_options.passwd_path, &m_options.group_path, &m_options.nsswitch_path};
    const std::int64_t racy_ns = m_options.racy_window.count();
    std::optional<std::int64_t> now_real;
    bool usable = true;
    for (int i = 0; i < file_count; ++i) {
        const unsigned bit = 1u << i;
        if ((mask & bit) == 0) continue;
        if (m_batch_depth > 0 && (m_batch_checked & bit) != 0) { // stated once in this batch
            if ((m_batch_unusable & bit) != 0) usable = false;
            continue;
        }
        bool file_usable = true;
        struct stat st {};
        if (::stat(paths[i]->c_str(), &st) != 0) {
            // Cannot tell whether it changed: forget everything, use and store nothing.
            clear();
            m_stamps[i].reset();
            file_usable = false;
        } else {
            const Stamp now{static_cast<std::uint64_t>(st.st_dev),         static_cast<std::uint64_t>(st.st_ino),
                            static_cast<std::int64_t>(st.st_size),         static_cast<std::int64_t>(st.st_mtim.tv_sec),
                            static_cast<std::int64_t>(st.st_mtim.tv_nsec), static_cast<std::int64_t>(st.st_ctim.tv_sec),
                            static_cast<std::int64_t>(st.st_ctim.tv_nsec)};
            if (m_stamps[i] != now) {
                // First sight of the file (or again after it could not be stated, which cleared
                // everything): nothing stored so far depends on it, so nothing is dropped.
                if (m_stamps[i]) clear();
                m_stamps[i] = now;
                if (i == nsswitch_file) {
                    const auto text = read_small_file(*paths[i]);
                    m_only_files = text && only_files(*text);
                }
            }
            if (!now_real) now_real = m_options.realtime_ns();
            const std::int64_t ctime_ns = now.ctime_s * 1'000'000'000 + now.ctime_ns;
            if (*now_real - ctime_ns < racy_ns) {
                file_usable = false; // racy (or the clock went back)
                // What was read of a racy nsswitch.conf may be half a rewrite that a same-size
                // rewrite in the same tick leaves unnoticed: read it again once it has settled.
                if (i == nsswitch_file) {
                    m_stamps[i].reset();
                    m_only_files = false;
                }
            }
        }
        if (!file_usable) usable = false;
        if (m_batch_depth > 0) {
            m_batch_checked |= bit;
            if (!file_usable) m_batch_unusable |= bit;
        }
    }
    return usable;
}

void Cache::begin_batch() {
    std::lock_guard lock(m_mutex);
    ++m_batch_depth;
}

void Cache::end_batch() {
    std::lock_guard lock(m_mutex);
    if (m_batch_depth > 0 && --m_batch_depth == 0) m_batch_checked = m_batch_unusable = 0;
}

std::int64_t Cache::expiry_for(nss::Found found, std::int64_t now) const {
    if (found == nss::Found::yes && m_only_files) return now + m_options.files_ttl.count();
    return now + m_options.source_ttl.count();
}

template <typename Map, typename Key, typename T, typename Fetch>
nss::Found Cache::lookup(Map& map, const Key& key, T& out, unsigned mask, Fetch&& fetch) {
    std::lock_guard lock(m_mutex);
    const bool usable = validate(mask);
    const std::int64_t now = m_options.monotonic_ns();
    if (usable) {
        if (const auto it = map.find(key); it != map.end()) {
            if (now < it->second.expires_ns) {
                ++m_stats.hits;
                if (it->second.found == nss::Found::yes) out = it->second.value;
                return it->second.found;
            }
            map.erase(it);
        }
    }
    ++m_stats.misses;
    T value{};
    const nss::Found found = fetch(value);
    if (found == nss::Found::error) return found; // never stored
    if (usable && key_size(key) <= k_max_key_bytes) {
        if (map.size() >= m_options.max_entries) {
            map.clear();
            ++m_stats.flushes;
        }
        map.insert_or_assign(key, Entry<T>{found, value, expiry_for(found, now)});
    }
    if (found == nss::Found::yes) out = std::move(value);
    return found;
}

nss::Found Cache::user_by_name(const std::string& name, UserRecord& out) {
    return lookup(m_by_name, name, out, (1u << passwd_file) | (1u << nsswitch_file),
                  [&](UserRecord& v) { return m_options.source->user_by_name(name, v); });
}

nss::Found Cache::user_by_uid(unsigned uid, UserRecord& out) {
    return lookup(m_by_uid, uid, out, (1u << passwd_file) | (1u << nsswitch_file),
                  [&](UserRecord& v) { return m_options.source->user_by_uid(uid, v); });
}

nss::Found Cache::groups_of(const std::string& user, std::vector<std::string>& out) {
    // The primary group comes from passwd, the others from group: both files count.
    return lookup(m_groups, user, out, (1u << passwd_file) | (1u << group_file) | (1u << nsswitch_file),
                  [&](std::vector<std::string>& v) { return m_options.source->groups_of(user, v); });
}

Cache::Stats Cache::stats() const {
    std::lock_guard lock(m_mutex);
    Stats s = m_stats;
    s.entries = m_by_name.size() + m_by_uid.size() + m_groups.size();
    return s;
}

} // namespace jitgate::nss_cache
