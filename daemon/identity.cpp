#include "identity.hpp"

#include "jitgate/plugin_options.hpp"

#include <fstream>
#include <sstream>
#include <sys/socket.h>

namespace jitgate::identity {

std::optional<Peer> peer_of(int fd) noexcept {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) return std::nullopt;
    return Peer{cred.pid, cred.uid, cred.gid};
}

std::optional<std::string> user_name(uid_t uid) { return user_name_of(uid); }

std::optional<uid_t> user_uid(const std::string& name) {
    const auto uid = uid_of(name);
    return uid ? std::optional<uid_t>(static_cast<uid_t>(*uid)) : std::nullopt;
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
