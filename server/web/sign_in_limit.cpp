// server/web/sign_in_limit.cpp — see sign_in_limit.hpp.
#include "server/web/sign_in_limit.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>

namespace jitgate::server::web {

SignInLimit::SignInLimit(int per_minute, int burst, std::size_t max_addresses)
    : m_addresses(std::max(per_minute, 1), std::int64_t{std::max(burst, 1)} * k_token,
                  std::max<std::size_t>(max_addresses, 1)),
      m_networks(std::int64_t{std::max(per_minute, 1)} * k_network_factor,
                 std::int64_t{std::max(burst, 1)} * k_token * k_network_factor,
                 std::max<std::size_t>(max_addresses, 1)) {}

namespace {

// `address` masked to its first `bits` bits (IPv4-mapped IPv6: as IPv4, with `bits4`), written
// with "/bits"; nullopt if it is not an IP address.
std::optional<std::string> masked(std::string_view address, int bits4, int bits6) {
    const std::string text(address);
    std::array<char, INET6_ADDRSTRLEN> out{};
    in_addr four{};
    in6_addr six{};
    bool is_four = false;
    if (text.find(':') == std::string::npos) {
        if (::inet_pton(AF_INET, text.c_str(), &four) != 1) return std::nullopt;
        is_four = true;
    } else {
        if (::inet_pton(AF_INET6, text.c_str(), &six) != 1) return std::nullopt;
        if (IN6_IS_ADDR_V4MAPPED(&six)) {
            std::memcpy(&four, six.s6_addr + 12, 4);
            is_four = true;
        }
    }
    if (is_four) {
        if (bits4 >= 32) {
            if (::inet_ntop(AF_INET, &four, out.data(), out.size()) == nullptr) return std::nullopt;
            return std::string(out.data());
        }
        const std::uint32_t mask = bits4 <= 0 ? 0 : htonl(~std::uint32_t{0} << (32 - bits4));
        four.s_addr &= mask;
        if (::inet_ntop(AF_INET, &four, out.data(), out.size()) == nullptr) return std::nullopt;
        return std::string(out.data()) + "/" + std::to_string(bits4);
    }
    for (int i = 0; i < 16; ++i) {
        const int keep = std::clamp(bits6 - i * 8, 0, 8);
        six.s6_addr[i] &= static_cast<std::uint8_t>(0xff00u >> keep);
    }
    if (::inet_ntop(AF_INET6, &six, out.data(), out.size()) == nullptr) return std::nullopt;
    return std::string(out.data()) + "/" + std::to_string(bits6);
}

} // namespace

std::string SignInLimit::key_of(std::string_view address) {
    return masked(address, 32, 64).value_or(std::string(address));
}

std::string SignInLimit::network_of(std::string_view address) {
    return masked(address, 24, 48).value_or(std::string(address));
}

std::int64_t SignInLimit::take(std::string_view address, std::int64_t now) {
    const std::string key = key_of(address);
    const std::string network = network_of(address);
    const std::int64_t wait = std::max(m_addresses.wait(key, now), m_networks.wait(network, now));
    if (wait > 0) return wait;
    m_addresses.spend(key);
    m_networks.spend(network);
    return 0;
}

void SignInLimit::give_back(std::string_view address) {
    m_addresses.give_back(key_of(address));
    m_networks.give_back(network_of(address));
}

SignInLimit::Table::Table(std::int64_t per_minute, std::int64_t capacity, std::size_t max_keys)
    : m_per_minute(per_minute), m_capacity(capacity), m_max_keys(max_keys) {}

std::int64_t SignInLimit::Table::wait(const std::string& key, std::int64_t now) {
    auto it = m_buckets.find(key);
    if (it == m_buckets.end()) {
        if (m_buckets.size() >= m_max_keys) {
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
    if (bucket.units >= k_token) return 0;
    return (k_token - bucket.units + m_per_minute - 1) / m_per_minute; // >= 1: units < k_token
}

void SignInLimit::Table::spend(const std::string& key) {
    if (auto it = m_buckets.find(key); it != m_buckets.end()) it->second.units -= k_token;
}

void SignInLimit::Table::give_back(const std::string& key) {
    if (auto it = m_buckets.find(key); it != m_buckets.end())
        it->second.units = std::min(m_capacity, it->second.units + k_token);
}

} // namespace jitgate::server::web
