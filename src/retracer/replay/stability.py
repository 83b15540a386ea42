"""The opt-in stability check of ``retracer trace --check-stable``: right after
tracing, replay every captured call the way ``retracer replay`` does (twice, in
isolated children, side effects stopped) and mark the calls found *unstable* in
the trace just written (status ``unstable``, ``meta.unstable_calls``: call id ->
why), so that later replays and the profile know.

Tracing does not do this by default: it would run the program's functions
again. ``retracer replay`` always replays every call twice anyway, so marking
is only a head start.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, Optional, Tuple

from .replayer import Case, Result
from .session import Options, ReplaySession

#: seconds one replayed call may take during the check
CALL_TIMEOUT = float(os.environ.get("RETRACER_CALL_TIMEOUT", "10"))


def find_unstable(trace: str, on_result: Optional[Callable[[int, int, Result], None]] = None,
                  trust: bool = True, timeout: float = CALL_TIMEOUT) -> Tuple[Dict[int, str], Dict[str, int]]:
    """(call id -> why, for the unstable calls; verdict -> calls) of ``trace``."""
    session = ReplaySession(trace, trust=trust, options=Options(timeout=timeout))
    unstable: Dict[int, str] = {}
    counts: Dict[str, int] = {}
    try:
        cases = session.cases
        for i, c in enumerate(cases):
            res = session.check(c)
            counts[res.verdict] = counts.get(res.verdict, 0) + 1
            if res.verdict == "unstable":
                unstable[c.call_id] = (res.reason or "unstable").replace("unstable: ", "", 1)
            if on_result is not None:
                on_result(i + 1, len(cases), res)
    finally:
        session.close()
    return unstable, counts


def mark(trace: str, unstable: Dict[int, str]) -> None:
    """Write the unstable marks into the trace (re-signed)."""
    from ..tracefile.amend import update_captured_status

    if unstable:
        update_captured_status(trace, {cid: "unstable" for cid in unstable},
                               meta={"unstable_calls": {str(k): v for k, v in unstable.items()}})


def describe(case: Case) -> str:
    return f"{case.label} ({case.where})"
