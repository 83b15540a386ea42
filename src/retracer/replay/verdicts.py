"""Replaying a trace's captured calls to verdicts: the loop behind
``retracer replay`` (and later ``optimize``), as library code.

Every call gets one verdict:

``match``
    its two replays agree with each other and with the recording (within the
    float tolerance, or exactly with ``--exact``).
``mismatch``
    its two replays agree with each other but not with the recording -- and,
    when the code changed since the trace and the trace kept the original
    sources, the original code run now still gives the recorded result (or
    gives something else than your code): your change differs. A failure.
``unstable``
    its two replays differ from each other (both values are shown), or they
    agree but the call reads the clock, unseeded random numbers, the system's
    randomness or the process id, so the recording could not be reproduced.
    Shown, not a failure.
``side_effect``
    the call tried to change the world (write a file outside the scratch
    directory, delete or rename one, connect or send on a socket, start a
    process...) and was stopped before it did: "side effect: not replayed",
    with what it tried. Not a failure (``--allow-side-effects`` lets it happen).
``environment``
    "environment changed since the trace": the two replays agree, the recording
    is not reproduced, and the original code itself no longer reproduces it --
    the code is unchanged since the trace, or the original (as stored in the
    trace) run now gives what your code gives. The call depends on more than
    its arguments (time zone, locale, environment variables, files, state the
    traced program had built). Not a failure.
``error``
    the call could not be judged: it ran past the time limit, it killed its
    process (a crash, ``os._exit``), or its recorded values could not be loaded.
    A failure.
``skipped``
    not replayed, with the reason: a value could not be recorded (unpicklable,
    over the size cap, a secret-looking argument), the function cannot be found
    again (nested functions, a script without a ``__main__`` guard), async
    generators, calls still running when tracing stopped; or its result cannot
    be compared at all (an object with no ``__eq__``, no state, no reduction).

:func:`select` picks the cases, :func:`replay_all` replays them and returns a
:class:`Report`: counts, per function, the results that are not matches.
"""
from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import RetracerError
from .replayer import Case, Replayer, Result

VERDICTS = ("match", "mismatch", "unstable", "side_effect", "environment", "error", "skipped")
#: verdicts that make ``retracer replay`` exit 1 (and a replay test fail)
FAILING = ("mismatch", "error")
#: how each verdict is written in reports
WORDS = {"match": "match", "mismatch": "mismatch", "unstable": "unstable", "side_effect": "side effect",
         "environment": "environment", "error": "error", "skipped": "skipped"}


@dataclass
class FunctionReport:
    """What replaying the calls of one function found."""

    qualname: str
    filename: str
    lineno: int
    counts: Dict[str, int] = field(default_factory=lambda: {v: 0 for v in VERDICTS})
    results: List[Result] = field(default_factory=list)     # every result that is not a match
    reasons: Dict[Tuple[str, str], int] = field(default_factory=dict)  # (verdict, reason) -> calls

    @property
    def where(self) -> str:
        return f"{os.path.basename(self.filename)}:{self.lineno}"

    @property
    def calls(self) -> int:
        return sum(self.counts.values())


@dataclass
class Report:
    """What replaying a set of calls found."""

    cases: List[Case]
    counts: Dict[str, int] = field(default_factory=lambda: {v: 0 for v in VERDICTS})
    failures: List[Result] = field(default_factory=list)         # mismatch and error results, in order
    skipped_reasons: Dict[str, int] = field(default_factory=dict)  # short reason -> calls
    by_function: Dict[Tuple[str, str, int], FunctionReport] = field(default_factory=dict)
    results: List[Result] = field(default_factory=list)

    @property
    def functions(self) -> int:
        return len({c.fid for c in self.cases})

    @property
    def ok(self) -> bool:
        return not any(self.counts[v] for v in FAILING)

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1

    def add(self, res: Result) -> None:
        self.results.append(res)
        v = res.verdict if res.verdict in self.counts else "error"
        self.counts[v] += 1
        c = res.case
        key = (c.qualname, c.filename, c.lineno)
        fr = self.by_function.get(key)
        if fr is None:
            fr = self.by_function[key] = FunctionReport(c.qualname, c.filename, c.lineno)
        fr.counts[v] += 1
        if v != "match":
            fr.results.append(res)
            r = (v, res.reason or res.message.split("\n")[0][:120])
            fr.reasons[r] = fr.reasons.get(r, 0) + 1
        if v in FAILING:
            self.failures.append(res)
        elif v == "skipped":
            why = res.reason or res.message.split(" (")[0]
            self.skipped_reasons[why] = self.skipped_reasons.get(why, 0) + 1


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


def replay_all(session, cases: Sequence[Case],
               on_result: Optional[Callable[[int, int, Result], None]] = None) -> Report:
    """Replay every case (twice, isolated: :class:`.session.ReplaySession`) and
    judge it. ``on_result(i, n, result)`` is called after each call (progress)."""
    report = Report(list(cases))
    for i, c in enumerate(cases):
        res = session.check(c)
        report.add(res)
        if on_result is not None:
            on_result(i + 1, len(cases), res)
    return report


def bench_all(session, report: Report) -> Dict[tuple, list]:
    """(qualname, where) -> [(min, median, repeats) per recorded call] for the
    calls that matched: each function timed on its recorded inputs (in the
    replay child, side effects still guarded)."""
    by_fn: Dict[tuple, list] = collections.OrderedDict()
    for res in report.results:
        if res.verdict != "match":
            continue
        r = session.bench(res.case)
        if r is not None:
            by_fn.setdefault((res.case.qualname, res.case.where), []).append(r)
    return by_fn
