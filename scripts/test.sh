#!/usr/bin/env bash
# The whole test suite, from a fresh clone:
#  1. system packages the tests need (scripts/deps-*.sh: chromium for the view page,
#     the Go pprof tool for the pprof export);
#  2. in the background, one after another: for python3 and every CPython 3.9-3.13 found
#     (pyenv or PATH), its venv .venvs/py3.X, reused while the dependencies listed in
#     pyproject.toml, setup.py and the interpreter are unchanged; the C extensions are
#     rebuilt in it when a C source or header or the build files changed (uv from PyPI
#     makes the venvs and installs into them; venv and pip when uv cannot be installed);
#  3. one step after another, each on every core (pytest-xdist): the C engine's unit
#     tests (plain and AddressSanitizer/UBSan), then each interpreter's pytest session as
#     soon as its venv is ready. The first interpreter runs every test; the others skip
#     the tests marked `once` (they do not depend on the Python version: browser, pprof
#     tool, JSON Schema).
# Every step prints how long it took. Ends with one "total: N passed, M failed,
# K skipped" line and exits non-zero if anything failed.
#
#   RETRACER_TEST_VERSIONS="3.12 3.13"       versions besides python3's own
#   RETRACER_TEST_PYTHONS="/path/python3.12"  the interpreters (the first runs the `once` tests)
#   RETRACER_TEST_WORKERS=N   pytest-xdist workers per session (default: the number of
#                             cores; 0 runs each session in one process)
#   extra arguments go to every pytest session (bash scripts/test.sh -k fib)
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
T_START=$SECONDS
export RETRACER_CONFIG_DIR="${RETRACER_CONFIG_DIR:-$ROOT/.venvs/config}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# every test starts interpreters: let them cache bytecode (some environments turn that off)
unset PYTHONDONTWRITEBYTECODE
WORKERS=${RETRACER_TEST_WORKERS:-$(nproc 2>/dev/null || echo 2)}
status=0
results="$ROOT/.venvs/results"
rm -rf "$results"; mkdir -p "$results"
# pytest's temporary directories: outside the repository (a traced program there would
# find the repository's pyproject.toml), one per run and session; no "retracer" in the
# name (the tests check that retracer's frames are not in the tracebacks they print)
TMP_BASE=$(mktemp -d "${TMPDIR:-/tmp}/pytest-sessions.XXXXXX")

took() {  # seconds since $1, as "42 s" or "3m07s"
  local s=$((SECONDS - $1))
  if [ $s -ge 60 ]; then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%d s' $s; fi
}

quietly() {  # run a command, showing its output only if it fails
  local log
  log=$(mktemp)
  if "$@" > "$log" 2>&1; then rm -f "$log"; return 0; fi
  cat "$log"; rm -f "$log"; return 1
}

# ---------------------------------------------------------------- 1. system packages
t=$SECONDS
source scripts/lib-apt.sh
for deps in scripts/deps-*.sh; do
  [ -e "$deps" ] || continue
  echo "== $deps"
  source "$deps" || status=1
done
echo "-- system packages: $(took $t)"

# ---------------------------------------------------------------- interpreters and venvs
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

# The project's dependencies and test extras, from pyproject.toml: a venv installs them,
# then the project itself without build isolation (which is what a rebuild does too).
REQS="$ROOT/.venvs/requirements.txt"
python3 - > "$REQS" 2>/dev/null <<'PY' || : > "$REQS"
import sys
try:
    import tomllib
except ImportError:
    import tomli as tomllib
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
print("\n".join(project.get("dependencies", []) + project.get("optional-dependencies", {}).get("test", [])))
PY

deps_stamp() {  # what a venv's installed packages depend on: $1 = the interpreter
  { "$1" -c 'import sys; print(sys.version, sys.base_prefix)'; cat "$REQS" setup.py
    [ -s "$REQS" ] || cat pyproject.toml; } | sha256sum
}

build_stamp() {  # what the C extensions depend on: every C source and header, the build files
  { find csrc src -name '*.[ch]' -not -path 'csrc/tests/*' | LC_ALL=C sort | xargs sha256sum
    sha256sum setup.py pyproject.toml; } | sha256sum
}

