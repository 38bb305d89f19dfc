// Fuzz target: how the shipper judges the audit store's answer to a batch
// (daemon/shipper.cpp, judge_store_answer), text from a network peer.
// The first two bytes are the HTTP status (0..65535), the rest is the body.
// Properties: never throws; a batch counts as acknowledged only on a 2xx; a refusal's error is
// one printable line.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.hpp"
#include "shipper.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using jitgate::fuzz::require;
    if (size < 2) return 0;
    const long status = data[0] << 8 | data[1];
    const std::string body(reinterpret_cast<const char*>(data) + 2, size - 2);
    const auto answer = jitgate::audit::judge_store_answer(status, body, "https://store.example:8443/v1/events");
    if (status < 200 || status >= 300) require(!answer.ok, "a non-2xx answer acknowledged a batch", body);
    if (!answer.ok) {
        require(!answer.error.empty(), "a refusal without an error", body);
        jitgate::fuzz::require_printable(answer.error, "store answer error");
    }
    return 0;
}
