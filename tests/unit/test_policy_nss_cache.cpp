// Unit tests of the daemon's user and group lookup cache (daemon/policy/nss_cache.hpp): with
// scratch copies of passwd, group and nsswitch.conf, a fake NSS that counts what it is asked,
// and fake clocks. What is asked of the source shows what the cache kept.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "daemon/policy/nss_cache.hpp"
#include "jitgate/passwd.hpp"

namespace {

using jitgate::UserRecord;
using jitgate::nss::Found;
namespace nss_cache = jitgate::nss_cache;
constexpr std::int64_t k_s = 1'000'000'000;

// A user database held in memory: what the tests change, and how often it was asked.
struct FakeSource final : jitgate::nss::Lookups {
    std::map<std::string, UserRecord> users;
    std::map<std::string, std::vector<std::string>> groups;
    bool fail = false;
    int asked = 0;
    Found user_by_name(const std::string& name, UserRecord& out) override {
        ++asked;
        if (fail) return Found::error;
        const auto it = users.find(name);
        if (it == users.end()) return Found::no;
        out = it->second;
        return Found::yes;
    }
    Found user_by_uid(unsigned uid, UserRecord& out) override {
        ++asked;
        if (fail) return Found::error;
        for (const auto& [name, r] : users)
            if (r.uid == uid) {
                out = r;
                return Found::yes;
            }
        return Found::no;
    }
    Found groups_of(const std::string& user, std::vector<std::string>& out) override {
        ++asked;
        if (fail) return Found::error;
        const auto it = groups.find(user);
        if (it == groups.end()) return Found::no;
        out = it->second;
        return Found::yes;
    }
};

void write_file(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::trunc) << text; // in place, as a bind-mounted /etc file is
}

class NssCache : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/jitgate-nss-cache-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
        write_file(passwd(), "alice:x:1000:1000::/home/alice:/bin/bash\n");
        write_file(group(), "alice:x:1000:\nwheel:x:10:alice\n");
        write_file(nsswitch(), "passwd: files\ngroup: files\n");
        source.users["alice"] = UserRecord{"alice", 1000, 1000, "/home/alice", "/bin/bash"};
        source.groups["alice"] = {"alice", "wheel"};
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }

    std::string passwd() const { return m_dir + "/passwd"; }
    std::string group() const { return m_dir + "/group"; }
    std::string nsswitch() const { return m_dir + "/nsswitch.conf"; }

    // A cache on the scratch files. The real-time clock is far after every file's ctime (no
    // file is "racy") unless a test sets `realtime`.
    nss_cache::Cache make(std::size_t max_entries = nss_cache::k_max_entries) {
        nss_cache::Options o;
        o.passwd_path = passwd();
        o.group_path = group();
        o.nsswitch_path = nsswitch();
        o.max_entries = max_entries;
        o.source = &source;
        o.monotonic_ns = [this] { return monotonic; };
        o.realtime_ns = [this] { return realtime; };
        return nss_cache::Cache(std::move(o));
    }

    int uid_lookups(nss_cache::Cache& c, const std::string& name, int times) {
        const int before = source.asked;
        for (int i = 0; i < times; ++i) {
            UserRecord r;
            c.user_by_name(name, r);
        }
        return source.asked - before;
    }
    int group_lookups(nss_cache::Cache& c, const std::string& name, int times) {
        const int before = source.asked;
        for (int i = 0; i < times; ++i) {
            std::vector<std::string> g;
            c.groups_of(name, g);
        }
        return source.asked - before;
    }

    std::string m_dir;
    FakeSource source;
    std::int64_t monotonic = 1000 * k_s;
    std::int64_t realtime = 4'000'000'000 * k_s;
};

TEST_F(NssCache, RepeatedLookupsAskTheSourceOnce) {
    auto c = make();
    EXPECT_EQ(uid_lookups(c, "alice", 5), 1);
    EXPECT_EQ(group_lookups(c, "alice", 5), 1);
    UserRecord r;
    EXPECT_EQ(c.user_by_uid(1000, r), Found::yes);
    EXPECT_EQ(c.user_by_uid(1000, r), Found::yes);
    EXPECT_EQ(r.name, "alice");
    EXPECT_EQ(r.home, "/home/alice");
    std::vector<std::string> g;
    EXPECT_EQ(c.groups_of("alice", g), Found::yes);
    EXPECT_EQ(g, (std::vector<std::string>{"alice", "wheel"}));
    EXPECT_EQ(source.asked, 3);
    EXPECT_EQ(c.stats().hits, 10u);
}

