// tests/unit/test_server_service_auto_approve.cpp — the approval service approving by itself
// (docs/server.md, "Automatic approval"): a request filed through the host API (Service's
// POST /v1/requests, over the real SQLite store) by a host whose rule opted in, covered by a
// policy entry with auto_approve {on_call: true}, from a requester on call now per the server's
// on-call file, is approved at filing with a grant that says so (`auto`, no approvers); every
// other case waits for people. And the config checks of the policy key.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "lib/grant_token.hpp"
#include "server/config/config.hpp"
#include "server/http/http.hpp"
#include "server/service/policy.hpp"
#include "server/service/service.hpp"
#include "server/store/store.hpp"

#include <nlohmann/json.hpp>

namespace jitgate::server::store {
namespace {

// A store whose connection drops once a request is created: with `fail` set, the automatic
// approval and every find after the create throw, as a Postgres store does when the server
// goes away. Everything else is the real SQLite store.
class DroppingStore final : public Store {
public:
    explicit DroppingStore(Store& inner) : m_inner(inner) {}
    bool fail = false;

    CreateResult create(const Request& request, const Event& filed, std::size_t max_pending) override {
        m_created = true;
        return m_inner.create(request, filed, max_pending);
    }
    std::optional<Request> find(std::string_view host, std::string_view id) override {
        if (fail && m_created) throw std::runtime_error("the database connection is gone");
        return m_inner.find(host, id);
    }
    std::vector<Request> pending(std::size_t limit) override { return m_inner.pending(limit); }
    std::vector<Request> pending_after(const PendingKey& after, std::size_t limit) override {
        return m_inner.pending_after(after, limit);
    }
    std::vector<Request> pending_from(std::int64_t created_at, std::size_t skip, std::size_t limit) override {
        return m_inner.pending_from(created_at, skip, limit);
    }
    std::vector<Request> history(std::int64_t before, std::size_t limit) override {
        return m_inner.history(before, limit);
    }
    ApproveResult approve(std::string_view host, std::string_view id, const Approval& approval, std::int64_t now,
                          const Signer& sign, const Event& event) override {
        return m_inner.approve(host, id, approval, now, sign, event);
    }
    ApproveResult approve_automatically(std::string_view host, std::string_view id, const std::string& decided_by,
                                        std::int64_t now, const Signer& sign, const Event& event) override {
        if (fail) throw std::runtime_error("the database connection is gone");
        return m_inner.approve_automatically(host, id, decided_by, now, sign, event);
    }
    std::optional<Request> finish(std::string_view host, std::string_view id, Status to, const std::string& decided_by,
                                  const std::string& reason, std::int64_t now, const Event& event) override {
        return m_inner.finish(host, id, to, decided_by, reason, now, event);
    }
    std::vector<std::pair<std::string, std::string>> due(std::int64_t now, std::size_t limit) override {
        return m_inner.due(now, limit);
    }
    void set_ticket_check(std::string_view host, std::string_view id, const std::string& answer_json) override {
        return m_inner.set_ticket_check(host, id, answer_json);
    }
    Purged purge(std::int64_t expired_before, std::int64_t delivered_before) override {
        return m_inner.purge(expired_before, delivered_before);
    }
    RevokeResult revoke_grant(std::string_view host, std::string_view id, const Revocation& revocation,
                              const Event& event) override {
        return m_inner.revoke_grant(host, id, revocation, event);
    }
    std::optional<Revocation> find_revocation(std::string_view host, std::string_view id) override {
        return m_inner.find_revocation(host, id);
    }
    std::vector<std::string> hosts_of_request(std::string_view id, std::size_t limit) override {
        return m_inner.hosts_of_request(id, limit);
    }
    std::vector<Revocation> revocations_after(const std::vector<std::string>& hosts, std::int64_t after,
                                              std::int64_t upto, std::int64_t since, std::size_t limit) override {
        return m_inner.revocations_after(hosts, after, upto, since, limit);
    }
    std::int64_t last_revocation_seq(const std::vector<std::string>& hosts) override {
        return m_inner.last_revocation_seq(hosts);
    }
    std::vector<std::string> hosts_revoked_after(std::int64_t after, std::size_t limit) override {
        return m_inner.hosts_revoked_after(after, limit);
    }
    void record(const Event& event) override { return m_inner.record(event); }
    std::vector<Event> events(std::string_view host, std::string_view request_id) override {
        return m_inner.events(host, request_id);
    }
    IngestResult ingest(const std::string& host, const std::vector<AuditEvent>& events, std::int64_t now,
                        const IngestOptions& options) override {
        return m_inner.ingest(host, events, now, options);
    }
    std::optional<AuditChain> mark_chain_broken(const std::string& host, const std::string& problem, std::int64_t seq,
                                                std::int64_t now, const Event& event) override {
        return m_inner.mark_chain_broken(host, problem, seq, now, event);
    }
    std::optional<AuditChain> audit_chain(std::string_view host) override { return m_inner.audit_chain(host); }
    std::vector<AuditEvent> audit_events(std::string_view host, std::int64_t from_seq, std::int64_t to_seq,
                                         std::size_t limit) override {
        return m_inner.audit_events(host, from_seq, to_seq, limit);
    }
    std::vector<BreakGlassReview> break_glass_reviews(ReviewList which, const std::optional<ReviewKey>& after,
                                                      std::size_t limit) override {
        return m_inner.break_glass_reviews(which, after, limit);
    }
    std::optional<BreakGlassReview> find_break_glass_review(std::string_view host, std::string_view event_id) override {
        return m_inner.find_break_glass_review(host, event_id);
    }
    CloseResult close_break_glass_review(std::string_view host, std::string_view event_id, const std::string& reviewer,
                                         const std::string& reviewer_identity, const std::string& note,
                                         std::int64_t now, const Event& event) override {
        return m_inner.close_break_glass_review(host, event_id, reviewer, reviewer_identity, note, now, event);
    }
    std::vector<BreakGlassReview> claim_overdue_break_glass_reviews(std::int64_t now, std::size_t limit,
                                                                    const OverdueAudit& audit) override {
        return m_inner.claim_overdue_break_glass_reviews(now, limit, audit);
    }
    std::vector<AuditHostStatus> audit_hosts(std::string_view after_host, std::size_t limit) override {
        return m_inner.audit_hosts(after_host, limit);
    }
    std::optional<StoredAuditEvent> find_audit_event(std::string_view host, std::string_view event_id) override {
        return m_inner.find_audit_event(host, event_id);
    }
    std::vector<StoredAuditEvent> search_audit_events(const AuditSearch& search) override {
        return m_inner.search_audit_events(search);
    }
    std::vector<StoredAuditEvent> audit_events_in_period(const std::string& from_time, const std::string& to_time,
                                                         const std::string& after_time, std::int64_t after_id,
                                                         std::size_t limit) override {
        return m_inner.audit_events_in_period(from_time, to_time, after_time, after_id, limit);
    }
    std::vector<StoredAuditEvent> audit_events_by_seq(std::string_view host, std::int64_t after_seq,
                                                      std::int64_t after_id, std::int64_t to_seq,
                                                      std::size_t limit) override {
        return m_inner.audit_events_by_seq(host, after_seq, after_id, to_seq, limit);
    }
    std::vector<StoredEvent> events_in_period(std::int64_t from, std::int64_t to, std::int64_t after_at,
                                              std::int64_t after_id, std::size_t limit) override {
        return m_inner.events_in_period(from, to, after_at, after_id, limit);
    }
    std::vector<AuditChain> audit_chains_after(std::string_view after_host, std::size_t limit) override {
        return m_inner.audit_chains_after(after_host, limit);
    }
    void ensure_audit_partitions(std::int64_t now) override { return m_inner.ensure_audit_partitions(now); }
    std::vector<StoredAuditEvent> audit_events_received(std::int64_t from, std::int64_t to, std::int64_t after_id,
                                                        std::size_t limit) override {
        return m_inner.audit_events_received(from, to, after_id, limit);
    }
    std::optional<std::int64_t> oldest_audit_received() override { return m_inner.oldest_audit_received(); }
    std::optional<std::int64_t> newest_audit_received() override { return m_inner.newest_audit_received(); }
    std::optional<AuditArchive> audit_archive(std::string_view month) override { return m_inner.audit_archive(month); }
    std::vector<AuditArchive> audit_archives() override { return m_inner.audit_archives(); }
    AuditArchive record_audit_archive(const AuditArchive& archive, const Event& event) override {
        return m_inner.record_audit_archive(archive, event);
    }
    PruneResult prune_audit_month(const AuditArchive& archive, std::int64_t now, const Event& event,
                                  const ManifestOf& manifest_sha256) override {
        return m_inner.prune_audit_month(archive, now, event, manifest_sha256);
    }
    void put_session(const Session& session) override { return m_inner.put_session(session); }
    std::optional<Session> find_session(std::string_view token_sha256, std::int64_t now) override {
        return m_inner.find_session(token_sha256, now);
    }
    void delete_session(std::string_view token_sha256) override { return m_inner.delete_session(token_sha256); }
    std::size_t put_login(const LoginState& login, std::int64_t now, std::size_t max_in_progress) override {
        return m_inner.put_login(login, now, max_in_progress);
    }
    std::optional<LoginState> take_login(std::string_view state, std::int64_t now) override {
        return m_inner.take_login(state, now);
    }
    std::size_t count_logins(std::int64_t now) override { return m_inner.count_logins(now); }
    std::size_t delete_sessions_of(std::string_view unix_user) override {
        return m_inner.delete_sessions_of(unix_user);
    }
    std::size_t delete_sessions_of(std::string_view unix_user, const SessionsAudit& audit) override {
        return m_inner.delete_sessions_of(unix_user, audit);
    }
    void enqueue(const std::string& target, const std::string& body, std::int64_t now) override {
        return m_inner.enqueue(target, body, now);
    }
    std::vector<Notice> claim_notices(std::int64_t now, std::size_t limit, int lease_s) override {
        return m_inner.claim_notices(now, limit, lease_s);
    }
    void notice_delivered(std::int64_t id) override { return m_inner.notice_delivered(id); }
    void notice_failed(std::int64_t id, std::int64_t next_attempt_at, const std::string& error) override {
        return m_inner.notice_failed(id, next_attempt_at, error);
    }
    void notice_dropped(std::int64_t id, const std::string& error) override {
        return m_inner.notice_dropped(id, error);
    }
    int wake_fd() override { return m_inner.wake_fd(); }
    std::vector<std::pair<std::string, std::string>> take_wakeups() override { return m_inner.take_wakeups(); }

private:
    Store& m_inner;
    bool m_created = false;
};

} // namespace
} // namespace jitgate::server::store

