// common/src/offline.cpp — the offline break-glass decision (see jitgate/offline.hpp).
#include "jitgate/offline.hpp"

#include "jitgate/passwd.hpp"

namespace jitgate {

bool offline_break_glass_reason_ok(const std::string& reason) noexcept {
    const auto b = reason.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return false;
    const auto e = reason.find_last_not_of(" \t\r\n");
    return e - b + 1 >= k_offline_break_glass_min_reason;
}

bool is_offline(ErrorCode code) noexcept {
    return code == ErrorCode::daemon_unreachable || code == ErrorCode::untrusted_daemon || code == ErrorCode::timeout;
}

bool offline_break_glass_allowed(const Status& why, const std::string& user, const std::string& reason,
                                 const std::string& break_glass_group) {
    // Cheap checks first: the group lookup may go to the network (NSS: LDAP, SSSD).
    return is_offline(why.code) && offline_break_glass_reason_ok(reason) && user_in_group(user, break_glass_group);
}

} // namespace jitgate
