// daemon/audit/shipper.cpp — the background sender of the audit spool (see shipper.hpp).
#include "daemon/audit/shipper.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <random>
#include <system_error>
#include <utility>

#include <curl/curl.h>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"
#include "lib/curl_option.hpp"
#include "lib/https.hpp"

#ifndef JITGATE_VERSION
#define JITGATE_VERSION "0"
#endif

namespace jitgate::audit {
namespace {

using Json = nlohmann::json;

constexpr std::size_t k_max_response = 4096; // of a store's answer; only an error message needs it
constexpr std::size_t k_error_body_chars = 200;
constexpr auto k_idle_check = std::chrono::seconds(1); // fallback when no wake-up comes

// Someone else's text for a log line or status: cut, then escaped.
// Default length of someone else's text in a message (text::shown cuts it there).
constexpr std::size_t k_shown_bytes = 300;

std::string json_string(const std::string& s) {
    return Json(s).dump(-1, ' ', false, Json::error_handler_t::replace);
}

// libcurl callbacks: C ABI, so nothing may escape them.
std::size_t on_body(char* data, std::size_t size, std::size_t nmemb, void* user) noexcept {
    const std::size_t n = size * nmemb;
    try {
        auto* out = static_cast<std::string*>(user);
        if (out != nullptr && out->size() < k_max_response)
            out->append(data, std::min(n, k_max_response - out->size()));
    } catch (...) {
        // Only the error text is lost; the status code still decides.
    }
    return n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) noexcept {
    const auto* stop = static_cast<const std::atomic<bool>*>(user);
    return stop != nullptr && stop->load() ? 1 : 0; // non-zero aborts the transfer
}

struct CurlHeaders {
    curl_slist* list = nullptr;
    ~CurlHeaders() { curl_slist_free_all(list); }
    CurlHeaders() = default;
    CurlHeaders(const CurlHeaders&) = delete;
    CurlHeaders& operator=(const CurlHeaders&) = delete;
    void add(const std::string& h) {
        curl_slist* next = curl_slist_append(list, h.c_str());
        if (next == nullptr) throw std::bad_alloc();
        list = next;
    }
};

} // namespace

std::optional<Format> parse_format(std::string_view name) {
    if (name == "jsonl") return Format::jsonl;
    if (name == "splunk_hec") return Format::splunk_hec;
    return std::nullopt;
}

const char* to_string(Format format) noexcept {
    return format == Format::splunk_hec ? "splunk_hec" : "jsonl";
}

Batch read_batch(const std::string& dir, std::uint64_t after_seq, std::uint64_t durable_seq, const BatchLimits& limits,
                 const Cursor* hint) {
    Batch b;
    b.next = Cursor{after_seq + 1, 0, 0};
    if (durable_seq <= after_seq) return b;
    const auto segments = spool::list_segments(dir);
    if (segments.empty()) return b;

    std::size_t first = 0;
    std::uint64_t offset = 0;
    bool hinted = false;
    if (hint != nullptr && hint->next_seq == after_seq + 1) {
        for (std::size_t i = 0; i < segments.size(); ++i) {
            if (segments[i].first_seq == hint->segment_first_seq && hint->offset <= segments[i].bytes) {
                first = i;
                offset = hint->offset;
                hinted = true;
                break;
            }
        }
    }
    if (!hinted) { // the last segment starting at or before the wanted seq holds it
        for (std::size_t i = 0; i < segments.size(); ++i)
            if (segments[i].first_seq <= after_seq + 1) first = i;
    }
    const std::size_t max_events = std::max<std::size_t>(limits.max_events, 1);
    std::uint64_t expected = after_seq + 1;
    for (std::size_t i = first; i < segments.size(); ++i, offset = 0) {
        const spool::Segment& seg = segments[i];
        const bool newest = i + 1 == segments.size();
        LineReader reader(seg.path, offset);
        LineReader::Line line;
        while (reader.next(line)) {
            if (!line.complete) {
                // In the newest segment: a line being written (never a durable one).
                if (newest) return b;
                b.gaps.push_back(seg.path + " ends with " + text::plural(line.text.size(), "byte", "bytes") +
                                 " without a newline (skipped)");
                break;
            }
            const std::string where = seg.path + " at offset " + std::to_string(line.offset);
            const Json e = Json::parse(line.text, nullptr, false);
            if (e.is_discarded() || !e.is_object() || !e.contains("seq") || !e["seq"].is_number_unsigned())
                throw Error(ErrorCode::internal, where,
                            "not an audit event with a seq; cannot ship past it (run `jitgatectl audit verify`)");
            const auto seq = e["seq"].get<std::uint64_t>();
            const std::uint64_t after_line = line.offset + line.text.size() + 1;
            if (seq <= after_seq) { // already shipped (a scan from the start of the segment)
                if (b.empty()) b.next = Cursor{after_seq + 1, seg.first_seq, after_line};
                continue;
            }
            if (!b.empty() && seq <= b.last_seq)
                throw Error(ErrorCode::internal, where,
                            "seq " + std::to_string(seq) + " after " + std::to_string(b.last_seq) +
                                " (out of order or repeated); cannot ship past it (run `jitgatectl audit verify`)");
            if (seq > durable_seq) return b;
            const std::uint64_t size = line.text.size() + 1;
            if (!b.empty() && (b.lines.size() >= max_events || b.bytes + size > limits.max_bytes)) return b;
            if (seq != expected)
                b.gaps.push_back("seq " + std::to_string(seq) + " follows " + std::to_string(expected - 1) + " (" +
                                 text::plural(seq - expected, "event", "events") + " missing)");
            if (b.empty()) {
                b.first_seq = seq;
                if (const auto t = e.find("time"); t != e.end() && t->is_string()) b.first_time = t->get<std::string>();
            }
            const auto id = e.find("event_id");
            b.last_event_id = id != e.end() && id->is_string() ? id->get<std::string>() : std::string();
            b.lines.push_back(std::move(line.text));
            b.last_seq = seq;
            b.bytes += size;
            b.next = Cursor{seq + 1, seg.first_seq, after_line};
            expected = seq + 1;
        }
    }
    return b;
}

std::optional<std::string> hec_time(const std::string& rfc3339) {
    std::tm tm{};
    const char* end = ::strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == nullptr) return std::nullopt;
    int ms = 0;
    if (*end == '.') {
        ++end;
        int digits = 0;
        for (; *end >= '0' && *end <= '9'; ++end, ++digits)
            if (digits < 3) ms = ms * 10 + (*end - '0');
        if (digits == 0) return std::nullopt;
        for (; digits < 3; ++digits) ms *= 10;
    }
    if (std::string_view(end) != "Z") return std::nullopt;
    const std::time_t t = ::timegm(&tm);
    std::array<char, 48> buf{};
    std::snprintf(buf.data(), buf.size(), "%lld.%03d", static_cast<long long>(t), ms);
    return std::string(buf.data());
}

