// daemon/audit/shipper.hpp — ships the audit spool to the central audit store over HTTPS.
//
// A Shipper owns one background thread. It waits until the Auditor reports events durable
// past what the store has acknowledged, reads the next batch of spool lines in seq order (never
// a line that is not yet fdatasync'ed), POSTs it (JSON lines, or Splunk HTTP Event Collector
// events), and only after the store's acknowledgement records the progress in
// "<spool>/shipped.json" and lets the Auditor delete fully shipped segments. Before a batch that
// goes past every earlier one leaves, "<spool>/sent.json" records its last seq: the Auditor
// never issues a seq up to it again. A 2xx counts only with the store's acknowledgement of that
// very batch in its body (see check_acknowledgement): a proxy's or a misrouted server's "200 OK"
// page must not drain the spool. Anything else (transport error, timeout, any non-2xx, a 2xx
// without the acknowledgement) is retried with exponential backoff and jitter, with the SAME
// batch: the store deduplicates by event_id, so an event may arrive twice but is never lost or
// reordered. A `jsonl` batch also says how far the spool goes (k_spool_seq_header), so the store
// can show what the host has not shipped yet.
//
// Why a blocking libcurl easy handle in its own thread: there is exactly one sender, and
// ordering per host by seq needs exactly one batch in flight, so a multi handle or an event
// loop would buy nothing; blocking here never blocks the daemon's event loop (it only shares
// the spool files and a few atomics with it). stop() aborts a transfer within about a second
// through the progress callback.
//
// Depends on auditor.hpp, libcurl and common/. docs/audit.md describes the store protocol.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/audit/auditor.hpp"

