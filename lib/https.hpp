// lib/https.hpp — the one libcurl TLS/HTTPS policy for every outgoing connection of jitgate:
// the approval service client, the audit shipper, and the coming jitgate-server's own calls.
// Depends on libcurl and common/ only (lib/curl_option.hpp checks every option).
#pragma once

#include <chrono>
#include <string>

#include <curl/curl.h>

namespace jitgate::https {

// What one peer needs beyond its URL. Defaults sit here, in one place.
struct Policy {
    // PEM file of the CA (or CAs) that signed the peer's certificate: the only trust anchor.
    // Required unless allow_plain_http (see apply_policy).
    std::string ca_file;
    // This host's certificate and key for mutual TLS: both or neither.
    std::string client_cert;
    std::string client_key;
    // Empty: no proxy at all, even if http_proxy/https_proxy/all_proxy are set in the
    // environment.
    std::string proxy;
    std::chrono::milliseconds connect_timeout{5000};
    // The whole transfer; 0 means no limit (libcurl's meaning).
    std::chrono::milliseconds timeout{30000};
    // Tests only, never from a config file: also allow http:// (a loopback peer without TLS).
    bool allow_plain_http = false;
};

// Applies `policy` to `easy`: https only (for the request and for any redirect), redirects not
// followed, TLS 1.2 at least, peer certificate and host name verified against policy.ca_file
// alone, the client certificate presented, the proxy as given, the two timeouts, no signals.
// The caller sets the URL, method, headers and callbacks.
// Throws Error(internal, "libcurl") if libcurl refuses an option (an old libcurl, a build
// without a TLS feature: see lib/curl_option.hpp), and Error(bad_input, "https") for a policy
// without ca_file (unless allow_plain_http) or with only one of client_cert and client_key.
// On a throw the handle may hold some of the options: do not use it for a transfer.
// Thread-safe for distinct handles; `policy`'s strings are copied by libcurl.
void apply_policy(CURL* easy, const Policy& policy);

} // namespace jitgate::https
