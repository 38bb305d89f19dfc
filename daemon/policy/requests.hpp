// daemon/policy/requests.hpp — the requests waiting for approvers: who asks, who approved so
// far, and when each times out. The registry keeps its indexes (deadlines, per-uid counts)
// in step with the requests, so the broker never walks every request to enforce a cap.
// Not thread-safe: the daemon's single event loop owns it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "daemon/policy/session.hpp"

namespace jitgate::broker {

using Clock = std::chrono::steady_clock;

struct Request {
    std::string id;
    // The check's facts for listing and auditing, never null. While the client waits it is the
    // connection's own session (share_session), not a copy: one CheckSession per waiting
    // request, not two (issue 17, docs/PERFORMANCE.md "Memory per waiting request").
    // SECURITY NOTE: shared, so nothing may change a session once it is filed: the server takes
    // no input for a waiting check (Step::waiting), and the broker only clears its request_id
    // once the decision is recorded. What approvers see is what the grant binds.
    std::shared_ptr<CheckSession> session = std::make_shared<CheckSession>();
    Responder* responder = nullptr; // null once the client has gone or was told "filed"
    CheckSession* live = nullptr;   // the connection's session while it waits
    std::vector<std::string> approvers;
    // One entry per approval: the approver's person (login uid if set, else uid), so that
    // "N approvals" means N people, whichever accounts they approved from.
    std::vector<std::int64_t> approver_uids;
    int approvals_needed = 1;
    std::vector<std::string> approver_groups;
    std::int64_t created_unix = 0;
    Clock::time_point deadline;
    std::string nonce;      // service backend: the grant must carry it back
    std::string cmd_sha256; // service backend, scope command: the grant must match it
    std::string extends;    // `jitgatectl extend`: the grant whose live sessions the new grant takes over
};

// The waiting requests by id. Iteration and find() are those of the underlying map (no
// order); a request's id, deadline and requester must not change while it is filed.
class Requests {
public:
    using Map = std::unordered_map<std::string, Request>;
    using iterator = Map::iterator;
    using const_iterator = Map::const_iterator;

    // Files `request` (its id must be new: an existing id is left as it was and the new one
    // dropped). Returns the filed request, valid until it is removed.
    Request& add(Request request);
    // Takes `id` out of the requests and of every index; unknown ids are ignored.
    void remove(const std::string& id);

    iterator find(const std::string& id) { return m_requests.find(id); }
    const_iterator find(const std::string& id) const { return m_requests.find(id); }
    iterator begin() noexcept { return m_requests.begin(); }
    iterator end() noexcept { return m_requests.end(); }
    const_iterator begin() const noexcept { return m_requests.begin(); }
    const_iterator end() const noexcept { return m_requests.end(); }
    bool contains(const std::string& id) const { return m_requests.contains(id); }
    std::size_t size() const noexcept { return m_requests.size(); }
    bool empty() const noexcept { return m_requests.empty(); }

    // Waiting requests of the person with `uid` (requester_uid()), without walking them all.
    std::size_t count_for(std::int64_t uid) const;
    // The earliest deadline; nullopt if nothing waits.
    std::optional<Clock::time_point> next_deadline() const;
    // Ids of the requests whose deadline is at or before `now`, earliest first. They stay
    // filed: the caller concludes (and removes) each.
    std::vector<std::string> expired(Clock::time_point now) const;

private:
    Map m_requests;
    std::set<std::pair<Clock::time_point, std::string>> m_deadlines;
    std::unordered_map<std::int64_t, std::size_t> m_per_uid;
};

} // namespace jitgate::broker
