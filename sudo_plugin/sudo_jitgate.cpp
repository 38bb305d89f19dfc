// sudo_jitgate.so — jitgate's sudo approval plugin (jitgate_approval) and audit plugin
// (jitgate_audit). Thin by design: each entry point reads sudo's facts, calls one function of
// libjitgate_common, maps the result to sudo's code and returns. No policy, no network beyond
// the local socket, no threads, and nothing thrown ever reaches sudo (abi_guard).
//
// sudo loads both symbols from this one file, so they share the state below: the audit
// plugin reports the request and grant that the approval plugin's decision carried.
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>
#include <utility>
#include <vector>

#include <sudo_plugin.h>

#include "jitgate/check.hpp"
#include "jitgate/client.hpp"
#include "jitgate/guard.hpp"
#include "jitgate/messages.hpp"
#include "jitgate/passwd.hpp"
#include "jitgate/plugin_options.hpp"
#include "jitgate/text.hpp"

namespace {

using jitgate::ErrorCode;
using jitgate::Status;
using jitgate::Verdict;
using Intercept = jitgate::msg::CheckRequest::Intercept;

struct State {
    sudo_conv_t conv = nullptr;
    sudo_printf_t print = nullptr;
    jitgate::PluginOptions options;
    jitgate::msg::CheckRequest base; // user facts from open()
    std::string errstr;              // *errstr points here; valid until close()
    // check() calls so far in this sudo process. sudo calls check() once for the command, and
    // under intercept (sudoers `Defaults intercept`) once more, in this same front-end
    // process, for every program that command and its children execute (docs/intercept.md):
    // every call after the first is a sub-command's.
    unsigned long checks = 0;
    // Shared with the audit plugin:
    std::string request_id;
    std::string grant_id;
    bool approved = false;                 // our check allowed: only then is there an outcome to report
    unsigned long offline_break_glass = 0; // passes of this sudo while jitgated was unreachable
    bool accepted = false;
    std::string command;
    std::vector<std::string> run_argv;
    std::string runas_user;
    std::chrono::steady_clock::time_point started;
    // The user audit accept() named, for the check() that follows it (see user_of).
    std::optional<std::pair<uid_t, std::string>> named_user;
};

// Constructed on first use, never at load time: no static constructor does work in sudo.
State& state() {
    static State s;
    return s;
}

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_interrupt(int) {
    g_interrupted = 1;
}

void report(const char* what) noexcept {
    if (state().print != nullptr) state().print(SUDO_CONV_ERROR_MSG, "jitgate: internal error: %s\n", what);
}

// The name of `uid`, or "#uid". sudo calls audit accept() and then check() for the same command
// a moment apart, in the same process, and both name its run-as user: the lookup is made once
// (an NSS lookup in files is five system calls: nsswitch.conf's stat, open, fstat, read, close).
// Each check() forgets it afterwards: a sub-command's check (intercept, possibly much later in
// a long shell) looks the name up afresh, as before.
std::string user_of(uid_t uid) {
    auto& named = state().named_user;
    if (!named || named->first != uid)
        named.emplace(uid, jitgate::user_name_of(uid).value_or("#" + std::to_string(uid)));
    return named->second;
}

std::string group_of(gid_t gid) {
    return jitgate::group_name_of(gid).value_or("#" + std::to_string(gid));
}

// The decimal number after leading blanks in `s`, or -1.
long number_after(const char* s) {
    while (*s == ' ' || *s == '\t') ++s;
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(s, &end, 10);
    return errno == 0 && end != s ? v : -1;
}

long number(const char* s, long fallback) {
    if (s == nullptr) return fallback;
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(s, &end, 10);
    return errno == 0 && end != s && *end == '\0' ? v : fallback;
}

// Restores the previous handlers on scope exit. sudo's own handlers use SA_RESTART and only
// mark signals pending, which would not end a blocking wait: ours interrupt poll() instead.
class InterruptScope {
public:
    InterruptScope() {
        g_interrupted = 0;
        struct sigaction sa {};
        sa.sa_handler = on_interrupt;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; // no SA_RESTART
        sigemptyset(&m_set);
        for (std::size_t i = 0; i < k_count; ++i) {
            sigaction(k_signals[i], &sa, &m_old[i]);
            sigaddset(&m_set, k_signals[i]);
        }
        // sudo keeps these blocked while plugins run; unblock them for the wait only.
        sigprocmask(SIG_UNBLOCK, &m_set, &m_old_mask);
    }
    ~InterruptScope() {
        sigprocmask(SIG_SETMASK, &m_old_mask, nullptr);
        for (std::size_t i = 0; i < k_count; ++i) sigaction(k_signals[i], &m_old[i], nullptr);
    }
    InterruptScope(const InterruptScope&) = delete;
    InterruptScope& operator=(const InterruptScope&) = delete;

