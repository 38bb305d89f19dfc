// daemon/audit/syslog.cpp — the syslog line of an audit event and the datagram client for
// /dev/log (see syslog.hpp). Syslog failures are counted by the caller, never fatal.
#include "daemon/audit/syslog.hpp"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <string_view>

#include "jitgate/text.hpp"

namespace jitgate::audit {
namespace {

// A datagram to /dev/log above 8 KiB may be cut or dropped by the receiver (rsyslog's default
// maxMessageSize is 8k); keep a margin for what the receiver adds.
constexpr std::size_t k_max_syslog_line = 8000;
constexpr int k_facility_authpriv = 10 << 3;
constexpr const char* k_sd_id = "jitgate@32473";
// A stuck syslog daemon must not stall the event loop for long; the spool has the event.
constexpr long k_syslog_send_timeout_us = 250'000;

// Scalar fields shown in the syslog structured data, in this order.
constexpr std::array k_sd_fields = {
    "type",
    "seq",
    "event_id",
    "user",
    "uid",
    "kind",
    "service",
    "command",
    "argv",
    "runas",
    "tty",
    "remote_host",
    "reason",
    "break_glass_reason",
    "ticket",
    "request_id",
    "grant_id",
    "approvers",
    "approvals_needed",
    "approver",
    "denied_by",
    "deny_reason",
    "rule",
    "scope",
    "expires",
    "exit_status",
    "signal",
    "duration_ms",
    "outcome",
    "message",
};

// RFC 3164 timestamp ("Nov  3 10:00:00") in local time, of the event's own time when it has
// one, so the syslog line and the spool agree. Month names are fixed: the locale must not
// change the format the receiver parses.
std::string rfc3164_timestamp(const Json& event) {
    std::time_t t = std::time(nullptr);
    if (const auto it = event.find("time"); it != event.end() && it->is_string()) {
        std::tm utc{};
        const char* end = ::strptime(it->get_ref<const std::string&>().c_str(), "%Y-%m-%dT%H:%M:%S", &utc);
        if (end != nullptr) t = ::timegm(&utc);
    }
    std::tm tm{};
    ::localtime_r(&t, &tm);
    static constexpr std::array<const char*, 12> k_months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::array<char, 32> buf{};
    std::snprintf(buf.data(), buf.size(), "%s %2d %02d:%02d:%02d", k_months[static_cast<std::size_t>(tm.tm_mon) % 12],
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf.data();
}

// Cuts escaped (printable, valid UTF-8) text to at most `max` bytes, on a character boundary,
// and says how much was dropped.
std::string truncate_text(std::string s, std::size_t max) {
    if (s.size() <= max) return s;
    constexpr std::size_t k_marker_room = 32; // "…[truncated NNNNNNNNNN bytes]"
    std::size_t keep = max > k_marker_room ? max - k_marker_room : 0;
    while (keep > 0 && (static_cast<unsigned char>(s[keep]) & 0xC0u) == 0x80u) --keep;
    const std::size_t dropped = s.size() - keep;
    s.resize(keep);
    s += "\u2026[truncated " + std::to_string(dropped) + " bytes]";
    return s;
}

std::string escaped_dump(const Json& j) {
    return text::escape_for_log(j.dump(-1, ' ', false, Json::error_handler_t::replace));
}

// Printable text of the value `v` of field `key` for syslog: escaped, single line; "" if null.
std::string value_text(const Json& v, std::string_view key) {
    if (v.is_null()) return {};
    if (v.is_string()) return text::escape_for_log(v.get_ref<const std::string&>());
    if (v.is_number() || v.is_boolean()) return v.dump();
    if (key == "argv" && v.is_array()) {
        try {
            return text::display_argv(text::argv_from_json(v)); // strings or {"b64": ...}
        } catch (const std::exception&) {
            return escaped_dump(v);
        }
    }
    if (key == "approvers" && v.is_array()) {
        std::string out;
        for (const auto& a : v) {
            if (!out.empty()) out += ',';
            out += a.is_string() ? text::escape_for_log(a.get_ref<const std::string&>()) : escaped_dump(a);
        }
        return out;
    }
    return escaped_dump(v);
}

// Printable text of one field for syslog: escaped, single line; "" if absent or null.
std::string field_text(const Json& event, const char* key) {
    const auto it = event.find(key);
    return it == event.end() ? std::string() : value_text(*it, key);
}

// RFC 5424 section 6.3.3: inside PARAM-VALUE, '"', '\' and ']' must be escaped.
std::string sd_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '"' || c == '\\' || c == ']') out += '\\';
        out += c;
    }
    return out;
}

std::string build_sd(const Json& event, std::size_t value_cap) {
    std::string sd = "[";
    sd += k_sd_id;
    for (const char* key : k_sd_fields) {
        // One lookup per field (this runs for every event): most fields are absent.
        const auto it = event.find(key);
        if (it == event.end()) continue;
        std::string value = value_text(*it, key);
        if (value.empty() && !it->is_string()) continue;
        sd += ' ';
        sd += key;
        sd += "=\"";
        sd += sd_escape(truncate_text(std::move(value), value_cap));
        sd += '"';
    }
    sd += ']';
    return sd;
}

