// Fuzz target: the config loader (daemon/config.cpp), YAML text to a validated Config.
// Properties: parse_config() never throws and never crashes; a Config comes back exactly when
// there is no problem, and then validate() agrees; every problem line is printable (config
// text is echoed into messages that reach a terminal and the journal).
#include <cstddef>
#include <cstdint>
#include <string>

#include "daemon/config/config.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using jitgate::fuzz::require;
    const std::string text(reinterpret_cast<const char*>(data), size);
    const auto result = jitgate::config::parse_config(text, "fuzz.yaml");
    require(result.config.has_value() == result.problems.empty(), "a config and problems, or neither", text);
    for (const auto& p : result.problems) jitgate::fuzz::require_printable(p.to_string(), "config problem");
    if (result.config) {
        require(jitgate::config::validate(*result.config).empty(), "validate() refuses a loaded config", text);
        for (const auto& rule : result.config->rules) {
            require(!rule.name.empty(), "a loaded rule has no name", text);
            require(rule.ticket_pattern.empty() == !rule.ticket_regex.has_value(), "ticket pattern not compiled", text);
        }
    }
    return 0;
}
