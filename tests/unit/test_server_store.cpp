// Tests for server/store: every case runs on SQLite (a file in a temporary directory) and on a
// real PostgreSQL 15 (the pg_scratch ctest fixture, tests/support/pg_scratch.sh, started for
// the run; its conninfo comes through the file named by JITGATE_TEST_PG_CONNINFO_FILE). Each
// PostgreSQL case gets its own schema, so the cases run in parallel. A missing PostgreSQL
// fails the PostgreSQL cases; it never skips them.
#include "lib/audit_event.hpp"
#include "server/store/sqlite_search.hpp"
#include "server/store/store.hpp"
#include "server_store_fixture.hpp"

#include <jitgate/error.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <libpq-fe.h>
#include <limits>
#include <map>
#include <mutex>
#include <poll.h>
#include <sqlite3.h>
#include <thread>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace jitgate::server::store;
using jitgate::Error;
using jitgate::ErrorCode;
using namespace jitgate::test_store;

namespace {

// revocations_after()'s `upto` when a case does not bound the read.
constexpr std::int64_t k_no_upto = std::numeric_limits<std::int64_t>::max();

// put_login's cap on sign-ins in progress, for tests about something else.
constexpr std::size_t k_no_sign_in_cap = 1000000;

Request make_request(const std::string& host, const std::string& id, std::int64_t created_at = 1000,
                     std::int64_t expires_at = 2000, int approvals_needed = 1) {
    Request r;
    r.host = host;
    r.id = id;
    r.body = R"({"id":")" + id + R"(","requester":{"user":"alice"}})";
    r.requester = "alice";
    r.requester_login = "alice";
    r.rule = "prod-sudo";
    r.approvals_needed = approvals_needed;
    r.approver_groups = {"sox-approvers", "ops"};
    r.created_at = created_at;
    r.expires_at = expires_at;
    return r;
}

Event event(const std::string& type, const std::string& host = "", const std::string& id = "", std::int64_t at = 1000) {
    return Event{at, type, host, id, "server", "", "127.0.0.1", R"({"k":1})"};
}

Approval approval(const std::string& approver, std::int64_t at = 1100) {
    return Approval{approver, "https://idp/ " + approver, "ok by " + approver, "10.0.0.9", "web", at};
}

// A signer that records what it was shown.
struct RecordingSigner {
    int calls = 0;
    std::vector<std::string> approvers_seen;
    Status status_seen = Status::pending;
    Signer signer() {
        return [this](const Request& r) {
            ++calls;
            approvers_seen.clear();
            for (const auto& a : r.approvals) approvers_seen.push_back(a.approver);
            status_seen = r.status;
            return SignedGrant{"jws." + r.id + "." + std::to_string(calls), "jti-" + r.id,
                               Event{r.decided_at, "grant.signed", r.host, r.id, "server", "", "",
                                     R"({"grant_id":"jti-)" + r.id + R"("})"}};
        };
    }
};

Signer no_signer() {
    return [](const Request&) -> SignedGrant { throw std::logic_error("the signer must not be called here"); };
}

class StoreTest : public testing::TestWithParam<Backend> {
protected:
    void SetUp() override {
        m_database = std::make_unique<Database>(GetParam());
        EXPECT_EQ(m_database->migrate(), 0);
        store = m_database->open();
    }
    void TearDown() override {
        store.reset();
        m_database.reset();
    }
    Database& database() { return *m_database; }
    Request create(const std::string& id, std::int64_t created_at = 1000, std::int64_t expires_at = 2000,
                   int needed = 1) {
        auto result =
            store->create(make_request("web1", id, created_at, expires_at, needed), event("request.filed", "web1", id));
        EXPECT_TRUE(result.created);
        return result.request;
    }

    std::unique_ptr<Database> m_database;
    std::unique_ptr<Store> store;
};

// hosts.max_pending_per_host: a host holding max_pending live pending requests gets no new
// one (nothing stored, no event), a retry of a filed one is still answered, other hosts and
// final or expired requests do not count.
TEST_P(StoreTest, create_refuses_a_new_request_beyond_the_hosts_pending_limit) {
    const auto file = [&](const std::string& host, const std::string& id, std::int64_t at = 1000) {
        return store->create(make_request(host, id, at, at + 1000), event("request.filed", host, id), 2);
    };
    EXPECT_TRUE(file("web1", "R-LIM1").created);
    EXPECT_TRUE(file("web1", "R-LIM2").created);
    const CreateResult over = file("web1", "R-LIM3");
    EXPECT_FALSE(over.created);
    EXPECT_TRUE(over.over_limit);
    EXPECT_EQ(over.pending, 2u);
    EXPECT_TRUE(over.request.id.empty());
    EXPECT_FALSE(store->find("web1", "R-LIM3"));
    EXPECT_TRUE(store->events("web1", "R-LIM3").empty());
    // A retry of a filed request is not a new one: answered with the stored request.
    const CreateResult again = file("web1", "R-LIM2");
    EXPECT_FALSE(again.over_limit);
    EXPECT_FALSE(again.created);
    EXPECT_EQ(again.request.id, "R-LIM2");
    // Another host has its own count.
    EXPECT_TRUE(file("web2", "R-LIM1").created);
    // A final request frees its place; so does one past its expiry (not yet expired by the timer).
    ASSERT_TRUE(store->finish("web1", "R-LIM1", Status::denied, "bob", "no", 1100, event("request.denied")));
    EXPECT_TRUE(file("web1", "R-LIM3").created);
    EXPECT_TRUE(file("web1", "R-LIM4", 1500).over_limit);
    EXPECT_TRUE(file("web1", "R-LIM4", 2000).created) << "at 2000 both others have expired";
    // Without a limit (0) nothing is counted.
    EXPECT_TRUE(store->create(make_request("web1", "R-LIM5"), event("request.filed", "web1", "R-LIM5")).created);
}

TEST_P(StoreTest, create_stores_every_field_and_records_the_event) {
    const Request filed = make_request("web1", "R-AAAA1", 1000, 2000, 2);
    const CreateResult result = store->create(filed, event("request.filed", "web1", "R-AAAA1"));
    EXPECT_TRUE(result.created);
    const auto found = store->find("web1", "R-AAAA1");
    ASSERT_TRUE(found);
    for (const Request* r : {&result.request, &*found}) {
        EXPECT_EQ(r->host, "web1");
        EXPECT_EQ(r->id, "R-AAAA1");
        EXPECT_EQ(r->body, filed.body);
        EXPECT_EQ(r->requester, "alice");
        EXPECT_EQ(r->requester_login, "alice");
        EXPECT_EQ(r->rule, "prod-sudo");
        EXPECT_EQ(r->status, Status::pending);
        EXPECT_EQ(r->approvals_needed, 2);
        EXPECT_EQ(r->approver_groups, (std::vector<std::string>{"sox-approvers", "ops"}));
        EXPECT_EQ(r->created_at, 1000);
        EXPECT_EQ(r->expires_at, 2000);
        EXPECT_EQ(r->decided_at, 0);
        EXPECT_TRUE(r->grant.empty());
        EXPECT_TRUE(r->approvals.empty());
    }
    const auto events = store->events("web1", "R-AAAA1");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].type, "request.filed");
    EXPECT_EQ(events[0].detail, R"({"k":1})");
    EXPECT_EQ(events[0].source_address, "127.0.0.1");
}

TEST_P(StoreTest, duplicate_create_returns_the_existing_request_unchanged) {
    create("R-DUP1");
    Request again = make_request("web1", "R-DUP1");
    again.body = R"({"other":true})";
    const CreateResult result = store->create(again, event("request.filed", "web1", "R-DUP1"));
    EXPECT_FALSE(result.created);
    EXPECT_EQ(result.request.body, make_request("web1", "R-DUP1").body);
    EXPECT_EQ(store->events("web1", "R-DUP1").size(), 1u); // no second `filed`
    // The same id from another host is another request.
    EXPECT_TRUE(store->create(make_request("web2", "R-DUP1"), event("request.filed", "web2", "R-DUP1")).created);
}

TEST_P(StoreTest, create_refuses_a_request_that_is_not_new) {
    Request r = make_request("web1", "R-BAD1");
    r.status = Status::approved;
    try {
        store->create(r, event("request.filed"));
        FAIL() << "expected Error(bad_input)";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::bad_input);
    }
    EXPECT_FALSE(store->find("web1", "R-BAD1"));
}

TEST_P(StoreTest, find_unknown_returns_nullopt) {
    EXPECT_FALSE(store->find("web1", "R-NONE"));
    create("R-ONE1");
    EXPECT_FALSE(store->find("web2", "R-ONE1"));
}

TEST_P(StoreTest, pending_lists_oldest_first_and_only_pending) {
    create("R-C30", 30);
    create("R-C10", 10);
    create("R-C20", 20);
    create("R-C05", 5);
    ASSERT_TRUE(store->finish("web1", "R-C05", Status::denied, "bob", "no", 40, event("request.denied")));
    const auto all = store->pending(10);
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].id, "R-C10");
    EXPECT_EQ(all[1].id, "R-C20");
    EXPECT_EQ(all[2].id, "R-C30");
    const auto two = store->pending(2);
    ASSERT_EQ(two.size(), 2u);
    EXPECT_EQ(two[1].id, "R-C20");
}

TEST_P(StoreTest, approve_one_of_two_is_added) {
    create("R-TWO1", 1000, 2000, 2);
    RecordingSigner signer;
    const auto result =
        store->approve("web1", "R-TWO1", approval("bob"), 1100, signer.signer(), event("request.approval"));
    EXPECT_EQ(result.outcome, ApproveOutcome::added);
    EXPECT_EQ(signer.calls, 0);
    EXPECT_EQ(result.request.status, Status::pending);
    ASSERT_EQ(result.request.approvals.size(), 1u);
    const auto found = store->find("web1", "R-TWO1");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->status, Status::pending);
    ASSERT_EQ(found->approvals.size(), 1u);
    const Approval& a = found->approvals[0];
    EXPECT_EQ(a.approver, "bob");
    EXPECT_EQ(a.identity, "https://idp/ bob");
    EXPECT_EQ(a.comment, "ok by bob");
    EXPECT_EQ(a.source_address, "10.0.0.9");
    EXPECT_EQ(a.via, "web");
    EXPECT_EQ(a.at, 1100);
    EXPECT_EQ(store->events("web1", "R-TWO1").size(),
              1u); // `filed` recorded with host and id; the test's approval event has none
}

TEST_P(StoreTest, the_same_approver_twice_is_already_approved) {
    create("R-TWICE", 1000, 2000, 2);
    RecordingSigner signer;
    EXPECT_EQ(store->approve("web1", "R-TWICE", approval("bob"), 1100, signer.signer(), event("a", "web1", "R-TWICE"))
                  .outcome,
              ApproveOutcome::added);
    const auto again =
        store->approve("web1", "R-TWICE", approval("bob", 1200), 1200, signer.signer(), event("a", "web1", "R-TWICE"));
    EXPECT_EQ(again.outcome, ApproveOutcome::already_approved);
    EXPECT_EQ(signer.calls, 0);
    EXPECT_EQ(again.request.approvals.size(), 1u);
    EXPECT_EQ(store->find("web1", "R-TWICE")->approvals.size(), 1u);
    EXPECT_EQ(store->events("web1", "R-TWICE").size(), 2u); // filed + the first approval only
}

TEST_P(StoreTest, the_second_approver_completes_with_a_grant_the_signer_saw_both) {
    create("R-DONE", 1000, 2000, 2);
    RecordingSigner signer;
    store->approve("web1", "R-DONE", approval("bob"), 1100, signer.signer(), event("a"));
    const auto result = store->approve("web1", "R-DONE", approval("carol", 1150), 1150, signer.signer(), event("a"));
    EXPECT_EQ(result.outcome, ApproveOutcome::approved);
    EXPECT_EQ(signer.calls, 1);
    EXPECT_EQ(signer.approvers_seen, (std::vector<std::string>{"bob", "carol"}));
    EXPECT_EQ(signer.status_seen, Status::approved);
    EXPECT_EQ(result.request.grant, "jws.R-DONE.1");
    const auto found = store->find("web1", "R-DONE");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->status, Status::approved);
    EXPECT_EQ(found->grant, "jws.R-DONE.1");
    EXPECT_EQ(found->grant_id, "jti-R-DONE");
    EXPECT_EQ(found->decided_at, 1150);
    ASSERT_EQ(found->approvals.size(), 2u);
    EXPECT_EQ(found->approvals[0].approver, "bob");
    EXPECT_EQ(found->approvals[1].approver, "carol");
    EXPECT_TRUE(store->pending(10).empty());
    // Complete: a third approver changes nothing.
    EXPECT_EQ(store->approve("web1", "R-DONE", approval("dave"), 1160, no_signer(), event("a")).outcome,
              ApproveOutcome::not_pending);
}

