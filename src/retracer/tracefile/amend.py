"""Amending a trace this user signed: the recording side finishing its own
trace (the stability check marks unstable calls). Readers never write.

The trace is first copied to a private temporary file, and the *copy* is
validated and its signature checked (so what is amended is what was checked:
the original may change meanwhile, the copy cannot). The copy is then opened
with ``trusted_schema=OFF`` -- its schema was just found to be exactly
retracer's, so no trigger or view can run -- updated, checked again, signed
(the signature covers the schema) and moved into place.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
from typing import Any, Dict, Optional

from ..errors import TraceError
from . import signing
from .digest import compute_digest
from .reader import TraceReader
from .schema import schema_objects
from .tempdir import RunDir, move_into_place
from .writer import _meta_json, _reason


def update_captured_status(path: "str | os.PathLike[str]", updates: Dict[int, str],
                           meta: Optional[Dict[str, Any]] = None) -> None:
    """Set ``captured_calls.status`` of some calls (and optionally meta keys) in a
    trace this user signed, and sign it again. The file is rewritten to a
    temporary copy and moved into place, so it is never half-updated."""
    src = os.path.abspath(os.fspath(path))
    try:
        rd = RunDir()
    except OSError as exc:
        raise TraceError(f"retracer: cannot update {src} ({_reason(exc)}); set RETRACER_TMPDIR to a "
                         f"writable directory") from None
    try:
        tmp = os.path.join(rd.path, "amend.trace")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
        except OSError as exc:
            raise TraceError(f"retracer: cannot update {src} ({_reason(exc)}); check the file and its "
                             f"directory") from None
        # validates the copy and checks its signature (one line if anything is wrong)
        with TraceReader(tmp) as r:
            version = r.version
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA trusted_schema=OFF")
                conn.execute("PRAGMA journal_mode=OFF")
                conn.execute("BEGIN")
                conn.executemany("UPDATE captured_calls SET status = ? WHERE call_id = ?",
                                 [(s, cid) for cid, s in updates.items()])
                for k, v in (meta or {}).items():
                    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (k, _meta_json(v)))
                conn.execute("COMMIT")
                objects = set(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
                if objects != schema_objects(version):
                    raise sqlite3.DatabaseError("its schema changed while it was updated")
                sig = signing.sign(compute_digest(conn, version))
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('signature', ?)",
                             (_meta_json(sig),))
            finally:
                conn.close()
            move_into_place(tmp, src)
        except (sqlite3.Error, OSError) as exc:
            raise TraceError(f"retracer: cannot update {src} ({_reason(exc)}); check the file and its "
                             f"directory") from None
    finally:
        rd.close()
