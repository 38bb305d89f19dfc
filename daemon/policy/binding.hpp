// daemon/policy/binding.hpp — what a sudo approval binds beyond argv: the environment the command
// gets, where it runs and which program a path names (docs/wire-protocol.md, "Binding").
//
// Pure functions of their arguments, except where a contract says it reads the passwd
// database or the file system; all thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jitgate/messages.hpp"

namespace jitgate::binding {

// What sudoers gives the run-as user by default (HOME, SHELL, ...); a variable equal to its
// default is not bound. Unknown fields stay empty, and then the variable is bound.
struct RunasDefaults {
    std::string name;
    std::string home;
    std::string shell;
};

// Looks `user` up in the passwd database; empty fields if unknown (fail closed: bind more).
RunasDefaults runas_defaults(const std::string& user);

// True for a loader or interpreter variable: a program run with it can be made to load or run
// other code (LD_PRELOAD, PYTHONPATH, PERL5OPT, BASH_ENV, ...). Shown as a warning to approvers.
bool is_code_loading_variable(std::string_view name);

// Names sudo's own command line sets or preserves: "VAR=value" words and --preserve-env=LIST.
// Over-inclusive on purpose (an option argument holding '=' counts): a name listed here is
// only ever bound more, never less.
std::vector<std::string> names_set_on_command_line(const std::vector<std::string>& sudo_args);

// The part of run_envp a grant binds, sorted, "NAME=value" each: every variable except the
// noise ones (terminal, locale, display, sudo's own SUDO_*), and except HOME, USER, LOGNAME,
// USERNAME, SHELL and MAIL while they equal `defaults`. A variable named on sudo's command
// line is always bound. SECURITY NOTE: an allow-list of noise, not a deny-list of danger, so a
// variable nobody thought of is bound rather than ignored.
std::vector<std::string> bound_env(const std::vector<std::string>& run_env, const std::vector<std::string>& sudo_args,
                                   const RunasDefaults& defaults);

// Names of the code-loading variables in `env` ("NAME=value" entries), in order.
std::vector<std::string> code_loading_names(const std::vector<std::string>& env);

// Names of the variables in `env` that make a program load or run code without executing
// another program (the dynamic loader's LD_*, GCONV_PATH, GLIBC_TUNABLES, interpreter paths
// and start-up files, exported shell functions), in order: what sudo's intercept cannot see.
// Variables that make a program execute another (PAGER, EDITOR, GIT_SSH, ...) are not listed:
// under intercept that program is checked itself. sudo's own LD_PRELOAD of its intercept
// library (intercept_type=dso) is not listed when it names nothing else.
std::vector<std::string> hidden_code_loading(const std::vector<std::string>& env);

// The directory the command starts in: run_cwd, else (an older client) the user's cwd.
std::string run_cwd(const msg::CheckRequest& r);

// `path` with "//", "/./" and "/x/../" folded, without touching the file system; a relative
// path is returned unchanged.
std::string lexically_normal(const std::string& path);

// A file's identity on this host.
struct FileId {
    std::int64_t dev = -1;
    std::int64_t ino = -1;
    bool operator==(const FileId&) const = default;
};

// stat() of `path` (symlinks followed); nullopt if it cannot be read.
std::optional<FileId> file_id(const std::string& path);
// file_id() as the (st_dev, st_ino) pair a rule's literal path is compared by
// (rules::FileIdOf); nullopt if the path cannot be stat'ed.
std::optional<std::pair<std::int64_t, std::int64_t>> file_id_pair(const std::string& path);

// Every spelling of the program a rule is matched against: its canonical path, then the same
// path through the host's merged-/usr links (/bin -> usr/bin makes /usr/bin/x also /bin/x).
// `canonical` empty means it could not be resolved: then the lexically normal path stands in.
// Resolves the links of /bin, /sbin, /lib* at most once a second (binding.cpp). Thread-safe.
std::vector<std::string> program_spellings(const std::string& command, const std::string& canonical);

} // namespace jitgate::binding
