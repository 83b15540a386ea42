"""Where retracer keeps its temporary files: a private directory per process.

Spool files (the call stream, captured values) and the trace being assembled
live in ``<temp root>/run-<pid>-<random>/``, never hidden beside the output.
The temp root is ``$RETRACER_TMPDIR``, else ``<system temp dir>/retracer-<uid>``
(mode 0700, owned by this user; if it is not, a fresh private directory is used
instead). Each run directory holds a ``lock`` file locked (``flock``) while its
process lives; :func:`clean_stale` -- run by every new run -- removes the run
directories whose lock nobody holds any more (their process died by SIGKILL or
``os._exit``), and :func:`clean_stale_siblings` the ``.<name>.tmp-<pid>-*``
files a dead process left beside an output while it was moving a finished
file into place.

Everything here is created with mode 0600 (files) / 0700 (directories).
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from typing import Optional

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

_RUN_PREFIX = "run-"


def temp_root() -> str:
    """The directory holding every run directory of this user (created 0700)."""
    explicit = os.environ.get("RETRACER_TMPDIR")
    base = os.path.abspath(explicit) if explicit else os.path.join(
        tempfile.gettempdir(), f"retracer-{os.getuid() if hasattr(os, 'getuid') else 'user'}")
    try:
        os.mkdir(base, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(base)
    mine = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    if not stat.S_ISDIR(st.st_mode) or not mine or (st.st_mode & 0o077 and not explicit):
        # someone else's (or a symlink): never use it
        raise PermissionError(errno.EACCES, f"{base} is not a private directory of this user")
    return base


def _lock_free(lock_path: str) -> bool:
    """True if nobody holds the lock at ``lock_path`` (its process is gone)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return True  # a run directory being created, or one whose lock was removed: see below
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, not ours
    return True


_STALE_AFTER_S = 3600.0


def _age(path: str) -> float:
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return 0.0


def clean_stale(root: Optional[str] = None) -> int:
    """Remove the run directories of processes that are gone; returns how many."""
    try:
        root = root or temp_root()
        names = os.listdir(root)
    except OSError:
        return 0
    n = 0
    for name in names:
        m = re.match(r"run-(\d+)-", name)
        if not m:
            continue
        d = os.path.join(root, name)
        lock = os.path.join(d, "lock")
        if not _pid_alive(int(m.group(1))):
            stale = True
        else:
            # its process lives (or the pid was reused): stale only when nobody holds
            # its lock and it is old -- a directory just created has its lock file
            # before the lock is taken, and must not be removed in that moment
            stale = _lock_free(lock) and _age(d) > _STALE_AFTER_S
        if stale:
            shutil.rmtree(d, ignore_errors=True)
            n += 1
    return n


class RunDir:
    """A private temporary directory for this process, locked while it lives.

    ``path`` is the directory; :meth:`close` removes it (idempotent). A forked
    child never removes its parent's directory.
    """

    def __init__(self) -> None:
        try:
            root: Optional[str] = temp_root()
        except OSError:
            root = None  # not usable (someone else's): a fresh private directory, not shared
        self._root = root
        if root is not None:
            clean_stale(root)
            try:
                self.path = tempfile.mkdtemp(prefix=f"{_RUN_PREFIX}{os.getpid()}-", dir=root)
            except FileNotFoundError:  # another process removed the empty root just now
                self._root = root = temp_root()
                self.path = tempfile.mkdtemp(prefix=f"{_RUN_PREFIX}{os.getpid()}-", dir=root)
        else:
            self.path = tempfile.mkdtemp(prefix=f"retracer-{_RUN_PREFIX}{os.getpid()}-")
        self._pid = os.getpid()
        self._lock_fd: Optional[int] = None
        try:
            fd = os.open(os.path.join(self.path, "lock"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd = fd
        except OSError:
            shutil.rmtree(self.path, ignore_errors=True)
            raise

    def file(self, name: str) -> str:
        """A new empty file (mode 0600) in the directory; returns its path."""
        path = os.path.join(self.path, name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        return path

    def close(self) -> None:
        if os.getpid() != self._pid:
            return
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            try:
                os.close(fd)
            except OSError:
                pass
            if self._root is not None and not os.environ.get("RETRACER_TMPDIR"):
                try:
                    os.rmdir(self._root)  # only when empty: nothing of retracer stays in /tmp
                except OSError:
                    pass

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def sibling_temp(final: str) -> str:
    """A new temporary name beside ``final`` (for the last step of moving a file into place)."""
    d, base = os.path.split(os.path.abspath(final))
    return os.path.join(d, f".{base}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def clean_stale_siblings(final: str) -> int:
    """Remove ``.<name>.tmp-<pid>-*`` beside ``final`` left by processes that are gone."""
    d, base = os.path.split(os.path.realpath(final))
    pat = re.compile(r"\." + re.escape(base) + r"\.tmp-(\d+)-[0-9a-f]+$")
    try:
        names = os.listdir(d)
    except OSError:
        return 0
    n = 0
    for name in names:
        m = pat.match(name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        p = os.path.join(d, name)
        try:
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode) and (not hasattr(os, "getuid") or st.st_uid == os.getuid()):
                os.unlink(p)
                n += 1
        except OSError:
            pass
    return n


def _fsync(path: str, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: str) -> None:
    if os.name != "posix":
        return
    try:
        _fsync(directory)
    except OSError:
        pass


def move_into_place(tmp: str, final: str) -> None:
    """Move the finished file ``tmp`` to ``final`` atomically (the final name holds
    the old file or the complete new one, never a part). Across file systems the
    file is first copied beside ``final`` (mode 0600) and renamed from there.
    Raises OSError."""
    # a symlink stays a symlink: the file it points to is replaced
    final = os.path.realpath(final)
    if os.path.isdir(final):
        raise IsADirectoryError(errno.EISDIR, "Is a directory")
    os.chmod(tmp, 0o600)
    _fsync(tmp)
    try:
        os.replace(tmp, final)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        side = sibling_temp(final)
        try:
            fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out, open(tmp, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(side, final)
        except BaseException:
            try:
                os.unlink(side)
            except OSError:
                pass
            raise
        os.unlink(tmp)
    fsync_dir(os.path.dirname(final))


def check_writable_dir(final: str, shown: Optional[str] = None) -> Optional[str]:
    """Why a file cannot be written at ``final`` (one phrase), or None. Creates and
    removes a probe file beside it."""
    final = os.path.realpath(final)
    directory = os.path.dirname(final)
    if os.path.isdir(final):
        return "it is a directory"
    if os.path.exists(final) and not os.path.isfile(final):
        return "it is not a regular file (a trace is a file: give a file name)"
    if not os.path.isdir(directory):
        return f"{directory} {'is not a directory' if os.path.exists(directory) else 'does not exist'}"
    probe = sibling_temp(final)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"cannot create a file in {directory} ({exc.strerror or exc})"
    return None


__all__ = ["temp_root", "RunDir", "clean_stale", "sibling_temp", "clean_stale_siblings", "move_into_place",
           "check_writable_dir", "fsync_dir"]
