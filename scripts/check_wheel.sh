#!/usr/bin/env bash
# Build the sdist and wheel, check the wheel's contents, install it into a fresh venv outside the
# source tree and use it there as a new user would. Run by `make test` (target wheel-check).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

echo "wheel-check: building sdist and wheel"
"$PY" -m build --sdist --wheel --outdir "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 || {
    tail -30 "$WORK/build.log"
    exit 1
}
WHEEL="$(ls "$WORK"/dist/pipestate-*.whl)"
SDIST="$(ls "$WORK"/dist/pipestate-*.tar.gz)"

echo "wheel-check: contents of $(basename "$WHEEL")"
"$ROOT/.venv/bin/check-wheel-contents" "$WHEEL"
"$PY" "$ROOT/scripts/wheel_contents.py" "$WHEEL" "$SDIST"

echo "wheel-check: installing into a fresh venv outside the tree"
python3 -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install --quiet --disable-pip-version-check "$WHEEL" 2>&1 | grep -v '^WARNING: Location' || true

cd "$WORK"  # nothing from the source tree is importable from here
VERSION="$("$WORK/venv/bin/pipestate" --version)"
echo "wheel-check: $VERSION"
"$VPY" -c "import pipestate, importlib.metadata as m; assert pipestate.__version__ == m.version('pipestate'), pipestate.__version__; print('import pipestate', pipestate.__version__, 'from', pipestate.__file__)"
"$VPY" -c "import pipestate, sys; assert '$ROOT' not in pipestate.__file__, 'imported from the source tree'"
cp "$ROOT/configs/test/success/test_success.yml" "$WORK/success.yml"
if "$WORK/venv/bin/pipestate" --help | grep -q ' validate '; then
    "$WORK/venv/bin/pipestate" validate "$WORK/success.yml"
fi
"$WORK/venv/bin/pipestate" bootstrap --store "sqlite:$WORK/boot.db"
"$WORK/venv/bin/pipestate" run "$WORK/success.yml" --org wheel_org --store "sqlite:$WORK/run.db" >/dev/null
ROWS="$("$VPY" -c "import sqlite3; print(sqlite3.connect('$WORK/run.db').execute('select count(*) from org_meta_state_transitions').fetchone()[0])")"
test "$ROWS" -gt 0 || { echo "wheel-check: the installed CLI stored no transitions"; exit 1; }
echo "wheel-check: installed CLI ran the example and stored $ROWS transitions"

echo "wheel-check: following docs/getting-started.md"
"$VPY" "$ROOT/scripts/doc_blocks.py" "$ROOT/docs/getting-started.md" "$WORK/guide"
(
    cd "$WORK/guide"
    "$WORK/venv/bin/pipestate" bootstrap --store sqlite:audit.db >/dev/null
    "$WORK/venv/bin/pipestate" run hello.yml --org acme --store sqlite:audit.db >/dev/null
    "$WORK/venv/bin/pipestate" query failures --store sqlite:audit.db >/dev/null
    OUT="$("$VPY" guide.py)"
    echo "wheel-check: the guide's Python example printed: $OUT"
    case "$OUT" in COMPLETED*) ;; *) echo "wheel-check: expected COMPLETED"; exit 1 ;; esac
)

EXTRAS="$("$VPY" -c "import importlib.metadata as m; print(' '.join(sorted(e for e in (m.metadata('pipestate').get_all('Provides-Extra') or []) if e != 'dev')))")"
for extra in $EXTRAS; do
    echo "wheel-check: extra [$extra] resolves"
    "$VPY" -m pip install --quiet --disable-pip-version-check --dry-run "${WHEEL}[$extra]" 2>&1 \
        | grep -v '^WARNING: Location' || true
done
echo "wheel-check: ok"