std::string hec_event(const std::string& line, const HecFields& fields) {
    const Json e = Json::parse(line, nullptr, false);
    if (e.is_discarded() || !e.is_object())
        throw Error(ErrorCode::internal, "splunk_hec", "a spool line is not a JSON object");
    std::string out = "{";
    if (const auto t = e.find("time"); t != e.end() && t->is_string())
        if (const auto when = hec_time(t->get<std::string>())) out += "\"time\":" + *when + ",";
    if (const auto h = e.find("host"); h != e.end() && h->is_string())
        out += "\"host\":" + json_string(h->get<std::string>()) + ",";
    out += "\"source\":" + json_string(fields.source) + ",\"sourcetype\":" + json_string(fields.sourcetype) + ",";
    if (!fields.index.empty()) out += "\"index\":" + json_string(fields.index) + ",";
    // The event is the spool line byte for byte, so its hash can still be checked.
    out += "\"event\":" + line + "}";
    return out;
}

std::string format_body(Format format, const Batch& batch, const HecFields& fields) {
    std::string body;
    body.reserve(batch.bytes + (format == Format::splunk_hec ? batch.lines.size() * 160 : 0));
    for (const auto& line : batch.lines) {
        body += format == Format::splunk_hec ? hec_event(line, fields) : line;
        body += '\n';
    }
    return body;
}