// The grant's event is written by the transaction that stores the grant: it exists exactly
// when the approval that completed the request committed (a crash between the commit and a
// separate record() once left a signed grant without its event).
TEST_P(StoreTest, grant_signed_is_recorded_in_the_transaction_of_the_completing_approval) {
    create("R-GEV", 1000, 2000, 2);
    RecordingSigner signer;
    const auto count_signed = [&] {
        int n = 0;
        for (const Event& e : store->events("web1", "R-GEV")) n += e.type == "grant.signed" ? 1 : 0;
        return n;
    };
    ASSERT_EQ(
        store->approve("web1", "R-GEV", approval("bob"), 1100, signer.signer(), event("a", "web1", "R-GEV")).outcome,
        ApproveOutcome::added);
    EXPECT_EQ(count_signed(), 0) << "an approval that did not complete the request signed nothing";

    // The completing approval's transaction fails after the signer ran (its own event cannot be
    // stored: invalid UTF-8): nothing of it stays, neither the grant nor its event.
    Event unstorable = event("a", "web1", "R-GEV");
    unstorable.detail = "{\"x\":\"\xff\"}";
    EXPECT_THROW(store->approve("web1", "R-GEV", approval("carol", 1150), 1150, signer.signer(), unstorable), Error);
    EXPECT_EQ(signer.calls, 1);
    EXPECT_EQ(store->find("web1", "R-GEV")->status, Status::pending);
    EXPECT_EQ(count_signed(), 0) << "a grant event without its grant";

    // A grant event that cannot be stored undoes the grant: the two commit together or not at all.
    const Signer bad_event = [](const Request& r) {
        return SignedGrant{"jws.bad", "jti-bad",
                           Event{r.decided_at, "grant.signed", r.host, r.id, "server", "", "", "{\"x\":\"\xff\"}"}};
    };
    EXPECT_THROW(store->approve("web1", "R-GEV", approval("carol", 1150), 1150, bad_event, event("a", "web1", "R-GEV")),
                 Error);
    auto found = store->find("web1", "R-GEV");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->status, Status::pending) << "a grant was stored without its event";
    EXPECT_TRUE(found->grant.empty());
    EXPECT_EQ(found->approvals.size(), 1u);

    // The completing approval commits: its grant and exactly one grant.signed with it.
    const auto done =
        store->approve("web1", "R-GEV", approval("carol", 1160), 1160, signer.signer(), event("a", "web1", "R-GEV"));
    ASSERT_EQ(done.outcome, ApproveOutcome::approved);
    const auto events = store->events("web1", "R-GEV");
    ASSERT_EQ(count_signed(), 1);
    const Event& last = events.back();
    EXPECT_EQ(last.type, "grant.signed") << "recorded after the approval's own event";
    EXPECT_EQ(last.at, 1160);
    EXPECT_EQ(last.detail, R"({"grant_id":"jti-R-GEV"})");
    EXPECT_EQ(store->find("web1", "R-GEV")->grant_id, "jti-R-GEV");
    // A later approval changes nothing and signs nothing.
    EXPECT_EQ(store->approve("web1", "R-GEV", approval("dave"), 1170, no_signer(), event("a")).outcome,
              ApproveOutcome::not_pending);
    EXPECT_EQ(count_signed(), 1);
}

TEST_P(StoreTest, approve_after_finish_is_not_pending) {
    create("R-FIN1");
    ASSERT_TRUE(
        store->finish("web1", "R-FIN1", Status::cancelled, "host", "user gave up", 1050, event("request.cancelled")));
    const auto result =
        store->approve("web1", "R-FIN1", approval("bob"), 1100, no_signer(), event("a", "web1", "R-FIN1"));
    EXPECT_EQ(result.outcome, ApproveOutcome::not_pending);
    EXPECT_EQ(result.request.status, Status::cancelled);
    EXPECT_TRUE(store->find("web1", "R-FIN1")->approvals.empty());
    EXPECT_EQ(store->events("web1", "R-FIN1").size(), 1u);
}

TEST_P(StoreTest, approve_an_expired_request_is_not_pending) {
    create("R-EXP1", 1000, 2000);
    for (const std::int64_t now : {2000, 2500}) { // expires_at itself is already too late
        const auto result = store->approve("web1", "R-EXP1", approval("bob"), now, no_signer(), event("a"));
        EXPECT_EQ(result.outcome, ApproveOutcome::not_pending);
    }
    const auto found = store->find("web1", "R-EXP1");
    EXPECT_EQ(found->status, Status::pending);
    EXPECT_TRUE(found->approvals.empty());
}

TEST_P(StoreTest, approve_unknown_is_not_pending_with_an_empty_request) {
    const auto result = store->approve("web1", "R-NONE", approval("bob"), 1100, no_signer(), event("a"));
    EXPECT_EQ(result.outcome, ApproveOutcome::not_pending);
    EXPECT_TRUE(result.request.id.empty());
}

TEST_P(StoreTest, a_throwing_signer_changes_nothing) {
    create("R-SIGN", 1000, 2000, 1);
    const Signer failing = [](const Request&) -> SignedGrant { throw std::runtime_error("HSM unavailable"); };
    EXPECT_THROW(store->approve("web1", "R-SIGN", approval("bob"), 1100, failing, event("a", "web1", "R-SIGN")),
                 std::runtime_error);
    auto found = store->find("web1", "R-SIGN");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->status, Status::pending);
    EXPECT_TRUE(found->approvals.empty());
    EXPECT_TRUE(found->grant.empty());
    EXPECT_EQ(store->events("web1", "R-SIGN").size(), 1u);
    // Nothing is left locked: the same approval goes through once the signer works.
    RecordingSigner signer;
    EXPECT_EQ(store->approve("web1", "R-SIGN", approval("bob"), 1100, signer.signer(), event("a")).outcome,
              ApproveOutcome::approved);
}

TEST_P(StoreTest, finish_twice_the_second_is_nullopt) {
    create("R-DENY");
    const auto first = store->finish("web1", "R-DENY", Status::denied, "bob", "not now", 1200,
                                     event("request.denied", "web1", "R-DENY"));
    ASSERT_TRUE(first);
    EXPECT_EQ(first->status, Status::denied);
    EXPECT_EQ(first->decided_by, "bob");
    EXPECT_EQ(first->decision_reason, "not now");
    EXPECT_EQ(first->decided_at, 1200);
    EXPECT_FALSE(store->finish("web1", "R-DENY", Status::expired, "server", "", 1300, event("x", "web1", "R-DENY")));
    const auto found = store->find("web1", "R-DENY");
    EXPECT_EQ(found->status, Status::denied);
    EXPECT_EQ(found->decided_at, 1200);
    EXPECT_EQ(store->events("web1", "R-DENY").size(), 2u);
    EXPECT_FALSE(store->finish("web1", "R-NONE", Status::denied, "bob", "", 1200, event("x")));
}

TEST_P(StoreTest, finish_refuses_a_non_final_status) {
    create("R-NF01");
    for (const Status to : {Status::pending, Status::approved}) {
        try {
            store->finish("web1", "R-NF01", to, "bob", "", 1200, event("x"));
            FAIL() << "expected Error(bad_input)";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::bad_input);
        }
    }
    EXPECT_EQ(store->find("web1", "R-NF01")->status, Status::pending);
}

TEST_P(StoreTest, due_lists_pending_requests_past_their_expiry) {
    create("R-D100", 10, 100);
    create("R-D300", 10, 300);
    create("R-D200", 10, 200);
    create("R-D050", 10, 50);
    ASSERT_TRUE(store->finish("web1", "R-D050", Status::denied, "bob", "", 60, event("x")));
    const auto due = store->due(200, 10);
    ASSERT_EQ(due.size(), 2u);
    EXPECT_EQ(due[0], (std::pair<std::string, std::string>{"web1", "R-D100"}));
    EXPECT_EQ(due[1], (std::pair<std::string, std::string>{"web1", "R-D200"}));
    EXPECT_EQ(store->due(200, 1).size(), 1u);
    EXPECT_TRUE(store->due(99, 10).empty());
}

TEST_P(StoreTest, history_is_newest_decision_first_and_strictly_before) {
    create("R-H10");
    create("R-H30");
    create("R-H20");
    create("R-HPEND");
    ASSERT_TRUE(store->finish("web1", "R-H10", Status::denied, "bob", "", 1010, event("x")));
    ASSERT_TRUE(store->finish("web1", "R-H30", Status::expired, "server", "", 1030, event("x")));
    RecordingSigner signer;
    ASSERT_EQ(store->approve("web1", "R-H20", approval("bob"), 1020, signer.signer(), event("x")).outcome,
              ApproveOutcome::approved);
    const auto all = store->history(5000, 10);
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].id, "R-H30");
    EXPECT_EQ(all[1].id, "R-H20");
    EXPECT_EQ(all[1].approvals.size(), 1u);
    EXPECT_EQ(all[2].id, "R-H10");
    const auto page = store->history(1030, 1);
    ASSERT_EQ(page.size(), 1u);
    EXPECT_EQ(page[0].id, "R-H20");
}

// The bug: purge also deleted decided requests (the approval record auditors need). It now
// deletes only what expires by itself: sessions, sign-ins and delivered notices.
TEST_P(StoreTest, purge_keeps_every_request_and_event_and_deletes_expired_sessions_logins_and_old_notices) {
    create("R-OLD", 10, 2000, 2);
    create("R-NEW");
    create("R-PEND");
    RecordingSigner signer;
    store->approve("web1", "R-OLD", approval("bob"), 20, signer.signer(), event("x"));
    ASSERT_TRUE(store->finish("web1", "R-OLD", Status::denied, "carol", "", 30, event("x")));
    ASSERT_TRUE(store->finish("web1", "R-NEW", Status::denied, "carol", "", 500, event("x")));
    store->put_session(Session{"tok-old", "i", "bob", "Bob", {}, "csrf", 0, 50});
    store->put_session(Session{"tok-new", "i", "bob", "Bob", {}, "csrf", 0, 5000});
    store->put_login(LoginState{"state-old", "n", "v", "/", 50}, 0, k_no_sign_in_cap);
    store->put_login(LoginState{"state-new", "n", "v", "/", 5000}, 0, k_no_sign_in_cap);
    store->enqueue("hook", "delivered-old", 10);
    store->enqueue("hook", "delivered-new", 90);
    store->enqueue("hook", "pending-old", 10);
    store->enqueue("hook", "dropped-old", 10);
    const auto claimed = store->claim_notices(95, 10, 30);
    ASSERT_EQ(claimed.size(), 4u);
    for (const Notice& n : claimed) {
        if (n.body == "delivered-old" || n.body == "delivered-new") store->notice_delivered(n.id);
        if (n.body == "pending-old") store->notice_failed(n.id, 10, "try again");
        if (n.body == "dropped-old") store->notice_dropped(n.id, "gave up");
    }
    const std::size_t events_before = store->events("web1", "R-OLD").size();

    const Store::Purged purged = store->purge(100, 50);
    EXPECT_EQ(purged.sessions, 1u);
    EXPECT_EQ(purged.logins, 1u);
    EXPECT_EQ(purged.notices, 1u);
    const auto old = store->find("web1", "R-OLD");
    ASSERT_TRUE(old); // decided long ago, kept with its approval and events
    EXPECT_EQ(old->approvals.size(), 1u);
    EXPECT_EQ(store->events("web1", "R-OLD").size(), events_before);
    EXPECT_TRUE(store->find("web1", "R-NEW"));
    EXPECT_TRUE(store->find("web1", "R-PEND"));
    EXPECT_EQ(store->history(1000, 10).size(), 2u);
    EXPECT_FALSE(store->find_session("tok-old", 0));
    EXPECT_TRUE(store->find_session("tok-new", 0));
    EXPECT_EQ(store->count_logins(0), 1u);
    EXPECT_TRUE(store->take_login("state-new", 0));
    // The pending notice is still delivered later; the dropped one stays as evidence (it is
    // not claimed again either way); the newer delivered one is kept until its time.
    const auto left = store->claim_notices(2000, 10, 30);
    ASSERT_EQ(left.size(), 1u);
    EXPECT_EQ(left[0].body, "pending-old");
    EXPECT_EQ(store->purge(100, 50).notices, 0u);
    EXPECT_EQ(store->purge(100, 100).notices, 1u);
}

TEST_P(StoreTest, purge_from_two_connections_at_once_both_return) {
    for (int i = 0; i < 200; ++i)
        store->put_session(Session{"tok-" + std::to_string(i), "i", "bob", "Bob", {}, "csrf", 0, 50});
    auto second = database().open();
    std::atomic<std::size_t> total{0};
    std::thread other([&] {
        for (int i = 0; i < 20; ++i) total += second->purge(100, 100).sessions;
    });
    for (int i = 0; i < 20; ++i) total += store->purge(100, 100).sessions;
    other.join();
    EXPECT_EQ(total.load(), 200u);
    EXPECT_EQ(store->purge(100, 100).sessions, 0u);
}

TEST_P(StoreTest, count_logins_counts_only_unexpired_ones) {
    EXPECT_EQ(store->count_logins(100), 0u);
    store->put_login(LoginState{"a", "n", "v", "/", 50}, 0, k_no_sign_in_cap);
    store->put_login(LoginState{"b", "n", "v", "/", 150}, 0, k_no_sign_in_cap);
    store->put_login(LoginState{"c", "n", "v", "/", 250}, 0, k_no_sign_in_cap);
    EXPECT_EQ(store->count_logins(100), 2u);
    EXPECT_EQ(store->count_logins(150), 1u);
    ASSERT_TRUE(store->take_login("c", 100));
    EXPECT_EQ(store->count_logins(100), 1u);
}

TEST_P(StoreTest, delete_sessions_of_ends_every_session_of_one_user) {
    store->put_session(Session{"t1", "i", "bob", "Bob", {}, "csrf", 0, 500});
    store->put_session(Session{"t2", "i", "bob", "Bob", {}, "csrf", 0, 500});
    store->put_session(Session{"t3", "i", "carol", "Carol", {}, "csrf", 0, 500});
    EXPECT_EQ(store->delete_sessions_of("bob"), 2u);
    EXPECT_FALSE(store->find_session("t1", 0));
    EXPECT_FALSE(store->find_session("t2", 0));
    EXPECT_TRUE(store->find_session("t3", 0));
    EXPECT_EQ(store->delete_sessions_of("bob"), 0u);
}

