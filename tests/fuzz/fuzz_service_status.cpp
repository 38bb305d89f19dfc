// Fuzz target: the approval service's request status body (daemon/approval_service.cpp,
// parse_status), text from a network peer.
// Properties: never throws; an approved outcome carries a non-empty grant; a failed outcome
// carries a reason, and that reason (our own words around escaped peer text) is printable.
#include <cstddef>
#include <cstdint>
#include <string>

#include "daemon/approval/service_client.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using jitgate::fuzz::require;
    using Kind = jitgate::service::Outcome::Kind;
    const std::string body(reinterpret_cast<const char*>(data), size);
    const auto o = jitgate::service::parse_status(body, "R-FUZZ0001");
    if (o.kind == Kind::approved) require(!o.grant.empty(), "approved without a grant", body);
    if (o.kind == Kind::failed) {
        require(!o.reason.empty(), "failed without a reason", body);
        jitgate::fuzz::require_printable(o.reason, "parse_status failure reason");
    }
    require(o.approvers_notified.size() <= 32, "approvers_notified is not capped", body);
    return 0;
}
