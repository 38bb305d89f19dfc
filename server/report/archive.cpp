// server/report/archive.cpp — see archive.hpp.
#include "server/report/archive.hpp"
#include "server/report/report.hpp"

#include "lib/audit_chain.hpp"
#include "lib/audit_event.hpp"
#include "lib/file_io.hpp"
#include "lib/openssl_ptr.hpp"

#include <jitgate/error.hpp>
#include <jitgate/text.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

namespace jitgate::server::report {
namespace {

using Json = nlohmann::json;

constexpr std::size_t k_page = 2000;
constexpr const char* k_manifest = "MANIFEST.json";
constexpr const char* k_manifest_sha = "MANIFEST.sha256";
constexpr std::uintmax_t k_max_manifest_bytes = 64u << 20;

std::string hex(const unsigned char* bytes, unsigned size) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(size * 2u);
    for (unsigned i = 0; i < size; ++i) {
        out += digits[bytes[i] >> 4];
        out += digits[bytes[i] & 0xf];
    }
    return out;
}

// Incremental SHA-256.
class Sha256 {
public:
    Sha256() : m_ctx(EVP_MD_CTX_new()) {
        if (!m_ctx || EVP_DigestInit_ex(m_ctx.get(), EVP_sha256(), nullptr) != 1)
            throw Error(ErrorCode::internal, "archive", "SHA-256 failed (OpenSSL EVP_DigestInit_ex)");
    }
    void add(const std::string& bytes) {
        if (EVP_DigestUpdate(m_ctx.get(), bytes.data(), bytes.size()) != 1)
            throw Error(ErrorCode::internal, "archive", "SHA-256 failed (OpenSSL EVP_DigestUpdate)");
    }
    std::string finish() {
        std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
        unsigned size = 0;
        if (EVP_DigestFinal_ex(m_ctx.get(), md.data(), &size) != 1)
            throw Error(ErrorCode::internal, "archive", "SHA-256 failed (OpenSSL EVP_DigestFinal_ex)");
        return hex(md.data(), size);
    }

private:
    ossl::Ptr<EVP_MD_CTX> m_ctx;
};

std::string errno_text(int error) {
    return std::strerror(error);
}

// Appends all of `data` to the file `path` (created 0600, never through a symbolic link).
void append_file(const std::string& path, const std::string& data) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) throw Error(ErrorCode::io, path, errno_text(errno));
    if (const int error = file_io::write_all(fd, data); error != 0) {
        ::close(fd);
        throw Error(ErrorCode::io, path, errno_text(error));
    }
    if (::close(fd) != 0) throw Error(ErrorCode::io, path, errno_text(errno));
}

void sync_path(const std::string& path, int flags) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) throw Error(ErrorCode::io, path, errno_text(errno));
    if (::fsync(fd) != 0) {
        const int saved = errno;
        ::close(fd);
        throw Error(ErrorCode::io, path, "fsync: " + errno_text(saved));
    }
    ::close(fd);
}

// What a month's scan gathers per host; `sink` also receives each host's lines of a page.
struct HostState {
    ArchiveHost entry;
    Sha256 sha;
};

// A month's events read from the store, a page at a time.
store::Store::AuditPageReader month_reader(store::Store& store, const store::Month& month) {
    return [&store, month](std::int64_t after, std::size_t limit) {
        return store.audit_events_received(month.from, month.to, after, limit);
    };
}

