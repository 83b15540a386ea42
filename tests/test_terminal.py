"""Terminal output: tables fit 80 and 200 columns (names cut from the left, file:line
kept), colour only on a terminal without NO_COLOR, progress bars on a terminal's
stderr only. The terminal is a real pseudo-terminal (helpers.run_tty)."""
from __future__ import annotations

import os
import re
import sys

import pytest

from helpers import WORKLOAD_ARGS, retracer, run_tty, show, strip_ansi, trace

pytestmark = pytest.mark.skipif(os.name != "posix", reason="pseudo-terminals are POSIX")

CMD = [sys.executable, "-m", "retracer"]


@pytest.fixture(scope="module")
def oop_trace(tmp_path_factory, workloads, module_config_dir):
    d = tmp_path_factory.mktemp("term")
    # the workload lives outside the trace's cwd: its path is long, so 80 columns must cut it
    trace("oop.trace", str(workloads / "oop_sim.py"), *WORKLOAD_ARGS["oop_sim.py"], cwd=d,
          env=dict(os.environ, RETRACER_CONFIG_DIR=str(module_config_dir)))
    return d / "oop.trace"


def _env(cfg, **extra):
    env = dict(os.environ, RETRACER_CONFIG_DIR=str(cfg))
    for k in ("COLUMNS", "NO_COLOR", "FORCE_COLOR"):
        env.pop(k, None)
    env.update(extra)
    return env


def _table_lines(text):
    lines = strip_ansi(text).splitlines()
    # the table's head (not the end of a wrapped summary line, "...; ranked by / saving")
    start = next(i for i, ln in enumerate(lines) if ln.strip().startswith("saving") and "function" in ln)
    return [ln for ln in lines[start:] if ln.strip()]


@pytest.mark.parametrize("columns", [80, 200])
def test_profile_fits_the_terminal(oop_trace, module_config_dir, columns):
    rc, tty, _, err = run_tty(CMD + ["profile", str(oop_trace), "--top", "8"], env=_env(module_config_dir),
                              stderr_tty=False, columns=columns)
    assert rc == 0, err
    lines = strip_ansi(tty).splitlines()
    assert lines and all(len(ln) <= columns for ln in lines), "\n".join(ln for ln in lines if len(ln) > columns)
    rows = [ln for ln in _table_lines(tty)[1:9] if "(" in ln]
    assert len(rows) == 8, tty
    for ln in rows:  # every row keeps its file:line
        assert re.search(r"\((?:\S*/)?oop_sim\.py:\d+\)$", ln), ln
    if columns == 80:
        assert "…" in tty, tty                              # something was cut, from the left
        assert "saving/call" not in tty                     # a column left out rather than wrapping
    else:
        assert "saving/call" in tty and "cumulative" in tty
        assert "Particle.step  (" in strip_ansi(tty) and "…" not in tty
    assert "\x1b[" in tty  # colour on a terminal


def test_columns_env_on_a_terminal_only(oop_trace, module_config_dir):
    """On a terminal COLUMNS wins over its size; piped, COLUMNS is ignored (CI and test
    runners set it for themselves: pytest-xdist's workers have COLUMNS=80)."""
    rc, tty, _, err = run_tty(CMD + ["profile", str(oop_trace), "--top", "8"],
                              env=_env(module_config_dir, COLUMNS="80"), stderr_tty=False, columns=200)
    assert rc == 0, err
    assert all(len(ln) <= 80 for ln in strip_ansi(tty).splitlines()), tty
    cp = retracer("profile", str(oop_trace), "--top", "8", env=_env(module_config_dir, COLUMNS="80"))
    assert cp.returncode == 0, show(cp)
    assert "saving/call" in cp.stdout and "…" not in cp.stdout
    assert "\x1b[" not in cp.stdout


def test_no_color(oop_trace, module_config_dir):
    rc, tty, _, err = run_tty(CMD + ["profile", str(oop_trace), "--top", "5"],
                              env=_env(module_config_dir, NO_COLOR="1"), stderr_tty=False, columns=120)
    assert rc == 0, err
    assert "\x1b[" not in tty, repr(tty[:400])
    assert "oop_sim.py:" in tty and "saving" in tty


def test_piped_output_is_plain_and_whole(oop_trace, module_config_dir):
    cp = retracer("profile", str(oop_trace), "--top", "8", env=_env(module_config_dir))
    assert cp.returncode == 0, show(cp)
    assert "\x1b[" not in cp.stdout and "\r" not in cp.stdout and "…" not in cp.stdout
    assert "saving/call" in cp.stdout
    assert str(oop_trace.parent).rstrip("/") not in cp.stdout  # (relative to the trace's cwd)
    assert "/oop_sim.py:" in cp.stdout                          # the long path kept whole


