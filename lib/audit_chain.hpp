// lib/audit_chain.hpp — checking the hash chain of audit events: one line at a time, a file
// at a time (a journal, a spool segment), or as a stream the caller feeds (the daemon's spool
// verifier; the coming jitgate-server on ingest). docs/audit.md describes the chain.
// Depends on lib/audit_event.hpp and common/; nothing of the daemon.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lib/audit_event.hpp"

namespace jitgate::audit {

// True if `j` is a string of exactly 64 lowercase hex digits (a hash or prev_hash).
bool is_hash_hex(const Json& j);

// Result of checking one journal line (without its '\n').
struct LineCheck {
    Json event;           // the parsed object, when it parsed
    bool stamped = false; // it has seq, prev_hash and hash of the right types (chain usable)
    std::string problem;  // empty: the line is exactly a valid, correctly hashed event
};

// Checks that `line` is exactly the canonical form of a stamped event whose hash matches.
// Never throws for bad content (it is reported in `problem`). Thread-safe.
LineCheck check_line(const std::string& line);

// The same for a line the caller parsed already (`event`, the value parsed from `line`, e.g. by
// lib/strict_json): the line is parsed once, not twice. Never throws for bad content.
LineCheck check_parsed_line(const std::string& line, Json event);

// Why `c` does not continue the chain after (prev_seq, prev_hash); empty if it does.
std::string link_problem(const LineCheck& c, std::uint64_t prev_seq, const std::string& prev_hash);

// Reads a file (a spool segment, a journal) line by line from `offset`, in large chunks. The
// file may grow while it is read. One object per reader; not shared between threads.
class LineReader {
public:
    // Throws Error if `path` cannot be opened.
    explicit LineReader(const std::string& path, std::uint64_t offset = 0);
    ~LineReader();
    LineReader(const LineReader&) = delete;
    LineReader& operator=(const LineReader&) = delete;

    struct Line {
        std::string text;         // without its '\n'
        std::uint64_t offset = 0; // of its first byte in the file
        bool complete = false;    // false: the file ends after it without a '\n' (torn, or being written)
    };
    // Reads the next line into `line`; false at the end of the file. Throws Error on a read error.
    bool next(Line& line);

private:
    std::string m_path;
    int m_fd = -1;
    std::string m_buf;     // bytes of the file from m_buf_offset
    std::size_t m_pos = 0; // next unread byte in m_buf
    std::uint64_t m_buf_offset = 0;
    bool m_eof = false;
};

struct VerifyResult {
    bool ok = false;
    std::uint64_t events = 0;
    std::uint64_t first_seq = 0;
    std::uint64_t last_seq = 0;
    std::uint64_t segments = 0;
    std::vector<std::string> problems; // "seg-…jsonl:3: seq 7 follows 5 (1 event missing)", ...
    std::vector<std::string> notes;    // not failures: torn tails kept aside, the anchor used, ...
};

// Verifies one journal or segment file: every line is exactly the canonical form of its
// event, each hash matches, each prev_hash is the previous line's hash, seq increases by one.
// The first line may continue an earlier file. Never throws for bad content; an unreadable
// file is a problem too.
VerifyResult verify_journal(const std::string& path);

// Follows the chain line by line and collects what is wrong into a VerifyResult; for
// verify_journal, the daemon's spool verifier, and the server's ingest. Keeps a reference to
// the result, which must outlive it. Not thread-safe. Never throws for bad content.
class ChainVerifier {
public:
    enum class Start {
        free,    // the first line may continue anything (a rotated journal), but a genesis line must be seq 1
        genesis, // the first line must be seq 1 with the genesis prev_hash (a spool without anchor.json)
        anchor,  // the first line must continue the anchor (set_anchor)
    };

    ChainVerifier(VerifyResult& r, Start start) : m_r(r), m_start(start) {}

    // The last event of what was deleted before the first line (a spool's anchor.json): with
    // Start::anchor the first line must continue it; otherwise the event with that seq, if
    // seen, must have that hash.
    void set_anchor(std::uint64_t seq, const std::string& hash);

    // Adds "where: what" to the problems (at most 100; the rest are counted).
    void problem(const std::string& where, const std::string& what);

    // The chain cannot be followed across what came last (an unreadable line or file).
    void break_chain() { m_have_prev = false; }

    // Checks one line (without its '\n'). Returns its seq if it had a usable one.
    std::optional<std::uint64_t> line(const std::string& where, const std::string& text);

    // Whether the event set_anchor named was among the lines.
    bool anchor_seen() const noexcept { return m_anchor_seen; }

    // Sets the result's `ok`; call once, after the last line.
    void finish();

private:
    struct Anchor {
        std::uint64_t seq = 0;
        std::string hash;
    };

    VerifyResult& m_r;
    Start m_start;
    std::size_t m_dropped = 0;
    bool m_have_prev = false;
    std::uint64_t m_prev_seq = 0;
    std::string m_prev_hash;
    std::string m_prev_where;
    std::optional<Anchor> m_anchor;
    bool m_anchor_seen = false;
};

// Feeds every line of `path` to `v`, naming each "<label>N"; a torn last line is a problem
// (with `torn_hint` added to its text). Calls on_seq (may be empty) for each line with a usable
// seq. Returns the number of lines, or nullopt if the file could not be read (reported, and the
// chain broken). Never throws for bad content.
std::optional<std::uint64_t> verify_file(ChainVerifier& v, const std::string& path, const std::string& label,
                                         const std::string& torn_hint,
                                         const std::function<void(std::uint64_t line_no, std::uint64_t seq)>& on_seq);

// Verifies a spool directory: every segment as verify_journal does, the chain and seq across
// segments (a deleted segment shows as a seq gap), each segment's name against its first seq,
// and the start: the first event continues anchor.json (seq anchor.seq + 1, prev_hash
// anchor.hash), or, without an anchor, is seq 1 with the genesis prev_hash; and the end: the
// spool must not end below what shipped.json or sent.json say left the host (a cut spool).

} // namespace jitgate::audit
