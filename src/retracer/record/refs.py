"""What captured pickles refer to instead of holding a copy.

A pickle written by :mod:`retracer.record.pickling` may call these when it is
loaded: :func:`module` (a module, by name), :func:`ref` (an object reachable
from a module's globals, by module and attribute path, so that ``is`` holds)
and :func:`shared` (a large string or bytes value stored once in the trace's
``blobs`` table). Loaders that know the trace (replay) resolve them
themselves (see ``retracer.replay.replayer``); anywhere else :func:`ref` and
:func:`module` import the module, and :func:`shared` needs a resolver set
with :func:`resolving`.
"""
from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

MISSING = object()

_resolver: Optional[Callable[[bytes], Any]] = None


def module(name: str) -> Any:
    """The module ``name``, imported."""
    return importlib.import_module(name)


def resolve_path(mod: Any, path: str) -> Any:
    obj = mod
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def ref(module_name: str, path: str) -> Any:
    """The object at ``path`` (``name`` or ``name.attr``) in module ``module_name``."""
    return resolve_path(importlib.import_module(module_name), path)


def shared(key: bytes) -> Any:
    """The value stored once under ``key`` (see :func:`resolving`)."""
    if _resolver is None:
        raise LookupError("this value is stored in the trace's blobs table: load it through "
                          "retracer.tracefile.TraceReader (or retracer.record.refs.resolving)")
    return _resolver(key)


@contextmanager
def resolving(resolver: Callable[[bytes], Any]) -> Iterator[None]:
    """Within the block, :func:`shared` values are loaded with ``resolver``."""
    global _resolver
    old, _resolver = _resolver, resolver
    try:
        yield
    finally:
        _resolver = old


class Shared:
    """Stands in a pickle for a large str/bytes value stored once (by its key)."""

    __slots__ = ("key",)

    def __init__(self, key: bytes) -> None:
        self.key = key

    def __reduce__(self):
        return shared, (self.key,)
