// server/config/config.cpp — YAML text -> typed server Config, its checks of meaning, and the
// checks of the files it names.
//
// Same two passes as jitgated's config (daemon/config/config.cpp), on the same shared reader
// (lib/yaml_reader.hpp): the Parser checks shape (known keys, types, value syntax) and records
// where each value came from; the Checker checks meaning and blames the recorded positions; in
// load() only, the files the config names are checked too. No pass stops at the first problem.
#include "server/config/config.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <iterator>
#include <set>
#include <system_error>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "lib/grant_token.hpp"
#include "lib/time_windows.hpp"
#include "lib/yaml_reader.hpp"

namespace jitgate::server::config {
namespace {

using jitgate::config::Entries;
using jitgate::config::Entry;
using jitgate::config::escaped;
using jitgate::config::find;
using jitgate::config::format_duration;
using jitgate::config::is_absolute_path;
using jitgate::config::locate;
using jitgate::config::Position;
using jitgate::config::Positions;
using jitgate::config::Problem;
using jitgate::config::Reader;
using jitgate::config::SectionSpec;
using jitgate::config::shown;
using jitgate::config::Where;

constexpr int k_min_approvals = 1;
constexpr int k_max_approvals = 5;
constexpr Seconds k_max_request_duration{std::chrono::hours(24)};
constexpr Seconds k_max_session_ttl{std::chrono::hours(24 * 7)};
constexpr Seconds k_max_ticket_timeout{std::chrono::seconds(60)};
// web.sign_in_*: the limits' ranges (at most 100 sign-ins a second from one address; a
// million outstanding sign-ins is about 300 MB of logins rows).
constexpr int k_max_sign_in_per_minute = 6000;
constexpr int k_max_sign_in_burst = 1000;
constexpr int k_max_sign_ins_in_progress = 1'000'000;

const SectionSpec k_top_spec{{"server", "hosts", "web", "oidc", "database", "signing", "windows", "policy",
                              "on_call_file", "on_call_files", "webhooks", "ticket_check", "audit"},
                             {{"name", "server"},
                              {"public_url", "server"},
                              {"listen", "hosts"},
                              {"cert", "hosts"},
                              {"key", "hosts"},
                              {"client_ca", "hosts"},
                              {"max_timeout", "hosts"},
                              {"max_ttl", "hosts"},
                              {"client_crl", "hosts"},
                              {"max_pending_per_host", "hosts"},
                              {"max_auto_approvals_per_minute", "hosts"},
                              {"max_connections_per_address", "hosts or web"},
                              {"session_ttl", "web"},
                              {"issuer", "oidc"},
                              {"client_id", "oidc"},
                              {"client_secret_file", "oidc"},
                              {"sqlite", "database"},
                              {"postgres", "database"},
                              {"password_file", "database"},
                              {"keys", "signing"},
                              {"active", "signing"},
                              {"syslog_facility", "audit"},
                              {"auditor_groups", "audit"},
                              {"break_glass_reviewer_groups", "audit"},
                              {"break_glass_review_within", "audit"},
                              {"retention_months", "audit"}}};
const SectionSpec k_server_spec{{"name", "public_url"}, {}};
const SectionSpec k_hosts_spec{{"listen", "cert", "key", "client_ca", "client_crl", "max_timeout", "max_ttl",
                                "max_pending_per_host", "max_auto_approvals_per_minute", "max_connections_per_address"},
                               {}};
const SectionSpec k_web_spec{{"listen", "cert", "key", "session_ttl", "max_connections_per_address",
                              "sign_in_per_minute", "sign_in_burst", "max_sign_ins_in_progress"},
                             {}};
const SectionSpec k_oidc_spec{{"issuer", "client_id", "client_secret_file", "ca_file", "username_claim", "groups_claim",
                               "users", "groups", "scopes"},
                              {}};
const SectionSpec k_database_spec{{"sqlite", "postgres", "password_file"}, {}};
const SectionSpec k_signing_spec{{"keys", "active"}, {{"kid", "keys"}, {"private_key", "keys"}}};
const SectionSpec k_signing_key_spec{{"kid", "private_key"}, {}};
const SectionSpec k_policy_spec{{"name", "hosts", "environments", "tags", "rules", "approver_groups", "min_approvals",
                                 "ticket_check", "when", "unless", "deny", "auto_approve", "auto_approve_sod"},
                                {{"window", "when"}, {"on_call", "auto_approve"}}};
const SectionSpec k_policy_auto_spec{{"on_call"}, {}};
const SectionSpec k_when_spec{{"window"}, {}};
const SectionSpec k_webhook_spec{{"name", "url", "format", "secret_file", "ca_file", "events"}, {}};
const SectionSpec k_ticket_check_spec{{"url", "token_file", "ca_file", "approved_field", "approved_value",
                                       "window_start_field", "window_end_field", "timeout"},
                                      {}};
const SectionSpec k_audit_spec{{"syslog_facility", "auditor_groups", "break_glass_reviewer_groups",
                                "break_glass_review_within", "retention_months"},
                               {}};
constexpr Seconds k_min_review_within{std::chrono::minutes(1)};
constexpr Seconds k_max_review_within{std::chrono::hours(24 * 90)};

const Where k_top_where{"", "", "at top level", ""};

// The `name` of a list item read first, so every later message can say which item it is about.
// Iterates: operator[] on a const node would throw for an absent key.
std::string name_of(const YAML::Node& node, std::string fallback) {
    for (auto it = node.begin(); it != node.end(); ++it)
        if (it->first.IsScalar() && it->first.Scalar() == "name" && it->second.IsScalar()) return it->second.Scalar();
    return fallback;
}

Where section_where(const std::string& name) {
    return Where{name, name + ".", "in '" + name + "'", ""};
}

// "0.0.0.0:8443", "[::]:8443". nullopt if malformed.
std::optional<Listen> parse_listen(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) return std::nullopt;
    std::string address = text.substr(0, colon);
    const std::string port_text = text.substr(colon + 1);
    std::array<unsigned char, 16> bytes{};
    if (address.size() > 2 && address.front() == '[' && address.back() == ']') {
        address = address.substr(1, address.size() - 2);
        if (inet_pton(AF_INET6, address.c_str(), bytes.data()) != 1) return std::nullopt;
    } else if (inet_pton(AF_INET, address.c_str(), bytes.data()) != 1) {
        return std::nullopt;
    }
    const bool digits = !port_text.empty() && port_text.size() <= 5 &&
                        std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; });
    const auto port = digits ? jitgate::config::parse_integer(port_text) : std::nullopt;
    if (!port || *port > 65535) return std::nullopt;
    return Listen{address, static_cast<std::uint16_t>(*port)};
}

