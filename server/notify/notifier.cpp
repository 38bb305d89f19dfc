// server/notify/notifier.cpp — the webhook sender's loop (see notifier.hpp).
#include "server/notify/notifier.hpp"

#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "jitgate/text.hpp"

namespace jitgate::server::notify {

namespace {

const Target* find_target(const std::vector<Target>& targets, const std::string& name) {
    for (const auto& target : targets)
        if (target.name == name) return &target;
    return nullptr;
}

// The audit event of a notice given up. A JSON notice names its request; a Slack one does not.
store::Event dropped_event(const store::Notice& notice, const std::string& error, std::int64_t now) {
    store::Event event;
    event.at = now;
    event.type = "notice.dropped";
    event.actor = "server";
    const auto doc = nlohmann::json::parse(notice.body, nullptr, false);
    if (doc.is_object() && doc.contains("request") && doc["request"].is_object()) {
        const auto& request = doc["request"];
        if (request.contains("host") && request["host"].is_string()) event.host = request["host"].get<std::string>();
        if (request.contains("id") && request["id"].is_string()) event.request_id = request["id"].get<std::string>();
    }
    event.detail = nlohmann::json{
        {"notice_id", notice.id},
        {"target", notice.target},
        {"attempts", notice.attempts},
        {"error",
         error}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return event;
}

} // namespace

std::int64_t system_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void log_to_stderr(std::string_view line) {
    std::fprintf(stderr, "jitgate-server: notify: %s\n", text::printable(line).c_str());
}

PassResult run_pass(store::Store& store, const std::vector<Target>& targets, const Clock& clock,
                    const NotifierOptions& options, const std::function<double()>& jitter, const Log& log,
                    const std::function<bool()>& stopping) {
    PassResult result;
    const auto notices = store.claim_notices(clock(), options.batch, options.lease_s);
    result.claimed = notices.size();
    for (const auto& notice : notices) {
        if (stopping && stopping()) break;
        const Target* target = find_target(targets, notice.target);
        Delivery delivery;
        if (target == nullptr) {
            // The webhook was removed from the configuration since the notice was enqueued.
            delivery.outcome = Outcome::give_up;
            delivery.error = "no webhook named \"" + text::shown(notice.target, 100) + "\" is configured";
        } else {
            delivery = deliver(*target, notice.body, clock());
        }
        const std::int64_t now = clock();
        // The store counts a delivery when it is claimed (this one included): a notice whose
        // delivery kills the notifier still runs out of attempts.
        const int failures = std::max(notice.attempts, 1);
        if (delivery.outcome == Outcome::retry && exhausted(failures)) {
            delivery.outcome = Outcome::give_up;
            delivery.error = "retried for 24 h, last: " + delivery.error;
        }
        const std::string where = "notice " + std::to_string(notice.id) + " to " + text::shown(notice.target, 100);
        switch (delivery.outcome) {
        case Outcome::delivered:
            store.notice_delivered(notice.id);
            ++result.delivered;
            break;
        case Outcome::retry: {
            const std::int64_t next = now + backoff(failures, jitter(), delivery.retry_after).count();
            store.notice_failed(notice.id, next, delivery.error);
            ++result.retried;
            if (!result.next_due || next < *result.next_due) result.next_due = next;
            log(where + ": attempt " + std::to_string(failures) + " failed, next in " + std::to_string(next - now) +
                " s: " + delivery.error);
            break;
        }
        case Outcome::give_up:
            store.notice_dropped(notice.id, delivery.error);
            store.record(dropped_event(notice, delivery.error, now));
            ++result.dropped;
            log(where + ": given up: " + delivery.error);
            break;
        }
    }
    return result;
}

Notifier::Notifier(std::vector<Target> targets, StoreFactory open_store, Clock clock, NotifierOptions options, Log log)
    : m_targets(std::move(targets)), m_open_store(std::move(open_store)), m_clock(std::move(clock)), m_options(options),
      m_log(std::move(log)) {}

Notifier::~Notifier() {
    stop();
}

void Notifier::start() {
    std::lock_guard lock(m_mutex);
    if (m_thread.joinable() || m_stopping) return;
    m_thread = std::thread([this] { run(); });
}

void Notifier::wake() noexcept {
    {
        std::lock_guard lock(m_mutex);
        m_woken = true;
    }
    m_cv.notify_one();
}

void Notifier::stop() noexcept {
    {
        std::lock_guard lock(m_mutex);
        m_stopping = true;
    }
    m_cv.notify_one();
    if (m_thread.joinable() && m_thread.get_id() != std::this_thread::get_id()) m_thread.join();
}

std::uint64_t Notifier::passes() const noexcept {
    std::lock_guard lock(m_mutex);
    return m_passes;
}

void Notifier::run() noexcept {
    std::unique_ptr<store::Store> store;
    std::mt19937_64 rng(std::random_device{}());
    std::uniform_real_distribution<double> spread(-1.0, 1.0);
    const std::function<double()> jitter = [&] { return spread(rng); };
    for (;;) {
        {
            std::lock_guard lock(m_mutex);
            if (m_stopping) return;
            m_woken = false; // what was enqueued before this point is seen by this pass
        }
        bool more = false;
        std::optional<std::int64_t> next_due;
        try {
            if (!store) store = m_open_store();
            const PassResult pass = run_pass(*store, m_targets, m_clock, m_options, jitter, m_log, [this] {
                std::lock_guard lock(m_mutex);
                return m_stopping;
            });
            more = pass.claimed == m_options.batch;
            next_due = pass.next_due;
        } catch (const std::exception& e) {
            // The database is down or the connection broke: start over with a new connection
            // after the poll interval. The claimed notices come back when their lease ends.
            store.reset();
            try {
                m_log(std::string("the outbox is unavailable: ") + text::shown(e.what(), 500));
            } catch (...) {
            }
        } catch (...) {
            store.reset();
        }
        std::unique_lock lock(m_mutex);
        ++m_passes;
        if (more) continue; // a full batch: more may be due already
        auto wait = m_options.poll;
        if (next_due) {
            std::int64_t now = 0;
            try {
                now = m_clock();
            } catch (...) {
            }
            const auto until_due = std::chrono::milliseconds(std::max<std::int64_t>(*next_due - now, 0) * 1000);
            wait = std::min(wait, until_due);
        }
        m_cv.wait_for(lock, wait, [this] { return m_woken || m_stopping; });
    }
}

} // namespace jitgate::server::notify
