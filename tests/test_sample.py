"""`retracer sample` (py-spy): a C-heavy workload with and without native frames, a
running process by pid, the sampled trace read by profile, view --text and the
exports, %%rsample, and the one line said without ptrace permission.

py-spy must run here: when it cannot, these tests FAIL saying why (only a platform
without ptrace at all skips them)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from helpers import kill_group, one_line_error, popen, retracer, show

if not (sys.platform.startswith("linux") or sys.platform == "darwin" or os.name == "nt"):
    pytest.skip(f"py-spy has no support for {sys.platform} (no ptrace-like API here)", allow_module_level=True)

WORK = textwrap.dedent("""
    import hashlib, os, sys, time, zlib

    def pack(data):
        return zlib.compress(data, 9)

    def digest(data):
        h = hashlib.sha256()
        for _ in range(8):
            h.update(data)
        return h.hexdigest()

    def pure(n):
        s = 0
        for i in range(n):
            s += i * i
        return s

    def main(seconds):
        # for a time, not a number of rounds: a loaded machine still gets enough samples of each
        data = os.urandom(1 << 15) + b"abc" * 60000
        end = time.time() + seconds
        while time.time() < end:
            pack(data)
            digest(data)
            pure(60000)

    main(float(sys.argv[1]))
""")

LOOP = textwrap.dedent("""
    import hashlib, sys, time

    def spin():
        h = hashlib.sha1()
        for _ in range(500):
            h.update(b"x" * 1000)
        return h.digest()

    def main():
        print("ready", flush=True)
        end = time.time() + 120
        while time.time() < end:
            spin()

    main()