    // For the client's wait: it takes these signals only inside ppoll(), after checking
    // g_interrupted, so a Ctrl-C between the check and the wait is not missed.
    const sigset_t* signals() const noexcept { return &m_set; }

private:
    static constexpr std::size_t k_count = 4;
    static constexpr int k_signals[k_count] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP};
    struct sigaction m_old[k_count] {};
    sigset_t m_set{};
    sigset_t m_old_mask{};
};

// Puts `argv` on the request within the frame budget; longer command lines are flagged so
// the daemon denies them knowingly rather than judging a part.
void fill_argv(jitgate::msg::CheckRequest& r, char* const run_argv[]) {
    std::size_t total = 0;
    for (char* const* a = run_argv; a != nullptr && *a != nullptr; ++a) total += std::strlen(*a) + 1;
    for (const auto& a : r.submit_argv) total += a.size() + 1;
    r.argv_bytes = static_cast<std::int64_t>(total);
    std::size_t used = 0;
    for (char* const* a = run_argv; a != nullptr && *a != nullptr; ++a) {
        const std::size_t n = std::strlen(*a) + 1;
        if (used + n > jitgate::msg::k_argv_budget / 2) {
            r.argv_truncated = true;
            break;
        }
        used += n;
        r.run_argv.emplace_back(*a);
    }
    if (r.argv_truncated || total > jitgate::msg::k_argv_budget) {
        r.argv_truncated = true;
        r.submit_argv.clear();
    }
}

// Puts the command's final environment (and sudo's own arguments, which name the variables set
// on its command line) on the request within one budget; a larger one is flagged so the
// daemon denies rather than binds a part of it.
void fill_env(jitgate::msg::CheckRequest& r, char* const run_envp[]) {
    std::size_t total = 0;
    for (char* const* e = run_envp; e != nullptr && *e != nullptr; ++e) total += std::strlen(*e) + 1;
    for (const auto& a : r.sudo_args) total += a.size() + 1; // sudo VAR=value words count too
    if (total > jitgate::msg::k_env_budget) {
        r.env_truncated = true;
        r.sudo_args.clear();
        return;
    }
    r.run_env = jitgate::to_vector(run_envp);
}

// The one mapping from a check's verdict to sudo's codes: 1 allow, 0 deny, -1 error.
int to_sudo_status(Verdict v) noexcept {
    switch (v) {
    case Verdict::allowed:
    case Verdict::not_gated:
    case Verdict::offline_break_glass:
        return 1;
    case Verdict::internal_error:
        return -1;
    case Verdict::denied:
    case Verdict::cancelled:
    case Verdict::unavailable:
    case Verdict::bad_input:
    case Verdict::unknown_user:
        return 0;
    }
    return 0;
}

// The first bad option of sudo.conf's Plugin line, or "" (a bad line denies everything).
std::string bad_option(const jitgate::PluginOptions& o) {
    if (!o.errors.empty()) return o.errors.front();
    return o.unknown.empty() ? std::string() : "unknown '" + o.unknown.front() + "'";
}

// Whether this sudo process is being traced (/proc/self/status TracerPid not 0), or that
// cannot be read: sudo then cannot trace the command (PTRACE_SEIZE fails) and, after the
// check passed, runs it without intercept.
bool traced() {
    const int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return true;
    char buf[4096];
    std::size_t used = 0;
    for (;;) {
        const ssize_t n = ::read(fd, buf + used, sizeof(buf) - 1 - used);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        used += static_cast<std::size_t>(n);
        if (used == sizeof(buf) - 1) break;
    }
    ::close(fd);
    buf[used] = '\0';
    const char* line = std::strstr(buf, "\nTracerPid:");
    if (line == nullptr) return true;
    return number_after(line + std::strlen("\nTracerPid:")) != 0;
}

