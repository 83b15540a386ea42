"""The engine binding's start(): every setting is required, and a start that
fails half-way leaves nothing behind -- no session, no open spool file, no
engine memory (its blocks, counted by ``_engine._live_blocks()``; Python objects,
by tracemalloc), no reference kept to what it was given -- so the next start
works. The failures are made by the binding's test hook
``_engine._fail_start_at(n)``: the n-th fallible step of the next start()
fails with MemoryError (creating the engine, its lists, the frozenset of
--only-functions, the capture callbacks)."""
from __future__ import annotations

import gc
import os
import sys
import tracemalloc

import pytest

import retracer
from retracer import _engine

PKG = os.path.dirname(os.path.abspath(retracer.__file__)) + os.sep


class _Capture:
    """What start() calls for captured calls (never called here)."""

    def enter(self, call):
        return None

    def exit(self, end):
        pass

    def yield_(self, y):
        pass


def _settings(spool, **over):
    kw = dict(spool=str(spool), scope=("/nowhere/in/particular/",), exclude=(), ignore=(PKG,),
              only=None, cwd=os.getcwd() + os.sep, no_external=False, no_imports=False,
              c_calls=True, chunk_size=0, capture=None, max_count=100, shape_diverse=True)
    kw.update(over)
    return kw


def _open_files_in(directory) -> list:
    """The files under `directory` this process has open (from /proc/self/fd)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(os.path.join("/proc/self/fd", fd))
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
        if target.startswith(str(directory)):
            out.append(target)
    return sorted(out)


def _start(kw):
    _engine.start(**kw)  # tracemalloc attributes start()'s allocations to this line


_START_LINE = _start.__code__.co_firstlineno + 1


def _traced_here() -> int:
    """Bytes still allocated by calls made from _start()'s line."""
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, __file__, lineno=_START_LINE)])
    return sum(t.size for t in snap.traces)


def test_start_requires_every_setting(tmp_path):
    kw = _settings(tmp_path / "spool")
    for name in kw:
        partial = {k: v for k, v in kw.items() if k != name}
        with pytest.raises(TypeError, match=name):
            _engine.start(**partial)
        assert not _engine.active()
    assert _engine.stop() is None


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc/self/fd")
def test_failed_start_leaves_nothing_behind_and_the_next_start_works(tmp_path):
    scope = ("/nowhere/in/" + "particular/",)  # objects of our own, to count references to
    only = ["work", "helper"]
    cwd = os.getcwd() + os.sep + ""
    cap = _Capture()
    tracked = [scope, only, cwd, cap]

    def failing_settings(n):
        return _settings(tmp_path / f"fail{n}.spool", scope=scope, only=only, cwd=cwd, capture=cap)

    tracemalloc.start(1)
    try:
        # once for real first, so what start() caches for good (interned names) is there
        _start(failing_settings(0))
        assert _engine.stop() is not None
        gc.collect()
        refs = [sys.getrefcount(o) for o in tracked]
        failures = 0
        assert _engine._live_blocks() == 0  # every block of the engine is freed at stop()
        for n in range(1, 50):
            before = _traced_here()
            _engine._fail_start_at(n)
            try:
                _start(failing_settings(n))
            except MemoryError:
                failures += 1
            else:
                assert _engine.stop() is not None  # n is past the last step: a normal session
                break
            gc.collect()
            assert not _engine.active(), n
            assert _engine.stop() is None, n  # no session was left behind
            assert _open_files_in(tmp_path) == [], n  # the spool file is closed
            kept = _traced_here() - before
            # (less than before happens: something the first session cached, freed by the collection)
            assert kept <= 0, f"step {n}: {kept} bytes allocated by start() are still held"
            # the engine's own memory (the C library's, which tracemalloc does not see)
            assert _engine._live_blocks() == 0, f"step {n}: {_engine._live_blocks()} engine blocks still held"
            assert [sys.getrefcount(o) for o in tracked] == refs, f"step {n}: a reference is kept"
            # and a normal session starts and stops after the failure
            _engine.start(**_settings(tmp_path / f"ok{n}.spool"))
            assert _engine.active()
            res = _engine.stop()
            assert res is not None and res.error == ""
        else:
            pytest.fail("start() never got past its fallible steps")
    finally:
        _engine._fail_start_at(0)
        tracemalloc.stop()
    # the engine, three lists, the frozenset of --only-functions and the capture callbacks
    assert failures >= 6, failures