namespace {

namespace store = jitgate::server::store;
namespace service = jitgate::server::service;
namespace http = jitgate::server::http;
namespace config = jitgate::server::config;
namespace grant_token = jitgate::grant_token;
using nlohmann::json;

constexpr std::int64_t k_now = 1'796'032'800; // 2026-11-30T10:00:00Z
const char* const k_host = "pay-db-01";

const grant_token::SigningKey& signing_key() {
    static const grant_token::SigningKey key = grant_token::SigningKey::generate("k-test");
    return key;
}

json request_body(const std::string& id, const std::string& requester) {
    json body = json::parse(R"({
      "protocol": 1, "nonce": "q1xJr0b3c8Rk6fYgZ0HkK5P4n2mW9sVtLqE1dA7uC3o",
      "host": "pay-db-01", "host_environment": "production", "host_tags": [],
      "account": {"user": "root", "uid": 0},
      "kind": "sudo", "scope": "command",
      "action": {"command": "/usr/bin/systemctl", "argv": ["/usr/bin/systemctl", "restart", "nginx"],
                 "display": "/usr/bin/systemctl restart nginx", "runas": "root", "runas_group": "root",
                 "cwd": "/", "chroot": "", "program": "/usr/bin/systemctl", "env": [], "env_code_loading": [],
                 "tty": "", "service": "", "remote_host": "",
                 "cmd_sha256": "7b9c9c6941391da209129e4c89d8a4bb2665a33870a965fafa307678db3d732b"},
      "reason": "restart", "ticket": "", "rule": "ops", "approvals_needed": 1,
      "approver_groups": ["ops"], "ttl_s": 900, "timeout_s": 1800})");
    body["id"] = id;
    body["requester"] = {{"user", requester}, {"uid", 2001}};
    body["auto_approve"] = json::array({"on_call"});
    return body;
}

