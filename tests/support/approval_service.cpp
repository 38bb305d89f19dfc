// tests/support/approval_service.cpp — jitgate-test-approval-service: a real HTTPS approval
// service speaking protocol v1 (docs/protocol.md), for the integration tests and local trials.
// Never installed.
//
//   jitgate-test-approval-service --listen 127.0.0.1 --port 0 --port-file FILE
//       --admin-port-file FILE --cert server.pem --key server.key --client-ca ca.pem
//       --signing-key signing.key --kid k1 [--other-key signing2.key]
//       [--issuer NAME] [--log FILE] [--threads N]
//
// Two listeners:
//  - HTTPS with mutual TLS (the protocol): POST /v1/requests, GET /v1/requests/{id}?wait=N,
//    POST /v1/requests/{id}/cancel, and GET /v1/revocations?after=N&wait=N (404 until the first
//    POST /admin/revocations; then the queued bodies, as posted). A client without a certificate signed by --client-ca
//    fails the handshake. Once listening, the bound port is written to --port-file (atomically).
//  - plain HTTP on 127.0.0.1, ephemeral port written to --admin-port-file: the tests' control
//    API under /admin (list requests, approve with an optional tampered grant, deny, expire,
//    inject faults, queue revocation answers, read call counters). See tests/support/README.md.
// Every state change happens under one mutex; long polls and injected hangs wait on one
// condition variable, so an admin decision (or SIGTERM) wakes them at once.
//
// Exit status: 0 after SIGTERM or SIGINT; 1 on a start-up error (bad key or certificate, bind
// failure, unwritable port file); 2 on a usage error.
//
// SECURITY NOTE: this is a test peer. The host of a request is taken from its body (the TLS
// layer already enforced a client certificate of the test CA); there is no 403 check of the
// certificate's subject against `host`, and the admin API has no authentication (loopback only).
#include "lib/grant_token.hpp"
#include <jitgate/text.hpp>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <httplib.h>

namespace {

using json = nlohmann::json;
namespace gt = jitgate::grant_token;
using httplib::Request;
using httplib::Response;

// Worker threads of the protocol listener unless --threads says otherwise. Every long poll and
// every injected hang holds one for its whole duration, and a host retries hung calls, so the
// pool is far larger than httplib's default.
constexpr int k_default_threads = 128;
constexpr std::size_t k_admin_threads = 8;
constexpr int k_max_wait_s = 60;
constexpr auto k_hang = std::chrono::seconds(3600);
// How long shutdown waits for the listeners to drain (an idle keep-alive connection can hold a
// worker for httplib's keep-alive timeout) before exiting anyway.
constexpr auto k_shutdown_grace = std::chrono::seconds(2);
constexpr const char* k_prog = "jitgate-test-approval-service";

// Thrown by handlers for an answer other than success; the guard turns it into the error
// body of protocol.md section 8.
class HttpError : public std::runtime_error {
public:
    HttpError(int status, const std::string& message) : std::runtime_error(message), m_status(status) {}
    int status() const noexcept { return m_status; }

private:
    int m_status;
};

class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------
// OpenSSL helpers. Each throws std::runtime_error carrying OpenSSL's error queue on failure.

const unsigned char* bytes(std::string_view s) {
    return reinterpret_cast<const unsigned char*>(s.data());
}

// Drains OpenSSL's error queue of this thread into one line.
std::string openssl_errors() {
    std::string out;
    while (const unsigned long code = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(code, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? "unknown OpenSSL error" : out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), bytes(data), data.size(), md, &size) == nullptr)
        throw std::runtime_error("HMAC: " + openssl_errors());
    return std::string(reinterpret_cast<const char*>(md), size);
}

std::string to_hex(std::string_view raw) {
    static constexpr char k_digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(raw.size() * 2);
    for (const char ch : raw) {
        const auto b = static_cast<unsigned char>(ch);
        out += k_digits[b >> 4];
        out += k_digits[b & 0x0f];
    }
    return out;
}

