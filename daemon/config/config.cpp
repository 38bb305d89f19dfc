// daemon/config/config.cpp — YAML text → typed Config, and the semantic checks of a Config.
//
// Two passes, on purpose. The parser checks shape only (known keys, value types, the syntax
// of each value) and records where every value came from. validate_at() checks meaning
// (ranges, absolute paths, consistency between keys) and uses those recorded positions when it
// has them, so a Config built in code (tests, fuzzers) gets exactly the same checks as one read
// from a file, and every check lives in one place. Neither pass stops at the first problem: an
// admin fixing a config should see everything that is wrong in one run. The YAML mechanics
// (typed readers, positions, unknown keys, syntax errors) are lib/yaml_reader.hpp's, shared with
// jitgate-server; this file holds jitgated's schema and its checks.
#include "daemon/config/config.hpp"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <iterator>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "lib/time_windows.hpp"
#include "lib/yaml_reader.hpp"

namespace jitgate::config {

namespace {

constexpr Seconds k_max_duration{std::chrono::hours(24)};
constexpr int k_min_approvals = 1;
constexpr int k_max_approvals = 5;
constexpr std::string_view k_kind_sudo = "sudo";
constexpr std::string_view k_kind_login = "login";

// Checks "10.0.0.0/8" or "2001:db8::/32". rules.cpp does the matching; this only says whether a
// pattern with a '/' could ever match, so that a typo is an error rather than a dead rule.
std::optional<std::string> cidr_error(const std::string& pattern) {
    const auto slash = pattern.find('/');
    const std::string address = pattern.substr(0, slash);
    const std::string_view prefix = std::string_view(pattern).substr(slash + 1);
    std::array<unsigned char, 16> bytes{};
    int max_prefix = 0;
    if (inet_pton(AF_INET, address.c_str(), bytes.data()) == 1) {
        max_prefix = 32;
    } else if (inet_pton(AF_INET6, address.c_str(), bytes.data()) == 1) {
        max_prefix = 128;
    } else {
        return shown(address) + " is not an IPv4 or IPv6 address";
    }
    const bool all_digits = !prefix.empty() && prefix.size() <= 3 &&
                            std::all_of(prefix.begin(), prefix.end(), [](char c) { return c >= '0' && c <= '9'; });
    const auto length = all_digits ? parse_integer(prefix) : std::nullopt;
    if (!length || *length > max_prefix) {
        return "the prefix length must be 0.." + std::to_string(max_prefix);
    }
    return std::nullopt;
}

std::string local_host_name() {
    std::array<char, 256> name{}; // HOST_NAME_MAX is 64 on Linux
    if (gethostname(name.data(), name.size() - 1) != 0) {
        return {};
    }
    return name.data();
}

// ---------------------------------------------------------------------------------------------
// The parser.

const SectionSpec k_top_spec{{"host", "daemon", "approval", "break_glass", "audit", "windows", "rules", "sessions"},
                             {{"socket", "daemon"},
                              {"max_clients", "daemon"},
                              {"max_pending", "daemon"},
                              {"backend", "approval"},
                              {"approver_groups", "approval"},
                              {"allow_root", "approval"},
                              {"on_call_file", "approval"},
                              {"service", "approval"},
                              {"spool_dir", "audit"},
                              {"store", "audit"},
                              {"syslog", "audit"},
                              {"syslog_socket", "audit"},
                              {"name", "host"},
                              {"environment", "host"},
                              {"tags", "host"},
                              {"group", "break_glass"},
                              {"min_reason_length", "break_glass"}}};
const SectionSpec k_host_spec{{"name", "environment", "tags"}, {}};
const SectionSpec k_daemon_spec{{"socket", "max_clients", "max_pending"}, {}};
const SectionSpec k_approval_spec{{"backend", "approver_groups", "allow_root", "on_call_file", "service"},
                                  {{"url", "service"}, {"ca_file", "service"}, {"public_keys", "service"}}};
const SectionSpec k_service_spec{{"url", "ca_file", "client_cert", "client_key", "proxy", "connect_timeout",
                                  "request_timeout", "poll_wait", "retries", "issuer", "clock_skew", "public_keys"},
                                 {}};
const SectionSpec k_store_spec{{"url", "format", "ca_file", "client_cert", "client_key", "token_file", "proxy",
                                "connect_timeout", "timeout", "batch_events", "batch_size", "retry_min", "retry_max",
                                "splunk_index", "splunk_sourcetype"},
                               {}};
const SectionSpec k_break_glass_spec{{"group", "min_reason_length"}, {}};
const SectionSpec k_sessions_spec{{"warn_before", "grace"}, {}};
const SectionSpec k_audit_spec{
    {"spool_dir", "spool_max_size", "segment_size", "when_spool_full", "syslog", "syslog_socket", "store"},
    {{"url", "store"}, {"format", "store"}, {"token_file", "store"}}};
const SectionSpec k_rule_spec{{"name", "approvals", "ttl", "scope", "reason", "ticket_pattern", "timeout",
                               "approver_groups", "noninteractive", "message", "match", "action", "intercept",
                               "auto_approve", "auto_approve_sod", "on_expiry"},
                              {{"kind", "match"},
                               {"when", "match"},
                               {"unless", "match"},
                               {"users", "match"},
                               {"commands", "match"},
                               {"runas", "match"},
                               {"services", "match"},
                               {"remote_hosts", "match"},
                               {"host", "match"}}};
const SectionSpec k_match_spec{
    {"kind", "users", "commands", "runas", "services", "remote_hosts", "host", "when", "unless"},
    {{"environment", "host"}, {"tags", "host"}}};
const SectionSpec k_match_host_spec{{"environment", "tags"}, {}};

// Keys that only a require_approval rule may set.
constexpr std::array<std::string_view, 11> k_approval_only_keys{"approvals",       "ttl",
                                                                "scope",           "reason",
                                                                "ticket_pattern",  "timeout",
                                                                "approver_groups", "noninteractive",
                                                                "auto_approve",    "auto_approve_sod",
                                                                "on_expiry"};
const SectionSpec k_when_spec{{"window"}, {}};
const SectionSpec k_auto_approve_spec{{"on_call", "commands", "window"}, {}};

// The schema of jitgated's config, read with the shared typed readers of lib/yaml_reader.hpp.
class Parser : public Reader {
public:
    explicit Parser(std::string source) : Reader(std::move(source)) {}

