#!/usr/bin/env python3
"""retracer on real programs: docutils, pygments, markdown, sqlparse and a real test suite.

    bash benchmarks/setup_real.sh                                  # once
    benchmarks/.venv-real/bin/python benchmarks/real_programs.py [--rounds 3] [--timeout 600]

Each program runs from its PyPI sdist's source tree (unpacked by setup_real.sh, copied to
a scratch directory under /tmp), as `python -m PACKAGE ...` with that tree as the
current directory, so its code is the traced program's scope. Modes:

    plain        python -m P ARGS
    cprofile     python -m cProfile -o OUT -m P ARGS
    no-capture   python -m retracer trace --no-capture -q -o OUT -m P ARGS
    trace        python -m retracer trace -q -o OUT -m P ARGS      (the default, capture on)

--replay: after the first successful `trace` run of each program, `retracer replay --json
OUT` in the unchanged tree (every captured call replayed twice in isolated children); its
mismatches and errors are false alarms (or genuine nondeterminism), tabled per program.

Per run: wall time (perf_counter around the child), peak RSS (os.wait4's rusage: the
largest of the child and the processes it waited for), the output file's size, and
whether the program's output equals plain Python's. Per trace: the #1 function by own
time, read with `retracer profile TRACE --sort own --json --top 3` (your code) and from
TraceReader.func_stats() (every function). Runs are interleaved: per round, per program,
the modes in a shuffled order. A run over --timeout is killed (its process group) and
reported as "timeout"; a cell that timed out is not run again in later rounds. Prints
Markdown tables; writes the whole run as JSON to benchmarks/results/real-<stamp>.json.
"""
from __future__ import annotations

import argparse
import hashlib
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
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache" / "real"
RESULTS_DIR = HERE / "results"
MODES = ["plain", "cprofile", "no-capture", "trace"]


# ---------------------------------------------------------------------------------
# inputs (deterministic: shipped in the sdists, or generated from a fixed seed)

def read_pins() -> Dict[str, tuple]:
    pins = CACHE / "pins.txt"
    if not pins.exists():
        sys.exit(f"error: {pins} missing; run: bash {HERE / 'setup_real.sh'}")
    out = {}
    for line in pins.read_text().splitlines():
        name, version, tree = line.split()
        out[name] = (version, CACHE / tree)
    return out


def markdown_input(tree: Path, target: int = 300_000) -> str:
    """Every .md file of markdown's own docs/, in sorted path order, concatenated (and
    repeated if needed) until at least `target` bytes (~303 KB for markdown 3.11.3)."""
    files = sorted(p for p in (tree / "docs").rglob("*.md"))
    parts: List[str] = []
    size = 0
    while size < target:
        for p in files:
            text = p.read_text(encoding="utf-8")
            parts.append(text)
            size += len(text.encode("utf-8"))
    return "\n\n".join(parts)


