// Tests for server/service/audit_ingest: the checks of a host's audit batch (docs/audit.md §5,
// `jsonl`) before anything is stored, on real event lines (lib/audit_event's canonical form
// and hash, as jitgated writes them).
#include "lib/audit_chain.hpp"
#include "lib/audit_event.hpp"
#include "lib/strict_json.hpp"
#include "server/service/audit_ingest.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace ingest = jitgate::server::audit_ingest;
using jitgate::audit::Json;

// A canonical, correctly hashed event line (without '\n').
std::string line(const std::string& host, std::int64_t seq, const std::string& prev_hash, const std::string& event_id,
                 const std::string& extra_key = "", const std::string& extra = "") {
    Json e{{"event_id", event_id},
           {"host", host},
           {"seq", seq},
           {"prev_hash", prev_hash},
           {"time", "2026-11-24T03:05:56.548Z"},
           {"type", "command.finished"},
           {"user", "alice"}};
    if (!extra_key.empty()) e[extra_key] = extra;
    e["hash"] = jitgate::audit::sha256_hex(jitgate::audit::canonical_bytes(e));
    return e.dump();
}

std::string hash_of(const std::string& l) {
    return Json::parse(l)["hash"].get<std::string>();
}

const auto only_fin = [](const std::string& h) { return h == "fin-db-01"; };

TEST(ServerAuditIngest, AValidBatchGivesEveryEventWithItsLineAsSent) {
    const std::string a = line("fin-db-01", 1, jitgate::audit::k_genesis_hash, "ev-1", "request_id", "R-Z4H8TFAMCE");
    const std::string b = line("fin-db-01", 2, hash_of(a), "ev-2", "future_field", "kept");
    const auto check = ingest::check_batch(a + "\n" + b + "\n", only_fin);
    ASSERT_FALSE(check.refused) << check.refused->message;
    EXPECT_EQ(check.host, "fin-db-01");
    ASSERT_EQ(check.events.size(), 2u);
    EXPECT_EQ(check.events[0].line, a);
    EXPECT_EQ(check.events[0].request_id, "R-Z4H8TFAMCE");
    EXPECT_EQ(check.events[0].seq, 1);
    EXPECT_EQ(check.events[0].type, "command.finished");
    EXPECT_EQ(check.events[1].line, b);
    EXPECT_EQ(check.events[1].prev_hash, hash_of(a));
    EXPECT_EQ(check.events[1].event_id, "ev-2");
}

TEST(ServerAuditIngest, AnEditedLineRefusesTheBatchWith422NamingIt) {
    const std::string a = line("fin-db-01", 1, jitgate::audit::k_genesis_hash, "ev-1");
    std::string b = line("fin-db-01", 2, hash_of(a), "ev-2");
    b.replace(b.find("alice"), 5, "bobby"); // same length, hash no longer matches
    const auto check = ingest::check_batch(a + "\n" + b + "\n", only_fin);
    ASSERT_TRUE(check.refused);
    EXPECT_EQ(check.refused->status, 422);
    EXPECT_TRUE(check.events.empty());
    EXPECT_NE(check.refused->message.find("line 2 (seq 2, event_id ev-2)"), std::string::npos)
        << check.refused->message;
    EXPECT_NE(check.refused->message.find("hash does not match"), std::string::npos) << check.refused->message;
}

TEST(ServerAuditIngest, ANonCanonicalOrUnstampedLineIs422) {
    const std::string a = line("fin-db-01", 1, jitgate::audit::k_genesis_hash, "ev-1");
    const std::string spaced = "{ " + a.substr(1);
    EXPECT_EQ(ingest::check_batch(spaced + "\n", only_fin).refused->status, 422);
    EXPECT_EQ(ingest::check_batch(R"({"host":"fin-db-01","type":"x"})"
                                  "\n",
                                  only_fin)
                  .refused->status,
              422);
    const std::string zero = line("fin-db-01", 0, jitgate::audit::k_genesis_hash, "ev-0");
    EXPECT_EQ(ingest::check_batch(zero + "\n", only_fin).refused->status, 422);
}

