#!/usr/bin/env python3
"""tests/support/browser.py — an approver in a real headless Chromium, for the integration tests.

Drives Debian's chromium through chromedriver (already started by the test, see server.sh's
browser_start) with W3C WebDriver over HTTP on 127.0.0.1, using the Python 3 standard library
only. Each command is one person in a fresh browser profile (a new --user-data-dir under
--dir), so nothing carries over between approvers:

  browser.py approve      --driver URL --dir DIR --web URL --user U (--idp-json F | --password P)
                          --host H --id R
                          --expect-command CMD [--comment TEXT]
  browser.py deny         (same arguments; --comment is the required reason)
  browser.py self-approve (same arguments, no --comment)
  browser.py report       (same arguments; --id is the report's query string, from=..&to=..;
                          --expect-text, repeatable, what the report must show besides HOST and CMD)

Each opens https://WEB/r/HOST/ID, is sent to the identity provider's login page, types the user
name and password as key input (the page is a React app), clicks OK and then Continue, lands
back on the request page, checks that the Command shown is exactly CMD, and then:
  approve       types the comment, clicks Approve, expects "Done" and a result naming the approval;
  deny          types the reason, clicks Deny, expects "Done" and a result saying it was denied;
  self-approve  expects "cannot decide your own request" and no decision forms; then posts an
                approval anyway (a form built in the page with the session's CSRF token, as a
                user with the developer tools could) and expects it refused ("Not done").
  report        signs in on /audit/report (the form), opens /audit/report?ID, expects the
                "jitgate evidence report" with its own inline style applied (the page's
                Content-Security-Policy allows it by hash) and every expected text in it.
The page text after the action is printed on stdout.

TLS: the browser trusts the run's CAs through the NSS database of its HOME (made by
browser_start with certutil); no certificate error is ignored.

Exit status 0 on success; 1 with a one-line "browser: ..." message on stderr, plus a
screenshot (DIR/browser-<command>-<user>.png) and the page source next to it, on any failure.
"""

import argparse
import base64
import json
import os
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

STEP_TIMEOUT_S = 15.0  # one page or element to appear; the whole case stays well under 30 s
HTTP_TIMEOUT_S = 30.0  # one WebDriver call (starting the browser is the slowest)


class Failure(Exception):
    """A check failed or the browser could not do what was asked."""


class WebDriver:
    """A minimal W3C WebDriver client (one session)."""

    ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

    def __init__(self, driver_url):
        self.base = driver_url.rstrip("/")
        self.session = None

    def call(self, method, path, body=None):
        url = self.base + (("/session/" + self.session) if self.session else "") + path
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
                answer = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            try:
                err = json.loads(e.read().decode("utf-8")).get("value", {})
                text = "%s: %s" % (err.get("error", e.code), str(err.get("message", "")).splitlines()[0:1])
            except (ValueError, AttributeError):
                text = str(e)
            raise Failure("WebDriver %s %s failed: %s" % (method, path, text)) from None
        except (urllib.error.URLError, OSError) as e:
            raise Failure("cannot reach chromedriver at %s: %s" % (self.base, e)) from None
        if not isinstance(answer, dict) or "value" not in answer:
            raise Failure("WebDriver %s %s: unexpected answer" % (method, path))
        return answer["value"]

    def start(self, profile_dir):
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--user-data-dir=" + profile_dir, "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--disable-component-update", "--window-size=1280,1600"]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": False,
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}}
        value = self.call("POST", "/session", caps)
        self.session = value.get("sessionId") if isinstance(value, dict) else None
        if not self.session:
            raise Failure("chromedriver did not start a browser session")
        self.call("POST", "/timeouts", {"pageLoad": int(STEP_TIMEOUT_S * 1000), "script": 10000, "implicit": 0})

    def quit(self):
        if self.session:
            try:
                self.call("DELETE", "")
            finally:
                self.session = None

    def get(self, url):
        self.call("POST", "/url", {"url": url})

    def url(self):
        return self.call("GET", "/url")

    def find_all(self, css):
        return [e[self.ELEMENT] for e in self.call("POST", "/elements", {"using": "css selector", "value": css})]

    def text(self, element):
        return self.call("GET", "/element/%s/text" % element)

    def click(self, element):
        self.call("POST", "/element/%s/click" % element, {})

    def type(self, element, text):
        # Element Send Keys: real key events, which React-controlled inputs see.
        self.call("POST", "/element/%s/value" % element, {"text": text})

    def script(self, source, *args):
        return self.call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def body_text(self):
        found = self.find_all("body")
        return self.text(found[0]) if found else ""

    def source(self):
        return self.call("GET", "/source")

    def screenshot(self):
        return base64.b64decode(self.call("GET", "/screenshot"))


