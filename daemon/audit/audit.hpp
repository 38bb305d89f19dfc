// daemon/audit/audit.hpp — the audit pipeline: every event to syslog and to the hash-chained spool.
//
// An Event is one JSON object (docs/audit.md). The Auditor stamps event_id, seq, time, host,
// prev_hash and hash, appends the line to the newest segment of the spool and fsyncs it, then
// sends one syslog line. The spool is a directory of segment files, "seg-<first seq, 20
// digits>.jsonl", one canonical event per line; the hash chain and seq run on across segments
// and restarts. The Shipper (shipper.hpp) reads durable lines from it and posts them to the
// central store; segments are deleted only once the store acknowledged every event in them,
// after "anchor.json" recorded the last deleted event so the chain stays verifiable.
// Depends on common/ and OpenSSL (SHA-256); no curl.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/audit_event.hpp"

namespace jitgate::audit {

using Json = nlohmann::json;

// Syslog severity for an event type: alert for break_glass, warning for denials/timeouts/
// errors, notice for approvals and allows, info otherwise.
int severity_for(const std::string& event_type) noexcept;

// One syslog line for `event`: RFC 5424 structured data inside a message that a local
// syslog daemon (rsyslog, journald) accepts on /dev/log:
//   <PRI>Mmm dd hh:mm:ss HOST jitgate[PID]: [jitgate@32473 type="..." user="..." ...] summary
// Facility authpriv. Every value is escaped (text::escape_for_log, then RFC 5424 escapes of
// '"', '\\' and ']'); the line has no control character.
// An empty `hostname` leaves out "HOST ": the Auditor sends that form to the local socket,
// where journald and rsyslog (imuxsock) read the word after the timestamp as the tag.
// The line is at most 8000 bytes (long values and the summary are cut with a marker).
std::string format_syslog_line(const Json& event, const std::string& hostname, int pid);

// The current time as RFC 3339 UTC with milliseconds: "2026-11-23T10:00:00.123Z".
std::string rfc3339_now();

// Sends one line "<PRI>Mmm dd hh:mm:ss jitgate[PID]: MESSAGE" (facility authpriv) to the
// datagram socket at `socket_path` over a fresh socket. For the pipeline's own
// rare alerts (spool full, store rejecting events), from any thread: thread-safe, never throws.
// Build MESSAGE from escaped pieces; a MESSAGE that still holds a control character or invalid
// UTF-8 is escaped as a whole. Returns false if the line could not be sent.
bool send_syslog_message(const std::string& socket_path, int severity, const std::string& message) noexcept;

inline constexpr int k_severity_alert = 1;
inline constexpr int k_severity_err = 3;
inline constexpr int k_severity_warning = 4;
inline constexpr int k_severity_notice = 5;

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

// Reads a segment (or any file) line by line from `offset`, in large chunks. The file may grow
// while it is read. One object per reader; not shared between threads.
class LineReader {
public:
    // Throws Error if `path` cannot be opened.
    explicit LineReader(const std::string& path, std::uint64_t offset = 0);
    ~LineReader();
    LineReader(const LineReader&) = delete;
    LineReader& operator=(const LineReader&) = delete;

    struct Line {
        std::string text;         // without its '\n'
        std::uint64_t offset = 0; // of its first byte in the file
        bool complete = false;    // false: the file ends after it without a '\n' (torn, or being written)
    };
    // Reads the next line into `line`; false at the end of the file. Throws Error on a read error.
    bool next(Line& line);

private:
    std::string m_path;
    int m_fd = -1;
    std::string m_buf;            // bytes of the file from m_buf_offset
    std::size_t m_pos = 0;        // next unread byte in m_buf
    std::uint64_t m_buf_offset = 0;
    bool m_eof = false;
};

// The last `n` complete lines of the spool (across segments), oldest first. Throws Error if
// the directory or a segment cannot be read.
std::vector<std::string> tail_lines(const std::string& dir, std::size_t n);

} // namespace spool

