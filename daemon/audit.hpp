// daemon/audit.hpp — the audit pipeline: every event to syslog and to the hash-chained journal.
//
// An Event is one JSON object (docs/audit.md). The Auditor stamps event_id, seq, time, host,
// prev_hash and hash, appends the line to the journal and fsyncs it, then sends one syslog line.
// Not thread-safe: the daemon's event loop owns it. The on-durable callback shape lets the
// central-store shipping (group commit, spool) slot in without touching callers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace jitgate::audit {

using Json = nlohmann::json;

// Event types of DESIGN.md plus the few the daemon needs to tell every step.
namespace type {
inline constexpr const char* requested = "access.requested";
inline constexpr const char* approval_recorded = "access.approval_recorded"; // one approver of several
inline constexpr const char* approved = "access.approved";
inline constexpr const char* denied = "access.denied";
inline constexpr const char* timeout = "access.timeout";
inline constexpr const char* cancelled = "access.cancelled";
inline constexpr const char* allowed_by_rule = "access.allowed_by_rule";
inline constexpr const char* allowed_by_grant = "access.allowed_by_grant";
inline constexpr const char* break_glass = "access.break_glass";
inline constexpr const char* grant_revoked = "grant.revoked";
inline constexpr const char* command_finished = "command.finished";
inline constexpr const char* session_opened = "session.opened";
inline constexpr const char* session_closed = "session.closed";
inline constexpr const char* daemon_started = "daemon.started";
inline constexpr const char* daemon_stopped = "daemon.stopped";
inline constexpr const char* config_loaded = "config.loaded";
inline constexpr const char* error = "error";
} // namespace type

// Syslog severity for an event type: alert for break_glass, warning for denials/timeouts/
// errors, notice for approvals and allows, info otherwise.
int severity_for(const std::string& event_type) noexcept;

// Canonical bytes of an event: nlohmann dump() of the object without "hash" (keys sorted,
// no whitespace). hash = lowercase hex SHA-256 of those bytes.
std::string canonical_bytes(const Json& event_without_hash);
std::string sha256_hex(const std::string& bytes);
inline constexpr const char* k_genesis_hash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// One syslog line for `event`: RFC 5424 structured data inside a message that a local
// syslog daemon (rsyslog, journald) accepts on /dev/log:
//   <PRI>Mmm dd hh:mm:ss HOST jitgate[PID]: [jitgate@32473 type="..." user="..." ...] summary
// Facility authpriv. Every value is escaped (text::escape_for_log, then RFC 5424 escapes of
// '"', '\\' and ']'); the line has no control character.
// An empty `hostname` leaves out "HOST ": the Auditor sends that form to the local socket,
// where journald and rsyslog (imuxsock) read the word after the timestamp as the tag.
// The line is at most 8000 bytes (long values and the summary are cut with a marker).
std::string format_syslog_line(const Json& event, const std::string& hostname, int pid);

struct Options {
    std::string journal_path; // its directory must exist; the Auditor never creates it
    std::string host;         // empty: gethostname()
    bool syslog = true;
    std::string syslog_socket = "/dev/log";
};

class Auditor {
public:
    // Opens (creating with mode 0640) the journal and continues its chain from the last line.
    // A torn last line (no newline: a crash mid-write) is moved to "<journal>.torn-<time>" and
    // reported by an `error` event; complete lines are never changed.
    // Throws Error if the journal cannot be opened or its last complete line is not a valid
    // event (the daemon refuses to start rather than fork the chain).
    explicit Auditor(Options options);
    ~Auditor();
    Auditor(const Auditor&) = delete;
    Auditor& operator=(const Auditor&) = delete;

    // Stamps and records `event` (which must have "type"). Returns the stamped event.
    // The journal line is written and fdatasync'ed before this returns — unless group commit
    // is on, see below. Throws Error if the journal write fails: the caller must then deny
    // (fail closed).
    Json record(Json event);

    // Group commit: with it on, record() writes the line and returns at once; the caller must
    // call sync() before it acts on, or answers anyone about, any event recorded since. One
    // fdatasync then covers every event of the batch (concurrent clients share it). Syslog
    // lines of a batch are sent once it is durable.
    void set_group_commit(bool on) noexcept { m_group_commit = on; }
    // Makes every line written since the last sync durable. Throws Error if fdatasync fails;
    // the journal is then marked broken and every later record() throws (fail closed).
    void sync();
    bool has_unsynced() const noexcept { return m_unsynced; }

    std::uint64_t last_seq() const noexcept { return m_seq; }
    std::uint64_t syslog_failures() const noexcept { return m_syslog_failures; }
    const std::string& journal_path() const noexcept { return m_options.journal_path; }

private:
    void send_syslog(const Json& event);

    Options m_options;
    int m_journal_fd = -1;
    int m_syslog_fd = -1;
    std::uint64_t m_seq = 0;
    std::string m_prev_hash;
    std::uint64_t m_syslog_failures = 0;
    // Steady-clock milliseconds of the last syslog complaint on stderr (rate limit); -1: none yet.
    std::int64_t m_last_syslog_complaint_ms = -1;
    // Set when a failed append could not be rolled back: the journal may end in a partial
    // line, so every later record() throws until a restart quarantines that tail.
    bool m_broken = false;
    bool m_group_commit = false;
    bool m_unsynced = false;
    std::vector<Json> m_syslog_queue; // events of the batch not yet durable
};

struct VerifyResult {
    bool ok = false;
    std::uint64_t events = 0;
    std::uint64_t first_seq = 0;
    std::uint64_t last_seq = 0;
    std::vector<std::string> problems; // "line N: seq 7 follows 5 (2 events missing)", ...
};

// Verifies a journal file: every line is exactly the canonical form of its event, each hash
// matches, each prev_hash is the previous line's hash, seq increases by one. Never throws
// for bad content; an unreadable file is a problem too.
VerifyResult verify_journal(const std::string& path);

} // namespace jitgate::audit
