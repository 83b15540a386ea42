"""What a followed child left when it died before writing its part (SIGKILL, a crash
in C, ``os._exit`` from a signal handler): the chunks of its call stream in its spool
(``BASE.spool``; a followed child hands a chunk over at least every half second) and
the journal of its functions (``BASE.funcs``, a line per function written the moment
it was first seen; ext/registry.c). :func:`recover` turns them into an object that
reads like the child's part for tracefile/merge.py: its functions, threads, chunks and
a profile computed from the stream by the C exporter's call trees. Its calls still
running when it died end at its last recorded event; it has no captured calls.

Both files come from a process of the same user in the root's private run directory,
but they are read as untrusted all the same: a line or a chunk that does not parse
ends the recovery (the child is then listed with none of its calls, as before).
"""
from __future__ import annotations

import json
import os
import zlib
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .schema import EdgeStat, FuncStat, Function, Process, Thread
from .spool import read_spool

_MAX_FID = 1 << 24


def _unescape(s: str) -> str:
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}.get(s[i + 1], s[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def read_journal(path: str, root_functions: Dict[int, Function]) -> Dict[int, Function]:
    """The functions of the journal at ``path``, by fid. A function the root knows
    (the same kind, name, file and first line) takes the root's qualified name and
    module (the journal has neither the module nor, before 3.11, the qualname)."""
    known: Dict[Tuple[str, str, str, int], Function] = {}
    for f in root_functions.values():
        known.setdefault((f.kind, f.name, f.filename, f.firstlineno), f)
    out: Dict[int, Function] = {}
    with open(path, "rb") as fh:
        data = fh.read(64 << 20)
    for raw in data.split(b"\n")[:-1]:  # the last piece is empty, or a line cut by the kill
        parts = raw.decode("utf-8", "replace").split("\t")
        if len(parts) != 7 or parts[2] not in ("py", "c"):
            raise ValueError("a malformed line in the function journal")
        fid, flags, line = int(parts[0]), int(parts[1]), int(parts[6])
        if not (0 <= fid < _MAX_FID) or fid in out or flags < 0:
            raise ValueError("a bad function id in the function journal")
        kind = parts[2]
        name, qualname, filename = (_unescape(p) for p in parts[3:6])
        if not name or not filename:
            raise ValueError("a function without its names in the function journal")
        root = known.get((kind, name, filename, line))
        module = root.module if root is not None else ""
        if root is not None and kind == "py":
            qualname = root.qualname
        out[fid] = Function(fid, kind, name, qualname or name, module, filename, line, flags)
    return out


class RecoveredPart:
    """A killed child's spool and journal, read like its part (the parts of
    :class:`~retracer.tracefile.reader.TraceReader` that merge.py uses)."""

    def __init__(self, rec: Dict[str, Any], functions: Dict[int, Function],
                 chunks: Dict[int, List[Tuple[int, bytes, int]]], note: str, ended: str = "lost") -> None:
        self.functions = functions
        self._chunks = chunks
        self.threads = [Thread(t, None, None, f"thread {t}", sum(n for _, _, n in chunks[t]))
                        for t in sorted(chunks)]
        self._func_stats, self._edge_stats, calls = _profile(self)
        start = rec.get("start_time") if isinstance(rec.get("start_time"), (int, float)) else None
        self.meta: Dict[str, Any] = {
            "start_time": start, "calls_total": calls, "stream_calls": calls,
            "stream_events": sum(t.n_events or 0 for t in self.threads),
            "complete": True,  # as far as the trace goes: the processes table says this one was lost
        }
        cmd = rec.get("command")
        status = rec.get("exit")
        self.processes = [Process(0, rec.get("pid"), rec.get("ppid") if isinstance(rec.get("ppid"), int) else None,
                                  json.dumps(cmd) if isinstance(cmd, list) else None, start, None,
                                  status if isinstance(status, int) else None, ended, 0,
                                  json.dumps({"note": note, "recovered": True}))]

    def iter_chunk_rows(self, thread_idx: int) -> Iterator[Tuple[int, bytes, int]]:
        return iter(self._chunks.get(thread_idx, ()))

    def func_stats(self) -> List[FuncStat]:
        return self._func_stats

    def edge_stats(self) -> List[EdgeStat]:
        return self._edge_stats

    def iter_captured(self, values: bool = True) -> Iterator[Any]:
        return iter(())

    def iter_blob_rows(self) -> Iterator[tuple]:
        return iter(())

    def capture_stats(self) -> list:
        return []

    def close(self) -> None:
        pass


def _profile(part: RecoveredPart) -> Tuple[List[FuncStat], List[EdgeStat], int]:
    """cProfile's counters from the stream, through the C exporter's call trees (one
    per thread): a function's cumulative time and primitive calls count its outermost
    activations only, as the engine's do. Function ids the stream uses without a
    journal line get a placeholder row."""
    import io

    from .. import _export

    buf = io.BytesIO()
    ex = _export.Exporter("json", buf.write, merge_threads=False)
    for fid, f in part.functions.items():
        ex.add_function(fid, f.qualname or f.name, f.qualname or f.name, None if f.kind == "c" else f.filename,
                        f.firstlineno, f.name, f.kind)
    for t in part.threads:
        ex.thread_begin(t.thread_idx, t.thread_idx, t.name)
        for _, raw, _ in part.iter_chunk_rows(t.thread_idx):
            ex.feed(raw)
        ex.thread_end()
    ex.finish()
    doc = json.loads(buf.getvalue())
    fs: Dict[int, List[int]] = {}
    es: Dict[Tuple[int, int], List[int]] = {}
    calls_total = 0
    for th in doc["threads"]:
        nodes = th["nodes"]
        for parent, fid, calls, total, own in nodes:
            if fid not in part.functions:
                part.functions[fid] = Function(fid, "c", f"<fid {fid}>", f"<fid {fid}>", "", "~", 0, 0)
            outer = True  # no activation of the same function above this one
            k = parent
            while k >= 0:
                if nodes[k][1] == fid:
                    outer = False
                    break
                k = nodes[k][0]
            caller = nodes[parent][1] if parent >= 0 else -1
            f = fs.setdefault(fid, [0, 0, 0, 0])
            f[0] += calls
            f[2] += own
            if outer:
                f[1] += calls
                f[3] += total
            e = es.setdefault((caller, fid), [0, 0, 0, 0])
            e[0] += calls
            e[2] += own
            if outer:
                e[1] += calls
                e[3] += total
            calls_total += calls
    func_stats = [FuncStat(fid, *v) for fid, v in sorted(fs.items())]
    edge_stats = [EdgeStat(c, g, *v) for (c, g), v in sorted(es.items())]
    return func_stats, edge_stats, calls_total


def recover(base: str, rec: Dict[str, Any], root_functions: Dict[int, Function],
            note: str, ended: str = "lost") -> Optional[RecoveredPart]:
    """The part of the child whose files start with ``base`` (``ended``: ``lost``,
    or ``running`` for a child still writing them), or None when it left no spool
    or journal, or they do not read."""
    spool, journal = base + ".spool", base + ".funcs"
    if not (os.path.exists(spool) and os.path.exists(journal)):
        return None
    try:
        functions = read_journal(journal, root_functions)
        chunks: Dict[int, List[Tuple[int, bytes, int]]] = {}
        for c in read_spool(spool):
            raw = zlib.decompress(c.data) if c.codec == "zlib" else bytes(c.data)
            if len(raw) != c.raw_size:
                raise ValueError("a chunk of the wrong size")
            chunks.setdefault(c.thread_idx, []).append((c.seq, raw, c.n_events))
        if not chunks:
            return None
        for rows in chunks.values():
            rows.sort()
        return RecoveredPart(rec, functions, chunks, note, ended)
    except (OSError, ValueError, zlib.error, KeyError, IndexError, TypeError):
        return None
