"""Option types and the timing-round options shared by `compare` and `optimize`."""
from __future__ import annotations

import argparse
from typing import Callable


def percent(limit: float = 100.0) -> Callable[[str], float]:
    """An argparse type: "5" or "5%" -> 0.05, from 0 up to (not including) ``limit`` percent."""
    def conv(text: str) -> float:
        t = text.strip().rstrip("%")
        try:
            v = float(t)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a percentage (e.g. 5 or 5%)") from None
        if v < 0 or v >= limit:
            raise argparse.ArgumentTypeError(f"'{text}' must be between 0 and {limit:g} (percent)")
        return v / 100.0
    return conv


def positive(kind):
    """An argparse type: a number of ``kind`` above 0."""
    def conv(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"'{text}' must be positive")
        return v
    return conv


def count(text: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be 0 or more")
    return v


def add_round_options(g, rounds: int, max_rounds: int, round_time: float) -> None:
    """--rounds, --max-rounds and --round-time (compare/rounds.py), with these defaults."""
    g.add_argument("--rounds", type=positive(int), default=rounds, metavar="N",
                   help=f"timed rounds per side before more are added while the interval is wide (default {rounds})")
    g.add_argument("--max-rounds", type=positive(int), default=max_rounds, metavar="N",
                   help=f"at most this many timed rounds per side (default {max_rounds})")
    g.add_argument("--round-time", type=positive(float), default=round_time, metavar="S",
                   help=f"calibrate the work of a round to at least S seconds (default {round_time:g})")