TEST(ServerAuditIngest, ADuplicateMemberOrNotJsonIs400) {
    const std::string a = line("fin-db-01", 1, jitgate::audit::k_genesis_hash, "ev-1");
    const std::string dup = a.substr(0, a.size() - 1) + R"(,"user":"mallory"})";
    const auto check = ingest::check_batch(dup + "\n", only_fin);
    ASSERT_TRUE(check.refused);
    EXPECT_EQ(check.refused->status, 400);
    EXPECT_NE(check.refused->message.find("duplicate"), std::string::npos) << check.refused->message;
    EXPECT_EQ(ingest::check_batch("not json\n", only_fin).refused->status, 400);
    EXPECT_EQ(ingest::check_batch("[1]\n", only_fin).refused->status, 400);
    EXPECT_EQ(ingest::check_batch(a + "\n\n", only_fin).refused->status, 400); // an empty line
}

// Regression: an event_id holding a \u0000 escape passed the checks, then the store refused the
// text (NUL) and the host got 503 for ever, resending the same batch. Any text the store would
// refuse is a 422 naming the line, at check time.
TEST(ServerAuditIngest, ANulInAnyStoredTextIs422NamingTheLineNot503Later) {
    const std::string a = line("fin-db-01", 1, jitgate::audit::k_genesis_hash, "ev-1");
    const std::string nul_id = line("fin-db-01", 2, hash_of(a), std::string("ev-\0-2", 6));
    ASSERT_NE(nul_id.find("\\u0000"), std::string::npos) << "the line holds the escape, not a raw NUL";
    const auto check = ingest::check_batch(a + "\n" + nul_id + "\n", only_fin);
    ASSERT_TRUE(check.refused);
    EXPECT_EQ(check.refused->status, 422);
    EXPECT_TRUE(check.events.empty());
    EXPECT_NE(check.refused->message.find("line 2 (seq 2"), std::string::npos) << check.refused->message;
    EXPECT_NE(check.refused->message.find("event_id holds a NUL"), std::string::npos) << check.refused->message;
    for (const std::string key : {"user", "request_id", "future_field_is_not_a_column"}) {
        const std::string l = line("fin-db-01", 1, jitgate::audit::k_genesis_hash, "ev-1", key, std::string("x\0y", 3));
        const auto c = ingest::check_batch(l + "\n", only_fin);
        if (key == "future_field_is_not_a_column") {
            // Stored inside the line only, as its escape: the store takes it.
            EXPECT_FALSE(c.refused) << c.refused->message;
            continue;
        }
        ASSERT_TRUE(c.refused) << key;
        EXPECT_EQ(c.refused->status, 422) << key;
        EXPECT_NE(c.refused->message.find(key + " holds a NUL"), std::string::npos) << c.refused->message;
    }
}

TEST(ServerAuditIngest, AnotherHostsEventRefusesTheWholeBatchWith403) {
    const std::string a = line("fin-db-01", 1, jitgate::audit::k_genesis_hash, "ev-1");
    const std::string other = line("web-02", 1, jitgate::audit::k_genesis_hash, "ev-9");
    const auto check = ingest::check_batch(a + "\n" + other + "\n", only_fin);
    ASSERT_TRUE(check.refused);
    EXPECT_EQ(check.refused->status, 403);
    EXPECT_TRUE(check.events.empty());
    EXPECT_NE(check.refused->message.find("web-02"), std::string::npos) << check.refused->message;
    // A certificate naming two hosts still sends each host its own batch.
    const auto both = [](const std::string& h) { return h == "fin-db-01" || h == "web-02"; };
    EXPECT_EQ(ingest::check_batch(a + "\n" + other + "\n", both).refused->status, 400);
}

TEST(ServerAuditIngest, BodyShapeAndLineCount) {
    const std::string a = line("fin-db-01", 1, jitgate::audit::k_genesis_hash, "ev-1");
    EXPECT_EQ(ingest::check_batch("", only_fin).refused->status, 400);
    EXPECT_EQ(ingest::check_batch(a, only_fin).refused->status, 400); // no final '\n': a cut body
    std::string many;
    for (std::size_t i = 0; i <= ingest::k_max_lines; ++i) many += "{}\n";
    EXPECT_EQ(ingest::check_batch(many, only_fin).refused->status, 413);
}

