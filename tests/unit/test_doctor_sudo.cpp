// tests/unit/test_doctor_sudo.cpp — doctor's checks of jitgate.yaml, sudo.conf and sudoers on
// crafted /etc trees: each finding appears when its door is open and not when it is closed.
#include <pthread.h>

#include "tests/unit/doctor_fixture.hpp"

using namespace jitgate;
using Doctor = jitgate::test::DoctorTree;
using Strings = std::vector<std::string>;

namespace {

const char* k_good_sudo_conf = "Plugin sudoers_policy sudoers.so\n"
                               "Plugin jitgate_approval /usr/libexec/jitgate/sudo_jitgate.so break_glass_group=bg\n"
                               "Plugin jitgate_audit /usr/libexec/jitgate/sudo_jitgate.so break_glass_group=bg\n";

const char* k_config = "host:\n  name: fin-db-01\ndaemon:\n  socket: /run/j/j.sock\nbreak_glass:\n  group: oncall\n"
                       "audit:\n  spool_dir: /var/spool/j\n";

} // namespace

TEST_F(Doctor, SudoConfWithBothLinesAndARootOwnedPluginIsClean) {
    write("/etc/sudo.conf", k_good_sudo_conf);
    write("/usr/libexec/jitgate/sudo_jitgate.so", "ELF", 0644);
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudo_conf(root(), gate, f);
    EXPECT_EQ(ids(f), Strings{});
    EXPECT_EQ(gate.plugin_paths, Strings{"/usr/libexec/jitgate/sudo_jitgate.so"});
    EXPECT_EQ(gate.break_glass_group, "bg"); // no jitgate.yaml loaded: the plugin's option
}

TEST_F(Doctor, SudoConfMissingIsCritical) {
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudo_conf(root(), gate, f);
    EXPECT_EQ(ids(f), Strings{"sudo_conf.missing /etc/sudo.conf"});
    EXPECT_EQ(f[0].severity, doctor::Severity::critical);
}

TEST_F(Doctor, SudoConfWithoutTheApprovalLineIsCriticalWithoutTheAuditLineAWarning) {
    write("/usr/libexec/jitgate/sudo_jitgate.so", "ELF");
    write("/etc/sudo.conf", "Plugin sudoers_policy sudoers.so\n"
                            "#Plugin jitgate_approval /usr/libexec/jitgate/sudo_jitgate.so\n"
                            "Plugin jitgate_audit /usr/libexec/jitgate/sudo_jitgate.so\n");
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudo_conf(root(), gate, f);
    ASSERT_EQ(ids(f), Strings{"sudo_conf.approval_missing /etc/sudo.conf"});
    EXPECT_EQ(f[0].severity, doctor::Severity::critical);

    write("/etc/sudo.conf", "Plugin sudoers_policy sudoers.so\n"
                            "Plugin jitgate_approval /usr/libexec/jitgate/sudo_jitgate.so\n");
    f.clear();
    doctor::check_sudo_conf(root(), gate, f);
    ASSERT_EQ(ids(f), Strings{"sudo_conf.audit_missing /etc/sudo.conf"});
    EXPECT_EQ(f[0].severity, doctor::Severity::warning);
}

TEST_F(Doctor, PluginWritableByOthersItselfOrThroughItsDirectory) {
    write("/etc/sudo.conf", k_good_sudo_conf);
    write("/usr/libexec/jitgate/sudo_jitgate.so", "ELF", 0664);
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudo_conf(root(), gate, f);
    ASSERT_EQ(ids(f), Strings{"sudo_conf.plugin_writable /usr/libexec/jitgate/sudo_jitgate.so"});
    EXPECT_NE(f[0].what.find("group-writable (mode 0664)"), std::string::npos) << f[0].what;

    chmod("/usr/libexec/jitgate/sudo_jitgate.so", 0644);
    chmod("/usr/libexec/jitgate", 0777);
    f.clear();
    doctor::check_sudo_conf(root(), gate, f);
    ASSERT_EQ(ids(f), Strings{"sudo_conf.plugin_writable /usr/libexec/jitgate/sudo_jitgate.so"});
    EXPECT_NE(f[0].what.find("its directory /usr/libexec/jitgate is world-writable"), std::string::npos) << f[0].what;

    // A sticky directory (like /tmp) above a trusted file cannot have that file replaced.
    chmod("/usr/libexec/jitgate", 01777);
    f.clear();
    doctor::check_sudo_conf(root(), gate, f);
    EXPECT_EQ(ids(f), Strings{});
}

