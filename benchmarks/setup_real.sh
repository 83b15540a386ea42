#!/usr/bin/env bash
# Sets up the real-programs benchmark (real_programs.py) and the capture-power check
# (mutants.py):
#   benchmarks/.venv-real         retracer (pip install -e <repo>) + pytest, nothing else:
#                                 the programs run from their source trees, not installed
#   benchmarks/.cache/real/SDIST  the pinned PyPI sdists, downloaded once (pip download)
#   benchmarks/.cache/real/NAME-VERSION/   each sdist unpacked (the source tree run)
# Usage: bash benchmarks/setup_real.sh          (PYTHON=python3.12 to choose the base)
# Re-run after changing the C engine (it reinstalls retracer); the sdists stay cached.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
PY="${PYTHON:-python3}"
VENV="$HERE/.venv-real"
CACHE="$HERE/.cache/real"

# name==version pins: change them here only (real_programs.py and mutants.py read the
# unpacked trees by the names this prints into $CACHE/pins.txt).
PINS=(
    "docutils==0.23"
    "pygments==2.21.0"
    "markdown==3.11.3"
    "sqlparse==0.6.1"
    "more-itertools==11.2.1"
    "toolz==1.2.0"
)

echo "== $VENV (base: $($PY -c 'import sys; print(sys.executable, sys.version.split()[0])'))"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV" || { echo "error: could not create $VENV"; exit 1; }
fi
"$VENV/bin/python" -m pip install -q pytest \
    || { echo "error: could not install pytest into $VENV"; exit 1; }
echo "== retracer (editable, from $REPO)"
if ! "$VENV/bin/python" -m pip install -q -e "$REPO" >"$HERE/.retracer-real-install.log" 2>&1; then
    tail -5 "$HERE/.retracer-real-install.log"
    echo "error: retracer did not install (see $HERE/.retracer-real-install.log)"
    exit 1
fi
rm -f "$HERE/.retracer-real-install.log"

mkdir -p "$CACHE"
: > "$CACHE/pins.txt.tmp"
for pin in "${PINS[@]}"; do
    name="${pin%%==*}"; version="${pin##*==}"
    # sdist file names normalise '-' to '_' and may lower-case the name
    norm="$(echo "$name" | tr '-' '_' | tr 'A-Z' 'a-z')"
    sdist="$(ls "$CACHE"/"$norm"-"$version".tar.gz "$CACHE"/"$name"-"$version".tar.gz 2>/dev/null | head -1)"
    if [ -z "$sdist" ]; then
        echo "== download $pin (sdist)"
        "$VENV/bin/python" -m pip download -q --no-binary :all: --no-deps "$pin" -d "$CACHE" \
            || { echo "error: could not download the sdist of $pin"; exit 1; }
        sdist="$(ls "$CACHE"/"$norm"-"$version".tar.gz "$CACHE"/"$name"-"$version".tar.gz 2>/dev/null | head -1)"
    fi
    [ -n "$sdist" ] || { echo "error: no sdist for $pin in $CACHE"; exit 1; }
    tree="$(basename "$sdist" .tar.gz)"
    if [ ! -d "$CACHE/$tree" ]; then
        tar -xzf "$sdist" -C "$CACHE" || { echo "error: could not unpack $sdist"; exit 1; }
        # a pristine copy is what the benchmarks read; never edit it in place
        find "$CACHE/$tree" -name '__pycache__' -prune -exec rm -rf {} +
    fi
    echo "$name $version $tree" >> "$CACHE/pins.txt.tmp"
done
mv "$CACHE/pins.txt.tmp" "$CACHE/pins.txt"

echo "== ready"
"$VENV/bin/python" -c 'import retracer, pytest, sys; print("  python", sys.version.split()[0], "| retracer", retracer.__version__, "| pytest", pytest.__version__)'
cat "$CACHE/pins.txt" | sed 's/^/  /'
echo "run: $VENV/bin/python $HERE/real_programs.py"
echo "     $VENV/bin/python $HERE/mutants.py"
