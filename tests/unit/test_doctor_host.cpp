// tests/unit/test_doctor_host.cpp — doctor's checks of groups, the other doors to root (pkexec,
// polkit, doas, setuid programs, cron), the daemon, its spool and the clock (with injected
// facts), and the report: JSON, text and exit status.
#include "tests/unit/doctor_fixture.hpp"

using namespace jitgate;
using Doctor = jitgate::test::DoctorTree;
using Strings = std::vector<std::string>;

namespace {

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
