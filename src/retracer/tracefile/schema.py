"""The trace file's schema (SQLite, version 2; docs/trace-format.md): table
definitions, row types, function flag bits, and the fixed table order the
digest (and so the signature) covers."""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

SCHEMA_VERSION = 2
#: versions this retracer reads (1: values stored inline in captured_calls)
READABLE_VERSIONS = (1, 2)
FORMAT_NAME = "retracer-trace"

# functions.flags bits
FLAG_IN_SCOPE = 1
FLAG_IMPORT_MACHINERY = 2
FLAG_MODULE_BODY = 4
FLAG_ONLY_FUNCTIONS = 8
FLAG_GENERATOR = 16
FLAG_C_FUNCTION = 32

# edge_stats.caller_fid for calls with no traced caller
NO_CALLER = -1

_RESERVED_META = ("format", "schema_version", "signature")
_ZLIB_LEVEL = 1

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


class CaptureStat(NamedTuple):
    """What capture did for one function it looked at."""
    fid: int
    kept: int                # calls kept
    capture_ns: int          # time spent capturing them (taken out of the profile)
    bytes: int               # bytes of distinct values they stored
    stopped: Optional[str]   # why capture of this function stopped early, or None


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
CREATE TABLE blobs (key BLOB PRIMARY KEY, codec TEXT, size INTEGER, data BLOB);
CREATE TABLE capture_stats (fid INTEGER PRIMARY KEY, kept INTEGER, capture_ns INTEGER,
    bytes INTEGER, stopped TEXT);
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
    ("blobs", ("key", "codec", "size", "data"), "key"),
    ("capture_stats", CaptureStat._fields, "fid"),
)
_TABLE_NAMES = tuple(t[0] for t in _TABLES)
#: the tables of version 1
_TABLES_V1 = _TABLES[:7]


def tables_of(version: int) -> Tuple[Tuple[str, Tuple[str, ...], str], ...]:
    """The tables (digest order) of a trace of schema ``version``."""
    return _TABLES_V1 if version == 1 else _TABLES

