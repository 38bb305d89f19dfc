// tests/unit/test_doctor_host.cpp — doctor's checks of groups, the other doors to root (pkexec,
// polkit, doas, setuid programs, cron), the daemon, its spool and the clock (with injected
// facts), and the report: JSON, text and exit status.
#include <sys/statvfs.h>
#include <sys/xattr.h>

#include <cerrno>
#include <cstring>

#include "tests/unit/doctor_fixture.hpp"

using namespace jitgate;
using Doctor = jitgate::test::DoctorTree;
using Strings = std::vector<std::string>;

namespace {

// A security.capability attribute (struct vfs_cap_data revision 2, little-endian) with the
// capabilities `permitted` (bit numbers) permitted and effective.
std::string caps_v2(std::uint64_t permitted, std::uint64_t inheritable = 0) {
    std::string v;
    const auto le = [&v](std::uint32_t x) {
        for (int i = 0; i < 4; ++i) v += static_cast<char>((x >> (8 * i)) & 0xff);
    };
    le(0x02000001u);
    le(static_cast<std::uint32_t>(permitted));
    le(static_cast<std::uint32_t>(inheritable));
    le(static_cast<std::uint32_t>(permitted >> 32));
    le(static_cast<std::uint32_t>(inheritable >> 32));
    return v;
}

doctor::Facts healthy() {
    doctor::Facts f;
    f.daemon_error = [](const std::string&) { return std::optional<std::string>(); };
    f.clock = [](std::string& detail) {
        detail = "test";
        return doctor::Facts::Clock::synchronised;
    };
    f.disk = [](const std::string&) { return std::optional<doctor::Facts::Disk>(doctor::Facts::Disk{1000, 500}); };
    return f;
}

} // namespace

TEST_F(Doctor, GroupsThatAreDoorsToRootAndTheBreakGlassMembers) {
    write("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\ntoor:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/h:/bin/sh\n"
                         "bob:x:1001:999::/h:/bin/sh\ncarol:x:1002:1002::/h:/bin/sh\n");
    write("/etc/group", "root:x:0:\nsudo:x:27:alice\ndocker:x:999:\ndisk:x:6:carol\nusers:x:100:alice,bob\n"
                        "oncall:x:2101:carol,alice\n");
    doctor::GateConfig gate;
    gate.break_glass_group = "oncall";
    doctor::Findings f;
    doctor::check_groups(root(), doctor::read_accounts(root()), gate, f);
    // bob is in docker through his primary group.
    EXPECT_EQ(ids(f),
              (Strings{"groups.admin alice", "groups.break_glass_member alice", "groups.break_glass_member carol",
                       "groups.root_equivalent bob", "groups.root_equivalent carol", "groups.uid0 toor"}));
    EXPECT_EQ(find(f, "groups.break_glass_member")->severity, doctor::Severity::info);
    EXPECT_EQ(find(f, "groups.root_equivalent")->severity, doctor::Severity::critical);

    gate.break_glass_group = "nosuch";
    f.clear();
    doctor::check_groups(root(), doctor::read_accounts(root()), gate, f);
    EXPECT_EQ(ids_of(f, "groups.break"), Strings{"groups.break_glass_missing nosuch"});
}

TEST_F(Doctor, DoasPkexecPolkitAndUnpackagedSetuidPrograms) {
    write("/etc/doas.conf", "# doas\npermit nopass alice as root\ndeny bob\n");
    write("/usr/bin/pkexec", "ELF", 04755);
    write("/usr/bin/passwd", "ELF", 04755);
    write("/usr/local/bin/rootsh", "ELF", 04755);
    write("/usr/bin/plain", "ELF", 0755);
    write("/home/mallory/.cache/sh", "ELF", 04755);
    write("/var/lib/dpkg/info/passwd.list", "/usr\n/usr/bin\n/usr/bin/passwd\n");
    write("/var/lib/dpkg/info/polkitd.list", "/usr/share/polkit-1/rules.d/vendor.rules\n/bin/pkexec\n");
    write("/usr/share/polkit-1/rules.d/vendor.rules", "return polkit.Result.YES;\n");
    write("/etc/polkit-1/rules.d/50-ops.rules", "if (subject.isInGroup('ops')) return polkit.Result.YES;\n");
    write("/etc/polkit-1/rules.d/60-ask.rules", "return polkit.Result.AUTH_ADMIN;\n");
    write("/etc/polkit-1/localauthority/50-local.d/ops.pkla",
          "[ops]\nIdentity=unix-group:ops\nAction=*\nResultAny=no\nResultActive=yes\n");
    write("/etc/polkit-1/localauthority/50-local.d/ask.pkla", "[ask]\nResultActive=auth_admin\n");
    write("/var/lib/polkit-1/localauthority/10-vendor.d/pk.pkla", "[pk]\nResultActive=yes\n");
    write("/var/lib/dpkg/info/packagekit.list", "/var/lib/polkit-1/localauthority/10-vendor.d/pk.pkla\n");
    doctor::Findings f;
    doctor::check_other_doors(root(), f);
    EXPECT_EQ(ids(f), (Strings{"doors.doas /etc/doas.conf:2", "doors.pkexec /usr/bin/pkexec",
                               "doors.polkit_rule /etc/polkit-1/localauthority/50-local.d/ops.pkla:5",
                               "doors.polkit_rule /etc/polkit-1/rules.d/50-ops.rules",
                               "doors.setuid_unpackaged /home/mallory/.cache/sh",
                               "doors.setuid_unpackaged /usr/local/bin/rootsh"}));
}

