// Unit tests for daemon/audit: the hash-chained spool (segments, anchor, torn tails, the size
// bound), its verifier and the syslog line. Everything runs in a private temp directory;
// syslog goes to a datagram socket bound there.
#include "daemon/audit/audit.hpp"

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

#include "jitgate/error.hpp"
#include "file_helpers.hpp"
#include "jitgate/text.hpp"

namespace {

using jitgate::Error;
using jitgate::ErrorCode;
using namespace jitgate::audit;
namespace fs = std::filesystem;

using jitgate::test::read_all;
using jitgate::test::split_lines;
using jitgate::test::write_all;

std::string join_lines(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += l + '\n';
    return out;
}

bool has_problem_containing(const VerifyResult& r, const std::string& needle) {
    for (const auto& p : r.problems)
        if (p.find(needle) != std::string::npos) return true;
    return false;
}

std::string problems_text(const VerifyResult& r) {
    std::string out;
    for (const auto& p : r.problems) out += p + '\n';
    return out;
}

// Matches `s` against `shape`: 'd' is a digit, 'h' a lower-case hex digit, 'v' one of 89ab
// (the UUID variant), '_' a space or digit, anything else itself. (No std::regex: GCC 12
// warns inside it under -O1 with sanitizers, and the build uses -Werror.)
bool matches_shape(const std::string& s, const std::string& shape) {
    if (s.size() != shape.size()) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        const bool digit = c >= '0' && c <= '9';
        const bool ok = shape[i] == 'd'   ? digit
                        : shape[i] == 'h' ? digit || (c >= 'a' && c <= 'f')
                        : shape[i] == 'v' ? c == '8' || c == '9' || c == 'a' || c == 'b'
                        : shape[i] == '_' ? digit || c == ' '
                                          : c == shape[i];
        if (!ok) return false;
    }
    return true;
}

bool has_control_byte(const std::string& s) {
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F) return true;
    }
    return false;
}

// A datagram socket bound in the test's directory, standing in for /dev/log.
class DatagramReceiver {
public:
    explicit DatagramReceiver(const std::string& path) : m_path(path) {
        ::unlink(path.c_str());
        m_fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
        if (m_fd < 0 || ::bind(m_fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
            throw std::runtime_error("cannot bind " + path + ": " + std::strerror(errno));
    }
    ~DatagramReceiver() {
        ::close(m_fd);
        ::unlink(m_path.c_str());
    }
    DatagramReceiver(const DatagramReceiver&) = delete;
    DatagramReceiver& operator=(const DatagramReceiver&) = delete;

    // The next datagram, or "" if none is queued (the sender is synchronous, so it is there).
    std::string receive() {
        std::string buf(65536, '\0');
        const ssize_t n = ::recv(m_fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0) return {};
        buf.resize(static_cast<std::size_t>(n));
        return buf;
    }

private:
    std::string m_path;
    int m_fd = -1;
};

class AuditTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string templ = ::testing::TempDir() + "jitgate-audit-XXXXXX";
        ASSERT_NE(::mkdtemp(templ.data()), nullptr) << std::strerror(errno);
        m_dir = templ;
        m_journal = segment(1);
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(m_dir, ec);
    }

    // The path of the segment whose first seq is `first_seq`.
    std::string segment(std::uint64_t first_seq) const { return m_dir + "/" + spool::segment_name(first_seq); }

    Options options() const {
        Options o;
        o.spool_dir = m_dir;
        o.host = "testhost";
        o.syslog = false;
        return o;
    }

    // Writes a journal of `n` events with user text, a number and a reason in each.
    void write_good_journal(int n) {
        Auditor a(options());
        for (int i = 0; i < n; ++i)
            a.record({{"type", type::command_finished},
                      {"user", "alice"},
                      {"kind", "sudo"},
                      {"argv", {"/usr/bin/systemctl", "restart", "payments"}},
                      {"reason", "fix payments outage"},
                      {"exit_status", 3},
                      {"duration_ms", 1250}});
    }

    std::string m_dir;
    std::string m_journal; // the first segment
};

const Json k_approved_event = {
    {"type", type::approved},
    {"user", "alice"},
    {"kind", "sudo"},
    {"argv", {"/usr/bin/systemctl", "restart", "payments"}},
    {"approvers", {"bob"}},
    {"request_id", "R-7F3KQ2"},
};

TEST(AuditHash, Sha256AndCanonicalBytes) {
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(canonical_bytes(Json{{"b", 1}, {"a", "x"}, {"c", {{"z", true}, {"y", nullptr}}}}),
              R"({"a":"x","b":1,"c":{"y":null,"z":true}})");
}

TEST(AuditSeverity, MapsEventTypes) {
    EXPECT_EQ(severity_for(type::break_glass), 1);
    for (const char* t : {type::denied, type::timeout, type::cancelled, type::error, type::grant_revoked})
        EXPECT_EQ(severity_for(t), 4) << t;
    for (const char* t : {type::approved, type::approval_recorded, type::allowed_by_rule,
                          type::allowed_by_grant, type::command_finished, type::session_opened,
                          type::session_closed})
        EXPECT_EQ(severity_for(t), 5) << t;
    for (const char* t : {type::requested, type::daemon_started, type::daemon_stopped, type::config_loaded, ""})
        EXPECT_EQ(severity_for(t), 6) << t;
}

TEST_F(AuditTest, RecordStampsEventAndWritesCanonicalLine) {
    Auditor a(options());
    const Json e = a.record(k_approved_event);
    EXPECT_EQ(e["seq"], 1u);
    EXPECT_EQ(e["prev_hash"], k_genesis_hash);
    EXPECT_EQ(e["host"], "testhost");
    EXPECT_TRUE(matches_shape(e["event_id"], "hhhhhhhh-hhhh-4hhh-vhhh-hhhhhhhhhhhh")) << e["event_id"];
    EXPECT_TRUE(matches_shape(e["time"], "dddd-dd-ddTdd:dd:dd.dddZ")) << e["time"];
    Json without_hash = e;
    without_hash.erase("hash");
    EXPECT_EQ(e["hash"], sha256_hex(canonical_bytes(without_hash)));
    EXPECT_EQ(read_all(m_journal), canonical_bytes(e) + "\n");
    EXPECT_EQ(a.last_seq(), 1u);

    struct stat st {};
    ASSERT_EQ(::stat(m_journal.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0027, 0u) << "a segment must not be group-writable or world-accessible";
}

TEST_F(AuditTest, RecordWithoutTypeThrowsAndWritesNothing) {
    Auditor a(options());
    for (const Json& bad : {Json{{"user", "alice"}}, Json{{"type", 5}}, Json{{"type", ""}}, Json::array(), Json("x")}) {
        try {
            a.record(bad);
            ADD_FAILURE() << "no exception for " << bad.dump();
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::bad_input);
        }
    }
    EXPECT_EQ(a.last_seq(), 0u);
    EXPECT_EQ(read_all(m_journal), "");
}

