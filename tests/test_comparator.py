"""Tests for the replay comparator (retracer.replay.comparator).

Every rule has a test where a change must be caught, with the message a user would
read, and a test where an equivalent value must be accepted.
"""

from __future__ import annotations

import collections
import dataclasses
import decimal
import functools
import importlib
import importlib.util
import math
import os
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

from helpers import run_python

SRC = Path(__file__).resolve().parent.parent / "src"


comparator = importlib.import_module("retracer.replay.comparator")
Mismatch = comparator.Mismatch
Outcome = comparator.Outcome
compare = comparator.compare
compare_outcome = comparator.compare_outcome
MISSING = comparator.MISSING


def caught(expected, actual, path="value"):
    m = compare(expected, actual, path)
    assert m is not None, f"change not caught: {expected!r} vs {actual!r}"
    text = m.describe()
    assert isinstance(text, str) and text
    return m


def accepted(expected, actual):
    m = compare(expected, actual)
    assert m is None, f"equivalent values rejected: {m.describe()}"


# ---------------------------------------------------------------- types


def test_type_int_vs_float_caught():
    m = caught(1, 1.0, "return")
    assert m.path == "return"
    assert m.reason == "type differs: int != float"
    assert m.describe() == "return: type differs: int != float; expected 1, got 1.0"


def test_type_int_vs_bool_caught():
    m = caught(1, True)
    assert m.reason == "type differs: int != bool"
    m = caught(False, 0)
    assert m.reason == "type differs: bool != int"


def test_type_subclass_caught():
    class Base:
        pass

    class Child(Base):
        pass

    m = caught(Base(), Child())
    assert m.reason == (f"type differs: {__name__}.test_type_subclass_caught.<locals>.Base"
                        f" != {__name__}.test_type_subclass_caught.<locals>.Child")


def test_type_same_name_different_class_is_qualified():
    A1 = type("A", (), {"__module__": "pkg.one"})
    A2 = type("A", (), {"__module__": "pkg.two"})
    m = caught(A1(), A2())
    assert m.reason == "type differs: pkg.one.A != pkg.two.A"


def test_type_str_subclass_caught():
    class Name(str):
        pass

    m = caught("x", Name("x"))
    assert m.reason == \
        f"type differs: str != {__name__}.test_type_str_subclass_caught.<locals>.Name"


def test_same_scalars_accepted():
    accepted(3, 3)
    accepted(10 ** 30, 10 ** 30 + 0)
    accepted(True, True)
    accepted(None, None)
    accepted("abc", "".join(["a", "bc"]))
    accepted(b"xy", bytes([120, 121]))
    accepted(bytearray(b"xy"), bytearray(b"xy"))


def test_int_value_caught():
    m = caught([0, 1], [0, 2], "return")
    assert m.describe() == "return[1]: value differs: expected 1, got 2"


# ---------------------------------------------------------------- floats


def test_float_value_caught_with_readable_message():
    m = caught([0, 0.5], [0, 0.25], "return")
    assert m.path == "return[1]"
    assert m.reason == "value differs"
    assert (m.expected, m.actual) == (0.5, 0.25)
    assert m.describe() == "return[1]: value differs: expected 0.5, got 0.25"


def test_float_within_isclose_accepted():
    accepted(0.1 + 0.2, 0.3)
    accepted(1e300, 1e300 * (1 + 1e-12))
    accepted(0.0, -0.0)
    accepted(math.inf, float("inf"))


def test_float_outside_isclose_caught():
    caught(1.0, 1.0 + 1e-6)       # rel_tol is 1e-9
    caught(0.0, 1e-12)            # abs_tol is 0: nothing is close to zero but zero
    caught(math.inf, -math.inf)
    caught(math.inf, 1e308)


def test_nan_equals_nan():
    a, b = float("nan"), float("nan")
    assert a is not b
    accepted(a, b)
    accepted([1.0, a], [1.0, b])
    accepted({"k": (a,)}, {"k": (b,)})


def test_nan_vs_number_caught():
    m = caught(float("nan"), 1.0)
    assert m.describe() == "value: value differs: expected nan, got 1.0"
    caught(1.0, float("nan"))


def test_floats_nested_in_containers_use_tolerance():
    accepted({"a": [0.1 + 0.2, (1.0 / 3,)]}, {"a": [0.3, (0.3333333333333333,)]})
    m = caught({"a": [0.3, (1.0,)]}, {"a": [0.3, (1.5,)]}, "return")
    assert m.path == "return['a'][1][0]"


def test_complex_component_wise():
    accepted(complex(0.1 + 0.2, 1), complex(0.3, 1))
    accepted(complex(float("nan"), 2), complex(float("nan"), 2))
    m = caught(1 + 2j, 1 + 3j)
    assert m.describe() == "value: value differs: expected (1+2j), got (1+3j)"
    caught(complex(float("nan"), 2), complex(1, 2))


def test_values_by_eq_without_state():
    import datetime

    accepted(datetime.date(2020, 1, 1), datetime.date(2020, 1, 1))
    accepted(datetime.timedelta(seconds=60), datetime.timedelta(minutes=1))
    m = caught(datetime.date(2020, 1, 1), datetime.date(2021, 1, 1), "return")
    assert m.describe() == ("return: value differs: expected datetime.date(2020, 1, 1), "
                            "got datetime.date(2021, 1, 1)")