template <class Sink>
Manifest scan_month(const store::Store::AuditPageReader& read, const store::Month& month, Sink&& sink) {
    std::map<std::string, HostState> hosts;
    Manifest m;
    m.month = month.name;
    m.received_from = month.from;
    m.received_to = month.to;
    std::int64_t after = 0;
    for (;;) {
        const std::vector<store::StoredAuditEvent> page = read(after, k_page);
        std::map<std::string, std::string> lines; // host -> this page's lines, each with its '\n'
        for (const store::StoredAuditEvent& s : page) {
            // SECURITY NOTE: host names were checked at ingest (certificate names); the file
            // name is checked again here, so a bad row can never write outside the archive.
            if (!safe_host_file_name(s.host))
                throw Error(ErrorCode::bad_input, "archive " + month.name,
                            "a stored host name is not safe as a file name: " + text::escape_for_log(s.host));
            auto [it, added] = hosts.try_emplace(s.host);
            ArchiveHost& h = it->second.entry;
            if (added) {
                h.host = s.host;
                h.file = s.host + ".jsonl";
                h.first_seq = s.event.seq;
                h.first_prev_hash = s.event.prev_hash;
            }
            ++h.events;
            h.last_seq = s.event.seq;
            h.last_hash = s.event.hash;
            std::string& out = lines[s.host];
            out += s.event.line;
            out += '\n';
            ++m.events;
        }
        for (auto& [host, text] : lines) {
            hosts.at(host).sha.add(text);
            sink(hosts.at(host).entry, text);
        }
        if (page.size() < k_page) break;
        after = page.back().row;
    }
    for (auto& [host, state] : hosts) {
        state.entry.sha256 = state.sha.finish();
        m.hosts.push_back(std::move(state.entry));
    }
    return m;
}

// Reads a whole small file; nullopt if it cannot be read or is larger than `max`.
std::optional<std::string> read_small(const std::string& path, std::uintmax_t max, std::string& why) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) {
        why = ec.message();
        return std::nullopt;
    }
    if (size > max) {
        why = "larger than " + std::to_string(max) + " bytes";
        return std::nullopt;
    }
    std::FILE* f = std::fopen(path.c_str(), "rbe");
    if (f == nullptr) {
        why = errno_text(errno);
        return std::nullopt;
    }
    std::string data(static_cast<std::size_t>(size), '\0');
    const std::size_t n = std::fread(data.data(), 1, data.size(), f);
    std::fclose(f);
    data.resize(n);
    return data;
}

std::string str_of(const Json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
std::int64_t int_of(const Json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : -1;
}

// One host file checked; what the month-to-month link needs.
struct FileEnd {
    std::int64_t first_seq = 0;
    std::string first_prev_hash;
    std::int64_t last_seq = 0;
    std::string last_hash;
    bool seen = false;
};

FileEnd check_file(ArchiveCheck& c, const std::string& path, const ArchiveHost& want) {
    FileEnd end;
    const std::string label = want.file + ":";
    const auto problem = [&](const std::string& what) { c.problems.push_back(what); };
    // Only a regular file is read: a copied archive could hold a link to anything.
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        problem(label + " missing or not a regular file");
        return end;
    }
    Sha256 sha;
    std::int64_t count = 0;
    bool have_prev = false;
    std::uint64_t prev_seq = 0;
    std::string prev_hash;
    try {
        audit::LineReader reader(path);
        audit::LineReader::Line line;
        while (reader.next(line)) {
            ++count;
            const std::string where = label + std::to_string(count);
            sha.add(line.complete ? line.text + '\n' : line.text);
            if (!line.complete) {
                problem(where + ": torn last line (no newline at the end of the file)");
                break;
            }
            const audit::LineCheck lc = audit::check_line(line.text);
            if (!lc.problem.empty()) problem(where + ": " + lc.problem);
            if (!lc.stamped) {
                have_prev = false;
                continue;
            }
            if (str_of(lc.event, "host") != want.host)
                problem(where + ": the event's host is " + text::escape_for_log(str_of(lc.event, "host")) + ", not " +
                        want.host);
            const auto seq = lc.event["seq"].get<std::uint64_t>();
            const std::string& prev = lc.event["prev_hash"].get_ref<const std::string&>();
            if (!end.seen) {
                end.seen = true;
                end.first_seq = static_cast<std::int64_t>(seq);
                end.first_prev_hash = prev;
            } else if (seq == 1 && prev == audit::k_genesis_hash) {
                c.notes.push_back(where + ": the chain starts over at seq 1 (a wiped spool or a reinstalled host)");
            } else if (have_prev) {
                const std::string link = audit::link_problem(lc, prev_seq, prev_hash);
                if (!link.empty()) problem(where + ": " + link + " (an event was removed, inserted, moved or edited)");
            } else {
                problem(where + ": cannot be linked to the line before it (unreadable)");
            }
            have_prev = true;
            prev_seq = seq;
            prev_hash = lc.event["hash"].get<std::string>();
            end.last_seq = static_cast<std::int64_t>(seq);
            end.last_hash = prev_hash;
        }
    } catch (const Error& e) {
        problem(label + " cannot be read: " + e.what());
        return end;
    }
    c.events += count;
    const std::string digest = sha.finish();
    if (digest != want.sha256)
        problem(label + " its SHA-256 is " + digest + ", the manifest says " + want.sha256 + " (the file changed)");
    if (count != want.events)
        problem(label + " " + std::to_string(count) + " lines, the manifest says " + std::to_string(want.events));
    if (end.first_seq != want.first_seq || end.first_prev_hash != want.first_prev_hash)
        problem(label + " the first event (seq " + std::to_string(end.first_seq) +
                ") is not the one the manifest names (seq " + std::to_string(want.first_seq) + ")");
    if (end.last_seq != want.last_seq || end.last_hash != want.last_hash)
        problem(label + " the last event (seq " + std::to_string(end.last_seq) +
                ") is not the one the manifest names (seq " + std::to_string(want.last_seq) + ")");
    return end;
}

