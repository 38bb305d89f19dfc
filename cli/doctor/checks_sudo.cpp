// cli/doctor/checks_sudo.cpp — jitgate.yaml, sudo.conf and sudoers: is jitgate loaded by sudo,
// can anyone but root change what sudo loads, and which sudoers rules hand over the gate.
#include <fnmatch.h>

#include <algorithm>
#include <cctype>

#include "cli/doctor/doctor.hpp"
#include "cli/doctor/parse.hpp"
#include "daemon/config/config.hpp"
#include "daemon/policy/binding.hpp"

namespace jitgate::doctor {

namespace {

const char* const k_gate_why =
    "jitgate still holds this command for approval, but once approved it can change what makes the gate "
    "(sudo.conf, the plugin, jitgate.yaml, jitgated, the PAM files, sudoers) and the commands after it no "
    "longer go through jitgate. Approvable, but a key to the gate.";
const char* const k_gate_fix =
    "Replace it with narrow commands if you can. If it must stay, give it a jitgate rule of its own that "
    "needs two approvals and a ticket, with a rule message that tells approvers what they hand over.";

// What a sudoers command is, as far as the gate is concerned.
enum class Kind { none, all, editor, shell, gate_file };

const std::vector<std::string>& editors() {
    static const std::vector<std::string> v{"visudo",    "sudoedit", "vi",   "vim",  "vim.basic", "vim.tiny",
                                            "nvim",      "view",     "rvim", "nano", "pico",      "emacs",
                                            "emacs-nox", "ed",       "red",  "ex",   "joe",       "jed",
                                            "mcedit",    "micro",    "vis",  "ne",   "gedit",     "kate"};
    return v;
}

bool is_shell(const std::string& base) {
    static const std::vector<std::string> v{"sh",      "bash", "dash", "zsh",  "ksh",  "mksh", "csh", "tcsh", "fish",
                                            "busybox", "su",   "env",  "perl", "ruby", "node", "php", "lua"};
    if (std::find(v.begin(), v.end(), base) != v.end()) return true;
    return base.starts_with("python") || base.starts_with("lua5");
}

// Whether a command argument (a path or a glob) reaches a gate path: the path itself, a
// directory above it (chown -R /etc), something under it, or a glob that matches it.
bool touches(const std::string& arg, const std::vector<std::string>& gates) {
    if (arg.empty() || arg[0] != '/') return false;
    const bool glob = arg.find_first_of("*?[") != std::string::npos;
    for (const auto& g : gates) {
        if (under(arg, g) || under(g, arg)) return true;
        if (glob && (glob_match(arg, g) || ::fnmatch(arg.c_str(), (g + "/x").c_str(), 0) == 0)) return true;
    }
    return false;
}

struct LogicalLine {
    std::string file;
    int line = 0;
    std::string text;
};

// Strips a comment: '#' not followed by a digit (#1000 is a uid) starts one.
std::string strip_comment(const std::string& s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '#') continue;
        if (i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1]))) continue;
        return s.substr(0, i);
    }
    return s;
}

struct Include {
    std::string target; // absolute
    bool is_dir = false;
};

// `@include FILE`, `#include FILE`, `@includedir DIR`, `#includedir DIR` (a relative name is
// relative to the including file's directory); nullopt for any other line.
std::optional<Include> include_of(const std::string& t, const std::string& path) {
    for (const std::string k : {"@includedir", "#includedir", "@include", "#include"}) {
        if (!t.starts_with(k + " ") && !t.starts_with(k + "\t")) continue;
        std::string target = trim(t.substr(k.size()));
        if (target.size() >= 2 && target.front() == '"' && target.back() == '"')
            target = target.substr(1, target.size() - 2);
        if (!target.empty() && target[0] != '/') target = dir_name(path) + "/" + target;
        return Include{target, k.ends_with("dir")};
    }
    return std::nullopt;
}

constexpr int k_max_include_depth = 32;
constexpr std::size_t k_max_line = 65536;

