// lib/time_windows.cpp — time windows over the system tzdb, the `windows:` section, and the strict
// readers of the freeze and on-call files (docs/config.md).
#include "lib/time_windows.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <set>
#include <string_view>

#include <date/tz.h>

#include "lib/yaml_reader.hpp"

namespace jitgate::windows {

namespace {

using std::chrono::seconds;

const date::time_zone* zone_of(const std::string& name) noexcept {
    try {
        return date::locate_zone(name);
    } catch (...) {
        return nullptr; // unknown zone, or no tzdb on the system
    }
}

// True if /usr/share/zoneinfo/`name` is a symbolic link that leads, link by link, to
// /etc/localtime (Debian ships "localtime" so; an administrator may add others).
bool links_to_etc_localtime(const std::string& name) {
    if (name.find("..") != std::string::npos) return true; // not a zone name: refuse
    std::filesystem::path path = std::filesystem::path("/usr/share/zoneinfo") / name;
    for (int i = 0; i < 16; ++i) {
        std::error_code ec;
        if (!std::filesystem::is_symlink(std::filesystem::symlink_status(path, ec)) || ec) return false;
        const auto target = std::filesystem::read_symlink(path, ec);
        if (ec) return false;
        path = (target.is_absolute() ? target : path.parent_path() / target).lexically_normal();
        if (path == "/etc/localtime") return true;
    }
    return true; // a loop of links: not a zone
}

// Digits at text[pos, pos + n) as a number, or -1.
int digits(std::string_view text, std::size_t pos, std::size_t n) {
    if (pos + n > text.size()) return -1;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (text[i] < '0' || text[i] > '9') return -1;
        v = v * 10 + (text[i] - '0');
    }
    return v;
}

struct Civil {
    date::year_month_day day;
    int hour = 0, minute = 0, second = 0;
};

// "YYYY-MM-DDTHH:MM" then optionally ":SS"; `end` is where parsing stopped.
std::optional<Civil> parse_civil(std::string_view t, std::size_t& end, bool seconds_required) {
    const int y = digits(t, 0, 4), mo = digits(t, 5, 2), d = digits(t, 8, 2), h = digits(t, 11, 2),
              mi = digits(t, 14, 2);
    if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != 't') ||
        t[13] != ':')
        return std::nullopt;
    Civil c{date::year{y} / mo / d, h, mi, 0};
    end = 16;
    if (t.size() > 16 && t[16] == ':') {
        c.second = digits(t, 17, 2);
        if (c.second < 0) return std::nullopt;
        end = 19;
    } else if (seconds_required) {
        return std::nullopt;
    }
    // 23:59:60 (a leap second) is not accepted: the system clock never shows it.
    if (!c.day.ok() || c.hour > 23 || c.minute > 59 || c.second > 59) return std::nullopt;
    return c;
}

date::local_seconds local_of(const Civil& c) {
    return date::local_days{c.day} + std::chrono::hours{c.hour} + std::chrono::minutes{c.minute} + seconds{c.second};
}

bool span_holds(const config::WeeklySpan& s, unsigned weekday, int minute) {
    const auto day_set = [&s](unsigned d) { return (s.days & (1U << d)) != 0; };
    if (s.from_minute < s.to_minute) return day_set(weekday) && minute >= s.from_minute && minute < s.to_minute;
    // Past midnight: the evening belongs to the day it starts on, the early hours to the day before.
    return (day_set(weekday) && minute >= s.from_minute) || (day_set((weekday + 6) % 7) && minute < s.to_minute);
}

const config::DatedPeriod* period_at(const config::Window& w, std::int64_t t) {
    for (const auto& p : w.dates)
        if (t >= p.from_unix && t < p.to_unix) return &p;
    return nullptr;
}

std::int64_t unix_of(WallClock now) {
    return std::chrono::duration_cast<seconds>(now.time_since_epoch()).count();
}

// A calendar or a rota of this size is a broken writer, not a schedule.
constexpr std::size_t k_max_file_bytes = 1U << 20;

const config::SectionSpec k_periods_top{{"periods"}, {}};
const config::SectionSpec k_period_spec{{"from", "to", "label"}, {}};
const config::SectionSpec k_on_call_top{{"on_call"}, {}};
const config::SectionSpec k_on_call_spec{{"user", "from", "to"}, {}};

