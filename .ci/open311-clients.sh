#!/usr/bin/env bash
# Open311 with real clients: the PyPI libraries `georeport` 0.3.1 (reads, JSON and XML) and
# `open311` 1.1 (Python 2 code, loaded under Python 3 by .ci/open311/open311_shim.py; POST
# with the api_key in the query string, batch tokens, lists) against a demo server built from
# this tree.
#
#   bash .ci/open311-clients.sh
#
# Starts `target/debug/citygrid demo --small` (the 100-grid city, Open311 key demo-open311-key,
# jurisdiction xuzhou.gov.cn) on a free loopback port over a throwaway SQLite file, installs the
# two clients into a venv under target/, and runs .ci/open311/test_clients.py. Exits non-zero
# on any failure; the server is stopped on every exit.
#
# Environment:
#   CITYGRID_BIN   server binary (default target/debug/citygrid, built if missing)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

VENV=$ROOT/target/open311-venv
BIN=${CITYGRID_BIN:-$ROOT/target/debug/citygrid}
CLIENTS=("georeport==0.3.1" "open311==1.1")

log() { printf '==> %s\n' "$*" >&2; }

# --- the clients in a venv ---------------------------------------------------------------
if ! "$VENV/bin/python" -c 'import importlib.metadata as m; assert m.version("georeport") == "0.3.1" and m.version("open311") == "1.1"' 2>/dev/null; then
    log "installing ${CLIENTS[*]} into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${CLIENTS[@]}"
fi
PY=$VENV/bin/python

# --- the server --------------------------------------------------------------------------
# shellcheck source=.ci/demo-server.sh
source "$ROOT/.ci/demo-server.sh"

# --- the tests ---------------------------------------------------------------------------
log "running the georeport and open311 client tests"
status=0
(cd "$ROOT/.ci/open311" && PYTHONDONTWRITEBYTECODE=1 OPEN311_ENDPOINT="$BASE/open311/v2" OPEN311_KEY=demo-open311-key \
    "$PY" -m unittest -v test_clients) || status=$?

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "the server died during the run:"
    tail -50 "$WORK/server.log" >&2
    exit 1
fi
if ((status != 0)); then
    log "open311 client tests failed (exit $status); server log:"
    tail -30 "$WORK/server.log" >&2
    exit "$status"
fi
log "open311 clients: all tests passed"
