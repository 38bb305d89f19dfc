// server/service/policy.cpp — see policy.hpp.
#include "server/service/policy.hpp"

#include <fnmatch.h>

#include <algorithm>

namespace jitgate::server::service {
namespace {

bool any_glob(const std::vector<std::string>& patterns, const std::string& value) {
    if (patterns.empty()) return true;
    return std::any_of(patterns.begin(), patterns.end(),
                       [&](const std::string& p) { return ::fnmatch(p.c_str(), value.c_str(), 0) == 0; });
}

bool matches(const config::PolicyEntry& entry, const PolicyInput& input) {
    if (!any_glob(entry.hosts, input.host)) return false;
    if (!entry.environments.empty() &&
        std::find(entry.environments.begin(), entry.environments.end(), input.environment) == entry.environments.end())
        return false;
    for (const std::string& tag : entry.tags)
        if (std::find(input.tags.begin(), input.tags.end(), tag) == input.tags.end()) return false;
    return any_glob(entry.rules, input.rule);
}

} // namespace

PolicyDecision apply_policy(const std::vector<config::PolicyEntry>& policy, const PolicyInput& input) {
    PolicyDecision d;
    d.approvals_needed = std::clamp(input.approvals_needed, 1, 5);
    for (const config::PolicyEntry& entry : policy) {
        if (!matches(entry, input)) continue;
        d.covered = true;
        d.entries.push_back(entry.name);
        d.approver_groups.insert(d.approver_groups.end(), entry.approver_groups.begin(), entry.approver_groups.end());
        d.approvals_needed = std::max(d.approvals_needed, std::clamp(entry.min_approvals, 1, 5));
        d.ticket_check = d.ticket_check || entry.ticket_check;
    }
    std::sort(d.approver_groups.begin(), d.approver_groups.end());
    d.approver_groups.erase(std::unique(d.approver_groups.begin(), d.approver_groups.end()), d.approver_groups.end());
    return d;
}

} // namespace jitgate::server::service
