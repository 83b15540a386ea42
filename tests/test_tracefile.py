"""Tests for the trace file (retracer.tracefile) and its signing (retracer.tracefile.signing)."""

from __future__ import annotations

import importlib
import hashlib
import json
import os
import random
import sqlite3
import stat
import sys
import types
from pathlib import Path

import pytest


def _import_modules():
    """Import retracer.tracefile/signing.

    Falls back to loading the package directory without its ``__init__`` when the
    package itself cannot be imported (e.g. the C extension is not built yet).
    """
    try:
        return (importlib.import_module("retracer.tracefile"),
                importlib.import_module("retracer.tracefile.signing"))
    except ImportError:
        src = Path(__file__).resolve().parent.parent / "src" / "retracer"
        for name in [m for m in sys.modules if m == "retracer" or
                     m.startswith("retracer.")]:
            del sys.modules[name]
        pkg = types.ModuleType("retracer")
        pkg.__path__ = [str(src)]  # type: ignore[attr-defined]
        sys.modules["retracer"] = pkg
        return (importlib.import_module("retracer.tracefile"),
                importlib.import_module("retracer.tracefile.signing"))


tracefile, signing = _import_modules()
from retracer.errors import RetracerError  # noqa: E402

TraceError = tracefile.TraceError
TraceWriter = tracefile.TraceWriter
open_trace = tracefile.TraceReader


@pytest.fixture
def out_dir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


FUNCS = [
    (0, "py", "main", "main", "__main__", "/p/app.py", 1, 1 | 4),
    (1, "py", "fib", "fib", "__main__", "/p/app.py", 3, 1),
    (2, "c", "len", "len", "builtins", None, None, 0),
    (3, "py", "gen", "Klass.gen", "pkg.mod", "/p/pkg/mod.py", 10, 1 | 16),
]
THREADS = [(0, 140000000001, 4242, "MainThread", 12), (1, 140000000002, 4243, "w", 3)]
FSTATS = [(0, 1, 1, 10, 1000), (1, 15, 1, 500, 900), (2, 4, 4, 40, 40),
          (3, 2, 2, 7, 9)]
ESTATS = [(-1, 0, 1, 1, 10, 1000), (0, 1, 1, 1, 100, 900), (1, 1, 14, 0, 400, 800),
          (0, 2, 4, 4, 40, 40)]
CAPTURED = [
    (1, 1, 0, 0, 123, 456, "return", b"\x80args", b"\x80res", None, b"\x80after",
     None),
    (2, 3, 1, 0, 200, 10, "raise", b"a", None, b"exc", None,
     json.dumps({"note": "x"})),
]


def _key(v):
    return None if v is None else hashlib.blake2b(v, digest_size=16).digest()


# captured values are stored once in `blobs`; captured_calls holds their keys
BLOBS = sorted({(_key(v), v) for c in CAPTURED for v in c[7:11] if v is not None})
CAPTURED_ROWS = [c[:7] + tuple(_key(v) for v in c[7:11]) + c[11:] for c in CAPTURED]


