// common/src/check.cpp — one plugin check with the offline fallback (see jitgate/check.hpp).
#include "jitgate/check.hpp"

#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>

#include "jitgate/offline.hpp"
#include "jitgate/passwd.hpp"

namespace jitgate {

CheckResult check(const PluginOptions& options, msg::CheckRequest& request, const client::UserIo& io,
                  const CheckSettings& settings) {
    if (settings.ask_break_glass_reason && request.interactive && io.prompt &&
        user_in_group(request.user, options.break_glass_group)) {
        if (auto answer = io.prompt(k_break_glass_prompt, true)) request.break_glass_reason = std::move(*answer);
    }
    CheckResult res;
    res.status =
        client::run_check(options.client, request, io, settings.interrupted, res.decision, settings.wake_signals);
    if (res.status.ok() && res.decision.allow) {
        // Not gated by a rule is told apart: PAM must answer it with PAM_IGNORE, never success.
        res.verdict = res.decision.outcome == msg::Outcome::allowed_by_rule ? Verdict::not_gated : Verdict::allowed;
    } else if (res.status.ok() || res.status.code == ErrorCode::denied) {
        res.verdict = Verdict::denied;
    } else if (res.status.code == ErrorCode::interrupted) {
        res.verdict = Verdict::cancelled;
    } else if (is_offline(res.status.code)) {
        // SECURITY NOTE: nothing records this pass but the caller's alert; see jitgate/offline.hpp.
        res.verdict =
            offline_break_glass_allowed(res.status, request.user, request.break_glass_reason, options.break_glass_group)
                ? Verdict::offline_break_glass
                : Verdict::unavailable;
    } else if (res.status.code == ErrorCode::bad_input) {
        res.verdict = Verdict::bad_input;
    } else {
        res.verdict = Verdict::denied; // protocol, internal: fail closed
    }
    return res;
}

void fill_program(msg::CheckRequest& r) {
    if (r.command.empty() || !r.chroot.empty()) return;
    if (char* resolved = realpath(r.command.c_str(), nullptr)) {
        r.command_realpath = resolved;
        std::free(resolved);
    }
    struct stat st {};
    if (stat(r.command.c_str(), &st) == 0) {
        r.command_dev = static_cast<std::int64_t>(st.st_dev);
        r.command_ino = static_cast<std::int64_t>(st.st_ino);
    }
}

} // namespace jitgate
