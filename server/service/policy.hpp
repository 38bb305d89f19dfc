// server/service/policy.hpp — the server's approver policy (config `policy:`): which approver
// groups may decide a request, how many approvals it needs, and whether the ticket check
// applies. The server may raise a host's approvals, never lower them (SECURITY NOTE: a host's
// rule asks for the minimum; a compromised or misconfigured server must not weaken it, and
// the host checks the grant's approver count itself anyway). Pure; thread-safe.
#pragma once

#include "server/config/config.hpp"

#include <string>
#include <vector>

namespace jitgate::server::service {

struct PolicyInput {
    std::string host;
    std::string environment;
    std::vector<std::string> tags;
    std::string rule;
    int approvals_needed = 1; // the host's
};

struct PolicyDecision {
    bool covered = false;                     // at least one entry matched: the request may be filed
    std::vector<std::string> entries;         // the names of the matching entries
    std::vector<std::string> approver_groups; // union of the matching entries' groups, sorted, unique
    int approvals_needed = 1;                 // max(host's, every matching entry's min_approvals)
    bool ticket_check = false;                // any matching entry asks for it
};

// Every entry whose selectors all match contributes (an empty selector matches anything).
// Host and rule selectors are glob patterns (fnmatch without flags); environments compare
// exactly; every tag an entry lists must be on the host.
PolicyDecision apply_policy(const std::vector<config::PolicyEntry>& policy, const PolicyInput& input);

} // namespace jitgate::server::service
