// daemon/server/server.hpp — the Unix-socket server of jitgated: one epoll loop, many clients.
//
// Every client is a non-blocking connection in one event loop, so thousands of requests can
// wait for approvers while the fast path (a live grant, an allow rule) is answered at once.
// Peers are identified by SO_PEERCRED, never by what they claim. Not thread-safe: run() owns
// everything until SIGTERM/SIGINT; SIGHUP reloads the config. The only other thread is the
// Auditor's committer (fdatasync of the spool), which touches nothing of the server: the loop
// learns of each finished sync through the Auditor's eventfd (release_durable).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/audit/auditor.hpp"
#include "daemon/config/config.hpp"
#include "daemon/policy/broker.hpp"
#include "daemon/server/handlers.hpp"

namespace jitgate::server {

class Connection;

class Server {
public:
    // Binds the socket of `config` (replacing a stale one; throws Error if another daemon
    // answers on it or the bind fails) and blocks SIGTERM/SIGINT/SIGHUP for the signalfd.
    // Backend "service": loads the grant keys and sets up the HTTPS client (throws Error if a
    // key, the CA, the certificate or the client key cannot be read).
    // `shipper` (may be null: no store) outlives the server; it is shown by `status`.
    Server(std::string config_path, std::shared_ptr<const config::Config> config, audit::Auditor& auditor,
           const audit::Shipper* shipper = nullptr);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Serves until SIGTERM or SIGINT. Returns the process exit code.
    int run();
    // Whether the loop makes a batch durable itself when nothing else is ready to be read
    // (on by default: a lone client is not passed between two threads), rather than always
    // handing it to the committer thread. The durability guarantee is the same either way.
    void set_commit_inline_when_idle(bool on) noexcept { m_commit_inline_when_idle = on; }

private:
    void accept_clients();
    // Out of descriptors (EMFILE/ENFILE on accept): takes one waiting connection with the
    // reserve descriptor and closes it (best-effort error frame), so the backlog drains
    // instead of the listening socket waking the loop forever. Returns true if it took one;
    // false if the backlog is empty or accepting had to pause (no reserve could be had).
    bool shed_connection(int err);
    // Records descriptor exhaustion at most once per interval (stderr and an audit error
    // event), with the count of connections refused since the last record.
    void report_fd_exhaustion(bool force);
    void pause_accepting(bool pause);
    void on_signal();
    void reload();
    void handle_io(Connection& c, unsigned events);
    // Finds the message's entry in the handler table (handlers.hpp), authorises the peer for
    // it, and runs its handler; a protocol error closes the connection, any other failure is
    // answered (and an unexpected one denies and closes).
    void dispatch(Connection& c, const nlohmann::json& message);
    void protocol_error(Connection& c, const std::string& detail);
    // Answers a message the handler table refused (authorise), records it if the refusal says
    // so, and closes if it says so.
    void refuse(Connection& c, const Refusal& refusal);
    // SECURITY NOTE: decisions and reports are about the user the kernel says it is (see
    // refuse_reason): the handlers of check, finished and session call this once they have
    // parsed the claimed user. Returns true, after an audit event, an error frame and closing,
    // if the claim is refused.
    // `real_uid`: the peer's real uid if already read this turn (nullopt: read it).
    bool refused(Connection& c, const char* what, const std::string& kind, const std::string& user, std::int64_t uid,
                 std::optional<uid_t> real_uid = std::nullopt);
    // The handlers of the table, one per message type; each runs only once authorise() let the
    // peer send it. `caller` is the peer as a user for local_user and approver entries.
    void handle_check(Connection& c, const nlohmann::json& m, const broker::Caller& caller);
    void handle_input(Connection& c, const nlohmann::json& m, const broker::Caller& caller);
    void handle_finished(Connection& c, const nlohmann::json& m, const broker::Caller& caller);
    void handle_session(Connection& c, const nlohmann::json& m, const broker::Caller& caller);
    void handle_pending(Connection& c, const nlohmann::json& m, const broker::Caller& caller);
    void handle_grants(Connection& c, const nlohmann::json& m, const broker::Caller& caller);
    void handle_approve(Connection& c, const nlohmann::json& m, const broker::Caller& caller);
    void handle_deny(Connection& c, const nlohmann::json& m, const broker::Caller& caller);
    void handle_revoke(Connection& c, const nlohmann::json& m, const broker::Caller& caller);
    void handle_status(Connection& c, const nlohmann::json& m, const broker::Caller& caller);
    void handle_ping(Connection& c, const nlohmann::json& m, const broker::Caller& caller);
    void handle_sessions(Connection& c, const nlohmann::json& m, const broker::Caller& caller);
    void handle_done(Connection& c, const nlohmann::json& m, const broker::Caller& caller);
    void handle_requests(Connection& c, const nlohmann::json& m, const broker::Caller& caller);
    void handle_extend(Connection& c, const nlohmann::json& m, const broker::Caller& caller);
    // A listing: one item frame each, then end.
    void send_items(Connection& c, const std::vector<nlohmann::json>& items);
    // An operation's result: ok with its message, or an error with code denied.
    void send_result(Connection& c, const broker::OpResult& r);
    // Records a refusal or protocol error; a non-root peer's within its bound (Broker::audit_refusal).
    void record_refusal(const Connection& c, nlohmann::json event);
    void sweep(); // closes connections marked dead, reaps idle ones
    // Pipelined group commit (Auditor::start_commit, the SECURITY NOTE there): the loop hands
    // every line written so far to the committer thread at the end of each turn and goes on
    // reading; when the fdatasync returned (commit_event_fd readable) on_commit_done() takes
    // its result and release_durable() sends exactly the replies whose events are durable.
    // If an fdatasync failed, every held reply is dropped and its connection closed (the
    // client denies), then and ever after: nothing is released after a failed sync.
    // At the end of a turn: the batch goes to the committer, or, if nothing else is ready,
    // the loop syncs it itself (set_commit_inline_when_idle) and releases what it covers.
    void commit();
    void on_commit_done();
    // release_held(), then the syslog copies of the events now durable (after the replies).
    void release_durable();
    void release_held();
    void close_connection(int fd);

    std::string m_config_path;
    std::string m_socket_path;
    audit::Auditor& m_auditor;
    broker::Broker m_broker;
    int m_epoll = -1;
    int m_listen = -1;
    int m_signal = -1;
    int m_commit_fd = -1; // the Auditor's; not closed here
    bool m_commit_inline_when_idle = true;
    bool m_stop = false;
    std::unordered_map<int, std::unique_ptr<Connection>> m_clients;
    std::vector<int> m_dead;
    // Connections with replies waiting for their audit events to be durable: every reply is
    // held until release_durable() (the broker's Responder contract, daemon/policy/session.hpp).
    std::vector<int> m_held;
    std::unordered_map<uid_t, std::size_t> m_per_uid; // open connections of non-root peers
    std::chrono::steady_clock::time_point m_next_sweep;
    int m_reserve_fd = -1; // /dev/null, given up to refuse a connection when out of descriptors
    bool m_accept_paused = false;
    std::chrono::steady_clock::time_point m_accept_resume{};
    std::uint64_t m_fd_refused = 0; // connections refused for lack of descriptors, unreported
    int m_fd_errno = 0;
    std::chrono::steady_clock::time_point m_fd_reported{};

    friend class Connection;
    friend struct HandlerTable; // names the handlers (handlers.cpp)
};

} // namespace jitgate::server