TEST_F(AuditTest, ChainContinuesAcrossReopen) {
    std::string last_hash;
    {
        Auditor a(options());
        a.record({{"type", type::daemon_started}});
        last_hash = a.record({{"type", type::config_loaded}})["hash"];
        EXPECT_EQ(a.last_seq(), 2u);
    }
    {
        Auditor b(options());
        EXPECT_EQ(b.last_seq(), 2u);
        const Json e = b.record({{"type", type::daemon_stopped}});
        EXPECT_EQ(e["seq"], 3u);
        EXPECT_EQ(e["prev_hash"], last_hash);
    }
    const VerifyResult r = verify_spool(m_dir);
    EXPECT_TRUE(r.ok) << problems_text(r);
    EXPECT_EQ(r.events, 3u);
    EXPECT_EQ(r.first_seq, 1u);
    EXPECT_EQ(r.last_seq, 3u);
    EXPECT_EQ(r.segments, 1u);
}

TEST_F(AuditTest, SecondAuditorOnSameSpoolIsRefused) {
    Auditor a(options());
    try {
        Auditor b(options());
        FAIL() << "two writers would fork the chain";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::internal);
        EXPECT_NE(std::string(e.what()).find("locked"), std::string::npos) << e.what();
    }
}

TEST_F(AuditTest, MissingDirectoryIsAClearError) {
    Options o = options();
    o.spool_dir = m_dir + "/missing";
    try {
        Auditor a(o);
        FAIL() << "the spool directory is not created";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::internal);
        const std::string what = e.what();
        EXPECT_NE(what.find(m_dir + "/missing"), std::string::npos) << what;
        EXPECT_NE(what.find("does not exist"), std::string::npos) << what;
    }
    EXPECT_FALSE(fs::exists(m_dir + "/missing"));
}

TEST_F(AuditTest, VerifyAcceptsGoodAndEmptyJournals) {
    write_all(m_journal, "");
    VerifyResult r = verify_journal(m_journal);
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.events, 0u);

    write_good_journal(5);
    r = verify_journal(m_journal);
    EXPECT_TRUE(r.ok) << problems_text(r);
    EXPECT_EQ(r.events, 5u);
    EXPECT_EQ(r.last_seq, 5u);
}

TEST_F(AuditTest, VerifyReportsUnreadableFile) {
    const VerifyResult r = verify_journal(m_dir + "/nope.jsonl");
    EXPECT_FALSE(r.ok);
    ASSERT_EQ(r.problems.size(), 1u);
    EXPECT_NE(r.problems[0].find("cannot open"), std::string::npos) << r.problems[0];
}

TEST_F(AuditTest, VerifyAcceptsRotatedJournalAndReportsFirstSeq) {
    write_good_journal(4);
    auto lines = split_lines(read_all(m_journal));
    lines.erase(lines.begin());
    write_all(m_journal, join_lines(lines));
    const VerifyResult r = verify_journal(m_journal);
    EXPECT_TRUE(r.ok) << problems_text(r);
    EXPECT_EQ(r.first_seq, 2u);
    EXPECT_EQ(r.last_seq, 4u);
    EXPECT_EQ(r.events, 3u);
}

TEST_F(AuditTest, VerifyDetectsChosenByteChanges) {
    write_good_journal(3);
    const std::string good = read_all(m_journal);
    const auto lines = split_lines(good);
    const std::size_t line2 = lines[0].size() + 1;

    struct Edit {
        const char* what;
        std::string find;
        std::size_t offset; // into `find`
        char to;
    };
    const std::vector<Edit> edits = {
        {"inside a string value", "\"user\":\"alice\"", 9, 'e'},
        {"inside the hash", "\"hash\":\"", 8, '0'},
        {"in a number", "\"exit_status\":3", 14, '0'},
        {"in seq", "\"seq\":2", 6, '4'},
        {"in a key", "\"reason\"", 2, 'E'},
    };
    for (const auto& edit : edits) {
        std::string bad = good;
        const auto pos = bad.find(edit.find, line2);
        ASSERT_NE(pos, std::string::npos) << edit.find;
        ASSERT_LT(pos, line2 + lines[1].size());
        char& c = bad[pos + edit.offset];
        c = c == edit.to ? static_cast<char>(edit.to + 1) : edit.to;
        write_all(m_journal, bad);
        const VerifyResult r = verify_journal(m_journal);
        EXPECT_FALSE(r.ok) << edit.what;
        EXPECT_TRUE(has_problem_containing(r, "line 2:")) << edit.what << "\n" << problems_text(r);
    }
}

TEST_F(AuditTest, VerifyDetectsEveryChangedByteOfALine) {
    write_good_journal(3);
    const std::string good = read_all(m_journal);
    const auto lines = split_lines(good);
    const std::size_t begin = lines[0].size() + 1;
    const std::size_t end = begin + lines[1].size();
    for (std::size_t i = begin; i < end; ++i) {
        std::string bad = good;
        bad[i] = static_cast<char>(bad[i] ^ 0x01);
        write_all(m_journal, bad);
        const VerifyResult r = verify_journal(m_journal);
        EXPECT_FALSE(r.ok) << "byte " << (i - begin) << " of line 2 changed unnoticed: " << bad.substr(begin, end - begin);
    }
}

TEST_F(AuditTest, VerifyDetectsRemovedMiddleLine) {
    write_good_journal(3);
    auto lines = split_lines(read_all(m_journal));
    lines.erase(lines.begin() + 1);
    write_all(m_journal, join_lines(lines));
    const VerifyResult r = verify_journal(m_journal);
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(has_problem_containing(r, "line 2: seq 3 follows 1 (1 event missing)")) << problems_text(r);
    EXPECT_TRUE(has_problem_containing(r, "prev_hash")) << problems_text(r);
}

