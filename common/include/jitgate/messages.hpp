// jitgate/messages.hpp — the typed messages of the local protocol (docs/wire-protocol.md).
//
// Plugins build a CheckRequest / FinishedReport, the daemon parses them; the daemon
// answers with notices, prompts and one Decision. Conversions throw Error(protocol) on a
// missing or mistyped field; they never accept a message they do not fully understand.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace jitgate::msg {

using Json = nlohmann::json;

// Message type names ("type" field).
inline constexpr const char* k_check = "check";
inline constexpr const char* k_input = "input";
inline constexpr const char* k_finished = "finished";
inline constexpr const char* k_notice = "notice";
inline constexpr const char* k_prompt = "prompt";
inline constexpr const char* k_decision = "decision";
inline constexpr const char* k_error = "error";

// Budget for argv text inside one frame: longer command lines are sent truncated with
// argv_truncated set, and the daemon denies them (it cannot judge what it cannot see).
inline constexpr std::size_t k_argv_budget = 48 * 1024;
// Budget for the command's environment (run_env) inside one frame: a larger one is sent empty
// with env_truncated set, and the daemon denies (a grant cannot bind what it cannot see).
inline constexpr std::size_t k_env_budget = 8 * 1024;

struct CheckRequest {
    std::string kind = "sudo"; // "sudo" or "login"
    std::string user;          // the invoking user's login name
    std::int64_t uid = -1;     // the invoking user's real uid
    std::int64_t pid = -1;     // the requesting process (sudo front end), for cross-checks
    std::string runas_user;
    std::int64_t runas_uid = -1;
    std::string command;                  // resolved path of what will run
    std::vector<std::string> run_argv;    // what will run; grants bind to this
    std::vector<std::string> submit_argv; // what the user typed
    bool argv_truncated = false;
    std::int64_t argv_bytes = 0; // total bytes of run_argv before truncation
    std::string cwd;
    std::string tty;
    std::string service;            // PAM service (login kind)
    std::string remote_host;        // SSH peer (login kind)
    std::string reason;             // from JITGATE_REASON, or empty
    std::string ticket;             // from JITGATE_TICKET, or empty
    std::string break_glass_reason; // from JITGATE_BREAK_GLASS, or empty
    bool interactive = false;       // the client can prompt the user
    bool noninteractive = false;    // sudo -n: never prompt, never wait unless the rule says so
    // Login kind: who the PAM application says is asking (PAM_RUSER; su sets it to its
    // caller), or empty. Only a claim: the daemon finds the requester from the kernel (the
    // peer's real uid and login uid) and records this only where it disagrees.
    std::string requester;
    // What sudo will actually run with (sudo only; grants of scope command bind them, see
    // docs/wire-protocol.md "Binding"). Empty or -1 when the client did not say.
    std::string runas_group; // run-as group name (sudo -g, else the run-as user's), or "#gid"
    std::int64_t runas_gid = -1;
    std::string run_cwd;                // where the command starts: command_info cwd (sudo -D), else cwd
    std::string chroot;                 // command_info chroot (sudo -R), or empty
    std::vector<std::string> run_env;   // run_envp, "NAME=value" each, exactly as the command gets it
    bool env_truncated = false;         // run_envp exceeded k_env_budget; run_env is empty
    std::vector<std::string> sudo_args; // sudo's own arguments before the command (options, VAR=value)
    std::string command_realpath;       // the program's canonical path as root resolved it, or empty
    std::int64_t command_dev = -1;      // stat() of the program as root saw it, or -1
    std::int64_t command_ino = -1;
    // sudo's intercept mode (docs/intercept.md). `intercept`: whether sudo runs this command
    // with intercept on (command_info "intercept=true"); absent on the wire (older clients)
    // reads as unknown, which the daemon treats as off. `intercepted`: this check is for a
    // sub-command that the command of an earlier check in the same sudo process executed; the
    // parent_* fields name what admitted that command (empty when a rule or break-glass did).
    enum class Intercept { unknown, off, on };
    Intercept intercept = Intercept::unknown;
    // With intercept on, why sudo may still miss some of what the command executes (empty: it
    // misses nothing it can see): "dso" (intercept_type=dso: static binaries and direct system
    // calls go unchecked), "no_verify" (!intercept_verify: the command line can change between
    // the check and the exec), "traced" (sudo itself is being traced, so sudo cannot trace the
    // command and runs it without intercept, after the check).
    std::string intercept_limit;
    bool intercepted = false;
    std::string parent_request_id;
    std::string parent_grant_id;
};

Json to_json(const CheckRequest& r);
// The frame of to_json(r), byte for byte (wire::encode), written without building the Json:
// what the plugins send (wire::ObjectWriter). Throws Error(protocol) as wire::encode does.
std::string encode(const CheckRequest& r);
// Throws Error(protocol) with the offending field.
CheckRequest check_from_json(const Json& j);

// The sudo audit plugin's report of how a command ended.
struct FinishedReport {
    std::string kind = "sudo";
    std::string user;
    std::int64_t uid = -1;
    std::int64_t pid = -1;
    std::string runas_user;
    std::string command;
    std::vector<std::string> run_argv;
    std::string request_id;
    std::string grant_id;
    std::string status_type; // "exit", "signal", "exec_error", "not_run"
    std::int64_t exit_status = -1;
    std::int64_t signal = 0;
    std::int64_t exec_errno = 0;
    std::int64_t duration_ms = -1;
    std::string tty;
};

Json to_json(const FinishedReport& r);
// The frame of to_json(r), as encode(const CheckRequest&).
std::string encode(const FinishedReport& r);
FinishedReport finished_from_json(const Json& j);

// The PAM module's report of a login session opening or closing.
inline constexpr const char* k_session = "session";
struct SessionReport {
    std::string event; // "opened" or "closed"
    std::string user;
    std::int64_t uid = -1;
    std::string service;
    std::string remote_host;
    std::string tty;
    std::string request_id;
    std::string grant_id;
    std::int64_t duration_ms = -1; // closed only
};

Json to_json(const SessionReport& r);
SessionReport session_from_json(const Json& j);

// Why a decision went the way it did (docs/wire-protocol.md, `decision`). Only allowed_by_rule,
// grant, approved and break_glass come with allow: true; a client still trusts `allow` alone.
enum class Outcome {
    allowed_by_rule, // the first matching rule allows: not gated
    grant,           // a live grant covers the action
    approved,        // the request waited on this connection and was approved
    break_glass,     // break-glass accepted by the daemon
    denied,          // a deny rule, a bad reason or ticket, an approver's deny, a refused break-glass
    timeout,         // nobody decided (or answered a prompt) in time
    filed,           // sudo -n with noninteractive: file; the request stays pending
    cancelled,       // the request was cancelled at the approval service
    invalid_grant,   // the approval service's grant did not verify
    error,           // the daemon could not do its job (also: no decision was received)
};

// The wire name ("allowed_by_rule", ...). Never throws.
const char* to_string(Outcome o) noexcept;
// The outcome named `name`. Throws Error(protocol, "outcome") for a name that is no outcome:
// a decision we do not fully understand is refused, never guessed at.
Outcome outcome_from_string(std::string_view name);

struct Decision {
    bool allow = false;
    Outcome outcome = Outcome::error; // on the wire as its name; absent on the wire reads as error
    std::string message;              // one line for the user, already escaped
    std::string request_id;
    std::string grant_id;
    std::string rule;
};

Json to_json(const Decision& d);
// Throws Error(protocol) without a boolean `allow`, or with an `outcome` that names no Outcome.
Decision decision_from_json(const Json& j);

} // namespace jitgate::msg