void read_sudoers_file(const Root& root, const std::string& path, int depth, std::vector<LogicalLine>& lines,
                       std::set<std::string>& seen, Findings& out, bool must_exist) {
    if (depth > k_max_include_depth || !seen.insert(path).second) return;
    const auto r = root.read(path);
    if (r.status == Root::Status::missing) {
        if (must_exist)
            add(out, "sudoers.missing", Severity::warning, path, path + " does not exist",
                "Without it sudo refuses every command: nothing bypasses jitgate, but nothing works either.",
                "Restore /etc/sudoers (visudo).");
        return;
    }
    if (r.status == Root::Status::error) {
        add_unreadable(out, "sudoers", path, r.error);
        return;
    }
    int n = 0;
    std::string pending;
    int start = 0;
    for (const auto& raw : split(r.text, '\n')) {
        ++n;
        if (pending.empty()) start = n;
        // `#include` and `#includedir` look like comments: see them before a comment is cut.
        const auto inc = pending.empty() ? include_of(trim(raw), path) : std::nullopt;
        // sudo's lexer ends a comment at the newline: cut the comment first, and a '\\' that
        // ends a comment continues nothing.
        std::string l = inc ? raw : strip_comment(raw);
        // sudo's lexer takes '\\' with only blanks after it as a line continuation.
        std::size_t end = l.size();
        while (end > 0 && (l[end - 1] == ' ' || l[end - 1] == '\t')) --end;
        if (!inc && end > 0 && l[end - 1] == '\\') {
            l.resize(end - 1);
            pending += l + " ";
            continue;
        }
        l = pending + l;
        pending.clear();
        if (inc) {
            if (inc->is_dir) {
                const auto names = root.list(inc->target);
                if (!names) {
                    add_unreadable(out, "sudoers", inc->target, "cannot list the directory");
                } else {
                    // sudo skips names that end in '~' or contain a '.'.
                    for (const auto& name : *names)
                        if (!name.ends_with('~') && name.find('.') == std::string::npos)
                            read_sudoers_file(root, inc->target + "/" + name, depth + 1, lines, seen, out, false);
                }
            } else {
                read_sudoers_file(root, inc->target, depth + 1, lines, seen, out, false);
            }
            continue;
        }
        if (l.size() > k_max_line) {
            // SECURITY NOTE: a bound on the work per rule; a rule this long (sudo itself would
            // take it) is reported as not checked rather than parsed.
            add(out, "sudoers.line_too_long", Severity::critical, path + ":" + std::to_string(start),
                "could not check: a rule of " + std::to_string(l.size()) + " characters (doctor reads up to " +
                    std::to_string(k_max_line) + ")",
                "doctor fails closed: a rule it cannot read may hold a way around jitgate.",
                "Split the rule (aliases help), or review it by hand.");
        } else {
            const std::string body = trim(strip_comment(l));
            if (!body.empty()) lines.push_back({path, start, body});
        }
    }
}

bool blank(char c) {
    return std::isspace(static_cast<unsigned char>(c)) != 0;
}

// Whether a "NAME =" or "HOST[, HOST]... =" starts at s[i] (after blanks): the start of a new
// section after a ':' separator. Hand-written rather than std::regex, which recurses over its
// input and overflows the stack on a long hostile line.
bool section_start(const std::string& s, std::size_t i) {
    const auto is_name = [](char c) { return !blank(c) && c != '=' && c != ':' && c != '(' && c != ')' && c != ','; };
    while (i < s.size() && blank(s[i])) ++i;
    for (;;) {
        const std::size_t from = i;
        while (i < s.size() && is_name(s[i])) ++i;
        if (i == from) return false;
        while (i < s.size() && blank(s[i])) ++i;
        if (i < s.size() && s[i] == '=') return true;
        if (i >= s.size() || s[i] != ',') return false;
        ++i;
        while (i < s.size() && blank(s[i])) ++i;
    }
}

