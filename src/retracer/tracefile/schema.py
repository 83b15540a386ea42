"""The trace file's schema (SQLite, version 4; docs/trace-format.md): table
definitions, row types, function flag bits, the fixed table order the
digest (and so the signature) covers, the exact set of database objects a
trace may hold, and the type rules every row must follow."""
from __future__ import annotations

import sqlite3
from typing import Dict, FrozenSet, NamedTuple, Optional, Tuple

SCHEMA_VERSION = 4
#: versions this retracer reads (1: values stored inline in captured_calls;
#: 2: the tables of 3, with a digest that does not cover the schema;
#: 3: one process, no processes table)
READABLE_VERSIONS = (1, 2, 3, 4)
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
    proc_idx: int = 0  # the process it ran in (processes.proc_idx); 0 before version 4


class Process(NamedTuple):
    """One process of the traced program (version 4; older traces: one, made from meta)."""
    proc_idx: int               # 0: the root process, then in order of start
    pid: Optional[int]
    ppid: Optional[int]         # the parent's pid (None: unknown)
    command: Optional[str]      # JSON list: its command line
    start_time: Optional[float]  # Unix time tracing began in it
    end_time: Optional[float]    # Unix time tracing ended (None: it never said)
    exit_status: Optional[int]   # as its parent saw it when known: n, or -signal
    ended: Optional[str]         # end, exit, exception, signal, timeout; running (outlived the root),
                                 # lost (died before its part was written: crashed or killed)
    t0_ns: int                  # its call stream's times are ns since the root's origin (shifted by this)
    info: Optional[str]         # JSON object: calls_total, note, ...


class ProcFuncStat(NamedTuple):
    proc_idx: int
    fid: int
    calls: int
    prim_calls: int
    own_ns: int
    cum_ns: int


class ProcEdgeStat(NamedTuple):
    proc_idx: int
    caller_fid: int
    callee_fid: int
    calls: int
    prim_calls: int
    own_ns: int
    cum_ns: int


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
# version 4: threads belong to processes; the profile per process too
_THREADS_V4 = """CREATE TABLE threads (thread_idx INTEGER PRIMARY KEY, ident INTEGER,
    native_id INTEGER, name TEXT, n_events INTEGER, proc_idx INTEGER NOT NULL)"""
_SCHEMA_V4_EXTRA = """
CREATE TABLE processes (proc_idx INTEGER PRIMARY KEY, pid INTEGER, ppid INTEGER, command TEXT,
    start_time REAL, end_time REAL, exit_status INTEGER, ended TEXT, t0_ns INTEGER, info TEXT);
CREATE TABLE proc_stats (proc_idx INTEGER, fid INTEGER, calls INTEGER, prim_calls INTEGER,
    own_ns INTEGER, cum_ns INTEGER, PRIMARY KEY (proc_idx, fid));
CREATE TABLE proc_edge_stats (proc_idx INTEGER, caller_fid INTEGER, callee_fid INTEGER, calls INTEGER,
    prim_calls INTEGER, own_ns INTEGER, cum_ns INTEGER, PRIMARY KEY (proc_idx, caller_fid, callee_fid));
"""

# (table, columns, ORDER BY) in the fixed digest order; ORDER BY is the primary key.
_TABLES: Tuple[Tuple[str, Tuple[str, ...], str], ...] = (
    ("meta", ("key", "value"), "key"),
    ("functions", Function._fields, "fid"),
    ("threads", Thread._fields[:5], "thread_idx"),
    ("chunks", ("thread_idx", "seq", "codec", "n_events", "raw_size", "data"),
     "thread_idx, seq"),
    ("func_stats", FuncStat._fields, "fid"),
    ("edge_stats", EdgeStat._fields, "caller_fid, callee_fid"),
    ("captured_calls", CapturedCall._fields, "call_id"),
    ("blobs", ("key", "codec", "size", "data"), "key"),
    ("capture_stats", CaptureStat._fields, "fid"),
)
#: the tables of version 1
_TABLES_V1 = _TABLES[:7]
#: version 4: threads with their process, then the process tables
_TABLES_V4 = (_TABLES[:2] + (("threads", Thread._fields, "thread_idx"),) + _TABLES[3:] + (
    ("processes", Process._fields, "proc_idx"),
    ("proc_stats", ProcFuncStat._fields, "proc_idx, fid"),
    ("proc_edge_stats", ProcEdgeStat._fields, "proc_idx, caller_fid, callee_fid"),
))
_TABLE_NAMES = tuple(t[0] for t in _TABLES_V4)


