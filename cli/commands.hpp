// cli/commands.hpp — jitgatectl's commands: what each asks of the daemon or reads from disk.
//
// Each returns the exit status documented in man/jitgatectl.8 (k_exit_*) after printing its
// result on stdout and any failure on stderr. They talk to jitgated only through the typed
// messages of jitgate/admin.hpp. A malformed reply from the daemon throws Error(protocol);
// main's catch-all turns it (and anything else thrown) into exit status k_exit_refused.
// Not thread-safe (stdout, stderr).
#pragma once

#include <cstddef>
#include <string>

#include "daemon/config/config.hpp"
#include "jitgate/client.hpp"

namespace jitgate::cli {

inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_refused = 1;     // refused, failed, or the daemon answered an error
inline constexpr int k_exit_usage = 2;       // unknown command, missing argument
inline constexpr int k_exit_unreachable = 3; // no socket, refused, timed out, closed early

// Daemon operations (`json`: one JSON object per line instead of text).
int cmd_pending(const client::Options& opts, bool json);
int cmd_grants(const client::Options& opts, bool json);
int cmd_approve(const client::Options& opts, const std::string& id);
int cmd_deny(const client::Options& opts, const std::string& id, const std::string& reason);
int cmd_revoke(const client::Options& opts, const std::string& id, const std::string& reason);
// The live sessions under grants; the caller's own requests; ending the caller's grant(s) early
// (`id` empty: all of them). docs/sessions.md.
int cmd_sessions(const client::Options& opts, bool json);
int cmd_requests(const client::Options& opts, bool json);
int cmd_done(const client::Options& opts, const std::string& id);
// Asks for a new approval to extend the caller's grant `id` (docs/sessions.md).
int cmd_extend(const client::Options& opts, const std::string& id, const std::string& reason);
int cmd_status(const client::Options& opts, bool json);
int cmd_audit_status(const client::Options& opts, bool json);

// The audit trail on disk: `path` is a spool directory or one journal file.
int cmd_verify(const std::string& path);
// The spool `dir` against the central store's GET /v1/audit/state of `host` (host.name;
// daemon/audit/store_check.hpp): 0 only when the spool holds (or shipped) the store's last event
// and continues it, the store holds all this host had acknowledged, and the store's chain is
// neither broken nor restarted.
int cmd_verify_against_store(const std::string& dir, const config::Config::Audit::Store& store,
                             const std::string& host);
int cmd_tail(const std::string& path, std::size_t count);

} // namespace jitgate::cli