// "alice sudo /usr/bin/systemctl restart payments: approved by bob (request R-7F3KQ2)".
// Built from escaped pieces, so it is printable too.
std::string summary_of(const Json& event) {
    const std::string type = field_text(event, "type");
    const auto f = [&](const char* key) { return field_text(event, key); };

    std::string subject;
    const auto add_subject = [&](const std::string& part) {
        if (part.empty()) return;
        if (!subject.empty()) subject += ' ';
        subject += part;
    };
    add_subject(f("user"));
    add_subject(f("kind"));
    // The resolved command path, then the arguments (argv[0] is only what the user typed).
    const auto argv = event.find("argv");
    if (!f("command").empty() && argv != event.end() && argv->is_array() && !argv->empty()) {
        add_subject(f("command"));
        add_subject(field_text(Json{{"argv", Json(argv->begin() + 1, argv->end())}}, "argv"));
    } else {
        add_subject(f("argv").empty() ? f("command") : f("argv"));
    }
    // Daemon messages are written for the user's terminal and start with "jitgate: ", which
    // the ident already says.
    std::string message = f("message");
    if (message.starts_with("jitgate: ")) message.erase(0, 9);

    std::string phrase;
    bool message_used = false;
    const std::string approvers = f("approvers");
    if (type == type::requested) {
        phrase = "approval requested";
        if (!f("reason").empty()) phrase += ", reason: " + f("reason");
        if (!f("ticket").empty()) phrase += ", ticket " + f("ticket");
    } else if (type == type::approval_recorded) {
        phrase = "approval recorded" + (approvers.empty() ? "" : " from " + approvers);
    } else if (type == type::approved) {
        phrase = "approved" + (approvers.empty() ? "" : " by " + approvers);
    } else if (type == type::auto_approved) {
        phrase = "approved automatically (" + f("condition") + ")";
    } else if (type == type::denied) {
        phrase = "denied" + (f("denied_by").empty() ? "" : " by " + f("denied_by"));
        if (!f("deny_reason").empty()) {
            phrase += ": " + f("deny_reason");
        } else if (message.starts_with("denied")) {
            phrase = message;
            message_used = true;
        }
    } else if (type == type::timeout) {
        phrase = "timed out waiting for approval";
    } else if (type == type::cancelled) {
        phrase = "cancelled while waiting for approval";
    } else if (type == type::allowed_by_rule) {
        phrase = "allowed by rule" + (f("rule").empty() ? "" : " " + f("rule"));
    } else if (type == type::allowed_by_grant) {
        phrase = "allowed by grant" + (f("grant_id").empty() ? "" : " " + f("grant_id"));
    } else if (type == type::break_glass) {
        phrase = "BREAK-GLASS access without approval";
        const std::string why = f("break_glass_reason").empty() ? f("reason") : f("break_glass_reason");
        if (!why.empty()) phrase += ", reason: " + why;
        message_used = true; // it only repeats the reason
    } else if (type == type::grant_revoked) {
        phrase = "grant" + (f("grant_id").empty() ? "" : " " + f("grant_id")) + " revoked";
        if (!f("revoked_by").empty()) phrase += " by " + f("revoked_by");
        if (!f("reason").empty()) phrase += ": " + f("reason");
    } else if (type == type::grant_released) {
        phrase = "grant" + (f("grant_id").empty() ? "" : " " + f("grant_id")) + " released early by its requester";
    } else if (type == type::session_ended_by_expiry || type == type::session_ended_by_revoke) {
        phrase = "session (pid " + f("pid") + (f("tty").empty() ? "" : ", tty " + f("tty")) + ") under grant " +
                 f("grant_id") + " ended: " + f("reason");
    } else if (type == type::session_killed) {
        phrase =
            "session (pid " + f("pid") + ") under grant " + f("grant_id") +
            (f("signalled") == "true" ? " still running after the grace period: killed (SIGKILL)"
                                      : " still running after the grace period: SIGKILL failed: " + f("signal_error"));
    } else if (type == type::session_kept_after_expiry) {
        phrase = "session (pid " + f("pid") + ") kept after grant " + f("grant_id") + " expired (on_expiry: keep)";
    } else if (type == type::command_finished) {
        phrase = !f("signal").empty()
                     ? "killed by signal " + f("signal")
                     : "finished with exit status " + (f("exit_status").empty() ? "?" : f("exit_status"));
        if (!f("duration_ms").empty()) phrase += " after " + f("duration_ms") + " ms";
    } else if (type == type::command_intercepted) {
        if (f("decision") == "allowed") {
            phrase = "sub-command " + f("command") + " allowed " +
                     (f("why") == "grant" ? "under grant " + f("grant_id") : "(" + f("why") + ")");
        } else {
            phrase = "sub-command " + (message.empty() ? f("command") + " denied" : message);
            message_used = true;
        }
    } else if (type == type::session_opened) {
        phrase = "session opened" + (f("remote_host").empty() ? "" : " from " + f("remote_host"));
    } else if (type == type::session_closed) {
        phrase = "session closed" + (f("duration_ms").empty() ? "" : " after " + f("duration_ms") + " ms");
    } else if (type == type::daemon_started) {
        phrase = "jitgated" + (f("version").empty() ? "" : " " + f("version")) + " started" +
                 (f("pid").empty() ? "" : " (pid " + f("pid") + ")");
    } else if (type == type::daemon_stopped) {
        phrase = "jitgated stopped" +
                 (f("pending_dropped").empty() ? "" : " (" + f("pending_dropped") + " pending requests dropped)");
    } else if (type == type::config_loaded) {
        phrase = std::string(f("reload") == "true" ? "config reloaded" : "config loaded") +
                 (f("config").empty() ? "" : " from " + f("config")) +
                 (f("rules").empty() ? "" : " (" + f("rules") + " rules)");
    } else {
        phrase = type;
    }
    if (!message_used && !message.empty()) phrase += ": " + message;
    if (!f("request_id").empty()) phrase += " (request " + f("request_id") + ")";
    return subject.empty() ? phrase : subject + ": " + phrase;
}

} // namespace

