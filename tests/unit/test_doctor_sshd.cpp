// tests/unit/test_doctor_sshd.cpp — doctor's check of sshd_config (drop-ins first, first value
// wins, Match blocks reported whatever their condition) and root's authorized_keys.
#include "tests/unit/doctor_fixture.hpp"

using namespace jitgate;
using Doctor = jitgate::test::DoctorTree;
using Strings = std::vector<std::string>;
using namespace std::string_literals;

namespace {

doctor::Findings sshd(const doctor::Root& root, const doctor::GateConfig& gate = {}) {
    doctor::Findings f;
    doctor::check_sshd(root, doctor::read_accounts(root), gate, f);
    return f;
}

} // namespace

TEST_F(Doctor, SshdAsDocsPamSetsItUpIsClean) {
    write("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\n"
                                  "KbdInteractiveAuthentication no\nUsePAM yes\n");
    write("/etc/ssh/sshd_config.d/40-jitgate.conf",
          "UsePAM yes\nPermitRootLogin no\nAuthenticationMethods publickey,keyboard-interactive\n"
          "Match User svc-reports Address 10.20.0.15\n    AuthenticationMethods publickey\n");
    write("/root/.ssh/authorized_keys", "ssh-ed25519 AAAA root@old\n", 0600);
    EXPECT_EQ(ids(sshd(root())), Strings{});
}

TEST_F(Doctor, SshdNotInstalledIsNotChecked) {
    EXPECT_EQ(ids(sshd(root())), Strings{});
}

TEST_F(Doctor, SshdWithoutPamOrWithPamOffIsCritical) {
    write("/etc/ssh/sshd_config", "PermitRootLogin no\n");
    auto f = sshd(root());
    ASSERT_EQ(ids(f), Strings{"sshd.use_pam /etc/ssh/sshd_config"});
    EXPECT_EQ(f[0].severity, doctor::Severity::critical);
    // First value wins: the drop-in's "no" beats the main file's "yes".
    write("/etc/ssh/sshd_config", "Include sshd_config.d/*.conf\nUsePAM yes\nPermitRootLogin no\n");
    write("/etc/ssh/sshd_config.d/10-old.conf", "usepam=no\n");
    f = sshd(root());
    EXPECT_EQ(ids(f), Strings{"sshd.use_pam /etc/ssh/sshd_config.d/10-old.conf:1"});
}

TEST_F(Doctor, PermitRootLoginAndRootKeys) {
    write("/etc/passwd", "root:x:0:0:root:/var/root:/bin/sh\n");
    write("/etc/ssh/sshd_config", "UsePAM yes\n");
    write("/var/root/.ssh/authorized_keys", "# old\n\nssh-ed25519 AAAA a\nssh-rsa BBBB b\n", 0600);
    auto f = sshd(root());
    EXPECT_EQ(ids(f), (Strings{"sshd.permit_root_login /etc/ssh/sshd_config",
                               "sshd.root_authorized_keys /var/root/.ssh/authorized_keys"}));
    EXPECT_EQ(find(f, "sshd.root_authorized_keys")->what,
              "2 key(s) for root, and PermitRootLogin is prohibit-password");
    // AuthorizedKeysFile moves them; %h and %u are expanded.
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin without-password\nAuthorizedKeysFile /etc/keys/%u\n");
    write("/etc/keys/root", "ssh-ed25519 CCCC c\n");
    f = sshd(root());
    EXPECT_EQ(ids(f),
              (Strings{"sshd.permit_root_login /etc/ssh/sshd_config:2", "sshd.root_authorized_keys /etc/keys/root"}));
}

TEST_F(Doctor, MatchBlocksAreReportedWhateverTheirCondition) {
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\n"
                                  "Match Address 10.0.0.0/8\n  PermitRootLogin yes\n"
                                  "Match all\nAuthorizedKeysCommand /usr/local/bin/keys %u\n");
    const auto f = sshd(root());
    EXPECT_EQ(ids(f), (Strings{"sshd.authorized_keys_command /etc/ssh/sshd_config:6",
                               "sshd.permit_root_login /etc/ssh/sshd_config:4"}));
    EXPECT_NE(find(f, "sshd.permit_root_login")->what.find("Match Address 10.0.0.0/8"), std::string::npos);
}

