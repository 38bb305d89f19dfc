// daemon/audit/audit.cpp — the hash-chained spool, its verifier, and the syslog client.
//
// The spool is the durable record: a line is written and fdatasync'ed before record()
// returns (or before sync() returns, with group commit), so a decision is never handed out
// for an event that is not on disk. Syslog is a best-effort copy for operators and SIEMs; its
// failures are counted, never fatal. The Shipper (shipper.cpp) takes durable lines to the
// central store. docs/audit.md describes the event schema, the chain and the syslog line.
#include "daemon/audit/audit.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <initializer_list>
#include <string_view>
#include <system_error>
#include <utility>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"

namespace jitgate::audit {
namespace {

// A datagram to /dev/log above 8 KiB may be cut or dropped by the receiver (rsyslog's default
// maxMessageSize is 8k); keep a margin for what the receiver adds.
constexpr std::size_t k_max_syslog_line = 8000;
constexpr int k_facility_authpriv = 10 << 3;
constexpr const char* k_sd_id = "jitgate@32473";
constexpr std::int64_t k_syslog_complaint_interval_ms = 10'000;
// A stuck syslog daemon must not stall the event loop for long; the spool has the event.
constexpr long k_syslog_send_timeout_us = 250'000;
constexpr std::size_t k_max_problems = 100;
constexpr std::size_t k_scan_chunk = 64 * 1024;
constexpr std::size_t k_hash_hex_size = 64;

// Scalar fields shown in the syslog structured data, in this order.
constexpr std::array k_sd_fields = {
    "type",        "seq",       "event_id",    "user",        "uid",              "kind",
    "service",     "command",   "argv",        "runas",       "tty",              "remote_host",
    "reason",      "break_glass_reason",       "ticket",      "request_id",       "grant_id",
    "approvers",   "approvals_needed",         "approver",    "denied_by",        "deny_reason",
    "rule",        "scope",     "expires",     "exit_status", "signal",           "duration_ms",
    "outcome",     "message",
};

std::string errno_text(int err) {
    return std::system_category().message(err);
}

std::string parent_dir(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

bool is_hash_hex(const Json& j) {
    if (!j.is_string()) return false;
    const auto& s = j.get_ref<const std::string&>();
    if (s.size() != k_hash_hex_size) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

// Replaces what dump() would reject or not read back as written: strings and keys that are
// not valid UTF-8 (shown escaped), discarded values and non-finite numbers (become null).
void sanitize(Json& j) {
    if (j.is_string()) {
        auto& s = j.get_ref<std::string&>();
        if (!text::is_valid_utf8(s)) s = text::escape_for_log(s);
    } else if (j.is_discarded()) {
        j = nullptr;
    } else if (j.is_number_float()) {
        if (!std::isfinite(j.get<double>())) j = nullptr;
    } else if (j.is_array()) {
        for (auto& item : j) sanitize(item);
    } else if (j.is_object()) {
        bool bad_key = false;
        for (auto& [key, value] : j.items()) {
            if (!text::is_valid_utf8(key)) bad_key = true;
            sanitize(value);
        }
        if (bad_key) {
            Json fixed = Json::object();
            for (auto& [key, value] : j.items())
                fixed[text::is_valid_utf8(key) ? key : text::escape_for_log(key)] = std::move(value);
            j = std::move(fixed);
        }
    }
}

std::string new_uuid_v4() {
    std::array<unsigned char, 16> b{};
    std::size_t got = 0;
    while (got < b.size()) {
        const ssize_t n = ::getrandom(b.data() + got, b.size() - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw Error(ErrorCode::internal, "audit", "getrandom failed: " + errno_text(errno));
        }
        got += static_cast<std::size_t>(n);
    }
    b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40); // version 4
    b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80); // RFC 4122 variant
    static constexpr char k_hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
        out += k_hex[b[i] >> 4];
        out += k_hex[b[i] & 0x0F];
    }
    return out;
}


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
    static constexpr std::array<const char*, 12> k_months = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::array<char, 32> buf{};
    std::snprintf(buf.data(), buf.size(), "%s %2d %02d:%02d:%02d",
                  k_months[static_cast<std::size_t>(tm.tm_mon) % 12], tm.tm_mday, tm.tm_hour,
                  tm.tm_min, tm.tm_sec);
    return buf.data();
}

std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// Writes all of `data` with as many write() calls as it takes. Returns 0 or the errno of the
// failure; `written` says how much reached the file either way.
int write_all(int fd, std::string_view data, std::size_t& written) {
    written = 0;
    while (written < data.size()) {
        const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (n == 0) return EIO;
        written += static_cast<std::size_t>(n);
    }
    return 0;
}

void read_exact_at(int fd, char* buf, std::size_t len, off_t offset, const std::string& path) {
    std::size_t done = 0;
    while (done < len) {
        const ssize_t n = ::pread(fd, buf + done, len - done, offset + static_cast<off_t>(done));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw Error(ErrorCode::internal, path, "cannot read the audit spool file: " + errno_text(errno));
        }
        if (n == 0) throw Error(ErrorCode::internal, path, "the audit spool file shrank while being read");
        done += static_cast<std::size_t>(n);
    }
}

// Offset just past the last '\n' in [0, end), or 0 if there is none. Scans backwards so a
// large journal costs one chunk at start-up, not a full read.
off_t after_last_newline(int fd, off_t end, const std::string& path) {
    std::string buf(k_scan_chunk, '\0');
    const auto chunk = static_cast<off_t>(k_scan_chunk);
    while (end > 0) {
        const off_t start = end > chunk ? end - chunk : 0;
        const auto len = static_cast<std::size_t>(end - start);
        read_exact_at(fd, buf.data(), len, start, path);
        for (std::size_t i = len; i > 0; --i)
            if (buf[i - 1] == '\n') return start + static_cast<off_t>(i);
        end = start;
    }
    return 0;
}

std::uint64_t count_newlines(int fd, off_t end, const std::string& path) {
    std::string buf(k_scan_chunk, '\0');
    std::uint64_t count = 0;
    for (off_t pos = 0; pos < end;) {
        const auto len = static_cast<std::size_t>(std::min<off_t>(end - pos, static_cast<off_t>(k_scan_chunk)));
        read_exact_at(fd, buf.data(), len, pos, path);
        for (std::size_t i = 0; i < len; ++i)
            if (buf[i] == '\n') ++count;
        pos += static_cast<off_t>(len);
    }
    return count;
}

// Makes a directory entry (a new file) durable. Returns 0 or the errno of the failure.
int fsync_dir(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    return rc == 0 ? 0 : err;
}

// Result of checking one journal line (without its '\n').
struct LineCheck {
    Json event;          // the parsed object, when it parsed
    bool stamped = false; // it has seq, prev_hash and hash of the right types (chain usable)
    std::string problem; // empty: the line is exactly a valid, correctly hashed event
};

