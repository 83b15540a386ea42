"""How retracer writes times: one place for every command, page and report."""
from __future__ import annotations

import math
from typing import Optional

UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
UNIT_ALIASES = {"nsec": "ns", "usec": "us", "msec": "ms", "sec": "s"}  # python -m timeit's names
UNIT_NAMES = tuple(UNITS) + tuple(UNIT_ALIASES)


def fmt_ns(ns: float) -> str:
    """A duration in nanoseconds with three decimals in the largest fitting unit:
    '1.500 ms', '12.000 us', '250 ns' (tables, summaries, the flame graph)."""
    if ns >= 1e9:
        return f"{ns / 1e9:.3f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.3f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.3f} us"
    return f"{ns:.0f} ns"


def pick_unit(seconds: float) -> str:
    """The largest unit in which ``seconds`` is at least 1 (ns below that)."""
    for unit in ("s", "ms", "us"):
        if seconds >= UNITS[unit]:
            return unit
    return "ns"


def format_time(seconds: float, unit: Optional[str] = None) -> str:
    """3 significant digits (no exponent) in the given unit, or the largest unit
    in which the value is at least 1: '12.3 us', '1.50 ms', '250 ns' (timings)."""
    if not math.isfinite(seconds):
        return str(seconds)
    unit = UNIT_ALIASES.get(unit or "", unit) or pick_unit(seconds)
    v = seconds / UNITS[unit]
    if v == 0 or abs(v) >= 100:
        return f"{v:.0f} {unit}"
    return f"{v:.{2 - math.floor(math.log10(abs(v)))}f} {unit}"