TEST_F(Doctor, SshdConfigWritableOrUnreadable) {
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\nInclude /etc/ssh/extra\n", 0664);
    mkdir("/etc/ssh/extra");
    EXPECT_EQ(ids(sshd(root())), (Strings{"sshd.unreadable /etc/ssh/extra", "sshd.writable /etc/ssh/sshd_config"}));
}

TEST_F(Doctor, KeyOnlyLoginsWhileBreakGlassMembersSkipTheAccountHook) {
    doctor::GateConfig gate;
    gate.break_glass_group = "oncall";
    gate.sshd_account_skips_break_glass = true;
    // As docs/pam.md: the key and then keyboard-interactive, for everyone.
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\n"
                                  "AuthenticationMethods publickey,keyboard-interactive:pam\n");
    EXPECT_EQ(ids(sshd(root(), gate)), Strings{});
    // sshd's default (any), a key-only alternative, and a key-only Match block.
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\n");
    EXPECT_EQ(ids(sshd(root(), gate)), Strings{"sshd.break_glass_key_only /etc/ssh/sshd_config"});
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\n"
                                  "AuthenticationMethods publickey,keyboard-interactive publickey,password\n"
                                  "Match User svc-reports\n  AuthenticationMethods publickey\n");
    const auto f = sshd(root(), gate);
    EXPECT_EQ(ids(f), (Strings{"sshd.break_glass_key_only /etc/ssh/sshd_config:3",
                               "sshd.break_glass_key_only /etc/ssh/sshd_config:5"}));
    EXPECT_EQ(f[0].severity, doctor::Severity::critical);
    // Without the skip in the PAM stack, the account hook gates key-only logins: no finding.
    gate.sshd_account_skips_break_glass = false;
    EXPECT_EQ(ids(sshd(root(), gate)), Strings{});
}

TEST_F(Doctor, AnAbsoluteSymbolicLinkIsReadInsideTheTree) {
    // An image's /etc/ssh/sshd_config -> /srv/ssh/sshd_config is the image's file, not this
    // machine's.
    write("/srv/ssh/sshd_config", "UsePAM no\nPermitRootLogin no\n");
    mkdir("/etc/ssh");
    ASSERT_EQ(::symlink("/srv/ssh/sshd_config", (m_dir + "/etc/ssh/sshd_config").c_str()), 0);
    EXPECT_EQ(ids(sshd(root())), Strings{"sshd.use_pam /etc/ssh/sshd_config:1"});
}

TEST_F(Doctor, IncludeGlobsInAnyComponentInLexicalOrder) {
    // sshd expands the whole pattern with glob(3): here the directory is the wildcard, and the
    // first value in glob's sorted order wins.
    write("/etc/ssh/sshd_config", "Include /etc/ssh/conf.*/*.conf\nUsePAM yes\nPermitRootLogin no\n");
    write("/etc/ssh/conf.b/10-pam.conf", "UsePAM yes\n");
    write("/etc/ssh/conf.a/90-old.conf", "UsePAM no\n");
    EXPECT_EQ(ids(sshd(root())), Strings{"sshd.use_pam /etc/ssh/conf.a/90-old.conf:1"});
    // Relative to /etc/ssh, and a pattern that matches nothing is no finding.
    write("/etc/ssh/sshd_config", "Include conf.[ab]/9*.conf nothere.d/*\nUsePAM yes\nPermitRootLogin no\n");
    EXPECT_EQ(ids(sshd(root())), Strings{"sshd.use_pam /etc/ssh/conf.a/90-old.conf:1"});
}

