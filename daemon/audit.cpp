// daemon/audit.cpp — the hash-chained journal, its verifier, and the syslog client.
//
// The journal is the durable record: a line is written and fdatasync'ed before record()
// returns, so a decision is never handed out for an event that is not on disk. Syslog is a
// best-effort copy for operators and SIEMs; its failures are counted, never fatal.
// docs/audit.md describes the event schema, the chain and the syslog line.
#include "audit.hpp"

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
// A stuck syslog daemon must not stall the event loop for long; the journal has the event.
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

// RFC 3164 timestamp ("Nov  3 10:00:00") in local time, of the event's own time when it has
// one, so the syslog line and the journal agree. Month names are fixed: the locale must not
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
            throw Error(ErrorCode::internal, path, "cannot read the journal: " + errno_text(errno));
        }
        if (n == 0) throw Error(ErrorCode::internal, path, "the journal shrank while being read");
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

struct JournalTail {
    off_t size = 0;
    off_t good_end = 0;       // end of the last complete line (after its '\n')
    off_t last_line_start = 0;
};

JournalTail inspect_tail(int fd, const std::string& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw Error(ErrorCode::internal, path, "cannot stat the journal: " + errno_text(errno));
    JournalTail t;
    t.size = st.st_size;
    if (t.size == 0) return t;
    char last = 0;
    read_exact_at(fd, &last, 1, t.size - 1, path);
    t.good_end = last == '\n' ? t.size : after_last_newline(fd, t.size, path);
    if (t.good_end > 0) t.last_line_start = after_last_newline(fd, t.good_end - 1, path);
    return t;
}

// Copies the torn tail to "<journal>.torn-<unix time>" (".N" added if that exists) and
// makes the copy durable before the journal is cut, so no byte is ever lost.
std::string quarantine_tail(int rfd, const std::string& path, off_t from, off_t size) {
    std::string bytes(static_cast<std::size_t>(size - from), '\0');
    read_exact_at(rfd, bytes.data(), bytes.size(), from, path);
    const std::string base = path + ".torn-" + std::to_string(std::time(nullptr));
    std::string qpath = base;
    int qfd = -1;
    for (int n = 1; qfd < 0; ++n) {
        qfd = ::open(qpath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (qfd >= 0) break;
        if (errno != EEXIST || n > 100)
            throw Error(ErrorCode::internal, qpath, "cannot create the quarantine file for the journal's torn tail: " + errno_text(errno));
        qpath = base + "." + std::to_string(n);
    }
    std::size_t written = 0;
    int err = write_all(qfd, bytes, written);
    if (err == 0 && ::fsync(qfd) != 0) err = errno;
    ::close(qfd);
    if (err != 0) throw Error(ErrorCode::internal, qpath, "cannot write the journal's torn tail: " + errno_text(err));
    if (const int derr = fsync_dir(parent_dir(qpath)); derr != 0)
        throw Error(ErrorCode::internal, qpath, "cannot sync the quarantine file's directory: " + errno_text(derr));
    return qpath;
}

} // namespace

int severity_for(const std::string& event_type) noexcept {
    constexpr int k_alert = 1, k_warning = 4, k_notice = 5, k_info = 6;
    const std::string_view t = event_type;
    if (t == type::break_glass) return k_alert;
    if (t == type::denied || t == type::timeout || t == type::cancelled || t == type::error ||
        t == type::grant_revoked)
        return k_warning;
    if (t == type::approved || t == type::approval_recorded || t == type::allowed_by_rule ||
        t == type::allowed_by_grant || t == type::command_finished || t.starts_with("session."))
        return k_notice;
    return k_info;
}

std::string canonical_bytes(const Json& event_without_hash) {
    return event_without_hash.dump(-1, ' ', false, Json::error_handler_t::strict);
}

