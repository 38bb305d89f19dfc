// Tests for server/report (the auditor's evidence report) and the Store's reading for auditors:
// a scripted day of activity on three hosts, as real hash-chained host events ingested through
// the Store and the approval service's requests and approvals through its API, on SQLite and on
// the real PostgreSQL 15 of the pg_scratch fixture. The JSON and the CSV are checked field by
// field; the PDF is made by the real WeasyPrint and read back with pdftotext and pdftoppm.
#include "server/commands.hpp"
#include "server/report/report.hpp"
#include "server/report/weasyprint.hpp"
#include "server_store_fixture.hpp"

#include <jitgate/error.hpp>
#include <jitgate/text.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <numeric>
#include <set>

using namespace jitgate::test_store;
namespace report = jitgate::server::report;
using Json = nlohmann::json;

namespace {

constexpr const char* k_day = "2026-11-24";

// Unix seconds of a time of the scripted day.
std::int64_t at(const std::string& hms) {
    return report::parse_time(std::string(k_day) + "T" + hms + "Z", false).value();
}
std::string host_time(const std::string& hms, const std::string& ms = "000") {
    return std::string(k_day) + "T" + hms + "." + ms + "Z";
}

Json sudo_event(const std::string& type, const std::string& time, const std::string& user,
                const std::vector<std::string>& argv) {
    return Json{{"type", type}, {"time", time},          {"user", user},    {"requester", user}, {"kind", "sudo"},
                {"argv", argv}, {"command", argv.at(0)}, {"runas", "root"}, {"uid", 2001}};
}

Event event(std::int64_t at, const std::string& type, const std::string& host, const std::string& id,
            const std::string& actor = "server") {
    return Event{at, type, host, id, actor, "", "", ""};
}

Signer grant_signer() {
    return [](const Request& r) {
        return SignedGrant{"jws." + r.id, "jti-" + r.id, event(r.decided_at, "grant.signed", r.host, r.id)};
    };
}

// Runs a program; returns its exit status and stdout.
std::pair<int, std::string> run(const std::string& command) {
    std::FILE* p = ::popen(command.c_str(), "r");
    if (p == nullptr) return {-1, ""};
    std::string out;
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int status = ::pclose(p);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// RFC 4180 lines of quoted cells (the report's CSV quotes every cell).
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
    std::vector<std::vector<std::string>> rows(1);
    std::string cell;
    bool quoted = false;
    bool in_cell = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (quoted) {
            if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
                cell += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                cell += c;
            }
        } else if (c == '"') {
            quoted = true;
            in_cell = true;
        } else if (c == ',') {
            rows.back().push_back(cell);
            cell.clear();
        } else if (c == '\r') {
        } else if (c == '\n') {
            rows.back().push_back(cell);
            cell.clear();
            in_cell = false;
            rows.emplace_back();
        } else {
            cell += c;
            in_cell = true;
        }
    }
    if (in_cell) rows.back().push_back(cell);
    if (rows.back().empty()) rows.pop_back();
    return rows;
}

class ReportTest : public testing::TestWithParam<Backend> {
protected:
    void SetUp() override {
        m_database = std::make_unique<Database>(GetParam());
        m_database->migrate();
        store = m_database->open();
    }
    void TearDown() override {
        store.reset();
        m_database.reset();
    }

    // What a host of the service backend records of the service's approval in access.approved.
    static void service_approval(Json& e, const std::string& id, const std::string& login_user) {
        e["approval_service"] = "https://approvals.example:8443";
        e["service_grant_id"] = "jti-" + id;
        e["login_user"] = login_user;
    }
    void file(const std::string& host, const std::string& id, const std::string& requester, const std::string& created,
              const std::string& rule = "default-approval") {
        Request r;
        r.host = host;
        r.id = id;
        r.body = R"({"id":")" + id + R"("})";
        r.requester = requester;
        r.requester_login = requester;
        r.rule = rule;
        r.approver_groups = {"sox-approvers"};
        r.created_at = at(created);
        r.expires_at = at(created) + 3600;
        ASSERT_TRUE(store->create(r, event(r.created_at, "request.filed", host, id, "host:" + host)).created);
    }
    void approve(const std::string& host, const std::string& id, const std::string& approver, const std::string& when) {
        const Approval a{approver, "https://idp/ " + approver, "ok <b>by</b> " + approver, "10.0.0.9", "web", at(when)};
        ASSERT_EQ(
            store->approve(host, id, a, at(when), grant_signer(), event(at(when), "request.approval_added", host, id))
                .outcome,
            ApproveOutcome::approved);
    }

    // The scripted day (2026-11-24): fin-db-01 with every kind of action, web-02 with a gap in
    // its chain, old-03 silent since the 20th.
    void script_day() {
        HostChain fin("fin-db-01");
        std::vector<AuditEvent> a;
        a.push_back(fin.next_with({{"type", "daemon.started"}, {"time", "2026-11-23T23:59:59.999Z"}}));
        // R-APPROVED01: requested, approved by bob at the service 150 s later, ran, exit 0.
        const std::vector<std::string> restart{"/usr/bin/systemctl", "restart", "ledger"};
        Json e = sudo_event("access.requested", host_time("09:00:00"), "alice", restart);
        e["request_id"] = "R-APPROVED01";
        e["rule"] = "default-approval";
        e["reason"] = "restart after config change";
        e["ticket"] = "CHG0012345";
        a.push_back(fin.next_with(e));
        e = sudo_event("access.approved", host_time("09:02:30"), "alice", restart);
        e["request_id"] = "R-APPROVED01";
        e["rule"] = "default-approval";
        e["grant_id"] = "G-A1";
        service_approval(e, "R-APPROVED01", "alice");
        e["approvers"] = {"bob"};
        e["reason"] = "restart after config change";
        e["outcome"] = "grant";
        a.push_back(fin.next_with(e));
        e = sudo_event("command.finished", host_time("09:02:31", "500"), "alice", restart);
        e["request_id"] = "R-APPROVED01";
        e["grant_id"] = "G-A1";
        e["status_type"] = "exit";
        e["exit_status"] = 0;
        e["duration_ms"] = 1200;
        a.push_back(fin.next_with(e));
        // R-DENIED0001: denied by carol; the reason would be a formula in a spreadsheet.
        const std::vector<std::string> drop{"/usr/bin/psql", "-c", "drop table ledger"};
        e = sudo_event("access.requested", host_time("10:00:00"), "alice", drop);
        e["request_id"] = "R-DENIED0001";
        e["rule"] = "default-approval";
        e["reason"] = "=1+1 cleanup";
        a.push_back(fin.next_with(e));
        e = sudo_event("access.denied", host_time("10:01:00"), "alice", drop);
        e["request_id"] = "R-DENIED0001";
        e["rule"] = "default-approval";
        e["denied_by"] = "carol";
        e["deny_reason"] = "not during the close";
        e["outcome"] = "denied";
        a.push_back(fin.next_with(e));
        // R-TIMEOUT001: nobody decided.
        const std::vector<std::string> id{"/usr/bin/id", "-un"};
        e = sudo_event("access.requested", host_time("11:00:00"), "alice", id);
        e["request_id"] = "R-TIMEOUT001";
        e["rule"] = "quick";
        a.push_back(fin.next_with(e));
        e = sudo_event("access.timeout", host_time("11:00:30"), "alice", id);
        e["request_id"] = "R-TIMEOUT001";
        e["rule"] = "quick";
        e["outcome"] = "timeout";
        a.push_back(fin.next_with(e));
        // Break-glass by dave, reviewed; then again, not reviewed (a hostile reason).
        const std::vector<std::string> whoami{"/usr/bin/whoami"};
        e = sudo_event("access.break_glass", host_time("12:00:00"), "dave", whoami);
        e["break_glass_reason"] = "payments down, INC-4711";
        e["outcome"] = "break_glass";
        a.push_back(fin.next_with(e));
        m_reviewed_glass = a.back().event_id;
        e = sudo_event("command.finished", host_time("12:00:00", "050"), "dave", whoami);
        e["status_type"] = "exit";
        e["exit_status"] = 0;
        e["duration_ms"] = 3;
        a.push_back(fin.next_with(e));
        const std::vector<std::string> cat{"/usr/bin/cat", "/etc/shadow"};
        e = sudo_event("access.break_glass", host_time("13:00:00"), "dave", cat);
        e["break_glass_reason"] = "db locked <script>alert(1)</script>";
        e["outcome"] = "break_glass";
        a.push_back(fin.next_with(e));
        e = sudo_event("command.finished", host_time("13:00:01"), "dave", cat);
        e["status_type"] = "signal";
        e["signal"] = 9;
        e["duration_ms"] = 20;
        a.push_back(fin.next_with(e));
        // An allow rule: mallory's true.
        const std::vector<std::string> yes{"/usr/bin/true"};
        e = sudo_event("access.allowed_by_rule", host_time("14:00:00"), "mallory", yes);
        e["rule"] = "read-only";
        e["outcome"] = "allowed_by_rule";
        a.push_back(fin.next_with(e));
        e = sudo_event("command.finished", host_time("14:00:00", "010"), "mallory", yes);
        e["status_type"] = "exit";
        e["exit_status"] = 0;
        e["duration_ms"] = 1;
        a.push_back(fin.next_with(e));
        // Denied: the spool was full; a grant that did not verify.
        e = sudo_event("access.denied", host_time("15:00:00"), "alice", yes);
        e["spool_full"] = true;
        e["outcome"] = "error";
        e["message"] = "jitgate: denied: the audit spool is full";
        a.push_back(fin.next_with(e));
        e = sudo_event("access.requested", host_time("15:29:00"), "alice", whoami);
        e["request_id"] = "R-FORGED0001";
        e["rule"] = "default-approval";
        a.push_back(fin.next_with(e));
        e = sudo_event("access.denied", host_time("15:30:00"), "alice", whoami);
        e["request_id"] = "R-FORGED0001";
        e["rule"] = "default-approval";
        e["grant_rejected"] = "grant: nonce does not match this request";
        e["outcome"] = "invalid_grant";
        a.push_back(fin.next_with(e));
        // alice tried to approve her own request on the host.
        e = sudo_event("error", host_time("16:00:00"), "alice", whoami);
        e["request_id"] = "R-SELF000001";
        e["approver"] = "alice";
        e["refused"] = "self_approval";
        e["message"] = "approval refused: the requester cannot approve their own request";
        a.push_back(fin.next_with(e));
        // A login approved by erin 60 s after it was filed: a session of 30 minutes.
        e = Json{{"type", "access.requested"},
                 {"time", host_time("17:00:00")},
                 {"user", "alice"},
                 {"kind", "login"},
                 {"service", "sshd"},
                 {"remote_host", "192.0.2.10"},
                 {"request_id", "R-LOGIN00001"},
                 {"rule", "prod-login"}};
        a.push_back(fin.next_with(e));
        e["type"] = "access.approved";
        e["time"] = host_time("17:01:00");
        e["grant_id"] = "G-L1";
        e["approvers"] = {"erin"};
        service_approval(e, "R-LOGIN00001", "alice");
        a.push_back(fin.next_with(e));
        e["type"] = "session.opened";
        e["time"] = host_time("17:01:05");
        e["peer_pid"] = 777;
        a.push_back(fin.next_with(e));
        e["type"] = "session.closed";
        e["time"] = host_time("17:31:05");
        e["duration_ms"] = 1800000;
        a.push_back(fin.next_with(e));
        // frank approved frank's request (the service never lets this happen; the report must
        // show it if the record says so).
        const std::vector<std::string> ls{"/usr/bin/ls", "/root"};
        e = sudo_event("access.requested", host_time("18:00:00"), "frank", ls);
        e["request_id"] = "R-SELFOOPS01";
        e["rule"] = "default-approval";
        a.push_back(fin.next_with(e));
        e = sudo_event("access.approved", host_time("18:00:20"), "frank", ls);
        e["request_id"] = "R-SELFOOPS01";
        e["rule"] = "default-approval";
        e["grant_id"] = "G-F1";
        e["approvers"] = {"frank"};
        service_approval(e, "R-SELFOOPS01", "frank");
        a.push_back(fin.next_with(e));
        m_fin_last_seq = fin.seq();
        m_fin_last_hash = fin.hash();
        // The next day: outside the period.
        a.push_back(fin.next_with({{"type", "daemon.stopped"}, {"time", "2026-11-25T00:00:00.000Z"}}));
        m_fin_events = a;
        ASSERT_TRUE(store->ingest("fin-db-01", a, at("23:00:00")).stored);

        // web-02: seq 1, 2, then 5: a gap.
        HostChain web("web-02");
        std::vector<AuditEvent> b;
        b.push_back(web.next_with({{"type", "daemon.started"}, {"time", host_time("09:00:00")}}));
        e = sudo_event("access.allowed_by_rule", host_time("09:10:00"), "bob", ls);
        e["rule"] = "read-only";
        e["outcome"] = "allowed_by_rule";
        b.push_back(web.next_with(e));
        b.push_back(web.make_with(5, web.hash(), {{"type", "daemon.stopped"}, {"time", host_time("09:20:00")}}));
        ASSERT_TRUE(store->ingest("web-02", b, at("23:00:00")).stored);

        // old-03: silent since the 20th.
        HostChain old("old-03");
        ASSERT_TRUE(store
                        ->ingest("old-03",
                                 {old.next_with({{"type", "daemon.started"}, {"time", "2026-11-20T08:00:00.000Z"}})},
                                 at("00:00:00") - 4 * 86400)
                        .stored);

        // The approval service's record.
        file("fin-db-01", "R-APPROVED01", "alice", "09:00:00");
        approve("fin-db-01", "R-APPROVED01", "bob", "09:02:30");
        file("fin-db-01", "R-DENIED0001", "alice", "10:00:00");
        ASSERT_TRUE(store->finish("fin-db-01", "R-DENIED0001", Status::denied, "carol", "not during the close",
                                  at("10:01:00"),
                                  event(at("10:01:00"), "request.denied", "fin-db-01", "R-DENIED0001")));
        file("fin-db-01", "R-TIMEOUT001", "alice", "11:00:00");
        ASSERT_TRUE(store->finish("fin-db-01", "R-TIMEOUT001", Status::expired, "server", "", at("11:00:30"),
                                  event(at("11:00:30"), "request.expired", "fin-db-01", "R-TIMEOUT001")));
        file("fin-db-01", "R-SELF000001", "alice", "16:00:00");
        store->record(Event{at("16:00:10"), "approval.refused", "fin-db-01", "R-SELF000001", "alice",
                            "https://idp/ alice", "10.0.0.7",
                            R"({"why":"you cannot decide your own request","via":"web"})"});
        file("fin-db-01", "R-LOGIN00001", "alice", "17:00:00", "prod-login");
        approve("fin-db-01", "R-LOGIN00001", "erin", "17:01:00");
        file("fin-db-01", "R-SELFOOPS01", "frank", "18:00:00");
        approve("fin-db-01", "R-SELFOOPS01", "frank", "18:00:20");

        // Ingest opened a review item for each break-glass use. The first one is reviewed; the
        // second has no item, as an event stored before schema 3 (which opened none for events
        // already stored).
        m_database->exec("UPDATE break_glass_reviews SET opened_at = " + std::to_string(at("12:00:01")) +
                         ", due_at = " + std::to_string(at("12:00:01") + 86400) +
                         ", status = 'closed', reviewer = 'erin', reviewer_identity = 'https://idp/ erin', note = "
                         "'checked: whoami only <ok>', closed_at = " +
                         std::to_string(at("15:00:00")) + " WHERE host = 'fin-db-01' AND event_id = '" +
                         m_reviewed_glass + "'");
        m_database->exec("DELETE FROM break_glass_reviews WHERE host = 'fin-db-01' AND event_id <> '" +
                         m_reviewed_glass + "'");
    }

