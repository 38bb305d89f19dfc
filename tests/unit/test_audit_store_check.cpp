// Tests for daemon/audit/store_check (`jitgatectl audit verify --against-store`): the store's
// state fetched over real mutual TLS from an HTTPS peer on 127.0.0.1 (the throw-away PKI of
// tests/support/make_pki.sh), and spools built in a scratch directory compared with it: one
// that matches, one cut below what the store holds, one rewritten, one whose matching part was
// shipped and deleted.
#include "daemon/audit/store_check.hpp"

#include <curl/curl.h>

#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "daemon/audit/spool.hpp"
#include "jitgate/error.hpp"
#include "lib/audit_event.hpp"
#include "server_notify_peers.hpp"

namespace {

namespace audit = jitgate::audit;
namespace spool = jitgate::audit::spool;
using jitgate::Error;
using jitgate::audit::Json;
using jitgate::test::Answer;
using jitgate::test::HttpsPeer;
using jitgate::test::ScratchDir;

// A host's chain of events; `salt` changes every event's content (a rewritten spool).
std::vector<std::string> chain(int n, const std::string& salt = "") {
    std::vector<std::string> out;
    std::string prev = audit::k_genesis_hash;
    for (int seq = 1; seq <= n; ++seq) {
        Json e{{"event_id", "ev-" + std::to_string(seq) + salt},
               {"host", "testhost"},
               {"seq", seq},
               {"prev_hash", prev},
               {"time", "2026-11-24T03:05:56.548Z"},
               {"type", "command.finished"},
               {"user", "alice" + salt}};
        e["hash"] = audit::sha256_hex(audit::canonical_bytes(e));
        prev = e["hash"].get<std::string>();
        out.push_back(e.dump());
    }
    return out;
}

std::string hash_of(const std::string& line) {
    return Json::parse(line)["hash"].get<std::string>();
}

// A spool in `dir` holding events [from, to] of `events` (1-based) in one segment, with an
// anchor at from - 1 when from > 1 (the earlier ones shipped and deleted).
void make_spool(const std::string& dir, const std::vector<std::string>& events, int from, int to) {
    std::filesystem::create_directories(dir);
    std::ofstream seg(dir + "/" + spool::segment_name(static_cast<std::uint64_t>(from)));
    for (int seq = from; seq <= to; ++seq) seg << events[static_cast<std::size_t>(seq - 1)] << "\n";
    seg.close();
    if (from > 1) {
        const Json a = Json::parse(events[static_cast<std::size_t>(from - 2)]);
        spool::write_anchor(dir, {static_cast<std::uint64_t>(from - 1), a["hash"].get<std::string>(),
                                  a["event_id"].get<std::string>()});
    }
}

audit::StoreState state_of(std::uint64_t seq, const std::string& hash) {
    audit::StoreState s;
    s.host = "testhost";
    s.last_seq = seq;
    s.last_hash = hash;
    s.chain = "ok";
    return s;
}

class StoreCheckTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        ASSERT_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
        s_pki = std::make_unique<ScratchDir>();
        jitgate::test::make_pki(s_pki->path());
    }
    static void TearDownTestSuite() {
        s_pki.reset();
        curl_global_cleanup();
    }
    static std::string pki(const std::string& name) { return *s_pki / name; }

    jitgate::config::Config::Audit::Store store_for(const HttpsPeer& peer) const {
        jitgate::config::Config::Audit::Store s;
        s.url = peer.url("/v1/audit/events");
        s.ca_file = pki("ca.pem");
        s.client_cert = pki("client.pem");
        s.client_key = pki("client.key");
        return s;
    }

    static std::unique_ptr<ScratchDir> s_pki;
    ScratchDir m_dir;
};
std::unique_ptr<ScratchDir> StoreCheckTest::s_pki;

TEST_F(StoreCheckTest, TheStateUrlIsTheEventsUrlsSibling) {
    EXPECT_EQ(audit::state_url("https://approvals.example:8443/v1/audit/events"),
              "https://approvals.example:8443/v1/audit/state");
    EXPECT_EQ(audit::state_url("https://s/prefix/v1/audit/events?x=1"), "https://s/prefix/v1/audit/state");
    EXPECT_THROW(audit::state_url("https://splunk:8088/services/collector/event"), Error);
    EXPECT_THROW(audit::state_url("https://s/v1/audit/events/"), Error);
}

