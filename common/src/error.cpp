#include "jitgate/error.hpp"

namespace jitgate {

const char* to_string(ErrorCode code) noexcept {
    switch (code) {
    case ErrorCode::ok:
        return "ok";
    case ErrorCode::denied:
        return "denied";
    case ErrorCode::daemon_unreachable:
        return "daemon_unreachable";
    case ErrorCode::untrusted_daemon:
        return "untrusted_daemon";
    case ErrorCode::protocol:
        return "protocol";
    case ErrorCode::timeout:
        return "timeout";
    case ErrorCode::interrupted:
        return "interrupted";
    case ErrorCode::bad_input:
        return "bad_input";
    case ErrorCode::internal:
        return "internal";
    case ErrorCode::io:
        return "io";
    }
    return "internal";
}

} // namespace jitgate
