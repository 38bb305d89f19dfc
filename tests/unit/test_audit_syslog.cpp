// Unit tests for daemon/audit/syslog: the severity of each event type, the syslog line
// (format, escaping, the 8 KiB bound) and the Auditor's sending to a datagram socket bound in a
// private temp directory.
#include "daemon/audit/syslog.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "audit_fixture.hpp"
#include "file_helpers.hpp"
#include "jitgate/error.hpp"
#include "jitgate/text.hpp"

namespace {

using jitgate::Error;
using jitgate::ErrorCode;
using namespace jitgate::audit;
using namespace jitgate::test::audit_fixture;
namespace fs = std::filesystem;

using jitgate::test::read_all;
using jitgate::test::split_lines;
using jitgate::test::write_all;

TEST(AuditSeverity, MapsEventTypes) {
    EXPECT_EQ(severity_for(type::break_glass), 1);
    for (const char* t : {type::denied, type::timeout, type::cancelled, type::error, type::grant_revoked})
        EXPECT_EQ(severity_for(t), 4) << t;
    for (const char* t : {type::approved, type::approval_recorded, type::allowed_by_rule, type::allowed_by_grant,
                          type::command_finished, type::session_opened, type::session_closed})
        EXPECT_EQ(severity_for(t), 5) << t;
    for (const char* t : {type::requested, type::daemon_started, type::daemon_stopped, type::config_loaded, ""})
        EXPECT_EQ(severity_for(t), 6) << t;
}

TEST(AuditSeverity, ABreakGlassSubCommandIsAnAlertLikeItsShell) {
    Json e{{"type", type::command_intercepted}, {"why", "break_glass"}, {"user", "alice"}};
    EXPECT_EQ(format_syslog_line(e, "h", 1).rfind("<81>", 0), 0u) << "authpriv (80) + alert (1)";
    e["why"] = "grant";
    EXPECT_EQ(format_syslog_line(e, "h", 1).rfind("<85>", 0), 0u) << "authpriv (80) + notice (5)";
}

TEST(AuditSyslog, LineFormat) {
    Json e = k_approved_event;
    e["seq"] = 12;
    e["event_id"] = "0f8e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b";
    e["time"] = "2026-11-23T10:00:00.123Z";
    const std::string line = format_syslog_line(e, "web1", 4242);
    const std::string months = "JanFebMarAprMayJunJulAugSepOctNovDec";
    ASSERT_GT(line.size(), 40u);
    EXPECT_EQ(line.substr(0, 4), "<85>");
    // find() returns npos for a month name that is not there, and npos % 3 == 0: check both.
    const std::size_t month = months.find(line.substr(4, 3));
    ASSERT_NE(month, std::string::npos) << line;
    EXPECT_EQ(month % 3, 0u) << line;
    EXPECT_EQ(line.substr(4, 3), "Nov") << "10:00Z on 23 November is in November in every time zone: " << line;
    const std::string shape = " _d dd:dd:dd web1 jitgate[4242]: ";
    EXPECT_TRUE(matches_shape(line.substr(7, shape.size()), shape)) << line;
    EXPECT_NE(
        line.find(
            R"(: [jitgate@32473 type="access.approved" seq="12" event_id="0f8e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b" user="alice" kind="sudo" argv="/usr/bin/systemctl restart payments" request_id="R-7F3KQ2" approvers="bob"] )"),
        std::string::npos)
        << line;
    EXPECT_TRUE(line.ends_with("] alice sudo /usr/bin/systemctl restart payments: approved by bob (request R-7F3KQ2)"))
        << line;

    Json b = {{"type", type::break_glass}, {"user", "carol"}, {"break_glass_reason", "db down"}};
    const std::string bl = format_syslog_line(b, "db01", 1);
    EXPECT_EQ(bl.rfind("<81>", 0), 0u);
    EXPECT_TRUE(bl.ends_with("] carol: BREAK-GLASS access without approval, reason: db down")) << bl;
    Json d = {{"type", type::denied},     {"user", "alice"},      {"kind", "sudo"},
              {"argv", {"/sbin/reboot"}}, {"denied_by", "carol"}, {"deny_reason", "change freeze"},
              {"request_id", "R-1"}};
    const std::string dl = format_syslog_line(d, "db01", 1);
    EXPECT_EQ(dl.rfind("<84>", 0), 0u);
    EXPECT_TRUE(dl.ends_with("] alice sudo /sbin/reboot: denied by carol: change freeze (request R-1)")) << dl;
    Json s = {{"type", type::daemon_started}};
    EXPECT_EQ(format_syslog_line(s, "db01", 1).rfind("<86>", 0), 0u);
}

TEST(AuditSyslog, StructuredDataEscapesQuoteBracketBackslash) {
    const Json e = {{"type", type::requested}, {"reason", "a\"b]c\\d"}, {"ticket", "]]"}};
    const std::string line = format_syslog_line(e, "h", 1);
    EXPECT_NE(line.find(R"( reason="a\"b\]c\\\\d")"), std::string::npos) << line;
    EXPECT_NE(line.find(R"( ticket="\]\]"])"), std::string::npos) << line;
}

