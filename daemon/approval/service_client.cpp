// daemon/approval/service_client.cpp — protocol v1 over libcurl's multi socket interface (see header).
#include "daemon/approval/service_client.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>

#include <curl/curl.h>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"
#include "lib/curl_option.hpp"
#include "lib/https.hpp"

#ifndef JITGATE_VERSION
#define JITGATE_VERSION "0"
#endif

namespace jitgate::service {
namespace {

constexpr std::size_t k_max_body = 64 * 1024; // a status is small; more is a lying service
// A page of revocations (§12): jitgate-server sends about 32 KiB at most; another service may
// send up to 1,000 entries: room for them, still bounded.
constexpr std::size_t k_max_watch_body = 256 * 1024;
constexpr auto k_backoff_first = std::chrono::milliseconds(500);
constexpr auto k_backoff_cap = std::chrono::seconds(8);
constexpr int k_cancel_tries = 3;
constexpr auto k_min_poll_interval = std::chrono::seconds(1);

CURLM* multi_of(void* p) {
    return static_cast<CURLM*>(p);
}

std::string errno_text() {
    return std::strerror(errno);
}

// One line of someone else's text for a log or a user: escaped, and cut.
// Default length of someone else's text in a message (text::shown cuts it there).
constexpr std::size_t k_shown_bytes = 200;

void require_readable(const std::string& path, const char* what) {
    std::ifstream in(path);
    if (!in)
        throw Error(ErrorCode::bad_input, path,
                    std::string("cannot read the approval service's ") + what + ": " + errno_text());
}

std::chrono::milliseconds backoff(int failures, long retry_after_s) {
    static thread_local std::mt19937 rng{std::random_device{}()};
    auto base = k_backoff_first * (1 << std::min(failures - 1, 5));
    if (retry_after_s > 0) base = std::chrono::seconds(retry_after_s);
    base = std::min<std::chrono::milliseconds>(base, k_backoff_cap);
    std::uniform_real_distribution<double> jitter(0.75, 1.25); // ±25 %: hosts must not retry in step
    return std::chrono::milliseconds(static_cast<long long>(static_cast<double>(base.count()) * jitter(rng)));
}

} // namespace

// One HTTP exchange in flight.
struct ServiceClient::Transfer {
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    std::string id;
    bool is_cancel = false;
    bool is_watch = false; // the revocation watch (§12)
    Call call = Call::create;
    std::string method_path; // "POST /v1/requests", for messages
    std::string payload;     // kept alive for CURLOPT_POSTFIELDS
    Clock::time_point started = Clock::now();
    std::string response;
    bool too_large = false;
    char error[CURL_ERROR_SIZE] = {};

    ~Transfer() {
        if (easy != nullptr) curl_easy_cleanup(easy);
        if (headers != nullptr) curl_slist_free_all(headers);
    }
};

namespace {

void add_header(ServiceClient::Transfer& t, const char* header) {
    curl_slist* next = curl_slist_append(t.headers, header);
    if (next == nullptr) throw std::bad_alloc();
    t.headers = next;
}

// libcurl's write callback: C ABI, so nothing may escape it.
std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) noexcept {
    auto* tr = static_cast<ServiceClient::Transfer*>(user);
    if (tr->response.size() + size * n > (tr->is_watch ? k_max_watch_body : k_max_body)) {
        tr->too_large = true;
        return 0; // aborts the transfer
    }
    try {
        tr->response.append(data, size * n);
    } catch (...) {
        return 0;
    }
    return size * n;
}

} // namespace

