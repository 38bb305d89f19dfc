// server/service/service.cpp — see service.hpp. Section numbers are docs/protocol.md's.
#include "server/service/service.hpp"

#include "lib/grant_token.hpp"
#include "lib/time_windows.hpp"
#include "server/service/audit_ingest.hpp"
#include "server/service/audit_log.hpp"
#include "server/service/policy.hpp"
#include "server/service/protocol.hpp"

#include <jitgate/error.hpp>
#include <jitgate/text.hpp>

#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace jitgate::server::service {
namespace {

using Json = nlohmann::json;

constexpr std::size_t k_max_comment_bytes = 2048;
constexpr std::size_t k_expiry_batch = 200;

http::Response answer(int status, std::string body) {
    return http::json_response(status, std::move(body));
}

http::Response error(int status, std::string_view code, std::string_view message) {
    return answer(status, protocol::error_json(code, message));
}

std::string random_hex(std::size_t bytes) {
    std::string raw(bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(raw.size())) != 1)
        throw Error(ErrorCode::internal, "grant id", "the random number generator failed");
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (const unsigned char c : raw) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

// Percent-encodes everything but the unreserved characters (RFC 3986 §2.3).
std::string url_encode(std::string_view s) {
    static const char* digits = "0123456789ABCDEF";
    std::string out;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
            c == '_' || c == '~') {
            out += ch;
        } else {
            out += '%';
            out += digits[c >> 4];
            out += digits[c & 15];
        }
    }
    return out;
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
    return std::find(list.begin(), list.end(), value) != list.end();
}

store::Event event(std::int64_t at, std::string type, const std::string& host, const std::string& id, std::string actor,
                   std::string identity, std::string source, Json detail = Json::object()) {
    store::Event e;
    e.at = at;
    e.type = std::move(type);
    e.host = host;
    e.request_id = id;
    e.actor = std::move(actor);
    e.identity = std::move(identity);
    e.source_address = std::move(source);
    e.detail = detail.dump(-1, ' ', false, Json::error_handler_t::replace);
    return e;
}

// The end of `user`'s on-call entry that holds at `t` (the latest, if several do); 0 if none.
std::int64_t on_call_end(const std::vector<windows::OnCall>& list, const std::string& user, std::int64_t t) {
    std::int64_t end = 0;
    for (const windows::OnCall& o : list)
        if (o.user == user && t >= o.from_unix && t < o.to_unix) end = std::max(end, o.to_unix);
    return end;
}

// The ticket check's recorded state, or null when none applies.
Json ticket_state(const store::Request& request) {
    if (request.ticket_check.empty()) return nullptr;
    Json j = Json::parse(request.ticket_check, nullptr, /*allow_exceptions=*/false);
    return j.is_object() ? j
                         : Json{{"required", true}, {"ok", false}, {"why", "the recorded ticket check is unreadable"}};
}

// 503 with Retry-After for a batch not checked now (busy, or its check failed): nothing of it
// was stored and jitgated sends it again later.
http::Response busy_answer(const std::string& why) {
    http::Response busy = error(503, "unavailable", why + "; nothing of this batch was stored, send it again later");
    busy.headers.emplace_back("Retry-After", std::to_string(Service::k_busy_retry_after_s));
    return busy;
}

} // namespace

struct Service::Waiter {
    http::Reply reply;
    http::Timer timer;
};

struct Service::RevocationWaiter {
    http::Reply reply;
    http::Timer timer;
    std::vector<std::string> hosts;
    std::int64_t after = 0;
};

Service::Service(const config::Config& config, store::Store& store, const grant_token::SigningKey& signing_key,
                 http::EventLoop& loop, Clock clock)
    : m_config(config), m_store(store), m_signing_key(signing_key), m_loop(loop), m_clock(std::move(clock)) {}

Service::~Service() {
    // Parked polls are answered 500 by their Reply's destructor only if the loop still runs;
    // on shutdown the listeners are gone first and the replies are dropped quietly.
    m_waiters.clear();
    m_revocation_waiters.clear();
}

std::int64_t Service::now() const {
    if (m_clock.now) return m_clock.now();
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string Service::request_url(const std::string& host, const std::string& id) const {
    std::string base = m_config.server.public_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    return base + "/r/" + url_encode(host) + "/" + url_encode(id);
}

void Service::start() {
    start_expiry();
    start_purge();
    start_review_alerts();
    const int fd = m_store.wake_fd();
    if (fd >= 0) m_wake_watch = m_loop.watch_readable(fd, [this]() { take_wakeups(); });
}

void Service::start_expiry() {
    try {
        expire_due();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgate-server: expiring requests failed: %s\n", e.what());
    }
    try {
        check_revocations();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgate-server: checking for new revocations failed: %s\n", e.what());
    }
    m_expiry_timer = m_loop.after(std::chrono::seconds(1), [this]() { start_expiry(); });
}

// ---- housekeeping: the purge ----------------------------------------------------------------
// SECURITY NOTE: every unauthenticated GET /login stores a sign-in row and every sign-in a
// session row; without this they would only ever grow. Each replica runs it; the store makes
// concurrent runs safe.

store::Store::Purged Service::purge() {
    const std::int64_t t = now();
    return m_store.purge(t, t - k_keep_delivered_notices.count());
}

void Service::start_purge() {
    try {
        purge();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgate-server: purging expired sessions and sign-ins failed: %s\n", e.what());
    }
    // The audit store's partitions run two months ahead, so a failure here has two months to be
    // noticed (it is logged each hour) before a batch finds no partition.
    const std::int64_t t = now();
    if (t - m_partitions_checked_at >= k_partitions_interval.count()) {
        try {
            m_store.ensure_audit_partitions(t);
            m_partitions_checked_at = t;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "jitgate-server: creating the audit store's monthly partitions failed: %s\n",
                         e.what());
            m_partitions_checked_at = t; // again in an hour, not every minute
        }
    }
    m_purge_timer = m_loop.after(k_purge_interval, [this]() { start_purge(); });
}

// ---- housekeeping: overdue break-glass reviews ---------------------------------------------
// Every replica runs it; the store hands each overdue item to exactly one of them, and records
// the alert's event in the same transaction as the claim, so each item alerts once.

std::size_t Service::alert_overdue_reviews() {
    const std::int64_t t = now();
    const auto overdue_event = [&](const store::BreakGlassReview& r) {
        return event(t, "break_glass.review_overdue", r.host, "", "server", "", "",
                     {{"event_id", r.event_id},
                      {"user", r.user_name},
                      {"time", r.time},
                      {"due_at", protocol::rfc3339(r.due_at)},
                      {"link", review_url(r.host, r.event_id)}});
    };
    const std::vector<store::BreakGlassReview> claimed =
        m_store.claim_overdue_break_glass_reviews(t, k_review_alert_batch, overdue_event);
    for (const store::BreakGlassReview& r : claimed) {
        log_alert(overdue_event(r));
        if (!on_break_glass_overdue) continue;
        try {
            on_break_glass_overdue(r);
        } catch (const std::exception& x) {
            std::fprintf(stderr, "jitgate-server: an overdue review's notice failed: %s\n", x.what());
        }
    }
    return claimed.size();
}

void Service::start_review_alerts() {
    try {
        alert_overdue_reviews();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgate-server: checking for overdue break-glass reviews failed: %s\n", e.what());
    }
    m_review_timer = m_loop.after(k_review_check_interval, [this]() { start_review_alerts(); });
}

store::Event Service::review_closed_event(const store::BreakGlassReview& review, const std::string& reviewer,
                                          const std::string& identity, const std::string& source_address,
                                          const std::string& note) const {
    return event(now(), "break_glass.reviewed", review.host, "", reviewer, identity, source_address,
                 {{"event_id", review.event_id}, {"user", review.user_name}, {"time", review.time}, {"note", note}});
}

std::string Service::review_url(const std::string& host, const std::string& event_id) const {
    std::string base = m_config.server.public_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    return base + "/audit/reviews/" + url_encode(host) + "/" + url_encode(event_id);
}

