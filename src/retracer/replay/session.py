"""The replay parent: runs every recorded call twice, in two child processes,
and turns what they say into one verdict per call.

:class:`ReplaySession` is what ``retracer replay`` and the generated replay
tests (every pytest process, xdist workers included) use. For each call:

1. child ``A`` and child ``B`` (:mod:`.sandbox`; two processes set up like the
   traced program, with different hash seeds) each fork a process of its own
   for the call, from the same prepared state, and replay it at the same time;
   ``B``'s sends its pickled outcome, which the parent hands to ``A``'s;
2. ``A``'s compares the two replays with each other (exactly) and, when they
   agree, with the recording, and gives the verdict -- or, when the code on
   disk differs from the sources stored in the trace and the recording is not
   reproduced, asks for the original code's outcome: child ``O`` runs the
   stored sources now (in a fresh process of its own too), and ``A``'s judges
   the candidate against it.

Every call is replayed in a fresh process: nothing one replay changes (a
singleton reconfigured, a cache filled, a file left behind) reaches another, so
the verdicts do not depend on which calls are replayed or in what order
(``--functions``, ``-n``, ``pytest -k``). A call that runs past the time limit,
or that kills its process (a crash, ``os._exit``), is reported against that
call (``error``); the replay goes on. Nothing the replayed code prints reaches
this process's output: each call's stdout and stderr come back in the
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
               "options": session.options.child(), "sources_changed": bool(session.changed),
               # a call's process never outlives this (the parent kills it sooner when it is late)
               "max_seconds": int(session.options.timeout * 3 + 60) if session.options.timeout else 0}
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
        self.call_pid: Optional[int] = None   # the process replaying the current call
        self.in_call = False        # a call's process is waiting for the parent

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
    """The next answer of each child (role -> (header, payload)), skipping the
    notes that a call's process was forked; raises _Died (a child itself is
    gone) or _Late."""
    import select

    out: Dict[str, Tuple[Dict[str, Any], bytes]] = {}
    pending = {c.reader.fd: c for c in children}
    while pending:
        for fd, c in list(pending.items()):
            while True:
                msg = c.reader.ready()
                if msg is None:
                    break
                c.answered = True
                head = msg[0]
                if head.get("op") == "forked":
                    c.call_pid = int(head["pid"]) if head.get("pid") else None
                    c.in_call = True
                    continue
                if head.get("op") == "died" or head.get("final"):
                    c.call_pid = None       # the call's process is gone, or ends by itself
                    c.in_call = False
                out[c.role] = msg
                del pending[fd]
                break
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
        self.replayer.verify_values()
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

    def _drop(self, c: _Child) -> None:
        if self._children.get(c.role) is c:
            del self._children[c.role]
        c.close(graceful=False)

    def _child(self, role: str) -> _Child:
        c = self._children.get(role)
        if c is None or c.proc.poll() is not None:
            if c is not None:
                c.close(graceful=False)
            c = self._children[role] = _Child(role, self, self._seeds[role])
        return c

    def _end(self, *children: _Child) -> None:
        """Let the call's process of these children go (the call is judged)."""
        for c in children:
            if c.in_call:
                c.in_call = False
                c.call_pid = None
                try:
                    c.send({"op": "end"})
                except _Died:
                    self._drop(c)

    def _abandon(self, late: Sequence[_Child], others: Sequence[_Child]) -> None:
        """After a timeout: kill the call's processes that are late (their
        children report them dead) and end the others'."""
        for c in late:
            if c.in_call and c.call_pid:
                try:
                    os.kill(c.call_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    head, _ = _wait([c], time.monotonic() + 10)[c.role]
                    if head.get("op") != "died":      # it answered just then: let it go
                        self._end(c)
                        continue
                except (_Died, _Late):
                    self._drop(c)
            else:                                      # stuck before forking: start it again
                self._drop(c)
        for c in others:
            if c not in late:
                self._end(c)

    # ------------------------------------------------------------ one call

    def _deadline(self) -> Optional[float]:
        t = self.options.timeout
        return time.monotonic() + t if t and t > 0 else None

    def check(self, case: Case) -> Result:
        """Replay one recorded call twice and judge it (see :mod:`.verdicts`)."""
        if case.status not in ("ok", "unstable"):
            why = skip_reason(case)
            return Result(case, "skipped", why, why.split(" (")[0])
        if self._broken:
            return Result(case, "error", self._broken, "the replay process could not start")
        a, b = self._child("A"), self._child("B")
        try:
            a.send({"op": "run", "id": case.call_id})
            b.send({"op": "run", "id": case.call_id, "send": True})
            got = _wait([a, b], self._deadline())
        except _Late as e:
            self._abandon(e.children, [a, b])
            return self._late(case, e)
        except _Died as e:
            return self._gone(case, e, [a, b])
        self._start_failures = 0
        ra, _ = got["A"]
        rb, pb = got["B"]
        self._end(b)
        res = Result(case, "error", stdout=ra.get("stdout") or "", stderr=ra.get("stderr") or "")
        for head, who in ((ra, a), (rb, b)):
            if head.get("op") == "died":
                self._end(a, b)
                return self._crashed(case, who, head)
        if ra.get("skip"):
            self._end(a)
            res.verdict, res.message = "skipped", ra["skip"]
            res.reason = ra["skip"].split(" (")[0]
            return res
        if ra.get("error"):
            self._end(a)
            res.message = ra["error"]
            res.reason = ra["error"].split(":")[0]
            return res
        if not a.in_call:
            # the template answered without forking (the function's module tried
            # a side effect when imported)
            blocked = (ra.get("blocked") or []) + [x for x in rb.get("blocked") or [] if x not in (ra.get("blocked") or [])]
            res.verdict = "side_effect"
            res.message = "side effect: not replayed: importing it tried to " + "; ".join(blocked)
            res.reason = "side effect: not replayed"
            res.detail = {"blocked": blocked}
            return res
        try:
            rb_head = {k: rb.get(k) for k in ("blocked", "nondet", "pickle_error", "error", "skip")}
            a.send({"op": "judge", "id": case.call_id, "other": rb_head}, pb)
            v, _ = _wait([a], self._deadline())["A"]
            if v.get("op") == "need_original":
                v = self._with_original(case, a)
        except _Late as e:
            self._abandon(e.children, [a])
            return self._late(case, e, judging=True)
        except _Died as e:
            return self._gone(case, e, [a])
        if v.get("op") == "died":
            return self._crashed(case, a, v)
        self._end(a)
        res.verdict = v.get("verdict", "error")
        res.message = v.get("message", "")
        res.reason = v.get("reason", "")
        res.detail = {k: v[k] for k in ("blocked", "nondet", "changed") if v.get(k)}
        if rb.get("ns") is not None and ra.get("ns") is not None:
            res.detail["ns"] = [ra["ns"], rb["ns"]]
        return res

    def _with_original(self, case: Case, a: _Child) -> Dict[str, Any]:
        header: Dict[str, Any] = {"op": "judge_original", "id": case.call_id}
        payload = b""
        failed = None
        o = self._child("O")
        try:
            o.send({"op": "run", "id": case.call_id, "send": True})
            ro, payload = _wait([o], self._deadline())["O"]
            self._end(o)
            if ro.get("op") == "died":
                failed = f"the original code's process {ro.get('status')}"
            elif ro.get("blocked"):
                failed = "it tried to " + "; ".join(ro["blocked"])
            elif ro.get("skip") or ro.get("error"):
                failed = ro.get("skip") or ro.get("error")
            elif not payload:
                failed = f"its outcome could not be passed over ({ro.get('pickle_error')})"
        except _Died as e:
            failed = e.why.splitlines()[0]
            self._drop(o)
        except _Late as e:
            failed = "the original code did not return in time"
            self._abandon(e.children, [o])
        if failed:
            header["failed"] = failed
            payload = b""
        a.send(header, payload)
        v, _ = _wait([a], self._deadline())["A"]
        return v

    def _late(self, case: Case, e: _Late, judging: bool = False) -> Result:
        t = self.options.timeout
        res = Result(case, "error", reason="did not return in time")
        res.message = (f"the call did not {'finish being compared' if judging else 'return'} within "
                       f"{t:g} s (retracer replay --timeout S changes the limit)")
        tail = e.children[0].stderr_tail()
        if tail:
            res.stderr = tail
        return res

    def _crashed(self, case: Case, who: _Child, head: Dict[str, Any]) -> Result:
        res = Result(case, "error", reason="crashed the replay process")
        tail = who.stderr_tail()
        res.message = f"the replay process {head.get('status')}" + (f":\n{tail}" if tail else "")
        res.stderr = tail
        return res

    def _gone(self, case: Case, e: _Died, involved: Sequence[_Child]) -> Result:
        """A child itself died (not only a call's process): start it again."""
        if not e.child.answered:
            self._start_failures += 1
        self._drop(e.child)
        for c in involved:
            if c is not e.child:
                if c.in_call:
                    self._abandon([c], [])
        res = Result(case, "error", reason="crashed the replay process")
        res.message = f"{e.why}\n(the replay goes on in a new process)"
        res.stderr = e.child.stderr_tail()
        if self._start_failures >= 2:
            self._broken = "the replay process could not start: " + e.why
        return res

    # ------------------------------------------------------------ timing

    def bench(self, case: Case) -> Optional[Tuple[float, float, int]]:
        """(min, median, repeats) seconds per call of one matching call, timed in
        a process of child A (its side effects guarded like its replays)."""
        a = self._child("A")
        try:
            a.send({"op": "bench", "id": case.call_id})
            r, _ = _wait([a], time.monotonic() + max(60.0, self.options.timeout or 60.0))["A"]
        except _Late as e:
            self._abandon(e.children, [a])
            return None
        except _Died as e:
            self._drop(e.child)
            return None
        self._end(a)
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
