// daemon/audit/spool.hpp — the files of the audit spool directory: segments, anchor.json,
// shipped.json, sent.json, and the spool verifier.
//
// The spool is a directory of segment files, "seg-<first seq, 20 digits>.jsonl", one
// canonical event per line; the hash chain and seq run on across segments and restarts. The
// Auditor (auditor.hpp) appends to the newest segment; the Shipper (shipper.hpp) reads durable
// lines and posts them to the central store; segments are deleted only once the store
// acknowledged every event in them, after "anchor.json" recorded the last deleted event so the
// chain stays verifiable. Depends on lib/ (the event model and the chain checks) and common/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>
#include <unistd.h>

#include "lib/audit_chain.hpp"
#include "lib/audit_event.hpp"
#include "lib/file_io.hpp"

namespace jitgate::audit {

// The files of the spool directory. Every function here is thread-safe (no shared state) and
// reports failures by throwing Error naming the file.
namespace spool {

inline constexpr const char* k_anchor_file = "anchor.json";
inline constexpr const char* k_shipped_file = "shipped.json";
inline constexpr const char* k_sent_file = "sent.json";

// "seg-00000000000000000042.jsonl" for first_seq 42.
std::string segment_name(std::uint64_t first_seq);
// The first seq a segment file name encodes, or nullopt if `name` is not exactly a segment
// name (a ".torn-*" copy, anchor.json, a temporary file, ...).
std::optional<std::uint64_t> parse_segment_name(std::string_view name);

struct Segment {
    std::string path;            // dir + "/" + segment_name(first_seq)
    std::uint64_t first_seq = 0; // from the name
    std::uint64_t bytes = 0;     // size when listed
};
// The segments of `dir`, oldest first. Throws Error if the directory cannot be read.
std::vector<Segment> list_segments(const std::string& dir);
// Paths of the quarantined torn tails ("seg-*.jsonl.torn-*") in `dir`, sorted. Never throws
// for an unreadable directory (returns none).
std::vector<std::string> list_torn(const std::string& dir);

// The last event of the segments already deleted (every event up to it reached the store).
struct Anchor {
    std::uint64_t seq = 0;
    std::string hash;
    std::string event_id;
};
// nullopt if there is no anchor.json; throws Error if it exists but is unreadable or malformed.
std::optional<Anchor> read_anchor(const std::string& dir);
void write_anchor(const std::string& dir, const Anchor& anchor);

// Shipping progress: every event up to `seq` was acknowledged (2xx) by the central store.
struct Shipped {
    std::uint64_t seq = 0;
    std::string time; // RFC 3339, when it was acknowledged
};
// nullopt if there is no shipped.json; throws Error if it exists but is unreadable or malformed.
std::optional<Shipped> read_shipped(const std::string& dir);
void write_shipped(const std::string& dir, const Shipped& shipped);

// The high-water mark of what left the host: every event up to this seq has been handed to
// the central store (sent, acknowledged or not). The shipper writes it before it sends a batch
// that goes further, so the store can never hold a seq above it, and the Auditor never issues a
// seq at or below it again. nullopt if there is no sent.json; throws Error if it is malformed.
std::optional<std::uint64_t> read_sent(const std::string& dir);
void write_sent(const std::string& dir, std::uint64_t seq);

// Replaces dir/name with `content` so that a crash leaves the old or the new file, never a
// mix: writes dir/name.tmp (mode 0640), fsyncs it, renames it over dir/name, fsyncs dir.
void write_file_atomic(const std::string& dir, const std::string& name, const std::string& content);

// How many segments, from the oldest, hold only events <= shipped_seq and may be deleted.
// The newest segment (the one being written) never counts. `segments` sorted oldest first.
std::size_t count_deletable(const std::vector<Segment>& segments, std::uint64_t shipped_seq) noexcept;

// Deletes the first count_deletable(segments, shipped_seq) segments: first writes anchor.json
// with the last event of the last of them (read from its file and checked to be the event
// just before the next segment), then unlinks them oldest first and fsyncs `dir`.
// Throws Error if the anchor cannot be read or written: nothing is deleted then. An unlink
// that fails stops the deletion and is reported in `problem` (the anchor is already right;
// the rest is retried next time).
struct DeleteResult {
    std::vector<Segment> deleted;
    std::string problem; // empty: everything deletable was deleted
};
DeleteResult delete_shipped(const std::string& dir, const std::vector<Segment>& segments, std::uint64_t shipped_seq);

// Segments are read with LineReader (lib/audit_chain.hpp).

// The last `n` complete lines of the spool (across segments), oldest first. Throws Error if
// the directory or a segment cannot be read.
std::vector<std::string> tail_lines(const std::string& dir, std::size_t n);

// --- File helpers shared by the spool and the Auditor ---

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

// dir + "/" + name (no doubled '/').
std::string join_path(const std::string& dir, const std::string& name);
// Size of the open file `fd`; throws Error naming `path` if fstat fails.
std::uint64_t file_size(int fd, const std::string& path);
// Writes all of `data` (lib/file_io.hpp).
using file_io::write_all;
// Reads exactly `len` bytes at `offset`; throws Error naming `path` on a read error or if the
// file is shorter.
void read_exact_at(int fd, char* buf, std::size_t len, off_t offset, const std::string& path);
// Makes a directory entry (a new file) durable. Returns 0 or the errno of the failure.
int fsync_dir(const std::string& dir);
// The last line of a closed segment (without its '\n'), or nullopt for an empty file. Throws
// Error if it cannot be read or does not end with '\n' (only the newest segment can have a
// torn tail).
std::optional<std::string> last_line_of(const std::string& path);

} // namespace spool

// Verifies a spool directory: every segment as verify_journal does, the chain and seq across
// segments (a deleted segment shows as a seq gap), each segment's name against its first seq,
// and the start: the first event continues anchor.json (seq anchor.seq + 1, prev_hash
// anchor.hash), or, without an anchor, is seq 1 with the genesis prev_hash; and the end: the
// spool must not end below what shipped.json or sent.json say left the host (a cut spool).
// Quarantined torn tails are listed in `notes`, not counted as problems. Never throws.
VerifyResult verify_spool(const std::string& dir);

} // namespace jitgate::audit
