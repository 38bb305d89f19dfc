// server/main.cpp — jitgate-server's command line:
//   jitgate-server [--config FILE] serve [--ports-file FILE]
//   jitgate-server [--config FILE] migrate
//   jitgate-server [--config FILE] check-config
//   jitgate-server [--config FILE] sessions revoke --user NAME
//   jitgate-server [--config FILE] grants revoke --request ID [--host HOST] [--reason TEXT]
//   jitgate-server [--config FILE] report --from DATE --to DATE [--hosts PATTERN] [--format F] [--output FILE]
//   jitgate-server [--config FILE] audit export|verify-archive|prune ...
//   jitgate-server keygen --dir DIR --kid KID
//   jitgate-server --version
// Every command catches everything: an exception never leaves main (exit 1 with a message).
#include "lib/sd_notify.hpp"
#include "server/commands.hpp"
#include "server/config/config.hpp"
#include "server/http/http.hpp"
#include "server/notify/deliver.hpp"
#include "server/notify/notice.hpp"
#include "server/notify/notifier.hpp"
#include "server/notify/ticket.hpp"
#include "server/service/audit_ingest.hpp"
#include "server/service/audit_log.hpp"
#include "server/service/keys.hpp"
#include "server/service/notices.hpp"
#include "server/service/service.hpp"
#include "server/store/store.hpp"
#include "server/web/oidc_sign_in.hpp"
#include "server/web/web_ui.hpp"

#include <jitgate/error.hpp>

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

using jitgate::server::k_default_config;

void usage(std::FILE* out) {
    std::fprintf(out,
                 "usage: jitgate-server [--config FILE] serve [--ports-file FILE]\n"
                 "       jitgate-server [--config FILE] migrate\n"
                 "       jitgate-server [--config FILE] check-config\n"
                 "       jitgate-server [--config FILE] sessions revoke --user NAME\n"
                 "       jitgate-server [--config FILE] grants revoke --request ID [--host HOST] [--reason TEXT]\n"
                 "       jitgate-server [--config FILE] report --from DATE --to DATE [--hosts PATTERN]\n"
                 "                      [--format html|pdf|csv|json] [--output FILE] [--silent-after SECONDS]\n"
                 "       jitgate-server [--config FILE] audit export --month YYYY-MM --output DIR\n"
                 "       jitgate-server audit verify-archive [--expect-sha256 HEX] DIR [[--expect-sha256 HEX] DIR...]\n"
                 "       jitgate-server [--config FILE] audit prune --before YYYY-MM --archive DIR [--archive DIR...]\n"
                 "                      [--dry-run]\n"
                 "       jitgate-server keygen --dir DIR --kid KID\n"
                 "       jitgate-server --version\n"
                 "The default config is %s.\n",
                 k_default_config);
}

// The web UI's sign-in when the config has no `oidc` section: every attempt is refused.
class NoSignIn final : public jitgate::server::web::SignIn {
public:
    std::pair<std::string, jitgate::server::store::LoginState> begin(const std::string&) override {
        throw jitgate::Error(jitgate::ErrorCode::bad_input, "sign-in",
                             "no identity provider is configured (the `oidc` section of the server's config)");
    }
    jitgate::server::web::Identity complete(const std::string&, const jitgate::server::store::LoginState&) override {
        throw jitgate::Error(jitgate::ErrorCode::bad_input, "sign-in", "no identity provider is configured");
    }
};

int g_signal_pipe[2] = {-1, -1};

extern "C" void on_signal(int) {
    const int saved = errno;
    const char byte = 1;
    [[maybe_unused]] const ssize_t n = ::write(g_signal_pipe[1], &byte, 1);
    errno = saved;
}

std::optional<jitgate::server::config::Config> load_config(const std::string& path) {
    jitgate::server::config::LoadResult loaded = jitgate::server::config::load(path, ::geteuid());
    for (const auto& problem : loaded.problems) std::fprintf(stderr, "%s\n", problem.to_string().c_str());
    if (!loaded.problems.empty()) {
        std::fprintf(stderr, "jitgate-server: %s has problems (see above)\n", path.c_str());
        return std::nullopt;
    }
    return std::move(loaded.config);
}

