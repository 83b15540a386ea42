#!/usr/bin/env bash
# The whole test suite, from a fresh machine: builds and runs the C engine's
# unit tests (plain and with AddressSanitizer/UBSan), then for python3 and every
# CPython 3.9-3.13 found (from pyenv or PATH; RETRACER_TEST_VERSIONS="3.12 3.13"
# to choose) creates a venv in
# .venvs/, installs retracer with its test dependencies and runs pytest.
# Exits non-zero if anything fails; ends with one "total: N passed, M failed" line.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export RETRACER_CONFIG_DIR="${RETRACER_CONFIG_DIR:-$ROOT/.venvs/config}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
status=0
results="$ROOT/.venvs/results"
rm -rf "$results"; mkdir -p "$results"

# System packages some tests need (scripts/deps-*.sh: a browser for the view page,
# the Go pprof tool for the pprof export), installed here so nothing is done by hand.
source scripts/lib-apt.sh
for deps in scripts/deps-*.sh; do
  [ -e "$deps" ] || continue
  echo "== $deps"
  source "$deps" || status=1
done

echo "== C engine unit tests"
make -s -C csrc test test-asan 2>&1 | tee "$results/c.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

works() {  # $1 = interpreter, $2 = 3.X: does it run and is it that version?
  [ -n "$1" ] && [ "$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$2" ]
}

find_python() {  # $1 = 3.X ; prints a working interpreter path or nothing
  local v=$1 p
  if command -v pyenv >/dev/null 2>&1; then
    for p in "$(pyenv root)"/versions/"$v".*/bin/python"$v"; do
      works "$p" "$v" && { echo "$p"; return; }
    done
  fi
  p=$(command -v "python$v" 2>/dev/null) && works "$p" "$v" && { echo "$p"; return; }
}

pythons=()
default=$(command -v python3)
dv=$("$default" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
pythons+=("$default")
for v in ${RETRACER_TEST_VERSIONS:-3.9 3.10 3.11 3.12 3.13}; do
  [ "$v" = "$dv" ] && continue
  p=$(find_python "$v")
  [ -n "$p" ] && pythons+=("$p")
done
[ -n "${RETRACER_TEST_PYTHONS:-}" ] && read -r -a pythons <<< "$RETRACER_TEST_PYTHONS"

for py in "${pythons[@]}"; do
  v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  venv="$ROOT/.venvs/py$v"
  echo "== Python $v ($py)"
  if [ ! -x "$venv/bin/python" ]; then "$py" -m venv "$venv" || { status=1; continue; }; fi
  if ! "$venv/bin/python" -m pip install -q -e ".[test]" > "$results/pip-$v.txt" 2>&1; then
    cat "$results/pip-$v.txt"; echo "pip install failed for Python $v"; status=1; continue
  fi
  "$venv/bin/python" -m pytest -q -p no:cacheprovider --junitxml="$results/py$v.xml" tests "$@"
  rc=$?
  [ $rc -eq 0 ] || status=1
done

python3 - "$results" <<'PY'
import glob, re, sys, xml.etree.ElementTree as ET
d = sys.argv[1]
passed = failed = skipped = 0
for f in glob.glob(d + "/py*.xml"):
    for s in ET.parse(f).getroot().iter("testsuite"):
        t, fl, er, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
        passed += t - fl - er - sk; failed += fl + er; skipped += sk
try:
    m = re.findall(r"(\d+) passed, (\d+) failed", open(d + "/c.txt").read())
    for p, f in m:
        passed += int(p); failed += int(f)
except OSError:
    pass
print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
