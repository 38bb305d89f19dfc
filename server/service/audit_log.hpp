// server/service/audit_log.hpp — the server's own audit trail on syslog: every filing,
// decision, sign-in and key use, one line each, with the actor's identity and source address.
// The same events go to the database (store::Store::record or inside the store's
// transactions); syslog is the copy a SIEM reads. User-controlled text is escaped.
// Thread-safe (syslog(3) is).
#pragma once

#include "server/store/store.hpp"

#include <string>

namespace jitgate::server::service {

// openlog() with the configured facility name ("authpriv", "auth", "local0".."local7").
// Returns false for an unknown facility name.
bool open_audit_log(const std::string& facility);

// One line: "jitgate-server: <type> host=<h> request=<id> actor=<a> identity=<i> from=<addr> <detail>".
std::string audit_line(const store::Event& event);
void log_event(const store::Event& event);
// The same line at priority alert: a host's chain broke, or a batch was refused as forged or
// conflicting (what someone must look at).
void log_alert(const store::Event& event);

} // namespace jitgate::server::service
