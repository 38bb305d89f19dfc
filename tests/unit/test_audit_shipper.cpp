// Unit tests for daemon/audit/shipper: the batch reader, the JSON lines and Splunk HEC bodies, the
// backoff, and the sender's loop against a plain-HTTP peer on loopback (the real HTTPS store,
// with its pinned CA and mTLS, is the integration tests' job).
#include "daemon/audit/shipper.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "file_helpers.hpp"
#include "jitgate/error.hpp"
#include "jitgate/text.hpp"

namespace {

using jitgate::Error;
using jitgate::ErrorCode;
using namespace jitgate::audit;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

using jitgate::test::read_all;
using jitgate::test::split_lines;
using jitgate::test::write_all;

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::vector<std::uint64_t> seqs_of(const Batch& b) {
    std::vector<std::uint64_t> out;
    for (const auto& l : b.lines) out.push_back(Json::parse(l)["seq"].get<std::uint64_t>());
    return out;
}

std::vector<std::uint64_t> range(std::uint64_t from, std::uint64_t to) {
    std::vector<std::uint64_t> out;
    for (auto i = from; i <= to; ++i) out.push_back(i);
    return out;
}

template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit = 10s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return pred();
}

// A plain-HTTP peer on 127.0.0.1 standing in for the store: answers each request with the
// next status of its script (the last one repeats), or never answers (hang). A 2xx carries the
// store's acknowledgement of the batch; k_bogus_200 answers 200 with an HTML page instead.
class FakeStore {
public:
    static constexpr int k_bogus_200 = -200;

    struct Request {
        std::string head; // request line and headers, lower-cased
        std::string body;
    };

    explicit FakeStore(std::vector<int> script, std::string error_body = "try later", bool hang = false)
        : m_script(std::move(script)), m_error_body(std::move(error_body)), m_hang(hang) {
        m_listen = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (m_listen < 0 || ::bind(m_listen, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
            ::listen(m_listen, 8) != 0 || ::getsockname(m_listen, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
            throw std::runtime_error(std::string("fake store: ") + std::strerror(errno));
        m_port = ntohs(addr.sin_port);
        m_thread = std::thread([this] { serve(); });
    }
    ~FakeStore() {
        m_stop = true;
        m_thread.join();
        ::close(m_listen);
    }
    FakeStore(const FakeStore&) = delete;
    FakeStore& operator=(const FakeStore&) = delete;

    std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port) + "/v1/events"; }
    std::vector<Request> requests() const {
        std::lock_guard<std::mutex> lock(m_mutex);
        return m_requests;
    }

private:
    // Waits until fd is readable, or the store stops. Returns false when stopping.
    bool wait_readable(int fd) {
        while (!m_stop) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 50) > 0) return true;
        }
        return false;
    }

    void serve() {
        while (wait_readable(m_listen)) {
            const int fd = ::accept4(m_listen, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            handle(fd);
            ::close(fd);
        }
    }

    void handle(int fd) {
        std::string data;
        std::size_t head_end = std::string::npos;
        std::size_t content_length = 0;
        char buf[65536];
        while (wait_readable(fd)) {
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) return;
            data.append(buf, static_cast<std::size_t>(n));
            if (head_end == std::string::npos && (head_end = data.find("\r\n\r\n")) != std::string::npos) {
                const std::string head = lower(data.substr(0, head_end));
                const auto cl = head.find("content-length:");
                if (cl != std::string::npos) content_length = std::strtoul(head.c_str() + cl + 15, nullptr, 10);
            }
            if (head_end != std::string::npos && data.size() >= head_end + 4 + content_length) break;
        }
        if (head_end == std::string::npos) return;
        int status = 0;
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_requests.push_back(Request{lower(data.substr(0, head_end)), data.substr(head_end + 4, content_length)});
            status = m_script.empty() ? 200 : m_script[std::min(m_next++, m_script.size() - 1)];
        }
        if (m_hang) {
            while (wait_readable(fd)) {
                if (::recv(fd, buf, sizeof buf, 0) <= 0) return;
            }
            return;
        }
        std::string body = m_error_body;
        if (status == k_bogus_200) {
            status = 200;
            body = "<html><body>OK</body></html>";
        } else if (status / 100 == 2) {
            body = acknowledgement(lower(data.substr(0, head_end)), data.substr(head_end + 4, content_length));
        }
        const std::string reply = "HTTP/1.1 " + std::to_string(status) +
                                  " X\r\nContent-Length: " + std::to_string(body.size()) +
                                  "\r\nConnection: close\r\n\r\n" + body;
        (void)::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    }

    // What a real store answers: HEC's Success, or the count and last event_id of a JSON-lines batch.
    static std::string acknowledgement(const std::string& head, const std::string& body) {
        if (head.find("content-type: application/json") != std::string::npos) return R"({"text":"Success","code":0})";
        const auto lines = split_lines(body);
        const std::string last = lines.empty() ? std::string() : Json::parse(lines.back()).value("event_id", "");
        return Json{{"stored", lines.size()}, {"last_event_id", last}}.dump();
    }

    std::vector<int> m_script;
    std::string m_error_body;
    bool m_hang;
    int m_listen = -1;
    int m_port = 0;
    std::atomic<bool> m_stop{false};
    std::thread m_thread;
    mutable std::mutex m_mutex;
    std::vector<Request> m_requests;
    std::size_t m_next = 0;
};

class ShipperTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string templ = ::testing::TempDir() + "jitgate-shipper-XXXXXX";
        ASSERT_NE(::mkdtemp(templ.data()), nullptr) << std::strerror(errno);
        m_dir = templ;
        m_spool = m_dir + "/spool";
        fs::create_directory(m_spool);
        m_token = m_dir + "/token";
        write_all(m_token, "s3cret-token\n");
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(m_dir, ec);
    }

    Options auditor_options(std::uint64_t segment_bytes = 8 << 20) const {
        Options o;
        o.spool_dir = m_spool;
        o.host = "web1";
        o.syslog = false;
        o.segment_bytes = segment_bytes;
        return o;
    }

    ShipperOptions shipper_options(const std::string& url) const {
        ShipperOptions o;
        o.url = url;
        o.allow_plain_http = true;
        o.token_file = m_token;
        o.retry_min = 20ms;
        o.retry_max = 100ms;
        o.connect_timeout = 2s;
        o.timeout = 5s;
        return o;
    }

    static void record(Auditor& a, int n) {
        for (int i = 0; i < n; ++i)
            a.record({{"type", type::command_finished},
                      {"user", "alice"},
                      {"argv", {"/usr/bin/id", std::to_string(i)}},
                      {"exit_status", 0}});
    }

    // Every event line the store received, in order.
    static std::vector<std::string> received_lines(const FakeStore& store) {
        std::vector<std::string> out;
        for (const auto& r : store.requests())
            for (auto& l : split_lines(r.body)) out.push_back(std::move(l));
        return out;
    }

    std::string m_dir, m_spool, m_token;
};

// --- read_batch ---

TEST_F(ShipperTest, ReadBatchStopsAtTheDurableSeq) {
    Auditor a(auditor_options());
    record(a, 5);
    const BatchLimits limits{500, 1 << 20};
    EXPECT_EQ(seqs_of(read_batch(m_spool, 0, 3, limits)), range(1, 3));
    EXPECT_TRUE(read_batch(m_spool, 3, 3, limits).empty());
    EXPECT_TRUE(read_batch(m_spool, 5, 5, limits).empty());
    const Batch b = read_batch(m_spool, 3, 5, limits);
    EXPECT_EQ(seqs_of(b), range(4, 5));
    EXPECT_EQ(b.first_seq, 4u);
    EXPECT_EQ(b.last_seq, 5u);
    EXPECT_EQ(b.first_time, Json::parse(b.lines[0])["time"]);
    EXPECT_TRUE(b.gaps.empty());
}

TEST_F(ShipperTest, ReadBatchNeverReadsAnUnsyncedLine) {
    Auditor a(auditor_options());
    record(a, 2);
    a.set_group_commit(true);
    record(a, 3); // written, not yet durable
    EXPECT_EQ(a.durable_seq(), 2u);
    EXPECT_EQ(seqs_of(read_batch(m_spool, 0, a.durable_seq(), {})), range(1, 2));
    a.sync();
    EXPECT_EQ(seqs_of(read_batch(m_spool, 0, a.durable_seq(), {})), range(1, 5));
}

TEST_F(ShipperTest, ReadBatchRespectsBatchEventsAndBatchBytes) {
    Auditor a(auditor_options());
    record(a, 6);
    EXPECT_EQ(seqs_of(read_batch(m_spool, 0, 6, {2, 1 << 20})), range(1, 2));
    const Batch one = read_batch(m_spool, 0, 6, {500, 1});
    EXPECT_EQ(seqs_of(one), range(1, 1)) << "a line longer than batch_bytes still goes, alone";
    const std::uint64_t line = one.bytes;
    EXPECT_EQ(line, one.lines[0].size() + 1);
    const Batch three = read_batch(m_spool, 0, 6, {500, static_cast<std::size_t>(3 * line + 2)});
    EXPECT_EQ(seqs_of(three), range(1, 3));
    EXPECT_LE(three.bytes, 3 * line + 2);
}

