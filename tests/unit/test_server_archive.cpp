// Tests for the audit store's retention (server/report/archive, the store's partitions, export,
// prune and the report's anchor check) on SQLite and on the real PostgreSQL 15 of the
// pg_scratch fixture, as test_server_store does. Every time is injected (`now`), never waited for.
#include "server/commands.hpp"
#include "server/report/archive.hpp"
#include "server/report/report.hpp"
#include "server/store/store.hpp"
#include "server_store_fixture.hpp"

#include <jitgate/error.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace jitgate::server::store;
using namespace jitgate::test_store;
using jitgate::Error;
namespace report = jitgate::server::report;
using Json = nlohmann::json;

namespace {

// Unix seconds of day `day` (1-based) of the month, at noon.
std::int64_t day_of(const std::string& month, int day) {
    return parse_month(month)->from + (day - 1) * 86400 + 12 * 3600;
}

const std::int64_t k_now = day_of("2026-11", 29); // the tests' "today"

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const fs::path& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
}

std::string joined(const std::vector<AuditEvent>& events) {
    std::string out;
    for (const AuditEvent& e : events) out += e.line + "\n";
    return out;
}

class ArchiveTest : public testing::TestWithParam<Backend> {
protected:
    void SetUp() override {
        m_database = std::make_unique<Database>(GetParam());
        m_database->migrate();
        store = m_database->open();
        // The test's name ends in "/sqlite" or "/postgres": one directory, not two.
        std::string name = testing::UnitTest::GetInstance()->current_test_info()->name();
        std::replace(name.begin(), name.end(), '/', '-');
        m_dir = fs::temp_directory_path() / ("jitgate-archive-" + std::to_string(::getpid()) + "-" + name);
        fs::remove_all(m_dir);
        fs::create_directories(m_dir);
    }
    void TearDown() override {
        store.reset();
        m_database.reset();
        fs::remove_all(m_dir);
    }

    // Stores `events` of `host` as one batch received at `at`.
    void ingest(const std::string& host, const std::vector<AuditEvent>& events, std::int64_t at) {
        const IngestResult r = store->ingest(host, events, at);
        ASSERT_TRUE(r.stored);
        ASSERT_EQ(r.added, events.size());
    }
    std::vector<AuditEvent> next_n(HostChain& chain, int n) {
        std::vector<AuditEvent> out;
        for (int i = 0; i < n; ++i) out.push_back(chain.next());
        return out;
    }
    std::string dir(const std::string& name) const { return (m_dir / name).string(); }
    bool postgres() const { return GetParam() == Backend::postgres; }

    // A two-host fleet over 2019-09 .. 2019-11; returns each host's events per month. With
    // `today`, web-01 also sends one event (seq 10) received at k_now: the store has received
    // events past the retention (a prune requires that).
    struct Fleet {
        std::map<std::string, std::map<std::string, std::vector<AuditEvent>>> events; // host -> month -> events
    };
    Fleet old_fleet(bool today = true) {
        Fleet f;
        HostChain web("web-01");
        HostChain db("db-01");
        for (const std::string month : {"2019-09", "2019-10", "2019-11"}) {
            auto w = next_n(web, 3);
            auto d = next_n(db, 2);
            ingest("web-01", {w[0], w[1]}, day_of(month, 3));
            ingest("db-01", d, day_of(month, 4));
            ingest("web-01", {w[2]}, day_of(month, 20));
            f.events["web-01"][month] = w;
            f.events["db-01"][month] = d;
        }
        if (today) ingest("web-01", {web.next()}, k_now);
        return f;
    }

    std::unique_ptr<Database> m_database;
    std::unique_ptr<Store> store;
    fs::path m_dir;
};

TEST(ArchiveMonth, months_parse_exactly_and_follow_each_other_in_utc) {
    const auto m = parse_month("2026-11");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->from, 1793491200); // 2026-11-01T00:00:00Z
    EXPECT_EQ(m->to, 1796083200);   // 2026-12-01T00:00:00Z
    EXPECT_EQ(next_month(*m).name, "2026-12");
    EXPECT_EQ(next_month(*parse_month("2026-12")).name, "2027-01");
    EXPECT_EQ(parse_month("2024-02")->to - parse_month("2024-02")->from, 29 * 86400); // leap year
    EXPECT_EQ(month_of(1793491200).name, "2026-11");
    EXPECT_EQ(month_of(1793491199).name, "2026-10");
    for (const char* bad : {"2026-13", "2026-00", "2026-1", "1969-12", "2026/11", "2026-11-01", "", "２０２６-11"})
        EXPECT_FALSE(parse_month(bad)) << bad;
    EXPECT_TRUE(report::safe_host_file_name("web-01.example.com"));
    for (const char* bad : {"", ".hidden", "../etc", "a/b", "a b", "MANIFEST\n"})
        EXPECT_FALSE(report::safe_host_file_name(bad)) << bad;
}

// PostgreSQL: audit_events is partitioned by the server's month; this month and the next two
// exist after open, and an event of a month never seen before gets its partition.
TEST_P(ArchiveTest, partitions_exist_for_this_month_and_the_next_two_and_a_new_month_is_ingested) {
    store->ensure_audit_partitions(k_now);
    if (postgres()) {
        EXPECT_EQ(m_database->pg_value("SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_events'::regclass "
                                       "AND inhrelid::regclass::text IN ('audit_events_y2026m11', "
                                       "'audit_events_y2026m12', 'audit_events_y2027m01')"),
                  "3");
        EXPECT_EQ(m_database->pg_value("SELECT count(*) FROM pg_partitioned_table WHERE partrelid = "
                                       "'audit_events'::regclass"),
                  "1");
        EXPECT_EQ(m_database->pg_value("SELECT to_regclass('audit_events_y2030m01') IS NULL"), "t");
    }
    HostChain chain("web-01");
    const std::int64_t far = day_of("2031-05", 2);
    ingest("web-01", {chain.next()}, far);
    if (postgres()) {
        EXPECT_EQ(m_database->pg_value("SELECT count(*) FROM audit_events_y2031m05"), "1");
    }
    const auto stored = store->audit_events_received(parse_month("2031-05")->from, parse_month("2031-05")->to, 0, 10);
    ASSERT_EQ(stored.size(), 1u);
    EXPECT_EQ(stored[0].received_at, far);
}