TEST_F(AuditTest, VerifyDetectsSwappedLines) {
    write_good_journal(4);
    auto lines = split_lines(read_all(m_journal));
    std::swap(lines[1], lines[2]);
    write_all(m_journal, join_lines(lines));
    const VerifyResult r = verify_journal(m_journal);
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(has_problem_containing(r, "line 2: seq 3 follows 1")) << problems_text(r);
    EXPECT_TRUE(has_problem_containing(r, "line 3: seq 2 follows 3")) << problems_text(r);
}

TEST_F(AuditTest, VerifyDetectsTornTail) {
    write_good_journal(2);
    std::string content = read_all(m_journal);
    const std::string partial = split_lines(content)[1].substr(0, 40);
    content += partial;
    write_all(m_journal, content);
    const VerifyResult r = verify_journal(m_journal);
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(has_problem_containing(r, "line 3: torn last line (40 bytes")) << problems_text(r);
    EXPECT_EQ(r.events, 2u);
}

TEST_F(AuditTest, VerifyCapsProblems) {
    std::string garbage;
    for (int i = 0; i < 150; ++i) garbage += "not json\n";
    write_all(m_journal, garbage);
    const VerifyResult r = verify_journal(m_journal);
    EXPECT_FALSE(r.ok);
    ASSERT_EQ(r.problems.size(), 101u);
    EXPECT_EQ(r.problems.back(), "... and 50 more");
}

TEST_F(AuditTest, ReopenQuarantinesTornTailAndRecordsError) {
    write_good_journal(2);
    const std::string good = read_all(m_journal);
    const std::string torn = R"({"event_id":"5a1f","host":"testh)";
    write_all(m_journal, good + torn);

    Auditor a(options());
    EXPECT_EQ(a.last_seq(), 3u);

    const std::string content = read_all(m_journal);
    ASSERT_EQ(content.compare(0, good.size(), good), 0) << "complete lines must never change";
    const auto lines = split_lines(content);
    ASSERT_EQ(lines.size(), 3u);
    const Json err = Json::parse(lines[2]);
    EXPECT_EQ(err["type"], type::error);
    EXPECT_EQ(err["seq"], 3u);
    EXPECT_EQ(err["torn_bytes"], torn.size());
    const std::string qpath = err["torn_file"];
    EXPECT_EQ(qpath.rfind(m_journal + ".torn-", 0), 0u) << qpath;
    EXPECT_EQ(read_all(qpath), torn);
    EXPECT_NE(err["message"].get<std::string>().find(qpath), std::string::npos);

    const VerifyResult r = verify_journal(m_journal);
    EXPECT_TRUE(r.ok) << problems_text(r);
    EXPECT_EQ(r.events, 3u);
}

TEST_F(AuditTest, ReopenOfJournalWithOnlyATornLineStartsAtGenesis) {
    write_all(m_journal, "{\"type\":\"acc");
    Auditor a(options());
    EXPECT_EQ(a.last_seq(), 1u);
    const auto lines = split_lines(read_all(m_journal));
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(Json::parse(lines[0])["prev_hash"], k_genesis_hash);
    EXPECT_TRUE(verify_journal(m_journal).ok);
}

TEST_F(AuditTest, ReopenQuarantinesInvalidLastLine) {
    write_good_journal(2);
    const std::string good = read_all(m_journal);
    const std::string bad = "{\"type\":\"access.denied\"}";
    write_all(m_journal, good + bad + "\n");
    Auditor a(options());
    EXPECT_EQ(a.last_seq(), 3u);
    const std::string content = read_all(m_journal);
    ASSERT_EQ(content.compare(0, good.size(), good), 0);
    const Json err = Json::parse(split_lines(content).at(2));
    EXPECT_EQ(err["type"], type::error);
    EXPECT_EQ(read_all(err["torn_file"].get<std::string>()), bad + "\n");
    EXPECT_NE(err["message"].get<std::string>().find("not a valid event"), std::string::npos) << err["message"];
    EXPECT_TRUE(verify_spool(m_dir).ok) << problems_text(verify_spool(m_dir));
}

TEST_F(AuditTest, ReopenQuarantinesLastLineThatDoesNotContinueTheChain) {
    write_good_journal(3);
    auto lines = split_lines(read_all(m_journal));
    lines.push_back(lines[1]); // a valid, correctly hashed event, but seq 2 again
    write_all(m_journal, join_lines(lines));
    Auditor a(options());
    EXPECT_EQ(a.last_seq(), 4u);
    EXPECT_TRUE(verify_spool(m_dir).ok) << problems_text(verify_spool(m_dir));
}

TEST_F(AuditTest, ReopenRefusesInvalidMiddleLine) {
    write_good_journal(3);
    auto lines = split_lines(read_all(m_journal));
    lines[1] = "{\"type\":\"access.denied\"}";
    const std::string before = join_lines(lines);
    write_all(m_journal, before);
    try {
        Auditor a(options());
        FAIL() << "a spool with an invalid line before good ones must not be continued";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::internal);
        EXPECT_EQ(e.context(), m_journal + ":2");
    }
    EXPECT_EQ(read_all(m_journal), before) << "nothing may change";
    EXPECT_TRUE(spool::list_torn(m_dir).empty());
}

TEST_F(AuditTest, FailedWriteThrowsAndDoesNotAdvanceTheChain) {
    Auditor a(options());
    a.record({{"type", type::daemon_started}});
    const std::string before = read_all(m_journal);

    // Let only 10 more bytes in: the first write() is short, the next fails with EFBIG.
    rlimit old{};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit small = old;
    small.rlim_cur = before.size() + 10;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
    bool threw = false;
    try {
        a.record(k_approved_event);
    } catch (const Error& e) {
        threw = e.code() == ErrorCode::internal;
    }
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);

    EXPECT_TRUE(threw);
    EXPECT_EQ(a.last_seq(), 1u);
    EXPECT_EQ(read_all(m_journal), before) << "the partial line must be taken back";
    EXPECT_EQ(a.record(k_approved_event)["seq"], 2u);
    const VerifyResult r = verify_journal(m_journal);
    EXPECT_TRUE(r.ok) << problems_text(r);
}

