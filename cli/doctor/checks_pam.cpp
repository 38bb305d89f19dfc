// cli/doctor/checks_pam.cpp — the PAM stacks of sshd, login and su: is pam_jitgate in them,
// with a control that fails closed, and can a module before it end the stack with success?
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

std::string pam_path(const std::string& name) {
    return name[0] == '/' ? name : "/etc/pam.d/" + name;
}

// The lines of `type` in `file`, with @include and include expanded in place and substacks
// kept as one line each (their jumps and `done` stay inside them).
void flatten(const Root& root, const std::string& file, const std::string& type, int depth, Stack& out,
             Findings& findings) {
    if (depth > 16) return;
    const auto r = root.read(file);
    if (r.status == Root::Status::error) {
        add_unreadable(findings, "pam", file, r.error);
        return;
    }
    if (r.status == Root::Status::missing) {
        if (depth > 0)
            add(findings, "pam.include_missing", Severity::warning, file, file + " is included but does not exist",
                "libpam fails a stack whose included file is missing: logins through it fail (closed).",
                "Restore the file or remove the include.");
        return;
    }
    int n = 0;
    std::string pending;
    int start = 0;
    for (const auto& raw : split(r.text, '\n')) {
        ++n;
        if (pending.empty()) start = n;
        std::string l = raw;
        if (!l.empty() && l.back() == '\\') {
            l.pop_back();
            pending += l + " ";
            continue;
        }
        l = pending + l;
        pending.clear();
        l = trim(l.substr(0, l.find('#')));
        if (l.empty()) continue;
        auto w = words(l);
        if (w[0] == "@include") {
            if (w.size() >= 2) flatten(root, pam_path(w[1]), type, depth + 1, out, findings);
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
            flatten(root, pam_path(pl.module), type, depth + 1, out, findings);
            continue;
        }
        if (pl.control == "substack") {
            pl.substack = true;
            flatten(root, pam_path(pl.module), type, depth + 1, pl.sub, findings);
        }
        out.push_back(std::move(pl));
    }
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
            // pam_rootok succeeds only for a caller who is root already (su run by root).
            if (mod == "pam_rootok.so") continue;
            how = "`sufficient`: its success ends the " + type + " stack before pam_jitgate runs";
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
        }
        return j;
    }
    return std::nullopt;
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
    };
    for (const auto& svc : services) {
        const std::string file = std::string("/etc/pam.d/") + svc.name;
        const bool installed =
            std::any_of(svc.programs.begin(), svc.programs.end(), [&](const char* p) { return root.exists(p); });
        if (!root.exists(file)) {
            if (installed)
                add(out, "pam.service_missing", Severity::critical, file,
                    std::string(svc.name) + " is installed but " + file + " does not exist",
                    "libpam then uses /etc/pam.d/other, which has no pam_jitgate: logins through this service are "
                    "not gated.",
                    "Create the file with the jitgate lines of docs/pam.md.");
            continue;
        }
        if (const auto w = root.writable_by_others(file))
            add(out, "pam.writable", Severity::critical, file, *w,
                "Whoever can change the PAM file can take pam_jitgate out of the stack.",
                "chown root:root and chmod 0644 the file and /etc/pam.d.");
        for (const char* type : svc.types) {
            Stack stack;
            flatten(root, file, type, 0, stack, out);
            if (!find_and_check(stack, svc.name, type, gate, out))
                add(out, "pam.missing", Severity::critical, file + " (" + type + ")",
                    std::string("no pam_jitgate.so in the ") + type + " stack of " + svc.name,
                    std::string(svc.name) + " logins " +
                        (std::string(type) == "account"
                             ? "with a key alone skip the auth stack; without jitgate in the account stack they "
                               "are not gated."
                             : "go through without an approval."),
                    "Add the pam_jitgate lines of docs/pam.md for this service.");
        }
        Stack session;
        flatten(root, file, "session", 0, session, out);
        if (std::none_of(session.begin(), session.end(), contains_jitgate))
            add(out, "pam.session_missing", Severity::warning, file + " (session)",
                std::string("no pam_jitgate.so in the session stack of ") + svc.name,
                "Without it the audit trail has no session.opened / session.closed events and no session length.",
                "Add `session required pam_jitgate.so` as docs/pam.md shows.");
    }
    // Shared files that cron, sudo, systemd's user manager and others include must not hold
    // pam_jitgate (docs/pam.md), nor sudo's own stack: the sudo plugin gates sudo.
    for (const char* shared : {"/etc/pam.d/common-auth", "/etc/pam.d/common-account", "/etc/pam.d/common-session",
                               "/etc/pam.d/common-session-noninteractive", "/etc/pam.d/system-auth",
                               "/etc/pam.d/password-auth", "/etc/pam.d/sudo", "/etc/pam.d/sudo-i"}) {
        const auto r = root.read(shared);
        int n = 0;
        for (const auto& l : split(r.text, '\n')) {
            ++n;
            if (l.substr(0, l.find('#')).find("pam_jitgate.so") == std::string::npos) continue;
            add(out, "pam.shared_file", Severity::warning, std::string(shared) + ":" + std::to_string(n),
                "pam_jitgate is in " + std::string(shared),
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
