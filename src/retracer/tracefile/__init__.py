"""Trace files: one SQLite file per run (schema version 3, ``docs/trace-format.md``).

The tables ``meta``, ``functions``, ``threads``, ``chunks``, ``func_stats``,
``edge_stats``, ``captured_calls``, ``blobs`` and ``capture_stats``; all times
are integer nanoseconds; the file is signed with the user's key
(:mod:`.signing`) over a digest of its schema and every row (:mod:`.digest`).
:mod:`.writer` writes atomically (mode 0600, from a private run directory,
:mod:`.tempdir`), :mod:`.spool` turns an engine's spool files into a trace,
:mod:`.reader` validates before reading (exact schema objects, row rules,
signature), :mod:`.amend` re-signs a trace after the stability check.
"""
from ..errors import TraceError
from .schema import (FLAG_C_FUNCTION, FLAG_GENERATOR, FLAG_IMPORT_MACHINERY, FLAG_IN_SCOPE,
                     FLAG_MODULE_BODY, FLAG_ONLY_FUNCTIONS, FORMAT_NAME, NO_CALLER, SCHEMA_VERSION,
                     CapturedCall, CaptureStat, EdgeStat, FuncStat, Function, Thread, stream_cut_clause)

__all__ = [
    "SCHEMA_VERSION", "FORMAT_NAME", "TraceError", "TraceWriter", "TraceReader", "Function",
    "Thread", "FuncStat", "EdgeStat", "CapturedCall", "CaptureStat", "compute_digest", "FLAG_IN_SCOPE",
    "FLAG_IMPORT_MACHINERY", "FLAG_MODULE_BODY", "FLAG_ONLY_FUNCTIONS", "FLAG_GENERATOR",
    "FLAG_C_FUNCTION", "NO_CALLER", "stream_cut_clause",
]

# imported on first use: sqlite3 and hashlib are not needed to start tracing
_LAZY = {"TraceReader": ".reader", "TraceWriter": ".writer", "compute_digest": ".digest"}


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value