Outcome parse_status(const std::string& body, const std::string& request_id) {
    Outcome o;
    const Json j = Json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        o.reason = "the answer is not a JSON object";
        return o;
    }
    const auto str = [&](const char* key, std::string& out, bool required) {
        const auto it = j.find(key);
        if (it == j.end() || it->is_null()) return !required;
        if (!it->is_string()) return false;
        out = it->get<std::string>();
        return true;
    };
    std::string id, status;
    if (!str("id", id, true) || id != request_id) {
        o.reason = "the answer is about request '" + text::shown(id, 64) + "', not " + request_id;
        return o;
    }
    if (!str("status", status, true)) {
        o.reason = "the answer has no string 'status'";
        return o;
    }
    if (!str("message", o.message, false)) {
        o.reason = "'message' is not a string";
        return o;
    }
    if (status == "pending") {
        o.kind = Outcome::Kind::pending;
        if (!str("approve_url", o.approve_url, false)) {
            o.kind = Outcome::Kind::failed;
            o.reason = "'approve_url' is not a string";
            return o;
        }
        if (const auto it = j.find("approvers_notified"); it != j.end() && !it->is_null()) {
            if (!it->is_array()) {
                o.kind = Outcome::Kind::failed;
                o.reason = "'approvers_notified' is not a list";
                return o;
            }
            for (const auto& name : *it) {
                if (!name.is_string()) {
                    o.kind = Outcome::Kind::failed;
                    o.reason = "'approvers_notified' holds a non-string";
                    return o;
                }
                if (o.approvers_notified.size() < 32) o.approvers_notified.push_back(name.get<std::string>());
            }
        }
    } else if (status == "approved") {
        if (!str("grant", o.grant, true) || o.grant.empty()) {
            o.reason = "status 'approved' without a grant";
            return o;
        }
        o.kind = Outcome::Kind::approved;
    } else if (status == "denied") {
        if (!str("reason", o.reason, false) || !str("denied_by", o.denied_by, false)) {
            o.reason = "'reason' or 'denied_by' is not a string";
            return o;
        }
        o.kind = Outcome::Kind::denied;
    } else if (status == "expired") {
        o.kind = Outcome::Kind::expired;
    } else if (status == "cancelled") {
        // §12: a request approved, then its grant revoked before this host fetched it, is
        // "cancelled" with `revoked: true` (and who and why): final, no grant.
        const auto revoked = j.find("revoked");
        if (revoked != j.end() && !revoked->is_null() && !revoked->is_boolean()) {
            o.reason = "'revoked' is not true or false";
            return o;
        }
        if (revoked != j.end() && revoked->is_boolean() && revoked->get<bool>()) {
            if (!str("reason", o.reason, false) || !str("revoked_by", o.revoked_by, false)) {
                o.reason = "'reason' or 'revoked_by' is not a string";
                return o;
            }
            o.kind = Outcome::Kind::revoked;
        } else {
            o.kind = Outcome::Kind::cancelled;
        }
    } else {
        o.reason = "unknown status '" + text::shown(status, 32) + "'";
    }
    return o;
}

ServiceClient::ServiceClient(const config::Config::Approval::Service& settings, Listener& listener)
    : m_settings(settings), m_listener(listener), m_base(settings.url) {
    while (!m_base.empty() && m_base.back() == '/') m_base.pop_back();
    require_readable(m_settings.ca_file, "CA file");
    require_readable(m_settings.client_cert, "client certificate");
    require_readable(m_settings.client_key, "client key");
    // A constructor that throws gets no destructor call: what it made so far is let go here.
    try {
        m_multi = curl_multi_init();
        if (m_multi == nullptr) throw Error(ErrorCode::internal, "curl_multi_init", "failed");
        m_epoll = epoll_create1(EPOLL_CLOEXEC);
        m_timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (m_epoll < 0 || m_timer < 0) throw Error(ErrorCode::internal, "approval service loop", errno_text());
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = m_timer;
        if (epoll_ctl(m_epoll, EPOLL_CTL_ADD, m_timer, &ev) != 0)
            throw Error(ErrorCode::internal, "epoll_ctl", errno_text());
        JITGATE_MULTI_SETOPT(multi_of(m_multi), CURLMOPT_SOCKETFUNCTION, &ServiceClient::on_socket);
        JITGATE_MULTI_SETOPT(multi_of(m_multi), CURLMOPT_SOCKETDATA, static_cast<void*>(this));
        JITGATE_MULTI_SETOPT(multi_of(m_multi), CURLMOPT_TIMERFUNCTION, &ServiceClient::on_timer);
        JITGATE_MULTI_SETOPT(multi_of(m_multi), CURLMOPT_TIMERDATA, static_cast<void*>(this));
        // Keep a few connections warm; each waiting long poll holds its own anyway.
        JITGATE_MULTI_SETOPT(multi_of(m_multi), CURLMOPT_MAXCONNECTS, 64L);
        // Every transfer gets the same options: set them once on a probe handle now, so an option
        // this libcurl refuses stops the start-up instead of denying every request later.
        Transfer probe;
        probe.easy = curl_easy_init();
        if (probe.easy == nullptr) throw Error(ErrorCode::internal, "curl_easy_init", "failed");
        probe.payload = "{}";
        set_options(probe, m_base + "/v1/requests", 1000);
    } catch (...) {
        release();
        throw;
    }
}

