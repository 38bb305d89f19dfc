// tests/unit/test_server_web_pages.cpp — the approvers' HTML pages (server/web/pages.hpp): every
// piece of hostile text (argv, env, reason, ticket, comments, names) comes out escaped, in text
// and in attributes; control and bidi characters are visible; a broken request body shows
// "(missing)" instead of crashing; the forms carry the CSRF token and a denial needs a comment.
//
// The structural check (only_our_markup) parses every tag of a page and accepts only the tags
// and attributes the pages themselves write, with quoted values: hostile text that became
// markup anywhere fails it, wherever it lands.
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>
#include <vector>

#include "server/web/pages.hpp"

#include <jitgate/text.hpp>
#include <nlohmann/json.hpp>

namespace {

namespace pages = jitgate::server::web::pages;
namespace store = jitgate::server::store;
using jitgate::server::service::Decidability;
using nlohmann::json;

const std::string k_rlo = "\xe2\x80\xae";  // U+202E RIGHT-TO-LEFT OVERRIDE
const std::string k_zwsp = "\xe2\x80\x8b"; // U+200B ZERO WIDTH SPACE

// Fails the test for any tag or attribute the pages do not write themselves (`extra_tags` and
// `extra_attributes`: what the auditors' pages write besides).
void only_our_markup(const std::string& page, const std::set<std::string>& extra_tags = {},
                     const std::set<std::string>& extra_attributes = {}) {
    static const std::set<std::string> k_tags = {
        "!DOCTYPE", "html", "head",    "meta",    "title", "link",  "body",     "header", "nav",
        "ul",       "li",   "a",       "p",       "span",  "form",  "input",    "button", "main",
        "h1",       "h2",   "table",   "caption", "thead", "tbody", "tr",       "th",     "td",
        "code",     "pre",  "section", "div",     "label", "br",    "textarea", "strong", "time"};
    static const std::set<std::string> k_attributes = {
        "lang",  "charset",  "name",   "content", "rel",   "href", "class", "aria-label", "aria-labelledby",
        "id",    "method",   "action", "type",    "value", "for",  "rows",  "cols",       "required",
        "scope", "datetime", "role",   "html"};
    static const std::regex k_attribute(R"(^\s+([a-zA-Z-]+)(="[^"<>]*")?)");
    std::size_t pos = 0;
    int tags = 0;
    while ((pos = page.find('<', pos)) != std::string::npos) {
        const auto end = page.find('>', pos);
        ASSERT_NE(end, std::string::npos) << "an unclosed tag at " << pos;
        std::string tag = page.substr(pos + 1, end - pos - 1);
        pos = end + 1;
        if (!tag.empty() && tag.front() == '/') tag.erase(0, 1);
        const auto name_end = tag.find_first_of(" \t\n");
        const std::string name = tag.substr(0, name_end);
        EXPECT_TRUE(k_tags.count(name) == 1 || extra_tags.count(name) == 1)
            << "unexpected tag <" << name << "> in: <" << tag << ">";
        std::string rest = name_end == std::string::npos ? std::string() : tag.substr(name_end);
        std::smatch m;
        while (std::regex_search(rest, m, k_attribute)) {
            EXPECT_TRUE(k_attributes.count(m[1].str()) == 1 || extra_attributes.count(m[1].str()) == 1)
                << "unexpected attribute " << m[1] << " in <" << tag << ">";
            rest = m.suffix();
        }
        EXPECT_TRUE(rest.find_first_not_of(" \t\n") == std::string::npos) << "unparsed tag text: <" << tag << ">";
        ++tags;
    }
    EXPECT_GT(tags, 10);
    EXPECT_EQ(page.find("style="), std::string::npos);
    EXPECT_EQ(page.find("<script"), std::string::npos);
}

// No raw control, bidi or zero-width character reaches a page.
void nothing_invisible(const std::string& page) {
    for (const char c : page) {
        const auto u = static_cast<unsigned char>(c);
        EXPECT_FALSE(u < 0x20 && c != '\n') << "control byte " << static_cast<int>(u);
        EXPECT_NE(u, 0x7F);
    }
    EXPECT_TRUE(jitgate::text::is_valid_utf8(page));
    EXPECT_EQ(page.find(k_rlo), std::string::npos);
    EXPECT_EQ(page.find(k_zwsp), std::string::npos);
}

json normal_body() {
    return json::parse(R"({
      "protocol": 1, "id": "R-7F3K9Q", "nonce": "q1xJr0b3c8Rk6fYgZ0HkK5P4n2mW9sVtLqE1dA7uC3o",
      "host": "pay-db-01", "host_environment": "production", "host_tags": ["finance"],
      "requester": {"user": "alice", "uid": 2001, "login_uid": 2001, "login_user": "alice"},
      "account": {"user": "alice", "uid": 2001},
      "kind": "sudo", "scope": "command",
      "action": {"command": "/usr/bin/systemctl", "argv": ["/usr/bin/systemctl", "restart", "nginx"],
                 "display": "/usr/bin/systemctl restart nginx", "runas": "root", "runas_group": "root",
                 "cwd": "/home/alice", "chroot": "", "program": "/usr/bin/systemctl", "env": [],
                 "env_code_loading": [], "tty": "/dev/pts/3", "service": "", "remote_host": "",
                 "cmd_sha256": "7b9c9c6941391da209129e4c89d8a4bb2665a33870a965fafa307678db3d732b"},
      "reason": "restart after config change", "ticket": "CHG0001234", "rule": "finance",
      "approvals_needed": 2, "approver_groups": ["sox-approvers"], "ttl_s": 900, "timeout_s": 1800})");
}

