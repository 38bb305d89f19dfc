// server/http/worker.hpp — one thread beside the event loop, with a bounded queue, for work that
// would stall every connection if it ran on the loop thread: the IdP calls of sign-ins
// (web/web_ui.cpp) and the checks of a large audit batch (service/service.cpp). The work runs on
// the worker's thread and hands its result back to the loop through post() (EventLoop::post).
// Depends on the standard library only.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
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
    // Stops: waits for the running work, drops what waits (never run: its replies are dropped
    // with the listeners, which the caller stops first).
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Queues `work` for the worker's thread. False when max_waiting are waiting already (the
    // caller answers "busy": nothing was started) or the worker is stopping. Thread-safe.
    bool push(std::function<void()> work);
    // Runs `work` on the loop thread (through to_loop). Thread-safe.
    void post(std::function<void()> work) const { m_post(std::move(work)); }

private:
    void run() noexcept;

    const std::string m_name;
    const std::size_t m_max_waiting;
    const Post m_post;
    std::mutex m_mutex;
    std::condition_variable m_wake;
    std::deque<std::function<void()>> m_queue;
    bool m_stopping = false;
    std::thread m_thread; // last: started once everything above exists
};

} // namespace jitgate::server::http