class ServiceAutoApprove : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/jitgate-auto-approve-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        m_dir = pattern;
        store::migrate_sqlite(m_dir + "/server.db");
        m_store = store::open_sqlite(m_dir + "/server.db");
        m_config.server.name = "approvals.test";
        m_config.server.public_url = "https://approvals.test";
        m_config.on_call_file = m_dir + "/oncall.yaml";
        config::PolicyEntry ops;
        ops.name = "ops";
        ops.rules = {"ops"};
        ops.approver_groups = {"ops"};
        ops.auto_approve_on_call = true;
        m_config.policy = {ops};
        // alice is on call 08:00-12:00 UTC today, carol too; bob is not.
        write_on_call("# written by jitgate-oncall-sync\non_call:\n"
                      "  - {user: alice, from: \"2026-11-30T08:00:00Z\", to: \"2026-11-30T12:00:00Z\"}\n"
                      "  - {user: carol, from: \"2026-11-30T08:00:00Z\", to: \"2026-11-30T12:00:00Z\"}\n");
        rebuild();
    }
    void TearDown() override {
        m_service.reset();
        m_store.reset();
        std::filesystem::remove_all(m_dir);
    }
    void rebuild() {
        m_service = std::make_unique<service::Service>(m_config, *m_store, signing_key(), m_loop,
                                                       service::Clock{[this] { return m_now; }});
    }
    void write_on_call(const std::string& text) {
        std::ofstream(m_config.on_call_file, std::ios::trunc) << text;
        ::chmod(m_config.on_call_file.c_str(), 0644);
    }
    // Files `body` as host pay-db-01 would (its client certificate names it); the request as stored.
    store::Request file(const json& body) {
        http::Request r;
        r.method = "POST";
        r.path = "/v1/requests";
        r.body = body.dump();
        r.peer_address = "192.0.2.10";
        r.client.names = {k_host};
        r.client.subject = "CN=pay-db-01";
        m_service->handle_host(std::move(r), http::Reply{});
        const auto found = m_store->find(k_host, body.at("id").get<std::string>());
        if (!found) throw std::runtime_error("the request was not filed");
        return *found;
    }
    std::vector<std::string> event_types(const std::string& id) {
        std::vector<std::string> out;
        for (const store::StoredEvent& e : m_store->events_in_period(0, k_now + 86400, -1, 0, 1000))
            if (e.event.request_id == id) out.push_back(e.event.type);
        return out;
    }
    // The detail of the request.filed event of `id`, parsed.
    json filed_detail(const std::string& id) {
        for (const store::StoredEvent& e : m_store->events_in_period(0, k_now + 86400, -1, 0, 1000))
            if (e.event.request_id == id && e.event.type == "request.filed") return json::parse(e.event.detail);
        return nullptr;
    }
    static grant_token::Verdict verify(const store::Request& r, const std::string& requester,
                                       const std::string& auto_allowed, std::int64_t now = k_now) {
        grant_token::KeyRing keys;
        keys.add_pem("k-test", signing_key().public_key_pem(), "test");
        grant_token::Expected e;
        e.request_id = r.id;
        e.nonce = "q1xJr0b3c8Rk6fYgZ0HkK5P4n2mW9sVtLqE1dA7uC3o";
        e.host = k_host;
        e.user = requester;
        e.kind = "sudo";
        e.scope = "command";
        e.cmd_sha256 = "7b9c9c6941391da209129e4c89d8a4bb2665a33870a965fafa307678db3d732b";
        e.approvals_needed = 1;
        e.issuer = "approvals.test";
        e.now_unix = now;
        e.auto_allowed = auto_allowed;
        return grant_token::verify(r.grant, keys, e);
    }

    std::string m_dir;
    std::unique_ptr<store::Store> m_store;
    config::Config m_config;
    std::int64_t m_now = k_now;
    http::EventLoop m_loop;
    std::unique_ptr<service::Service> m_service;
};

