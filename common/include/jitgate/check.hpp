// jitgate/check.hpp — one check as a plugin runs it: the conversation with jitgated and, when
// the daemon cannot be asked, the offline break-glass rule. The sudo plugin and the PAM module
// each call check() once and map its Verdict to their host's code in one function
// (to_sudo_status, to_pam_status); the policy lives here and in the daemon, never in an entry file.
#pragma once

#include <csignal>

#include "jitgate/client.hpp"
#include "jitgate/error.hpp"
#include "jitgate/messages.hpp"
#include "jitgate/plugin_options.hpp"

namespace jitgate {

// What a check came to. Fail closed: only allowed, not_gated and offline_break_glass let the
// action through.
enum class Verdict {
    allowed,             // the daemon allowed a gated action (grant, approved, break_glass)
    not_gated,           // the daemon allowed because a rule allows it (allowed_by_rule)
    offline_break_glass, // the daemon could not be asked and break-glass passed: the caller alerts
    denied,              // the daemon said no, or something failed closed (protocol error, internal)
    cancelled,           // the user interrupted the wait; closing the connection withdrew the request
    unavailable,         // the daemon could not be asked (is_offline) and break-glass did not pass
    bad_input,           // the plugin's own arguments are bad (set by the caller; nothing was asked)
    unknown_user,        // the user is not in the passwd database (set by the caller; nothing was asked)
    internal_error,      // an exception reached the ABI guard (set by the caller)
};

struct CheckResult {
    Verdict verdict = Verdict::denied;
    Status status;          // the conversation's: ok only when the daemon allowed
    msg::Decision decision; // the daemon's; a deny with outcome error when none arrived
};

struct CheckSettings {
    // Ask a member of options.break_glass_group for a break-glass reason (echoed) before the
    // check, if the request is interactive: a login has no environment to carry
    // JITGATE_BREAK_GLASS. An empty answer (or none) asks for approval as usual.
    bool ask_break_glass_reason = false;
    // As for client::run_check (may be null).
    const volatile std::sig_atomic_t* interrupted = nullptr;
    const sigset_t* wake_signals = nullptr;
};

// The prompt for a break-glass reason (CheckSettings::ask_break_glass_reason).
inline constexpr const char* k_break_glass_prompt =
    "jitgate: break-glass reason (leave empty to request approval instead): ";

// What the program of a sudo request is, as root sees it (the daemon cannot look into users'
// homes): sets request.command_realpath and command_dev/command_ino from request.command. Left
// empty where it cannot be resolved, and under sudo -R (request.chroot: the path names a file
// inside the chroot). Never throws except std::bad_alloc.
void fill_program(msg::CheckRequest& request);

// Runs one check of `request` against the daemon at options.client, talking to the user
// through `io`, and decides the offline case with offline_break_glass_allowed() (the group is
// options.break_glass_group, from the plugin's own arguments). May fill
// request.break_glass_reason (see CheckSettings). Never returns bad_input from its own
// options: the caller checks options.errors / options.unknown first, as its host wants.
// No threads, no exceptions except std::bad_alloc; not thread-safe (one caller, like the
// client). A signal that sets `interrupted` ends the wait with Verdict::cancelled.
CheckResult check(const PluginOptions& options, msg::CheckRequest& request, const client::UserIo& io,
                  const CheckSettings& settings);

} // namespace jitgate
