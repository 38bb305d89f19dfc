// daemon/audit/auditor.cpp — the Auditor: stamps events, appends them to the spool, syslogs them.
//
// The spool is the durable record: a line is written and fdatasync'ed before record()
// returns (or before sync() returns, with group commit), so a decision is never handed out
// for an event that is not on disk. Syslog is a best-effort copy for operators and SIEMs; its
// failures are counted, never fatal. The Shipper (shipper.cpp) takes durable lines to the
// central store. docs/audit.md describes the event schema, the chain and the syslog line.
#include "daemon/audit/auditor.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <new>
#include <optional>
#include <system_error>
#include <utility>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"
#include "lib/audit_chain.hpp"

namespace jitgate::audit {
namespace {

using spool::FdCloser;
using spool::file_size;
using spool::fsync_dir;
using spool::join_path;
using spool::last_line_of;
using spool::read_exact_at;
using spool::write_all;

constexpr std::int64_t k_syslog_complaint_interval_ms = 10'000;
constexpr std::size_t k_scan_chunk = 64 * 1024;
constexpr std::int64_t k_full_alert_interval_ms = 5 * 60 * 1000;
constexpr std::int64_t k_rollover_complaint_interval_ms = 60 * 1000;

std::string errno_text(int err) {
    return std::system_category().message(err);
}

std::string parent_dir(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
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
        // The map itself, not items(): its proxy builds a string per member, on every event.
        for (auto& [key, value] : j.get_ref<Json::object_t&>()) {
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

// Fills `buf` from getrandom. Throws Error if the kernel cannot give random bytes.
void fill_random(unsigned char* buf, std::size_t len) {
    std::size_t got = 0;
    while (got < len) {
        const ssize_t n = ::getrandom(buf + got, len - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw Error(ErrorCode::internal, "audit", "getrandom failed: " + errno_text(errno));
        }
        got += static_cast<std::size_t>(n);
    }
}

// A version 4 UUID from 16 random bytes.
std::string uuid_v4_of(const unsigned char* random) {
    std::array<unsigned char, 16> b{};
    std::copy(random, random + b.size(), b.begin());
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

// The canonical bytes of `event` (which has no "hash"), and where its "hash" member goes:
// the canonical form of the event with "hash" is the same text with that member spliced in
// (keys are sorted, nothing else moves), so one serialisation serves the hash and the line.
// The text is canonical_bytes(event) itself; the unit tests compare the line with
// canonical_bytes() of the stamped event.
struct Canonical {
    std::string text;
    std::size_t hash_at = 0; // where `"hash":"…"` goes
    bool hash_first = false; // no member before it (no comma before)
    bool hash_last = false;  // no member after it (no comma after)
};

Canonical canonical_of(const Json& event) {
    Canonical c;
    c.text = event.dump(-1, ' ', false, Json::error_handler_t::strict);
    // The member index "hash" takes: the number of keys that sort before it (std::map order,
    // the order dump() writes them in).
    std::size_t index = 0;
    for (auto it = event.begin(); it != event.end() && it.key() < "hash"; ++it) ++index;
    const std::size_t members = event.size();
    if (index == members) {
        c.hash_at = c.text.size() - 1; // before the closing '}'
        c.hash_first = members == 0;
        c.hash_last = true;
        return c;
    }
    if (index == 0) {
        c.hash_at = 1;
        c.hash_first = true;
        return c;
    }
    // Find the start of member `index`: after the index-th ',' at the top level, outside strings.
    std::size_t commas = 0;
    int depth = 0;
    bool in_string = false, escaped = false;
    for (std::size_t i = 1; i < c.text.size(); ++i) {
        const char ch = c.text[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (ch == '\\')
                escaped = true;
            else if (ch == '"')
                in_string = false;
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == '{' || ch == '[') {
            ++depth;
        } else if (ch == '}' || ch == ']') {
            --depth;
        } else if (ch == ',' && depth == 0 && ++commas == index) {
            c.hash_at = i + 1;
            return c;
        }
    }
    throw Error(ErrorCode::internal, "audit", "cannot place the hash in the canonical event"); // unreachable
}

// The line of the event with its hash: the canonical text with the member spliced in, '\n'.
std::string line_with_hash(const Canonical& c, const std::string& hash) {
    std::string member = "\"hash\":\"" + hash + "\"";
    std::string line;
    line.reserve(c.text.size() + member.size() + 3);
    line.append(c.text, 0, c.hash_at);
    if (c.hash_last && !c.hash_first) line += ',';
    line += member;
    if (!c.hash_last) line += ',';
    line.append(c.text, c.hash_at, std::string::npos);
    line += '\n';
    return line;
}

std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
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

std::uint64_t count_lines(const std::string& path) {
    FdCloser fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.fd < 0) return 0;
    try {
        return count_newlines(fd.fd, static_cast<off_t>(file_size(fd.fd, path)), path);
    } catch (const Error&) {
        return 0;
    }
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
            throw Error(ErrorCode::internal, qpath,
                        "cannot create the quarantine file for a torn tail: " + errno_text(errno));
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

} // namespace

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
    stop_committer();
    if (m_commit_event_fd >= 0) ::close(m_commit_event_fd);
    for (const auto& r : m_retired) ::close(r.fd);
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
    if (m_dir_fd < 0)
        throw Error(ErrorCode::internal, dir, "cannot open the audit spool directory: " + errno_text(errno));
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
        LineReader reader(seg.path);
        LineReader::Line line;
        std::uint64_t line_no = 0;
        std::uint64_t bad_line = 0; // an invalid complete line: only allowed as the last one
        std::optional<std::uint64_t> torn_from;
        while (reader.next(line)) {
            ++line_no;
            if (!line.complete) {
                if (!torn_from) {
                    torn_from = line.offset;
                    torn_why =
                        "a torn line (" + text::plural(line.text.size(), "byte", "bytes") + " without a newline)";
                }
                break;
            }
            if (bad_line != 0)
                throw Error(ErrorCode::internal, seg.path + ":" + std::to_string(bad_line),
                            "this line is not a valid event continuing the chain (" + torn_why +
                                "), but more lines follow it; refusing to start rather than fork the chain. Run "
                                "`jitgatectl audit verify " +
                                dir +
                                "`, then move the spool aside (keep it: it is "
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
            if (wfd.fd < 0)
                throw Error(ErrorCode::internal, seg.path, "cannot open the audit segment: " + errno_text(errno));
            const std::uint64_t size = file_size(wfd.fd, seg.path);
            torn_bytes = size - *torn_from;
            torn_file = quarantine_tail(seg.path, *torn_from, size);
            if (::ftruncate(wfd.fd, static_cast<off_t>(*torn_from)) != 0 || ::fsync(wfd.fd) != 0)
                throw Error(ErrorCode::internal, seg.path,
                            "cannot cut the torn tail off the audit segment: " + errno_text(errno));
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
        if (current.empty() && seg.first_seq == m_seq + 1)
            current = seg.path;
        else
            ::unlink(seg.path.c_str());
    }
    if (current.empty() && !segments.empty() && !cut) {
        const spool::Segment& seg = segments.back();
        struct stat sst {};
        if (::stat(seg.path.c_str(), &sst) == 0 && (sst.st_size > 0 || seg.first_seq == m_seq + 1))
            current = seg.path;
        else
            ::unlink(seg.path.c_str()); // emptied by the quarantine and named for another seq
    }
    const bool fresh = current.empty();
    if (fresh) current = join_path(dir, spool::segment_name(m_seq + 1));
    m_segment_fd = ::open(current.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | (fresh ? O_CREAT | O_EXCL : 0), 0640);
    if (m_segment_fd < 0)
        throw Error(ErrorCode::internal, current, "cannot open the audit segment: " + errno_text(errno));
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
    m_synced_seq = m_seq;
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
                                    text::plural(torn_bytes, "byte", "bytes") + " moved to " + torn_file +
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
    if (m_sync_failed)
        throw Error(ErrorCode::internal, dir,
                    "an fdatasync of the audit spool failed; restart jitgated to repair the audit spool");
    if (m_broken)
        throw Error(ErrorCode::internal, dir,
                    "an earlier failed write could not be rolled back; restart jitgated to repair the audit spool");

    // Callers pass escaped text; this is the safety net that keeps dump() from throwing and
    // every line valid UTF-8.
    sanitize(event);
    event.erase("hash");
    event["event_id"] = new_event_id();
    event["seq"] = m_seq + 1;
    event["time"] = rfc3339_now();
    event["host"] = m_options.host;
    event["prev_hash"] = m_prev_hash;
    const Canonical canonical = canonical_of(event);
    std::string hash = sha256_hex(canonical.text);
    const std::string line = line_with_hash(canonical, hash);
    event["hash"] = hash;
    // The syslog line is built before the write: once the line is in the spool nothing here
    // may fail in a way that loses its copy (queueing it can only run out of memory; that is
    // counted as a failed copy below, as a failed send is).
    std::optional<std::string> queued_line;
    if (m_group_commit && m_options.syslog) queued_line = syslog_line_of(event);

    // Without group commit every line is durable on return: whatever an earlier batch left
    // unsynced (not the case in the daemon, which switches group commit on for good) first.
    if (!m_group_commit && (m_in_flight || m_seq > m_synced_seq)) sync();
    std::size_t written = 0;
    int err = write_all(m_segment_fd, line, written);
    bool sync_failed = false;
    if (err == 0 && !m_group_commit && sync_segment(m_segment_fd) != 0) {
        err = errno;
        sync_failed = true;
    }
    if (err != 0) {
        // After a failed fdatasync nothing in the file is known to be durable (the kernel may
        // have dropped the dirty pages): the spool is broken for good, as with group commit.
        if (sync_failed) {
            m_broken = true;
            m_sync_failed = true;
        }
        // Take back whatever reached the file, so the next line does not glue onto a partial
        // one and the chain does not hold an event that was never confirmed. The Auditor is
        // the only writer (flock), so the segment ends at m_current_bytes.
        if (written > 0 && ::ftruncate(m_segment_fd, static_cast<off_t>(m_current_bytes)) != 0) m_broken = true;
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
        if (m_options.syslog) {
            try {
                m_syslog_queue.push_back({m_seq, std::move(queued_line)});
            } catch (const std::bad_alloc&) {
                m_syslog_failures.fetch_add(1, std::memory_order_relaxed);
            }
        }
    } else {
        if (m_options.syslog) send_syslog(event);
        m_synced_seq = m_seq;
        after_durable();
    }
    check_spool_full();
    return event;
}

std::string Auditor::new_event_id() {
    // SECURITY NOTE: event ids must be unique, not secret; drawing the random bytes from the
    // kernel in blocks instead of one getrandom per event gives the same ids' quality. A forked
    // child would share the unspent block and repeat ids (which the store deduplicates away):
    // jitgated never forks; whatever forks one day must not record through this Auditor.
    if (m_random_used + 16 > m_random.size()) {
        fill_random(m_random.data(), m_random.size());
        m_random_used = 0;
    }
    std::string id = uuid_v4_of(m_random.data() + m_random_used);
    std::fill_n(m_random.data() + m_random_used, 16, 0); // spent bytes are not kept
    m_random_used += 16;
    return id;
}

int Auditor::sync_segment(int fd) const {
    return m_options.sync_fn ? m_options.sync_fn(fd) : ::fdatasync(fd);
}

Auditor::SyncJob Auditor::make_job() const {
    SyncJob job;
    job.fds.reserve(m_retired.size() + 1);
    for (const auto& r : m_retired) job.fds.push_back(r.fd);
    job.fds.push_back(m_segment_fd);
    job.seq = m_seq;
    return job;
}

void Auditor::sync() {
    wait_in_flight(); // throws if it failed
    if (m_sync_failed)
        throw Error(ErrorCode::internal, m_options.spool_dir,
                    "an fdatasync of the audit spool failed; restart jitgated to repair the audit spool");
    if (m_seq <= m_synced_seq) return;
    sync_now();
}

void Auditor::sync_now() {
    const SyncJob job = make_job();
    int err = 0;
    for (const int fd : job.fds)
        if (sync_segment(fd) != 0) {
            err = errno != 0 ? errno : EIO;
            break;
        }
    completed(job.seq, err);
}

void Auditor::completed(std::uint64_t seq, int err) {
    if (err != 0) {
        // The lines after the last durable seq may or may not be on disk; nothing more may be
        // built on them, and nothing after them may ever be reported durable.
        m_sync_failed = true;
        m_broken = true;
        // Copies of what never became durable are dropped; those of durable events whose
        // sending was deferred (set_defer_syslog) still go out.
        while (!m_syslog_queue.empty() && m_syslog_queue.back().seq > m_synced_seq) m_syslog_queue.pop_back();
        throw Error(ErrorCode::internal, m_options.spool_dir,
                    "cannot make the audit spool durable: " + errno_text(err));
    }
    m_synced_seq = seq;
    if (!m_defer_syslog) send_syslog_up_to(seq);
    // Segments rolled over whose lines are now all durable: no commit is in flight, so no
    // thread holds their descriptors.
    while (!m_retired.empty() && m_retired.front().last_seq <= seq) {
        ::close(m_retired.front().fd);
        m_retired.erase(m_retired.begin());
    }
    after_durable();
}

void Auditor::send_syslog_copies() {
    send_syslog_up_to(m_synced_seq);
}

void Auditor::send_syslog_up_to(std::uint64_t seq) {
    while (!m_syslog_queue.empty() && m_syslog_queue.front().seq <= seq) {
        send_syslog_line(m_syslog_queue.front().line);
        m_syslog_queue.pop_front();
    }
}

void Auditor::after_durable() {
    m_durable_seq.store(m_synced_seq, std::memory_order_release);
    if (m_durable_hook) {
        try {
            m_durable_hook(m_synced_seq);
        } catch (...) {
            // A wake-up that failed only delays shipping until the shipper's own timer.
        }
    }
    maybe_roll_over();
}

int Auditor::commit_event_fd() {
    if (m_commit_event_fd >= 0) return m_commit_event_fd;
    const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) throw Error(ErrorCode::internal, "audit", "eventfd failed: " + errno_text(errno));
    // The committer takes no signals: a process-directed SIGTERM must reach the event loop's
    // signalfd, never a thread that would die of it (the mask is inherited, then restored).
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_BLOCK, &all, &old);
    try {
        m_committer = std::thread([this] { committer_main(); });
    } catch (const std::exception& e) {
        ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
        ::close(fd);
        throw Error(ErrorCode::internal, "audit", std::string("cannot start the audit committer thread: ") + e.what());
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    m_commit_event_fd = fd;
    return fd;
}

bool Auditor::start_commit() {
    if (m_in_flight || m_sync_failed || m_seq <= m_synced_seq) return false;
    commit_event_fd();
    SyncJob job = make_job();
    m_in_flight_seq = job.seq;
    {
        std::lock_guard<std::mutex> lock(m_commit_mutex);
        m_job = std::move(job);
        m_job_ready = true;
        m_job_done = false;
    }
    m_commit_cv.notify_all();
    m_in_flight = true;
    return true;
}

std::uint64_t Auditor::finish_commit() {
    if (m_commit_event_fd >= 0) {
        std::uint64_t count = 0;
        while (::read(m_commit_event_fd, &count, sizeof count) < 0 && errno == EINTR) {
        }
    }
    if (!m_in_flight) return m_synced_seq;
    int err = 0;
    {
        std::lock_guard<std::mutex> lock(m_commit_mutex);
        if (!m_job_done) return m_synced_seq; // still syncing
        m_job_done = false;
        err = m_job_errno;
    }
    m_in_flight = false;
    completed(m_in_flight_seq, err);
    return m_synced_seq;
}

void Auditor::wait_in_flight() {
    if (!m_in_flight) return;
    int err = 0;
    {
        std::unique_lock<std::mutex> lock(m_commit_mutex);
        m_commit_cv.wait(lock, [this] { return m_job_done; });
        m_job_done = false;
        err = m_job_errno;
    }
    // Taken here (the committer signalled it before it let go of the mutex): the loop is not
    // to be woken for it again.
    std::uint64_t count = 0;
    while (::read(m_commit_event_fd, &count, sizeof count) < 0 && errno == EINTR) {
    }
    m_in_flight = false;
    completed(m_in_flight_seq, err);
}

void Auditor::committer_main() {
    std::unique_lock<std::mutex> lock(m_commit_mutex);
    for (;;) {
        m_commit_cv.wait(lock, [this] { return m_job_ready || m_committer_stop; });
        if (!m_job_ready) return; // stopping, nothing handed over
        const SyncJob job = std::move(m_job);
        m_job_ready = false;
        lock.unlock();
        int err = 0;
        for (const int fd : job.fds)
            if (sync_segment(fd) != 0) {
                err = errno != 0 ? errno : EIO;
                break;
            }
        lock.lock();
        m_job_errno = err;
        m_job_done = true;
        m_commit_cv.notify_all();
        const std::uint64_t one = 1;
        // The loop also finds the result under the mutex; a lost wake-up only delays it.
        while (::write(m_commit_event_fd, &one, sizeof one) < 0 && errno == EINTR) {
        }
    }
}

void Auditor::stop_committer() noexcept {
    if (!m_committer.joinable()) return;
    {
        std::lock_guard<std::mutex> lock(m_commit_mutex);
        m_committer_stop = true;
    }
    m_commit_cv.notify_all();
    m_committer.join(); // a job in flight finishes first: its descriptors are closed after
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
        if (m_last_rollover_complaint_ms < 0 ||
            now - m_last_rollover_complaint_ms >= k_rollover_complaint_interval_ms) {
            m_last_rollover_complaint_ms = now;
            std::fprintf(stderr,
                         "jitgated: audit: cannot start a new spool segment %s: %s (writing on in the current one)\n",
                         text::escape_for_log(path).c_str(), errno_text(err).c_str());
        }
        return;
    }
    // A segment with lines not yet durable (written while the commit that ended here was in
    // flight) stays open until a commit covering them returned: see completed().
    if (m_seq > m_synced_seq)
        m_retired.push_back(Retired{m_segment_fd, m_seq});
    else
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
    std::fprintf(stderr, "jitgated: %s (spool %s)\n", message.c_str(),
                 text::escape_for_log(m_options.spool_dir).c_str());
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
    send_syslog_line(syslog_line_of(event));
}

std::optional<std::string> Auditor::syslog_line_of(const Json& event) noexcept {
    try {
        // No HOSTNAME on a local socket: journald and rsyslog's imuxsock (by default) take the
        // first word after the timestamp as the tag, so a host there would hide "jitgate"
        // (what glibc's syslog(3) sends has no host either). The receiver adds its own host
        // name; the spool has ours.
        return format_syslog_line(event, std::string(), static_cast<int>(::getpid()));
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

void Auditor::send_syslog_line(const std::optional<std::string>& line) {
    int err = ENOMEM; // no line: it could not be built
    try {
        for (int attempt = 0; line && attempt < 2; ++attempt) { // a restarted syslog daemon: reconnect once
            if (m_syslog_fd < 0) {
                m_syslog_fd = connect_syslog(m_options.syslog_socket);
                if (m_syslog_fd < 0) {
                    err = errno;
                    continue;
                }
            }
            if (send_syslog_datagram(m_syslog_fd, *line)) return;
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

} // namespace jitgate::audit
