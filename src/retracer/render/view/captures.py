"""What the view shows of captured calls: bounded reprs of their arguments and
outcomes, read from the stored pickles *without running anything*.

The page never unpickles for real: :class:`_InertUnpickler` resolves every
class or function a pickle names to an inert stand-in (:class:`_Stub`) --
nothing is imported, no constructor, ``__reduce__``, ``__setstate__`` or
``__repr__`` of the traced program (or of any library) runs, with or without
``--trust``. What it builds is plain data (numbers, strings, bytes, tuples,
lists, dicts, sets) and stubs that remember their name and the state the
pickle gave them; :func:`_repr` shows them, bounded. A few stdlib value types
whose constructors only parse data (``datetime``, ``decimal.Decimal``,
``complex``) are built for real, so they show as usual. Secrets never reach
the pickles in the first place (capture redacts them, see README "What a trace
stores").
"""
from __future__ import annotations

import datetime
import decimal
import io
import json
import pickle
import reprlib
import sys
from typing import Any, Callable, Dict, Optional, Tuple

assert datetime and decimal  # the safe classes below come from these imports, never from a pickle

#: classes built for real when a pickle names them: C types whose constructors parse plain data
_SAFE_CLASSES = {
    ("builtins", "complex"), ("datetime", "date"), ("datetime", "time"), ("datetime", "datetime"),
    ("datetime", "timedelta"), ("datetime", "timezone"), ("decimal", "Decimal"),
}
#: the largest stored value the page decodes (a larger one is named by its size)
MAX_SHOWN_BYTES = 4 << 20


class _Stub:
    """Stands for an object of a class the view does not import (any class a pickle
    names): it remembers its name, the arguments it was made with and the state
    pickle gave it. Its methods are the only code a pickle can reach."""

    _rt_name = "?"
    _rt_module = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Stub":
        obj = object.__new__(cls)
        object.__setattr__(obj, "_rt_args", args)
        object.__setattr__(obj, "_rt_state", None)
        object.__setattr__(obj, "_rt_items", None)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "_rt_state", state)

    def __setattr__(self, name: str, value: Any) -> None:
        st = object.__getattribute__(self, "_rt_state")
        if not isinstance(st, dict):
            st = {}
            object.__setattr__(self, "_rt_state", st)
        st[name] = value

    def _rt_add(self, item: Any) -> None:
        items = object.__getattribute__(self, "_rt_items")
        if items is None:
            items = []
            object.__setattr__(self, "_rt_items", items)
        if len(items) < 64:
            items.append(item)

    def append(self, item: Any) -> None:
        self._rt_add(item)

    def extend(self, items: Any) -> None:
        for i, item in enumerate(items if isinstance(items, (list, tuple)) else ()):
            if i >= 64:
                break
            self._rt_add(item)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._rt_add((key, value))

    def __call__(self, *args: Any, **kwargs: Any) -> "_Stub":
        return type(self)(*args)

    def __repr__(self) -> str:
        return _repr(self)


def _stub_class(module: str, name: str) -> type:
    return type(str(name).rsplit(".", 1)[-1][:80] or "?", (_Stub,),
                {"_rt_name": str(name)[:200], "_rt_module": str(module)[:200], "__module__": str(module)[:200]})


