"""Reading trace files: validated, read-only (docs/trace-format.md).

:class:`TraceReader` raises :class:`TraceError` -- one line naming the file and
saying what to do -- for a missing, empty, foreign, newer, truncated, corrupt or
unsigned file, and never lets a sqlite3/zlib/OS error escape.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import stat as _stat
import sys
import zlib
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional

from ..errors import TraceError
from . import signing
from .digest import compute_digest
from .schema import (FORMAT_NAME, MAX_BLOB_BYTES, MAX_CHUNK_BYTES, READABLE_VERSIONS, SCHEMA_VERSION,
                     CapturedCall, CaptureStat, EdgeStat, FuncStat, Function, Process, Thread, row_rules,
                     schema_objects)
from .writer import _reason

#: the largest meta value read (JSON text)
_MAX_META = 64 << 20


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _opt(check):
    return lambda v: v is None or check(v)


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


#: the JSON types of the meta keys retracer reads (others are ignored)
_META_TYPES = {
    "command": _str_list, "cwd": _opt(lambda v: isinstance(v, str)),
    "python_version": _opt(lambda v: isinstance(v, str)), "python_implementation": _opt(lambda v: isinstance(v, str)),
    "retracer_version": _opt(lambda v: isinstance(v, str)), "hook": _opt(lambda v: isinstance(v, str)),
    "clock": _opt(lambda v: isinstance(v, str)), "stopped_by": _opt(lambda v: isinstance(v, str)),
    "engine_error": _opt(lambda v: isinstance(v, str)), "scope": _opt(lambda v: isinstance(v, str)),
    "scopes": _opt(_str_list), "sys_path": _opt(_str_list),
    "start_time": _opt(_is_num), "end_time": _opt(_is_num),
    "duration_ns": _opt(_is_int), "exit_status": _opt(_is_int), "calls_total": _opt(lambda v: _is_int(v) and v >= 0),
    "stream_calls": _opt(lambda v: _is_int(v) and v >= 0), "stream_events": _opt(lambda v: _is_int(v) and v >= 0),
    "captured_calls": _opt(lambda v: _is_int(v) and v >= 0), "complete": _opt(lambda v: isinstance(v, bool)),
    "options": _opt(lambda v: isinstance(v, dict)), "capture": _opt(lambda v: isinstance(v, dict)),
    "stream_cut": _opt(lambda v: isinstance(v, dict)),
    "unstable_calls": _opt(lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values())),
    "python": _opt(lambda v: isinstance(v, str)),
}

_warned: set = set()


def _warn_once(line: str) -> None:
    if line not in _warned:
        _warned.add(line)
        print(line, file=sys.stderr, flush=True)

class TraceReader:
    """A validated, read-only view of a trace file.

    Opening checks, in order: the path exists and is a regular non-empty file, it is
    SQLite, it is a retracer trace, its schema version is supported, it is not
    truncated or corrupt, and (unless ``trust``) it carries a valid signature made
    with this user's key.  Any failure is a one-line :class:`TraceError`.

    Attributes: ``path``, ``meta`` (dict, JSON-decoded values, without
    ``signature``), ``functions`` (dict fid -> :class:`Function`), ``threads`` (list of
    :class:`Thread` in ``thread_idx`` order), ``verified`` (True if the signature was
    checked and is valid; False when opened with ``trust=True``).
    """

    def __init__(self, path: "str | os.PathLike[str]", trust: bool = False, warn: bool = True) -> None:
        self.path = os.fspath(path)
        self.trust = bool(trust)
        #: with ``trust``: print one warning line when the trace is not signed by this user
        self.warn = bool(warn)
        self.verified = False
        self.meta: Dict[str, Any] = {}
        self.functions: Dict[int, Function] = {}
        self.threads: List[Thread] = []
        #: the traced processes (:class:`Process`), root first (proc_idx 0)
        self.processes: List[Process] = []
        self.version = SCHEMA_VERSION
        self._conn: Optional[sqlite3.Connection] = None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # -- errors --------------------------------------------------------------

    def _corrupt(self, detail: str) -> TraceError:
        return TraceError(
            f"retracer: {self.path} is truncated or corrupt ({detail}); "
            f"trace the program again"
        )

    def _foreign(self, what: str) -> TraceError:
        return TraceError(
            f"retracer: {self.path} is not a retracer trace ({what}); pass a file "
            f"written by 'retracer trace'"
        )

    # -- validation ----------------------------------------------------------

    def _open(self) -> None:
        path = self.path
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise TraceError(
                f"retracer: {path} does not exist; check the path, or run "
                f"'retracer trace' to create it"
            ) from None
        except OSError as exc:
            raise TraceError(
                f"retracer: cannot read {path} ({_reason(exc)}); check the path "
                f"and its permissions"
            ) from None
        if _stat.S_ISDIR(st.st_mode):
            raise TraceError(
                f"retracer: {path} is a directory, not a trace file; pass the path "
                f"of a trace file"
            )
        if not _stat.S_ISREG(st.st_mode):
            raise self._foreign("not a regular file")
        if st.st_size == 0:
            raise TraceError(
                f"retracer: {path} is empty (the trace was never completed); trace "
                f"the program again"
            )
        try:
            with open(path, "rb") as f:
                header = f.read(100)
        except OSError as exc:
            raise TraceError(
                f"retracer: cannot read {path} ({_reason(exc)}); check its "
                f"permissions"
            ) from None
        if not header.startswith(b"SQLite format 3\x00"):
            raise self._foreign("not an SQLite file")
        if len(header) < 100:
            raise self._corrupt("file too short")

        try:
            uri = Path(os.path.abspath(path)).as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        except (sqlite3.Error, ValueError) as exc:
            raise TraceError(
                f"retracer: cannot open {path} ({_reason(exc)}); check the path "
                f"and its permissions"
            ) from None
        self._conn = conn
        try:
            self._validate(conn)
        except sqlite3.Error as exc:
            raise self._corrupt(_reason(exc)) from None
        except (zlib.error, MemoryError, OverflowError, ValueError, TypeError, RecursionError) as exc:
            raise self._corrupt(_reason(exc)) from None

    def _validate(self, conn: sqlite3.Connection) -> None:
        # Hardening for a file that is not trusted yet (unknown pragmas are no-ops):
        # no function or virtual table named by the file's own schema runs, no write.
        conn.execute("PRAGMA trusted_schema=OFF")
        conn.execute("PRAGMA cell_size_check=ON")
        conn.execute("PRAGMA mmap_size=0")
        conn.execute("PRAGMA query_only=ON")
        # One read transaction for the reader's lifetime: the data read later is the
        # data that was verified (SQLite keeps a shared lock).
        conn.execute("BEGIN")
        objects = set(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
        meta_obj = next(o for o in schema_objects(1) if o[0] == "table" and o[1] == "meta")
        if meta_obj not in objects:
            if any(o[1] == "meta" for o in objects):
                raise self._foreign_objects(sorted(o for o in objects if o[1] == "meta"))
            raise self._foreign("an SQLite database without retracer tables")
        # meta is retracer's own table (its exact definition): reading it runs nothing
        raw_meta: Dict[str, Any] = {}
        for key, value in conn.execute("SELECT key, value FROM meta"):
            if not isinstance(key, str):
                raise self._corrupt("a meta key is not text")
            raw_meta[key] = value
        fmt = self._decode_meta("format", raw_meta.get("format"), foreign=True)
        if fmt != FORMAT_NAME:
            raise self._foreign("an SQLite database of another kind")
        version = self._decode_meta("schema_version", raw_meta.get("schema_version"))
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self._corrupt(f"invalid schema_version {version!r}")
        if version not in READABLE_VERSIONS:
            raise TraceError(
                f"retracer: {self.path} uses trace schema version {version}, but "
                f"this retracer reads only up to version {SCHEMA_VERSION}; upgrade "
                f"retracer (pip install -U retracer)"
            )
        self.version = version
        expected = schema_objects(version)
        extra = sorted(objects - expected)
        if extra:
            # a view, trigger, index or redefined table retracer never writes: whatever
            # it would do, the file is not what retracer wrote (refused even with --trust)
            raise self._foreign_objects(extra)
        missing = sorted(o[1] for o in expected - objects if o[0] == "table")
        if missing:
            raise self._corrupt(f"missing table {', '.join(missing)}")
        if expected - objects:
            raise self._corrupt("an index of the schema is missing")
        check = conn.execute("PRAGMA quick_check(1)").fetchone()
        if check is None or check[0] != "ok":
            detail = check[0] if check else "integrity check failed"
            raise self._corrupt(str(detail).splitlines()[0] if detail else "?")

        sig_raw = raw_meta.get("signature")
        if not self.trust:
            if sig_raw is None:
                raise TraceError(
                    f"retracer: {self.path} is not signed, so it may not come from "
                    f"you (replaying it would unpickle its data); pass --trust if "
                    f"you trust this file"
                )
            if not self._signature_ok(conn, version, sig_raw):
                raise TraceError(
                    f"retracer: {self.path} has a wrong signature (it was made with "
                    f"another user's key, or modified since it was written; replaying "
                    f"it would unpickle its data); pass --trust if you trust this file"
                )
            self.verified = True
        else:
            self.verified = sig_raw is not None and self._signature_ok(conn, version, sig_raw)
            if not self.verified and self.warn:
                why = "is not signed" if sig_raw is None else "is not signed by you (or was modified since)"
                _warn_once(f"retracer: warning: {self.path} {why}; reading it because of --trust")

        # Every row follows the schema's rules (types, ranges, references), signed or not.
        for table, cond in row_rules(version):
            bad = conn.execute(f"SELECT 1 FROM {table} WHERE {cond} LIMIT 1").fetchone()
            if bad is not None:
                raise self._corrupt(f"a row of table {table} has a value of the wrong type or range")
        big = conn.execute("SELECT key FROM meta WHERE length(value) > ? LIMIT 1", (_MAX_META,)).fetchone()
        if big is not None:
            raise self._corrupt(f"meta {str(big[0])[:40]} is too large")

        self.meta = {
            k: self._decode_meta(k, v) for k, v in raw_meta.items() if k != "signature"
        }
        for k, v in self.meta.items():
            check_type = _META_TYPES.get(k)
            if check_type is not None and not check_type(v):
                raise self._corrupt(f"meta {k} has the wrong type")
        self.functions = {
            row[0]: Function(*row) for row in conn.execute(
                f"SELECT {', '.join(Function._fields)} FROM functions ORDER BY fid")
        }
        cols = Thread._fields if version >= 4 else Thread._fields[:5] + ("0",)
        self.threads = [
            Thread(*row) for row in conn.execute(
                f"SELECT {', '.join(cols)} FROM threads ORDER BY thread_idx")
        ]
        if version >= 4:
            self.processes = [Process(*row) for row in conn.execute(
                f"SELECT {', '.join(Process._fields)} FROM processes ORDER BY proc_idx")]
            for p in self.processes:
                for text, what in ((p.command, "command"), (p.info, "info")):
                    if text is not None and not self._json_ok(text, list if what == "command" else dict):
                        raise self._corrupt(f"process {p.proc_idx} has a {what} that is not valid")
        else:  # one process: what meta says of it
            m = self.meta
            self.processes = [Process(0, m.get("pid") if _is_int(m.get("pid")) else None, None,
                                      json.dumps(m.get("command") or []), m.get("start_time"), m.get("end_time"),
                                      m.get("exit_status"), m.get("stopped_by"), 0, None)]

    @staticmethod
    def _json_ok(text: str, kind: type) -> bool:
        try:
            v = json.loads(text)
        except (ValueError, RecursionError):
            return False
        return isinstance(v, kind) and (kind is not list or all(isinstance(x, str) for x in v))

    def process_of(self, thread_idx: int) -> Process:
        """The process a thread ran in."""
        procs = {p.proc_idx: p for p in self.processes}
        for t in self.threads:
            if t.thread_idx == thread_idx:
                return procs.get(t.proc_idx, self.processes[0])
        return self.processes[0]

    def find_processes(self, pid: int) -> List[Process]:
        """The processes with this pid (a pid may be reused during a long run)."""
        return [p for p in self.processes if p.pid == pid]

    def _signature_ok(self, conn: sqlite3.Connection, version: int, sig_raw: Any) -> bool:
        digest = compute_digest(conn, version)
        sig = self._decode_meta("signature", sig_raw)
        return signing.verify(digest, sig)

    def _foreign_objects(self, objs: List[Any]) -> TraceError:
        shown = ", ".join(f"{o[0]} {str(o[1])[:40]!r}" for o in objs[:3]) + (", ..." if len(objs) > 3 else "")
        return TraceError(
            f"retracer: {self.path} holds database objects retracer does not write ({shown}): it was "
            f"changed after it was written, and is refused even with --trust; trace the program again"
        )

    def _decode_meta(self, key: str, value: Any, foreign: bool = False) -> Any:
        if value is None:
            if foreign:
                raise self._foreign("an SQLite database of another kind")
            raise self._corrupt(f"meta {key} is missing")
        try:
            if not isinstance(value, str):
                raise ValueError("not text")
            return json.loads(value)
        except (ValueError, RecursionError):
            if foreign:
                raise self._foreign("an SQLite database of another kind") from None
            raise self._corrupt(f"meta {key} is not valid JSON") from None

    # -- reading -------------------------------------------------------------

    def _check_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError(f"TraceReader for {self.path} is closed")
        return self._conn

    def _rows(self, sql: str, params: tuple = ()) -> Iterator[tuple]:
        conn = self._check_open()
        try:
            cur = conn.execute(sql, params)
            while True:
                row = cur.fetchone()
                if row is None:
                    break
                yield row
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            # (sqlite3 raises UnicodeDecodeError for an error message of a damaged
            # file that is not UTF-8)
            raise self._corrupt(_reason(exc)) from None

    def select_processes(self, procs: Optional[Iterable[int]]) -> None:
        """From now on the profile (func_stats, edge_stats) and the threads are those
        of the processes (proc_idx) ``procs`` only (None: all)."""
        self._selected = None if procs is None else sorted({int(p) for p in procs})
        if self._selected is not None:
            self.threads = [t for t in self.threads if t.proc_idx in self._selected]

    def _procs_sql(self, procs: Optional[Iterable[int]]) -> Optional[str]:
        if procs is None:
            procs = getattr(self, "_selected", None)
        if procs is None:
            return None
        ids = sorted({int(p) for p in procs})
        return "(" + ", ".join(str(i) for i in ids) + ")" if ids else "(-1)"

    def func_stats(self, procs: Optional[Iterable[int]] = None) -> List[FuncStat]:
        """Per-function profile rows (:class:`FuncStat`), in fid order: of every
        process, or summed over the processes (proc_idx) ``procs``."""
        where = self._procs_sql(procs)
        procs = procs if procs is not None else getattr(self, "_selected", None)
        if where is None:
            return [FuncStat(*r) for r in self._rows(
                f"SELECT {', '.join(FuncStat._fields)} FROM func_stats ORDER BY fid")]
        if self.version < 4:
            return self.func_stats() if 0 in {int(p) for p in procs or ()} else []
        return [FuncStat(*r) for r in self._rows(
            "SELECT fid, SUM(calls), SUM(prim_calls), SUM(own_ns), SUM(cum_ns) FROM proc_stats "
            f"WHERE proc_idx IN {where} GROUP BY fid ORDER BY fid")]

    def edge_stats(self, procs: Optional[Iterable[int]] = None) -> List[EdgeStat]:
        """Per caller->callee profile rows (:class:`EdgeStat`), in key order (of
        the processes ``procs`` only, summed, when given)."""
        where = self._procs_sql(procs)
        procs = procs if procs is not None else getattr(self, "_selected", None)
        if where is None:
            return [EdgeStat(*r) for r in self._rows(
                f"SELECT {', '.join(EdgeStat._fields)} FROM edge_stats "
                f"ORDER BY caller_fid, callee_fid")]
        if self.version < 4:
            return self.edge_stats() if 0 in {int(p) for p in procs or ()} else []
        return [EdgeStat(*r) for r in self._rows(
            "SELECT caller_fid, callee_fid, SUM(calls), SUM(prim_calls), SUM(own_ns), SUM(cum_ns) "
            f"FROM proc_edge_stats WHERE proc_idx IN {where} GROUP BY caller_fid, callee_fid "
            "ORDER BY caller_fid, callee_fid")]

    def process_totals(self) -> Dict[int, Dict[str, int]]:
        """Per process (proc_idx): {calls, own_ns} summed over its functions."""
        out: Dict[int, Dict[str, int]] = {p.proc_idx: {"calls": 0, "own_ns": 0} for p in self.processes}
        if self.version < 4:
            out[0] = {"calls": sum(f.calls for f in self.func_stats()),
                      "own_ns": sum(f.own_ns for f in self.func_stats())}
            return out
        for proc, calls, own in self._rows(
                "SELECT proc_idx, SUM(calls), SUM(own_ns) FROM proc_stats GROUP BY proc_idx"):
            out[proc] = {"calls": calls or 0, "own_ns": own or 0}
        return out

    def iter_chunks(self, thread_idx: int) -> Iterator[bytes]:
        """Yield the decompressed call-stream chunks of ``thread_idx`` in seq order."""
        for seq, codec, raw_size, data in self._rows(
                "SELECT seq, codec, raw_size, data FROM chunks WHERE thread_idx = ? "
                "ORDER BY seq", (thread_idx,)):
            if data is None:
                data = b""
            if codec == "zlib":
                raw = self._inflate(bytes(data), raw_size, MAX_CHUNK_BYTES,
                                    f"chunk {seq} of thread {thread_idx}")
            elif codec == "raw":
                raw = bytes(data)
            else:
                raise self._corrupt(
                    f"chunk {seq} of thread {thread_idx} has unknown codec {codec!r}")
            if raw_size is not None and len(raw) != raw_size:
                raise self._corrupt(
                    f"chunk {seq} of thread {thread_idx} has {len(raw)} bytes, "
                    f"expected {raw_size}")
            yield raw

    def iter_chunk_rows(self, thread_idx: int) -> Iterator[tuple]:
        """(seq, decompressed bytes, n_events) of ``thread_idx``'s chunks, in seq order."""
        rows = self._rows("SELECT seq, n_events FROM chunks WHERE thread_idx = ? ORDER BY seq", (thread_idx,))
        for (seq, n_events), raw in zip(list(rows), self.iter_chunks(thread_idx)):
            yield seq, raw, n_events

    def iter_stored_chunk_rows(self, thread_idx: int) -> Iterator[tuple]:
        """(seq, codec, n_events, raw_size, data) of ``thread_idx``'s chunks as stored, in seq order."""
        return self._rows("SELECT seq, codec, n_events, raw_size, data FROM chunks WHERE thread_idx = ? "
                          "ORDER BY seq", (thread_idx,))

    def iter_blob_rows(self) -> Iterator[tuple]:
        """The stored values as stored: (key, codec, size, data) (none before version 2)."""
        if self.version == 1:
            return iter(())
        return self._rows("SELECT key, codec, size, data FROM blobs ORDER BY key")

    def _inflate(self, data: bytes, size: Any, cap: int, what: str) -> bytes:
        """zlib-decompress ``data``, never to more than the ``size`` it claims (at most ``cap``)."""
        limit = size if isinstance(size, int) and 0 <= size <= cap else cap
        try:
            d = zlib.decompressobj()
            out = d.decompress(data, limit + 1)
            if len(out) > limit or d.unconsumed_tail:
                raise self._corrupt(f"{what} decompresses to more than its size")
            out += d.flush()
            if not d.eof:
                raise self._corrupt(f"{what}: incomplete zlib data")
        except (zlib.error, MemoryError, OverflowError, ValueError) as exc:
            raise self._corrupt(f"{what}: {_reason(exc)}") from None
        return out

    def iter_captured(self, values: bool = True) -> Iterator[CapturedCall]:
        """Yield the captured calls (:class:`CapturedCall`) in call_id order, their
        values as stored bytes (pickles); with ``values=False``, as stored in the
        row (keys of :meth:`blob`, which also accepts a version 1 row's bytes).
        ``info`` is NULL or the text of a JSON object."""
        cols = ", ".join(CapturedCall._fields)
        if self.version == 1 or not values:
            for row in self._rows(f"SELECT {cols} FROM captured_calls ORDER BY call_id"):
                c = CapturedCall(*row)
                self._check_info(c)
                yield c
            return
        for row in self._rows(f"SELECT {cols} FROM captured_calls ORDER BY call_id"):
            c = CapturedCall(*row)
            self._check_info(c)
            yield c._replace(args=self.blob(c.args), result=self.blob(c.result),
                             exception=self.blob(c.exception), args_after=self.blob(c.args_after))

    def _check_info(self, c: CapturedCall) -> None:
        if c.info is None:
            return
        try:
            ok = isinstance(json.loads(c.info), dict)
        except (ValueError, RecursionError):
            ok = False
        if not ok:
            raise self._corrupt(f"captured call {c.call_id} has an info that is not a JSON object")

    def blob(self, key: Optional[bytes]) -> Optional[bytes]:
        """The captured value stored under ``key`` (None for None), checked against
        its key (the key is the value's content address)."""
        if key is None:
            return None
        if self.version == 1:
            return bytes(key)
        key = bytes(key)
        for codec, size, data in self._rows("SELECT codec, size, data FROM blobs WHERE key = ?", (key,)):
            data = bytes(data or b"")
            if codec == "zlib":
                data = self._inflate(data, size, MAX_BLOB_BYTES, "a stored value")
            elif codec != "raw":
                raise self._corrupt(f"a stored value has unknown codec {codec!r}")
            if size is not None and len(data) != size:
                raise self._corrupt("a stored value has the wrong size")
            if hashlib.blake2b(data, digest_size=16).digest() != key:
                raise self._corrupt("a stored value does not match its key")
            return data
        raise self._corrupt("a captured call refers to a value that is not stored")

    def capture_stats(self) -> List[CaptureStat]:
        """What capture did per function (empty for version 1 traces)."""
        if self.version == 1:
            return []
        return [CaptureStat(*r) for r in self._rows(
            f"SELECT {', '.join(CaptureStat._fields)} FROM capture_stats ORDER BY fid")]

    def captured_counts(self) -> Dict[int, Dict[str, int]]:
        """Number of captured calls per function and status: fid -> {status: n}
        (no blob is read)."""
        out: Dict[int, Dict[str, int]] = {}
        for fid, status, n in self._rows(
                "SELECT fid, status, COUNT(*) FROM captured_calls GROUP BY fid, status"):
            out.setdefault(fid, {})[status or "?"] = n
        return out

    def close(self) -> None:
        """Close the file.  Idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> "TraceReader":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