TEST_F(Doctor, IncludeLoopsAndFanOutEndInBoundedTime) {
    // A file that includes itself: sshd refuses to start; doctor says so and finishes.
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\nInclude /etc/ssh/sshd_config.d/*.conf\n");
    write("/etc/ssh/sshd_config.d/a.conf", "Include /etc/ssh/sshd_config.d/b.conf\n");
    write("/etc/ssh/sshd_config.d/b.conf", "Include /etc/ssh/sshd_config.d/a.conf\n");
    doctor::Findings f;
    within(std::chrono::seconds(20), [&] { f = sshd(root()); });
    EXPECT_EQ(ids(f), (Strings{"sshd.include_loop /etc/ssh/sshd_config.d/a.conf",
                               "sshd.include_loop /etc/ssh/sshd_config.d/b.conf"}));
    // Each file includes the next one four times, 12 deep: 4^12 reads without a budget.
    std::string main = "UsePAM yes\nPermitRootLogin no\nInclude /etc/ssh/f0\n";
    write("/etc/ssh/sshd_config", main);
    for (int i = 0; i < 12; ++i) {
        const std::string next = "Include /etc/ssh/f" + std::to_string(i + 1) + "\n";
        write("/etc/ssh/f" + std::to_string(i), next + next + next + next);
    }
    write("/etc/ssh/f12", "UsePAM yes\n");
    within(std::chrono::seconds(20), [&] { f = sshd(root()); });
    EXPECT_EQ(ids(f), Strings{"sshd.not_checked /etc/ssh/sshd_config"});
    EXPECT_EQ(f[0].severity, doctor::Severity::critical);
}

TEST_F(Doctor, AHomeHoldingPercentTokensIsExpandedOnce) {
    write("/etc/passwd", "root:x:0:0:root:/var/%h%u:/bin/sh\n");
    write("/etc/ssh/sshd_config", "UsePAM yes\nAuthorizedKeysFile %h/keys.%u.%U.%% /etc/ssh/keys/%x\n");
    write("/var/%h%u/keys.root.0.%", "ssh-ed25519 AAAA a\n", 0600);
    doctor::Findings f;
    within(std::chrono::seconds(20), [&] { f = sshd(root()); });
    EXPECT_EQ(ids(f), (Strings{"sshd.permit_root_login /etc/ssh/sshd_config",
                               "sshd.root_authorized_keys /var/%h%u/keys.root.0.%"}));
}

TEST_F(Doctor, MatchAllOverridesTheGlobalFirstValue) {
    // The global values are first-value-wins among themselves, but `Match all` is a Match block:
    // its PermitRootLogin applies to every connection over the global `no`.
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\nMatch all\n  PermitRootLogin yes\n");
    const auto f = sshd(root());
    EXPECT_EQ(ids(f), Strings{"sshd.permit_root_login /etc/ssh/sshd_config:4"});
    EXPECT_EQ(f[0].what, "PermitRootLogin yes for `Match all`");
    // `Match` with other criteria after it ends the `all` block: back to Match-only values.
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\nMatch all\nX11Forwarding no\n"
                                  "Match User alice\nPermitRootLogin no\n");
    EXPECT_EQ(ids(sshd(root())), Strings{});
}

TEST_F(Doctor, AMatchBlocksAuthorizedKeysFileForRootIsRead) {
    // Globally root may not log in and has no keys; `Match User root` lets it in with keys kept
    // elsewhere.
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\n"
                                  "Match User root Address 10.1.0.0/16\n"
                                  "  PermitRootLogin prohibit-password\n"
                                  "  AuthorizedKeysFile /etc/ssh/keys/%u .ssh/authorized_keys\n");
    write("/etc/ssh/keys/root", "ssh-ed25519 AAAA backdoor\n");
    auto f = sshd(root());
    EXPECT_EQ(ids(f), (Strings{"sshd.permit_root_login /etc/ssh/sshd_config:4",
                               "sshd.root_authorized_keys /etc/ssh/keys/root"}));
    const auto* keys = find(f, "sshd.root_authorized_keys");
    ASSERT_NE(keys, nullptr);
    EXPECT_NE(keys->what.find("no, but prohibit-password for `Match User root Address 10.1.0.0/16`"), std::string::npos)
        << keys->what;
    EXPECT_NE(keys->what.find("AuthorizedKeysFile of `Match User root Address 10.1.0.0/16` at /etc/ssh/sshd_config:5"),
              std::string::npos)
        << keys->what;
    // With root kept out everywhere, keys anywhere are no door.
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\nMatch User root\n"
                                  "  AuthorizedKeysFile /etc/ssh/keys/%u\n");
    EXPECT_EQ(ids(sshd(root())), Strings{});
}

TEST_F(Doctor, OptionsOnSshdsCommandLineWinOverSshdConfig) {
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\n");
    // Debian's unit passes $SSHD_OPTS from /etc/default/ssh.
    write("/lib/systemd/system/ssh.service", "[Service]\nEnvironmentFile=-/etc/default/ssh\n"
                                             "ExecStartPre=/usr/sbin/sshd -t\n"
                                             "ExecStart=/usr/sbin/sshd -D $SSHD_OPTS\n");
    write("/etc/default/ssh", "# Options to pass to sshd\nSSHD_OPTS=\"-o PermitRootLogin=yes -oUsePAM=no\"\n");
    auto f = sshd(root());
    EXPECT_EQ(ids(f), (Strings{"sshd.command_line /etc/default/ssh:2", "sshd.command_line /etc/default/ssh:2",
                               "sshd.permit_root_login /etc/default/ssh:2", "sshd.use_pam /etc/default/ssh:2"}));
    EXPECT_EQ(find(f, "sshd.use_pam")->severity, doctor::Severity::critical);
    // An empty SSHD_OPTS (the packaged file) is clean.
    write("/etc/default/ssh", "SSHD_OPTS=\n");
    EXPECT_EQ(ids(sshd(root())), Strings{});
    // The variable set in the unit itself.
    write("/etc/systemd/system/ssh.service.d/env.conf",
          "[Service]\nEnvironment=LANG=C \"SSHD_OPTS=-o AuthorizedKeysCommand=/usr/local/bin/keys\"\n");
    EXPECT_EQ(ids(sshd(root())), (Strings{"sshd.authorized_keys_command /etc/systemd/system/ssh.service.d/env.conf:2",
                                          "sshd.command_line /etc/systemd/system/ssh.service.d/env.conf:2"}));
    // A file of variables the unit names.
    write("/etc/systemd/system/ssh.service.d/env.conf", "[Service]\nEnvironmentFile=-/etc/ssh/opts\n");
    write("/etc/ssh/opts", "OPTIONS='-De -oPermitRootLogin=yes'\n");
    EXPECT_EQ(ids(sshd(root())),
              (Strings{"sshd.command_line /etc/ssh/opts:1", "sshd.permit_root_login /etc/ssh/opts:1"}));
    std::filesystem::remove(m_dir + "/etc/systemd/system/ssh.service.d/env.conf");
    // A drop-in that starts sshd on another configuration file: that file is the one checked.
    write("/etc/systemd/system/ssh.service.d/override.conf",
          "[Service]\nExecStart=\nExecStart=-/usr/sbin/sshd -D \\\n    -De -f /srv/sshd_config\n");
    write("/srv/sshd_config", "UsePAM no\nPermitRootLogin no\n");
    f = sshd(root());
    EXPECT_EQ(ids(f), (Strings{"sshd.command_line /etc/systemd/system/ssh.service.d/override.conf:3",
                               "sshd.use_pam /srv/sshd_config:1"}));
    EXPECT_EQ(find(f, "sshd.command_line")->what, "sshd is started with -f /srv/sshd_config");
}

TEST_F(Doctor, EveryConfigurationAnExecStartInForceNamesIsCheckedAndOnlyThose) {
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\n");
    // ExecStartPre= tests a configuration; it starts no server on it.
    write("/lib/systemd/system/ssh.service", "[Service]\nExecStartPre=/usr/sbin/sshd -t -f /srv/test_config\n"
                                             "ExecStart=/usr/sbin/sshd -D $SSHD_OPTS\n"
                                             "ExecReload=/usr/sbin/sshd -t -f /srv/test_config\n");
    write("/srv/test_config", "UsePAM no\nPermitRootLogin no\n");
    EXPECT_EQ(ids(sshd(root())), Strings{});
    // Two units, each on its own file: both are checked, not only the last one found.
    write("/lib/systemd/system/ssh@.service", "[Service]\nExecStart=-/usr/sbin/sshd -i -f /srv/inetd_config\n");
    write("/srv/inetd_config", "UsePAM yes\nPermitRootLogin yes\n");
    EXPECT_EQ(ids(sshd(root())), (Strings{"sshd.command_line /lib/systemd/system/ssh@.service:2",
                                          "sshd.permit_root_login /srv/inetd_config:2"}));
    // An ExecStart= reset drops the lines before it: the old -f is named (reported) but its
    // file is not the one in force; the drop-in's is.
    write("/etc/systemd/system/ssh@.service.d/10-new.conf",
          "[Service]\nExecStart=\nExecStart=-/usr/sbin/sshd -i -f /srv/new_config\n");
    write("/srv/new_config", "UsePAM no\nPermitRootLogin no\n");
    EXPECT_EQ(ids(sshd(root())),
              (Strings{"sshd.command_line /etc/systemd/system/ssh@.service.d/10-new.conf:3",
                       "sshd.command_line /lib/systemd/system/ssh@.service:2", "sshd.use_pam /srv/new_config:1"}));
    // A -f in SSHD_OPTS applies to the ExecStart= that passes it.
    write("/etc/default/ssh", "SSHD_OPTS='-f /srv/opts_config'\n");
    write("/srv/opts_config", "UsePAM yes\nPermitRootLogin no\nAuthenticationMethods any\nPermitEmptyPasswords no\n"
                              "Match all\n  PermitRootLogin yes\n");
    EXPECT_EQ(ids_of(sshd(root()), "sshd.permit_root_login"), (Strings{"sshd.permit_root_login /srv/opts_config:6"}));
}

TEST_F(Doctor, SshdUnitsAreFoundInEveryDirectorySystemdReads) {
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\n");
    write("/usr/local/lib/systemd/system/sshd.service", "[Service]\nExecStart=/usr/sbin/sshd -D -oUsePAM=no\n");
    EXPECT_EQ(ids(sshd(root())), (Strings{"sshd.command_line /usr/local/lib/systemd/system/sshd.service:2",
                                          "sshd.use_pam /usr/local/lib/systemd/system/sshd.service:2"}));
    std::filesystem::remove(m_dir + "/usr/local/lib/systemd/system/sshd.service");
    // A generator's unit, and a drop-in for every service.
    write("/run/systemd/generator/ssh.service", "[Service]\nExecStart=/usr/sbin/sshd -D\n");
    write("/etc/systemd/system/service.d/50-all.conf", "[Service]\nEnvironment=SSHD_OPTS=-oPermitRootLogin=yes\n");
    EXPECT_EQ(ids(sshd(root())), (Strings{"sshd.command_line /etc/systemd/system/service.d/50-all.conf:2",
                                          "sshd.permit_root_login /etc/systemd/system/service.d/50-all.conf:2"}));
    // A masked unit (linked to /dev/null) starts nothing and is no unreadable file.
    std::filesystem::remove(m_dir + "/etc/systemd/system/service.d/50-all.conf");
    write("/lib/systemd/system/sshd.service", "[Service]\nExecStart=/usr/sbin/sshd -D -f /srv/other\n");
    write("/srv/other", "UsePAM no\n");
    mkdir("/etc/systemd/system");
    ASSERT_EQ(::symlink("/dev/null", (m_dir + "/etc/systemd/system/sshd.service").c_str()), 0);
    EXPECT_EQ(ids(sshd(root())), Strings{});
}

TEST_F(Doctor, SshdConfigQuotesAreReadAsSshdReadsThem) {
    // Quoted keyword, quoted Include path, quoted AuthorizedKeysFile with a blank in it.
    write("/etc/ssh/sshd_config", "Include \"/etc/ssh/early.conf\"\nUsePAM yes\n"
                                  "\"PermitRootLogin\" prohibit-password # keys only\n"
                                  "AuthorizedKeysFile \"/etc/ssh/root keys/%u\" .ssh/other\\ keys\n");
    write("/etc/ssh/early.conf", "UsePAM \"no\"\n");
    write("/etc/ssh/root keys/root", "ssh-ed25519 AAAA backdoor\n");
    write("/root/.ssh/other keys", "ssh-ed25519 AAAA second\n");
    auto f = sshd(root());
    EXPECT_EQ(ids(f),
              (Strings{"sshd.not_checked /etc/ssh/sshd_config:3", "sshd.permit_root_login /etc/ssh/sshd_config:3",
                       "sshd.root_authorized_keys /etc/ssh/root keys/root",
                       "sshd.root_authorized_keys /root/.ssh/other keys", "sshd.use_pam /etc/ssh/early.conf:1"}));
    EXPECT_EQ(find(f, "sshd.not_checked")->severity, doctor::Severity::info);
    EXPECT_EQ(find(f, "sshd.permit_root_login")->what, "PermitRootLogin prohibit-password");
    // A comment after the value is no part of it; an escaped quote inside quotes is a quote.
    write("/etc/ssh/sshd_config", "UsePAM yes # PAM on\nPermitRootLogin no #\nBanner \"/etc/a\\\"b\"\n");
    EXPECT_EQ(ids(sshd(root())), Strings{});
    // An unclosed quote: sshd refuses the file and does not start.
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\nBanner \"/etc/issue\n");
    EXPECT_EQ(ids(sshd(root())), Strings{"sshd.syntax /etc/ssh/sshd_config:3"});
    // An Include of a file that does not exist is said, not skipped silently.
    write("/etc/ssh/sshd_config",
          "Include /etc/ssh/gone.conf \"sshd_config.d/*.conf\"\nUsePAM yes\nPermitRootLogin no\n");
    f = sshd(root());
    EXPECT_EQ(ids(f), Strings{"sshd.include_missing /etc/ssh/sshd_config:1"});
    EXPECT_EQ(f[0].severity, doctor::Severity::info);
}

TEST_F(Doctor, SshdConfigKeywordsCarriageReturnsAndNulBytesAreReadAsSshdReadsThem) {
    const std::string P = "sshd.permit_root_login /etc/ssh/sshd_config:2";
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin prohibit-password\nInclude /etc/ssh/d.conf\n");
    write("/root/.ssh/authorized_keys", "ssh-ed25519 AAAA root@old\n", 0600);
    write("/tmp/k", "ssh-ed25519 AAAA planted\n");
    write("/tmp/rootkey", "ssh-ed25519 AAAA planted\n");
    // A quote anywhere in the keyword is dropped by sshd: this is AuthorizedKeysFile.
    write("/etc/ssh/d.conf", "Authorized\"KeysFile\" /tmp/k\n");
    auto f = sshd(root());
    EXPECT_EQ(ids(f), (Strings{"sshd.not_checked /etc/ssh/d.conf:1", P, "sshd.root_authorized_keys /tmp/k"}));
    EXPECT_EQ(find(f, "sshd.not_checked")->severity, doctor::Severity::info);
    // Leading carriage returns are dropped; one after the keyword separates it from the value.
    write("/etc/ssh/d.conf", std::string("\r\t AuthorizedKeysFile\r/tmp/k\n"));
    EXPECT_EQ(ids(sshd(root())), (Strings{P, "sshd.root_authorized_keys /tmp/k"}));
    // A NUL byte ends the line there and drops its newline: the next line joins it, and both
    // paths are AuthorizedKeysFile's.
    write("/etc/ssh/d.conf", "AuthorizedKeysFile /etc/ssh/ak/%u \0junk\n /tmp/rootkey\nBanner none\n"s);
    EXPECT_EQ(ids(sshd(root())), (Strings{P, "sshd.root_authorized_keys /tmp/rootkey"}));
    // A keyword sshd cannot know is said: sshd would refuse it, so the parsers disagree.
    write("/etc/ssh/d.conf", "\"Authorized Keys\" /tmp/k\n");
    f = sshd(root());
    EXPECT_EQ(ids(f), (Strings{"sshd.not_checked /etc/ssh/d.conf:1", P,
                               "sshd.root_authorized_keys /root/.ssh/authorized_keys"}));
    EXPECT_EQ(find(f, "sshd.not_checked")->severity, doctor::Severity::warning);
    // A keyword with no closing quote: sshd ignores the line.
    write("/etc/ssh/d.conf", "\"AuthorizedKeysFile /tmp/k\n");
    EXPECT_EQ(ids(sshd(root())), (Strings{P, "sshd.root_authorized_keys /root/.ssh/authorized_keys"}));
}

TEST_F(Doctor, KeysFromSystemdCredentialsAreReported) {
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\n");
    // As systemd-ssh-generator's units: root's keys from a credential the hypervisor passes.
    write("/run/systemd/generator/sshd.service",
          "[Service]\nImportCredential=ssh.authorized_keys.root\n"
          "ExecStart=/usr/sbin/sshd -D -o \"AuthorizedKeysFile ${CREDENTIALS_DIRECTORY}/ssh.authorized_keys.root "
          ".ssh/authorized_keys\"\n");
    EXPECT_EQ(ids(sshd(root())), (Strings{"sshd.command_line /run/systemd/generator/sshd.service:3",
                                          "sshd.credential_keys /run/systemd/generator/sshd.service:2",
                                          "sshd.credential_keys /run/systemd/generator/sshd.service:3"}));
    // Another credential is none of sshd's business.
    write("/run/systemd/generator/sshd.service", "[Service]\nImportCredential=tmpfiles.extra\n"
                                                 "ExecStart=/usr/sbin/sshd -D\n");
    EXPECT_EQ(ids(sshd(root())), Strings{});
}

TEST_F(Doctor, IncludesOverAHugeTreeAreBoundedAndFailClosed) {
    write("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\nPermitRootLogin no\n");
    for (int i = 0; i < 11; ++i) write("/etc/ssh/sshd_config.d/" + std::to_string(i) + ".conf", "\n");
    auto r = root();
    EXPECT_EQ(ids(sshd(r)), Strings{});
    // A directory with more entries than Root lists is not checked, and says so.
    r.set_max_list(10);
    auto f = sshd(r);
    EXPECT_EQ(ids(f), Strings{"sshd.not_checked /etc/ssh/sshd_config.d"});
    EXPECT_EQ(f[0].severity, doctor::Severity::critical);
    // A pattern matching more than 4096 paths, component by component.
    for (int d = 0; d < 65; ++d)
        for (int i = 0; i < 64; ++i) write("/etc/ssh/g/" + std::to_string(d) + "/" + std::to_string(i), "");
    write("/etc/ssh/sshd_config", "Include /etc/ssh/g/*/*\nUsePAM yes\nPermitRootLogin no\n");
    EXPECT_EQ(ids(sshd(root())), Strings{"sshd.not_checked /etc/ssh/g/*/*"});
}

