# INTERFACE targets that carry compiler flags; link them, never copy the flags.
add_library(jitgate_warnings INTERFACE)
target_compile_options(jitgate_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
  -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Wformat=2 -Wimplicit-fallthrough
  $<$<BOOL:${JITGATE_WERROR}>:-Werror>)

# Hardening for everything we ship.
add_library(jitgate_hardening INTERFACE)
target_compile_options(jitgate_hardening INTERFACE
  -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fno-strict-overflow)
target_link_options(jitgate_hardening INTERFACE -Wl,-z,relro -Wl,-z,now)

add_library(jitgate_sanitizers INTERFACE)
if(JITGATE_SANITIZE)
  # -fno-sanitize-recover: a UBSan finding aborts like an ASan one, so no test can pass over it.
  # GCC 12 reports false -Wmaybe-uninitialized inside libstdc++'s std::regex once ASan
  # instruments it; the uninstrumented build keeps the warning.
  target_compile_options(jitgate_sanitizers INTERFACE -fsanitize=address,undefined -fno-sanitize-recover=undefined
    -fno-omit-frame-pointer $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>)
  target_link_options(jitgate_sanitizers INTERFACE -fsanitize=address,undefined)
endif()

# Precompiled headers: the standard library and nlohmann-json headers that nearly every source
# of the daemon, lib/ and the tests includes. They are parsed once per target instead of once per
# file, which is most of the compile time of a small source (the test command builds the tree
# five times: g++, clang + sanitizers, the fuzzers, the .deb and the .rpm). A source still
# includes what it uses; the list below only makes that cheaper.
set(JITGATE_PCH_HEADERS <algorithm> <chrono> <cstdint> <functional> <map> <memory> <optional>
  <string> <string_view> <unordered_map> <vector> <nlohmann/json.hpp>)
