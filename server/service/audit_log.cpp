// server/service/audit_log.cpp — see audit_log.hpp.
#include "server/service/audit_log.hpp"

#include <jitgate/text.hpp>

#include <syslog.h>

#include <map>

namespace jitgate::server::service {
namespace {

void field(std::string& line, const char* name, const std::string& value) {
    if (value.empty()) return;
    line += ' ';
    line += name;
    line += "=\"";
    // A '"' inside the value would end the field early and let the rest of the value pose as
    // fields of its own (actor="root"); escape_for_log leaves it, so it is written \x22 here
    // (unambiguous: escape_for_log writes a backslash as \\).
    for (const char c : text::shown(value, 512)) {
        if (c == '"')
            line += "\\x22";
        else
            line += c;
    }
    line += '"';
}

} // namespace

bool open_audit_log(const std::string& facility) {
    static const std::map<std::string, int> facilities = {
        {"authpriv", LOG_AUTHPRIV}, {"auth", LOG_AUTH},     {"daemon", LOG_DAEMON}, {"local0", LOG_LOCAL0},
        {"local1", LOG_LOCAL1},     {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4},
        {"local5", LOG_LOCAL5},     {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7}};
    const auto it = facilities.find(facility);
    if (it == facilities.end()) return false;
    ::openlog("jitgate-server", LOG_PID | LOG_NDELAY, it->second);
    return true;
}

std::string audit_line(const store::Event& event) {
    std::string line = text::shown(event.type, 64);
    field(line, "host", event.host);
    field(line, "request", event.request_id);
    field(line, "actor", event.actor);
    field(line, "identity", event.identity);
    field(line, "from", event.source_address);
    if (!event.detail.empty() && event.detail != "{}") line += " detail=" + text::shown(event.detail, 2048);
    return line;
}

void log_event(const store::Event& event) {
    ::syslog(LOG_INFO, "%s", audit_line(event).c_str());
}

void log_alert(const store::Event& event) {
    ::syslog(LOG_ALERT, "%s", audit_line(event).c_str());
}

} // namespace jitgate::server::service
