#include "identity.hpp"

#include "jitgate/plugin_options.hpp"

#include <fstream>
#include <memory>
#include <grp.h>
#include <pwd.h>
#include <sstream>
#include <sys/socket.h>

namespace jitgate::identity {
namespace {
// NSS needs scratch space; make_unique_for_overwrite leaves it uninitialised (zero-filling
// 64 KiB per lookup was a quarter of the fast path's instructions).
constexpr std::size_t k_pw_buf = 16384;
constexpr std::size_t k_gr_buf = 65536;
} // namespace

std::optional<Peer> peer_of(int fd) noexcept {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) return std::nullopt;
    return Peer{cred.pid, cred.uid, cred.gid};
}

std::optional<std::string> user_name(uid_t uid) {
    passwd pw{};
    passwd* result = nullptr;
    auto buf = std::make_unique_for_overwrite<char[]>(k_pw_buf);
    if (getpwuid_r(uid, &pw, buf.get(), k_pw_buf, &result) != 0 || result == nullptr) return std::nullopt;
    return std::string(pw.pw_name);
}

std::optional<uid_t> user_uid(const std::string& name) {
    passwd pw{};
    passwd* result = nullptr;
    auto buf = std::make_unique_for_overwrite<char[]>(k_pw_buf);
    if (getpwnam_r(name.c_str(), &pw, buf.get(), k_pw_buf, &result) != 0 || result == nullptr) return std::nullopt;
    return pw.pw_uid;
}

std::optional<std::vector<std::string>> groups_of(const std::string& user) { return group_names_of(user); }

std::optional<uid_t> real_uid_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("Uid:", 0) == 0) {
            std::istringstream fields(line.substr(4));
            unsigned long real = 0;
            if (fields >> real) return static_cast<uid_t>(real);
            return std::nullopt;
        }
    }
    return std::nullopt;
}

} // namespace jitgate::identity
