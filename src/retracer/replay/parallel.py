"""``retracer replay -n N``: the calls replayed in parallel by pytest-xdist.

The selected calls are written as a replay test file (the same generator as
``retracer trace`` uses, with the command's options) into a temporary
directory, and pytest runs it with ``-n N --dist loadgroup`` (every function's
calls in one worker, in their order): each worker has its own pair of replay
children. The verdicts come back through the tests' user properties (which
xdist carries from the workers); a test that ends without one (its worker
died) is an ``error`` for its call. pytest's own output is not shown; the
command prints its usual report.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
import tempfile
from typing import Callable, Dict, List, Optional, Sequence

from ..errors import RetracerError
from .replayer import Case, Result
from .testgen import PROPERTY, _param_id, write_replay_tests


# the test's parameter id in a node id: `...::test_replay[f-call0]`, which some
# pytest-xdist versions follow with the test's group (`...[f-call0]@f (prog.py:3)`)
_PARAM = re.compile(r"::test_replay\[([\w.<>-]+)\]")


class _Collector:
    def __init__(self, by_param: Dict[str, Case], on_result: Callable[[Result], None]) -> None:
        self.by_param = by_param
        self.by_id = {c.call_id: p for p, c in by_param.items()}
        self.on_result = on_result
        self.seen: set = set()

    def pytest_runtest_logreport(self, report) -> None:  # noqa: ANN001 - pytest's TestReport
        m = _PARAM.search(report.nodeid)
        param = m.group(1) if m else ""
        for name, value in getattr(report, "user_properties", ()) or ():
            if name == PROPERTY:  # the verdict names its call
                d = json.loads(value)
                param = self.by_id.get(d.get("call_id"), param)
                break
        case = self.by_param.get(param)
        if case is None or param in self.seen:
            return
        for name, value in getattr(report, "user_properties", ()) or ():
            if name == PROPERTY:
                d = json.loads(value)
                self.seen.add(param)
                self.on_result(Result(case, d["verdict"], d.get("message", ""), d.get("reason", ""),
                                      d.get("stdout", ""), d.get("stderr", ""), d.get("detail") or {}))
                return
        if report.when == "call" or report.failed:
            # no verdict: the test did not get to record one (its worker crashed, ...)
            self.seen.add(param)
            text = str(getattr(report, "longrepr", "") or "")
            lines = [ln for ln in text.splitlines() if ln.strip()]
            self.on_result(Result(case, "error", "the replay test ended without a verdict: " +
                                  (lines[-1] if lines else report.outcome),
                                  "the pytest worker failed"))


def replay_parallel(trace: str, cases: Sequence[Case], workers: str, trust: bool, options: Dict,
                    on_result: Callable[[Result], None]) -> List[Result]:
    """Replay ``cases`` with pytest-xdist; returns the results in the cases' order."""
    try:
        import pytest
        import xdist  # noqa: F401
    except ImportError:
        raise RetracerError("retracer: replay -n needs pytest-xdist (pip install pytest-xdist); "
                            "or replay without -n") from None
    tmp = tempfile.mkdtemp(prefix="retracer-replay-n-")
    results: Dict[int, Result] = {}

    def got(res: Result) -> None:
        results[res.case.call_id] = res
        on_result(res)

    try:
        path = write_replay_tests(trace, tmp, "retracer", trust=trust, cases=cases, options=options,
                                  path=os.path.join(tmp, "test_retracer_replay.py"), file_trust=trust)
        ini = os.path.join(tmp, "pytest.ini")
        with open(ini, "w") as f:
            f.write("[pytest]\n")
        by_param = {_param_id(c): c for c in cases}
        args = [path, "-c", ini, "--rootdir", tmp, "-p", "no:cacheprovider", "-q", "-n", str(workers),
                "--dist", "loadgroup", "-o", "addopts=", "-W", "ignore::pytest.PytestUnknownMarkWarning"]
        saved_env = os.environ.pop("PYTEST_ADDOPTS", None)
        saved_out = sys.stdout
        sys.stdout = io.StringIO()       # pytest's own report is not the command's
        try:
            rc = pytest.main(args, plugins=[_Collector(by_param, got)])
        finally:
            sys.stdout = saved_out
            if saved_env is not None:
                os.environ["PYTEST_ADDOPTS"] = saved_env
        if int(rc) not in (0, 1) and not results:
            raise RetracerError(f"retracer: pytest could not run the replay (exit status {int(rc)}); "
                                "replay without -n to see why")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = []
    for c in cases:
        r = results.get(c.call_id)
        if r is None:
            r = Result(c, "error", "the call was not replayed (its pytest worker stopped)", "not replayed")
            on_result(r)
        out.append(r)
    return out
