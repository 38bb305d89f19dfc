// pam_jitgate.so — jitgate's PAM module: logins (sshd, login, su, ...) held for just-in-time
// approval. Thin by design: each pam_sm_* reads PAM's items, calls libjitgate_common, maps the
// verdict with to_pam_status() and returns. No policy, no threads, no signal handlers, and
// nothing thrown ever reaches libpam (abi_guard).
//
//   auth     pam_sm_authenticate  interactive: prompts for reason/ticket, shows the request id,
//                                 waits for the decision
//   account  pam_sm_acct_mgmt     non-interactive: passes only on a live login grant (public-key
//                                 SSH logins skip the auth stack, so this hook gates them)
//   session  open/close           session.opened / session.closed with the session's length
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <syslog.h>
#include <unistd.h>
#include <vector>

#include <security/pam_ext.h>
#include <security/pam_modules.h>

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

constexpr const char* k_data_started = "jitgate_session_started_ms";
constexpr const char* k_data_request = "jitgate_request_id";
constexpr const char* k_data_grant = "jitgate_grant_id";
constexpr const char* k_data_break_glass = "jitgate_break_glass"; // auth passed by break-glass

struct Args {
    jitgate::PluginOptions options;
    bool interactive = true; // mode=interactive (default) | mode=noninteractive
    bool debug = false;
    bool bad = false;
};

// Module arguments: the plugin options (socket=, daemon_user=, break_glass_group=,
// connect_timeout=) plus mode= and debug. Unknown arguments are logged, not fatal.
Args parse_args(pam_handle_t* pamh, int argc, const char** argv) {
    std::vector<std::string> words;
    Args a;
    for (int i = 0; i < argc; ++i) {
        const std::string w = argv[i];
        if (w == "debug")
            a.debug = true;
        else if (w == "mode=interactive")
            a.interactive = true;
        else if (w == "mode=noninteractive")
            a.interactive = false;
        else if (w.rfind("timeout=", 0) == 0)
            words.push_back("connect_timeout=" + w.substr(8));
        else
            words.push_back(w);
    }
    a.options = jitgate::parse_plugin_options(words);
    for (const auto& u : a.options.unknown) pam_syslog(pamh, LOG_WARNING, "ignoring unknown argument '%s'", u.c_str());
    for (const auto& e : a.options.errors) pam_syslog(pamh, LOG_ERR, "bad argument: %s", e.c_str());
    a.bad = !a.options.errors.empty();
    return a;
}

// The one mapping from a check's verdict to PAM's codes (Linux-PAM documents each).
int to_pam_status(Verdict v) noexcept {
    switch (v) {
    case Verdict::allowed:
    case Verdict::offline_break_glass:
        return PAM_SUCCESS;
    // Not gated by a rule: PAM_IGNORE, never PAM_SUCCESS, so that a line misplaced as
    // `sufficient` can never skip the password.
    case Verdict::not_gated:
        return PAM_IGNORE;
    case Verdict::unavailable:
        return PAM_AUTHINFO_UNAVAIL;
    case Verdict::bad_input:
        return PAM_SERVICE_ERR;
    case Verdict::unknown_user:
        return PAM_USER_UNKNOWN;
    case Verdict::denied:
    case Verdict::cancelled:
    case Verdict::internal_error:
        return PAM_PERM_DENIED;
    }
    return PAM_PERM_DENIED;
}

std::string item(pam_handle_t* pamh, int type) {
    const void* v = nullptr;
    if (pam_get_item(pamh, type, &v) != PAM_SUCCESS || v == nullptr) return {};
    return static_cast<const char*>(v);
}

std::optional<std::string> ask(pam_handle_t* pamh, const std::string& text) {
    char* resp = nullptr;
    if (pam_prompt(pamh, PAM_PROMPT_ECHO_ON, &resp, "%s", text.c_str()) != PAM_SUCCESS || resp == nullptr)
        return std::nullopt;
    std::string answer = resp;
    std::memset(resp, 0, answer.size());
    std::free(resp);
    return answer;
}

void keep(pam_handle_t* pamh, const char* name, const std::string& value) {
    char* copy = strdup(value.c_str());
    if (copy != nullptr &&
        pam_set_data(pamh, name, copy, [](pam_handle_t*, void* p, int) { std::free(p); }) != PAM_SUCCESS)
        std::free(copy);
}

std::string kept(pam_handle_t* pamh, const char* name) {
    const void* p = nullptr;
    return pam_get_data(pamh, name, &p) == PAM_SUCCESS && p != nullptr ? static_cast<const char*>(p) : "";
}

