// fsync_count.so — an LD_PRELOAD shim for jitgate_bench: counts the fdatasync and fsync calls
// of the process it is loaded into, so the bench can tell how many events each group commit
// made durable. The counts live in a shared page (the file named by JITGATE_FSYNC_COUNT_FILE,
// mapped MAP_SHARED): [0] fdatasync calls, [1] fsync calls, updated after each call returns.
// Cost: one relaxed atomic add per sync, nothing next to the sync itself. Without the
// variable (or if the file cannot be mapped) it only forwards the calls.
#include <cstdlib>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace {

using SyncFn = int (*)(int);
unsigned long* g_counts = nullptr;
SyncFn g_real[2] = {nullptr, nullptr}; // the C library's fdatasync, fsync

SyncFn next_symbol(const char* name) {
    return reinterpret_cast<SyncFn>(dlsym(RTLD_NEXT, name));
}

__attribute__((constructor)) void map_counts() {
    g_real[0] = next_symbol("fdatasync");
    g_real[1] = next_symbol("fsync");
    const char* path = std::getenv("JITGATE_FSYNC_COUNT_FILE");
    if (path == nullptr) return;
    const int fd = ::open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    if (::ftruncate(fd, 4096) == 0) {
        void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) g_counts = static_cast<unsigned long*>(p);
    }
    ::close(fd);
}

int counted(int fd, const char* name, int slot) {
    // Set by the constructor; looked up here only if a sync runs before it (single-threaded then).
    if (g_real[slot] == nullptr) g_real[slot] = next_symbol(name);
    const int r = g_real[slot](fd);
    if (g_counts != nullptr) __atomic_fetch_add(&g_counts[slot], 1UL, __ATOMIC_RELAXED);
    return r;
}

} // namespace

extern "C" int fdatasync(int fd) {
    return counted(fd, "fdatasync", 0);
}
extern "C" int fsync(int fd) {
    return counted(fd, "fsync", 1);
}
