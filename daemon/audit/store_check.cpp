// daemon/audit/store_check.cpp — see store_check.hpp.
#include "daemon/audit/store_check.hpp"

#include <algorithm>
#include <array>
#include <optional>

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

StoreState fetch_store_state(const config::Config::Audit::Store& store, const std::string& host) {
    if (store.url.empty())
        throw Error(ErrorCode::bad_input, "audit.store.url", "no central store is configured: nothing to compare with");
    if (host.empty()) throw Error(ErrorCode::bad_input, "host.name", "no host name: nothing to ask the store about");
    Easy easy;
    if (easy.h == nullptr) throw Error(ErrorCode::internal, "libcurl", "curl_easy_init failed");
    // SECURITY NOTE: the host is named, not left to the certificate's first name: a certificate
    // naming several hosts would otherwise be answered about another one, and that state
    // compared with this spool.
    char* escaped = curl_easy_escape(easy.h, host.data(), static_cast<int>(host.size()));
    if (escaped == nullptr) throw Error(ErrorCode::internal, "libcurl", "cannot escape the host name");
    const std::string url = state_url(store.url) + "?host=" + escaped;
    curl_free(escaped);
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
    const auto has = [&](const char* name, bool (Json::*is)() const noexcept) {
        return j.contains(name) && (j[name].*is)();
    };
    if (!parsed.error.empty() || !has("last_seq", &Json::is_number_unsigned) || !has("last_hash", &Json::is_string) ||
        !has("host", &Json::is_string) || !has("chain", &Json::is_string) ||
        !has("restarts", &Json::is_number_unsigned))
        throw Error(ErrorCode::io, url,
                    "the answer is not an audit state (host, last_seq, last_hash, chain, restarts): " +
                        text::shown(body, k_shown));
    StoreState s;
    s.host = j["host"].get<std::string>();
    s.last_seq = j["last_seq"].get<std::uint64_t>();
    s.last_hash = j["last_hash"].get<std::string>();
    s.chain = j["chain"].get<std::string>();
    s.restarts = j["restarts"].get<std::uint64_t>();
    if (j.contains("problem") && j["problem"].is_string()) s.problem = j["problem"].get<std::string>();
    if (j.contains("restart_at") && j["restart_at"].is_string()) s.restart_at = j["restart_at"].get<std::string>();
    if (j.contains("restart_previous_seq") && j["restart_previous_seq"].is_number_unsigned())
        s.restart_previous_seq = j["restart_previous_seq"].get<std::uint64_t>();
    if (s.chain != "ok" && s.chain != "broken")
        throw Error(ErrorCode::io, url,
                    "the answer's chain is neither \"ok\" nor \"broken\": " + text::shown(body, k_shown));
    if (s.host != host)
        throw Error(ErrorCode::io, url,
                    "the store answered about host \"" + text::shown(s.host, k_shown) + "\", not \"" +
                        text::shown(host, k_shown) + "\" (host.name)");
    if (s.last_seq > 0 && !is_hash_hex(j["last_hash"]))
        throw Error(ErrorCode::io, url, "the answer's last_hash is not a hash: " + text::shown(body, k_shown));
    return s;
}

namespace {

// The spool against the store's last (seq, hash), as check_against_store says, without what
// the store itself said of the chain (broken, restarts).
StoreCheck compare(const std::string& dir, const StoreState& state, const std::string& held,
                   std::uint64_t spool_last_seq) {
    StoreCheck out;
    std::optional<spool::Anchor> anchor;
    std::optional<spool::Shipped> shipped;
    try {
        anchor = spool::read_anchor(dir);
        shipped = spool::read_shipped(dir);
    } catch (const std::exception& e) {
        out.summary = held + "; " + text::printable(e.what());
        return out;
    }
    // What the host knows the store acknowledged: the anchor is written only for events the
    // store acknowledged, shipped.json only after a 2xx.
    const std::uint64_t acknowledged = std::max(anchor ? anchor->seq : 0, shipped ? shipped->seq : 0);
    if (state.last_seq < acknowledged) {
        out.summary =
            held + "; the store lost events it acknowledged: this host had seq " + std::to_string(acknowledged) +
            " acknowledged (" + (anchor && anchor->seq == acknowledged ? "anchor.json" : "shipped.json") +
            "), the store holds " +
            (state.last_seq == 0 ? std::string("no event of it") : "only up to seq " + std::to_string(state.last_seq)) +
            " (restored from an old backup, or rows deleted?)";
        return out;
    }
    if (state.last_seq == 0) {
        out.ok = true;
        out.summary =
            "store holds no event of this host yet, and this host has had none acknowledged; nothing to compare";
        return out;
    }
    if (anchor && state.last_seq == anchor->seq) {
        // Shipped and deleted: the spool continues its anchor (verify_spool checked that).
        if (anchor->hash != state.last_hash) {
            out.summary = held + "; spool rewritten: the hash at seq " + std::to_string(state.last_seq) +
                          " differs (anchor.json: " + text::printable(anchor->hash) + ")";
            return out;
        }
        out.ok = true;
        out.summary = held + "; shipped and deleted from the spool (its anchor is seq " + std::to_string(anchor->seq) +
                      "), and the spool continues from it";
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
                    (spool_last_seq > seq ? " and continues to seq " + std::to_string(spool_last_seq) : std::string());
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

} // namespace

StoreCheck check_against_store(const std::string& dir, const StoreState& state) {
    const std::string held = "store holds up to seq " + std::to_string(state.last_seq) + " hash " + state.last_hash;
    const VerifyResult spool = verify_spool(dir);
    if (!spool.ok) {
        StoreCheck out;
        out.summary = held + "; the spool itself does not verify (" +
                      (spool.problems.empty() ? std::string("see jitgatectl audit verify")
                                              : text::printable(spool.problems.front())) +
                      ")";
        return out;
    }
    StoreCheck out = compare(dir, state, held, spool.last_seq);
    if (state.restarts > 0) {
        out.ok = false;
        out.summary = "the store saw this host's chain start over at seq 1 " + std::to_string(state.restarts) +
                      (state.restarts == 1 ? " time" : " times") +
                      (state.restart_at.empty() ? std::string() : ", last at " + text::printable(state.restart_at)) +
                      " (it stood at seq " + std::to_string(state.restart_previous_seq) +
                      "): the spool was wiped, and what it held that was not shipped is lost; " + out.summary;
    }
    if (state.chain == "broken") {
        out.ok = false;
        out.summary = "the store marked this host's chain broken: " +
                      (state.problem.empty() ? std::string("(no problem given)") : text::printable(state.problem)) +
                      "; " + out.summary;
    }
    return out;
}

} // namespace jitgate::audit
