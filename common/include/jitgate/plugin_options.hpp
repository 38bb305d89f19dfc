// jitgate/plugin_options.hpp — options given to the plugins in sudo.conf or on the PAM line.
//
//   socket=/run/jitgate/jitgated.sock   the daemon's socket
//   daemon_user=jitgate                 the only non-root owner the socket may have
//   break_glass_group=GROUP             members may pass with JITGATE_BREAK_GLASS=<reason>
//   connect_timeout=MS                  connect timeout in milliseconds (the daemon's first
//                                       answer is then awaited up to 15 s)
#pragma once

#include <string>
#include <vector>

#include "jitgate/client_options.hpp"

namespace jitgate {

struct PluginOptions {
    client::Options client;
    std::string break_glass_group;    // empty: break-glass disabled
    std::vector<std::string> unknown; // options we did not understand, for the caller to report
    std::vector<std::string> errors;  // options we understood but whose value is bad
};

// Parses "key=value" words (a NULL-terminated C array or a vector). Never throws except
// std::bad_alloc; problems land in `unknown` / `errors`.
PluginOptions parse_plugin_options(const std::vector<std::string>& words);
std::vector<std::string> to_vector(char* const* words);

// Looks up KEY=value in a NULL-terminated "KEY=value" array (sudo's settings, user_info,
// envp). Returns nullptr when absent.
const char* find_value(char* const* kv, const char* key) noexcept;

} // namespace jitgate
