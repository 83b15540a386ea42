"""Reading and writing retracer trace files (SQLite, schema version 1).

The format is documented in ``docs/trace-format.md``.  In short: one SQLite file with
the tables ``meta``, ``functions``, ``threads``, ``chunks``, ``func_stats``,
``edge_stats`` and ``captured_calls``; all times are integer nanoseconds; the file is
signed with the user's key (see :mod:`retracer.signing`).

Writing is atomic: :class:`TraceWriter` fills a temporary file in the destination
directory and renames it into place on :meth:`TraceWriter.commit`.  Reading validates
everything first: :class:`TraceReader` (or :func:`open_trace`) raises
:class:`TraceError` -- one line naming the file and saying what to do -- for a missing,
empty, foreign, newer, truncated, corrupt or unsigned file, and never lets a
sqlite3/zlib/OS error escape.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import stat as _stat
import struct
import zlib
from pathlib import Path
from typing import (Any, Dict, Iterable, Iterator, List, NamedTuple, NoReturn, Optional,
                    Tuple)

from . import signing
from .errors import RetracerError

__all__ = [
    "SCHEMA_VERSION",
    "FORMAT_NAME",
    "TraceError",
    "TraceWriter",
    "TraceReader",
    "open_trace",
    "Function",
    "Thread",
    "FuncStat",
    "EdgeStat",
    "CapturedCall",
    "compute_digest",
    "FLAG_IN_SCOPE",
    "FLAG_IMPORT_MACHINERY",
    "FLAG_MODULE_BODY",
    "FLAG_ONLY_FUNCTIONS",
    "FLAG_GENERATOR",
    "NO_CALLER",
]

SCHEMA_VERSION = 1
FORMAT_NAME = "retracer-trace"

# functions.flags bits
FLAG_IN_SCOPE = 1
FLAG_IMPORT_MACHINERY = 2
FLAG_MODULE_BODY = 4
FLAG_ONLY_FUNCTIONS = 8
FLAG_GENERATOR = 16

# edge_stats.caller_fid for calls with no traced caller
NO_CALLER = -1

_RESERVED_META = ("format", "schema_version", "signature")
_ZLIB_LEVEL = 1


class TraceError(RetracerError):
    """A trace file cannot be written or read; the message is one line."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        message = str(message).replace("\r", "\\r").replace("\n", "\\n")
        super().__init__(message, exit_code)


class Function(NamedTuple):
    fid: int
    kind: str  # 'py' or 'c'
    name: Optional[str]
    qualname: Optional[str]
    module: Optional[str]
    filename: Optional[str]
    firstlineno: Optional[int]
    flags: int


class Thread(NamedTuple):
    thread_idx: int
    ident: Optional[int]
    native_id: Optional[int]
    name: Optional[str]
    n_events: Optional[int]


class FuncStat(NamedTuple):
    fid: int
    calls: int
    prim_calls: int
    own_ns: int
    cum_ns: int


class EdgeStat(NamedTuple):
    caller_fid: int
    callee_fid: int
    calls: int
    prim_calls: int
    own_ns: int
    cum_ns: int


class CapturedCall(NamedTuple):
    call_id: int
    fid: int
    thread_idx: int
    call_no: int
    t_start_ns: int
    duration_ns: Optional[int]
    status: Optional[str]
    args: Optional[bytes]
    result: Optional[bytes]
    exception: Optional[bytes]
    args_after: Optional[bytes]
    info: Optional[str]


_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE functions (fid INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT,
    qualname TEXT, module TEXT, filename TEXT, firstlineno INTEGER, flags INTEGER);
CREATE TABLE threads (thread_idx INTEGER PRIMARY KEY, ident INTEGER,
    native_id INTEGER, name TEXT, n_events INTEGER);
CREATE TABLE chunks (thread_idx INTEGER, seq INTEGER, codec TEXT, n_events INTEGER,
    raw_size INTEGER, data BLOB, PRIMARY KEY (thread_idx, seq));
CREATE TABLE func_stats (fid INTEGER PRIMARY KEY, calls INTEGER, prim_calls INTEGER,
    own_ns INTEGER, cum_ns INTEGER);
