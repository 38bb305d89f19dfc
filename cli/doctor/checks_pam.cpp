// cli/doctor/checks_pam.cpp — the PAM stacks of sshd, login and su: is pam_jitgate in them,
// with a control that fails closed, and can a module before it end the stack with success?
#include <sys/stat.h>

#include <algorithm>

#include "cli/doctor/doctor.hpp"
#include "cli/doctor/parse.hpp"

namespace jitgate::doctor {

namespace {

struct PamLine {
    std::string file;
    int line = 0;
    std::string control; // "required", ..., or "[success=1 default=ignore]"
    std::string module;
    std::string args;
    bool dash = false;
    bool substack = false;
    std::vector<PamLine> sub; // the substack's lines
};

using Stack = std::vector<PamLine>;

bool is_jitgate(const PamLine& l) {
    return base_name(l.module) == "pam_jitgate.so";
}

bool contains_jitgate(const PamLine& l) {
    if (l.substack) return std::any_of(l.sub.begin(), l.sub.end(), contains_jitgate);
    return is_jitgate(l);
}

// The directories libpam opens a service or an included name in, in its order
// (_pam_open_config_file): /etc/pam.d, then /usr/lib/pam.d (PAM_CONFIG_DIST_D, always, in
// every Linux-PAM since 1.4), then the vendor directory of a build with --enable-vendordir
// (openSUSE's /usr/etc/pam.d).
constexpr const char* k_pam_dirs[] = {"/etc/pam.d/", "/usr/lib/pam.d/", "/usr/etc/pam.d/"};

bool is_vendor_file(const std::string& file) {
    return file.starts_with("/usr/lib/pam.d/") || file.starts_with("/usr/etc/pam.d/");
}

// The file libpam reads for a service or an included name: the first of k_pam_dirs where
// fopen(3) succeeds, so a dangling link (or an entry a loop makes unopenable) in /etc/pam.d
// falls through to the next directory as it does for libpam. libpam runs as root, so
// permissions do not make a file unopenable. A name in none is reported under /etc/pam.d.
std::string pam_path(const Root& root, const std::string& name) {
    if (name[0] == '/') return name;
    for (const char* dir : k_pam_dirs) {
        const std::string p = dir + name;
        const std::string path = root.real_resolved(p);
        struct stat st {};
        if (!path.empty() && ::stat(path.c_str(), &st) == 0) return p;
    }
    return "/etc/pam.d/" + name;
}

// SECURITY NOTE: a bound on the work: the files one stack may read in all (a file included
// several times at each of 16 levels would otherwise take exponential time).
constexpr int k_max_pam_reads = 1024;

struct Walk {
    // libpam up to 1.5 (_pam_assemble_line) skips a blank or comment-only line inside a
    // continuation; from 1.6 (_pam_line_assemble) such a line ends it. Each stack is read both
    // ways and a door found in either is reported: doctor does not know the host's version.
    bool blank_ends_continuation = false;
    std::vector<std::string> chain; // the files being read, outermost first
    int reads = 0;
    bool over_budget = false;
};

// The lines of `type` in `file`, with @include and include expanded in place and substacks
// kept as one line each (their jumps and `done` stay inside them).
void flatten(const Root& root, const std::string& file, const std::string& type, Walk& walk, Stack& out,
             Findings& findings) {
    if (walk.over_budget) return;
    if (std::find(walk.chain.begin(), walk.chain.end(), file) != walk.chain.end() || walk.chain.size() > 16) {
        // libpam gives up on a stack nested deeper than 16 levels (PAM_SUBSTACK_MAX_LEVEL): the
        // whole stack fails, so logins through it fail (closed).
        add(findings, "pam.include_loop", Severity::warning, file,
            file + " is included from itself (through " + walk.chain.back() + ") or includes nest too deep",
            "libpam stops at 16 nested includes and fails the stack: logins through it fail (closed).",
            "Remove the include that leads back.");
        return;
    }
    if (++walk.reads > k_max_pam_reads) {
        walk.over_budget = true;
        add(findings, "pam.not_checked", Severity::critical, walk.chain.empty() ? file : walk.chain.front(),
            "could not check: the includes read more than " + std::to_string(k_max_pam_reads) + " files",
            "doctor fails closed: a stack it has not read to the end may hold a way around jitgate.",
            "Include each file once; review the stack by hand.");
        return;
    }
    const auto r = root.read(file);
    if (r.status == Root::Status::error) {
        add_unreadable(findings, "pam", file, r.error);
        return;
    }
    if (r.status == Root::Status::missing) {
        if (!walk.chain.empty())
            add(findings, "pam.include_missing", Severity::warning, file, file + " is included but does not exist",
                "libpam fails a stack whose included file is missing: logins through it fail (closed).",
                "Restore the file or remove the include.");
        return;
    }
    // Logical lines as libpam makes them: a '#' ends the logical line there, so a comment is
    // never continued; otherwise a '\\' at the end (blanks after it allowed) joins the next
    // line. A blank or comment-only line is skipped; inside a continuation it is skipped too
    // (libpam <= 1.5) or ends the line (libpam >= 1.6), as `walk` says.
    std::vector<std::pair<int, std::string>> logical;
    {
        int n = 0;
        std::string pending;
        int start = 0;
        for (const auto& raw : split(r.text, '\n')) {
            ++n;
            const std::string t = trim(raw);
            if (t.empty() || t[0] == '#') {
                if (walk.blank_ends_continuation && !pending.empty()) {
                    logical.emplace_back(start, pending);
                    pending.clear();
                }
                continue;
            }
            if (pending.empty()) start = n;
            const auto hash = t.find('#');
            if (hash != std::string::npos) {
                logical.emplace_back(start, pending + t.substr(0, hash));
                pending.clear();
                continue;
            }
            if (t.back() == '\\') {
                pending += t.substr(0, t.size() - 1) + " ";
                continue;
            }
            logical.emplace_back(start, pending + t);
            pending.clear();
        }
        // A continuation at the end of the file: libpam stops reading there and uses no part of
        // it, so neither does doctor.
    }
    walk.chain.push_back(file);
    for (const auto& [start, text] : logical) {
        const std::string l = trim(text);
        if (l.empty()) continue;
        auto w = words(l);
        if (w[0] == "@include") {
            if (w.size() >= 2) flatten(root, pam_path(root, w[1]), type, walk, out, findings);
            continue;
        }
        PamLine pl;
        pl.file = file;
        pl.line = start;
        std::string t = w[0];
        if (t.starts_with("-")) {
            pl.dash = true;
            t = t.substr(1);
        }
        if (lower(t) != type || w.size() < 2) continue;
        // The control: a word, or "[ ... ]" that may hold blanks.
        std::string rest = trim(l.substr(l.find(w[0]) + w[0].size()));
        if (rest.starts_with("[")) {
            const auto close = rest.find(']');
            if (close == std::string::npos) continue;
            pl.control = rest.substr(0, close + 1);
            rest = trim(rest.substr(close + 1));
        } else {
            pl.control = lower(words(rest)[0]);
            rest = trim(rest.substr(words(rest)[0].size()));
        }
        const auto mw = words(rest);
        if (mw.empty()) continue;
        pl.module = mw[0];
        pl.args = trim(rest.substr(mw[0].size()));
        if (pl.control == "include") {
            flatten(root, pam_path(root, pl.module), type, walk, out, findings);
            continue;
        }
        if (pl.control == "substack") {
            pl.substack = true;
            flatten(root, pam_path(root, pl.module), type, walk, pl.sub, findings);
        }
        out.push_back(std::move(pl));
    }
    walk.chain.pop_back();
}

// "[success=1 default=ignore]" -> {success: "1", default: "ignore"}.
std::map<std::string, std::string> bracket(const std::string& control) {
    std::map<std::string, std::string> m;
    if (!control.starts_with("[")) return m;
    for (const auto& kv : words(control.substr(1, control.size() - 2))) {
        const auto eq = kv.find('=');
        if (eq != std::string::npos) m[lower(kv.substr(0, eq))] = lower(kv.substr(eq + 1));
    }
    return m;
}

bool is_jump(const std::string& action) {
    return !action.empty() && action.find_first_not_of("0123456789") == std::string::npos && action.size() < 4;
}

std::string where(const PamLine& l) {
    return l.file + ":" + std::to_string(l.line);
}

// The jitgate line's own control must let no failure through.
void check_control(const PamLine& l, Findings& out) {
    const std::string subject = where(l);
    if (l.dash)
        add(out, "pam.dash", Severity::critical, subject, "the pam_jitgate line starts with '-'",
            "libpam silently skips a '-' line whose module file is missing: remove or rename the module and the "
            "gate vanishes without a trace.",
            "Remove the leading '-' (docs/pam.md).");
    std::string weak;
    if (l.control == "sufficient" || l.control == "optional") {
        weak = "`" + l.control + "`";
    } else if (l.control.starts_with("[")) {
        for (const auto& [value, action] : bracket(l.control)) {
            if (value == "success" || value == "ignore") continue;
            if (action == "ok" || action == "done" || action == "ignore" || is_jump(action))
                weak += (weak.empty() ? "" : ", ") + value + "=" + action;
        }
        if (!weak.empty()) weak = "`" + l.control + "` (" + weak + ")";
    }
    if (!weak.empty())
        add(out, "pam.weak_control", Severity::critical, subject, "pam_jitgate is used as " + weak,
            "With this control a refusal of jitgate (or jitgated being down) does not fail the stack: the login goes "
            "through without an approval.",
            "Use `requisite` (auth) or `required` (account, session), as docs/pam.md shows.");
}

// Lines before `j` that can end the stack with success or jump over line `j`.
void check_before(const Stack& stack, std::size_t j, const std::string& service, const std::string& type,
                  const GateConfig& gate, Findings& out) {
    for (std::size_t i = 0; i < j; ++i) {
        const auto& l = stack[i];
        if (l.substack) continue; // its `done` and jumps end only the substack
        const std::string mod = base_name(l.module);
        std::string how;
        if (l.control == "sufficient") {
            // pam_rootok succeeds for a caller who is root already: for su that is root itself
            // (su run by root). sshd and login run as root, so there it lets everyone through.
            if (mod == "pam_rootok.so" && (service == "su" || service == "su-l")) continue;
            how = "`sufficient`: its success ends the " + type + " stack before pam_jitgate runs";
            if (mod == "pam_rootok.so")
                how += " (" + service + " runs as root, so pam_rootok succeeds for every login)";
        } else if (l.control.starts_with("[")) {
            for (const auto& [value, action] : bracket(l.control)) {
                if (action == "done" && value != "abort")
                    how = "`" + value + "=done`: ends the " + type + " stack before pam_jitgate runs";
                else if (is_jump(action) && i + std::stoul(action) >= j) {
                    // The documented exceptions (docs/pam.md): break-glass members skip the account
                    // hook; root skips the console login's hook (it still needs its password).
                    const auto aw = words(l.args);
                    const bool bg = mod == "pam_succeed_if.so" && !gate.break_glass_group.empty() &&
                                    l.args.find("ingroup " + gate.break_glass_group) != std::string::npos &&
                                    type == "account" && aw.size() <= 5;
                    const bool root_console = mod == "pam_succeed_if.so" && service == "login" &&
                                              l.args.find("uid eq 0") != std::string::npos && aw.size() <= 4;
                    if (bg) {
                        add(out, "pam.break_glass_skip", Severity::info, where(l),
                            "members of " + gate.break_glass_group + " skip pam_jitgate in the " + service +
                                " account stack (the documented exception)",
                            "The account hook then does not gate them: a key-only SSH login by a break-glass member "
                            "would pass without approval.",
                            "Make sure no sshd Match block lets break-glass members in with a key alone "
                            "(AuthenticationMethods publickey).");
                        continue;
                    }
                    if (root_console) {
                        add(out, "pam.root_console_skip", Severity::info, where(l),
                            "root skips pam_jitgate on the console (the documented exception)",
                            "Root's console login is the way back in when jitgated is down; it still needs root's "
                            "password.",
                            "Keep root's password in a sealed, audited store.");
                        continue;
                    }
                    how = "`" + value + "=" + action + "` jumps over pam_jitgate";
                }
                if (!how.empty()) break;
            }
        }
        if (!how.empty())
            add(out, "pam.bypass", Severity::critical, where(l), base_name(l.module) + " " + how,
                "A module that ends the stack early or jumps over pam_jitgate lets a login through without an "
                "approval whenever it succeeds.",
                "Put the pam_jitgate line before it, or change its control to `required`/`requisite` "
                "(docs/pam.md).");
    }
}

// Whether a failure of the jitgate line ends the stack at once (`requisite`, or a bracket whose
// every failure is `die`) rather than only marking it failed (`required`, `bad`), which a later
// `reset` can erase.
bool fails_at_once(const PamLine& l) {
    if (l.control == "requisite") return true;
    if (!l.control.starts_with("[")) return false;
    const auto m = bracket(l.control);
    const auto d = m.find("default");
    if (d == m.end() || d->second != "die") return false;
    for (const auto& [value, action] : m)
        if (value != "success" && action != "die") return false;
    return true;
}

// A `reset` after a jitgate line that only marks the stack failed forgets that failure: a later
// module's success then passes the login.
void check_reset_after(const Stack& stack, std::size_t j, const std::string& type, Findings& out) {
    if (fails_at_once(stack[j])) return;
    for (std::size_t i = j + 1; i < stack.size(); ++i) {
        const auto& l = stack[i];
        if (l.substack) continue; // its reset resets only the substack
        for (const auto& [value, action] : bracket(l.control)) {
            if (action != "reset") continue;
            add(out, "pam.reset_after", Severity::critical, where(l),
                base_name(l.module) + " has `" + value + "=reset` after pam_jitgate (" + where(stack[j]) + ") in the " +
                    type + " stack",
                "pam_jitgate's `" + stack[j].control +
                    "` control only marks the stack failed and goes on; `reset` clears that mark, so a refusal of "
                    "jitgate is forgotten when this module gives that result and a later module succeeds.",
                "Use `requisite` (or `[success=ok default=die]`) for pam_jitgate, so its refusal ends the stack "
                "at once (docs/pam.md).");
            break;
        }
    }
}

// The index of the first line holding pam_jitgate; checks it (and inside a substack, the
// lines before it there).
std::optional<std::size_t> find_and_check(const Stack& stack, const std::string& service, const std::string& type,
                                          const GateConfig& gate, Findings& out) {
    for (std::size_t j = 0; j < stack.size(); ++j) {
        if (!contains_jitgate(stack[j])) continue;
        check_before(stack, j, service, type, gate, out);
        if (stack[j].substack) {
            find_and_check(stack[j].sub, service, type, gate, out);
        } else {
            check_control(stack[j], out);
            check_reset_after(stack, j, type, out);
        }
        return j;
    }
    return std::nullopt;
}

// Where libpam looks for a module given by name: its compiled-in directory, which is one of
// these (the multiarch ones, /lib/<triplet>/security, are found by listing /lib and /usr/lib).
std::vector<std::string> module_dirs(const Root& root) {
    std::vector<std::string> dirs{"/lib/security",       "/usr/lib/security", "/lib64/security",
                                  "/usr/lib64/security", "/lib32/security",   "/usr/lib32/security"};
    for (const char* lib : {"/lib", "/usr/lib"})
        if (const auto names = root.list(lib))
            for (const auto& n : *names)
                if (n.find("-linux-") != std::string::npos) dirs.push_back(std::string(lib) + "/" + n + "/security");
    return dirs;
}

// Whether an absolute module path is a file directly in one of the system's module
// directories (no "." or ".." on the way: "/lib/security/../../tmp/x.so" is not).
bool in_module_dir(const std::string& path, const std::vector<std::string>& dirs) {
    if (path.find("/./") != std::string::npos || path.find("/../") != std::string::npos) return false;
    return std::any_of(dirs.begin(), dirs.end(), [&](const std::string& d) { return dir_name(path) == d; });
}

// The lines up to and including `j`, substacks opened: the modules that run before pam_jitgate
// decides, and pam_jitgate itself.
void modules_up_to(const Stack& stack, std::size_t j, std::vector<const PamLine*>& out) {
    for (std::size_t i = 0; i <= j && i < stack.size(); ++i) {
        if (stack[i].substack) {
            modules_up_to(stack[i].sub, stack[i].sub.size(), out);
        } else {
            out.push_back(&stack[i]);
        }
    }
}

// The module files of the checked stack: pam_jitgate given by a path outside the module
// directories, and any of them that someone other than root can change.
void check_module_paths(const Root& root, const Stack& stack, std::size_t j, Findings& out) {
    const auto dirs = module_dirs(root);
    std::vector<const PamLine*> lines;
    modules_up_to(stack, j, lines);
    for (const PamLine* l : lines) {
        std::vector<std::string> files;
        if (l->module.starts_with("/")) {
            files.push_back(l->module);
            if (is_jitgate(*l) && !in_module_dir(l->module, dirs))
                add(out, "pam.module_path", Severity::warning, where(*l),
                    "pam_jitgate is loaded from " + l->module + ", outside the system's PAM module directories",
                    "A module by that name elsewhere may not be jitgate's: anything that returns success there "
                    "passes every login, and package updates do not replace it.",
                    "Name the module as `pam_jitgate.so` (no directory), as docs/pam.md shows.");
        } else {
            for (const auto& d : dirs)
                if (root.exists(d + "/" + l->module)) files.push_back(d + "/" + l->module);
        }
        for (const auto& file : files)
            if (const auto w = root.writable_by_others(file))
                add(out, "pam.module_writable", Severity::critical, file, *w,
                    "This module runs in the " + base_name(l->module) + " line at " + where(*l) +
                        " before pam_jitgate decides (or is pam_jitgate): whoever can replace it can make it "
                        "return success and let every login through.",
                    "chown root:root and chmod 0644 the module and every directory above it.");
    }
}

} // namespace

void check_pam(const Root& root, GateConfig& gate, Findings& out) {
    const std::size_t first = out.size();
    struct Service {
        const char* name;
        std::vector<const char*> programs;
        std::vector<const char*> types; // where pam_jitgate must gate
    };
    const std::vector<Service> services{
        {"sshd", {"/usr/sbin/sshd"}, {"auth", "account"}},
        {"login", {"/bin/login", "/usr/bin/login"}, {"auth"}},
        {"su", {"/bin/su", "/usr/bin/su"}, {"auth"}},
        // `su -l` on Debian and Ubuntu; checked when the file exists.
        {"su-l", {}, {"auth"}},
    };
    for (const auto& svc : services) {
        const std::string file = pam_path(root, svc.name);
        const bool installed =
            std::any_of(svc.programs.begin(), svc.programs.end(), [&](const char* p) { return root.exists(p); });
        if (!root.exists(file)) {
            if (installed)
                add(out, "pam.service_missing", Severity::critical, file,
                    std::string(svc.name) + " is installed but " + file + " does not exist",
                    "libpam then uses the `other` stack (/etc/pam.d/other, or /usr/lib/pam.d/other, "
                    "/usr/etc/pam.d/other), "
                    "which has no "
                    "pam_jitgate: logins through this service are not gated.",
                    "Create the file with the jitgate lines of docs/pam.md.");
            continue;
        }
        // SECURITY NOTE: a vendor file is the package's: an update replaces it, and jitgate lines
        // an admin added there go with it, without a word. Reported while they are there.
        if (is_vendor_file(file) && root.read(file).text.find("pam_jitgate.so") != std::string::npos)
            add(out, "pam.vendor_file", Severity::warning, file,
                std::string("the ") + svc.name + " stack is " + file + " (there is no /etc/pam.d/" + svc.name +
                    "), and the jitgate lines are in it",
                "Files in /usr/lib/pam.d and /usr/etc/pam.d belong to the distribution's packages: the next update of "
                "the package "
                "replaces the file and takes pam_jitgate out of the stack, and logins then go through ungated.",
                std::string("Copy the file to /etc/pam.d/") + svc.name +
                    " (which libpam reads instead) and keep the jitgate lines there.");
        if (const auto w = root.writable_by_others(file))
            add(out, "pam.writable", Severity::critical, file, *w,
                "Whoever can change the PAM file can take pam_jitgate out of the stack.",
                "chown root:root and chmod 0644 the file and /etc/pam.d.");
        for (const char* type : svc.types) {
            for (const bool v16 : {false, true}) {
                Stack stack;
                Walk walk;
                walk.blank_ends_continuation = v16;
                flatten(root, file, type, walk, stack, out);
                const auto j = find_and_check(stack, svc.name, type, gate, out);
                if (j) check_module_paths(root, stack, *j, out);
                if (!j)
                    add(out, "pam.missing", Severity::critical, file + " (" + type + ")",
                        std::string("no pam_jitgate.so in the ") + type + " stack of " + svc.name,
                        std::string(svc.name) + " logins " +
                            (std::string(type) == "account"
                                 ? "with a key alone skip the auth stack; without jitgate in the account stack they "
                                   "are not gated."
                                 : "go through without an approval."),
                        "Add the pam_jitgate lines of docs/pam.md for this service.");
            }
        }
        Stack session;
        Walk walk;
        flatten(root, file, "session", walk, session, out);
        if (std::none_of(session.begin(), session.end(), contains_jitgate))
            add(out, "pam.session_missing", Severity::warning, file + " (session)",
                std::string("no pam_jitgate.so in the session stack of ") + svc.name,
                "Without it the audit trail has no session.opened / session.closed events and no session length.",
                "Add `session required pam_jitgate.so` as docs/pam.md shows.");
    }
    // Shared files that cron, sudo, systemd's user manager and others include must not hold
    // pam_jitgate (docs/pam.md), nor sudo's own stack: the sudo plugin gates sudo.
    for (const char* name : {"common-auth", "common-account", "common-session", "common-session-noninteractive",
                             "system-auth", "password-auth", "sudo", "sudo-i"}) {
        const std::string shared = pam_path(root, name);
        const auto r = root.read(shared);
        int n = 0;
        for (const auto& l : split(r.text, '\n')) {
            ++n;
            if (l.substr(0, l.find('#')).find("pam_jitgate.so") == std::string::npos) continue;
            add(out, "pam.shared_file", Severity::warning, shared + ":" + std::to_string(n),
                "pam_jitgate is in " + shared,
                "Other services include this file: cron jobs, sudo (which the sudo plugin already gates: it "
                "would ask twice) and systemd's user manager would be held for approval, and a failure there "
                "tempts people to remove the gate altogether.",
                "Put the jitgate lines only into /etc/pam.d/sshd, login and su (docs/pam.md).");
        }
    }
    // Each stack (auth, account, session) reads the same files: one finding per file is enough.
    Findings unique;
    for (std::size_t i = first; i < out.size(); ++i)
        if (std::none_of(unique.begin(), unique.end(),
                         [&](const Finding& u) { return u.check == out[i].check && u.subject == out[i].subject; }))
            unique.push_back(std::move(out[i]));
    out.resize(first);
    for (auto& f : unique) {
        // Only sshd's account stack is checked for it: the sshd check needs to know.
        if (f.check == "pam.break_glass_skip") gate.sshd_account_skips_break_glass = true;
        out.push_back(std::move(f));
    }
}

} // namespace jitgate::doctor
