#!/usr/bin/env python3
"""The capture-power check: does `retracer replay` catch the bugs the tests catch?

    bash benchmarks/setup_real.sh                                  # once
    benchmarks/.venv-real/bin/python benchmarks/mutants.py [--packages toolz,sqlparse]
        [--mutants 60] [--seed 1]

For each package (a pure-Python PyPI sdist with a good test suite, unpacked by
setup_real.sh):

1. copy its source tree to a scratch directory under /tmp; run its test suite there
   once plain (it must pass: that is the baseline);
2. trace the suite once: `python -m retracer trace -q -o T -m pytest
   ...` (the package's code is the scope: the tree is the current directory);
3. list the functions of the package (not its tests) with captured calls of status "ok"
   (TraceReader.captured_counts(), TraceReader.functions), not nested (replay cannot
   re-find those);
4. replay the whole trace on the unchanged tree: every mismatch there is a false alarm
   (or genuine nondeterminism), listed by function;
5. generate mutants with `ast` inside those functions, one mutation each: `+`<->`-`
   (also `+=`/`-=`), `<`<->`<=`, `>`<->`>=`, `==`<->`!=`, `is`<->`is not`, `in`<->`not in`,
   `and`<->`or`, `not x`->`x`, int constant n->n+1, `True`<->`False`, an `if` body ->
   `pass`. Each is a byte-exact edit of the original source (same line numbers); a
   mutant that does not compile, or whose AST equals the original's, is dropped;
6. sample --mutants of them (random.Random(seed)) and for each: write it, (a) run the
   package's tests (-x, timeout), (b) `retracer replay T --functions QUALNAME` (exit 1 =
   caught; only a failure of a call of the mutated function that did not already fail
   on the unchanged tree counts), restore the file.

Reports per package: mutants, killed by tests, killed by replay, killed by replay among
those killed by tests, replay false alarms on the unchanged tree, and why replay missed
(the mutated function's captured calls never reach the mutated line is measured with a
line-coverage run of the replay, see --why). JSON to benchmarks/results/mutants-*.json.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache" / "real"
RESULTS_DIR = HERE / "results"

# package -> how its suite runs from its tree. `src`: the package's own code (relative
# directory); `exclude`: parts of it that are tests; `tests`: pytest arguments.
PACKAGES = {
    "toolz": dict(src="toolz", exclude=("toolz/tests", "toolz/sandbox/tests"),
                  tests=["toolz/"]),
    "sqlparse": dict(src="sqlparse", exclude=(), tests=["tests/"]),
    "more-itertools": dict(src="more_itertools", exclude=(), tests=["tests/"]),
}
PYTEST_OPTS = ["-q", "-x", "-p", "no:cacheprovider", "--rootdir=."]


# ---------------------------------------------------------------------------------
# processes

def run(cmd: List[str], cwd: Path, timeout: float, env: dict) -> dict:
    """Run cmd in its own session (killed as a group on timeout)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=out, stderr=subprocess.STDOUT,
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
            p.wait()
        finally:
            timer.cancel()
        if timed_out.is_set():
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return dict(rc=p.returncode, wall=time.perf_counter() - t0, timeout=timed_out.is_set(),
                out=text)


def last_line(text: str) -> str:
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1][:300] if lines else ""


# ---------------------------------------------------------------------------------
# mutants

