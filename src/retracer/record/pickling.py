"""How captured values are serialised: pickle (protocol 5), bounded, by
reference where identity matters, never twice the same failing way.

- **Bounded**: the pickler writes into a buffer that stops it as soon as the
  value passes the size cap (a 300 MB argument is not pickled to learn that it
  is over 1 MiB).
- **Recognised at once**: file objects, sockets, locks, threads, frames,
  generators, coroutines and database connections cannot be kept; pickling
  stops at the first one met. Modules are kept by reference (their name).
- **By reference**: an object reachable from a module's globals (a sentinel
  such as ``_marker = object()``, a singleton, an enum member, a token-type
  object, a module-level lambda, a bound method of a module-level object) is
  stored as (module, attribute path), so that ``is`` holds when replay loads
  it in a process that imported the same module. Plain values (numbers,
  strings, tuples, lists, dicts, sets) are always stored by value: their
  content is what a call saw. A class its module is still defining (a
  metaclass's ``__new__`` returns it before the class statement binds its
  name) is stored by that name too: rebuilt by value, it would go through the
  metaclass again without the attributes the metaclass reads.
- **Failures remembered**: a value that plain pickle could not store is tried
  with cloudpickle (lambdas, local classes); a kind of value (the function and
  which part: arguments, result...) that failed with both is not tried again.
- **Plain objects not disturbed**: on 3.11/3.12 reading an instance's
  ``__dict__`` takes it off the interpreter's specialised attribute path for
  the rest of the run; plain objects are reduced with their state read by the
  engine without materialising the dict (``_engine.instance_state``).

:func:`dumps` is the whole interface; :mod:`retracer.record.refs` holds what a
pickle refers to and replay resolves.
"""
from __future__ import annotations

import copyreg
import io
import pickle
import sys
import types
from typing import Any, Callable, Dict, Optional, Set, Tuple

from .. import _engine
from . import refs
from .redact import Secret


class Unpicklable(Exception):
    """The value cannot be stored (the message says why, in one line)."""


class TooLarge(Exception):
    """The value is over the size cap."""


class _CappedBuffer:
    """A write-only file that refuses to hold more than ``cap`` bytes."""

    __slots__ = ("parts", "size", "cap")

    def __init__(self, cap: int) -> None:
        self.parts: list = []
        self.size = 0
        self.cap = cap

    def write(self, data: Any) -> int:
        n = len(data)
        self.size += n
        if self.size > self.cap:
            raise TooLarge(f"over {self.cap} bytes")
        self.parts.append(bytes(data))
        return n

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


def _never_types() -> Tuple[type, ...]:
    """The types whose values cannot be kept. Only modules already imported are
    looked at (no socket can exist before `socket` is imported), so finding
    out costs nothing; the tuple is made again when such a module appears."""
    import _thread
    import threading

    out = [io.IOBase, types.FrameType, types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType,
           types.TracebackType, threading.Thread, type(_thread.allocate_lock()), type(threading.RLock())]
    for module, name in (("socket", "socket"), ("sqlite3", "Connection"), ("select", "epoll"),
                         ("selectors", "BaseSelector"), ("mmap", "mmap")):
        mod = sys.modules.get(module)
        tp = getattr(mod, name, None)
        if isinstance(tp, type):
            out.append(tp)
    return tuple(out)


_NEVER: Optional[Tuple[type, ...]] = None
_NEVER_KEY = -1


def _never() -> Tuple[type, ...]:
    global _NEVER, _NEVER_KEY
    if _NEVER is None or _NEVER_KEY != len(sys.modules):
        _NEVER, _NEVER_KEY = _never_types(), len(sys.modules)
    return _NEVER


# On 3.11 and 3.12 an instance keeps its attributes inline until its __dict__ is
# asked for (see the module docstring).
_instance_state = getattr(_engine, "instance_state", None) if sys.version_info[:2] in ((3, 11), (3, 12)) else None
_PLAIN: Dict[type, bool] = {}
_OBJECT_HOOKS = tuple((n, getattr(object, n, None)) for n in ("__reduce_ex__", "__reduce__", "__getstate__"))

#: types whose values are always stored by value, never by reference (exact types:
#: a subclass of tuple such as a token type is an object whose identity matters)
_VALUE_TYPES = frozenset((type(None), bool, int, float, complex, str, bytes, bytearray, tuple, list, dict,
                          set, frozenset, range, slice, type(Ellipsis), type(NotImplemented)))


def _is_plain(tp: type) -> bool:
    """Does default pickling reduce instances of tp to (__newobj__, (tp,), __dict__)?"""
    try:
        if tp in copyreg.dispatch_table or issubclass(tp, (list, dict, type)):
            return False
        for name, base in _OBJECT_HOOKS:
            if getattr(tp, name, None) is not base:
                return False
        if hasattr(tp, "__getnewargs_ex__") or hasattr(tp, "__getnewargs__"):
            return False
        return not any("__slots__" in vars(c) for c in tp.__mro__)
    except Exception:
        return False