// web.max_sign_ins_in_progress: at the cap a new sign-in evicts the oldest outstanding ones
// (earliest expiry) instead of being refused, in the same transaction.
TEST_P(StoreTest, put_login_at_the_cap_evicts_the_oldest_sign_ins) {
    EXPECT_EQ(store->put_login(LoginState{"expired", "n", "v", "/", 90}, 100, 3), 0u);
    EXPECT_EQ(store->put_login(LoginState{"a", "n", "v", "/", 700}, 100, 3), 0u);
    EXPECT_EQ(store->put_login(LoginState{"b", "n", "v", "/", 701}, 101, 3), 0u);
    EXPECT_EQ(store->put_login(LoginState{"c", "n", "v", "/", 702}, 102, 3), 0u) << "an expired row does not count";
    EXPECT_EQ(store->count_logins(102), 3u);
    EXPECT_EQ(store->put_login(LoginState{"d", "n", "v", "/", 703}, 103, 3), 1u);
    EXPECT_EQ(store->count_logins(103), 3u);
    EXPECT_FALSE(store->take_login("a", 103)) << "the oldest sign-in is the one evicted";
    EXPECT_TRUE(store->take_login("b", 103));
    // A smaller cap (a configuration change) evicts down to it at once.
    EXPECT_EQ(store->put_login(LoginState{"e", "n", "v", "/", 704}, 104, 1), 2u);
    EXPECT_EQ(store->count_logins(104), 1u);
    EXPECT_TRUE(store->take_login("e", 104));
}

// Two replicas starting sign-ins at once never leave more than the cap outstanding: the count,
// the eviction and the insert are one serialised transaction.
TEST_P(StoreTest, put_login_cap_holds_across_replicas_starting_at_once) {
    constexpr std::size_t cap = 5;
    std::vector<std::thread> replicas;
    std::atomic<int> failures{0};
    for (int r = 0; r < 2; ++r)
        replicas.emplace_back([&, r] {
            try {
                const auto replica = database().open();
                for (int i = 0; i < 60; ++i)
                    replica->put_login(
                        LoginState{"r" + std::to_string(r) + "-" + std::to_string(i), "n", "v", "/", 1000 + i}, 100,
                        cap);
            } catch (...) {
                ++failures;
            }
        });
    for (auto& t : replicas) t.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(store->count_logins(100), cap);
}

TEST_P(StoreTest, delete_sessions_of_with_its_audit_event_is_one_transaction) {
    store->put_session(Session{"t1", "i", "bob", "Bob", {}, "csrf", 0, 500});
    store->put_session(Session{"t2", "i", "bob", "Bob", {}, "csrf", 0, 500});
    const auto audit = [](std::size_t n) {
        return Event{7, "sessions.revoked", "", "", "admin:root", "", "", R"({"sessions":)" + std::to_string(n) + "}"};
    };
    // A failure while recording the event leaves the sessions in place.
    EXPECT_THROW(store->delete_sessions_of("bob", [](std::size_t) -> Event { throw std::runtime_error("audit"); }),
                 std::runtime_error);
    EXPECT_TRUE(store->find_session("t1", 0));
    EXPECT_TRUE(store->find_session("t2", 0));
    EXPECT_TRUE(store->events("", "").empty());
    EXPECT_EQ(store->delete_sessions_of("bob", audit), 2u);
    EXPECT_FALSE(store->find_session("t1", 0));
    auto events = store->events("", "");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].detail, R"({"sessions":2})");
    // Nothing deleted, nothing recorded.
    EXPECT_EQ(store->delete_sessions_of("bob", audit), 0u);
    EXPECT_EQ(store->delete_sessions_of("Bob", audit), 0u);
    EXPECT_EQ(store->events("", "").size(), 1u);
}

TEST_P(StoreTest, pending_after_pages_in_keyset_order) {
    create("R-1", 1000);
    create("R-2", 1000);
    create("R-3", 900);
    create("R-4", 1100);
    const auto first = store->pending(2);
    ASSERT_EQ(first.size(), 2u);
    EXPECT_EQ(first[0].id, "R-3");
    EXPECT_EQ(first[1].id, "R-1");
    const auto next = store->pending_after({first[1].created_at, first[1].host, first[1].id}, 10);
    ASSERT_EQ(next.size(), 2u);
    EXPECT_EQ(next[0].id, "R-2");
    EXPECT_EQ(next[1].id, "R-4");
    EXPECT_TRUE(store->pending_after({1100, "web1", "R-4"}, 10).empty());
    // A place by time and how many of that second were seen, naming no request.
    const auto from = store->pending_from(1000, 1, 10);
    ASSERT_EQ(from.size(), 2u);
    EXPECT_EQ(from[0].id, "R-2");
    EXPECT_EQ(from[1].id, "R-4");
    ASSERT_EQ(store->pending_from(0, 0, 10).size(), 4u);
    EXPECT_EQ(store->pending_from(1000, 0, 1)[0].id, "R-1");
    EXPECT_TRUE(store->pending_from(1101, 0, 10).empty());
}

TEST_P(StoreTest, sessions_put_find_expire_delete) {
    const Session s{"ab12", "https://idp/ sub-1", "bob", "Bob B.", {"sox-approvers", "ops"}, "csrf-1", 100, 200};
    store->put_session(s);
    const auto found = store->find_session("ab12", 150);
    ASSERT_TRUE(found);
    EXPECT_EQ(found->identity, s.identity);
    EXPECT_EQ(found->unix_user, "bob");
    EXPECT_EQ(found->display_name, "Bob B.");
    EXPECT_EQ(found->groups, s.groups);
    EXPECT_EQ(found->csrf_token, "csrf-1");
    EXPECT_EQ(found->created_at, 100);
    EXPECT_EQ(found->expires_at, 200);
    EXPECT_FALSE(store->find_session("ab12", 200));
    EXPECT_FALSE(store->find_session("other", 150));
    Session renewed = s;
    renewed.csrf_token = "csrf-2";
    renewed.expires_at = 400;
    store->put_session(renewed);
    EXPECT_EQ(store->find_session("ab12", 300)->csrf_token, "csrf-2");
    store->delete_session("ab12");
    EXPECT_FALSE(store->find_session("ab12", 150));
}

TEST_P(StoreTest, take_login_is_one_use_and_expired_is_nullopt) {
    store->put_login(LoginState{"st-1", "nonce-1", "verifier-1", "/requests/web1/R-1", 500}, 0, k_no_sign_in_cap);
    const auto taken = store->take_login("st-1", 400);
    ASSERT_TRUE(taken);
    EXPECT_EQ(taken->nonce, "nonce-1");
    EXPECT_EQ(taken->code_verifier, "verifier-1");
    EXPECT_EQ(taken->return_to, "/requests/web1/R-1");
    EXPECT_EQ(taken->expires_at, 500);
    EXPECT_FALSE(store->take_login("st-1", 400));
    store->put_login(LoginState{"st-2", "n", "v", "/", 500}, 0, k_no_sign_in_cap);
    EXPECT_FALSE(store->take_login("st-2", 500));
    EXPECT_FALSE(store->take_login("st-2", 100)); // an expired one is gone, not kept for later
    EXPECT_FALSE(store->take_login("unknown", 100));
}

TEST_P(StoreTest, outbox_claim_lease_delivered_failed_dropped) {
    store->enqueue("slack", "first", 100);
    store->enqueue("hook", "second", 100);
    store->enqueue("hook", "later", 900);
    EXPECT_TRUE(store->claim_notices(99, 10, 30).empty());
    auto claimed = store->claim_notices(100, 10, 30);
    ASSERT_EQ(claimed.size(), 2u);
    EXPECT_EQ(claimed[0].target, "slack");
    EXPECT_EQ(claimed[0].body, "first");
    EXPECT_EQ(claimed[0].attempts, 1);
    EXPECT_EQ(claimed[1].body, "second");
    EXPECT_TRUE(store->claim_notices(129, 10, 30).empty()); // leased
    claimed = store->claim_notices(130, 1, 30);             // the lease ran out (a notifier died)
    ASSERT_EQ(claimed.size(), 1u);
    EXPECT_EQ(claimed[0].body, "first");
    EXPECT_EQ(claimed[0].attempts, 2);
    const std::int64_t first = claimed[0].id;
    claimed = store->claim_notices(130, 10, 30);
    ASSERT_EQ(claimed.size(), 1u);
    const std::int64_t second = claimed[0].id;
    store->notice_delivered(first);
    store->notice_failed(second, 500, "HTTP 503");
    EXPECT_TRUE(store->claim_notices(499, 10, 30).empty());
    claimed = store->claim_notices(500, 10, 30);
    ASSERT_EQ(claimed.size(), 1u);
    EXPECT_EQ(claimed[0].id, second);
    EXPECT_EQ(claimed[0].last_error, "HTTP 503");
    EXPECT_EQ(claimed[0].attempts, 3);
    store->notice_dropped(second, "gave up after 3 attempts");
    claimed = store->claim_notices(100000, 10, 30);
    ASSERT_EQ(claimed.size(), 1u); // only "later": delivered and dropped are never claimed again
    EXPECT_EQ(claimed[0].body, "later");
    EXPECT_THROW(store->claim_notices(100000, 10, 0), Error);
}

TEST_P(StoreTest, text_with_nul_or_invalid_utf8_is_bad_input) {
    create("R-TXT1", 1000, 2000, 2);
    Approval bad = approval("bob");
    bad.comment = std::string("a\0b", 3);
    for (const std::string& comment : {std::string("a\0b", 3), std::string("\xff\xfe")}) {
        bad.comment = comment;
        try {
            store->approve("web1", "R-TXT1", bad, 1100, no_signer(), event("x"));
            FAIL() << "expected Error(bad_input)";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::bad_input);
        }
    }
    EXPECT_TRUE(store->find("web1", "R-TXT1")->approvals.empty());
}

TEST_P(StoreTest, set_ticket_check_is_stored) {
    create("R-TIX1");
    store->set_ticket_check("web1", "R-TIX1", R"({"ok":true})");
    EXPECT_EQ(store->find("web1", "R-TIX1")->ticket_check, R"({"ok":true})");
}

TEST_P(StoreTest, migrate_again_is_a_no_op_returning_the_current_version) {
    EXPECT_EQ(database().migrate(), k_schema_version);
    EXPECT_TRUE(database().open());
}

TEST_P(StoreTest, a_newer_schema_is_refused_by_open_and_migrate) {
    store.reset();
    database().pretend_newer_schema();
    for (int i = 0; i < 2; ++i) {
        try {
            if (i == 0)
                database().open();
            else
                database().migrate();
            FAIL() << "expected Error(bad_input)";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::bad_input);
            EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("jitgate-server migrate"), std::string::npos) << e.what();
        }
    }
}

// Two connections (two replicas, or the loop and notifier threads) approve the same request,
// which needs one approval, at the same moment: exactly one completes it.
TEST_P(StoreTest, racing_approvers_complete_a_request_exactly_once) {
    auto other = database().open();
    constexpr int k_rounds = 200;
    std::atomic<int> grants{0};
    const Signer signer = [&](const Request& r) {
        grants++;
        return SignedGrant{"jws." + r.id + "." + r.approvals.back().approver, "jti-" + r.id, Event{}};
    };
    for (int round = 0; round < k_rounds; ++round) {
        const std::string id = "R-RACE" + std::to_string(round);
        create(id, 1000, 2000, 1);
        std::atomic<int> ready{0};
        ApproveResult results[2];
        auto run = [&](int side, Store& s, const char* who) {
            ready++;
            while (ready.load() < 2) std::this_thread::yield();
            results[side] = s.approve("web1", id, approval(who), 1100, signer, event("request.approval", "web1", id));
        };
        std::thread a(run, 0, std::ref(*store), "bob");
        std::thread b(run, 1, std::ref(*other), "carol");
        a.join();
        b.join();
        const int approved =
            (results[0].outcome == ApproveOutcome::approved) + (results[1].outcome == ApproveOutcome::approved);
        ASSERT_EQ(approved, 1) << id;
        const int loser = results[0].outcome == ApproveOutcome::approved ? 1 : 0;
        EXPECT_EQ(results[loser].outcome, ApproveOutcome::not_pending) << id;
        const auto found = store->find("web1", id);
        ASSERT_EQ(found->approvals.size(), 1u) << id;
        EXPECT_EQ(found->grant, results[1 - loser].request.grant) << id;
    }
    EXPECT_EQ(grants.load(), k_rounds); // never two grants for one request
}

TEST_P(StoreTest, concurrent_migrations_on_a_fresh_database_both_succeed) {
    Database fresh(GetParam());
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 3; ++i)
        threads.emplace_back([&] {
            try {
                const int before = fresh.migrate();
                if (before == 0 || before == k_schema_version) ok++;
            } catch (const std::exception& e) {
                ADD_FAILURE() << e.what();
            }
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok.load(), 3);
    EXPECT_TRUE(fresh.open());
}

// --- the hosts' audit events (docs/audit.md §5) ---

std::vector<std::string> types_of(const std::vector<Event>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e.type);
    return out;
}

