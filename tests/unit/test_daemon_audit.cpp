// Unit tests for daemon/audit: the hash-chained journal, its verifier and the syslog line.
// Everything runs in a private temp directory; syslog goes to a datagram socket bound there.
#include "audit.hpp"

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
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"

namespace {

using jitgate::Error;
using jitgate::ErrorCode;
using namespace jitgate::audit;
namespace fs = std::filesystem;

std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_all(const std::string& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
}

std::vector<std::string> split_lines(const std::string& content) {
    std::vector<std::string> lines;
    std::size_t start = 0;
    for (std::size_t nl; (nl = content.find('\n', start)) != std::string::npos; start = nl + 1)
        lines.push_back(content.substr(start, nl - start));
    return lines;
}

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
        m_journal = m_dir + "/audit.jsonl";
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(m_dir, ec);
    }

    Options options() const {
        Options o;
        o.journal_path = m_journal;
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
    std::string m_journal;
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
    EXPECT_EQ(st.st_mode & 0027, 0u) << "journal must not be group-writable or world-accessible";
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
    const VerifyResult r = verify_journal(m_journal);
    EXPECT_TRUE(r.ok) << problems_text(r);
    EXPECT_EQ(r.events, 3u);
    EXPECT_EQ(r.first_seq, 1u);
    EXPECT_EQ(r.last_seq, 3u);
}

TEST_F(AuditTest, SecondAuditorOnSameJournalIsRefused) {
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
    o.journal_path = m_dir + "/missing/audit.jsonl";
    try {
        Auditor a(o);
        FAIL() << "the journal directory is not created";
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
    EXPECT_TRUE(has_problem_containing(r, "line 2: seq 3 follows 1 (1 events missing)")) << problems_text(r);
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

TEST_F(AuditTest, ReopenRefusesInvalidLastLine) {
    write_good_journal(2);
    const std::string before = read_all(m_journal) + "{\"type\":\"access.denied\"}\n";
    write_all(m_journal, before);
    try {
        Auditor a(options());
        FAIL() << "a journal whose last line is not a stamped event must not be continued";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::internal);
        EXPECT_EQ(e.context(), m_journal + ":3");
    }
    EXPECT_EQ(read_all(m_journal), before);
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
    EXPECT_EQ(months.find(line.substr(4, 3)) % 3, 0u) << line;
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
    EXPECT_TRUE(verify_journal(m_journal).ok);
}

} // namespace
