// Unit tests of server/service/keys.cpp (KeySet, keygen) and server/commands.cpp (keygen,
// check-config and sessions revoke as the program runs them): real files in a private directory, real keys, and
// every grant checked with the hosts' verifier.
#include "server/service/keys.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "jitgate/error.hpp"
#include "lib/grant_token.hpp"
#include "server/commands.hpp"
#include "server/store/store.hpp"

namespace jitgate::server {
namespace {

namespace fs = std::filesystem;
namespace gt = grant_token;

class TempDir {
public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "jitgate-server-keys-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        m_path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(m_path, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string path(const std::string& name = "") const {
        return name.empty() ? m_path.string() : (m_path / name).string();
    }
    std::string write(const std::string& name, const std::string& text, mode_t mode) const {
        { std::ofstream(path(name), std::ios::binary | std::ios::trunc) << text; }
        if (chmod(path(name).c_str(), mode) != 0) throw std::runtime_error("chmod failed");
        return path(name);
    }

private:
    fs::path m_path;
};

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

mode_t mode_of(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) return 0;
    return st.st_mode & 07777;
}

// A FILE* whose text the test can read back.
class Capture {
public:
    Capture() : m_file(std::tmpfile()) {
        if (m_file == nullptr) throw std::runtime_error("tmpfile failed");
    }
    ~Capture() { std::fclose(m_file); }
    Capture(const Capture&) = delete;
    Capture& operator=(const Capture&) = delete;
    std::FILE* file() const { return m_file; }
    std::string text() const {
        std::fflush(m_file);
        std::rewind(m_file);
        std::string out;
        for (int c; (c = std::fgetc(m_file)) != EOF;) out += static_cast<char>(c);
        return out;
    }

private:
    std::FILE* m_file;
};

gt::Claims claims_for(const std::string& host) {
    gt::Claims c;
    c.iss = "approvals.example.com";
    c.jti = "G-1";
    c.rid = "R-1";
    c.nonce = "bm9uY2U";
    c.host = host;
    c.sub = "alice";
    c.kind = "sudo";
    c.scope = "session";
    c.approvers = {"bob"};
    c.iat = 1795512000;
    c.nbf = 1795512000;
    c.exp = 1795512900;
    return c;
}

gt::Expected expected_for(const std::string& host) {
    gt::Expected e;
    e.request_id = "R-1";
    e.nonce = "bm9uY2U";
    e.host = host;
    e.user = "alice";
    e.kind = "sudo";
    e.scope = "session";
    e.issuer = "approvals.example.com";
    e.now_unix = 1795512100;
    return e;
}

TEST(ServerKeygen, WritesA0600PrivateKeyAndA0644PublicKeyThatVerify) {
    TempDir dir;
    const mode_t old_umask = umask(0077); // keygen sets the modes itself, whatever the umask
    const service::KeygenResult r = service::keygen(dir.path(), "k1");
    umask(old_umask);
    EXPECT_EQ(r.private_key, dir.path("k1.key"));
    EXPECT_EQ(r.public_key, dir.path("k1.pub"));
    EXPECT_EQ(mode_of(r.private_key), 0600u);
    EXPECT_EQ(mode_of(r.public_key), 0644u);
    EXPECT_EQ(read_file(r.private_key).rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u);
    EXPECT_EQ(read_file(r.public_key), r.public_pem);
    EXPECT_EQ(r.public_pem.rfind("-----BEGIN PUBLIC KEY-----\n", 0), 0u);

    // The host side reads the .pub as configured; the server side signs with the .key.
    gt::KeyRing ring;
    ring.add_file("k1", r.public_key);
    const gt::SigningKey key = gt::SigningKey::load("k1", r.private_key, getuid());
    const gt::Verdict v = gt::verify(gt::sign(key, claims_for("web-01")), ring, expected_for("web-01"));
    EXPECT_TRUE(v.ok) << v.reason;
}

