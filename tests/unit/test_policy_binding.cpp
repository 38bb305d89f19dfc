// Unit tests of daemon/policy/binding.cpp and of the rules' spelling-proof program matching: what a
// grant binds beyond argv, and that a rule holds for every spelling of the same program.
#include "daemon/policy/binding.hpp"
#include "daemon/policy/rules.hpp"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "file_helpers.hpp"

namespace jitgate::binding {
namespace {

namespace fs = std::filesystem;

const RunasDefaults k_root{"root", "/root", "/bin/bash"};

TEST(Binding, NoiseAndDefaultsAreNotBoundEverythingElseIsSorted) {
    const std::vector<std::string> env{"TERM=xterm",
                                       "PATH=/usr/sbin:/usr/bin",
                                       "HOME=/root",
                                       "SUDO_USER=alice",
                                       "SUDO_COMMAND=/usr/bin/true",
                                       "LANG=C.UTF-8",
                                       "LC_ALL=C",
                                       "LOGNAME=root",
                                       "USER=root",
                                       "SHELL=/bin/bash",
                                       "MAIL=/var/mail/root",
                                       "LS_COLORS=rs=0"};
    EXPECT_EQ(bound_env(env, {}, k_root), (std::vector<std::string>{"PATH=/usr/sbin:/usr/bin"}));
}

// Regression: a grant approved for one environment covered another (LD_PRELOAD, PYTHONPATH,
// BASH_ENV, a HOME that is not the run-as user's under sudo -E).
TEST(Binding, LoaderInterpreterAndUnknownVariablesAreBound) {
    const std::vector<std::string> env{"LD_PRELOAD=/tmp/x.so", "PYTHONPATH=/tmp", "BASH_ENV=/tmp/rc",
                                       "HOME=/home/alice",     "SOMETHING_NEW=1", "TERM=xterm"};
    EXPECT_EQ(bound_env(env, {}, k_root),
              (std::vector<std::string>{"BASH_ENV=/tmp/rc", "HOME=/home/alice", "LD_PRELOAD=/tmp/x.so",
                                        "PYTHONPATH=/tmp", "SOMETHING_NEW=1"}));
    EXPECT_EQ(code_loading_names(bound_env(env, {}, k_root)),
              (std::vector<std::string>{"BASH_ENV", "LD_PRELOAD", "PYTHONPATH"}));
    // Unknown run-as user: HOME, USER... are bound rather than assumed default.
    EXPECT_EQ(bound_env({"HOME=/root", "USER=root"}, {}, RunasDefaults{}),
              (std::vector<std::string>{"HOME=/root", "USER=root"}));
}

TEST(Binding, NoiseSetOnSudosCommandLineIsBound) {
    const std::vector<std::string> env{"TERM=evil", "LANG=C", "LC_ALL=C", "PATH=/usr/bin"};
    EXPECT_EQ(bound_env(env, {"-u", "root", "TERM=evil"}, k_root),
              (std::vector<std::string>{"PATH=/usr/bin", "TERM=evil"}));
    EXPECT_EQ(bound_env(env, {"--preserve-env=LANG,LC_ALL"}, k_root),
              (std::vector<std::string>{"LANG=C", "LC_ALL=C", "PATH=/usr/bin"}));
    EXPECT_EQ(names_set_on_command_line({"-E", "-p", "x", "A=1", "--preserve-env=B,C", "-D/tmp", "9X=1", "=y"}),
              (std::vector<std::string>{"A", "B", "C"}));
}

TEST(Binding, RunCwdFallsBackToTheUsersCwd) {
    msg::CheckRequest r;
    r.cwd = "/home/alice";
    EXPECT_EQ(run_cwd(r), "/home/alice");
    r.run_cwd = "/tmp";
    EXPECT_EQ(run_cwd(r), "/tmp");
}

TEST(Binding, LexicallyNormalFoldsSlashesDotsAndDotDots) {
    EXPECT_EQ(lexically_normal("//usr/bin/x"), "/usr/bin/x");
    EXPECT_EQ(lexically_normal("/usr/bin/../bin/x"), "/usr/bin/x");
    EXPECT_EQ(lexically_normal("/usr/bin/./x"), "/usr/bin/x");
    EXPECT_EQ(lexically_normal("/../../usr//bin/x/"), "/usr/bin/x");
    EXPECT_EQ(lexically_normal("/"), "/");
    EXPECT_EQ(lexically_normal("x/../y"), "x/../y");
}

TEST(Binding, ProgramSpellingsFollowTheHostsMergedUsr) {
    const auto spellings = program_spellings("/usr/bin/../bin/true", "/usr/bin/true");
    ASSERT_FALSE(spellings.empty());
    EXPECT_EQ(spellings.front(), "/usr/bin/true");
    const bool merged = fs::is_symlink("/bin") && fs::canonical("/bin") == "/usr/bin";
    EXPECT_EQ(std::find(spellings.begin(), spellings.end(), "/bin/true") != spellings.end(), merged);
    EXPECT_EQ(program_spellings("//usr/bin/./x", "").front(), "/usr/bin/x");
}

// --- rules: every spelling of the same program ---------------------------------------------

class SpellingRules : public ::testing::Test {
protected:
    void SetUp() override {
        m_dir = fs::temp_directory_path() / ("jitgate-binding-" + std::to_string(getpid()));
        fs::remove_all(m_dir);
        fs::create_directories(m_dir / "bin");
        m_target = (m_dir / "bin" / "danger").string();
        test::write_all(m_target, "#!/bin/sh\n");
        fs::create_hard_link(m_target, m_dir / "hardlink");
        fs::create_symlink(m_target, m_dir / "symlink");
        fs::create_symlink(m_target, m_dir / "safe-tool");
        // The allow comes first: only what the program is may earn it, never its name.
        const std::string yaml = "rules:\n"
                                 "  - name: safe-tools\n"
                                 "    match: {kind: sudo, commands: [\"" +
                                 (m_dir / "safe-*").string() +
                                 "\"]}\n"
                                 "    action: allow\n"
                                 "  - name: no-danger\n"
                                 "    match: {kind: sudo, commands: [\"" +
                                 m_target +
                                 "*\"]}\n"
                                 "    action: deny\n";
        config::LoadResult result = config::parse_config(yaml, "test.yaml");
        ASSERT_TRUE(result.config.has_value());
        m_config = *result.config;
    }
    void TearDown() override { fs::remove_all(m_dir); }

