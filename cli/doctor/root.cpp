// cli/doctor/root.cpp — reading the host's files under a root directory, its account files,
// the real host's facts, and the report (JSON, text, exit status).
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/timex.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/doctor/doctor.hpp"
#include "cli/doctor/parse.hpp"
#include "jitgate/admin.hpp"
#include "jitgate/client.hpp"
#include "jitgate/text.hpp"

namespace fs = std::filesystem;

namespace jitgate::doctor {

namespace {
constexpr std::uintmax_t k_max_file = 8u << 20;

std::string mode_text(mode_t m) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
    return buf;
}
} // namespace

const char* to_string(Severity s) noexcept {
    switch (s) {
    case Severity::info:
        return "info";
    case Severity::warning:
        return "warning";
    case Severity::critical:
        return "critical";
    }
    return "critical";
}

Root::Root(std::string dir, unsigned trusted_uid) : m_dir(std::move(dir)), m_trusted_uid(trusted_uid) {
    while (!m_dir.empty() && m_dir.back() == '/') m_dir.pop_back();
}

std::string Root::real(std::string_view host_path) const {
    std::string p(host_path);
    if (p.empty() || p[0] != '/') p.insert(p.begin(), '/');
    return m_dir + p;
}

std::string Root::real_entry(std::string_view host_path) const {
    std::string p(host_path);
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    if (p.empty() || p == "/") return real("/");
    const std::string base = base_name(p);
    if (base == "." || base == "..") return real(resolve(p).value_or(p));
    const auto parent = resolve(dir_name(p[0] == '/' ? p : "/" + p));
    if (!parent) return real(p);
    return real((*parent == "/" ? "" : *parent) + "/" + base);
}

std::string Root::real_resolved(std::string_view host_path) const {
    const auto resolved = resolve(host_path);
    return resolved ? real(*resolved) : std::string();
}

Root::Read Root::read(std::string_view host_path) const {
    Read r;
    // Symbolic links are followed under the root (an absolute target is the tree's own file,
    // not this machine's).
    const auto resolved = resolve(host_path);
    if (!resolved) {
        r.status = Status::error;
        r.error = "a loop of symbolic links";
        return r;
    }
    // SECURITY NOTE: opened without following a link at the end and without blocking (a FIFO
    // swapped in after resolve() opens at once and is refused by fstat below); under --root the
    // kernel resolves the path inside the tree (openat2 RESOLVE_IN_ROOT), so a directory
    // swapped for an absolute link after resolve() still leads inside the tree, not out of it.
    // Where openat2 is missing (Linux < 5.6) a plain open is used.
    const int fd = open_file(*resolved);
    if (fd < 0) {
        // A file where a directory on the way was expected (ENOTDIR): the path does not exist.
        r.status = errno == ENOENT || errno == ENOTDIR ? Status::missing : Status::error;
        r.error = errno == ELOOP ? std::string("a symbolic link where a file was expected") : std::strerror(errno);
        return r;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        r.status = Status::error;
        r.error = "not a regular file";
        ::close(fd);
        return r;
    }
    if (static_cast<std::uintmax_t>(st.st_size) > k_max_file) {
        r.status = Status::error;
        r.error = "larger than 8 MiB";
        ::close(fd);
        return r;
    }
    std::string text;
    char buf[65536];
    while (true) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            r.status = Status::error;
            r.error = std::strerror(errno);
            ::close(fd);
            return r;
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > k_max_file) { // grew while being read
            r.status = Status::error;
            r.error = "larger than 8 MiB";
            ::close(fd);
            return r;
        }
    }
    ::close(fd);
    r.status = Status::ok;
    r.text = std::move(text);
    return r;
}