def tables_of(version: int) -> Tuple[Tuple[str, Tuple[str, ...], str], ...]:
    """The tables (digest order) of a trace of schema ``version``."""
    return _TABLES_V1 if version == 1 else _TABLES_V4 if version >= 4 else _TABLES


def schema_sql(version: int) -> str:
    """The CREATE statements of a trace of schema ``version``."""
    stmts = [st.strip() for st in _SCHEMA.split(";") if st.strip()]
    if version == 1:
        stmts = stmts[:7]
    elif version >= 4:
        stmts[2] = _THREADS_V4
        stmts += [st.strip() for st in _SCHEMA_V4_EXTRA.split(";") if st.strip()]
    return ";\n".join(stmts) + ";\n"


#: one database object as sqlite_master describes it: (type, name, tbl_name, sql)
SchemaObject = Tuple[str, str, str, Optional[str]]
_OBJECTS: Dict[int, FrozenSet[SchemaObject]] = {}


def schema_objects(version: int) -> FrozenSet[SchemaObject]:
    """Exactly the database objects (tables and their automatic indexes, with
    the SQL text SQLite stores) a trace of ``version`` holds: what retracer
    creates, read back from a scratch in-memory database."""
    found = _OBJECTS.get(version)
    if found is None:
        conn = sqlite3.connect(":memory:")
        try:
            conn.executescript(schema_sql(version))
            found = frozenset(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
        finally:
            conn.close()
        _OBJECTS[version] = found
    return found


#: the largest call-stream chunk and stored value a reader accepts (decompressed)
MAX_CHUNK_BYTES = 1 << 28
MAX_BLOB_BYTES = 1 << 31
#: integers outside this range are refused where ids and counts are expected
_ID_MAX = (1 << 31) - 1

# Row rules, as SQL conditions that are true for a row that breaks them.
# Every reader checks them, signed trace or not, before anything is read.
_INT = "typeof({c}) <> 'integer'"
_INT_OR_NULL = "({c} IS NOT NULL AND typeof({c}) <> 'integer')"
_TEXT = "typeof({c}) <> 'text'"
_TEXT_OR_NULL = "({c} IS NOT NULL AND typeof({c}) <> 'text')"
_BLOB_OR_NULL = "({c} IS NOT NULL AND typeof({c}) <> 'blob')"
_ID = "(typeof({c}) <> 'integer' OR {c} < 0 OR {c} > %d)" % _ID_MAX
_COUNT = "(typeof({c}) <> 'integer' OR {c} < 0)"
_COUNT_OR_NULL = "({c} IS NOT NULL AND (typeof({c}) <> 'integer' OR {c} < 0))"


def _rule(table: str, **cols: str) -> Tuple[str, str]:
    cond = " OR ".join(tmpl.format(c=c) for c, tmpl in cols.items())
    return table, cond


_FID_KNOWN = "{c} NOT IN (SELECT fid FROM functions)"
_RULES_ALL = (
    _rule("meta", key=_TEXT, value=_TEXT),
    _rule("functions", fid=_ID, kind="({c} IS NOT 'py' AND {c} IS NOT 'c')", name=_TEXT_OR_NULL,
          qualname=_TEXT_OR_NULL, module=_TEXT_OR_NULL, filename=_TEXT_OR_NULL, firstlineno=_INT_OR_NULL,
          flags="(typeof({c}) <> 'integer' OR {c} < 0 OR {c} > 4294967295)"),
    # a Python function always has its names and its file (the C engine reads them from the code object)
    _rule("functions", kind="({c} = 'py' AND (name IS NULL OR qualname IS NULL OR filename IS NULL))"),
    _rule("threads", thread_idx=_ID, ident=_INT_OR_NULL, native_id=_INT_OR_NULL, name=_TEXT_OR_NULL,
          n_events=_COUNT_OR_NULL),
    _rule("chunks", thread_idx=_ID, seq=_ID, codec="({c} IS NOT 'raw' AND {c} IS NOT 'zlib')",
          n_events=_COUNT, raw_size="(typeof({c}) <> 'integer' OR {c} < 0 OR {c} > %d)" % MAX_CHUNK_BYTES,
          data="typeof({c}) NOT IN ('blob', 'null')"),
    _rule("func_stats", fid=_ID, calls=_COUNT, prim_calls=_COUNT, own_ns=_INT, cum_ns=_INT),
    _rule("func_stats", fid=_FID_KNOWN),
    _rule("edge_stats", caller_fid="(typeof({c}) <> 'integer' OR {c} < -1 OR {c} > %d)" % _ID_MAX,
          callee_fid=_ID, calls=_COUNT, prim_calls=_COUNT, own_ns=_INT, cum_ns=_INT),
    _rule("edge_stats", caller_fid="({c} <> -1 AND {c} NOT IN (SELECT fid FROM functions))",
          callee_fid=_FID_KNOWN),
    _rule("captured_calls", call_id=_ID, fid=_ID, thread_idx=_ID, call_no=_COUNT, t_start_ns=_INT,
          duration_ns=_INT_OR_NULL, status=_TEXT_OR_NULL, args=_BLOB_OR_NULL, result=_BLOB_OR_NULL,
          exception=_BLOB_OR_NULL, args_after=_BLOB_OR_NULL, info=_TEXT_OR_NULL),
    _rule("captured_calls", fid=_FID_KNOWN),
)
_RULES_V2 = (
    _rule("blobs", key="(typeof({c}) <> 'blob' OR length({c}) <> 16)",
          codec="({c} IS NOT 'raw' AND {c} IS NOT 'zlib')",
          size="(typeof({c}) <> 'integer' OR {c} < 0 OR {c} > %d)" % MAX_BLOB_BYTES,
          data="typeof({c}) <> 'blob'"),
    _rule("captured_calls", args="({c} IS NOT NULL AND length({c}) <> 16)",
          result="({c} IS NOT NULL AND length({c}) <> 16)", exception="({c} IS NOT NULL AND length({c}) <> 16)",
          args_after="({c} IS NOT NULL AND length({c}) <> 16)"),
    _rule("capture_stats", fid=_ID, kept=_COUNT, capture_ns=_INT, bytes=_COUNT, stopped=_TEXT_OR_NULL),
)


_REAL_OR_NULL = "({c} IS NOT NULL AND typeof({c}) NOT IN ('real', 'integer'))"
_PROC_KNOWN = "{c} NOT IN (SELECT proc_idx FROM processes)"
_RULES_V4 = (
    _rule("processes", proc_idx=_ID, pid=_INT_OR_NULL, ppid=_INT_OR_NULL, command=_TEXT_OR_NULL,
          start_time=_REAL_OR_NULL, end_time=_REAL_OR_NULL, exit_status=_INT_OR_NULL,
          ended="({c} IS NOT NULL AND {c} NOT IN ('end', 'exit', 'exception', 'signal', 'timeout', 'running', "
                "'lost'))",
          t0_ns=_COUNT, info=_TEXT_OR_NULL),
    _rule("threads", proc_idx=_ID),
    _rule("threads", proc_idx=_PROC_KNOWN),
    _rule("proc_stats", proc_idx=_ID, fid=_ID, calls=_COUNT, prim_calls=_COUNT, own_ns=_INT, cum_ns=_INT),
    _rule("proc_stats", proc_idx=_PROC_KNOWN, fid=_FID_KNOWN),
    _rule("proc_edge_stats", proc_idx=_ID,
          caller_fid="(typeof({c}) <> 'integer' OR {c} < -1 OR {c} > %d)" % _ID_MAX,
          callee_fid=_ID, calls=_COUNT, prim_calls=_COUNT, own_ns=_INT, cum_ns=_INT),
    _rule("proc_edge_stats", proc_idx=_PROC_KNOWN, callee_fid=_FID_KNOWN,
          caller_fid="({c} <> -1 AND {c} NOT IN (SELECT fid FROM functions))"),
)


def row_rules(version: int) -> Tuple[Tuple[str, str], ...]:
    """(table, SQL condition true for a row that breaks the rules) for ``version``."""
    if version == 1:
        return _RULES_ALL
    return _RULES_ALL + _RULES_V2 + (_RULES_V4 if version >= 4 else ())



def stream_cut_clause(meta: dict):
    """'stopped after 1.2 s at --max-stream-bytes (33,554,432 bytes)' when the trace's
    call stream reached its size cap (``meta.stream_cut``), else None: what every
    reader of the stream says about it, each in its own sentence."""
    cut = meta.get("stream_cut") if isinstance(meta, dict) else None
    if not isinstance(cut, dict):
        return None
    procs = cut.get("processes")
    where = f" in {procs} processes" if isinstance(procs, int) and procs > 1 else ""
    size = f" ({cut['bytes']:,} bytes)" if isinstance(cut.get("bytes"), int) else ""
    return f"stopped after {cut.get('after_s', '?')} s{where} at --max-stream-bytes{size}"