    // A request filed with the approval service as jitgated's service backend files it (the body
    // of daemon/approval/service.cpp body_of: names and argv as they are, the others escaped).
    void file_service(const std::string& host, const std::string& id, const std::string& requester,
                      const std::vector<Json>& argv, const std::string& rule, const std::string& created) {
        Request r;
        r.host = host;
        r.id = id;
        const Json body{{"protocol", 1},
                        {"id", id},
                        {"nonce", "nonce-" + id},
                        {"host", host},
                        {"requester", {{"user", requester}, {"uid", 2001}}},
                        {"account", {{"user", requester}, {"uid", 2001}}},
                        {"kind", "sudo"},
                        {"scope", "command"},
                        {"action",
                         {{"command", argv.at(0)},
                          {"argv", argv},
                          {"runas", "root"},
                          {"service", ""},
                          {"remote_host", ""},
                          {"cmd_sha256", std::string(64, 'c')}}},
                        {"reason", "restart after config change"},
                        {"ticket", ""},
                        {"rule", rule},
                        {"approvals_needed", 1},
                        {"ttl_s", 900},
                        {"timeout_s", 300}};
        r.body = body.dump();
        r.requester = requester;
        r.rule = rule;
        r.approver_groups = {"sox-approvers"};
        r.created_at = at(created);
        r.expires_at = at(created) + 3600;
        ASSERT_TRUE(store->create(r, event(r.created_at, "request.filed", host, id, "host:" + host)).created);
    }

    // A host's access.requested and access.approved through the service backend: the approval
    // service's URL in both, its grant id (the test signer's "jti-<id>") and key id in the
    // approval. `recorded` changes members of the approval as the host wrote them.
    void ship_service_approval(HostChain& chain, std::vector<AuditEvent>& out, const std::string& id,
                               const std::string& requester, const std::vector<std::string>& argv,
                               const std::string& hms, const Json& recorded = Json::object()) {
        Json e = sudo_event("access.requested", host_time(hms), requester, argv);
        e["request_id"] = id;
        e["rule"] = "default-approval";
        e["scope"] = "command";
        e["approval_service"] = "https://approvals.example:8443";
        out.push_back(chain.next_with(e));
        e["type"] = "access.approved";
        e["time"] = host_time(hms, "500");
        e["grant_id"] = "G-HOST-" + id;
        e["service_grant_id"] = "jti-" + id;
        e["kid"] = "k1";
        e["approvers"] = {"bob"};
        e["outcome"] = "grant";
        for (const auto& [key, value] : recorded.items()) {
            if (value.is_null())
                e.erase(key);
            else
                e[key] = value;
        }
        out.push_back(chain.next_with(e));
    }