""")


def _py_spy_ran(cp):
    """A failure of py-spy itself fails the test, with what it said."""
    if cp.returncode != 0:
        pytest.fail("retracer sample could not run py-spy in this environment (py-spy is in the test extra; it "
                    "needs ptrace permission: root, ptrace_scope 0 or CAP_SYS_PTRACE):\n" + show(cp), pytrace=False)


@pytest.fixture(scope="module")
def sampled(tmp_path_factory, module_config_dir):
    d = tmp_path_factory.mktemp("sample")
    (d / "work.py").write_text(WORK)
    env = dict(os.environ, RETRACER_CONFIG_DIR=str(module_config_dir))
    # --idle: every sample kept, also when a loaded machine has the program waiting for a CPU
    cp = retracer("sample", "--native", "--idle", "--rate", "250", "-o", "native.trace", "work.py", "2.5", cwd=d,
                  env=env)
    _py_spy_ran(cp)
    cp2 = retracer("sample", "--idle", "--rate", "250", "-o", "python.trace", "work.py", "1.5", cwd=d, env=env)
    _py_spy_ran(cp2)
    return d, env, cp


def test_sample_writes_a_sampled_trace(sampled):
    d, env, cp = sampled
    assert "samples at 250 Hz written to" in cp.stderr and "py-spy>" not in cp.stderr + cp.stdout, show(cp)
    prof = retracer("profile", "native.trace", "--json", cwd=d, env=env)
    assert prof.returncode == 0, show(prof)
    names = {f["name"] for f in json.loads(prof.stdout)["functions"]}
    assert {"pack", "digest", "pure"} <= names, names
    table = retracer("profile", "native.trace", cwd=d, env=env, check=True).stdout
    assert "sampled trace (py-spy, 250 Hz, native frames)" in table and "samples" in table.splitlines()[0]
    sys.path.insert(0, os.path.dirname(__file__))
    from retracer.tracefile import TraceReader
    with TraceReader(str(d / "native.trace"), trust=True) as r:
        meta = r.meta["sampled"]
        assert meta["sampler"] == "py-spy" and meta["native"] is True and meta["rate"] == 250
        assert meta["samples"] > 10


def test_native_frames_only_with_native(sampled):
    d, env, _ = sampled
    native = retracer("view", "--text", "native.trace", cwd=d, env=env, check=True).stdout
    # zlib's and OpenSSL's C code under the Python functions that call them
    assert "zlib_compress" in native or "deflate" in native or "[libz" in native, native
    assert "libcrypto" in native or "EVP_" in native or "SHA256" in native, native
    plain = retracer("view", "--text", "python.trace", cwd=d, env=env, check=True).stdout
    # (which of pack/digest/pure a loaded machine lets py-spy see varies: only main is sure)
    assert "main  [work.py" in plain, plain
    assert "deflate" not in plain and "[libz" not in plain and "[builtin]" not in plain, plain


@pytest.mark.parametrize("fmt,suffix", [("chrome", ".json"), ("speedscope", ".speedscope.json"),
                                        ("pprof", ".pb.gz"), ("folded", ".folded"), ("pstats", ".prof"),
                                        ("flamegraph", ".html")])
def test_sampled_trace_exports(sampled, fmt, suffix):
    d, env, _ = sampled
    out = f"native-{fmt}{suffix}"
    cp = retracer("profile", "native.trace", "--format", fmt, "-o", out, cwd=d, env=env)
    assert cp.returncode == 0, show(cp)
    assert (d / out).stat().st_size > 0
    if fmt == "folded":
        text = (d / out).read_text()
        assert "pack (work.py:" in text and ("deflate" in text or "[libz" in text), text[:2000]


def test_sample_formats_passthrough(sampled):
    d, env, _ = sampled
    cp = retracer("sample", "--format", "speedscope", "-o", "s.speedscope.json", "work.py", "0.3", cwd=d, env=env)
    _py_spy_ran(cp)
    doc = json.loads((d / "s.speedscope.json").read_text())
    assert "speedscope" in doc["$schema"] and doc["profiles"]
    cp = retracer("sample", "--format", "pprof", "-o", "s.pb.gz", "work.py", "0.3", cwd=d, env=env)
    _py_spy_ran(cp)
    assert (d / "s.pb.gz").read_bytes()[:2] == b"\x1f\x8b"


def test_sample_a_running_process(tmp_path):
    (tmp_path / "loop.py").write_text(LOOP)
    p = popen([sys.executable, "loop.py"], cwd=tmp_path)
    try:
        assert p.stdout.readline().strip() == "ready"
        cp = retracer("sample", "--pid", str(p.pid), "--duration", "2", "-o", "pid.trace", cwd=tmp_path)
        _py_spy_ran(cp)
        assert f"sampling process {p.pid}" in cp.stderr
    finally:
        kill_group(p)
        p.wait()
    prof = retracer("profile", "pid.trace", "--json", cwd=tmp_path, check=True)
    funcs = {f["name"]: f for f in json.loads(prof.stdout)["functions"]}
    assert "spin" in funcs and funcs["spin"]["cumulative_ns"] > 0, funcs.keys()
    assert "spin" in retracer("view", "--text", "pid.trace", cwd=tmp_path, check=True).stdout


def test_no_process_and_no_permission_are_one_line(tmp_path):
    one_line_error(retracer("sample", "--pid", "999999999", "-o", "x.trace", cwd=tmp_path), "no process")
    # a py-spy refused by the kernel (what it prints without ptrace permission)
    fake = tmp_path / "py-spy"
    fake.write_text("#!/bin/sh\necho \"Permission Denied: Try running again with elevated permissions by going "
                    "'sudo env \\\"PATH=\\$PATH\\\" !!'\"\nexit 1\n")
    fake.chmod(0o755)
    env = dict(os.environ, RETRACER_PY_SPY=str(fake))
    line = one_line_error(retracer("sample", "--pid", str(os.getpid()), "-o", "x.trace", cwd=tmp_path, env=env),
                          "permission denied", "ptrace", "CAP_SYS_PTRACE")
    assert f"process {os.getpid()}" in line
    missing = dict(os.environ, RETRACER_PY_SPY=str(tmp_path / "none" / "py-spy"))
    one_line_error(retracer("sample", "work.py", cwd=tmp_path, env=missing), "py-spy")


def test_rsample_magic(tmp_path):
    pytest.importorskip("IPython", reason="IPython is not installed for this Python (pip install ipython)")
    script = tmp_path / "cell.py"
    cell = ("import zlib, os\n"
            "def squeeze():\n"
            "    d = os.urandom(1 << 14) * 16\n"
            "    for _ in range(150):\n"  # about half a second: py-spy, starved on a loaded machine, still samples it
            "        zlib.compress(d, 9)\n"
            "squeeze()\n")
    script.write_text("\n".join([
        "import os",
        f"os.environ['IPYTHONDIR'] = {str(tmp_path / 'ipython')!r}",
        "from IPython.testing.globalipapp import start_ipython",
        "ip = start_ipython()",
        "ip.run_line_magic('load_ext', 'retracer')",
        f"ip.run_cell_magic('rsample', {'--native --rate 250 -o ' + str(tmp_path / 'cell.trace')!r}, {cell!r})",
        ""]))
    cp = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0, show(cp)
    assert "squeeze" in cp.stdout and "sampled trace" in cp.stdout, show(cp)
    text = retracer("view", "--text", str(tmp_path / "cell.trace"), check=True).stdout
    assert "squeeze" in text and ("zlib_compress" in text or "deflate" in text or "[libz" in text), text
    # only the cell's thread (not py-spy's reader thread), from the cell's own frame down
    assert "pump" not in text and "Thread._bootstrap" not in text, text
    assert "run_cell_magic" not in text and "RetracerMagics" not in text, text


def test_idle_keeps_sleeping_threads(tmp_path):
    (tmp_path / "nap.py").write_text("import time\n\ndef nap():\n    time.sleep(1.5)\n\nnap()\n")
    got = {}
    for opts in ([], ["--idle"]):
        out = f"nap{len(opts)}.trace"
        cp = retracer("sample", *opts, "-o", out, "nap.py", cwd=tmp_path)
        _py_spy_ran(cp)
        funcs = {f["name"]: f for f in json.loads(
            retracer("profile", out, "--json", cwd=tmp_path, check=True).stdout)["functions"]}
        got[bool(opts)] = funcs.get("nap", {}).get("cumulative_ns", 0)
    assert got[True] >= 0.75e9, got            # wall time: the sleep is there
    assert got[False] < got[True] / 2, got     # CPU time: a sleeping thread is not sampled
