#!/bin/bash
# tests/support/idp/glewlwyd.sh — a real OpenID Connect provider for the tests: glewlwyd (the
# Debian package), on 127.0.0.1 with TLS, its own SQLite database and keys made for the run.
#
#   glewlwyd.sh start DIR REDIRECT_URI...   start it (DIR is created; one left running in DIR is stopped first)
#   glewlwyd.sh stop DIR                    stop it (SIGTERM, then SIGKILL after 5 s); idempotent
#   glewlwyd.sh self-test                   start one in a scratch dir, sign in with curl, stop it
#
# After `start`, DIR holds (README.md beside this file has the details):
#   idp.json      {"issuer","issuers":{ALG:ISSUER},"base_url","ca_file","client_id","client_secret","redirect_uris",
#                  "admin":{"username","password"},"users":{NAME:{"password","groups"}},"pid","port"}
#   issuer        the issuer URL alone (https://127.0.0.1:PORT/api/oidc)
#   ca.pem        the CA of the IdP's TLS certificate (pin it)
#   glewlwyd.log  glewlwyd's own log; glewlwyd.pid its pid
# Secrets (client secret, passwords, keys) are mode 0600 and live only in DIR.
# No network beyond 127.0.0.1, no manual step. Needs: glewlwyd, sqlite3, jq, openssl, curl.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
make_pki="$here/../make_pki.sh"
client_id=jitgate-server
users=(alice bob carol dave erin)
# Groups by user (space-separated); alice is in none.
declare -A user_groups=([alice]="" [bob]="sox-approvers" [carol]="sox-approvers finance" [dave]="ops" [erin]="ops sox-auditors")
declare -A user_names=([alice]="Alice Anders" [bob]="Bob Brown" [carol]="Carol Chen" [dave]="Dave Diaz" [erin]="Erin Eze")

die() {
    echo "glewlwyd.sh: $*" >&2
    exit 1
}

need() {
    local t
    for t in "$@"; do command -v "$t" >/dev/null || die "'$t' is not installed (scripts/install-deps.sh installs it)"; done
}

# A random token of [A-Za-z0-9_-] (base64url of 24 bytes: 32 characters).
rand() { openssl rand -base64 24 | tr '+/' '-_' | tr -d '=\n'; }

# The package's SQLite schema with its default rows (the user 'admin' with password 'password',
# the scopes g_admin, g_profile and openid, the database user and client backends).
schema_file() {
    local f=/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3
    [ -r "$f" ] && { cat "$f"; return; }
    f=/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz
    [ -r "$f" ] && { zcat "$f"; return; }
    die "glewlwyd's SQLite schema is not installed (dbconfig-common data or $f)"
}

# The webapp's config.json: /usr/share/glewlwyd/webapp/config.json is a symlink to
# /etc/glewlwyd/config-2.7.json, which Debian 12 ships as a directory holding config.json.
webapp_config() {
    local f=/usr/share/glewlwyd/webapp/config.json
    if [ -f "$f" ]; then cat "$f"; return; fi
    if [ -f "$f/config.json" ]; then cat "$f/config.json"; return; fi
    die "glewlwyd's webapp config.json is not installed"
}

write_config() {
    local dir=$1 port=$2
    cat >"$dir/glewlwyd.conf" <<CONF
port=$port
bind_address="127.0.0.1"
external_url="https://127.0.0.1:$port"
login_url="login.html"
api_prefix="api"
static_files_path="$dir/webapp/"
allow_origin="https://127.0.0.1:$port"
log_mode="file"
log_level="INFO"
log_file="$dir/glewlwyd.log"
cookie_secure=1
cookie_same_site="lax"
session_expiration=3600
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
allow_multiple_user_per_session=false
login_api_enabled=true
plugin_api_run_enabled=""
add_x_frame_option_header_deny=true
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="/usr/lib/glewlwyd/user"
client_module_path="/usr/lib/glewlwyd/client"
user_auth_scheme_module_path="/usr/lib/glewlwyd/scheme"
plugin_module_path="/usr/lib/glewlwyd/plugin"
use_secure_connection=true
secure_connection_key_file="$dir/pki/server.key"
secure_connection_pem_file="$dir/pki/server.pem"
hash_algorithm="SHA512"
database = { type = "sqlite3"; path = "$dir/glewlwyd.db"; };
static_files_mime_types = (
  { extension = ".html"; mime_type = "text/html"; },
  { extension = ".css"; mime_type = "text/css"; },
  { extension = ".js"; mime_type = "application/javascript"; },
  { extension = ".json"; mime_type = "application/json"; },
  { extension = ".png"; mime_type = "image/png"; },
  { extension = ".jpg"; mime_type = "image/jpeg"; },
  { extension = ".ttf"; mime_type = "font/ttf"; },
  { extension = ".woff"; mime_type = "font/woff"; },
  { extension = ".woff2"; mime_type = "font/woff2"; },
  { extension = ".otf"; mime_type = "font/otf"; },
  { extension = ".eot"; mime_type = "application/vnd.ms-fontobject"; },
  { extension = ".svg"; mime_type = "image/svg+xml"; },
  { extension = ".ico"; mime_type = "image/x-icon"; }
);
CONF
}

