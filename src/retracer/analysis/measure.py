"""Micro-benchmarks: `retracer timeit` and the `%rtimeit` magics.

Like ``python -m timeit`` (it uses :class:`timeit.Timer`, so the statement runs in a
function with ``setup`` before the timed loop, with the garbage collector off
during timing), with three differences:

- a **warm-up**: the statement runs once, untimed, after its setup and before any
  measurement (caches, lazy imports, specialisation of the bytecode);
- **auto-ranging** unless ``number`` is given: the loop count is the first of 1, 2,
  5, 10, 20, 50, ... for which one repeat takes at least ``target`` seconds (0.2 s,
  as timeit's ``autorange``);
- the report gives the **minimum**, the **median** and the **spread** of the time per
  loop over the repeats: the interquartile range (IQR = Q3 - Q1, quartiles by
  ``statistics.quantiles(method="inclusive")``), robust to one disturbed repeat;
  the standard deviation is in the JSON.

Errors in the statement or the setup (a SyntaxError, an exception while running)
raise :class:`StatementError`: one line naming the part (statement or setup), the
error and its line.
"""
from __future__ import annotations

import builtins
import statistics
import time
import timeit as _timeit
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from ..errors import RetracerError
from ..units import UNIT_ALIASES, UNIT_NAMES, UNITS, format_time, pick_unit

__all__ = ["Samples", "measure", "TimeitResult", "StatementError", "run", "format_time", "format_result", "UNITS", "UNIT_NAMES",
           "DEFAULT_REPEAT", "TARGET_S"]

DEFAULT_REPEAT = 7
TARGET_S = 0.2
_SRC = "<timeit-src>"  # the file name timeit compiles its template under


class StatementError(RetracerError):
    """The statement or its setup does not compile or raises; the message is one line."""


@dataclass
class Samples:
    """Times per loop, in seconds, one per repeat (in the order they ran): the
    result of :func:`measure`, the core shared by ``timeit``, ``replay --bench``
    and the commands that compare timings."""

    number: int                 # loops per repeat
    per_loop: List[float]       # seconds per loop, one per repeat
    autoranged: bool = False
    warmup_s: float = 0.0       # the warm-up run (not part of the result), seconds

    @property
    def repeat(self) -> int:
        return len(self.per_loop)

    @property
    def min(self) -> float:
        return min(self.per_loop)

    @property
    def max(self) -> float:
        return max(self.per_loop)

    @property
    def median(self) -> float:
        return statistics.median(self.per_loop)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.per_loop)

    @property
    def stdev(self) -> float:
        return statistics.stdev(self.per_loop) if len(self.per_loop) > 1 else 0.0

    @property
    def quartiles(self) -> List[float]:
        """Q1, median, Q3 (inclusive method: within the measured range)."""
        if len(self.per_loop) < 2:
            return [self.per_loop[0]] * 3
        return statistics.quantiles(self.per_loop, n=4, method="inclusive")

    @property
    def iqr(self) -> float:
        q1, _, q3 = self.quartiles
        return q3 - q1


def measure(time_loops: Callable[[int], float], number: int = 0, repeat: int = DEFAULT_REPEAT,
            target: float = TARGET_S, min_time: float = 0.0, max_repeat: Optional[int] = None,
            warmup: bool = True, progress: Optional[Callable[[str], None]] = None) -> Samples:
    """Time something repeatedly. ``time_loops(n)`` runs ``n`` loops and returns
    the seconds they took (only what is to be measured inside the clock reads).

    One warm-up run of one loop (unless ``warmup`` is False), then ``number``
    loops per repeat (0: auto-range: the first of 1, 2, 5, 10, 20, ... loops for
    which one repeat takes at least ``target`` seconds), then ``repeat`` repeats,
    continued until they add up to ``min_time`` seconds (at most ``max_repeat``).
    """
    warm = time_loops(1) if warmup else 0.0
    autoranged = number == 0
    if autoranged:
        number = 1
        while True:
            for factor in (1, 2, 5):
                n = number * factor
                if time_loops(n) >= target:
                    number = n
                    break
            else:
                number *= 10
                continue
            break
    per_loop: List[float] = []
    spent = 0.0
    limit = max(repeat, max_repeat or repeat)
    while len(per_loop) < repeat or (spent < min_time and len(per_loop) < limit):
        if progress is not None:
            progress(f"repeat {len(per_loop) + 1}/{repeat} of {number:,} loops")
        dt = time_loops(number)
        spent += dt
        per_loop.append(dt / number)
    return Samples(number=number, per_loop=per_loop, autoranged=autoranged, warmup_s=warm)


@dataclass
class TimeitResult(Samples):
    """A timed statement: :class:`Samples` plus what was timed and how."""

    stmt: str = "pass"
    setup: str = "pass"
    clock: str = "perf_counter"
    extra: Dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"<TimeitResult min {format_time(self.min)}, median {format_time(self.median)}, "
                f"IQR {format_time(self.iqr)} per loop; {self.repeat} repeats of {self.number:,} loops>")

    def to_json(self) -> Dict[str, Any]:
        q1, _, q3 = self.quartiles
        return {
            "statement": self.stmt, "setup": self.setup, "loops": self.number, "repeat": self.repeat,
            "autoranged": self.autoranged, "warmup_s": self.warmup_s, "clock": self.clock,
            "per_loop_s": list(self.per_loop), "min_s": self.min, "median_s": self.median,
            "q1_s": q1, "q3_s": q3, "iqr_s": self.iqr, "mean_s": self.mean, "stdev_s": self.stdev,
            "max_s": self.max,
        }


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _compile_error(part: str, e: SyntaxError, source: str) -> StatementError:
    lines = source.splitlines()
    where = ""
    if e.lineno and e.filename != _SRC and 1 <= e.lineno <= len(lines):
        where = f" (line {e.lineno}: {lines[e.lineno - 1].strip()!r})"
    elif e.text:
        where = f" ({e.text.strip()!r})"
    return StatementError(f"retracer: {type(e).__name__} in the {part}: {_one_line(e.msg)}{where}")


