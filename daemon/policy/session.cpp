// daemon/policy/session.cpp — who asks, what an approval covers, and how text is shown.
#include "daemon/policy/session.hpp"

#include "jitgate/text.hpp"

namespace jitgate::broker {
namespace {

// Each listed request fits in a frame, however hostile its argv: display fields are cut.
constexpr std::size_t k_max_display = 4096;

} // namespace

const std::shared_ptr<const config::Rule>& no_rule() {
    static const auto empty = std::make_shared<const config::Rule>();
    return empty;
}

std::shared_ptr<CheckSession> share_session(CheckSession& s) {
    if (auto owned = s.weak_from_this().lock()) return owned;
    return std::make_shared<CheckSession>(s);
}

std::int64_t requester_uid(const CheckSession& s) {
    return s.requester.uid >= 0 ? s.requester.uid : s.request.uid;
}
std::string requester_name(const CheckSession& s) {
    return s.requester.uid >= 0 ? s.requester.name : s.request.user;
}

config::Scope scope_of(const CheckSession& s) {
    return s.request.kind == "login" ? config::Scope::login : s.rule->scope;
}

std::string esc(const std::string& s) {
    return text::escape_for_log(s);
}

Json escaped_argv(const std::vector<std::string>& argv) {
    Json out = Json::array();
    for (const auto& a : argv) out.push_back(text::escape_for_log(a));
    return out;
}

std::string cut(std::string s) {
    if (s.size() <= k_max_display) return s;
    // Whole characters only (text::utf8_prefix), then how long the field was.
    return std::string(text::utf8_prefix(s, k_max_display)) + "...[" + std::to_string(s.size()) + " bytes]";
}

std::string display_command(const std::string& command, std::vector<std::string> argv) {
    if (argv.empty())
        argv.push_back(command);
    else if (!command.empty())
        argv[0] = command;
    return text::display_argv(argv);
}

std::string join_names(const std::vector<std::string>& names) {
    std::string out;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i > 0) out += i + 1 == names.size() ? " and " : ", ";
        out += names[i];
    }
    return out;
}

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return {};
    const auto e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

} // namespace jitgate::broker
