// daemon/approval/service_client.hpp — the `service` approval backend: protocol v1 (docs/protocol.md)
// over HTTPS with libcurl, inside jitgated's single event loop.
//
// Why libcurl's multi "socket" interface: thousands of requests may wait for approvers at
// once, each holding one long poll open. A thread per request would cost a stack each and force
// locks around the broker; a blocking call would stall the fast path. The multi interface runs
// every transfer on non-blocking sockets that this class watches with its own epoll set, whose
// fd the server adds to its loop (nested epoll), plus a timerfd for curl's timeouts and our
// retry back-off. Everything, callbacks included, runs on the loop's thread: the broker stays
// lock-free.
//
// This class speaks HTTP and parses request statuses. It does NOT decide: it hands each outcome
// (pending update, approved with a grant, denied, expired, cancelled, failed) to its Listener,
// and the service backend (service.hpp) verifies the grant (grant_token.hpp). Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/config/config.hpp"

namespace jitgate::service {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// One revocation the service reported (docs/protocol.md §12), checked for form only: every
// text is as received (hostile: escape before showing), bounded in length.
struct Revocation {
    std::int64_t seq = 0;
    std::string host;
    std::string request_id;
    std::string grant_id;
    std::string revoked_by;
    std::string reason;
    std::string revoked_at;
};

// What the service said about a request (docs/protocol.md §5.1). Text fields are as received:
// the listener must escape them before showing or logging them.
struct Outcome {
    enum class Kind { pending, approved, denied, expired, cancelled, revoked, failed };
    Kind kind = Kind::failed;
    std::string grant;       // approved
    std::string reason;      // denied, revoked: the approver's reason; failed: what failed
    std::string denied_by;   // denied
    std::string revoked_by;  // revoked (§12: "cancelled" with revoked: true, approved then revoked)
    std::string approve_url; // pending
    std::vector<std::string> approvers_notified; // pending
    std::string message;                         // any
    // Revocations (§12) naming this request that the feed reported while it was still waiting
    // (ServiceClient::note_revocation): the listener refuses a grant whose jti is one of them.
    // `revoked_overflow`: more than k_max_revoked_while_waiting came; every grant is refused.
    std::vector<Revocation> revoked_while_waiting;
    bool revoked_overflow = false;
};

// The most revocations remembered for one waiting request (a hostile service may send more).
inline constexpr std::size_t k_max_revoked_while_waiting = 8;

// Whether an approved outcome's grant (its jti) was revoked while the request waited; the
// revocation that names it, if any, in `which`.
bool revoked_while_waiting(const Outcome& outcome, const std::string& jti, const Revocation** which = nullptr);

// A page of revocations (§12), or why it is not one.
struct RevocationPage {
    bool ok = false;
    std::string problem; // !ok: what is wrong with the answer
    std::int64_t cursor = 0;
    std::vector<Revocation> revocations;
};

// Parses GET /v1/revocations's answer: a JSON object with protocol 1, a cursor (integer >= 0)
// and at most 1,000 revocations, each with an integer seq <= cursor and string request_id,
// grant_id, host, revoked_by, reason and revoked_at of bounded length. Anything else is
// !ok with the reason, and nothing of it is used. Never throws except std::bad_alloc.
// `after` is the cursor the call sent: each entry's seq must be above it (a service repeating
// old entries is refused), unless the cursor went back (a restored service answers from 0),
// and the seqs must grow strictly.
RevocationPage parse_revocations(const std::string& body, std::int64_t after = 0);

class Listener {
public:
    virtual ~Listener() = default;
    // Called from ServiceClient::on_ready() only. A final outcome (anything but pending) is
    // delivered once; the request is then forgotten by the client. The listener may call
    // submit()/cancel() from inside.
    virtual void on_service_outcome(const std::string& request_id, const Outcome& outcome) = 0;
    // Revocations the service reported (watch_revocations()), in seq order; called from
    // on_ready() only. Each is hostile input: the listener matches it against what it holds.
    virtual void on_service_revocations(const std::vector<Revocation>& revocations) { (void)revocations; }
};

// Parses a request status body (§5.1). Returns Kind::failed with the reason on anything that
// is not a valid status for `request_id` (not JSON, wrong types, unknown status, approved
// without a grant, another id). Never throws except std::bad_alloc.
Outcome parse_status(const std::string& body, const std::string& request_id);

class ServiceClient {
public:
    // Reads nothing from the network yet. Throws Error(bad_input) if the CA, certificate or key
    // file cannot be read, and Error(internal) if libcurl or epoll cannot be set up, including
    // an option of a transfer that this libcurl refuses (named in the message).
    ServiceClient(const config::Config::Approval::Service& settings, Listener& listener);
    ~ServiceClient();
    ServiceClient(const ServiceClient&) = delete;
    ServiceClient& operator=(const ServiceClient&) = delete;

    // The fd to watch for EPOLLIN in the daemon's loop; call on_ready() when it fires.
    int fd() const noexcept { return m_epoll; }
    void on_ready();

