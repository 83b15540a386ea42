"""Trust and safety of trace files (issue 12): every attack found against main, as
a test that fails on main and passes here.

- the signature covers the schema: a VIEW or TRIGGER added to a signed trace is
  refused (also with --trust, also when the file is signed again), and the
  trace-amending path cannot be made to re-sign an attacker's rows;
- ``profile``, ``view`` (page and text) and every export never unpickle:
  captured values are shown from inert stubs, with or without --trust;
- secrets stay out of traces, pages and replay-test files (**kwargs, nested
  dicts, attributes, return values of get_token), and those files are 0600;
- the signing key must be private; ``--serve`` answers only its own Host.

Each test runs retracer in a child process (tests/helpers.py) with its own config
directory (key) and its own private run directories (RETRACER_TMPDIR).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import sqlite3
import stat
import sys
import textwrap
import urllib.error
import urllib.request

import pytest

from retracer.tracefile import TraceError, TraceReader, compute_digest, signing
from retracer.tracefile.amend import update_captured_status

from helpers import finish, one_line_error, popen, retracer, trace

pytestmark = pytest.mark.usefixtures("run_tmpdir")  # each test's own private run directories


def write(directory, name, source):
    p = directory / name
    p.write_text(textwrap.dedent(source))
    return p


PROG = """
    class Box:
        def __init__(self, w, h):
            self.w, self.h = w, h

    def area(box, scale=1):
        return box.w * box.h * scale

    def twice(x):
        return x * 2

    if __name__ == "__main__":
        print(area(Box(2, 3)), twice("ab"), twice(21))
"""


@pytest.fixture
def traced(tmp_path):
    """A signed trace of PROG (its replay tests are not written)."""
    prog = write(tmp_path, "prog.py", PROG)
    out = tmp_path / "prog.trace"
    trace(out, prog, cwd=tmp_path)
    # the generated replay test is not part of these tests
    for n in os.listdir(tmp_path):
        if "__replay_test_" in n:
            os.unlink(tmp_path / n)
    return out


def evil_pickle(marker) -> bytes:
    """A pickle that runs ``touch marker`` when loaded for real."""
    class P:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    return pickle.dumps({"box": P(), "scale": [1, {"deep": P()}]}, protocol=5)


def put_blob(conn, data: bytes) -> bytes:
    key = hashlib.blake2b(data, digest_size=16).digest()
    conn.execute("INSERT OR IGNORE INTO blobs VALUES (?, 'raw', ?, ?)", (key, len(data), data))
    return key


def resign(path):
    """Sign the trace again with this user's key (as if the user had made it)."""
    conn = sqlite3.connect(str(path))
    version = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    sig = signing.sign(compute_digest(conn, version))
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('signature', ?)", (json.dumps(sig),))
    conn.commit()
    conn.close()


def commands(t, tmp_path):
    return [["profile", str(t)], ["profile", str(t), "--format", "json", "-o", str(tmp_path / "x.json")],
            ["profile", str(t), "--format", "chrome", "-o", str(tmp_path / "x.chrome.json")],
            ["view", str(t), "-o", str(tmp_path / "x.html")], ["view", str(t), "--text"], ["replay", str(t)]]


# --------------------------------------------------------------------------- schema objects

def test_view_replacing_a_signed_table_is_refused_even_with_trust(traced, tmp_path):
    """A view that returns exactly the signed rows left the old digest (rows only)
    unchanged, so the old signature still verified; the schema is signed now."""
    conn = sqlite3.connect(str(traced))
    before_rows = compute_digest(conn, 2)  # the rows-only digest of schema versions 1 and 2
    conn.executescript("ALTER TABLE blobs RENAME TO blobs_real; "
                       "CREATE VIEW blobs AS SELECT key, codec, size, data FROM blobs_real;")
    assert compute_digest(conn, 2) == before_rows  # what made the attack possible
    conn.close()
    for trust in ([], ["--trust"]):
        for cmd in commands(traced, tmp_path):
            p = retracer(*cmd, *trust, cwd=tmp_path)
            one_line_error(p, str(traced), "database objects retracer does not write", "view 'blobs'")
    with pytest.raises(TraceError, match="view 'blobs'"):
        TraceReader(traced, trust=True)


