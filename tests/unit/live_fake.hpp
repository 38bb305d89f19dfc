// tests/unit/live_fake.hpp — broker tests without real sudo processes: the live-session
// registry sees every test pid as a process that runs until the test ends, and nothing it does
// reaches a real process or terminal (test_policy_live.cpp tests the real effects).
#pragma once

#include <sys/types.h>

#include "daemon/policy/broker.hpp"
#include "daemon/policy/live.hpp"

namespace jitgate::test {

// The pid tests give their fake sudo front ends (any pid > 1 the registry accepts).
inline constexpr pid_t k_fake_sudo_pid = 4242;

inline void fake_processes(broker::Broker& b) {
    live::Effects e;
    e.start_time = [](pid_t) -> std::optional<std::uint64_t> { return 1; };
    e.write_tty = [](const std::string&, const std::string&) { return false; };
    e.find_tty = [](pid_t) { return std::string(); };
    e.signal = [](pid_t, std::uint64_t, int) { return live::SignalResult::sent; };
    const auto options = b.live_sessions().options();
    b.live_sessions() = live::Registry(std::move(e));
    b.live_sessions().set_options(options);
}

} // namespace jitgate::test