TEST_F(Doctor, APluginThatIsASymbolicLinkIsJudgedByWhereItLeads) {
    write("/etc/sudo.conf", k_good_sudo_conf);
    write("/home/bob/evil.so", "ELF", 0644);
    chmod("/home/bob", 0777);
    mkdir("/usr/libexec/jitgate");
    ASSERT_EQ(::symlink("/home/bob/evil.so", (m_dir + "/usr/libexec/jitgate/sudo_jitgate.so").c_str()), 0);
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudo_conf(root(), gate, f);
    ASSERT_EQ(ids(f), Strings{"sudo_conf.plugin_writable /usr/libexec/jitgate/sudo_jitgate.so"});
    EXPECT_EQ(
        f[0].what,
        "its directory /home/bob (where /usr/libexec/jitgate/sudo_jitgate.so leads) is world-writable (mode 0777)");
    // A relative link to a good file, and a loop.
    write("/usr/lib/jitgate/sudo_jitgate.so", "ELF", 0644);
    std::filesystem::remove(m_dir + "/usr/libexec/jitgate/sudo_jitgate.so");
    ASSERT_EQ(::symlink("../../lib/jitgate/sudo_jitgate.so", (m_dir + "/usr/libexec/jitgate/sudo_jitgate.so").c_str()),
              0);
    f.clear();
    doctor::check_sudo_conf(root(), gate, f);
    EXPECT_EQ(ids(f), Strings{});
    EXPECT_EQ(root().resolve("/usr/libexec/jitgate/sudo_jitgate.so"), "/usr/lib/jitgate/sudo_jitgate.so");
    ASSERT_EQ(::symlink("loop2", (m_dir + "/usr/lib/loop1").c_str()), 0);
    ASSERT_EQ(::symlink("loop1", (m_dir + "/usr/lib/loop2").c_str()), 0);
    EXPECT_EQ(root().writable_by_others("/usr/lib/loop1"), "/usr/lib/loop1 is a loop of symbolic links");
}

TEST_F(Doctor, SudoConfItselfWritable) {
    write("/etc/sudo.conf", k_good_sudo_conf, 0666);
    write("/usr/libexec/jitgate/sudo_jitgate.so", "ELF");
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudo_conf(root(), gate, f);
    EXPECT_EQ(ids(f), Strings{"sudo_conf.writable /etc/sudo.conf"});
}

TEST_F(Doctor, RelativePluginPathIsFoundInPluginDirAndAMissingPluginReported) {
    write("/etc/sudo.conf", "Path plugin_dir /usr/lib/sudo\n"
                            "Plugin jitgate_approval sudo_jitgate.so\nPlugin jitgate_audit sudo_jitgate.so\n");
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudo_conf(root(), gate, f);
    EXPECT_EQ(ids(f), Strings{"sudo_conf.plugin_missing /usr/lib/sudo/sudo_jitgate.so"});
    write("/usr/lib/sudo/sudo_jitgate.so", "ELF", 0646);
    f.clear();
    gate = {};
    doctor::check_sudo_conf(root(), gate, f);
    EXPECT_EQ(ids(f), Strings{"sudo_conf.plugin_writable /usr/lib/sudo/sudo_jitgate.so"});
}

TEST_F(Doctor, JitgateConfigLoadsAndTellsTheSocketSpoolAndBreakGlassGroup) {
    write("/etc/jitgate/jitgate.yaml", k_config, 0640);
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_jitgate_config(root(), gate, f);
    EXPECT_EQ(ids(f), Strings{});
    EXPECT_TRUE(gate.loaded);
    EXPECT_EQ(gate.socket, "/run/j/j.sock");
    EXPECT_EQ(gate.spool_dir, "/var/spool/j");
    EXPECT_EQ(gate.break_glass_group, "oncall");
}

