// lib/config_file.hpp — what every jitgate program that reads a configuration or key file shares:
// a problem found in a file (file:line:column: message) and the check that refuses a file that
// someone other than root could change. jitgated's config, its grant keys and CA, and the coming
// jitgate-server's config and signing keys all go through check_file_security. Also the text
// forms of durations and sizes that both configs use. No YAML here (see lib/yaml_reader.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace jitgate::config {

using Seconds = std::chrono::seconds;

// One problem found in a file. Plain data: thread-safe to copy.
struct Problem {
    std::string file;
    int line = 0;   // 1-based; 0 when unknown
    int column = 0; // 1-based; 0 when unknown
    std::string message;
    std::string to_string() const; // "file:line:column: message"
};

// SECURITY NOTE: jitgate refuses a config or key file that someone other than root could
// change. Returns a problem if `path` is not a regular file owned by root (or `allowed_uid`),
// is a symbolic link, or is group/world-writable; nullopt if it is safe to trust. Never throws
// except std::bad_alloc. Thread-safe.
std::optional<Problem> check_file_security(const std::string& path, unsigned allowed_uid = 0);

// SECURITY NOTE: like sshd's StrictModes. Returns why not, or nullopt if every directory from
// "/" down to the parent of the absolute `path` is owned by root (or `allowed_uid`) and is not
// group/world-writable, except that a root-owned sticky directory (/tmp) is accepted: there no
// one else can rename or remove an entry they do not own. Whoever can write a directory on the
// way can swap the file under it. Symlinks on the way are followed by stat (their target
// directory is what is checked). Never throws except std::bad_alloc. Thread-safe.
std::optional<std::string> check_directory_chain(const std::string& path, unsigned allowed_uid = 0);

// Opens and reads the file at the absolute `path` safely for a daemon: O_NOFOLLOW|O_NONBLOCK
// (a symlink or a FIFO at the path is refused, never waited on), then checks the open file
// itself (fstat: a regular file owned by root or `allowed_uid`, not group/world-writable, at
// most `max_bytes`) and its directory chain (check_directory_chain), and reads at most
// `max_bytes` + 1 bytes. Nothing is checked by name and then opened again, so nothing can be
// swapped in between. `what` names the file in messages ("the on-call file"). Returns a
// problem and leaves `text` empty on any failure. Never throws except std::bad_alloc.
std::optional<Problem> read_trusted_file(const std::string& path, std::string_view what, std::size_t max_bytes,
                                         std::string& text, unsigned allowed_uid = 0);

// "30s", "15m", "2h", "1d" or a bare number of seconds. nullopt if malformed or <= 0.
// Thread-safe; never throws except std::bad_alloc.
std::optional<Seconds> parse_duration(const std::string& text);
std::string format_duration(Seconds s); // "15m", "90s", "2h"
// "4096", "512KiB", "8MiB", "1GiB" (also KB/MB/GB as powers of 1000). nullopt if malformed or 0.
std::optional<std::uint64_t> parse_size(const std::string& text);

} // namespace jitgate::config
