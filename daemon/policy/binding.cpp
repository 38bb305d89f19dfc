// daemon/policy/binding.cpp — the environment, cwd and program a grant binds (binding.hpp).
#include "daemon/policy/binding.hpp"

#include "jitgate/passwd.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string_view>

namespace jitgate::binding {
namespace {

std::string_view name_of(std::string_view entry) {
    return entry.substr(0, entry.find('='));
}

bool valid_name(std::string_view name) {
    if (name.empty() || (name.front() >= '0' && name.front() <= '9')) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    });
}

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

// Set by sudo itself or by the terminal and the user's locale; none of them chooses code the
// command runs (sudo drops TERM, LANG and LC_* values holding '/' or '%').
bool is_noise(std::string_view name) {
    static constexpr std::array<std::string_view, 20> k_names = {
        "TERM",     "COLORTERM", "COLUMNS",      "LINES",          "LS_COLORS",
        "COLORS",   "DISPLAY",   "XAUTHORITY",   "XAUTHORIZATION", "XDG_CURRENT_DESKTOP",
        "HOSTNAME", "LANG",      "LANGUAGE",     "LINGUAS",        "SUDO_USER",
        "SUDO_UID", "SUDO_GID",  "SUDO_COMMAND", "SUDO_HOME",      "SUDO_TTY"};
    return std::find(k_names.begin(), k_names.end(), name) != k_names.end() || starts_with(name, "LC_");
}

bool equals_default(std::string_view name, std::string_view value, const RunasDefaults& d) {
    if (d.name.empty()) return false;
    if (name == "USER" || name == "LOGNAME" || name == "USERNAME") return value == d.name;
    if (name == "HOME") return !d.home.empty() && value == d.home;
    if (name == "SHELL") return !d.shell.empty() && value == d.shell;
    if (name == "MAIL") return value == "/var/mail/" + d.name || value == "/var/spool/mail/" + d.name;
    return false;
}

} // namespace

RunasDefaults runas_defaults(const std::string& user) {
    RunasDefaults d;
    if (user.empty()) return d;
    const auto found = user_record_of(user); // the daemon's cache (nss_cache.hpp) when installed
    if (!found) return d;
    d.name = found->name;
    d.home = found->home;
    d.shell = !found->shell.empty() ? found->shell : "/bin/sh";
    return d;
}

bool is_code_loading_variable(std::string_view name) {
    static constexpr std::array<std::string_view, 14> k_prefixes = {"LD_",  "PYTHON", "PERL5", "PERLLIB",    "PERLIO",
                                                                    "RUBY", "GEM_",   "NODE_", "BASH_FUNC_", "MALLOC_",
                                                                    "LUA_", "GIT_",   "LESS",  "SYSTEMD_"};
    static constexpr std::array<std::string_view, 22> k_names = {"BASH_ENV",
                                                                 "ENV",
                                                                 "SHELLOPTS",
                                                                 "BASHOPTS",
                                                                 "PS4",
                                                                 "IFS",
                                                                 "CDPATH",
                                                                 "GLOBIGNORE",
                                                                 "GCONV_PATH",
                                                                 "GETCONF_DIR",
                                                                 "LOCPATH",
                                                                 "NLSPATH",
                                                                 "HOSTALIASES",
                                                                 "RES_OPTIONS",
                                                                 "GLIBC_TUNABLES",
                                                                 "JAVA_TOOL_OPTIONS",
                                                                 "_JAVA_OPTIONS",
                                                                 "JDK_JAVA_OPTIONS",
                                                                 "CLASSPATH",
                                                                 "PAGER",
                                                                 "EDITOR",
                                                                 "VISUAL"};
    return std::find(k_names.begin(), k_names.end(), name) != k_names.end() ||
           std::any_of(k_prefixes.begin(), k_prefixes.end(), [&](std::string_view p) { return starts_with(name, p); });
}

std::vector<std::string> names_set_on_command_line(const std::vector<std::string>& sudo_args) {
    std::vector<std::string> names;
    for (const auto& arg : sudo_args) {
        const std::string_view a = arg;
        if (starts_with(a, "--preserve-env=")) {
            std::string_view list = a.substr(15);
            while (!list.empty()) {
                const auto comma = list.find(',');
                const std::string_view n = list.substr(0, comma);
                if (valid_name(n)) names.emplace_back(n);
                if (comma == std::string_view::npos) break;
                list.remove_prefix(comma + 1);
            }
        } else if (!starts_with(a, "-") && a.find('=') != std::string_view::npos && valid_name(name_of(a))) {
            names.emplace_back(name_of(a));
        }
    }
    return names;
}