LineCheck check_line(const std::string& line) {
    LineCheck r;
    try {
        r.event = Json::parse(line);
    } catch (const Json::parse_error& e) {
        r.problem = std::string("not valid JSON (") + e.what() + ")";
        return r;
    }
    if (!r.event.is_object()) {
        r.problem = "not a JSON object";
        return r;
    }
    const Json& e = r.event;
    const auto has_string = [&](const char* key) { return e.contains(key) && e[key].is_string(); };
    r.stamped = e.contains("seq") && e["seq"].is_number_unsigned() && e.contains("hash") &&
                is_hash_hex(e["hash"]) && e.contains("prev_hash") && is_hash_hex(e["prev_hash"]);
    if (!r.stamped) {
        r.problem = "missing or malformed seq, prev_hash or hash";
        return r;
    }
    if (!has_string("type") || e["type"].get_ref<const std::string&>().empty() ||
        !has_string("event_id") || !has_string("time") || !has_string("host")) {
        r.problem = "missing or malformed type, event_id, time or host";
        return r;
    }
    if (e.dump(-1, ' ', false, Json::error_handler_t::replace) != line) {
        r.problem = "not in canonical form (the line was edited)";
        return r;
    }
    Json without_hash = e;
    without_hash.erase("hash");
    if (sha256_hex(canonical_bytes(without_hash)) != e["hash"].get_ref<const std::string&>())
        r.problem = "hash does not match the event (the line was edited)";
    return r;
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

// Printable text of one field for syslog: escaped, single line; "" if absent or null.
std::string field_text(const Json& event, const char* key) {
    const auto it = event.find(key);
    if (it == event.end() || it->is_null()) return {};
    const Json& v = *it;
    if (v.is_string()) return text::escape_for_log(v.get_ref<const std::string&>());
    if (v.is_number() || v.is_boolean()) return v.dump();
    if (std::string_view(key) == "argv" && v.is_array()) {
        try {
            return text::display_argv(text::argv_from_json(v)); // strings or {"b64": ...}
        } catch (const std::exception&) {
            return escaped_dump(v);
        }
    }
    if (std::string_view(key) == "approvers" && v.is_array()) {
        std::string out;
        for (const auto& a : v) {
            if (!out.empty()) out += ',';
            out += a.is_string() ? text::escape_for_log(a.get_ref<const std::string&>()) : escaped_dump(a);
        }
        return out;
    }
    return escaped_dump(v);
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
        std::string value = field_text(event, key);
        if (value.empty() && !(event.contains(key) && event[key].is_string())) continue;
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
    } else if (type == type::command_finished) {
        phrase = !f("signal").empty() ? "killed by signal " + f("signal")
                                      : "finished with exit status " + (f("exit_status").empty() ? "?" : f("exit_status"));
        if (!f("duration_ms").empty()) phrase += " after " + f("duration_ms") + " ms";
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

// Datagram client for /dev/log. Returns a connected socket or -1 with errno set.
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

bool send_datagram(int fd, const std::string& line) {
    for (;;) {
        const ssize_t n = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL);
        if (n >= 0) return static_cast<std::size_t>(n) == line.size();
        if (errno != EINTR) return false;
    }
}


// `s` as is when it is already printable (valid UTF-8, no control character), else escaped as
// a whole. For messages built from pieces that were escaped already.
std::string printable(std::string_view s) {
    bool plain = text::is_valid_utf8(s);
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F) plain = false;
    }
    return plain ? std::string(s) : text::escape_for_log(s);
}

// Closes a descriptor on every path out of a scope.
struct FdCloser {
    int fd = -1;
    explicit FdCloser(int f) noexcept : fd(f) {}
    ~FdCloser() {
        if (fd >= 0) ::close(fd);
    }
    FdCloser(const FdCloser&) = delete;
    FdCloser& operator=(const FdCloser&) = delete;
};

std::string join_path(const std::string& dir, const std::string& name) {
    if (!dir.empty() && dir.back() == '/') return dir + name;
    return dir + "/" + name;
}

std::string base_name(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string plural(std::uint64_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::uint64_t file_size(int fd, const std::string& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw Error(ErrorCode::internal, path, "cannot stat: " + errno_text(errno));
    return static_cast<std::uint64_t>(st.st_size);
}

// The last line of a closed segment (without its '\n'), or nullopt for an empty file. A closed
// segment must end with '\n': only the newest one can have a torn tail.
std::optional<std::string> last_line_of(const std::string& path) {
    FdCloser fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.fd < 0) throw Error(ErrorCode::internal, path, "cannot open the audit segment: " + errno_text(errno));
    const auto size = static_cast<off_t>(file_size(fd.fd, path));
    if (size == 0) return std::nullopt;
    char last = 0;
    read_exact_at(fd.fd, &last, 1, size - 1, path);
    if (last != '\n')
        throw Error(ErrorCode::internal, path,
                    "the audit segment does not end with a newline, but it is not the newest one (only the newest "
                    "can be cut short by a crash); run `jitgatectl audit verify`");
    const off_t start = after_last_newline(fd.fd, size - 1, path);
    std::string line(static_cast<std::size_t>(size - 1 - start), '\0');
    read_exact_at(fd.fd, line.data(), line.size(), start, path);
    return line;
}

std::uint64_t count_lines(const std::string& path) {
    FdCloser fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.fd < 0) return 0;
    try {
        return count_newlines(fd.fd, static_cast<off_t>(file_size(fd.fd, path)), path);
    } catch (const Error&) {
        return 0;
    }
}

// Why `c` does not continue the chain after (prev_seq, prev_hash); empty if it does.
std::string link_problem(const LineCheck& c, std::uint64_t prev_seq, const std::string& prev_hash) {
    if (!c.problem.empty()) return c.problem;
    const auto seq = c.event["seq"].get<std::uint64_t>();
    if (seq != prev_seq + 1) return "seq " + std::to_string(seq) + " does not follow " + std::to_string(prev_seq);
    if (c.event["prev_hash"].get_ref<const std::string&>() != prev_hash)
        return "prev_hash is not the hash of event " + std::to_string(prev_seq);
    return {};
}

// Copies the bytes [from, size) of `path` to "<path>.torn-<unix time>" (".N" added if that
// exists) and makes the copy durable before the segment is cut, so no byte is ever lost.
std::string quarantine_tail(const std::string& path, std::uint64_t from, std::uint64_t size) {
    std::string bytes(static_cast<std::size_t>(size - from), '\0');
    {
        FdCloser rfd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (rfd.fd < 0) throw Error(ErrorCode::internal, path, "cannot reopen the audit segment: " + errno_text(errno));
        read_exact_at(rfd.fd, bytes.data(), bytes.size(), static_cast<off_t>(from), path);
    }
    const std::string base = path + ".torn-" + std::to_string(std::time(nullptr));
    std::string qpath = base;
    int qfd = -1;
    for (int n = 1; qfd < 0; ++n) {
        qfd = ::open(qpath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (qfd >= 0) break;
        if (errno != EEXIST || n > 100)
            throw Error(ErrorCode::internal, qpath, "cannot create the quarantine file for a torn tail: " + errno_text(errno));
        qpath = base + "." + std::to_string(n);
    }
    std::size_t written = 0;
    int err = write_all(qfd, bytes, written);
    if (err == 0 && ::fsync(qfd) != 0) err = errno;
    ::close(qfd);
    if (err != 0) throw Error(ErrorCode::internal, qpath, "cannot write the torn tail: " + errno_text(err));
    if (const int derr = fsync_dir(parent_dir(qpath)); derr != 0)
        throw Error(ErrorCode::internal, qpath, "cannot sync the quarantine file's directory: " + errno_text(derr));
    return qpath;
}

// Reads a small JSON state file (anchor.json, shipped.json); nullopt if it does not exist.
std::optional<Json> read_state_file(const std::string& dir, const char* name) {
    const std::string path = join_path(dir, name);
    FdCloser fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.fd < 0) {
        if (errno == ENOENT) return std::nullopt;
        throw Error(ErrorCode::internal, path, "cannot open: " + errno_text(errno));
    }
    const std::uint64_t size = file_size(fd.fd, path);
    if (size > 64 * 1024) throw Error(ErrorCode::internal, path, "too large for a spool state file");
    std::string content(static_cast<std::size_t>(size), '\0');
    read_exact_at(fd.fd, content.data(), content.size(), 0, path);
    Json j = Json::parse(content, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw Error(ErrorCode::internal, path, "not a JSON object");
    return j;
}

constexpr std::int64_t k_full_alert_interval_ms = 5 * 60 * 1000;
constexpr std::int64_t k_rollover_complaint_interval_ms = 60 * 1000;

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
                                 "]: " + truncate_text(printable(message), k_max_syslog_line - 64);
        const int fd = connect_syslog(socket_path);
        if (fd < 0) return false;
        const bool ok = send_datagram(fd, line);
        ::close(fd);
        return ok;
    } catch (...) {
        return false;
    }
}