std::string sha256_hex(std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (EVP_Digest(data.data(), data.size(), md, &size, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("EVP_Digest: " + openssl_errors());
    return to_hex(std::string_view(reinterpret_cast<const char*>(md), size));
}

std::string random_bytes(std::size_t n) {
    std::string out(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
        throw std::runtime_error("RAND_bytes: " + openssl_errors());
    return out;
}

// The Common Name of the client certificate, or "" (plain HTTP, no certificate, no CN).
std::string peer_common_name(const Request& req) {
    if (req.ssl == nullptr) return {};
    X509* cert = SSL_get0_peer_certificate(req.ssl); // not owned
    if (cert == nullptr) return {};
    char buf[256];
    const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// Closes the connection of `req` under httplib's feet, so that the client gets no answer at
// all; httplib's own write then fails and it drops the connection (SIGPIPE is ignored).
void close_connection(const Request& req) {
    if (req.ssl == nullptr) return;
    const int fd = SSL_get_fd(req.ssl);
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
}

// ---------------------------------------------------------------------------------------------
// JSON and HTTP helpers.

const char* error_code_for(int status) {
    switch (status) {
    case 400:
        return "invalid_request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not_found";
    case 409:
        return "conflict";
    case 429:
        return "rate_limited";
    case 503:
        return "unavailable";
    default:
        return status >= 500 ? "internal" : "invalid_request";
    }
}

void send_json(Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(Response& res, int status, const std::string& message) {
    send_json(res, status, {{"error", {{"code", error_code_for(status)}, {"message", message}}}});
}

json parse_json(const std::string& text) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) throw HttpError(400, "body is not valid JSON");
    return j;
}

// Member accessors for validation: each throws HttpError(400) naming the member.
const json& member(const json& obj, const std::string& where, const char* name) {
    const auto it = obj.find(name);
    if (it == obj.end()) throw HttpError(400, "missing member " + where + name);
    return *it;
}

std::string string_member(const json& obj, const std::string& where, const char* name) {
    const json& m = member(obj, where, name);
    if (!m.is_string()) throw HttpError(400, "member " + where + name + " is not a string");
    return m.get<std::string>();
}

std::int64_t int_member(const json& obj, const std::string& where, const char* name) {
    const json& m = member(obj, where, name);
    if (!m.is_number_integer()) throw HttpError(400, "member " + where + name + " is not an integer");
    return m.get<std::int64_t>();
}

const json& object_member(const json& obj, const std::string& where, const char* name) {
    const json& m = member(obj, where, name);
    if (!m.is_object()) throw HttpError(400, "member " + where + name + " is not an object");
    return m;
}

void string_array_member(const json& obj, const std::string& where, const char* name) {
    const json& m = member(obj, where, name);
    if (!m.is_array() || !std::all_of(m.begin(), m.end(), [](const json& e) { return e.is_string(); }))
        throw HttpError(400, "member " + where + name + " is not an array of strings");
}

bool matches_charset(std::string_view s, std::string_view charset) {
    return s.find_first_not_of(charset) == std::string_view::npos;
}

// Checks a create body against protocol.md section 4: every member present with its type and
// form. Unknown members are ignored (section 2). Throws HttpError(400) on the first problem.
void validate_create(const json& b) {
    if (!b.is_object()) throw HttpError(400, "body is not a JSON object");
    if (int_member(b, "", "protocol") != 1) throw HttpError(400, "unsupported protocol version");
    const std::string id = string_member(b, "", "id");
    if (id.size() < 6 || id.size() > 34 || id.compare(0, 2, "R-") != 0 ||
        !matches_charset(id.substr(2), "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        throw HttpError(400, "id is not R- followed by 4 to 32 characters of [0-9A-Z]");
    const std::string nonce = string_member(b, "", "nonce");
    if (nonce.size() != 43 ||
        !matches_charset(nonce, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
        throw HttpError(400, "nonce is not 32 bytes in base64url without padding");
    if (string_member(b, "", "host").empty()) throw HttpError(400, "host is empty");
    string_member(b, "", "host_environment");
    string_array_member(b, "", "host_tags");

    const json& requester = object_member(b, "", "requester");
    if (string_member(requester, "requester.", "user").empty()) throw HttpError(400, "requester.user is empty");
    if (int_member(requester, "requester.", "uid") < 0) throw HttpError(400, "requester.uid is negative");
    const json& account = object_member(b, "", "account");
    if (string_member(account, "account.", "user").empty()) throw HttpError(400, "account.user is empty");
    if (int_member(account, "account.", "uid") < 0) throw HttpError(400, "account.uid is negative");

    const std::string kind = string_member(b, "", "kind");
    if (kind != "sudo" && kind != "login") throw HttpError(400, "kind is neither sudo nor login");
    const std::string scope = string_member(b, "", "scope");
    if (scope != "command" && scope != "session" && scope != "login")
        throw HttpError(400, "scope is not command, session or login");

    const json& action = object_member(b, "", "action");
    for (const char* name : {"command", "display", "runas", "cwd", "tty", "service", "remote_host"})
        string_member(action, "action.", name);
    const json& argv = member(action, "action.", "argv");
    if (!argv.is_array()) throw HttpError(400, "member action.argv is not an array");
    try {
        for (const json& arg : argv) jitgate::text::arg_from_json(arg);
    } catch (const std::exception& e) {
        throw HttpError(400, std::string("action.argv: ") + e.what());
    }
    const std::string cmd = string_member(action, "action.", "cmd_sha256");
    if (scope == "command" && (cmd.size() != 64 || !matches_charset(cmd, "0123456789abcdef")))
        throw HttpError(400, "action.cmd_sha256 is not 64 lowercase hex digits (scope command)");
    if (scope != "command" && !cmd.empty())
        throw HttpError(400, "action.cmd_sha256 is not empty (scope " + scope + ")");
    if (scope == "command") {
        // §7.3, computed here on its own: a host whose hash disagrees with the spec is refused.
        // Members that hold a backslash arrive escaped (§4) and cannot be recomputed; skipped.
        static constexpr const char* k_strings[] = {"chroot", "command", "cwd", "program", "runas", "runas_group"};
        json bound = json::object();
        bool exact = true;
        for (const char* name : k_strings) {
            const std::string v = string_member(action, "action.", name);
            exact = exact && v.find('\\') == std::string::npos;
            bound[name] = v;
        }
        const json& env = member(action, "action.", "env");
        if (!env.is_array()) throw HttpError(400, "member action.env is not an array");
        bound["argv"] = argv;
        bound["env"] = env;
        if (exact && sha256_hex(bound.dump()) != cmd)
            throw HttpError(400, "action.cmd_sha256 is not the hash of the action (§7.3)");
    }

    for (const char* name : {"reason", "ticket", "rule"}) string_member(b, "", name);
    const std::int64_t needed = int_member(b, "", "approvals_needed");
    if (needed < 1 || needed > 5) throw HttpError(400, "approvals_needed is not 1-5");
    string_array_member(b, "", "approver_groups");
    if (int_member(b, "", "ttl_s") <= 0) throw HttpError(400, "ttl_s is not positive");
    if (int_member(b, "", "timeout_s") <= 0) throw HttpError(400, "timeout_s is not positive");
}

std::string rfc3339(std::int64_t t) {
    const std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// ---------------------------------------------------------------------------------------------
// The service state.

enum class Endpoint { create, poll, cancel };

const char* endpoint_name(Endpoint ep) {
    switch (ep) {
    case Endpoint::create:
        return "create";
    case Endpoint::poll:
        return "poll";
    case Endpoint::cancel:
        return "cancel";
    }
    return "?";
}

// An injected misbehaviour of the protocol endpoints (POST /admin/fault).
struct Fault {
    std::string mode = "none"; // none | hang | status | garbage | truncated | close
    int status = 500;          // for mode "status"
    int retry_after = -1;      // for mode "status": a Retry-After header when >= 0
    std::int64_t count = 0;    // calls still to fault; -1 = until the next POST /admin/fault
    std::string endpoints = "all";
};

// One request, keyed by (host, id).
struct Entry {
    std::uint64_t seq = 0; // creation order
    std::string id;
    std::string host;
    json body; // the create body as received
    std::int64_t created = 0;
    std::string status = "pending";
    std::string grant;
    json approvers = json::array();
    std::string deny_reason;
    std::string denied_by;
    std::string cancel_reason;
};

// Calls seen per request id, faulted ones included.
struct Counts {
    std::int64_t creates = 0;
    std::int64_t polls = 0;
    std::int64_t cancels = 0;
};

struct Options {
    std::string listen;
    int port = -1;
    std::string port_file;
    std::string admin_port_file;
    std::string cert;
    std::string key;
    std::string client_ca;
    std::string signing_key;
    std::string kid;
    std::string other_key;
    std::string issuer = "jitgate-test-service";
    std::string log;
    int threads = k_default_threads;
};

// The fault mode served by this worker thread for the request it is handling, for the log line
// (the logger runs on the same thread right after the handler). Reset before each request.
thread_local std::string t_fault_served;

// The whole state of the service. Thread-safe: every member function takes m_mutex. The
// handlers answer through `res` and throw HttpError (or anything else, a 500) for an error
// answer; guarded() turns that into the error body. The constructor throws on an unusable key.
class Service {
public:
    Service(const Options& opt, gt::SigningKey signing, std::optional<gt::SigningKey> other)
        : m_opt(opt), m_signing(std::move(signing)), m_other(std::move(other)),
          m_public_pem(m_signing.public_key_pem()) {}

    void set_port(int port) {
        std::lock_guard lock(m_mutex);
        m_port = port;
    }

    // Wakes every long poll and injected hang; they answer (or drop) at once from now on.
    void shutdown() {
        {
            std::lock_guard lock(m_mutex);
            m_stopping = true;
        }
        m_cv.notify_all();
    }

    void create(const Request& req, Response& res);
    void poll(const Request& req, Response& res);
    void cancel(const Request& req, Response& res);

    void admin_list(const Request& req, Response& res);
    void admin_get(const Request& req, Response& res);
    void admin_approve(const Request& req, Response& res);
    void admin_deny(const Request& req, Response& res);
    void admin_expire(const Request& req, Response& res);
    void admin_fault(const Request& req, Response& res);
    void admin_stats(const Request& req, Response& res);
    // GET /v1/revocations (protocol.md §12): 404, like a service that predates it, until the
    // first POST /admin/revocations; then each poll serves the next queued body exactly as it
    // was posted (hostile ones included), or after `wait` an empty page.
    void revocations(const Request& req, Response& res);
    // POST /admin/revocations: turns the feed on and queues the body (raw; none: only turns on);
    // POST /admin/revocations?off=1 turns it off again (404, parked polls included).
    void admin_revocations(const Request& req, Response& res);

private:
    using Lock = std::unique_lock<std::mutex>;

    bool serve_fault(Endpoint ep, const std::string& id, const Request& req, Response& res, Lock& lock);
    Entry* find(const std::string& host, const std::string& id);
    Entry& find_or_404(const std::string& host, const std::string& id);
    json status_json(const Entry& e) const;
    json admin_json(const Entry& e) const;
    std::string make_grant(const Entry& e, const json& approvers, const std::string& tamper,
                           std::optional<std::int64_t> ttl_override) const;
    void finish(Entry& e, const std::string& status);

    const Options& m_opt;
    // Grants are signed with the server's own signer (lib/grant_token), so the tests exercise
    // the same bytes jitgate-server produces; only the tampered forms are built here.
    const gt::SigningKey m_signing;
    const std::optional<gt::SigningKey> m_other; // kid "k-unknown"; empty: no --other-key
    const std::string m_public_pem;

    std::mutex m_mutex;
    std::condition_variable m_cv; // any request left "pending", a new fault config, shutdown
    bool m_stopping = false;
    int m_port = 0;
    std::map<std::pair<std::string, std::string>, Entry> m_requests; // (host, id)
    std::uint64_t m_next_seq = 0;
    std::map<std::string, Counts> m_counts; // by id
    Fault m_fault;
    std::uint64_t m_fault_generation = 0; // bumped by every POST /admin/fault: releases hangs
    std::int64_t m_faults_served = 0;
    std::int64_t m_calls[3] = {0, 0, 0}; // by Endpoint
    bool m_revocations_on = false;
    std::deque<std::string> m_revocation_bodies; // served one per poll, as posted
    std::int64_t m_revocations_served = 0;       // bodies served
    std::int64_t m_revocation_polls = 0;
};

// Looks a request up by (host, id), then, so that a test whose configured host name differs
// from its certificate still works, by id alone (the most recent). nullptr if unknown.
Entry* Service::find(const std::string& host, const std::string& id) {
    const auto it = m_requests.find({host, id});
    if (it != m_requests.end()) return &it->second;
    Entry* best = nullptr;
    for (auto& [key, entry] : m_requests)
        if (key.second == id && (best == nullptr || entry.seq > best->seq)) best = &entry;
    return best;
}

Entry& Service::find_or_404(const std::string& host, const std::string& id) {
    Entry* e = find(host, id);
    if (e == nullptr) throw HttpError(404, "no request " + id);
    return *e;
}

// A request status, protocol.md section 5.1.
json Service::status_json(const Entry& e) const {
    json j = {{"protocol", 1}, {"id", e.id}, {"status", e.status}};
    if (e.status == "pending") {
        j["approve_url"] = "https://" + m_opt.listen + ":" + std::to_string(m_port) + "/ui/requests/" + e.id;
        json notified = json::array();
        for (const json& g : e.body["approver_groups"]) notified.push_back("group " + g.get<std::string>());
        j["approvers_notified"] = notified;
        j["message"] = "Waiting for " + std::to_string(e.body["approvals_needed"].get<std::int64_t>()) + " approval(s)";
        // Informational: the service never expires a request on its own (POST
        // /admin/requests/{id}/expire does), so that the host's own timeout is what tests see.
        j["expires_at"] = rfc3339(e.created + e.body["timeout_s"].get<std::int64_t>());
    } else if (e.status == "approved") {
        j["grant"] = e.grant;
        j["approvers"] = e.approvers;
    } else if (e.status == "denied") {
        if (!e.deny_reason.empty()) j["reason"] = e.deny_reason;
        if (!e.denied_by.empty()) j["denied_by"] = e.denied_by;
    }
    return j;
}

json Service::admin_json(const Entry& e) const {
    const auto it = m_counts.find(e.id);
    const Counts counts = it == m_counts.end() ? Counts{} : it->second;
    return {{"id", e.id},
            {"host", e.host},
            {"status", e.status},
            {"body", e.body},
            {"creates", counts.creates},
            {"polls", counts.polls},
            {"cancels", counts.cancels},
            {"cancel_reason", e.cancel_reason},
            {"grant", e.grant},
            {"approvers", e.approvers},
            {"deny_reason", e.deny_reason},
            {"denied_by", e.denied_by}};
}

// Moves a pending request to a final status and wakes its long polls.
void Service::finish(Entry& e, const std::string& status) {
    if (e.status != "pending") throw HttpError(409, "request " + e.id + " is already " + e.status);
    e.status = status;
    m_cv.notify_all();
}

// Serves the configured fault for this call, if any; returns true if it did (the caller must
// then leave `res` alone and change no state). Called with `lock` held; "hang" waits on it.
bool Service::serve_fault(Endpoint ep, const std::string& id, const Request& req, Response& res, Lock& lock) {
    if (m_fault.mode == "none" || m_fault.count == 0) return false;
    if (m_fault.endpoints != "all" && m_fault.endpoints != endpoint_name(ep)) return false;
    const Fault fault = m_fault;
    if (m_fault.count > 0 && --m_fault.count == 0) m_fault = Fault{};
    ++m_faults_served;
    t_fault_served = fault.mode;

    if (fault.mode == "hang") {
        // Hold this worker without answering until shutdown or the next fault configuration
        // (which frees the threads of a test that is done with hanging); then drop the connection.
        const std::uint64_t generation = m_fault_generation;
        m_cv.wait_for(lock, k_hang, [&] { return m_stopping || m_fault_generation != generation; });
        close_connection(req);
    } else if (fault.mode == "close") {
        close_connection(req);
    } else if (fault.mode == "status") {
        send_error(res, fault.status, "injected fault: status " + std::to_string(fault.status));
        if (fault.retry_after >= 0) res.set_header("Retry-After", std::to_string(fault.retry_after));
    } else if (fault.mode == "garbage") {
        res.status = 200;
        res.set_content("<html>not json", "text/html");
    } else if (fault.mode == "truncated") {
        const std::string full =
            json{{"protocol", 1}, {"id", id}, {"status", "pending"}, {"message", "Waiting for approval"}}.dump();
        res.status = 200;
        res.set_content(full.substr(0, full.size() / 2), "application/json");
    }
    return true;
}

void Service::create(const Request& req, Response& res) {
    const json body = json::parse(req.body, nullptr, false);
    std::string id;
    if (body.is_object() && body.contains("id") && body["id"].is_string()) id = body["id"].get<std::string>();

    Lock lock(m_mutex);
    ++m_calls[static_cast<int>(Endpoint::create)];
    if (!id.empty()) ++m_counts[id].creates;
    if (serve_fault(Endpoint::create, id, req, res, lock)) return;

    if (body.is_discarded()) throw HttpError(400, "body is not valid JSON");
    validate_create(body);
    const std::string host = body["host"].get<std::string>();
    const auto it = m_requests.find({host, id});
    if (it != m_requests.end()) {
        // Idempotent retry (same body) or a reused id (different body), protocol.md section 4.
        if (it->second.body != body) throw HttpError(409, "request " + id + " exists with a different body");
        send_json(res, 200, status_json(it->second));
        return;
    }
    Entry& e = m_requests[{host, id}];
    e.seq = m_next_seq++;
    e.id = id;
    e.host = host;
    e.body = body;
    e.created = unix_now();
    send_json(res, 201, status_json(e));
}

void Service::poll(const Request& req, Response& res) {
    const std::string id = req.matches[1];
    Lock lock(m_mutex);
    ++m_calls[static_cast<int>(Endpoint::poll)];
    ++m_counts[id].polls;
    if (serve_fault(Endpoint::poll, id, req, res, lock)) return;

    int wait = 0;
    if (req.has_param("wait")) {
        const std::string text = req.get_param_value("wait");
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), wait);
        if (ec != std::errc() || end != text.data() + text.size() || text.empty())
            throw HttpError(400, "wait is not an integer");
        wait = std::clamp(wait, 0, k_max_wait_s);
    }
    Entry& e = find_or_404(peer_common_name(req), id);
    if (wait > 0) m_cv.wait_for(lock, std::chrono::seconds(wait), [&] { return m_stopping || e.status != "pending"; });
    send_json(res, 200, status_json(e));
}

void Service::cancel(const Request& req, Response& res) {
    const std::string id = req.matches[1];
    Lock lock(m_mutex);
    ++m_calls[static_cast<int>(Endpoint::cancel)];
    ++m_counts[id].cancels;
    if (serve_fault(Endpoint::cancel, id, req, res, lock)) return;

    const json body = parse_json(req.body);
    if (!body.is_object()) throw HttpError(400, "body is not a JSON object");
    if (int_member(body, "", "protocol") != 1) throw HttpError(400, "unsupported protocol version");
    const std::string reason = string_member(body, "", "reason");
    if (reason != "client_gone" && reason != "timeout" && reason != "shutdown")
        throw HttpError(400, "reason is not client_gone, timeout or shutdown");
    Entry& e = find_or_404(peer_common_name(req), id);
    // Cancelling a final request changes nothing, the recorded reason included (section 6):
    // cancel_reason is the reason of the cancel that ended the request.
    if (e.status == "pending") {
        e.cancel_reason = reason;
        finish(e, "cancelled");
    }
    send_json(res, 200, status_json(e));
}

void Service::admin_list(const Request&, Response& res) {
    Lock lock(m_mutex);
    std::vector<const Entry*> entries;
    for (const auto& [key, entry] : m_requests) entries.push_back(&entry);
    std::sort(entries.begin(), entries.end(), [](const Entry* a, const Entry* b) { return a->seq < b->seq; });
    json list = json::array();
    for (const Entry* e : entries) list.push_back(admin_json(*e));
    send_json(res, 200, {{"requests", list}});
}

void Service::admin_get(const Request& req, Response& res) {
    Lock lock(m_mutex);
    send_json(res, 200, admin_json(find_or_404("", req.matches[1])));
}

// Builds the grant of protocol.md section 7 for `e`, or a deliberately broken one (`tamper`).
std::string Service::make_grant(const Entry& e, const json& approvers, const std::string& tamper,
                                std::optional<std::int64_t> ttl_override) const {
    const json& b = e.body;
    const std::int64_t now = unix_now();
    std::int64_t ttl = b["ttl_s"].get<std::int64_t>();
    if (ttl_override) ttl = std::min(ttl, *ttl_override);

    json claims = {{"iss", m_opt.issuer},
                   {"jti", "G-" + to_hex(random_bytes(8))},
                   {"rid", e.id},
                   {"nonce", b["nonce"]},
                   {"host", b["host"]},
                   {"sub", b["requester"]["user"]},
                   {"kind", b["kind"]},
                   {"scope", b["scope"]},
                   {"approvers", approvers},
                   {"iat", now},
                   {"nbf", now},
                   {"exp", now + ttl}};
    const std::string cmd = b["action"]["cmd_sha256"].get<std::string>();
    if (!cmd.empty()) claims["cmd_sha256"] = cmd;
    json header = {{"alg", "EdDSA"}, {"kid", m_opt.kid}, {"typ", "JWT"}};
    const gt::SigningKey* key = &m_signing;

    if (tamper == "wrong_nonce") {
        claims["nonce"] = jitgate::text::base64url_encode(random_bytes(32));
    } else if (tamper == "other_host") {
        claims["host"] = "not-this-host";
    } else if (tamper == "other_user") {
        claims["sub"] = "mallory";
    } else if (tamper == "other_cmd") {
        claims["cmd_sha256"] = sha256_hex("something else");
    } else if (tamper == "expired") {
        claims["iat"] = now - 600;
        claims["nbf"] = now - 600;
        claims["exp"] = now - 300;
    } else if (tamper == "not_yet_valid") {
        claims["nbf"] = now + 3600;
        claims["exp"] = now + 7200;
    } else if (tamper == "auto_on_call") {
        // The service's own approval (docs/protocol.md §7.2 `auto`), with the approvers given
        // (the host accepts it only with none, and only for a rule that opted in).
        claims["auto"] = "on_call";
    } else if (tamper == "unknown_kid") {
        if (!m_other) throw HttpError(400, "tamper unknown_kid needs --other-key");
        key = &*m_other;
    }
    // Everything but a broken header or signature: the shared signer, as jitgate-server signs.
    if (tamper != "alg_none" && tamper != "alg_hs256" && tamper != "forge_signature" && tamper != "no_signature")
        return gt::sign(*key, claims);

    if (tamper == "alg_none") {
        header["alg"] = "none";
    } else if (tamper == "alg_hs256") {
        header["alg"] = "HS256";
    }
    const std::string signing_input =
        jitgate::text::base64url_encode(header.dump()) + "." + jitgate::text::base64url_encode(claims.dump());
    std::string sig;
    if (tamper == "alg_hs256") {
        // The classic key-confusion attack: HMAC keyed with the text of the public key.
        sig = hmac_sha256(m_public_pem, signing_input);
    } else if (tamper == "forge_signature") {
        sig = key->sign_bytes(signing_input);
        sig[sig.size() / 2] = static_cast<char>(sig[sig.size() / 2] ^ 0x01);
    }
    return signing_input + "." + jitgate::text::base64url_encode(sig);
}

void Service::admin_approve(const Request& req, Response& res) {
    static const std::vector<std::string> k_tampers = {
        "none",       "forge_signature", "unknown_kid", "alg_none",      "alg_hs256",    "wrong_nonce", "other_host",
        "other_user", "other_cmd",       "expired",     "not_yet_valid", "no_signature", "auto_on_call"};
    const json body = parse_json(req.body);
    if (!body.is_object()) throw HttpError(400, "body is not a JSON object");
    string_array_member(body, "", "approvers");
    const json approvers = body["approvers"];
    const std::string tamper = body.contains("tamper") ? string_member(body, "", "tamper") : "none";
    if (std::find(k_tampers.begin(), k_tampers.end(), tamper) == k_tampers.end())
        throw HttpError(400, "unknown tamper mode " + tamper);
    std::optional<std::int64_t> ttl;
    if (body.contains("ttl_s")) ttl = int_member(body, "", "ttl_s");
    const std::string replay_of = body.contains("replay_of") ? string_member(body, "", "replay_of") : "";

    Lock lock(m_mutex);
    Entry& e = find_or_404("", req.matches[1]);
    if (e.status != "pending") throw HttpError(409, "request " + e.id + " is already " + e.status);
    std::string grant;
    if (!replay_of.empty()) {
        const Entry* old = find("", replay_of);
        if (old == nullptr || old->grant.empty()) throw HttpError(409, "request " + replay_of + " has no grant");
        grant = old->grant;
    } else {
        grant = make_grant(e, approvers, tamper, ttl);
    }
    e.grant = grant;
    e.approvers = approvers;
    finish(e, "approved");
    send_json(res, 200, admin_json(e));
}

void Service::admin_deny(const Request& req, Response& res) {
    const json body = req.body.empty() ? json::object() : parse_json(req.body);
    if (!body.is_object()) throw HttpError(400, "body is not a JSON object");
    const std::string reason = body.contains("reason") ? string_member(body, "", "reason") : "";
    const std::string by = body.contains("by") ? string_member(body, "", "by") : "";
    Lock lock(m_mutex);
    Entry& e = find_or_404("", req.matches[1]);
    finish(e, "denied");
    e.deny_reason = reason;
    e.denied_by = by;
    send_json(res, 200, admin_json(e));
}

void Service::admin_expire(const Request& req, Response& res) {
    Lock lock(m_mutex);
    Entry& e = find_or_404("", req.matches[1]);
    finish(e, "expired");
    send_json(res, 200, admin_json(e));
}

void Service::admin_fault(const Request& req, Response& res) {
    const json body = parse_json(req.body);
    if (!body.is_object()) throw HttpError(400, "body is not a JSON object");
    Fault f;
    f.mode = string_member(body, "", "mode");
    if (f.mode != "none" && f.mode != "hang" && f.mode != "status" && f.mode != "garbage" && f.mode != "truncated" &&
        f.mode != "close")
        throw HttpError(400, "unknown fault mode " + f.mode);
    if (body.contains("status")) {
        const std::int64_t status = int_member(body, "", "status");
        if (status < 100 || status > 599) throw HttpError(400, "status is not an HTTP status");
        f.status = static_cast<int>(status);
    }
    if (body.contains("retry_after")) {
        const std::int64_t retry_after = int_member(body, "", "retry_after");
        if (retry_after < 0 || retry_after > 86400) throw HttpError(400, "retry_after is not 0-86400");
        f.retry_after = static_cast<int>(retry_after);
    }
    f.count = body.contains("count") ? int_member(body, "", "count") : 1;
    if (f.count < -1) throw HttpError(400, "count is below -1");
    if (f.mode == "none") f.count = 0;
    if (body.contains("endpoints")) f.endpoints = string_member(body, "", "endpoints");
    if (f.endpoints != "all" && f.endpoints != "create" && f.endpoints != "poll" && f.endpoints != "cancel")
        throw HttpError(400, "endpoints is not all, create, poll or cancel");

    Lock lock(m_mutex);
    m_fault = f;
    ++m_fault_generation;
    m_cv.notify_all();
    send_json(res, 200,
              {{"fault", {{"mode", f.mode}, {"status", f.status}, {"count", f.count}, {"endpoints", f.endpoints}}}});
}

void Service::admin_stats(const Request&, Response& res) {
    Lock lock(m_mutex);
    send_json(res, 200,
              {{"calls",
                {{"create", m_calls[static_cast<int>(Endpoint::create)]},
                 {"poll", m_calls[static_cast<int>(Endpoint::poll)]},
                 {"cancel", m_calls[static_cast<int>(Endpoint::cancel)]}}},
               {"faults_served", m_faults_served},
               {"revocation_polls", m_revocation_polls},
               {"revocations_served", m_revocations_served}});
}

void Service::revocations(const Request& req, Response& res) {
    Lock lock(m_mutex);
    ++m_revocation_polls;
    if (!m_revocations_on) throw HttpError(404, "no such path");
    int wait = 0;
    if (req.has_param("wait")) {
        const std::string text = req.get_param_value("wait");
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), wait);
        if (ec != std::errc() || end != text.data() + text.size() || text.empty())
            throw HttpError(400, "wait is not an integer");
        wait = std::clamp(wait, 0, k_max_wait_s);
    }
    if (m_revocation_bodies.empty() && wait > 0)
        m_cv.wait_for(lock, std::chrono::seconds(wait),
                      [&] { return m_stopping || !m_revocation_bodies.empty() || !m_revocations_on; });
    if (!m_revocations_on) throw HttpError(404, "no such path");
    if (m_revocation_bodies.empty()) {
        const std::string after = req.has_param("after") ? req.get_param_value("after") : "0";
        std::int64_t cursor = 0;
        std::from_chars(after.data(), after.data() + after.size(), cursor);
        send_json(res, 200, {{"protocol", 1}, {"cursor", cursor}, {"revocations", json::array()}});
        return;
    }
    res.status = 200;
    res.set_content(m_revocation_bodies.front(), "application/json");
    m_revocation_bodies.pop_front();
    ++m_revocations_served;
}

void Service::admin_revocations(const Request& req, Response& res) {
    std::int64_t queued = 0;
    {
        Lock lock(m_mutex);
        // ?off=1: the feed answers 404 again (a proxy or replica that lost the route).
        m_revocations_on = !(req.has_param("off") && req.get_param_value("off") == "1");
        if (!req.body.empty()) m_revocation_bodies.push_back(req.body);
        queued = static_cast<std::int64_t>(m_revocation_bodies.size());
    }
    m_cv.notify_all();
    send_json(res, 200, {{"queued", queued}});
}

// ---------------------------------------------------------------------------------------------
// Wiring: request log, handler guard, TLS set-up, command line, main.

// One line per HTTP request ("METHOD PATH STATUS", plus " fault=MODE" for an injected fault;
// STATUS is "-" when no answer was sent). Thread-safe; a no-op without --log.
class RequestLog {
public:
    explicit RequestLog(const std::string& path) {
        if (path.empty()) return;
        m_file = std::fopen(path.c_str(), "a");
        if (m_file == nullptr) throw std::runtime_error(path + ": cannot open for appending");
    }
    ~RequestLog() {
        if (m_file != nullptr) std::fclose(m_file);
    }
    RequestLog(const RequestLog&) = delete;
    RequestLog& operator=(const RequestLog&) = delete;

    void line(const Request& req, const Response& res) {
        if (m_file == nullptr) return;
        const bool unanswered = t_fault_served == "hang" || t_fault_served == "close";
        std::string text = jitgate::text::escape_for_log(req.method) + " " + jitgate::text::escape_for_log(req.path) +
                           " " + (unanswered ? std::string("-") : std::to_string(res.status));
        if (!t_fault_served.empty()) text += " fault=" + t_fault_served;
        std::lock_guard lock(m_mutex);
        std::fprintf(m_file, "%s\n", text.c_str());
        std::fflush(m_file);
    }

private:
    std::FILE* m_file = nullptr;
    std::mutex m_mutex;
};

// Wraps a handler so that no exception escapes into httplib: HttpError becomes its status,
// anything else a 500, each with the error body of protocol.md section 8.
httplib::Server::Handler guarded(Service& service, void (Service::*fn)(const Request&, Response&)) {
    return [&service, fn](const Request& req, Response& res) {
        try {
            (service.*fn)(req, res);
        } catch (const HttpError& e) {
            send_error(res, e.status(), e.what());
        } catch (const std::exception& e) {
            send_error(res, 500, e.what());
        } catch (...) {
            send_error(res, 500, "unknown exception");
        }
    };
}

// Settings shared by both listeners: request log, error bodies for unrouted requests, the
// per-request reset of the fault marker, and the worker pool.
void configure(httplib::Server& server, RequestLog& log, std::size_t threads) {
    server.set_logger([&log](const Request& req, const Response& res) {
        try {
            log.line(req, res);
        } catch (...) {
            // Losing one log line must not take the request down.
        }
    });
    server.set_pre_routing_handler([](const Request&, Response&) {
        t_fault_served.clear();
        return httplib::Server::HandlerResponse::Unhandled;
    });
    // httplib calls this for every 4xx/5xx; fill in a body only where no handler wrote one.
    const httplib::Server::HandlerWithResponse on_error = [](const Request& req, Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        send_error(res, res.status, "no route for " + jitgate::text::escape_for_log(req.method + " " + req.path));
        return httplib::Server::HandlerResponse::Handled;
    };
    server.set_error_handler(on_error);
    server.set_exception_handler(
        [](const Request&, Response& res, std::exception_ptr) { send_error(res, 500, "internal error"); });
    server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    // Answers go out at once, as production servers send them: with Nagle on, the second
    // piece of a long poll's answer waits ~40 ms for the daemon's delayed ACK (bench row 6).
    server.set_tcp_nodelay(true);
}

// The TLS context of the protocol listener: our certificate, and a client certificate signed
// by --client-ca required (no certificate fails the handshake). Sets `error` on failure.
bool setup_tls(SSL_CTX& ctx, const Options& opt, std::string& error) {
    static const unsigned char k_session_context[] = "jitgate-test-approval-service";
    auto fail = [&error](const std::string& what) {
        error = what + ": " + openssl_errors();
        return false;
    };
    if (SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION) != 1) return fail("TLS 1.2 minimum");
    if (SSL_CTX_use_certificate_chain_file(&ctx, opt.cert.c_str()) != 1) return fail(opt.cert);
    if (SSL_CTX_use_PrivateKey_file(&ctx, opt.key.c_str(), SSL_FILETYPE_PEM) != 1) return fail(opt.key);
    if (SSL_CTX_check_private_key(&ctx) != 1) return fail(opt.key + " does not match " + opt.cert);
    if (SSL_CTX_load_verify_locations(&ctx, opt.client_ca.c_str(), nullptr) != 1) return fail(opt.client_ca);
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(opt.client_ca.c_str());
    if (names == nullptr) return fail(opt.client_ca);
    SSL_CTX_set_client_CA_list(&ctx, names); // takes ownership
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    // Without a session id context, OpenSSL refuses to resume a session of a verified client.
    if (SSL_CTX_set_session_id_context(&ctx, k_session_context, sizeof k_session_context - 1) != 1)
        return fail("session id context");
    return true;
}

// Binds `server` to host:port (0 = ephemeral) and returns the bound port; throws on failure.
int bind_server(httplib::Server& server, const std::string& host, int port) {
    // httplib 0.11 listens with a backlog of 5; a test that starts many requesters at once
    // would see dropped SYNs and one-second retransmits. Remember the socket to widen it.
    // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a stale instance
    // share a fixed --port with a new one.
    int fd = -1;
    server.set_socket_options([&fd](int sock) {
        const int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        fd = sock;
    });
    const int bound = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
    if (bound <= 0) throw std::runtime_error("cannot bind " + host + ":" + std::to_string(port));
    if (fd >= 0) ::listen(fd, SOMAXCONN);
    return bound;
}

// Writes "PORT\n" to `path` through a temporary file and rename(), so a reader never sees half.
void write_port_file(const std::string& path, int port) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << port << '\n';
        out.close();
        if (!out) throw std::runtime_error(tmp + ": cannot write");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error(path + ": cannot rename into place");
}

Options parse_options(int argc, char** argv) {
    Options opt;
    const std::map<std::string, std::string*> strings = {{"--listen", &opt.listen},
                                                         {"--port-file", &opt.port_file},
                                                         {"--admin-port-file", &opt.admin_port_file},
                                                         {"--cert", &opt.cert},
                                                         {"--key", &opt.key},
                                                         {"--client-ca", &opt.client_ca},
                                                         {"--signing-key", &opt.signing_key},
                                                         {"--kid", &opt.kid},
                                                         {"--other-key", &opt.other_key},
                                                         {"--issuer", &opt.issuer},
                                                         {"--log", &opt.log}};
    for (int i = 1; i < argc; i += 2) {
        const std::string name = argv[i];
        if (i + 1 >= argc) throw UsageError(name + " needs a value");
        const std::string value = argv[i + 1];
        if (name == "--port") {
            const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), opt.port);
            if (ec != std::errc() || end != value.data() + value.size() || opt.port < 0 || opt.port > 65535)
                throw UsageError("--port is not 0-65535");
        } else if (name == "--threads") {
            const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), opt.threads);
            if (ec != std::errc() || end != value.data() + value.size() || opt.threads < 1 || opt.threads > 4096)
                throw UsageError("--threads is not 1-4096");
        } else if (const auto it = strings.find(name); it != strings.end()) {
            *it->second = value;
        } else {
            throw UsageError("unknown option " + name);
        }
    }
    if (opt.port < 0) throw UsageError("--port is required");
    for (const char* name :
         {"--listen", "--port-file", "--admin-port-file", "--cert", "--key", "--client-ca", "--signing-key", "--kid"})
        if (strings.at(name)->empty()) throw UsageError(std::string(name) + " is required");
    return opt;
}

