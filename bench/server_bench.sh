#!/bin/bash
# bench/server_bench.sh — jitgate-server under load (docs/PERFORMANCE.md, "jitgate-server").
# Builds jitgate-server and bench/server_bench in Release, makes a throw-away PKI, signing key
# and config in a scratch directory, and runs, one at a time:
#   1. 10,000 parked long polls on one server process (SQLite): RSS and CPU while idle;
#   2. approve -> grant on the parked poll, p50/p99 (SQLite, then PostgreSQL);
#   3. requests filed per second over keep-alive connections (each database);
#   4. two replicas on one PostgreSQL: poll parked on A, approval on B, p50/p99;
#   5. audit ingest: 16 hosts shipping hash-chained events at once, events/s acknowledged
#      (after commit), and the database's size per million events (SQLite, then PostgreSQL).
# Needs root (config and key files must be root-owned, PostgreSQL runs as `postgres`) and the
# packages of scripts/install-deps.sh. Not run by the tests. Each figure is printed with the
# machine's load average at the time.
# Usage: bench/server_bench.sh [--quick] [--nodelay] [park] [sqlite] [pg] [ingest]
#   --quick    smaller counts and a 10 s idle window
#   --nodelay  a diagnosis, not the product: runs every server with LD_PRELOAD=tcp_nodelay.so
#              (TCP_NODELAY on each accepted connection), to tell Nagle's share of a latency
#   park / sqlite / pg / ingest   only these parts (default: all): 1; 2 and 3 on SQLite; 2, 3
#              and 4 on PostgreSQL; 5 on both
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
build="${JITGATE_BENCH_BUILD:-$root/build-bench}"

polls=10000 idle=30 latency_n=250 rate_n=2000 ingest_n=20000 preload="" parts=()
for arg in "$@"; do
    case "$arg" in
    --quick) polls=1000 idle=10 latency_n=50 rate_n=300 ingest_n=2000 ;;
    --nodelay) preload="$build/bench/tcp_nodelay.so" ;;
    park | sqlite | pg | ingest) parts+=("$arg") ;;
    *) echo "usage: server_bench.sh [--quick] [--nodelay] [park] [sqlite] [pg] [ingest]" >&2; exit 2 ;;
    esac
done
[ ${#parts[@]} -gt 0 ] || parts=(park sqlite pg ingest)
want() { [[ " ${parts[*]} " == *" $1 "* ]]; }

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DJITGATE_BUILD_BENCH=ON -DJITGATE_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target jitgate-server server_bench tcp_nodelay >/dev/null
server_bin="$build/server/jitgate-server"
bench_bin="$build/bench/server_bench"

# Every parked poll is a connection on both sides; each process needs one descriptor per poll.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((polls + 1000)) ] || { echo "server_bench.sh: ulimit -n $(ulimit -n) is below $((polls + 1000))" >&2; exit 1; }

T="$(mktemp -d /tmp/jitgate-server-bench.XXXXXX)"
chmod 0755 "$T"
pids=()
pg_dir=""
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    [ -z "$pg_dir" ] || bash "$root/tests/support/pg_scratch.sh" stop "$pg_dir" >/dev/null 2>&1 || true
    rm -rf "$T"
}
trap cleanup EXIT

load() { uptime | sed 's/.*load average: /load /'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# The PKI (server certificate for 127.0.0.1) and a host certificate for bench-01.
bash "$root/tests/support/make_pki.sh" "$T/pki"
(
    cd "$T/pki" && umask 077
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout host.key -subj /CN=bench-01 \
        -out host.csr 2>/dev/null
    printf 'subjectAltName=DNS:bench-01\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' >host.ext
    openssl x509 -req -in host.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile host.ext \
        -out host.pem 2>/dev/null
)
# One certificate for the 16 hosts of the ingest part (a certificate may name several hosts;
# each ships its own batches).
(
    cd "$T/pki" && umask 077
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout fleet.key -subj /CN=bench-01 \
        -out fleet.csr 2>/dev/null
    sans="$(for i in $(seq -w 1 16); do printf 'DNS:bench-%s,' "$i"; done)"
    printf 'subjectAltName=%s\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' "${sans%,}" >fleet.ext
    openssl x509 -req -in fleet.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile fleet.ext \
        -out fleet.pem 2>/dev/null
)
mkdir -p "$T/keys"
"$server_bin" keygen --dir "$T/keys" --kid k1 >/dev/null

# The server needs an OIDC client to start; nobody signs in through it (the bench writes the
# approver's session row itself), so the issuer is never contacted.
(umask 077 && echo "bench-client-secret" >"$T/oidc-client.secret")

# start_server NAME DATABASE: writes NAME.yaml, migrates, starts; sets PID, HOSTS_URL, WEB_URL.
start_server() {
    local name="$1" db="$2" web_port database
    web_port="$(free_port)"
    case "$db" in
    host=* | postgresql:*) database="  postgres: \"$db\"" ;;
    *) database="  sqlite: $db" ;;
    esac
    cat >"$T/$name.yaml" <<YAML
server:
  name: approvals.bench
  public_url: https://127.0.0.1:$web_port
hosts:
  listen: 127.0.0.1:0
  cert: $T/pki/server.pem
  key: $T/pki/server.key
  client_ca: $T/pki/ca.pem
  max_pending_per_host: 10000   # one bench host files every request
web:
  listen: 127.0.0.1:$web_port
oidc:
  issuer: https://idp.bench.invalid
  client_id: jitgate-server
  client_secret_file: $T/oidc-client.secret
  ca_file: $T/pki/ca.pem
database:
$database
signing:
  keys:
    - kid: k1
      private_key: $T/keys/k1.key
policy:
  - name: bench
    hosts: ["bench-*"]
    approver_groups: [sox-approvers]
audit:
  syslog_facility: local7
YAML
    chmod 0644 "$T/$name.yaml"
    "$server_bin" --config "$T/$name.yaml" migrate >>"$T/$name.log" 2>&1 || { cat "$T/$name.log" >&2; exit 1; }
    LD_PRELOAD="$preload" "$server_bin" --config "$T/$name.yaml" serve --ports-file "$T/$name.ports" >>"$T/$name.log" 2>&1 &
    PID=$!
    pids+=("$PID")
    for _ in $(seq 1 200); do
        [ -s "$T/$name.ports" ] && break
        kill -0 "$PID" 2>/dev/null || { cat "$T/$name.log" >&2; exit 1; }
        sleep 0.05
    done
    [ -s "$T/$name.ports" ] || { cat "$T/$name.log" >&2; echo "server_bench.sh: $name did not start" >&2; exit 1; }
    HOSTS_URL="https://127.0.0.1:$(jq -r .hosts "$T/$name.ports")"
    WEB_URL="https://127.0.0.1:$web_port"
}

