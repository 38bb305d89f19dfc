// cli/doctor/checks_sshd.cpp — sshd_config (with its Include drop-ins, first value wins):
// does sshd use PAM at all, can root log in, and where do keys come from?
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <map>

#include "cli/doctor/doctor.hpp"
#include "cli/doctor/parse.hpp"

namespace jitgate::doctor {

namespace {

struct Entry {
    std::string keyword; // lower case
    std::string value;
    std::string file;
    int line = 0;
    std::string match;             // the Match condition it is under; "" for global
    bool from_variable = false;    // a -f from SSHD_OPTS or OPTIONS
    std::vector<std::string> args; // the value's arguments as sshd splits them (value: joined by spaces)
};

// The lines of an sshd_config file as sshd (load_server_config) hands them to its line
// parser, each with the number of the file's line it starts on: blanks, tabs and carriage
// returns at the start of each line are dropped, and a line is kept only up to a NUL byte,
// its newline with it, so the text after the next newline joins it (sshd copies each line
// with strlen).
std::vector<std::pair<int, std::string>> sshd_lines(std::string_view text) {
    std::vector<std::pair<int, std::string>> out;
    std::string pending;
    int start = 0;
    int n = 0;
    while (!text.empty()) {
        ++n;
        const auto eol = text.find('\n');
        std::string_view line = text.substr(0, eol == std::string_view::npos ? text.size() : eol + 1);
        text.remove_prefix(line.size());
        line.remove_prefix(std::min(line.find_first_not_of(" \t\r"), line.size()));
        if (pending.empty()) start = n;
        const auto nul = line.find('\0');
        pending += line.substr(0, nul);
        if (nul != std::string_view::npos) continue; // no newline: the next line joins this one
        if (!pending.empty() && pending.back() == '\n') pending.pop_back();
        out.emplace_back(start, std::move(pending));
        pending.clear();
    }
    if (!pending.empty()) out.emplace_back(start, std::move(pending));
    return out;
}

// One line of sshd_config as sshd (OpenSSH >= 8.7) reads it. The keyword as sshd's strdelim
// takes it: up to a blank, tab, carriage return, newline or `=`; a double quote anywhere in it
// is dropped and the keyword then runs to the next double quote (`Authorized"KeysFile"` is
// AuthorizedKeysFile); after it blanks, and one `=` (with blanks around) unless the quote
// ended it. A line whose keyword has no closing quote is ignored, as sshd ignores it. Then
// the arguments: blanks and tabs separate them, '...' and "..." group them, a backslash takes
// a following quote, backslash (or, outside quotes, a blank) literally and is kept before
// anything else, and a `#` at the start of an argument ends the line. {"", {}} for a blank or
// comment line; nullopt for a line sshd refuses (an unclosed quote in the arguments), which
// stops sshd from starting.
struct SshdLine {
    std::string keyword; // lower case
    std::vector<std::string> args;
    bool quoted_keyword = false; // a double quote was dropped from the keyword
};
std::optional<SshdLine> sshd_line(std::string_view in) {
    std::string l(in);
    // sshd strips trailing whitespace (and a form feed) first, all but the first character.
    while (l.size() > 1 && std::string_view(" \t\r\n\f").find(l.back()) != std::string_view::npos) l.pop_back();
    constexpr std::string_view space = " \t\r\n";
    SshdLine out;
    std::size_t i = 0;
    bool at_end = false; // strdelim's string pointer is NULL
    const auto skip_space = [&](std::size_t k) {
        while (k < l.size() && space.find(l[k]) != std::string_view::npos) ++k;
        return k;
    };
    const auto strdelim = [&]() -> std::optional<std::string> {
        if (at_end) return std::nullopt;
        const std::size_t begin = i;
        const auto k = l.find_first_of(" \t\r\n\"=", i);
        if (k == std::string::npos) {
            at_end = true;
            i = l.size();
            return l.substr(begin);
        }
        if (l[k] == '"') {
            out.quoted_keyword = true;
            l.erase(k, 1);
            const auto close = l.find('"', k);
            if (close == std::string::npos) return std::nullopt;
            i = skip_space(close + 1);
            return l.substr(begin, close - begin);
        }
        const bool equals = l[k] == '=';
        i = skip_space(k + 1);
        if (!equals && i < l.size() && l[i] == '=') i = skip_space(i + 1);
        return l.substr(begin, k - begin);
    };
    auto keyword = strdelim();
    if (keyword && keyword->empty()) keyword = strdelim(); // leading whitespace
    if (!keyword || keyword->empty() || (*keyword)[0] == '#') return SshdLine{};
    out.keyword = lower(*keyword);
    const auto blank = [&l](std::size_t k) { return k < l.size() && (l[k] == ' ' || l[k] == '\t'); };
    while (true) {
        while (blank(i)) ++i;
        if (i >= l.size() || l[i] == '#') break;
        std::string arg;
        char quote = 0;
        for (; i < l.size(); ++i) {
            const char c = l[i];
            if (c == '\\' && i + 1 < l.size() &&
                (l[i + 1] == '\'' || l[i + 1] == '"' || l[i + 1] == '\\' || (quote == 0 && l[i + 1] == ' '))) {
                arg += l[++i];
            } else if (quote == 0 && (c == ' ' || c == '\t')) {
                break;
            } else if (quote == 0 && (c == '"' || c == '\'')) {
                quote = c;
            } else if (quote != 0 && c == quote) {
                quote = 0;
            } else {
                arg += c;
            }
        }
        if (quote != 0) return std::nullopt;
        out.args.push_back(std::move(arg));
    }
    return out;
}

std::string joined(const std::vector<std::string>& args) {
    std::string v;
    for (const auto& a : args) v += (v.empty() ? "" : " ") + a;
    return v;
}

// The files an Include pattern names, in the order sshd reads them: glob(3) over the whole
// pattern (any component may hold a wildcard), sorted, as sshd does. Expanded here one
// component at a time over Root::list, so that a symbolic link in the tree is followed under
// the root and never out of it.
// The most paths one Include pattern may match, at any component (sshd reads at most
// k_max_sshd_reads files in all anyway).
constexpr std::size_t k_max_glob = 4096;

std::vector<std::string> include_files(const Root& root, const std::string& pattern, Findings& findings) {
    const std::string p = pattern[0] == '/' ? pattern : "/etc/ssh/" + pattern;
    if (p.find_first_of("*?[") == std::string::npos) return {p};
    std::vector<std::string> paths{""}; // host paths matched so far; "" is "/"
    for (const auto& component : split(p, '/')) {
        if (component.empty()) continue;
        std::vector<std::string> next;
        for (const auto& base : paths) {
            if (component.find_first_of("*?[") == std::string::npos) {
                const std::string candidate = base + "/" + component;
                if (root.exists(candidate)) next.push_back(candidate);
                continue;
            }
            if (!root.is_dir(base.empty() ? "/" : base)) continue; // glob(3) matches nothing below a file
            const auto names = root.list(base.empty() ? "/" : base);
            if (!names && errno == E2BIG) {
                add(findings, "sshd.not_checked", Severity::critical, base.empty() ? "/" : base,
                    "could not check: the directory holds more than " + std::to_string(root.max_list()) +
                        " entries (Include " + pattern + ")",
                    "doctor fails closed: a configuration it has not read to the end may hold a way around jitgate.",
                    "Simplify the Include directives, or review sshd's effective configuration (sshd -T) by hand.");
                return {};
            }
            if (!names) {
                add_unreadable(findings, "sshd", base.empty() ? "/" : base,
                               "cannot list the directory (Include " + pattern + ")");
                continue;
            }
            for (const auto& n : *names)
                if (glob_match(component, n)) next.push_back(base + "/" + n);
            if (next.size() > k_max_glob) {
                // SECURITY NOTE: bounded (a hostile tree's /*/*/* would take memory without end);
                // fails closed.
                add(findings, "sshd.not_checked", Severity::critical, pattern,
                    "could not check: Include " + pattern + " matches more than " + std::to_string(k_max_glob) +
                        " paths",
                    "doctor fails closed: a configuration it has not read to the end may hold a way around jitgate.",
                    "Simplify the Include directives, or review sshd's effective configuration (sshd -T) by hand.");
                return {};
            }
        }
        paths = std::move(next);
    }
    // glob(3) sorts the whole paths (strcmp order in the C locale sshd runs in).
    std::sort(paths.begin(), paths.end());
    return paths;
}

// SECURITY NOTE: a bound on the work: sshd_config and its drop-ins are read at most this many
// times in all (a file that includes itself, or one included many times over at each level,
// would otherwise take exponential time).
constexpr int k_max_sshd_reads = 1024;

struct Walk {
    std::vector<std::string> chain; // the files being read, outermost first
    int reads = 0;
    bool over_budget = false;
};

void read_sshd(const Root& root, const std::string& file, std::string match, std::vector<Entry>& out,
               Findings& findings, Walk& walk) {
    if (walk.over_budget) return;
    if (std::find(walk.chain.begin(), walk.chain.end(), file) != walk.chain.end() || walk.chain.size() > 16) {
        // sshd refuses to start on a configuration that includes itself (too many nested
        // includes): nothing logs in through it, so this is no way around jitgate.
        if (std::any_of(findings.begin(), findings.end(),
                        [&file](const Finding& f) { return f.check == "sshd.include_loop" && f.subject == file; }))
            return;
        add(findings, "sshd.include_loop", Severity::warning, file,
            file + " is included from itself (through " + walk.chain.back() + ") or includes nest too deep",
            "sshd refuses such a configuration: it does not start (or restart), so SSH logins fail.",
            "Remove the Include that leads back.");
        return;
    }
    if (++walk.reads > k_max_sshd_reads) {
        walk.over_budget = true;
        add(findings, "sshd.not_checked", Severity::critical, "/etc/ssh/sshd_config",
            "could not check: the Include directives read more than " + std::to_string(k_max_sshd_reads) + " files",
            "doctor fails closed: a configuration it has not read to the end may hold a way around jitgate.",
            "Simplify the Include directives, or review sshd's effective configuration (sshd -T) by hand.");
        return;
    }
    const auto r = root.read(file);
    if (r.status == Root::Status::error) {
        add_unreadable(findings, "sshd", file, r.error);
        return;
    }
    if (r.status == Root::Status::missing) return;
    walk.chain.push_back(file);
    for (const auto& [n, raw] : sshd_lines(r.text)) {
        const auto line = sshd_line(raw);
        if (!line) {
            add(findings, "sshd.syntax", Severity::warning, file + ":" + std::to_string(n), trim(raw),
                "sshd refuses a line with an unclosed quote: it does not start (or restart) on this configuration, "
                "so SSH logins fail.",
                "Close the quote.");
            continue;
        }
        if (line->keyword.empty()) continue;
        // sshd knows only keywords of letters and digits, and refuses any other: one with other
        // characters, or written with quotes, means doctor and sshd may read the line apart.
        if (const bool plain = std::all_of(line->keyword.begin(), line->keyword.end(),
                                           [](unsigned char c) { return std::isalnum(c) != 0; });
            !plain || line->quoted_keyword)
            add(findings, "sshd.not_checked", plain ? Severity::info : Severity::warning,
                file + ":" + std::to_string(n),
                "the keyword of `" + trim(raw) + "` is " +
                    (plain ? "written with quotes (read as `" + line->keyword + "`)"
                           : "not an sshd keyword (read as `" + line->keyword + "`)"),
                plain ? "sshd drops the quotes; no configuration needs them, and other tools may read the line "
                        "differently."
                      : "sshd refuses a keyword it does not know and does not start; doctor may not read this line "
                        "as sshd does.",
                "Write the keyword plainly, without quotes; check the file with `sshd -t` and `sshd -T`.");
        const std::string& keyword = line->keyword;
        const std::string value = joined(line->args);
        if (keyword == "match") {
            // `Match all` is still a Match block: its values override the global ones (which
            // are first-value-wins among themselves) for every connection, so it is not global.
            match = value.empty() ? "all" : value;
            continue;
        }
        if (keyword == "include") {
            for (const auto& pattern : line->args) {
                const auto files = include_files(root, pattern, findings);
                if (pattern.find_first_of("*?[") == std::string::npos && !files.empty() && !root.exists(files[0]))
                    add(findings, "sshd.include_missing", Severity::info, file + ":" + std::to_string(n),
                        "Include " + pattern + " names a file that does not exist",
                        "sshd skips it: whatever it was meant to set is not set (and whoever can create it later "
                        "sets sshd's options).",
                        "Create the file, or remove the Include.");
                for (const auto& f : files) read_sshd(root, f, match, out, findings, walk);
            }
            continue;
        }
        out.push_back({keyword, value, file, n, match, false, line->args});
    }
    walk.chain.pop_back();
}

// AuthorizedKeysFile's % tokens for root, in one pass (a home holding "%h" stays as it is):
// %% %h %u %U; nullopt for any other token (sshd refuses those).
std::optional<std::string> expand_tokens(const std::string& s, const std::string& home) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (++i >= s.size()) return std::nullopt;
        switch (s[i]) {
        case '%':
            out += '%';
            break;
        case 'h':
            out += home;
            break;
        case 'u':
            out += "root";
            break;
        case 'U':
            out += "0";
            break;
        default:
            return std::nullopt;
        }
    }
    return out;
}

