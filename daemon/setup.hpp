// daemon/setup.hpp — what a Config needs built, in one place: the auditor's and the shipper's
// settings, the approval backend, and which settings a reload cannot apply. Used by
// jitgated's start-up and by Server (construction and reload), so a new setting is wired
// here once. Not thread-safe; called from the daemon's main thread.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "daemon/approval/backend.hpp"
#include "daemon/audit/auditor.hpp"
#include "daemon/audit/shipper.hpp"
#include "daemon/config/config.hpp"

namespace jitgate::setup {

// The journal's settings (audit.spool_*, audit.syslog*, host.name).
audit::Options auditor_options(const config::Config& config);

// The sender to the central audit store (audit.store); nullopt if no store is configured.
std::optional<audit::ShipperOptions> shipper_options(const config::Config& config);

// The approval backend that approval.backend names: LocalBackend, or ServiceBackend holding
// `outcomes` (the broker, which must outlive it). Throws Error as ServiceBackend's
// constructor does (a key, the CA, the certificate or the client key unreadable or unsafe).
std::unique_ptr<approval::ApprovalBackend> make_backend(std::shared_ptr<const config::Config> config,
                                                        approval::Outcomes& outcomes);

// Empty if `fresh` can replace `running` by a reload (SIGHUP); otherwise why it needs a
// restart. The backend kind and its connection settings, and everything under audit but
// when_spool_full, are fixed at start-up: the backend, the Auditor and the Shipper own them,
// and a reload must not pretend to apply them.
std::string reload_refusal(const config::Config& running, const config::Config& fresh);

} // namespace jitgate::setup
