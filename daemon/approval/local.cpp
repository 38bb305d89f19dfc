// daemon/approval/local.cpp — the `local` approval backend.
#include "daemon/approval/local.hpp"

namespace jitgate::approval {

std::string LocalBackend::how_to_approve(const std::string& id) const {
    return "an approver runs: jitgatectl approve " + id;
}

std::string LocalBackend::waiting_hint(const std::string& id) const {
    return "An approver runs: jitgatectl approve " + id;
}

void LocalBackend::add_status(Json& status) const {
    status["service"] = nullptr;
    status["grants_rejected"] = 0;
}

} // namespace jitgate::approval