def test_random_view_with_a_payload_never_runs_it(traced, tmp_path):
    """The attack found on main: a view that returns the signed rows to the digest
    and, at random, an attacker's pickle to replay. It ran os.system within a few
    runs of `retracer replay` (no --trust); here it is refused every time."""
    marker = tmp_path / "PWNED"
    data = evil_pickle(marker)
    conn = sqlite3.connect(str(traced))
    conn.executescript("ALTER TABLE blobs RENAME TO blobs_real;")
    conn.execute("CREATE VIEW blobs AS SELECT key, codec, size, CASE WHEN abs(random()) % 2 = 0 THEN data "
                 "ELSE X'" + data.hex() + "' END AS data FROM blobs_real")
    conn.commit()
    conn.close()
    for _ in range(6):
        for trust in ([], ["--trust"]):
            one_line_error(retracer("replay", str(traced), *trust, cwd=tmp_path), str(traced))
    assert not marker.exists()


@pytest.mark.parametrize("sql", [
    "CREATE TRIGGER t AFTER UPDATE ON captured_calls BEGIN UPDATE captured_calls SET status = 'ok'; END",
    "CREATE INDEX i ON functions (name)",
    "CREATE TABLE extra (x)",
    "CREATE VIEW v AS SELECT 1",
])
def test_foreign_objects_refused_even_when_signed_again(traced, tmp_path, sql):
    """Nothing retracer did not create is read, whoever signed the file."""
    conn = sqlite3.connect(str(traced))
    conn.executescript(sql)
    conn.close()
    resign(traced)  # the digest covers the object: the signature is valid again
    for trust in ([], ["--trust"]):
        one_line_error(retracer("profile", str(traced), *trust, cwd=tmp_path),
                        "database objects retracer does not write")


def test_redefined_table_is_refused(traced, tmp_path):
    """A table of the right name and columns but another definition (here a
    generated column computed when read) is not retracer's."""
    conn = sqlite3.connect(str(traced))
    conn.executescript("ALTER TABLE capture_stats RENAME TO cs; "
                       "CREATE TABLE capture_stats (fid INTEGER PRIMARY KEY, kept INTEGER, capture_ns INTEGER, "
                       "bytes INTEGER, stopped TEXT GENERATED ALWAYS AS (hex(fid)) VIRTUAL); "
                       "INSERT INTO capture_stats (fid, kept, capture_ns, bytes) SELECT fid, kept, capture_ns, "
                       "bytes FROM cs; DROP TABLE cs;")
    conn.close()
    resign(traced)
    one_line_error(retracer("view", str(traced), "--text", "--trust", cwd=tmp_path),
                    "database objects retracer does not write")


def test_trigger_cannot_make_the_amend_path_resign_a_payload(traced, tmp_path):
    """On main, marking unstable calls opened the copy with triggers enabled: a
    trigger rewrote the arguments and the result was signed with the user's key.
    Now the copy is validated first and the trigger refused; the file is unchanged."""
    marker = tmp_path / "PWNED"
    conn = sqlite3.connect(str(traced))
    key = put_blob(conn, evil_pickle(marker))
    conn.execute("CREATE TRIGGER t AFTER UPDATE ON captured_calls BEGIN "
                 f"UPDATE captured_calls SET args = X'{key.hex()}'; END")
    conn.commit()
    conn.close()
    before = traced.read_bytes()
    with pytest.raises(TraceError, match="database objects retracer does not write|wrong signature"):
        update_captured_status(traced, {0: "unstable"}, meta={"unstable_calls": {"0": "x"}})
    assert traced.read_bytes() == before
    for trust in ([], ["--trust"]):
        one_line_error(retracer("replay", str(traced), *trust, cwd=tmp_path))
    assert not marker.exists()