std::string check_acknowledgement(Format format, const Batch& batch, const std::string& response) {
    try {
        const Json j = Json::parse(response, nullptr, false);
        if (j.is_discarded() || !j.is_object()) return "the answer is not a JSON object";
        if (format == Format::splunk_hec) {
            const auto code = j.find("code");
            const auto text = j.find("text");
            if (code == j.end() || !code->is_number_integer() || code->get<std::int64_t>() != 0 || text == j.end() ||
                *text != "Success")
                return "the answer is not HEC's {\"text\":\"Success\",\"code\":0}";
            return {};
        }
        const auto stored = j.find("stored");
        const auto last = j.find("last_event_id");
        if (stored == j.end() || !stored->is_number_unsigned() || last == j.end() || !last->is_string())
            return "the answer has no \"stored\" count and \"last_event_id\"";
        if (stored->get<std::uint64_t>() != batch.lines.size())
            return "the store says it stored " + stored->dump() + " events of a batch of " +
                   std::to_string(batch.lines.size());
        if (batch.last_event_id.empty() || last->get<std::string>() != batch.last_event_id)
            return "the store acknowledges last_event_id " + text::shown(last->get<std::string>(), 80) +
                   ", the batch ends with " + text::shown(batch.last_event_id, 80);
        return {};
    } catch (const std::exception& e) {
        return std::string("cannot read the answer: ") + text::shown(e.what(), k_shown_bytes);
    }
}

std::string read_store_token(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorCode::bad_input, path, "cannot read the audit store token file");
    std::string token;
    std::getline(in, token);
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) token.pop_back();
    const auto start = token.find_first_not_of(" \t");
    token.erase(0, start == std::string::npos ? token.size() : start);
    if (token.empty()) throw Error(ErrorCode::bad_input, path, "the audit store token file is empty");
    // SECURITY NOTE: the token goes into an HTTP header; a control character could inject
    // another one. The token itself is never part of a message.
    for (char c : token) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F)
            throw Error(ErrorCode::bad_input, path, "the audit store token holds a control character");
    }
    return token;
}

StoreAnswer judge_store_answer(Format format, const Batch& batch, long http_status, const std::string& body,
                               const std::string& url) {
    if (http_status >= 200 && http_status < 300) {
        // SECURITY NOTE: a 2xx alone is not an acknowledgement: a captive portal, a proxy's
        // error page or a misrouted URL answers 200 too, and trusting it would drain the
        // spool into nothing. Only the store's own acknowledgement of this batch counts.
        const std::string why = check_acknowledgement(format, batch, body);
        if (why.empty()) return StoreAnswer{true, {}, false};
        return StoreAnswer{false,
                           "HTTP " + std::to_string(http_status) + " from " + text::shown(url, k_shown_bytes) +
                               " without an acknowledgement of the batch (" + why +
                               "): " + text::shown(body, k_error_body_chars),
                           true};
    }
    return StoreAnswer{false,
                       "HTTP " + std::to_string(http_status) + " from " + text::shown(url, k_shown_bytes) + ": " +
                           text::shown(body, k_error_body_chars),
                       false};
}

std::chrono::milliseconds backoff_delay(std::chrono::milliseconds retry_min, std::chrono::milliseconds retry_max,
                                        std::uint64_t failures, double unit) noexcept {
    const double cap = static_cast<double>(std::max<std::int64_t>(retry_max.count(), 0));
    double base = static_cast<double>(std::max<std::int64_t>(retry_min.count(), 0));
    for (std::uint64_t i = 1; i < failures && base < cap; ++i) base *= 2;
    base = std::min(base, cap);
    if (!(unit >= 0.0)) unit = 0.0; // also NaN
    unit = std::min(unit, 1.0);
    const double d = std::min(base * (0.75 + 0.5 * unit), cap);
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(d)));
}

Shipper::Shipper(ShipperOptions options, Auditor& auditor) : m_options(std::move(options)), m_auditor(auditor) {
    const std::string& url = m_options.url;
    const bool https = url.starts_with("https://");
    if (!https && !(m_options.allow_plain_http && url.starts_with("http://")))
        throw Error(ErrorCode::bad_input, "audit.store.url",
                    "must start with https:// (got " + text::shown(url, k_shown_bytes) + ")");
    if (m_options.client_cert.empty() != m_options.client_key.empty())
        throw Error(ErrorCode::bad_input, "audit.store", "client_cert and client_key go together");
    if (m_options.batch_events == 0 || m_options.batch_bytes == 0)
        throw Error(ErrorCode::bad_input, "audit.store", "batch_events and batch_bytes must be positive");
    if (m_options.retry_min.count() <= 0) m_options.retry_min = std::chrono::milliseconds(1);
    if (m_options.retry_max < m_options.retry_min) m_options.retry_max = m_options.retry_min;
    if (!m_options.token_file.empty()) m_token = read_store_token(m_options.token_file);
}