stop_server() { kill "$1"; wait "$1" 2>/dev/null || true; }

host_args=(--ca "$T/pki/ca.pem" --cert "$T/pki/host.pem" --key "$T/pki/host.key" --host bench-01)
run() { # run LABEL ARGS...: one measurement, with the load next to it
    local label="$1"; shift
    echo "== $label ($(load))"
    "$bench_bin" "$@" "${host_args[@]}"
    echo "   after: $(load)"
}

echo "== machine: $(nproc) cores, $(free -m | awk '/Mem:/ {print $2}') MiB, kernel $(uname -r), $(df -T "$T" | awk 'NR==2 {print $2}') on $T; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)${preload:+; servers with TCP_NODELAY (diagnosis)}"

# --- SQLite ---
if want park; then
start_server park "$T/park.db"
run "1. $polls parked long polls, one process, SQLite (idle ${idle}s)" park --hosts-url "$HOSTS_URL" \
    --count "$polls" --concurrency 32 --idle "$idle" --server-pid "$PID"
stop_server "$PID"
fi

if want sqlite; then
start_server sqlite "$T/sqlite.db"
for c in 8 32; do
    run "3. filing rate, SQLite, $c keep-alive connections" rate --hosts-url "$HOSTS_URL" --count "$rate_n" --concurrency "$c" \
        --server-pid "$PID"
done
run "2. approve -> grant on the parked poll, SQLite" latency --hosts-url "$HOSTS_URL" --web-url "$WEB_URL" \
    --sqlite "$T/sqlite.db" --count "$latency_n"
stop_server "$PID"
fi

fleet_args=(--ca "$T/pki/ca.pem" --cert "$T/pki/fleet.pem" --key "$T/pki/fleet.key")
# ingest_run LABEL: part 5 against the server started last ($PID, $HOSTS_URL).
ingest_run() {
    echo "== 5. audit ingest, $1, 16 hosts x $ingest_n events, batches of 500 ($(load))"
    "$bench_bin" ingest --hosts-url "$HOSTS_URL" --hosts 16 --count "$ingest_n" --batch 500 --server-pid "$PID" \
        "${fleet_args[@]}"
    echo "   after: $(load)"
}
mib_per_million() { # BYTES EVENTS
    echo "$1 $2" | awk '{printf "%.0f", $1 / 1048576 / ($2 / 1000000)}'
}

if want ingest; then
start_server ingest "$T/ingest.db"
ingest_run SQLite
stop_server "$PID"
size=$(( $(stat -c %s "$T/ingest.db") + $(stat -c %s "$T/ingest.db-wal" 2>/dev/null || echo 0) ))
echo "RESULT sqlite_bytes=$size mib_per_million_events=$(mib_per_million "$size" $((16 * ingest_n)))"
fi

# --- PostgreSQL 15 (scratch, fsync on) ---
want pg || want ingest || exit 0
pg_dir="$T/pg"
conninfo="$(bash "$root/tests/support/pg_scratch.sh" start "$pg_dir")"
if want ingest; then
    start_server pg-ingest "$conninfo"
    ingest_run PostgreSQL
    stop_server "$PID"
    size="$(psql "$conninfo" -Atc "SELECT pg_total_relation_size('audit_events')")"
    echo "RESULT postgres_audit_events_bytes=$size mib_per_million_events=$(mib_per_million "$size" $((16 * ingest_n)))"
fi
want pg || exit 0
start_server pg-a "$conninfo"
pid_a=$PID hosts_a=$HOSTS_URL web_a=$WEB_URL
for c in 8 32; do
    run "3. filing rate, PostgreSQL, $c keep-alive connections" rate --hosts-url "$hosts_a" --count "$rate_n" --concurrency "$c" \
        --server-pid "$pid_a"
done
run "2. approve -> grant on the parked poll, PostgreSQL" latency --hosts-url "$hosts_a" --web-url "$web_a" \
    --postgres "$conninfo" --count "$latency_n"
start_server pg-b "$conninfo"
run "4. cross-replica: poll parked on A, approval on B, PostgreSQL" latency --hosts-url "$hosts_a" --web-url "$WEB_URL" \
    --postgres "$conninfo" --count "$latency_n"
stop_server "$PID"
stop_server "$pid_a"
