"""Writing trace files: atomically (a private temporary file, signed, then moved
into place), mode 0600."""
from __future__ import annotations

import json
import os
import secrets
import sqlite3
import zlib
from typing import Any, Iterable, NoReturn, Optional

from ..errors import TraceError
from . import signing
from .digest import compute_digest
from .schema import _RESERVED_META, _ZLIB_LEVEL, FORMAT_NAME, SCHEMA_VERSION, schema_objects, schema_sql
from .tempdir import RunDir, check_writable_dir, clean_stale_siblings, move_into_place

def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text or exc.__class__.__name__


def _meta_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)



class TraceWriter:
    """Write a trace file atomically.

    The data goes to a private temporary file (mode 0600) in this process's run
    directory (``tmp_dir``, default a new :class:`~.tempdir.RunDir`, see
    :mod:`.tempdir`); :meth:`commit` signs it and moves it into place, so the
    destination only ever holds a complete, signed trace.  Used as a context manager,
    it commits when the block succeeds and aborts (removing the temporary file) when
    it raises.

    Any error while writing raises :class:`TraceError` and aborts the write (the
    temporary file is removed); the writer is then closed.
    """

    def __init__(self, path: "str | os.PathLike[str]", tmp_dir: Optional[str] = None) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self._pid = os.getpid()
        self._conn: Optional[sqlite3.Connection] = None
        self._tmp: Optional[str] = None
        self._rundir: Optional[RunDir] = None
        self._done = False
        self._shown = shown = os.fspath(path)
        directory = os.path.dirname(self.path)
        if os.path.isdir(self.path):
            raise TraceError(
                f"retracer: cannot write trace {shown}: it is a directory; "
                f"give a file name (-o FILE)"
            )
        if not os.path.isdir(directory):
            problem = ("is not a directory" if os.path.exists(directory)
                       else "does not exist")
            raise TraceError(
                f"retracer: cannot write trace {shown}: {directory} {problem}; "
                f"create that directory or choose another output file (-o FILE)"
            )
        # Fail early (before the traced program runs) if the key is unusable.
        self._key = signing.get_key()
        problem = check_writable_dir(self.path)
        if problem:
            raise TraceError(
                f"retracer: cannot write trace {shown}: {problem}; choose a writable "
                f"location (-o FILE)"
            )
        clean_stale_siblings(self.path)
        try:
            if tmp_dir is None:
                self._rundir = RunDir()
                tmp_dir = self._rundir.path
            tmp = os.path.join(tmp_dir, f"{os.path.basename(self.path)}.tmp-{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        except OSError as exc:
            if self._rundir is not None:
                self._rundir.close()
            raise TraceError(
                f"retracer: cannot write trace {shown}: cannot create a temporary file "
                f"({_reason(exc)}); set RETRACER_TMPDIR to a writable directory"
            ) from None
        self._tmp = tmp
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            self._conn = conn
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("PRAGMA page_size=16384")
            conn.execute("PRAGMA trusted_schema=OFF")
            conn.execute("BEGIN")
        except sqlite3.Error as exc:
            self._fail(exc)
        self._run(self._create_schema)

    # -- internals -----------------------------------------------------------

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        for stmt in schema_sql(SCHEMA_VERSION).split(";"):
            if stmt.strip():
                conn.execute(stmt)
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("format", _meta_json(FORMAT_NAME)),
             ("schema_version", _meta_json(SCHEMA_VERSION))],
        )

    def _fail(self, exc: BaseException) -> NoReturn:
        self.abort()
        raise TraceError(
            f"retracer: could not write trace {self._shown} ({_reason(exc)}); check "
            f"that the disk is not full and the directory is writable, then trace "
            f"the program again"
        ) from None

    def _check_open(self) -> sqlite3.Connection:
        if self._done or self._conn is None:
            raise ValueError(f"TraceWriter for {self.path} is already closed")
        if os.getpid() != self._pid:
            raise ValueError("TraceWriter cannot be used in a forked child process")
        return self._conn

    def _run(self, fn, *args) -> None:
        conn = self._check_open()
        try:
            fn(conn, *args)
        except (sqlite3.Error, OSError, zlib.error, MemoryError, OverflowError) as exc:
            self._fail(exc)

    # -- public API ----------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        """Set the metadata ``key`` to the JSON-able ``value`` (stored JSON-encoded).

        ``format``, ``schema_version`` and ``signature`` are set by the writer.
        """
        if key in _RESERVED_META:
            raise ValueError(f"meta key {key!r} is set by TraceWriter itself")
        text = _meta_json(value)  # TypeError/ValueError if not JSON-able
        self._run(lambda c: c.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (str(key), text)))

    def add_functions(self, rows: Iterable[tuple]) -> None:
        """Add rows ``(fid, kind, name, qualname, module, filename, firstlineno, flags)``."""
        self._run(lambda c: c.executemany(
            "INSERT INTO functions VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows))

    def add_threads(self, rows: Iterable[tuple]) -> None:
        """Add rows ``(thread_idx, ident, native_id, name, n_events[, proc_idx])``
        (proc_idx 0, the root process, when left out)."""
        self._run(lambda c: c.executemany(
            "INSERT INTO threads VALUES (?, ?, ?, ?, ?, ?)",
            (tuple(r) if len(r) >= 6 else tuple(r) + (0,) for r in rows)))

    def add_processes(self, rows: Iterable[tuple]) -> None:
        """Add rows in ``processes`` column order (see :class:`~.schema.Process`)."""
        self._run(lambda c: c.executemany(
            "INSERT INTO processes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows))

    def add_proc_stats(self, rows: Iterable[tuple]) -> None:
        """Add rows ``(proc_idx, fid, calls, prim_calls, own_ns, cum_ns)``."""
        self._run(lambda c: c.executemany(
            "INSERT INTO proc_stats VALUES (?, ?, ?, ?, ?, ?)", rows))

    def add_proc_edge_stats(self, rows: Iterable[tuple]) -> None:
        """Add rows ``(proc_idx, caller_fid, callee_fid, calls, prim_calls, own_ns, cum_ns)``."""
        self._run(lambda c: c.executemany(
            "INSERT INTO proc_edge_stats VALUES (?, ?, ?, ?, ?, ?, ?)", rows))

    def add_chunk(self, thread_idx: int, seq: int, raw: bytes, n_events: int,
                  codec: str = "raw") -> None:
        """Add chunk ``seq`` of thread ``thread_idx``'s encoded call stream.

        ``codec`` ``'raw'`` (the default: the encoding is already compact, ~4 bytes
        per call, and compressing it would cost about as much as tracing) stores
        the bytes as they are; ``'zlib'`` compresses them (level 1).
        """
        if codec not in ("raw", "zlib"):
            raise ValueError(f"unknown chunk codec {codec!r}")

        def do(c: sqlite3.Connection) -> None:
            data = zlib.compress(raw, _ZLIB_LEVEL) if codec == "zlib" else bytes(raw)
            c.execute(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?)",
                (thread_idx, seq, codec, n_events, len(raw), data),
            )
        self._run(do)

    def add_stored_chunk(self, thread_idx: int, seq: int, data: bytes, n_events: int, raw_size: int,
                         codec: str) -> None:
        """Add a chunk already in its stored form (the spool's: compressed by the
        engine's spool writer, or raw)."""
        if codec not in ("raw", "zlib"):
            raise ValueError(f"unknown chunk codec {codec!r}")
        self._run(lambda c: c.execute("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?)",
                                      (thread_idx, seq, codec, n_events, raw_size, bytes(data))))

    def add_func_stats(self, rows: Iterable[tuple]) -> None:
        """Add rows ``(fid, calls, prim_calls, own_ns, cum_ns)``."""
        self._run(lambda c: c.executemany(
            "INSERT INTO func_stats VALUES (?, ?, ?, ?, ?)", rows))

    def add_edge_stats(self, rows: Iterable[tuple]) -> None:
        """Add rows ``(caller_fid, callee_fid, calls, prim_calls, own_ns, cum_ns)``.

        ``caller_fid`` is -1 (:data:`NO_CALLER`) for calls with no traced caller.
        """
        self._run(lambda c: c.executemany(
            "INSERT INTO edge_stats VALUES (?, ?, ?, ?, ?, ?)", rows))

    def add_blobs(self, rows: Iterable[tuple]) -> None:
        """Add distinct captured values ``(key, data)``: stored once; data of 4 KiB
        or more compressed with zlib (level 1) when that saves space."""
        def do(c: sqlite3.Connection) -> None:
            out = []
            for key, data in rows:
                codec = "raw"
                if len(data) >= 4096:
                    z = zlib.compress(data, _ZLIB_LEVEL)
                    if len(z) < len(data) * 0.9:
                        codec, stored = "zlib", z
                    else:
                        stored = data
                else:
                    stored = data
                out.append((bytes(key), codec, len(data), stored))
                if len(out) >= 256:
                    c.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?, ?)", out)
                    out = []
            if out:
                c.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?, ?)", out)
        self._run(do)

    def add_blob_rows(self, rows: Iterable[tuple]) -> None:
        """Add stored values as another trace stored them: (key, codec, size, data)."""
        def do(c: sqlite3.Connection) -> None:
            batch = []
            for r in rows:
                batch.append(tuple(r))
                if len(batch) >= 256:
                    c.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?, ?)", batch)
                    batch = []
            if batch:
                c.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?, ?)", batch)
        self._run(do)

    def add_capture_stats(self, rows: Iterable[tuple]) -> None:
        """Add rows ``(fid, kept, capture_ns, bytes, stopped)``."""
        self._run(lambda c: c.executemany(
            "INSERT INTO capture_stats VALUES (?, ?, ?, ?, ?)", rows))

    def add_captured(self, rows: Iterable[tuple]) -> None:
        """Add rows in ``captured_calls`` column order (see :class:`CapturedCall`);
        ``args``, ``result``, ``exception`` and ``args_after`` are keys of
        :meth:`add_blobs` values."""
        self._run(lambda c: c.executemany(
            "INSERT INTO captured_calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows))

    def commit(self) -> str:
        """Sign the trace, flush it to disk and move it into place.

        Returns the final (absolute) path.  Raises TraceError (and removes the
        temporary file) if anything fails.
        """
        conn = self._check_open()
        tmp = self._tmp
        assert tmp is not None
        try:
            # a trace written without a processes table is one process's: the root's
            if conn.execute("SELECT COUNT(*) FROM processes").fetchone()[0] == 0:
                conn.execute("INSERT INTO processes VALUES (0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL)")
                conn.execute("INSERT INTO proc_stats SELECT 0, * FROM func_stats")
                conn.execute("INSERT INTO proc_edge_stats SELECT 0, * FROM edge_stats")
            conn.execute("COMMIT")
            objects = set(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
            if objects != schema_objects(SCHEMA_VERSION):
                raise sqlite3.DatabaseError("the schema is not retracer's")
            digest = compute_digest(conn)
            sig = signing.sign(digest, self._key)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('signature', ?)",
                (_meta_json(sig),),
            )
            conn.close()
            self._conn = None
            move_into_place(tmp, self.path)
        except (sqlite3.Error, OSError, MemoryError) as exc:
            self._fail(exc)
        self._done = True
        self._tmp = None
        if self._rundir is not None:
            self._rundir.close()
        return self.path

    def abort(self) -> None:
        """Discard the trace: close and remove the temporary file.  Idempotent."""
        if os.getpid() != self._pid:
            return  # a forked child must not delete its parent's file
        self._done = True
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        rd, self._rundir = self._rundir, None
        if rd is not None:
            rd.close()

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if not self._done:
                self.commit()
        else:
            self.abort()