TEST_F(ServiceAutoApprove, AnOnCallRequesterIsApprovedAtFilingAndTheGrantSaysSo) {
    const store::Request r = file(request_body("R-AUTO01", "alice"));
    EXPECT_EQ(r.status, store::Status::approved);
    EXPECT_EQ(r.decided_by, "jitgate (auto: on_call)");
    EXPECT_TRUE(r.approvals.empty()) << "nobody approved it";
    EXPECT_EQ(r.decided_at, k_now);
    const auto types = event_types("R-AUTO01");
    EXPECT_EQ(types, (std::vector<std::string>{"request.filed", "request.auto_approved", "grant.signed"}));
    EXPECT_EQ(filed_detail("R-AUTO01").at("auto_approve"),
              json({{"asked", {"on_call"}}, {"given", true}, {"condition", "on_call"}}));
    const grant_token::Verdict v = verify(r, "alice", "on_call");
    ASSERT_TRUE(v.ok) << v.reason;
    EXPECT_EQ(v.claims.auto_condition, "on_call");
    EXPECT_TRUE(v.claims.approvers.empty());
    // Time-boxed like any grant: the rule's ttl (900 s) from now, bound to the command.
    EXPECT_EQ(v.claims.exp, k_now + 900);
    EXPECT_EQ(v.claims.cmd_sha256, "7b9c9c6941391da209129e4c89d8a4bb2665a33870a965fafa307678db3d732b");
    // A host whose rule did not opt in refuses it.
    const grant_token::Verdict refused = verify(r, "alice", "");
    EXPECT_FALSE(refused.ok);
    EXPECT_NE(refused.reason.find("automatic approval (\"on_call\") is not allowed by this host's rule"),
              std::string::npos)
        << refused.reason;
}

// The grant is not outlived by the shift that allowed it: it ends with the earliest end of the
// on-call entries that held (the requester's, the login user's), recorded in grant.signed.
TEST_F(ServiceAutoApprove, TheGrantEndsWhenTheOnCallShiftEnds) {
    write_on_call("on_call:\n"
                  "  - {user: alice, from: \"2026-11-30T08:00:00Z\", to: \"2026-11-30T12:00:00Z\"}\n"
                  "  - {user: carol, from: \"2026-11-30T08:00:00Z\", to: \"2026-11-30T11:58:00Z\"}\n");
    m_now = k_now + 2 * 3600 - 5 * 60; // 11:55, five minutes before alice's shift ends
    const store::Request r = file(request_body("R-SHIFT1", "alice"));
    ASSERT_EQ(r.status, store::Status::approved);
    grant_token::Verdict v = verify(r, "alice", "on_call", m_now);
    ASSERT_TRUE(v.ok) << v.reason;
    EXPECT_EQ(v.claims.exp, k_now + 2 * 3600) << "12:00, not 12:10 (the rule's 900 s)";
    json signed_detail;
    for (const store::StoredEvent& e : m_store->events_in_period(0, k_now + 86400, -1, 0, 1000))
        if (e.event.request_id == "R-SHIFT1" && e.event.type == "grant.signed")
            signed_detail = json::parse(e.event.detail);
    EXPECT_EQ(signed_detail.value("ends_at_on_call_end", ""), "2026-11-30T12:00:00Z") << signed_detail;
    // The login user's shift ends earlier (11:58): that end.
    json body = request_body("R-SHIFT2", "alice");
    body["requester"]["login_uid"] = 2003;
    body["requester"]["login_user"] = "carol";
    const store::Request two = file(body);
    ASSERT_EQ(two.status, store::Status::approved);
    v = verify(two, "alice", "on_call", m_now);
    ASSERT_TRUE(v.ok) << v.reason;
    EXPECT_EQ(v.claims.exp, k_now + 2 * 3600 - 2 * 60);
    // Early in the shift the rule's TTL is the bound, and nothing says otherwise.
    m_now = k_now;
    const store::Request early = file(request_body("R-SHIFT3", "alice"));
    v = verify(early, "alice", "on_call");
    ASSERT_TRUE(v.ok) << v.reason;
    EXPECT_EQ(v.claims.exp, k_now + 900);
}