TEST_F(NssCache, AChangeOfGroupFileIsSeenOnTheNextLookup) {
    auto c = make();
    std::vector<std::string> g;
    ASSERT_EQ(c.groups_of("alice", g), Found::yes);
    ASSERT_EQ(g.size(), 2u);
    // alice leaves wheel: the file is rewritten in place (same inode) and NSS says so.
    write_file(group(), "alice:x:1000:\nwheel:x:10:\n");
    source.groups["alice"] = {"alice"};
    g.clear();
    ASSERT_EQ(c.groups_of("alice", g), Found::yes);
    EXPECT_EQ(g, (std::vector<std::string>{"alice"}));
}

TEST_F(NssCache, AChangeOfPasswdFileDropsUsersAndGroups) {
    auto c = make();
    EXPECT_EQ(uid_lookups(c, "alice", 2), 1);
    EXPECT_EQ(group_lookups(c, "alice", 2), 1);
    write_file(passwd(), "alice:x:1001:1000::/home/alice:/bin/bash\n");
    EXPECT_EQ(uid_lookups(c, "alice", 2), 1);
    EXPECT_EQ(group_lookups(c, "alice", 2), 1); // the primary group comes from passwd
}

TEST_F(NssCache, AChangeOfNsswitchDropsEverything) {
    auto c = make();
    EXPECT_EQ(uid_lookups(c, "alice", 2), 1);
    EXPECT_EQ(group_lookups(c, "alice", 2), 1);
    write_file(nsswitch(), "passwd: files\ngroup:  files\n");
    EXPECT_EQ(uid_lookups(c, "alice", 2), 1);
    EXPECT_EQ(group_lookups(c, "alice", 2), 1);
}

TEST_F(NssCache, ASameSizeRewriteOrAReplacedFileIsSeen) {
    auto c = make();
    EXPECT_EQ(group_lookups(c, "alice", 2), 1);
    // The same size: only the timestamps tell. Set them one second on, as a later write would.
    write_file(group(), "alice:x:1000:\nwheel:x:10:alice\n");
    struct stat st {};
    ASSERT_EQ(::stat(group().c_str(), &st), 0);
    timespec times[2] = {st.st_atim, st.st_mtim};
    times[1].tv_sec += 1;
    ASSERT_EQ(::utimensat(AT_FDCWD, group().c_str(), times, 0), 0);
    EXPECT_EQ(group_lookups(c, "alice", 2), 1);
    // Replaced by rename (vigr, useradd): a new inode.
    write_file(group() + ".new", "alice:x:1000:\nwheel:x:10:alice\n");
    ASSERT_EQ(std::rename((group() + ".new").c_str(), group().c_str()), 0);
    EXPECT_EQ(group_lookups(c, "alice", 2), 1);
}

TEST_F(NssCache, NothingIsKeptFromARecentlyChangedFile) {
    // The newest of the fixture's files: they were written one after another, possibly in
    // different timestamp ticks, and a lookup depends on passwd and nsswitch.conf.
    std::int64_t ctime = 0;
    for (const std::string& path : {passwd(), group(), nsswitch()}) {
        struct stat st {};
        ASSERT_EQ(::stat(path.c_str(), &st), 0);
        ctime = std::max(ctime, static_cast<std::int64_t>(st.st_ctim.tv_sec) * k_s + st.st_ctim.tv_nsec);
    }
    realtime = ctime + k_s / 2; // within the racy window: a same-tick rewrite could hide
    auto c = make();
    EXPECT_EQ(uid_lookups(c, "alice", 3), 3);
    realtime = ctime + k_s + 1;
    EXPECT_EQ(uid_lookups(c, "alice", 3), 1);
    realtime = ctime - k_s; // the clock went back: trust nothing
    EXPECT_EQ(uid_lookups(c, "alice", 3), 3);
}

TEST_F(NssCache, NonFilesSourcesExpireAfterTheTtl) {
    write_file(nsswitch(), "passwd:         files systemd\ngroup:          files [SUCCESS=merge] sss\n");
    auto c = make();
    EXPECT_EQ(uid_lookups(c, "alice", 3), 1);
    EXPECT_EQ(group_lookups(c, "alice", 3), 1);
    monotonic += nss_cache::k_source_ttl.count() * k_s - 1;
    EXPECT_EQ(uid_lookups(c, "alice", 1), 0);
    monotonic += 1;
    EXPECT_EQ(uid_lookups(c, "alice", 2), 1);
    EXPECT_EQ(group_lookups(c, "alice", 2), 1);
    // A removal from a group at the source alone (no file changes) shows within the TTL.
    source.groups["alice"] = {"alice"};
    monotonic += nss_cache::k_source_ttl.count() * k_s;
    std::vector<std::string> g;
    ASSERT_EQ(c.groups_of("alice", g), Found::yes);
    EXPECT_EQ(g, (std::vector<std::string>{"alice"}));
}