    Config parse(const YAML::Node& root);

private:
    void parse_service(const Entries& approval_entries, const Where& approval_where,
                       Config::Approval::Service& service);
    void parse_store(const Entries& audit_entries, const Where& audit_where, Config::Audit::Store& store);
    void parse_host(const Entries& top, Config::Host& host);
    void parse_daemon(const Entries& top, Config::Daemon& daemon);
    void parse_approval(const Entries& top, Config::Approval& approval);
    void parse_break_glass(const Entries& top, Config::BreakGlass& break_glass);
    void parse_sessions(const Entries& top, Config::Sessions& sessions);
    void parse_audit(const Entries& top, Config::Audit& audit);
    void parse_rules(const Entries& top, std::vector<Rule>& rules);
    void parse_rule(const YAML::Node& node, std::size_t number, std::vector<Rule>& rules);
    void parse_match(const Entries& rule_entries, const Where& rule_where, Match& match);
    // Time windows and automatic approval (docs/config.md, "Time windows").
    void parse_windows(const Entries& top, std::vector<Window>& windows);
    void parse_auto_approve(const Entries& rule_entries, const Where& rule_where, Rule& rule);
};

const Where k_top_where{"", "", "at top level", ""};

Config Parser::parse(const YAML::Node& root) {
    Config config;
    config.source = source();
    if (!root.IsNull()) {
        if (!root.IsMap()) {
            add(root.Mark(), "the top level must be a mapping of sections (host, daemon, "
                             "approval, break_glass, audit, rules), got " +
                                 describe(root));
        } else {
            const Entries top = entries(root, k_top_where, k_top_spec);
            parse_host(top, config.host);
            parse_daemon(top, config.daemon);
            parse_approval(top, config.approval);
            parse_break_glass(top, config.break_glass);
            parse_sessions(top, config.sessions);
            parse_audit(top, config.audit);
            parse_windows(top, config.windows);
            parse_rules(top, config.rules);
        }
    }
    if (config.host.name.empty()) {
        config.host.name = local_host_name();
    }
    return config;
}

void Parser::parse_host(const Entries& top, Config::Host& host) {
    const Where where{"host", "host.", "in 'host'", ""};
    const Entries e = section(top, "host", k_top_where, where, k_host_spec);
    if (auto v = string_value(where, find(e, "name"))) {
        host.name = *v;
    }
    if (auto v = string_value(where, find(e, "environment"))) {
        host.environment = *v;
    }
    if (auto v = list_value(where, find(e, "tags"))) {
        host.tags = *v;
    }
}

void Parser::parse_daemon(const Entries& top, Config::Daemon& daemon) {
    const Where where{"daemon", "daemon.", "in 'daemon'", ""};
    const Entries e = section(top, "daemon", k_top_where, where, k_daemon_spec);
    if (auto v = string_value(where, find(e, "socket"))) {
        daemon.socket = *v;
    }
    if (auto v = integer_value(where, find(e, "max_clients"), "a positive integer")) {
        daemon.max_clients = static_cast<int>(*v);
    }
    if (auto v = integer_value(where, find(e, "max_pending"), "a positive integer")) {
        daemon.max_pending = static_cast<int>(*v);
    }
}

void Parser::parse_approval(const Entries& top, Config::Approval& approval) {
    const Where where{"approval", "approval.", "in 'approval'", ""};
    const Entries e = section(top, "approval", k_top_where, where, k_approval_spec);
    if (auto v = string_value(where, find(e, "backend"))) {
        approval.backend = *v;
    }
    if (auto v = list_value(where, find(e, "approver_groups"))) {
        approval.approver_groups = *v;
    }
    if (auto v = bool_value(where, find(e, "allow_root"))) {
        approval.allow_root = *v;
    }
    if (auto v = string_value(where, find(e, "on_call_file"))) {
        approval.on_call_file = *v;
    }
    parse_service(e, where, approval.service);
}

void Parser::parse_service(const Entries& approval_entries, const Where& approval_where,
                           Config::Approval::Service& service) {
    const Where where{"approval.service", "approval.service.", "in 'approval.service'", ""};
    if (const Entry* start = find(approval_entries, "service")) {
        service.line = position_of(start->key_node.Mark()).line;
    }
    const Entries e = section(approval_entries, "service", approval_where, where, k_service_spec);
    for (const auto& [key, field] : {std::pair{"url", &service.url},
                                     {"ca_file", &service.ca_file},
                                     {"client_cert", &service.client_cert},
                                     {"client_key", &service.client_key},
                                     {"proxy", &service.proxy},
                                     {"issuer", &service.issuer}}) {
        if (auto v = string_value(where, find(e, key))) {
            *field = *v;
        }
    }
    for (const auto& [key, field] : {std::pair{"connect_timeout", &service.connect_timeout},
                                     {"request_timeout", &service.request_timeout},
                                     {"poll_wait", &service.poll_wait},
                                     {"clock_skew", &service.clock_skew}}) {
        if (auto v = duration_value(where, find(e, key))) {
            *field = *v;
        }
    }
    if (auto v = integer_value(where, find(e, "retries"), "an integer 0..10")) {
        service.retries = static_cast<int>(*v);
    }
    // public_keys: a mapping of key id to the PEM file of its Ed25519 public key.
    if (const Entry* keys = find(e, "public_keys"); keys != nullptr && !keys->value.IsNull()) {
        if (!keys->value.IsMap()) {
            wrong_type(where, *keys, "a mapping of key id to public key file");
        } else {
            for (auto it = keys->value.begin(); it != keys->value.end(); ++it) {
                if (!it->first.IsScalar() || !it->second.IsScalar()) {
                    add(it->first.Mark(), "approval.service.public_keys: each entry must be "
                                          "'<key id>: <file>', got " +
                                              describe(it->second));
                    continue;
                }
                const std::string kid = it->first.Scalar();
                record("approval.service.public_keys." + kid, it->first.Mark());
                service.public_keys.emplace_back(kid, it->second.Scalar());
            }
        }
    }
}

void Parser::parse_break_glass(const Entries& top, Config::BreakGlass& break_glass) {
    const Where where{"break_glass", "break_glass.", "in 'break_glass'", ""};
    const Entries e = section(top, "break_glass", k_top_where, where, k_break_glass_spec);
    if (auto v = string_value(where, find(e, "group"))) {
        break_glass.group = *v;
    }
    const Entry* length = find(e, "min_reason_length");
    if (auto v = integer_value(where, length, "a positive integer")) {
        if (*v < 0) {
            wrong_type(where, *length, "a positive integer");
        } else {
            break_glass.min_reason_length = static_cast<std::size_t>(*v);
        }
    }
}

void Parser::parse_sessions(const Entries& top, Config::Sessions& sessions) {
    const Where where{"sessions", "sessions.", "in 'sessions'", ""};
    const Entries e = section(top, "sessions", k_top_where, where, k_sessions_spec);
    if (auto v = duration_value(where, find(e, "warn_before"))) {
        sessions.warn_before = *v;
    }
    if (auto v = duration_value(where, find(e, "grace"))) {
        sessions.grace = *v;
    }
}

void Parser::parse_audit(const Entries& top, Config::Audit& audit) {
    const Where where{"audit", "audit.", "in 'audit'", ""};
    const Entries e = section(top, "audit", k_top_where, where, k_audit_spec);
    if (auto v = string_value(where, find(e, "spool_dir"))) {
        audit.spool_dir = *v;
    }
    if (auto v = size_value(where, find(e, "spool_max_size"))) {
        audit.spool_max_bytes = *v;
    }
    if (auto v = size_value(where, find(e, "segment_size"))) {
        audit.segment_bytes = *v;
    }
    if (auto v = enum_value<bool>(where, find(e, "when_spool_full"), {{"deny", false}, {"break_glass_only", true}})) {
        audit.break_glass_when_full = *v;
    }
    if (auto v = bool_value(where, find(e, "syslog"))) {
        audit.syslog = *v;
    }
    if (auto v = string_value(where, find(e, "syslog_socket"))) {
        audit.syslog_socket = *v;
    }
    parse_store(e, where, audit.store);
}

void Parser::parse_store(const Entries& audit_entries, const Where& audit_where, Config::Audit::Store& store) {
    const Where where{"audit.store", "audit.store.", "in 'audit.store'", ""};
    const Entries e = section(audit_entries, "store", audit_where, where, k_store_spec);
    for (const auto& [key, field] : {std::pair{"url", &store.url},
                                     {"ca_file", &store.ca_file},
                                     {"client_cert", &store.client_cert},
                                     {"client_key", &store.client_key},
                                     {"token_file", &store.token_file},
                                     {"proxy", &store.proxy},
                                     {"splunk_index", &store.splunk_index},
                                     {"splunk_sourcetype", &store.splunk_sourcetype}}) {
        if (auto v = string_value(where, find(e, key))) {
            *field = *v;
        }
    }
    if (auto v =
            enum_value<std::string>(where, find(e, "format"), {{"jsonl", "jsonl"}, {"splunk_hec", "splunk_hec"}})) {
        store.format = *v;
    }
    for (const auto& [key, field] : {std::pair{"connect_timeout", &store.connect_timeout},
                                     {"timeout", &store.timeout},
                                     {"retry_min", &store.retry_min},
                                     {"retry_max", &store.retry_max}}) {
        if (auto v = duration_value(where, find(e, key))) {
            *field = *v;
        }
    }
    if (auto v = integer_value(where, find(e, "batch_events"), "an integer 1..10000")) {
        store.batch_events = static_cast<int>(*v);
    }
    if (auto v = size_value(where, find(e, "batch_size"))) {
        store.batch_bytes = *v;
    }
}

void Parser::parse_rules(const Entries& top, std::vector<Rule>& rules) {
    const Entry* entry = find(top, "rules");
    if (entry == nullptr || entry->value.IsNull()) {
        return;
    }
    if (!entry->value.IsSequence()) {
        wrong_type(k_top_where, *entry, "a list of rules");
        return;
    }
    for (std::size_t i = 0; i < entry->value.size(); ++i) {
        parse_rule(entry->value[i], i + 1, rules);
    }
}

void Parser::parse_rule(const YAML::Node& node, std::size_t number, std::vector<Rule>& rules) {
    if (!node.IsMap()) {
        add(node.Mark(), "rule " + std::to_string(number) + ": expected a mapping (name, match, action, ...), got " +
                             describe(node));
        return;
    }
    Rule rule;
    rule.name = "rule-" + std::to_string(number);
    rule.line = position_of(node.Mark()).line;
    // Read the name first so that every later message can say which rule it is about.
    for (auto it = node.begin(); it != node.end(); ++it) {
        if (it->first.IsScalar() && it->first.Scalar() == "name" && it->second.IsScalar()) {
            rule.name = it->second.Scalar();
            break;
        }
    }
    const std::string path = "rules[" + std::to_string(rules.size()) + "]";
    record(path, node.Mark());
    const Where where{path, "", "in rule " + shown(rule.name), "rule " + shown(rule.name) + ": "};
    const Entries e = entries(node, where, k_rule_spec);

    if (const Entry* name = find(e, "name")) {
        string_value(where, name); // reports a non-string name; the name was taken above
    }
    parse_match(e, where, rule.match);
    if (auto v = enum_value<Action>(
            where, find(e, "action"),
            {{"allow", Action::allow}, {"deny", Action::deny}, {"require_approval", Action::require_approval}})) {
        rule.action = *v;
    }
    if (rule.action != Action::require_approval) {
        for (const std::string_view key : k_approval_only_keys) {
            if (const Entry* extra = find(e, key)) {
                add(extra->key_node.Mark(), where.prefix + "action " + to_string(rule.action) + " does not take '" +
                                                std::string(key) + "' (only require_approval does)");
            }
        }
    }
    if (auto v = integer_value(where, find(e, "approvals"), "an integer 1..5")) {
        rule.approvals = static_cast<int>(*v);
    }
    if (auto v = duration_value(where, find(e, "ttl"))) {
        rule.ttl = *v;
    }
    const Entry* scope = find(e, "scope");
    if (auto v = enum_value<Scope>(
            where, scope, {{"command", Scope::command}, {"session", Scope::session}, {"login", Scope::login}})) {
        rule.scope = *v;
    } else if (scope == nullptr && !rule.match.kinds.empty() &&
               std::all_of(rule.match.kinds.begin(), rule.match.kinds.end(),
                           [](const std::string& k) { return k == k_kind_login; })) {
        // A login rule can only grant logins; making every login rule spell "scope: login"
        // would only add a way to get it wrong.
        rule.scope = Scope::login;
    }
    if (auto v = enum_value<bool>(where, find(e, "reason"), {{"required", true}, {"optional", false}})) {
        rule.reason_required = *v;
    }
    if (auto v = string_value(where, find(e, "ticket_pattern"))) {
        rule.ticket_pattern = *v;
        if (!rule.ticket_pattern.empty()) {
            // SECURITY NOTE: std::regex backtracks, so a pattern such as "(a+)+$" lets a crafted
            // ticket burn CPU. The pattern is root's; whoever matches tickets against it should
            // still bound the ticket's length first.
            try {
                rule.ticket_regex.emplace(rule.ticket_pattern, std::regex::ECMAScript);
            } catch (const std::regex_error&) {
                // Left unset on purpose: validate_at() reports it, with the regex error.
            }
        }
    }
    if (auto v = duration_value(where, find(e, "timeout"))) {
        rule.timeout = *v;
    }
    if (auto v = list_value(where, find(e, "approver_groups"))) {
        rule.approver_groups = *v;
    }
    if (auto v = enum_value<NonInteractive>(where, find(e, "noninteractive"),
                                            {{"file", NonInteractive::file}, {"wait", NonInteractive::wait}})) {
        rule.noninteractive = *v;
    }
    if (auto v = string_value(where, find(e, "message"))) {
        rule.message = *v;
    }
    if (auto v = bool_value(where, find(e, "intercept"))) {
        rule.intercept = *v;
    }
    parse_auto_approve(e, where, rule);
    if (auto v =
            enum_value<OnExpiry>(where, find(e, "on_expiry"), {{"end", OnExpiry::end}, {"keep", OnExpiry::keep}})) {
        rule.on_expiry = *v;
    }
    rules.push_back(std::move(rule));
}

void Parser::parse_match(const Entries& rule_entries, const Where& rule_where, Match& match) {
    // rule_where.in is "in rule 'x'"; these say "in 'match' of rule 'x'".
    const std::string of_rule = " of " + rule_where.in.substr(3);
    const Where where{rule_where.path + ".match", "match.", "in 'match'" + of_rule, rule_where.prefix};
    const Entries e = section(rule_entries, "match", rule_where, where, k_match_spec);
    const std::pair<std::string_view, std::vector<std::string>*> lists[] = {
        {"kind", &match.kinds},  {"users", &match.users},       {"commands", &match.commands},
        {"runas", &match.runas}, {"services", &match.services}, {"remote_hosts", &match.remote_hosts}};
    for (const auto& [key, target] : lists) {
        if (auto v = list_value(where, find(e, key))) {
            *target = std::move(*v);
        }
    }
    const Where host_where{where.path + ".host", "match.host.", "in 'match.host'" + of_rule, rule_where.prefix};
    const Entries h = section(e, "host", where, host_where, k_match_host_spec);
    if (auto v = list_value(host_where, find(h, "environment"))) {
        match.host.environments = std::move(*v);
    }
    if (auto v = list_value(host_where, find(h, "tags"))) {
        match.host.tags = std::move(*v);
    }
    for (const auto& [key, target] : {std::pair{"when", &match.when_windows}, {"unless", &match.unless_windows}}) {
        const Where w{where.path + "." + key, "match." + std::string(key) + ".",
                      "in 'match." + std::string(key) + "'" + of_rule, rule_where.prefix};
        const Entries we = section(e, key, where, w, k_when_spec);
        if (auto v = list_value(w, find(we, "window"))) {
            *target = std::move(*v);
        }
    }
}

void Parser::parse_windows(const Entries& top, std::vector<Window>& windows) {
    windows::parse_windows(*this, find(top, "windows"), windows);
}

void Parser::parse_auto_approve(const Entries& rule_entries, const Where& rule_where, Rule& rule) {
    if (auto v = bool_value(rule_where, find(rule_entries, "auto_approve_sod"))) {
        rule.auto_approve_sod = *v;
    }
    const Entry* entry = find(rule_entries, "auto_approve");
    if (entry == nullptr) {
        return;
    }
    const Where where{rule_where.path + ".auto_approve", "auto_approve.", "in 'auto_approve'", rule_where.prefix};
    const Entries e = section(rule_entries, "auto_approve", rule_where, where, k_auto_approve_spec);
    rule.auto_approve.set = true;
    if (auto v = bool_value(where, find(e, "on_call"))) {
        rule.auto_approve.on_call = *v;
    }
    if (auto v = list_value(where, find(e, "commands"))) {
        rule.auto_approve.commands = std::move(*v);
    }
    if (auto v = string_value(where, find(e, "window"))) {
        rule.auto_approve.window = *v;
    }
}

// ---------------------------------------------------------------------------------------------
// Semantic checks.

class Checker {
public:
    Checker(const Config& config, const Positions* positions) : m_config(config), m_positions(positions) {}

