"""Capture is out of every timing (issue 10): the clock pauses while retracer
captures, so a call's own and cumulative time, its callers' times and the
call stream's durations are what they are without capture.

The signal is deterministic: arguments whose pickling takes long (a
`__reduce__` that spins). Each captured call records the time spent
capturing it (info.capture_ns); without the pause, each call's own time would
include the pickling of its arguments at entry, i.e. about half of that."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path


from retracer.tracefile import TraceReader
from streamdecode import ENTER, EXIT, EXIT_EXC, RESUME, SUSPEND, iter_events

TIMEOUT = 300

SLOW = """
    import sys, threading
    class Slow:
        def __reduce__(self):
            x = 0
            for i in range(300_000):   # pickling this takes milliseconds
                x += i
            return (Slow, ())
    def f(s):
        return 1
    def g(s):
        yield s
        yield 2
    def run():
        s = Slow()
        for _ in range(5):
            f(s)
        list(g(s))
    def worker():
        run()
    if __name__ == "__main__":
        run()
        t = threading.Thread(target=worker)
        t.start()
        t.join()
"""


def trace(tmp_path: Path, src: str, *opts: str) -> Path:
    (tmp_path / "prog.py").write_text(textwrap.dedent(src).lstrip())
    r = subprocess.run([sys.executable, "-m", "retracer", "trace", "-q", "--no-stability-check", *opts,
                        "-o", "t.trace", "prog.py"], cwd=str(tmp_path), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    return tmp_path / "t.trace"


def test_capture_time_is_in_no_call(tmp_path):
    path = trace(tmp_path, SLOW, "--capture-share", "1")
    with TraceReader(str(path)) as r:
        fids = {f.name: fid for fid, f in r.functions.items() if f.filename.endswith("prog.py")}
        stats = {s.fid: s for s in r.func_stats()}
        calls = list(r.iter_captured())
        threads = list(r.threads)
        events = {t.thread_idx: list(iter_events(r, t.thread_idx)) for t in threads}
        meta = r.meta
    capture = {name: sum(json.loads(c.info)["capture_ns"] for c in calls if c.fid == fids[name])
               for name in ("f", "g", "run")}
    assert capture["f"] > 0 and capture["g"] > 0
    # each function's own time is a small fraction of the time capturing its calls took
    # (without the pause it would be about half of it); its callers' too
    assert stats[fids["f"]].own_ns * 20 < capture["f"], (stats[fids["f"]], capture)
    assert stats[fids["g"]].own_ns * 20 < capture["g"], (stats[fids["g"]], capture)
    run = stats[fids["run"]]  # (the main thread's wait in join() is real time: not checked)
    assert run.cum_ns * 10 < capture["f"] + capture["g"], (run, capture)
    # the recorded durations of the calls agree with the profile
    for c in calls:
        if c.fid == fids["f"]:
            assert c.duration_ns * 20 < json.loads(c.info)["capture_ns"], c
    # the call stream: every call of f is as short as in the profile, on both threads
    f_total = 0
    for evs in events.values():
        stack = []
        for tag, arg, t in evs:
            if tag == ENTER:
                stack.append((arg, t))
            elif tag in (EXIT, EXIT_EXC, SUSPEND):
                fid, t0 = stack.pop()
                if fid == fids["f"]:
                    f_total += t - t0
            elif tag == RESUME:
                stack.append((None, t))
    assert f_total * 20 < capture["f"], (f_total, capture)
    # the time taken out of each thread's timeline is recorded
    paused = meta["capture"]["paused_ns"]
    assert len(paused) == len(threads) == 2 and all(p > 0 for p in paused)
    assert sum(paused) >= capture["f"] + capture["g"]


def test_own_times_agree_with_no_capture_in_ranking(tmp_path):
    # the motivating case: f(d) on a 200,000-entry dict was 93% of the run
    src = """
        def f(d):
            return len(d)
        def build(n):
            return {i: str(i) for i in range(n)}
        if __name__ == "__main__":
            d = build(200_000)
            for _ in range(20):
                f(d)
    """
    path = trace(tmp_path, src, "--capture-share", "1", "--max-value-bytes", "100000000")
    with TraceReader(str(path)) as r:
        names = {fid: f.name for fid, f in r.functions.items()}
        stats = {names[s.fid]: s for s in r.func_stats()}
        cap = sum(json.loads(c.info)["capture_ns"] for c in r.iter_captured() if names[c.fid] == "f")
    assert cap > 0
    assert stats["f"].own_ns * 20 < cap, (stats["f"], cap)
    assert stats["f"].own_ns * 10 < stats["build"].cum_ns, (stats["f"], stats["build"])


def test_profile_says_how_long_capture_took(tmp_path):
    trace(tmp_path, SLOW, "--capture-share", "1")
    r = subprocess.run([sys.executable, "-m", "retracer", "profile", "t.trace"], cwd=str(tmp_path),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("capture:")]
    assert len(lines) == 1 and "left out of every time above" in lines[0], r.stdout
    assert re.search(r"it took [0-9.]+ (us|ms|s), left out", lines[0]), lines[0]
