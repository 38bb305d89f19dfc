// daemon/policy/identity.cpp — peer credentials and /proc facts about the requesting process.
#include "daemon/policy/identity.hpp"

#include "jitgate/passwd.hpp"

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
    if (!(in >> text) || text.empty() || text.size() > 10 || text.find_first_not_of("0123456789") != std::string::npos)
        return -1;
    const auto value = std::stoll(text);
    return value >= k_login_uid_unset ? -1 : value;
}

std::optional<Requester> requester_of(const Peer& peer, std::int64_t account_uid) {
    const auto real = real_uid_of(peer.pid);
    if (!real) return std::nullopt;
    Requester r;
    r.uid = *real != 0 ? static_cast<std::int64_t>(*real) : account_uid;
    r.name = r.uid >= 0 ? user_name_of(static_cast<unsigned>(r.uid)).value_or("uid " + std::to_string(r.uid))
                        : std::string();
    r.login_uid = login_uid_of(peer.pid);
    if (r.login_uid >= 0)
        r.login_name = user_name_of(static_cast<unsigned>(r.login_uid)).value_or("uid " + std::to_string(r.login_uid));
    return r;
}

} // namespace jitgate::identity