def test_decimal_and_fraction():
    import fractions

    accepted(decimal.Decimal("1.10"), decimal.Decimal("1.1"))
    accepted(decimal.Decimal("NaN"), decimal.Decimal("NaN"))
    caught(decimal.Decimal("1.1"), decimal.Decimal("1.2"))
    accepted(fractions.Fraction(1, 3), fractions.Fraction(2, 6))
    caught(fractions.Fraction(1, 3), fractions.Fraction(1, 4))


# ---------------------------------------------------------------- sequences


def test_list_length_caught():
    m = caught([1, 2, 3], [1, 2, 3, 4], "return")
    assert m.path == "return"
    assert m.reason == "length differs: 3 != 4"
    assert m.describe() == ("return: length differs: 3 != 4; "
                            "expected [1, 2, 3], got [1, 2, 3, 4]")


def test_list_element_path():
    m = caught([[1, 2], [3, [4, 5]]], [[1, 2], [3, [4, 6]]], "return")
    assert m.path == "return[1][1][1]"


def test_first_mismatch_is_reported():
    m = caught([1, [2, 3], 4], [1, [2, 9], 8])
    assert m.path == "value[1][1]"


def test_lists_and_tuples_accepted():
    accepted([1, "a", None, (2.0, [3])], [1, "a", None, (2.0, [3])])
    accepted(list(range(1000)), list(range(1000)))
    accepted(tuple(range(10)), tuple(range(10)))
    accepted([], [])


def test_long_atomic_list_difference_caught():
    # the fast path (== on atomic elements) must not hide a type or value change
    caught(list(range(100)), list(range(99)) + [99.0])
    caught([1] * 50, [1] * 49 + [True])
    m = caught(list(range(100)), list(range(50)) + [-1] + list(range(51, 100)))
    assert m.path == "value[50]"


def test_tuple_vs_list_caught():
    m = caught((1, 2), [1, 2])
    assert m.reason == "type differs: tuple != list"


def test_namedtuple_fields():
    Point = collections.namedtuple("Point", "x y")
    Other = collections.namedtuple("Other", "x y")
    accepted(Point(1, 0.1 + 0.2), Point(1, 0.3))
    m = caught(Point(1, 2), Point(1, 3), "return")
    assert m.path == "return.y"
    m = caught(Point(1, 2), Other(1, 2))
    assert m.reason == f"type differs: {__name__}.Point != {__name__}.Other"
    m = caught(Point(1, 2), (1, 2))
    assert m.reason.startswith("type differs")


def test_deque():
    accepted(collections.deque([1, 2.0]), collections.deque([1, 2.0]))
    m = caught(collections.deque([1, 2]), collections.deque([1, 5]))
    assert m.path == "value[1]"
    m = caught(collections.deque([1], maxlen=3), collections.deque([1], maxlen=4))
    assert m.reason == "maxlen differs: 3 != 4"
    m = caught(collections.deque([1]), collections.deque([1, 2]))
    assert m.reason == "length differs: 1 != 2"


def test_list_subclass_state_compared():
    class Tagged(list):
        pass

    x, y = Tagged([1, 2]), Tagged([1, 2])
    x.tag, y.tag = "a", "a"
    accepted(x, y)
    y.tag = "b"
    m = caught(x, y)
    assert m.path == "value.__dict__['tag']"
    assert caught(Tagged([1, 2]), Tagged([1, 2, 3])).reason == "length differs: 2 != 3"
    assert caught(Tagged([1, 2]), Tagged([1, 5])).path == "value[1]"


# ---------------------------------------------------------------- strings


def test_string_value_caught():
    m = caught({"name": "alice"}, {"name": "bob"}, "return")
    assert m.describe() == "return['name']: value differs: expected 'alice', got 'bob'"


def test_long_string_reports_index():
    e = "a" * 100
    m = caught(e, e[:60] + "b" + e[61:])
    assert m.reason == "value differs (first difference at index 60)"


def test_multiline_string_has_diff():
    e = "".join(f"line {i}\n" for i in range(30))
    a = e.replace("line 17\n", "line seventeen\n")
    m = caught(e, a)
    assert m.reason == "value differs (first difference at line 18, column 6)"
    text = m.describe()
    assert "--- expected" in text and "+++ got" in text
    assert "-'line 17\\n'" in text
    assert "+'line seventeen\\n'" in text
    assert "@@ -16," in text          # hunk numbers are those of the whole text
    diff_lines = text.split("diff (-expected +got):\n", 1)[1].splitlines()
    assert len(diff_lines) <= 13


def test_bytes_caught_and_accepted():
    accepted(b"\x00\x01", b"\x00\x01")
    m = caught(b"abc", b"abd")
    assert m.describe() == "value: value differs: expected b'abc', got b'abd'"
    m = caught(b"x\n" * 50, b"x\n" * 49 + b"y\n")
    assert "first difference at line 50" in m.reason


def test_str_vs_bytes_caught():
    assert caught("a", b"a").reason == "type differs: str != bytes"


# ---------------------------------------------------------------- dicts


def test_dict_missing_key():
    m = caught({"x": 1, "y": 2}, {"y": 2}, "return")
    assert m.reason == "missing key 'x'"
    assert m.path == "return"
    assert m.describe().startswith("return: missing key 'x'; expected {'x': 1, 'y': 2}")


def test_dict_unexpected_key():
    m = caught({"y": 2}, {"y": 2, "z": 3, "w": 4})
    assert m.reason == "unexpected key 'z' (and 1 more unexpected)"


def test_dict_value_path_uses_key_repr():
    m = caught({"a": {1: [0, {"k": "v"}]}}, {"a": {1: [0, {"k": "w"}]}}, "return")
    assert m.path == "return['a'][1][1]['k']"