TEST_F(Doctor, SetuidProgramsAreLookedForInLibEtcVarRunAndTheOldBinDirectories) {
    write("/var/lib/dpkg/info/passwd.list", "/usr/bin/passwd\n");
    write("/usr/bin/passwd", "ELF", 04755);
    // Not merged /usr: /bin and /sbin are directories of their own.
    for (const char* p :
         {"/bin/rootsh", "/sbin/rootsh", "/usr/lib/x/helper", "/usr/libexec/helper", "/usr/games/helper",
          "/etc/cron.daily/helper", "/var/backups/helper", "/run/helper", "/dev/shm/helper", "/var/tmp/helper"})
        write(p, "ELF", 04755);
    // Container storage is the containers' business when only root can enter it; storage
    // that others can enter (o+x) is walked like any other directory.
    write("/var/lib/docker/overlay2/abc/diff/usr/bin/su", "ELF", 04755);
    ASSERT_EQ(::chmod((m_dir + "/var/lib/docker").c_str(), 0710), 0);
    write("/var/lib/lxc/box/rootfs/usr/bin/su", "ELF", 04755);
    ASSERT_EQ(::chmod((m_dir + "/var/lib/lxc").c_str(), 0711), 0);
    doctor::Findings f;
    doctor::check_other_doors(root(), f);
    EXPECT_EQ(ids(f),
              (Strings{"doors.setuid_unpackaged /bin/rootsh", "doors.setuid_unpackaged /dev/shm/helper",
                       "doors.setuid_unpackaged /etc/cron.daily/helper", "doors.setuid_unpackaged /run/helper",
                       "doors.setuid_unpackaged /sbin/rootsh", "doors.setuid_unpackaged /usr/games/helper",
                       "doors.setuid_unpackaged /usr/lib/x/helper", "doors.setuid_unpackaged /usr/libexec/helper",
                       "doors.setuid_unpackaged /var/backups/helper",
                       "doors.setuid_unpackaged /var/lib/lxc/box/rootfs/usr/bin/su",
                       "doors.setuid_unpackaged /var/tmp/helper"}));
}

TEST_F(Doctor, ADirectoryTooDeepToWalkIsNamedNotSkippedSilently) {
    std::string deep = "/tmp";
    for (int i = 0; i < 33; ++i) deep += "/d";
    write(deep + "/hidden", "ELF", 04755);
    write("/tmp/d/shallow", "ELF", 04755);
    doctor::Findings f;
    doctor::check_other_doors(root(), f);
    EXPECT_EQ(ids(f), (Strings{"doors.setuid_incomplete " + deep, "doors.setuid_unverified /tmp/d/shallow"}));
    EXPECT_EQ(find(f, "doors.setuid_incomplete")->severity, doctor::Severity::warning);
}

TEST_F(Doctor, ADirectoryTooLargeToListIsNamedNotSkippedSilently) {
    for (int i = 0; i < 11; ++i) write("/tmp/many/" + std::to_string(i), "");
    write("/tmp/many/0", "ELF", 04755);
    auto r = root();
    r.set_max_list(10);
    doctor::Findings f;
    doctor::check_other_doors(r, f);
    EXPECT_EQ(ids(f), Strings{"doors.setuid_incomplete /tmp/many"});
    EXPECT_NE(f[0].what.find("more than 10 entries"), std::string::npos) << f[0].what;
}

TEST_F(Doctor, NetworkFuseAnd9pMountsAreWalkedUnlessNosuidPseudoFileSystemsNever) {
    constexpr unsigned long nfs = 0x6969, cifs = 0xff534d42, fuse = 0x65735546, p9 = 0x01021997;
    constexpr unsigned long proc = 0x9fa0, sysfs = 0x62656572, cgroup2 = 0x63677270, ext4 = 0xef53;
    for (unsigned long type : {nfs, cifs, fuse, p9}) {
        EXPECT_TRUE(doctor::walk_mount(type, 0)) << std::hex << type; // an NFS /home without nosuid
        EXPECT_TRUE(doctor::walk_mount(type, ST_NODEV | ST_RDONLY)) << std::hex << type;
        EXPECT_FALSE(doctor::walk_mount(type, ST_NOSUID)) << std::hex << type;
        EXPECT_FALSE(doctor::walk_mount(type, ST_NOSUID | ST_NODEV)) << std::hex << type;
    }
    // f_type is a signed long on some ABIs: a sign-extended magic is the same file system.
    EXPECT_FALSE(doctor::walk_mount(0xffffffffff534d42UL, ST_NOSUID));
    EXPECT_TRUE(doctor::walk_mount(0xffffffffff534d42UL, 0));
    for (unsigned long type : {proc, sysfs, cgroup2}) {
        EXPECT_FALSE(doctor::walk_mount(type, 0)) << std::hex << type;
        EXPECT_FALSE(doctor::walk_mount(type, ST_NOSUID)) << std::hex << type;
    }
    EXPECT_TRUE(doctor::walk_mount(ext4, 0));
}

TEST_F(Doctor, WithoutADpkgDatabaseSetuidProgramsAreListedAsUnverified) {
    write("/usr/bin/passwd", "ELF", 04755);
    doctor::Findings f;
    doctor::check_other_doors(root(), f);
    ASSERT_EQ(ids(f), Strings{"doors.setuid_unverified /usr/bin/passwd"});
    EXPECT_EQ(f[0].severity, doctor::Severity::info);
}