// A month is read page by page in arrival order, each row once, even when the server's clock
// stepped back across the month's end (received_at out of row order); an empty month is empty.
TEST_P(ArchiveTest, a_months_events_page_in_arrival_order_across_a_clock_step) {
    HostChain a("web-01");
    HostChain b("db-01");
    const auto a1 = next_n(a, 2);
    ingest("web-01", a1, day_of("2026-10", 5));
    ingest("db-01", {b.next()}, day_of("2026-11", 2));
    ingest("web-01", {a.next()}, day_of("2026-10", 31)); // the clock stepped back
    ingest("db-01", {b.next()}, day_of("2026-11", 3));
    const auto oct = *parse_month("2026-10");
    std::vector<std::int64_t> rows;
    std::vector<std::string> lines;
    std::int64_t after = 0;
    for (int pages = 0; pages < 10; ++pages) {
        const auto page = store->audit_events_received(oct.from, oct.to, after, 2);
        for (const auto& e : page) {
            rows.push_back(e.row);
            lines.push_back(e.event.line);
        }
        if (page.size() < 2) break;
        after = page.back().row;
    }
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0], a1[0].line);
    EXPECT_EQ(lines[1], a1[1].line);
    EXPECT_TRUE(std::is_sorted(rows.begin(), rows.end()));
    EXPECT_EQ(store->audit_events_received(parse_month("2026-11")->from, parse_month("2026-11")->to, 0, 10).size(), 2u);
    EXPECT_TRUE(store->audit_events_received(parse_month("2026-09")->from, parse_month("2026-09")->to, 0, 10).empty());
    EXPECT_EQ(store->oldest_audit_received(), day_of("2026-10", 5));
    EXPECT_EQ(report::month_manifest(*store, oct).events, 3);
    EXPECT_EQ(report::month_manifest(*store, *parse_month("2026-09")).hosts.size(), 0u);
}

// A month whose partition is gone (here: dropped by hand) fails its batch with a clear error and
// stores nothing; the next ensure_audit_partitions makes it again and the batch goes in.
TEST_P(ArchiveTest, a_batch_for_a_month_without_partition_fails_and_the_next_ensure_fixes_it) {
    if (!postgres()) {
        // SQLite has one table: nothing to make, ingest always finds it.
        store->ensure_audit_partitions(k_now);
        HostChain chain("web-01");
        ingest("web-01", {chain.next()}, k_now);
        return;
    }
    HostChain chain("web-01");
    ingest("web-01", {chain.next()}, k_now);
    m_database->exec("DELETE FROM audit_events; ALTER TABLE audit_events DETACH PARTITION audit_events_y2026m11; "
                     "DROP TABLE audit_events_y2026m11");
    const AuditEvent second = chain.next();
    try {
        store->ingest("web-01", {second}, k_now + 1);
        ADD_FAILURE() << "a batch stored without a partition";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("no partition for 2026-11"), std::string::npos) << e.what();
    }
    EXPECT_EQ(store->audit_chain("web-01")->last_seq, 1); // nothing of the batch
    store->ensure_audit_partitions(k_now);
    ingest("web-01", {second}, k_now + 2);
    EXPECT_EQ(store->audit_chain("web-01")->last_seq, 2);
}

// Upgrading a schema-5 database converts audit_events in place: every row keeps its id, line
// and received_at; new rows get later ids.
TEST_P(ArchiveTest, the_migration_from_schema_5_keeps_every_event_and_its_id) {
    Database old(GetParam());
    EXPECT_EQ(old.migrate_up_to(5), 0);
    HostChain chain("web-01");
    std::vector<AuditEvent> events = next_n(chain, 4);
    const std::int64_t ids[] = {7, 8, 20, 21};
    const std::int64_t received[] = {day_of("2026-09", 5), day_of("2026-09", 6), day_of("2026-10", 1), k_now};
    for (std::size_t i = 0; i < events.size(); ++i) {
        std::string line = events[i].line;
        std::string quoted;
        for (const char c : line) quoted += c == '\'' ? std::string("''") : std::string(1, c);
        old.exec("INSERT INTO audit_events (id, host, event_id, seq, hash, prev_hash, time, type, request_id, line, "
                 "received_at, user_name) " +
                 std::string(postgres() ? "OVERRIDING SYSTEM VALUE " : "") + "VALUES (" + std::to_string(ids[i]) +
                 ", 'web-01', '" + events[i].event_id + "', " + std::to_string(events[i].seq) + ", '" + events[i].hash +
                 "', '" + events[i].prev_hash + "', '" + events[i].time + "', '" + events[i].type + "', '', '" +
                 quoted + "', " + std::to_string(received[i]) + ", 'alice')");
    }
    old.exec("INSERT INTO audit_chains (host, last_seq, last_hash, last_event_id, events, last_seen) VALUES "
             "('web-01', 4, '" +
             events[3].hash + "', '" + events[3].event_id + "', 4, " + std::to_string(k_now) + ")");
    EXPECT_EQ(old.migrate(), 5);
    auto upgraded = old.open();
    const auto all = upgraded->audit_events_received(0, k_now + 1, 0, 100);
    ASSERT_EQ(all.size(), 4u);
    for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(all[i].row, ids[i]);
        EXPECT_EQ(all[i].event.line, events[i].line);
        EXPECT_EQ(all[i].received_at, received[i]);
        EXPECT_EQ(all[i].event.user, "alice");
    }
    if (GetParam() == Backend::postgres) {
        for (const char* partition : {"audit_events_y2026m09", "audit_events_y2026m10", "audit_events_y2026m11"})
            EXPECT_EQ(old.pg_value(std::string("SELECT count(*) > 0 FROM ") + partition), "t") << partition;
        EXPECT_EQ(old.pg_value("SELECT to_regclass('audit_events_v5') IS NULL"), "t");
    }
    // The chain goes on, with a new id after the old ones; a duplicate is still a duplicate.
    const AuditEvent fifth = chain.next();
    const IngestResult r = upgraded->ingest("web-01", {events[3], fifth}, k_now + 5);
    ASSERT_TRUE(r.stored);
    EXPECT_EQ(r.duplicates, 1u);
    EXPECT_EQ(r.added, 1u);
    EXPECT_FALSE(r.chain.broken) << r.chain.problem;
    const auto newest = upgraded->find_audit_event("web-01", fifth.event_id);
    ASSERT_TRUE(newest);
    EXPECT_GT(newest->row, 21);
}

