// server/service/policy.cpp — see policy.hpp.
#include "server/service/policy.hpp"

#include <fnmatch.h>

#include <algorithm>

#include "lib/time_windows.hpp"

namespace jitgate::server::service {
namespace {

// A decision that files and approves nothing (d.error says why).
PolicyDecision refused(PolicyDecision d) {
    d.covered = false;
    d.entries.clear();
    d.approver_groups.clear();
    return d;
}

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

PolicyDecision apply_policy(const config::Config& config, const PolicyInput& input,
                            std::chrono::system_clock::time_point now) {
    PolicyDecision d;
    d.approvals_needed = std::clamp(input.approvals_needed, 1, 5);
    // nullopt: cannot be evaluated (d.error says why); an unknown name was refused at load.
    const auto holds = [&](const std::string& name) -> std::optional<bool> {
        const jitgate::config::Window* w = windows::find(config.windows, name);
        if (w == nullptr) {
            d.error = "unknown window '" + name + "'";
            return std::nullopt;
        }
        std::string why;
        const auto held = windows::evaluate(*w, now, why);
        if (!held) d.error = "window '" + name + "' cannot be evaluated: " + why;
        return held;
    };
    for (const config::PolicyEntry& entry : config.policy) {
        if (!matches(entry, input)) continue;
        std::string held_window;
        if (!entry.when_windows.empty()) {
            for (const std::string& name : entry.when_windows) {
                const auto held = holds(name);
                if (!held) return refused(std::move(d));
                if (*held) {
                    held_window = windows::describe(*windows::find(config.windows, name), now);
                    break;
                }
            }
            if (held_window.empty()) continue;
        }
        bool excluded = false;
        for (const std::string& name : entry.unless_windows) {
            const auto held = holds(name);
            if (!held) return refused(std::move(d));
            excluded = excluded || *held;
        }
        if (excluded) continue;
        if (!held_window.empty() && std::find(d.windows.begin(), d.windows.end(), held_window) == d.windows.end())
            d.windows.push_back(held_window);
        if (entry.deny) {
            if (d.denied_by.empty())
                d.denied_by =
                    "policy '" + entry.name + "'" + (held_window.empty() ? "" : " (window " + held_window + ")");
            continue;
        }
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

std::optional<std::string> policy_changed(int approvals_needed_filed, const PolicyDecision& now_decision,
                                          const std::vector<std::string>& approver_groups) {
    if (!now_decision.error.empty()) return "the approver policy cannot be evaluated now: " + now_decision.error;
    if (!now_decision.denied_by.empty()) return "refused now by " + now_decision.denied_by;
    if (!now_decision.covered) return "no approver policy covers this request now";
    if (now_decision.approvals_needed > approvals_needed_filed)
        return "the approver policy now needs " + std::to_string(now_decision.approvals_needed) +
               " approvals, not the " + std::to_string(approvals_needed_filed) +
               " this request was filed with; it must be filed again";
    const bool in_group = std::any_of(approver_groups.begin(), approver_groups.end(), [&](const std::string& g) {
        return std::find(now_decision.approver_groups.begin(), now_decision.approver_groups.end(), g) !=
               now_decision.approver_groups.end();
    });
    if (!in_group) return "none of your approver groups may decide this request under the policy in force now";
    return std::nullopt;
}

} // namespace jitgate::server::service