TEST_F(ShipperTest, ReadBatchSpansSegmentsAndTheCursorMatchesAScan) {
    Auditor a(auditor_options(600)); // two events a segment
    record(a, 9);
    ASSERT_GE(spool::list_segments(m_spool).size(), 4u);
    std::uint64_t after = 0;
    std::optional<Cursor> cursor;
    std::vector<std::uint64_t> all;
    while (true) {
        const Batch hinted = read_batch(m_spool, after, 9, {3, 1 << 20}, cursor ? &*cursor : nullptr);
        const Batch scanned = read_batch(m_spool, after, 9, {3, 1 << 20});
        EXPECT_EQ(hinted.lines, scanned.lines);
        if (hinted.empty()) break;
        EXPECT_EQ(hinted.lines.size(), after + 3 <= 9 ? 3u : 9 - after);
        for (auto s : seqs_of(hinted)) all.push_back(s);
        after = hinted.last_seq;
        cursor = hinted.next;
        EXPECT_EQ(cursor->next_seq, after + 1);
    }
    EXPECT_EQ(all, range(1, 9));
    // A stale hint (wrong seq) is ignored.
    const Cursor stale{2, 1, 12345};
    EXPECT_EQ(seqs_of(read_batch(m_spool, 4, 9, {2, 1 << 20}, &stale)), range(5, 6));
}

TEST_F(ShipperTest, ReadBatchStopsBeforeATornLineAndRejectsGarbage) {
    {
        Auditor a(auditor_options());
        record(a, 3);
    }
    const std::string seg = m_spool + "/" + spool::segment_name(1);
    const std::string good = read_all(seg);
    write_all(seg, good + R"({"seq":4,"ty)");
    EXPECT_EQ(seqs_of(read_batch(m_spool, 0, 100, {})), range(1, 3));

    auto lines = split_lines(good);
    lines[1] = "not json";
    write_all(seg, lines[0] + "\n" + lines[1] + "\n" + lines[2] + "\n");
    try {
        read_batch(m_spool, 0, 100, {});
        FAIL() << "a line without a seq cannot be ordered";
    } catch (const Error& e) {
        EXPECT_NE(
            std::string(e.what()).find(spool::segment_name(1) + " at offset " + std::to_string(lines[0].size() + 1)),
            std::string::npos)
            << e.what();
    }
}

TEST_F(ShipperTest, ReadBatchShipsOverAGapAndSaysSo) {
    {
        Auditor a(auditor_options());
        record(a, 4);
    }
    const std::string seg = m_spool + "/" + spool::segment_name(1);
    auto lines = split_lines(read_all(seg));
    write_all(seg, lines[0] + "\n" + lines[2] + "\n" + lines[3] + "\n");
    const Batch b = read_batch(m_spool, 0, 4, {});
    EXPECT_EQ(seqs_of(b), (std::vector<std::uint64_t>{1, 3, 4}));
    ASSERT_EQ(b.gaps.size(), 1u);
    EXPECT_EQ(b.gaps[0], "seq 3 follows 1 (1 event missing)");
}

// --- Bodies ---

TEST(ShipperFormat, HecTime) {
    EXPECT_EQ(hec_time("2026-11-23T10:00:00.123Z"), "1795428000.123");
    EXPECT_EQ(hec_time("1970-01-01T00:00:01.5Z"), "1.500");
    EXPECT_EQ(hec_time("1970-01-01T00:00:00Z"), "0.000");
    EXPECT_EQ(hec_time("1970-01-01T00:00:00.123456Z"), "0.123");
    for (const char* bad :
         {"", "2026-11-23", "2026-11-23T10:00:00.123", "2026-11-23T10:00:00.Z", "2026-11-23T10:00:00+01:00"})
        EXPECT_FALSE(hec_time(bad).has_value()) << bad;
}

