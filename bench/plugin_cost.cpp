// bench/plugin_cost.cpp — the sudo plugin's own cost, without sudo (docs/PERFORMANCE.md,
// "The plugin's own cost"). A stand-in for sudo's front end: it dlopen()s sudo_jitgate.so as
// sudo does, resolves the two plugin structs and, by mode, calls them as sudo does for
// `sudo -n true` with a live grant, against a stand-in daemon that answers at once (a child
// process forked before the plugin is loaded, on a socket in a scratch directory). Nothing
// here waits on a disk: what is left is loading the plugin and its own CPU.
//
//   plugin_cost MODE PLUGIN.so          one run; MODE is none (no dlopen), load (dlopen and
//                                        dlsym), open (+ both open()s) or run (+ check(),
//                                        accept(), close(): the whole of a sudo's calls)
//                                        With PLUGIN_COST_CPU=1 it prints the process's CPU
//                                        time (user + system, in microseconds) of each step:
//                                        load, open, accept+check, close
//   plugin_cost time N MODE PLUGIN.so... fork+exec `plugin_cost MODE P` N times for each P in
//                                        turn (alternating), prints each P's median and
//                                        min..max wall time per run in microseconds
//
// For instruction counts run one process under callgrind:
//   valgrind --tool=callgrind --callgrind-out-file=OUT plugin_cost run PLUGIN.so
// and read the inclusive cost of dlopen, jg_approval_check and jg_audit_close.
// Uses libc only (linked with --as-needed), as sudo's front end is C: no C++ runtime in the
// process but the plugin's own.
#include <dlfcn.h>
#include <sudo_plugin.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

int quiet_printf(int, const char*, ...) {
    return 0;
}

int no_conv(int, const sudo_conv_message[], sudo_conv_reply[], sudo_conv_callback*) {
    return -1;
}

bool read_full(int fd, char* buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        const ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        got += static_cast<size_t>(r);
    }
    return true;
}

// The stand-in daemon: one frame in, one answer out, per connection; a check gets a grant's
// allow, anything else (command.finished) an ok.
[[noreturn]] void serve(int listener) {
    static char frame[1 << 20];
    for (;;) {
        const int c = accept(listener, nullptr, nullptr);
        if (c < 0) _exit(0);
        unsigned char h[4];
        if (read_full(c, reinterpret_cast<char*>(h), 4)) {
            const size_t n = (size_t{h[0]} << 24) | (size_t{h[1]} << 16) | (size_t{h[2]} << 8) | h[3];
            if (n < sizeof frame && read_full(c, frame, n)) {
                frame[n] = '\0';
                const char* answer =
                    std::strstr(frame, "\"type\":\"check\"") != nullptr
                        ? "{\"type\":\"decision\",\"allow\":true,\"outcome\":\"grant\",\"message\":\"\","
                          "\"request_id\":\"r-0123456789abcdef\",\"grant_id\":\"g-0123456789abcdef\","
                          "\"rule\":\"gated\"}"
                        : "{\"type\":\"ok\"}";
                const size_t m = std::strlen(answer);
                char out[512];
                out[0] = static_cast<char>(m >> 24);
                out[1] = static_cast<char>(m >> 16);
                out[2] = static_cast<char>(m >> 8);
                out[3] = static_cast<char>(m);
                std::memcpy(out + 4, answer, m);
                if (write(c, out, m + 4) < 0) _exit(1);
            }
        }
        close(c);
    }
}

long long cpu_ns() {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<long long>(t.tv_sec) * 1000000000LL + t.tv_nsec;
}