TEST_F(AuditTest, HostileUserTextIsEscapedEverywhere) {
    Auditor a(options());
    const Json e = a.record({{"type", type::requested},
                             {"user", "eve\x1b[31m\nroot"},
                             {"kind", "sudo"},
                             {"argv", {"/bin/echo", "\x1b]0;pwned\x07", "bad\xff\xfe"}},
                             {"reason", "line1\nline2\r\x7f\xc3\x28"},
                             {"nested", {{"k\xff", {"\xc0\xaf"}}}}});
    // The journal holds one valid JSON line; invalid UTF-8 was escaped, never dropped.
    const auto lines = split_lines(read_all(m_journal));
    ASSERT_EQ(lines.size(), 1u);
    const Json parsed = Json::parse(lines[0]);
    EXPECT_EQ(parsed, e);
    EXPECT_EQ(parsed["user"], "eve\x1b[31m\nroot"); // valid UTF-8: kept as is, JSON-escaped
    EXPECT_EQ(parsed["argv"][2], "bad\\xff\\xfe");
    // Not valid UTF-8 as a whole: the safety net escapes the whole string.
    EXPECT_EQ(parsed["reason"], "line1\\nline2\\r\\x7f\\xc3(");
    EXPECT_EQ(parsed["nested"]["k\\xff"][0], "\\xc0\\xaf");
    EXPECT_TRUE(verify_journal(m_journal).ok);

    const std::string line = format_syslog_line(e, "testhost", 42);
    EXPECT_FALSE(has_control_byte(line)) << line;
    EXPECT_TRUE(jitgate::text::is_valid_utf8(line)) << line;
    // In the structured data: escape_for_log, then RFC 5424 doubles the backslash.
    EXPECT_NE(line.find(R"(user="eve\\x1b[31m\\nroot")"), std::string::npos) << line;
    EXPECT_NE(line.find(R"(argv="/bin/echo \\x1b\]0;pwned\\x07 bad\\\\xff\\\\xfe")"), std::string::npos) << line;
    // In the summary: escape_for_log only.
    EXPECT_NE(line.find(R"(] eve\x1b[31m\nroot sudo /bin/echo \x1b]0;pwned\x07 bad\\xff\\xfe: approval requested)"), std::string::npos)
        << line;
}

