"""Compare a recorded call with a replayed one.

Replay calls a function again with the inputs that were recorded and checks that
the new implementation behaves *identically*: it returns an equal value (or raises
the same exception), yields the same values if it is a generator, and leaves its
arguments in the same state.  :func:`compare` compares two values,
:func:`compare_outcome` two :class:`Outcome` objects (what one call did).  Both
return ``None`` when the two are equivalent, otherwise the first :class:`Mismatch`
found, whose :meth:`Mismatch.describe` is meant to be shown to the user.

The comparison is strict where it matters:

* the types must be identical (``type(a) is type(b)``): ``1``, ``1.0`` and ``True``
  all differ, and so do an instance and an instance of a subclass;
* floats are equal when ``math.isclose`` (default tolerances) says so or when both
  are NaN (``exact``: equal, or both NaN); complex numbers component-wise the same
  way; this applies at any depth;
* strings and bytes by value; two strings that differ only in the addresses of
  default reprs (``<X object at 0x7f...>``) are equal: an address is not behaviour;
* lists, tuples, deques and named tuples element by element; dicts by keys (missing
  or unexpected keys are reported), then by key order (iteration order is
  observable; ``dict_order=False`` relaxes it), then value by value; sets and
  frozensets as sets (``==``); dict views as the lists they iterate;
* lazy values -- ``zip``, ``map``, ``filter``, ``itertools`` objects, generator
  objects, any iterator -- are consumed on both sides (at most ``LAZY_LIMIT``
  items, each side once: the items are kept for later comparisons of the same
  object) and compared item by item, then whether both ended there;
* exceptions by type, ``args``, the message when the class defines its own
  ``__str__``, the public attributes in their ``__dict__`` (``self.code = ...``)
  and the attributes builtin exceptions keep outside ``args`` (``filename``,
  ``lineno``, ``name``, ...);
* numpy arrays by dtype, shape, then values (``allclose`` with ``equal_nan`` for
  floating dtypes); numpy scalars like Python numbers (dtype must match); pandas
  objects through ``pandas.testing``.  numpy/pandas are never imported unless one of
  the values already comes from them;
* classes and modules by identity or by (module, qualified name); functions,
  lambdas and bound methods by qualified name and code (bytecode, constants,
  names), their closure cells, defaults and, for bound methods, the object they
  are bound to -- never by identity;
* objects whose class defines ``__eq__`` by ``==`` (dataclasses with a generated
  ``__eq__`` field by field, so that their floats get the float rule); when
  ``__eq__`` says they differ, their state is compared to say where, and an
  ``__eq__`` that says "different" about two objects whose state is exactly equal
  is overruled (it compared something by identity); other objects, or when
  ``__eq__`` fails, by their state: ``__dict__`` plus every ``__slots__`` entry,
  or what ``__reduce_ex__`` says they are made of; an object that offers none of
  these cannot be compared and the result says so (``Mismatch.uncomparable``).

The walk is iterative (no Python recursion), so values nested thousands of levels
deep do not raise ``RecursionError``; pairs of containers already being compared
are remembered, so self-referencing values do not loop.
"""
from __future__ import annotations

import collections
import collections.abc
import dataclasses
import decimal
import enum
import functools
import itertools
import math
import re
import types
from typing import Any, Dict, Iterator, List, Optional, Tuple

from . import adapters
from .mismatch import (MISSING, Mismatch, Outcome, _attr_segment, _differs, _Key, _Path, _qualname,
                       _render, _short_repr, _type_names)

__all__ = ["Mismatch", "Outcome", "compare", "compare_outcome", "MISSING",
           "GENERATOR_LIMIT", "LAZY_LIMIT", "Drained"]

#: how many items are drawn from a lazy value (iterator, generator object) found
#: inside a value, on each side
LAZY_LIMIT = 1000
GENERATOR_LIMIT = LAZY_LIMIT      # the former name


# --------------------------------------------------------------------------
# The comparison


_SIMPLE = (type(None), int, bool, str, bytes, bytearray, range, slice,
           type(Ellipsis), type(NotImplemented))
_CALLABLE_TYPES = (types.FunctionType, types.BuiltinFunctionType,
                   types.WrapperDescriptorType, types.MethodWrapperType,
                   types.MethodDescriptorType, types.ClassMethodDescriptorType,
                   types.ModuleType)
