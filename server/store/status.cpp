// server/store/status.cpp — the request status names, as the protocol (§5.1) and the database spell them.
#include "server/store/store.hpp"

namespace jitgate::server::store {

std::string_view to_string(Status status) noexcept {
    switch (status) {
    case Status::pending: return "pending";
    case Status::approved: return "approved";
    case Status::denied: return "denied";
    case Status::expired: return "expired";
    case Status::cancelled: return "cancelled";
    }
    return "pending";
}

std::optional<Status> status_from_string(std::string_view text) noexcept {
    for (const Status status : {Status::pending, Status::approved, Status::denied, Status::expired, Status::cancelled})
        if (to_string(status) == text) return status;
    return std::nullopt;
}

} // namespace jitgate::server::store