ServiceClient::~ServiceClient() {
    release();
}

void ServiceClient::release() noexcept {
    for (auto* map : {&m_requests, &m_cancels})
        for (auto& [id, r] : *map)
            if (r.transfer != nullptr) {
                curl_multi_remove_handle(multi_of(m_multi), r.transfer->easy);
                delete r.transfer;
            }
    if (m_watch.transfer != nullptr) {
        curl_multi_remove_handle(multi_of(m_multi), m_watch.transfer->easy);
        delete m_watch.transfer;
        m_watch.transfer = nullptr;
    }
    if (m_multi != nullptr) curl_multi_cleanup(multi_of(m_multi));
    if (m_timer >= 0) ::close(m_timer);
    if (m_epoll >= 0) ::close(m_epoll);
    m_multi = nullptr;
    m_timer = m_epoll = -1;
}

int ServiceClient::on_socket(void* /*easy*/, int fd, int what, void* self, void* /*socket_data*/) noexcept {
    auto* c = static_cast<ServiceClient*>(self);
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(c->m_epoll, EPOLL_CTL_DEL, fd, nullptr);
        return 0;
    }
    epoll_event ev{};
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    ev.data.fd = fd;
    if (epoll_ctl(c->m_epoll, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT)
        epoll_ctl(c->m_epoll, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

int ServiceClient::on_timer(void* /*multi*/, long timeout_ms, void* self) noexcept {
    auto* c = static_cast<ServiceClient*>(self);
    c->m_curl_timeout_ms = timeout_ms;
    if (timeout_ms >= 0) c->m_curl_deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    c->arm_timer();
    return 0;
}

void ServiceClient::arm_timer() {
    std::optional<Clock::time_point> next;
    if (m_curl_timeout_ms >= 0) next = m_curl_deadline;
    if (!m_backoff.empty() && (!next || m_backoff.begin()->first < *next)) next = m_backoff.begin()->first;
    if (m_watch.next && (!next || *m_watch.next < *next)) next = m_watch.next;
    if (!m_outbox.empty()) next = Clock::now(); // outcomes queued outside on_ready() go out at once
    itimerspec spec{};
    if (next) {
        const auto left =
            std::max<long long>(1, std::chrono::duration_cast<std::chrono::nanoseconds>(*next - Clock::now()).count());
        spec.it_value.tv_sec = static_cast<time_t>(left / 1'000'000'000);
        spec.it_value.tv_nsec = static_cast<long>(left % 1'000'000'000);
    }
    timerfd_settime(m_timer, 0, &spec, nullptr); // all zero disarms
}

std::string ServiceClient::url_for(const Request& r) const {
    if (r.cancelled) return m_base + "/v1/requests/" + r.id + "/cancel";
    if (r.call == Call::create) return m_base + "/v1/requests";
    return m_base + "/v1/requests/" + r.id + "?wait=" + std::to_string(m_settings.poll_wait.count());
}

void ServiceClient::set_options(Transfer& t, const std::string& url, long timeout_ms) {
    CURL* e = t.easy;
    if (!t.payload.empty()) { // create and cancel are POSTs with a body; a poll is a GET
        JITGATE_SETOPT(e, CURLOPT_POST, 1L);
        JITGATE_SETOPT(e, CURLOPT_POSTFIELDS, t.payload.c_str());
        JITGATE_SETOPT(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(t.payload.size()));
        add_header(t, "Content-Type: application/json");
    }
    add_header(t, "Accept: application/json");
    add_header(t, "Jitgate-Protocol: 1");
    add_header(t, "Expect:");
    JITGATE_SETOPT(e, CURLOPT_HTTPHEADER, t.headers);
    JITGATE_SETOPT(e, CURLOPT_URL, url.c_str());
    JITGATE_SETOPT(e, CURLOPT_USERAGENT, "jitgated/" JITGATE_VERSION);
    // SECURITY NOTE: https only, no redirects, the pinned CA and nothing else, peer and host name
    // verified, our client certificate: the one policy of lib/https.hpp.
    https::Policy policy;
    policy.ca_file = m_settings.ca_file;
    policy.client_cert = m_settings.client_cert;
    policy.client_key = m_settings.client_key;
    policy.proxy = m_settings.proxy; // empty: none, even if https_proxy is set in the environment
    policy.connect_timeout = std::chrono::milliseconds(m_settings.connect_timeout);
    policy.timeout = std::chrono::milliseconds(timeout_ms);
    https::apply_policy(e, policy);
    JITGATE_SETOPT(e, CURLOPT_ERRORBUFFER, t.error);
    JITGATE_SETOPT(e, CURLOPT_PRIVATE, &t);
    JITGATE_SETOPT(e, CURLOPT_WRITEDATA, &t);
    JITGATE_SETOPT(e, CURLOPT_WRITEFUNCTION, &on_body);
}

void ServiceClient::start(Request& r) {
    auto t = std::make_unique<Transfer>();
    t->easy = curl_easy_init();
    if (t->easy == nullptr) {
        failed_call(r, "cannot start a transfer (curl_easy_init)", 0, true);
        return;
    }
    t->id = r.id;
    t->is_cancel = r.cancelled;
    t->call = r.call;
    const std::string url = url_for(r);
    CURL* e = t->easy;
    long timeout_ms = static_cast<long>(std::chrono::milliseconds(m_settings.request_timeout).count());
    if (r.cancelled) {
        t->method_path = "POST /v1/requests/" + r.id + "/cancel";
        t->payload = Json{{"protocol", 1}, {"reason", r.cancel_reason}}.dump();
    } else if (r.call == Call::create) {
        t->method_path = "POST /v1/requests";
        t->payload = r.body;
    } else {
        t->method_path = "GET /v1/requests/" + r.id;
        timeout_ms += static_cast<long>(std::chrono::milliseconds(m_settings.poll_wait).count());
    }
    try {
        set_options(*t, url, timeout_ms);
    } catch (const std::exception& err) {
        failed_call(r, std::string("cannot start a transfer: ") + err.what(), 0, false);
        return;
    }
    if (curl_multi_add_handle(multi_of(m_multi), e) != CURLM_OK) {
        failed_call(r, "cannot start a transfer (curl_multi_add_handle)", 0, true);
        return;
    }
    ++m_calls;
    r.transfer = t.release();
}

void ServiceClient::on_ready() {
    epoll_event events[64];
    int running = 0;
    for (;;) {
        const int n = epoll_wait(m_epoll, events, 64, 0);
        if (n <= 0) break;
        for (int i = 0; i < n; ++i) {
            const int fd = events[i].data.fd;
            if (fd == m_timer) {
                std::uint64_t ticks = 0;
                [[maybe_unused]] const auto got = ::read(m_timer, &ticks, sizeof ticks);
                continue;
            }
            int flags = 0;
            if (events[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
            if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
            if (events[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
            curl_multi_socket_action(multi_of(m_multi), fd, flags, &running);
        }
        if (n < 64) break;
    }
    if (m_curl_timeout_ms >= 0 && Clock::now() >= m_curl_deadline) {
        m_curl_timeout_ms = -1;
        curl_multi_socket_action(multi_of(m_multi), CURL_SOCKET_TIMEOUT, 0, &running);
    }
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi_of(m_multi), &left)) {
        if (m->msg != CURLMSG_DONE) continue;
        Transfer* t = nullptr;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &t);
        const int code = m->data.result;
        curl_multi_remove_handle(multi_of(m_multi), m->easy_handle);
        if (t != nullptr && t->is_watch)
            finish_watch(std::unique_ptr<Transfer>(t), code);
        else
            finish(t, code);
    }
    fire_backoffs();
    arm_timer();
    // Outcomes go out last: the listener may submit or cancel, which changes the maps above.
    auto outbox = std::move(m_outbox);
    m_outbox.clear();
    for (const auto& [id, outcome] : outbox) {
        try {
            m_listener.on_service_outcome(id, outcome);
        } catch (const std::exception& e) {
            // The request is already forgotten here; the broker's own deadline denies it.
            std::fprintf(stderr, "jitgated: handling the approval service's answer for %s failed: %s\n", id.c_str(),
                         e.what());
        }
    }
    if (!m_revocations_out.empty()) {
        const std::vector<Revocation> revocations = std::move(m_revocations_out);
        m_revocations_out.clear();
        try {
            m_listener.on_service_revocations(revocations);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "jitgated: handling the approval service's revocations failed: %s\n", e.what());
        }
    }
    arm_timer();
}

void ServiceClient::fire_backoffs() {
    const auto now = Clock::now();
    if (m_watch.on && m_watch.transfer == nullptr && m_watch.next && *m_watch.next <= now) start_watch();
    while (!m_backoff.empty() && m_backoff.begin()->first <= now) {
        const auto [id, is_cancel] = m_backoff.begin()->second;
        m_backoff.erase(m_backoff.begin());
        auto& map = is_cancel ? m_cancels : m_requests;
        if (const auto it = map.find(id); it != map.end() && it->second.transfer == nullptr) start(it->second);
    }
}

void ServiceClient::finish(Transfer* raw, int curl_code) {
    std::unique_ptr<Transfer> t(raw);
    auto& map = t->is_cancel ? m_cancels : m_requests;
    const auto it = map.find(t->id);
    if (it == map.end() || it->second.transfer != raw) return; // cancelled meanwhile
    Request& r = it->second;
    r.transfer = nullptr;
    long http = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &http);
    const std::string where = t->method_path.substr(0, t->method_path.find(' ')) + " " + url_for(r);

    if (curl_code != CURLE_OK) {
        std::string what;
        if (t->too_large)
            what = "the answer to " + where + " is larger than 64 KiB";
        else if (curl_code == CURLE_OPERATION_TIMEDOUT)
            what = "approval service " + m_base + " did not answer " + t->method_path + " in time (" +
                   text::shown(t->error, k_shown_bytes) + ")";
        else
            what = "approval service " + m_base + " unreachable: " +
                   text::shown(t->error[0] != '\0' ? t->error : curl_easy_strerror(static_cast<CURLcode>(curl_code)),
                               k_shown_bytes);
        failed_call(r, what, 0, !t->too_large);
        return;
    }
    if (http < 200 || http > 299) {
        std::string detail;
        std::string code;
        const Json j = Json::parse(t->response, nullptr, false);
        if (j.is_object() && j.contains("error") && j["error"].is_object()) {
            const Json& e = j["error"];
            if (e.contains("message") && e["message"].is_string())
                detail = ": " + text::shown(e["message"].get<std::string>(), k_shown_bytes);
            if (e.contains("code") && e["code"].is_string()) code = e["code"].get<std::string>();
        }
        curl_off_t retry_after = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &retry_after);
        // A 429 `too_many_pending` (protocol §4): this host already holds as many pending
        // requests as the service allows. Retrying within seconds cannot change that, so the
        // request is denied at once (fail closed) with the service's message; any other 429
        // (a proxy's rate limit) is retried as §9 says.
        const bool host_full = http == 429 && code == "too_many_pending";
        const bool retryable = !host_full && (http >= 500 || http == 429 || http == 408);
        failed_call(r, "approval service answered HTTP " + std::to_string(http) + " to " + t->method_path + detail,
                    static_cast<long>(retry_after), retryable);
        return;
    }
    r.failures = 0;
    if (r.cancelled) { // the service has the cancel; whatever it answers, we are done
        m_cancels.erase(it);
        return;
    }
    Outcome o = parse_status(t->response, r.id);
    if (o.kind == Outcome::Kind::failed) {
        o.reason = "approval service " + m_base + " sent an invalid answer to " + t->method_path + ": " + o.reason;
        m_last_error = o.reason;
        ++m_failures;
        deliver(r.id, o);
        return;
    }
    if (o.kind != Outcome::Kind::pending) {
        deliver(r.id, o);
        return;
    }
    // Pending: show what changed, then poll again at once.
    std::string summary = o.approve_url + "\n" + o.message;
    for (const auto& n : o.approvers_notified) summary += "\n" + n;
    if (summary != r.last_pending) {
        r.last_pending = summary;
        m_outbox.emplace_back(r.id, o);
    }
    // A service that answers "pending" long before `wait` must not drive a busy loop.
    const bool early = t->call == Call::poll && Clock::now() - t->started < k_min_poll_interval;
    r.call = Call::poll;
    if (early)
        m_backoff.emplace(Clock::now() + k_min_poll_interval, std::pair{r.id, false});
    else
        start(r);
}

void ServiceClient::failed_call(Request& r, const std::string& what, long retry_after_s, bool retryable) {
    ++m_failures;
    m_last_error = what;
    ++r.failures;
    const int tries = r.cancelled ? k_cancel_tries : m_settings.retries + 1;
    if (retryable && r.failures < tries) {
        ++m_retries;
        m_backoff.emplace(Clock::now() + backoff(r.failures, retry_after_s), std::pair{r.id, r.cancelled});
        return;
    }
    if (r.cancelled) {
        std::fprintf(stderr, "jitgated: could not cancel %s at the approval service: %s\n", r.id.c_str(), what.c_str());
        m_cancels.erase(r.id);
        return;
    }
    Outcome o;
    o.kind = Outcome::Kind::failed;
    o.reason = what + (r.failures > 1 ? " (after " + std::to_string(r.failures) + " tries)" : "");
    deliver(r.id, o);
}

bool revoked_while_waiting(const Outcome& outcome, const std::string& jti, const Revocation** which) {
    for (const Revocation& r : outcome.revoked_while_waiting)
        if (r.grant_id == jti) {
            if (which != nullptr) *which = &r;
            return true;
        }
    return outcome.revoked_overflow;
}

void ServiceClient::deliver(const std::string& id, const Outcome& outcome) {
    m_outbox.emplace_back(id, outcome);
    if (const auto it = m_requests.find(id); it != m_requests.end()) {
        m_outbox.back().second.revoked_while_waiting = it->second.revoked;
        m_outbox.back().second.revoked_overflow = it->second.revoked_overflow;
    }
    drop(id);
}

bool ServiceClient::note_revocation(const Revocation& r) {
    const auto it = m_requests.find(r.request_id);
    if (it == m_requests.end() || it->second.cancelled) return false;
    Request& q = it->second;
    for (const Revocation& known : q.revoked)
        if (known.grant_id == r.grant_id) return true;
    if (q.revoked.size() < k_max_revoked_while_waiting)
        q.revoked.push_back(r);
    else
        q.revoked_overflow = true; // fail closed: no grant of this request is taken
    return true;
}

void ServiceClient::drop(const std::string& id) {
    const auto it = m_requests.find(id);
    if (it == m_requests.end()) return;
    if (it->second.transfer != nullptr) {
        curl_multi_remove_handle(multi_of(m_multi), it->second.transfer->easy);
        delete it->second.transfer;
    }
    for (auto b = m_backoff.begin(); b != m_backoff.end();)
        b = (b->second.first == id && !b->second.second) ? m_backoff.erase(b) : std::next(b);
    m_requests.erase(it);
}

void ServiceClient::submit(const std::string& request_id, Json body) {
    Request r;
    r.id = request_id;
    r.body = body.dump();
    auto [it, inserted] = m_requests.emplace(request_id, std::move(r));
    if (inserted) start(it->second);
    arm_timer();
}

void ServiceClient::cancel(const std::string& request_id, const std::string& reason) {
    if (!m_requests.contains(request_id)) return;
    drop(request_id);
    // Outcomes already queued for this request are void: the broker has moved on.
    std::erase_if(m_outbox, [&](const auto& entry) { return entry.first == request_id; });
    Request c;
    c.id = request_id;
    c.cancelled = true;
    c.cancel_reason = reason;
    auto [it, inserted] = m_cancels.emplace(request_id, std::move(c));
    if (inserted) start(it->second);
    arm_timer();
}

std::size_t ServiceClient::cancel_all(const std::string& reason) {
    std::vector<std::string> ids;
    ids.reserve(m_requests.size());
    for (const auto& [id, r] : m_requests) ids.push_back(id);
    for (const auto& id : ids) cancel(id, reason);
    return ids.size();
}

std::size_t ServiceClient::drain(std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    while (!m_cancels.empty()) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) break;
        pollfd p{m_epoll, POLLIN, 0};
        const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 100)));
        if (n < 0 && errno != EINTR) break;
        on_ready(); // also fires curl's timeouts and the back-offs that are due
    }
    return m_cancels.size();
}