// No line is longer than an event jitgated can write: 413 naming the line, before it is parsed.
TEST(ServerAuditIngest, ALineOverTheEventSizeLimitIs413NamingIt) {
    const std::string a = line("fin-db-01", 1, jitgate::audit::k_genesis_hash, "ev-1");
    std::string big = line("fin-db-01", 2, hash_of(a), "ev-2", "message", std::string(ingest::k_max_line, 'x'));
    ASSERT_GT(big.size(), ingest::k_max_line);
    const auto check = ingest::check_batch(a + "\n" + big + "\n", only_fin);
    ASSERT_TRUE(check.refused);
    EXPECT_EQ(check.refused->status, 413);
    EXPECT_NE(check.refused->message.find("line 2 is " + std::to_string(big.size()) + " bytes"), std::string::npos)
        << check.refused->message;
    // Just under the limit is an event like any other.
    const std::string fits =
        line("fin-db-01", 2, hash_of(a), "ev-2", "message", std::string(ingest::k_max_line - 400, 'x'));
    ASSERT_LE(fits.size(), ingest::k_max_line);
    EXPECT_FALSE(ingest::check_batch(a + "\n" + fits + "\n", only_fin).refused);
}

// The largest batches a host may send pass the checks: a full batch of ordinary events, and a
// body of the largest events, each escape-heavy (the costliest to parse). The time is printed,
// never asserted: throughput is measured by `bench/server_bench.sh ingest` (docs/PERFORMANCE.md).
// (It used to time the line checks parsed once against twice as well: two more passes over
// 54 MiB, which made it the slowest unit test under the sanitizers.)
TEST(ServerAuditIngest, TheLargestBatchesPassTheChecks) {
    std::string ordinary;
    std::string prev = jitgate::audit::k_genesis_hash;
    for (int i = 1; i <= 10000; ++i) {
        const std::string l =
            line("fin-db-01", i, prev, "ev-" + std::to_string(i), "argv", std::string(2000, 'a') + std::to_string(i));
        prev = hash_of(l);
        ordinary += l + "\n";
    }
    std::string escaped;
    prev = jitgate::audit::k_genesis_hash;
    for (int i = 1; escaped.size() + ingest::k_max_line < ingest::k_max_body; ++i) {
        const std::string l =
            line("fin-db-01", i, prev, "ev-" + std::to_string(i), "argv", std::string(80 * 1024, '\x01'));
        prev = hash_of(l);
        escaped += l + "\n";
    }
    const auto time_ms = [](const std::function<void()>& f) {
        const auto start = std::chrono::steady_clock::now();
        f();
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    };
    // (A pair, not a structured binding: clang 14 cannot capture a binding in a lambda.)
    for (const auto& entry : {std::pair<const char*, const std::string*>{"10000 ordinary events", &ordinary},
                              {"escape-heavy events", &escaped}}) {
        const char* const name = entry.first;
        const std::string* const body = entry.second;
        bool passed = false;
        const double now_ms = time_ms([&] { passed = !ingest::check_batch(*body, only_fin).refused; });
        EXPECT_TRUE(passed) << name;
        std::cout << "[ TIMING   ] " << name << " (" << body->size() / 1024 << " KiB): check_batch " << now_ms
                  << " ms\n";
    }
}

// A new chain at seq 1 (a wiped spool) was recorded but not raised; an edited event resent
// (409) was not a chain event at all. Both are alerts now, with the breaks.
TEST(ServerAuditIngest, RestartedAndEditedChainsAreAlerts) {
    for (const char* type : {"audit.chain_gap", "audit.chain_fork", "audit.chain_edited", "audit.chain_restarted"})
        EXPECT_TRUE(ingest::is_chain_alert(type)) << type;
    EXPECT_FALSE(ingest::is_chain_alert("audit.chain_started"));
    EXPECT_FALSE(ingest::is_chain_alert("audit.batch_refused"));
}