// ---- the host API ----------------------------------------------------------------------------

void Service::handle_host(http::Request&& request, http::Reply&& reply) {
    try {
        if (request.client.names.empty()) {
            reply.send(error(401, "unauthorized", "a client certificate is required"));
            return;
        }
        if (request.path == k_audit_events_path) {
            if (request.method != "POST") {
                reply.send(error(404, "not_found", "no such path"));
                return;
            }
            ingest_audit(std::move(request), std::move(reply));
            return;
        }
        // Every other route keeps the listener's small body limit (only the audit batch is large).
        if (request.body.size() > k_max_host_body) {
            reply.send(error(413, "too_large", "request body too large"));
            return;
        }
        if (request.path == "/v1/audit/state") {
            if (request.method != "GET") {
                reply.send(error(404, "not_found", "no such path"));
                return;
            }
            audit_state(std::move(request), std::move(reply));
            return;
        }
        if (request.path == "/v1/revocations") {
            if (request.method != "GET") {
                reply.send(error(404, "not_found", "no such path"));
                return;
            }
            revocations(std::move(request), std::move(reply));
            return;
        }
        const std::string prefix = "/v1/requests";
        if (request.path == prefix) {
            if (request.method != "POST") {
                reply.send(error(404, "not_found", "no such path"));
                return;
            }
            file(std::move(request), std::move(reply));
            return;
        }
        if (request.path.rfind(prefix + "/", 0) == 0) {
            std::string rest = request.path.substr(prefix.size() + 1);
            const std::string cancel_suffix = "/cancel";
            if (rest.size() > cancel_suffix.size() &&
                rest.compare(rest.size() - cancel_suffix.size(), cancel_suffix.size(), cancel_suffix) == 0) {
                rest.resize(rest.size() - cancel_suffix.size());
                if (request.method == "POST" && protocol::is_request_id(rest)) {
                    cancel(rest, std::move(request), std::move(reply));
                    return;
                }
            } else if (request.method == "GET" && protocol::is_request_id(rest)) {
                poll(rest, std::move(request), std::move(reply));
                return;
            }
            // An id of the wrong form names no request (§5: 404, as an unknown one).
            reply.send(error(404, "not_found", "no such request"));
            return;
        }
        reply.send(error(404, "not_found", "no such path"));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgate-server: host request failed: %s\n", e.what());
        if (!reply.answered()) reply.send(error(503, "unavailable", "the approval service cannot reach its database"));
    }
}

// ---- the audit store (docs/audit.md §5) -----------------------------------------------------
// SECURITY NOTE: the host is the client certificate's; a batch holding any event of another
// host is refused whole (403). A batch is acknowledged only after its transaction committed.

void Service::offload_audit_checks(http::Worker::Post post, AuditQueueLimits limits) {
    // CheckTurns admits at most limits.batches in flight, so the worker's queue (which counts
    // only the waiting ones) never refuses one of them.
    limits.batches = std::max<std::size_t>(limits.batches, 1);
    m_check_turns = audit_ingest::CheckTurns(limits.batches, limits.bytes, k_owed_turn_s);
    m_audit_worker = std::make_unique<http::Worker>("audit batch", limits.batches, std::move(post));
}

void Service::refuse_batch(const http::Request& request, http::Reply& reply, int status, const std::string& code,
                           const std::string& message, bool alert) {
    // At most one of each status per host and minute, with the count suppressed since the
    // last: a host (or its stolen key) sending bad batches in a loop neither grows the events
    // table nor floods syslog at alert.
    const std::string key = request.client.names.front() + '\n' + std::to_string(status);
    if (alert && record_refusal(m_batch_refusals, key, now())) {
        // Recorded apart from the batch (whose transaction stored nothing), as an alert.
        store::Event e = event(now(), "audit.batch_refused", request.client.names.front(), "",
                               "host:" + request.client.names.front(), request.client.subject, request.peer_address,
                               {{"status", status},
                                {"reason", message},
                                {"suppressed", std::exchange(m_batch_refusals[key].suppressed, 0)}});
        log_alert(e);
        try {
            m_store.record(e);
        } catch (const std::exception& x) {
            std::fprintf(stderr, "jitgate-server: recording a refused audit batch failed: %s\n", x.what());
        }
    }
    reply.send(error(status, code, message));
}

void Service::ingest_audit(http::Request&& request, http::Reply&& reply) {
    if (!audit_ingest::is_ndjson(request.header("content-type"))) {
        refuse_batch(request, reply, 415, "unsupported_media_type",
                     "an audit batch is Content-Type application/x-ndjson (audit.store.format jsonl); splunk_hec is "
                     "not served here",
                     false);
        return;
    }
    if (!m_audit_worker) {
        store_batch(request, reply, audit_ingest::check_batch(request.body, [&](const std::string& h) {
                        return request.client.may_act_for(h);
                    }));
        return;
    }
    // SECURITY NOTE: one slot per host at most (a certificate naming several hosts: one per
    // name; the bench ships 16 hosts under one), and a host refused for a full queue is owed
    // the next free one (audit_ingest::CheckTurns): one host with a valid certificate cannot
    // keep every other host's batches out. A refusal here takes no slot and stores nothing.
    const std::string turn_host = request.client.names.front();
    const std::size_t turn_bytes = request.body.size();
    const audit_ingest::CheckTurns::Verdict verdict =
        m_check_turns.admit(turn_host, request.client.names.size(), request.body.size(), now());
    if (verdict != audit_ingest::CheckTurns::Verdict::admitted) {
        const bool host_busy = verdict == audit_ingest::CheckTurns::Verdict::host_busy;
        refuse_busy(request, host_busy);
        reply.send(busy_answer(host_busy ? "this host's previous batch is still being checked (one at a time per host)"
                                         : "the audit store is busy checking other batches"));
        return;
    }
    // The worker reads the request (nothing else touches it meanwhile) and fills in the check;
    // the Reply is held only by the loop's part (Worker::push): it is answered and ends on the
    // loop thread whatever the check did, even when it threw (out of memory): then 503.
    struct Checked {
        http::Request request;
        std::optional<audit_ingest::BatchCheck> check;
    };
    // The slot is given back by the loop's part, or here when nothing was queued (whatever
    // throws before the push): a slot kept for ever would refuse the host's every batch.
    bool queued = false;
    std::shared_ptr<http::Reply> shared_reply;
    try {
        auto checked = std::make_shared<Checked>(Checked{std::move(request), std::nullopt});
        shared_reply = std::make_shared<http::Reply>(std::move(reply));
        queued = m_audit_worker->push(
            [checked]() {
                const http::Request& r = checked->request;
                checked->check =
                    audit_ingest::check_batch(r.body, [&r](const std::string& h) { return r.client.may_act_for(h); });
            },
            [this, checked, shared_reply, turn_host, turn_bytes](bool ok) {
                m_check_turns.done(turn_host, turn_bytes);
                try {
                    if (!ok || !checked->check) {
                        shared_reply->send(busy_answer("the audit store could not check this batch"));
                        return;
                    }
                    store_batch(checked->request, *shared_reply, std::move(*checked->check));
                } catch (const std::exception& e) {
                    std::fprintf(stderr, "jitgate-server: host request failed: %s\n", e.what());
                    if (!shared_reply->answered())
                        shared_reply->send(error(503, "unavailable", "the audit store cannot reach its database"));
                }
            });
    } catch (...) {
        m_check_turns.done(turn_host, turn_bytes);
        if (!shared_reply) throw; // the Reply is still `reply`: handle_host answers 503
        if (!shared_reply->answered()) shared_reply->send(busy_answer("the audit store could not queue this batch"));
        return;
    }
    if (!queued) {
        // Only while the worker stops (CheckTurns keeps within its queue). Nothing was stored.
        m_check_turns.done(turn_host, turn_bytes);
        shared_reply->send(busy_answer("the audit store is busy checking other batches"));
    }
}

