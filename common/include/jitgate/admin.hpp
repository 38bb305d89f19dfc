// common/include/jitgate/admin.hpp — the typed approver and admin messages (jitgatectl ⇄ jitgated).
//
// What jitgatectl sends (pending, grants, approve, deny, revoke, status, ping) and what the
// daemon answers (item, end, ok, error), as docs/wire-protocol.md specifies them. Both sides
// build and read these frames only through this header, so the message names and fields are
// written once. to_json() never throws for a well-formed struct; every *_from_json() throws
// Error(protocol) naming the field that is missing or of the wrong type (including a "type"
// that is not this message's), and never accepts a message it does not fully understand.
// Pure functions: thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "jitgate/messages.hpp"

namespace jitgate::msg {

// Message type names ("type" field) of the admin operations and their replies.
inline constexpr const char* k_pending = "pending";
inline constexpr const char* k_grants = "grants";
inline constexpr const char* k_approve = "approve";
inline constexpr const char* k_deny = "deny";
inline constexpr const char* k_revoke = "revoke";
inline constexpr const char* k_status = "status";
inline constexpr const char* k_ping = "ping";
inline constexpr const char* k_sessions = "sessions";
inline constexpr const char* k_done = "done";
inline constexpr const char* k_requests = "requests";
inline constexpr const char* k_extend = "extend";
inline constexpr const char* k_item = "item";
inline constexpr const char* k_end = "end";
inline constexpr const char* k_ok = "ok";

// {"type":"pending"}: the requests waiting for approval.
struct PendingRequest {};
Json to_json(const PendingRequest& r);
PendingRequest pending_from_json(const Json& j);

// {"type":"grants"}: the live grants.
struct GrantsRequest {};
Json to_json(const GrantsRequest& r);
GrantsRequest grants_from_json(const Json& j);

// {"type":"approve","id":ID}: the caller approves request ID.
struct ApproveRequest {
    std::string id; // e.g. "R-E8A4M1"; case does not matter
};
Json to_json(const ApproveRequest& r);
ApproveRequest approve_from_json(const Json& j);

// {"type":"deny","id":ID,"reason":TEXT}: the caller denies request ID.
struct DenyRequest {
    std::string id;
    std::string reason; // shown to the requester; absent or null on the wire reads as ""
};
Json to_json(const DenyRequest& r);
DenyRequest deny_from_json(const Json& j);

// {"type":"revoke","id":ID,"reason":TEXT}: the caller ends grant ID now.
struct RevokeRequest {
    std::string id;     // e.g. "G-6PRGNJ"
    std::string reason; // recorded in the audit event; absent or null reads as ""
};
Json to_json(const RevokeRequest& r);
RevokeRequest revoke_from_json(const Json& j);

// {"type":"sessions"}: the live privileged sessions under grants (docs/sessions.md).
struct SessionsRequest {};
Json to_json(const SessionsRequest& r);
SessionsRequest sessions_from_json(const Json& j);

// {"type":"done","id":ID}: the requester ends grant ID early; "" (absent on the wire reads as
// "") ends every live grant of theirs.
struct DoneRequest {
    std::string id;
};
Json to_json(const DoneRequest& r);
DoneRequest done_from_json(const Json& j);

// {"type":"requests"}: the caller's own requests, waiting and recently decided.
struct RequestsRequest {};
Json to_json(const RequestsRequest& r);
RequestsRequest requests_from_json(const Json& j);

// {"type":"extend","id":ID,"reason":TEXT}: the requester asks for a new grant for the same
// action as grant ID, to be approved like any request.
struct ExtendRequest {
    std::string id;
    std::string reason; // absent or null reads as ""
};
Json to_json(const ExtendRequest& r);
ExtendRequest extend_from_json(const Json& j);

// {"type":"status"}: the daemon's counters.
struct StatusRequest {};
Json to_json(const StatusRequest& r);
StatusRequest status_from_json(const Json& j);

// {"type":"ping"}: is the daemon there.
struct PingRequest {};
Json to_json(const PingRequest& r);
PingRequest ping_from_json(const Json& j);

// {"type":"item","item":{...}}: one entry of a pending or grants listing. The entry is the
// daemon's view (docs/wire-protocol.md, "item and end"), kept as an object: jitgatectl --json
// prints it as it came.
struct ItemReply {
    Json item = Json::object();
};
Json to_json(const ItemReply& r);
// Throws Error(protocol) unless "item" is an object.
ItemReply item_from_json(const Json& j);

// {"type":"end","count":N}: the last frame of a listing.
struct EndReply {
    std::int64_t count = 0;
};
Json to_json(const EndReply& r);
EndReply end_from_json(const Json& j);

// {"type":"ok"}, {"type":"ok","message":TEXT} or {"type":"ok","status":{...}}: success.
// `message` (already escaped by the daemon) and `status` are absent unless set.
struct OkReply {
    std::optional<std::string> message;
    std::optional<Json> status; // the reply to `status`: an object
};
Json to_json(const OkReply& r);
OkReply ok_from_json(const Json& j);

// {"type":"error","code":CODE,"message":TEXT}: the request failed. `code` is a wire name
// (to_string(ErrorCode), or "unavailable"); `message` is already escaped by the daemon.
struct ErrorReply {
    std::string code;
    std::string message;
};
Json to_json(const ErrorReply& r);
ErrorReply error_from_json(const Json& j);

// The "type" of a message. Throws Error(protocol) if it is missing or not a string.
std::string type_of(const Json& j);

} // namespace jitgate::msg
