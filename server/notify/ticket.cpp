// server/notify/ticket.cpp — the ticket check (see ticket.hpp).
#include "server/notify/ticket.hpp"

#include <charconv>
#include <cstdio>
#include <ctime>
#include <fstream>

#include "jitgate/error.hpp"
#include "jitgate/text.hpp"
#include "server/notify/notice.hpp"
#include "server/notify/transfer.hpp"

namespace jitgate::server::notify {

namespace {

using nlohmann::json;

std::string in_quotes(std::string_view text) {
    return "\"" + text::shown(text, 100) + "\"";
}

// A field's value as text for comparison and messages: a string as is, a number or a boolean
// as its JSON text; nullopt for null, objects and arrays.
std::optional<std::string> scalar_text(const json& value) {
    if (value.is_string()) return value.get<std::string>();
    if (value.is_boolean() || value.is_number()) return value.dump();
    return std::nullopt;
}

TicketAnswer no(std::string why) {
    return TicketAnswer{false, std::move(why)};
}

// Reads a time field: present, a string, and a date we understand.
std::optional<std::int64_t> read_time(const json& answer, const std::string& path, std::string& why) {
    const json* value = find_field(answer, path);
    if (value == nullptr) {
        why = "the ticket system's answer has no " + in_quotes(path);
        return std::nullopt;
    }
    if (!value->is_string()) {
        why = "the ticket system's " + in_quotes(path) + " is not a date string";
        return std::nullopt;
    }
    const auto at = parse_ticket_time(value->get_ref<const std::string&>());
    if (!at)
        why = "the ticket system's " + in_quotes(path) + " is " + in_quotes(value->get_ref<const std::string&>()) +
              ", not a date \"YYYY-MM-DD HH:MM:SS\"";
    return at;
}

bool digits(std::string_view text, std::size_t from, std::size_t count, int& out) {
    if (from + count > text.size()) return false;
    int value = 0;
    for (std::size_t i = from; i < from + count; ++i) {
        if (text[i] < '0' || text[i] > '9') return false;
        value = value * 10 + (text[i] - '0');
    }
    out = value;
    return true;
}

} // namespace

std::string TicketAnswer::to_json(std::int64_t checked_at) const {
    return json{{"ok", ok}, {"why", why}, {"checked_at", checked_at}}.dump(-1, ' ', false,
                                                                           json::error_handler_t::replace);
}

bool ticket_is_acceptable(std::string_view ticket) noexcept {
    if (ticket.empty() || ticket.size() > k_max_ticket_length) return false;
    for (const char c : ticket) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

std::string ticket_url(std::string_view url_template, std::string_view ticket) {
    static constexpr std::string_view k_placeholder = "{ticket}";
    const std::string encoded = url_encode(ticket);
    std::string out;
    std::size_t start = 0;
    for (std::size_t at; (at = url_template.find(k_placeholder, start)) != std::string_view::npos;
         start = at + k_placeholder.size()) {
        out.append(url_template.substr(start, at - start));
        out += encoded;
    }
    out.append(url_template.substr(start));
    return out;
}

const json* find_field(const json& doc, std::string_view path) {
    if (path.empty()) return nullptr;
    const json* at = &doc;
    std::size_t start = 0;
    for (;;) {
        const std::size_t dot = path.find('.', start);
        const std::string_view step = path.substr(start, dot == std::string_view::npos ? path.npos : dot - start);
        if (step.empty()) return nullptr;
        if (at->is_array()) {
            std::size_t index = 0;
            const auto [end, ec] = std::from_chars(step.data(), step.data() + step.size(), index);
            if (ec != std::errc() || end != step.data() + step.size() || index >= at->size()) return nullptr;
            at = &(*at)[index];
        } else if (at->is_object()) {
            const auto it = at->find(std::string(step));
            if (it == at->end()) return nullptr;
            at = &*it;
        } else {
            return nullptr;
        }
        if (dot == std::string_view::npos) return at;
        start = dot + 1;
    }
}

std::optional<std::int64_t> parse_ticket_time(std::string_view text) {
    if (!text.empty() && text.back() == 'Z') text.remove_suffix(1);
    // "YYYY-MM-DD HH:MM:SS" or with 'T'
    if (text.size() != 19 || text[4] != '-' || text[7] != '-' || (text[10] != ' ' && text[10] != 'T') ||
        text[13] != ':' || text[16] != ':')
        return std::nullopt;
    int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
    if (!digits(text, 0, 4, year) || !digits(text, 5, 2, month) || !digits(text, 8, 2, day) ||
        !digits(text, 11, 2, hour) || !digits(text, 14, 2, minute) || !digits(text, 17, 2, second))
        return std::nullopt;
    if (year < 1970 || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59)
        return std::nullopt;
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    const std::time_t t = ::timegm(&tm);
    // timegm normalises 2026-02-30 into March: such a date does not exist.
    if (t == static_cast<std::time_t>(-1) || tm.tm_mday != day || tm.tm_mon != month - 1) return std::nullopt;
    return static_cast<std::int64_t>(t);
}

TicketAnswer decide_ticket(const json& answer, const config::Config::TicketCheck& settings, std::int64_t now) {
    const json* approved = find_field(answer, settings.approved_field);
    if (approved == nullptr) return no("the ticket system's answer has no " + in_quotes(settings.approved_field));
    const auto approval = scalar_text(*approved);
    if (!approval) return no("the ticket system's " + in_quotes(settings.approved_field) + " is not a value");
    if (*approval != settings.approved_value)
        return no("the ticket is not approved (" + in_quotes(settings.approved_field) + " is " + in_quotes(*approval) +
                  ", not " + in_quotes(settings.approved_value) + ")");
    std::string why;
    const auto start = read_time(answer, settings.window_start_field, why);
    if (!start) return no(why);
    const auto end = read_time(answer, settings.window_end_field, why);
    if (!end) return no(why);
    if (now < *start) return no("the ticket's change window has not started (it starts " + rfc3339(*start) + ")");
    if (now > *end) return no("the ticket's change window is over (it ended " + rfc3339(*end) + ")");
    return TicketAnswer{true, "the ticket is approved and its change window (" + rfc3339(*start) + " to " +
                                  rfc3339(*end) + ") is open"};
}

TicketAnswer check_ticket(const config::Config::TicketCheck& settings, const std::string& token,
                          std::string_view ticket, std::int64_t now) {
    try {
        // SECURITY NOTE: the ticket is the requester's text. Refused before any call unless it
        // is plain, so it cannot change the URL's path or query (it is URL-encoded anyway).
        if (!ticket_is_acceptable(ticket))
            return no("the ticket " + in_quotes(ticket) +
                      " is not 1-100 characters of A-Z a-z 0-9 . _ - (refused without asking the ticket system)");
        if (settings.url.empty()) return no("no ticket system is configured (ticket_check.url)");
        transfer::Call call;
        call.method = "GET";
        call.url = ticket_url(settings.url, ticket);
        call.ca_file = settings.ca_file;
        call.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(settings.timeout);
        call.connect_timeout = std::min(call.connect_timeout, call.timeout);
        call.max_answer = k_max_ticket_answer;
        call.headers.push_back("Accept: application/json");
        if (!token.empty()) call.headers.push_back("Authorization: Bearer " + token);
        const transfer::Reply reply = transfer::perform(call);
        if (reply.answer_too_large) return no("the ticket system's answer is larger than 1 MiB");
        if (reply.curl_code != CURLE_OK) return no("cannot reach the ticket system: " + reply.error);
        if (reply.status != 200)
            return no("the ticket system answered " + std::to_string(reply.status) +
                      (reply.status >= 300 && reply.status < 400 ? " (redirects are not followed)" : ""));
        const json answer = json::parse(reply.answer, nullptr, false);
        if (answer.is_discarded()) return no("the ticket system's answer is not JSON");
        return decide_ticket(answer, settings, now);
    } catch (const std::bad_alloc&) {
        throw;
    } catch (const std::exception& e) {
        return no("the ticket check failed: " + text::shown(e.what(), 300));
    }
}

std::string read_token_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorCode::bad_input, "ticket_check", "cannot read token_file " + text::shown(path, 300));
    std::string token;
    std::getline(in, token);
    const auto last = token.find_last_not_of(" \t\r");
    token.erase(last == std::string::npos ? 0 : last + 1);
    const auto first = token.find_first_not_of(" \t");
    token.erase(0, first == std::string::npos ? token.size() : first);
    if (token.empty())
        throw Error(ErrorCode::bad_input, "ticket_check", "token_file " + text::shown(path, 300) + " is empty");
    // SECURITY NOTE: the token goes into a header line; a control character could add another.
    for (const char c : token) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F)
            throw Error(ErrorCode::bad_input, "ticket_check",
                        "token_file " + text::shown(path, 300) + " holds a control character");
    }
    return token;
}