// Splits at ':' separators that start a new "NAME =" (alias definitions) or "HOSTS =" (more
// command lists of a user spec). A tag's colon (NOPASSWD:) has no blank before it. Linear in
// practice: a ':' is looked at once, and the look-ahead stops at the first character that is
// not part of a name list.
std::vector<std::string> split_sections(const std::string& s) {
    std::vector<std::string> out;
    std::size_t from = 0;
    for (std::size_t i = 1; i < s.size(); ++i) {
        if (s[i] != ':' || !blank(s[i - 1]) || !section_start(s, i + 1)) continue;
        out.push_back(s.substr(from, i - from));
        from = i + 1;
    }
    out.push_back(s.substr(from));
    return out;
}

// A command item without its options (CWD=..., ROLE=...), tags (NOPASSWD: ...) and digest
// (sha256:...). NOPASSWD does not matter to jitgate, whose approval plugin runs for every
// command anyway.
std::string strip_prefixes(std::string item) {
    static const std::vector<std::string> options{
        "ROLE=", "TYPE=", "CWD=", "CHROOT=", "TIMEOUT=", "NOTBEFORE=", "NOTAFTER=", "APPARMOR_PROFILE="};
    for (;;) {
        item = trim(item);
        const auto word_end = [&] {
            std::size_t e = 0;
            while (e < item.size() && !blank(item[e])) ++e;
            return e;
        };
        bool stripped = false;
        for (const auto& o : options)
            if (item.starts_with(o)) {
                item = item.substr(word_end());
                stripped = true;
                break;
            }
        if (!stripped && item.starts_with("sha") && item.size() > 7 && item[6] == ':' &&
            (item.starts_with("sha224") || item.starts_with("sha256") || item.starts_with("sha384") ||
             item.starts_with("sha512"))) {
            item = item.substr(word_end());
            stripped = true;
        }
        if (!stripped) {
            std::size_t e = 0;
            while (e < item.size() && (std::isupper(static_cast<unsigned char>(item[e])) != 0 || item[e] == '_')) ++e;
            if (e > 0 && e < item.size() && item[e] == ':') {
                item = item.substr(e + 1);
                stripped = true;
            }
        }
        if (!stripped) return item;
    }
}

// The SETENV/NOSETENV tag among the prefixes that strip_prefixes() removed (`prefix`: the item
// before its command): true for SETENV, false for NOSETENV, nullopt if neither is there. A tag
// holds for the commands after it in the same list until another overrides it (sudoers(5)).
std::optional<bool> setenv_tag(const std::string& prefix) {
    std::optional<bool> tag;
    std::string word;
    for (char c : prefix + " ") {
        if (c == ':' || blank(c)) {
            if (word == "SETENV") tag = true;
            if (word == "NOSETENV") tag = false;
            word.clear();
        } else {
            word += c;
        }
    }
    return tag;
}

// "alice , bob ALL" -> "alice,bob ALL": the blanks around commas of a list go.
std::string join_commas(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == ',') {
            while (!out.empty() && blank(out.back())) out.pop_back();
            out += ',';
            while (i + 1 < s.size() && blank(s[i + 1])) ++i;
        } else {
            out += s[i];
        }
    }
    return out;
}

// Splits a list at commas not escaped with a backslash and not inside a run-as "( ... )".
std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    std::string cur;
    int depth = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '(') ++depth;
        if (s[i] == ')' && depth > 0) --depth;
        if (s[i] == '\\' && i + 1 < s.size()) {
            cur += s[i + 1];
            ++i;
        } else if (s[i] == ',' && depth == 0) {
            out.push_back(trim(cur));
            cur.clear();
        } else {
            cur += s[i];
        }
    }
    out.push_back(trim(cur));
    return out;
}

// SECURITY NOTE: a bound on the work: the members that alias expansion may yield over all rules
// of all sudoers files; past it the rest is reported as not checked.
constexpr std::size_t k_max_expanded = std::size_t{1} << 20;