def wait_for(what, probe, timeout=STEP_TIMEOUT_S):
    """Calls probe() until it returns something true; Failure naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            got = probe()
            if got:
                return got
        except Failure as e:
            last_error = e
        if time.monotonic() > deadline:
            raise Failure("timed out waiting for %s%s" % (what, " (%s)" % last_error if last_error else ""))
        time.sleep(0.1)


def short(text, limit=300):
    """Page text on one line, cut to `limit` characters, for a failure message."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def one(wd, css, what):
    return wait_for(what + " (" + css + ")", lambda: (wd.find_all(css) or [None])[0])


def sign_in(wd, args, request_url, ready_css="code.command"):
    """Opens the request (or review) page, signs in at the IdP, and comes back to that page."""
    wd.get(request_url)
    web = urllib.parse.urlsplit(args.web)
    here = wait_for("a redirect to the identity provider's login page",
                    lambda: (lambda u: u if "/login.html" in u and urllib.parse.urlsplit(u).netloc != web.netloc
                             else None)(wd.url()))
    if not here.startswith("https://"):
        raise Failure("the identity provider's login page is not HTTPS: " + here)
    user = one(wd, "form#passwordForm input#username", "the user name field")
    password = one(wd, "form#passwordForm input#password", "the password field")
    wd.type(user, args.user)
    wd.type(password, args.password)
    wd.click(one(wd, "button#loginbut", "the login button"))
    wd.click(one(wd, "button.btn-success", "the Continue button after signing in"))
    wait_for("the page " + request_url + " after signing in", lambda: wd.url() == request_url)
    if not wd.find_all(ready_css):
        raise Failure("the page shows no %s (at %s): %s" % (ready_css, wd.url(), short(wd.body_text())))


def check_request_page(wd, args):
    # What is rendered (WebDriver's visible text: empty if hidden) and the bytes in the page.
    shown = wd.text(one(wd, "code.command", "the command"))
    exact = wd.script("return document.querySelector('code.command').textContent;")
    if shown != args.expect_command or exact != args.expect_command:
        raise Failure("the request page shows the command %r (text %r), expected exactly %r" %
                      (shown, exact, args.expect_command))
    body = wd.body_text()
    for needle in (args.id, args.host):
        if needle not in body:
            raise Failure("the request page does not name %r" % needle)
    return body


def decide(wd, args, action):
    form = "form." + action
    comment = one(wd, form + " textarea[name=comment]", "the %s comment field" % action)
    if args.comment:
        wd.type(comment, args.comment)
    before = wd.url()
    wd.click(one(wd, form + " button[type=submit]", "the %s button" % action.capitalize()))
    wait_for("the page after " + action, lambda: wd.url() != before and wd.find_all("h1"))
    if not wd.url().endswith("/" + action):
        raise Failure("after %s the browser is at %s" % (action, wd.url()))
    heading = wd.text(wd.find_all("h1")[0])
    body = wd.body_text()
    if heading != "Done":
        raise Failure("%s was not done: %s" % (action, short(body)))
    flash = " ".join(wd.text(one(wd, "p.flash", "the result message")).split())
    expected = ("approv" if action == "approve" else "denied")
    if expected not in flash.lower():
        raise Failure("after %s the result says %r, not %r" % (action, flash, expected))
    return body


