"""How fast `retracer view` is on big traces: folding time (the C folder), the page's
size, and the time until the page is interactive in headless Chromium.

    python benchmarks/view_bench.py                  # ~1M-call page + 10M-call folding
    python benchmarks/view_bench.py --no-10m         # skip the 10M-call trace
    python benchmarks/view_bench.py --keep DIR       # keep the traces and pages in DIR

Run it with the interpreter retracer is installed in (e.g. .venvs/py3.11/bin/python).
The browser part needs Debian's chromium (/usr/bin/chromium) and playwright; without
them it is skipped with a note. Times are wall-clock seconds, the best of --rounds
runs; these machines are noisy, so compare runs made back to back.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOADS = (HERE.parent.parent / "shared" / "workloads").resolve()


def trace(workdir: Path, name: str, script: str, *args: str) -> Path:
    out = workdir / f"{name}.trace"
    if out.exists():
        return out
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "retracer", "trace", "-q", "--no-capture", "-o", str(out),
                    str(WORKLOADS / script), *args], check=True, cwd=str(workdir))
    print(f"  traced {script} {' '.join(args)} in {time.perf_counter() - t:.2f} s")
    return out


def fold_times(path: Path, rounds: int) -> dict:
    from retracer import _view
    from retracer.tracefile import TraceReader

    with TraceReader(str(path)) as r:
        threads = [th.thread_idx for th in r.threads]
        chunks = {t: list(r.iter_chunks(t)) for t in threads}
        calls = r.meta.get("stream_calls")
    best = None
    info_all = None
    for _ in range(rounds):
        t = time.perf_counter()
        infos = [_view.fold(chunks[th]) for th in threads]
        dt = time.perf_counter() - t
        if best is None or dt < best:
            best, info_all = dt, infos
    tree_bytes = sum(len(x[0]) for x in info_all)
    groups = sum(x[2]["groups"] for x in info_all)
    return {"calls": calls, "fold_s": best, "tree_bytes": tree_bytes, "groups": groups}


def view_page(path: Path, out: Path, rounds: int) -> float:
    best = None
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "retracer", "view", str(path), "-o", str(out)], check=True,
                       capture_output=True)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return best


def interactive(html: Path, chromium: str, rounds: int):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None, "playwright not installed"
    if not os.access(chromium, os.X_OK):
        return None, f"no chromium at {chromium}"
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    results = []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(rounds):
            page = b.new_page(viewport={"width": 1400, "height": 900})
            t = time.perf_counter()
            page.goto(html.as_uri(), wait_until="commit")
            page.wait_for_selector("body[data-ready='1']", timeout=120000)
            wall = time.perf_counter() - t
            since_nav = page.evaluate("window.__rtReadyAt") / 1000.0
            # one interaction: open the first closed row (a group, or a recursion), timed in the page
            took = page.evaluate("""() => {
                const tws = [...document.querySelectorAll('#tree .row .tw')].filter((e) => e.textContent === '▸');
                if (!tws.length) return -1;
                const t = performance.now(); tws[0].click(); return performance.now() - t; }""")
            results.append((since_nav, wall, took))
            page.close()
        b.close()
    best = min(results)
    return best, None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-10m", action="store_true", help="skip folding the 10-million-call trace")
    ap.add_argument("--keep", metavar="DIR", help="keep traces and pages in DIR")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ns = ap.parse_args()
    workdir = Path(ns.keep).resolve() if ns.keep else Path(tempfile.mkdtemp(prefix="view-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RETRACER_CONFIG_DIR", str(workdir / "config"))
    import platform
    print(f"retracer view benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, in {workdir}")
    rows = []
    try:
        cases = [("oop_sim 200x500", "oop_sim", "oop_sim.py", ("200", "500")),
                 ("calls_fib 28", "fib28", "calls_fib.py", ("28",))]
        if not ns.no_10m:
            cases.append(("oop_sim 200x4600 (10M)", "oop_sim10m", "oop_sim.py", ("200", "4600")))
            cases.append(("calls_fib 33 (11M)", "fib33", "calls_fib.py", ("33",)))
        for title, name, script, args in cases:
            print(f"== {title}")
            t = trace(workdir, name, script, *args)
            f = fold_times(t, ns.rounds)
            print(f"  folding: {f['calls']:,} calls in {f['fold_s']:.3f} s "
                  f"({f['calls'] / f['fold_s'] / 1e6:.1f} M calls/s), {f['groups']:,} groups, "
                  f"encoded {f['tree_bytes'] / 1e6:.1f} MB")
            row = {"case": title, **f}
            if f["calls"] <= 3_000_000:
                html = workdir / f"{name}.html"
                row["view_s"] = view_page(t, html, ns.rounds)
                row["page_mb"] = html.stat().st_size / 1e6
                print(f"  retracer view -o: {row['view_s']:.2f} s, page {row['page_mb']:.2f} MB")
                best, why = interactive(html, ns.chromium, ns.rounds)
                if best is None:
                    print(f"  interactive: skipped ({why})")
                else:
                    row["ready_s"], row["ready_wall_s"], row["open_group_ms"] = best
                    print(f"  interactive in headless Chromium: {best[0]:.3f} s after navigation "
                          f"({best[1]:.3f} s wall from goto); opening a group: {best[2]:.1f} ms")
            rows.append(row)
        print()
        print(f"{'trace':24} {'calls':>12} {'fold s':>8} {'M calls/s':>10} {'page MB':>8} {'ready s':>8}")
        for r in rows:
            print(f"{r['case']:24} {r['calls']:>12,} {r['fold_s']:>8.3f} {r['calls'] / r['fold_s'] / 1e6:>10.1f} "
                  f"{r.get('page_mb', float('nan')):>8.2f} {r.get('ready_s', float('nan')):>8.3f}")
    finally:
        if not ns.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