    // svc-01, a host of the service backend: approvals the service gave as recorded (one with
    // names and arguments that need escaping), one it has no record of, one it denied, one
    // whose approval differs, one whose approval event hides the service, and a local approval
    // of its own; ghost-01 never shipped an event, quiet-02 none dated in the day, and the
    // service approved requests of both; idle-03 has only a denied request.
    void service_day() {
        HostChain svc("svc-01");
        std::vector<AuditEvent> a;
        a.push_back(svc.next_with({{"type", "daemon.started"}, {"time", host_time("08:00:00")}}));
        const std::vector<std::string> restart{"/usr/bin/systemctl", "restart", "ledger"};
        ship_service_approval(svc, a, "R-SVCOK00001", "alice", restart, "09:00:00");
        // A name with a backslash (a domain user) and arguments with a tab and bytes that are not
        // UTF-8: the host records them escaped, the service holds them as filed.
        ship_service_approval(svc, a, "R-SVCESC0001", "CORP\\\\carl", {"/usr/bin/printf", "a\\tb", "\\xff"},
                              "09:30:00");
        ship_service_approval(svc, a, "R-SVCNONE001", "alice", restart, "10:00:00");
        ship_service_approval(svc, a, "R-SVCDENY001", "alice", restart, "11:00:00");
        ship_service_approval(svc, a, "R-SVCDIFF001", "alice", restart, "12:00:00",
                              Json{{"rule", "quick"}, {"service_grant_id", "jti-other"}});
        // The approval event says nothing of the service; its request did.
        ship_service_approval(svc, a, "R-SVCHIDE001", "alice", restart, "13:00:00",
                              Json{{"service_grant_id", nullptr}, {"kid", nullptr}, {"approval_service", nullptr}});
        // A login approved at the service: its command is the PAM service, it has no argv.
        Json e = Json{{"type", "access.requested"},
                      {"time", host_time("13:30:00")},
                      {"user", "alice"},
                      {"requester", "alice"},
                      {"kind", "login"},
                      {"service", "sshd"},
                      {"remote_host", "192.0.2.10"},
                      {"request_id", "R-SVCLOGIN01"},
                      {"rule", "prod-login"},
                      {"scope", "login"},
                      {"approval_service", "https://approvals.example:8443"}};
        a.push_back(svc.next_with(e));
        e["type"] = "access.approved";
        e["time"] = host_time("13:30:00", "500");
        e["grant_id"] = "G-HOST-LOGIN";
        e["service_grant_id"] = "jti-R-SVCLOGIN01";
        e["approvers"] = {"bob"};
        a.push_back(svc.next_with(e));
        // jitgatectl approve on the host: no service record, no service field.
        e = sudo_event("access.requested", host_time("14:00:00"), "alice", restart);
        e["request_id"] = "R-LOCAL00001";
        e["rule"] = "default-approval";
        a.push_back(svc.next_with(e));
        e["type"] = "access.approved";
        e["time"] = host_time("14:00:30");
        e["grant_id"] = "G-LOCAL1";
        e["approvers"] = {"bob"};
        a.push_back(svc.next_with(e));
        // No word of the service in either event, as a local approval looks; but the service
        // holds this request id of the host, denied: its record decides, not the host's labels.
        e = sudo_event("access.requested", host_time("14:30:00"), "alice", restart);
        e["request_id"] = "R-SVCSTLT001";
        e["rule"] = "default-approval";
        a.push_back(svc.next_with(e));
        e["type"] = "access.approved";
        e["time"] = host_time("14:30:30");
        e["grant_id"] = "G-STEALTH1";
        e["approvers"] = {"bob"};
        a.push_back(svc.next_with(e));
        ASSERT_TRUE(store->ingest("svc-01", a, at("23:00:00")).stored);

        const std::vector<Json> restart_json{"/usr/bin/systemctl", "restart", "ledger"};
        file_service("svc-01", "R-SVCOK00001", "alice", restart_json, "default-approval", "09:00:00");
        approve("svc-01", "R-SVCOK00001", "bob", "09:00:00");
        file_service("svc-01", "R-SVCESC0001", "CORP\\carl",
                     {"/usr/bin/printf", "a\tb", Json{{"b64", jitgate::text::base64_encode("\xff")}}},
                     "default-approval", "09:30:00");
        approve("svc-01", "R-SVCESC0001", "bob", "09:30:00");
        Request login;
        login.host = "svc-01";
        login.id = "R-SVCLOGIN01";
        login.body = Json{{"protocol", 1},
                          {"id", login.id},
                          {"host", "svc-01"},
                          {"requester", {{"user", "alice"}, {"uid", 2001}}},
                          {"account", {{"user", "alice"}, {"uid", 2001}}},
                          {"kind", "login"},
                          {"scope", "login"},
                          {"action",
                           {{"command", ""},
                            {"argv", Json::array()},
                            {"runas", ""},
                            {"service", "sshd"},
                            {"remote_host", "192.0.2.10"}}},
                          {"rule", "prod-login"}}
                         .dump();
        login.requester = "alice";
        login.rule = "prod-login";
        login.created_at = at("13:30:00");
        login.expires_at = login.created_at + 3600;
        ASSERT_TRUE(store->create(login, event(login.created_at, "request.filed", "svc-01", login.id)).created);
        approve("svc-01", "R-SVCLOGIN01", "bob", "13:30:00");
        file_service("svc-01", "R-SVCDENY001", "alice", restart_json, "default-approval", "11:00:00");
        ASSERT_TRUE(store->finish("svc-01", "R-SVCDENY001", Status::denied, "carol", "not now", at("11:00:00"),
                                  event(at("11:00:00"), "request.denied", "svc-01", "R-SVCDENY001")));
        file_service("svc-01", "R-SVCDIFF001", "alice", {"/usr/bin/systemctl", "stop", "ledger"}, "default-approval",
                     "12:00:00");
        approve("svc-01", "R-SVCDIFF001", "bob", "12:00:00");
        file_service("svc-01", "R-SVCSTLT001", "alice", restart_json, "default-approval", "14:30:00");
        ASSERT_TRUE(store->finish("svc-01", "R-SVCSTLT001", Status::denied, "carol", "no", at("14:30:10"),
                                  event(at("14:30:10"), "request.denied", "svc-01", "R-SVCSTLT001")));

        // ghost-01: approved twice at the service, never shipped anything.
        file_service("ghost-01", "R-GHOST00001", "alice", restart_json, "default-approval", "15:00:00");
        approve("ghost-01", "R-GHOST00001", "bob", "15:01:00");
        file_service("ghost-01", "R-GHOST00002", "alice", restart_json, "default-approval", "16:00:00");
        approve("ghost-01", "R-GHOST00002", "bob", "16:01:00");
        // quiet-02: its stored events are of the day before (shipped late in the day), and its
        // shipper reported 40 more in its spool.
        HostChain quiet("quiet-02");
        IngestOptions reported;
        reported.reported_seq = 42;
        ASSERT_TRUE(store
                        ->ingest("quiet-02",
                                 {quiet.next_with({{"type", "daemon.started"}, {"time", "2026-11-23T08:00:00.000Z"}}),
                                  quiet.next_with({{"type", "config.loaded"}, {"time", "2026-11-23T08:00:01.000Z"}})},
                                 at("22:00:00"), reported)
                        .stored);
        file_service("quiet-02", "R-QUIET00001", "dave", restart_json, "default-approval", "17:00:00");
        approve("quiet-02", "R-QUIET00001", "bob", "17:02:00");
        // idle-03: nothing approved, nothing shipped.
        file_service("idle-03", "R-IDLE000001", "alice", restart_json, "default-approval", "18:00:00");
        ASSERT_TRUE(store->finish("idle-03", "R-IDLE000001", Status::denied, "carol", "no", at("18:01:00"),
                                  event(at("18:01:00"), "request.denied", "idle-03", "R-IDLE000001")));
    }

    report::Options day_options(const std::string& hosts = "*") const {
        report::Options o;
        o.from = at("00:00:00");
        o.to = o.from + 86400;
        o.hosts = hosts;
        o.silent_after = 86400;
        o.now = at("23:30:00");
        return o;
    }

    Json day_json(const std::string& hosts = "*") {
        return Json::parse(report::render(report::build(*store, day_options(hosts)), report::Format::json));
    }

    std::unique_ptr<Database> m_database;
    std::unique_ptr<Store> store;
    std::string m_reviewed_glass;
    std::vector<AuditEvent> m_fin_events;
    std::int64_t m_fin_last_seq = 0;
    std::string m_fin_last_hash;
};

const Json& action_of(const Json& report, const std::string& request_id) {
    for (const Json& a : report.at("actions"))
        if (a.at("request_id") == request_id) return a;
    throw std::runtime_error("no action for " + request_id);
}

const Json& host_of(const Json& report, const std::string& host) {
    for (const Json& h : report.at("hosts"))
        if (h.at("host") == host) return h;
    throw std::runtime_error("no host " + host);
}

std::multiset<std::string> exception_kinds(const Json& report) {
    std::multiset<std::string> out;
    for (const Json& e : report.at("exceptions")) out.insert(e.at("kind").get<std::string>());
    return out;
}

TEST_P(ReportTest, the_summary_of_a_scripted_day_counts_every_kind_of_action) {
    script_day();
    const Json r = day_json();
    EXPECT_EQ(r.at("from"), "2026-11-24T00:00:00Z");
    EXPECT_EQ(r.at("to"), "2026-11-25T00:00:00Z");
    const Json& s = r.at("summary");
    // fin-db-01: approved x3 (R-APPROVED01, login, frank's), denied x3 (carol, spool full,
    // forged grant), timeout, break-glass x2, allowed by rule; web-02: allowed by rule.
    EXPECT_EQ(s.at("actions"), 11);
    EXPECT_EQ(s.at("approved"), 3);
    EXPECT_EQ(s.at("denials"), 3);
    EXPECT_EQ(s.at("timeouts"), 1);
    EXPECT_EQ(s.at("break_glass"), 2);
    EXPECT_EQ(s.at("allowed_by_rule"), 2);
    EXPECT_EQ(s.at("pending"), 0);
    EXPECT_EQ(s.at("hosts"), 3);
    // Delays 150 (R-APPROVED01), 60 (login), 20 (frank's): nearest rank.
    EXPECT_EQ(s.at("delay_median_s"), 60);
    EXPECT_EQ(s.at("delay_p95_s"), 150);
    // fin-db-01's events of the day (seq 2..24) and web-02's three.
    EXPECT_EQ(s.at("host_events"), 23 + 3);
    std::map<std::pair<std::string, std::string>, int> by;
    for (const Json& c : s.at("by_host_rule")) by[{c.at("host"), c.at("rule")}] = c.at("actions");
    const std::map<std::pair<std::string, std::string>, int> expected{
        {{"fin-db-01", ""}, 3},      {{"fin-db-01", "default-approval"}, 4}, {{"fin-db-01", "prod-login"}, 1},
        {{"fin-db-01", "quick"}, 1}, {{"fin-db-01", "read-only"}, 1},        {{"web-02", "read-only"}, 1}};
    EXPECT_EQ(by, expected);
}