// Checks one archive directory; fills `ends` (host -> its file's ends) for the month links.
ArchiveCheck check_dir(const std::string& dir, std::map<std::string, FileEnd>& ends) {
    ArchiveCheck c;
    c.dir = dir;
    std::string why;
    const auto manifest_text = read_small(dir + "/" + k_manifest, k_max_manifest_bytes, why);
    if (!manifest_text) {
        c.problems.push_back(std::string(k_manifest) + " cannot be read: " + why);
        return c;
    }
    c.manifest_sha256 = audit::sha256_hex(*manifest_text);
    const auto sums = read_small(dir + "/" + k_manifest_sha, 4096, why);
    if (!sums)
        c.problems.push_back(std::string(k_manifest_sha) + " cannot be read: " + why);
    else if (*sums != c.manifest_sha256 + "  " + k_manifest + "\n")
        c.problems.push_back(std::string(k_manifest_sha) + " does not hold the SHA-256 of " + k_manifest + " (" +
                             c.manifest_sha256 + ")");
    const Json m = Json::parse(*manifest_text, nullptr, false);
    if (!m.is_object() || str_of(m, "format") != k_archive_format || !m.contains("hosts") || !m["hosts"].is_array()) {
        c.problems.push_back(std::string(k_manifest) + " is not a manifest of format " + k_archive_format);
        return c;
    }
    const auto month = store::parse_month(str_of(m, "month"));
    if (!month || int_of(m, "received_from") != month->from || int_of(m, "received_to") != month->to) {
        c.problems.push_back(std::string(k_manifest) + ": its month and received range do not agree");
        return c;
    }
    c.month = month->name;
    std::set<std::string> files;
    std::int64_t events = 0;
    for (const Json& h : m["hosts"]) {
        ArchiveHost want{str_of(h, "host"),
                         str_of(h, "file"),
                         int_of(h, "events"),
                         int_of(h, "first_seq"),
                         str_of(h, "first_prev_hash"),
                         int_of(h, "last_seq"),
                         str_of(h, "last_hash"),
                         str_of(h, "sha256")};
        if (!safe_host_file_name(want.host) || want.file != want.host + ".jsonl" || !files.insert(want.file).second) {
            c.problems.push_back(std::string(k_manifest) +
                                 ": a host entry with a bad or repeated name: " + text::escape_for_log(want.host));
            continue;
        }
        ++c.hosts;
        events += want.events;
        ends[want.host] = check_file(c, dir + "/" + want.file, want);
    }
    if (events != int_of(m, "events"))
        c.problems.push_back(std::string(k_manifest) + ": the hosts' events add up to " + std::to_string(events) +
                             ", not " + std::to_string(int_of(m, "events")));
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (name == k_manifest || name == k_manifest_sha || files.count(name) != 0) continue;
        c.problems.push_back("a file the manifest does not name: " + text::escape_for_log(name));
    }
    if (ec) c.problems.push_back("the directory cannot be listed: " + ec.message());
    return c;
}