TEST_P(StoreTest, ingest_stores_each_line_as_sent_and_keeps_the_chain_state) {
    HostChain chain("fin-db-01");
    const std::vector<AuditEvent> batch{chain.next("access.requested", "R-Z4H8TFAMCE"), chain.next(), chain.next()};
    EXPECT_FALSE(store->audit_chain("fin-db-01"));
    const IngestResult r = store->ingest("fin-db-01", batch, 5000);
    ASSERT_TRUE(r.stored);
    EXPECT_EQ(r.added, 3u);
    EXPECT_EQ(r.duplicates, 0u);
    EXPECT_EQ(types_of(r.chain_events), std::vector<std::string>{"audit.chain_started"});
    const auto state = store->audit_chain("fin-db-01");
    ASSERT_TRUE(state);
    EXPECT_EQ(state->last_seq, 3);
    EXPECT_EQ(state->last_hash, chain.hash());
    EXPECT_EQ(state->last_event_id, batch[2].event_id);
    EXPECT_FALSE(state->broken);
    EXPECT_EQ(state->problem, "");
    EXPECT_EQ(state->last_seen, 5000);
    EXPECT_EQ(state->events, 3);
    const auto stored = store->audit_events("fin-db-01", 1, 100, 100);
    ASSERT_EQ(stored.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(stored[i].line, batch[i].line);
        EXPECT_EQ(stored[i].event_id, batch[i].event_id);
        EXPECT_EQ(stored[i].seq, batch[i].seq);
        EXPECT_EQ(stored[i].hash, batch[i].hash);
        EXPECT_EQ(stored[i].prev_hash, batch[i].prev_hash);
        EXPECT_EQ(stored[i].user, "alice");
        EXPECT_EQ(stored[i].type, batch[i].type);
    }
    EXPECT_EQ(stored[0].request_id, "R-Z4H8TFAMCE");
    EXPECT_FALSE(store->audit_chain("other-host"));
    EXPECT_TRUE(store->audit_events("other-host", 1, 100, 100).empty());
    const auto started = store->events("fin-db-01", "R-Z4H8TFAMCE");
    ASSERT_EQ(started.size(), 1u);
    EXPECT_EQ(started[0].type, "audit.chain_started");
}

// Regression (review): a batch stored by a replica whose clock is behind (or after the clock
// stepped back) was dated before the host's previous batch, so a host's chain could be split
// out of order across two months, which retention exports and prunes by received time. A
// batch is never received before the host's last one.
TEST_P(StoreTest, a_batch_is_never_received_before_the_hosts_last_one) {
    HostChain chain("fin-db-01");
    ASSERT_TRUE(store->ingest("fin-db-01", {chain.next()}, 5000).stored);
    ASSERT_TRUE(store->ingest("fin-db-01", {chain.next(), chain.next()}, 4000).stored);
    ASSERT_TRUE(store->ingest("fin-db-01", {chain.next()}, 6000).stored);
    HostChain other("web-01");
    ASSERT_TRUE(store->ingest("web-01", {other.next()}, 4500).stored) << "another host's own clock order";
    AuditSearch s;
    s.limit = 100;
    s.oldest_first = true;
    std::vector<std::int64_t> received;
    for (const StoredAuditEvent& e : store->search_audit_events(s)) received.push_back(e.received_at);
    EXPECT_EQ(received, (std::vector<std::int64_t>{5000, 5000, 5000, 6000, 4500}));
    EXPECT_EQ(store->audit_chain("fin-db-01")->last_seen, 6000);
}

TEST_P(StoreTest, ingest_deduplicates_by_host_and_event_id) {
    HostChain chain("fin-db-01");
    const std::vector<AuditEvent> first{chain.next(), chain.next(), chain.next()};
    ASSERT_TRUE(store->ingest("fin-db-01", first, 5000).stored);
    // The same batch again (its acknowledgement was lost): stored, nothing new.
    const IngestResult again = store->ingest("fin-db-01", first, 5001);
    ASSERT_TRUE(again.stored);
    EXPECT_EQ(again.added, 0u);
    EXPECT_EQ(again.duplicates, 3u);
    EXPECT_TRUE(again.chain_events.empty());
    // An overlapping batch: two old, one new, which continues the chain.
    const std::vector<AuditEvent> overlap{first[1], first[2], chain.next()};
    const IngestResult r = store->ingest("fin-db-01", overlap, 5002);
    ASSERT_TRUE(r.stored);
    EXPECT_EQ(r.added, 1u);
    EXPECT_EQ(r.duplicates, 2u);
    EXPECT_TRUE(r.chain_events.empty());
    EXPECT_EQ(store->audit_events("fin-db-01", 1, 100, 100).size(), 4u);
    const auto state = store->audit_chain("fin-db-01");
    EXPECT_EQ(state->last_seq, 4);
    EXPECT_EQ(state->events, 4);
    EXPECT_FALSE(state->broken);
    // The same event_id from another host is another event.
    AuditEvent same_id = HostChain("web-02").next();
    same_id.event_id = first[0].event_id;
    EXPECT_EQ(store->ingest("web-02", {same_id}, 5003).added, 1u);
}

TEST_P(StoreTest, a_duplicate_with_other_bytes_refuses_the_whole_batch) {
    HostChain chain("fin-db-01");
    const std::vector<AuditEvent> first{chain.next(), chain.next()};
    ASSERT_TRUE(store->ingest("fin-db-01", first, 5000).stored);
    const AuditEvent third = chain.next();
    AuditEvent changed = first[1];
    changed.line.insert(changed.line.size() - 1, R"(,"x":1)");
    const IngestResult r = store->ingest("fin-db-01", {third, changed}, 5001);
    EXPECT_FALSE(r.stored);
    EXPECT_EQ(r.conflict_event_id, first[1].event_id);
    EXPECT_EQ(r.added, 0u);
    // Nothing of the batch: not the new third event, and the chain state is as it was.
    EXPECT_EQ(store->audit_events("fin-db-01", 1, 100, 100).size(), 2u);
    const auto state = store->audit_chain("fin-db-01");
    EXPECT_EQ(state->last_seq, 2);
    EXPECT_EQ(state->last_hash, first[1].hash);
    EXPECT_EQ(state->last_seen, 5000);
    EXPECT_FALSE(state->broken);
}

// Regression: a 409 (an event sent again edited) refused the batch but left the chain "ok". The
// caller marks it broken in a transaction of its own, after the refused batch.
TEST_P(StoreTest, mark_chain_broken_after_an_edited_event_keeps_the_first_problem_and_records_the_event) {
    HostChain chain("fin-db-01");
    const std::vector<AuditEvent> first{chain.next(), chain.next()};
    ASSERT_TRUE(store->ingest("fin-db-01", first, 5000).stored);
    AuditEvent changed = first[1];
    changed.line.insert(changed.line.size() - 1, R"(,"x":1)");
    ASSERT_FALSE(store->ingest("fin-db-01", {changed}, 5001).stored);
    Event edited;
    edited.at = 5001;
    edited.type = "audit.chain_edited";
    edited.host = "fin-db-01";
    edited.request_id = "R-EDITED0001";
    edited.actor = "host:fin-db-01";
    const std::string problem = "event " + first[1].event_id + " (seq 2) came again with other content (edited)";
    const auto after = store->mark_chain_broken("fin-db-01", problem, 2, 5001, edited);
    ASSERT_TRUE(after);
    EXPECT_TRUE(after->broken);
    auto state = store->audit_chain("fin-db-01");
    ASSERT_TRUE(state);
    EXPECT_TRUE(state->broken);
    EXPECT_EQ(state->problem, problem);
    EXPECT_EQ(state->problem_seq, 2);
    EXPECT_EQ(state->problem_at, 5001);
    EXPECT_EQ(state->last_seq, 2); // the chain itself did not move
    EXPECT_EQ(state->last_hash, first[1].hash);
    EXPECT_EQ(types_of(store->events("fin-db-01", "R-EDITED0001")), std::vector<std::string>{"audit.chain_edited"});
    // A later problem is recorded, but the first one stays the chain's problem.
    edited.at = 5002;
    ASSERT_TRUE(store->mark_chain_broken("fin-db-01", "another", 1, 5002, edited));
    state = store->audit_chain("fin-db-01");
    EXPECT_EQ(state->problem, problem);
    EXPECT_EQ(state->problem_at, 5001);
    EXPECT_EQ(store->events("fin-db-01", "R-EDITED0001").size(), 2u);
    // A host without events: nothing to mark, the event is still recorded.
    edited.host = "web-02";
    EXPECT_FALSE(store->mark_chain_broken("web-02", problem, 2, 5003, edited));
    EXPECT_FALSE(store->audit_chain("web-02"));
    EXPECT_EQ(store->events("web-02", "R-EDITED0001").size(), 1u);
    EXPECT_THROW(store->mark_chain_broken("", problem, 2, 5003, edited), Error);
    EXPECT_THROW(store->mark_chain_broken("fin-db-01", "", 2, 5003, edited), Error);
}

TEST_P(StoreTest, a_seq_gap_is_stored_and_breaks_the_chain_with_its_first_problem) {
    HostChain chain("fin-db-01");
    ASSERT_TRUE(store->ingest("fin-db-01", {chain.next(), chain.next()}, 5000).stored);
    // Events 3 and 4 never arrive (cut from the spool); 5 and 6 do.
    const AuditEvent e5 = chain.make(5, std::string(64, 'a'));
    const AuditEvent e6 = chain.next();
    const IngestResult r = store->ingest("fin-db-01", {e5, e6}, 5001);
    ASSERT_TRUE(r.stored);
    EXPECT_EQ(r.added, 2u);
    EXPECT_EQ(types_of(r.chain_events), std::vector<std::string>{"audit.chain_gap"});
    EXPECT_NE(r.chain_events[0].detail.find(R"("missing":2)"), std::string::npos) << r.chain_events[0].detail;
    const auto state = store->audit_chain("fin-db-01");
    EXPECT_TRUE(state->broken);
    EXPECT_EQ(state->problem, "gap: seq 5 follows 2 (2 events missing)");
    EXPECT_EQ(state->problem_seq, 5);
    EXPECT_EQ(state->problem_at, 5001);
    EXPECT_EQ(state->last_seq, 6);
    EXPECT_EQ(state->last_hash, e6.hash);
    EXPECT_EQ(store->audit_events("fin-db-01", 1, 100, 100).size(), 4u);
    // The server's own record of it, in the events table.
    const auto recorded = store->events("fin-db-01", "");
    ASSERT_EQ(types_of(recorded), (std::vector<std::string>{"audit.chain_started", "audit.chain_gap"}));
    EXPECT_EQ(recorded[1].actor, "host:fin-db-01");
    // A later event that follows is fine; the first problem stays.
    const IngestResult later = store->ingest("fin-db-01", {chain.next()}, 5002);
    EXPECT_TRUE(later.chain_events.empty());
    EXPECT_EQ(store->audit_chain("fin-db-01")->problem, "gap: seq 5 follows 2 (2 events missing)");
}

TEST_P(StoreTest, a_fork_is_stored_and_breaks_the_chain) {
    HostChain chain("fin-db-01");
    const std::vector<AuditEvent> first{chain.next(), chain.next()};
    ASSERT_TRUE(store->ingest("fin-db-01", first, 5000).stored);
    // seq 3 whose prev_hash is not the stored hash of seq 2 (seq 2 was rewritten on the host).
    const AuditEvent forked = chain.make(3, std::string(64, 'b'));
    const IngestResult r = store->ingest("fin-db-01", {forked}, 5001);
    ASSERT_TRUE(r.stored);
    EXPECT_EQ(types_of(r.chain_events), std::vector<std::string>{"audit.chain_fork"});
    auto state = store->audit_chain("fin-db-01");
    EXPECT_TRUE(state->broken);
    EXPECT_EQ(state->problem.rfind("fork at seq 3: its prev_hash is not the hash of seq 2", 0), 0u) << state->problem;
    EXPECT_EQ(state->last_seq, 3);
    // seq 2 again under a new event_id (a rolled-back spool): stored, a fork again, first problem kept.
    const AuditEvent again = chain.make(2, first[0].hash, "command.finished", "", "mallory");
    const IngestResult r2 = store->ingest("fin-db-01", {again}, 5002);
    ASSERT_TRUE(r2.stored);
    EXPECT_EQ(r2.added, 1u);
    EXPECT_EQ(types_of(r2.chain_events), std::vector<std::string>{"audit.chain_fork"});
    EXPECT_NE(r2.chain_events[0].detail.find("arrives again with a new event_id"), std::string::npos);
    state = store->audit_chain("fin-db-01");
    EXPECT_EQ(state->problem_seq, 3);
    EXPECT_EQ(state->last_seq, 2);
    EXPECT_EQ(state->last_hash, again.hash);
    EXPECT_EQ(store->audit_events("fin-db-01", 2, 2, 100).size(), 2u); // both seq 2 events are kept
}