CREATE TABLE edge_stats (caller_fid INTEGER, callee_fid INTEGER, calls INTEGER,
    prim_calls INTEGER, own_ns INTEGER, cum_ns INTEGER,
    PRIMARY KEY (caller_fid, callee_fid));
CREATE TABLE captured_calls (call_id INTEGER PRIMARY KEY, fid INTEGER,
    thread_idx INTEGER, call_no INTEGER, t_start_ns INTEGER, duration_ns INTEGER,
    status TEXT, args BLOB, result BLOB, exception BLOB, args_after BLOB, info TEXT);
"""

# (table, columns, ORDER BY) in the fixed digest order; ORDER BY is the primary key.
_TABLES: Tuple[Tuple[str, Tuple[str, ...], str], ...] = (
    ("meta", ("key", "value"), "key"),
    ("functions", Function._fields, "fid"),
    ("threads", Thread._fields, "thread_idx"),
    ("chunks", ("thread_idx", "seq", "codec", "n_events", "raw_size", "data"),
     "thread_idx, seq"),
    ("func_stats", FuncStat._fields, "fid"),
    ("edge_stats", EdgeStat._fields, "caller_fid, callee_fid"),
    ("captured_calls", CapturedCall._fields, "call_id"),
)
_TABLE_NAMES = tuple(t[0] for t in _TABLES)

_DIGEST_DOMAIN = b"retracer-trace-digest\x00v1\x00"
_Q = struct.Struct(">Q")
_q = struct.Struct(">q")
_d = struct.Struct(">d")


def _encode_value(v: Any) -> bytes:
    """Unambiguous encoding of one SQLite value: type tag + fixed size or length."""
    if v is None:
        return b"N"
    if isinstance(v, int):
        return b"I" + _q.pack(v)
    if isinstance(v, float):
        return b"F" + _d.pack(v)
    if isinstance(v, str):
        b = v.encode("utf-8", "surrogatepass")
        return b"S" + _Q.pack(len(b)) + b
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        return b"B" + _Q.pack(len(b)) + b
    raise TypeError(f"unexpected SQLite value type {type(v).__name__}")


def compute_digest(conn: sqlite3.Connection) -> bytes:
    """Return the SHA-256 content digest of the trace open on ``conn``.

    Every table of the schema is hashed in a fixed order, rows in primary-key order,
    each value with a type tag and a length, so any change of any row (except the
    ``meta`` row ``signature``, which holds the signature of this digest) changes the
    digest.  Rows are streamed: memory use is one row at a time.  sqlite3 errors
    propagate to the caller.
    """
    h = hashlib.sha256(_DIGEST_DOMAIN)
    for table, cols, order in _TABLES:
        name = table.encode("ascii")
        h.update(b"T" + _Q.pack(len(name)) + name + _Q.pack(len(cols)))
        where = " WHERE key <> 'signature'" if table == "meta" else ""
        sql = f"SELECT {', '.join(cols)} FROM {table}{where} ORDER BY {order}"
        n = 0
        cur = conn.execute(sql)
        try:
            for row in cur:
                h.update(b"R")
                for v in row:
                    if isinstance(v, bytes) and len(v) > 65536:
                        h.update(b"B" + _Q.pack(len(v)))
                        h.update(v)
                    else:
                        h.update(_encode_value(v))
                n += 1
        finally:
            cur.close()
        h.update(b"E" + _Q.pack(n))
    return h.digest()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text or exc.__class__.__name__


def _meta_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class TraceWriter:
    """Write a trace file atomically.

    The data goes to a temporary file ``.<name>.tmp-<pid>-<random>`` in the
    destination directory; :meth:`commit` signs it and renames it into place, so the
    destination only ever holds a complete, signed trace.  Used as a context manager,
    it commits when the block succeeds and aborts (removing the temporary file) when
    it raises.

    Any error while writing raises :class:`TraceError` and aborts the write (the
    temporary file is removed); the writer is then closed.
    """

    def __init__(self, path: "str | os.PathLike[str]") -> None:
        self.path = os.path.abspath(os.fspath(path))
        self._pid = os.getpid()
        self._conn: Optional[sqlite3.Connection] = None
        self._tmp: Optional[str] = None
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
        base = os.path.basename(self.path)
        tmp = os.path.join(
            directory, f".{base}.tmp-{self._pid}-{secrets.token_hex(4)}"
        )
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            os.close(fd)
        except OSError as exc:
            raise TraceError(
                f"retracer: cannot write trace {shown}: cannot create a file in "
                f"directory {directory} ({_reason(exc)}); choose a writable "
                f"location (-o FILE)"
            ) from None
        self._tmp = tmp
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            self._conn = conn
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("PRAGMA page_size=16384")
            conn.execute("BEGIN")
        except sqlite3.Error as exc:
            self._fail(exc)
        self._run(self._create_schema)

    # -- internals -----------------------------------------------------------

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        for stmt in _SCHEMA.split(";"):
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
        """Add rows ``(thread_idx, ident, native_id, name, n_events)``."""
        self._run(lambda c: c.executemany(
            "INSERT INTO threads VALUES (?, ?, ?, ?, ?)", rows))

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

    def add_captured(self, rows: Iterable[tuple]) -> None:
        """Add rows in ``captured_calls`` column order (see :class:`CapturedCall`)."""
        self._run(lambda c: c.executemany(
            "INSERT INTO captured_calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows))

    def commit(self) -> str:
        """Sign the trace, flush it to disk and rename it into place.

        Returns the final (absolute) path.  Raises TraceError (and removes the
        temporary file) if anything fails.
        """
        conn = self._check_open()
        tmp = self._tmp
        assert tmp is not None
        try:
            conn.execute("COMMIT")
            digest = compute_digest(conn)
            sig = signing.sign(digest, self._key)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('signature', ?)",
                (_meta_json(sig),),
            )
            conn.close()
            self._conn = None
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            if os.path.isdir(self.path):
                raise IsADirectoryError(21, "Is a directory")
            os.replace(tmp, self.path)
        except (sqlite3.Error, OSError, MemoryError) as exc:
            self._fail(exc)
        self._done = True
        self._tmp = None
        self._fsync_dir()
        return self.path

    def _fsync_dir(self) -> None:
        if os.name != "posix":
            return
        try:
            fd = os.open(os.path.dirname(self.path), os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

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

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if not self._done:
                self.commit()
        else:
            self.abort()


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

    def __init__(self, path: "str | os.PathLike[str]", trust: bool = False) -> None:
        self.path = os.fspath(path)
        self.trust = bool(trust)
        self.verified = False
        self.meta: Dict[str, Any] = {}
        self.functions: Dict[int, Function] = {}
        self.threads: List[Thread] = []
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
        except (zlib.error, MemoryError, OverflowError) as exc:
            raise self._corrupt(_reason(exc)) from None

    def _validate(self, conn: sqlite3.Connection) -> None:
        # Hardening for a file that is not trusted yet (unknown pragmas are no-ops).
        conn.execute("PRAGMA trusted_schema=OFF")
        conn.execute("PRAGMA cell_size_check=ON")
        conn.execute("PRAGMA mmap_size=0")
        # One read transaction for the reader's lifetime: the data read later is the
        # data that was verified (SQLite keeps a shared lock).
        conn.execute("BEGIN")
        tables = {
            r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
        }
        if "meta" not in tables:
            raise self._foreign("an SQLite database without retracer tables")
        raw_meta: Dict[str, Any] = {}
        for key, value in conn.execute("SELECT key, value FROM meta"):
            raw_meta[key] = value
        fmt = self._decode_meta("format", raw_meta.get("format"), foreign=True)
        if fmt != FORMAT_NAME:
            raise self._foreign("an SQLite database of another kind")
        version = self._decode_meta("schema_version", raw_meta.get("schema_version"))
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self._corrupt(f"invalid schema_version {version!r}")
        if version > SCHEMA_VERSION:
            raise TraceError(
                f"retracer: {self.path} uses trace schema version {version}, but "
                f"this retracer reads only up to version {SCHEMA_VERSION}; upgrade "
                f"retracer (pip install -U retracer)"
            )
        missing = [t for t in _TABLE_NAMES if t not in tables]
        if missing:
            raise self._corrupt(f"missing table {', '.join(missing)}")
        check = conn.execute("PRAGMA quick_check(1)").fetchone()
        if check is None or check[0] != "ok":
            detail = check[0] if check else "integrity check failed"
            raise self._corrupt(str(detail).splitlines()[0] if detail else "?")

        if not self.trust:
            sig_raw = raw_meta.get("signature")
            if sig_raw is None:
                raise TraceError(
                    f"retracer: {self.path} is not signed, so it may not come from "
                    f"you and loading it would unpickle its data; pass --trust if "
                    f"you trust this file"
                )
            digest = compute_digest(conn)
            sig = self._decode_meta("signature", sig_raw)
            if not signing.verify(digest, sig):
                raise TraceError(
                    f"retracer: {self.path} has a wrong signature (it was made with "
                    f"another user's key, or modified since it was written); loading "
                    f"it would unpickle its data; pass --trust if you trust this file"
                )
            self.verified = True

        self.meta = {
            k: self._decode_meta(k, v) for k, v in raw_meta.items() if k != "signature"
        }
        self.functions = {
            row[0]: Function(*row) for row in conn.execute(
                f"SELECT {', '.join(Function._fields)} FROM functions ORDER BY fid")
        }
        self.threads = [
            Thread(*row) for row in conn.execute(
                f"SELECT {', '.join(Thread._fields)} FROM threads ORDER BY thread_idx")
        ]

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
        except sqlite3.Error as exc:
            raise self._corrupt(_reason(exc)) from None

    def func_stats(self) -> List[FuncStat]:
        """Per-function profile rows (:class:`FuncStat`), in fid order."""
        return [FuncStat(*r) for r in self._rows(
            f"SELECT {', '.join(FuncStat._fields)} FROM func_stats ORDER BY fid")]

    def edge_stats(self) -> List[EdgeStat]:
        """Per caller->callee profile rows (:class:`EdgeStat`), in key order."""
        return [EdgeStat(*r) for r in self._rows(
            f"SELECT {', '.join(EdgeStat._fields)} FROM edge_stats "
            f"ORDER BY caller_fid, callee_fid")]

    def iter_chunks(self, thread_idx: int) -> Iterator[bytes]:
        """Yield the decompressed call-stream chunks of ``thread_idx`` in seq order."""
        for seq, codec, raw_size, data in self._rows(
                "SELECT seq, codec, raw_size, data FROM chunks WHERE thread_idx = ? "
                "ORDER BY seq", (thread_idx,)):
            if data is None:
                data = b""
            if codec == "zlib":
                try:
                    raw = zlib.decompress(data)
                except (zlib.error, MemoryError) as exc:
                    raise self._corrupt(
                        f"chunk {seq} of thread {thread_idx}: {_reason(exc)}") from None
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

    def iter_captured(self) -> Iterator[CapturedCall]:
        """Yield the captured calls (:class:`CapturedCall`) in call_id order."""
        for row in self._rows(
                f"SELECT {', '.join(CapturedCall._fields)} FROM captured_calls "
                f"ORDER BY call_id"):
            yield CapturedCall(*row)

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


def open_trace(path: "str | os.PathLike[str]", trust: bool = False) -> TraceReader:
    """Open and validate a trace file; see :class:`TraceReader`."""
    return TraceReader(path, trust=trust)


def update_captured_status(path: "str | os.PathLike[str]", updates: Dict[int, str],
                           meta: Optional[Dict[str, Any]] = None) -> None:
    """Set ``captured_calls.status`` of some calls (and optionally meta keys) in a
    trace this user signed, and sign it again. The file is rewritten to a
    temporary copy and renamed into place, so it is never half-updated."""
    import shutil

    src = os.path.abspath(os.fspath(path))
    TraceReader(src).close()  # validates and checks the signature first
    d = os.path.dirname(src)
    tmp = os.path.join(d, f".{os.path.basename(src)}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        shutil.copyfile(src, tmp)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("BEGIN")
            conn.executemany("UPDATE captured_calls SET status = ? WHERE call_id = ?",
                             [(s, cid) for cid, s in updates.items()])
            for k, v in (meta or {}).items():
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (k, _meta_json(v)))
            conn.execute("COMMIT")
            sig = signing.sign(compute_digest(conn))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('signature', ?)", (_meta_json(sig),))
        finally:
            conn.close()
        os.replace(tmp, src)
    except (sqlite3.Error, OSError) as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise TraceError(f"retracer: cannot update {src} ({_reason(exc)}); check the file and its directory")
