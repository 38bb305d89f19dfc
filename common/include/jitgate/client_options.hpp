// jitgate/client_options.hpp — where the daemon is and whom to trust there: the settings of
// the socket client, on their own so that option parsing need not see the client.
#pragma once

#include <string>

namespace jitgate::client {

inline constexpr const char* k_default_socket = "/run/jitgate/jitgated.sock";
inline constexpr const char* k_default_daemon_user = "jitgate";

struct Options {
    std::string socket_path = k_default_socket;
    std::string daemon_user = k_default_daemon_user; // besides root, the only trusted owner
    int connect_timeout_ms = 5000;
    int reply_timeout_ms = 15000; // first answer after a request; waits extend it
};

} // namespace jitgate::client