def write_trace(path, chunk_bytes=None, meta=None):
    """Write a complete trace at ``path``; return the chunks written per thread."""
    chunks = {0: [b"\x01\x02\x03" * 100, b"", b"tail"], 1: [bytes(range(256))]}
    if chunk_bytes is not None:
        rnd = random.Random(1234)
        n = 8
        chunks[0] = [rnd.randbytes(chunk_bytes // n) for _ in range(n)]
    with TraceWriter(path) as w:
        w.set_meta("command", ["app.py", "--x"])
        w.set_meta("cwd", "/p")
        w.set_meta("start_time", 1700000000.25)
        w.set_meta("options", {"timeout": None, "scope": ["/p"]})
        w.set_meta("exit_status", None)
        w.set_meta("complete", True)
        for k, v in (meta or {}).items():
            w.set_meta(k, v)
        w.add_functions(FUNCS)
        w.add_threads(THREADS)
        for tidx, lst in chunks.items():
            # added out of order on purpose: the reader must give seq order
            for seq in reversed(range(len(lst))):
                w.add_chunk(tidx, seq, lst[seq], n_events=seq + 1)
        w.add_func_stats(FSTATS)
        w.add_edge_stats(ESTATS)
        w.add_blobs(BLOBS)
        w.add_captured(CAPTURED_ROWS)
    return chunks


def assert_one_line_error(excinfo, path):
    err = excinfo.value
    assert isinstance(err, TraceError)
    assert isinstance(err, RetracerError)
    msg = str(err)
    assert "\n" not in msg and "\r" not in msg
    assert str(path) in msg
    assert msg.startswith("retracer: ")
    return msg


def tamper(path, sql, params=()):
    conn = sqlite3.connect(str(path))
    conn.execute(sql, params)
    conn.commit()
    conn.close()


# -- round trip ---------------------------------------------------------------


def test_round_trip(out_dir):
    path = out_dir / "run.trace"
    chunks = write_trace(path)
    with open_trace(path) as r:
        assert r.verified is True
        assert r.meta["format"] == "retracer-trace"
        assert r.meta["schema_version"] == tracefile.SCHEMA_VERSION == 4
        assert "signature" not in r.meta
        assert r.meta["command"] == ["app.py", "--x"]
        assert r.meta["start_time"] == 1700000000.25
        assert r.meta["options"] == {"timeout": None, "scope": ["/p"]}
        assert r.meta["exit_status"] is None
        assert r.meta["complete"] is True
        assert r.functions == {f[0]: tracefile.Function(*f) for f in FUNCS}
        assert r.functions[2].filename is None
        assert r.functions[3].qualname == "Klass.gen"
        assert r.threads == [tracefile.Thread(*t) for t in THREADS]
        assert r.func_stats() == [tuple(x) for x in FSTATS]
        assert r.func_stats()[1].prim_calls == 1
        assert r.edge_stats() == sorted(tuple(x) for x in ESTATS)
        assert r.edge_stats()[0].caller_fid == -1
        for tidx, lst in chunks.items():
            assert list(r.iter_chunks(tidx)) == lst
        assert list(r.iter_chunks(99)) == []
        assert list(r.iter_captured()) == [tuple(c) for c in CAPTURED]
        assert list(r.iter_captured())[0].args_after == b"\x80after"


def test_chunks_stored_raw_by_default(out_dir):
    path = out_dir / "run.trace"
    write_trace(path)
    conn = sqlite3.connect(str(path))
    rows = conn.execute(
        "SELECT codec, n_events, raw_size, data FROM chunks "
        "WHERE thread_idx = 0 ORDER BY seq").fetchall()
    conn.close()
    assert [r[0] for r in rows] == ["raw"] * 3
    assert [r[1] for r in rows] == [1, 2, 3]
    assert rows[0][2] == 300 and len(rows[0][3]) == 300


def test_chunks_stored_with_zlib(out_dir):
    path = out_dir / "run.trace"
    raw = bytes(range(100)) * 3
    with TraceWriter(path) as w:
        w.add_chunk(0, 0, raw, 5, codec="zlib")
    conn = sqlite3.connect(str(path))
    codec, size, data = conn.execute("SELECT codec, raw_size, data FROM chunks").fetchone()
    conn.close()
    assert codec == "zlib" and size == 300 and len(data) < 300
    with tracefile.TraceReader(path, trust=True) as r:
        assert list(r.iter_chunks(0)) == [raw]


def test_meta_values_are_json_in_sqlite(out_dir):
    path = out_dir / "run.trace"
    write_trace(path)
    conn = sqlite3.connect(str(path))
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    conn.close()
    assert json.loads(meta["format"]) == "retracer-trace"
    assert json.loads(meta["schema_version"]) == 4
    assert len(json.loads(meta["signature"])) == 64
    assert json.loads(meta["command"]) == ["app.py", "--x"]


def test_reserved_meta_keys_rejected(out_dir):
    w = TraceWriter(out_dir / "run.trace")
    try:
        for key in ("signature", "format", "schema_version"):
            with pytest.raises(ValueError):
                w.set_meta(key, "x")
    finally:
        w.abort()


def test_commit_returns_absolute_final_path(out_dir, monkeypatch):
    monkeypatch.chdir(out_dir)
    w = TraceWriter("rel.trace")
    w.set_meta("cwd", str(out_dir))
    # the traced program may chdir; the trace still lands where it was asked
    monkeypatch.chdir(out_dir.parent)
    final = w.commit()
    assert final == str(out_dir / "rel.trace")
    assert os.path.isfile(final)
    open_trace(final).close()


def test_overwrites_existing_trace(out_dir):
    path = out_dir / "run.trace"
    write_trace(path, meta={"run": 1})
    write_trace(path, meta={"run": 2})
    with open_trace(path) as r:
        assert r.meta["run"] == 2


# -- atomic writing -------------------------------------------------------------


def test_final_path_appears_only_at_commit(out_dir):
    path = out_dir / "run.trace"
    w = TraceWriter(path)
    w.add_functions(FUNCS)
    w.add_chunk(0, 0, b"abc", 1)
    assert not path.exists()
    # the file being written is private (0600), in this process's run directory, not beside the output
    assert os.listdir(out_dir) == []
    tmp = w._tmp
    assert tmp and os.path.dirname(os.path.dirname(tmp)) == tracefile.tempdir.temp_root()
    assert stat.S_IMODE(os.stat(tmp).st_mode) == 0o600
    assert w.commit() == str(path)
    assert not os.path.exists(os.path.dirname(tmp))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.exists()
    assert os.listdir(out_dir) == ["run.trace"]
    w.abort()  # after commit: harmless no-op
    assert path.exists()


def test_exception_in_with_leaves_nothing(out_dir):
    path = out_dir / "run.trace"
    with pytest.raises(KeyError):
        with TraceWriter(path) as w:
            w.add_functions(FUNCS)
            w.add_chunk(0, 0, b"x" * 1000, 5)
            raise KeyError("boom")
    assert os.listdir(out_dir) == []


def test_exception_does_not_clobber_existing_trace(out_dir):
    path = out_dir / "run.trace"
    write_trace(path, meta={"run": 1})
    with pytest.raises(RuntimeError):
        with TraceWriter(path) as w:
            w.set_meta("run", 2)
            raise RuntimeError
    assert os.listdir(out_dir) == ["run.trace"]
    with open_trace(path) as r:
        assert r.meta["run"] == 1


def test_abort_is_idempotent(out_dir):
    w = TraceWriter(out_dir / "run.trace")
    w.abort()
    w.abort()
    assert os.listdir(out_dir) == []
    with pytest.raises(ValueError):
        w.add_functions(FUNCS)


def test_write_error_is_trace_error_and_removes_temp(out_dir):
    path = out_dir / "run.trace"
    w = TraceWriter(path)
    w.add_functions(FUNCS)
    with pytest.raises(TraceError) as ei:
        w.add_functions(FUNCS)  # duplicate primary keys
    assert_one_line_error(ei, path)
    assert os.listdir(out_dir) == []


def test_writer_missing_directory(tmp_path):
    path = tmp_path / "nope" / "run.trace"
    with pytest.raises(TraceError) as ei:
        TraceWriter(path)
    msg = assert_one_line_error(ei, path)
    assert "does not exist" in msg


def test_writer_path_is_directory(out_dir):
    with pytest.raises(TraceError) as ei:
        TraceWriter(out_dir)
    assert "directory" in assert_one_line_error(ei, out_dir)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root can write anywhere")
def test_writer_unwritable_directory(out_dir):
    out_dir.chmod(0o500)
    try:
        with pytest.raises(TraceError) as ei:
            TraceWriter(out_dir / "run.trace")
        assert_one_line_error(ei, out_dir / "run.trace")
    finally:
        out_dir.chmod(0o700)


# -- signing --------------------------------------------------------------------


def test_key_created_with_private_modes(config_dir, out_dir):
    assert not config_dir.exists()
    write_trace(out_dir / "run.trace")
    key_file = config_dir / "key"
    assert signing.key_path() == str(key_file)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(config_dir).st_mode) == 0o700
    text = key_file.read_text()
    assert len(text.strip()) == 64
    assert bytes.fromhex(text.strip()) == signing.get_key()
    assert os.listdir(config_dir) == ["key"]  # no temp file left


def test_key_is_stable(config_dir):
    k1 = signing.get_key()
    k2 = signing.get_key()
    assert k1 == k2 and len(k1) == 32


def test_key_race_loser_uses_winner_key(config_dir, monkeypatch):
    """Another process creates the key between our write and our link."""
    winner = bytes(range(32))
    real_link = os.link

    def racing_link(src, dst, *a, **kw):
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (winner.hex() + "\n").encode())
        os.close(fd)
        return real_link(src, dst, *a, **kw)

    monkeypatch.setattr(signing.os, "link", racing_link)
    assert signing.get_key() == winner
    assert os.listdir(config_dir) == ["key"]