void Service::refuse_busy(const http::Request& request, bool host_busy) {
    // Syslog only (nothing is recorded: a busy refusal is load, not misconduct), at most once a
    // minute for the whole fleet's full-queue refusals and once a minute per host for a host's
    // own concurrent batches, with the count suppressed since the last line.
    const std::string& host = request.client.names.front();
    const std::string key = host_busy ? host + "\nbusy" : std::string("\nbusy");
    const std::int64_t t = now();
    if (!record_refusal(m_batch_refusals, key, t)) return;
    log_event(event(t, "audit.batch_busy", host, "", "host:" + host, request.client.subject, request.peer_address,
                    {{"reason", host_busy ? "this host's previous batch is still queued or being checked"
                                          : "every checking slot is taken"},
                     {"in_flight", m_check_turns.in_flight()},
                     {"bytes_in_flight", m_check_turns.bytes_in_flight()},
                     {"owed", m_check_turns.owed()},
                     {"suppressed", std::exchange(m_batch_refusals[key].suppressed, 0)}}));
}

void Service::store_batch(const http::Request& request, http::Reply& reply, audit_ingest::BatchCheck&& check) {
    if (check.refused) {
        // A foreign host's event or an event that is not what it claims is worth an alert; a
        // malformed or oversized body is the sender's bug.
        const int status = check.refused->status;
        refuse_batch(request, reply, status, check.refused->code, check.refused->message,
                     status == 403 || status == 422);
        return;
    }
    const std::string& host = check.host;
    const std::int64_t t = now();
    // SECURITY NOTE: the host's report of its newest spool seq is hostile input like the rest;
    // one that is not valid is ignored with a log line, never a reason to refuse the events
    // (a host would resend that batch for ever): the backlog then shows as unknown.
    const audit_ingest::SpoolSeq reported =
        audit_ingest::spool_seq(request.header(audit_ingest::k_spool_seq_header), check.events);
    if (!reported.problem.empty()) spool_seq_ignored(request, host, reported.problem, t);
    store::IngestResult result;
    try {
        store::IngestOptions options;
        options.break_glass_review_within_s = m_config.audit.break_glass_review_within.count();
        options.reported_seq = reported.seq;
        result = m_store.ingest(host, check.events, t, options);
    } catch (const Error& e) {
        // The checks refuse whatever the store would (audit_ingest.hpp); should one slip
        // through, the batch is still refused for good (422), never 503: the host would resend
        // the same batch for ever.
        if (e.code() != ErrorCode::bad_input) throw;
        refuse_batch(request, reply, 422, "invalid_event",
                     std::string("the store does not take a value of the batch (") + e.what() +
                         "); nothing of the batch was stored",
                     true);
        return;
    }
    if (!result.stored) {
        chain_edited(request, host, check.events, result.conflict_event_id, t);
        refuse_batch(request, reply, 409, "conflict",
                     "event " + text::shown(result.conflict_event_id, 80) +
                         " is stored already with different content (an event_id is never reused: the host's spool "
                         "was rewritten?); nothing of the batch was stored",
                     true);
        return;
    }
    for (const store::Event& e : result.chain_events) chain_event_recorded(e);
    reply.send(answer(200, audit_ingest::ack_json(check.events.size(), check.events.back().event_id, result.added,
                                                  result.duplicates)));
}

void Service::spool_seq_ignored(const http::Request& request, const std::string& host, const std::string& problem,
                                std::int64_t t) {
    // Syslog only, at most once a minute per host with the count suppressed since: the batch
    // is stored, only the backlog figure is lost.
    const std::string key = host + "\nspool_seq";
    if (!record_refusal(m_batch_refusals, key, t)) return;
    log_event(event(t, "audit.spool_seq_ignored", host, "", "host:" + host, request.client.subject,
                    request.peer_address,
                    {{"problem", problem}, {"suppressed", std::exchange(m_batch_refusals[key].suppressed, 0)}}));
}

void Service::chain_event_recorded(const store::Event& e) {
    if (audit_ingest::is_chain_alert(e.type))
        log_alert(e);
    else
        log_event(e);
    if (on_audit_chain_event) {
        try {
            on_audit_chain_event(e);
        } catch (const std::exception& x) {
            std::fprintf(stderr, "jitgate-server: a chain event's notice failed: %s\n", x.what());
        }
    }
}

// SECURITY NOTE: an event_id is never reused, so one that comes again with other bytes is an
// edited event: the host's spool was rewritten. The batch is refused (nothing stored), and the
// chain is marked broken in a transaction of its own, so the store's state says so. Recorded
// at most once a minute per host (the count suppressed since carried by the next), like the
// refusals: a host resending it in a loop grows neither the events table nor syslog.
void Service::chain_edited(const http::Request& request, const std::string& host,
                           const std::vector<store::AuditEvent>& events, const std::string& event_id, std::int64_t t) {
    const std::string key = host + "\nedited";
    if (!record_refusal(m_batch_refusals, key, t)) return;
    const auto it =
        std::find_if(events.begin(), events.end(), [&](const store::AuditEvent& e) { return e.event_id == event_id; });
    const std::int64_t seq = it != events.end() ? it->seq : 0;
    const std::string problem = "event " + text::shown(event_id, 80) + " (seq " + std::to_string(seq) +
                                ") came again with other content (edited)";
    const std::int64_t suppressed = std::exchange(m_batch_refusals[key].suppressed, 0);
    const store::Event e = event(
        t, "audit.chain_edited", host, it != events.end() ? it->request_id : "", "host:" + host, request.client.subject,
        request.peer_address, {{"seq", seq}, {"event_id", event_id}, {"problem", problem}, {"suppressed", suppressed}});
    try {
        m_store.mark_chain_broken(host, problem, seq, t, e);
    } catch (const std::exception& x) {
        // SECURITY NOTE: the chain is still "ok" in the store. The minute's turn is given back
        // (with its count), so the next 409 tries the mark again instead of being suppressed
        // while the state says nothing is wrong. The 409 itself is still refused and alerted.
        std::fprintf(stderr, "jitgate-server: marking an edited chain broken failed: %s\n", x.what());
        m_batch_refusals.erase(key);
        m_batch_refusals.emplace(key, Refusals{t - k_refusal_window_s, suppressed + 1});
        return;
    }
    chain_event_recorded(e);
}

void Service::audit_state(http::Request&& request, http::Reply&& reply) {
    // ?host=NAME picks one of the certificate's names; without it, the certificate's first name.
    std::string host = request.client.names.front();
    if (auto asked = request.query_value("host")) {
        if (!request.client.may_act_for(*asked)) {
            reply.send(error(403, "forbidden",
                             "the client certificate (" + request.client.subject + ") may not act for host \"" +
                                 text::shown(*asked, 128) + "\""));
            return;
        }
        host = *asked;
    }
    reply.send(answer(200, audit_ingest::state_json(host, m_store.audit_chain(host))));
}

std::optional<store::Request> Service::find_for(const http::ClientIdentity& client, const std::string& id) {
    // A certificate may name several hosts (CN and DNS SANs); a request belongs to the one it
    // was filed for. Another host's request is never found (§2: 404, not 403).
    for (const std::string& name : client.names)
        if (auto found = m_store.find(name, id)) return found;
    return std::nullopt;
}

