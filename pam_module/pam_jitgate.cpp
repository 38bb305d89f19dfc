// pam_jitgate.so — jitgate's PAM module: logins (sshd, login, su, ...) held for just-in-time
// approval. Thin by design: each pam_sm_* reads PAM's items, calls libjitgate_common, maps the
// result with to_pam_status() and returns. No policy, no threads, no signal handlers, and
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

#include "jitgate/client.hpp"
#include "jitgate/guard.hpp"
#include "jitgate/messages.hpp"
#include "jitgate/offline.hpp"
#include "jitgate/passwd.hpp"
#include "jitgate/plugin_options.hpp"
#include "jitgate/text.hpp"

namespace {

using jitgate::ErrorCode;
using jitgate::Status;

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
        if (w == "debug") a.debug = true;
        else if (w == "mode=interactive") a.interactive = true;
        else if (w == "mode=noninteractive") a.interactive = false;
        else if (w.rfind("timeout=", 0) == 0) words.push_back("connect_timeout=" + w.substr(8));
        else words.push_back(w);
    }
    a.options = jitgate::parse_plugin_options(words);
    for (const auto& u : a.options.unknown) pam_syslog(pamh, LOG_WARNING, "ignoring unknown argument '%s'", u.c_str());
    for (const auto& e : a.options.errors) pam_syslog(pamh, LOG_ERR, "bad argument: %s", e.c_str());
    a.bad = !a.options.errors.empty();
    return a;
}

// The one mapping from jitgate's result to PAM's codes (Linux-PAM documents each).
int to_pam_status(const Status& st, const jitgate::msg::Decision& d) {
    if (st.ok() && d.allow)
        // Not gated by a rule: PAM_IGNORE, never PAM_SUCCESS, so that a line misplaced as
        // `sufficient` can never skip the password.
        return d.outcome == jitgate::msg::Outcome::allowed_by_rule ? PAM_IGNORE : PAM_SUCCESS;
    switch (st.code) {
    case ErrorCode::daemon_unreachable:
    case ErrorCode::untrusted_daemon:
    case ErrorCode::timeout: return PAM_AUTHINFO_UNAVAIL;
    case ErrorCode::bad_input: return PAM_SERVICE_ERR;
    default: return PAM_PERM_DENIED;
    }
}

std::string item(pam_handle_t* pamh, int type) {
    const void* v = nullptr;
    if (pam_get_item(pamh, type, &v) != PAM_SUCCESS || v == nullptr) return {};
    return static_cast<const char*>(v);
}

std::optional<std::string> ask(pam_handle_t* pamh, const std::string& text) {
    char* resp = nullptr;
    if (pam_prompt(pamh, PAM_PROMPT_ECHO_ON, &resp, "%s", text.c_str()) != PAM_SUCCESS || resp == nullptr) return std::nullopt;
    std::string answer = resp;
    std::memset(resp, 0, answer.size());
    std::free(resp);
    return answer;
}

void keep(pam_handle_t* pamh, const char* name, const std::string& value) {
    char* copy = strdup(value.c_str());
    if (copy != nullptr && pam_set_data(pamh, name, copy, [](pam_handle_t*, void* p, int) { std::free(p); }) != PAM_SUCCESS)
        std::free(copy);
}

std::string kept(pam_handle_t* pamh, const char* name) {
    const void* p = nullptr;
    return pam_get_data(pamh, name, &p) == PAM_SUCCESS && p != nullptr ? static_cast<const char*>(p) : "";
}

// Fills the facts of this login from PAM's items. Returns a PAM code other than PAM_SUCCESS
// if there is no user to speak of.
int login_request(pam_handle_t* pamh, jitgate::msg::CheckRequest& r) {
    const char* user = nullptr;
    if (pam_get_user(pamh, &user, nullptr) != PAM_SUCCESS || user == nullptr || *user == '\0') return PAM_USER_UNKNOWN;
    const auto uid = jitgate::uid_of(user);
    if (!uid) return PAM_USER_UNKNOWN;
    r.kind = "login";
    r.user = user;
    r.uid = *uid;
    r.pid = getpid();
    r.service = item(pamh, PAM_SERVICE);
    r.remote_host = item(pamh, PAM_RHOST);
    r.tty = item(pamh, PAM_TTY);
    r.requester = item(pamh, PAM_RUSER); // a claim; jitgated finds the requester from the kernel
    return PAM_SUCCESS;
}

