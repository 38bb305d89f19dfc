// server/http/worker.hpp — one thread beside the event loop, with a bounded queue, for work that
// would stall every connection if it ran on the loop thread: the IdP calls of sign-ins
// (web/web_ui.cpp) and the checks of a large audit batch (service/service.cpp). The work runs on
// the worker's thread; what follows it (answering the request) runs on the loop thread, handed
// back through post() (EventLoop::post). Depends on the standard library only.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace jitgate::server::http {

class Worker {
public:
    using Post = std::function<void(std::function<void()>)>;

    // Starts the thread. At most `max_waiting` (>= 1) pieces of work wait beyond the running
    // one; `name` ("sign-in", "audit batch") prefixes the log line of work that threw. `to_loop`
    // runs a function on the loop thread (EventLoop::post); it must be callable from any thread.
    Worker(std::string name, std::size_t max_waiting, Post to_loop);
    // Stops: waits for the running work, drops what waits (never run: its `then` is destroyed
    // here, so destroy the Worker on the loop thread, after the listeners).
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Queues `work` for the worker's thread; once it has run, `then(ok)` runs on the loop thread,
    // ok false when `work` threw (logged). Always, whatever `work` did: a request parked for it is
    // always answered. Returns false when max_waiting are waiting already or the worker is
    // stopping: then neither runs (the caller answers "busy") and both are destroyed here.
    // Call on the loop thread.
    // SECURITY NOTE (threads): `then` is only ever run and destroyed on the loop thread (or on
    // the thread destroying the Worker, for work never started), never on the worker's, so it
    // may hold an http::Reply: a Reply answered or ended beside the loop would write through
    // libevent at the same time as the loop (a 500 sent from the wrong thread). `work` runs and
    // is destroyed on the worker's thread and must hold no Reply. Should the hand-back fail (out
    // of memory), it is tried again; once the worker stops, `then` is leaked rather than ended
    // on the worker's thread. A hand-back dropped unrun (by the loop at its destruction) ends
    // `then` on the thread that drops it.
    bool push(std::function<void()> work, std::function<void(bool ok)> then);

private:
    struct Job {
        std::function<void()> work;
        std::function<void(bool)> then;
        bool ok = false;
        std::thread::id worker; // the worker's thread, set before the hand-back
    };
    class HandBack; // what goes to the loop: owns the job
    void run() noexcept;
    // Posts `job`'s `then` to the loop; never destroys it on this thread.
    void hand_back(Job* job) noexcept;

    const std::string m_name;
    const std::size_t m_max_waiting;
    const Post m_post;
    std::mutex m_mutex;
    std::condition_variable m_wake;
    std::deque<std::unique_ptr<Job>> m_queue;
    bool m_stopping = false;
    std::thread m_thread; // last: started once everything above exists
};

} // namespace jitgate::server::http
