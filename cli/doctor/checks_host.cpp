// cli/doctor/checks_host.cpp — the other ways to root (groups, pkexec/polkit, doas, setuid
// programs, cron) and the gate's own health (jitgated, its spool, the clock).
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/xattr.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <set>

#include "cli/doctor/doctor.hpp"
#include "cli/doctor/parse.hpp"

namespace jitgate::doctor {

namespace {
constexpr std::size_t k_max_walk = 2'000'000;
// Directories deeper than this below a walked one are not entered (doors.setuid_incomplete).
constexpr int k_max_depth = 32;
// At most this many doors.setuid_incomplete findings for directories not entered.
constexpr std::size_t k_max_cut_reported = 20;

// The directories walked for setuid programs and file capabilities, parents first.
constexpr const char* k_walk_dirs[] = {"/usr/bin",   "/usr/sbin",  "/bin", "/sbin", "/usr/lib", "/usr/libexec",
                                       "/usr/local", "/usr/games", "/opt", "/etc",  "/home",    "/root",
                                       "/srv",       "/tmp",       "/var", "/run",  "/dev/shm"};
// Container and image storage: setuid programs in an image are the container's, behind
// root-only directories. SECURITY NOTE: not walked when the directory is root's and others
// cannot enter it (no o+x), so nobody but root reaches a program below it; otherwise (another
// owner, or enterable by all) walked like any other. docs/doctor.md says so.
constexpr const char* k_walk_skip[] = {"/var/lib/docker",     "/var/lib/containers", "/var/lib/lxc",    "/var/lib/lxd",
                                       "/var/lib/incus",      "/var/lib/machines",   "/run/containerd", "/run/docker",
                                       "/var/lib/containerd", "/run/containers"};

// Whether the file system holding `real_path` is walked for setuid programs (walk_mount).
// Fails closed to "walk it" when statfs(2) cannot tell.
bool walked_file_system(const std::string& real_path) {
    struct statfs fs {};
    if (::statfs(real_path.c_str(), &fs) != 0) return true;
    return walk_mount(static_cast<unsigned long>(fs.f_type), static_cast<unsigned long>(fs.f_flags));
}

// The capabilities that make root, by number (linux/capability.h): each lets a program take
// uid 0, rewrite root's files, load kernel code or take over a root process; cap_sys_chroot
// (a chroot with a setuid program and libraries of one's own) and cap_sys_boot (kexec_load a
// kernel of one's own) too. cap_audit_control is not root but turns the kernel's audit off,
// which an audit trail must not allow unseen. Not listed: cap_ipc_owner (shared memory of
// others, no root by itself), cap_linux_immutable (needs ownership or cap_fowner to matter),
// cap_kill (a denial of service), cap_net_*.
constexpr std::array<std::pair<int, const char*>, 18> k_root_caps{{{0, "cap_chown"},
                                                                   {1, "cap_dac_override"},
                                                                   {2, "cap_dac_read_search"},
                                                                   {3, "cap_fowner"},
                                                                   {4, "cap_fsetid"},
                                                                   {6, "cap_setgid"},
                                                                   {7, "cap_setuid"},
                                                                   {8, "cap_setpcap"},
                                                                   {16, "cap_sys_module"},
                                                                   {17, "cap_sys_rawio"},
                                                                   {18, "cap_sys_chroot"},
                                                                   {19, "cap_sys_ptrace"},
                                                                   {21, "cap_sys_admin"},
                                                                   {22, "cap_sys_boot"},
                                                                   {27, "cap_mknod"},
                                                                   {30, "cap_audit_control"},
                                                                   {31, "cap_setfcap"},
                                                                   {39, "cap_bpf"}}};

std::uint32_t le32(const unsigned char* p) {
    return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
           static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

} // namespace

bool walk_mount(unsigned long f_type, unsigned long f_flags) {
    // Pseudo file systems hold no programs anyone installed.
    static constexpr unsigned long pseudo[] = {
        0x9fa0,     // proc
        0x62656572, // sysfs
        0x27e0eb,   // cgroup
        0x63677270, // cgroup2
        0x64626720, // debugfs
        0x74726163, // tracefs
        0x73636673, // securityfs
        0xcafe4a11, // bpf
        0x6e736673, // nsfs
        0x1cd1,     // devpts
        0x0187,     // autofs
        0x42494e4d, // binfmt_misc
        0x62656570, // configfs
        0xde5e81e4, // efivarfs
        0x6165676c, // pstore
        0x19800202, // mqueue
    };
    // Network, FUSE and 9p file systems: slow to walk, and their files are put there from
    // elsewhere (an NFS server, a FUSE daemon). SECURITY NOTE: skipped only when mounted nosuid,
    // where the kernel honours neither setuid bits nor file capabilities; otherwise a setuid-root
    // shell planted from the server (an NFS /home without nosuid) runs as root here, so they are
    // walked.
    static constexpr unsigned long remote[] = {
        0x6969,     // nfs
        0x517b,     // smb
        0xff534d42, // cifs
        0xfe534d42, // smb2
        0x65735546, // fuse
        0x00c36400, // ceph
        0x5346414f, // afs
        0x01021997, // 9p
        0x564c,     // ncp
        0x73757245, // coda
    };
    const unsigned long type = f_type & 0xffffffffUL;
    if (std::find(std::begin(pseudo), std::end(pseudo), type) != std::end(pseudo)) return false;
    if (std::find(std::begin(remote), std::end(remote), type) != std::end(remote)) return (f_flags & ST_NOSUID) == 0;
    return true;
}

std::optional<FileCaps> decode_file_caps(std::string_view xattr) {
    // struct vfs_cap_data (linux/capability.h), little-endian: magic_etc, then {permitted,
    // inheritable} per 32 capabilities (one pair in revision 1, two in 2 and 3), then (3) the
    // root uid of the user namespace the capabilities are for.
    const auto* b = reinterpret_cast<const unsigned char*>(xattr.data());
    if (xattr.size() < 4) return std::nullopt;
    const std::uint32_t magic = le32(b);
    FileCaps c;
    c.effective = (magic & 0x000001u) != 0;
    c.revision = static_cast<int>(magic >> 24);
    std::size_t words = 0;
    if (c.revision == 1 && xattr.size() == 12)
        words = 1;
    else if (c.revision == 2 && xattr.size() == 20)
        words = 2;
    else if (c.revision == 3 && xattr.size() == 24)
        words = 2;
    else
        return std::nullopt;
    for (std::size_t i = 0; i < words; ++i) {
        c.permitted |= static_cast<std::uint64_t>(le32(b + 4 + 8 * i)) << (32 * i);
        c.inheritable |= static_cast<std::uint64_t>(le32(b + 8 + 8 * i)) << (32 * i);
    }
    if (c.revision == 3) c.rootid = le32(b + 20);
    return c;
}

std::vector<std::string> root_capabilities(const FileCaps& caps) {
    // Inheritable ones count too: they are granted when the caller already holds them (a
    // pam_cap user, an ambient set), which is how such a file is meant to be used.
    const std::uint64_t any = caps.permitted | caps.inheritable;
    std::vector<std::string> out;
    for (const auto& [bit, name] : k_root_caps)
        if ((any >> bit) & 1u) out.emplace_back(name);
    return out;
}

void check_groups(const Root& root, const Accounts& accounts, const GateConfig& gate, Findings& out) {
    (void)root;
    for (const auto& u : accounts.users)
        if (u.uid == 0 && u.name != "root")
            add(out, "groups.uid0", Severity::critical, u.name, "the account " + u.name + " has uid 0",
                "It is root under another name: logging in as it is logging in as root.",
                "Remove the account or give it its own uid.");
    const auto members = [&](const std::string& g) -> std::vector<std::string> {
        const auto it = accounts.group_users.find(g);
        return it == accounts.group_users.end() ? std::vector<std::string>{} : it->second;
    };
    for (const char* g : {"docker", "lxd", "incus-admin", "disk", "kmem"})
        for (const auto& m : members(g))
            add(out, "groups.root_equivalent", Severity::critical, m, m + " is in the group " + g,
                std::string("Members of ") + g +
                    " can become root without sudo (a privileged container, or the raw disk/memory), so "
                    "jitgate never sees it.",
                std::string("Remove ") + m + " from " + g + "; give the access through sudo rules that jitgate gates.");
    for (const char* g : {"sudo", "wheel", "admin"})
        for (const auto& m : members(g))
            if (m != "root")
                add(out, "groups.admin", Severity::warning, m, m + " is in the group " + g,
                    std::string("polkit treats ") + g +
                        " members as administrators: pkexec and other polkit actions run as root after the "
                        "user's own password, without jitgate.",
                    "Keep admin groups empty and give sudo rules to named people, or remove pkexec/polkit's admin "
                    "rule (doors.pkexec).");
    const auto is_uid0 = [&](const std::string& name) {
        const auto* u = accounts.user(name);
        return u != nullptr && u->uid == 0; // reported as groups.uid0 (or root itself)
    };
    for (const auto& m : members("root"))
        if (!is_uid0(m))
            add(out, "groups.root_group", Severity::warning, m, m + " is in the group root",
                "Files of the group root that are group-writable are then writable by this user.",
                "Remove the user from the group root.");
    if (!gate.break_glass_group.empty()) {
        if (!accounts.group_gid.contains(gate.break_glass_group)) {
            add(out, "groups.break_glass_missing", Severity::warning, gate.break_glass_group,
                "the break-glass group " + gate.break_glass_group + " is not in /etc/group",
                "Nobody can use break-glass: when jitgated is down, nobody gets in (unless the group comes from "
                "LDAP/SSSD, which doctor does not read).",
                "Create the group with the people on call, or change break_glass.group.");
        } else {
            for (const auto& m : members(gate.break_glass_group))
                add(out, "groups.break_glass_member", Severity::info, m,
                    m + " is in the break-glass group " + gate.break_glass_group,
                    "Break-glass members pass without approval by giving a reason (loud, but not held).",
                    "Review the list: only the people on call, and each use reviewed afterwards.");
        }
    }
}

namespace {

// Shells, interpreters and editors that run commands: with a capability that makes root, they
// hand it to any script. Matched on the file name before its first `.` or `-`, without the
// version digits at its end (python3.11, perl5.36, vim.basic, vim.tiny, emacs-gtk, lua5.4).
constexpr const char* k_interpreters[] = {
    "sh",   "bash", "dash", "zsh",  "ksh",    "mksh", "csh", "tcsh",   "fish",  "ash",  "busybox", "python",
    "pypy", "perl", "ruby", "node", "nodejs", "php",  "lua", "luajit", "tclsh", "wish", "expect",  "gdb",
    "awk",  "gawk", "mawk", "nawk", "env",    "vi",   "vim", "nvim",   "emacs", "guile"};

// The (program, capabilities) pairs a distribution itself sets and that are the program's
// documented design, not a door: shadow's newuidmap/newgidmap map only the ranges of
// /etc/subuid and /etc/subgid (Fedora, RHEL and openSUSE install them with exactly these
// capabilities; Debian 12 installs them setuid root instead). Debian 12's own packages set no
// other file capability that doctor counts as making root (ping, arping, mtr-packet, fping,
// dumpcap, gst-ptp-helper, gnome-keyring-daemon carry only cap_net_*, cap_ipc_lock or
// cap_sys_nice). SECURITY NOTE: a pair is left out only with exactly this capability set and
// only when dpkg installed the file; anything more, or an unpackaged copy, is reported.
constexpr std::array<std::pair<const char*, const char*>, 2> k_capability_allowlist{
    {{"/usr/bin/newuidmap", "cap_setuid"}, {"/usr/bin/newgidmap", "cap_setgid"}}};

} // namespace

bool is_interpreter_name(std::string_view name) {
    std::string_view stem = name.substr(0, std::min(name.find_first_of(".-"), name.size()));
    while (!stem.empty() && std::isdigit(static_cast<unsigned char>(stem.back()))) stem.remove_suffix(1);
    return std::any_of(std::begin(k_interpreters), std::end(k_interpreters),
                       [&](const char* i) { return stem == std::string_view(i); });
}

void check_other_doors(const Root& root, Findings& out, const CapsAttrReader& read_caps) {
    // What the distribution's packages installed (dpkg's file lists), for setuid programs and polkit rules.
    std::set<std::string> packaged;
    bool have_dpkg = false;
    if (const auto lists = root.list("/var/lib/dpkg/info")) {
        for (const auto& n : *lists) {
            if (!n.ends_with(".list")) continue;
            have_dpkg = true;
            for (const auto& l : split(root.read("/var/lib/dpkg/info/" + n).text, '\n')) packaged.insert(l);
        }
    }
    const auto is_packaged = [&](const std::string& p) {
        if (packaged.contains(p)) return true;
        // merged /usr: a package may list /bin/su for /usr/bin/su and the other way round.
        for (const char* d : {"/bin/", "/sbin/", "/lib/"}) {
            if (p.starts_with(std::string("/usr") + d) && packaged.contains(p.substr(4))) return true;
            if (p.starts_with(d) && packaged.contains("/usr" + p)) return true;
        }
        return false;
    };
    // pkexec: polkit's sudo, which jitgate does not gate.
    for (const char* p : {"/usr/bin/pkexec", "/bin/pkexec"}) {
        struct stat st {};
        const std::string where = root.real_resolved(p);
        if (!where.empty() && ::lstat(where.c_str(), &st) == 0 && (st.st_mode & S_ISUID) != 0) {
            add(out, "doors.pkexec", Severity::warning, p, std::string(p) + " is installed setuid root",
                "pkexec runs any program as root for polkit administrators (members of sudo/wheel, with their own "
                "password) without going through sudo, so jitgate never sees it.",
                "Remove the policykit-1/polkit package's pkexec, or chmod u-s it, unless something needs it.");
            break;
        }
    }
    // sudo-rs, the Rust sudo (Debian trixie's sudo-rs package: /usr/lib/cargo/bin/sudo and
    // /usr/bin/sudo-rs; Ubuntu 25.10 links /usr/bin/sudo to it): it reads sudoers but loads no
    // sudo.conf plugins, so jitgate's approval plugin never runs.
    std::vector<std::string> sudo_rs_seen;
    for (const char* p : {"/usr/bin/sudo-rs", "/usr/lib/cargo/bin/sudo", "/usr/local/bin/sudo-rs", "/usr/bin/sudo",
                          "/bin/sudo", "/usr/sbin/sudo", "/usr/local/bin/sudo"}) {
        if (!root.exists(p)) continue;
        const auto target = root.resolve(p);
        if (!target) continue;
        const auto is_rs = [](const std::string& path) {
            return base_name(path).find("sudo-rs") != std::string::npos || under(path, "/usr/lib/cargo");
        };
        bool rs = is_rs(p) || is_rs(*target);
        if (!rs && base_name(*target) == "sudo") {
            // A copied (not linked) sudo-rs: its program text names itself.
            const auto r = root.read(*target);
            rs = r.status == Root::Status::ok && r.text.find("sudo-rs") != std::string::npos;
            if (r.status == Root::Status::error &&
                std::find(sudo_rs_seen.begin(), sudo_rs_seen.end(), *target) == sudo_rs_seen.end()) {
                sudo_rs_seen.push_back(*target);
                add(out, "doors.sudo_unverified", Severity::info, p,
                    std::string(p) + (*target != p ? " (" + *target + ")" : std::string()) +
                        " could not be read to tell whether it is sudo-rs: " + r.error,
                    "A sudo-rs copied over sudo loads no sudo.conf plugins: jitgate's approval and audit never run. "
                    "doctor reads at most 8 MiB of a program.",
                    "Check by hand: `" + *target + " --version` says sudo-rs or Sudo version; `dpkg -S " + *target +
                        "`.");
            }
        }
        if (!rs || std::find(sudo_rs_seen.begin(), sudo_rs_seen.end(), *target) != sudo_rs_seen.end()) continue;
        sudo_rs_seen.push_back(*target);
        struct stat st {};
        const bool setuid_root = ::lstat(root.real(*target).c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
                                 (st.st_mode & S_ISUID) != 0 && st.st_uid == root.trusted_uid();
        add(out, "doors.sudo_rs", setuid_root ? Severity::critical : Severity::warning, p,
            std::string(p) + (*target != p ? " (" + *target + ")" : std::string()) + " is sudo-rs" +
                (setuid_root ? ", installed setuid root" : ", not setuid (it cannot run as root until it is)"),
            "sudo-rs reads sudoers like sudo but loads no sudo.conf plugins: jitgate's approval and audit plugins "
            "never run, so every sudoers rule works through it with no approval and no record in jitgate.",
            "Remove the sudo-rs package (or, on Ubuntu 25.10 and later, `update-alternatives --set sudo "
            "/usr/bin/sudo.ws` to use the original sudo) and keep only sudo with the jitgate plugins.");
    }
    for (const char* dir : {"/etc/polkit-1/rules.d", "/usr/share/polkit-1/rules.d"}) {
        const auto names = root.list(dir);
        if (!names) {
            add_unreadable(out, "doors", dir, "cannot list the directory");
            continue;
        }
        for (const auto& n : *names) {
            const std::string f = std::string(dir) + "/" + n;
            // The distribution's own rules are its business; the admin's (and strays) are ours.
            if (!n.ends_with(".rules") || (std::string(dir).starts_with("/usr/") && is_packaged(f))) continue;
            const auto r = root.read(f);
            if (r.status == Root::Status::error) add_unreadable(out, "doors", f, r.error);
            if (r.text.find("polkit.Result.YES") != std::string::npos)
                add(out, "doors.polkit_rule", Severity::warning, f, "a polkit rule answers polkit.Result.YES",
                    "A polkit action allowed without authentication can run privileged operations (units, "
                    "packages, mounts) outside sudo and jitgate.",
                    "Review the rule; allow only what is needed, for whom it is needed.");
        }
    }
    // The older polkit's .pkla files: [section] ... ResultActive=yes grants without asking.
    for (const char* base : {"/etc/polkit-1/localauthority", "/var/lib/polkit-1/localauthority"}) {
        const auto dirs = root.list(base);
        if (!dirs) {
            add_unreadable(out, "doors", base, "cannot list the directory");
            continue;
        }
        for (const auto& d : *dirs) {
            const std::string dir = std::string(base) + "/" + d;
            const auto names = root.is_dir(dir) ? root.list(dir) : std::optional<std::vector<std::string>>{};
            if (!names) continue;
            for (const auto& n : *names) {
                const std::string f = dir + "/" + n;
                // As for the rules: the packages' own files outside /etc are the distribution's.
                if (!n.ends_with(".pkla") || (!f.starts_with("/etc/") && is_packaged(f))) continue;
                const auto r = root.read(f);
                if (r.status == Root::Status::error) add_unreadable(out, "doors", f, r.error);
                int line = 0;
                for (const auto& l : split(r.text, '\n')) {
                    ++line;
                    const std::string t = lower(trim(l));
                    if ((t.starts_with("resultany") || t.starts_with("resultactive") ||
                         t.starts_with("resultinactive")) &&
                        t.ends_with("=yes"))
                        add(out, "doors.polkit_rule", Severity::warning, f + ":" + std::to_string(line), trim(l),
                            "A polkit action allowed without authentication can run privileged operations (units, "
                            "packages, mounts) outside sudo and jitgate.",
                            "Review the rule; allow only what is needed, for whom it is needed.");
                }
            }
        }
    }
    for (const char* f : {"/etc/doas.conf", "/usr/local/etc/doas.conf"}) {
        const auto r = root.read(f);
        if (r.status == Root::Status::error) add_unreadable(out, "doors", f, r.error);
        int n = 0;
        for (const auto& l : split(r.text, '\n')) {
            ++n;
            const auto w = words(l.substr(0, l.find('#')));
            if (!w.empty() && w[0] == "permit")
                add(out, "doors.doas", Severity::critical, std::string(f) + ":" + std::to_string(n), trim(l),
                    "doas runs commands as root without sudo: jitgate never sees them.",
                    "Remove doas (or its permit rules); give the access through sudo.");
        }
    }
    std::vector<std::string> found;
    std::vector<std::pair<std::string, std::vector<std::string>>> with_caps;
    std::vector<std::string> walked;
    std::vector<std::pair<std::string, std::string>> cut; // directories not entered, and why
    std::size_t seen = 0;
    std::function<void(const std::string&, int, dev_t)> walk = [&](const std::string& dir, int depth, dev_t dev) {
        if (depth > k_max_depth) {
            cut.emplace_back(dir, "deeper than " + std::to_string(k_max_depth) + " directories");
            return;
        }
        const auto names = root.list(dir);
        if (!names) {
            cut.emplace_back(dir, errno == E2BIG ? "more than " + std::to_string(root.max_list()) + " entries"
                                                 : std::string("cannot list it"));
            return;
        }
        for (const auto& n : *names) {
            if (++seen > k_max_walk) return;
            const std::string p = (dir == "/" ? "" : dir) + "/" + n;
            struct stat st {};
            if (::lstat(root.real(p).c_str(), &st) != 0) continue;
            if (S_ISDIR(st.st_mode)) {
                if (std::find(std::begin(k_walk_skip), std::end(k_walk_skip), p) != std::end(k_walk_skip) &&
                    st.st_uid == root.trusted_uid() && (st.st_mode & S_IXOTH) == 0)
                    continue;
                // Another mount: entered unless it is a pseudo file system (/proc, /sys, ...) or
                // a network, FUSE or 9p one mounted nosuid (walk_mount).
                if (st.st_dev != dev && !walked_file_system(root.real(p))) continue;
                walk(p, depth + 1, st.st_dev);
            } else if (S_ISREG(st.st_mode)) {
                if ((st.st_mode & (S_ISUID | S_ISGID)) != 0 &&
                    ((st.st_mode & S_ISUID) == 0 || st.st_uid == root.trusted_uid()))
                    found.push_back(p);
                // File capabilities: security.capability, read without following anything.
                std::array<char, 64> buf{};
                const std::string real = root.real(p);
                const long len = read_caps ? read_caps(real, buf.data(), buf.size())
                                           : ::lgetxattr(real.c_str(), "security.capability", buf.data(), buf.size());
                if (len > 0) {
                    const auto caps = decode_file_caps(std::string_view(buf.data(), static_cast<std::size_t>(len)));
                    if (!caps)
                        with_caps.emplace_back(p, std::vector<std::string>{"(an attribute doctor cannot decode)"});
                    else if (auto cap_names = root_capabilities(*caps); !cap_names.empty())
                        with_caps.emplace_back(p, std::move(cap_names));
                } else if (len < 0 && errno == ERANGE) {
                    // Larger than any vfs_cap_data: not taken as harmless (fail closed).
                    with_caps.emplace_back(p, std::vector<std::string>{"(an attribute doctor cannot decode)"});
                }
            }
        }
    };
    // Where programs live, and where people and strays put files: not the whole file system
    // (/proc, /sys and network mounts would make it slow and say nothing). A parent comes
    // before the directories under it, so each tree is walked once.
    for (const char* d : k_walk_dirs) {
        // Entered where it leads under the root (merged /usr, an image's absolute links), each
        // directory once; below it, nothing is followed.
        const auto dir = root.resolve(d);
        if (!dir || std::any_of(walked.begin(), walked.end(), [&](const std::string& w) { return under(*dir, w); }))
            continue;
        struct stat st {};
        if (::lstat(root.real(*dir).c_str(), &st) == 0 && S_ISDIR(st.st_mode) && walked_file_system(root.real(*dir))) {
            walked.push_back(*dir);
            walk(*dir, 0, st.st_dev);
        }
    }
    if (seen > k_max_walk)
        add(out, "doors.setuid_incomplete", Severity::warning, "/",
            "the search for setuid programs and file capabilities stopped after " + std::to_string(k_max_walk) +
                " entries",
            "Programs after that point were not looked at.", "Look for them with `find / -xdev -perm /6000`.");
    for (std::size_t i = 0; i < cut.size() && i < k_max_cut_reported; ++i) {
        const auto& [dir, why] = cut[i];
        add(out, "doors.setuid_incomplete", Severity::warning, dir,
            "the search for setuid programs and file capabilities did not enter " + dir + " (" + why + ")" +
                (i + 1 == k_max_cut_reported && cut.size() > k_max_cut_reported
                     ? "; " + std::to_string(cut.size() - k_max_cut_reported) + " more directories were left out too"
                     : std::string()),
            "Programs below it were not looked at: a setuid-root program or one with a capability that makes root "
            "may be hidden there.",
            "Look for them with `find " + dir + " -xdev -perm /6000` and `getcap -r " + dir + "`.");
    }
    for (const auto& p : found) {
        if (have_dpkg && is_packaged(p)) continue;
        add(out, have_dpkg ? "doors.setuid_unpackaged" : "doors.setuid_unverified",
            have_dpkg ? Severity::warning : Severity::info, p,
            have_dpkg ? p + " is setuid root or setgid, and no package installed it"
                      : p + " is setuid root or setgid (no dpkg database: its package could not be checked)",
            "A setuid-root program runs as root for anyone who runs it; one nobody vetted may be a shell in "
            "disguise, and jitgate never sees it.",
            "Find out who put it there; remove it or chmod u-s,g-s it.");
    }
    for (const auto& entry : with_caps) {
        const std::string& p = entry.first;
        const std::vector<std::string>& names = entry.second;
        std::string list;
        for (const auto& n : names) list += (list.empty() ? "" : ",") + n;
        // dpkg records no file capabilities: "a package installed it" says nothing of who set
        // them, so a packaged program is reported too unless its exact pair is the
        // distribution's own (k_capability_allowlist).
        const bool is_pkg = have_dpkg && is_packaged(p);
        const bool allowed =
            is_pkg && std::any_of(k_capability_allowlist.begin(), k_capability_allowlist.end(), [&](const auto& a) {
                return list == a.second && (p == a.first || (std::string_view(a.first).starts_with("/usr/") &&
                                                             p == std::string_view(a.first).substr(4)));
            });
        if (allowed) continue;
        if (is_interpreter_name(base_name(p))) {
            add(out, "doors.capability_interpreter", Severity::critical, p,
                p + " is a shell or interpreter with the file capabilities " + list,
                "Anyone who runs it runs their own code with those capabilities: cap_setuid is setuid(0) away from a "
                "root shell, the others rewrite root's files or take over root's processes, and jitgate never sees "
                "it.",
                "Remove them: setcap -r " + p + ".");
            continue;
        }
        const char* id = !have_dpkg ? "doors.capability_unverified"
                         : is_pkg   ? "doors.capability_packaged"
                                    : "doors.capability_unpackaged";
        add(out, id, have_dpkg ? Severity::warning : Severity::info, p,
            p + " has the file capabilities " + list +
                (!have_dpkg ? " (no dpkg database: its package could not be checked)"
                 : is_pkg   ? " (a package installed the program; dpkg does not record capabilities, so not who "
                              "set them)"
                            : ", and no package installed it"),
            "These capabilities are as good as root (cap_setuid: become uid 0; cap_dac_override or cap_fowner: "
            "rewrite /etc/sudoers or /etc/shadow; cap_sys_admin, cap_sys_module, cap_sys_ptrace: take the "
            "kernel or a root process). A program that hands them to its caller, or lets the caller choose "
            "what it does with them (tee writing any file with cap_dac_override), is a way to root outside "
            "sudo and jitgate.",
            "Find out who set them (getcap " + p + "); remove them with setcap -r, or the program.");
    }
}

namespace {

// A path as cron means it: a relative one (or none, the current directory) is from root's home,
// cron's working directory for root's jobs.
std::string from_root_home(const std::string& path) {
    return path.empty() || path[0] != '/' ? "/root/" + path : path;
}

// A cron environment line, `NAME=value` or `NAME = "value"` (cron's load_env): {name, value}.
std::optional<std::pair<std::string, std::string>> cron_env(const std::string& line) {
    const std::string t = trim(line);
    if (t.empty() || !(std::isalpha(static_cast<unsigned char>(t[0])) || t[0] == '_')) return std::nullopt;
    std::size_t i = 0;
    while (i < t.size() && (std::isalnum(static_cast<unsigned char>(t[i])) || t[i] == '_')) ++i;
    const std::string name = t.substr(0, i);
    std::string rest = trim(t.substr(i));
    if (!rest.starts_with("=")) return std::nullopt;
    rest = trim(rest.substr(1));
    if (rest.size() >= 2 && (rest[0] == '"' || rest[0] == '\'') && rest.back() == rest[0])
        rest = rest.substr(1, rest.size() - 2);
    return std::make_pair(name, rest);
}

// Programs that start the command after their options: its name, the options that take the
// next word as their value, and how many words (a lock file, a duration) come before it.
struct Wrapper {
    const char* name;
    const char* with_value;
    std::size_t positional;
};
constexpr Wrapper k_wrappers[] = {
    {"flock", "wEc", 1},  {"timeout", "sk", 1}, {"nice", "n", 0},          {"ionice", "cnp", 0},
    {"nohup", "", 0},     {"setsid", "", 0},    {"env", "uCS", 0},         {"chronic", "", 0},
    {"stdbuf", "ioe", 0}, {"time", "fo", 0},    {"run-one", "", 0},        {"sudo", "ugCDhprTU", 0},
    {"chrt", "", 1},      {"taskset", "", 1},   {"xargs", "adEIlLnPs", 0}, {"systemd-cat", "tp", 0},
    {"cronic", "", 0},    {"unbuffer", "", 0},  {"caffeinate", "", 0}};

// The programs a cron command starts: the first word of each part between ;, &&, || and |
// (up to the first %, after which cron feeds the rest as input), past variable assignments
// and the shell's own commands (cd, test, [ ...), which are not looked up in PATH.
std::vector<std::string> cron_programs(const std::string& command) {
    static const std::set<std::string> builtins{
        "cd",     "[",     "test",   "true", "false", ":",     ".",      "exec",   "command", "if",
        "then",   "else",  "elif",   "fi",   "!",     "echo",  "printf", "export", "set",     "umask",
        "ulimit", "while", "do",     "done", "for",   "{",     "}",      "(",      ")",       "wait",
        "trap",   "eval",  "source", "read", "shift", "unset", "return", "exit",   "case",    "esac"};
    std::string c = command.substr(0, command.find('%'));
    for (std::size_t i = 0; i < c.size(); ++i) {
        const char ch = c[i];
        // `&` in a redirection (2>&1, &>file, >&2) separates nothing.
        const bool redirect_amp =
            ch == '&' && ((i > 0 && (c[i - 1] == '>' || c[i - 1] == '<')) || (i + 1 < c.size() && c[i + 1] == '>'));
        if (ch == ';' || ch == '|' || ch == '(' || ch == ')' || (ch == '&' && !redirect_amp)) c[i] = '\n';
    }
    std::vector<std::string> out;
    for (const auto& part : split(c, '\n')) {
        const auto w = words(part);
        for (std::size_t k = 0; k < w.size(); ++k) {
            const std::string& word = w[k];
            if (word.find('=') != std::string::npos && word[0] != '=') continue; // VAR=value before it
            // A redirection before the command (`>/dev/null cmd`, `2> log cmd`): skip it and its file.
            const auto r = word.find_first_not_of("0123456789");
            if (r != std::string::npos && (word[r] == '>' || word[r] == '<')) {
                if (word.back() == '>' || word.back() == '<') ++k; // the file is the next word
                continue;
            }
            if (builtins.contains(word)) {
                if (word == "exec" || word == "command" || word == "!" || word == "then" || word == "else" ||
                    word == "do" || word == "{" || word == "if" || word == "elif" || word == "while")
                    continue; // the program comes next
                break;
            }
            out.push_back(word);
            // A program that runs the command given after its options (flock FILE backup.sh,
            // nice -n 10 job): that command is started too, looked up in PATH like the first.
            const auto wrapper = std::find_if(std::begin(k_wrappers), std::end(k_wrappers),
                                              [&](const Wrapper& x) { return base_name(word) == x.name; });
            if (wrapper == std::end(k_wrappers)) break;
            std::size_t positional = wrapper->positional;
            for (++k; k < w.size(); ++k) {
                const std::string& a = w[k];
                if (a == "--") continue;
                if (a.size() > 1 && a[0] == '-') {
                    // An option that takes the next word as its value (-n 10, -w 5, -s KILL).
                    if (a.size() == 2 && std::string_view(wrapper->with_value).find(a[1]) != std::string_view::npos)
                        ++k;
                    continue;
                }
                if (std::string_view(wrapper->name) == "env" && a.find('=') != std::string::npos) continue;
                if (positional > 0) {
                    --positional;
                    continue;
                }
                out.push_back(a);
                break;
            }
            break;
        }
    }
    return out;
}

} // namespace

void check_cron(const Root& root, Findings& out) {
    const char* why = "cron runs it as root: whoever can change it runs commands as root without sudo or jitgate.";
    const char* fix = "chown root:root and chmod go-w the file and the directories above it.";
    std::vector<std::pair<std::string, bool>> tables{{"/etc/crontab", true}};
    for (const char* d :
         {"/etc/cron.d", "/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly"}) {
        if (const auto w = root.writable_by_others(d)) add(out, "cron.writable", Severity::critical, d, *w, why, fix);
        const auto names = root.list(d);
        if (!names) {
            add_unreadable(out, "cron", d, "cannot list the directory");
            continue;
        }
        for (const auto& n : *names) {
            const std::string f = std::string(d) + "/" + n;
            if (std::string(d) == "/etc/cron.d")
                tables.emplace_back(f, true);
            else if (const auto w = root.writable_by_others(f))
                add(out, "cron.writable", Severity::critical, f, *w, why, fix);
        }
    }
    for (const char* f : {"/var/spool/cron/crontabs/root", "/var/spool/cron/root"}) tables.emplace_back(f, false);
    for (const auto& [file, has_user] : tables) {
        // A user's crontab that does not exist is made by crontab(1) in its own (sticky, group
        // crontab) spool directory: only an existing one is judged.
        const bool spool = file.starts_with("/var/spool/");
        if (spool && !root.exists(file)) continue;
        if (const auto w = root.writable_by_others(file))
            add(out, "cron.writable", Severity::critical, file, *w, why, fix);
        const auto r = root.read(file);
        if (r.status == Root::Status::error) {
            add_unreadable(out, "cron", file, r.error);
            continue;
        }
        // cron's environment for the jobs after it: each NAME=value line applies to the lines
        // below it in the file (Vixie cron, cronie). Debian's cron starts with PATH=/usr/bin:/bin
        // and SHELL=/bin/sh.
        std::string path_env = "/usr/bin:/bin";
        std::string path_where = "cron's default PATH";
        int n = 0;
        for (const auto& l : split(r.text, '\n')) {
            ++n;
            const std::string at = file + ":" + std::to_string(n);
            if (const auto env = cron_env(l)) {
                const auto& [name, value] = *env;
                if (name == "PATH") {
                    path_env = value;
                    path_where = at;
                    for (const auto& dir : split(value, ':')) {
                        const std::string d = from_root_home(dir);
                        if (const auto wr = root.writable_by_others(d))
                            add(out, "cron.path_writable", Severity::critical, at,
                                "PATH names " + (dir.empty() ? std::string("the current directory") : dir) + ", and " +
                                    *wr,
                                "cron looks up the programs of the jobs below this line in PATH: whoever can add a "
                                "file there runs it as root in place of the program meant, outside sudo and jitgate.",
                                "Set PATH to root-owned directories only (PATH=/usr/sbin:/usr/bin:/sbin:/bin), and "
                                "start jobs by absolute path.");
                    }
                } else if (name == "SHELL" && value.starts_with("/")) {
                    if (const auto wr = root.writable_by_others(value))
                        add(out, "cron.shell_writable", Severity::critical, at, "SHELL is " + value + ", and " + *wr,
                            "cron runs every job below this line with SHELL -c: whoever can change that program runs "
                            "code as root at the next job, outside sudo and jitgate.",
                            "Set SHELL=/bin/sh (or another root-owned shell not writable by others), or remove the "
                            "line.");
                }
                continue;
            }
            const auto w = words(l);
            if (w.empty() || w[0][0] == '#' || w[0].find('=') != std::string::npos) continue;
            const std::size_t time_fields = w[0].starts_with("@") ? 1 : 5;
            const std::size_t user_at = time_fields;
            const std::size_t cmd_at = time_fields + (has_user ? 1 : 0);
            if (w.size() <= cmd_at) continue;
            if (has_user && w[user_at] != "root") continue;
            // Every program the command starts, not only the first: those named with a `/`
            // (a relative one from root's home, cron's working directory) must not be
            // changeable by others; those named without one are looked up in PATH, where the
            // first directory that holds the name wins, so a writable one before it (or
            // anywhere, when none holds it) lets someone else decide what runs.
            std::string command = trim(l);
            for (std::size_t k = 0; k < cmd_at; ++k) command = trim(command.substr(command.find(w[k]) + w[k].size()));
            for (const auto& name : cron_programs(command)) {
                if (name.find('/') != std::string::npos) {
                    const std::string prog = from_root_home(name);
                    if (const auto wr = root.writable_by_others(prog))
                        add(out, "cron.script_writable", Severity::critical, at,
                            "root's cron job runs " + prog + ", and " + *wr, why, fix);
                    continue;
                }
                for (const auto& dir : split(path_env, ':')) {
                    const std::string d = from_root_home(dir);
                    if (const auto wr = root.writable_by_others(d + "/" + name)) {
                        add(out, "cron.relative_command", Severity::critical, at,
                            "root's cron job runs " + name + " by name, looked up in the PATH of " + path_where +
                                ", and " + *wr,
                            "Whoever can put a file by that name into that directory of PATH runs it as root "
                            "at the job's next run, outside sudo and jitgate.",
                            "Start the program by its absolute path, and set PATH to root-owned directories "
                            "only.");
                        break;
                    }
                    if (root.exists(d + "/" + name)) break; // found, and nobody else can change it
                }
            }
        }
    }
}

void check_daemon(const Root& root, const GateConfig& gate, const Accounts& accounts, const Facts& facts,
                  Findings& out) {
    if (facts.daemon_error) {
        if (const auto err = facts.daemon_error(root.real_resolved(gate.socket)))
            add(out, "daemon.down", Severity::critical, gate.socket, "jitgated does not answer: " + *err,
                "While jitgated is down every sudo command and gated login is refused except break-glass, and "
                "audit events are not spooled; people start looking for ways around the gate.",
                "systemctl status jitgated; journalctl -u jitgated; fix what it says and start it.");
    }
    if (root.exists(gate.daemon_binary))
        if (const auto w = root.writable_by_others(gate.daemon_binary))
            add(out, "daemon.binary_writable", Severity::critical, gate.daemon_binary, *w,
                "jitgated decides every approval: whoever can replace it decides them.",
                "chown root:root and chmod 0755 the program and every directory above it.");
    std::optional<unsigned> daemon_uid;
    if (const auto* u = accounts.user(gate.daemon_user)) daemon_uid = u->uid;
    struct stat st {};
    const std::string spool_real = root.real_resolved(gate.spool_dir);
    if (::stat(spool_real.c_str(), &st) != 0) {
        add(out, "spool.missing", Severity::warning, gate.spool_dir,
            "the audit spool " + gate.spool_dir + " does not exist",
            "jitgated writes every audit event there before it answers; without it jitgated refuses to start.",
            "systemd-tmpfiles --create (it makes /var/lib/jitgate/spool, 0750 jitgate:jitgate).");
    } else {
        if (const auto w = root.writable_by_others(gate.spool_dir, daemon_uid))
            add(out, "spool.writable", Severity::critical, gate.spool_dir, *w,
                "Whoever can write the spool can delete or rewrite audit events before they are shipped.",
                "chown jitgate:jitgate and chmod 0750 the spool; root-owned directories above it.");
        if ((st.st_mode & S_IROTH) != 0)
            add(out, "spool.readable", Severity::warning, gate.spool_dir, gate.spool_dir + " is readable by everyone",
                "Audit events hold every command line, reason and ticket.", "chmod 0750 the spool.");
        if (facts.disk) {
            const auto d = facts.disk(spool_real);
            if (!d || d->total == 0) {
                add(out, "spool.unknown", Severity::warning, gate.spool_dir, "the free space of the spool is unknown",
                    "A full spool makes jitgated refuse every action (it spools before it decides).",
                    "Check that the file system holding the spool can be asked (statvfs).");
            } else {
                const double used = 1.0 - static_cast<double>(d->available) / static_cast<double>(d->total);
                const int pct = static_cast<int>(used * 100.0);
                if (used >= 0.90)
                    add(out, "spool.near_full", used >= 0.98 ? Severity::critical : Severity::warning, gate.spool_dir,
                        "the file system of the spool is " + std::to_string(pct) + "% full",
                        "jitgated writes each audit event before it answers; when the disk is full it refuses every "
                        "sudo command and login.",
                        "Free space or grow the file system; check that the shipper is shipping (jitgatectl audit "
                        "status).");
            }
        }
    }
    if (facts.clock) {
        std::string detail;
        const auto c = facts.clock(detail);
        if (c == Facts::Clock::unsynchronised)
            add(out, "clock.unsynchronised", Severity::critical, "clock",
                "the system clock is not synchronised (" + detail + ")",
                "Grants are valid from nbf to exp, checked against this clock: a wrong clock makes grants expire "
                "early, or live longer than approved, and puts wrong times in the audit trail.",
                "Run an NTP client (chrony, systemd-timesyncd) and check `timedatectl`.");
        else if (c == Facts::Clock::unknown)
            add(out, "clock.unknown", Severity::warning, "clock",
                "could not tell whether the clock is synchronised (" + detail + ")",
                "Grants depend on the time; doctor fails closed when it cannot tell.",
                "Check `timedatectl` or `chronyc tracking`.");
    }
}

} // namespace jitgate::doctor