std::string month_after(const std::string& name) {
    const auto m = store::parse_month(name);
    return m ? store::next_month(*m).name : std::string();
}

// prune_before()'s archive check: throws Error(bad_input) unless every archive directory given
// verifies, each planned month has exactly one whose manifest is the recorded one and the
// store's fresh one, and the oldest planned month continues each host's stored anchor.
void check_prune_archives(store::Store& store, std::vector<PruneMonth>& plan, const std::vector<Manifest>& fresh,
                          const std::vector<std::string>& dirs, const std::string& where) {
    const std::string nothing = ": nothing was deleted";
    if (dirs.empty())
        throw Error(ErrorCode::bad_input, where,
                    "no archive given: each month pruned needs its archive directory (--archive DIR, one per "
                    "month, from `jitgate-server audit export`)" +
                        nothing);
    const std::vector<ArchiveCheck> checks = verify_archives(dirs);
    for (const ArchiveCheck& c : checks)
        if (!c.ok())
            throw Error(ErrorCode::bad_input, where,
                        "the archive " + c.dir + " (month " + (c.month.empty() ? "?" : c.month) +
                            ") fails verify-archive: " + c.problems.front() +
                            (c.problems.size() > 1 ? " (and " + std::to_string(c.problems.size() - 1) + " more)"
                                                   : std::string()) +
                            nothing);
    const std::string month_before = store::month_of(plan.front().month.from - 1).name;
    const std::string month_after_last = store::next_month(plan.back().month).name;
    std::map<std::string, const ArchiveCheck*> by_month;
    for (const ArchiveCheck& c : checks) {
        const bool planned =
            std::any_of(plan.begin(), plan.end(), [&](const PruneMonth& p) { return p.month.name == c.month; });
        if (!planned && c.month != month_before && c.month != month_after_last)
            throw Error(ErrorCode::bad_input, where,
                        "the archive " + c.dir + " is of " + (c.month.empty() ? "?" : c.month) +
                            ", which this prune neither deletes nor links to (only " + month_before + " .. " +
                            month_after_last + " may be given)" + nothing);
        if (!by_month.emplace(c.month, &c).second)
            throw Error(ErrorCode::bad_input, where, "two archives of " + c.month + " given" + nothing);
        // The recorded manifest, also for the month before: a link to an archive the store never
        // recorded proves nothing.
        const std::optional<store::AuditArchive> record = store.audit_archive(c.month);
        if (!record || record->manifest_sha256 != c.manifest_sha256)
            throw Error(ErrorCode::bad_input, where,
                        "the archive " + c.dir + " has manifest SHA-256 " + c.manifest_sha256 + ", the store " +
                            (record ? "recorded " + record->manifest_sha256 + " for " + c.month
                                    : "has no export of " + c.month + " recorded") +
                            " (not the archive exported from this store)" + nothing);
    }
    for (std::size_t i = 0; i < plan.size(); ++i) {
        const auto it = by_month.find(plan[i].month.name);
        if (it == by_month.end())
            throw Error(ErrorCode::bad_input, where,
                        plan[i].month.name + ": its archive directory is not given (--archive DIR)" + nothing);
        if (it->second->manifest_sha256 != plan[i].manifest_sha256)
            throw Error(ErrorCode::bad_input, where,
                        plan[i].month.name + ": the archive " + it->second->dir + " has manifest SHA-256 " +
                            it->second->manifest_sha256 + ", the store's events now give " + plan[i].manifest_sha256 +
                            nothing);
        plan[i].archive = it->second->dir;
    }
    // The oldest month pruned continues what the prune before left: each host's anchor.
    for (const ArchiveHost& h : fresh.front().hosts) {
        const std::optional<store::AuditChain> chain = store.audit_chain(h.host);
        if (!chain || chain->pruned_through_seq == 0) continue;
        if (h.first_seq == 1 && h.first_prev_hash == audit::k_genesis_hash) continue; // a chain started over
        if (h.first_seq != chain->pruned_through_seq + 1 || h.first_prev_hash != chain->pruned_through_hash)
            throw Error(ErrorCode::bad_input, where,
                        plan.front().month.name + ": " + h.host + "'s first event (seq " + std::to_string(h.first_seq) +
                            ") does not continue the last event pruned before (seq " +
                            std::to_string(chain->pruned_through_seq) +
                            "): events are missing between the archives, or one was altered" + nothing);
    }
}

} // namespace