TEST_F(StoreCheckTest, TheStateIsFetchedOverMutualTlsFromTheSiblingUrl) {
    const std::vector<std::string> events = chain(3);
    HttpsPeer peer(pki("server.pem"), pki("server.key"), pki("ca.pem"));
    peer.set_default(Answer(
        200,
        Json{{"host", "testhost"}, {"last_seq", 3}, {"last_hash", hash_of(events[2])}, {"chain", "ok"}, {"problem", ""}}
            .dump(),
        "application/json"));
    const audit::StoreState s = audit::fetch_store_state(store_for(peer));
    EXPECT_EQ(s.host, "testhost");
    EXPECT_EQ(s.last_seq, 3u);
    EXPECT_EQ(s.last_hash, hash_of(events[2]));
    ASSERT_EQ(peer.received().size(), 1u);
    EXPECT_EQ(peer.received()[0].method, "GET");
    EXPECT_EQ(peer.received()[0].path, "/v1/audit/state");
    EXPECT_EQ(peer.received()[0].header("Authorization"), "");
    // With audit.store.token_file, the token goes along as the shipper sends it.
    auto with_token = store_for(peer);
    with_token.token_file = m_dir / "token";
    std::ofstream(with_token.token_file) << "  s3cret-token \n";
    EXPECT_EQ(audit::fetch_store_state(with_token).last_seq, 3u);
    ASSERT_EQ(peer.received().size(), 2u);
    EXPECT_EQ(peer.received()[1].header("Authorization"), "Bearer s3cret-token");
    // Without the host's certificate the store never answers (its handshake fails).
    auto anonymous = store_for(peer);
    anonymous.client_cert.clear();
    anonymous.client_key.clear();
    EXPECT_THROW(audit::fetch_store_state(anonymous), Error);
    // An answer that is not a state is an error, never "nothing to compare".
    peer.set_default(Answer(200, "<html>ok</html>", "text/html"));
    EXPECT_THROW(audit::fetch_store_state(store_for(peer)), Error);
    peer.set_default(Answer(403, R"({"error":"forbidden"})", "application/json"));
    try {
        audit::fetch_store_state(store_for(peer));
        ADD_FAILURE() << "a 403 must be an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("HTTP 403"), std::string::npos) << e.what();
    }
}

TEST_F(StoreCheckTest, ASpoolHoldingTheStoresLastEventMatches) {
    const std::vector<std::string> events = chain(5);
    make_spool(m_dir.path(), events, 1, 5);
    const auto r = audit::check_against_store(m_dir.path(), state_of(3, hash_of(events[2])));
    EXPECT_TRUE(r.ok) << r.summary;
    EXPECT_EQ(r.summary,
              "store holds up to seq 3 hash " + hash_of(events[2]) + "; spool matches and continues to seq 5");
    const auto at_end = audit::check_against_store(m_dir.path(), state_of(5, hash_of(events[4])));
    EXPECT_TRUE(at_end.ok) << at_end.summary;
    EXPECT_EQ(at_end.summary, "store holds up to seq 5 hash " + hash_of(events[4]) + "; spool matches");
}

TEST_F(StoreCheckTest, ASpoolCutBelowWhatTheStoreHoldsFails) {
    const std::vector<std::string> events = chain(5);
    make_spool(m_dir.path(), events, 1, 2); // events 3..5 were deleted from the spool's end
    const auto r = audit::check_against_store(m_dir.path(), state_of(5, hash_of(events[4])));
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.summary.find("spool cut below what the store holds: the spool ends at seq 2"), std::string::npos)
        << r.summary;
}

TEST_F(StoreCheckTest, ARewrittenSpoolFailsNamingTheSeq) {
    const std::vector<std::string> events = chain(5);
    // The same seqs, a consistent chain of its own, other content: only the store can tell.
    make_spool(m_dir.path(), chain(5, "-rewritten"), 1, 5);
    const auto r = audit::check_against_store(m_dir.path(), state_of(4, hash_of(events[3])));
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.summary.find("spool rewritten: the hash at seq 4 differs"), std::string::npos) << r.summary;
}

TEST_F(StoreCheckTest, TheStoresLastEventShippedAndDeletedIsSaid) {
    const std::vector<std::string> events = chain(6);
    make_spool(m_dir.path(), events, 5, 6); // anchor at 4
    const auto below = audit::check_against_store(m_dir.path(), state_of(3, hash_of(events[2])));
    EXPECT_TRUE(below.ok) << below.summary;
    EXPECT_NE(below.summary.find("shipped and deleted from the spool (its anchor is seq 4)"), std::string::npos)
        << below.summary;
    const auto at_anchor = audit::check_against_store(m_dir.path(), state_of(4, hash_of(events[3])));
    EXPECT_TRUE(at_anchor.ok) << at_anchor.summary;
    const auto wrong_anchor = audit::check_against_store(m_dir.path(), state_of(4, std::string(64, 'e')));
    EXPECT_FALSE(wrong_anchor.ok);
    EXPECT_NE(wrong_anchor.summary.find("spool rewritten"), std::string::npos) << wrong_anchor.summary;
}

TEST_F(StoreCheckTest, ASpoolThatDoesNotVerifyFailsWhateverTheStoreSays) {
    const std::vector<std::string> events = chain(3);
    std::vector<std::string> edited = events;
    edited[1].replace(edited[1].find("alice"), 5, "bobby");
    make_spool(m_dir.path(), edited, 1, 3);
    const auto r = audit::check_against_store(m_dir.path(), state_of(3, hash_of(events[2])));
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.summary.find("the spool itself does not verify"), std::string::npos) << r.summary;
}

} // namespace
