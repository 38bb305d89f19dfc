// tests/unit/test_doctor_pam.cpp — doctor's check of the sshd, login and su PAM stacks on
// crafted /etc/pam.d trees: the stacks of docs/pam.md pass, and each way to skip or weaken
// pam_jitgate is found.
#include "tests/unit/doctor_fixture.hpp"

using namespace jitgate;
using Doctor = jitgate::test::DoctorTree;
using Strings = std::vector<std::string>;

namespace {

// Debian 12's common-auth as pam-auth-update writes it: its jump stays inside.
const char* k_common_auth = "auth [success=1 default=ignore] pam_unix.so nullok\n"
                            "auth requisite pam_deny.so\n"
                            "auth required pam_permit.so\n";

// docs/pam.md's Debian sshd stack.
const char* k_sshd = "# PAM configuration for the Secure Shell service\n"
                     "auth       requisite    pam_jitgate.so break_glass_group=jitgate-breakglass\n"
                     "auth       required     pam_permit.so\n"
                     "#@include common-auth\n"
                     "account    required     pam_nologin.so\n"
                     "account    [success=1 default=ignore] pam_succeed_if.so quiet user ingroup jitgate-breakglass\n"
                     "account    required     pam_jitgate.so break_glass_group=jitgate-breakglass\n"
                     "@include common-account\n"
                     "session    required     pam_loginuid.so\n"
                     "session    required     pam_jitgate.so\n";

const char* k_login = "@include common-auth\n"
                      "auth       [success=1 default=ignore] pam_succeed_if.so quiet uid eq 0\n"
                      "auth       requisite  pam_jitgate.so break_glass_group=jitgate-breakglass\n"
                      "@include common-account\n"
                      "session    required   pam_jitgate.so\n";

const char* k_su = "auth       sufficient pam_rootok.so\n"
                   "@include common-auth\n"
                   "auth       requisite  pam_jitgate.so break_glass_group=jitgate-breakglass\n"
                   "@include common-account\n"
                   "session    required   pam_jitgate.so\n";

} // namespace

class DoctorPam : public Doctor {
protected:
    void SetUp() override {
        Doctor::SetUp();
        write("/etc/pam.d/common-auth", k_common_auth);
        write("/etc/pam.d/common-account", "account [success=1 new_authtok_reqd=done default=ignore] pam_unix.so\n"
                                           "account requisite pam_deny.so\naccount required pam_permit.so\n");
        write("/etc/pam.d/sshd", k_sshd);
        write("/etc/pam.d/login", k_login);
        write("/etc/pam.d/su", k_su);
        gate.break_glass_group = "jitgate-breakglass";
    }
    doctor::Findings run() {
        doctor::Findings f;
        doctor::check_pam(root(), gate, f);
        return f;
    }
    doctor::GateConfig gate;
};

TEST_F(DoctorPam, TheDocumentedStacksHaveOnlyTheDocumentedExceptions) {
    const auto f = run();
    EXPECT_EQ(ids(f), (Strings{"pam.break_glass_skip /etc/pam.d/sshd:6", "pam.root_console_skip /etc/pam.d/login:2"}));
    for (const auto& x : f) EXPECT_EQ(x.severity, doctor::Severity::info);
    EXPECT_TRUE(gate.sshd_account_skips_break_glass); // for the sshd check
}

TEST_F(DoctorPam, MissingInAuthOrAccountIsCriticalMissingInSessionAWarning) {
    write("/etc/pam.d/sshd", "@include common-auth\naccount required pam_nologin.so\n@include common-account\n");
    const auto f = run();
    EXPECT_EQ(ids_of(f, "pam."),
              (Strings{"pam.missing /etc/pam.d/sshd (account)", "pam.missing /etc/pam.d/sshd (auth)",
                       "pam.root_console_skip /etc/pam.d/login:2", "pam.session_missing /etc/pam.d/sshd (session)"}));
    EXPECT_EQ(find(f, "pam.missing")->severity, doctor::Severity::critical);
    EXPECT_FALSE(gate.sshd_account_skips_break_glass);
    EXPECT_EQ(find(f, "pam.session_missing")->severity, doctor::Severity::warning);
}

TEST_F(DoctorPam, ASufficientModuleBeforeJitgateEndsTheStackEarly) {
    write("/etc/pam.d/su", "auth sufficient pam_rootok.so\n"
                           "auth sufficient pam_unix.so\n"
                           "auth requisite pam_jitgate.so\nsession required pam_jitgate.so\n");
    const auto f = run();
    EXPECT_EQ(ids_of(f, "pam.bypass"), Strings{"pam.bypass /etc/pam.d/su:2"});
    EXPECT_EQ(find(f, "pam.bypass")->severity, doctor::Severity::critical);
}

