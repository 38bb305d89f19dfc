// common/src/plugin_options.cpp — parsing of the plugins' option words (see jitgate/plugin_options.hpp).
#include "jitgate/plugin_options.hpp"

#include <charconv>
#include <cstring>

namespace jitgate {

PluginOptions parse_plugin_options(const std::vector<std::string>& words) {
    PluginOptions o;
    for (const auto& w : words) {
        const auto eq = w.find('=');
        const std::string key = w.substr(0, eq);
        const std::string value = eq == std::string::npos ? std::string() : w.substr(eq + 1);
        if (key == "socket") {
            if (value.empty() || value.front() != '/')
                o.errors.push_back("socket must be an absolute path, got '" + value + "'");
            else
                o.client.socket_path = value;
        } else if (key == "daemon_user") {
            o.client.daemon_user = value;
        } else if (key == "break_glass_group") {
            o.break_glass_group = value;
        } else if (key == "connect_timeout") {
            int ms = 0;
            const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
            if (ec != std::errc{} || p != value.data() + value.size() || ms < 10 || ms > 600000)
                o.errors.push_back("connect_timeout must be milliseconds between 10 and 600000, got '" + value + "'");
            else
                o.client.connect_timeout_ms = ms;
        } else {
            o.unknown.push_back(w);
        }
    }
    return o;
}

std::vector<std::string> to_vector(char* const* words) {
    std::vector<std::string> out;
    for (; words != nullptr && *words != nullptr; ++words) out.emplace_back(*words);
    return out;
}

const char* find_value(char* const* kv, const char* key) noexcept {
    const std::size_t n = std::strlen(key);
    for (; kv != nullptr && *kv != nullptr; ++kv)
        if (std::strncmp(*kv, key, n) == 0 && (*kv)[n] == '=') return *kv + n + 1;
    return nullptr;
}

} // namespace jitgate
