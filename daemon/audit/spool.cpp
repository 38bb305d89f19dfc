// daemon/audit/spool.cpp — the spool directory's files and its verifier (see spool.hpp).
#include "daemon/audit/spool.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <deque>
#include <system_error>
#include <utility>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"

namespace jitgate::audit {
namespace {

constexpr std::size_t k_scan_chunk = 64 * 1024;

std::string errno_text(int err) {
    return std::system_category().message(err);
}

std::string base_name(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

} // namespace

namespace spool {
namespace {

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

} // namespace

std::string join_path(const std::string& dir, const std::string& name) {
    if (!dir.empty() && dir.back() == '/') return dir + name;
    return dir + "/" + name;
}

std::uint64_t file_size(int fd, const std::string& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw Error(ErrorCode::internal, path, "cannot stat: " + errno_text(errno));
    return static_cast<std::uint64_t>(st.st_size);
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

// Makes a directory entry (a new file) durable. Returns 0 or the errno of the failure.
int fsync_dir(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    return rc == 0 ? 0 : err;
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
    if (d == nullptr)
        throw Error(ErrorCode::internal, dir, "cannot read the audit spool directory: " + errno_text(errno));
    try {
        errno = 0;
        while (const dirent* ent = ::readdir(d)) {
            const std::string name = ent->d_name;
            if (name != "." && name != "..") fn(name);
            errno = 0;
        }
        if (errno != 0)
            throw Error(ErrorCode::internal, dir, "cannot read the audit spool directory: " + errno_text(errno));
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
        throw Error(ErrorCode::internal, join_path(dir, k_anchor_file),
                    "needs \"seq\" (unsigned) and \"hash\" (64 hex digits)");
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

namespace {

// What deleting shipped segments changes: anchor.json (written first, by rename) and the oldest
// segment (deleted after). Equal before and after a verify: no deletion ran in between.
struct DeletionState {
    ino_t anchor_ino = 0;
    std::int64_t anchor_mtime_ns = -1;
    std::string first_segment;

    bool operator==(const DeletionState&) const = default;
};

DeletionState deletion_state(const std::string& dir) {
    DeletionState s;
    struct stat st {};
    if (::stat(spool::join_path(dir, spool::k_anchor_file).c_str(), &st) == 0) {
        s.anchor_ino = st.st_ino;
        s.anchor_mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    }
    try {
        const auto segments = spool::list_segments(dir);
        if (!segments.empty()) s.first_segment = segments.front().path;
    } catch (const Error&) {
        // verify_spool_once reports it
    }
    return s;
}

VerifyResult verify_spool_once(const std::string& dir) {
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
        r.notes.push_back(base_name(torn) + ": a torn tail moved aside at start-up (" +
                          text::plural(size, "byte", "bytes") + "; not part of the chain, never shipped)");
    }

    // Where the chain must start: after the anchor, or at genesis. If segments older than
    // the anchor are still there (a crash while deleting shipped ones), the chain runs
    // through them and the anchor must name one of their events.
    ChainVerifier::Start start = ChainVerifier::Start::genesis;
    if (anchor_broken)
        start = ChainVerifier::Start::free;
    else if (anchor && !segments.empty() && segments.front().first_seq <= anchor->seq) {
        start = ChainVerifier::Start::free;
        r.notes.push_back("anchor.json: segments up to seq " + std::to_string(anchor->seq) +
                          " were shipped but are not deleted yet");
    } else if (anchor) {
        start = ChainVerifier::Start::anchor;
        r.notes.push_back("anchor.json: events up to seq " + std::to_string(anchor->seq) + " were shipped and deleted");
    }
    ChainVerifier v(r, start);
    if (anchor) v.set_anchor(anchor->seq, anchor->hash);

    for (std::size_t i = 0; i < segments.size(); ++i) {
        const spool::Segment& seg = segments[i];
        const std::string name = base_name(seg.path);
        const bool newest = i + 1 == segments.size();
        const auto lines = verify_file(
            v, seg.path, name + ":", newest ? "; jitgated moves it aside at its next start" : "",
            [&](std::uint64_t line_no, std::uint64_t seq) {
                if (line_no == 1 && seq != seg.first_seq)
                    v.problem(name + ":1", "the segment's name says it starts at seq " + std::to_string(seg.first_seq) +
                                               ", but its first event is seq " + std::to_string(seq));
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

} // namespace

VerifyResult verify_spool(const std::string& dir) {
    // A running daemon deletes shipped segments while this reads: anchor.json first, then the
    // oldest segments. A verify that overlapped that would report a gap or a missing file that
    // is not there; it is read again (a few times) until no deletion ran during one pass. What a
    // pass finds with the spool unchanged under it is reported as it is.
    constexpr int k_passes = 5;
    VerifyResult r;
    DeletionState before = deletion_state(dir);
    for (int pass = 0; pass < k_passes; ++pass) {
        r = verify_spool_once(dir);
        if (r.ok) return r;
        DeletionState after = deletion_state(dir);
        if (after == before) return r;
        before = std::move(after); // the next pass starts from what this one ended with
    }
    // Appended, not `"..." + std::to_string(...)`: g++ 12 at -O3 (the bench's Release build)
    // reports a false -Warray-bounds on that operator+.
    std::string note = "the spool's shipped segments were being deleted during each of ";
    note += std::to_string(k_passes);
    note += " passes; run verify again";
    r.notes.push_back(std::move(note));
    return r;
}

} // namespace jitgate::audit