TEST(ShipperFormat, HecEventWrapsTheLineByteForByte) {
    const std::string line =
        R"({"event_id":"e1","hash":"h","host":"web1","prev_hash":"p","seq":7,"time":"2026-11-23T10:00:00.123Z","type":"access.denied","user":"al\"ice"})";
    HecFields f;
    EXPECT_EQ(hec_event(line, f),
              R"({"time":1795428000.123,"host":"web1","source":"jitgated","sourcetype":"jitgate:audit","event":)" +
                  line + "}");
    f.index = "sox";
    f.source = "src";
    f.sourcetype = "st";
    const Json j = Json::parse(hec_event(line, f));
    EXPECT_EQ(j["index"], "sox");
    EXPECT_EQ(j["source"], "src");
    EXPECT_EQ(j["sourcetype"], "st");
    EXPECT_EQ(j["event"], Json::parse(line));
    EXPECT_THROW(hec_event("[1]", f), Error);
}

TEST(ShipperFormat, BodiesOfABatch) {
    Batch b;
    b.lines = {R"({"host":"h","seq":1,"time":"1970-01-01T00:00:01.000Z"})", R"({"host":"h","seq":2,"time":"bad"})"};
    EXPECT_EQ(format_body(Format::jsonl, b, {}), b.lines[0] + "\n" + b.lines[1] + "\n");
    const auto hec = split_lines(format_body(Format::splunk_hec, b, {}));
    ASSERT_EQ(hec.size(), 2u);
    EXPECT_EQ(Json::parse(hec[0])["time"], 1.0);
    EXPECT_FALSE(Json::parse(hec[1]).contains("time")) << "no time rather than a wrong one";
    EXPECT_EQ(Json::parse(hec[1])["event"]["seq"], 2);
    EXPECT_EQ(parse_format("jsonl"), Format::jsonl);
    EXPECT_EQ(parse_format("splunk_hec"), Format::splunk_hec);
    EXPECT_FALSE(parse_format("hec"));
    EXPECT_STREQ(to_string(Format::splunk_hec), "splunk_hec");
}

TEST(ShipperBackoff, DoublesWithJitterUpToTheCap) {
    const auto d = [](std::uint64_t n, double u) { return backoff_delay(1000ms, 300000ms, n, u).count(); };
    EXPECT_EQ(d(1, 0.5), 1000);
    EXPECT_EQ(d(1, 0.0), 750);
    EXPECT_EQ(d(1, 1.0), 1250);
    EXPECT_EQ(d(2, 0.5), 2000);
    EXPECT_EQ(d(9, 0.5), 256000);
    EXPECT_EQ(d(10, 0.5), 300000);
    EXPECT_EQ(d(10, 1.0), 300000) << "never above retry_max";
    EXPECT_EQ(d(10, 0.0), 225000) << "still jittered at the cap";
    EXPECT_EQ(d(100000, 0.5), 300000);
    EXPECT_EQ(d(0, 0.5), 1000);
    for (int i = 0; i < 100; ++i) {
        const double u = i / 100.0;
        EXPECT_GE(d(3, u), 3000);
        EXPECT_LE(d(3, u), 5000);
    }
}

// --- The shipper ---

TEST_F(ShipperTest, OptionsAreChecked) {
    Auditor a(auditor_options());
    const auto fails = [&](ShipperOptions o, const char* why) {
        try {
            Shipper s(std::move(o), a);
            ADD_FAILURE() << why;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::bad_input) << why;
        }
    };
    ShipperOptions o = shipper_options("https://store.example:8443/v1/events");
    o.allow_plain_http = false;
    EXPECT_NO_THROW(Shipper(o, a));
    ShipperOptions h = o;
    h.url = "http://store.example/v1/events";
    fails(h, "plain http");
    h.url = "ftp://store.example/";
    fails(h, "ftp");
    ShipperOptions c = o;
    c.client_cert = "/etc/jitgate/host.crt";
    fails(c, "a certificate without its key");
    ShipperOptions t = o;
    t.token_file = m_dir + "/missing";
    fails(t, "a missing token file");
    write_all(m_dir + "/bad-token", "abc\x01"
                                    "def\n");
    t.token_file = m_dir + "/bad-token";
    fails(t, "a control character in the token");
    write_all(m_dir + "/empty-token", "\n");
    t.token_file = m_dir + "/empty-token";
    fails(t, "an empty token");
    ShipperOptions b = o;
    b.batch_events = 0;
    fails(b, "zero batch size");
}