std::optional<Entry> global(const std::vector<Entry>& entries, const std::string& keyword) {
    for (const auto& e : entries)
        if (e.match.empty() && e.keyword == keyword) return e;
    return std::nullopt;
}

std::string where(const Entry& e) {
    return e.file + ":" + std::to_string(e.line);
}

// One line of sshd_config syntax ("Keyword value", "Keyword=value", "Keyword = value"):
// {lower-case keyword, value}.
std::pair<std::string, std::string> keyword_value(const std::string& line) {
    const std::string l = trim(line);
    const auto sep = l.find_first_of(" \t=");
    std::string value = sep == std::string::npos ? "" : trim(l.substr(sep));
    if (value.starts_with("=")) value = trim(value.substr(1));
    return {lower(l.substr(0, sep)), value};
}

// The words of a command line as systemd and sh split it: blanks separate, '...' and "..."
// quote (a backslash escapes the next character outside single quotes).
std::vector<std::string> shell_words(const std::string& s) {
    std::vector<std::string> out;
    std::string cur;
    bool in_word = false;
    char quote = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (quote != 0) {
            if (c == quote)
                quote = 0;
            else if (c == '\\' && quote == '"' && i + 1 < s.size())
                cur += s[++i];
            else
                cur += c;
        } else if (c == '\'' || c == '"') {
            quote = c;
            in_word = true;
        } else if (c == '\\' && i + 1 < s.size()) {
            cur += s[++i];
            in_word = true;
        } else if (c == ' ' || c == '\t') {
            if (in_word) out.push_back(cur);
            cur.clear();
            in_word = false;
        } else {
            cur += c;
            in_word = true;
        }
    }
    if (in_word) out.push_back(cur);
    return out;
}

