// daemon/config/load.hpp — loading a config file the way every program of the host does:
// parse, validate, and refuse a file someone other than root could change. Used by jitgated's
// start-up and --check-config, its reload, and `jitgatectl check-config`.
#pragma once

#include <cstdio>
#include <optional>
#include <string>

#include "daemon/config/config.hpp"

namespace jitgate::config {

// load_config(path) plus check_file_security(path): every problem of the content and of the
// file's ownership and mode, in that order. `config` is set only when there is no problem.
// Never throws except std::bad_alloc.
LoadResult load_checked(const std::string& path);

// load_checked(path), writing every problem to `out` (one a line, file:line:column first).
// Returns the config, or nullopt if there was any problem. Never throws except std::bad_alloc.
std::optional<Config> load_and_report(const std::string& path, std::FILE* out);

} // namespace jitgate::config