def test_dict_key_type_caught():
    m = caught({1: "a"}, {1.0: "a"})
    assert m.reason == "type of key 1 differs: int != float"
    m = caught({True: "a"}, {1: "a"})
    assert "bool != int" in m.reason


def test_dict_order_compared_unless_relaxed():
    # iteration order is observable (issue 11: a get() that forgets to move a key
    # to the end keeps == but changes the order): compared by default
    m = caught({"a": 1, "b": [2.0]}, {"b": [2.0], "a": 1})
    assert m.reason == "key order differs: ['a', 'b'] != ['b', 'a']"
    caught({str(i): i for i in range(50)}, {str(i): i for i in reversed(range(50))})
    # dict_order=False (replay --ignore-dict-order) relaxes it for plain dicts
    assert compare({"a": 1, "b": [2.0]}, {"b": [2.0], "a": 1}, dict_order=False) is None
    assert compare({str(i): i for i in range(50)}, {str(i): i for i in reversed(range(50))},
                   dict_order=False) is None
    # the attributes of an object are not ordered
    accepted(Plain(a=1, b=2), Plain(b=2, a=1))


def test_dict_many_atomic_values():
    e = {str(i): i for i in range(100)}
    a = dict(e)
    accepted(e, a)
    a["42"] = 42.0
    m = caught(e, a)
    assert m.path == "value['42']" and m.reason == "type differs: int != float"


def test_ordered_dict_order():
    od = collections.OrderedDict
    accepted(od([("a", 1), ("b", 2)]), od([("a", 1), ("b", 2)]))
    m = caught(od([("a", 1), ("b", 2)]), od([("b", 2), ("a", 1)]))
    assert m.reason == "key order differs: ['a', 'b'] != ['b', 'a']"
    m = caught(od(a=1), {"a": 1})
    assert m.reason == "type differs: collections.OrderedDict != dict"


def test_defaultdict_and_counter():
    dd = collections.defaultdict
    accepted(dd(list, a=[1]), dd(list, a=[1]))
    m = caught(dd(list, a=[1]), dd(set, a=[1]))
    assert m.path == "value.default_factory"
    assert m.reason == "class differs: builtins.list != builtins.set"
    accepted(collections.Counter("abca"), collections.Counter("aabc"))
    m = caught(collections.Counter(a=1), collections.Counter(a=1, b=0))
    assert m.reason == "unexpected key 'b'"


# ---------------------------------------------------------------- sets


def test_sets():
    accepted({1, 2, 3}, {3, 2, 1})
    accepted(frozenset(["a"]), frozenset(["a"]))
    m = caught({1, 2, 3}, {2, 3, 4})
    assert m.reason == "set differs: missing [1], unexpected [4]"
    m = caught({1, 2}, {1})
    assert m.reason == "set differs: missing [2]"
    assert caught({1}, frozenset([1])).reason == "type differs: set != frozenset"


# ---------------------------------------------------------------- exceptions


def test_exception_args_caught():
    m = caught(ValueError("bad input"), ValueError("bad value"), "exception")
    assert m.path == "exception.args[0]"
    assert m.describe() == ("exception.args[0]: value differs: "
                            "expected 'bad input', got 'bad value'")


def test_exception_type_caught():
    m = caught(ValueError("x"), TypeError("x"), "exception")
    assert m.describe() == ("exception: type differs: ValueError != TypeError; "
                            "expected ValueError('x'), got TypeError('x')")
    m = caught(LookupError("k"), KeyError("k"), "exception")
    assert m.reason == "type differs: LookupError != KeyError"


def test_exception_equivalent_accepted():
    accepted(ValueError("bad", 3), ValueError("bad", 3))
    accepted(KeyError("k"), KeyError("k"))
    accepted(ArithmeticError(0.1 + 0.2), ArithmeticError(0.3))
    m = caught(ValueError("bad", 3), ValueError("bad"))
    assert m.path == "value.args" and m.reason == "length differs: 2 != 1"


def test_custom_exception_public_attributes_compared():
    class Err(Exception):
        def __init__(self, msg, code):
            super().__init__(msg)
            self.code = code
            self._cache = object()            # private: not compared

    accepted(Err("m", 1), Err("m", 1))
    # rule (issue 11): type, args, message and public attributes
    assert caught(Err("m", 1), Err("m", 2)).path == "value.code"
    caught(Err("m", 1), Err("n", 1))


# ---------------------------------------------------------------- objects


class Money:
    def __init__(self, cents, cache=None):
        self.cents = cents
        self.cache = cache

    def __eq__(self, other):
        if not isinstance(other, Money):
            return NotImplemented
        return self.cents == other.cents

    __hash__ = None

    def __repr__(self):
        return f"Money({self.cents})"


def test_user_eq_used():
    # the cache differs, but __eq__ says the values are equal: accepted
    accepted(Money(100, cache=[1]), Money(100, cache=None))


def test_user_eq_false_is_localized():
    m = caught({"total": Money(100)}, {"total": Money(250)}, "return")
    assert m.path == "return['total'].cents"
    assert m.describe() == "return['total'].cents: value differs: expected 100, got 250"


def test_user_eq_false_without_state_difference():
    class Strict:
        def __init__(self, v):
            self.v = v

        def __eq__(self, other):
            return self.v == other.v        # exact, no tolerance

    m = caught(Strict(0.1 + 0.2), Strict(0.3))
    assert m.path == "value"
    assert m.reason == "not equal (by test_user_eq_false_without_state_difference." \
                       "<locals>.Strict.__eq__)"


