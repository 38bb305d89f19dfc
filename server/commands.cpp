// server/commands.cpp — see commands.hpp.
#include "server/commands.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <map>
#include <optional>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"
#include "lib/file_io.hpp"
#include "server/config/config.hpp"
#include "server/http/http.hpp"
#include "server/report/archive.hpp"
#include "server/report/report.hpp"
#include "server/service/keys.hpp"
#include "server/service/protocol.hpp"

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

int grants_command(const std::vector<std::string>& args, store::Store& store, std::int64_t now,
                   const std::string& actor, void (*log)(const store::Event&), std::FILE* out, std::FILE* err) {
    return guarded("grants", err, [&] {
        const char* usage =
            "usage: jitgate-server [--config FILE] grants revoke --request ID [--host HOST] [--reason TEXT]\n";
        if (args.empty() || args[0] != "revoke") {
            std::fputs(usage, err);
            return 2;
        }
        const auto opts =
            options("grants revoke", {args.begin() + 1, args.end()}, {"--request", "--host", "--reason"}, err);
        if (!opts) return 2;
        const auto request = opts->find("--request");
        if (request == opts->end()) {
            std::fputs(usage, err);
            return 2;
        }
        const std::string& id = request->second;
        const auto reason_it = opts->find("--reason");
        const std::string reason = reason_it == opts->end() ? std::string() : reason_it->second;
        if (const std::optional<std::string> problem = jitgate::server::protocol::revoke_reason_problem(reason, 2048)) {
            std::fprintf(err, "jitgate-server grants revoke: --reason: %s\n", problem->c_str());
            return 2;
        }
        std::string host;
        if (const auto h = opts->find("--host"); h != opts->end()) {
            host = h->second;
        } else {
            const std::vector<std::string> hosts = store.hosts_of_request(id, 10);
            if (hosts.size() > 1) {
                std::string names;
                for (const std::string& name : hosts) names += (names.empty() ? "" : ", ") + text::escape_for_log(name);
                std::fprintf(err,
                             "jitgate-server grants revoke: request %s is held by several hosts (%s); give --host\n",
                             text::escape_for_log(id).c_str(), names.c_str());
                return 1;
            }
            if (!hosts.empty()) host = hosts.front();
        }
        if (host.empty()) {
            std::fprintf(err, "jitgate-server grants revoke: no request %s\n", text::escape_for_log(id).c_str());
            return 1;
        }
        const std::optional<store::Request> found = store.find(host, id);
        store::Revocation r;
        r.revoked_by = "admin:" + actor;
        r.via = "cli";
        r.reason = reason;
        r.revoked_at = now;
        store::Event event;
        event.at = now;
        event.type = "grant.revoked";
        event.host = host;
        event.request_id = id;
        event.actor = r.revoked_by;
        event.detail = nlohmann::json{
            {"grant_id", found ? found->grant_id : std::string()},
            {"reason", reason},
            {"via", "cli"}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        const store::RevokeResult result = store.revoke_grant(host, id, r, event);
        switch (result.outcome) {
        case store::RevokeOutcome::not_found:
            std::fprintf(err, "jitgate-server grants revoke: no request %s of host %s\n",
                         text::escape_for_log(id).c_str(), text::escape_for_log(host).c_str());
            return 1;
        case store::RevokeOutcome::not_approved:
            std::fprintf(err, "jitgate-server grants revoke: request %s has no grant to revoke: it is %s\n",
                         text::escape_for_log(id).c_str(),
                         std::string(store::to_string(result.request.status)).c_str());
            return 1;
        case store::RevokeOutcome::already_revoked:
            std::fprintf(out, "grant %s of request %s was revoked already, by %s; nothing changed\n",
                         text::escape_for_log(result.revocation.grant_id).c_str(), text::escape_for_log(id).c_str(),
                         text::escape_for_log(result.revocation.revoked_by).c_str());
            return 0;
        case store::RevokeOutcome::revoked:
            break;
        }
        if (log != nullptr) log(event);
        std::fprintf(out, "revoked grant %s of request %s; %s ends it at its next revocation poll\n",
                     text::escape_for_log(result.revocation.grant_id).c_str(), text::escape_for_log(id).c_str(),
                     text::escape_for_log(host).c_str());
        return 0;
    });
}

namespace {

// Writes `data` to `path` (mode 0600: the report names people and what they ran) through
// `path`.tmp renamed into place.
void write_file(const std::string& path, const std::string& data) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) throw Error(ErrorCode::io, tmp, std::strerror(errno));
    if (const int error = file_io::write_all(fd, data); error != 0) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw Error(ErrorCode::io, tmp, std::strerror(error));
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        ::unlink(tmp.c_str());
        throw Error(ErrorCode::io, tmp, std::strerror(errno));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int saved = errno;
        ::unlink(tmp.c_str());
        throw Error(ErrorCode::io, path, std::strerror(saved));
    }
}

} // namespace