// What sshd is started with, from its systemd units and the files they take variables from:
// each `-o` as an Entry (command-line options win over every file), and each `-f` file.
struct CommandLine {
    std::vector<Entry> options;
    std::vector<Entry> config_files; // keyword "-f", value the file; every one named
    std::vector<std::string> mains;  // the configuration files sshd is started on (host paths)
};

// sshd's getopt(3) string (OpenSSH 9): the options that take an argument.
constexpr std::string_view k_sshd_args = "CEbcfghkopu";

void parse_sshd_args(const std::vector<std::string>& args, const std::string& file, int line, CommandLine& cl,
                     bool from_variable) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--") break;
        if (a.size() < 2 || a[0] != '-') continue; // an operand, or an unexpanded $VARIABLE
        for (std::size_t k = 1; k < a.size(); ++k) {
            const char opt = a[k];
            if (k_sshd_args.find(opt) == std::string_view::npos) continue;
            std::string arg = a.substr(k + 1);
            if (arg.empty() && i + 1 < args.size()) arg = args[++i];
            if (opt == 'o') {
                // -o is read as a line of sshd_config.
                const auto o = sshd_line(arg);
                if (o && !o->keyword.empty())
                    cl.options.push_back({o->keyword, joined(o->args), file, line, "", false, o->args});
            } else if (opt == 'f' && !arg.empty()) {
                cl.config_files.push_back({"-f", arg, file, line, "", from_variable, {arg}});
            }
            break; // the rest of the word was the argument
        }
    }
}

