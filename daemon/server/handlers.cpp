// daemon/server/handlers.cpp — the server's command table and its one authorisation check.
#include "daemon/server/handlers.hpp"

#include <array>

#include "daemon/server/server.hpp"
#include "jitgate/admin.hpp"
#include "jitgate/messages.hpp"
#include "jitgate/text.hpp"

namespace jitgate::server {

// One entry per message type. The handlers are Server's private members (server.cpp): they
// read the message, make the per-request checks, and answer.
struct HandlerTable {
    static const std::array<Handler, 15> k_entries;
};

const std::array<Handler, 15> HandlerTable::k_entries = {{
    {msg::k_check, Privilege::root, "", &Server::handle_check},
    {msg::k_input, Privilege::anyone, "", &Server::handle_input},
    {msg::k_finished, Privilege::root, "", &Server::handle_finished},
    {msg::k_session, Privilege::root, "", &Server::handle_session},
    {msg::k_pending, Privilege::approver, msg::k_pending, &Server::handle_pending},
    {msg::k_grants, Privilege::local_user, "", &Server::handle_grants},
    {msg::k_approve, Privilege::local_user, "", &Server::handle_approve},
    {msg::k_deny, Privilege::local_user, "", &Server::handle_deny},
    {msg::k_revoke, Privilege::approver, "", &Server::handle_revoke},
    {msg::k_status, Privilege::anyone, "", &Server::handle_status},
    {msg::k_ping, Privilege::anyone, "", &Server::handle_ping},
    // Any local user: each shows or ends only what is the caller's (broker, live_ops.cpp).
    {msg::k_sessions, Privilege::local_user, "", &Server::handle_sessions},
    {msg::k_done, Privilege::local_user, "", &Server::handle_done},
    {msg::k_requests, Privilege::local_user, "", &Server::handle_requests},
    {msg::k_extend, Privilege::local_user, "", &Server::handle_extend},
}};

const char* to_string(Privilege p) noexcept {
    switch (p) {
    case Privilege::anyone:
        return "anyone";
    case Privilege::local_user:
        return "local_user";
    case Privilege::approver:
        return "approver";
    case Privilege::root:
        return "root";
    }
    return "root";
}

const Handler* find_handler(std::string_view type) noexcept {
    for (const auto& h : HandlerTable::k_entries)
        if (type == h.type) return &h;
    return nullptr;
}

std::span<const Handler> handlers() noexcept {
    return HandlerTable::k_entries;
}

std::optional<Refusal> authorise(const Handler& h, const identity::Peer& peer, const broker::Caller& caller,
                                 bool approver) {
    switch (h.privilege) {
    case Privilege::anyone:
    case Privilege::local_user:
        return std::nullopt;
    case Privilege::approver: {
        if (peer.uid == 0 || approver) return std::nullopt;
        // Answered with code "denied", not recorded, and the connection stays open, as the
        // protocol documents for pending and revoke.
        const std::string context = h.refusal_context;
        const std::string why = text::escape_for_log(caller.name) + " is not in an approver group";
        return Refusal{context.empty() ? why : context + ": " + why, {}, false};
    }
    case Privilege::root:
        if (peer.uid == 0) return std::nullopt;
        // Refused before parsing: nothing a non-root peer sends reaches the audit spool, only
        // the fact that it tried (within the per-uid bound of Server::record_refusal).
        return Refusal{"refused: only root (sudo, sshd) may ask for decisions; peer uid is " + std::to_string(peer.uid),
                       "'" + std::string(h.type) + "' refused: only root (sudo, sshd) may ask for decisions", true};
    }
    return Refusal{"refused", "refused: unknown privilege", true}; // unreachable: fail closed
}

} // namespace jitgate::server
