// daemon/policy/broker_detail.hpp — helpers shared by the broker's own files (broker.cpp,
// admin.cpp); not part of the broker's interface, include it nowhere else. The display and
// requester helpers that the approval backends also need are in session.hpp.
//
// Pure functions of their arguments (now_unix reads the clock): thread-safe, never throw
// except std::bad_alloc.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/policy/session.hpp"
#include "jitgate/messages.hpp"

namespace jitgate::broker::detail {

// What an approver is told when their approval could not be made durable (it is not counted).
inline constexpr const char* k_approval_not_recorded = "the audit spool cannot be written; approval not recorded";

// Seconds since the epoch (system clock).
std::int64_t now_unix();
bool contains(const std::vector<std::string>& v, const std::string& s);
// The binding facts an approver and an auditor see, added to `j` (sudo only).
void add_binding(Json& j, const CheckSession& s);
// A denial of `s` with `outcome` and the user's `message`.
msg::Decision deny_with(msg::Outcome outcome, std::string message, const CheckSession& s);
// Non-empty (the user's message) when the rule of `s` says `intercept: true` and this sudo
// does not run the command under intercept mode (intercept.cpp).
std::string intercept_refusal(const CheckSession& s);

} // namespace jitgate::broker::detail