def test_amend_signs_the_schema_it_checked(traced, run_tmpdir):
    update_captured_status(traced, {}, meta={"unstable_calls": {}})
    with TraceReader(traced) as r:
        assert r.verified and r.meta["unstable_calls"] == {}
    assert stat.S_IMODE(os.stat(traced).st_mode) == 0o600
    assert os.listdir(run_tmpdir) == []  # its private copy is gone


@pytest.mark.parametrize("version", [1, 2])
def test_old_traces_still_verify(tmp_path, version):
    """Schema versions 1 and 2 were signed over their rows only; they still verify
    (their schema is checked object by object, so nothing unsigned is read). In
    version 2, the stored values (blobs) and capture_stats are under the signature."""
    from retracer.tracefile.schema import schema_sql
    path = tmp_path / f"v{version}.trace"
    conn = sqlite3.connect(str(path))
    conn.executescript(schema_sql(version))
    conn.executemany("INSERT INTO meta VALUES (?, ?)",
                     [("format", '"retracer-trace"'), ("schema_version", str(version))])
    conn.execute("INSERT INTO functions VALUES (0, 'py', 'f', 'f', 'm', '/x.py', 1, 1)")
    conn.execute("INSERT INTO func_stats VALUES (0, 1, 1, 10, 10)")
    if version == 2:
        key = put_blob(conn, pickle.dumps({"x": 1}, protocol=5))
        conn.execute("INSERT INTO captured_calls VALUES (0, 0, 0, 0, 5, 10, 'ok', ?, NULL, NULL, NULL, '{}')",
                     (key,))
        conn.execute("INSERT INTO capture_stats VALUES (0, 1, 100, 20, NULL)")
    conn.commit()
    sig = signing.sign(compute_digest(conn, version))
    conn.execute("INSERT INTO meta VALUES ('signature', ?)", (json.dumps(sig),))
    conn.commit()
    conn.close()
    with TraceReader(path) as r:
        assert r.verified and r.version == version
    if version == 2:
        for sql in ("UPDATE capture_stats SET kept = 2", "UPDATE blobs SET data = zeroblob(length(data))"):
            bad = tmp_path / "bad.trace"
            bad.write_bytes(path.read_bytes())
            conn = sqlite3.connect(str(bad))
            conn.execute(sql)
            conn.commit()
            conn.close()
            with pytest.raises(TraceError, match="signature"):
                TraceReader(bad)
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE VIEW v AS SELECT 1")
    conn.commit()
    conn.close()
    with pytest.raises(TraceError, match="database objects retracer does not write"):
        TraceReader(path, trust=True)


def test_reader_opens_read_only_with_trusted_schema_off(traced):
    with TraceReader(traced) as r:
        conn = r._conn
        assert conn.execute("PRAGMA trusted_schema").fetchone()[0] == 0
        assert conn.execute("PRAGMA query_only").fetchone()[0] == 1
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("DELETE FROM meta")


def test_stored_value_swapped_under_its_key_is_refused(traced, tmp_path):
    """Values are content-addressed: a value that does not hash to its key is corrupt."""
    conn = sqlite3.connect(str(traced))
    key = conn.execute("SELECT args FROM captured_calls WHERE args IS NOT NULL LIMIT 1").fetchone()[0]
    other = pickle.dumps({"box": 1}, protocol=5)
    conn.execute("UPDATE blobs SET data = ?, size = ? WHERE key = ?", (other, len(other), key))
    conn.commit()
    conn.close()
    resign(traced)
    one_line_error(retracer("replay", str(traced), cwd=tmp_path), "does not match its key")


# --------------------------------------------------------------------------- nothing unpickled outside replay