std::string to_text(const Listen& listen) {
    const bool v6 = listen.address.find(':') != std::string::npos;
    return (v6 ? "[" + listen.address + "]" : listen.address) + ":" + std::to_string(listen.port);
}

bool valid_source_name(const std::string& name) {
    return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    });
}

// The words YAML 1.1 (and yaml-cpp's convert<bool>) reads as a boolean, in any case. A source
// named so would be ambiguous: `on_call: on` must not be read as `on_call: true`.
bool yaml_boolean_word(const std::string& name) {
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return lower == "y" || lower == "yes" || lower == "on" || lower == "true" || lower == "n" || lower == "no" ||
           lower == "off" || lower == "false";
}

bool is_https_url(const std::string& url) {
    if (url.rfind("https://", 0) != 0 || url.size() <= 8) return false;
    // No spaces or control characters: the URL goes into HTTP requests and links as it is.
    return std::all_of(url.begin(), url.end(), [](char c) {
        const auto b = static_cast<unsigned char>(c);
        return b > 0x20 && b != 0x7f;
    });
}

// ---------------------------------------------------------------------------------------------
// The parser: shape only.

class Parser : public Reader {
public:
    explicit Parser(std::string source) : Reader(std::move(source)) {}

    Config parse(const YAML::Node& root);

private:
    void set_string(const Where& where, const Entries& e, std::string_view key, std::string& field) {
        if (auto v = string_value(where, find(e, key))) field = *v;
    }
    void set_list(const Where& where, const Entries& e, std::string_view key, std::vector<std::string>& field) {
        if (auto v = list_value(where, find(e, key))) field = std::move(*v);
    }
    void set_duration(const Where& where, const Entries& e, std::string_view key, Seconds& field) {
        if (auto v = duration_value(where, find(e, key))) field = *v;
    }
    // An integer; its range is checked by validate() (so a Config built in code is checked too).
    void set_count(const Where& where, const Entries& e, std::string_view key, std::string_view expected, int& field) {
        if (auto v = integer_value(where, find(e, key), expected)) field = static_cast<int>(*v); // int-sized
    }
    void set_listen(const Where& where, const Entries& e, Listen& field);

    void parse_hosts(const Entries& top, Config::Hosts& hosts);
    void parse_web(const Entries& top, Config& config);
    void parse_oidc(const Entries& top, Config::Oidc& oidc);
    void parse_database(const Entries& top, Config::Database& database);
    void parse_signing(const Entries& top, Config::Signing& signing);
    void parse_policy(const Entries& top, std::vector<PolicyEntry>& policy);
    void parse_webhooks(const Entries& top, std::vector<Webhook>& webhooks);
    void parse_ticket_check(const Entries& top, Config::TicketCheck& ticket_check);
    // Calls `item(node, index)` for each element of the list under `key`.
    template <typename Item>
    void for_each_item(const Entries& top, std::string_view key, std::string_view expected, Item item);
};

void Parser::set_listen(const Where& where, const Entries& e, Listen& field) {
    const Entry* entry = find(e, "listen");
    const auto text = string_value(where, entry);
    if (!text) return;
    if (auto listen = parse_listen(*text)) {
        field = *listen;
    } else {
        add(entry->value.Mark(), "bad address " + shown(*text) + " for '" + where.key_name("listen") +
                                     "': expected <IP address>:<port 0-65535>, e.g. 0.0.0.0:8443 or [::]:8443");
    }
}

template <typename Item>
void Parser::for_each_item(const Entries& top, std::string_view key, std::string_view expected, Item item) {
    const Entry* entry = find(top, key);
    if (entry == nullptr || entry->value.IsNull()) return;
    if (!entry->value.IsSequence()) {
        wrong_type(k_top_where, *entry, expected);
        return;
    }
    for (std::size_t i = 0; i < entry->value.size(); ++i) item(entry->value[i], i);
}

Config Parser::parse(const YAML::Node& root) {
    Config config;
    config.source = source();
    if (root.IsNull()) return config;
    if (!root.IsMap()) {
        add(root.Mark(), "the top level must be a mapping of sections (server, hosts, web, oidc, database, signing, "
                         "policy, webhooks, ticket_check, audit), got " +
                             jitgate::config::describe(root));
        return config;
    }
    const Entries top = entries(root, k_top_where, k_top_spec);
    {
        const Where where = section_where("server");
        const Entries e = section(top, "server", k_top_where, where, k_server_spec);
        set_string(where, e, "name", config.server.name);
        set_string(where, e, "public_url", config.server.public_url);
    }
    parse_hosts(top, config.hosts);
    parse_web(top, config);
    parse_oidc(top, config.oidc);
    parse_database(top, config.database);
    parse_signing(top, config.signing);
    windows::parse_windows(*this, find(top, "windows"), config.windows);
    parse_policy(top, config.policy);
    set_string(k_top_where, top, "on_call_file", config.on_call_file);
    if (auto v = string_map_value(k_top_where, find(top, "on_call_files"), "a mapping of source name to file"))
        config.on_call_files = std::move(*v);
    parse_webhooks(top, config.webhooks);
    parse_ticket_check(top, config.ticket_check);
    {
        const Where where = section_where("audit");
        const Entries e = section(top, "audit", k_top_where, where, k_audit_spec);
        std::vector<std::pair<std::string_view, std::string>> facilities;
        for (const char* f : {"auth", "authpriv", "daemon", "user", "local0", "local1", "local2", "local3", "local4",
                              "local5", "local6", "local7"})
            facilities.emplace_back(f, f);
        if (auto v = enum_value<std::string>(where, find(e, "syslog_facility"), facilities))
            config.audit.syslog_facility = *v;
        set_list(where, e, "auditor_groups", config.audit.auditor_groups);
        // The default sits here, in one place: the auditors review break-glass use.
        if (find(e, "break_glass_reviewer_groups") == nullptr)
            config.audit.break_glass_reviewer_groups = config.audit.auditor_groups;
        else
            set_list(where, e, "break_glass_reviewer_groups", config.audit.break_glass_reviewer_groups);
        set_duration(where, e, "break_glass_review_within", config.audit.break_glass_review_within);
        set_count(where, e, "retention_months", "a number of months", config.audit.retention_months);
    }
    return config;
}