// ---- the revocation watch (§12) -------------------------------------------------------------
// SECURITY NOTE: what it hears is hostile input like any answer: parse_revocations() checks the
// form, the listener checks each revocation against the grants it holds. A bad answer ends
// nothing; it is logged and the poll retried after a back-off.

namespace {

constexpr std::size_t k_max_revocations = 1000;
constexpr std::size_t k_max_revocation_text = 2048;

} // namespace

RevocationPage parse_revocations(const std::string& body, std::int64_t after) {
    RevocationPage page;
    const Json j = Json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        page.problem = "the answer is not a JSON object";
        return page;
    }
    const auto protocol = j.find("protocol");
    if (protocol == j.end() || !protocol->is_number_integer() || protocol->get<std::int64_t>() != 1) {
        page.problem = "the answer is not protocol 1";
        return page;
    }
    const auto cursor = j.find("cursor");
    if (cursor == j.end() || !cursor->is_number_integer() || cursor->get<std::int64_t>() < 0) {
        page.problem = "'cursor' is not an integer >= 0";
        return page;
    }
    page.cursor = cursor->get<std::int64_t>();
    const auto list = j.find("revocations");
    if (list == j.end() || !list->is_array() || list->size() > k_max_revocations) {
        page.problem = "'revocations' is not a list of at most 1000";
        return page;
    }
    for (const Json& item : *list) {
        if (!item.is_object()) {
            page.problem = "a revocation is not an object";
            return page;
        }
        Revocation r;
        const auto seq = item.find("seq");
        if (seq == item.end() || !seq->is_number_integer() || seq->get<std::int64_t>() < 1 ||
            seq->get<std::int64_t>() > page.cursor) {
            page.problem = "a revocation's 'seq' is not an integer in 1..cursor";
            return page;
        }
        r.seq = seq->get<std::int64_t>();
        // SECURITY NOTE: a service that repeats what it sent before would have this host
        // handle the same entries again and again; unless it went back (its cursor below
        // `after`: a restore), every entry must be new, and in order.
        if ((page.cursor >= after && r.seq <= after) ||
            (!page.revocations.empty() && r.seq <= page.revocations.back().seq)) {
            page.problem = "a revocation's 'seq' is not above the cursor sent and the one before it";
            return page;
        }
        for (const auto& [key, out] : {std::pair<const char*, std::string*>{"host", &r.host},
                                       {"request_id", &r.request_id},
                                       {"grant_id", &r.grant_id},
                                       {"revoked_by", &r.revoked_by},
                                       {"reason", &r.reason},
                                       {"revoked_at", &r.revoked_at}}) {
            const auto it = item.find(key);
            if (it == item.end() || !it->is_string() ||
                it->get_ref<const std::string&>().size() > k_max_revocation_text) {
                page.problem = std::string("a revocation's '") + key + "' is not a string of at most 2048 bytes";
                return page;
            }
            *out = it->get<std::string>();
        }
        page.revocations.push_back(std::move(r));
    }
    page.ok = true;
    return page;
}

