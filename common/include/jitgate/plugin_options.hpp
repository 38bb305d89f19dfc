// jitgate/plugin_options.hpp — options given to the plugins in sudo.conf or on the PAM line.
//
//   socket=/run/jitgate/jitgated.sock   the daemon's socket
//   daemon_user=jitgate                 the only non-root owner the socket may have
//   break_glass_group=GROUP             members may pass with JITGATE_BREAK_GLASS=<reason>
//   connect_timeout=MS                  connect timeout in milliseconds (the daemon's first
//                                       answer is then awaited up to 15 s)
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "jitgate/client.hpp"

namespace jitgate {

// With jitgated unreachable, a break-glass reason must have at least this many characters
// (the daemon's own minimum, break_glass.min_reason_length, applies when it is up).
inline constexpr std::size_t k_offline_break_glass_min_reason = 10;
// True if `reason` has at least that many characters besides surrounding whitespace.
bool offline_break_glass_reason_ok(const std::string& reason) noexcept;

struct PluginOptions {
    client::Options client;
    std::string break_glass_group; // empty: break-glass disabled
    std::vector<std::string> unknown; // options we did not understand, for the caller to report
    std::vector<std::string> errors;  // options we understood but whose value is bad
};

// Parses "key=value" words (a NULL-terminated C array or a vector). Never throws except
// std::bad_alloc; problems land in `unknown` / `errors`.
PluginOptions parse_plugin_options(const std::vector<std::string>& words);
std::vector<std::string> to_vector(char* const* words);

// Names of every group `user` belongs to (primary and supplementary), from the system's
// group database. nullopt if the user is unknown or a lookup failed (NSS error, a group too
// big for 4 MiB): callers must then fail closed, never read it as "no groups" (a `%group`
// deny rule would otherwise be skipped). Thread-safe (reentrant NSS calls).
std::optional<std::vector<std::string>> group_names_of(const std::string& user);
// Name of `uid` / uid of `name` from the passwd database; nullopt if unknown or the lookup
// failed. Scratch space grows on ERANGE. Thread-safe (reentrant NSS calls).
std::optional<std::string> user_name_of(unsigned uid);
std::optional<unsigned> uid_of(const std::string& name);
// True if `user` is in `group` (false for an empty group name or a failed lookup).
bool user_in_group(const std::string& user, const std::string& group);

// Looks up KEY=value in a NULL-terminated "KEY=value" array (sudo's settings, user_info,
// envp). Returns nullptr when absent.
const char* find_value(char* const* kv, const char* key) noexcept;

} // namespace jitgate