TEST_F(AuditTest, InvalidStringsNeverMakeRecordThrow) {
    Auditor a(options());
    EXPECT_NO_THROW(a.record({{"type", "access.requested\xff"}, {"\xff\xfe", "\xed\xa0\x80"}}));
    EXPECT_TRUE(verify_journal(m_journal).ok);
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
    EXPECT_NE(line.find(R"(: [jitgate@32473 type="access.approved" seq="12" event_id="0f8e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b" user="alice" kind="sudo" argv="/usr/bin/systemctl restart payments" request_id="R-7F3KQ2" approvers="bob"] )"),
              std::string::npos)
        << line;
    EXPECT_TRUE(line.ends_with("] alice sudo /usr/bin/systemctl restart payments: approved by bob (request R-7F3KQ2)"))
        << line;

    Json b = {{"type", type::break_glass}, {"user", "carol"}, {"break_glass_reason", "db down"}};
    const std::string bl = format_syslog_line(b, "db01", 1);
    EXPECT_EQ(bl.rfind("<81>", 0), 0u);
    EXPECT_TRUE(bl.ends_with("] carol: BREAK-GLASS access without approval, reason: db down")) << bl;
    Json d = {{"type", type::denied}, {"user", "alice"}, {"kind", "sudo"}, {"argv", {"/sbin/reboot"}},
              {"denied_by", "carol"}, {"deny_reason", "change freeze"}, {"request_id", "R-1"}};
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

TEST(AuditSyslog, LongValuesAreTruncatedUnder8KiB) {
    Json e = {{"type", type::requested}};
    for (const char* key : {"user", "kind", "command", "runas", "tty", "remote_host", "reason", "ticket",
                            "request_id", "grant_id", "rule", "scope", "message", "outcome", "service"})
        e[key] = std::string(5000, 'x') + "\xc3\xa9\x1b";
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
    Options o = options();
    o.syslog = true;
    o.syslog_socket = sock;
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

TEST_F(AuditTest, SyslogReconnectsAfterReceiverRestart) {
    const std::string sock = m_dir + "/log.sock";
    Options o = options();
    o.syslog = true;
    o.syslog_socket = sock;
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
    Options o = options();
    o.syslog = true;
    o.syslog_socket = m_dir + "/no-such.sock";
    Auditor a(o);
    EXPECT_NO_THROW(a.record({{"type", type::daemon_started}}));
    EXPECT_NO_THROW(a.record({{"type", type::config_loaded}}));
    EXPECT_EQ(a.syslog_failures(), 2u);
    EXPECT_EQ(a.last_seq(), 2u);
    EXPECT_TRUE(verify_spool(m_dir).ok);
}

// --- The spool: segments, restarts, the anchor, the size bound ---

// Records `n` events of about 450 bytes each.
void record_events(Auditor& a, int n) {
    for (int i = 0; i < n; ++i)
        a.record({{"type", type::command_finished}, {"user", "alice"}, {"argv", {"/usr/bin/id", std::to_string(i)}},
                  {"reason", "rollover test"}, {"exit_status", 0}});
}

std::vector<std::string> segment_names(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& s : spool::list_segments(dir)) out.push_back(fs::path(s.path).filename().string());
    return out;
}

TEST(AuditSpoolNames, SegmentNamesRoundTrip) {
    EXPECT_EQ(spool::segment_name(42), "seg-00000000000000000042.jsonl");
    EXPECT_EQ(spool::parse_segment_name("seg-00000000000000000042.jsonl"), 42u);
    EXPECT_EQ(spool::parse_segment_name(spool::segment_name(UINT64_MAX)), UINT64_MAX);
    for (const char* bad : {"seg-42.jsonl", "seg-00000000000000000042.jsonl.torn-1700000000",
                            "seg-0000000000000000004x.jsonl", "seg-99999999999999999999.jsonl", "anchor.json",
                            "xseg-00000000000000000042.jsonl", "seg-00000000000000000042.json"})
        EXPECT_FALSE(spool::parse_segment_name(bad).has_value()) << bad;
}

TEST_F(AuditTest, SegmentsRollOverAndTheChainRunsAcrossThem) {
    Options o = options();
    o.segment_bytes = 1000;
    {
        Auditor a(o);
        record_events(a, 10);
        EXPECT_EQ(a.last_seq(), 10u);
    }
    const auto segs = spool::list_segments(m_dir);
    ASSERT_GE(segs.size(), 3u);
    std::uint64_t expected_first = 1;
    for (const auto& seg : segs) {
        EXPECT_EQ(seg.first_seq, expected_first) << seg.path;
        const auto lines = split_lines(read_all(seg.path));
        if (lines.empty()) continue; // the newest, created after the last sync
        EXPECT_EQ(Json::parse(lines.front())["seq"], seg.first_seq) << seg.path;
        expected_first = Json::parse(lines.back())["seq"].get<std::uint64_t>() + 1;
        if (&seg != &segs.back()) {
            EXPECT_GE(seg.bytes, o.segment_bytes) << "a segment closes only once it is full";
        }
    }
    const VerifyResult r = verify_spool(m_dir);
    EXPECT_TRUE(r.ok) << problems_text(r);
    EXPECT_EQ(r.events, 10u);
    EXPECT_EQ(r.segments, segs.size());

    // A restart continues seq and chain in the newest segment.
    Auditor b(o);
    EXPECT_EQ(b.last_seq(), 10u);
    const Json e = b.record({{"type", type::daemon_started}});
    EXPECT_EQ(e["seq"], 11u);
    EXPECT_TRUE(verify_spool(m_dir).ok) << problems_text(verify_spool(m_dir));
}

TEST_F(AuditTest, GroupCommitSyncsOncePublishesDurableSeqAndRollsOverOnlyAfterSync) {
    Options o = options();
    o.segment_bytes = 1000;
    Auditor a(o);
    std::vector<std::uint64_t> hook_calls;
    a.set_durable_hook([&](std::uint64_t seq) { hook_calls.push_back(seq); });
    a.record({{"type", type::daemon_started}});
    EXPECT_EQ(a.durable_seq(), 1u);
    EXPECT_EQ(hook_calls, std::vector<std::uint64_t>{1});

    a.set_group_commit(true);
    record_events(a, 6); // > segment_bytes, but a batch stays in one segment
    EXPECT_EQ(a.durable_seq(), 1u) << "nothing of the batch is durable before sync()";
    EXPECT_EQ(spool::list_segments(m_dir).size(), 1u);
    EXPECT_TRUE(a.has_unsynced());
    a.sync();
    EXPECT_EQ(a.durable_seq(), 7u);
    EXPECT_EQ(hook_calls, (std::vector<std::uint64_t>{1, 7}));
    const auto segs = spool::list_segments(m_dir);
    ASSERT_EQ(segs.size(), 2u) << "a full segment is closed after the sync";
    EXPECT_EQ(segs[1].first_seq, 8u);
    EXPECT_EQ(segs[1].bytes, 0u);
    a.sync(); // nothing new: no fdatasync, no hook
    EXPECT_EQ(hook_calls.size(), 2u);
    EXPECT_EQ(a.record({{"type", type::config_loaded}})["seq"], 8u);
    a.sync();
    EXPECT_EQ(split_lines(read_all(segment(8))).size(), 1u);
    EXPECT_TRUE(verify_spool(m_dir).ok) << problems_text(verify_spool(m_dir));
}

TEST_F(AuditTest, RestartAfterACrashRightAfterRolloverReusesTheEmptySegment) {
    Options o = options();
    o.segment_bytes = 300; // one event a segment
    {
        Auditor a(o);
        record_events(a, 3);
    }
    const auto before = segment_names(m_dir);
    ASSERT_EQ(spool::list_segments(m_dir).back().bytes, 0u);
    Auditor b(o);
    EXPECT_EQ(b.last_seq(), 3u);
    EXPECT_EQ(segment_names(m_dir), before);
    EXPECT_EQ(b.record({{"type", type::daemon_started}})["seq"], 4u);
    EXPECT_TRUE(verify_spool(m_dir).ok) << problems_text(verify_spool(m_dir));
}

TEST_F(AuditTest, TornTailOfTheNewestSegmentIsQuarantinedAndEarlierSegmentsKept) {
    Options o = options();
    o.segment_bytes = 300; // one event a segment
    {
        Auditor a(o);
        record_events(a, 3); // seg 1, 2, 3 with one event each, and an empty seg 4
    }
    const auto segs = spool::list_segments(m_dir);
    ASSERT_EQ(segs.size(), 4u);
    const std::string seg3_before = read_all(segs[2].path);
    // A crash while writing seq 4 into the empty newest segment.
    const std::string torn = R"({"argv":["/usr/bin/id"],"event_id":"7c1)";
    write_all(segs[3].path, torn);

    Auditor b(o);
    EXPECT_EQ(b.last_seq(), 4u) << "the chain continues from the previous segment, then the error event";
    EXPECT_EQ(read_all(segs[2].path), seg3_before);
    const auto lines = split_lines(read_all(segs[3].path));
    ASSERT_EQ(lines.size(), 1u);
    const Json err = Json::parse(lines[0]);
    EXPECT_EQ(err["type"], type::error);
    EXPECT_EQ(err["seq"], 4u);
    EXPECT_EQ(read_all(err["torn_file"].get<std::string>()), torn);
    EXPECT_EQ(spool::list_torn(m_dir), std::vector<std::string>{err["torn_file"].get<std::string>()});

    const VerifyResult r = verify_spool(m_dir);
    EXPECT_TRUE(r.ok) << problems_text(r);
    EXPECT_EQ(r.events, 4u);
    ASSERT_FALSE(r.notes.empty());
    bool noted = false;
    for (const auto& n : r.notes) noted = noted || n.find(".torn-") != std::string::npos;
    EXPECT_TRUE(noted) << "a quarantined tail is a note, not a failure";
}

TEST_F(AuditTest, AClosedSegmentWithoutFinalNewlineRefusesStart) {
    Options o = options();
    o.segment_bytes = 300; // one event a segment
    {
        Auditor a(o);
        record_events(a, 3);
    }
    const auto segs = spool::list_segments(m_dir);
    ASSERT_GE(segs.size(), 3u);
    // The newest segment with lines continues from seg 2's last line, which is cut short.
    const std::string content = read_all(segs[1].path);
    write_all(segs[1].path, content.substr(0, content.size() - 1));
    EXPECT_THROW(Auditor b(o), Error);
}

