// daemon/server/handlers.hpp — the server's command table: one entry per message type a client
// may send, with the privilege it needs, checked in one place (authorise) before the handler runs.
//
// Modelled on sudo's and SSSD's responders (a command table, src/responder/pam/pamsrv_cmd.c)
// and USBGuard's IPC server (peers authorised by uid/gid): who may send what is read from this
// table, not from conditions spread over the dispatch and the policy. What depends on the
// request at hand (the claimed user of a check is the peer's real uid; the approver is in this
// request's approver groups and is not the requester) stays with the handler and the policy.
// The table is constant: find_handler, handlers and authorise are thread-safe and never throw
// except std::bad_alloc.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "daemon/policy/broker.hpp"
#include "daemon/policy/identity.hpp"

namespace jitgate::server {

class Server;
class Connection;
struct HandlerTable; // the table itself (handlers.cpp), a friend of Server

// Who may send a message, from the kernel's word about the peer (SO_PEERCRED), never from a
// claim in the message.
enum class Privilege {
    anyone,     // any local peer (status, ping; input, which needs this connection's own check)
    local_user, // any local peer, as the user the kernel names (grants, approve, deny); the policy
                // then checks the request's approver groups
    approver,   // root, or a member of any approver group (pending, revoke)
    root,       // root peers only: sudo, sshd (check, finished, session)
};

// "anyone", "local_user", "approver", "root".
const char* to_string(Privilege p) noexcept;

// True if the handler of this privilege acts as a user: the server then looks the peer's uid
// up (name, groups, login uid) before authorising, and hands the result to the handler.
constexpr bool needs_caller(Privilege p) noexcept {
    return p == Privilege::local_user || p == Privilege::approver;
}

struct Handler {
    const char* type;    // the message's "type" (jitgate/messages.hpp, jitgate/admin.hpp)
    Privilege privilege; // who may send it
    // Privilege::approver: what a refusal names first ("pending: bob is not in an approver
    // group"), or "" for none ("bob is not in an approver group"), as the protocol has them.
    const char* refusal_context;
    // Runs the message once authorised. `caller` is the peer as a user if needs_caller(), else
    // empty. Throws Error (protocol: the connection is closed) like the dispatch it is part of.
    void (Server::*handle)(Connection& c, const nlohmann::json& message, const broker::Caller& caller);
};

// The entry for `type`, or nullptr: an unknown type, a protocol error.
const Handler* find_handler(std::string_view type) noexcept;
// Every entry, in the order of docs/wire-protocol.md.
std::span<const Handler> handlers() noexcept;

// How a refused message is answered: an `error` frame with code "denied" and `message`;
// recorded as an `error` audit event when `audit_message` is not empty; then the connection is
// closed if `close`.
struct Refusal {
    std::string message;
    std::string audit_message;
    bool close = false;
};

// SECURITY NOTE: the one place where a peer's right to send a message type is decided, before
// the message is parsed. `caller` is the peer as a user (needed for Privilege::approver, for
// the name in the refusal) and `approver` whether it is a member of any approver group (the
// server asks the broker, whose config says which groups approve). Returns nullopt if allowed.
std::optional<Refusal> authorise(const Handler& h, const identity::Peer& peer, const broker::Caller& caller,
                                 bool approver);

} // namespace jitgate::server