Shipper::~Shipper() {
    stop();
    release_transfer();
}

void Shipper::start() {
    if (m_started) return;
    if (m_curl == nullptr) prepare_transfer(); // a refused option stops the start-up here
    const std::string& dir = m_auditor.spool_dir();
    std::uint64_t from = 0;
    try {
        if (const auto a = spool::read_anchor(dir)) from = a->seq;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgated: audit: %s\n", text::shown(e.what(), 1000).c_str());
    }
    const std::uint64_t anchor_seq = from;
    try {
        if (const auto s = spool::read_shipped(dir)) from = std::max(from, s->seq);
    } catch (const std::exception& e) {
        // Starting over after the anchor resends events the store already has; it
        // deduplicates them by event_id. Nothing is skipped.
        std::fprintf(stderr, "jitgated: audit: %s; shipping resumes after seq %llu (the store deduplicates)\n",
                     text::shown(e.what(), 1000).c_str(), static_cast<unsigned long long>(from));
    }
    if (from > m_auditor.last_seq()) {
        std::fprintf(stderr,
                     "jitgated: audit: shipped.json says seq %llu reached the store, but the spool ends at seq %llu; "
                     "shipping resumes after seq %llu\n",
                     static_cast<unsigned long long>(from), static_cast<unsigned long long>(m_auditor.last_seq()),
                     static_cast<unsigned long long>(anchor_seq));
        from = anchor_seq;
    }
    m_shipped_seq.store(from, std::memory_order_release);
    try {
        m_sent_seq = spool::read_sent(dir).value_or(0);
    } catch (const std::exception&) {
        m_sent_seq = 0; // rewritten before the next batch leaves
    }
    m_stop.store(false);
    m_auditor.set_durable_hook([this](std::uint64_t durable) { notify(durable); });
    try {
        m_thread = std::thread(&Shipper::run, this);
    } catch (const std::system_error& e) {
        m_auditor.set_durable_hook(nullptr);
        throw Error(ErrorCode::internal, "audit shipper", std::string("cannot start its thread: ") + e.what());
    }
    m_started = true;
}

void Shipper::stop() noexcept {
    if (!m_started) return;
    m_stop.store(true);
    try {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_wake = true;
    } catch (...) {
        // The flag alone stops the thread within a second.
    }
    m_wake_cv.notify_all();
    try {
        if (m_thread.joinable()) m_thread.join();
        m_auditor.set_durable_hook(nullptr);
    } catch (...) {
        // join() throws only for a thread that is not joinable.
    }
    m_started = false;
}

void Shipper::notify(std::uint64_t) noexcept {
    try {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_wake = true;
    } catch (...) {
        return; // the thread looks again within a second anyway
    }
    m_wake_cv.notify_one();
}

nlohmann::json Shipper::status() const {
    Json s = m_auditor.stats();
    const std::uint64_t shipped = shipped_seq();
    const std::uint64_t last = s.value("last_seq", std::uint64_t{0});
    const auto opt = [](const std::string& v) { return v.empty() ? Json(nullptr) : Json(v); };
    std::lock_guard<std::mutex> lock(m_mutex);
    s["shipped_seq"] = shipped;
    s["unsent_events"] = last > shipped ? last - shipped : 0;
    s["shipped_this_run"] = m_shipped_this_run;
    s["batches_this_run"] = m_batches_this_run;
    s["oldest_unsent_time"] = last > shipped ? opt(m_oldest_unsent_time) : Json(nullptr);
    s["last_error"] = opt(m_last_error);
    s["last_error_time"] = opt(m_last_error_time);
    s["last_success_time"] = opt(m_last_success_time);
    s["consecutive_failures"] = m_consecutive_failures;
    s["store"] = m_options.url;
    s["format"] = to_string(m_options.format);
    s["running"] = m_running;
    return s;
}

