"""Replaying a trace's captured calls to verdicts: the loop behind
``retracer replay`` (and later ``optimize``), as library code.

:func:`select` picks the cases, :func:`replay_all` replays them and returns a
:class:`Report` of counts, the calls that differ and why others were skipped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from ..errors import RetracerError
from .replayer import Case, Replayer, Result

VERDICTS = ("match", "mismatch", "skipped", "unstable", "error")


@dataclass
class Report:
    """What replaying a set of calls found."""

    cases: List[Case]
    counts: Dict[str, int] = field(default_factory=lambda: {v: 0 for v in VERDICTS})
    failures: List[Result] = field(default_factory=list)         # mismatch and error results, in order
    skipped_reasons: Dict[str, int] = field(default_factory=dict)  # short reason -> calls

    @property
    def functions(self) -> int:
        return len({c.fid for c in self.cases})

    @property
    def ok(self) -> bool:
        return not (self.counts["mismatch"] or self.counts["error"])


def select(rep: Replayer, functions: Optional[str]) -> List[Case]:
    """The cases of ``rep`` for the functions named in ``functions`` ('a,b', name
    or qualified name), or all; a one-line error when the names match nothing."""
    cases = rep.cases
    if not functions:
        return cases
    want = {w.strip() for w in functions.split(",") if w.strip()}
    chosen = [c for c in cases if c.qualname in want or c.name in want]
    if not chosen and cases:
        known = sorted({c.qualname for c in cases})
        more = ", ..." if len(known) > 8 else ""
        raise RetracerError(f"retracer: no captured calls of {functions} in {rep.trace}; "
                            f"functions with captured calls: {', '.join(known[:8])}{more}")
    return chosen


def replay_all(rep: Replayer, cases: Sequence[Case],
               on_result: Optional[Callable[[int, int, Result], None]] = None) -> Report:
    """Replay every case once and compare it with the recording. ``on_result(i,
    n, result)`` is called after each call (progress, printing)."""
    report = Report(list(cases))
    unstable_why = rep.meta.get("unstable_calls") or {}
    for i, c in enumerate(cases):
        if c.status == "unstable" and str(c.call_id) in unstable_why:
            c.info["unstable"] = unstable_why[str(c.call_id)]
        res = rep.check(c)
        report.counts[res.verdict] += 1
        if res.verdict in ("mismatch", "error"):
            report.failures.append(res)
        elif res.verdict in ("skipped", "unstable"):
            # the reason without its details: "not replayable: a value could not be pickled"
            why = "unstable" if res.verdict == "unstable" else res.message.split(" (")[0]
            report.skipped_reasons[why] = report.skipped_reasons.get(why, 0) + 1
        if on_result is not None:
            on_result(i + 1, len(cases), res)
    return report


def bench_all(rep: Replayer, cases: Sequence[Case]) -> Dict[tuple, list]:
    """(qualname, where) -> [(min, median, repeats) per recorded call] for the
    replayable cases: each function timed on its recorded inputs."""
    by_fn: Dict[tuple, list] = {}
    for c in cases:
        if c.status != "ok":
            continue
        r = rep.bench(c)
        if r is not None:
            by_fn.setdefault((c.qualname, c.where), []).append(r)
    return by_fn
