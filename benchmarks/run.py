#!/usr/bin/env python3
"""Overhead of retracer and its peers on the shared workloads, as ratios to plain Python.

    python benchmarks/run.py [--rounds N] [--workloads a,b] [--modes m1,m2] [--python PY]

Every run is one subprocess, timed with time.perf_counter() around it in this process
(so interpreter start-up, the tool's import and the writing of its output file are all
counted, as a user would feel them). Runs are interleaved: for each round, for each
workload, the modes run in a freshly shuffled order. Each cell reports the median and
the min over rounds; ratios are median(mode) / median(plain python) of the same
workload. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKLOADS_DIR = Path(os.environ.get("RETRACER_WORKLOADS", REPO.parent / "shared" / "workloads"))
VENV_PY = HERE / ".venv" / "bin" / "python"
CODEFLASH_PY = HERE / ".venv-codeflash" / "bin" / "python"
RESULTS_DIR = HERE / "results"

# Sizes chosen so that plain Python takes roughly 0.3 s per run on the project's
# machines (CPython 3.11, measured with benchmarks/run.py --modes python).
# Override with --size NAME=ARGS (e.g. --size calls_fib=30 --size "oop_sim=200 500").
DEFAULT_SIZES = {
    "calls_fib": "32",
    "oop_sim": "200 2000",
    "text_pipeline": "50000",
    "json_roundtrip": "80000",
    "async_jobs": "200000",
    "threads_work": "25000",
    "exceptions_deep": "100000",
    "mp_fanout": "20000",  # benchmarks/workloads/: pools of each start method, an executor, a subprocess
}

ALL_MODES = ["python", "cprofile", "viztracer", "pyinstrument", "yappi", "codeflash",
             "retracer", "retracer-capture", "retracer-replaycheck"]

# Python module each peer mode needs in the benchmark interpreter.
PEER_MODULES = {"viztracer": "viztracer", "pyinstrument": "pyinstrument", "yappi": "yappi"}

# viztracer keeps roughly this many bytes of memory per recorded event while saving
# its JSON (measured: ~1.1 KB/event at 1.6M events). Used to refuse runs that would
# not fit in memory instead of driving the machine into swap or the OOM killer.
VIZTRACER_BYTES_PER_EVENT = 1200

# A cell this many times slower than plain Python stops after --slow-rounds rounds:
# its ratio is already clear, and viztracer or codeflash take ~30-60 s per run.
SLOW_RATIO = 20.0

CODEFLASH_PYPROJECT = """\
[tool.codeflash]
module-root = "{module_root}"
tests-root = "tests"
test-framework = "pytest"
formatter-cmds = ["disabled"]
disable-telemetry = true
"""


# ---------------------------------------------------------------------------------
# small helpers

def fmt_bytes(n: Optional[float]) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def mem_available() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


# Every mode runs with bytecode caching on, as a user's interpreter does: an environment
# that turns it off (PYTHONDONTWRITEBYTECODE) would make each run compile every tool
# (retracer, viztracer, ...) from source again and count that as its overhead.
RUN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_quiet(cmd: list[str], timeout: float = 60, cwd: Optional[Path] = None
              ) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, cwd=cwd, env=RUN_ENV)


def probe_module(py: str, module: str) -> Optional[str]:
    """Version of `module` importable by interpreter `py`, or None if it does not import."""
    code = ("import importlib, importlib.metadata as m, sys\n"
            f"importlib.import_module({module!r})\n"
            f"try: print(m.version({module!r}))\n"
            "except Exception: print('?')\n")
    try:
        r = run_quiet([py, "-c", code])
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() or "?" if r.returncode == 0 else None


def python_version(py: str) -> str:
    try:
        r = run_quiet([py, "-c", "import sys, platform; print(platform.python_implementation(),"
                                 " sys.version.split()[0])"])
        return r.stdout.strip() if r.returncode == 0 else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def total_size(path: Path) -> Optional[int]:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return None


# ---------------------------------------------------------------------------------
# one run

@dataclass
class RunResult:
    round: int
    workload: str
    mode: str
    status: str                      # ok | error | timeout | n/a
    seconds: Optional[float] = None
    out_bytes: Optional[int] = None
    detail: str = ""


@dataclass
class Context:
    py: str                          # interpreter for every mode except codeflash
    workdir: Path                    # scratch dir: cwd of every run, outputs land here
    timeout: float
    keep: bool
    expected: dict = field(default_factory=dict)        # workload -> its stdout lines
    calls: dict = field(default_factory=dict)           # workload -> profile events
    vz_entries: dict = field(default_factory=dict)      # workload -> --tracer_entries
    na: dict = field(default_factory=dict)              # (workload|None, mode) -> reason
    retracer_cmd: list = field(default_factory=list)


def workload_path(name: str) -> Path:
    own = HERE / "workloads" / f"{name}.py"  # the project's own workloads first (mp_fanout)
    return own if own.exists() else WORKLOADS_DIR / f"{name}.py"


def build_command(ctx: Context, mode: str, workload: str, args: list[str], out: Path
                  ) -> tuple[list[str], Path, Path]:
    """The command for one run, the cwd to run it in and the path its output appears at."""
    script = str(workload_path(workload))
    py = ctx.py
    cwd = ctx.workdir
    if mode == "python":
        return [py, script, *args], cwd, out
    if mode == "cprofile":
        return [py, "-m", "cProfile", "-o", str(out), script, *args], cwd, out
    if mode == "viztracer":
        out = out.with_suffix(".json")
        return [py, "-m", "viztracer", "--quiet", "-o", str(out),
                "--tracer_entries", str(ctx.vz_entries[workload]), script, *args], cwd, out
    if mode == "pyinstrument":
        out = out.with_suffix(".pyisession")
        return [py, "-m", "pyinstrument", "-r", "pyisession", "-o", str(out),
                script, *args], cwd, out
    if mode == "yappi":
        return [py, str(HERE / "yappi_run.py"), str(out), script, *args], cwd, out
    if mode == "codeflash":
        # codeflash needs a pyproject.toml with a [tool.codeflash] block in or above its
        # cwd; module-root points at the workloads so they are in scope. It ignores -o
        # and writes its trace next to the replay test in tests-root.
        cfdir = ctx.workdir / "codeflash"
        tests = cfdir / "tests"
        shutil.rmtree(tests, ignore_errors=True)
        tests.mkdir(parents=True)
        return [str(CODEFLASH_PY), "-m", "codeflash.tracer", "--trace-only", "-o", str(out),
                script, *args], cfdir, tests
    if mode == "retracer":
        return [*ctx.retracer_cmd, "trace", "--no-capture", "-q", "-o", str(out),
                script, *args], cwd, out
    if mode == "retracer-capture":
        # capture on; the post-trace stability check (a replay of the captured calls)
        # is a separate step and is measured by the retracer-replaycheck mode
        return [*ctx.retracer_cmd, "trace", "--no-stability-check", "-q", "-o", str(out),
                script, *args], cwd, out
    if mode == "retracer-replaycheck":
        return [*ctx.retracer_cmd, "trace", "-q", "-o", str(out), script, *args], cwd, out
    raise ValueError(mode)


def run_one(ctx: Context, rnd: int, mode: str, workload: str, args: list[str]
            ) -> tuple[RunResult, Optional[Path]]:
    reason = ctx.na.get((None, mode)) or ctx.na.get((workload, mode))
    if reason:
        return RunResult(rnd, workload, mode, "n/a", detail=reason), None
    out = ctx.workdir / f"{workload}.{mode}.out"
    cmd, cwd, out = build_command(ctx, mode, workload, args, out)
    if out.is_file():
        out.unlink()
    proc = None
    t0 = time.perf_counter()
    try:
        # Own session, so a timeout can kill the whole tree (codeflash runs a child).
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, errors="replace",
                                start_new_session=True, env=RUN_ENV)
        stdout, stderr = proc.communicate(timeout=ctx.timeout)
        elapsed = time.perf_counter() - t0
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.communicate()
        return RunResult(rnd, workload, mode, "timeout", detail=f"> {ctx.timeout:g} s"), None
    except OSError as e:
        return RunResult(rnd, workload, mode, "error", detail=f"cannot start: {e}"), None
    except KeyboardInterrupt:
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        raise

    if proc.returncode != 0:
        msg = last_line(stderr) or last_line(stdout) or "(no output)"
        return RunResult(rnd, workload, mode, "error",
                         detail=f"exit {proc.returncode}: {msg}"), None
    # The workload prints one result line; the tool must not have changed it.
    want = ctx.expected.get(workload)
    got = stdout.splitlines()
    if want is not None and mode != "python" and not all(w in got for w in want):
        return RunResult(rnd, workload, mode, "error",
                         detail=f"output differs from plain python: {last_line(stdout)!r}"), None
    size = total_size(out)
    if mode != "python" and not size:
        return RunResult(rnd, workload, mode, "error",
                         detail=f"no output file written ({out.name})"), None
    return RunResult(rnd, workload, mode, "ok", seconds=elapsed, out_bytes=size), out


def slow_ratio(results: list[RunResult], workload: str, mode: str, slow_rounds: int
               ) -> Optional[float]:
    """The cell's median ratio if it is slow and has had its --slow-rounds, else None."""
    if slow_rounds <= 0 or mode == "python":
        return None
    ok = [r.seconds for r in results if r.workload == workload and r.mode == mode
          and r.status == "ok"]
    base = [r.seconds for r in results if r.workload == workload and r.mode == "python"
            and r.status == "ok"]
    if len(ok) < slow_rounds or not base:
        return None
    ratio = statistics.median(ok) / statistics.median(base)
    return ratio if ratio > SLOW_RATIO else None