TEST_F(Doctor, CronFilesAndRootJobsThatOthersCanChange) {
    write("/etc/crontab", "SHELL=/bin/sh\n# m h dom mon dow user command\n"
                          "17 * * * * root cd / && run-parts --report /etc/cron.hourly\n"
                          "@reboot root /usr/local/sbin/boot-task --now\n"
                          "5 4 * * * nobody /usr/local/bin/user-task\n");
    write("/usr/local/sbin/boot-task", "#!/bin/sh\n", 0775);
    write("/usr/local/bin/user-task", "#!/bin/sh\n", 0777);
    write("/etc/cron.d/backup", "0 1 * * * root /usr/local/bin/backup\n", 0666);
    write("/usr/local/bin/backup", "#!/bin/sh\n", 0755);
    write("/etc/cron.daily/logrotate", "#!/bin/sh\n", 0755);
    write("/var/spool/cron/crontabs/root", "* * * * * /tmp/x/job\n", 0600);
    write("/tmp/x/job", "#!/bin/sh\n", 0755);
    chmod("/tmp/x", 0777);
    doctor::Findings f;
    doctor::check_cron(root(), f);
    EXPECT_EQ(ids(f),
              (Strings{"cron.script_writable /etc/crontab:4", "cron.script_writable /var/spool/cron/crontabs/root:1",
                       "cron.writable /etc/cron.d/backup"}));
}

TEST_F(Doctor, ARootCronJobWhoseScriptIsMissingInAWritableDirectory) {
    // The script is not there (yet): whoever can write to its directory creates it, and cron
    // runs it as root. Also where the directory is sticky (/tmp): creating a name is allowed.
    write("/etc/crontab", "0 3 * * * root /srv/drop/nightly.sh\n"
                          "0 4 * * * root /tmp/later/run.sh\n"
                          "0 5 * * * root /usr/local/sbin/missing-but-safe\n");
    mkdir("/srv/drop", 0777);
    mkdir("/tmp", 01777);
    mkdir("/usr/local/sbin");
    doctor::Findings f;
    doctor::check_cron(root(), f);
    EXPECT_EQ(ids(f), (Strings{"cron.script_writable /etc/crontab:1", "cron.script_writable /etc/crontab:2"}));
    const auto* w = find(f, "cron.script_writable");
    ASSERT_NE(w, nullptr);
    EXPECT_NE(w->what.find("does not exist"), std::string::npos) << w->what;
}

TEST_F(Doctor, DaemonDownSpoolAndClockFromInjectedFacts) {
    write("/etc/passwd",
          "root:x:0:0::/root:/bin/sh\njitgate:x:" + std::to_string(::getuid() + 1) + ":999::/:/bin/false\n");
    mkdir("/var/lib/jitgate/spool", 0750);
    doctor::GateConfig gate;
    const auto accounts = doctor::read_accounts(root());
    doctor::Findings f;
    doctor::check_daemon(root(), gate, accounts, healthy(), f);
    EXPECT_EQ(ids(f), Strings{});

    auto facts = healthy();
    std::string asked;
    facts.daemon_error = [&](const std::string& socket) {
        asked = socket;
        return std::optional<std::string>("connection refused");
    };
    facts.clock = [](std::string& detail) {
        detail = "STA_UNSYNC";
        return doctor::Facts::Clock::unsynchronised;
    };
    facts.disk = [](const std::string&) { return std::optional<doctor::Facts::Disk>(doctor::Facts::Disk{1000, 50}); };
    chmod("/var/lib/jitgate/spool", 0775);
    f.clear();
    doctor::check_daemon(root(), gate, accounts, facts, f);
    EXPECT_EQ(asked, m_dir + "/run/jitgate/jitgated.sock");
    EXPECT_EQ(ids(f), (Strings{"clock.unsynchronised clock", "daemon.down /run/jitgate/jitgated.sock",
                               "spool.near_full /var/lib/jitgate/spool", "spool.readable /var/lib/jitgate/spool",
                               "spool.writable /var/lib/jitgate/spool"}));
    EXPECT_EQ(find(f, "spool.near_full")->severity, doctor::Severity::warning);
    EXPECT_EQ(find(f, "spool.near_full")->what, "the file system of the spool is 95% full");

    facts.disk = [](const std::string&) { return std::optional<doctor::Facts::Disk>(); };
    facts.clock = [](std::string& detail) {
        detail = "adjtimex: EPERM";
        return doctor::Facts::Clock::unknown;
    };
    f.clear();
    doctor::check_daemon(root(), gate, accounts, facts, f);
    EXPECT_EQ(ids_of(f, "spool.unknown"), Strings{"spool.unknown /var/lib/jitgate/spool"});
    EXPECT_EQ(ids_of(f, "clock"), Strings{"clock.unknown clock"});
}

TEST_F(Doctor, TheSpoolMayBelongToTheDaemonUserButNobodyElse) {
    // The spool is the test's own (its trusted uid): owned by "jitgate" is fine as well, which
    // the fixture cannot chown to; an owner that is neither is what the check refuses.
    write("/etc/passwd", "jitgate:x:" + std::to_string(::getuid()) + ":999::/:/bin/false\n");
    mkdir("/var/lib/jitgate/spool", 0750);
    doctor::GateConfig gate;
    doctor::Findings f;
    const doctor::Root other(m_dir, ::getuid() + 1); // root is someone else here
    doctor::check_daemon(other, gate, doctor::read_accounts(other), healthy(), f);
    EXPECT_EQ(ids_of(f, "spool.writable"), Strings{});
    write("/etc/passwd", "jitgate:x:" + std::to_string(::getuid() + 2) + ":999::/:/bin/false\n");
    f.clear();
    doctor::check_daemon(other, gate, doctor::read_accounts(other), healthy(), f);
    EXPECT_EQ(ids_of(f, "spool.writable"), Strings{"spool.writable /var/lib/jitgate/spool"});
}

