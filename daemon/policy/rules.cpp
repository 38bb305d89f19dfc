// daemon/policy/rules.cpp — first-match rule evaluation (docs/config.md, "How rules match").
//
// Everything here is a pure function of the config and the facts (and of the caller's file
// identity lookup): no I/O of its own, no state, so the same request meets the same rule.
#include "daemon/policy/rules.hpp"

#include <arpa/inet.h>
#include <fnmatch.h>
#include <strings.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>
#include <string_view>

#include "lib/time_windows.hpp"

namespace jitgate::rules {

namespace {

bool contains(const std::vector<std::string>& list, std::string_view value) {
    return std::find(list.begin(), list.end(), value) != list.end();
}

// An empty criterion means "any". A request without a value for a listed criterion (a login
// has no run-as user) never matches it: a rule that names values asks for one of them.
bool listed(const std::vector<std::string>& list, const std::string& value) {
    return list.empty() || (!value.empty() && contains(list, value));
}

bool users_match(const std::vector<std::string>& users, const Facts& facts) {
    if (users.empty()) {
        return true;
    }
    if (facts.user.empty()) {
        return false;
    }
    return std::any_of(users.begin(), users.end(), [&facts](const std::string& entry) {
        if (!entry.empty() && entry.front() == '%') {
            const std::string_view group = std::string_view(entry).substr(1);
            return !group.empty() && contains(facts.user_groups, group);
        }
        return entry == facts.user;
    });
}

bool glob_matches(const std::string& glob, const std::string& text) {
    // Flags 0, deliberately: without FNM_PATHNAME a '*' also matches '/' and ' ', so
    // "/usr/bin/systemctl restart *" covers "restart nginx.service" and "restart a b", the way
    // sudoers wildcards do.
    return fnmatch(glob.c_str(), text.c_str(), 0) == 0;
}

bool spelling_matches(const std::string& glob, const Facts& facts, const std::string& path) {
    Facts as = facts;
    as.command = path;
    if (glob_matches(glob, command_line_for_match(as))) {
        return true;
    }
    // A bare program name or name glob ("systemctl", "vi*": no '/', no space) is also
    // matched against the basename of the command alone, so it names that program in any
    // directory and with any arguments. Admins write "journalctl" far more often than
    // "*/journalctl *". A glob with a space describes arguments too, so it is matched
    // against the whole line only. SECURITY NOTE: this is looser than a full path; the
    // docs tell admins to use full paths in allow rules.
    const auto slash = path.rfind('/');
    const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    return glob.find_first_of("/ ") == std::string::npos && glob_matches(glob, base);
}

// The rule's program names the very file that will run (a hard link, a symlink, an
// alternative): the glob is judged as if the user had typed the rule's own path.
bool same_file_matches(const std::string& glob, const Facts& facts, const FileIdOf& id_of) {
    if (!id_of || facts.command_dev < 0 || facts.command_ino < 0 || glob.empty() || glob.front() != '/') {
        return false;
    }
    // "/usr/bin/bash*" (the program and whatever follows) names /usr/bin/bash too.
    std::string program = glob.substr(0, glob.find(' '));
    while (!program.empty() && program.back() == '*') {
        program.pop_back();
    }
    if (program.empty() || program.find_first_of("*?[\\") != std::string::npos) {
        return false;
    }
    const auto id = id_of(program);
    return id && id->first == facts.command_dev && id->second == facts.command_ino &&
           spelling_matches(glob, facts, program);
}

bool commands_match(const std::vector<std::string>& globs, const Facts& facts, bool deny, const FileIdOf& id_of) {
    if (globs.empty()) {
        return true;
    }
    if (facts.command.empty()) {
        return false; // logins have no command
    }
    // SECURITY NOTE: allow and require_approval rules judge what will run (the canonical
    // path), never a name the user chose: a symlink ~/safe -> /usr/bin/bash must not earn
    // the allow written for "safe". A deny rule also holds for the name typed.
    std::vector<std::string> paths = facts.program_paths;
    if (paths.empty()) {
        paths.push_back(facts.command);
    }
    if (deny) {
        paths.push_back(facts.command);
        paths.insert(paths.end(), facts.typed_paths.begin(), facts.typed_paths.end());
    }
    return std::any_of(globs.begin(), globs.end(), [&](const std::string& glob) {
        return std::any_of(paths.begin(), paths.end(),
                           [&](const std::string& path) { return spelling_matches(glob, facts, path); }) ||
               same_file_matches(glob, facts, id_of);
    });
}

bool host_matches(const config::HostMatch& match, const config::Config::Host& host) {
    if (!match.environments.empty() && (host.environment.empty() || !contains(match.environments, host.environment))) {
        return false;
    }
    return std::all_of(match.tags.begin(), match.tags.end(),
                       [&host](const std::string& tag) { return contains(host.tags, tag); });
}

bool remote_hosts_match(const std::vector<std::string>& patterns, const std::string& remote) {
    return patterns.empty() || std::any_of(patterns.begin(), patterns.end(), [&remote](const std::string& pattern) {
               return remote_host_matches(pattern, remote);
           });
}

// SECURITY NOTE: a window name validate() did not find cannot occur in a loaded config; if it
// did, `when` fails (the rule does not apply) and `unless` holds (the rule does not apply).
bool windows_match(const config::Config& config, const config::Match& m, std::chrono::system_clock::time_point now) {
    const auto window_holds = [&](const std::string& name) {
        const config::Window* w = windows::find(config, name);
        return w != nullptr && windows::holds(*w, now);
    };
    for (const auto& name : m.unless_windows) {
        if (windows::find(config, name) == nullptr || window_holds(name)) {
            return false;
        }
    }
    return m.when_windows.empty() || std::any_of(m.when_windows.begin(), m.when_windows.end(), window_holds);
}

bool rule_matches(const config::Rule& rule, const config::Config::Host& host, const Facts& facts,
                  const FileIdOf& id_of) {
    const config::Match& m = rule.match;
    return listed(m.kinds, facts.kind) && users_match(m.users, facts) &&
           commands_match(m.commands, facts, rule.action == config::Action::deny, id_of) &&
           listed(m.runas, facts.runas_user) && listed(m.services, facts.service) &&
           remote_hosts_match(m.remote_hosts, facts.remote_host) && host_matches(m.host, host);
}

struct Address {
    int family = 0; // AF_INET or AF_INET6
    std::array<unsigned char, 16> bytes{};
};

std::optional<Address> parse_address(const std::string& text, bool unmap_v4) {
    Address address;
    if (inet_pton(AF_INET, text.c_str(), address.bytes.data()) == 1) {
        address.family = AF_INET;
        return address;
    }
    if (inet_pton(AF_INET6, text.c_str(), address.bytes.data()) != 1) {
        return std::nullopt;
    }
    address.family = AF_INET6;
    // An IPv4 client reaching a dual-stack sshd shows up as ::ffff:a.b.c.d; "10.0.0.0/8" must
    // still cover it.
    constexpr std::array<unsigned char, 12> k_v4_mapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (unmap_v4 && std::equal(k_v4_mapped.begin(), k_v4_mapped.end(), address.bytes.begin())) {
        std::copy_n(address.bytes.begin() + 12, 4, address.bytes.begin());
        std::fill(address.bytes.begin() + 4, address.bytes.end(), 0);
        address.family = AF_INET;
    }
    return address;
}

bool cidr_matches(const std::string& pattern, const std::string& remote) {
    const auto slash = pattern.find('/');
    const auto network = parse_address(pattern.substr(0, slash), false);
    const auto peer = parse_address(remote, true);
    if (!network || !peer || network->family != peer->family) {
        return false;
    }
    const std::string_view prefix_text = std::string_view(pattern).substr(slash + 1);
    unsigned prefix = 0;
    const auto [end, error] = std::from_chars(prefix_text.data(), prefix_text.data() + prefix_text.size(), prefix);
    const unsigned max_prefix = network->family == AF_INET ? 32U : 128U;
    if (prefix_text.empty() || error != std::errc{} || end != prefix_text.data() + prefix_text.size() ||
        prefix > max_prefix) {
        return false; // validate() reports it; a broken pattern must never widen a rule
    }
    const unsigned whole_bytes = prefix / 8;
    if (!std::equal(network->bytes.begin(), network->bytes.begin() + whole_bytes, peer->bytes.begin())) {
        return false;
    }
    const unsigned rest_bits = prefix % 8;
    if (rest_bits == 0) {
        return true;
    }
    const auto mask = static_cast<unsigned char>(0xffU << (8 - rest_bits));
    return (network->bytes[whole_bytes] & mask) == (peer->bytes[whole_bytes] & mask);
}

} // namespace

std::string command_line_for_match(const Facts& facts) {
    std::string line = facts.command;
    for (std::size_t i = 1; i < facts.argv.size(); ++i) {
        line += ' ';
        line += facts.argv[i];
    }
    return line;
}

const config::Rule* first_match(const config::Config& config, const Facts& facts,
                                std::chrono::system_clock::time_point now, const FileIdOf& id_of) {
    for (const config::Rule& rule : config.rules) {
        if (rule_matches(rule, config.host, facts, id_of) && windows_match(config, rule.match, now)) {
            return &rule;
        }
    }
    return nullptr;
}

const config::Rule* first_match(const config::Config& config, const Facts& facts, const FileIdOf& id_of) {
    return first_match(config, facts, std::chrono::system_clock::now(), id_of);
}

std::string window_in_effect(const config::Config& config, const config::Rule& rule,
                             std::chrono::system_clock::time_point now) {
    for (const auto& name : rule.match.when_windows) {
        const config::Window* w = windows::find(config, name);
        if (w != nullptr && windows::holds(*w, now)) {
            return windows::describe(*w, now);
        }
    }
    return {};
}

std::string windows_error(const config::Config& config, const config::Rule* matched,
                          std::chrono::system_clock::time_point now) {
    const auto error_of = [&](const std::string& name) -> std::string {
        const config::Window* w = windows::find(config, name);
        std::string error;
        if (w == nullptr || windows::evaluate(*w, now, error)) return {};
        return "time window " + name + " cannot be evaluated: " + error;
    };
    for (const auto& rule : config.rules) {
        for (const auto* names : {&rule.match.when_windows, &rule.match.unless_windows})
            for (const auto& name : *names)
                if (std::string e = error_of(name); !e.empty()) return e;
        if (!rule.auto_approve.window.empty())
            if (std::string e = error_of(rule.auto_approve.window); !e.empty()) return e;
        if (&rule == matched) break;
    }
    return {};
}

bool commands_listed(const std::vector<std::string>& globs, const Facts& facts, const FileIdOf& id_of) {
    return !globs.empty() && commands_match(globs, facts, false, id_of);
}

const config::Rule& default_rule() {
    static const config::Rule rule = [] {
        config::Rule r;
        r.name = "default";
        r.action = config::Action::require_approval;
        return r;
    }();
    return rule;
}

bool remote_host_matches(const std::string& pattern, const std::string& remote) {
    // A local login has no remote host; it must not fall into a rule about remote ones.
    if (pattern.empty() || remote.empty()) {
        return false;
    }
    if (pattern.find('/') != std::string::npos) {
        return cidr_matches(pattern, remote);
    }
    // Host names are case-insensitive (DNS). SECURITY NOTE: a name comes from reverse DNS
    // unless sshd runs with UseDNS no; whoever controls that zone controls the name, so the
    // docs recommend CIDRs.
    if (strcasecmp(pattern.c_str(), remote.c_str()) == 0) {
        return true;
    }
    return fnmatch(pattern.c_str(), remote.c_str(), FNM_CASEFOLD) == 0;
}

} // namespace jitgate::rules
