// server/notify/deliver.cpp — one webhook delivery and the retry schedule (see deliver.hpp).
#include "server/notify/deliver.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"
#include "server/notify/transfer.hpp"

namespace jitgate::server::notify {

namespace {

constexpr std::size_t k_max_answer = 64 * 1024;

// The first line of a secret file, blanks around it removed.
std::string read_secret(const std::string& name, const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorCode::bad_input, "webhook " + name, "cannot read secret_file " + text::shown(path, 300));
    std::string secret;
    std::getline(in, secret);
    const auto last = secret.find_last_not_of(" \t\r");
    secret.erase(last == std::string::npos ? 0 : last + 1);
    const auto first = secret.find_first_not_of(" \t");
    secret.erase(0, first == std::string::npos ? secret.size() : first);
    if (secret.empty())
        throw Error(ErrorCode::bad_input, "webhook " + name, "secret_file " + text::shown(path, 300) + " is empty");
    return secret;
}

// The body's delivery_id, if it is a JSON object with a printable one.
std::optional<std::string> delivery_id_of(const std::string& body) {
    const auto doc = nlohmann::json::parse(body, nullptr, false);
    if (!doc.is_object()) return std::nullopt;
    const auto it = doc.find("delivery_id");
    if (it == doc.end() || !it->is_string()) return std::nullopt;
    const auto& id = it->get_ref<const std::string&>();
    if (id.empty() || id.size() > 128) return std::nullopt;
    // It goes into a header line: nothing that could end it or start another.
    for (const char c : id) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x21 || u > 0x7E) return std::nullopt;
    }
    return id;
}

bool retryable_curl_error(CURLcode code) {
    switch (code) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

// One printable line from what the receiver answered, for the error.
std::string answer_excerpt(const std::string& answer) {
    if (answer.empty()) return {};
    return ": " + text::shown(answer, 200);
}

} // namespace

std::string_view to_string(Outcome outcome) noexcept {
    switch (outcome) {
    case Outcome::delivered:
        return "delivered";
    case Outcome::retry:
        return "retry";
    case Outcome::give_up:
        return "give_up";
    }
    return "retry";
}

Target load_target(const config::Webhook& hook) {
    Target target;
    target.name = hook.name;
    target.url = hook.url;
    target.ca_file = hook.ca_file;
    if (hook.format == "json") {
        target.format = Format::json;
        target.secret = read_secret(hook.name, hook.secret_file);
    } else if (hook.format == "slack") {
        target.format = Format::slack;
    } else {
        throw Error(ErrorCode::bad_input, "webhook " + hook.name,
                    "format " + text::shown(hook.format, 50) + " is neither \"json\" nor \"slack\"");
    }
    return target;
}

std::vector<Target> load_targets(const std::vector<config::Webhook>& hooks) {
    std::vector<Target> targets;
    targets.reserve(hooks.size());
    for (const auto& hook : hooks) targets.push_back(load_target(hook));
    return targets;
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len) == nullptr)
        throw Error(ErrorCode::internal, "openssl", "HMAC-SHA256 failed");
    static constexpr char k_hex[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(len * 2);
    for (unsigned int i = 0; i < len; ++i) {
        hex += k_hex[mac[i] >> 4];
        hex += k_hex[mac[i] & 0x0F];
    }
    return hex;
}

std::string signature_header(std::string_view secret, std::int64_t now, std::string_view body) {
    const std::string t = std::to_string(now);
    std::string signed_text;
    signed_text.reserve(t.size() + 1 + body.size());
    signed_text.append(t).append(".").append(body);
    return "t=" + t + ",v1=" + hmac_sha256_hex(secret, signed_text);
}

Delivery deliver(const Target& target, const std::string& body, std::int64_t now) {
    Delivery result;
    transfer::Call call;
    call.method = "POST";
    call.url = target.url;
    call.body = body;
    call.ca_file = target.ca_file;
    call.connect_timeout = target.connect_timeout;
    call.timeout = target.timeout;
    call.max_answer = k_max_answer;
    call.headers.push_back("Content-Type: application/json");
    if (target.format == Format::json) {
        const auto id = delivery_id_of(body);
        if (!id) {
            result.outcome = Outcome::give_up;
            result.error = "the notice has no valid delivery_id: not a JSON notice";
            return result;
        }
        call.headers.push_back("Jitgate-Delivery: " + *id);
        call.headers.push_back("Jitgate-Signature: " + signature_header(target.secret, now, body));
    }

    transfer::Reply reply;
    try {
        reply = transfer::perform(call);
    } catch (const std::exception& e) {
        // A refused libcurl option or no CA file: nothing was sent; the configuration or the
        // libcurl build must change, which a retry may see (a CA file restored).
        result.outcome = Outcome::retry;
        result.error = text::shown(e.what(), 300);
        return result;
    }
    result.status = reply.status;
    if (reply.retry_after) result.retry_after = std::chrono::seconds(*reply.retry_after);

    const bool answered = reply.curl_code == CURLE_OK || (reply.answer_too_large && reply.status != 0);
    if (!answered) {
        result.outcome = retryable_curl_error(reply.curl_code) ? Outcome::retry : Outcome::give_up;
        result.error = reply.error;
        return result;
    }
    const long s = reply.status;
    if (s >= 200 && s < 300) {
        result.outcome = Outcome::delivered;
        return result;
    }
    const std::string answered_with = "the receiver answered " + std::to_string(s);
    if (s == 408 || s == 429 || (s >= 500 && s < 600)) {
        result.outcome = Outcome::retry;
        result.error = answered_with + answer_excerpt(reply.answer);
    } else if (s >= 300 && s < 400) {
        // SECURITY NOTE: a redirect would send the signed body to a URL nobody configured.
        result.outcome = Outcome::give_up;
        result.error = answered_with + " (a redirect; redirects are not followed: configure the final URL)";
    } else {
        result.outcome = Outcome::give_up;
        result.error = answered_with + answer_excerpt(reply.answer);
    }
    return result;
}

std::chrono::seconds backoff(int failures, double jitter, std::optional<std::chrono::seconds> retry_after) {
    const int n = std::max(failures, 1);
    double wait = static_cast<double>(k_first_backoff.count());
    for (int i = 1; i < n && wait < static_cast<double>(k_max_backoff.count()); ++i) wait *= 2;
    wait = std::min(wait, static_cast<double>(k_max_backoff.count()));
    wait *= 1.0 + 0.2 * std::clamp(jitter, -1.0, 1.0);
    auto result = std::chrono::seconds(static_cast<std::int64_t>(std::llround(wait)));
    if (retry_after && *retry_after > result) result = std::min(*retry_after, k_max_backoff);
    return std::max(result, std::chrono::seconds(1));
}

bool exhausted(int failures) {
    std::int64_t total = 0;
    std::int64_t wait = k_first_backoff.count();
    for (int i = 1; i <= failures; ++i) {
        total += wait;
        if (total >= k_give_up_after.count()) return true;
        wait = std::min(wait * 2, static_cast<std::int64_t>(k_max_backoff.count()));
    }
    return false;
}

} // namespace jitgate::server::notify
