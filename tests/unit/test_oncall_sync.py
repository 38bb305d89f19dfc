#!/usr/bin/python3
"""tests/unit/test_oncall_sync.py: packaging/oncall-sync/jitgate-oncall-sync against a fake
PagerDuty and a fake Opsgenie on loopback (answers in the shape of their APIs), asserting the
exact file written, the requests sent (path, query, authorization), and that a failure leaves the
previous file as it was. Run by ctest as unit.oncall_sync: python3 <this file> <script>."""

import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.parse

SCRIPT = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "..", "packaging", "oncall-sync", "jitgate-oncall-sync")
# oncall_file_check (built beside the unit tests): the real reader, windows::read_on_call_file.
READER = sys.argv.pop(1) if len(sys.argv) > 1 else None

NOW = "2026-11-30T10:00:00Z"

# GET /oncalls (REST API v2), two pages; user.email present because of include[]=users.
PD_PAGE_1 = {
    "oncalls": [
        {"escalation_policy": {"id": "PEP1", "type": "escalation_policy_reference"},
         "escalation_level": 1,
         "schedule": {"id": "PSCHED1", "type": "schedule_reference", "summary": "Ops"},
         "user": {"id": "PUSER1", "type": "user", "summary": "Alice Example", "email": "Alice@example.com"},
         "start": "2026-11-30T08:00:00Z", "end": "2026-12-01T08:00:00+00:00"},
        {"escalation_level": 1,
         "schedule": {"id": "PSCHED1", "type": "schedule_reference"},
         "user": {"id": "PUSER9", "type": "user", "summary": "Not Mapped", "email": "nobody@example.com"},
         "start": "2026-11-30T08:00:00Z", "end": "2026-12-01T08:00:00Z"},
    ],
    "limit": 2, "offset": 0, "more": True, "total": None,
}
PD_PAGE_2 = {
    "oncalls": [
        {"escalation_level": 1,
         "schedule": {"id": "PSCHED1", "type": "schedule_reference"},
         "user": {"id": "PUSER2", "type": "user", "summary": "Bob Example", "email": "bob@example.com"},
         "start": "2026-12-01T09:00:00+01:00", "end": "2026-12-05T08:00:00Z"},
    ],
    "limit": 2, "offset": 2, "more": False, "total": None,
}
# GET /v2/schedules/{id}/timeline: the final timeline's user periods count, a team's does not.
OG_TIMELINE = {
    "data": {
        "_parent": {"id": "sched-1", "name": "ops", "enabled": True},
        "startDate": "2026-11-30T10:00:00Z", "endDate": "2026-12-02T10:00:00Z",
        "finalTimeline": {"rotations": [
            {"id": "rot-1", "name": "primary", "order": 1.0, "periods": [
                {"startDate": "2026-11-30T06:00:00Z", "endDate": "2026-11-30T18:00:00Z", "type": "default",
                 "recipient": {"id": "u-1", "type": "user", "name": "alice@example.com"}},
                {"startDate": "2026-11-30T18:00:00Z", "endDate": "2026-12-01T06:00:00Z", "type": "override",
                 "recipient": {"id": "u-2", "type": "user", "name": "bob@example.com"}},
                {"startDate": "2026-12-01T06:00:00Z", "endDate": "2026-12-01T18:00:00Z", "type": "default",
                 "recipient": {"id": "t-1", "type": "team", "name": "ops_team"}},
            ]},
        ]},
    },
    "took": 0.1, "requestId": "r-1",
}