store::Request request_with(const json& body) {
    store::Request r;
    r.host = "pay-db-01";
    r.id = "R-7F3K9Q";
    r.body = body.dump();
    r.requester = "alice";
    r.rule = "finance";
    r.approvals_needed = 2;
    r.approver_groups = {"sox-approvers"};
    r.created_at = 1'700'000'000;
    r.expires_at = 1'700'001'800;
    return r;
}

const std::int64_t k_now = 1'700'000'100;

pages::Viewer viewer(const std::string& csrf = "csrf-token-value") {
    return {"bob", "Bob Builder", csrf};
}

std::string detail(const store::Request& r, bool may_decide = true, const std::string& why_not = "") {
    const pages::Viewer v = viewer();
    return pages::request_detail({"Example", &v}, r, Decidability{may_decide, why_not, may_decide, why_not}, k_now);
}

TEST(WebPages, HtmlEscapeCoversTheFiveCharacters) {
    EXPECT_EQ(pages::html_escape(R"(<a href="x" title='y'>&</a>)"),
              "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
    EXPECT_EQ(pages::html_escape("plain text"), "plain text");
}

TEST(WebPages, ExactTextMakesControlBidiAndBadBytesVisible) {
    EXPECT_EQ(pages::exact_text("\x1b[31mred"), "\\x1b[31mred");
    EXPECT_EQ(pages::exact_text("evil" + k_rlo + "txt.sh"), "evil\\u{202e}txt.sh");
    EXPECT_EQ(pages::exact_text("a" + k_zwsp + "b"), "a\\u{200b}b");
    EXPECT_EQ(pages::exact_text("\xff<"), "\\xff&lt;");
    EXPECT_EQ(pages::exact_text("line\nnext"), "line\\nnext");
    EXPECT_EQ(pages::exact_text("back\\slash"), "back\\\\slash");
    EXPECT_EQ(pages::exact_text("caf\xc3\xa9"), "caf\xc3\xa9"); // ordinary UTF-8 stays readable
}

TEST(WebPages, HostTextKeepsTheHostsEscapesButEscapesWhatItMissed) {
    EXPECT_EQ(pages::host_text("echo \\x1b[31m \\\\ done"), "echo \\x1b[31m \\\\ done");
    EXPECT_EQ(pages::host_text("raw" + k_rlo + "\\x07\x07"), "raw\\u{202e}\\x07\\x07");
    EXPECT_EQ(pages::host_text("<i>'"), "&lt;i&gt;&#39;");
    EXPECT_EQ(pages::host_text("trailing\\"), "trailing\\");
}

TEST(WebPages, NormalRequestShowsEveryFact) {
    store::Request r = request_with(normal_body());
    store::Approval a;
    a.approver = "carol";
    a.identity = "https://idp.example.com/ 1234";
    a.comment = "ok by me";
    a.via = "web";
    a.source_address = "192.0.2.7";
    a.at = 1'700'000'050;
    r.approvals.push_back(a);
    r.ticket_check = R"({"approved": true, "window": "2023-11-14"})";
    const std::string page = detail(r);
    only_our_markup(page);
    nothing_invisible(page);
    for (const char* expected : {"pay-db-01",
                                 "production",
                                 "finance",
                                 "alice (uid 2001)",
                                 "/usr/bin/systemctl restart nginx",
                                 "<td>0</td><td><code>/usr/bin/systemctl</code>",
                                 "<td>2</td><td><code>nginx</code>",
                                 "/home/alice",
                                 "/dev/pts/3",
                                 "<th scope=\"row\">Command path</th><td>/usr/bin/systemctl</td>",
                                 "restart after config change",
                                 "CHG0001234",
                                 "&quot;approved&quot;: true",
                                 "carol",
                                 "ok by me",
                                 "1 of 2 needed",
                                 "28 min 20 s",
                                 "sox-approvers",
                                 "2023-11-14 22:14:10 UTC",
                                 "pending"})
        EXPECT_NE(page.find(expected), std::string::npos) << expected;
    EXPECT_EQ(page.find("role=\"alert\""), std::string::npos) << "no warning for an ordinary request";
}

TEST(WebPages, HostileTextIsEscapedEverywhere) {
    json body = normal_body();
    body["action"]["argv"] =
        json::array({"/bin/sh", "<script>alert(1)</script>", "\"'><img src=x onerror=alert(1)>",
                     "evil" + k_rlo + "hs.txt", json{{"b64", jitgate::text::base64_encode("\xff\xfe<b>")}}});
    body["action"]["display"] = "<script>alert('display')</script>";
    body["action"]["cwd"] = "/tmp/\"><script>";
    body["reason"] = "<script>alert('reason')</script>" + k_rlo;
    body["ticket"] = "CHG\" onmouseover=\"alert(1)";
    body["host_tags"] = json::array({"<b>tag</b>"});
    body["host_environment"] = "prod'\"><svg onload=alert(1)>";
    body["requester"]["user"] = "mallory" + k_zwsp;
    body["action"]["env"] = json::array({"LD_PRELOAD=/tmp/<evil>.so", "NOTE=a" + k_rlo + "b"});
    body["action"]["env_code_loading"] = json::array({"LD_PRELOAD"});
    store::Request r = request_with(body);
    r.rule = "<rule>";
    r.approver_groups = {"<grp>"};
    store::Approval a;
    a.approver = "carol<";
    a.identity = "https://idp/ \"sub\"";
    a.comment = "</td></tr></table><script>alert('comment')</script>";
    r.approvals.push_back(a);
    r.ticket_check = R"({"note": "<script>x</script>)" + k_rlo + R"("})";
    const std::string page = detail(r);
    only_our_markup(page);
    nothing_invisible(page);
    EXPECT_NE(page.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
    EXPECT_NE(page.find("&quot;&#39;&gt;&lt;img src=x onerror=alert(1)&gt;"), std::string::npos);
    EXPECT_NE(page.find("evil\\u{202e}hs.txt"), std::string::npos);
    EXPECT_NE(page.find("\\xff\\xfe&lt;b&gt;"), std::string::npos);
    EXPECT_NE(page.find("not UTF-8: decoded from base64"), std::string::npos);
    EXPECT_NE(page.find("CHG&quot; onmouseover=&quot;alert(1)"), std::string::npos);
    EXPECT_NE(page.find("mallory\\u{200b}"), std::string::npos);
    EXPECT_NE(page.find("&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;script&gt;"), std::string::npos);
}

TEST(WebPages, CodeLoadingEnvironmentIsAWarning) {
    json body = normal_body();
    body["action"]["env"] =
        json::array({"LD_PRELOAD=/tmp/x.so", "LANG=C", json{{"b64", jitgate::text::base64_encode("X=\xff")}}});
    body["action"]["env_code_loading"] = json::array({"LD_PRELOAD"});
    const std::string page = detail(request_with(body));
    only_our_markup(page);
    EXPECT_NE(page.find("<div class=\"warning\" role=\"alert\">"), std::string::npos);
    EXPECT_NE(page.find("load or run other code: <code>LD_PRELOAD</code>"), std::string::npos);
    EXPECT_NE(page.find("<tr class=\"warning\"><td><code>LD_PRELOAD</code></td><td><code>/tmp/x.so</code>"),
              std::string::npos);
    EXPECT_NE(page.find("<tr><td><code>LANG</code></td><td><code>C</code></td><td></td></tr>"), std::string::npos);
    EXPECT_NE(page.find("<td><code>X</code></td><td><code>\\xff</code></td><td>not UTF-8: decoded from base64, bytes "
                        "shown as \\xNN</td>"),
              std::string::npos);
}

TEST(WebPages, MissingAndMistypedMembersShowMissing) {
    for (const std::string& text :
         {std::string("{}"), std::string("[]"), std::string("not json at all"), std::string(""),
          std::string(R"({"action": 5, "requester": "x", "host_tags": "a", "reason": 7, "ticket": null})"),
          std::string(R"({"action": {"argv": [5, {"b64": "!!"}, {"b64": 1}, {"x": "y"}], "env": ["NOEQUALS", 3]}})")}) {
        store::Request r = request_with(normal_body());
        r.body = text;
        const std::string page = detail(r);
        SCOPED_TRACE(text);
        only_our_markup(page);
        nothing_invisible(page);
        EXPECT_NE(page.find("(missing)"), std::string::npos);
        // The store's own facts still show.
        EXPECT_NE(page.find("pay-db-01"), std::string::npos);
        EXPECT_NE(page.find("R-7F3K9Q"), std::string::npos);
    }
    store::Request bad = request_with(normal_body());
    bad.body = "not json";
    EXPECT_NE(detail(bad).find("not a JSON object"), std::string::npos);
    store::Request other = request_with(normal_body());
    other.body = R"({"action": {"argv": [5, {"b64": "!!"}]}})";
    EXPECT_NE(detail(other).find("invalid base64"), std::string::npos);
}

TEST(WebPages, BodyNamingAnotherHostIsAWarning) {
    json body = normal_body();
    body["host"] = "other-host";
    const std::string page = detail(request_with(body));
    EXPECT_NE(page.find("role=\"alert\""), std::string::npos);
    EXPECT_NE(page.find("names the host other-host"), std::string::npos);
}

TEST(WebPages, FormsCarryTheCsrfTokenAndDenyNeedsAComment) {
    const std::string page = detail(request_with(normal_body()));
    only_our_markup(page);
    EXPECT_NE(page.find("<form method=\"post\" action=\"/r/pay-db-01/R-7F3K9Q/approve\""), std::string::npos);
    EXPECT_NE(page.find("<form method=\"post\" action=\"/r/pay-db-01/R-7F3K9Q/deny\""), std::string::npos);
    std::size_t csrf_fields = 0;
    for (std::size_t p = 0;
         (p = page.find("<input type=\"hidden\" name=\"csrf\" value=\"csrf-token-value\">", p)) != std::string::npos;
         ++p)
        ++csrf_fields;
    EXPECT_EQ(csrf_fields, 3u) << "approve, deny and sign-out";
    EXPECT_NE(page.find("<textarea id=\"deny-comment\" name=\"comment\" rows=\"3\" cols=\"60\" required>"),
              std::string::npos);
    EXPECT_NE(page.find("<textarea id=\"approve-comment\" name=\"comment\" rows=\"3\" cols=\"60\"></textarea>"),
              std::string::npos)
        << "an approval's comment is optional";
    EXPECT_NE(page.find("<label for=\"deny-comment\">"), std::string::npos);
    EXPECT_NE(page.find("<label for=\"approve-comment\">"), std::string::npos);
}

TEST(WebPages, CsrfTokenIsEscapedInItsAttribute) {
    const pages::Viewer v = viewer("\"><script>alert(1)</script>");
    const std::string page =
        pages::request_detail({"Example", &v}, request_with(normal_body()), Decidability{true, "", true, ""}, k_now);
    only_our_markup(page);
    EXPECT_NE(page.find("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""), std::string::npos);
}

// The revoke form says when the grant expires; for one that expired already, that it has
// nothing left to end on the host (sessions kept past it under on_expiry: keep stay).
TEST(WebPages, TheRevokeFormSaysWhenTheGrantExpires) {
    const pages::Viewer v = viewer();
    store::Request r = request_with(normal_body());
    r.status = store::Status::approved;
    r.grant_id = "G-1";
    const auto with_exp = [](std::int64_t exp) {
        return "eyJhbGciOiJFZERTQSJ9." + jitgate::text::base64url_encode(R"({"exp":)" + std::to_string(exp) + "}") +
               ".c2ln";
    };
    r.grant = with_exp(k_now - 60);
    std::string page =
        pages::request_detail({"Example", &v}, r, Decidability{false, "x", false, "x"}, k_now, nullptr, true);
    EXPECT_NE(page.find("/revoke\""), std::string::npos);
    EXPECT_NE(page.find("This grant expired"), std::string::npos);
    EXPECT_NE(page.find("nothing left to end on the host"), std::string::npos);
    EXPECT_NE(page.find("on_expiry: keep"), std::string::npos);
    EXPECT_EQ(page.find("<textarea id=\"revoke-comment\""), std::string::npos) << "one line";
    r.grant = with_exp(k_now + 600);
    page = pages::request_detail({"Example", &v}, r, Decidability{false, "x", false, "x"}, k_now, nullptr, true);
    EXPECT_NE(page.find("The grant expires"), std::string::npos);
    EXPECT_EQ(page.find("nothing left to end"), std::string::npos);
    r.grant = "not a jws";
    page = pages::request_detail({"Example", &v}, r, Decidability{false, "x", false, "x"}, k_now, nullptr, true);
    EXPECT_NE(page.find("/revoke\""), std::string::npos) << "an unreadable grant is still revocable";
}

TEST(WebPages, NoFormsWhenTheViewerMayNotDecide) {
    const std::string page = detail(request_with(normal_body()), false, "this is your own request <b>");
    only_our_markup(page);
    EXPECT_EQ(page.find("/approve\""), std::string::npos);
    EXPECT_EQ(page.find("/deny\""), std::string::npos);
    EXPECT_NE(page.find("You cannot decide this request: this is your own request &lt;b&gt;"), std::string::npos);

    store::Request final_request = request_with(normal_body());
    final_request.status = store::Status::denied;
    final_request.decided_by = "carol";
    final_request.decision_reason = "not in the window";
    final_request.decided_at = 1'700'000'090;
    const std::string final_page = detail(final_request, true);
    EXPECT_EQ(final_page.find("/approve\""), std::string::npos);
    EXPECT_NE(final_page.find("This request is final (denied)"), std::string::npos);
    EXPECT_NE(final_page.find("carol: not in the window"), std::string::npos);
}

// The bug: the page offered Deny only together with Approve, so while a ticket check had not
// passed nobody could deny through the page, though the service accepts that denial.
TEST(WebPages, DenyIsOfferedWhileApprovalIsBlocked) {
    const pages::Viewer v = viewer();
    const Decidability blocked{false, "the ticket check has not passed: <no> ticket", true, ""};
    const std::string page = pages::request_detail({"Example", &v}, request_with(normal_body()), blocked, k_now);
    only_our_markup(page);
    EXPECT_EQ(page.find("/approve\""), std::string::npos);
    EXPECT_NE(page.find("<form method=\"post\" action=\"/r/pay-db-01/R-7F3K9Q/deny\""), std::string::npos);
    EXPECT_NE(page.find("You cannot approve this request: the ticket check has not passed: &lt;no&gt; ticket"),
              std::string::npos);
    EXPECT_EQ(page.find("You cannot decide this request"), std::string::npos);

    // And the other way round (not something the service answers today, but the page follows
    // the two answers separately).
    const Decidability deny_blocked{true, "", false, "no"};
    const std::string other = pages::request_detail({"Example", &v}, request_with(normal_body()), deny_blocked, k_now);
    EXPECT_NE(other.find("/approve\""), std::string::npos);
    EXPECT_EQ(other.find("/deny\""), std::string::npos);
    EXPECT_NE(other.find("You cannot deny this request: no"), std::string::npos);

    const std::vector<pages::PendingRow> rows = {{request_with(normal_body()), blocked}};
    const std::string list = pages::pending({"Example", &v}, rows, k_now, std::nullopt, false);
    EXPECT_NE(list.find("<strong>you may deny</strong>; <span class=\"why-not\">approving is blocked: the ticket "
                        "check has not passed: &lt;no&gt; ticket</span>"),
              std::string::npos);
}

TEST(WebPages, PendingListShowsEachRequestAndWhoMayDecide) {
    json login = normal_body();
    login["kind"] = "login";
    login["scope"] = "login";
    login["account"]["user"] = "root";
    login["action"]["service"] = "sshd";
    login["action"]["remote_host"] = "198.51.100.4";
    store::Request second = request_with(login);
    second.host = "web<01>";
    second.id = "R-AAAA";
    const std::vector<pages::PendingRow> rows = {
        {request_with(normal_body()), {true, "", true, ""}},
        {second,
         {false, "not in an approver group of this request", false, "not in an approver group of this request"}}};
    const pages::Viewer v = viewer();
    const std::string page = pages::pending({"Example", &v}, rows, k_now, std::string("/?after=1000&skip=2"), false);
    only_our_markup(page);
    nothing_invisible(page);
    EXPECT_NE(page.find("<a href=\"/r/pay-db-01/R-7F3K9Q\">R-7F3K9Q</a>"), std::string::npos);
    EXPECT_NE(page.find("<a href=\"/r/web%3C01%3E/R-AAAA\">R-AAAA</a>"), std::string::npos);
    EXPECT_NE(page.find("web&lt;01&gt;"), std::string::npos);
    EXPECT_NE(page.find("log in as root via sshd from 198.51.100.4"), std::string::npos);
    EXPECT_NE(page.find("<code>/usr/bin/systemctl restart nginx</code>"), std::string::npos);
    EXPECT_NE(page.find("0 of 2"), std::string::npos);
    EXPECT_NE(page.find("28 min 20 s"), std::string::npos);
    EXPECT_NE(page.find("you may decide"), std::string::npos);
    EXPECT_NE(page.find("not in an approver group of this request"), std::string::npos);
    EXPECT_NE(page.find("2 requests waiting"), std::string::npos);
    EXPECT_NE(page.find("More requests may be waiting"), std::string::npos);
    EXPECT_NE(page.find("<a href=\"/?after=1000&amp;skip=2\">Newer pending requests</a>"), std::string::npos);
    EXPECT_NE(page.find("<th scope=\"col\">Host</th>"), std::string::npos);

    const std::string empty = pages::pending({"Example", &v}, {}, k_now, std::nullopt, false);
    only_our_markup(empty);
    EXPECT_NE(empty.find("Nothing is waiting"), std::string::npos);
    // A page that read only requests the viewer may not see still leads on.
    const std::string skipped = pages::pending({"Example", &v}, {}, k_now, std::string("/?after=1000&skip=2"), true);
    only_our_markup(skipped);
    EXPECT_EQ(skipped.find("Nothing is waiting"), std::string::npos);
    EXPECT_NE(skipped.find("more are waiting"), std::string::npos);
    EXPECT_NE(skipped.find("Newer pending requests</a>"), std::string::npos);
}

TEST(WebPages, HistoryKeepsTheOrderAndNamesWhoDecided) {
    store::Request approved = request_with(normal_body());
    approved.id = "R-NEWER";
    approved.status = store::Status::approved;
    approved.decided_at = 1'700'000'500;
    store::Approval a1, a2;
    a1.approver = "carol";
    a2.approver = "dave";
    approved.approvals = {a1, a2};
    store::Request denied = request_with(normal_body());
    denied.id = "R-OLDER";
    denied.status = store::Status::denied;
    denied.decided_at = 1'700'000'400;
    denied.decided_by = "erin";
    denied.decision_reason = "<no>";
    const pages::Viewer v = viewer();
    const std::string page = pages::history({"Example", &v}, {approved, denied}, 1'700'000'400);
    only_our_markup(page);
    const auto newer = page.find("R-NEWER");
    const auto older = page.find("R-OLDER");
    ASSERT_NE(newer, std::string::npos);
    ASSERT_NE(older, std::string::npos);
    EXPECT_LT(newer, older);
    EXPECT_NE(page.find("carol, dave"), std::string::npos);
    EXPECT_NE(page.find("erin: &lt;no&gt;"), std::string::npos);
    EXPECT_NE(page.find("href=\"/history?before=1700000400\""), std::string::npos);
}

TEST(WebPages, SignInLinkKeepsOnlyALocalReturnPath) {
    const std::string page = pages::sign_in({"Example", nullptr}, "Your session ended <again>.", "/r/h/R-1234");
    only_our_markup(page);
    EXPECT_NE(page.find("href=\"/login?return_to=%2Fr%2Fh%2FR-1234\""), std::string::npos);
    EXPECT_NE(page.find("Your session ended &lt;again&gt;."), std::string::npos);
    EXPECT_EQ(page.find("Sign out"), std::string::npos) << "nobody is signed in";
    const std::string evil = pages::sign_in({"Example", nullptr}, "", "//evil.example.com/");
    EXPECT_NE(evil.find("href=\"/login?return_to=%2F\""), std::string::npos);
    EXPECT_EQ(evil.find("evil.example.com"), std::string::npos);
}

TEST(WebPages, ErrorAndResultPagesEscapeTheirMessage) {
    const std::string error = pages::error_page({"Ex<ample>", nullptr}, 403, "no <b>way</b>" + k_rlo);
    only_our_markup(error);
    nothing_invisible(error);
    EXPECT_NE(error.find("Error 403"), std::string::npos);
    EXPECT_NE(error.find("no &lt;b&gt;way&lt;/b&gt;\\u{202e}"), std::string::npos);
    EXPECT_NE(error.find("Ex&lt;ample&gt;"), std::string::npos);

    const pages::Viewer v = viewer();
    const std::string result = pages::action_result({"Example", &v}, "h", "R-1234", false, "already \"voted\"");
    only_our_markup(result);
    EXPECT_NE(result.find("Not done"), std::string::npos);
    EXPECT_NE(result.find("already &quot;voted&quot;"), std::string::npos);
    EXPECT_NE(result.find("href=\"/r/h/R-1234\""), std::string::npos);
}

TEST(WebPages, TimesAndDurations) {
    EXPECT_EQ(pages::format_time(1'700'000'000), "2023-11-14 22:13:20 UTC");
    EXPECT_EQ(pages::format_time(0), "-");
    EXPECT_EQ(pages::format_time_left(0), "expired");
    EXPECT_EQ(pages::format_time_left(-5), "expired");
    EXPECT_EQ(pages::format_time_left(45), "45 s");
    EXPECT_EQ(pages::format_time_left(250), "4 min 10 s");
    EXPECT_EQ(pages::format_time_left(3900), "1 h 5 min");
}

TEST(WebPages, StylesheetIsPlainCss) {
    const std::string css(pages::stylesheet());
    EXPECT_NE(css.find("body {"), std::string::npos);
    EXPECT_EQ(css.find("url("), std::string::npos); // nothing fetched from elsewhere (CSP: default-src 'none')
    EXPECT_EQ(css.find("@import"), std::string::npos);
    EXPECT_EQ(css.find('<'), std::string::npos);
}

// --- the auditors' pages ---

const std::set<std::string> k_audit_tags = {"details", "summary", "select", "option"};
const std::set<std::string> k_audit_attributes = {"placeholder", "maxlength", "selected"};

store::StoredAuditEvent hostile_event(const std::string& type) {
    const std::string evil = "<script>alert(1)</script>" + k_rlo + "\x1b[2J";
    json line{{"event_id", "ev-1"},
              {"host", "fin-db-01"},
              {"seq", 7},
              {"type", type},
              {"user", evil},
              {"time", "2026-11-24T03:05:42.870Z"},
              {"command", "/bin/" + evil},
              {"break_glass_reason", "reason " + evil},
              {"login_user", evil}};
    return store::StoredAuditEvent{12, "fin-db-01", 1000,
                                   store::AuditEvent{"ev-1", 7, std::string(64, 'a'), std::string(64, 'b'),
                                                     "2026-11-24T03:05:42.870Z", type + evil, "R-" + evil,
                                                     line.dump(-1, ' ', false, json::error_handler_t::replace), evil}};
}

store::BreakGlassReview hostile_review(bool closed) {
    const std::string evil = "<img src=x onerror=alert(1)>" + k_zwsp;
    store::BreakGlassReview r;
    r.host = "fin-db-01";
    r.event_id = "ev-1";
    r.user_name = evil;
    r.time = "2026-11-24T03:05:42.870Z" + evil;
    r.opened_at = 1000;
    r.due_at = 2000;
    r.closed = closed;
    if (closed) {
        r.reviewer = evil;
        r.reviewer_identity = "https://idp/ " + evil;
        r.note = "note " + evil;
        r.closed_at = 1500;
    }
    return r;
}

TEST(WebPages, AuditPagesEscapeHostileTextEverywhere) {
    pages::Viewer viewer{"erin", "Erin <b>", "tok\"en", true};
    const pages::Frame frame{"Example", &viewer};
    pages::ReviewDetail detail;
    detail.review = hostile_review(false);
    detail.event = hostile_event("access.break_glass");
    detail.during = {hostile_event("command.finished")};
    detail.window = "window <b>";
    detail.during_cut = true;
    detail.may_close = true;
    store::AuditHostStatus host;
    host.chain.host = "fin-db-01";
    host.chain.broken = true;
    host.chain.problem = "gap <script>";
    host.chain.last_seen = 900;
    host.last_event_time = "2026-11-24T03:05:42.870Z<i>";
    host.open_reviews = 2;
    pages::EventSearchForm form{"fin-db-01", "\"><script>", "<t>", "2026", "", true};
    const std::vector<std::string> all{
        pages::audit_review(frame, detail, 3000),
        pages::audit_reviews(frame, std::vector{hostile_review(false)}, std::vector{hostile_review(true)}, 3000,
                             std::string("/audit/reviews?list=open&at=1&host=h&event=e"), std::nullopt),
        pages::audit_events(frame, form, {hostile_event("command.finished")}, std::string("/audit/events?after=1")),
        pages::audit_hosts(frame, {host}, 1000, std::nullopt),
        pages::review_result(frame, "fin-db-01", "ev-1", false, "by <b>x</b>")};
    for (const std::string& page : all) {
        only_our_markup(page, k_audit_tags, k_audit_attributes);
        nothing_invisible(page);
        EXPECT_EQ(page.find("<img"), std::string::npos);
        EXPECT_EQ(page.find("<b>"), std::string::npos);
        EXPECT_NE(page.find("href=\"/audit\""), std::string::npos) << "the frame links auditors to /audit";
    }
    EXPECT_NE(all[0].find("&lt;img src=x onerror=alert(1)&gt;\\u{200b}"), std::string::npos);
    EXPECT_NE(all[0].find("action=\"/audit/reviews/fin-db-01/ev-1/close\""), std::string::npos);
    EXPECT_NE(all[0].find("value=\"tok&quot;en\""), std::string::npos) << "the CSRF token, escaped";
    EXPECT_NE(all[0].find("maxlength=\"4000\" required"), std::string::npos);
    EXPECT_NE(all[1].find("<strong>overdue</strong>"), std::string::npos);
    EXPECT_NE(all[3].find("<strong class=\"broken\">broken</strong>: gap &lt;script&gt;"), std::string::npos);
}

// Each host's shipping backlog as its shipper last reported it: "unknown" when the last batch
// did not report it (never 0 events for a host that does not say), the count with when it was
// reported otherwise, marked when events wait.
TEST(WebPages, TheAuditHostsShowTheReportedBacklogOrUnknown) {
    pages::Viewer viewer{"erin", "Erin", "token", true};
    const pages::Frame frame{"Example", &viewer};
    const auto host = [](const std::string& name, std::int64_t last_seq, std::int64_t reported_seq,
                         std::int64_t reported_at) {
        store::AuditHostStatus h;
        h.chain.host = name;
        h.chain.last_seq = last_seq;
        h.chain.last_seen = 1795489562;
        h.chain.reported_seq = reported_seq;
        h.chain.reported_at = reported_at;
        return h;
    };
    const std::string page =
        pages::audit_hosts(frame,
                           {host("a-never", 7, 0, 0), host("b-behind", 7, 10, 1795489562),
                            host("c-current", 7, 7, 1795489562), host("d-stale", 7, 0, 1795489000)},
                           1795489600, std::nullopt);
    EXPECT_NE(page.find("<th scope=\"col\">Not yet shipped</th>"), std::string::npos);
    const auto row_of = [&](const std::string& name) {
        const auto start = page.find(">" + name + "</a>");
        EXPECT_NE(start, std::string::npos) << name;
        return page.substr(start, page.find("</tr>", start) - start);
    };
    EXPECT_NE(row_of("a-never").find("<td>unknown</td>"), std::string::npos) << row_of("a-never");
    EXPECT_NE(
        row_of("b-behind").find("<td><strong>3 events</strong> (reported <time datetime=\"2026-11-24T03:06:02Z\">"),
        std::string::npos)
        << row_of("b-behind");
    EXPECT_NE(row_of("c-current").find("<td>0 events (reported <time"), std::string::npos) << row_of("c-current");
    EXPECT_NE(row_of("d-stale").find("<td>unknown (last reported <time datetime=\"2026-11-24T02:56:40Z\">"),
              std::string::npos)
        << "reported by an earlier batch, not by the last: " << row_of("d-stale");
    only_our_markup(page, k_audit_tags, k_audit_attributes);
}

TEST(WebPages, AReviewOnlyOffersTheCloseFormWhenTheViewerMayClose) {
    pages::Viewer viewer{"dave", "Dave", "token", true};
    const pages::Frame frame{"Example", &viewer};
    pages::ReviewDetail detail;
    detail.review = hostile_review(false);
    detail.why_not = "this is your own break-glass use; someone else must review it";
    const std::string own = pages::audit_review(frame, detail, 1500);
    EXPECT_EQ(own.find("<form method=\"post\" action=\"/audit/reviews"), std::string::npos);
    EXPECT_NE(own.find("You cannot close this review: this is your own break-glass use"), std::string::npos);
    EXPECT_EQ(own.find("overdue"), std::string::npos) << "not due until 2000";
    EXPECT_NE(own.find("The event is not in the store"), std::string::npos);
    detail.review = hostile_review(true);
    detail.may_close = true;
    const std::string closed = pages::audit_review(frame, detail, 3000);
    EXPECT_EQ(closed.find("close-review"), std::string::npos) << "a closed review has no form";
    EXPECT_NE(closed.find("note &lt;img"), std::string::npos);
    pages::Viewer approver{"bob", "Bob", "token", false};
    const std::string plain = pages::pending(pages::Frame{"Example", &approver}, {}, 0, std::nullopt, false);
    EXPECT_EQ(plain.find("href=\"/audit\""), std::string::npos) << "no Audit link for others";
}

} // namespace