def test_view_and_exports_never_run_a_payload_even_with_trust(traced, tmp_path):
    marker = tmp_path / "PWNED"
    # a module that would run code when imported by a pickle naming it
    write(tmp_path, "evilmod.py", f"""
        open({str(tmp_path / 'IMPORTED')!r}, "w").close()
        class Thing:
            def __setstate__(self, state):
                open({str(marker)!r}, "w").close()
    """)

    class Thing:  # pickled as evilmod.Thing
        pass
    Thing.__module__, Thing.__qualname__ = "evilmod", "Thing"
    sys.modules.setdefault("evilmod", type(sys)("evilmod")).Thing = Thing
    try:
        thing = pickle.dumps(Thing(), protocol=5)
    finally:
        del sys.modules["evilmod"]
    conn = sqlite3.connect(str(traced))
    evil = put_blob(conn, evil_pickle(marker))
    other = put_blob(conn, thing)
    conn.execute("UPDATE captured_calls SET args = ?, result = ?", (evil, other))
    conn.commit()
    conn.close()
    cmds = [["view", str(traced), "--trust", "-o", str(tmp_path / "page.html")],
            ["view", str(traced), "--trust", "--text"], ["profile", str(traced), "--trust"]]
    for fmt in ("pstats", "chrome", "speedscope", "pprof", "folded", "json", "flamegraph"):
        cmds.append(["profile", str(traced), "--trust", "--format", fmt, "-o", str(tmp_path / f"x.{fmt}")])
    for cmd in cmds:
        p = retracer(*cmd, cwd=tmp_path, check=True)
        assert "not signed by you" in p.stderr  # the --trust warning line
    assert not marker.exists() and not (tmp_path / "IMPORTED").exists()
    html = (tmp_path / "page.html").read_text()
    data = json.loads(re.search(r'id="rt-data">(.*?)</script>', html, re.S).group(1))
    shown = [v for e in data["captured"].values() for _, v in e.get("args", [])]
    assert any(v.startswith("system(") and "touch" in v for v in shown), shown
    assert any(e.get("returned", "").startswith("<Thing>") or e.get("returned", "").startswith("Thing")
               for e in data["captured"].values())
    # replay (without --trust) refuses the changed file; it is the only command that unpickles
    one_line_error(retracer("replay", str(traced), cwd=tmp_path), "signature")
    assert not marker.exists()


@pytest.mark.parametrize("gadget", ["system", "eval", "popen", "import", "getattr", "ext", "persid"])
def test_inert_loader_builds_no_object_of_any_class(gadget, tmp_path):
    from retracer.render.view.captures import _load, _Stub

    marker = tmp_path / "M"
    cmd = f"open({str(marker)!r}, 'w').close()"
    proto = b"\x80\x05"
    if gadget == "system":
        data = pickle.dumps(type("X", (), {"__reduce__": lambda s: (os.system, (f"touch {marker}",))})(), 5)
    elif gadget == "eval":
        data = proto + b"cbuiltins\neval\n(" + pickle.dumps(cmd, 0)[1:-1] + b"tR."
    elif gadget == "popen":
        data = b"csubprocess\nPopen\n((S'touch'\nS'" + str(marker).encode() + b"'\nltR."
    elif gadget == "import":
        data = b"cbuiltins\n__import__\n(S'antigravity'\ntR."
    elif gadget == "getattr":  # getattr(__import__('os'), 'system')('touch M')
        data = (b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'touch "
                + str(marker).encode() + b"'\ntR.")
    elif gadget == "ext":
        data = proto + b"\x82\x01."  # EXT1 code 1: not registered
    else:
        data = b"P0\n."  # a persistent id
    before = set(sys.modules)
    ok, value = _load(data)
    assert not marker.exists()
    assert set(sys.modules) == before  # nothing imported
    if ok:
        assert isinstance(value, _Stub) or not callable(value), value


# --------------------------------------------------------------------------- secrets