TEST_F(DoctorPam, ASufficientLineInAnIncludedFileCountsLikeOneInTheServiceFile) {
    // RHEL's password-auth ends the account stack with `sufficient pam_localuser.so`; through
    // `include` that ends the whole stack, so jitgate after it never runs.
    write("/etc/pam.d/password-auth", "account required pam_unix.so\naccount sufficient pam_localuser.so\n");
    write("/etc/pam.d/sshd", "auth requisite pam_jitgate.so\nauth required pam_permit.so\n"
                             "account include password-auth\naccount required pam_jitgate.so\n"
                             "session required pam_jitgate.so\n");
    const auto f = run();
    EXPECT_EQ(ids_of(f, "pam.bypass"), Strings{"pam.bypass /etc/pam.d/password-auth:2"});
}

TEST_F(DoctorPam, ASubstackKeepsItsSufficientAndDoneToItself) {
    write("/etc/pam.d/system-auth", "auth sufficient pam_unix.so\nauth [success=done default=die] pam_sss.so\n");
    write("/etc/pam.d/login", "auth substack system-auth\nauth requisite pam_jitgate.so\n"
                              "session required pam_jitgate.so\n");
    EXPECT_EQ(ids_of(run(), "pam.bypass"), Strings{});
}

TEST_F(DoctorPam, DoneAndJumpsOverJitgateAreFoundJumpsThatLandBeforeItAreNot) {
    write("/etc/pam.d/login", "auth [success=done default=ignore] pam_krb5.so\n"
                              "auth [success=2 default=ignore] pam_unix.so\n"
                              "auth requisite pam_deny.so\n"
                              "auth requisite pam_jitgate.so\n"
                              "session required pam_jitgate.so\n");
    EXPECT_EQ(ids_of(run(), "pam.bypass"), (Strings{"pam.bypass /etc/pam.d/login:1", "pam.bypass /etc/pam.d/login:2"}));
    write("/etc/pam.d/login", "auth [success=1 default=ignore] pam_unix.so\n"
                              "auth requisite pam_deny.so\n"
                              "auth [default=ignore success=ok] pam_env.so\n"
                              "auth requisite pam_jitgate.so\n"
                              "session required pam_jitgate.so\n");
    EXPECT_EQ(ids_of(run(), "pam.bypass"), Strings{});
}

TEST_F(DoctorPam, ASkipOverJitgateForAnyOtherGroupIsABypass) {
    write("/etc/pam.d/sshd", "auth requisite pam_jitgate.so\nauth required pam_permit.so\n"
                             "account [success=1 default=ignore] pam_succeed_if.so quiet user ingroup wheel\n"
                             "account required pam_jitgate.so\nsession required pam_jitgate.so\n");
    EXPECT_EQ(ids_of(run(), "pam.b"), Strings{"pam.bypass /etc/pam.d/sshd:3"});
}

TEST_F(DoctorPam, WeakControlsOnTheJitgateLine) {
    write("/etc/pam.d/su", "auth sufficient pam_jitgate.so\nsession required pam_jitgate.so\n");
    EXPECT_EQ(ids_of(run(), "pam.weak"), Strings{"pam.weak_control /etc/pam.d/su:1"});
    write("/etc/pam.d/su",
          "auth [authinfo_unavail=ignore default=bad] pam_jitgate.so\nsession required pam_jitgate.so\n");
    EXPECT_EQ(ids_of(run(), "pam.weak"), Strings{"pam.weak_control /etc/pam.d/su:1"});
    write("/etc/pam.d/su", "-auth requisite pam_jitgate.so\nsession required pam_jitgate.so\n");
    EXPECT_EQ(ids_of(run(), "pam.dash"), Strings{"pam.dash /etc/pam.d/su:1"});
    write("/etc/pam.d/su", "auth [success=ok ignore=ignore default=die] /lib/security/pam_jitgate.so\n"
                           "session required pam_jitgate.so\n");
    const auto f = run();
    EXPECT_EQ(ids_of(f, "pam.weak"), Strings{});
    EXPECT_EQ(ids_of(f, "pam.dash"), Strings{});
}

TEST_F(DoctorPam, AServiceFileMissingWhileTheProgramIsInstalled) {
    std::filesystem::remove(m_dir + "/etc/pam.d/su");
    EXPECT_EQ(ids_of(run(), "pam.service"), Strings{});
    write("/usr/bin/su", "ELF", 04755);
    EXPECT_EQ(ids_of(run(), "pam.service"), Strings{"pam.service_missing /etc/pam.d/su"});
}