// Reads `path` into `text` with its security check; a problem otherwise.
std::optional<config::Problem> read_trusted(const std::string& path, std::string_view what, std::string& text) {
    // SECURITY NOTE: whoever can write this file (or a directory above it) decides when access
    // is frozen or who is approved automatically: only root (or the daemon's own user) may.
    // The open file itself is checked (O_NOFOLLOW|O_NONBLOCK, then fstat), so nothing can be
    // swapped in between a check and the read, and a FIFO or a device at the path never blocks
    // the daemon's event loop.
    return config::read_trusted_file(path, what, k_max_file_bytes, text, static_cast<unsigned>(geteuid()));
}

} // namespace

std::optional<std::string> zone_error(const std::string& zone) {
    if (zone.empty()) return "the time zone is empty";
    const std::string shown = "'" + config::escaped(zone) + "'";
    // SECURITY NOTE: a window in "localtime" (or a name linked to /etc/localtime) would move
    // whenever someone changes the host's local zone; a window names its zone.
    if (zone == "localtime" || links_to_etc_localtime(zone))
        return "time zone " + shown + " is the host's local zone (/etc/localtime); name the zone, e.g. Europe/Berlin";
    const date::time_zone* z = zone_of(zone);
    if (z == nullptr) return "unknown time zone " + shown + " (not in the system tzdb, /usr/share/zoneinfo)";
    // locate_zone only finds the name; the zone's data is read at its first use, and a bad or
    // unreadable file throws there. Read it now, so that is a config error, not a crash.
    try {
        (void)z->get_info(date::sys_seconds{});
        (void)z->get_info(date::floor<seconds>(std::chrono::system_clock::now()));
    } catch (const std::exception& e) {
        return "time zone " + shown + " cannot be read from the system tzdb: " + config::escaped(e.what());
    }
    return std::nullopt;
}

std::optional<int> parse_clock(const std::string& text, bool allow_24) {
    const int h = digits(text, 0, 2), m = digits(text, 3, 2);
    if (text.size() != 5 || text[2] != ':' || h < 0 || m < 0 || m > 59) return std::nullopt;
    if (h == 24 && m == 0 && allow_24) return 24 * 60;
    if (h > 23) return std::nullopt;
    return h * 60 + m;
}

std::optional<std::int64_t> local_to_unix(const std::string& zone, const std::string& text) {
    const date::time_zone* z = zone_of(zone);
    std::size_t end = 0;
    const auto civil = parse_civil(text, end, false);
    if (z == nullptr || !civil || end != text.size()) return std::nullopt;
    // choose::earliest: a repeated time is its first occurrence; a missing one is the
    // transition instant (date::time_zone::to_sys returns it for both choices).
    try {
        const auto sys = z->to_sys(local_of(*civil), date::choose::earliest);
        return std::chrono::duration_cast<seconds>(sys.time_since_epoch()).count();
    } catch (const std::exception&) {
        return std::nullopt; // the zone's data cannot be read (zone_error says so at load)
    }
}

std::optional<std::int64_t> parse_rfc3339(const std::string& text) {
    std::size_t pos = 0;
    const auto civil = parse_civil(text, pos, true);
    if (!civil) return std::nullopt;
    if (pos < text.size() && text[pos] == '.') {
        const std::size_t start = ++pos;
        while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos])) != 0) ++pos;
        if (pos == start) return std::nullopt;
    }
    int offset_s = 0;
    if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
        ++pos;
    } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
        const int oh = digits(text, pos + 1, 2), om = digits(text, pos + 4, 2);
        if (oh < 0 || om < 0 || oh > 23 || om > 59 || pos + 3 >= text.size() || text[pos + 3] != ':')
            return std::nullopt;
        offset_s = (oh * 3600 + om * 60) * (text[pos] == '-' ? -1 : 1);
        pos += 6;
    } else {
        return std::nullopt; // RFC 3339 requires the offset: a bare local time is ambiguous
    }
    if (pos != text.size()) return std::nullopt;
    const auto local = local_of(*civil);
    return std::chrono::duration_cast<seconds>(local.time_since_epoch()).count() - offset_s;
}

bool holds(const config::Window& w, WallClock now) {
    std::string error;
    const auto held = evaluate(w, now, error);
    return held.value_or(false);
}