// The export writes each host's lines of the month byte for byte in arrival order, and a
// manifest naming each file's count, ends and SHA-256; the store records it.
TEST_P(ArchiveTest, the_export_writes_every_line_byte_for_byte_with_its_manifest) {
    HostChain web("web-01");
    HostChain db("db-01");
    const auto w = next_n(web, 3);
    ingest("web-01", {w[0], w[1]}, day_of("2026-10", 2));
    // A chain that starts over within the month continues in the same file.
    db.reset();
    const auto d1 = next_n(db, 2);
    ingest("db-01", d1, day_of("2026-10", 3));
    db.reset();
    const auto d2 = next_n(db, 1);
    ingest("db-01", d2, day_of("2026-10", 4));
    ingest("web-01", {w[2]}, day_of("2026-11", 1)); // November: not in October's archive

    const report::ExportResult r =
        report::export_month(*store, *parse_month("2026-10"), dir("2026-10"), k_now, "auditor1");
    EXPECT_FALSE(r.recorded_before);
    EXPECT_EQ(read_file(m_dir / "2026-10" / "web-01.jsonl"), joined({w[0], w[1]}));
    EXPECT_EQ(read_file(m_dir / "2026-10" / "db-01.jsonl"), joined({d1[0], d1[1], d2[0]}));
    const std::string manifest_text = read_file(m_dir / "2026-10" / "MANIFEST.json");
    EXPECT_EQ(jitgate::audit::sha256_hex(manifest_text), r.manifest_sha256);
    EXPECT_EQ(read_file(m_dir / "2026-10" / "MANIFEST.sha256"), r.manifest_sha256 + "  MANIFEST.json\n");
    const Json m = Json::parse(manifest_text);
    EXPECT_EQ(m.at("format"), "jitgate-audit-archive-1");
    EXPECT_EQ(m.at("month"), "2026-10");
    EXPECT_EQ(m.at("received_from"), parse_month("2026-10")->from);
    EXPECT_EQ(m.at("received_to"), parse_month("2026-10")->to);
    EXPECT_EQ(m.at("events"), 5);
    ASSERT_EQ(m.at("hosts").size(), 2u);
    const Json& dbm = m.at("hosts")[0]; // by host name
    EXPECT_EQ(dbm.at("host"), "db-01");
    EXPECT_EQ(dbm.at("file"), "db-01.jsonl");
    EXPECT_EQ(dbm.at("events"), 3);
    EXPECT_EQ(dbm.at("first_seq"), 1);
    EXPECT_EQ(dbm.at("first_prev_hash"), jitgate::audit::k_genesis_hash);
    EXPECT_EQ(dbm.at("last_seq"), 1);
    EXPECT_EQ(dbm.at("last_hash"), d2[0].hash);
    EXPECT_EQ(dbm.at("sha256"), jitgate::audit::sha256_hex(joined({d1[0], d1[1], d2[0]})));
    const Json& webm = m.at("hosts")[1];
    EXPECT_EQ(webm.at("host"), "web-01");
    EXPECT_EQ(webm.at("last_seq"), 2);
    EXPECT_EQ(webm.at("last_hash"), w[1].hash);

    const auto record = store->audit_archive("2026-10");
    ASSERT_TRUE(record);
    EXPECT_EQ(record->manifest_sha256, r.manifest_sha256);
    EXPECT_EQ(record->events, 5);
    EXPECT_EQ(record->hosts, 2);
    EXPECT_EQ(record->exported_at, k_now);
    EXPECT_EQ(record->exported_by, "auditor1");
    EXPECT_EQ(record->pruned_at, 0);
    int exported_events = 0;
    for (const Event& e : store->events("", ""))
        if (e.type == "audit.exported") {
            ++exported_events;
            EXPECT_EQ(Json::parse(e.detail).at("manifest_sha256"), r.manifest_sha256);
            EXPECT_EQ(e.actor, "admin:auditor1");
        }
    EXPECT_EQ(exported_events, 1);

    // The archive verifies, with the restart as a note.
    const auto checks = report::verify_archives({dir("2026-10")});
    ASSERT_EQ(checks.size(), 1u);
    EXPECT_TRUE(checks[0].ok()) << testing::PrintToString(checks[0].problems);
    EXPECT_EQ(checks[0].events, 5);
    EXPECT_EQ(checks[0].manifest_sha256, r.manifest_sha256);
    ASSERT_EQ(checks[0].notes.size(), 1u);
    EXPECT_NE(checks[0].notes[0].find("starts over at seq 1"), std::string::npos);

    // Again, to another directory: the same manifest, nothing recorded twice.
    const report::ExportResult again =
        report::export_month(*store, *parse_month("2026-10"), dir("again"), k_now + 10, "auditor2");
    EXPECT_TRUE(again.recorded_before);
    EXPECT_EQ(again.manifest_sha256, r.manifest_sha256);
    EXPECT_EQ(store->audit_archive("2026-10")->exported_by, "auditor1");
}

TEST_P(ArchiveTest, the_export_refuses_a_month_not_over_an_existing_directory_and_changed_evidence) {
    HostChain web("web-01");
    ingest("web-01", next_n(web, 2), day_of("2026-10", 2));
    // November is not over on the 29th.
    try {
        report::export_month(*store, *parse_month("2026-11"), dir("nov"), k_now, "a");
        ADD_FAILURE() << "a month exported before its end";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("not over yet (it ends 2026-12-01T00:00:00Z)"), std::string::npos)
            << e.what();
    }
    EXPECT_FALSE(fs::exists(dir("nov")));
    // An existing directory, even empty, is never written into.
    fs::create_directories(dir("exists"));
    EXPECT_THROW(report::export_month(*store, *parse_month("2026-10"), dir("exists"), k_now, "a"), Error);
    EXPECT_TRUE(fs::is_empty(dir("exists")));
    EXPECT_FALSE(store->audit_archive("2026-10"));
    report::export_month(*store, *parse_month("2026-10"), dir("oct") + "/", k_now, "a"); // "DIR/" is DIR
    EXPECT_TRUE(fs::exists(m_dir / "oct" / "MANIFEST.json"));
    // The stored events change (a row edited in the database): a new export is refused and
    // leaves nothing behind, not even its temporary directory.
    m_database->exec("UPDATE audit_events SET line = line || ' ' WHERE seq = 2");
    try {
        report::export_month(*store, *parse_month("2026-10"), dir("oct2"), k_now, "a");
        ADD_FAILURE() << "changed evidence exported";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("changed since"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir("oct2")));
    for (const auto& entry : fs::directory_iterator(m_dir))
        EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << entry.path();
}

