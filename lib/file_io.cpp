// lib/file_io.cpp — see file_io.hpp.
#include "lib/file_io.hpp"

#include <cerrno>
#include <unistd.h>

namespace jitgate::file_io {

int write_all(int fd, std::string_view data, std::size_t& written) noexcept {
    written = 0;
    while (written < data.size()) {
        const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (n == 0) return EIO;
        written += static_cast<std::size_t>(n);
    }
    return 0;
}

int write_all(int fd, std::string_view data) noexcept {
    std::size_t written = 0;
    return write_all(fd, data, written);
}

} // namespace jitgate::file_io