def _make_timer(stmt: str, setup: str, clock: Callable[[], float],
                globals: Optional[Dict[str, Any]]) -> _timeit.Timer:
    # compile each part alone first, to name the part at fault
    for part, src in (("setup", setup), ("statement", stmt)):
        try:
            compile(src, "<" + part + ">", "exec")
        except SyntaxError as e:
            raise _compile_error(part, e, src) from None
        except (ValueError, OverflowError) as e:  # e.g. a null byte
            raise StatementError(f"retracer: the {part} cannot be compiled: {_one_line(e)}") from None
    try:
        return _timeit.Timer(stmt, setup, timer=clock, globals=globals)
    except SyntaxError as e:  # valid alone, not inside timeit's function: return, yield, ...
        part = "setup" if "setup" in str(e.msg) else "statement"
        raise StatementError(f"retracer: {type(e).__name__} in the {part}: {_one_line(e.msg)}; "
                             f"it must be valid inside a function body") from None
    except ValueError as e:
        raise StatementError(f"retracer: {_one_line(e)}") from None


def _raised(e: BaseException, setup: str, stmt: str) -> StatementError:
    """A one-line error naming the part that raised (setup or statement) and its line."""
    part, line = "statement", None
    setup_lines = len(setup.splitlines()) or 1
    tb = e.__traceback__
    lineno = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _SRC:
            lineno = tb.tb_lineno
        tb = tb.tb_next
    if lineno is not None:
        # timeit's template: line 2 is `def inner(...)`, the setup starts at line 3,
        # then `_t0 = _timer()`, `for _i in _it:` and the statement
        if 3 <= lineno < 3 + setup_lines:
            part, line = "setup", lineno - 2
        else:
            line = lineno - (setup_lines + 4)
    source = setup if part == "setup" else stmt
    lines = source.splitlines()
    where = f" (line {line}: {lines[line - 1].strip()!r})" if line and 1 <= line <= len(lines) else ""
    msg = _one_line(e) or "(no message)"
    return StatementError(f"retracer: the {part} raised {type(e).__name__}: {msg}{where}")


def _guarded(timer: _timeit.Timer, number: int, setup: str, stmt: str) -> float:
    try:
        return timer.timeit(number)
    except Exception as e:
        raise _raised(e, setup, stmt) from None


def run(stmt: str = "pass", setup: str = "pass", number: int = 0, repeat: int = DEFAULT_REPEAT,
        globals: Optional[Dict[str, Any]] = None, process_time: bool = False,
        target: float = TARGET_S, progress: Optional[Callable[[str], None]] = None,
        clock: Optional[Callable[[], float]] = None) -> TimeitResult:
    """Warm up, choose the loop count (``number`` 0: auto-range to ``target``
    seconds per repeat), then time ``repeat`` repeats of ``number`` loops.

    ``globals`` is the namespace the statement runs in (default: a fresh one).
    ``process_time`` measures CPU time of the process instead of wall time;
    ``clock`` replaces the clock altogether (for tests).
    Raises :class:`StatementError` (one line) if the statement or setup is bad.
    """
    if number < 0:
        raise RetracerError(f"retracer: -n/--number must be 1 or more (got {number})")
    if repeat < 1:
        raise RetracerError(f"retracer: -r/--repeat must be 1 or more (got {repeat})")
    clock_name = "process_time" if process_time else "perf_counter"
    if clock is None:
        clock = time.process_time if process_time else time.perf_counter
    else:
        clock_name = getattr(clock, "__name__", "custom")
    stmt = stmt if stmt.strip() else "pass"
    setup = setup if setup.strip() else "pass"
    if globals is None:
        globals = {"__name__": "__retracer_timeit__", "__builtins__": builtins}
    timer = _make_timer(stmt, setup, clock, globals)
    samples = measure(lambda n: _guarded(timer, n, setup, stmt), number=number, repeat=repeat, target=target,
                      progress=progress)
    return TimeitResult(number=samples.number, per_loop=samples.per_loop, autoranged=samples.autoranged,
                        warmup_s=samples.warmup_s, stmt=stmt, setup=setup, clock=clock_name)


def format_result(res: TimeitResult, unit: Optional[str] = None) -> str:
    """The lines printed by `retracer timeit` and `%rtimeit`."""
    unit = UNIT_ALIASES.get(unit or "", unit) or pick_unit(res.min)
    q1, _, q3 = res.quartiles
    how = f"auto-ranged to >= {TARGET_S:g} s per repeat" if res.autoranged else "loops as asked"
    clock = ", CPU time" if res.clock == "process_time" else ""
    lines = [
        f"min {format_time(res.min, unit)}, median {format_time(res.median, unit)}, "
        f"IQR {format_time(res.iqr, unit)} (Q1 {format_time(q1, unit)}, Q3 {format_time(q3, unit)}) per loop",
        f"{res.repeat} repeats of {res.number:,} loops ({how}; after 1 warm-up run{clock})",
    ]
    if res.repeat > 1 and res.max > 4 * res.min > 0:
        lines.append(f"warning: the slowest repeat took {format_time(res.max, unit)} per loop, "
                     f"{res.max / res.min:.1f} times the fastest: something else may have been running; "
                     f"the minimum is the most reliable figure")
    return "\n".join(lines)
