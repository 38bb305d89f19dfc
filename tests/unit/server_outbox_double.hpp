// tests/unit/server_outbox_double.hpp — OutboxDouble: a TEST DOUBLE of store::Store's webhook
// OUTBOX ONLY (enqueue, claim_notices, notice_delivered/failed/dropped) plus record(), kept in
// memory, for the notifier's tests until the real SQLite store lands (the lead switches those
// tests to store::open_sqlite at merge). Every other Store method throws: a test that reaches
// one is testing something this double does not model.
// Thread-safe (one mutex), so a test can inspect it while the notifier thread uses it. Copies
// share one outbox, as two connections to one database do: the notifier's store factory hands
// out copies.
#pragma once

#include <algorithm>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "server/store/store.hpp"

namespace jitgate::test {

class OutboxDouble : public server::store::Store {
public:
    OutboxDouble() = default;
    OutboxDouble(const OutboxDouble& other) : Store(), m(other.m) {}
    OutboxDouble& operator=(const OutboxDouble&) = delete;

    enum class State { waiting, delivered, dropped };
    struct Row {
        server::store::Notice notice;
        State state = State::waiting;
        std::int64_t lease_until = 0;
    };

    // --- the outbox (modelled) ---
    void enqueue(const std::string& target, const std::string& body, std::int64_t now) override {
        std::lock_guard lock(m->mutex);
        Row row;
        row.notice.id = ++m->last_id;
        row.notice.target = target;
        row.notice.body = body;
        row.notice.next_attempt_at = now;
        m->rows.push_back(row);
    }
    std::vector<server::store::Notice> claim_notices(std::int64_t now, std::size_t limit, int lease_s) override {
        std::lock_guard lock(m->mutex);
        ++m->claims;
        std::vector<server::store::Notice> out;
        for (auto& row : m->rows) {
            if (out.size() >= limit) break;
            if (row.state != State::waiting || row.notice.next_attempt_at > now || row.lease_until > now) continue;
            row.lease_until = now + lease_s;
            ++row.notice.attempts; // counted at claim time, this delivery included (store.hpp)
            out.push_back(row.notice);
        }
        return out;
    }
    void notice_delivered(std::int64_t id) override {
        std::lock_guard lock(m->mutex);
        Row& row = row_of(id);
        row.state = State::delivered;
        row.lease_until = 0;
    }
    void notice_failed(std::int64_t id, std::int64_t next_attempt_at, const std::string& error) override {
        std::lock_guard lock(m->mutex);
        Row& row = row_of(id);
        row.notice.next_attempt_at = next_attempt_at;
        row.notice.last_error = error;
        row.lease_until = 0;
    }
    void notice_dropped(std::int64_t id, const std::string& error) override {
        std::lock_guard lock(m->mutex);
        Row& row = row_of(id);
        row.notice.last_error = error;
        row.state = State::dropped;
        row.lease_until = 0;
    }
    void record(const server::store::Event& event) override {
        std::lock_guard lock(m->mutex);
        m->events.push_back(event);
    }

    // --- inspection by the tests ---
    std::vector<Row> rows() const {
        std::lock_guard lock(m->mutex);
        return m->rows;
    }
    Row row(std::int64_t id) const {
        std::lock_guard lock(m->mutex);
        for (const auto& r : m->rows)
            if (r.notice.id == id) return r;
        throw std::runtime_error("OutboxDouble: no notice " + std::to_string(id));
    }
    std::vector<server::store::Event> recorded() const {
        std::lock_guard lock(m->mutex);
        return m->events;
    }
    std::size_t claims() const {
        std::lock_guard lock(m->mutex);
        return m->claims;
    }
    // Sets a notice's attempts so far (a notice retried for a long time).
    void set_attempts(std::int64_t id, int attempts) {
        std::lock_guard lock(m->mutex);
        row_of(id).notice.attempts = attempts;
    }
    // Makes every waiting notice claimable at `now` (as if its time had come).
    void make_all_due(std::int64_t now) {
        std::lock_guard lock(m->mutex);
        for (auto& r : m->rows)
            if (r.state == State::waiting) r.notice.next_attempt_at = std::min(r.notice.next_attempt_at, now);
    }

    // --- not modelled by this double ---
    server::store::CreateResult create(const server::store::Request&, const server::store::Event&) override {
        unmodelled("create");
    }
    std::optional<server::store::Request> find(std::string_view, std::string_view) override { unmodelled("find"); }
    std::vector<server::store::Request> pending(std::size_t) override { unmodelled("pending"); }
    std::vector<server::store::Request> history(std::int64_t, std::size_t) override { unmodelled("history"); }
    server::store::ApproveResult approve(std::string_view, std::string_view, const server::store::Approval&,
                                         std::int64_t, const server::store::Signer&,
                                         const server::store::Event&) override {
        unmodelled("approve");
    }
    std::optional<server::store::Request> finish(std::string_view, std::string_view, server::store::Status,
                                                 const std::string&, const std::string&, std::int64_t,
                                                 const server::store::Event&) override {
        unmodelled("finish");
    }
    std::vector<std::pair<std::string, std::string>> due(std::int64_t, std::size_t) override { unmodelled("due"); }
    void set_ticket_check(std::string_view, std::string_view, const std::string&) override {
        unmodelled("set_ticket_check");
    }
    std::size_t purge(std::int64_t) override { unmodelled("purge"); }
    std::vector<server::store::Event> events(std::string_view, std::string_view) override { unmodelled("events"); }
    void put_session(const server::store::Session&) override { unmodelled("put_session"); }
    std::optional<server::store::Session> find_session(std::string_view, std::int64_t) override {
        unmodelled("find_session");
    }
    void delete_session(std::string_view) override { unmodelled("delete_session"); }
    void put_login(const server::store::LoginState&) override { unmodelled("put_login"); }
    std::optional<server::store::LoginState> take_login(std::string_view, std::int64_t) override {
        unmodelled("take_login");
    }
    int wake_fd() override { return -1; }
    std::vector<std::pair<std::string, std::string>> take_wakeups() override { return {}; }

private:
    [[noreturn]] static void unmodelled(const char* method) {
        throw std::logic_error(std::string("OutboxDouble models the outbox only; ") + method + " was called");
    }
    Row& row_of(std::int64_t id) {
        for (auto& r : m->rows)
            if (r.notice.id == id) return r;
        throw std::runtime_error("OutboxDouble: no notice " + std::to_string(id));
    }

    struct Shared {
        std::mutex mutex;
        std::vector<Row> rows;
        std::vector<server::store::Event> events;
        std::int64_t last_id = 0;
        std::size_t claims = 0;
    };
    std::shared_ptr<Shared> m = std::make_shared<Shared>();
};

} // namespace jitgate::test
