// daemon/config/load.cpp — loading a config file with its security check.
#include "daemon/config/load.hpp"

namespace jitgate::config {

LoadResult load_checked(const std::string& path) {
    auto result = load_config(path);
    if (auto p = check_file_security(path)) result.problems.push_back(*p);
    // SECURITY NOTE: an unsafe file is refused as a whole, even if its content is valid.
    if (!result.problems.empty()) result.config.reset();
    return result;
}

std::optional<Config> load_and_report(const std::string& path, std::FILE* out) {
    auto result = load_checked(path);
    for (const auto& p : result.problems) std::fprintf(out, "%s\n", p.to_string().c_str());
    if (!result.problems.empty() || !result.config) return std::nullopt;
    return std::move(result.config);
}

} // namespace jitgate::config