TEST_F(Doctor, TheReportAsJsonTextAndExitStatus) {
    doctor::Report r;
    r.host = "fin-db-01";
    EXPECT_EQ(doctor::exit_status(r), 0);
    r.findings.push_back({"groups.break_glass_member", doctor::Severity::info, "dave", "dave is in x", "why", "fix"});
    EXPECT_EQ(doctor::exit_status(r), 0); // info alone is nothing found
    r.findings.push_back(
        {"sudo_conf.missing", doctor::Severity::critical, "/etc/sudo.conf", "bad\x1b[31m\xff", "w", "f"});
    EXPECT_EQ(doctor::exit_status(r), 1);
    const auto j = doctor::to_json(r);
    EXPECT_EQ(j["version"], 1);
    EXPECT_EQ(j["host"], "fin-db-01");
    EXPECT_EQ(j["summary"], (nlohmann::json{{"critical", 1}, {"warning", 0}, {"info", 1}}));
    ASSERT_EQ(j["findings"].size(), 2u);
    EXPECT_EQ(j["findings"][1]["check"], "sudo_conf.missing");
    EXPECT_EQ(j["findings"][1]["severity"], "critical");
    EXPECT_NO_THROW((void)j.dump()); // invalid UTF-8 from a file made printable, never a throw
    const auto text = doctor::to_text(r);
    EXPECT_NE(text.find("fin-db-01: 1 critical, 0 warning, 1 info"), std::string::npos) << text;
    EXPECT_LT(text.find("CRITICAL"), text.find("INFO"));
    EXPECT_EQ(text.find('\x1b'), std::string::npos) << "control characters from files are escaped";
}

TEST_F(Doctor, RunOnAWholeTreeSortsBySeverityAndReadsTheConfigUnderTheRoot) {
    write("/etc/hostname", "fin-db-01\n");
    write("/etc/jitgate/jitgate.yaml", "host:\n  name: fin-db-01\nbreak_glass:\n  group: oncall\n");
    write("/etc/group", "oncall:x:2101:dave\n");
    write("/etc/sudo.conf", "Plugin sudoers_policy sudoers.so\n");
    write("/etc/sudoers", "root ALL=(ALL) ALL\n", 0440);
    mkdir("/var/lib/jitgate/spool", 0750);
    const auto r = doctor::run(root(), healthy(), std::nullopt);
    EXPECT_EQ(r.host, "fin-db-01");
    EXPECT_EQ(ids(r.findings), (Strings{"groups.break_glass_member dave", "sudo_conf.approval_missing /etc/sudo.conf",
                                        "sudo_conf.audit_missing /etc/sudo.conf"}));
    EXPECT_EQ(r.findings.front().severity, doctor::Severity::critical);
    EXPECT_EQ(r.findings.back().severity, doctor::Severity::info);
    const auto other = doctor::run(root(), healthy(), std::string("/etc/jitgate/other.yaml"));
    EXPECT_EQ(ids_of(other.findings, "config"), Strings{"config.missing /etc/jitgate/other.yaml"});
}

TEST_F(Doctor, WhereSeccompRefusesOpenat2FilesAreOpenedPlainlyAndTheReportSaysSoOnce) {
    write("/etc/hostname", "fin-db-01\n");
    write("/etc/sudoers", "root ALL=(ALL) ALL\n", 0440);
    auto r = root();
    r.set_openat2([](int, const char*, void*, std::size_t) -> long {
        errno = EPERM;
        return -1;
    });
    const auto report = doctor::run(r, healthy(), std::nullopt);
    EXPECT_EQ(report.host, "fin-db-01"); // read through the fallback
    EXPECT_EQ(ids_of(report.findings, "doctor"), Strings{"doctor.plain_open /"});
    EXPECT_EQ(find(report.findings, "doctor.plain_open")->severity, doctor::Severity::info);
    // With openat2 working, nothing is said.
    EXPECT_EQ(ids_of(doctor::run(root(), healthy(), std::nullopt).findings, "doctor"), Strings{});
}

TEST_F(Doctor, AFileWhereADirectoryIsExpectedMakesThePathMissingNotUnreadable) {
    write("/etc/ssh", "not a directory\n");
    for (const auto& r : {root(), doctor::Root("")}) {
        const auto read = r.read(r.is_system_root() ? m_dir + "/etc/ssh/sshd_config" : "/etc/ssh/sshd_config");
        EXPECT_EQ(read.status, doctor::Root::Status::missing) << read.error;
    }
    // sshd_config under it is simply not there: no sshd.unreadable.
    doctor::Findings f;
    doctor::check_sshd(root(), doctor::read_accounts(root()), {}, f);
    EXPECT_EQ(ids_of(f, "sshd.unreadable"), Strings{});
}

TEST_F(Doctor, OpenFileResolvesLinksInTheMiddleInsideTheTreeAndFollowsNoneAtTheEnd) {
    write("/etc/hostname", "tree-host\n");
    ASSERT_EQ(::symlink("/etc", (m_dir + "/lnk").c_str()), 0);               // absolute, in the middle
    ASSERT_EQ(::symlink("../../../../../etc", (m_dir + "/up").c_str()), 0);  // `..` stops at the tree's top
    ASSERT_EQ(::symlink("/etc/hostname", (m_dir + "/etc/last").c_str()), 0); // at the end
    const auto r = root();
    const auto content = [](int fd) {
        std::string text(64, '\0');
        const auto n = ::read(fd, text.data(), text.size());
        ::close(fd);
        text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
        return text;
    };
    for (const char* path : {"/lnk/hostname", "/up/hostname"}) {
        const int fd = r.open_file(path);
        if (fd >= 0 && r.used_plain_open()) {
            ::close(fd);
            GTEST_SKIP() << "openat2 is refused here: the kernel does not resolve inside the tree";
        }
        ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
        EXPECT_EQ(content(fd), "tree-host\n") << path; // the tree's file, never this machine's /etc/hostname
    }
    // A link at the end is not followed (O_NOFOLLOW): ELOOP, so Root::read reports it.
    errno = 0;
    EXPECT_EQ(r.open_file("/etc/last"), -1);
    EXPECT_EQ(errno, ELOOP);
    EXPECT_EQ(r.open_file("/lnk/last"), -1);
    EXPECT_EQ(errno, ELOOP);
}