// Reads a small secret file (already checked by the config's load: owner and mode) without
// its trailing newline.
std::string read_secret(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) throw jitgate::Error(jitgate::ErrorCode::bad_input, path, "cannot read it");
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    return secret;
}

// The libpq conninfo of the config, with the password from database.password_file (quoted as
// libpq's conninfo syntax wants). Never printed.
std::string postgres_conninfo(const jitgate::server::config::Config& config) {
    std::string conninfo = config.database.postgres;
    if (!config.database.password_file.empty()) {
        std::string quoted = "'";
        for (const char c : read_secret(config.database.password_file)) {
            if (c == '\'' || c == '\\') quoted += '\\';
            quoted += c;
        }
        conninfo += " password=" + quoted + "'";
    }
    return conninfo;
}

std::unique_ptr<jitgate::server::store::Store> open_store(const jitgate::server::config::Config& config) {
    namespace store = jitgate::server::store;
    if (!config.database.postgres.empty()) return store::open_postgres(postgres_conninfo(config));
    return store::open_sqlite(config.database.sqlite);
}

int migrate(const std::string& path) {
    const auto config = load_config(path);
    if (!config) return 1;
    namespace store = jitgate::server::store;
    const int before = config->database.postgres.empty() ? store::migrate_sqlite(config->database.sqlite)
                                                         : store::migrate_postgres(postgres_conninfo(*config));
    if (before == store::k_schema_version)
        std::printf("jitgate-server: the database is at schema version %d; nothing to do\n", before);
    else
        std::printf("jitgate-server: the database went from schema version %d to %d\n", before,
                    store::k_schema_version);
    return 0;
}

// An admin command on the configured database, audited as the Unix user who ran it:
// `sessions revoke --user NAME` (sessions_command), `grants revoke --request ID ...`
// (grants_command).
template <typename Command>
int admin_command(const std::string& path, const std::vector<std::string>& args, Command&& command) {
    const auto config = load_config(path);
    if (!config) return 1;
    if (!jitgate::server::service::open_audit_log(config->audit.syslog_facility)) {
        std::fprintf(stderr, "jitgate-server: unknown syslog facility\n");
        return 1;
    }
    const uid_t uid = ::getuid();
    const passwd* pw = ::getpwuid(uid);
    const std::string actor = pw != nullptr ? std::string(pw->pw_name) : "uid:" + std::to_string(uid);
    std::unique_ptr<jitgate::server::store::Store> store = open_store(*config);
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    return command(args, *store, now, actor, &jitgate::server::service::log_event);
}

int sessions(const std::string& path, const std::vector<std::string>& args) {
    return admin_command(path, args, [](auto&&... a) { return jitgate::server::sessions_command(a...); });
}

int grants(const std::string& path, const std::vector<std::string>& args) {
    return admin_command(path, args, [](auto&&... a) { return jitgate::server::grants_command(a...); });
}

// `report ...`: the evidence report, read from the configured database (read only). The
// arguments are checked before the config is read, so a bad date says so even without one.
int report(const std::string& path, const std::vector<std::string>& args) {
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::optional<jitgate::server::config::Config> config;
    return jitgate::server::report_command(
        args,
        [&]() -> std::unique_ptr<jitgate::server::store::Store> {
            config = load_config(path);
            if (!config)
                throw jitgate::Error(jitgate::ErrorCode::bad_input, path, "the config has problems (see above)");
            return open_store(*config);
        },
        now);
}