// verify-archive finds an edited line, a dropped line, a wrong SHA-256 in the manifest and a
// broken link from one month to the next.
TEST_P(ArchiveTest, verify_archive_catches_edits_drops_wrong_hashes_and_broken_month_links) {
    const Fleet f = old_fleet();
    for (const char* month : {"2019-09", "2019-10", "2019-11"})
        report::export_month(*store, *parse_month(month), dir(month), k_now, "a");
    auto all = report::verify_archives({dir("2019-09"), dir("2019-10"), dir("2019-11")});
    ASSERT_EQ(all.size(), 3u);
    for (const auto& c : all) EXPECT_TRUE(c.ok()) << c.dir << ": " << testing::PrintToString(c.problems);

    const auto copy = [&](const std::string& from, const std::string& to) {
        fs::copy(dir(from), dir(to), fs::copy_options::recursive);
        return dir(to);
    };
    const auto problems_of = [](const std::vector<std::string>& dirs) {
        std::string out;
        for (const auto& c : report::verify_archives(dirs))
            for (const auto& p : c.problems) out += p + "\n";
        return out;
    };
    // An edited line: its hash no longer matches, and the file's SHA-256 neither.
    {
        const std::string d = copy("2019-10", "edited");
        std::string text = read_file(fs::path(d) / "web-01.jsonl");
        const auto at = text.find("\"alice\"");
        ASSERT_NE(at, std::string::npos);
        text.replace(at, 7, "\"mallo\"");
        write_file(fs::path(d) / "web-01.jsonl", text);
        const std::string p = problems_of({d});
        EXPECT_NE(p.find("web-01.jsonl:1: "), std::string::npos) << p;
        EXPECT_NE(p.find("the file changed"), std::string::npos) << p;
    }
    // A dropped line: the seq gap, the count and the SHA-256.
    {
        const std::string d = copy("2019-10", "dropped");
        write_file(fs::path(d) / "web-01.jsonl",
                   joined({f.events.at("web-01").at("2019-10")[0], f.events.at("web-01").at("2019-10")[2]}));
        const std::string p = problems_of({d});
        EXPECT_NE(p.find("web-01.jsonl:2: seq 6 does not follow 4"), std::string::npos) << p;
        EXPECT_NE(p.find("2 lines, the manifest says 3"), std::string::npos) << p;
    }
    // A wrong SHA-256 in the manifest (MANIFEST.sha256 made to match it): the file is flagged.
    {
        const std::string d = copy("2019-10", "wrongsha");
        Json m = Json::parse(read_file(fs::path(d) / "MANIFEST.json"));
        m["hosts"][0]["sha256"] = std::string(64, 'a');
        const std::string text = m.dump(2) + "\n";
        write_file(fs::path(d) / "MANIFEST.json", text);
        write_file(fs::path(d) / "MANIFEST.sha256", jitgate::audit::sha256_hex(text) + "  MANIFEST.json\n");
        const std::string p = problems_of({d});
        EXPECT_NE(p.find("db-01.jsonl: its SHA-256 is"), std::string::npos) << p;
        // And a manifest edited without its MANIFEST.sha256.
        write_file(fs::path(d) / "MANIFEST.sha256", std::string(64, 'b') + "  MANIFEST.json\n");
        EXPECT_NE(problems_of({d}).find("MANIFEST.sha256 does not hold"), std::string::npos);
    }
    // A named file replaced by a link, and one missing.
    {
        const std::string d = copy("2019-10", "linked");
        fs::remove(fs::path(d) / "web-01.jsonl");
        fs::create_symlink(fs::path(dir("2019-10")) / "web-01.jsonl", fs::path(d) / "web-01.jsonl");
        fs::remove(fs::path(d) / "db-01.jsonl");
        const std::string p = problems_of({d});
        EXPECT_NE(p.find("web-01.jsonl: missing or not a regular file"), std::string::npos) << p;
        EXPECT_NE(p.find("db-01.jsonl: missing or not a regular file"), std::string::npos) << p;
    }
    // A file the manifest does not name.
    {
        const std::string d = copy("2019-10", "extra");
        write_file(fs::path(d) / "mallory.jsonl", "");
        EXPECT_NE(problems_of({d}).find("a file the manifest does not name: mallory.jsonl"), std::string::npos);
    }
    // A broken month-to-month link: October's last web-01 event removed from its archive (and
    // the archive made consistent again) no longer links to November's first.
    {
        const std::string d = copy("2019-10", "cut");
        const auto& oct = f.events.at("web-01").at("2019-10");
        const std::string text = joined({oct[0], oct[1]});
        write_file(fs::path(d) / "web-01.jsonl", text);
        Json m = Json::parse(read_file(fs::path(d) / "MANIFEST.json"));
        m["hosts"][1]["events"] = 2;
        m["hosts"][1]["last_seq"] = oct[1].seq;
        m["hosts"][1]["last_hash"] = oct[1].hash;
        m["hosts"][1]["sha256"] = jitgate::audit::sha256_hex(text);
        m["events"] = 4;
        const std::string mtext = m.dump(2) + "\n";
        write_file(fs::path(d) / "MANIFEST.json", mtext);
        write_file(fs::path(d) / "MANIFEST.sha256", jitgate::audit::sha256_hex(mtext) + "  MANIFEST.json\n");
        EXPECT_EQ(problems_of({d}), ""); // on its own it is a consistent archive
        const std::string p = problems_of({dir("2019-11"), d});
        EXPECT_NE(p.find("web-01: the month's first event (seq 7) does not continue the last of 2019-10 (seq 5)"),
                  std::string::npos)
            << p;
    }
}