    std::vector<Problem> run();

private:
    // Blames the most precise recorded position: "rules[1].match.kind[0]", then
    // "rules[1].match.kind", "rules[1].match", "rules[1]", then `fallback_line`.
    void add(std::string path, int fallback_line, std::string message);
    void check_top();
    void check_service();
    void check_store();
    // Absolute path of a file the daemon reads (a key, a CA); empty allowed only if !required.
    void check_file_key(const std::string& path, const std::string& key, const std::string& value, bool required);
    void check_rule(std::size_t index);
    void check_windows();
    void check_auto_approve(const Rule& rule, const std::string& path, const std::string& prefix, int line);
    void check_names(const std::string& path, int line, const std::string& prefix, std::string_view key,
                     const std::vector<std::string>& names);

    const Config& m_config;
    const Positions* m_positions;
    std::vector<Problem> m_problems;
};

void Checker::add(std::string path, int fallback_line, std::string message) {
    const Position position = locate(m_positions, std::move(path), fallback_line);
    m_problems.push_back({m_config.source, position.line, position.column, escaped(message)}); // see Reader::add
}

std::vector<Problem> Checker::run() {
    check_top();
    for (std::size_t i = 0; i < m_config.rules.size(); ++i) {
        check_rule(i);
    }
    return std::move(m_problems);
}

// Every entry of a name list must be a non-empty plain name.
void Checker::check_names(const std::string& path, int line, const std::string& prefix, std::string_view key,
                          const std::vector<std::string>& names) {
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (names[i].empty()) {
            add(path + "[" + std::to_string(i) + "]", line, prefix + "empty entry in '" + std::string(key) + "'");
        }
    }
}

void Checker::check_top() {
    const Config& c = m_config;
    if (!is_absolute_path(c.daemon.socket)) {
        add("daemon.socket", 0, "daemon.socket must be an absolute path, got " + shown(c.daemon.socket));
    }
    if (c.daemon.max_clients < 1) {
        add("daemon.max_clients", 0,
            "daemon.max_clients must be at least 1, got " + std::to_string(c.daemon.max_clients));
    }
    if (c.daemon.max_pending < 1) {
        add("daemon.max_pending", 0,
            "daemon.max_pending must be at least 1, got " + std::to_string(c.daemon.max_pending));
    }
    if (c.approval.backend == "service") {
        check_service();
        // The service decides who approves; a root switch here would suggest otherwise.
        if (c.approval.allow_root)
            add("approval.allow_root", 0,
                "approval.allow_root applies to the local backend only; with backend "
                "'service' the approval service decides who may approve");
    } else if (c.approval.backend != "local") {
        add("approval.backend", 0,
            "unknown approval.backend " + shown(c.approval.backend) + " (expected 'local' or 'service')");
    }
    if (c.approval.approver_groups.empty()) {
        add("approval.approver_groups", 0,
            "approval.approver_groups is empty: requests that match no rule (and rules without "
            "their own approver_groups) could never be approved");
    }
    check_names("approval.approver_groups", 0, "", "approval.approver_groups", c.approval.approver_groups);
    for (std::size_t i = 0; i < c.approval.approver_groups.size(); ++i) {
        const std::string& group = c.approval.approver_groups[i];
        if (!group.empty() && group.front() == '%') {
            add("approval.approver_groups[" + std::to_string(i) + "]", 0,
                "approval.approver_groups lists group names without '%': write " + shown(group.substr(1)));
        }
    }
    if (!c.break_glass.group.empty() && c.break_glass.group.front() == '%') {
        add("break_glass.group", 0,
            "break_glass.group is a group name without '%': write " + shown(c.break_glass.group.substr(1)));
    }
    if (c.sessions.warn_before < Seconds::zero() || c.sessions.warn_before > std::chrono::hours(1)) {
        add("sessions.warn_before", 0,
            "sessions.warn_before must be 0s..1h, got " + format_duration(c.sessions.warn_before));
    }
    if (c.sessions.grace < Seconds(1) || c.sessions.grace > std::chrono::minutes(5)) {
        add("sessions.grace", 0, "sessions.grace must be 1s..5m, got " + format_duration(c.sessions.grace));
    }
    if (c.break_glass.min_reason_length < 1) {
        add("break_glass.min_reason_length", 0,
            "break_glass.min_reason_length must be at least 1, got " + std::to_string(c.break_glass.min_reason_length));
    }
    if (!is_absolute_path(c.audit.spool_dir)) {
        add("audit.spool_dir", 0, "audit.spool_dir must be an absolute path, got " + shown(c.audit.spool_dir));
    }
    if (c.audit.segment_bytes < 4096 || c.audit.segment_bytes > c.audit.spool_max_bytes) {
        add("audit.segment_size", 0, "audit.segment_size must be at least 4KiB and at most audit.spool_max_size");
    }
    if (!c.audit.store.url.empty()) {
        check_store();
    }
    if (c.audit.syslog && !is_absolute_path(c.audit.syslog_socket)) {
        add("audit.syslog_socket", 0,
            "audit.syslog_socket must be an absolute path, got " + shown(c.audit.syslog_socket));
    }
    check_names("host.tags", 0, "", "host.tags", c.host.tags);
    check_windows();
}

void Checker::check_windows() {
    const Config& c = m_config;
    windows::check_windows(
        c.windows, m_positions != nullptr,
        [this](const std::string& path, int line, std::string message) { add(path, line, std::move(message)); });
    if (!c.approval.on_call_file.empty() && !is_absolute_path(c.approval.on_call_file)) {
        add("approval.on_call_file", 0,
            "approval.on_call_file must be an absolute path, got " + shown(c.approval.on_call_file));
    }
}

void Checker::check_auto_approve(const Rule& rule, const std::string& path, const std::string& prefix, int line) {
    const AutoApprove& a = rule.auto_approve;
    const auto at = [&path](std::string_view key) { return path + "." + std::string(key); };
    if (!a.set) {
        if (rule.auto_approve_sod) {
            add(at("auto_approve_sod"), line, prefix + "auto_approve_sod without auto_approve means nothing");
        }
        return;
    }
    if (!a.on_call && a.commands.empty() && a.window.empty()) {
        add(at("auto_approve"), line,
            prefix + "auto_approve names no condition (on_call: true, commands or window); "
                     "it would approve everything");
    }
    // SECURITY NOTE: two approvals exist to keep one person from acting alone; a machine's
    // approval would undo that unless the rule says so in as many words.
    if (rule.approvals >= 2 && !rule.auto_approve_sod) {
        add(at("auto_approve"), line,
            prefix + "auto_approve with approvals: " + std::to_string(rule.approvals) +
                " would bypass segregation of duties; remove it, or set auto_approve_sod: true to mean it");
    }
    if (a.on_call && !rule.match.kinds.empty() &&
        std::all_of(rule.match.kinds.begin(), rule.match.kinds.end(), [](const auto& k) { return k == "login"; })) {
        add(at("auto_approve.on_call"), line,
            prefix + "auto_approve.on_call cannot approve logins: a login's requester is the account itself, "
                     "not a person (docs/config.md, \"Automatic approval\")");
    }
    // With backend service the service's on-call file decides (docs/server.md): the host's own
    // file is not read.
    if (a.on_call && m_config.approval.on_call_file.empty() && m_config.approval.backend != "service") {
        add(at("auto_approve.on_call"), line, prefix + "auto_approve.on_call needs approval.on_call_file");
    }
    if (!a.window.empty() && windows::find(m_config, a.window) == nullptr) {
        add(at("auto_approve.window"), line, prefix + "auto_approve.window: unknown window " + shown(a.window));
    }
    check_names(at("auto_approve.commands"), line, prefix, "auto_approve.commands", a.commands);
    // SECURITY NOTE: a session grant is keyed without the command, so one automatically approved
    // low-risk command would open every command of the rule to the session with nobody asked.
    if (!a.commands.empty() && rule.scope != Scope::command) {
        add(at("auto_approve.commands"), line,
            prefix + "auto_approve.commands needs scope: command (a " + to_string(rule.scope) +
                " grant would cover every command of the rule, not only the listed ones)");
    }
    // SECURITY NOTE: a bare program name matches any path's basename (~/journalctl, a user's
    // own script): an automatic approval must name the program by its absolute path.
    for (const auto& glob : a.commands) {
        if (glob.empty() || glob[0] != '/') {
            add(at("auto_approve.commands"), line,
                prefix + "auto_approve.commands: " + shown(glob) +
                    " must start with the program's absolute path (e.g. /usr/bin/journalctl)");
        }
    }
    // SECURITY NOTE: with backend service the central service is the approver of record and
    // signs every grant; the host never approves by itself. There `auto_approve: {on_call:
    // true}` only lets the service approve automatically (its policy and its on-call file
    // decide; the host accepts such a grant for this rule only). The service judges on_call
    // alone: commands and window, which the host would judge, are refused, not ignored.
    if (m_config.approval.backend == "service" && (!a.commands.empty() || !a.window.empty())) {
        add(at("auto_approve"), line,
            prefix + "with approval.backend 'service' auto_approve takes on_call only (the approval service "
                     "decides; docs/config.md, \"Automatic approval\")");
    }
}

void Checker::check_file_key(const std::string& path, const std::string& key, const std::string& value, bool required) {
    if (value.empty()) {
        if (required) {
            add(path, 0, key + " is required");
        }
    } else if (!is_absolute_path(value)) {
        add(path, 0, key + " must be an absolute path, got " + shown(value));
    }
}

void Checker::check_service() {
    const auto& s = m_config.approval.service;
    const int line = s.line;
    // The service refuses (400) a request whose host is not such a name (protocol §4): said
    // here, not at the first sudo.
    const std::string& name = m_config.host.name;
    const bool name_ok = !name.empty() && name.size() <= 253 && name != "." && name.find("..") == std::string::npos &&
                         std::all_of(name.begin(), name.end(), [](char c) {
                             return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                                    c == '.' || c == '-' || c == '_';
                         });
    if (!name_ok)
        add("host.name", 0,
            "host.name " + shown(name) +
                " is not a name the approval service accepts: 1 to 253 of A-Z a-z 0-9 . _ -, "
                "neither '.' nor holding '..' (protocol §4)");
    if (s.url.empty()) {
        // One problem, not five: without a url the section is missing or unfinished.
        add("approval.service", line,
            "approval.backend is 'service' but approval.service.url is not set (the service "
            "needs url, ca_file, client_cert, client_key and public_keys; see docs/config.md)");
        return;
    }
    if (s.url.rfind("https://", 0) != 0 || s.url.size() <= 8) {
        add("approval.service.url", line,
            "approval.service.url must start with https:// (grants travel only over TLS), got " + shown(s.url));
    }
    check_file_key("approval.service.ca_file", "approval.service.ca_file", s.ca_file, true);
    check_file_key("approval.service.client_cert", "approval.service.client_cert", s.client_cert, true);
    check_file_key("approval.service.client_key", "approval.service.client_key", s.client_key, true);
    if (s.poll_wait.count() < 1 || s.poll_wait.count() > 60) {
        add("approval.service.poll_wait", line,
            "approval.service.poll_wait must be 1s..60s, got " + format_duration(s.poll_wait));
    }
    if (s.retries < 0 || s.retries > 10) {
        add("approval.service.retries", line,
            "approval.service.retries must be 0..10, got " + std::to_string(s.retries));
    }
    if (s.clock_skew.count() > 300) {
        add("approval.service.clock_skew", line,
            "approval.service.clock_skew must be at most 5m, got " + format_duration(s.clock_skew));
    }
    if (s.public_keys.empty()) {
        add("approval.service.public_keys", line,
            "approval.service.public_keys is empty: no grant could ever be verified; list "
            "'<key id>: <PEM file>' for each signing key of the service");
    }
    std::set<std::string> seen;
    for (const auto& [kid, file] : s.public_keys) {
        const std::string path = "approval.service.public_keys." + kid;
        const bool kid_ok = !kid.empty() && kid.size() <= 64 && std::all_of(kid.begin(), kid.end(), [](char ch) {
            return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '.' || ch == '_' || ch == '-';
        });
        if (!kid_ok) {
            add(path, line,
                "bad key id " + shown(kid) +
                    " in approval.service.public_keys: "
                    "1 to 64 characters of A-Z a-z 0-9 . _ -");
        }
        if (!seen.insert(kid).second) {
            add(path, line, "key id " + shown(kid) + " is listed twice in approval.service.public_keys");
        }
        check_file_key(path, "approval.service.public_keys." + kid, file, true);
    }
}

void Checker::check_store() {
    const auto& s = m_config.audit.store;
    if (s.url.rfind("https://", 0) != 0 || s.url.size() <= 8) {
        add("audit.store.url", 0, "audit.store.url must start with https://, got " + shown(s.url));
    }
    check_file_key("audit.store.ca_file", "audit.store.ca_file", s.ca_file, true);
    check_file_key("audit.store.client_cert", "audit.store.client_cert", s.client_cert, false);
    check_file_key("audit.store.client_key", "audit.store.client_key", s.client_key, false);
    check_file_key("audit.store.token_file", "audit.store.token_file", s.token_file, false);
    if (s.client_cert.empty() != s.client_key.empty()) {
        add(s.client_cert.empty() ? "audit.store.client_key" : "audit.store.client_cert", 0,
            "audit.store.client_cert and audit.store.client_key go together: set both or neither");
    }
    if (s.client_cert.empty() && s.token_file.empty()) {
        add("audit.store", 0,
            "audit.store needs a way to authenticate: client_cert and client_key (mTLS), "
            "token_file, or both");
    }
    if (s.batch_events < 1 || s.batch_events > 10000) {
        add("audit.store.batch_events", 0,
            "audit.store.batch_events must be 1..10000, got " + std::to_string(s.batch_events));
    }
    if (s.batch_bytes < 4096) {
        add("audit.store.batch_size", 0, "audit.store.batch_size must be at least 4KiB");
    }
    if (s.retry_min > s.retry_max) {
        add("audit.store.retry_min", 0, "audit.store.retry_min must not exceed retry_max");
    }
}

void Checker::check_rule(std::size_t index) {
    const Rule& rule = m_config.rules[index];
    const std::string path = "rules[" + std::to_string(index) + "]";
    const std::string prefix = "rule " + shown(rule.name) + ": ";
    const int line = rule.line;
    const auto at = [&path](std::string_view key) { return path + "." + std::string(key); };

    if (rule.name.empty()) {
        add(at("name"), line, "rule " + std::to_string(index + 1) + ": the name is empty");
    }
    for (std::size_t j = 0; j < index; ++j) {
        const Rule& earlier = m_config.rules[j];
        if (earlier.name == rule.name) {
            add(at("name"), line,
                "duplicate rule name " + shown(rule.name) +
                    (earlier.line > 0 ? " (first at line " + std::to_string(earlier.line) + ")"
                                      : " (first is rule " + std::to_string(j + 1) + ")"));
            break;
        }
    }

    const Match& m = rule.match;
    bool kinds_valid = true;
    for (std::size_t i = 0; i < m.kinds.size(); ++i) {
        if (m.kinds[i] != k_kind_sudo && m.kinds[i] != k_kind_login) {
            add(at("match.kind[" + std::to_string(i) + "]"), line,
                prefix + "unknown kind " + shown(m.kinds[i]) + " (expected sudo or login)");
            kinds_valid = false;
        }
    }
    const auto has_kind = [&m](std::string_view kind) {
        return m.kinds.empty() || std::find(m.kinds.begin(), m.kinds.end(), kind) != m.kinds.end();
    };
    const bool login_only = !m.kinds.empty() && std::all_of(m.kinds.begin(), m.kinds.end(),
                                                            [](const std::string& k) { return k == k_kind_login; });

    const std::pair<std::string_view, const std::vector<std::string>*> lists[] = {
        {"users", &m.users},        {"commands", &m.commands},         {"runas", &m.runas},
        {"services", &m.services},  {"remote_hosts", &m.remote_hosts}, {"host.environment", &m.host.environments},
        {"host.tags", &m.host.tags}};
    for (const auto& [key, list] : lists) {
        check_names(at("match." + std::string(key)), line, prefix, "match." + std::string(key), *list);
    }
    // A criterion the request kind never has a value for would make the rule silently dead.
    const std::tuple<std::string_view, std::string_view, const std::vector<std::string>*> kind_only[] = {
        {"commands", k_kind_sudo, &m.commands},
        {"runas", k_kind_sudo, &m.runas},
        {"services", k_kind_login, &m.services},
        {"remote_hosts", k_kind_login, &m.remote_hosts}};
    for (const auto& [key, kind, list] : kind_only) {
        if (kinds_valid && !list->empty() && !has_kind(kind)) {
            add(at("match." + std::string(key)), line,
                prefix + "match." + std::string(key) + " never matches: it applies to kind " + std::string(kind) +
                    " only");
        }
    }
    for (std::size_t i = 0; i < m.users.size(); ++i) {
        if (m.users[i] == "%") {
            add(at("match.users[" + std::to_string(i) + "]"), line,
                prefix + "'%' in match.users needs a group name after it");
        }
    }
    for (std::size_t i = 0; i < m.remote_hosts.size(); ++i) {
        const std::string& pattern = m.remote_hosts[i];
        if (pattern.find('/') == std::string::npos) {
            continue;
        }
        if (auto error = cidr_error(pattern)) {
            add(at("match.remote_hosts[" + std::to_string(i) + "]"), line,
                prefix + "bad CIDR " + shown(pattern) + " in match.remote_hosts: " + *error);
        }
    }

    if (rule.intercept && rule.action == Action::deny) {
        add(at("intercept"), line,
            prefix + "intercept: true on a deny rule means nothing: the command it matches never runs");
    } else if (rule.intercept && kinds_valid && !has_kind(k_kind_sudo)) {
        add(at("intercept"), line, prefix + "intercept: true applies to kind sudo only (sudo's intercept mode)");
    }
    for (const auto& [key, list] : {std::pair{"when", &m.when_windows}, {"unless", &m.unless_windows}}) {
        for (std::size_t i = 0; i < list->size(); ++i) {
            if (windows::find(m_config, (*list)[i]) == nullptr) {
                add(at("match." + std::string(key) + ".window[" + std::to_string(i) + "]"), line,
                    prefix + "match." + key + ".window: unknown window " + shown((*list)[i]) +
                        " (define it under 'windows')");
            }
        }
    }

    if (rule.action != Action::require_approval) {
        return; // the approval settings below are never used
    }
    check_auto_approve(rule, path, prefix, line);
    if (rule.approvals < k_min_approvals || rule.approvals > k_max_approvals) {
        add(at("approvals"), line, prefix + "approvals must be 1..5, got " + std::to_string(rule.approvals));
    }
    const std::pair<std::string_view, Seconds> durations[] = {{"ttl", rule.ttl}, {"timeout", rule.timeout}};
    for (const auto& [key, value] : durations) {
        if (value <= Seconds::zero()) {
            add(at(key), line, prefix + std::string(key) + " must be positive, got " + format_duration(value));
        } else if (value > k_max_duration) {
            add(at(key), line, prefix + std::string(key) + " must be at most 24h, got " + format_duration(value));
        }
    }
    // With an unknown kind already reported, what the scope should be is anyone's guess.
    if (kinds_valid && rule.scope == Scope::login && !login_only) {
        add(at("scope"), line, prefix + "scope 'login' requires kind login (match.kind: login)");
    } else if (kinds_valid && rule.scope != Scope::login && !has_kind(k_kind_sudo)) {
        add(at("scope"), line,
            prefix + "scope '" + to_string(rule.scope) + "' requires kind sudo; a login rule takes scope 'login'");
    }
    if (!rule.ticket_pattern.empty() && !rule.ticket_regex) {
        try {
            static_cast<void>(std::regex(rule.ticket_pattern, std::regex::ECMAScript));
            add(at("ticket_pattern"), line, prefix + "ticket_pattern is set but ticket_regex was not compiled");
        } catch (const std::regex_error& e) {
            add(at("ticket_pattern"), line,
                prefix + "bad ticket_pattern " + shown(rule.ticket_pattern) + ": " + e.what());
        }
    }
    const auto& groups = rule.approver_groups.empty() ? m_config.approval.approver_groups : rule.approver_groups;
    if (groups.empty()) {
        add(at("approvals"), line,
            prefix + "approvals: " + std::to_string(rule.approvals) +
                " but approver_groups is empty here and in approval.approver_groups, so nobody "
                "could approve");
    }
    check_names(at("approver_groups"), line, prefix, "approver_groups", rule.approver_groups);
    for (std::size_t i = 0; i < rule.approver_groups.size(); ++i) {
        const std::string& group = rule.approver_groups[i];
        if (!group.empty() && group.front() == '%') {
            add(at("approver_groups[" + std::to_string(i) + "]"), line,
                prefix + "approver_groups lists group names without '%': write " + shown(group.substr(1)));
        }
    }
}

std::vector<Problem> validate_at(const Config& config, const Positions* positions) {
    return Checker(config, positions).run();
}

} // namespace

