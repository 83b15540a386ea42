"""The stability check: replay every captured call twice on the code as it is,
in a child process, and find the calls whose outcome varies (they depend on
more than their arguments: time, randomness, global state).

``retracer trace`` runs it in a child process right after tracing
(:func:`check_in_child`) and marks those calls ``unstable`` in the trace it has
just written; ``retracer replay --check-stable`` reports them
(:func:`find_unstable`). Replay never writes into a trace.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Callable, Dict, Optional, Sequence, Tuple

from ..errors import RetracerError
from .replayer import Case, Replayer

#: seconds one replayed call may take during the check, and the whole check
CALL_TIMEOUT = float(os.environ.get("RETRACER_CALL_TIMEOUT", "10"))
CHECK_TIMEOUT = float(os.environ.get("RETRACER_STABLE_TIMEOUT", "300"))


def find_unstable(rep: Replayer, cases: Optional[Sequence[Case]] = None,
                  on_call: Optional[Callable[[int, int, Optional[str], Case], None]] = None) -> Dict[int, str]:
    """call_id -> why, for the replayable calls (of ``cases``, default all of
    ``rep``) whose two replays differ from each other or from the recording.
    Runs in this process."""
    out: Dict[int, str] = {}
    cases = rep.cases if cases is None else cases
    for i, c in enumerate(cases):
        why = rep.outcome_twice_differs(c) if c.status == "ok" else None
        if why:
            out[c.call_id] = why
        if on_call is not None:
            on_call(i + 1, len(cases), why, c)
    return out


def check_in_child(trace: str, call_timeout: float = CALL_TIMEOUT,
                   timeout: float = CHECK_TIMEOUT) -> Tuple[Optional[Dict[int, str]], int, str]:
    """Run the check on ``trace`` in a child process (what replayed code prints
    goes nowhere). Returns (call_id -> why, calls checked, "") or, when the
    check could not finish, (None, 0, a line saying why)."""
    fd, result = tempfile.mkstemp(prefix="retracer-stability-", suffix=".json")
    os.close(fd)
    try:
        cmd = [sys.executable, "-m", "retracer.replay.stability", trace, result, str(call_timeout)]
        try:
            subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, 0, ("retracer: the stability check did not finish in time; run "
                             f"'retracer replay --check-stable {os.path.relpath(trace)}' yourself")
        try:
            with open(result, encoding="utf-8") as f:
                data = json.load(f)
            return {int(k): str(v) for k, v in data["unstable"].items()}, int(data["calls"]), ""
        except (OSError, ValueError, KeyError, TypeError):
            return None, 0, ("retracer: the stability check failed; run "
                             f"'retracer replay --check-stable {os.path.relpath(trace)}' to see why")
    finally:
        os.unlink(result)


def _child(argv) -> int:
    trace, result, call_timeout = argv[0], argv[1], float(argv[2])
    try:
        rep = Replayer(trace, call_timeout=call_timeout)
        calls = len(rep.cases)
        unstable = find_unstable(rep)
    except RetracerError:
        return 2
    with open(result, "w", encoding="utf-8") as f:
        json.dump({"calls": calls, "unstable": {str(k): v for k, v in unstable.items()}}, f)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
