"""The per-user signing key and the HMAC signature of trace files.

Loading a trace unpickles data, so retracer only loads traces this user made (or
explicitly trusts).  Every trace carries an HMAC-SHA256 of its content digest, made
with a 32-byte random key kept in the user's config directory:

* ``$RETRACER_CONFIG_DIR/key`` if ``RETRACER_CONFIG_DIR`` is set,
* else ``$XDG_CONFIG_HOME/retracer/key`` if ``XDG_CONFIG_HOME`` is set,
* else ``~/.config/retracer/key``.

The key is stored as 64 hex digits (plus a newline).  It is created on first use with
mode 0600 (its directory 0700), atomically: two processes racing to create it end up
with the same key.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import secrets
import stat
from typing import Optional

from ..errors import TraceError

__all__ = ["KEY_SIZE", "config_dir", "key_path", "get_key", "sign", "verify"]

KEY_SIZE = 32
_KEY_HEX_LEN = 2 * KEY_SIZE


def _error(message: str) -> Exception:
    return TraceError(message)


def config_dir() -> str:
    """Return the user's retracer config directory (it may not exist yet)."""
    explicit = os.environ.get("RETRACER_CONFIG_DIR")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    xdg = os.environ.get("XDG_CONFIG_HOME")
    # The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "retracer")
    return os.path.join(os.path.expanduser("~"), ".config", "retracer")


def key_path() -> str:
    """Return the path of the signing key file."""
    return os.path.join(config_dir(), "key")


def _check_private(path: str, st: os.stat_result) -> None:
    """Refuse a key file that other users could read or replace: whoever reads the
    key can sign traces that this user's retracer will unpickle."""
    if os.name != "posix":
        return
    if not stat.S_ISREG(st.st_mode):
        raise _error(f"retracer: the signing key {path} is not a regular file; delete it to create a new key "
                     f"(traces signed with the old key will then need --trust)")
    if st.st_uid != os.getuid():
        raise _error(f"retracer: the signing key {path} belongs to another user (uid {st.st_uid}); delete it to "
                     f"create a new key of your own (traces signed with it will then need --trust)")
    if st.st_mode & 0o077:
        raise _error(f"retracer: the signing key {path} can be read by other users (mode "
                     f"{stat.S_IMODE(st.st_mode):04o}), who could sign traces that retracer would load; run "
                     f"'chmod 600 {path}' (or delete it to create a new key; traces signed with the old key "
                     f"will then need --trust)")


def _read_key(path: str) -> Optional[bytes]:
    """Return the key stored at ``path``, ``None`` if there is no such file."""
    try:
        with open(path, "rb") as f:
            _check_private(path, os.fstat(f.fileno()))
            data = f.read(4 * _KEY_HEX_LEN)
    except FileNotFoundError:
        return None
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise _error(
            f"retracer: cannot read the signing key {path} ({reason}); fix its "
            f"permissions, or delete it to create a new key (traces signed with the "
            f"old key will then need --trust)"
        ) from None
    text = data.strip()
    try:
        if len(text) != _KEY_HEX_LEN:
            raise ValueError
        key = bytes.fromhex(text.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise _error(
            f"retracer: the signing key {path} is malformed (expected "
            f"{_KEY_HEX_LEN} hex digits); delete it to create a new key (traces "
            f"signed with the old key will then need --trust)"
        ) from None
    return key


def _create_key(path: str) -> bytes:
    """Create the key file atomically; return the key that ends up in it."""
    directory = os.path.dirname(path)
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
            try:
                os.chmod(directory, 0o700)
            except OSError:
                pass
        key = secrets.token_bytes(KEY_SIZE)
        tmp = os.path.join(
            directory, f".key.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        )
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, 0o600)
                os.write(fd, key.hex().encode("ascii") + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                # link() fails if the key exists: a racing process won, use its key.
                os.link(tmp, path)
            except FileExistsError:
                pass
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP,
                                     errno.EXDEV, errno.ENOSYS, errno.EMLINK):
                    raise
                # No hard links on this file system: exclusive create instead.
                try:
                    fd2 = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    pass
                else:
                    try:
                        os.write(fd2, key.hex().encode("ascii") + b"\n")
                        os.fsync(fd2)
                    finally:
                        os.close(fd2)
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise _error(
            f"retracer: cannot create the signing key {path} ({reason}); make its "
            f"directory writable or set RETRACER_CONFIG_DIR to a writable directory"
        ) from None
    stored = _read_key(path)
    if stored is None:
        raise _error(
            f"retracer: the signing key {path} disappeared while it was being "
            f"created; run the command again"
        )
    return stored


def get_key() -> bytes:
    """Return this user's 32-byte signing key, creating it on first use.

    Raises TraceError (one line) if the key file is unreadable or malformed, or
    cannot be created.
    """
    path = key_path()
    key = _read_key(path)
    if key is None:
        key = _create_key(path)
    return key


def sign(digest: bytes, key: Optional[bytes] = None) -> str:
    """Return the HMAC-SHA256 (lowercase hex) of ``digest`` with ``key``.

    ``key`` defaults to :func:`get_key`.
    """
    if key is None:
        key = get_key()
    return hmac.new(key, bytes(digest), hashlib.sha256).hexdigest()


def verify(digest: bytes, sig: object, key: Optional[bytes] = None) -> bool:
    """Return True if ``sig`` is the signature of ``digest`` (constant-time).

    Anything that is not a string of the right form is simply not a valid
    signature.
    """
    if not isinstance(sig, str):
        return False
    try:
        given = sig.strip().lower().encode("ascii")
    except UnicodeEncodeError:
        return False
    expected = sign(digest, key).encode("ascii")
    return hmac.compare_digest(expected, given)
