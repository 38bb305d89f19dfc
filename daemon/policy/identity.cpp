#include "daemon/policy/identity.hpp"

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

std::int64_t login_uid_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/loginuid");
    std::string text;
    if (!(in >> text) || text.empty() || text.size() > 10 ||
        text.find_first_not_of("0123456789") != std::string::npos)
        return -1;
    const auto value = std::stoll(text);
    return value >= k_login_uid_unset ? -1 : value;
}

std::optional<Requester> requester_of(const Peer& peer, std::int64_t account_uid) {
    const auto real = real_uid_of(peer.pid);
    if (!real) return std::nullopt;
    Requester r;
    r.uid = *real != 0 ? static_cast<std::int64_t>(*real) : account_uid;
    r.name = r.uid >= 0 ? user_name(static_cast<uid_t>(r.uid)).value_or("uid " + std::to_string(r.uid)) : std::string();
    r.login_uid = login_uid_of(peer.pid);
    if (r.login_uid >= 0)
        r.login_name = user_name(static_cast<uid_t>(r.login_uid)).value_or("uid " + std::to_string(r.login_uid));
    return r;
}

} // namespace jitgate::identity
