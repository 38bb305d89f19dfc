// server/service/policy.cpp — see policy.hpp.
#include "server/service/policy.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <chrono>

#include "lib/time_windows.hpp"
#include "server/service/protocol.hpp"

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

// Whether `entry`'s windows let it apply: one of its `when` windows holds (or it has none) and
// none of its `unless` windows does (each is evaluated: one that cannot be makes the answer
// unknown). `held` is the `when` window that held, if any. nullopt: `holds` could not evaluate
// a window. The same for judging a request now (apply_policy) and for looking ahead
// (next_deny_start).
template <typename Holds>
std::optional<bool> windows_apply(const config::PolicyEntry& entry, Holds&& holds, const std::string** held) {
    *held = nullptr;
    if (!entry.when_windows.empty()) {
        for (const std::string& name : entry.when_windows) {
            const auto h = holds(name);
            if (!h) return std::nullopt;
            if (*h) {
                *held = &name;
                break;
            }
        }
        if (*held == nullptr) return false;
    }
    bool excluded = false;
    for (const std::string& name : entry.unless_windows) {
        const auto h = holds(name);
        if (!h) return std::nullopt;
        excluded = excluded || *h;
    }
    return !excluded;
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
            d.error = "unknown window " + jitgate::config::shown(name);
            return std::nullopt;
        }
        // The server reads a window's calendar file only at start: a file rewritten since may
        // hold a freeze the periods in memory lack, so nothing is decided on it (fail closed).
        if (auto changed = windows::file_changed(*w)) {
            d.error = std::move(*changed);
            return std::nullopt;
        }
        std::string why;
        const auto held = windows::evaluate(*w, now, why);
        if (!held) d.error = "window " + jitgate::config::shown(name) + " cannot be evaluated: " + why;
        return held;
    };
    // SECURITY NOTE: every entry that covers the request must allow the automatic approval (and
    // say so for segregation of duties): one entry that asks people to decide is not outvoted.
    bool all_auto = true;
    bool all_sod = true;
    for (const config::PolicyEntry& entry : config.policy) {
        if (!matches(entry, input)) continue;
        const std::string* held = nullptr;
        const auto applies = windows_apply(entry, holds, &held);
        if (!applies) return refused(std::move(d));
        if (!*applies) continue;
        const std::string held_window =
            held != nullptr ? windows::describe(*windows::find(config.windows, *held), now) : std::string();
        if (!held_window.empty() && std::find(d.windows.begin(), d.windows.end(), held_window) == d.windows.end())
            d.windows.push_back(held_window);
        if (entry.deny) {
            if (d.denied_by.empty())
                d.denied_by = "policy " + jitgate::config::shown(entry.name) +
                              (held_window.empty() ? "" : " (window " + held_window + ")");
            continue;
        }
        d.covered = true;
        d.entries.push_back(entry.name);
        d.approver_groups.insert(d.approver_groups.end(), entry.approver_groups.begin(), entry.approver_groups.end());
        d.approvals_needed = std::max(d.approvals_needed, std::clamp(entry.min_approvals, 1, 5));
        d.ticket_check = d.ticket_check || entry.ticket_check;
        all_auto = all_auto && entry.auto_approve_on_call;
        all_sod = all_sod && entry.auto_approve_sod;
        if (entry.auto_approve_on_call) d.on_call_sources.push_back(entry.auto_approve_on_call_source);
    }
    d.auto_on_call = d.covered && all_auto && (d.approvals_needed < 2 || all_sod);
    std::sort(d.on_call_sources.begin(), d.on_call_sources.end());
    d.on_call_sources.erase(std::unique(d.on_call_sources.begin(), d.on_call_sources.end()), d.on_call_sources.end());
    if (!d.auto_on_call) d.on_call_sources.clear();
    std::sort(d.approver_groups.begin(), d.approver_groups.end());
    d.approver_groups.erase(std::unique(d.approver_groups.begin(), d.approver_groups.end()), d.approver_groups.end());
    return d;
}