bool safe_host_file_name(const std::string& host) {
    if (host.empty() || host.size() > 253 || host[0] == '.') return false;
    return std::all_of(host.begin(), host.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
               ch == '_' || ch == '-';
    });
}

std::string Manifest::text() const {
    Json hosts_json = Json::array();
    for (const ArchiveHost& h : hosts)
        hosts_json.push_back({{"host", h.host},
                              {"file", h.file},
                              {"events", h.events},
                              {"first_seq", h.first_seq},
                              {"first_prev_hash", h.first_prev_hash},
                              {"last_seq", h.last_seq},
                              {"last_hash", h.last_hash},
                              {"sha256", h.sha256}});
    const Json j{{"format", k_archive_format}, {"month", month},   {"received_from", received_from},
                 {"received_to", received_to}, {"events", events}, {"hosts", std::move(hosts_json)}};
    return j.dump(2) + "\n";
}

std::string Manifest::sha256() const {
    return audit::sha256_hex(text());
}

Manifest month_manifest(store::Store& store, const store::Month& month) {
    return scan_month(month_reader(store, month), month, [](const ArchiveHost&, const std::string&) {});
}

ExportResult export_month(store::Store& store, const store::Month& month, const std::string& output, std::int64_t now,
                          const std::string& actor) {
    const std::string where = "export " + month.name;
    if (month.to > now)
        throw Error(ErrorCode::bad_input, where, "the month is not over yet (it ends " + rfc3339(month.to) + ")");
    std::string dir = output;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back(); // "DIR/": the temporary one goes beside it
    if (dir.empty()) throw Error(ErrorCode::bad_input, where, "no output directory");
    struct stat st {};
    if (::lstat(dir.c_str(), &st) == 0)
        throw Error(ErrorCode::bad_input, where,
                    dir + " exists: an archive is never written over (give a new directory)");
    std::string tmp_template = dir + ".tmp-XXXXXX";
    if (::mkdtemp(tmp_template.data()) == nullptr)
        throw Error(ErrorCode::io, where, "cannot create " + tmp_template + ": " + errno_text(errno));
    const std::string tmp = tmp_template;
    const auto cleanup = [&] {
        std::error_code ec;
        std::filesystem::remove_all(tmp, ec);
    };
    ExportResult result;
    std::optional<store::AuditArchive> before;
    try {
        result.manifest =
            scan_month(month_reader(store, month), month,
                       [&](const ArchiveHost& h, const std::string& text) { append_file(tmp + "/" + h.file, text); });
        const std::string manifest_text = result.manifest.text();
        result.manifest_sha256 = audit::sha256_hex(manifest_text);
        before = store.audit_archive(month.name);
        if (before && before->manifest_sha256 != result.manifest_sha256)
            throw Error(ErrorCode::bad_input, where,
                        "the month was exported before with manifest SHA-256 " + before->manifest_sha256 +
                            ", the store now gives " + result.manifest_sha256 +
                            ": its stored events changed since (nothing was written)");
        for (const ArchiveHost& h : result.manifest.hosts) sync_path(tmp + "/" + h.file, O_RDONLY);
        append_file(tmp + "/" + k_manifest, manifest_text);
        append_file(tmp + "/" + k_manifest_sha, result.manifest_sha256 + "  " + k_manifest + "\n");
        sync_path(tmp + "/" + k_manifest, O_RDONLY);
        sync_path(tmp + "/" + k_manifest_sha, O_RDONLY);
        sync_path(tmp, O_RDONLY | O_DIRECTORY);
        // RENAME_NOREPLACE: a directory made meanwhile is never replaced.
        if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), RENAME_NOREPLACE) != 0)
            throw Error(ErrorCode::io, where, "cannot rename " + tmp + " to " + dir + ": " + errno_text(errno));
    } catch (...) {
        cleanup();
        throw;
    }
    const std::filesystem::path parent = std::filesystem::absolute(dir).parent_path();
    sync_path(parent.string(), O_RDONLY | O_DIRECTORY);
    store::AuditArchive record{month.name,
                               month.from,
                               month.to,
                               result.manifest.events,
                               static_cast<std::int64_t>(result.manifest.hosts.size()),
                               result.manifest_sha256,
                               now,
                               actor,
                               0};
    store::Event event{now,
                       "audit.exported",
                       "",
                       "",
                       "admin:" + actor,
                       "",
                       "",
                       Json{{"month", month.name},
                            {"events", record.events},
                            {"hosts", record.hosts},
                            {"manifest_sha256", record.manifest_sha256}}
                           .dump()};
    const store::AuditArchive stored = store.record_audit_archive(record, event);
    if (stored.manifest_sha256 != result.manifest_sha256)
        throw Error(ErrorCode::bad_input, where,
                    "another export recorded the month meanwhile with manifest SHA-256 " + stored.manifest_sha256 +
                        ", this one has " + result.manifest_sha256 + " (" + dir + " is not the recorded archive)");
    result.recorded_before = before.has_value();
    return result;
}

