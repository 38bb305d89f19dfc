// server/http/loop.cpp — EventLoop, Timer and fd watches on one libevent event_base.
//
// post() and stop() are the only calls from other threads: work goes into a queue under a
// mutex and one libevent event is activated, which libevent's pthread locking makes safe
// (evthread_use_pthreads() before the base exists). Everything else runs on the loop thread.
#include <event2/event.h>
#include <event2/thread.h>
#include <syslog.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <unordered_set>

#include <jitgate/error.hpp>
#include <jitgate/text.hpp>

#include "server/http/http.hpp"
#include "server/http/internal.hpp"

namespace jitgate::server::http {

namespace detail {

void log(std::string_view message) noexcept {
    try {
        const std::string line = "jitgate-server: http: " + text::printable(message) + "\n";
        std::fputs(line.c_str(), stderr);
    } catch (...) {
        std::fputs("jitgate-server: http: (a message was lost: out of memory)\n", stderr);
    }
}

void log_refusal(std::string_view kind, std::string_view message) noexcept {
    struct Window {
        std::chrono::steady_clock::time_point last{};
        std::uint64_t held_back = 0;
        bool logged = false;
    };
    static std::mutex mutex;
    static std::map<std::string, Window, std::less<>> windows;
    try {
        std::string line;
        {
            const std::lock_guard<std::mutex> lock(mutex);
            auto it = windows.find(kind);
            if (it == windows.end()) it = windows.emplace(std::string(kind), Window{}).first;
            Window& w = it->second;
            const auto now = std::chrono::steady_clock::now();
            if (w.logged && now - w.last < std::chrono::seconds(10)) {
                ++w.held_back;
                return;
            }
            line = text::printable(message);
            if (w.held_back > 0)
                line += " (" + std::to_string(w.held_back) + " more like this in the last " +
                        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - w.last).count()) +
                        " s were not logged)";
            w.last = now;
            w.held_back = 0;
            w.logged = true;
        }
        log(line);
        ::syslog(LOG_WARNING, "http: %s", line.c_str());
    } catch (...) {
        log("(a refusal was not logged: out of memory)");
    }
}

namespace {

void libevent_log(int severity, const char* message) {
    if (severity < EVENT_LOG_WARN) return; // debug and info chatter
    log(std::string("libevent: ") + (message != nullptr ? message : ""));
}

void init_libevent_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        // Without it, event_active() and event_base_loopbreak() from another thread race.
        if (evthread_use_pthreads() != 0) throw Error(ErrorCode::internal, "libevent", "cannot enable threads");
        event_set_log_callback(libevent_log);
        // SECURITY NOTE: OpenSSL writes to sockets with send() without MSG_NOSIGNAL, so a client
        // that closes while its answer is written would kill the whole server with SIGPIPE.
        std::signal(SIGPIPE, SIG_IGN);
    });
}

} // namespace

// Something holding a libevent event of the loop: freed (detached) when the loop goes first.
struct Attached {
    virtual ~Attached() = default;
    virtual void detach() noexcept = 0;
};

} // namespace detail

struct EventLoop::Impl {
    event_base* base = nullptr;
    event* wake = nullptr;
    std::mutex mutex;
    std::deque<std::function<void()>> queue; // guarded by mutex
    std::atomic<bool> stop_requested{false};
    std::unordered_set<detail::Attached*> attached; // loop thread only

    static void on_wake(evutil_socket_t, short, void* arg) noexcept {
        auto* self = static_cast<Impl*>(arg);
        std::deque<std::function<void()>> work;
        {
            std::lock_guard<std::mutex> lock(self->mutex);
            work.swap(self->queue);
        }
        for (auto& w : work) detail::guarded("posted work", w);
        // After the work already queued: stop() from a thread that posted first sees it done.
        if (self->stop_requested.load()) event_base_loopbreak(self->base);
    }
};

namespace detail {

// A one-shot timer or an fd watch: one libevent event and its callback.
struct EventHolder : detail::Attached {
    std::unordered_set<Attached*>* registry = nullptr; // the loop's, while it lives
    event* ev = nullptr;
    std::function<void()> callback;

    void detach() noexcept override {
        if (ev != nullptr) event_free(ev);
        ev = nullptr;
        registry = nullptr;
    }
    void release() noexcept {
        if (registry != nullptr) registry->erase(this);
        detach();
    }
};

} // namespace detail

namespace {

struct Watch final : detail::EventHolder {
    ~Watch() { release(); }
    static void on_readable(evutil_socket_t, short, void* arg) noexcept {
        auto* self = static_cast<Watch*>(arg);
        // A copy: the callback may drop the last handle, which destroys *self.
        auto callback = self->callback;
        detail::guarded("fd watch", callback);
    }
};

} // namespace

