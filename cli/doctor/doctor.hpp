// cli/doctor/doctor.hpp — `jitgatectl doctor`: a check of a host for standing access that
// bypasses jitgate (docs/doctor.md lists every check, why it matters and how to fix it).
//
// Each check is one function taking a Root (the directory the host's files are read under: "/"
// on a host, a crafted tree in the tests) and, where a fact is not a file, an injected Facts.
// The checks never write, never run a program, and never throw for what they read: a file
// that must be read and cannot be is itself a finding ("could not check"), so an unreadable
// host never looks clean (fail closed). They may throw std::bad_alloc. Not thread-safe only
// in that the Facts callbacks are called from the calling thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace jitgate::doctor {

enum class Severity { info, warning, critical };
const char* to_string(Severity s) noexcept;

// One thing found. `check` is a stable id (docs/doctor.md), `subject` what it is about (a file,
// "file:line", a user), `what` the fact, `why` why it matters, `fix` what to do.
struct Finding {
    std::string check;
    Severity severity = Severity::warning;
    std::string subject;
    std::string what;
    std::string why;
    std::string fix;
};

// The host's files, read under a directory prefix. Paths given to it are the host's absolute
// paths ("/etc/sudo.conf"). `trusted_uid` is the owner a gate file must have (0 on a host; the
// tests' own uid for their fixtures).
class Root {
public:
    explicit Root(std::string dir, unsigned trusted_uid = 0);

    // The real path of the host path `host_path` ("/etc/x" under "/tmp/t" is "/tmp/t/etc/x").
    // SECURITY NOTE: the kernel follows symbolic links in it on this machine: an absolute link
    // inside the tree would lead out of it. Use it only for a path from resolve(), or through
    // real_entry().
    std::string real(std::string_view host_path) const;
    // The real path of the entry `host_path` names, with every symbolic link above it followed
    // under the root (resolve()) and the entry itself not followed: what lstat(2), lgetxattr(2)
    // and readlink(2) may be given. A loop above it gives the path as named under the root.
    std::string real_entry(std::string_view host_path) const;
    // The real path of what `host_path` leads to, every symbolic link followed under the root
    // (resolve(), then real()): what open(2) and stat(2) may be given. Empty for a loop of
    // symbolic links.
    std::string real_resolved(std::string_view host_path) const;
    unsigned trusted_uid() const noexcept { return m_trusted_uid; }
    // The most entries list() takes from one directory (the tests lower it).
    static constexpr std::size_t k_default_max_list = 200'000;
    std::size_t max_list() const noexcept { return m_max_list; }
    void set_max_list(std::size_t n) noexcept { m_max_list = n; }
    bool is_system_root() const noexcept { return m_dir.empty(); }

    enum class Status { ok, missing, error };
    struct Read {
        Status status = Status::missing;
        std::string text;  // the content when ok
        std::string error; // why not, when error
    };
    // The whole file (at most 8 MiB: a larger one is an error, never silently cut).
    Read read(std::string_view host_path) const;
    bool exists(std::string_view host_path) const;
    bool is_dir(std::string_view host_path) const;
    // The names in a directory, sorted; nullopt if it cannot be listed, or holds more than
    // max_list() entries (missing: empty list with *missing set).
    std::optional<std::vector<std::string>> list(std::string_view host_path, bool* missing = nullptr) const;
    // The host path with every symbolic link followed (an absolute target is read under the
    // root too); nullopt for a loop. A missing component ends the resolving there.
    std::optional<std::string> resolve(std::string_view host_path) const;
    // Why someone other than the trusted owner (or `also_trusted_uid`) can change the file or
    // directory at `host_path`: it, or a directory above it (up to the root), is not owned by
    // them or is group- or world-writable; the same for where a symbolic link on the way leads.
    // nullopt if nobody else can. A missing path is judged by the directories above it (whoever
    // can write to the nearest existing one can create it).
    std::optional<std::string> writable_by_others(std::string_view host_path,
                                                  std::optional<unsigned> also_trusted_uid = std::nullopt) const;

    // The resolved host path opened for reading (no link followed at its end, no blocking,
    // inside the tree under --root: openat2 RESOLVE_IN_ROOT, or a plain openat where openat2
    // fails with ENOSYS (Linux < 5.6) or EPERM (a seccomp filter)); -1 with errno set.
    int open_file(const std::string& resolved) const;
    // Whether open_file() fell back to a plain openat under --root at least once.
    bool used_plain_open() const noexcept { return m_used_plain_open; }
    // The openat2(2) system call open_file() makes (the tests inject a failing one); null: the
    // kernel's.
    using Openat2 = long (*)(int dir, const char* path, void* how, std::size_t size);
    void set_openat2(Openat2 f) noexcept { m_openat2 = f; }

private:
    std::string m_dir; // "" for "/"
    Openat2 m_openat2 = nullptr;
    mutable bool m_used_plain_open = false;
    std::size_t m_max_list = k_default_max_list;
    unsigned m_trusted_uid;
};

