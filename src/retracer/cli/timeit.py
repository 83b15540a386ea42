"""`retracer timeit`: time a statement like python -m timeit, with a warm-up."""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..analysis.measure import DEFAULT_REPEAT, TARGET_S
from ..errors import RetracerError
from ..units import UNIT_NAMES

DESCRIPTION = ("Time a Python statement like python -m timeit: after SETUP, one warm-up run, then "
               f"REPEAT repeats of N loops (N auto-ranged so one repeat takes >= {TARGET_S:g} s). "
               "Prints the minimum, the median and the interquartile range (IQR = Q3 - Q1) of the "
               "time per loop. Several statement arguments are lines of one statement.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("statement", nargs="*", help="statement to time (default: pass)")
    p.add_argument("-s", "--setup", action="append", default=[], metavar="SETUP",
                   help="run once before each repeat, untimed (may be given more than once)")
    p.add_argument("-n", "--number", type=int, metavar="N", help="loops per repeat (default: auto-range)")
    p.add_argument("-r", "--repeat", type=int, default=DEFAULT_REPEAT, metavar="R",
                   help=f"repeats (default {DEFAULT_REPEAT})")
    p.add_argument("-u", "--unit", choices=UNIT_NAMES,
                   help="time unit of the output (timeit's nsec, usec, msec, sec work too)")
    p.add_argument("-p", "--process", action="store_true", help="measure process CPU time, not wall time")
    p.add_argument("--json", action="store_true", help="print the result as JSON (times in seconds)")


def run(ns: argparse.Namespace) -> int:
    from ..analysis import measure

    if ns.number is not None and ns.number < 1:
        raise RetracerError(f"retracer: -n/--number must be 1 or more (got {ns.number})")
    if ns.repeat < 1:
        raise RetracerError(f"retracer: -r/--repeat must be 1 or more (got {ns.repeat})")
    if os.curdir not in sys.path and "" not in sys.path:  # like python -m timeit: import from here
        sys.path.insert(0, os.curdir)

    from ..term import Bar

    # redrawn only between timings (no refresh thread running while the statement is timed)
    bar = Bar("timing", total=None, auto_refresh=False)

    def progress(what: str) -> None:
        bar.update(description=f"timing: {what}")

    try:
        res = measure.run("\n".join(ns.statement) or "pass", "\n".join(ns.setup) or "pass",
                          number=ns.number or 0, repeat=ns.repeat, process_time=ns.process, progress=progress)
    finally:
        bar.finish()
    print(json.dumps(res.to_json(), indent=2) if ns.json else measure.format_result(res, ns.unit))
    return 0