// The request for one command: the user facts from open() and the command from sudo.
jitgate::msg::CheckRequest command_request(const jitgate::msg::CheckRequest& base, char* const command_info[],
                                           char* const run_argv[], char* const run_envp[], bool sub_command) {
    jitgate::msg::CheckRequest r = base;
    const char* command = jitgate::find_value(command_info, "command");
    r.command = command != nullptr ? command : "";
    r.runas_uid = number(jitgate::find_value(command_info, "runas_euid"),
                         number(jitgate::find_value(command_info, "runas_uid"), 0));
    r.runas_user = user_of(static_cast<uid_t>(r.runas_uid));
    r.runas_gid = number(jitgate::find_value(command_info, "runas_egid"),
                         number(jitgate::find_value(command_info, "runas_gid"), -1));
    if (r.runas_gid >= 0) r.runas_group = group_of(static_cast<gid_t>(r.runas_gid));
    // A sub-command's own directory is "runcwd" (sudo keeps the policy's "cwd" of the command,
    // e.g. the home directory of sudo -i, in a sub-command's command_info); "unknown" if sudo
    // could not tell, recorded as such.
    const char* run_cwd = sub_command ? jitgate::find_value(command_info, "runcwd") : nullptr;
    if (run_cwd == nullptr) run_cwd = jitgate::find_value(command_info, "cwd");
    r.run_cwd = run_cwd != nullptr ? run_cwd : r.cwd; // sudo stays in the user's cwd unless told otherwise
    // sudo's front end runs the command in intercept mode when the policy's command_info says
    // "intercept=true" (log_subcmds alone logs, it never calls check()); what can still slip
    // past it is reported as intercept_limit for the daemon to judge.
    const char* intercept = jitgate::find_value(command_info, "intercept");
    r.intercept = intercept != nullptr && std::strcmp(intercept, "true") == 0 ? Intercept::on : Intercept::off;
    if (r.intercept == Intercept::on) {
        const char* ptrace = jitgate::find_value(command_info, "use_ptrace");
        const char* verify = jitgate::find_value(command_info, "intercept_verify");
        if (ptrace == nullptr || std::strcmp(ptrace, "true") != 0)
            r.intercept_limit = "dso";
        else if (verify == nullptr || std::strcmp(verify, "true") != 0)
            r.intercept_limit = "no_verify";
        else if (traced())
            r.intercept_limit = "traced";
    }
    const char* chroot_dir = jitgate::find_value(command_info, "chroot");
    r.chroot = chroot_dir != nullptr ? chroot_dir : "";
    fill_argv(r, run_argv);
    fill_env(r, run_envp);
    jitgate::fill_program(r);
    return r;
}

// Marks `r` as a sub-command of the command that the first check of this sudo admitted (see
// State::checks). The daemon judges it on the fast path only: nobody can answer a prompt
// inside the shell.
void mark_sub_command(jitgate::msg::CheckRequest& r, const State& s) {
    r.intercepted = true;
    r.parent_request_id = s.request_id;
    r.parent_grant_id = s.grant_id;
    r.interactive = false;
    r.noninteractive = true;
}

// The user's side of a check: notices and prompts through sudo's conversation function.
jitgate::client::UserIo sudo_io(const State& s) {
    jitgate::client::UserIo io;
    io.notice = [&s](const std::string& line) { s.print(SUDO_CONV_ERROR_MSG, "%s\n", line.c_str()); };
    io.prompt = [&s](const std::string& text, bool echo) -> std::optional<std::string> {
        sudo_conv_message m{(echo ? SUDO_CONV_PROMPT_ECHO_ON : SUDO_CONV_PROMPT_ECHO_OFF) | SUDO_CONV_PREFER_TTY, 0,
                            text.c_str()};
        sudo_conv_reply reply{nullptr};
        if (s.conv == nullptr || s.conv(1, &m, &reply, nullptr) != 0 || reply.reply == nullptr) return std::nullopt;
        std::string answer = reply.reply;
        std::memset(reply.reply, 0, answer.size());
        std::free(reply.reply);
        return answer;
    };
    return io;
}