def self_approve(wd, args, body):
    if "cannot decide your own request" not in body:
        raise Failure("the request page does not refuse the requester: %s" % short(body))
    if wd.find_all("form.approve") or wd.find_all("form.deny"):
        raise Failure("the request page offers its own requester a decision form")
    # Post an approval anyway, as the page's own forms would. The server must refuse it.
    post_with_csrf(wd, urllib.parse.urlsplit(wd.url()).path + "/approve", [["comment", "mine"]])
    wait_for("the page after the self-approval", lambda: wd.url().endswith("/approve") and wd.find_all("h1"))
    heading = wd.text(wd.find_all("h1")[0])
    result = wd.body_text()
    if heading != "Not done" or "cannot decide your own request" not in result:
        raise Failure("a self-approval was not refused: %s" % short(result))
    return result


def post_with_csrf(wd, action, fields):
    """Posts a form as the page's own forms would, with this session's CSRF token (the sign-out
    form carries it), whether or not the page offers that form."""
    token = wd.script("var e = document.querySelector('form.sign-out input[name=csrf]');"
                      "return e ? e.value : null;")
    if not token:
        raise Failure("no CSRF token on the page (sign-out form) to post with")
    wd.script("var f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];"
              "for (const [k, v] of arguments[1]) {"
              "  var i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v;"
              "  f.appendChild(i); }"
              "document.body.appendChild(f); f.submit();", action, [["csrf", token]] + fields)


def check_review_page(wd, args):
    """The break-glass review page names the event, its user's command, and what followed."""
    body = wd.body_text()
    for needle in (args.id, args.host, args.expect_command, "What the user did on the host afterwards"):
        if needle not in body:
            raise Failure("the review page does not show %r: %s" % (needle, short(body)))
    return body


def review(wd, args):
    note = one(wd, "form.close-review textarea[name=note]", "the review note field")
    wd.type(note, args.comment)
    before = wd.url()
    wd.click(one(wd, "form.close-review button[type=submit]", "the Close button"))
    wait_for("the page after closing", lambda: wd.url() != before and wd.find_all("h1"))
    heading = wd.text(wd.find_all("h1")[0])
    body = wd.body_text()
    if heading != "Done" or "The review is closed" not in body:
        raise Failure("the review was not closed: %s" % short(body))
    # The review page now shows it closed, with the note.
    wd.get(before)
    wait_for("the closed review", lambda: args.comment in wd.body_text() or None)
    if wd.find_all("form.close-review"):
        raise Failure("a closed review still offers the close form")
    return body


def self_review(wd, args, body):
    if "your own break-glass use" not in body:
        raise Failure("the review page does not refuse the user who broke the glass: %s" % short(body))
    if wd.find_all("form.close-review"):
        raise Failure("the review page offers its own user the close form")
    post_with_csrf(wd, urllib.parse.urlsplit(wd.url()).path + "/close", [["note", "all fine, trust me"]])
    wait_for("the page after the self-review", lambda: wd.url().endswith("/close") and wd.find_all("h1"))
    heading = wd.text(wd.find_all("h1")[0])
    result = wd.body_text()
    if heading != "Not done" or "your own break-glass use" not in result:
        raise Failure("a self-review was not refused: %s" % short(result))
    return result


def read_report(wd, args):
    """The evidence report of the period in --id, as the signed-in auditor's browser shows it."""
    wd.get("%s/audit/report?%s" % (args.web.rstrip("/"), args.id))
    wait_for("the evidence report",
             lambda: any(wd.text(h) == "jitgate evidence report" for h in wd.find_all("h1")))
    # border-collapse is "separate" unless the report's <style> was applied: a hash in the
    # Content-Security-Policy that does not match would leave the page unstyled.
    collapse = wd.script("return getComputedStyle(document.querySelector('table')).borderCollapse;")
    if collapse != "collapse":
        raise Failure("the report's own style was not applied (border-collapse %r)" % collapse)
    body = wd.body_text()
    for needle in [args.host, args.expect_command] + args.expect_text:
        if needle not in body:
            raise Failure("the report does not show %r: %s" % (needle, short(body, 2000)))
    return body