TEST_F(ShipperTest, ShipsEverythingOnceInOrderAndDeletesShippedSegments) {
    FakeStore store({200});
    Auditor a(auditor_options(600));
    record(a, 7);
    const auto expected = spool::tail_lines(m_spool, 100);
    ASSERT_EQ(expected.size(), 7u);
    ShipperOptions o = shipper_options(store.url());
    o.batch_events = 3;
    Shipper s(o, a);
    s.start();
    ASSERT_TRUE(wait_until([&] { return s.shipped_seq() == 7; })) << s.status().dump();
    EXPECT_EQ(received_lines(store), expected);
    const auto reqs = store.requests();
    ASSERT_EQ(reqs.size(), 3u);
    for (const auto& r : reqs) {
        EXPECT_EQ(r.head.rfind("post /v1/events http/1.1", 0), 0u) << r.head;
        EXPECT_NE(r.head.find("authorization: bearer s3cret-token"), std::string::npos) << r.head;
        EXPECT_NE(r.head.find("content-type: application/x-ndjson"), std::string::npos) << r.head;
        EXPECT_EQ(r.head.find("expect:"), std::string::npos) << r.head;
    }
    EXPECT_EQ(spool::read_shipped(m_spool)->seq, 7u);
    // Deleted: every segment but the newest (which holds seq 7 and is still written).
    ASSERT_TRUE(wait_until([&] { return spool::list_segments(m_spool).size() == 1; }));
    EXPECT_EQ(spool::list_segments(m_spool)[0].first_seq, 7u);
    EXPECT_EQ(spool::read_anchor(m_spool)->seq, 6u);
    const VerifyResult verified = verify_spool(m_spool);
    EXPECT_TRUE(verified.ok) << testing::PrintToString(verified.problems);

    Json st = s.status();
    EXPECT_EQ(st["shipped_seq"], 7u);
    EXPECT_EQ(st["unsent_events"], 0u);
    EXPECT_EQ(st["shipped_this_run"], 7u);
    EXPECT_EQ(st["batches_this_run"], 3u);
    EXPECT_EQ(st["consecutive_failures"], 0u);
    EXPECT_TRUE(st["last_error"].is_null());
    EXPECT_TRUE(st["oldest_unsent_time"].is_null());
    EXPECT_TRUE(st["last_success_time"].is_string());
    EXPECT_EQ(st["store"], store.url());
    EXPECT_EQ(st["format"], "jsonl");
    EXPECT_EQ(st["running"], true);
    EXPECT_EQ(st["spool_full"], false);
    EXPECT_EQ(st.dump().find("s3cret"), std::string::npos) << "the token never shows";

    // New durable events wake the sender at once; unsynced ones are never sent.
    a.set_group_commit(true);
    record(a, 2);
    std::this_thread::sleep_for(1200ms);
    EXPECT_EQ(s.shipped_seq(), 7u) << "lines not yet fdatasync'ed must not leave the host";
    const auto t0 = std::chrono::steady_clock::now();
    a.sync();
    ASSERT_TRUE(wait_until([&] { return s.shipped_seq() == 9; }));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 900ms) << "the durable hook wakes the sender";
    s.stop();
    EXPECT_EQ(s.status()["running"], false);
}

// Each jsonl batch says how far the spool goes (Jitgate-Spool-Seq: the newest durable seq when
// it is sent), so the store can show what the host has not shipped yet; a later batch says how
// far it has grown since.
TEST_F(ShipperTest, EachJsonLinesBatchReportsTheSpoolsNewestSeq) {
    FakeStore store({200});
    Auditor a(auditor_options());
    record(a, 5);
    ShipperOptions o = shipper_options(store.url());
    o.batch_events = 2;
    Shipper s(o, a);
    s.start();
    ASSERT_TRUE(wait_until([&] { return s.shipped_seq() == 5; })) << s.status().dump();
    a.set_group_commit(true); // both durable at once: one batch
    record(a, 2);
    a.sync();
    ASSERT_TRUE(wait_until([&] { return s.shipped_seq() == 7; })) << s.status().dump();
    s.stop();
    const auto reqs = store.requests();
    ASSERT_EQ(reqs.size(), 4u);
    const std::vector<std::string> expected{"jitgate-spool-seq: 5", "jitgate-spool-seq: 5", "jitgate-spool-seq: 5",
                                            "jitgate-spool-seq: 7"};
    const auto header_lines = [](const std::string& head) {
        std::vector<std::string> out;
        std::size_t start = 0;
        for (std::size_t end; (end = head.find("\r\n", start)) != std::string::npos; start = end + 2)
            out.push_back(head.substr(start, end - start));
        out.push_back(head.substr(start));
        return out;
    };
    for (std::size_t i = 0; i < reqs.size(); ++i) {
        std::vector<std::string> seq_lines;
        for (const std::string& l : header_lines(reqs[i].head))
            if (l.rfind("jitgate-spool-seq:", 0) == 0) seq_lines.push_back(l);
        EXPECT_EQ(seq_lines, std::vector<std::string>{expected[i]}) << reqs[i].head;
        EXPECT_NE(reqs[i].head.find("authorization: bearer s3cret-token"), std::string::npos) << reqs[i].head;
        EXPECT_NE(reqs[i].head.find("content-type: application/x-ndjson"), std::string::npos) << reqs[i].head;
    }
}