namespace jitgate::audit {

enum class Format { jsonl, splunk_hec };
// "jsonl" / "splunk_hec"; nullopt for anything else.
std::optional<Format> parse_format(std::string_view name);
const char* to_string(Format format) noexcept;

// --- The pure parts, exposed for tests ---

// Where reading stopped: the next line to read is `next_seq`, at `offset` in the segment
// whose first seq is `segment_first_seq`. A hint only: read_batch checks it and falls back to
// a scan when the segment is gone or the seq does not match.
struct Cursor {
    std::uint64_t next_seq = 0;
    std::uint64_t segment_first_seq = 0;
    std::uint64_t offset = 0;
};

struct BatchLimits {
    std::size_t max_events = 500;
    std::size_t max_bytes = 1 << 20; // of the lines as written; one line longer than this still goes alone
};

struct Batch {
    std::vector<std::string> lines; // spool lines in seq order, as written, without '\n'
    std::uint64_t first_seq = 0;
    std::uint64_t last_seq = 0;
    std::uint64_t bytes = 0;       // sum of the lines plus their newlines
    std::string first_time;        // "time" of the first event (the oldest unsent one)
    std::string last_event_id;     // "event_id" of the last event ("" if it has none)
    Cursor next;                   // where the batch after this one starts
    std::vector<std::string> gaps; // "seq 7 follows 5 (1 event missing)": shipped over, reported
    bool empty() const noexcept { return lines.empty(); }
};

// Reads the next batch of `dir`'s segments: the lines with seq > after_seq and seq <=
// durable_seq, in order, at most limits.max_events lines and limits.max_bytes bytes (at least
// one line). A missing seq (a gap) is noted in `gaps` and shipped over: the store and
// `audit verify` show it, and stopping would not bring it back. Throws Error (naming the
// file and offset) for a line that is not a JSON object with an unsigned "seq" or that goes
// backwards: the shipper cannot order past it and retries until an operator repairs it.
Batch read_batch(const std::string& dir, std::uint64_t after_seq, std::uint64_t durable_seq, const BatchLimits& limits,
                 const Cursor* hint = nullptr);

struct HecFields {
    std::string source = "jitgated";
    std::string sourcetype = "jitgate:audit";
    std::string index; // empty: the token's default index
};

// Splunk HEC "time" for an event's RFC 3339 "time" ("2026-11-23T10:00:00.123Z" ->
// "1795428000.123"); nullopt if it does not parse.
std::optional<std::string> hec_time(const std::string& rfc3339);

// One HEC event for one spool line: {"time":…,"host":…,"source":…,"sourcetype":…,
// ["index":…,] "event":<the line, byte for byte>}. The event object is the spool line itself,
// so the store can re-check its hash. Throws Error if `line` is not a JSON object.
std::string hec_event(const std::string& line, const HecFields& fields);

// The request body for a batch: JSON lines (each line + '\n'), or one HEC event per line.
std::string format_body(Format format, const Batch& batch, const HecFields& fields);

// The header by which each `jsonl` batch reports the newest durable seq of the spool when it was
// sent (docs/audit.md §5): jitgate-server keeps it for the host's shipping backlog, another
// store may ignore it. Never sent with splunk_hec (Splunk's protocol is Splunk's).
inline constexpr const char* k_spool_seq_header = "Jitgate-Spool-Seq";

// Whether `response`, the body of a 2xx answer to `batch`, acknowledges that batch. Empty if
// it does, else why not (escaped, for a log line). JSON lines: a JSON object whose "stored" is
// the number of events of the batch the store now holds (new ones and duplicates) and whose
// "last_event_id" is the event_id of the batch's last event. Splunk HEC: HEC's own
// {"text":"Success","code":0}. Never throws.
std::string check_acknowledgement(Format format, const Batch& batch, const std::string& response);

// The backoff before retry number `failures` (1 = after the first failure):
// retry_min * 2^(failures-1), capped at retry_max, times (0.75 + 0.5 * unit) with unit in
// [0, 1), and never above retry_max.
std::chrono::milliseconds backoff_delay(std::chrono::milliseconds retry_min, std::chrono::milliseconds retry_max,
                                        std::uint64_t failures, double unit) noexcept;

// What the store's answer to `batch` means (docs/audit.md): a 2xx whose body acknowledges the
// batch (check_acknowledgement) stores it; a 2xx without that acknowledgement is a failure
// marked `unacknowledged` (said loudly: something other than the store answered); anything
// else is a failure. `error` names the status, `url` and the first 200 bytes of `body`,
// escaped (one printable line). Pure; never throws except std::bad_alloc.
struct StoreAnswer {
    bool ok = false;
    std::string error;           // empty when ok
    bool unacknowledged = false; // a 2xx without the acknowledgement
};
StoreAnswer judge_store_answer(Format format, const Batch& batch, long http_status, const std::string& body,
                               const std::string& url);

// The audit store's token: the first line of `path`, without surrounding blanks. Error(bad_input)
// if it cannot be read, is empty, or holds a control character (it goes into an HTTP header).
// Used by the shipper and by `jitgatectl audit verify --against-store`.
std::string read_store_token(const std::string& path);

// --- The shipper ---

struct ShipperOptions {
    std::string url; // https:// only (see allow_plain_http)
    Format format = Format::jsonl;
    // SECURITY NOTE: only this CA bundle is trusted (the system store is never consulted).
    // Required for https: start() throws Error(bad_input) without it (lib/https.hpp).
    std::string ca_file;
    std::string client_cert; // mTLS, with client_key; both or neither
    std::string client_key;
    // Read once by the constructor: its first line is the token, sent as "Authorization:
    // Bearer <token>" (jsonl) or "Authorization: Splunk <token>" (HEC). Never logged.
    std::string token_file;
    std::string proxy; // empty: no proxy, even if http(s)_proxy is set in the environment
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds timeout{30000};
    std::size_t batch_events = 500;
    std::size_t batch_bytes = 1 << 20;
    std::chrono::milliseconds retry_min{1000};
    std::chrono::milliseconds retry_max{300'000};
    std::string hec_sourcetype = "jitgate:audit";
    std::string hec_source = "jitgated";
    std::string hec_index;
    // Tests only (never from the config): accept a plain http:// url, for a loopback peer.
    bool allow_plain_http = false;
};

class Shipper {
public:
    // Checks the options and reads the token file. Throws Error(bad_input) for a url that is
    // not https://, a client_cert without client_key (or the reverse), zero batch limits, or
    // a token file that cannot be read or holds control characters. Starts nothing.
    // `auditor` must outlive the Shipper.
    Shipper(ShipperOptions options, Auditor& auditor);
    // Stops the thread (see stop()).
    ~Shipper();
    Shipper(const Shipper&) = delete;
    Shipper& operator=(const Shipper&) = delete;