struct Timer::State final : detail::EventHolder {
    bool armed = false;
    ~State() { release(); }
    static void on_fire(evutil_socket_t, short, void* arg) noexcept {
        auto* self = static_cast<State*>(arg);
        self->armed = false;
        // Moved out: the callback may destroy the Timer, and with it *self.
        auto callback = std::move(self->callback);
        self->callback = nullptr;
        detail::guarded("timer", callback);
    }
};

Timer::Timer(std::shared_ptr<State> state) : m_state(std::move(state)) {}
Timer::~Timer() {
    cancel();
}
Timer::Timer(Timer&&) noexcept = default;
Timer& Timer::operator=(Timer&& other) noexcept {
    if (this != &other) {
        cancel();
        m_state = std::move(other.m_state);
    }
    return *this;
}

void Timer::cancel() noexcept {
    if (!m_state) return;
    m_state->armed = false;
    m_state->release();
    m_state->callback = nullptr;
    m_state.reset();
}

bool Timer::armed() const noexcept {
    return m_state && m_state->armed && m_state->ev != nullptr;
}

EventLoop::EventLoop() : m_impl(std::make_unique<Impl>()) {
    detail::init_libevent_once();
    m_impl->base = event_base_new();
    if (m_impl->base == nullptr) throw Error(ErrorCode::internal, "libevent", "cannot create an event base");
    m_impl->wake = event_new(m_impl->base, -1, 0, &Impl::on_wake, m_impl.get());
    if (m_impl->wake == nullptr) {
        event_base_free(m_impl->base);
        throw Error(ErrorCode::internal, "libevent", "cannot create the wake-up event");
    }
}

EventLoop::~EventLoop() {
    // Timers and watches that outlive the loop must not touch the freed base.
    for (auto* a : m_impl->attached) a->detach();
    m_impl->attached.clear();
    event_free(m_impl->wake);
    // libevent finishes freeing a bufferevent (with its SSL) from this loop: a deferred
    // callback holding a reference, then a finalizer. A Listener torn down just before (its
    // evhttp_free) leaves those queued, and event_base_free drops the queues without running
    // them, so such a connection was never freed. The freed bufferevents have no callbacks of
    // ours left, and every event of ours is gone by now, so these passes run libevent's own
    // work only.
    for (int pass = 0; pass < 4; ++pass) event_base_loop(m_impl->base, EVLOOP_NONBLOCK);
    event_base_free(m_impl->base);
}

void EventLoop::run() {
    event_base_loop(m_impl->base, EVLOOP_NO_EXIT_ON_EMPTY);
    m_impl->stop_requested.store(false);
}

void EventLoop::stop() noexcept {
    m_impl->stop_requested.store(true);
    // The wake event breaks the loop from inside it, so a stop() before run() is not lost.
    event_active(m_impl->wake, EV_READ, 0);
}

void EventLoop::post(std::function<void()> work) {
    {
        std::lock_guard<std::mutex> lock(m_impl->mutex);
        m_impl->queue.push_back(std::move(work));
    }
    event_active(m_impl->wake, EV_READ, 0);
}

Timer EventLoop::after(std::chrono::milliseconds delay, std::function<void()> callback) {
    auto state = std::make_shared<Timer::State>();
    state->ev = event_new(m_impl->base, -1, 0, &Timer::State::on_fire, state.get());
    if (state->ev == nullptr) throw Error(ErrorCode::internal, "libevent", "cannot create a timer");
    const auto ms = delay.count() < 0 ? 0 : delay.count();
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
    if (event_add(state->ev, &tv) != 0) throw Error(ErrorCode::internal, "libevent", "cannot arm a timer");
    state->callback = std::move(callback);
    state->armed = true;
    state->registry = &m_impl->attached;
    m_impl->attached.insert(state.get());
    return Timer(std::move(state));
}

std::shared_ptr<void> EventLoop::watch_readable(int fd, std::function<void()> callback) {
    auto watch = std::make_shared<Watch>();
    watch->ev = event_new(m_impl->base, fd, EV_READ | EV_PERSIST, &Watch::on_readable, watch.get());
    if (watch->ev == nullptr || event_add(watch->ev, nullptr) != 0)
        throw Error(ErrorCode::internal, "libevent", "cannot watch fd " + std::to_string(fd));
    watch->callback = std::move(callback);
    watch->registry = &m_impl->attached;
    m_impl->attached.insert(watch.get());
    return watch;
}

event_base* EventLoop::native() noexcept {
    return m_impl->base;
}

} // namespace jitgate::server::http