TEST_F(NssCache, FilesOnlyEntriesLastWhileTheFilesDoUpToTheBackstop) {
    auto c = make();
    EXPECT_EQ(uid_lookups(c, "alice", 1), 1);
    monotonic += nss_cache::k_files_ttl.count() * k_s - 1;
    EXPECT_EQ(uid_lookups(c, "alice", 1), 0) << "the files did not change: cached";
    monotonic += 1;
    EXPECT_EQ(uid_lookups(c, "alice", 1), 1) << "k_files_ttl later it is asked again, files or not";
}

TEST_F(NssCache, OverlongNamesAreNeverStored) {
    auto c = make();
    const std::string name(nss_cache::k_max_key_bytes + 1, 'a');
    EXPECT_EQ(uid_lookups(c, name, 3), 3);
}

TEST_F(NssCache, UnknownUsersAreKeptNoLongerThanTheTtl) {
    auto c = make();
    EXPECT_EQ(uid_lookups(c, "mallory", 3), 1);
    UserRecord r;
    EXPECT_EQ(c.user_by_name("mallory", r), Found::no);
    // mallory is added to the source only (an LDAP user, say): seen once the TTL is over.
    source.users["mallory"] = UserRecord{"mallory", 1002, 1002, "/home/mallory", ""};
    monotonic += nss_cache::k_source_ttl.count() * k_s;
    EXPECT_EQ(c.user_by_name("mallory", r), Found::yes);
    EXPECT_EQ(r.uid, 1002u);
}

TEST_F(NssCache, ErrorsAreNeverKept) {
    auto c = make();
    source.fail = true;
    UserRecord r;
    EXPECT_EQ(c.user_by_name("alice", r), Found::error);
    source.fail = false;
    EXPECT_EQ(c.user_by_name("alice", r), Found::yes);
    std::vector<std::string> g;
    source.fail = true;
    EXPECT_EQ(c.groups_of("alice", g), Found::error);
    EXPECT_EQ(c.groups_of("alice", g), Found::error);
}

TEST_F(NssCache, AFileThatCannotBeStatedDisablesTheCache) {
    auto c = make();
    EXPECT_EQ(group_lookups(c, "alice", 2), 1);
    ASSERT_EQ(::unlink(group().c_str()), 0);
    EXPECT_EQ(group_lookups(c, "alice", 2), 2);
    ASSERT_EQ(::unlink(nsswitch().c_str()), 0);
    EXPECT_EQ(uid_lookups(c, "alice", 2), 2);
}

TEST_F(NssCache, SizeIsBounded) {
    auto c = make(4);
    for (int i = 0; i < 50; ++i) {
        UserRecord r;
        c.user_by_name("user" + std::to_string(i), r);
        EXPECT_LE(c.stats().entries, 4u);
    }
    EXPECT_EQ(uid_lookups(c, "alice", 2), 1); // still caches after it was emptied
}

// Within one decision (a batch) each file is checked once: the decision sees one version of
// the databases; the next decision sees the change.
TEST_F(NssCache, ABatchChecksEachFileOnce) {
    auto c = make();
    EXPECT_EQ(group_lookups(c, "alice", 1), 1);
    c.begin_batch();
    c.begin_batch(); // nested
    EXPECT_EQ(group_lookups(c, "alice", 1), 0);
    write_file(group(), "alice:x:1000:\n");
    EXPECT_EQ(group_lookups(c, "alice", 1), 0); // stated once in this batch
    c.end_batch();
    EXPECT_EQ(group_lookups(c, "alice", 1), 0); // the outer batch is still open
    c.end_batch();
    EXPECT_EQ(group_lookups(c, "alice", 2), 1); // the next decision sees the change
    // A file that cannot be used in a batch stays unused for the whole batch.
    c.begin_batch();
    ASSERT_EQ(::unlink(group().c_str()), 0);
    EXPECT_EQ(group_lookups(c, "alice", 2), 2);
    write_file(group(), "alice:x:1000:\n");
    EXPECT_EQ(group_lookups(c, "alice", 2), 2);
    c.end_batch();
    EXPECT_EQ(group_lookups(c, "alice", 2), 1);
    // jitgate::nss::Batch brackets the installed cache's lookups.
    jitgate::nss::install_lookups(&c);
    {
        const jitgate::nss::Batch batch;
        EXPECT_TRUE(jitgate::group_names_of("alice").has_value());
        write_file(group(), "alice:x:1000:\nwheel:x:10:\n");
        const int before = source.asked;
        EXPECT_TRUE(jitgate::group_names_of("alice").has_value());
        EXPECT_EQ(source.asked, before);
    }
    const int before = source.asked;
    EXPECT_TRUE(jitgate::group_names_of("alice").has_value());
    EXPECT_EQ(source.asked, before + 1);
    jitgate::nss::install_lookups(nullptr);
}

