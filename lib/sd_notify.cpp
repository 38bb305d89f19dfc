// lib/sd_notify.cpp — see sd_notify.hpp.
#include "lib/sd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace jitgate {

bool notify_systemd(const char* state) {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (path == nullptr || path[0] == '\0') return true;
    const std::size_t len = std::strlen(path);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof addr.sun_path) {
        std::fprintf(stderr, "%s: NOTIFY_SOCKET is not a usable socket path; not notifying systemd\n",
                     program_invocation_short_name);
        return false;
    }
    std::memcpy(addr.sun_path, path, len);
    if (path[0] == '@') addr.sun_path[0] = '\0';
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ssize_t sent = -1;
    if (fd >= 0) {
        const auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
        const auto* to = reinterpret_cast<const sockaddr*>(&addr);
        sent = ::sendto(fd, state, std::strlen(state), MSG_NOSIGNAL, to, addr_len);
    }
    const int saved = errno;
    if (fd >= 0) ::close(fd);
    if (sent < 0)
        std::fprintf(stderr, "%s: cannot notify systemd on %s: %s\n", program_invocation_short_name, path,
                     std::strerror(saved));
    return sent >= 0;
}

} // namespace jitgate
