"""The side-effect guard of the replay child: an audit hook (PEP 578) that stops
a replayed call when it would change the world.

While armed it refuses, by raising :class:`SideEffectBlocked` from the audited
operation itself (before anything happens):

- opening a file for writing, appending or creating (``open``, ``os.open``
  with write flags) outside the scratch directory; ``/dev/null`` is allowed;
- deleting, renaming, truncating, linking or creating files and directories,
  changing their mode, owner or times (``os.remove``, ``os.rename``,
  ``os.rmdir``, ``shutil.rmtree``, ``os.mkdir``, ...) outside the scratch
  directory;
- connecting, binding or sending on a socket (``socket.connect``,
  ``socket.bind``, ``socket.sendto``, ``socket.sendmsg``);
- starting a process (``subprocess.Popen``, ``os.system``, ``os.exec*``,
  ``os.posix_spawn``, ``os.spawn*``, ``os.fork``, ``pty.spawn``) and sending a
  signal to another process (``os.kill``, ``os.killpg``);
- opening an SQLite database file outside the scratch directory, and writing
  to the system log.

Each refusal is remembered (:meth:`Guard.take`) whether or not the code caught
the exception: the call's verdict is then "side effect: not replayed", with
what it tried. ``SideEffectBlocked`` derives from ``BaseException``, so an
``except Exception`` in the program does not hide it from its caller.

The hook cannot be removed (PEP 578): :meth:`Guard.disarm` makes it let
everything through. Reading files, importing, DNS look-ups and the process's
own state (environment, current directory) are not side effects here.
"""
from __future__ import annotations

import os
import sys
from typing import Any, List, Optional

_WRITE_FLAGS = (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
                | getattr(os, "O_EXCL", 0))
_DEVICES = ("/dev/null", "/dev/zero", "/dev/full")

#: audit events that change a file system path: event -> (what in words, index of the path args)
_PATH_EVENTS = {
    "os.remove": ("delete", (0,)),
    "os.rmdir": ("delete the directory", (0,)),
    "shutil.rmtree": ("delete the tree", (0,)),
    "os.rename": ("rename", (0, 1)),
    "os.truncate": ("truncate", (0,)),
    "os.mkdir": ("create the directory", (0,)),
    "os.symlink": ("create a symbolic link", (1,)),
    "os.link": ("create a hard link", (1,)),
    "os.chmod": ("change the mode of", (0,)),
    "os.chown": ("change the owner of", (0,)),
    "os.utime": ("change the times of", (0,)),
    "os.mkfifo": ("create a FIFO", (0,)),
    "os.mknod": ("create a device node", (0,)),
    "os.setxattr": ("change extended attributes of", (0,)),
    "os.removexattr": ("change extended attributes of", (0,)),
    "os.chflags": ("change the flags of", (0,)),
}
_PROCESS_EVENTS = {
    "subprocess.Popen": "start a process",
    "os.system": "run a shell command",
    "os.exec": "replace the process (os.exec*)",
    "os.posix_spawn": "start a process",
    "os.spawn": "start a process",
    "os.fork": "fork the process",
    "os.forkpty": "fork the process",
    "pty.spawn": "start a process",
    "os.startfile": "open a file with its application",
}
_SOCKET_EVENTS = {
    "socket.connect": "connect",
    "socket.bind": "bind",
    "socket.sendto": "send",
    "socket.sendmsg": "send",
}


class SideEffectBlocked(BaseException):
    """A replayed call tried to change the world; retracer stopped it."""


