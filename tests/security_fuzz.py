"""The trace-reader fuzzer behind tests/test_security_fuzz.py (run as a child
process: a crash or a hang of one variant must not take pytest with it).

    python tests/security_fuzz.py BASE.trace WORKDIR SEED N RESULTS.jsonl

makes N variants of BASE.trace (seeded: the same seed gives the same variants)
-- truncations, bit flips, SQL edits of values of every table (wrong types,
NULLs, huge numbers, long strings), deleted rows, broken chunks and stored
values, meta keys of the wrong JSON type, schema objects added or changed --
half of them signed again with this user's key (so the signature is valid and
only the reader's own checks stand between the file and the commands), and
runs every command that reads a trace on each: ``profile``, every export,
``view``, ``view --text`` and ``replay``, with and without ``--trust``, in this
process through ``retracer.cli.main``. One JSON line per variant goes to
RESULTS: the variant, and the problems seen (a command that raised, a status
other than 0/1/2, a traceback or "internal error" in its output, an error of
more than one line). Before each variant a line says which one starts, so a
crash names it.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import signal
import sqlite3
import sys
import time
import traceback

EXPORTS = ("pstats", "chrome", "speedscope", "pprof", "folded", "json", "flamegraph")
TABLES = {
    "meta": ("key", "value"),
    "functions": ("fid", "kind", "name", "qualname", "module", "filename", "firstlineno", "flags"),
    "threads": ("thread_idx", "ident", "native_id", "name", "n_events"),
    "chunks": ("thread_idx", "seq", "codec", "n_events", "raw_size", "data"),
    "func_stats": ("fid", "calls", "prim_calls", "own_ns", "cum_ns"),
    "edge_stats": ("caller_fid", "callee_fid", "calls", "prim_calls", "own_ns", "cum_ns"),
    "captured_calls": ("call_id", "fid", "thread_idx", "call_no", "t_start_ns", "duration_ns", "status",
                       "args", "result", "exception", "args_after", "info"),
    "blobs": ("key", "codec", "size", "data"),
    "capture_stats": ("fid", "kept", "capture_ns", "bytes", "stopped"),
}
META_KEYS = ("command", "cwd", "python_version", "options", "exit_status", "calls_total", "stream_calls",
             "complete", "stopped_by", "scope", "scopes", "sys_path", "captured_calls", "capture",
             "unstable_calls", "start_time", "duration_ns", "format", "schema_version", "hook")
PER_VARIANT_S = 120  # a hang detector, not a time limit: no variant comes near it


def weird_values(rng: random.Random):
    return [None, 0, -1, 1, 2 ** 31, 2 ** 62, 2 ** 63 - 1, -2 ** 63, 1.5, float("inf"), float("nan"),
            "", "x" * rng.choice([1, 100, 100_000]), "py", "c", "raw", "zlib", "ok", "{}", "[]", "null",
            '{"outcome": "return"}', b"", bytes(rng.randrange(256) for _ in range(rng.choice([1, 16, 300]))),
            b"\x80\x05N.", b"\x80\x05K\x01.", "\udcff" if False else "\u00e9"]


def mutate(path: str, rng: random.Random) -> str:
    """Change the trace at ``path`` in place; return what was done."""
    kind = rng.choice(["truncate", "bitflip", "value", "value", "value", "delete", "meta", "schema", "chunk",
                       "blob", "info", "pickle", "pickle"])
    if kind == "truncate":
        size = os.path.getsize(path)
        n = rng.randrange(0, size)
        with open(path, "r+b") as f:
            f.truncate(n)
        return f"truncate to {n}"
    if kind == "bitflip":
        data = bytearray(open(path, "rb").read())
        k = rng.randrange(1, 24)
        where = []
        for _ in range(k):
            i = rng.randrange(0 if rng.random() < 0.1 else 100, len(data))
            data[i] ^= 1 << rng.randrange(8)
            where.append(i)
        open(path, "wb").write(bytes(data))
        return f"flip bytes {where[:6]}"
    conn = sqlite3.connect(path)
    try:
        if kind == "value":
            table = rng.choice(list(TABLES))
            col = rng.choice(TABLES[table])
            v = rng.choice(weird_values(rng))
            where = "" if rng.random() < 0.3 else \
                f" WHERE rowid = (SELECT rowid FROM {table} ORDER BY random() LIMIT 1)"
            if table == "meta" and col == "key":
                where = " WHERE key NOT IN ('format', 'schema_version', 'signature')" + \
                        (" AND rowid = (SELECT min(rowid) FROM meta)" if where else "")
            try:
                conn.execute(f"UPDATE OR IGNORE {table} SET {col} = ?{where}", (v,))
            except (sqlite3.Error, UnicodeDecodeError) as e:
                return f"value {table}.{col} (refused by sqlite: {e})"
            return f"value {table}.{col} = {v!r:.40}{' (all rows)' if not where else ''}"
        if kind == "delete":
            table = rng.choice(list(TABLES))
            conn.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} ORDER BY random() "
                         f"LIMIT {rng.choice([1, 3, 1000])})" + (" AND key NOT IN ('format', 'schema_version')"
                                                                   if table == "meta" else ""))
            return f"delete rows of {table}"
        if kind == "meta":
            key = rng.choice(META_KEYS)
            v = rng.choice(['"text"', "1", "-5", "1e400", "[1, 2]", '["a", 3]', "{}", '{"a": {"b": 1}}', "null",
                            "true", "not json", "[" * 5000, '"' + "x" * 10000 + '"', "3", "99"])
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, v))
            return f"meta {key} = {v[:40]}"
        if kind == "schema":
            sql = rng.choice([
                "CREATE VIEW v AS SELECT * FROM blobs",
                "CREATE TRIGGER t AFTER UPDATE ON captured_calls BEGIN UPDATE meta SET value = '1'; END",
                "CREATE INDEX i ON functions(name)",
                "CREATE TABLE extra (x)",
                "DROP TABLE capture_stats",
                "DROP TABLE functions",
                "ALTER TABLE blobs RENAME TO blobs_real; CREATE VIEW blobs AS SELECT * FROM blobs_real",
                "ALTER TABLE captured_calls ADD COLUMN extra TEXT",
                "ALTER TABLE meta RENAME TO m2; CREATE VIEW meta AS SELECT * FROM m2",
            ])
            conn.executescript(sql)
            return f"schema: {sql}"
        if kind == "chunk":
            how = rng.choice(["cut", "size", "zlib", "garbage", "null", "huge-size"])
            row = conn.execute("SELECT thread_idx, seq, data FROM chunks ORDER BY random() LIMIT 1").fetchone()
            if row is None:
                return "chunk: none"
            t, s, data = row
            data = data or b""
            new = {"cut": (data[:rng.randrange(0, max(1, len(data)))], len(data), "raw"),
                   "size": (data, len(data) + rng.choice([-1, 1, 1000]), "raw"),
                   "zlib": (data, len(data), "zlib"),
                   "garbage": (bytes(rng.randrange(256) for _ in range(len(data) or 8)), len(data) or 8, "raw"),
                   "null": (None, 0, "raw"),
                   "huge-size": (__import__("zlib").compress(b"\0" * 20000), 20000, "zlib")}[how]
            conn.execute("UPDATE chunks SET data = ?, raw_size = ?, codec = ? WHERE thread_idx = ? AND seq = ?",
                         (new[0], new[1], new[2], t, s))
            return f"chunk {t}/{s}: {how}"
        if kind == "blob":
            how = rng.choice(["cut", "garbage", "zlib", "size", "pickle"])
            row = conn.execute("SELECT key, data FROM blobs ORDER BY random() LIMIT 1").fetchone()
            if row is None:
                return "blob: none"
            key, data = row
            if how == "cut":
                conn.execute("UPDATE blobs SET data = ? WHERE key = ?", (data[:len(data) // 2], key))
            elif how == "garbage":
                conn.execute("UPDATE blobs SET data = ? WHERE key = ?", (os.urandom(len(data)), key))
            elif how == "zlib":
                conn.execute("UPDATE blobs SET codec = 'zlib' WHERE key = ?", (key,))
            elif how == "size":
                conn.execute("UPDATE blobs SET size = size + 1 WHERE key = ?", (key,))
            else:  # a well-formed pickle of other data, stored under the old key
                import pickle
                conn.execute("UPDATE blobs SET data = ?, size = ? WHERE key = ?",
                             (pickle.dumps({"x": [1, 2]}), len(pickle.dumps({"x": [1, 2]})), key))
            return f"blob: {how}"
        if kind == "pickle":  # a well-formed value of an unexpected shape, stored under its own key
            import hashlib
            import pickle
            value = rng.choice([None, 1, "s", [1, 2], (1,), {"x": 1}, {"b": None, "k": 5}, {1: 2},
                                {"yields": "x", "return": b"y"}, {"yields": [b"bad"], "return": None},
                                ValueError("v"), [[[[[[[]]]]]]], b"\x80", {"a": [1] * 1000}])
            data = pickle.dumps(value, protocol=rng.choice([0, 2, 5]))
            key = hashlib.blake2b(data, digest_size=16).digest()
            conn.execute("INSERT OR IGNORE INTO blobs VALUES (?, 'raw', ?, ?)", (key, len(data), data))
            col = rng.choice(["args", "result", "exception", "args_after"])
            conn.execute(f"UPDATE captured_calls SET {col} = ? WHERE rowid = (SELECT rowid FROM captured_calls "
                         f"ORDER BY random() LIMIT 1)", (key,))
            return f"pickle {col} = {value!r:.40}"
        # info
        v = rng.choice(["not json", "[]", "1", '{"outcome": 3}', '{"yields": "x", "outcome": "return"}',
                        '{"argspec": "bad"}', '{"argspec": [1, 2]}', '{"kind": 5, "outcome": "raise"}',
                        '{"stream_call": -5}', '{"stream_call": 99999999}', "{" * 3000])
        conn.execute("UPDATE captured_calls SET info = ? WHERE rowid = (SELECT rowid FROM captured_calls ORDER BY "
                     "random() LIMIT 1)", (v,))
        return f"info = {v[:40]}"
    except (sqlite3.Error, UnicodeDecodeError) as e:
        # (a damaged file's error message may hold bytes that are not UTF-8: the
        # sqlite3 module then raises UnicodeDecodeError instead)
        return f"{kind}: sqlite refused ({e})"
    finally:
        try:
            conn.commit()
            conn.close()
        except (sqlite3.Error, UnicodeDecodeError):
            pass


def resign(path: str) -> bool:
    """Sign the (changed) trace again with this user's key, as retracer would."""
    from retracer import tracefile
    compute_digest = tracefile.compute_digest
    signing = getattr(tracefile, "signing", None) or __import__("retracer.tracefile.signing", fromlist=["sign"])
    try:
        conn = sqlite3.connect(path)
        try:
            version = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
            sig = signing.sign(compute_digest(conn, int(version)))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('signature', ?)", (json.dumps(sig),))
            conn.commit()
        finally:
            conn.close()
        return True
    except Exception:
        return False


