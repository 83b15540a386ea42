"""Run a script under yappi and save its profile as pstats.

Usage: python yappi_run.py OUT.pstats script.py [args...]

Used by run.py for the `yappi` mode: wall clock, builtins on, all threads profiled.
The save is part of the measured time, as it is for the other tools.
"""
import os
import runpy
import sys

import yappi


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out, script, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    yappi.set_clock_type("wall")
    yappi.start(builtins=True, profile_threads=True)
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        yappi.stop()
        yappi.get_func_stats().save(out, type="pstat")
    return code


if __name__ == "__main__":
    sys.exit(main())