TEST_F(Doctor, JitgateConfigMissingInvalidOrWritable) {
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_jitgate_config(root(), gate, f);
    EXPECT_EQ(ids(f), Strings{"config.missing /etc/jitgate/jitgate.yaml"});

    write("/etc/jitgate/jitgate.yaml", "host:\n  name: x\nbogus_key: 1\n", 0664);
    f.clear();
    doctor::check_jitgate_config(root(), gate, f);
    EXPECT_EQ(ids(f),
              (Strings{"config.invalid /etc/jitgate/jitgate.yaml", "config.writable /etc/jitgate/jitgate.yaml"}));
    EXPECT_FALSE(gate.loaded);
    EXPECT_NE(doctor::Findings(f)[0].what.find("bogus_key"), std::string::npos) << f[0].what;
}

TEST_F(Doctor, SudoersRulesThatHandOverTheGateAreListedAndNarrowOnesAreNot) {
    write("/etc/sudoers",
          "Defaults env_reset\n"
          "# a comment with ALL = ALL\n"
          "root ALL=(ALL:ALL) ALL\n"
          "%sudo ALL=(ALL:ALL) ALL\n"
          "alice ALL=(root) NOPASSWD: /usr/bin/vim /etc/motd\n"
          "bob ALL = NOPASSWD: /usr/bin/systemctl restart nginx, /usr/bin/systemctl status\n"
          "User_Alias OPS = carol, dave\n"
          "Cmnd_Alias GATE = /usr/bin/tee /etc/sudo.conf, /bin/cp * /usr/libexec/jitgate/ : "
          "EDIT = /usr/bin/sudoedit /etc/jitgate/jitgate.yaml\n"
          "OPS ALL = (ALL) GATE\n"
          "erin ALL=(postgres) /bin/bash\n"
          "frank ALL=(:adm) /bin/bash\n"
          "gina ALL=(root, operator) /usr/bin/nano, \\\n"
          "     /usr/bin/sudoedit /etc/motd\n"
          "henry ALL = /bin/ls : db01 = NOPASSWD:SETENV: /bin/sh\n"
          "ivan ALL = EDIT\n"
          "@includedir /etc/sudoers.d\n",
          0440);
    write("/etc/sudoers.d/ops", "judy ALL=(ALL) /usr/sbin/visudo\n", 0440);
    write("/etc/sudoers.d/skip.conf", "kim ALL=(ALL) ALL\n", 0440);
    write("/etc/sudoers.d/old~", "lee ALL=(ALL) ALL\n", 0440);
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudoers(root(), gate, f);
    // A continued line is reported at its first line (gina's, 12). henry's SETENV shell is also
    // a setenv_tag finding (its own test below).
    EXPECT_EQ(ids(f), (Strings{"sudoers.all /etc/sudoers:4", "sudoers.editor /etc/sudoers.d/ops:1",
                               "sudoers.editor /etc/sudoers:12", "sudoers.editor /etc/sudoers:5",
                               "sudoers.gate_file /etc/sudoers:15", "sudoers.gate_file /etc/sudoers:9",
                               "sudoers.gate_file /etc/sudoers:9", "sudoers.setenv_tag /etc/sudoers:14",
                               "sudoers.shell /etc/sudoers:14"}));
    for (const auto& x : f) {
        EXPECT_EQ(x.severity, doctor::Severity::warning) << x.check;
        if (x.check != "sudoers.setenv_tag") {
            EXPECT_NE(x.why.find("Approvable, but a key to the gate"), std::string::npos);
        }
    }
    const auto* all = find(f, "sudoers.all");
    ASSERT_NE(all, nullptr);
    EXPECT_EQ(all->what, "%sudo may run ALL commands as root, editors, shells and visudo included");
}

