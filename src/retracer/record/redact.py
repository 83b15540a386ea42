"""Which captured values look secret (README "What a trace stores").

A *name* -- an argument name, a key of a dict met anywhere inside a captured
value (``**kwargs``, nested configuration dicts, the attributes of an object,
which pickle stores as a dict), or the name of the function whose return value
it is -- is split into lowercase parts at ``_``, ``-``, ``.``, spaces, digits
and camelCase boundaries (``apiKey`` -> ``api``, ``key``). A listed word
(itself split the same way: ``api_key`` -> ``api``, ``key``) matches a name
when its parts appear in the name's parts, consecutively:

- arguments and dict keys: anywhere (``password``, ``db_password``,
  ``X-Api-Key``, ``authToken``, ``access_token``);
- function names (their return value is secret): at the end (``get_token``,
  ``load_api_key``, ``password``), except when the function returns None or a
  bool (``check_password``).

``token`` alone is also the everyday name of a lexer's token (sqlparse passes
thousands of them), so the *weak* word ``token`` redacts a value named exactly
``token`` -- or a function whose name ends with it -- only when the value is a
string or bytes (what a secret token is); ``auth_token``, ``access_token``,
``token_secret`` are always secret.
"""
from __future__ import annotations

import itertools
import re
import sys
import types
from typing import Any, Iterable, List, Optional, Sequence, Tuple

from .. import _engine

#: words that alone are ordinary names: only a str/bytes value named exactly so is secret
WEAK_WORDS = frozenset({("token",)})
#: keys of one dict looked at (a secret is in small configuration dicts, not in 10,000-key data)
MAX_KEYS = 1000
#: how deep :meth:`Redactor.find` looks to name where a secret key was found
FIND_DEPTH = 6
#: elements of dicts, lists, tuples and sets looked at per stored value
MAX_VISITS = 5000
#: a list, tuple or set longer than this whose first items are all plain values is not walked
_FLAT_SAMPLE = 64

_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_TEXT = (str, bytes, bytearray)


class Secret(Exception):
    """A captured value holds something secret-looking (the message says which)."""


def split_name(name: str) -> Tuple[str, ...]:
    return tuple(p.lower() for p in _PART.findall(name))