// The logical lines of a unit or environment file (a '\' at the end joins the next line).
std::vector<std::pair<int, std::string>> unit_lines(const std::string& text) {
    std::vector<std::pair<int, std::string>> out;
    std::string pending;
    int n = 0;
    int start = 0;
    for (const auto& raw : split(text, '\n')) {
        ++n;
        const std::string t = trim(raw);
        if (pending.empty()) {
            if (t.empty() || t[0] == '#' || t[0] == ';') continue;
            start = n;
        }
        if (!t.empty() && t.back() == '\\') {
            pending += t.substr(0, t.size() - 1) + " ";
            continue;
        }
        out.emplace_back(start, pending + t);
        pending.clear();
    }
    if (!pending.empty()) out.emplace_back(start, pending);
    return out;
}

// The unit directories, in systemd's order of precedence (systemd.unit(5)), highest first.
constexpr const char* k_unit_dirs[] = {
    "/etc/systemd/system.control",   "/run/systemd/system.control",  "/run/systemd/transient",
    "/run/systemd/generator.early",  "/etc/systemd/system",          "/etc/systemd/system.attached",
    "/run/systemd/system",           "/run/systemd/system.attached", "/run/systemd/generator",
    "/usr/local/lib/systemd/system", "/usr/lib/systemd/system",      "/lib/systemd/system",
    "/run/systemd/generator.late"};
constexpr const char* k_sshd_units[] = {"ssh.service", "sshd.service", "ssh@.service", "sshd@.service"};

// Whether a unit's command line passes the variables SSHD_OPTS or OPTIONS ($X or ${X}).
bool passes_variables(const std::string& line) {
    for (const char* v : {"$SSHD_OPTS", "${SSHD_OPTS}", "$OPTIONS", "${OPTIONS}"}) {
        const auto at = line.find(v);
        if (at == std::string::npos) continue;
        const auto after = at + std::string_view(v).size();
        if (after >= line.size() || !(std::isalnum(static_cast<unsigned char>(line[after])) || line[after] == '_'))
            return true;
    }
    return false;
}

