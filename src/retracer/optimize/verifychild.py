"""One verification pass of ``retracer optimize``, in its own process:
``python -m retracer.optimize.verifychild CONFIG.json``.

The recorded calls of the given functions are called again on the code of one
copy of the project (its directory first on ``sys.path``, the traced run's own
entries under the project moved to the copy, as :mod:`retracer.compare.replaybench`
does) with the recorded arguments, unpickled afresh for every call, and each
outcome is compared with the recording by replay's comparator. The side-effect
guard of replay is armed around every call: a candidate (untrusted code) that
would write files, connect or start processes is stopped, and the call is an
error. The result, per call id: ``ok``, ``mismatch`` (with the first
difference), ``error`` (with the error) or ``skip`` (the call cannot be
replayed here).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any, Dict, List


def _remap(path: str, old_root: str, new_root: str) -> str:
    old = old_root.rstrip(os.sep) + os.sep
    if path and os.path.realpath(path).startswith(old):
        return os.path.join(new_root, os.path.realpath(path)[len(old):])
    return path


def main(argv: List[str]) -> int:
    with open(argv[0]) as f:
        cfg = json.load(f)
    for p in reversed(cfg.get("paths") or []):
        if p not in sys.path:
            sys.path.insert(0, p)
    old_root, new_root = cfg["remap"]
    from ..replay import guard as guard_mod
    from ..replay.replayer import BrokenImport, Replayer, Unresolvable, agrees

    r = Replayer(cfg["trace"], trust=True, call_timeout=0)
    r._paths_done = True
    for p in r.meta.get("sys_path") or []:
        q = _remap(p, old_root, new_root)
        if q != p and os.path.isdir(q) and q not in sys.path:
            sys.path.append(q)
    argv0 = [str(c) for c in (r.meta.get("command") or [])]
    if argv0 and argv0[0] != "-m":
        sys.argv = [_remap(argv0[0], old_root, new_root)] + argv0[1:]
    wanted = {(t["module"], t["qualname"]) for t in cfg["targets"]}
    only = set(cfg.get("calls") or [])
    scratch = tempfile.mkdtemp(prefix="retracer-optimize-verify-")
    g = guard_mod.install(scratch)
    results: Dict[str, Dict[str, Any]] = {}
    for case in r.cases:
        if (case.module, case.qualname) not in wanted or case.status != "ok":
            continue
        if only and case.call_id not in only:
            continue
        case.filename = _remap(case.filename, old_root, new_root)
        key = str(case.call_id)
        try:
            fn, args = r._prepare(case)
            expected = r.expected(case)
        except Unresolvable as e:
            results[key] = {"verdict": "skip", "message": str(e), "fn": case.qualname}
            continue
        except BrokenImport as e:
            results[key] = {"verdict": "error", "message": str(e), "fn": case.qualname}
            continue
        except BaseException as e:  # noqa: BLE001 - a candidate that does not even import
            results[key] = {"verdict": "error", "message": f"{type(e).__name__}: {e}", "fn": case.qualname}
            continue
        g.arm()
        try:
            actual = r.invoke(case, fn, args, expected)
        finally:
            g.disarm()
        blocked = g.take()
        if blocked:
            results[key] = {"verdict": "error", "message": "side effect stopped: " + "; ".join(blocked[:3]),
                            "fn": case.qualname}
            continue
        try:
            m = agrees(expected, actual)
        except BaseException as e:  # noqa: BLE001
            results[key] = {"verdict": "error", "message": f"comparing: {type(e).__name__}: {e}",
                            "fn": case.qualname}
            continue
        if m is None:
            results[key] = {"verdict": "ok", "fn": case.qualname}
        elif getattr(m, "uncomparable", False):
            results[key] = {"verdict": "skip", "message": m.describe(200), "fn": case.qualname}
        else:
            results[key] = {"verdict": "mismatch", "message": m.describe(300), "fn": case.qualname}
    with open(cfg["out"], "w") as f:
        json.dump({"calls": results}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
