#include "jitgate/plugin_options.hpp"

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cstring>
#include <grp.h>
#include <memory>
#include <pwd.h>

namespace jitgate {

PluginOptions parse_plugin_options(const std::vector<std::string>& words) {
    PluginOptions o;
    for (const auto& w : words) {
        const auto eq = w.find('=');
        const std::string key = w.substr(0, eq);
        const std::string value = eq == std::string::npos ? std::string() : w.substr(eq + 1);
        if (key == "socket") {
            if (value.empty() || value.front() != '/') o.errors.push_back("socket must be an absolute path, got '" + value + "'");
            else o.client.socket_path = value;
        } else if (key == "daemon_user") {
            o.client.daemon_user = value;
        } else if (key == "break_glass_group") {
            o.break_glass_group = value;
        } else if (key == "connect_timeout") {
            int ms = 0;
            const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
            if (ec != std::errc{} || p != value.data() + value.size() || ms < 10 || ms > 600000)
                o.errors.push_back("connect_timeout must be milliseconds between 10 and 600000, got '" + value + "'");
            else o.client.connect_timeout_ms = ms;
        } else {
            o.unknown.push_back(w);
        }
    }
    return o;
}

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

bool offline_break_glass_reason_ok(const std::string& reason) noexcept {
    const auto b = reason.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return false;
    const auto e = reason.find_last_not_of(" \t\r\n");
    return e - b + 1 >= k_offline_break_glass_min_reason;
}

bool user_in_group(const std::string& user, const std::string& group) {
    if (group.empty()) return false;
    const auto names = group_names_of(user);
    return names && std::find(names->begin(), names->end(), group) != names->end();
}

std::vector<std::string> to_vector(char* const* words) {
    std::vector<std::string> out;
    for (; words != nullptr && *words != nullptr; ++words) out.emplace_back(*words);
    return out;
}

const char* find_value(char* const* kv, const char* key) noexcept {
    const std::size_t n = std::strlen(key);
    for (; kv != nullptr && *kv != nullptr; ++kv)
        if (std::strncmp(*kv, key, n) == 0 && (*kv)[n] == '=') return *kv + n + 1;
    return nullptr;
}

} // namespace jitgate