int one_run(const char* mode, const char* so) {
    if (std::strcmp(mode, "none") == 0) return 0;
    long long cpu[5] = {};
    int steps = 0;
    const bool show_cpu = std::getenv("PLUGIN_COST_CPU") != nullptr;
    const bool run = std::strcmp(mode, "run") == 0;
    char dir[] = "/tmp/plugin_cost.XXXXXX";
    char sock_opt[128] = "socket=/nonexistent";
    pid_t server = -1;
    int listener = -1;
    if (run) {
        if (mkdtemp(dir) == nullptr) return 2;
        std::snprintf(sock_opt, sizeof sock_opt, "socket=%s/s", dir);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::snprintf(a.sun_path, sizeof a.sun_path, "%s/s", dir);
        listener = socket(AF_UNIX, SOCK_STREAM, 0);
        if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listener, 8) != 0)
            return 2;
        const pid_t parent = getpid();
        server = fork();
        if (server == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); // whatever happens to this run, the daemon goes with it
            if (getppid() != parent) _exit(0);
            serve(listener);
        }
        close(listener);
    }
    // Stops the stand-in daemon and removes its directory (every return once it runs).
    const auto finish = [&](int code) {
        if (run) {
            kill(server, SIGTERM);
            waitpid(server, nullptr, 0);
            char path[160];
            std::snprintf(path, sizeof path, "%s/s", dir);
            unlink(path);
            rmdir(dir);
        }
        return code;
    };
    cpu[steps++] = cpu_ns();
    // sudo_dso_load(path, SUDO_DSO_LAZY|SUDO_DSO_GLOBAL), as sudo's load_plugins does.
    void* h = dlopen(so, RTLD_LAZY | RTLD_GLOBAL);
    if (h == nullptr) {
        std::fprintf(stderr, "dlopen: %s\n", dlerror());
        return finish(1);
    }
    auto* approval = static_cast<approval_plugin*>(dlsym(h, "jitgate_approval"));
    auto* audit = static_cast<audit_plugin*>(dlsym(h, "jitgate_audit"));
    if (approval == nullptr || audit == nullptr) return finish(1);
    int rc = 0;
    cpu[steps++] = cpu_ns();
    if (std::strcmp(mode, "load") != 0) {
        char uid[32], pid[32];
        std::snprintf(uid, sizeof uid, "uid=%u", static_cast<unsigned>(getuid()));
        std::snprintf(pid, sizeof pid, "pid=%d", static_cast<int>(getpid()));
        char* settings[] = {const_cast<char*>("progname=sudo"), const_cast<char*>("noninteractive=true"), nullptr};
        char* user_info[] = {const_cast<char*>("user=alice"),
                             uid,
                             pid,
                             const_cast<char*>("cwd=/home/alice"),
                             const_cast<char*>("tty=/dev/pts/0"),
                             const_cast<char*>("host=bench"),
                             nullptr};
        char* submit_argv[] = {const_cast<char*>("sudo"), const_cast<char*>("-n"), const_cast<char*>("true"), nullptr};
        char* envp[] = {const_cast<char*>("PATH=/usr/bin:/bin"),
                        const_cast<char*>("HOME=/home/alice"),
                        const_cast<char*>("TERM=xterm-256color"),
                        const_cast<char*>("LANG=C.UTF-8"),
                        const_cast<char*>("USER=alice"),
                        const_cast<char*>("SHELL=/bin/bash"),
                        nullptr};
        char* options[] = {sock_opt, nullptr};
        const char* err = nullptr;
        if (audit->open(SUDO_API_VERSION, no_conv, quiet_printf, settings, user_info, 2, submit_argv, envp, options,
                        &err) != 1 ||
            approval->open(SUDO_API_VERSION, no_conv, quiet_printf, settings, user_info, 2, submit_argv, envp, options,
                           &err) != 1)
            rc = 1;
        cpu[steps++] = cpu_ns();
        if (run) {
            char* command_info[] = {const_cast<char*>("command=/usr/bin/true"), const_cast<char*>("runas_uid=0"),
                                    const_cast<char*>("runas_gid=0"), const_cast<char*>("cwd=/home/alice"), nullptr};
            char* run_argv[] = {const_cast<char*>("true"), nullptr};
            char* run_envp[] = {const_cast<char*>("PATH=/usr/bin:/bin"),
                                const_cast<char*>("HOME=/root"),
                                const_cast<char*>("TERM=xterm-256color"),
                                const_cast<char*>("LANG=C.UTF-8"),
                                const_cast<char*>("USER=root"),
                                const_cast<char*>("LOGNAME=root"),
                                const_cast<char*>("SUDO_USER=alice"),
                                const_cast<char*>("SUDO_UID=1000"),
                                const_cast<char*>("SUDO_GID=1000"),
                                const_cast<char*>("SUDO_COMMAND=/usr/bin/true"),
                                nullptr};
            // sudo's order: the policy's accept (passed to audit plugins), then the approval check.
            audit->accept("sudoers", SUDO_POLICY_PLUGIN, command_info, run_argv, run_envp, &err);
            if (approval->check(command_info, run_argv, run_envp, &err) != 1) {
                std::fprintf(stderr, "check did not allow: %s\n", err != nullptr ? err : "");
                rc = 1;
            }
            cpu[steps++] = cpu_ns();
            audit->close(SUDO_PLUGIN_WAIT_STATUS, 0);
            approval->close();
            cpu[steps++] = cpu_ns();
        }
    }
    finish(0);
    if (show_cpu) {
        for (int i = 1; i < steps; ++i) std::printf("%s%lld", i > 1 ? " " : "", (cpu[i] - cpu[i - 1]) / 1000);
        std::printf("\n");
    }
    return rc; // exit() runs the plugin's destructors, as sudo's exit does
}

long long now_ns() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<long long>(t.tv_sec) * 1000000000LL + t.tv_nsec;
}

int compare(const void* a, const void* b) {
    const long long x = *static_cast<const long long*>(a), y = *static_cast<const long long*>(b);
    return x < y ? -1 : x > y;
}

int timed(char* self, int n, char* mode, int count, char** sos) {
    auto* us =
        static_cast<long long*>(std::calloc(static_cast<size_t>(n) * static_cast<size_t>(count), sizeof(long long)));
    for (int i = 0; i < n; ++i) {
        for (int p = 0; p < count; ++p) {
            const long long t0 = now_ns();
            const pid_t child = fork();
            if (child == 0) {
                char* argv[] = {self, mode, sos[p], nullptr};
                execv(self, argv);
                _exit(127);
            }
            int status = 0;
            waitpid(child, &status, 0);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                std::fprintf(stderr, "run of %s failed\n", sos[p]);
                return 1;
            }
            us[p * n + i] = (now_ns() - t0) / 1000;
        }
    }
    for (int p = 0; p < count; ++p) {
        long long* v = us + p * n;
        std::qsort(v, static_cast<size_t>(n), sizeof *v, compare);
        std::printf("%-5s %-60s median %lld us (%lld..%lld, n=%d)\n", mode, sos[p], v[n / 2], v[0], v[n - 1], n);
    }
    std::free(us);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc >= 5 && std::strcmp(argv[1], "time") == 0)
        return timed(argv[0], std::atoi(argv[2]), argv[3], argc - 4, argv + 4);
    if (argc == 3) return one_run(argv[1], argv[2]);
    std::fprintf(stderr, "usage: %s none|load|open|run PLUGIN.so\n       %s time N MODE PLUGIN.so...\n", argv[0],
                 argv[0]);
    return 2;
}