TicketChecker::TicketChecker(config::Config::TicketCheck settings, Clock clock, std::size_t max_queue)
    : m_settings(std::move(settings)), m_clock(std::move(clock)), m_max_queue(max_queue) {
    if (!m_settings.token_file.empty()) m_token = read_token_file(m_settings.token_file);
    if (!m_clock)
        m_clock = [] {
            return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                .count();
        };
    m_thread = std::thread([this] { run(); });
}

TicketChecker::~TicketChecker() {
    stop();
}

bool TicketChecker::post(std::string ticket, Done done) {
    {
        std::lock_guard lock(m_mutex);
        if (m_stopping || m_queue.size() >= m_max_queue) return false;
        m_queue.emplace_back(std::move(ticket), std::move(done));
    }
    m_cv.notify_one();
    return true;
}

void TicketChecker::stop() noexcept {
    {
        std::lock_guard lock(m_mutex);
        m_stopping = true;
        m_queue.clear();
    }
    m_cv.notify_one();
    if (m_thread.joinable() && m_thread.get_id() != std::this_thread::get_id()) m_thread.join();
}

void TicketChecker::run() noexcept {
    for (;;) {
        std::pair<std::string, Done> job;
        {
            std::unique_lock lock(m_mutex);
            m_cv.wait(lock, [this] { return m_stopping || !m_queue.empty(); });
            if (m_stopping) return;
            job = std::move(m_queue.front());
            m_queue.pop_front();
        }
        try {
            const TicketAnswer answer = check_ticket(m_settings, m_token, job.first, m_clock());
            if (job.second) job.second(answer);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "jitgate-server: ticket check: %s\n", text::shown(e.what(), 500).c_str());
        } catch (...) {
            std::fprintf(stderr, "jitgate-server: ticket check: unknown exception\n");
        }
    }
}

} // namespace jitgate::server::notify
