// jitgatectl — the command-line client of jitgated for approvers, admins and auditors.
#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <fstream>
#include <string>
#include <vector>

#include "daemon/audit/spool.hpp"
#include "daemon/config/config.hpp"
#include "jitgate/client.hpp"
#include "jitgate/text.hpp"
#include "lib/audit_chain.hpp"

namespace {

using Json = nlohmann::json;
namespace client = jitgate::client;

constexpr int k_exit_refused = 1;
constexpr int k_exit_usage = 2;
constexpr int k_exit_unreachable = 3;
constexpr const char* k_default_config = "/etc/jitgate/jitgate.yaml";

void usage(std::FILE* out) {
    std::fprintf(out,
                 "usage: jitgatectl [--socket PATH] [--config FILE] COMMAND\n"
                 "  pending [--json]               requests waiting for approval\n"
                 "  approve ID                     approve a request (you must be an approver, not the requester)\n"
                 "  deny ID --reason TEXT          deny a request; the requester sees the reason\n"
                 "  grants [--json]                live grants\n"
                 "  revoke GRANT_ID [--reason T]   end a grant now\n"
                 "  status [--json]                daemon status\n"
                 "  audit verify [DIR|FILE]        check the spool's hash chain and seq gaps (default: the config's spool)\n"
                 "  audit tail [-n N] [DIR|FILE]   show the last N events (default 20)\n"
                 "  audit status [--json]          the audit pipeline: spooled, shipped, oldest unsent, last error\n"
                 "  check-config [FILE]            validate a config file\n"
                 "Exit status: 0 ok, 1 refused or failed, 2 usage, 3 daemon unreachable.\n");
}

std::string age(std::int64_t seconds) {
    if (seconds < 0) seconds = 0;
    if (seconds < 120) return std::to_string(seconds) + "s";
    if (seconds < 7200) return std::to_string(seconds / 60) + "m";
    return std::to_string(seconds / 3600) + "h";
}

std::string str(const Json& j, const char* key) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return {};
    return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string joined(const Json& arr) {
    std::string out;
    if (!arr.is_array()) return out;
    for (const auto& x : arr) out += (out.empty() ? "" : ", ") + (x.is_string() ? x.get<std::string>() : x.dump());
    return out;
}

int talk(const client::Options& opts, const Json& request, std::vector<Json>& replies) {
    const auto s = client::request(opts, request, replies);
    if (s.ok()) return 0;
    std::fprintf(stderr, "jitgatectl: %s\n", s.detail.c_str());
    return s.code == jitgate::ErrorCode::daemon_unreachable ? k_exit_unreachable : k_exit_refused;
}

// Prints the daemon's error, if the last reply is one. Returns the exit code.
int finish(const std::vector<Json>& replies) {
    if (!replies.empty() && str(replies.back(), "type") == "error") {
        std::fprintf(stderr, "jitgatectl: %s\n", str(replies.back(), "message").c_str());
        return k_exit_refused;
    }
    return 0;
}

int cmd_pending(const client::Options& opts, bool json) {
    std::vector<Json> replies;
    if (int rc = talk(opts, {{"type", "pending"}}, replies)) return rc;
    if (int rc = finish(replies)) return rc;
    std::size_t n = 0;
    for (const auto& r : replies) {
        if (str(r, "type") != "item") continue;
        const auto& q = r["item"];
        ++n;
        if (json) {
            std::printf("%s\n", q.dump().c_str());
            continue;
        }
        // Who asks first; the account they want after the kind when it is another ("as root").
        const std::string asker = q.contains("requester") ? str(q, "requester") : str(q, "user");
        const std::string account = str(q, "user") != asker ? "  as " + str(q, "user") : std::string();
        std::printf("%s  %s@%s  %s%s  %s ago, expires in %s  approvals %zu/%s (%s)%s\n", str(q, "id").c_str(),
                    asker.c_str(), str(q, "host").c_str(), str(q, "kind").c_str(), account.c_str(),
                    age(q.value("age_s", 0)).c_str(), age(q.value("expires_in_s", 0)).c_str(),
                    q.value("approvers", Json::array()).size(), str(q, "approvals_needed").c_str(),
                    joined(q.value("approver_groups", Json::array())).c_str(),
                    q.value("waiting", false) ? "" : "  [filed; the requester is not waiting]");
        if (q.contains("display")) std::printf("    command: %s\n", str(q, "display").c_str());
        if (q.contains("submit_display")) std::printf("    typed:   %s\n", str(q, "submit_display").c_str());
        if (q.contains("program")) std::printf("    program: %s\n", str(q, "program").c_str());
        if (q.contains("runas")) {
            // The group, directory and root the command gets, as sudo will use them.
            std::string group = q.contains("runas_group") ? ":" + str(q, "runas_group") : "";
            std::printf("    run as:  %s%s   cwd: %s%s%s\n", str(q, "runas").c_str(), group.c_str(),
                        str(q, q.contains("run_cwd") ? "run_cwd" : "cwd").c_str(), q.contains("chroot") ? "   chroot: " : "",
                        q.contains("chroot") ? str(q, "chroot").c_str() : "");
        }
        if (q.contains("env")) std::printf("    env:     %s\n", joined(q["env"]).c_str());
        if (q.contains("env_code_loading"))
            std::printf("    WARNING: the environment sets loader/interpreter variables: %s\n",
                        joined(q["env_code_loading"]).c_str());
        if (q.contains("service")) std::printf("    service: %s   from: %s\n", str(q, "service").c_str(), str(q, "remote_host").c_str());
        if (q.contains("tty")) std::printf("    tty:     %s\n", str(q, "tty").c_str());
        if (q.contains("login_user") && str(q, "login_user") != asker)
            std::printf("    session: of %s (login uid %s)\n", str(q, "login_user").c_str(), str(q, "login_uid").c_str());
        std::printf("    rule:    %s   reason: %s   ticket: %s\n", str(q, "rule").c_str(),
                    str(q, "reason").empty() ? "-" : str(q, "reason").c_str(),
                    str(q, "ticket").empty() ? "-" : str(q, "ticket").c_str());
        if (!q.value("approvers", Json::array()).empty())
            std::printf("    approved so far by: %s\n", joined(q["approvers"]).c_str());
    }
    if (!json && n == 0) std::printf("no pending requests\n");
    return 0;
}

int cmd_grants(const client::Options& opts, bool json) {
    std::vector<Json> replies;
    if (int rc = talk(opts, {{"type", "grants"}}, replies)) return rc;
    if (int rc = finish(replies)) return rc;
    std::size_t n = 0;
    for (const auto& r : replies) {
        if (str(r, "type") != "item") continue;
        const auto& g = r["item"];
        ++n;
        if (json) {
            std::printf("%s\n", g.dump().c_str());
            continue;
        }
        const std::string whose = g.contains("requester") && str(g, "requester") != str(g, "user")
                                      ? str(g, "user") + " (for " + str(g, "requester") + " only)"
                                      : str(g, "user");
        std::printf("%s  %s  %s scope, rule %s, expires in %s, approved by %s (request %s)\n", str(g, "id").c_str(),
                    whose.c_str(), str(g, "scope").c_str(), str(g, "rule").c_str(),
                    age(g.value("expires_in_s", 0)).c_str(), joined(g.value("approvers", Json::array())).c_str(),
                    str(g, "request_id").c_str());
        if (g.contains("display")) std::printf("    command: %s   run as: %s\n", str(g, "display").c_str(), str(g, "runas").c_str());
    }
    if (!json && n == 0) std::printf("no live grants\n");
    return 0;
}

int cmd_simple(const client::Options& opts, const Json& request) {
    std::vector<Json> replies;
    if (int rc = talk(opts, request, replies)) return rc;
    if (int rc = finish(replies)) return rc;
    if (!replies.empty()) std::printf("%s\n", str(replies.back(), "message").c_str());
    return 0;
}

int cmd_status(const client::Options& opts, bool json) {
    std::vector<Json> replies;
    if (int rc = talk(opts, {{"type", "status"}}, replies)) return rc;
    if (int rc = finish(replies)) return rc;
    const Json s = replies.back().value("status", Json::object());
    if (json) {
        std::printf("%s\n", s.dump().c_str());
        return 0;
    }
    for (const auto& [k, v] : s.items()) std::printf("%-16s %s\n", k.c_str(), v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
    return 0;
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

bool is_directory(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Text from the daemon or a file, for the terminal: as is when printable, else escaped.
std::string safe(const std::string& s) {
    bool plain = jitgate::text::is_valid_utf8(s);
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F) plain = false;
    }
    return plain ? s : jitgate::text::escape_for_log(s);
}

std::string human_bytes(std::uint64_t n) {
    static constexpr std::array<const char*, 5> k_units = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(n);
    std::size_t u = 0;
    while (v >= 1024.0 && u + 1 < k_units.size()) {
        v /= 1024.0;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, k_units[u]);
    return buf;
}

int cmd_verify(const std::string& path) {
    const bool spool = is_directory(path);
    const auto r = spool ? jitgate::audit::verify_spool(path) : jitgate::audit::verify_journal(path);
    const std::string shown = jitgate::text::escape_for_log(path);
    for (const auto& n : r.notes) std::printf("%s: note: %s\n", shown.c_str(), safe(n).c_str());
    for (const auto& p : r.problems) std::printf("%s: %s\n", shown.c_str(), safe(p).c_str());
    if (!r.ok) {
        std::printf("%s: FAILED: the audit trail was altered or damaged (%zu problems)\n", shown.c_str(), r.problems.size());
        return k_exit_refused;
    }
    if (r.events == 0) {
        std::printf("%s: OK: no events%s\n", shown.c_str(),
                    r.last_seq > 0 ? (" (everything up to seq " + std::to_string(r.last_seq) + " was shipped and deleted)").c_str() : "");
        return 0;
    }
    std::printf("%s: OK: %llu events%s, seq %llu..%llu, hash chain intact, no seq gap\n", shown.c_str(),
                static_cast<unsigned long long>(r.events),
                spool ? (" in " + std::to_string(r.segments) + (r.segments == 1 ? " segment" : " segments")).c_str() : "",
                static_cast<unsigned long long>(r.first_seq), static_cast<unsigned long long>(r.last_seq));
    return 0;
}

void print_event(const std::string& line) {
    const Json e = Json::parse(line, nullptr, false);
    if (e.is_discarded() || !e.is_object()) {
        std::printf("(unparseable line: %s)\n", jitgate::text::escape_for_log(line.substr(0, 200)).c_str());
        return;
    }
    std::string detail;
    if (e.contains("argv") && e["argv"].is_array()) {
        std::vector<std::string> argv;
        for (const auto& a : e["argv"]) argv.push_back(a.is_string() ? a.get<std::string>() : a.dump());
        detail += " " + jitgate::text::display_argv(argv);
    }
    if (e.contains("runas")) detail += " as " + str(e, "runas");
    // su and shared accounts: who asked, when it is not the account (docs/pam.md, "Who asks")
    if (e.contains("requester") && str(e, "requester") != str(e, "user")) detail += "  requester=" + str(e, "requester");
    if (e.contains("login_user") && str(e, "login_user") != str(e, "requester")) detail += "  login_user=" + str(e, "login_user");
    for (const char* k : {"rule", "request_id", "grant_id", "reason", "ticket", "approvers", "denied_by", "exit_status",
                          "signal", "duration_ms", "message"}) {
        if (!e.contains(k)) continue;
        const auto v = e[k].is_array() ? joined(e[k]) : str(e, k);
        if (!v.empty()) detail += std::string("  ") + k + "=" + v;
    }
    std::printf("%6s %s %-25s %s%s\n", jitgate::text::escape_for_log(str(e, "seq")).c_str(),
                jitgate::text::escape_for_log(str(e, "time")).c_str(), jitgate::text::escape_for_log(str(e, "type")).c_str(),
                jitgate::text::escape_for_log(str(e, "user")).c_str(), jitgate::text::escape_for_log(detail).c_str());
}

int cmd_tail(const std::string& path, std::size_t count) {
    std::vector<std::string> lines;
    if (is_directory(path)) {
        try {
            lines = jitgate::audit::spool::tail_lines(path, count);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "jitgatectl: %s\n", safe(e.what()).c_str());
            return k_exit_refused;
        }
    } else {
        std::ifstream in(path);
        if (!in) {
            std::fprintf(stderr, "jitgatectl: cannot read %s\n", jitgate::text::escape_for_log(path).c_str());
            return k_exit_refused;
        }
        std::deque<std::string> last;
        for (std::string line; std::getline(in, line);) {
            last.push_back(std::move(line));
            if (last.size() > count) last.pop_front();
        }
        lines.assign(last.begin(), last.end());
    }
    for (const auto& line : lines) print_event(line);
    return 0;
}

int cmd_audit_status(const client::Options& opts, bool json) {
    std::vector<Json> replies;
    if (int rc = talk(opts, {{"type", "status"}}, replies)) return rc;
    if (int rc = finish(replies)) return rc;
    const Json a = replies.back().value("status", Json::object()).value("audit", Json());
    if (!a.is_object()) {
        std::fprintf(stderr, "jitgatectl: the daemon's status has no \"audit\" part (an older jitgated?)\n");
        return k_exit_refused;
    }
    if (json) {
        std::printf("%s\n", a.dump().c_str());
        return 0;
    }
    const auto num = [&](const char* k) { return a.value(k, std::uint64_t{0}); };
    const auto text = [&](const char* k) { return safe(str(a, k)); };
    std::printf("spool:        %s: %llu events in %llu segment(s), %s of %s%s\n", text("spool_dir").c_str(),
                static_cast<unsigned long long>(num("spooled_events")), static_cast<unsigned long long>(num("segments")),
                human_bytes(num("spool_bytes")).c_str(), human_bytes(num("spool_max_bytes")).c_str(),
                a.value("spool_full", false) ? "  FULL: privileged actions are denied" : "");
    std::printf("seq:          last %llu, durable %llu\n", static_cast<unsigned long long>(num("last_seq")),
                static_cast<unsigned long long>(num("durable_seq")));
    if (str(a, "store").empty()) {
        std::printf("store:        none configured (events stay in the spool and are never deleted)\n");
        return 0;
    }
    std::printf("store:        %s (%s)%s\n", text("store").c_str(), text("format").c_str(),
                a.value("running", true) ? "" : "  [shipper not running]");
    std::printf("shipped:      up to seq %llu; this run %llu events in %llu batches; last success %s\n",
                static_cast<unsigned long long>(num("shipped_seq")), static_cast<unsigned long long>(num("shipped_this_run")),
                static_cast<unsigned long long>(num("batches_this_run")),
                str(a, "last_success_time").empty() ? "never (this run)" : text("last_success_time").c_str());
    if (num("unsent_events") == 0) std::printf("unsent:       none\n");
    else
        std::printf("unsent:       %llu events, oldest from %s\n", static_cast<unsigned long long>(num("unsent_events")),
                    str(a, "oldest_unsent_time").empty() ? "?" : text("oldest_unsent_time").c_str());
    if (str(a, "last_error").empty()) std::printf("last error:   none\n");
    else
        std::printf("last error:   %s (at %s; %llu failures in a row)\n", text("last_error").c_str(),
                    text("last_error_time").c_str(), static_cast<unsigned long long>(num("consecutive_failures")));
    return 0;
}

int cmd_check_config(const std::string& path) {
    auto r = jitgate::config::load_config(path);
    if (auto p = jitgate::config::check_file_security(path)) r.problems.push_back(*p);
    for (const auto& p : r.problems) std::fprintf(stderr, "%s\n", p.to_string().c_str());
    if (!r.problems.empty()) return k_exit_refused;
    std::printf("%s: OK (%zu rules)\n", path.c_str(), r.config->rules.size());
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        client::Options opts;
        if (const char* env = std::getenv("JITGATE_SOCKET"); env != nullptr && *env != '\0') opts.socket_path = env;
        std::string config = k_default_config;
        std::vector<std::string> args;
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            if (a == "--socket" && i + 1 < argc) opts.socket_path = argv[++i];
            else if (a == "--config" && i + 1 < argc) config = argv[++i];
            else if (a == "--help" || a == "-h") {
                usage(stdout);
                return 0;
            } else args.push_back(a);
        }
        if (args.empty()) {
            usage(stderr);
            return k_exit_usage;
        }
        const std::string cmd = args[0];
        const auto flag = [&](const char* name) {
            for (const auto& a : args) if (a == name) return true;
            return false;
        };
        const auto option = [&](const char* name) -> std::optional<std::string> {
            for (std::size_t i = 0; i + 1 < args.size(); ++i) if (args[i] == name) return args[i + 1];
            return std::nullopt;
        };
        if (cmd == "pending") return cmd_pending(opts, flag("--json"));
        if (cmd == "grants") return cmd_grants(opts, flag("--json"));
        if (cmd == "status") return cmd_status(opts, flag("--json"));
        if (cmd == "approve" && args.size() == 2) return cmd_simple(opts, {{"type", "approve"}, {"id", args[1]}});
        if (cmd == "deny" && args.size() >= 2) {
            const auto reason = option("--reason");
            if (!reason) {
                std::fprintf(stderr, "jitgatectl: deny needs --reason TEXT (the requester sees it)\n");
                return k_exit_usage;
            }
            return cmd_simple(opts, {{"type", "deny"}, {"id", args[1]}, {"reason", *reason}});
        }
        if (cmd == "revoke" && args.size() >= 2)
            return cmd_simple(opts, {{"type", "revoke"}, {"id", args[1]}, {"reason", option("--reason").value_or("")}});
        if (cmd == "check-config") return cmd_check_config(args.size() > 1 ? args[1] : config);
        if (cmd == "audit" && args.size() >= 2) {
            const std::string& sub = args[1];
            std::vector<std::string> positional;
            std::size_t count = 20;
            bool json = false;
            bool bad = false;
            for (std::size_t i = 2; i < args.size(); ++i) {
                if (args[i] == "-n" && i + 1 < args.size() && sub == "tail") {
                    const std::string& v = args[++i];
                    if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 9) bad = true;
                    else count = std::stoul(v);
                } else if (args[i] == "--json" && sub == "status") {
                    json = true;
                } else if (args[i].starts_with("-")) {
                    bad = true;
                } else {
                    positional.push_back(args[i]);
                }
            }
            if (!bad && sub == "verify" && positional.size() <= 1)
                return cmd_verify(positional.empty() ? spool_dir_from(config) : positional[0]);
            if (!bad && sub == "tail" && positional.size() <= 1)
                return cmd_tail(positional.empty() ? spool_dir_from(config) : positional[0], count);
            if (!bad && sub == "status" && positional.empty()) return cmd_audit_status(opts, json);
        }
        usage(stderr);
        return k_exit_usage;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgatectl: %s\n", e.what());
        return k_exit_refused;
    }
}