TEST_F(ShipperTest, RetriesTheSameBatchAfterA500AndReportsTheErrorEscaped) {
    FakeStore store({500, 500, 200}, "db down\x1b[31m\nretry");
    Auditor a(auditor_options());
    record(a, 3);
    Shipper s(shipper_options(store.url()), a);
    s.start();
    ASSERT_TRUE(wait_until([&] { return s.shipped_seq() == 3; })) << s.status().dump();
    const auto reqs = store.requests();
    ASSERT_EQ(reqs.size(), 3u);
    EXPECT_EQ(reqs[0].body, reqs[1].body) << "a retry resends the same batch, with the same event_ids";
    EXPECT_EQ(reqs[1].body, reqs[2].body);
    EXPECT_EQ(split_lines(reqs[2].body).size(), 3u);
    const Json st = s.status();
    const std::string err = st["last_error"];
    EXPECT_EQ(err, "HTTP 500 from " + store.url() + ": db down\\x1b[31m\\nretry");
    EXPECT_TRUE(st["last_error_time"].is_string());
    EXPECT_EQ(st["consecutive_failures"], 0u);
    EXPECT_EQ(st["batches_this_run"], 1u);
    EXPECT_EQ(st["shipped_this_run"], 3u);
}

TEST_F(ShipperTest, A4xxIsRetriedNeverDropped) {
    FakeStore store({400, 403, 200});
    Auditor a(auditor_options());
    record(a, 2);
    Shipper s(shipper_options(store.url()), a);
    s.start();
    ASSERT_TRUE(wait_until([&] { return s.shipped_seq() == 2; })) << s.status().dump();
    EXPECT_EQ(store.requests().size(), 3u);
    EXPECT_EQ(received_lines(store).size(), 6u);
}

TEST_F(ShipperTest, UnreachableStoreIsRetriedAndCounted) {
    Auditor a(auditor_options());
    record(a, 1);
    // A port nothing listens on: bind one, note it, close it.
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    ::close(fd);
    Shipper s(shipper_options("http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/"), a);
    s.start();
    ASSERT_TRUE(wait_until([&] { return s.status()["consecutive_failures"].get<std::uint64_t>() >= 3; }));
    const Json st = s.status();
    EXPECT_NE(st["last_error"].get<std::string>().find("cannot reach http://127.0.0.1:"), std::string::npos)
        << st.dump();
    EXPECT_EQ(st["unsent_events"], 1u);
    EXPECT_TRUE(st["oldest_unsent_time"].is_string());
    EXPECT_EQ(s.shipped_seq(), 0u);
    EXPECT_FALSE(spool::read_shipped(m_spool));
}

TEST_F(ShipperTest, StopAbortsAHangingTransferPromptly) {
    FakeStore store({200}, "", /*hang=*/true);
    Auditor a(auditor_options());
    record(a, 2);
    ShipperOptions o = shipper_options(store.url());
    o.timeout = 60s;
    Shipper s(o, a);
    s.start();
    ASSERT_TRUE(wait_until([&] { return !store.requests().empty(); }));
    const auto t0 = std::chrono::steady_clock::now();
    s.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
    EXPECT_EQ(s.shipped_seq(), 0u);
    EXPECT_FALSE(spool::read_shipped(m_spool)) << "nothing acknowledged, nothing recorded";
}

TEST_F(ShipperTest, ARestartResumesAfterShippedJson) {
    FakeStore store({200});
    Auditor a(auditor_options());
    record(a, 5);
    spool::write_shipped(m_spool, {3, "2026-11-23T10:00:00.000Z"});
    Shipper s(shipper_options(store.url()), a);
    s.start();
    ASSERT_TRUE(wait_until([&] { return s.shipped_seq() == 5; }));
    const auto lines = received_lines(store);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(Json::parse(lines[0])["seq"], 4u);
}

