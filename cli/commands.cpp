// cli/commands.cpp — jitgatectl's commands (see commands.hpp).
#include "cli/commands.hpp"

#include <curl/curl.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <fstream>
#include <vector>

#include "cli/output.hpp"
#include "daemon/audit/spool.hpp"
#include "daemon/audit/store_check.hpp"
#include "jitgate/admin.hpp"
#include "jitgate/text.hpp"

namespace jitgate::cli {
namespace {

// Sends `request` and collects the replies. Returns k_exit_ok, or after saying why on stderr
// the exit status of the failure: the daemon's error reply, or the transport's.
int talk(const client::Options& opts, const Json& request, std::vector<Json>& replies) {
    const auto s = client::request(opts, request, replies);
    if (!s.ok()) {
        std::fprintf(stderr, "jitgatectl: %s\n", s.detail.c_str());
        return s.code == ErrorCode::daemon_unreachable ? k_exit_unreachable : k_exit_refused;
    }
    if (!replies.empty() && msg::type_of(replies.back()) == msg::k_error) {
        std::fprintf(stderr, "jitgatectl: %s\n", msg::error_from_json(replies.back()).message.c_str());
        return k_exit_refused;
    }
    return k_exit_ok;
}

// The items of a listing (the "item" frames before "end").
std::vector<Json> items_of(const std::vector<Json>& replies) {
    std::vector<Json> items;
    for (const auto& r : replies)
        if (msg::type_of(r) == msg::k_item) items.push_back(msg::item_from_json(r).item);
    return items;
}

// The reply of an operation that answers "ok" (with a message or a status).
msg::OkReply ok_of(const std::vector<Json>& replies) {
    if (replies.empty()) throw Error(ErrorCode::protocol, "reply", "jitgated sent no reply");
    return msg::ok_from_json(replies.back());
}

int cmd_simple(const client::Options& opts, const Json& request) {
    std::vector<Json> replies;
    if (int rc = talk(opts, request, replies)) return rc;
    if (!replies.empty()) std::printf("%s\n", ok_of(replies).message.value_or("").c_str());
    return k_exit_ok;
}

void print_pending(const Json& q) {
    // Who asks first; the account they want after the kind when it is another ("as root").
    const std::string asker = q.contains("requester") ? str(q, "requester") : str(q, "user");
    const std::string account = str(q, "user") != asker ? "  as " + str(q, "user") : std::string();
    std::printf("%s  %s@%s  %s%s  %s ago, expires in %s  approvals %zu/%s (%s)%s\n", str(q, "id").c_str(),
                asker.c_str(), str(q, "host").c_str(), str(q, "kind").c_str(), account.c_str(),
                age(q.value("age_s", 0)).c_str(), age(q.value("expires_in_s", 0)).c_str(),
                q.value("approvers", Json::array()).size(), str(q, "approvals_needed").c_str(),
                joined(q.value("approver_groups", Json::array())).c_str(),
                q.value("waiting", false) ? "" : "  [filed; the requester is not waiting]");
    if (q.contains("display")) std::printf("    command: %s\n", str(q, "display").c_str());
    if (q.contains("submit_display")) std::printf("    typed:   %s\n", str(q, "submit_display").c_str());
    if (q.contains("program")) std::printf("    program: %s\n", str(q, "program").c_str());
    if (q.contains("runas")) {
        // The group, directory and root the command gets, as sudo will use them.
        std::string group = q.contains("runas_group") ? ":" + str(q, "runas_group") : "";
        std::printf("    run as:  %s%s   cwd: %s%s%s\n", str(q, "runas").c_str(), group.c_str(),
                    str(q, q.contains("run_cwd") ? "run_cwd" : "cwd").c_str(),
                    q.contains("chroot") ? "   chroot: " : "", q.contains("chroot") ? str(q, "chroot").c_str() : "");
    }
    if (q.contains("env")) std::printf("    env:     %s\n", joined(q["env"]).c_str());
    if (q.contains("env_code_loading"))
        std::printf("    WARNING: the environment sets loader/interpreter variables: %s\n",
                    joined(q["env_code_loading"]).c_str());
    if (q.contains("service"))
        std::printf("    service: %s   from: %s\n", str(q, "service").c_str(), str(q, "remote_host").c_str());
    if (q.contains("tty")) std::printf("    tty:     %s\n", str(q, "tty").c_str());
    if (q.contains("login_user") && str(q, "login_user") != asker)
        std::printf("    session: of %s (login uid %s)\n", str(q, "login_user").c_str(), str(q, "login_uid").c_str());
    std::printf("    rule:    %s   reason: %s   ticket: %s\n", str(q, "rule").c_str(),
                str(q, "reason").empty() ? "-" : str(q, "reason").c_str(),
                str(q, "ticket").empty() ? "-" : str(q, "ticket").c_str());
    if (q.contains("window")) std::printf("    window:  %s\n", str(q, "window").c_str());
    if (!q.value("approvers", Json::array()).empty())
        std::printf("    approved so far by: %s\n", joined(q["approvers"]).c_str());
    if (q.contains("extends"))
        std::printf("    extends: grant %s (its live sessions go on under the new grant)\n", str(q, "extends").c_str());
}

void print_grant(const Json& g) {
    const std::string whose = g.contains("requester") && str(g, "requester") != str(g, "user")
                                  ? str(g, "user") + " (for " + str(g, "requester") + " only)"
                                  : str(g, "user");
    const std::string by = g.contains("auto_approved") ? "jitgate automatically (" + str(g, "auto_approved") + ")"
                                                       : joined(g.value("approvers", Json::array()));
    std::printf("%s  %s  %s scope, rule %s, expires in %s, approved by %s (request %s)\n", str(g, "id").c_str(),
                whose.c_str(), str(g, "scope").c_str(), str(g, "rule").c_str(), age(g.value("expires_in_s", 0)).c_str(),
                by.c_str(), str(g, "request_id").c_str());
    if (g.contains("window")) std::printf("    window:  %s\n", str(g, "window").c_str());
    if (g.contains("display"))
        std::printf("    command: %s   run as: %s\n", str(g, "display").c_str(), str(g, "runas").c_str());
}

void print_session(const Json& s) {
    const std::int64_t started = s.value("started", std::int64_t{0});
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::string state;
    if (s.contains("ending")) state = "  [ending: " + str(s, "ending") + "]";
    if (s.value("kept", false)) state = "  [kept past its grant: on_expiry keep]";
    const std::int64_t left = s.value("expires_in_s", std::int64_t{0});
    std::printf("%s  %s  %s  pid %s  tty %s  started %s ago  time left %s%s%s\n", str(s, "grant_id").c_str(),
                str(s, "user").c_str(), str(s, "kind").c_str(), str(s, "pid").c_str(),
                str(s, "tty").empty() ? "-" : str(s, "tty").c_str(), age(now - started).c_str(),
                left > 0 ? age(left).c_str() : "0s", str(s, "on_expiry") == "keep" ? " (then kept)" : "",
                state.c_str());
    std::printf("    %s   request %s\n", str(s, "what").c_str(), str(s, "request_id").c_str());
}

void print_my_request(const Json& q) {
    if (str(q, "state") == "pending") {
        std::printf("%s  pending  %s  approvals %zu/%s (%s), expires in %s%s\n", str(q, "id").c_str(),
                    str(q, "kind").c_str(), q.value("approvers", Json::array()).size(),
                    str(q, "approvals_needed").c_str(), joined(q.value("approver_groups", Json::array())).c_str(),
                    age(q.value("expires_in_s", 0)).c_str(), q.value("waiting", false) ? "" : "  [filed]");
        if (q.contains("extends")) std::printf("    extends grant %s\n", str(q, "extends").c_str());
    } else {
        std::printf("%s  %s  %s%s\n", str(q, "id").c_str(), str(q, "outcome").c_str(), str(q, "kind").c_str(),
                    q.contains("grant_id") ? ("  grant " + str(q, "grant_id")).c_str() : "");
        if (!str(q, "message").empty()) std::printf("    %s\n", str(q, "message").c_str());
    }
    if (q.contains("display")) std::printf("    command: %s\n", str(q, "display").c_str());
}

// A listing: one JSON object a line, or each item printed, or `none` when there is nothing.
int cmd_list(const client::Options& opts, const Json& request, bool json, void (*print)(const Json&),
             const char* none) {
    std::vector<Json> replies;
    if (int rc = talk(opts, request, replies)) return rc;
    const auto items = items_of(replies);
    for (const auto& item : items) {
        if (json)
            std::printf("%s\n", item.dump().c_str());
        else
            print(item);
    }
    if (!json && items.empty()) std::printf("%s\n", none);
    return k_exit_ok;
}

bool is_directory(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

} // namespace

int cmd_pending(const client::Options& opts, bool json) {
    std::vector<Json> replies;
    if (int rc = talk(opts, msg::to_json(msg::PendingRequest{}), replies)) return rc;
    const auto items = items_of(replies);
    for (const auto& q : items) {
        if (json)
            std::printf("%s\n", q.dump().c_str());
        else
            print_pending(q);
    }
    if (!json && items.empty()) std::printf("no pending requests\n");
    return k_exit_ok;
}

int cmd_grants(const client::Options& opts, bool json) {
    std::vector<Json> replies;
    if (int rc = talk(opts, msg::to_json(msg::GrantsRequest{}), replies)) return rc;
    const auto items = items_of(replies);
    for (const auto& g : items) {
        if (json)
            std::printf("%s\n", g.dump().c_str());
        else
            print_grant(g);
    }
    if (!json && items.empty()) std::printf("no live grants\n");
    return k_exit_ok;
}

int cmd_sessions(const client::Options& opts, bool json) {
    return cmd_list(opts, msg::to_json(msg::SessionsRequest{}), json, print_session, "no live sessions under grants");
}

int cmd_requests(const client::Options& opts, bool json) {
    return cmd_list(opts, msg::to_json(msg::RequestsRequest{}), json, print_my_request, "no requests of yours");
}

int cmd_done(const client::Options& opts, const std::string& id) {
    return cmd_simple(opts, msg::to_json(msg::DoneRequest{id}));
}

int cmd_extend(const client::Options& opts, const std::string& id, const std::string& reason) {
    return cmd_simple(opts, msg::to_json(msg::ExtendRequest{id, reason}));
}

int cmd_approve(const client::Options& opts, const std::string& id) {
    return cmd_simple(opts, msg::to_json(msg::ApproveRequest{id}));
}

int cmd_deny(const client::Options& opts, const std::string& id, const std::string& reason) {
    return cmd_simple(opts, msg::to_json(msg::DenyRequest{id, reason}));
}

int cmd_revoke(const client::Options& opts, const std::string& id, const std::string& reason) {
    return cmd_simple(opts, msg::to_json(msg::RevokeRequest{id, reason}));
}

int cmd_status(const client::Options& opts, bool json) {
    std::vector<Json> replies;
    if (int rc = talk(opts, msg::to_json(msg::StatusRequest{}), replies)) return rc;
    const Json s = ok_of(replies).status.value_or(Json::object());
    if (json) {
        std::printf("%s\n", s.dump().c_str());
        return k_exit_ok;
    }
    for (const auto& [k, v] : s.items())
        std::printf("%-16s %s\n", k.c_str(), v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
    return k_exit_ok;
}

int cmd_audit_status(const client::Options& opts, bool json) {
    std::vector<Json> replies;
    if (int rc = talk(opts, msg::to_json(msg::StatusRequest{}), replies)) return rc;
    const Json a = ok_of(replies).status.value_or(Json::object()).value("audit", Json());
    if (!a.is_object()) {
        std::fprintf(stderr, "jitgatectl: the daemon's status has no \"audit\" part (an older jitgated?)\n");
        return k_exit_refused;
    }
    if (json) {
        std::printf("%s\n", a.dump().c_str());
        return k_exit_ok;
    }
    const auto num = [&](const char* k) { return a.value(k, std::uint64_t{0}); };
    const auto shown = [&](const char* k) { return text::printable(str(a, k)); };
    std::printf("spool:        %s: %llu events in %llu segment(s), %s of %s%s\n", shown("spool_dir").c_str(),
                static_cast<unsigned long long>(num("spooled_events")),
                static_cast<unsigned long long>(num("segments")), human_bytes(num("spool_bytes")).c_str(),
                human_bytes(num("spool_max_bytes")).c_str(),
                a.value("spool_full", false) ? "  FULL: privileged actions are denied" : "");
    std::printf("seq:          last %llu, durable %llu\n", static_cast<unsigned long long>(num("last_seq")),
                static_cast<unsigned long long>(num("durable_seq")));
    if (str(a, "store").empty()) {
        std::printf("store:        none configured (events stay in the spool and are never deleted)\n");
        return k_exit_ok;
    }
    std::printf("store:        %s (%s)%s\n", shown("store").c_str(), shown("format").c_str(),
                a.value("running", true) ? "" : "  [shipper not running]");
    std::printf("shipped:      up to seq %llu; this run %llu events in %llu batches; last success %s\n",
                static_cast<unsigned long long>(num("shipped_seq")),
                static_cast<unsigned long long>(num("shipped_this_run")),
                static_cast<unsigned long long>(num("batches_this_run")),
                str(a, "last_success_time").empty() ? "never (this run)" : shown("last_success_time").c_str());
    if (num("unsent_events") == 0)
        std::printf("unsent:       none\n");
    else
        std::printf("unsent:       %llu events, oldest from %s\n",
                    static_cast<unsigned long long>(num("unsent_events")),
                    str(a, "oldest_unsent_time").empty() ? "?" : shown("oldest_unsent_time").c_str());
    if (str(a, "last_error").empty())
        std::printf("last error:   none\n");
    else
        std::printf("last error:   %s (at %s; %llu failures in a row)\n", shown("last_error").c_str(),
                    shown("last_error_time").c_str(), static_cast<unsigned long long>(num("consecutive_failures")));
    return k_exit_ok;
}

int cmd_verify(const std::string& path) {
    const bool spool = is_directory(path);
    const auto r = spool ? audit::verify_spool(path) : audit::verify_journal(path);
    const std::string shown = text::escape_for_log(path);
    for (const auto& n : r.notes) std::printf("%s: note: %s\n", shown.c_str(), text::printable(n).c_str());
    for (const auto& p : r.problems) std::printf("%s: %s\n", shown.c_str(), text::printable(p).c_str());
    if (!r.ok) {
        std::printf("%s: FAILED: the audit trail was altered or damaged (%zu problems)\n", shown.c_str(),
                    r.problems.size());
        return k_exit_refused;
    }
    if (r.events == 0) {
        std::printf("%s: OK: no events%s\n", shown.c_str(),
                    r.last_seq > 0
                        ? (" (everything up to seq " + std::to_string(r.last_seq) + " was shipped and deleted)").c_str()
                        : "");
        return k_exit_ok;
    }
    std::printf("%s: OK: %llu events%s, seq %llu..%llu, hash chain intact, no seq gap\n", shown.c_str(),
                static_cast<unsigned long long>(r.events),
                spool ? (" in " + std::to_string(r.segments) + (r.segments == 1 ? " segment" : " segments")).c_str()
                      : "",
                static_cast<unsigned long long>(r.first_seq), static_cast<unsigned long long>(r.last_seq));
    return k_exit_ok;
}

int cmd_verify_against_store(const std::string& dir, const config::Config::Audit::Store& store,
                             const std::string& host) {
    const std::string shown = text::escape_for_log(dir);
    audit::StoreState state;
    try {
        curl_global_init(CURL_GLOBAL_DEFAULT); // once: jitgatectl makes one transfer
        state = audit::fetch_store_state(store, host);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgatectl: cannot read the store's state: %s\n", text::printable(e.what()).c_str());
        return k_exit_refused;
    }
    const audit::StoreCheck check = audit::check_against_store(dir, state);
    std::printf("%s: %s: %s\n", shown.c_str(), check.ok ? "OK" : "FAILED", text::printable(check.summary).c_str());
    return check.ok ? k_exit_ok : k_exit_refused;
}

int cmd_tail(const std::string& path, std::size_t count) {
    std::vector<std::string> lines;
    if (is_directory(path)) {
        try {
            lines = audit::spool::tail_lines(path, count);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "jitgatectl: %s\n", text::printable(e.what()).c_str());
            return k_exit_refused;
        }
    } else {
        std::ifstream in(path);
        if (!in) {
            std::fprintf(stderr, "jitgatectl: cannot read %s\n", text::escape_for_log(path).c_str());
            return k_exit_refused;
        }
        std::deque<std::string> last;
        for (std::string line; std::getline(in, line);) {
            last.push_back(std::move(line));
            if (last.size() > count) last.pop_front();
        }
        lines.assign(last.begin(), last.end());
    }
    for (const auto& line : lines) print_event(line);
    return k_exit_ok;
}

} // namespace jitgate::cli