class _InertUnpickler(pickle.Unpickler):
    """Unpickles for display only: ``find_class`` never imports, it hands out stubs."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_CLASSES:
            return getattr(sys.modules[module], name)  # imported above, never by the pickle
        return _stub_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not used by retracer")


class _ViewRepr(reprlib.Repr):
    """reprlib, bounded everywhere, showing stubs by their name and state."""

    def repr1(self, x: Any, level: int) -> str:
        if isinstance(x, _Stub):
            return self._repr_stub(x, level)
        return super().repr1(x, level)

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 1000:
            return f"<int of {x.bit_length()} bits>"
        return super().repr_int(x, level)

    def repr_bytes(self, x: bytes, level: int) -> str:
        if len(x) > self.maxstring:
            return repr(bytes(x[:self.maxstring])) + "..."
        return repr(bytes(x))

    def repr_bytearray(self, x: bytearray, level: int) -> str:
        return f"bytearray({self.repr_bytes(bytes(x[:self.maxstring + 1]), level)})"

    def _repr_stub(self, x: _Stub, level: int) -> str:
        cls = type(x)
        name = cls._rt_name
        module = cls._rt_module
        args = object.__getattribute__(x, "_rt_args")
        st = object.__getattribute__(x, "_rt_state")
        items = object.__getattribute__(x, "_rt_items")
        if module == "retracer.record.refs":
            if name == "ref" and len(args) == 2:
                return f"{args[0]}.{args[1]}"[:200]
            if name == "module" and args:
                return f"<module {str(args[0])[:100]!r}>"
        if name == "_reconstructor" and module == "copyreg" and args and isinstance(args[0], type) \
                and issubclass(args[0], _Stub):
            name = args[0]._rt_name
        if level <= 0:
            return f"{name}(...)"
        parts = []
        fields: Dict[Any, Any] = {}
        if isinstance(st, tuple) and len(st) == 2 and all(p is None or isinstance(p, dict) for p in st):
            for part in st:
                fields.update(part or {})
        elif isinstance(st, dict):
            fields = st
        if fields:
            for i, (k, v) in enumerate(fields.items()):
                if i >= self.maxdict:
                    parts.append("...")
                    break
                parts.append(f"{str(k)[:60]}={self.repr1(v, level - 1)}")
        elif args and not (name == "_reconstructor" and module == "copyreg"):
            for i, a in enumerate(args):
                if i >= self.maxtuple:
                    parts.append("...")
                    break
                parts.append(self.repr1(a, level - 1))
        elif st is not None:
            parts.append(self.repr1(st, level - 1))
        if items:
            parts.append(self.repr1(list(items), level - 1))
        if not parts:
            return f"<{name}>"
        return f"{name}(" + ", ".join(parts) + ")"


_REPR = _ViewRepr()
_REPR.maxstring = 160
_REPR.maxother = 160
_REPR.maxlong = 80
_REPR.maxlevel = 4
for _attr in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset", "maxdeque", "maxarray"):
    setattr(_REPR, _attr, 12)


def _repr(value: Any) -> str:
    """A bounded repr that never raises (and runs no code of the traced program:
    the values it sees are plain data and stubs)."""
    try:
        text = _REPR.repr(value)
    except Exception as e:
        return f"<repr failed: {type(e).__name__}>"
    except RecursionError:
        return "<repr failed: nested too deeply>"
    if len(text) > 400:
        text = text[:397] + "..."
    return text


_Resolver = Optional[Callable[[bytes], Optional[bytes]]]


def _load(blob: Optional[bytes], resolve: _Resolver = None) -> Tuple[bool, Any]:
    """(True, value) or (False, "<not loadable: why>"); nothing runs (see the module docstring)."""
    if blob is None:
        return True, None
    if len(blob) > MAX_SHOWN_BYTES:
        return False, f"<a value of {len(blob):,} bytes: not shown>"
    try:
        value = _InertUnpickler(bytes(blob)).load()
    except RecursionError:
        return False, "<not loadable: nested too deeply>"
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else ""
        return False, f"<not loadable: {type(e).__name__}{': ' + msg[:120] if msg else ''}>"
    if resolve is not None:
        value = _resolve_shared(value, resolve)
    return True, value


def _resolve_shared(value: Any, resolve: Callable[[bytes], Optional[bytes]]) -> Any:
    """Top-level arguments stored once (``refs.shared(key)``), loaded from the trace."""
    def one(v: Any) -> Any:
        if isinstance(v, _Stub) and type(v)._rt_module == "retracer.record.refs" and type(v)._rt_name == "shared":
            args = object.__getattribute__(v, "_rt_args")
            if len(args) == 1 and isinstance(args[0], bytes):
                try:
                    data = resolve(args[0])
                except Exception:
                    return "<a stored value that cannot be read>"
                ok, got = _load(data, None)
                return got
        return v
    if isinstance(value, dict):
        return {k: one(v) for k, v in value.items()}
    return one(value)


def describe_capture(row: Any, scope: Optional[str] = None, resolve: _Resolver = None) -> Dict[str, Any]:
    """What the page shows for one captured call: status, argument reprs, outcome.
    ``resolve(key)`` reads a value stored once in the trace (``scope`` is not used
    any more: no class is imported, whatever its module)."""
    try:
        info = json.loads(row.info) if row.info else {}
    except (ValueError, TypeError, RecursionError):
        info = {}
    if not isinstance(info, dict):
        info = {}
    entry: Dict[str, Any] = {"status": row.status or "?", "id": row.call_id}
    if row.args is not None:
        ok, args = _load(row.args, resolve)
        if ok and isinstance(args, dict):
            entry["args"] = [[str(k), _repr(v)] for k, v in args.items()]
        else:
            entry["args_error"] = args if not ok else f"<not loadable: {type(args).__name__}>"
    else:
        why = info.get("error") or row.status or "not recorded"
        entry["args_error"] = f"<not recorded: {why}>"
    outcome = info.get("outcome")
    if outcome == "raise" and row.exception is not None:
        ok, exc = _load(row.exception)
        entry["raised"] = _repr(exc) if ok else exc
    elif row.result is not None:
        ok, res = _load(row.result)
        if ok and info.get("yields") and isinstance(res, dict) and "yields" in res:
            ys = []
            for blob in list(res.get("yields") or [])[:12]:
                yok, yv = _load(blob) if isinstance(blob, (bytes, bytearray)) else (True, blob)
                ys.append(_repr(yv) if yok else yv)
            entry["yields"] = ys
            ret = res.get("return")
            if isinstance(ret, (bytes, bytearray)):
                rok, rv = _load(ret)
                entry["returned"] = _repr(rv) if rok else rv
        else:
            entry["returned"] = _repr(res) if ok else res
    elif outcome == "return":
        entry["returned"] = "None"
    if row.duration_ns is not None:
        entry["dur"] = row.duration_ns
    return entry


def stream_call_of(row: Any) -> Optional[int]:
    """The captured call's number in its thread's call stream, as the tracer recorded it
    (``info.stream_call``, or a ``stream_call`` column), or None."""
    v = getattr(row, "stream_call", None)
    if v is None and row.info:
        try:
            v = json.loads(row.info).get("stream_call")
        except (ValueError, AttributeError, TypeError, RecursionError):
            v = None
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None
