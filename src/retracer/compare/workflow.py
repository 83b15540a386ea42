"""`retracer compare`, start to end: :func:`run_compare` returns the report
(the structure :mod:`.report` draws and ``--json`` prints).

1. Resolve BASE and HEAD (HEAD omitted: the working tree, uncommitted changes
   included, snapshotted as a commit object no ref points to, :mod:`.git`).
2. Find the changed functions (``git diff`` at line level, mapped through each
   side's own files, :mod:`.changes`), or take ``--functions``.
3. Check both sides out into temporary worktrees under one private directory;
   give each its environment (:mod:`.sides`).
4. Choose the benchmark (``-- COMMAND``, else ``benchmarks-root``, else
   ``--trace``; :mod:`.bench`) and run the rounds (:mod:`.rounds`).
5. Compute the statistics (:mod:`retracer.analysis.stats`) and the per-function
   numbers (:mod:`.functions`).

The worktrees and every temporary file are removed at the end, whatever
happened: an error, Ctrl-C, SIGTERM, a timeout.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import settings
from .._version import VERSION
from ..analysis import stats
from ..errors import RetracerError
from . import functions as fn_stats
from .bench import CommandBench, PytestBench, ReplayBench
from .changes import ChangedFunction, Changes, find_changes, select_functions
from .git import Repo, WorktreeSet
from .rounds import RoundsOptions, run_rounds
from .sides import Side, needs_build, prepare_environment

__all__ = ["CompareOptions", "run_compare", "REPORT_VERSION"]

#: version of the JSON report (later versions only add keys)
REPORT_VERSION = 1

_STOPPED = {
    "narrow": "the 95% interval became narrower than --min-effect",
    "clear": "the verdict was clear (interval beyond --min-effect, p < 0.001)",
    "max-rounds": "--max-rounds reached",
    "timeout": "the time budget (--timeout) ran out",
}


@dataclass
class CompareOptions:
    base: str
    head: Optional[str] = None                 # None: the working tree
    command: List[str] = field(default_factory=list)
    functions: Optional[str] = None
    trace: Optional[str] = None
    trust: bool = False                        # read a --trace file not signed by this user
    timeout: Optional[float] = 300.0
    rounds: int = 10
    max_rounds: int = 100
    trace_rounds: int = 8
    warmup: int = 1
    round_time: float = 0.1
    min_effect: float = 0.02
    install: str = "auto"                      # auto | yes | no
    cwd: str = field(default_factory=os.getcwd)
    progress: Optional[Callable[[str], None]] = None
    tmpdir: Optional[str] = None               # where the private temporary directory goes


class _Terminated(KeyboardInterrupt):
    pass


def _on_sigterm(signum, frame):  # SIGTERM ends compare like Ctrl-C: cleanly
    raise _Terminated()


def run_compare(opts: CompareOptions) -> Dict[str, Any]:
    t0 = time.monotonic()
    deadline = None if not opts.timeout else t0 + opts.timeout
    progress = opts.progress or (lambda s: None)
    load_before = _load()
    repo = Repo(opts.cwd)
    base_commit = repo.resolve(opts.base)
    head_commit = repo.resolve(opts.head) if opts.head is not None else None
    old_term = None
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with WorktreeSet(repo, opts.tmpdir) as wts:
            rep = _run(opts, repo, wts, base_commit, head_commit, deadline, progress)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    rep["machine"] = {"cpus": os.cpu_count(), "load_before": load_before, "load_after": _load(),
                      "python": sys.version.split()[0], "executable": sys.executable}
    cpus = os.cpu_count() or 1
    busy = max(load_before, rep["machine"]["load_after"])
    if busy > cpus:
        rep["warnings"].append(f"the machine was busy (load average {busy:.1f} on {cpus} CPUs): other programs "
                               f"competed for the CPUs, so timings are noisier and the verdict needs larger effects")
    rep["elapsed_s"] = time.monotonic() - t0
    return rep


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def _make_side(repo: Repo, name: str, ref: str, commit: str, label: str) -> Side:
    short = repo.short(commit)
    return Side(name=name, ref=ref, commit=commit, short=short, label=label)


def _run(opts: CompareOptions, repo: Repo, wts: WorktreeSet, base_commit: str, head_commit: Optional[str],
         deadline: Optional[float], progress: Callable[[str], None]) -> Dict[str, Any]:
    scratch = wts.scratch("scratch")
    warnings: List[str] = []
    bshort = repo.short(base_commit)
    base = _make_side(repo, "base", opts.base, base_commit, f"{opts.base} ({bshort})" if opts.base != bshort else bshort)
    working_tree = head_commit is None
    uncommitted = False
    if working_tree:
        progress("copying the working tree")
        head_commit, uncommitted = repo.snapshot_working_tree(scratch)
        hs = repo.short(repo.head_commit() or head_commit)
        label = f"working tree ({hs} + uncommitted changes)" if uncommitted else f"working tree (= {hs})"
        head = _make_side(repo, "head", "", head_commit, label)
    else:
        hshort = repo.short(head_commit)
        head = _make_side(repo, "head", opts.head or "", head_commit,
                          f"{opts.head} ({hshort})" if opts.head != hshort else hshort)

    # the changed functions
    labels = ("BASE", "HEAD")
    changes: Optional[Changes] = None
    if opts.functions:
        changed = select_functions(repo, base.commit, head.commit, opts.functions, opts.cwd, labels)
    else:
        changes = find_changes(repo, base.commit, head.commit, labels)
        changed = changes.functions

    # the worktrees and their environments
    rel_cwd = os.path.relpath(os.path.realpath(opts.cwd), repo.root)
    sides = {"base": base, "head": head}
    for s in (base, head):
        progress(f"checking out {s.name} ({s.label})")
        s.root = wts.add(f"{s.name}-{s.short}", s.commit)
        s.workdir = os.path.normpath(os.path.join(s.root, rel_cwd))
        if not os.path.isdir(s.workdir):
            raise RetracerError(f"retracer: the current directory {rel_cwd} does not exist in {s.name.upper()} "
                                f"{s.label}; run compare from a directory both revisions have")
        s.repo_files = repo.ls_files(s.commit)
    if opts.install == "auto":
        install = needs_build(base.root) or needs_build(head.root)
    else:
        install = opts.install == "yes"
    for s in (base, head):
        if install:
            progress(f"installing {s.name} ({s.label}) into its own environment")
        prepare_environment(s, install, scratch, _left(deadline))

    # what is benchmarked
    bench, bench_warn = _choose_bench(opts, repo, sides, changed)
    warnings += bench_warn
    ropts = RoundsOptions(min_rounds=opts.rounds, max_rounds=max(opts.rounds, opts.max_rounds), warmup=opts.warmup,
                          trace_rounds=opts.trace_rounds, round_time=opts.round_time, min_effect=opts.min_effect)
    # traced rounds also when no function changed: they look for regressions
    res = run_rounds(bench, sides, ropts, deadline, scratch, progress, per_function_traced=bench.kind != "replay")
    progress("")

    # statistics
    comp = stats.compare_samples(res.totals("base"), res.totals("head"), opts.min_effect)
    e2e = comp.to_json()
    e2e["unit"] = "s"
    e2e["min_effect"] = opts.min_effect
    e2e["samples"] = {"base": res.totals("base"), "head": res.totals("head")}
    noise = max(comp.base.cv, comp.head.cv)
    needed = {f"{int(round(100 * eff))}%": stats.rounds_needed(noise, eff) if noise > 0 else 5
              for eff in sorted({opts.min_effect, 0.05, 0.10}) if eff > 0}
    e2e["rounds_needed"] = needed
    n = comp.base.rounds
    if noise >= 0.10:
        warnings.append(f"noise is high: one round varies by {100 * noise:.0f}% (robust CV); detecting a "
                        + ", ".join(f"{k} effect needs ~{v} rounds per side" for k, v in needed.items())
                        + f" (ran {n}); close other programs, or raise --timeout/--max-rounds")
    if not comp.narrow and comp.verdict == "same":
        k = f"{int(round(100 * opts.min_effect))}%"
        warnings.append(f"the 95% interval {_fmt_ci(comp.ci)} is wider than --min-effect {k}: an effect of {k} "
                        f"could not be told from noise here (~{needed.get(k, '?')} rounds per side would be needed, "
                        f"ran {n})")
    if res.stopped_by == "timeout":
        warnings.append(f"stopped by --timeout after {n} rounds per side")
    nt = min(len(res.traced["base"]), len(res.traced["head"]))
    if 0 < nt < 5:
        warnings.append(f"{nt} traced rounds per side: too few for a per-function verdict (the U test needs 5 per "
                        f"side to reach p < 0.01; 7 or more to list regressions among many functions)")

    rep: Dict[str, Any] = {
        "retracer_compare": REPORT_VERSION,
        "retracer_version": VERSION,
        "base": _side_json(base),
        "head": dict(_side_json(head), working_tree=working_tree, uncommitted_changes=uncommitted),
        "benchmark": {"kind": bench.kind, "description": bench.description, "loops": res.loops,
                      "round_time_s": opts.round_time, "unit_of_work": _unit_of_work(bench, res.loops)},
        "environment": ("each side installed into its own directory (pip install --target), first on PYTHONPATH"
                        if install else "each side's worktree first on PYTHONPATH"),
        "rounds": {"timed_per_side": n, "warmup_per_side": opts.warmup, "calibration_runs_per_side": 1,
                   "traced_per_side": min(len(res.traced["base"]), len(res.traced["head"])),
                   "order": "ABBA/BAAB blocks", "stopped_by": res.stopped_by,
                   "stopped_by_text": _STOPPED.get(res.stopped_by, res.stopped_by),
                   "seconds": res.seconds},
        "end_to_end": e2e,
        "settings": {"min_effect": opts.min_effect, "timeout_s": opts.timeout, "rounds": opts.rounds,
                     "max_rounds": opts.max_rounds, "trace_rounds": opts.trace_rounds, "warmup": opts.warmup,
                     "alpha": stats.ALPHA, "confidence": 0.95},
    }

    # parts: the benchmarks of a pytest run, the functions of a replay
    if bench.kind == "pytest" and len(bench.common) >= 1:
        rep["benchmarks"] = _parts(res, bench.common, opts.min_effect)
        for side_name, only in bench.only.items():
            if only:
                warnings.append(f"{len(only)} benchmark(s) only on {side_name.upper()}, not compared: "
                                + ", ".join(only[:3]) + (" ..." if len(only) > 3 else ""))

    # per function
    if bench.kind == "replay":
        rep["functions"] = _replay_rows(bench, res, changed, opts)
        rep["per_function"] = {"source": "replay", "note": "per function: the replayed recorded calls (untraced "
                                                           "rounds; time per call = all recorded calls once)"}
        rep["regressions"] = None
    elif res.traced["base"] and res.traced["head"]:
        progress("reading the traced rounds")
        ib = [fn_stats.ident(c.base) for c in changed if c.base]
        ih = [fn_stats.ident(c.head) for c in changed if c.head]
        tb = fn_stats.read_side(res.traced["base"], base, ib)
        th = fn_stats.read_side(res.traced["head"], head, ih)
        rep["functions"] = fn_stats.function_rows(changed, tb, th, opts.min_effect)
        rep["changed_together"] = fn_stats.together_row(tb, th, opts.min_effect)
        rep["regressions"], rep["regressions_tested"] = fn_stats.regressions(tb, th, changed, opts.min_effect)
        rep["per_function"] = {"source": "traced", "traced_rounds": len(tb.rounds),
                               "note": f"{len(tb.rounds)} traced rounds per side (retracer's engine; times include "
                                       f"its overhead); per call and total are inclusive (callees included), own "
                                       f"excludes callees; speedup and verdict on the inclusive total per round; "
                                       f"share: of the BASE benchmark time"}
        progress("")
    else:
        rep["functions"] = [_untimed_row(c) for c in changed]
        why = res.traced_skipped or ("the time budget (--timeout) ran out before the traced rounds"
                                     if res.stopped_by == "timeout" else "no traced rounds")
        rep["per_function"] = {"source": None, "note": f"no per-function timings: {why}"}
        rep["regressions"] = None
    if not changed:
        warnings.append("no function changed between the two revisions" if not opts.functions
                        else "--functions selected nothing")
    if changes is not None:
        if changes.module_level:
            warnings.append("changed outside any function (module or class level, not attributed to a function): "
                            + ", ".join(changes.module_level[:5]))
        if changes.other_files:
            warnings.append(f"{len(changes.other_files)} changed file(s) that are not Python: "
                            + ", ".join(changes.other_files[:5]) + (" ..." if len(changes.other_files) > 5 else ""))
        for u in changes.unparsable:
            warnings.append(f"cannot parse {u}; its functions are not compared")
        rep["changes"] = {"module_level": changes.module_level, "other_files": changes.other_files,
                          "unparsable": changes.unparsable}
    rep["warnings"] = warnings
    return rep


def _left(deadline: Optional[float]) -> Optional[float]:
    return None if deadline is None else max(1.0, deadline - time.monotonic())


def _fmt_ci(ci: Tuple[float, float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _side_json(s: Side) -> Dict[str, Any]:
    return {"ref": s.ref, "commit": s.commit, "short": s.short, "label": s.label}


def _unit_of_work(bench: Any, loops: Any) -> str:
    if bench.kind == "command":
        n = loops["base"] if loops["base"] == loops["head"] else f"{loops['base']} (base) / {loops['head']} (head)"
        return f"a round: {n} run(s) of the command (wall time per run, start-up included)"
    if bench.kind == "pytest":
        return "a round: one pytest process; its time: one execution of every benchmark (sum)"
    return "a round: one process replaying every recorded call of the changed functions once"


def _choose_bench(opts: CompareOptions, repo: Repo, sides: Dict[str, Side],
                  changed: List[ChangedFunction]) -> Tuple[Any, List[str]]:
    warn: List[str] = []
    if opts.command:
        if opts.trace:
            warn.append("--trace is ignored: a benchmark command was given after --")
        return CommandBench(opts.command), warn
    roots: Dict[str, str] = {}
    shown = ""
    for name, s in sides.items():
        cfg_path = os.path.join(s.root, "pyproject.toml")
        if not os.path.isfile(cfg_path):
            found = settings.find_pyproject(s.workdir)
            cfg_path = found if found and os.path.realpath(found).startswith(s.root + os.sep) else ""
        if not cfg_path:
            continue
        try:
            cfg = settings.load_config(cfg_path)
        except RetracerError as e:
            raise RetracerError(f"{e} (in {name.upper()} {s.label})") from None
        root = cfg.get("benchmarks_root")
        if root:
            roots[name] = root
            shown = os.path.relpath(root, s.root)
    if roots and not opts.trace:
        for name, s in sides.items():
            if name not in roots or not os.path.isdir(roots[name]):
                raise RetracerError(f"retracer: {name.upper()} {s.label} has no benchmarks directory "
                                    f"({shown or 'benchmarks-root'} of [tool.retracer]); compare revisions that both "
                                    f"have it, or give a command after --")
        return PytestBench(roots, shown), warn
    if opts.trace:
        return _replay_bench(opts, repo, changed), warn
    raise RetracerError("retracer: nothing to benchmark: give a command after -- (retracer compare main -- python "
                        "bench.py), set benchmarks-root in [tool.retracer] of pyproject.toml, or replay a trace "
                        "(--trace run.trace)")


def _replay_bench(opts: CompareOptions, repo: Repo, changed: List[ChangedFunction]) -> ReplayBench:
    from ..tracefile import TraceReader

    with TraceReader(opts.trace, trust=opts.trust) as r:
        counts = r.captured_counts()
        funcs = dict(r.functions)
        fstats = {s.fid: s for s in r.func_stats()}
        duration = int(r.meta.get("duration_ns") or 0)
    targets = []
    root = repo.root + os.sep
    for fid, f in funcs.items():
        if f.kind != "py" or not f.filename or not f.qualname:
            continue
        if not counts.get(fid, {}).get("ok"):
            continue
        path = os.path.realpath(f.filename)
        if not path.startswith(root):
            continue
        rel = path[len(root):].replace(os.sep, "/")
        for c in changed:
            if c.base is None or c.head is None:
                continue
            if (c.base.path == rel and c.base.qualname == f.qualname) or \
                    (c.head.path == rel and c.head.qualname == f.qualname):
                st = fstats.get(fid)
                targets.append({"key": c.label, "module": f.module or "", "trace_qualname": f.qualname,
                                "qualname": {"base": c.base.qualname, "head": c.head.qualname},
                                "filename": f.filename, "calls": counts[fid]["ok"],
                                "share": (st.cum_ns / duration) if st and duration else None,
                                "recorded_calls": st.calls if st else None})
                break
    if not targets:
        raise RetracerError(f"retracer: {opts.trace} has no replayable recorded call of a changed function "
                            f"(of {len(changed)} changed); trace a run that calls them, or benchmark a command (-- ...)")
    return ReplayBench(opts.trace, targets, repo.root)


def _parts(res: Any, keys: List[str], min_effect: float) -> List[Dict[str, Any]]:
    out = []
    for k in keys:
        bs = [s.parts.get(k, 0.0) for s in res.samples["base"]]
        hs = [s.parts.get(k, 0.0) for s in res.samples["head"]]
        if not bs or not hs:
            continue
        comp = stats.compare_samples(bs, hs, min_effect)
        out.append({"name": k, "base_median_s": comp.base.median, "head_median_s": comp.head.median,
                    "speedup": comp.speedup, "ci": list(comp.ci), "p": comp.p, "verdict": comp.verdict,
                    "base": comp.base.to_json(), "head": comp.head.to_json()})
    return out


def _replay_rows(bench: ReplayBench, res: Any, changed: List[ChangedFunction],
                 opts: CompareOptions) -> List[Dict[str, Any]]:
    by_key = {t["key"]: t for t in bench.targets}
    rows = []
    for c in changed:
        t = by_key.get(c.label)
        d = c.head or c.base
        row: Dict[str, Any] = {"name": c.label, "qualname": d.qualname if d else c.name, "file": c.path,
                               "line": d.start if d else None, "status": c.status, "kind": d.kind if d else "",
                               "base": None, "head": None, "speedup": None, "ci": None, "p": None,
                               "verdict": "same", "share": None, "note": ""}
        if t is None or c.label not in bench.common:
            row["note"] = ("no replayable recorded call" if c.base and c.head else f"{c.status}: not replayed")
            rows.append(row)
            continue
        n = t["calls"]
        bs = [s.parts[c.label] for s in res.samples["base"]]
        hs = [s.parts[c.label] for s in res.samples["head"]]
        comp = stats.compare_samples(bs, hs, opts.min_effect)
        for side, sm in (("base", comp.base), ("head", comp.head)):
            row[side] = {"called": True, "calls": n, "total_ns": sm.median * 1e9, "per_call_ns": sm.median * 1e9 / n,
                         "own_ns": None, "own_per_call_ns": None, "rounds": sm.rounds}
        row.update(speedup=comp.speedup, ci=list(comp.ci), p=comp.p, verdict=comp.verdict, share=t.get("share"),
                   paired={"speedup": comp.paired_speedup, "ci": list(comp.paired_ci) if comp.paired_ci else None})
        row["note"] = f"{n} recorded calls replayed per round; share: of the recorded run"
        rows.append(row)
    return rows


def _untimed_row(c: ChangedFunction) -> Dict[str, Any]:
    d = c.head or c.base
    return {"name": c.label, "qualname": d.qualname if d else c.name, "file": c.path,
            "line": d.start if d else None, "status": c.status, "kind": d.kind if d else "", "base": None,
            "head": None, "speedup": None, "ci": None, "p": None, "verdict": "same", "share": None, "note": ""}