// A failure after the filing (here the grant cannot be signed: an issuer that is not UTF-8) does
// not leave the request waiting silently: it goes to people with the request.filed notice.
TEST_F(ServiceAutoApprove, AFailureToApproveSendsTheRequestToPeople) {
    std::vector<std::string> notices;
    m_config.server.name = "approvals\xff.test";
    rebuild();
    m_service->on_event = [&](const std::string& type, const store::Request& r) {
        notices.push_back(type + " " + r.id);
    };
    const store::Request r = file(request_body("R-FAIL01", "alice"));
    EXPECT_EQ(r.status, store::Status::pending);
    EXPECT_TRUE(r.grant.empty());
    EXPECT_EQ(notices, std::vector<std::string>{"request.filed R-FAIL01"});
    EXPECT_EQ(event_types("R-FAIL01"), std::vector<std::string>{"request.filed"}) << "nothing half-written";
}

// The store failing after the filing (the approval cannot be stored, and the request cannot be
// read back either) does not throw out of the filing: the request is answered as filed and goes
// to people with the request.filed notice.
TEST_F(ServiceAutoApprove, ADroppedConnectionAfterTheFilingStillSendsTheRequestToPeople) {
    store::DroppingStore dropping(*m_store);
    dropping.fail = true;
    service::Service s(m_config, dropping, signing_key(), m_loop, service::Clock{[this] { return m_now; }});
    std::vector<std::string> notices;
    s.on_event = [&](const std::string& type, const store::Request& r) { notices.push_back(type + " " + r.id); };
    http::Request r;
    r.method = "POST";
    r.path = "/v1/requests";
    r.body = request_body("R-DROP01", "alice").dump();
    r.peer_address = "192.0.2.10";
    r.client.names = {k_host};
    r.client.subject = "CN=pay-db-01";
    EXPECT_NO_THROW(s.handle_host(std::move(r), http::Reply{}));
    EXPECT_EQ(notices, std::vector<std::string>{"request.filed R-DROP01"});
    const auto stored = m_store->find(k_host, "R-DROP01");
    ASSERT_TRUE(stored.has_value());
    EXPECT_EQ(stored->status, store::Status::pending);
    EXPECT_TRUE(stored->grant.empty());
}

// Automatic filings never wait, so max_pending_per_host does not bound them: a host gets at
// most hosts.max_auto_approvals_per_minute of them a minute; beyond, people decide.
TEST_F(ServiceAutoApprove, AHostGetsABoundedNumberOfAutomaticApprovalsAMinute) {
    m_config.hosts.max_auto_approvals_per_minute = 2;
    rebuild();
    EXPECT_EQ(file(request_body("R-RATE01", "alice")).status, store::Status::approved);
    m_now += 10;
    EXPECT_EQ(file(request_body("R-RATE02", "alice")).status, store::Status::approved);
    m_now += 10;
    EXPECT_EQ(file(request_body("R-RATE03", "alice")).status, store::Status::pending);
    EXPECT_NE(filed_detail("R-RATE03")
                  .at("auto_approve")
                  .at("why_not")
                  .get<std::string>()
                  .find("max_auto_approvals_per_minute"),
              std::string::npos);
    m_now = k_now + 61; // the first has left the minute
    EXPECT_EQ(file(request_body("R-RATE04", "alice")).status, store::Status::approved);
    EXPECT_EQ(file(request_body("R-RATE05", "alice")).status, store::Status::pending);
}

TEST_F(ServiceAutoApprove, OutsideTheirOnCallTimeTheRequestWaitsForPeople) {
    m_now = k_now + 3 * 3600; // 13:00, after alice's shift
    const store::Request r = file(request_body("R-AUTO02", "alice"));
    EXPECT_EQ(r.status, store::Status::pending);
    EXPECT_TRUE(r.grant.empty());
    EXPECT_EQ(event_types("R-AUTO02"), std::vector<std::string>{"request.filed"});
    // The filing records what the host asked and why it was not given.
    const json asked = filed_detail("R-AUTO02").at("auto_approve");
    EXPECT_EQ(asked.at("asked"), json::array({"on_call"}));
    EXPECT_EQ(asked.at("given"), false);
    EXPECT_NE(asked.at("why_not").get<std::string>().find("is not on call now"), std::string::npos) << asked;
    // Someone never on call waits too.
    m_now = k_now;
    EXPECT_EQ(file(request_body("R-AUTO03", "bob")).status, store::Status::pending);
}

TEST_F(ServiceAutoApprove, WithoutTheHostsOptInTheRequestWaits) {
    json body = request_body("R-AUTO04", "alice");
    body.erase("auto_approve");
    EXPECT_EQ(file(body).status, store::Status::pending);
    body["id"] = "R-AUTO05";
    body["auto_approve"] = json::array({"something_else"});
    EXPECT_EQ(file(body).status, store::Status::pending);
}

TEST_F(ServiceAutoApprove, APolicyThatDoesNotAllowItIsNotOverriddenByTheHost) {
    m_config.policy[0].auto_approve_on_call = false;
    rebuild();
    EXPECT_EQ(file(request_body("R-AUTO06", "alice")).status, store::Status::pending);
    // Two entries cover the request: one that asks people to decide is not outvoted.
    m_config.policy[0].auto_approve_on_call = true;
    config::PolicyEntry sox;
    sox.name = "sox";
    sox.approver_groups = {"sox"};
    m_config.policy.push_back(sox);
    rebuild();
    EXPECT_EQ(file(request_body("R-AUTO07", "alice")).status, store::Status::pending);
}