TEST(ServerAuditIngest, ContentTypeAndAcknowledgement) {
    const std::string ndjson = "application/x-ndjson";
    const std::string with_charset = "Application/X-NDJSON; charset=utf-8";
    const std::string json = "application/json";
    EXPECT_TRUE(ingest::is_ndjson(&ndjson));
    EXPECT_TRUE(ingest::is_ndjson(&with_charset));
    EXPECT_FALSE(ingest::is_ndjson(&json));
    EXPECT_FALSE(ingest::is_ndjson(nullptr));
    const Json ack = Json::parse(ingest::ack_json(20, "7387b612", 18, 2));
    EXPECT_EQ(ack["stored"], 20);
    EXPECT_EQ(ack["last_event_id"], "7387b612");
    EXPECT_EQ(ack["duplicates"], 2);
    const Json empty = Json::parse(ingest::state_json("fin-db-01", std::nullopt));
    EXPECT_EQ(empty["last_seq"], 0);
    EXPECT_EQ(empty["chain"], "ok");
    jitgate::server::store::AuditChain c;
    c.last_seq = 7;
    c.last_hash = std::string(64, 'a');
    c.broken = true;
    c.problem = "gap: seq 5 follows 2 (2 events missing)";
    c.last_seen = 1795489562;
    c.restarts = 2;
    c.restart_at = 1795489000;
    c.restart_previous_seq = 41;
    c.restart_previous_hash = std::string(64, 'b');
    const Json state = Json::parse(ingest::state_json("fin-db-01", c));
    EXPECT_EQ(state["restarts"], 2);
    EXPECT_EQ(state["restart_at"], "2026-11-24T02:56:40Z");
    EXPECT_EQ(state["restart_previous_seq"], 41);
    EXPECT_EQ(state["restart_previous_hash"], std::string(64, 'b'));
    EXPECT_EQ(empty["restarts"], 0);
    EXPECT_EQ(empty["restart_at"], "");
    EXPECT_EQ(state["last_seq"], 7);
    EXPECT_EQ(state["last_hash"], std::string(64, 'a'));
    EXPECT_EQ(state["chain"], "broken");
    EXPECT_EQ(state["problem"], c.problem);
}

// Jitgate-Spool-Seq: a seq at least the batch's largest, as plain digits; anything else is a
// problem to log (the batch is stored all the same), and no header is no report.
TEST(ServerAuditIngest, TheSpoolSeqHeaderIsASeqAtLeastTheBatchsOrAProblem) {
    const std::string a = line("fin-db-01", 7, jitgate::audit::k_genesis_hash, "ev-7");
    const std::string b = line("fin-db-01", 9, hash_of(a), "ev-9");
    const auto check = ingest::check_batch(a + "\n" + b + "\n", only_fin);
    ASSERT_FALSE(check.refused);
    const auto seq_of = [&](const std::string& header) { return ingest::spool_seq(&header, check.events); };
    EXPECT_EQ(ingest::spool_seq(nullptr, check.events).seq, 0);
    EXPECT_EQ(ingest::spool_seq(nullptr, check.events).problem, "");
    EXPECT_EQ(seq_of("9").seq, 9);
    EXPECT_EQ(seq_of("9").problem, "");
    EXPECT_EQ(seq_of("120").seq, 120);
    EXPECT_EQ(seq_of("9223372036854775807").seq, 9223372036854775807);
    for (const std::string& bad : std::vector<std::string>{
             "", "abc", "-1", "+12", "012", "0", "1.5e3", "12 ", " 12", "0x10", "12,13", "99999999999999999999",
             "9223372036854775808", "9999999999999999999", std::string("12\0", 3), "12\r\nX-Evil: 1"}) {
        const ingest::SpoolSeq got = seq_of(bad);
        EXPECT_EQ(got.seq, 0) << bad;
        EXPECT_NE(got.problem.find("Jitgate-Spool-Seq"), std::string::npos) << bad;
        EXPECT_EQ(got.problem.find('\n'), std::string::npos) << "one line: " << got.problem;
        EXPECT_EQ(got.problem.find('\r'), std::string::npos) << got.problem;
    }
    EXPECT_EQ(seq_of("8").seq, 0);
    EXPECT_EQ(seq_of("8").problem, "Jitgate-Spool-Seq \"8\" is below the batch's own seq 9");
    EXPECT_EQ(seq_of("9223372036854775808").problem,
              "Jitgate-Spool-Seq \"9223372036854775808\" is larger than a seq can be");
}