class Guard:
    """The policy behind the audit hook (one per process)."""

    def __init__(self, scratch: str) -> None:
        self.scratch = os.path.realpath(scratch) + os.sep
        self.armed = False
        self.blocked: List[str] = []
        self._pid = os.getpid()

    # -- control -------------------------------------------------------------

    def install(self) -> None:
        sys.addaudithook(self._hook)

    def arm(self) -> None:
        self.armed = True

    def disarm(self) -> None:
        self.armed = False

    def take(self) -> List[str]:
        """What was stopped since the last call, and forget it."""
        out, self.blocked = self.blocked, []
        return out

    # -- the hook ------------------------------------------------------------

    def _inside(self, path: Any) -> bool:
        if isinstance(path, int):
            return True          # an open file descriptor: opening it was checked
        try:
            p = os.fsdecode(path)
        except TypeError:
            return True
        if p in _DEVICES:
            return True
        try:
            real = os.path.realpath(p)
        except (OSError, ValueError):
            return False
        return (real + os.sep).startswith(self.scratch)

    def _stop(self, what: str) -> None:
        if len(self.blocked) < 20:
            self.blocked.append(what)
        raise SideEffectBlocked(f"retracer replay stopped a side effect: tried to {what} "
                                f"(run with --allow-side-effects to let it happen)")

    def _hook(self, event: str, args: tuple) -> None:
        if not self.armed:
            return
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            writing = False
            if isinstance(flags, int) and flags & _WRITE_FLAGS:
                writing = True
            elif isinstance(mode, str) and any(c in mode for c in "wax+"):
                writing = True
            if writing and not self._inside(path):
                self._stop(f"open {_show(path)} for writing" + (f" (mode {mode!r})" if mode else ""))
            return
        spec = _PATH_EVENTS.get(event)
        if spec is not None:
            word, idx = spec
            paths = [args[i] for i in idx if i < len(args)]
            outside = [p for p in paths if not self._inside(p)]
            if outside:
                self._stop(f"{word} {' -> '.join(_show(p) for p in paths)}")
            return
        what = _PROCESS_EVENTS.get(event)
        if what is not None:
            shown = _show_command(event, args)
            self._stop(f"{what}: {shown}" if shown else what)
            return
        what = _SOCKET_EVENTS.get(event)
        if what is not None:
            address = args[1] if len(args) > 1 else "?"
            self._stop(f"{what} a socket to {address!r}" if what != "bind" else
                       f"bind a socket to {address!r}")
            return
        if event in ("os.kill", "os.killpg"):
            pid = args[0] if args else None
            if pid not in (self._pid, 0) or event == "os.killpg":
                self._stop(f"send signal {args[1] if len(args) > 1 else '?'} to process {pid}")
            return
        if event == "sqlite3.connect":
            db = args[0] if args else ":memory:"
            text = os.fsdecode(db) if isinstance(db, (str, bytes, os.PathLike)) else str(db)
            if text in (":memory:", "") or "mode=memory" in text or "mode=ro" in text:
                return
            if text.startswith("file:"):
                text = text[5:].split("?", 1)[0]
            if not self._inside(text):
                self._stop(f"open the SQLite database {text!r}")
            return
        if event in ("syslog.syslog", "syslog.openlog"):
            self._stop("write to the system log")
            return


def _show(path: Any) -> str:
    try:
        return repr(os.fsdecode(path))
    except TypeError:
        return repr(path)


def _show_command(event: str, args: tuple) -> str:
    if event == "subprocess.Popen" and len(args) > 1:
        cmd = args[1]
        if isinstance(cmd, (list, tuple)):
            text = " ".join(os.fsdecode(c) if isinstance(c, (bytes, str, os.PathLike)) else str(c)
                            for c in cmd)
        else:
            text = os.fsdecode(cmd) if isinstance(cmd, (bytes, str, os.PathLike)) else str(cmd)
        return repr(text[:200])
    if args:
        first = args[0]
        text = os.fsdecode(first) if isinstance(first, (bytes, str, os.PathLike)) else str(first)
        return repr(text[:200])
    return ""


_guard: Optional[Guard] = None


def install(scratch: str) -> Guard:
    """Install the hook in this process (once) and return its policy, disarmed."""
    global _guard
    if _guard is None:
        _guard = Guard(scratch)
        _guard.install()
    return _guard