// Which fields the structured data shows: one that is there as a string, even an empty one,
// and any value that prints as something; not one that is absent, null, or prints as nothing.
TEST(AuditSyslog, StructuredDataShowsPresentFieldsOnly) {
    const Json e = {{"type", type::denied}, {"tty", ""},       {"reason", nullptr}, {"argv", Json::array()},
                    {"uid", 1000},          {"expires", -5},   {"ticket", "T-1"},   {"rule", Json::array()},
                    {"outcome", false},     {"not_shown", "x"}};
    const std::string line = format_syslog_line(e, "h", 1);
    EXPECT_NE(
        line.find(
            R"(: [jitgate@32473 type="access.denied" uid="1000" tty="" ticket="T-1" rule="[\]" expires="-5" outcome="false"] )"),
        std::string::npos)
        << line;
}

TEST(AuditSyslog, LongValuesAreTruncatedUnder8KiB) {
    Json e = {{"type", type::requested}};
    // Built with append, not `std::string(5000, 'x') + "..."`: g++ 12 reports a false
    // -Warray-bounds for that operator+ (GCC bug 105651).
    std::string long_value(5000, 'x');
    long_value.append("\xc3\xa9\x1b");
    for (const char* key : {"user", "kind", "command", "runas", "tty", "remote_host", "reason", "ticket", "request_id",
                            "grant_id", "rule", "scope", "message", "outcome", "service"})
        e[key] = long_value;
    e["argv"] = Json::array({std::string(20000, 'A'), "\xe2\x82\xac" + std::string(3000, '"')});
    e["approvers"] = Json::array({std::string(9000, 'b'), "c"});
    const std::string line = format_syslog_line(e, "testhost", 7);
    EXPECT_LT(line.size(), 8192u);
    EXPECT_TRUE(jitgate::text::is_valid_utf8(line));
    EXPECT_FALSE(has_control_byte(line));
    EXPECT_NE(line.find("\u2026[truncated "), std::string::npos);
    EXPECT_NE(line.find(" type=\"access.requested\""), std::string::npos);

    const Json huge_reason = {{"type", type::denied}, {"user", "u"}, {"message", std::string(100000, '\xff')}};
    const std::string line2 = format_syslog_line(huge_reason, "testhost", 7);
    EXPECT_LT(line2.size(), 8192u);
    EXPECT_TRUE(jitgate::text::is_valid_utf8(line2));
}

TEST_F(AuditTest, SyslogIsSentToTheConfiguredSocket) {
    const std::string sock = m_dir + "/log.sock";
    DatagramReceiver receiver(sock);
    Options o = syslog_options(sock);
    Auditor a(o);
    const Json e = a.record(k_approved_event);

    const std::string got = receiver.receive();
    ASSERT_FALSE(got.empty());
    // Without a host field: on a local socket the word after the timestamp is read as the tag.
    EXPECT_EQ(got, format_syslog_line(e, "", static_cast<int>(::getpid())));
    EXPECT_EQ(got.rfind("<85>", 0), 0u);
    const std::string shape = " _d dd:dd:dd jitgate[";
    EXPECT_TRUE(matches_shape(got.substr(7, shape.size()), shape)) << got;
    EXPECT_NE(got.find(" jitgate[" + std::to_string(::getpid()) + "]: [jitgate@32473 type=\"access.approved\""),
              std::string::npos)
        << got;
    EXPECT_EQ(got.find("testhost"), std::string::npos) << got;
    EXPECT_EQ(a.syslog_failures(), 0u);
}

