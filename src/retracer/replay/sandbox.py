"""The replay child process: where recorded calls run again.

The parent (:mod:`.session`) starts it as ``python -c <bootstrap> CONFIG``. It
sets itself up like the traced program -- the trace's working directory,
``sys.argv`` (for ``-m module``, the module's file first, as ``runpy`` does),
``sys.path``, the traced script's functions loaded from its file (its
``if __name__ == "__main__":`` block does not run) and made ``__main__`` --
then serves the messages of :mod:`.protocol` on two pipes of its own:

- ``run``: call one recorded function with its recorded arguments (loaded
  afresh), with stdout and stderr (file descriptors 1 and 2) sent to files of
  its scratch directory for the time of the call, the side-effect guard armed
  (:mod:`.guard`) and the readers of the clock and of randomness watched
  (:mod:`.nondet`); reply with what happened, and the pickled outcome when asked;
- ``judge``: compare this child's outcome of the call with the other replay's
  (sent by the parent) and with the recording, and give the verdict (or ask for
  the original code's outcome);
- ``judge_original``: finish the verdict with the outcome of the original code
  (the trace's stored sources, run by a third child);
- ``bench``: time the call on its recorded inputs.

Roles: ``A`` judges; ``B`` is the second replay (another process, another hash
seed); ``O`` runs the original code from the sources stored in the trace.
Whatever a call raises (``SystemExit``, ``KeyboardInterrupt`` too) is its
outcome. A call that kills the process (a crash, ``os._exit``) or runs past the
time limit is the parent's to report; it starts a new child.
"""
from __future__ import annotations

import faulthandler
import gc
import signal
import importlib.util
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

_clock = time.perf_counter_ns     # before nondet wraps it: retracer's own timing is not the call's

from . import guard as _guard_mod      # noqa: E402
from . import nondet, protocol, sources  # noqa: E402
from .comparator import Drained, Mismatch, Outcome, compare_outcome  # noqa: E402
from .replayer import BrokenImport, Case, Replayer, Unresolvable, _is_guard, agrees  # noqa: E402

_CAN_FORK = hasattr(os, "fork") and os.environ.get("RETRACER_REPLAY_NO_FORK") != "1"
_ENDED = 77                 # exit status of a call's process that ended as asked

OUTPUT_KEEP = 16_000        # characters of a call's stdout/stderr kept (head and tail)
PICKLE_MAX = 256 << 20      # an outcome larger than this is not sent to the judging child


