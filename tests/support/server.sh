#!/bin/bash
# tests/support/server.sh — the real jitgate-server for integration tests, sourced after ns.sh.
#
#   server_pki                       the run's PKI (make_pki.sh) plus a host certificate for fin-db-01
#   idp_start                        glewlwyd (tests/support/idp) on 127.0.0.1 with the test users
#   server_start [NAME] [DB] [WEB]   jitgate-server NAME (default "srv") on the SQLite file DB, or on
#                                    PostgreSQL when DB starts with "postgresql:" / "host=", with
#                                    browsers on port WEB (default $SRV_WEB_PORT, the public URL's);
#                                    sets SRV_HOSTS_PORT, SRV_WEB_PORT, SRV_PID
#   approver_sign_in USER            signs USER in through the IdP, as a browser does; cookies in $T/jar.USER
#   approver_act USER ACTION HOST ID [COMMENT]   approve|deny on the web UI; prints the page shown after
#   server_configure_host            the host's `approval.service` section pointing at the server
#   browser_start                    chromedriver + headless Chromium trusting the run's CAs; sets BROWSER_DRIVER
#   browser_act CMD USER HOST ID CMDLINE [COMMENT]   approve|deny|self-approve|review|self-review in
#                                    Chromium (browser.py); to review, ID is the break-glass event's id
# SERVER_FINANCE_EXTRA (more keys of the `finance` policy entry, indented four spaces),
# SERVER_POLICY_EXTRA (more `policy:` entries) and SERVER_CONFIG_EXTRA (more top-level sections,
# e.g. webhooks:, ticket_check:) are appended to the server's configuration when set;
# SERVER_HOSTS_EXTRA and SERVER_WEB_EXTRA (more keys, indented two spaces) go into its hosts
# and web sections.
# Everything is on 127.0.0.1 with keys made for the run. Nothing here is a test double.

SERVER_BIN="$JITGATE_BUILD/server/jitgate-server"
MAKE_PKI="$(dirname "${BASH_SOURCE[0]}")/make_pki.sh"
GLEWLWYD_SH="$(dirname "${BASH_SOURCE[0]}")/idp/glewlwyd.sh"
BROWSER_PY="$(dirname "${BASH_SOURCE[0]}")/browser.py"

# free_port: a TCP port on 127.0.0.1 that nobody listens on right now, below the kernel's
# ephemeral range: a port the kernel handed out (bind to port 0) is its to hand out again, to
# any outgoing connection of a test running beside this one, before our server binds it (the
# web port is chosen before the identity provider starts, seconds earlier).
free_port() {
    python3 - <<'PY'
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for _ in range(200):
    port = random.randrange(10000, max(low, 10001))
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("no free TCP port below the ephemeral range on 127.0.0.1")
PY
}

# host_cert NAME: a client certificate for host NAME (CN and DNS SAN), signed by the run's CA.
host_cert() {
    local name="$1" dir="$T/pki"
    [ -e "$dir/host-$name.pem" ] && return 0
    (
        cd "$dir" && umask 077
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "host-$name.key" \
            -subj "/CN=$name" -out "host-$name.csr" 2>/dev/null
        printf 'subjectAltName=DNS:%s\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' "$name" >"host-$name.ext"
        openssl x509 -req -in "host-$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile "host-$name.ext" -out "host-$name.pem" 2>/dev/null
        rm -f "host-$name.csr" "host-$name.ext"
    ) || ns_die "cannot make a host certificate for $name"
}

server_pki() {
    mkdir -p "$T/pki"
    [ -e "$T/pki/ca.pem" ] || bash "$MAKE_PKI" "$T/pki"
    host_cert fin-db-01
}