std::vector<std::string> bound_env(const std::vector<std::string>& run_env, const std::vector<std::string>& sudo_args,
                                   const RunasDefaults& defaults) {
    const auto named = names_set_on_command_line(sudo_args);
    std::vector<std::string> out;
    for (const auto& entry : run_env) {
        const std::string_view name = name_of(entry);
        const bool on_command_line = std::find(named.begin(), named.end(), name) != named.end();
        const std::string_view value =
            entry.find('=') == std::string::npos ? std::string_view{} : std::string_view(entry).substr(name.size() + 1);
        if (!on_command_line && (is_noise(name) || equals_default(name, value, defaults))) continue;
        out.push_back(entry);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::string> code_loading_names(const std::vector<std::string>& env) {
    std::vector<std::string> out;
    for (const auto& entry : env)
        if (is_code_loading_variable(name_of(entry))) out.emplace_back(name_of(entry));
    return out;
}

std::vector<std::string> hidden_code_loading(const std::vector<std::string>& env) {
    static constexpr std::array<std::string_view, 11> k_prefixes = {
        "LD_", "PYTHON", "PERL5", "PERLLIB", "PERLIO", "RUBY", "GEM_", "NODE_", "BASH_FUNC_", "LUA_", "TCL"};
    static constexpr std::array<std::string_view, 15> k_names = {
        "BASH_ENV",          "ENV",           "SHELLOPTS",
        "BASHOPTS",          "PS4",           "GCONV_PATH",
        "LOCPATH",           "NLSPATH",       "GLIBC_TUNABLES",
        "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
        "CLASSPATH",         "ZDOTDIR",       "IFS"};
    const auto sudo_preload_only = [](std::string_view value) {
        // LD_PRELOAD lists libraries separated by ':' or blanks; sudo's dso intercept sets its own.
        std::size_t i = 0;
        bool any = false;
        while (i < value.size()) {
            const std::size_t end = value.find_first_of(": \t", i);
            const std::string_view item = value.substr(i, end == std::string_view::npos ? end : end - i);
            if (!item.empty()) {
                if (item != "/usr/libexec/sudo/sudo_intercept.so") return false;
                any = true;
            }
            if (end == std::string_view::npos) break;
            i = end + 1;
        }
        return any;
    };
    std::vector<std::string> out;
    for (const auto& entry : env) {
        const std::string name(name_of(entry));
        const bool listed = std::any_of(k_prefixes.begin(), k_prefixes.end(),
                                        [&](std::string_view p) { return name.starts_with(p); }) ||
                            std::find(k_names.begin(), k_names.end(), name) != k_names.end();
        if (!listed) continue;
        if (name == "LD_PRELOAD" && sudo_preload_only(std::string_view(entry).substr(name.size() + 1))) continue;
        out.push_back(name);
    }
    return out;
}

std::optional<std::pair<std::int64_t, std::int64_t>> file_id_pair(const std::string& path) {
    const auto id = file_id(path);
    if (!id) return std::nullopt;
    return std::pair{id->dev, id->ino};
}

std::string run_cwd(const msg::CheckRequest& r) {
    return r.run_cwd.empty() ? r.cwd : r.run_cwd;
}

std::string lexically_normal(const std::string& path) {
    if (path.empty() || path.front() != '/') return path;
    std::vector<std::string_view> parts;
    std::string_view rest = path;
    while (!rest.empty()) {
        const auto slash = rest.find('/');
        const std::string_view part = rest.substr(0, slash);
        if (part == "..") {
            if (!parts.empty()) parts.pop_back();
        } else if (!part.empty() && part != ".") {
            parts.push_back(part);
        }
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
    }
    std::string out;
    for (const auto part : parts) {
        out += '/';
        out += part;
    }
    return out.empty() ? "/" : out;
}

std::optional<FileId> file_id(const std::string& path) {
    struct stat st {};
    if (path.empty() || stat(path.c_str(), &st) != 0) return std::nullopt;
    return FileId{static_cast<std::int64_t>(st.st_dev), static_cast<std::int64_t>(st.st_ino)};
}

namespace {

// The host's merged-/usr links: (/bin, /usr/bin) for each of /bin, /sbin, /lib* that is a link.
// SECURITY NOTE: resolved at most once a second (k_merged_ttl), not per decision (realpath of
// the six directories was 19 readlink calls per decision). Only root can turn /bin into a link
// or back; in the second after it did, a rule naming /bin/x may still match /usr/bin/x (or no
// longer), as it would have a moment before the change.
constexpr std::chrono::seconds k_merged_ttl{1};

std::vector<std::pair<std::string, std::string>> merged_links() {
    static std::mutex mutex;
    static std::vector<std::pair<std::string, std::string>> links;
    static std::chrono::steady_clock::time_point resolved_at;
    static bool resolved = false;
    std::lock_guard lock(mutex);
    const auto now = std::chrono::steady_clock::now();
    if (!resolved || now - resolved_at >= k_merged_ttl) {
        static constexpr std::array<const char*, 6> k_merged = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
        links.clear();
        for (const char* dir : k_merged) {
            char target[PATH_MAX];
            if (realpath(dir, target) == nullptr) continue;
            if (std::string_view(target) == dir) continue; // not a link: this host has not merged it
            links.emplace_back(dir, target);
        }
        resolved = true;
        resolved_at = now;
    }
    return links;
}

} // namespace

std::vector<std::string> program_spellings(const std::string& command, const std::string& canonical) {
    std::vector<std::string> out{canonical.empty() ? lexically_normal(command) : canonical};
    for (const auto& [dir, real] : merged_links()) {
        const std::string& primary = out.front();
        if (primary.size() > real.size() && primary.compare(0, real.size(), real) == 0 && primary[real.size()] == '/')
            out.push_back(dir + primary.substr(real.size()));
    }
    return out;
}

} // namespace jitgate::binding
