// daemon/audit/auditor.hpp — the Auditor: every event to the hash-chained spool and to syslog.
//
// An Event is one JSON object (docs/audit.md). The Auditor stamps event_id, seq, time, host,
// prev_hash and hash, appends the line to the newest segment of the spool (spool.hpp) and
// fsyncs it, then sends one syslog line (syslog.hpp). Depends on lib/, common/ and the rest of
// daemon/audit/; no curl.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/audit/spool.hpp"
#include "daemon/audit/syslog.hpp"
#include "lib/audit_event.hpp"

namespace jitgate::audit {

struct Options {
    std::string spool_dir; // must exist; the Auditor never creates it (tmpfiles.d does)
    std::string host;      // empty: gethostname()
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
    bool spool_full() const noexcept { return m_spool_bytes.load(std::memory_order_relaxed) >= m_options.max_bytes; }
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
    mutable std::mutex m_segments_mutex;    // guards m_segments
    std::vector<spool::Segment> m_segments; // oldest first; back() is being written
    std::mutex m_full_mutex;                // guards the alert state below
    bool m_full_alerted = false;
    std::int64_t m_last_full_alert_ms = 0;
    std::mutex m_discard_mutex; // one deletion at a time
};

} // namespace jitgate::audit
