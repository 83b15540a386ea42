"""What the trace keeps about the code and the environment it ran in, so replay
can tell "your change differs" from "the environment changed":

- the source of every file in the scope the program ran (the files of the
  functions seen in scope and of the modules imported from the scope), each
  stored once in the ``blobs`` table like a captured value (content-addressed,
  compressed when large) and listed in ``meta.sources`` (path -> hex key);
- ``meta.git``: the commit of the repository the scope is in, if any;
- ``meta.environment``: what calls commonly depend on besides their arguments
  (time zone, locale, a few environment variables).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

MAX_FILE = 4 << 20        # bytes: a larger file is not stored
MAX_TOTAL = 64 << 20      # bytes of sources stored at most
ENV_VARIABLES = ("TZ", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_TIME", "LC_NUMERIC",
                 "LC_COLLATE", "LC_MONETARY", "PYTHONHASHSEED", "PYTHONIOENCODING", "HOME")


def _key(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def collect(filenames: Iterable[str], scopes: Sequence[str]) -> Tuple[Dict[str, str], List[Tuple[bytes, bytes]]]:
    """(meta.sources, blobs) for the given in-scope files and the modules
    imported from the scope directories."""
    prefixes = tuple(p if p.endswith(os.sep) else p + os.sep for p in scopes)
    files = {os.path.abspath(f) for f in filenames if f and not f.startswith("<")}
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if isinstance(f, str) and f.endswith(".py") and os.path.abspath(f).startswith(prefixes):
            files.add(os.path.abspath(f))
    index: Dict[str, str] = {}
    blobs: List[Tuple[bytes, bytes]] = []
    total = 0
    for path in sorted(files):
        try:
            if not os.path.isfile(path) or os.path.getsize(path) > MAX_FILE:
                continue
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        if total + len(data) > MAX_TOTAL:
            break
        total += len(data)
        key = _key(data)
        index[path] = key.hex()
        blobs.append((key, data))
    return index, blobs


def git_commit(directory: str) -> Optional[Dict[str, Any]]:
    """{"commit", "root", "dirty"} of the git repository ``directory`` is in, or None."""
    d = os.path.abspath(directory)
    while True:
        if os.path.exists(os.path.join(d, ".git")):
            break
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent
    try:
        head = subprocess.run(["git", "-C", d, "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    out: Dict[str, Any] = {"commit": head.stdout.strip(), "root": d}
    try:
        st = subprocess.run(["git", "-C", d, "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL)
        if st.returncode == 0:
            out["dirty"] = bool(st.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def environment() -> Dict[str, Any]:
    """What calls may depend on besides their arguments, at the end of the run."""
    out: Dict[str, Any] = {"variables": {k: os.environ.get(k) for k in ENV_VARIABLES},
                           "tzname": list(time.tzname), "timezone": time.timezone}
    try:
        import locale
        out["locale"] = locale.setlocale(locale.LC_ALL, None)
    except Exception:  # noqa: BLE001 - an unusual platform: no locale recorded
        pass
    return out
