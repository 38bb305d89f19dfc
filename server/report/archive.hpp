// server/report/archive.hpp — the audit store's retention (docs/server.md "Retention and
// archives"): a month's archive export, its verification without the server, and the prune of
// months that were exported and are older than the retention.
//
// A month is a UTC calendar month of the server's clock (received_at), never of the hosts'
// `time`. Its archive is a directory: one <host>.jsonl per host holding that host's stored
// lines of the month byte for byte, one per line, in arrival order (the chain's order; a chain
// restarted at seq 1 continues in the same file), and MANIFEST.json naming each file with its
// event count, first seq and prev_hash, last seq and hash and SHA-256. MANIFEST.sha256 holds the
// manifest's own SHA-256 (sha256sum format), which the store records (audit_archives) and the
// server's "audit.exported" event names: the manifest is deterministic, so the same stored
// events always give the same manifest, and a changed one shows.
//
// Threading: each call uses the Store it is given (one thread at a time). Errors: Error(io)
// from the store or the file system, Error(bad_input) for a request that must be refused (the
// message says why); nothing is half-written (an export writes into a temporary directory
// renamed into place; a prune is one store transaction per month).
#pragma once

#include "server/store/store.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace jitgate::server::report {

inline constexpr const char* k_archive_format = "jitgate-audit-archive-1";

struct ArchiveHost {
    std::string host;
    std::string file; // "<host>.jsonl"
    std::int64_t events = 0;
    std::int64_t first_seq = 0;
    std::string first_prev_hash;
    std::int64_t last_seq = 0;
    std::string last_hash;
    std::string sha256; // of the file
};

struct Manifest {
    std::string month; // "YYYY-MM"
    std::int64_t received_from = 0;
    std::int64_t received_to = 0;
    std::int64_t events = 0;
    std::vector<ArchiveHost> hosts; // by host name
    // MANIFEST.json: the same input always gives the same bytes.
    std::string text() const;
    // The SHA-256 (hex) of text().
    std::string sha256() const;
};

// Whether `host` is safe as a file name: 1-253 of [A-Za-z0-9._-], not starting with '.'.
bool safe_host_file_name(const std::string& host);

// The month's manifest as the store holds it now (every event with received_at in the month),
// without writing anything. Error(bad_input) for a host name unsafe as a file name.
Manifest month_manifest(store::Store& store, const store::Month& month);

struct ExportResult {
    Manifest manifest;
    std::string manifest_sha256;
    bool recorded_before = false; // the month was exported before (with the same manifest)
};

// Writes the month's archive to `dir` and records it in the store (audit_archives, with the
// "audit.exported" event by `actor` at `now`). Refused (Error bad_input): a month not over at
// `now`; `dir` existing (never overwrite evidence); a month exported before whose manifest
// differs from today's (the stored events changed: nothing is written). Files are written
// into `dir`.tmp-XXXXXX, each fsync'd, and the directory renamed to `dir` (never replacing one).
ExportResult export_month(store::Store& store, const store::Month& month, const std::string& dir, std::int64_t now,
                          const std::string& actor);

// One archive directory as verify_archives() found it.
struct ArchiveCheck {
    std::string dir;
    std::string month; // from the manifest; "" if unreadable
    std::string manifest_sha256;
    std::int64_t hosts = 0;
    std::int64_t events = 0; // lines checked
    std::vector<std::string> problems;
    std::vector<std::string> notes; // not failures: chains restarted, links not checkable
    bool ok() const { return problems.empty(); }
};

// Re-verifies archive directories without the store: each line's hash (lib/audit_chain
// check_line) and host, prev_hash links and seq without gaps within each file (a line at seq 1
// with the genesis prev_hash starts a new chain: a note), each file's count, first and last
// event and SHA-256 against MANIFEST.json, MANIFEST.sha256 against MANIFEST.json, no file
// missing or extra; and, for consecutive months given together, that each host's first event of
// a month continues its last event of the month before. Never throws for bad content.
std::vector<ArchiveCheck> verify_archives(const std::vector<std::string>& dirs);

// One month of a prune, as planned or done.
struct PruneMonth {
    store::Month month;
    std::int64_t events = 0;
    std::int64_t hosts = 0;
    std::string manifest_sha256;
    std::string archive; // the archive directory given for it, verified (named by "audit.pruned")
};

// Prunes every month before `before` that holds events, oldest first, if every one of them (a)
// is older than the retention: the month `retention_months` after it ended by `now`, (b) was
// exported (audit_archives) with the manifest the store gives now, and (c) has its archive
// directory among `archive_dirs` (one directory per month, each named by its MANIFEST.json)
// and that archive passes verify_archives() (together with every other directory given, so
// consecutive months are linked) with a MANIFEST.json whose SHA-256 is the one recorded and the
// one the store gives now; each host's first event of the oldest month pruned continues the
// stored anchor (AuditChain::pruned_through_seq/hash) of the prune before, or starts a chain at
// seq 1. `archive_dirs` may also hold the archives of the month before the oldest one pruned
// and of the month after the newest (links checked; their recorded manifests are required
// too); any other month is refused. Otherwise the whole
// prune is refused before anything is deleted (Error bad_input saying which month and why).
// retention_months < 12: Error(bad_input). `dry_run`: checks everything, deletes nothing.
// Returns the months pruned (or that would be). Each month: store::Store::prune_audit_month
// with an "audit.pruned" event by `actor`, also passed to `log` (may be empty).
std::vector<PruneMonth> prune_before(store::Store& store, const store::Month& before, int retention_months,
                                     std::int64_t now, const std::vector<std::string>& archive_dirs,
                                     const std::string& actor, bool dry_run, void (*log)(const store::Event&));

} // namespace jitgate::server::report