void Parser::parse_hosts(const Entries& top, Config::Hosts& hosts) {
    const Where where = section_where("hosts");
    const Entries e = section(top, "hosts", k_top_where, where, k_hosts_spec);
    set_listen(where, e, hosts.listen);
    set_string(where, e, "cert", hosts.cert);
    set_string(where, e, "key", hosts.key);
    set_string(where, e, "client_ca", hosts.client_ca);
    set_duration(where, e, "max_timeout", hosts.max_timeout);
    set_duration(where, e, "max_ttl", hosts.max_ttl);
    set_string(where, e, "client_crl", hosts.client_crl);
    set_count(where, e, "max_pending_per_host", "an integer 1..10000", hosts.max_pending_per_host);
    set_count(where, e, "max_auto_approvals_per_minute", "an integer 1..1000", hosts.max_auto_approvals_per_minute);
    set_count(where, e, "max_connections_per_address", "an integer 0..100000", hosts.max_connections_per_address);
}

void Parser::parse_web(const Entries& top, Config& config) {
    const Where where = section_where("web");
    const Entries e = section(top, "web", k_top_where, where, k_web_spec);
    set_listen(where, e, config.web.listen);
    set_string(where, e, "cert", config.web.cert);
    set_string(where, e, "key", config.web.key);
    set_duration(where, e, "session_ttl", config.web.session_ttl);
    set_count(where, e, "max_connections_per_address", "an integer 0..100000", config.web.max_connections_per_address);
    if (auto v = integer_value(where, find(e, "sign_in_per_minute"), "an integer 1..6000"))
        config.web.sign_in_per_minute = static_cast<int>(*v);
    if (auto v = integer_value(where, find(e, "sign_in_burst"), "an integer 1..1000"))
        config.web.sign_in_burst = static_cast<int>(*v);
    if (auto v = integer_value(where, find(e, "max_sign_ins_in_progress"), "an integer 1..1000000"))
        config.web.max_sign_ins_in_progress = static_cast<int>(*v);
    // The default sits here, in one place: a server with one certificate for both listeners.
    if (find(e, "cert") == nullptr && find(e, "key") == nullptr) {
        config.web.cert = config.hosts.cert;
        config.web.key = config.hosts.key;
    }
}

void Parser::parse_oidc(const Entries& top, Config::Oidc& oidc) {
    const Where where = section_where("oidc");
    const Entries e = section(top, "oidc", k_top_where, where, k_oidc_spec);
    set_string(where, e, "issuer", oidc.issuer);
    set_string(where, e, "client_id", oidc.client_id);
    set_string(where, e, "client_secret_file", oidc.client_secret_file);
    set_string(where, e, "ca_file", oidc.ca_file);
    set_string(where, e, "username_claim", oidc.username_claim);
    set_string(where, e, "groups_claim", oidc.groups_claim);
    set_list(where, e, "scopes", oidc.scopes);
    const std::pair<std::string_view, std::map<std::string, std::string>*> maps[] = {{"users", &oidc.users},
                                                                                     {"groups", &oidc.groups}};
    for (const auto& [key, field] : maps) {
        const std::string expected = key == "users" ? "a mapping of IdP user name to Unix user name"
                                                    : "a mapping of IdP group to approver group";
        if (auto v = string_map_value(where, find(e, key), expected)) field->insert(v->begin(), v->end());
    }
}

void Parser::parse_database(const Entries& top, Config::Database& database) {
    const Where where = section_where("database");
    const Entries e = section(top, "database", k_top_where, where, k_database_spec);
    set_string(where, e, "sqlite", database.sqlite);
    set_string(where, e, "postgres", database.postgres);
    set_string(where, e, "password_file", database.password_file);
    const Entry* sqlite = find(e, "sqlite");
    const Entry* postgres = find(e, "postgres");
    if (sqlite != nullptr && postgres != nullptr) {
        add(postgres->key_node.Mark(), "set database.sqlite or database.postgres, not both (sqlite at line " +
                                           std::to_string(jitgate::config::position_of(sqlite->key_node.Mark()).line) +
                                           ")");
    }
}

void Parser::parse_signing(const Entries& top, Config::Signing& signing) {
    const Where where = section_where("signing");
    const Entries e = section(top, "signing", k_top_where, where, k_signing_spec);
    set_string(where, e, "active", signing.active);
    const Entry* keys = find(e, "keys");
    if (keys != nullptr && !keys->value.IsNull()) {
        if (!keys->value.IsSequence()) {
            wrong_type(where, *keys, "a list of {kid, private_key}");
        } else {
            for (std::size_t i = 0; i < keys->value.size(); ++i) {
                const YAML::Node node = keys->value[i];
                if (!node.IsMap()) {
                    add(node.IsNull() ? keys->value.Mark() : node.Mark(),
                        "signing.keys item " + std::to_string(i + 1) + ": expected a mapping (kid, private_key), got " +
                            jitgate::config::describe(node));
                    continue;
                }
                const std::string path = "signing.keys[" + std::to_string(signing.keys.size()) + "]";
                record(path, node.Mark());
                const Where item{path, "signing.keys.", "in signing.keys item " + std::to_string(i + 1), ""};
                const Entries k = entries(node, item, k_signing_key_spec);
                Config::Signing::Key key;
                set_string(item, k, "kid", key.kid);
                set_string(item, k, "private_key", key.private_key);
                signing.keys.push_back(std::move(key));
            }
        }
    }
    if (signing.active.empty() && !signing.keys.empty()) signing.active = signing.keys.front().kid;
}