TEST_F(Doctor, DaemonBinaryWritableAndSpoolMissing) {
    write("/usr/sbin/jitgated", "ELF", 0775);
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_daemon(root(), gate, doctor::read_accounts(root()), healthy(), f);
    EXPECT_EQ(ids(f), (Strings{"daemon.binary_writable /usr/sbin/jitgated", "spool.missing /var/lib/jitgate/spool"}));
    chmod("/usr/sbin/jitgated", 0755);
    mkdir("/var/lib/jitgate/spool", 0750);
    f.clear();
    doctor::check_daemon(root(), gate, doctor::read_accounts(root()), healthy(), f);
    EXPECT_EQ(ids(f), Strings{});
}

TEST_F(Doctor, MembersOfTheGroupRootButNotUid0Accounts) {
    write("/etc/passwd", "root:x:0:0::/root:/bin/sh\nops:x:1000:0::/h:/bin/sh\n");
    write("/etc/group", "root:x:0:root,backup\n");
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_groups(root(), doctor::read_accounts(root()), gate, f);
    EXPECT_EQ(ids(f), (Strings{"groups.root_group backup", "groups.root_group ops"}));
}

TEST_F(Doctor, TheHostsOwnFactsAnswer) {
    const auto facts = doctor::host_facts();
    const auto err = facts.daemon_error(m_dir + "/no.sock");
    ASSERT_TRUE(err.has_value());
    EXPECT_NE(err->find(m_dir + "/no.sock"), std::string::npos) << *err;
    const auto disk = facts.disk(m_dir);
    ASSERT_TRUE(disk.has_value());
    EXPECT_GT(disk->total, 0u);
    EXPECT_LE(disk->available, disk->total);
    EXPECT_FALSE(facts.disk(m_dir + "/missing").has_value());
    std::string detail;
    EXPECT_NE(facts.clock(detail), doctor::Facts::Clock::unknown) << detail; // adjtimex(2) needs no privilege to read
    EXPECT_NE(detail.find("adjtimex"), std::string::npos);
}

TEST_F(Doctor, FileCapabilitiesAreDecoded) {
    const auto c = doctor::decode_file_caps(caps_v2((1ull << 7) | (1ull << 13) | (1ull << 39)));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->revision, 2);
    EXPECT_TRUE(c->effective);
    // cap_net_raw (13), as ping has, is not one that makes root.
    EXPECT_EQ(doctor::root_capabilities(*c), (Strings{"cap_setuid", "cap_bpf"}));
    EXPECT_EQ(doctor::root_capabilities(*doctor::decode_file_caps(caps_v2(0, 1ull << 21))), Strings{"cap_sys_admin"});
    EXPECT_EQ(doctor::root_capabilities(*doctor::decode_file_caps(caps_v2(1ull << 13))), Strings{});
    // cap_sys_chroot, cap_sys_boot and cap_audit_control count; cap_ipc_owner, cap_kill and
    // cap_linux_immutable do not.
    EXPECT_EQ(doctor::root_capabilities(*doctor::decode_file_caps(
                  caps_v2((1ull << 18) | (1ull << 22) | (1ull << 30) | (1ull << 15) | (1ull << 5) | (1ull << 9)))),
              (Strings{"cap_sys_chroot", "cap_sys_boot", "cap_audit_control"}));
    // Revision 3 carries the namespace's root uid; a wrong size or revision is not decoded.
    std::string v3 = caps_v2(1ull << 1);
    v3[3] = 3;
    v3 += std::string("\xe8\x03\x00\x00", 4);
    ASSERT_TRUE(doctor::decode_file_caps(v3));
    EXPECT_EQ(doctor::decode_file_caps(v3)->rootid, 1000u);
    EXPECT_EQ(doctor::root_capabilities(*doctor::decode_file_caps(v3)), Strings{"cap_dac_override"});
    EXPECT_FALSE(doctor::decode_file_caps(v3.substr(0, 20)));
    EXPECT_FALSE(doctor::decode_file_caps(std::string("\x01\x00\x00\x05", 4) + std::string(16, '\0')));
    // Revision 1 (12 bytes, 32 capabilities); every buffer too short for its header is refused.
    const std::string v1 =
        std::string("\x01\x00\x00\x01", 4) + std::string("\x80\x00\x00\x00", 4) + std::string("\x00\x00\x20\x00", 4);
    ASSERT_TRUE(doctor::decode_file_caps(v1));
    EXPECT_EQ(doctor::decode_file_caps(v1)->revision, 1);
    EXPECT_EQ(doctor::root_capabilities(*doctor::decode_file_caps(v1)), (Strings{"cap_setuid", "cap_sys_admin"}));
    EXPECT_FALSE(doctor::decode_file_caps(v1 + std::string(8, '\0')));
    for (std::size_t n = 0; n < 12; ++n) {
        EXPECT_FALSE(doctor::decode_file_caps(v1.substr(0, n))) << n;
        EXPECT_FALSE(doctor::decode_file_caps(caps_v2(1ull << 7).substr(0, n))) << n;
    }
}