TEST_P(StoreTest, a_new_chain_at_seq_1_is_recorded_not_a_break) {
    HostChain chain("fin-db-01");
    ASSERT_TRUE(store->ingest("fin-db-01", {chain.next(), chain.next(), chain.next()}, 5000).stored);
    EXPECT_EQ(store->audit_chain("fin-db-01")->restarts, 0);
    const std::string hash_3 = chain.hash();
    chain.reset(); // the spool was archived and started again (docs/audit.md "Starting a new chain")
    const IngestResult r = store->ingest("fin-db-01", {chain.next(), chain.next()}, 5001);
    ASSERT_TRUE(r.stored);
    EXPECT_EQ(r.added, 2u);
    EXPECT_EQ(types_of(r.chain_events), std::vector<std::string>{"audit.chain_restarted"});
    EXPECT_NE(r.chain_events[0].detail.find(R"("previous_last_seq":3)"), std::string::npos);
    const auto state = store->audit_chain("fin-db-01");
    EXPECT_FALSE(state->broken);
    EXPECT_EQ(state->last_seq, 2);
    EXPECT_EQ(state->last_hash, chain.hash());
    EXPECT_EQ(state->events, 5);
    EXPECT_EQ(store->audit_events("fin-db-01", 1, 1, 100).size(), 2u); // both chains' seq 1
    // Regression: a restart was recorded as an event only; the chain's state shows it now
    // (GET /v1/audit/state): how many, and the last one's time and the chain it ended.
    EXPECT_EQ(state->restarts, 1);
    EXPECT_EQ(state->restart_at, 5001);
    EXPECT_EQ(state->restart_previous_seq, 3);
    EXPECT_EQ(state->restart_previous_hash, hash_3);
    EXPECT_NE(r.chain_events[0].detail.find("a new chain at seq 1 after seq 3"), std::string::npos);
    const std::string hash_2 = chain.hash();
    chain.reset();
    ASSERT_TRUE(store->ingest("fin-db-01", {chain.next()}, 5002).stored);
    const auto again = store->audit_chain("fin-db-01");
    EXPECT_EQ(again->restarts, 2);
    EXPECT_EQ(again->restart_at, 5002);
    EXPECT_EQ(again->restart_previous_seq, 2);
    EXPECT_EQ(again->restart_previous_hash, hash_2);
}

TEST_P(StoreTest, an_event_after_seq_int64_max_is_a_fork_not_an_overflowed_gap) {
    // A hostile host starts its record at the largest seq the store takes; whatever it sends
    // next is a (host, seq) at or below the last one: a fork, counted without overflow.
    HostChain chain("fin-db-01");
    const AuditEvent top = chain.make(std::numeric_limits<std::int64_t>::max(), std::string(64, 'c'));
    ASSERT_TRUE(store->ingest("fin-db-01", {top}, 5000).stored);
    const AuditEvent low = chain.make(5, std::string(64, 'd'));
    const IngestResult r = store->ingest("fin-db-01", {low}, 5001);
    ASSERT_TRUE(r.stored);
    EXPECT_EQ(types_of(r.chain_events), std::vector<std::string>{"audit.chain_fork"});
    ASSERT_EQ(r.chain_events.size(), 1u);
    EXPECT_EQ(r.chain_events[0].detail.find("expected_seq"), std::string::npos) << r.chain_events[0].detail;
    const auto state = store->audit_chain("fin-db-01");
    EXPECT_TRUE(state->broken);
    EXPECT_EQ(state->problem.rfind("fork: seq 5 arrives again with a new event_id after seq 9223372036854775807", 0),
              0u)
        << state->problem;
}

TEST_P(StoreTest, a_hosts_first_event_past_seq_1_starts_its_record_there) {
    HostChain chain("fin-db-01");
    const AuditEvent e = chain.make(41, std::string(64, 'c'));
    const IngestResult r = store->ingest("fin-db-01", {e, chain.next()}, 5000);
    ASSERT_TRUE(r.stored);
    EXPECT_EQ(types_of(r.chain_events), std::vector<std::string>{"audit.chain_started"});
    EXPECT_FALSE(store->audit_chain("fin-db-01")->broken);
    EXPECT_EQ(store->audit_chain("fin-db-01")->last_seq, 42);
}

TEST_P(StoreTest, ingest_refuses_an_unchecked_batch) {
    EXPECT_THROW(store->ingest("fin-db-01", {}, 5000), Error);
    AuditEvent bad = HostChain("fin-db-01").next();
    bad.hash = "nothex";
    EXPECT_THROW(store->ingest("fin-db-01", {bad}, 5000), Error);
    EXPECT_THROW(store->ingest("", {HostChain("x").next()}, 5000), Error);
    EXPECT_FALSE(store->audit_chain("fin-db-01"));
}

// Text neither database can hold is bad input, and nothing of its batch is stored (on
// PostgreSQL the batch travels as one JSON parameter, checked field by field first).
TEST_P(StoreTest, ingest_refuses_nul_or_invalid_utf8_and_stores_nothing_of_the_batch) {
    HostChain chain("fin-db-01");
    const AuditEvent good = chain.next();
    AuditEvent nul = chain.next();
    nul.line.insert(nul.line.size() - 1, std::string(",\"x\":\"a\0b\"", 11));
    AuditEvent bad_utf8 = chain.next();
    bad_utf8.user = "\xC3\x28";
    for (const AuditEvent& bad : {nul, bad_utf8}) {
        try {
            store->ingest("fin-db-01", {good, bad}, 5000);
            ADD_FAILURE() << "ingest took " << bad.event_id;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::bad_input) << e.what();
        }
    }
    EXPECT_TRUE(store->audit_events("fin-db-01", 1, 100, 100).empty());
    EXPECT_FALSE(store->audit_chain("fin-db-01"));
}

// One event twice in one batch: the second is a duplicate; the same event_id with other bytes
// refuses the batch, as against a stored event.
TEST_P(StoreTest, ingest_deduplicates_inside_one_batch) {
    HostChain chain("fin-db-01");
    const AuditEvent a = chain.next();
    const AuditEvent b = chain.next();
    AuditEvent b_changed = b;
    b_changed.line.insert(b_changed.line.size() - 1, R"(,"x":1)");
    const IngestResult refused = store->ingest("fin-db-01", {a, b, b_changed}, 5000);
    EXPECT_FALSE(refused.stored);
    EXPECT_EQ(refused.conflict_event_id, b.event_id);
    EXPECT_TRUE(store->audit_events("fin-db-01", 1, 100, 100).empty());
    const IngestResult r = store->ingest("fin-db-01", {a, b, b, a}, 5001);
    ASSERT_TRUE(r.stored);
    EXPECT_EQ(r.added, 2u);
    EXPECT_EQ(r.duplicates, 2u);
    const auto stored = store->audit_events("fin-db-01", 1, 100, 100);
    ASSERT_EQ(stored.size(), 2u);
    EXPECT_EQ(stored[0].event_id, a.event_id); // arrival order
    EXPECT_EQ(stored[1].event_id, b.event_id);
    EXPECT_EQ(store->audit_chain("fin-db-01")->last_seq, 2);
}

// Two replicas (two connections) take batches of one host at once: each event is stored
// once, and the chain state is the end of the chain.
TEST_P(StoreTest, concurrent_batches_of_one_host_store_each_event_once) {
    auto other = database().open();
    HostChain chain("fin-db-01");
    std::vector<AuditEvent> all;
    for (int i = 0; i < 200; ++i) all.push_back(chain.next());
    std::thread a([&] {
        for (std::size_t i = 0; i < all.size(); i += 10)
            store->ingest("fin-db-01", std::vector<AuditEvent>(all.begin() + i, all.begin() + i + 10), 5000);
    });
    std::thread b([&] {
        for (std::size_t i = 0; i < all.size(); i += 10)
            other->ingest("fin-db-01", std::vector<AuditEvent>(all.begin() + i, all.begin() + i + 10), 5000);
    });
    a.join();
    b.join();
    EXPECT_EQ(store->audit_events("fin-db-01", 1, 1000, 1000).size(), 200u);
    const auto state = store->audit_chain("fin-db-01");
    EXPECT_EQ(state->last_seq, 200);
    EXPECT_EQ(state->events, 200);
    EXPECT_FALSE(state->broken) << state->problem;
}

// A database of schema version 1 (the approval service alone) is upgraded in place: what it
// held stays, and the audit store works.
TEST_P(StoreTest, migrate_upgrades_a_version_1_database_in_place) {
    Database old(GetParam());
    EXPECT_EQ(old.migrate_up_to(1), 0);
    EXPECT_THROW(old.open(), Error); // older than this program: migrate first
    old.exec("INSERT INTO events (at, type, host, request_id) VALUES (1234, 'server.started', 'h1', 'R-OLD1')");
    EXPECT_EQ(old.migrate(), 1);
    auto upgraded = old.open();
    const auto kept = upgraded->events("h1", "R-OLD1");
    ASSERT_EQ(kept.size(), 1u);
    EXPECT_EQ(kept[0].at, 1234);
    HostChain chain("fin-db-01");
    EXPECT_TRUE(upgraded->ingest("fin-db-01", {chain.next()}, 5000).stored);
    EXPECT_EQ(old.migrate(), k_schema_version);
}

// --- break-glass reviews ---

Event reviewed_event(const std::string& host, const std::string& event_id, const std::string& reviewer) {
    return Event{7000,     "break_glass.reviewed",     host,       "",
                 reviewer, "https://idp/ " + reviewer, "10.0.0.9", R"({"event_id":")" + event_id + R"("})"};
}

std::vector<Event> events_of_type(Store& store, const std::string& host, const std::string& type) {
    std::vector<Event> out;
    for (auto& e : store.events(host, ""))
        if (e.type == type) out.push_back(e);
    return out;
}

TEST_P(StoreTest, a_break_glass_event_opens_one_review_even_when_its_batch_is_resent) {
    HostChain chain("fin-db-01");
    const std::vector<AuditEvent> batch{chain.next_by("access.requested", "alice"),
                                        chain.next_by("access.break_glass", "dave"),
                                        chain.next_by("command.finished", "dave")};
    const IngestResult first = store->ingest("fin-db-01", batch, 5000, IngestOptions{3600});
    ASSERT_TRUE(first.stored);
    EXPECT_EQ(first.reviews_opened, 1u);
    // The acknowledgement was lost: the same batch again, later, opens nothing and moves nothing.
    const IngestResult again = store->ingest("fin-db-01", batch, 6000, IngestOptions{60});
    ASSERT_TRUE(again.stored);
    EXPECT_EQ(again.reviews_opened, 0u);
    const auto open = store->break_glass_reviews(ReviewList::open, std::nullopt, 100);
    ASSERT_EQ(open.size(), 1u);
    EXPECT_EQ(open[0].host, "fin-db-01");
    EXPECT_EQ(open[0].event_id, batch[1].event_id);
    EXPECT_EQ(open[0].user_name, "dave");
    EXPECT_EQ(open[0].time, "2026-11-24T03:05:56.548Z");
    EXPECT_EQ(open[0].opened_at, 5000);
    EXPECT_EQ(open[0].due_at, 8600);
    EXPECT_FALSE(open[0].closed);
    EXPECT_EQ(open[0].overdue_alerted_at, 0);
    EXPECT_TRUE(store->break_glass_reviews(ReviewList::closed, std::nullopt, 100).empty());
    const auto found = store->find_break_glass_review("fin-db-01", batch[1].event_id);
    ASSERT_TRUE(found);
    EXPECT_EQ(found->due_at, 8600);
    EXPECT_FALSE(store->find_break_glass_review("fin-db-01", batch[2].event_id));
    EXPECT_FALSE(store->find_break_glass_review("other", batch[1].event_id));
}

TEST_P(StoreTest, a_refused_batch_opens_no_review) {
    HostChain chain("fin-db-01");
    const AuditEvent first = chain.next();
    ASSERT_TRUE(store->ingest("fin-db-01", {first}, 5000).stored);
    AuditEvent changed = first;
    changed.line += " ";
    const IngestResult refused =
        store->ingest("fin-db-01", {chain.next_by("access.break_glass", "dave"), changed}, 5001);
    EXPECT_FALSE(refused.stored);
    EXPECT_TRUE(store->break_glass_reviews(ReviewList::open, std::nullopt, 100).empty());
    EXPECT_THROW(store->ingest("fin-db-01", {chain.next()}, 5002, IngestOptions{0}), Error);
}

TEST_P(StoreTest, a_review_closes_once_with_its_event_in_the_same_transaction) {
    HostChain chain("fin-db-01");
    const AuditEvent glass = chain.next_by("access.break_glass", "dave");
    ASSERT_TRUE(store->ingest("fin-db-01", {glass}, 5000).stored);
    EXPECT_THROW(store->close_break_glass_review("fin-db-01", glass.event_id, "bob", "idp bob", "", 7000,
                                                 reviewed_event("fin-db-01", glass.event_id, "bob")),
                 Error);
    const CloseResult closed = store->close_break_glass_review("fin-db-01", glass.event_id, "bob", "https://idp/ bob",
                                                               "checked: restarted payments only", 7000,
                                                               reviewed_event("fin-db-01", glass.event_id, "bob"));
    EXPECT_EQ(closed.outcome, CloseOutcome::closed);
    EXPECT_TRUE(closed.review.closed);
    EXPECT_EQ(closed.review.reviewer, "bob");
    EXPECT_EQ(closed.review.reviewer_identity, "https://idp/ bob");
    EXPECT_EQ(closed.review.note, "checked: restarted payments only");
    EXPECT_EQ(closed.review.closed_at, 7000);
    ASSERT_EQ(events_of_type(*store, "fin-db-01", "break_glass.reviewed").size(), 1u);

    const CloseResult again =
        store->close_break_glass_review("fin-db-01", glass.event_id, "carol", "idp carol", "me too", 7100,
                                        reviewed_event("fin-db-01", glass.event_id, "carol"));
    EXPECT_EQ(again.outcome, CloseOutcome::already_closed);
    EXPECT_EQ(again.review.reviewer, "bob");
    EXPECT_EQ(events_of_type(*store, "fin-db-01", "break_glass.reviewed").size(), 1u) << "no event for a refusal";
    EXPECT_EQ(store->find_break_glass_review("fin-db-01", glass.event_id)->note, "checked: restarted payments only");

    const CloseResult unknown = store->close_break_glass_review("fin-db-01", "no-such-event", "bob", "idp bob", "x",
                                                                7000, reviewed_event("fin-db-01", "x", "bob"));
    EXPECT_EQ(unknown.outcome, CloseOutcome::not_found);
    EXPECT_TRUE(store->break_glass_reviews(ReviewList::open, std::nullopt, 10).empty());
    EXPECT_EQ(store->break_glass_reviews(ReviewList::closed, std::nullopt, 10).size(), 1u);
}

