"""pytest plugin of `retracer compare`: times the benchmark files, one round per process.

Loaded with ``-p retracer_compare_plugin`` (and ``-p no:benchmark``, so that
pytest-benchmark, when installed, steps aside). Configuration comes as JSON in
``RETRACER_COMPARE_BENCH``: ``mode`` (``calibrate``, ``round`` or ``traced``),
``loops`` (node id -> loops), ``target`` (seconds), ``out`` (the results file).

- A test using the ``benchmark`` fixture (pytest-benchmark's interface:
  ``benchmark(fn, *args, **kwargs)``, ``benchmark.pedantic(fn, args, kwargs,
  setup, rounds, iterations, warmup_rounds)``, ``extra_info``) is timed around
  its calls of ``fn``: ``loops`` calls back to back (with ``setup``: each call after
  its own untimed setup).
- A plain test function is timed around its body: ``loops`` calls of the
  function with the same fixture values.

``calibrate``: one untimed call, then 1, 2, 5, 10, ... loops until they take
``target`` seconds; the loop count recorded is the first of that sequence that
lasts ``target`` at the fastest time per loop seen. ``round``: one untimed call,
then ``loops`` timed. ``traced``: ``loops`` timed, nothing untimed (the round is
traced; its per-function numbers come from the trace).
The results file: ``{"benchmarks": {nodeid: {"seconds": s, "loops": n}}, "exitstatus": n}``.
"""
import inspect
import json
import os
import time

import pytest

_CFG = json.loads(os.environ.get("RETRACER_COMPARE_BENCH") or "{}")
_MODE = _CFG.get("mode", "round")
_LOOPS = _CFG.get("loops") or {}
_TARGET = float(_CFG.get("target", 0.05))
_MAX_LOOPS = 10 ** 7
_RESULTS = {}
_clock = time.perf_counter


def _loop(call, loops, setup=None):
    if setup is None:
        t0 = _clock()
        for _ in range(loops):
            res = call()
        return _clock() - t0, res
    spent = 0.0
    res = None
    for _ in range(loops):
        args, kwargs = setup()
        t0 = _clock()
        res = call(*args, **kwargs)
        spent += _clock() - t0
    return spent, res


def _enough(per_loop):
    """The first of 1, 2, 5, 10, ... loops that last the target at the fastest
    time per loop seen (noise only adds time: one disturbed try must not shrink
    the count)."""
    n = 1
    while True:
        for f in (1, 2, 5):
            if n * f * per_loop >= _TARGET or n * f >= _MAX_LOOPS:
                return n * f
        n *= 10


def _record(nodeid, seconds, loops):
    prev = _RESULTS.get(nodeid)
    if prev is not None:  # the fixture called twice in one test: both count
        seconds += prev["seconds"] * (loops / prev["loops"]) if prev["loops"] else 0.0
    _RESULTS[nodeid] = {"seconds": seconds, "loops": loops}


def _timed(nodeid, call, setup=None):
    if setup is None:
        first = call
    else:
        def first():
            a, k = setup()
            return call(*a, **k)
    if _MODE == "calibrate":
        first()
        n, best = 1, None
        while True:
            for f in (1, 2, 5):
                loops = n * f
                dt, res = _loop(call, loops, setup)
                per = dt / loops
                best = per if best is None else min(best, per)
                if dt >= _TARGET or loops >= _MAX_LOOPS:
                    _record(nodeid, dt, _enough(best))
                    return res
            n *= 10
    loops = max(1, int(_LOOPS.get(nodeid, 1)))
    if _MODE == "round":
        first()
    dt, res = _loop(call, loops, setup)
    _record(nodeid, dt, loops)
    return res


class _Benchmark:
    """The ``benchmark`` fixture (pytest-benchmark's calling interface)."""

    def __init__(self, nodeid, name):
        self._nodeid = nodeid
        self.name = name
        self.fullname = nodeid
        self.extra_info = {}
        self.group = None
        self.disabled = False

    def __call__(self, function_to_benchmark, *args, **kwargs):
        return _timed(self._nodeid, lambda: function_to_benchmark(*args, **kwargs))

    def pedantic(self, target, args=(), kwargs=None, setup=None, rounds=1, warmup_rounds=0, iterations=1):
        kwargs = kwargs or {}
        if setup is None:
            return _timed(self._nodeid, lambda: target(*args, **kwargs))

        def prepared():
            got = setup()
            if got is None:
                return args, kwargs
            a, k = got
            return a, k
        return _timed(self._nodeid, target, setup=prepared)


@pytest.fixture
def benchmark(request):
    return _Benchmark(request.node.nodeid, request.node.name)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if "benchmark" in pyfuncitem.fixturenames:
        return None
    fn = pyfuncitem.obj
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        return None
    kwargs = {a: pyfuncitem.funcargs[a] for a in pyfuncitem._fixtureinfo.argnames}
    _timed(pyfuncitem.nodeid, lambda: fn(**kwargs))
    return True


def pytest_sessionfinish(session, exitstatus):
    out = _CFG.get("out")
    if out:
        with open(out, "w") as f:
            json.dump({"benchmarks": _RESULTS, "exitstatus": int(exitstatus)}, f)
