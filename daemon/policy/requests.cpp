// daemon/policy/requests.cpp — the registry of waiting requests and its indexes.
#include "daemon/policy/requests.hpp"

namespace jitgate::broker {

Request& Requests::add(Request q) {
    const auto [it, fresh] = m_requests.try_emplace(q.id);
    if (!fresh) return it->second;
    m_deadlines.emplace(q.deadline, q.id);
    // Counted per person who asks: every `su root` names root, but each caller has their own cap.
    ++m_per_uid[requester_uid(*q.session)];
    it->second = std::move(q);
    return it->second;
}

void Requests::remove(const std::string& id) {
    const auto it = m_requests.find(id);
    if (it == m_requests.end()) return;
    m_deadlines.erase({it->second.deadline, id});
    const auto counted = m_per_uid.find(requester_uid(*it->second.session));
    if (counted != m_per_uid.end() && --counted->second == 0) m_per_uid.erase(counted);
    m_requests.erase(it);
}

std::size_t Requests::count_for(std::int64_t uid) const {
    const auto it = m_per_uid.find(uid);
    return it == m_per_uid.end() ? 0 : it->second;
}

std::optional<Clock::time_point> Requests::next_deadline() const {
    if (m_deadlines.empty()) return std::nullopt;
    return m_deadlines.begin()->first;
}

std::vector<std::string> Requests::expired(Clock::time_point now) const {
    std::vector<std::string> out;
    for (const auto& [deadline, id] : m_deadlines) {
        if (deadline > now) break;
        out.push_back(id);
    }
    return out;
}

} // namespace jitgate::broker
