"""Writing output files, the same way everywhere.

Every file retracer writes for the user (exports, flame graphs, view pages)
appears complete or not at all: it is written to a temporary file beside the
target and renamed into place. Bad targets give one line saying what to do.
"""
from __future__ import annotations

import os
import secrets
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


@contextmanager
def atomic_path(out: str) -> Iterator[str]:
    """Yield a temporary path beside ``out``; when the block ends normally it is
    renamed to ``out``, otherwise removed. An OSError (unwritable directory, full
    disk) becomes one RetracerError line."""
    target = check_target(out)
    tmp = os.path.join(os.path.dirname(target),
                       f".{os.path.basename(target)}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as e:
        raise RetracerError(f"retracer: cannot write {out} ({e.strerror or e}); check that the "
                            f"directory is writable and the disk not full, or choose another -o") from None
    finally:
        if os.path.exists(tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass


def write_text(out: str, text: str) -> str:
    """Write ``text`` (UTF-8) to ``out`` atomically; returns ``out``."""
    with atomic_path(out) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return out