// Fills the facts of this login from PAM's items. Returns false if there is no user to speak of.
bool login_request(pam_handle_t* pamh, jitgate::msg::CheckRequest& r) {
    const char* user = nullptr;
    if (pam_get_user(pamh, &user, nullptr) != PAM_SUCCESS || user == nullptr || *user == '\0') return false;
    const auto uid = jitgate::uid_of(user);
    if (!uid) return false;
    r.kind = "login";
    r.user = user;
    r.uid = *uid;
    r.pid = getpid();
    r.service = item(pamh, PAM_SERVICE);
    r.remote_host = item(pamh, PAM_RHOST);
    r.tty = item(pamh, PAM_TTY);
    r.requester = item(pamh, PAM_RUSER); // a claim; jitgated finds the requester from the kernel
    return true;
}

// The user's side of a check. OpenSSH shows PAM_TEXT_INFO only with the next prompt, so
// notices are held and ride on the next prompt (or on the final message).
class LoginConversation {
public:
    LoginConversation(pam_handle_t* pamh, bool interactive) : m_pamh(pamh), m_interactive(interactive) {}
    jitgate::client::UserIo io() {
        jitgate::client::UserIo io;
        io.notice = [this](const std::string& line) { m_held += line + "\n"; };
        io.waiting = [this](const std::string& line) {
            if (m_interactive) ask(m_pamh, m_held + line + "\nPress Enter to wait for the decision: ");
            m_held.clear();
        };
        io.prompt = [this](const std::string& text, bool) -> std::optional<std::string> {
            auto answer = m_interactive ? ask(m_pamh, m_held + text) : std::nullopt;
            m_held.clear();
            return answer;
        };
        return io;
    }
    // Shows the check's last word: the daemon's message on a pass, the reason on a refusal
    // (also to syslog). A refusal is a prompt when interactive, so that sshd shows it.
    void finish(const jitgate::CheckResult& res, bool passed) {
        std::string message = res.decision.message;
        if (!res.status.ok() && res.status.code != ErrorCode::denied)
            message = "jitgate: login denied: " + res.status.detail + " (fail closed)";
        if (passed) {
            if (m_interactive && !message.empty()) pam_info(m_pamh, "%s", (m_held + message).c_str());
            return;
        }
        pam_syslog(m_pamh, LOG_NOTICE, "%s", jitgate::text::escape_for_log(message).c_str());
        if (m_interactive)
            ask(m_pamh, m_held + message + "\nPress Enter to close: ");
        else
            pam_error(m_pamh, "%s", message.c_str());
    }

private:
    pam_handle_t* m_pamh;
    bool m_interactive;
    std::string m_held;
};

// jitgated is down and break-glass passed: loudly, to authpriv at alert.
void alert_offline_break_glass(pam_handle_t* pamh, const jitgate::msg::CheckRequest& r, const Status& why) {
    pam_syslog(pamh, LOG_AUTHPRIV | LOG_ALERT,
               "jitgate: BREAK-GLASS login by %s from %s (service %s) while jitgated is unreachable (%s): %s",
               jitgate::text::escape_for_log(r.user).c_str(), jitgate::text::escape_for_log(r.remote_host).c_str(),
               jitgate::text::escape_for_log(r.service).c_str(), jitgate::text::escape_for_log(why.detail).c_str(),
               jitgate::text::escape_for_log(r.break_glass_reason).c_str());
    if (r.interactive) pam_info(pamh, "jitgate: BREAK-GLASS login recorded and alerted.");
}