def run_cli(argv):
    from retracer.cli import main
    out, err = io.StringIO(), io.StringIO()
    problem = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException as e:  # noqa: BLE001 - this is what the fuzzer looks for
            rc = None
            problem = f"raised {type(e).__name__}: {e}"[:300] + " | " + \
                traceback.format_exc().splitlines()[-3][:200]
    return rc, out.getvalue(), err.getvalue(), problem


def check(argv, rc, out, err, problem):
    """What is wrong with one command's ending, or None."""
    if problem:
        return problem
    if rc not in (0, 1, 2):
        return f"exit status {rc}"
    if "Traceback" in err or "Traceback" in out:
        return "a traceback: " + err[-300:]
    if "internal error" in err:
        return "internal error: " + err.strip()[-300:]
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("retracer: warning: ")]
    if rc == 2:
        if len(lines) != 1:
            return f"{len(lines)} error lines: {err[-300:]}"
        if not lines[0].startswith("retracer: "):
            return "error line not from retracer: " + lines[0][:200]
    return None


def commands(trace: str, out_dir: str):
    cmds = [["profile", trace]]
    for fmt in EXPORTS:
        ext = {"flamegraph": "html", "pprof": "pb.gz", "pstats": "prof"}.get(fmt, "txt")
        cmds.append(["profile", trace, "--format", fmt, "-o", os.path.join(out_dir, f"out.{ext}")])
    cmds += [["view", trace, "-o", os.path.join(out_dir, "page.html")], ["view", trace, "--text"],
             ["replay", trace, "-q"]]
    return cmds


