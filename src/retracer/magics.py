"""IPython magics: ``%load_ext retracer``.

- ``%%retrace [opts]``: trace the cell with :class:`retracer.Tracer` (calls,
  profile, captured calls), write the trace file, show the ranked profile and where
  the trace is.
- ``%%rprofile [opts]``: profile the cell (no capture, a temporary trace unless
  ``-o``), show the ranked profile and, when retracer provides one, a flame graph.
- ``%%rsample [--native] [opts]``: sample the cell with py-spy attached to the
  kernel's process (see :mod:`retracer.record.sampled`), show the ranked samples.
- ``%rtimeit [opts] STATEMENT`` / ``%%rtimeit [opts] [SETUP]``: the engine of
  ``retracer timeit`` in the notebook's namespace.

The cell is compiled under IPython's own cell file name (so tracebacks show its
lines) and that name's prefix is put in the tracer's scope: the functions defined
in this cell and in earlier cells are *your code* and are ranked. IPython is only
imported here, when the extension is loaded.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any, Optional, Tuple

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .analysis import measure, ranking
from .errors import RetracerError

__all__ = ["RetracerMagics", "load_ipython_extension", "cell_scope_prefix"]


def cell_scope_prefix(filename: str) -> str:
    """The file name prefix shared by the cells of this session: ``<ipython-input-``
    for a terminal or an InteractiveShell, the directory of ipykernel's cell files
    (``/tmp/ipykernel_<pid>/``), else the name itself."""
    if filename.startswith("<ipython-input-"):
        return "<ipython-input-"
    if os.path.isabs(filename):
        return os.path.dirname(filename) + os.sep
    return filename


def _profile_args(func):
    """The options %%retrace and %%rprofile share."""
    for a in (
        argument("-o", "--output", metavar="FILE", help="trace file to write"),
        argument("--top", type=int, default=20, metavar="N", help="rows in the table (default 20)"),
        argument("--sort", default="saving", metavar="KEY",
                 help=f"rank by {', '.join(ranking.SORT_KEYS)} (default saving)"),
        argument("--all", action="store_true", help="also list functions outside your code"),
        argument("-q", "--quiet", action="store_true", help="do not show the table"),
    ):
        func = a(func)
    return func


@magics_class
class RetracerMagics(Magics):
    """The magics registered by ``%load_ext retracer``."""

    # ------------------------------------------------------------- helpers

    def _parse(self, magic, line: str):
        args = parse_argstring(magic, line)
        if getattr(args, "top", 1) < 1:
            raise UsageError(f"--top must be 1 or more (got {args.top})")
        if hasattr(args, "sort"):
            try:
                args.sort = ranking.normalize_sort(args.sort)
            except RetracerError as e:
                raise UsageError(str(e)) from None
        return args

    def _compile_cell(self, cell: str) -> Tuple[Optional[Any], str]:
        """The cell's code object under IPython's cell file name, or (None, name)
        after showing a SyntaxError as IPython does."""
        shell = self.shell
        source = shell.transform_cell(cell)
        name = shell.compile.cache(source, shell.execution_count, raw_code=cell)
        try:
            return shell.compile(source, name, "exec"), name
        except (SyntaxError, OverflowError, ValueError):
            shell.showsyntaxerror(name)
            return None, name

    def _run_traced(self, cell: str, output: str, *, no_capture: bool, command: str):
        """Run the cell under a Tracer writing ``output``. Returns (summary or None
        when the cell could not be traced, the cell's file name, the exception the
        cell raised as an exc_info tuple or None)."""
        from .record.tracer import Tracer

        code, name = self._compile_cell(cell)
        if code is None:
            return None, name, None
        try:
            tracer = Tracer(output=output, extra_scope=(cell_scope_prefix(name),), no_capture=no_capture,
                            command=[command], handle_signals=False)
            tracer.start()
        except RetracerError as e:
            raise UsageError(str(e)) from None
        if tracer.disable:  # another tracer is running (start() said so): run the cell as it is
            try:
                exec(code, self.shell.user_ns)
            except BaseException:
                return None, name, sys.exc_info()
            return None, name, None
        error = None
        try:
            exec(code, self.shell.user_ns)
        except BaseException:
            error = sys.exc_info()
        summary = tracer.stop(stopped_by="end" if error is None else "exception")
        return summary, name, error

    def _show_error(self, error) -> None:
        """Show the exception the cell raised as IPython would, from the cell's frame."""
        if error is None:
            return
        etype, value, tb = error
        if tb is not None and tb.tb_next is not None:  # drop the frame of this module
            tb = tb.tb_next
            value = value.with_traceback(tb)
        self.shell.showtraceback((etype, value, tb))

    def _show_ranking(self, path: str, cell_file: str, args) -> None:
        from .tracefile import TraceReader

        with TraceReader(path) as r:
            ranked = ranking.rank(r, sort=args.sort, include_all=args.all)
            # shares of the cell's time (other threads of a kernel may run meanwhile)
            cell = [s for s in r.func_stats()
                    if r.functions[s.fid].filename == cell_file and r.functions[s.fid].name == "<module>"]
            if cell and cell[0].cum_ns > 0:
                ranked.total_ns = cell[0].cum_ns
        text = ranking.render_table(ranked, top=args.top)
        if self._html_front_end():
            from IPython.display import display
            from .render.notebook import RankingTable

            table = RankingTable(ranked, text, top=args.top)
            display({"text/html": table._repr_html_(), "text/plain": text}, raw=True)
        else:
            print(text)

    def _html_front_end(self) -> bool:
        """True in a notebook (a kernel's shell): the table is shown as HTML there."""
        return getattr(self.shell, "kernel", None) is not None

    # ------------------------------------------------------------- magics

    @magic_arguments()
    @_profile_args
    @argument("--no-capture", action="store_true", help="do not capture arguments and results")
    @cell_magic
    def retrace(self, line: str, cell: str) -> None:
        """Trace the cell: every call, the profile and the real inputs and outputs
        of the first calls of your functions go into a trace file (default
        retracer.trace, or `output` of [tool.retracer]); then show the ranked profile
        and where the trace is. Usage: %%retrace [-o FILE] [--top N] [--sort KEY]
        [--all] [--no-capture] [-q]
        """
        args = self._parse(self.retrace, line)
        summary, name, error = self._run_traced(cell, args.output, no_capture=args.no_capture,
                                                command="%%retrace")
        if summary is not None and summary.path:
            if not args.quiet:
                self._show_ranking(summary.path, name, args)
            print(f"retracer: trace written to {summary.path} (see it with: retracer profile "
                  f"{summary.path}; replay its calls with: retracer replay {summary.path})")
        self._show_error(error)

    @magic_arguments()
    @_profile_args
    @cell_magic
    def rprofile(self, line: str, cell: str) -> None:
        """Profile the cell: show your functions ranked by the time optimizing them
        could save, and a flame graph when retracer can draw one. The trace is
        temporary unless -o FILE. Usage: %%rprofile [-o FILE] [--top N] [--sort KEY]
        [--all] [-q]
        """
        args = self._parse(self.rprofile, line)
        tmpdir = None
        output = args.output
        if not output:
            tmpdir = tempfile.mkdtemp(prefix="retracer-rprofile-")
            output = os.path.join(tmpdir, "cell.trace")
        try:
            summary, name, error = self._run_traced(cell, output, no_capture=True, command="%%rprofile")
            if summary is not None and summary.path:
                if not args.quiet:
                    self._show_ranking(summary.path, name, args)
                self._show_flamegraph(summary.path, name)
                if args.output:
                    print(f"retracer: trace written to {summary.path}")
            self._show_error(error)
        finally:
            if tmpdir is not None:
                shutil.rmtree(tmpdir, ignore_errors=True)

    def _show_flamegraph(self, path: str, cell_file: str) -> None:
        from . import render
        from .render.notebook import cell_threads, flame_frame
        try:
            # only the threads that ran the cell (not the kernel's own), drawn without
            # a page title, inside an iframe: nothing of it reaches the notebook's page
            html = flame_frame(render.flamegraph_html(path, embed=True, keep=cell_threads(cell_file)))
        except Exception as e:  # never lose the table for the picture
            print(f"retracer: no flame graph: {type(e).__name__}: {e}", file=sys.stderr)
            return
        from IPython.display import display

        # raw: the HTML goes to front ends that show it, whatever the shell's formatters
        display({"text/html": html,
                 "text/plain": "(a flame graph, shown by notebook front ends; keep the trace with "
                               "-o FILE to export one)"}, raw=True)

    @magic_arguments()
    @_profile_args
    @argument("--native", action="store_true", help="also sample native (C/C++) frames")
    @argument("--rate", type=int, default=100, metavar="HZ", help="samples per second (default 100)")
    @cell_magic
    def rsample(self, line: str, cell: str) -> None:
        """Sample the cell with py-spy attached to this kernel's process (only the
        thread running the cell is kept) and show the ranked profile of the samples.
        Needs ptrace permission on the kernel (see: python -m retracer help sample).
        Usage: %%rsample [--native] [--rate HZ] [-o FILE] [--top N] [--sort KEY] [--all] [-q]
        """
        from .record.sampled import SelfSampler

        args = self._parse(self.rsample, line)
        if not 1 <= args.rate <= 10000:
            raise UsageError(f"--rate must be 1..10000 (got {args.rate})")
        code, name = self._compile_cell(cell)
        if code is None:
            return
        tmpdir = None
        output = args.output
        if not output:
            tmpdir = tempfile.mkdtemp(prefix="retracer-rsample-")
            output = os.path.join(tmpdir, "cell.trace")
        try:
            sampler = SelfSampler(rate=args.rate, native=args.native)
            try:
                sampler.start()
            except RetracerError as e:
                raise UsageError(str(e)) from None
            error = None
            try:
                exec(code, self.shell.user_ns)
            except BaseException:
                error = sys.exc_info()
            try:
                path, samples = sampler.stop(output, ["%%rsample"], [cell_scope_prefix(name), os.getcwd()],
                                             trim=cell_scope_prefix(name))
            except RetracerError as e:
                print(str(e), file=sys.stderr)
                path = None
            if path and not args.quiet:
                from .tracefile import TraceReader
                with TraceReader(path) as r:
                    print(ranking.render_table(ranking.rank(r, sort=args.sort, include_all=args.all),
                                               top=args.top))
            if path and args.output:
                print(f"retracer: sampled trace written to {path}")
            self._show_error(error)
        finally:
            if tmpdir is not None:
                shutil.rmtree(tmpdir, ignore_errors=True)

    @line_cell_magic
    def rtimeit(self, line: str = "", cell: Optional[str] = None):
        """Time a statement like `retracer timeit`: one warm-up run, auto-ranging
        (loops per repeat so one repeat takes >= 0.2 s), then the minimum, median and
        interquartile range (IQR) of the time per loop. Runs in the notebook's
        namespace.

        %rtimeit [-n N] [-r R] [-u UNIT] [-p] [-q] [-o] statement
        %%rtimeit [-n N] [-r R] [-u UNIT] [-p] [-q] [-o] [setup statement]
        <statement lines>

        -n loops per repeat (default: auto-range); -r repeats (default 7); -u ns, us,
        ms or s; -p CPU time of the process instead of wall time; -q print nothing;
        -o return the result (a retracer.analysis.measure.TimeitResult).
        """
        opts, rest = self.parse_options(line, "n:r:u:pqo", posix=False, strict=False,
                                        preserve_non_opts=True)
        transform = self.shell.transform_cell
        if cell is None:
            stmt, setup = transform(rest) if rest.strip() else "pass", "pass"
        else:
            stmt, setup = transform(cell), transform(rest) if rest.strip() else "pass"
        try:
            number = int(getattr(opts, "n", 0))
            repeat = int(getattr(opts, "r", measure.DEFAULT_REPEAT))
        except ValueError:
            raise UsageError("-n and -r take whole numbers, e.g. %rtimeit -n 1000 -r 7 f(x)") from None
        if "n" in opts and number < 1:
            raise UsageError(f"-n must be 1 or more (got {number})")
        unit = getattr(opts, "u", None)
        if unit is not None and unit not in measure.UNIT_NAMES:
            raise UsageError(f"-u must be one of {', '.join(measure.UNIT_NAMES)} (got {unit})")
        try:
            res = measure.run(stmt, setup, number=number, repeat=repeat, globals=self.shell.user_ns,
                             process_time="p" in opts)
        except RetracerError as e:
            raise UsageError(str(e)) from None
        if "q" not in opts:
            print(measure.format_result(res, unit))
        return res if "o" in opts else None


def load_ipython_extension(ip) -> None:
    """Register the magics (called by ``%load_ext retracer``)."""
    ip.register_magics(RetracerMagics)