// The state shows the host's reported backlog; null (unknown) unless the last batch reported it.
TEST(ServerAuditIngest, TheStateShowsTheReportedBacklogOrNullWhenUnknown) {
    const Json empty = Json::parse(ingest::state_json("fin-db-01", std::nullopt));
    EXPECT_EQ(empty["reported_seq"], 0);
    EXPECT_EQ(empty["reported_at"], "");
    EXPECT_TRUE(empty["backlog"].is_null());
    jitgate::server::store::AuditChain c;
    c.last_seq = 7;
    c.last_seen = 1795489562;
    EXPECT_TRUE(Json::parse(ingest::state_json("fin-db-01", c))["backlog"].is_null()) << "never reported";
    c.reported_seq = 19;
    c.reported_at = 1795489562;
    Json state = Json::parse(ingest::state_json("fin-db-01", c));
    EXPECT_EQ(state["reported_seq"], 19);
    EXPECT_EQ(state["reported_at"], "2026-11-24T03:06:02Z");
    EXPECT_EQ(state["backlog"], 12);
    c.reported_seq = 7;
    EXPECT_EQ(Json::parse(ingest::state_json("fin-db-01", c))["backlog"], 0);
    c.reported_seq = 5; // a chain restarted after the report: nothing is owed
    EXPECT_EQ(Json::parse(ingest::state_json("fin-db-01", c))["backlog"], 0);
    c.reported_seq = 0; // a later batch without a report
    state = Json::parse(ingest::state_json("fin-db-01", c));
    EXPECT_TRUE(state["backlog"].is_null());
    EXPECT_EQ(state["reported_at"], "2026-11-24T03:06:02Z") << "when a batch last reported";
}

// ---- CheckTurns: the checking slots among the fleet's hosts ----------------------------------

using Verdict = ingest::CheckTurns::Verdict;

constexpr std::size_t k_lots = std::size_t{1} << 40; // bytes: only the count binds

TEST(AuditIngestCheckTurns, AHostHoldsOneSlotAndItsSecondBatchTakesNone) {
    ingest::CheckTurns turns(3, k_lots, 600);
    EXPECT_EQ(turns.admit("a", 1, 1, 0), Verdict::admitted);
    EXPECT_EQ(turns.admit("a", 1, 1, 0), Verdict::host_busy);
    EXPECT_EQ(turns.admit("a", 1, 1, 0), Verdict::host_busy);
    EXPECT_EQ(turns.in_flight(), 1u);
    EXPECT_EQ(turns.owed(), 0u) << "a host's own second batch is not owed a turn";
    EXPECT_EQ(turns.admit("b", 1, 1, 0), Verdict::admitted);
    EXPECT_EQ(turns.admit("c", 1, 1, 0), Verdict::admitted);
    EXPECT_EQ(turns.admit("d", 1, 1, 0), Verdict::full);
    turns.done("a", 1);
    EXPECT_EQ(turns.admit("a", 1, 1, 1), Verdict::full) << "the freed slot is owed to d";
    EXPECT_EQ(turns.admit("d", 1, 1, 2), Verdict::admitted);
    EXPECT_EQ(turns.owed(), 1u) << "a is owed now";
    turns.done("b", 1);
    EXPECT_EQ(turns.admit("a", 1, 1, 3), Verdict::admitted);
    turns.done("x", 1); // unknown: ignored
    EXPECT_EQ(turns.in_flight(), 3u);
}

// A certificate naming several hosts (CN and DNS names) ships for each: one slot per name.
TEST(AuditIngestCheckTurns, ACertificateNamingSeveralHostsHoldsOneSlotPerName) {
    ingest::CheckTurns turns(5, k_lots, 600);
    EXPECT_EQ(turns.admit("multi", 3, 1, 0), Verdict::admitted);
    EXPECT_EQ(turns.admit("multi", 3, 1, 0), Verdict::admitted);
    EXPECT_EQ(turns.admit("multi", 3, 1, 0), Verdict::admitted);
    EXPECT_EQ(turns.admit("multi", 3, 1, 0), Verdict::host_busy);
    EXPECT_EQ(turns.in_flight(), 3u);
    turns.done("multi", 1);
    EXPECT_EQ(turns.admit("multi", 3, 1, 0), Verdict::admitted);
    EXPECT_EQ(turns.admit("single", 1, 1, 0), Verdict::admitted);
    EXPECT_EQ(turns.in_flight(), 4u);
    EXPECT_EQ(turns.admit("single", 1, 1, 0), Verdict::host_busy) << "one name: one slot, though one is free";
}