TEST_P(ReportTest, each_action_joins_its_host_events_to_the_services_record) {
    script_day();
    const Json r = day_json();
    const Json& ok = action_of(r, "R-APPROVED01");
    EXPECT_EQ(ok.at("host"), "fin-db-01");
    EXPECT_EQ(ok.at("decision"), "approved");
    EXPECT_EQ(ok.at("requester"), "alice");
    EXPECT_EQ(ok.at("command"), "/usr/bin/systemctl");
    EXPECT_EQ(ok.at("argv"), Json({"/usr/bin/systemctl", "restart", "ledger"}));
    EXPECT_EQ(ok.at("reason"), "restart after config change");
    EXPECT_EQ(ok.at("ticket"), "CHG0012345");
    EXPECT_EQ(ok.at("requested_time"), "2026-11-24T09:00:00.000Z");
    EXPECT_EQ(ok.at("decided_time"), "2026-11-24T09:02:30.000Z");
    EXPECT_EQ(ok.at("request_found"), true);
    EXPECT_EQ(ok.at("server_status"), "approved");
    EXPECT_EQ(ok.at("filed_at"), "2026-11-24T09:00:00Z");
    EXPECT_EQ(ok.at("server_decided_at"), "2026-11-24T09:02:30Z");
    ASSERT_EQ(ok.at("approvals").size(), 1u);
    EXPECT_EQ(ok.at("approvals")[0].at("approver"), "bob");
    EXPECT_EQ(ok.at("approvals")[0].at("identity"), "https://idp/ bob");
    EXPECT_EQ(ok.at("approvals")[0].at("source_address"), "10.0.0.9");
    EXPECT_EQ(ok.at("approvals")[0].at("via"), "web");
    EXPECT_EQ(ok.at("delay_s"), 150);
    EXPECT_EQ(ok.at("result_type"), "command");
    EXPECT_EQ(ok.at("action_time"), "2026-11-24T09:02:31.500Z");
    EXPECT_EQ(ok.at("status_type"), "exit");
    EXPECT_EQ(ok.at("exit_status"), 0);
    EXPECT_EQ(ok.at("duration_ms"), 1200);
    EXPECT_EQ(ok.at("self_approved"), false);

    const Json& denied = action_of(r, "R-DENIED0001");
    EXPECT_EQ(denied.at("decision"), "denied");
    EXPECT_EQ(denied.at("server_status"), "denied");
    EXPECT_EQ(denied.at("decided_by"), "carol");
    EXPECT_EQ(denied.at("decision_reason"), "not during the close");
    EXPECT_TRUE(denied.at("delay_s").is_null());
    EXPECT_EQ(denied.at("result_type"), "");

    const Json& timeout = action_of(r, "R-TIMEOUT001");
    EXPECT_EQ(timeout.at("decision"), "timeout");
    EXPECT_EQ(timeout.at("server_status"), "expired");
    EXPECT_EQ(timeout.at("rule"), "quick");

    const Json& login = action_of(r, "R-LOGIN00001");
    EXPECT_EQ(login.at("kind"), "login");
    EXPECT_EQ(login.at("command"), "sshd");
    EXPECT_EQ(login.at("remote_host"), "192.0.2.10");
    EXPECT_EQ(login.at("result_type"), "session");
    EXPECT_EQ(login.at("action_time"), "2026-11-24T17:01:05.000Z");
    EXPECT_EQ(login.at("end_time"), "2026-11-24T17:31:05.000Z");
    EXPECT_EQ(login.at("duration_ms"), 1800000);
    EXPECT_EQ(login.at("delay_s"), 60);
    EXPECT_EQ(login.at("approvals")[0].at("approver"), "erin");

    // The allow rule and break-glass (no request id) pair with their command.finished by user,
    // command and argv.
    bool saw_rule = false;
    for (const Json& a : r.at("actions")) {
        if (a.at("decision") != "allowed_by_rule" || a.at("host") != "fin-db-01") continue;
        saw_rule = true;
        EXPECT_EQ(a.at("user"), "mallory");
        EXPECT_EQ(a.at("rule"), "read-only");
        EXPECT_EQ(a.at("exit_status"), 0);
        EXPECT_EQ(a.at("action_time"), "2026-11-24T14:00:00.010Z");
        EXPECT_EQ(a.at("request_found"), false);
    }
    EXPECT_TRUE(saw_rule);
}

TEST_P(ReportTest, an_approver_who_is_the_requester_is_flagged_as_an_exception) {
    script_day();
    const Json r = day_json();
    const Json& oops = action_of(r, "R-SELFOOPS01");
    EXPECT_EQ(oops.at("self_approved"), true);
    EXPECT_EQ(action_of(r, "R-APPROVED01").at("self_approved"), false);
    int flagged = 0;
    for (const Json& e : r.at("exceptions"))
        if (e.at("kind") == "approver_is_requester") {
            ++flagged;
            EXPECT_EQ(e.at("request_id"), "R-SELFOOPS01");
            EXPECT_EQ(e.at("user"), "frank");
        }
    EXPECT_EQ(flagged, 1);
}

TEST_P(ReportTest, break_glass_uses_are_listed_with_their_review_or_its_absence) {
    script_day();
    const Json r = day_json();
    ASSERT_EQ(r.at("break_glass").size(), 2u);
    const Json& reviewed = r.at("break_glass")[0];
    EXPECT_EQ(reviewed.at("event_id"), m_reviewed_glass);
    EXPECT_EQ(reviewed.at("user"), "dave");
    EXPECT_EQ(reviewed.at("reason"), "payments down, INC-4711");
    EXPECT_EQ(reviewed.at("command"), "/usr/bin/whoami");
    EXPECT_EQ(reviewed.at("exit_status"), 0);
    EXPECT_EQ(reviewed.at("review_status"), "closed");
    EXPECT_EQ(reviewed.at("reviewer"), "erin");
    EXPECT_EQ(reviewed.at("note"), "checked: whoami only <ok>");
    EXPECT_EQ(reviewed.at("review_closed_at"), "2026-11-24T15:00:00Z");
    const Json& unreviewed = r.at("break_glass")[1];
    EXPECT_EQ(unreviewed.at("time"), "2026-11-24T13:00:00.000Z");
    EXPECT_EQ(unreviewed.at("status_type"), "signal");
    EXPECT_EQ(unreviewed.at("review_status"), "none");
    EXPECT_EQ(unreviewed.at("reviewer"), "");
}

// A break-glass use nobody reviewed is an exception in every format: without a review item, and
// with one still open past its due time; an open review not yet due is not.
TEST_P(ReportTest, an_unreviewed_break_glass_use_is_an_exception) {
    script_day();
    const auto unreviewed = [](const Json& report) {
        std::vector<Json> out;
        for (const Json& e : report.at("exceptions"))
            if (e.at("kind") == "break_glass_unreviewed") out.push_back(e);
        return out;
    };
    Json r = day_json();
    const std::string glass = r.at("break_glass")[1].at("event_id");
    auto found = unreviewed(r);
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].at("host"), "fin-db-01");
    EXPECT_EQ(found[0].at("event_id"), glass);
    EXPECT_EQ(found[0].at("user"), "dave");
    EXPECT_EQ(found[0].at("time"), "2026-11-24T13:00:00.000Z");
    EXPECT_EQ(found[0].at("due"), "");
    EXPECT_EQ(found[0].at("detail"), "no review item");
    const report::Report built = report::build(*store, day_options());
    const std::string html = report::render(built, report::Format::html);
    EXPECT_NE(html.find("break_glass_unreviewed"), std::string::npos);
    EXPECT_EQ(html.find("<p class=\"ok\">None.</p>"), std::string::npos);

    // An open review item, due after the report's `now` (23:30): not an exception yet.
    m_database->exec("INSERT INTO break_glass_reviews (host, event_id, user_name, time, opened_at, due_at, status) "
                     "VALUES ('fin-db-01', '" +
                     glass + "', 'dave', '" + host_time("13:00:00") + "', " + std::to_string(at("13:00:01")) + ", " +
                     std::to_string(at("23:30:01")) + ", 'open')");
    EXPECT_TRUE(unreviewed(day_json()).empty());
    // The same item past its due time: an exception naming when it was due.
    m_database->exec("UPDATE break_glass_reviews SET due_at = " + std::to_string(at("23:00:00")) +
                     " WHERE event_id = '" + glass + "'");
    r = day_json();
    found = unreviewed(r);
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].at("event_id"), glass);
    EXPECT_EQ(found[0].at("due"), "2026-11-24T23:00:00Z");
    EXPECT_EQ(found[0].at("detail"), "review open past its due time 2026-11-24T23:00:00Z");
}

TEST_P(ReportTest, exceptions_list_refusals_rejected_grants_full_spools_gaps_and_silent_hosts) {
    script_day();
    const Json r = day_json();
    const std::multiset<std::string> expected{
        "refused_self_approval",     // the host's error event
        "refused_self_approval",     // the service's approval.refused
        "grant_rejected",            // R-FORGED0001
        "spool_full",                // the 15:00 denial
        "approver_is_requester",     // frank
        "chain_broken",              // the service's audit.chain_gap for web-02
        "chain_broken",              // web-02's chain state
        "chain_verification_failed", // the report's own check of web-02
        "host_silent",               // old-03
        "break_glass_unreviewed",    // dave's 13:00 break-glass use, no review item
    };
    EXPECT_EQ(exception_kinds(r), expected) << r.at("exceptions").dump(1);
    EXPECT_EQ(r.at("summary").at("exceptions"), expected.size());
    for (const Json& e : r.at("exceptions")) {
        if (e.at("kind") == "grant_rejected") {
            EXPECT_EQ(e.at("request_id"), "R-FORGED0001");
            EXPECT_EQ(e.at("detail"), "grant: nonce does not match this request");
        }
        if (e.at("kind") == "host_silent") {
            EXPECT_EQ(e.at("host"), "old-03");
        }
        if (e.at("kind") == "refused_self_approval") {
            EXPECT_EQ(e.at("request_id"), "R-SELF000001");
        }
        if (e.at("kind") == "chain_verification_failed") {
            EXPECT_EQ(e.at("host"), "web-02");
        }
    }
}

TEST_P(ReportTest, each_hosts_chain_is_reverified_with_its_first_and_last_seq_and_hash) {
    script_day();
    const Json r = day_json();
    const Json& fin = host_of(r, "fin-db-01");
    EXPECT_EQ(fin.at("events_in_period"), 23);
    EXPECT_EQ(fin.at("first_seq"), 2);
    EXPECT_EQ(fin.at("first_hash"), m_fin_events[1].hash);
    EXPECT_EQ(fin.at("first_time"), "2026-11-24T09:00:00.000Z");
    EXPECT_EQ(fin.at("last_seq"), m_fin_last_seq);
    EXPECT_EQ(fin.at("last_hash"), m_fin_last_hash);
    EXPECT_EQ(fin.at("before_seq"), 1);
    EXPECT_EQ(fin.at("before_hash"), m_fin_events[0].hash);
    EXPECT_EQ(fin.at("verified_events"), 24);
    EXPECT_EQ(fin.at("verified"), true);
    EXPECT_EQ(fin.at("problems"), Json::array());
    EXPECT_EQ(fin.at("stored_events"), 25);
    EXPECT_EQ(fin.at("overall_last_seq"), 25);
    EXPECT_EQ(fin.at("overall_last_hash"), m_fin_events.back().hash);
    EXPECT_EQ(fin.at("broken"), false);
    EXPECT_EQ(fin.at("silent"), false);

    const Json& web = host_of(r, "web-02");
    EXPECT_EQ(web.at("first_seq"), 1);
    EXPECT_EQ(web.at("last_seq"), 5);
    EXPECT_EQ(web.at("before_seq"), 0);
    EXPECT_EQ(web.at("verified"), false);
    ASSERT_FALSE(web.at("problems").empty());
    EXPECT_NE(web.at("problems")[0].get<std::string>().find("seq 5"), std::string::npos) << web.at("problems");
    EXPECT_EQ(web.at("broken"), true);
    EXPECT_EQ(web.at("problem_seq"), 5);

    const Json& old = host_of(r, "old-03");
    EXPECT_EQ(old.at("events_in_period"), 0);
    EXPECT_EQ(old.at("first_seq"), 0);
    EXPECT_EQ(old.at("silent"), true);
}

