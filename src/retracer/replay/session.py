"""The replay parent: runs every recorded call twice, in two child processes,
and turns what they say into one verdict per call.

:class:`ReplaySession` is what ``retracer replay`` and the generated replay
tests (every pytest process, xdist workers included) use. For each call:

1. child ``A`` and child ``B`` (:mod:`.sandbox`; two processes set up like the
   traced program, with different hash seeds) replay the call at the same time;
   ``B`` sends its pickled outcome, which the parent hands to ``A``;
2. ``A`` compares the two replays with each other (exactly) and, when they
   agree, with the recording, and gives the verdict -- or, when the code on
   disk differs from the sources stored in the trace and the recording is not
   reproduced, asks for the original code's outcome: child ``O`` runs the
   stored sources now (after replaying the calls ``A`` replayed before, so it
   has the same history), and ``A`` judges the candidate against it.

A call that runs past the time limit, or that kills its process (a crash,
``os._exit``), is reported against that call (``error``); its children are
stopped and the next call gets new ones. Nothing the replayed code prints
reaches this process's output: each call's stdout and stderr come back in the
:class:`Result`.
"""
from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import RetracerError
from . import protocol, sources
from .replayer import CALL_TIMEOUT, Case, Replayer, Result, skip_reason

_OWN_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BOOT = ("import sys; sys.path.insert(0, {own!r}); "
         "from retracer.replay.sandbox import main; main(sys.argv[1:])")
#: at most this many earlier calls are replayed into a new original-code child
CATCH_UP_MAX = 5000


@dataclass
class Options:
    """How calls are judged (``retracer replay`` options; the generated tests' defaults)."""

    exact: bool = False                 # floats must be equal, not close
    ignore_dict_order: bool = False     # the order of plain dicts' keys is not compared
    allow_side_effects: bool = False    # no audit-hook guard
    timeout: float = CALL_TIMEOUT       # seconds per call (0: none)
    original: bool = True               # judge against the stored original code when it changed

    def child(self) -> Dict[str, Any]:
        return {"exact": self.exact, "ignore_dict_order": self.ignore_dict_order,
                "allow_side_effects": self.allow_side_effects}


class _Died(Exception):
    def __init__(self, child: "_Child", why: str) -> None:
        super().__init__(why)
        self.child = child
        self.why = why


class _Late(Exception):
    def __init__(self, children: List["_Child"]) -> None:
        super().__init__("timeout")
        self.children = children


def _signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


class _Child:
    """One replay child process and its pipes."""

    def __init__(self, role: str, session: "ReplaySession", seed: Optional[str]) -> None:
        self.role = role
        self.scratch = tempfile.mkdtemp(prefix=f"retracer-replay-{role}-")
        cmd_r, self.cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        cfg = {"role": role, "trace": session.trace, "identity": session.identity,
               "scratch": self.scratch, "cmd_fd": cmd_r, "res_fd": res_w,
               "options": session.options.child(), "sources_changed": bool(session.changed)}
        env = dict(os.environ)
        cfg["environ"] = {k: env.get(k) for k in ("PYTHONHASHSEED", "TMPDIR", "PYTHONDONTWRITEBYTECODE")}
        if seed is not None:
            env["PYTHONHASHSEED"] = seed
        env["TMPDIR"] = self.scratch
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        for k in ("PYTHONSTARTUP", "PYTHONINSPECT"):
            env.pop(k, None)
        cwd = session.meta.get("cwd")
        if not (isinstance(cwd, str) and os.path.isdir(cwd)):
            cwd = None
        self.log_path = os.path.join(self.scratch, "log")
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT.format(own=_OWN_PARENT), json.dumps(cfg)],
                cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                pass_fds=(cmd_r, res_w), start_new_session=True, close_fds=True)
        finally:
            log.close()
            os.close(cmd_r)
            os.close(res_w)
        self.reader = protocol.Reader(res_r)
        self.answered = False       # has it ever replied (it started up)?

    def send(self, header: Dict[str, Any], payload: bytes = b"") -> None:
        try:
            protocol.write_all(self.cmd_w, protocol.encode(header, payload))
        except OSError:
            raise _Died(self, self.death()) from None

    def death(self) -> str:
        """Why the process is gone, in words (waits for it briefly)."""
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self.proc.returncode
        if rc is None:
            return "the replay process stopped answering"
        if rc < 0:
            text = f"the replay process was killed by {_signal_name(-rc)}"
        else:
            text = f"the replay process exited with status {rc} (os._exit, or the interpreter itself failed)"
        tail = self.stderr_tail() or self.log_tail()
        if tail:
            text += ":\n" + tail
        return text

    def _tail(self, path: str, lines: int = 8) -> str:
        try:
            with open(path, "rb") as f:
                data = f.read()[-4000:]
        except OSError:
            return ""
        out = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
        return "\n".join(out[-lines:])

    def stderr_tail(self) -> str:
        return self._tail(os.path.join(self.scratch, "stderr"))

    def log_tail(self) -> str:
        return self._tail(self.log_path)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                try:
                    self.proc.kill()
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def close(self, graceful: bool = True) -> None:
        if graceful and self.proc.poll() is None:
            try:
                self.send({"op": "quit"})
                self.proc.wait(timeout=2)
            except (_Died, subprocess.TimeoutExpired):
                pass
        self.kill()
        for fd in (self.cmd_w, self.reader.fd):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.scratch, ignore_errors=True)