# uv (from PyPI) creates the venvs and installs their packages in seconds where pip and
# venv's ensurepip take a minute or more per interpreter; without it (it could not be
# installed), pip does the same job.
UV="$ROOT/.venvs/uv/bin/uv"
find_uv() {
  "$UV" --version >/dev/null 2>&1 && return 0
  rm -rf "$ROOT/.venvs/uv"
  quietly python3 -m pip install --no-compile --target "$ROOT/.venvs/uv" uv && "$UV" --version >/dev/null 2>&1 && return 0
  echo "uv could not be installed: the venvs are made with venv and pip"
  UV=""
  return 1
}

prepare_venv() {  # $1 = interpreter, $2 = 3.X: create or reuse .venvs/py3.X; says what it did
  local py=$1 v=$2 venv="$ROOT/.venvs/py$2" t=$SECONDS s=$SECONDS did="" deps build
  local pip=("$venv/bin/python" -m pip install)
  [ -n "$UV" ] && pip=("$UV" pip install -q -p "$venv/bin/python")
  deps=$(deps_stamp "$py") && build=$(build_stamp) || return 1
  if ! "$venv/bin/python" -c "" 2>/dev/null; then
    rm -rf "$venv"
    if [ -n "$UV" ]; then  # --seed: pip in the venv too (compare --install runs it)
      quietly "$UV" venv -q --seed -p "$py" "$venv" || { echo "could not create $venv"; return 1; }
    else
      quietly "$py" -m venv "$venv" || { echo "could not create $venv"; return 1; }
    fi
    did="created ($(took $s))"; s=$SECONDS
  fi
  if [ "$(cat "$venv/.deps-stamp" 2>/dev/null)" != "$deps" ]; then
    rm -f "$venv/.deps-stamp" "$venv/.build-stamp"
    if [ -s "$REQS" ]; then
      # no bytecode compiled at install: it is cached when first imported, only for what the tests import
      quietly "${pip[@]}" $([ -z "$UV" ] && echo --no-compile) -r "$REQS" || { echo "installing the test dependencies failed for Python $v"; return 1; }
    else  # no TOML reader for pyproject.toml here: the whole install
      quietly "${pip[@]}" -e ".[test]" || { echo "installing the test dependencies failed for Python $v"; return 1; }
    fi
    echo "$deps" > "$venv/.deps-stamp"
    did="${did:+$did, }test dependencies installed ($(took $s))"; s=$SECONDS
  fi
  if [ "$(cat "$venv/.build-stamp" 2>/dev/null)" != "$build" ] || ! "$venv/bin/python" -c "import retracer" 2>/dev/null; then
    quietly "${pip[@]}" --no-deps --no-build-isolation -e . || { echo "building retracer failed for Python $v"; return 1; }
    echo "$build" > "$venv/.build-stamp"
    did="${did:+$did, }retracer and its C extensions built ($(took $s))"
  fi
  echo "venv .venvs/py$v ($py): ${did:-reused (dependencies and C sources unchanged)}; $(took $t)"
}

# ---------------------------------------------------------------- 2. the venvs, in the background
# One after another, first interpreter first: each mostly keeps one core busy, and
# stays ahead of the tests, which run one interpreter at a time on every core.
versions=()
for py in "${pythons[@]}"; do
  versions+=("$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')")
done
(
  find_uv
  for i in "${!pythons[@]}"; do
    v=${versions[$i]}
    if prepare_venv "${pythons[$i]}" "$v" > "$results/venv-$v.log" 2>&1; then
      : > "$results/venv-$v.ready"
    else
      : > "$results/venv-$v.failed"
    fi
  done
) &
venvs_pid=$!

# ---------------------------------------------------------------- 3. the tests, one step after another
steps=()
step_pid=""

