// server/service/policy.hpp — the server's approver policy (config `policy:`): which approver
// groups may decide a request, how many approvals it needs, and whether the ticket check
// applies. The server may raise a host's approvals, never lower them (SECURITY NOTE: a host's
// rule asks for the minimum; a compromised or misconfigured server must not weaken it, and
// the host checks the grant's approver count itself anyway). Entries may apply only in named
// time windows (`when`/`unless`, the `windows:` syntax of jitgated's config) and may refuse
// (`deny`: a change freeze). Pure (the caller passes the time); thread-safe.
#pragma once

#include "server/config/config.hpp"

#include <chrono>
#include <optional>
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
    bool covered = false;                     // at least one allowing entry applies: it may be filed
    std::vector<std::string> entries;         // the names of the matching entries
    std::vector<std::string> approver_groups; // union of the matching entries' groups, sorted, unique
    int approvals_needed = 1;                 // max(host's, every matching entry's min_approvals)
    bool ticket_check = false;                // any matching entry asks for it
    std::vector<std::string> windows;         // the `when` windows that made entries apply, as shown
    std::string denied_by;                    // a `deny` entry applies: its name and window; refuse
    std::string error;                        // a window cannot be evaluated now: refuse (fail closed)
    // The policy lets the service approve by itself a requester who is on call: every matching
    // allowing entry has auto_approve.on_call and, when approvals_needed >= 2, auto_approve_sod.
    // (Whether the host opted in and who is on call are the caller's part.)
    bool auto_on_call = false;
    // The on-call sources of those entries ("" for on_call_file, else a name of on_call_files),
    // sorted and distinct: the requester must be on call in every one of them.
    std::vector<std::string> on_call_sources;
};

// Every entry whose selectors all match and whose windows let it apply at `now` contributes (an
// empty selector matches anything). Host and rule selectors are glob patterns (fnmatch without
// flags); environments compare exactly; every tag an entry lists must be on the host. An entry
// with `when` applies while one of those windows holds, one with `unless` while none of those
// does. A window that cannot be evaluated (its zone's data became unreadable) sets `error`.
PolicyDecision apply_policy(const config::Config& config, const PolicyInput& input,
                            std::chrono::system_clock::time_point now);

// What a request was filed with (store::Request): the approvals and groups its policy asked
// for then, and whether it asked for the ticket check.
struct FiledPolicy {
    int approvals_needed = 1;
    std::vector<std::string> approver_groups;
    bool ticket_check = false;
};

// Why an approval given now by someone in `approver_groups` would not be one the policy in
// force now (`now_decision`) allows, or nullopt: it cannot be evaluated, a freeze began (deny),
// more approvals are needed, a group of the filing may no longer decide (its earlier approvals
// would count under a policy that no longer allows them), the ticket check applies now but was
// not asked at filing, or none of the approver's groups may decide it now.
// SECURITY NOTE: a request that waited into a freeze, or into hours that need the change board,
// is not approved under the rules of the hour it was filed; it must be filed again.
std::optional<std::string> policy_changed(const FiledPolicy& filed, const PolicyDecision& now_decision,
                                          const std::vector<std::string>& approver_groups);

// The first instant in [now, until] at which a `deny` entry that covers `input` applies (one of
// its `when` windows holds, or it has none, and none of its `unless` windows does), with what it
// is, or nullopt. A grant signed now ends there at the latest: a freeze known in advance, or
// hours a deny entry keeps, are not outlived by a grant approved just before them. Looked at
// `now`, at every start and end of a dated period of the entry's windows and, where a window
// has weekly spans, on every minute (they start on the minute of their zone); `until` - `now`
// is at most hosts.max_ttl (24 h). A window that cannot be evaluated ends the grant there.
struct NextDeny {
    std::int64_t at = 0;
    std::string what;
};
std::optional<NextDeny> next_deny_start(const config::Config& config, const PolicyInput& input, std::int64_t now,
                                        std::int64_t until);

} // namespace jitgate::server::service
