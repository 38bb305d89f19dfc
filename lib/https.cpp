// lib/https.cpp — the libcurl TLS/HTTPS policy (see https.hpp).
//
// This was written twice before, in the approval service client and in the audit shipper, and
// the copies had drifted apart; where they differed, the stricter choice is kept here and each
// choice says why.
#include "lib/https.hpp"

#include "jitgate/error.hpp"
#include "lib/curl_option.hpp"

namespace jitgate::https {

void apply_policy(CURL* easy, const Policy& policy) {
    if (policy.client_cert.empty() != policy.client_key.empty())
        throw Error(ErrorCode::bad_input, "https", "client_cert and client_key go together: set both or neither");
    // SECURITY NOTE: the peer is trusted only through the CA file it was configured with.
    // The shipper used to fall back to the system CA store when its ca_file was empty (the
    // config never allowed that, but its options did); now an https policy without a CA file
    // is refused rather than trusting every public CA. A test's plain-http peer needs none.
    if (policy.ca_file.empty() && !policy.allow_plain_http)
        throw Error(ErrorCode::bad_input, "https",
                    "no ca_file: the peer's CA must be pinned (the system CA store is never trusted)");

    // SECURITY NOTE: https only, for the request and for any redirect. Both copies set the
    // request's protocols; only the shipper also set the redirect protocols. Redirects are not
    // followed anyway, but the redirect list is set too, so a later FOLLOWLOCATION could never
    // lead to plain http or another scheme.
    const char* protocols = policy.allow_plain_http ? "http,https" : "https";
    JITGATE_SETOPT(easy, CURLOPT_PROTOCOLS_STR, protocols);
    JITGATE_SETOPT(easy, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
    // A redirect would send the request (and its credentials) to a URL we did not configure.
    JITGATE_SETOPT(easy, CURLOPT_FOLLOWLOCATION, 0L);

    // TLS 1.2 at least (both copies agreed); libcurl's default maximum.
    JITGATE_SETOPT(easy, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
    // Certificate chain and host name verified; these are libcurl's defaults, set anyway so
    // that no other code path can have turned them off on a reused handle.
    JITGATE_SETOPT(easy, CURLOPT_SSL_VERIFYPEER, 1L);
    JITGATE_SETOPT(easy, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!policy.ca_file.empty()) {
        JITGATE_SETOPT(easy, CURLOPT_CAINFO, policy.ca_file.c_str());
        // CAPATH off: otherwise libcurl may also consult the system's hashed CA directory.
        JITGATE_SETOPT(easy, CURLOPT_CAPATH, static_cast<const char*>(nullptr));
    }
    // mTLS. The service client set these even when empty (its settings always have both); the
    // shipper only when set (its store may authenticate us by token instead). Set only when
    // given: an empty SSLCERT is the same as none.
    if (!policy.client_cert.empty()) {
        JITGATE_SETOPT(easy, CURLOPT_SSLCERT, policy.client_cert.c_str());
        JITGATE_SETOPT(easy, CURLOPT_SSLKEY, policy.client_key.c_str());
    }

    // "" disables proxies, including the http_proxy/https_proxy/all_proxy environment
    // variables: a daemon's environment is not configuration (both copies agreed).
    JITGATE_SETOPT(easy, CURLOPT_PROXY, policy.proxy.c_str());

    JITGATE_SETOPT(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(policy.connect_timeout.count()));
    JITGATE_SETOPT(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(policy.timeout.count()));
    // No SIGALRM for DNS timeouts: the daemon is multi-threaded and owns its signals.
    JITGATE_SETOPT(easy, CURLOPT_NOSIGNAL, 1L);
}

} // namespace jitgate::https