TEST(AuditIngestCheckTurns, OwedTurnsLapse) {
    ingest::CheckTurns turns(1, k_lots, 10);
    EXPECT_EQ(turns.admit("a", 1, 1, 0), Verdict::admitted);
    EXPECT_EQ(turns.admit("b", 1, 1, 0), Verdict::full);
    EXPECT_EQ(turns.admit("c", 1, 1, 0), Verdict::full);
    turns.done("a", 1);
    EXPECT_EQ(turns.admit("a", 1, 1, 1), Verdict::full) << "b and c are owed the slot";
    EXPECT_EQ(turns.owed(), 3u);
    // None came back: after 10 s their turns lapse and the slot is anyone's.
    EXPECT_EQ(turns.admit("d", 1, 1, 20), Verdict::admitted);
    EXPECT_EQ(turns.owed(), 0u);
}

// Regression: first come first served, a host that sends its next batch the moment one is
// answered (jitgated does) took the freed slot every time, while the hosts refused waited for
// their retry and found the queue full again. Simulated: 8 hosts, 2 slots, each batch checked
// in 1 s; the hosts that got in come straight back, a refused one retries after 5 s. Every
// host gets batches through, and none gets more than its share twice over.
TEST(AuditIngestCheckTurns, EveryHostOfABusyFleetGetsItsTurns) {
    constexpr int k_hosts = 8;
    constexpr int k_seconds = 600;
    ingest::CheckTurns turns(2, k_lots, 600);
    std::vector<int> retry_at(k_hosts, 0); // when each host sends next
    std::vector<int> done_at(k_hosts, -1); // when its admitted batch is answered; -1: none
    std::vector<int> served(k_hosts, 0);
    for (int t = 0; t < k_seconds; ++t) {
        for (int h = 0; h < k_hosts; ++h)
            if (done_at[static_cast<std::size_t>(h)] == t) {
                turns.done("host-" + std::to_string(h), 1);
                done_at[static_cast<std::size_t>(h)] = -1;
                ++served[static_cast<std::size_t>(h)];
                retry_at[static_cast<std::size_t>(h)] = t; // straight back
            }
        // The greedy ones first: the order that starved the others.
        for (int h = 0; h < k_hosts; ++h) {
            if (done_at[static_cast<std::size_t>(h)] >= 0 || retry_at[static_cast<std::size_t>(h)] != t) continue;
            if (turns.admit("host-" + std::to_string(h), 1, 1, t) == Verdict::admitted)
                done_at[static_cast<std::size_t>(h)] = t + 1;
            else
                retry_at[static_cast<std::size_t>(h)] = t + 5;
        }
    }
    int total = 0;
    for (const int n : served) total += n;
    for (int h = 0; h < k_hosts; ++h) {
        EXPECT_GT(served[static_cast<std::size_t>(h)], total / k_hosts / 2) << "host-" << h << " starved";
        EXPECT_LT(served[static_cast<std::size_t>(h)], total / k_hosts * 2) << "host-" << h << " took more";
    }
    EXPECT_GT(total, k_seconds / 2) << "the slots were mostly idle";
    std::cout << "[ TURNS    ] " << total << " batches in " << k_seconds << " s over 2 slots; per host:";
    for (const int n : served) std::cout << " " << n;
    std::cout << "\n";
}

// Only the count bounded what was in flight, at 5 batches: 16 hosts shipping at once got 503
// for 11 of them, and jitgated backs off seconds to minutes after each. Bodies are bounded by
// their bytes instead, so a fleet's ordinary batches all wait their turn.
TEST(AuditIngestCheckTurns, BatchesAreBoundedByTheirBytes) {
    ingest::CheckTurns turns(1000, 1000, 600);
    for (int h = 0; h < 16; ++h) EXPECT_EQ(turns.admit("host-" + std::to_string(h), 1, 60, 0), Verdict::admitted) << h;
    EXPECT_EQ(turns.bytes_in_flight(), 960u);
    EXPECT_EQ(turns.admit("host-16", 1, 41, 0), Verdict::full) << "1001 bytes would be in flight";
    EXPECT_EQ(turns.admit("host-17", 1, 40, 0), Verdict::full) << "host-16 is owed the room";
    EXPECT_EQ(turns.admit("host-16", 1, 40, 0), Verdict::admitted);
    EXPECT_EQ(turns.bytes_in_flight(), 1000u);
    turns.done("host-0", 60);
    turns.done("host-16", 40);
    turns.done("nobody", 500); // unknown: ignored
    EXPECT_EQ(turns.bytes_in_flight(), 900u);
    EXPECT_EQ(turns.in_flight(), 15u);
}