struct Sudoers {
    std::map<std::string, std::vector<std::string>> user_alias, runas_alias, cmnd_alias;
    std::size_t expanded = 0; // members yielded so far, against k_max_expanded
};

using Aliases = std::map<std::string, std::vector<std::string>>;

// Expands each alias once per item: an alias named again (`A = B, B, B` with B nested the same
// way) adds nothing new, so the work is linear in the aliases' size, not exponential.
void expand_once(const Aliases& aliases, const std::string& item, int depth, std::set<std::string>& done,
                 std::vector<std::string>& out, std::size_t& budget) {
    if (budget == 0) return;
    const auto it = aliases.find(item);
    if (it == aliases.end() || depth > 16) {
        --budget;
        out.push_back(item);
        return;
    }
    if (!done.insert(item).second) return;
    for (const auto& x : it->second) expand_once(aliases, x, depth + 1, done, out, budget);
}

// False when the work budget ran out (the caller reports what it could not check).
bool expand(Sudoers& s, const Aliases& aliases, const std::string& item, std::vector<std::string>& out) {
    std::set<std::string> done;
    std::size_t budget = k_max_expanded - s.expanded;
    const std::size_t before = budget;
    expand_once(aliases, item, 0, done, out, budget);
    s.expanded += before - budget;
    return s.expanded < k_max_expanded;
}

bool runas_can_be_root(const std::vector<std::string>& runas_users) {
    for (const auto& u : runas_users)
        if (u == "ALL" || u == "root" || u == "#0") return true;
    return false;
}

} // namespace

std::vector<std::string> gate_paths(const GateConfig& gate) {
    std::vector<std::string> v{
        "/etc/sudo.conf",       "/etc/sudoers",           "/etc/sudoers.d",       "/etc/jitgate", "/etc/pam.d",
        "/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d", "/usr/libexec/jitgate", "/etc/passwd",  "/etc/group",
        "/etc/shadow"};
    v.push_back(gate.config_path);
    v.push_back(gate.daemon_binary);
    for (const auto& p : gate.plugin_paths) v.push_back(p);
    for (const char* d : {"/lib/x86_64-linux-gnu/security", "/usr/lib/x86_64-linux-gnu/security",
                          "/lib/aarch64-linux-gnu/security", "/usr/lib/aarch64-linux-gnu/security",
                          "/usr/lib64/security", "/lib64/security", "/lib/security", "/usr/lib/security"})
        v.push_back(std::string(d) + "/pam_jitgate.so");
    return v;
}

void check_jitgate_config(const Root& root, GateConfig& gate, Findings& out) {
    const auto r = root.read(gate.config_path);
    if (r.status == Root::Status::missing) {
        add(out, "config.missing", Severity::critical, gate.config_path, gate.config_path + " does not exist",
            "Without its configuration jitgated does not start, so every sudo command and gated login is refused "
            "except break-glass, and people start looking for ways around the gate.",
            "Install the configuration (docs/config.md) and check it with `jitgatectl check-config`.");
        return;
    }
    if (r.status == Root::Status::error) {
        add_unreadable(out, "config", gate.config_path, r.error);
        return;
    }
    const auto loaded = config::parse_config(r.text, gate.config_path);
    if (!loaded.config) {
        std::string what = gate.config_path + " does not load:";
        for (std::size_t i = 0; i < loaded.problems.size() && i < 3; ++i) what += " " + loaded.problems[i].to_string();
        add(out, "config.invalid", Severity::critical, gate.config_path, what,
            "jitgated refuses a configuration with errors: it will not start (or restart) with it, and a host "
            "without jitgated refuses everything except break-glass.",
            "Fix every problem `jitgatectl check-config` lists.");
    } else {
        gate.socket = loaded.config->daemon.socket;
        gate.spool_dir = loaded.config->audit.spool_dir;
        gate.break_glass_group = loaded.config->break_glass.group;
        gate.loaded = true;
    }
    if (const auto w = root.writable_by_others(gate.config_path))
        add(out, "config.writable", Severity::critical, gate.config_path, *w,
            "Whoever can change jitgate.yaml can add an `allow` rule for themselves or make themselves an "
            "approver; jitgated also refuses to load such a file.",
            "chown root:root and chmod 0644 (or 0640) the file and every directory above it.");
}

