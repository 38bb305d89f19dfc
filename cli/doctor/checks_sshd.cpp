// cli/doctor/checks_sshd.cpp — sshd_config (with its Include drop-ins, first value wins):
// does sshd use PAM at all, can root log in, and where do keys come from?
#include <glob.h>

#include <algorithm>

#include "cli/doctor/doctor.hpp"
#include "cli/doctor/parse.hpp"

namespace jitgate::doctor {

namespace {

struct Entry {
    std::string keyword; // lower case
    std::string value;
    std::string file;
    int line = 0;
    std::string match; // the Match condition it is under; "" for global
};

// The files an Include pattern names, in the order sshd reads them: glob(3) over the whole
// pattern (any component may hold a wildcard), sorted, as sshd does; read under the root.
std::vector<std::string> include_files(const Root& root, const std::string& pattern, Findings& findings) {
    const std::string p = pattern[0] == '/' ? pattern : "/etc/ssh/" + pattern;
    if (p.find_first_of("*?[") == std::string::npos) return {p};
    // The root's own directory is taken literally: its wildcard characters are escaped.
    std::string prefix = root.real("/");
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    std::string escaped;
    for (const char c : prefix) {
        if (c == '*' || c == '?' || c == '[' || c == '\\') escaped += '\\';
        escaped += c;
    }
    ::glob_t g{};
    const int rc = ::glob((escaped + p).c_str(), 0, nullptr, &g);
    std::vector<std::string> out;
    if (rc == 0) {
        for (std::size_t i = 0; i < g.gl_pathc; ++i) {
            const std::string real = g.gl_pathv[i];
            if (real.size() > prefix.size() && real.starts_with(prefix)) out.push_back(real.substr(prefix.size()));
        }
    } else if (rc != GLOB_NOMATCH) {
        add_unreadable(findings, "sshd", p,
                       "cannot expand the Include pattern (glob error " + std::to_string(rc) + ")");
    }
    ::globfree(&g);
    return out;
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
    int n = 0;
    for (const auto& raw : split(r.text, '\n')) {
        ++n;
        std::string l = trim(raw);
        if (l.empty() || l[0] == '#') continue;
        // "Keyword value", "Keyword=value" and "Keyword = value" are all sshd syntax.
        const auto sep = l.find_first_of(" \t=");
        const std::string keyword = lower(l.substr(0, sep));
        std::string value = sep == std::string::npos ? "" : trim(l.substr(sep));
        if (value.starts_with("=")) value = trim(value.substr(1));
        if (keyword == "match") {
            match = lower(value) == "all" ? "" : value;
            continue;
        }
        if (keyword == "include") {
            for (const auto& pattern : words(value))
                for (const auto& f : include_files(root, pattern, findings))
                    read_sshd(root, f, match, out, findings, walk);
            continue;
        }
        out.push_back({keyword, value, file, n, match});
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

} // namespace

void check_sshd(const Root& root, const Accounts& accounts, const GateConfig& gate, Findings& out) {
    const std::string main = "/etc/ssh/sshd_config";
    if (!root.exists("/usr/sbin/sshd") && !root.exists(main)) return; // no SSH server here
    std::vector<Entry> entries;
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
            open.push_back({"authenticationmethods", "any", main, 0, ""});
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

    // root's own keys, where AuthorizedKeysFile says they are.
    const auto* root_user = accounts.user("root");
    const std::string home = root_user && !root_user->home.empty() ? root_user->home : "/root";
    const auto akf = global(entries, "authorizedkeysfile");
    const auto files =
        akf ? words(akf->value) : std::vector<std::string>{".ssh/authorized_keys", ".ssh/authorized_keys2"};
    for (auto f : files) {
        if (lower(f) == "none") continue;
        const auto expanded = expand_tokens(f, home);
        if (!expanded || expanded->empty()) continue;
        f = *expanded;
        if (f[0] != '/') f = home + "/" + f;
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
        if (keys > 0 && root_login != "no")
            add(out, "sshd.root_authorized_keys", Severity::warning, f,
                std::to_string(keys) + " key(s) for root, and PermitRootLogin is " + root_login,
                "Each key is standing access as root held by whoever has the private key; the login names root, "
                "not the person.",
                "Remove the keys (admins log in as themselves) and set `PermitRootLogin no`.");
    }
}

} // namespace jitgate::doctor