def sql_input(tree: Path, target: int = 150_000, seed: int = 20240601) -> str:
    """sqlparse's own tests/files/*.sql (the utf-8 ones), then generated statements
    (random.Random(seed)) until `target` bytes."""
    rng = random.Random(seed)
    parts: List[str] = []
    for p in sorted((tree / "tests" / "files").glob("*.sql")):
        try:
            parts.append(p.read_text(encoding="utf-8").strip().rstrip(";") + ";")
        except UnicodeDecodeError:
            continue
    tables = ["orders", "customers", "items", "invoices", "payments", "shipments",
              "products", "suppliers", "regions", "employees"]
    cols = ["id", "name", "amount", "created_at", "status", "region_id", "price",
            "quantity", "customer_id", "total", "updated_at", "code", "note"]

    def col(alias=None):
        c = rng.choice(cols)
        return f"{alias}.{c}" if alias else c

    def cond(a, b):
        ops = ["=", "<>", "<", ">=", "LIKE", "IN", "BETWEEN", "IS NOT NULL"]
        op = rng.choice(ops)
        if op == "LIKE":
            return f"{col(a)} LIKE '%{rng.choice(cols)}%'"
        if op == "IN":
            return f"{col(a)} IN ({', '.join(str(rng.randint(1, 999)) for _ in range(rng.randint(2, 6)))})"
        if op == "BETWEEN":
            lo = rng.randint(1, 500)
            return f"{col(a)} BETWEEN {lo} AND {lo + rng.randint(1, 500)}"
        if op == "IS NOT NULL":
            return f"{col(b)} IS NOT NULL"
        return f"{col(a)} {op} {col(b)}"

    def select():
        t1, t2 = rng.sample(tables, 2)
        fields = [col("a") for _ in range(rng.randint(2, 6))]
        if rng.random() < 0.5:
            fields.append(f"CASE WHEN {cond('a', 'b')} THEN {rng.randint(0, 9)} "
                          f"ELSE {col('b')} END AS flag")
        if rng.random() < 0.4:
            fields.append(f"count(*) AS n, sum({col('b')}) AS s")
        s = (f"select {', '.join(fields)} from {t1} a "
             f"{rng.choice(['join', 'left join', 'inner join'])} {t2} b on a.id = b.{col()} "
             f"where {cond('a', 'b')} and ({cond('a', 'b')} or {cond('b', 'a')})")
        if rng.random() < 0.3:
            s += f" and a.id in (select id from {rng.choice(tables)} where {cond(None, None)})"
        if rng.random() < 0.4:
            s += f" group by {col('a')} having count(*) > {rng.randint(1, 20)}"
        s += f" order by {col('a')} {rng.choice(['asc', 'desc'])} limit {rng.randint(1, 100)}"
        return s + ";"

    def insert():
        t = rng.choice(tables)
        cs = rng.sample(cols, rng.randint(2, 6))
        rows = ", ".join("(" + ", ".join(
            str(rng.randint(0, 9999)) if rng.random() < 0.6 else f"'{rng.choice(cols)}{rng.randint(0, 99)}'"
            for _ in cs) + ")" for _ in range(rng.randint(1, 4)))
        return f"insert into {t} ({', '.join(cs)}) values {rows};"

    def update():
        t = rng.choice(tables)
        return (f"update {t} set {col()} = {col()} + {rng.randint(1, 9)}, "
                f"{col()} = '{rng.choice(cols)}' where {cond(None, None)};")

    def create():
        t = rng.choice(tables) + str(rng.randint(1, 99))
        kinds = ["integer", "varchar(255)", "numeric(10, 2)", "timestamp", "text", "boolean"]
        body = ",\n  ".join(f"{c} {rng.choice(kinds)}{' not null' if rng.random() < 0.3 else ''}"
                            for c in rng.sample(cols, rng.randint(3, 7)))
        return f"create table {t} (\n  id integer primary key,\n  {body}\n);"

    makers = [select, select, select, insert, update, create]
    size = sum(len(p) + 1 for p in parts)
    while size < target:
        stmt = rng.choice(makers)()
        if rng.random() < 0.1:
            stmt = f"-- statement {len(parts)}\n" + stmt
        parts.append(stmt)
        size += len(stmt) + 1
    return "\n".join(parts) + "\n"


# --deselect-threads: more-itertools' three tests where 10 threads share one lock
CONTENTION_TESTS = ["tests/test_more.py::TestSerialize::test_concurrent_calls",
                    "tests/test_more.py::TestSynchronized::test_concurrent_calls",
                    "tests/test_more.py::TestConcurrentTee::test_concurrent_consumers"]


def programs(pins: Dict[str, tuple], deselect: bool = False) -> List[dict]:
    """name, source tree, argv after `-m`, files to write into the tree, output file."""
    progs = []
    v, tree = pins["docutils"]
    progs.append(dict(name="docutils", version=v, tree=tree,
                      input="docs/user/rst/quickstart.rst",
                      argv=["docutils", "--writer=html5", "docs/user/rst/quickstart.rst",
                            "{out}"], out_file=True))
    v, tree = pins["pygments"]
    progs.append(dict(name="pygments", version=v, tree=tree,
                      input="pygments/lexers/templates.py",
                      argv=["pygments", "-l", "python", "-f", "html", "-O", "full",
                            "-o", "{out}", "pygments/lexers/templates.py"], out_file=True))
    v, tree = pins["markdown"]
    progs.append(dict(name="markdown", version=v, tree=tree,
                      input="bench_input.md", make_input=markdown_input,
                      argv=["markdown", "-x", "extra", "-x", "toc", "-f", "{out}",
                            "bench_input.md"], out_file=True))
    v, tree = pins["sqlparse"]
    progs.append(dict(name="sqlparse", version=v, tree=tree,
                      input="bench_input.sql", make_input=sql_input,
                      argv=["sqlparse", "-r", "-k", "upper", "-o", "{out}",
                            "bench_input.sql"], out_file=True))
    v, tree = pins["more-itertools"]
    progs.append(dict(name="more-itertools tests", version=v, tree=tree,
                      input="tests/ (pytest)",
                      argv=["pytest", "-q", "-p", "no:cacheprovider", "--rootdir=.", "tests/"]
                      + ([a for t in CONTENTION_TESTS for a in ("--deselect", t)]
                         if deselect else []),
                      out_file=False))
    return progs