class Redactor:
    """Matches names against the redaction list (see the module docstring)."""

    def __init__(self, words: Iterable[str]) -> None:
        parts = []
        for w in words:
            p = split_name(str(w))
            if p and p not in parts:
                parts.append(p)
        self.words: List[Tuple[str, ...]] = parts
        # a cheap first look: does the name contain a listed word at all (case-insensitive,
        # with or without separators between its parts)?
        alts = ["[^a-z0-9]*".join(re.escape(x) for x in p) for p in parts]
        self._pre = re.compile("|".join(alts), re.I) if alts else None
        self._keys: dict = {}  # dict key -> _key_kind (keys repeat: records of the same shape)

    def __bool__(self) -> bool:
        return bool(self.words)

    def _matches(self, name: str, at_end: bool) -> Optional[Tuple[str, ...]]:
        if self._pre is None or not self._pre.search(name):
            return None
        got = split_name(name)
        for w in self.words:
            n = len(w)
            if at_end:
                if got[-n:] == w:
                    return w
                continue
            for i in range(len(got) - n + 1):
                if got[i:i + n] == w:
                    return w
        return None

    def name_is_secret(self, name: Any, value: Any) -> bool:
        """Is a value of this name (argument, dict key, attribute) secret?"""
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).decode("latin-1")
        if not isinstance(name, str) or len(name) > 200:
            return False
        w = self._matches(name, at_end=False)
        if w is None:
            return False
        if w in WEAK_WORDS and split_name(name) == w:
            return isinstance(value, _TEXT)
        return True

    def function_is_secret(self, name: Any) -> Optional[bool]:
        """None: the function's results are not secret; True: they are; False:
        only a str/bytes result is (a weak word)."""
        if not isinstance(name, str) or name.startswith("<"):
            return None
        w = self._matches(name, at_end=True)
        if w is None:
            return None
        return w not in WEAK_WORDS

    def check_value(self, value: Any, fresh: bool = True) -> None:
        """Raise Secret if a dict inside ``value`` -- through dicts, lists, tuples and
        sets -- has a secret key. Objects met on the way are left to
        :meth:`check_object` (the pickler calls it for each). The walk is bounded:
        at most :data:`MAX_VISITS` elements per stored value (``fresh`` starts a value)."""
        if self._pre is None:
            return
        if fresh:
            self._left = MAX_VISITS
        left = self._left
        todo = [value]
        while todo and left > 0:
            v = todo.pop()
            t = type(v)
            if t is dict or (t not in _LEAVES and isinstance(v, dict)):
                self._check_keys(v)
                vals = dict.values(v)
            elif t is list or t is tuple or t is set or t is frozenset:
                vals = v
                if len(v) > _FLAT_SAMPLE:
                    # a long sequence of plain values (numbers, strings) holds no dict:
                    # judged by its first items, it is not walked to the end
                    head = list(itertools.islice(v, _FLAT_SAMPLE))
                    if all(type(x) in _LEAVES for x in head):
                        left -= _FLAT_SAMPLE
                        continue
            else:
                continue
            for x in vals:
                left -= 1
                if left <= 0:
                    break
                tx = type(x)
                if tx is dict or tx is list or tx is tuple or tx is set or tx is frozenset:
                    todo.append(x)
        self._left = left

    def _check_keys(self, d: Any) -> None:
        cache = self._keys
        for i, (k, v) in enumerate(dict.items(d)):
            if i >= MAX_KEYS:
                return
            t = type(k)
            if t is not str and t is not bytes:
                continue
            kind = cache.get(k)
            if kind is None:
                kind = self._key_kind(k)
                if len(cache) < 4096:
                    cache[k] = kind
            if kind and (kind == 1 or isinstance(v, _TEXT)):
                raise Secret(_key_text(k))

    def _key_kind(self, k: Any) -> int:
        """0: not secret; 1: secret; 2: secret when its value is a str/bytes (a weak word)."""
        text = k if isinstance(k, str) else k.decode("latin-1")
        if len(text) > 200 or not self._pre.search(text):
            return 0
        w = self._matches(text, at_end=False)
        if w is None:
            return 0
        return 2 if w in WEAK_WORDS and split_name(text) == w else 1

    def check_object(self, obj: Any, state: Any = None) -> None:
        """Raise Secret if an object the pickler stores holds a secret: a dict
        subclass or a sequence subclass by its items, any other object by its
        attributes (``state``: its instance dict when the caller has it)."""
        if self._pre is None or isinstance(obj, _NO_ATTRS):
            return
        if isinstance(obj, (dict, list, tuple, set, frozenset)):
            self.check_value(obj, fresh=False)
            return
        if state is None:
            if not getattr(type(obj), "__dictoffset__", 0):
                return
            try:
                state = _read_attrs(obj)
            except Exception:
                return
        if isinstance(state, dict):
            self.check_value(state, fresh=False)

    def find(self, name: str, value: Any) -> Optional[str]:
        """Where inside the argument ``name`` a secret is, as ``cfg['db']['password']``
        or ``o.api_key``, or None (a bounded walk that runs no code of the program:
        only called for a value found secret)."""
        seen = set()

        def walk(v: Any, path: str, depth: int) -> Optional[str]:
            if depth > FIND_DEPTH or id(v) in seen:
                return None
            seen.add(id(v))
            if isinstance(v, dict):
                items = list(dict.items(v))[:MAX_KEYS]
                for k, x in items:
                    if self.name_is_secret(k, x):
                        return f"{path}[{_key_text(k)}]"
                for k, x in items:
                    got = walk(x, f"{path}[{_key_text(k)}]", depth + 1)
                    if got:
                        return got
                return None
            if isinstance(v, (list, tuple, set, frozenset)):
                for j, x in enumerate(list(v)[:100]):
                    got = walk(x, f"{path}[{j}]", depth + 1)
                    if got:
                        return got
                return None
            if isinstance(v, _NO_ATTRS) or not getattr(type(v), "__dictoffset__", 0):
                return None
            try:
                attrs = _read_attrs(v)
            except Exception:
                return None
            if isinstance(attrs, dict):
                for k, x in list(dict.items(attrs))[:MAX_KEYS]:
                    if isinstance(k, str) and self.name_is_secret(k, x):
                        return f"{path}.{k}"
                for k, x in list(dict.items(attrs))[:MAX_KEYS]:
                    got = walk(x, f"{path}.{k}", depth + 1)
                    if got:
                        return got
            return None

        try:
            return walk(value, name, 0)
        except Exception:
            return None


_LEAVES = frozenset({str, bytes, int, float, bool, type(None), bytearray, complex})
_NO_ATTRS = (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType,
             types.CodeType)

# On 3.11/3.12 reading an object's __dict__ takes it off the specialised attribute
# path for the rest of the run; the engine reads the attributes without that.
_instance_state = getattr(_engine, "instance_state", None) if sys.version_info[:2] in ((3, 11), (3, 12)) else None


def _read_attrs(obj: Any) -> Any:
    if _instance_state is not None:
        state = _instance_state(obj)
        if state is not None:
            return state
    return object.__getattribute__(obj, "__dict__")


def _key_text(k: Any) -> str:
    text = repr(k)
    return text if len(text) <= 60 else text[:57] + "..."


def redactor(words: Sequence[str]) -> Redactor:
    return Redactor(words)
