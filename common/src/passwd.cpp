// common/src/passwd.cpp — NSS lookups of users and groups (see jitgate/passwd.hpp).
#include "jitgate/passwd.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <grp.h>
#include <memory>
#include <pwd.h>

namespace jitgate {

namespace {
// Calls an NSS *_r lookup with scratch space that grows on ERANGE (left uninitialised:
// zero-filling it per lookup was measurable). Returns the lookup's result code.
template <typename Lookup>
int with_buffer(Lookup&& lookup) {
    for (std::size_t size = 16384; size <= (4u << 20); size *= 4) {
        auto buf = std::make_unique_for_overwrite<char[]>(size);
        const int rc = lookup(buf.get(), size);
        if (rc != ERANGE) return rc;
    }
    return ERANGE;
}

void copy_record(const passwd& pw, UserRecord& out) {
    out.name = pw.pw_name != nullptr ? pw.pw_name : "";
    out.uid = pw.pw_uid;
    out.gid = pw.pw_gid;
    out.home = pw.pw_dir != nullptr ? pw.pw_dir : "";
    out.shell = pw.pw_shell != nullptr ? pw.pw_shell : "";
}

// The result code of a getpw*_r / getgr*_r call as a Found. glibc reports "no such entry" as
// 0 with a null result; some modules say ENOENT, ESRCH, EBADF or EPERM for it (getpwnam_r(3)).
// Only those two shapes read as "no": anything else is an error.
nss::Found found_of(int rc, bool got) {
    if (rc == 0) return got ? nss::Found::yes : nss::Found::no;
    return rc == ENOENT ? nss::Found::no : nss::Found::error;
}

std::atomic<nss::Lookups*> g_lookups{nullptr};

} // namespace

namespace nss {

Found user_by_name(const std::string& name, UserRecord& out) {
    if (name.empty()) return Found::no;
    Found f = Found::error;
    with_buffer([&](char* buf, std::size_t size) {
        passwd pw{};
        passwd* res = nullptr;
        const int rc = getpwnam_r(name.c_str(), &pw, buf, size, &res);
        if (rc != ERANGE) f = found_of(rc, res != nullptr);
        if (rc == 0 && res != nullptr) copy_record(pw, out);
        return rc;
    });
    return f;
}

Found user_by_uid(unsigned uid, UserRecord& out) {
    Found f = Found::error;
    with_buffer([&](char* buf, std::size_t size) {
        passwd pw{};
        passwd* res = nullptr;
        const int rc = getpwuid_r(static_cast<uid_t>(uid), &pw, buf, size, &res);
        if (rc != ERANGE) f = found_of(rc, res != nullptr);
        if (rc == 0 && res != nullptr) copy_record(pw, out);
        return rc;
    });
    return f;
}

Found groups_of(const std::string& user, std::vector<std::string>& out) {
    UserRecord pw;
    if (const Found f = user_by_name(user, pw); f != Found::yes) return f;
    int n = 64;
    std::vector<gid_t> gids(static_cast<std::size_t>(n));
    while (getgrouplist(user.c_str(), pw.gid, gids.data(), &n) < 0) gids.resize(static_cast<std::size_t>(n));
    gids.resize(static_cast<std::size_t>(n));
    std::vector<std::string> found;
    for (gid_t g : gids) {
        // gr_name points into the buffer, which with_buffer frees on return: copy it inside.
        std::optional<std::string> name;
        const int grc = with_buffer([&](char* gbuf, std::size_t gsize) {
            group gr{};
            group* gres = nullptr;
            const int r = getgrgid_r(g, &gr, gbuf, gsize, &gres);
            if (r == 0 && gres != nullptr && gr.gr_name != nullptr) name = gr.gr_name;
            return r;
        });
        if (grc != 0) return Found::error; // a group we cannot read: fail, do not guess
        if (name) found.push_back(std::move(*name));
    }
    out = std::move(found);
    return Found::yes;
}

void install_lookups(Lookups* lookups) noexcept {
    g_lookups.store(lookups, std::memory_order_release);
}

Batch::Batch() : m_lookups(g_lookups.load(std::memory_order_acquire)) {
    if (m_lookups != nullptr) m_lookups->begin_batch();
}

Batch::~Batch() {
    if (m_lookups != nullptr) m_lookups->end_batch();
}

} // namespace nss

namespace {
nss::Found user_by_name(const std::string& name, UserRecord& out) {
    if (auto* l = g_lookups.load(std::memory_order_acquire)) return l->user_by_name(name, out);
    return nss::user_by_name(name, out);
}
} // namespace

std::optional<UserRecord> user_record_of(const std::string& name) {
    UserRecord r;
    if (user_by_name(name, r) != nss::Found::yes) return std::nullopt;
    return r;
}

std::optional<std::string> user_name_of(unsigned uid) {
    UserRecord r;
    auto* l = g_lookups.load(std::memory_order_acquire);
    const nss::Found f = l != nullptr ? l->user_by_uid(uid, r) : nss::user_by_uid(uid, r);
    if (f != nss::Found::yes) return std::nullopt;
    return std::move(r.name);
}

std::optional<unsigned> uid_of(const std::string& name) {
    UserRecord r;
    if (user_by_name(name, r) != nss::Found::yes) return std::nullopt;
    return r.uid;
}

std::optional<std::string> group_name_of(unsigned gid) {
    std::optional<std::string> name;
    with_buffer([&](char* buf, std::size_t size) {
        group gr{};
        group* res = nullptr;
        const int rc = getgrgid_r(static_cast<gid_t>(gid), &gr, buf, size, &res);
        if (rc == 0 && res != nullptr && gr.gr_name != nullptr) name = gr.gr_name;
        return rc;
    });
    return name;
}

std::optional<std::vector<std::string>> group_names_of(const std::string& user) {
    std::vector<std::string> names;
    auto* l = g_lookups.load(std::memory_order_acquire);
    const nss::Found f = l != nullptr ? l->groups_of(user, names) : nss::groups_of(user, names);
    if (f != nss::Found::yes) return std::nullopt;
    return names;
}

bool user_in_group(const std::string& user, const std::string& group) {
    if (group.empty()) return false;
    const auto names = group_names_of(user);
    return names && std::find(names->begin(), names->end(), group) != names->end();
}

} // namespace jitgate