idp_start() {
    [ -n "${SRV_WEB_PORT:-}" ] || SRV_WEB_PORT="$(free_port)"
    IDP_DIR="$T/idp"
    mkdir -p "$IDP_DIR"
    IDP_ISSUER="$(bash "$GLEWLWYD_SH" start "$IDP_DIR" "https://127.0.0.1:$SRV_WEB_PORT/oidc/callback")" ||
        { cat "$IDP_DIR/glewlwyd.log" >&2 2>/dev/null; ns_die "the identity provider did not start"; }
    ns_cleanup_hooks+=("bash '$GLEWLWYD_SH' stop '$IDP_DIR'")
    IDP_BASE="$(jq -r .base_url "$IDP_DIR/idp.json")"
    jq -r .client_secret "$IDP_DIR/idp.json" >"$T/oidc-client.secret"
    chmod 0600 "$T/oidc-client.secret"
}

idp_password() { jq -r ".users.\"$1\".password" "$IDP_DIR/idp.json"; }

# server_config NAME DB [WEB_PORT]: writes $T/NAME.yaml. Every replica has the same public URL
# (https://127.0.0.1:$SRV_WEB_PORT, what a load balancer would be); WEB_PORT is where this one
# listens for browsers. DB: a SQLite file, or a libpq conninfo ("host=..."), whose password=
# part goes to a password file.
server_config() {
    local name="$1" db="$2" web_port="${3:-$SRV_WEB_PORT}" database
    case "$db" in
    postgresql:* | host=*)
        local password; password="$(printf '%s\n' "$db" | sed -n 's/.*password=\([^ ]*\).*/\1/p')"
        db="$(printf '%s\n' "$db" | sed 's/ *password=[^ ]*//')"
        database="  postgres: \"$db\""
        if [ -n "$password" ]; then
            printf '%s\n' "$password" >"$T/db.password"
            chmod 0600 "$T/db.password"
            database="$database
  password_file: $T/db.password"
        fi
        ;;
    *) database="  sqlite: $db" ;;
    esac
    [ -e "$T/keys/k1.key" ] || { mkdir -p "$T/keys" && "$SERVER_BIN" keygen --dir "$T/keys" --kid k1 >/dev/null; } ||
        ns_die "jitgate-server keygen failed"
    cat >"$T/$name.yaml" <<YAML
server:
  name: approvals.test
  public_url: https://127.0.0.1:$SRV_WEB_PORT
hosts:
  listen: 127.0.0.1:0
  cert: $T/pki/server.pem
  key: $T/pki/server.key
  client_ca: $T/pki/ca.pem
${SERVER_HOSTS_EXTRA:-}
web:
  listen: 127.0.0.1:$web_port
  cert: $T/pki/server.pem
  key: $T/pki/server.key
${SERVER_WEB_EXTRA:-}
oidc:
  issuer: $IDP_ISSUER
  client_id: jitgate-server
  client_secret_file: $T/oidc-client.secret
  ca_file: $IDP_DIR/ca.pem
  groups:
    sox-approvers: sox-approvers
    ops: ops
    sox-auditors: sox-auditors
database:
$database
signing:
  keys:
    - kid: k1
      private_key: $T/keys/k1.key
policy:
  - name: finance
    hosts: ["fin-*"]
    approver_groups: [sox-approvers]
${SERVER_FINANCE_EXTRA:-}
${SERVER_POLICY_EXTRA:-}
${SERVER_CONFIG_EXTRA:-}
YAML
    chmod 0644 "$T/$name.yaml"
}

server_start() {
    local name="${1:-srv}" db="${2:-$T/srv.db}" web_port="${3:-}"
    server_pki
    [ -n "${IDP_ISSUER:-}" ] || idp_start
    server_config "$name" "$db" $web_port
    "$SERVER_BIN" --config "$T/$name.yaml" check-config >>"$T/$name.log" 2>&1 ||
        { cat "$T/$name.log" >&2; ns_die "jitgate-server check-config failed"; }
    "$SERVER_BIN" --config "$T/$name.yaml" migrate >>"$T/$name.log" 2>&1 ||
        { cat "$T/$name.log" >&2; ns_die "jitgate-server migrate failed"; }
    rm -f "$T/$name.ports"
    "$SERVER_BIN" --config "$T/$name.yaml" serve --ports-file "$T/$name.ports" >>"$T/$name.log" 2>&1 &
    SRV_PID=$!
    ns_pids+=("$SRV_PID")
    local i
    for i in $(seq 1 200); do
        [ -s "$T/$name.ports" ] && break
        kill -0 "$SRV_PID" 2>/dev/null || { cat "$T/$name.log" >&2; ns_die "jitgate-server exited at start"; }
        sleep 0.05
    done
    [ -s "$T/$name.ports" ] || { cat "$T/$name.log" >&2; ns_die "jitgate-server did not start listening"; }
    SRV_HOSTS_PORT="$(jq -r .hosts "$T/$name.ports")"
    NS_SHOW_ON_FAIL="${NS_SHOW_ON_FAIL:-} $T/$name.log $T/daemon.log $T/err"
}

