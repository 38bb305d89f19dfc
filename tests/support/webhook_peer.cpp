// tests/support/webhook_peer.cpp — jitgate-test-webhook-peer, the other end of jitgate-server's
// webhooks and ticket check for the integration tests (never installed). One HTTPS listener on
// loopback (cpp-httplib with OpenSSL):
//
//   jitgate-test-webhook-peer --cert server.pem --key server.key --port-file FILE
//       --hooks FILE [--tickets DIR] [--listen 127.0.0.1]
//
//   POST /hook    appends one JSON line to --hooks and answers 200 {"ok":true}:
//                 {"body":"<the raw body>","signature":"<Jitgate-Signature>",
//                  "delivery":"<Jitgate-Delivery>"} (a missing header is ""; bytes that are not
//                 UTF-8 become U+FFFD, so the signature then fails to verify, as it should).
//                 Each line is written with one write() and fsync'ed before the answer.
//   GET  /api/now/table/change_request?number=N
//                 ServiceNow's Table API shape: answers 200 with the bytes of DIR/N.json
//                 (application/json) when that file exists, else 404 {"error":...}. N must be
//                 1-100 characters of [A-Za-z0-9._-] (else 400), so it never names a path
//                 outside DIR. The files are read at each call: a test may change an answer.
//   Anything else: 404.
//
// The port (chosen by the kernel) is written to --port-file once listening, through a temporary
// file and rename(), so a reader never sees half of it. Exits 0 on SIGTERM/SIGINT; start-up
// errors go to stderr with exit status 1.
#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include <httplib.h>

#include <nlohmann/json.hpp>

namespace {

using nlohmann::json;

struct Options {
    std::string cert;
    std::string key;
    std::string port_file;
    std::string hooks;
    std::string tickets;
    std::string listen = "127.0.0.1";
};

[[noreturn]] void usage(const std::string& why) {
    throw std::runtime_error(why + "\nusage: jitgate-test-webhook-peer --cert PEM --key PEM --port-file FILE "
                                   "--hooks FILE [--tickets DIR] [--listen ADDRESS]");
}

Options parse_options(int argc, char** argv) {
    Options o;
    const std::map<std::string, std::string*> flags = {{"--cert", &o.cert},           {"--key", &o.key},
                                                       {"--port-file", &o.port_file}, {"--hooks", &o.hooks},
                                                       {"--tickets", &o.tickets},     {"--listen", &o.listen}};
    for (int i = 1; i < argc; i += 2) {
        const auto it = flags.find(argv[i]);
        if (it == flags.end()) usage(std::string("unknown option ") + argv[i]);
        if (i + 1 >= argc) usage(std::string(argv[i]) + " needs a value");
        *it->second = argv[i + 1];
    }
    if (o.cert.empty() || o.key.empty() || o.port_file.empty() || o.hooks.empty())
        usage("--cert, --key, --port-file and --hooks are required");
    return o;
}

bool ticket_number_ok(std::string_view n) {
    if (n.empty() || n.size() > 100) return false;
    for (const char c : n) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '_' || c == '-';
        if (!ok) return false;
    }
    return n != "." && n != "..";
}

void write_all(int fd, const std::string& data) {
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw std::runtime_error(std::string("write failed: ") + std::strerror(errno));
        done += static_cast<std::size_t>(n);
    }
}

void write_port_file(const std::string& path, int port) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
    write_all(fd, std::to_string(port) + "\n");
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0)
        throw std::runtime_error("cannot rename " + tmp + ": " + std::strerror(errno));
}

class Peer {
public:
    explicit Peer(Options o) : m_o(std::move(o)) {
        m_hooks_fd = ::open(m_o.hooks.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (m_hooks_fd < 0) throw std::runtime_error("cannot open " + m_o.hooks + ": " + std::strerror(errno));
    }

    void routes(httplib::Server& server) {
        server.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
            const json line = {{"body", req.body},
                               {"signature", req.get_header_value("Jitgate-Signature")},
                               {"delivery", req.get_header_value("Jitgate-Delivery")}};
            {
                std::lock_guard lock(m_mutex);
                write_all(m_hooks_fd, line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
                ::fsync(m_hooks_fd);
            }
            res.set_content(R"({"ok":true})", "application/json");
        });
        server.Get("/api/now/table/change_request", [this](const httplib::Request& req, httplib::Response& res) {
            const std::string number = req.get_param_value("number");
            if (!ticket_number_ok(number)) {
                res.status = 400;
                res.set_content(R"({"error":"bad number"})", "application/json");
                return;
            }
            std::ifstream in(m_o.tickets + "/" + number + ".json", std::ios::binary);
            if (m_o.tickets.empty() || !in) {
                res.status = 404;
                res.set_content(R"({"error":"no such change request"})", "application/json");
                return;
            }
            std::ostringstream text;
            text << in.rdbuf();
            res.set_content(text.str(), "application/json");
        });
    }

private:
    Options m_o;
    int m_hooks_fd = -1;
    std::mutex m_mutex;
};

int run(int argc, char** argv) {
    const Options options = parse_options(argc, argv);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    Peer peer(options);
    httplib::SSLServer server(options.cert.c_str(), options.key.c_str());
    if (!server.is_valid()) throw std::runtime_error("cannot load " + options.cert + " / " + options.key);
    server.set_socket_options([](int sock) {
        const int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    peer.routes(server);
    const int port = server.bind_to_any_port(options.listen);
    if (port < 0) throw std::runtime_error("cannot listen on " + options.listen);
    write_port_file(options.port_file, port);
    std::thread([&server] {
        if (!server.listen_after_bind()) std::fprintf(stderr, "jitgate-test-webhook-peer: the listener failed\n");
        ::kill(::getpid(), SIGUSR1);
    }).detach();

    int sig = 0;
    while (sigwait(&stop_signals, &sig) != 0) {
    }
    std::fflush(nullptr);
    std::_Exit(sig == SIGUSR1 ? 1 : 0);
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jitgate-test-webhook-peer: %s\n", e.what());
    }
    return 1;
}