CommandLine sshd_command_line(const Root& root, Findings& findings) {
    CommandLine cl;
    // Each unit's files in the order systemd reads them: the unit file it uses (the first in
    // precedence order) and then its drop-ins (`NAME.d/*.conf` and the `service.d/*.conf` of
    // every service, a name in a higher directory masking the same name lower down), sorted
    // by name. Every unit file found is read for -o and variables (whichever one systemd
    // would pick); the one in force decides which -f files sshd reads.
    std::vector<std::vector<std::string>> units;
    std::vector<std::string> files;
    for (const char* unit : k_sshd_units) {
        std::vector<std::string> in_force;
        std::map<std::string, std::string> dropins;
        bool masked = false;
        for (const char* dir : k_unit_dirs) {
            const std::string u = std::string(dir) + "/" + unit;
            if (root.exists(u)) {
                // A unit linked to /dev/null (systemctl mask) in the first directory that has
                // it is masked: systemd starts nothing from it or its lower copies.
                if (in_force.empty() && root.resolve(u) == std::optional<std::string>("/dev/null")) masked = true;
                if (!masked) files.push_back(u);
                if (in_force.empty()) in_force.push_back(u);
            }
            for (const std::string& d : {u + ".d", std::string(dir) + "/service.d"}) {
                if (!root.is_dir(d)) continue;
                const auto names = root.list(d);
                if (!names) {
                    add_unreadable(findings, "sshd", d, "cannot list the directory");
                    continue;
                }
                for (const auto& n : *names)
                    if (n.ends_with(".conf")) {
                        if (std::find(files.begin(), files.end(), d + "/" + n) == files.end())
                            files.push_back(d + "/" + n);
                        dropins.emplace(n, d + "/" + n);
                    }
            }
        }
        if (in_force.empty() || masked) continue; // no such unit: its drop-ins alone start nothing
        for (const auto& [name, path] : dropins) in_force.push_back(path);
        units.push_back(std::move(in_force));
    }
    // The files the units take variables from: the packaged units' own, and any
    // EnvironmentFile= of the units found.
    std::vector<std::string> env_files{"/etc/default/ssh", "/etc/sysconfig/sshd"};
    // Each unit file's lines that start sshd: ExecStart= only (ExecStartPre= and ExecReload=
    // run `sshd -t` and the like, whose -f and -o start no server).
    const auto sshd_args = [](const std::string& key,
                              const std::string& value) -> std::optional<std::vector<std::string>> {
        if (key != "execstart") return std::nullopt;
        auto args = shell_words(value);
        if (args.empty()) return std::nullopt;
        // ExecStart=-/usr/sbin/sshd, @, +, ! and : prefixes; the program is the first word.
        std::string prog = args[0];
        while (!prog.empty() && std::string_view("-@+!:").find(prog[0]) != std::string_view::npos) prog.erase(0, 1);
        if (base_name(prog) != "sshd") return std::nullopt;
        args.erase(args.begin());
        return args;
    };
    // merged /usr: /lib/systemd/system may be /usr/lib/systemd/system.
    std::vector<std::string> seen;
    for (const auto& f : files) {
        const auto real = root.resolve(f).value_or(f);
        if (std::find(seen.begin(), seen.end(), real) != seen.end()) continue;
        seen.push_back(real);
        const auto r = root.read(f);
        if (r.status == Root::Status::error) add_unreadable(findings, "sshd", f, r.error);
        for (const auto& [n, l] : unit_lines(r.text)) {
            const auto [key, value] = keyword_value(l);
            if (key == "environmentfile") {
                // EnvironmentFile=-/etc/default/ssh: read below with the packaged ones.
                std::string ef = value;
                if (ef.starts_with("-")) ef.erase(0, 1);
                if (ef.starts_with("/") && std::find(env_files.begin(), env_files.end(), ef) == env_files.end())
                    env_files.push_back(ef);
                continue;
            }
            if (key == "importcredential" || key == "loadcredential" || key == "loadcredentialencrypted" ||
                key == "setcredential" || key == "setcredentialencrypted") {
                // systemd's credentials (systemd-ssh-generator, systemd >= 256): keys for root
                // from the hypervisor, the container manager or the boot loader.
                const std::string name = value.substr(0, value.find(':'));
                if (name.starts_with("ssh.") || name.starts_with("ssh*") || name == "*")
                    add(findings, "sshd.credential_keys", Severity::warning, f + ":" + std::to_string(n), l,
                        "The sshd unit takes systemd credentials named " + name +
                            " (ssh.authorized_keys.root and the like): keys that log in, root's included, come from "
                            "outside this host's files (a hypervisor's SMBIOS, a container manager, the boot "
                            "loader) where nobody reviewing the host sees them.",
                        "Remove the credential from the unit unless the machine's provisioning is as controlled as "
                        "the host; review who can set it.");
                continue;
            }
            if (key == "environment") {
                // Environment="SSHD_OPTS=-o ..." OPTIONS=...: the variables the ExecStart= passes.
                for (const auto& assignment : shell_words(value))
                    if (assignment.starts_with("SSHD_OPTS=") || assignment.starts_with("OPTIONS="))
                        parse_sshd_args(shell_words(assignment.substr(assignment.find('=') + 1)), f, n, cl, true);
                continue;
            }
            if (const auto args = sshd_args(key, value)) parse_sshd_args(*args, f, n, cl, false);
        }
    }
    // The variables the Debian (SSHD_OPTS) and Red Hat (OPTIONS) units pass to sshd.
    for (const auto& f : env_files) {
        const auto r = root.read(f);
        if (r.status == Root::Status::error) add_unreadable(findings, "sshd", f, r.error);
        for (const auto& [n, l] : unit_lines(r.text)) {
            std::string t = l;
            if (t.starts_with("export ")) t = trim(t.substr(7));
            const auto eq = t.find('=');
            if (eq == std::string::npos) continue;
            const std::string name = trim(t.substr(0, eq));
            if (name != "SSHD_OPTS" && name != "OPTIONS") continue;
            // The value is one shell word (quoted); its own words are sshd's arguments.
            const auto value = shell_words(t.substr(eq + 1));
            std::vector<std::string> args;
            for (const auto& v : value)
                for (const auto& w : shell_words(v)) args.push_back(w);
            parse_sshd_args(args, f, n, cl, true);
        }
    }
    // The configuration each ExecStart= in force starts sshd on: the last -f of its line (or of
    // SSHD_OPTS/OPTIONS when the line passes them, as they come after), else sshd_config. An
    // empty ExecStart= drops the lines before it. Every one is checked.
    std::vector<Entry> from_variables;
    for (const auto& e : cl.config_files)
        if (e.from_variable) from_variables.push_back(e);
    for (const auto& unit : units) {
        std::vector<std::pair<std::string, std::optional<Entry>>> lines; // the line, its last -f
        for (const auto& f : unit) {
            const auto r = root.read(f);
            for (const auto& [n, l] : unit_lines(r.text)) {
                const auto [key, value] = keyword_value(l);
                if (key == "execstart" && trim(value).empty()) {
                    lines.clear();
                    continue;
                }
                const auto args = sshd_args(key, value);
                if (!args) continue;
                CommandLine one;
                parse_sshd_args(*args, f, n, one, false);
                std::optional<Entry> last;
                if (!one.config_files.empty()) last = one.config_files.back();
                if (passes_variables(value) && !from_variables.empty()) last = from_variables.back();
                lines.emplace_back(value, last);
            }
        }
        for (const auto& [line, last] : lines) {
            std::string file = last ? last->value : "/etc/ssh/sshd_config";
            // A relative -f is from sshd's working directory (/).
            if (file[0] != '/') file = "/" + file;
            if (std::find(cl.mains.begin(), cl.mains.end(), file) == cl.mains.end()) cl.mains.push_back(file);
        }
    }
    if (cl.mains.empty()) cl.mains.push_back("/etc/ssh/sshd_config");
    return cl;
}