class Source:
    """A file's bytes with (lineno, col_offset) -> byte offset (col offsets are UTF-8)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.starts = [0]
        for i, b in enumerate(data):
            if b == 10:
                self.starts.append(i + 1)

    def off(self, lineno: int, col: int) -> int:
        return self.starts[lineno - 1] + col

    def span(self, node) -> Tuple[int, int]:
        return (self.off(node.lineno, node.col_offset),
                self.off(node.end_lineno, node.end_col_offset))


def _between(src: Source, a, b) -> Tuple[int, int]:
    return src.off(a.end_lineno, a.end_col_offset), src.off(b.lineno, b.col_offset)


_CMP_SWAP = {ast.Lt: (rb"<(?!=)", b"<="), ast.LtE: (rb"<=", b"<"),
             ast.Gt: (rb">(?!=)", b">="), ast.GtE: (rb">=", b">"),
             ast.Eq: (rb"==", b"!="), ast.NotEq: (rb"!=", b"=="),
             ast.Is: (rb"\bis\b(?!\s+not\b)", b"is not"), ast.IsNot: (rb"\bis\s+not\b", b"is"),
             ast.In: (rb"(?<!not )\bin\b", b"not in"), ast.NotIn: (rb"\bnot\s+in\b", b"in")}
_BIN_SWAP = {ast.Add: (rb"\+", b"-"), ast.Sub: (rb"-", b"+")}
_AUG_SWAP = {ast.Add: (rb"\+=", b"-="), ast.Sub: (rb"-=", b"+=")}


def _strip_comments(seg: bytes) -> bytes:
    return re.sub(rb"#[^\n]*", lambda m: b" " * len(m.group()), seg)


def _edit_between(src: Source, lo: int, hi: int, pat: bytes, rep: bytes):
    seg = _strip_comments(src.data[lo:hi])
    ms = list(re.finditer(pat, seg))
    if len(ms) != 1:
        return None
    m = ms[0]
    return (lo + m.start(), lo + m.end(), rep)


def _docstring_nodes(fn) -> set:
    ids = set()
    for node in ast.walk(fn):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                ids.add(id(body[0].value))
    return ids


def mutations_in(fn, src: Source) -> List[Tuple[str, int, Tuple[int, int, bytes]]]:
    """(description, line, (start, end, replacement)) for every mutation inside fn."""
    out = []
    docs = _docstring_nodes(fn)
    # the body only: not the decorators, not the defaults of the signature
    nodes = [n for stmt in fn.body for n in ast.walk(stmt)]
    for node in nodes:
        line = getattr(node, "lineno", fn.lineno)
        if isinstance(node, ast.Compare):
            prev = node.left
            for op, right in zip(node.ops, node.comparators):
                swap = _CMP_SWAP.get(type(op))
                if swap:
                    lo, hi = _between(src, prev, right)
                    e = _edit_between(src, lo, hi, swap[0], swap[1])
                    if e:
                        out.append((f"{type(op).__name__} -> {swap[1].decode()}", line, e))
                prev = right
        elif isinstance(node, ast.BinOp) and type(node.op) in _BIN_SWAP:
            pat, rep = _BIN_SWAP[type(node.op)]
            lo, hi = _between(src, node.left, node.right)
            e = _edit_between(src, lo, hi, pat, rep)
            if e:
                out.append((f"{type(node.op).__name__} -> {rep.decode()}", line, e))
        elif isinstance(node, ast.AugAssign) and type(node.op) in _AUG_SWAP:
            pat, rep = _AUG_SWAP[type(node.op)]
            lo, hi = _between(src, node.target, node.value)
            e = _edit_between(src, lo, hi, pat, rep)
            if e:
                out.append((f"Aug{type(node.op).__name__} -> {rep.decode()}", line, e))
        elif isinstance(node, ast.BoolOp):
            word, other = (b"and", b"or") if isinstance(node.op, ast.And) else (b"or", b"and")
            for a, b in zip(node.values, node.values[1:]):
                lo, hi = _between(src, a, b)
                e = _edit_between(src, lo, hi, rb"\b" + word + rb"\b", other)
                if e:
                    out.append((f"{word.decode()} -> {other.decode()}", line, e))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            lo, hi = src.span(node)
            olo, ohi = src.span(node.operand)
            out.append(("not x -> x", line, (lo, hi, b"(" + src.data[olo:ohi] + b")")))
        elif isinstance(node, ast.Constant) and id(node) not in docs:
            v = node.value
            lo, hi = src.span(node)
            if v is True or v is False:
                out.append((f"{v} -> {not v}", line, (lo, hi, str(not v).encode())))
            elif type(v) is int:
                out.append((f"{v} -> {v + 1}", line, (lo, hi, f"({v + 1})".encode())))
        elif isinstance(node, ast.If):
            body = node.body
            if len(body) == 1 and isinstance(body[0], ast.Pass):
                continue
            lo = src.off(body[0].lineno, body[0].col_offset)
            hi = src.off(body[-1].end_lineno, body[-1].end_col_offset)
            # keep the line count: the body's lines become blank
            n_lines = src.data[lo:hi].count(b"\n")
            out.append(("if body -> pass", line, (lo, hi, b"pass" + b"\n" * n_lines)))
    return out


def find_function(tree: ast.Module, qualname: str, firstlineno: int):
    """The (Async)FunctionDef of qualname whose def or first decorator is at firstlineno."""
    parts = qualname.split(".")

    def walk(body, path):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                p = path + [node.name]
                lines = {node.lineno} | {d.lineno for d in node.decorator_list}
                if p == parts and firstlineno in lines:
                    return node
            elif isinstance(node, ast.ClassDef):
                r = walk(node.body, path + [node.name])
                if r is not None:
                    return r
            elif isinstance(node, (ast.If, ast.Try)):  # functions defined conditionally
                for sub in ([node.body, node.orelse] + ([h.body for h in node.handlers]
                                                        if isinstance(node, ast.Try) else [])
                            + ([node.finalbody] if isinstance(node, ast.Try) else [])):
                    r = walk(sub, path)
                    if r is not None:
                        return r
        return None

    return walk(tree.body, [])


# ---------------------------------------------------------------------------------
# replay output

def parse_replay(text: str) -> dict:
    """What `retracer replay --json` printed: the counts and every result that is not a
    match (call id, function, verdict, reason, message); None counts when it printed none."""
    try:
        start = text.index("{")
        doc = json.loads(text[start:text.rindex("}") + 1])
    except ValueError:
        return dict(fails=[], others=[], counts=None)
    results = []
    for fn in doc.get("functions", []):
        for r in fn.get("results", []):
            results.append(dict(verdict=r["verdict"], qualname=fn["function"], index=r["call"],
                                where=f"{os.path.basename(fn['file'])}:{fn['line']}", call_id=r["call_id"],
                                reason=r.get("reason", ""), message=r.get("message", "")))
    counts = dict(doc.get("counts") or {})
    counts["calls"] = doc.get("calls")
    fails = [r for r in results if r["verdict"] in ("mismatch", "error")]
    others = [r for r in results if r["verdict"] not in ("mismatch", "error")]
    return dict(fails=fails, others=others, counts=counts)


# ---------------------------------------------------------------------------------

def check_package(name: str, cfg: dict, tree0: Path, args, env: dict, scratch: Path) -> dict:
    res: dict = dict(package=name, tree=tree0.name)
    py = args.python
    tree = scratch / tree0.name
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(tree0, tree, ignore=shutil.ignore_patterns("__pycache__"))
    tests = cfg["tests"]
    print(f"\n## {name} ({tree0.name})", flush=True)

    base = run([py, "-m", "pytest"] + PYTEST_OPTS + tests, tree, args.suite_timeout, env)
    res["baseline"] = dict(rc=base["rc"], wall=base["wall"], last=last_line(base["out"]))
    print(f"baseline tests: rc={base['rc']} in {base['wall']:.1f} s: {last_line(base['out'])}",
          flush=True)
    if base["rc"] != 0:
        res["error"] = "the test suite does not pass on the unchanged tree"
        return res
    test_timeout = max(30.0, 5 * base["wall"] + 10)

    trace = scratch / f"{name}.trace"
    # without -x: a test that fails only under tracing (a timing assertion) must not cut
    # the traced suite short
    # --tests-root outside the tree: the generated replay test must not join the suite
    # that judges the mutants
    tr = run([py, "-m", "retracer", "trace", "-q", "-o", str(trace)] + args.trace_opts + [
              "--tests-root", str(scratch / f"replay-tests-{name}"), "-m", "pytest"] + [o for o in PYTEST_OPTS if o != "-x"] + tests, tree,
             args.trace_timeout, env)
    failed_tests = re.findall(r"^FAILED (\S+)", tr["out"], re.M)
    stray = list(tree.rglob("*__replay_test_*"))
    for f in stray:
        f.unlink()
    if stray:
        print(f"    removed {len(stray)} replay test(s) written into the tree", flush=True)
    res["trace"] = dict(rc=tr["rc"], wall=tr["wall"], timeout=tr["timeout"],
                        last=last_line(tr["out"]),
                        bytes=trace.stat().st_size if trace.exists() else None,
                        failed_tests=failed_tests)
    print(f"trace: rc={tr['rc']} in {tr['wall']:.1f} s{' (timeout)' if tr['timeout'] else ''}, "
          f"{(trace.stat().st_size / 2**20) if trace.exists() else 0:.1f} MB: "
          f"{last_line(tr['out'])}", flush=True)
    for t in failed_tests:
        print(f"    fails under tracing: {t}", flush=True)
    warn = sorted({l.strip()[:200] for l in tr["out"].splitlines()
                   if "SystemError" in l or "Warning" in l})[:10]
    if warn:
        res["trace"]["warnings"] = warn
        for w in warn:
            print(f"    trace output: {w}", flush=True)
    if not trace.exists():
        res["error"] = "no trace written"
        return res

    # functions of the package with replayable captured calls
    from retracer.tracefile import TraceReader
    src_root = (tree / cfg["src"]).resolve()
    excl = [str((tree / e).resolve()) for e in cfg["exclude"]]
    targets = []
    pkg_fids = set()
    qual_count: Counter = Counter()
    with TraceReader(trace, trust=True) as r:
        counts = r.captured_counts()
        all_status: Counter = Counter()
        for fid, c in counts.items():
            f = r.functions.get(fid)
            if f is None or not f.filename:
                continue
            fn = os.path.realpath(f.filename)
            if not fn.startswith(str(src_root) + os.sep) or any(fn.startswith(e + os.sep) for e in excl):
                continue
            pkg_fids.add(fid)
            for k, v in c.items():
                all_status[k] += v
            q = f.qualname or f.name
            qual_count[q] += 1
            if c.get("ok", 0) and "<locals>" not in q and "<" not in q:
                targets.append(dict(fid=fid, qualname=q, name=f.name, file=fn,
                                    line=f.firstlineno, ok=c.get("ok", 0),
                                    captured=sum(c.values())))
        call_fid = {}
        ok_ids_of: Dict[int, set] = {}
        for row in r._rows("SELECT call_id, fid, status FROM captured_calls"):
            call_fid[row[0]] = row[1]
            if row[2] == "ok":
                ok_ids_of.setdefault(row[1], set()).add(row[0])
        res["trace"]["stream_calls"] = r.meta.get("stream_calls")
    res["captured_status"] = dict(all_status)
    res["functions_with_ok_calls"] = len(targets)
    print(f"package functions with captured calls: {len(targets)} with status ok; "
          f"captured calls by status: {dict(all_status)}", flush=True)

    # false alarms: replay everything on the unchanged tree
    rp = run([py, "-m", "retracer", "replay", "--json", str(trace)] + args.replay_opts, tree,
             args.replay_timeout * 4, env)
    pr = parse_replay(rp["out"])
    if pr["counts"] is None:
        res["error"] = f"replay of the unchanged tree printed no report (rc={rp['rc']}: {last_line(rp['out'])})"
        print(res["error"], flush=True)
        return res
    base_fail_ids = {f["call_id"] for f in pr["fails"]}
    by_fn = Counter(f"{f['qualname']} ({f['where']}) {f['verdict']}" for f in pr["fails"])
    pkg_fails = [f for f in pr["fails"] if call_fid.get(f["call_id"]) in pkg_fids]
    pkg_fail_fns = {call_fid[f["call_id"]] for f in pkg_fails}
    pkg_others = [f for f in pr["others"] if call_fid.get(f["call_id"]) in pkg_fids]
    other_counts = Counter(f["verdict"] for f in pkg_others)
    other_reasons = Counter(f"{f['verdict']}: {f['reason']}" for f in pkg_others)
    other_by_fn = Counter(f"{f['qualname']} ({f['where']}) {f['verdict']}" for f in pkg_others
                          if f["verdict"] in ("environment", "unstable"))
    res["unchanged_replay"] = dict(rc=rp["rc"], wall=rp["wall"], timeout=rp["timeout"],
                                   counts=pr["counts"], failing_calls=len(base_fail_ids),
                                   package_failing_calls=len(pkg_fails),
                                   package_failing_functions=len(pkg_fail_fns),
                                   package_ok_calls=sum(len(ok_ids_of.get(f, ())) for f in pkg_fids),
                                   package_other_verdicts=dict(other_counts),
                                   package_other_reasons=dict(other_reasons.most_common(30)),
                                   package_environment_unstable_by_function=dict(other_by_fn.most_common(40)),
                                   by_function=dict(by_fn.most_common()),
                                   last=last_line(rp["out"]))
    print(f"replay of the unchanged tree: rc={rp['rc']} in {rp['wall']:.1f} s: {pr['counts']}", flush=True)
    print(f"    in the package's functions: {len(pkg_fails)} mismatch/error calls in "
          f"{len(pkg_fail_fns)} functions (of {res['unchanged_replay']['package_ok_calls']} "
          f"ok calls); other verdicts there: {dict(other_counts)}", flush=True)
    for k, v in by_fn.most_common(12):
        print(f"    false alarm: {v} x {k}", flush=True)
    for k, v in other_reasons.most_common(12):
        print(f"    not a failure: {v} x {k}", flush=True)
    for k, v in other_by_fn.most_common(12):
        print(f"    not a failure: {v} x {k}", flush=True)
    samples = [f"{f['verdict'].upper()} {f['qualname']} call #{f['index']} ({f['where']}): "
               f"{f['message'][:600]}" for f in pkg_fails[:8]]
    samples += [f"{f['verdict'].upper()} {f['qualname']} call #{f['index']} ({f['where']}): "
                f"{f['message'][:600]}" for f in pkg_others if f["verdict"] in ("environment", "unstable")][:12]
    res["unchanged_replay"]["samples"] = samples

    # mutants
    candidates = []
    parsed: Dict[str, Tuple[bytes, ast.Module, Source]] = {}
    for t in targets:
        if t["file"] not in parsed:
            data = Path(t["file"]).read_bytes()
            parsed[t["file"]] = (data, ast.parse(data), Source(data))
        data, mod, src = parsed[t["file"]]
        node = find_function(mod, t["qualname"], t["line"])
        if node is None:
            continue
        for desc, line, (lo, hi, rep) in mutations_in(node, src):
            candidates.append((t, desc, line, lo, hi, rep))
    rng = random.Random(f"{args.seed}-{name}")
    rng.shuffle(candidates)
    original_dump = {f: ast.dump(m) for f, (_, m, _) in parsed.items()}
    mutants = []
    for t, desc, line, lo, hi, rep in candidates:
        if len(mutants) >= args.mutants:
            break
        data = parsed[t["file"]][0]
        new = data[:lo] + rep + data[hi:]
        try:
            m2 = ast.parse(new)
            compile(new, t["file"], "exec")
        except (SyntaxError, ValueError):
            continue
        if ast.dump(m2) == original_dump[t["file"]]:
            continue
        mutants.append(dict(fid=t["fid"], qualname=t["qualname"], file=t["file"],
                            line=line, mutation=desc, lo=lo, hi=hi, rep=rep,
                            ambiguous=qual_count[t["qualname"]] > 1))
    res["candidates"] = len(candidates)
    print(f"{len(candidates)} candidate mutations in {len(targets)} functions; "
          f"running {len(mutants)}", flush=True)

    results = []
    t_mut = time.time()
    for i, mu in enumerate(mutants):
        path = Path(mu["file"])
        data = parsed[mu["file"]][0]
        try:
            path.write_bytes(data[:mu["lo"]] + mu["rep"] + data[mu["hi"]:])
            te = run([py, "-m", "pytest"] + PYTEST_OPTS + tests, tree, test_timeout, env)
            rpm = run([py, "-m", "retracer", "replay", "--json", "--functions", mu["qualname"],
                       str(trace)] + args.replay_opts, tree, args.replay_timeout, env)
        finally:
            path.write_bytes(data)
        pr = parse_replay(rpm["out"])
        new_fails = [f for f in pr["fails"] if f["call_id"] not in base_fail_ids
                     and call_fid.get(f["call_id"]) == mu["fid"]]
        killed_tests = te["rc"] != 0
        killed_replay = bool(new_fails) or rpm["timeout"]
        ok_ids = ok_ids_of.get(mu["fid"], set())
        rec = dict(qualname=mu["qualname"], file=os.path.relpath(mu["file"], tree),
                   line=mu["line"], mutation=mu["mutation"], ambiguous=mu["ambiguous"],
                   tests_rc=te["rc"], tests_timeout=te["timeout"], tests_wall=te["wall"],
                   replay_rc=rpm["rc"], replay_timeout=rpm["timeout"], replay_wall=rpm["wall"],
                   replay_counts=pr["counts"], replay_new_fails=len(new_fails),
                   replay_fails=len(pr["fails"]),
                   killed_tests=killed_tests, killed_replay=killed_replay,
                   replay_exit1=rpm["rc"] == 1,
                   fn_ok_calls=len(ok_ids),
                   fn_ok_calls_failing_unchanged=len(ok_ids & base_fail_ids),
                   replay_last=last_line(rpm["out"]) if not pr["counts"] else "",
                   fn_verdicts=dict(Counter(f["verdict"] for f in pr["fails"] + pr["others"]
                                            if call_fid.get(f["call_id"]) == mu["fid"])),
                   fn_reasons=dict(Counter(f"{f['verdict']}: {f['reason']}" for f in pr["others"]
                                           if call_fid.get(f["call_id"]) == mu["fid"])))
        if rpm["rc"] not in (0, 1) and not rpm["timeout"]:
            rec["replay_problem"] = last_line(rpm["out"])
        results.append(rec)
        print(f"[{i + 1}/{len(mutants)}] {rec['file']}:{rec['line']} {mu['qualname']}: "
              f"{mu['mutation']:18s} tests {'KILLED' if killed_tests else 'survived'}"
              f"{' (timeout)' if te['timeout'] else ''} ({te['wall']:.1f} s), replay "
              f"{'KILLED' if killed_replay else 'survived'} rc={rpm['rc']} "
              f"({rpm['wall']:.1f} s) {pr['counts'] and {k: v for k, v in pr['counts'].items() if v and k != 'calls'}}"
              + (f" !! {rec['replay_problem']}" if rec.get("replay_problem") else ""),
              flush=True)
    res["mutants_wall_s"] = time.time() - t_mut
    res["mutants"] = results

    # why replay missed what the tests caught: do the replayed calls reach the line?
    if args.why:
        for rec in results:
            if rec["killed_tests"] and not rec["killed_replay"]:
                rc_ = rec.get("replay_counts") or {}
                fv = rec.get("fn_verdicts") or {}
                if rc_ and rc_.get("skipped") and not (rc_.get("match") or rc_.get("mismatch")
                                                       or rc_.get("error")):
                    rec["why_missed"] = "replay skips every call of the function"
                elif fv and rec["fn_ok_calls"] <= sum(fv.get(k, 0) for k in
                                                       ("unstable", "environment", "side_effect", "skipped")):
                    rec["why_missed"] = f"no call of the function is judged ({dict(rec.get('fn_reasons') or fv)})"
                elif rec["fn_ok_calls"] and rec["fn_ok_calls_failing_unchanged"] == rec["fn_ok_calls"]:
                    rec["why_missed"] = "every captured call already fails on the unchanged tree"
                else:
                    rec["why_missed"] = why_missed(rec, trace, tree, py, env, args)
    res["summary"] = summary_of(results)
    return res


COVER_SNIPPET = r"""
import sys, json
target_file, target_line, trace, qualname = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
hit = False
def tracer(frame, event, arg):
    global hit
    if frame.f_code.co_filename == target_file:
        def local(frame, event, arg):
            global hit
            if event == "line" and frame.f_lineno == target_line:
                hit = True
            return local
        return local
    return None