#: element types for which ``==`` plus identical types is the whole comparison
_ATOMIC = frozenset((type(None), int, bool, str, bytes, float))
_REPORT = object()   # stack marker: (_REPORT, (reason, expected, actual, e, a), path)
_DICT_VIEWS = (type({}.keys()), type({}.values()), type({}.items()))
#: the address in a default repr: "<Foo object at 0x7f3a2c1d5e50>"
_ADDRESS = re.compile(r"\bat 0x[0-9a-fA-F]{4,}\b")
_ADDRESS_B = re.compile(rb"\bat 0x[0-9a-fA-F]{4,}\b")
#: attributes builtin exceptions keep outside args (C members)
_EXC_MEMBERS = ("filename", "filename2", "lineno", "offset", "end_lineno", "end_offset", "text",
                "msg", "name", "path")


def _atomic_equal(xs: list, ys: list) -> bool:
    """Fast path: True when two same-length lists are equal element by element
    and every element is of an atomic type, identical on both sides."""
    tx = list(map(type, xs))
    return (_ATOMIC.issuperset(tx) and tx == list(map(type, ys))
            and list(xs) == list(ys))


def _float_equal(x: float, y: float) -> bool:
    return x == y or math.isclose(x, y) or (x != x and y != y)


def _complex_equal(x: complex, y: complex) -> bool:
    return _float_equal(x.real, y.real) and _float_equal(x.imag, y.imag)


def _float_exact(x: float, y: float) -> bool:
    return x == y or (x != x and y != y)


def _complex_exact(x: complex, y: complex) -> bool:
    return _float_exact(x.real, y.real) and _float_exact(x.imag, y.imag)


def _generated_dataclass_eq(tp: type) -> Optional[type]:
    """The dataclass whose generated ``__eq__`` ``tp`` uses, else None."""
    for klass in tp.__mro__:
        if "__eq__" in klass.__dict__:
            params = klass.__dict__.get("__dataclass_params__")
            eq = klass.__dict__["__eq__"]
            code = getattr(eq, "__code__", None)
            if params is not None and getattr(params, "eq", False) and \
                    code is not None and code.co_filename == "<string>":
                return klass
            return None
    return None


def _slot_names(tp: type) -> Iterator[Tuple[type, str]]:
    seen = set()
    for klass in tp.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        for name in slots:
            if name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{klass.__name__.lstrip('_')}{name}"
            if name not in seen:
                seen.add(name)
                yield klass, name


def _state(obj: object) -> Optional[Dict[str, object]]:
    """Attributes of ``obj``: its ``__dict__`` plus every set ``__slots__`` entry."""
    state: Dict[str, object] = {}
    found = False
    try:
        d = object.__getattribute__(obj, "__dict__")
    except Exception:  # noqa: BLE001 - no __dict__, or a broken one
        d = None
    if isinstance(d, (dict, types.MappingProxyType)):
        found = True
        state.update(d)
    for klass, name in _slot_names(type(obj)):
        found = True
        descr = klass.__dict__.get(name)
        if descr is None or not hasattr(descr, "__get__"):
            continue
        try:
            state[name] = descr.__get__(obj, type(obj))
        except AttributeError:
            pass                      # slot not set
    return state if found else None


class Drained:
    """What consuming a lazy value gave: its first items, whether it ended
    there, and the exception that ended it (if any)."""

    __slots__ = ("items", "ended", "error")

    def __init__(self, items: list, ended: bool, error: Optional[BaseException]) -> None:
        self.items = items
        self.ended = ended
        self.error = error

    def __repr__(self) -> str:
        more = "" if self.ended else ", ..."
        tail = f", then raised {self.error!r}" if self.error is not None else ""
        return f"<items {_short_repr(self.items, 200)}{more}{tail}>"


def _drain(it: Any, limit: int = LAZY_LIMIT) -> Drained:
    items: list = []
    try:
        for item in itertools.islice(it, limit):
            items.append(item)
        if len(items) < limit:
            return Drained(items, True, None)
        try:
            next(it)
        except StopIteration:
            return Drained(items, True, None)
        return Drained(items, False, None)
    except Exception as exc:  # noqa: BLE001 - the exception is part of the behaviour
        return Drained(items, True, exc)


def _is_lazy(obj: Any) -> bool:
    """An iterator (zip, map, filter, itertools objects, generator objects, list
    iterators, user classes with ``__next__``): its items are its value."""
    tp = type(obj)
    return (getattr(tp, "__next__", None) is not None and getattr(tp, "__iter__", None) is not None
            and not isinstance(obj, (str, bytes, bytearray, type)))