std::string sha256_hex(const std::string& bytes) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int md_len = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), md.data(), &md_len, EVP_sha256(), nullptr) != 1)
        throw Error(ErrorCode::internal, "audit", "SHA-256 failed (OpenSSL EVP_Digest)");
    static constexpr char k_hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * md_len);
    for (unsigned int i = 0; i < md_len; ++i) {
        out += k_hex[md[i] >> 4];
        out += k_hex[md[i] & 0x0F];
    }
    return out;
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
    const std::string& path = m_options.journal_path;
    if (path.empty()) throw Error(ErrorCode::bad_input, "audit", "no journal path configured");
    if (m_options.host.empty()) {
        std::array<char, 256> name{};
        if (::gethostname(name.data(), name.size() - 1) == 0) m_options.host = name.data();
    }
    if (!text::is_valid_utf8(m_options.host)) m_options.host = text::escape_for_log(m_options.host);

    int rfd = -1;
    try {
        m_journal_fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (m_journal_fd < 0) {
            const int err = errno;
            struct stat dst {};
            const std::string dir = parent_dir(path);
            if (err == ENOENT && ::stat(dir.c_str(), &dst) != 0)
                throw Error(ErrorCode::internal, path,
                            "cannot open the audit journal: directory " + dir +
                                " does not exist (jitgated does not create it; the package's "
                                "tmpfiles.d entry should)");
            throw Error(ErrorCode::internal, path, "cannot open the audit journal: " + errno_text(err));
        }
        // SECURITY NOTE: two writers would fork the chain; the second one refuses to start.
        if (::flock(m_journal_fd, LOCK_EX | LOCK_NB) != 0)
            throw Error(ErrorCode::internal, path,
                        errno == EWOULDBLOCK ? "the audit journal is locked by another process "
                                               "(is another jitgated running?)"
                                             : "cannot lock the audit journal: " + errno_text(errno));
        struct stat wst {};
        if (::fstat(m_journal_fd, &wst) != 0 || !S_ISREG(wst.st_mode))
            throw Error(ErrorCode::internal, path, "the audit journal is not a regular file");
        // The write side is O_WRONLY; read the tail through a second descriptor of the same file.
        rfd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        struct stat rst {};
        if (rfd < 0 || ::fstat(rfd, &rst) != 0 || rst.st_ino != wst.st_ino || rst.st_dev != wst.st_dev)
            throw Error(ErrorCode::internal, path, "cannot reopen the audit journal for reading");
        // A new journal's directory entry should survive a crash like its lines do. Best
        // effort: a directory we may write but not read cannot be opened to sync it, and
        // that alone should not stop the daemon.
        (void)fsync_dir(parent_dir(path));

        const JournalTail tail = inspect_tail(rfd, path);
        m_seq = 0;
        m_prev_hash = k_genesis_hash;
        if (tail.good_end > 0) {
            std::string last(static_cast<std::size_t>(tail.good_end - 1 - tail.last_line_start), '\0');
            read_exact_at(rfd, last.data(), last.size(), tail.last_line_start, path);
            const LineCheck c = check_line(last);
            if (!c.problem.empty()) {
                // Refuse to start rather than continue from a line we cannot trust.
                throw Error(ErrorCode::internal,
                            path + ":" + std::to_string(count_newlines(rfd, tail.good_end, path)),
                            "the last line of the audit journal is not a valid event (" + c.problem +
                                "); run `jitgatectl audit verify " + path +
                                "`, then move the journal aside to start a new chain");
            }
            m_seq = c.event["seq"].get<std::uint64_t>();
            m_prev_hash = c.event["hash"].get<std::string>();
        }

        if (tail.good_end < tail.size) {
            const off_t torn = tail.size - tail.good_end;
            const std::string qpath = quarantine_tail(rfd, path, tail.good_end, tail.size);
            if (::ftruncate(m_journal_fd, tail.good_end) != 0 || ::fsync(m_journal_fd) != 0)
                throw Error(ErrorCode::internal, path, "cannot cut the torn tail off the audit journal: " + errno_text(errno));
            ::close(rfd);
            rfd = -1;
            record(Json{{"type", type::error},
                        {"message", "the audit journal ended with a torn line (" + std::to_string(torn) +
                                        " bytes without a newline, a crash mid-write?); moved to " +
                                        qpath + " and cut from the journal"},
                        {"torn_file", qpath},
                        {"torn_bytes", static_cast<std::uint64_t>(torn)}});
        }
    } catch (...) {
        if (rfd >= 0) ::close(rfd);
        if (m_journal_fd >= 0) ::close(m_journal_fd);
        if (m_syslog_fd >= 0) ::close(m_syslog_fd);
        m_journal_fd = m_syslog_fd = -1;
        throw;
    }
    if (rfd >= 0) ::close(rfd);
}

Auditor::~Auditor() {
    if (m_journal_fd >= 0) ::close(m_journal_fd);
    if (m_syslog_fd >= 0) ::close(m_syslog_fd);
}

Json Auditor::record(Json event) {
    if (!event.is_object() || !event.contains("type") || !event["type"].is_string() ||
        event["type"].get_ref<const std::string&>().empty())
        throw Error(ErrorCode::bad_input, "audit", "an event needs a non-empty \"type\" string");
    const std::string& path = m_options.journal_path;
    if (m_broken)
        throw Error(ErrorCode::internal, path,
                    "an earlier failed write could not be rolled back; restart jitgated to repair "
                    "the audit journal");

    // Callers pass escaped text; this is the safety net that keeps dump() from throwing.
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
    if (::fstat(m_journal_fd, &st) != 0)
        throw Error(ErrorCode::internal, path, "cannot stat the audit journal: " + errno_text(errno));
    std::size_t written = 0;
    int err = write_all(m_journal_fd, line, written);
    if (err == 0 && !m_group_commit && ::fdatasync(m_journal_fd) != 0) err = errno;
    if (err != 0) {
        // Take back whatever reached the file, so the next line does not glue onto a partial
        // one and the chain does not hold an event that was never confirmed.
        if (written > 0 && ::ftruncate(m_journal_fd, st.st_size) != 0) m_broken = true;
        throw Error(ErrorCode::internal, path, "cannot append to the audit journal: " + errno_text(err));
    }
    m_seq += 1;
    m_prev_hash = std::move(hash);
    if (m_group_commit) {
        m_unsynced = true;
        if (m_options.syslog) m_syslog_queue.push_back(event);
    } else if (m_options.syslog) {
        send_syslog(event);
    }
    return event;
}