TEST_F(ServiceAutoApprove, TwoApprovalsAreNeverAutoApprovedWithoutExplicitConsent) {
    m_config.policy[0].min_approvals = 2; // a finance entry
    rebuild();
    EXPECT_EQ(file(request_body("R-AUTO08", "alice")).status, store::Status::pending);
    json body = request_body("R-AUTO09", "alice");
    m_config.policy[0].min_approvals = 1;
    body["approvals_needed"] = 2; // the host's rule asks for two
    rebuild();
    EXPECT_EQ(file(body).status, store::Status::pending);
    // Said in as many words, by the policy (the host's opt-in says it for its rule).
    m_config.policy[0].auto_approve_sod = true;
    rebuild();
    body["id"] = "R-AUTO10";
    EXPECT_EQ(file(body).status, store::Status::approved);
}

TEST_F(ServiceAutoApprove, ABrokenOrMissingOnCallFileApprovesNobody) {
    write_on_call("on_call:\n  - {user: alice, from: \"2026-11-30T08:00:00\", to: \"2026-11-30T12:00:00Z\"}\n");
    EXPECT_EQ(file(request_body("R-AUTO11", "alice")).status, store::Status::pending);
    EXPECT_NE(filed_detail("R-AUTO11")
                  .at("auto_approve")
                  .at("why_not")
                  .get<std::string>()
                  .find("the on-call file cannot be used"),
              std::string::npos);
    write_on_call("on_call:\n  - {user: alice, from: \"2026-11-30T08:00:00Z\", to: \"2026-11-30T12:00:00Z\"}\n");
    ::chmod(m_config.on_call_file.c_str(), 0666); // anyone could put themselves on call
    EXPECT_EQ(file(request_body("R-AUTO12", "alice")).status, store::Status::pending);
    std::filesystem::remove(m_config.on_call_file);
    EXPECT_EQ(file(request_body("R-AUTO13", "alice")).status, store::Status::pending);
}

// SECURITY NOTE under test: running as an on-call user (sudo -u alice, su) does not make bob
// on call: where the host knows the session's login user, that person must be on call too.
TEST_F(ServiceAutoApprove, TheLoginUserMustBeOnCallToo) {
    json body = request_body("R-AUTO14", "alice");
    body["requester"]["login_uid"] = 2002;
    body["requester"]["login_user"] = "bob";
    EXPECT_EQ(file(body).status, store::Status::pending);
    body["id"] = "R-AUTO15";
    body["requester"]["login_user"] = ""; // a login uid whose name the host does not know
    EXPECT_EQ(file(body).status, store::Status::pending);
    body["id"] = "R-AUTO16";
    body["requester"]["login_user"] = "carol";
    EXPECT_EQ(file(body).status, store::Status::approved);
}

TEST_F(ServiceAutoApprove, ALoginOrATicketCheckIsNeverAutoApproved) {
    json body = request_body("R-AUTO17", "alice");
    body["kind"] = "login";
    body["scope"] = "login";
    body["action"]["cmd_sha256"] = "";
    EXPECT_EQ(file(body).status, store::Status::pending);
    m_config.ticket_check.url = "https://tickets.test/api/{ticket}";
    m_config.policy[0].ticket_check = true;
    rebuild();
    EXPECT_EQ(file(request_body("R-AUTO18", "alice")).status, store::Status::pending);
}

// One schedule is not another's: an entry names its on-call source, and the DBA on call is not
// on call for an entry whose source is another rota.
TEST_F(ServiceAutoApprove, EachEntryNamesItsOwnOnCallSource) {
    const std::string dba_file = m_dir + "/oncall-dba.yaml";
    std::ofstream(dba_file) << "on_call:\n"
                               "  - {user: dave, from: \"2026-11-30T08:00:00Z\", to: \"2026-11-30T12:00:00Z\"}\n"
                               "  - {user: carol, from: \"2026-11-30T08:00:00Z\", to: \"2026-11-30T12:00:00Z\"}\n";
    ::chmod(dba_file.c_str(), 0644);
    m_config.on_call_files = {{"dba", dba_file}};
    m_config.policy[0].auto_approve_on_call_source = "dba";
    rebuild();
    // alice is on call per on_call_file, not per the DBA rota this entry names.
    EXPECT_EQ(file(request_body("R-SRC01", "alice")).status, store::Status::pending);
    EXPECT_NE(filed_detail("R-SRC01").at("auto_approve").at("why_not").get<std::string>().find("on-call source"),
              std::string::npos);
    const store::Request dave = file(request_body("R-SRC02", "dave"));
    EXPECT_EQ(dave.status, store::Status::approved);
    // Two covering entries, two sources: on call in both (carol), not in one only (dave, alice).
    config::PolicyEntry ops2 = m_config.policy[0];
    ops2.name = "ops-default";
    ops2.auto_approve_on_call_source.clear();
    m_config.policy.push_back(ops2);
    rebuild();
    EXPECT_EQ(file(request_body("R-SRC03", "dave")).status, store::Status::pending);
    EXPECT_EQ(file(request_body("R-SRC04", "alice")).status, store::Status::pending);
    EXPECT_EQ(file(request_body("R-SRC05", "carol")).status, store::Status::approved);
    // A source the config does not name approves nobody (check-config refuses it too).
    m_config.on_call_files.clear();
    rebuild();
    EXPECT_EQ(file(request_body("R-SRC06", "carol")).status, store::Status::pending);
}