TEST_F(Doctor, ProgramsWithFileCapabilitiesThatMakeRoot) {
    write("/var/lib/dpkg/info/iputils-ping.list", "/usr/bin/ping\n/usr/bin/gst-helper\n");
    write("/usr/bin/ping", "ELF", 0755);
    write("/usr/bin/gst-helper", "ELF", 0755);
    write("/usr/local/bin/backup", "ELF", 0755);
    write("/usr/bin/python3.11", "ELF", 0755);
    const auto set = [this](const std::string& path, const std::string& value) {
        return ::setxattr((m_dir + path).c_str(), "security.capability", value.data(), value.size(), 0);
    };
    if (set("/usr/bin/ping", caps_v2(1ull << 13)) != 0) {
        if (errno == ENOTSUP || errno == EPERM)
            GTEST_SKIP() << "cannot set security.capability under " << m_dir << ": " << std::strerror(errno)
                         << " (needs root, or CAP_SETFCAP, on a file system with extended attributes)";
        FAIL() << "setxattr: " << std::strerror(errno);
    }
    // dpkg records no capabilities, so a packaged program with one that makes root is
    // reported too; an interpreter with one is a root shell, packaged or not.
    ASSERT_EQ(set("/usr/bin/gst-helper", caps_v2(1ull << 7)), 0);
    ASSERT_EQ(set("/usr/local/bin/backup", caps_v2((1ull << 2) | (1ull << 1))), 0);
    ASSERT_EQ(set("/usr/bin/python3.11", caps_v2(1ull << 7)), 0);
    doctor::Findings f;
    doctor::check_other_doors(root(), f);
    EXPECT_EQ(ids(f), (Strings{"doors.capability_interpreter /usr/bin/python3.11",
                               "doors.capability_packaged /usr/bin/gst-helper",
                               "doors.capability_unpackaged /usr/local/bin/backup"}));
    EXPECT_EQ(find(f, "doors.capability_interpreter")->severity, doctor::Severity::critical);
    EXPECT_NE(find(f, "doors.capability_unpackaged")->what.find("cap_dac_override,cap_dac_read_search"),
              std::string::npos);
    // Without a dpkg database the unpackaged and packaged alike are listed for review.
    std::filesystem::remove_all(m_dir + "/var/lib/dpkg");
    f.clear();
    doctor::check_other_doors(root(), f);
    EXPECT_EQ(ids(f), (Strings{"doors.capability_interpreter /usr/bin/python3.11",
                               "doors.capability_unverified /usr/bin/gst-helper",
                               "doors.capability_unverified /usr/local/bin/backup"}));
}

TEST_F(Doctor, InterpretersAreKnownByTheNameBeforeTheirFirstDotOrDash) {
    for (const char* n : {"vim.basic", "vim.tiny", "vim.nox",   "vim",       "nvim",    "mawk",       "nawk",
                          "gawk",      "awk",      "emacs-gtk", "emacs-nox", "emacs29", "python3.11", "python3",
                          "perl5.36",  "lua5.4",   "ksh93",     "busybox",   "bash",    "env"})
        EXPECT_TRUE(doctor::is_interpreter_name(n)) << n;
    for (const char* n : {"tee", "ping", "newuidmap", "gst-ptp-helper", "ssh-agent", "envsubst", "shred", "vimdiff2x"})
        EXPECT_FALSE(doctor::is_interpreter_name(n)) << n;
}

TEST_F(Doctor, FileCapabilitiesOnPackagedProgramsAreReportedUnlessTheDistributionsOwn) {
    // The attribute is read through the injected reader: no CAP_SETFCAP needed.
    std::map<std::string, std::string> attrs;
    const auto reader = [&attrs](const std::string& real, char* buf, std::size_t size) -> long {
        const auto it = attrs.find(real);
        if (it == attrs.end()) {
            errno = ENODATA;
            return -1;
        }
        if (it->second.size() > size) {
            errno = ERANGE;
            return -1;
        }
        std::memcpy(buf, it->second.data(), it->second.size());
        return static_cast<long>(it->second.size());
    };
    write("/var/lib/dpkg/info/vim.list", "/usr/bin/vim.basic\n");
    write("/var/lib/dpkg/info/mawk.list", "/usr/bin/mawk\n");
    write("/var/lib/dpkg/info/coreutils.list", "/usr/bin/tee\n");
    write("/var/lib/dpkg/info/uidmap.list", "/usr/bin/newuidmap\n/usr/bin/newgidmap\n");
    write("/var/lib/dpkg/info/iputils-ping.list", "/bin/ping\n");
    for (const char* p : {"/usr/bin/vim.basic", "/usr/bin/mawk", "/usr/bin/tee", "/usr/bin/newuidmap",
                          "/usr/bin/newgidmap", "/usr/bin/ping", "/usr/local/bin/odd"})
        write(p, "ELF", 0755);
    attrs[m_dir + "/usr/bin/vim.basic"] = caps_v2(1ull << 7);                  // cap_setuid
    attrs[m_dir + "/usr/bin/mawk"] = caps_v2(1ull << 1);                       // cap_dac_override
    attrs[m_dir + "/usr/bin/tee"] = caps_v2(1ull << 1);                        // cap_dac_override
    attrs[m_dir + "/usr/bin/newuidmap"] = caps_v2(1ull << 7);                  // shadow's own: cap_setuid only
    attrs[m_dir + "/usr/bin/newgidmap"] = caps_v2((1ull << 6) | (1ull << 21)); // more than cap_setgid
    attrs[m_dir + "/usr/bin/ping"] = caps_v2(1ull << 13);                      // cap_net_raw: not root-making
    attrs[m_dir + "/usr/local/bin/odd"] = std::string(100, 'x');               // larger than any vfs_cap_data
    doctor::Findings f;
    doctor::check_other_doors(root(), f, reader);
    EXPECT_EQ(ids(f),
              (Strings{"doors.capability_interpreter /usr/bin/mawk", "doors.capability_interpreter /usr/bin/vim.basic",
                       "doors.capability_packaged /usr/bin/newgidmap", "doors.capability_packaged /usr/bin/tee",
                       "doors.capability_unpackaged /usr/local/bin/odd"}));
    EXPECT_EQ(find(f, "doors.capability_interpreter")->severity, doctor::Severity::critical);
    EXPECT_EQ(find(f, "doors.capability_packaged")->severity, doctor::Severity::warning);
    // The allowlisted pair is the distribution's only when dpkg installed it.
    write("/var/lib/dpkg/info/uidmap.list", "/usr/bin/newgidmap\n");
    f.clear();
    doctor::check_other_doors(root(), f, reader);
    EXPECT_EQ(ids_of(f, "doors.capability_unpackaged"), (Strings{"doors.capability_unpackaged /usr/bin/newuidmap",
                                                                 "doors.capability_unpackaged /usr/local/bin/odd"}));
}

