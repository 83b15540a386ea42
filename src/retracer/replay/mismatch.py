"""What a difference looks like: :class:`Mismatch` (where, why, both values, a
readable description with a short diff), :class:`Outcome` (what one call did),
and the lazily built paths into a value ("return[2]['name']")."""
from __future__ import annotations

import collections
import difflib
import pprint
import re
import reprlib
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

_DIFF_MAX_LINES = 12        # lines of unified diff shown by Mismatch.describe
_DIFF_LINE_WIDTH = 160      # each diff line is cut to this width
_INLINE_REPR = 60           # reprs up to this long are shown on the headline
_PATH_KEY_REPR = 60         # dict keys longer than this are shortened in paths


class _Missing:
    """Placeholder for 'no value here' (e.g. an attribute set on one side only)."""

    _instance: Optional["_Missing"] = None

    def __new__(cls) -> "_Missing":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<missing>"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING = _Missing()


# --------------------------------------------------------------------------
# Mismatch and its description


@dataclass
class Mismatch:
    """The first difference found between a recorded and a new value."""

    path: str          # where inside the value: "return[2]['name']", "args_after.items[0]"
    reason: str        # "type differs: int != float", "value differs", "missing key 'x'"
    expected: object   # recorded sub-value
    actual: object     # new sub-value
    #: False when ``reason`` already shows both values (outcome kind mismatches)
    show_values: bool = field(default=True, repr=False, compare=False)
    #: True when the two values could not be compared at all (the reason says why):
    #: not a difference, but no proof of equality either
    uncomparable: bool = field(default=False, repr=False, compare=False)

    def describe(self, max_len: int = 300, labels: Tuple[str, str] = ("expected", "got")) -> str:
        """One readable paragraph for a user looking at a failed replay.

        The headline is ``path: reason``, then the recorded and the new value (reprs
        cut to ``max_len`` characters), then, for long or multi-line strings and
        containers, a short unified diff (at most ~12 lines) around the first
        difference.
        """
        path = self.path
        if len(path) > max(max_len, 40):
            keep = max(max_len, 40) // 2
            path = f"{path[:keep]}...{path[-keep:]}"
        head = f"{path}: {self.reason}"
        if not self.show_values:
            return head
        er = _safe_repr(self.expected, max_len)
        ar = _safe_repr(self.actual, max_len)
        le, la = labels
        if (len(er) <= _INLINE_REPR and len(ar) <= _INLINE_REPR
                and "\n" not in er and "\n" not in ar):
            sep = ": " if self.reason == "value differs" else "; "
            text = f"{head}{sep}{le} {er}, {la} {ar}"
        else:
            w = max(len(le), len(la)) + 2
            text = (f"{head}\n  {(le + ':').ljust(w)}{_indent_rest(er, w + 2)}"
                    f"\n  {(la + ':').ljust(w)}{_indent_rest(ar, w + 2)}")
        diff = _short_diff(self.expected, self.actual)
        if diff:
            text += f"\n  diff (-{le} +{la}):\n" + "\n".join(
                "    " + line for line in diff)
        return text

    def __str__(self) -> str:
        return self.describe()


def _indent_rest(text: str, width: int) -> str:
    return text.replace("\n", "\n" + " " * width)


_fallback_repr = reprlib.Repr()
_fallback_repr.maxlevel = 8
_fallback_repr.maxlist = _fallback_repr.maxtuple = _fallback_repr.maxdict = 20
_fallback_repr.maxset = _fallback_repr.maxfrozenset = _fallback_repr.maxdeque = 20
_fallback_repr.maxstring = _fallback_repr.maxother = 200


def _safe_repr(value: object, max_len: int = 300) -> str:
    """repr() that never raises and is at most about ``max_len`` characters."""
    try:
        text = repr(value)
    except RecursionError:
        try:
            text = _fallback_repr.repr(value)
        except Exception as exc:  # noqa: BLE001 - a broken __repr__ is no reason to fail
            text = _broken_repr(value, exc)
    except Exception as exc:  # noqa: BLE001
        text = _broken_repr(value, exc)
    if not isinstance(text, str):
        text = str(text)
    if max_len >= 0 and len(text) > max_len:
        text = f"{text[:max_len]}... ({len(text) - max_len} more characters)"
    return text


def _broken_repr(value: object, exc: BaseException) -> str:
    return (f"<{_qualname(type(value))} object at {id(value):#x}; "
            f"repr() failed: {type(exc).__name__}: {exc}>")


def _short_repr(value: object, max_len: int = 80) -> str:
    text = _safe_repr(value, -1)
    if len(text) > max_len:
        text = text[:max_len - 3] + "..."
    return text


