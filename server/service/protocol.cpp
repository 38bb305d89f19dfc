// server/service/protocol.cpp — see protocol.hpp. Section numbers are docs/protocol.md's.
#include "server/service/protocol.hpp"

#include "lib/strict_json.hpp"

#include <jitgate/text.hpp>

#include <algorithm>
#include <charconv>
#include <ctime>

namespace jitgate::server::protocol {
namespace {

using Json = nlohmann::json;

// Thrown inside check_filed only; its text becomes the 400 message.
struct Invalid {
    std::string message;
};

[[noreturn]] void invalid(std::string message) {
    throw Invalid{std::move(message)};
}

const Json& member(const Json& object, const char* name, const std::string& where) {
    const auto it = object.find(name);
    if (it == object.end()) invalid("member \"" + where + name + "\" is missing");
    return *it;
}

bool has_control(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// A string member; `max` bytes at most; never a NUL (the database and logs are C strings).
std::string string_member(const Json& object, const char* name, const std::string& where, std::size_t max,
                          bool allow_empty = true) {
    const Json& value = member(object, name, where);
    if (!value.is_string()) invalid("member \"" + where + name + "\" must be a string");
    std::string s = value.get<std::string>();
    if (s.size() > max) invalid("member \"" + where + name + "\" is longer than " + std::to_string(max) + " bytes");
    if (s.find('\0') != std::string::npos) invalid("member \"" + where + name + "\" holds a NUL character");
    if (!allow_empty && s.empty()) invalid("member \"" + where + name + "\" is empty");
    return s;
}

// A name shown to people and compared byte for byte (user, host, group, tag): printable, no
// control characters, valid UTF-8.
std::string name_member(const Json& object, const char* name, const std::string& where, bool allow_empty = false) {
    std::string s = string_member(object, name, where, 256, allow_empty);
    if (has_control(s) || !text::is_valid_utf8(s))
        invalid("member \"" + where + name + "\" holds control characters or invalid UTF-8");
    return s;
}

std::int64_t integer_member(const Json& object, const char* name, const std::string& where, std::int64_t min,
                            std::int64_t max) {
    const Json& value = member(object, name, where);
    if (!value.is_number_integer()) invalid("member \"" + where + name + "\" must be an integer");
    // is_number_integer covers both signed and unsigned storage.
    if (value.is_number_unsigned() && value.get<std::uint64_t>() > static_cast<std::uint64_t>(max))
        invalid("member \"" + where + name + "\" is out of range");
    const std::int64_t n = value.get<std::int64_t>();
    if (n < min || n > max)
        invalid("member \"" + where + name + "\" must be between " + std::to_string(min) + " and " +
                std::to_string(max));
    return n;
}

std::vector<std::string> name_list(const Json& object, const char* name, const std::string& where) {
    const Json& value = member(object, name, where);
    if (!value.is_array()) invalid("member \"" + where + name + "\" must be an array");
    if (value.size() > 64) invalid("member \"" + where + name + "\" has more than 64 entries");
    std::vector<std::string> out;
    for (const Json& element : value) {
        if (!element.is_string()) invalid("member \"" + where + name + "\" must hold strings only");
        const std::string s = element.get<std::string>();
        if (s.empty() || s.size() > 256 || has_control(s) || !text::is_valid_utf8(s))
            invalid("member \"" + where + name + "\" holds an empty, overlong or unprintable name");
        out.push_back(s);
    }
    return out;
}

// Standard base64 with padding that decodes and encodes back to the same text.
bool is_canonical_base64(const std::string& encoded) {
    try {
        return text::base64_encode(text::base64_decode(encoded)) == encoded;
    } catch (const std::exception&) {
        return false;
    }
}

// argv and env elements: a string, or {"b64": "..."} for bytes that are not UTF-8 (§4).
void check_wire_args(const Json& object, const char* name, const std::string& where) {
    const Json& value = member(object, name, where);
    if (!value.is_array()) invalid("member \"" + where + name + "\" must be an array");
    for (const Json& element : value) {
        if (element.is_string()) continue;
        if (element.is_object() && element.size() == 1 && element.contains("b64") && element["b64"].is_string()) {
            if (!is_canonical_base64(element["b64"].get<std::string>()))
                invalid("member \"" + where + name + "\" holds invalid base64");
            continue;
        }
        invalid("member \"" + where + name + "\" must hold strings or {\"b64\": ...} objects");
    }
}

bool is_lower_hex(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool is_nonce(std::string_view s) {
    if (s.size() != 43) return false;
    const bool alphabet = std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    });
    if (!alphabet) return false;
    try {
        return text::base64url_encode(text::base64url_decode(s)) == s;
    } catch (const std::exception&) {
        return false;
    }
}

Filed check(const Json& body) {
    Filed f;
    if (integer_member(body, "protocol", "", 0, 1'000'000) != 1) invalid("member \"protocol\" must be 1");
    f.id = string_member(body, "id", "", 64);
    if (!is_request_id(f.id)) invalid("member \"id\" is not of the form R-[0-9A-Z]{4,32}");
    f.nonce = string_member(body, "nonce", "", 64);
    if (!is_nonce(f.nonce)) invalid("member \"nonce\" is not 32 bytes in base64url without padding");
    f.host = name_member(body, "host", "");
    if (!is_host_name(f.host))
        invalid("member \"host\" is not a host name: 1 to 253 of the characters A-Z a-z 0-9 . _ -, not \".\" and "
                "without \"..\"");
    f.environment = name_member(body, "host_environment", "", /*allow_empty=*/true);
    f.tags = name_list(body, "host_tags", "");

    const Json& requester = member(body, "requester", "");
    if (!requester.is_object()) invalid("member \"requester\" must be an object");
    f.requester = name_member(requester, "user", "requester.");
    integer_member(requester, "uid", "requester.", 0, 4294967294LL);
    if (requester.contains("login_uid") && !requester["login_uid"].is_null()) {
        integer_member(requester, "login_uid", "requester.", 0, 4294967294LL);
        f.has_login_uid = true;
    }
    if (requester.contains("login_user") && !requester["login_user"].is_null())
        f.requester_login = name_member(requester, "login_user", "requester.", /*allow_empty=*/true);

    const Json& account = member(body, "account", "");
    if (!account.is_object()) invalid("member \"account\" must be an object");
    f.account = name_member(account, "user", "account.");
    integer_member(account, "uid", "account.", 0, 4294967294LL);

    f.kind = string_member(body, "kind", "", 16);
    f.scope = string_member(body, "scope", "", 16);
    const bool pair_ok = (f.kind == "sudo" && (f.scope == "command" || f.scope == "session")) ||
                         (f.kind == "login" && f.scope == "login");
    if (!pair_ok)
        invalid("kind \"" + text::shown(f.kind, 16) + "\" with scope \"" + text::shown(f.scope, 16) +
                "\" is not one of sudo+command, sudo+session, login+login");

    const Json& action = member(body, "action", "");
    if (!action.is_object()) invalid("member \"action\" must be an object");
    for (const char* name :
         {"command", "display", "runas", "runas_group", "cwd", "chroot", "program", "tty", "service", "remote_host"})
        string_member(action, name, "action.", 8192);
    check_wire_args(action, "argv", "action.");
    check_wire_args(action, "env", "action.");
    name_list(action, "env_code_loading", "action.");
    f.cmd_sha256 = string_member(action, "cmd_sha256", "action.", 64);
    if (f.scope == "command") {
        if (f.cmd_sha256.size() != 64 || !is_lower_hex(f.cmd_sha256))
            invalid("member \"action.cmd_sha256\" must be 64 lowercase hex digits for scope command");
    } else if (!f.cmd_sha256.empty()) {
        invalid("member \"action.cmd_sha256\" must be empty for scope " + f.scope);
    }

    string_member(body, "reason", "", 4096);
    f.ticket = string_member(body, "ticket", "", 256);
    f.rule = name_member(body, "rule", "", /*allow_empty=*/true);
    f.approvals_needed = static_cast<int>(integer_member(body, "approvals_needed", "", 1, 5));
    f.approver_groups = name_list(body, "approver_groups", "");
    f.ttl_s = integer_member(body, "ttl_s", "", 1, 7 * 24 * 3600);
    f.timeout_s = integer_member(body, "timeout_s", "", 1, 7 * 24 * 3600);
    // Optional (an older host sends none); names the server does not know are kept but mean nothing.
    if (body.contains("auto_approve") && !body["auto_approve"].is_null())
        f.auto_approve = name_list(body, "auto_approve", "");
    return f;
}

} // namespace

bool is_host_name(std::string_view host) noexcept {
    // "." and any ".." (an empty DNS label) are refused: the request's page URL would hold a
    // dot segment, which browsers rewrite and the HTTP layer refuses (400), so such a request
    // could be filed but never opened or decided.
    if (host == "." || host.find("..") != std::string_view::npos) return false;
    return !host.empty() && host.size() <= 253 && std::all_of(host.begin(), host.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
               c == '_';
    });
}

