// daemon/curl_option.hpp — libcurl options set with their return code checked.
//
// SECURITY NOTE: an option libcurl refuses (an older libcurl without CURLOPT_PROTOCOLS_STR, a
// build without a TLS feature, a value out of range) would otherwise leave its default in
// place silently: redirects followed, any protocol allowed, the system CA store trusted. Every
// option of the approval service client and the audit shipper goes through these, so a refusal
// is an error naming the option, and at start-up the daemon refuses to start.
// Depends on libcurl and common/ only.
#pragma once

#include <string>

#include <curl/curl.h>

#include "jitgate/error.hpp"

namespace jitgate::curl_option {

// Sets `option` (called `name` in the message) on `easy`. Throws Error(internal) with context
// "libcurl" and a message naming the option and libcurl's reason if libcurl refuses it.
template <typename T>
void set(CURL* easy, CURLoption option, const char* name, T value) {
    const CURLcode rc = curl_easy_setopt(easy, option, value);
    if (rc != CURLE_OK)
        throw Error(ErrorCode::internal, "libcurl",
                    std::string("refuses the option ") + name + ": " + curl_easy_strerror(rc) + " (libcurl " +
                        curl_version_info(CURLVERSION_NOW)->version + ")");
}

// The same for a multi handle.
template <typename T>
void set_multi(CURLM* multi, CURLMoption option, const char* name, T value) {
    const CURLMcode rc = curl_multi_setopt(multi, option, value);
    if (rc != CURLM_OK)
        throw Error(ErrorCode::internal, "libcurl",
                    std::string("refuses the option ") + name + ": " + curl_multi_strerror(rc) + " (libcurl " +
                        curl_version_info(CURLVERSION_NOW)->version + ")");
}

} // namespace jitgate::curl_option

// The option's own name goes into the message.
#define JITGATE_SETOPT(easy, option, value) ::jitgate::curl_option::set((easy), option, #option, (value))
#define JITGATE_MULTI_SETOPT(multi, option, value) ::jitgate::curl_option::set_multi((multi), option, #option, (value))