namespace {

// The lines of sudo.conf as sudo's sudo_parseln() makes them: a '#' starts a comment that ends
// the line (a comment never continues); otherwise a line ending in a single '\\' is joined with
// the next, whose leading blanks are dropped. So `Path noexec /x \\` followed by `Plugin ...`
// is one Path line, not a Plugin line.
std::vector<std::string> sudo_conf_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::string pending;
    bool continued = false;
    for (const auto& raw : split(text, '\n')) {
        std::string l = raw;
        if (!l.empty() && l.back() == '\r') l.pop_back();
        bool cont = false;
        if (const auto hash = l.find('#'); hash != std::string::npos) {
            l.resize(hash);
        } else if (!l.empty() && l.back() == '\\' && (l.size() == 1 || l[l.size() - 2] != '\\')) {
            l.pop_back();
            cont = true;
        }
        std::size_t b = 0;
        while (b < l.size() && (l[b] == ' ' || l[b] == '\t')) ++b;
        pending += l.substr(b);
        continued = cont;
        if (continued) continue;
        lines.push_back(std::move(pending));
        pending.clear();
    }
    if (continued) lines.push_back(std::move(pending));
    return lines;
}

} // namespace

void check_sudo_conf(const Root& root, GateConfig& gate, Findings& out) {
    const std::string path = "/etc/sudo.conf";
    const auto r = root.read(path);
    if (r.status == Root::Status::error) {
        add_unreadable(out, "sudo_conf", path, r.error);
        return;
    }
    std::string plugin_dir;
    std::optional<std::string> approval, audit;
    for (const auto& line : sudo_conf_lines(r.text)) {
        const auto w = words(line);
        if (w.size() >= 3 && w[0] == "Path" && w[1] == "plugin_dir") plugin_dir = w[2];
        if (w.size() < 3 || w[0] != "Plugin") continue;
        if (w[1] == "jitgate_approval" && !approval) {
            approval = w[2];
        } else if (w[1] == "jitgate_audit" && !audit) {
            audit = w[2];
        } else {
            continue;
        }
        for (std::size_t i = 3; i < w.size(); ++i)
            if (w[i].starts_with("break_glass_group=") && gate.break_glass_group.empty() && !gate.loaded)
                gate.break_glass_group = w[i].substr(18);
    }
    const char* why_missing =
        "sudo loads only the plugins sudo.conf names: without the jitgate_approval line every sudo command runs "
        "on the sudoers policy alone, with no approval and no jitgate audit.";
    const char* fix_lines = "Add the two lines of config/sudo.conf.example (Plugin jitgate_approval ... and Plugin "
                            "jitgate_audit ...) after the sudoers_policy line, keeping a root shell open while you "
                            "test.";
    if (r.status == Root::Status::missing) {
        add(out, "sudo_conf.missing", Severity::critical, path, path + " does not exist", why_missing, fix_lines);
        return;
    }
    if (!approval)
        add(out, "sudo_conf.approval_missing", Severity::critical, path, "no `Plugin jitgate_approval` line",
            why_missing, fix_lines);
    if (!audit)
        add(out, "sudo_conf.audit_missing", Severity::warning, path, "no `Plugin jitgate_audit` line",
            "Without the audit plugin the exit status and end of every sudo command are not recorded, so the audit "
            "trail shows what was approved but not what happened.",
            fix_lines);
    if (const auto w = root.writable_by_others(path))
        add(out, "sudo_conf.writable", Severity::critical, path, *w,
            "Whoever can change sudo.conf can remove the jitgate lines or point them at a plugin of their own.",
            "chown root:root /etc/sudo.conf; chmod 0644 /etc/sudo.conf (and the same for /etc).");
    std::set<std::string> paths;
    for (const auto& p : {approval, audit}) {
        if (!p) continue;
        std::string full = *p;
        if (full[0] != '/') {
            // A relative path is looked up in plugin_dir (Debian: /usr/lib/sudo, others /usr/libexec/sudo).
            std::vector<std::string> dirs;
            if (!plugin_dir.empty()) dirs.push_back(plugin_dir);
            dirs.insert(dirs.end(), {"/usr/libexec/sudo", "/usr/lib/sudo"});
            full = dirs.front() + "/" + *p;
            for (const auto& d : dirs)
                if (root.exists(d + "/" + *p)) {
                    full = d + "/" + *p;
                    break;
                }
        }
        paths.insert(full);
    }
    for (const auto& p : paths) {
        gate.plugin_paths.push_back(p);
        if (!root.exists(p)) {
            add(out, "sudo_conf.plugin_missing", Severity::warning, p, "the jitgate plugin " + p + " does not exist",
                "sudo refuses to run at all when a plugin it is told to load is missing: nothing bypasses jitgate, "
                "but sudo is down for everyone.",
                "Reinstall the jitgate package, or correct the path in /etc/sudo.conf.");
            continue;
        }
        if (const auto w = root.writable_by_others(p))
            add(out, "sudo_conf.plugin_writable", Severity::critical, p, *w,
                "sudo runs the plugin's code as root in every sudo command: whoever can replace the file decides "
                "every approval.",
                "chown root:root and chmod 0644 the plugin and every directory above it.");
    }
}

