// Unit tests of the local approval backend (daemon/approval/local.hpp): approvers decide on
// this host with jitgatectl, and nothing is sent anywhere.
#include <gtest/gtest.h>

#include "daemon/approval/local.hpp"

namespace {

using namespace jitgate;

TEST(LocalBackend, DecidesOnThisHostAndSendsNothing) {
    approval::LocalBackend b;
    EXPECT_TRUE(b.allows_local_decisions());
    EXPECT_EQ(b.fd(), -1);
    EXPECT_EQ(b.how_to_approve("R-ABC"), "an approver runs: jitgatectl approve R-ABC");
    EXPECT_EQ(b.waiting_hint("R-ABC"), "An approver runs: jitgatectl approve R-ABC");
    broker::Request q;
    q.id = "R-ABC";
    b.prepare(q);
    EXPECT_TRUE(q.nonce.empty());
    EXPECT_TRUE(q.cmd_sha256.empty());
    nlohmann::json event = nlohmann::json::object();
    b.describe(event);
    EXPECT_TRUE(event.empty());
    nlohmann::json status = nlohmann::json::object();
    b.add_status(status);
    EXPECT_TRUE(status["service"].is_null());
    EXPECT_EQ(status["grants_rejected"], 0);
    EXPECT_TRUE(b.shutdown(std::chrono::milliseconds(0)).empty());
}

} // namespace