TEST_P(StoreTest, nobody_closes_the_review_of_their_own_break_glass_use) {
    HostChain chain("fin-db-01");
    // `su root` by erin from dave's session: the user is root, the requester erin, the login dave.
    const AuditEvent glass =
        chain.next_by("access.break_glass", "root", {{"login_user", "dave"}, {"requester", "erin"}});
    ASSERT_TRUE(store->ingest("fin-db-01", {glass}, 5000).stored);
    for (const std::string self : {"root", "dave", "erin"}) {
        const CloseResult refused =
            store->close_break_glass_review("fin-db-01", glass.event_id, self, "idp " + self, "all fine", 7000,
                                            reviewed_event("fin-db-01", glass.event_id, self));
        EXPECT_EQ(refused.outcome, CloseOutcome::own_use) << self;
        EXPECT_FALSE(refused.review.closed);
    }
    EXPECT_TRUE(events_of_type(*store, "fin-db-01", "break_glass.reviewed").empty());
    EXPECT_FALSE(store->find_break_glass_review("fin-db-01", glass.event_id)->closed);
    EXPECT_EQ(store
                  ->close_break_glass_review("fin-db-01", glass.event_id, "bob", "idp bob", "ok", 7000,
                                             reviewed_event("fin-db-01", glass.event_id, "bob"))
                  .outcome,
              CloseOutcome::closed);
}

TEST_P(StoreTest, an_overdue_review_is_claimed_once_and_a_closed_one_never) {
    HostChain chain("fin-db-01");
    const std::vector<AuditEvent> batch{chain.next_by("access.break_glass", "dave"),
                                        chain.next_by("access.break_glass", "erin"),
                                        chain.next_by("access.break_glass", "frank")};
    ASSERT_TRUE(store->ingest("fin-db-01", batch, 5000, IngestOptions{3600}).stored);
    ASSERT_EQ(store
                  ->close_break_glass_review("fin-db-01", batch[2].event_id, "bob", "idp bob", "ok", 6000,
                                             reviewed_event("fin-db-01", batch[2].event_id, "bob"))
                  .outcome,
              CloseOutcome::closed);
    int audited = 0;
    const auto audit = [&](const BreakGlassReview& r) {
        ++audited;
        return Event{r.overdue_alerted_at,
                     "break_glass.review_overdue",
                     r.host,
                     "",
                     "server",
                     "",
                     "",
                     R"({"event_id":")" + r.event_id + R"("})"};
    };
    EXPECT_TRUE(store->claim_overdue_break_glass_reviews(8599, 100, audit).empty()) << "not due yet";
    const auto claimed = store->claim_overdue_break_glass_reviews(8600, 100, audit);
    ASSERT_EQ(claimed.size(), 2u);
    EXPECT_EQ(claimed[0].user_name, "dave");
    EXPECT_EQ(claimed[1].user_name, "erin");
    EXPECT_EQ(claimed[0].overdue_alerted_at, 8600);
    EXPECT_EQ(audited, 2);
    EXPECT_EQ(events_of_type(*store, "fin-db-01", "break_glass.review_overdue").size(), 2u);
    EXPECT_TRUE(store->claim_overdue_break_glass_reviews(9000, 100, audit).empty()) << "each alerts once";
    EXPECT_EQ(store->find_break_glass_review("fin-db-01", batch[0].event_id)->overdue_alerted_at, 8600);
    // An overdue item is still open, and can still be closed.
    EXPECT_EQ(store->break_glass_reviews(ReviewList::open, std::nullopt, 10).size(), 2u);
    // A throwing audit claims nothing.
    ASSERT_TRUE(
        store->ingest("fin-db-01", {chain.next_by("access.break_glass", "gus")}, 9000, IngestOptions{10}).stored);
    EXPECT_THROW(store->claim_overdue_break_glass_reviews(
                     9100, 100, [](const BreakGlassReview&) -> Event { throw std::runtime_error("syslog down"); }),
                 std::runtime_error);
    EXPECT_EQ(store->claim_overdue_break_glass_reviews(9100, 100, audit).size(), 1u);
}

TEST_P(StoreTest, overdue_reviews_are_claimed_once_across_replicas) {
    HostChain chain("fin-db-01");
    std::vector<AuditEvent> batch;
    for (int i = 0; i < 60; ++i) batch.push_back(chain.next_by("access.break_glass", "u" + std::to_string(i)));
    ASSERT_TRUE(store->ingest("fin-db-01", batch, 5000, IngestOptions{100}).stored);
    auto other = database().open();
    std::atomic<int> total{0};
    const auto audit = [](const BreakGlassReview& r) {
        return Event{r.overdue_alerted_at, "break_glass.review_overdue", r.host, "", "server", "", "", "{}"};
    };
    const auto run = [&](Store& s) {
        for (int round = 0; round < 20; ++round)
            total += static_cast<int>(s.claim_overdue_break_glass_reviews(6000, 7, audit).size());
    };
    std::thread a([&] { run(*store); });
    std::thread b([&] { run(*other); });
    a.join();
    b.join();
    EXPECT_EQ(total.load(), 60);
    EXPECT_EQ(events_of_type(*store, "fin-db-01", "break_glass.review_overdue").size(), 60u);
}

TEST_P(StoreTest, review_lists_page_by_key) {
    HostChain a("a-host");
    HostChain b("b-host");
    ASSERT_TRUE(store->ingest("b-host", {b.next_by("access.break_glass", "x")}, 5000, IngestOptions{100}).stored);
    ASSERT_TRUE(store->ingest("a-host", {a.next_by("access.break_glass", "y")}, 5000, IngestOptions{100}).stored);
    ASSERT_TRUE(store->ingest("a-host", {a.next_by("access.break_glass", "z")}, 4000, IngestOptions{100}).stored);
    const auto first = store->break_glass_reviews(ReviewList::open, std::nullopt, 2);
    ASSERT_EQ(first.size(), 2u);
    EXPECT_EQ(first[0].user_name, "z"); // due 4100
    EXPECT_EQ(first[1].host, "a-host"); // due 5100, a- before b-
    const auto rest =
        store->break_glass_reviews(ReviewList::open, ReviewKey{first[1].due_at, first[1].host, first[1].event_id}, 2);
    ASSERT_EQ(rest.size(), 1u);
    EXPECT_EQ(rest[0].host, "b-host");
    for (const auto& r : {first[0], first[1], rest[0]})
        ASSERT_EQ(store
                      ->close_break_glass_review(r.host, r.event_id, "bob", "idp", "ok",
                                                 r.user_name == "x" ? 9000 : 8000,
                                                 reviewed_event(r.host, r.event_id, "bob"))
                      .outcome,
                  CloseOutcome::closed);
    const auto closed = store->break_glass_reviews(ReviewList::closed, std::nullopt, 2);
    ASSERT_EQ(closed.size(), 2u);
    EXPECT_EQ(closed[0].user_name, "x"); // closed last
    EXPECT_EQ(closed[1].host, "a-host");
    const auto older = store->break_glass_reviews(
        ReviewList::closed, ReviewKey{closed[1].closed_at, closed[1].host, closed[1].event_id}, 2);
    ASSERT_EQ(older.size(), 1u);
    EXPECT_EQ(older[0].closed_at, 8000);
    EXPECT_NE(older[0].event_id, closed[1].event_id);
}

TEST_P(StoreTest, search_audit_events_filters_and_pages_both_ways) {
    HostChain chain("fin-db-01");
    HostChain web("web-01");
    const std::vector<AuditEvent> fin{
        chain.next_by("access.break_glass", "dave", {{"time", "2026-11-24T01:00:00.000Z"}}),
        chain.next_by("command.finished", "dave", {{"time", "2026-11-24T02:00:00.000Z"}}),
        chain.next_by("command.finished", "alice", {{"time", "2026-11-24T03:00:00.000Z"}}),
        chain.next_by("command.finished", "dave", {{"time", "2026-11-25T01:00:00.000Z"}})};
    ASSERT_TRUE(store->ingest("fin-db-01", fin, 5000).stored);
    ASSERT_TRUE(store->ingest("web-01", {web.next_by("command.finished", "dave")}, 5001).stored);

    AuditSearch s;
    s.limit = 100;
    EXPECT_EQ(store->search_audit_events(s).size(), 5u);
    s.host = "fin-db-01";
    s.user = "dave";
    const auto dave = store->search_audit_events(s);
    ASSERT_EQ(dave.size(), 3u);
    EXPECT_EQ(dave[0].event.event_id, fin[3].event_id) << "newest first";
    EXPECT_EQ(dave[0].host, "fin-db-01");
    EXPECT_EQ(dave[0].received_at, 5000);
    EXPECT_EQ(dave[0].event.line, fin[3].line);
    const auto found = store->find_audit_event("fin-db-01", fin[1].event_id);
    ASSERT_TRUE(found);
    EXPECT_EQ(found->event.line, fin[1].line);
    EXPECT_EQ(found->event.user, "dave");
    EXPECT_EQ(found->row, dave[1].row);
    EXPECT_FALSE(store->find_audit_event("web-01", fin[1].event_id));
    s.type = "command.finished";
    s.from = "2026-11-24";
    s.to = "2026-11-25";
    const auto day = store->search_audit_events(s);
    ASSERT_EQ(day.size(), 1u);
    EXPECT_EQ(day[0].event.event_id, fin[1].event_id);

    AuditSearch paged;
    paged.host = "fin-db-01";
    paged.oldest_first = true;
    paged.limit = 3;
    const auto page1 = store->search_audit_events(paged);
    ASSERT_EQ(page1.size(), 3u);
    EXPECT_EQ(page1[0].event.event_id, fin[0].event_id);
    paged.after = page1.back().row;
    const auto page2 = store->search_audit_events(paged);
    ASSERT_EQ(page2.size(), 1u);
    EXPECT_EQ(page2[0].event.event_id, fin[3].event_id);
    AuditSearch back;
    back.host = "fin-db-01";
    back.limit = 2;
    back.after = page2[0].row;
    const auto older = store->search_audit_events(back);
    ASSERT_EQ(older.size(), 2u);
    EXPECT_EQ(older[0].event.event_id, fin[2].event_id);
    EXPECT_EQ(older[1].event.event_id, fin[1].event_id);
}

// Every combination of the five filters, in both orders, paged two rows at a time, returns
// exactly the rows a plain filter over everything stored returns (the SQLite statement is put
// together per combination).
TEST_P(StoreTest, search_audit_events_every_filter_combination_pages_to_the_right_rows) {
    struct Spec {
        const char* host;
        const char* type;
        const char* user;
        const char* time;
    };
    const std::vector<Spec> specs{
        {"fin-db-01", "access.break_glass", "dave", "2026-11-24T01:00:00.000Z"},
        {"web-01", "command.finished", "dave", "2026-11-24T02:00:00.000Z"},
        {"fin-db-01", "command.finished", "alice", "2026-11-24T03:00:00.000Z"},
        {"fin-db-01", "command.finished", "dave", "2026-11-24T09:00:00.000Z"},
        {"web-01", "access.break_glass", "alice", "2026-11-24T10:00:00.000Z"},
        {"fin-db-01", "command.finished", "", "2026-11-24T11:00:00.000Z"},
        {"web-01", "command.finished", "dave", "2026-11-25T01:00:00.000Z"},
        {"fin-db-01", "access.break_glass", "dave", "2026-11-25T02:00:00.000Z"},
    };
    std::map<std::string, HostChain> chains;
    std::vector<std::pair<Spec, std::string>> stored; // in arrival order, with the event id
    for (const Spec& spec : specs) {
        auto [it, added] = chains.try_emplace(spec.host, spec.host);
        const AuditEvent e = it->second.next_by(spec.type, spec.user, {{"time", spec.time}});
        ASSERT_TRUE(store->ingest(spec.host, {e}, 5000).stored);
        stored.emplace_back(spec, e.event_id);
    }
    for (int mask = 0; mask < 32; ++mask) {
        for (const bool oldest_first : {true, false}) {
            AuditSearch s;
            if (mask & 1) s.host = "fin-db-01";
            if (mask & 2) s.user = "dave";
            if (mask & 4) s.type = "command.finished";
            if (mask & 8) s.from = "2026-11-24T02:00:00.000Z";
            if (mask & 16) s.to = "2026-11-25T01:00:00.000Z";
            s.oldest_first = oldest_first;
            s.limit = 2;
            std::vector<std::string> want;
            for (const auto& [spec, id] : stored)
                if ((s.host.empty() || s.host == spec.host) && (s.user.empty() || s.user == spec.user) &&
                    (s.type.empty() || s.type == spec.type) && (s.from.empty() || spec.time >= s.from) &&
                    (s.to.empty() || spec.time < s.to))
                    want.push_back(id);
            if (!oldest_first) std::reverse(want.begin(), want.end());
            std::vector<std::string> got;
            for (int pages = 0; pages < 10; ++pages) {
                const auto page = store->search_audit_events(s);
                for (const StoredAuditEvent& e : page) got.push_back(e.event.event_id);
                if (page.size() < s.limit) break;
                s.after = page.back().row;
            }
            EXPECT_EQ(got, want) << "filters " << mask << (oldest_first ? " oldest first" : " newest first");
        }
    }
}

