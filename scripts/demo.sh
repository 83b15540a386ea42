#!/usr/bin/env bash
# Install retracer into .venvs/demo and run the main job on an example:
# trace examples/demo_app.py (its replay tests go next to the trace, in
# .venvs/out), print its ranked profile, write exports and the view page, print the
# folded call tree, replay its recorded calls.
set -eu
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ ! -x .venvs/demo/bin/python ]; then python3 -m venv .venvs/demo; fi
.venvs/demo/bin/python -m pip install -q -e .
mkdir -p .venvs/out
.venvs/demo/bin/retracer trace --tests-root .venvs/out -o .venvs/out/demo.trace examples/demo_app.py
.venvs/demo/bin/retracer profile .venvs/out/demo.trace --top 10
.venvs/demo/bin/retracer profile .venvs/out/demo.trace --format pstats -o .venvs/out/demo.prof
.venvs/demo/bin/retracer profile .venvs/out/demo.trace --format flamegraph -o .venvs/out/demo-flame.html
.venvs/demo/bin/retracer profile .venvs/out/demo.trace --format chrome -o .venvs/out/demo.chrome.json
.venvs/demo/bin/retracer view .venvs/out/demo.trace -o .venvs/out/demo.html
.venvs/demo/bin/retracer view .venvs/out/demo.trace --text --max-depth 4
.venvs/demo/bin/retracer replay .venvs/out/demo.trace
