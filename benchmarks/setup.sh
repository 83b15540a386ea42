#!/usr/bin/env bash
# Creates the benchmark environments next to this file:
#   benchmarks/.venv            peers from requirements.txt + retracer (pip install -e <repo>)
#   benchmarks/.venv-codeflash  the codeflash tracer, alone (it pulls in many packages);
#                               if it does not install, run.py reports "n/a (does not install)"
# Usage: bash benchmarks/setup.sh [--no-codeflash]     (PYTHON=python3.12 to choose the base)
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
PY="${PYTHON:-python3}"
WITH_CODEFLASH=1
[ "${1:-}" = "--no-codeflash" ] && WITH_CODEFLASH=0

echo "== benchmarks/.venv (base: $($PY -c 'import sys; print(sys.executable, sys.version.split()[0])'))"
if [ ! -x "$HERE/.venv/bin/python" ]; then
    "$PY" -m venv "$HERE/.venv" || { echo "error: could not create $HERE/.venv"; exit 1; }
fi
"$HERE/.venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
"$HERE/.venv/bin/python" -m pip install -q -r "$HERE/requirements.txt" \
    || { echo "error: could not install the peers from requirements.txt"; exit 1; }

echo "== retracer (editable, from $REPO)"
# Re-run this step (or the whole script) after changing the C engine.
if "$HERE/.venv/bin/python" -m pip install -q -e "$REPO" >"$HERE/.retracer-install.log" 2>&1; then
    rm -f "$HERE/.retracer-install.log"
else
    tail -5 "$HERE/.retracer-install.log"
    echo "warning: retracer did not install (see $HERE/.retracer-install.log);"
    echo "         its modes will show 'error' until it builds"
fi

if [ "$WITH_CODEFLASH" = 1 ]; then
    echo "== benchmarks/.venv-codeflash"
    LOG="$HERE/.venv-codeflash.log"
    if { [ -x "$HERE/.venv-codeflash/bin/python" ] || "$PY" -m venv "$HERE/.venv-codeflash"; } \
        && "$HERE/.venv-codeflash/bin/python" -m pip install -q codeflash >"$LOG" 2>&1 \
        && "$HERE/.venv-codeflash/bin/python" -c "import codeflash.tracer" >>"$LOG" 2>&1; then
        rm -f "$LOG"
    else
        echo "warning: codeflash does not install (see $LOG); run.py reports it as n/a"
        rm -rf "$HERE/.venv-codeflash"
    fi
fi

echo "== installed"
"$HERE/.venv/bin/python" - <<'PY'
import importlib.metadata as m
for name in ("viztracer", "pyinstrument", "yappi", "retracer"):
    try:
        print(f"  {name} {m.version(name)}")
    except m.PackageNotFoundError:
        print(f"  {name} not installed")
PY
if [ -x "$HERE/.venv-codeflash/bin/python" ]; then
    "$HERE/.venv-codeflash/bin/python" -c 'import importlib.metadata as m; print("  codeflash", m.version("codeflash"))'
fi
echo "run: $HERE/.venv/bin/python $HERE/run.py --rounds 5"