// Tells the user how the check ended. On a deny, *errstr is the reason (sudo does not print
// an approval plugin's errstr itself; it hands it to audit plugins), valid until close().
// An offline break-glass pass is logged to syslog: nothing else records it. The first of a sudo
// run is an alert; the sub-commands of that run's shell (intercept) that follow are logged one
// line each at warning, so one outage does not page the on-call person once per program.
void tell_user(State& s, const jitgate::CheckResult& res, const std::vector<std::string>& argv, const char** errstr) {
    const Status& st = res.status;
    switch (res.verdict) {
    case Verdict::allowed:
    case Verdict::not_gated:
        if (!res.decision.message.empty()) s.print(SUDO_CONV_ERROR_MSG, "%s\n", res.decision.message.c_str());
        return;
    case Verdict::offline_break_glass: {
        const std::string line = "jitgate: BREAK-GLASS by " + jitgate::text::escape_for_log(s.base.user) +
                                 " while jitgated is unreachable (" + jitgate::text::escape_for_log(st.detail) +
                                 "): command " + jitgate::text::display_argv(argv) +
                                 " reason: " + jitgate::text::escape_for_log(s.base.break_glass_reason);
        if (s.offline_break_glass++ == 0) {
            syslog(LOG_AUTHPRIV | LOG_ALERT, "%s", line.c_str());
            s.print(SUDO_CONV_ERROR_MSG, "%s\njitgate: this break-glass use has been logged and alerted.\n",
                    line.c_str());
        } else {
            syslog(LOG_AUTHPRIV | LOG_WARNING, "%s (sub-command %lu of the break-glass run alerted above)",
                   line.c_str(), s.offline_break_glass - 1);
        }
        return;
    }
    case Verdict::denied:
        if (st.code == ErrorCode::denied)
            s.errstr = res.decision.message.empty() ? "jitgate: denied" : res.decision.message;
        else
            s.errstr = "jitgate: denied: " + st.detail;
        break;
    case Verdict::cancelled:
        s.errstr = "jitgate: cancelled; the request was withdrawn";
        break;
    case Verdict::unavailable:
        s.errstr = "jitgate: denied: " + st.detail + " (fail closed)";
        break;
    case Verdict::bad_input:
    case Verdict::unknown_user:
    case Verdict::internal_error:
        s.errstr = "jitgate: denied: " + st.detail;
        break;
    }
    s.print(SUDO_CONV_ERROR_MSG, "%s\n", s.errstr.c_str());
    *errstr = s.errstr.c_str();
}

int approval_open(unsigned int /*version*/, sudo_conv_t conversation, sudo_printf_t sudo_printf, char* const settings[],
                  char* const user_info[], int submit_optind, char* const submit_argv[], char* const submit_envp[],
                  char* const plugin_options[], const char** /*errstr*/) {
    State& s = state();
    s.conv = conversation;
    s.print = sudo_printf;
    s.options = jitgate::parse_plugin_options(jitgate::to_vector(plugin_options));
    auto& b = s.base;
    b.kind = "sudo";
    b.uid = number(jitgate::find_value(user_info, "uid"), -1);
    const char* user = jitgate::find_value(user_info, "user");
    b.user = user != nullptr ? user : "";
    b.pid = static_cast<std::int64_t>(getpid());
    const char* tty = jitgate::find_value(user_info, "tty");
    b.tty = tty != nullptr ? tty : "";
    const char* cwd = jitgate::find_value(user_info, "cwd");
    b.cwd = cwd != nullptr ? cwd : "";
    const char* nonint = jitgate::find_value(settings, "noninteractive");
    b.noninteractive = nonint != nullptr && std::strcmp(nonint, "true") == 0;
    b.interactive = !b.tty.empty() && !b.noninteractive;
    // submit_argv is sudo's whole command line; the command the user typed starts at submit_optind.
    const auto typed = jitgate::to_vector(submit_argv);
    if (submit_optind >= 0 && static_cast<std::size_t>(submit_optind) <= typed.size()) {
        b.submit_argv.assign(typed.begin() + submit_optind, typed.end());
        if (submit_optind >= 1) b.sudo_args.assign(typed.begin() + 1, typed.begin() + submit_optind);
    }
    const auto env = [&](const char* k) {
        const char* v = jitgate::find_value(submit_envp, k);
        return std::string(v != nullptr ? v : "");
    };
    b.reason = env("JITGATE_REASON");
    b.ticket = env("JITGATE_TICKET");
    b.break_glass_reason = env("JITGATE_BREAK_GLASS");
    // Never return 0 here: sudo would drop the plugin and run the command unchecked.
    return 1;
}

