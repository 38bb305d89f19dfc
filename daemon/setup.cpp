// daemon/setup.cpp — building what a Config needs (daemon/setup.hpp).
#include "daemon/setup.hpp"

#include <tuple>

#include "daemon/approval/local.hpp"
#include "daemon/approval/service.hpp"

namespace jitgate::setup {
namespace {

// Every setting read by auditor_options() and shipper_options(): a reload refuses a change to
// any of them. A new audit or store key is added here and in the builder that reads it.
auto fixed_audit_settings(const config::Config::Audit& x) {
    return std::tie(x.spool_dir, x.spool_max_bytes, x.segment_bytes, x.syslog, x.syslog_socket, x.store.url,
                    x.store.format, x.store.ca_file, x.store.client_cert, x.store.client_key, x.store.token_file,
                    x.store.proxy, x.store.connect_timeout, x.store.timeout, x.store.batch_events, x.store.batch_bytes,
                    x.store.retry_min, x.store.retry_max, x.store.splunk_index, x.store.splunk_sourcetype);
}

// The settings the ServiceClient is built from; public_keys, issuer and clock_skew are not
// among them: a reload applies those (key rotation).
auto fixed_service_settings(const config::Config::Approval::Service& a) {
    return std::tie(a.url, a.ca_file, a.client_cert, a.client_key, a.proxy, a.connect_timeout, a.request_timeout,
                    a.poll_wait, a.retries);
}

} // namespace

audit::Options auditor_options(const config::Config& config) {
    const auto& a = config.audit;
    return audit::Options{a.spool_dir,     config.host.name,  a.syslog, a.syslog_socket,
                          a.segment_bytes, a.spool_max_bytes, {}};
}

std::optional<audit::ShipperOptions> shipper_options(const config::Config& config) {
    const auto& st = config.audit.store;
    if (st.url.empty()) return std::nullopt;
    audit::ShipperOptions o;
    o.url = st.url;
    o.format = audit::parse_format(st.format).value_or(audit::Format::jsonl);
    o.ca_file = st.ca_file;
    o.client_cert = st.client_cert;
    o.client_key = st.client_key;
    o.token_file = st.token_file;
    o.proxy = st.proxy;
    o.connect_timeout = st.connect_timeout;
    o.timeout = st.timeout;
    o.batch_events = static_cast<std::size_t>(st.batch_events);
    o.batch_bytes = static_cast<std::size_t>(st.batch_bytes);
    o.retry_min = st.retry_min;
    o.retry_max = st.retry_max;
    o.hec_index = st.splunk_index;
    o.hec_sourcetype = st.splunk_sourcetype;
    return o;
}

std::unique_ptr<approval::ApprovalBackend> make_backend(std::shared_ptr<const config::Config> config,
                                                        approval::Outcomes& outcomes) {
    if (config->approval.backend == "service")
        return std::make_unique<approval::ServiceBackend>(std::move(config), outcomes);
    return std::make_unique<approval::LocalBackend>();
}

std::string reload_refusal(const config::Config& running, const config::Config& fresh) {
    const bool same_backend =
        running.approval.backend == fresh.approval.backend &&
        (fresh.approval.backend != "service" ||
         fixed_service_settings(running.approval.service) == fixed_service_settings(fresh.approval.service));
    const bool same_audit = fixed_audit_settings(running.audit) == fixed_audit_settings(fresh.audit);
    if (same_backend && same_audit) return {};
    return std::string(!same_backend ? "approval.backend or approval.service connection settings"
                                     : "the audit spool, syslog or store settings") +
           " changed; restart jitgated to apply them";
}

} // namespace jitgate::setup