// An edited line in the database: the stored hash no longer matches its line.
TEST_P(ReportTest, a_line_edited_in_the_database_fails_the_reports_own_check) {
    script_day();
    m_database->exec("UPDATE audit_events SET line = replace(line, 'restart after config change', "
                     "'restart after config chanGe') WHERE host = 'fin-db-01' AND seq = 2");
    const Json r = day_json();
    const Json& fin = host_of(r, "fin-db-01");
    EXPECT_EQ(fin.at("verified"), false);
    EXPECT_EQ(fin.at("broken"), false); // the store's check on arrival saw nothing: it happened later
    ASSERT_FALSE(fin.at("problems").empty());
    EXPECT_NE(fin.at("problems")[0].get<std::string>().find("seq 2"), std::string::npos) << fin.at("problems");
    EXPECT_EQ(exception_kinds(r).count("chain_verification_failed"), 2u);
}

// A column edited without its line (what a query by hash would find): the line still checks
// out, the copy does not.
TEST_P(ReportTest, a_stored_column_that_differs_from_its_line_fails_the_reports_own_check) {
    script_day();
    m_database->exec("UPDATE audit_events SET hash = '" + std::string(64, 'a') +
                     "' WHERE host = 'fin-db-01' AND seq = 3");
    const Json r = day_json();
    const Json& fin = host_of(r, "fin-db-01");
    EXPECT_EQ(fin.at("verified"), false);
    EXPECT_EQ(fin.at("problems"), Json({"seq 3: the stored columns differ from the line"}));
}

// The columns the report reads an event by (its type, time, user and request) are checked
// against the line too: a row whose type was changed in the database (a break-glass use made
// to look like something else) is a problem, not a quiet omission.
TEST_P(ReportTest, every_column_the_report_reads_by_is_checked_against_the_line) {
    script_day();
    const std::string where = " WHERE host = 'fin-db-01' AND seq = 3";
    for (const std::string column : {"type", "time", "user_name", "request_id"}) {
        m_database->exec("UPDATE audit_events SET " + column + " = " + column + " || 'x'" + where);
        const Json r = day_json();
        const Json& fin = host_of(r, "fin-db-01");
        EXPECT_EQ(fin.at("verified"), false) << column;
        EXPECT_EQ(fin.at("problems"), Json({"seq 3: the stored columns differ from the line"})) << column;
        m_database->exec("UPDATE audit_events SET " + column + " = substr(" + column + ", 1, length(" + column +
                         ") - 1)" + where);
        EXPECT_EQ(host_of(day_json(), "fin-db-01").at("verified"), true) << column;
    }
}

// A chain marked broken stays an exception in later periods, though none of its events is in them.
TEST_P(ReportTest, a_broken_chain_is_an_exception_in_every_later_period) {
    script_day();
    report::Options next = day_options();
    next.from += 86400;
    next.to += 86400;
    const Json r = Json::parse(report::render(report::build(*store, next), report::Format::json));
    EXPECT_EQ(host_of(r, "web-02").at("events_in_period"), 0);
    EXPECT_EQ(host_of(r, "web-02").at("problem_at"), "2026-11-24T23:00:00Z");
    int broken = 0;
    for (const Json& e : r.at("exceptions"))
        if (e.at("kind") == "chain_broken") {
            ++broken;
            EXPECT_EQ(e.at("host"), "web-02");
            EXPECT_EQ(e.at("time"), "2026-11-24T23:00:00Z");
        }
    EXPECT_EQ(broken, 1);
}

TEST_P(ReportTest, the_host_pattern_selects_hosts) {
    script_day();
    const Json r = day_json("fin-*");
    ASSERT_EQ(r.at("hosts").size(), 1u);
    EXPECT_EQ(r.at("hosts")[0].at("host"), "fin-db-01");
    for (const Json& a : r.at("actions")) EXPECT_EQ(a.at("host"), "fin-db-01");
    EXPECT_EQ(exception_kinds(r).count("host_silent"), 0u);
    EXPECT_EQ(exception_kinds(r).count("chain_broken"), 0u);
}

TEST_P(ReportTest, a_request_without_a_decision_in_the_period_is_listed_as_pending) {
    HostChain fin("fin-db-01");
    Json e = sudo_event("access.requested", host_time("23:59:00"), "alice", {"/usr/bin/id"});
    e["request_id"] = "R-LATE000001";
    ASSERT_TRUE(store->ingest("fin-db-01", {fin.next_with(e)}, at("23:59:01")).stored);
    const Json r = day_json();
    EXPECT_EQ(action_of(r, "R-LATE000001").at("decision"), "pending");
    EXPECT_EQ(action_of(r, "R-LATE000001").at("request_found"), false);
    EXPECT_EQ(r.at("summary").at("pending"), 1);
}

TEST_P(ReportTest, an_automatic_approval_is_counted_apart_from_approvals_by_people) {
    HostChain fin("fin-db-01");
    const std::vector<std::string> restart{"/usr/bin/systemctl", "restart", "ledger"};
    Json e = sudo_event("access.auto_approved", host_time("03:10:00"), "dave", restart);
    e["request_id"] = "R-AUTO000001";
    e["grant_id"] = "G-AUTO000001";
    e["condition"] = "on_call";
    e["approvers"] = Json::array();
    e["window"] = "nights";
    Json done = sudo_event("command.finished", host_time("03:10:02"), "dave", restart);
    done["request_id"] = "R-AUTO000001";
    done["grant_id"] = "G-AUTO000001";
    done["status_type"] = "exit";
    done["exit_status"] = 0;
    ASSERT_TRUE(store->ingest("fin-db-01", {fin.next_with(e), fin.next_with(done)}, at("03:10:03")).stored);
    const Json r = day_json();
    EXPECT_EQ(r.at("summary").at("auto_approved"), 1);
    EXPECT_EQ(r.at("summary").at("approved"), 0) << "nobody approved it";
    EXPECT_EQ(action_of(r, "R-AUTO000001").at("decision"), "auto_approved");
    EXPECT_EQ(action_of(r, "R-AUTO000001").at("exit_status"), 0) << "paired with what ran";
    const std::string html = report::render(report::build(*store, day_options()), report::Format::html);
    EXPECT_NE(html.find("<th>Approved</th><th>Auto-approved</th>"), std::string::npos);
    EXPECT_NE(html.find("<tr><td>1</td><td>0</td><td>1</td>"), std::string::npos) << "actions, approved, auto";
}

// What a host adds to a service approval it records as automatic (access.auto_approved).
Json service_auto_approved_fields() {
    return Json{{"type", "access.auto_approved"},
                {"approvers", Json::array()},
                {"condition", "on_call"},
                {"auto_approved", true}};
}

// The approval service's own approval (docs/server.md, "Automatic approval"): the host records
// access.auto_approved with the service's grant id; counted as automatic, never as a person's
// approval, and cross-checked: the service must have approved that request automatically.
TEST_P(ReportTest, an_automatic_approval_by_the_service_is_counted_apart_and_cross_checked) {
    HostChain svc("svc-01");
    std::vector<AuditEvent> a;
    const std::vector<std::string> restart{"/usr/bin/systemctl", "restart", "ledger"};
    const Json automatic = service_auto_approved_fields();
    ship_service_approval(svc, a, "R-SVCAUTO001", "alice", restart, "09:00:00", automatic);
    // The host says "automatic", the service's record says bob approved: a mismatch.
    ship_service_approval(svc, a, "R-SVCAUTO002", "alice", restart, "10:00:00", automatic);
    ASSERT_TRUE(store->ingest("svc-01", a, at("23:00:00")).stored);
    const std::vector<Json> restart_json{"/usr/bin/systemctl", "restart", "ledger"};
    file_service("svc-01", "R-SVCAUTO001", "alice", restart_json, "default-approval", "09:00:00");
    ASSERT_EQ(store
                  ->approve_automatically("svc-01", "R-SVCAUTO001", "jitgate (auto: on_call)", at("09:00:00"),
                                          grant_signer(),
                                          event(at("09:00:00"), "request.auto_approved", "svc-01", "R-SVCAUTO001"))
                  .outcome,
              ApproveOutcome::approved);
    file_service("svc-01", "R-SVCAUTO002", "alice", restart_json, "default-approval", "10:00:00");
    approve("svc-01", "R-SVCAUTO002", "bob", "10:00:00");
    const Json r = day_json();
    EXPECT_EQ(r.at("summary").at("auto_approved"), 2);
    EXPECT_EQ(r.at("summary").at("approved"), 0) << "nobody approved them on the hosts' word";
    const Json& ok = action_of(r, "R-SVCAUTO001");
    EXPECT_EQ(ok.at("decision"), "auto_approved");
    EXPECT_EQ(ok.at("approval_source"), "service");
    EXPECT_EQ(ok.at("service_check"), "ok") << ok.at("service_mismatch");
    EXPECT_EQ(ok.at("decided_by"), "jitgate (auto: on_call)");
    EXPECT_EQ(ok.at("approvals"), Json::array());
    std::vector<std::string> flagged;
    for (const Json& e : r.at("exceptions"))
        if (e.at("kind") == "request_mismatch") flagged.push_back(e.at("request_id").get<std::string>());
    EXPECT_EQ(flagged, std::vector<std::string>{"R-SVCAUTO002"});
    EXPECT_EQ(action_of(r, "R-SVCAUTO002").at("service_mismatch"), Json::array({"automatic"}));
}

