// cli/output.hpp — how jitgatectl shows things on a terminal: ages, sizes, lists, audit events.
//
// Pure formatting, no I/O except print_event (stdout). Text that came from the daemon or a
// file goes through text::printable or text::escape_for_log before it reaches the terminal.
// Not thread-safe only in that print_event writes to stdout unsynchronised.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace jitgate::cli {

using Json = nlohmann::json;

// "42s", "5m", "3h" (negative ages read as 0s).
std::string age(std::int64_t seconds);
// The field `key` of `j` as text: a string as is, anything else dumped, absent or null "".
std::string str(const Json& j, const char* key);
// The elements of an array, ", "-separated; "" if `arr` is not an array.
std::string joined(const Json& arr);
// 1536 → "1.5 KiB".
std::string human_bytes(std::uint64_t n);
// One audit event (a line of the spool) as one line on stdout; an unparseable line is shown
// escaped and cut, never raw.
void print_event(const std::string& line);

} // namespace jitgate::cli