TEST_F(DoctorPam, WritableOrUnreadablePamFiles) {
    chmod("/etc/pam.d/sshd", 0666);
    mkdir("/etc/pam.d/broken");
    write("/etc/pam.d/login", "@include broken\nauth requisite pam_jitgate.so\nsession required pam_jitgate.so\n");
    const auto f = run();
    EXPECT_EQ(ids_of(f, "pam.writable"), Strings{"pam.writable /etc/pam.d/sshd"});
    EXPECT_EQ(ids_of(f, "pam.unreadable"), Strings{"pam.unreadable /etc/pam.d/broken"});
}

TEST_F(DoctorPam, JitgateInASharedFileOrInSudosStack) {
    write("/etc/pam.d/common-session", "session required pam_unix.so\n# session required pam_jitgate.so\n"
                                       "session optional pam_jitgate.so\n");
    write("/etc/pam.d/sudo", "@include common-auth\nauth requisite pam_jitgate.so\n");
    EXPECT_EQ(ids_of(run(), "pam.shared"),
              (Strings{"pam.shared_file /etc/pam.d/common-session:3", "pam.shared_file /etc/pam.d/sudo:2"}));
}

TEST_F(DoctorPam, AnIncludedFileThatDoesNotExist) {
    write("/etc/pam.d/su", "@include common-nothere\nauth requisite pam_jitgate.so\nsession required pam_jitgate.so\n");
    EXPECT_EQ(ids_of(run(), "pam.include"), Strings{"pam.include_missing /etc/pam.d/common-nothere"});
}

TEST_F(DoctorPam, ACommentEndsAtTheNewlineEvenWhenItEndsInABackslash) {
    // libpam (_pam_assemble_line) skips a comment line whole and ends a logical line at '#': the
    // line after `# ... \` is a line of its own, here a bypass.
    write("/etc/pam.d/su", "# old: pam_rootok for everyone \\\n"
                           "auth sufficient pam_permit.so\n"
                           "auth requisite pam_unix.so # trailing note \\\n"
                           "auth sufficient pam_wheel.so trust\n"
                           "auth requisite pam_jitgate.so\nsession required pam_jitgate.so\n");
    EXPECT_EQ(ids_of(run(), "pam.bypass"), (Strings{"pam.bypass /etc/pam.d/su:2", "pam.bypass /etc/pam.d/su:4"}));
    // A real continuation (blanks after the '\' allowed) is still one line, reported at its start;
    // a comment line inside it is skipped.
    write("/etc/pam.d/su", "auth sufficient \\  \n"
                           "# between\n"
                           "    pam_permit.so\n"
                           "auth requisite pam_jitgate.so\nsession required pam_jitgate.so\n");
    EXPECT_EQ(ids_of(run(), "pam.bypass"), Strings{"pam.bypass /etc/pam.d/su:1"});
    // libpam 1.6 and later end a continuation at a blank or comment-only line, where older ones
    // skip it: the line after it is then a line of its own. Either reading's door is reported.
    write("/etc/pam.d/su", "auth required pam_env.so \\\n"
                           "\n"
                           "auth sufficient pam_permit.so\n"
                           "auth requisite pam_jitgate.so\nsession required pam_jitgate.so\n");
    EXPECT_EQ(ids_of(run(), "pam.bypass"), Strings{"pam.bypass /etc/pam.d/su:3"});
}

TEST_F(DoctorPam, PamRootokIsExemptOnlyForSu) {
    // sshd and login run as root: pam_rootok succeeds for every login there.
    write("/etc/pam.d/sshd", "auth sufficient pam_rootok.so\nauth requisite pam_jitgate.so\n"
                             "account required pam_jitgate.so\nsession required pam_jitgate.so\n");
    write("/etc/pam.d/login", "auth sufficient pam_rootok.so\nauth requisite pam_jitgate.so\n"
                              "session required pam_jitgate.so\n");
    write("/etc/pam.d/su-l", "auth sufficient pam_rootok.so\nauth requisite pam_jitgate.so\n"
                             "session required pam_jitgate.so\n");
    const auto f = run();
    EXPECT_EQ(ids_of(f, "pam.bypass"), (Strings{"pam.bypass /etc/pam.d/login:1", "pam.bypass /etc/pam.d/sshd:1"}));
    ASSERT_NE(find(f, "pam.bypass"), nullptr);
    EXPECT_EQ(find(f, "pam.bypass")->severity, doctor::Severity::critical);
}

