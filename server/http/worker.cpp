// server/http/worker.cpp — see worker.hpp.
#include "server/http/worker.hpp"

#include <jitgate/text.hpp>

#include <cstdio>
#include <exception>

namespace jitgate::server::http {

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

bool Worker::push(std::function<void()> work) {
    {
        const std::lock_guard<std::mutex> lock(m_mutex);
        if (m_stopping || m_queue.size() >= m_max_waiting) return false;
        m_queue.push_back(std::move(work));
    }
    m_wake.notify_one();
    return true;
}

void Worker::run() noexcept {
    for (;;) {
        std::function<void()> work;
        {
            std::unique_lock<std::mutex> lock(m_mutex);
            m_wake.wait(lock, [this] { return m_stopping || !m_queue.empty(); });
            if (m_stopping) return;
            work = std::move(m_queue.front());
            m_queue.pop_front();
        }
        try {
            work();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "jitgate-server: %s worker: %s\n", m_name.c_str(),
                         text::shown(e.what(), 1000).c_str());
        } catch (...) {
            std::fprintf(stderr, "jitgate-server: %s worker: unexpected error\n", m_name.c_str());
        }
    }
}

} // namespace jitgate::server::http