def _diff_lines(value: object) -> Optional[List[str]]:
    """The lines a diff is made of, or None when a diff would not help."""
    if isinstance(value, (str, bytes, bytearray)):
        lines: List[str] = []
        for line in value.splitlines(True):
            for start in range(0, max(len(line), 1), 70):
                lines.append(_safe_repr(line[start:start + 70], -1))
        return lines
    if isinstance(value, (list, tuple, dict, set, frozenset, collections.deque)):
        try:
            if len(_safe_repr(value, 200_000)) >= 200_000:
                return None          # too large to pretty-print cheaply
            return pprint.pformat(value, width=80).splitlines()
        except Exception:  # noqa: BLE001 - RecursionError, broken reprs
            return None
    return None


_HUNK = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@$")


def _short_diff(expected: object, actual: object) -> Optional[List[str]]:
    """A unified diff of at most ~12 lines around the first difference."""
    if isinstance(expected, (str, bytes, bytearray)) and type(expected) is type(actual):
        nl = "\n" if isinstance(expected, str) else b"\n"
        if nl not in expected and nl not in actual and \
                max(len(expected), len(actual)) <= 80:
            return None
    ea, aa = _diff_lines(expected), _diff_lines(actual)
    if ea is None or aa is None:
        return None
    if len(ea) <= 1 and len(aa) <= 1 and not isinstance(expected, (str, bytes, bytearray)):
        return None
    first = 0
    while first < len(ea) and first < len(aa) and ea[first] == aa[first]:
        first += 1
    start = max(0, first - 3)
    ew, aw = ea[start:first + 40], aa[start:first + 40]
    out: List[str] = []
    for line in difflib.unified_diff(ew, aw, "expected", "got", n=2, lineterm=""):
        m = _HUNK.match(line)
        if m and start:
            line = (f"@@ -{int(m.group(1)) + start}{m.group(2) or ''} "
                    f"+{int(m.group(3)) + start}{m.group(4) or ''} @@")
        if len(line) > _DIFF_LINE_WIDTH:
            line = line[:_DIFF_LINE_WIDTH - 3] + "..."
        out.append(line)
    if not out:
        return None
    if len(out) > _DIFF_MAX_LINES:
        rest = len(out) - _DIFF_MAX_LINES
        out = out[:_DIFF_MAX_LINES] + [f"... ({rest} more diff lines)"]
    return out


# --------------------------------------------------------------------------
# Outcome


@dataclass
class Outcome:
    """What one call did."""

    kind: str                                  # "return" | "raise"
    value: object = None                       # the return value
    exception: Optional[BaseException] = None  # the exception raised (kind == "raise")
    args_after: Optional[dict] = None          # argument name -> value after the call
    yielded: Optional[list] = None             # generators: values yielded (bounded)
    truncated: bool = False                    # yielded was cut at the bound


# --------------------------------------------------------------------------
# Paths: built lazily as (parent, segment) chains, rendered only on a mismatch


_Path = Any  # str (the root) or Tuple[_Path, str]


class _Key:
    """A dict key in a path, rendered as ``[repr(key)]`` only when needed."""

    __slots__ = ("key",)

    def __init__(self, key: object) -> None:
        self.key = key


def _render(node: _Path) -> str:
    parts: List[str] = []
    while isinstance(node, tuple):
        seg = node[1]
        if type(seg) is int:
            seg = f"[{seg}]"
        elif type(seg) is _Key:
            seg = _key_segment(seg.key)
        parts.append(seg)
        node = node[0]
    parts.append(node)
    return "".join(reversed(parts))


def _key_segment(key: object) -> str:
    return f"[{_short_repr(key, _PATH_KEY_REPR)}]"


def _qualname(tp: type) -> str:
    return getattr(tp, "__qualname__", None) or getattr(tp, "__name__", repr(tp))


def _type_names(te: type, ta: type) -> Tuple[str, str]:
    """Readable names for two different types: builtins by their bare name
    (``int != float``), others with their module (``float != numpy.float64``)."""
    def full(t: type) -> str:
        module = getattr(t, "__module__", None)
        if module in (None, "builtins"):
            return _qualname(t)
        return f"{module}.{_qualname(t)}"

    ne, na = full(te), full(ta)
    if ne == na:
        ne, na = f"{ne} (class at {id(te):#x})", f"{na} (class at {id(ta):#x})"
    return ne, na


def _item(x: Any) -> Any:
    try:
        return x.item()
    except Exception:  # noqa: BLE001
        return x


def _index_segment(idx: Tuple[int, ...]) -> str:
    return "[" + ", ".join(str(i) for i in idx) + "]"


def _attr_segment(name: object) -> str:
    if isinstance(name, str) and name.isidentifier():
        return f".{name}"
    return f".__dict__{_key_segment(name)}"


def _differs(node: _Path, e: object, a: object) -> Mismatch:
    return Mismatch(_render(node), "value differs", e, a)