std::optional<bool> evaluate(const config::Window& w, WallClock now, std::string& error) {
    const std::int64_t t = unix_of(now);
    if (period_at(w, t) != nullptr) return true;
    if (w.weekly.empty()) return false;
    const date::time_zone* z = zone_of(w.timezone);
    if (z == nullptr) {
        error = "unknown time zone '" + config::escaped(w.timezone) + "'";
        return std::nullopt;
    }
    date::local_seconds local;
    try {
        local = z->to_local(date::sys_seconds{seconds{t}});
    } catch (const std::exception& e) {
        // The tz file changed or broke since the config was loaded: this window cannot say.
        error = "time zone '" + config::escaped(w.timezone) + "' cannot be read: " + config::escaped(e.what());
        return std::nullopt;
    } catch (...) {
        error = "time zone '" + config::escaped(w.timezone) + "' cannot be read";
        return std::nullopt;
    }
    const auto day = date::floor<date::days>(local);
    const unsigned weekday = date::weekday{day}.c_encoding();
    const int minute = static_cast<int>(std::chrono::duration_cast<std::chrono::minutes>(local - day).count());
    return std::any_of(w.weekly.begin(), w.weekly.end(),
                       [&](const config::WeeklySpan& s) { return span_holds(s, weekday, minute); });
}

const config::Window* find(const std::vector<config::Window>& windows, const std::string& name) {
    for (const auto& w : windows)
        if (w.name == name) return &w;
    return nullptr;
}

std::string describe(const config::Window& w, WallClock now) {
    const auto* p = period_at(w, unix_of(now));
    if (p == nullptr) return w.name;
    std::string text = w.name + " (" + p->from + " to " + p->to + " " + w.timezone;
    if (!p->label.empty()) text += ", " + config::escaped(p->label);
    return text + ")";
}

