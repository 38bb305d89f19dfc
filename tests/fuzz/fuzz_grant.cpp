// Fuzz target: the grant verifier (daemon/grant_token.cpp), a compact JWS from the approval
// service, and its claims.
// Input: a first byte, then the rest. Even first byte: the rest is the JWS as received.
// Odd first byte: the rest is "<header JSON>\0<payload JSON>", which this harness encodes and
// signs with the configured key, so that the claim checks behind the signature get fuzzed too.
// The key is fixed (derived from a constant seed) so that corpus files hold validly signed
// grants. Properties: never throws; a refusal is one printable line starting "grant: " and
// names no unforeseen exception; an accepted grant matches every expectation (rid, nonce,
// host, sub, kind, scope, cmd_sha256, enough distinct approvers without the requester, the
// time window with its skew).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "jitgate/text.hpp"
#include "lib/grant_token.hpp"

namespace {

namespace gt = jitgate::grant_token;
using jitgate::fuzz::require;

constexpr unsigned char k_seed[32] = {'j', 'i', 't', 'g', 'a', 't', 'e', '-', 'f', 'u', 'z', 'z', '-', 'g', 'r', 'a',
                                      'n', 't', '-', 'k', 'e', 'y', '-', 's', 'e', 'e', 'd', '-', '0', '0', '0', '1'};

struct Fixture {
    // The server's own signer (lib/grant_token), from a fixed seed.
    gt::SigningKey key =
        gt::SigningKey::from_seed("fuzz-1", std::string_view(reinterpret_cast<const char*>(k_seed), sizeof k_seed));
    gt::KeyRing ring;
    gt::Expected expected;

    Fixture() {
        ring.add_pem("fuzz-1", key.public_key_pem(), "fuzz");
        expected.request_id = "R-7F3K2Q";
        expected.nonce = "bm9uY2Utb2YtdGhlLWZ1enotaGFybmVzcy0wMDAwMDE";
        expected.host = "web-01";
        expected.user = "alice";
        expected.kind = "sudo";
        expected.scope = "command";
        expected.cmd_sha256 = "5b2b0e3f1c6f1a1e5f0a6c2f2d9b1b3b0c7b2c4f8e0a1d2c3b4a59687766554f";
        expected.approvals_needed = 2;
        expected.now_unix = 1795512100;
        expected.skew_s = 30;
    }

    // Any header and payload bytes (not only what gt::sign would make), signed with the key.
    std::string sign(const std::string& header, const std::string& payload) const {
        const std::string input =
            jitgate::text::base64url_encode(header) + "." + jitgate::text::base64url_encode(payload);
        return input + "." + jitgate::text::base64url_encode(key.sign_bytes(input));
    }
};

const Fixture& fixture() {
    static const Fixture f;
    return f;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const Fixture& f = fixture();
    const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    std::string jws = rest;
    if (data[0] & 1) {
        const auto nul = rest.find('\0');
        if (nul == std::string::npos) return 0;
        jws = f.sign(rest.substr(0, nul), rest.substr(nul + 1));
    }
    const gt::Verdict v = gt::verify(jws, f.ring, f.expected);
    if (!v.ok) {
        require(v.reason.rfind("grant: ", 0) == 0, "a refusal does not start with 'grant: '", v.reason);
        // The verifier's own markers for an exception it did not foresee, or a bad expectation;
        // a kid or claim in the token may quote the words "internal error" themselves.
        require(v.reason.rfind("grant: internal error: ", 0) != 0 &&
                    (v.reason.size() < 16 || v.reason.compare(v.reason.size() - 16, 16, "(internal error)") != 0),
                "an unforeseen exception", v.reason);
        jitgate::fuzz::require_printable(v.reason, "grant refusal");
        require(v.claims.rid.empty() && v.claims.approvers.empty(), "a refusal carries claims", v.reason);
        return 0;
    }
    const gt::Expected& e = f.expected;
    const gt::Claims& c = v.claims;
    require(c.kid == "fuzz-1", "accepted with another kid", jws);
    require(c.rid == e.request_id && c.nonce == e.nonce && c.host == e.host && c.sub == e.user && c.kind == e.kind &&
                c.scope == e.scope && c.cmd_sha256 == e.cmd_sha256,
            "accepted a grant for something else", jws);
    const std::set<std::string> distinct(c.approvers.begin(), c.approvers.end());
    require(distinct.size() == c.approvers.size() && c.approvers.size() >= static_cast<std::size_t>(e.approvals_needed),
            "accepted without enough distinct approvers", jws);
    require(distinct.count(e.user) == 0 && distinct.count("") == 0, "accepted a self- or empty approval", jws);
    require(c.nbf <= e.now_unix + e.skew_s && e.now_unix - e.skew_s < c.exp && c.nbf < c.exp,
            "accepted outside its time window", jws);
    return 0;
}
