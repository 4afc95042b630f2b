#!/usr/bin/env bash
# Set up the local BigQuery emulator (local-bigquery 0.3.2 on DuckDB 1.5.5) in .venv-bq.
#
# The emulator needs Python 3.13, so it lives in a venv of its own. DuckDB's icu, ducklake and
# spatial extensions come from PyPI wheels and are installed into .venv-bq/duckdb_extensions,
# never into the user's home directory (tests/bq_emulator.py points DuckDB there at start-up).
# Idempotent: a second run only checks a stamp file.
#
# Without python3.13: in CI (CI=true) this fails; elsewhere it says so once and exits 0, and the
# BigQuery tests skip.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PIPESTATE_BQ_VENV:-$ROOT/.venv-bq}"
DUCKDB_HOME="$VENV/duckdb_home"
EXT_DIR="$DUCKDB_HOME/.duckdb/extensions"
DUCKDB_VERSION="1.5.5"
LOCAL_BIGQUERY_VERSION="0.3.2"
CONSTRAINTS="$ROOT/scripts/bq_emulator_constraints.txt"
# The stamp records the pins and the constraints' hash: a change to either refreshes the venv.
STAMP_KEY="local-bigquery==$LOCAL_BIGQUERY_VERSION duckdb==$DUCKDB_VERSION ext=icu,ducklake,spatial v2 $(cksum <"$CONSTRAINTS")"
STAMP="$VENV/.pipestate-bq-stamp"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_KEY" && -x "$VENV/bin/local-bigquery" ]]; then
    echo "bq-emulator: ready ($VENV)"
    exit 0
fi

find_python313() {
    local candidate
    if [[ -n "${PIPESTATE_PYTHON313:-}" ]] && "$PIPESTATE_PYTHON313" --version >/dev/null 2>&1; then
        echo "$PIPESTATE_PYTHON313"
        return 0
    fi
    if command -v python3.13 >/dev/null 2>&1 && python3.13 --version >/dev/null 2>&1; then
        command -v python3.13
        return 0
    fi
    # pyenv's shim fails unless 3.13 is selected; look in its versions directly.
    local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    for candidate in "$pyenv_root"/versions/3.13*/bin/python3.13; do
        if [[ -x "$candidate" ]] && "$candidate" --version >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        candidate="$(PYENV_VERSION="$(pyenv versions --bare 2>/dev/null | grep '^3\.13' | tail -n1)" \
            pyenv which python3.13 2>/dev/null || true)"
        if [[ -n "$candidate" && -x "$candidate" ]]; then
            echo "$candidate"
            return 0
        fi
    fi
    for candidate in /usr/local/bin/python3.13 /usr/bin/python3.13; do
        if [[ -x "$candidate" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if [[ ! -x "$VENV/bin/python" ]]; then
    if ! PY313="$(find_python313)"; then
        msg="bq-emulator: python3.13 not found (set PIPESTATE_PYTHON313 to its path)"
        if [[ "${CI:-}" == "true" ]]; then
            echo "$msg; CI=true, so the BigQuery tests cannot run." >&2
            exit 1
        fi
        echo "$msg; the BigQuery tests will be skipped."
        exit 0
    fi
    echo "bq-emulator: creating $VENV with $PY313"
    "$PY313" -m venv "$VENV"
fi

PIP_LOG="$VENV/pip-install.log"
# pip's output goes to a log (the machine's pip config is chatty); shown only on failure.
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -c "$CONSTRAINTS" \
    "local-bigquery==$LOCAL_BIGQUERY_VERSION" \
    "duckdb==$DUCKDB_VERSION" \
    "duckdb-extension-icu==$DUCKDB_VERSION" \
    "duckdb-extension-ducklake==$DUCKDB_VERSION" \
    "duckdb-extension-spatial==$DUCKDB_VERSION" >"$PIP_LOG" 2>&1; then
    tail -n 40 "$PIP_LOG" >&2
    echo "bq-emulator: pip install failed (full log: $PIP_LOG)" >&2
    exit 1
fi

mkdir -p "$EXT_DIR"
"$VENV/bin/python" - "$EXT_DIR" <<'PY'
"""Install the .duckdb_extension files shipped in the wheels into the project-local directory."""
import pathlib
import sys
import sysconfig

import duckdb

ext_dir = sys.argv[1]
site = pathlib.Path(sysconfig.get_paths()["purelib"])
wanted = ("icu", "ducklake", "spatial")
found = {}
for path in site.rglob("*.duckdb_extension*"):
    stem = path.name.split(".duckdb_extension")[0]
    if stem in wanted:
        found.setdefault(stem, path)
missing = [name for name in wanted if name not in found]
if missing:
    sys.exit(f"bq-emulator: extension files missing from the wheels: {missing}")
con = duckdb.connect(config={"extension_directory": ext_dir, "autoinstall_known_extensions": False})
for name in wanted:
    con.execute(f"INSTALL '{found[name]}'")
    con.execute(f"LOAD {name}")
print("bq-emulator: extensions installed in", ext_dir)
PY

echo "$STAMP_KEY" >"$STAMP"
echo "bq-emulator: ready ($VENV)"
