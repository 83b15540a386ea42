"""Renderers: every output format of a trace behind one interface.

A :class:`Renderer` has a name, a default file suffix, whether its output is
binary, how to open what it wrote, and ``render(reader, out)`` that writes
the file atomically and returns a short description of what was written.
:data:`RENDERERS` is the table ``retracer profile --format`` chooses from.

The formats: ``chrome``, ``speedscope``, ``pprof``, ``folded`` and ``json`` are
streamed by the C exporters (:mod:`.stream`); ``pstats`` is cProfile's file
(:mod:`retracer.analysis.pstats`); ``flamegraph`` is one self-contained HTML
page or SVG (:mod:`.flamegraph`). The view page is :mod:`.view`.

Public API: :func:`export` (write a trace in a format) and
:func:`flamegraph_html` (the flame graph page as a string).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, Optional

from ..errors import RetracerError
from ..tracefile import TraceReader, stream_cut_clause
from .stream import FORMATS as STREAM_FORMATS
from .stream import export

__all__ = ["Renderer", "RENDERERS", "get", "export", "flamegraph_html", "flamegraph_svg"]

#: a progress callback: fraction done, 0..1
Progress = Callable[[float], None]


@dataclass(frozen=True)
class Renderer:
    """One output format."""

    name: str
    suffix: str            # default file suffix, e.g. ".json"
    binary: bool           # bytes (True) or text
    how_to_open: str       # a hint for the user; "{out}" stands for the file
    _render: Callable[..., str]

    def render(self, reader: TraceReader, out: str, progress: Optional[Progress] = None, *,
               process_frames: bool = True) -> str:
        """Write ``reader``'s trace as this format to ``out`` (atomically);
        returns what was written, e.g. '1,234 calls, 56,789 bytes'.
        ``process_frames``: folded and pprof show each process of a multi-process
        trace as the root frame of its stacks."""
        return self._render(reader, out, progress, process_frames=process_frames)


def _cut(reader: TraceReader) -> str:
    """What a format drawn from the call stream misses when the stream was cut."""
    clause = stream_cut_clause(reader.meta)
    return f"; the call stream {clause}: this covers the run until then" if clause else ""


def _streamed(fmt: str) -> Callable[..., str]:
    def render(reader: TraceReader, out: str, progress: Optional[Progress], process_frames: bool = True) -> str:
        stats = export(reader, fmt, out, progress=progress, process_frames=process_frames)
        return f"{stats['calls']:,} calls, {stats['bytes']:,} bytes{_cut(reader)}"
    return render


def _pstats(reader: TraceReader, out: str, progress: Optional[Progress], **_options) -> str:
    from ..analysis.pstats import write_pstats
    write_pstats(reader, out)
    return f"{len(reader.functions):,} functions"


def _flamegraph(reader: TraceReader, out: str, progress: Optional[Progress], **_options) -> str:
    from .flamegraph import write_flamegraph
    write_flamegraph(reader, out)
    return ("SVG" if out.lower().endswith(".svg") else "HTML") + _cut(reader)


_HOW = {
    "chrome": ".json", "speedscope": ".speedscope.json", "pprof": ".pb.gz", "folded": ".folded",
    "json": ".json",
}
_OPEN = {
    "chrome": "open it in https://ui.perfetto.dev or chrome://tracing",
    "speedscope": "open it in https://www.speedscope.app or with: speedscope {out}",
    "pprof": "see it with: pprof -http=: {out}  (or go tool pprof -top {out})",
    "folded": "draw it with: flamegraph.pl {out} > flame.svg  (or inferno-flamegraph)",
    "json": "its structure: python -m retracer help export-json",
}

RENDERERS: Dict[str, Renderer] = {
    fmt: Renderer(fmt, _HOW[fmt], fmt == "pprof", _OPEN[fmt], _streamed(fmt)) for fmt in STREAM_FORMATS
}
RENDERERS["pstats"] = Renderer("pstats", ".prof", True, "open it with python -m pstats {out} or snakeviz {out}",
                               _pstats)
RENDERERS["flamegraph"] = Renderer("flamegraph", ".html", False, "open it in a browser", _flamegraph)


def get(name: str) -> Renderer:
    """The renderer called ``name``; one-line error for an unknown one."""
    try:
        return RENDERERS[name]
    except KeyError:
        raise RetracerError(f"retracer: unknown format '{name}'; choose one of {', '.join(RENDERERS)}") from None


def flamegraph_html(trace, *, trust: bool = False, embed: bool = False, keep=None) -> str:
    """The flame graph of a trace (a path or an open TraceReader) as one
    self-contained HTML page: no network access, opens in any browser
    (``embed``: without a title, for a notebook's frame; ``keep``: which threads)."""
    from .flamegraph import flamegraph_html as page
    return page(trace, trust=trust, embed=embed, keep=keep)


def flamegraph_svg(trace, *, trust: bool = False) -> str:
    """The flame graph as a standalone SVG document (scripts for zoom inside)."""
    from .flamegraph import flamegraph_svg as svg
    return svg(trace, trust=trust)


def default_output(trace_path: str, name: str) -> str:
    """``run.trace`` + pstats -> ``run.prof``: the trace's name with the format's suffix."""
    return os.path.splitext(trace_path)[0] + get(name).suffix