void Parser::parse_policy(const Entries& top, std::vector<PolicyEntry>& policy) {
    for_each_item(top, "policy", "a list of policy entries", [&](const YAML::Node& node, std::size_t i) {
        if (!node.IsMap()) {
            add(node.Mark(), "policy entry " + std::to_string(i + 1) +
                                 ": expected a mapping (name, hosts, approver_groups, ...), got " +
                                 jitgate::config::describe(node));
            return;
        }
        PolicyEntry entry;
        entry.name = name_of(node, "policy-" + std::to_string(i + 1));
        const std::string path = "policy[" + std::to_string(policy.size()) + "]";
        record(path, node.Mark());
        const Where where{path, "", "in policy " + shown(entry.name), "policy " + shown(entry.name) + ": "};
        const Entries e = entries(node, where, k_policy_spec);
        if (const Entry* name = find(e, "name")) string_value(where, name); // reports a non-string name
        set_list(where, e, "hosts", entry.hosts);
        set_list(where, e, "environments", entry.environments);
        set_list(where, e, "tags", entry.tags);
        set_list(where, e, "rules", entry.rules);
        set_list(where, e, "approver_groups", entry.approver_groups);
        if (auto v = integer_value(where, find(e, "min_approvals"), "an integer 1..5"))
            entry.min_approvals = static_cast<int>(*v);
        if (auto v = bool_value(where, find(e, "ticket_check"))) entry.ticket_check = *v;
        if (auto v = bool_value(where, find(e, "deny"))) entry.deny = *v;
        if (auto v = bool_value(where, find(e, "auto_approve_sod"))) entry.auto_approve_sod = *v;
        if (const Entry* given = find(e, "auto_approve")) {
            const Where w{path + ".auto_approve", "auto_approve.", "in 'auto_approve' of policy " + shown(entry.name),
                          where.prefix};
            const Entries ae = section(e, "auto_approve", where, w, k_policy_auto_spec);
            // `on_call: true` (the default source, on_call_file) or `on_call: <name>` (one of
            // on_call_files); `false` is no condition.
            if (const Entry* oc = find(ae, "on_call")) {
                // SECURITY NOTE: only a plain (unquoted) `true` or `false` is a flag. yaml-cpp's
                // convert<bool> also takes y/yes/on/... and ignores quotes, which would make
                // `on_call: on` (a source named "on") silently mean the default on-call file.
                // Any other text is a source name; one that reads as a boolean is refused later.
                const bool plain = oc->value.IsScalar() && oc->value.Tag() == "?";
                if (plain && (oc->value.Scalar() == "true" || oc->value.Scalar() == "false")) {
                    entry.auto_approve_on_call = oc->value.Scalar() == "true";
                } else if (auto name = string_value(w, oc)) {
                    entry.auto_approve_on_call = true;
                    entry.auto_approve_on_call_source = *name;
                }
            }
            // SECURITY NOTE: an auto_approve that names no condition is an error, not "never":
            // a templating slip should be seen, and a later key must not start approving.
            if (!entry.auto_approve_on_call)
                add(given->value.Mark(),
                    where.prefix + "auto_approve names no condition (expected {on_call: true} or {on_call: <source>})");
        }
        for (const auto& [key, target] :
             {std::pair{"when", &entry.when_windows}, std::pair{"unless", &entry.unless_windows}}) {
            const Where w{path + "." + key, std::string(key) + ".",
                          "in '" + std::string(key) + "' of policy " + shown(entry.name), where.prefix};
            const Entries we = section(e, key, where, w, k_when_spec);
            if (auto v = list_value(w, find(we, "window"))) *target = std::move(*v);
            // SECURITY NOTE: a `when` that names no window would read as "always" (an unless as
            // "never"): a templating slip must not widen an entry, so it is an error.
            if (const Entry* given = find(e, key); given != nullptr && target->empty())
                add(given->value.Mark(), where.prefix + key + " names no window (expected {window: [name, ...]})");
        }
        policy.push_back(std::move(entry));
    });
}

void Parser::parse_webhooks(const Entries& top, std::vector<Webhook>& webhooks) {
    for_each_item(top, "webhooks", "a list of webhooks", [&](const YAML::Node& node, std::size_t i) {
        if (!node.IsMap()) {
            add(node.Mark(), "webhook " + std::to_string(i + 1) +
                                 ": expected a mapping (name, url, format, ...), got " +
                                 jitgate::config::describe(node));
            return;
        }
        Webhook hook;
        hook.name = name_of(node, "webhook-" + std::to_string(i + 1));
        const std::string path = "webhooks[" + std::to_string(webhooks.size()) + "]";
        record(path, node.Mark());
        const Where where{path, "", "in webhook " + shown(hook.name), "webhook " + shown(hook.name) + ": "};
        const Entries e = entries(node, where, k_webhook_spec);
        if (const Entry* name = find(e, "name")) string_value(where, name);
        set_string(where, e, "url", hook.url);
        if (auto v = enum_value<std::string>(where, find(e, "format"), {{"json", "json"}, {"slack", "slack"}}))
            hook.format = *v;
        set_string(where, e, "secret_file", hook.secret_file);
        set_string(where, e, "ca_file", hook.ca_file);
        set_list(where, e, "events", hook.events);
        webhooks.push_back(std::move(hook));
    });
}