def _first_difference(e: Any, a: Any) -> str:
    """' (first difference at ...)' for long or multi-line strings, else ''."""
    if max(len(e), len(a)) <= 40:
        return ""
    i = 0
    n = min(len(e), len(a))
    while i < n and e[i] == a[i]:
        i += 1
    nl = b"\n" if isinstance(e, (bytes, bytearray)) else "\n"
    if nl in e or nl in a:
        line = e[:i].count(nl) + 1
        col = i - (e.rfind(nl, 0, i) + 1) + 1
        return f" (first difference at line {line}, column {col})"
    return f" (first difference at index {i})"


def _same_but_addresses(e: Any, a: Any) -> bool:
    """Two strings that differ only in the addresses of default reprs."""
    pat = _ADDRESS if isinstance(e, str) else _ADDRESS_B
    if not pat.search(e):
        return False
    sub = "at 0x?" if isinstance(e, str) else b"at 0x?"
    return pat.sub(sub, e) == pat.sub(sub, a)


def _code_key(code: types.CodeType) -> tuple:
    """What a code object does, without where it is (line numbers, file name)."""
    consts = tuple(_code_key(c) if isinstance(c, types.CodeType) else (type(c), c)
                   for c in code.co_consts)
    return (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars,
            code.co_cellvars, code.co_argcount, code.co_posonlyargcount,
            code.co_kwonlyargcount, code.co_flags)


def _code_equal(x: types.CodeType, y: types.CodeType) -> bool:
    if x is y:
        return True
    try:
        return _code_key(x) == _code_key(y)
    except Exception:  # noqa: BLE001 - unhashable/uncomparable constants
        return False


