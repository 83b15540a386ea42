"""Rank the functions of a trace by the time optimizing them could save.

The ranking reads only the trace file (``func_stats``, ``edge_stats``,
``functions`` and the status of ``captured_calls``) and follows cProfile's
semantics: ``own`` is tottime, ``cumulative`` is cumtime (a recursive call's time
is counted once, by its outermost call), and per-edge figures are those of the
``caller -> callee`` pairs.

**Saving.** The functions you can optimize are those of *your code*: the functions
in the trace's scope (``FLAG_IN_SCOPE``; when no function of the trace is in scope,
every Python function), minus the hidden frames below. Everything else -- builtins,
the standard library, installed packages -- is code you call but do not change, so
its time belongs to whoever calls it::

    saving(f) = own(f) + callees(f)
    callees(f) = sum over the callees g of f that are not your code (g != f) of
                     cum(f -> g) * (1 - mine(g) / cum(g))

``cum(f -> g)`` is the cumulative time of the calls ``f`` made to ``g`` (the
``edge_stats`` row). ``mine(g)`` is the part of ``g``'s cumulative time spent back
in your code (callbacks such as a ``key=`` function handed to ``sorted``): for a
function of your code ``mine(h) = cum(h)``; for any other ``g`` it is the sum over
its callees ``h`` of ``cum(g -> h) * mine(h) / cum(h)``, capped at ``cum(g)``: the
time of a function is split among its callers in proportion to the time each spent
calling it. Recursion is followed once: an edge that closes a cycle of calls is
left out (the time of a recursive call is already inside its outermost call's).

So ``saving(f)`` is the time spent running ``f``'s own code plus the time of the
code-you-cannot-change it calls directly or indirectly, without the time of your
other functions (which are ranked on their own). It is the most that making ``f``
free -- faster code, fewer calls to libraries, caching -- could save. The savings of
different functions do not overlap, so their shares of the total add up to at
most 100%. The total is the sum of the own times of every recorded call, all
threads (the time the trace measured).

**Hidden frames** are never ranked and count as code you cannot change: the test
runner (``pytest``, ``_pytest``, ``pluggy``, ``unittest``), retracer's own frames,
the import machinery (``importlib``, ``<frozen importlib...>``, ``zipimport``) and
``runpy``. ``include_all`` also lists the functions outside your code (with the
same formula, so their savings overlap those of their callers).

**Replayable.** A function with at least one captured call whose status is ``ok``
has recorded inputs and outputs that ``retracer replay`` can call again -- if
replay can find the function again: not a nested function, lambda or module body,
nor code compiled from a string or a notebook cell (file name ``<...>``).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

from ..errors import RetracerError
from ..tracefile import FLAG_IMPORT_MACHINERY, FLAG_IN_SCOPE, Function, TraceReader, stream_cut_clause
from ..units import fmt_ns

__all__ = ["SORT_KEYS", "Ranked", "Ranking", "rank", "render_table", "to_json", "hidden_reason", "refindable",
           "JSON_VERSION", "FORMULA"]

#: the --sort keys, in the order --help shows them; the first is the default
SORT_KEYS = ("saving", "own", "cumulative", "calls", "per-call", "name")
#: older names still accepted
_SORT_ALIASES = {"cum": "cumulative", "percall": "per-call", "per_call": "per-call"}

#: version of the --json structure; bumped only if a key changes meaning or is removed
JSON_VERSION = 1

FORMULA = ("saving = own + time of the code outside your code (builtins, stdlib, libraries) that the "
           "function calls, minus what that code spends back in your code")

_RUNNER_MODULES = ("pytest", "_pytest", "pluggy", "unittest")
# when the trace does not know a file's module: the runners' installed files
_RUNNER_FILE = re.compile(r"/(site|dist)-packages/(_pytest|pluggy|pytest)/|/python3\.\d+/unittest/")
_IMPORT_MODULES = ("importlib", "zipimport", "runpy", "pkgutil")
_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


@dataclass
class Ranked:
    """One function of the ranking; times in nanoseconds."""

    fid: int
    name: str          # qualified name (Class.method), or name
    module: str
    filename: str      # '~' for C functions
    line: int
    kind: str          # 'py' or 'c'
    in_scope: bool     # your code
    calls: int
    prim_calls: int
    own_ns: int
    cum_ns: int
    callees_ns: float  # time of code outside your code attributed to this function
    saving_ns: float   # own_ns + callees_ns
    captured_ok: int = 0     # captured calls that can be replayed (status ok, function re-findable)
    captured_total: int = 0  # captured calls, any status

    @property
    def replayable(self) -> bool:
        return self.captured_ok > 0

    @property
    def saving_per_call_ns(self) -> float:
        return self.saving_ns / max(self.calls, 1)

    @property
    def own_per_call_ns(self) -> float:
        return self.own_ns / max(self.calls, 1)

    @property
    def where(self) -> str:
        return "~" if self.kind == "c" else f"{self.filename}:{self.line}"


@dataclass
class Ranking:
    """The ranked functions of a trace, sorted, with what was left out."""

    functions: List[Ranked]     # every listed function, sorted (not cut to --top)
    total_ns: int               # sum of the own time of every function: the shares' denominator
    sort: str
    hidden: Dict[str, int]      # reason -> number of functions not listed
    scope_fallback: bool        # no function was in scope: every Python function counted as yours
    meta: Dict[str, Any]
    threads: int
    path: str


def _top_module(module: Optional[str]) -> str:
    return (module or "").split(".", 1)[0]


def hidden_reason(fn: Function) -> Optional[str]:
    """Why a function is never ranked: 'test-runner', 'retracer', 'import' (import
    machinery and runpy), or None for a function that is ranked."""
    filename = fn.filename or ""
    top = _top_module(fn.module)
    if top == "retracer" or filename.startswith(_PKG_DIR):
        return "retracer"
    if (fn.flags or 0) & FLAG_IMPORT_MACHINERY or top in _IMPORT_MODULES or \
            filename.startswith(("<frozen importlib", "<frozen zipimport", "<frozen runpy")):
        return "import"
    if top in _RUNNER_MODULES or (not top and _RUNNER_FILE.search(filename)):
        return "test-runner"
    return None


def refindable(fn: Function) -> bool:
    """Whether ``retracer replay`` can find the function again: not a nested
    function, not a lambda or module body, not code compiled from a string or a
    notebook cell (file name ``<...>``)."""
    qualname = fn.qualname or fn.name or ""
    return ("<locals>" not in qualname.split(".") and not (fn.name or "<").startswith("<")
            and not (fn.filename or "<").startswith("<"))


def normalize_sort(sort: str) -> str:
    """The canonical --sort key, or a one-line RetracerError."""
    key = _SORT_ALIASES.get(sort, sort)
    if key not in SORT_KEYS:
        raise RetracerError(f"retracer: unknown --sort '{sort}'; choose one of {', '.join(SORT_KEYS)}")
    return key


def _solve_mine(cum: Dict[int, int], mine_fids: Set[int],
                out_edges: Dict[int, List[Tuple[int, int]]]) -> Dict[int, float]:
    """mine(g) for every function g not in your code (see the module docstring).

    A depth-first walk of the call graph from the functions in first-seen order
    (fid order), computing mine() in post-order; an edge back to a function still
    being walked (recursion, direct or through other functions) is not followed:
    the time of a recursive call is already inside its outermost call's.
    """
    mine: Dict[int, float] = {}
    acc: Dict[int, float] = {}
    on_path: Set[int] = set()
    for root in sorted(out_edges):
        if root in mine_fids or root in mine:
            continue
        # frames: (function, iterator over its out-edges, cum of the edge that led here)
        stack = [(root, iter(out_edges[root]), 0)]
        on_path.add(root)
        acc[root] = 0.0
        while stack:
            g, edges, led_by = stack[-1]
            for h, edge_cum in edges:
                if h == g or h in on_path:
                    continue
                if h in mine_fids:
                    acc[g] += edge_cum
                elif h in mine:
                    if cum.get(h, 0) > 0:
                        acc[g] += edge_cum * mine[h] / cum[h]
                else:
                    on_path.add(h)
                    acc[h] = 0.0
                    stack.append((h, iter(out_edges.get(h, ())), edge_cum))
                    break
            else:
                stack.pop()
                on_path.discard(g)
                mine[g] = min(acc.pop(g), float(cum.get(g, 0)))
                if stack and cum.get(g, 0) > 0:
                    acc[stack[-1][0]] += led_by * mine[g] / cum[g]
    return mine


def rank(reader: TraceReader, sort: str = "saving", include_all: bool = False) -> Ranking:
    """Rank the functions of an open trace (see the module docstring)."""
    sort = normalize_sort(sort)
    funcs = reader.functions
    stats = {s.fid: s for s in reader.func_stats() if s.fid in funcs}
    hidden_of = {fid: hidden_reason(fn) for fid, fn in funcs.items()}
    mine_fids = {fid for fid in stats if hidden_of[fid] is None and (funcs[fid].flags or 0) & FLAG_IN_SCOPE}
    fallback = not mine_fids
    if fallback:
        mine_fids = {fid for fid in stats if hidden_of[fid] is None and funcs[fid].kind == "py"}
    cum = {fid: s.cum_ns for fid, s in stats.items()}
    out_edges: Dict[int, List[Tuple[int, int]]] = {}
    for e in reader.edge_stats():
        if e.caller_fid in stats and e.callee_fid in stats:
            out_edges.setdefault(e.caller_fid, []).append((e.callee_fid, e.cum_ns))
    mine = _solve_mine(cum, mine_fids, out_edges)

    captured = reader.captured_counts()
    hidden: Dict[str, int] = {}
    listed: List[Ranked] = []
    for fid, s in stats.items():
        fn = funcs[fid]
        why = hidden_of[fid]
        if why is None and fid not in mine_fids and not include_all:
            why = "outside-your-code"
        if why is not None:
            hidden[why] = hidden.get(why, 0) + 1
            continue
        callees = 0.0
        for g, edge_cum in out_edges.get(fid, ()):
            if g == fid or g in mine_fids:
                continue
            c = cum.get(g, 0)
            callees += edge_cum * (1.0 - mine.get(g, 0.0) / c) if c > 0 else edge_cum
        by_status = captured.get(fid, {})
        ok = by_status.get("ok", 0) if refindable(fn) else 0
        listed.append(Ranked(
            fid=fid, name=fn.qualname or fn.name or "?", module=fn.module or "",
            filename=fn.filename or "~", line=fn.firstlineno or 0, kind=fn.kind,
            in_scope=fid in mine_fids, calls=s.calls, prim_calls=s.prim_calls,
            own_ns=s.own_ns, cum_ns=s.cum_ns, callees_ns=callees, saving_ns=s.own_ns + callees,
            captured_ok=ok, captured_total=sum(by_status.values()),
        ))
    keyf = {
        "saving": lambda r: (-r.saving_ns, -r.own_ns, r.name),
        "own": lambda r: (-r.own_ns, -r.saving_ns, r.name),
        "cumulative": lambda r: (-r.cum_ns, -r.saving_ns, r.name),
        "calls": lambda r: (-r.calls, -r.saving_ns, r.name),
        "per-call": lambda r: (-r.saving_per_call_ns, -r.saving_ns, r.name),
        "name": lambda r: (r.name, r.where),
    }[sort]
    listed.sort(key=keyf)
    total = sum(s.own_ns for s in stats.values())
    return Ranking(functions=listed, total_ns=total, sort=sort, hidden=hidden, scope_fallback=fallback,
                   meta=dict(reader.meta), threads=len(reader.threads), path=reader.path)


# ----------------------------------------------------------------- rendering


def _short(where: str, cwd: Optional[str]) -> str:
    if cwd and where.startswith(cwd.rstrip(os.sep) + os.sep):
        return where[len(cwd.rstrip(os.sep)) + 1:]
    return where


def _calls(r: Ranked) -> str:
    return f"{r.calls:,}" if r.calls == r.prim_calls else f"{r.calls}/{r.prim_calls}"


_HIDDEN_LABELS = (("test-runner", "test-runner"), ("import", "import-machinery"),
                  ("retracer", "retracer"), ("outside-your-code", "outside your code"))


def render_table(ranking: Ranking, top: int = 20, width: Optional[int] = None) -> str:
    """The ranked table printed by ``retracer profile`` (plain text; ``width``: see
    :func:`table_lines`)."""
    return "\n".join(line if isinstance(line, str) else "".join(t for t, _ in line)
                     for line in table_lines(ranking, top, width))


#: the table's number columns: (header, width); dropped right to left in this order when the terminal is narrow
_COLUMNS = (("saving", 11), ("share", 6), ("own", 11), ("cumulative", 11), ("calls", 11), ("saving/call", 11),
            ("replay", 6))
_DROP_ORDER = ("saving/call", "cumulative")
_MIN_NAME = 40


def table_lines(ranking: Ranking, top: int = 20, width: Optional[int] = None) -> List[Any]:
    """The table as lines, each a str or a list of (text, style) pieces.

    ``width`` (None: no limit) is the terminal's: when the full table does not fit,
    saving/call then cumulative are left out until the function column has at least
    40 characters, and names are cut from the left (``...Class.method  (file:line)``)."""
    from ..term import UNLIMITED, fit_name

    width = UNLIMITED if width is None else width
    meta = ranking.meta
    cwd = meta.get("cwd")
    total = ranking.total_ns or 1
    rows = ranking.functions[:top]
    names = [f"{r.name}  ({_short(r.where, cwd)})" for r in rows]
    sampled = meta.get("sampled") if isinstance(meta.get("sampled"), dict) else None
    label = {"calls": "samples", "saving/call": "per sample"} if sampled else {}
    cols = list(_COLUMNS)
    if width < UNLIMITED:  # a terminal: columns as wide as their contents, not 11 each
        cells0 = [_cells(r, total) for r in rows]
        cols = [(h, max([len(label.get(h, h))] + [len(c[h]) for c in cells0])) for h, _ in cols]
    longest = max([len(n) for n in names] + [len("function")])

    def fixed() -> int:
        return sum(w + 1 for _, w in cols) + 1
    for drop in _DROP_ORDER:
        if fixed() + longest <= width or width - fixed() >= _MIN_NAME:
            break
        cols = [c for c in cols if c[0] != drop]
    room = max(12, width - fixed())
    shown = {h for h, _ in cols}
    lines: List[Any] = []
    counted = f"{sampled.get('samples', 0):,} samples" if sampled else f"{meta.get('calls_total', 0):,} calls"
    lines += _wrap(f"{counted}, {ranking.threads} thread(s), "
                   f"{fmt_ns(meta.get('duration_ns', 0) or 0)} traced [{meta.get('hook', '?')}]; "
                   f"ranked by {ranking.sort}", width)
    if sampled:
        lines += _wrap(sampled_note(meta), width)
    head = " ".join(f"{label.get(h, h):>{w}}" for h, w in cols) + "  function"
    lines.append([(head, "bold")])
    for r, name in zip(rows, names):
        share = r.saving_ns / total
        cells = _cells(r, total)
        hot = "bold red" if share >= 0.10 else ("yellow" if share >= 0.02 else "")
        pieces = []
        for h, w in cols:
            style = hot if h in ("saving", "share") else ("green" if h == "replay" and r.captured_ok else "")
            pieces.append((f"{cells[h]:>{w}}" + " ", style))
        text = fit_name(r.name, _short(r.where, cwd), room) if len(name) > room else name
        cut = text.rfind("  (")
        if cut > 0:
            pieces += [(" " + text[:cut], "bold"), (text[cut:], "dim")]
        else:
            pieces.append((" " + text, "bold"))
        lines.append(pieces)
    if not ranking.functions:
        lines.append("(no function to rank: every recorded call belongs to hidden frames)")
    more = len(ranking.functions) - top
    if more > 0:
        lines.append(f"... {more} more functions (--top N to see more)")
    notes = [f"{ranking.hidden[k]} {label}" for k, label in _HIDDEN_LABELS if ranking.hidden.get(k)]
    if notes:
        hint = " (--all lists them)" if ranking.hidden.get("outside-your-code") else ""
        lines += _wrap(f"not ranked: {', '.join(notes)}{hint}", width)
    for note in (capture_note(meta), stream_note(meta)):
        if note:
            lines += _wrap(note, width)
    if ranking.scope_fallback:
        lines += _wrap(f"note: no function is in the trace's scope ({meta.get('scope', '?')}); "
                       f"every Python function is counted as your code", width)
    legend = "saving: own time + time of code outside your code (builtins, stdlib, libraries) it calls"
    if "replay" in shown and not sampled:
        legend += "; replay: captured calls retracer replay can run again"
    lines += [[(t, "dim")] for t in _wrap(legend, width)]
    return lines


def _cells(r: Ranked, total: float) -> Dict[str, str]:
    return {"saving": fmt_ns(r.saving_ns), "share": f"{100.0 * r.saving_ns / total:5.1f}%", "own": fmt_ns(r.own_ns),
            "cumulative": fmt_ns(r.cum_ns), "calls": _calls(r), "saving/call": fmt_ns(r.saving_per_call_ns),
            "replay": str(r.captured_ok) if r.captured_ok else "-"}


def _wrap(text: str, width: int) -> List[str]:
    if len(text) <= width:
        return [text]
    import textwrap
    return textwrap.wrap(text, width=max(width, 20), break_long_words=False, break_on_hyphens=False) or [text]


def sampled_note(meta: Dict[str, Any]) -> str:
    """What a sampled trace's figures are (see README, "Sampling")."""
    s = meta.get("sampled") or {}
    rate = s.get("rate") if isinstance(s, dict) else None
    native = isinstance(s, dict) and s.get("native")
    return (f"sampled trace (py-spy, {rate or '?'} Hz{', native frames' if native else ''}): times are "
            f"samples x sampling interval, calls are samples (not call counts); no captured calls")


