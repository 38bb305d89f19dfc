// daemon/audit/budget.cpp — per-uid bounds on what local users can make the daemon record
// (see audit_budget.hpp).
#include "daemon/audit/budget.hpp"

namespace jitgate::audit {

bool RefusalLimiter::admit(std::uint32_t uid, Clock::time_point now) {
    auto [it, fresh] = m_uids.try_emplace(uid, Window{now, 0, 0});
    Window& w = it->second;
    if (!fresh && now - w.start >= m_window) {
        if (w.suppressed > 0)
            m_ended.push_back(Summary{
                uid, w.suppressed,
                static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(m_window).count())});
        w = Window{now, 0, 0};
    }
    if (w.recorded < m_per_window) {
        ++w.recorded;
        return true;
    }
    ++w.suppressed;
    return false;
}

std::vector<RefusalLimiter::Summary> RefusalLimiter::take_due(Clock::time_point now) {
    std::vector<Summary> out = std::move(m_ended);
    m_ended.clear();
    const auto window_s =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(m_window).count());
    for (auto it = m_uids.begin(); it != m_uids.end();) {
        if (now - it->second.start >= m_window) {
            if (it->second.suppressed > 0) out.push_back(Summary{it->first, it->second.suppressed, window_s});
            it = m_uids.erase(it);
        } else {
            ++it;
        }
    }
    return out;
}

std::vector<RefusalLimiter::Summary> RefusalLimiter::take_all() {
    std::vector<Summary> out = std::move(m_ended);
    m_ended.clear();
    const auto window_s =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(m_window).count());
    for (const auto& [uid, w] : m_uids)
        if (w.suppressed > 0) out.push_back(Summary{uid, w.suppressed, window_s});
    m_uids.clear();
    return out;
}

void SpoolShare::charge(std::int64_t uid, std::uint64_t spool_bytes, std::uint64_t max_bytes) {
    if (!near_full(spool_bytes, max_bytes)) {
        m_used.clear();
        return;
    }
    ++m_used[uid];
}

bool SpoolShare::may_add(std::int64_t uid, std::uint64_t spool_bytes, std::uint64_t max_bytes) {
    if (!near_full(spool_bytes, max_bytes)) {
        m_used.clear();
        return true;
    }
    const auto it = m_used.find(uid);
    return it == m_used.end() || it->second < m_events_per_uid;
}

} // namespace jitgate::audit