std::optional<std::string> policy_changed(const FiledPolicy& filed, const PolicyDecision& now_decision,
                                          const std::vector<std::string>& approver_groups) {
    const auto has = [](const std::vector<std::string>& list, const std::string& g) {
        return std::find(list.begin(), list.end(), g) != list.end();
    };
    if (!now_decision.error.empty()) return "the approver policy cannot be evaluated now: " + now_decision.error;
    if (!now_decision.denied_by.empty()) return "refused now by " + now_decision.denied_by;
    if (!now_decision.covered) return "no approver policy covers this request now";
    if (now_decision.approvals_needed > filed.approvals_needed)
        return "the approver policy now needs " + std::to_string(now_decision.approvals_needed) +
               " approvals, not the " + std::to_string(filed.approvals_needed) +
               " this request was filed with; it must be filed again";
    // Approvals already given came from the groups of the filing: every one of those groups must
    // still be allowed, or an earlier approval would count under a policy that no longer lets
    // its group decide.
    for (const std::string& g : filed.approver_groups)
        if (!has(now_decision.approver_groups, g))
            return "the approver groups that may decide this request are not the ones it was filed with (" +
                   jitgate::config::shown(g) + " may not decide it now); it must be filed again";
    if (now_decision.ticket_check && !filed.ticket_check)
        return "the approver policy now asks for the ticket check, which this request was filed without; it must be "
               "filed again";
    if (!std::any_of(approver_groups.begin(), approver_groups.end(),
                     [&](const std::string& g) { return has(now_decision.approver_groups, g); }))
        return "none of your approver groups may decide this request under the policy in force now";
    return std::nullopt;
}

namespace {

// Whether deny entry `entry` applies at `t` (windows_apply); `held` describes the `when` window
// that held. nullopt: a window cannot be evaluated at `t`.
std::optional<bool> deny_applies(const config::Config& config, const config::PolicyEntry& entry, std::int64_t t,
                                 std::string& held) {
    const auto at = std::chrono::system_clock::time_point(std::chrono::seconds(t));
    const auto holds = [&](const std::string& name) -> std::optional<bool> {
        const jitgate::config::Window* w = windows::find(config.windows, name);
        if (w == nullptr) return std::nullopt;
        std::string why;
        return windows::evaluate(*w, at, why);
    };
    const std::string* held_name = nullptr;
    const auto applies = windows_apply(entry, holds, &held_name);
    if (applies && *applies && held_name != nullptr)
        held = windows::describe(*windows::find(config.windows, *held_name), at);
    return applies;
}

// The instants in [now, until] at which a deny entry can begin to apply: `now` itself (the policy
// was judged a moment before the grant is signed, and a deny may begin in between), every minute
// if one of its windows has weekly spans (they begin and end on the minute of their zone, and
// zone offsets are whole minutes), and every start and end of a dated period of its windows
// (which may name seconds). Windows of dated periods only are not looked at minute by minute: a
// change calendar of thousands of periods costs its periods, not 1,440 times them.
std::vector<std::int64_t> candidate_instants(const config::Config& config, const config::PolicyEntry& entry,
                                             std::int64_t now, std::int64_t until) {
    std::vector<std::int64_t> out;
    if (now > until) return out;
    out.push_back(now);
    bool weekly = false;
    const auto add_dates = [&](const std::vector<std::string>& names) {
        for (const std::string& name : names) {
            const jitgate::config::Window* w = windows::find(config.windows, name);
            if (w == nullptr) continue; // deny_applies fails closed on it at `now`
            weekly = weekly || !w->weekly.empty();
            for (const jitgate::config::DatedPeriod& p : w->dates)
                for (const std::int64_t t : {p.from_unix, p.to_unix})
                    if (t > now && t <= until) out.push_back(t);
        }
    };
    add_dates(entry.when_windows);
    add_dates(entry.unless_windows);
    if (weekly)
        for (std::int64_t t = (now / 60 + 1) * 60; t <= until; t += 60) out.push_back(t);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

} // namespace

std::optional<NextDeny> next_deny_start(const config::Config& config, const PolicyInput& input, std::int64_t now,
                                        std::int64_t until) {
    std::optional<NextDeny> next;
    for (const config::PolicyEntry& entry : config.policy) {
        if (!entry.deny || (entry.when_windows.empty() && entry.unless_windows.empty()) || !matches(entry, input))
            continue;
        const std::int64_t horizon = next ? std::min(until, next->at - 1) : until;
        for (const std::int64_t t : candidate_instants(config, entry, now, horizon)) {
            std::string held;
            const auto applies = deny_applies(config, entry, t, held);
            if (applies && !*applies) continue;
            // SECURITY NOTE: a window that cannot be evaluated then (its zone's data unreadable)
            // ends the grant there too: fail closed, as apply_policy refuses to decide on it.
            next = NextDeny{t, "policy " + jitgate::config::shown(entry.name) + " from " + protocol::rfc3339(t) +
                                   (!applies        ? " (a window that cannot be evaluated then)"
                                    : !held.empty() ? " (window " + held + ")"
                                                    : "")};
            break;
        }
    }
    return next;
}

} // namespace jitgate::server::service
