// daemon/audit/store_check.cpp — see store_check.hpp.
#include "daemon/audit/store_check.hpp"

#include <array>

#include "daemon/audit/shipper.hpp"
#include "daemon/audit/spool.hpp"
#include "jitgate/error.hpp"
#include "jitgate/text.hpp"
#include "lib/audit_chain.hpp"
#include "lib/curl_option.hpp"
#include "lib/https.hpp"
#include "lib/strict_json.hpp"

namespace jitgate::audit {
namespace {

constexpr std::size_t k_max_answer = 64 * 1024; // a state is a few hundred bytes
constexpr std::size_t k_shown = 200;

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
    auto* out = static_cast<std::string*>(user);
    const std::size_t bytes = size * n;
    if (out->size() + bytes > k_max_answer) return 0; // a lying or wrong peer: fail the transfer
    out->append(data, bytes);
    return bytes;
}

struct Easy {
    CURL* h = curl_easy_init();
    curl_slist* headers = nullptr;
    ~Easy() {
        curl_slist_free_all(headers);
        if (h != nullptr) curl_easy_cleanup(h);
    }
};

} // namespace

std::string state_url(const std::string& events_url) {
    std::string url = events_url.substr(0, events_url.find_first_of("?#"));
    constexpr std::string_view suffix = "/events";
    if (url.size() <= suffix.size() || url.compare(url.size() - suffix.size(), suffix.size(), suffix) != 0)
        throw Error(ErrorCode::bad_input, "audit.store.url",
                    "does not end in /events (" + text::shown(events_url, k_shown) +
                        "): only a jitgate-server store (…/v1/audit/events) has a state to compare with");
    url.replace(url.size() - suffix.size(), suffix.size(), "/state");
    return url;
}

StoreState fetch_store_state(const config::Config::Audit::Store& store) {
    if (store.url.empty())
        throw Error(ErrorCode::bad_input, "audit.store.url", "no central store is configured: nothing to compare with");
    const std::string url = state_url(store.url);
    Easy easy;
    if (easy.h == nullptr) throw Error(ErrorCode::internal, "libcurl", "curl_easy_init failed");
    https::Policy policy;
    policy.ca_file = store.ca_file;
    policy.client_cert = store.client_cert;
    policy.client_key = store.client_key;
    policy.proxy = store.proxy;
    policy.connect_timeout = store.connect_timeout;
    policy.timeout = store.timeout;
    https::apply_policy(easy.h, policy);
    std::string body;
    std::array<char, CURL_ERROR_SIZE> errbuf{};
    JITGATE_SETOPT(easy.h, CURLOPT_URL, url.c_str());
    JITGATE_SETOPT(easy.h, CURLOPT_HTTPGET, 1L);
    JITGATE_SETOPT(easy.h, CURLOPT_WRITEFUNCTION, on_body);
    JITGATE_SETOPT(easy.h, CURLOPT_WRITEDATA, static_cast<void*>(&body));
    JITGATE_SETOPT(easy.h, CURLOPT_ERRORBUFFER, errbuf.data());
    JITGATE_SETOPT(easy.h, CURLOPT_USERAGENT, "jitgatectl");
    if (!store.token_file.empty()) {
        easy.headers =
            curl_slist_append(easy.headers, ("Authorization: Bearer " + read_store_token(store.token_file)).c_str());
        if (easy.headers == nullptr) throw Error(ErrorCode::internal, "libcurl", "cannot build the request headers");
        JITGATE_SETOPT(easy.h, CURLOPT_HTTPHEADER, easy.headers);
    }
    const CURLcode rc = curl_easy_perform(easy.h);
    if (rc != CURLE_OK)
        throw Error(ErrorCode::io, url,
                    "cannot reach the store: " +
                        text::shown(errbuf[0] != '\0' ? errbuf.data() : curl_easy_strerror(rc), k_shown));
    long status = 0;
    curl_easy_getinfo(easy.h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200)
        throw Error(ErrorCode::io, url, "HTTP " + std::to_string(status) + ": " + text::shown(body, k_shown));
    const strict_json::Parsed parsed = strict_json::parse_object(body);
    const auto& j = parsed.value;
    if (!parsed.error.empty() || !j.contains("last_seq") || !j["last_seq"].is_number_unsigned() ||
        !j.contains("last_hash") || !j["last_hash"].is_string() || !j.contains("host") || !j["host"].is_string())
        throw Error(ErrorCode::io, url,
                    "the answer is not an audit state (host, last_seq, last_hash): " + text::shown(body, k_shown));
    StoreState s;
    s.host = j["host"].get<std::string>();
    s.last_seq = j["last_seq"].get<std::uint64_t>();
    s.last_hash = j["last_hash"].get<std::string>();
    if (j.contains("chain") && j["chain"].is_string()) s.chain = j["chain"].get<std::string>();
    if (j.contains("problem") && j["problem"].is_string()) s.problem = j["problem"].get<std::string>();
    if (s.last_seq > 0 && !is_hash_hex(j["last_hash"]))
        throw Error(ErrorCode::io, url, "the answer's last_hash is not a hash: " + text::shown(body, k_shown));
    return s;
}

