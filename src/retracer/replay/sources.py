"""The source files a trace ran, as stored in it, and running them again.

``retracer trace`` stores the source of every file in the scope it ran
(content-addressed in the ``blobs`` table, compressed like any value) and lists
them in ``meta.sources`` (path -> hex key), with ``meta.git`` (the commit of
the repository, when there is one). Replay uses them to tell "your change
differs" from "the environment changed":

- :func:`changed_files` compares the files on disk with the stored sources;
- :func:`install` makes this process import the in-scope modules from chosen
  bytes: the stored sources (to run the *original* code, in the replay child
  that plays the original) or the files on disk read now (the candidate:
  compiled from the source, never from a ``.pyc`` that may be stale).
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import linecache
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence


def key_of(data: bytes) -> bytes:
    """The content address of stored bytes (the same as captured values')."""
    return hashlib.blake2b(data, digest_size=16).digest()


def stored(meta: Dict[str, Any]) -> Dict[str, bytes]:
    """path -> blob key of the sources a trace stored (empty for older traces)."""
    out: Dict[str, bytes] = {}
    for path, hexkey in (meta.get("sources") or {}).items():
        try:
            out[str(path)] = bytes.fromhex(hexkey)
        except (TypeError, ValueError):
            continue
    return out


def changed_files(meta: Dict[str, Any]) -> List[str]:
    """The stored source files whose content on disk differs (or that are gone)."""
    out = []
    for path, key in stored(meta).items():
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            out.append(path)
            continue
        if key_of(data) != key:
            out.append(path)
    return sorted(out)


class _FixedSourceLoader(importlib.machinery.SourceFileLoader):
    """Loads one module from given bytes (compiled here, no bytecode cache)."""

    def __init__(self, fullname: str, path: str, data: bytes) -> None:
        super().__init__(fullname, path)
        self._data = data

    def get_data(self, path: str) -> bytes:
        if path == self.path:
            return self._data
        return super().get_data(path)

    def get_code(self, fullname: str) -> Any:
        return compile(self._data, self.path, "exec", dont_inherit=True)


class _Finder:
    """A meta path finder (what importlib.abc.MetaPathFinder asks for: find_spec and
    invalidate_caches), not derived from it: importing importlib.abc brings
    importlib.resources, tempfile and shutil into every replay child."""

    def __init__(self, data_of: Callable[[str], Optional[bytes]]) -> None:
        self._data_of = data_of

    def find_spec(self, fullname: str, path: Optional[Sequence[str]], target: Any = None) -> Any:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            try:
                spec = finder.find_spec(fullname, path, target)
            except Exception:  # noqa: BLE001 - a broken finder: let the others try
                continue
            if spec is None:
                continue
            origin = spec.origin
            if origin and isinstance(spec.loader, importlib.machinery.SourceFileLoader):
                data = self._data_of(os.path.abspath(origin))
                if data is not None:
                    spec.loader = _FixedSourceLoader(fullname, origin, data)
            return spec
        return None

    def invalidate_caches(self) -> None:
        pass


def install(files: Dict[str, Callable[[], Optional[bytes]]]) -> None:
    """Import the modules at these paths from the bytes their function gives
    (None: the usual way). Tracebacks and ``inspect`` show those bytes too."""
    cache: Dict[str, Optional[bytes]] = {}

    def data_of(path: str) -> Optional[bytes]:
        if path not in files:
            return None
        if path not in cache:
            data = files[path]()
            cache[path] = data
            if data is not None:
                text = data.decode("utf-8", "replace")
                lines = text.splitlines(True)
                linecache.cache[path] = (len(data), None, lines, path)
        return cache[path]

    sys.meta_path.insert(0, _Finder(data_of))


def disk_reader(path: str) -> Callable[[], Optional[bytes]]:
    def read() -> Optional[bytes]:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return None
    return read
