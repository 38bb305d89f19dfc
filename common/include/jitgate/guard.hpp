// jitgate/guard.hpp — the ABI guard: nothing thrown may cross into sudo or libpam.
//
// Every extern "C" entry point runs its body through abi_guard(), which catches every
// exception, reports it with `report` (which must not throw), and returns `on_error`
// (the host's deny/error code). Fail closed.
#pragma once

#include <exception>
#include <utility>

namespace jitgate {

template <typename R, typename Body, typename Report>
R abi_guard(R on_error, Body&& body, Report&& report) noexcept {
    try {
        return std::forward<Body>(body)();
    } catch (const std::exception& e) {
        report(e.what());
    } catch (...) {
        report("unknown exception");
    }
    return on_error;
}

} // namespace jitgate