// `audit export|verify-archive|prune ...`: the audit store's retention. verify-archive needs
// neither the config nor the database (an auditor runs it on a copy of the archive); export
// and prune read the config once their arguments are checked, use the configured database and
// are audited as the user who ran them.
int audit(const std::string& path, const std::vector<std::string>& args) {
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    const uid_t uid = ::getuid();
    const passwd* pw = ::getpwuid(uid);
    const std::string actor = pw != nullptr ? std::string(pw->pw_name) : "uid:" + std::to_string(uid);
    return jitgate::server::audit_command(
        args,
        [&]() {
            const auto config = load_config(path);
            if (!config)
                throw jitgate::Error(jitgate::ErrorCode::bad_input, path, "the config has problems (see above)");
            if (!jitgate::server::service::open_audit_log(config->audit.syslog_facility))
                throw jitgate::Error(jitgate::ErrorCode::bad_input, path, "unknown syslog facility");
            return jitgate::server::AuditTarget{open_store(*config), config->audit.retention_months};
        },
        now, actor, &jitgate::server::service::log_event);
}

// Writes {"hosts": PORT, "web": PORT} to `path` atomically (tests listen on port 0).
void write_ports(const std::string& path, std::uint16_t hosts, std::uint16_t web) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << "{\"hosts\": " << hosts << ", \"web\": " << web << "}\n";
        if (!out.flush()) throw jitgate::Error(jitgate::ErrorCode::internal, path, "cannot write the ports file");
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0)
        throw jitgate::Error(jitgate::ErrorCode::internal, path, std::strerror(errno));
}