void Shipper::run() noexcept {
    try {
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_running = true;
        }
        std::uint64_t crashes = 0;
        while (!m_stop.load()) {
            try {
                ship_loop();
            } catch (const std::exception& e) {
                // Not expected (ship_loop handles what it meets); never give up shipping.
                note_failure(
                    PostResult{false, 0, std::string("the audit shipper failed: ") + text::shown(e.what(), 1000)});
                if (!sleep_for(backoff_delay(m_options.retry_min, m_options.retry_max, ++crashes, 0.5))) break;
            }
        }
        std::lock_guard<std::mutex> lock(m_mutex);
        m_running = false;
    } catch (...) {
        std::fprintf(stderr, "jitgated: audit: the shipper thread ended unexpectedly\n");
    }
}

void Shipper::ship_loop() {
    const std::string& dir = m_auditor.spool_dir();
    const BatchLimits limits{m_options.batch_events, m_options.batch_bytes};
    const HecFields hec{m_options.hec_source, m_options.hec_sourcetype, m_options.hec_index};
    std::mt19937_64 rng(std::random_device{}());
    std::uniform_real_distribution<double> jitter(0.0, 1.0);
    std::optional<Batch> batch;
    std::string body;
    std::optional<Cursor> cursor;

    // Segments acknowledged in an earlier run may still wait for deletion.
    try {
        m_auditor.discard_shipped(shipped_seq());
    } catch (const std::exception& e) {
        log(k_severity_err, text::shown(e.what(), 1000));
    }

    const auto back_off = [&] {
        std::uint64_t failures = 0;
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            failures = m_consecutive_failures;
        }
        return sleep_for(backoff_delay(m_options.retry_min, m_options.retry_max, failures, jitter(rng)));
    };

    while (!m_stop.load()) {
        if (!batch) {
            {
                std::unique_lock<std::mutex> lock(m_mutex);
                while (!m_stop.load() && m_auditor.durable_seq() <= shipped_seq()) {
                    m_wake = false;
                    m_wake_cv.wait_for(lock, k_idle_check, [&] { return m_wake || m_stop.load(); });
                }
            }
            if (m_stop.load()) break;
            const std::uint64_t shipped = shipped_seq();
            const std::uint64_t durable = m_auditor.durable_seq();
            try {
                Batch next = read_batch(dir, shipped, durable, limits, cursor ? &*cursor : nullptr);
                if (next.empty())
                    throw Error(ErrorCode::internal, dir,
                                "no event after seq " + std::to_string(shipped) + " in the audit spool, although seq " +
                                    std::to_string(durable) + " is durable (run `jitgatectl audit verify`)");
                for (const auto& gap : next.gaps)
                    log(k_severity_err, "audit spool " + text::shown(dir, k_shown_bytes) + ": " +
                                            text::shown(gap, k_shown_bytes) +
                                            "; shipping on (the store will miss them)");
                body = format_body(m_options.format, next, hec);
                batch = std::move(next);
                std::lock_guard<std::mutex> lock(m_mutex);
                m_oldest_unsent_time = batch->first_time;
            } catch (const std::exception& e) {
                cursor.reset();
                note_failure(PostResult{false, 0, text::shown(e.what(), 1000)});
                if (!back_off()) break;
                continue;
            }
        }
        if (batch->last_seq > m_sent_seq) {
            // SECURITY NOTE: recorded before the events leave the host: the store may keep a
            // batch whose acknowledgement is lost, and after a cut of the spool the Auditor must
            // not issue those seqs again. No record, no sending.
            try {
                spool::write_sent(dir, batch->last_seq);
                m_sent_seq = batch->last_seq;
            } catch (const std::exception& e) {
                note_failure(PostResult{false, 0, text::shown(e.what(), 1000)});
                if (!back_off()) break;
                continue;
            }
        }
        const PostResult r = post(body, *batch);
        if (r.ok) {
            note_success(*batch);
            cursor = batch->next;
            batch.reset();
            body.clear();
            continue;
        }
        if (m_stop.load()) break; // the transfer was aborted: the batch goes again next start
        note_failure(r);
        if (!back_off()) break;
    }
}

