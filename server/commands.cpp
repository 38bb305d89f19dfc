// server/commands.cpp — see commands.hpp.
#include "server/commands.hpp"

#include <unistd.h>

#include <algorithm>
#include <exception>
#include <map>
#include <optional>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"
#include "server/config/config.hpp"
#include "server/http/http.hpp"
#include "server/service/keys.hpp"

#include <nlohmann/json.hpp>

namespace jitgate::server {
namespace {

// "--name value" pairs; nullopt (after printing why) on anything else.
std::optional<std::map<std::string, std::string>> options(const char* command, const std::vector<std::string>& args,
                                                          const std::vector<std::string>& known, std::FILE* err) {
    std::map<std::string, std::string> out;
    for (std::size_t i = 0; i < args.size(); i += 2) {
        const std::string& name = args[i];
        if (std::find(known.begin(), known.end(), name) == known.end()) {
            std::fprintf(err, "jitgate-server %s: unknown argument '%s'\n", command,
                         text::escape_for_log(name).c_str());
            return std::nullopt;
        }
        if (i + 1 >= args.size()) {
            std::fprintf(err, "jitgate-server %s: %s needs a value\n", command, name.c_str());
            return std::nullopt;
        }
        if (!out.emplace(name, args[i + 1]).second) {
            std::fprintf(err, "jitgate-server %s: %s is given twice\n", command, name.c_str());
            return std::nullopt;
        }
    }
    return out;
}

template <typename Body>
int guarded(const char* command, std::FILE* err, Body body) noexcept {
    try {
        return body();
    } catch (const std::exception& e) {
        std::fprintf(err, "jitgate-server %s: %s\n", command, text::escape_for_log(e.what()).c_str());
    } catch (...) {
        std::fprintf(err, "jitgate-server %s: unknown error\n", command);
    }
    return 1;
}

} // namespace

int keygen_command(const std::vector<std::string>& args, std::FILE* out, std::FILE* err) {
    return guarded("keygen", err, [&] {
        const auto opts = options("keygen", args, {"--kid", "--dir"}, err);
        if (!opts) return 2;
        const auto kid = opts->find("--kid");
        if (kid == opts->end()) {
            std::fputs("usage: jitgate-server keygen --kid KID [--dir DIR]\n", err);
            return 2;
        }
        const auto dir = opts->find("--dir");
        const service::KeygenResult r =
            service::keygen(dir == opts->end() ? k_default_key_dir : dir->second, kid->second);
        std::fprintf(out,
                     "wrote %s (the private key, mode 0600; keep it on the server)\n"
                     "wrote %s (the public key; list it on every host under approval.service.public_keys as %s)\n%s",
                     r.private_key.c_str(), r.public_key.c_str(), kid->second.c_str(), r.public_pem.c_str());
        return 0;
    });
}

int check_config_command(const std::vector<std::string>& args, std::FILE* out, std::FILE* err) {
    return guarded("check-config", err, [&] {
        const auto opts = options("check-config", args, {"--config"}, err);
        if (!opts) return 2;
        const auto it = opts->find("--config");
        const std::string path = it == opts->end() ? k_default_config : it->second;
        const unsigned uid = geteuid();
        const config::LoadResult result = config::load(path, uid);
        for (const auto& p : result.problems) std::fprintf(out, "%s\n", p.to_string().c_str());
        if (!result.problems.empty()) return 1;
        // The files are safe; now their content: each private key must be an Ed25519 key.
        try {
            service::KeySet::load(result.config.signing, uid);
            // The hosts' CRL: parsed, from a CA of client_ca, and not stale (serve refuses the same).
            const auto& hosts = result.config.hosts;
            if (!hosts.client_crl.empty())
                http::check_client_crl({hosts.cert, hosts.key, hosts.client_ca, hosts.client_crl});
        } catch (const Error& e) {
            std::fprintf(out, "%s: %s\n", path.c_str(), text::escape_for_log(e.what()).c_str());
            return 1;
        }
        std::fputs("config OK\n", out);
        return 0;
    });
}

int sessions_command(const std::vector<std::string>& args, store::Store& store, std::int64_t now,
                     const std::string& actor, void (*log)(const store::Event&), std::FILE* out, std::FILE* err) {
    return guarded("sessions", err, [&] {
        const char* usage = "usage: jitgate-server [--config FILE] sessions revoke --user NAME\n";
        if (args.empty() || args[0] != "revoke") {
            std::fputs(usage, err);
            return 2;
        }
        const auto opts = options("sessions revoke", {args.begin() + 1, args.end()}, {"--user"}, err);
        if (!opts) return 2;
        const auto user = opts->find("--user");
        if (user == opts->end()) {
            std::fputs(usage, err);
            return 2;
        }
        const std::string& name = user->second;
        const bool printable = std::none_of(name.begin(), name.end(),
                                            [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
        if (name.empty() || name.size() > 256 || !printable || !text::is_valid_utf8(name)) {
            std::fprintf(err, "jitgate-server sessions revoke: '%s' is not a user name\n",
                         text::escape_for_log(name).c_str());
            return 2;
        }
        // The deletion and its audit event are one transaction: the event exists exactly when
        // sessions were ended.
        store::Event event;
        const std::size_t ended = store.delete_sessions_of(name, [&](std::size_t count) {
            event.at = now;
            event.type = "sessions.revoked";
            event.actor = "admin:" + actor;
            event.detail = nlohmann::json{{"user", name}, {"sessions", count}}.dump(
                -1, ' ', false, nlohmann::json::error_handler_t::replace);
            return event;
        });
        if (ended == 0) {
            std::fprintf(out,
                         "no sessions for %s; nothing was ended (user names are matched exactly, "
                         "case-sensitively)\n",
                         text::escape_for_log(name).c_str());
            return 0;
        }
        if (log != nullptr) log(event);
        std::fprintf(out, "ended %s of %s\n", text::plural(ended, "session", "sessions").c_str(),
                     text::escape_for_log(name).c_str());
        return 0;
    });
}

} // namespace jitgate::server