int approval_check(char* const command_info[], char* const run_argv[], char* const run_envp[], const char** errstr) {
    State& s = state();
    const bool sub_command = s.checks++ > 0;
    // The run-as name audit accept() looked up serves this check's request only, whichever way
    // the check ends (a bad option, an exception): a later sub-command's check looks it up afresh.
    struct ForgetNamedUser {
        State& s;
        ~ForgetNamedUser() { s.named_user.reset(); }
    } forget{s};
    jitgate::CheckResult res;
    std::vector<std::string> argv;
    if (const std::string bad = bad_option(s.options); !bad.empty()) {
        res.verdict = Verdict::bad_input;
        res.status = Status::failure(ErrorCode::bad_input, "bad option in sudo.conf: " + bad);
    } else {
        jitgate::msg::CheckRequest r = command_request(s.base, command_info, run_argv, run_envp, sub_command);
        argv = r.run_argv;
        if (sub_command) {
            // A sub-command never waits on a person: no handlers of ours, so a signal that
            // reaches sudo meanwhile is sudo's to relay to the command, not ours to swallow.
            mark_sub_command(r, s);
            res = jitgate::check(s.options, r, sudo_io(s), jitgate::CheckSettings{});
        } else {
            InterruptScope scope; // a Ctrl-C ends the wait and withdraws the request
            jitgate::CheckSettings settings;
            settings.interrupted = &g_interrupted;
            settings.wake_signals = scope.signals();
            res = jitgate::check(s.options, r, sudo_io(s), settings);
        }
    }
    const int rc = to_sudo_status(res.verdict);
    // A sub-command's verdict is its own: the audit plugin reports the command's outcome under
    // the request and grant that admitted the command itself.
    if (!sub_command) {
        s.run_argv = argv;
        s.request_id = res.decision.request_id;
        s.grant_id = res.decision.grant_id;
        if (rc == 1) {
            s.approved = true;
            s.started =
                std::chrono::steady_clock::now(); // sudo calls accept() before check(): time the command, not the wait
        }
    }
    tell_user(s, res, argv, errstr);
    return rc;
}

int audit_accept(const char* /*plugin_name*/, unsigned int /*plugin_type*/, char* const command_info[],
                 char* const run_argv[], char* const /*run_envp*/[], const char** /*errstr*/) {
    State& s = state();
    if (s.accepted) return 1;
    s.accepted = true;
    if (!s.approved) s.started = std::chrono::steady_clock::now();
    const char* command = jitgate::find_value(command_info, "command");
    s.command = command != nullptr ? command : "";
    s.runas_user = user_of(static_cast<uid_t>(number(jitgate::find_value(command_info, "runas_euid"),
                                                     number(jitgate::find_value(command_info, "runas_uid"), 0))));
    s.run_argv = jitgate::to_vector(run_argv);
    return 1;
}

void audit_close(int status_type, int status) {
    State& s = state();
    if (!s.accepted || !s.approved) return;
    jitgate::msg::FinishedReport f;
    f.user = s.base.user;
    f.uid = s.base.uid;
    f.pid = getpid();
    f.tty = s.base.tty;
    f.command = s.command;
    f.runas_user = s.runas_user;
    f.request_id = s.request_id;
    f.grant_id = s.grant_id;
    for (const auto& a : s.run_argv) {
        if (f.run_argv.size() * 64 + a.size() > jitgate::msg::k_argv_budget / 2) break;
        f.run_argv.push_back(a);
    }
    f.duration_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - s.started).count();
    if (status_type == SUDO_PLUGIN_WAIT_STATUS && WIFEXITED(status)) {
        f.status_type = "exit";
        f.exit_status = WEXITSTATUS(status);
    } else if (status_type == SUDO_PLUGIN_WAIT_STATUS && WIFSIGNALED(status)) {
        f.status_type = "signal";
        f.signal = WTERMSIG(status);
    } else if (status_type == SUDO_PLUGIN_EXEC_ERROR) {
        f.status_type = "exec_error";
        f.exec_errno = status;
    } else {
        f.status_type = "not_run";
    }
    auto opts = s.options.client;
    opts.reply_timeout_ms = 5000;
    // Not recorded (the daemon gone, or it answered with an error: refused, or its spool could
    // not take the event): keep the outcome somewhere an auditor looks.
    const Status st = jitgate::client::report(opts, f);
    if (!st.ok())
        syslog(LOG_AUTHPRIV | LOG_WARNING,
               "jitgate: could not report command.finished to jitgated (%s): user=%s command=%s status=%s/%lld",
               jitgate::text::escape_for_log(st.detail).c_str(), jitgate::text::escape_for_log(f.user).c_str(),
               jitgate::text::escape_for_log(f.command).c_str(), f.status_type.c_str(),
               static_cast<long long>(f.status_type == "signal" ? f.signal : f.exit_status));
}

