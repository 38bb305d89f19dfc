// tests/support/audit_store.cpp — jitgate-test-audit-store, a real central audit store for the
// tests (never installed). jitgated ships its hash-chained audit events (docs/audit.md) to it in
// batches over HTTPS; the store persists what it accepts and deduplicates by event_id.
//
//   jitgate-test-audit-store --cert server.pem --key server.key --data FILE
//       [--listen 127.0.0.1] [--port 0] [--port-file FILE] [--admin-port-file FILE]
//       [--client-ca ca.pem] [--token TOKEN] [--log FILE]
//
// HTTPS ingest (the daemon's side):
//   POST /v1/events                JSON Lines (application/x-ndjson), `Authorization: Bearer T`;
//                                  200 {"accepted":N,"duplicates":M,"stored":N+M,
//                                  "last_event_id":"<event_id of the batch's last line>"} (the
//                                  acknowledgement jitgated requires), errors
//                                  {"error":{"code":"...","message":"..."}}.
//   POST /services/collector/event Splunk HEC: concatenated {"time","host","source",
//                                  "sourcetype","event":{...}} objects, `Authorization: Splunk T`;
//                                  200 {"text":"Success","code":0}, errors {"text","code"} with
//                                  Splunk's codes (2 token required, 4 invalid token, 5 no data,
//                                  6 invalid data format, 8 internal error, 9 server busy).
//   With --token a missing or wrong token is a 401. /v1/events also wants Content-Type
//   application/x-ndjson (else 415). A batch is all-or-nothing: one bad line/object (not valid
//   UTF-8, not a JSON object, no non-empty string event_id, no integer seq; a blank line) rejects
//   it with 400 and stores nothing. Otherwise the events whose event_id is new are appended to
//   --data in arrival order, one `dump()`ed JSON object per line (the canonical form, so a
//   jitgated journal line is stored byte for byte), and fsync'ed before the 2xx answer.
//   Existing lines are loaded at start-up, so deduplication survives a restart; a torn last
//   line (no '\n': a write that was never acknowledged) is cut.
//   With --client-ca the TLS handshake fails without a client certificate signed by that CA.
//
// Plain-HTTP admin API on 127.0.0.1 (the test's side), JSON in and out:
//   GET  /admin/events   {"events":[...every stored event, in arrival order...]}
//   GET  /admin/stats    {"batches","accepted","duplicates","rejected","faults_served","calls"}
//   GET  /admin/fault    the fault armed now
//   POST /admin/fault    {"mode":"none|status|status_after_store|hang|close|slow|bogus_ok","status":500,
//                         "count":1 (-1: until reset),"delay_ms":1000} arms a fault for the next
//                         `count` ingest calls (see `FaultMode`).
//   POST /admin/reset    clears the fault and drops calls still hanging; keeps the data.
// Stats count since start-up: `calls` every ingest call, `batches` those answered 2xx,
// `rejected` the 4xx of auth and validation (not injected faults), `faults_served` the calls a
// fault hit; a status_after_store batch counts in `accepted`/`duplicates` but not in `batches`.
//
// --log gets one line per HTTP request, both servers, e.g.
//   POST /v1/events 200 events=3 accepted=2 duplicates=1 [fault=slow]
// with "-" as the status of a dropped connection (close, hang).
//
// The admin port file is written before the HTTPS one (each atomically, once listening), so a
// test that waits for --port-file may use both. Exits 0 on SIGTERM/SIGINT; start-up errors go
// to stderr with exit status 1.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "jitgate/text.hpp"

