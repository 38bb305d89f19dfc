// daemon/audit/syslog.hpp — the syslog copy of the audit trail: one RFC 5424-style line per
// event, and the pipeline's own alerts, sent as datagrams to the local syslog socket.
// Syslog is a best-effort copy for operators and SIEMs; the spool is the record. docs/audit.md
// describes the line. Depends on lib/audit_event.hpp and common/.
#pragma once

#include <string>

#include "lib/audit_event.hpp"

namespace jitgate::audit {

// Syslog severity for an event type: alert for break_glass, warning for denials/timeouts/
// errors, notice for approvals and allows, info otherwise.
int severity_for(const std::string& event_type) noexcept;

// One syslog line for `event`: RFC 5424 structured data inside a message that a local
// syslog daemon (rsyslog, journald) accepts on /dev/log:
//   <PRI>Mmm dd hh:mm:ss HOST jitgate[PID]: [jitgate@32473 type="..." user="..." ...] summary
// Facility authpriv. Every value is escaped (text::escape_for_log, then RFC 5424 escapes of
// '"', '\\' and ']'); the line has no control character.
// An empty `hostname` leaves out "HOST ": the Auditor sends that form to the local socket,
// where journald and rsyslog (imuxsock) read the word after the timestamp as the tag.
// The line is at most 8000 bytes (long values and the summary are cut with a marker).
std::string format_syslog_line(const Json& event, const std::string& hostname, int pid);

// The current time as RFC 3339 UTC with milliseconds: "2026-11-23T10:00:00.123Z".
std::string rfc3339_now();

// Sends one line "<PRI>Mmm dd hh:mm:ss jitgate[PID]: MESSAGE" (facility authpriv) to the
// datagram socket at `socket_path` over a fresh socket. For the pipeline's own
// rare alerts (spool full, store rejecting events), from any thread: thread-safe, never throws.
// Build MESSAGE from escaped pieces; a MESSAGE that still holds a control character or invalid
// UTF-8 is escaped as a whole. Returns false if the line could not be sent.
bool send_syslog_message(const std::string& socket_path, int severity, const std::string& message) noexcept;

inline constexpr int k_severity_alert = 1;
inline constexpr int k_severity_err = 3;
inline constexpr int k_severity_warning = 4;
inline constexpr int k_severity_notice = 5;

// A datagram socket connected to the syslog socket at `path`, with a short send timeout (a
// stuck syslog daemon must not stall the caller). Returns the descriptor (the caller closes
// it) or -1 with errno set. Thread-safe.
int connect_syslog(const std::string& path);

// Sends `line` as one datagram on `fd` (from connect_syslog). Returns false, with errno set,
// if it was not sent whole. Thread-safe (for distinct descriptors).
bool send_syslog_datagram(int fd, const std::string& line);

} // namespace jitgate::audit
