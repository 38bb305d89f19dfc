// server/notify/notifier.hpp — the webhook sender: one thread that empties the outbox.
//
// The decision path never waits for a webhook: it puts the notice in the database with its own
// Store (store.enqueue, in notice.hpp's format) and calls wake(). The notifier thread owns its
// own Store connection (made by the factory it is given, on its own thread) and loops:
// claim_notices (a lease, so another replica's notifier does not take them meanwhile),
// deliver each (deliver.hpp), then notice_delivered, notice_failed (with the next attempt
// time from the backoff) or notice_dropped (given up, with an audit event
// "notice.dropped"). Then it sleeps until wake(), stop(), or the poll interval (notices due
// later, or enqueued by another replica, are seen at the next poll).
//
// Threading: start(), wake() and stop() may be called from any thread; the Store is used only
// on the notifier's thread. run_pass() is the loop's body, for tests and for callers with a
// thread of their own.
// Errors: a database failure is logged and the connection is reopened after the poll
// interval; nothing is thrown out of the thread. The constructor does not touch the database.
// Must not depend on the HTTP server or the protocol logic.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "server/notify/deliver.hpp"
#include "server/store/store.hpp"

namespace jitgate::server::notify {

using StoreFactory = std::function<std::unique_ptr<store::Store>()>;
using Clock = std::function<std::int64_t()>;            // Unix seconds
using Log = std::function<void(std::string_view line)>; // one printable line, no secret in it

// Unix seconds from the system clock.
std::int64_t system_now();
// Writes "jitgate-server: notify: <line>" to stderr.
void log_to_stderr(std::string_view line);

struct NotifierOptions {
    std::size_t batch = 10; // notices claimed per pass
    // How long a claim keeps other replicas away: longer than a batch's worst case
    // (batch * (connect + transfer timeout) = 10 * 20 s).
    int lease_s = 300;
    std::chrono::milliseconds poll{5000}; // the longest sleep between passes
};

struct PassResult {
    std::size_t claimed = 0;
    std::size_t delivered = 0;
    std::size_t retried = 0;
    std::size_t dropped = 0;
    std::optional<std::int64_t> next_due; // the earliest next_attempt_at this pass set
};

// One pass: claims up to options.batch notices due at clock(), delivers them, records each
// outcome in `store`. `jitter` draws the backoff's jitter in [-1, 1]. When `stopping` (if
// given) turns true, the pass ends after the delivery in progress; the notices it claimed but
// did not try are tried again when their lease ends. Throws what the store throws (Error(io));
// a notice being delivered when the store fails is retried after its lease.
PassResult run_pass(store::Store& store, const std::vector<Target>& targets, const Clock& clock,
                    const NotifierOptions& options, const std::function<double()>& jitter, const Log& log,
                    const std::function<bool()>& stopping = {});

class Notifier {
public:
    Notifier(std::vector<Target> targets, StoreFactory open_store, Clock clock = &system_now,
             NotifierOptions options = {}, Log log = &log_to_stderr);
    ~Notifier(); // stop()
    Notifier(const Notifier&) = delete;
    Notifier& operator=(const Notifier&) = delete;

    // Starts the thread (once; later calls do nothing). Throws std::system_error if no thread
    // can be started.
    void start();
    // Makes the thread run a pass now (a notice was enqueued). Never blocks on the database or
    // the network; thread-safe.
    void wake() noexcept;
    // Ends the thread after the delivery in progress (if any) and joins it. Idempotent.
    void stop() noexcept;
    // Passes completed so far (successful or not): for tests and the status page.
    std::uint64_t passes() const noexcept;

private:
    void run() noexcept;

    std::vector<Target> m_targets;
    StoreFactory m_open_store;
    Clock m_clock;
    NotifierOptions m_options;
    Log m_log;

    mutable std::mutex m_mutex;
    std::condition_variable m_cv;
    bool m_woken = false;
    bool m_stopping = false;
    std::uint64_t m_passes = 0;
    std::thread m_thread;
};

} // namespace jitgate::server::notify