TEST(ServerKeygen, NeverOverwritesAndLeavesNoHalfPair) {
    TempDir dir;
    const service::KeygenResult first = service::keygen(dir.path(), "k1");
    const std::string private_text = read_file(first.private_key);
    try {
        service::keygen(dir.path(), "k1");
        ADD_FAILURE() << "keygen overwrote k1";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), dir.path("k1.key") +
                                             ": already exists; keygen never overwrites a key (pick another --kid, or "
                                             "remove the old pair yourself)");
    }
    EXPECT_EQ(read_file(first.private_key), private_text);
    // Only the .pub exists: no .key is left behind.
    dir.write("k2.pub", "someone's key", 0644);
    EXPECT_THROW(service::keygen(dir.path(), "k2"), Error);
    EXPECT_FALSE(fs::exists(dir.path("k2.key")));
    EXPECT_EQ(read_file(dir.path("k2.pub")), "someone's key");
    // A symlink where the key would go is not followed.
    ASSERT_EQ(symlink(dir.path("target").c_str(), dir.path("k3.key").c_str()), 0);
    EXPECT_THROW(service::keygen(dir.path(), "k3"), Error);
    EXPECT_FALSE(fs::exists(dir.path("target")));
    EXPECT_FALSE(fs::exists(dir.path("k3.pub")));
}

TEST(ServerKeygen, RefusesBadKidAndMissingDirectory) {
    TempDir dir;
    for (const std::string& kid : std::vector<std::string>{"", "k 1", "../k1", std::string(65, 'k')}) {
        SCOPED_TRACE(kid);
        EXPECT_THROW(service::keygen(dir.path(), kid), Error);
    }
    EXPECT_TRUE(fs::is_empty(dir.path()));
    try {
        service::keygen(dir.path("absent"), "k1");
        ADD_FAILURE() << "no throw";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), dir.path("absent") + ": cannot use the directory: No such file or directory");
    }
}

TEST(ServerKeySet, ActiveKeySignsAndEveryKeyIsLoaded) {
    TempDir dir;
    service::keygen(dir.path(), "k1");
    const service::KeygenResult k2 = service::keygen(dir.path(), "k2");
    config::Config::Signing signing;
    signing.keys = {{"k1", dir.path("k1.key")}, {"k2", dir.path("k2.key")}};
    signing.active = "k2";
    const service::KeySet set = service::KeySet::load(signing, getuid());
    EXPECT_EQ(set.kids(), (std::vector<std::string>{"k1", "k2"}));
    EXPECT_EQ(set.active().kid(), "k2");
    ASSERT_NE(set.find("k1"), nullptr);
    EXPECT_EQ(set.find("k3"), nullptr);

    gt::KeyRing ring;
    ring.add_file("k2", k2.public_key);
    const gt::Verdict v = gt::verify(set.sign(claims_for("web-01")), ring, expected_for("web-01"));
    ASSERT_TRUE(v.ok) << v.reason;
    EXPECT_EQ(v.claims.kid, "k2");
    // A claim set a host would refuse is not signed.
    gt::Claims self = claims_for("web-01");
    self.approvers = {"alice"};
    EXPECT_THROW(set.sign(self), Error);
}

TEST(ServerKeySet, RefusesAnUnsafeKeyFileNamingTheEntry) {
    TempDir dir;
    service::keygen(dir.path(), "k1");
    chmod(dir.path("k1.key").c_str(), 0644);
    config::Config::Signing signing;
    signing.keys = {{"k1", dir.path("k1.key")}};
    signing.active = "k1";
    try {
        service::KeySet::load(signing, getuid());
        ADD_FAILURE() << "loaded a key others can read";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), "signing.keys[0] (kid k1): " + dir.path("k1.key") +
                                             ": mode 0644 lets others read or run the signing "
                                             "key; it must be 0600 or 0400 (fix with: chmod 0600 " +
                                             dir.path("k1.key") + ")");
    }
    chmod(dir.path("k1.key").c_str(), 0600);
    signing.active = "k9";
    EXPECT_THROW(service::KeySet::load(signing, getuid()), Error);
    signing.keys.clear();
    EXPECT_THROW(service::KeySet::load(signing, getuid()), Error);
}

