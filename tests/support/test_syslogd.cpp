// tests/support/test_syslogd.cpp — a test-only stand-in for /dev/log (never installed).
//
//   jitgate-test-syslogd SOCKET_PATH OUTPUT_FILE
//
// Binds an AF_UNIX datagram socket at SOCKET_PATH (replacing whatever is there, mode 0666 so
// a daemon running as another user can send), prints "ready" once it can receive, and appends
// every datagram plus '\n' to OUTPUT_FILE, unbuffered, so a test can read a line as soon as
// it was sent. Exits 0 on SIGTERM or SIGINT, removing the socket. Links nothing but libc.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

// Bigger than any datagram the kernel lets through on AF_UNIX by default.
constexpr std::size_t k_max_datagram = 256 * 1024;

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) {
    g_stop = 1;
}

int fail(const char* what, const std::string& arg) {
    std::fprintf(stderr, "jitgate-test-syslogd: %s %s: %s\n", what, arg.c_str(), std::strerror(errno));
    return 1;
}

bool write_all(int fd, const char* data, std::size_t size) {
    while (size > 0) {
        const ssize_t n = ::write(fd, data, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: jitgate-test-syslogd SOCKET_PATH OUTPUT_FILE\n");
        return 2;
    }
    const std::string socket_path = argv[1];
    const std::string output_path = argv[2];

    // Block the stop signals and take them only inside ppoll(), so a signal that arrives
    // between the flag check and the wait cannot be missed.
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    sigset_t blocked;
    sigset_t wait_mask;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    sigprocmask(SIG_BLOCK, &blocked, &wait_mask);
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGINT);

    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.size() >= sizeof(addr.sun_path)) {
        errno = ENAMETOOLONG;
        return fail("socket path too long:", socket_path);
    }
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);

    const int out = ::open(output_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (out < 0) return fail("cannot open", output_path);

    const int sock = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return fail("cannot create a socket for", socket_path);
    ::unlink(socket_path.c_str());
    if (::bind(sock, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
        return fail("cannot bind", socket_path);
    if (::chmod(socket_path.c_str(), 0666) != 0) return fail("cannot chmod", socket_path);

    std::printf("ready\n");
    std::fflush(stdout);

    std::vector<char> buf(k_max_datagram + 1);
    int status = 0;
    while (g_stop == 0) {
        pollfd pfd{sock, POLLIN, 0};
        const int ready = ::ppoll(&pfd, 1, nullptr, &wait_mask);
        if (ready < 0) {
            if (errno == EINTR) continue;
            status = fail("poll failed on", socket_path);
            break;
        }
        const ssize_t n = ::recv(sock, buf.data(), k_max_datagram, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            status = fail("recv failed on", socket_path);
            break;
        }
        const auto size = static_cast<std::size_t>(n);
        buf[size] = '\n';
        if (!write_all(out, buf.data(), size + 1)) {
            status = fail("cannot write", output_path);
            break;
        }
    }
    ::close(sock);
    ::unlink(socket_path.c_str());
    ::close(out);
    return status;
}