def kill_leftover_browser(profile_dir):
    """If the session could not be closed, ends this profile's browser (its pid, from Chromium's lock)."""
    try:
        target = os.readlink(os.path.join(profile_dir, "SingletonLock"))
        pid = int(target.rsplit("-", 1)[1])
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            if ("--user-data-dir=" + profile_dir).encode() not in f.read().split(b"\0"):
                return  # not this profile's browser
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, IndexError):
        pass


def main():
    parser = argparse.ArgumentParser(description="An approver in headless Chromium (WebDriver).")
    parser.add_argument("command", choices=["approve", "deny", "self-approve", "review", "self-review", "report"])
    parser.add_argument("--driver", required=True, help="chromedriver's URL, http://127.0.0.1:PORT")
    parser.add_argument("--dir", required=True, help="the test's scratch directory")
    parser.add_argument("--web", required=True, help="the web UI's origin, https://127.0.0.1:PORT")
    parser.add_argument("--user", required=True)
    secret = parser.add_mutually_exclusive_group(required=True)
    secret.add_argument("--password", help="the user's password (shows in ps; prefer --idp-json)")
    secret.add_argument("--idp-json", help="the IdP's idp.json (tests/support/idp): the password is read there")
    parser.add_argument("--host", required=True)
    parser.add_argument("--id", required=True, help="the request id (or, to review, the event id)")
    parser.add_argument("--expect-command", required=True)
    parser.add_argument("--comment", default="")
    parser.add_argument("--expect-text", action="append", default=[], help="report: text it must show")
    args = parser.parse_args()
    if urllib.parse.urlsplit(args.driver).hostname != "127.0.0.1":
        print("browser: --driver must be on 127.0.0.1", file=sys.stderr)
        return 1
    if args.idp_json:
        try:
            with open(args.idp_json, encoding="utf-8") as f:
                args.password = json.load(f)["users"][args.user]["password"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            print("browser: no password for %s in %s: %s" % (args.user, args.idp_json, e), file=sys.stderr)
            return 1
    if args.command in ("deny", "review") and not args.comment:
        print("browser: %s needs --comment (the reason, the note)" % args.command, file=sys.stderr)
        return 1

    reviewing = args.command in ("review", "self-review")
    request_url = "%s/%s/%s/%s" % (args.web.rstrip("/"), "audit/reviews" if reviewing else "r", args.host, args.id)
    if args.command == "report":
        request_url = args.web.rstrip("/") + "/audit/report"
    profile = tempfile.mkdtemp(prefix="chromium-%s-" % args.user, dir=args.dir)
    wd = WebDriver(args.driver)
    stem = os.path.join(args.dir, "browser-%s-%s" % (args.command, args.user))
    try:
        wd.start(profile)
        if args.command == "report":
            sign_in(wd, args, request_url, "form[action='/audit/report']")
            print(read_report(wd, args))
            return 0
        sign_in(wd, args, request_url, "h1" if reviewing else "code.command")
        body = check_review_page(wd, args) if reviewing else check_request_page(wd, args)
        if args.command == "review":
            result = review(wd, args)
        elif args.command == "self-review":
            result = self_review(wd, args, body)
        elif args.command == "self-approve":
            result = self_approve(wd, args, body)
        else:
            result = decide(wd, args, args.command)
        print(result)
        return 0
    except Failure as e:
        message = str(e)
        if wd.session:
            try:
                with open(stem + ".png", "wb") as f:
                    f.write(wd.screenshot())
                with open(stem + ".html", "w", encoding="utf-8") as f:
                    f.write("<!-- %s -->\n%s" % (wd.url(), wd.source()))
                message += " (screenshot: %s.png)" % stem
            except (Failure, OSError):
                pass
        print("browser: %s %s: %s" % (args.command, args.user, message), file=sys.stderr)
        return 1
    finally:
        try:
            wd.quit()
        except Failure:
            kill_leftover_browser(profile)


if __name__ == "__main__":
    sys.exit(main())