step() {  # $1 = label, then the command: run it (output shown and kept), say how it ended and how long it took
  local label=$1 t=$SECONDS rc n=${#steps[@]}
  shift
  steps+=("$label")
  echo "== $label"
  ( "$@" 2>&1 | tee "$results/step-$n.log"; exit "${PIPESTATUS[0]}" ) < /dev/null &
  step_pid=$!
  wait $step_pid
  rc=$?
  step_pid=""
  echo "$rc" > "$results/step-$n.rc"
  took $t > "$results/step-$n.took"
  echo "-- $label: $([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc)"), $(cat "$results/step-$n.took")"
  [ $rc -eq 0 ] || status=1
}

# Ctrl-C reaches the running step too; a TERM is passed on to it as an interrupt, so
# that pytest ends the programs its tests started.
on_signal() {
  echo "interrupted: stopping the tests"
  [ "$1" = TERM ] && [ -n "$step_pid" ] && pkill -INT -P "$step_pid"
  kill "$venvs_pid" 2>/dev/null
  wait
  exit $((128 + $2))
}
trap 'on_signal INT 2' INT
trap 'on_signal TERM 15' TERM

pytest_session() {  # $1 = venv python, $2 = session name, then pytest's selection and arguments
  local py=$1 name=$2 xdist=(-n "$WORKERS")
  shift 2
  [ "$WORKERS" != 0 ] && xdist+=(--dist load)
  "$py" -m pytest -q -p no:cacheprovider "${xdist[@]}" --basetemp="$TMP_BASE/$name" \
    --junitxml="$results/$name.xml" tests "$@"
  local rc=$?
  [ $rc -eq 5 ] && { echo "(no test selected)"; rc=0; }
  return $rc
}

t_tests=$SECONDS
step "C engine unit tests (make -C csrc test test-asan)" make -s -j"$(nproc 2>/dev/null || echo 2)" -C csrc test test-asan
for i in "${!pythons[@]}"; do
  v=${versions[$i]}
  while [ ! -e "$results/venv-$v.ready" ] && [ ! -e "$results/venv-$v.failed" ]; do
    kill -0 "$venvs_pid" 2>/dev/null || { : > "$results/venv-$v.failed"; break; }
    sleep 1
  done
  cat "$results/venv-$v.log" 2>/dev/null
  if [ ! -e "$results/venv-$v.ready" ]; then
    echo "-- Python $v: no venv, its tests did not run"; status=1; continue
  fi
  if [ "$i" -eq 0 ]; then  # the first interpreter runs every test, the others all but `once`
    step "Python $v: pytest, all tests" pytest_session "$ROOT/.venvs/py$v/bin/python" "py$v" "$@"
  else
    step "Python $v: pytest, the tests not marked once" \
      pytest_session "$ROOT/.venvs/py$v/bin/python" "py$v" -m "not once" "$@"
  fi
done
wait
echo "-- tests: $(took $t_tests)"

# ---------------------------------------------------------------- summary
echo "== summary"
for n in "${!steps[@]}"; do
  if [ "$n" -eq 0 ]; then
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$results/step-$n.log" | paste -sd ';' -)
  else
    line=$(grep -E ' in [0-9.]+s( \(|$)' "$results/step-$n.log" | tail -1 | sed 's/^=* *//; s/ *=*$//')
  fi
  echo "${steps[$n]}: ${line:-no result} ($(cat "$results/step-$n.took"))$([ "$(cat "$results/step-$n.rc")" -eq 0 ] || echo " FAILED")"
done
echo "(the tests marked once do not depend on the Python version: they run on Python ${versions[0]} only)"

python3 - "$results" <<'PY'
import glob, re, sys, xml.etree.ElementTree as ET
d = sys.argv[1]
passed = failed = skipped = 0
for f in glob.glob(d + "/py*.xml"):
    for s in ET.parse(f).getroot().iter("testsuite"):
        t, fl, er, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
        passed += t - fl - er - sk; failed += fl + er; skipped += sk
for f in glob.glob(d + "/step-0.log"):
    for p, fl in re.findall(r"(\d+) passed, (\d+) failed", open(f).read()):
        passed += int(p); failed += int(fl)
print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
PY
if [ $status -eq 0 ]; then rm -rf "$TMP_BASE"; else echo "pytest's temporary files are kept in $TMP_BASE"; fi
echo "-- whole test command: $(took $T_START)"
exit $status
