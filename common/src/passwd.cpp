// common/src/passwd.cpp — NSS lookups of users and groups (see jitgate/passwd.hpp).
#include "jitgate/passwd.hpp"

#include <algorithm>
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
} // namespace

std::optional<std::string> user_name_of(unsigned uid) {
    passwd pw{};
    passwd* res = nullptr;
    std::optional<std::string> name;
    with_buffer([&](char* buf, std::size_t size) {
        const int rc = getpwuid_r(static_cast<uid_t>(uid), &pw, buf, size, &res);
        if (rc == 0 && res != nullptr) name = pw.pw_name;
        return rc;
    });
    return name;
}

std::optional<unsigned> uid_of(const std::string& name) {
    passwd pw{};
    passwd* res = nullptr;
    std::optional<unsigned> uid;
    with_buffer([&](char* buf, std::size_t size) {
        const int rc = getpwnam_r(name.c_str(), &pw, buf, size, &res);
        if (rc == 0 && res != nullptr) uid = pw.pw_uid;
        return rc;
    });
    return uid;
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
    passwd pw{};
    passwd* res = nullptr;
    std::optional<std::vector<std::string>> names;
    with_buffer([&](char* buf, std::size_t size) {
        const int rc = getpwnam_r(user.c_str(), &pw, buf, size, &res);
        if (rc != 0 || res == nullptr) return rc;
        int n = 64;
        std::vector<gid_t> gids(static_cast<std::size_t>(n));
        while (getgrouplist(user.c_str(), pw.pw_gid, gids.data(), &n) < 0) gids.resize(static_cast<std::size_t>(n));
        gids.resize(static_cast<std::size_t>(n));
        std::vector<std::string> found;
        for (gid_t g : gids) {
            // gr_name points into the buffer, which with_buffer frees on return: copy it inside.
            std::optional<std::string> name;
            const int grc = with_buffer([&](char* gbuf, std::size_t gsize) {
                group gr{};
                group* gres = nullptr;
                const int r = getgrgid_r(g, &gr, gbuf, gsize, &gres);
                if (r == 0 && gres != nullptr) name = gr.gr_name;
                return r;
            });
            if (grc != 0) return grc; // a group we cannot read: fail, do not guess
            if (name) found.push_back(std::move(*name));
        }
        names = std::move(found);
        return 0;
    });
    return names;
}

bool user_in_group(const std::string& user, const std::string& group) {
    if (group.empty()) return false;
    const auto names = group_names_of(user);
    return names && std::find(names->begin(), names->end(), group) != names->end();
}

} // namespace jitgate