TEST_F(AuditTest, RestartContinuesFromTheAnchorWhenEverySegmentWasShipped) {
    Options o = options();
    o.segment_bytes = 300; // one event a segment
    std::string last_hash;
    {
        Auditor a(o);
        record_events(a, 4);
        last_hash = split_lines(read_all(segment(4))).back();
        EXPECT_EQ(a.discard_shipped(4), 4u) << "every segment but the (empty) newest";
    }
    const auto anchor = spool::read_anchor(m_dir);
    ASSERT_TRUE(anchor);
    EXPECT_EQ(anchor->seq, 4u);
    EXPECT_EQ(anchor->hash, Json::parse(last_hash)["hash"]);
    EXPECT_EQ(anchor->event_id, Json::parse(last_hash)["event_id"]);
    EXPECT_EQ(segment_names(m_dir), std::vector<std::string>{spool::segment_name(5)});
    VerifyResult r = verify_spool(m_dir);
    EXPECT_TRUE(r.ok) << problems_text(r);
    EXPECT_EQ(r.last_seq, 4u);

    // Even with no segment at all, the chain goes on from the anchor.
    fs::remove(segment(5));
    {
        Auditor b(o);
        EXPECT_EQ(b.last_seq(), 4u);
        const Json e = b.record({{"type", type::daemon_started}});
        EXPECT_EQ(e["seq"], 5u);
        EXPECT_EQ(e["prev_hash"], anchor->hash);
    }
    r = verify_spool(m_dir);
    EXPECT_TRUE(r.ok) << problems_text(r);
    EXPECT_EQ(r.first_seq, 5u);
}

TEST_F(AuditTest, DiscardShippedNeverDeletesTheNewestOrAnUnshippedSegment) {
    Options o = options();
    o.segment_bytes = 600; // two events a segment
    Auditor a(o);
    record_events(a, 7);
    auto segs = spool::list_segments(m_dir);
    ASSERT_EQ(segs.size(), 4u); // 1-2, 3-4, 5-6, 7
    const auto bytes_before = a.spool_bytes();
    EXPECT_EQ(a.discard_shipped(0), 0u);
    EXPECT_EQ(a.discard_shipped(3), 1u) << "seg 3-4 still holds seq 4";
    EXPECT_EQ(segment_names(m_dir).front(), spool::segment_name(3));
    EXPECT_EQ(spool::read_anchor(m_dir)->seq, 2u);
    EXPECT_EQ(a.spool_bytes(), bytes_before - segs[0].bytes);
    EXPECT_EQ(a.discard_shipped(1000), 2u);
    EXPECT_EQ(segment_names(m_dir), std::vector<std::string>{spool::segment_name(7)});
    EXPECT_EQ(spool::read_anchor(m_dir)->seq, 6u);
    EXPECT_EQ(a.stats()["segments"], 1u);
    EXPECT_EQ(a.stats()["spooled_events"], 1u);
    EXPECT_TRUE(verify_spool(m_dir).ok) << problems_text(verify_spool(m_dir));
}

TEST(AuditSpoolFiles, CountDeletableIsAPrefixAndNeverTheNewest) {
    const std::vector<spool::Segment> segs = {{"a", 1, 10}, {"b", 10, 10}, {"c", 20, 10}};
    EXPECT_EQ(spool::count_deletable(segs, 0), 0u);
    EXPECT_EQ(spool::count_deletable(segs, 8), 0u);
    EXPECT_EQ(spool::count_deletable(segs, 9), 1u);
    EXPECT_EQ(spool::count_deletable(segs, 18), 1u);
    EXPECT_EQ(spool::count_deletable(segs, 19), 2u);
    EXPECT_EQ(spool::count_deletable(segs, 1000), 2u);
    EXPECT_EQ(spool::count_deletable({}, 1000), 0u);
    EXPECT_EQ(spool::count_deletable({{"a", 1, 10}}, 1000), 0u);
}

TEST_F(AuditTest, StateFilesAreWrittenAtomically) {
    spool::write_shipped(m_dir, {42, "2026-11-23T10:00:00.000Z"});
    auto s = spool::read_shipped(m_dir);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->seq, 42u);
    EXPECT_EQ(s->time, "2026-11-23T10:00:00.000Z");
    spool::write_shipped(m_dir, {43, "t"});
    EXPECT_EQ(spool::read_shipped(m_dir)->seq, 43u);
    EXPECT_FALSE(fs::exists(m_dir + "/shipped.json.tmp"));
    EXPECT_EQ(Json::parse(read_all(m_dir + "/shipped.json")), (Json{{"seq", 43}, {"time", "t"}}));

    EXPECT_FALSE(spool::read_anchor(m_dir));
    spool::write_anchor(m_dir, {7, std::string(64, 'a'), "id"});
    EXPECT_EQ(spool::read_anchor(m_dir)->hash, std::string(64, 'a'));
    EXPECT_FALSE(fs::exists(m_dir + "/anchor.json.tmp"));
    struct stat st {};
    ASSERT_EQ(::stat((m_dir + "/anchor.json").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0027, 0u);

    write_all(m_dir + "/anchor.json", R"({"seq":-1,"hash":"x"})");
    EXPECT_THROW(spool::read_anchor(m_dir), Error);
    write_all(m_dir + "/shipped.json", "garbage");
    EXPECT_THROW(spool::read_shipped(m_dir), Error);
    try {
        Auditor a(options());
        FAIL() << "a malformed anchor leaves no way to know where the chain stands";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("anchor.json"), std::string::npos) << e.what();
    }
}

