// server/notify/transfer.hpp — one outbound HTTPS call of the notify folder (a webhook POST, a
// ticket GET) with libcurl, through lib/https's policy: https only, no redirects followed, TLS
// 1.2+, the peer verified against one CA file, no proxy from the environment, timeouts, and a
// cap on the answer's size. Shared by deliver.cpp and ticket.cpp; not for other folders.
//
// Threading: each call uses its own easy handle; thread-safe once curl_global_init() ran (the
// program's main does it before any thread starts).
// Errors: a transfer failure is a value (Reply::curl_code, Reply::error), never a throw;
// throws Error(internal/bad_input) only when libcurl refuses an option or no CA file is known.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <curl/curl.h>

namespace jitgate::server::notify::transfer {

struct Call {
    std::string method = "GET";       // "GET" or "POST"
    std::string url;                  // https://...
    std::vector<std::string> headers; // "Name: value" lines; never with a line break (the caller checks)
    std::string body;                 // POST only
    // The peer's CA file. Empty: the trust store libcurl was built with (CURLINFO_CAINFO).
    std::string ca_file;
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds timeout{10000};
    std::size_t max_answer = 64 * 1024; // a longer answer ends the transfer: answer_too_large
};

struct Reply {
    CURLcode curl_code = CURLE_OK;
    std::string error;               // one line: libcurl's message (empty when curl_code is CURLE_OK)
    long status = 0;                 // the HTTP status, 0 if none arrived
    std::string answer;              // at most max_answer bytes
    bool answer_too_large = false;   // the transfer stopped at max_answer
    std::optional<long> retry_after; // seconds, from a Retry-After header (seconds or HTTP date)
};

// Performs `call`. Never follows a redirect: a 3xx comes back as its status.
Reply perform(const Call& call);

// The CA file to pin when the configuration names none: the trust store libcurl was built
// with (Debian: /etc/ssl/certs/ca-certificates.crt). Throws Error(bad_input) if libcurl
// knows none.
std::string system_ca_file();

} // namespace jitgate::server::notify::transfer
