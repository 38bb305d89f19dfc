// daemon/config/config.hpp — the typed configuration of jitgated (docs/config.md documents every key).
//
// Only the daemon (and jitgatectl check-config) read YAML. load_config() parses a file into a
// Config; validate() is pure and returns every problem with file:line:column. Defaults live
// next to the fields, here, and nowhere else.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "lib/config_file.hpp"
#include "lib/time_windows.hpp"

namespace jitgate::config {

// Seconds: lib/config_file.hpp.

enum class Action { allow, deny, require_approval };
enum class Scope { command, session, login };
enum class NonInteractive { file, wait }; // sudo -n without a grant: file the request and deny, or wait
// What happens to the live sessions a grant admitted when it expires (docs/sessions.md).
enum class OnExpiry { end, keep };

struct HostMatch {
    std::vector<std::string> environments; // empty: any; else the host's environment must be one
    std::vector<std::string> tags;         // every tag listed must be one of the host's tags
};

struct Match {
    std::vector<std::string> kinds;        // "sudo", "login"; empty: any
    std::vector<std::string> users;        // names and "%group"; empty: any
    std::vector<std::string> commands;     // fnmatch globs over "path arg1 arg2 ..."; empty: any
    std::vector<std::string> runas;        // run-as user names; empty: any
    std::vector<std::string> services;     // PAM services (login kind); empty: any
    std::vector<std::string> remote_hosts; // hosts, globs or CIDRs (login kind); empty: any
    HostMatch host;
    std::vector<std::string> when_windows;   // match.when.window: one of them must hold now
    std::vector<std::string> unless_windows; // match.unless.window: none of them may hold now
};

// require_approval only: conditions under which the daemon approves by itself (all must hold).
struct AutoApprove {
    bool set = false;                  // the rule has auto_approve
    bool on_call = false;              // the requester is on call now (approval.on_call_file)
    std::vector<std::string> commands; // low-risk command globs, matched like match.commands
    std::string window;                // a window that must hold now
};

struct Rule {
    std::string name; // unique; defaults to "rule-<index>"
    int line = 0;     // where the rule starts in the file (for messages)
    Match match;
    Action action = Action::require_approval;
    // require_approval only:
    int approvals = 1;                     // distinct approvers needed (1..5)
    Seconds ttl{std::chrono::minutes(15)}; // grant lifetime, from the approval
    Scope scope = Scope::command;
    bool reason_required = false;
    std::string ticket_pattern;                // ECMAScript regex; empty: no ticket asked
    std::optional<std::regex> ticket_regex;    // compiled from ticket_pattern
    Seconds timeout{std::chrono::minutes(10)}; // how long a request may wait
    std::vector<std::string> approver_groups;  // empty: approval.approver_groups
    NonInteractive noninteractive = NonInteractive::file;
    std::string message;                // shown to the user on deny/approval prompt
    OnExpiry on_expiry = OnExpiry::end; // live sessions end with the grant (docs/sessions.md)
    // The command must run under sudo's intercept mode (sudoers `Defaults intercept`), so that
    // every program it executes is checked too (docs/intercept.md); a sudo without it is denied.
    bool intercept = false;
    AutoApprove auto_approve;
    // Explicit consent to auto-approve a rule with approvals >= 2 (segregation of duties).
    bool auto_approve_sod = false;
};

struct Config {
    std::string source; // the file it came from
    struct Host {
        std::string name;        // default: gethostname()
        std::string environment; // e.g. "production"
        std::vector<std::string> tags;
    } host;
    struct Daemon {
        std::string socket = "/run/jitgate/jitgated.sock";
        int max_clients = 16384; // connections at once; more are refused
        int max_pending = 10000; // requests waiting at once
    } daemon;
    struct Approval {
        std::string backend = "local"; // "local" (this host's approvers) or "service"
        std::vector<std::string> approver_groups{"jitgate-approvers"};
        // May a peer with uid 0 approve (local backend)? No by default: root is an account,
        // not a person (docs/config.md, "approval.allow_root").
        bool allow_root = false;
        // Who is on call when (auto_approve: {on_call: true}); read at each use, strictly.
        std::string on_call_file;
        // backend "service": the central approval service (docs/protocol.md).
        struct Service {
            std::string url;         // base URL, https:// only
            std::string ca_file;     // pinned CA of the service (not the system store)
            std::string client_cert; // this host's certificate (mTLS)
            std::string client_key;
            std::string proxy; // empty: no proxy (proxy environment variables ignored)
            Seconds connect_timeout{5};
            Seconds request_timeout{10}; // per call; a long poll gets poll_wait on top
            Seconds poll_wait{25};       // the `wait` of each long poll (1..60)
            int retries = 3;             // extra tries of a failed idempotent call (0..10)
            std::string issuer;          // empty: the grant's iss is not checked
            Seconds clock_skew{30};      // tolerance for nbf/exp
            std::vector<std::pair<std::string, std::string>> public_keys; // kid -> PEM file
            int line = 0;                                                 // where 'service' starts (for messages)
        } service;
    } approval;
    // Live sessions under grants (docs/sessions.md).
    struct Sessions {
        Seconds warn_before{std::chrono::minutes(2)}; // warning on the terminal before the end; 0: none
        Seconds grace{5};                             // SIGTERM → SIGKILL
    } sessions;
    struct BreakGlass {
        std::string group; // empty: break-glass disabled
        std::size_t min_reason_length = 10;
    } break_glass;
    struct Audit {
        std::string spool_dir = "/var/lib/jitgate/spool"; // the hash-chained segments
        std::uint64_t spool_max_bytes = 1ULL << 30;       // full: privileged actions denied
        std::uint64_t segment_bytes = 8ULL << 20;
        bool break_glass_when_full = false; // when_spool_full: break_glass_only
        bool syslog = true;
        std::string syslog_socket = "/dev/log";
        // The central audit store (docs/audit.md); empty url: nothing is shipped.
        struct Store {
            std::string url;              // https:// only
            std::string format = "jsonl"; // "jsonl" or "splunk_hec"
            std::string ca_file;
            std::string client_cert;
            std::string client_key;
            std::string token_file; // bearer (jsonl) / Splunk token, first line of the file
            std::string proxy;
            Seconds connect_timeout{5};
            Seconds timeout{30};
            int batch_events = 500;
            std::uint64_t batch_bytes = 1ULL << 20;
            Seconds retry_min{1};
            Seconds retry_max{std::chrono::minutes(5)};
            std::string splunk_index;
            std::string splunk_sourcetype = "jitgate:audit";
        } store;
    } audit;
    std::vector<Window> windows; // named time windows, in file order
    std::vector<Rule> rules;
};

struct LoadResult {
    std::optional<Config> config; // set only when problems is empty
    std::vector<Problem> problems;
};

// Reads and validates `path`. Never throws for bad content: I/O errors, YAML syntax errors,
// unknown keys, wrong types and semantic errors all become Problems.
LoadResult load_config(const std::string& path);
// Same, from text (for tests and fuzzing); `source` names it in problems.
LoadResult parse_config(const std::string& text, const std::string& source);

// Semantic checks of an already-typed config (duplicate rule names, approvals range, ...).
// Pure; returns every problem found.
std::vector<Problem> validate(const Config& config);

// parse_duration, format_duration and parse_size: lib/config_file.hpp.

const char* to_string(Action a) noexcept;
const char* to_string(Scope s) noexcept;
const char* to_string(OnExpiry o) noexcept;

} // namespace jitgate::config

namespace jitgate::windows {
// The window named `name` in `config`, or null.
inline const config::Window* find(const config::Config& config, const std::string& name) {
    return find(config.windows, name);
}
} // namespace jitgate::windows