TEST_F(DoctorPam, SuLIsCheckedWhenItExists) {
    write("/etc/pam.d/su-l", "auth sufficient pam_unix.so\n@include su\n");
    EXPECT_EQ(ids_of(run(), "pam.bypass"), Strings{"pam.bypass /etc/pam.d/su-l:1"});
}

TEST_F(DoctorPam, JitgateFromOutsideTheModuleDirectoriesAndModulesOthersCanReplace) {
    write("/etc/pam.d/sshd", "auth required pam_env.so\n"
                             "auth requisite /opt/tools/pam_jitgate.so\n"
                             "auth required pam_faildelay.so\n"
                             "account required /lib/security/../../tmp/pam_jitgate.so\n"
                             "session required pam_jitgate.so\n");
    write("/lib/x86_64-linux-gnu/security/pam_env.so", "ELF", 0664);       // before pam_jitgate
    write("/lib/x86_64-linux-gnu/security/pam_faildelay.so", "ELF", 0666); // after it: it decides nothing
    write("/opt/tools/pam_jitgate.so", "ELF", 0644);
    chmod("/opt/tools", 0777); // anyone can put another file in its place
    mkdir("/lib/security");
    write("/tmp/pam_jitgate.so", "ELF", 0644);
    const auto f = run();
    EXPECT_EQ(ids_of(f, "pam.module"),
              (Strings{"pam.module_path /etc/pam.d/sshd:2", "pam.module_path /etc/pam.d/sshd:4",
                       "pam.module_writable /lib/x86_64-linux-gnu/security/pam_env.so",
                       "pam.module_writable /opt/tools/pam_jitgate.so"}));
    ASSERT_NE(find(f, "pam.module_writable"), nullptr);
    EXPECT_EQ(find(f, "pam.module_writable")->severity, doctor::Severity::critical);
    // By name, in a module directory, owned and writable only by root: nothing.
    chmod("/lib/x86_64-linux-gnu/security/pam_env.so", 0644);
    write("/etc/pam.d/sshd", "auth required pam_env.so\nauth requisite /lib/x86_64-linux-gnu/security/pam_jitgate.so\n"
                             "account required pam_jitgate.so\nsession required pam_jitgate.so\n");
    write("/usr/lib/x86_64-linux-gnu/security/pam_jitgate.so", "ELF", 0644);
    EXPECT_EQ(ids_of(run(), "pam.module"), Strings{});
}

TEST_F(DoctorPam, AResetAfterARequiredJitgateErasesItsRefusal) {
    write("/etc/pam.d/sshd", "auth requisite pam_jitgate.so\nauth required pam_permit.so\n"
                             "account required pam_jitgate.so\n"
                             "account [success=ok default=reset] pam_localuser.so\n"
                             "account [new_authtok_reqd=reset default=ignore] pam_unix.so\n"
                             "session required pam_jitgate.so\n");
    const auto f = run();
    EXPECT_EQ(ids_of(f, "pam.reset"),
              (Strings{"pam.reset_after /etc/pam.d/sshd:4", "pam.reset_after /etc/pam.d/sshd:5"}));
    ASSERT_NE(find(f, "pam.reset_after"), nullptr);
    EXPECT_EQ(find(f, "pam.reset_after")->severity, doctor::Severity::critical);
    // requisite, or a bracket that dies on every failure, ends the stack before the reset.
    write("/etc/pam.d/sshd", "auth requisite pam_jitgate.so\nauth [default=reset] pam_permit.so\n"
                             "account [success=ok default=die] pam_jitgate.so\n"
                             "account [success=ok default=reset] pam_localuser.so\n"
                             "session required pam_jitgate.so\n");
    EXPECT_EQ(ids_of(run(), "pam.reset"), Strings{});
    write("/etc/pam.d/sshd", "auth requisite pam_jitgate.so\n"
                             "account [success=ok auth_err=bad default=die] pam_jitgate.so\n"
                             "account [default=reset] pam_localuser.so\nsession required pam_jitgate.so\n");
    EXPECT_EQ(ids_of(run(), "pam.reset"), Strings{"pam.reset_after /etc/pam.d/sshd:3"});
}