def capture_note(meta: Dict[str, Any]) -> Optional[str]:
    """One line saying what capture cut and why, and how long it took (None when there is nothing to say)."""
    cap = meta.get("capture")
    if not isinstance(cap, dict):
        return None
    parts = []
    cut = cap.get("cut")
    if isinstance(cut, dict):
        parts.append(f"capture stopped after {cut.get('after_s', '?')} s: {cut.get('reason', '?')}")
    thr = cap.get("throttled")
    if isinstance(thr, dict) and isinstance(thr.get("calls"), int) and thr["calls"] > 0:
        parts.append(f"{thr.get('reason', 'capture was over its time budget')}: {thr['calls']:,} call(s) "
                     f"not captured, the first after {thr.get('first_after_s', '?')} s")
    stopped = cap.get("functions_stopped")
    if isinstance(stopped, int) and stopped:
        parts.append(f"capture of {stopped} function(s) stopped early because it cost far more than the "
                     f"function itself")
    paused = cap.get("paused_ns")
    if isinstance(paused, list) and all(isinstance(p, int) for p in paused) and sum(paused) > 0:
        parts.append(f"it took {fmt_ns(sum(paused))}, left out of every time above")
    return ("capture: " + "; ".join(parts)) if parts else None


def stream_note(meta: Dict[str, Any]) -> Optional[str]:
    """One line when the call stream (the timeline) stopped before the run did."""
    clause = stream_cut_clause(meta)
    return clause and (f"call stream: {clause}; the timeline (view, Perfetto, speedscope) ends there, "
                       f"the profile above counts every call")


