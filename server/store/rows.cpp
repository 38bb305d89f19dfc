// server/store/rows.cpp — JSON lists and request checks shared by the SQLite and PostgreSQL stores.
#include "server/store/rows.hpp"

#include <jitgate/error.hpp>

#include <nlohmann/json.hpp>

namespace jitgate::server::store {

std::string list_to_json(const std::vector<std::string>& list) {
    try {
        return nlohmann::json(list).dump();
    } catch (const nlohmann::json::exception&) {
        throw Error(ErrorCode::bad_input, "store", "a group name is not valid UTF-8");
    }
}

std::vector<std::string> list_from_json(const std::string& text) {
    const nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
    if (!value.is_array()) throw Error(ErrorCode::io, "store", "a stored group list is not a JSON array");
    std::vector<std::string> out;
    for (const auto& item : value) {
        if (!item.is_string()) throw Error(ErrorCode::io, "store", "a stored group list holds a non-string");
        out.push_back(item.get<std::string>());
    }
    return out;
}

Status status_from_column(const std::string& text) {
    const auto status = status_from_string(text);
    // Fail closed: an unknown status is never read as pending (approvable) or approved.
    if (!status) throw Error(ErrorCode::io, "store", "a stored request has an unknown status");
    return *status;
}

void check_new_request(const Request& request) {
    if (request.host.empty() || request.id.empty())
        throw Error(ErrorCode::bad_input, "store", "a request needs a host and an id");
    if (request.status != Status::pending || request.decided_at != 0 || !request.grant.empty() ||
        !request.grant_id.empty() || !request.approvals.empty())
        throw Error(ErrorCode::bad_input, "store", "a new request must be pending, undecided and without approvals");
    if (request.approvals_needed < 1)
        throw Error(ErrorCode::bad_input, "store", "a request needs at least one approval");
}

void check_final_status(Status to) {
    if (to != Status::denied && to != Status::expired && to != Status::cancelled)
        throw Error(ErrorCode::bad_input, "store", "finish() moves a request to denied, expired or cancelled only");
}

} // namespace jitgate::server::store
