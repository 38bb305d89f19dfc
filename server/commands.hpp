// server/commands.hpp — jitgate-server's administrative sub-commands, callable from main():
// `keygen` (a new grant signing key pair) and `check-config` (every problem of the config).
//
// Each takes the arguments after its own name and the streams to write to, prints one line per
// result or problem, and returns the process exit status: 0 success, 1 failure (a problem was
// found or the work failed), 2 bad usage. Never throws (a catch-all turns anything unforeseen
// into a one-line error and status 1). Not thread-safe (they print).
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace jitgate::server {

inline constexpr const char* k_default_config = "/etc/jitgate-server/server.yaml";
inline constexpr const char* k_default_key_dir = "/etc/jitgate-server/keys";

// keygen --kid KID [--dir DIR]   (DIR default k_default_key_dir)
// Writes DIR/KID.key (0600) and DIR/KID.pub (0644), never overwriting (service::keygen), and
// prints both paths and the public key to `out`.
int keygen_command(const std::vector<std::string>& args, std::FILE* out = stdout, std::FILE* err = stderr);

// check-config [--config FILE]   (FILE default k_default_config)
// config::load(FILE, geteuid()) — content, ownership and modes of the config and every file it
// names — then loads each signing key (service::KeySet::load). Prints each problem as
// "file:line:column: message" to `out` and returns 1 if there is any; else prints "config OK"
// and returns 0.
int check_config_command(const std::vector<std::string>& args, std::FILE* out = stdout, std::FILE* err = stderr);

} // namespace jitgate::server