LoadResult load_config(const std::string& path) {
    std::string text;
    if (auto problem = read_text_file(path, "the config", text)) {
        LoadResult result;
        result.problems.push_back(std::move(*problem));
        return result;
    }
    return parse_config(text, path);
}

LoadResult parse_config(const std::string& text, const std::string& source) {
    Parser parser(source);
    std::optional<Config> config;
    read_document(text, parser, [&](const YAML::Node& root) { config = parser.parse(root); });
    std::vector<Problem> problems = std::move(parser.problems());
    if (config) {
        std::vector<Problem> more = validate_at(*config, &parser.positions());
        problems.insert(problems.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    }
    sort_in_file_order(problems);
    LoadResult result;
    result.problems = std::move(problems);
    if (result.problems.empty()) {
        result.config = std::move(config);
    }
    return result;
}

std::vector<Problem> validate(const Config& config) {
    return validate_at(config, nullptr);
}

const char* to_string(Action a) noexcept {
    switch (a) {
    case Action::allow:
        return "allow";
    case Action::deny:
        return "deny";
    case Action::require_approval:
        return "require_approval";
    }
    return "require_approval";
}

const char* to_string(OnExpiry o) noexcept {
    return o == OnExpiry::keep ? "keep" : "end";
}

const char* to_string(Scope s) noexcept {
    switch (s) {
    case Scope::command:
        return "command";
    case Scope::session:
        return "session";
    case Scope::login:
        return "login";
    }
    return "command";
}

} // namespace jitgate::config