int run(int argc, char** argv) {
    Options opt;
    try {
        opt = parse_options(argc, argv);
    } catch (const UsageError& e) {
        std::fprintf(stderr,
                     "%s: %s\nusage: %s --listen ADDR --port N --port-file FILE --admin-port-file FILE\n"
                     "  --cert PEM --key PEM --client-ca PEM --signing-key PEM --kid KID\n"
                     "  [--other-key PEM] [--issuer NAME] [--log FILE] [--threads N]\n",
                     k_prog, e.what(), k_prog);
        return 2;
    }

    // Signals: SIGTERM/SIGINT are blocked in every thread (the pools inherit this mask) and
    // taken by sigwait() below; SIGPIPE from a dropped client must not kill the service.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    // The key files of make_pki.sh: 0600, owned by whoever runs the tests.
    gt::SigningKey signing = gt::SigningKey::load(opt.kid, opt.signing_key, getuid());
    std::optional<gt::SigningKey> other;
    if (!opt.other_key.empty()) other = gt::SigningKey::load("k-unknown", opt.other_key, getuid());
    RequestLog log(opt.log);
    Service service(opt, std::move(signing), std::move(other));

    std::string tls_error;
    httplib::SSLServer https([&](SSL_CTX& ctx) { return setup_tls(ctx, opt, tls_error); });
    if (!https.is_valid()) throw std::runtime_error("TLS set-up failed: " + tls_error);
    configure(https, log, static_cast<std::size_t>(opt.threads));
    https.Post("/v1/requests", guarded(service, &Service::create));
    https.Get(R"(/v1/requests/([^/]+))", guarded(service, &Service::poll));
    https.Post(R"(/v1/requests/([^/]+)/cancel)", guarded(service, &Service::cancel));
    https.Get("/v1/revocations", guarded(service, &Service::revocations));

    httplib::Server admin;
    configure(admin, log, k_admin_threads);
    admin.Get("/admin/requests", guarded(service, &Service::admin_list));
    admin.Get(R"(/admin/requests/([^/]+))", guarded(service, &Service::admin_get));
    admin.Post(R"(/admin/requests/([^/]+)/approve)", guarded(service, &Service::admin_approve));
    admin.Post(R"(/admin/requests/([^/]+)/deny)", guarded(service, &Service::admin_deny));
    admin.Post(R"(/admin/requests/([^/]+)/expire)", guarded(service, &Service::admin_expire));
    admin.Post("/admin/fault", guarded(service, &Service::admin_fault));
    admin.Get("/admin/stats", guarded(service, &Service::admin_stats));
    admin.Post("/admin/revocations", guarded(service, &Service::admin_revocations));

    const int port = bind_server(https, opt.listen, opt.port);
    const int admin_port = bind_server(admin, "127.0.0.1", 0);
    service.set_port(port);

    // The sockets already listen (connections wait in the backlog), so the files may appear
    // before the accept loops run. The protocol port comes last: tests wait for it.
    write_port_file(opt.admin_port_file, admin_port);
    write_port_file(opt.port_file, port);

    std::atomic<int> running{2};
    std::thread https_thread([&] {
        https.listen_after_bind();
        --running;
    });
    std::thread admin_thread([&] {
        admin.listen_after_bind();
        --running;
    });

    int sig = 0;
    sigwait(&stop_signals, &sig);

    service.shutdown();
    https.stop();
    admin.stop();
    const auto deadline = std::chrono::steady_clock::now() + k_shutdown_grace;
    while (running > 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (running > 0) {
        // A worker still sits in an idle keep-alive wait; nothing is left to save.
        std::fflush(nullptr);
        std::_Exit(0);
    }
    https_thread.join();
    admin_thread.join();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", k_prog, e.what());
    } catch (...) {
        std::fprintf(stderr, "%s: unknown error\n", k_prog);
    }
    return 1;
}