void Parser::parse_ticket_check(const Entries& top, Config::TicketCheck& t) {
    const Where where = section_where("ticket_check");
    const Entries e = section(top, "ticket_check", k_top_where, where, k_ticket_check_spec);
    set_string(where, e, "url", t.url);
    set_string(where, e, "token_file", t.token_file);
    set_string(where, e, "ca_file", t.ca_file);
    set_string(where, e, "approved_field", t.approved_field);
    set_string(where, e, "approved_value", t.approved_value);
    set_string(where, e, "window_start_field", t.window_start_field);
    set_string(where, e, "window_end_field", t.window_end_field);
    set_duration(where, e, "timeout", t.timeout);
}

// ---------------------------------------------------------------------------------------------
// The checker: meaning.

class Checker {
public:
    Checker(const Config& config, const Positions* positions) : m_config(config), m_positions(positions) {}

    std::vector<Problem> run() {
        check_server();
        check_listeners();
        check_oidc();
        check_database();
        check_signing();
        check_windows();
        check_policy();
        check_webhooks();
        check_ticket_check();
        check_audit();
        return std::move(m_problems);
    }

private:
    void add(std::string path, std::string message) {
        const Position position = locate(m_positions, std::move(path), 0);
        m_problems.push_back({m_config.source, position.line, position.column, escaped(message)});
    }
    // A file the server reads: required or not, an absolute path.
    void file(const std::string& path, const std::string& name, const std::string& value, bool required,
              const std::string& prefix = "") {
        if (value.empty()) {
            if (required) add(path, prefix + name + " is required");
        } else if (!is_absolute_path(value)) {
            add(path, prefix + name + " must be an absolute path, got " + shown(value));
        }
    }
    void https(const std::string& path, const std::string& name, const std::string& value,
               const std::string& prefix = "") {
        if (!is_https_url(value)) add(path, prefix + name + " must be an https:// URL, got " + shown(value));
    }
    void range(const std::string& path, int value, int min, int max) {
        if (value < min || value > max)
            add(path, path + " must be " + std::to_string(min) + ".." + std::to_string(max) + ", got " +
                          std::to_string(value));
    }
    void duration(const std::string& path, Seconds value, Seconds max) {
        if (value > max)
            add(path, path + " must be at most " + format_duration(max) + ", got " + format_duration(value));
    }
    void range(const std::string& path, int value, int max) {
        if (value < 1 || value > max)
            add(path, path + " must be 1.." + std::to_string(max) + ", got " + std::to_string(value));
    }
    void names(const std::string& path, const std::string& prefix, const std::string& key,
               const std::vector<std::string>& list) {
        for (std::size_t i = 0; i < list.size(); ++i)
            if (list[i].empty()) add(path + "[" + std::to_string(i) + "]", prefix + "empty entry in '" + key + "'");
    }

    void check_server();
    void check_listeners();
    void check_oidc();
    void check_database();
    void check_signing();
    void check_windows();
    void check_policy();
    void check_auto_approve(const PolicyEntry& p, const std::string& path, const std::string& prefix);
    void check_webhooks();
    void check_ticket_check();
    void check_audit();

    const Config& m_config;
    const Positions* m_positions;
    std::vector<Problem> m_problems;
};