# The database: the package's schema, then the OIDC plugin instance, the scopes the server asks
# for, the `groups` user property, and each user's consent for the client (so that sign-in is
# one login step, as with a corporate IdP whose apps are pre-approved).
# plugin_params ISSUER JWT_TYPE KEY_FILE PUB_FILE — the OIDC plugin's parameters (JSON).
plugin_params() {
    jq -n -c --arg iss "$1" --arg type "$2" --rawfile key "$3" --rawfile cert "$4" '{
        iss: $iss, "subject-type": "public",
        "jwt-type": $type, "jwt-key-size": "256", key: $key, cert: $cert,
        "access-token-duration": 3600, "refresh-token-duration": 1209600, "code-duration": 600,
        "refresh-token-rolling": false, "allow-non-oidc": false,
        "auth-type-code-enabled": true, "auth-type-code-revoke-replayed": true,
        "auth-type-token-enabled": false, "auth-type-id-token-enabled": true,
        "auth-type-none-enabled": false, "auth-type-password-enabled": false,
        "auth-type-client-enabled": false, "auth-type-device-enabled": false,
        "auth-type-refresh-enabled": true,
        "pkce-allowed": true, "pkce-method-plain-allowed": false, "pkce-required": true,
        "scope": [], "allowed-scope": ["openid", "profile", "email"],
        "name-claim": "mandatory", "email-claim": "mandatory", "scope-claim": "no",
        claims: [
          {name: "preferred_username", "user-property": "username", type: "string", mandatory: true},
          {name: "groups", "user-property": "groups", type: "string", mandatory: true}
        ],
        "address-claim": {type: "no"},
        "request-parameter-allow": false, "jwks-show": true,
        "introspection-revocation-allowed": false, "register-client-allowed": false,
        "session-management-allowed": false
    }'
}

# The OIDC plugin instances: NAME JWT_TYPE KEY_BASENAME ALG. `oidc` (RS256) is the main one;
# the two others are the same provider signing with ES256 and EdDSA, each its own issuer
# ({base}/api/NAME), so that every algorithm the server accepts is tested against a real IdP.
plugins=("oidc rsa signing-rsa RS256" "oidc-es256 ecdsa signing-es256 ES256" "oidc-eddsa eddsa signing-eddsa EdDSA")

seed_database() {
    local dir=$1 plugin_json user_module_json u p name type key alg
    # pbkdf2-iterations: 1000 instead of the default, so that creating five users takes
    # milliseconds, not two seconds (a throw-away IdP; the hashes never leave DIR).
    user_module_json='{"use-glewlwyd-connection":true,"pbkdf2-iterations":1000,"data-format":{"groups":{"multiple":true,"read":true,"write":true,"profile-read":true,"profile-write":false}}}'
    {
        # One transaction: statement by statement, SQLite syncs the disk ~350 times (3 s).
        echo "BEGIN;"
        schema_file
        echo "UPDATE g_user_module_instance SET gumi_parameters='$user_module_json' WHERE gumi_name='database';"
        echo "UPDATE g_scope SET gs_password_required=1 WHERE gs_name='openid';"
        echo "INSERT INTO g_scope (gs_name, gs_display_name, gs_description, gs_password_required, gs_password_max_age) VALUES ('profile', 'Profile', 'Name and user name', 1, 0);"
        echo "INSERT INTO g_scope (gs_name, gs_display_name, gs_description, gs_password_required, gs_password_max_age) VALUES ('email', 'E-mail', 'E-mail address', 1, 0);"
        for p in "${plugins[@]}"; do
            read -r name type key alg <<<"$p"
            # The issuer names the port: a placeholder here, set by launch() for each port tried.
            plugin_json=$(plugin_params "https://127.0.0.1:0/api/$name" "$type" "$dir/$key.key" "$dir/$key.pub")
            echo "INSERT INTO g_plugin_module_instance (gpmi_module, gpmi_name, gpmi_display_name, gpmi_parameters) VALUES ('oidc', '$name', 'OpenID Connect $alg', '$plugin_json');"
        done
        for u in "${users[@]}"; do
            for s in openid profile email; do
                echo "INSERT INTO g_client_user_scope (gs_id, gcus_username, gcus_client_id) VALUES ((SELECT gs_id FROM g_scope WHERE gs_name='$s'), '$u', '$client_id');"
            done
        done
        echo "COMMIT;"
        # WAL: glewlwyd's own writes (users, sessions, codes) then cost one sync each, not two.
        echo "PRAGMA journal_mode=WAL;"
    } | sqlite3 -bail "$dir/glewlwyd.db" >/dev/null || die "seeding the database failed"
}

