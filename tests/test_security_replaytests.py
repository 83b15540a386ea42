"""Generated replay-test files are data-safe (issue 12, item 3): names that come
from the traced run -- the trace's path, function qualified names, file names --
end up in a Python file that pytest imports, so each must stay data (a string
literal or an escaped comment), never code.

The fix belongs to the replay-isolation work (src/retracer/replay/testgen.py);
these are its attack tests.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap

import pytest

TIMEOUT = 180


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("RETRACER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("RETRACER_TMPDIR", str(tmp_path / "tmp"))


def trace(tmp_path, prog, out):
    p = subprocess.run([sys.executable, "-m", "retracer", "trace", "-q", "--no-stability-check", "-o", out,
                        "--tests-root", str(tmp_path / "gen"), str(prog)], capture_output=True, text=True,
                       cwd=str(tmp_path), timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    files = sorted((tmp_path / "gen").glob("*__replay_test_*.py"))
    assert len(files) == 1, (p.stderr, os.listdir(tmp_path))
    return files[0]


def assert_inert(path, marker):
    """The file compiles, its top level holds only what the generator writes
    (docstring, imports, TRACE and _replay, test functions), and importing it
    runs nothing else."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Expr):
            assert isinstance(node.value, ast.Constant) and isinstance(node.value.value, str), ast.dump(node)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            assert all(a.name in ("pytest", "ReplayTests") or a.name.startswith("retracer") for a in node.names)
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            assert names in (["TRACE"], ["_replay"], ["CALLS"]), ast.dump(node)
            if names == ["CALLS"]:  # a list of pytest.param(<call id>, id=<str>, marks=xdist_group(<str>))
                assert isinstance(node.value, ast.List), ast.dump(node)
                for el in node.value.elts:
                    assert isinstance(el, ast.Call) and ast.unparse(el.func) == "pytest.param", ast.dump(el)
                    assert all(isinstance(a, ast.Constant) for a in el.args), ast.dump(el)
                    for kw in el.keywords:
                        v = kw.value
                        if kw.arg == "marks":
                            assert isinstance(v, ast.Call) and ast.unparse(v.func) == "pytest.mark.xdist_group"
                            assert all(isinstance(a, ast.Constant) for a in v.args), ast.dump(v)
                        else:
                            assert kw.arg == "id" and isinstance(v, ast.Constant), ast.dump(kw)
        else:
            assert isinstance(node, ast.FunctionDef) and node.name.startswith("test_"), ast.dump(node)
            assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(node))
    p = subprocess.run([sys.executable, "-c", f"import runpy; runpy.run_path({str(path)!r})"],
                       capture_output=True, text=True, cwd=str(path.parent), timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    assert not (path.parent / marker).exists()


def test_hostile_trace_path_stays_data(tmp_path):
    marker = "X"  # created in the directory the generated file is run from
    prog = tmp_path / "prog.py"
    prog.write_text("def f(x):\n    return x + 1\n\nif __name__ == '__main__':\n    f(1)\n")
    name = f'a"""+__import__("os").system("touch {marker}")+"""b.trace'
    gen = trace(tmp_path, prog, name)
    assert_inert(gen, marker)


def test_hostile_qualname_stays_data(tmp_path):
    marker = "Y"
    prog = tmp_path / "prog.py"
    prog.write_text(textwrap.dedent(f"""
        def f(x):
            return x + 1

        evil = "x\\nimport os; os.system('touch {marker}')\\n#"
        f.__qualname__ = evil
        if hasattr(f.__code__, "co_qualname"):
            f.__code__ = f.__code__.replace(co_qualname=evil)
        else:  # before 3.11 the qualified name of a code object not in its module's code is its function's
            f.__code__ = f.__code__.replace()

        if __name__ == "__main__":
            f(1)
    """))
    gen = trace(tmp_path, prog, "q.trace")
    assert_inert(gen, marker)


def test_hostile_file_name_stays_data(tmp_path):
    marker = "Z"
    prog = tmp_path / f"p\nimport os; os.system('touch {marker}')\n#.py"
    prog.write_text("def f(x):\n    return x + 1\n\nif __name__ == '__main__':\n    f(1)\n")
    gen = trace(tmp_path, prog, str(tmp_path / "z.trace"))
    assert_inert(gen, marker)
