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
// A second, coarser bucket per network (an IPv6 /48, an IPv4 /24) allows k_network_factor
// times as much: one site or office (a /48 is what a site is given, a /24 a typical customer
// or office block) shares it, so a few approvers behind one NAT or in one office still sign in
// at once, while one network holding 65,536 /64s or 256 addresses can no longer multiply the
// per-address allowance by them (it gets 4 x burst and 4 x per_minute in all). A request is
// let through only when both buckets have a token, and then spends one of each; a refused
// request spends nothing.
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

    static constexpr int k_network_factor = 4;

    // Spends one token of `address`'s bucket at `now` (Unix seconds). Returns 0 when the
    // request may go on, else the whole seconds until a token is there again (>= 1): the
    // Retry-After. A refused request spends nothing. Both buckets (address and network) count.
    std::int64_t take(std::string_view address, std::int64_t now);
    // Returns the token a take() spent, for a request then refused for another reason (the
    // sign-in worker's queue full). A no-op for a bucket forgotten meanwhile.
    void give_back(std::string_view address);

    // How many addresses have a bucket (for tests and the bound).
    std::size_t tracked() const noexcept { return m_addresses.size(); }

    // The key of an address: IPv4 as it is, IPv6 by its /64 ("2001:db8:1:2::/64"), an IPv4-mapped
    // IPv6 address as the IPv4 address; anything unparsable as it is.
    static std::string key_of(std::string_view address);
    // The key of its network: IPv4 by its /24 ("192.0.2.0/24"), IPv6 by its /48
    // ("2001:db8:1::/48"), an IPv4-mapped address as IPv4; anything unparsable as it is.
    static std::string network_of(std::string_view address);

    static constexpr std::size_t k_default_max_addresses = 10000;

private:
    // Exact integer arithmetic: a token is 60 units and a second refills per_minute units.
    static constexpr std::int64_t k_token = 60;
    class Table {
    public:
        Table(std::int64_t per_minute, std::int64_t capacity, std::size_t max_keys);
        // The number of seconds until `key`'s bucket has a token at `now` (0: it has one now),
        // bringing the bucket up to date; the bucket is created full if unknown.
        std::int64_t wait(const std::string& key, std::int64_t now);
        void spend(const std::string& key);
        void give_back(const std::string& key);
        std::size_t size() const noexcept { return m_buckets.size(); }

    private:
        struct Bucket {
            std::int64_t units = 0;
            std::int64_t at = 0;                  // when `units` was last brought up to date
            std::list<std::string>::iterator lru; // its place in m_order (front: used last)
        };
        std::int64_t m_per_minute;
        std::int64_t m_capacity;
        std::size_t m_max_keys;
        std::unordered_map<std::string, Bucket> m_buckets;
        std::list<std::string> m_order;
    };
    Table m_addresses;
    Table m_networks;
};

} // namespace jitgate::server::web