def main(argv) -> int:
    base, work, seed, n, results = argv[0], argv[1], int(argv[2]), int(argv[3]), argv[4]
    os.environ.setdefault("RETRACER_CALL_TIMEOUT", "10")
    rng = random.Random(seed)
    signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(TimeoutError("variant hung")))
    with open(results, "a", encoding="utf-8") as res:
        for i in range(n):
            vdir = os.path.join(work, f"v{i}")
            os.makedirs(vdir, exist_ok=True)
            trace = os.path.join(vdir, "t.trace")
            shutil.copyfile(base, trace)
            what = [mutate(trace, rng) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
            signed = rng.random() < 0.5 and resign(trace)
            res.write(json.dumps({"start": i, "what": what, "signed": signed}) + "\n")
            res.flush()
            problems = []
            rcs: dict = {}
            slowest = [0.0, ""]  # CPU seconds of the slowest command (for the report, not checked)
            signal.alarm(PER_VARIANT_S)
            try:
                for cmd in commands(trace, vdir):
                    for trust in ((False, True) if cmd[0] != "replay" or rng.random() < 0.5 else (True,)):
                        argv2 = cmd + (["--trust"] if trust else [])
                        t0 = time.process_time()
                        rc, out, err, problem = run_cli(argv2)
                        dt = time.process_time() - t0
                        if dt > slowest[0]:
                            slowest[:] = [round(dt, 3), " ".join(argv2[:1] + argv2[2:])]
                        bad = check(argv2, rc, out, err, problem)
                        rcs[str(rc)] = rcs.get(str(rc), 0) + 1
                        if bad:
                            problems.append({"cmd": argv2[0:1] + argv2[2:], "problem": bad})
            except TimeoutError:
                problems.append({"cmd": "?", "problem": f"hung for {PER_VARIANT_S} s"})
            finally:
                signal.alarm(0)
            res.write(json.dumps({"done": i, "what": what, "signed": signed, "problems": problems,
                                  "rcs": rcs, "slowest": slowest}) + "\n")
            res.flush()
            shutil.rmtree(vdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
