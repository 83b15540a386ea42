"""Decoding the folded tree that the C folder (``retracer._view``, csrc/rt_fold.c)
encodes (docs/folding.md, "Encoding"), for the text form; the page decodes the
same bytes in ``view.js``."""
from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

# node kinds and end reasons (csrc/rt_fold.h, csrc/rt_walk.h)
KIND_CALL, KIND_RESUME, KIND_CONT, KIND_ROOT = range(4)
END_RETURN, END_RAISE, END_SUSPEND, END_OPEN = range(4)

# an item record starts with varint(W); its low 2 bits say what it is (docs/folding.md, "Encoding")
ITEM_TYPE_MASK = 3
ITEM_GROUP = 1
# the `flags` varint of a span record
SPAN_KIND_MASK = 3        # bits 0-1: KIND_*
SPAN_HOW_SHIFT = 2        # bits 2-3: END_*
SPAN_HOW_MASK = 3
SPAN_HAS_CHILDREN = 16    # bit 4
SPAN_DEPTH_SHIFT = 5      # bits 5+: recursion depth - 1


class Rec:
    """One decoded record of the folded tree: a span (a call, or a resumed slice of a
    generator) or a group of repetitions. ``kids``/``end`` are byte offsets of its
    items; ``call_no`` is the stream call number of a call span, and for the others the
    number of the first call inside."""

    __slots__ = ("group", "fid", "period", "kind", "how", "depth", "t0", "dur", "dur_sum",
                 "count", "calls", "aggs", "nitems", "kids", "end", "call_no")

    def __init__(self) -> None:
        self.group = False
        self.fid = -1
        self.period = 0
        self.kind = KIND_CALL
        self.how = END_RETURN
        self.depth = 1
        self.t0 = 0
        self.dur = 0
        self.dur_sum = 0
        self.count = 1
        self.calls = 0
        self.aggs: Optional[List[Tuple[int, int]]] = None
        self.nitems = 0
        self.kids = 0
        self.end = 0
        self.call_no = 0

    @property
    def t1(self) -> int:
        return self.t0 + self.dur

    @property
    def first_child_call(self) -> int:
        return self.call_no + (1 if (not self.group and self.kind != KIND_RESUME
                                     and self.kind != KIND_ROOT) else 0)


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    v = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        if b < 0x80:
            return v, pos
        shift += 7


def decode_root(buf: bytes) -> Rec:
    """The thread's root record (its items are the thread's top-level calls)."""
    version, pos = _varint(buf, 0)
    if version != 1:
        raise ValueError(f"unknown folded-tree encoding version {version}")
    w, pos = _varint(buf, pos)
    if w != 2:
        raise ValueError("folded tree does not start with its root")
    r = Rec()
    r.kind = KIND_ROOT
    r.t0, pos = _varint(buf, pos)
    r.dur, pos = _varint(buf, pos)
    r.calls, pos = _varint(buf, pos)
    r.nitems, pos = _varint(buf, pos)
    cb, pos = _varint(buf, pos)
    r.kids, r.end = pos, pos + cb
    r.call_no = 0
    return r


def read_rec(buf: bytes, pos: int, cursor: int, next_call: int) -> Rec:
    """Decode the record at ``pos``; ``cursor`` is the end of the previous item (or the
    owner's start) and ``next_call`` the call number of the next call in the list."""
    r = Rec()
    w, pos = _varint(buf, pos)
    gap, pos = _varint(buf, pos)
    r.t0 = cursor + gap
    r.call_no = next_call
    if w & ITEM_TYPE_MASK == ITEM_GROUP:
        r.group = True
        r.period = w >> 2
        r.dur, pos = _varint(buf, pos)
        r.dur_sum, pos = _varint(buf, pos)
        r.count, pos = _varint(buf, pos)
        r.calls, pos = _varint(buf, pos)
        if r.period > 1:
            aggs = []
            for _ in range(r.period):
                d, pos = _varint(buf, pos)
                c, pos = _varint(buf, pos)
                aggs.append((d, c))
            r.aggs = aggs
        else:
            r.aggs = [(r.dur_sum, r.calls)]
        cb, pos = _varint(buf, pos)
        r.nitems = r.period * r.count
        r.kids, r.end = pos, pos + cb
        return r
    r.fid = w >> 2
    r.dur, pos = _varint(buf, pos)
    flags, pos = _varint(buf, pos)
    r.kind = flags & SPAN_KIND_MASK
    r.how = (flags >> SPAN_HOW_SHIFT) & SPAN_HOW_MASK
    r.depth = (flags >> SPAN_DEPTH_SHIFT) + 1
    r.dur_sum = r.dur
    if flags & SPAN_HAS_CHILDREN:
        r.calls, pos = _varint(buf, pos)
        r.nitems, pos = _varint(buf, pos)
        cb, pos = _varint(buf, pos)
        r.kids, r.end = pos, pos + cb
    else:
        r.calls = 0 if r.kind == KIND_RESUME else 1
        r.kids = r.end = pos
    return r


def iter_items(buf: bytes, owner: Rec) -> Iterator[Rec]:
    """The items of a span, a group (every repetition, in order) or the root."""
    pos = owner.kids
    cursor = owner.t0
    nxt = owner.first_child_call
    for _ in range(owner.nitems):
        r = read_rec(buf, pos, cursor, nxt)
        pos = r.end
        cursor = r.t1
        nxt += r.calls
        yield r
