// server/config/config.hpp — jitgate-server's typed configuration (/etc/jitgate-server/server.yaml).
// Read like jitgated's, with the same reader (lib/yaml_reader.hpp): every problem with
// file:line:column, unknown keys are errors, the file must be owned by root (or the server's
// user) and not group/world-writable; every key and secret file it names likewise, and not
// readable by anyone else either (mode 0600 or 0400). config/jitgate-server.yaml shows every key.
// Defaults sit next to the members. Plain data: thread-safe to copy and read.
// Depends on lib/ only.
#pragma once

#include "lib/config_file.hpp"
#include "lib/time_windows.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace jitgate::server::config {

using Seconds = std::chrono::seconds;

// In YAML: "address:port" ("0.0.0.0:8443", "[::]:8443", "127.0.0.1:0"); the address is a
// numeric IPv4 or IPv6 address. Port 0 (an ephemeral port, for tests) is allowed.
struct Listen {
    std::string address = "0.0.0.0";
    std::uint16_t port = 0;
};

// One entry of `policy:`: which approver groups may approve which requests. A request matches
// an entry when every selector the entry sets matches (empty selector: any). Host names and
// rule names are glob patterns (fnmatch, no FNM_PERIOD).
struct PolicyEntry {
    std::string name;                         // default "policy-<n>" (1-based); unique
    std::vector<std::string> hosts;           // globs on the host name (from the certificate)
    std::vector<std::string> environments;    // exact host_environment values
    std::vector<std::string> tags;            // the host must carry every tag listed
    std::vector<std::string> rules;           // globs on the host's rule name
    std::vector<std::string> approver_groups; // the server's groups that may approve; required
    int min_approvals = 1;                    // raises the host's approvals_needed, never lowers it (1-5)
    bool ticket_check = false;                // the ticket check must pass before approval
    // Time (docs/server.md, "Time windows"): the entry applies only while one of `when_windows`
    // holds (empty: always) and none of `unless_windows` does. Names of `windows:`.
    std::vector<std::string> when_windows;
    std::vector<std::string> unless_windows;
    // While the entry applies, the requests it covers are refused: filed ones get 403, waiting
    // ones can no longer be approved (a change freeze).
    bool deny = false;
    // `auto_approve: {on_call: true}` (docs/server.md, "Automatic approval"): the service itself
    // approves a request this entry covers, at filing, when the host's rule opted in and the
    // requester is on call now per `on_call_file`. Not with deny, never for logins, and not
    // where two approvals are needed unless `auto_approve_sod` says so.
    bool auto_approve_on_call = false;
    // Which on-call source says who is on call for this entry: empty (`on_call: true`) is
    // `on_call_file`, a name (`on_call: dba`) one of `on_call_files`. Per entry, so that the
    // DBA on call is not "on call" for the payment hosts too.
    std::string auto_approve_on_call_source;
    bool auto_approve_sod = false;
};

struct Webhook {
    std::string name;            // default "webhook-<n>" (1-based); unique
    std::string url;             // https:// only
    std::string format = "json"; // "json" (HMAC-SHA256 signed) or "slack"
    std::string secret_file;     // json: the HMAC key file (checked like a key file)
    std::string ca_file;         // empty: the system's trust store
    // Known: request.filed, request.approved, request.approval_added, request.denied,
    // request.cancelled, request.expired, grant.signed, audit.chain_gap, audit.chain_fork,
    // audit.chain_edited, audit.chain_restarted, break_glass.review_overdue
    // (k_webhook_events).
    std::vector<std::string> events = {"request.filed", "request.approved", "request.denied", "request.expired"};
};

struct Config {
    std::string source; // the file it was read from

    struct Server {
        std::string name;       // the grant issuer (`iss`), and the name in notices
        std::string public_url; // https://approvals.example.com — approve_url, OIDC redirect, links
    } server;

    struct Hosts {
        Listen listen{"0.0.0.0", 8443};
        std::string cert; // the server's certificate for hosts
        std::string key;
        std::string client_ca;                      // the CA that issues host certificates (required)
        Seconds max_timeout{std::chrono::hours(1)}; // requests expire after min(timeout_s, this)
        Seconds max_ttl{std::chrono::hours(8)};     // grants last at most min(ttl_s, this)
        // Optional: PEM CRLs of the hosts' CA(s), checked on every handshake (a revoked host
        // certificate is refused); read at start-up (a restart loads a new one).
        std::string client_crl;
        // Pending requests one host (certificate name) may hold; a filing beyond is 429 (1..10000).
        int max_pending_per_host = 64;
        // Automatic approvals one host may get in a minute (per replica, 1..1000); beyond, its
        // requests wait for people like any other (request.filed's auto_approve.why_not says so).
        int max_auto_approvals_per_minute = 10;
        // Open connections from one source address; 0: no limit (the default: a fleet behind one
        // NAT shares an address; the listener's global limit still holds). 0..100000.
        int max_connections_per_address = 0;
    } hosts;

    struct Web {
        Listen listen{"0.0.0.0", 8444};
        std::string cert; // both empty in the file: the hosts' cert and key (filled in by parse)
        std::string key;
        Seconds session_ttl{std::chrono::hours(8)};
        // Open connections from one source address; 0: no limit. 0..100000. A browser opens ~6.
        int max_connections_per_address = 64;
        // The unauthenticated sign-in routes (/login, /oidc/callback). A token bucket per
        // source address (an IPv6 address counts per /64): refilled at sign_in_per_minute,
        // holding at most sign_in_burst; one sign-in spends two (start and callback). And a cap
        // on sign-ins started and not yet finished or expired, across replicas (the logins
        // rows). Over either: 429 with Retry-After, nothing stored.
        int sign_in_per_minute = 20;
        int sign_in_burst = 10;
        int max_sign_ins_in_progress = 10000;
    } web;