struct Options {
    std::string spool_dir;    // must exist; the Auditor never creates it (tmpfiles.d does)
    std::string host;         // empty: gethostname()
    bool syslog = true;
    std::string syslog_socket = "/dev/log";
    // After a sync, a segment of at least this size is closed and the next line starts a new one.
    std::uint64_t segment_bytes = 8ULL << 20;
    // Soft bound on the total size of the segments: see spool_full(). Without a central store
    // nothing is ever deleted, so the bound is reached eventually; size it, or ship.
    std::uint64_t max_bytes = 1ULL << 30;
};

class Auditor {
public:
    // Opens the spool and continues the chain (seq and hash) from the last line of the newest
    // segment, or from anchor.json when every segment was shipped and deleted, or from genesis.
    // A torn tail of the newest segment (bytes without a final newline, or a last line that is
    // not a valid event continuing the chain: a crash mid-write) is copied to
    // "<segment>.torn-<unix time>", cut off, and reported by an `error` event; complete lines
    // before it never change. Fsyncs the newest segment, so everything on disk counts as durable.
    // A spool that ends below what already left the host (shipped.json, sent.json: it was cut,
    // or restored from an older copy) is continued after that seq, in a new segment, with an
    // `error` event ("spool_cut") first: no seq is ever issued twice. A malformed sent.json is
    // an Error too.
    // Throws Error if the directory does not exist, is locked by another process (two writers
    // would fork the chain), has a malformed anchor.json, or if a line of the newest segment
    // other than its last is not a valid event continuing the chain, or the segment before it
    // does not end with a valid event (context "file:line": the daemon refuses to start rather
    // than fork the chain; `jitgatectl audit verify DIR` shows what is wrong). Start-up reads
    // the newest segment in full and only the last line of the one before: older segments are
    // `audit verify`'s job.
    explicit Auditor(Options options);
    ~Auditor();
    Auditor(const Auditor&) = delete;
    Auditor& operator=(const Auditor&) = delete;

    // --- The event loop's side (not thread-safe: one owning thread) ---

    // Stamps and records `event` (which must have "type"). Returns the stamped event.
    // Every string (and key) that is not valid UTF-8 is stored escaped (text::escape_for_log),
    // so the line is always valid UTF-8 JSON; non-finite numbers become null.
    // The line is written and fdatasync'ed before this returns — unless group commit is on,
    // see below. Throws Error if the write fails: the caller must then deny (fail closed).
    // Writes even when spool_full(): denials and errors must still be recorded.
    Json record(Json event);

    // Group commit: with it on, record() writes the line and returns at once; the caller must
    // call sync() before it acts on, or answers anyone about, any event recorded since. One
    // fdatasync then covers every event of the batch (concurrent clients share it). Syslog
    // lines of a batch are sent once it is durable.
    void set_group_commit(bool on) noexcept { m_group_commit = on; }
    // Makes every line written since the last sync durable, publishes durable_seq(), calls the
    // durable hook, and starts a new segment if the current one reached segment_bytes. Throws
    // Error if fdatasync fails; the spool is then marked broken and every later record()
    // throws (fail closed).
    void sync();
    bool has_unsynced() const noexcept { return m_unsynced; }
    std::uint64_t last_seq() const noexcept { return m_seq; }

    // Called on the owning thread after each fdatasync that made new events durable, with the
    // new durable seq. Must be cheap and must not throw (exceptions are swallowed). The
    // Shipper's start() installs its wake-up here and its stop() removes it; call both on the
    // owning thread.
    using DurableHook = std::function<void(std::uint64_t durable_seq)>;
    void set_durable_hook(DurableHook hook) { m_durable_hook = std::move(hook); }

    // --- Thread-safe ---