// The host's automatic approval is an approval for the cross-check: one of a request the service
// holds pending is flagged even when the host's events hide the service; and who decided must
// agree both ways (the host says automatic, the service says a person, or the reverse).
TEST_P(ReportTest, an_automatic_approval_is_cross_checked_both_ways) {
    HostChain svc("svc-01");
    std::vector<AuditEvent> a;
    const std::vector<std::string> restart{"/usr/bin/systemctl", "restart", "ledger"};
    const Json automatic = service_auto_approved_fields();
    Json hidden = automatic;
    hidden["approval_service"] = nullptr;
    hidden["service_grant_id"] = nullptr;
    hidden["kid"] = nullptr;
    ship_service_approval(svc, a, "R-SVCAUTO003", "alice", restart, "09:00:00", automatic);
    ship_service_approval(svc, a, "R-SVCAUTO004", "alice", restart, "09:10:00", hidden);
    ship_service_approval(svc, a, "R-SVCAUTO005", "alice", restart, "09:20:00"); // "bob approved"
    ASSERT_TRUE(store->ingest("svc-01", a, at("23:00:00")).stored);
    const std::vector<Json> restart_json{"/usr/bin/systemctl", "restart", "ledger"};
    file_service("svc-01", "R-SVCAUTO003", "alice", restart_json, "default-approval", "09:00:00");
    file_service("svc-01", "R-SVCAUTO004", "alice", restart_json, "default-approval", "09:10:00");
    file_service("svc-01", "R-SVCAUTO005", "alice", restart_json, "default-approval", "09:20:00");
    ASSERT_EQ(store
                  ->approve_automatically("svc-01", "R-SVCAUTO005", "jitgate (auto: on_call)", at("09:20:00"),
                                          grant_signer(),
                                          event(at("09:20:00"), "request.auto_approved", "svc-01", "R-SVCAUTO005"))
                  .outcome,
              ApproveOutcome::approved);
    const Json r = day_json();
    EXPECT_EQ(action_of(r, "R-SVCAUTO003").at("service_check"), "not_approved_at_service");
    EXPECT_EQ(action_of(r, "R-SVCAUTO004").at("service_check"), "not_approved_at_service")
        << "the service holds it pending, whatever the host's events say of the service";
    const Json& person = action_of(r, "R-SVCAUTO005");
    EXPECT_EQ(person.at("service_check"), "request_mismatch");
    EXPECT_EQ(person.at("service_mismatch"), Json::array({"automatic"}));
    std::vector<std::string> not_approved;
    std::vector<std::string> mismatch;
    for (const Json& e : r.at("exceptions")) {
        if (e.at("kind") == "not_approved_at_service") not_approved.push_back(e.at("request_id").get<std::string>());
        if (e.at("kind") == "request_mismatch") {
            mismatch.push_back(e.at("request_id").get<std::string>());
            EXPECT_NE(e.at("detail").get<std::string>().find("automatic: host \"by a person\""), std::string::npos)
                << e.at("detail");
        }
    }
    EXPECT_EQ(not_approved, (std::vector<std::string>{"R-SVCAUTO003", "R-SVCAUTO004"}));
    EXPECT_EQ(mismatch, std::vector<std::string>{"R-SVCAUTO005"});
}

TEST_P(ReportTest, the_csv_has_one_row_per_action_under_its_documented_header) {
    script_day();
    const std::string csv = report::render(report::build(*store, day_options()), report::Format::csv);
    const auto rows = parse_csv(csv);
    ASSERT_EQ(rows.size(), 1u + 11u);
    const std::vector<std::string> header{"host",
                                          "decided_time",
                                          "decision",
                                          "outcome",
                                          "request_id",
                                          "grant_id",
                                          "kind",
                                          "requester",
                                          "user",
                                          "login_user",
                                          "command",
                                          "argv",
                                          "runas",
                                          "rule",
                                          "reason",
                                          "ticket",
                                          "break_glass_reason",
                                          "requested_time",
                                          "filed_at",
                                          "approved_at",
                                          "approvers",
                                          "approver_identities",
                                          "approver_sources",
                                          "delay_s",
                                          "result_type",
                                          "action_time",
                                          "end_time",
                                          "status_type",
                                          "exit_status",
                                          "signal",
                                          "duration_ms",
                                          "server_status",
                                          "decided_by",
                                          "decision_reason",
                                          "self_approved",
                                          "approval_source",
                                          "service_grant_id",
                                          "service_check",
                                          "service_mismatch"};
    EXPECT_EQ(rows[0], header);
    std::map<std::string, std::vector<std::string>> by_request;
    for (std::size_t i = 1; i < rows.size(); ++i) {
        ASSERT_EQ(rows[i].size(), header.size()) << i;
        by_request[rows[i][4]] = rows[i];
    }
    const auto cell = [&](const std::string& request, const std::string& column) {
        const auto at = std::find(header.begin(), header.end(), column) - header.begin();
        return by_request.at(request).at(static_cast<std::size_t>(at));
    };
    EXPECT_EQ(cell("R-APPROVED01", "host"), "fin-db-01");
    EXPECT_EQ(cell("R-APPROVED01", "decided_time"), "2026-11-24T09:02:30.000Z");
    EXPECT_EQ(cell("R-APPROVED01", "decision"), "approved");
    EXPECT_EQ(cell("R-APPROVED01", "argv"), R"(["/usr/bin/systemctl","restart","ledger"])");
    EXPECT_EQ(cell("R-APPROVED01", "ticket"), "CHG0012345");
    EXPECT_EQ(cell("R-APPROVED01", "filed_at"), "2026-11-24T09:00:00Z");
    EXPECT_EQ(cell("R-APPROVED01", "approved_at"), "2026-11-24T09:02:30Z");
    EXPECT_EQ(cell("R-APPROVED01", "approvers"), "bob");
    EXPECT_EQ(cell("R-APPROVED01", "approver_identities"), "https://idp/ bob");
    EXPECT_EQ(cell("R-APPROVED01", "approver_sources"), "10.0.0.9 via web");
    EXPECT_EQ(cell("R-APPROVED01", "delay_s"), "150");
    EXPECT_EQ(cell("R-APPROVED01", "exit_status"), "0");
    EXPECT_EQ(cell("R-APPROVED01", "duration_ms"), "1200");
    EXPECT_EQ(cell("R-APPROVED01", "self_approved"), "false");
    EXPECT_EQ(cell("R-DENIED0001", "decided_by"), "carol");
    EXPECT_EQ(cell("R-DENIED0001", "delay_s"), "");
    EXPECT_EQ(cell("R-DENIED0001", "approved_at"), "");
    // A cell a spreadsheet would take for a formula starts with an apostrophe.
    EXPECT_EQ(cell("R-DENIED0001", "reason"), "'=1+1 cleanup");
    EXPECT_EQ(cell("R-SELFOOPS01", "self_approved"), "true");
    EXPECT_EQ(cell("R-LOGIN00001", "end_time"), "2026-11-24T17:31:05.000Z");
}

