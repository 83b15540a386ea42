"""`retracer sample`: sample a program or a running process with py-spy."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List

from ..errors import RetracerError

DESCRIPTION = ("Sample a program (or attach to a running Python process with --pid) with py-spy, a sampler "
               "that reads the process from outside, and write a retracer trace marked as sampled (profile, "
               "view, the exports and diff read it), or a speedscope/pprof file. --native adds C/C++ frames. "
               "Needs ptrace permission on the target; see: python -m retracer help sample")
USAGE = ("retracer sample [--native] [--rate HZ] [-o FILE] [--format trace|speedscope|pprof] "
         "(script.py [args...] | -m module [args...] | --pid PID)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..record.sampled import DEFAULT_RATE

    p.add_argument("-o", "--output", metavar="FILE",
                   help="file to write (default: sampled.trace; sampled.speedscope.json; sampled.pb.gz)")
    p.add_argument("--format", default="trace", choices=["trace", "speedscope", "pprof"],
                   help="trace (default): a retracer trace; speedscope: py-spy's own speedscope file; "
                        "pprof: gzipped profile.proto (retracer's pprof export of the sampled trace)")
    p.add_argument("--rate", type=int, default=DEFAULT_RATE, metavar="HZ",
                   help=f"samples per second (default {DEFAULT_RATE})")
    p.add_argument("--native", action="store_true",
                   help="also sample native frames (C/C++ extensions, libraries such as libz, libcrypto)")
    p.add_argument("--idle", action="store_true",
                   help="also keep samples of threads that are not running (waiting, sleeping): wall time, not CPU")
    p.add_argument("--pid", type=int, metavar="PID", help="attach to this running Python process")
    p.add_argument("--duration", type=float, metavar="S",
                   help="stop after S seconds (default: until the program ends; with --pid until it ends or Ctrl-C)")
    p.add_argument("--scope", action="append", metavar="DIR",
                   help="your code's directory (default: the script's directory, or the current one)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    p.add_argument("-m", dest="module", metavar="MODULE", help="sample a module as python -m does")


def parse(p: argparse.ArgumentParser, argv: List[str]) -> argparse.Namespace:
    """Options first; the script (or -m module) and everything after it are the program's."""
    opts: List[str] = []
    i = 0
    takes = {"-o", "--output", "--format", "--rate", "--pid", "--duration", "--scope"}
    while i < len(argv):
        a = argv[i]
        if a == "--":
            i += 1
            break
        if a == "-m":
            if i + 1 >= len(argv):
                p.error("-m needs a module name")
            opts += ["-m", argv[i + 1]]
            i += 2
            break
        if a.startswith("-") and a != "-":
            opts.append(a)
            if a in takes:
                if i + 1 < len(argv):
                    opts.append(argv[i + 1])
                i += 2
            else:
                i += 1
            continue
        break
    ns = p.parse_args(opts)
    ns.program = argv[i:]
    return ns


def run(ns: argparse.Namespace) -> int:
    from ..record.sampled import sample

    if ns.rate < 1 or ns.rate > 10000:
        raise RetracerError(f"retracer: --rate must be 1..10000 samples per second (got {ns.rate})")
    if ns.pid is not None and (ns.program or ns.module):
        raise RetracerError("retracer: --pid attaches to a running process: give no script or -m module with it")
    if ns.pid is None and not ns.program and not ns.module:
        raise RetracerError("retracer: nothing to sample: give a script, -m module or --pid PID "
                            "(see retracer sample --help)")
    out = ns.output or {"trace": "sampled.trace", "speedscope": "sampled.speedscope.json",
                        "pprof": "sampled.pb.gz"}[ns.format]
    if os.path.isdir(out):
        raise RetracerError(f"retracer: -o {out} is a directory; pass a file name such as run.trace")
    if ns.pid is not None:
        from ..record.sampled import check_pid
        check_pid(ns.pid)
    def started() -> None:
        if not ns.quiet and ns.pid is not None:
            print(f"retracer: sampling process {ns.pid} at {ns.rate} Hz{' with native frames' if ns.native else ''}"
                  f" (until {'--duration ends' if ns.duration else 'it ends or Ctrl-C'})", file=sys.stderr, flush=True)
    res = sample(out, program=ns.program, module=ns.module, pid=ns.pid, rate=ns.rate, native=ns.native,
                 fmt=ns.format, scopes=ns.scope or (), duration=ns.duration, idle=ns.idle, quiet=ns.quiet, on_start=started)
    if not ns.quiet:
        samples = res.get("samples")
        what = f"{samples:,} samples" if samples is not None else "samples"
        hint = {"trace": f"see it with: retracer profile {os.path.relpath(res['path'])}",
                "speedscope": "open it in speedscope", "pprof": f"see it with: pprof -http=: {res['path']}"}
        print(f"retracer: {what} at {ns.rate} Hz written to {res['path']} ({hint[ns.format]})", file=sys.stderr)
    return 0