namespace spool {

std::string segment_name(std::uint64_t first_seq) {
    std::array<char, 40> buf{};
    std::snprintf(buf.data(), buf.size(), "seg-%020llu.jsonl", static_cast<unsigned long long>(first_seq));
    return buf.data();
}

std::optional<std::uint64_t> parse_segment_name(std::string_view name) {
    constexpr std::string_view k_prefix = "seg-", k_suffix = ".jsonl";
    constexpr std::size_t k_digits = 20;
    if (name.size() != k_prefix.size() + k_digits + k_suffix.size() || !name.starts_with(k_prefix) ||
        !name.ends_with(k_suffix))
        return std::nullopt;
    std::uint64_t value = 0;
    for (char c : name.substr(k_prefix.size(), k_digits)) {
        if (c < '0' || c > '9') return std::nullopt;
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
        value = value * 10 + digit;
    }
    return value;
}

namespace {

// Calls fn(name) for each entry of `dir` (not "." or ".."). Throws Error if it cannot be read.
template <typename Fn>
void for_each_entry(const std::string& dir, Fn fn) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) throw Error(ErrorCode::internal, dir, "cannot read the audit spool directory: " + errno_text(errno));
    try {
        errno = 0;
        while (const dirent* ent = ::readdir(d)) {
            const std::string name = ent->d_name;
            if (name != "." && name != "..") fn(name);
            errno = 0;
        }
        if (errno != 0) throw Error(ErrorCode::internal, dir, "cannot read the audit spool directory: " + errno_text(errno));
    } catch (...) {
        ::closedir(d);
        throw;
    }
    ::closedir(d);
}

} // namespace

std::vector<Segment> list_segments(const std::string& dir) {
    std::vector<Segment> out;
    for_each_entry(dir, [&](const std::string& name) {
        const auto seq = parse_segment_name(name);
        if (!seq) return;
        const std::string path = join_path(dir, name);
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) {
            if (errno == ENOENT) return; // deleted while listing (shipped)
            throw Error(ErrorCode::internal, path, "cannot stat the audit segment: " + errno_text(errno));
        }
        if (!S_ISREG(st.st_mode)) throw Error(ErrorCode::internal, path, "an audit segment is not a regular file");
        out.push_back(Segment{path, *seq, static_cast<std::uint64_t>(st.st_size)});
    });
    std::sort(out.begin(), out.end(), [](const Segment& a, const Segment& b) { return a.first_seq < b.first_seq; });
    return out;
}