def cleanup_output(ctx: Context, out: Optional[Path]) -> None:
    if out is None or ctx.keep:
        return
    if out.is_dir():
        shutil.rmtree(out, ignore_errors=True)
    elif out.exists():
        out.unlink()


def retracer_stream_calls(ctx: Context, trace: Path) -> tuple[Optional[int], str]:
    code = ("import sys\n"
            "from retracer.tracefile import TraceReader\n"
            "r = TraceReader(sys.argv[1], trust=True)\n"
            "print(r.meta['stream_calls'])\n")
    try:
        r = run_quiet([ctx.py, "-c", code, str(trace)], timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    if r.returncode != 0:
        return None, last_line(r.stderr) or f"exit {r.returncode}"
    try:
        return int(r.stdout.strip().splitlines()[-1]), ""
    except (ValueError, IndexError):
        return None, f"unexpected output {r.stdout.strip()[:80]!r}"


# ---------------------------------------------------------------------------------
# preparation: interpreters, tools, expected outputs, viztracer buffer sizes

def find_retracer_cmd(py: str) -> list[str]:
    script = Path(py).parent / "retracer"
    if script.exists():
        return [str(script)]
    return [py, "-m", "retracer"]


def prepare(ctx: Context, workloads: dict, modes: list[str], args) -> dict:
    """Check tools, record versions, get plain outputs and viztracer sizes. Returns info."""
    info = {"python": python_version(ctx.py), "python_path": ctx.py, "tools": {}}
    for mode, module in PEER_MODULES.items():
        if mode not in modes:
            continue
        v = probe_module(ctx.py, module)
        if v is None:
            ctx.na[(None, mode)] = "n/a (not installed)"
            print(f"  {mode}: {module} does not import in {ctx.py}; run benchmarks/setup.sh")
        info["tools"][mode] = v
    if "codeflash" in modes:
        v = probe_module(str(CODEFLASH_PY), "codeflash") if CODEFLASH_PY.exists() else None
        if v is None:
            ctx.na[(None, "codeflash")] = "n/a (does not install)"
        else:
            info["tools"]["codeflash"] = v
            info["codeflash_python"] = python_version(str(CODEFLASH_PY))
            cfdir = ctx.workdir / "codeflash"
            cfdir.mkdir(parents=True, exist_ok=True)
            (cfdir / "pyproject.toml").write_text(
                CODEFLASH_PYPROJECT.format(module_root=WORKLOADS_DIR.as_posix()))
    if any(m.startswith("retracer") for m in modes):
        info["tools"]["retracer"] = probe_module(ctx.py, "retracer")
        ctx.retracer_cmd = find_retracer_cmd(ctx.py)
    info["tools"]["cprofile"] = "stdlib"

    # Plain run of each workload, untimed: checks it works, warms the file cache and
    # records the output every tool must reproduce.
    for name, wargs in workloads.items():
        try:
            r = run_quiet([ctx.py, str(workload_path(name)), *wargs], timeout=ctx.timeout,
                          cwd=ctx.workdir)
        except subprocess.TimeoutExpired:
            sys.exit(f"error: plain run of {name} took more than {ctx.timeout:g} s")
        if r.returncode != 0:
            sys.exit(f"error: plain run of {name} failed: {last_line(r.stderr)}")
        ctx.expected[name] = [ln for ln in r.stdout.splitlines() if ln.strip()][-1:]

    # viztracer drops its oldest events silently (--quiet) when its ring buffer is full:
    # count the events once and size the buffer with a margin.
    if "viztracer" in modes and (None, "viztracer") not in ctx.na:
        avail = mem_available()
        for name, wargs in workloads.items():
            if args.viztracer_entries:
                n = None
                entries = args.viztracer_entries
            else:
                r = run_quiet([ctx.py, str(HERE / "count_calls.py"), str(workload_path(name)),
                               *wargs], timeout=ctx.timeout, cwd=ctx.workdir)
                line = last_line(r.stderr)
                if r.returncode != 0 or not line.startswith("calls="):
                    ctx.na[(name, "viztracer")] = "n/a (event count failed)"
                    print(f"  viztracer on {name}: could not count events: {line}")
                    continue
                n = int(line.split("=", 1)[1])
                ctx.calls[name] = n
                entries = int(n * 1.2) + 100_000
            ctx.vz_entries[name] = entries
            need = (n or entries) * VIZTRACER_BYTES_PER_EVENT
            if avail and need > 0.7 * avail:
                ctx.na[(name, "viztracer")] = (f"n/a (needs ~{fmt_bytes(need)} RAM, "
                                               f"{fmt_bytes(avail)} available)")
    info["profile_events"] = dict(ctx.calls)
    info["viztracer_entries"] = dict(ctx.vz_entries)
    return info


# ---------------------------------------------------------------------------------
# summary and tables

def summarize(results: list[RunResult], workloads: list[str], modes: list[str]) -> dict:
    summary: dict = {}
    for w in workloads:
        summary[w] = {}
        for m in modes:
            rs = [r for r in results if r.workload == w and r.mode == m]
            ok = [r.seconds for r in rs if r.status == "ok"]
            cell = {"runs": len(rs), "ok": len(ok)}
            if ok:
                cell["median"] = statistics.median(ok)
                cell["min"] = min(ok)
                sizes = [r.out_bytes for r in rs if r.status == "ok" and r.out_bytes]
                if sizes:
                    cell["out_bytes"] = statistics.median(sizes)
            bad = [r for r in rs if r.status != "ok"]
            if bad:
                cell["status"] = bad[-1].status
                cell["detail"] = bad[-1].detail
            summary[w][m] = cell
        base = summary[w].get("python", {})
        for m in modes:
            cell = summary[w][m]
            if "median" in cell and base.get("median"):
                cell["ratio"] = cell["median"] / base["median"]
                cell["ratio_min"] = cell["min"] / base["min"]
    return summary


def cell_label(cell: dict) -> str:
    """What to print for a cell with no successful run."""
    st = cell.get("status")
    if st == "n/a":
        return cell.get("detail") or "n/a"
    if st == "timeout":
        return "timeout"
    if st == "error":
        return "error"
    return "–"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i])
              for i in range(len(header))]
    def line(cells):
        return "| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(cells)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def render(summary: dict, workloads: list[str], modes: list[str], sizes: dict,
           info: dict, retracer_bpc: dict, rounds_done: int) -> str:
    out = []
    out.append(f"### Time per run, median (min) over {rounds_done} round(s), seconds"
               " (n=: fewer runs)\n")
    base_runs = {w: summary[w].get("python", {}).get("ok") for w in workloads}
    rows = []
    for w in workloads:
        row = [f"{w} {sizes[w]}"]
        for m in modes:
            c = summary[w][m]
            if "median" in c:
                n = f" n={c['ok']}" if c["ok"] != base_runs.get(w) else ""
                row.append(f"{c['median']:.3f} ({c['min']:.3f}){n}")
            else:
                row.append(cell_label(c))
        rows.append(row)
    out.append(md_table(["workload", *modes], rows))

    shown = [m for m in modes if m != "python"]
    if shown:
        out.append("\n### Ratio to plain Python (median / median)\n")
        rows = []
        for w in workloads:
            row = [w]
            for m in shown:
                c = summary[w][m]
                row.append(f"{c['ratio']:.2f}x" if "ratio" in c else cell_label(c))
            rows.append(row)
        out.append(md_table(["workload", *shown], rows))

    if "retracer" in modes and "retracer-capture" in modes:
        out.append("\n### Cost of capture: retracer-capture / retracer (median / median; "
                   "issue 3 target <= 1.15 on the call- and object-heavy workloads)\n")
        rows = []
        for w in workloads:
            a, b = summary[w]["retracer"], summary[w]["retracer-capture"]
            if "median" in a and "median" in b:
                rows.append([w, f"{b['median'] / a['median']:.3f}"])
            else:
                rows.append([w, cell_label(b if "median" not in b else a)])
        out.append(md_table(["workload", "capture / no capture"], rows))

    if info.get("profile_events"):
        out.append("\n### Extra time per profile event, ns (events = Python + C calls, "
                   "counted once with sys.setprofile; includes start-up and save)\n")
        rows = []
        for w in workloads:
            n = info["profile_events"].get(w)
            row = [w, f"{n:,}" if n else "?"]
            base = summary[w].get("python", {}).get("median")
            for m in shown:
                c = summary[w][m]
                if n and base and "median" in c:
                    row.append(f"{(c['median'] - base) / n * 1e9:.0f}")
                else:
                    row.append(cell_label(c) if "median" not in c else "?")
            rows.append(row)
        out.append(md_table(["workload", "events", *shown], rows))

    outs = [m for m in shown if any("out_bytes" in summary[w][m] for w in workloads)]
    if outs:
        out.append("\n### Output size\n")
        rows = [[w, *(fmt_bytes(summary[w][m].get("out_bytes")) if "out_bytes" in summary[w][m]
                      else cell_label(summary[w][m]) for m in outs)] for w in workloads]
        out.append(md_table(["workload", *outs], rows))

    if retracer_bpc:
        out.append("\n### retracer trace: bytes per recorded call (file size / stream_calls)\n")
        rows = []
        for (w, m), d in sorted(retracer_bpc.items(), key=lambda kv: (workloads.index(kv[0][0]),
                                                                      kv[0][1])):
            rows.append([w, m, fmt_bytes(d.get("bytes")),
                         f"{d['stream_calls']:,}" if d.get("stream_calls") is not None else "?",
                         f"{d['bytes_per_call']:.1f}" if d.get("bytes_per_call") else "?"])
        out.append(md_table(["workload", "mode", "file", "stream_calls", "bytes/call"], rows))

    # Failures, once per cell, with the child's last stderr line.
    notes = []
    for w in workloads:
        for m in modes:
            c = summary[w][m]
            if c.get("status") in ("error", "timeout"):
                notes.append(f"- {w} / {m}: {c['status']} ({c['ok']}/{c['runs']} ok) — "
                             f"{c.get('detail', '')}")
    if notes:
        out.append("\n### Failures\n")
        out.extend(notes)
    return "\n".join(out)


