"""Tests' reader of the encoded call stream of a trace (docs/call-stream.md)."""
from __future__ import annotations

from typing import Iterator, Tuple

from retracer import _engine

ENTER, EXIT, EXIT_EXC, SUSPEND, RESUME, TIME, ENTER_CONT = range(7)
TAG_NAMES = ("ENTER", "EXIT", "EXIT_EXC", "SUSPEND", "RESUME", "TIME", "ENTER_CONT")


def iter_events(reader, thread_idx: int) -> Iterator[Tuple[int, int, int]]:
    """Yield (tag, fid_or_back, t_ns) for every event of one thread, in order.

    `fid_or_back` is the function id for ENTER/ENTER_CONT and the distance
    back in calls for RESUME, 0 otherwise. TIME events are included.
    """
    for chunk in reader.iter_chunks(thread_idx):
        yield from _engine.decode(chunk)
