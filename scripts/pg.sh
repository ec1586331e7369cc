#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: its own temp directory, loopback only, a free
# port, trust authentication (nothing but this machine can reach it), durable commits
# (fsync=on, so timings and crash behaviour are the real ones).
#
# Sourced by scripts/test (functions pg_start / pg_stop), or run by hand:
#   eval "$(scripts/pg.sh start)"   # prints exports: CITYGRID_TEST_POSTGRES, PG_TEST_DIR, ...
#   scripts/pg.sh stop "$PG_TEST_DIR"
#
# PostgreSQL refuses to run as root, so as root the cluster runs as an unprivileged OS user:
# `postgres` if it exists, else a `citygrid-pg` system user created here, else `nobody`
# (or the user named by CITYGRID_PG_USER).

# Where the server binaries are: PATH first, then Debian's versioned directories.
pg_find_bin() {
    local b=$1 d
    if command -v "$b" >/dev/null 2>&1; then
        command -v "$b"
        return 0
    fi
    for d in /usr/lib/postgresql/*/bin; do
        if [[ -x "$d/$b" ]]; then
            echo "$d/$b"
            return 0
        fi
    done
    echo "pg.sh: $b not found (install PostgreSQL server binaries)" >&2
    return 1
}

# The OS user the cluster runs as (CITYGRID_PG_USER overrides the choice).
pg_pick_user() {
    if [[ -n "${CITYGRID_PG_USER:-}" ]]; then
        echo "$CITYGRID_PG_USER"
    elif [[ $(id -u) -ne 0 ]]; then
        id -un
    elif id postgres >/dev/null 2>&1; then
        echo postgres
    elif id citygrid-pg >/dev/null 2>&1; then
        echo citygrid-pg
    elif useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin citygrid-pg \
        >/dev/null 2>&1; then
        echo citygrid-pg
    else
        echo nobody
    fi
}

# Run a command as $PG_TEST_USER (directly when that is us).
pg_as_user() {
    if [[ $(id -un) == "$PG_TEST_USER" ]]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u "$PG_TEST_USER" -- "$@"
    else
        setpriv --reuid="$PG_TEST_USER" --regid="$(id -g "$PG_TEST_USER")" --clear-groups -- "$@"
    fi
}

# A TCP port nobody listens on right now.
pg_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Start a cluster; sets and exports PG_TEST_DIR, PG_TEST_USER, PG_TEST_PORT, CITYGRID_TEST_POSTGRES.
pg_start() {
    local initdb pg_ctl postgres_bin attempt
    initdb=$(pg_find_bin initdb) || return 1
    pg_ctl=$(pg_find_bin pg_ctl) || return 1
    postgres_bin=$(pg_find_bin postgres) || return 1
    PG_TEST_USER=$(pg_pick_user)
    PG_TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/citygrid-pg.XXXXXX") || return 1
    export PG_TEST_DIR PG_TEST_USER
    chmod 0755 "$PG_TEST_DIR" || return 1
    mkdir -p "$PG_TEST_DIR/data" "$PG_TEST_DIR/run" || return 1
    chown -R "$PG_TEST_USER" "$PG_TEST_DIR" || return 1
    # The unprivileged user must be able to reach the directory through its parents.
    if ! pg_as_user test -w "$PG_TEST_DIR/data"; then
        echo "pg.sh: $PG_TEST_USER cannot write $PG_TEST_DIR (is a parent directory private?)" >&2
        return 1
    fi
    pg_as_user "$initdb" -D "$PG_TEST_DIR/data" -U postgres --auth=trust --encoding=UTF8 --no-locale \
        >"$PG_TEST_DIR/initdb.log" 2>&1 || {
        cat "$PG_TEST_DIR/initdb.log" >&2
        return 1
    }
    # The database, created in single-user mode so that no client binaries are needed.
    echo "CREATE DATABASE citygrid_test;" |
        pg_as_user "$postgres_bin" --single -D "$PG_TEST_DIR/data" -j postgres >"$PG_TEST_DIR/single.log" 2>&1 || {
        cat "$PG_TEST_DIR/single.log" >&2
        return 1
    }
    # A port can be taken between the probe and the start; try a few.
    for attempt in 1 2 3 4 5; do
        PG_TEST_PORT=$(pg_free_port)
        if pg_as_user "$pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $PG_TEST_PORT -k $PG_TEST_DIR/run -c fsync=on \
                -c max_connections=300 -c shared_buffers=64MB" \
            start >/dev/null; then
            export PG_TEST_PORT
            export CITYGRID_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PG_TEST_PORT/citygrid_test"
            return 0
        fi
        echo "pg.sh: start on port $PG_TEST_PORT failed (attempt $attempt)" >&2
    done
    tail -n 30 "$PG_TEST_DIR/server.log" >&2 || true
    return 1
}

# Stop the cluster in $1 (default $PG_TEST_DIR) and remove its directory.
pg_stop() {
    local dir=${1:-${PG_TEST_DIR:-}} pg_ctl
    [[ -n "$dir" && -d "$dir" ]] || return 0
    PG_TEST_USER=${PG_TEST_USER:-$(stat -c %U "$dir/data" 2>/dev/null || id -un)}
    if [[ -f "$dir/data/postmaster.pid" ]] && pg_ctl=$(pg_find_bin pg_ctl); then
        pg_as_user "$pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    case "${1:-}" in
    start)
        pg_start
        printf 'export CITYGRID_TEST_POSTGRES=%q PG_TEST_DIR=%q PG_TEST_USER=%q PG_TEST_PORT=%q\n' \
            "$CITYGRID_TEST_POSTGRES" "$PG_TEST_DIR" "$PG_TEST_USER" "$PG_TEST_PORT"
        ;;
    stop)
        pg_stop "${2:-}"
        ;;
    *)
        echo "usage: $0 start | stop DIR" >&2
        exit 2
        ;;
    esac
fi
