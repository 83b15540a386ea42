"""One round of ``retracer compare --trace T``, in its own process:
``python -m retracer.compare.replaybench CONFIG.json``.

The recorded calls of the changed functions are called again on this side's code
(its worktree or its installed build first on ``sys.path``) with the recorded
arguments, unpickled afresh for every call and outside the timed part; a
function's number is the time to make all of its recorded calls once (``loops``
passes, then divided by ``loops``). Generators are run to their end; an exception
the call raises is part of its behaviour and is not an error here.

The replay machinery is used through :func:`_recorded_calls` only (the replayer
will move to a child process of its own; then only that function changes).
"""
from __future__ import annotations

import inspect
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List

_clock = time.perf_counter


def _remap(path: str, old_root: str, new_root: str) -> str:
    old = old_root.rstrip(os.sep) + os.sep
    if path and os.path.realpath(path).startswith(old):
        return os.path.join(new_root, os.path.realpath(path)[len(old):])
    return path


def _recorded_calls(trace: str, targets: List[Dict[str, Any]], side: str, old_root: str,
                    new_root: str) -> Dict[str, List[Callable[[], Callable[[], Any]]]]:
    """key -> one "prepare" per recorded call: it unpickles the arguments and
    returns the call, ready to run (timed by the caller)."""
    from ..replay.replayer import Replayer, _call

    r = Replayer(trace, trust=True, call_timeout=0)
    # this side's sys.path, then the traced run's own entries under the project
    # moved to this side's worktree; not the traced run's sys.path as it was
    r._paths_done = True
    for p in r.meta.get("sys_path") or []:
        q = _remap(p, old_root, new_root)
        if q != p and os.path.isdir(q) and q not in sys.path:
            sys.path.append(q)
    wanted = {(t["module"], t["trace_qualname"]): t for t in targets}
    out: Dict[str, List[Callable[[], Callable[[], Any]]]] = {}
    for case in r.cases:
        t = wanted.get((case.module, case.qualname))
        if t is None or case.status != "ok":
            continue
        case.qualname = t["qualname"][side]
        case.filename = _remap(case.filename, old_root, new_root)
        fn, _ = r._prepare(case)
        argspec = case.info.get("argspec")

        def prepare(case=case, fn=fn, argspec=argspec) -> Callable[[], Any]:
            args = r._args(case)
            return lambda: _call(fn, args, argspec)
        out.setdefault(t["key"], []).append(prepare)
    return out


def _run_once(call: Callable[[], Any]) -> float:
    t0 = _clock()
    try:
        res = call()
        if inspect.isgenerator(res):
            for _ in res:
                pass
        elif inspect.iscoroutine(res):
            import asyncio
            asyncio.run(res)
    except Exception:
        pass
    return _clock() - t0


def _pass(prepares: List[Callable[[], Callable[[], Any]]], loops: int) -> float:
    spent = 0.0
    for _ in range(loops):
        for prep in prepares:
            spent += _run_once(prep())
    return spent


def _enough(per_loop: float, target: float) -> int:
    """The first of 1, 2, 5, 10, ... loops lasting ``target`` at the fastest time seen."""
    n = 1
    while True:
        for f in (1, 2, 5):
            if n * f * per_loop >= target or n * f >= 10 ** 6:
                return n * f
        n *= 10


def main(argv: List[str]) -> int:
    with open(argv[0]) as f:
        cfg = json.load(f)
    for p in reversed(cfg.get("paths") or []):
        if p not in sys.path:
            sys.path.insert(0, p)
    old_root, new_root = cfg["remap"]
    side = cfg["side"]
    calls = _recorded_calls(cfg["trace"], cfg["targets"], side, old_root, new_root)
    mode, target = cfg["mode"], float(cfg.get("target") or 0.05)
    results: Dict[str, Dict[str, float]] = {}
    for key, prepares in calls.items():
        if mode == "calibrate":
            _pass(prepares, 1)
            n, best = 1, float("inf")
            done = False
            while not done:
                for fct in (1, 2, 5):
                    loops = n * fct
                    dt = _pass(prepares, loops)
                    best = min(best, dt / loops)
                    if dt >= target or loops >= 10 ** 6:
                        results[key] = {"seconds": dt, "loops": _enough(best, target)}
                        done = True
                        break
                n *= 10
        else:
            loops = max(1, int(cfg["loops"].get(key, 1)))
            _pass(prepares, 1)
            results[key] = {"seconds": _pass(prepares, loops), "loops": loops}
    with open(cfg["out"], "w") as f:
        json.dump({"functions": results}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