void ServiceClient::watch_revocations() {
    if (m_watch.on) return;
    m_watch.on = true;
    m_watch.next = Clock::now();
    arm_timer();
}

void ServiceClient::start_watch() {
    m_watch.next.reset();
    auto t = std::make_unique<Transfer>();
    t->easy = curl_easy_init();
    if (t->easy == nullptr) {
        watch_failed("cannot start a transfer (curl_easy_init)", 0);
        return;
    }
    t->is_watch = true;
    t->method_path = "GET /v1/revocations";
    const std::string url = m_base + "/v1/revocations?after=" + std::to_string(m_watch.cursor) +
                            "&wait=" + std::to_string(m_settings.poll_wait.count());
    const long timeout_ms = static_cast<long>(std::chrono::milliseconds(m_settings.request_timeout).count() +
                                              std::chrono::milliseconds(m_settings.poll_wait).count());
    try {
        set_options(*t, url, timeout_ms);
    } catch (const std::exception& err) {
        watch_failed(std::string("cannot start a transfer: ") + err.what(), 0);
        return;
    }
    if (curl_multi_add_handle(multi_of(m_multi), t->easy) != CURLM_OK) {
        watch_failed("cannot start a transfer (curl_multi_add_handle)", 0);
        return;
    }
    ++m_calls;
    ++m_watch.polls;
    m_watch.transfer = t.release();
}