TEST_F(Doctor, RootCronJobsPathAndShellThatOthersCanChange) {
    // PATH names a directory others can write; the job after it runs a program by name: whoever
    // drops a file there first in PATH runs as root. SHELL is a program others can change.
    write("/etc/crontab", "SHELL=/usr/local/bin/mysh\n"
                          "PATH=/opt/tools/bin:/usr/sbin:/usr/bin\n"
                          "17 * * * * root cd / && run-parts --report /etc/cron.hourly\n"
                          "20 * * * * root /usr/bin/env true\n"
                          "25 * * * * nobody mytool\n");
    write("/usr/local/bin/mysh", "ELF", 0775);
    write("/usr/bin/run-parts", "ELF", 0755);
    mkdir("/opt/tools/bin", 0777);
    // A root crontab with a quoted PATH: a program found in a safe directory first is safe,
    // one not found anywhere is created in the writable one.
    write("/var/spool/cron/crontabs/root",
          "PATH = \"/usr/bin:/srv/bin\"\n"
          "0 1 * * * backup --all > /dev/null 2>&1\n"
          "0 2 * * * VERBOSE=1 exec nightly %input\n",
          0600);
    write("/usr/bin/backup", "ELF", 0755);
    mkdir("/srv/bin", 0775);
    doctor::Findings f;
    doctor::check_cron(root(), f);
    EXPECT_EQ(ids(f),
              (Strings{"cron.path_writable /etc/crontab:2", "cron.path_writable /var/spool/cron/crontabs/root:1",
                       "cron.relative_command /etc/crontab:3", "cron.relative_command /etc/crontab:4",
                       "cron.relative_command /var/spool/cron/crontabs/root:3", "cron.shell_writable /etc/crontab:1"}));
    // (/etc/crontab:4: env runs `true` through PATH, whose first directory others can write.)
    for (const auto& x : f) EXPECT_EQ(x.severity, doctor::Severity::critical) << x.check;
    const auto* rel = find(f, "cron.relative_command");
    EXPECT_NE(rel->what.find("runs run-parts by name"), std::string::npos) << rel->what;
    // With root-owned directories only, the same jobs are no door.
    write("/etc/crontab", "SHELL=/bin/sh\nPATH=/usr/sbin:/usr/bin\n"
                          "17 * * * * root cd / && run-parts --report /etc/cron.hourly\n");
    write("/var/spool/cron/crontabs/root", "0 1 * * * backup --all\n", 0600);
    f.clear();
    doctor::check_cron(root(), f);
    EXPECT_EQ(ids(f), Strings{});
}

TEST_F(Doctor, EveryProgramOfARootCronCommandIsCheckedNotOnlyTheFirst) {
    write("/etc/crontab", "PATH=/usr/sbin:/usr/bin:/srv/bin\n"
                          "17 * * * * root cd /srv && /home/bob/run.sh\n"
                          "18 * * * * root /usr/bin/flock /run/x backup.sh; cleanup\n"
                          "19 * * * * root /usr/bin/nice -n 10 scripts/tidy.sh\n"
                          "20 * * * * root /usr/bin/true && /usr/bin/flock -w 5 /run/y /usr/bin/true\n");
    write("/usr/bin/flock", "ELF", 0755);
    write("/usr/bin/nice", "ELF", 0755);
    write("/usr/bin/true", "ELF", 0755);
    write("/usr/bin/cleanup", "ELF", 0755);
    mkdir("/srv/bin", 0777);
    mkdir("/home/bob", 0755);
    write("/home/bob/run.sh", "#!/bin/sh\n", 0755);
    mkdir("/root/scripts", 0777);
    // Not the tests' uid, so someone else's.
    ASSERT_EQ(::chown((m_dir + "/home/bob").c_str(), 4242, 4242), 0);
    doctor::Findings f;
    doctor::check_cron(root(), f);
    // backup.sh (flock's command) is found nowhere before the writable /srv/bin; cleanup is
    // found in /usr/bin first; bob's script and root's writable scripts/ are others' to change.
    EXPECT_EQ(ids(f), (Strings{"cron.path_writable /etc/crontab:1", "cron.relative_command /etc/crontab:3",
                               "cron.script_writable /etc/crontab:2", "cron.script_writable /etc/crontab:4"}));
    EXPECT_NE(find(f, "cron.relative_command")->what.find("runs backup.sh by name"), std::string::npos);
}

TEST_F(Doctor, AFifoOrADeviceInPlaceOfAFileIsRefusedWithoutBlocking) {
    mkdir("/etc/ssh");
    ASSERT_EQ(::mkfifo((m_dir + "/etc/ssh/sshd_config").c_str(), 0644), 0);
    write("/etc/ok", "text\n");
    const auto r = root();
    within(std::chrono::seconds(20), [&] {
        const auto fifo = r.read("/etc/ssh/sshd_config");
        EXPECT_EQ(fifo.status, doctor::Root::Status::error);
        EXPECT_EQ(fifo.error, "not a regular file");
    });
    EXPECT_EQ(r.read("/etc/ok").text, "text\n");
    EXPECT_EQ(r.read("/etc/none").status, doctor::Root::Status::missing);
    // A link the tree holds is still followed inside it.
    ASSERT_EQ(::symlink("/etc/ok", (m_dir + "/etc/link").c_str()), 0);
    EXPECT_EQ(r.read("/etc/link").text, "text\n");
}