TEST_P(StoreTest, audit_hosts_lists_each_hosts_chain_and_open_reviews) {
    HostChain a("a-host");
    HostChain b("b-host");
    ASSERT_TRUE(store->ingest("b-host", {b.next(), b.next_by("access.break_glass", "x")}, 5000).stored);
    ASSERT_TRUE(store->ingest("a-host", {a.next()}, 5001).stored);
    const auto hosts = store->audit_hosts("", 10);
    ASSERT_EQ(hosts.size(), 2u);
    EXPECT_EQ(hosts[0].chain.host, "a-host");
    EXPECT_EQ(hosts[0].open_reviews, 0);
    EXPECT_EQ(hosts[0].chain.last_seen, 5001);
    EXPECT_EQ(hosts[1].chain.host, "b-host");
    EXPECT_EQ(hosts[1].chain.events, 2);
    EXPECT_EQ(hosts[1].chain.last_seq, 2);
    EXPECT_EQ(hosts[1].open_reviews, 1);
    EXPECT_EQ(hosts[1].last_event_time, "2026-11-24T03:05:56.548Z");
    const auto after = store->audit_hosts("a-host", 10);
    ASSERT_EQ(after.size(), 1u);
    EXPECT_EQ(after[0].chain.host, "b-host");
}

// The shipper's report of its newest spool seq is kept with the batch that carried it: the
// backlog is known while the last batch reported it, unknown before any report and after a
// batch without one (never 0 for a host that did not say, never an earlier batch's figure).
TEST_P(StoreTest, ingest_keeps_the_reported_spool_seq_and_the_backlog_follows_the_last_batch) {
    HostChain h("fin-db-01");
    // A host that never reports (an older jitgated): unknown.
    IngestResult r = store->ingest("fin-db-01", {h.next(), h.next()}, 5000);
    ASSERT_TRUE(r.stored);
    EXPECT_EQ(r.chain.reported_seq, 0);
    EXPECT_EQ(r.chain.reported_at, 0);
    EXPECT_FALSE(shipping_backlog(r.chain));
    // Seq 3 stored, seq 10 in the spool: 7 not yet shipped.
    IngestOptions reported;
    reported.reported_seq = 10;
    r = store->ingest("fin-db-01", {h.next()}, 5010, reported);
    ASSERT_TRUE(r.stored);
    EXPECT_EQ(r.chain.reported_seq, 10);
    EXPECT_EQ(r.chain.reported_at, 5010);
    EXPECT_EQ(shipping_backlog(r.chain), 7);
    auto chain = store->audit_chain("fin-db-01");
    ASSERT_TRUE(chain);
    EXPECT_EQ(chain->reported_seq, 10);
    EXPECT_EQ(chain->reported_at, 5010);
    EXPECT_EQ(shipping_backlog(*chain), 7);
    const auto hosts = store->audit_hosts("", 10);
    ASSERT_EQ(hosts.size(), 1u);
    EXPECT_EQ(hosts[0].chain.reported_seq, 10);
    EXPECT_EQ(hosts[0].chain.reported_at, 5010);
    const auto chains = store->audit_chains_after("", 10);
    ASSERT_EQ(chains.size(), 1u);
    EXPECT_EQ(chains[0].reported_seq, 10);
    // A duplicate batch carries a report too.
    reported.reported_seq = 12;
    r = store->ingest("fin-db-01", {store->audit_events("fin-db-01", 3, 3, 1).at(0)}, 5020, reported);
    ASSERT_TRUE(r.stored);
    EXPECT_EQ(r.duplicates, 1u);
    EXPECT_EQ(store->audit_chain("fin-db-01")->reported_seq, 12);
    EXPECT_EQ(shipping_backlog(*store->audit_chain("fin-db-01")), 9);
    // Everything shipped: 0, known.
    std::vector<AuditEvent> rest;
    for (int i = 4; i <= 12; ++i) rest.push_back(h.next());
    r = store->ingest("fin-db-01", rest, 5030, reported);
    ASSERT_TRUE(r.stored);
    EXPECT_EQ(shipping_backlog(r.chain), 0);
    // A batch without a report: unknown again; when a batch last reported stays.
    r = store->ingest("fin-db-01", {h.next()}, 5040);
    ASSERT_TRUE(r.stored);
    EXPECT_EQ(r.chain.reported_seq, 0);
    chain = store->audit_chain("fin-db-01");
    EXPECT_EQ(chain->reported_seq, 0);
    EXPECT_EQ(chain->reported_at, 5030);
    EXPECT_EQ(chain->last_seen, 5040);
    EXPECT_FALSE(shipping_backlog(*chain));
    // A negative report is the caller's bug: nothing stored.
    reported.reported_seq = -1;
    EXPECT_THROW(store->ingest("fin-db-01", {h.next()}, 5050, reported), Error);
    EXPECT_EQ(store->audit_chain("fin-db-01")->last_seq, 13);
}

// --- grant revocations (docs/protocol.md §12) ---

Revocation revocation_by(const std::string& who, std::int64_t at = 1500, const std::string& reason = "left the team") {
    Revocation r;
    r.revoked_by = who;
    r.identity = "https://idp/ " + who;
    r.source_address = "10.0.0.9";
    r.via = "web";
    r.reason = reason;
    r.revoked_at = at;
    return r;
}

TEST_P(StoreTest, revoke_grant_stores_who_when_why_with_its_event_once) {
    create("R-REV1");
    RecordingSigner signer;
    ASSERT_EQ(store->approve("web1", "R-REV1", approval("bob"), 1100, signer.signer(), event("a")).outcome,
              ApproveOutcome::approved);
    const RevokeResult first =
        store->revoke_grant("web1", "R-REV1", revocation_by("carol"), event("grant.revoked", "web1", "R-REV1", 1500));
    ASSERT_EQ(first.outcome, RevokeOutcome::revoked);
    EXPECT_GE(first.revocation.seq, 1);
    EXPECT_EQ(first.revocation.host, "web1");
    EXPECT_EQ(first.revocation.request_id, "R-REV1");
    EXPECT_EQ(first.revocation.grant_id, "jti-R-REV1");
    EXPECT_EQ(first.revocation.revoked_by, "carol");
    EXPECT_EQ(first.revocation.identity, "https://idp/ carol");
    EXPECT_EQ(first.revocation.source_address, "10.0.0.9");
    EXPECT_EQ(first.revocation.via, "web");
    EXPECT_EQ(first.revocation.reason, "left the team");
    EXPECT_EQ(first.revocation.revoked_at, 1500);
    EXPECT_EQ(first.request.status, Status::approved);
    const auto found = store->find_revocation("web1", "R-REV1");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->seq, first.revocation.seq);
    EXPECT_EQ(found->revoked_by, "carol");

    // Idempotent: a second revocation (by anyone) changes nothing and records nothing.
    const RevokeResult second =
        store->revoke_grant("web1", "R-REV1", revocation_by("dave", 1600), event("grant.revoked", "web1", "R-REV1"));
    EXPECT_EQ(second.outcome, RevokeOutcome::already_revoked);
    EXPECT_EQ(second.revocation.revoked_by, "carol");
    EXPECT_EQ(second.revocation.seq, first.revocation.seq);
    int revoked_events = 0;
    for (const Event& e : store->events("web1", "R-REV1")) revoked_events += e.type == "grant.revoked" ? 1 : 0;
    EXPECT_EQ(revoked_events, 1);
}

TEST_P(StoreTest, revoke_grant_refuses_unknown_and_not_approved_requests) {
    EXPECT_EQ(store->revoke_grant("web1", "R-NONE", revocation_by("carol"), event("grant.revoked")).outcome,
              RevokeOutcome::not_found);
    create("R-PEND");
    create("R-DENIED");
    store->finish("web1", "R-DENIED", Status::denied, "bob", "no", 1200, event("request.denied"));
    for (const char* id : {"R-PEND", "R-DENIED"}) {
        const RevokeResult r =
            store->revoke_grant("web1", id, revocation_by("carol"), event("grant.revoked", "web1", id));
        EXPECT_EQ(r.outcome, RevokeOutcome::not_approved) << id;
        EXPECT_FALSE(store->find_revocation("web1", id)) << id;
        for (const Event& e : store->events("web1", id)) EXPECT_NE(e.type, "grant.revoked") << id;
    }
    // Another host's request of the same id is another request.
    create("R-OTHER");
    EXPECT_EQ(store->revoke_grant("web2", "R-OTHER", revocation_by("carol"), event("grant.revoked")).outcome,
              RevokeOutcome::not_found);
    EXPECT_EQ(store->last_revocation_seq({}), 0);
    try {
        store->revoke_grant("web1", "R-PEND", revocation_by(""), event("grant.revoked"));
        FAIL() << "a revocation without who was stored";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::bad_input);
    }
}

TEST_P(StoreTest, revocations_are_listed_per_host_in_seq_order_after_a_cursor) {
    RecordingSigner signer;
    const auto approved = [&](const std::string& host, const std::string& id) {
        ASSERT_TRUE(store->create(make_request(host, id), event("request.filed", host, id)).created);
        ASSERT_EQ(store->approve(host, id, approval("bob"), 1100, signer.signer(), event("a")).outcome,
                  ApproveOutcome::approved);
    };
    approved("web1", "R-A");
    approved("web2", "R-B");
    approved("web1", "R-C");
    approved("web1", "R-OLD");
    EXPECT_EQ(store->revoke_grant("web1", "R-OLD", revocation_by("carol", 100), event("x")).outcome,
              RevokeOutcome::revoked);
    EXPECT_EQ(store->revoke_grant("web1", "R-A", revocation_by("carol", 1500), event("x")).outcome,
              RevokeOutcome::revoked);
    EXPECT_EQ(store->revoke_grant("web2", "R-B", revocation_by("carol", 1501), event("x")).outcome,
              RevokeOutcome::revoked);
    EXPECT_EQ(store->revoke_grant("web1", "R-C", revocation_by("carol", 1502), event("x")).outcome,
              RevokeOutcome::revoked);

    const std::vector<std::string> web1{"web1"};
    // Only web1's, only those revoked since 1000 (R-OLD's grant cannot be live any more).
    std::vector<Revocation> rows = store->revocations_after(web1, 0, k_no_upto, 1000, 100);
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0].request_id, "R-A");
    EXPECT_EQ(rows[1].request_id, "R-C");
    EXPECT_LT(rows[0].seq, rows[1].seq);
    // After the first one's seq: the second only; a limit of one: the first only.
    rows = store->revocations_after(web1, rows[0].seq, k_no_upto, 1000, 100);
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].request_id, "R-C");
    EXPECT_TRUE(store->revocations_after(web1, rows[0].seq, k_no_upto, 1000, 100).empty());
    rows = store->revocations_after(web1, 0, k_no_upto, 1000, 1);
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].request_id, "R-A");
    // Several names (one certificate naming two hosts): merged in seq order.
    rows = store->revocations_after({"web2", "web1"}, 0, k_no_upto, 0, 100);
    ASSERT_EQ(rows.size(), 4u);
    for (std::size_t i = 1; i < rows.size(); ++i) EXPECT_LT(rows[i - 1].seq, rows[i].seq);
    EXPECT_TRUE(store->revocations_after({"web3"}, 0, k_no_upto, 0, 100).empty());
    // The newest seq: per host, and of every host.
    const std::int64_t newest_web1 = store->last_revocation_seq(web1);
    const std::int64_t newest_web2 = store->last_revocation_seq({"web2"});
    EXPECT_EQ(newest_web1, store->revocations_after(web1, 0, k_no_upto, 0, 100).back().seq);
    EXPECT_GT(newest_web1, newest_web2);
    EXPECT_EQ(store->last_revocation_seq({}), newest_web1);
    EXPECT_EQ(store->last_revocation_seq({"web3"}), 0);
    EXPECT_EQ(store->hosts_of_request("R-A", 10), web1);
    EXPECT_TRUE(store->hosts_of_request("R-NONE", 10).empty());
    // `upto` bounds the read (the newest seq read first): nothing above it, even if committed.
    rows = store->revocations_after({"web2", "web1"}, 0, newest_web2, 0, 100);
    ASSERT_FALSE(rows.empty());
    for (const Revocation& r : rows) EXPECT_LE(r.seq, newest_web2);
    EXPECT_EQ(rows.back().seq, newest_web2);
    EXPECT_TRUE(store->revocations_after(web1, newest_web1, newest_web1, 0, 100).empty());
    // The hosts with a revocation after a seq: whose parked polls to wake.
    EXPECT_EQ(store->hosts_revoked_after(0, 10), (std::vector<std::string>{"web1", "web2"}));
    EXPECT_EQ(store->hosts_revoked_after(newest_web2, 10), web1);
    EXPECT_TRUE(store->hosts_revoked_after(newest_web1, 10).empty());
    EXPECT_EQ(store->hosts_revoked_after(0, 1).size(), 1u);
}

// A database of schema version 6 keeps its approved requests through the upgrade to 7, and their
// grants can then be revoked.
TEST_P(StoreTest, migrate_to_7_keeps_approved_requests_revocable) {
    Database old(GetParam());
    EXPECT_EQ(old.migrate_up_to(6), 0);
    old.exec("INSERT INTO requests (host, id, body, requester, status, approvals_needed, created_at, expires_at, "
             "decided_at, \"grant\", grant_id) VALUES ('web1', 'R-V6', '{}', 'alice', 'approved', 1, 1000, 2000, "
             "1100, 'jws.v6', 'G-v6')");
    EXPECT_THROW(old.open(), Error); // older than this program: migrate first
    EXPECT_EQ(old.migrate(), 6);
    auto upgraded = old.open();
    EXPECT_EQ(upgraded->last_revocation_seq({}), 0);
    const RevokeResult r = upgraded->revoke_grant("web1", "R-V6", revocation_by("carol"), event("grant.revoked"));
    ASSERT_EQ(r.outcome, RevokeOutcome::revoked);
    EXPECT_EQ(r.revocation.grant_id, "G-v6");
    EXPECT_EQ(upgraded->last_revocation_seq({"web1"}), r.revocation.seq);
}

