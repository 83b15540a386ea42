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


def _repository_of(directory: str) -> Optional[str]:
    d = os.path.abspath(directory)
    while True:
        if os.path.exists(os.path.join(d, ".git")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


class GitProbe:
    """The commit and the dirty state of the git repository ``directory`` is in,
    asked of git when the run starts (one ``git status`` that also names the
    commit, running while the program does: a big repository's status can take
    longer than a short program) and read when it ends. :meth:`result` gives
    {"commit", "root", "dirty"}, or None (no repository, no git, git failed)."""

    def __init__(self, directory: str) -> None:
        self.root = _repository_of(directory)
        self._proc: Optional[subprocess.Popen] = None
        if self.root is None:
            return
        try:
            self._proc = subprocess.Popen(
                ["git", "-C", self.root, "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                start_new_session=True)  # the terminal's Ctrl-C is the program's, not git's
        except (OSError, subprocess.SubprocessError, ValueError):
            self._proc = None

    def result(self, timeout: float = 5.0) -> Optional[Dict[str, Any]]:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        try:
            out, _ = proc.communicate(timeout=timeout)
        except (OSError, subprocess.SubprocessError, ValueError):
            try:
                proc.kill()
                proc.wait(1)
            except (OSError, subprocess.SubprocessError):
                pass
            return None
        if proc.returncode != 0:
            return None
        commit, dirty = None, False
        for line in out.decode("utf-8", "replace").splitlines():
            if line.startswith("# branch.oid "):
                commit = line.split()[2]
            elif line and not line.startswith("#"):
                dirty = True
        if not commit or commit == "(initial)":
            return None
        return {"commit": commit, "root": self.root, "dirty": dirty}


def git_commit(directory: str) -> Optional[Dict[str, Any]]:
    """{"commit", "root", "dirty"} of the git repository ``directory`` is in, or None."""
    return GitProbe(directory).result()


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