# ---------------------------------------------------------------------------------
# running

def run_child(cmd: List[str], cwd: Path, timeout: float, env: dict) -> dict:
    """Run cmd in its own session; wall time, exit status, peak RSS (KiB), stderr tail."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=out, stderr=err,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        timed_out = threading.Event()

        def kill():
            timed_out.set()
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if timed_out.is_set():
            try:  # anything the killed child left behind
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        err.seek(0)
        tail = err.read()[-4000:].decode("utf-8", "replace")
        out.seek(0)
        stdout_tail = out.read()[-2000:].decode("utf-8", "replace")
    return dict(wall=wall, rc=p.returncode, maxrss_kib=ru.ru_maxrss,
                timeout=timed_out.is_set(), stderr_tail=tail, stdout_tail=stdout_tail)


def command(mode: str, py: str, argv: List[str], out_path: Path) -> List[str]:
    if mode == "plain":
        return [py, "-m"] + argv
    if mode == "cprofile":
        return [py, "-m", "cProfile", "-o", str(out_path), "-m"] + argv
    if mode == "no-capture":
        return [py, "-m", "retracer", "trace", "--no-capture", "-q", "-o", str(out_path),
                "-m"] + argv
    if mode == "trace":
        return [py, "-m", "retracer", "trace", "-q", "-o", str(out_path), "-m"] + argv
    raise ValueError(mode)


def top_functions(mode: str, path: Path, py: str, env: dict, cwd: Path) -> dict:
    """#1 function by own time: your code (profile --sort own --json) and overall."""
    info: dict = {}
    if mode == "cprofile":
        import pstats
        try:
            st = pstats.Stats(str(path))
            rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])
            info["top_all"] = [f"{name} ({os.path.relpath(fn, cwd) if fn.startswith(str(cwd)) else fn}:{ln})"
                               if ln else name for (fn, ln, name), _ in rows[:3]]
            mine = [(k, v) for k, v in rows if str(cwd) in k[0]]
            info["top_mine"] = [f"{name} ({os.path.relpath(fn, cwd)}:{ln})"
                                for (fn, ln, name), _ in mine[:3]]
        except Exception as exc:  # noqa: BLE001 - report, never stop the run
            info["error"] = f"pstats: {exc!r}"
        return info
    p = subprocess.run([py, "-m", "retracer", "profile", str(path), "--sort", "own",
                        "--json", "--top", "3", "--trust"], capture_output=True, text=True,
                       env=env, cwd=str(cwd), timeout=900)
    if p.returncode == 0:
        try:
            js = json.loads(p.stdout)
            info["top_mine"] = [f"{r['name']} ({os.path.relpath(r['file'], cwd)}:{r['line']})"
                                for r in js["functions"][:3]]
            info["top_mine_own_ns"] = [r["own_ns"] for r in js["functions"][:3]]
            info["calls_total"] = js.get("calls_total")
        except (ValueError, KeyError, TypeError) as exc:
            info["error"] = f"profile --json: {exc!r}"
    else:
        info["error"] = "profile: " + (p.stderr.strip().splitlines() or ["?"])[-1]
    try:
        from retracer.tracefile import TraceReader
        with TraceReader(path, trust=True) as r:
            stats = sorted(r.func_stats(), key=lambda s: -s.own_ns)
            names = []
            for s in stats[:3]:
                f = r.functions.get(s.fid)
                names.append(f"{f.qualname or f.name}" if f else f"fid {s.fid}")
            info["top_all"] = names
            meta = r.meta
            info["stream_calls"] = meta.get("stream_calls")
            counts = r.captured_counts()
            info["captured"] = sum(sum(c.values()) for c in counts.values())
            info["captured_ok"] = sum(c.get("ok", 0) for c in counts.values())
    except Exception as exc:  # noqa: BLE001
        info["reader_error"] = repr(exc)
    return info