class Fake(http.server.BaseHTTPRequestHandler):
    answers = {}  # path -> list of (status, body) served in order
    seen = []

    def do_GET(self):
        parts = urllib.parse.urlsplit(self.path)
        Fake.seen.append((parts.path, urllib.parse.parse_qs(parts.query), self.headers.get("Authorization")))
        queue = Fake.answers.get(parts.path, [])
        status, body = queue.pop(0) if queue else (404, {"error": "not found"})
        data = json.dumps(body).encode()
        self.send_response(status)
        if status in (301, 302, 307, 308):
            self.send_header("Location", body["location"])
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class OnCallSync(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fake)
        cls.url = f"http://127.0.0.1:{cls.server.server_address[1]}"
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="jitgate-oncall-sync-")
        self.out = os.path.join(self.dir.name, "oncall.yaml")
        self.token = os.path.join(self.dir.name, "token")
        with open(self.token, "w") as f:
            f.write("s3cret-token\n")
        os.chmod(self.token, 0o600)
        self.map = os.path.join(self.dir.name, "map")
        with open(self.map, "w") as f:
            f.write("# person  unix name\nalice@example.com alice\nbob@example.com   bob\n")
        Fake.answers = {}
        Fake.seen = []

    def tearDown(self):
        self.dir.cleanup()

    def run_sync(self, source, *extra):
        return subprocess.run([sys.executable, SCRIPT, source, "--schedule", "PSCHED1", "--token-file", self.token,
                               "--map", self.map, "--out", self.out, "--api-url", self.url, "--now", NOW,
                               *extra], capture_output=True, text=True, timeout=60)

    def read_back(self):
        """The written file as jitgated and jitgate-server read it: [(user, from, to)] in Unix seconds."""
        if READER is None:
            self.skipTest("no oncall_file_check given (run through ctest)")
        r = subprocess.run([READER, self.out], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [tuple(int(f) if i else f for i, f in enumerate(line.split())) for line in r.stdout.splitlines()]

    def read_out(self):
        with open(self.out) as f:
            return f.read()

    def test_pagerduty_writes_every_page_mapped_and_clipped(self):
        Fake.answers = {"/oncalls": [(200, PD_PAGE_1), (200, PD_PAGE_2)]}
        r = self.run_sync("pagerduty", "--hours", "48")
        # Someone on call is not in the map: the others are written, and the status says so.
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("1 on-call person(s) not in the map", r.stderr)
        self.assertEqual(self.read_out(),
                         "# Written by jitgate-oncall-sync pagerduty at 2026-11-30T10:00:00Z; do not edit "
                         "(the next sync replaces it).\n"
                         "on_call:\n"
                         '  - {user: "alice", from: "2026-11-30T10:00:00Z", to: "2026-12-01T08:00:00Z"}\n'
                         '  - {user: "bob", from: "2026-12-01T08:00:00Z", to: "2026-12-02T10:00:00Z"}\n')
        self.assertIn("'nobody@example.com' is on call but not in the map", r.stderr)
        self.assertEqual(self.read_back(), [("alice", 1796032800, 1796112000), ("bob", 1796112000, 1796205600)])
        self.assertEqual(oct(os.stat(self.out).st_mode & 0o777), "0o644")
        self.assertEqual(len(Fake.seen), 2)
        path, query, auth = Fake.seen[0]
        self.assertEqual(path, "/oncalls")
        self.assertEqual(auth, "Token token=s3cret-token")
        self.assertEqual(query["schedule_ids[]"], ["PSCHED1"])
        self.assertEqual(query["since"], ["2026-11-30T10:00:00Z"])
        self.assertEqual(query["until"], ["2026-12-02T10:00:00Z"])
        self.assertEqual(query["include[]"], ["users"])
        self.assertEqual(query["offset"], ["0"])
        self.assertEqual(Fake.seen[1][1]["offset"], ["2"])

    def test_opsgenie_writes_the_user_periods_of_the_final_timeline(self):
        Fake.answers = {"/v2/schedules/PSCHED1/timeline": [(200, OG_TIMELINE)]}
        r = self.run_sync("opsgenie", "--hours", "24")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read_out(),
                         "# Written by jitgate-oncall-sync opsgenie at 2026-11-30T10:00:00Z; do not edit "
                         "(the next sync replaces it).\n"
                         "on_call:\n"
                         '  - {user: "alice", from: "2026-11-30T10:00:00Z", to: "2026-11-30T18:00:00Z"}\n'
                         '  - {user: "bob", from: "2026-11-30T18:00:00Z", to: "2026-12-01T06:00:00Z"}\n')
        path, query, auth = Fake.seen[0]
        self.assertEqual(auth, "GenieKey s3cret-token")
        self.assertEqual(query["date"], ["2026-11-30T10:00:00Z"])
        self.assertEqual(query["interval"], ["1"])
        self.assertEqual(query["intervalUnit"], ["days"])

    def test_opsgenie_no_overrides_reads_the_base_timeline(self):
        # The final timeline says bob (a "historical" period an override may have made); the base
        # timeline (the rotation alone) says carol then alice: only the base counts.
        answer = json.loads(json.dumps(OG_TIMELINE))
        answer["data"]["finalTimeline"]["rotations"][0]["periods"][0]["recipient"]["name"] = "bob@example.com"
        answer["data"]["finalTimeline"]["rotations"][0]["periods"][0]["type"] = "historical"
        answer["data"]["baseTimeline"] = {"rotations": [
            {"id": "rot-1", "name": "primary", "order": 1.0, "periods": [
                {"startDate": "2026-11-30T06:00:00Z", "endDate": "2026-11-30T18:00:00Z", "type": "historical",
                 "recipient": {"id": "u-1", "type": "user", "name": "alice@example.com"}},
                {"startDate": "2026-11-30T18:00:00Z", "endDate": "2026-12-01T06:00:00Z", "type": "override",
                 "recipient": {"id": "u-2", "type": "user", "name": "bob@example.com"}},
            ]},
        ]}
        Fake.answers = {"/v2/schedules/PSCHED1/timeline": [(200, answer)]}
        r = self.run_sync("opsgenie", "--hours", "24", "--no-overrides")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.read_out().endswith(
            'on_call:\n  - {user: "alice", from: "2026-11-30T10:00:00Z", to: "2026-11-30T18:00:00Z"}\n'),
            self.read_out())
        self.assertEqual(Fake.seen[0][1]["expand"], ["base"])
        # An answer without the base timeline (expand ignored) fails: no fallback to the final one.
        os.unlink(self.out)
        Fake.answers = {"/v2/schedules/PSCHED1/timeline": [(200, OG_TIMELINE)]}
        r = self.run_sync("opsgenie", "--hours", "24", "--no-overrides")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("no list data.baseTimeline.rotations", r.stderr)
        self.assertFalse(os.path.exists(self.out))

    def test_pagerduty_no_overrides_reads_every_page_of_overrides(self):
        page = {"oncalls": [
            {"schedule": {"id": "PSCHED1", "type": "schedule_reference"},
             "user": {"id": "PUSER1", "type": "user", "email": "alice@example.com"},
             "start": "2026-11-30T08:00:00Z", "end": "2026-11-30T20:00:00Z"},
        ], "more": False}
        first = {"overrides": [{"id": "PO1", "start": "2026-11-30T12:00:00Z", "end": "2026-11-30T14:00:00Z"}],
                 "limit": 1, "offset": 0, "more": True}
        second = {"overrides": [{"id": "PO2", "start": "2026-11-30T16:00:00Z", "end": "2026-11-30T20:00:00Z"}],
                  "limit": 1, "offset": 1, "more": False}
        Fake.answers = {"/oncalls": [(200, page)], "/schedules/PSCHED1/overrides": [(200, first), (200, second)]}
        r = self.run_sync("pagerduty", "--no-overrides")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.read_out().endswith(
            'on_call:\n'
            '  - {user: "alice", from: "2026-11-30T10:00:00Z", to: "2026-11-30T12:00:00Z"}\n'
            '  - {user: "alice", from: "2026-11-30T14:00:00Z", to: "2026-11-30T16:00:00Z"}\n'), self.read_out())
        self.assertEqual(Fake.seen[2][0], "/schedules/PSCHED1/overrides")
        self.assertEqual(Fake.seen[2][1]["offset"], ["1"])
        # 'more' with an empty page cannot be read to its end: nothing is written.
        os.unlink(self.out)
        Fake.answers = {"/oncalls": [(200, page)],
                        "/schedules/PSCHED1/overrides": [(200, {"overrides": [], "more": True})]}
        r = self.run_sync("pagerduty", "--no-overrides")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertFalse(os.path.exists(self.out))

    def test_pagerduty_no_overrides_leaves_out_an_on_call_of_another_schedule(self):
        # The overrides read are PSCHED1's; an on-call naming "psched1" (or any other id) would
        # otherwise be kept whole, its overrides included.
        page = {"oncalls": [
            {"schedule": {"id": "psched1", "type": "schedule_reference"},
             "user": {"id": "PUSER2", "type": "user", "email": "bob@example.com"},
             "start": "2026-11-30T08:00:00Z", "end": "2026-11-30T20:00:00Z"},
            {"schedule": {"id": "PSCHED1", "type": "schedule_reference"},
             "user": {"id": "PUSER1", "type": "user", "email": "alice@example.com"},
             "start": "2026-11-30T08:00:00Z", "end": "2026-11-30T20:00:00Z"},
        ], "more": False}
        overrides = {"overrides": [{"id": "PO1", "start": "2026-11-30T08:00:00Z", "end": "2026-11-30T20:00:00Z"}]}
        Fake.answers = {"/oncalls": [(200, page)], "/schedules/PSCHED1/overrides": [(200, overrides)]}
        r = self.run_sync("pagerduty", "--no-overrides")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.read_out().endswith("\non_call: []\n"), self.read_out())
        self.assertIn("names schedule 'psched1', not one of --schedule: left out", r.stderr)

    def test_pagerduty_no_overrides_takes_the_overrides_out_of_the_schedule(self):
        page = {"oncalls": [
            {"schedule": {"id": "PSCHED1", "type": "schedule_reference"},
             "user": {"id": "PUSER1", "type": "user", "email": "alice@example.com"},
             "start": "2026-11-30T08:00:00Z", "end": "2026-11-30T20:00:00Z"},
            {"schedule": {"id": "PSCHED1", "type": "schedule_reference"},
             "user": {"id": "PUSER2", "type": "user", "email": "bob@example.com"},
             "start": "2026-11-30T20:00:00Z", "end": "2026-11-30T22:00:00Z"},
            {"schedule": None, "user": {"id": "PUSER2", "type": "user", "email": "bob@example.com"},
             "start": "2026-11-30T10:00:00Z", "end": "2026-11-30T12:00:00Z"},
        ], "more": False}
        overrides = {"overrides": [
            {"id": "PO1", "start": "2026-11-30T12:00:00Z", "end": "2026-11-30T14:00:00Z",
             "user": {"id": "PUSER1", "type": "user_reference"}},
            {"id": "PO2", "start": "2026-11-30T20:00:00Z", "end": "2026-11-30T22:00:00Z",
             "user": {"id": "PUSER2", "type": "user_reference"}},
        ]}
        Fake.answers = {"/oncalls": [(200, page)], "/schedules/PSCHED1/overrides": [(200, overrides)]}
        r = self.run_sync("pagerduty", "--no-overrides")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.read_out().endswith(
            'on_call:\n'
            '  - {user: "alice", from: "2026-11-30T10:00:00Z", to: "2026-11-30T12:00:00Z"}\n'
            '  - {user: "alice", from: "2026-11-30T14:00:00Z", to: "2026-11-30T20:00:00Z"}\n'), self.read_out())
        self.assertIn("names no schedule: left out", r.stderr)
        path, query, auth = Fake.seen[1]
        self.assertEqual(path, "/schedules/PSCHED1/overrides")
        self.assertEqual(query["since"], ["2026-11-30T10:00:00Z"])
        self.assertEqual(auth, "Token token=s3cret-token")
        # An override without an end cannot be taken out: nothing is written.
        os.unlink(self.out)
        Fake.answers = {"/oncalls": [(200, page)],
                        "/schedules/PSCHED1/overrides": [(200, {"overrides": [{"start": "2026-11-30T12:00:00Z"}]})]}
        r = self.run_sync("pagerduty", "--no-overrides")
        self.assertEqual(r.returncode, 1)
        self.assertFalse(os.path.exists(self.out))

    def test_pagerduty_maps_the_immutable_user_id_before_the_email(self):
        with open(self.map, "w") as f:
            f.write("alice@example.com mallory\nPUSER1 alice\nbob@example.com bob\n")
        Fake.answers = {"/oncalls": [(200, PD_PAGE_1), (200, PD_PAGE_2)]}
        r = self.run_sync("pagerduty", "--hours", "48")
        self.assertEqual(r.returncode, 3, r.stderr)  # nobody@example.com
        out = self.read_out()
        self.assertIn('{user: "alice", from: "2026-11-30T10:00:00Z"', out)
        self.assertNotIn("mallory", out)
        # The map names ids: bob's id (PUSER2) is not in it, so his e-mail is not tried either.
        self.assertNotIn('{user: "bob",', out)
        self.assertIn("'PUSER2' is on call but not in the map", r.stderr)

    def test_pagerduty_a_map_of_e_mails_only_still_maps_e_mails(self):
        Fake.answers = {"/oncalls": [(200, PD_PAGE_1), (200, PD_PAGE_2)]}
        r = self.run_sync("pagerduty", "--hours", "48")
        self.assertEqual(r.returncode, 3, r.stderr)  # nobody@example.com
        out = self.read_out()
        self.assertIn('{user: "alice",', out)
        self.assertIn('{user: "bob",', out)

    def test_pagerduty_an_on_call_without_a_start_or_end_is_left_out_loudly(self):
        page = {"oncalls": [
            {"escalation_level": 1, "schedule": None,
             "user": {"id": "PUSER1", "type": "user", "email": "alice@example.com"}, "start": None, "end": None},
            {"escalation_level": 1, "schedule": {"id": "PSCHED1", "type": "schedule_reference"},
             "user": {"id": "PUSER2", "type": "user", "email": "bob@example.com"},
             "start": "2026-11-30T08:00:00Z", "end": None},
        ], "more": False}
        Fake.answers = {"/oncalls": [(200, page)]}
        r = self.run_sync("pagerduty")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.read_out().endswith("\non_call: []\n"), self.read_out())
        self.assertIn("oncalls[0] of 'alice@example.com' has no start or end", r.stderr)
        self.assertIn("oncalls[1] of 'bob@example.com' has no start or end", r.stderr)
        self.assertEqual(Fake.seen[0][1]["until"], ["2026-12-01T10:00:00Z"], "24 hours ahead by default")

    def test_a_map_or_token_anyone_could_write_is_refused(self):
        cases = [("map", 0o666, "is group- or world-writable"), ("token", 0o644, "is world-readable"),
                 ("token", 0o620, "is group- or world-writable")]
        for which, mode, message in cases:
            with self.subTest(f"{which} {mode:o}"):
                path = self.map if which == "map" else self.token
                os.chmod(path, mode)
                Fake.answers = {"/oncalls": [(200, PD_PAGE_2)]}
                r = self.run_sync("pagerduty")
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(message, r.stderr)
                self.assertFalse(os.path.exists(self.out))
                os.chmod(path, 0o644 if which == "map" else 0o600)
        # A symlink is not followed.
        link = os.path.join(self.dir.name, "map-link")
        os.symlink(self.map, link)
        r = subprocess.run([sys.executable, SCRIPT, "pagerduty", "--schedule", "P", "--token-file", self.token,
                            "--map", link, "--out", self.out, "--api-url", self.url, "--now", NOW],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot read the map file", r.stderr)
        self.assertEqual(Fake.seen, [])

    def test_a_redirect_to_another_origin_is_refused(self):
        port = self.server.server_address[1]
        Fake.answers = {"/oncalls": [(302, {"location": f"http://localhost:{port}/elsewhere"})],
                        "/elsewhere": [(200, PD_PAGE_2)]}
        r = self.run_sync("pagerduty")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("refused a redirect to another origin", r.stderr)
        self.assertEqual([p for p, _q, _a in Fake.seen], ["/oncalls"], "the token went nowhere else")
        # The same origin is followed.
        Fake.seen = []
        Fake.answers = {"/oncalls": [(307, {"location": f"{self.url}/moved"})], "/moved": [(200, PD_PAGE_2)]}
        r = self.run_sync("pagerduty", "--hours", "48")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([p for p, _q, _a in Fake.seen], ["/oncalls", "/moved"])

    def test_user_names_yaml_would_read_otherwise_are_quoted(self):
        with open(self.map, "w") as f:
            f.write("alice@example.com null\nbob@example.com no\n")
        Fake.answers = {"/oncalls": [(200, PD_PAGE_2)]}
        r = self.run_sync("pagerduty", "--hours", "48")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('{user: "no", from: ', self.read_out())
        self.assertEqual([entry[0] for entry in self.read_back()], ["no"], "a string, not false")
        Fake.answers = {"/oncalls": [(200, PD_PAGE_1)]}
        with open(self.map, "w") as f:
            f.write("alice@example.com null\n")
        PD_PAGE_1["more"] = False
        try:
            r = self.run_sync("pagerduty", "--hours", "48")
        finally:
            PD_PAGE_1["more"] = True
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual([entry[0] for entry in self.read_back()], ["null"], "a string, not a YAML null")

    def test_nobody_mapped_on_call_writes_an_empty_list(self):
        Fake.answers = {"/oncalls": [(200, {"oncalls": [], "more": False})]}
        r = self.run_sync("pagerduty")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.read_out().endswith("\non_call: []\n"))
        self.assertEqual(self.read_back(), [])

    def test_a_failure_leaves_the_previous_file(self):
        previous = 'on_call:\n  - {user: "alice", from: "2026-11-30T08:00:00Z", to: "2026-11-30T20:00:00Z"}\n'
        with open(self.out, "w") as f:
            f.write(previous)
        cases = [
            ("HTTP 500", {"/oncalls": [(500, {"error": {"message": "down"}})]}, "HTTP 500"),
            ("wrong shape", {"/oncalls": [(200, {"on_calls": []})]}, "no list 'oncalls'"),
            ("bad time", {"/oncalls": [(200, {"oncalls": [{"user": {"email": "alice@example.com"},
                                                           "start": "2026-11-30T08:00:00",
                                                           "end": "2026-12-01T08:00:00Z"}],
                                              "more": False})]}, "no time zone offset"),
            ("second page fails", {"/oncalls": [(200, PD_PAGE_1), (503, {})]}, "HTTP 503"),
        ]
        for name, answers, message in cases:
            with self.subTest(name):
                Fake.answers = answers
                r = self.run_sync("pagerduty")
                self.assertEqual(r.returncode, 1)
                self.assertIn(message, r.stderr)
                self.assertIn("left as it was", r.stderr)
                self.assertEqual(self.read_out(), previous)
                self.assertEqual(sorted(os.listdir(self.dir.name)), ["map", "oncall.yaml", "token"])

    def test_a_bad_map_or_a_plain_http_url_writes_nothing(self):
        with open(self.map, "w") as f:
            f.write("alice@example.com alice extra\n")
        r = self.run_sync("pagerduty")
        self.assertEqual(r.returncode, 1)
        self.assertIn("expected '<e-mail or id> <Unix name>'", r.stderr)
        self.assertFalse(os.path.exists(self.out))
        r = subprocess.run([sys.executable, SCRIPT, "pagerduty", "--schedule", "P", "--token-file", self.token,
                            "--map", self.map, "--out", self.out, "--api-url", "http://api.example.com"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("must be https://", r.stderr)
        self.assertEqual(Fake.seen, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