class Fragile:
    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        raise RuntimeError("cannot compare")

    __hash__ = None


def test_user_eq_raising_falls_back_to_state():
    accepted(Fragile([1, 2]), Fragile([1, 2]))
    m = caught(Fragile([1, 2]), Fragile([1, 3]))
    assert m.path == "value.v[1]"


class NotImpl:
    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        return NotImplemented

    __hash__ = None


def test_user_eq_not_implemented_falls_back_to_state():
    accepted(NotImpl(1), NotImpl(1))
    assert caught(NotImpl(1), NotImpl(2)).path == "value.v"


class Plain:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_state_compared_without_eq():
    accepted(Plain(a=1, b=[0.1 + 0.2]), Plain(a=1, b=[0.3]))
    m = caught(Plain(a=1, items=[{"n": 1}]), Plain(a=1, items=[{"n": 2}]), "args_after.x")
    assert m.path == "args_after.x.items[0]['n']"


def test_simple_namespace_by_attributes():
    accepted(types.SimpleNamespace(x=0.1 + 0.2, y=float("nan")),
             types.SimpleNamespace(x=0.3, y=float("nan")))
    m = caught(types.SimpleNamespace(x=1), types.SimpleNamespace(x=2))
    assert m.path == "value.x"


def test_state_missing_and_unexpected_attribute():
    m = caught(Plain(a=1, b=2), Plain(a=1))
    assert m.reason == "missing attribute 'b'"
    assert m.expected == 2 and m.actual is MISSING
    assert "got <missing>" in m.describe()
    m = caught(Plain(a=1), Plain(a=1, c=3))
    assert m.reason == "unexpected attribute 'c'"


def test_objects_without_state_accepted():
    accepted(object(), object())


class Slotted:
    __slots__ = ("x", "y")

    def __init__(self, x, y=MISSING):
        self.x = x
        if y is not MISSING:
            self.y = y


class SlottedChild(Slotted):
    __slots__ = ("__private", "z")

    def __init__(self, x, z, p):
        super().__init__(x)
        self.z = z
        self.__private = p


def test_slots_compared():
    accepted(Slotted(1), Slotted(1))                 # y unset on both sides
    accepted(Slotted(1, [2.0]), Slotted(1, [2.0]))
    m = caught(Slotted(1, 2), Slotted(1, 3), "return")
    assert m.path == "return.y"
    m = caught(Slotted(1, 2), Slotted(1))
    assert m.reason == "missing attribute 'y'"
    m = caught(Slotted(1), Slotted(1, 2))
    assert m.reason == "unexpected attribute 'y'"


def test_slots_across_mro_and_private_names():
    accepted(SlottedChild(1, 2, 3), SlottedChild(1, 2, 3))
    assert caught(SlottedChild(1, 2, 3), SlottedChild(9, 2, 3)).path == "value.x"
    assert caught(SlottedChild(1, 2, 3), SlottedChild(1, 2, 4)).path == \
        "value._SlottedChild__private"


def test_dict_and_slots_together():
    class Both(Slotted):
        pass                      # no __slots__: instances also get a __dict__

    a, b = Both(1, 2), Both(1, 2)
    a.extra = b.extra = "e"
    accepted(a, b)
    b.extra = "f"
    assert caught(a, b).path == "value.extra"
    b.extra = "e"
    b.x = 5
    assert caught(a, b).path == "value.x"


@dataclasses.dataclass
class Point:
    x: float
    y: float
    label: str = "p"
    cache: list = dataclasses.field(default_factory=list, compare=False)


def test_dataclass_fields_with_float_rule():
    accepted(Point(0.1 + 0.2, float("nan")), Point(0.3, float("nan")))
    accepted(Point(1, 2, cache=[1]), Point(1, 2, cache=[2]))    # compare=False
    m = caught(Point(1.0, 2.0, "a"), Point(1.0, 2.0, "b"), "return")
    assert m.describe() == "return.label: value differs: expected 'a', got 'b'"


def test_dataclass_with_own_eq_uses_it():
    @dataclasses.dataclass(eq=False)
    class Loose:
        v: float

        def __eq__(self, other):
            return abs(self.v - other.v) < 1

    accepted(Loose(1.0), Loose(1.5))
    caught(Loose(1.0), Loose(3.0))


# ---------------------------------------------------------------- cycles, depth


def test_self_referencing_list_does_not_hang():
    a = [1]
    a.append(a)
    b = [1]
    b.append(b)
    start = time.monotonic()
    accepted(a, b)
    assert time.monotonic() - start < 1


def test_cycle_with_a_difference_is_caught():
    a = [1]
    a.append(a)
    b = [2]
    b.append(b)
    assert caught(a, b).path == "value[0]"
    a = Plain(v=1)
    a.me = a
    b = Plain(v=1)
    b.me = b
    accepted(a, b)
    b.v = 2
    assert caught(a, b).path == "value.v"


def _nested(depth, leaf):
    root = cur = []
    for _ in range(depth):
        nxt = []
        cur.append(nxt)
        cur = nxt
    cur.append(leaf)
    return root


def test_deep_nesting_no_recursion_error():
    accepted(_nested(1000, 1), _nested(1000, 1))
    m = compare(_nested(1000, 1), _nested(1000, 2))
    assert m is not None
    assert m.path == "value" + "[0]" * 1000 + "[0]"
    text = m.describe()                           # must not raise either
    assert len(text) < 2000 and "..." in text