StoreCheck check_against_store(const std::string& dir, const StoreState& state) {
    StoreCheck out;
    const std::string held = "store holds up to seq " + std::to_string(state.last_seq) + " hash " + state.last_hash;
    const VerifyResult spool = verify_spool(dir);
    if (!spool.ok) {
        out.summary = held + "; the spool itself does not verify (" +
                      (spool.problems.empty() ? std::string("see jitgatectl audit verify")
                                              : text::printable(spool.problems.front())) +
                      ")";
        return out;
    }
    if (state.last_seq == 0) {
        out.ok = true;
        out.summary = "store holds no event of this host yet; nothing to compare";
        return out;
    }
    std::optional<spool::Anchor> anchor;
    try {
        anchor = spool::read_anchor(dir);
    } catch (const std::exception& e) {
        out.summary = held + "; " + text::printable(e.what());
        return out;
    }
    if (anchor && state.last_seq <= anchor->seq) {
        // Shipped and deleted: the spool continues its anchor (verify_spool checked that).
        if (state.last_seq == anchor->seq && anchor->hash != state.last_hash) {
            out.summary = held + "; spool rewritten: the hash at seq " + std::to_string(state.last_seq) +
                          " differs (anchor.json: " + text::printable(anchor->hash) + ")";
            return out;
        }
        out.ok = true;
        out.summary = held + "; shipped and deleted from the spool (its anchor is seq " + std::to_string(anchor->seq) +
                      "), and the spool continues from " + (state.last_seq == anchor->seq ? "it" : "its anchor");
        return out;
    }
    // Find the store's last event among the segments.
    std::uint64_t spool_last = anchor ? anchor->seq : 0;
    try {
        for (const spool::Segment& seg : spool::list_segments(dir)) {
            LineReader reader(seg.path);
            LineReader::Line line;
            while (reader.next(line)) {
                if (!line.complete) break;
                const LineCheck c = check_line(line.text);
                if (!c.stamped) continue;
                const auto seq = c.event["seq"].get<std::uint64_t>();
                spool_last = seq;
                if (seq != state.last_seq) continue;
                const auto& hash = c.event["hash"].get_ref<const std::string&>();
                if (hash != state.last_hash) {
                    out.summary = held + "; spool rewritten: the hash at seq " + std::to_string(seq) +
                                  " differs (the spool has " + text::printable(hash) + ")";
                    return out;
                }
                out.ok = true;
                out.summary =
                    held + "; spool matches" +
                    (spool.last_seq > seq ? " and continues to seq " + std::to_string(spool.last_seq) : std::string());
                return out;
            }
        }
    } catch (const std::exception& e) {
        out.summary = held + "; " + text::printable(e.what());
        return out;
    }
    out.summary = held + "; spool cut below what the store holds: the spool ends at seq " + std::to_string(spool_last) +
                  " (events were deleted, or the spool was wiped and started over)";
    return out;
}

} // namespace jitgate::audit
