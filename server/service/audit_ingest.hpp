// server/service/audit_ingest.hpp — the audit store's wire forms at the server (docs/audit.md
// §5, format `jsonl`): the checks of a batch of a host's events before anything is stored, and
// the acknowledgement. Pure functions: no I/O, no clock, no database. Every function here takes
// hostile input and never throws except std::bad_alloc.
#pragma once

#include "server/store/store.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jitgate::server::audit_ingest {

// At most this many lines in one batch (jitgated's audit.store.batch_events is at most 10000).
inline constexpr std::size_t k_max_lines = 10000;
// The hosts listener takes bodies up to this size on POST /v1/audit/events only (the approval
// routes keep the listener's 64 KiB): jitgated's batches are audit.store.batch_size (1 MiB by
// default), and a single event can be several hundred KiB (docs/audit.md §5).
inline constexpr std::size_t k_max_body = 32 * 1024 * 1024;

// At most this many bytes in one line (one event). jitgated takes requests of at most 64 KiB
// (common/wire k_max_frame) and writes each one's text into one event, escaped: at worst 6
// bytes per byte (\u00NN), under 400 KiB with its own members. A longer line is not one of its
// events: 413 naming the line, before it is parsed.
inline constexpr std::size_t k_max_line = 512 * 1024;

// A batch refused before the database sees it: the HTTP status, the error code of the body
// (docs/protocol.md §8 form) and one line saying which line and why.
struct Refusal {
    int status = 400;
    std::string code;
    std::string message;
};

struct BatchCheck {
    std::vector<store::AuditEvent> events; // in line order, when the batch passed
    std::string host;                      // the host of every event, when the batch passed
    std::optional<Refusal> refused;
};

// The server's chain events raised at syslog alert, which webhooks may list: the chain broke
// ("audit.chain_gap", "audit.chain_fork"), an event came again edited ("audit.chain_edited"),
// or it started over at seq 1 ("audit.chain_restarted": a wiped spool loses what was not
// shipped yet). Not "audit.chain_started" (a host's first event).
bool is_chain_alert(std::string_view type) noexcept;

// True for `application/x-ndjson`, with optional parameters ("; charset=utf-8").
bool is_ndjson(const std::string* content_type) noexcept;

// Checks a whole `jsonl` body for `host` (the host the client certificate acts for, already
// matched by the caller against may_act_for): the body is lines each ending in '\n' (1 to
// k_max_lines of them, each at most k_max_line bytes: 413 beyond); each line parses strictly
// (lib/strict_json: no duplicate member; 400 otherwise), once, and that value is exactly the
// canonical form of a stamped event whose hash matches its content (lib/audit_chain
// check_parsed_line; 422 naming the line, seq and event_id otherwise),
// with seq 1..INT64_MAX; every event's `host` is one the certificate may act for (403), and the
// same for every event (a certificate naming several hosts sends each its own batches: 400). One
// bad line refuses the whole batch. Every text the store keeps (event_id, host, time, type,
// request_id, user, the line) must be text it takes, no NUL and valid UTF-8 (422 naming the line):
// never a batch the store would refuse later (the host would get 503 and resend it for ever).
// `may_act_for` says whether the certificate names a host. Thread-safe when may_act_for is:
// the server runs it off the event loop (a 32 MiB body takes a while).
BatchCheck check_batch(std::string_view body, const std::function<bool(const std::string&)>& may_act_for);

// The request header by which jitgated reports, with each `jsonl` batch, the newest seq in its
// spool (docs/audit.md §5): the store keeps it as the chain's reported_seq, for the backlog.
inline constexpr const char* k_spool_seq_header = "jitgate-spool-seq"; // lower case, as http::Request looks it up

// What a batch's Jitgate-Spool-Seq header says. `seq` > 0: a valid report; 0 with an empty
// `problem`: no header (an older jitgated, another shipper); 0 with a `problem`: a header that
// is not a valid report, to be ignored (and logged), never a reason to refuse the batch: the
// events are the evidence, the backlog only a figure.
struct SpoolSeq {
    std::int64_t seq = 0;
    std::string problem; // one line, hostile text shown escaped
};
// Valid: 1 to 19 ASCII digits (no sign, blank or leading zero), at most INT64_MAX, and at least
// the largest seq of `events` (the batch, already checked): the spool holds what it sends.
SpoolSeq spool_seq(const std::string* header, const std::vector<store::AuditEvent>& events);