class ModuleIndex:
    """Which objects are reachable from modules' globals: id -> (module, attribute
    path). Paths are a global name, or a global name and one attribute of that
    object (``Name.Builtin``). The modules in scope are indexed, and the module
    of an object's type when it is first met; :meth:`refresh` (once per captured
    call) indexes new modules in scope and again any module whose number of
    globals changed."""

    def __init__(self, scope_prefixes: Tuple[str, ...] = ()) -> None:
        self.scope_prefixes = tuple(scope_prefixes)
        self._ids: Dict[int, Tuple[str, str, Any]] = {}   # id -> (module, path, the object)
        self._sizes: Dict[str, int] = {}                   # indexed module -> its number of globals then
        self._n_modules = -1

    def _index(self, name: str) -> None:
        d = getattr(sys.modules.get(name), "__dict__", None)
        if not isinstance(d, dict):
            self._sizes[name] = -1
            return
        self._sizes[name] = len(d)
        ids = self._ids
        # the script's globals set by its `if __name__ == "__main__":` block are not
        # there when replay loads it: only what importing it defines is referenced
        keep = _import_time_names(d.get("__file__")) if name == "__main__" else None
        for key, value in list(d.items()):
            if not isinstance(key, str) or key.startswith("__") or type(value) in _VALUE_TYPES \
                    or isinstance(value, types.ModuleType) or (keep is not None and key not in keep):
                continue
            if id(value) not in ids:
                ids[id(value)] = (name, key, value)
            # one level down: the attributes of module-level objects (token types,
            # class-level singletons), when they are not plain values
            inner = getattr(value, "__dict__", None)
            if isinstance(inner, (dict, types.MappingProxyType)) and \
                    (not isinstance(value, type) or getattr(value, "__module__", None) == name):
                for k2, v2 in list(inner.items()):
                    if isinstance(k2, str) and not k2.startswith("__") and type(v2) not in _VALUE_TYPES \
                            and not isinstance(v2, _NOT_REFERENCED) and id(v2) not in ids:
                        ids[id(v2)] = (name, f"{key}.{k2}", v2)

    def refresh(self) -> None:
        if len(sys.modules) != self._n_modules:
            self._n_modules = len(sys.modules)
            for name, mod in list(sys.modules.items()):
                if name in self._sizes:
                    continue
                f = getattr(mod, "__file__", None)
                if name == "__main__" or (isinstance(f, str) and f.startswith(self.scope_prefixes)):
                    self._index(name)
        for name, size in list(self._sizes.items()):
            d = getattr(sys.modules.get(name), "__dict__", None)
            if isinstance(d, dict) and len(d) != size:
                self._index(name)

    def lookup(self, obj: Any) -> Optional[Tuple[str, str]]:
        """(module, path) of an object reachable from a module's globals, or None."""
        hit = self._ids.get(id(obj))
        if hit is None:
            home = getattr(type(obj), "__module__", None)
            if not isinstance(home, str) or home in self._sizes or home not in sys.modules \
                    or home.startswith("retracer."):
                return None
            self._index(home)
            hit = self._ids.get(id(obj))
            if hit is None:
                return None
        if hit[2] is not obj:
            return None
        return hit[0], hit[1]


def _import_time_names(filename: Any) -> Set[str]:
    """Names a script's top level assigns outside `if __name__ == "__main__":`."""
    import ast

    out: Set[str] = set()
    try:
        with open(filename, "rb") as f:
            tree = ast.parse(f.read())
    except Exception:
        return out

    def is_main_guard(node: ast.AST) -> bool:
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)):
            return False
        parts = [node.test.left] + list(node.test.comparators)
        return any(isinstance(p, ast.Name) and p.id == "__name__" for p in parts) and \
            any(isinstance(p, ast.Constant) and p.value == "__main__" for p in parts)

    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if is_main_guard(node):
            todo.extend(node.orelse)
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                todo.extend(getattr(node, field, []) or [])
        else:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    out.add(sub.id)
    return out


#: attribute values never referenced one level down (descriptors, nested modules)
_NOT_REFERENCED = (types.ModuleType, types.FunctionType, staticmethod, classmethod, property)


def _class_being_defined(obj: Any) -> Optional[Tuple[str, str]]:
    """(module, qualified name) of a class whose module is still importing and
    does not hold it under that name yet (it is being defined), else None."""
    if not isinstance(obj, type):
        return None
    name, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(name, str) or not isinstance(qual, str) or "<" in qual:
        return None
    mod = sys.modules.get(name)
    if not getattr(getattr(mod, "__spec__", None), "_initializing", False):
        return None
    try:
        refs.resolve_path(mod, qual)
        return None  # bound already: pickled by name as usual
    except AttributeError:
        return name, qual


def _by_reference_candidate(obj: Any) -> bool:
    """Could ``obj`` be stored by reference? Classes and named functions pickle by
    name anyway; a module-level lambda does not, so it is looked up."""
    if isinstance(obj, (type, types.BuiltinFunctionType, types.MethodType)):
        return False
    if isinstance(obj, types.FunctionType):
        return obj.__name__ == "<lambda>"
    return True