void Shipper::prepare_transfer() {
    CURL* c = curl_easy_init();
    if (c == nullptr) throw Error(ErrorCode::internal, "libcurl", "curl_easy_init failed");
    m_curl = c;
    CurlHeaders headers;
    try {
        headers.add(m_options.format == Format::splunk_hec ? "Content-Type: application/json"
                                                           : "Content-Type: application/x-ndjson");
        headers.add("Expect:"); // no 100-continue round trip before each batch
        if (!m_token.empty())
            headers.add(std::string("Authorization: ") +
                        (m_options.format == Format::splunk_hec ? "Splunk " : "Bearer ") + m_token);
        m_headers = headers.list;
        headers.list = nullptr;
        set_options(c, static_cast<curl_slist*>(m_headers));
    } catch (...) {
        release_transfer();
        throw;
    }
}

void Shipper::release_transfer() noexcept {
    if (m_curl != nullptr) curl_easy_cleanup(static_cast<CURL*>(m_curl));
    curl_slist_free_all(static_cast<curl_slist*>(m_headers));
    m_curl = nullptr;
    m_headers = nullptr;
}

void Shipper::set_options(void* handle, void* header_list) {
    CURL* c = static_cast<CURL*>(handle);
    JITGATE_SETOPT(c, CURLOPT_URL, m_options.url.c_str());
    JITGATE_SETOPT(c, CURLOPT_POST, 1L);
    JITGATE_SETOPT(c, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(header_list));
    // SECURITY NOTE: https only (plain http only for a test's loopback peer), no redirects,
    // certificate and host name verified against the pinned ca_file alone, TLS 1.2 at least:
    // the one policy of lib/https.hpp.
    https::Policy policy;
    policy.ca_file = m_options.ca_file;
    policy.client_cert = m_options.client_cert;
    policy.client_key = m_options.client_key;
    policy.proxy = m_options.proxy; // "" disables proxies, including the http(s)_proxy environment variables
    policy.connect_timeout = m_options.connect_timeout;
    policy.timeout = m_options.timeout;
    policy.allow_plain_http = m_options.allow_plain_http;
    https::apply_policy(c, policy);
    JITGATE_SETOPT(c, CURLOPT_TCP_KEEPALIVE, 1L);
    JITGATE_SETOPT(c, CURLOPT_USERAGENT, "jitgated/" JITGATE_VERSION);
    JITGATE_SETOPT(c, CURLOPT_NOPROGRESS, 0L);
    JITGATE_SETOPT(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    JITGATE_SETOPT(c, CURLOPT_XFERINFODATA, static_cast<void*>(&m_stop));
    JITGATE_SETOPT(c, CURLOPT_WRITEFUNCTION, on_body);
}

Shipper::PostResult Shipper::post(const std::string& body, const Batch& batch) {
    CURL* c = static_cast<CURL*>(m_curl);
    std::string response;
    std::array<char, CURL_ERROR_SIZE> errbuf{};
    CURLcode rc = CURLE_OK;
    long status = 0;
    // jsonl: the fixed headers plus the spool's newest durable seq as of now (a retry says how
    // far the spool has grown meanwhile). Never below the batch's own last seq.
    CurlHeaders with_seq;
    try {
        if (m_options.format == Format::jsonl) {
            for (const curl_slist* h = static_cast<const curl_slist*>(m_headers); h != nullptr; h = h->next)
                with_seq.add(h->data);
            with_seq.add(std::string(k_spool_seq_header) + ": " +
                         std::to_string(std::max(m_auditor.durable_seq(), batch.last_seq)));
            JITGATE_SETOPT(c, CURLOPT_HTTPHEADER, with_seq.list);
        }
        JITGATE_SETOPT(c, CURLOPT_POSTFIELDS, body.data());
        JITGATE_SETOPT(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
        JITGATE_SETOPT(c, CURLOPT_WRITEDATA, static_cast<void*>(&response));
        JITGATE_SETOPT(c, CURLOPT_ERRORBUFFER, errbuf.data());
        rc = curl_easy_perform(c);
        if (rc == CURLE_OK && curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) status = 0;
    } catch (const std::exception& e) {
        rc = CURLE_BAD_FUNCTION_ARGUMENT;
        std::snprintf(errbuf.data(), errbuf.size(), "%s", e.what());
    }
    // Nothing may point at this frame's locals after it returns. Unsetting a pointer option
    // cannot be refused; if it were, the handle must not be used again.
    if (curl_easy_setopt(c, CURLOPT_WRITEDATA, nullptr) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, nullptr) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(m_headers)) != CURLE_OK) {
        release_transfer();
        throw Error(ErrorCode::internal, "libcurl", "refuses to unset the options of the last transfer");
    }

    if (rc != CURLE_OK) {
        if (rc == CURLE_ABORTED_BY_CALLBACK && m_stop.load()) return PostResult{false, 0, "stopped"};
        const std::string detail = errbuf[0] != '\0' ? std::string(errbuf.data()) : curl_easy_strerror(rc);
        return PostResult{false, 0,
                          "cannot reach " + text::shown(m_options.url, k_shown_bytes) + ": " +
                              text::shown(detail, k_shown_bytes)};
    }
    StoreAnswer answer = judge_store_answer(m_options.format, batch, status, response, m_options.url);
    return PostResult{answer.ok, status, std::move(answer.error), answer.unacknowledged};
}