# The webapp served at the IdP's own origin: a copy of the package's files (2.6 MB; glewlwyd's
# static file server refuses symlinks that leave static_files_path, and the package links
# jQuery, Bootstrap and the fonts from other packages) and a config.json that
# points at this instance (its GlewlwydUrl "./" is relative, so the package's works as is).
make_webapp() {
    local dir=$1 f
    mkdir -p "$dir/webapp"
    for f in /usr/share/glewlwyd/webapp/*; do
        [ "$(basename "$f")" = config.json ] && continue
        cp -RL "$f" "$dir/webapp/"
    done
    webapp_config >"$dir/webapp/config.json"
    chmod -R go+rX "$dir/webapp"
}

# api METHOD PATH [JSON] — an admin REST call with the admin session in $dir/admin.cookies.
api() {
    local method=$1 path=$2 body=${3-} out code
    out=$(mktemp "$dir/.api.XXXXXX")
    code=$(curl -sS -o "$out" -w '%{http_code}' --cacert "$dir/ca.pem" -b "$dir/admin.cookies" -c "$dir/admin.cookies" \
        -X "$method" -H 'Content-Type: application/json' ${body:+--data-binary "$body"} "$base$path") ||
        { rm -f "$out"; die "admin API $method $path: curl failed"; }
    if [ "$code" != 200 ]; then
        echo "glewlwyd.sh: admin API $method $path answered $code: $(head -c 400 "$out")" >&2
        rm -f "$out"
        exit 1
    fi
    rm -f "$out"
}

# Starts glewlwyd on a free port: a random port in 20000-59999, another one if bind fails.
launch() {
    local dir=$1 port pid
    for _ in 1 2 3 4 5 6 7 8; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        write_config "$dir" "$port"
        # Each plugin's issuer for this port (glewlwyd reads the plugins when it starts).
        sqlite3 -bail "$dir/glewlwyd.db" "UPDATE g_plugin_module_instance SET gpmi_parameters = json_set(gpmi_parameters, '\$.iss', 'https://127.0.0.1:$port/api/' || gpmi_name);" ||
            die "setting the issuers failed"
        : >"$dir/glewlwyd.log"
        setsid glewlwyd --config-file="$dir/glewlwyd.conf" >"$dir/glewlwyd.out" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$dir/glewlwyd.pid"
        for _ in $(seq 1 200); do
            if ! kill -0 "$pid" 2>/dev/null; then break; fi
            if curl -sf -o /dev/null --cacert "$dir/ca.pem" "https://127.0.0.1:$port/api/oidc/.well-known/openid-configuration"; then
                echo "$port"
                return 0
            fi
            sleep 0.05
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            die "glewlwyd (pid $pid) did not answer on port $port within 10 s; see $dir/glewlwyd.log"
        fi
        # It exited: a port in use is retried, anything else is fatal.
        if ! grep -qiE "bind|address already in use|Error ulfius_start" "$dir/glewlwyd.out" "$dir/glewlwyd.log"; then
            die "glewlwyd exited at start-up: $(tail -n 5 "$dir/glewlwyd.out" "$dir/glewlwyd.log" | tr '\n' ' ')"
        fi
    done
    die "no free port found for glewlwyd after 8 tries"
}

cmd_start() {
    [ $# -ge 2 ] || die "usage: glewlwyd.sh start DIR REDIRECT_URI..."
    need glewlwyd sqlite3 jq openssl curl setsid
    dir=$1
    shift
    local redirect_uris=("$@") uri
    for uri in "${redirect_uris[@]}"; do
        case $uri in http://* | https://*) ;; *) die "redirect URI must be http(s)://…: $uri" ;; esac
    done
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    # A glewlwyd left running in DIR by an interrupted run is stopped first (only if it is
    # ours: cmd_stop checks that its command line names DIR's config).
    cmd_stop "$dir"
    rm -rf "$dir/pki" "$dir/webapp" "$dir/glewlwyd.db" "$dir/admin.cookies" "$dir/idp.json" "$dir/issuer"
    umask 077
    bash "$make_pki" "$dir/pki"
    cp "$dir/pki/ca.pem" "$dir/ca.pem"
    chmod 0644 "$dir/ca.pem"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/signing-rsa.key" 2>/dev/null ||
        die "openssl could not make the RSA signing key"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/signing-es256.key" 2>/dev/null ||
        die "openssl could not make the P-256 signing key"
    openssl genpkey -algorithm ED25519 -out "$dir/signing-eddsa.key" 2>/dev/null ||
        die "openssl could not make the Ed25519 signing key"
    for f in signing-rsa signing-es256 signing-eddsa; do
        openssl pkey -in "$dir/$f.key" -pubout -out "$dir/$f.pub" 2>/dev/null || die "openssl could not write $f.pub"
    done
    make_webapp "$dir"

    local port
    seed_database "$dir"
    port=$(launch "$dir")
    base="https://127.0.0.1:$port/api"
    issuer="$base/oidc"

    # Admin session with the package's default admin (admin/password), used to create the
    # client and the users, then to replace the admin's password.
    local admin_password client_secret code
    code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$dir/ca.pem" -c "$dir/admin.cookies" \
        -H 'Content-Type: application/json' --data-binary '{"username":"admin","password":"password"}' "$base/auth/") ||
        die "admin login: curl failed"
    [ "$code" = 200 ] || die "admin login answered $code"

    local p name type key alg issuers_json='{}'
    for p in "${plugins[@]}"; do
        read -r name type key alg <<<"$p"
        issuers_json=$(jq -c --arg alg "$alg" --arg iss "$base/$name" '.[$alg] = $iss' <<<"$issuers_json")
    done

    client_secret=$(rand)
    api POST /client/ "$(jq -n -c --arg id "$client_id" --arg secret "$client_secret" --args '{
        client_id: $id, name: "jitgate-server", description: "jitgate approvers web UI",
        enabled: true, confidential: true, client_secret: $secret,
        redirect_uri: $ARGS.positional, authorization_type: ["code", "refresh_token"],
        token_endpoint_auth_method: ["client_secret_basic", "client_secret_post"], scope: []
    }' "${redirect_uris[@]}")"

    local users_json='{}' u password groups_json
    for u in "${users[@]}"; do
        password="$u-$(rand)"
        # shellcheck disable=SC2086 # word splitting of the group list is intended
        groups_json=$(jq -n -c '$ARGS.positional' --args ${user_groups[$u]})
        api POST /user/ "$(jq -n -c --arg u "$u" --arg p "$password" --arg n "${user_names[$u]}" --argjson g "$groups_json" '{
            username: $u, name: $n, email: ($u + "@example.test"), password: $p, enabled: true,
            scope: ["openid", "profile", "email"], groups: $g
        }')"
        users_json=$(jq -c --arg u "$u" --arg p "$password" --argjson g "$groups_json" '.[$u] = {password: $p, groups: $g}' <<<"$users_json")
    done

    admin_password=$(rand)
    api PUT /user/admin "$(jq -n -c --arg p "$admin_password" '{name: "The Administrator", email: "", enabled: true, scope: ["g_admin", "g_profile"], password: $p}')"
    curl -sS -o /dev/null --cacert "$dir/ca.pem" -b "$dir/admin.cookies" -X DELETE "$base/auth/" || true
    rm -f "$dir/admin.cookies"

    jq -n --arg issuer "$issuer" --arg base "https://127.0.0.1:$port" --arg ca "$dir/ca.pem" \
        --arg cid "$client_id" --arg secret "$client_secret" --arg ap "$admin_password" \
        --argjson users "$users_json" --argjson issuers "$issuers_json" --argjson pid "$(cat "$dir/glewlwyd.pid")" --argjson port "$port" \
        '{issuer: $issuer, issuers: $issuers, base_url: $base, ca_file: $ca, client_id: $cid, client_secret: $secret,
          redirect_uris: $ARGS.positional, admin: {username: "admin", password: $ap},
          users: $users, pid: $pid, port: $port}' --args "${redirect_uris[@]}" >"$dir/idp.json"
    echo "$issuer" >"$dir/issuer"
    chmod 0644 "$dir/issuer"
    echo "$issuer"
}

cmd_stop() {
    [ $# -eq 1 ] || die "usage: glewlwyd.sh stop DIR"
    local dir=$1 pid
    [ -f "$dir/glewlwyd.pid" ] || return 0
    pid=$(cat "$dir/glewlwyd.pid")
    # Only our process: the pid file's pid, and only if it is glewlwyd with this DIR's config.
    if kill -0 "$pid" 2>/dev/null && grep -qa "$dir/glewlwyd.conf" "/proc/$pid/cmdline" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$dir/glewlwyd.pid"
}

# b64url_json PART — decodes one base64url JWT part to JSON on stdout.
b64url_json() {
    local s=$1
    s=$(printf '%s' "$s" | tr '_-' '/+')
    case $((${#s} % 4)) in 2) s="$s==" ;; 3) s="$s=" ;; esac
    printf '%s' "$s" | base64 -d
}

# urlencode S
urlencode() { jq -rn --arg s "$1" '$s|@uri'; }

cmd_self_test() {
    need jq curl openssl
    local redirect=http://127.0.0.1:9/callback t0 t1
    self_test_dir=$(mktemp -d)
    trap 'bash "$here/glewlwyd.sh" stop "$self_test_dir"; rm -rf "$self_test_dir"' EXIT
    local tmp=$self_test_dir
    t0=$(date +%s.%N)
    bash "$here/glewlwyd.sh" start "$tmp" "$redirect" >/dev/null
    t1=$(date +%s.%N)
    echo "started in $(echo "$t1 - $t0" | bc) s"
    local cfg issuer ca secret disc auth_ep token_ep jwks_uri
    cfg="$tmp/idp.json"
    issuer=$(jq -r .issuer "$cfg")
    ca=$(jq -r .ca_file "$cfg")
    secret=$(jq -r .client_secret "$cfg")

    # 1. Discovery: the issuer must equal the one configured, and the endpoints be under it.
    disc=$(curl -sfS --cacert "$ca" "$issuer/.well-known/openid-configuration")
    [ "$(jq -r .issuer <<<"$disc")" = "$issuer" ] || die "self-test: discovery issuer $(jq -r .issuer <<<"$disc") != $issuer"
    auth_ep=$(jq -r .authorization_endpoint <<<"$disc")
    token_ep=$(jq -r .token_endpoint <<<"$disc")
    jwks_uri=$(jq -r .jwks_uri <<<"$disc")
    jq -e '.code_challenge_methods_supported | index("S256")' <<<"$disc" >/dev/null || die "self-test: S256 not in discovery"
    echo "discovery ok: $auth_ep $token_ep $jwks_uri"
    curl -sfS --cacert "$ca" "$jwks_uri" | jq -e '.keys[0].kty == "RSA" and (.keys[0].kid | length > 0)' >/dev/null ||
        die "self-test: JWKS has no RSA key with a kid"
    echo "jwks ok"
    local alg other
    for alg in ES256 EdDSA; do
        other=$(jq -r ".issuers.$alg" "$cfg")
        [ "$(curl -sfS --cacert "$ca" "$other/.well-known/openid-configuration" | jq -r .issuer)" = "$other" ] ||
            die "self-test: discovery of the $alg issuer $other failed"
        curl -sfS --cacert "$ca" "$other/jwks" | jq -e --arg alg "$alg" '.keys[0].alg == $alg' >/dev/null ||
            die "self-test: the $alg issuer's JWKS has no $alg key"
    done
    echo "ES256 and EdDSA issuers ok"

    # 2. Sign in as bob with the password scheme: POST /api/auth/ sets the session cookie.
    local jar="$tmp/bob.cookies" password code
    password=$(jq -r .users.bob.password "$cfg")
    code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$ca" -c "$jar" -H 'Content-Type: application/json' \
        --data-binary "$(jq -n -c --arg p "$password" '{username: "bob", password: $p}')" "$(jq -r .base_url "$cfg")/api/auth/")
    [ "$code" = 200 ] || die "self-test: bob's login answered $code"
    code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$ca" -H 'Content-Type: application/json' \
        --data-binary '{"username":"bob","password":"wrong-password"}' "$(jq -r .base_url "$cfg")/api/auth/")
    [ "$code" = 401 ] || die "self-test: a wrong password answered $code, not 401"
    echo "login ok (wrong password: 401)"

    # 3. Authorization request with PKCE S256, state and nonce; g_continue says "the login
    #    page is done" (the SPA adds it); the answer is a 302 to the redirect URI with the code.
    local verifier challenge state nonce location authcode
    verifier=$(rand)$(rand)
    challenge=$(printf '%s' "$verifier" | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
    state=$(rand)
    nonce=$(rand)
    location=$(curl -sS -o /dev/null -w '%{redirect_url}' --cacert "$ca" -b "$jar" \
        "$auth_ep?response_type=code&client_id=jitgate-server&redirect_uri=$(urlencode "$redirect")&scope=openid%20profile%20email&state=$state&nonce=$nonce&code_challenge=$challenge&code_challenge_method=S256&g_continue")
    case $location in "$redirect?"*) ;; *) die "self-test: authorization answered Location: $location" ;; esac
    authcode=$(sed -n 's/.*[?&]code=\([^&]*\).*/\1/p' <<<"$location")
    [ -n "$authcode" ] || die "self-test: no code in $location"
    [ "$(sed -n 's/.*[?&]state=\([^&]*\).*/\1/p' <<<"$location")" = "$state" ] || die "self-test: state not returned"
    echo "authorization ok: code received"

    # Without the verifier the code is refused; a wrong verifier too (PKCE is enforced).
    code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$ca" -u "jitgate-server:$secret" \
        --data-urlencode grant_type=authorization_code --data-urlencode "code=$authcode" \
        --data-urlencode "redirect_uri=$redirect" --data-urlencode "code_verifier=$(rand)$(rand)" "$token_ep")
    [ "$code" != 200 ] || die "self-test: a wrong code_verifier was accepted"

    # 4. Token exchange (client_secret_basic) with the right verifier — a fresh code, since
    #    the IdP may spend a code on a failed attempt.
    location=$(curl -sS -o /dev/null -w '%{redirect_url}' --cacert "$ca" -b "$jar" \
        "$auth_ep?response_type=code&client_id=jitgate-server&redirect_uri=$(urlencode "$redirect")&scope=openid%20profile%20email&state=$state&nonce=$nonce&code_challenge=$challenge&code_challenge_method=S256&g_continue")
    authcode=$(sed -n 's/.*[?&]code=\([^&]*\).*/\1/p' <<<"$location")
    local tokens id_token header claims now
    tokens=$(curl -sfS --cacert "$ca" -u "jitgate-server:$secret" \
        --data-urlencode grant_type=authorization_code --data-urlencode "code=$authcode" \
        --data-urlencode "redirect_uri=$redirect" --data-urlencode "code_verifier=$verifier" "$token_ep") ||
        die "self-test: token exchange failed"
    id_token=$(jq -r .id_token <<<"$tokens")
    header=$(b64url_json "$(cut -d. -f1 <<<"$id_token")")
    claims=$(b64url_json "$(cut -d. -f2 <<<"$id_token")")
    now=$(date +%s)
    jq -e '.alg == "RS256" and (.kid | length > 0)' <<<"$header" >/dev/null || die "self-test: ID token header $header"
    jq -e --arg iss "$issuer" --arg nonce "$nonce" --argjson now "$now" '
        .iss == $iss and .aud == "jitgate-server" and .nonce == $nonce and
        .preferred_username == "bob" and .groups == ["sox-approvers"] and .name == "Bob Brown" and
        (.sub | length > 0) and .exp > $now and .iat <= $now + 5' <<<"$claims" >/dev/null ||
        die "self-test: ID token claims $claims"
    echo "token ok: $(jq -c '{iss, aud, sub, preferred_username, groups, name, nonce}' <<<"$claims")"

    # 5. The code again: refused by the IdP.
    code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$ca" -u "jitgate-server:$secret" \
        --data-urlencode grant_type=authorization_code --data-urlencode "code=$authcode" \
        --data-urlencode "redirect_uri=$redirect" --data-urlencode "code_verifier=$verifier" "$token_ep")
    [ "$code" != 200 ] || die "self-test: a reused code was accepted"
    echo "code reuse refused ($code)"
    echo "self-test passed"
}

case ${1-} in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
self-test) shift; cmd_self_test "$@" ;;
*) die "usage: glewlwyd.sh start DIR REDIRECT_URI... | stop DIR | self-test" ;;
esac
