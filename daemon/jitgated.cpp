// daemon/jitgated.cpp — jitgated, the jitgate daemon: policy, grants, approvals and audit for one host.
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>

#include "daemon/audit/auditor.hpp"
#include "daemon/audit/shipper.hpp"
#include "daemon/config/load.hpp"
#include "daemon/policy/nss_cache.hpp"
#include "daemon/server/server.hpp"
#include "daemon/setup.hpp"
#include "jitgate/error.hpp"
#include "jitgate/passwd.hpp"
#include "lib/sd_notify.hpp"

namespace {

constexpr const char* k_default_config = "/etc/jitgate/jitgate.yaml";

void usage(std::FILE* out) {
    std::fprintf(out,
                 "usage: jitgated [--config FILE]      serve (default config %s)\n"
                 "       jitgated --check-config [FILE] validate a config and exit (non-zero on any problem)\n"
                 "       jitgated --version\n",
                 k_default_config);
}

int serve(const std::string& path) {
    auto cfg = jitgate::config::load_and_report(path, stderr); // prints every problem
    if (!cfg) {
        std::fprintf(stderr, "jitgated: refusing to start: %s has problems (see above)\n", path.c_str());
        return 1;
    }
    auto config = std::make_shared<const jitgate::config::Config>(std::move(*cfg));
    // User and group lookups through the daemon's cache (nss_cache.hpp: what it may keep and
    // for how long). Installed before any thread starts; uninstalled before it is destroyed.
    jitgate::nss_cache::Cache nss_cache;
    jitgate::nss::install_lookups(&nss_cache);
    struct Uninstall {
        ~Uninstall() { jitgate::nss::install_lookups(nullptr); }
    } uninstall;
    jitgate::audit::Auditor auditor(jitgate::setup::auditor_options(*config));
    // The sender to the central audit store, if one is configured. Declared after the
    // auditor: it is stopped and destroyed first.
    std::unique_ptr<jitgate::audit::Shipper> shipper;
    if (auto o = jitgate::setup::shipper_options(*config))
        shipper = std::make_unique<jitgate::audit::Shipper>(std::move(*o), auditor);
    jitgate::server::Server server(path, config, auditor, shipper.get());
    auditor.record({{"type", jitgate::audit::type::daemon_started},
                    {"pid", ::getpid()},
                    {"euid", ::geteuid()},
                    {"version", JITGATE_VERSION},
                    {"backend", config->approval.backend}});
    auditor.record({{"type", jitgate::audit::type::config_loaded}, {"config", path}, {"rules", config->rules.size()}});
    // From here on, one fdatasync covers each batch of events of the event loop.
    auditor.set_group_commit(true);
    std::fprintf(stderr, "jitgated %s: ready on %s (config %s, %zu rules, spool %s)\n", JITGATE_VERSION,
                 config->daemon.socket.c_str(), path.c_str(), config->rules.size(), config->audit.spool_dir.c_str());
    // Ready only now: the socket is listening and the config is loaded, so a unit ordered
    // After=jitgated.service never meets a daemon that would refuse it.
    if (shipper) shipper->start();
    jitgate::notify_systemd("READY=1\nSTATUS=listening on the socket");
    const int rc = server.run();
    if (shipper) shipper->stop(); // unsent events stay in the spool for the next start
    return rc;
}

} // namespace

int main(int argc, char** argv) {
    try {
        // Once, before any thread: libcurl's global state (the approval service, the store).
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            std::fprintf(stderr, "jitgated: fatal: curl_global_init failed\n");
            return 1;
        }
        std::string config = k_default_config;
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            if (a == "--config" && i + 1 < argc) {
                config = argv[++i];
            } else if (a == "--check-config") {
                const std::string path = i + 1 < argc ? argv[i + 1] : config;
                if (!jitgate::config::load_and_report(path, stderr)) return 1;
                std::printf("%s: OK\n", path.c_str());
                return 0;
            } else if (a == "--version") {
                std::printf("jitgated %s\n", JITGATE_VERSION);
                return 0;
            } else if (a == "--help" || a == "-h") {
                usage(stdout);
                return 0;
            } else {
                usage(stderr);
                return 2;
            }
        }
        return serve(config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgated: fatal: %s\n", e.what());
        return 1;
    } catch (...) {
        std::fprintf(stderr, "jitgated: fatal: unknown error\n");
        return 1;
    }
}