TEST_F(ShipperTest, ShipsSplunkHecEvents) {
    FakeStore store({200});
    Auditor a(auditor_options());
    record(a, 2);
    const auto spooled = spool::tail_lines(m_spool, 10);
    ShipperOptions o = shipper_options(store.url());
    o.format = Format::splunk_hec;
    o.hec_index = "sox";
    Shipper s(o, a);
    s.start();
    ASSERT_TRUE(wait_until([&] { return s.shipped_seq() == 2; }));
    const auto reqs = store.requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_NE(reqs[0].head.find("authorization: splunk s3cret-token"), std::string::npos) << reqs[0].head;
    EXPECT_NE(reqs[0].head.find("content-type: application/json"), std::string::npos) << reqs[0].head;
    EXPECT_EQ(reqs[0].head.find("jitgate-spool-seq"), std::string::npos) << "Splunk's protocol is Splunk's";
    const auto lines = split_lines(reqs[0].body);
    ASSERT_EQ(lines.size(), 2u);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const Json j = Json::parse(lines[i]);
        EXPECT_EQ(j["event"], Json::parse(spooled[i]));
        EXPECT_EQ(j["host"], "web1");
        EXPECT_EQ(j["index"], "sox");
        EXPECT_EQ(j["sourcetype"], "jitgate:audit");
        EXPECT_TRUE(j["time"].is_number());
    }
    EXPECT_EQ(s.status()["format"], "splunk_hec");
}

TEST_F(ShipperTest, InvalidUtf8ArrivesEscapedAndValid) {
    FakeStore store({200});
    Auditor a(auditor_options());
    a.record({{"type", type::requested}, {"reason", "bad\xff\xfe\x01"}, {"argv", {"/bin/echo", "\xc3\x28"}}});
    Shipper s(shipper_options(store.url()), a);
    s.start();
    ASSERT_TRUE(wait_until([&] { return s.shipped_seq() == 1; }));
    const std::string body = store.requests().at(0).body;
    EXPECT_TRUE(jitgate::text::is_valid_utf8(body));
    const Json e = Json::parse(split_lines(body).at(0));
    EXPECT_EQ(e["reason"], "bad\\xff\\xfe\\x01");
    EXPECT_EQ(e["argv"][1], "\\xc3(");
}

} // namespace

