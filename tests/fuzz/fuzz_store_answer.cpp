// Fuzz target: how the shipper judges the audit store's answer to a batch
// (daemon/shipper.cpp, judge_store_answer and check_acknowledgement), text from a network peer.
// Byte 0 picks the format (even: JSON lines, odd: Splunk HEC) and byte 1 the batch's size
// (1..256 events); bytes 2-3 are the HTTP status (0..65535); the rest is the body.
// Properties: never throws; a batch counts as stored only on a 2xx whose body acknowledges
// exactly this batch (its count and last event_id, or HEC's success answer); a refusal's error
// is one printable line.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "daemon/audit/shipper.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using jitgate::fuzz::require;
    namespace audit = jitgate::audit;
    if (size < 4) return 0;
    const auto format = (data[0] & 1) != 0 ? audit::Format::splunk_hec : audit::Format::jsonl;
    audit::Batch batch;
    batch.lines.assign(static_cast<std::size_t>(data[1]) + 1, "{}");
    batch.last_event_id = "1f6d6e7b-e6bd-4750-b613-fee08b39113f";
    const long status = data[2] << 8 | data[3];
    const std::string body(reinterpret_cast<const char*>(data) + 4, size - 4);
    const auto answer = audit::judge_store_answer(format, batch, status, body, "https://store.example:8443/v1/events");
    if (status < 200 || status >= 300) require(!answer.ok, "a non-2xx answer acknowledged a batch", body);
    if (answer.ok) {
        const auto j = nlohmann::json::parse(body, nullptr, false);
        require(j.is_object(), "a body that is no JSON object acknowledged a batch", body);
        if (format == audit::Format::jsonl)
            require(j.value("stored", std::uint64_t{0}) == batch.lines.size() &&
                        j.value("last_event_id", std::string()) == batch.last_event_id,
                    "an answer for another batch acknowledged this one", body);
        else
            require(j.value("code", -1) == 0, "a HEC answer without code 0 acknowledged a batch", body);
    } else {
        require(!answer.error.empty(), "a refusal without an error", body);
        jitgate::fuzz::require_printable(answer.error, "store answer error");
    }
    return 0;
}