TEST_F(Doctor, SudoRsIsADoorAroundThePlugins) {
    // Debian trixie's layout: /usr/lib/cargo/bin/sudo, /usr/bin/sudo-rs linked to it.
    write("/usr/lib/cargo/bin/sudo", "ELF sudo-rs", 04755);
    mkdir("/usr/bin");
    ASSERT_EQ(::symlink("/usr/lib/cargo/bin/sudo", (m_dir + "/usr/bin/sudo-rs").c_str()), 0);
    // The original sudo beside it is not reported.
    write("/usr/bin/sudo", "ELF sudo 1.9", 04755);
    doctor::Findings f;
    doctor::check_other_doors(root(), f);
    ASSERT_EQ(ids_of(f, "doors.sudo_rs"), Strings{"doors.sudo_rs /usr/bin/sudo-rs"});
    EXPECT_EQ(find(f, "doors.sudo_rs")->severity, doctor::Severity::critical);
    // /usr/bin/sudo itself led to sudo-rs (Ubuntu's alternatives), not setuid: a warning.
    std::filesystem::remove(m_dir + "/usr/bin/sudo-rs");
    std::filesystem::remove(m_dir + "/usr/bin/sudo");
    write("/etc/alternatives/.keep", "");
    ASSERT_EQ(::symlink("/etc/alternatives/sudo", (m_dir + "/usr/bin/sudo").c_str()), 0);
    ASSERT_EQ(::symlink("/usr/lib/cargo/bin/sudo", (m_dir + "/etc/alternatives/sudo").c_str()), 0);
    chmod("/usr/lib/cargo/bin/sudo", 0755);
    f.clear();
    doctor::check_other_doors(root(), f);
    ASSERT_EQ(ids_of(f, "doors.sudo_rs"), Strings{"doors.sudo_rs /usr/lib/cargo/bin/sudo"});
    EXPECT_EQ(find(f, "doors.sudo_rs")->severity, doctor::Severity::warning);
    // A copied sudo-rs is known by its own text.
    std::filesystem::remove_all(m_dir + "/usr/lib/cargo");
    std::filesystem::remove(m_dir + "/usr/bin/sudo");
    write("/usr/bin/sudo", std::string("ELF\0sudo-rs 0.2.5\0", 18), 04755);
    f.clear();
    doctor::check_other_doors(root(), f);
    EXPECT_EQ(ids_of(f, "doors.sudo_rs"), Strings{"doors.sudo_rs /usr/bin/sudo"});
}

TEST_F(Doctor, ASudoTooLargeToReadIsSaidNotTakenAsTheOriginal) {
    write("/usr/bin/sudo", std::string((8u << 20) + 1, 'x') + "sudo-rs", 04755);
    doctor::Findings f;
    doctor::check_other_doors(root(), f);
    EXPECT_EQ(ids_of(f, "doors.sudo"), Strings{"doors.sudo_unverified /usr/bin/sudo"});
    EXPECT_EQ(find(f, "doors.sudo_unverified")->severity, doctor::Severity::info);
}

TEST_F(Doctor, LinksInTheTreeAreFollowedInsideItAndDotDotStopsAtItsTop) {
    write("/etc/passwd", "root:x:0:0:tree's root:/root:/bin/sh\n");
    write("/etc/pam.d/common", "auth required pam_unix.so\n");
    // An absolute link is the tree's file, not this machine's.
    ASSERT_EQ(::symlink("/etc/pam.d/common", (m_dir + "/etc/pam.d/sshd").c_str()), 0);
    // `..` past the top stays at the top (as at "/"): this is the tree's /etc/passwd.
    ASSERT_EQ(::symlink("../../../../../../../../../../etc/passwd", (m_dir + "/etc/pam.d/escape").c_str()), 0);
    // A directory link with an absolute target, and an entry below it.
    write("/srv/vendor/pam.d/login", "auth requisite pam_jitgate.so\n");
    mkdir("/usr/lib");
    ASSERT_EQ(::symlink("/srv/vendor/pam.d", (m_dir + "/usr/lib/pam.d").c_str()), 0);
    mkdir("/data", 0777);
    ASSERT_EQ(::symlink("/data", (m_dir + "/link").c_str()), 0);
    const auto r = root();
    EXPECT_EQ(r.read("/etc/pam.d/sshd").text, "auth required pam_unix.so\n");
    EXPECT_EQ(r.read("/etc/pam.d/escape").text, "root:x:0:0:tree's root:/root:/bin/sh\n");
    EXPECT_EQ(r.resolve("/etc/pam.d/escape"), std::optional<std::string>("/etc/passwd"));
    EXPECT_TRUE(r.exists("/usr/lib/pam.d/login"));
    EXPECT_TRUE(r.is_dir("/usr/lib/pam.d"));
    EXPECT_FALSE(r.exists("/usr/lib/pam.d/sshd"));
    EXPECT_EQ(r.real_entry("/usr/lib/pam.d/login"), m_dir + "/srv/vendor/pam.d/login");
    EXPECT_EQ(r.real_entry("/etc/../../etc/pam.d/sshd"), m_dir + "/etc/pam.d/sshd");
    EXPECT_EQ(r.list("/usr/lib/pam.d"), std::optional<std::vector<std::string>>(Strings{"login"}));
    // Who can change a file below a linked directory: judged by the tree's /data (world-
    // writable), not by whatever /data is on this machine.
    const auto w = r.writable_by_others("/link/job.sh");
    ASSERT_TRUE(w);
    EXPECT_NE(w->find("world-writable"), std::string::npos) << *w;
    // A link to a directory outside the tree's own names is no directory on this machine.
    ASSERT_EQ(::symlink("/proc/self", (m_dir + "/self").c_str()), 0);
    EXPECT_FALSE(r.is_dir("/self"));
    EXPECT_FALSE(r.exists("/self/status"));
}
