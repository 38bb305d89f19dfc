// tests/fuzz/fuzz_util.hpp — what the fuzz targets share: a failed property aborts (libFuzzer
// then saves the input), and an independent check of "printable text" that does not reuse the
// code under test (common/src/text.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace jitgate::fuzz {

// Aborts with `what` and the offending text (escaped as hex) when `ok` is false.
inline void require(bool ok, const char* what, std::string_view text = {}) {
    if (ok) return;
    std::fprintf(stderr, "property violated: %s\n  text (%zu bytes):", what, text.size());
    for (unsigned char c : text.substr(0, 256)) std::fprintf(stderr, " %02x", c);
    std::fprintf(stderr, "\n");
    std::abort();
}

// The reason `s` is not printable, or nullptr when it is: every byte belongs to well-formed
// UTF-8 (shortest form, no surrogate, at most U+10FFFF), and no code point is a C0 or C1
// control, DEL, or a bidi control (U+061C, U+200E, U+200F, U+202A..U+202E, U+2066..U+2069).
inline const char* not_printable(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t len = 1;
        std::uint32_t cp = c;
        if (c >= 0x80) {
            if ((c & 0xE0) == 0xC0)
                len = 2, cp = c & 0x1F;
            else if ((c & 0xF0) == 0xE0)
                len = 3, cp = c & 0x0F;
            else if ((c & 0xF8) == 0xF0)
                len = 4, cp = c & 0x07;
            else
                return "invalid UTF-8 lead byte";
            if (i + len > s.size()) return "truncated UTF-8 sequence";
            for (std::size_t k = 1; k < len; ++k) {
                const auto cc = static_cast<unsigned char>(s[i + k]);
                if ((cc & 0xC0) != 0x80) return "invalid UTF-8 continuation byte";
                cp = (cp << 6) | (cc & 0x3F);
            }
            static constexpr std::uint32_t k_min[] = {0, 0, 0x80, 0x800, 0x10000};
            if (cp < k_min[len]) return "overlong UTF-8";
            if (cp >= 0xD800 && cp <= 0xDFFF) return "UTF-8 surrogate";
            if (cp > 0x10FFFF) return "code point above U+10FFFF";
        }
        if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F)) return "control character";
        if (cp == 0x061C || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
            (cp >= 0x2066 && cp <= 0x2069))
            return "bidi control";
        i += len;
    }
    return nullptr;
}

inline void require_printable(std::string_view s, const char* where) {
    if (const char* why = not_printable(s)) {
        std::fprintf(stderr, "%s: ", where);
        require(false, why, s);
    }
}

} // namespace jitgate::fuzz
