// server/http/worker.cpp — see worker.hpp.
#include "server/http/worker.hpp"

#include <jitgate/text.hpp>

#include <chrono>
#include <cstdio>
#include <exception>
#include <utility>

namespace jitgate::server::http {

// The function posted to the loop. It owns the job: run, it runs `then` and ends the job;
// dropped unrun, it ends the job too, except on the worker's own thread, where only a post that
// failed drops it (the worker keeps the job and tries again). std::function wants a copyable
// target: a copy takes the job over (the loop only moves it).
class Worker::HandBack {
public:
    explicit HandBack(Job* job) noexcept : m_job(job) {}
    HandBack(const HandBack& other) noexcept : m_job(std::exchange(other.m_job, nullptr)) {}
    HandBack& operator=(const HandBack&) = delete;
    ~HandBack() {
        if (m_job != nullptr && std::this_thread::get_id() != m_job->worker) delete m_job;
    }
    void operator()() {
        const std::unique_ptr<Job> job(std::exchange(m_job, nullptr));
        if (job) job->then(job->ok);
    }

private:
    mutable Job* m_job;
};

Worker::Worker(std::string name, std::size_t max_waiting, Post to_loop)
    : m_name(std::move(name)), m_max_waiting(max_waiting < 1 ? 1 : max_waiting), m_post(std::move(to_loop)),
      m_thread([this] { run(); }) {}

Worker::~Worker() {
    {
        const std::lock_guard<std::mutex> lock(m_mutex);
        m_stopping = true;
    }
    m_wake.notify_all();
    m_thread.join();
}

bool Worker::push(std::function<void()> work, std::function<void(bool ok)> then) {
    auto job = std::make_unique<Job>(Job{std::move(work), std::move(then), false, {}});
    {
        const std::lock_guard<std::mutex> lock(m_mutex);
        if (m_stopping || m_queue.size() >= m_max_waiting) return false;
        m_queue.push_back(std::move(job));
    }
    m_wake.notify_one();
    return true;
}

void Worker::run() noexcept {
    for (;;) {
        std::unique_ptr<Job> job;
        {
            std::unique_lock<std::mutex> lock(m_mutex);
            m_wake.wait(lock, [this] { return m_stopping || !m_queue.empty(); });
            if (m_stopping) return;
            job = std::move(m_queue.front());
            m_queue.pop_front();
        }
        try {
            job->work();
            job->ok = true;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "jitgate-server: %s worker: %s\n", m_name.c_str(),
                         text::shown(e.what(), 1000).c_str());
        } catch (...) {
            std::fprintf(stderr, "jitgate-server: %s worker: unexpected error\n", m_name.c_str());
        }
        job->work = nullptr; // its captures end here, on this thread; `then` goes back whole
        job->worker = std::this_thread::get_id();
        hand_back(job.release());
    }
}

void Worker::hand_back(Job* job) noexcept {
    bool logged = false;
    for (;;) {
        try {
            // Whatever of this fails (out of memory) drops the HandBack here, on the worker's
            // thread, which leaves the job alone. Once posted, the loop owns it.
            m_post(std::function<void()>(HandBack(job)));
            return;
        } catch (...) {
            if (!logged)
                std::fprintf(stderr,
                             "jitgate-server: %s worker: cannot hand a result back to the loop (out of "
                             "memory?); trying again\n",
                             m_name.c_str());
            logged = true;
        }
        std::unique_lock<std::mutex> lock(m_mutex);
        if (m_wake.wait_for(lock, std::chrono::milliseconds(50), [this] { return m_stopping; })) return; // leaked
    }
}

} // namespace jitgate::server::http
