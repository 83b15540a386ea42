#!/usr/bin/env python3
"""In-process micro-benchmark of the profile hook alone, on recursive fib(25).

    python benchmarks/hook_micro.py [--n 25] [--rounds 20] [--modes plain,cprofile,...]

Modes, interleaved (each round runs every mode once, in a shuffled order):
  plain               fib(n), nothing attached
  cprofile            cProfile.Profile().enable() / .disable() around fib(n)
  retracer            `with retracer.Tracer(output=tmp):` around fib(n) (capture on)
  retracer-nocapture  the same with no_capture=True (profile and call stream only)
  retracer-no-c-calls no_capture=True, c_calls=False (builtins not recorded)
  floor-setprofile    a C profile function (PyEval_SetProfile) that returns at once
  floor-pep523        a PEP 523 frame-evaluation function that only calls the default one (3.11+)
  floor-mon-py        sys.monitoring, a C callback returning None for the PY_* events (3.12+)
  floor-mon-call      the same plus CALL, C_RETURN and C_RAISE (3.12+)

The floor modes are the limits: no tracer built on that mechanism can be faster. Their
C helpers (benchmarks/floors.c) are compiled on first use into benchmarks/.floors/.
`--one MODE` runs one mode once, with callgrind's instrumentation on around fib(n) only:
    valgrind --tool=callgrind --instr-atstart=no python benchmarks/hook_micro.py --one floor-pep523
(benchmarks/hook_instr.py does that for every mode and prints instructions per call).

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

ALL_MODES = ["plain", "cprofile", "retracer", "retracer-nocapture", "retracer-no-c-calls",
             "floor-setprofile", "floor-pep523", "floor-mon-py", "floor-mon-call"]
FLOORS = [m for m in ALL_MODES if m.startswith("floor-")]
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


def load_floors():
    """The rt_floors module (benchmarks/floors.c), compiled on first use."""
    import importlib.util
    import subprocess
    import sysconfig

    out = HERE / ".floors" / sys.implementation.cache_tag
    so = out / ("rt_floors" + sysconfig.get_config_var("EXT_SUFFIX"))
    src = HERE / "floors.c"
    if not so.exists() or so.stat().st_mtime < src.stat().st_mtime:
        out.mkdir(parents=True, exist_ok=True)
        cc = (sysconfig.get_config_var("CC") or "cc").split()
        subprocess.check_call([*cc, "-O2", "-shared", "-fPIC", "-I", sysconfig.get_paths()["include"],
                               str(src), "-o", str(so)])
    spec = importlib.util.spec_from_file_location("rt_floors", so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Floor:
    """Attach / detach one no-op hook."""

    def __init__(self, mode: str, fl) -> None:
        self.mode, self.fl = mode, fl
        if mode == "floor-pep523" and not hasattr(fl, "eval_on"):
            raise RuntimeError("PEP 523 needs 3.11+")
        if mode.startswith("floor-mon") and not hasattr(sys, "monitoring"):
            raise RuntimeError("sys.monitoring needs 3.12+")

    def __enter__(self):
        m, fl = self.mode, self.fl
        if m == "floor-setprofile":
            fl.profile_on()
        elif m == "floor-pep523":
            fl.eval_on()
        else:
            mon = sys.monitoring
            ev = mon.events
            events = [ev.PY_START, ev.PY_RESUME, ev.PY_RETURN, ev.PY_YIELD, ev.PY_UNWIND, ev.PY_THROW]
            if m == "floor-mon-call":
                events += [ev.CALL, ev.C_RETURN, ev.C_RAISE]
            mon.use_tool_id(4, "floor")
            mask = 0
            for e in events:
                mon.register_callback(4, e, fl.noop)
                mask |= e
            mon.set_events(4, mask)
        return self

    def __exit__(self, *exc):
        m, fl = self.mode, self.fl
        if m == "floor-setprofile":
            fl.profile_off()
        elif m == "floor-pep523":
            fl.eval_off()
        else:
            sys.monitoring.set_events(4, 0)
            sys.monitoring.free_tool_id(4)


def make_tracer(Tracer, output: str, no_capture: bool, c_calls=None):
    """A Tracer with the options this benchmark wants, dropping those it doesn't know."""
    kwargs = {"scope": str(HERE)}
    if no_capture:
        kwargs["no_capture"] = True
    if c_calls is not None:
        kwargs["c_calls"] = c_calls
    try:
        return Tracer(output=output, **kwargs)
    except TypeError:
        if no_capture:
            raise  # without no_capture this would measure the wrong thing
        return Tracer(output=output)


_REGION = (lambda: None, lambda: None)  # what marks the timed region (--one: callgrind's toggles)


def timed_fib(n: int) -> tuple[float, float]:
    on, off = _REGION
    on()
    t0 = time.perf_counter()
    fib(n)
    t1 = time.perf_counter()
    off()
    return t0, t1


def run_mode(mode: str, n: int, Tracer, tmpdir: str, floors=None) -> tuple[float, float]:
    """(hook seconds, total seconds) of one run of `mode`."""
    perf = time.perf_counter
    if mode.startswith("floor-"):
        ta = perf()
        with Floor(mode, floors):
            t0, t1 = timed_fib(n)
        tb = perf()
        return t1 - t0, tb - ta
    if mode == "plain":
        t0, t1 = timed_fib(n)
        return t1 - t0, t1 - t0
    if mode == "cprofile":
        ta = perf()
        p = cProfile.Profile()
        p.enable()
        t0, t1 = timed_fib(n)
        p.disable()
        tb = perf()
        return t1 - t0, tb - ta
    if mode in ("retracer", "retracer-nocapture", "retracer-no-c-calls"):
        out = os.path.join(tmpdir, f"{mode}.trace")
        ta = perf()
        tracer = make_tracer(Tracer, out, no_capture=(mode != "retracer"),
                             c_calls=False if mode == "retracer-no-c-calls" else None)
        with tracer:
            t0, t1 = timed_fib(n)
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
    ap.add_argument("--one", metavar="MODE", help="run MODE once, untimed (for an instruction counter)")
    args = ap.parse_args(argv)
    if args.one:
        global _REGION
        T = None
        if args.one.startswith("retracer"):
            from retracer import Tracer as T  # noqa: F811
        fl = load_floors()
        _REGION = (fl.cg_on, fl.cg_off)
        tmp = tempfile.mkdtemp(prefix="retracer-hook-micro-")
        try:
            run_mode(args.one, args.n, T, tmp, fl)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return 0

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

    floors = None
    if any(m in FLOORS for m in modes):
        try:
            floors = load_floors()
        except Exception as e:
            for m in FLOORS:
                na[m] = f"n/a (benchmarks/floors.c does not build: {type(e).__name__}: {e})"

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
                run_mode(m, args.n, Tracer, tmpdir, floors)
            except Exception as e:
                na[m] = f"error ({type(e).__name__}: {e})"
        for _ in range(args.rounds):
            order = [m for m in modes if m not in na]
            rng.shuffle(order)
            for m in order:
                gc.collect()
                try:
                    h, t = run_mode(m, args.n, Tracer, tmpdir, floors)
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