void check_sshd_config(const Root& root, const Accounts& accounts, const GateConfig& gate, std::vector<Entry> entries,
                       const std::string& main, Findings& out);

} // namespace

void check_sshd(const Root& root, const Accounts& accounts, const GateConfig& gate, Findings& out) {
    if (!root.exists("/usr/sbin/sshd") && !root.exists("/etc/ssh/sshd_config")) return; // no SSH server here
    // Options on sshd's command line come first: sshd takes the first value it obtains, and
    // it reads `-o` before any file. `-f` replaces sshd_config.
    const CommandLine cl = sshd_command_line(root, out);
    for (const auto& o : cl.options)
        if ((o.keyword == "authorizedkeysfile" || o.keyword == "authorizedprincipalsfile") &&
            o.value.find("${") != std::string::npos)
            add(out, "sshd.credential_keys", Severity::warning, where(o),
                "sshd is started with -o " + o.keyword + "=" + o.value + ", a path systemd fills in",
                "Keys (or principals) in a systemd credential directory come from outside this host's files (a "
                "hypervisor's SMBIOS, a container manager, the boot loader): whoever provisions the machine holds "
                "standing access, root's included, that nobody reviewing the host sees.",
                "Remove the -o (and the ImportCredential=) from the unit unless the provisioning is as controlled as "
                "the host.");
    for (const auto& o : cl.options)
        add(out, "sshd.command_line", Severity::warning, where(o),
            "sshd is started with -o " + o.keyword + "=" + o.value,
            "An option on sshd's command line wins over sshd_config and its drop-ins, and nobody reviewing those "
            "files sees it: it can let root in or turn PAM off behind a clean-looking sshd_config.",
            "Remove the -o from the unit (or SSHD_OPTS/OPTIONS) and set what is needed in sshd_config.d.");
    for (const auto& f : cl.config_files) {
        add(out, "sshd.command_line", Severity::warning, where(f), "sshd is started with -f " + f.value,
            "sshd reads that file instead of /etc/ssh/sshd_config: the reviewed file (and jitgate's drop-in) is not "
            "the one in force. doctor checks the file named instead.",
            "Remove the -f from the unit (or SSHD_OPTS/OPTIONS) and keep the configuration in /etc/ssh.");
    }
    for (const auto& m : cl.mains) check_sshd_config(root, accounts, gate, cl.options, m, out);
}