class _Comparer:
    def __init__(self, exact: bool = False, dict_order: bool = True,
                 drained: Optional[Dict[int, Tuple[Any, Drained]]] = None,
                 lazy_limit: int = LAZY_LIMIT) -> None:
        # exact: floats must be equal (NaN equal to NaN), not merely close; used
        # to tell whether two replays of one call differ at all (time.time()...)
        self.exact = exact
        self.dict_order = dict_order
        self.float_eq = _float_exact if exact else _float_equal
        self.complex_eq = _complex_exact if exact else _complex_equal
        self.seen: set = set()
        self.keep: list = []        # keeps compared objects alive so ids stay unique
        # lazy values already consumed: id -> (the object, what it gave); shared
        # between the comparisons of one call so each side is consumed once
        self.drained = {} if drained is None else drained
        self.lazy_limit = lazy_limit

    # -- driver ------------------------------------------------------------
    def run(self, expected: object, actual: object, path: _Path) -> Optional[Mismatch]:
        stack: List[Tuple[object, object, _Path]] = [(expected, actual, path)]
        pop, extend = stack.pop, stack.extend
        while stack:
            e, a, node = pop()
            if e is _REPORT_NOW:
                reason, x, y = a
                return Mismatch(_render(node), reason, x, y)
            if e is _REPORT:
                # every child of an object whose __eq__ said False was equal
                # (within the float tolerance): if their state is exactly equal,
                # __eq__ compared something by identity; else report the whole
                reason, x, y = a
                if self._exactly_equal_state(x, y, node):
                    continue
                return Mismatch(_render(node), reason, x, y)
            result = self.step(e, a, node)
            if result is None:
                continue
            if isinstance(result, Mismatch):
                return result
            extend(reversed(result))
        return None

    def _exactly_equal_state(self, x: Any, y: Any, node: _Path) -> bool:
        sub = _Comparer(exact=True, dict_order=self.dict_order, drained=self.drained,
                        lazy_limit=self.lazy_limit)
        sx, sy = _state(x), _state(y)
        if sx is None or sy is None:
            return False
        return sub.run(_Attrs(sx), _Attrs(sy), node) is None

    def _enter(self, e: object, a: object) -> bool:
        """False when this pair is already being (or has been) compared."""
        key = (id(e), id(a))
        if key in self.seen:
            return False
        self.seen.add(key)
        self.keep.append((e, a))
        return True

    def drain(self, obj: Any) -> Drained:
        hit = self.drained.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        d = _drain(obj, self.lazy_limit)
        self.drained[id(obj)] = (obj, d)
        return d

    # -- one pair ----------------------------------------------------------
    def step(self, e: Any, a: Any, node: _Path) -> Any:
        """None (equal), a Mismatch, or a list of (expected, actual, path) children."""
        if e is a:
            return None
        t = type(e)
        if t is not type(a):
            ne, na = _type_names(t, type(a))
            return Mismatch(_render(node), f"type differs: {ne} != {na}", e, a)
        if t is float:
            return None if self.float_eq(e, a) else _differs(node, e, a)
        if t in _SIMPLE:
            if e == a:
                return None
            if t in (str, bytes) and _same_but_addresses(e, a):
                return None
            if t in (str, bytes, bytearray):
                return Mismatch(_render(node),
                                "value differs" + _first_difference(e, a), e, a)
            return _differs(node, e, a)
        if t is complex:
            return None if self.complex_eq(e, a) else _differs(node, e, a)
        if t is _Attrs:
            return self._attrs(e.d, a.d, node, e.keyed)
        if t is Drained:
            return self._drained(e, a, node)
        if not self._enter(e, a):
            return None
        if t is list or t is tuple:
            return self._plain_sequence(e, a, node)
        if t is dict:
            return self._dict(e, a, node)
        if isinstance(e, BaseException):
            return self._exception(e, a, node)
        module = getattr(t, "__module__", None) or ""
        if module == "numpy" or module.startswith("numpy."):
            result = adapters.compare_numpy(self, e, a, node)
            if result is not adapters.NOT_HANDLED:
                return result
        elif module == "pandas" or module.startswith("pandas."):
            result = adapters.compare_pandas(self, e, a, node)
            if result is not adapters.NOT_HANDLED:
                return result
        if isinstance(e, (list, tuple)):
            return self._sequence(e, a, node)
        if isinstance(e, dict):
            return self._dict(e, a, node)
        if isinstance(e, (set, frozenset)):
            return self._set(e, a, node)
        if isinstance(e, collections.deque):
            return self._deque(e, a, node)
        if isinstance(e, _DICT_VIEWS):
            return [(list(e), list(a), (node, ".<items>"))]
        if isinstance(e, types.FunctionType):
            return self._function(e, a, node)
        if isinstance(e, type) or isinstance(e, _CALLABLE_TYPES):
            named = _compare_named(e, a, node)
            if named is not None or isinstance(e, (type, types.ModuleType)):
                return named
            owner_e = getattr(e, "__self__", None)
            owner_a = getattr(a, "__self__", None)
            if isinstance(owner_e, types.ModuleType) or owner_e is None:
                return None
            return [(owner_e, owner_a, (node, ".__self__"))]
        if isinstance(e, enum.Enum):
            return None if _call_eq(e, a) else _differs(node, e, a)
        if isinstance(e, types.MethodType):
            return [(e.__func__, a.__func__, (node, ".__func__")),
                    (e.__self__, a.__self__, (node, ".__self__"))]
        if isinstance(e, functools.partial):
            return [(e.func, a.func, (node, ".func")),
                    (e.args, a.args, (node, ".args")),
                    (e.keywords, a.keywords, (node, ".keywords"))]
        if isinstance(e, types.CodeType):
            return None if _code_equal(e, a) else Mismatch(_render(node), "code differs", e, a)
        if isinstance(e, types.CellType):
            try:
                return [(e.cell_contents, a.cell_contents, (node, ".cell_contents"))]
            except ValueError:      # an empty cell on one side
                return None if _cell_empty(e) == _cell_empty(a) else _differs(node, e, a)
        if _is_lazy(e) and not _has_own_eq(t):
            label = ".<yielded>" if t is types.GeneratorType else ".<items>"
            return [(self.drain(e), self.drain(a), (node, label))]
        if isinstance(e, decimal.Decimal) and e.is_nan() and a.is_nan():
            return None
        if t is types.SimpleNamespace:      # a bag of attributes: compare them
            return self._state_children(e, a, node)
        return self._object(e, a, node)

    # -- containers --------------------------------------------------------
    def _plain_sequence(self, e: Any, a: Any, node: _Path) -> Any:
        n = len(e)
        if n != len(a):
            return Mismatch(_render(node), f"length differs: {n} != {len(a)}", e, a)
        if n > 4 and _atomic_equal(e, a):
            return None
        return list(zip(e, a, [(node, i) for i in range(n)]))

    def _sequence(self, e: Any, a: Any, node: _Path) -> Any:
        t = type(e)
        base = tuple if isinstance(e, tuple) else list
        if t.__eq__ is not base.__eq__ and not _is_namedtuple(t):
            return self._object(e, a, node)
        if len(e) != len(a):
            return Mismatch(_render(node), f"length differs: {len(e)} != {len(a)}", e, a)
        if len(e) > 4 and _atomic_equal(list(e), list(a)):
            return self._extra_state(e, a, node) if t is not base else None
        if _is_namedtuple(t):
            fields = t._fields
            children = [(x, y, (node, f".{fields[i]}" if i < len(fields) else i))
                        for i, (x, y) in enumerate(zip(e, a))]
        else:
            children = list(zip(e, a, [(node, i) for i in range(len(e))]))
        if t is not base:
            children.extend(self._extra_state(e, a, node))
        return children

    def _deque(self, e: Any, a: Any, node: _Path) -> Any:
        if e.maxlen != a.maxlen:
            return Mismatch(_render(node), f"maxlen differs: {e.maxlen} != {a.maxlen}",
                            e, a)
        if len(e) != len(a):
            return Mismatch(_render(node), f"length differs: {len(e)} != {len(a)}", e, a)
        children = [(x, y, (node, i)) for i, (x, y) in enumerate(zip(e, a))]
        if type(e) is not collections.deque:
            children.extend(self._extra_state(e, a, node))
        return children

    def _dict(self, e: Any, a: Any, node: _Path) -> Any:
        t = type(e)
        if t.__eq__ is not dict.__eq__ and not issubclass(
                t, (collections.OrderedDict, collections.Counter)):
            return self._object(e, a, node)
        e_keys = list(dict.keys(e))
        a_keys = list(dict.keys(a))
        for keys, other, word in ((e_keys, a, "missing"), (a_keys, e, "unexpected")):
            absent = [k for k in keys if not dict.__contains__(other, k)]
            if absent:
                return Mismatch(_render(node), f"{word} key {_short_repr(absent[0])}" +
                                _and_more(len(absent) - 1, word), e, a)
        same_order = all(x is y or x == y for x, y in zip(e_keys, a_keys))
        if not same_order and (self.dict_order or isinstance(e, collections.OrderedDict)):
            return Mismatch(_render(node), "key order differs: " +
                            f"{_short_repr(e_keys)} != {_short_repr(a_keys)}", e, a)
        if same_order:
            pairs = list(zip(e_keys, a_keys))
        else:
            lookup = {k: k for k in a_keys}
            a_keys = [lookup[k] for k in e_keys]
            pairs = list(zip(e_keys, a_keys))
        for ek, ak in pairs:
            if type(ek) is not type(ak):
                ne, na = _type_names(type(ek), type(ak))
                return Mismatch(_render(node),
                                f"type of key {_short_repr(ek)} differs: {ne} != {na}",
                                e, a)
        e_values = [dict.__getitem__(e, k) for k in e_keys]
        a_values = [dict.__getitem__(a, k) for k in a_keys]
        if len(e_values) > 4 and _atomic_equal(e_values, a_values):
            children = []
        else:
            children = [(x, y, (node, _Key(k)))
                        for k, x, y in zip(e_keys, e_values, a_values)]
        if isinstance(e, collections.defaultdict):
            children.insert(0, (e.default_factory, a.default_factory,
                                (node, ".default_factory")))
        if t not in (dict, collections.OrderedDict, collections.defaultdict,
                     collections.Counter):
            children.extend(self._extra_state(e, a, node))
        return children

    def _attrs(self, es: Dict[str, Any], as_: Dict[str, Any], node: _Path, keyed: bool = False) -> Any:
        """Attributes (an object's state): by name, in no particular order."""
        for name in es:
            if name not in as_:
                return Mismatch(_render(node), f"missing attribute {name!r}",
                                es[name], MISSING)
        for name in as_:
            if name not in es:
                return Mismatch(_render(node), f"unexpected attribute {name!r}",
                                MISSING, as_[name])
        if keyed:
            return [(es[name], as_[name], (node, _Key(name))) for name in es]
        return [(es[name], as_[name], (node, _attr_segment(name))) for name in es]

    def _set(self, e: Any, a: Any, node: _Path) -> Any:
        t = type(e)
        base = frozenset if isinstance(e, frozenset) else set
        if t.__eq__ is not base.__eq__:
            return self._object(e, a, node)
        if e == a:
            return self._extra_state(e, a, node) if t is not base else None
        missing = [x for x in e if x not in a]
        extra = [x for x in a if x not in e]
        if not missing and not extra:
            # unequal although every element is found on the other side:
            # elements equal by __eq__ but hashed apart (id-based hashes)
            return self._unordered(list(e), list(a), node)
        parts = []
        if missing:
            parts.append(f"missing {_short_repr(_sorted(missing))}")
        if extra:
            parts.append(f"unexpected {_short_repr(_sorted(extra))}")
        if len(e) == len(a) and len(e) <= 64:
            # elements that are equal by value but not by __eq__/hash (objects
            # compared by identity): pair them up by the comparator's own rules
            paired = self._pair_up(missing, extra, node)
            if paired is None:
                return self._extra_state(e, a, node) if t is not base else None
        return Mismatch(_render(node), "set differs: " + ", ".join(parts), e, a)

    def _pair_up(self, missing: list, extra: list, node: _Path) -> Optional[bool]:
        """None when every element of ``missing`` equals (by this comparator) a
        distinct element of ``extra``, else False."""
        if len(missing) != len(extra):
            return False
        left = list(extra)
        for x in missing:
            for i, y in enumerate(left):
                sub = _Comparer(self.exact, self.dict_order, self.drained, self.lazy_limit)
                if sub.run(x, y, node) is None:
                    del left[i]
                    break
            else:
                return False
        return None

    def _unordered(self, xs: list, ys: list, node: _Path) -> Any:
        if self._pair_up(xs, ys, node) is None:
            return None
        return Mismatch(_render(node), "set differs", xs, ys)

    def _extra_state(self, e: Any, a: Any, node: _Path) -> list:
        """Children for the instance attributes of container subclasses."""
        es, as_ = _state(e), _state(a)
        if not es and not as_:
            return []
        return [(_Attrs(es or {}, keyed=True), _Attrs(as_ or {}, keyed=True), (node, ".__dict__"))]

    def _drained(self, e: Drained, a: Drained, node: _Path) -> Any:
        n = min(len(e.items), len(a.items))
        if len(e.items) != len(a.items) and (e.ended or a.ended):
            return Mismatch(_render(node), f"length differs: {len(e.items)}"
                            f"{'' if e.ended else ' or more'} != {len(a.items)}"
                            f"{'' if a.ended else ' or more'}", e, a)
        children: list = list(zip(e.items[:n], a.items[:n], [(node, i) for i in range(n)]))
        if (e.error is None) != (a.error is None):
            what_e = f"raised {_short_repr(e.error)}" if e.error is not None else "ended"
            what_a = f"raised {_short_repr(a.error)}" if a.error is not None else "ended"
            children.append((_REPORT_NOW, (f"expected it to have {what_e} after {len(e.items)} "
                                           f"items, it {what_a}", e, a), node))
        elif e.error is not None:
            children.append((e.error, a.error, (node, ".<raised>")))
        return children

    # -- exceptions, functions ---------------------------------------------
    def _exception(self, e: BaseException, a: BaseException, node: _Path) -> Any:
        children: list = [(e.args, a.args, (node, ".args"))]
        t = type(e)
        if _own_str(t):
            try:
                se, sa = str(e), str(a)
            except Exception:  # noqa: BLE001 - a broken __str__
                se = sa = None
            if se != sa:
                children.append((se, sa, (node, ".<message>")))
        for name in _EXC_MEMBERS:
            if name in t.__dict__ or any(name in k.__dict__ for k in t.__mro__
                                         if k.__module__ == "builtins"):
                x, y = getattr(e, name, MISSING), getattr(a, name, MISSING)
                if x is not MISSING or y is not MISSING:
                    children.append((x, y, (node, f".{name}")))
        de, da = _public_state(e), _public_state(a)
        if de or da:
            children.append((_Attrs(de), _Attrs(da), node))
        return children

    def _function(self, e: types.FunctionType, a: types.FunctionType, node: _Path) -> Any:
        named = _compare_named(e, a, node)
        if named is not None:
            return named
        if e.__code__ is a.__code__ and e.__closure__ is a.__closure__ \
                and e.__defaults__ is a.__defaults__ and e.__kwdefaults__ is a.__kwdefaults__:
            return None
        if not _code_equal(e.__code__, a.__code__):
            return Mismatch(_render(node), f"function {_dotted(_named(e))} differs: its code "
                            "is not the same", e, a)
        children: list = []
        ce, ca = e.__closure__ or (), a.__closure__ or ()
        names = e.__code__.co_freevars
        if len(ce) != len(ca):
            return Mismatch(_render(node), "closure differs", e, a)
        for i, (x, y) in enumerate(zip(ce, ca)):
            label = names[i] if i < len(names) else str(i)
            children.append((x, y, (node, f".<closure {label}>")))
        if e.__defaults__ is not a.__defaults__:
            children.append((e.__defaults__, a.__defaults__, (node, ".__defaults__")))
        if e.__kwdefaults__ is not a.__kwdefaults__:
            children.append((e.__kwdefaults__, a.__kwdefaults__, (node, ".__kwdefaults__")))
        return children

    # -- objects -----------------------------------------------------------
    def _object(self, e: Any, a: Any, node: _Path) -> Any:
        t = type(e)
        dc = _generated_dataclass_eq(t)
        if dc is not None:
            return [(getattr(e, f.name, MISSING), getattr(a, f.name, MISSING),
                     (node, f".{f.name}"))
                    for f in dataclasses.fields(dc) if f.compare]
        if t.__eq__ is not object.__eq__:
            verdict = _call_eq(e, a)
            if verdict is True:
                return None
            if verdict is False:
                # Compare the state to say precisely where they differ; when it
                # all looks the same, the marker (popped last) decides.
                children = self._state_children(e, a, node, reduce=False)
                if isinstance(children, Mismatch):
                    return children
                if children is None:        # no state: __eq__ compared the values
                    return _differs(node, e, a)
                marker = (_REPORT, (f"not equal (by {_qualname(t)}.__eq__)", e, a), node)
                return [*(children or ()), marker]
            # __eq__ raised or is not implemented for these: compare the state
        return self._state_children(e, a, node)

    def _state_children(self, e: Any, a: Any, node: _Path, reduce: bool = True) -> Any:
        es, as_ = _state(e), _state(a)
        if es is None and as_ is None:
            if not reduce:
                return None
            return self._reduced(e, a, node)
        return self._attrs(es or {}, as_ or {}, node)

    def _reduced(self, e: Any, a: Any, node: _Path) -> Any:
        """No __eq__, no attributes: what pickling says the objects are made of."""
        re_, ra = _reduce(e), _reduce(a)
        if re_ is None or ra is None:
            return Mismatch(_render(node), f"cannot be compared: a {_qualname(type(e))} has no "
                            "__eq__, no attributes and cannot be reduced", e, a, uncomparable=True)
        if re_ == ra:
            return None
        return [(re_, ra, (node, ".<reduced>"))]


