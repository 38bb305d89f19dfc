// tcp_nodelay.so — an LD_PRELOAD shim for jitgate_bench: sets TCP_NODELAY on every TCP
// connection the process accepts. The test approval service of tests/support (cpp-httplib,
// whose default leaves Nagle's algorithm on) is run once with it, to tell how much of the
// service-backend approval time is the test peer's Nagle / delayed-ACK stall (a response
// written in two pieces waits for the client's delayed ACK, ~40 ms) rather than jitgate's.
// Production HTTP servers (nginx, Go net/http, ...) set TCP_NODELAY by default.
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace {

using AcceptFn = int (*)(int, sockaddr*, socklen_t*);
using Accept4Fn = int (*)(int, sockaddr*, socklen_t*, int);

void no_delay(int fd) {
    if (fd < 0) return;
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return;
    if (local.ss_family != AF_INET && local.ss_family != AF_INET6) return;
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

} // namespace

extern "C" int accept(int fd, sockaddr* addr, socklen_t* len) {
    static const auto real = reinterpret_cast<AcceptFn>(dlsym(RTLD_NEXT, "accept"));
    const int c = real(fd, addr, len);
    no_delay(c);
    return c;
}

extern "C" int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
    static const auto real = reinterpret_cast<Accept4Fn>(dlsym(RTLD_NEXT, "accept4"));
    const int c = real(fd, addr, len, flags);
    no_delay(c);
    return c;
}