namespace {

// The settings of a `Defaults` line (Defaults, Defaults:USERS, Defaults>RUNAS, Defaults@HOSTS,
// Defaults!CMNDS): split at commas outside double quotes.
std::vector<std::string> defaults_settings(const std::string& text) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < text.size() && !blank(text[i])) ++i; // the Defaults word and its binding
    std::string cur;
    bool quoted = false;
    for (; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\\' && i + 1 < text.size()) {
            cur += text[++i];
            continue;
        }
        if (c == '"') quoted = !quoted;
        if (c == ',' && !quoted) {
            out.push_back(trim(cur));
            cur.clear();
            continue;
        }
        cur += c;
    }
    if (!trim(cur).empty()) out.push_back(trim(cur));
    return out;
}

// Defaults that let the caller's environment reach what runs as root. jitgate binds the
// environment of a command it approves, but an `allow` rule admits a program, and under
// intercept a sub-command gets the shell's environment: a kept LD_PRELOAD is code of the
// user's choosing inside an allowed root program.
void check_defaults(const LogicalLine& ll, Findings& out) {
    const std::string subject = ll.file + ":" + std::to_string(ll.line);
    const std::string fix = "Keep `Defaults env_reset` (sudo's default), keep only variables that load no code, and "
                            "drop `setenv`; give a command the variables it needs with a wrapper script instead.";
    for (const auto& setting : defaults_settings(ll.text)) {
        if (setting == "!env_reset") {
            add(out, "sudoers.env_not_reset", Severity::warning, subject,
                "`Defaults !env_reset`: commands run as root with the caller's environment (sudo removes only its "
                "env_delete list)",
                "Variables the caller chooses reach root programs; any sudo's delete list misses is theirs to set.",
                fix);
        } else if (setting == "setenv") {
            add(out, "sudoers.setenv", Severity::warning, subject,
                "`Defaults setenv`: callers may set any variable for every command they run as root",
                "A variable such as LD_PRELOAD or PYTHONPATH set on sudo's command line makes an allowed program run "
                "code of the caller's choosing.",
                fix);
        } else if (setting.starts_with("env_keep")) {
            const auto eq = setting.find('=');
            if (eq == std::string::npos) continue;
            std::vector<std::string> entries;
            for (const auto& name : words(setting.substr(eq + 1))) {
                std::string n = name;
                std::erase(n, '"');
                if (!n.empty()) entries.push_back(n + "=");
            }
            const auto loaders = binding::hidden_code_loading(entries);
            if (loaders.empty()) continue;
            std::string names;
            for (const auto& n : loaders) names += (names.empty() ? "" : ", ") + n;
            add(out, "sudoers.env_keep_code", Severity::critical, subject,
                "`" + setting + "` keeps " + names + " for commands run as root",
                "These variables make a program load code without running another program: a caller who sets them "
                "runs their own code as root inside any program sudo allows, which no approval saw.",
                fix);
        }
    }
}

} // namespace

