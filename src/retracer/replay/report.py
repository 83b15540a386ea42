"""What ``retracer replay`` prints: per function, the calls that are not matches
(the first few of each kind, with their diffs), then a table of counts; or one
JSON document (``--json``); and a progress bar on stderr when it is a terminal.

The headline of a call is ``VERDICT qualname call #N (file:line, call id ID)``
(``MISMATCH``, ``ERROR``, ``UNSTABLE``, ``SIDE EFFECT``, ``ENVIRONMENT``,
``SKIPPED``), followed by its explanation indented by four spaces.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, IO, List, Optional

from .replayer import Result
from .verdicts import FAILING, VERDICTS, WORDS, FunctionReport, Report

#: the order function blocks show the kinds of results in
_SHOWN = ("mismatch", "error", "unstable", "environment", "side_effect", "skipped")
_TABLE_ROWS = 40


#: the colour of a verdict's headline on a terminal
_STYLE = {"mismatch": "bold red", "error": "bold red", "unstable": "yellow", "environment": "yellow",
          "side_effect": "yellow", "skipped": "dim"}


def _headline(res: Result, out: Optional[IO[str]] = None) -> str:
    c = res.case
    word = WORDS[res.verdict].upper()
    if out is not None:
        from ..term import paint
        word = paint(word, _STYLE.get(res.verdict, ""), out)
    return f"{word} {c.label} ({c.where}, call id {c.call_id})"


def _counts_text(counts: Dict[str, int]) -> str:
    return ", ".join(f"{counts[v]} {WORDS[v]}" for v in VERDICTS if counts.get(v))


def write_text(report: Report, out: IO[str], max_diffs: int = 3, quiet: bool = False,
               show_output: bool = False) -> None:
    """The human report: function blocks, then the table (not with ``quiet``)."""
    shown_any = False
    for fr in sorted(report.by_function.values(), key=_function_order):
        kinds = [v for v in _SHOWN if fr.counts[v] and (not quiet or v in FAILING)]
        if not kinds:
            continue
        if shown_any:
            print(file=out)
        shown_any = True
        print(f"{fr.qualname} ({fr.where}): {fr.calls} call{'s' if fr.calls != 1 else ''}: "
              f"{_counts_text(fr.counts)}", file=out)
        for v in kinds:
            results = [r for r in fr.results if r.verdict == v]
            if v == "skipped":
                for (kind, why), n in sorted(fr.reasons.items(), key=lambda kv: -kv[1]):
                    if kind == "skipped":
                        print(f"    skipped {n} call{'s' if n != 1 else ''}: {why}", file=out)
                continue
            for res in results[:max_diffs]:
                print(_headline(res, out), file=out)
                for line in (res.message or res.reason).splitlines():
                    print(f"    {line}", file=out)
            rest = len(results) - max_diffs
            if rest > 0:
                reasons = sorted(((why, n) for (kind, why), n in fr.reasons.items() if kind == v),
                                 key=lambda kv: -kv[1])
                why = "; ".join(f"{n} x {w}" for w, n in reasons[:3])
                print(f"    ... and {rest} more {WORDS[v]} result{'s' if rest != 1 else ''} of "
                      f"{fr.qualname} ({why}; --max-diffs N shows more)", file=out)
    if show_output:
        _write_outputs(report, out)
    if quiet:
        return
    if shown_any:
        print(file=out)
    write_table(report, out)


def _function_order(fr: FunctionReport):
    failing = sum(fr.counts[v] for v in FAILING)
    return (-failing, -sum(fr.counts[v] for v in ("unstable", "environment", "side_effect")),
            fr.filename or "", fr.lineno or 0)


#: the count columns' short names, for a narrow terminal
_SHORT = {"match": "ok", "mismatch": "mism", "unstable": "unst", "side effect": "side", "environment": "env",
          "error": "err", "skipped": "skip"}


def write_table(report: Report, out: IO[str]) -> None:
    from ..term import UNLIMITED, fit_name, width as term_width

    cols = [("calls", None)] + [(WORDS[v], v) for v in VERDICTS]
    rows = sorted(report.by_function.values(), key=_function_order)
    hidden = 0
    if len(rows) > _TABLE_ROWS:
        keep = [fr for fr in rows if fr.counts["match"] != fr.calls]
        hidden = len(rows) - len(keep)
        rows = keep
    names = [f"{fr.qualname} ({fr.where})" for fr in rows]
    avail = term_width(out)
    longest = max([len(n) for n in names] + [len("total"), len("replayed function")])
    numbers = sum(1 + max(len(name), 5) for name, _ in cols)
    if avail < UNLIMITED and numbers + longest > avail and avail - numbers < 30:
        cols = [(_SHORT.get(name, name), v) for name, v in cols]  # a narrow terminal: short headers
        numbers = sum(1 + max(len(name), 5) for name, _ in cols)
    limit = 60 if avail >= UNLIMITED else max(16, avail - numbers)
    width = min(limit, longest)
    head = f"{'replayed function':<{width}}" + "".join(f" {name:>{max(len(name), 5)}}" for name, _ in cols)
    print(head, file=out)
    for fr, name in zip(rows, names):
        if len(name) > width:
            name = fit_name(fr.qualname, fr.where, width).replace("  (", " (")
        cells = [fr.calls] + [fr.counts[v] for v in VERDICTS]
        print(f"{name:<{width}}" + "".join(f" {c:>{max(len(n), 5)}}" for c, (n, _) in zip(cells, cols)),
              file=out)
    if hidden:
        print(f"{'(' + str(hidden) + ' more functions: every call matches)':<{width}}", file=out)
    cells = [sum(report.counts.values())] + [report.counts[v] for v in VERDICTS]
    print(f"{'total':<{width}}" + "".join(f" {c:>{max(len(n), 5)}}" for c, (n, _) in zip(cells, cols)),
          file=out)


def _write_outputs(report: Report, out: IO[str]) -> None:
    printed = [r for r in report.results if r.stdout or r.stderr]
    if not printed:
        return
    print(file=out)
    print("What the replayed calls printed (their first replay):", file=out)
    for r in printed:
        print(f"--- {r.case.label} ({r.case.where}, call id {r.case.call_id}): {WORDS[r.verdict]}", file=out)
        for name, text in (("stdout", r.stdout), ("stderr", r.stderr)):
            if text:
                print(f"  {name}:", file=out)
                for line in text.splitlines():
                    print(f"  | {line}", file=out)


def summary_line(report: Report) -> str:
    k = report.counts
    return (f"retracer: replayed {len(report.cases)} calls of {report.functions} functions: "
            f"{k['match']} match, {k['mismatch']} mismatch, {k['error']} error, {k['skipped']} skipped, "
            f"{k['unstable']} unstable, {k['side_effect']} side effect, {k['environment']} environment")


def to_json(report: Report, trace: str, meta: Dict[str, Any], changed: List[str],
            show_output: bool = False, bench: Optional[dict] = None) -> Dict[str, Any]:
    """The ``--json`` document (see README, "Replay report")."""
    functions = []
    for fr in sorted(report.by_function.values(), key=lambda f: (f.filename, f.lineno, f.qualname)):
        results = []
        for r in fr.results:
            item: Dict[str, Any] = {"call_id": r.case.call_id, "call": r.case.index, "verdict": r.verdict,
                                    "reason": r.reason, "message": r.message}
            item.update({k: v for k, v in r.detail.items() if k in ("blocked", "nondet", "changed")})
            if show_output:
                item["stdout"], item["stderr"] = r.stdout, r.stderr
            results.append(item)
        functions.append({"function": fr.qualname, "file": fr.filename, "line": fr.lineno,
                          "calls": fr.calls, "counts": dict(fr.counts), "results": results})
    doc: Dict[str, Any] = {
        "trace": trace, "exit_status": report.exit_status,
        "calls": len(report.cases), "functions_replayed": report.functions,
        "counts": dict(report.counts), "functions": functions,
        "code": {"sources_stored": len(meta.get("sources") or {}), "changed_files": changed,
                 "git": meta.get("git")},
    }
    if show_output:
        doc["outputs"] = [{"call_id": r.case.call_id, "stdout": r.stdout, "stderr": r.stderr}
                          for r in report.results if r.stdout or r.stderr]
    if bench is not None:
        doc["bench"] = bench
    return doc


class Progress:
    """A progress bar on stderr (done/total, percentage, elapsed, ETA and the failing
    counts so far), only when stderr is a terminal (see :mod:`retracer.term`)."""

    def __init__(self, total: int, stream: Optional[IO[str]] = None, what: str = "replaying") -> None:
        from ..term import Bar

        self.total = total
        self.what = what
        self.counts = {v: 0 for v in VERDICTS}
        self._bar = Bar(what, total=total, stream=stream)
        self.on = self._bar.on

    def update(self, done: int, res: Optional[Result] = None) -> None:
        if res is not None:
            self.counts[res.verdict if res.verdict in self.counts else "error"] += 1
        if not self.on:
            return
        bad = ", ".join(f"{self.counts[v]} {WORDS[v]}" for v in ("mismatch", "error", "unstable")
                        if self.counts[v])
        self._bar.update(done, note=f"({bad})" if bad else "")

    def finish(self) -> None:
        self._bar.finish()


def dumps(doc: Dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, default=str)
