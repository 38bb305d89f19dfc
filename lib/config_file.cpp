// lib/config_file.cpp — problems in files, the ownership and mode check of trusted files, and
// the text forms of durations and sizes.
#include "lib/config_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <limits>
#include <string_view>
#include <system_error>
#include <vector>

namespace jitgate::config {
namespace {

std::string error_text(int error) {
    // std::error_code is thread-safe where strerror() is not.
    return std::error_code(error, std::generic_category()).message();
}

} // namespace

std::string Problem::to_string() const {
    std::string out = file.empty() ? std::string("<config>") : file;
    if (line > 0) {
        out += ":" + std::to_string(line);
        if (column > 0) {
            out += ":" + std::to_string(column);
        }
    }
    out += ": ";
    out += message;
    return out;
}

std::optional<Problem> check_file_security(const std::string& path, unsigned allowed_uid) {
    struct stat st {};
    // lstat, not stat: a symlink would let whoever owns its target (or its directory) swap the
    // policy, and its own mode bits say nothing.
    if (lstat(path.c_str(), &st) != 0) {
        return Problem{path, 0, 0, "cannot check the config's permissions: " + error_text(errno)};
    }
    if (S_ISLNK(st.st_mode)) {
        return Problem{path, 0, 0, "is a symbolic link; point jitgated at the real file (readlink -f " + path + ")"};
    }
    if (!S_ISREG(st.st_mode)) {
        return Problem{path, 0, 0, "is not a regular file"};
    }
    std::vector<std::string> wrong;
    if (st.st_uid != 0 && st.st_uid != allowed_uid) {
        wrong.push_back("is owned by uid " + std::to_string(st.st_uid) + " but must be owned by " +
                        (allowed_uid == 0 ? std::string("root") : "root or uid " + std::to_string(allowed_uid)) +
                        "; fix with: chown root " + path);
    }
    const bool group_writable = (st.st_mode & S_IWGRP) != 0;
    const bool world_writable = (st.st_mode & S_IWOTH) != 0;
    if (group_writable || world_writable) {
        std::array<char, 8> mode{};
        std::snprintf(mode.data(), mode.size(), "%04o", static_cast<unsigned>(st.st_mode & 07777));
        const char* who = group_writable && world_writable ? "group- and world-writable"
                          : group_writable                 ? "group-writable"
                                                           : "world-writable";
        wrong.push_back(std::string("is ") + who + " (mode " + mode.data() + "); fix with: chmod go-w " + path);
    }
    if (wrong.empty()) {
        return std::nullopt;
    }
    std::string message;
    for (const auto& w : wrong) {
        message += (message.empty() ? "" : "; and ") + w;
    }
    return Problem{path, 0, 0, message};
}

std::optional<std::string> check_directory_chain(const std::string& path, unsigned allowed_uid) {
    if (path.empty() || path[0] != '/') return "is not an absolute path";
    std::string dir = path.substr(0, path.find_last_of('/'));
    for (;;) {
        const std::string shown = dir.empty() ? "/" : dir;
        struct stat st {};
        if (stat(shown.c_str(), &st) != 0) return "cannot check directory " + shown + ": " + error_text(errno);
        if (!S_ISDIR(st.st_mode)) return shown + " is not a directory";
        if (st.st_uid != 0 && st.st_uid != allowed_uid)
            return "directory " + shown + " is owned by uid " + std::to_string(st.st_uid) + ", not root";
        const bool sticky_root = (st.st_mode & S_ISVTX) != 0 && st.st_uid == 0;
        if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && !sticky_root) {
            std::array<char, 8> mode{};
            std::snprintf(mode.data(), mode.size(), "%04o", static_cast<unsigned>(st.st_mode & 07777));
            return "directory " + shown + " is group- or world-writable (mode " + mode.data() +
                   "); fix with: chmod go-w " + shown;
        }
        if (dir.empty()) return std::nullopt;
        dir.resize(dir.find_last_of('/'));
    }
}

