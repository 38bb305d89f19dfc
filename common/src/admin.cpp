// common/src/admin.cpp — the typed approver and admin messages (see jitgate/admin.hpp).
#include "jitgate/admin.hpp"

#include "jitgate/error.hpp"
#include "jitgate/wire.hpp"

namespace jitgate::msg {
namespace {

// A message read as one kind must say it is that kind: a reply read in the wrong place is a
// protocol error, never a silent success.
void require_type(const Json& j, const char* type) {
    if (!j.is_object()) throw Error(ErrorCode::protocol, "type", "the message is not an object");
    if (type_of(j) != type) throw Error(ErrorCode::protocol, "type", std::string("must be \"") + type + "\"");
}

} // namespace

std::string type_of(const Json& j) {
    if (!j.is_object()) throw Error(ErrorCode::protocol, "type", "the message is not an object");
    return wire::require_string(j, "type");
}

Json to_json(const PendingRequest&) {
    return Json{{"type", k_pending}};
}
PendingRequest pending_from_json(const Json& j) {
    require_type(j, k_pending);
    return {};
}

Json to_json(const GrantsRequest&) {
    return Json{{"type", k_grants}};
}
GrantsRequest grants_from_json(const Json& j) {
    require_type(j, k_grants);
    return {};
}

Json to_json(const ApproveRequest& r) {
    return Json{{"type", k_approve}, {"id", r.id}};
}
ApproveRequest approve_from_json(const Json& j) {
    require_type(j, k_approve);
    ApproveRequest r{wire::require_string(j, "id")};
    // An approve carries no reason; one that is there anyway must still be a string, as for
    // deny and revoke (a mistyped field is a protocol error, never silently ignored).
    wire::optional_string(j, "reason");
    return r;
}

Json to_json(const DenyRequest& r) {
    return Json{{"type", k_deny}, {"id", r.id}, {"reason", r.reason}};
}
DenyRequest deny_from_json(const Json& j) {
    require_type(j, k_deny);
    DenyRequest r;
    r.id = wire::require_string(j, "id");
    r.reason = wire::optional_string(j, "reason");
    return r;
}

Json to_json(const RevokeRequest& r) {
    return Json{{"type", k_revoke}, {"id", r.id}, {"reason", r.reason}};
}
RevokeRequest revoke_from_json(const Json& j) {
    require_type(j, k_revoke);
    RevokeRequest r;
    r.id = wire::require_string(j, "id");
    r.reason = wire::optional_string(j, "reason");
    return r;
}

Json to_json(const SessionsRequest&) {
    return Json{{"type", k_sessions}};
}
SessionsRequest sessions_from_json(const Json& j) {
    require_type(j, k_sessions);
    return {};
}

Json to_json(const DoneRequest& r) {
    return Json{{"type", k_done}, {"id", r.id}};
}
DoneRequest done_from_json(const Json& j) {
    require_type(j, k_done);
    return DoneRequest{wire::optional_string(j, "id")};
}

Json to_json(const RequestsRequest&) {
    return Json{{"type", k_requests}};
}
RequestsRequest requests_from_json(const Json& j) {
    require_type(j, k_requests);
    return {};
}

Json to_json(const ExtendRequest& r) {
    return Json{{"type", k_extend}, {"id", r.id}, {"reason", r.reason}};
}
ExtendRequest extend_from_json(const Json& j) {
    require_type(j, k_extend);
    ExtendRequest r;
    r.id = wire::require_string(j, "id");
    r.reason = wire::optional_string(j, "reason");
    return r;
}

Json to_json(const StatusRequest&) {
    return Json{{"type", k_status}};
}
StatusRequest status_from_json(const Json& j) {
    require_type(j, k_status);
    return {};
}

Json to_json(const PingRequest&) {
    return Json{{"type", k_ping}};
}
PingRequest ping_from_json(const Json& j) {
    require_type(j, k_ping);
    return {};
}

Json to_json(const ItemReply& r) {
    return Json{{"type", k_item}, {"item", r.item}};
}
ItemReply item_from_json(const Json& j) {
    require_type(j, k_item);
    const auto it = j.find("item");
    if (it == j.end()) throw Error(ErrorCode::protocol, "item", "missing");
    if (!it->is_object()) throw Error(ErrorCode::protocol, "item", "must be an object");
    return {*it};
}

Json to_json(const EndReply& r) {
    return Json{{"type", k_end}, {"count", r.count}};
}
EndReply end_from_json(const Json& j) {
    require_type(j, k_end);
    return {wire::require_int(j, "count")};
}

Json to_json(const OkReply& r) {
    Json j{{"type", k_ok}};
    if (r.message) j["message"] = *r.message;
    if (r.status) j["status"] = *r.status;
    return j;
}
OkReply ok_from_json(const Json& j) {
    require_type(j, k_ok);
    OkReply r;
    if (const auto it = j.find("message"); it != j.end() && !it->is_null())
        r.message = wire::require_string(j, "message");
    if (const auto it = j.find("status"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) throw Error(ErrorCode::protocol, "status", "must be an object");
        r.status = *it;
    }
    return r;
}

Json to_json(const ErrorReply& r) {
    return Json{{"type", k_error}, {"code", r.code}, {"message", r.message}};
}
ErrorReply error_from_json(const Json& j) {
    require_type(j, k_error);
    ErrorReply r;
    r.code = wire::require_string(j, "code");
    r.message = wire::require_string(j, "message");
    return r;
}

} // namespace jitgate::msg