TEST_F(DoctorPam, IncludeLoopsAndRepeatedIncludesEndInBoundedTime) {
    // A file that includes itself: libpam gives up on the stack (logins fail); doctor says so.
    write("/etc/pam.d/common-loop", "@include common-loop\n");
    write("/etc/pam.d/su", "@include common-loop\nauth requisite pam_jitgate.so\nsession required pam_jitgate.so\n");
    doctor::Findings f;
    within(std::chrono::seconds(20), [&] { f = run(); });
    EXPECT_EQ(ids_of(f, "pam.include_loop"), Strings{"pam.include_loop /etc/pam.d/common-loop"});
    EXPECT_EQ(ids_of(f, "pam.not_checked"), Strings{});
    // Each file includes the next four times, 12 deep: 4^12 reads without a budget.
    for (int i = 0; i < 12; ++i) {
        const std::string next = "@include c" + std::to_string(i + 1) + "\n";
        write("/etc/pam.d/c" + std::to_string(i), next + next + next + next);
    }
    write("/etc/pam.d/c12", "auth required pam_permit.so\n");
    write("/etc/pam.d/su", "@include c0\nauth requisite pam_jitgate.so\nsession required pam_jitgate.so\n");
    within(std::chrono::seconds(20), [&] { f = run(); });
    EXPECT_EQ(ids_of(f, "pam.not_checked"), Strings{"pam.not_checked /etc/pam.d/su"});
    ASSERT_NE(find(f, "pam.not_checked"), nullptr);
    EXPECT_EQ(find(f, "pam.not_checked")->severity, doctor::Severity::critical);
}

TEST_F(DoctorPam, TheVendorDirectoryIsReadWhereEtcPamDHasNoFile) {
    // Linux-PAM's vendor directory: a service (or included name) not in /etc/pam.d is read
    // from /usr/lib/pam.d; one in /etc/pam.d wins.
    write("/usr/sbin/sshd", "ELF", 0755);
    write("/usr/bin/su", "ELF", 0755);
    std::filesystem::remove(m_dir + "/etc/pam.d/su");
    std::filesystem::remove(m_dir + "/etc/pam.d/common-auth");
    // su as docs/pam.md has it, but in the vendor file: lost at the package's next update.
    write("/usr/lib/pam.d/su", k_su);
    // The vendor common-auth is the one login and su include (/etc/pam.d has none): its
    // `sufficient` ends their auth stacks before pam_jitgate.
    write("/usr/lib/pam.d/common-auth", "auth sufficient pam_permit.so\n");
    // A vendor sshd beside /etc/pam.d/sshd changes nothing: /etc/pam.d wins.
    write("/usr/lib/pam.d/sshd", "auth sufficient pam_permit.so\n");
    auto f = run();
    EXPECT_EQ(ids_of(f, "pam.bypass"), Strings{"pam.bypass /usr/lib/pam.d/common-auth:1"});
    EXPECT_EQ(ids_of(f, "pam.vendor_file"), Strings{"pam.vendor_file /usr/lib/pam.d/su"});
    EXPECT_EQ(ids_of(f, "pam.missing"), Strings{});
    EXPECT_EQ(ids_of(f, "pam.service_missing"), Strings{});
    // A vendor su without jitgate is su's stack, and is missing it.
    write("/usr/lib/pam.d/su", "auth sufficient pam_rootok.so\n@include common-auth\n");
    f = run();
    EXPECT_EQ(ids_of(f, "pam.missing"), Strings{"pam.missing /usr/lib/pam.d/su (auth)"});
    EXPECT_EQ(ids_of(f, "pam.vendor_file"), Strings{});
    // Neither directory has the file: the service is reported missing under /etc/pam.d.
    std::filesystem::remove(m_dir + "/usr/lib/pam.d/su");
    f = run();
    EXPECT_EQ(ids_of(f, "pam.service_missing"), Strings{"pam.service_missing /etc/pam.d/su"});
    // The build's vendor directory (openSUSE's /usr/etc/pam.d) comes after /usr/lib/pam.d.
    write("/usr/etc/pam.d/su", "auth sufficient pam_rootok.so\n@include common-auth\n");
    f = run();
    EXPECT_EQ(ids_of(f, "pam.missing"), Strings{"pam.missing /usr/etc/pam.d/su (auth)"});
    // libpam opens the file with fopen(3): a dangling link in /etc/pam.d falls through to the
    // next directory, as it does for libpam.
    write("/usr/lib/pam.d/su", k_su);
    ASSERT_EQ(::symlink("/nowhere/su", (m_dir + "/etc/pam.d/su").c_str()), 0);
    f = run();
    EXPECT_EQ(ids_of(f, "pam.vendor_file"), Strings{"pam.vendor_file /usr/lib/pam.d/su"});
    EXPECT_EQ(ids_of(f, "pam.missing"), Strings{});
}
