// daemon/audit/store_check.hpp — comparing this host's spool with what the central store holds
// of it (`jitgatectl audit verify --against-store`, docs/audit.md "jitgatectl audit verify"):
// the store's last acknowledged (seq, hash) from GET /v1/audit/state (jitgate-server, server.md
// §10), fetched with the host's own TLS settings (audit.store.*, lib/https), and where that
// event stands in the spool. Used by the CLI only; never by the running daemon.
#pragma once

#include <cstdint>
#include <string>

#include "daemon/config/config.hpp"

namespace jitgate::audit {

// What the store holds of the host's chain (the fields of GET /v1/audit/state this uses).
struct StoreState {
    std::string host;
    std::uint64_t last_seq = 0;             // 0: the store holds no event of the host
    std::string last_hash;                  // of last_seq
    std::string chain;                      // "ok" or "broken", as the store judged it
    std::string problem;                    // the store's first problem, when broken
    std::uint64_t restarts = 0;             // how often the host's chain started over at seq 1 (a wiped spool)
    std::string restart_at;                 // RFC 3339, the last restart; empty without one
    std::uint64_t restart_previous_seq = 0; // where the chain stood before that restart
};

// The URL of GET /v1/audit/state for a store whose audit.store.url is `events_url`: the same
// URL with its last path segment "events" replaced by "state" (".../v1/audit/events" →
// ".../v1/audit/state"); a query or fragment is dropped. Error(bad_input) for a URL whose path
// does not end in "/events" (a Splunk HEC or another collector, which has no such endpoint).
std::string state_url(const std::string& events_url);

// Fetches the state of `host` (the config's host.name, sent as ?host=, so a certificate naming
// several hosts is asked about this one) with `store`'s CA, client certificate, token (as a
// Bearer header), proxy and timeouts (lib/https policy: https only, no redirect). Error(io) when
// the store cannot be reached or answers other than 200 with a state of the right form (host,
// last_seq, last_hash, chain "ok" or "broken", restarts; the answer's first bytes shown,
// escaped), or with the state of another host; Error(bad_input) for a config without
// audit.store.url or an empty `host`. Not thread-safe with another curl_global_init.
StoreState fetch_store_state(const config::Config::Audit::Store& store, const std::string& host);

struct StoreCheck {
    bool ok = false;     // the spool holds (or shipped and deleted) what the store holds, and continues it
    std::string summary; // one line: "store holds up to seq N hash H; spool matches", or the problem
};

// Compares the spool directory `dir` with `state`: the spool's own chain must verify
// (verify_spool), and the store's last (seq, hash) must be the spool's event at that seq, or be
// the spool's anchor (shipped and deleted: the hashes compared). A spool that ends below the
// store's seq was cut (or started over); an event at that seq with another hash means the spool
// was rewritten. Fails too (SECURITY NOTE: each is events lost or a history the store does not
// vouch for, never "OK"):
//  - the store holds less than the host knows it acknowledged: its last_seq (0 included) below
//    the spool's anchor or shipped.json (the shipper records both only after a 2xx);
//  - the store marked the chain broken (its problem is said);
//  - the chain started over at the store (restarts > 0: a wiped spool that caught up again
//    would otherwise match), with when and from which seq.
// Never throws for bad content; an unreadable spool is a problem.
StoreCheck check_against_store(const std::string& dir, const StoreState& state);

} // namespace jitgate::audit
