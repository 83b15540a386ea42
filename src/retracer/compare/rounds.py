"""The rounds of a comparison: calibrated, interleaved, adaptive, under a time budget.

1. **Calibration**: one untimed run per side chooses the work per round
   (``loops``) so one round lasts at least ``round_time``; both sides then use the
   larger count, so a round of either side does the same work (unless the
   counts differ by more than 4x: then each side keeps its own, the numbers being
   per loop). It is also the first warm-up.
2. **Warm-up**: ``warmup`` more rounds per side, discarded (file caches, .pyc
   files written in the fresh worktrees).
3. **Rounds**, in blocks ``A B B A`` then ``B A A B`` (A = base, B = head), until
   each side has ``min_rounds``. Drift of the machine during a block moves both
   sides alike, and a pair (the i-th round of each side) ran back to back.
4. **Traced rounds** (when per-function numbers come from tracing):
   ``trace_rounds`` per side, in the same interleaved order, the same work on
   both sides (one run of a command; the smaller loop count of each benchmark).
5. **More rounds**, block by block, while the 95% interval of the speedup is wider
   than ``min_effect`` (not *narrow*), the verdict is not *clear* (interval wholly
   beyond the min-effect band and p < 0.001), fewer than ``max_rounds`` ran and a
   block still fits in the time budget.

Every round is a new process. A round that would outlast the budget is killed.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional

from ..analysis import stats
from ..errors import RetracerError
from .bench import RoundTimeout, Sample, TracedRun
from .sides import Side

__all__ = ["RoundsOptions", "RoundsResult", "run_rounds", "interleaved"]


@dataclass
class RoundsOptions:
    min_rounds: int = 10
    max_rounds: int = 100
    warmup: int = 1
    trace_rounds: int = 8
    round_time: float = 0.1
    min_effect: float = 0.02
    #: an extra stopping rule for stage 5 (optimize's gate): given the comparison so far,
    #: a reason to stop ('decided') or None
    decided: Optional[Callable[[Any], Optional[str]]] = None


@dataclass
class RoundsResult:
    samples: Dict[str, List[Sample]] = field(default_factory=lambda: {"base": [], "head": []})
    order: List[str] = field(default_factory=list)
    traced: Dict[str, List[TracedRun]] = field(default_factory=lambda: {"base": [], "head": []})
    loops: Any = None
    warmup_rounds: int = 0
    stopped_by: str = ""           # narrow | clear | max-rounds | timeout
    traced_skipped: str = ""       # why there are no traced rounds, if there are none
    seconds: float = 0.0
    round_seconds: float = 0.0     # mean wall time of one untimed-phase round

    def totals(self, side: str) -> List[float]:
        return [s.total for s in self.samples[side]]


def interleaved(start_block: int = 0) -> Iterator[str]:
    """base, head, head, base, head, base, base, head, ... (ABBA, BAAB, ...)."""
    k = start_block
    while True:
        yield from (("base", "head", "head", "base") if k % 2 == 0 else ("head", "base", "base", "head"))
        k += 1


def run_rounds(bench: Any, sides: Dict[str, Side], opts: RoundsOptions, deadline: Optional[float],
               scratch: str, progress: Callable[[str], None], per_function_traced: bool = True) -> RoundsResult:
    res = RoundsResult()
    t_start = time.monotonic()
    spent: List[float] = []

    def left() -> Optional[float]:
        return None if deadline is None else deadline - time.monotonic()

    def timed_round(name: str) -> Sample:
        t0 = time.monotonic()
        s = bench.round(sides[name], res.loops[name], deadline, scratch)
        spent.append(time.monotonic() - t0)
        return s

    def status(phase: str) -> str:
        nb, nh = len(res.samples["base"]), len(res.samples["head"])
        rem = left()
        tail = f", {rem:.0f} s left" if rem is not None else ""
        return f"{phase}: base {nb}, head {nh} rounds{tail}"

    # 1. calibration
    cal = {}
    for name in ("base", "head"):
        progress(f"calibrating on {name}")
        try:
            cal[name] = bench.calibrate(sides[name], opts.round_time, left(), scratch)
        except RoundTimeout:
            raise RetracerError(f"retracer: compare timed out (--timeout) while calibrating the benchmark on "
                                f"{name.upper()} {sides[name].label}: one run takes longer than the time left; "
                                f"raise --timeout") from None
    res.loops = bench.combine(cal["base"], cal["head"])
    order = interleaved()
    try:
        # 2. warm-up
        for i in range(2 * opts.warmup):
            name = next(order)
            progress(f"warm-up round {i + 1}/{2 * opts.warmup} ({name})")
            timed_round(name)
            res.warmup_rounds += 1
        order = interleaved()
        # 3. the first rounds
        while min(len(res.samples["base"]), len(res.samples["head"])) < opts.min_rounds:
            name = next(order)
            progress(status("rounds"))
            res.samples[name].append(timed_round(name))
            res.order.append(name)
    except RoundTimeout:
        res.stopped_by = "timeout"
        if min(len(res.samples["base"]), len(res.samples["head"])) < 2:
            raise RetracerError(f"retracer: compare timed out (--timeout) after "
                                f"{len(res.samples['base'])} base and {len(res.samples['head'])} head rounds; "
                                f"too few to compare; raise --timeout or give a shorter benchmark") from None
    res.round_seconds = sum(spent) / len(spent) if spent else 0.0

    # 4. traced rounds
    if res.stopped_by != "timeout" and per_function_traced and opts.trace_rounds > 0:
        if not all(bench.traceable(sides[n]) for n in ("base", "head")):
            res.traced_skipped = ("the benchmark command is not a Python program retracer can trace "
                                  "(give 'python script.py', '-m module' or a Python console script)")
        else:
            torder = interleaved()
            tloops = bench.traced_loops(res.loops)
            counts = {"base": 0, "head": 0}
            tdir = os.path.join(scratch, "traces")
            os.makedirs(tdir, exist_ok=True)
            try:
                while min(counts.values()) < opts.trace_rounds:
                    name = next(torder)
                    progress(f"traced rounds: base {counts['base']}, head {counts['head']} of {opts.trace_rounds}")
                    path = os.path.join(tdir, f"{name}-{counts[name]}.trace")
                    run = bench.traced(sides[name], tloops, path, deadline, scratch)
                    if run is None:
                        res.traced_skipped = "the benchmark cannot be traced"
                        break
                    res.traced[name].append(run)
                    counts[name] += 1
            except RoundTimeout:
                res.stopped_by = "timeout"
                n = min(counts.values())
                res.traced = {k: v[:n] for k, v in res.traced.items()}
                if n < 2:
                    res.traced_skipped = "the time budget (--timeout) ran out during the traced rounds"

    # 5. more rounds until the interval is narrow or the verdict clear
    if res.stopped_by != "timeout":
        res.stopped_by = "max-rounds"
        block_start = len(res.order) // 4
        while True:
            nb, nh = len(res.samples["base"]), len(res.samples["head"])
            if min(nb, nh) >= opts.max_rounds:
                break
            comp = stats.compare_samples(res.totals("base"), res.totals("head"), opts.min_effect, resamples=500)
            if comp.clear:
                res.stopped_by = "clear"
                break
            if opts.decided is not None:
                why = opts.decided(comp)
                if why:
                    res.stopped_by = why
                    break
            if comp.narrow:
                res.stopped_by = "narrow"
                break
            mean = sum(spent[-20:]) / len(spent[-20:]) if spent else 0.0
            rem = left()
            if rem is not None and rem < 4 * mean * 1.2 + 1.0:
                res.stopped_by = "timeout"
                break
            try:
                for name in next_block(block_start):
                    progress(status("more rounds (the interval is still wide)"))
                    res.samples[name].append(timed_round(name))
                    res.order.append(name)
            except RoundTimeout:
                res.stopped_by = "timeout"
                n = min(len(res.samples["base"]), len(res.samples["head"]))
                res.samples = {k: v[:n] for k, v in res.samples.items()}
                break
            block_start += 1
    n = min(len(res.samples["base"]), len(res.samples["head"]))
    res.samples = {k: v[:n] for k, v in res.samples.items()}  # pairs only
    res.seconds = time.monotonic() - t_start
    return res


def next_block(k: int) -> List[str]:
    return ["base", "head", "head", "base"] if k % 2 == 0 else ["head", "base", "base", "head"]
