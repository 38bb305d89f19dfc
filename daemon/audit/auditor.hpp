// daemon/audit/auditor.hpp — the Auditor: every event to the hash-chained spool and to syslog.
//
// An Event is one JSON object (docs/audit.md). The Auditor stamps event_id, seq, time, host,
// prev_hash and hash, appends the line to the newest segment of the spool (spool.hpp) and
// fsyncs it, then sends one syslog line (syslog.hpp; in the daemon, after the replies the event
// held back: set_defer_syslog). Depends on lib/, common/ and the rest of
// daemon/audit/; no curl.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
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
    // Test seam: stands in for ::fdatasync on the spool's segments when the commit path makes
    // lines durable (record() without group commit, sync(), the committer thread). Returns 0,
    // or -1 with errno set. Empty: ::fdatasync. Tests use it to hold a sync in flight or to fail
    // one; it may be called on the committer thread.
    std::function<int(int fd)> sync_fn;
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
    // wait until the event is durable (sync(), or durable_seq() >= its seq after a pipelined
    // commit, below) before it acts on, or answers anyone about, any event recorded since. One
    // fdatasync then covers every event of the batch (concurrent clients share it). Syslog
    // lines of a batch are sent once it is durable. Set before the first start_commit().
    void set_group_commit(bool on) noexcept { m_group_commit = on; }
    // With group commit and this on, the syslog copies of events made durable are not sent
    // by the commit itself but by send_syslog_copies(): the server calls it once it has
    // released the replies those events held back, so no client waits for a syslog send
    // (issue 17). The spool, not syslog, is the record a decision waits for; the copies go
    // out in the same loop turn, in seq order. Set before the first record() with group commit.
    void set_defer_syslog(bool on) noexcept { m_defer_syslog = on; }
    // Sends the syslog copies of every event durable so far and not yet sent (a no-op unless
    // set_defer_syslog(true)). Never throws; a failed send is counted (syslog_failures()).
    void send_syslog_copies();
    // Makes every line written since the last sync durable, publishes durable_seq(), calls the
    // durable hook, and starts a new segment if the current one reached segment_bytes. Throws
    // Error if fdatasync fails; the spool is then marked broken and every later record()
    // throws (fail closed).
    // With a commit in flight (start_commit), waits for it first. After a failed fdatasync
    // (here or on the committer thread) it throws at once: nothing is durable after it.
    void sync();
    bool has_unsynced() const noexcept { return m_seq > m_synced_seq; }
    std::uint64_t last_seq() const noexcept { return m_seq; }

    // --- Pipelined group commit (the event loop's side) ---
    //
    // SECURITY NOTE (durability ordering): the loop keeps reading, deciding and writing lines
    // while one committer thread runs fdatasync for every line written up to a seq S. Only
    // when that fdatasync returned does finish_commit() (on the owning thread) publish S as
    // durable, queue the syslog copies and run the durable hook for events <= S; the server
    // releases exactly the replies that wait for events <= S (Server::release_durable). At most
    // one fdatasync is in flight; the next covers every line written meanwhile. A segment that
    // was rolled over while lines in it were not yet durable is synced before the newer one in
    // the same commit, and its descriptor stays open until a commit covering its last line
    // returned, so the committer never syncs a closed (or reused) descriptor. A failed
    // fdatasync breaks the spool for good: finish_commit() throws, commit_failed() is true,
    // durable_seq() never moves again, every later record() and sync() throws.
    //
    // The descriptor to watch (epoll, readable) for a finished commit; starts the committer
    // thread on first use. Owned by the Auditor.
    int commit_event_fd();
    // Hands every line written so far (up to last_seq()) to the committer, unless a commit is
    // in flight already (the next one, started once it finished, covers them), nothing is
    // unsynced, or the spool is broken. Returns true if a commit was started. Never blocks on
    // the disk.
    bool start_commit();
    bool commit_in_flight() const noexcept { return m_in_flight; }
    // Called when commit_event_fd() is readable (harmless when it is not): takes the result
    // of a finished commit. On success publishes the new durable seq, sends the syslog copies
    // (unless deferred: set_defer_syslog),
    // calls the durable hook and rolls the segment over if it is full; returns durable_seq().
    // Throws Error if the fdatasync failed (the spool is then broken, as sync() would).
    std::uint64_t finish_commit();
    // True once an fdatasync of the spool failed: nothing recorded after the last durable seq
    // may ever be reported as durable.
    bool commit_failed() const noexcept { return m_sync_failed; }

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
    struct Retired { // a rolled-over segment whose last lines may not be durable yet
        int fd = -1;
        std::uint64_t last_seq = 0;
    };
    struct SyncJob {
        std::vector<int> fds; // synced in order: older segments first
        std::uint64_t seq = 0;
    };
    void open_spool();
    int sync_segment(int fd) const;
    // Makes the lines up to m_seq durable on this thread (no commit in flight). Throws.
    void sync_now();
    SyncJob make_job() const;
    // What a successful sync up to `seq` releases; a failed one breaks the spool (throws).
    void completed(std::uint64_t seq, int err);
    void wait_in_flight();
    void committer_main();
    void stop_committer() noexcept;
    std::string new_event_id();
    void after_durable();
    void maybe_roll_over();
    void check_spool_full();
    void send_syslog(const Json& event);
    // Sends and drops the queued lines of events up to `seq` (durable ones only).
    void send_syslog_up_to(std::uint64_t seq);
    // The syslog line of `event`; nullopt if it could not be built (out of memory), which
    // send_syslog_line() then counts as a failure. Never throws.
    static std::optional<std::string> syslog_line_of(const Json& event) noexcept;
    void send_syslog_line(const std::optional<std::string>& line);

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
    bool m_sync_failed = false;
    std::uint64_t m_synced_seq = 0; // durable (owning thread's view of m_durable_seq)
    // The syslog lines of events not sent yet (not durable, or durable with sending deferred:
    // set_defer_syslog), in seq order. The line is built when the event is recorded (the same
    // text as later: it depends only on the event), so that no copy of the event waits with it.
    struct QueuedLine {
        std::uint64_t seq = 0;
        std::optional<std::string> line;
    };
    std::deque<QueuedLine> m_syslog_queue;
    bool m_defer_syslog = false;
    DurableHook m_durable_hook;
    std::vector<Retired> m_retired; // oldest first
    // Random bytes for event ids, drawn from getrandom in blocks (k_random_block) rather than
    // one system call per event; m_random_used of them are spent.
    std::array<unsigned char, 4096> m_random{};
    std::size_t m_random_used = sizeof m_random;

    // The committer thread (started by commit_event_fd / start_commit). m_commit_mutex guards
    // m_job, m_job_ready, m_job_done, m_job_errno and m_committer_stop; the loop side's
    // m_in_flight / m_in_flight_seq are the owning thread's alone.
    std::thread m_committer;
    std::mutex m_commit_mutex;
    std::condition_variable m_commit_cv;
    SyncJob m_job;
    bool m_job_ready = false;
    bool m_job_done = false;
    int m_job_errno = 0;
    bool m_committer_stop = false;
    int m_commit_event_fd = -1;
    bool m_in_flight = false;
    std::uint64_t m_in_flight_seq = 0;

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