namespace {

std::optional<config::Window::Stamp> stamp_of(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    config::Window::Stamp s;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.size = st.st_size;
    s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    s.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
    return s;
}

const config::SectionSpec k_window_spec{{"timezone", "weekly", "dates", "file"}, {}};
const config::SectionSpec k_weekly_spec{{"days", "from", "to"}, {}};
const config::SectionSpec k_dates_spec{{"from", "to", "label"}, {}};

void parse_window(config::Reader& r, const config::Entry& entry, config::Window& w) {
    using namespace config;
    const std::string path = "windows." + w.name;
    const Where where{path, path + ".", "in window " + shown(w.name), "window " + shown(w.name) + ": "};
    if (!entry.value.IsMap()) {
        r.add(entry.key_node.Mark(), where.prefix + "expected a mapping {timezone, weekly, dates, file}, got " +
                                         config::describe(entry.value));
        return;
    }
    const Entries e = r.entries(entry.value, where, k_window_spec);
    if (auto v = r.string_value(where, config::find(e, "timezone"))) {
        w.timezone = *v;
    }
    const Entry* tz = config::find(e, "timezone");
    // An unknown zone is reported once, here; the times below need one to mean anything.
    const auto zone_problem =
        tz == nullptr ? std::optional<std::string>("'timezone' is required (an IANA name such as Europe/Berlin)")
                      : zone_error(w.timezone);
    if (zone_problem) {
        r.add(tz != nullptr ? tz->value.Mark() : entry.key_node.Mark(), where.prefix + *zone_problem);
    }
    const auto list_of = [&](const char* key) -> const Entry* {
        const Entry* list = config::find(e, key);
        if (list != nullptr && !list->value.IsNull() && !list->value.IsSequence()) {
            r.wrong_type(where, *list, "a list");
            return nullptr;
        }
        return list != nullptr && list->value.IsSequence() ? list : nullptr;
    };
    if (const Entry* weekly = list_of("weekly")) {
        for (std::size_t i = 0; i < weekly->value.size(); ++i) {
            const YAML::Node node = weekly->value[i];
            const Where ww{path + ".weekly[" + std::to_string(i) + "]", "weekly.", where.in, where.prefix};
            if (!node.IsMap()) {
                r.add(node.Mark(),
                      where.prefix + "each 'weekly' entry is {days, from, to}, got " + config::describe(node));
                continue;
            }
            const Entries we = r.entries(node, ww, k_weekly_spec);
            WeeklySpan span;
            static constexpr std::array<std::string_view, 7> k_days{"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
            if (auto days = r.list_value(ww, config::find(we, "days"))) {
                for (const auto& day : *days) {
                    const auto d = std::find(k_days.begin(), k_days.end(), day);
                    if (d == k_days.end()) {
                        r.add(config::find(we, "days")->value.Mark(),
                              where.prefix + "unknown day " + shown(day) +
                                  " (expected mon, tue, wed, thu, fri, sat, sun)");
                    } else {
                        span.days |= 1U << static_cast<unsigned>(d - k_days.begin());
                    }
                }
            }
            const auto clock = [&](const char* key, bool allow_24) -> std::optional<int> {
                const Entry* c = config::find(we, key);
                const auto text = r.string_value(ww, c);
                if (!text) {
                    if (c == nullptr) r.add(node.Mark(), where.prefix + "weekly: '" + key + "' is required");
                    return std::nullopt;
                }
                const auto minute = parse_clock(*text, allow_24);
                if (!minute)
                    r.add(c->value.Mark(), where.prefix + "weekly: bad time " + shown(*text) + ", expected HH:MM");
                return minute;
            };
            const auto from = clock("from", false);
            const auto to = clock("to", true);
            if (span.days == 0) {
                r.add(node.Mark(), where.prefix + "weekly: 'days' must name at least one day");
            }
            if (from && to && *from == *to) {
                r.add(node.Mark(), where.prefix + "weekly: 'from' and 'to' are the same time (an empty window)");
            }
            if (from && to) {
                span.from_minute = *from;
                span.to_minute = *to;
                w.weekly.push_back(span);
            }
        }
    }
    if (const Entry* dates = list_of("dates")) {
        for (std::size_t i = 0; i < dates->value.size(); ++i) {
            const YAML::Node node = dates->value[i];
            const Where dw{path + ".dates[" + std::to_string(i) + "]", "dates.", where.in, where.prefix};
            if (!node.IsMap()) {
                r.add(node.Mark(),
                      where.prefix + "each 'dates' entry is {from, to, label}, got " + config::describe(node));
                continue;
            }
            const Entries de = r.entries(node, dw, k_dates_spec);
            const auto from = r.string_value(dw, config::find(de, "from"));
            const auto to = r.string_value(dw, config::find(de, "to"));
            DatedPeriod p;
            p.source = r.source();
            p.line = position_of(node.Mark()).line;
            if (auto label = r.string_value(dw, config::find(de, "label"))) p.label = *label;
            if (!from || !to) {
                r.add(node.Mark(), where.prefix + "dates: 'from' and 'to' are required");
                continue;
            }
            if (zone_problem) continue;
            const auto f = local_to_unix(w.timezone, *from), t = local_to_unix(w.timezone, *to);
            if (!f || !t) {
                r.add(node.Mark(), where.prefix + "dates: bad time " + shown(!f ? *from : *to) +
                                       ", expected local YYYY-MM-DDTHH:MM[:SS] (no offset: the window's timezone)");
                continue;
            }
            if (*f >= *t) {
                r.add(node.Mark(), where.prefix + "dates: 'from' must be before 'to'");
                continue;
            }
            p.from = *from;
            p.to = *to;
            p.from_unix = *f;
            p.to_unix = *t;
            w.dates.push_back(std::move(p));
        }
    }
    if (const Entry* file = config::find(e, "file")) {
        if (auto v = r.string_value(where, file)) {
            w.file = *v;
            // SECURITY NOTE: read now, and again at every reload, strictly: a missing or broken
            // calendar file makes the whole config invalid (a daemon does not start, a reload
            // is refused), never a silently empty freeze.
            if (!is_absolute_path(w.file)) {
                r.add(file->value.Mark(), where.prefix + "'file' must be an absolute path, got " + shown(w.file));
            } else if (!zone_problem) {
                // Stamped before it is read: a change during the read shows as a change later.
                w.file_stamp = stamp_of(w.file).value_or(config::Window::Stamp{});
                for (auto& p : read_periods_file(w.file, w.timezone, w.dates)) {
                    r.problems().push_back(std::move(p));
                }
            }
        }
    }
    if (w.weekly.empty() && w.dates.empty() && w.file.empty() && !zone_problem) {
        r.add(entry.key_node.Mark(), where.prefix + "needs 'weekly', 'dates' or 'file'");
    }
}

} // namespace

void parse_windows(config::Reader& r, const config::Entry* entry, std::vector<config::Window>& windows) {
    using namespace config;
    if (entry == nullptr || entry->value.IsNull()) {
        return;
    }
    if (!entry->value.IsMap()) {
        r.wrong_type(Where{"", "", "at top level", ""}, *entry,
                     "a mapping of window name to {timezone, weekly, dates, file}");
        return;
    }
    for (auto it = entry->value.begin(); it != entry->value.end(); ++it) {
        if (!it->first.IsScalar()) {
            r.add(it->first.Mark(), "windows: a window's name must be a string");
            continue;
        }
        Window w;
        w.name = it->first.Scalar();
        w.line = position_of(it->first.Mark()).line;
        r.record("windows." + w.name, it->first.Mark());
        parse_window(r, Entry{w.name, it->first, it->second}, w);
        windows.push_back(std::move(w));
    }
}

void check_windows(const std::vector<config::Window>& windows, bool parsed,
                   const std::function<void(const std::string& path, int line, std::string message)>& add) {
    std::set<std::string> seen;
    for (const config::Window& w : windows) {
        const std::string path = "windows." + w.name;
        if (w.name.empty()) {
            add(path, w.line, "windows: a window's name is empty");
        } else if (!std::all_of(w.name.begin(), w.name.end(), [](char ch) {
                       return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                              ch == '.' || ch == '_' || ch == '-';
                   })) {
            // Shown on terminals and written to audit records and messages as it is.
            add(path, w.line, "windows: window name " + config::shown(w.name) + " may use only A-Z a-z 0-9 . _ -");
        }
        if (!seen.insert(w.name).second) {
            add(path, w.line, "windows: window " + config::shown(w.name) + " is defined twice");
        }
        if (const auto error = zone_error(w.timezone); error && !parsed) {
            add(path, w.line, "window " + config::shown(w.name) + ": " + *error); // the parser said it for a file
        }
    }
}

std::optional<std::string> file_changed(const config::Window& w) {
    if (w.file.empty()) return std::nullopt;
    const auto now = stamp_of(w.file);
    if (now && *now == w.file_stamp) return std::nullopt;
    return "the calendar file " + config::shown(w.file) + " of window " + config::shown(w.name) +
           (now ? " changed" : " is gone") + " since it was read; restart to read it again";
}

std::vector<config::Problem> read_periods_file(const std::string& path, const std::string& zone,
                                               std::vector<config::DatedPeriod>& out) {
    std::string text;
    if (auto p = read_trusted(path, "the window file", text)) return {*p};
    config::Reader reader(path);
    std::vector<config::DatedPeriod> periods;
    read_document(text, reader, [&](const YAML::Node& root) {
        const config::Where top{"", "", "at top level", ""};
        if (!root.IsMap()) {
            reader.add(root.Mark(), "a window file is a mapping with 'periods:', a list of {from, to, label}");
            return;
        }
        const config::Entries e = reader.entries(root, top, k_periods_top);
        const config::Entry* list = config::find(e, "periods");
        if (list == nullptr || !list->value.IsSequence()) {
            // An empty calendar is written as "periods: []"; a missing key is a broken writer.
            reader.add(list != nullptr ? list->value.Mark() : root.Mark(),
                       "'periods' must be a list of {from, to, label} (write 'periods: []' for none)");
            return;
        }
        for (std::size_t i = 0; i < list->value.size(); ++i) {
            const YAML::Node node = list->value[i];
            const config::Where where{"periods[" + std::to_string(i) + "]", "", "in period " + std::to_string(i + 1),
                                      "period " + std::to_string(i + 1) + ": "};
            if (!node.IsMap()) {
                reader.add(node.Mark(), where.prefix + "expected a mapping {from, to, label}");
                continue;
            }
            const config::Entries pe = reader.entries(node, where, k_period_spec);
            config::DatedPeriod p;
            p.source = path;
            p.line = config::position_of(node.Mark()).line;
            const auto from = reader.string_value(where, config::find(pe, "from"));
            const auto to = reader.string_value(where, config::find(pe, "to"));
            if (auto label = reader.string_value(where, config::find(pe, "label"))) p.label = *label;
            if (!from || !to) {
                reader.add(node.Mark(), where.prefix + "'from' and 'to' are required");
                continue;
            }
            const auto f = local_to_unix(zone, *from), t = local_to_unix(zone, *to);
            if (!f || !t) {
                reader.add(node.Mark(), where.prefix + "bad time " + config::shown(!f ? *from : *to) +
                                            ": expected local YYYY-MM-DDTHH:MM[:SS] (no offset: the window's zone)");
                continue;
            }
            if (*f >= *t) {
                reader.add(node.Mark(), where.prefix + "'from' must be before 'to'");
                continue;
            }
            p.from = *from;
            p.to = *to;
            p.from_unix = *f;
            p.to_unix = *t;
            periods.push_back(std::move(p));
        }
    });
    if (!reader.problems().empty()) return std::move(reader.problems());
    out.insert(out.end(), periods.begin(), periods.end());
    return {};
}

std::optional<std::string> read_on_call_file(const std::string& path, std::vector<OnCall>& out) {
    out.clear();
    std::string text;
    if (auto p = read_trusted(path, "the on-call file", text)) return p->to_string();
    config::Reader reader(path);
    std::vector<OnCall> list;
    read_document(text, reader, [&](const YAML::Node& root) {
        const config::Where top{"", "", "at top level", ""};
        if (!root.IsMap()) {
            reader.add(root.Mark(), "an on-call file is a mapping with 'on_call:', a list of {user, from, to}");
            return;
        }
        const config::Entries e = reader.entries(root, top, k_on_call_top);
        const config::Entry* entries = config::find(e, "on_call");
        if (entries == nullptr || !entries->value.IsSequence()) {
            reader.add(entries != nullptr ? entries->value.Mark() : root.Mark(),
                       "'on_call' must be a list of {user, from, to} (write 'on_call: []' for nobody)");
            return;
        }
        for (std::size_t i = 0; i < entries->value.size(); ++i) {
            const YAML::Node node = entries->value[i];
            const config::Where where{"on_call[" + std::to_string(i) + "]", "", "in entry " + std::to_string(i + 1),
                                      "entry " + std::to_string(i + 1) + ": "};
            if (!node.IsMap()) {
                reader.add(node.Mark(), where.prefix + "expected a mapping {user, from, to}");
                continue;
            }
            const config::Entries oe = reader.entries(node, where, k_on_call_spec);
            const auto user = reader.string_value(where, config::find(oe, "user"));
            const auto from = reader.string_value(where, config::find(oe, "from"));
            const auto to = reader.string_value(where, config::find(oe, "to"));
            if (!user || user->empty() || !from || !to) {
                reader.add(node.Mark(), where.prefix + "'user', 'from' and 'to' are required");
                continue;
            }
            const auto f = parse_rfc3339(*from), t = parse_rfc3339(*to);
            if (!f || !t) {
                reader.add(node.Mark(), where.prefix + "bad time " + config::shown(!f ? *from : *to) +
                                            ": expected RFC 3339, e.g. 2026-11-29T08:00:00Z");
                continue;
            }
            if (*f >= *t) {
                reader.add(node.Mark(), where.prefix + "'from' must be before 'to'");
                continue;
            }
            list.push_back({*user, *f, *t});
        }
    });
    if (!reader.problems().empty()) return reader.problems().front().to_string();
    out = std::move(list);
    return std::nullopt;
}

bool on_call(const std::vector<OnCall>& list, const std::string& user, WallClock now) {
    const std::int64_t t = unix_of(now);
    return std::any_of(list.begin(), list.end(),
                       [&](const OnCall& o) { return o.user == user && t >= o.from_unix && t < o.to_unix; });
}

void warn_throttled(const std::string& line) {
    static std::mutex mutex;
    static std::string last;
    static std::chrono::steady_clock::time_point last_at;
    const auto now = std::chrono::steady_clock::now();
    {
        const std::lock_guard lock(mutex);
        if (line == last && now - last_at < std::chrono::minutes(1)) return;
        last = line;
        last_at = now;
    }
    std::fprintf(stderr, "%s\n", line.c_str());
}

} // namespace jitgate::windows