void Service::file(http::Request&& request, http::Reply&& reply) {
    protocol::FileCheck check = protocol::check_filed(request.body);
    if (!check.filed) {
        reply.send(error(400, "invalid_request", check.error));
        return;
    }
    protocol::Filed& f = *check.filed;
    if (!request.client.may_act_for(f.host)) {
        reply.send(error(403, "forbidden",
                         "the client certificate (" + request.client.subject + ") may not act for host \"" +
                             text::shown(f.host, 128) + "\""));
        return;
    }
    if (auto existing = m_store.find(f.host, f.id)) {
        // §4 idempotency: the same value is a retry (200, whatever the status is by now), even
        // if the policy (a window) would refuse a new filing now.
        if (existing->body == f.canonical)
            reply.send(answer(200, status_body(*existing)));
        else
            reply.send(error(409, "conflict", "request " + f.id + " exists with a different body"));
        return;
    }
    const PolicyDecision policy = apply_policy(m_config, {f.host, f.environment, f.tags, f.rule, f.approvals_needed},
                                               std::chrono::system_clock::time_point(std::chrono::seconds(now())));
    if (!policy.error.empty()) {
        // Fail closed: a window that cannot say whether a freeze holds files nothing.
        reply.send(error(503, "unavailable", "the approver policy cannot be evaluated: " + policy.error));
        return;
    }
    if (!policy.denied_by.empty()) {
        reply.send(error(403, "forbidden",
                         "requests of host \"" + text::shown(f.host, 128) + "\" for rule \"" +
                             text::shown(f.rule, 128) + "\" are refused now by " + policy.denied_by));
        return;
    }
    if (!policy.covered) {
        reply.send(error(403, "forbidden",
                         "no approver policy of this service covers host \"" + text::shown(f.host, 128) +
                             "\" and rule \"" + text::shown(f.rule, 128) + "\""));
        return;
    }

    const std::int64_t t = now();
    // Decided before the filing is stored, so that its event says what was asked and why it was
    // not given; the approval itself follows the filing (approve_automatically).
    AutoDecision automatic = f.auto_approve.empty() ? AutoDecision{} : auto_condition(f, policy, t);
    if (!automatic.condition.empty()) {
        // SECURITY NOTE: a bound per host (and replica) on automatic approvals: a host (or
        // whoever holds its certificate) filing in a loop for an on-call user gets people, not
        // an endless stream of grants; max_pending_per_host does not apply to what never waits.
        std::deque<std::int64_t>& recent = m_auto_recent[f.host];
        while (!recent.empty() && recent.front() <= t - 60) recent.pop_front();
        const auto cap = static_cast<std::size_t>(std::max(m_config.hosts.max_auto_approvals_per_minute, 1));
        if (recent.size() >= cap) {
            automatic = AutoDecision{};
            automatic.why_not = "host " + text::shown(f.host, 128) + " had " + std::to_string(cap) +
                                " automatic approvals in the last minute (hosts.max_auto_approvals_per_minute): "
                                "people decide";
        }
    }
    store::Request r;
    r.host = f.host;
    r.id = f.id;
    r.body = f.canonical;
    r.requester = f.requester;
    r.requester_login = f.requester_login;
    r.rule = f.rule;
    r.status = store::Status::pending;
    r.approvals_needed = policy.approvals_needed;
    r.approver_groups = policy.approver_groups;
    r.created_at = t;
    r.expires_at = t + std::min<std::int64_t>(f.timeout_s, m_config.hosts.max_timeout.count());
    if (policy.ticket_check)
        r.ticket_check =
            Json{{"required", true}, {"ok", false}, {"why", "the ticket check has not answered yet"}}.dump();
    store::Event filed =
        event(t, "request.filed", f.host, f.id, "host:" + f.host, request.client.subject, request.peer_address,
              {{"requester", f.requester},
               {"kind", f.kind},
               {"scope", f.scope},
               {"rule", f.rule},
               {"policy", policy.entries},
               {"approvals_needed", policy.approvals_needed},
               {"approver_groups", policy.approver_groups},
               {"windows", policy.windows}});
    if (!f.auto_approve.empty()) {
        // The host's wish and the service's answer, for auditors (docs/server.md, "Automatic approval").
        Json detail = Json::parse(filed.detail, nullptr, false);
        detail["auto_approve"] =
            automatic.condition.empty()
                ? Json{{"asked", f.auto_approve}, {"given", false}, {"why_not", automatic.why_not}}
                : Json{{"asked", f.auto_approve}, {"given", true}, {"condition", automatic.condition}};
        filed.detail = detail.dump(-1, ' ', false, Json::error_handler_t::replace);
    }
    const auto limit = static_cast<std::size_t>(std::max(m_config.hosts.max_pending_per_host, 1));
    const store::CreateResult created = m_store.create(r, filed, limit);
    if (created.over_limit) {
        // SECURITY NOTE: one host (a compromised one, or a runaway script) cannot fill the
        // approvers' queue or the database: beyond its limit a filing is refused, audited, and
        // nothing already filed is touched. jitgated denies at once on this answer (§4).
        const std::string why = "host \"" + text::shown(f.host, 128) + "\" already has " +
                                std::to_string(created.pending) + " pending requests, the limit of this service (" +
                                std::to_string(limit) +
                                ", hosts.max_pending_per_host); wait until some are decided or expire";
        if (record_refusal(f.host, t)) {
            const store::Event refused = event(t, "request.refused", f.host, f.id, "host:" + f.host,
                                               request.client.subject, request.peer_address,
                                               {{"why", "too many pending requests"},
                                                {"pending", created.pending},
                                                {"limit", limit},
                                                {"requester", f.requester},
                                                {"rule", f.rule},
                                                {"suppressed", std::exchange(m_refusals[f.host].suppressed, 0)}});
            m_store.record(refused);
            log_event(refused);
        }
        reply.send(error(429, "too_many_pending", why));
        return;
    }
    if (!created.created) {
        // Another replica filed the same (host, id) between our find and create.
        if (created.request.body == f.canonical)
            reply.send(answer(200, status_body(created.request)));
        else
            reply.send(error(409, "conflict", "request " + f.id + " exists with a different body"));
        return;
    }
    log_event(filed);
    // The automatic approval is decided here and nowhere else (docs/server.md, "Automatic
    // approval"): a request that is not approved now waits for people like any other.
    store::Request filed_request = created.request;
    if (!automatic.condition.empty()) {
        bool approved = false;
        try {
            approved = approve_automatically(created.request, automatic, t, request);
        } catch (const std::exception& e) {
            // SECURITY NOTE: the request is filed; a failure to sign or store its automatic
            // approval must not leave it waiting silently: it goes to people (the notice and
            // the ticket check below), and the journal says why.
            std::fprintf(stderr,
                         "jitgate-server: error: the automatic approval of request %s of %s failed (%s); it "
                         "waits for people\n",
                         text::shown(f.id, 128).c_str(), text::shown(f.host, 128).c_str(),
                         text::shown(e.what(), 512).c_str());
        }
        std::optional<store::Request> now_stored;
        try {
            now_stored = m_store.find(f.host, f.id);
        } catch (const std::exception& e) {
            // SECURITY NOTE: the store failing here (a dropped connection) must not leave the
            // request filed with nobody told: it is answered as filed and, unless it was just
            // approved, the request.filed notice goes out from what was created.
            std::fprintf(stderr,
                         "jitgate-server: error: request %s of %s: reading it back after its automatic approval "
                         "failed (%s); answered as filed\n",
                         text::shown(f.id, 128).c_str(), text::shown(f.host, 128).c_str(),
                         text::shown(e.what(), 512).c_str());
        }
        if (approved || (now_stored && now_stored->status != store::Status::pending)) {
            // Approved here, or decided meanwhile by another replica: its state as it is.
            reply.send(answer(201, status_body(now_stored ? *now_stored : created.request)));
            return;
        }
        if (now_stored) filed_request = *now_stored;
    }
    reply.send(answer(201, status_body(filed_request)));
    notify("request.filed", filed_request);
    if (policy.ticket_check && on_ticket_check_needed) on_ticket_check_needed(f.host, f.id, f.ticket);
}

bool Service::record_refusal(std::map<std::string, Refusals, std::less<>>& table, const std::string& host,
                             std::int64_t t) {
    constexpr std::int64_t k_window_s = k_refusal_window_s;
    constexpr std::size_t k_max_hosts = 100000;
    auto it = table.find(host);
    if (it == table.end()) {
        // Bounded: hosts whose minute has passed and who owe no count are forgotten first.
        if (table.size() >= k_max_hosts)
            std::erase_if(table, [t](const auto& e) {
                return e.second.suppressed == 0 && t - e.second.window_start >= k_window_s;
            });
        it = table.emplace(host, Refusals{t, 0}).first;
        return true;
    }
    if (t - it->second.window_start >= k_window_s) {
        it->second.window_start = t;
        return true; // the caller records it with the count suppressed since the last one
    }
    ++it->second.suppressed;
    return false;
}