def test_export_progress_on_a_terminal_only(oop_trace, module_config_dir, tmp_path):
    out = tmp_path / "run.json"
    rc, tty, _, _ = run_tty(CMD + ["profile", str(oop_trace), "--format", "chrome", "-o", str(out)],
                            env=_env(module_config_dir), stdout_tty=False, columns=100)
    assert rc == 0, tty
    assert "exporting to chrome" in tty and "%" in tty and "eta" in tty, repr(tty)
    assert "chrome export written" in strip_ansi(tty)
    # piped: the same command draws nothing but its one line
    cp = retracer("profile", str(oop_trace), "--format", "chrome", "-o", str(out), env=_env(module_config_dir))
    assert cp.returncode == 0, show(cp)
    assert "exporting" not in cp.stderr and "\r" not in cp.stderr and "\x1b[" not in cp.stderr
    assert cp.stderr.count("\n") == 1, cp.stderr


def test_replay_progress_and_table(tmp_path, workloads):
    env = _env(os.environ["RETRACER_CONFIG_DIR"])
    trace("fib.trace", str(workloads / "calls_fib.py"), "12", cwd=tmp_path, env=env)
    rc, tty, _, _ = run_tty(CMD + ["replay", "fib.trace"], cwd=tmp_path, env=env, columns=80)
    assert rc == 0, tty
    plain = strip_ansi(tty)
    assert "replaying" in plain and re.search(r"\d+/\d+", plain), repr(tty[-800:])  # counts
    assert "eta" in plain
    lines = plain.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("replayed function"))
    end = next(i for i, ln in enumerate(lines) if ln.startswith("total"))
    table = lines[head:end + 1]
    assert len(table) > 2 and all(len(ln) <= 80 for ln in table), "\n".join(table)
    assert all(re.search(r"calls_fib\.py:\d+\)", ln) for ln in table[1:-1]), "\n".join(table)
    cp = retracer("replay", "fib.trace", cwd=tmp_path, env=env)
    assert cp.returncode == 0, show(cp)
    assert "replaying" not in cp.stderr and "\r" not in cp.stderr and "\x1b[" not in cp.stderr


def test_compare_table_cuts_names_from_the_left():
    """compare's tables (run in-process: a compare run takes minutes) fit a width."""
    from retracer.compare import report

    rows = [["pkg.module.VeryLongClassName.some_method_name", "pkg/module.py:120", "1.0 ms"],
            ["short", "a.py:1", "2.0 ms"]]
    report._WIDTH[0] = 50
    try:
        lines = report._table(["function", "file:line", "time"], rows, (2,))
    finally:
        report._WIDTH[0] = None
    assert all(len(ln) <= 50 for ln in lines), lines
    assert "pkg/module.py:120" in lines[1] and "some_method_name" in lines[1]
    assert lines[1].lstrip().startswith(("…", "..."))
    assert report._table(["function", "file:line", "time"], rows, (2,))[1].startswith("pkg.module")


def test_replay_mismatch_in_colour_on_a_terminal_only(tmp_path):
    env = _env(os.environ["RETRACER_CONFIG_DIR"])
    app = tmp_path / "app.py"
    main = '\nif __name__ == "__main__":\n    for i in range(3):\n        double(i)\n'
    app.write_text("def double(x):\n    return x * 2\n" + main)
    trace("app.trace", "app.py", cwd=tmp_path, env=env)
    app.write_text("def double(x):\n    return x * 3\n" + main)
    rc, tty, _, _ = run_tty(CMD + ["replay", "app.trace"], cwd=tmp_path, env=env, columns=100)
    assert rc == 1, tty
    assert re.search(r"\x1b\[[0-9;]*m\s*MISMATCH", tty), repr(tty[:600])
    cp = retracer("replay", "app.trace", cwd=tmp_path, env=env)
    assert cp.returncode == 1 and "MISMATCH double" in cp.stdout and "\x1b[" not in cp.stdout, show(cp)
    rc, tty, _, _ = run_tty(CMD + ["replay", "app.trace"], cwd=tmp_path, env=_env(env["RETRACER_CONFIG_DIR"],
                                                                                   NO_COLOR="1"), columns=100)
    assert "MISMATCH double" in strip_ansi(tty) and not re.search(r"\x1b\[[0-9;]*m\s*MISMATCH", tty)


@pytest.mark.parametrize("columns", [80, 200])
def test_usage_fits_the_terminal(columns):
    rc, tty, _, _ = run_tty(CMD + ["--help"], env=_env(os.environ["RETRACER_CONFIG_DIR"]), columns=columns)
    assert rc == 0, tty
    lines = strip_ansi(tty).splitlines()
    assert all(len(ln) <= columns for ln in lines), "\n".join(ln for ln in lines if len(ln) > columns)
    assert any(ln.startswith("  diff A.trace B.trace") for ln in lines) and "python -m retracer help" in tty