void Auditor::sync() {
    if (!m_unsynced) return;
    if (::fdatasync(m_journal_fd) != 0) {
        const int err = errno;
        // The batch's lines may or may not be on disk; nothing more may be built on them.
        m_broken = true;
        m_syslog_queue.clear();
        throw Error(ErrorCode::internal, m_options.journal_path, "cannot make the audit journal durable: " + errno_text(err));
    }
    m_unsynced = false;
    for (const auto& e : m_syslog_queue) send_syslog(e);
    m_syslog_queue.clear();
}

void Auditor::send_syslog(const Json& event) {
    int err = 0;
    try {
        // No HOSTNAME on a local socket: journald and rsyslog's imuxsock (by default) take the
        // first word after the timestamp as the tag, so a host there would hide "jitgate"
        // (what glibc's syslog(3) sends has no host either). The receiver adds its own host
        // name; the journal has ours.
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
    ++m_syslog_failures;
    const std::int64_t now = steady_ms();
    if (m_last_syslog_complaint_ms < 0 || now - m_last_syslog_complaint_ms >= k_syslog_complaint_interval_ms) {
        m_last_syslog_complaint_ms = now;
        std::fprintf(stderr,
                     "jitgated: audit: cannot send to syslog at %s: %s (%llu failures so far; the "
                     "journal %s has every event)\n",
                     text::escape_for_log(m_options.syslog_socket).c_str(), errno_text(err).c_str(),
                     static_cast<unsigned long long>(m_syslog_failures),
                     text::escape_for_log(m_options.journal_path).c_str());
    }
}

VerifyResult verify_journal(const std::string& path) {
    VerifyResult r;
    std::size_t dropped = 0;
    const auto problem = [&](std::uint64_t line_no, const std::string& what) {
        if (r.problems.size() < k_max_problems) r.problems.push_back("line " + std::to_string(line_no) + ": " + what);
        else ++dropped;
    };

    std::ifstream in(path, std::ios::binary);
    if (!in) {
        r.problems.push_back("cannot open " + text::escape_for_log(path) + ": " + errno_text(errno));
        return r;
    }
    std::string line;
    std::uint64_t line_no = 0;
    bool have_prev = false; // the previous line gave usable seq and hash
    std::uint64_t prev_seq = 0;
    std::string prev_hash;
    while (std::getline(in, line)) {
        ++line_no;
        if (in.eof()) { // getline hit the end without a '\n'
            problem(line_no, "torn last line (" + std::to_string(line.size()) +
                                 " bytes without a newline, a crash mid-write?)");
            break;
        }
        if (line.empty()) {
            problem(line_no, "empty line");
            have_prev = false;
            continue;
        }
        const LineCheck c = check_line(line);
        if (!c.problem.empty()) problem(line_no, c.problem);
        if (!c.stamped) {
            // Without its seq and hash the chain cannot be followed across this line; the
            // line itself is the problem reported.
            have_prev = false;
            continue;
        }
        ++r.events;
        const auto seq = c.event["seq"].get<std::uint64_t>();
        const auto& prev = c.event["prev_hash"].get_ref<const std::string&>();
        if (r.events == 1) {
            r.first_seq = seq;
            // Line 1 may continue a rotated journal, but a genesis line must start the count.
            if (prev == k_genesis_hash && seq != 1)
                problem(line_no, "seq " + std::to_string(seq) + " starts a new chain (genesis prev_hash) but is not 1");
        } else if (have_prev) {
            if (seq != prev_seq + 1) {
                if (seq > prev_seq)
                    problem(line_no, "seq " + std::to_string(seq) + " follows " + std::to_string(prev_seq) + " (" +
                                         std::to_string(seq - prev_seq - 1) + " events missing)");
                else
                    problem(line_no, "seq " + std::to_string(seq) + " follows " + std::to_string(prev_seq) +
                                         " (out of order or repeated)");
            }
            if (prev != prev_hash)
                problem(line_no, "prev_hash is not the hash of line " + std::to_string(line_no - 1) +
                                     " (a line was removed, inserted or moved)");
        }
        have_prev = true;
        prev_seq = seq;
        prev_hash = c.event["hash"].get<std::string>();
        r.last_seq = seq;
    }
    if (in.bad()) problem(line_no + 1, "read error: " + errno_text(errno));
    if (dropped > 0) r.problems.push_back("... and " + std::to_string(dropped) + " more");
    r.ok = r.problems.empty();
    return r;
}

} // namespace jitgate::audit
