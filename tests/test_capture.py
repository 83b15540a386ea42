"""Capture's serialisation: same values as pickle, without side effects on the
traced program's objects."""
from __future__ import annotations

import copyreg
import pickle
import sys

import pytest

from retracer import _engine
from retracer.record import capture

INLINE = sys.version_info[:2] in ((3, 11), (3, 12))


class Plain:
    def __init__(self, x, y):
        self.x = x
        self.y = y

    def __eq__(self, other):
        return type(other) is type(self) and vars(self) == vars(other)


class WithSlots:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __eq__(self, other):
        return type(other) is type(self) and (self.a, self.b) == (other.a, other.b)


class WithGetstate(Plain):
    def __getstate__(self):
        return {"x": self.x, "y": "from getstate"}


class WithReduce(Plain):
    def __reduce__(self):
        return (WithReduce, (self.x, "from reduce"))


class WithNewargs(Plain):
    def __new__(cls, *args):
        o = super().__new__(cls)
        o.newargs = args
        return o

    def __getnewargs__(self):
        return (self.x, self.y)


class Registered(Plain):
    pass


class DictSub(dict):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.extra = 1


def _reduce_registered(o):
    return (Registered, (o.x, "from copyreg"))


copyreg.pickle(Registered, _reduce_registered)


def _deleted_attr():
    o = Plain(1, 2)
    o.z = 3
    del o.x
    return o


CASES = [
    Plain(1, [2, 3]),
    Plain(Plain(1, 2), {"k": Plain(None, "s")}),
    WithSlots(1, Plain(2, 3)),
    WithGetstate(1, 2),
    WithReduce(1, 2),
    WithNewargs(1, 2),
    Registered(1, 2),
    DictSub(a=1),
    _deleted_attr(),
    Plain(1, 2).__class__,  # a class, by reference
]


@pytest.mark.parametrize("obj", CASES, ids=lambda o: type(o).__name__)
def test_capture_pickles_like_pickle(obj):
    """Whatever capture writes loads back to what plain pickle would give."""
    ours = pickle.loads(capture.dumps(obj, 1 << 20))
    theirs = pickle.loads(pickle.dumps(obj, protocol=5))
    assert type(ours) is type(theirs)
    assert getattr(ours, "__dict__", None) == getattr(theirs, "__dict__", None)
    if isinstance(obj, dict):
        assert dict(ours) == dict(theirs)
    if isinstance(obj, WithSlots):
        assert ours == theirs


@pytest.mark.skipif(not INLINE, reason="only 3.11 and 3.12 store instance attributes inline until __dict__ is asked for")
def test_capture_leaves_instance_attributes_inline():
    """Pickling a captured argument must not materialise its __dict__: on
    3.11/3.12 that would take the object off the interpreter's fast attribute
    path for the rest of the run."""
    a = Plain(1, Plain(2, 3))
    assert _engine.has_inline_values(a) and _engine.has_inline_values(a.y)
    capture.dumps({"self": a}, 1 << 20)
    assert _engine.has_inline_values(a) and _engine.has_inline_values(a.y)
    # the check can fail: plain pickling does materialise it
    pickle.dumps(a, protocol=5)
    assert not _engine.has_inline_values(a)


def test_instance_state_reads_the_attributes():
    a = Plain(1, 2)
    a.z = 3
    del a.x
    st = _engine.instance_state(a)
    if INLINE:
        assert st == {"y": 2, "z": 3}
        a.__dict__  # materialised: read from the dict now
        assert _engine.instance_state(a) == {"y": 2, "z": 3}
    else:
        assert st is None
    assert _engine.instance_state(WithSlots(1, 2)) is None
    assert _engine.instance_state(5) is None