std::vector<std::string> list_torn(const std::string& dir) {
    std::vector<std::string> out;
    try {
        for_each_entry(dir, [&](const std::string& name) {
            if (name.starts_with("seg-") && name.find(".jsonl.torn-") != std::string::npos)
                out.push_back(join_path(dir, name));
        });
    } catch (const Error&) {
        return {};
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::optional<Anchor> read_anchor(const std::string& dir) {
    const auto j = read_state_file(dir, k_anchor_file);
    if (!j) return std::nullopt;
    const auto seq = j->find("seq");
    const auto hash = j->find("hash");
    if (seq == j->end() || !seq->is_number_unsigned() || hash == j->end() || !is_hash_hex(*hash))
        throw Error(ErrorCode::internal, join_path(dir, k_anchor_file), "needs \"seq\" (unsigned) and \"hash\" (64 hex digits)");
    Anchor a;
    a.seq = seq->get<std::uint64_t>();
    a.hash = hash->get<std::string>();
    if (const auto id = j->find("event_id"); id != j->end() && id->is_string()) a.event_id = id->get<std::string>();
    return a;
}

void write_anchor(const std::string& dir, const Anchor& anchor) {
    const Json j = {{"seq", anchor.seq}, {"hash", anchor.hash}, {"event_id", anchor.event_id}};
    write_file_atomic(dir, k_anchor_file, j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n");
}

std::optional<Shipped> read_shipped(const std::string& dir) {
    const auto j = read_state_file(dir, k_shipped_file);
    if (!j) return std::nullopt;
    const auto seq = j->find("seq");
    if (seq == j->end() || !seq->is_number_unsigned())
        throw Error(ErrorCode::internal, join_path(dir, k_shipped_file), "needs \"seq\" (unsigned)");
    Shipped s;
    s.seq = seq->get<std::uint64_t>();
    if (const auto t = j->find("time"); t != j->end() && t->is_string()) s.time = t->get<std::string>();
    return s;
}

void write_shipped(const std::string& dir, const Shipped& shipped) {
    const Json j = {{"seq", shipped.seq}, {"time", shipped.time}};
    write_file_atomic(dir, k_shipped_file, j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n");
}

std::optional<std::uint64_t> read_sent(const std::string& dir) {
    const auto j = read_state_file(dir, k_sent_file);
    if (!j) return std::nullopt;
    const auto seq = j->find("seq");
    if (seq == j->end() || !seq->is_number_unsigned())
        throw Error(ErrorCode::internal, join_path(dir, k_sent_file), "needs \"seq\" (unsigned)");
    return seq->get<std::uint64_t>();
}

void write_sent(const std::string& dir, std::uint64_t seq) {
    write_file_atomic(dir, k_sent_file, Json{{"seq", seq}}.dump() + "\n");
}

void write_file_atomic(const std::string& dir, const std::string& name, const std::string& content) {
    const std::string path = join_path(dir, name);
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) throw Error(ErrorCode::internal, tmp, "cannot create: " + errno_text(errno));
    std::size_t written = 0;
    int err = write_all(fd, content, written);
    if (err == 0 && ::fsync(fd) != 0) err = errno;
    ::close(fd);
    if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
    if (err != 0) {
        ::unlink(tmp.c_str());
        throw Error(ErrorCode::internal, path, "cannot write: " + errno_text(err));
    }
    if (const int derr = fsync_dir(dir); derr != 0)
        throw Error(ErrorCode::internal, path, "cannot sync its directory: " + errno_text(derr));
}

std::size_t count_deletable(const std::vector<Segment>& segments, std::uint64_t shipped_seq) noexcept {
    std::size_t n = 0;
    // Segment i holds seq first_seq(i) .. first_seq(i + 1) - 1; the newest has no successor.
    for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
        const std::uint64_t next_first = segments[i + 1].first_seq;
        if (next_first == 0 || next_first - 1 > shipped_seq) break;
        n = i + 1;
    }
    return n;
}

DeleteResult delete_shipped(const std::string& dir, const std::vector<Segment>& segments, std::uint64_t shipped_seq) {
    DeleteResult r;
    const std::size_t n = count_deletable(segments, shipped_seq);
    if (n == 0) return r;
    // SECURITY NOTE: the anchor must name the last deleted event before anything is deleted,
    // or verify could no longer tell a shipped-and-deleted segment from a removed one.
    const std::uint64_t last_seq = segments[n].first_seq - 1;
    for (std::size_t i = n; i > 0; --i) {
        const Segment& seg = segments[i - 1];
        const auto line = last_line_of(seg.path);
        if (!line) continue; // an empty segment holds no event; the one before has the last
        const LineCheck c = check_line(*line);
        if (!c.problem.empty() || c.event["seq"].get<std::uint64_t>() != last_seq)
            throw Error(ErrorCode::internal, seg.path,
                        "its last line is not event " + std::to_string(last_seq) + " (" +
                            (c.problem.empty() ? "seq " + c.event["seq"].dump() : c.problem) +
                            "); not deleting shipped segments, run `jitgatectl audit verify`");
        write_anchor(dir, Anchor{last_seq, c.event["hash"].get<std::string>(), c.event.value("event_id", "")});
        break;
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (::unlink(segments[i].path.c_str()) != 0 && errno != ENOENT) {
            r.problem = "cannot delete the shipped audit segment " + segments[i].path + ": " + errno_text(errno);
            break;
        }
        r.deleted.push_back(segments[i]);
    }
    if (const int err = fsync_dir(dir); err != 0 && r.problem.empty())
        r.problem = "cannot sync the audit spool directory " + dir + ": " + errno_text(err);
    return r;
}

LineReader::LineReader(const std::string& path, std::uint64_t offset) : m_path(path), m_buf_offset(offset) {
    m_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (m_fd < 0) throw Error(ErrorCode::internal, path, "cannot open: " + errno_text(errno));
}

LineReader::~LineReader() {
    if (m_fd >= 0) ::close(m_fd);
}

bool LineReader::next(Line& line) {
    for (;;) {
        const auto nl = m_buf.find('\n', m_pos);
        if (nl != std::string::npos) {
            line.text.assign(m_buf, m_pos, nl - m_pos);
            line.offset = m_buf_offset + m_pos;
            line.complete = true;
            m_pos = nl + 1;
            return true;
        }
        if (m_eof) {
            if (m_pos >= m_buf.size()) return false;
            line.text.assign(m_buf, m_pos, std::string::npos);
            line.offset = m_buf_offset + m_pos;
            line.complete = false;
            m_pos = m_buf.size();
            return true;
        }
        // Drop what was consumed, then read the next chunk after what is buffered.
        m_buf.erase(0, m_pos);
        m_buf_offset += m_pos;
        m_pos = 0;
        const std::size_t have = m_buf.size();
        m_buf.resize(have + k_scan_chunk);
        ssize_t n;
        do {
            n = ::pread(m_fd, m_buf.data() + have, k_scan_chunk, static_cast<off_t>(m_buf_offset + have));
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            m_buf.resize(have);
            throw Error(ErrorCode::internal, m_path, "cannot read: " + errno_text(errno));
        }
        m_buf.resize(have + static_cast<std::size_t>(n));
        if (n == 0) m_eof = true;
    }
}

std::vector<std::string> tail_lines(const std::string& dir, std::size_t n) {
    std::vector<std::string> out;
    if (n == 0) return out;
    const auto segments = list_segments(dir);
    for (auto it = segments.rbegin(); it != segments.rend() && out.size() < n; ++it) {
        std::deque<std::string> lines;
        LineReader reader(it->path);
        LineReader::Line line;
        while (reader.next(line)) {
            if (!line.complete) break;
            lines.push_back(std::move(line.text));
            if (lines.size() > n) lines.pop_front();
        }
        const std::size_t take = std::min(lines.size(), n - out.size());
        out.insert(out.begin(), std::make_move_iterator(lines.end() - static_cast<std::ptrdiff_t>(take)),
                   std::make_move_iterator(lines.end()));
    }
    return out;
}

} // namespace spool

int severity_for(const std::string& event_type) noexcept {
    constexpr int k_info = 6;
    const std::string_view t = event_type;
    if (t == type::break_glass) return k_severity_alert;
    if (t == type::denied || t == type::timeout || t == type::cancelled || t == type::error ||
        t == type::grant_revoked)
        return k_severity_warning;
    if (t == type::approved || t == type::approval_recorded || t == type::allowed_by_rule ||
        t == type::allowed_by_grant || t == type::command_finished || t.starts_with("session."))
        return k_severity_notice;
    return k_info;
}


std::string format_syslog_line(const Json& event, const std::string& hostname, int pid) {
    const std::string type = event.contains("type") && event["type"].is_string()
                                 ? event["type"].get<std::string>()
                                 : std::string();
    std::string header = "<" + std::to_string(k_facility_authpriv + severity_for(type)) + ">" +
                         rfc3164_timestamp(event) + " ";
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

Auditor::Auditor(Options options) : m_options(std::move(options)) {
    if (m_options.spool_dir.empty()) throw Error(ErrorCode::bad_input, "audit", "no audit spool directory configured");
    if (m_options.segment_bytes == 0 || m_options.max_bytes == 0)
        throw Error(ErrorCode::bad_input, "audit", "segment_bytes and max_bytes of the audit spool must be positive");
    if (m_options.host.empty()) {
        std::array<char, 256> name{};
        if (::gethostname(name.data(), name.size() - 1) == 0) m_options.host = name.data();
    }
    if (!text::is_valid_utf8(m_options.host)) m_options.host = text::escape_for_log(m_options.host);
    try {
        open_spool();
    } catch (...) {
        if (m_segment_fd >= 0) ::close(m_segment_fd);
        if (m_syslog_fd >= 0) ::close(m_syslog_fd);
        if (m_dir_fd >= 0) ::close(m_dir_fd);
        m_segment_fd = m_syslog_fd = m_dir_fd = -1;
        throw;
    }
}

Auditor::~Auditor() {
    if (m_segment_fd >= 0) ::close(m_segment_fd);
    if (m_syslog_fd >= 0) ::close(m_syslog_fd);
    if (m_dir_fd >= 0) ::close(m_dir_fd); // releases the lock
}

void Auditor::open_spool() {
    const std::string& dir = m_options.spool_dir;
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        const int err = errno;
        throw Error(ErrorCode::internal, dir,
                    err == ENOENT ? "the audit spool directory does not exist (jitgated does not create it; the "
                                    "package's tmpfiles.d entry should)"
                                  : "cannot access the audit spool directory: " + errno_text(err));
    }
    if (!S_ISDIR(st.st_mode)) throw Error(ErrorCode::internal, dir, "the audit spool is not a directory");
    m_dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (m_dir_fd < 0) throw Error(ErrorCode::internal, dir, "cannot open the audit spool directory: " + errno_text(errno));
    // SECURITY NOTE: two writers would fork the chain; the second one refuses to start.
    if (::flock(m_dir_fd, LOCK_EX | LOCK_NB) != 0)
        throw Error(ErrorCode::internal, dir,
                    errno == EWOULDBLOCK ? "the audit spool is locked by another process (is another jitgated running?)"
                                         : "cannot lock the audit spool: " + errno_text(errno));

    std::vector<spool::Segment> segments = spool::list_segments(dir);
    // An unreadable anchor leaves no way to tell where the chain stands: refuse to start.
    const auto anchor = spool::read_anchor(dir);
    m_seq = anchor ? anchor->seq : 0;
    m_prev_hash = anchor ? anchor->hash : k_genesis_hash;

    // Empty segments at the end hold nothing: a crash right after a new segment was created.
    std::vector<spool::Segment> empty_tail;
    while (!segments.empty() && segments.back().bytes == 0) {
        empty_tail.insert(empty_tail.begin(), segments.back());
        segments.pop_back();
    }

    // The chain before the newest segment with lines: the last line of the one before it.
    for (std::size_t i = segments.size(); i > 1; --i) {
        const spool::Segment& prev = segments[i - 2];
        const auto line = last_line_of(prev.path);
        if (!line) continue;
        const LineCheck c = check_line(*line);
        if (!c.problem.empty())
            throw Error(ErrorCode::internal, prev.path + ":" + std::to_string(count_lines(prev.path)),
                        "the last line of an audit segment is not a valid event (" + c.problem +
                            "); run `jitgatectl audit verify " + dir + "`");
        m_seq = c.event["seq"].get<std::uint64_t>();
        m_prev_hash = c.event["hash"].get<std::string>();
        break;
    }

    // The newest segment is read in full: each line must continue the chain, except a torn
    // tail left by a crash mid-write, which is moved aside.
    std::string torn_file, torn_why;
    std::uint64_t torn_bytes = 0;
    if (!segments.empty()) {
        const spool::Segment& seg = segments.back();
        spool::LineReader reader(seg.path);
        spool::LineReader::Line line;
        std::uint64_t line_no = 0;
        std::uint64_t bad_line = 0; // an invalid complete line: only allowed as the last one
        std::optional<std::uint64_t> torn_from;
        while (reader.next(line)) {
            ++line_no;
            if (!line.complete) {
                if (!torn_from) {
                    torn_from = line.offset;
                    torn_why = "a torn line (" + plural(line.text.size(), "byte", "bytes") + " without a newline)";
                }
                break;
            }
            if (bad_line != 0)
                throw Error(ErrorCode::internal, seg.path + ":" + std::to_string(bad_line),
                            "this line is not a valid event continuing the chain (" + torn_why +
                                "), but more lines follow it; refusing to start rather than fork the chain. Run "
                                "`jitgatectl audit verify " + dir + "`, then move the spool aside (keep it: it is "
                                "evidence) to start a new chain");
            const LineCheck c = check_line(line.text);
            std::string problem = link_problem(c, m_seq, m_prev_hash);
            if (problem.empty() && line_no == 1 && c.event["seq"].get<std::uint64_t>() != seg.first_seq)
                problem = "seq " + c.event["seq"].dump() + ", but the segment's name says it starts at " +
                          std::to_string(seg.first_seq);
            if (!problem.empty()) {
                bad_line = line_no;
                torn_from = line.offset;
                torn_why = problem;
                continue;
            }
            m_seq = c.event["seq"].get<std::uint64_t>();
            m_prev_hash = c.event["hash"].get<std::string>();
        }
        if (bad_line != 0) torn_why = "a last line that is not a valid event continuing the chain (" + torn_why + ")";
        if (torn_from) {
            FdCloser wfd(::open(seg.path.c_str(), O_WRONLY | O_CLOEXEC));
            if (wfd.fd < 0) throw Error(ErrorCode::internal, seg.path, "cannot open the audit segment: " + errno_text(errno));
            const std::uint64_t size = file_size(wfd.fd, seg.path);
            torn_bytes = size - *torn_from;
            torn_file = quarantine_tail(seg.path, *torn_from, size);
            if (::ftruncate(wfd.fd, static_cast<off_t>(*torn_from)) != 0 || ::fsync(wfd.fd) != 0)
                throw Error(ErrorCode::internal, seg.path, "cannot cut the torn tail off the audit segment: " + errno_text(errno));
        }
    }

    // SECURITY NOTE: a spool that ends before the seq the central store acknowledged was cut
    // (restored from an old backup or snapshot, truncated, segments deleted by hand). Issuing
    // those seq numbers again would hand the store two different events with one (host, seq).
    // The daemon never reuses one: it continues after the acknowledged seq, in a new segment,
    // and records the cut as its first `error` event (the chain shows the gap; `audit verify`
    // flags it). It does not refuse to start: the store already holds the lost events, and a
    // stopped daemon would deny every privileged action on the host without recording anything.
    std::uint64_t cut_last = m_seq, cut_acked = 0, cut_sent = 0;
    try {
        if (const auto shipped = spool::read_shipped(dir)) cut_acked = shipped->seq;
    } catch (const Error& e) {
        // The shipper reports it and resends from the anchor; sent.json still bounds the seq.
        std::fprintf(stderr, "jitgated: audit: %s; cannot check the spool against the store's acknowledgement\n",
                     text::escape_for_log(e.what()).c_str());
    }
    // SECURITY NOTE: unreadable, sent.json would leave no bound on what the store may hold:
    // read_sent throws and the daemon refuses to start rather than risk a reused seq.
    if (const auto sent = spool::read_sent(dir)) cut_sent = *sent;
    const std::uint64_t high_water = std::max(cut_acked, cut_sent);
    const bool cut = high_water > m_seq;
    if (cut) m_seq = high_water;

    // Continue in the segment whose lines start at m_seq + 1 if there is one (an empty one
    // left by a crash), else in the newest segment with lines, else in a new one.
    std::string current;
    for (const auto& seg : empty_tail) {
        if (current.empty() && seg.first_seq == m_seq + 1) current = seg.path;
        else ::unlink(seg.path.c_str());
    }
    if (current.empty() && !segments.empty() && !cut) {
        const spool::Segment& seg = segments.back();
        struct stat sst {};
        if (::stat(seg.path.c_str(), &sst) == 0 && (sst.st_size > 0 || seg.first_seq == m_seq + 1)) current = seg.path;
        else ::unlink(seg.path.c_str()); // emptied by the quarantine and named for another seq
    }
    const bool fresh = current.empty();
    if (fresh) current = join_path(dir, spool::segment_name(m_seq + 1));
    m_segment_fd = ::open(current.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | (fresh ? O_CREAT | O_EXCL : 0), 0640);
    if (m_segment_fd < 0) throw Error(ErrorCode::internal, current, "cannot open the audit segment: " + errno_text(errno));
    struct stat sst {};
    if (::fstat(m_segment_fd, &sst) != 0 || !S_ISREG(sst.st_mode))
        throw Error(ErrorCode::internal, current, "the audit segment is not a regular file");
    m_current_bytes = static_cast<std::uint64_t>(sst.st_size);
    // What a killed daemon left in the page cache is made durable now, and so is a new file's
    // directory entry: from here on everything on disk counts as durable.
    if (::fdatasync(m_segment_fd) != 0)
        throw Error(ErrorCode::internal, current, "cannot make the audit segment durable: " + errno_text(errno));
    if (::fsync(m_dir_fd) != 0)
        throw Error(ErrorCode::internal, dir, "cannot sync the audit spool directory: " + errno_text(errno));

    m_segments = spool::list_segments(dir);
    std::uint64_t total = 0;
    for (const auto& seg : m_segments) total += seg.bytes;
    m_spool_bytes.store(total);
    m_published_seq.store(m_seq);
    m_durable_seq.store(m_seq, std::memory_order_release);

    if (cut) {
        const std::string message = "audit spool cut: it ends at seq " + std::to_string(cut_last) +
                                    ", but events up to seq " + std::to_string(high_water) +
                                    " already went to the central store (" +
                                    (cut_acked >= cut_sent ? "acknowledged, shipped.json" : "sent, sent.json") +
                                    "); events " + std::to_string(cut_last + 1) + ".." + std::to_string(high_water) +
                                    " are no longer on this host. Continuing at seq " + std::to_string(high_water + 1) +
                                    " so that no seq is issued twice; run `jitgatectl audit verify`";
        std::fprintf(stderr, "jitgated: %s (spool %s)\n", message.c_str(), text::escape_for_log(dir).c_str());
        if (m_options.syslog && !send_syslog_message(m_options.syslog_socket, k_severity_alert, message))
            m_syslog_failures.fetch_add(1, std::memory_order_relaxed);
        record(Json{{"type", type::error},
                    {"message", message},
                    {"spool_cut", true},
                    {"spool_last_seq", cut_last},
                    {"acknowledged_seq", cut_acked},
                    {"sent_seq", cut_sent}});
    }
    if (!torn_file.empty())
        record(Json{{"type", type::error},
                    {"message", "the newest audit segment ended with " + torn_why + " (a crash mid-write?); " +
                                    plural(torn_bytes, "byte", "bytes") + " moved to " + torn_file +
                                    " and cut from the segment"},
                    {"torn_file", torn_file},
                    {"torn_bytes", torn_bytes}});
    check_spool_full();
}

Json Auditor::record(Json event) {
    if (!event.is_object() || !event.contains("type") || !event["type"].is_string() ||
        event["type"].get_ref<const std::string&>().empty())
        throw Error(ErrorCode::bad_input, "audit", "an event needs a non-empty \"type\" string");
    const std::string& dir = m_options.spool_dir;
    if (m_broken)
        throw Error(ErrorCode::internal, dir,
                    "an earlier failed write could not be rolled back; restart jitgated to repair the audit spool");

    // Callers pass escaped text; this is the safety net that keeps dump() from throwing and
    // every line valid UTF-8.
    sanitize(event);
    event.erase("hash");
    event["event_id"] = new_uuid_v4();
    event["seq"] = m_seq + 1;
    event["time"] = rfc3339_now();
    event["host"] = m_options.host;
    event["prev_hash"] = m_prev_hash;
    std::string hash = sha256_hex(canonical_bytes(event));
    event["hash"] = hash;
    std::string line = canonical_bytes(event);
    line += '\n';

    struct stat st {};
    if (::fstat(m_segment_fd, &st) != 0)
        throw Error(ErrorCode::internal, dir, "cannot stat the audit segment: " + errno_text(errno));
    std::size_t written = 0;
    int err = write_all(m_segment_fd, line, written);
    if (err == 0 && !m_group_commit && ::fdatasync(m_segment_fd) != 0) err = errno;
    if (err != 0) {
        // Take back whatever reached the file, so the next line does not glue onto a partial
        // one and the chain does not hold an event that was never confirmed.
        if (written > 0 && ::ftruncate(m_segment_fd, st.st_size) != 0) m_broken = true;
        throw Error(ErrorCode::internal, dir, "cannot append to the audit spool: " + errno_text(err));
    }
    m_seq += 1;
    m_prev_hash = std::move(hash);
    m_published_seq.store(m_seq, std::memory_order_relaxed);
    m_current_bytes += line.size();
    {
        std::lock_guard<std::mutex> lock(m_segments_mutex);
        if (!m_segments.empty()) m_segments.back().bytes = m_current_bytes;
    }
    m_spool_bytes.fetch_add(line.size(), std::memory_order_relaxed);
    if (m_group_commit) {
        m_unsynced = true;
        if (m_options.syslog) m_syslog_queue.push_back(event);
    } else {
        if (m_options.syslog) send_syslog(event);
        after_durable();
    }
    check_spool_full();
    return event;
}

void Auditor::sync() {
    if (!m_unsynced) return;
    if (::fdatasync(m_segment_fd) != 0) {
        const int err = errno;
        // The batch's lines may or may not be on disk; nothing more may be built on them.
        m_broken = true;
        m_syslog_queue.clear();
        throw Error(ErrorCode::internal, m_options.spool_dir, "cannot make the audit spool durable: " + errno_text(err));
    }
    m_unsynced = false;
    for (const auto& e : m_syslog_queue) send_syslog(e);
    m_syslog_queue.clear();
    after_durable();
}

void Auditor::after_durable() {
    m_durable_seq.store(m_seq, std::memory_order_release);
    if (m_durable_hook) {
        try {
            m_durable_hook(m_seq);
        } catch (...) {
            // A wake-up that failed only delays shipping until the shipper's own timer.
        }
    }
    maybe_roll_over();
}

void Auditor::maybe_roll_over() {
    if (m_current_bytes < m_options.segment_bytes || m_broken) return;
    const std::uint64_t first = m_seq + 1;
    const std::string path = join_path(m_options.spool_dir, spool::segment_name(first));
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    int err = fd < 0 ? errno : 0;
    // The new file's directory entry must be durable before a line in it can count as durable.
    if (fd >= 0 && ::fsync(m_dir_fd) != 0) {
        err = errno;
        ::close(fd);
        ::unlink(path.c_str());
    }
    if (err != 0) {
        // Not fatal: the current segment just grows on; the next sync tries again.
        const std::int64_t now = steady_ms();
        if (m_last_rollover_complaint_ms < 0 || now - m_last_rollover_complaint_ms >= k_rollover_complaint_interval_ms) {
            m_last_rollover_complaint_ms = now;
            std::fprintf(stderr, "jitgated: audit: cannot start a new spool segment %s: %s (writing on in the current one)\n",
                         text::escape_for_log(path).c_str(), errno_text(err).c_str());
        }
        return;
    }
    ::close(m_segment_fd);
    m_segment_fd = fd;
    m_current_bytes = 0;
    std::lock_guard<std::mutex> lock(m_segments_mutex);
    m_segments.push_back(spool::Segment{path, first, 0});
}

void Auditor::check_spool_full() {
    const std::uint64_t bytes = m_spool_bytes.load(std::memory_order_relaxed);
    const std::uint64_t max = m_options.max_bytes;
    std::string message;
    int severity = k_severity_alert;
    {
        std::lock_guard<std::mutex> lock(m_full_mutex);
        const std::int64_t now = steady_ms();
        if (bytes >= max) {
            if (!m_full_alerted || now - m_last_full_alert_ms >= k_full_alert_interval_ms) {
                m_full_alerted = true;
                m_last_full_alert_ms = now;
                message = "audit spool full: " + std::to_string(bytes) + " of " + std::to_string(max) +
                          " bytes; privileged actions are denied until the audit store accepts events";
            }
        } else if (m_full_alerted && bytes < max - max / 10) {
            m_full_alerted = false;
            severity = k_severity_notice;
            message = "audit spool below 90 % again: " + std::to_string(bytes) + " of " + std::to_string(max) +
                      " bytes; privileged actions are allowed again";
        }
    }
    if (message.empty()) return;
    std::fprintf(stderr, "jitgated: %s (spool %s)\n", message.c_str(), text::escape_for_log(m_options.spool_dir).c_str());
    if (m_options.syslog && !send_syslog_message(m_options.syslog_socket, severity, message))
        m_syslog_failures.fetch_add(1, std::memory_order_relaxed);
}

std::vector<spool::Segment> Auditor::segments() const {
    std::lock_guard<std::mutex> lock(m_segments_mutex);
    return m_segments;
}

Json Auditor::stats() const {
    std::size_t count = 0;
    std::uint64_t first_seq = 0;
    {
        std::lock_guard<std::mutex> lock(m_segments_mutex);
        count = m_segments.size();
        if (!m_segments.empty()) first_seq = m_segments.front().first_seq;
    }
    const std::uint64_t last = m_published_seq.load(std::memory_order_relaxed);
    return Json{{"spool_dir", m_options.spool_dir},
                {"spool_bytes", spool_bytes()},
                {"spool_max_bytes", m_options.max_bytes},
                {"segments", count},
                {"spool_full", spool_full()},
                {"spooled_events", count > 0 && last >= first_seq ? last - first_seq + 1 : 0},
                {"last_seq", last},
                {"durable_seq", durable_seq()},
                {"syslog_failures", syslog_failures()}};
}

std::size_t Auditor::discard_shipped(std::uint64_t shipped_seq) {
    std::lock_guard<std::mutex> one_at_a_time(m_discard_mutex);
    const spool::DeleteResult r = spool::delete_shipped(m_options.spool_dir, segments(), shipped_seq);
    if (!r.deleted.empty()) {
        std::uint64_t freed = 0;
        {
            std::lock_guard<std::mutex> lock(m_segments_mutex);
            for (const auto& d : r.deleted) {
                const auto it = std::find_if(m_segments.begin(), m_segments.end(),
                                             [&](const spool::Segment& s) { return s.first_seq == d.first_seq; });
                if (it == m_segments.end()) continue;
                freed += it->bytes;
                m_segments.erase(it);
            }
        }
        m_spool_bytes.fetch_sub(std::min(freed, m_spool_bytes.load()), std::memory_order_relaxed);
        check_spool_full();
    }
    if (!r.problem.empty()) throw Error(ErrorCode::internal, m_options.spool_dir, r.problem);
    return r.deleted.size();
}

void Auditor::send_syslog(const Json& event) {
    int err = 0;
    try {
        // No HOSTNAME on a local socket: journald and rsyslog's imuxsock (by default) take the
        // first word after the timestamp as the tag, so a host there would hide "jitgate"
        // (what glibc's syslog(3) sends has no host either). The receiver adds its own host
        // name; the spool has ours.
        const std::string line = format_syslog_line(event, std::string(), static_cast<int>(::getpid()));
        for (int attempt = 0; attempt < 2; ++attempt) { // a restarted syslog daemon: reconnect once
            if (m_syslog_fd < 0) {
                m_syslog_fd = connect_syslog(m_options.syslog_socket);
                if (m_syslog_fd < 0) {
                    err = errno;
                    continue;
                }
            }
            if (send_datagram(m_syslog_fd, line)) return;
            err = errno;
            ::close(m_syslog_fd);
            m_syslog_fd = -1;
        }
    } catch (const std::exception&) {
        err = ENOMEM;
    }
    const auto failures = m_syslog_failures.fetch_add(1, std::memory_order_relaxed) + 1;
    const std::int64_t now = steady_ms();
    if (m_last_syslog_complaint_ms < 0 || now - m_last_syslog_complaint_ms >= k_syslog_complaint_interval_ms) {
        m_last_syslog_complaint_ms = now;
        std::fprintf(stderr,
                     "jitgated: audit: cannot send to syslog at %s: %s (%llu failures so far; the "
                     "spool %s has every event)\n",
                     text::escape_for_log(m_options.syslog_socket).c_str(), errno_text(err).c_str(),
                     static_cast<unsigned long long>(failures), text::escape_for_log(m_options.spool_dir).c_str());
    }
}

namespace {

// Follows the chain line by line, for verify_journal and verify_spool.
class ChainVerifier {
public:
    enum class Start {
        free,    // the first line may continue anything (a rotated journal), but a genesis line must be seq 1
        genesis, // the first line must be seq 1 with the genesis prev_hash (a spool without anchor.json)
        anchor,  // the first line must continue anchor.json
    };

    ChainVerifier(VerifyResult& r, Start start) : m_r(r), m_start(start) {}

    void set_anchor(const spool::Anchor& a) {
        m_anchor = a;
        if (m_start == Start::anchor) {
            m_have_prev = true;
            m_prev_seq = a.seq;
            m_prev_hash = a.hash;
            m_prev_where = "the event in anchor.json";
        }
    }

    void problem(const std::string& where, const std::string& what) {
        if (m_r.problems.size() < k_max_problems) m_r.problems.push_back(where + ": " + what);
        else ++m_dropped;
    }

    // The chain cannot be followed across what came last (an unreadable line or file).
    void break_chain() { m_have_prev = false; }

    // Checks one line (without its '\n'). Returns its seq if it had a usable one.
    std::optional<std::uint64_t> line(const std::string& where, const std::string& text) {
        if (text.empty()) {
            problem(where, "empty line");
            m_have_prev = false;
            return std::nullopt;
        }
        const LineCheck c = check_line(text);
        if (!c.problem.empty()) problem(where, c.problem);
        if (!c.stamped) {
            // Without its seq and hash the chain cannot be followed across this line; the
            // line itself is the problem reported.
            m_have_prev = false;
            return std::nullopt;
        }
        ++m_r.events;
        const auto seq = c.event["seq"].get<std::uint64_t>();
        const auto& prev = c.event["prev_hash"].get_ref<const std::string&>();
        const bool first = m_r.events == 1;
        if (first) m_r.first_seq = seq;
        if (first && m_start == Start::genesis) {
            if (seq != 1)
                problem(where, "seq " + std::to_string(seq) + " is the first event, but there is no anchor.json (" +
                                   plural(seq - 1, "event", "events") + " missing before it, or segments were deleted by hand)");
            if (prev != k_genesis_hash)
                problem(where, "the first event's prev_hash is not the genesis hash, but there is no anchor.json");
        } else if (first && m_start == Start::free) {
            if (prev == k_genesis_hash && seq != 1)
                problem(where, "seq " + std::to_string(seq) + " starts a new chain (genesis prev_hash) but is not 1");
        } else if (m_have_prev) {
            if (seq != m_prev_seq + 1) {
                if (seq > m_prev_seq)
                    problem(where, "seq " + std::to_string(seq) + " follows " + std::to_string(m_prev_seq) + " (" +
                                       plural(seq - m_prev_seq - 1, "event", "events") + " missing)");
                else
                    problem(where, "seq " + std::to_string(seq) + " follows " + std::to_string(m_prev_seq) +
                                       " (out of order or repeated)");
            }
            if (prev != m_prev_hash)
                problem(where, "prev_hash is not the hash of " + m_prev_where + " (an event was removed, inserted or moved)");
        }
        if (m_anchor && seq == m_anchor->seq) {
            m_anchor_seen = true;
            if (c.event["hash"].get_ref<const std::string&>() != m_anchor->hash)
                problem(where, "event " + std::to_string(seq) + " is not the one anchor.json names (its hash differs)");
        }
        m_have_prev = true;
        m_prev_seq = seq;
        m_prev_hash = c.event["hash"].get<std::string>();
        m_prev_where = where;
        m_r.last_seq = seq;
        return seq;
    }

    bool anchor_seen() const noexcept { return m_anchor_seen; }

    void finish() {
        if (m_dropped > 0) m_r.problems.push_back("... and " + std::to_string(m_dropped) + " more");
        m_r.ok = m_r.problems.empty();
    }

private:
    VerifyResult& m_r;
    Start m_start;
    std::size_t m_dropped = 0;
    bool m_have_prev = false;
    std::uint64_t m_prev_seq = 0;
    std::string m_prev_hash;
    std::string m_prev_where;
    std::optional<spool::Anchor> m_anchor;
    bool m_anchor_seen = false;
};

// Feeds every line of `path` to `v`, naming each "<label>N". Returns the number of lines, or
// nullopt if the file could not be read (reported).
std::optional<std::uint64_t> verify_file(ChainVerifier& v, const std::string& path, const std::string& label,
                                         const std::string& torn_hint,
                                         const std::function<void(std::uint64_t line_no, std::uint64_t seq)>& on_seq) {
    std::uint64_t line_no = 0;
    try {
        spool::LineReader reader(path);
        spool::LineReader::Line line;
        while (reader.next(line)) {
            ++line_no;
            const std::string where = label + std::to_string(line_no);
            if (!line.complete) {
                v.problem(where, "torn last line (" + plural(line.text.size(), "byte", "bytes") +
                                     " without a newline, a crash mid-write?" + torn_hint + ")");
                break;
            }
            const auto seq = v.line(where, line.text);
            if (seq && on_seq) on_seq(line_no, *seq);
        }
    } catch (const Error& e) {
        v.problem(label + std::to_string(line_no + 1), std::string("cannot read: ") + e.what());
        v.break_chain();
        return std::nullopt;
    }
    return line_no;
}

} // namespace

VerifyResult verify_journal(const std::string& path) {
    VerifyResult r;
    if (::access(path.c_str(), R_OK) != 0) {
        r.problems.push_back("cannot open " + text::escape_for_log(path) + ": " + errno_text(errno));
        return r;
    }
    ChainVerifier v(r, ChainVerifier::Start::free);
    verify_file(v, path, "line ", "", nullptr);
    v.finish();
    return r;
}

VerifyResult verify_spool(const std::string& dir) {
    VerifyResult r;
    // Read before the segments' ends: a running daemon only ever moves shipped.json behind them.
    std::optional<spool::Shipped> shipped;
    try {
        shipped = spool::read_shipped(dir);
        if (shipped)
            r.notes.push_back("shipped.json: the audit store acknowledged every event up to seq " +
                              std::to_string(shipped->seq) +
                              (shipped->time.empty() ? "" : " (at " + shipped->time + ")"));
    } catch (const Error& e) {
        r.problems.push_back(e.what());
    }
    std::optional<std::uint64_t> sent;
    try {
        sent = spool::read_sent(dir);
    } catch (const Error& e) {
        r.problems.push_back(e.what());
    }
    std::vector<spool::Segment> segments;
    try {
        segments = spool::list_segments(dir);
    } catch (const Error& e) {
        r.problems.push_back(e.what());
        return r;
    }
    r.segments = segments.size();
    std::optional<spool::Anchor> anchor;
    bool anchor_broken = false;
    try {
        anchor = spool::read_anchor(dir);
    } catch (const Error& e) {
        anchor_broken = true;
        r.problems.push_back(std::string(e.what()) + " (the start of the chain cannot be checked)");
    }
    for (const auto& torn : spool::list_torn(dir)) {
        struct stat st {};
        const auto size = ::stat(torn.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
        r.notes.push_back(base_name(torn) + ": a torn tail moved aside at start-up (" + plural(size, "byte", "bytes") +
                          "; not part of the chain, never shipped)");
    }

    // Where the chain must start: after the anchor, or at genesis. If segments older than
    // the anchor are still there (a crash while deleting shipped ones), the chain runs
    // through them and the anchor must name one of their events.
    ChainVerifier::Start start = ChainVerifier::Start::genesis;
    if (anchor_broken) start = ChainVerifier::Start::free;
    else if (anchor && !segments.empty() && segments.front().first_seq <= anchor->seq) {
        start = ChainVerifier::Start::free;
        r.notes.push_back("anchor.json: segments up to seq " + std::to_string(anchor->seq) +
                          " were shipped but are not deleted yet");
    } else if (anchor) {
        start = ChainVerifier::Start::anchor;
        r.notes.push_back("anchor.json: events up to seq " + std::to_string(anchor->seq) + " were shipped and deleted");
    }
    ChainVerifier v(r, start);
    if (anchor) v.set_anchor(*anchor);

    for (std::size_t i = 0; i < segments.size(); ++i) {
        const spool::Segment& seg = segments[i];
        const std::string name = base_name(seg.path);
        const bool newest = i + 1 == segments.size();
        const auto lines = verify_file(v, seg.path, name + ":",
                                       newest ? "; jitgated moves it aside at its next start" : "",
                                       [&](std::uint64_t line_no, std::uint64_t seq) {
                                           if (line_no == 1 && seq != seg.first_seq)
                                               v.problem(name + ":1", "the segment's name says it starts at seq " +
                                                                          std::to_string(seg.first_seq) + ", but its first event is seq " +
                                                                          std::to_string(seq));
                                       });
        if (lines && *lines == 0 && !newest) r.notes.push_back(name + ": empty segment");
    }
    if (anchor && start == ChainVerifier::Start::free && !v.anchor_seen())
        v.problem("anchor.json", "names seq " + std::to_string(anchor->seq) + ", which is not in the spool");
    if (anchor && r.events == 0) r.last_seq = anchor->seq; // everything was shipped and deleted
    if (shipped && shipped->seq > r.last_seq)
        v.problem("shipped.json", "the audit store acknowledged events up to seq " + std::to_string(shipped->seq) +
                                      ", but the spool ends at seq " + std::to_string(r.last_seq) + ": events " +
                                      std::to_string(r.last_seq + 1) + ".." + std::to_string(shipped->seq) +
                                      " were cut from the spool (restored from an old copy, truncated or deleted)");
    else if (sent && *sent > r.last_seq)
        v.problem("sent.json", "events up to seq " + std::to_string(*sent) +
                                   " were sent to the audit store, but the spool ends at seq " +
                                   std::to_string(r.last_seq) + ": events " + std::to_string(r.last_seq + 1) + ".." +
                                   std::to_string(*sent) +
                                   " were cut from the spool (restored from an old copy, truncated or deleted)");
    v.finish();
    return r;
}

} // namespace jitgate::audit