TEST(ServerPolicyAutoApprove, TheDecisionNeedsEveryCoveringEntry) {
    config::Config c;
    config::PolicyEntry a;
    a.name = "a";
    a.approver_groups = {"ops"};
    a.auto_approve_on_call = true;
    c.policy = {a};
    const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(k_now));
    EXPECT_TRUE(service::apply_policy(c, {k_host, "", {}, "ops", 1}, now).auto_on_call);
    EXPECT_FALSE(service::apply_policy(c, {k_host, "", {}, "ops", 2}, now).auto_on_call);
    c.policy[0].auto_approve_sod = true;
    EXPECT_TRUE(service::apply_policy(c, {k_host, "", {}, "ops", 2}, now).auto_on_call);
    config::PolicyEntry b;
    b.name = "b";
    b.approver_groups = {"dba"};
    c.policy.push_back(b);
    EXPECT_FALSE(service::apply_policy(c, {k_host, "", {}, "ops", 1}, now).auto_on_call);
    c.policy[1].hosts = {"web-*"}; // no longer covers pay-db-01
    EXPECT_TRUE(service::apply_policy(c, {k_host, "", {}, "ops", 1}, now).auto_on_call);
}

// Automatic only at night: two entries split by a window, one covering the request at a time.
TEST(ServerPolicyAutoApprove, AWindowSplitMakesItAutomaticAtSomeHoursOnly) {
    config::Config c;
    jitgate::config::Window nights;
    nights.name = "nights";
    nights.timezone = "Etc/UTC";
    nights.weekly = {jitgate::config::WeeklySpan{0x7f, 0, 6 * 60}}; // every day 00:00-06:00
    c.windows = {nights};
    config::PolicyEntry day;
    day.name = "ops-day";
    day.approver_groups = {"ops"};
    day.unless_windows = {"nights"};
    config::PolicyEntry night = day;
    night.name = "ops-night";
    night.unless_windows.clear();
    night.when_windows = {"nights"};
    night.auto_approve_on_call = true;
    c.policy = {day, night};
    const auto at = [](std::int64_t t) { return std::chrono::system_clock::time_point(std::chrono::seconds(t)); };
    const service::PolicyDecision ten = service::apply_policy(c, {k_host, "", {}, "ops", 1}, at(k_now));
    EXPECT_TRUE(ten.covered);
    EXPECT_FALSE(ten.auto_on_call) << "10:00 UTC: people decide";
    const service::PolicyDecision three = service::apply_policy(c, {k_host, "", {}, "ops", 1}, at(k_now - 7 * 3600));
    EXPECT_TRUE(three.covered);
    EXPECT_TRUE(three.auto_on_call) << "03:00 UTC: automatic for who is on call";
}