# ---------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Overhead of retracer and its peers, as ratios to plain Python.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="modes: " + ", ".join(ALL_MODES) + "\nworkloads: " + ", ".join(DEFAULT_SIZES))
    p.add_argument("--rounds", type=int, default=5, help="rounds of interleaved runs (default 5)")
    p.add_argument("--workloads", default=",".join(DEFAULT_SIZES),
                   help="comma-separated workload names (default: all)")
    p.add_argument("--modes", default=",".join(ALL_MODES),
                   help="comma-separated modes (default: all); 'python' is always added")
    p.add_argument("--python", default=None,
                   help="interpreter for every mode but codeflash (default: benchmarks/.venv "
                        "if it exists, else this interpreter)")
    p.add_argument("--size", action="append", default=[], metavar="NAME=ARGS",
                   help="workload arguments, e.g. --size calls_fib=30 --size 'oop_sim=200 500'")
    p.add_argument("--timeout", type=float, default=300, help="seconds per run (default 300)")
    p.add_argument("--seed", type=int, default=None, help="seed of the mode shuffling")
    p.add_argument("--slow-rounds", type=int, default=2,
                   help=f"a cell over {SLOW_RATIO:g}x plain stops after this many rounds "
                        "(default 2; 0 = run every round)")
    p.add_argument("--viztracer-entries", type=int, default=None,
                   help="viztracer --tracer_entries (default: counted per workload)")
    p.add_argument("--workdir", default=None, help="scratch directory (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the tools' output files")
    p.add_argument("--no-json", action="store_true", help="do not write results/<ts>.json")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not WORKLOADS_DIR.is_dir():
        sys.exit(f"error: workloads not found at {WORKLOADS_DIR}")

    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    sizes = dict(DEFAULT_SIZES)
    for s in args.size:
        name, _, val = s.partition("=")
        sizes[name.strip()] = val.strip()
    for w in workloads:
        if not workload_path(w).is_file():
            sys.exit(f"error: no workload {w!r} in {WORKLOADS_DIR}")
        sizes.setdefault(w, "")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in ALL_MODES:
            sys.exit(f"error: unknown mode {m!r}; choose from {', '.join(ALL_MODES)}")
    modes = ["python"] + [m for m in ALL_MODES if m in modes and m != "python"]

    py = args.python or (str(VENV_PY) if VENV_PY.exists() else sys.executable)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)

    tmp = None
    if args.workdir:
        workdir = Path(args.workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="retracer-bench-")
        workdir = Path(tmp)
    ctx = Context(py=py, workdir=workdir, timeout=args.timeout, keep=args.keep)
    wargs = {w: sizes[w].split() for w in workloads}

    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"retracer benchmarks — {started}, {os.cpu_count()} CPUs, load {loadavg()}")
    print(f"python: {py}")
    print("preparing (tool check, plain runs, viztracer event counts)…", flush=True)
    info = prepare(ctx, wargs, modes, args)
    print(f"  {info['python']}; " + ", ".join(
        f"{k} {v if v else 'not installed'}" for k, v in info["tools"].items()))
    for (w, m), reason in sorted(ctx.na.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        print(f"  {m}{' on ' + w if w else ''}: {reason}")
    total = args.rounds * len(workloads) * len(modes)
    print(f"{args.rounds} round(s) × {len(workloads)} workload(s) × {len(modes)} mode(s) = "
          f"{total} runs, seed {seed}, timeout {args.timeout:g} s\n", flush=True)

    results: list[RunResult] = []
    retracer_bpc: dict = {}
    skipped: dict = {}
    rounds_done = 0
    interrupted = False
    try:
        for rnd in range(1, args.rounds + 1):
            for w in workloads:
                order = list(modes)
                rng.shuffle(order)
                for m in order:
                    slow = slow_ratio(results, w, m, args.slow_rounds)
                    if slow:
                        if (w, m) not in skipped:
                            print(f"[{rnd}/{args.rounds}] {w:16s} {m:17s} "
                                  f"skipped from now on ({slow:.0f}x after "
                                  f"{args.slow_rounds} round(s))", flush=True)
                        skipped[(w, m)] = slow
                        continue
                    r, out = run_one(ctx, rnd, m, w, wargs[w])
                    results.append(r)
                    if r.status == "ok":
                        shown = f"{r.seconds:7.3f} s"
                        if r.out_bytes:
                            shown += f"  {fmt_bytes(r.out_bytes)}"
                    else:
                        shown = r.detail if r.status == "n/a" else f"{r.status}: {r.detail}"
                    if r.status != "n/a" or rnd == 1:
                        print(f"[{rnd}/{args.rounds}] {w:16s} {m:17s} {shown}", flush=True)
                    if (r.status == "ok" and m.startswith("retracer")
                            and (w, m) not in retracer_bpc):
                        n, err = retracer_stream_calls(ctx, out)
                        retracer_bpc[(w, m)] = {
                            "bytes": r.out_bytes, "stream_calls": n, "error": err or None,
                            "bytes_per_call": (r.out_bytes / n) if n else None}
                        if err:
                            print(f"    stream_calls: ? ({err})")
                    cleanup_output(ctx, out)
            rounds_done = rnd
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: summarising the runs done so far")

    summary = summarize(results, workloads, modes)
    print()
    print(f"load at end: {loadavg()}")
    print()
    print(render(summary, workloads, modes, sizes, info, retracer_bpc,
                 rounds_done if not interrupted else f"{rounds_done}+"))

    if not args.no_json:
        RESULTS_DIR.mkdir(exist_ok=True)
        path = RESULTS_DIR / (time.strftime("%Y%m%d-%H%M%S") + ".json")
        doc = {
            "started": started,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "interrupted": interrupted,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "load_end": loadavg()},
            "rounds": args.rounds, "rounds_done": rounds_done, "seed": seed,
            "timeout": args.timeout,
            "timing": "perf_counter around the subprocess (start-up, import, save included)",
            "workloads": {w: sizes[w] for w in workloads},
            "modes": modes,
            "info": info,
            "na": {f"{w or '*'}/{m}": v for (w, m), v in ctx.na.items()},
            "summary": summary,
            "slow_cells_stopped": {f"{w}/{m}": v for (w, m), v in skipped.items()},
            "retracer_bytes_per_call": {f"{w}/{m}": v for (w, m), v in retracer_bpc.items()},
            "runs": [r.__dict__ for r in results],
        }
        path.write_text(json.dumps(doc, indent=1))
        print(f"\nresults: {path}")
    if tmp and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    elif args.keep:
        print(f"outputs kept in {workdir}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
