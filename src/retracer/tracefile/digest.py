"""The content digest of a trace: what its signature covers."""
from __future__ import annotations

import hashlib
import sqlite3
import struct
from typing import Any

from .._engine import encode_rows
from .schema import SCHEMA_VERSION, tables_of

#: tables whose rows hold values up to megabytes
_BIG_ROWS = frozenset({"chunks", "blobs"})

_DIGEST_DOMAIN = b"retracer-trace-digest\x00v1\x00"     # schema versions 1 and 2
_DIGEST_DOMAIN_V2 = b"retracer-trace-digest\x00v2\x00"  # from schema version 3: the schema too
#: the schema section of a v2 digest: every row of sqlite_master
_MASTER = ("sqlite_master", ("type", "name", "tbl_name", "rootpage", "sql"), "type, name")
_Q = struct.Struct(">Q")
_q = struct.Struct(">q")
_d = struct.Struct(">d")


def _encode_value(v: Any) -> bytes:
    """Unambiguous encoding of one SQLite value: type tag + fixed size or length.
    The reference for the C encoder (``_engine.encode_rows``, ext/digest.c) that
    compute_digest uses: b"R" + these, per row."""
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


def compute_digest(conn: sqlite3.Connection, version: int = SCHEMA_VERSION) -> bytes:
    """Return the SHA-256 content digest of the trace open on ``conn``.

    From schema version 3 on, the schema comes first: every row of
    ``sqlite_master`` (type, name, table, root page, SQL text), so a view, trigger
    or index added, or a table redefined, changes the digest.  Then every table of
    the schema (of ``version``) is hashed in a fixed order, rows in primary-key order,
    each value with a type tag and a length, so any change of any row (except the
    ``meta`` row ``signature``, which holds the signature of this digest) changes the
    digest.  Rows are streamed: memory use is one row at a time.  sqlite3 errors
    propagate to the caller.
    """
    sections = tables_of(version)
    if version >= 3:
        h = hashlib.sha256(_DIGEST_DOMAIN_V2)
        sections = (_MASTER,) + tuple(sections)
    else:
        h = hashlib.sha256(_DIGEST_DOMAIN)
    for table, cols, order in sections:
        name = table.encode("ascii")
        h.update(b"T" + _Q.pack(len(name)) + name + _Q.pack(len(cols)))
        where = " WHERE key <> 'signature'" if table == "meta" else ""
        sql = f"SELECT {', '.join(cols)} FROM {table}{where} ORDER BY {order}"
        n = 0
        cur = conn.execute(sql)
        # rows of big values (chunks, blobs) a few at a time, others in hundreds
        batch = 8 if table in _BIG_ROWS else 512
        try:
            while True:
                rows = cur.fetchmany(batch)
                if not rows:
                    break
                h.update(encode_rows(rows))
                n += len(rows)
        finally:
            cur.close()
        h.update(b"E" + _Q.pack(n))
    return h.digest()

