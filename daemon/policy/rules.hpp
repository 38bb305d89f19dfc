// daemon/policy/rules.hpp — first-match rule evaluation.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "daemon/config/config.hpp"

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
    // The program, spelling-proof (docs/config.md, "Paths and spellings"): its canonical
    // path and merged-/usr twins (binding::program_spellings); empty means {command}.
    std::vector<std::string> program_paths;
    // What the user typed (`command`, and its lexically normal form): deny rules match these too.
    std::vector<std::string> typed_paths;
    std::int64_t command_dev = -1; // the program's file identity, or -1 if unknown
    std::int64_t command_ino = -1;
};

// The file identity (st_dev, st_ino) of a path a rule names, or nullopt; lets a rule for
// /usr/bin/x hold for a hard link or symlink to it anywhere. Called once per literal rule path.
using FileIdOf = std::function<std::optional<std::pair<std::int64_t, std::int64_t>>(const std::string&)>;

// The line a command glob is matched against: the command path, then argv[1..], joined by
// single spaces. Example: "/usr/bin/systemctl restart payments".
std::string command_line_for_match(const Facts& facts);

// Returns the first rule of `config` that matches, or nullptr: no rule matching means
// require_approval with the defaults (the caller uses default_rule()). Pure apart from
// `id_of` (none: no file identities compared); thread-safe if `id_of` is.
// A command glob matches if it matches the command line of any spelling in
// facts.program_paths, or (deny rules only) of facts.typed_paths, or if its program is a
// literal absolute path whose file identity is the program's.
// A rule's time windows (match.when / match.unless) are judged at `now`, the wall clock the
// caller passes (tests pass fixed instants); the overload without it reads the system clock.
const config::Rule* first_match(const config::Config& config, const Facts& facts,
                                std::chrono::system_clock::time_point now, const FileIdOf& id_of = {});
const config::Rule* first_match(const config::Config& config, const Facts& facts, const FileIdOf& id_of = {});

// The window under which `rule` applies at `now`, as shown to approvers and recorded
// (windows::describe): the first of its match.when windows that holds; empty if it has none.
std::string window_in_effect(const config::Config& config, const config::Rule& rule,
                             std::chrono::system_clock::time_point now);

// Empty if every window of the rules up to and including `matched` (all rules if it is null:
// the default rule) can be evaluated at `now`; else "time window NAME cannot be evaluated:
// why". A window that cannot say whether it holds could have changed which rule matched, so
// the caller denies (fail closed, whatever the rule's action).
std::string windows_error(const config::Config& config, const config::Rule* matched,
                          std::chrono::system_clock::time_point now);

// True if any of `globs` matches the command of `facts` the way an allow or require_approval
// rule's match.commands does (auto_approve.commands uses it). Empty `globs`: false.
bool commands_listed(const std::vector<std::string>& globs, const Facts& facts, const FileIdOf& id_of = {});

// The implicit rule used when nothing matches: require_approval, defaults, name "default".
const config::Rule& default_rule();

// True if `remote` matches `pattern`: exact host name, fnmatch glob, or an IPv4/IPv6 CIDR.
bool remote_host_matches(const std::string& pattern, const std::string& remote);

} // namespace jitgate::rules