TEST_P(ReportTest, the_html_is_self_contained_and_escapes_every_stored_string) {
    script_day();
    const std::string html = report::render(report::build(*store, day_options()), report::Format::html);
    EXPECT_EQ(html.find("<script"), std::string::npos);
    EXPECT_NE(html.find("db locked &lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
    EXPECT_NE(html.find("checked: whoami only &lt;ok&gt;"), std::string::npos);
    EXPECT_NE(html.find("ok &lt;b&gt;by&lt;/b&gt; bob"), std::string::npos);
    EXPECT_EQ(html.find("src="), std::string::npos);
    EXPECT_EQ(html.find("href="), std::string::npos);
    EXPECT_EQ(html.find("url("), std::string::npos);
    EXPECT_NE(html.find("no review item"), std::string::npos);
}

TEST_P(ReportTest, the_pdf_made_by_weasyprint_holds_the_key_figures_and_renders_a_page) {
    script_day();
    const std::string pdf = report::render(report::build(*store, day_options()), report::Format::pdf);
    ASSERT_EQ(pdf.rfind("%PDF-", 0), 0u);
    const fs::path dir = fs::temp_directory_path() / ("jitgate-report-pdf-" + std::to_string(::getpid()) + "-" +
                                                      (GetParam() == Backend::sqlite ? "sqlite" : "pg"));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path file = dir / "report.pdf";
    std::ofstream(file, std::ios::binary) << pdf;
    const auto [text_status, text] = run("pdftotext '" + file.string() + "' -");
    ASSERT_EQ(text_status, 0);
    // Cells wrap their text: compare with each run of white space as one space.
    std::string words;
    for (const char c : text) {
        const bool space = c == ' ' || c == '\n' || c == '\f';
        if (!space)
            words += c;
        else if (!words.empty() && words.back() != ' ')
            words += ' ';
    }
    for (const char* needle : {"jitgate evidence report", "R-APPROVED01", "CHG0012345", "payments down, INC-4711",
                               "no review item", "approver_is_requester", "host_silent", "web-02", "150 s"})
        EXPECT_NE(words.find(needle), std::string::npos) << needle << "\n" << words;
    // A chain's last hash, as printed, for an auditor to re-verify (a hash may wrap anywhere).
    std::string flat;
    for (const char c : words)
        if (c != ' ') flat += c;
    EXPECT_NE(flat.find(m_fin_last_hash), std::string::npos);
    const auto [png_status, ignored] =
        run("pdftoppm -png -r 40 -f 1 -l 1 '" + file.string() + "' '" + (dir / "page").string() + "'");
    ASSERT_EQ(png_status, 0);
    fs::path page;
    for (const auto& entry : fs::directory_iterator(dir))
        if (entry.path().extension() == ".png") page = entry.path();
    ASSERT_FALSE(page.empty());
    std::ifstream png(page, std::ios::binary);
    char magic[8] = {};
    png.read(magic, 8);
    EXPECT_EQ(std::string(magic, 8), std::string("\x89PNG\r\n\x1a\n", 8));
    EXPECT_GT(fs::file_size(page), 1000u);
    fs::remove_all(dir);
}

// Without WeasyPrint the PDF fails with a message that names the package to install.
TEST_P(ReportTest, a_pdf_without_weasyprint_fails_and_says_what_to_install) {
    script_day();
    const report::Report r = report::build(*store, day_options());
    const std::string path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
    ::setenv("PATH", "/nonexistent", 1);
    try {
        report::render(r, report::Format::pdf);
        ADD_FAILURE() << "a PDF without WeasyPrint";
    } catch (const jitgate::Error& e) {
        EXPECT_EQ(e.code(), jitgate::ErrorCode::io);
        EXPECT_NE(std::string(e.what()).find("install the Debian package `weasyprint`"), std::string::npos) << e.what();
    }
    ::setenv("PATH", path.c_str(), 1);
    // The other formats do not need it.
    EXPECT_FALSE(report::render(r, report::Format::html).empty());
}

// The reading methods page by keyset: every row once, in order, whatever the page size.
TEST_P(ReportTest, the_stores_reading_methods_page_through_every_row_once) {
    script_day();
    std::vector<std::string> seen;
    std::string after_time;
    std::int64_t after_id = 0;
    for (;;) {
        const auto page =
            store->audit_events_in_period(host_time("00:00:00"), "2026-11-25T00:00:00.000Z", after_time, after_id, 2);
        for (const auto& e : page) seen.push_back(e.event.time + " " + e.host + " " + std::to_string(e.event.seq));
        if (page.size() < 2) break;
        after_time = page.back().event.time;
        after_id = page.back().row;
    }
    EXPECT_EQ(seen.size(), 26u);
    EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
    EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size());

    std::vector<std::int64_t> seqs;
    std::int64_t after_seq = 0;
    after_id = 0;
    for (;;) {
        const auto page = store->audit_events_by_seq("fin-db-01", after_seq, after_id, 24, 5);
        for (const auto& e : page) seqs.push_back(e.event.seq);
        if (page.size() < 5) break;
        after_seq = page.back().event.seq;
        after_id = page.back().row;
    }
    std::vector<std::int64_t> expected(24);
    std::iota(expected.begin(), expected.end(), 1);
    EXPECT_EQ(seqs, expected);

    std::vector<std::string> types;
    std::int64_t after_at = 0;
    after_id = 0;
    for (;;) {
        const auto page = store->events_in_period(at("16:00:00"), at("16:00:11"), after_at, after_id, 1);
        for (const auto& e : page) types.push_back(e.event.type);
        if (page.empty()) break;
        after_at = page.back().event.at;
        after_id = page.back().id;
    }
    EXPECT_EQ(types, (std::vector<std::string>{"request.filed", "approval.refused"}));

    const auto chains = store->audit_chains_after("", 2);
    ASSERT_EQ(chains.size(), 2u);
    EXPECT_EQ(chains[0].host, "fin-db-01");
    EXPECT_EQ(chains[1].host, "old-03");
    const auto rest = store->audit_chains_after("old-03", 2);
    ASSERT_EQ(rest.size(), 1u);
    EXPECT_EQ(rest[0].host, "web-02");

    const auto review = store->find_break_glass_review("fin-db-01", m_reviewed_glass);
    ASSERT_TRUE(review);
    EXPECT_TRUE(review->closed);
    EXPECT_EQ(review->reviewer_identity, "https://idp/ erin");
    EXPECT_EQ(review->due_at, at("12:00:01") + 86400);
    EXPECT_FALSE(store->find_break_glass_review("fin-db-01", "nope"));
}

TEST_P(ReportTest, the_report_command_writes_the_file_and_refuses_bad_dates_before_opening_anything) {
    script_day();
    int opened = 0;
    const auto open = [&]() -> std::unique_ptr<Store> {
        ++opened;
        return m_database->open();
    };
    std::FILE* out = std::tmpfile();
    std::FILE* err = std::tmpfile();
    const auto run_command = [&](std::vector<std::string> args) {
        return jitgate::server::report_command(args, open, at("23:30:00"), out, err);
    };
    EXPECT_EQ(run_command({"--from", "2026-11-31", "--to", "2026-12-01"}), 2);
    EXPECT_EQ(run_command({"--from", "2026-11-25", "--to", "2026-11-24"}), 2);
    EXPECT_EQ(run_command({"--from", "2026-11-24T00:00:00", "--to", "2026-11-25"}), 2); // no offset
    EXPECT_EQ(run_command({"--from", "2026-11-24", "--to", "2026-11-24", "--format", "xls"}), 2);
    EXPECT_EQ(run_command({"--from", "2026-11-24"}), 2);
    EXPECT_EQ(opened, 0);
    const fs::path file = fs::temp_directory_path() / ("jitgate-report-" + std::to_string(::getpid()) +
                                                       (GetParam() == Backend::sqlite ? "-sqlite" : "-pg") + ".json");
    ASSERT_EQ(run_command({"--from", "2026-11-24", "--to", "2026-11-24", "--format", "json", "--hosts", "web-*",
                           "--output", file.string()}),
              0);
    EXPECT_EQ(opened, 1);
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    std::ifstream in(file);
    const Json r = Json::parse(in);
    EXPECT_EQ(r.at("from"), "2026-11-24T00:00:00Z");
    EXPECT_EQ(r.at("to"), "2026-11-25T00:00:00Z"); // --to's whole day
    ASSERT_EQ(r.at("hosts").size(), 1u);
    EXPECT_EQ(r.at("hosts")[0].at("host"), "web-02");
    fs::remove(file);
    std::fclose(out);
    std::fclose(err);
}

std::vector<Json> exceptions_of(const Json& report, const std::string& kind) {
    std::vector<Json> out;
    for (const Json& e : report.at("exceptions"))
        if (e.at("kind") == kind) out.push_back(e);
    return out;
}

// Every exception of a day of service approvals: what the host recorded of an approval by the
// approval service is checked against the service's record; a local approval is not.
TEST_P(ReportTest, a_service_day_has_exactly_its_cross_check_exceptions) {
    service_day();
    const Json r = day_json();
    const std::multiset<std::string> expected{
        "not_approved_at_service", // R-SVCNONE001: no record
        "not_approved_at_service", // R-SVCDENY001: denied
        "not_approved_at_service", // R-SVCHIDE001: filed with the service, approved without a word of it
        "not_approved_at_service", // R-SVCSTLT001: no word of the service at all, denied there
        "request_mismatch",        // R-SVCDIFF001
        "host_never_shipped",      // ghost-01
        "host_never_shipped",      // quiet-02
    };
    EXPECT_EQ(exception_kinds(r), expected) << r.at("exceptions").dump(1);
    EXPECT_EQ(r.at("summary").at("exceptions"), expected.size());
}

TEST_P(ReportTest, a_service_approval_the_service_recorded_as_the_host_did_passes_the_cross_check) {
    service_day();
    const Json r = day_json();
    const Json& ok = action_of(r, "R-SVCOK00001");
    EXPECT_EQ(ok.at("approval_source"), "service");
    EXPECT_EQ(ok.at("service_grant_id"), "jti-R-SVCOK00001");
    EXPECT_EQ(ok.at("service_check"), "ok");
    EXPECT_EQ(ok.at("service_mismatch"), Json::array());
    EXPECT_EQ(ok.at("server_status"), "approved");
    // Escaped on the host, as filed at the service: a backslash in the name, a tab and a byte
    // that is not UTF-8 in the arguments.
    const Json& escaped = action_of(r, "R-SVCESC0001");
    EXPECT_EQ(escaped.at("requester"), "CORP\\\\carl");
    EXPECT_EQ(escaped.at("argv"), Json({"/usr/bin/printf", "a\\tb", "\\xff"}));
    EXPECT_EQ(escaped.at("service_check"), "ok") << escaped.at("service_mismatch");
    const Json& login = action_of(r, "R-SVCLOGIN01");
    EXPECT_EQ(login.at("command"), "sshd");
    EXPECT_EQ(login.at("approval_source"), "service");
    EXPECT_EQ(login.at("service_check"), "ok") << login.at("service_mismatch");
    // jitgatectl approve on the host: the service knows nothing of it, and that is fine.
    const Json& local = action_of(r, "R-LOCAL00001");
    EXPECT_EQ(local.at("approval_source"), "local");
    EXPECT_EQ(local.at("request_found"), false);
    EXPECT_EQ(local.at("service_check"), "");
    // Decisions other than an approval are not checked.
    for (const Json& a : r.at("actions")) {
        if (a.at("decision") != "approved") {
            EXPECT_EQ(a.at("approval_source"), "") << a.dump();
        }
    }
    for (const Json& e : r.at("exceptions"))
        for (const char* id : {"R-SVCOK00001", "R-SVCESC0001", "R-SVCLOGIN01", "R-LOCAL00001"})
            EXPECT_NE(e.at("request_id"), id) << e.dump();
}

TEST_P(ReportTest, a_service_approval_the_service_did_not_give_is_not_approved_at_service) {
    service_day();
    const Json r = day_json();
    const std::vector<Json> found = exceptions_of(r, "not_approved_at_service");
    ASSERT_EQ(found.size(), 4u);
    std::map<std::string, Json> by_request;
    for (const Json& e : found) by_request[e.at("request_id")] = e;
    const Json& none = by_request.at("R-SVCNONE001");
    EXPECT_EQ(none.at("host"), "svc-01");
    EXPECT_EQ(none.at("time"), "2026-11-24T10:00:00.500Z");
    EXPECT_EQ(none.at("user"), "alice");
    EXPECT_EQ(none.at("event_id"), action_of(r, "R-SVCNONE001").at("decision_event_id"));
    EXPECT_EQ(none.at("detail"), "the host recorded an approval by the approval service, and the service has no "
                                 "request R-SVCNONE001 of this host");
    EXPECT_EQ(by_request.at("R-SVCDENY001").at("detail"),
              "the host recorded an approval by the approval service, and the service's request is denied "
              "(2026-11-24T11:00:00Z)");
    EXPECT_EQ(by_request.at("R-SVCHIDE001").at("time"), "2026-11-24T13:00:00.500Z");
    EXPECT_EQ(by_request.at("R-SVCSTLT001").at("detail"),
              "the host recorded an approval without naming the approval service, of a request the service "
              "holds, and the service's request is denied (2026-11-24T14:30:10Z)");
    for (const char* id : {"R-SVCNONE001", "R-SVCDENY001", "R-SVCHIDE001", "R-SVCSTLT001"}) {
        EXPECT_EQ(action_of(r, id).at("approval_source"), "service") << id;
        EXPECT_EQ(action_of(r, id).at("service_check"), "not_approved_at_service") << id;
    }
}

TEST_P(ReportTest, a_service_approval_that_differs_from_the_services_record_is_a_request_mismatch) {
    service_day();
    const Json r = day_json();
    const std::vector<Json> found = exceptions_of(r, "request_mismatch");
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].at("host"), "svc-01");
    EXPECT_EQ(found[0].at("request_id"), "R-SVCDIFF001");
    EXPECT_EQ(found[0].at("time"), "2026-11-24T12:00:00.500Z");
    EXPECT_EQ(found[0].at("user"), "alice");
    EXPECT_EQ(found[0].at("event_id"), action_of(r, "R-SVCDIFF001").at("decision_event_id"));
    EXPECT_EQ(found[0].at("detail"),
              "the approval service approved request R-SVCDIFF001 with other values: argv: host "
              "\"[\\\"/usr/bin/systemctl\\\",\\\"restart\\\",\\\"ledger\\\"]\", service "
              "\"[\\\"/usr/bin/systemctl\\\",\\\"stop\\\",\\\"ledger\\\"]\"; rule: host \"quick\", service "
              "\"default-approval\"; service_grant_id: host \"jti-other\", service \"jti-R-SVCDIFF001\"");
    const Json& diff = action_of(r, "R-SVCDIFF001");
    EXPECT_EQ(diff.at("service_check"), "request_mismatch");
    EXPECT_EQ(diff.at("service_mismatch"), Json({"argv", "rule", "service_grant_id"}));
}