def _refused_or_referenced(obj: Any, index: Optional[ModuleIndex]) -> Any:
    """The rules both picklers apply first: a kind of value that cannot be kept
    raises Unpicklable; a module, an object reachable from a module's globals
    and a class its module is still defining are stored by reference (the
    reduction is returned); None for everything else."""
    if isinstance(obj, _never()):
        raise Unpicklable(f"a {type(obj).__module__}.{type(obj).__qualname__} cannot be kept")
    if isinstance(obj, types.ModuleType):
        return refs.module, (obj.__name__,)
    if index is not None and _by_reference_candidate(obj):
        where = index.lookup(obj)
        if where is not None:
            return refs.ref, where
    if isinstance(obj, type):
        where = _class_being_defined(obj)
        if where is not None:
            return refs.ref, where
    return None


class _Pickler(pickle.Pickler):
    def __init__(self, file: Any, index: Optional[ModuleIndex], secret: Any = None) -> None:
        super().__init__(file, protocol=5)
        self._index = index
        self._secret = secret

    def reducer_override(self, obj: Any) -> Any:
        r = _refused_or_referenced(obj, self._index)
        if r is not None:
            return r
        if _instance_state is not None:
            tp = type(obj)
            plain = _PLAIN.get(tp)
            if plain is None:
                plain = _PLAIN[tp] = _is_plain(tp)
            if plain:
                state = _instance_state(obj)
                if state is not None:
                    if self._secret is not None:
                        self._secret.check_object(obj, state)
                    return copyreg.__newobj__, (tp,), state or None
        if self._secret is not None:
            self._secret.check_object(obj)  # raises Secret for a secret-looking attribute or key
        return NotImplemented


#: time spent importing cloudpickle, once (not counted as capture cost: a
#: one-time price, not proportional to what is captured)
IMPORT_NS = 0


def _cloud_pickler(file: Any, index: Optional[ModuleIndex],
                   secret: Any = None) -> pickle.Pickler:
    global IMPORT_NS
    import time
    t0 = time.perf_counter_ns()
    fresh = "cloudpickle" not in sys.modules
    import cloudpickle
    if fresh:
        IMPORT_NS += time.perf_counter_ns() - t0

    class Cloud(cloudpickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            r = _refused_or_referenced(obj, index)
            if r is not None:
                return r
            if secret is not None:
                secret.check_object(obj)
            return super().reducer_override(obj)

    return Cloud(file, protocol=5)


class Serializer:
    """Pickles captured values with the rules above; remembers what failed.

    ``dumps(value, key)`` returns the pickle; ``key`` names the kind of value
    (e.g. (fid, "args")) for the failure memory. Raises Unpicklable or TooLarge.
    """

    def __init__(self, max_bytes: int, index: Optional[ModuleIndex] = None,
                 secret: Any = None) -> None:
        self.max_bytes = max_bytes
        self.index = index
        #: a retracer.record.redact.Redactor: raises redact.Secret for a value holding
        #: a secret-looking key or attribute (None: nothing is redacted)
        self.secret = secret
        self._cloud_only: Set[Any] = set()     # keys plain pickle failed for
        self._hopeless: Dict[Any, str] = {}    # keys both failed for: why
        self.failures = 0

    def dumps(self, value: Any, key: Any = None) -> bytes:
        why = self._hopeless.get(key) if key is not None else None
        if why is not None:
            raise Unpicklable(why)
        if self.secret is not None:
            self.secret.check_value(value)  # the dicts inside lists, tuples and dicts
        if key is None or key not in self._cloud_only:
            buf = _CappedBuffer(self.max_bytes)
            try:
                _Pickler(buf, self.index, self.secret).dump(value)
                return buf.getvalue()
            except (TooLarge, Unpicklable, Secret):
                raise
            except RecursionError:
                raise Unpicklable("the value is nested too deeply") from None
            except Exception:
                self.failures += 1
                if key is not None:
                    self._cloud_only.add(key)
        buf = _CappedBuffer(self.max_bytes)
        try:
            _cloud_pickler(buf, self.index, self.secret).dump(value)
            return buf.getvalue()
        except (TooLarge, Secret):
            raise
        except Unpicklable as e:
            why = str(e)
        except RecursionError:
            why = "the value is nested too deeply"
        except Exception as e:
            why = f"{type(e).__name__}: {e}"[:200]
        self.failures += 1
        if key is not None:
            self._hopeless[key] = why
        raise Unpicklable(why)


def dumps(obj: Any, max_bytes: int) -> bytes:
    """Pickle ``obj`` with the rules above (no failure memory, no module index).
    Raises Unpicklable or TooLarge."""
    return Serializer(max_bytes).dumps(obj)


#: a callable turning a value into bytes, as Capturer uses it
Dumps = Callable[[Any, Any], bytes]
