// fsync_floor DIR — the floor under every audited decision on this disk: one append of a
// typical audit spool line (~700 bytes) followed by fdatasync, 2,000 times; prints percentiles.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fcntl.h>
#include <string>
#include <unistd.h>
#include <vector>

int main(int argc, char** argv) {
    const std::string path = std::string(argc > 1 ? argv[1] : "/tmp") + "/jitgate-fsync-floor.tmp";
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        std::perror(path.c_str());
        return 1;
    }
    const std::string line(699, 'x');
    std::vector<double> us;
    for (int i = 0; i < 2000; ++i) {
        const auto t = std::chrono::steady_clock::now();
        if (::write(fd, (line + "\n").data(), line.size() + 1) < 0 || ::fdatasync(fd) != 0) {
            std::perror("write/fdatasync");
            return 1;
        }
        us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t).count());
    }
    ::close(fd);
    ::unlink(path.c_str());
    std::sort(us.begin(), us.end());
    std::printf("%-58s p50 %.0f us, p99 %.0f us, p99.9 %.0f us (n=2000)\n",
                "write + fdatasync of one audit line (700 B)", us[1000], us[1980], us[1998]);
    return 0;
}