INSTANTIATE_TEST_SUITE_P(backends, StoreTest, testing::Values(Backend::sqlite, Backend::postgres), backend_name);

// --- schema refusal before migrate ---

TEST(StoreSchema, sqlite_open_without_a_database_names_migrate) {
    Database db(Backend::sqlite);
    for (int round = 0; round < 2; ++round) {
        // Round 0: no file; round 1: an empty file (another program's, or a failed start).
        if (round == 1) std::ofstream{db.path()}.close();
        try {
            open_sqlite(db.path());
            FAIL() << "expected Error(bad_input)";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::bad_input);
            EXPECT_NE(std::string(e.what()).find("jitgate-server migrate"), std::string::npos) << e.what();
        }
    }
}

TEST(StoreSchema, postgres_open_before_migrate_names_migrate) {
    Database db(Backend::postgres);
    try {
        open_postgres(db.path());
        FAIL() << "expected Error(bad_input)";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::bad_input);
        EXPECT_NE(std::string(e.what()).find("jitgate-server migrate"), std::string::npos) << e.what();
    }
}

TEST(StoreSchema, sqlite_file_is_private_and_has_no_wake_fd) {
    Database db(Backend::sqlite);
    db.migrate();
    EXPECT_EQ(fs::status(db.path()).permissions() & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
    auto store = db.open();
    EXPECT_EQ(store->wake_fd(), -1);
    EXPECT_TRUE(store->take_wakeups().empty());
}

// Frames in the database's write-ahead log and frames copied back, as PRAGMA
// wal_checkpoint(PASSIVE) reports them from a connection of the test's own (which copies too).
std::pair<int, int> checkpoint_from_outside(const std::string& path) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(PASSIVE)", -1, &stmt, nullptr), SQLITE_OK);
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_ROW);
    const std::pair<int, int> frames{sqlite3_column_int(stmt, 1), sqlite3_column_int(stmt, 2)};
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return frames;
}

// Commits enough events to pass SQLite's default auto-checkpoint (1,000 pages of log).
void write_many_events(Store& store, int count) {
    Event e;
    e.type = "test.filler";
    e.actor = "server";
    e.detail = "{\"filler\":\"" + std::string(3000, 'x') + "\"}"; // about a page each
    for (int i = 0; i < count; ++i) {
        e.at = i;
        store.record(e);
    }
}

TEST(StoreSchema, sqlite_pending_count_of_a_host_reads_its_own_index) {
    Database db(Backend::sqlite);
    db.migrate();
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db.path().c_str(), &raw), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    // The filing's count (sqlite_store.cpp create()), as SQLite plans it.
    ASSERT_EQ(sqlite3_prepare_v2(raw,
                                 "EXPLAIN QUERY PLAN SELECT count(*) FROM (SELECT 1 FROM requests WHERE host = ?1 AND "
                                 "status = 'pending' AND expires_at > ?2 LIMIT ?3)",
                                 -1, &stmt, nullptr),
              SQLITE_OK);
    std::string plan;
    while (sqlite3_step(stmt) == SQLITE_ROW) plan += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3));
    sqlite3_finalize(stmt);
    sqlite3_close(raw);
    EXPECT_NE(plan.find("requests_host_pending"), std::string::npos) << plan;
}

// The auditor's search as SQLite plans it: each filter reads its index, never the whole table
// in row order (the break-glass review page asks for host, user and an 8-hour window).
TEST(StoreSchema, sqlite_audit_search_reads_an_index_for_each_filter) {
    Database db(Backend::sqlite);
    db.migrate();
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db.path().c_str(), &raw), SQLITE_OK);
    const auto plan_of = [&](const AuditSearch& s) {
        sqlite3_stmt* stmt = nullptr;
        const std::string sql = "EXPLAIN QUERY PLAN " + sqlite_audit_search_sql(s);
        EXPECT_EQ(sqlite3_prepare_v2(raw, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
        std::string plan;
        while (sqlite3_step(stmt) == SQLITE_ROW)
            plan += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3)) + std::string("\n");
        sqlite3_finalize(stmt);
        return plan;
    };
    AuditSearch user_window;
    user_window.user = "dave";
    user_window.from = "2026-11-24T01:00:00.000Z";
    user_window.to = "2026-11-24T09:00:00.000Z";
    AuditSearch review = user_window; // web_ui.cpp's break-glass review page
    review.host = "fin-db-01";
    AuditSearch type;
    type.type = "access.break_glass";
    AuditSearch host;
    host.host = "fin-db-01";
    const std::vector<std::pair<AuditSearch, std::string>> cases{{user_window, "audit_events_user"},
                                                                 {review, "audit_events_user"},
                                                                 {type, "audit_events_type"},
                                                                 {host, "audit_events_seq"}};
    for (const auto& [search, index] : cases) {
        for (const bool oldest_first : {true, false}) {
            AuditSearch s = search;
            s.oldest_first = oldest_first;
            const std::string plan = plan_of(s);
            EXPECT_NE(plan.find("INDEX " + index), std::string::npos) << plan;
            EXPECT_EQ(plan.find("INTEGER PRIMARY KEY"), std::string::npos) << plan;
            EXPECT_EQ(plan.find("SCAN audit_events"), std::string::npos) << plan;
        }
    }
    sqlite3_close(raw);
}

TEST(StoreSchema, sqlite_commits_leave_the_log_to_the_checkpointer) {
    Database db(Backend::sqlite);
    db.migrate();
    auto store = db.open();
    write_many_events(*store, 1200);
    // No commit copied the log back (SQLite's default would have at 1,000 pages): the whole of
    // it is still there for the first checkpoint, which is the test's own here.
    const auto [frames, copied] = checkpoint_from_outside(db.path());
    EXPECT_GT(frames, 1200);
    EXPECT_EQ(copied, frames);
}

TEST(StoreSchema, sqlite_checkpointer_copies_the_log_back_off_the_writers_thread) {
    Database db(Backend::sqlite);
    db.migrate();
    auto store = db.open();
    const auto size_before = fs::file_size(db.path());
    std::mutex mutex;
    std::vector<std::string> reports;
    SqliteCheckpointer checkpointer(
        db.path(),
        [&](const std::string& what) {
            std::lock_guard lock(mutex);
            reports.push_back(what);
        },
        std::chrono::milliseconds(10));
    write_many_events(*store, 300);
    // The thread may have completed checkpoints while the events were being written; one that
    // starts after the last commit copies all of them into the main file.
    const std::uint64_t while_writing = checkpointer.completed();
    const auto copied_size = size_before + 300 * 3000;
    for (int i = 0; i < 500 && (checkpointer.completed() <= while_writing || fs::file_size(db.path()) <= copied_size);
         ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_GT(checkpointer.completed(), while_writing);
    EXPECT_GT(fs::file_size(db.path()), copied_size); // the events are in the main file
    std::lock_guard lock(mutex);
    EXPECT_TRUE(reports.empty());
}

TEST(StoreSchema, sqlite_checkpointer_reports_a_missing_database_once_and_keeps_trying) {
    const fs::path dir = fs::temp_directory_path() / ("jitgate-ckpt-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::mutex mutex;
    std::vector<std::string> reports;
    {
        SqliteCheckpointer checkpointer((dir / "missing.db").string(),
                                        [&](const std::string& what) {
                                            std::lock_guard lock(mutex);
                                            reports.push_back(what);
                                        },
                                        std::chrono::milliseconds(5));
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        EXPECT_EQ(checkpointer.completed(), 0U);
    }
    fs::remove_all(dir);
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_NE(reports[0].find("WAL checkpoint failed"), std::string::npos) << reports[0];
    EXPECT_NE(reports[0].find("missing.db"), std::string::npos) << reports[0];
}

// --- PostgreSQL only ---

TEST(StorePostgres, an_unreachable_server_is_io_and_never_shows_the_password) {
    const std::string conninfo =
        "host=127.0.0.1 port=1 dbname=nowhere user=jitgate password=S3cretPassw0rd connect_timeout=5";
    for (int i = 0; i < 2; ++i) {
        try {
            if (i == 0)
                open_postgres(conninfo);
            else
                migrate_postgres(conninfo);
            FAIL() << "expected Error(io)";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::io);
            EXPECT_EQ(std::string(e.what()).find("S3cretPassw0rd"), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("port=1"), std::string::npos) << e.what();
        }
    }
}

// Waits (poll, generous limit) until `store`'s wake_fd reports (host, id); fails if it never does.
void expect_wakeup(Store& store, const std::string& host, const std::string& id,
                   std::vector<std::pair<std::string, std::string>>* seen) {
    for (int round = 0; round < 100; ++round) {
        pollfd p{store.wake_fd(), POLLIN, 0};
        const int ready = ::poll(&p, 1, 10000);
        ASSERT_GT(ready, 0) << "no wake-up for " << host << " " << id << " within the poll timeout";
        for (auto& w : store.take_wakeups()) {
            if (seen != nullptr) seen->push_back(w);
            if (w.first == host && w.second == id) return;
        }
    }
    FAIL() << "wake-ups came, but never for " << host << " " << id;
}

TEST(StorePostgres, a_change_on_one_connection_wakes_the_other) {
    Database db(Backend::postgres);
    db.migrate();
    auto a = db.open();
    auto b = db.open();
    ASSERT_GE(b->wake_fd(), 0);
    ASSERT_GE(a->wake_fd(), 0);
    // Each test has its own schema but shares the database (and the channel) with the cases
    // running in parallel, so hosts are unique to this test.
    const std::string host = "wake-" + std::to_string(::getpid());
    a->create(make_request(host, "R-WAKE1"), event("request.filed"));
    std::vector<std::pair<std::string, std::string>> seen_by_b;
    expect_wakeup(*b, host, "R-WAKE1", &seen_by_b);
    RecordingSigner signer;
    a->approve(host, "R-WAKE1", approval("bob"), 1100, signer.signer(), event("a"));
    expect_wakeup(*b, host, "R-WAKE1", &seen_by_b);
    // b's own change reaches a, but not b itself.
    b->create(make_request(host, "R-WAKE2"), event("request.filed"));
    std::vector<std::pair<std::string, std::string>> seen_by_a;
    expect_wakeup(*a, host, "R-WAKE2", &seen_by_a);
    for (const auto& w : seen_by_a)
        EXPECT_FALSE(w.first == host && w.second == "R-WAKE1") << "a was woken by its own change";
    a->create(make_request(host, "R-WAKE3"), event("request.filed")); // a marker after b's own change
    expect_wakeup(*b, host, "R-WAKE3", &seen_by_b);
    for (const auto& w : seen_by_b) EXPECT_NE(w.second, "R-WAKE2") << "b was woken by its own change";
}

// A revocation on one replica wakes the others' revocation polls (docs/protocol.md §12).
TEST(StorePostgres, a_revocation_on_one_connection_wakes_the_other) {
    Database db(Backend::postgres);
    db.migrate();
    auto a = db.open();
    auto b = db.open();
    ASSERT_GE(b->wake_fd(), 0);
    const std::string host = "revoke-" + std::to_string(::getpid());
    a->create(make_request(host, "R-RWAKE"), event("request.filed"));
    RecordingSigner signer;
    ASSERT_EQ(a->approve(host, "R-RWAKE", approval("bob"), 1100, signer.signer(), event("a")).outcome,
              ApproveOutcome::approved);
    expect_wakeup(*b, host, "R-RWAKE", nullptr); // the approval's
    ASSERT_EQ(a->revoke_grant(host, "R-RWAKE", revocation_by("carol"), event("grant.revoked")).outcome,
              RevokeOutcome::revoked);
    expect_wakeup(*b, host, "R-RWAKE", nullptr);
    const auto rows = b->revocations_after({host}, 0, k_no_upto, 0, 10);
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].revoked_by, "carol");
}

TEST(StorePostgres, a_dropped_connection_is_reconnected_once) {
    Database db(Backend::postgres);
    db.migrate();
    auto store = db.open();
    store->create(make_request("web1", "R-RECON"), event("request.filed"));
    const int fd_before = store->wake_fd();
    ASSERT_GE(fd_before, 0);
    ASSERT_GE(db.terminate_connections(), 2); // the store's and its listener's
    // The next call finds its connection gone, reconnects, and answers.
    const auto found = store->find("web1", "R-RECON");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->id, "R-RECON");
    // The listener reports the loss as ("", "") and listens again on a new connection.
    bool lost_reported = false;
    for (int round = 0; round < 50 && !lost_reported; ++round) {
        pollfd p{store->wake_fd(), POLLIN, 0};
        ASSERT_GT(::poll(&p, 1, 10000), 0) << "the broken listener never became readable";
        for (const auto& w : store->take_wakeups())
            if (w.first.empty() && w.second.empty()) lost_reported = true;
    }
    EXPECT_TRUE(lost_reported);
    auto other = db.open();
    other->finish("web1", "R-RECON", Status::denied, "bob", "", 1200, event("x"));
    expect_wakeup(*store, "web1", "R-RECON", nullptr);
}

} // namespace