std::string rfc3339_now() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    std::tm tm{};
    ::gmtime_r(&ts.tv_sec, &tm);
    std::array<char, 40> buf{};
    const auto len = std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%S", &tm);
    std::array<char, 8> ms{};
    std::snprintf(ms.data(), ms.size(), ".%03dZ", static_cast<int>(ts.tv_nsec / 1'000'000));
    return std::string(buf.data(), len) + ms.data();
}

bool send_syslog_message(const std::string& socket_path, int severity, const std::string& message) noexcept {
    try {
        const std::string line = "<" + std::to_string(k_facility_authpriv + severity) + ">" +
                                 rfc3164_timestamp(Json::object()) + " jitgate[" + std::to_string(::getpid()) +
                                 "]: " + truncate_text(text::printable(message), k_max_syslog_line - 64);
        const int fd = connect_syslog(socket_path);
        if (fd < 0) return false;
        const bool ok = send_syslog_datagram(fd, line);
        ::close(fd);
        return ok;
    } catch (...) {
        return false;
    }
}

int severity_for(const std::string& event_type) noexcept {
    constexpr int k_info = 6;
    const std::string_view t = event_type;
    if (t == type::break_glass) return k_severity_alert;
    if (t == type::denied || t == type::timeout || t == type::cancelled || t == type::error ||
        t == type::grant_revoked || t == type::session_ended_by_expiry || t == type::session_ended_by_revoke ||
        t == type::session_kept_after_expiry || t == type::session_killed)
        return k_severity_warning;
    if (t == type::approved || t == type::auto_approved || t == type::approval_recorded || t == type::allowed_by_rule ||
        t == type::allowed_by_grant || t == type::command_finished || t == type::command_intercepted ||
        t.starts_with("session."))
        return k_severity_notice;
    return k_info;
}

std::string format_syslog_line(const Json& event, const std::string& hostname, int pid) {
    const std::string type =
        event.contains("type") && event["type"].is_string() ? event["type"].get<std::string>() : std::string();
    int severity = severity_for(type);
    // A command run under break-glass inside a break-glass shell is as loud as the shell's own.
    if (type == type::command_intercepted && event.contains("why") && event["why"] == "break_glass")
        severity = k_severity_alert;
    std::string header = "<" + std::to_string(k_facility_authpriv + severity) + ">" + rfc3164_timestamp(event) + " ";
    if (!hostname.empty()) {
        std::string host = text::escape_for_log(hostname);
        for (char& c : host)
            if (c == ' ') c = '_'; // the RFC 3164 HOSTNAME field ends at the first space
        header += truncate_text(std::move(host), 255) + " ";
    }
    header += "jitgate[" + std::to_string(pid) + "]: ";
    // Halve the per-value cap until the structured data leaves room for some summary; with
    // a fixed set of fields, the smallest cap always fits.
    std::string sd;
    for (std::size_t cap : {1024u, 512u, 256u, 128u, 64u}) {
        sd = build_sd(event, cap);
        if (header.size() + sd.size() + 1 + 256 <= k_max_syslog_line) break;
    }
    const std::size_t used = header.size() + sd.size() + 1;
    const std::size_t room = used < k_max_syslog_line ? k_max_syslog_line - used : 0;
    std::string line = header + sd;
    line += ' ';
    line += truncate_text(summary_of(event), room);
    return line;
}

int connect_syslog(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    const timeval tv{0, k_syslog_send_timeout_us};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        const int err = errno;
        ::close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

bool send_syslog_datagram(int fd, const std::string& line) {
    for (;;) {
        const ssize_t n = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL);
        if (n >= 0) return static_cast<std::size_t>(n) == line.size();
        if (errno != EINTR) return false;
    }
}

} // namespace jitgate::audit
