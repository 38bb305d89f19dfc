// server/commands.hpp — jitgate-server's administrative sub-commands, callable from main():
// `keygen` (a new grant signing key pair), `check-config` (every problem of the config) and
// `sessions revoke` (end one approver's web sessions now), `report` (the auditor's evidence
// report) and `audit` (archive export, archive verification, prune).
//
// Each takes the arguments after its own name and the streams to write to, prints one line per
// result or problem, and returns the process exit status: 0 success, 1 failure (a problem was
// found or the work failed), 2 bad usage. Never throws (a catch-all turns anything unforeseen
// into a one-line error and status 1). Not thread-safe (they print).
#pragma once

#include "server/store/store.hpp"

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace jitgate::server {

inline constexpr const char* k_default_config = "/etc/jitgate-server/server.yaml";
inline constexpr const char* k_default_key_dir = "/etc/jitgate-server/keys";

// keygen --kid KID [--dir DIR]   (DIR default k_default_key_dir)
// Writes DIR/KID.key (0600) and DIR/KID.pub (0644), never overwriting (service::keygen), and
// prints both paths and the public key to `out`.
int keygen_command(const std::vector<std::string>& args, std::FILE* out = stdout, std::FILE* err = stderr);

// check-config [--config FILE]   (FILE default k_default_config)
// config::load(FILE, geteuid()) — content, ownership and modes of the config and every file it
// names — then loads each signing key (service::KeySet::load). Prints each problem as
// "file:line:column: message" to `out` and returns 1 if there is any; else prints "config OK"
// and returns 0.
int check_config_command(const std::vector<std::string>& args, std::FILE* out = stdout, std::FILE* err = stderr);

// sessions revoke --user NAME
// Deletes every web session of the Unix name NAME in `store` (store::Store::delete_sessions_of)
// and records "sessions.revoked" (actor "admin:<actor>", detail: the user and how many ended) in
// the same transaction, then through `log` (syslog in main), and prints how many ended. Zero
// sessions is success too (the person may not be signed in), with no event, and says so: "no
// sessions for NAME" (names are matched exactly, case-sensitively, so a typo shows). NAME must be 1-256 bytes without
// control characters (2 otherwise). A store failure is 1.
int sessions_command(const std::vector<std::string>& args, store::Store& store, std::int64_t now,
                     const std::string& actor, void (*log)(const store::Event&), std::FILE* out = stdout,
                     std::FILE* err = stderr);

// grants revoke --request ID [--host HOST] [--reason TEXT]
// Revokes the grant of approved request ID (of HOST; without --host, the one host that holds
// an ID) in `store` (store::Store::revoke_grant): stored with revoked_by "admin:<actor>", via
// "cli", and "grant.revoked" recorded in the same transaction, then through `log`. The host
// learns of it at its next revocation poll (docs/protocol.md §12). Idempotent: a grant revoked
// before is 0 with "already revoked" and nothing recorded. 1 for an unknown request, one
// without a grant (pending, denied, expired, cancelled), an ID held by several hosts without
// --host, or a store failure; 2 for bad arguments (a reason over 2048 bytes or not UTF-8).
int grants_command(const std::vector<std::string>& args, store::Store& store, std::int64_t now,
                   const std::string& actor, void (*log)(const store::Event&), std::FILE* out = stdout,
                   std::FILE* err = stderr);

// report --from DATE --to DATE [--hosts PATTERN] [--format html|pdf|csv|json] [--output FILE]
//        [--silent-after SECONDS]
// The evidence report (server/report/report.hpp) for the period: DATE is YYYY-MM-DD (UTC; --to
// includes that whole day) or an RFC 3339 time (--to excluded); PATTERN a glob over host names
// (default *); the format html by default; SECONDS (default 86400) how long a host may go
// without a batch before it is an exception. The arguments are checked (2 on a bad one: a bad
// date, --from not before --to, an unknown format) before `open` is called for the database,
// which is only read. Writes to FILE (created mode 0600, through a temporary file renamed into
// place, so a failure leaves no half report) or to `out`; a PDF is never written to a terminal
// (2: give --output or redirect). 1 when the database or WeasyPrint fails.
int report_command(const std::vector<std::string>& args, const std::function<std::unique_ptr<store::Store>()>& open,
                   std::int64_t now, std::FILE* out = stdout, std::FILE* err = stderr);

// audit export --month YYYY-MM --output DIR
// audit verify-archive DIR...
// audit prune --before YYYY-MM [--dry-run]
// The audit store's retention (server/report/archive.hpp, docs/server.md "Retention and
// archives"). `export` writes the month's archive to DIR (a new directory) and records it;
// `verify-archive` re-verifies archive directories without the database (`open` is not
// called); `prune` deletes the months before YYYY-MM that are older than the retention `open`
// gives and were exported with the manifest the store gives now (--dry-run: checks and lists
// them only). Events are recorded as "admin:<actor>" and passed to `log` (may be null). The
// arguments are checked before `open` is called (2 on a bad one); a refusal or a problem found
// is 1.
struct AuditTarget {
    std::unique_ptr<store::Store> store;
    int retention_months = 84; // audit.retention_months of the config
};
int audit_command(const std::vector<std::string>& args, const std::function<AuditTarget()>& open, std::int64_t now,
                  const std::string& actor, void (*log)(const store::Event&), std::FILE* out = stdout,
                  std::FILE* err = stderr);

} // namespace jitgate::server