void ServiceClient::watch_failed(const std::string& what, long retry_after_s) {
    ++m_failures;
    m_last_error = what;
    ++m_watch.failures;
    // Logged on the first failure of a run of them, then every 10th: a service that is down
    // is said once, not every few seconds.
    if (m_watch.failures == 1 || m_watch.failures % 10 == 0)
        std::fprintf(stderr, "jitgated: the approval service's revocation feed failed (%d in a row): %s\n",
                     m_watch.failures, what.c_str());
    auto wait = backoff(m_watch.failures, retry_after_s);
    wait = std::min<std::chrono::milliseconds>(std::max<std::chrono::milliseconds>(wait, k_min_poll_interval),
                                               k_watch_backoff_cap);
    m_watch.next = Clock::now() + wait;
}

void ServiceClient::finish_watch(std::unique_ptr<Transfer> t, int curl_code) {
    m_watch.transfer = nullptr;
    long http = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &http);
    if (curl_code != CURLE_OK) {
        watch_failed(
            t->too_large
                ? "the answer to GET /v1/revocations is larger than 256 KiB"
                : "approval service " + m_base + " unreachable: " +
                      text::shown(t->error[0] != '\0' ? t->error : curl_easy_strerror(static_cast<CURLcode>(curl_code)),
                                  k_shown_bytes),
            0);
        return;
    }
    if (http == 404 && !m_watch.served) {
        // A service older than §12: it cannot tell this host of revocations. Said once; asked
        // again rarely, so an upgraded service is found without a restart.
        if (!m_watch.unsupported)
            std::fprintf(stderr,
                         "jitgated: approval service %s does not serve GET /v1/revocations (404: older than protocol "
                         "v1 §12): revocations made there do not reach this host; asking again every %lld s\n",
                         m_base.c_str(), static_cast<long long>(k_watch_unsupported_retry.count()));
        m_watch.unsupported = true;
        m_watch.failures = 0;
        m_watch.next = Clock::now() + k_watch_unsupported_retry;
        return;
    }
    if (http < 200 || http > 299) {
        curl_off_t retry_after = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &retry_after);
        watch_failed("approval service answered HTTP " + std::to_string(http) + " to GET /v1/revocations",
                     static_cast<long>(retry_after));
        return;
    }
    RevocationPage page = parse_revocations(t->response, m_watch.cursor);
    if (!page.ok) {
        ++m_watch.problems;
        watch_failed("approval service " + m_base + " sent an invalid answer to GET /v1/revocations: " + page.problem,
                     0);
        return;
    }
    if (m_watch.unsupported) {
        std::fprintf(stderr, "jitgated: approval service %s now serves GET /v1/revocations\n", m_base.c_str());
        m_watch.unsupported = false;
    }
    m_watch.failures = 0;
    m_watch.served = true;
    const bool advanced = page.cursor > m_watch.cursor;
    m_watch.cursor = page.cursor;
    m_watch.revocations += page.revocations.size();
    for (Revocation& r : page.revocations) m_revocations_out.push_back(std::move(r));
    // A service that answers at once with nothing new must not drive a busy loop.
    // Nor one whose cursor does not move on while it sends entries (a hostile one repeating
    // them, or one that went back).
    const bool early = Clock::now() - t->started < k_min_poll_interval;
    if ((page.revocations.empty() && early) || (!page.revocations.empty() && !advanced))
        m_watch.next = Clock::now() + k_min_poll_interval;
    else
        start_watch();
}

Json ServiceClient::status() const {
    return Json{{"url", m_base},
                {"waiting", m_requests.size()},
                {"cancels_in_flight", m_cancels.size()},
                {"calls", m_calls},
                {"failures", m_failures},
                {"retries", m_retries},
                {"last_error", m_last_error},
                {"revocation_feed",
                 {{"watching", m_watch.on},
                  {"unsupported", m_watch.unsupported},
                  {"cursor", m_watch.cursor},
                  {"polls", m_watch.polls},
                  {"revocations", m_watch.revocations},
                  {"invalid_answers", m_watch.problems}}}};
}

} // namespace jitgate::service
