"""How honest `retracer compare` is on this machine.

1. **False positives (A/A)**: ``retracer compare HEAD HEAD`` on a repository whose
   benchmark is a CPU-bound loop, repeated ``--aa`` times (default 100). Every
   verdict other than ``same`` is a false positive. The issue asks for at most 5 in
   100.
2. **Smallest detectable effect**: the same repository with a commit that makes
   the loop do ``1/(1+e)`` of its work (HEAD faster by ``e`` in the work, a bit
   less end to end: the interpreter's start-up is in every round), ``--runs``
   compares per effect; the detection rate is the share of verdicts ``faster``.
   The smallest effect detected in at least 90% of the runs is reported.

Each compare is the real command line (a subprocess, ``--json``), with the
settings printed at the start (by default ``--rounds 10 --max-rounds 40 --timeout
60 --trace-rounds 0``: no per-function rounds, only the end-to-end verdict is
measured here). The machine load (``os.getloadavg``) is recorded before and
after every compare. Results go to ``benchmarks/results/compare_accuracy.json``.

    .venvs/dev/bin/python benchmarks/compare_accuracy.py                  # everything (about an hour)
    .venvs/dev/bin/python benchmarks/compare_accuracy.py --aa 20 --effects 0.05 --runs 5
    .venvs/dev/bin/python benchmarks/compare_accuracy.py -- --rounds 20    # extra compare options
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_COMPARE = ["--rounds", "10", "--max-rounds", "40", "--timeout", "60", "--trace-rounds", "0"]

WORK = '''
def work(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s
'''
BENCH = '''
import sys
import work
work.work(int(sys.argv[1]))
'''


def wilson(k: int, n: int, z: float = 1.96) -> List[float]:
    """95% Wilson interval of a proportion k/n."""
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [max(0.0, c - h), min(1.0, c + h)]


def git(cwd: str, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b",
               GIT_COMMITTER_EMAIL="b@b")
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


def make_repo(root: str, n: int, effects: List[float]) -> Dict[float, str]:
    """A repository: the base commit, then one branch per effect (HEAD of the
    branch: the loop does n / (1 + e) iterations)."""
    git(root, "init", "-q")
    with open(os.path.join(root, "work.py"), "w") as f:
        f.write(WORK.lstrip())
    with open(os.path.join(root, "bench.py"), "w") as f:
        f.write(BENCH.lstrip())
    with open(os.path.join(root, "n.txt"), "w") as f:
        f.write(str(n))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    refs = {}
    for e in effects:
        git(root, "checkout", "-q", "-b", f"e{e}", "master" if "master" in git(root, "branch") else "main")
        with open(os.path.join(root, "bench.py"), "w") as f:
            f.write(BENCH.lstrip().replace("int(sys.argv[1])", f"int(int(sys.argv[1]) / {1 + e!r})"))
        git(root, "commit", "-q", "-am", f"{e:.0%} less work")
        refs[e] = f"e{e}"
        git(root, "checkout", "-q", "-")
    return refs


def one(root: str, base: str, head: str, n: int, extra: List[str]) -> Dict[str, Any]:
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "retracer", "compare", base, head, *extra, "--json", "--",
                        "python", "bench.py", str(n)], cwd=root, capture_output=True, text=True)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        return {"error": p.stderr.strip(), "seconds": dt, "load": [load0, os.getloadavg()[0]]}
    rep = json.loads(p.stdout)
    e = rep["end_to_end"]
    return {"verdict": e["verdict"], "speedup": e["speedup"], "ci": e["ci"], "p": e["p"],
            "paired_ci": (e.get("paired") or {}).get("ci"), "rounds": e["base"]["rounds"],
            "cv": max(e["base"]["cv"], e["head"]["cv"]), "median_s": e["base"]["median"],
            "stopped_by": rep["rounds"]["stopped_by"], "seconds": dt, "load": [load0, os.getloadavg()[0]]}


def summary(rows: List[Dict[str, Any]], want: str) -> Dict[str, Any]:
    ok = [r for r in rows if "verdict" in r]
    k = sum(1 for r in ok if r["verdict"] == want) if want != "not-same" else sum(1 for r in ok if r["verdict"] != "same")
    sp = sorted(r["speedup"] for r in ok)
    return {"runs": len(ok), "errors": len(rows) - len(ok), "count": k, "rate": k / len(ok) if ok else None,
            "rate_ci95": wilson(k, len(ok)), "median_speedup": sp[len(sp) // 2] if sp else None,
            "median_rounds": sorted(r["rounds"] for r in ok)[len(ok) // 2] if ok else None,
            "median_cv": sorted(r["cv"] for r in ok)[len(ok) // 2] if ok else None,
            "verdicts": {v: sum(1 for r in ok if r["verdict"] == v) for v in ("faster", "slower", "same")},
            "load_mean": sum(sum(r["load"]) / 2 for r in rows) / len(rows) if rows else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aa", type=int, default=100, help="A/A compares (default 100)")
    ap.add_argument("--effects", default="0.01,0.02,0.05,0.10", help="effects to detect, comma-separated fractions")
    ap.add_argument("--runs", type=int, default=20, help="compares per effect (default 20)")
    ap.add_argument("--work-ms", type=float, default=100.0, help="time of the benchmark's loop (default 100 ms)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "compare_accuracy.json"))
    ap.add_argument("compare_args", nargs="*", help="after --: options for retracer compare")
    ns = ap.parse_args()
    extra = ns.compare_args or DEFAULT_COMPARE
    effects = [float(x) for x in ns.effects.split(",") if x.strip()]
    tmp = tempfile.mkdtemp(prefix="compare-accuracy-")
    try:
        root = os.path.join(tmp, "repo")
        os.makedirs(root)
        # calibrate the loop to --work-ms
        sys.path.insert(0, root)
        n = 100_000
        make_repo(root, n, [])
        code = WORK + f"\nimport time\nt=time.perf_counter(); work({n}); print(time.perf_counter()-t)\n"
        t = min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)
                for _ in range(3))
        n = int(n * ns.work_ms / 1000 / t)
        shutil.rmtree(root)
        os.makedirs(root)
        refs = make_repo(root, n, effects)
        print(f"loop of {n:,} iterations (~{ns.work_ms:g} ms); compare options: {' '.join(extra)}", flush=True)
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
        results: Dict[str, Any] = {"settings": {"compare_args": extra, "work_iterations": n, "work_ms": ns.work_ms,
                                                "cpus": os.cpu_count(), "python": sys.version.split()[0]},
                                   "aa": [], "effects": {}}
        base = git(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
        for i in range(ns.aa):
            r = one(root, base, base, n, extra)
            results["aa"].append(r)
            print(f"A/A {i + 1}/{ns.aa}: {r.get('verdict', 'error')} speedup {r.get('speedup', 0):.3f} "
                  f"CI {r.get('ci')} rounds {r.get('rounds')} load {r['load'][0]:.1f} {r.get('error', '')}",
                  flush=True)
        for e in effects:
            rows = []
            for i in range(ns.runs):
                r = one(root, base, refs[e], n, extra)
                rows.append(r)
                print(f"effect {e:.0%} {i + 1}/{ns.runs}: {r.get('verdict', 'error')} speedup "
                      f"{r.get('speedup', 0):.3f} CI {r.get('ci')} rounds {r.get('rounds')} load {r['load'][0]:.1f}",
                      flush=True)
            results["effects"][str(e)] = rows
        aa = summary(results["aa"], "not-same")
        det = {e: summary(results["effects"][str(e)], "faster") for e in effects}
        smallest = next((e for e in sorted(effects) if det[e]["rate"] is not None and det[e]["rate"] >= 0.9), None)
        results["summary"] = {"false_positive": aa, "detection": {str(k): v for k, v in det.items()},
                              "smallest_effect_detected_90pct": smallest}
        os.makedirs(os.path.dirname(ns.out), exist_ok=True)
        with open(ns.out, "w") as f:
            json.dump(results, f, indent=1)
        print()
        print(f"A/A false positives: {aa['count']} of {aa['runs']} ({aa['rate']:.1%}, 95% CI "
              f"{aa['rate_ci95'][0]:.1%}-{aa['rate_ci95'][1]:.1%}); verdicts {aa['verdicts']}; "
              f"median rounds {aa['median_rounds']}, median noise (CV) {aa['median_cv']:.1%}, "
              f"mean load {aa['load_mean']:.2f}; errors {aa['errors']}")
        for e in effects:
            d = det[e]
            print(f"effect {e:.0%}: detected {d['count']} of {d['runs']} ({d['rate']:.0%}); median speedup "
                  f"{d['median_speedup']:.3f}; median rounds {d['median_rounds']}; mean load {d['load_mean']:.2f}")
        print(f"smallest effect detected in >= 90% of runs: {smallest if smallest is None else f'{smallest:.0%}'}")
        print(f"results: {ns.out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