namespace {

// --- Regression: a misrouted or proxy "200 OK" drained the spool (any 2xx counted as stored) ---

TEST_F(ShipperTest, Bogus200WithoutAcknowledgementKeepsTheBatch) {
    FakeStore store({FakeStore::k_bogus_200, FakeStore::k_bogus_200, 200});
    Auditor a(auditor_options(600));
    record(a, 4);
    Shipper s(shipper_options(store.url()), a);
    s.start();
    ASSERT_TRUE(wait_until([&] { return s.shipped_seq() == 4; })) << s.status().dump();
    const auto reqs = store.requests();
    ASSERT_EQ(reqs.size(), 3u) << "each unacknowledged 200 is retried with the same batch";
    EXPECT_EQ(reqs[0].body, reqs[1].body);
    EXPECT_EQ(reqs[1].body, reqs[2].body);
    EXPECT_EQ(split_lines(reqs[2].body).size(), 4u);
    const std::string err = s.status()["last_error"];
    EXPECT_NE(err.find("HTTP 200 from " + store.url() + " without an acknowledgement of the batch"), std::string::npos)
        << err;
    const VerifyResult verified = verify_spool(m_spool);
    EXPECT_TRUE(verified.ok) << testing::PrintToString(verified.problems);
}

TEST_F(ShipperTest, Bogus200NeverRecordsProgressOrDeletesSegments) {
    FakeStore store({FakeStore::k_bogus_200});
    Auditor a(auditor_options(300));
    record(a, 5);
    const auto segments = spool::list_segments(m_spool).size();
    ASSERT_GT(segments, 1u);
    Shipper s(shipper_options(store.url()), a);
    s.start();
    ASSERT_TRUE(wait_until([&] { return s.status()["consecutive_failures"].get<std::uint64_t>() >= 3; }));
    s.stop();
    EXPECT_EQ(s.shipped_seq(), 0u);
    EXPECT_FALSE(spool::read_shipped(m_spool)) << "no acknowledgement, no progress";
    EXPECT_EQ(spool::list_segments(m_spool).size(), segments) << "nothing deleted";
    EXPECT_FALSE(spool::read_anchor(m_spool));
}

TEST(ShipperAcknowledgement, JsonLinesNeedsTheCountAndTheLastEventId) {
    Batch b;
    b.lines = {R"({"event_id":"a","seq":1})", R"({"event_id":"b","seq":2})"};
    b.last_event_id = "b";
    EXPECT_EQ(check_acknowledgement(Format::jsonl, b, R"({"stored":2,"last_event_id":"b","accepted":1})"), "");
    EXPECT_NE(check_acknowledgement(Format::jsonl, b, R"({"ok":true})"), "");
    EXPECT_NE(check_acknowledgement(Format::jsonl, b, R"({"accepted":2,"duplicates":0})"), "");
    EXPECT_NE(check_acknowledgement(Format::jsonl, b, R"({"stored":1,"last_event_id":"b"})"), "") << "a short count";
    EXPECT_NE(check_acknowledgement(Format::jsonl, b, R"({"stored":2,"last_event_id":"a"})"), "") << "another batch";
    EXPECT_NE(check_acknowledgement(Format::jsonl, b, R"({"stored":-2,"last_event_id":"b"})"), "");
    EXPECT_NE(check_acknowledgement(Format::jsonl, b, "<html>OK</html>"), "");
    EXPECT_NE(check_acknowledgement(Format::jsonl, b, ""), "");
    EXPECT_NE(check_acknowledgement(Format::jsonl, b, R"({"text":"Success","code":0})"), "");
    Batch unnamed = b;
    unnamed.last_event_id.clear();
    EXPECT_NE(check_acknowledgement(Format::jsonl, unnamed, R"({"stored":2,"last_event_id":""})"), "");
}

TEST(ShipperAcknowledgement, SplunkHecNeedsItsSuccess) {
    Batch b;
    b.lines = {R"({"event_id":"a","seq":1})"};
    b.last_event_id = "a";
    EXPECT_EQ(check_acknowledgement(Format::splunk_hec, b, R"({"text":"Success","code":0})"), "");
    EXPECT_EQ(check_acknowledgement(Format::splunk_hec, b, R"({"text":"Success","code":0,"ackId":7})"), "");
    EXPECT_NE(check_acknowledgement(Format::splunk_hec, b, R"({"text":"Success","code":1})"), "");
    EXPECT_NE(check_acknowledgement(Format::splunk_hec, b, R"({"text":"Success"})"), "");
    EXPECT_NE(check_acknowledgement(Format::splunk_hec, b, R"({"stored":1,"last_event_id":"a"})"), "");
    EXPECT_NE(check_acknowledgement(Format::splunk_hec, b, "OK"), "");
}

TEST_F(ShipperTest, ReadBatchNotesTheLastEventId) {
    Auditor a(auditor_options());
    record(a, 3);
    const Batch b = read_batch(m_spool, 0, 3, BatchLimits{});
    EXPECT_EQ(b.last_event_id, Json::parse(b.lines.back())["event_id"]);
}

// --- Regression: curl_easy_setopt's return code was ignored (a refused option left its default) ---

TEST_F(ShipperTest, RefusedCurlOptionIsAStartUpError) {
    Auditor a(auditor_options());
    ShipperOptions o = shipper_options("http://127.0.0.1:9/v1/events");
    // libcurl refuses a string option longer than CURL_MAX_INPUT_LENGTH (8,000,000 bytes) with
    // CURLE_BAD_FUNCTION_ARGUMENT; unchecked, the shipper would run without its proxy setting.
    o.proxy = "http://" + std::string(8'000'001, 'p') + ":3128";
    Shipper s(o, a);
    try {
        s.start();
        ADD_FAILURE() << "start() must refuse to run with an option libcurl refused";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("refuses the option CURLOPT_PROXY"), std::string::npos) << e.what();
    }
    EXPECT_EQ(s.status()["running"], false);
    s.stop();
}

// The high-water mark is written before a batch leaves: a store that keeps a batch whose
// acknowledgement is lost holds no seq the Auditor could issue again.
TEST_F(ShipperTest, SentJsonIsWrittenBeforeTheBatchLeaves) {
    FakeStore store({200}, "", /*hang=*/true);
    Auditor a(auditor_options());
    record(a, 3);
    ShipperOptions o = shipper_options(store.url());
    o.timeout = 60s;
    Shipper s(o, a);
    s.start();
    ASSERT_TRUE(wait_until([&] { return !store.requests().empty(); }));
    EXPECT_EQ(spool::read_sent(m_spool), std::optional<std::uint64_t>(3));
    EXPECT_FALSE(spool::read_shipped(m_spool)) << "sent, not acknowledged";
    s.stop();
}

} // namespace
