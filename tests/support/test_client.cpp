// jitgate-test-client — sends raw frames to a jitgated socket and prints what comes back.
// For tests that must speak the protocol wrongly on purpose (forged checks, malformed frames).
//
//   jitgate-test-client SOCKET json  'JSON'     one well-formed frame carrying JSON text
//   jitgate-test-client SOCKET raw   'BYTES'    raw bytes (C escapes \xNN allowed), no framing
//   jitgate-test-client SOCKET length N 'TEXT'  a header claiming N bytes, then TEXT
//   jitgate-test-client SOCKET hold N           opens N connections that send nothing, prints
//                                               "held K" (K connected) and keeps them until killed
//   jitgate-test-client SOCKET repeat N 'JSON'  N frames carrying JSON on one connection, each
//                                               sent once the previous one is answered (a flood)
// Prints each reply payload on its own line, then "closed" or "timeout". Exit 0. With repeat,
// prints only "replies K" (how many frames came back) and the last reply.
#include <arpa/inet.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

std::string unescape(const char* s) {
    std::string out;
    for (; *s != '\0'; ++s) {
        if (s[0] == '\\' && s[1] == 'x' && s[2] != '\0' && s[3] != '\0') {
            const char hex[3] = {s[2], s[3], '\0'};
            out += static_cast<char>(std::strtol(hex, nullptr, 16));
            s += 3;
        } else {
            out += *s;
        }
    }
    return out;
}

std::string header(std::uint32_t n) {
    const std::uint32_t be = htonl(n);
    return std::string(reinterpret_cast<const char*>(&be), 4);
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s SOCKET json|raw|length ...\n", argv[0]);
        return 2;
    }
    std::string bytes;
    const std::string mode = argv[2];
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", argv[1]);
    if (mode == "hold") {
        const long n = std::strtol(argv[3], nullptr, 10);
        long held = 0;
        for (long i = 0; i < n; ++i) {
            const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
            if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) break;
            ++held;
        }
        std::printf("held %ld\n", held);
        std::fflush(stdout);
        for (;;) pause();
    }
    unsigned long repeat = 0;
    if (mode == "json") {
        bytes = header(static_cast<std::uint32_t>(std::strlen(argv[3]))) + argv[3];
    } else if (mode == "raw") {
        bytes = unescape(argv[3]);
    } else if (mode == "repeat" && argc >= 5) {
        repeat = std::strtoul(argv[3], nullptr, 10);
        bytes = header(static_cast<std::uint32_t>(std::strlen(argv[4]))) + argv[4];
    } else if (mode == "length" && argc >= 5) {
        bytes = header(static_cast<std::uint32_t>(std::strtoul(argv[3], nullptr, 10))) + unescape(argv[4]);
    } else {
        std::fprintf(stderr, "bad mode\n");
        return 2;
    }
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        std::printf("connect failed: %s\n", std::strerror(errno));
        return 0;
    }
    if (send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) < 0) std::printf("send failed: %s\n", std::strerror(errno));
    std::string buf, last;
    unsigned long replies = 0;
    const auto summary = [&] {
        if (repeat > 0) std::printf("replies %lu\n%s\n", replies, last.c_str());
    };
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 3000) <= 0) {
            summary();
            std::printf("timeout\n");
            return 0;
        }
        char chunk[65536];
        const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) {
            summary();
            std::printf("closed\n");
            return 0;
        }
        buf.append(chunk, static_cast<std::size_t>(n));
        while (buf.size() >= 4) {
            std::uint32_t be = 0;
            std::memcpy(&be, buf.data(), 4);
            const std::uint32_t len = ntohl(be);
            if (buf.size() < 4 + len) break;
            if (repeat == 0) {
                std::printf("%s\n", buf.substr(4, len).c_str());
                std::fflush(stdout);
            } else {
                last = buf.substr(4, len);
                if (++replies == repeat) {
                    summary();
                    return 0;
                }
                if (send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) < 0) {
                    summary();
                    std::printf("send failed: %s\n", std::strerror(errno));
                    return 0;
                }
            }
            buf.erase(0, 4 + len);
        }
    }
}
