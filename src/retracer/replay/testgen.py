"""Replay tests: the pytest files generated from a trace, and what they call.

A generated file names its trace and holds one test, ``test_replay``,
parametrised over the trace's captured calls in the order they were made (ids
``qualname-callN``). Each test asks :class:`ReplayTests` to replay its call --
twice, in the replay children, with the side-effect guard, exactly as
``retracer replay`` does -- and turns the verdict into pass (match), fail
(mismatch, error) or skip (unstable, side effect, environment changed, not
replayable), with the explanation. What the replayed call printed is shown by
pytest with the test's captured output.

Every call carries ``pytest.mark.xdist_group`` with its function: with
pytest-xdist, ``-n auto --dist loadgroup`` replays each function's calls in one
worker, in their order (``retracer replay -n`` does that).
"""
from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Dict, Iterable, List, Optional

from ..outputs import write_text
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the replay machinery is imported when a test runs, not to write the file
    from .replayer import Case, Result
    from .session import ReplaySession

#: a pytest user property carrying the verdict of a replay test (JSON)
PROPERTY = "retracer_replay"


def result_json(res: "Result") -> str:
    return json.dumps({"call_id": res.case.call_id, "verdict": res.verdict, "reason": res.reason,
                       "message": res.message, "stdout": res.stdout, "stderr": res.stderr,
                       "detail": res.detail}, default=str)


class ReplayTests:
    """Used by generated replay test files: one instance per trace and process."""

    def __init__(self, trace: str, trust: bool = False, **options: Any) -> None:
        self.trace = trace
        self.trust = trust
        from .session import Options

        self.options = Options(**options)
        self._session: Optional["ReplaySession"] = None

    @property
    def session(self) -> "ReplaySession":
        if self._session is None:
            from .session import ReplaySession

            self._session = ReplaySession(self.trace, trust=self.trust, options=self.options)
        return self._session

    def check(self, call_id: int, record_property: Any = None) -> None:
        import pytest

        s = self.session
        case = s.by_id.get(call_id)
        if case is None:
            pytest.fail(f"call {call_id} is not in {self.trace}; generate the replay tests again")
        res = s.check(case)
        if record_property is not None:
            record_property(PROPERTY, result_json(res))
        if res.stdout:
            sys.stdout.write(res.stdout)
        if res.stderr:
            sys.stderr.write(res.stderr)
        if res.verdict == "match":
            return
        if res.verdict == "mismatch":
            pytest.fail(f"{case.label} ({case.where}) behaves differently from the recording:\n{res.message}",
                        pytrace=False)
        if res.verdict == "error":
            pytest.fail(f"{case.label} ({case.where}): {res.message}", pytrace=False)
        prefix = {"unstable": "unstable: ", "side_effect": "", "environment": "", "skipped": ""}.get(res.verdict, "")
        message = res.message or res.reason
        if prefix and not message.startswith(prefix.strip()):
            message = prefix + message
        pytest.skip(message)


def _docstring_safe(text: str) -> str:
    """``text`` with everything but letters, digits and ``._+-`` replaced by
    ``_``: it goes into a docstring, where a quote or backslash would be code."""
    return re.sub(r"[^\w.+-]", "_", text, flags=re.ASCII)


def _identifier(qualname: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in qualname.replace(".", "__"))
    return out.strip("_") or "function"


def _param_id(case: "Case") -> str:
    return re.sub(r"[^\w.<>-]", "_", f"{case.qualname}-call{case.index}")


def replay_test_path(trace: str, tests_root: str, base: str) -> str:
    """Where the replay tests of ``trace`` go: the file already generated for this
    trace if there is one (it is rewritten), else the next free number."""
    stem = _identifier(base)
    want = os.path.abspath(trace)
    n = 0
    free = None
    pattern = re.compile(rf"^test_{re.escape(stem)}__replay_test_(\d+)\.py$")
    if os.path.isdir(tests_root):
        for name in sorted(os.listdir(tests_root)):
            if not pattern.match(name):
                continue
            path = os.path.join(tests_root, name)
            try:
                with open(path, encoding="utf-8") as f:
                    head = f.read(4096)
            except OSError:
                continue
            m = re.search(r"^TRACE = (['\"])(.*?)\1$", head, re.M)
            if m and m.group(2) == want:
                return path
    while True:
        path = os.path.join(tests_root, f"test_{stem}__replay_test_{n}.py")
        if not os.path.exists(path):
            free = path
            break
        n += 1
    return free


def write_replay_tests(trace: str, tests_root: str, base: str, trust: bool = False,
                       cases: Optional[Iterable["Case"]] = None, options: Optional[Dict[str, Any]] = None,
                       path: Optional[str] = None, file_trust: bool = False) -> Optional[str]:
    """Write test_<base>__replay_test_<n>.py into tests_root (the same file again
    when this trace already has one there); returns its path, or None when the
    trace has no captured calls. ``cases``: only these calls (anything with a
    Case's call_id, qualname, index and where); ``options``:
    :class:`.session.Options` fields for the file's ReplayTests; ``path``: write
    exactly there; ``file_trust``: the file reads the trace without checking its
    signature (``trust`` only says how to read it now)."""
    if cases is None:
        from .replayer import Replayer

        rep = Replayer(trace, trust=trust)
        rep.close()
        cases = rep.cases
    cases = list(cases)
    if not cases:
        return None
    os.makedirs(tests_root, exist_ok=True)
    if path is None:
        path = replay_test_path(trace, tests_root, base)
    args = "TRACE" + (", trust=True" if file_trust else "")
    for k, v in sorted((options or {}).items()):
        args += f", {k}={v!r}"
    lines = [
        # the trace's name is data from the run: only safe characters in the docstring
        f'"""Replay tests generated by retracer from {_docstring_safe(os.path.basename(trace))}.',
        "",
        "Each test calls a traced function again with the arguments it really received -- twice, in",
        "child processes set up like the traced program, with side effects stopped -- and checks that",
        "it still returns (or raises) what was recorded and leaves its arguments in the recorded state.",
        "Unstable calls, stopped side effects and calls whose environment changed are skipped with the",
        "reason. Generated: not meant for git (add '*__replay_test_*' to .gitignore); tracing again to",
        "the same trace rewrites it. Parallel: pytest -n auto --dist loadgroup (pytest-xdist).",
        '"""',
        "import pytest",
        "",
        "from retracer.replay import ReplayTests",
        "",
        f"TRACE = {os.path.abspath(trace)!r}",
        f"_replay = ReplayTests({args})",
        "",
        "CALLS = [",
    ]
    for c in cases:
        group = f"{c.qualname} ({c.where})"
        lines.append(f"    pytest.param({c.call_id}, id={_param_id(c)!r}, "
                     f"marks=pytest.mark.xdist_group({group!r})),")
    lines += [
        "]",
        "",
        "",
        '@pytest.mark.parametrize("call_id", CALLS)',
        "def test_replay(call_id, record_property):",
        "    _replay.check(call_id, record_property)",
        "",
    ]
    write_text(path, "\n".join(lines))
    return path