// audit prune: refused without an archive, with an archive the store no longer matches, within
// the retention; done, the report still verifies each chain from its anchor, and a row deleted
// by hand afterwards is flagged.
TEST_P(ArchiveTest, prune_requires_an_unchanged_archive_and_the_retention_and_keeps_the_chain_verifiable) {
    const Fleet f = old_fleet();
    const auto nov = *parse_month("2019-11");
    const auto dec = *parse_month("2019-12");
    // No archive of 2019-09 yet.
    try {
        report::prune_before(*store, nov, 84, k_now, {}, "admin1", false, nullptr);
        ADD_FAILURE() << "pruned without an archive";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("2019-09 holds 5 events and was never exported"), std::string::npos)
            << e.what();
    }
    report::export_month(*store, *parse_month("2019-09"), dir("2019-09"), k_now, "a");
    report::export_month(*store, *parse_month("2019-10"), dir("2019-10"), k_now, "a");
    report::export_month(*store, nov, dir("2019-11"), k_now, "a");
    const std::vector<std::string> archives{dir("2019-09"), dir("2019-10"), dir("2019-11")};
    // November 2019 is within seven years on 2026-11-29 (its seventh year ends 2026-12-01).
    EXPECT_THROW(report::prune_before(*store, dec, 84, k_now, archives, "admin1", false, nullptr), Error);
    // Less than a year is refused outright.
    EXPECT_THROW(report::prune_before(*store, nov, 11, k_now, archives, "admin1", false, nullptr), Error);
    // An archive the store no longer matches (a row changed after the export).
    m_database->exec("UPDATE audit_events SET line = line || ' ' WHERE host = 'db-01' AND seq = 3");
    try {
        report::prune_before(*store, nov, 84, k_now, archives, "admin1", false, nullptr);
        ADD_FAILURE() << "pruned a month that changed after its export";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("2019-10: the store's events no longer match"), std::string::npos)
            << e.what();
    }
    // Nothing went, not even September (checked before anything is deleted).
    EXPECT_EQ(store->audit_events_received(0, k_now, 0, 100).size(), 15u);
    m_database->exec("UPDATE audit_events SET line = substr(line, 1, length(line) - 1) WHERE host = 'db-01' AND "
                     "seq = 3");

    // A dry run lists and deletes nothing.
    const auto planned = report::prune_before(*store, nov, 84, k_now, archives, "admin1", true, nullptr);
    ASSERT_EQ(planned.size(), 2u);
    EXPECT_EQ(planned[0].month.name, "2019-09");
    EXPECT_EQ(planned[1].month.name, "2019-10");
    EXPECT_EQ(store->audit_events_received(0, k_now, 0, 100).size(), 15u);

    static std::vector<Event> logged;
    logged.clear();
    const auto pruned = report::prune_before(*store, nov, 84, k_now, archives, "admin1", false,
                                             [](const Event& e) { logged.push_back(e); });
    ASSERT_EQ(pruned.size(), 2u);
    EXPECT_EQ(pruned[0].events, 5);
    EXPECT_EQ(pruned[1].events, 5);
    ASSERT_EQ(logged.size(), 2u);
    EXPECT_EQ(logged[1].type, "audit.pruned");
    EXPECT_EQ(Json::parse(logged[1].detail).at("month"), "2019-10");
    EXPECT_EQ(Json::parse(logged[1].detail).at("archive"), dir("2019-10")); // the copy that was verified
    int recorded = 0;
    for (const Event& e : store->events("", ""))
        if (e.type == "audit.pruned") ++recorded;
    EXPECT_EQ(recorded, 2);
    const auto left = store->audit_events_received(0, k_now, 0, 100);
    ASSERT_EQ(left.size(), 5u);
    for (const auto& s : left) EXPECT_GE(s.received_at, nov.from);
    EXPECT_NE(store->audit_archive("2019-10")->pruned_at, 0);
    if (postgres()) {
        EXPECT_EQ(m_database->pg_value("SELECT to_regclass('audit_events_y2019m10') IS NULL"), "t");
    }
    const auto web = store->audit_chain("web-01");
    EXPECT_EQ(web->pruned_through_seq, 6);
    EXPECT_EQ(web->pruned_through_hash, f.events.at("web-01").at("2019-10")[2].hash);
    EXPECT_EQ(store->audit_chain("db-01")->pruned_through_seq, 4);
    // Nothing left to prune; the same prune again is a no-op.
    EXPECT_TRUE(report::prune_before(*store, nov, 84, k_now, archives, "admin1", false, nullptr).empty());

    // The report over the remaining events verifies each chain from its anchor.
    report::Options o;
    o.from = parse_month("2026-11")->from;
    o.to = parse_month("2026-12")->from;
    o.now = k_now;
    o.silent_after = 100 * 365 * 86400LL;
    {
        const report::Report r = report::build(*store, o);
        ASSERT_EQ(r.hosts.size(), 2u);
        for (const auto& h : r.hosts) {
            EXPECT_TRUE(h.verified) << h.host << ": " << testing::PrintToString(h.problems);
            EXPECT_GT(h.pruned_through_seq, 0);
        }
        const Json j = Json::parse(report::render(r, report::Format::json));
        EXPECT_EQ(j.at("hosts")[1].at("pruned_through_seq"), 6);
        EXPECT_NE(report::render(r, report::Format::html).find("starts after the archived part"), std::string::npos);
    }
    // A row deleted outside the prune (web-01's first stored event) fails the report's check.
    m_database->exec("DELETE FROM audit_events WHERE host = 'web-01' AND seq = 7");
    {
        const report::Report r = report::build(*store, o);
        const auto& h = r.hosts[1];
        ASSERT_EQ(h.host, "web-01");
        EXPECT_FALSE(h.verified);
        EXPECT_NE(testing::PrintToString(h.problems)
                      .find("seq 7 is not stored, but the chain was pruned only through "
                            "seq 6"),
                  std::string::npos)
            << testing::PrintToString(h.problems);
    }
    // An edited first event after the anchor: its prev_hash no longer continues the anchor.
    m_database->exec("UPDATE audit_chains SET pruned_through_hash = '" + std::string(64, 'c') +
                     "' WHERE host = 'db-01'");
    {
        const report::Report r = report::build(*store, o);
        const auto& h = r.hosts[0];
        ASSERT_EQ(h.host, "db-01");
        EXPECT_FALSE(h.verified);
        EXPECT_NE(testing::PrintToString(h.problems).find("the last event pruned"), std::string::npos)
            << testing::PrintToString(h.problems);
    }
}