// --- the sub-commands ---------------------------------------------------------------------

TEST(ServerCommands, KeygenCommandWritesThePairAndRefusesUsageErrors) {
    TempDir dir;
    Capture out;
    Capture err;
    EXPECT_EQ(keygen_command({"--dir", dir.path(), "--kid", "k1"}, out.file(), err.file()), 0) << err.text();
    EXPECT_EQ(mode_of(dir.path("k1.key")), 0600u);
    EXPECT_NE(out.text().find("wrote " + dir.path("k1.pub")), std::string::npos) << out.text();
    EXPECT_NE(out.text().find(read_file(dir.path("k1.pub"))), std::string::npos);

    Capture again;
    Capture again_err;
    EXPECT_EQ(keygen_command({"--dir", dir.path(), "--kid", "k1"}, again.file(), again_err.file()), 1);
    EXPECT_NE(again_err.text().find("already exists"), std::string::npos) << again_err.text();

    Capture usage;
    EXPECT_EQ(keygen_command({"--dir", dir.path()}, out.file(), usage.file()), 2);
    EXPECT_EQ(usage.text(), "usage: jitgate-server keygen --kid KID [--dir DIR]\n");
    Capture unknown;
    EXPECT_EQ(keygen_command({"--kid", "k2", "--force", "yes"}, out.file(), unknown.file()), 2);
    EXPECT_EQ(unknown.text(), "jitgate-server keygen: unknown argument '--force'\n");
}

TEST(ServerCommands, CheckConfigPrintsEachProblemOrConfigOk) {
    TempDir dir;
    service::keygen(dir.path(), "k1");
    dir.write("server.pem", "cert", 0644);
    dir.write("server.key", "key", 0600);
    dir.write("ca.pem", "ca", 0644);
    const std::string head = "server:\n"
                             "  name: approvals.example.com\n"
                             "  public_url: https://approvals.example.com\n"
                             "hosts:\n"
                             "  cert: " +
                             dir.path("server.pem") +
                             "\n"
                             "  key: " +
                             dir.path("server.key") +
                             "\n"
                             "  client_ca: " +
                             dir.path("ca.pem") +
                             "\n"
                             "database:\n"
                             "  sqlite: " +
                             dir.path("server.db") +
                             "\n"
                             "signing:\n"
                             "  keys:\n"
                             "    - kid: k1\n";
    const std::string good = dir.write("good.yaml", head + "      private_key: " + dir.path("k1.key") + "\n", 0644);
    Capture out;
    Capture err;
    EXPECT_EQ(check_config_command({"--config", good}, out.file(), err.file()), 0) << out.text() << err.text();
    EXPECT_EQ(out.text(), "config OK\n");

    const std::string bad = dir.write("bad.yaml",
                                      head + "      private_key: " + dir.path("k1.key") +
                                          "\n  active: k2\npolicy:\n  - name: p\n    min_approvals: 9\n",
                                      0644);
    Capture bad_out;
    EXPECT_EQ(check_config_command({"--config", bad}, bad_out.file(), err.file()), 1);
    EXPECT_EQ(bad_out.text(), bad + ":14:11: signing.active 'k2' is not a kid of signing.keys (k1)\n" + bad +
                                  ":16:5: policy 'p': approver_groups is required (who may approve the requests this "
                                  "entry covers)\n" +
                                  bad + ":17:20: policy 'p': min_approvals must be 1..5, got 9\n");

    // A safe file that holds no key: found when the keys are loaded.
    dir.write("k9.key", "not a key", 0600);
    const std::string nokey = dir.write("nokey.yaml", head + "      private_key: " + dir.path("k9.key") + "\n", 0644);
    Capture nokey_out;
    EXPECT_EQ(check_config_command({"--config", nokey}, nokey_out.file(), err.file()), 1);
    EXPECT_EQ(nokey_out.text(), nokey + ": signing.keys[0] (kid k1): " + dir.path("k9.key") +
                                    ": not a PEM private key (\"-----BEGIN PRIVATE KEY-----\", PKCS#8)\n");

    Capture usage;
    EXPECT_EQ(check_config_command({"--config"}, out.file(), usage.file()), 2);
    EXPECT_EQ(usage.text(), "jitgate-server check-config: --config needs a value\n");
}