def test_very_deep_nesting_of_objects_and_dicts():
    def chain(n, leaf):
        node = {"leaf": leaf}
        for _ in range(n):
            node = Plain(next=node)
        return node

    accepted(chain(20_000, 1.0), chain(20_000, 1.0))
    m = compare(chain(5_000, 1.0), chain(5_000, 2.0))
    assert m is not None and m.path.endswith(".next['leaf']")


def test_deep_value_with_user_eq_recursion():
    class Node:
        def __init__(self, nxt):
            self.nxt = nxt

        def __eq__(self, other):                  # recursive: RecursionError when deep
            return self.nxt == other.nxt

    def chain(n, leaf):
        node = leaf
        for _ in range(n):
            node = Node(node)
        return node

    accepted(chain(2_500, 1), chain(2_500, 1))
    m = compare(chain(2_500, 1), chain(2_500, 2))
    assert m is not None
    assert m.path == "value" + ".nxt" * 2_500 and m.reason == "value differs"


# ---------------------------------------------------------------- describe


def test_describe_truncates_huge_values():
    big = "x" * 1_000_000
    m = caught(big, big[:-1] + "y")
    text = m.describe()
    assert len(text) < 3000
    assert "more characters" in text
    assert "first difference at index 999999" in text
    assert "-'" in text and "+'" in text and "y'" in text      # the diff shows the end
    assert len(m.describe(max_len=50)) < len(text)


def test_describe_huge_container_is_short():
    m = caught(list(range(100_000)), list(range(99_999)) + [-1])
    assert m.path == "value[99999]"
    m = caught({"k": list(range(100_000))}, {"k": list(range(100_001))})
    text = m.describe()
    assert m.reason == "length differs: 100000 != 100001"
    assert len(text) < 3000


def test_describe_container_diff():
    e = {"users": [{"name": f"user{i}", "age": i} for i in range(10)]}
    a = {"users": [{"name": f"user{i}", "age": i} for i in range(10)] + [{"x": 1}]}
    m = caught(e, a, "return")
    text = m.describe()
    assert text.startswith("return['users']: length differs: 10 != 11\n")
    assert "\n  expected: [" in text and "\n  got:      [" in text
    assert "+ {'x': 1}" in text or "+  {'x': 1}" in text


def test_describe_survives_broken_repr():
    class Ugly:
        def __init__(self, v):
            self.v = v

        def __repr__(self):
            raise RuntimeError("no repr")

    m = caught([Ugly(1)], [Ugly(1), 2])
    text = m.describe()
    assert "repr() failed" in text


def test_mismatch_str_is_describe():
    m = caught(1, 2)
    assert str(m) == m.describe()


# ---------------------------------------------------------------- functions, classes, modules


def helper_a():
    return 1


def helper_b():
    return 1


def test_functions_by_identity_or_name():
    accepted(helper_a, helper_a)
    # a function object with the same module and qualname (e.g. re-created) is equal
    clone = types.FunctionType(helper_a.__code__, helper_a.__globals__, "helper_a")
    clone.__qualname__ = helper_a.__qualname__
    accepted(helper_a, clone)
    m = caught(helper_a, helper_b)
    assert m.reason == f"function differs: {__name__}.helper_a != {__name__}.helper_b"


def test_builtins_classes_modules():
    accepted(len, len)
    assert caught(len, abs).reason == "function differs: builtins.len != builtins.abs"
    accepted(int, int)
    assert caught(int, float).reason == "class differs: builtins.int != builtins.float"
    accepted(math, math)
    assert caught(math, os).reason == "module differs: math != os"


def test_bound_methods():
    accepted(Plain(a=1).__init__, Plain(a=1).__init__)
    m = caught(Plain(a=1).__init__, Plain(a=2).__init__)
    assert m.path == "value.__self__.a"
    assert caught([1].append, [2].append).path == "value.__self__[0]"
    accepted([1].append, [1].append)


def test_partial():
    accepted(functools.partial(helper_a, 1, k=2.0), functools.partial(helper_a, 1, k=2.0))
    m = caught(functools.partial(helper_a, 1), functools.partial(helper_a, 2))
    assert m.path == "value.args[0]"


def test_enum_members():
    import enum

    class Color(enum.Enum):
        RED = 1
        GREEN = 2

    accepted(Color.RED, Color.RED)
    m = caught(Color.RED, Color.GREEN)
    assert m.describe().startswith("value: value differs: expected <Color.RED: 1>")


def test_generator_objects_compared_by_yielded_values():
    accepted((i * 0.1 for i in range(4)), (x for x in [0.0, 0.1, 0.2, 0.3]))
    m = caught((i for i in range(3)), (i for i in [0, 1, 5]))
    assert m.path == "value.<yielded>[2]"


# ---------------------------------------------------------------- numpy


def test_numpy_arrays():
    np = pytest.importorskip("numpy")
    accepted(np.arange(5), np.arange(5))
    accepted(np.array([0.1 + 0.2, np.nan]), np.array([0.3, np.nan]))
    accepted(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-10]))   # allclose
    accepted(np.array(["a", "b"]), np.array(["a", "b"]))
    accepted(np.array(["2020-01-01", "NaT"], dtype="datetime64[D]"),
             np.array(["2020-01-01", "NaT"], dtype="datetime64[D]"))
    accepted(np.zeros((2, 3)), np.zeros((2, 3)))


