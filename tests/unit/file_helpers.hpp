// tests/unit/file_helpers.hpp — whole-file reads and writes for the unit tests of the spool.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace jitgate::test {

inline std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline void write_all(const std::string& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
}

// The complete lines of `content` (a last line without '\n' is left out, as a torn tail is).
inline std::vector<std::string> split_lines(const std::string& content) {
    std::vector<std::string> lines;
    std::size_t start = 0;
    for (std::size_t nl; (nl = content.find('\n', start)) != std::string::npos; start = nl + 1)
        lines.push_back(content.substr(start, nl - start));
    return lines;
}

} // namespace jitgate::test
