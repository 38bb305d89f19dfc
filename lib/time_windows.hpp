// lib/time_windows.hpp — time windows and the on-call list, shared by jitgated's rules and
// jitgate-server's approver policy (the same `windows:` syntax in both configs): local times in
// an IANA zone (the system tzdb, through Howard Hinnant's date/tz.h: g++ 12 has no std::chrono
// tzdb), whether a window holds at an instant, the `windows:` section's reader and checks, and
// the strict readers of the files a change calendar and an on-call sync write (docs/config.md,
// "Time windows", "Automatic approval"; docs/server.md, "Approver policy").
//
// Every function takes "now" from its caller (no clock read here), so tests use fixed instants.
// Thread-safe: the tzdb is loaded once and never reloaded. Nothing throws for bad input except
// std::bad_alloc: errors are returned.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <functional>

#include "lib/yaml_reader.hpp"

namespace jitgate::config {

// A named time window (docs/config.md, "Time windows"): weekly local hours, dated periods
// (inline or from a file a change calendar writes), in one IANA time zone of the system tzdb.
struct WeeklySpan {
    unsigned days = 0;   // bit d set: weekday d (0 Sunday .. 6 Saturday), in the window's zone
    int from_minute = 0; // local time of day, minutes after midnight, inclusive
    int to_minute = 0;   // exclusive; 1440 is "24:00"; below from_minute: runs past midnight
};
struct DatedPeriod {
    std::string from, to;       // as written, local "YYYY-MM-DDTHH:MM[:SS]"
    std::int64_t from_unix = 0; // the instants they name (DST rule: docs/config.md)
    std::int64_t to_unix = 0;   // exclusive
    std::string label;          // optional, shown with the window
    std::string source;         // the file it came from
    int line = 0;
};
struct Window {
    std::string name;
    int line = 0;
    std::string timezone; // IANA name, checked against the system tzdb
    std::vector<WeeklySpan> weekly;
    std::vector<DatedPeriod> dates; // inline ones, then the file's
    std::string file;               // optional: more dated periods, read strictly at (re)load
    // The file as it was read (file_changed() compares): device, inode, size, mtime and ctime.
    struct Stamp {
        std::uint64_t dev = 0, ino = 0;
        std::int64_t size = -1, mtime_ns = 0, ctime_ns = 0;
        bool operator==(const Stamp&) const = default;
    } file_stamp;
};

} // namespace jitgate::config

namespace jitgate::windows {

using WallClock = std::chrono::system_clock::time_point;

// nullopt if `zone` names a zone of the system tzdb; else why not.
std::optional<std::string> zone_error(const std::string& zone);

// "HH:MM" (00:00..23:59, and "24:00" if `allow_24`) as minutes after midnight; nullopt if not.
std::optional<int> parse_clock(const std::string& text, bool allow_24);

// A local "YYYY-MM-DDTHH:MM" or "YYYY-MM-DDTHH:MM:SS" in `zone` as seconds since the epoch.
// DST (docs/config.md, "Daylight saving time"): a local time that repeats means its first
// occurrence (the earlier instant); one that does not exist (in the gap when the clocks go
// forward) means the instant the clocks jump. nullopt if malformed or the zone is unknown.
std::optional<std::int64_t> local_to_unix(const std::string& zone, const std::string& text);

// An RFC 3339 time, "2026-11-29T20:00:00Z" or with "+01:00", optional fraction (ignored);
// nullopt if anything else (a lowercase 't'/'z' is accepted, as RFC 3339 allows).
std::optional<std::int64_t> parse_rfc3339(const std::string& text);

// Whether `window` holds at `now`: a weekly span by the local weekday and time of day in its
// zone (the wall clock, so 08:00 stays 08:00 across a DST change), or a dated period
// [from, to). False if the zone is unknown or its data cannot be read (validate() has refused
// such a config; tzdata replaced since is caught by evaluate()). Never throws.
bool holds(const config::Window& window, WallClock now);
// The same, but says when the window cannot be evaluated (its zone's data cannot be read):
// nullopt and `error` set. Callers that decide access refuse then (fail closed).
std::optional<bool> evaluate(const config::Window& window, WallClock now, std::string& error);
// The window named `name` in `windows`, or null.
const config::Window* find(const std::vector<config::Window>& windows, const std::string& name);
// What a window is shown as: its name, with the label of the dated period in effect if any.
std::string describe(const config::Window& window, WallClock now);

// Reads a config's `windows:` section (`section`: its entry at top level, or null) into
// `windows`: a mapping of window name to {timezone, weekly, dates, file}. Problems go to
// `reader` with their positions; a `file` is read now (read_periods_file), so a missing or
// broken calendar makes the config invalid.
void parse_windows(config::Reader& reader, const config::Entry* section, std::vector<config::Window>& windows);

// The checks of a parsed (or built in code) `windows` list: names (A-Z a-z 0-9 . _ -, unique),
// and, for a config built in code (`parsed` false: the parser has not said it), the zones.
// Each problem goes to `add` with its path ("windows.<name>") and line.
void check_windows(const std::vector<config::Window>& windows, bool parsed,
                   const std::function<void(const std::string& path, int line, std::string message)>& add);

// Why the window's `file` is no longer the one its periods were read from (changed, replaced,
// gone), or nullopt (also for a window without a file). A program that cannot reload its
// config (jitgate-server) refuses to decide on such a window: its periods may be stale.
std::optional<std::string> file_changed(const config::Window& window);

// Reads the dated periods of a freeze file (format in docs/config.md) as local times of
// `zone`. Every problem names the file and line. Refuses a file someone other than root or
// this process's user could change. Never throws except std::bad_alloc.
std::vector<config::Problem> read_periods_file(const std::string& path, const std::string& zone,
                                               std::vector<config::DatedPeriod>& out);

// One line of the on-call file.
struct OnCall {
    std::string user;
    std::int64_t from_unix = 0;
    std::int64_t to_unix = 0; // exclusive
};

// Reads the on-call file strictly (format in docs/config.md). On any problem returns a
// message naming the file (and line) and leaves `out` empty: a bad file means nobody is on call.
std::optional<std::string> read_on_call_file(const std::string& path, std::vector<OnCall>& out);

// Writes `line` to stderr (the journal), but the same line at most once a minute: the host and
// the server read the on-call file (and judge automatic approval) at every check or filing, and
// a broken file must not write a line per request. A different line (the file changed, another
// rule) is written at once. Thread-safe.
void warn_throttled(const std::string& line);

// True if `user` has an entry covering `now`.
bool on_call(const std::vector<OnCall>& list, const std::string& user, WallClock now);

} // namespace jitgate::windows