int audit_open(unsigned int /*version*/, sudo_conv_t conversation, sudo_printf_t sudo_printf, char* const settings[],
               char* const user_info[], int submit_optind, char* const submit_argv[], char* const submit_envp[],
               char* const plugin_options[], const char** errstr) {
    // Same facts and options as the approval plugin (the first of the two to open sets them).
    if (state().print == nullptr)
        approval_open(SUDO_API_VERSION, conversation, sudo_printf, settings, user_info, submit_optind, submit_argv,
                      submit_envp, plugin_options, errstr);
    return 1;
}

int show_version(int /*verbose*/) {
    if (state().print != nullptr) state().print(SUDO_CONV_INFO_MSG, "jitgate plugin version %s\n", JITGATE_VERSION);
    return 1;
}

} // namespace

extern "C" {

static int jg_approval_open(unsigned int version, sudo_conv_t conversation, sudo_printf_t sudo_printf,
                            char* const settings[], char* const user_info[], int submit_optind,
                            char* const submit_argv[], char* const submit_envp[], char* const plugin_options[],
                            const char** errstr) {
    // On any trouble we still return 1 and deny in check(): 0 would disable the plugin.
    return jitgate::abi_guard(
        1,
        [&] {
            return approval_open(version, conversation, sudo_printf, settings, user_info, submit_optind, submit_argv,
                                 submit_envp, plugin_options, errstr);
        },
        report);
}

static void jg_approval_close(void) {}

static int jg_approval_check(char* const command_info[], char* const run_argv[], char* const run_envp[],
                             const char** errstr) {
    return jitgate::abi_guard(
        to_sudo_status(Verdict::internal_error),
        [&] { return approval_check(command_info, run_argv, run_envp, errstr); }, report);
}

static int jg_show_version(int verbose) {
    return jitgate::abi_guard(
        1, [&] { return show_version(verbose); }, report);
}

static int jg_audit_open(unsigned int version, sudo_conv_t conversation, sudo_printf_t sudo_printf,
                         char* const settings[], char* const user_info[], int submit_optind, char* const submit_argv[],
                         char* const submit_envp[], char* const plugin_options[], const char** errstr) {
    return jitgate::abi_guard(
        1,
        [&] {
            return audit_open(version, conversation, sudo_printf, settings, user_info, submit_optind, submit_argv,
                              submit_envp, plugin_options, errstr);
        },
        report);
}

static void jg_audit_close(int status_type, int status) {
    jitgate::abi_guard(
        0,
        [&] {
            audit_close(status_type, status);
            return 0;
        },
        report);
}

static int jg_audit_accept(const char* plugin_name, unsigned int plugin_type, char* const command_info[],
                           char* const run_argv[], char* const run_envp[], const char** errstr) {
    return jitgate::abi_guard(
        1, [&] { return audit_accept(plugin_name, plugin_type, command_info, run_argv, run_envp, errstr); }, report);
}

__attribute__((visibility("default"))) struct approval_plugin jitgate_approval = {
    SUDO_APPROVAL_PLUGIN, SUDO_API_VERSION, jg_approval_open, jg_approval_close, jg_approval_check, jg_show_version,
};

__attribute__((visibility("default"))) struct audit_plugin jitgate_audit = {
    SUDO_AUDIT_PLUGIN, SUDO_API_VERSION, jg_audit_open, jg_audit_close, jg_audit_accept,
    nullptr, // reject: the approval plugin's deny is already audited by the daemon
    nullptr, // error
    jg_show_version,
    nullptr, // register_hooks
    nullptr, // deregister_hooks
    nullptr, // event_alloc
};

} // extern "C"