class _Attrs:
    """An object's attributes, compared by name in no particular order."""

    __slots__ = ("d", "keyed")

    def __init__(self, d: Dict[str, Any], keyed: bool = False) -> None:
        self.d = d
        self.keyed = keyed      # paths show them as __dict__['name'] (container subclasses)

    def __repr__(self) -> str:
        return _short_repr(self.d, 200)


#: marker for a difference found while building children (reported when popped)
_REPORT_NOW = object()


def _cell_empty(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return True
    return False


def _own_str(t: type) -> bool:
    """Does a class of the program (not a builtin exception) define ``__str__``?
    Then the message is more than the args."""
    for k in t.__mro__:
        if "__str__" in k.__dict__:
            return k.__module__ != "builtins"
    return False


def _public_state(e: BaseException) -> Dict[str, Any]:
    """An exception's public attributes (``self.code = code``), and its notes."""
    try:
        d = object.__getattribute__(e, "__dict__")
    except Exception:  # noqa: BLE001
        return {}
    if not isinstance(d, dict):
        return {}
    return {k: v for k, v in d.items()
            if isinstance(k, str) and (not k.startswith("_") or k == "__notes__")}


def _has_own_eq(t: type) -> bool:
    return t.__eq__ is not object.__eq__


def _reduce(obj: Any) -> Optional[tuple]:
    try:
        r = obj.__reduce_ex__(4)
    except Exception:  # noqa: BLE001 - cannot be pickled
        return None
    if isinstance(r, str) or not isinstance(r, tuple):
        return None
    return tuple(x for x in r)


def _is_namedtuple(t: type) -> bool:
    return issubclass(t, tuple) and isinstance(getattr(t, "_fields", None), tuple) \
        and t.__eq__ is tuple.__eq__


def _and_more(n: int, word: str) -> str:
    return f" (and {n} more {word})" if n > 0 else ""


def _sorted(items: list) -> list:
    try:
        return sorted(items)
    except Exception:  # noqa: BLE001 - unorderable elements
        return items


def _call_eq(e: Any, a: Any) -> Optional[bool]:
    """True/False from ``type(e).__eq__``; None when it fails or is not implemented."""
    try:
        result = type(e).__eq__(e, a)
        if result is NotImplemented:
            return None
        return bool(result)
    except Exception:  # noqa: BLE001 - includes RecursionError, ambiguous truth values
        return None


#: the traced script's module: "__main__" when it ran, loaded under this name by replay
_SCRIPT_ALIAS = "__retracer_main__"


def _named(obj: Any) -> Tuple[object, object]:
    if isinstance(obj, types.ModuleType):
        return ("module", "__main__" if obj.__name__ == _SCRIPT_ALIAS else obj.__name__)
    module = getattr(obj, "__module__", None)
    if module == _SCRIPT_ALIAS:
        module = "__main__"
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    owner = getattr(obj, "__self__", None)
    if module is None and owner is not None and not isinstance(owner, types.ModuleType):
        module = _qualname(type(owner))
    return (module, qualname)


def _compare_named(e: Any, a: Any, node: _Path) -> Optional[Mismatch]:
    """Functions, classes, modules: the same object or the same (module, qualname)."""
    ne, na = _named(e), _named(a)
    if ne == na and ne[1] is not None:
        return None
    return Mismatch(_render(node), f"{_kind_word(e)} differs: "
                    f"{_dotted(ne)} != {_dotted(na)}", e, a)


def _kind_word(obj: object) -> str:
    if isinstance(obj, type):
        return "class"
    if isinstance(obj, types.ModuleType):
        return "module"
    return "function"


def _dotted(name: Tuple[object, object]) -> str:
    module, qualname = name
    if module == "module":
        return str(qualname)
    return f"{module}.{qualname}" if module else str(qualname)


def compare(expected: object, actual: object, path: str = "value", exact: bool = False,
            dict_order: bool = True) -> Optional[Mismatch]:
    """None when ``actual`` is equivalent to ``expected``; else the first Mismatch."""
    return _Comparer(exact, dict_order).run(expected, actual, path)


# --------------------------------------------------------------------------
# Outcomes


def _outcome_text(o: Outcome) -> str:
    if o.kind == "raise":
        what = f"raise {_short_repr(o.exception)}"
    elif o.kind == "return":
        what = f"return {_short_repr(o.value)}" if o.yielded is None else "return"
    else:
        what = f"{o.kind} {_short_repr(o.value)}"
    if o.yielded is not None:
        n = len(o.yielded)
        more = " (or more)" if o.truncated else ""
        what = f"{what} after yielding {n} value{'s' if n != 1 else ''}{more}"
    return what


def _kind_mismatch(path: str, expected: Outcome, actual: Outcome) -> Mismatch:
    e_val = expected.exception if expected.kind == "raise" else expected.value
    a_val = actual.exception if actual.kind == "raise" else actual.value
    return Mismatch(path, f"expected {_outcome_text(expected)}, "
                    f"got {_outcome_text(actual)}", e_val, a_val, show_values=False)


def compare_outcome(expected: Outcome, actual: Outcome, exact: bool = False,
                    dict_order: bool = True, callee_owned: Tuple[str, ...] = (),
                    drained: Optional[Dict[int, Tuple[Any, Drained]]] = None) -> Optional[Mismatch]:
    """Compare what a recorded call did with what the replayed call did.

    Order: whether it is a generator; the kind (return/raise); the yielded values;
    the return value or the exception; then the state of every argument recorded
    on both sides (path ``args_after.<name>``).  When ``expected.truncated``, the
    recorded generator was cut at the capture bound: only the first
    ``len(expected.yielded)`` values are compared, and how the generator ended is not.
    With ``exact``, floats must be equal rather than close (two replays compared
    with each other); ``dict_order=False`` ignores the order of plain dicts.
    ``callee_owned`` names arguments whose container the callee made itself (its
    ``**kwargs`` dict): keys it popped are no mutation a caller can see, so only
    the keys left on both sides are compared. ``drained`` keeps what lazy values
    gave across several comparisons of the same outcome (each is consumed once).
    """
    comparer = _Comparer(exact, dict_order, drained)
    e_gen, a_gen = expected.yielded is not None, actual.yielded is not None
    if e_gen != a_gen:
        return _kind_mismatch("outcome", expected, actual)
    if e_gen and expected.truncated:
        want = len(expected.yielded)
        got = list(actual.yielded[:want])
        m = comparer.run(list(expected.yielded[:len(got)]), got, "yielded")
        if m is not None:
            return m
        if len(got) < want:
            return Mismatch("yielded", f"expected at least {want} yielded values, got "
                            f"{_outcome_text(actual)}", expected.yielded,
                            actual.yielded)
    else:
        if expected.kind != actual.kind:
            return _kind_mismatch("outcome", expected, actual)
        if e_gen:
            m = comparer.run(list(expected.yielded), list(actual.yielded), "yielded")
            if m is not None:
                return m
        if expected.kind == "raise":
            m = comparer.run(expected.exception, actual.exception, "exception")
        else:
            m = comparer.run(expected.value, actual.value, "return")
        if m is not None:
            return m
    if expected.args_after is not None and actual.args_after is not None:
        for name, value in expected.args_after.items():
            if name not in actual.args_after:
                continue
            other = actual.args_after[name]
            if name in callee_owned and isinstance(value, dict) and isinstance(other, dict):
                shared = [k for k in value if k in other]
                value = {k: value[k] for k in shared}
                other = {k: other[k] for k in shared}
            m = comparer.run(value, other, f"args_after.{name}")
            if m is not None:
                return m
    return None