# server_configure_host: the host's service backend section (jitgated's config, docs/config.md).
server_configure_host() {
    NS_APPROVAL="approval:
  backend: service
  approver_groups: [sox-approvers]
  service:
    url: https://127.0.0.1:$SRV_HOSTS_PORT
    ca_file: $T/pki/ca.pem
    client_cert: $T/pki/host-fin-db-01.pem
    client_key: $T/pki/host-fin-db-01.key
    connect_timeout: 2s
    request_timeout: 2s
    poll_wait: ${SRV_POLL_WAIT:-20s}
    retries: 2
    issuer: approvals.test
    public_keys:
      k1: $T/keys/k1.pub"
}

# web USER CURL-ARGS...: curl against the web UI with USER's cookie jar and the run's CA.
web() {
    local user="$1"; shift
    curl -sS --max-time 10 --cacert "$T/pki/ca.pem" -b "$T/jar.$user" -c "$T/jar.$user" "$@"
}

# approver_sign_in USER: the OpenID Connect code flow with PKCE, as a browser runs it: the
# server's /login redirects to the IdP; USER signs in there (glewlwyd's REST login, what its
# login page calls); the IdP redirects back to the server's callback with a code.
approver_sign_in() {
    local user="$1" auth callback
    rm -f "$T/jar.$user"
    auth="$(web "$user" -o /dev/null -w '%{redirect_url}' "https://127.0.0.1:$SRV_WEB_PORT/login?return_to=/")"
    case "$auth" in "$IDP_ISSUER"/auth*) ;; *) ns_die "/login did not redirect to the IdP: '$auth'" ;; esac
    curl -sS --max-time 10 --cacert "$IDP_DIR/ca.pem" -b "$T/idpjar.$user" -c "$T/idpjar.$user" \
        -H 'Content-Type: application/json' \
        -d "{\"username\":\"$user\",\"password\":\"$(idp_password "$user")\"}" "$IDP_BASE/api/auth/" >/dev/null ||
        ns_die "IdP sign-in of $user failed"
    callback="$(curl -sS --max-time 10 --cacert "$IDP_DIR/ca.pem" -b "$T/idpjar.$user" -o /dev/null \
        -w '%{redirect_url}' "$auth&g_continue")"
    case "$callback" in "https://127.0.0.1:$SRV_WEB_PORT/oidc/callback?"*) ;; *) ns_die "the IdP did not redirect back: '$callback'" ;; esac
    web "$user" -o /dev/null "$callback" || ns_die "the callback failed for $user"
    grep -q __Host-jitgate_session "$T/jar.$user" || ns_die "no session cookie for $user after sign-in"
}

# csrf_of USER [PATH]: the CSRF token of USER's session, from the forms of the page PATH
# (default "/": every page has the sign-out form, and the token is the session's).
csrf_of() {
    web "$1" "https://127.0.0.1:$SRV_WEB_PORT${2:-/}" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -n1
}

# approver_act USER approve|deny HOST ID [COMMENT]: as the request page's form does; prints
# the page shown afterwards (the redirect is followed).
approver_act() {
    local user="$1" action="$2" host="$3" id="$4" comment="${5:-ok}" csrf
    csrf="$(csrf_of "$user")"
    web "$user" -L --data-urlencode "comment=$comment" --data-urlencode "csrf=$csrf" \
        -H "Origin: https://127.0.0.1:$SRV_WEB_PORT" "https://127.0.0.1:$SRV_WEB_PORT/r/$host/$id/$action"
}