// A month whose archive holds events but whose rows are gone without a prune is refused, not
// skipped as an empty month.
TEST_P(ArchiveTest, prune_refuses_a_month_emptied_outside_the_prune) {
    old_fleet();
    report::export_month(*store, *parse_month("2019-09"), dir("2019-09"), k_now, "a");
    m_database->exec("DELETE FROM audit_events WHERE received_at < " + std::to_string(parse_month("2019-10")->from));
    try {
        report::prune_before(*store, *parse_month("2019-10"), 84, k_now, {dir("2019-09")}, "admin1", false, nullptr);
        ADD_FAILURE() << "a month emptied by hand went unnoticed";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("2019-09: its archive holds 5 events but the store none"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_EQ(store->audit_archive("2019-09")->pruned_at, 0);
}

// The prune reads and verifies each month's archive before deleting anything: a deleted archive
// directory, one that fails verify-archive, one consistent in itself but not the recorded one
// (a line dropped at the end, its manifest rewritten), a month without its archive and an
// unrelated month are refused, and nothing is deleted.
TEST_P(ArchiveTest, prune_refuses_a_missing_failing_or_substituted_archive_and_deletes_nothing) {
    const Fleet f = old_fleet();
    const auto nov = *parse_month("2019-11");
    for (const char* month : {"2019-09", "2019-10"})
        report::export_month(*store, *parse_month(month), dir(month), k_now, "a");
    const auto refused = [&](const std::vector<std::string>& archives, const std::string& why) {
        try {
            report::prune_before(*store, nov, 84, k_now, archives, "admin1", false, nullptr);
            ADD_FAILURE() << "pruned; expected: " << why;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("nothing was deleted"), std::string::npos) << e.what();
        }
        EXPECT_EQ(store->audit_events_received(0, k_now, 0, 100).size(), 15u);
        EXPECT_EQ(store->audit_archive("2019-09")->pruned_at, 0);
        EXPECT_EQ(store->audit_chain("web-01")->pruned_through_seq, 0);
    };
    refused({}, "no archive given");
    refused({dir("2019-09")}, "2019-10: its archive directory is not given");
    // The archive directory deleted (or never copied where it is said to be).
    refused({dir("2019-09"), dir("gone")}, "fails verify-archive: MANIFEST.json cannot be read");
    // An archive that fails verify-archive: an edited line.
    fs::copy(dir("2019-10"), dir("edited"), fs::copy_options::recursive);
    {
        std::string text = read_file(fs::path(dir("edited")) / "db-01.jsonl");
        text[text.find("\"seq\"") + 6] = '9';
        write_file(fs::path(dir("edited")) / "db-01.jsonl", text);
    }
    refused({dir("2019-09"), dir("edited")}, "fails verify-archive");
    // Consistent in itself, not the recorded archive: web-01's last line of October dropped and
    // the manifest rewritten to match (verify-archive alone cannot see it).
    fs::copy(dir("2019-10"), dir("short"), fs::copy_options::recursive);
    {
        const auto& w = f.events.at("web-01").at("2019-10");
        write_file(fs::path(dir("short")) / "web-01.jsonl", joined({w[0], w[1]}));
        Json m = Json::parse(read_file(fs::path(dir("short")) / "MANIFEST.json"));
        m["events"] = 4;
        Json& h = m["hosts"][1];
        ASSERT_EQ(h.at("host"), "web-01");
        h["events"] = 2;
        h["last_seq"] = w[1].seq;
        h["last_hash"] = w[1].hash;
        h["sha256"] = jitgate::audit::sha256_hex(joined({w[0], w[1]}));
        const std::string text = m.dump(2) + "\n";
        write_file(fs::path(dir("short")) / "MANIFEST.json", text);
        write_file(fs::path(dir("short")) / "MANIFEST.sha256", jitgate::audit::sha256_hex(text) + "  MANIFEST.json\n");
        const auto c = report::verify_archives({dir("short")});
        ASSERT_TRUE(c[0].ok()) << testing::PrintToString(c[0].problems);
    }
    refused({dir("2019-09"), dir("short")}, "not the archive exported from this store");
    // A month the prune does not touch.
    report::export_month(*store, nov, dir("2019-11"), k_now, "a");
    fs::copy(dir("2019-09"), dir("again"), fs::copy_options::recursive);
    refused({dir("2019-09"), dir("2019-10"), dir("again")}, "the month 2019-09 is given twice");
    // The right ones: pruned.
    EXPECT_EQ(
        report::prune_before(*store, nov, 84, k_now, {dir("2019-09"), dir("2019-10")}, "admin1", false, nullptr).size(),
        2u);
    EXPECT_EQ(store->audit_events_received(0, k_now, 0, 100).size(), 5u);
}

// A later prune checks the oldest month's archive against each host's stored anchor (the last
// event of the prune before) when the month before is not given.
TEST_P(ArchiveTest, prune_checks_the_oldest_month_against_the_stored_anchor) {
    old_fleet();
    for (const char* month : {"2019-09", "2019-10"})
        report::export_month(*store, *parse_month(month), dir(month), k_now, "a");
    ASSERT_EQ(
        report::prune_before(*store, *parse_month("2019-10"), 84, k_now, {dir("2019-09")}, "a", false, nullptr).size(),
        1u);
    const std::string anchor = store->audit_chain("db-01")->pruned_through_hash;
    m_database->exec("UPDATE audit_chains SET pruned_through_hash = '" + std::string(64, 'c') +
                     "' WHERE host = 'db-01'");
    try {
        report::prune_before(*store, *parse_month("2019-11"), 84, k_now, {dir("2019-10")}, "a", false, nullptr);
        ADD_FAILURE() << "pruned a month that does not continue the anchor";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("2019-10: db-01's first event (seq 3) does not continue the last event "
                                             "pruned before (seq 2)"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_EQ(store->audit_events_received(0, k_now, 0, 100).size(), 10u);
    m_database->exec("UPDATE audit_chains SET pruned_through_hash = '" + anchor + "' WHERE host = 'db-01'");
    // The month before given as well: its links are checked, and it must be the recorded one.
    EXPECT_EQ(report::prune_before(*store, *parse_month("2019-11"), 84, k_now, {dir("2019-09"), dir("2019-10")}, "a",
                                   false, nullptr)
                  .size(),
              1u);
    EXPECT_EQ(store->audit_events_received(0, k_now, 0, 100).size(), 5u);
}

// verify-archive --expect-sha256: the manifest's SHA-256 must be the trusted one.
TEST_P(ArchiveTest, verify_archive_compares_the_manifest_with_the_expected_sha256) {
    old_fleet();
    const report::ExportResult r = report::export_month(*store, *parse_month("2019-09"), dir("2019-09"), k_now, "a");
    const auto open = [&]() { return jitgate::server::AuditTarget{m_database->open(), 84}; };
    std::FILE* out = std::tmpfile();
    const auto run = [&](std::vector<std::string> args) {
        std::FILE* o = std::tmpfile();
        std::FILE* err = std::tmpfile();
        const int status = jitgate::server::audit_command(args, open, k_now, "admin1", nullptr, o, err);
        std::rewind(o);
        std::string printed(1 << 16, '\0');
        printed.resize(std::fread(printed.data(), 1, printed.size(), o));
        std::fclose(o);
        std::fclose(err);
        return std::make_pair(status, printed);
    };
    EXPECT_EQ(run({"verify-archive", "--expect-sha256", r.manifest_sha256, dir("2019-09")}).first, 0);
    std::string upper = r.manifest_sha256;
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
    EXPECT_EQ(run({"verify-archive", "--expect-sha256", upper, dir("2019-09")}).first, 0);
    const auto wrong = run({"verify-archive", "--expect-sha256", std::string(64, 'a'), dir("2019-09")});
    EXPECT_EQ(wrong.first, 1);
    EXPECT_NE(wrong.second.find("expected " + std::string(64, 'a')), std::string::npos) << wrong.second;
    EXPECT_NE(wrong.second.find(": FAILED: month 2019-09"), std::string::npos) << wrong.second;
    const auto none = run({"verify-archive", dir("2019-09")});
    EXPECT_EQ(none.first, 0);
    EXPECT_NE(none.second.find("not compared with a trusted value"), std::string::npos) << none.second;
    EXPECT_EQ(run({"verify-archive", "--expect-sha256", "abc", dir("2019-09")}).first, 2);
    EXPECT_EQ(run({"verify-archive", "--expect-sha256", r.manifest_sha256}).first, 2);
    std::fclose(out);
}

// A batch committed while a month is pruned is never dropped with it: the prune closes the month
// to writers (PostgreSQL: the partition locked ACCESS EXCLUSIVE) before it counts and reads it
// again, so a write from another connection at that moment fails (the host keeps the batch and
// retries); and a manifest that changed inside the transaction stops the prune.
TEST_P(ArchiveTest, a_write_while_a_month_is_pruned_is_refused_never_lost) {
    old_fleet();
    report::export_month(*store, *parse_month("2019-09"), dir("2019-09"), k_now, "a");
    const AuditArchive a = *store->audit_archive("2019-09");
    const std::string insert =
        "INSERT INTO audit_events (host, event_id, seq, hash, prev_hash, time, type, request_id, line, received_at, "
        "user_name) VALUES ('late-01', 'late-event', 1, 'h', 'p', 't', 'x', '', 'l', " +
        std::to_string(day_of("2019-09", 30)) + ", '')";
    // From another connection, with no waiting: true when the row went in.
    const auto write_elsewhere = [&]() {
        if (!postgres()) {
            sqlite3* db = nullptr;
            EXPECT_EQ(sqlite3_open(m_database->path().c_str(), &db), SQLITE_OK);
            const bool ok = sqlite3_exec(db, insert.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK;
            sqlite3_close(db);
            return ok;
        }
        PgAdmin other(m_database->path());
        try {
            other.run("SET lock_timeout = '1s'; " + insert);
            return true;
        } catch (const std::runtime_error&) {
            return false;
        }
    };
    const Event event{k_now, "audit.pruned", "", "", "admin:a", "", "", "{}"};
    // A manifest that is not the archive's any more: refused, nothing deleted.
    try {
        store->prune_audit_month(a, k_now, event, [](const Store::AuditPageReader&) { return std::string(64, 'f'); });
        ADD_FAILURE() << "pruned though the manifest changed inside the transaction";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("changed while the prune checked them"), std::string::npos) << e.what();
    }
    EXPECT_EQ(store->audit_events_received(0, k_now, 0, 100).size(), 15u);
    EXPECT_EQ(store->audit_archive("2019-09")->pruned_at, 0);

    bool written = true;
    std::size_t read_inside = 0;
    store->prune_audit_month(a, k_now, event, [&](const Store::AuditPageReader& read) {
        written = write_elsewhere();
        read_inside = read(0, 100).size();
        return a.manifest_sha256;
    });
    EXPECT_EQ(read_inside, 5u); // the reader reads the month inside the transaction
    EXPECT_FALSE(written) << "a write into the month being pruned went in";
    // Whatever happened, nothing that was written is lost: the month is empty only if nothing
    // was added to it.
    const auto left = store->audit_events_received(parse_month("2019-09")->from, parse_month("2019-09")->to, 0, 100);
    EXPECT_EQ(left.size(), written ? 1u : 0u);
}

// PostgreSQL: a prune that cannot lock its month within the lock_timeout (a long report holding
// it) fails cleanly, deleting nothing, instead of waiting and stalling the fleet's ingest.
class ArchivePgTest : public ArchiveTest {};
TEST_P(ArchivePgTest, a_prune_that_cannot_lock_its_month_fails_after_the_lock_timeout) {
    old_fleet();
    report::export_month(*store, *parse_month("2019-09"), dir("2019-09"), k_now, "a");
    PgAdmin reader(m_database->path());
    reader.run("BEGIN; SELECT count(*) FROM audit_events_y2019m09");
    const auto started = std::chrono::steady_clock::now();
    try {
        report::prune_before(*store, *parse_month("2019-10"), 84, k_now, {dir("2019-09")}, "a", false, nullptr);
        ADD_FAILURE() << "pruned a month another transaction was reading";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("cannot lock the month within 10 s"), std::string::npos) << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
    reader.run("COMMIT");
    EXPECT_EQ(store->audit_events_received(0, k_now, 0, 100).size(), 15u);
    EXPECT_EQ(store->audit_archive("2019-09")->pruned_at, 0);
    // Once the reader is gone the same prune goes through.
    EXPECT_EQ(
        report::prune_before(*store, *parse_month("2019-10"), 84, k_now, {dir("2019-09")}, "a", false, nullptr).size(),
        1u);
}

// A month once pruned is never stored into again: a server clock set back into it fails the
// batch with a clear error (the host keeps it) and, on PostgreSQL, its partition is not made again.
TEST_P(ArchiveTest, a_pruned_month_is_never_recreated_by_ingest) {
    old_fleet();
    report::export_month(*store, *parse_month("2019-09"), dir("2019-09"), k_now, "a");
    report::prune_before(*store, *parse_month("2019-10"), 84, k_now, {dir("2019-09")}, "a", false, nullptr);
    const std::int64_t late = day_of("2019-09", 30);
    HostChain other("late-01");
    std::unique_ptr<Store> fresh = m_database->open(); // a replica that has not stored this month yet
    try {
        fresh->ingest("late-01", {other.next()}, late);
        ADD_FAILURE() << "an event was stored in a pruned month";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("is in 2019-09, a month already pruned"), std::string::npos) << e.what();
    }
    if (postgres()) {
        EXPECT_THROW(fresh->ensure_audit_partitions(late), Error);
        EXPECT_EQ(m_database->pg_value("SELECT to_regclass('audit_events_y2019m09') IS NULL"), "t");
    }
    EXPECT_TRUE(store->audit_events_received(parse_month("2019-09")->from, parse_month("2019-09")->to, 0, 10).empty());
    EXPECT_FALSE(store->audit_chain("late-01").has_value() && store->audit_chain("late-01")->events > 0);
}

// A host re-shipping events that were pruned: those provably held (the event at the anchor, whose
// hash is pruned_through_hash, and the events of the batch that lead to it without a break)
// count as duplicates and leave the chain as it was; anything not provably held is stored as
// before and reported (never dropped): a seq-1 event is a restart, another a fork.
TEST_P(ArchiveTest, re_shipped_pruned_events_are_duplicates_only_when_provably_held) {
    const Fleet f = old_fleet();
    for (const char* month : {"2019-09", "2019-10"})
        report::export_month(*store, *parse_month(month), dir(month), k_now, "a");
    report::prune_before(*store, *parse_month("2019-11"), 84, k_now, {dir("2019-09"), dir("2019-10")}, "a", false,
                         nullptr);
    const auto& oct = f.events.at("web-01").at("2019-10"); // seq 4, 5, 6; the anchor is seq 6
    const std::int64_t now = k_now;
    const auto stored_count = [&] { return store->audit_events_received(0, k_now + 1, 0, 1000).size(); };
    ASSERT_EQ(stored_count(), 6u);
    // The whole month again (a shipper that lost its place): all duplicates.
    {
        const IngestResult r = store->ingest("web-01", {oct[0], oct[1], oct[2]}, now);
        ASSERT_TRUE(r.stored);
        EXPECT_EQ(r.added, 0u);
        EXPECT_EQ(r.duplicates, 3u);
        EXPECT_TRUE(r.chain_events.empty());
        EXPECT_FALSE(r.chain.broken) << r.chain.problem;
        EXPECT_EQ(r.chain.last_seq, 10);
    }
    // The anchor event alone, and with the stored ones after it.
    {
        const auto nov = f.events.at("web-01").at("2019-11");
        const IngestResult r = store->ingest("web-01", {oct[2], nov[0], nov[1]}, now);
        EXPECT_EQ(r.added, 0u);
        EXPECT_EQ(r.duplicates, 3u);
        EXPECT_FALSE(r.chain.broken);
    }
    EXPECT_EQ(stored_count(), 6u);
    EXPECT_FALSE(store->audit_chain("web-01")->broken);
    // Events that do not reach the anchor cannot be told from other events at those seqs: stored
    // and reported, not dropped.
    {
        const IngestResult r = store->ingest("web-01", {oct[0], oct[1]}, now);
        EXPECT_EQ(r.added, 2u);
        EXPECT_EQ(r.duplicates, 0u);
        EXPECT_TRUE(r.chain.broken);
        ASSERT_FALSE(r.chain_events.empty());
        EXPECT_EQ(r.chain_events[0].type, "audit.chain_fork");
    }
    EXPECT_EQ(stored_count(), 8u);
    // db-01: an event at the anchor's seq with another hash is a fork, stored; a genuine restart
    // at seq 1 is a restart, stored.
    const auto& db_oct = f.events.at("db-01").at("2019-10"); // seq 3, 4; the anchor is seq 4
    ASSERT_EQ(store->audit_chain("db-01")->pruned_through_seq, 4);
    HostChain forger("db-01");
    const AuditEvent other = forger.make(4, db_oct[0].hash, "command.finished", "", "mallory");
    ASSERT_NE(other.hash, db_oct[1].hash);
    {
        const IngestResult r = store->ingest("db-01", {other}, now);
        EXPECT_EQ(r.added, 1u);
        EXPECT_TRUE(r.chain.broken);
    }
    HostChain reinstalled("db-01");
    reinstalled.make(0, std::string(64, '0')); // event ids of their own
    const AuditEvent first = reinstalled.make(1, std::string(64, '0'));
    {
        const IngestResult r = store->ingest("db-01", {first}, now);
        EXPECT_EQ(r.added, 1u);
        EXPECT_EQ(r.duplicates, 0u);
        ASSERT_EQ(r.chain_events.size(), 1u);
        EXPECT_EQ(r.chain_events[0].type, "audit.chain_restarted");
    }
    EXPECT_EQ(stored_count(), 10u);
}

// The retention is also measured by the store's own records: with no event received after a
// month's retention ended, the prune is refused however late the server's clock says it is
// (a clock years fast must not expire evidence).
TEST_P(ArchiveTest, prune_requires_events_received_after_the_retention_end) {
    old_fleet(false); // the newest event was received on 2019-11-20
    report::export_month(*store, *parse_month("2019-09"), dir("2019-09"), k_now, "a");
    const auto oct = *parse_month("2019-10");
    const std::int64_t fast = day_of("2033-01", 1); // the server's clock, years ahead
    try {
        report::prune_before(*store, oct, 84, fast, {dir("2019-09")}, "a", false, nullptr);
        ADD_FAILURE() << "pruned on the word of the server's clock alone";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("2019-09: its retention ends 2026-10-01T00:00:00Z, but the newest event "
                                             "the store received is from 2019-11-20"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_EQ(store->audit_events_received(0, k_now, 0, 100).size(), 15u);
    // An event received after the retention end (here on 2026-10-01 itself): the prune goes.
    HostChain other("other-01");
    ingest("other-01", {other.next()}, parse_month("2026-10")->from);
    EXPECT_EQ(report::prune_before(*store, oct, 84, k_now, {dir("2019-09")}, "a", false, nullptr).size(), 1u);
}

// The command line: bad arguments are refused before the database is opened; export, verify
// and prune print what they did; a refusal is status 1.
TEST_P(ArchiveTest, the_audit_command_checks_its_arguments_and_runs_export_verify_and_prune) {
    old_fleet();
    int opened = 0;
    const auto open = [&]() {
        ++opened;
        return jitgate::server::AuditTarget{m_database->open(), 84};
    };
    std::FILE* out = std::tmpfile();
    std::FILE* err = std::tmpfile();
    const auto run = [&](std::vector<std::string> args) {
        return jitgate::server::audit_command(args, open, k_now, "admin1", nullptr, out, err);
    };
    EXPECT_EQ(run({}), 2);
    EXPECT_EQ(run({"export", "--month", "2019-13", "--output", dir("x")}), 2);
    EXPECT_EQ(run({"export", "--month", "2019-10"}), 2);
    EXPECT_EQ(run({"prune", "--before", "last-year"}), 2);
    EXPECT_EQ(run({"prune"}), 2);
    EXPECT_EQ(run({"shred"}), 2);
    EXPECT_EQ(run({"verify-archive"}), 2);
    EXPECT_EQ(run({"prune", "--before", "2019-11"}), 2); // no --archive
    EXPECT_EQ(run({"prune", "--before", "2019-11", "--archive"}), 2);
    EXPECT_EQ(opened, 0);
    EXPECT_EQ(run({"export", "--month", "2019-09", "--output", dir("2019-09")}), 0);
    EXPECT_EQ(run({"export", "--month", "2019-10", "--output", dir("2019-10")}), 0);
    EXPECT_EQ(run({"export", "--month", "2019-10", "--output", dir("2019-10")}), 1); // exists
    EXPECT_EQ(run({"verify-archive", dir("2019-09"), dir("2019-10")}), 0);
    EXPECT_EQ(opened, 3);
    EXPECT_EQ(run({"prune", "--before", "2019-12", "--archive", dir("2019-09"), "--archive", dir("2019-10")}),
              1); // 2019-11: never exported, within retention
    // The configured retention decides: 200 months keeps 2019 until 2036.
    EXPECT_EQ(jitgate::server::audit_command(
                  {"prune", "--before", "2019-11", "--archive", dir("2019-09"), "--archive", dir("2019-10")},
                  [&]() {
                      return jitgate::server::AuditTarget{m_database->open(), 200};
                  },
                  k_now, "admin1", nullptr, out, err),
              1);
    EXPECT_EQ(run({"prune", "--before", "2019-11", "--archive", dir("2019-09"), "--dry-run"}), 1); // no 2019-10
    EXPECT_EQ(
        run({"prune", "--before", "2019-11", "--archive", dir("2019-09"), "--archive", dir("2019-10"), "--dry-run"}),
        0);
    EXPECT_EQ(store->audit_events_received(0, k_now, 0, 100).size(), 15u);
    EXPECT_EQ(run({"prune", "--before", "2019-11", "--archive", dir("2019-09"), "--archive", dir("2019-10")}), 0);
    EXPECT_EQ(store->audit_events_received(0, k_now, 0, 100).size(), 5u);
    std::rewind(out);
    std::string printed(1 << 16, '\0');
    printed.resize(std::fread(printed.data(), 1, printed.size(), out));
    EXPECT_NE(printed.find(dir("2019-10") + ": OK: month 2019-10, 2 hosts, 5 events"), std::string::npos) << printed;
    EXPECT_NE(printed.find("would prune 2019-09: 5 events of 2 hosts"), std::string::npos) << printed;
    EXPECT_NE(printed.find("pruned 2019-10: 5 events of 2 hosts"), std::string::npos) << printed;
    EXPECT_NE(printed.find("pruned 2019-10: 5 events of 2 hosts (archive " + dir("2019-10") + " verified"),
              std::string::npos)
        << printed;
    std::fclose(out);
    std::fclose(err);
}

INSTANTIATE_TEST_SUITE_P(Backends, ArchiveTest, testing::Values(Backend::sqlite, Backend::postgres), backend_name);
// SQLite has no partition to lock: its prune is one write transaction, as every writer's.
INSTANTIATE_TEST_SUITE_P(Backends, ArchivePgTest, testing::Values(Backend::postgres), backend_name);

} // namespace
