// Fuzz target: the plugins' option parser (common/src/plugin_options.cpp), the words of
// sudo.conf's Plugin line or the PAM line, and the KEY=value lookup over sudo's arrays.
// The input is split at NUL bytes into words. Properties: never throws (it runs inside sudo
// and libpam); every word lands in exactly one place (understood, unknown or error); the
// lookup finds the first KEY=value only.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "jitgate/offline.hpp"
#include "jitgate/plugin_options.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using jitgate::fuzz::require;
    std::vector<std::string> words(1);
    for (std::size_t i = 0; i < size; ++i) {
        if (data[i] == 0)
            words.emplace_back();
        else
            words.back() += static_cast<char>(data[i]);
    }
    const auto options = jitgate::parse_plugin_options(words);
    require(options.unknown.size() + options.errors.size() <= words.size(), "more problems than words");

    std::vector<char*> kv;
    for (auto& w : words) kv.push_back(w.data());
    kv.push_back(nullptr);
    const std::string key = words.front().substr(0, words.front().find('='));
    if (const char* v = jitgate::find_value(kv.data(), key.c_str())) {
        const std::string prefix = key + "=";
        bool found = false;
        for (const auto& w : words) {
            if (w.compare(0, prefix.size(), prefix) == 0) {
                require(std::strcmp(v, w.c_str() + prefix.size()) == 0, "find_value did not return the first match", w);
                found = true;
                break;
            }
        }
        require(found, "find_value found a key that is not there", key);
    }
    (void)jitgate::offline_break_glass_reason_ok(words.back());
    return 0;
}