# server_request_ids N: the ids of the N newest pending requests at the server, as the
# approvers' list shows them to USER (default bob).
server_request_ids() {
    local want="$1" user="${2:-bob}" i out
    for i in $(seq 1 200); do
        out="$(web "$user" "https://127.0.0.1:$SRV_WEB_PORT/" | grep -oE 'R-[0-9A-Z]{4,32}' | sort -u || true)"
        if [ "$(printf '%s' "$out" | grep -c . || true)" -ge "$want" ]; then printf '%s\n' "$out"; return 0; fi
        sleep 0.05
    done
    ns_die "expected $want pending request(s) at the server, have: ${out:-none}"
}

# browser_start: chromedriver on 127.0.0.1 for Debian's headless Chromium (tests/support/browser.py).
# The browser's HOME is a directory of the test whose NSS database (~/.pki/nssdb, where Chromium
# on Linux looks for locally trusted roots) trusts the run's CA (jitgate-server) and the IdP's
# CA; no certificate error is ignored. Sets BROWSER_DRIVER; chromedriver is killed at cleanup.
browser_start() {
    local home="$T/browser-home" port i
    command -v chromedriver >/dev/null || ns_die "chromedriver is missing (scripts/install-deps.sh: chromium-driver)"
    command -v certutil >/dev/null || ns_die "certutil is missing (scripts/install-deps.sh: libnss3-tools)"
    mkdir -p "$home/.pki/nssdb"
    certutil -N -d "sql:$home/.pki/nssdb" --empty-password || ns_die "certutil cannot make the browser's NSS db"
    certutil -A -d "sql:$home/.pki/nssdb" -n jitgate-test-ca -t C,, -i "$T/pki/ca.pem" ||
        ns_die "certutil cannot add the run's CA"
    certutil -A -d "sql:$home/.pki/nssdb" -n jitgate-test-idp-ca -t C,, -i "$IDP_DIR/ca.pem" ||
        ns_die "certutil cannot add the IdP's CA"
    port="$(free_port)"
    HOME="$home" chromedriver --port="$port" --log-path="$T/chromedriver.log" >/dev/null 2>&1 &
    ns_pids+=("$!")
    # A browser left running (browser.py killed mid-way) ends too: its pid is in its profile's lock.
    ns_cleanup_hooks+=("browser_kill_leftovers")
    BROWSER_DRIVER="http://127.0.0.1:$port"
    for i in $(seq 1 100); do
        curl -sS --max-time 2 "$BROWSER_DRIVER/status" 2>/dev/null | grep -q '"ready": *true' && break
        sleep 0.1
    done
    curl -sS --max-time 2 "$BROWSER_DRIVER/status" 2>/dev/null | grep -q '"ready": *true' ||
        { tail -n 20 "$T/chromedriver.log" >&2; ns_die "chromedriver did not start"; }
    NS_SHOW_ON_FAIL="${NS_SHOW_ON_FAIL:-} $T/chromedriver.log"
}

browser_kill_leftovers() {
    local lock pid
    for lock in "$T"/chromium-*/SingletonLock; do
        [ -L "$lock" ] || continue
        pid="$(readlink "$lock")"; pid="${pid##*-}"
        case "$pid" in '' | *[!0-9]*) continue ;; esac
        # only if that pid is still this profile's browser
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--user-data-dir=${lock%/SingletonLock}" || continue
        kill "$pid" 2>/dev/null || true
    done
}

# browser_act approve|deny|self-approve USER HOST ID EXPECTED-COMMAND [COMMENT]: USER in a fresh
# Chromium profile opens the request page, signs in at the IdP by typing, checks the command
# shown is exactly EXPECTED-COMMAND and acts; prints the page shown afterwards.
browser_act() {
    local cmd="$1" user="$2" host="$3" id="$4" expect="$5" comment="${6:-}"
    python3 "$BROWSER_PY" "$cmd" --driver "$BROWSER_DRIVER" --dir "$T" --web "https://127.0.0.1:$SRV_WEB_PORT" \
        --user "$user" --idp-json "$IDP_DIR/idp.json" --host "$host" --id "$id" \
        --expect-command "$expect" --comment "$comment"
}
