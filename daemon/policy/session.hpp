// daemon/policy/session.hpp — a check under way, as the broker and the approval backends see
// it: the session, the Responder that talks to its client, who asks, and how it is shown.
// Not thread-safe: everything here belongs to the daemon's single event loop.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/config/config.hpp"
#include "daemon/policy/identity.hpp"
#include "daemon/policy/rules.hpp"
#include "jitgate/messages.hpp"

namespace jitgate::broker {

using Json = nlohmann::json;

// How the broker talks to the client of a check. Implemented by the server's connection.
//
// The durability contract ("the audit record is durable before the reply"): the broker
// records every audit event before it hands the Responder the message that event justifies,
// and a Responder may hold every message back until the events recorded so far are durable
// (Auditor::sync). The server's connection does exactly that (each reply waits for the last
// seq recorded before it; Server::release_durable sends it once the committer's fdatasync
// covered that seq, and drops it, closing the connection, if a sync failed), so no client
// hears of a decision whose record could still be lost. A Responder must not
// call back into the broker; the broker never assumes a message has left.
class Responder {
public:
    virtual ~Responder() = default;
    // One line for the user; wait_s >= 0 tells the client how long it may now wait.
    virtual void notice(const std::string& text, std::int64_t wait_s) = 0;
    virtual void prompt(const std::string& field, const std::string& text, bool echo) = 0;
    virtual void decide(const msg::Decision& decision) = 0;
    // The broker ended the conversation on its own (an unanswered prompt timed out) after
    // decide(): the client is not to be kept. Default: nothing (the client closes).
    virtual void hang_up() {}
};

// The empty rule a session starts with (shared, never changed).
const std::shared_ptr<const config::Rule>& no_rule();

// A check in progress; owned by the connection for as long as the conversation lasts, and
// shared with its Request while it waits for approvers (share_session).
struct CheckSession : std::enable_shared_from_this<CheckSession> {
    msg::CheckRequest request;
    identity::Peer peer;
    rules::Facts facts;
    // The rule it is judged by, never null: until a rule matched, an empty one (no name). It
    // holds the config it belongs to, so a reload does not change a request under way.
    std::shared_ptr<const config::Rule> rule = no_rule();
    std::string awaiting;   // the field being prompted for ("reason", "ticket"), or empty
    std::string request_id; // set while waiting for approvers
    // Who asks, from the kernel (the server fills it before begin_check). Left empty (uid -1)
    // the requester is the request's user: how sudo checks are judged without a server.
    identity::Requester requester;
    // Derived by begin_check for sudo (binding.hpp); a command grant binds them.
    std::vector<std::string> bound_env; // the security-relevant part of run_envp, sorted
    std::string program;                // canonical path of the command
    // The time window under which the rule applied (rules::window_in_effect), or empty: shown
    // to approvers, recorded in every event of the request and carried into the grant.
    std::string window;
};

enum class Step { done, awaiting_input, waiting };

// `s` itself if a shared_ptr owns it (the server's sessions), else a copy of it (a session on
// the stack, as in tests). A filed request holds this instead of a copy of the facts.
std::shared_ptr<CheckSession> share_session(CheckSession& s);

// Who asks: the person the server found from the kernel, or (no server, or nothing found)
// the request's user, which is who asks for sudo and for a login through sshd.
std::int64_t requester_uid(const CheckSession& s);
std::string requester_name(const CheckSession& s);
// What an approval of `s` covers: a login grant only ever covers logins, and a sudo grant
// never covers a login. Grants, the service's request and its grant's check all use this.
config::Scope scope_of(const CheckSession& s);

// Text as shown to people and approvers. Every function escapes or cuts what it is given as
// it says; none throws except std::bad_alloc.
std::string esc(const std::string& s);                   // text::escape_for_log
Json escaped_argv(const std::vector<std::string>& argv); // each element escaped
// Cut to a bounded size (whole UTF-8 characters, with the original size appended), so each
// listed request fits in a frame however hostile its argv.
std::string cut(std::string s);
// What will run, as an approver should read it: the resolved path, then the arguments.
std::string display_command(const std::string& command, std::vector<std::string> argv);
// Lists as shown to people: "a, b and c".
std::string join_names(const std::vector<std::string>& names);
// Leading and trailing blanks removed.
std::string trim(const std::string& s);

} // namespace jitgate::broker