std::vector<store::Event> g_logged; // what sessions_command sent to "syslog"

TEST(ServerCommands, SessionsRevokeEndsEverySessionOfOneUserAndIsAudited) {
    TempDir dir;
    const std::string db = dir.path("server.db");
    store::migrate_sqlite(db);
    const auto s = store::open_sqlite(db);
    s->put_session(store::Session{"t1", "i", "alice", "Alice", {"g"}, "c", 0, 5000});
    s->put_session(store::Session{"t2", "i", "alice", "Alice", {"g"}, "c", 0, 5000});
    s->put_session(store::Session{"t3", "i", "bob", "Bob", {"g"}, "c", 0, 5000});
    g_logged.clear();
    const auto log = [](const store::Event& e) { g_logged.push_back(e); };
    Capture out;
    Capture err;
    EXPECT_EQ(sessions_command({"revoke", "--user", "alice"}, *s, 100, "root", log, out.file(), err.file()), 0)
        << err.text();
    EXPECT_EQ(out.text(), "ended 2 sessions of alice\n");
    EXPECT_FALSE(s->find_session("t1", 0));
    EXPECT_FALSE(s->find_session("t2", 0));
    EXPECT_TRUE(s->find_session("t3", 0));
    const auto events = s->events("", "");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].type, "sessions.revoked");
    EXPECT_EQ(events[0].actor, "admin:root");
    EXPECT_EQ(events[0].at, 100);
    EXPECT_EQ(events[0].detail, R"({"sessions":2,"user":"alice"})");
    ASSERT_EQ(g_logged.size(), 1u);
    EXPECT_EQ(g_logged[0].type, "sessions.revoked");

    Capture again;
    EXPECT_EQ(sessions_command({"revoke", "--user", "alice"}, *s, 101, "root", log, again.file(), err.file()), 0);
    EXPECT_EQ(again.text(),
              "no sessions for alice; nothing was ended (user names are matched exactly, case-sensitively)\n");
    Capture other_case;
    EXPECT_EQ(sessions_command({"revoke", "--user", "Bob"}, *s, 101, "root", log, other_case.file(), err.file()), 0);
    EXPECT_EQ(other_case.text(),
              "no sessions for Bob; nothing was ended (user names are matched exactly, case-sensitively)\n");
    EXPECT_TRUE(s->find_session("t3", 0)) << "bob's session is not Bob's";
    // No sessions ended, no event: the audit says sessions.revoked exactly when some were.
    EXPECT_EQ(s->events("", "").size(), 1u);
    EXPECT_EQ(g_logged.size(), 1u);

    Capture usage;
    EXPECT_EQ(sessions_command({}, *s, 102, "root", log, out.file(), usage.file()), 2);
    EXPECT_EQ(sessions_command({"revoke"}, *s, 102, "root", log, out.file(), usage.file()), 2);
    EXPECT_EQ(sessions_command({"list", "--user", "bob"}, *s, 102, "root", log, out.file(), usage.file()), 2);
    EXPECT_EQ(sessions_command({"revoke", "--user", ""}, *s, 102, "root", log, out.file(), usage.file()), 2);
    EXPECT_EQ(sessions_command({"revoke", "--user", "bo\nb"}, *s, 102, "root", log, out.file(), usage.file()), 2);
    EXPECT_EQ(sessions_command({"revoke", "--name", "bob"}, *s, 102, "root", log, out.file(), usage.file()), 2);
    EXPECT_TRUE(s->find_session("t3", 0));
    EXPECT_EQ(s->events("", "").size(), 1u);
}

} // namespace
} // namespace jitgate::server