TEST_F(Doctor, SudoersNarrowRulesAndNopasswdAreNotFindings) {
    write("/etc/sudoers", "root ALL=(ALL) ALL\nbob ALL=(ALL) NOPASSWD: /usr/bin/systemctl restart nginx\n", 0440);
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudoers(root(), gate, f);
    EXPECT_EQ(ids(f), Strings{});
}

TEST_F(Doctor, SudoersDefaultsThatLetTheEnvironmentLoadCodeAsRoot) {
    write("/etc/sudoers",
          "Defaults env_reset\n"
          "Defaults env_keep += \"LANG LC_* EDITOR\"\n"
          "Defaults:bob env_keep += \"LD_PRELOAD PYTHONPATH\", !env_reset\n"
          "Defaults>root setenv\n"
          "root ALL=(ALL) ALL\n",
          0440);
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudoers(root(), gate, f);
    EXPECT_EQ(ids(f), (Strings{"sudoers.env_keep_code /etc/sudoers:3", "sudoers.env_not_reset /etc/sudoers:3",
                               "sudoers.setenv /etc/sudoers:4"}));
    for (const auto& x : f)
        if (x.check == "sudoers.env_keep_code") {
            EXPECT_EQ(x.severity, doctor::Severity::critical);
            EXPECT_NE(x.what.find("LD_PRELOAD, PYTHONPATH"), std::string::npos) << x.what;
        }
}

// SETENV lets the caller set LD_PRELOAD and the like for one command; the tag carries to the
// commands after it in the list until NOSETENV; ALL implies it and is reported as ALL.
TEST_F(Doctor, SudoersSetenvTagIsAFindingPerCommand) {
    write("/etc/sudoers",
          "bob ALL=(ALL) NOPASSWD:SETENV: /usr/bin/systemctl restart nginx, /usr/bin/id, NOSETENV: /usr/bin/uptime\n"
          "carol ALL=(root) SETENV: /usr/local/sbin/report\n"
          "dave ALL=(ALL) /usr/bin/uptime\n",
          0440);
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudoers(root(), gate, f);
    EXPECT_EQ(ids(f), (Strings{"sudoers.setenv_tag /etc/sudoers:1", "sudoers.setenv_tag /etc/sudoers:1",
                               "sudoers.setenv_tag /etc/sudoers:2"}));
    ASSERT_FALSE(f.empty());
    EXPECT_EQ(f[0].what, "bob may set any environment variable for `/usr/bin/systemctl restart nginx` run as root "
                         "(SETENV)");
    EXPECT_NE(f[1].what.find("`/usr/bin/id`"), std::string::npos) << f[1].what;
}

TEST_F(Doctor, SudoersCommandThatOthersCanReplace) {
    write("/etc/sudoers", "bob ALL=(ALL) /usr/local/bin/backup --all\n", 0440);
    write("/usr/local/bin/backup", "#!/bin/sh\n", 0777);
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudoers(root(), gate, f);
    ASSERT_EQ(ids(f), Strings{"sudoers.command_writable /etc/sudoers:1"});
    EXPECT_EQ(f[0].severity, doctor::Severity::critical);
}

TEST_F(Doctor, SudoersWritableOrUnreadableFilesAreReported) {
    write("/etc/sudoers", "#include sudoers.local\n@include /etc/sudoers.d/adir\n", 0440);
    write("/etc/sudoers.local", "bob ALL=(ALL) /usr/bin/id\n", 0666);
    mkdir("/etc/sudoers.d/adir");
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudoers(root(), gate, f);
    EXPECT_EQ(ids(f), (Strings{"sudoers.unreadable /etc/sudoers.d/adir", "sudoers.writable /etc/sudoers.local"}));
}

