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

// GET /v1/audit/state's answer for testhost, as jitgate-server writes it.
Json state_answer(std::uint64_t seq, const std::string& hash) {
    return Json{{"host", "testhost"},
                {"last_seq", seq},
                {"last_hash", hash},
                {"last_event_id", "ev-" + std::to_string(seq)},
                {"chain", "ok"},
                {"problem", ""},
                {"problem_seq", 0},
                {"last_seen", "2026-11-24T03:05:57Z"},
                {"events", seq},
                {"restarts", 0},
                {"restart_at", ""},
                {"restart_previous_seq", 0},
                {"restart_previous_hash", ""}};
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
    peer.set_default(Answer(200, state_answer(3, hash_of(events[2])).dump(), "application/json"));
    const audit::StoreState s = audit::fetch_store_state(store_for(peer), "testhost");
    EXPECT_EQ(s.host, "testhost");
    EXPECT_EQ(s.last_seq, 3u);
    EXPECT_EQ(s.last_hash, hash_of(events[2]));
    EXPECT_EQ(s.chain, "ok");
    EXPECT_EQ(s.restarts, 0u);
    ASSERT_EQ(peer.received().size(), 1u);
    EXPECT_EQ(peer.received()[0].method, "GET");
    EXPECT_EQ(peer.received()[0].path, "/v1/audit/state");
    EXPECT_EQ(peer.received()[0].header("Authorization"), "");
    // With audit.store.token_file, the token goes along as the shipper sends it.
    auto with_token = store_for(peer);
    with_token.token_file = m_dir / "token";
    std::ofstream(with_token.token_file) << "  s3cret-token \n";
    EXPECT_EQ(audit::fetch_store_state(with_token, "testhost").last_seq, 3u);
    ASSERT_EQ(peer.received().size(), 2u);
    EXPECT_EQ(peer.received()[1].header("Authorization"), "Bearer s3cret-token");
    // Without the host's certificate the store never answers (its handshake fails).
    auto anonymous = store_for(peer);
    anonymous.client_cert.clear();
    anonymous.client_key.clear();
    EXPECT_THROW(audit::fetch_store_state(anonymous, "testhost"), Error);
    // An answer that is not a state is an error, never "nothing to compare".
    peer.set_default(Answer(200, "<html>ok</html>", "text/html"));
    EXPECT_THROW(audit::fetch_store_state(store_for(peer), "testhost"), Error);
    peer.set_default(Answer(403, R"({"error":"forbidden"})", "application/json"));
    try {
        audit::fetch_store_state(store_for(peer), "testhost");
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
    const auto at_anchor = audit::check_against_store(m_dir.path(), state_of(4, hash_of(events[3])));
    EXPECT_TRUE(at_anchor.ok) << at_anchor.summary;
    EXPECT_NE(at_anchor.summary.find("shipped and deleted from the spool (its anchor is seq 4)"), std::string::npos)
        << at_anchor.summary;
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

// Regression: a store holding less than the host had acknowledged (last_seq 0, or below the
// spool's anchor) was "OK": the anchor is written only after the store acknowledged those
// events, so the store lost them. FAILED, saying so.
TEST_F(StoreCheckTest, AStoreThatLostAcknowledgedEventsFails) {
    const std::vector<std::string> events = chain(6);
    make_spool(m_dir.path(), events, 5, 6); // anchor at 4: the store acknowledged 1..4
    const auto below = audit::check_against_store(m_dir.path(), state_of(3, hash_of(events[2])));
    EXPECT_FALSE(below.ok) << below.summary;
    EXPECT_NE(below.summary.find("the store lost events it acknowledged: this host had seq 4 acknowledged "
                                 "(anchor.json), the store holds only up to seq 3"),
              std::string::npos)
        << below.summary;
    const auto none = audit::check_against_store(m_dir.path(), state_of(0, ""));
    EXPECT_FALSE(none.ok) << none.summary;
    EXPECT_NE(none.summary.find("the store holds no event of it"), std::string::npos) << none.summary;
    // shipped.json counts as well: acknowledged up to 5, the store holds 4.
    jitgate::audit::spool::write_shipped(m_dir.path(), {5, "2026-11-24T03:05:58Z"});
    const auto shipped = audit::check_against_store(m_dir.path(), state_of(4, hash_of(events[3])));
    EXPECT_FALSE(shipped.ok) << shipped.summary;
    EXPECT_NE(shipped.summary.find("this host had seq 5 acknowledged (shipped.json)"), std::string::npos)
        << shipped.summary;
    // A host that never had anything acknowledged and a store without its events: nothing lost.
    ScratchDir fresh;
    make_spool(fresh.path(), events, 1, 2);
    const auto nothing_yet = audit::check_against_store(fresh.path(), state_of(0, ""));
    EXPECT_TRUE(nothing_yet.ok) << nothing_yet.summary;
}

// Regression: a chain the store marked broken was only a note before "OK". It fails, with the
// store's problem.
TEST_F(StoreCheckTest, AChainTheStoreMarkedBrokenFails) {
    const std::vector<std::string> events = chain(3);
    make_spool(m_dir.path(), events, 1, 3);
    audit::StoreState state = state_of(3, hash_of(events[2]));
    state.chain = "broken";
    state.problem = "event ev-2 (seq 2) came again with other content (edited)";
    const auto r = audit::check_against_store(m_dir.path(), state);
    EXPECT_FALSE(r.ok) << r.summary;
    EXPECT_EQ(r.summary.rfind("the store marked this host's chain broken: event ev-2 (seq 2) came again with other "
                              "content (edited); ",
                              0),
              0u)
        << r.summary;
}

// Regression: a spool wiped and started over, which caught up with the store's seq, "matched".
// The store counts the restarts of the chain: any is reported and fails.
TEST_F(StoreCheckTest, AChainThatStartedOverAtTheStoreFails) {
    const std::vector<std::string> events = chain(3);
    make_spool(m_dir.path(), events, 1, 3);
    audit::StoreState state = state_of(3, hash_of(events[2]));
    state.restarts = 1;
    state.restart_at = "2026-11-24T03:05:56Z";
    state.restart_previous_seq = 9;
    const auto r = audit::check_against_store(m_dir.path(), state);
    EXPECT_FALSE(r.ok) << r.summary;
    EXPECT_NE(r.summary.find("the store saw this host's chain start over at seq 1 1 time, last at "
                             "2026-11-24T03:05:56Z (it stood at seq 9)"),
              std::string::npos)
        << r.summary;
    EXPECT_NE(r.summary.find("spool matches"), std::string::npos) << "the comparison is still said: " << r.summary;
}

// Regression: the state was asked without naming the host, so a certificate naming several
// hosts got its first name's state, compared with this spool. The host goes as ?host= and the
// answer must be about it; a state without `chain` or `restarts` is not a state.
TEST_F(StoreCheckTest, TheStateIsAskedForTheConfiguredHostAndMustBeAboutIt) {
    HttpsPeer peer(pki("server.pem"), pki("server.key"), pki("ca.pem"));
    peer.set_default(Answer(200, state_answer(3, std::string(64, 'a')).dump(), "application/json"));
    EXPECT_EQ(audit::fetch_store_state(store_for(peer), "testhost").host, "testhost");
    const auto received = peer.received(); // a copy: params must outlive this statement
    ASSERT_EQ(received.size(), 1u);
    const auto& params = received[0].params;
    ASSERT_EQ(params.count("host"), 1u);
    EXPECT_EQ(params.find("host")->second, "testhost");
    try {
        audit::fetch_store_state(store_for(peer), "web 02&x=1");
        ADD_FAILURE() << "another host's state must be an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("the store answered about host \"testhost\", not \"web 02&x=1\""),
                  std::string::npos)
            << e.what();
    }
    EXPECT_EQ(peer.received().back().params.find("host")->second, "web 02&x=1") << "escaped in the query";
    for (const char* member : {"chain", "restarts"}) {
        Json answer = state_answer(3, std::string(64, 'a'));
        answer.erase(member);
        peer.set_default(Answer(200, answer.dump(), "application/json"));
        EXPECT_THROW(audit::fetch_store_state(store_for(peer), "testhost"), Error) << "without " << member;
    }
    Json odd = state_answer(3, std::string(64, 'a'));
    odd["chain"] = "fine";
    peer.set_default(Answer(200, odd.dump(), "application/json"));
    EXPECT_THROW(audit::fetch_store_state(store_for(peer), "testhost"), Error);
}

} // namespace