void Checker::check_server() {
    const auto& s = m_config.server;
    if (s.name.empty()) {
        add("server.name", "server.name is required (the grant issuer, e.g. approvals.example.com)");
    } else if (s.name.size() > 255 ||
               !std::all_of(s.name.begin(), s.name.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
        add("server.name", "server.name must be 1-255 printable ASCII characters without spaces, got " + shown(s.name));
    }
    if (s.public_url.empty()) {
        add("server.public_url", "server.public_url is required (e.g. https://approvals.example.com)");
    } else {
        https("server.public_url", "server.public_url", s.public_url);
    }
}

void Checker::check_listeners() {
    const auto& h = m_config.hosts;
    const auto& w = m_config.web;
    file("hosts.cert", "hosts.cert", h.cert, true);
    file("hosts.key", "hosts.key", h.key, true);
    file("hosts.client_ca", "hosts.client_ca", h.client_ca, true, "");
    file("hosts.client_crl", "hosts.client_crl", h.client_crl, false, "");
    range("hosts.max_pending_per_host", h.max_pending_per_host, 1, 10000);
    range("hosts.max_auto_approvals_per_minute", h.max_auto_approvals_per_minute, 1, 1000);
    range("hosts.max_connections_per_address", h.max_connections_per_address, 0, 100000);
    range("web.max_connections_per_address", w.max_connections_per_address, 0, 100000);
    const bool hosts_pair = w.cert == h.cert && w.key == h.key; // the default, checked as hosts.*
    if (!hosts_pair && w.cert.empty() != w.key.empty()) {
        add(w.cert.empty() ? "web.key" : "web.cert",
            "web.cert and web.key go together: set both, or neither to use the hosts' certificate");
    } else if (!hosts_pair) {
        file("web.cert", "web.cert", w.cert, false);
        file("web.key", "web.key", w.key, false);
    }
    if (h.listen.port != 0 && h.listen.port == w.listen.port &&
        (h.listen.address == w.listen.address || h.listen.address == "0.0.0.0" || w.listen.address == "0.0.0.0" ||
         h.listen.address == "::" || w.listen.address == "::")) {
        add("web.listen", "web.listen " + to_text(w.listen) + " and hosts.listen " + to_text(h.listen) +
                              " cannot share a port (hosts need mutual TLS, browsers cannot)");
    }
    duration("hosts.max_timeout", h.max_timeout, k_max_request_duration);
    duration("hosts.max_ttl", h.max_ttl, k_max_request_duration);
    duration("web.session_ttl", w.session_ttl, k_max_session_ttl);
    range("web.sign_in_per_minute", w.sign_in_per_minute, k_max_sign_in_per_minute);
    range("web.sign_in_burst", w.sign_in_burst, k_max_sign_in_burst);
    range("web.max_sign_ins_in_progress", w.max_sign_ins_in_progress, k_max_sign_ins_in_progress);
}

void Checker::check_oidc() {
    const auto& o = m_config.oidc;
    const bool configured = !o.issuer.empty() || !o.client_id.empty() || !o.client_secret_file.empty();
    if (!configured) return;
    if (o.issuer.empty()) {
        add("oidc", "oidc.issuer is required when oidc is configured (e.g. https://idp.example.com/realms/corp)");
        return;
    }
    https("oidc.issuer", "oidc.issuer", o.issuer);
    if (o.client_id.empty()) add("oidc", "oidc.client_id is required");
    file("oidc.client_secret_file", "oidc.client_secret_file", o.client_secret_file, true);
    file("oidc.ca_file", "oidc.ca_file", o.ca_file, false);
    if (o.username_claim.empty()) add("oidc.username_claim", "oidc.username_claim must not be empty");
    if (o.groups_claim.empty()) add("oidc.groups_claim", "oidc.groups_claim must not be empty");
    if (std::find(o.scopes.begin(), o.scopes.end(), "openid") == o.scopes.end())
        add("oidc.scopes", "oidc.scopes must include 'openid' (without it there is no ID token)");
    for (const auto& [map, name] : {std::pair{&o.users, "oidc.users"}, {&o.groups, "oidc.groups"}})
        for (const auto& [from, to] : *map)
            if (from.empty() || to.empty())
                add(std::string(name) + "." + from,
                    std::string(name) + ": " + shown(from) + " -> " + shown(to) + ": neither side may be empty");
}

void Checker::check_database() {
    const auto& d = m_config.database;
    if (d.postgres.empty()) {
        if (d.sqlite.empty()) {
            add("database", "database: set sqlite (a file) or postgres (a conninfo); the server needs a database");
        } else {
            file("database.sqlite", "database.sqlite", d.sqlite, true);
        }
        if (!d.password_file.empty())
            add("database.password_file", "database.password_file is for postgres only; database.postgres is not set");
        return;
    }
    if (d.postgres.find("password") != std::string::npos)
        add("database.postgres", "database.postgres must not hold a password; put it in database.password_file");
    file("database.password_file", "database.password_file", d.password_file, false);
}

void Checker::check_signing() {
    const auto& s = m_config.signing;
    if (s.keys.empty()) {
        add("signing", "signing.keys is empty: no grant could be signed (make a key with: jitgate-server keygen "
                       "--dir /etc/jitgate-server/keys --kid k1)");
        return;
    }
    std::set<std::string> seen;
    std::string kids;
    for (std::size_t i = 0; i < s.keys.size(); ++i) {
        const auto& key = s.keys[i];
        const std::string path = "signing.keys[" + std::to_string(i) + "]";
        if (key.kid.empty()) {
            add(path + ".kid", "signing.keys item " + std::to_string(i + 1) + ": kid is required");
        } else if (!grant_token::is_valid_kid(key.kid)) {
            add(path + ".kid",
                "bad kid " + shown(key.kid) + " in signing.keys: 1 to 64 characters of A-Z a-z 0-9 . _ -");
        } else if (!seen.insert(key.kid).second) {
            add(path + ".kid", "kid " + shown(key.kid) + " is listed twice in signing.keys");
        }
        kids += (kids.empty() ? "" : ", ") + key.kid;
        file(path + ".private_key", "private_key", key.private_key, true,
             "signing.keys item " + std::to_string(i + 1) + ": ");
    }
    const bool found = std::any_of(s.keys.begin(), s.keys.end(), [&s](const auto& k) { return k.kid == s.active; });
    if (!found)
        add("signing.active", "signing.active " + shown(s.active) + " is not a kid of signing.keys (" + kids + ")");
}

void Checker::check_windows() {
    windows::check_windows(
        m_config.windows, m_positions != nullptr,
        [this](const std::string& path, int, std::string message) { add(path, std::move(message)); });
}

void Checker::check_policy() {
    const auto& policy = m_config.policy;
    file("on_call_file", "on_call_file", m_config.on_call_file, false);
    for (const auto& [name, path] : m_config.on_call_files) {
        if (!valid_source_name(name))
            add("on_call_files." + name,
                "on_call_files: bad source name " + shown(name) + " (expected letters, digits, '-' or '_', up to 64)");
        else if (yaml_boolean_word(name))
            add("on_call_files." + name, "on_call_files: source name " + shown(name) +
                                             " reads as a boolean in YAML (y, yes, on, n, no, off, true, false); "
                                             "choose another name");
        file("on_call_files." + name, "on_call_files." + name, path, true);
    }
    for (std::size_t i = 0; i < policy.size(); ++i) {
        const PolicyEntry& p = policy[i];
        const std::string path = "policy[" + std::to_string(i) + "]";
        const std::string prefix = "policy " + shown(p.name) + ": ";
        if (p.name.empty()) add(path + ".name", "policy entry " + std::to_string(i + 1) + ": the name is empty");
        for (std::size_t j = 0; j < i; ++j) {
            if (policy[j].name == p.name) {
                add(path + ".name", "duplicate policy name " + shown(p.name));
                break;
            }
        }
        if (p.approver_groups.empty() && !p.deny)
            add(path, prefix + "approver_groups is required (who may approve the requests this entry covers)");
        for (const auto& [key, list] : {std::pair{"when", &p.when_windows}, std::pair{"unless", &p.unless_windows}}) {
            for (std::size_t k = 0; k < list->size(); ++k) {
                if (windows::find(m_config.windows, (*list)[k]) == nullptr)
                    add(path + "." + key + ".window[" + std::to_string(k) + "]",
                        prefix + key + ".window: unknown window " + shown((*list)[k]) + " (define it under 'windows')");
            }
        }
        if (p.min_approvals < k_min_approvals || p.min_approvals > k_max_approvals)
            add(path + ".min_approvals", prefix + "min_approvals must be 1..5, got " + std::to_string(p.min_approvals));
        if (p.ticket_check && m_config.ticket_check.url.empty())
            add(path + ".ticket_check", prefix + "ticket_check is true but ticket_check.url is not set");
        check_auto_approve(p, path, prefix);
        const std::pair<const char*, const std::vector<std::string>*> lists[] = {
            {"hosts", &p.hosts},
            {"environments", &p.environments},
            {"tags", &p.tags},
            {"rules", &p.rules},
            {"approver_groups", &p.approver_groups}};
        for (const auto& [key, list] : lists) names(path + "." + key, prefix, key, *list);
    }
}

void Checker::check_auto_approve(const PolicyEntry& p, const std::string& path, const std::string& prefix) {
    if (!p.auto_approve_on_call) {
        if (p.auto_approve_sod)
            add(path + ".auto_approve_sod", prefix + "auto_approve_sod without auto_approve means nothing");
        return;
    }
    const std::string at = path + ".auto_approve";
    if (p.deny) add(at, prefix + "auto_approve on a deny entry makes no sense (a deny entry approves nothing)");
    // SECURITY NOTE: two approvals exist to keep one person from acting alone; the service's own
    // approval would undo that unless the entry says so in as many words.
    if (p.min_approvals >= 2 && !p.auto_approve_sod)
        add(at, prefix + "auto_approve with min_approvals: " + std::to_string(p.min_approvals) +
                    " would bypass segregation of duties; remove it, or set auto_approve_sod: true to mean it");
    const std::string& source = p.auto_approve_on_call_source;
    if (!source.empty() && yaml_boolean_word(source)) {
        // SECURITY NOTE: `on_call: yes` (or a quoted "on", or `True`) is neither the flag nor a
        // name anyone should rely on: refuse it rather than guess which was meant.
        add(at + ".on_call", prefix + "auto_approve.on_call: " + shown(source) +
                                 " reads as a boolean in YAML; write on_call: true (the on_call_file) or the name "
                                 "of a source of on_call_files that is not a boolean word");
    } else if (source.empty()) {
        if (m_config.on_call_file.empty()) add(at, prefix + "auto_approve.on_call needs on_call_file (who is on call)");
    } else if (std::none_of(m_config.on_call_files.begin(), m_config.on_call_files.end(),
                            [&](const auto& s) { return s.first == source; })) {
        // SECURITY NOTE: an unknown source is an error, not the default file: a typo must not
        // make the DBA on call "on call" for every entry.
        add(at, prefix + "auto_approve.on_call names an unknown on-call source " + shown(source) +
                    " (not in on_call_files)");
    }
}

void Checker::check_webhooks() {
    const auto& hooks = m_config.webhooks;
    for (std::size_t i = 0; i < hooks.size(); ++i) {
        const Webhook& w = hooks[i];
        const std::string path = "webhooks[" + std::to_string(i) + "]";
        const std::string prefix = "webhook " + shown(w.name) + ": ";
        for (std::size_t j = 0; j < i; ++j) {
            if (hooks[j].name == w.name) {
                add(path + ".name", "duplicate webhook name " + shown(w.name));
                break;
            }
        }
        if (w.url.empty()) {
            add(path, prefix + "url is required");
        } else {
            https(path + ".url", "url", w.url, prefix);
        }
        if (w.format != "json" && w.format != "slack")
            add(path + ".format", prefix + "format must be json or slack, got " + shown(w.format));
        if (w.format == "json" && w.secret_file.empty())
            add(path, prefix + "format json needs secret_file (the HMAC-SHA256 key the receiver checks)");
        file(path + ".secret_file", "secret_file", w.secret_file, false, prefix);
        file(path + ".ca_file", "ca_file", w.ca_file, false, prefix);
        if (w.events.empty()) add(path + ".events", prefix + "events is empty: this webhook would never be called");
        for (std::size_t j = 0; j < w.events.size(); ++j) {
            if (std::find(std::begin(k_webhook_events), std::end(k_webhook_events), w.events[j]) ==
                std::end(k_webhook_events))
                add(path + ".events[" + std::to_string(j) + "]",
                    prefix + "unknown event " + shown(w.events[j]) +
                        " (known: request.filed, request.approved, request.approval_added, request.denied, "
                        "request.cancelled, request.expired, grant.signed, audit.chain_gap, audit.chain_fork, "
                        "audit.chain_edited, audit.chain_restarted, break_glass.review_overdue)");
        }
    }
}

void Checker::check_audit() {
    const auto& a = m_config.audit;
    names("audit.auditor_groups", "", "auditor_groups", a.auditor_groups);
    names("audit.break_glass_reviewer_groups", "", "break_glass_reviewer_groups", a.break_glass_reviewer_groups);
    if (a.break_glass_review_within < k_min_review_within || a.break_glass_review_within > k_max_review_within)
        add("audit.break_glass_review_within",
            "audit.break_glass_review_within must be " + format_duration(k_min_review_within) + ".." +
                format_duration(k_max_review_within) + ", got " + format_duration(a.break_glass_review_within));
    // SECURITY NOTE: less than a year of evidence is refused outright (SOX asks for seven).
    if (a.retention_months < 12 || a.retention_months > 1200)
        add("audit.retention_months", "audit.retention_months must be 12..1200 (months; 84 is seven years), got " +
                                          std::to_string(a.retention_months));
}

void Checker::check_ticket_check() {
    const auto& t = m_config.ticket_check;
    if (t.url.empty()) return;
    https("ticket_check.url", "ticket_check.url", t.url);
    file("ticket_check.token_file", "ticket_check.token_file", t.token_file, false);
    file("ticket_check.ca_file", "ticket_check.ca_file", t.ca_file, false);
    const std::pair<const char*, const std::string*> fields[] = {{"approved_field", &t.approved_field},
                                                                 {"approved_value", &t.approved_value},
                                                                 {"window_start_field", &t.window_start_field},
                                                                 {"window_end_field", &t.window_end_field}};
    for (const auto& [key, value] : fields)
        if (value->empty()) add(std::string("ticket_check.") + key, std::string("ticket_check.") + key + " is empty");
    if (t.timeout > k_max_ticket_timeout)
        add("ticket_check.timeout", "ticket_check.timeout must be at most 60s, got " + format_duration(t.timeout));
}

// ---------------------------------------------------------------------------------------------
// The files (load only).

struct NamedFile {
    std::string path; // positions path of the key that names it
    std::string name; // how the key is named in messages
    std::string file;
    bool secret; // a private key or secret: nobody else may read it
};

std::vector<NamedFile> named_files(const Config& c) {
    std::vector<NamedFile> out;
    const auto add = [&out](std::string path, std::string name, const std::string& file, bool secret) {
        if (!file.empty() && is_absolute_path(file)) out.push_back({std::move(path), std::move(name), file, secret});
    };
    add("hosts.cert", "hosts.cert", c.hosts.cert, false);
    add("hosts.key", "hosts.key", c.hosts.key, true);
    add("hosts.client_ca", "hosts.client_ca", c.hosts.client_ca, false);
    add("hosts.client_crl", "hosts.client_crl", c.hosts.client_crl, false);
    if (c.web.cert != c.hosts.cert) add("web.cert", "web.cert", c.web.cert, false);
    if (c.web.key != c.hosts.key) add("web.key", "web.key", c.web.key, true);
    add("oidc.client_secret_file", "oidc.client_secret_file", c.oidc.client_secret_file, true);
    add("oidc.ca_file", "oidc.ca_file", c.oidc.ca_file, false);
    add("database.password_file", "database.password_file", c.database.password_file, true);
    for (std::size_t i = 0; i < c.signing.keys.size(); ++i) {
        const std::string path = "signing.keys[" + std::to_string(i) + "].private_key";
        add(path, "signing.keys[" + std::to_string(i) + "].private_key", c.signing.keys[i].private_key, true);
    }
    for (std::size_t i = 0; i < c.webhooks.size(); ++i) {
        const std::string path = "webhooks[" + std::to_string(i) + "]";
        add(path + ".secret_file", path + ".secret_file", c.webhooks[i].secret_file, true);
        add(path + ".ca_file", path + ".ca_file", c.webhooks[i].ca_file, false);
    }
    if (!c.ticket_check.url.empty()) {
        add("ticket_check.token_file", "ticket_check.token_file", c.ticket_check.token_file, true);
        add("ticket_check.ca_file", "ticket_check.ca_file", c.ticket_check.ca_file, false);
    }
    return out;
}

std::vector<Problem> check_files(const Config& config, const Positions* positions, unsigned allowed_uid) {
    std::vector<Problem> problems;
    for (const NamedFile& f : named_files(config)) {
        const Position at = locate(positions, f.path, 0);
        const auto problem = [&](const std::string& message) {
            problems.push_back({config.source, at.line, at.column, escaped(f.name + ": " + f.file + ": " + message)});
        };
        struct stat st {};
        if (lstat(f.file.c_str(), &st) != 0) {
            problem("cannot read it: " + std::error_code(errno, std::generic_category()).message());
            continue;
        }
        if (auto p = jitgate::config::check_file_security(f.file, allowed_uid)) {
            problem(p->message);
            continue;
        }
        const mode_t mode = st.st_mode & 07777;
        if (f.secret && mode != 0600 && mode != 0400) {
            std::array<char, 8> octal{};
            std::snprintf(octal.data(), octal.size(), "%04o", static_cast<unsigned>(mode));
            problem(std::string("mode ") + octal.data() +
                    " lets others read this secret; it must be 0600 or 0400 (fix with: chmod 0600 " + f.file + ")");
        }
    }
    return problems;
}

struct Parsed {
    LoadResult result;
    Positions positions;
};

Parsed parse_with_positions(const std::string& text, const std::string& source) {
    Parser parser(source);
    Parsed out;
    out.result.config.source = source;
    bool read = false;
    jitgate::config::read_document(text, parser, [&](const YAML::Node& root) {
        out.result.config = parser.parse(root);
        // A top level that is not a mapping is one problem, not one per required key.
        read = root.IsNull() || root.IsMap();
    });
    std::vector<Problem> problems = std::move(parser.problems());
    if (read) {
        std::vector<Problem> more = Checker(out.result.config, &parser.positions()).run();
        problems.insert(problems.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    }
    out.positions = parser.positions();
    out.result.problems = std::move(problems);
    return out;
}

} // namespace

LoadResult parse(const std::string& text, const std::string& source) {
    Parsed parsed = parse_with_positions(text, source);
    jitgate::config::sort_in_file_order(parsed.result.problems);
    return std::move(parsed.result);
}

LoadResult load(const std::string& path, unsigned allowed_uid) {
    std::string text;
    if (auto problem = jitgate::config::read_text_file(path, "the config", text)) {
        LoadResult result;
        result.config.source = path;
        result.problems.push_back(std::move(*problem));
        return result;
    }
    Parsed parsed = parse_with_positions(text, path);
    std::vector<Problem> files = check_files(parsed.result.config, &parsed.positions, allowed_uid);
    auto& problems = parsed.result.problems;
    problems.insert(problems.end(), std::make_move_iterator(files.begin()), std::make_move_iterator(files.end()));
    jitgate::config::sort_in_file_order(problems);
    // SECURITY NOTE: a config someone else could change is refused as a whole (listed first:
    // line 0), even if its content is valid.
    if (auto p = jitgate::config::check_file_security(path, allowed_uid)) {
        p->message = "the config " + p->message;
        problems.insert(problems.begin(), *p);
    }
    return std::move(parsed.result);
}

std::vector<Problem> validate(const Config& config) {
    return Checker(config, nullptr).run();
}

} // namespace jitgate::server::config