TEST_F(Doctor, AnOverlongSudoersRuleIsNotCheckedAndSaysSo) {
    // Continued over many lines, one rule of about 100000 characters: reported, not parsed (and
    // no crash), and the rules after it are still read.
    std::string rule = "bob ALL=(ALL) /usr/bin/true";
    for (int i = 0; i < 5000; ++i) rule += ", \\\n /usr/bin/echo " + std::to_string(i);
    write("/etc/sudoers", rule + "\ncarol ALL=(ALL) /bin/sh\n", 0440);
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudoers(root(), gate, f);
    EXPECT_EQ(ids(f), (Strings{"sudoers.line_too_long /etc/sudoers:1", "sudoers.shell /etc/sudoers:5002"}));
    EXPECT_EQ(find(f, "sudoers.line_too_long")->severity, doctor::Severity::critical);
}

// Regression: the first parser used std::regex, which recurses over its input; a hostile rule
// of 16000 characters (a long host list after " : ", or 1600 tags) overflowed a 2 MiB stack.
// The parser now runs in a thread with a 512 KiB stack over rules just under the limit.
TEST_F(Doctor, HostileSudoersRulesParseInABoundedStack) {
    std::string hosts = "bob ALL = /bin/x : h";
    while (hosts.size() < 64000) hosts += ", h";
    std::string tags = "alice ALL = (root) ";
    while (tags.size() < 64000) tags += "NOPASSWD: ";
    std::string aliases = "Cmnd_Alias A0 = /bin/x";
    for (int i = 1; aliases.size() < 64000; ++i) aliases += " : A" + std::to_string(i) + " = /bin/x";
    write("/etc/sudoers", hosts + "\n" + tags + "/bin/sh\n" + aliases + "\ncarol ALL = A7, /usr/bin/vim\n", 0440);
    struct Job {
        doctor::Root root;
        doctor::Findings findings;
    } job{root(), {}};
    pthread_attr_t attr;
    ASSERT_EQ(pthread_attr_init(&attr), 0);
    ASSERT_EQ(pthread_attr_setstacksize(&attr, 512 * 1024), 0);
    pthread_t thread;
    ASSERT_EQ(pthread_create(
                  &thread, &attr,
                  [](void* p) -> void* {
                      auto* j = static_cast<Job*>(p);
                      doctor::check_sudoers(j->root, doctor::GateConfig{}, j->findings);
                      return nullptr;
                  },
                  &job),
              0);
    ASSERT_EQ(pthread_join(thread, nullptr), 0);
    pthread_attr_destroy(&attr);
    EXPECT_EQ(ids(job.findings), (Strings{"sudoers.editor /etc/sudoers:4", "sudoers.shell /etc/sudoers:2"}));
}

TEST_F(Doctor, SudoersRunasAliasesDigestsAndOptionsAreSeenThrough) {
    write("/etc/sudoers",
          "Runas_Alias ADMINS = root, #0\nRunas_Alias DB = postgres\n"
          "bob ALL=(ADMINS) CWD=/tmp sha256:0123abcd /usr/bin/vi\n"
          "carol ALL=(DB) /usr/bin/vi\n"
          "dave ALL=(ALL) NOPASSWD: !/usr/bin/vi, /usr/bin/id\n",
          0440);
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudoers(root(), gate, f);
    EXPECT_EQ(ids(f), Strings{"sudoers.editor /etc/sudoers:3"});
}

TEST_F(Doctor, ASudoersCommentEndsAtTheNewlineEvenWhenItEndsInABackslash) {
    // sudo's lexer ends a comment at the newline: the rule after `# ... \` is a rule.
    write("/etc/sudoers",
          "# admins below \\\n"
          "%admin ALL=(ALL) ALL\n"
          "bob ALL=(ALL) /usr/bin/id # the id tool \\\n"
          "carol ALL=(ALL) /bin/bash\n"
          // Blanks after the '\' still continue the line, as in sudo's lexer: dave may run sh.
          "dave ALL=(ALL) /usr/bin/id, \\  \n"
          "    /bin/sh\n",
          0440);
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudoers(root(), gate, f);
    EXPECT_EQ(ids(f),
              (Strings{"sudoers.all /etc/sudoers:2", "sudoers.shell /etc/sudoers:4", "sudoers.shell /etc/sudoers:5"}));
}

