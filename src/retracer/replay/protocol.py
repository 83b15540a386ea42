"""How the replay parent and its child processes talk: over two pipes of their
own (never the child's stdout/stderr, which carry what replayed code prints).

A message is ``<u32 header length><u64 payload length>``, a JSON header (an
object with an ``op``) and a payload of raw bytes (a pickled outcome, or
nothing). The parent never unpickles a payload: it only passes one child's
outcome on to the child that judges it.

Child -> parent replies to ``run``: ``{"op": "ran", "skip"|"error": why?,
"blocked": [...], "nondet": [...], "stdout", "stderr", "ns"}`` (payload: the
pickled outcome when asked for, else empty; ``pickle_error`` when it could not
be pickled); to ``judge`` / ``judge_original``: ``{"op": "verdict", "verdict",
"message", "reason"}`` or ``{"op": "need_original"}``; to ``bench``:
``{"op": "timed", "min", "median", "repeat"}``.
"""
from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any, Dict, Optional, Tuple

_HEAD = struct.Struct("<IQ")


class ChannelClosed(Exception):
    """The other end went away (the child died, or the parent did)."""


class ChannelTimeout(Exception):
    """No complete message before the deadline."""


def encode(header: Dict[str, Any], payload: bytes = b"") -> bytes:
    h = json.dumps(header, separators=(",", ":"), default=str).encode("utf-8")
    return _HEAD.pack(len(h), len(payload)) + h + payload


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class Reader:
    """Reads messages from a file descriptor, with deadlines. ``exact``: never
    read past the end of a message (the replay child: a forked process reads its
    messages from the pipe it shares with the process that waits for it, which
    must find the next message there)."""

    def __init__(self, fd: int, exact: bool = False) -> None:
        self.fd = fd
        self.buf = bytearray()
        self.exact = exact

    def _want(self) -> int:
        """How many bytes the current message still needs (exact mode)."""
        if len(self.buf) < _HEAD.size:
            return _HEAD.size - len(self.buf)
        hl, pl = _HEAD.unpack_from(self.buf)
        return max(1, _HEAD.size + hl + pl - len(self.buf))

    def _message(self) -> Optional[Tuple[Dict[str, Any], bytes]]:
        if len(self.buf) < _HEAD.size:
            return None
        hl, pl = _HEAD.unpack_from(self.buf)
        end = _HEAD.size + hl + pl
        if len(self.buf) < end:
            return None
        header = json.loads(bytes(self.buf[_HEAD.size:_HEAD.size + hl]).decode("utf-8"))
        payload = bytes(self.buf[_HEAD.size + hl:end])
        del self.buf[:end]
        return header, payload

    def fill(self) -> None:
        """Read what is there (the fd is readable)."""
        chunk = os.read(self.fd, min(self._want(), 1 << 20) if self.exact else 1 << 20)
        if not chunk:
            raise ChannelClosed()
        self.buf += chunk

    def read(self, deadline: Optional[float] = None) -> Tuple[Dict[str, Any], bytes]:
        while True:
            msg = self._message()
            if msg is not None:
                return msg
            if deadline is None:
                self.fill()
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout()
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                self.fill()

    def ready(self) -> Optional[Tuple[Dict[str, Any], bytes]]:
        """A complete message already buffered, else None."""
        return self._message()