// The whole check of one login. `interactive`: the auth stack, where the user can be asked.
int check_login(pam_handle_t* pamh, int flags, const Args& args, bool interactive) {
    if (args.bad) return to_pam_status(Verdict::bad_input);
    // Break-glass passed in the auth stack of this very login (recorded and alerted there);
    // the account hook must not turn it into a refusal.
    if (!interactive && kept(pamh, k_data_break_glass) == "1") return to_pam_status(Verdict::allowed);
    jitgate::msg::CheckRequest r;
    if (!login_request(pamh, r)) return to_pam_status(Verdict::unknown_user);
    r.interactive = interactive && args.interactive && (flags & PAM_SILENT) == 0;
    r.noninteractive = !r.interactive;
    LoginConversation conversation(pamh, r.interactive);
    jitgate::CheckSettings settings;
    settings.ask_break_glass_reason = true;
    const jitgate::CheckResult res = jitgate::check(args.options, r, conversation.io(), settings);
    keep(pamh, k_data_request, res.decision.request_id);
    keep(pamh, k_data_grant, res.decision.grant_id);
    const int rc = to_pam_status(res.verdict);
    if (res.verdict == Verdict::offline_break_glass) {
        alert_offline_break_glass(pamh, r, res.status);
    } else {
        if (args.debug)
            pam_syslog(pamh, LOG_DEBUG, "user %s: %s -> %s", r.user.c_str(),
                       jitgate::msg::to_string(res.decision.outcome), pam_strerror(pamh, rc));
        conversation.finish(res, rc == PAM_SUCCESS || rc == PAM_IGNORE);
    }
    if (res.verdict == Verdict::offline_break_glass ||
        (rc == PAM_SUCCESS && res.decision.outcome == jitgate::msg::Outcome::break_glass))
        keep(pamh, k_data_break_glass, "1");
    return rc;
}

int report_session(pam_handle_t* pamh, const Args& args, const char* event) {
    jitgate::msg::CheckRequest r;
    if (!login_request(pamh, r)) return PAM_SESSION_ERR;
    const auto now_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count();
    jitgate::msg::SessionReport s;
    s.event = event;
    s.user = r.user;
    s.uid = r.uid;
    s.service = r.service;
    s.remote_host = r.remote_host;
    s.tty = r.tty;
    s.request_id = kept(pamh, k_data_request);
    s.grant_id = kept(pamh, k_data_grant);
    if (s.event == "opened") {
        keep(pamh, k_data_started, std::to_string(now_ms));
    } else if (const std::string started = kept(pamh, k_data_started); !started.empty()) {
        s.duration_ms = now_ms - std::atoll(started.c_str());
    }
    auto opts = args.options.client;
    opts.reply_timeout_ms = 5000;
    // Not recorded (the daemon gone, or it answered with an error): the gate was at
    // auth/account; here we keep the record somewhere an auditor looks.
    const Status st = jitgate::client::report(opts, jitgate::msg::to_json(s));
    if (!st.ok())
        pam_syslog(pamh, LOG_AUTHPRIV | LOG_WARNING,
                   "jitgate: session %s of %s (service %s, from %s, %lld ms) not recorded by jitgated: %s", event,
                   jitgate::text::escape_for_log(s.user).c_str(), jitgate::text::escape_for_log(s.service).c_str(),
                   jitgate::text::escape_for_log(s.remote_host).c_str(), static_cast<long long>(s.duration_ms),
                   jitgate::text::escape_for_log(st.detail).c_str());
    return PAM_SUCCESS;
}

void report(const char* what) noexcept {
    syslog(LOG_AUTHPRIV | LOG_ERR, "pam_jitgate: internal error: %s", what);
}

} // namespace

extern "C" {

__attribute__((visibility("default"))) int pam_sm_authenticate(pam_handle_t* pamh, int flags, int argc,
                                                               const char** argv) {
    return jitgate::abi_guard(
        to_pam_status(Verdict::internal_error),
        [&] { return check_login(pamh, flags, parse_args(pamh, argc, argv), true); }, report);
}

__attribute__((visibility("default"))) int pam_sm_setcred(pam_handle_t*, int, int, const char**) {
    // jitgate sets no credentials. Not PAM_IGNORE: with jitgate the only auth module (sshd's
    // usual setup), libpam turns an all-ignored setcred into a failed login.
    return PAM_SUCCESS;
}

__attribute__((visibility("default"))) int pam_sm_acct_mgmt(pam_handle_t* pamh, int flags, int argc,
                                                            const char** argv) {
    return jitgate::abi_guard(
        to_pam_status(Verdict::internal_error),
        [&] { return check_login(pamh, flags, parse_args(pamh, argc, argv), false); }, report);
}

__attribute__((visibility("default"))) int pam_sm_open_session(pam_handle_t* pamh, int, int argc, const char** argv) {
    return jitgate::abi_guard(
        PAM_SESSION_ERR, [&] { return report_session(pamh, parse_args(pamh, argc, argv), "opened"); }, report);
}

__attribute__((visibility("default"))) int pam_sm_close_session(pam_handle_t* pamh, int, int argc, const char** argv) {
    return jitgate::abi_guard(
        PAM_SESSION_ERR, [&] { return report_session(pamh, parse_args(pamh, argc, argv), "closed"); }, report);
}

} // extern "C"
