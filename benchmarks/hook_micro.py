#!/usr/bin/env python3
"""In-process micro-benchmark of the profile hook alone, on recursive fib(25).

    python benchmarks/hook_micro.py [--n 25] [--rounds 20] [--modes plain,cprofile,...]

Modes, interleaved (each round runs every mode once, in a shuffled order):
  plain               fib(n), nothing attached
  cprofile            cProfile.Profile().enable() / .disable() around fib(n)
  retracer            `with retracer.Tracer(output=tmp):` around fib(n) (capture on)
  retracer-nocapture  the same with no_capture=True (profile and call stream only)

"hook" time is fib(n) alone, timed inside the enable/disable or with block: it is what
the hook costs per call. "total" adds starting the profiler and, for retracer, writing
the trace file on exit. Ratios are median/median to plain; ns/call is the extra time
per Python call (one call + one return event) over plain, from the medians.
retracer modes are "n/a" when retracer does not import.
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ALL_MODES = ["plain", "cprofile", "retracer", "retracer-nocapture"]
HERE = Path(__file__).resolve().parent


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def fib_calls(n: int) -> int:
    """Number of calls fib(n) makes, itself included: 2*F(n+1) - 1."""
    a, b = 0, 1
    for _ in range(n + 1):
        a, b = b, a + b
    return 2 * a - 1


def make_tracer(Tracer, output: str, no_capture: bool):
    """A Tracer with the options this benchmark wants, dropping those it doesn't know."""
    kwargs = {"scope": str(HERE)}
    if no_capture:
        kwargs["no_capture"] = True
    try:
        return Tracer(output=output, **kwargs)
    except TypeError:
        if no_capture:
            raise  # without no_capture this would measure the wrong thing
        return Tracer(output=output)


def run_mode(mode: str, n: int, Tracer, tmpdir: str) -> tuple[float, float]:
    """(hook seconds, total seconds) of one run of `mode`."""
    perf = time.perf_counter
    if mode == "plain":
        t0 = perf()
        fib(n)
        t1 = perf()
        return t1 - t0, t1 - t0
    if mode == "cprofile":
        ta = perf()
        p = cProfile.Profile()
        p.enable()
        t0 = perf()
        fib(n)
        t1 = perf()
        p.disable()
        tb = perf()
        return t1 - t0, tb - ta
    if mode in ("retracer", "retracer-nocapture"):
        out = os.path.join(tmpdir, f"{mode}.trace")
        ta = perf()
        tracer = make_tracer(Tracer, out, no_capture=(mode == "retracer-nocapture"))
        with tracer:
            t0 = perf()
            fib(n)
            t1 = perf()
        tb = perf()
        if not os.path.exists(out):
            raise RuntimeError(f"no trace file written at {out}")
        os.unlink(out)
        return t1 - t0, tb - ta
    raise ValueError(mode)


def md_table(header, rows) -> str:
    widths = [max(len(str(header[i])), *(len(str(r[i])) for r in rows)) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(widths[i]) for i, c in enumerate(cells)) + " |"
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(r) for r in rows)])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=25, help="fib argument (default 25)")
    ap.add_argument("--rounds", type=int, default=20, help="interleaved rounds (default 20)")
    ap.add_argument("--modes", default=",".join(ALL_MODES), help="comma-separated modes")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in ALL_MODES:
            sys.exit(f"error: unknown mode {m!r}; choose from {', '.join(ALL_MODES)}")
    if "plain" not in modes:
        modes.insert(0, "plain")

    na: dict[str, str] = {}
    Tracer = None
    try:
        from retracer import Tracer  # noqa: F811
    except Exception as e:  # not built yet, or broken: report, don't fail
        for m in modes:
            if m.startswith("retracer"):
                na[m] = f"n/a (retracer does not import: {type(e).__name__}: {e})"

    calls = fib_calls(args.n)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    tmpdir = tempfile.mkdtemp(prefix="retracer-hook-micro-")
    hook: dict[str, list[float]] = {m: [] for m in modes}
    total: dict[str, list[float]] = {m: [] for m in modes}
    print(f"fib({args.n}): {calls:,} calls; {args.rounds} rounds, modes interleaved "
          f"(seed {seed}); Python {sys.version.split()[0]}")
    try:
        for m in modes:  # one untimed warm-up each, and a first check that it works
            if m in na:
                continue
            try:
                run_mode(m, args.n, Tracer, tmpdir)
            except Exception as e:
                na[m] = f"error ({type(e).__name__}: {e})"
        for _ in range(args.rounds):
            order = [m for m in modes if m not in na]
            rng.shuffle(order)
            for m in order:
                gc.collect()
                try:
                    h, t = run_mode(m, args.n, Tracer, tmpdir)
                except Exception as e:
                    na[m] = f"error ({type(e).__name__}: {e})"
                    continue
                hook[m].append(h)
                total[m].append(t)
    except KeyboardInterrupt:
        print("interrupted: summarising the rounds done so far")
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

    base = statistics.median(hook["plain"]) if hook["plain"] else None
    rows = []
    for m in modes:
        if m in na or not hook[m]:
            rows.append([m, na.get(m, "no runs").split(" ")[0], "", "", "", "", ""])
            continue
        med, lo = statistics.median(hook[m]), min(hook[m])
        tmed = statistics.median(total[m])
        ratio = f"{med / base:.2f}x" if base else "?"
        extra = f"{(med - base) / calls * 1e9:.0f}" if base and m != "plain" else "–"
        rows.append([m, f"{med * 1e3:.1f}", f"{lo * 1e3:.1f}", ratio, extra,
                     f"{med / calls * 1e9:.0f}", f"{tmed * 1e3:.1f} ({tmed / base:.2f}x)"
                     if base else f"{tmed * 1e3:.1f}"])
    print()
    print(md_table(["mode", "hook ms (median)", "min ms", "ratio", "extra ns/call",
                    "ns/call", "total ms incl. start+write"], rows))
    for m in modes:
        if m in na:
            print(f"- {m}: {na[m]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