// The acknowledgement of §5: {"stored":N,"last_event_id":"..."} plus `new` and `duplicates`
// (ignored by jitgated, for people reading it).
std::string ack_json(std::size_t stored, const std::string& last_event_id, std::size_t added, std::size_t duplicates);

// Which hosts' batches may be checked now (the server's one checking worker, service.cpp):
// SECURITY NOTE: the checking slots are shared by the whole fleet, so no host may hold more than
// one (a second batch of a host whose batch is still queued or checked is refused at once,
// taking no slot; a certificate naming several hosts holds one per host it names), and a host
// refused because all slots were taken is owed a turn: while hosts
// are owed, a freed slot goes to one of them before a host that was just served (which would
// otherwise come straight back and take it every time, while the refused wait Retry-After):
// a host not owed is admitted only while more slots are free than hosts are owed, else it is
// refused and owed in turn (so a slot waits at most until an owed host comes back). Owed turns
// lapse after `owed_for_s` (a host that stopped sending), and at most k_max_owed hosts are owed
// at once. Not thread-safe: the loop thread's.
class CheckTurns {
public:
    enum class Verdict {
        admitted,  // a slot is taken: call done() once its batch is answered
        host_busy, // this host's previous batch is still queued or checked
        full,      // every slot is taken (or owed to other hosts): the host is owed a turn
    };
    static constexpr std::size_t k_max_owed = 100000;

    // At most `slots` (>= 1) batches and `bytes` of their bodies in flight, across all hosts;
    // one batch is always admitted when none is in flight, whatever its size.
    CheckTurns(std::size_t slots, std::size_t bytes, std::int64_t owed_for_s);
    // `host`: the client certificate's (first) name; `per_host` (>= 1): how many batches it may
    // have in flight, the number of hosts the certificate names; `bytes`: the batch's body size.
    // `now`: Unix seconds. A host refused "full" while it has nothing in flight is owed a turn;
    // room for the batch of the host owed longest (as large as it last sent) is held back from
    // every other host, and a host not owed gets a slot only while more are free than hosts are
    // owed.
    Verdict admit(const std::string& host, std::size_t per_host, std::size_t bytes, std::int64_t now);
    // Gives back one slot of `host` and the `bytes` it was admitted with. Unknown hosts are ignored.
    void done(const std::string& host, std::size_t bytes);
    std::size_t in_flight() const noexcept { return m_total; }
    std::size_t bytes_in_flight() const noexcept { return m_bytes; }
    std::size_t owed() const noexcept { return m_owed.size(); }

private:
    std::size_t m_slots;
    std::size_t m_byte_budget;
    std::int64_t m_owed_for_s;
    std::size_t m_bytes = 0;
    std::map<std::string, std::size_t, std::less<>> m_in_flight; // host -> its batches in flight
    std::size_t m_total = 0;
    struct Owed {
        std::uint64_t ticket; // order of the first refusal
        std::int64_t last;    // when last refused "full": the claim lapses owed_for_s after
        std::size_t bytes;    // the size of the batch last refused
    };
    std::map<std::string, Owed, std::less<>> m_owed;
    std::map<std::uint64_t, std::string> m_owed_order; // ticket -> host, the longest owed first
    std::uint64_t m_next_ticket = 0;
};

// GET /v1/audit/state: {"host":...,"last_seq":N,"last_hash":...,"last_event_id":...,
// "chain":"ok"|"broken","problem":...,"problem_seq":N,"last_seen":"RFC 3339","events":N,
// "restarts":N,"restart_at":"RFC 3339","restart_previous_seq":N,"restart_previous_hash":...,
// "reported_seq":N,"reported_at":"RFC 3339","backlog":N|null}; a host without events: last_seq
// 0, zeros and empty strings. `backlog` is store::shipping_backlog: null when unknown.
std::string state_json(const std::string& host, const std::optional<store::AuditChain>& chain);

} // namespace jitgate::server::audit_ingest
