// Unit tests for lib/audit_chain: the hash-chain verifier of a journal (every changed byte,
// removed, swapped and torn lines) and the canonical bytes and hash of an event. The journals
// are written by a real Auditor in a private temp directory.
#include "lib/audit_chain.hpp"

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

TEST(AuditHash, Sha256AndCanonicalBytes) {
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(canonical_bytes(Json{{"b", 1}, {"a", "x"}, {"c", {{"z", true}, {"y", nullptr}}}}),
              R"({"a":"x","b":1,"c":{"y":null,"z":true}})");
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
        EXPECT_FALSE(r.ok) << "byte " << (i - begin)
                           << " of line 2 changed unnoticed: " << bad.substr(begin, end - begin);
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

} // namespace
