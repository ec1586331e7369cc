# Sourced by the .ci scripts that test against a running demo: builds the debug binary if
# missing, starts `citygrid demo --small` on a free loopback port over a throwaway SQLite file,
# waits for /healthz, and stops it (and removes the files) on exit.
# Needs: BIN (the binary), PY (a python for the free port), log (a function).
# Sets: WORK (temp dir), BASE (http://127.0.0.1:PORT), SERVER_PID.

if [[ ! -x $BIN ]]; then
    log "building citygrid"
    cargo build -p citygrid
fi

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    local status=$?
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
BASE=http://127.0.0.1:$PORT
log "starting citygrid demo on $BASE"
RUST_LOG=warn "$BIN" demo --small --listen "127.0.0.1:$PORT" --database "sqlite:$WORK/demo.db" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

deadline=$((SECONDS + 60))
until curl -fsS --max-time 2 "$BASE/healthz" >/dev/null 2>&1; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "the server exited:"
        cat "$WORK/server.log" >&2
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        log "the server did not answer /healthz within 60 s:"
        cat "$WORK/server.log" >&2
        exit 1
    fi
    sleep 0.2
done
