// daemon/policy/broker_detail.hpp — helpers shared by the broker's own files (broker.cpp,
// admin.cpp); not part of the broker's interface, include it nowhere else.
//
// Pure functions of their arguments (now_unix reads the clock): thread-safe, never throw
// except std::bad_alloc.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/policy/broker.hpp"
#include "jitgate/messages.hpp"

namespace jitgate::broker::detail {

// What an approver is told when their approval could not be made durable (it is not counted).
inline constexpr const char* k_approval_not_recorded = "the audit spool cannot be written; approval not recorded";

// Seconds since the epoch (system clock).
std::int64_t now_unix();
bool contains(const std::vector<std::string>& v, const std::string& s);
// Each element through text::escape_for_log, as a JSON array.
Json escaped_argv(const std::vector<std::string>& argv);
// text::escape_for_log: what reaches records, approvers and terminals.
std::string esc(const std::string& s);
// What will run, as an approver should read it: the resolved path, then the arguments.
std::string display_command(const std::string& command, std::vector<std::string> argv);
// `s` without leading and trailing blanks (space, tab, CR, LF).
std::string trim(const std::string& s);
// "1 approval", "2 approvals".
std::string plural(long n, const char* one, const char* many);
// `s` cut to a display field's bound (whole UTF-8 characters), saying how long it was.
std::string cut(std::string s);
// Who asks: the person the server found from the kernel, or the request's user.
std::int64_t requester_uid(const CheckSession& s);
std::string requester_name(const CheckSession& s);
// The binding facts an approver and an auditor see, added to `j` (sudo only).
void add_binding(Json& j, const CheckSession& s);
// A denial of `s` with `outcome` and the user's `message`.
msg::Decision deny_with(std::string outcome, std::string message, const CheckSession& s);

} // namespace jitgate::broker::detail