// The host's account database as its files say (/etc/passwd, /etc/group under the root).
// SECURITY NOTE: accounts from NSS sources other than files (LDAP, SSSD) are not seen; the
// doctor says so in docs/doctor.md.
struct Accounts {
    struct User {
        std::string name;
        unsigned uid = 0;
        unsigned gid = 0;
        std::string home;
    };
    std::vector<User> users;
    std::map<std::string, unsigned> group_gid;                   // group name -> gid
    std::map<std::string, std::vector<std::string>> group_users; // group -> members (listed + primary)
    const User* user(std::string_view name) const;
};
Accounts read_accounts(const Root& root);

// What doctor cannot read from files.
struct Facts {
    enum class Clock { synchronised, unsynchronised, unknown };
    // nullopt: the daemon answered at `socket` (a host path); otherwise why not.
    std::function<std::optional<std::string>(const std::string& socket)> daemon_error;
    // The kernel's view of the clock (adjtimex(2) on a host); `detail` says how it was learnt.
    std::function<Clock(std::string& detail)> clock;
    struct Disk {
        std::uint64_t total = 0;
        std::uint64_t available = 0;
    };
    // statvfs of the file system holding `real_path`; nullopt if it cannot be asked.
    std::function<std::optional<Disk>(const std::string& real_path)> disk;
};
// The real host's facts: the daemon's status over its socket, adjtimex(2), statvfs(2).
Facts host_facts();

// The jitgate configuration doctor needs, from jitgate.yaml (or its defaults when it does not
// load: that is a finding of its own).
struct GateConfig {
    std::string config_path = "/etc/jitgate/jitgate.yaml";
    std::string socket = "/run/jitgate/jitgated.sock";
    std::string spool_dir = "/var/lib/jitgate/spool";
    std::string daemon_binary = "/usr/sbin/jitgated";
    std::string daemon_user = "jitgate";
    std::string break_glass_group;               // "" when off
    std::vector<std::string> plugin_paths;       // sudo_jitgate.so as sudo.conf names it (host paths)
    bool sshd_account_skips_break_glass = false; // set by check_pam: the documented skip is there
    bool loaded = false;
};

using Findings = std::vector<Finding>;

// The checks. Each appends what it finds; docs/doctor.md has one section per check id prefix.
void check_jitgate_config(const Root& root, GateConfig& gate, Findings& out);                         // config.*
void check_sudo_conf(const Root& root, GateConfig& gate, Findings& out);                              // sudo_conf.*
void check_sudoers(const Root& root, const GateConfig& gate, Findings& out);                          // sudoers.*
void check_pam(const Root& root, GateConfig& gate, Findings& out);                                    // pam.*
void check_sshd(const Root& root, const Accounts& accounts, const GateConfig& gate, Findings& out);   // sshd.*
void check_groups(const Root& root, const Accounts& accounts, const GateConfig& gate, Findings& out); // groups.*
// Reads a file's security.capability attribute as lgetxattr(2) does (its real path; the length,
// or -1 with errno set). Empty: lgetxattr(2) itself. The tests inject one.
using CapsAttrReader = std::function<long(const std::string& real_path, char* buf, std::size_t size)>;
void check_other_doors(const Root& root, Findings& out, const CapsAttrReader& read_caps = {}); // doors.*
void check_cron(const Root& root, Findings& out);                                              // cron.*
void check_daemon(const Root& root, const GateConfig& gate, const Accounts& accounts, const Facts& facts,
                  Findings& out); // daemon.*, spool.*, clock.*

// Whether check_other_doors walks a mount below a walked directory, from its statfs(2) f_type
// and f_flags: not a pseudo file system (proc, sysfs, cgroup, ...); a network, FUSE or 9p one
// only when it is not mounted nosuid (ST_NOSUID), where setuid programs work.
bool walk_mount(unsigned long f_type, unsigned long f_flags);

// The paths a sudoers rule must not be able to change unnoticed ("keys to the gate"), and the
// PAM module's place on this host.
std::vector<std::string> gate_paths(const GateConfig& gate);

// A file's capabilities (its security.capability attribute, struct vfs_cap_data).
struct FileCaps {
    int revision = 0;
    bool effective = false;
    std::uint64_t permitted = 0;
    std::uint64_t inheritable = 0;
    std::uint32_t rootid = 0; // revision 3: the user namespace's root the capabilities are for
};
// nullopt when the attribute is not a vfs_cap_data of revision 1, 2 or 3 of the right size.
std::optional<FileCaps> decode_file_caps(std::string_view xattr);
// The names of the capabilities (permitted or inheritable) that make root ("cap_setuid", ...).
std::vector<std::string> root_capabilities(const FileCaps& caps);
// A shell, interpreter or editor that runs commands, by file name ("python3.11", "vim.basic",
// "mawk", "emacs-gtk"): the name before its first `.` or `-`, version digits at its end dropped.
bool is_interpreter_name(std::string_view name);

struct Report {
    std::string host;
    Findings findings;
};
// Every check, in order. `config_path` overrides the jitgate.yaml path (a host path).
Report run(const Root& root, const Facts& facts, const std::optional<std::string>& config_path);

// {"version":1,"host":...,"findings":[...],"summary":{"critical":N,"warning":N,"info":N}}
nlohmann::json to_json(const Report& report);
// For people: grouped by severity, each finding with its why and fix; text from files escaped.
std::string to_text(const Report& report);
// 0: no warning and no critical finding; 1: at least one (docs/doctor.md, man/jitgatectl.8).
int exit_status(const Report& report);

} // namespace jitgate::doctor