// Each field an approval binds, changed alone in the host's record, is named alone; unchanged,
// the approval passes.
TEST_P(ReportTest, each_bound_field_that_differs_is_a_request_mismatch_of_that_field) {
    const std::vector<std::pair<Json, std::vector<std::string>>> cases{
        {Json::object(), {}},
        {{{"requester", "mallory"}}, {"requester"}},
        {{{"login_user", "mallory"}}, {"login_user"}},
        {{{"user", "root"}}, {"user"}},
        {{{"kind", "login"}}, {"kind", "command"}},
        {{{"command", "/usr/bin/bash"}}, {"command"}},
        {{{"argv", {"/usr/bin/systemctl", "restart", "ledger", "--force"}}}, {"argv"}},
        {{{"runas", "postgres"}}, {"runas"}},
        {{{"remote_host", "203.0.113.9"}}, {"remote_host"}},
        {{{"rule", "quick"}}, {"rule"}},
        {{{"scope", "session"}}, {"scope"}},
        {{{"service_grant_id", "jti-forged"}}, {"service_grant_id"}},
    };
    HostChain svc("svc-02");
    std::vector<AuditEvent> events;
    const std::vector<std::string> restart{"/usr/bin/systemctl", "restart", "ledger"};
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const std::string id = "R-FIELD" + std::to_string(10000 + i);
        const std::string hms = "10:" + std::string(i < 10 ? "0" : "") + std::to_string(i) + ":00";
        ship_service_approval(svc, events, id, "alice", restart, hms, cases[i].first);
        file_service("svc-02", id, "alice", {"/usr/bin/systemctl", "restart", "ledger"}, "default-approval", hms);
        approve("svc-02", id, "bob", hms);
    }
    ASSERT_TRUE(store->ingest("svc-02", events, at("23:00:00")).stored);
    const Json r = day_json();
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const Json& a = action_of(r, "R-FIELD" + std::to_string(10000 + i));
        EXPECT_EQ(a.at("service_mismatch"), Json(cases[i].second)) << cases[i].first;
        EXPECT_EQ(a.at("service_check"), cases[i].second.empty() ? "ok" : "request_mismatch") << cases[i].first;
    }
    EXPECT_EQ(exceptions_of(r, "request_mismatch").size(), cases.size() - 1);
}

TEST_P(ReportTest, a_host_with_approvals_at_the_service_and_no_event_of_the_period_never_shipped) {
    service_day();
    const Json r = day_json();
    const std::vector<Json> found = exceptions_of(r, "host_never_shipped");
    ASSERT_EQ(found.size(), 2u);
    std::map<std::string, Json> by_host;
    for (const Json& e : found) by_host[e.at("host")] = e;
    const Json& ghost = by_host.at("ghost-01");
    EXPECT_EQ(ghost.at("time"), "2026-11-24T15:01:00Z");
    EXPECT_EQ(ghost.at("request_id"), "R-GHOST00001");
    EXPECT_EQ(ghost.at("user"), "alice");
    EXPECT_EQ(ghost.at("event_id"), "");
    EXPECT_EQ(ghost.at("detail"), "the approval service approved 2 requests of this host in the period (the first: "
                                  "R-GHOST00001 at 2026-11-24T15:01:00Z), and the store holds no event of this "
                                  "host at all: it never shipped one");
    const Json& quiet = by_host.at("quiet-02");
    EXPECT_EQ(quiet.at("request_id"), "R-QUIET00001");
    EXPECT_EQ(quiet.at("user"), "dave");
    EXPECT_EQ(quiet.at("detail"), "the approval service approved 1 request of this host in the period (the first: "
                                  "R-QUIET00001 at 2026-11-24T17:02:00Z), and the store holds none of its events "
                                  "dated in the period (2 events stored, the last batch received "
                                  "2026-11-24T22:00:00Z); its shipper reported 40 events not yet shipped at "
                                  "2026-11-24T22:00:00Z");
    // svc-01 shipped the day's events; idle-03 had nothing approved; ghost-01 is not of the
    // pattern "svc-*"; the next day nothing was approved.
    EXPECT_TRUE(exceptions_of(day_json("svc-*"), "host_never_shipped").empty());
    EXPECT_EQ(exceptions_of(day_json("ghost-*"), "host_never_shipped").size(), 1u);
    report::Options next = day_options();
    next.from += 86400;
    next.to += 86400;
    const Json later = Json::parse(report::render(report::build(*store, next), report::Format::json));
    EXPECT_TRUE(exceptions_of(later, "host_never_shipped").empty());
    // Once quiet-02's events of the day are stored, it shipped.
    HostChain quiet_again("quiet-02");
    quiet_again.next_with({{"type", "daemon.started"}, {"time", "2026-11-23T08:00:00.000Z"}});
    quiet_again.next_with({{"type", "config.loaded"}, {"time", "2026-11-23T08:00:01.000Z"}});
    ASSERT_TRUE(store
                    ->ingest("quiet-02",
                             {quiet_again.next_with({{"type", "daemon.stopped"}, {"time", host_time("20:00:00")}})},
                             at("23:00:00"))
                    .stored);
    const std::vector<Json> after = exceptions_of(day_json(), "host_never_shipped");
    ASSERT_EQ(after.size(), 1u);
    EXPECT_EQ(after[0].at("host"), "ghost-01");
}

TEST_P(ReportTest, the_cross_check_is_in_the_csv_and_the_html) {
    service_day();
    const report::Report built = report::build(*store, day_options());
    const auto rows = parse_csv(report::render(built, report::Format::csv));
    ASSERT_FALSE(rows.empty());
    const std::vector<std::string>& header = rows[0];
    const auto column = [&](const std::string& name) {
        const auto it = std::find(header.begin(), header.end(), name);
        EXPECT_NE(it, header.end()) << name;
        return static_cast<std::size_t>(it - header.begin());
    };
    std::map<std::string, std::vector<std::string>> by_request;
    for (std::size_t i = 1; i < rows.size(); ++i) by_request[rows[i].at(column("request_id"))] = rows[i];
    const auto cell = [&](const std::string& request, const std::string& name) {
        return by_request.at(request).at(column(name));
    };
    EXPECT_EQ(cell("R-SVCDIFF001", "approval_source"), "service");
    EXPECT_EQ(cell("R-SVCDIFF001", "service_grant_id"), "jti-other");
    EXPECT_EQ(cell("R-SVCDIFF001", "service_check"), "request_mismatch");
    EXPECT_EQ(cell("R-SVCDIFF001", "service_mismatch"), "argv;rule;service_grant_id");
    EXPECT_EQ(cell("R-SVCNONE001", "service_check"), "not_approved_at_service");
    EXPECT_EQ(cell("R-SVCOK00001", "service_check"), "ok");
    EXPECT_EQ(cell("R-LOCAL00001", "approval_source"), "local");
    EXPECT_EQ(cell("R-LOCAL00001", "service_check"), "");

    const std::string html = report::render(built, report::Format::html);
    for (const char* needle :
         {"<span class=\"bad id\">not_approved_at_service</span>", "<span class=\"bad id\">request_mismatch</span>",
          "<span class=\"bad id\">host_never_shipped</span>", "NOT APPROVED AT THE SERVICE",
          "DIFFERS FROM THE SERVICE: argv, rule, service_grant_id", "matches the service", "approved on the host",
          "it never shipped one"})
        EXPECT_NE(html.find(needle), std::string::npos) << needle;
}

INSTANTIATE_TEST_SUITE_P(Backends, ReportTest, testing::Values(Backend::sqlite, Backend::postgres), backend_name);

// A WeasyPrint that stalls cannot hold the report: one that reads a little of the HTML and then
// sleeps (the write to it used to block), and one that closes its output and keeps running (the
// wait for it used to block). Each call fails by its deadline, and the program is killed and
// reaped.
TEST(ReportPdf, a_stalled_weasyprint_is_stopped_by_the_deadline_and_leaves_no_process) {
    const fs::path dir = fs::temp_directory_path() / ("jitgate-fake-weasyprint-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::string pid_file = (dir / "pid").string();
    const std::string path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
    const std::string html(1 << 20, 'x'); // far more than a pipe holds
    for (const char* stall : {"dd bs=4096 count=1 of=/dev/null 2>/dev/null", "exec >&- 2>&-"}) {
        {
            std::ofstream script(dir / "weasyprint");
            script << "#!/bin/sh\necho $$ > '" << pid_file << "'\n" << stall << "\nexec sleep 60\n";
        }
        fs::permissions(dir / "weasyprint", fs::perms::owner_all);
        fs::remove(pid_file);
        ::setenv("PATH", dir.c_str(), 1);
        const auto start = std::chrono::steady_clock::now();
        try {
            jitgate::server::report::html_to_pdf(html, std::chrono::milliseconds(1500));
            ADD_FAILURE() << "a PDF from a stalled WeasyPrint";
        } catch (const jitgate::Error& e) {
            EXPECT_EQ(e.code(), jitgate::ErrorCode::io);
            EXPECT_NE(std::string(e.what()).find("ran longer than 1500 ms and was stopped"), std::string::npos)
                << e.what();
        }
        ::setenv("PATH", path.c_str(), 1);
        const auto took = std::chrono::steady_clock::now() - start;
        EXPECT_GE(took, std::chrono::milliseconds(1500)) << stall;
        EXPECT_LT(took, std::chrono::seconds(10)) << stall; // the fake sleeps 60 s
        pid_t pid = 0;
        std::ifstream(pid_file) >> pid;
        ASSERT_GT(pid, 0) << stall;
        // Killed and reaped: not even a zombie is left.
        const int alive = ::kill(pid, 0);
        const int error = errno;
        EXPECT_EQ(alive, -1) << stall;
        EXPECT_EQ(error, ESRCH) << stall;
    }
    fs::remove_all(dir);
}

TEST(ReportTime, dates_and_rfc3339_times_parse_and_bad_ones_do_not) {
    EXPECT_EQ(report::parse_time("1970-01-01", false), 0);
    EXPECT_EQ(report::parse_time("1970-01-01", true), 86400);
    EXPECT_EQ(report::parse_time("2026-11-24T09:00:00Z", false), 1795510800);
    EXPECT_EQ(report::parse_time("2026-11-24T11:00:00+02:00", false), 1795510800);
    EXPECT_EQ(report::parse_time("2026-11-24T09:00:00.818Z", true), 1795510800);
    EXPECT_EQ(report::parse_time("2024-02-29", false), 1709164800);
    for (const char* bad : {"", "2026-11-24T09:00:00", "2026-02-29", "2026-13-01", "2026-11-24 09:00:00Z",
                            "2026-11-24T25:00:00Z", "26-11-24", "2026-11-24Tx", "2026-11-24T09:00:00Zjunk"})
        EXPECT_FALSE(report::parse_time(bad, false)) << bad;
    EXPECT_EQ(report::rfc3339(1795510800), "2026-11-24T09:00:00Z");
}

TEST(ReportBuild, an_empty_period_is_refused) {
    Database db(Backend::sqlite);
    db.migrate();
    auto store = db.open();
    report::Options o;
    o.from = 100;
    o.to = 100;
    EXPECT_THROW(report::build(*store, o), jitgate::Error);
}

} // namespace
