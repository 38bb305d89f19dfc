// lib/audit_chain.cpp — the hash-chain checks of audit events (see audit_chain.hpp).
#include "lib/audit_chain.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"

namespace jitgate::audit {
namespace {

constexpr std::size_t k_max_problems = 100;
constexpr std::size_t k_read_chunk = 64 * 1024;
constexpr std::size_t k_hash_hex_size = 64;

std::string errno_text(int err) {
    return std::system_category().message(err);
}

} // namespace

bool is_hash_hex(const Json& j) {
    if (!j.is_string()) return false;
    const auto& s = j.get_ref<const std::string&>();
    if (s.size() != k_hash_hex_size) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

LineCheck check_line(const std::string& line) {
    Json event;
    try {
        event = Json::parse(line);
    } catch (const Json::parse_error& e) {
        LineCheck r;
        r.problem = std::string("not valid JSON (") + e.what() + ")";
        return r;
    }
    return check_parsed_line(line, std::move(event));
}

LineCheck check_parsed_line(const std::string& line, Json event) {
    LineCheck r;
    r.event = std::move(event);
    if (!r.event.is_object()) {
        r.problem = "not a JSON object";
        return r;
    }
    Json& e = r.event;
    const auto has_string = [&](const char* key) { return e.contains(key) && e[key].is_string(); };
    r.stamped = e.contains("seq") && e["seq"].is_number_unsigned() && e.contains("hash") && is_hash_hex(e["hash"]) &&
                e.contains("prev_hash") && is_hash_hex(e["prev_hash"]);
    if (!r.stamped) {
        r.problem = "missing or malformed seq, prev_hash or hash";
        return r;
    }
    if (!has_string("type") || e["type"].get_ref<const std::string&>().empty() || !has_string("event_id") ||
        !has_string("time") || !has_string("host")) {
        r.problem = "missing or malformed type, event_id, time or host";
        return r;
    }
    if (e.dump(-1, ' ', false, Json::error_handler_t::replace) != line) {
        r.problem = "not in canonical form (the line was edited)";
        return r;
    }
    // The hash covers the event without its hash member: taken out and put back rather than
    // copying the whole event (a large one costs as much to copy as to parse).
    std::string hash = std::move(e["hash"].get_ref<std::string&>());
    e.erase("hash");
    if (sha256_hex(canonical_bytes(e)) != hash) r.problem = "hash does not match the event (the line was edited)";
    e["hash"] = std::move(hash);
    return r;
}

std::string link_problem(const LineCheck& c, std::uint64_t prev_seq, const std::string& prev_hash) {
    if (!c.problem.empty()) return c.problem;
    const auto seq = c.event["seq"].get<std::uint64_t>();
    if (seq != prev_seq + 1) return "seq " + std::to_string(seq) + " does not follow " + std::to_string(prev_seq);
    if (c.event["prev_hash"].get_ref<const std::string&>() != prev_hash)
        return "prev_hash is not the hash of event " + std::to_string(prev_seq);
    return {};
}

LineReader::LineReader(const std::string& path, std::uint64_t offset) : m_path(path), m_buf_offset(offset) {
    m_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (m_fd < 0) throw Error(ErrorCode::internal, path, "cannot open: " + errno_text(errno));
}

LineReader::~LineReader() {
    if (m_fd >= 0) ::close(m_fd);
}

bool LineReader::next(Line& line) {
    for (;;) {
        const auto nl = m_buf.find('\n', m_pos);
        if (nl != std::string::npos) {
            line.text.assign(m_buf, m_pos, nl - m_pos);
            line.offset = m_buf_offset + m_pos;
            line.complete = true;
            m_pos = nl + 1;
            return true;
        }
        if (m_eof) {
            if (m_pos >= m_buf.size()) return false;
            line.text.assign(m_buf, m_pos, std::string::npos);
            line.offset = m_buf_offset + m_pos;
            line.complete = false;
            m_pos = m_buf.size();
            return true;
        }
        // Drop what was consumed, then read the next chunk after what is buffered.
        m_buf.erase(0, m_pos);
        m_buf_offset += m_pos;
        m_pos = 0;
        const std::size_t have = m_buf.size();
        m_buf.resize(have + k_read_chunk);
        ssize_t n;
        do {
            n = ::pread(m_fd, m_buf.data() + have, k_read_chunk, static_cast<off_t>(m_buf_offset + have));
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            m_buf.resize(have);
            throw Error(ErrorCode::internal, m_path, "cannot read: " + errno_text(errno));
        }
        m_buf.resize(have + static_cast<std::size_t>(n));
        if (n == 0) m_eof = true;
    }
}

void ChainVerifier::set_anchor(std::uint64_t seq, const std::string& hash) {
    m_anchor = Anchor{seq, hash};
    if (m_start == Start::anchor) {
        m_have_prev = true;
        m_prev_seq = seq;
        m_prev_hash = hash;
        m_prev_where = "the event in anchor.json";
    }
}

void ChainVerifier::problem(const std::string& where, const std::string& what) {
    if (m_r.problems.size() < k_max_problems)
        m_r.problems.push_back(where + ": " + what);
    else
        ++m_dropped;
}

std::optional<std::uint64_t> ChainVerifier::line(const std::string& where, const std::string& text) {
    if (text.empty()) {
        problem(where, "empty line");
        m_have_prev = false;
        return std::nullopt;
    }
    const LineCheck c = check_line(text);
    if (!c.problem.empty()) problem(where, c.problem);
    if (!c.stamped) {
        // Without its seq and hash the chain cannot be followed across this line; the
        // line itself is the problem reported.
        m_have_prev = false;
        return std::nullopt;
    }
    ++m_r.events;
    const auto seq = c.event["seq"].get<std::uint64_t>();
    const auto& prev = c.event["prev_hash"].get_ref<const std::string&>();
    const bool first = m_r.events == 1;
    if (first) m_r.first_seq = seq;
    if (first && m_start == Start::genesis) {
        if (seq != 1)
            problem(where, "seq " + std::to_string(seq) + " is the first event, but there is no anchor.json (" +
                               text::plural(seq - 1, "event", "events") +
                               " missing before it, or segments were deleted by hand)");
        if (prev != k_genesis_hash)
            problem(where, "the first event's prev_hash is not the genesis hash, but there is no anchor.json");
    } else if (first && m_start == Start::free) {
        if (prev == k_genesis_hash && seq != 1)
            problem(where, "seq " + std::to_string(seq) + " starts a new chain (genesis prev_hash) but is not 1");
    } else if (m_have_prev) {
        if (seq != m_prev_seq + 1) {
            if (seq > m_prev_seq)
                problem(where, "seq " + std::to_string(seq) + " follows " + std::to_string(m_prev_seq) + " (" +
                                   text::plural(seq - m_prev_seq - 1, "event", "events") + " missing)");
            else
                problem(where, "seq " + std::to_string(seq) + " follows " + std::to_string(m_prev_seq) +
                                   " (out of order or repeated)");
        }
        if (prev != m_prev_hash)
            problem(where,
                    "prev_hash is not the hash of " + m_prev_where + " (an event was removed, inserted or moved)");
    }
    if (m_anchor && seq == m_anchor->seq) {
        m_anchor_seen = true;
        if (c.event["hash"].get_ref<const std::string&>() != m_anchor->hash)
            problem(where, "event " + std::to_string(seq) + " is not the one anchor.json names (its hash differs)");
    }
    m_have_prev = true;
    m_prev_seq = seq;
    m_prev_hash = c.event["hash"].get<std::string>();
    m_prev_where = where;
    m_r.last_seq = seq;
    return seq;
}

void ChainVerifier::finish() {
    if (m_dropped > 0) m_r.problems.push_back("... and " + std::to_string(m_dropped) + " more");
    m_r.ok = m_r.problems.empty();
}

std::optional<std::uint64_t> verify_file(ChainVerifier& v, const std::string& path, const std::string& label,
                                         const std::string& torn_hint,
                                         const std::function<void(std::uint64_t line_no, std::uint64_t seq)>& on_seq) {
    std::uint64_t line_no = 0;
    try {
        LineReader reader(path);
        LineReader::Line line;
        while (reader.next(line)) {
            ++line_no;
            const std::string where = label + std::to_string(line_no);
            if (!line.complete) {
                v.problem(where, "torn last line (" + text::plural(line.text.size(), "byte", "bytes") +
                                     " without a newline, a crash mid-write?" + torn_hint + ")");
                break;
            }
            const auto seq = v.line(where, line.text);
            if (seq && on_seq) on_seq(line_no, *seq);
        }
    } catch (const Error& e) {
        v.problem(label + std::to_string(line_no + 1), std::string("cannot read: ") + e.what());
        v.break_chain();
        return std::nullopt;
    }
    return line_no;
}

VerifyResult verify_journal(const std::string& path) {
    VerifyResult r;
    if (::access(path.c_str(), R_OK) != 0) {
        r.problems.push_back("cannot open " + text::escape_for_log(path) + ": " + errno_text(errno));
        return r;
    }
    ChainVerifier v(r, ChainVerifier::Start::free);
    verify_file(v, path, "line ", "", nullptr);
    v.finish();
    return r;
}

} // namespace jitgate::audit
