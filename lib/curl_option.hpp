// lib/curl_option.hpp — libcurl options set with their return code checked.
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

// Throws Error(internal) with context "libcurl": libcurl refuses option `name` for `why`.
[[noreturn]] inline void refused(const char* name, const char* why) {
    throw Error(ErrorCode::internal, "libcurl",
                std::string("refuses the option ") + name + ": " + why + " (libcurl " +
                    curl_version_info(CURLVERSION_NOW)->version + ")");
}

// Sets `option` (called `name` in the message) on `easy`; throws as refused() if libcurl
// refuses it.
template <typename T>
void set(CURL* easy, CURLoption option, const char* name, T value) {
    if (const CURLcode rc = curl_easy_setopt(easy, option, value); rc != CURLE_OK)
        refused(name, curl_easy_strerror(rc));
}

// The same for a multi handle.
template <typename T>
void set_multi(CURLM* multi, CURLMoption option, const char* name, T value) {
    if (const CURLMcode rc = curl_multi_setopt(multi, option, value); rc != CURLM_OK)
        refused(name, curl_multi_strerror(rc));
}

} // namespace jitgate::curl_option

// The option's own name goes into the message.
#define JITGATE_SETOPT(easy, option, value) ::jitgate::curl_option::set((easy), option, #option, (value))
#define JITGATE_MULTI_SETOPT(multi, option, value) ::jitgate::curl_option::set_multi((multi), option, #option, (value))