def _wait(children: Sequence[_Child], deadline: Optional[float]) -> Dict[str, Tuple[Dict[str, Any], bytes]]:
    """One message from each child (role -> (header, payload)); raises _Died or _Late."""
    import select

    out: Dict[str, Tuple[Dict[str, Any], bytes]] = {}
    pending = {c.reader.fd: c for c in children}
    while pending:
        for fd, c in list(pending.items()):
            msg = c.reader.ready()
            if msg is not None:
                c.answered = True
                out[c.role] = msg
                del pending[fd]
        if not pending:
            break
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise _Late(list(pending.values()))
        ready, _, _ = select.select(list(pending), [], [], left)
        for fd in ready:
            c = pending[fd]
            try:
                c.reader.fill()
            except protocol.ChannelClosed:
                raise _Died(c, c.death()) from None
    return out


class ReplaySession:
    """Replays the calls of one trace, each twice in isolated children."""

    def __init__(self, trace: str, trust: bool = False, options: Optional[Options] = None) -> None:
        self.trace = os.path.abspath(trace)
        self.options = options or Options()
        # the signature is checked here, once; the children check that the file
        # is still the one checked (same inode, size and time)
        self.replayer = Replayer(self.trace, trust=trust)
        self.replayer.close()
        st = os.stat(self.trace)
        self.identity = [st.st_ino, st.st_size, st.st_mtime_ns]
        self.meta = self.replayer.meta
        self.cases: List[Case] = self.replayer.cases
        self.by_id: Dict[int, Case] = {c.call_id: c for c in self.cases}
        self.stored_sources = sources.stored(self.meta)
        self.changed: List[str] = sources.changed_files(self.meta) if self.options.original else []
        env = (self.meta.get("environment") or {}).get("variables") or {}
        fixed = env.get("PYTHONHASHSEED")
        if fixed not in (None, "", "random"):
            self._seeds = {"A": str(fixed), "B": str(fixed), "O": str(fixed)}
        else:
            a = random.randrange(1, 2 ** 32 - 1)
            b = a % (2 ** 32 - 2) + 1
            self._seeds = {"A": str(a), "B": str(b), "O": str(a)}
        self._children: Dict[str, _Child] = {}
        self._history: List[int] = []          # calls A and B replayed since they started
        self._o_history = 0                    # how many of them the original child replayed
        self._o_broken: Optional[str] = None
        self._start_failures = 0
        self._broken: Optional[str] = None
        self._finalizer = weakref.finalize(self, ReplaySession._close_all, self._children)
        atexit.register(self._finalizer)

    # ------------------------------------------------------------ children

    @staticmethod
    def _close_all(children: Dict[str, _Child]) -> None:
        for c in list(children.values()):
            c.close()
        children.clear()

    def close(self) -> None:
        self._finalizer()

    def _stop(self, roles: Sequence[str] = ("A", "B", "O")) -> None:
        for r in roles:
            c = self._children.pop(r, None)
            if c is not None:
                c.close(graceful=False)
        if "A" in roles:
            self._history = []
            self._o_history = 0
            self._o_broken = None

    def _child(self, role: str) -> _Child:
        c = self._children.get(role)
        if c is None or c.proc.poll() is not None:
            if c is not None:
                c.close(graceful=False)
            c = self._children[role] = _Child(role, self, self._seeds[role])
        return c

    # ------------------------------------------------------------ one call

    def check(self, case: Case) -> Result:
        """Replay one recorded call twice and judge it (see :mod:`.verdicts`)."""
        if case.status not in ("ok", "unstable"):
            why = skip_reason(case)
            return Result(case, "skipped", why, why.split(" (")[0])
        if self._broken:
            return Result(case, "error", self._broken, "the replay process could not start")
        timeout = self.options.timeout if self.options.timeout and self.options.timeout > 0 else None
        a, b = self._child("A"), self._child("B")
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            a.send({"op": "run", "id": case.call_id})
            b.send({"op": "run", "id": case.call_id, "send": True})
            got = _wait([a, b], deadline)
        except (_Died, _Late) as e:
            return self._failed(case, e, timeout)
        self._start_failures = 0
        self._history.append(case.call_id)
        ra, _ = got["A"]
        rb, pb = got["B"]
        res = Result(case, "error", stdout=ra.get("stdout") or "", stderr=ra.get("stderr") or "")
        if ra.get("skip"):
            res.verdict, res.message = "skipped", ra["skip"]
            res.reason = ra["skip"].split(" (")[0]
            return res
        if ra.get("error"):
            res.message = ra["error"]
            res.reason = ra["error"].split(":")[0]
            return res
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            rb_head = {k: rb.get(k) for k in ("blocked", "nondet", "pickle_error", "error", "skip")}
            a.send({"op": "judge", "id": case.call_id, "other": rb_head}, pb)
            v, _ = _wait([a], deadline)["A"]
            if v.get("op") == "need_original":
                v = self._with_original(case, a, timeout)
        except (_Died, _Late) as e:
            return self._failed(case, e, timeout, judging=True)
        res.verdict = v.get("verdict", "error")
        res.message = v.get("message", "")
        res.reason = v.get("reason", "")
        res.detail = {k: v[k] for k in ("blocked", "nondet", "changed") if v.get(k)}
        if rb.get("ns") is not None and ra.get("ns") is not None:
            res.detail["ns"] = [ra["ns"], rb["ns"]]
        return res

    def _with_original(self, case: Case, a: _Child, timeout: Optional[float]) -> Dict[str, Any]:
        header: Dict[str, Any] = {"op": "judge_original", "id": case.call_id}
        payload = b""
        failed = self._o_broken
        if failed is None:
            try:
                o = self._child("O")
                todo = self._history[self._o_history:-1][-CATCH_UP_MAX:]
                for cid in todo:        # the calls A replayed before this one: the same history
                    o.send({"op": "run", "id": cid})
                    _wait([o], None if timeout is None else time.monotonic() + timeout)
                self._o_history = len(self._history) - 1
                o.send({"op": "run", "id": case.call_id, "send": True})
                ro, payload = _wait([o], None if timeout is None else time.monotonic() + timeout)["O"]
                self._o_history = len(self._history)
                if ro.get("blocked"):
                    failed = "it tried to " + "; ".join(ro["blocked"])
                elif ro.get("skip") or ro.get("error"):
                    failed = ro.get("skip") or ro.get("error")
                elif not payload:
                    failed = f"its outcome could not be passed over ({ro.get('pickle_error')})"
            except _Died as e:
                failed = self._o_broken = e.why.splitlines()[0]
                self._stop(("O",))
            except _Late:
                failed = self._o_broken = "the original code did not return in time"
                self._stop(("O",))
        if failed:
            header["failed"] = failed
            payload = b""
        a.send(header, payload)
        v, _ = _wait([a], None if timeout is None else time.monotonic() + timeout)["A"]
        return v

    def _failed(self, case: Case, e: Exception, timeout: Optional[float], judging: bool = False) -> Result:
        res = Result(case, "error")
        if isinstance(e, _Late):
            res.reason = "did not return in time"
            res.message = (f"the call did not {'finish being compared' if judging else 'return'} within "
                           f"{timeout:g} s (retracer replay --timeout S changes the limit); the replay "
                           "goes on in a new process")
            late = e.children[0]
            tail = late.stderr_tail()
            if tail:
                res.stderr = tail
        else:
            assert isinstance(e, _Died)
            res.reason = "crashed the replay process"
            if not e.child.answered:
                self._start_failures += 1
            res.message = f"{e.why}\n(the replay goes on in a new process)"
            res.stderr = e.child.stderr_tail()
        self._stop()
        if self._start_failures >= 2:
            self._broken = ("the replay process could not start: " + (e.why if isinstance(e, _Died) else "")
                            ).strip()
        return res

    # ------------------------------------------------------------ timing

    def bench(self, case: Case) -> Optional[Tuple[float, float, int]]:
        """(min, median, repeats) seconds per call of one matching call, timed in
        child A (its side effects guarded like its replays)."""
        try:
            a = self._child("A")
            a.send({"op": "bench", "id": case.call_id})
            r, _ = _wait([a], time.monotonic() + max(60.0, self.options.timeout or 60.0))["A"]
        except (_Died, _Late):
            self._stop()
            return None
        if r.get("min") is None:
            return None
        return float(r["min"]), float(r["median"]), int(r["repeat"])


def check_python(meta: Dict[str, Any]) -> Optional[str]:
    """A warning when this Python is not the one the trace was made with."""
    traced = meta.get("python_version")
    now = sys.version.split()[0]
    if traced and traced.rsplit(".", 1)[0] != now.rsplit(".", 1)[0]:
        return (f"retracer: warning: the trace was made with Python {traced}, this is {now}; "
                "replayed calls may differ for that reason alone")
    return None


def open_session(trace: str, trust: bool = False, options: Optional[Options] = None) -> ReplaySession:
    try:
        return ReplaySession(trace, trust=trust, options=options)
    except RetracerError:
        raise
