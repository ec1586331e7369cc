#!/usr/bin/env bash
# Property-based API conformance tests: Schemathesis against a demo server built from this tree.
#
#   bash .ci/schemathesis.sh
#
# Starts `target/debug/citygrid demo --small` (the 100-grid city; the map layers start empty) on a free loopback port over a throwaway SQLite file,
# signs in with curl and runs Schemathesis against /api/v1/openapi.json in three passes:
#   admin      every operation except DELETE /api/v1/auth/token (it would revoke the token)
#   collector  the same, as a collector
#   sign-out   DELETE /api/v1/auth/token alone, with a token of its own
# checking not_a_server_error, status_code_conformance, content_type_conformance and
# response_schema_conformance. Exits non-zero if any pass found a failure; every pass runs.
#
# Environment:
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation (default 30)
#   SCHEMATHESIS_SEED          random seed (default fixed, for reproducible runs; "random" for none)
#   SCHEMATHESIS_REPORT_DIR    where JUnit reports go (default target/schemathesis)
#   CITYGRID_BIN               server binary (default target/debug/citygrid, built if missing)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

SCHEMATHESIS_VERSION=4.32.5
VENV=$ROOT/target/ci-venv
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-30}
SEED=${SCHEMATHESIS_SEED:-20260101}
REPORT_DIR=${SCHEMATHESIS_REPORT_DIR:-$ROOT/target/schemathesis}
BIN=${CITYGRID_BIN:-$ROOT/target/debug/citygrid}
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance

log() { printf '==> %s\n' "$*" >&2; }

# --- Schemathesis in a venv --------------------------------------------------------------
if [[ ! -x $VENV/bin/st ]] || [[ $("$VENV/bin/st" --version 2>/dev/null) != *"$SCHEMATHESIS_VERSION"* ]]; then
    log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
PY=$VENV/bin/python
"$VENV/bin/st" --version >&2

# --- the server --------------------------------------------------------------------------
# shellcheck source=.ci/demo-server.sh
source "$ROOT/.ci/demo-server.sh"

token() {
    curl -fsS --max-time 10 -X POST "$BASE/api/v1/auth/token" \
        -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"demo\"}" |
        "$PY" -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}

# --- the passes --------------------------------------------------------------------------
mkdir -p "$REPORT_DIR"
seed_args=()
[[ $SEED != random ]] && seed_args=(--seed "$SEED")
failed=()

# st_pass NAME TOKEN [FILTER ARGS...]
st_pass() {
    local name=$1 tok=$2
    shift 2
    log "schemathesis pass: $name"
    local status=0
    # From the scratch directory: Schemathesis keeps a crash cache (.schemathesis/) in its cwd.
    (cd "$WORK" && "$VENV/bin/st" run "$BASE/api/v1/openapi.json" \
        --header "Authorization: Bearer $tok" \
        --checks "$CHECKS" \
        --max-examples "$MAX_EXAMPLES" \
        --continue-on-failure \
        --request-timeout 10 \
        --no-color \
        --generation-database none \
        "${seed_args[@]}" \
        --report junit --report-junit-path "$REPORT_DIR/$name.xml" \
        "$@") || status=$?
    if ((status != 0)); then
        failed+=("$name (exit $status)")
    fi
}

# Tokens in plain assignments, so that a failed sign-in stops the script (set -e).
admin_token=$(token admin)
st_pass admin "$admin_token" --exclude-name 'DELETE /api/v1/auth/token'
collector_token=$(token collector)
st_pass collector "$collector_token" --exclude-name 'DELETE /api/v1/auth/token'
sign_out_token=$(token admin)
st_pass sign-out "$sign_out_token" --include-name 'DELETE /api/v1/auth/token'

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "the server died during the run:"
    tail -50 "$WORK/server.log" >&2
    exit 1
fi
if ((${#failed[@]})); then
    log "schemathesis found failures in: ${failed[*]} (JUnit reports in $REPORT_DIR)"
    exit 1
fi
log "schemathesis: all passes clean"