void Service::poll(const std::string& id, http::Request&& request, http::Reply&& reply) {
    const std::optional<int> wait = protocol::parse_wait(request.query_value("wait"));
    if (!wait) {
        reply.send(error(400, "invalid_request", "wait must be a whole number of seconds"));
        return;
    }
    std::optional<store::Request> found = find_for(request.client, id);
    if (!found) {
        reply.send(error(404, "not_found", "no such request"));
        return;
    }
    if (found->status == store::Status::pending && found->expires_at <= now()) {
        expire(found->host, found->id);
        found = m_store.find(found->host, found->id);
        if (!found) {
            reply.send(error(404, "not_found", "no such request"));
            return;
        }
    }
    if (found->status != store::Status::pending || *wait == 0) {
        reply.send(answer(200, status_body(*found)));
        return;
    }
    // Park the poll: no thread, a reply handle and a timer (§5).
    const auto key = std::make_pair(found->host, id);
    auto waiter = std::make_shared<Waiter>();
    waiter->reply = std::move(reply);
    const std::weak_ptr<Waiter> weak = waiter;
    waiter->reply.on_gone([this, key, weak]() { forget(key, weak); });
    waiter->timer = m_loop.after(std::chrono::seconds(*wait), [this, key, weak]() {
        const std::shared_ptr<Waiter> w = weak.lock();
        if (!w) return;
        forget(key, weak);
        try {
            const std::optional<store::Request> current = m_store.find(key.first, key.second);
            if (current)
                w->reply.send(answer(200, status_body(*current)));
            else
                w->reply.send(error(404, "not_found", "no such request"));
        } catch (const std::exception& e) {
            std::fprintf(stderr, "jitgate-server: answering a poll failed: %s\n", e.what());
            if (!w->reply.answered()) w->reply.send(error(503, "unavailable", "the database is unavailable"));
        }
    });
    m_waiters[key].push_back(std::move(waiter));
}

void Service::forget(const std::pair<std::string, std::string>& key, const std::weak_ptr<Waiter>& waiter) {
    const auto it = m_waiters.find(key);
    if (it == m_waiters.end()) return;
    const std::shared_ptr<Waiter> w = waiter.lock();
    auto& list = it->second;
    list.erase(std::remove_if(list.begin(), list.end(), [&](const std::shared_ptr<Waiter>& x) { return !w || x == w; }),
               list.end());
    if (list.empty()) m_waiters.erase(it);
}

void Service::cancel(const std::string& id, http::Request&& request, http::Reply&& reply) {
    const std::optional<std::string> reason = protocol::check_cancel(request.body);
    if (!reason) {
        reply.send(error(400, "invalid_request", "the body must be {\"protocol\": 1, \"reason\": \"...\"}"));
        return;
    }
    std::optional<store::Request> found = find_for(request.client, id);
    if (!found) {
        reply.send(error(404, "not_found", "no such request"));
        return;
    }
    if (found->status == store::Status::pending) {
        const std::int64_t t = now();
        const store::Event cancelled = event(t, "request.cancelled", found->host, id, "host:" + found->host,
                                             request.client.subject, request.peer_address, {{"reason", *reason}});
        if (std::optional<store::Request> after =
                m_store.finish(found->host, id, store::Status::cancelled, "host", *reason, t, cancelled)) {
            log_event(cancelled);
            found = std::move(after);
            wake(found->host, id);
            notify("request.cancelled", *found);
        } else {
            found = m_store.find(found->host, id); // decided meanwhile: answer what it is (§6)
            if (!found) {
                reply.send(error(404, "not_found", "no such request"));
                return;
            }
        }
    }
    reply.send(answer(200, status_body(*found)));
}

std::string Service::status_body(const store::Request& request) {
    std::optional<store::Revocation> revoked;
    if (request.status == store::Status::approved) revoked = m_store.find_revocation(request.host, request.id);
    return protocol::status_json(request, request_url(request.host, request.id), revoked ? &*revoked : nullptr);
}

void Service::wake(const std::string& host, const std::string& id) {
    const auto it = m_waiters.find({host, id});
    if (it == m_waiters.end()) return;
    const std::optional<store::Request> current = m_store.find(host, id);
    if (current && current->status == store::Status::pending) return; // nothing final yet: keep waiting
    std::vector<std::shared_ptr<Waiter>> waiters = std::move(it->second);
    m_waiters.erase(it);
    for (const std::shared_ptr<Waiter>& w : waiters) {
        w->timer.cancel();
        if (current)
            w->reply.send(answer(200, status_body(*current)));
        else
            w->reply.send(error(404, "not_found", "no such request"));
    }
}

void Service::expire(const std::string& host, const std::string& id) {
    const std::int64_t t = now();
    const store::Event expired =
        event(t, "request.expired", host, id, "server", "", "", {{"why", "no decision before the request's timeout"}});
    if (std::optional<store::Request> after =
            m_store.finish(host, id, store::Status::expired, "server", "no decision in time", t, expired)) {
        log_event(expired);
        wake(host, id);
        notify("request.expired", *after);
    }
}

void Service::expire_due() {
    for (const auto& [host, id] : m_store.due(now(), k_expiry_batch)) expire(host, id);
}

