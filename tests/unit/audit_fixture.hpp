// tests/unit/audit_fixture.hpp — what the audit unit tests share (test_audit_auditor,
// test_audit_spool, test_audit_syslog, test_lib_audit_chain): a fixture with a private spool
// directory, a datagram socket standing in for /dev/log, and small checks on verify results.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "daemon/audit/auditor.hpp"
#include "lib/audit_chain.hpp"

namespace jitgate::test::audit_fixture {

using namespace jitgate::audit;
namespace fs = std::filesystem;

inline std::string join_lines(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += l + '\n';
    return out;
}

inline bool has_problem_containing(const VerifyResult& r, const std::string& needle) {
    for (const auto& p : r.problems)
        if (p.find(needle) != std::string::npos) return true;
    return false;
}

inline std::string problems_text(const VerifyResult& r) {
    std::string out;
    for (const auto& p : r.problems) out += p + '\n';
    return out;
}

// Matches `s` against `shape`: 'd' is a digit, 'h' a lower-case hex digit, 'v' one of 89ab
// (the UUID variant), '_' a space or digit, anything else itself. (No std::regex: GCC 12
// warns inside it under -O1 with sanitizers, and the build uses -Werror.)
inline bool matches_shape(const std::string& s, const std::string& shape) {
    if (s.size() != shape.size()) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        const bool digit = c >= '0' && c <= '9';
        const bool ok = shape[i] == 'd'   ? digit
                        : shape[i] == 'h' ? digit || (c >= 'a' && c <= 'f')
                        : shape[i] == 'v' ? c == '8' || c == '9' || c == 'a' || c == 'b'
                        : shape[i] == '_' ? digit || c == ' '
                                          : c == shape[i];
        if (!ok) return false;
    }
    return true;
}

inline bool has_control_byte(const std::string& s) {
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F) return true;
    }
    return false;
}

// A datagram socket bound in the test's directory, standing in for /dev/log.
class DatagramReceiver {
public:
    explicit DatagramReceiver(const std::string& path) : m_path(path) {
        ::unlink(path.c_str());
        m_fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
        if (m_fd < 0 || ::bind(m_fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
            throw std::runtime_error("cannot bind " + path + ": " + std::strerror(errno));
    }
    ~DatagramReceiver() {
        ::close(m_fd);
        ::unlink(m_path.c_str());
    }
    DatagramReceiver(const DatagramReceiver&) = delete;
    DatagramReceiver& operator=(const DatagramReceiver&) = delete;

    // The next datagram, or "" if none is queued (the sender is synchronous, so it is there).
    std::string receive() {
        std::string buf(65536, '\0');
        const ssize_t n = ::recv(m_fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0) return {};
        buf.resize(static_cast<std::size_t>(n));
        return buf;
    }

private:
    std::string m_path;
    int m_fd = -1;
};

class AuditTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string templ = ::testing::TempDir() + "jitgate-audit-XXXXXX";
        ASSERT_NE(::mkdtemp(templ.data()), nullptr) << std::strerror(errno);
        m_dir = templ;
        m_journal = segment(1);
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(m_dir, ec);
    }

    // The path of the segment whose first seq is `first_seq`.
    std::string segment(std::uint64_t first_seq) const { return m_dir + "/" + spool::segment_name(first_seq); }

    Options options() const {
        Options o;
        o.spool_dir = m_dir;
        o.host = "testhost";
        o.syslog = false;
        return o;
    }
    // options() with syslog copies sent to the datagram socket `socket`.
    Options syslog_options(const std::string& socket) const {
        Options o = options();
        o.syslog = true;
        o.syslog_socket = socket;
        return o;
    }

    // Writes a journal of `n` events with user text, a number and a reason in each.
    void write_good_journal(int n) {
        Auditor a(options());
        for (int i = 0; i < n; ++i)
            a.record({{"type", type::command_finished},
                      {"user", "alice"},
                      {"kind", "sudo"},
                      {"argv", {"/usr/bin/systemctl", "restart", "payments"}},
                      {"reason", "fix payments outage"},
                      {"exit_status", 3},
                      {"duration_ms", 1250}});
    }

    std::string m_dir;
    std::string m_journal; // the first segment
};

inline const Json k_approved_event = {
    {"type", type::approved}, {"user", "alice"},
    {"kind", "sudo"},         {"argv", {"/usr/bin/systemctl", "restart", "payments"}},
    {"approvers", {"bob"}},   {"request_id", "R-7F3KQ2"},
};

// Records `n` events of about 450 bytes each.
inline void record_events(Auditor& a, int n) {
    for (int i = 0; i < n; ++i)
        a.record({{"type", type::command_finished},
                  {"user", "alice"},
                  {"argv", {"/usr/bin/id", std::to_string(i)}},
                  {"reason", "rollover test"},
                  {"exit_status", 0}});
}

inline std::vector<std::string> segment_names(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& s : spool::list_segments(dir)) out.push_back(fs::path(s.path).filename().string());
    return out;
}

// The syslog datagrams received so far that contain `needle`.
inline std::vector<std::string> received_with(DatagramReceiver& r, const std::string& needle) {
    std::vector<std::string> out;
    for (std::string d; !(d = r.receive()).empty();)
        if (d.find(needle) != std::string::npos) out.push_back(d);
    return out;
}

} // namespace jitgate::test::audit_fixture
