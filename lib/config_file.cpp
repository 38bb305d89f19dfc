// lib/config_file.cpp — problems in files and the ownership and mode check of trusted files.
#include "lib/config_file.hpp"

#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstdio>
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

} // namespace jitgate::config
