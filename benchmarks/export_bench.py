"""Export throughput and memory: `retracer profile --format F` on traces of 1M and 10M calls.

    python benchmarks/export_bench.py                  # 1M and 10M calls (default)
    python benchmarks/export_bench.py --calls 1e6,1e7,2e7 --formats chrome,pprof --keep DIR

Makes a program that calls two tiny functions in a loop, traces it with
`retracer trace --no-capture`, then exports each trace to each format in a fresh
child process (one per measurement) and prints, per format and size:

- the export time (reading the chunks from the trace file, decoding, writing the
  file; not the interpreter start or the signature check when the trace is opened)
  and that time per million calls;
- the child's peak resident memory (VmHWM from /proc, or ru_maxrss) and how much of
  it the export added over opening the trace (`+RSS`);
- the output size.

Memory is flat when the peak of the largest trace is about that of the smallest:
the exporters stream, and the aggregated formats (folded, pprof, json, flamegraph)
keep one node per distinct stack, not per call. Run with the interpreter that has
retracer installed (e.g. .venvs/py3.11/bin/python). Times vary with the machine: quote
the per-million figures and the memory ratio, not the seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

PROGRAM = """\
import sys

def leaf(x):
    return x + 1

def work(x):
    return leaf(x) * 2

def main(n):
    total = 0
    for i in range(n):
        total += work(i)
    return total

if __name__ == "__main__":
    main(int(sys.argv[1]) // 2)
"""

CHILD = r"""
import json, os, resource, sys, time
from retracer.tracefile import TraceReader

def peak_kib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

trace, fmt, out = sys.argv[1:4]
reader = TraceReader(trace)
base = peak_kib()
t0 = time.perf_counter()
if fmt == "none":
    calls = 0
elif fmt == "flamegraph":
    from retracer.render.flamegraph import write_flamegraph
    write_flamegraph(reader, out)
    calls = reader.meta["stream_calls"]
elif fmt == "pstats":
    from retracer.analysis.pstats import write_pstats
    write_pstats(reader, out)
    calls = reader.meta["stream_calls"]
else:
    from retracer.render import export
    calls = export(reader, fmt, out)["calls"]
dt = time.perf_counter() - t0
reader.close()
print(json.dumps({"seconds": dt, "peak_kib": peak_kib(), "base_kib": base, "calls": calls,
                  "bytes": os.path.getsize(out) if fmt != "none" else 0}))
"""

FORMATS = ["chrome", "speedscope", "folded", "pprof", "json", "flamegraph", "pstats"]


def run(cmd, env, **kw):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"export_bench: {' '.join(cmd[:4])}... failed:\n{p.stderr}")
    return p


def make_trace(work: str, n: int, env) -> str:
    prog = os.path.join(work, "loop.py")
    with open(prog, "w") as f:
        f.write(PROGRAM)
    out = os.path.join(work, f"loop-{n}.trace")
    print(f"tracing {n:,} calls...", file=sys.stderr, flush=True)
    run([sys.executable, "-m", "retracer", "trace", "-q", "--no-capture", "-o", out, prog, str(n)], env, cwd=work)
    return out


def measure(trace: str, fmt: str, out: str, env) -> dict:
    p = run([sys.executable, "-c", CHILD, trace, fmt, out], env)
    res = json.loads(p.stdout.strip().splitlines()[-1])
    if os.path.exists(out):
        os.unlink(out)
    return res


def fmt_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", default="1e6,1e7", help="trace sizes in calls, comma-separated (default 1e6,1e7)")
    ap.add_argument("--formats", default=",".join(FORMATS), help="formats (default: all)")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep the traces")
    args = ap.parse_args()
    sizes = [int(float(x)) for x in args.calls.split(",")]
    formats = args.formats.split(",")
    work = args.keep or tempfile.mkdtemp(prefix="retracer-export-bench-")
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, RETRACER_CONFIG_DIR=os.environ.get("RETRACER_CONFIG_DIR", os.path.join(work, "config")))
    results = {}
    try:
        traces = {n: make_trace(work, n, env) for n in sizes}
        for n, tr in traces.items():
            base = measure(tr, "none", os.path.join(work, "none"), env)
            results[(n, "open")] = base
            for fmt in formats:
                print(f"exporting {n:,} calls to {fmt}...", file=sys.stderr, flush=True)
                results[(n, fmt)] = measure(tr, fmt, os.path.join(work, f"out.{fmt}"), env)
        print()
        print(f"python {sys.version.split()[0]}; traces: "
              + ", ".join(f"{n:,} calls = {fmt_size(os.path.getsize(t))}" for n, t in traces.items()))
        hdr = f"{'format':<11} {'calls':>11} {'export s':>9} {'s/M calls':>10} {'peak RSS':>10} {'+RSS':>10} {'output':>10}"
        print(hdr)
        print("-" * len(hdr))
        for fmt in formats:
            for n in sizes:
                r = results[(n, fmt)]
                per_m = r["seconds"] / (n / 1e6)
                print(f"{fmt:<11} {r['calls']:>11,} {r['seconds']:>9.2f} {per_m:>10.3f} {fmt_size(r['peak_kib'] * 1024):>10} "
                      f"{fmt_size(max(0, r['peak_kib'] - r['base_kib']) * 1024):>10} {fmt_size(r['bytes']):>10}")
        if len(sizes) > 1:
            lo, hi = sizes[0], sizes[-1]
            print()
            print(f"peak memory, {hi:,} calls / {lo:,} calls (1.00 = flat):")
            print("  " + ", ".join(f"{fmt} {results[(hi, fmt)]['peak_kib'] / results[(lo, fmt)]['peak_kib']:.2f}"
                                   for fmt in formats))
        print(f"(opening a trace, for reference: peak RSS {fmt_size(results[(sizes[-1], 'open')]['peak_kib'] * 1024)})")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
