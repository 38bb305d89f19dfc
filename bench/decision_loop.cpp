// decision_loop — a fixed number of fast-path decisions through the client library, for
// counting instructions per decision (bench/callgrind_decisions.sh), not for timing.
//
// usage (as root): decision_loop SOCKET ping          wait until the daemon answers (<= 60 s)
//                  decision_loop SOCKET approve       file /usr/bin/id granted and approve it
//                  decision_loop SOCKET rule|grant N  N decisions: allow rule (/usr/bin/true) or
//                                                     the live grant (/usr/bin/id granted)
// Like jitgate_bench section 1: the requester is "nobody" with euid 0 (as a setuid sudo is),
// the approver root; the daemon's config is bench/callgrind_decisions.sh's (the bench's rules).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "jitgate/client.hpp"
#include "jitgate/messages.hpp"

namespace {

using jitgate::wire::Json;

constexpr uid_t k_requester_uid = 65534; // "nobody"

jitgate::msg::CheckRequest request_for(std::vector<std::string> argv) {
    jitgate::msg::CheckRequest r;
    r.user = "nobody";
    r.uid = k_requester_uid;
    r.pid = getpid();
    r.runas_user = "root";
    r.runas_uid = 0;
    r.command = argv.front();
    r.run_argv = std::move(argv);
    return r;
}

bool decide(const jitgate::client::Options& opts, const jitgate::msg::CheckRequest& r) {
    jitgate::msg::Decision d;
    return jitgate::client::run_check(opts, r, {}, nullptr, d).ok() && d.allow;
}

// Files the grant's request from a waiting thread (as nobody) and approves it as root.
bool approve(const jitgate::client::Options& opts) {
    bool allowed = false;
    std::thread waiter([&] { allowed = decide(opts, request_for({"/usr/bin/id", "granted"})); });
    std::string id;
    for (int i = 0; i < 20000 && id.empty(); ++i) {
        std::vector<Json> r;
        if (jitgate::client::request(opts, Json{{"type", "pending"}}, r).ok())
            for (const auto& m : r)
                if (m.value("type", "") == "item") id = m["item"]["id"];
        if (id.empty()) usleep(1000);
    }
    std::vector<Json> r;
    const bool sent = !id.empty() && jitgate::client::request(opts, Json{{"type", "approve"}, {"id", id}}, r).ok();
    waiter.join();
    return sent && allowed;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3 || geteuid() != 0) {
        std::fprintf(stderr, "usage (as root): %s SOCKET ping|approve|rule N|grant N\n", argv[0]);
        return 2;
    }
    jitgate::client::Options opts;
    opts.socket_path = argv[1];
    const std::string what = argv[2];
    if (what == "ping") {
        for (int i = 0; i < 600; ++i) {
            std::vector<Json> r;
            if (jitgate::client::request(opts, Json{{"type", "ping"}}, r).ok()) return 0;
            usleep(100000);
        }
        return 1;
    }
    if (setresuid(k_requester_uid, 0, 0) != 0) {
        std::perror("setresuid");
        return 1;
    }
    if (what == "approve") return approve(opts) ? 0 : 1;
    if ((what != "rule" && what != "grant") || argc < 4) return 2;
    const auto r = what == "rule" ? request_for({"/usr/bin/true"}) : request_for({"/usr/bin/id", "granted"});
    const long n = std::atol(argv[3]);
    for (long i = 0; i < n; ++i)
        if (!decide(opts, r)) {
            std::fprintf(stderr, "decision %ld: denied\n", i);
            return 1;
        }
    return 0;
}
