"""A seeded fuzz test of the trace reader (issue 12): a few hundred malformed
variants of a real trace -- truncated, bit-flipped, edited by SQL in every
table, with schema objects added -- signed again or not, read by ``profile``,
every export, ``view``, ``view --text`` and ``replay``, with and without
``--trust``. Each command must end with its output or one clean line (status
2): no traceback, no "internal error", no crash, no hang.

The variants run in one child process (tests/security_fuzz.py), so that a
crash or a hang names its variant instead of taking pytest down.
"""
from __future__ import annotations

import json
import os
import textwrap

import pytest

from helpers import run_python, trace

# the reader, the exporters and the view are the same code on every Python: the fuzzer
# (the longest test, about 3 minutes) runs once per test command
pytestmark = pytest.mark.once

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20240612
VARIANTS = int(os.environ.get("RETRACER_FUZZ_VARIANTS", "300"))
# in shards of their own seed, so that pytest-xdist spreads them over the cores
# (one shard of 300 was the longest test, and the last to end)
SHARDS = 4

PROG = """
    import threading

    class Box:
        def __init__(self, w):
            self.w = w

    def area(b, k=2):
        return b.w * k

    def gen(n):
        for i in range(n):
            yield i * i

    def boom(x):
        raise ValueError(f"bad {x}")

    def rec(n):
        return 0 if n == 0 else 1 + rec(n - 1)

    def big(s):
        return len(s)

    def work():
        for i in range(2):
            area(Box(i), k=i)
        list(gen(3))
        try:
            boom("y")
        except ValueError:
            pass
        rec(4)
        big("z" * 5000)  # stored once, by reference
        return {"a": [1, 2.5, "s", b"b", None]}

    if __name__ == "__main__":
        t = threading.Thread(target=work)
        t.start()
        work()
        t.join()
"""


@pytest.mark.parametrize("shard", range(SHARDS))
def test_malformed_traces_get_one_line(tmp_path, run_tmpdir, shard):
    n = VARIANTS // SHARDS + (shard < VARIANTS % SHARDS)
    seed = SEED + shard
    prog = tmp_path / "prog.py"
    prog.write_text(textwrap.dedent(PROG))
    base = tmp_path / "base.trace"
    trace(base, prog, cwd=tmp_path)
    for name in os.listdir(tmp_path):
        if "__replay_test_" in name:
            os.unlink(tmp_path / name)
    results = tmp_path / "results.jsonl"
    child = run_python([os.path.join(HERE, "security_fuzz.py"), str(base), str(tmp_path / "work"), str(seed),
                        str(n), str(results)], cwd=tmp_path, timeout=3600)
    lines = [json.loads(ln) for ln in results.read_text().splitlines()] if results.exists() else []
    done = [d for d in lines if "done" in d]
    started = [d for d in lines if "start" in d]
    assert child.returncode == 0 and len(done) == n, (
        f"the fuzzer ended with status {child.returncode} after {len(done)} variants; last started: "
        f"{started[-1] if started else None}\n{child.stderr[-3000:]}")
    # about half the variants are signed again (the user's own trace, changed): if signing
    # them stopped working, the fuzzer would quietly test only unsigned files
    assert sum(1 for d in done if d["signed"]) > n // 4, "the fuzzer could not sign its variants"
    bad = [d for d in done if d["problems"]]
    report = "\n".join(f"variant {d['done']} {d['what']} signed={d['signed']}: {d['problems'][:3]}" for d in bad[:10])
    assert not bad, f"{len(bad)} of {n} variants (seed {seed}) went wrong:\n{report}"
    # not vacuous: the commands both succeeded and refused, on signed and unsigned variants
    statuses = {}
    for d in done:
        for k, v in d["rcs"].items():
            statuses[k] = statuses.get(k, 0) + v
    assert statuses.get("0", 0) > n and statuses.get("2", 0) > n, statuses
    assert sum(d["signed"] for d in done) > n // 4