    // Creates the request (POST /v1/requests, retried: it is idempotent by id) and then long-
    // polls it until a final status, a failure, or cancel(). `body` is the create body.
    void submit(const std::string& request_id, Json body);
    // Stops waiting for `request_id` (no outcome is delivered for it any more) and tells the
    // service (POST …/cancel, retried a few times, never waited for). `reason`: client_gone,
    // timeout or shutdown. Unknown ids are ignored.
    void cancel(const std::string& request_id, const std::string& reason);

    // Starts the revocation watch (§12), once; later calls do nothing: a long poll of GET
    // /v1/revocations?after=CURSOR&wait=N, one at a time, whose revocations go to the listener.
    // A failure is retried after the usual back-off (capped at k_watch_backoff_cap); a service
    // that answers 404 before any 200 (one older than §12) is logged once and asked again every
    // k_watch_unsupported_retry; a 404 after a 200 (a proxy, a replica being replaced) is a
    // failure like any other.
    void watch_revocations();
    // A revocation (§12) naming request `r.request_id` that is still waiting here: remembered
    // with the request (at most k_max_revoked_while_waiting; more makes every grant of it
    // refused) and handed to the listener with its outcome (Outcome::revoked_while_waiting).
    // Returns false, remembering nothing, when no such request waits.
    bool note_revocation(const Revocation& r);
    bool watching_revocations() const noexcept { return m_watch.on; }
    static constexpr std::chrono::seconds k_watch_backoff_cap{30};
    static constexpr std::chrono::seconds k_watch_unsupported_retry{60};

    // Shutdown: cancel(id, reason) for every waiting request. Returns how many.
    std::size_t cancel_all(const std::string& reason);
    // Drives the transfers until every cancel was sent and answered (or given up after its
    // tries), or `limit` has passed, whichever comes first: a service that does not answer must
    // not hold up the daemon's stop. Returns the number of cancels still unsent. Outcomes of
    // requests still waiting (none after cancel_all) go to the listener as in on_ready().
    std::size_t drain(std::chrono::milliseconds limit);

    std::size_t waiting() const noexcept { return m_requests.size(); }
    // Counters for `jitgatectl status`.
    Json status() const;
    const std::string& base_url() const noexcept { return m_base; }

    struct Transfer; // one HTTP exchange in flight (defined in the .cpp)

private:
    enum class Call { create, poll, cancel };
    struct Request {
        std::string id;
        std::string body; // the create body, resent as-is on a retry
        Call call = Call::create;
        int failures = 0; // consecutive failures of the current call
        Transfer* transfer = nullptr;
        bool cancelled = false; // a cancel-only entry: no listener callbacks
        std::string cancel_reason;
        std::string last_pending;        // the last pending update shown, to show only changes
        std::vector<Revocation> revoked; // note_revocation(): bounded
        bool revoked_overflow = false;
    };

    // Frees the transfers, the multi handle and the descriptors (the destructor, and a
    // constructor that throws).
    void release() noexcept;
    void start(Request& r);
    // Sets every option of `t` (whose easy handle and payload are set); throws Error naming an
    // option libcurl refuses.
    void set_options(Transfer& t, const std::string& url, long timeout_ms);
    void finish(Transfer* t, int curl_code);
    void failed_call(Request& r, const std::string& what, long retry_after_s, bool retryable);
    void deliver(const std::string& id, const Outcome& outcome);
    void start_watch();
    void finish_watch(std::unique_ptr<Transfer> t, int curl_code);
    void watch_failed(const std::string& what, long retry_after_s);
    void drop(const std::string& id);
    void arm_timer();
    void fire_backoffs();
    std::string url_for(const Request& r) const;

    static int on_socket(void* easy, int fd, int what, void* self, void* socket_data) noexcept;
    static int on_timer(void* multi, long timeout_ms, void* self) noexcept;

    config::Config::Approval::Service m_settings;
    Listener& m_listener;
    std::string m_base;      // url without a trailing '/'
    void* m_multi = nullptr; // CURLM*
    int m_epoll = -1;
    int m_timer = -1;            // timerfd: curl's timeout and the earliest back-off
    long m_curl_timeout_ms = -1; // what curl last asked for (-1: none)
    Clock::time_point m_curl_deadline{};
    std::unordered_map<std::string, Request> m_requests;                      // waiting requests
    std::unordered_map<std::string, Request> m_cancels;                       // cancels being sent
    std::multimap<Clock::time_point, std::pair<std::string, bool>> m_backoff; // (id, is_cancel)
    std::vector<std::pair<std::string, Outcome>> m_outbox;                    // delivered after a pass
    // The revocation watch: one transfer at a time, or a time to start the next.
    struct Watch {
        bool on = false;
        Transfer* transfer = nullptr;
        std::optional<Clock::time_point> next; // when to start the next poll (no transfer meanwhile)
        std::int64_t cursor = 0;
        int failures = 0;
        bool unsupported = false; // the service answered 404: logged once
        bool served = false;      // a 200 came: a later 404 is a failure like any other
        std::uint64_t polls = 0, revocations = 0, problems = 0;
    } m_watch;
    std::vector<Revocation> m_revocations_out; // delivered after a pass
    std::uint64_t m_calls = 0, m_failures = 0, m_retries = 0;
    std::string m_last_error;
};

} // namespace jitgate::service
