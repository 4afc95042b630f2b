#!/usr/bin/env bash
# `make bench-peers`: the same workloads under Prefect 3, Dagster 1.x and pipestate, side by side.
# Peers live in their own gitignored venvs under .bench-peers/; nothing of theirs is committed.
# Usage: bash benchmarks/peers/run.sh [--setup-only] [--quick] [--only TOOL]
#   --only TOOL  re-run one tool (pipestate, prefect or dagster); the others' last reports, kept
#                in .bench-peers/out/, go into the comparison unchanged.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/benchmarks/peers"
PEERS="$ROOT/.bench-peers"
PYTHON="${PYTHON:-python3}"
NICE=(nice -n 10)
SETUP_ONLY=0
QUICK=()
ONLY=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --setup-only) SETUP_ONLY=1 ;;
    --quick) QUICK=(--quick) ;;
    --only) ONLY="${2:?--only needs a tool name}"; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

# Telemetry off and everything on loopback, for installs and runs alike.
export DO_NOT_TRACK=1
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_SERVER_API_HOST=127.0.0.1
export PREFECT_UI_ENABLED=false
export PREFECT_CLI_PROMPT=false
export PREFECT_LOGGING_LEVEL=WARNING
export DAGSTER_DISABLE_TELEMETRY=1
export PYTHONDONTWRITEBYTECODE=1
# A local ephemeral server only: never a Prefect API or Cloud workspace configured elsewhere.
unset PREFECT_API_URL PREFECT_API_KEY PREFECT_PROFILE

# setup_venv NAME SPEC: create .bench-peers/NAME and install SPEC once (a stamp records the spec).
setup_venv() {
  local name="$1" spec="$2" venv="$PEERS/$1"
  local stamp="$venv/.installed-stamp"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$spec" ]]; then
    return 0
  fi
  echo "== installing $spec into .bench-peers/$name" >&2
  mkdir -p "$PEERS"
  test -x "$venv/bin/python" || "${NICE[@]}" "$PYTHON" -m venv "$venv"
  # The machine's pip config lists local index folders that may not exist; hide that noise.
  "${NICE[@]}" "$venv/bin/python" -m pip install --quiet "$spec" 2> >(grep -v 'is ignored' >&2)
  echo "$spec" > "$stamp"
}

setup_venv prefect "prefect>=3,<4"
setup_venv dagster "dagster>=1,<2"
if [[ ! -x "$ROOT/.venv/bin/python" ]]; then
  echo "run 'make' first: $ROOT/.venv is missing" >&2
  exit 1
fi
[[ "$SETUP_ONLY" == 1 ]] && exit 0

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pipestate-peers.XXXXXX")"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
OUT="$PEERS/out"
mkdir -p "$OUT"

export PREFECT_HOME="$WORK/prefect-home"
# Prefect's own default DB lives under PREFECT_HOME; say so explicitly so the check reads the same file.
export PREFECT_API_DATABASE_CONNECTION_URL="sqlite+aiosqlite:///$PREFECT_HOME/prefect.db"
export DAGSTER_HOME="$WORK/dagster-home"
mkdir -p "$PREFECT_HOME" "$DAGSTER_HOME"
printf 'telemetry:\n  enabled: false\n' > "$DAGSTER_HOME/dagster.yaml"

# run_tool NAME PYTHON: the benchmark process, then (after it has exited) a separate check process.
# Each tool's chatter goes to .bench-peers/out/NAME.log; stdout carries only the JSON.
run_tool() {
  local name="$1" py="$2" script="$HERE/${1}_bench.py" log="$OUT/$1.log"
  [[ -n "$ONLY" && "$ONLY" != "$name" ]] && return 0
  rm -f "$OUT/$name.json" "$OUT/$name.check.json"
  echo "== $name: workloads (log: .bench-peers/out/$name.log)" >&2
  if ! (cd "$WORK" && "${NICE[@]}" "$py" "$script" run --out "$OUT/$name.json" "${QUICK[@]}") \
    > /dev/null 2> "$log"; then
    tail -n 30 "$log" >&2
    echo "== $name: run failed" >&2
    return 1
  fi
  echo "== $name: checking stored history after exit" >&2
  (cd "$WORK" && "${NICE[@]}" "$py" "$script" check --run "$OUT/$name.json" \
    --out "$OUT/$name.check.json") > /dev/null 2>> "$log" || {
    tail -n 30 "$log" >&2
    echo "== $name: check failed" >&2
    return 1
  }
}

export PIPESTATE_BENCH_DB="$WORK/pipestate.db"
status=0
run_tool pipestate "$ROOT/.venv/bin/python" || status=1
run_tool prefect "$PEERS/prefect/bin/python" || status=1
run_tool dagster "$PEERS/dagster/bin/python" || status=1

"${NICE[@]}" "$ROOT/.venv/bin/python" "$HERE/compare.py" --in "$OUT" \
  --json "$HERE/results.json" --md "$HERE/results.md"
exit "$status"
