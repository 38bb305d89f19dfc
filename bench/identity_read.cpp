// bench/identity_read.cpp — what reading the peer process costs the daemon per decision
// (docs/PERFORMANCE.md, "User and group lookups"): its real uid and login uid, the reads of a
// check (daemon/policy/identity.hpp, ids_of), over a live peer connected by a Unix socket.
//
//   identity_read [blocks] [iterations per block]
//
// Ways, timed in alternating blocks (the order rotates each block) so that the machine's noise
// falls on all of them alike; each block's figure is its mean time per read; the table gives
// the median of the blocks and their range:
//   proc-before   real_uid_of + login_uid_of: /proc/<pid>/status and loginuid, what a check
//                 read before pidfds (and what a kernel before 6.13 still reads)
//   ids_of-proc   ids_of forced to its /proc path (ReadVia::proc): the same reads
//   ids_of-pidfd  ids_of: SO_PEERPIDFD, /proc/<pid>/loginuid, PIDFD_GET_INFO, close
//   pidfd-uid     ids_of without the login uid (a sudo finished report)
// As root the peer is made like sudo (real uid 65534, effective uid 0). Asserts nothing.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "daemon/policy/identity.hpp"

namespace {

using namespace jitgate;
using Clock = std::chrono::steady_clock;

volatile std::int64_t g_sink = 0; // keeps the reads from being optimised away

struct Way {
    const char* name;
    std::function<bool()> read; // false: the read failed (the bench stops)
    std::vector<double> ns_per_read;
};

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[i];
}

} // namespace

int main(int argc, char** argv) {
    const int blocks = argc > 1 ? std::atoi(argv[1]) : 21;
    const int iterations = argc > 2 ? std::atoi(argv[2]) : 2000;
    if (blocks < 1 || iterations < 1) {
        std::fprintf(stderr, "usage: identity_read [blocks] [iterations per block]\n");
        return 2;
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const int n = std::snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "jitgate-identity-read-%d",
                                static_cast<int>(getpid()));
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + static_cast<std::size_t>(n));
    const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0 || ::bind(listener, reinterpret_cast<const sockaddr*>(&addr), len) != 0 ||
        ::listen(listener, 1) != 0) {
        std::perror("identity_read: listen");
        return 1;
    }
    const pid_t child = ::fork();
    if (child == 0) {
        if (::geteuid() == 0 && ::setresuid(65534, 0, 0) != 0) ::_exit(1);
        const int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
        if (s < 0 || ::connect(s, reinterpret_cast<const sockaddr*>(&addr), len) != 0) ::_exit(1);
        ::pause();
        ::_exit(0);
    }
    const int fd = child > 0 ? ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC) : -1;
    const auto peer = fd >= 0 ? identity::peer_of(fd) : std::nullopt;
    if (!peer) {
        std::fprintf(stderr, "identity_read: no peer\n");
        return 1;
    }
    const auto pidfd_ids = identity::ids_of(fd, *peer, identity::LoginUid::read);
    const auto proc_ids = identity::ids_of(fd, *peer, identity::LoginUid::read, identity::ReadVia::proc);
    if (!pidfd_ids || !proc_ids || pidfd_ids->real_uid != proc_ids->real_uid ||
        pidfd_ids->login_uid != proc_ids->login_uid) {
        std::fprintf(stderr, "identity_read: the two paths disagree or fail\n");
        return 1;
    }
    std::printf("peer pid %d, euid %u, real uid %u, login uid %lld; ids_of reads through %s\n",
                static_cast<int>(peer->pid), peer->uid, proc_ids->real_uid, static_cast<long long>(proc_ids->login_uid),
                pidfd_ids->via_pidfd ? "a pidfd" : "/proc (this kernel has no pidfd credentials)");

    std::vector<Way> ways;
    ways.push_back({"proc-before",
                    [&] {
                        const auto real = identity::real_uid_of(peer->pid);
                        g_sink = g_sink + identity::login_uid_of(peer->pid);
                        return real.has_value();
                    },
                    {}});
    ways.push_back({"ids_of-proc",
                    [&] {
                        const auto ids = identity::ids_of(fd, *peer, identity::LoginUid::read, identity::ReadVia::proc);
                        if (ids) g_sink = g_sink + ids->login_uid;
                        return ids.has_value();
                    },
                    {}});
    ways.push_back({"ids_of-pidfd",
                    [&] {
                        const auto ids = identity::ids_of(fd, *peer, identity::LoginUid::read);
                        if (ids) g_sink = g_sink + ids->login_uid;
                        return ids.has_value();
                    },
                    {}});
    ways.push_back({"pidfd-uid",
                    [&] {
                        const auto ids = identity::ids_of(fd, *peer, identity::LoginUid::skip);
                        if (ids) g_sink = g_sink + ids->real_uid;
                        return ids.has_value();
                    },
                    {}});
    for (auto& w : ways) // warm up: page cache, dentries, the branch predictors
        for (int i = 0; i < iterations / 4 + 1; ++i) (void)w.read();
    for (int b = 0; b < blocks; ++b) {
        for (std::size_t k = 0; k < ways.size(); ++k) {
            Way& w = ways[(k + static_cast<std::size_t>(b)) % ways.size()];
            const auto start = Clock::now();
            for (int i = 0; i < iterations; ++i)
                if (!w.read()) {
                    std::fprintf(stderr, "identity_read: %s failed\n", w.name);
                    return 1;
                }
            const std::chrono::duration<double, std::nano> took = Clock::now() - start;
            w.ns_per_read.push_back(took.count() / iterations);
        }
    }
    std::printf("%d blocks of %d reads each, ns per read (mean of a block): median [p25..p75] (min..max)\n", blocks,
                iterations);
    for (const auto& w : ways)
        std::printf("  %-13s %8.0f [%.0f..%.0f] (%.0f..%.0f)\n", w.name, percentile(w.ns_per_read, 0.5),
                    percentile(w.ns_per_read, 0.25), percentile(w.ns_per_read, 0.75), percentile(w.ns_per_read, 0.0),
                    percentile(w.ns_per_read, 1.0));
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    return 0;
}
