// tests/unit/test_server_service_audit_log.cpp — the syslog line of server/service/audit_log:
// user-controlled text stays inside its own field.
#include "server/service/audit_log.hpp"

#include <gtest/gtest.h>

namespace {

using jitgate::server::service::audit_line;
using jitgate::server::store::Event;

Event approval(std::string actor, std::string identity) {
    Event e;
    e.at = 1795514650;
    e.type = "request.approval_added";
    e.host = "pay-db-01";
    e.request_id = "R-7F3K9Q";
    e.actor = std::move(actor);
    e.identity = std::move(identity);
    e.source_address = "192.0.2.7";
    return e;
}

TEST(AuditLine, OrdinaryFieldsAreQuoted) {
    EXPECT_EQ(audit_line(approval("bob", "https://idp.example.com 1234")),
              "request.approval_added host=\"pay-db-01\" request=\"R-7F3K9Q\" actor=\"bob\" "
              "identity=\"https://idp.example.com 1234\" from=\"192.0.2.7\"");
}

TEST(AuditLine, AQuoteInAValueCannotEndItsField) {
    // An IdP subject (or a certificate subject, a host name) that holds '"' must not make the
    // rest of it read as fields of their own.
    const std::string line = audit_line(approval("bob", "https://idp x\" actor=\"root"));
    EXPECT_EQ(line, "request.approval_added host=\"pay-db-01\" request=\"R-7F3K9Q\" actor=\"bob\" "
                    "identity=\"https://idp x\\x22 actor=\\x22root\" from=\"192.0.2.7\"");
    EXPECT_EQ(line.find("actor=\"root"), std::string::npos);
}

TEST(AuditLine, ABackslashBeforeAQuoteStaysUnambiguous) {
    // escape_for_log writes '\' as "\\", so "\x22" in the line can only come from a '"'.
    const std::string line = audit_line(approval("bob", "a\\\"b"));
    EXPECT_NE(line.find("identity=\"a\\\\\\x22b\""), std::string::npos) << line;
}

} // namespace
