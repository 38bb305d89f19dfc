// server/web/sign_in_limit.hpp — the per-address limit on the web UI's unauthenticated
// sign-in routes (/login and /oidc/callback): a token bucket per source address, in a table
// of bounded size.
//
// SECURITY NOTE: /login stores a row (the OpenID Connect state) and /oidc/callback calls the
// IdP, both for anyone who can reach the port. One address gets `burst` requests at once and
// then `per_minute` a minute; an IPv6 address counts per /64 (one host usually holds a whole
// /64, so per-address buckets would be free to multiply). The table holds at most
// `max_addresses` buckets: when full, the bucket used longest ago is forgotten (that address
// starts again with a full bucket). An attacker with more addresses than that is held by the
// web UI's global cap on sign-ins in progress, not by this.
//
// Time is whole seconds passed in by the caller (the Service's clock), so tests drive it.
// Threading: not thread-safe; the loop thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace jitgate::server::web {

class SignInLimit {
public:
    // per_minute, burst and max_addresses must be >= 1 (the config's check); smaller values
    // are taken as 1.
    SignInLimit(int per_minute, int burst, std::size_t max_addresses = k_default_max_addresses);

    // Spends one token of `address`'s bucket at `now` (Unix seconds). Returns 0 when the
    // request may go on, else the whole seconds until a token is there again (>= 1): the
    // Retry-After. A refused request spends nothing.
    std::int64_t take(std::string_view address, std::int64_t now);

    // How many addresses have a bucket (for tests and the bound).
    std::size_t tracked() const noexcept { return m_buckets.size(); }

    // The key of an address: IPv4 as it is, IPv6 by its /64 ("2001:db8:1:2::/64"), an IPv4-mapped
    // IPv6 address as the IPv4 address; anything unparsable as it is.
    static std::string key_of(std::string_view address);

    static constexpr std::size_t k_default_max_addresses = 10000;

private:
    // Exact integer arithmetic: a token is 60 units and a second refills per_minute units.
    static constexpr std::int64_t k_token = 60;
    struct Bucket {
        std::int64_t units = 0;
        std::int64_t at = 0;                  // when `units` was last brought up to date
        std::list<std::string>::iterator lru; // its place in m_order (front: used last)
    };
    std::int64_t m_per_minute;
    std::int64_t m_capacity;
    std::size_t m_max_addresses;
    std::unordered_map<std::string, Bucket> m_buckets;
    std::list<std::string> m_order;
};

} // namespace jitgate::server::web