from retracer.replay.replayer import Replayer
from retracer.replay import verdicts
rep = Replayer(trace, trust=True)
cases = verdicts.select(rep, qualname)
ok = [c for c in cases if c.status == "ok"]
sys.settrace(tracer)
for c in ok:
    try:
        fn, args = rep._prepare(c)
        rep.invoke(c, fn, args, rep.expected(c))
    except BaseException:
        pass
sys.settrace(None)
print(json.dumps({"hit": hit, "ok_calls": len(ok), "calls": len(cases)}))
"""


def why_missed(rec: dict, trace: Path, tree: Path, py: str, env: dict, args) -> str:
    """Whether replaying the function's captured calls executes the mutated line."""
    target = str((tree / rec["file"]).resolve())
    r = run([py, "-c", COVER_SNIPPET, target, str(rec["line"]), str(trace), rec["qualname"]],
            tree, args.replay_timeout, env)
    try:
        js = json.loads(r["out"].strip().splitlines()[-1])
    except (ValueError, IndexError):
        return f"unknown ({last_line(r['out'])})"
    if js["ok_calls"] == 0:
        return "no replayable call"
    if not js["hit"]:
        return "captured calls never reach the mutated line"
    return "the mutated line runs in replay, the outcome is the same"


def summary_of(results: List[dict]) -> dict:
    n = len(results)
    kt = sum(r["killed_tests"] for r in results)
    kr = sum(r["killed_replay"] for r in results)
    both = sum(r["killed_tests"] and r["killed_replay"] for r in results)
    only_replay = sum(r["killed_replay"] and not r["killed_tests"] for r in results)
    why = Counter(r.get("why_missed", "?") for r in results if r["killed_tests"] and not r["killed_replay"])
    problems = Counter(r.get("replay_problem") for r in results if r.get("replay_problem"))
    exit1 = sum(r["replay_exit1"] for r in results)  # the raw exit status, false alarms included
    exit1_both = sum(r["replay_exit1"] and r["killed_tests"] for r in results)
    return dict(mutants=n, killed_by_tests=kt, killed_by_replay=kr,
                replay_exit1=exit1, replay_exit1_among_tests=exit1_both,
                replay_among_tests=both, replay_only=only_replay,
                replay_share_of_tests=(both / kt if kt else None),
                why_missed=dict(why), replay_problems=dict(problems))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packages", default="toolz,sqlparse,more-itertools")
    ap.add_argument("--mutants", type=int, default=60, help="mutants per package (60)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--suite-timeout", type=float, default=300.0)
    ap.add_argument("--trace-timeout", type=float, default=1800.0)
    ap.add_argument("--replay-timeout", type=float, default=300.0)
    ap.add_argument("--no-why", dest="why", action="store_false",
                    help="do not look into why replay missed a mutant")
    ap.add_argument("--replay-opt", dest="replay_opts", action="append", default=[],
                    help="an option passed to every `retracer replay` (repeat it)")
    ap.add_argument("--trace-opt", dest="trace_opts", action="append", default=[],
                    help="an option passed to `retracer trace` (repeat it; e.g. --trace-opt=--capture-share=1)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--no-json", action="store_true")
    args = ap.parse_args(argv)

    pins = CACHE / "pins.txt"
    if not pins.exists():
        sys.exit(f"error: {pins} missing; run: bash {HERE / 'setup_real.sh'}")
    trees = {}
    for line in pins.read_text().splitlines():
        n, v, t = line.split()
        trees[n] = (v, CACHE / t)
    env = dict(os.environ)
    env.setdefault("RETRACER_CONFIG_DIR", str(CACHE.parent / "config"))
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a mutant of the same size must not hit a stale .pyc
    env.setdefault("RETRACER_CALL_TIMEOUT", "10")
    env.pop("PYTHONPATH", None)
    scratch = Path(args.workdir or tempfile.mkdtemp(prefix="rt-mut-", dir="/tmp"))
    scratch.mkdir(parents=True, exist_ok=True)
    print(f"# capture-power check ({time.strftime('%Y-%m-%d %H:%M')}, python "
          f"{platform.python_version()}, load {os.getloadavg()}); scratch {scratch}", flush=True)
    t0 = time.time()
    out = []
    try:
        for name in [p.strip() for p in args.packages.split(",") if p.strip()]:
            if name not in PACKAGES or name not in trees:
                print(f"unknown package {name}", flush=True)
                continue
            r = check_package(name, PACKAGES[name], trees[name][1], args, env, scratch)
            r["version"] = trees[name][0]
            out.append(r)
            for f in scratch.glob("*.trace"):
                f.unlink()
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(scratch, ignore_errors=True)

    print("\n## Capture power: mutants in functions with captured calls\n")
    print("| package | trace | functions with ok calls | mutants | killed by tests | killed by replay "
          "| replay among test-killed | replay only | replay exit 1 (among test-killed) "
          "| false alarms, unchanged tree: all calls | in the package's functions |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in out:
        s = r.get("summary")
        tr = r.get("trace", {})
        tcell = (f"{tr.get('wall', 0):.0f} s, {(tr.get('bytes') or 0) / 2**20:.0f} MB, rc={tr.get('rc')}"
                 if tr else "-")
        ur = r.get("unchanged_replay") or {}
        c = ur.get("counts") or {}
        fa = (f"{c.get('mismatch', '?')} mismatch + {c.get('error', '?')} error of {c.get('calls', '?')} calls"
              if c else (ur.get("last") or "-"))
        ov = ur.get("package_other_verdicts") or {}
        pfa = (f"{ur.get('package_failing_calls')} calls in {ur.get('package_failing_functions')} "
               f"functions (of {ur.get('package_ok_calls')} ok calls); not failures: "
               + ", ".join(f"{n} {v}" for v, n in sorted(ov.items())) if ur else "-")
        if not s:
            print(f"| {r['package']} {r.get('version', '')} | {tcell} | - | - | - | - | - | - | - | "
                  f"{fa} ({r.get('error', '')}) | {pfa} |")
            continue
        share = f"{s['replay_among_tests']}/{s['killed_by_tests']}" + (
            f" ({100 * s['replay_share_of_tests']:.0f}%)" if s["replay_share_of_tests"] is not None else "")
        print(f"| {r['package']} {r['version']} | {tcell} | {r['functions_with_ok_calls']} | "
              f"{s['mutants']} | {s['killed_by_tests']} | {s['killed_by_replay']} | {share} | "
              f"{s['replay_only']} | {s['replay_exit1']} ({s['replay_exit1_among_tests']}) | {fa} | {pfa} |")
    print("\nWhy replay missed mutants the tests caught:")
    for r in out:
        s = r.get("summary")
        if s:
            print(f"- {r['package']}: {s['why_missed'] or 'none missed'}"
                  + (f"; replay problems: {s['replay_problems']}" if s["replay_problems"] else ""))
    doc = dict(kind="mutants", started=t0, elapsed_s=time.time() - t0,
               python=platform.python_version(), loadavg_end=os.getloadavg(),
               seed=args.seed, mutants_per_package=args.mutants, packages=out)
    if not args.no_json:
        RESULTS_DIR.mkdir(exist_ok=True)
        path = RESULTS_DIR / f"mutants-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(doc, indent=1, default=lambda o: o.decode("latin-1")
                                   if isinstance(o, bytes) else str(o)))
        print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