void Service::take_wakeups() {
    try {
        for (const auto& [host, id] : m_store.take_wakeups()) {
            if (!host.empty() || !id.empty()) {
                wake(host, id);
                wake_revocations(host);
                continue;
            }
            // The store's listening connection broke and was replaced: wake-ups may have been
            // missed, so look at every held poll again, and watch the new descriptor.
            std::vector<std::pair<std::string, std::string>> keys;
            for (const auto& entry : m_waiters) keys.push_back(entry.first);
            for (const auto& key : keys) wake(key.first, key.second);
            wake_revocations("");
            const int fd = m_store.wake_fd();
            m_wake_watch = fd >= 0 ? m_loop.watch_readable(fd, [this]() { take_wakeups(); }) : nullptr;
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgate-server: reading wake-ups failed: %s\n", e.what());
    }
}

void Service::notify(const std::string& type, const store::Request& request) {
    try {
        if (on_event) on_event(type, request);
    } catch (const std::exception& e) {
        // A notice must never block or undo a decision.
        std::fprintf(stderr, "jitgate-server: queueing the %s notice failed: %s\n", type.c_str(), e.what());
    }
}

// ---- revocations (§12) -----------------------------------------------------------------------
// SECURITY NOTE: the hosts are the client certificate's names, never a parameter: a host
// learns of the revocations of its own grants only. The cursor is the store's seq, drawn in
// commit order, so a host that saw N has seen everything below it.

namespace {

// The cursor of `after=`: digits only, at most 18 (fits an int64); nullopt otherwise.
std::optional<std::int64_t> parse_cursor(const std::optional<std::string>& value) {
    if (!value) return 0;
    const std::string& t = *value;
    if (t.empty() || t.size() > 18 || t.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoll(t);
}

} // namespace

std::optional<std::string> Service::revocations_answer(const std::vector<std::string>& hosts, std::int64_t after,
                                                       bool final) {
    // The newest seq of these hosts first, then the rows up to it: every seq up to `last` is
    // committed by now (seq is drawn in commit order), so the cursor never passes a revocation
    // that a later read would find below it.
    const std::int64_t last = m_store.last_revocation_seq(hosts);
    // A cursor ahead of the database (a restore, a fail-over to a replica that lags): read as
    // if from the start (bounded by max_ttl below), and answer at once with the server's cursor.
    const bool ahead = after > last;
    if (ahead) after = 0;
    // Only grants that may still be live: none outlives hosts.max_ttl from its signing, and
    // the signing came before the revocation. A host that starts over (after=0: a restarted
    // jitgated holds no grant) reads a bounded list.
    const std::int64_t since = now() - static_cast<std::int64_t>(m_config.hosts.max_ttl.count());
    const std::vector<store::Revocation> rows =
        m_store.revocations_after(hosts, after, last, since, k_revocations_page);
    if (rows.empty() && !final && !ahead) return std::nullopt;
    return protocol::revocations_json(rows, last, k_revocations_page);
}

void Service::revocations(http::Request&& request, http::Reply&& reply) {
    const std::optional<int> wait = protocol::parse_wait(request.query_value("wait"));
    if (!wait) {
        reply.send(error(400, "invalid_request", "wait must be a whole number of seconds"));
        return;
    }
    const std::optional<std::int64_t> after = parse_cursor(request.query_value("after"));
    if (!after) {
        reply.send(error(400, "invalid_request", "after must be a cursor from an earlier answer (digits)"));
        return;
    }
    const std::vector<std::string>& hosts = request.client.names;
    if (std::optional<std::string> body = revocations_answer(hosts, *after, *wait == 0)) {
        reply.send(answer(200, std::move(*body)));
        return;
    }
    // Park it like a request poll (§5): no thread, a reply handle and a timer.
    auto waiter = std::make_shared<RevocationWaiter>();
    waiter->reply = std::move(reply);
    waiter->hosts = hosts;
    waiter->after = *after;
    const std::weak_ptr<RevocationWaiter> weak = waiter;
    const auto forget_it = [this, weak]() {
        const std::shared_ptr<RevocationWaiter> w = weak.lock();
        if (!w) return;
        for (const std::string& host : w->hosts) {
            const auto it = m_revocation_waiters.find(host);
            if (it == m_revocation_waiters.end()) continue;
            std::erase(it->second, w);
            if (it->second.empty()) m_revocation_waiters.erase(it);
        }
    };
    waiter->reply.on_gone(forget_it);
    waiter->timer = m_loop.after(std::chrono::seconds(*wait), [this, weak, forget_it]() {
        const std::shared_ptr<RevocationWaiter> w = weak.lock();
        if (!w) return;
        forget_it();
        try {
            if (!w->reply.answered()) w->reply.send(answer(200, *revocations_answer(w->hosts, w->after, true)));
        } catch (const std::exception& e) {
            std::fprintf(stderr, "jitgate-server: answering a revocation poll failed: %s\n", e.what());
            if (!w->reply.answered()) w->reply.send(error(503, "unavailable", "the database is unavailable"));
        }
    });
    for (const std::string& host : hosts) m_revocation_waiters[host].push_back(waiter);
}

void Service::wake_revocations(const std::string& host) {
    std::vector<std::shared_ptr<RevocationWaiter>> candidates;
    if (host.empty()) {
        for (const auto& [name, list] : m_revocation_waiters)
            candidates.insert(candidates.end(), list.begin(), list.end());
    } else if (const auto it = m_revocation_waiters.find(host); it != m_revocation_waiters.end()) {
        candidates = it->second;
    }
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    for (const std::shared_ptr<RevocationWaiter>& w : candidates) {
        if (w->reply.answered()) continue;
        std::optional<std::string> body;
        try {
            body = revocations_answer(w->hosts, w->after, false);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "jitgate-server: answering a revocation poll failed: %s\n", e.what());
            continue; // its timer answers it
        }
        if (!body) continue;
        w->timer.cancel();
        for (const std::string& name : w->hosts) {
            const auto it = m_revocation_waiters.find(name);
            if (it == m_revocation_waiters.end()) continue;
            std::erase(it->second, w);
            if (it->second.empty()) m_revocation_waiters.erase(it);
        }
        w->reply.send(answer(200, std::move(*body)));
    }
}

void Service::check_revocations() {
    if (m_revocation_waiters.empty() && m_newest_revocation >= 0) return;
    const std::int64_t newest = m_store.last_revocation_seq({});
    if (newest == m_newest_revocation) return;
    const std::int64_t previous = m_newest_revocation;
    m_newest_revocation = newest;
    if (previous < 0) return; // the first look: nothing to compare with
    // Only the hosts that have a new revocation (one query), not every parked poll's names.
    // A database that went back (a restore) or more hosts than the bound: every poll looks.
    constexpr std::size_t k_hosts_bound = 1000;
    const std::vector<std::string> hosts =
        newest < previous ? std::vector<std::string>{} : m_store.hosts_revoked_after(previous, k_hosts_bound);
    if (newest < previous || hosts.size() >= k_hosts_bound) {
        wake_revocations("");
        return;
    }
    for (const std::string& host : hosts) wake_revocations(host);
}

bool Service::may_revoke(const Approver& approver, const store::Request& request) const {
    if (request.status != store::Status::approved || request.grant_id.empty()) return false;
    return in_revoking_groups(approver, request);
}

// SECURITY NOTE: whether `approver` is one of the people who may revoke `request`'s grant, whatever
// its status now. A request's approver groups are fixed when it is filed, so this answer read
// before the store's transaction is the one inside it: a revocation sent while the request is
// pending and committed after another replica approved it is still refused to an outsider.
bool Service::in_revoking_groups(const Approver& approver, const store::Request& request) const {
    if (approver.unix_user.empty()) return false;
    return std::any_of(approver.groups.begin(), approver.groups.end(),
                       [&](const std::string& g) { return contains(request.approver_groups, g); });
}

ActionResult Service::revoke(const Approver& who, const std::string& host, const std::string& id,
                             const std::string& reason, const std::string& source_address, const std::string& via) {
    if (const std::optional<std::string> problem = protocol::revoke_reason_problem(reason, k_max_comment_bytes))
        return {ActionStatus::invalid, *problem};
    const std::string& actor = who.unix_user;
    std::optional<store::Request> found = m_store.find(host, id);
    if (!found) return {ActionStatus::not_found, "no such request"};
    const std::int64_t t = now();
    if (!in_revoking_groups(who, *found)) {
        const std::string why = "none of your approver groups may decide this request";
        // Throttled: one a minute per actor and request, the next carrying the count since, so
        // a script retrying a refused revocation cannot grow the events table.
        const std::string key = actor + '\n' + host + '\n' + id;
        if (record_refusal(m_revoke_refusals, key, t)) {
            const store::Event refused = event(
                t, "revocation.refused", host, id, actor, who.identity, source_address,
                {{"why", why}, {"via", via}, {"suppressed", std::exchange(m_revoke_refusals[key].suppressed, 0)}});
            m_store.record(refused);
            log_event(refused);
        }
        return {ActionStatus::forbidden, why};
    }
    store::Revocation r;
    r.revoked_by = actor;
    r.identity = who.identity;
    r.source_address = source_address;
    r.via = via;
    r.reason = reason;
    r.revoked_at = t;
    const store::Event revoked = event(t, "grant.revoked", host, id, actor, who.identity, source_address,
                                       {{"grant_id", found->grant_id}, {"reason", reason}, {"via", via}});
    const store::RevokeResult result = m_store.revoke_grant(host, id, r, revoked);
    switch (result.outcome) {
    case store::RevokeOutcome::not_found:
        return {ActionStatus::not_found, "no such request"};
    case store::RevokeOutcome::not_approved:
        return {ActionStatus::not_approved, "request " + id + " has no grant to revoke: it is " +
                                                std::string(store::to_string(result.request.status))};
    case store::RevokeOutcome::already_revoked:
        return {ActionStatus::already_revoked, "grant " + result.revocation.grant_id + " of request " + id +
                                                   " was revoked already, by " + result.revocation.revoked_by + " at " +
                                                   protocol::rfc3339(result.revocation.revoked_at)};
    case store::RevokeOutcome::revoked:
        break;
    }
    log_event(revoked);
    wake_revocations(host);
    notify("grant.revoked", result.request);
    return {ActionStatus::done, "revoked grant " + result.revocation.grant_id + " of request " + id + "; " + host +
                                    " ends it at its next poll"};
}

// ---- approvers --------------------------------------------------------------------------------

Decidability Service::decidability(const Approver& approver, const store::Request& request) const {
    Decidability d;
    // Refused both ways, with the same reason.
    const auto neither = [&d](std::string why) {
        d.why_not = why;
        d.why_not_deny = std::move(why);
        return d;
    };
    if (request.status != store::Status::pending)
        return neither("this request is " + std::string(store::to_string(request.status)));
    if (request.expires_at <= now()) return neither("this request has expired");
    if (approver.unix_user.empty()) return neither("your sign-in maps to no user name of the hosts");
    // SECURITY NOTE: one person is one Unix name across the IdP and the hosts (the mapping of
    // config oidc.username_claim / oidc.users). The requester, and the person whose login
    // session the request came from, may not decide it either way.
    if (approver.unix_user == request.requester ||
        (!request.requester_login.empty() && approver.unix_user == request.requester_login))
        return neither("you cannot decide your own request");
    const bool in_group = std::any_of(approver.groups.begin(), approver.groups.end(),
                                      [&](const std::string& g) { return contains(request.approver_groups, g); });
    if (!in_group) return neither("none of your approver groups may decide this request");
    // From here on the person may deny: having approved earlier does not stop them from
    // denying later (they changed their mind), and a ticket check that has not passed blocks
    // approval only.
    d.may_deny = true;
    if (std::any_of(request.approvals.begin(), request.approvals.end(),
                    [&](const store::Approval& a) { return a.approver == approver.unix_user; })) {
        d.why_not = "you have already approved this request";
        return d;
    }
    // The policy in force now, not only when the request was filed: a freeze or the change
    // board's hours may have begun while it waited (approver policy `when`/`unless`/`deny`).
    if (const auto filed = protocol::check_filed(request.body); filed.filed) {
        const protocol::Filed& f = *filed.filed;
        const PolicyDecision current =
            apply_policy(m_config, {f.host, f.environment, f.tags, f.rule, f.approvals_needed},
                         std::chrono::system_clock::time_point(std::chrono::seconds(now())));
        const FiledPolicy as_filed{request.approvals_needed, request.approver_groups, !request.ticket_check.empty()};
        if (const auto changed = policy_changed(as_filed, current, approver.groups)) {
            d.why_not = *changed;
            return d;
        }
    } else {
        d.why_not = "the stored request cannot be read again: " + filed.error;
        return d;
    }
    // A recorded ticket state means the policy asked for the check: it must say ok (fail closed).
    const Json ticket = ticket_state(request);
    if (ticket.is_object() && !(ticket.contains("ok") && ticket["ok"] == true)) {
        d.why_not = "the ticket check has not passed: " + ticket.value("why", std::string("no answer"));
        return d;
    }
    d.may_approve = true;
    return d;
}

void Service::record_ticket_check(const std::string& host, const std::string& id, bool ok, const std::string& why,
                                  const std::string& answer_json) {
    m_store.set_ticket_check(host, id, answer_json);
    const store::Event checked =
        event(now(), ok ? "ticket.passed" : "ticket.failed", host, id, "server", "", "", {{"why", why}});
    m_store.record(checked);
    log_event(checked);
}

namespace {

ActionStatus refusal_status(const std::string& why_not, const store::Request& request, std::int64_t now) {
    if (request.status != store::Status::pending || request.expires_at <= now) return ActionStatus::not_pending;
    if (why_not == "you cannot decide your own request") return ActionStatus::own_request;
    if (why_not == "you have already approved this request") return ActionStatus::already_voted;
    return ActionStatus::forbidden;
}

std::optional<std::string> comment_problem(const std::string& comment) {
    if (comment.size() > k_max_comment_bytes)
        return "a comment may hold at most " + std::to_string(k_max_comment_bytes) + " bytes";
    if (comment.find('\0') != std::string::npos || !text::is_valid_utf8(comment))
        return "a comment must be text (UTF-8, no NUL)";
    return std::nullopt;
}

} // namespace

ActionResult Service::approve(const Approver& approver, const std::string& host, const std::string& id,
                              const std::string& comment, const std::string& source_address, const std::string& via) {
    if (const auto problem = comment_problem(comment)) return {ActionStatus::invalid, *problem};
    std::optional<store::Request> found = m_store.find(host, id);
    if (!found) return {ActionStatus::not_found, "no such request"};
    const std::int64_t t = now();
    const Decidability d = decidability(approver, *found);
    if (!d.may_approve) {
        const store::Event refused = event(t, "approval.refused", host, id, approver.unix_user, approver.identity,
                                           source_address, {{"why", d.why_not}, {"via", via}});
        m_store.record(refused);
        log_event(refused);
        return {refusal_status(d.why_not, *found, t), d.why_not};
    }

    store::Approval approval;
    approval.approver = approver.unix_user;
    approval.identity = approver.identity;
    approval.comment = comment;
    approval.source_address = source_address;
    approval.via = via;
    approval.at = t;
    const store::Event added = event(t, "request.approval_added", host, id, approver.unix_user, approver.identity,
                                     source_address, {{"comment", comment}, {"via", via}});

    // Called by the store inside its transaction when this approval completes the request. The
    // grant's event goes back with it and is recorded in that transaction (a crash after the
    // commit cannot leave a signed grant without its event); syslog gets it after the commit.
    // PostgreSQL may call this twice (a reconnect): the last call is the one that committed.
    store::Event signed_event;
    const store::Signer sign = [&](const store::Request& done) { return sign_grant(done, t, {}, 0, signed_event); };
    const store::ApproveResult result = m_store.approve(host, id, approval, t, sign, added);
    switch (result.outcome) {
    case store::ApproveOutcome::not_pending:
        return {ActionStatus::not_pending, "this request is no longer pending"};
    case store::ApproveOutcome::already_approved:
        return {ActionStatus::already_voted, "you have already approved this request"};
    case store::ApproveOutcome::added: {
        log_event(added);
        notify("request.approval_added", result.request);
        const int left = result.request.approvals_needed - static_cast<int>(result.request.approvals.size());
        return {ActionStatus::done,
                "approval recorded; " +
                    text::plural(static_cast<std::uint64_t>(std::max(left, 0)), "more approval", "more approvals") +
                    " needed"};
    }
    case store::ApproveOutcome::approved: {
        log_event(added);
        log_event(signed_event);
        wake(host, id);
        notify("request.approved", result.request);
        return {ActionStatus::approved, "approved: the grant is on its way to " + host};
    }
    }
    return {ActionStatus::not_pending, "this request is no longer pending"};
}

store::SignedGrant Service::sign_grant(const store::Request& done, std::int64_t t, const std::string& auto_condition,
                                       std::int64_t auto_until, store::Event& signed_event) {
    std::vector<std::string> names;
    for (const store::Approval& a : done.approvals) names.push_back(a.approver);
    // SECURITY NOTE: an automatic grant names no approver (nobody approved), and a person's
    // approval never carries `auto`: the two cannot be mixed into one grant.
    if (!auto_condition.empty() && !names.empty())
        throw Error(ErrorCode::internal, "grant", "an automatic approval with approvals recorded");
    // The stored body was checked when it was filed; read once, it gives the claims and the
    // policy's inputs alike.
    const auto filed = protocol::check_filed(done.body);
    if (!filed.filed)
        throw Error(ErrorCode::internal, "grant", "the stored request cannot be read again: " + filed.error);
    const protocol::Filed& f = *filed.filed;
    const std::int64_t ttl = std::min<std::int64_t>(f.ttl_s, m_config.hosts.max_ttl.count());
    store::SignedGrant grant;
    grant.id = "G-" + random_hex(12);
    // Through grant_token::Claims, so the shared signer checks what every host will check
    // (distinct, non-empty approvers, none the requester, nbf < exp; or no approvers and a known
    // `auto`) before anything is signed: a bug upstream fails this transaction instead of
    // issuing a grant.
    grant_token::Claims claims;
    claims.iss = m_config.server.name;
    claims.jti = grant.id;
    claims.rid = done.id;
    claims.nonce = f.nonce;
    claims.host = done.host;
    claims.sub = done.requester;
    claims.kind = f.kind;
    claims.scope = f.scope;
    if (claims.scope == "command") claims.cmd_sha256 = f.cmd_sha256;
    claims.approvers = names;
    claims.auto_condition = auto_condition;
    claims.iat = t;
    claims.nbf = t;
    claims.exp = t + ttl;
    // A freeze known in advance (a deny entry's dated period or weekly hours) is not
    // outlived by a grant approved just before it: the grant ends when the freeze begins.
    std::string capped_by;
    if (const auto next =
            next_deny_start(m_config, {f.host, f.environment, f.tags, f.rule, f.approvals_needed}, t, claims.exp);
        next && next->at < claims.exp) {
        claims.exp = next->at;
        capped_by = next->what;
    }
    // SECURITY NOTE: an automatic grant is not outlived by the on-call shift that allowed it:
    // it ends when the earliest of the shifts that held ends (requester, login user, each
    // source). Without a known end nothing is signed.
    std::int64_t shift_end = 0;
    if (!auto_condition.empty()) {
        if (auto_until <= t) throw Error(ErrorCode::internal, "grant", "an automatic approval without an on-call end");
        if (auto_until < claims.exp) {
            claims.exp = auto_until;
            shift_end = auto_until;
        }
    }
    if (!done.requester_login.empty() && contains(names, done.requester_login))
        throw Error(ErrorCode::internal, "grant", "an approver is the requester's login user");
    grant.token = grant_token::sign(m_signing_key, claims);
    Json detail{{"grant_id", grant.id}, {"kid", m_signing_key.kid()}, {"approvers", names}};
    if (!auto_condition.empty()) {
        detail["auto"] = auto_condition;
        detail["auto_approved"] = true;
    }
    if (!capped_by.empty()) detail["ends_at_freeze"] = capped_by;
    if (shift_end > 0) detail["ends_at_on_call_end"] = protocol::rfc3339(shift_end);
    grant.event = event(t, "grant.signed", done.host, done.id, "server", "", "", std::move(detail));
    signed_event = grant.event;
    return grant;
}

Service::AutoDecision Service::auto_condition(const protocol::Filed& f, const PolicyDecision& policy,
                                              std::int64_t t) const {
    // SECURITY NOTE: three parties must agree, and each is checked here, at filing only (no
    // later event approves automatically): the host's rule opted in (`auto_approve` of §4: a
    // hostile host may claim it, which is why the policy must allow it too), every policy
    // entry covering the request allows it (auto_on_call: SoD included), and the requester is
    // on call now per the on-call source of every such entry (one schedule is not another's:
    // the DBA on call is not on call for the payment hosts). Never a login (its requester is
    // the account itself), never with a ticket check still to answer.
    AutoDecision d;
    const auto no = [&d](std::string why) {
        d.why_not = std::move(why);
        d.files.clear();
        return d;
    };
    if (!contains(f.auto_approve, "on_call")) return no("the host's rule did not ask for it");
    if (!policy.auto_on_call)
        return no("not every policy entry covering the request allows it (auto_approve, and auto_approve_sod for " +
                  std::to_string(policy.approvals_needed) + " approvals)");
    if (policy.ticket_check) return no("the ticket check applies");
    if (f.kind != "sudo") return no("a login is never approved automatically");
    if (policy.on_call_sources.empty()) return no("no on-call source applies");
    const auto at = std::chrono::system_clock::time_point(std::chrono::seconds(t));
    for (const std::string& source : policy.on_call_sources) {
        std::string path;
        if (source.empty()) {
            path = m_config.on_call_file;
        } else {
            for (const auto& [name, file] : m_config.on_call_files)
                if (name == source) path = file;
        }
        const std::string named =
            source.empty() ? std::string("on_call_file") : "on-call source " + text::shown(source, 64);
        // Fail closed: a source the config does not name (check-config refuses it) approves nobody.
        if (path.empty()) return no("no file is configured for " + named);
        std::vector<windows::OnCall> list;
        if (const auto problem = windows::read_on_call_file(path, list)) {
            // Fail closed: a broken or missing rota approves nobody; the request goes to people.
            windows::warn_throttled("jitgate-server: warning: no automatic approval (on_call): " +
                                    text::shown(*problem, 512));
            return no("the on-call file cannot be used: " + *problem);
        }
        if (!windows::on_call(list, f.requester, at))
            return no(text::shown(f.requester, 128) + " is not on call now (" + named + ")");
        // SECURITY NOTE: as jitgated does (daemon/policy/auto_approve.cpp): the real uid says whose
        // process asks, not who sits at the keyboard; anyone who can run as an on-call user (sudo
        // -u, su, a shared account) would be approved as them. Where the host knows the session's
        // login uid, that person must be on call too; a login uid without a name approves nobody.
        if (f.has_login_uid && f.requester_login.empty()) return no("the login user of the session is unknown");
        if (f.has_login_uid && !windows::on_call(list, f.requester_login, at))
            return no("the login user " + text::shown(f.requester_login, 128) + " is not on call now (" + named + ")");
        d.files.push_back(path);
        for (const std::string* user : {&f.requester, f.has_login_uid ? &f.requester_login : nullptr}) {
            if (user == nullptr) continue;
            const std::int64_t end = on_call_end(list, *user, t);
            d.until = d.until == 0 ? end : std::min(d.until, end);
        }
    }
    d.condition = "on_call";
    return d;
}

bool Service::approve_automatically(const store::Request& request, const AutoDecision& decision, std::int64_t t,
                                    const http::Request& filing) {
    const std::string& condition = decision.condition;
    const std::string by = "jitgate (auto: " + condition + ")";
    const store::Event approved = event(t, "request.auto_approved", request.host, request.id, "server",
                                        filing.client.subject, filing.peer_address,
                                        {{"condition", condition},
                                         {"auto_approved", true},
                                         {"requester", request.requester},
                                         {"requester_login", request.requester_login},
                                         {"rule", request.rule},
                                         {"on_call_files", decision.files}});
    store::Event signed_event;
    const store::Signer sign = [&](const store::Request& done) {
        return sign_grant(done, t, condition, decision.until, signed_event);
    };
    const store::ApproveResult result = m_store.approve_automatically(request.host, request.id, by, t, sign, approved);
    if (result.outcome != store::ApproveOutcome::approved) return false;
    m_auto_recent[request.host].push_back(t);
    log_event(approved);
    log_event(signed_event);
    wake(request.host, request.id);
    notify("request.approved", result.request);
    return true;
}

ActionResult Service::deny(const Approver& approver, const std::string& host, const std::string& id,
                           const std::string& comment, const std::string& source_address, const std::string& via) {
    if (const auto problem = comment_problem(comment)) return {ActionStatus::invalid, *problem};
    if (comment.empty()) return {ActionStatus::invalid, "a denial needs a comment for the requester"};
    std::optional<store::Request> found = m_store.find(host, id);
    if (!found) return {ActionStatus::not_found, "no such request"};
    const std::int64_t t = now();
    const Decidability d = decidability(approver, *found);
    if (!d.may_deny) {
        const store::Event refused = event(t, "denial.refused", host, id, approver.unix_user, approver.identity,
                                           source_address, {{"why", d.why_not_deny}, {"via", via}});
        m_store.record(refused);
        log_event(refused);
        return {refusal_status(d.why_not_deny, *found, t), d.why_not_deny};
    }
    const store::Event denied = event(t, "request.denied", host, id, approver.unix_user, approver.identity,
                                      source_address, {{"comment", comment}, {"via", via}});
    std::optional<store::Request> after =
        m_store.finish(host, id, store::Status::denied, approver.unix_user, comment, t, denied);
    if (!after) return {ActionStatus::not_pending, "this request is no longer pending"};
    log_event(denied);
    wake(host, id);
    notify("request.denied", *after);
    return {ActionStatus::done, "denied"};
}

} // namespace jitgate::server::service
