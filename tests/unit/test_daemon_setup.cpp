// Unit tests of what a Config needs built (daemon/setup.hpp) and of loading a config file with
// its security check (daemon/config/load.hpp).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/approval/local.hpp"
#include "daemon/config/load.hpp"
#include "daemon/setup.hpp"

namespace {

using namespace jitgate;

struct NoOutcomes : approval::Outcomes {
    broker::Request* waiting(const std::string&) override { return nullptr; }
    void tell(broker::Request&, const std::string&) override {}
    void approved(broker::Request&, std::vector<std::string>, std::int64_t, const approval::Json&) override {}
    void denied(broker::Request&, const char*, msg::Outcome, const std::string&, approval::Json) override {}
    bool revoked_at_service(const std::string&, const std::string&, const std::string&, const std::string&,
                            const approval::Json&) override {
        return false;
    }
};

TEST(Setup, ReloadAppliesRulesButRefusesStartUpSettings) {
    config::Config running;
    config::Config fresh = running;
    fresh.rules.emplace_back();
    fresh.approval.service.public_keys.emplace_back("k2", "/etc/jitgate/k2.pem"); // key rotation: applied
    EXPECT_EQ(setup::reload_refusal(running, fresh), "");

    config::Config spool = running;
    spool.audit.spool_dir = "/elsewhere";
    EXPECT_EQ(setup::reload_refusal(running, spool),
              "the audit spool, syslog or store settings changed; restart jitgated to apply them");
    config::Config store = running;
    store.audit.store.batch_events += 1;
    EXPECT_NE(setup::reload_refusal(running, store), "");

    config::Config backend = running;
    backend.approval.backend = "service";
    EXPECT_EQ(setup::reload_refusal(running, backend),
              "approval.backend or approval.service connection settings changed; restart jitgated to apply them");
    config::Config url = backend;
    url.approval.service.url = "https://other.example";
    EXPECT_NE(setup::reload_refusal(backend, url), "");
    // The local backend ignores the service's settings.
    config::Config unused = running;
    unused.approval.service.url = "https://other.example";
    EXPECT_EQ(setup::reload_refusal(running, unused), "");
}

TEST(Setup, OptionsComeFromTheConfig) {
    config::Config c;
    c.host.name = "h1";
    c.audit.spool_dir = "/spool";
    c.audit.spool_max_bytes = 12345;
    const auto a = setup::auditor_options(c);
    EXPECT_EQ(a.spool_dir, "/spool");
    EXPECT_EQ(a.host, "h1");
    EXPECT_EQ(a.max_bytes, 12345u);
    EXPECT_FALSE(setup::shipper_options(c).has_value()) << "no store configured";
    c.audit.store.url = "https://store.example/v1/events";
    c.audit.store.splunk_index = "idx";
    const auto s = setup::shipper_options(c);
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->url, c.audit.store.url);
    EXPECT_EQ(s->hec_index, "idx");
}

TEST(Setup, TheLocalBackendByDefault) {
    NoOutcomes outcomes;
    auto b = setup::make_backend(std::make_shared<const config::Config>(), outcomes);
    ASSERT_NE(b, nullptr);
    EXPECT_NE(dynamic_cast<approval::LocalBackend*>(b.get()), nullptr);
    EXPECT_TRUE(b->allows_local_decisions());
}

TEST(ConfigLoad, EveryProblemIsReportedAndNoConfigReturned) {
    char path[] = "/tmp/jitgate-load-XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    ::close(fd);
    {
        std::ofstream out(path);
        out << "host:\n  name: h1\nno_such_key: 1\n";
    }
    ::chmod(path, 0666); // world-writable: unsafe whoever owns it
    const auto r = config::load_checked(path);
    EXPECT_FALSE(r.config.has_value());
    ASSERT_GE(r.problems.size(), 2u) << "the unknown key and the file's mode";

    std::FILE* sink = std::tmpfile();
    ASSERT_NE(sink, nullptr);
    EXPECT_FALSE(config::load_and_report(path, sink).has_value());
    std::rewind(sink);
    std::string printed;
    for (int ch; (ch = std::fgetc(sink)) != EOF;) printed += static_cast<char>(ch);
    std::fclose(sink);
    std::size_t lines = 0;
    for (char ch : printed) lines += ch == '\n';
    EXPECT_EQ(lines, r.problems.size()) << printed;
    ::unlink(path);

    EXPECT_FALSE(config::load_checked("/nonexistent/jitgate.yaml").problems.empty());
}

} // namespace