def fmt_bytes(n: Optional[float]) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per run (600)")
    ap.add_argument("--programs", default="", help="comma-separated subset (default all)")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", default=None, help="scratch directory (default: a new "
                    "one under /tmp, removed at the end)")
    ap.add_argument("--deselect-threads", action="store_true",
                    help="leave out more-itertools' three tests where 10 threads share a lock")
    ap.add_argument("--replay", action="store_true",
                    help="also replay the first default trace of each program on the unchanged tree")
    ap.add_argument("--replay-timeout", type=float, default=3600.0, help="seconds per replay (3600)")
    ap.add_argument("--no-json", action="store_true")
    ap.add_argument("--from-json", metavar="FILE", help="print the tables of a saved run")
    args = ap.parse_args(argv)
    if args.from_json:
        doc = json.loads(Path(args.from_json).read_text())
        progs, runs = doc["programs"], doc["runs"]
        modes = [m for m in MODES if any(r["mode"] == m for r in runs)]
        print_tables(progs, modes, summarise(progs, modes, runs), runs)
        print_replays(doc.get("replays") or [])
        loads = [r["loadavg"][0] for r in runs if r.get("loadavg")]
        if loads:
            print(f"\nload average (1 min) during the runs: min {min(loads):.1f}, median "
                  f"{statistics.median(loads):.1f}, max {max(loads):.1f}")
        return 0

    pins = read_pins()
    progs = programs(pins, args.deselect_threads)
    if args.programs:
        want = [w.strip() for w in args.programs.split(",")]
        progs = [p for p in progs if any(p["name"].startswith(w) for w in want)]
    modes = [m for m in args.modes.split(",") if m]
    if "plain" not in modes:
        modes.insert(0, "plain")
    rng = random.Random(args.seed)
    # the traces are signed with this directory's key: this process reads them too
    os.environ.setdefault("RETRACER_CONFIG_DIR", str(CACHE.parent / "config"))
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)

    scratch = Path(args.workdir or tempfile.mkdtemp(prefix="rt-real-", dir="/tmp"))
    scratch.mkdir(parents=True, exist_ok=True)
    print(f"# retracer on real programs  ({time.strftime('%Y-%m-%d %H:%M')}, "
          f"python {platform.python_version()}, load {os.getloadavg()})", flush=True)
    print(f"scratch: {scratch}", flush=True)
    trees = {}
    for prog in progs:
        dst = scratch / prog["tree"].name
        if not dst.exists():
            shutil.copytree(prog["tree"], dst)
        if prog.get("make_input"):
            (dst / prog["input"]).write_text(prog["make_input"](dst), encoding="utf-8")
        trees[prog["name"]] = dst
        size = (dst / prog["input"]).stat().st_size if (dst / prog["input"]).is_file() else None
        prog["input_bytes"] = size
        # the package must be imported from its tree, not from the venv
        pkg = prog["argv"][0]
        if pkg != "pytest":
            q = subprocess.run([args.python, "-c", f"import {pkg}; print({pkg}.__file__)"],
                               cwd=str(dst), capture_output=True, text=True)
            where = q.stdout.strip()
            if not where.startswith(str(dst)):
                print(f"warning: {pkg} imports from {where!r}, not its tree", flush=True)

    runs: List[dict] = []
    replays: List[dict] = []
    skip = set()  # (program, mode) that timed out
    plain_digest: Dict[str, str] = {}
    t_start = time.time()
    try:
        for rnd in range(args.rounds):
            for prog in progs:
                order = modes[:]
                rng.shuffle(order)
                for mode in order:
                    name = prog["name"]
                    if (name, mode) in skip:
                        continue
                    tree = trees[name]
                    out_doc = scratch / f"out-{name.split()[0]}-{mode}.html"
                    prof = scratch / f"prof-{name.split()[0]}-{mode}.{'prof' if mode == 'cprofile' else 'trace'}"
                    for f in (out_doc, prof):
                        if f.exists():
                            f.unlink()
                    pargv = [a.replace("{out}", str(out_doc)) for a in prog["argv"]]
                    cmd = command(mode, args.python, pargv, prof)
                    usage_before = shutil.disk_usage("/tmp").free
                    r = run_child(cmd, tree, args.timeout, env)
                    rec = dict(round=rnd, program=name, mode=mode, cmd=cmd,
                               loadavg=os.getloadavg(), **r)
                    # the default trace writes a replay test into the tree's tests/: it
                    # would become part of the next pytest run of that tree; remove it
                    written = [str(f.relative_to(tree)) for f in tree.rglob("*__replay_test_*")]
                    for f in tree.rglob("*__replay_test_*"):
                        f.unlink()
                    for f in scratch.glob("*__replay_test_*"):
                        f.unlink()
                    if written:
                        rec["replay_tests_written"] = written
                    if prog["out_file"] and out_doc.exists():
                        digest = hashlib.sha256(out_doc.read_bytes()).hexdigest()
                        if mode == "plain":
                            plain_digest.setdefault(name, digest)
                        rec["output_same"] = (digest == plain_digest.get(name)
                                              if name in plain_digest else None)
                        rec["output_bytes"] = out_doc.stat().st_size
                    if prof.exists():
                        rec["profile_bytes"] = prof.stat().st_size
                        if r["rc"] == 0 and not r["timeout"] and mode != "plain" and rnd == 0:
                            rec.update(top_functions(mode, prof, args.python, env, tree))
                        if (args.replay and mode == "trace" and r["rc"] == 0 and not r["timeout"]
                                and not any(x["program"] == name for x in replays)):
                            replays.append(replay_unchanged(name, prof, tree, args, env))
                    ok = r["rc"] == 0 and not r["timeout"] and rec.get("output_same", True) is not False
                    rec["ok"] = ok
                    if r["timeout"]:
                        skip.add((name, mode))
                    status = ("timeout" if r["timeout"] else
                              "ok" if ok else f"FAIL rc={r['rc']}")
                    print(f"[round {rnd + 1}] {name:22s} {mode:10s} {r['wall']:8.2f} s  "
                          f"rss {r['maxrss_kib'] / 1024:7.0f} MB  "
                          f"size {fmt_bytes(rec.get('profile_bytes'))}  {status}  "
                          f"(/tmp free {usage_before / 2**30:.0f} GB)", flush=True)
                    if not ok:
                        last = [l for l in r["stderr_tail"].splitlines() if l.strip()]
                        rec["last_stderr"] = last[-1] if last else ""
                        print(f"    stderr: {rec['last_stderr'][:300]}", flush=True)
                    runs.append(rec)
                    for f in (out_doc, prof):  # traces can be GBs: never keep them
                        if f.exists():
                            f.unlink()
    except KeyboardInterrupt:
        print("interrupted: summarising the runs done so far", flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(scratch, ignore_errors=True)

    summary = summarise(progs, modes, runs)
    print_tables(progs, modes, summary, runs)
    print_replays(replays)
    loads = [r["loadavg"][0] for r in runs if r.get("loadavg")]
    if loads:
        print(f"\nload average (1 min) during the runs: min {min(loads):.1f}, median "
              f"{statistics.median(loads):.1f}, max {max(loads):.1f} "
              f"(this machine has {os.cpu_count()} cores)")
    doc = dict(kind="real_programs", started=t_start, elapsed_s=time.time() - t_start,
               python=platform.python_version(), machine=platform.platform(),
               loadavg_end=os.getloadavg(), rounds=args.rounds, timeout=args.timeout,
               programs=[{k: (str(v) if isinstance(v, Path) else v) for k, v in p.items()
                          if k != "make_input"} for p in progs],
               runs=runs, summary=summary, replays=replays)
    if not args.no_json:
        RESULTS_DIR.mkdir(exist_ok=True)
        out = RESULTS_DIR / f"real-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(doc, indent=1, default=str))
        print(f"\nJSON: {out}")
    return 0


def replay_unchanged(name: str, trace: Path, tree: Path, args, env: dict) -> dict:
    """`retracer replay --json TRACE` in the unchanged tree: the verdicts, the false
    alarms (mismatch, error) by function with a sample message, the time."""
    cmd = [args.python, "-m", "retracer", "replay", "--json", str(trace)]
    r = run_child_output(cmd, tree, args.replay_timeout, env)
    rec = dict(program=name, cmd=cmd, rc=r["rc"], wall=r["wall"], timeout=r["timeout"],
               loadavg=os.getloadavg(), printed_bytes=len(r["stdout"]))
    try:
        doc = json.loads(r["stdout"])
    except ValueError:
        doc = None
        last = [l for l in r["stderr"].splitlines() if l.strip()]
        rec["error"] = last[-1][:300] if last else f"no report (rc={r['rc']})"
    if doc is not None:
        rec["calls"] = doc.get("calls")
        rec["counts"] = doc.get("counts")
        rec["functions"] = len(doc.get("functions") or [])
        alarms: Dict[str, dict] = {}
        reasons: Dict[str, int] = {}
        for fn in doc.get("functions") or []:
            for res in fn.get("results") or []:
                if res["verdict"] in ("mismatch", "error"):
                    a = alarms.setdefault(f"{fn['function']} ({os.path.basename(fn['file'])}:{fn['line']})",
                                          dict(n=0, verdict=res["verdict"], sample=res.get("message", "")[:300]))
                    a["n"] += 1
                else:
                    key = f"{res['verdict']}: {res.get('reason', '')}"
                    reasons[key] = reasons.get(key, 0) + 1
        rec["false_alarms"] = alarms
        rec["other_reasons"] = dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:12])
    c = rec.get("counts") or {}
    print(f"    replay of the unchanged tree: rc={r['rc']} in {r['wall']:.0f} s: "
          + (f"{rec['calls']} calls {c}" if doc is not None else rec["error"]), flush=True)
    for k, a in list((rec.get("false_alarms") or {}).items())[:8]:
        print(f"      {a['verdict']}: {a['n']} x {k}: {a['sample'][:200]}", flush=True)
    return rec