SECRETS_PROG = """
    class Creds:
        def __init__(self):
            self.api_key = "SECRET-" "ATTR"

    class Tok:
        def __init__(self, v):
            self.v = v

    def connect(**kw):
        return len(kw)

    def configure(cfg):
        return 1

    def login(user, password):
        return user

    def use(creds):
        return 2

    def get_token():
        return "SECRET-" "RETURN"

    def get_tokens():
        return ["a", "b"]

    def fetch_session():
        return {"session": {"refresh_token": "SECRET-" "RETURNED-KEY"}}

    def lex(token):
        return token.v

    def verify(token):
        return len(token)

    def headers(h):
        return len(h)

    def check_password(p):
        return True

    def next_token(toks):
        return toks[0]

    if __name__ == "__main__":
        connect(host="db", password="SECRET-" "KWARG")
        configure({"db": {"user": "u", "Password": "SECRET-" "NESTED"}})
        login("bob", "SECRET-" "ARG")
        use(Creds())
        get_token()
        get_tokens()
        fetch_session()
        lex(Tok("select"))
        verify("SECRET-" "TOKEN-STRING")
        headers({b"X-Api-Key": b"SECRET-" b"HEADER"})
        check_password("SECRET-" "PW-ARG-NAMED-p")
        next_token([Tok(1)])
"""


def test_secrets_are_not_written_anywhere(tmp_path):
    prog = write(tmp_path, "app.py", SECRETS_PROG)
    out = tmp_path / "app.trace"
    retracer("trace", "-q", "-o", str(out), str(prog), cwd=tmp_path, check=True)
    retracer("view", str(out), "-o", str(tmp_path / "app.html"), cwd=tmp_path, check=True)
    tests = [n for n in os.listdir(tmp_path) if "__replay_test_" in n]
    assert tests
    # (the program spells each secret as two literals: the trace keeps the program's source
    # for replay, and a secret typed into the source is not what redaction is about)
    blobs = [out.read_bytes(), (tmp_path / "app.html").read_bytes(), (tmp_path / tests[0]).read_bytes()]
    for secret in ("SECRET-KWARG", "SECRET-NESTED", "SECRET-ARG", "SECRET-ATTR", "SECRET-RETURN",
                   "SECRET-RETURNED-KEY", "SECRET-TOKEN-STRING", "SECRET-HEADER"):
        for b in blobs:
            assert secret.encode() not in b, secret
    with TraceReader(out) as r:
        names = {f.fid: f.name for f in r.functions.values()}
        rows = {names[c.fid]: c for c in r.iter_captured()}
    why = {n: json.loads(c.info).get("redacted") for n, c in rows.items()}
    assert rows["connect"].status == "redacted" and why["connect"] == ["kw['password']"]
    assert rows["configure"].status == "redacted" and why["configure"] == ["cfg['db']['Password']"]
    assert why["login"] == ["password"]
    assert why["use"] == ["creds.api_key"]
    assert rows["get_token"].status == "redacted" and why["get_token"] == ["the return value"]
    assert "refresh_token" in why["fetch_session"][0]
    assert why["verify"] == ["token"]
    assert why["headers"] == ["h[b'X-Api-Key']"]
    for c in rows.values():
        if c.status == "redacted":
            assert c.args is None and c.result is None and c.exception is None and c.args_after is None
    # a lexer's token objects, a bool from check_password, a list of tokens: kept, replayable
    for name in ("lex", "check_password", "next_token", "get_tokens"):
        assert rows[name].status == "ok", name
    # a redacted call is not replayable and says why
    p = retracer("replay", str(out), cwd=tmp_path)
    assert "secret-looking" in p.stderr or "redacted" in p.stderr or "secret" in p.stderr, p.stderr


