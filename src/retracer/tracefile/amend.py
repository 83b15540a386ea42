"""Amending a trace this user signed: the recording side finishing its own
trace (the stability check marks unstable calls). Readers never write."""
from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
from typing import Any, Dict, Optional

from ..errors import TraceError
from . import signing
from .digest import compute_digest
from .reader import TraceReader
from .writer import _meta_json, _reason


def update_captured_status(path: "str | os.PathLike[str]", updates: Dict[int, str],
                           meta: Optional[Dict[str, Any]] = None) -> None:
    """Set ``captured_calls.status`` of some calls (and optionally meta keys) in a
    trace this user signed, and sign it again. The file is rewritten to a
    temporary copy and renamed into place, so it is never half-updated."""
    src = os.path.abspath(os.fspath(path))
    d = os.path.dirname(src)
    tmp = os.path.join(d, f".{os.path.basename(src)}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with TraceReader(src) as r:  # validates and checks the signature first
            version = r.version
        shutil.copyfile(src, tmp)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("BEGIN")
            conn.executemany("UPDATE captured_calls SET status = ? WHERE call_id = ?",
                             [(s, cid) for cid, s in updates.items()])
            for k, v in (meta or {}).items():
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (k, _meta_json(v)))
            conn.execute("COMMIT")
            sig = signing.sign(compute_digest(conn, version))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('signature', ?)", (_meta_json(sig),))
        finally:
            conn.close()
        os.replace(tmp, src)
    except (sqlite3.Error, OSError) as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise TraceError(f"retracer: cannot update {src} ({_reason(exc)}); check the file and its directory")

