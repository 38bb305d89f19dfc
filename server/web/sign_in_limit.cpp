// server/web/sign_in_limit.cpp — see sign_in_limit.hpp.
#include "server/web/sign_in_limit.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace jitgate::server::web {

SignInLimit::SignInLimit(int per_minute, int burst, std::size_t max_addresses)
    : m_per_minute(std::max(per_minute, 1)), m_capacity(std::int64_t{std::max(burst, 1)} * k_token),
      m_max_addresses(std::max<std::size_t>(max_addresses, 1)) {}

std::string SignInLimit::key_of(std::string_view address) {
    const std::string text(address);
    in6_addr six{};
    if (text.find(':') == std::string::npos || ::inet_pton(AF_INET6, text.c_str(), &six) != 1) return text;
    std::array<char, INET6_ADDRSTRLEN> out{};
    if (IN6_IS_ADDR_V4MAPPED(&six)) {
        in_addr four{};
        std::memcpy(&four, six.s6_addr + 12, 4);
        if (::inet_ntop(AF_INET, &four, out.data(), out.size()) == nullptr) return text;
        return out.data();
    }
    std::memset(six.s6_addr + 8, 0, 8);
    if (::inet_ntop(AF_INET6, &six, out.data(), out.size()) == nullptr) return text;
    return std::string(out.data()) + "/64";
}

std::int64_t SignInLimit::take(std::string_view address, std::int64_t now) {
    const std::string key = key_of(address);
    auto it = m_buckets.find(key);
    if (it == m_buckets.end()) {
        if (m_buckets.size() >= m_max_addresses) {
            m_buckets.erase(m_order.back());
            m_order.pop_back();
        }
        m_order.push_front(key);
        it = m_buckets.emplace(key, Bucket{m_capacity, now, m_order.begin()}).first;
    } else {
        m_order.splice(m_order.begin(), m_order, it->second.lru);
    }
    Bucket& bucket = it->second;
    // A clock that steps back refills nothing (and does not drain either).
    if (now > bucket.at) {
        // Capped before multiplying: a bucket idle for years must not overflow.
        const std::int64_t idle = std::min<std::int64_t>(now - bucket.at, 7 * 24 * 3600);
        bucket.units = std::min(m_capacity, bucket.units + idle * m_per_minute);
        bucket.at = now;
    }
    if (bucket.units >= k_token) {
        bucket.units -= k_token;
        return 0;
    }
    return (k_token - bucket.units + m_per_minute - 1) / m_per_minute; // >= 1: units < k_token
}

} // namespace jitgate::server::web
