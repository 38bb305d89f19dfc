// server/store/sqlite_checkpoint.cpp — SqliteCheckpointer (store.hpp): the write-ahead log is
// copied back into the database file here, off the event loop.
#include "server/store/sqlite_db.hpp"
#include "server/store/store.hpp"

#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

namespace jitgate::server::store {

struct SqliteCheckpointer::State {
    std::string path;
    Report report;
    std::chrono::milliseconds every;
    mutable std::mutex mutex;
    std::condition_variable wake;
    bool stopping = false;
    std::uint64_t completed = 0;
    std::thread thread;

    void run() {
        std::unique_ptr<sqlite::Db> db;
        std::string last_error;
        std::unique_lock lock(mutex);
        while (!wake.wait_for(lock, every, [this] { return stopping; })) {
            lock.unlock();
            bool done = false;
            try {
                if (!db) db = std::make_unique<sqlite::Db>(path, false);
                sqlite::Query checkpoint(*db, "PRAGMA wal_checkpoint(PASSIVE)");
                // One row: busy (always 0 for PASSIVE), frames in the log, frames copied.
                if (checkpoint.step()) done = checkpoint.integer(1) == checkpoint.integer(2);
                last_error.clear();
            } catch (const std::exception& e) {
                db.reset(); // reopened next time: the file may have been replaced or fixed
                // Once per distinct failure, not once a second.
                if (e.what() != last_error && report) report(std::string("WAL checkpoint failed: ") + e.what());
                last_error = e.what();
            }
            lock.lock();
            if (done) ++completed;
        }
    }
};

SqliteCheckpointer::SqliteCheckpointer(std::string path, Report report, std::chrono::milliseconds every)
    : m_state(std::make_unique<State>()) {
    m_state->path = std::move(path);
    m_state->report = std::move(report);
    m_state->every = every;
    m_state->thread = std::thread([state = m_state.get()] { state->run(); });
}

SqliteCheckpointer::~SqliteCheckpointer() {
    {
        std::lock_guard lock(m_state->mutex);
        m_state->stopping = true;
    }
    m_state->wake.notify_all();
    m_state->thread.join();
}

std::uint64_t SqliteCheckpointer::completed() const {
    std::lock_guard lock(m_state->mutex);
    return m_state->completed;
}

} // namespace jitgate::server::store
