// lib/sd_notify.hpp — readiness for systemd (Type=notify) without linking libsystemd, for
// jitgated and jitgate-server. Thread-safe; never throws.
#pragma once

namespace jitgate {

// Sends `state` (e.g. "READY=1") as one datagram to the AF_UNIX socket named by $NOTIFY_SOCKET
// ('@' = abstract namespace), as sd_notify(3) does. Returns true if sent or if $NOTIFY_SOCKET
// is unset (not under systemd); false, with a message on stderr, if it is set but unusable.
bool notify_systemd(const char* state);

} // namespace jitgate