bool is_request_id(std::string_view id) noexcept {
    if (id.size() < 6 || id.size() > 34 || id.substr(0, 2) != "R-") return false;
    return std::all_of(id.begin() + 2, id.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'); });
}

FileCheck check_filed(std::string_view body) {
    FileCheck out;
    strict_json::Parsed parsed = strict_json::parse_object(body);
    if (!parsed.error.empty()) {
        out.error = "the body " + parsed.error;
        return out;
    }
    try {
        Filed filed = check(parsed.value);
        filed.canonical = parsed.value.dump();
        filed.body = std::move(parsed.value);
        out.filed = std::move(filed);
    } catch (const Invalid& e) {
        out.error = e.message;
    } catch (const std::exception& e) {
        out.error = std::string("the body does not have the form of protocol v1: ") + e.what();
    }
    return out;
}

std::optional<int> parse_wait(const std::optional<std::string>& value) noexcept {
    if (!value) return 0;
    const std::string& s = *value;
    if (s.empty() || s.size() > 20) return std::nullopt;
    long long n = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
    return static_cast<int>(std::clamp<long long>(n, 0, 60));
}

std::optional<std::string> check_cancel(std::string_view body) {
    const strict_json::Parsed parsed = strict_json::parse_object(body);
    if (!parsed.error.empty()) return std::nullopt;
    const auto protocol = parsed.value.find("protocol");
    const auto reason = parsed.value.find("reason");
    if (protocol == parsed.value.end() || !protocol->is_number_integer() || protocol->get<std::int64_t>() != 1)
        return std::nullopt;
    if (reason == parsed.value.end() || !reason->is_string()) return std::nullopt;
    const std::string r = reason->get<std::string>();
    if (r == "client_gone" || r == "timeout" || r == "shutdown") return r;
    return "client_gone (sent: " + text::shown(r, 64) + ")";
}

std::string cut_reason(const std::string& reason) {
    if (reason.size() <= k_max_revoked_reason) return reason;
    std::size_t n = k_max_revoked_reason;
    // Back to the start of a UTF-8 sequence: never half a character.
    while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;
    return reason.substr(0, n);
}

std::optional<std::string> revoke_reason_problem(const std::string& reason, std::size_t max_bytes) {
    if (reason.size() > max_bytes) return "a reason may hold at most " + std::to_string(max_bytes) + " bytes";
    if (!text::is_valid_utf8(reason)) return std::string("a reason must be text (UTF-8)");
    for (std::size_t i = 0; i < reason.size(); ++i) {
        const auto c = static_cast<unsigned char>(reason[i]);
        const bool c1 = c == 0xC2 && i + 1 < reason.size() && static_cast<unsigned char>(reason[i + 1]) >= 0x80 &&
                        static_cast<unsigned char>(reason[i + 1]) <= 0x9F;
        if (c < 0x20 || c == 0x7F || c1)
            return std::string("a reason must be one line of plain text: no control characters (newline, tab, "
                               "escape, ...)");
    }
    return std::nullopt;
}

std::string revocations_json(const std::vector<store::Revocation>& rows, std::int64_t last, std::size_t page_limit,
                             std::size_t max_bytes) {
    // Each entry is measured as it will be sent; the envelope's own bytes are allowed for.
    constexpr std::size_t k_envelope = 96;
    std::string entries;
    std::size_t taken = 0;
    for (const store::Revocation& r : rows) {
        const std::string one = Json{
            {"seq", r.seq},
            {"host", r.host},
            {"request_id", r.request_id},
            {"grant_id", r.grant_id},
            {"revoked_by", r.revoked_by},
            {"reason", cut_reason(r.reason)},
            {"revoked_at",
             rfc3339(r.revoked_at)}}.dump(-1, ' ', false, Json::error_handler_t::replace);
        if (taken > 0 && entries.size() + 1 + one.size() + k_envelope > max_bytes) break;
        if (taken > 0) entries += ',';
        entries += one;
        ++taken;
    }
    const bool cut = taken < rows.size() || (page_limit > 0 && rows.size() >= page_limit);
    const std::int64_t cursor = cut && taken > 0 ? rows[taken - 1].seq : last;
    return R"({"protocol":1,"cursor":)" + std::to_string(cursor) + R"(,"revocations":[)" + entries + "]}";
}

std::string status_json(const store::Request& request, const std::string& approve_url,
                        const store::Revocation* revoked) {
    Json j = {{"protocol", 1}, {"id", request.id}, {"status", std::string(store::to_string(request.status))}};
    if (revoked != nullptr && request.status == store::Status::approved) {
        // SECURITY NOTE: a revoked grant is never handed out again, even to a host that has not
        // fetched it yet (it was offline, or its poll was in flight when the grant was revoked).
        // Within v1 (§10): no new status value, "cancelled" (every host denies on it) with
        // optional members that a newer host reads and an older one ignores.
        j["status"] = "cancelled";
        j["revoked"] = true;
        j["revoked_by"] = revoked->revoked_by;
        const std::string why = cut_reason(revoked->reason);
        j["reason"] = "revoked at the service by " + revoked->revoked_by + (why.empty() ? "" : ": " + why);
        return j.dump(-1, ' ', false, Json::error_handler_t::replace);
    }
    switch (request.status) {
    case store::Status::pending: {
        j["approve_url"] = approve_url;
        j["approvers_notified"] = request.approver_groups;
        const int got = static_cast<int>(request.approvals.size());
        std::string message = "Waiting for " + text::plural(static_cast<std::uint64_t>(request.approvals_needed),
                                                            "approval", "approvals");
        if (got > 0) message += " (" + std::to_string(got) + " so far)";
        j["message"] = message;
        j["expires_at"] = rfc3339(request.expires_at);
        break;
    }
    case store::Status::approved: {
        j["grant"] = request.grant;
        Json names = Json::array();
        for (const store::Approval& a : request.approvals) names.push_back(a.approver);
        j["approvers"] = names;
        break;
    }
    case store::Status::denied:
        j["reason"] = request.decision_reason;
        j["denied_by"] = request.decided_by;
        break;
    case store::Status::expired:
    case store::Status::cancelled:
        break;
    }
    return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string error_json(std::string_view code, std::string_view message) {
    const Json j = {{"error", {{"code", std::string(code)}, {"message", std::string(message)}}}};
    return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string rfc3339(std::int64_t unix_seconds) {
    const std::time_t t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

} // namespace jitgate::server::protocol