TEST(ServerConfigAutoApprove, NonsenseIsAConfigError) {
    const std::string base = "server: {name: a.test, public_url: \"https://a.test\"}\n"
                             "hosts: {cert: /c.pem, key: /c.key, client_ca: /ca.pem}\n"
                             "signing: {keys: [{kid: k1, private_key: /k1.key}]}\n";
    const auto problems_of = [](const std::string& text) {
        std::string all;
        for (const auto& p : config::parse(text, "t.yaml").problems) all += p.to_string() + "\n";
        return all;
    };
    EXPECT_EQ(problems_of(base + "on_call_file: /etc/jitgate-server/oncall.yaml\n"
                                 "policy:\n  - {name: ops, approver_groups: [ops], auto_approve: {on_call: true}}\n"),
              "");
    EXPECT_NE(problems_of(base + "policy:\n  - {name: ops, approver_groups: [ops], auto_approve: {on_call: true}}\n")
                  .find("auto_approve.on_call needs on_call_file"),
              std::string::npos);
    EXPECT_NE(
        problems_of(base + "on_call_file: /x\npolicy:\n  - {name: f, deny: true, auto_approve: {on_call: true}}\n")
            .find("auto_approve on a deny entry"),
        std::string::npos);
    const std::string two =
        problems_of(base + "on_call_file: /x\npolicy:\n  - {name: f, approver_groups: [sox], min_approvals: 2, "
                           "auto_approve: {on_call: true}}\n");
    EXPECT_NE(two.find("would bypass segregation of duties"), std::string::npos) << two;
    EXPECT_EQ(problems_of(base + "on_call_file: /x\npolicy:\n  - {name: f, approver_groups: [sox], min_approvals: 2, "
                                 "auto_approve: {on_call: true}, auto_approve_sod: true}\n"),
              "");
    EXPECT_NE(problems_of(base + "on_call_file: /x\npolicy:\n  - {name: f, approver_groups: [sox], auto_approve: {}}\n")
                  .find("auto_approve names no condition"),
              std::string::npos);
    EXPECT_EQ(problems_of(base + "on_call_files: {dba: /etc/jitgate-server/oncall-dba.yaml}\n"
                                 "policy:\n  - {name: db, approver_groups: [dba], auto_approve: {on_call: dba}}\n"),
              "");
    const std::string unknown =
        problems_of(base + "on_call_file: /x\non_call_files: {dba: /y}\n"
                           "policy:\n  - {name: db, approver_groups: [dba], auto_approve: {on_call: web}}\n");
    EXPECT_NE(unknown.find("names an unknown on-call source 'web'"), std::string::npos) << unknown;
    EXPECT_NE(problems_of(base + "on_call_files: {dba: /y}\n"
                                 "policy:\n  - {name: ops, approver_groups: [ops], auto_approve: {on_call: true}}\n")
                  .find("auto_approve.on_call needs on_call_file"),
              std::string::npos);
    EXPECT_NE(problems_of(base + "on_call_files: {dba: oncall-dba.yaml}\n").find("must be an absolute path"),
              std::string::npos);
    EXPECT_NE(problems_of(base + "on_call_files: {\"d b\": /y}\n").find("bad source name"), std::string::npos);
    EXPECT_NE(problems_of(base + "on_call_file: /x\npolicy:\n  - {name: f, approver_groups: [ops], "
                                 "auto_approve: {on_call: false}}\n")
                  .find("auto_approve names no condition"),
              std::string::npos);
    std::string rate = base;
    rate.replace(rate.find("client_ca: /ca.pem}"), 19, "client_ca: /ca.pem, max_auto_approvals_per_minute: 0}");
    EXPECT_NE(problems_of(rate).find("max_auto_approvals_per_minute must be 1..1000"), std::string::npos)
        << problems_of(rate);
    EXPECT_NE(problems_of(base + "on_call_file: oncall.yaml\n").find("on_call_file must be an absolute path"),
              std::string::npos);
    EXPECT_NE(problems_of(base + "policy:\n  - {name: f, approver_groups: [ops], auto_approve_sod: true}\n")
                  .find("auto_approve_sod without auto_approve means nothing"),
              std::string::npos);
}

// Only a plain `true`/`false` is the flag: a source whose name YAML 1.1 reads as a boolean
// (`on`, `yes`, ...) would otherwise silently mean the default on-call file.
TEST(ServerConfigAutoApprove, ABooleanWordIsNeitherAFlagNorASourceName) {
    const std::string base = "server: {name: a.test, public_url: \"https://a.test\"}\n"
                             "hosts: {cert: /c.pem, key: /c.key, client_ca: /ca.pem}\n"
                             "signing: {keys: [{kid: k1, private_key: /k1.key}]}\n"
                             "on_call_file: /etc/jitgate-server/oncall.yaml\n";
    const auto parsed = [&](const std::string& files, const std::string& on_call) {
        return config::parse(base + files +
                                 "policy:\n  - {name: pay, approver_groups: [pay], auto_approve: {on_call: " + on_call +
                                 "}}\n",
                             "t.yaml");
    };
    const auto all = [](const config::LoadResult& r) {
        std::string out;
        for (const auto& p : r.problems) out += p.to_string() + "\n";
        return out;
    };
    for (const std::string word : {"on", "yes", "y", "Y", "ON", "Off", "no", "n", "True", "FALSE"}) {
        SCOPED_TRACE(word);
        const auto r = parsed("on_call_files: {" + word + ": /etc/jitgate-server/oncall-pay.yaml}\n", word);
        const std::string text = all(r);
        EXPECT_NE(text.find("on_call_files: source name '" + word + "' reads as a boolean in YAML"), std::string::npos)
            << text;
        EXPECT_NE(text.find("auto_approve.on_call: '" + word + "' reads as a boolean in YAML"), std::string::npos)
            << text;
        ASSERT_EQ(r.config.policy.size(), 1u);
        EXPECT_EQ(r.config.policy[0].auto_approve_on_call_source, word) << "never the default file";
    }
    // Quoted, a boolean word is still refused (it is no flag, and no name to rely on).
    for (const std::string quoted : {"\"true\"", "'on'", "\"false\""}) {
        SCOPED_TRACE(quoted);
        const std::string text = all(parsed("", quoted));
        EXPECT_NE(text.find("reads as a boolean in YAML"), std::string::npos) << text;
    }
    // The plain flags keep their meaning, and an ordinary name is a source.
    const auto yes = parsed("", "true");
    EXPECT_EQ(all(yes), "");
    ASSERT_EQ(yes.config.policy.size(), 1u);
    EXPECT_TRUE(yes.config.policy[0].auto_approve_on_call);
    EXPECT_EQ(yes.config.policy[0].auto_approve_on_call_source, "");
    EXPECT_NE(all(parsed("", "false")).find("auto_approve names no condition"), std::string::npos);
    const auto named = parsed("on_call_files: {pay: /etc/jitgate-server/oncall-pay.yaml}\n", "pay");
    EXPECT_EQ(all(named), "");
    ASSERT_EQ(named.config.policy.size(), 1u);
    EXPECT_EQ(named.config.policy[0].auto_approve_on_call_source, "pay");
}

} // namespace
