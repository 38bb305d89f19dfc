// lib/audit_event.hpp — the audit event model shared by the daemon, jitgatectl and the server:
// event type names, the canonical bytes of an event and the hash that chains them
// (docs/audit.md). Depends on nlohmann-json and OpenSSL (SHA-256); nothing of the daemon.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace jitgate::audit {

using Json = nlohmann::json;

// Event types of DESIGN.md plus the few the daemon needs to tell every step.
namespace type {
inline constexpr const char* requested = "access.requested";
inline constexpr const char* approval_recorded = "access.approval_recorded"; // one approver of several
inline constexpr const char* approved = "access.approved";
inline constexpr const char* auto_approved = "access.auto_approved"; // by the rule's auto_approve, no person
inline constexpr const char* denied = "access.denied";
inline constexpr const char* timeout = "access.timeout";
inline constexpr const char* cancelled = "access.cancelled";
inline constexpr const char* allowed_by_rule = "access.allowed_by_rule";
inline constexpr const char* allowed_by_grant = "access.allowed_by_grant";
inline constexpr const char* break_glass = "access.break_glass";
inline constexpr const char* grant_revoked = "grant.revoked";
inline constexpr const char* grant_released = "grant.released"; // the requester ended it early (jitgatectl done)
// A live session under a grant ended because the grant expired, or was revoked or released
// (docs/sessions.md); kept: on_expiry: keep let it outlive its grant.
inline constexpr const char* session_ended_by_expiry = "session.ended_by_expiry";
inline constexpr const char* session_ended_by_revoke = "session.ended_by_revoke";
inline constexpr const char* session_kept_after_expiry = "session.kept_after_expiry";
// An ended session's process was still there after the grace period: SIGKILL was sent (or failed).
inline constexpr const char* session_killed = "session.killed";
inline constexpr const char* command_finished = "command.finished";
// A program that a command run under sudo's intercept mode executed, and what jitgate said.
inline constexpr const char* command_intercepted = "command.intercepted";
inline constexpr const char* session_opened = "session.opened";
inline constexpr const char* session_closed = "session.closed";
inline constexpr const char* daemon_started = "daemon.started";
inline constexpr const char* daemon_stopped = "daemon.stopped";
inline constexpr const char* config_loaded = "config.loaded";
inline constexpr const char* error = "error";
} // namespace type

// Canonical bytes of an event: nlohmann dump() of the object without "hash" (keys sorted,
// no whitespace). hash = lowercase hex SHA-256 of those bytes.
std::string canonical_bytes(const Json& event_without_hash);
std::string sha256_hex(const std::string& bytes);
inline constexpr const char* k_genesis_hash = "0000000000000000000000000000000000000000000000000000000000000000";

} // namespace jitgate::audit