def run_child_output(cmd: List[str], cwd: Path, timeout: float, env: dict) -> dict:
    """Run cmd in its own session; its whole stdout and stderr, exit status, wall time."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    timed_out = False
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
    return dict(rc=p.returncode, wall=time.perf_counter() - t0, timeout=timed_out,
                stdout=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"))


def print_replays(replays: List[dict]) -> None:
    if not replays:
        return
    print("\n## Replay of the default trace on the unchanged tree (`retracer replay --json`)\n")
    print("| program | calls | match | mismatch | error | unstable | side effect | environment | skipped "
          "| exit | time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in replays:
        c = r.get("counts")
        if c is None:
            print(f"| {r['program']} | no report: {r.get('error', '')} |" + " |" * 9)
            continue
        print(f"| {r['program']} | {r['calls']} | {c.get('match', 0)} | {c.get('mismatch', 0)} | "
              f"{c.get('error', 0)} | {c.get('unstable', 0)} | {c.get('side_effect', 0)} | "
              f"{c.get('environment', 0)} | {c.get('skipped', 0)} | {r['rc']} | {r['wall']:.0f} s |")
    for r in replays:
        for k, a in (r.get("false_alarms") or {}).items():
            print(f"- {r['program']}: {a['n']} x {a['verdict']} {k}: {a['sample'][:200]}")


def summarise(progs, modes, runs) -> dict:
    s: dict = {}
    for prog in progs:
        name = prog["name"]
        row = s.setdefault(name, {})
        for mode in modes:
            rs = [r for r in runs if r["program"] == name and r["mode"] == mode]
            good = [r for r in rs if r["ok"]]
            cell = dict(n=len(good), tried=len(rs))
            if good:
                cell["median_s"] = statistics.median(r["wall"] for r in good)
                cell["min_s"] = min(r["wall"] for r in good)
                cell["rss_mb"] = statistics.median(r["maxrss_kib"] for r in good) / 1024
                sizes = [r["profile_bytes"] for r in good if r.get("profile_bytes")]
                cell["size_bytes"] = statistics.median(sizes) if sizes else None
            if any(r["timeout"] for r in rs):
                cell["status"] = "timeout"
                cell["timeout_s"] = max(r["wall"] for r in rs if r["timeout"])
                cell["rss_mb_at_timeout"] = max(r["maxrss_kib"] for r in rs if r["timeout"]) / 1024
            elif rs and not good:
                cell["status"] = "error"
                cell["error"] = rs[0].get("last_stderr", "")
            first = next((r for r in rs if r.get("top_mine") or r.get("top_all")), None)
            if first:
                for k in ("top_mine", "top_all", "stream_calls", "captured", "captured_ok"):
                    if k in first:
                        cell[k] = first[k]
            row[mode] = cell
        base = row.get("plain", {}).get("median_s")
        plain_by_round = {r["round"]: r["wall"] for r in runs
                          if r["program"] == name and r["mode"] == "plain" and r["ok"]}
        for mode in modes:
            c = row[mode]
            if base and c.get("median_s"):
                c["ratio"] = c["median_s"] / base
            # the same, paired by round (each run against plain Python of its round):
            # less sensitive to load that changes between rounds
            paired = [r["wall"] / plain_by_round[r["round"]] for r in runs
                      if r["program"] == name and r["mode"] == mode and r["ok"]
                      and r["round"] in plain_by_round]
            if paired:
                c["ratio_paired"] = statistics.median(paired)
            loads = [r["loadavg"][0] for r in runs if r["program"] == name
                     and r["mode"] == mode and r.get("loadavg")]
            if loads:
                c["load1_median"] = statistics.median(loads)
    return s


def print_tables(progs, modes, s, runs) -> None:
    def cell_time(c):
        if c.get("status") == "timeout":
            return f"timeout (>{c['timeout_s']:.0f} s)"
        if c.get("status") == "error":
            return "error"
        if "median_s" not in c:
            return "-"
        n = f", n={c['n']}" if c["n"] != max(1, c["tried"]) or c["n"] < 3 else ""
        return f"{c['median_s']:.2f} s{n}"

    def cell_ratio(c):
        if c.get("status") == "timeout":
            return "timeout"
        if c.get("status") == "error":
            return "error"
        if "ratio" not in c:
            return "-"
        pr = f"; paired {c['ratio_paired']:.1f}x" if "ratio_paired" in c else ""
        return f"{c['ratio']:.1f}x{pr}"

    print("\n## Wall time, median (ratio to plain: median/median; paired: median over rounds of "
          "run/plain run of the same round)\n")
    print("| program | input | " + " | ".join(modes) + " |")
    print("|---|---|" + "---|" * len(modes))
    for prog in progs:
        row = s[prog["name"]]
        inp = prog["input"] + (f" ({prog['input_bytes'] / 1000:.0f} KB)" if prog.get("input_bytes") else "")
        cells = []
        for m in modes:
            c = row[m]
            cells.append(cell_time(c) if m == "plain" else f"{cell_time(c)} ({cell_ratio(c)})")
        print(f"| {prog['name']} {prog['version']} | {inp} | " + " | ".join(cells) + " |")

    print("\n## Output size and peak RSS (median)\n")
    print("| program | " + " | ".join(f"{m} size | {m} RSS" for m in modes) + " |")
    print("|---|" + "---|---|" * len(modes))
    for prog in progs:
        row = s[prog["name"]]
        cells = []
        for m in modes:
            c = row[m]
            size = fmt_bytes(c.get("size_bytes")) if m != "plain" else "-"
            if c.get("status") == "timeout":
                cells.append(f"timeout | >{c['rss_mb_at_timeout']:.0f} MB")
            else:
                cells.append(f"{size} | " + (f"{c['rss_mb']:.0f} MB" if "rss_mb" in c else "-"))
        print(f"| {prog['name']} | " + " | ".join(cells) + " |")

    print("\n## #1 function by own time (your code; overall in brackets)\n")
    tmodes = [m for m in modes if m != "plain"]
    print("| program | " + " | ".join(tmodes) + " | same #1 (no-capture vs trace) |")
    print("|---|" + "---|" * (len(tmodes) + 1))
    for prog in progs:
        row = s[prog["name"]]
        cells = []
        for m in tmodes:
            c = row[m]
            mine = (c.get("top_mine") or ["-"])[0]
            alln = (c.get("top_all") or ["-"])[0]
            cells.append(f"{mine} [{alln}]")
        a = (row.get("no-capture", {}).get("top_mine") or [None])[0]
        b = (row.get("trace", {}).get("top_mine") or [None])[0]
        same = "-" if a is None or b is None else ("yes" if a == b else "no")
        print(f"| {prog['name']} | " + " | ".join(cells) + f" | {same} |")

    bad = [r for r in runs if not r["ok"]]
    if bad:
        print("\n## Failures\n")
        for r in bad:
            what = "timeout" if r["timeout"] else f"rc={r['rc']}"
            if r.get("output_same") is False:
                what += ", output differs from plain"
            print(f"- {r['program']} / {r['mode']} (round {r['round'] + 1}): {what}: "
                  f"{r.get('last_stderr', '')[:300]}")


if __name__ == "__main__":
    sys.exit(main())