namespace {

using nlohmann::json;

// A hanging call keeps its worker thread, so the pool is large enough for several hangs plus
// the daemon's retries on fresh connections.
constexpr std::size_t k_ingest_threads = 32;
constexpr std::size_t k_admin_threads = 4;
constexpr std::size_t k_max_body = 64 * 1024 * 1024;
constexpr std::size_t k_max_admin_body = 64 * 1024;
// How often a hanging call checks whether its client gave up (so its thread comes back).
constexpr auto k_hang_poll = std::chrono::milliseconds(100);
constexpr const char* k_json = "application/json";

// Thrown for anything that stops the store from starting; main prints it and exits 1.
struct StartupError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::string errno_text(int err) {
    return std::strerror(err);
}

std::string openssl_errors() {
    std::string out;
    while (const unsigned long code = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(code, buf, sizeof(buf));
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? "unknown OpenSSL error" : out;
}

bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// Options

struct Options {
    std::string listen = "127.0.0.1";
    int port = 0;
    std::string port_file;
    std::string admin_port_file;
    std::string cert;
    std::string key;
    std::string client_ca;
    std::string token;
    std::string data;
    std::string log;
};

constexpr const char* k_usage =
    "usage: jitgate-test-audit-store --cert PEM --key PEM --data FILE [--listen ADDR] [--port N]\n"
    "       [--port-file FILE] [--admin-port-file FILE] [--client-ca PEM] [--token TOKEN]\n"
    "       [--log FILE]\n";

// Throws StartupError on an unknown option, a missing value or a missing required option.
Options parse_options(int argc, char** argv) {
    Options o;
    const std::map<std::string, std::string*> strings = {{"--listen", &o.listen},
                                                         {"--port-file", &o.port_file},
                                                         {"--admin-port-file", &o.admin_port_file},
                                                         {"--cert", &o.cert},
                                                         {"--key", &o.key},
                                                         {"--client-ca", &o.client_ca},
                                                         {"--token", &o.token},
                                                         {"--data", &o.data},
                                                         {"--log", &o.log}};
    for (int i = 1; i < argc; ++i) {
        const std::string name = argv[i];
        if (i + 1 >= argc) throw StartupError("option " + name + " needs a value\n" + k_usage);
        const std::string value = argv[++i];
        if (name == "--port") {
            std::size_t used = 0;
            try {
                o.port = std::stoi(value, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (used != value.size() || o.port < 0 || o.port > 65535)
                throw StartupError("--port: not a port number: " + value);
        } else if (const auto it = strings.find(name); it != strings.end()) {
            if (value.empty()) throw StartupError("option " + name + " needs a non-empty value");
            *it->second = value;
        } else {
            throw StartupError("unknown option " + name + "\n" + k_usage);
        }
    }
    if (o.cert.empty() || o.key.empty() || o.data.empty())
        throw StartupError(std::string("--cert, --key and --data are required\n") + k_usage);
    if (o.port == 0 && o.port_file.empty())
        throw StartupError("--port 0 needs --port-file, or nobody can learn the port");
    return o;
}

// Writes "PORT\n" to `path` through a temporary file and rename(), so a reader never sees a
// partial number. Throws StartupError.
void write_port_file(const std::string& path, int port) {
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw StartupError("cannot create " + tmp + ": " + errno_text(errno));
    const bool ok = write_all(fd, std::to_string(port) + "\n");
    const int err = errno;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        const int rename_err = ok ? errno : err;
        ::unlink(tmp.c_str());
        throw StartupError("cannot write " + path + ": " + errno_text(rename_err));
    }
}

// ---------------------------------------------------------------------------------------------
// Batch parsing: pure functions, no state.

// Which wire format an ingest call uses; decides the auth scheme and the error body.
enum class Format { json_lines, hec };

struct BatchError {
    std::size_t number; // 1-based line (JSON Lines) or object (HEC) number
    std::string message;
};

// Returns why `event` is not an acceptable jitgate event, or nullopt if it is.
std::optional<std::string> check_event(const json& event) {
    if (!event.is_object()) return "not a JSON object";
    const auto id = event.find("event_id");
    if (id == event.end() || !id->is_string()) return "event_id missing or not a string";
    if (id->get_ref<const std::string&>().empty()) return "event_id is empty";
    const auto seq = event.find("seq");
    if (seq == event.end() || !seq->is_number_integer()) return "seq missing or not an integer";
    return std::nullopt;
}

// Parses one JSON text that must be valid UTF-8; returns the error text on failure.
std::optional<std::string> parse_json(std::string_view text, json& out) {
    if (!jitgate::text::is_valid_utf8(text)) return "not valid UTF-8";
    try {
        out = json::parse(text);
    } catch (const json::exception& e) {
        return std::string("not valid JSON: ") + e.what();
    }
    return std::nullopt;
}

// JSON Lines: one event per line, an optional '\n' after the last. Blank lines are errors.
std::optional<BatchError> parse_json_lines(std::string_view body, std::vector<json>& events) {
    if (!body.empty() && body.back() == '\n') body.remove_suffix(1);
    std::size_t number = 0;
    while (true) {
        ++number;
        const std::size_t end = body.find('\n');
        const std::string_view line = body.substr(0, end);
        if (line.find_first_not_of(" \t\r") == std::string_view::npos) return BatchError{number, "empty line"};
        json event;
        if (auto err = parse_json(line, event)) return BatchError{number, *err};
        if (auto err = check_event(event)) return BatchError{number, *err};
        events.push_back(std::move(event));
        if (end == std::string_view::npos) return std::nullopt;
        body.remove_prefix(end + 1);
    }
}

// Splits concatenated top-level JSON objects ("{...}{...}" with optional whitespace between)
// by tracking nesting outside strings; each piece is then parsed on its own.
std::optional<BatchError> split_objects(std::string_view body, std::vector<std::string_view>& out) {
    std::size_t i = 0;
    for (std::size_t number = 1;; ++number) {
        while (i < body.size() && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n')) ++i;
        if (i == body.size()) return std::nullopt;
        if (body[i] != '{') return BatchError{number, "not a JSON object"};
        const std::size_t start = i;
        int depth = 0;
        bool in_string = false;
        bool escaped = false;
        for (; i < body.size(); ++i) {
            const char c = body[i];
            if (in_string) {
                if (escaped)
                    escaped = false;
                else if (c == '\\')
                    escaped = true;
                else if (c == '"')
                    in_string = false;
            } else if (c == '"') {
                in_string = true;
            } else if (c == '{' || c == '[') {
                ++depth;
            } else if ((c == '}' || c == ']') && --depth == 0) {
                ++i;
                break;
            }
        }
        if (depth != 0) return BatchError{number, "unterminated JSON object"};
        out.push_back(body.substr(start, i - start));
    }
}

// Splunk HEC: each object carries the jitgate event in "event"; the metadata must be well
// typed when present, so a daemon that sends a malformed envelope is caught here.
std::optional<BatchError> parse_hec(std::string_view body, std::vector<json>& events) {
    std::vector<std::string_view> pieces;
    if (auto err = split_objects(body, pieces)) return err;
    for (std::size_t k = 0; k < pieces.size(); ++k) {
        const std::size_t number = k + 1;
        json envelope;
        if (auto err = parse_json(pieces[k], envelope)) return BatchError{number, *err};
        if (!envelope.is_object()) return BatchError{number, "not a JSON object"};
        if (envelope.contains("time") && !envelope["time"].is_number())
            return BatchError{number, "time is not a number"};
        for (const char* field : {"host", "source", "sourcetype"})
            if (envelope.contains(field) && !envelope[field].is_string())
                return BatchError{number, std::string(field) + " is not a string"};
        const auto event = envelope.find("event");
        if (event == envelope.end()) return BatchError{number, "event missing"};
        if (auto err = check_event(*event)) return BatchError{number, "event: " + *err};
        events.push_back(std::move(*event));
    }
    return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// The persisted events. Not thread-safe: the caller holds the server's mutex.

class EventFile {
public:
    struct Appended {
        std::size_t accepted = 0;
        std::size_t duplicates = 0;
    };

    // Opens (creating if needed) and loads `path`. Throws StartupError naming file and line
    // when a complete line is not a JSON object with a string event_id; a torn last line is cut.
    explicit EventFile(std::string path) : m_path(std::move(path)) {
        m_fd = ::open(m_path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (m_fd < 0) throw StartupError("cannot open " + m_path + ": " + errno_text(errno));
        load();
    }
    ~EventFile() { ::close(m_fd); }
    EventFile(const EventFile&) = delete;
    EventFile& operator=(const EventFile&) = delete;

    // Appends the events whose event_id is new (also within `batch`), in order, and fsyncs.
    // On an I/O failure the file is cut back to its previous size, nothing is remembered, and
    // std::system_error is thrown.
    Appended append(const std::vector<json>& batch) {
        Appended result;
        std::string text;
        std::vector<const json*> fresh;
        std::unordered_set<std::string> batch_ids;
        for (const json& event : batch) {
            const auto& id = event["event_id"].get_ref<const std::string&>();
            if (m_ids.contains(id) || !batch_ids.insert(id).second) {
                ++result.duplicates;
                continue;
            }
            text += event.dump();
            text += '\n';
            fresh.push_back(&event);
        }
        if (!fresh.empty()) {
            struct stat st {};
            if (::fstat(m_fd, &st) != 0) throw std::system_error(errno, std::generic_category(), "fstat");
            if (!write_all(m_fd, text) || ::fsync(m_fd) != 0) {
                const int err = errno;
                // Best effort: if even the cut fails the next start-up drops the torn tail.
                if (::ftruncate(m_fd, st.st_size) != 0) std::perror("jitgate-test-audit-store: ftruncate");
                throw std::system_error(err, std::generic_category(), "cannot write " + m_path);
            }
        }
        for (const json* event : fresh) {
            m_ids.insert((*event)["event_id"].get<std::string>());
            m_events.push_back(*event);
        }
        result.accepted = fresh.size();
        return result;
    }

    const std::vector<json>& events() const { return m_events; }

private:
    void load() {
        std::string content;
        char buf[65536];
        while (true) {
            const ssize_t n = ::pread(m_fd, buf, sizeof(buf), static_cast<off_t>(content.size()));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw StartupError("cannot read " + m_path + ": " + errno_text(errno));
            if (n == 0) break;
            content.append(buf, static_cast<std::size_t>(n));
        }
        const std::size_t complete = content.rfind('\n') == std::string::npos ? 0 : content.rfind('\n') + 1;
        if (complete != content.size()) {
            std::fprintf(stderr, "jitgate-test-audit-store: %s: cutting a torn last line (%zu bytes)\n", m_path.c_str(),
                         content.size() - complete);
            if (::ftruncate(m_fd, static_cast<off_t>(complete)) != 0 || ::fsync(m_fd) != 0)
                throw StartupError("cannot cut the torn tail of " + m_path + ": " + errno_text(errno));
        }
        std::string_view rest(content.data(), complete);
        for (std::size_t number = 1; !rest.empty(); ++number) {
            const std::size_t end = rest.find('\n');
            json event;
            auto err = parse_json(rest.substr(0, end), event);
            if (!err && (!event.is_object() || !event.contains("event_id") || !event["event_id"].is_string()))
                err = "not an event with a string event_id";
            if (err) throw StartupError(m_path + ":" + std::to_string(number) + ": " + *err);
            if (m_ids.insert(event["event_id"].get<std::string>()).second) m_events.push_back(std::move(event));
            rest.remove_prefix(end + 1);
        }
    }

    std::string m_path;
    int m_fd = -1;
    std::unordered_set<std::string> m_ids;
    std::vector<json> m_events;
};

// ---------------------------------------------------------------------------------------------
// Fault injection

enum class FaultMode {
    none,
    status,             // answer `status` with an error body, store nothing
    status_after_store, // store durably, then answer `status`: a lost acknowledgement
    hang,               // never answer; dropped on reset or a new fault, at exit, or when the client leaves
    close,              // drop the connection without an answer, store nothing
    slow,               // store normally, answer after `delay_ms`
    bogus_ok,           // store nothing, answer 200 with an HTML page: a misrouted or proxy "OK"
};

constexpr std::pair<FaultMode, const char*> k_fault_names[] = {{FaultMode::none, "none"},
                                                               {FaultMode::status, "status"},
                                                               {FaultMode::status_after_store, "status_after_store"},
                                                               {FaultMode::hang, "hang"},
                                                               {FaultMode::close, "close"},
                                                               {FaultMode::slow, "slow"},
                                                               {FaultMode::bogus_ok, "bogus_ok"}};

const char* fault_name(FaultMode mode) {
    for (const auto& [m, name] : k_fault_names)
        if (m == mode) return name;
    return "?";
}

struct Fault {
    FaultMode mode = FaultMode::none;
    int status = 500;
    long long count = 0; // -1: until reset
    long long delay_ms = 0;

    json to_json() const {
        return {{"mode", fault_name(mode)}, {"status", status}, {"count", count}, {"delay_ms", delay_ms}};
    }
};

// Parses the body of POST /admin/fault; throws std::invalid_argument with the reason.
Fault parse_fault(const json& body) {
    if (!body.is_object()) throw std::invalid_argument("the body must be a JSON object");
    for (const auto& item : body.items())
        if (item.key() != "mode" && item.key() != "status" && item.key() != "count" && item.key() != "delay_ms")
            throw std::invalid_argument("unknown key: " + item.key());
    Fault f;
    const auto mode = body.find("mode");
    if (mode == body.end() || !mode->is_string()) throw std::invalid_argument("mode missing or not a string");
    bool known = false;
    for (const auto& [m, name] : k_fault_names)
        if (*mode == name) {
            f.mode = m;
            known = true;
        }
    if (!known) throw std::invalid_argument("unknown mode: " + mode->get<std::string>());
    const auto integer = [&](const char* key, long long fallback, long long min, long long max) {
        const auto it = body.find(key);
        if (it == body.end()) return fallback;
        if (!it->is_number_integer()) throw std::invalid_argument(std::string(key) + " is not an integer");
        const auto v = it->get<long long>();
        if (v < min || v > max) throw std::invalid_argument(std::string(key) + " is out of range");
        return v;
    };
    f.status = static_cast<int>(integer("status", 500, 400, 599));
    f.count = integer("count", 1, -1, 1'000'000'000);
    f.delay_ms = integer("delay_ms", f.mode == FaultMode::slow ? 1000 : 0, 0, 3'600'000);
    if (f.mode == FaultMode::none) f.count = 0;
    return f;
}

// Drops the connection under a request without an answer: the client reads EOF (no HTTP
// response, no TLS close_notify). httplib's own write of the response then fails quietly.
void drop_connection(const httplib::Request& req) {
    if (req.ssl != nullptr) ::shutdown(SSL_get_fd(req.ssl), SHUT_RDWR);
}

// True if the client of `req` has closed or reset its side of the connection.
bool client_gone(const httplib::Request& req) {
    if (req.ssl == nullptr) return false;
    pollfd pfd{SSL_get_fd(req.ssl), POLLRDHUP, 0};
    return ::poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

// ---------------------------------------------------------------------------------------------
// Answers

struct Reply {
    int status = 200;
    json body;
};

// The error body of `format`: ours for JSON Lines, Splunk's {"text","code"} for HEC.
Reply error_reply(Format format, int status, const char* code, int hec_code, const std::string& message) {
    if (format == Format::hec) return {status, {{"text", message}, {"code", hec_code}}};
    return {status, {{"error", {{"code", code}, {"message", message}}}}};
}

Reply invalid_batch(Format format, const BatchError& e) {
    if (format == Format::hec) {
        return {400,
                {{"text", "Invalid data format: event " + std::to_string(e.number) + ": " + e.message},
                 {"code", 6},
                 {"invalid-event-number", e.number - 1}}};
    }
    return error_reply(format, 400, "invalid_request", 0, "line " + std::to_string(e.number) + ": " + e.message);
}

Reply fault_reply(Format format, int status) {
    return error_reply(format, status, "fault_injected", status == 503 ? 9 : 8,
                       "injected fault: status " + std::to_string(status));
}

// SECURITY NOTE: compared in constant time, as a real store must; the token is never logged.
bool token_matches(std::string_view given, const std::string& expected) {
    return given.size() == expected.size() && CRYPTO_memcmp(given.data(), expected.data(), given.size()) == 0;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

// Returns the 401 to send, or nullopt when `req` carries `SCHEME token` (Bearer for JSON Lines,
// Splunk for HEC) with the configured token.
std::optional<Reply> check_token(Format format, const httplib::Request& req, const std::string& token) {
    if (token.empty()) return std::nullopt;
    const std::string_view scheme = format == Format::hec ? "Splunk" : "Bearer";
    if (!req.has_header("Authorization"))
        return error_reply(format, 401, "unauthorized", 2,
                           format == Format::hec ? "Token is required" : "missing bearer token");
    const std::string value = req.get_header_value("Authorization");
    const std::string_view v = value;
    if (v.size() > scheme.size() && iequals(v.substr(0, scheme.size()), scheme) && v[scheme.size()] == ' ' &&
        token_matches(v.substr(scheme.size() + 1), token))
        return std::nullopt;
    return error_reply(format, 401, "unauthorized", 4, format == Format::hec ? "Invalid token" : "invalid token");
}

bool is_ndjson(const httplib::Request& req) {
    std::string type = req.get_header_value("Content-Type");
    type = type.substr(0, type.find(';'));
    while (!type.empty() && type.back() == ' ') type.pop_back();
    return iequals(type, "application/x-ndjson");
}

// ---------------------------------------------------------------------------------------------
// The server state and handlers. Thread-safe: one mutex guards everything below.

struct Stats {
    unsigned long long batches = 0, accepted = 0, duplicates = 0, rejected = 0, faults_served = 0, calls = 0;
};

// What one HTTP call did, for the log line.
struct Outcome {
    int status = 0; // 0: the connection was dropped without an answer
    std::size_t events = 0, accepted = 0, duplicates = 0;
    const char* fault = nullptr;
};

class AuditStore {
public:
    explicit AuditStore(const Options& options) : m_options(options), m_file(options.data) {
        if (!options.log.empty()) {
            m_log_fd = ::open(options.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (m_log_fd < 0) throw StartupError("cannot open " + options.log + ": " + errno_text(errno));
        }
    }
    ~AuditStore() {
        if (m_log_fd >= 0) ::close(m_log_fd);
    }
    AuditStore(const AuditStore&) = delete;
    AuditStore& operator=(const AuditStore&) = delete;

    void add_ingest_routes(httplib::Server& server) {
        server.Post("/v1/events", [this](const httplib::Request& req, httplib::Response& res) {
            serve(req, res, [&] { return ingest(Format::json_lines, req, res); });
        });
        server.Post("/services/collector/event", [this](const httplib::Request& req, httplib::Response& res) {
            serve(req, res, [&] { return ingest(Format::hec, req, res); });
        });
    }

    void add_admin_routes(httplib::Server& server) {
        server.Get("/admin/events", [this](const httplib::Request& req, httplib::Response& res) {
            serve(req, res, [&] {
                std::lock_guard lock(m_mutex);
                return answer(res, {200, {{"events", m_file.events()}}});
            });
        });
        server.Get("/admin/stats", [this](const httplib::Request& req, httplib::Response& res) {
            serve(req, res, [&] {
                std::lock_guard lock(m_mutex);
                return answer(res, {200,
                                    {{"batches", m_stats.batches},
                                     {"accepted", m_stats.accepted},
                                     {"duplicates", m_stats.duplicates},
                                     {"rejected", m_stats.rejected},
                                     {"faults_served", m_stats.faults_served},
                                     {"calls", m_stats.calls}}});
            });
        });
        server.Get("/admin/fault", [this](const httplib::Request& req, httplib::Response& res) {
            serve(req, res, [&] {
                std::lock_guard lock(m_mutex);
                return answer(res, {200, {{"fault", m_fault.to_json()}}});
            });
        });
        // These read their body themselves: httplib refuses a POST with neither Content-Length
        // nor chunked encoding (what `curl -X POST URL` sends) before routing otherwise.
        server.Post("/admin/fault",
                    [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
                        serve(req, res, [&] { return set_fault(read_body(req, reader), res); });
                    });
        server.Post("/admin/reset",
                    [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
                        serve(req, res, [&] {
                            read_body(req, reader);
                            arm(Fault{});
                            return answer(res, {200, {{"fault", Fault{}.to_json()}}});
                        });
                    });
    }

    // httplib calls this for every answer >= 400. Ours already have a body and a log line; the
    // ones httplib makes itself (404, 413, a malformed request) get a JSON body and a log line.
    void add_error_handler(httplib::Server& server) {
        server.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
            if (!res.body.empty()) return;
            const char* code = res.status == 404 ? "not_found" : "invalid_request";
            const std::string message = res.status == 404 ? "no such endpoint" : "refused by the HTTP layer";
            res.set_content(json{{"error", {{"code", code}, {"message", message}}}}.dump(), k_json);
            Outcome outcome;
            outcome.status = res.status;
            log(req, outcome);
        });
    }

    // Called on SIGTERM/SIGINT. Returns holding the lock for good: no batch is between its
    // write and its fsync, and none can start, so the process may end at once.
    void freeze() {
        m_mutex.lock();
        m_stopping = true;
        m_cv.notify_all();
    }

private:
    // Runs one handler, turning any exception into a 500 JSON answer, and writes the log line.
    void serve(const httplib::Request& req, httplib::Response& res, const std::function<Outcome()>& handler) {
        Outcome outcome;
        try {
            outcome = handler();
        } catch (const std::exception& e) {
            outcome = answer(res, {500, {{"error", {{"code", "internal"}, {"message", e.what()}}}}});
        } catch (...) {
            outcome = answer(res, {500, {{"error", {{"code", "internal"}, {"message", "unknown exception"}}}}});
        }
        log(req, outcome);
    }

    static Outcome answer(httplib::Response& res, const Reply& reply) {
        res.status = reply.status;
        res.set_content(reply.body.dump(), k_json);
        Outcome o;
        o.status = reply.status;
        return o;
    }

    Outcome ingest(Format format, const httplib::Request& req, httplib::Response& res) {
        Fault fault;
        {
            std::lock_guard lock(m_mutex);
            ++m_stats.calls;
            fault = take_fault();
        }
        Outcome outcome;
        switch (fault.mode) {
        case FaultMode::status:
            outcome = answer(res, fault_reply(format, fault.status));
            break;
        case FaultMode::close:
            drop_connection(req);
            break;
        case FaultMode::bogus_ok:
            res.status = 200;
            res.set_content("<html><body>OK</body></html>\n", "text/html");
            outcome.status = 200;
            break;
        case FaultMode::hang:
            hang(req);
            drop_connection(req);
            break;
        default:
            outcome = store(format, req, res, fault);
            break;
        }
        if (fault.mode != FaultMode::none) outcome.fault = fault_name(fault.mode);
        return outcome;
    }

    // Auth, validation and the durable append; `fault` may delay or replace the 2xx answer.
    Outcome store(Format format, const httplib::Request& req, httplib::Response& res, const Fault& fault) {
        std::vector<json> events;
        std::optional<Reply> error = check_token(format, req, m_options.token);
        if (!error && format == Format::json_lines && !is_ndjson(req))
            error = error_reply(format, 415, "unsupported_media_type", 6, "Content-Type must be application/x-ndjson");
        if (!error && req.body.find_first_not_of(" \t\r\n") == std::string::npos)
            error = error_reply(format, 400, "invalid_request", 5, format == Format::hec ? "No data" : "empty batch");
        if (!error) {
            const auto bad = format == Format::hec ? parse_hec(req.body, events) : parse_json_lines(req.body, events);
            if (bad) error = invalid_batch(format, *bad);
        }
        if (error) {
            std::lock_guard lock(m_mutex);
            ++m_stats.rejected;
            return answer(res, *error);
        }

        EventFile::Appended added;
        try {
            std::lock_guard lock(m_mutex);
            added = m_file.append(events);
            m_stats.accepted += added.accepted;
            m_stats.duplicates += added.duplicates;
            if (fault.mode != FaultMode::status_after_store) ++m_stats.batches;
        } catch (const std::system_error& e) {
            return answer(res, error_reply(format, 500, "storage_failed", 8, e.what()));
        }

        Reply reply;
        if (fault.mode == FaultMode::status_after_store)
            reply = fault_reply(format, fault.status);
        else if (format == Format::hec)
            reply = {200, {{"text", "Success"}, {"code", 0}}};
        else
            reply = {200,
                     {{"accepted", added.accepted},
                      {"duplicates", added.duplicates},
                      {"stored", events.size()},
                      {"last_event_id", events.back().at("event_id")}}};
        if (fault.mode == FaultMode::slow) {
            std::unique_lock lock(m_mutex);
            m_cv.wait_for(lock, std::chrono::milliseconds(fault.delay_ms), [this] { return m_stopping; });
        }
        Outcome outcome = answer(res, reply);
        outcome.events = events.size();
        outcome.accepted = added.accepted;
        outcome.duplicates = added.duplicates;
        return outcome;
    }

    // Consumes one use of the armed fault. Caller holds m_mutex.
    Fault take_fault() {
        if (m_fault.mode == FaultMode::none || m_fault.count == 0) return Fault{};
        const Fault served = m_fault;
        if (m_fault.count > 0 && --m_fault.count == 0) m_fault = Fault{};
        ++m_stats.faults_served;
        return served;
    }

    // Blocks until a reset or a new fault, shutdown, or the client leaving.
    void hang(const httplib::Request& req) {
        std::unique_lock lock(m_mutex);
        const unsigned long long epoch = m_hang_epoch;
        while (!m_stopping && m_hang_epoch == epoch && !client_gone(req)) m_cv.wait_for(lock, k_hang_poll);
    }

    void arm(const Fault& fault) {
        std::lock_guard lock(m_mutex);
        m_fault = fault;
        ++m_hang_epoch;
        m_cv.notify_all();
    }

    // The request body, or "" when the request announces none (no Content-Length, not chunked).
    static std::string read_body(const httplib::Request& req, const httplib::ContentReader& reader) {
        std::string body;
        if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) return body;
        reader([&body](const char* data, std::size_t size) {
            if (body.size() + size > k_max_admin_body) return false;
            body.append(data, size);
            return true;
        });
        return body;
    }

    Outcome set_fault(const std::string& body, httplib::Response& res) {
        Fault fault;
        try {
            fault = parse_fault(json::parse(body));
        } catch (const std::exception& e) {
            return answer(res, {400, {{"error", {{"code", "invalid_request"}, {"message", e.what()}}}}});
        }
        arm(fault);
        return answer(res, {200, {{"fault", fault.to_json()}}});
    }

    void log(const httplib::Request& req, const Outcome& o) {
        if (m_log_fd < 0) return;
        std::string line = jitgate::text::escape_for_log(req.method) + " " + jitgate::text::escape_for_log(req.path) +
                           " " + (o.status == 0 ? std::string("-") : std::to_string(o.status)) +
                           " events=" + std::to_string(o.events) + " accepted=" + std::to_string(o.accepted) +
                           " duplicates=" + std::to_string(o.duplicates);
        if (o.fault != nullptr) line += std::string(" fault=") + o.fault;
        line += '\n';
        std::lock_guard lock(m_mutex);
        if (!write_all(m_log_fd, line)) std::perror("jitgate-test-audit-store: cannot write the log");
    }

    const Options& m_options;
    std::mutex m_mutex;
    std::condition_variable m_cv;
    EventFile m_file;
    Stats m_stats;
    Fault m_fault;
    unsigned long long m_hang_epoch = 0;
    bool m_stopping = false;
    int m_log_fd = -1;
};

// ---------------------------------------------------------------------------------------------
// Start-up

// Builds the TLS context. With --client-ca the handshake fails unless the client presents a
// certificate that CA signed (SSL_VERIFY_FAIL_IF_NO_PEER_CERT).
std::unique_ptr<httplib::SSLServer> make_https_server(const Options& o) {
    std::string error;
    auto server = std::make_unique<httplib::SSLServer>([&](SSL_CTX& ctx) {
        SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
        SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
        if (SSL_CTX_use_certificate_chain_file(&ctx, o.cert.c_str()) != 1) {
            error = "cannot load the certificate " + o.cert + ": " + openssl_errors();
        } else if (SSL_CTX_use_PrivateKey_file(&ctx, o.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
                   SSL_CTX_check_private_key(&ctx) != 1) {
            error = "cannot load the key " + o.key + " (or it does not match the certificate): " + openssl_errors();
        } else if (!o.client_ca.empty()) {
            STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.client_ca.c_str());
            if (SSL_CTX_load_verify_locations(&ctx, o.client_ca.c_str(), nullptr) != 1 || names == nullptr) {
                if (names != nullptr) sk_X509_NAME_pop_free(names, X509_NAME_free);
                error = "cannot load the client CA " + o.client_ca + ": " + openssl_errors();
            } else {
                SSL_CTX_set_client_CA_list(&ctx, names);
                SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
            }
        } else {
            SSL_CTX_set_verify(&ctx, SSL_VERIFY_NONE, nullptr);
        }
        return error.empty();
    });
    if (!server->is_valid())
        throw StartupError(error.empty() ? "cannot create the TLS context: " + openssl_errors() : error);
    return server;
}

void configure(httplib::Server& server, std::size_t threads, AuditStore& store) {
    server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server.set_payload_max_length(k_max_body);
    // httplib's default adds SO_REUSEPORT, which would let a second store share a port in use
    // instead of failing to start.
    server.set_socket_options([](int sock) {
        const int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    store.add_error_handler(server);
}

int run(int argc, char** argv) {
    const Options options = parse_options(argc, argv);

    // Block the stop signals before any thread exists; main takes them with sigwait().
    // SIGUSR1 is how a server thread reports that its listener died.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN); // a dropped connection must not kill the store

    AuditStore store(options);
    const auto https = make_https_server(options);
    configure(*https, k_ingest_threads, store);
    store.add_ingest_routes(*https);
    httplib::Server admin;
    configure(admin, k_admin_threads, store);
    store.add_admin_routes(admin);

    int port = options.port;
    if (port == 0)
        port = https->bind_to_any_port(options.listen);
    else if (!https->bind_to_port(options.listen, port))
        port = -1;
    if (port < 0) throw StartupError("cannot listen on " + options.listen + " port " + std::to_string(options.port));
    const int admin_port = admin.bind_to_any_port("127.0.0.1");
    if (admin_port < 0) throw StartupError("cannot listen on 127.0.0.1 for the admin API");

    if (!options.admin_port_file.empty()) write_port_file(options.admin_port_file, admin_port);
    if (!options.port_file.empty()) write_port_file(options.port_file, port);

    const auto serve = [](httplib::Server* server, const char* name) {
        if (!server->listen_after_bind())
            std::fprintf(stderr, "jitgate-test-audit-store: the %s listener failed\n", name);
        ::kill(::getpid(), SIGUSR1);
    };
    std::thread(serve, https.get(), "HTTPS").detach();
    std::thread(serve, &admin, "admin").detach();

    int sig = 0;
    while (sigwait(&stop_signals, &sig) != 0) {
    }
    // Ending at once rather than joining: hanging calls and idle keep-alive connections would
    // hold the thread pools for seconds, and with the lock held every accepted batch is durable.
    store.freeze();
    std::fflush(nullptr);
    std::_Exit(sig == SIGUSR1 ? 1 : 0);
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgate-test-audit-store: %s\n", e.what());
    } catch (...) {
        std::fprintf(stderr, "jitgate-test-audit-store: unknown error\n");
    }
    return 1;
}