void Shipper::note_success(const Batch& batch) {
    const std::string now = rfc3339_now();
    const std::string& dir = m_auditor.spool_dir();
    try {
        spool::write_shipped(dir, spool::Shipped{batch.last_seq, now});
    } catch (const std::exception& e) {
        // Progress lives on in memory; after a restart the batch is sent again and the store
        // drops the duplicates by event_id.
        log(k_severity_err, text::shown(e.what(), 1000));
    }
    m_shipped_seq.store(batch.last_seq, std::memory_order_release);
    std::uint64_t failures = 0;
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_shipped_this_run += batch.lines.size();
        ++m_batches_this_run;
        failures = m_consecutive_failures;
        m_consecutive_failures = 0;
        m_last_success_time = now;
        m_oldest_unsent_time.clear();
        m_last_loud_error.clear();
    }
    if (failures > 0)
        log(k_severity_notice, "the audit store " + text::shown(m_options.url, k_shown_bytes) +
                                   " accepts events again (after " + text::plural(failures, "failure", "failures") +
                                   "; shipped up to seq " + std::to_string(batch.last_seq) + ")");
    try {
        m_auditor.discard_shipped(batch.last_seq);
    } catch (const std::exception& e) {
        log(k_severity_err, text::shown(e.what(), 1000));
    }
}

void Shipper::note_failure(const PostResult& r) {
    const std::string now = rfc3339_now();
    bool first = false;
    bool loud = false;
    std::uint64_t failures = 0;
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        failures = ++m_consecutive_failures;
        first = failures == 1;
        m_last_error = r.error;
        m_last_error_time = now;
        // A 4xx other than 408/429 will not fix itself: the store rejects what we send
        // (token, format, index). It is still retried, never dropped, but said loudly.
        if (((r.http_status >= 400 && r.http_status < 500 && r.http_status != 408 && r.http_status != 429) ||
             r.unacknowledged) &&
            r.error != m_last_loud_error) {
            m_last_loud_error = r.error;
            loud = true;
        }
    }
    if (loud)
        log(k_severity_err,
            "the audit store rejects events: " + r.error +
                "; they stay in the spool and are retried (check the store's url, token, format and index)");
    else if (first)
        log(k_severity_warning, "cannot ship audit events: " + r.error + "; they stay in the spool and are retried");
    else
        std::fprintf(stderr, "jitgated: audit: shipping failed (%llu in a row): %s\n",
                     static_cast<unsigned long long>(failures), text::printable(r.error).c_str());
}

bool Shipper::sleep_for(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(m_mutex);
    return !m_wake_cv.wait_for(lock, d, [&] { return m_stop.load(); });
}

void Shipper::log(int severity, const std::string& message) noexcept {
    try {
        std::fprintf(stderr, "jitgated: audit: %s\n", text::printable(message).c_str());
        const Options& o = m_auditor.options();
        if (o.syslog) send_syslog_message(o.syslog_socket, severity, message);
    } catch (...) {
        // Logging must never stop the shipper.
    }
}

} // namespace jitgate::audit