TEST(NssCacheNsswitch, OnlyFilesIsRecognised) {
    EXPECT_TRUE(nss_cache::only_files("passwd: files\ngroup: files\n"));
    EXPECT_TRUE(nss_cache::only_files("# comment\npasswd:\tfiles # local\ngroup: files [NOTFOUND=return]\n"));
    EXPECT_TRUE(nss_cache::only_files("passwd: files\ngroup: files\ninitgroups: files\nhosts: files dns\n"));
    EXPECT_FALSE(nss_cache::only_files("passwd: files systemd\ngroup: files systemd\n")); // Debian's default
    EXPECT_FALSE(nss_cache::only_files("passwd: files\ngroup: files\ninitgroups: files sss\n"));
    EXPECT_FALSE(nss_cache::only_files("passwd: compat\ngroup: compat\n"));
    EXPECT_FALSE(nss_cache::only_files("passwd: files\ngroup: files[NOTFOUND=return]ldap\n"));
    EXPECT_FALSE(nss_cache::only_files("passwd: files\n"));                         // group: missing
    EXPECT_FALSE(nss_cache::only_files("passwd: files\ngroup: files [SUCCESS=\n")); // malformed
    EXPECT_FALSE(nss_cache::only_files(""));
    // glibc reads a database name without its colon, and "files:" is not "files".
    EXPECT_FALSE(nss_cache::only_files("passwd: files\ngroup: files\ngroup ldap\n"));
    EXPECT_FALSE(nss_cache::only_files("passwd files: ldap\ngroup: files\n"));
    EXPECT_TRUE(nss_cache::only_files("passwd files\n  group\tfiles\n"));
    EXPECT_FALSE(nss_cache::only_files("passwd: files\ngroup:\n")); // no source: glibc's default
}

// The daemon installs a cache in front of jitgate::uid_of & co; uninstalled, they ask NSS.
TEST_F(NssCache, InstalledLookupsServeThePublicFunctions) {
    auto c = make();
    source.users["jitgate-cache-only-user"] = UserRecord{"jitgate-cache-only-user", 4242, 4242, "/h", "/bin/zsh"};
    source.groups["jitgate-cache-only-user"] = {"g1"};
    jitgate::nss::install_lookups(&c);
    EXPECT_EQ(jitgate::uid_of("jitgate-cache-only-user"), std::optional<unsigned>(4242));
    EXPECT_EQ(jitgate::user_name_of(4242), std::optional<std::string>("jitgate-cache-only-user"));
    EXPECT_EQ(jitgate::group_names_of("jitgate-cache-only-user"), std::optional(std::vector<std::string>{"g1"}));
    EXPECT_TRUE(jitgate::user_in_group("jitgate-cache-only-user", "g1"));
    EXPECT_EQ(jitgate::user_record_of("jitgate-cache-only-user")->shell, "/bin/zsh");
    jitgate::nss::install_lookups(nullptr);
    EXPECT_FALSE(jitgate::uid_of("jitgate-cache-only-user").has_value());
    EXPECT_EQ(jitgate::uid_of("root"), std::optional<unsigned>(0));
}

// The real NSS behind a cache on the real files: same answers as without it.
TEST(NssCacheSystem, AgreesWithNss) {
    nss_cache::Cache c;
    for (int i = 0; i < 2; ++i) {
        UserRecord r;
        ASSERT_EQ(c.user_by_name("root", r), Found::yes);
        EXPECT_EQ(r.uid, 0u);
        ASSERT_EQ(c.user_by_uid(0, r), Found::yes);
        EXPECT_EQ(r.name, "root");
        EXPECT_EQ(c.user_by_name("jitgate-no-such-user-x9", r), Found::no);
        std::vector<std::string> g;
        ASSERT_EQ(c.groups_of("root", g), Found::yes);
        EXPECT_EQ(std::optional(g), jitgate::group_names_of("root"));
    }
}

} // namespace
