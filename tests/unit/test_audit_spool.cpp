// Unit tests for daemon/audit/spool: segment names, the deletable prefix, the state files,
// the spool verifier and tail_lines. Everything runs in a private temp directory.
#include "daemon/audit/spool.hpp"

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

TEST(AuditSpoolNames, SegmentNamesRoundTrip) {
    EXPECT_EQ(spool::segment_name(42), "seg-00000000000000000042.jsonl");
    EXPECT_EQ(spool::parse_segment_name("seg-00000000000000000042.jsonl"), 42u);
    EXPECT_EQ(spool::parse_segment_name(spool::segment_name(UINT64_MAX)), UINT64_MAX);
    for (const char* bad : {"seg-42.jsonl", "seg-00000000000000000042.jsonl.torn-1700000000",
                            "seg-0000000000000000004x.jsonl", "seg-99999999999999999999.jsonl", "anchor.json",
                            "xseg-00000000000000000042.jsonl", "seg-00000000000000000042.json"})
        EXPECT_FALSE(spool::parse_segment_name(bad).has_value()) << bad;
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
    EXPECT_TRUE(has_problem_containing(r, "name says it starts at seq 5, but its first event is seq 1"))
        << problems_text(r);
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

} // namespace
