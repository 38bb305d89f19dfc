// daemon/policy/grants.hpp — the cache of live grants: the fast path.
//
// A grant is what an approval becomes: scope `command` covers this exact run_argv of this
// program as this run-as user and group, in this directory and chroot, with this bound
// environment, under the same rule; scope `session` covers any sudo of that user under the
// same rule; scope `login` covers logins. Every grant covers only the person who asked for it
// (their uid and the login uid of their session). Grants live in memory only: a restarted daemon
// starts with none (fail closed). Not thread-safe: the event loop owns it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/config/config.hpp"

namespace jitgate::grants {

using Clock = std::chrono::steady_clock;

struct Grant {
    std::string id;
    std::string request_id;
    std::string user;
    std::string kind;
    config::Scope scope = config::Scope::command;
    std::string rule;
    std::string runas_user;
    std::string command;
    std::vector<std::string> argv;
    std::string cwd; // command scope binds where it runs (sudo -D or the user's cwd): ./app.conf is not /etc/app.conf
    std::vector<std::string> approvers;
    std::string reason;
    std::string ticket;
    std::int64_t granted_unix = 0;
    std::int64_t expires_unix = 0;
    Clock::time_point expires;
    // The person it was granted to (see Action): a grant covers only their own next action.
    std::string requester;
    std::int64_t requester_uid = -1;
    std::int64_t login_uid = -1;
    // Command scope binds these too (docs/wire-protocol.md, "Binding").
    std::string runas_group;
    std::string chroot;
    std::string program;          // canonical path of `command`
    std::vector<std::string> env; // binding::bound_env()
    std::string window;           // the time window its rule applied under (docs/config.md)
    std::string auto_condition;   // non-empty: approved automatically, by this condition
    // The rule's on_expiry: keep (live sessions outlive the grant); else they end with it.
    bool keep_sessions = false;
    // The approval service's id of the grant (its jti, escaped), for a revocation made there
    // (docs/protocol.md §12); empty for a local or automatic approval.
    std::string service_grant_id;
};

// What a check asks the cache about.
struct Action {
    std::string user;
    std::string kind;
    std::string rule;
    std::string runas_user;
    std::string command;
    const std::vector<std::string>* argv = nullptr;
    std::string cwd; // where the command runs (binding::run_cwd)
    std::string runas_group;
    std::string chroot;
    std::string program;
    const std::vector<std::string>* env = nullptr;
    // Who asks (identity::Requester): an approved `su root` of alice's is no grant for bob's
    // `su root`, nor for anyone using the same shared account from another login session.
    std::int64_t requester_uid = -1;
    std::int64_t login_uid = -1; // -1: unset (the kernel knows no session owner)
};

class GrantCache {
public:
    // Returns the live grant covering `action` (command scope first), or nullptr.
    // The pointer is valid until the next non-const call.
    const Grant* find(const Action& action, Clock::time_point now);
    // Adds (or replaces the same-key grant with) `grant`.
    void add(Grant grant);
    // Removes the grant with `id`; returns it, or nullopt if unknown.
    std::optional<Grant> revoke(const std::string& id);
    // The live grant with `id`, or nullptr; valid until the next non-const call.
    const Grant* by_id(const std::string& id, Clock::time_point now) const;
    // Live grants, oldest first.
    std::vector<Grant> list(Clock::time_point now);
    std::size_t size() const noexcept { return m_by_key.size(); }

    static std::string key_for(const Action& action, config::Scope scope);

private:
    void expire(Clock::time_point now);
    std::unordered_map<std::string, Grant> m_by_key;
};

} // namespace jitgate::grants
