"""Count the profile events a script produces: Python calls (and resumes) plus C calls.

Usage: python count_calls.py script.py [args...]   -> prints one integer on stderr's last line

run.py uses this count once per workload to size viztracer's ring buffer
(--tracer_entries) so that it drops no events, and to quote overhead per call.
It is the number of 'call' + 'c_call' events of sys.setprofile in all threads, which
is what viztracer records one entry for (a generator resume is a 'call').
"""
import os
import runpy
import sys
import threading

count = 0


def _prof(frame, event, arg):
    global count
    if event == "call" or event == "c_call":
        count += 1


def main() -> int:
    script, args = sys.argv[1], sys.argv[2:]
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    code = 0
    threading.setprofile(_prof)
    sys.setprofile(_prof)
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    sys.stdout.flush()
    print(f"calls={count}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