TEST_F(Doctor, SudoConfContinuationLinesAreJoinedAsSudoJoinsThem) {
    write("/usr/libexec/jitgate/sudo_jitgate.so", "ELF");
    // sudo joins a line ending in '\' with the next: the "Plugin jitgate_approval" words are
    // arguments of the Path line, and sudo loads no approval plugin.
    write("/etc/sudo.conf", "Plugin sudoers_policy sudoers.so\n"
                            "Path noexec /usr/libexec/sudo/sudo_noexec.so \\\n"
                            "Plugin jitgate_approval /usr/libexec/jitgate/sudo_jitgate.so\n"
                            "Plugin jitgate_audit /usr/libexec/jitgate/sudo_jitgate.so\n");
    doctor::GateConfig gate;
    doctor::Findings f;
    doctor::check_sudo_conf(root(), gate, f);
    EXPECT_EQ(ids(f), Strings{"sudo_conf.approval_missing /etc/sudo.conf"});
    // A continued Plugin line is one Plugin line; a comment ending in '\' continues nothing.
    write("/etc/sudo.conf", "Plugin sudoers_policy sudoers.so\n"
                            "# the jitgate plugins \\\n"
                            "Plugin jitgate_approval \\\n"
                            "    /usr/libexec/jitgate/sudo_jitgate.so break_glass_group=bg\n"
                            "Plugin jitgate_audit /usr/libexec/jitgate/sudo_jitgate.so\n");
    f.clear();
    gate = {};
    doctor::check_sudo_conf(root(), gate, f);
    EXPECT_EQ(ids(f), Strings{});
    EXPECT_EQ(gate.break_glass_group, "bg");
}

TEST_F(Doctor, SudoersAliasFanOutIsExpandedOnceAndBounded) {
    // A0 = A1, A1, A1, A1 ... A20 = /bin/sh: 4^20 members if each name were expanded each time.
    std::string text;
    for (int i = 0; i < 20; ++i) {
        const std::string next = "A" + std::to_string(i + 1);
        text += "Cmnd_Alias A" + std::to_string(i) + " = " + next + ", " + next + ", " + next + ", " + next + "\n";
    }
    text += "Cmnd_Alias A20 = /usr/bin/id, /bin/bash\n";
    // The aliases nest deeper than doctor follows (16): what is left is still a member.
    text += "bob ALL = (root) A4\n";
    write("/etc/sudoers", text, 0440);
    doctor::Findings f;
    within(std::chrono::seconds(20), [&] { doctor::check_sudoers(root(), doctor::GateConfig{}, f); });
    EXPECT_EQ(ids(f), Strings{"sudoers.shell /etc/sudoers:22"});
    // Many distinct members over many rules (10000 a rule, 120 rules): past the budget of about
    // a million, the rest is reported as not checked, carol's rule included.
    std::string big;
    std::string all = "Cmnd_Alias BIG = B0";
    for (int i = 0; i < 100; ++i) {
        big += "Cmnd_Alias B" + std::to_string(i) + " = x" + std::to_string(i) + "_0";
        for (int k = 1; k < 100; ++k) big += ", x" + std::to_string(i) + "_" + std::to_string(k);
        big += "\n";
        if (i > 0) all += ", B" + std::to_string(i);
    }
    big += all + "\n";
    for (int i = 0; i < 120; ++i) big += "u" + std::to_string(i) + " ALL = (root) BIG\n";
    big += "carol ALL = (root) /bin/bash\n";
    write("/etc/sudoers", big, 0440);
    f.clear();
    within(std::chrono::seconds(60), [&] { doctor::check_sudoers(root(), doctor::GateConfig{}, f); });
    ASSERT_EQ(f.size(), 1u) << ::testing::PrintToString(ids(f));
    EXPECT_EQ(f[0].check, "sudoers.not_checked");
    EXPECT_TRUE(f[0].subject.starts_with("/etc/sudoers:2")) << f[0].subject; // a rule near the 105th (line 206)
    EXPECT_EQ(f[0].severity, doctor::Severity::critical);
}
