#!/bin/bash
# tests/support/pg_scratch.sh — a throw-away PostgreSQL 15 server for one test run.
#
#   pg_scratch.sh start STATE_DIR   initdb in a fresh scratch directory, start the server,
#                                   create the database `jitgate_test`, and write:
#                                     STATE_DIR/conninfo      over the Unix socket (trust, no password)
#                                     STATE_DIR/conninfo.tcp  over 127.0.0.1 (scram-sha-256, a password
#                                                             made for the run; mode 0600)
#                                   and print the first one.
#   pg_scratch.sh stop STATE_DIR    pg_ctl stop -m fast, remove the scratch directory.
#
# The server listens on a Unix socket inside the scratch directory and on 127.0.0.1 at a free
# port, with fsync on (tests see the durability the product relies on). As root, initdb and the
# server run as the `postgres` system user (PostgreSQL refuses to run as root); otherwise as the
# caller. The scratch directory lives under /tmp (the postgres user may not be able to reach a
# build tree); STATE_DIR/scratch_dir records where it is.
set -euo pipefail

die() { echo "pg_scratch: $*" >&2; exit 1; }

find_bindir() {
    local dir
    if command -v pg_config >/dev/null 2>&1; then
        dir=$(pg_config --bindir)
        [[ -x $dir/initdb ]] && { echo "$dir"; return; }
    fi
    for dir in /usr/lib/postgresql/15/bin /usr/pgsql-15/bin; do
        [[ -x $dir/initdb ]] && { echo "$dir"; return; }
    done
    die "no PostgreSQL 15 server binaries (initdb): install the postgresql package (scripts/install-deps.sh)"
}

as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# A port nobody listens on now (the server start below fails cleanly if one is taken meanwhile).
free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free TCP port found on 127.0.0.1"
}

start() {
    local state=$1 bindir scratch port password
    bindir=$(find_bindir)
    mkdir -p "$state"
    [[ -f $state/scratch_dir ]] && stop "$state" || true
    rm -f "$state/conninfo" "$state/conninfo.tcp"
    scratch=$(mktemp -d /tmp/jitgate-pg.XXXXXX)
    echo "$scratch" >"$state/scratch_dir"
    mkdir -p "$scratch/data" "$scratch/sock"
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "no 'postgres' system user (install the postgresql package)"
        chown -R postgres: "$scratch"
    fi
    chmod 0700 "$scratch"
    password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    printf '%s\n' "$password" | as_owner bash -c "umask 077; cat >'$scratch/pwfile'"
    as_owner "$bindir/initdb" -D "$scratch/data" -U postgres --pwfile="$scratch/pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$scratch/initdb.log" 2>&1 ||
        { cat "$scratch/initdb.log" >&2; die "initdb failed"; }
    as_owner rm -f "$scratch/pwfile"
    local started=""
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        if as_owner "$bindir/pg_ctl" -D "$scratch/data" -l "$scratch/server.log" -w -t 120 start \
            -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$scratch/sock -c fsync=on -c max_connections=200 -c shared_buffers=32MB" \
            >/dev/null 2>&1; then
            started=yes
            break
        fi
    done
    [[ -n $started ]] || { cat "$scratch/server.log" >&2 || true; die "the server did not start"; }
    echo "$port" >"$state/port"
    as_owner "$bindir/createdb" -h "$scratch/sock" -p "$port" -U postgres jitgate_test || die "createdb failed"
    # The socket directory must be reachable by the test user (root, or the caller).
    chmod 0711 "$scratch"
    printf 'host=%s port=%s dbname=jitgate_test user=postgres\n' "$scratch/sock" "$port" >"$state/conninfo"
    (umask 077; printf 'host=127.0.0.1 port=%s dbname=jitgate_test user=postgres password=%s\n' "$port" "$password" \
        >"$state/conninfo.tcp")
    cat "$state/conninfo"
}

stop() {
    local state=$1 bindir scratch
    [[ -f $state/scratch_dir ]] || return 0
    scratch=$(cat "$state/scratch_dir")
    bindir=$(find_bindir)
    if [[ -d $scratch/data ]]; then
        as_owner "$bindir/pg_ctl" -D "$scratch/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    case $scratch in
    /tmp/jitgate-pg.*) rm -rf "$scratch" ;;
    *) die "refusing to remove $scratch" ;;
    esac
    rm -f "$state/scratch_dir" "$state/conninfo" "$state/conninfo.tcp" "$state/port"
}

[[ $# -eq 2 ]] || die "usage: pg_scratch.sh start|stop STATE_DIR"
case $1 in
start) start "$2" ;;
stop) stop "$2" ;;
*) die "usage: pg_scratch.sh start|stop STATE_DIR" ;;
esac
