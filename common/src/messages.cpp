#include "jitgate/messages.hpp"

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"
#include "jitgate/wire.hpp"

namespace jitgate::msg {

using namespace jitgate::wire;

namespace {
// Adds a member to an object being built. Messages on the fast path are built member by
// member: a Json made from an initializer list of {key, value} pairs first makes each pair a
// two-element array and then takes it apart into the object, which was most of the client's
// work for one check (callgrind: 48,000 of 134,000 instructions).
void put(Json::object_t& o, const char* key, Json value) {
    o.emplace(key, std::move(value));
}
} // namespace

Json to_json(const CheckRequest& r) {
    Json j = Json::object();
    auto& o = j.get_ref<Json::object_t&>();
    put(o, "type", k_check);
    put(o, "v", k_protocol_version);
    put(o, "kind", r.kind);
    put(o, "user", r.user);
    put(o, "uid", r.uid);
    put(o, "pid", r.pid);
    put(o, "runas_user", r.runas_user);
    put(o, "runas_uid", r.runas_uid);
    put(o, "command", text::arg_to_json(r.command));
    put(o, "run_argv", text::argv_to_json(r.run_argv));
    put(o, "submit_argv", text::argv_to_json(r.submit_argv));
    put(o, "argv_truncated", r.argv_truncated);
    put(o, "argv_bytes", r.argv_bytes);
    put(o, "cwd", text::arg_to_json(r.cwd));
    put(o, "tty", r.tty);
    put(o, "service", r.service);
    put(o, "remote_host", r.remote_host);
    put(o, "reason", text::arg_to_json(r.reason));
    put(o, "ticket", text::arg_to_json(r.ticket));
    put(o, "break_glass_reason", text::arg_to_json(r.break_glass_reason));
    put(o, "interactive", r.interactive);
    put(o, "noninteractive", r.noninteractive);
    put(o, "requester", text::arg_to_json(r.requester));
    put(o, "runas_group", text::arg_to_json(r.runas_group));
    put(o, "runas_gid", r.runas_gid);
    put(o, "run_cwd", text::arg_to_json(r.run_cwd));
    put(o, "chroot", text::arg_to_json(r.chroot));
    put(o, "run_env", text::argv_to_json(r.run_env));
    put(o, "env_truncated", r.env_truncated);
    put(o, "sudo_args", text::argv_to_json(r.sudo_args));
    put(o, "command_realpath", text::arg_to_json(r.command_realpath));
    put(o, "command_dev", r.command_dev);
    put(o, "command_ino", r.command_ino);
    // Absent when unknown, so a daemon can tell an older client from one that says "off".
    if (r.intercept != CheckRequest::Intercept::unknown) j["intercept"] = r.intercept == CheckRequest::Intercept::on;
    if (!r.intercept_limit.empty()) j["intercept_limit"] = r.intercept_limit;
    if (r.intercepted) {
        j["intercepted"] = true;
        j["parent_request_id"] = r.parent_request_id;
        j["parent_grant_id"] = r.parent_grant_id;
    }
    return j;
}

// The members of to_json(r) in Json's (sorted) key order, so that the bytes are its dump's.
std::string encode(const CheckRequest& r) {
    ObjectWriter w;
    w.integer("argv_bytes", r.argv_bytes);
    w.boolean("argv_truncated", r.argv_truncated);
    w.arg("break_glass_reason", r.break_glass_reason);
    w.arg("chroot", r.chroot);
    w.arg("command", r.command);
    w.integer("command_dev", r.command_dev);
    w.integer("command_ino", r.command_ino);
    w.arg("command_realpath", r.command_realpath);
    w.arg("cwd", r.cwd);
    w.boolean("env_truncated", r.env_truncated);
    w.boolean("interactive", r.interactive);
    if (r.intercept != CheckRequest::Intercept::unknown)
        w.boolean("intercept", r.intercept == CheckRequest::Intercept::on);
    if (!r.intercept_limit.empty()) w.string("intercept_limit", r.intercept_limit);
    if (r.intercepted) w.boolean("intercepted", true);
    w.string("kind", r.kind);
    w.boolean("noninteractive", r.noninteractive);
    if (r.intercepted) {
        w.string("parent_grant_id", r.parent_grant_id);
        w.string("parent_request_id", r.parent_request_id);
    }
    w.integer("pid", r.pid);
    w.arg("reason", r.reason);
    w.string("remote_host", r.remote_host);
    w.arg("requester", r.requester);
    w.argv("run_argv", r.run_argv);
    w.arg("run_cwd", r.run_cwd);
    w.argv("run_env", r.run_env);
    w.integer("runas_gid", r.runas_gid);
    w.arg("runas_group", r.runas_group);
    w.integer("runas_uid", r.runas_uid);
    w.string("runas_user", r.runas_user);
    w.string("service", r.service);
    w.argv("submit_argv", r.submit_argv);
    w.argv("sudo_args", r.sudo_args);
    w.arg("ticket", r.ticket);
    w.string("tty", r.tty);
    w.string("type", k_check);
    w.integer("uid", r.uid);
    w.string("user", r.user);
    w.integer("v", k_protocol_version);
    return std::move(w).frame();
}

namespace {
std::string optional_arg(const Json& j, const char* field) {
    const auto it = j.find(field);
    if (it == j.end() || it->is_null()) return {};
    return text::arg_from_json(*it);
}
std::vector<std::string> optional_argv(const Json& j, const char* field) {
    const auto it = j.find(field);
    if (it == j.end() || it->is_null()) return {};
    return text::argv_from_json(*it);
}
void require_version(const Json& j) {
    const auto v = optional_int(j, "v", k_protocol_version);
    if (v != k_protocol_version)
        throw Error(ErrorCode::protocol, "v",
                    "protocol version " + std::to_string(v) + " is not supported (this daemon speaks 1)");
}
} // namespace

CheckRequest check_from_json(const Json& j) {
    require_version(j);
    CheckRequest r;
    r.kind = require_string(j, "kind");
    if (r.kind != "sudo" && r.kind != "login")
        throw Error(ErrorCode::protocol, "kind", "must be \"sudo\" or \"login\"");
    r.user = require_string(j, "user");
    r.uid = require_int(j, "uid");
    r.pid = optional_int(j, "pid", -1);
    r.runas_user = optional_string(j, "runas_user");
    r.runas_uid = optional_int(j, "runas_uid", -1);
    r.command = optional_arg(j, "command");
    r.run_argv = optional_argv(j, "run_argv");
    r.submit_argv = optional_argv(j, "submit_argv");
    r.argv_truncated = optional_bool(j, "argv_truncated", false);
    r.argv_bytes = optional_int(j, "argv_bytes", 0);
    r.cwd = optional_arg(j, "cwd");
    r.tty = optional_string(j, "tty");
    r.service = optional_string(j, "service");
    r.remote_host = optional_string(j, "remote_host");
    r.reason = optional_arg(j, "reason");
    r.ticket = optional_arg(j, "ticket");
    r.break_glass_reason = optional_arg(j, "break_glass_reason");
    r.interactive = optional_bool(j, "interactive", false);
    r.noninteractive = optional_bool(j, "noninteractive", false);
    r.requester = optional_arg(j, "requester");
    r.runas_group = optional_arg(j, "runas_group");
    r.runas_gid = optional_int(j, "runas_gid", -1);
    r.run_cwd = optional_arg(j, "run_cwd");
    r.chroot = optional_arg(j, "chroot");
    r.run_env = optional_argv(j, "run_env");
    r.env_truncated = optional_bool(j, "env_truncated", false);
    r.sudo_args = optional_argv(j, "sudo_args");
    r.command_realpath = optional_arg(j, "command_realpath");
    r.command_dev = optional_int(j, "command_dev", -1);
    r.command_ino = optional_int(j, "command_ino", -1);
    if (const auto it = j.find("intercept"); it != j.end() && !it->is_null()) {
        if (!it->is_boolean()) throw Error(ErrorCode::protocol, "intercept", "must be a boolean");
        r.intercept = it->get<bool>() ? CheckRequest::Intercept::on : CheckRequest::Intercept::off;
    }
    r.intercept_limit = optional_string(j, "intercept_limit");
    if (!r.intercept_limit.empty() && r.intercept_limit != "dso" && r.intercept_limit != "no_verify" &&
        r.intercept_limit != "traced")
        throw Error(ErrorCode::protocol, "intercept_limit", "must be dso, no_verify or traced");
    r.intercepted = optional_bool(j, "intercepted", false);
    r.parent_request_id = optional_string(j, "parent_request_id");
    r.parent_grant_id = optional_string(j, "parent_grant_id");
    if (r.intercepted && r.kind != "sudo")
        throw Error(ErrorCode::protocol, "intercepted", "only a sudo check can be for a sub-command");
    return r;
}

Json to_json(const FinishedReport& r) {
    return Json{{"type", k_finished},
                {"v", k_protocol_version},
                {"kind", r.kind},
                {"user", r.user},
                {"uid", r.uid},
                {"pid", r.pid},
                {"runas_user", r.runas_user},
                {"command", text::arg_to_json(r.command)},
                {"run_argv", text::argv_to_json(r.run_argv)},
                {"request_id", r.request_id},
                {"grant_id", r.grant_id},
                {"status_type", r.status_type},
                {"exit_status", r.exit_status},
                {"signal", r.signal},
                {"exec_errno", r.exec_errno},
                {"duration_ms", r.duration_ms},
                {"tty", r.tty}};
}

// As encode(const CheckRequest&): to_json(r)'s members in sorted key order.
std::string encode(const FinishedReport& r) {
    ObjectWriter w;
    w.arg("command", r.command);
    w.integer("duration_ms", r.duration_ms);
    w.integer("exec_errno", r.exec_errno);
    w.integer("exit_status", r.exit_status);
    w.string("grant_id", r.grant_id);
    w.string("kind", r.kind);
    w.integer("pid", r.pid);
    w.string("request_id", r.request_id);
    w.argv("run_argv", r.run_argv);
    w.string("runas_user", r.runas_user);
    w.integer("signal", r.signal);
    w.string("status_type", r.status_type);
    w.string("tty", r.tty);
    w.string("type", k_finished);
    w.integer("uid", r.uid);
    w.string("user", r.user);
    w.integer("v", k_protocol_version);
    return std::move(w).frame();
}

FinishedReport finished_from_json(const Json& j) {
    require_version(j);
    FinishedReport r;
    r.kind = require_string(j, "kind");
    if (r.kind != "sudo") throw Error(ErrorCode::protocol, "kind", "a finished report is only for \"sudo\"");
    r.user = require_string(j, "user");
    r.uid = require_int(j, "uid");
    r.pid = optional_int(j, "pid", -1);
    r.runas_user = optional_string(j, "runas_user");
    r.command = optional_arg(j, "command");
    r.run_argv = optional_argv(j, "run_argv");
    r.request_id = optional_string(j, "request_id");
    r.grant_id = optional_string(j, "grant_id");
    r.status_type = require_string(j, "status_type");
    if (r.status_type != "exit" && r.status_type != "signal" && r.status_type != "exec_error" &&
        r.status_type != "not_run")
        throw Error(ErrorCode::protocol, "status_type", "must be exit, signal, exec_error or not_run");
    r.exit_status = optional_int(j, "exit_status", -1);
    r.signal = optional_int(j, "signal", 0);
    r.exec_errno = optional_int(j, "exec_errno", 0);
    r.duration_ms = optional_int(j, "duration_ms", -1);
    r.tty = optional_string(j, "tty");
    return r;
}

Json to_json(const SessionReport& r) {
    return Json{{"type", k_session},
                {"v", k_protocol_version},
                {"event", r.event},
                {"user", r.user},
                {"uid", r.uid},
                {"service", r.service},
                {"remote_host", r.remote_host},
                {"tty", r.tty},
                {"request_id", r.request_id},
                {"grant_id", r.grant_id},
                {"duration_ms", r.duration_ms}};
}

SessionReport session_from_json(const Json& j) {
    require_version(j);
    SessionReport r;
    r.event = require_string(j, "event");
    if (r.event != "opened" && r.event != "closed")
        throw Error(ErrorCode::protocol, "event", "must be opened or closed");
    r.user = require_string(j, "user");
    r.uid = require_int(j, "uid");
    r.service = optional_string(j, "service");
    r.remote_host = optional_string(j, "remote_host");
    r.tty = optional_string(j, "tty");
    r.request_id = optional_string(j, "request_id");
    r.grant_id = optional_string(j, "grant_id");
    r.duration_ms = optional_int(j, "duration_ms", -1);
    return r;
}

namespace {
struct OutcomeName {
    Outcome outcome;
    const char* name;
};
constexpr OutcomeName k_outcome_names[] = {
    {Outcome::allowed_by_rule, "allowed_by_rule"},
    {Outcome::grant, "grant"},
    {Outcome::approved, "approved"},
    {Outcome::break_glass, "break_glass"},
    {Outcome::denied, "denied"},
    {Outcome::timeout, "timeout"},
    {Outcome::filed, "filed"},
    {Outcome::cancelled, "cancelled"},
    {Outcome::invalid_grant, "invalid_grant"},
    {Outcome::error, "error"},
};
} // namespace

const char* to_string(Outcome o) noexcept {
    for (const auto& n : k_outcome_names)
        if (n.outcome == o) return n.name;
    return "error"; // unreachable: every enumerator is in the table (test_common_messages)
}

Outcome outcome_from_string(std::string_view name) {
    for (const auto& n : k_outcome_names)
        if (name == n.name) return n.outcome;
    throw Error(ErrorCode::protocol, "outcome", "'" + text::escape_for_log(name) + "' is not a known outcome");
}

Json to_json(const Decision& d) {
    Json j = Json::object();
    auto& o = j.get_ref<Json::object_t&>();
    put(o, "type", k_decision);
    put(o, "allow", d.allow);
    put(o, "outcome", to_string(d.outcome));
    put(o, "message", d.message);
    put(o, "request_id", d.request_id);
    put(o, "grant_id", d.grant_id);
    put(o, "rule", d.rule);
    return j;
}

Decision decision_from_json(const Json& j) {
    Decision d;
    const auto it = j.find("allow");
    if (it == j.end() || !it->is_boolean()) throw Error(ErrorCode::protocol, "allow", "missing or not a boolean");
    d.allow = it->get<bool>();
    if (const std::string outcome = optional_string(j, "outcome"); !outcome.empty())
        d.outcome = outcome_from_string(outcome);
    d.message = optional_string(j, "message");
    d.request_id = optional_string(j, "request_id");
    d.grant_id = optional_string(j, "grant_id");
    d.rule = optional_string(j, "rule");
    return d;
}

} // namespace jitgate::msg
