"""From an engine's spool to a trace file.

The engine appends each full chunk of a thread's call stream to a spool file
(header ``=IIQQII``: thread index, sequence number, stored length, events, raw
length, codec 0 raw / 1 zlib; then the stored bytes; csrc/rt_spool.c writes it,
compressing in a background thread). At the end of a session :func:`write_trace` turns the spool, the profile
and the captured calls -- plain rows, no interpreter objects -- into one signed
trace. Nothing here depends on CPython, so any binding of the engine can use it.
"""
from __future__ import annotations

import os
import struct
from typing import Any, Dict, Iterable, Iterator, NamedTuple, Optional, Sequence, Tuple

from .writer import TraceWriter

SPOOL_HEADER = struct.Struct("=IIQQII")
CODECS = {0: "raw", 1: "zlib"}


class SpoolChunk(NamedTuple):
    """One call-stream chunk of the spool."""

    thread_idx: int
    seq: int        # the chunk's number in its thread's stream
    data: bytes     # as stored (see codec)
    n_events: int
    raw_size: int   # the chunk's length decoded
    codec: str      # 'raw' or 'zlib', as in the chunks table


def read_spool(path: Optional[str]) -> Iterator[SpoolChunk]:
    """Every complete chunk of the spool at ``path``; a truncated last chunk (the
    process died writing it) ends the iteration."""
    if not path or not os.path.exists(path):
        return
    with open(path, "rb") as f:
        while True:
            hdr = f.read(SPOOL_HEADER.size)
            if len(hdr) < SPOOL_HEADER.size:
                return
            tidx, seq, length, n_events, raw_size, codec = SPOOL_HEADER.unpack(hdr)
            if codec not in CODECS:
                return  # not a record: the spool ends here
            data = f.read(length)
            if len(data) < length:
                return
            yield SpoolChunk(tidx, seq, data, n_events, raw_size, CODECS[codec])


def write_trace(output: str, meta: Dict[str, Any], functions: Sequence[tuple],
                threads: Sequence[tuple], spool: Optional[str], func_stats: Iterable[tuple],
                edge_stats: Iterable[tuple], captured: Iterable[Sequence[tuple]] = (),
                blobs: Iterable[Tuple[bytes, bytes]] = (), capture_stats: Iterable[tuple] = (),
                tmp_dir: Optional[str] = None, process: Optional[tuple] = None) -> Tuple[str, int]:
    """Write the trace ``output`` atomically and sign it.

    ``functions`` and ``threads`` are rows of those tables, ``spool`` the call
    stream spool, ``func_stats``/``edge_stats`` the profile rows, ``captured``
    batches of ``captured_calls`` rows whose values are keys of ``blobs``
    ((key, data) pairs) and ``capture_stats`` what capture did per function;
    the file is assembled in ``tmp_dir`` (default: a run directory of its own).
    ``process`` is the one row of the processes table (proc_idx 0; every thread
    and the whole profile belong to it).
    Returns (path, captured calls written).
    Raises TraceError (one line) when the trace cannot be written.
    """
    with TraceWriter(output, tmp_dir=tmp_dir) as w:
        for k, v in meta.items():
            w.set_meta(k, v)
        w.add_functions(functions)
        w.add_threads(threads)
        if process is None:
            process = (0, os.getpid(), None, None, None, None, None, None, 0, None)
        w.add_processes([process])
        for c in read_spool(spool):
            w.add_stored_chunk(c.thread_idx, c.seq, c.data, c.n_events, c.raw_size, c.codec)
        func_stats = list(func_stats)
        edge_stats = list(edge_stats)
        w.add_func_stats(func_stats)
        w.add_edge_stats(edge_stats)
        w.add_proc_stats((0,) + tuple(r) for r in func_stats)
        w.add_proc_edge_stats((0,) + tuple(r) for r in edge_stats)
        w.add_blobs(blobs)
        w.add_capture_stats(capture_stats)
        n = 0
        for batch in captured:
            w.add_captured(batch)
            n += len(batch)
        w.set_meta("captured_calls", n)
        path = w.commit()
    return path, n