def test_numpy_array_changes_caught():
    np = pytest.importorskip("numpy")
    m = caught(np.arange(3), np.arange(3, dtype=np.int8), "return")
    assert m.reason == "dtype differs: int64 != int8"
    m = caught(np.zeros((2, 3)), np.zeros((3, 2)))
    assert m.reason == "shape differs: (2, 3) != (3, 2)"
    e = np.zeros((2, 3))
    a = e.copy()
    a[1, 2] = 0.5
    m = caught(e, a, "return")
    assert m.path == "return"
    assert m.reason == "array values differ (1 of 6 elements), first at [1, 2]: 0.0 != 0.5"
    assert "array(" in m.describe()
    m = caught(np.array([1, 2, 3]), np.array([1, 2, 4]))
    assert m.reason == "array values differ (1 of 3 elements), first at [2]: 3 != 4"
    caught(np.array([np.nan]), np.array([1.0]))
    caught(np.array(["a"]), np.array(["b"]))
    caught(np.array([1.0]), [1.0])


def test_numpy_object_arrays_element_wise():
    np = pytest.importorskip("numpy")
    e = np.array([{"a": 1}, [0.1 + 0.2]], dtype=object)
    a = np.array([{"a": 1}, [0.3]], dtype=object)
    accepted(e, a)
    a[0] = {"a": 2}
    assert caught(e, a).path == "value[0]['a']"


def test_numpy_scalars():
    np = pytest.importorskip("numpy")
    accepted(np.float64(0.1 + 0.2), np.float64(0.3))
    accepted(np.float32("nan"), np.float32("nan"))
    accepted(np.int64(3), np.int64(3))
    accepted(np.bool_(True), np.bool_(True))
    m = caught(np.float64(1.0), 1.0)
    assert m.reason == "type differs: numpy.float64 != float"
    m = caught(np.int32(1), np.int64(1))
    assert m.reason == "type differs: numpy.int32 != numpy.int64"
    assert caught(np.int64(3), np.int64(4)).reason == "value differs"
    assert caught(np.float64(1.0), np.float64(1.5)).reason == "value differs"
    m = caught(np.datetime64("2020-01-01", "D"), np.datetime64("2020-01-01", "s"))
    assert m.reason.startswith("dtype differs")


