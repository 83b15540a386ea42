"""Terminal output: table widths, colour and progress bars (built on rich).

* **Width.** A table fits ``width(stream)`` columns: on a terminal ``COLUMNS`` when it
  is set, else the terminal's width; else no limit (piped output is never cut, so
  scripts that parse it see whole names).
* **Colour** only when the stream is a terminal and ``NO_COLOR`` is unset (rich
  decides, and also honours ``FORCE_COLOR``); piped output is plain text.
* **Progress** bars go to stderr, only when stderr is a terminal; they are drawn by
  rich in place and removed when the step ends (``transient``), so piped or redirected
  stderr never sees them.

Names that do not fit are cut from the LEFT with an ellipsis, so the end of a
qualified name (``Class.method``) and its ``(file:line)`` stay visible.
"""
from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from typing import IO, Iterator, Optional

#: a width meaning "no limit" (piped output)
UNLIMITED = 1 << 30


def _isatty(stream: Optional[IO[str]]) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def width(stream: Optional[IO[str]] = None) -> int:
    """Columns a table printed on ``stream`` (default stdout) may use: on a terminal,
    ``COLUMNS`` when set, else the terminal's width; not on a terminal, no limit
    (``COLUMNS`` is ignored there: CI runners and test runners set it for their own
    output, and piped output is for programs)."""
    stream = sys.stdout if stream is None else stream
    if not _isatty(stream):
        return UNLIMITED
    env = os.environ.get("COLUMNS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return shutil.get_terminal_size().columns


def ellipsis(stream: Optional[IO[str]] = None) -> str:
    enc = (getattr(stream if stream is not None else sys.stdout, "encoding", None) or "ascii").lower()
    return "\u2026" if "utf" in enc else "..."


def cut_left(text: str, n: int, mark: Optional[str] = None) -> str:
    """``text`` in at most ``n`` characters, cut from the left with an ellipsis."""
    if len(text) <= n:
        return text
    mark = ellipsis() if mark is None else mark
    if n <= len(mark):
        return text[len(text) - n:]
    return mark + text[len(text) - (n - len(mark)):]


def fit_name(name: str, where: str, n: int, mark: Optional[str] = None) -> str:
    """``name  (where)`` in at most ``n`` characters, keeping ``file:line``.

    In order: the whole text; the directory of ``where`` cut from the left (the
    file name and line stay); ``where`` as ``file:line`` and the name cut from the
    left (``...Class.method``)."""
    full = f"{name}  ({where})" if where else name
    if len(full) <= n:
        return full
    if not where:
        return cut_left(name, n, mark)
    mark = ellipsis() if mark is None else mark
    base = where.replace("\\", "/").rsplit("/", 1)[-1]
    short = (mark + "/" + base) if base != where else base
    room_where = n - len(name) - 4
    if room_where >= len(short):
        return f"{name}  ({cut_left(where, room_where, mark + '/') if len(where) > room_where else where})"
    tail = f"  ({base})"
    return cut_left(name, max(n - len(tail), 1), mark) + tail


def colour(stream: Optional[IO[str]] = None) -> bool:
    """Whether output on ``stream`` gets colour (a terminal, NO_COLOR unset)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return _isatty(sys.stdout if stream is None else stream)


def console(stream: Optional[IO[str]] = None):
    """A rich Console on ``stream`` (default stdout) following the rules above."""
    from rich.console import Console

    stream = sys.stdout if stream is None else stream
    w = width(stream)
    return Console(file=stream, width=None if w >= UNLIMITED else w, no_color=not colour(stream),
                   highlight=False, soft_wrap=True, emoji=False, markup=False)


def print_styled(lines, stream: Optional[IO[str]] = None) -> None:
    """Print ``lines``: each a str, or a list of (text, style) pieces. Styles are
    dropped (plain ``print``) when the stream gets no colour."""
    stream = sys.stdout if stream is None else stream
    if not colour(stream):
        for line in lines:
            stream.write((line if isinstance(line, str) else "".join(t for t, _ in line)) + "\n")
        return
    from rich.text import Text

    con = console(stream)
    for line in lines:
        if isinstance(line, str):
            con.print(Text(line), soft_wrap=True)
        else:
            t = Text()
            for piece, style in line:
                t.append(piece, style=style or None)
            con.print(t, soft_wrap=True)


def paint(text: str, style: str, stream: Optional[IO[str]] = None) -> str:
    """``text`` with ``style`` (a rich style: "bold red") as terminal codes when
    ``stream`` gets colour, else ``text`` as it is."""
    if not style or not colour(stream):
        return text
    import io

    from rich.console import Console
    from rich.text import Text

    buf = io.StringIO()
    Console(file=buf, force_terminal=True, color_system="standard", width=UNLIMITED // 1024, highlight=False,
            soft_wrap=True).print(Text(text, style=style), end="")
    return buf.getvalue()


class Bar:
    """A progress bar on stderr (counts, percentage, elapsed and ETA), or nothing
    when stderr is not a terminal. ``update(done, note)``; ``finish()``."""

    def __init__(self, what: str, total: Optional[int] = None, stream: Optional[IO[str]] = None,
                 unit: str = "", auto_refresh: bool = True) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.on = _isatty(self.stream) and (total is None or total > 0)
        self.total = total
        self.what = what
        self._progress = None
        self._task = None
        self._last = 0.0
        self._manual = not auto_refresh  # no refresh thread: redrawn on update only (timing code)
        if not self.on:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskProgressColumn,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)

        con = Console(file=self.stream, no_color=bool(os.environ.get("NO_COLOR")), highlight=False,
                      width=None if width(self.stream) >= UNLIMITED else width(self.stream))
        if total is None:
            cols = ([] if self._manual else [SpinnerColumn()]) + [TextColumn("retracer: {task.description}"),
                                                                  TimeElapsedColumn()]
        else:
            cols = [TextColumn("retracer: {task.description}"), BarColumn(bar_width=None)]
            if unit != "%":
                cols.append(MofNCompleteColumn())
            cols += [TaskProgressColumn(), TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("eta"),
                     TimeRemainingColumn(), TextColumn("{task.fields[note]}")]
        self._progress = Progress(*cols, console=con, transient=True, redirect_stdout=False,
                                  redirect_stderr=False, refresh_per_second=8, auto_refresh=auto_refresh)
        self._progress.start()
        self._task = self._progress.add_task(what, total=total, note="")

    def update(self, done: Optional[float] = None, note: Optional[str] = None,
               description: Optional[str] = None) -> None:
        if not self.on or self._progress is None:
            return
        kw = {}
        if done is not None:
            kw["completed"] = done
        if note is not None:
            kw["note"] = note
        if description is not None:
            kw["description"] = description
        self._progress.update(self._task, **kw)
        if self._manual:
            self._progress.refresh()

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc) -> None:
        self.finish()


def fraction_bar(what: str, steps: int = 1000) -> Optional["FractionBar"]:
    """A bar fed with fractions 0..1 (exports), or None when stderr is not a terminal."""
    if not _isatty(sys.stderr):
        return None
    return FractionBar(what, steps)


class FractionBar:
    def __init__(self, what: str, steps: int) -> None:
        self.steps = steps
        self.bar = Bar(what, total=steps, unit="%")

    def __call__(self, frac: float) -> None:
        self.bar.update(int(max(0.0, min(1.0, frac)) * self.steps))
        if frac >= 1.0:
            self.bar.finish()

    def finish(self) -> None:
        self.bar.finish()


@contextmanager
def status(what: str) -> Iterator[Bar]:
    """A spinner with elapsed time for a step without counts (stderr terminal only)."""
    bar = Bar(what, total=None)
    try:
        yield bar
    finally:
        bar.finish()