def to_json(ranking: Ranking, top: Optional[int] = None) -> Dict[str, Any]:
    """The documented ``retracer profile --json`` structure (see README)."""
    meta = ranking.meta
    total = ranking.total_ns or 1
    rows = ranking.functions if top is None else ranking.functions[:top]
    return {
        "retracer_ranking": JSON_VERSION,
        "trace": os.path.abspath(ranking.path),
        "sort": ranking.sort,
        "formula": FORMULA,
        "total_ns": ranking.total_ns,
        "duration_ns": meta.get("duration_ns"),
        "calls_total": meta.get("calls_total"),
        "threads": ranking.threads,
        "hook": meta.get("hook"),
        "scope": meta.get("scope"),
        "scope_fallback": ranking.scope_fallback,
        "ranked": len(ranking.functions),
        "hidden": dict(sorted(ranking.hidden.items())),
        "functions": [{
            "rank": i + 1,
            "name": r.name,
            "module": r.module,
            "file": r.filename,
            "line": r.line,
            "kind": r.kind,
            "your_code": r.in_scope,
            "saving_ns": round(r.saving_ns),
            "share": r.saving_ns / total,
            "own_ns": r.own_ns,
            "callees_ns": round(r.callees_ns),
            "cumulative_ns": r.cum_ns,
            "calls": r.calls,
            "primitive_calls": r.prim_calls,
            "saving_per_call_ns": r.saving_per_call_ns,
            "own_per_call_ns": r.own_per_call_ns,
            "captured_calls": r.captured_total,
            "replayable_calls": r.captured_ok,
            "replayable": r.replayable,
        } for i, r in enumerate(rows)],
    }


def dumps(ranking: Ranking, top: Optional[int] = None) -> str:
    return json.dumps(to_json(ranking, top), indent=2)
