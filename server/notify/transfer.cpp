// server/notify/transfer.cpp — one outbound HTTPS call (see transfer.hpp).
#include "server/notify/transfer.hpp"

#include <memory>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"
#include "lib/curl_option.hpp"
#include "lib/https.hpp"

namespace jitgate::server::notify::transfer {

namespace {

struct EasyDeleter {
    void operator()(CURL* easy) const noexcept { curl_easy_cleanup(easy); }
};
struct ListDeleter {
    void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};

struct Sink {
    std::string* answer;
    std::size_t max;
    bool too_large = false;
};

// libcurl's write callback: keeps at most `max` bytes; one byte more ends the transfer
// (returning less than given makes libcurl stop with CURLE_WRITE_ERROR).
std::size_t on_data(char* data, std::size_t size, std::size_t count, void* user) noexcept {
    auto* sink = static_cast<Sink*>(user);
    const std::size_t n = size * count;
    if (sink->answer->size() + n > sink->max) {
        sink->too_large = true;
        return 0;
    }
    try {
        sink->answer->append(data, n);
    } catch (...) {
        return 0; // out of memory: end the transfer rather than throw through C
    }
    return n;
}

} // namespace

std::string system_ca_file() {
    std::unique_ptr<CURL, EasyDeleter> easy(curl_easy_init());
    char* path = nullptr;
    if (easy == nullptr || curl_easy_getinfo(easy.get(), CURLINFO_CAINFO, &path) != CURLE_OK || path == nullptr ||
        *path == '\0')
        throw Error(ErrorCode::bad_input, "https", "no ca_file given and libcurl has no built-in CA file");
    return path;
}

Reply perform(const Call& call) {
    std::unique_ptr<CURL, EasyDeleter> holder(curl_easy_init());
    if (holder == nullptr) throw Error(ErrorCode::internal, "libcurl", "curl_easy_init failed");
    CURL* easy = holder.get();

    https::Policy policy;
    // SECURITY NOTE: lib/https never falls back to the system store on its own; a webhook or a
    // ticket system with no ca_file (Slack, a SaaS ServiceNow) is pinned to the trust store
    // libcurl was built with, named explicitly, as the configuration documents.
    policy.ca_file = call.ca_file.empty() ? system_ca_file() : call.ca_file;
    policy.connect_timeout = call.connect_timeout;
    policy.timeout = call.timeout;
    https::apply_policy(easy, policy);

    Reply reply;
    Sink sink{&reply.answer, call.max_answer};
    std::unique_ptr<curl_slist, ListDeleter> headers;
    for (const auto& line : call.headers) {
        curl_slist* next = curl_slist_append(headers.get(), line.c_str());
        if (next == nullptr) throw Error(ErrorCode::internal, "libcurl", "curl_slist_append failed");
        (void)headers.release();
        headers.reset(next);
    }
    // No "Expect: 100-continue" round trip for a POST body.
    if (call.method == "POST") {
        curl_slist* next = curl_slist_append(headers.get(), "Expect:");
        if (next == nullptr) throw Error(ErrorCode::internal, "libcurl", "curl_slist_append failed");
        (void)headers.release();
        headers.reset(next);
    }
    JITGATE_SETOPT(easy, CURLOPT_URL, call.url.c_str());
    JITGATE_SETOPT(easy, CURLOPT_HTTPHEADER, headers.get());
    if (call.method == "POST") {
        JITGATE_SETOPT(easy, CURLOPT_POST, 1L);
        JITGATE_SETOPT(easy, CURLOPT_POSTFIELDS, call.body.data());
        JITGATE_SETOPT(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(call.body.size()));
    } else {
        JITGATE_SETOPT(easy, CURLOPT_HTTPGET, 1L);
    }
    JITGATE_SETOPT(easy, CURLOPT_WRITEFUNCTION, &on_data);
    JITGATE_SETOPT(easy, CURLOPT_WRITEDATA, static_cast<void*>(&sink));
    char errbuf[CURL_ERROR_SIZE] = {};
    JITGATE_SETOPT(easy, CURLOPT_ERRORBUFFER, static_cast<char*>(errbuf));

    reply.curl_code = curl_easy_perform(easy);
    reply.answer_too_large = sink.too_large;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &reply.status);
    curl_off_t retry_after = -1;
    if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0)
        reply.retry_after = static_cast<long>(retry_after);
    if (reply.curl_code != CURLE_OK)
        reply.error = text::shown(errbuf[0] != '\0' ? errbuf : curl_easy_strerror(reply.curl_code), 300);
    return reply;
}

} // namespace jitgate::server::notify::transfer
