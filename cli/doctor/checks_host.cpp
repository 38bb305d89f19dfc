// cli/doctor/checks_host.cpp — the other ways to root (groups, pkexec/polkit, doas, setuid
// programs, cron) and the gate's own health (jitgated, its spool, the clock).
#include <sys/stat.h>

#include <algorithm>
#include <functional>

#include "cli/doctor/doctor.hpp"
#include "cli/doctor/parse.hpp"

namespace jitgate::doctor {

namespace {
constexpr std::size_t k_max_walk = 2'000'000;
} // namespace

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

void check_other_doors(const Root& root, Findings& out) {
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
        if (::stat(root.real(p).c_str(), &st) == 0 && (st.st_mode & S_ISUID) != 0) {
            add(out, "doors.pkexec", Severity::warning, p, std::string(p) + " is installed setuid root",
                "pkexec runs any program as root for polkit administrators (members of sudo/wheel, with their own "
                "password) without going through sudo, so jitgate never sees it.",
                "Remove the policykit-1/polkit package's pkexec, or chmod u-s it, unless something needs it.");
            break;
        }
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
    std::size_t seen = 0;
    std::function<void(const std::string&, int)> walk = [&](const std::string& dir, int depth) {
        const auto names = root.list(dir);
        if (!names || depth > 8) return;
        for (const auto& n : *names) {
            if (++seen > k_max_walk) return;
            const std::string p = (dir == "/" ? "" : dir) + "/" + n;
            struct stat st {};
            if (::lstat(root.real(p).c_str(), &st) != 0) continue;
            if (S_ISDIR(st.st_mode)) {
                walk(p, depth + 1);
            } else if (S_ISREG(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID)) != 0 &&
                       ((st.st_mode & S_ISUID) == 0 || st.st_uid == root.trusted_uid())) {
                found.push_back(p);
            }
        }
    };
    // The programs' directories, and where people and strays put files (not the whole file
    // system: /proc, /sys and network mounts would make it slow and say nothing).
    for (const char* d : {"/usr/bin", "/usr/sbin", "/usr/local", "/opt", "/usr/libexec", "/usr/lib/openssh", "/home",
                          "/root", "/srv", "/tmp", "/var/tmp"}) {
        struct stat st {};
        if (::lstat(root.real(d).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) walk(d, 0);
    }
    if (seen > k_max_walk)
        add(out, "doors.setuid_incomplete", Severity::warning, "/",
            "the search for setuid programs stopped after " + std::to_string(k_max_walk) + " entries",
            "Programs after that point were not looked at.", "Look for them with `find / -xdev -perm /6000`.");
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
}

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
        int n = 0;
        for (const auto& l : split(r.text, '\n')) {
            ++n;
            const auto w = words(l);
            if (w.empty() || w[0][0] == '#' || w[0].find('=') != std::string::npos) continue;
            const std::size_t time_fields = w[0].starts_with("@") ? 1 : 5;
            const std::size_t user_at = time_fields;
            const std::size_t cmd_at = time_fields + (has_user ? 1 : 0);
            if (w.size() <= cmd_at) continue;
            if (has_user && w[user_at] != "root") continue;
            const std::string& prog = w[cmd_at];
            if (!prog.starts_with("/")) continue;
            if (const auto wr = root.writable_by_others(prog))
                add(out, "cron.script_writable", Severity::critical, file + ":" + std::to_string(n),
                    "root's cron job runs " + prog + ", and " + *wr, why, fix);
        }
    }
}

void check_daemon(const Root& root, const GateConfig& gate, const Accounts& accounts, const Facts& facts,
                  Findings& out) {
    if (facts.daemon_error) {
        if (const auto err = facts.daemon_error(root.real(gate.socket)))
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
    if (::stat(root.real(gate.spool_dir).c_str(), &st) != 0) {
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
            const auto d = facts.disk(root.real(gate.spool_dir));
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
