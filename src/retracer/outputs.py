"""Writing output files, the same way everywhere.

Every file retracer writes for the user (exports, flame graphs, view pages,
replay tests) appears complete or not at all, with mode 0600 (it may show
names and values of the traced program): it is written to a temporary file in
this process's private run directory (retracer.tracefile.tempdir) and moved
into place. Bad targets give one line saying what to do.
"""
from __future__ import annotations

import os
import shutil
import stat
from contextlib import contextmanager
from typing import Iterator

from .errors import RetracerError


def check_target(out: str) -> str:
    """The absolute path of ``out`` after checking that a file can go there."""
    target = os.path.abspath(out)
    if os.path.isdir(target):
        raise RetracerError(f"retracer: cannot write {out}: it is a directory; give a file name (-o FILE)")
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise RetracerError(f"retracer: cannot write {out}: directory {directory} does not exist; "
                            f"create it or choose another -o")
    return target


def _special(target: str) -> bool:
    """Is ``target`` an existing file that is not a regular file (a device, a pipe)?"""
    try:
        return not stat.S_ISREG(os.stat(target).st_mode)
    except OSError:
        return False


@contextmanager
def atomic_path(out: str) -> Iterator[str]:
    """Yield a temporary path (not yet created, in a private directory); when the
    block ends normally the file there is moved to ``out`` with mode 0600, otherwise
    removed. An OSError (unwritable directory, full disk) becomes one RetracerError line."""
    from .tracefile.tempdir import RunDir, clean_stale_siblings, move_into_place

    target = check_target(out)
    rd = None
    try:
        rd = RunDir()
        tmp = os.path.join(rd.path, os.path.basename(target) or "out")
        yield tmp
        if _special(target):
            # -o /dev/stdout, a named pipe: written to, never replaced by a file
            with open(tmp, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            return
        clean_stale_siblings(target)
        move_into_place(tmp, target)
    except OSError as e:
        raise RetracerError(f"retracer: cannot write {out} ({e.strerror or e}); check that the "
                            f"directory is writable and the disk not full, or choose another -o") from None
    finally:
        if rd is not None:
            rd.close()


def write_text(out: str, text: str) -> str:
    """Write ``text`` (UTF-8) to ``out`` atomically; returns ``out``."""
    with atomic_path(out) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return out