// The whole check of one login. `interactive`: the auth stack, where the user can be asked.
int check_login(pam_handle_t* pamh, int flags, const Args& args, bool interactive) {
    if (args.bad) return PAM_SERVICE_ERR;
    // Break-glass passed in the auth stack of this very login (recorded and alerted there);
    // the account hook must not turn it into a refusal.
    if (!interactive && kept(pamh, k_data_break_glass) == "1") return PAM_SUCCESS;
    jitgate::msg::CheckRequest r;
    if (const int rc = login_request(pamh, r); rc != PAM_SUCCESS) return rc;
    interactive = interactive && args.interactive && (flags & PAM_SILENT) == 0;
    r.interactive = interactive;
    r.noninteractive = !interactive;

    if (interactive && jitgate::user_in_group(r.user, args.options.break_glass_group)) {
        auto answer = ask(pamh, "jitgate: break-glass reason (leave empty to request approval instead): ");
        if (answer) r.break_glass_reason = *answer;
    }

    // OpenSSH shows PAM_TEXT_INFO only with the next prompt, so notices ride on prompts.
    std::string held;
    jitgate::client::UserIo io;
    io.notice = [&](const std::string& line) { held += line + "\n"; };
    io.waiting = [&](const std::string& line) {
        if (interactive) ask(pamh, held + line + "\nPress Enter to wait for the decision: ");
        held.clear();
    };
    io.prompt = [&](const std::string& text, bool) -> std::optional<std::string> {
        auto answer = interactive ? ask(pamh, held + text) : std::nullopt;
        held.clear();
        return answer;
    };

    jitgate::msg::Decision d;
    Status st = jitgate::client::run_check(args.options.client, r, io, nullptr, d);
    keep(pamh, k_data_request, d.request_id);
    keep(pamh, k_data_grant, d.grant_id);

    std::string message = d.message;
    if (!st.ok() && st.code != ErrorCode::denied) {
        // jitgated is down: only break-glass passes, loudly (the group comes from our own arguments).
        if (jitgate::offline_break_glass_allowed(st, r.user, r.break_glass_reason, args.options.break_glass_group)) {
            pam_syslog(pamh, LOG_AUTHPRIV | LOG_ALERT, "jitgate: BREAK-GLASS login by %s from %s (service %s) while jitgated is unreachable (%s): %s",
                       jitgate::text::escape_for_log(r.user).c_str(), jitgate::text::escape_for_log(r.remote_host).c_str(),
                       jitgate::text::escape_for_log(r.service).c_str(), jitgate::text::escape_for_log(st.detail).c_str(),
                       jitgate::text::escape_for_log(r.break_glass_reason).c_str());
            if (interactive) pam_info(pamh, "jitgate: BREAK-GLASS login recorded and alerted.");
            keep(pamh, k_data_break_glass, "1");
            return PAM_SUCCESS;
        }
        message = "jitgate: login denied: " + st.detail + " (fail closed)";
    }
    const int rc = to_pam_status(st, d);
    if (rc == PAM_SUCCESS && d.outcome == jitgate::msg::Outcome::break_glass) keep(pamh, k_data_break_glass, "1");
    if (args.debug) pam_syslog(pamh, LOG_DEBUG, "user %s: %s -> %s", r.user.c_str(), jitgate::msg::to_string(d.outcome), pam_strerror(pamh, rc));
    if (rc == PAM_SUCCESS || rc == PAM_IGNORE) {
        if (interactive && !message.empty()) pam_info(pamh, "%s", (held + message).c_str());
        return rc;
    }
    pam_syslog(pamh, LOG_NOTICE, "%s", jitgate::text::escape_for_log(message).c_str());
    if (interactive) ask(pamh, held + message + "\nPress Enter to close: "); // a prompt, so sshd shows it
    else pam_error(pamh, "%s", message.c_str());
    return rc;
}

int report_session(pam_handle_t* pamh, const Args& args, const char* event) {
    jitgate::msg::CheckRequest r;
    if (login_request(pamh, r) != PAM_SUCCESS) return PAM_SESSION_ERR;
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch()).count();
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
    std::vector<jitgate::wire::Json> replies;
    auto opts = args.options.client;
    opts.reply_timeout_ms = 5000;
    const Status st = jitgate::client::request(opts, jitgate::msg::to_json(s), replies);
    if (!st.ok()) // the gate was at auth/account; here we keep the record somewhere an auditor looks
        pam_syslog(pamh, LOG_AUTHPRIV | LOG_WARNING, "jitgate: session %s of %s (service %s, from %s, %lld ms) not recorded by jitgated: %s",
                   event, jitgate::text::escape_for_log(s.user).c_str(), jitgate::text::escape_for_log(s.service).c_str(),
                   jitgate::text::escape_for_log(s.remote_host).c_str(), static_cast<long long>(s.duration_ms),
                   jitgate::text::escape_for_log(st.detail).c_str());
    return PAM_SUCCESS;
}

void report(const char* what) noexcept { syslog(LOG_AUTHPRIV | LOG_ERR, "pam_jitgate: internal error: %s", what); }

} // namespace

extern "C" {

__attribute__((visibility("default"))) int pam_sm_authenticate(pam_handle_t* pamh, int flags, int argc, const char** argv) {
    return jitgate::abi_guard(PAM_PERM_DENIED, [&] { return check_login(pamh, flags, parse_args(pamh, argc, argv), true); }, report);
}

__attribute__((visibility("default"))) int pam_sm_setcred(pam_handle_t*, int, int, const char**) {
    // jitgate sets no credentials. Not PAM_IGNORE: with jitgate the only auth module (sshd's
    // usual setup), libpam turns an all-ignored setcred into a failed login.
    return PAM_SUCCESS;
}

__attribute__((visibility("default"))) int pam_sm_acct_mgmt(pam_handle_t* pamh, int flags, int argc, const char** argv) {
    return jitgate::abi_guard(PAM_PERM_DENIED, [&] { return check_login(pamh, flags, parse_args(pamh, argc, argv), false); }, report);
}

__attribute__((visibility("default"))) int pam_sm_open_session(pam_handle_t* pamh, int, int argc, const char** argv) {
    return jitgate::abi_guard(PAM_SESSION_ERR, [&] { return report_session(pamh, parse_args(pamh, argc, argv), "opened"); }, report);
}

__attribute__((visibility("default"))) int pam_sm_close_session(pam_handle_t* pamh, int, int argc, const char** argv) {
    return jitgate::abi_guard(PAM_SESSION_ERR, [&] { return report_session(pamh, parse_args(pamh, argc, argv), "closed"); }, report);
}

} // extern "C"