TEST_F(AuditTest, VerifySpoolFindsAnEditAGapADeletedSegmentAndAnAnchorMismatch) {
    Options o = options();
    o.segment_bytes = 600; // two events a segment
    {
        Auditor a(o);
        record_events(a, 7); // 1-2, 3-4, 5-6, 7
    }
    ASSERT_TRUE(verify_spool(m_dir).ok);
    const std::string seg3 = segment(3), seg3_good = read_all(seg3);

    // An edited byte.
    std::string edited = seg3_good;
    edited[edited.find("alice") + 1] = 'L';
    write_all(seg3, edited);
    VerifyResult r = verify_spool(m_dir);
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(has_problem_containing(r, spool::segment_name(3) + ":1: hash does not match")) << problems_text(r);

    // A deleted line.
    write_all(seg3, join_lines({split_lines(seg3_good)[1]}));
    r = verify_spool(m_dir);
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(has_problem_containing(r, "seq 4 follows 2 (1 event missing)")) << problems_text(r);
    write_all(seg3, seg3_good);

    // A deleted middle segment.
    fs::rename(seg3, m_dir + "/aside");
    r = verify_spool(m_dir);
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(has_problem_containing(r, spool::segment_name(5) + ":1: seq 5 follows 2 (2 events missing)"))
        << problems_text(r);
    fs::rename(m_dir + "/aside", seg3);
    ASSERT_TRUE(verify_spool(m_dir).ok);

    // The first segments deleted without an anchor.
    fs::rename(segment(1), m_dir + "/aside");
    r = verify_spool(m_dir);
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(has_problem_containing(r, "seq 3 is the first event, but there is no anchor.json")) << problems_text(r);

    // ... with an anchor naming the right event: fine; with a wrong hash or seq: not.
    const Json last_of_first = Json::parse(split_lines(read_all(m_dir + "/aside")).back());
    spool::write_anchor(m_dir, {2, last_of_first["hash"], last_of_first["event_id"]});
    r = verify_spool(m_dir);
    EXPECT_TRUE(r.ok) << problems_text(r);
    EXPECT_EQ(r.first_seq, 3u);
    spool::write_anchor(m_dir, {2, std::string(64, 'e'), "x"});
    r = verify_spool(m_dir);
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(has_problem_containing(r, "prev_hash is not the hash of the event in anchor.json")) << problems_text(r);
    spool::write_anchor(m_dir, {1, last_of_first["hash"], "x"});
    r = verify_spool(m_dir);
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(has_problem_containing(r, "seq 3 follows 1 (1 event missing)")) << problems_text(r);

    // Segments older than the anchor (a crash while deleting): the anchor must match one of their events.
    fs::rename(m_dir + "/aside", segment(1));
    spool::write_anchor(m_dir, {2, last_of_first["hash"], last_of_first["event_id"]});
    r = verify_spool(m_dir);
    EXPECT_TRUE(r.ok) << problems_text(r);
    spool::write_anchor(m_dir, {2, std::string(64, 'e'), "x"});
    EXPECT_FALSE(verify_spool(m_dir).ok);
}

TEST_F(AuditTest, VerifySpoolReportsAMisnamedSegment) {
    {
        Auditor a(options());
        record_events(a, 2);
    }
    fs::rename(segment(1), segment(5));
    const VerifyResult r = verify_spool(m_dir);
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(has_problem_containing(r, "name says it starts at seq 5, but its first event is seq 1")) << problems_text(r);
}