// With group commit an event goes to syslog only once it is durable: the same line as without,
// in seq order, after the sync that covers it.
TEST_F(AuditTest, GroupCommitSendsSyslogLinesOnceDurableInOrder) {
    const std::string sock = m_dir + "/log.sock";
    DatagramReceiver receiver(sock);
    Options o = syslog_options(sock);
    Auditor a(o);
    a.set_group_commit(true);
    const Json first = a.record(k_approved_event);
    const Json second = a.record({{"type", type::denied}, {"user", "alice"}, {"reason", "a\"b]"}});
    EXPECT_EQ(receiver.receive(), "") << "nothing before the events are durable";
    a.sync();
    EXPECT_EQ(receiver.receive(), format_syslog_line(first, "", static_cast<int>(::getpid())));
    EXPECT_EQ(receiver.receive(), format_syslog_line(second, "", static_cast<int>(::getpid())));
    EXPECT_EQ(receiver.receive(), "");
    const Json third = a.record({{"type", type::config_loaded}});
    a.sync();
    EXPECT_EQ(receiver.receive(), format_syslog_line(third, "", static_cast<int>(::getpid())));
    EXPECT_EQ(a.syslog_failures(), 0u);
}

TEST_F(AuditTest, SyslogReconnectsAfterReceiverRestart) {
    const std::string sock = m_dir + "/log.sock";
    Options o = syslog_options(sock);
    auto receiver = std::make_unique<DatagramReceiver>(sock);
    Auditor a(o);
    a.record({{"type", type::daemon_started}});
    EXPECT_FALSE(receiver->receive().empty());

    receiver.reset();
    receiver = std::make_unique<DatagramReceiver>(sock); // a new socket at the same path
    a.record({{"type", type::config_loaded}});
    EXPECT_NE(receiver->receive().find("type=\"config.loaded\""), std::string::npos);
    EXPECT_EQ(a.syslog_failures(), 0u);
}

TEST_F(AuditTest, SyslogFailureIsCountedNeverThrown) {
    Options o = syslog_options(m_dir + "/no-such.sock");
    Auditor a(o);
    EXPECT_NO_THROW(a.record({{"type", type::daemon_started}}));
    EXPECT_NO_THROW(a.record({{"type", type::config_loaded}}));
    EXPECT_EQ(a.syslog_failures(), 2u);
    EXPECT_EQ(a.last_seq(), 2u);
    EXPECT_TRUE(verify_spool(m_dir).ok);
}

// The server's order (issue 17): a reply goes out once its event is durable, and the event's
// syslog copy after it. With set_defer_syslog the commit sends nothing; send_syslog_copies()
// sends every durable event's copy, in seq order, once; a failed sync still lets the copies of
// what was durable before it go out, and never those of what it failed to make durable.
TEST_F(AuditTest, DeferredSyslogCopiesGoOutOnlyWhenAskedInOrderAndOnlyForDurableEvents) {
    const std::string sock = m_dir + "/log.sock";
    DatagramReceiver receiver(sock);
    Options o = syslog_options(sock);
    bool fail = false;
    o.sync_fn = [&fail](int fd) {
        if (fail) {
            errno = EIO;
            return -1;
        }
        return ::fdatasync(fd);
    };
    Auditor a(o);
    a.set_group_commit(true);
    a.set_defer_syslog(true);
    a.record({{"type", type::daemon_started}});
    a.record({{"type", type::config_loaded}});
    a.send_syslog_copies();
    EXPECT_EQ(receiver.receive(), "") << "nothing is durable yet: no copy";
    a.sync();
    EXPECT_EQ(a.durable_seq(), 2u);
    EXPECT_EQ(receiver.receive(), "") << "the commit itself sends nothing";
    a.send_syslog_copies();
    EXPECT_NE(receiver.receive().find("type=\"daemon.started\""), std::string::npos);
    EXPECT_NE(receiver.receive().find("type=\"config.loaded\""), std::string::npos);
    EXPECT_EQ(receiver.receive(), "");
    a.send_syslog_copies();
    EXPECT_EQ(receiver.receive(), "") << "each copy is sent once";

    // Two more become durable, their copies wait; then a third's sync fails.
    a.record(k_approved_event);
    a.record({{"type", type::config_loaded}});
    a.sync();
    a.record({{"type", type::daemon_started}});
    fail = true;
    EXPECT_THROW(a.sync(), Error);
    a.send_syslog_copies();
    EXPECT_NE(receiver.receive().find("type=\"access.approved\""), std::string::npos);
    EXPECT_NE(receiver.receive().find("type=\"config.loaded\""), std::string::npos);
    EXPECT_EQ(receiver.receive(), "") << "no copy of an event the failed sync did not make durable";
    EXPECT_EQ(a.syslog_failures(), 0u);
}

} // namespace
