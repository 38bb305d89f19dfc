// jitgatectl — the command-line client of jitgated for approvers, admins and auditors.
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include "audit.hpp"
#include "config.hpp"
#include "jitgate/client.hpp"
#include "jitgate/text.hpp"

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
                 "  audit verify [FILE]            check the journal's hash chain (default: from the config)\n"
                 "  audit tail [-n N] [FILE]       show the last N events (default 20)\n"
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
        std::printf("%s  %s@%s  %s  %s ago, expires in %s  approvals %zu/%s (%s)%s\n", str(q, "id").c_str(),
                    str(q, "user").c_str(), str(q, "host").c_str(), str(q, "kind").c_str(),
                    age(q.value("age_s", 0)).c_str(), age(q.value("expires_in_s", 0)).c_str(),
                    q.value("approvers", Json::array()).size(), str(q, "approvals_needed").c_str(),
                    joined(q.value("approver_groups", Json::array())).c_str(),
                    q.value("waiting", false) ? "" : "  [filed; the requester is not waiting]");
        if (q.contains("display")) std::printf("    command: %s\n", str(q, "display").c_str());
        if (q.contains("submit_display")) std::printf("    typed:   %s\n", str(q, "submit_display").c_str());
        if (q.contains("runas")) std::printf("    run as:  %s   cwd: %s\n", str(q, "runas").c_str(), str(q, "cwd").c_str());
        if (q.contains("service")) std::printf("    service: %s   from: %s\n", str(q, "service").c_str(), str(q, "remote_host").c_str());
        if (q.contains("tty")) std::printf("    tty:     %s\n", str(q, "tty").c_str());
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
        std::printf("%s  %s  %s scope, rule %s, expires in %s, approved by %s (request %s)\n", str(g, "id").c_str(),
                    str(g, "user").c_str(), str(g, "scope").c_str(), str(g, "rule").c_str(),
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

std::string journal_from(const std::string& config_path) {
    auto r = jitgate::config::load_config(config_path);
    if (r.config) return r.config->audit.journal;
    return jitgate::config::Config{}.audit.journal;
}

int cmd_verify(const std::string& path) {
    const auto r = jitgate::audit::verify_journal(path);
    for (const auto& p : r.problems) std::printf("%s: %s\n", path.c_str(), p.c_str());
    if (!r.ok) {
        std::printf("%s: FAILED: the journal was altered or damaged (%zu problems)\n", path.c_str(), r.problems.size());
        return k_exit_refused;
    }
    std::printf("%s: OK: %llu events, seq %llu..%llu, hash chain intact\n", path.c_str(),
                static_cast<unsigned long long>(r.events), static_cast<unsigned long long>(r.first_seq),
                static_cast<unsigned long long>(r.last_seq));
    return 0;
}

int cmd_tail(const std::string& path, std::size_t count) {
    std::ifstream in(path);
    if (!in) {
        std::fprintf(stderr, "jitgatectl: cannot read %s\n", path.c_str());
        return k_exit_refused;
    }
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) {
        lines.push_back(std::move(line));
        if (lines.size() > count) lines.erase(lines.begin());
    }
    for (const auto& line : lines) {
        const Json e = Json::parse(line, nullptr, false);
        if (e.is_discarded() || !e.is_object()) {
            std::printf("(unparseable line: %s)\n", jitgate::text::escape_for_log(line.substr(0, 200)).c_str());
            continue;
        }
        std::string what = str(e, "type");
        std::string detail;
        if (e.contains("argv") && e["argv"].is_array()) {
            std::vector<std::string> argv;
            for (const auto& a : e["argv"]) argv.push_back(a.is_string() ? a.get<std::string>() : a.dump());
            detail += " " + jitgate::text::display_argv(argv);
        }
        if (e.contains("runas")) detail += " as " + str(e, "runas");
        for (const char* k : {"rule", "request_id", "grant_id", "reason", "ticket", "approvers", "denied_by", "exit_status",
                              "signal", "duration_ms", "message"}) {
            if (!e.contains(k)) continue;
            const auto v = e[k].is_array() ? joined(e[k]) : str(e, k);
            if (!v.empty()) detail += std::string("  ") + k + "=" + v;
        }
        std::printf("%6s %s %-25s %s%s\n", str(e, "seq").c_str(), str(e, "time").c_str(), what.c_str(),
                    str(e, "user").c_str(), jitgate::text::escape_for_log(detail).c_str());
    }
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
            const bool has_n = option("-n").has_value();
            const std::size_t file_index = has_n ? 4 : 2;
            const std::string file = args.size() > file_index ? args[file_index] : journal_from(config);
            if (args[1] == "verify") return cmd_verify(args.size() > 2 ? args[2] : journal_from(config));
            if (args[1] == "tail") return cmd_tail(file, has_n ? std::stoul(*option("-n")) : 20);
        }
        usage(stderr);
        return k_exit_usage;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgatectl: %s\n", e.what());
        return k_exit_refused;
    }
}