void check_sudoers(const Root& root, const GateConfig& gate, Findings& out) {
    std::vector<LogicalLine> lines;
    std::set<std::string> seen;
    read_sudoers_file(root, "/etc/sudoers", 0, lines, seen, out, true);
    for (const auto& f : seen)
        if (const auto w = root.writable_by_others(f))
            add(out, "sudoers.writable", Severity::critical, f, *w,
                "Whoever can change a sudoers file can give themselves any rule; sudo still asks jitgate, but the "
                "sudoers policy is part of the gate.",
                "chown root:root and chmod 0440 the file (and 0755 root-owned directories above it).");
    Sudoers s;
    const auto gates = gate_paths(gate);
    const auto not_checked = [&out](const std::string& subject) {
        add(out, "sudoers.not_checked", Severity::critical, subject,
            "could not check: the aliases of the rules up to here expand to more than " +
                std::to_string(k_max_expanded) + " members; this rule and the ones after it were not checked",
            "doctor fails closed: a rule it has not read may hold a way around jitgate.",
            "Simplify the aliases, or review the rules by hand (sudo -l -U USER lists what a user may run).");
    };
    for (const auto& ll : lines) {
        const auto w = words(ll.text);
        if (w.empty()) continue;
        const std::string& first = w[0];
        if (first.starts_with("Defaults")) {
            check_defaults(ll, out);
            continue;
        }
        if (first == "User_Alias" || first == "Runas_Alias" || first == "Cmnd_Alias" || first == "Cmd_Alias" ||
            first == "Host_Alias") {
            auto& table = first == "User_Alias" ? s.user_alias : first == "Runas_Alias" ? s.runas_alias : s.cmnd_alias;
            if (first == "Host_Alias") continue;
            for (const auto& def : split_sections(ll.text.substr(first.size()))) {
                const auto eq = def.find('=');
                if (eq == std::string::npos) continue;
                const std::string name = trim(def.substr(0, eq));
                if (name.empty() || std::isupper(static_cast<unsigned char>(name[0])) == 0 ||
                    name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != std::string::npos)
                    continue;
                table[name] = split_list(def.substr(eq + 1));
            }
            continue;
        }
        // A user spec: USERS HOSTS = CMNDSPECS [: HOSTS = CMNDSPECS]...
        const auto eq = ll.text.find('=');
        if (eq == std::string::npos) continue;
        std::string left = ll.text.substr(0, eq);
        // "alice, bob ALL" -> users "alice,bob", hosts "ALL".
        left = join_commas(left);
        const auto lw = words(left);
        if (lw.size() < 2) continue;
        const std::string subject = ll.file + ":" + std::to_string(ll.line);
        std::vector<std::string> users;
        bool within_budget = true;
        for (const auto& u : split_list(lw[0])) within_budget = expand(s, s.user_alias, u, users) && within_budget;
        if (!within_budget) return not_checked(subject);
        std::vector<std::string> people;
        for (const auto& u : users)
            if (u != "root" && u != "#0" && !u.starts_with("!")) people.push_back(u);
        if (people.empty()) continue;
        std::string who;
        for (const auto& p : people) who += (who.empty() ? "" : ",") + p;
        // The first section is "HOSTS = SPECS" with HOSTS already consumed: rebuild it.
        const auto sections = split_sections(lw[1] + " =" + ll.text.substr(eq + 1));
        for (const auto& section : sections) {
            const auto seq = section.find('=');
            if (seq == std::string::npos) continue;
            std::vector<std::string> runas{"root"};
            bool setenv = false; // the SETENV tag in force (it carries to the following commands)
            for (auto item : split_list(section.substr(seq + 1))) {
                item = trim(item);
                if (item.starts_with("(")) {
                    const auto close = item.find(')');
                    if (close == std::string::npos) break;
                    const std::string spec = item.substr(1, close - 1);
                    const std::string users_part = spec.substr(0, spec.find(':'));
                    runas.clear();
                    // "(:group)" runs as the invoking user; "()" likewise.
                    for (const auto& r : split_list(users_part))
                        if (!r.empty()) within_budget = expand(s, s.runas_alias, r, runas) && within_budget;
                    item = trim(item.substr(close + 1));
                }
                {
                    const std::string full = trim(item);
                    item = strip_prefixes(full);
                    if (const auto tag = setenv_tag(full.substr(0, full.size() - item.size()))) setenv = *tag;
                }
                if (item.empty() || item.starts_with("!") || !runas_can_be_root(runas)) continue;
                std::vector<std::string> cmds;
                within_budget = expand(s, s.cmnd_alias, item, cmds) && within_budget;
                for (const auto& cmd : cmds) {
                    if (cmd.starts_with("!")) continue;
                    const auto cw = words(cmd);
                    if (cw.empty()) continue;
                    const std::string base = base_name(cw[0]);
                    Kind kind = Kind::none;
                    std::string what;
                    const bool args_touch_gate =
                        std::any_of(cw.begin() + 1, cw.end(), [&](const std::string& a) { return touches(a, gates); });
                    if (cw[0] == "ALL") {
                        kind = Kind::all;
                        what = who + " may run ALL commands as root, editors, shells and visudo included";
                    } else if (args_touch_gate) {
                        kind = Kind::gate_file;
                        what = who + " may run `" + cmd + "` as root, which changes a file of the gate";
                    } else if (base == "sudoedit" && cw.size() > 1) {
                        // sudoedit of named files that are not the gate's: only those files.
                    } else if (std::find(editors().begin(), editors().end(), base) != editors().end()) {
                        kind = Kind::editor;
                        what = who + " may run the editor `" + cmd + "` as root";
                    } else if (is_shell(base)) {
                        kind = Kind::shell;
                        what = who + " may run the shell or interpreter `" + cmd + "` as root";
                    }
                    // ALL implies SETENV (sudoers(5)) and is reported as ALL above.
                    if (setenv && cw[0] != "ALL")
                        add(out, "sudoers.setenv_tag", Severity::warning, subject,
                            who + " may set any environment variable for `" + cmd + "` run as root (SETENV)",
                            "A variable such as LD_PRELOAD or PYTHONPATH set on sudo's command line makes the program "
                            "run code of the caller's choosing as root; approvers and allow rules name the program, "
                            "not that code.",
                            "Drop the SETENV tag; give the command the variables it needs with a root-owned wrapper "
                            "script instead.");
                    if (kind != Kind::none) {
                        const char* id = kind == Kind::all         ? "sudoers.all"
                                         : kind == Kind::gate_file ? "sudoers.gate_file"
                                         : kind == Kind::editor    ? "sudoers.editor"
                                                                   : "sudoers.shell";
                        add(out, id, Severity::warning, subject, what, k_gate_why, k_gate_fix);
                    }
                    if (cw[0].starts_with("/") && cw[0].find_first_of("*?[") == std::string::npos)
                        if (const auto wr = root.writable_by_others(cw[0]))
                            add(out, "sudoers.command_writable", Severity::critical, subject,
                                who + " may run " + cw[0] + " as root, and " + *wr,
                                "Approvers approve a command by its name; whoever can replace the program decides "
                                "what that name does once approved.",
                                "chown root:root the program and its directories, chmod go-w them.");
                }
            }
        }
        if (!within_budget) return not_checked(subject);
    }
}

} // namespace jitgate::doctor
