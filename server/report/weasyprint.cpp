// server/report/weasyprint.cpp — see weasyprint.hpp.
#include "server/report/weasyprint.hpp"

#include <jitgate/error.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>
#include <vector>

extern char** environ;

namespace jitgate::server::report {

namespace {

constexpr const char* k_program = "weasyprint";
constexpr std::size_t k_max_stderr = 64 * 1024;

std::string find_in_path(std::string_view name) {
    const char* path = std::getenv("PATH");
    std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
    while (!dirs.empty()) {
        const std::size_t colon = dirs.find(':');
        const std::string_view dir = dirs.substr(0, colon);
        if (!dir.empty()) {
            std::string candidate = std::string(dir) + "/" + std::string(name);
            if (::access(candidate.c_str(), X_OK) == 0) return candidate;
        }
        if (colon == std::string_view::npos) break;
        dirs.remove_prefix(colon + 1);
    }
    return "";
}

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
    void close() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
};

[[noreturn]] void fail(const std::string& what) {
    throw Error(ErrorCode::io, "pdf", what);
}

// The running WeasyPrint: killed (SIGKILL) and reaped on every way out that did not reap it,
// so neither an error nor an exception leaves a process behind or a wait without end.
struct Child {
    pid_t pid = -1;
    ~Child() {
        if (pid <= 0) return;
        ::kill(pid, SIGKILL);
        wait();
    }
    void wait() {
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        pid = -1;
    }
};

std::string describe(std::chrono::milliseconds d) {
    if (d.count() % 60000 == 0) return std::to_string(d.count() / 60000) + " minutes";
    if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " seconds";
    return std::to_string(d.count()) + " ms";
}

} // namespace

std::string html_to_pdf(const std::string& html, std::chrono::milliseconds deadline_after) {
    const std::string program = find_in_path(k_program);
    if (program.empty())
        fail("the PDF is made by WeasyPrint, which is not installed: install the Debian package `weasyprint` "
             "(apt install weasyprint), or ask for --format html and print that");
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) != 0) fail(std::strerror(errno));
    Fd in_r{in[0]}, in_w{in[1]};
    // Our end never blocks: a WeasyPrint that stops reading leaves the write to the deadline.
    if (::fcntl(in_w.fd, F_SETFL, ::fcntl(in_w.fd, F_GETFL) | O_NONBLOCK) != 0) fail(std::strerror(errno));
    if (::pipe2(out, O_CLOEXEC) != 0) fail(std::strerror(errno));
    Fd out_r{out[0]}, out_w{out[1]};
    if (::pipe2(err, O_CLOEXEC) != 0) fail(std::strerror(errno));
    Fd err_r{err[0]}, err_w{err[1]};

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_r.fd, 0);
    posix_spawn_file_actions_adddup2(&actions, out_w.fd, 1);
    posix_spawn_file_actions_adddup2(&actions, err_w.fd, 2);
    // SECURITY NOTE: the report holds no external resource (every stored string is escaped, the
    // CSS is inline), and WeasyPrint is kept off the network anyway: the base URL names nothing
    // and every proxy variable points at a closed local port, so a fetch, should one slip in,
    // fails at once instead of reaching out from the audit server.
    std::vector<std::string> env_storage{"PATH=/usr/bin:/bin",
                                         "LANG=C.UTF-8",
                                         "HOME=/nonexistent",
                                         "http_proxy=http://127.0.0.1:9",
                                         "https_proxy=http://127.0.0.1:9",
                                         "HTTP_PROXY=http://127.0.0.1:9",
                                         "HTTPS_PROXY=http://127.0.0.1:9",
                                         "no_proxy=",
                                         "NO_PROXY="};
    std::vector<char*> envp;
    for (std::string& e : env_storage) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string arg0 = program, base_opt = "--base-url", base = "file:///nonexistent/", input = "-", output = "-";
    char* argv[] = {arg0.data(), base_opt.data(), base.data(), input.data(), output.data(), nullptr};
    Child child;
    const int spawned = ::posix_spawn(&child.pid, program.c_str(), &actions, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
        child.pid = -1;
        fail("cannot run " + program + ": " + std::strerror(spawned));
    }
    in_r.close();
    out_w.close();
    err_w.close();

    std::string pdf;
    std::string messages;
    std::size_t written = 0;
    const auto deadline = std::chrono::steady_clock::now() + deadline_after;
    bool timed_out = false;
    ::signal(SIGPIPE, SIG_IGN); // a WeasyPrint that dies early must not kill us on write
    while (out_r.fd >= 0 || err_r.fd >= 0) {
        std::vector<pollfd> fds;
        if (in_w.fd >= 0) fds.push_back({in_w.fd, POLLOUT, 0});
        if (out_r.fd >= 0) fds.push_back({out_r.fd, POLLIN, 0});
        if (err_r.fd >= 0) fds.push_back({err_r.fd, POLLIN, 0});
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        const int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::min<long long>(left.count(), 1000)));
        if (n < 0 && errno != EINTR) {
            const int error = errno;
            fail(std::string("waiting for WeasyPrint: ") + std::strerror(error)); // Child kills it
        }
        for (const pollfd& p : fds) {
            if (p.revents == 0) continue;
            if (p.fd == in_w.fd) {
                const ssize_t w =
                    ::write(in_w.fd, html.data() + written, std::min<std::size_t>(html.size() - written, 65536));
                if (w > 0) written += static_cast<std::size_t>(w);
                if (w < 0 && errno != EAGAIN && errno != EINTR) in_w.close();
                if (written == html.size()) in_w.close();
                continue;
            }
            char buf[65536];
            const ssize_t r = ::read(p.fd, buf, sizeof buf);
            if (r > 0) {
                if (p.fd == out_r.fd)
                    pdf.append(buf, static_cast<std::size_t>(r));
                else if (messages.size() < k_max_stderr)
                    messages.append(buf, static_cast<std::size_t>(r));
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                if (p.fd == out_r.fd)
                    out_r.close();
                else
                    err_r.close();
            }
        }
    }
    in_w.close();
    // A program that closed its output may still run: its exit is awaited within the deadline too.
    int status = 0;
    while (!timed_out) {
        const pid_t done = ::waitpid(child.pid, &status, WNOHANG);
        if (done == child.pid) {
            child.pid = -1;
            break;
        }
        if (done < 0 && errno != EINTR) fail(std::string("waiting for WeasyPrint: ") + std::strerror(errno));
        if (std::chrono::steady_clock::now() >= deadline)
            timed_out = true;
        else
            ::usleep(10000);
    }
    if (timed_out)
        fail("WeasyPrint ran longer than " + describe(deadline_after) + " and was stopped"); // Child kills it
    while (!messages.empty() && (messages.back() == '\n' || messages.back() == '\r')) messages.pop_back();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("WeasyPrint failed (" +
             (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                : "signal " + std::to_string(WTERMSIG(status))) +
             "): " + messages);
    if (pdf.rfind("%PDF-", 0) != 0) fail("WeasyPrint wrote no PDF: " + messages);
    return pdf;
}

} // namespace jitgate::server::report