int serve(const std::string& path, const std::string& ports_file) {
    namespace server = jitgate::server;
    const auto config = load_config(path);
    if (!config) return 1;
    if (!server::service::open_audit_log(config->audit.syslog_facility)) {
        std::fprintf(stderr, "jitgate-server: unknown syslog facility\n");
        return 1;
    }
    // The keys are checked as check-config checks them: owned by root or by the user the server
    // runs as (the packages' jitgate-server, which made them with keygen), mode 0600 or 0400.
    const server::service::KeySet keys = server::service::KeySet::load(config->signing, ::geteuid());
    std::unique_ptr<server::store::Store> store = open_store(*config);
    // SQLite: the write-ahead log is copied back on a thread of its own, never inside a commit
    // on the event loop (store.hpp).
    std::unique_ptr<server::store::SqliteCheckpointer> checkpointer;
    if (config->database.postgres.empty())
        checkpointer =
            std::make_unique<server::store::SqliteCheckpointer>(config->database.sqlite, [](const std::string& what) {
                std::fprintf(stderr, "jitgate-server: %s\n", what.c_str());
            });

    if (::pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        throw jitgate::Error(jitgate::ErrorCode::internal, "signals", std::strerror(errno));
    struct sigaction action {};
    action.sa_handler = on_signal;
    ::sigemptyset(&action.sa_mask);
    ::sigaction(SIGTERM, &action, nullptr);
    ::sigaction(SIGINT, &action, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    server::http::EventLoop loop;
    auto stop_watch = loop.watch_readable(g_signal_pipe[0], [&loop]() { loop.stop(); });

    server::service::Service service(*config, *store, keys.active(), loop);

    // Webhook notices: put in the database's outbox by the loop thread in the decision path,
    // delivered by the notifier's own thread and database connection (a slow or dead receiver
    // never holds up a decision; a notice survives a restart).
    server::notify::Notifier notifier(server::notify::load_targets(config->webhooks),
                                      [&config]() { return open_store(*config); });
    service.on_event = [&](const std::string& type, const server::store::Request& request) {
        const auto kind = server::notify::event_from_type(type);
        if (!kind || config->webhooks.empty()) return;
        const auto facts = server::service::facts_of(request, service.request_url(request.host, request.id));
        const auto outgoing =
            server::notify::notices_for(config->webhooks, config->server.name, *kind, facts, service.now());
        for (const auto& notice : outgoing) store->enqueue(notice.target, notice.body, service.now());
        if (!outgoing.empty()) notifier.wake();
    };
    // A host's audit chain broke (server.md §10): already on syslog at alert and in the
    // database; webhooks that list the type get a notice too.
    service.on_audit_chain_event = [&](const server::store::Event& event) {
        if (config->webhooks.empty() || !server::audit_ingest::is_chain_alert(event.type)) return;
        const auto detail = nlohmann::json::parse(event.detail, nullptr, false);
        server::notify::ChainFacts facts;
        facts.type = event.type;
        facts.host = event.host;
        if (detail.is_object()) {
            facts.seq = detail.value("seq", std::int64_t{0});
            facts.event_id = detail.value("event_id", std::string());
            facts.problem = detail.value("problem", std::string());
        }
        const auto outgoing =
            server::notify::chain_notices_for(config->webhooks, config->server.name, facts, service.now());
        for (const auto& notice : outgoing) store->enqueue(notice.target, notice.body, service.now());
        if (!outgoing.empty()) notifier.wake();
    };
    // A break-glass review item went overdue: already on syslog at alert and in the database;
    // webhooks that list break_glass.review_overdue get a notice too.
    service.on_break_glass_overdue = [&](const server::store::BreakGlassReview& review) {
        if (config->webhooks.empty()) return;
        const server::notify::BreakGlassFacts facts{review.host,      review.event_id,
                                                    review.user_name, review.time,
                                                    review.due_at,    service.review_url(review.host, review.event_id)};
        const auto outgoing =
            server::notify::break_glass_notices_for(config->webhooks, config->server.name, facts, service.now());
        for (const auto& notice : outgoing) store->enqueue(notice.target, notice.body, service.now());
        if (!outgoing.empty()) notifier.wake();
    };
    // The ticket check runs on its own thread; its answer is recorded on the loop thread. Until
    // it has answered "ok", the request cannot be approved (fail closed).
    std::unique_ptr<server::notify::TicketChecker> tickets;
    if (!config->ticket_check.url.empty())
        tickets = std::make_unique<server::notify::TicketChecker>(config->ticket_check);
    service.on_ticket_check_needed = [&](const std::string& host, const std::string& id, const std::string& ticket) {
        if (!tickets) return;
        const bool queued =
            tickets->post(ticket, [&loop, &service, host, id](const server::notify::TicketAnswer& answer) {
                loop.post([&service, host, id, answer]() {
                    try {
                        service.record_ticket_check(host, id, answer.ok, answer.why, answer.to_json(service.now()));
                    } catch (const std::exception& e) {
                        std::fprintf(stderr, "jitgate-server: recording the ticket check failed: %s\n", e.what());
                    }
                });
            });
        if (!queued)
            service.record_ticket_check(
                host, id, false, "the ticket check is overloaded; ask again later",
                server::notify::TicketAnswer{false, "the ticket check is overloaded"}.to_json(service.now()));
    };

    std::string public_url = config->server.public_url;
    while (!public_url.empty() && public_url.back() == '/') public_url.pop_back();
    // Without an `oidc` section nobody can sign in to the web UI (hosts are still served, and
    // requests expire): a server being set up, or one whose approvers all use another path.
    std::unique_ptr<server::web::SignIn> sign_in;
    if (config->oidc.issuer.empty())
        sign_in = std::make_unique<NoSignIn>();
    else
        sign_in = std::make_unique<server::web::OidcSignIn>(server::web::oidc::settings_from_config(
            config->oidc, read_secret(config->oidc.client_secret_file), public_url + "/oidc/callback"));
    server::web::WebUi web(*config, service, *store, *sign_in);
    // The IdP calls of sign-ins and the evidence reports leave the loop thread (a slow IdP or a
    // report of a year must not stall the hosts); a report reads through a Store of its own.
    web.offload_sign_in([&loop](std::function<void()> work) { loop.post(std::move(work)); });
    web.offload_reports([&loop](std::function<void()> work) { loop.post(std::move(work)); },
                        [&config]() { return open_store(*config); });
    // So do the checks of audit batches (a hostile 32 MiB batch must not stall the others).
    service.offload_audit_checks([&loop](std::function<void()> work) { loop.post(std::move(work)); });

    server::http::Limits host_limits;
    host_limits.max_connections_per_address = static_cast<std::size_t>(config->hosts.max_connections_per_address);
    // Audit batches (docs/audit.md §5) are large; every other host route keeps 64 KiB.
    host_limits.large_body_paths = {server::service::Service::k_audit_events_path};
    host_limits.max_large_body = server::audit_ingest::k_max_body;
    server::http::Limits web_limits;
    web_limits.max_connections_per_address = static_cast<std::size_t>(config->web.max_connections_per_address);
    web_limits.per_ipv6_64 = true; // a browser's machine usually holds a whole /64 (like the sign-in limit)
    // A CRL is read here, once: a new one takes a restart (there is no reload).
    server::http::Listener hosts(
        loop, config->hosts.listen.address, config->hosts.listen.port,
        {config->hosts.cert, config->hosts.key, config->hosts.client_ca, config->hosts.client_crl}, host_limits,
        [&service](server::http::Request&& r, server::http::Reply&& reply) {
            service.handle_host(std::move(r), std::move(reply));
        });
    server::http::Listener browsers(
        loop, config->web.listen.address, config->web.listen.port, {config->web.cert, config->web.key, "", ""},
        web_limits,
        [&web](server::http::Request&& r, server::http::Reply&& reply) { web.handle(std::move(r), std::move(reply)); });
    if (!ports_file.empty()) write_ports(ports_file, hosts.port(), browsers.port());

    service.start();
    notifier.start();
    server::store::Event started;
    started.at = service.now();
    started.type = "server.started";
    started.actor = "server";
    started.detail = "{\"version\":\"" JITGATE_VERSION "\",\"signing_kid\":\"" + keys.active().kid() + "\"}";
    store->record(started);
    server::service::log_event(started);
    std::fprintf(stderr, "jitgate-server %s: hosts on %s:%u, approvers on %s:%u, signing with %s\n", JITGATE_VERSION,
                 config->hosts.listen.address.c_str(), hosts.port(), config->web.listen.address.c_str(),
                 browsers.port(), keys.active().kid().c_str());
    jitgate::notify_systemd("READY=1");
    loop.run();
    jitgate::notify_systemd("STOPPING=1");
    if (tickets) tickets->stop();
    notifier.stop();
    std::fprintf(stderr, "jitgate-server: stopped\n");
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        std::vector<std::string> args(argv + 1, argv + argc);
        std::string config = k_default_config;
        std::size_t i = 0;
        if (i < args.size() && args[i] == "--version") {
            std::printf("jitgate-server %s\n", JITGATE_VERSION);
            return 0;
        }
        if (i < args.size() && (args[i] == "--help" || args[i] == "-h")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 < args.size() && args[i] == "--config") {
            config = args[i + 1];
            i += 2;
        }
        if (i >= args.size()) {
            usage(stderr);
            return 2;
        }
        const std::string command = args[i++];
        const std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
        if (command == "serve") {
            std::string ports_file;
            if (rest.size() == 2 && rest[0] == "--ports-file")
                ports_file = rest[1];
            else if (!rest.empty()) {
                usage(stderr);
                return 2;
            }
            return serve(config, ports_file);
        }
        if (command == "migrate" && rest.empty()) return migrate(config);
        if (command == "check-config" && rest.empty())
            return jitgate::server::check_config_command({"--config", config});
        if (command == "sessions") return sessions(config, rest);
        if (command == "grants") return grants(config, rest);
        if (command == "report") return report(config, rest);
        if (command == "audit") return audit(config, rest);
        if (command == "keygen") return jitgate::server::keygen_command(rest);
        usage(stderr);
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgate-server: %s\n", e.what());
        return 1;
    } catch (...) {
        std::fprintf(stderr, "jitgate-server: unexpected error\n");
        return 1;
    }
}