namespace {

// One configuration sshd is started on, with the command line's options before it.
void check_sshd_config(const Root& root, const Accounts& accounts, const GateConfig& gate, std::vector<Entry> entries,
                       const std::string& main, Findings& out) {
    Walk walk;
    read_sshd(root, main, "", entries, out, walk);
    if (const auto w = root.writable_by_others(main))
        add(out, "sshd.writable", Severity::critical, main, *w,
            "Whoever can change sshd_config can turn PAM off or let root in.",
            "chown root:root and chmod 0644 /etc/ssh/sshd_config and its drop-ins.");

    const auto use_pam = global(entries, "usepam");
    if (!use_pam || lower(use_pam->value) != "yes")
        add(out, "sshd.use_pam", Severity::critical, use_pam ? where(*use_pam) : main,
            use_pam ? "UsePAM " + use_pam->value : "UsePAM is not set (sshd's default is no)",
            "Without PAM, sshd never runs pam_jitgate: every SSH login goes through without an approval.",
            "Set `UsePAM yes` in /etc/ssh/sshd_config.d/40-jitgate.conf (docs/pam.md) and reload sshd.");

    const auto prl = global(entries, "permitrootlogin");
    const std::string root_login = prl ? lower(prl->value) : "prohibit-password";
    if (root_login != "no")
        add(out, "sshd.permit_root_login", Severity::warning, prl ? where(*prl) : main,
            "PermitRootLogin " + (prl ? prl->value : std::string("is not set (default prohibit-password)")),
            "A login as root is a login of nobody in particular: the approval and the audit trail name root, not the "
            "person; and a root key is standing access.",
            "Set `PermitRootLogin no`; admins log in as themselves and use sudo.");
    for (const auto& e : entries) {
        if (e.match.empty()) continue;
        if (e.keyword == "permitrootlogin" && lower(e.value) != "no")
            add(out, "sshd.permit_root_login", Severity::warning, where(e),
                "PermitRootLogin " + e.value + " for `Match " + e.match + "`",
                "A Match block can let root in for the connections it matches (reported whatever the condition).",
                "Remove PermitRootLogin from the Match block, or set it to no.");
        if (e.keyword == "authorizedkeyscommand" && lower(e.value) != "none")
            add(out, "sshd.authorized_keys_command", Severity::warning, where(e),
                "AuthorizedKeysCommand " + e.value + " for `Match " + e.match + "`",
                "Keys from a command are not on this host: whoever controls the command's source can add a key for "
                "any account, root included.",
                "Make sure the command's source is as controlled as the host; review it.");
    }
    const auto akc = global(entries, "authorizedkeyscommand");
    if (akc && lower(akc->value) != "none")
        add(out, "sshd.authorized_keys_command", Severity::warning, where(*akc), "AuthorizedKeysCommand " + akc->value,
            "Keys from a command are not on this host: whoever controls the command's source can add a key for any "
            "account, root included.",
            "Make sure the command's source is as controlled as the host; review it.");
    // Certificates: whoever holds a trusted CA's private key signs a certificate for any
    // principal, root included, on any host that trusts the CA, without touching this one.
    const auto ca = global(entries, "trustedusercakeys");
    for (const auto& e : entries) {
        if (e.keyword != "trustedusercakeys" || lower(e.value) == "none") continue;
        // The first global value (the one in force), and every Match block's.
        if (!e.match.empty() || (ca && ca->file == e.file && ca->line == e.line))
            add(out, "sshd.trusted_user_ca_keys", Severity::warning, where(e),
                "TrustedUserCAKeys " + e.value + (e.match.empty() ? "" : " for `Match " + e.match + "`") +
                    ", and PermitRootLogin is " + root_login,
                "A certificate signed by a trusted CA logs in as any account its principals name (and a principals "
                "file or command allows): whoever holds the CA's private key, or the signing service, has standing "
                "access to every host that trusts it, root included where root may log in, with no key on this "
                "host to find.",
                "Keep the CA key as controlled as the hosts (an HSM, short-lived certificates from a reviewed "
                "service), give root no principals (AuthorizedPrincipalsFile with none for root, or "
                "`PermitRootLogin no`), and review who can sign.");
    }

    // Break-glass members skip the PAM account hook (docs/pam.md); the auth hook is then all
    // that gates them, and sshd runs it only through keyboard-interactive. A login that may
    // finish with a key alone, globally or in any Match block, passes them without a word.
    if (gate.sshd_account_skips_break_glass) {
        const auto key_only = [](const std::string& methods) {
            if (lower(trim(methods)) == "any") return true;
            for (const auto& alternative : words(methods)) {
                bool kbd = false;
                for (const auto& m : split(alternative, ','))
                    if (lower(m).starts_with("keyboard-interactive")) kbd = true;
                if (!kbd) return true;
            }
            return false;
        };
        const auto am = global(entries, "authenticationmethods");
        std::vector<Entry> open;
        if (!am)
            open.push_back({"authenticationmethods", "any", main, 0, "", false, {"any"}});
        else if (key_only(am->value))
            open.push_back(*am);
        for (const auto& e : entries)
            if (!e.match.empty() && e.keyword == "authenticationmethods" && key_only(e.value)) open.push_back(e);
        for (const auto& e : open)
            add(out, "sshd.break_glass_key_only", Severity::critical, e.line > 0 ? where(e) : main,
                (e.line > 0 ? "AuthenticationMethods " + e.value
                            : std::string("AuthenticationMethods is not set (any)")) +
                    (e.match.empty() ? "" : " for `Match " + e.match + "`") + ", and members of " +
                    gate.break_glass_group + " skip pam_jitgate in sshd's account stack",
                "A login with a key alone never runs PAM's auth stack, and the account hook lets break-glass "
                "members through: they log in with no approval and no break-glass reason, unrecorded by jitgate.",
                "Require `AuthenticationMethods publickey,keyboard-interactive` (docs/pam.md), and give no Match "
                "block that covers a break-glass member a key-only method.");
    }

    // root's own keys, where AuthorizedKeysFile says they are: globally (or sshd's default),
    // and in each Match block, which may point root's connections elsewhere. Root may log in
    // if the global PermitRootLogin or that of any Match block lets it.
    const auto* root_user = accounts.user("root");
    const std::string home = root_user && !root_user->home.empty() ? root_user->home : "/root";
    std::string root_may = root_login;
    if (root_login == "no")
        for (const auto& e : entries)
            if (!e.match.empty() && e.keyword == "permitrootlogin" && lower(e.value) != "no") {
                root_may = "no, but " + e.value + " for `Match " + e.match + "` (" + where(e) + ")";
                break;
            }
    struct KeyFiles {
        std::vector<std::string> files;
        std::string from; // "" for the global setting or the default
    };
    std::vector<KeyFiles> sources;
    const auto akf = global(entries, "authorizedkeysfile");
    sources.push_back(
        {akf ? akf->args : std::vector<std::string>{".ssh/authorized_keys", ".ssh/authorized_keys2"}, ""});
    for (const auto& e : entries)
        if (!e.match.empty() && e.keyword == "authorizedkeysfile")
            sources.push_back({e.args, "AuthorizedKeysFile of `Match " + e.match + "` at " + where(e)});
    std::vector<std::string> checked;
    for (const auto& src : sources) {
        for (auto f : src.files) {
            if (lower(f) == "none") continue;
            const auto expanded = expand_tokens(f, home);
            if (!expanded || expanded->empty()) continue;
            f = *expanded;
            if (f[0] != '/') f = home + "/" + f;
            if (std::find(checked.begin(), checked.end(), f) != checked.end()) continue;
            checked.push_back(f);
            const auto r = root.read(f);
            if (r.status == Root::Status::error) {
                add_unreadable(out, "sshd", f, r.error);
                continue;
            }
            int keys = 0;
            for (const auto& l : split(r.text, '\n')) {
                const auto t = trim(l);
                if (!t.empty() && t[0] != '#') ++keys;
            }
            if (keys > 0 && root_may != "no")
                add(out, "sshd.root_authorized_keys", Severity::warning, f,
                    std::to_string(keys) + " key(s) for root, and PermitRootLogin is " + root_may +
                        (src.from.empty() ? "" : " (the file is named by the " + src.from + ")"),
                    "Each key is standing access as root held by whoever has the private key; the login names "
                    "root, not the person.",
                    "Remove the keys (admins log in as themselves) and set `PermitRootLogin no`, globally and in "
                    "every Match block.");
        }
    }
}

} // namespace

} // namespace jitgate::doctor
