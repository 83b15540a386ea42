#!/usr/bin/env python3
"""Instructions per call of each hook_micro.py mode, counted by valgrind (callgrind).

    python benchmarks/hook_instr.py [--modes plain,floor-pep523,...] [--n 18]

Instruction counts are repeatable on a noisy machine where wall-clock ratios are not.
Each mode runs once in its own process under callgrind, instrumented only while fib(n)
runs (hook_micro.py --one); the count divided by the calls is the cost of one call (its
call and return events, the hook included; start-up and writing are not counted).
"over plain" is that minus plain's. Needs valgrind and its headers
(apt-get install valgrind).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from hook_micro import ALL_MODES, fib_calls, md_table  # noqa: E402


def instructions(mode: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        env = dict(os.environ, PYTHONHASHSEED="0")
        p = subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                            sys.executable, str(HERE / "hook_micro.py"), "--one", mode, "--n", str(n)],
                           capture_output=True, text=True, env=env)
        if p.returncode != 0:
            raise RuntimeError(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}")
        m = re.search(r"Collected : (\d+)", p.stderr)
        if m:
            return int(m.group(1))
        raise RuntimeError("no instruction count of the region in callgrind's output")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modes", default=",".join(ALL_MODES))
    ap.add_argument("--n", type=int, default=18, help="fib argument (default 18)")
    args = ap.parse_args(argv)
    calls = fib_calls(args.n)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "plain" not in modes:
        modes.insert(0, "plain")
    per: dict = {}
    for m in modes:
        try:
            per[m] = instructions(m, args.n) / calls
        except Exception as e:
            per[m] = f"n/a ({e})"
    base = per.get("plain")
    print(f"Python {sys.version.split()[0]}: instructions per fib call (one call + one return), "
          f"in fib({args.n})")
    rows = []
    for m in modes:
        v = per[m]
        if isinstance(v, str):
            rows.append([m, v, "", ""])
        else:
            rows.append([m, f"{v:.0f}", f"{v - base:.0f}" if m != "plain" else "–", f"{v / base:.2f}x"])
    print(md_table(["mode", "instr/call", "over plain", "ratio"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