std::vector<ArchiveCheck> verify_archives(const std::vector<std::string>& dirs) {
    std::vector<std::pair<ArchiveCheck, std::map<std::string, FileEnd>>> checked;
    for (const std::string& dir : dirs) {
        std::map<std::string, FileEnd> ends;
        ArchiveCheck c = check_dir(dir, ends);
        checked.emplace_back(std::move(c), std::move(ends));
    }
    // Month to month: in month order, each host's first event continues its last of the month
    // before, when both months are given.
    std::vector<std::size_t> order(checked.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return checked[a].first.month < checked[b].first.month; });
    for (std::size_t k = 1; k < order.size(); ++k) {
        auto& [prev, prev_ends] = checked[order[k - 1]];
        auto& [cur, cur_ends] = checked[order[k]];
        if (cur.month.empty() || prev.month.empty()) continue;
        if (cur.month == prev.month) {
            cur.problems.push_back("the month " + cur.month + " is given twice (also " + prev.dir + ")");
            continue;
        }
        if (month_after(prev.month) != cur.month) {
            cur.notes.push_back("the month before, " + prev.month + ", is not the one given: links not checked");
            continue;
        }
        for (const auto& [host, end] : cur_ends) {
            if (!end.seen) continue;
            const auto p = prev_ends.find(host);
            if (p == prev_ends.end() || !p->second.seen) {
                cur.notes.push_back(host + ": no events in " + prev.month + ": the link to it is not checked");
                continue;
            }
            if (end.first_seq == 1 && end.first_prev_hash == audit::k_genesis_hash) {
                cur.notes.push_back(host + ": the chain starts over at seq 1 at the start of the month");
                continue;
            }
            if (end.first_seq != p->second.last_seq + 1 || end.first_prev_hash != p->second.last_hash)
                cur.problems.push_back(host + ": the month's first event (seq " + std::to_string(end.first_seq) +
                                       ") does not continue the last of " + prev.month + " (seq " +
                                       std::to_string(p->second.last_seq) +
                                       "): events are missing between the archives, or one was altered");
        }
    }
    std::vector<ArchiveCheck> out;
    for (auto& entry : checked) out.push_back(std::move(entry.first));
    return out;
}

