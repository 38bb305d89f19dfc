// Unit tests of the registry of waiting requests (daemon/policy/requests.hpp): its indexes
// (deadlines, per-requester counts) follow every add and remove.
#include <gtest/gtest.h>

#include "daemon/policy/requests.hpp"

namespace {

using namespace jitgate;
using broker::Clock;

broker::Request request(std::string id, std::int64_t uid, Clock::time_point deadline) {
    broker::Request q;
    q.id = std::move(id);
    q.session->request.uid = uid;
    q.deadline = deadline;
    return q;
}

TEST(Requests, IndexesFollowAddAndRemove) {
    broker::Requests r;
    const auto t0 = Clock::now();
    EXPECT_FALSE(r.next_deadline().has_value());
    r.add(request("R-2", 1000, t0 + std::chrono::seconds(20)));
    r.add(request("R-1", 1000, t0 + std::chrono::seconds(10)));
    r.add(request("R-3", 1001, t0 + std::chrono::seconds(30)));
    EXPECT_EQ(r.size(), 3u);
    EXPECT_EQ(r.count_for(1000), 2u);
    EXPECT_EQ(r.count_for(1001), 1u);
    EXPECT_EQ(r.count_for(42), 0u);
    ASSERT_TRUE(r.next_deadline().has_value());
    EXPECT_EQ(*r.next_deadline(), t0 + std::chrono::seconds(10));
    EXPECT_EQ(r.expired(t0 + std::chrono::seconds(25)), (std::vector<std::string>{"R-1", "R-2"}));
    EXPECT_EQ(r.size(), 3u) << "expired() only lists";

    r.remove("R-1");
    r.remove("R-unknown");
    EXPECT_FALSE(r.contains("R-1"));
    EXPECT_EQ(r.count_for(1000), 1u);
    EXPECT_EQ(*r.next_deadline(), t0 + std::chrono::seconds(20));
    r.remove("R-2");
    r.remove("R-3");
    EXPECT_TRUE(r.empty());
    EXPECT_EQ(r.count_for(1000), 0u);
    EXPECT_FALSE(r.next_deadline().has_value());
}

TEST(Requests, CountedByTheRequesterNotTheTargetAccount) {
    broker::Requests r;
    auto q = request("R-1", 0, Clock::now()); // su root: the account is root ...
    q.session->requester.uid = 1000;          // ... the person asking is uid 1000
    r.add(std::move(q));
    EXPECT_EQ(r.count_for(0), 0u);
    EXPECT_EQ(r.count_for(1000), 1u);
}

TEST(Requests, ADuplicateIdKeepsTheFiledRequest) {
    broker::Requests r;
    const auto t0 = Clock::now();
    r.add(request("R-1", 1000, t0));
    auto& kept = r.add(request("R-1", 2000, t0 + std::chrono::seconds(5)));
    EXPECT_EQ(kept.session->request.uid, 1000);
    EXPECT_EQ(r.size(), 1u);
    EXPECT_EQ(r.count_for(2000), 0u);
    EXPECT_EQ(r.expired(t0 + std::chrono::hours(1)).size(), 1u);
}

} // namespace