def _bounded(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    if len(text) <= OUTPUT_KEEP:
        return text
    head, tail = text[:OUTPUT_KEEP * 3 // 4], text[-OUTPUT_KEEP // 4:]
    return f"{head}\n... ({len(text) - len(head) - len(tail)} characters left out) ...\n{tail}"


def pack(serializer: Any, o: Outcome) -> bytes:
    """An outcome as capture stores one: the return value (or the exception), the
    arguments after the call and each yielded value pickled separately (so an
    iterator shared by the result and an argument is two copies, as recorded)."""
    import pickle

    serializer.index.refresh()
    d = serializer.dumps
    parts = {"kind": o.kind, "truncated": o.truncated,
             "value": d(o.value) if o.kind == "return" else None,
             "exception": d(o.exception) if o.kind == "raise" else None,
             "args_after": d(o.args_after) if o.args_after is not None else None,
             "yielded": [d(y) for y in o.yielded] if o.yielded is not None else None}
    return pickle.dumps(parts, protocol=5)


def unpack(rep: Replayer, data: bytes) -> Outcome:
    import pickle

    parts = pickle.loads(data)
    lo = rep.loads
    return Outcome(kind=parts["kind"], truncated=parts["truncated"],
                   value=lo(parts["value"]) if parts["value"] is not None else None,
                   exception=lo(parts["exception"]) if parts["exception"] is not None else None,
                   args_after=lo(parts["args_after"]) if parts["args_after"] is not None else None,
                   yielded=[lo(y) for y in parts["yielded"]] if parts["yielded"] is not None else None)


class _Last:
    """This child's replay of the current call."""

    __slots__ = ("cid", "case", "outcome", "args", "blocked", "nondet", "expected", "drained", "packed",
                 "pack_error")

    def __init__(self, cid: int, case: Case) -> None:
        self.cid = cid
        self.case = case
        self.outcome: Optional[Outcome] = None
        self.args: Dict[str, Any] = {}
        self.blocked: List[str] = []
        self.nondet: List[str] = []
        self.expected: Optional[Outcome] = None
        self.drained: Dict[int, Tuple[Any, Drained]] = {}
        self.packed: Optional[bytes] = None
        self.pack_error: Optional[str] = None


class Sandbox:
    def __init__(self, cfg: Dict[str, Any]) -> None:
        self.cfg = cfg
        self.role = cfg["role"]
        self.opts = cfg.get("options") or {}
        self.scratch = cfg["scratch"]
        self.cmd = protocol.Reader(cfg["cmd_fd"], exact=True)
        self.res = cfg["res_fd"]
        sys.dont_write_bytecode = True
        self.log_fd = os.dup(1)
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        self.out_fd = os.open(os.path.join(self.scratch, "stdout"), flags, 0o600)
        self.err_fd = os.open(os.path.join(self.scratch, "stderr"), flags, 0o600)
        faulthandler.enable(file=sys.stderr, all_threads=True)

        trace = cfg["trace"]
        want = cfg.get("identity")
        if want is not None:
            st = os.stat(trace)
            if [st.st_ino, st.st_size, st.st_mtime_ns] != list(want):
                raise SystemExit(f"retracer: {trace} changed while replaying; replay it again")
        meta_sources = None
        self.rep = Replayer(trace, trust=True)
        stored = sources.stored(self.rep.meta)
        if self.role == "O":
            meta_sources = {p: self.rep._reader.blob(k) for p, k in stored.items()}
            self.rep.sources = meta_sources
            sources.install({p: (lambda p=p: meta_sources.get(p)) for p in stored})
        else:
            sources.install({p: sources.disk_reader(p) for p in stored})
        self.rep.main_as_main = True
        self.sources_changed = bool(cfg.get("sources_changed"))
        self.sources_known = bool(stored)
        self._restore_environment(cfg.get("environ") or {})
        self._setup_program()
        self.serializer = self._serializer()
        self.guard = None
        if not self.opts.get("allow_side_effects"):
            self.guard = _guard_mod.install(self.scratch)
        nondet.install()
        self.last: Optional[_Last] = None

    # ------------------------------------------------------------ setup

    def _restore_environment(self, saved: Dict[str, Optional[str]]) -> None:
        """The variables the parent set only to start this process (its hash seed,
        TMPDIR, no bytecode) get their values back: the replayed code sees the
        environment both replays share."""
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def _setup_program(self) -> None:
        meta = self.rep.meta
        cwd = meta.get("cwd")
        if cwd and os.path.isdir(cwd):
            os.chdir(cwd)
        own = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        traced = [p for p in (meta.get("sys_path") or []) if isinstance(p, str)]
        sys.path[:] = traced + [p for p in sys.path if p not in traced and p == own] + \
            ([own] if own not in traced else [])
        self.rep._paths_done = True
        command = [str(c) for c in (meta.get("command") or [])]
        if len(command) >= 2 and command[0] == "-m":
            argv0 = command[1]
            try:
                spec = importlib.util.find_spec(command[1])
                if spec is not None and spec.origin:
                    argv0 = spec.origin
            except Exception:  # noqa: BLE001 - the module may be gone: argv[0] is its name then
                pass
            sys.argv = [argv0] + command[2:]
        elif command:
            sys.argv = command
        import tempfile
        tempfile.tempdir = self.scratch

    def _serializer(self) -> Any:
        from ..record.pickling import ModuleIndex, Serializer
        scopes = [p if p.endswith(os.sep) else p + os.sep
                  for p in (self.rep.meta.get("scopes") or [self.rep.meta.get("scope") or ""]) if p]
        return Serializer(PICKLE_MAX, ModuleIndex(tuple(scopes)))

    # ------------------------------------------------------------ output

    def _flush(self) -> None:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:  # noqa: BLE001 - a stream the program replaced and broke
                pass

    def _begin_output(self) -> None:
        self._flush()
        for fd in (self.out_fd, self.err_fd):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        os.dup2(self.out_fd, 1)
        os.dup2(self.err_fd, 2)

    def _end_output(self) -> Tuple[str, str]:
        self._flush()
        os.dup2(self.log_fd, 1)
        os.dup2(self.log_fd, 2)
        out = []
        for fd in (self.out_fd, self.err_fd):
            size = os.fstat(fd).st_size
            if size > 4 * OUTPUT_KEEP:
                data = os.pread(fd, 3 * OUTPUT_KEEP, 0) + b"\n...\n" + os.pread(fd, OUTPUT_KEEP, size - OUTPUT_KEEP)
            else:
                data = os.pread(fd, size, 0)
            out.append(_bounded(data))
        return out[0], out[1]

    # ------------------------------------------------------------ messages

    def serve(self) -> None:
        """The template's loop: for every call (or timing), prepare what can be
        shared -- the function found again, its modules imported -- then fork a
        process that replays the call and answers for it, and wait for it. Each
        call starts from the same state: nothing one replay changes reaches
        another."""
        while True:
            try:
                msg, payload = self.cmd.read()
            except protocol.ChannelClosed:
                return
            op = msg.get("op")
            if op == "quit":
                return
            if op not in ("run", "bench"):
                self._send({"op": "error", "message": f"unexpected {op!r}: no call is running"})
                continue
            early = self._prepare_shared(msg)
            if early is not None:
                self._send(early)
                continue
            if not _CAN_FORK:
                self._send({"op": "forked", "pid": None})
                self._serve_call(msg)
                continue
            gate_r, gate_w = os.pipe()
            gc.freeze()             # the call's process does not touch the template's objects to collect them
            pid = os.fork()
            if pid == 0:
                os.close(gate_w)
                os.read(gate_r, 1)          # the template has told the parent who this is
                os.close(gate_r)
                status = 1
                try:
                    self._serve_call(msg)
                    status = _ENDED
                finally:
                    os._exit(status)
            os.close(gate_r)
            self._send({"op": "forked", "pid": pid})
            os.write(gate_w, b"x")
            os.close(gate_w)
            _, status = os.waitpid(pid, 0)
            if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == _ENDED):
                self._send({"op": "died", "id": msg.get("id"), "status": _status_text(status)})

    def _send(self, reply: Dict[str, Any], payload: bytes = b"") -> None:
        protocol.write_all(self.res, protocol.encode(reply, payload))

    def _prepare_shared(self, msg: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """Find the function in the template (imports are shared by the calls);
        a reply when the call cannot be replayed at all, else None."""
        cid = int(msg["id"])
        case = self.rep.by_id.get(cid)
        op = "ran" if msg.get("op") == "run" else "timed"
        if case is None:
            return {"op": op, "id": cid, "error": f"call {cid} is not in the trace"}
        if self.guard is not None:
            self.guard.arm()
        self._begin_output()
        try:
            self.rep.resolve(case)
            self.rep._module(case)
        except Unresolvable as e:
            return {"op": op, "id": cid, "skip": str(e)}
        except BrokenImport as e:
            return {"op": op, "id": cid, "error": str(e)}
        except BaseException as e:  # noqa: BLE001 - importing runs the program's code
            if _is_guard(e):
                return {"op": op, "id": cid, "blocked": self._reply_blocked(), "nondet": []}
            return {"op": op, "id": cid, "error": f"cannot load the function: {type(e).__name__}: {e}"}
        finally:
            out, err = self._end_output()
            if self.guard is not None:
                self.guard.disarm()
        self._reply_blocked()
        return None

    def _serve_call(self, first: Dict[str, Any]) -> None:
        """In the process of one call: replay it, then answer about it until the
        parent says it is done with it."""
        if _CAN_FORK and hasattr(signal, "alarm") and self.cfg.get("max_seconds"):
            # never outlive a parent that died without stopping this process
            signal.alarm(int(self.cfg["max_seconds"]))
        msg, payload = first, b""
        while True:
            op = msg.get("op")
            if op == "end":
                return
            if self.guard is not None:
                self.guard.arm()
            try:
                if op == "run":
                    reply, out = self.run(msg)
                elif op == "judge":
                    reply, out = self.judge(msg, payload), b""
                elif op == "judge_original":
                    reply, out = self.judge_original(msg, payload), b""
                elif op == "bench":
                    reply, out = self.bench(msg), b""
                else:
                    reply, out = {"op": "error", "message": f"unknown op {op!r}"}, b""
            finally:
                if self.guard is not None:
                    self.guard.disarm()
            if op == "run" and (msg.get("send") or reply.get("skip") or reply.get("error")):
                reply["final"] = True
            if reply.get("op") in ("verdict", "timed", "error"):
                reply["final"] = True
            self._send(reply, out)
            if reply.get("final"):
                return                      # nothing more will be asked about this call
            try:
                msg, payload = self.cmd.read()
            except protocol.ChannelClosed:
                return

    def _reply_blocked(self) -> List[str]:
        return self.guard.take() if self.guard is not None else []

    def run(self, msg: Dict[str, Any]) -> Tuple[Dict[str, Any], bytes]:
        cid = int(msg["id"])
        case = self.rep.by_id.get(cid)
        reply: Dict[str, Any] = {"op": "ran", "id": cid}
        if case is None:
            reply["error"] = f"call {cid} is not in the trace"
            return reply, b""
        last = self.last = _Last(cid, case)
        self._reply_blocked()
        self._begin_output()
        outcome = None
        try:
            try:
                fn, args = self.rep._prepare(case)
                expected = self.rep.expected(case)
            except Unresolvable as e:
                reply["skip"] = str(e)
                return reply, b""
            except BaseException as e:  # noqa: BLE001 - loading runs the program's code
                if _is_guard(e):
                    reply["blocked_early"] = True
                else:
                    reply["error"] = f"cannot load the recorded values: {type(e).__name__}: {e}"
                    return reply, b""
            else:
                last.expected = expected
                last.args = args
                nondet.reset(call_seed=cid + 1)
                t0 = _clock()
                outcome = self.rep.invoke(case, fn, args, expected, snapshot=self._snapshot)
                reply["ns"] = _clock() - t0
                last.nondet = nondet.used()
                outcome = self._as_recorded(last, outcome)
                last.outcome = outcome
        finally:
            reply["stdout"], reply["stderr"] = self._end_output()
            last.blocked = self._reply_blocked()
            reply["blocked"] = last.blocked
            reply["nondet"] = last.nondet
        payload = b""
        if msg.get("send") and outcome is not None and not last.blocked:
            if last.packed is not None:
                payload = last.packed
            else:
                reply["pickle_error"] = last.pack_error or "it could not be pickled"
        return reply, payload

    def _snapshot(self, value: Any) -> Any:
        try:
            self.serializer.index.refresh()
            return self.rep.loads(self.serializer.dumps(value))
        except BaseException as e:  # noqa: BLE001
            if _is_guard(e):
                raise
            return value

    def _as_recorded(self, last: _Last, outcome: Outcome) -> Outcome:
        """The outcome after the trip through pickle the recording made (right
        after the call, each part on its own): what a custom ``__reduce__``
        leaves out, or an iterator turns into, is the same on both sides. When it
        cannot be pickled, the live outcome (and the reason)."""
        try:
            last.packed = pack(self.serializer, outcome)
            return unpack(self.rep, last.packed)
        except BaseException as e:  # noqa: BLE001 - Unpicklable, TooLarge, the program's reducers
            if _is_guard(e):
                raise
            last.packed = None
            last.pack_error = f"{type(e).__name__}: {e}"[:300]
            return outcome

    # ------------------------------------------------------------ verdicts

    def _verdict(self, verdict: str, message: str = "", reason: str = "", **extra: Any) -> Dict[str, Any]:
        out = {"op": "verdict", "verdict": verdict, "message": message, "reason": reason}
        out.update(extra)
        return out

    def _opts(self, last: _Last) -> Dict[str, Any]:
        return dict(dict_order=not self.opts.get("ignore_dict_order"),
                    callee_owned=last.case.callee_owned(last.args), drained=last.drained)

    def _second_replay_here(self, last: _Last) -> Tuple[Optional[Outcome], List[str]]:
        """The other replay could not send its outcome: replay again here."""
        try:
            fn, args = self.rep._prepare(last.case)
        except BaseException:  # noqa: BLE001
            return None, []
        self._reply_blocked()
        self._begin_output()
        try:
            nondet.reset(call_seed=last.cid + 1)
            out = self.rep.invoke(last.case, fn, args, last.expected, snapshot=self._snapshot)
            used = nondet.used()
            return self._as_recorded(_Last(last.cid, last.case), out), used
        finally:
            self._end_output()
            self._reply_blocked()

    def judge(self, msg: Dict[str, Any], payload: bytes) -> Dict[str, Any]:
        last = self.last
        if last is None or last.cid != int(msg["id"]):
            return self._verdict("error", "the replay child lost the call it ran", "internal error")
        other = msg.get("other") or {}
        blocked = list(last.blocked) + [b for b in other.get("blocked") or () if b not in last.blocked]
        if blocked:
            return self._verdict("side_effect", "side effect: not replayed: it tried to " +
                                 "; ".join(blocked), "side effect: not replayed", blocked=blocked)
        if last.outcome is None:
            return self._verdict("error", "the replay child lost the call it ran", "internal error")
        nondet_used = sorted(set(last.nondet) | set(other.get("nondet") or ()))
        second: Optional[Outcome] = None
        where = "in two processes"
        if payload:
            try:
                second = unpack(self.rep, payload)
            except BaseException:  # noqa: BLE001 - fall back to a second replay here
                second = None
        if second is None:
            where = "in one process (the other replay's outcome could not be passed over: " \
                    f"{other.get('pickle_error') or 'it could not be loaded'})"
            second, more = self._second_replay_here(last)
            nondet_used = sorted(set(nondet_used) | set(more))
            blocked = self._reply_blocked()
            if second is None:
                return self._verdict("error", "the second replay could not be run", "internal error")
        opts = self._opts(last)
        m_ab = compare_outcome(last.outcome, second, exact=True, **opts)
        if m_ab is not None and m_ab.uncomparable:
            return self._verdict("skipped", f"not comparable: {m_ab.path}: {m_ab.reason}",
                                 "not comparable: a value has nothing to compare")
        if m_ab is not None:
            why = _reads(nondet_used)
            return self._verdict(
                "unstable", f"two replays {where} differ{why}: "
                f"{m_ab.describe(labels=('first replay', 'second replay'))}",
                "unstable: two replays differ" + (f" ({_short_reads(nondet_used)})" if nondet_used else ""),
                nondet=nondet_used)
        expected = last.expected
        assert expected is not None
        m_rec = agrees(expected, last.outcome, exact=bool(self.opts.get("exact")), **opts)
        if m_rec is None:
            return self._verdict("match")
        if m_rec.uncomparable:
            return self._verdict("skipped", f"not comparable: {m_rec.path}: {m_rec.reason}",
                                 "not comparable: a value has nothing to compare")
        self._pending_rec = m_rec
        self._pending_nondet = nondet_used
        if self.sources_changed:
            return {"op": "need_original"}
        if nondet_used or last.case.status == "unstable":
            what = (f"it reads {', '.join(nondet_used)}" if nondet_used
                    else "the trace's stability check found it unstable")
            return self._verdict(
                "unstable", f"its two replays agree, but {what}, so the recording cannot be "
                f"reproduced: {m_rec.describe()}",
                "unstable: reads " + _short_reads(nondet_used) if nondet_used
                else "unstable: marked by the stability check", nondet=nondet_used)
        if self.sources_known:
            return self._environment(m_rec, unchanged=True)
        return self._verdict("mismatch", m_rec.describe(), "differs from the recording")

    def _environment(self, m_rec: Mismatch, unchanged: bool, now: Optional[str] = None) -> Dict[str, Any]:
        env = _environment_changes(self.rep.meta)
        if unchanged:
            text = ("environment changed since the trace: the code is unchanged and no longer gives "
                    "the recorded result, so it depends on more than its arguments (the time zone, "
                    "locale, environment variables, files, or state the traced program had built)")
        else:
            text = ("environment changed since the trace: the original code (as traced) no longer gives "
                    "the recorded result either, and your code gives what the original gives now")
        if env:
            text += "; changed: " + ", ".join(env)
        return self._verdict("environment", f"{text}: {m_rec.describe()}",
                             "environment changed since the trace", changed=env)

    def judge_original(self, msg: Dict[str, Any], payload: bytes) -> Dict[str, Any]:
        last = self.last
        m_rec: Mismatch = getattr(self, "_pending_rec")
        failed = msg.get("failed")
        original: Optional[Outcome] = None
        if payload and not failed:
            try:
                original = unpack(self.rep, payload)
            except BaseException as e:  # noqa: BLE001
                failed = f"its outcome could not be loaded here ({type(e).__name__}: {e})"
        if original is None:
            return self._verdict("mismatch", f"{m_rec.describe()}\n(the original code could not be run "
                                 f"to compare with: {failed or 'no outcome'})", "differs from the recording")
        assert last is not None and last.expected is not None
        opts = self._opts(last)
        exact = bool(self.opts.get("exact"))
        m_orig = agrees(last.expected, original, exact=exact, **opts)
        if m_orig is None:
            return self._verdict("mismatch", m_rec.describe(), "differs from the recording")
        m_now = compare_outcome(original, last.outcome, exact=exact, **opts)
        nd = getattr(self, "_pending_nondet", [])
        if m_now is None and nd:
            return self._verdict(
                "unstable", f"it reads {', '.join(nd)}, so the recording cannot be reproduced; your code "
                f"gives what the original code gives now with the same inputs: {m_orig.describe()}",
                "unstable: reads " + _short_reads(nd), nondet=nd)
        if m_now is None:
            return self._environment(m_orig, unchanged=False)
        return self._verdict(
            "mismatch", f"{m_now.describe(labels=('original now', 'got'))}\n(compared with the original "
            f"code run now: the environment changed since the trace, and the original no longer gives "
            f"the recorded result either: {m_orig.path}: {m_orig.reason})",
            "differs from the original code run now")

    def bench(self, msg: Dict[str, Any]) -> Dict[str, Any]:
        case = self.rep.by_id.get(int(msg["id"]))
        if case is None:
            return {"op": "timed"}
        self._begin_output()
        try:
            r = self.rep.bench(case)
        except BaseException:  # noqa: BLE001
            r = None
        finally:
            self._end_output()
        if self._reply_blocked() or r is None:
            return {"op": "timed"}
        return {"op": "timed", "min": r[0], "median": r[1], "repeat": r[2]}


def _short_reads(used: List[str]) -> str:
    words = sorted({u.split(" (")[0] for u in used})
    return ", ".join(words)


def _reads(used: List[str]) -> str:
    if not used:
        return ""
    return f": it reads {', '.join(used)}"


def _environment_changes(meta: Dict[str, Any]) -> List[str]:
    """What of the environment recorded at trace time is different now."""
    then = meta.get("environment") or {}
    out = []
    for name, was in (then.get("variables") or {}).items():
        now = os.environ.get(name)
        if now != was:
            out.append(f"{name} was {was!r}, is {now!r}")
    tz = then.get("tzname")
    if tz is not None and list(time.tzname) != list(tz):
        out.append(f"time zone was {'/'.join(tz)}, is {'/'.join(time.tzname)}")
    loc = then.get("locale")
    if loc is not None:
        try:
            import locale
            current = locale.setlocale(locale.LC_ALL, None)
        except Exception:  # noqa: BLE001
            current = None
        if current is not None and current != loc:
            out.append(f"locale was {loc!r}, is {current!r}")
    return out


def _status_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    if os.WIFEXITED(status):
        return f"exited with status {os.WEXITSTATUS(status)} (os._exit, or the interpreter itself failed)"
    return f"ended ({status})"


def main(argv: List[str]) -> None:
    cfg = json.loads(argv[0])
    Sandbox(cfg).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
