// cli/output.cpp — how jitgatectl shows things on a terminal (see output.hpp).
#include "cli/output.hpp"

#include <array>
#include <cstdio>
#include <vector>

#include "jitgate/text.hpp"

namespace jitgate::cli {

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

void print_event(const std::string& line) {
    const Json e = Json::parse(line, nullptr, false);
    if (e.is_discarded() || !e.is_object()) {
        std::printf("(unparseable line: %s)\n", text::escape_for_log(line.substr(0, 200)).c_str());
        return;
    }
    std::string detail;
    if (e.contains("argv") && e["argv"].is_array()) {
        std::vector<std::string> argv;
        for (const auto& a : e["argv"]) argv.push_back(a.is_string() ? a.get<std::string>() : a.dump());
        detail += " " + text::display_argv(argv);
    }
    if (e.contains("runas")) detail += " as " + str(e, "runas");
    // su and shared accounts: who asked, when it is not the account (docs/pam.md, "Who asks")
    if (e.contains("requester") && str(e, "requester") != str(e, "user"))
        detail += "  requester=" + str(e, "requester");
    if (e.contains("login_user") && str(e, "login_user") != str(e, "requester"))
        detail += "  login_user=" + str(e, "login_user");
    for (const char* k : {"rule", "request_id", "grant_id", "reason", "ticket", "approvers", "denied_by", "exit_status",
                          "window", "condition", "signal", "duration_ms", "message"}) {
        if (!e.contains(k)) continue;
        const auto v = e[k].is_array() ? joined(e[k]) : str(e, k);
        if (!v.empty()) detail += std::string("  ") + k + "=" + v;
    }
    std::printf("%6s %s %-25s %s%s\n", text::escape_for_log(str(e, "seq")).c_str(),
                text::escape_for_log(str(e, "time")).c_str(), text::escape_for_log(str(e, "type")).c_str(),
                text::escape_for_log(str(e, "user")).c_str(), text::escape_for_log(detail).c_str());
}

} // namespace jitgate::cli
