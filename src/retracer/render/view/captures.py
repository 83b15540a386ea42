"""What the view shows of captured calls: bounded reprs of their arguments and
outcomes, unpickled without importing the traced program's own classes."""
from __future__ import annotations

import io
import json
import os
import pickle
import reprlib
import sys
from typing import Any, Dict, Optional, Tuple

class _Stub:
    """Stands for an object of a class retracer does not import (the traced script's own
    classes): its repr shows the class name and the state pickle gave it."""

    _rt_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Stub":
        obj = object.__new__(cls)
        object.__setattr__(obj, "_rt_args", args)
        object.__setattr__(obj, "_rt_state", None)
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

    def __call__(self, *args: Any, **kwargs: Any) -> "_Stub":
        return type(self)(*args)

    def __repr__(self) -> str:
        name = type(self)._rt_name
        st = object.__getattribute__(self, "_rt_state")
        args = object.__getattribute__(self, "_rt_args")
        items: Dict[str, Any] = {}
        if isinstance(st, tuple) and len(st) == 2 and all(s is None or isinstance(s, dict) for s in st):
            for part in st:
                items.update(part or {})
        elif isinstance(st, dict):
            items = st
        if items:
            return f"{name}(" + ", ".join(f"{k}={_repr(v)}" for k, v in items.items()) + ")"
        if args:
            return f"{name}(" + ", ".join(_repr(a) for a in args) + ")"
        if st is not None:
            return f"{name}({_repr(st)})"
        return f"<{name}>"


class _ReprUnpickler(pickle.Unpickler):
    """Unpickles captured values for display. Classes of the traced program (``__main__``
    and modules inside the scope) are not imported: they become stubs, so viewing a
    trace never runs the program's module code."""

    def __init__(self, data: bytes, scope: Optional[str]) -> None:
        super().__init__(io.BytesIO(data))
        self._scope = scope

    def _in_scope(self, module: str) -> bool:
        if module in ("__main__", "__retracer_main__", "__mp_main__"):
            return True
        if not self._scope or module in sys.modules:
            return False
        from importlib.machinery import PathFinder
        try:
            spec = PathFinder.find_spec(module.split(".")[0])
        except Exception:
            return True
        origin = getattr(spec, "origin", None) or ""
        locs = list(getattr(spec, "submodule_search_locations", None) or [])
        where = [p for p in [origin] + locs if p]
        scope = os.path.abspath(self._scope) + os.sep
        return any(os.path.abspath(p).startswith(scope) for p in where)

    def find_class(self, module: str, name: str) -> Any:
        if not self._in_scope(module):
            try:
                return super().find_class(module, name)
            except Exception:
                pass
        return type(name.rsplit(".", 1)[-1], (_Stub,), {"_rt_name": name, "__module__": module})


_REPR = reprlib.Repr()
_REPR.maxstring = 160
_REPR.maxother = 160
_REPR.maxlong = 80
_REPR.maxlevel = 4
for _attr in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset", "maxdeque", "maxarray"):
    setattr(_REPR, _attr, 12)


def _repr(value: Any) -> str:
    """A bounded repr that never raises."""
    try:
        text = _REPR.repr(value)
    except Exception as e:  # a user __repr__ failing
        return f"<repr failed: {type(e).__name__}>"
    if len(text) > 400:
        text = text[:397] + "..."
    return text


def _load(blob: Optional[bytes], scope: Optional[str]) -> Tuple[bool, Any]:
    """(True, value) or (False, "<not loadable: why>")."""
    if blob is None:
        return True, None
    try:
        return True, _ReprUnpickler(blob, scope).load()
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else ""
        return False, f"<not loadable: {type(e).__name__}{': ' + msg[:120] if msg else ''}>"


def describe_capture(row: Any, scope: Optional[str]) -> Dict[str, Any]:
    """What the page shows for one captured call: status, argument reprs, outcome."""
    try:
        info = json.loads(row.info) if row.info else {}
    except ValueError:
        info = {}
    entry: Dict[str, Any] = {"status": row.status or "?", "id": row.call_id}
    if row.args is not None:
        ok, args = _load(row.args, scope)
        if ok and isinstance(args, dict):
            entry["args"] = [[str(k), _repr(v)] for k, v in args.items()]
        else:
            entry["args_error"] = args if not ok else f"<not loadable: {type(args).__name__}>"
    else:
        why = info.get("error") or row.status or "not recorded"
        entry["args_error"] = f"<not recorded: {why}>"
    outcome = info.get("outcome")
    if outcome == "raise" and row.exception is not None:
        ok, exc = _load(row.exception, scope)
        entry["raised"] = _repr(exc) if ok else exc
    elif row.result is not None:
        ok, res = _load(row.result, scope)
        if ok and info.get("yields") and isinstance(res, dict) and "yields" in res:
            ys = []
            for blob in list(res.get("yields") or [])[:12]:
                yok, yv = _load(blob, scope) if isinstance(blob, (bytes, bytearray)) else (True, blob)
                ys.append(_repr(yv) if yok else yv)
            entry["yields"] = ys
            ret = res.get("return")
            if isinstance(ret, (bytes, bytearray)):
                rok, rv = _load(ret, scope)
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
        except (ValueError, AttributeError):
            v = None
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None