    // The facts the broker builds for `sudo <typed>`: realpath and stat() as root would see them.
    rules::Facts facts_for(const std::string& typed) const {
        rules::Facts f;
        f.kind = "sudo";
        f.user = "alice";
        f.command = typed;
        f.argv = {typed, "--flag"};
        f.runas_user = "root";
        std::error_code ec;
        const std::string canonical = fs::canonical(typed, ec).string();
        f.program_paths = program_spellings(typed, ec ? std::string() : canonical);
        f.typed_paths = {lexically_normal(typed)};
        if (const auto id = file_id(typed)) {
            f.command_dev = id->dev;
            f.command_ino = id->ino;
        }
        return f;
    }
    std::string matched(const rules::Facts& f) const {
        const rules::FileIdOf id_of = [](const std::string& p) -> std::optional<std::pair<std::int64_t, std::int64_t>> {
            const auto id = file_id(p);
            if (!id) return std::nullopt;
            return std::pair{id->dev, id->ino};
        };
        const config::Rule* r = rules::first_match(m_config, f, id_of);
        return r == nullptr ? "default" : r->name;
    }

    fs::path m_dir;
    std::string m_target;
    config::Config m_config;
};

// Regression: a deny rule for /x/bin/danger did not hold for //x/bin/danger,
// /x/bin/../bin/danger, /x/bin/./danger, a symlink or a hard link to it.
TEST_F(SpellingRules, DenyHoldsForEverySpelling) {
    const std::string dir = m_dir.string();
    for (const std::string& typed : {m_target, "/" + m_target, dir + "/bin/../bin/danger", dir + "/bin/./danger",
                                     dir + "/symlink", dir + "/hardlink"})
        EXPECT_EQ(matched(facts_for(typed)), "no-danger") << typed;
}

// A symlink the user names after an allowed program still runs what it points to.
TEST_F(SpellingRules, AllowJudgesTheProgramNotTheNameTyped) {
    EXPECT_EQ(matched(facts_for((m_dir / "safe-tool").string())), "no-danger");
}

TEST_F(SpellingRules, AnotherProgramIsNotCaught) {
    const std::string other = (m_dir / "bin" / "other").string();
    test::write_all(other, "#!/bin/sh\n");
    EXPECT_EQ(matched(facts_for(other)), "default");
}

TEST(SpellingRulesMergedUsr, RuleForBinHoldsForUsrBinAndBack) {
    if (!fs::is_symlink("/bin") || fs::canonical("/bin") != "/usr/bin") GTEST_SKIP() << "this host has no merged /usr";
    config::LoadResult result = config::parse_config("rules:\n"
                                                     "  - name: no-true-bin\n"
                                                     "    match: {kind: sudo, commands: [\"/bin/tru*\"]}\n"
                                                     "    action: deny\n",
                                                     "test.yaml");
    ASSERT_TRUE(result.config.has_value());
    rules::Facts f;
    f.kind = "sudo";
    f.user = "alice";
    f.command = "/usr/bin/true";
    f.argv = {"/usr/bin/true"};
    f.runas_user = "root";
    f.program_paths = program_spellings(f.command, "/usr/bin/true");
    const config::Rule* r = rules::first_match(*result.config, f);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->name, "no-true-bin");
}

} // namespace
} // namespace jitgate::binding
