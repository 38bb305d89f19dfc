// jitgate/offline.hpp — what a plugin may do when jitgated cannot be asked: the offline
// break-glass path, written once for the sudo plugin and the PAM module.
//
// SECURITY NOTE: with the daemon unreachable nothing is recorded by jitgated, so the only way
// through is break-glass, and only for members of the group named in the plugin's own
// arguments (sudo.conf, the PAM line; never from the user's environment), with a reason of at
// least k_offline_break_glass_min_reason characters. The caller alerts on every such pass.
// Everything else fails closed.
#pragma once

#include <cstddef>
#include <string>

#include "jitgate/error.hpp"

namespace jitgate {

// With jitgated unreachable, a break-glass reason must have at least this many characters
// (the daemon's own minimum, break_glass.min_reason_length, applies when it is up).
inline constexpr std::size_t k_offline_break_glass_min_reason = 10;

// True if `reason` has at least that many characters besides surrounding whitespace.
// Never throws.
bool offline_break_glass_reason_ok(const std::string& reason) noexcept;

// True for the failures that mean "the daemon could not be asked": unreachable, untrusted
// (a socket or peer not owned by root / the daemon user) and timeout. Only these open the
// offline break-glass path; a denial, a protocol error or an interrupt never does. Never throws.
bool is_offline(ErrorCode code) noexcept;

// May `user` pass without the daemon? True only if `why` is offline (is_offline), `reason`
// passes offline_break_glass_reason_ok, and `user` is in `break_glass_group` (an empty group:
// break-glass is disabled; a failed group lookup: no). Thread-safe (reentrant NSS lookups);
// never throws except std::bad_alloc.
bool offline_break_glass_allowed(const Status& why, const std::string& user, const std::string& reason,
                                 const std::string& break_glass_group);

} // namespace jitgate