TEST_F(Doctor, AnIncludeThroughAnAbsoluteDirectoryLinkIsExpandedInsideTheTree) {
    // /etc/ssh/sshd_config.d -> /srv/sshd.d: glob(3) on this machine would follow the link out
    // of the tree; doctor expands the pattern under the root.
    write("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\nPermitRootLogin no\n");
    write("/srv/sshd.d/10-old.conf", "UsePAM no\n");
    ASSERT_EQ(::symlink("/srv/sshd.d", (m_dir + "/etc/ssh/sshd_config.d").c_str()), 0);
    EXPECT_EQ(ids(sshd(root())), Strings{"sshd.use_pam /etc/ssh/sshd_config.d/10-old.conf:1"});
    // The main file itself through `..` past the top: the tree's /srv/main.
    write("/srv/main", "UsePAM yes\nPermitRootLogin yes\n");
    std::filesystem::remove(m_dir + "/etc/ssh/sshd_config");
    ASSERT_EQ(::symlink("../../../../../../../srv/main", (m_dir + "/etc/ssh/sshd_config").c_str()), 0);
    EXPECT_EQ(ids(sshd(root())), Strings{"sshd.permit_root_login /etc/ssh/sshd_config:2"});
}

TEST_F(Doctor, TrustedUserCaKeysGloballyAndInMatchBlocks) {
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\nTrustedUserCAKeys /etc/ssh/ca.pub\n"
                                  "TrustedUserCAKeys /etc/ssh/later.pub\n"
                                  "Match Address 10.0.0.0/8\n  TrustedUserCAKeys /etc/ssh/lab-ca.pub\n");
    const auto f = sshd(root());
    // The first global value is the one in force; the Match block's is reported too.
    EXPECT_EQ(ids(f), (Strings{"sshd.trusted_user_ca_keys /etc/ssh/sshd_config:3",
                               "sshd.trusted_user_ca_keys /etc/ssh/sshd_config:6"}));
    EXPECT_EQ(f[0].severity, doctor::Severity::warning);
    write("/etc/ssh/sshd_config", "UsePAM yes\nPermitRootLogin no\nTrustedUserCAKeys none\n");
    EXPECT_EQ(ids(sshd(root())), Strings{});
}