TEST_F(AuditTest, TailLinesSpanSegments) {
    Options o = options();
    o.segment_bytes = 600; // two events a segment
    {
        Auditor a(o);
        record_events(a, 7);
    }
    const auto lines = spool::tail_lines(m_dir, 4);
    ASSERT_EQ(lines.size(), 4u);
    for (std::size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(Json::parse(lines[i])["seq"], 4 + i);
    EXPECT_EQ(spool::tail_lines(m_dir, 100).size(), 7u);
    EXPECT_TRUE(spool::tail_lines(m_dir, 0).empty());
}

// The syslog datagrams received so far that contain `needle`.
std::vector<std::string> received_with(DatagramReceiver& r, const std::string& needle) {
    std::vector<std::string> out;
    for (std::string d; !(d = r.receive()).empty();)
        if (d.find(needle) != std::string::npos) out.push_back(d);
    return out;
}

TEST_F(AuditTest, SpoolFullAlertsOnceAndNoticesWhenDrained) {
    const std::string sock = m_dir + "/log.sock";
    DatagramReceiver receiver(sock);
    Options o = options();
    o.syslog = true;
    o.syslog_socket = sock;
    o.segment_bytes = 600; // two events a segment
    o.max_bytes = 3000;
    Auditor a(o);
    EXPECT_FALSE(a.spool_full());
    while (!a.spool_full()) record_events(a, 1);
    EXPECT_GE(a.spool_bytes(), o.max_bytes);
    auto alerts = received_with(receiver, "audit spool full");
    ASSERT_EQ(alerts.size(), 1u);
    EXPECT_EQ(alerts[0].rfind("<81>", 0), 0u) << "authpriv.alert: " << alerts[0];
    EXPECT_NE(alerts[0].find("privileged actions are denied until the audit store accepts events"), std::string::npos);
    EXPECT_TRUE(a.stats()["spool_full"].get<bool>());

    // Still recorded while full (the bound is soft), without a second alert.
    const auto seq = a.last_seq();
    EXPECT_EQ(a.record({{"type", type::denied}})["seq"], seq + 1);
    EXPECT_TRUE(received_with(receiver, "audit spool full").empty());

    a.discard_shipped(a.last_seq());
    EXPECT_FALSE(a.spool_full());
    const auto notices = received_with(receiver, "audit spool below 90");
    ASSERT_EQ(notices.size(), 1u);
    EXPECT_EQ(notices[0].rfind("<85>", 0), 0u) << notices[0];
    EXPECT_FALSE(a.stats()["spool_full"].get<bool>());

    // Full again: a new transition, a new alert.
    while (!a.spool_full()) record_events(a, 1);
    EXPECT_EQ(received_with(receiver, "audit spool full").size(), 1u);
}

TEST_F(AuditTest, StatsDescribeTheSpool) {
    Options o = options();
    o.segment_bytes = 600; // two events a segment
    o.max_bytes = 1 << 20;
    Auditor a(o);
    record_events(a, 3);
    const Json s = a.stats();
    EXPECT_EQ(s["spool_dir"], m_dir);
    EXPECT_EQ(s["segments"], 2u);
    EXPECT_EQ(s["spooled_events"], 3u);
    EXPECT_EQ(s["last_seq"], 3u);
    EXPECT_EQ(s["durable_seq"], 3u);
    EXPECT_EQ(s["spool_max_bytes"], 1u << 20);
    EXPECT_EQ(s["spool_full"], false);
    std::uint64_t total = 0;
    for (const auto& seg : spool::list_segments(m_dir)) total += seg.bytes;
    EXPECT_EQ(s["spool_bytes"], total);
}

TEST_F(AuditTest, InvalidUtf8IsStoredEscapedAndTheSpoolStaysValidUtf8) {
    {
        Auditor a(options());
        const Json e = a.record({{"type", type::requested},
                                 {"reason", "caf\xc3 \x01 ok"},
                                 {"argv", {"/bin/echo", "\xff\xfe"}},
                                 {"ticket", "\xe2\x82"}});
        EXPECT_EQ(e["reason"], "caf\\xc3 \\x01 ok");
        EXPECT_EQ(e["argv"][1], "\\xff\\xfe");
    }
    const std::string content = read_all(m_journal);
    EXPECT_TRUE(jitgate::text::is_valid_utf8(content));
    EXPECT_FALSE(has_control_byte(content.substr(0, content.size() - 1)));
    const Json parsed = Json::parse(split_lines(content)[0]);
    EXPECT_EQ(parsed["ticket"], "\\xe2\\x82");
    EXPECT_TRUE(verify_spool(m_dir).ok);
}

// Regression: a spool cut below what the store acknowledged went unnoticed (verify said OK)
// and jitgated issued the lost seq numbers again, so the store got two events per (host, seq).
TEST_F(AuditTest, SpoolCutBelowTheAcknowledgedSeqIsFlaggedAndNoSeqIsReused) {
    Options o = options();
    o.segment_bytes = 300; // one event a segment
    {
        Auditor a(o);
        record_events(a, 6);
    }
    spool::write_shipped(m_dir, {6, "2026-11-23T10:00:00.000Z"});
    ASSERT_TRUE(verify_spool(m_dir).ok) << problems_text(verify_spool(m_dir));
    // Restored from an older copy: the last two events (and the empty newest segment) are gone.
    fs::remove(segment(5));
    fs::remove(segment(6));
    fs::remove(segment(7));

    VerifyResult r = verify_spool(m_dir);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(
        problems_text(r).find("shipped.json: the audit store acknowledged events up to seq 6, but the spool ends at "
                              "seq 4: events 5..6 were cut"),
        std::string::npos)
        << problems_text(r);

    std::set<std::uint64_t> seqs;
    {
        Auditor b(o);
        EXPECT_EQ(b.last_seq(), 7u) << "continues above the acknowledged seq, with the cut recorded first";
        const Json e = b.record({{"type", type::daemon_started}});
        EXPECT_EQ(e["seq"], 8u);
    }
    const auto lines = spool::tail_lines(m_dir, 100);
    Json cut;
    for (const auto& line : lines) {
        const Json e = Json::parse(line);
        EXPECT_TRUE(seqs.insert(e["seq"].get<std::uint64_t>()).second) << "seq " << e["seq"] << " issued twice";
        if (e.value("spool_cut", false)) cut = e;
    }
    ASSERT_TRUE(cut.is_object()) << "the cut is recorded";
    EXPECT_EQ(cut["type"], type::error);
    EXPECT_EQ(cut["seq"], 7u);
    EXPECT_EQ(cut["spool_last_seq"], 4u);
    EXPECT_EQ(cut["acknowledged_seq"], 6u);
    EXPECT_NE(cut["message"].get<std::string>().find("events 5..6 are no longer on this host"), std::string::npos);
    EXPECT_TRUE(fs::exists(segment(7))) << "a new segment named for its first seq";
    EXPECT_FALSE(verify_spool(m_dir).ok) << "the gap stays visible";
}

TEST_F(AuditTest, SpoolTruncatedInsideTheNewestSegmentContinuesAboveTheAcknowledgedSeq) {
    {
        Auditor a(options());
        record_events(a, 5);
    }
    spool::write_shipped(m_dir, {5, ""});
    // Cut to its first three lines.
    const auto lines = split_lines(read_all(m_journal));
    ASSERT_EQ(lines.size(), 5u);
    write_all(m_journal, lines[0] + "\n" + lines[1] + "\n" + lines[2] + "\n");
    EXPECT_FALSE(verify_spool(m_dir).ok);
    Auditor b(options());
    EXPECT_EQ(b.last_seq(), 6u);
    EXPECT_EQ(Json::parse(split_lines(read_all(segment(6))).at(0))["spool_cut"], true);
    EXPECT_EQ(b.record({{"type", type::daemon_started}})["seq"], 7u);
    EXPECT_EQ(split_lines(read_all(m_journal)).size(), 3u) << "the old segment is kept as it is, as evidence";
}

TEST_F(AuditTest, ShippedBehindTheSpoolIsNotACut) {
    {
        Auditor a(options());
        record_events(a, 5);
    }
    spool::write_shipped(m_dir, {3, ""});
    EXPECT_TRUE(verify_spool(m_dir).ok);
    Auditor b(options());
    EXPECT_EQ(b.last_seq(), 5u) << "no event recorded at start-up";
}

// ... and the same for events that were sent but whose acknowledgement was lost: the store may
// hold them, so sent.json bounds the seqs too.
TEST_F(AuditTest, SpoolCutBelowTheSentSeqContinuesAboveIt) {
    {
        Auditor a(options());
        record_events(a, 4);
    }
    spool::write_shipped(m_dir, {2, ""});
    spool::write_sent(m_dir, 6); // a batch up to 6 left, then the spool lost 5 and 6
    VerifyResult r = verify_spool(m_dir);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(problems_text(r).find(
                  "sent.json: events up to seq 6 were sent to the audit store, but the spool ends at seq 4"),
              std::string::npos)
        << problems_text(r);
    Auditor b(options());
    EXPECT_EQ(b.last_seq(), 7u);
    const Json cut = Json::parse(split_lines(read_all(segment(7))).at(0));
    EXPECT_EQ(cut["spool_cut"], true);
    EXPECT_EQ(cut["sent_seq"], 6u);
    EXPECT_EQ(cut["acknowledged_seq"], 2u);
}

TEST_F(AuditTest, MalformedSentJsonRefusesStart) {
    write_all(m_dir + "/sent.json", "{\"seq\":\"x\"}");
    EXPECT_THROW(Auditor a(options()), Error);
    EXPECT_FALSE(verify_spool(m_dir).ok);
}

} // namespace