    // Optional as a whole (empty issuer: no sign-in); with an issuer, client_id and
    // client_secret_file are required.
    struct Oidc {
        std::string issuer; // https://idp.example.com/realms/corp
        std::string client_id;
        std::string client_secret_file;                    // checked like a key file
        std::string ca_file;                               // empty: the system's trust store
        std::string username_claim = "preferred_username"; // the claim that names the Unix user
        std::string groups_claim = "groups";
        std::map<std::string, std::string> users;  // IdP username -> Unix name, where they differ
        std::map<std::string, std::string> groups; // IdP group -> approver group; unmapped groups are ignored
        std::vector<std::string> scopes = {"openid", "profile", "email"}; // must include openid
        std::string token_endpoint_auth = "client_secret_basic";          // or "client_secret_post"
        // Tests only: also accept an http:// issuer and endpoints on 127.0.0.1, ::1 or localhost
        // (a loopback test IdP). Default off; https is required otherwise.
        bool allow_http_loopback = false;
    } oidc;

    struct Database {
        std::string sqlite = "/var/lib/jitgate-server/jitgate-server.db"; // used when `postgres` is empty
        std::string postgres;      // a libpq conninfo without a password (no password=)
        std::string password_file; // optional, checked like a key file
    } database;

    struct Signing {
        struct Key {
            std::string kid;
            std::string private_key; // PEM PKCS#8 Ed25519, root-owned, mode 0600 or 0400
        };
        std::vector<Key> keys; // every key the server holds
        std::string active;    // the kid that signs new grants (default: the first key; set by parse)
    } signing;

    std::vector<jitgate::config::Window> windows; // named time windows, the syntax of jitgated's
    std::vector<PolicyEntry> policy;
    // Who is on call (the format of jitgated's approval.on_call_file, written by a schedule sync
    // such as packaging/oncall-sync-pagerduty): read at each use; empty: no on-call approval.
    std::string on_call_file;
    // Named on-call sources (`on_call_files: {dba: /etc/jitgate-server/oncall-dba.yaml}`), one
    // file per schedule set, each chosen by `auto_approve: {on_call: <name>}` of a policy entry.
    std::vector<std::pair<std::string, std::string>> on_call_files;
    std::vector<Webhook> webhooks;

    struct TicketCheck {
        std::string url;        // empty: no ticket check; https:// only; "{ticket}" is replaced (URL-encoded)
        std::string token_file; // sent as a Bearer token
        std::string ca_file;
        std::string approved_field = "result.0.approval"; // JSON pointer-ish path that must equal approved_value
        std::string approved_value = "approved";
        std::string window_start_field = "result.0.start_date";
        std::string window_end_field = "result.0.end_date";
        Seconds timeout{std::chrono::seconds(10)}; // 1s..60s
    } ticket_check;

    struct Audit {
        std::string syslog_facility = "authpriv"; // auth, authpriv, daemon, user, local0..local7
        // The server's groups (oidc.groups maps IdP groups to them, as for approver groups) whose
        // members may read the auditors' pages (/audit...). Read-only: an auditor approves
        // nothing unless also in an approver group. Empty: nobody (the default).
        std::vector<std::string> auditor_groups;
        // The server's groups whose members may close break-glass review items (and read the
        // auditors' pages to do so). Absent from the file: the same as auditor_groups (set by
        // parse); an empty list: nobody closes reviews.
        std::vector<std::string> break_glass_reviewer_groups;
        // Each `access.break_glass` event opens a review item due this long after it arrived;
        // items still open then raise "break_glass.review_overdue" (syslog alert, webhooks).
        // 1 minute .. 90 days.
        Seconds break_glass_review_within{std::chrono::hours(24)};
        // How long the hosts' events are kept, in months: `jitgate-server audit prune` deletes
        // an exported month only once the month this many months after it has ended. 84 (seven
        // years: SOX asks for seven years of evidence); at least 12, at most 1200.
        int retention_months = 84;
    } audit;
};

inline constexpr std::string_view k_webhook_events[] = {
    "request.filed",     "request.approved",   "request.approval_added", "request.denied",
    "request.cancelled", "request.expired",    "grant.signed",           "audit.chain_gap",
    "audit.chain_fork",  "audit.chain_edited", "audit.chain_restarted",  "break_glass.review_overdue"};

struct LoadResult {
    Config config;                                  // what could be read; use it only if problems is empty
    std::vector<jitgate::config::Problem> problems; // empty: valid
};

// Reads and validates `path`: its content (as parse), the file's own ownership and mode, and
// every file it names: each must pass config::check_file_security(file, allowed_uid) (owned
// by root or `allowed_uid`, not a symlink, not group/world-writable); the private keys (hosts,
// web, signing) and secret files (OIDC client secret, database password, webhook secrets,
// ticket token) must also have mode 0600 or 0400. A problem about a named file is placed at
// the key that names it. Pass the server's own uid as `allowed_uid` when it runs as its own
// user. Never throws for bad content (only std::bad_alloc). Thread-safe.
LoadResult load(const std::string& path, unsigned allowed_uid = 0);
// The content only (no file is looked at): for tests and fuzzing; `source` names it in
// problems. Never throws for bad content (only std::bad_alloc). Thread-safe.
LoadResult parse(const std::string& text, const std::string& source);
// The checks of meaning of parse() for a Config built in code (no positions: problems carry
// the file name only). Pure.
std::vector<jitgate::config::Problem> validate(const Config& config);

} // namespace jitgate::server::config