int Root::open_file(const std::string& resolved) const {
    const int flags = O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY;
    if (m_dir.empty()) return ::open(resolved.c_str(), flags);
    const int dir = ::open(m_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return -1;
    struct open_how how {};
    how.flags = static_cast<std::uint64_t>(flags);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    const std::string rel = resolved.empty() || resolved == "/" ? "." : resolved.substr(1);
    int fd = static_cast<int>(m_openat2 ? m_openat2(dir, rel.c_str(), &how, sizeof how)
                                        : ::syscall(SYS_openat2, dir, rel.c_str(), &how, sizeof how));
    // SECURITY NOTE: without openat2 (an old kernel, or a seccomp filter refusing it with EPERM,
    // as container runtimes' default profiles did) the path checked by resolve() is opened as it
    // is: a directory swapped for an absolute link in between would lead out of the tree. run()
    // says so once (doctor.plain_open).
    if (fd < 0 && (errno == ENOSYS || errno == EPERM)) {
        m_used_plain_open = true;
        fd = ::openat(dir, rel.c_str(), flags);
    }
    const int saved = errno;
    ::close(dir);
    errno = saved;
    return fd;
}

bool Root::exists(std::string_view host_path) const {
    struct stat st {};
    return ::lstat(real_entry(host_path).c_str(), &st) == 0;
}

bool Root::is_dir(std::string_view host_path) const {
    const std::string path = real_resolved(host_path);
    if (path.empty()) return false;
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::optional<std::vector<std::string>> Root::list(std::string_view host_path, bool* missing) const {
    errno = 0;
    if (missing) *missing = false;
    std::error_code ec;
    const auto resolved = resolve(host_path);
    if (!resolved) return std::nullopt;
    const std::string path = real(*resolved);
    if (!fs::exists(path, ec)) {
        if (missing) *missing = true;
        return std::vector<std::string>{};
    }
    std::vector<std::string> names;
    fs::directory_iterator it(path, ec);
    if (ec) return std::nullopt;
    // SECURITY NOTE: bounded: a directory with more entries than m_max_list (a hostile tree
    // under --root, a spool of millions) cannot be listed, which every caller reports (fail
    // closed) instead of taking the memory and time.
    for (auto i = fs::begin(it); i != fs::end(it); i.increment(ec)) {
        if (names.size() >= m_max_list) {
            errno = E2BIG;
            return std::nullopt;
        }
        names.push_back(i->path().filename().string());
    }
    if (ec) return std::nullopt;
    std::sort(names.begin(), names.end());
    return names;
}

std::optional<std::string> Root::resolve(std::string_view host_path) const {
    std::deque<std::string> parts;
    for (const auto& c : split(host_path, '/'))
        if (!c.empty()) parts.push_back(c);
    std::string cur; // "" is "/"
    int links = 0;
    while (!parts.empty()) {
        const std::string c = parts.front();
        parts.pop_front();
        if (c == ".") continue;
        if (c == "..") {
            cur = cur.empty() ? "" : dir_name(cur);
            if (cur == "/") cur.clear();
            continue;
        }
        const std::string next = cur + "/" + c;
        struct stat st {};
        if (::lstat(real(next).c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) {
            cur = next;
            continue;
        }
        if (++links > 40) return std::nullopt;
        std::string target(4096, '\0');
        const auto n = ::readlink(real(next).c_str(), target.data(), target.size());
        if (n <= 0 || static_cast<std::size_t>(n) >= target.size()) return std::nullopt;
        target.resize(static_cast<std::size_t>(n));
        // An absolute target is read under this root too; a relative one from the link's directory.
        if (target[0] == '/') cur.clear();
        const auto tparts = split(target, '/');
        for (auto it = tparts.rbegin(); it != tparts.rend(); ++it)
            if (!it->empty()) parts.push_front(*it);
    }
    return cur.empty() ? "/" : cur;
}

std::optional<std::string> Root::writable_by_others(std::string_view host_path,
                                                    std::optional<unsigned> also_trusted_uid) const {
    // The path as named, then (if a symbolic link is on the way) the path it leads to: each with
    // every directory above it up to the root, since whoever can replace a directory above a
    // file can replace the file.
    const auto resolved = resolve(host_path);
    if (!resolved) return std::string(host_path) + " is a loop of symbolic links";
    std::vector<std::string> paths{std::string(host_path)};
    if (*resolved != host_path) paths.push_back(*resolved);
    for (const auto& path : paths) {
        std::string p = path;
        std::vector<std::string> chain;
        while (!p.empty() && p != "/") {
            chain.push_back(p);
            const auto slash = p.rfind('/');
            p = slash == 0 ? "/" : p.substr(0, slash);
        }
        if (is_system_root()) chain.push_back("/");
        bool first = true;
        // A missing file (or directory) is no safer than its directory: whoever can write there
        // can create it (a root cron job running a script that is not there yet), so the
        // directories above it are still checked.
        std::string missing;
        bool below_missing = false; // the entry below this one does not exist
        for (const auto& hp : chain) {
            struct stat st {};
            if (::lstat(real_entry(hp).c_str(), &st) != 0) {
                if (errno == ENOENT && missing.empty()) missing = hp;
                below_missing = errno == ENOENT;
                first = false;
                continue;
            }
            const bool owner_ok = st.st_uid == m_trusted_uid || (also_trusted_uid && st.st_uid == *also_trusted_uid);
            const std::string what = (first ? hp : "its directory " + hp) +
                                     (path == host_path ? "" : " (where " + std::string(host_path) + " leads)") +
                                     (missing.empty() ? "" : " (" + missing + " does not exist: it can be created)");
            if (!S_ISLNK(st.st_mode)) {
                if (!owner_ok) return what + " is owned by uid " + std::to_string(st.st_uid);
                // A sticky directory above (/tmp) lets others add names but not replace the
                // trusted entry below it, which the step before checked; the path itself gets
                // no such pass.
                // Nor does it help where the entry below is missing: anyone may create it there.
                const bool sticky_above =
                    !first && !below_missing && S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX) != 0;
                if ((st.st_mode & S_IWOTH) != 0 && !sticky_above)
                    return what + " is world-writable (mode " + mode_text(st.st_mode) + ")";
                if ((st.st_mode & S_IWGRP) != 0 && !sticky_above)
                    return what + " is group-writable (mode " + mode_text(st.st_mode) + ")";
            } else if (!owner_ok) {
                return what + " is a symbolic link owned by uid " + std::to_string(st.st_uid);
            }
            first = false;
        }
    }
    return std::nullopt;
}

const Accounts::User* Accounts::user(std::string_view name) const {
    for (const auto& u : users)
        if (u.name == name) return &u;
    return nullptr;
}

Accounts read_accounts(const Root& root) {
    Accounts a;
    const auto number = [](const std::string& s) -> std::optional<unsigned> {
        if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
        const auto v = std::stoull(s);
        if (v > 0xffffffffull) return std::nullopt;
        return static_cast<unsigned>(v);
    };
    const auto passwd = root.read("/etc/passwd");
    for (const auto& line : split(passwd.text, '\n')) {
        const auto f = fields(line, ':');
        if (f.size() < 7 || f[0].empty() || f[0][0] == '#') continue;
        const auto uid = number(f[2]);
        const auto gid = number(f[3]);
        if (!uid || !gid) continue;
        a.users.push_back({f[0], *uid, *gid, f[5]});
    }
    const auto group = root.read("/etc/group");
    std::map<unsigned, std::string> by_gid;
    for (const auto& line : split(group.text, '\n')) {
        const auto f = fields(line, ':');
        if (f.size() < 4 || f[0].empty() || f[0][0] == '#') continue;
        const auto gid = number(f[2]);
        if (!gid) continue;
        a.group_gid[f[0]] = *gid;
        by_gid.emplace(*gid, f[0]);
        auto& members = a.group_users[f[0]];
        for (const auto& m : split(f[3], ','))
            if (!m.empty() && std::find(members.begin(), members.end(), m) == members.end()) members.push_back(m);
    }
    for (const auto& u : a.users) {
        const auto g = by_gid.find(u.gid);
        if (g == by_gid.end()) continue;
        auto& members = a.group_users[g->second];
        if (std::find(members.begin(), members.end(), u.name) == members.end()) members.push_back(u.name);
    }
    return a;
}

Facts host_facts() {
    Facts f;
    f.daemon_error = [](const std::string& socket) -> std::optional<std::string> {
        client::Options opts;
        opts.socket_path = socket;
        opts.connect_timeout_ms = 3000;
        opts.reply_timeout_ms = 5000;
        std::vector<wire::Json> replies;
        const auto s = client::request(opts, msg::to_json(msg::StatusRequest{}), replies);
        if (!s.ok()) return s.detail;
        if (!replies.empty() && msg::type_of(replies.back()) == msg::k_error)
            return "the daemon answered an error: " + msg::error_from_json(replies.back()).message;
        return std::nullopt;
    };
    f.clock = [](std::string& detail) {
        // The kernel's own flag, set by whichever NTP client runs (chrony, ntpd, timesyncd):
        // adjtimex(2) with modes 0 only reads.
        struct timex tx {};
        const int state = ::adjtimex(&tx);
        if (state == -1) {
            detail = std::string("adjtimex: ") + std::strerror(errno);
            return Facts::Clock::unknown;
        }
        detail = "adjtimex(2): maximum error " + std::to_string(tx.maxerror) + " us";
        return (state == TIME_ERROR || (tx.status & STA_UNSYNC) != 0) ? Facts::Clock::unsynchronised
                                                                      : Facts::Clock::synchronised;
    };
    f.disk = [](const std::string& path) -> std::optional<Facts::Disk> {
        struct statvfs sv {};
        if (::statvfs(path.c_str(), &sv) != 0) return std::nullopt;
        return Facts::Disk{static_cast<std::uint64_t>(sv.f_blocks) * sv.f_frsize,
                           static_cast<std::uint64_t>(sv.f_bavail) * sv.f_frsize};
    };
    return f;
}

Report run(const Root& root, const Facts& facts, const std::optional<std::string>& config_path) {
    Report r;
    const auto hostname = root.read("/etc/hostname");
    if (hostname.status == Root::Status::ok) r.host = trim(hostname.text);
    if (r.host.empty() && root.is_system_root()) {
        char buf[256] = {};
        if (::gethostname(buf, sizeof buf - 1) == 0) r.host = buf;
    }
    GateConfig gate;
    if (config_path) gate.config_path = *config_path;
    const Accounts accounts = read_accounts(root);
    check_jitgate_config(root, gate, r.findings);
    check_sudo_conf(root, gate, r.findings);
    check_sudoers(root, gate, r.findings);
    check_pam(root, gate, r.findings);
    check_sshd(root, accounts, gate, r.findings);
    check_groups(root, accounts, gate, r.findings);
    check_other_doors(root, r.findings);
    check_cron(root, r.findings);
    check_daemon(root, gate, accounts, facts, r.findings);
    if (root.used_plain_open())
        add(r.findings, "doctor.plain_open", Severity::info, "/",
            "the kernel refused openat2(2) (too old, or a seccomp filter): files under the root were opened "
            "with a plain openat(2)",
            "Links are still followed inside the tree, but a directory swapped for a link while doctor runs could "
            "lead a read outside it.",
            "Run doctor where openat2 is allowed (Linux 5.6 or later, without a seccomp filter refusing it).");
    // Several stacks read the same file: one "could not check" per file and check is enough.
    Findings unique;
    for (auto& f : r.findings)
        if (std::none_of(unique.begin(), unique.end(), [&](const Finding& u) {
                return u.check == f.check && u.subject == f.subject && u.what == f.what;
            }))
            unique.push_back(std::move(f));
    r.findings = std::move(unique);
    std::stable_sort(r.findings.begin(), r.findings.end(),
                     [](const Finding& a, const Finding& b) { return a.severity > b.severity; });
    return r;
}

nlohmann::json to_json(const Report& report) {
    nlohmann::json findings = nlohmann::json::array();
    std::map<std::string, int> counts{{"critical", 0}, {"warning", 0}, {"info", 0}};
    for (const auto& f : report.findings) {
        // Text read from files may be anything: JSON strings must be valid UTF-8.
        const auto clean = [](const std::string& s) { return text::is_valid_utf8(s) ? s : text::printable(s); };
        findings.push_back({{"check", f.check},
                            {"severity", to_string(f.severity)},
                            {"subject", clean(f.subject)},
                            {"what", clean(f.what)},
                            {"why", f.why},
                            {"fix", f.fix}});
        ++counts[to_string(f.severity)];
    }
    return {{"version", 1},
            {"host", text::is_valid_utf8(report.host) ? report.host : text::printable(report.host)},
            {"findings", findings},
            {"summary", {{"critical", counts["critical"]}, {"warning", counts["warning"]}, {"info", counts["info"]}}}};
}

std::string to_text(const Report& report) {
    std::string out;
    int n[3] = {0, 0, 0};
    for (const auto& f : report.findings) ++n[static_cast<int>(f.severity)];
    out += "jitgate doctor: " + text::printable(report.host.empty() ? "(this host)" : report.host) + ": " +
           std::to_string(n[2]) + " critical, " + std::to_string(n[1]) + " warning, " + std::to_string(n[0]) +
           " info\n";
    for (const Severity s : {Severity::critical, Severity::warning, Severity::info}) {
        bool header = false;
        for (const auto& f : report.findings) {
            if (f.severity != s) continue;
            if (!header) {
                out += std::string("\n") +
                       (s == Severity::critical  ? "CRITICAL"
                        : s == Severity::warning ? "WARNING"
                                                 : "INFO") +
                       "\n";
                header = true;
            }
            out += "  [" + f.check + "] " + text::printable(f.subject) + "\n";
            out += "    what: " + text::printable(f.what) + "\n";
            out += "    why:  " + f.why + "\n";
            out += "    fix:  " + f.fix + "\n";
        }
    }
    if (report.findings.empty()) out += "nothing found\n";
    return out;
}

int exit_status(const Report& report) {
    for (const auto& f : report.findings)
        if (f.severity != Severity::info) return 1;
    return 0;
}

} // namespace jitgate::doctor
