"""Noticing that a replayed call read something that changes from one run to the
next: the clock, random numbers the program did not seed, the operating
system's randomness, the process id.

Installed in the replay child before the program's modules are imported: the
functions of :mod:`time`, :mod:`random` (the module-level functions and
``SystemRandom``; ``random.Random`` instances seeded by the operating system),
``os.urandom`` and ``os.getpid`` are wrapped by functions that note their use
(one set lookup) and call the original. Code that imported them before (the
standard library's own ``from time import monotonic``) is not seen; two replays
in two processes still tell such calls apart when their results differ.

A call whose two replays agree with each other but not with the recording is
*unstable*, not a mismatch, when it read one of these: its result could not
have been reproduced.
"""
from __future__ import annotations

import functools
import os
import random
import time
from typing import Any, Callable, List, Optional, Set

_used: Set[str] = set()
_installed = False
_seed = {"call": 0, "n": 0}
_original_seed: Any = None

_TIME_READERS = ("time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns",
                 "process_time", "process_time_ns", "thread_time", "thread_time_ns")
#: functions of time that read the clock only when called without a time
_TIME_DEFAULTED = ("localtime", "gmtime", "ctime", "asctime", "strftime")
_RANDOM_FUNCS = ("random", "uniform", "triangular", "randint", "choice", "randrange", "sample",
                 "shuffle", "choices", "normalvariate", "lognormvariate", "expovariate",
                 "vonmisesvariate", "gammavariate", "gauss", "betavariate", "paretovariate",
                 "weibullvariate", "getrandbits", "randbytes", "binomialvariate")


def used() -> List[str]:
    """What the current call read since :func:`reset`, in words."""
    return sorted(_used)


def reset(call_seed: Optional[int] = None) -> None:
    """Forget what was read; with ``call_seed``, seed ``random`` with it (every
    replay of one call gets the same random numbers: two replays, and the
    original code, can then be compared even when the call uses them)."""
    _used.clear()
    if call_seed is not None:
        _seed["call"], _seed["n"] = call_seed, 0
        if _original_seed is not None:
            _original_seed(call_seed)


def _noting(what: str, fn: Callable[..., Any], min_args: int = -1) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if min_args < 0 or len(args) < min_args:
            _used.add(what)
        return fn(*args, **kwargs)
    wrapper.__retracer_wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper


def install() -> None:
    """Wrap the readers (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    for name in _TIME_READERS:
        fn = getattr(time, name, None)
        if fn is not None:
            setattr(time, name, _noting(f"the clock (time.{name})", fn))
    for name in _TIME_DEFAULTED:
        fn = getattr(time, name, None)
        if fn is not None:
            # strftime(format[, t]): the clock when t is not given
            setattr(time, name, _noting(f"the clock (time.{name})", fn, 2 if name == "strftime" else 1))
    os.urandom = _noting("the system's randomness (os.urandom)", os.urandom)  # type: ignore[assignment]
    os.getpid = _noting("the process id (os.getpid)", os.getpid)  # type: ignore[assignment]

    # the module-level functions of random are methods of one hidden instance,
    # seeded by the operating system unless the program calls random.seed(x)
    state = {"seeded": False}
    inst = random._inst  # type: ignore[attr-defined]
    for name in _RANDOM_FUNCS:
        fn = getattr(random, name, None)
        if fn is None or getattr(fn, "__self__", None) is not inst:
            continue

        def make(fn: Callable[..., Any] = fn, name: str = name) -> Callable[..., Any]:
            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if not state["seeded"]:
                    _used.add(f"random numbers (random.{name})")
                return fn(*args, **kwargs)
            return wrapper
        setattr(random, name, make())
    seed = random.seed
    global _original_seed
    _original_seed = seed

    @functools.wraps(seed)
    def seeding(a: Any = None, *args: Any, **kwargs: Any) -> Any:
        state["seeded"] = a is not None
        return seed(a, *args, **kwargs)
    random.seed = seeding  # type: ignore[assignment]

    # Random() instances seeded by the operating system, SystemRandom
    cls_seed = random.Random.seed

    def instance_seed(self: Any, a: Any = None, *args: Any, **kwargs: Any) -> Any:
        if a is None and self is not inst and not isinstance(self, random.SystemRandom):
            # seeded by the operating system in the program: here, the same
            # numbers in every replay of the call
            _used.add("random numbers (a random.Random seeded by the operating system)")
            _seed["n"] += 1
            a = _seed["call"] * 7919 + _seed["n"]
        return cls_seed(self, a, *args, **kwargs)
    random.Random.seed = instance_seed  # type: ignore[assignment]
    for name in ("random", "getrandbits", "randbytes"):
        fn = random.SystemRandom.__dict__.get(name)
        if fn is not None:
            setattr(random.SystemRandom, name, _noting("the system's randomness (random.SystemRandom)", fn))
