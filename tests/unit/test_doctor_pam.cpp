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
