"""The folded call tree as indented text (``retracer view --text``,
``retracer trace --print``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, TextIO, Tuple

from ...tracefile import FLAG_IMPORT_MACHINERY, stream_cut_clause
from ...units import fmt_ns as _fmt_ns
from .decode import END_OPEN, END_RAISE, KIND_CONT, KIND_RESUME, Rec, iter_items
from .model import ViewModel, func_label, func_where


@dataclass
class _Glyphs:
    tee: str
    last: str
    pipe: str
    blank: str
    loop: str
    rec: str
    times: str
    dash: str


_UNICODE = _Glyphs("├── ", "└── ", "│   ", "    ", "🔄", "↻", "×", "–")
_ASCII = _Glyphs("|-- ", "`-- ", "|   ", "    ", "@", "(rec)", "x", "-")


def _glyphs(out: TextIO) -> _Glyphs:
    enc = getattr(out, "encoding", None) or "ascii"
    try:
        "├──└│🔄↻×–".encode(enc)
        return _UNICODE
    except (UnicodeEncodeError, LookupError):
        return _ASCII


def _hidden(model: ViewModel, fid: int, hide_imports: bool) -> bool:
    if not hide_imports:
        return False
    fn = model.functions.get(fid)
    return bool(fn and fn.flags & FLAG_IMPORT_MACHINERY)


def _group_hidden(model: ViewModel, buf: bytes, g: Rec, hide_imports: bool) -> bool:
    if not hide_imports:
        return False
    first = list(_first_rep(buf, g))
    return all((not r.group) and _hidden(model, r.fid, True) for r in first)


def _first_rep(buf: bytes, g: Rec) -> Iterator[Rec]:
    for k, r in enumerate(iter_items(buf, g)):
        if k >= g.period:
            return
        yield r


def _span_line(model: ViewModel, r: Rec, g: _Glyphs, agg: Optional[Tuple[int, int, int]] = None) -> str:
    fn = model.functions.get(r.fid)
    parts = [func_label(fn), f"[{func_where(fn)}]"]
    if r.kind == KIND_RESUME:
        parts.append("(resumed)")
    elif r.kind == KIND_CONT:
        parts.append("(continued from another thread)")
    if agg is not None:
        count, dur, calls = agg
        parts.append(f"{g.times}{count:,}  {_fmt_ns(dur)} total  {_plural(calls, 'call')}")
        if r.depth > 1:
            parts.append(f"{g.rec} recursion depth {r.depth} (first repetition)")
        return "  ".join(parts)
    if r.depth > 1:
        parts.append(f"{g.rec} recursion depth {r.depth}, {_plural(r.calls, 'call')}  {_fmt_ns(r.dur)}")
    else:
        parts.append(_fmt_ns(r.dur))
        if r.calls > 1:
            parts.append(f"{r.calls:,} calls")
    if r.how == END_RAISE:
        parts.append("raised")
    elif r.how == END_OPEN:
        parts.append("(still running when tracing stopped)")
    return "  ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def group_name(model: ViewModel, buf: bytes, r: Rec, times: str = "×", levels: int = 2,
               width: int = 5) -> str:
    """``N× [a, b, M× [c, d]]``: a group's template, nested groups spelled out
    ``levels`` deep and at most ``width`` items per level."""
    names = []
    for k, it in enumerate(_first_rep(buf, r)):
        if k == width:
            names.append("...")
            break
        if it.group:
            names.append(group_name(model, buf, it, times, levels - 1, width) if levels > 1
                         else f"{it.count}{times}[...]")
        else:
            names.append(func_label(model.functions.get(it.fid)))
    return f"{r.count:,}{times} [{', '.join(names)}]"


def _group_line(model: ViewModel, buf: bytes, r: Rec, g: _Glyphs,
                agg: Optional[Tuple[int, int, int]] = None) -> str:
    name = group_name(model, buf, r, g.times)
    if agg is not None:  # a group inside a pattern: what one repetition does, and the totals
        count, dur, calls = agg
        return (f"{g.loop} {name}  (in each repetition; over all {count:,}: "
                f"{_plural(calls, 'call')}, {_fmt_ns(dur)})")
    calls_range = (f"calls #{r.call_no:,}{g.dash}#{r.call_no + r.calls - 1:,}, " if r.calls else "")
    # fewer calls than repetitions: the repetitions are slices of generators or
    # coroutines resumed again and again (one call, many slices)
    slices = f" in {r.count:,} resumed slices" if r.period == 1 and r.calls < r.count else ""
    return f"{g.loop} {name}  ({calls_range}total: {_plural(r.calls, 'call')}{slices}, {_fmt_ns(r.dur_sum)})"


def render_text(model: ViewModel, out: TextIO, patterns: bool = True,
                hide_imports: bool = False, max_depth: Optional[int] = None) -> None:
    """Print the folded call tree of every thread as an indented tree.

    A group prints its pattern once: each item of the first repetition with the totals
    over all repetitions, followed by what that first repetition called. A recursive
    call prints as one line (its depth and total calls), not its re-entries."""
    g = _glyphs(out)
    shown_process = None
    clause = stream_cut_clause(model.meta)
    if clause:
        out.write(f"(the call stream {clause}: the trees below cover the run until then)\n")
    for th in model.threads:
        root = th.root
        if th.process is not None and th.process != shown_process:
            # a multi-process trace: each process once, above its threads
            shown_process = th.process
            n = sum(t.root.calls for t in model.threads if t.process == th.process)
            out.write(f"{th.process} ({n:,} calls)\n")
        out.write(f"Thread {th.name} ({root.calls:,} calls, {_fmt_ns(root.dur)})\n")
        # explicit stack of (iterator over (rec, agg, nested) rows, prefix, depth)
        stack: List[Tuple[Iterator[Tuple[Rec, Optional[tuple], bool]], str, int]] = []
        stack.append((_rows(model, th.tree, root, patterns, hide_imports, False), "", 0))
        pending: List[Optional[Tuple[Rec, Optional[tuple], bool]]] = [None]
        # one look-ahead per level to know which row is the last
        pending[0] = next(stack[0][0], None)
        while stack:
            it, prefix, depth = stack[-1]
            row = pending[-1]
            if row is None:
                stack.pop()
                pending.pop()
                continue
            nxt = next(it, None)
            pending[-1] = nxt
            r, agg, nested = row
            last = nxt is None
            out.write(prefix + (g.last if last else g.tee))
            if r.group:
                out.write(_group_line(model, th.tree, r, g, agg) + "\n")
                child_rows = _template_rows(model, th.tree, r, hide_imports)
            else:
                out.write(_span_line(model, r, g, agg) + "\n")
                if r.depth > 1:
                    continue  # recursion: one node
                child_rows = _rows(model, th.tree, r, patterns, hide_imports, False)
            if max_depth is not None and depth + 1 >= max_depth:
                continue
            stack.append((child_rows, prefix + (g.blank if last else g.pipe), depth + 1))
            pending.append(next(child_rows, None))


def _rows(model: ViewModel, buf: bytes, owner: Rec, patterns: bool, hide_imports: bool,
          nested: bool) -> Iterator[Tuple[Rec, Optional[tuple], bool]]:
    """Rows of a span's items: groups as groups (or, without patterns, their items)."""
    stack = [iter_items(buf, owner)]
    while stack:
        r = next(stack[-1], None)
        if r is None:
            stack.pop()
            continue
        if r.group:
            if not patterns:
                stack.append(iter_items(buf, r))
                continue
            if _group_hidden(model, buf, r, hide_imports):
                continue
            yield r, None, nested
        elif not _hidden(model, r.fid, hide_imports):
            yield r, None, nested


def _template_rows(model: ViewModel, buf: bytes, grp: Rec,
                   hide_imports: bool) -> Iterator[Tuple[Rec, Optional[tuple], bool]]:
    """The pattern of a group: its first repetition, each span with the totals of that
    position over all repetitions."""
    for k, r in enumerate(_first_rep(buf, grp)):
        d, c = grp.aggs[k] if grp.aggs else (r.dur_sum, r.calls)
        if r.group:
            if not _group_hidden(model, buf, r, hide_imports):
                yield r, (grp.count, d, c), True
        elif not _hidden(model, r.fid, hide_imports):
            yield r, (grp.count, d, c), True