def test_config_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("RETRACER_CONFIG_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert signing.config_dir() == str(tmp_path / "explicit")
    monkeypatch.delenv("RETRACER_CONFIG_DIR")
    assert signing.config_dir() == str(tmp_path / "xdg" / "retracer")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert signing.config_dir() == str(tmp_path / "home" / ".config" / "retracer")


@pytest.mark.parametrize("content", ["not hex at all\n", "abcd\n", "zz" * 32, ""])
def test_malformed_key(config_dir, content, out_dir):
    config_dir.mkdir()
    (config_dir / "key").write_text(content)
    with pytest.raises(TraceError) as ei:
        signing.get_key()
    msg = assert_one_line_error(ei, config_dir / "key")
    assert "delete it" in msg
    # the writer refuses early, before anything is traced
    with pytest.raises(TraceError):
        TraceWriter(out_dir / "run.trace")
    assert os.listdir(out_dir) == []


def test_unreadable_key(config_dir):
    config_dir.mkdir()
    (config_dir / "key").mkdir()  # a directory: unreadable as a file, even for root
    with pytest.raises(TraceError) as ei:
        signing.get_key()
    assert_one_line_error(ei, config_dir / "key")


def test_sign_verify():
    key = bytes(32)
    sig = signing.sign(b"digest", key)
    assert len(sig) == 64
    assert signing.verify(b"digest", sig, key)
    assert signing.verify(b"digest", sig.upper(), key)
    assert not signing.verify(b"digesT", sig, key)
    assert not signing.verify(b"digest", sig, b"\x01" * 32)
    assert not signing.verify(b"digest", None, key)
    assert not signing.verify(b"digest", "é" * 64, key)
    assert not signing.verify(b"digest", sig[:-1], key)


# -- signature checks when reading ---------------------------------------------------


TAMPERS = [
    ("UPDATE functions SET name = 'evil' WHERE fid = 1", ()),
    ("UPDATE functions SET name = CAST(name AS BLOB) WHERE fid = 1", ()),  # same bytes
    ("UPDATE threads SET name = NULL WHERE thread_idx = 1", ()),
    ("UPDATE chunks SET data = ? WHERE thread_idx = 0 AND seq = 0",
     (b"x\x9c\x03\x00\x00\x00\x00\x01",)),
    ("UPDATE func_stats SET own_ns = own_ns + 1 WHERE fid = 2", ()),
    ("DELETE FROM edge_stats WHERE caller_fid = 0 AND callee_fid = 2", ()),
    ("UPDATE captured_calls SET args = ? WHERE call_id = 1", (b"\x80evil",)),
    ("INSERT INTO captured_calls (call_id, fid) VALUES (99, 1)", ()),
    ("UPDATE blobs SET data = zeroblob(length(data)) WHERE key = (SELECT min(key) FROM blobs)", ()),
    ("INSERT INTO capture_stats VALUES (1, 1, 10, 5, NULL)", ()),
    ("UPDATE meta SET value = '[\"other.py\"]' WHERE key = 'command'", ()),
    ("INSERT INTO meta VALUES ('extra', '1')", ()),
]


@pytest.mark.parametrize("sql,params", TAMPERS)
def test_tampered_trace_refused_unless_trusted(out_dir, sql, params):
    path = out_dir / "run.trace"
    write_trace(path)
    tamper(path, sql, params)
    with pytest.raises(TraceError) as ei:
        open_trace(path)
    msg = assert_one_line_error(ei, path)
    assert "signature" in msg and "pass --trust if you trust this file" in msg
    try:
        r = open_trace(path, trust=True)
    except TraceError as e:  # the edit broke a row rule: one line, even with --trust
        assert "truncated or corrupt" in str(e) and "\n" not in str(e)
        assert "CAST" in sql or "args" in sql or "INSERT INTO captured_calls" in sql
        return
    with r:
        assert r.verified is False
        assert r.functions[0].name == "main"


def test_missing_signature(out_dir):
    path = out_dir / "run.trace"
    write_trace(path)
    tamper(path, "DELETE FROM meta WHERE key = 'signature'")
    with pytest.raises(TraceError) as ei:
        open_trace(path)
    msg = assert_one_line_error(ei, path)
    assert "not signed" in msg and "--trust" in msg
    with open_trace(path, trust=True) as r:
        assert r.meta["command"] == ["app.py", "--x"]


def test_garbage_signature(out_dir):
    path = out_dir / "run.trace"
    write_trace(path)
    tamper(path, "UPDATE meta SET value = '12' WHERE key = 'signature'")
    with pytest.raises(TraceError) as ei:
        open_trace(path)
    assert "--trust" in assert_one_line_error(ei, path)


def test_other_users_key_refused(out_dir, tmp_path, monkeypatch):
    path = out_dir / "run.trace"
    write_trace(path)
    open_trace(path).close()
    monkeypatch.setenv("RETRACER_CONFIG_DIR", str(tmp_path / "other-user"))
    with pytest.raises(TraceError) as ei:
        open_trace(path)
    assert "--trust" in assert_one_line_error(ei, path)
    open_trace(path, trust=True).close()


def test_digest_changes_with_any_value(out_dir):
    """The digest encoding is unambiguous: moving bytes between columns is seen."""
    path = out_dir / "run.trace"
    write_trace(path)
    conn = sqlite3.connect(str(path))
    d1 = tracefile.compute_digest(conn)
    conn.execute("UPDATE functions SET name = 'fi', qualname = 'bfib' WHERE fid = 1")
    d2 = tracefile.compute_digest(conn)
    conn.execute("UPDATE functions SET name = 'fib', qualname = 'fib' WHERE fid = 1")
    d3 = tracefile.compute_digest(conn)
    conn.execute("UPDATE meta SET value = 'x' WHERE key = 'signature'")
    d4 = tracefile.compute_digest(conn)
    conn.close()
    assert d1 != d2 and d1 == d3 == d4


# -- damaged and foreign files ---------------------------------------------------------


def test_truncated(out_dir):
    path = out_dir / "run.trace"
    write_trace(path, chunk_bytes=4 * 1024 * 1024)
    size = path.stat().st_size
    assert size > 4 * 1024 * 1024
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    for trust in (False, True):
        with pytest.raises(TraceError) as ei:
            open_trace(path, trust=trust)
        msg = assert_one_line_error(ei, path)
        assert "truncated or corrupt" in msg and "trace the program again" in msg


def test_truncated_small(out_dir):
    path = out_dir / "run.trace"
    write_trace(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(TraceError) as ei:
        open_trace(path, trust=True)
    assert "truncated or corrupt" in assert_one_line_error(ei, path)


def test_header_only(out_dir):
    path = out_dir / "run.trace"
    write_trace(path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(TraceError) as ei:
        open_trace(path)
    assert "truncated or corrupt" in assert_one_line_error(ei, path)


def test_corrupted_page(out_dir):
    path = out_dir / "run.trace"
    write_trace(path, chunk_bytes=1024 * 1024)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        for off in range(16384, size, 16384):  # every page header after the first
            f.seek(off)
            f.write(b"\xff" * 64)
    with pytest.raises(TraceError) as ei:
        open_trace(path, trust=True)
    assert "truncated or corrupt" in assert_one_line_error(ei, path)


def test_foreign_sqlite(out_dir):
    path = out_dir / "other.db"
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users VALUES (1, 'a')")
    conn.commit()
    conn.close()
    for trust in (False, True):
        with pytest.raises(TraceError) as ei:
            open_trace(path, trust=trust)
        assert "not a retracer trace" in assert_one_line_error(ei, path)


def test_foreign_sqlite_with_meta_table(out_dir):
    path = out_dir / "other.db"
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('format', 'something else')")
    conn.commit()
    conn.close()
    with pytest.raises(TraceError) as ei:
        open_trace(path, trust=True)
    assert "not a retracer trace" in assert_one_line_error(ei, path)


@pytest.mark.parametrize("content", [
    b"hello, this is a text file\n",
    bytes(random.Random(7).randbytes(10000)),
    b"SQLite format 3",  # almost a header
])
def test_not_sqlite(out_dir, content):
    path = out_dir / "run.trace"
    path.write_bytes(content)
    with pytest.raises(TraceError) as ei:
        open_trace(path)
    assert "not a retracer trace" in assert_one_line_error(ei, path)


def test_empty_file(out_dir):
    path = out_dir / "run.trace"
    path.write_bytes(b"")
    with pytest.raises(TraceError) as ei:
        open_trace(path)
    assert "empty" in assert_one_line_error(ei, path)


def test_missing_file(out_dir):
    path = out_dir / "missing.trace"
    with pytest.raises(TraceError) as ei:
        open_trace(path)
    assert "does not exist" in assert_one_line_error(ei, path)


def test_directory_as_trace(out_dir):
    with pytest.raises(TraceError) as ei:
        open_trace(out_dir)
    assert "directory" in assert_one_line_error(ei, out_dir)


def test_newer_schema(out_dir):
    path = out_dir / "run.trace"
    write_trace(path)
    newer = tracefile.SCHEMA_VERSION + 1
    tamper(path, f"UPDATE meta SET value = '{newer}' WHERE key = 'schema_version'")
    for trust in (False, True):  # reported as "newer", not as a bad signature
        with pytest.raises(TraceError) as ei:
            open_trace(path, trust=trust)
        msg = assert_one_line_error(ei, path)
        assert f"schema version {newer}" in msg and "upgrade retracer" in msg


def test_missing_table(out_dir):
    path = out_dir / "run.trace"
    write_trace(path)
    tamper(path, "DROP TABLE captured_calls")
    with pytest.raises(TraceError) as ei:
        open_trace(path, trust=True)
    assert "captured_calls" in assert_one_line_error(ei, path)


def test_bad_chunk_data_when_trusted(out_dir):
    path = out_dir / "run.trace"
    write_trace(path)
    tamper(path, "UPDATE chunks SET data = x'00010203' WHERE thread_idx = 1")
    with open_trace(path, trust=True) as r:
        with pytest.raises(TraceError) as ei:
            list(r.iter_chunks(1))
        assert "truncated or corrupt" in assert_one_line_error(ei, path)


def test_newline_in_path_is_escaped(tmp_path):
    path = tmp_path / "a\nb.trace"
    with pytest.raises(TraceError) as ei:
        open_trace(path)
    msg = str(ei.value)
    assert "\n" not in msg and "a\\nb.trace" in msg


def test_closed_reader(out_dir):
    path = out_dir / "run.trace"
    write_trace(path)
    r = open_trace(path)
    r.close()
    r.close()
    with pytest.raises(ValueError):
        r.func_stats()


def test_integer_too_large_is_trace_error(out_dir):
    path = out_dir / "run.trace"
    w = TraceWriter(path)
    with pytest.raises(TraceError) as ei:
        w.add_threads([(0, 2 ** 64, 1, "MainThread", 0)])
    assert_one_line_error(ei, path)
    assert os.listdir(out_dir) == []


def test_digest_matches_documented_algorithm(out_dir):
    """docs/trace-format.md describes the digest; an independent implementation."""
    import hashlib
    import struct

    path = out_dir / "run.trace"
    write_trace(path, meta={"pi": 3.5})
    order = [
        ("meta", "key, value", "key"),
        ("functions", "fid, kind, name, qualname, module, filename, firstlineno, "
                      "flags", "fid"),
        ("threads", "thread_idx, ident, native_id, name, n_events, proc_idx", "thread_idx"),
        ("chunks", "thread_idx, seq, codec, n_events, raw_size, data",
         "thread_idx, seq"),
        ("func_stats", "fid, calls, prim_calls, own_ns, cum_ns", "fid"),
        ("edge_stats", "caller_fid, callee_fid, calls, prim_calls, own_ns, cum_ns",
         "caller_fid, callee_fid"),
        ("captured_calls", "call_id, fid, thread_idx, call_no, t_start_ns, "
         "duration_ns, status, args, result, exception, args_after, info",
         "call_id"),
        ("blobs", "key, codec, size, data", "key"),
        ("capture_stats", "fid, kept, capture_ns, bytes, stopped", "fid"),
        # version 4: the processes and the profile per process
        ("processes", "proc_idx, pid, ppid, command, start_time, end_time, exit_status, ended, t0_ns, info",
         "proc_idx"),
        ("proc_stats", "proc_idx, fid, calls, prim_calls, own_ns, cum_ns", "proc_idx, fid"),
        ("proc_edge_stats", "proc_idx, caller_fid, callee_fid, calls, prim_calls, own_ns, cum_ns",
         "proc_idx, caller_fid, callee_fid"),
    ]
    # from schema version 3 the schema comes first: every row of sqlite_master
    order.insert(0, ("sqlite_master", "type, name, tbl_name, rootpage, sql", "type, name"))
    buf = bytearray(b"retracer-trace-digest\0v2\0")
    conn = sqlite3.connect(str(path))
    for table, cols, key in order:
        ncols = len(cols.split(","))
        buf += b"T" + struct.pack(">Q", len(table)) + table.encode()
        buf += struct.pack(">Q", ncols)
        rows = conn.execute(f"SELECT {cols} FROM {table} ORDER BY {key}").fetchall()
        rows = [r for r in rows if not (table == "meta" and r[0] == "signature")]
        for row in rows:
            buf += b"R"
            for v in row:
                if v is None:
                    buf += b"N"
                elif isinstance(v, int):
                    buf += b"I" + struct.pack(">q", v)
                elif isinstance(v, float):
                    buf += b"F" + struct.pack(">d", v)
                elif isinstance(v, str):
                    buf += b"S" + struct.pack(">Q", len(v.encode())) + v.encode()
                else:
                    buf += b"B" + struct.pack(">Q", len(v)) + v
        buf += b"E" + struct.pack(">Q", len(rows))
    digest = hashlib.sha256(bytes(buf)).digest()
    assert tracefile.compute_digest(conn) == digest
    sig = json.loads(conn.execute(
        "SELECT value FROM meta WHERE key = 'signature'").fetchone()[0])
    conn.close()
    assert signing.verify(digest, sig)


def test_the_c_digest_encoder_matches_the_reference_encoding():
    """compute_digest hashes rows encoded in C (_engine.encode_rows); the
    encoding is the one docs/trace-format.md specifies, written out in Python
    (digest._encode_value): both agree on random rows and on the edge values."""
    from retracer._engine import encode_rows
    from retracer.tracefile.digest import _encode_value

    rng = random.Random(20261202)
    edges = [0, -1, 2 ** 63 - 1, -2 ** 63, "", b"", "\udcff", "é€𝄞", float("inf"), -0.0, 1e-310,
             memoryview(b"view"), bytearray(b"ba"), b"\0" * 70000]

    def value():
        k = rng.randrange(6)
        if k == 0:
            return None
        if k == 1:
            return rng.randrange(-2 ** 63, 2 ** 63)
        if k == 2:
            return rng.uniform(-1e300, 1e300)
        if k == 3:
            return "".join(chr(rng.randrange(1, 0x10FFFF)) for _ in range(rng.randrange(6)))
        if k == 4:
            return rng.randbytes(rng.randrange(100)) if hasattr(rng, "randbytes") else os.urandom(rng.randrange(100))
        return rng.choice(edges)

    for _ in range(2000):
        rows = [tuple(value() for _ in range(rng.randrange(7))) for _ in range(rng.randrange(5))]
        expected = b"".join(b"R" + b"".join(_encode_value(v) for v in row) for row in rows)
        assert encode_rows(rows) == expected, rows
    with pytest.raises(TypeError):
        encode_rows([(object(),)])
    with pytest.raises(OverflowError):
        encode_rows([(2 ** 64,)])
