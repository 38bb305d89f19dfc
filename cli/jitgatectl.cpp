// cli/jitgatectl.cpp — the command-line client of jitgated for approvers, admins and auditors:
// its arguments, its one catch-all, and the config check. The commands are in commands.cpp,
// how they print in output.cpp.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/doctor/doctor.hpp"
#include "cli/output.hpp"
#include "daemon/config/load.hpp"
#include "jitgate/client.hpp"
#include "jitgate/text.hpp"

namespace client = jitgate::client;
using namespace jitgate::cli;

namespace {

constexpr const char* k_default_config = "/etc/jitgate/jitgate.yaml";

void usage(std::FILE* out) {
    std::fprintf(
        out,
        "usage: jitgatectl [--socket PATH] [--config FILE] COMMAND\n"
        "  pending [--json]               requests waiting for approval\n"
        "  approve ID                     approve a request (you must be an approver, not the requester)\n"
        "  deny ID --reason TEXT          deny a request; the requester sees the reason\n"
        "  grants [--json]                live grants\n"
        "  revoke GRANT_ID [--reason T]   end a grant now, and the sessions it admitted\n"
        "  sessions [--json]              live privileged sessions under grants\n"
        "  done [GRANT_ID]                end your own grant early (all of yours if none named)\n"
        "  requests [--json]              your own requests: waiting and recently decided\n"
        "  extend GRANT_ID [--reason T]   ask for a new approval to extend your grant\n"
        "  status [--json]                daemon status\n"
        "  audit verify [DIR|FILE]        check the spool's hash chain and seq gaps (default: the config's spool)\n"
        "  audit verify --against-store [DIR]\n"
        "                                 also check that the spool holds what the central store holds\n"
        "  audit tail [-n N] [DIR|FILE]   show the last N events (default 20)\n"
        "  audit status [--json]          the audit pipeline: spooled, shipped, oldest unsent, last error\n"
        "  check-config [FILE]            validate a config file\n"
        "  doctor [--root DIR] [--json]   look for ways to root around jitgate (docs/doctor.md);\n"
        "                                 exit 0 nothing found, 1 a warning or critical finding\n"
        "Exit status: 0 ok, 1 refused or failed, 2 usage, 3 daemon unreachable.\n");
}

// The audit spool directory of the config at `config_path` (audit.spool_dir), or the default
// one if the config cannot be loaded (said on stderr).
std::string spool_dir_from(const std::string& config_path) {
    auto r = jitgate::config::load_config(config_path);
    if (r.config) return r.config->audit.spool_dir;
    const std::string fallback = jitgate::config::Config{}.audit.spool_dir;
    std::fprintf(stderr, "jitgatectl: cannot load %s; using the default audit spool %s\n",
                 jitgate::text::escape_for_log(config_path).c_str(), fallback.c_str());
    return fallback;
}

// `jitgatectl doctor`: every check of cli/doctor on the host (or the tree under `root`). The
// config is read under the root too; with --socket, the daemon is asked there instead of at the
// config's daemon.socket.
int cmd_doctor(const std::string& root_dir, bool json, const std::optional<std::string>& config,
               const std::optional<std::string>& socket) {
    namespace doctor = jitgate::doctor;
    const doctor::Root root(root_dir);
    doctor::Facts facts = doctor::host_facts();
    if (socket) {
        auto ask = facts.daemon_error;
        facts.daemon_error = [ask, s = *socket](const std::string&) { return ask(s); };
    }
    const auto report = doctor::run(root, facts, config);
    if (json)
        std::printf("%s\n", doctor::to_json(report).dump(2).c_str());
    else
        std::fputs(doctor::to_text(report).c_str(), stdout);
    return doctor::exit_status(report);
}

int cmd_check_config(const std::string& path) {
    const auto config = jitgate::config::load_and_report(path, stderr);
    if (!config) return k_exit_refused;
    std::printf("%s: OK (%zu rules)\n", path.c_str(), config->rules.size());
    return 0;
}

// Reads the arguments and runs one command. Returns the exit status; may throw.
int run(int argc, char** argv) {
    client::Options opts;
    if (const char* env = std::getenv("JITGATE_SOCKET"); env != nullptr && *env != '\0') opts.socket_path = env;
    std::string config = k_default_config;
    std::optional<std::string> socket_given, config_given;
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--socket" && i + 1 < argc)
            opts.socket_path = *(socket_given = argv[++i]);
        else if (a == "--config" && i + 1 < argc)
            config = *(config_given = argv[++i]);
        else if (a == "--help" || a == "-h") {
            usage(stdout);
            return 0;
        } else
            args.push_back(a);
    }
    if (args.empty()) {
        usage(stderr);
        return k_exit_usage;
    }
    const std::string cmd = args[0];
    const auto flag = [&](const char* name) {
        for (const auto& a : args)
            if (a == name) return true;
        return false;
    };
    const auto option = [&](const char* name) -> std::optional<std::string> {
        for (std::size_t i = 0; i + 1 < args.size(); ++i)
            if (args[i] == name) return args[i + 1];
        return std::nullopt;
    };
    if (cmd == "pending") return cmd_pending(opts, flag("--json"));
    if (cmd == "grants") return cmd_grants(opts, flag("--json"));
    if (cmd == "status") return cmd_status(opts, flag("--json"));
    if (cmd == "sessions") return cmd_sessions(opts, flag("--json"));
    if (cmd == "requests") return cmd_requests(opts, flag("--json"));
    if (cmd == "extend" && args.size() >= 2) return cmd_extend(opts, args[1], option("--reason").value_or(""));
    if (cmd == "done" && args.size() <= 2) return cmd_done(opts, args.size() == 2 ? args[1] : std::string());
    if (cmd == "approve" && args.size() == 2) return cmd_approve(opts, args[1]);
    if (cmd == "deny" && args.size() >= 2) {
        const auto reason = option("--reason");
        if (!reason) {
            std::fprintf(stderr, "jitgatectl: deny needs --reason TEXT (the requester sees it)\n");
            return k_exit_usage;
        }
        return cmd_deny(opts, args[1], *reason);
    }
    if (cmd == "revoke" && args.size() >= 2) return cmd_revoke(opts, args[1], option("--reason").value_or(""));
    if (cmd == "doctor") {
        std::string root = "/";
        bool json = false;
        for (std::size_t i = 1; i < args.size(); ++i) {
            if (args[i] == "--json") {
                json = true;
            } else if (args[i] == "--root" && i + 1 < args.size() && !args[i + 1].empty()) {
                root = args[++i];
            } else {
                usage(stderr);
                return k_exit_usage;
            }
        }
        return cmd_doctor(root, json, config_given, socket_given);
    }
    if (cmd == "check-config") return cmd_check_config(args.size() > 1 ? args[1] : config);
    if (cmd == "audit" && args.size() >= 2) {
        const std::string& sub = args[1];
        std::vector<std::string> positional;
        std::size_t count = 20;
        bool json = false;
        bool against_store = false;
        bool bad = false;
        for (std::size_t i = 2; i < args.size(); ++i) {
            if (args[i] == "-n" && i + 1 < args.size() && sub == "tail") {
                const std::string& v = args[++i];
                if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 9)
                    bad = true;
                else
                    count = std::stoul(v);
            } else if (args[i] == "--json" && sub == "status") {
                json = true;
            } else if (args[i] == "--against-store" && sub == "verify") {
                against_store = true;
            } else if (args[i].starts_with("-")) {
                bad = true;
            } else {
                positional.push_back(args[i]);
            }
        }
        if (!bad && sub == "verify" && against_store && positional.size() <= 1) {
            // The store's URL and this host's TLS settings come from the config: it must load.
            const auto loaded = jitgate::config::load_and_report(config, stderr);
            if (!loaded) return k_exit_refused;
            return cmd_verify_against_store(positional.empty() ? loaded->audit.spool_dir : positional[0],
                                            loaded->audit.store, loaded->host.name);
        }
        if (!bad && sub == "verify" && positional.size() <= 1)
            return cmd_verify(positional.empty() ? spool_dir_from(config) : positional[0]);
        if (!bad && sub == "tail" && positional.size() <= 1)
            return cmd_tail(positional.empty() ? spool_dir_from(config) : positional[0], count);
        if (!bad && sub == "status" && positional.empty()) return cmd_audit_status(opts, json);
    }
    usage(stderr);
    return k_exit_usage;
}

} // namespace

// SECURITY NOTE: every failure ends here with one line on stderr and a documented status
// (man/jitgatectl.8): nothing escapes as std::terminate, which would look like a crash to a
// script and say nothing to a person.
int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgatectl: %s\n", jitgate::text::printable(e.what()).c_str());
        return k_exit_refused;
    } catch (...) {
        std::fprintf(stderr, "jitgatectl: unexpected error (an exception of unknown type)\n");
        return k_exit_refused;
    }
}
