// tests/unit/test_server_handlers.cpp — the server's command table (daemon/server/handlers.hpp):
// which privilege each message type needs, and the one authorisation check with the exact
// refusals the protocol documents (docs/wire-protocol.md, "Authorisation").
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "daemon/server/handlers.hpp"
#include "jitgate/admin.hpp"
#include "jitgate/messages.hpp"

namespace {

namespace server = jitgate::server;
namespace msg = jitgate::msg;
using server::Privilege;

jitgate::identity::Peer peer(uid_t uid) {
    jitgate::identity::Peer p;
    p.pid = 4242;
    p.uid = uid;
    p.gid = uid;
    return p;
}

jitgate::broker::Caller caller(const std::string& name, uid_t uid) {
    jitgate::broker::Caller c;
    c.peer = peer(uid);
    c.name = name;
    return c;
}

const server::Handler& entry(const char* type) {
    const auto* h = server::find_handler(type);
    EXPECT_NE(h, nullptr) << type;
    static const server::Handler none{"", Privilege::root, "", nullptr};
    return h != nullptr ? *h : none;
}

TEST(DaemonHandlers, EveryDocumentedMessageHasOneEntryWithItsPrivilege) {
    EXPECT_EQ(entry(msg::k_check).privilege, Privilege::root);
    EXPECT_EQ(entry(msg::k_finished).privilege, Privilege::root);
    EXPECT_EQ(entry(msg::k_session).privilege, Privilege::root);
    EXPECT_EQ(entry(msg::k_input).privilege, Privilege::anyone);
    EXPECT_EQ(entry(msg::k_pending).privilege, Privilege::approver);
    EXPECT_EQ(entry(msg::k_revoke).privilege, Privilege::approver);
    EXPECT_EQ(entry(msg::k_grants).privilege, Privilege::local_user);
    EXPECT_EQ(entry(msg::k_approve).privilege, Privilege::local_user);
    EXPECT_EQ(entry(msg::k_deny).privilege, Privilege::local_user);
    EXPECT_EQ(entry(msg::k_status).privilege, Privilege::anyone);
    EXPECT_EQ(entry(msg::k_ping).privilege, Privilege::anyone);
    EXPECT_EQ(entry(msg::k_sessions).privilege, Privilege::local_user);
    EXPECT_EQ(entry(msg::k_done).privilege, Privilege::local_user);
    EXPECT_EQ(entry(msg::k_requests).privilege, Privilege::local_user);
    EXPECT_EQ(entry(msg::k_extend).privilege, Privilege::local_user);
    std::set<std::string> types;
    for (const auto& h : server::handlers()) {
        EXPECT_TRUE(types.insert(h.type).second) << "two entries for " << h.type;
        EXPECT_NE(h.handle, nullptr) << h.type;
    }
    EXPECT_EQ(types.size(), 15u);
}

TEST(DaemonHandlers, UnknownTypesHaveNoEntry) {
    EXPECT_EQ(server::find_handler("decision"), nullptr) << "a daemon-to-client message";
    EXPECT_EQ(server::find_handler("CHECK"), nullptr);
    EXPECT_EQ(server::find_handler(""), nullptr);
    EXPECT_EQ(server::find_handler(std::string_view("check\0x", 7)), nullptr);
}

TEST(DaemonHandlers, ANonRootPeerCannotSendARootOnlyMessage) {
    for (const char* type : {msg::k_check, msg::k_finished, msg::k_session}) {
        const auto r = server::authorise(entry(type), peer(2005), caller("mallory", 2005), true);
        ASSERT_TRUE(r.has_value()) << type;
        EXPECT_EQ(r->message, "refused: only root (sudo, sshd) may ask for decisions; peer uid is 2005");
        EXPECT_EQ(r->audit_message,
                  std::string("'") + type + "' refused: only root (sudo, sshd) may ask for decisions");
        EXPECT_TRUE(r->close) << type;
        EXPECT_FALSE(server::authorise(entry(type), peer(0), caller("root", 0), false).has_value()) << type;
    }
}

TEST(DaemonHandlers, PendingAndRevokeNeedRootOrAnApprover) {
    const auto pending = server::authorise(entry(msg::k_pending), peer(2005), caller("mallory", 2005), false);
    ASSERT_TRUE(pending.has_value());
    EXPECT_EQ(pending->message, "pending: mallory is not in an approver group");
    EXPECT_TRUE(pending->audit_message.empty()) << "not recorded";
    EXPECT_FALSE(pending->close) << "the connection stays open";
    const auto revoke = server::authorise(entry(msg::k_revoke), peer(2005), caller("mal\x1b[2Jlory", 2005), false);
    ASSERT_TRUE(revoke.has_value());
    EXPECT_EQ(revoke->message, "mal\\x1b[2Jlory is not in an approver group") << "the name is escaped";
    EXPECT_FALSE(revoke->close);
    for (const char* type : {msg::k_pending, msg::k_revoke}) {
        EXPECT_FALSE(server::authorise(entry(type), peer(2002), caller("bob", 2002), true).has_value()) << type;
        EXPECT_FALSE(server::authorise(entry(type), peer(0), caller("root", 0), false).has_value())
            << type << " as root";
    }
}

TEST(DaemonHandlers, AnyLocalUserMayAskTheRest) {
    // approve and deny are then checked against the request's approver groups by the broker.
    for (const char* type : {msg::k_grants, msg::k_approve, msg::k_deny, msg::k_status, msg::k_ping, msg::k_input})
        EXPECT_FALSE(server::authorise(entry(type), peer(2005), caller("mallory", 2005), false).has_value()) << type;
}

TEST(DaemonHandlers, OnlyUserPrivilegesLookTheCallerUp) {
    EXPECT_TRUE(server::needs_caller(Privilege::local_user));
    EXPECT_TRUE(server::needs_caller(Privilege::approver));
    EXPECT_FALSE(server::needs_caller(Privilege::root));
    EXPECT_FALSE(server::needs_caller(Privilege::anyone));
    EXPECT_STREQ(server::to_string(Privilege::approver), "approver");
}

} // namespace