TEST(AuditIngestCheckTurns, OneBatchIsAdmittedWhateverItsSizeWhenNoneIsInFlight) {
    ingest::CheckTurns turns(10, 1000, 600);
    EXPECT_EQ(turns.admit("big", 1, 5000, 0), Verdict::admitted);
    EXPECT_EQ(turns.admit("small", 1, 1, 0), Verdict::full) << "the budget is spent";
    turns.done("big", 5000);
    EXPECT_EQ(turns.bytes_in_flight(), 0u);
    EXPECT_EQ(turns.admit("small", 1, 1, 0), Verdict::admitted);
    EXPECT_EQ(turns.admit("big", 1, 5000, 0), Verdict::full) << "not beside another batch";
}

// While hosts are owed a turn, room for the batch of the one owed longest is held back from
// everyone else, and owed hosts come in the order of their first refusal.
TEST(AuditIngestCheckTurns, RoomIsHeldForTheHostOwedLongest) {
    ingest::CheckTurns turns(100, 1000, 600);
    EXPECT_EQ(turns.admit("a", 1, 700, 0), Verdict::admitted);
    EXPECT_EQ(turns.admit("owed", 1, 400, 0), Verdict::full);
    turns.done("a", 700);
    EXPECT_EQ(turns.admit("b", 1, 300, 1), Verdict::admitted) << "300 beside the 400 held back";
    EXPECT_EQ(turns.admit("c", 1, 301, 1), Verdict::full) << "it would take the room held back";
    EXPECT_EQ(turns.admit("owed", 1, 400, 1), Verdict::admitted) << "the host owed longest gets in";
    EXPECT_EQ(turns.owed(), 1u) << "c is owed now";
    EXPECT_EQ(turns.admit("c", 1, 301, 2), Verdict::full) << "700 in flight: c waits, still owed";
    EXPECT_EQ(turns.owed(), 1u);
    turns.done("b", 300);
    EXPECT_EQ(turns.admit("c", 1, 301, 3), Verdict::admitted);
}

// Regression (review): a host refused while it had a batch in flight became owed, and came back
// first at every refusal. One certificate naming two hosts, sending two batches of 32 MiB (the
// whole budget) and resending each the moment it was answered, kept every other host out.
TEST(AuditIngestCheckTurns, AHostWithABatchInFlightIsNeverOwedAndCannotKeepOthersOut) {
    constexpr std::size_t k_mib = 1024 * 1024;
    constexpr std::size_t k_big = 32 * k_mib;
    ingest::CheckTurns turns(1024, 64 * k_mib, 600);
    ASSERT_EQ(turns.admit("x", 2, k_big, 0), Verdict::admitted);
    ASSERT_EQ(turns.admit("x", 2, k_big, 0), Verdict::admitted);
    EXPECT_EQ(turns.admit("h", 1, k_mib, 0), Verdict::full);
    for (int round = 1; round <= 5; ++round) {
        turns.done("x", k_big);
        EXPECT_EQ(turns.admit("x", 2, k_big, round), Verdict::full) << "round " << round << ": room is held for h";
        EXPECT_EQ(turns.owed(), 1u) << "round " << round << ": x has a batch in flight, it is not owed";
        EXPECT_EQ(turns.admit("h", 1, k_mib, round), Verdict::admitted) << "round " << round;
        turns.done("h", k_mib);
        EXPECT_EQ(turns.admit("x", 2, k_big, round), Verdict::admitted) << "round " << round << ": x's turn";
        EXPECT_EQ(turns.admit("h", 1, k_mib, round), Verdict::full) << "round " << round;
    }
}

} // namespace
