// daemon/rules.hpp — first-match rule evaluation.
#pragma once

#include <string>
#include <vector>

#include "config.hpp"

namespace jitgate::rules {

// The facts of one action, as the daemon knows them (after peer checks).
struct Facts {
    std::string kind; // "sudo" or "login"
    std::string user;
    std::vector<std::string> user_groups; // names of every group the user is in
    std::string command;                  // resolved path
    std::vector<std::string> argv;        // run_argv (argv[0] is replaced by `command` for matching)
    std::string runas_user;
    std::string service;
    std::string remote_host;
};

// The line a command glob is matched against: the command path, then argv[1..], joined by
// single spaces. Example: "/usr/bin/systemctl restart payments".
std::string command_line_for_match(const Facts& facts);

// Returns the first rule of `config` that matches, or nullptr: no rule matching means
// require_approval with the defaults (the caller uses default_rule()). Pure; thread-safe.
const config::Rule* first_match(const config::Config& config, const Facts& facts);

// The implicit rule used when nothing matches: require_approval, defaults, name "default".
const config::Rule& default_rule();

// True if `remote` matches `pattern`: exact host name, fnmatch glob, or an IPv4/IPv6 CIDR.
bool remote_host_matches(const std::string& pattern, const std::string& remote);

} // namespace jitgate::rules
