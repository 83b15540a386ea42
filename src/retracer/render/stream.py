"""The streamed exports of a trace: formats written by the C exporters.

The work is done by the C exporters (``csrc/rt_export*.c`` through the
``retracer._export`` binding); this module reads the trace file, feeds the
call-stream chunks of every thread to them in order and writes the result to a
temporary file that is renamed into place when complete, so an output file is
never half-written.  Memory does not grow with the number of calls.

Formats: ``chrome`` (Trace Event JSON: Perfetto, chrome://tracing), ``speedscope``,
``pprof`` (gzipped profile.proto), ``folded`` (flamegraph.pl, inferno) and ``json``
(retracer's own structure, docs/export-json.md).  The registry of every output
format (these, pstats, the flame graph) is :mod:`retracer.render`.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Dict, Iterator, Optional, Tuple, Union

from .. import _export
from ..errors import RetracerError
from ..outputs import atomic_path, check_target
from ..tracefile import Function, TraceError, TraceReader

__all__ = ["FORMATS", "export", "export_bytes", "function_rows", "names", "short_path"]

FORMATS = ("chrome", "speedscope", "pprof", "folded", "json")

TraceArg = Union[str, "os.PathLike[str]", TraceReader]


def short_path(path: Optional[str], cwd: Optional[str]) -> str:
    """A file name as flame graphs show it: relative to the traced program's
    directory when inside it, from the package on for installed packages."""
    if not path:
        return "?"
    if cwd and path.startswith(cwd.rstrip(os.sep) + os.sep):
        return path[len(cwd.rstrip(os.sep)) + 1:]
    for marker in ("site-packages" + os.sep, "dist-packages" + os.sep):
        k = path.rfind(marker)
        if k >= 0:
            return path[k + len(marker):]
    return path


def names(fn: Function, cwd: Optional[str]) -> Tuple[str, str, Optional[str], int, str]:
    """(name, system_name, file, line, label) of a function."""
    name = fn.qualname or fn.name or f"<fid {fn.fid}>"
    system = f"{fn.module}.{name}" if fn.module else name
    if fn.kind == "c":
        return name, system, None, 0, system if fn.module not in (None, "", "builtins") else name
    line = fn.firstlineno or 0
    label = f"{name} ({short_path(fn.filename, cwd)}:{line})"
    return name, system, fn.filename, line, label


def function_rows(reader: TraceReader) -> Iterator[tuple]:
    """(fid, name, system_name, file, line, label, kind) for every function of the trace."""
    cwd = reader.meta.get("cwd")
    for fid, fn in sorted(reader.functions.items()):
        name, system, file, line, label = names(fn, cwd if isinstance(cwd, str) else None)
        yield fid, name, system, file, line, label, fn.kind or "py"


def _options(reader: TraceReader) -> dict:
    meta = reader.meta
    start = meta.get("start_time")
    dur = meta.get("duration_ns")
    pid = meta.get("pid")
    return {
        "name": os.path.basename(reader.path),
        "exporter": f"retracer {meta.get('retracer_version', '')}".strip(),
        "pid": pid if isinstance(pid, int) and not isinstance(pid, bool) else 1,
        "time_unix_ns": int(start * 1e9) if isinstance(start, (int, float)) and start > 0 else 0,
        "duration_ns": dur if isinstance(dur, int) and dur > 0 else 0,
    }


def process_frame(p) -> str:
    """The root frame of a process's stacks in folded and pprof output, as py-spy
    --subprocesses names it: "process 4242: prog.py 3" (the command line cut at 80)."""
    try:
        argv = json.loads(p.command) if p.command else None
    except ValueError:
        argv = None
    cmd = " ".join(str(a) for a in argv) if isinstance(argv, list) else "?"
    if len(cmd) > 80:
        cmd = cmd[:79] + "…"
    return f"process {p.pid}: {cmd}"


def _run(reader: TraceReader, fmt: str, out, merge_threads: bool,
         progress: Optional[Callable[[float], None]], process_frames: bool = True) -> Dict[str, int]:
    ex = _export.Exporter(fmt, out, merge_threads=merge_threads, **_options(reader))
    for row in function_rows(reader):
        ex.add_function(*row)
    total = reader.meta.get("stream_events") or sum(t.n_events or 0 for t in reader.threads) or 1
    done = 0
    for t in reader.threads:
        tid = t.native_id if t.native_id is not None else t.thread_idx
        name, pid, frame = t.name, None, None
        if len(reader.processes) > 1:
            # each thread says its process: chrome's pid, speedscope's profile per both,
            # pprof's "pid" label, folded's and pprof's root frame
            proc = reader.process_of(t.thread_idx)
            pid = proc.pid
            name = f"pid {pid} {t.name or t.thread_idx}"
            frame = process_frame(proc) if process_frames else None
        ex.thread_begin(t.thread_idx, tid, name, pid if isinstance(pid, int) else None, frame)
        try:
            for chunk in reader.iter_chunks(t.thread_idx):
                ex.feed(chunk)
                if progress is not None:
                    progress(min(1.0, (done + ex.stats()["events"]) / total))
        except ValueError as e:  # a chunk the decoder refuses
            raise TraceError(f"retracer: {reader.path} is truncated or corrupt ({e}); "
                             f"trace the program again") from None
        ex.thread_end()
        done = ex.stats()["events"]
    return ex.finish()


def _open(trace: TraceArg, trust: bool) -> Tuple[TraceReader, bool]:
    if isinstance(trace, TraceReader):
        return trace, False
    return TraceReader(trace, trust=trust), True


def export(trace: TraceArg, fmt: str, out_path: "str | os.PathLike[str]", *, trust: bool = False,
           progress: Optional[Callable[[float], None]] = None, process_frames: bool = True) -> Dict[str, int]:
    """Write the trace (a path or an open :class:`TraceReader`) as ``fmt`` to ``out_path``.

    A multi-process trace shows its processes as processes in every format: chrome's
    ``pid``, speedscope's profile per process and thread, pprof's ``pid`` label on
    each sample; with ``process_frames`` (the default) folded and pprof also put each
    process's stacks under a root frame ``process PID: COMMAND``.

    The file appears complete or not at all (temporary file + rename). Returns the
    exporter's counters (``spans``, ``calls``, ``bytes``, ``max_depth``, ...).
    Raises :class:`RetracerError` (one line) for a bad trace or an unwritable output.
    """
    if fmt not in FORMATS:
        raise RetracerError(f"retracer: unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    out = os.fspath(out_path)
    check_target(out)
    reader, owned = _open(trace, trust)
    gz = out.lower().endswith(".gz") and fmt != "pprof"  # pprof is gzipped by its exporter already
    try:
        with atomic_path(out) as tmp:
            raw = tmp + ".raw" if gz else tmp
            fd = os.open(raw, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                stats = _run(reader, fmt, fd, False, progress, process_frames)
            except MemoryError:
                raise RetracerError(f"retracer: out of memory while exporting {reader.path} to {out}") from None
            finally:
                os.close(fd)
            if gz:
                try:
                    stats = dict(stats, uncompressed_bytes=stats.get("bytes"), bytes=_gzip_file(raw, tmp))
                finally:
                    try:
                        os.unlink(raw)
                    except OSError:
                        pass
    finally:
        if owned:
            reader.close()
    return stats


def _gzip_file(src: str, dst: str) -> int:
    """Compress ``src`` into ``dst`` (gzip, streamed in 1 MiB blocks); the bytes written.

    An export to a name ending in ``.gz`` (``-o run.json.gz``) is written by the C
    exporter to a temporary file beside the target, then compressed here with
    Python's gzip (zlib) into the target: Perfetto and chrome://tracing open
    gzipped JSON as they are."""
    import gzip
    import shutil

    with open(src, "rb") as fin, open(dst, "wb") as raw_out:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw_out, compresslevel=6, mtime=0) as gzf:
            shutil.copyfileobj(fin, gzf, 1 << 20)
        return raw_out.tell()


def export_bytes(trace: TraceArg, fmt: str, *, merge_threads: bool = False, trust: bool = False) -> bytes:
    """The export as bytes in memory (for small results such as the merged call tree)."""
    if fmt not in FORMATS:
        raise RetracerError(f"retracer: unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    reader, owned = _open(trace, trust)
    parts = []
    try:
        _run(reader, fmt, parts.append, merge_threads, None)
    except MemoryError:
        raise RetracerError(f"retracer: out of memory while reading {reader.path}") from None
    finally:
        if owned:
            reader.close()
    return b"".join(parts)