def test_redaction_words_by_parts():
    from retracer.record.redact import Redactor
    from retracer.settings import DEFAULT_REDACT
    r = Redactor(DEFAULT_REDACT)
    for name in ("password", "db_password", "userPassword", "X-Api-Key", "apiKey", "API_KEY", "apikey",
                 "auth_token", "accessToken", "token_secret", "client_secret", "Authorization", "set-cookie"):
        assert r.name_is_secret(name, object()), name
    for name in ("tokens", "tok", "passage", "keys", "secretary", "cookies_count", "tokenize"):
        assert not r.name_is_secret(name, "x"), name
    assert r.name_is_secret("token", "abc") and r.name_is_secret("token", b"abc")
    assert not r.name_is_secret("token", object()) and not r.name_is_secret("token", ("Name", "x"))
    assert r.function_is_secret("get_token") is False  # weak: only a str/bytes result
    assert r.function_is_secret("get_api_key") is True and r.function_is_secret("load_password") is True
    assert r.function_is_secret("token_next") is None and r.function_is_secret("tokenize") is None


def _umask_0() -> None:
    os.umask(0)


def test_written_files_are_private(traced, tmp_path):
    """Traces, replay-test files, pages and exports: mode 0600 whatever the umask."""
    prog = tmp_path / "prog.py"
    out = tmp_path / "again.trace"
    retracer("trace", "-q", "-o", str(out), str(prog), cwd=tmp_path, check=True, preexec_fn=_umask_0)
    tests = [tmp_path / n for n in os.listdir(tmp_path) if "__replay_test_" in n]
    retracer("view", str(out), "-o", str(tmp_path / "p.html"), cwd=tmp_path, check=True, preexec_fn=_umask_0)
    for fmt, name in (("chrome", "c.json"), ("flamegraph", "f.html")):
        retracer("profile", str(out), "--format", fmt, "-o", str(tmp_path / name), cwd=tmp_path, check=True,
                 preexec_fn=_umask_0)
    for f in [out, tmp_path / "p.html", tmp_path / "c.json", tmp_path / "f.html"] + tests:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
    assert len(tests) == 1
    # nothing was left beside them
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


# --------------------------------------------------------------------------- key, server

def test_key_readable_by_others_is_refused(traced, tmp_path, config_dir):
    key = config_dir / "key"
    key.chmod(0o644)
    for cmd in (["profile", str(traced)], ["trace", "-q", "-o", str(tmp_path / "n.trace"),
                                           str(tmp_path / "prog.py")]):
        msg = one_line_error(retracer(*cmd, cwd=tmp_path), str(key), "chmod 600")
        assert "other users" in msg
    assert not (tmp_path / "n.trace").exists()
    key.chmod(0o600)
    retracer("profile", str(traced), cwd=tmp_path, check=True)


def test_serve_answers_only_its_own_host(traced, tmp_path):
    p = popen([sys.executable, "-m", "retracer", "view", str(traced), "--serve", "0"], cwd=tmp_path)
    try:
        line = p.stderr.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))

        def get(host):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    return resp.status, resp.read()
            except urllib.error.HTTPError as e:
                return e.code, e.read()

        status, body = get(f"127.0.0.1:{port}")
        assert status == 200 and b"rt-data" in body
        for host in (f"evil.example:{port}", "evil.example", f"localhost.evil.example:{port}", "127.0.0.1",
                     f"127.0.0.1:{port + 1}", ""):
            status, body = get(host)
            assert status == 421 and b"rt-data" not in body, host
    finally:
        p.terminate()
        finish(p)


@pytest.mark.parametrize("column", ["filename", "qualname", "name"])
def test_a_python_function_without_its_names_is_one_line_in_a_signed_trace(traced, tmp_path, column):
    """The fuzzer's find: a signed trace whose captured function had no file made
    replay's report fail to sort (an internal error). A Python function always has
    its names and its file: a row without them is a corrupt trace, for every command."""
    conn = sqlite3.connect(str(traced))
    conn.execute(f"UPDATE functions SET {column} = NULL WHERE fid IN (SELECT fid FROM captured_calls)")
    conn.commit()
    conn.close()
    resign(traced)
    for cmd in commands(traced, tmp_path):
        one_line_error(retracer(*cmd, cwd=tmp_path), str(traced), "corrupt")