    // Precondition: curl_global_init() was called once before any thread started (jitgated's
    // main does it for the approval service and the store alike).
    // Sets up the transfer first: throws Error naming the option if libcurl refuses one
    // (nothing is started then). Reads shipped.json (a malformed one is reported on stderr and
    // shipping restarts after the anchor: the store deduplicates), installs the Auditor's
    // durable hook, and starts the thread. Call on the Auditor's owning thread (the event
    // loop's, before it runs), once. Throws Error if the thread cannot be started.
    void start();
    // Wakes and joins the thread, aborting a transfer in flight within about a second, and
    // removes the durable hook. Unsent events stay in the spool for the next start.
    // Idempotent; call on the Auditor's owning thread. Never throws.
    void stop() noexcept;

    // Wakes the thread: events up to `durable_seq` are durable. Thread-safe, cheap, noexcept;
    // the Auditor's durable hook calls it. Without it the thread still looks every second.
    void notify(std::uint64_t durable_seq) noexcept;

    // Thread-safe. The Auditor's stats() plus {"shipped_seq", "unsent_events",
    // "shipped_this_run" (events), "batches_this_run", "oldest_unsent_time" (RFC 3339 time of
    // event shipped_seq + 1, or null), "last_error", "last_error_time", "last_success_time"
    // (null until they happen), "consecutive_failures", "store" (url), "format", "running"}.
    nlohmann::json status() const;
    std::uint64_t shipped_seq() const noexcept { return m_shipped_seq.load(std::memory_order_acquire); }

private:
    struct PostResult {
        bool ok = false;
        long http_status = 0;        // 0: no HTTP answer
        std::string error;           // escaped, no secret
        bool unacknowledged = false; // a 2xx without the acknowledgement: said loudly
    };

    void run() noexcept;
    void ship_loop();
    PostResult post(const std::string& body, const Batch& batch);
    // Creates m_curl and m_headers and sets every option; throws Error if libcurl refuses one.
    void prepare_transfer();
    void release_transfer() noexcept;
    void set_options(void* curl, void* headers);
    void note_failure(const PostResult& r);
    void note_success(const Batch& batch);
    // Sleeps up to `d`, or until stop(). Returns false if stopping.
    bool sleep_for(std::chrono::milliseconds d);
    void log(int severity, const std::string& message) noexcept;

    ShipperOptions m_options;
    Auditor& m_auditor;
    std::string m_token;       // SECURITY NOTE: never logged, never in status()
    void* m_curl = nullptr;    // CURL*, set up by start(), used by the thread only
    void* m_headers = nullptr; // curl_slist*, owned with m_curl
    std::thread m_thread;
    std::atomic<bool> m_stop{false};
    std::atomic<std::uint64_t> m_shipped_seq{0};
    std::uint64_t m_sent_seq = 0; // sent.json as last written (start(), then the thread only)
    bool m_started = false;

    mutable std::mutex m_mutex; // guards everything below
    std::condition_variable m_wake_cv;
    bool m_wake = false;
    std::uint64_t m_shipped_this_run = 0;
    std::uint64_t m_batches_this_run = 0;
    std::uint64_t m_consecutive_failures = 0;
    std::string m_oldest_unsent_time;
    std::string m_last_error;
    std::string m_last_error_time;
    std::string m_last_success_time;
    std::string m_last_loud_error; // a 4xx (not 408/429) goes to syslog once per distinct error
    bool m_running = false;
};

} // namespace jitgate::audit