int report_command(const std::vector<std::string>& args, const std::function<std::unique_ptr<store::Store>()>& open,
                   std::int64_t now, std::FILE* out, std::FILE* err) {
    return guarded("report", err, [&] {
        const char* usage = "usage: jitgate-server [--config FILE] report --from DATE --to DATE [--hosts PATTERN] "
                            "[--format html|pdf|csv|json] [--output FILE] [--silent-after SECONDS]\n"
                            "DATE: YYYY-MM-DD (UTC; --to includes that day) or an RFC 3339 time\n";
        const auto opts =
            options("report", args, {"--from", "--to", "--hosts", "--format", "--output", "--silent-after"}, err);
        if (!opts) return 2;
        const auto value = [&](const char* name, const char* fallback) {
            const auto it = opts->find(name);
            return it == opts->end() ? std::string(fallback) : it->second;
        };
        if (!opts->count("--from") || !opts->count("--to")) {
            std::fputs(usage, err);
            return 2;
        }
        report::Options o;
        o.now = now;
        const auto from = report::parse_time(value("--from", ""), false);
        const auto to = report::parse_time(value("--to", ""), true);
        for (const auto& [name, parsed] : {std::pair{"--from", from}, std::pair{"--to", to}}) {
            if (parsed) continue;
            std::fprintf(err,
                         "jitgate-server report: %s '%s' is neither a date (YYYY-MM-DD) nor an RFC 3339 time "
                         "(2026-11-29T08:00:00Z)\n",
                         name, text::escape_for_log(value(name, "")).c_str());
            return 2;
        }
        if (*from >= *to) {
            std::fprintf(err, "jitgate-server report: the period is empty: --from %s is not before --to %s\n",
                         report::rfc3339(*from).c_str(), report::rfc3339(*to).c_str());
            return 2;
        }
        o.from = *from;
        o.to = *to;
        o.hosts = value("--hosts", "*");
        if (o.hosts.empty()) {
            std::fputs("jitgate-server report: --hosts is empty (use '*' for every host)\n", err);
            return 2;
        }
        const std::string silent = value("--silent-after", "86400");
        const bool digits = !silent.empty() && silent.size() <= 12 &&
                            std::all_of(silent.begin(), silent.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (!digits) {
            std::fputs("jitgate-server report: --silent-after takes a number of seconds\n", err);
            return 2;
        }
        o.silent_after = std::stoll(silent);
        const auto format = report::format_from_string(value("--format", "html"));
        if (!format) {
            std::fprintf(err, "jitgate-server report: unknown --format '%s' (html, pdf, csv or json)\n",
                         text::escape_for_log(value("--format", "")).c_str());
            return 2;
        }
        const std::string output = value("--output", "");
        if (*format == report::Format::pdf && output.empty() && ::isatty(::fileno(out)) == 1) {
            std::fputs("jitgate-server report: a PDF is binary; give --output FILE or redirect stdout\n", err);
            return 2;
        }
        const std::unique_ptr<store::Store> store = open();
        const std::string document = report::render(report::build(*store, o), *format);
        if (!output.empty()) {
            write_file(output, document);
            return 0;
        }
        if (std::fwrite(document.data(), 1, document.size(), out) != document.size() || std::fflush(out) != 0) {
            std::fputs("jitgate-server report: writing the report failed\n", err);
            return 1;
        }
        return 0;
    });
}

int audit_command(const std::vector<std::string>& args, const std::function<AuditTarget()>& open, std::int64_t now,
                  const std::string& actor, void (*log)(const store::Event&), std::FILE* out, std::FILE* err) {
    return guarded("audit", err, [&] {
        const char* usage =
            "usage: jitgate-server [--config FILE] audit export --month YYYY-MM --output DIR\n"
            "       jitgate-server audit verify-archive [--expect-sha256 HEX] DIR [[--expect-sha256 HEX] DIR...]\n"
            "       jitgate-server [--config FILE] audit prune --before YYYY-MM --archive DIR [--archive DIR...] "
            "[--dry-run]\n";
        if (args.empty()) {
            std::fputs(usage, err);
            return 2;
        }
        const std::string& sub = args[0];
        std::vector<std::string> rest(args.begin() + 1, args.end());
        if (sub == "verify-archive") {
            // Each --expect-sha256 binds to the directory after it.
            std::vector<std::string> dirs;
            std::map<std::size_t, std::string> expected; // index in dirs -> the SHA-256 its manifest must have
            for (std::size_t i = 0; i < rest.size(); ++i) {
                if (rest[i] != "--expect-sha256") {
                    dirs.push_back(rest[i]);
                    continue;
                }
                if (i + 2 >= rest.size() || rest[i + 2] == "--expect-sha256") {
                    std::fputs("jitgate-server audit verify-archive: --expect-sha256 needs a value and then the "
                               "archive directory it is for\n",
                               err);
                    return 2;
                }
                std::string hex = rest[i + 1];
                std::transform(hex.begin(), hex.end(), hex.begin(),
                               [](char ch) { return ch >= 'A' && ch <= 'F' ? static_cast<char>(ch - 'A' + 'a') : ch; });
                if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
                    std::fprintf(err,
                                 "jitgate-server audit verify-archive: --expect-sha256 '%s' is not a SHA-256 (64 hex "
                                 "digits)\n",
                                 text::escape_for_log(rest[i + 1]).c_str());
                    return 2;
                }
                expected[dirs.size()] = hex;
                ++i;
            }
            if (dirs.empty()) {
                std::fputs(usage, err);
                return 2;
            }
            int status = 0;
            std::vector<report::ArchiveCheck> checks = report::verify_archives(dirs);
            for (std::size_t i = 0; i < checks.size(); ++i) {
                report::ArchiveCheck& c = checks[i];
                const auto want = expected.find(i);
                if (want == expected.end())
                    c.notes.push_back("the manifest SHA-256 was not compared with a trusted value: compare it with the "
                                      "store's record (audit_archives) or the export's output, or give "
                                      "--expect-sha256");
                else if (want->second != c.manifest_sha256)
                    c.problems.push_back("the manifest SHA-256 is " + c.manifest_sha256 + ", expected " + want->second +
                                         " (--expect-sha256): this is not the archive that was exported");
            }
            for (const report::ArchiveCheck& c : checks) {
                for (const std::string& note : c.notes)
                    std::fprintf(out, "%s: note: %s\n", c.dir.c_str(), text::escape_for_log(note).c_str());
                for (const std::string& problem : c.problems)
                    std::fprintf(out, "%s: PROBLEM: %s\n", c.dir.c_str(), text::escape_for_log(problem).c_str());
                std::fprintf(out, "%s: %s: month %s, %lld hosts, %lld events, manifest SHA-256 %s\n", c.dir.c_str(),
                             c.ok() ? "OK" : "FAILED", c.month.empty() ? "?" : c.month.c_str(),
                             static_cast<long long>(c.hosts), static_cast<long long>(c.events),
                             c.manifest_sha256.c_str());
                if (!c.ok()) status = 1;
            }
            return status;
        }
        const bool dry_run = std::find(rest.begin(), rest.end(), "--dry-run") != rest.end();
        if (sub == "prune" && dry_run) rest.erase(std::find(rest.begin(), rest.end(), "--dry-run"));
        // --archive may be given once per month: taken out before the single-valued options.
        std::vector<std::string> archives;
        if (sub == "prune") {
            std::vector<std::string> others;
            for (std::size_t i = 0; i < rest.size(); ++i) {
                if (rest[i] != "--archive") {
                    others.push_back(rest[i]);
                    continue;
                }
                if (i + 1 >= rest.size()) {
                    std::fputs("jitgate-server audit prune: --archive needs a value\n", err);
                    return 2;
                }
                archives.push_back(rest[++i]);
            }
            rest = std::move(others);
        }
        const char* month_option = sub == "export" ? "--month" : "--before";
        if (sub != "export" && sub != "prune") {
            std::fputs(usage, err);
            return 2;
        }
        const auto opts = sub == "export" ? options("audit export", rest, {"--month", "--output"}, err)
                                          : options("audit prune", rest, {"--before"}, err);
        if (!opts) return 2;
        const auto month_text = opts->find(month_option);
        if (month_text == opts->end() || (sub == "export" && !opts->count("--output")) ||
            (sub == "prune" && archives.empty())) {
            std::fputs(usage, err);
            return 2;
        }
        const std::optional<store::Month> month = store::parse_month(month_text->second);
        if (!month) {
            std::fprintf(err, "jitgate-server audit %s: %s '%s' is not a month (YYYY-MM, UTC)\n", sub.c_str(),
                         month_option, text::escape_for_log(month_text->second).c_str());
            return 2;
        }
        const AuditTarget target = open();
        store::Store& store = *target.store;
        if (sub == "export") {
            const std::string& dir = opts->at("--output");
            const report::ExportResult r = report::export_month(store, *month, dir, now, actor);
            std::fprintf(out, "wrote %s: month %s, %zu hosts, %lld events, manifest SHA-256 %s%s\n", dir.c_str(),
                         month->name.c_str(), r.manifest.hosts.size(), static_cast<long long>(r.manifest.events),
                         r.manifest_sha256.c_str(), r.recorded_before ? " (the same as the recorded export)" : "");
            return 0;
        }
        const std::vector<report::PruneMonth> months =
            report::prune_before(store, *month, target.retention_months, now, archives, actor, dry_run, log);
        if (months.empty()) std::fprintf(out, "nothing to prune before %s\n", month->name.c_str());
        for (const report::PruneMonth& m : months)
            std::fprintf(out, "%s %s: %lld events of %lld hosts (archive %s verified, manifest SHA-256 %s)\n",
                         dry_run ? "would prune" : "pruned", m.month.name.c_str(), static_cast<long long>(m.events),
                         static_cast<long long>(m.hosts), text::escape_for_log(m.archive).c_str(),
                         m.manifest_sha256.c_str());
        return 0;
    });
}

} // namespace jitgate::server
