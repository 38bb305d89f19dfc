// daemon/audit/budget.hpp — how much of the audit spool one local user can fill.
//
// Every record is fsync'ed, hash-chained and kept until the central store has it, and a full
// spool denies every privileged action on the host. So what a local user can make the daemon
// record must be bounded per uid, or one user can lock everyone out:
//   - RefusalLimiter: refusals that a non-root peer causes (approver operations it may not do,
//     malformed frames, checks it may not ask for) are recorded one by one only up to a number
//     per window per uid; the rest are counted and recorded as one summary when the window ends.
//   - SpoolShare: once the spool is above a share of its limit (the store is not taking
//     events), each uid may add only so many more events; its further checks are denied
//     without a record each (counted, summarised), while other users' and the daemon's own
//     events still fit.
// Pure bookkeeping: no I/O, no clock of its own (callers pass `now`). Not thread-safe: the
// event loop's thread owns both. Depends on nothing but the standard library.
#pragma once

#include <chrono>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace jitgate::audit {

// The daemon's bounds (docs/audit.md, "What a local user can make the daemon record").
inline constexpr std::uint64_t k_refusals_per_window = 10;
inline constexpr std::chrono::seconds k_refusal_window{60};
inline constexpr unsigned k_share_percent = 80;
inline constexpr std::uint64_t k_share_events_per_uid = 50;

class RefusalLimiter {
public:
    using Clock = std::chrono::steady_clock;

    // `per_window` refusals of one uid are recorded individually in each `window` (0: none, all
    // are counted). Precondition: window > 0.
    RefusalLimiter(std::uint64_t per_window, Clock::duration window) noexcept
        : m_per_window(per_window), m_window(window) {}

    // True if this refusal of `uid` may be recorded on its own; false if it is only counted (it
    // then appears in a later take_due()).
    bool admit(std::uint32_t uid, Clock::time_point now);

    struct Summary {
        std::uint32_t uid = 0;
        std::uint64_t suppressed = 0; // refusals counted, not recorded, in the window
        std::uint64_t window_s = 0;   // the window's length in seconds
    };
    // The counts of windows that have ended with refusals not recorded, each returned once.
    // Forgets uids whose window ended, so memory follows the uids active in the last window.
    std::vector<Summary> take_due(Clock::time_point now);
    // Every count not yet reported, windows ended or not (at shutdown); forgets every uid.
    std::vector<Summary> take_all();

    std::uint64_t per_window() const noexcept { return m_per_window; }
    std::size_t tracked() const noexcept { return m_uids.size(); }

private:
    struct Window {
        Clock::time_point start;
        std::uint64_t recorded = 0;
        std::uint64_t suppressed = 0;
    };
    std::uint64_t m_per_window;
    Clock::duration m_window;
    std::unordered_map<std::uint32_t, Window> m_uids;
    std::vector<Summary> m_ended; // windows ended inside admit() with suppressed refusals
};

class SpoolShare {
public:
    // Above `percent` % of the spool's max_bytes, each uid may add `events_per_uid` more events.
    SpoolShare(unsigned percent, std::uint64_t events_per_uid) noexcept
        : m_percent(percent), m_events_per_uid(events_per_uid) {}

    bool near_full(std::uint64_t spool_bytes, std::uint64_t max_bytes) const noexcept {
        return spool_bytes >= max_bytes / 100 * m_percent + max_bytes % 100 * m_percent / 100;
    }
    // Counts one event recorded for `uid` (the requester it is about). Below the threshold
    // nothing is counted and every count is dropped: a new episode starts afresh.
    void charge(std::int64_t uid, std::uint64_t spool_bytes, std::uint64_t max_bytes);
    // False if the spool is above the threshold and `uid` has added its share since it got there.
    bool may_add(std::int64_t uid, std::uint64_t spool_bytes, std::uint64_t max_bytes);

    unsigned percent() const noexcept { return m_percent; }
    std::uint64_t events_per_uid() const noexcept { return m_events_per_uid; }

private:
    unsigned m_percent;
    std::uint64_t m_events_per_uid;
    std::unordered_map<std::int64_t, std::uint64_t> m_used;
};

} // namespace jitgate::audit