def test_numpy_and_pandas_not_imported_for_plain_values():
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(SRC)!r})
        import retracer.replay.comparator as m
        class O:
            def __init__(s): s.v = [1.0, {{"a": (1, "x")}}]
        for e, a in [(1, 2), ([1.0], [1.5]), (O(), O()), ({{1}}, {{2}}),
                     (ValueError("x"), ValueError("y"))]:
            r = m.compare(e, a)
            if r is not None:
                r.describe()
        print(sorted(n for n in ("numpy", "pandas") if n in sys.modules))
    """)
    out = run_python(["-c", code])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- pandas (optional)


def test_pandas_objects():
    # pandas is an optional integration; the test extras install it where the package
    # index has a wheel (see pyproject.toml)
    pd = pytest.importorskip("pandas", reason=f"pandas is not installed for Python {sys.version_info[0]}."
                                              f"{sys.version_info[1]} (pyproject.toml's test extras)")
    df = pd.DataFrame({"a": [1, 2, 3], "b": [0.1, 0.2, 0.3]})
    accepted(df, df.copy())
    accepted(pd.Series([1.0, float("nan")]), pd.Series([1.0, float("nan")]))
    accepted(pd.Index(["x", "y"]), pd.Index(["x", "y"]))

    changed = df.copy()
    changed.loc[2, "a"] = 4
    m = caught(df, changed, "return")
    assert m.reason.startswith("DataFrame differs: ")
    assert "[expected]: [1, 2, 3]" in m.reason and "[got]: [1, 2, 4]" in m.reason
    m = caught(pd.Series([1, 2]), pd.Series([1, 2], name="n"))
    assert m.reason.startswith("Series differs: ")
    m = caught(pd.Index(["x", "y"]), pd.Index(["x", "z"]))
    assert m.reason.startswith("Index differs: ")
    m = caught(pd.DataFrame({"a": [1]}), pd.DataFrame({"a": [1.0]}))
    assert "dtype" in m.reason


# ---------------------------------------------------------------- outcomes


def test_outcome_kind_raise_vs_return():
    m = compare_outcome(Outcome("raise", exception=ValueError("bad input")),
                        Outcome("return", value=3))
    assert m is not None
    assert m.describe() == "outcome: expected raise ValueError('bad input'), got return 3"


def test_outcome_kind_return_vs_raise():
    m = compare_outcome(Outcome("return", value=3), Outcome("raise", exception=KeyError("k")))
    assert m.describe() == "outcome: expected return 3, got raise KeyError('k')"


def test_outcome_return_value():
    assert compare_outcome(Outcome("return", [1, 0.1 + 0.2]),
                           Outcome("return", [1, 0.3])) is None
    m = compare_outcome(Outcome("return", [0, 0.5]), Outcome("return", [0, 0.25]))
    assert m.describe() == "return[1]: value differs: expected 0.5, got 0.25"


def test_outcome_exception():
    assert compare_outcome(Outcome("raise", exception=ValueError("x")),
                           Outcome("raise", exception=ValueError("x"))) is None
    m = compare_outcome(Outcome("raise", exception=ValueError("x")),
                        Outcome("raise", exception=ValueError("y")))
    assert m.path == "exception.args[0]"
    m = compare_outcome(Outcome("raise", exception=ValueError("x")),
                        Outcome("raise", exception=TypeError("x")))
    assert m.path == "exception" and m.reason == "type differs: ValueError != TypeError"


def test_outcome_args_after():
    e = Outcome("return", None, args_after={"items": [1, 2], "n": 3})
    assert compare_outcome(e, Outcome("return", None,
                                      args_after={"items": [1, 2], "n": 3})) is None
    m = compare_outcome(e, Outcome("return", None, args_after={"items": [1, 2, 3], "n": 3}))
    assert m.path == "args_after.items" and m.reason == "length differs: 2 != 3"
    m = compare_outcome(e, Outcome("return", None, args_after={"items": [9, 2], "n": 3}))
    assert m.describe() == "args_after.items[0]: value differs: expected 1, got 9"
    obj_e = Outcome("return", None, args_after={"self": Plain(total=1.0)})
    obj_a = Outcome("return", None, args_after={"self": Plain(total=2.0)})
    assert compare_outcome(obj_e, obj_a).path == "args_after.self.total"


def test_outcome_args_after_not_recorded_is_skipped():
    e = Outcome("return", 1, args_after=None)
    assert compare_outcome(e, Outcome("return", 1, args_after={"x": [1]})) is None
    e = Outcome("return", 1, args_after={"x": [1]})
    assert compare_outcome(e, Outcome("return", 1, args_after=None)) is None


def test_outcome_value_checked_before_args_after():
    m = compare_outcome(Outcome("return", 1, args_after={"x": 1}),
                        Outcome("return", 2, args_after={"x": 2}))
    assert m.path == "return"


def test_outcome_generator_yielded():
    e = Outcome("return", None, yielded=[1, 2, 3])
    assert compare_outcome(e, Outcome("return", None, yielded=[1, 2, 3])) is None
    m = compare_outcome(e, Outcome("return", None, yielded=[1, 2, 4]))
    assert m.describe() == "yielded[2]: value differs: expected 3, got 4"
    m = compare_outcome(e, Outcome("return", None, yielded=[1, 2]))
    assert m.path == "yielded" and m.reason == "length differs: 3 != 2"


def test_outcome_generator_raising():
    e = Outcome("return", None, yielded=[1, 2, 3])
    a = Outcome("raise", exception=ValueError("boom"), yielded=[1, 2])
    m = compare_outcome(e, a)
    assert m.describe() == ("outcome: expected return after yielding 3 values, "
                            "got raise ValueError('boom') after yielding 2 values")


def test_outcome_generator_vs_plain():
    m = compare_outcome(Outcome("return", None, yielded=[1]), Outcome("return", [1]))
    assert m is not None
    assert m.describe() == ("outcome: expected return after yielding 1 value, "
                            "got return [1]")


def test_outcome_truncated_generator():
    e = Outcome("return", None, yielded=[0, 1, 2], truncated=True)
    # the new run yields more (it was not cut, or cut later): only the prefix counts
    assert compare_outcome(e, Outcome("return", None, yielded=[0, 1, 2, 3, 4])) is None
    assert compare_outcome(e, Outcome("return", None, yielded=[0, 1, 2],
                                      truncated=True)) is None
    m = compare_outcome(e, Outcome("return", None, yielded=[0, 1, 5, 3]))
    assert m.path == "yielded[2]"
    m = compare_outcome(e, Outcome("return", None, yielded=[0, 1]))
    assert m is not None and m.path == "yielded"
    assert m.reason == "expected at least 3 yielded values, got return after yielding " \
                       "2 values"
    m = compare_outcome(e, Outcome("raise", exception=ValueError("x"), yielded=[0]))
    assert "got raise ValueError('x') after yielding 1 value" in m.reason


def test_outcome_not_truncated_compares_full_length():
    e = Outcome("return", None, yielded=[0, 1, 2])
    m = compare_outcome(e, Outcome("return", None, yielded=[0, 1, 2, 3]))
    assert m is not None and m.reason == "length differs: 3 != 4"


def test_outcome_generator_return_value():
    e = Outcome("return", "done", yielded=[1])
    assert compare_outcome(e, Outcome("return", "done", yielded=[1])) is None
    m = compare_outcome(e, Outcome("return", "other", yielded=[1]))
    assert m.path == "return"


def test_exact_mode_for_the_stability_check():
    """compare_outcome(exact=True) — used to tell whether two replays of a call
    differ — requires equal floats (NaN still equal to NaN); the default rule
    accepts math.isclose."""
    import math
    from retracer.replay.comparator import Outcome, compare_outcome
    a = Outcome(kind="return", value={"t": 1_700_000_000.0, "n": [math.nan]})
    b = Outcome(kind="return", value={"t": 1_700_000_000.05, "n": [math.nan]})
    assert compare_outcome(a, b) is None
    m = compare_outcome(a, b, exact=True)
    assert m is not None and "t" in m.path
    assert compare_outcome(a, Outcome(kind="return", value={"t": 1_700_000_000.0, "n": [math.nan]}), exact=True) is None


# ------------------------------------------- issue 11: no holes in the comparison


def test_lazy_results_are_consumed_and_compared_item_by_item():
    xs = [1, 2, 3]
    accepted(zip(map(lambda v: v + 1, xs), xs), zip(map(lambda v: v + 1, xs), xs))
    m = caught(zip(map(lambda v: v + 1, xs), xs), zip(map(lambda v: v + 100, xs), xs))
    assert m.path == "value.<items>[0][0]" and "expected 2, got 101" in m.describe()
    caught(map(str, [1, 2]), map(str, [1, 3]))
    caught(filter(None, [0, 1, 2]), filter(None, [0, 1, 0]))
    accepted(iter([1, 2]), iter([1, 2]))
    m = caught(iter([1, 2]), iter([1, 2, 3]))
    assert m.reason == "length differs: 2 != 3"
    import itertools
    accepted(itertools.chain([1], [2]), itertools.chain([1, 2]))
    # infinite iterators: compared up to the bound
    accepted(itertools.count(), itertools.count())
    caught(itertools.count(), itertools.count(1))
    # an iterator that raises: the exception is part of what it gave
    def boom():
        yield 1
        raise ValueError("x")
    m = caught((v for v in [1]), boom())
    assert "raised" in m.reason


def test_a_lazy_value_is_consumed_once_per_side():
    from retracer.replay.comparator import Drained
    drained = {}
    rec = map(lambda v: v * 2, [1, 2])
    now = map(lambda v: v * 2, [1, 2])
    other = map(lambda v: v * 2, [1, 2])
    assert compare_outcome(Outcome("return", value=rec), Outcome("return", value=now),
                           drained=drained) is None
    # the same replayed value compared again (with the other replay): not empty now
    assert compare_outcome(Outcome("return", value=other), Outcome("return", value=now),
                           drained=drained) is None
    assert any(isinstance(d, Drained) and d.items == [2, 4] for _, d in drained.values())


def test_dict_views_compared_as_lists():
    accepted({"a": 1}.values(), {"a": 1}.values())
    caught({"a": 1}.values(), {"a": 2}.values())
    caught({"a": 1, "b": 2}.keys(), {"b": 2, "a": 1}.keys())


def test_lambdas_and_nested_functions_by_name_and_code():
    def make(k):
        return lambda v: v + k

    def make_other(k):
        return lambda v: v - k

    accepted(make(1), make(1))
    m = caught(make(1), make(2))
    assert "closure k" in m.path
    other = make_other(1)
    other.__qualname__ = make(1).__qualname__     # same name, other code
    m = caught(make(1), other)
    assert "its code is not the same" in m.reason

    def with_default(x=[1]):
        return x
    clone = types.FunctionType(with_default.__code__, with_default.__globals__, "with_default",
                               ([2],))
    clone.__qualname__ = with_default.__qualname__
    assert caught(with_default, clone).path == "value.__defaults__[0][0]"


def test_bound_methods_by_function_and_object():
    class K:
        def __init__(self, v):
            self.v = v

        def get(self):
            return self.v

    accepted(K(1).get, K(1).get)
    assert caught(K(1).get, K(2).get).path == "value.__self__.v"


def test_eq_by_identity_is_overruled_by_equal_state():
    class Curried:
        """__eq__ compares the function by identity, as toolz.curry does"""
        def __init__(self, func, args):
            self.func, self.args = func, args

        def __eq__(self, other):
            return isinstance(other, Curried) and self.func is other.func and self.args == other.args

        __hash__ = None

    def make():
        return lambda x: x

    accepted(Curried(make(), (1,)), Curried(make(), (1,)))
    assert caught(Curried(make(), (1,)), Curried(make(), (2,))).path == "value.args[0]"


def test_objects_without_eq_or_state_by_what_they_reduce_to():
    import array
    accepted(object(), object())
    e = types.SimpleNamespace()
    accepted(e, types.SimpleNamespace())

    class Opaque:
        __slots__ = ()

        def __reduce_ex__(self, proto):
            raise TypeError("cannot pickle")

    m = compare(Opaque(), Opaque())
    assert m is not None and m.uncomparable and "cannot be compared" in m.reason
    accepted(array.array("i", [1]), array.array("i", [1]))


def test_default_repr_addresses_are_not_compared():
    class X:
        pass
    accepted(repr(X()), repr(X()))
    accepted(f"[{object()!r}]", f"[{object()!r}]")
    caught(f"<{X.__name__} object>", "<Y object>")
    caught("hex 0x10", "hex 0x11")


def test_exception_with_its_own_init_and_str():
    class Err(Exception):
        def __init__(self, code, detail):
            super().__init__(f"{code}: {detail}")
            self.code = code

    class Shown(Exception):
        def __init__(self, n):
            super().__init__(n)
            self.n = n

        def __str__(self):
            return f"value {self.n * 2}"

    accepted(Err(404, "x"), Err(404, "x"))
    caught(Err(404, "x"), Err(404, "y"))
    assert caught(OSError(2, "No such file", "a"), OSError(2, "No such file", "b")).path == \
        "value.filename"
    accepted(Shown(1), Shown(1))


def test_kwargs_popped_by_the_callee_are_not_argument_mutations():
    rec = Outcome("return", value=1, args_after={"kw": {"b": [1]}, "xs": [1]})
    now = Outcome("return", value=1, args_after={"kw": {"a": 1, "b": [1]}, "xs": [1]})
    assert compare_outcome(rec, now, callee_owned=("kw",)) is None
    assert compare_outcome(rec, now) is not None
    # a value left in **kwargs and mutated is still compared
    now2 = Outcome("return", value=1, args_after={"kw": {"a": 1, "b": [2]}, "xs": [1]})
    assert compare_outcome(rec, now2, callee_owned=("kw",)).path == "args_after.kw['b'][0]"


def test_sets_of_objects_hashed_by_identity():
    class P:
        def __init__(self, v):
            self.v = v
    accepted({P(1), P(2)}, {P(2), P(1)})
    caught({P(1), P(2)}, {P(1), P(3)})
