// lib/file_io.hpp — writing a whole buffer to a file descriptor, shared by jitgated's spool and
// jitgate-server's key, archive and report files.
#pragma once

#include <cstddef>
#include <string_view>

namespace jitgate::file_io {

// Writes all of `data` with as many write() calls as it takes (retrying EINTR). Returns 0 or
// the errno of the failure (EIO if write() made no progress); `written` says how much reached
// the file either way. Never throws.
int write_all(int fd, std::string_view data, std::size_t& written) noexcept;
// The same, when how much was written does not matter.
int write_all(int fd, std::string_view data) noexcept;

} // namespace jitgate::file_io