    // Highest seq whose line is fdatasync'ed; the Shipper never reads past it.
    std::uint64_t durable_seq() const noexcept { return m_durable_seq.load(std::memory_order_acquire); }
    // True while the segments total at least max_bytes. The broker then refuses new privileged
    // actions (SECURITY NOTE: fail closed when the audit trail cannot leave the host), while
    // record() keeps writing. On entering this state an `alert` goes to syslog (repeated at
    // most every 5 minutes while it stays full), and a `notice` when it drains below 90 %.
    bool spool_full() const noexcept {
        return m_spool_bytes.load(std::memory_order_relaxed) >= m_options.max_bytes;
    }
    std::uint64_t spool_bytes() const noexcept { return m_spool_bytes.load(std::memory_order_relaxed); }
    std::uint64_t syslog_failures() const noexcept { return m_syslog_failures.load(std::memory_order_relaxed); }
    const std::string& spool_dir() const noexcept { return m_options.spool_dir; }
    const Options& options() const noexcept { return m_options; }
    // {"spool_dir", "spool_bytes", "spool_max_bytes", "segments", "spool_full",
    //  "spooled_events", "last_seq", "durable_seq", "syslog_failures"}.
    Json stats() const;
    // The segments as the Auditor counts them, oldest first (bytes as of the last write).
    std::vector<spool::Segment> segments() const;
    // Deletes the segments whose every event is <= shipped_seq except the newest (see
    // spool::delete_shipped), updates the spool size and sends the "drained" notice if due.
    // Returns how many were deleted. Called by the Shipper's thread. Throws Error as
    // spool::delete_shipped does.
    std::size_t discard_shipped(std::uint64_t shipped_seq);

private:
    void open_spool();
    void after_durable();
    void maybe_roll_over();
    void check_spool_full();
    void send_syslog(const Json& event);

    Options m_options;
    int m_dir_fd = -1;     // held with flock(LOCK_EX): one writer per spool
    int m_segment_fd = -1; // the newest segment, O_APPEND
    int m_syslog_fd = -1;
    std::uint64_t m_seq = 0;
    std::string m_prev_hash;
    std::uint64_t m_current_bytes = 0; // size of the newest segment
    // Steady-clock milliseconds of the last complaint on stderr (rate limit); -1: none yet.
    std::int64_t m_last_syslog_complaint_ms = -1;
    std::int64_t m_last_rollover_complaint_ms = -1;
    // Set when a failed append could not be rolled back: the segment may end in a partial
    // line, so every later record() throws until a restart quarantines that tail.
    bool m_broken = false;
    bool m_group_commit = false;
    bool m_unsynced = false;
    std::vector<Json> m_syslog_queue; // events of the batch not yet durable
    DurableHook m_durable_hook;

    std::atomic<std::uint64_t> m_durable_seq{0};
    std::atomic<std::uint64_t> m_published_seq{0}; // m_seq, for other threads
    std::atomic<std::uint64_t> m_spool_bytes{0};
    std::atomic<std::uint64_t> m_syslog_failures{0};
    mutable std::mutex m_segments_mutex; // guards m_segments
    std::vector<spool::Segment> m_segments; // oldest first; back() is being written
    std::mutex m_full_mutex;                 // guards the alert state below
    bool m_full_alerted = false;
    std::int64_t m_last_full_alert_ms = 0;
    std::mutex m_discard_mutex; // one deletion at a time
};

struct VerifyResult {
    bool ok = false;
    std::uint64_t events = 0;
    std::uint64_t first_seq = 0;
    std::uint64_t last_seq = 0;
    std::uint64_t segments = 0;
    std::vector<std::string> problems; // "seg-…jsonl:3: seq 7 follows 5 (1 event missing)", ...
    std::vector<std::string> notes;    // not failures: torn tails kept aside, the anchor used, ...
};

// Verifies one journal or segment file: every line is exactly the canonical form of its
// event, each hash matches, each prev_hash is the previous line's hash, seq increases by one.
// The first line may continue an earlier file. Never throws for bad content; an unreadable
// file is a problem too.
VerifyResult verify_journal(const std::string& path);

// Verifies a spool directory: every segment as verify_journal does, the chain and seq across
// segments (a deleted segment shows as a seq gap), each segment's name against its first seq,
// and the start: the first event continues anchor.json (seq anchor.seq + 1, prev_hash
// anchor.hash), or, without an anchor, is seq 1 with the genesis prev_hash; and the end: the
// spool must not end below what shipped.json or sent.json say left the host (a cut spool).
// Quarantined torn tails are listed in `notes`, not counted as problems. Never throws.
VerifyResult verify_spool(const std::string& dir);

} // namespace jitgate::audit
