// Tests for server/service/audit_ingest: the checks of a host's audit batch (docs/audit.md §5,
// `jsonl`) before anything is stored, on real event lines (lib/audit_event's canonical form
// and hash, as jitgated writes them).
#include "lib/audit_event.hpp"
#include "server/service/audit_ingest.hpp"

#include <gtest/gtest.h>

#include <string>

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
    const Json state = Json::parse(ingest::state_json("fin-db-01", c));
    EXPECT_EQ(state["last_seq"], 7);
    EXPECT_EQ(state["last_hash"], std::string(64, 'a'));
    EXPECT_EQ(state["chain"], "broken");
    EXPECT_EQ(state["problem"], c.problem);
}

} // namespace