std::optional<Problem> read_trusted_file(const std::string& path, std::string_view what, std::size_t max_bytes,
                                         std::string& text, unsigned allowed_uid) {
    text.clear();
    const auto problem = [&](const std::string& message) { return Problem{path, 0, 0, message}; };
    if (auto why = check_directory_chain(path, allowed_uid)) return problem(std::string(what) + ": " + *why);
    const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        const int error = errno;
        if (error == ELOOP) return problem(std::string(what) + " is a symbolic link; name the real file");
        return problem("cannot open " + std::string(what) + ": " + error_text(error));
    }
    struct stat st {};
    std::optional<Problem> bad;
    if (fstat(fd, &st) != 0) {
        bad = problem("cannot check " + std::string(what) + ": " + error_text(errno));
    } else if (!S_ISREG(st.st_mode)) {
        bad = problem(std::string(what) + " is not a regular file");
    } else if (st.st_uid != 0 && st.st_uid != allowed_uid) {
        bad = problem(std::string(what) + " is owned by uid " + std::to_string(st.st_uid) +
                      " but must be owned by root; fix with: chown root " + path);
    } else if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        bad = problem(std::string(what) + " is group- or world-writable; fix with: chmod go-w " + path);
    } else if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
        bad = problem(std::string(what) + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
    if (!bad) {
        std::array<char, 65536> buffer{};
        // At most max_bytes + 1: a file that grows after fstat is still caught, never slurped.
        while (text.size() <= max_bytes) {
            const std::size_t want = std::min(buffer.size(), max_bytes + 1 - text.size());
            const ssize_t n = read(fd, buffer.data(), want);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                bad = problem("cannot read " + std::string(what) + ": " + error_text(errno));
                break;
            }
            if (n == 0) break;
            text.append(buffer.data(), static_cast<std::size_t>(n));
        }
        if (!bad && text.size() > max_bytes)
            bad = problem(std::string(what) + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
    close(fd);
    if (bad) text.clear();
    return bad;
}

std::optional<Seconds> parse_duration(const std::string& text) {
    if (text.empty()) {
        return std::nullopt;
    }
    std::string_view digits = text;
    Seconds::rep unit = 1;
    switch (text.back()) {
    case 's':
        unit = 1;
        break;
    case 'm':
        unit = 60;
        break;
    case 'h':
        unit = 3600;
        break;
    case 'd':
        unit = 86400;
        break;
    default:
        unit = 0;
        break;
    }
    if (unit != 0) {
        digits.remove_suffix(1);
    } else {
        unit = 1; // a bare number of seconds
    }
    // Only digits: no sign, no spaces, no "1.5h" (from_chars alone would accept a leading '-').
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    Seconds::rep count = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
    if (error != std::errc{} || end != digits.data() + digits.size() || count <= 0 ||
        count > std::numeric_limits<Seconds::rep>::max() / unit) {
        return std::nullopt;
    }
    return Seconds{count * unit};
}

std::optional<std::uint64_t> parse_size(const std::string& text) {
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
        ++digits;
    }
    if (digits == 0 || digits > 15) {
        return std::nullopt;
    }
    const std::string_view suffix = std::string_view(text).substr(digits);
    std::uint64_t unit = 0;
    for (const auto& [name, value] : {std::pair<std::string_view, std::uint64_t>{"", 1},
                                      {"B", 1},
                                      {"KiB", 1ULL << 10},
                                      {"MiB", 1ULL << 20},
                                      {"GiB", 1ULL << 30},
                                      {"TiB", 1ULL << 40},
                                      {"KB", 1000},
                                      {"MB", 1000 * 1000},
                                      {"GB", 1000 * 1000 * 1000}}) {
        if (suffix == name) {
            unit = value;
        }
    }
    const std::uint64_t count = std::stoull(text.substr(0, digits));
    if (unit == 0 || count == 0 || count > (std::uint64_t{1} << 50) / unit) {
        return std::nullopt;
    }
    return count * unit;
}

std::string format_duration(Seconds s) {
    const Seconds::rep n = s.count();
    if (n != 0 && n % 86400 == 0) {
        return std::to_string(n / 86400) + "d";
    }
    if (n != 0 && n % 3600 == 0) {
        return std::to_string(n / 3600) + "h";
    }
    if (n != 0 && n % 60 == 0) {
        return std::to_string(n / 60) + "m";
    }
    return std::to_string(n) + "s";
}

} // namespace jitgate::config