std::vector<PruneMonth> prune_before(store::Store& store, const store::Month& before, int retention_months,
                                     std::int64_t now, const std::vector<std::string>& archive_dirs,
                                     const std::string& actor, bool dry_run, void (*log)(const store::Event&)) {
    const std::string where = "prune before " + before.name;
    if (retention_months < 12)
        throw Error(ErrorCode::bad_input, where, "the retention must be at least 12 months (audit.retention_months)");
    // The last month that may go: the month `retention_months` after it has ended by now, and
    // the store has received an event since (so a clock years fast alone cannot expire it).
    const std::optional<std::int64_t> newest = store.newest_audit_received();
    const auto retention_end = [&](const store::Month& m) {
        store::Month later = m;
        for (int i = 0; i < retention_months; ++i) later = store::next_month(later);
        return later.to;
    };
    const auto expired = [&](const store::Month& m) { return retention_end(m) <= now; };
    std::vector<PruneMonth> plan;
    std::vector<Manifest> fresh_manifests; // plan[i]'s
    // From the oldest stored event, or the oldest archive not pruned if older (its events may
    // be gone without a prune, which must not pass for an empty month).
    std::optional<std::int64_t> oldest = store.oldest_audit_received();
    for (const store::AuditArchive& a : store.audit_archives())
        if (a.pruned_at == 0 && a.events > 0 && (!oldest || a.received_from < *oldest)) oldest = a.received_from;
    if (!oldest || *oldest >= before.from) return plan;
    for (store::Month m = store::month_of(*oldest); m.from < before.from; m = store::next_month(m)) {
        if (!expired(m))
            throw Error(ErrorCode::bad_input, where,
                        m.name + " is within the retention of " + std::to_string(retention_months) +
                            " months (audit.retention_months): nothing was deleted");
        if (!newest || *newest < retention_end(m))
            throw Error(ErrorCode::bad_input, where,
                        m.name + ": its retention ends " + rfc3339(retention_end(m)) +
                            ", but the newest event the store received is from " +
                            (newest ? rfc3339(*newest) : std::string("never")) +
                            ": the server's clock may be wrong (a clock years fast must not expire evidence); "
                            "nothing was deleted. Prune once hosts' events have been received after that date");
        const Manifest fresh = month_manifest(store, m);
        const std::optional<store::AuditArchive> archive = store.audit_archive(m.name);
        if (fresh.events == 0) {
            // Empty and never pruned, though its archive holds events: rows were deleted by hand.
            if (archive && archive->pruned_at == 0 && archive->events > 0)
                throw Error(ErrorCode::bad_input, where,
                            m.name + ": its archive holds " + std::to_string(archive->events) +
                                " events but the store none, and it was never pruned: events were deleted outside "
                                "`jitgate-server audit prune`; nothing was deleted");
            continue;
        }
        if (!archive)
            throw Error(ErrorCode::bad_input, where,
                        m.name + " holds " + std::to_string(fresh.events) +
                            " events and was never exported (`jitgate-server audit export --month " + m.name +
                            "`): nothing was deleted");
        const std::string sha = fresh.sha256();
        if (archive->manifest_sha256 != sha || archive->pruned_at != 0)
            throw Error(ErrorCode::bad_input, where,
                        m.name + ": the store's events no longer match the archive exported " +
                            std::to_string(archive->exported_at) + " (manifest SHA-256 " + archive->manifest_sha256 +
                            ", now " + sha +
                            "): nothing was deleted; export the month again to a new directory "
                            "and find out what changed");
        plan.push_back(PruneMonth{m, fresh.events, static_cast<std::int64_t>(fresh.hosts.size()), sha, ""});
        fresh_manifests.push_back(fresh);
    }
    if (!plan.empty()) check_prune_archives(store, plan, fresh_manifests, archive_dirs, where);
    if (dry_run) return plan;
    for (const PruneMonth& p : plan) {
        const store::AuditArchive archive = *store.audit_archive(p.month.name);
        store::Event event{now,
                           "audit.pruned",
                           "",
                           "",
                           "admin:" + actor,
                           "",
                           "",
                           Json{{"month", p.month.name},
                                {"events", p.events},
                                {"hosts", p.hosts},
                                {"manifest_sha256", p.manifest_sha256},
                                {"archive", p.archive}}
                               .dump()};
        // The store reads the month again inside its transaction, the month closed to writers.
        const store::Month month = p.month;
        store.prune_audit_month(archive, now, event, [&month](const store::Store::AuditPageReader& read) {
            return scan_month(read, month, [](const ArchiveHost&, const std::string&) {}).sha256();
        });
        if (log != nullptr) log(event);
    }
    return plan;
}

} // namespace jitgate::server::report
