"""`retracer timeit` and retracer.timing: warm-up, auto-ranging, statistics, errors.

Counts are exact (how often the statement and the setup ran); auto-ranging is
checked with an injected clock, so nothing here depends on the machine's speed."""
from __future__ import annotations

import json

import pytest

from retracer.analysis import measure as timing

from helpers import one_line_error, retracer


class FakeClock:
    """Time moves only when the statement calls tick()."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def tick(self, seconds):
        self.now += seconds


def test_runs_setup_and_statement_exactly_as_often_as_said():
    ns = {"runs": [], "setups": []}
    res = timing.run("runs.append(1)", "setups.append(1)", number=10, repeat=3, globals=ns)
    assert len(ns["runs"]) == 1 + 3 * 10  # one warm-up run, then 3 repeats of 10 loops
    assert len(ns["setups"]) == 1 + 3     # setup before the warm-up and before every repeat
    assert res.number == 10 and res.repeat == 3 and not res.autoranged
    assert len(res.per_loop) == 3 and all(t >= 0 for t in res.per_loop)


def test_autorange_picks_the_first_loop_count_reaching_the_target():
    clock = FakeClock()
    ns = {"clock": clock, "runs": []}
    res = timing.run("clock.tick(0.001); runs.append(1)", number=0, repeat=5, globals=ns, clock=clock)
    # 1 ms per loop: 1, 2, 5, 10, 20, 50, 100 loops are too short, 200 loops take 0.2 s
    assert res.autoranged and res.number == 200
    assert len(ns["runs"]) == 1 + (1 + 2 + 5 + 10 + 20 + 50 + 100 + 200) + 5 * 200
    assert res.per_loop == pytest.approx([0.001] * 5)
    assert res.min == pytest.approx(0.001) and res.iqr == pytest.approx(0.0)
    assert res.warmup_s == pytest.approx(0.001)


def test_autorange_stops_at_once_for_a_slow_statement():
    clock = FakeClock()
    res = timing.run("clock.tick(0.5)", repeat=2, globals={"clock": clock}, clock=clock)
    assert res.number == 1 and res.per_loop == pytest.approx([0.5, 0.5])


def test_statistics_min_median_quartiles():
    res = timing.TimeitResult(stmt="pass", setup="pass", number=1, per_loop=[7, 1, 6, 2, 5, 3, 4],
                              autoranged=False, warmup_s=0.0)
    assert (res.min, res.median, res.max) == (1, 4, 7)
    assert res.quartiles == [2.5, 4, 5.5] and res.iqr == 3
    data = res.to_json()
    assert (data["min_s"], data["median_s"], data["q1_s"], data["q3_s"], data["iqr_s"]) == (1, 4, 2.5, 5.5, 3)
    assert data["stdev_s"] == pytest.approx(2.160246899)
    one = timing.TimeitResult(stmt="pass", setup="pass", number=1, per_loop=[2.0], autoranged=False,
                              warmup_s=0.0)
    assert one.iqr == 0 and one.stdev == 0


@pytest.mark.parametrize("seconds, unit, text", [
    (1.5e-9, None, "1.50 ns"), (2.5e-6, None, "2.50 us"), (0.0123, None, "12.3 ms"), (1.5, None, "1.50 s"),
    (123.4e-9, None, "123 ns"), (2.5e-6, "ns", "2500 ns"), (2.5e-6, "msec", "0.00250 ms"), (0.0, None, "0 ns"),
    (1234.5, None, "1234 s"),
])
def test_format_time(seconds, unit, text):
    assert timing.format_time(seconds, unit) == text


def test_format_result_says_what_it_reports():
    res = timing.TimeitResult(stmt="pass", setup="pass", number=1000, per_loop=[1e-6, 1.1e-6, 5e-6],
                              autoranged=True, warmup_s=0.0)
    text = timing.format_result(res)
    assert text.splitlines()[0] == ("min 1.00 us, median 1.10 us, IQR 2.00 us (Q1 1.05 us, Q3 3.05 us) per loop")
    assert "3 repeats of 1,000 loops (auto-ranged to >= 0.2 s per repeat; after 1 warm-up run)" in text
    assert "warning: the slowest repeat took 5.00 us per loop, 5.0 times the fastest" in text


@pytest.mark.parametrize("stmt, setup, needles", [
    ("x = = 1", "pass", ["SyntaxError in the statement", "line 1: 'x = = 1'"]),
    ("pass", "import os\nx = (", ["SyntaxError in the setup"]),
    ("return 1", "pass", ["SyntaxError in the statement", "'return' outside function"]),
    ("a = 1\nundefined_name", "pass", ["the statement raised NameError", "undefined_name",
                                       "line 2: 'undefined_name'"]),
    ("pass", "import os\nimport no_such_module_x", ["the setup raised ModuleNotFoundError",
                                                    "line 2: 'import no_such_module_x'"]),
    ("int('x')", "a = 1\nb = 2", ["the statement raised ValueError", "line 1"]),
])
def test_bad_statements_are_one_line_errors(stmt, setup, needles):
    with pytest.raises(timing.StatementError) as info:
        timing.run(stmt, setup, number=1, repeat=1)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("retracer: ")
    for n in needles:
        assert n in msg, msg


def test_statement_failing_only_later_is_reported_too():
    ns = {"n": [0]}
    with pytest.raises(timing.StatementError, match="the statement raised RuntimeError: third"):
        timing.run("n[0] += 1\nif n[0] == 3: raise RuntimeError('third')", number=5, repeat=3, globals=ns)


# ------------------------------------------------------------------------ CLI


def test_cli_counts_and_json(tmp_path):
    log = tmp_path / "log"
    p = retracer("timeit", "-n", "5", "-r", "3", "--json",
                 "-s", "import os", "-s", f"fd = os.open({str(log)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)",
                 "os.write(fd, b'x')", cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert (data["loops"], data["repeat"], data["autoranged"]) == (5, 3, False)
    assert len(data["per_loop_s"]) == 3 and data["min_s"] <= data["median_s"] <= data["max_s"]
    assert data["min_s"] == min(data["per_loop_s"])
    assert data["setup"] == "import os\n" + f"fd = os.open({str(log)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)"
    assert log.read_bytes() == b"x" * (1 + 3 * 5)


def test_cli_table_and_statement_lines(tmp_path):
    p = retracer("timeit", "-n", "3", "-r", "2", "a = [1, 2]", "b = a * 2", cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    first, second = p.stdout.splitlines()[:2]
    assert first.startswith("min ") and " median " in first and " IQR " in first and first.endswith("per loop")
    assert second == "2 repeats of 3 loops (loops as asked; after 1 warm-up run)"


def test_cli_imports_from_the_current_directory(tmp_path):
    (tmp_path / "mymod_for_timeit.py").write_text("def f():\n    return 1\n")
    p = retracer("timeit", "-n", "2", "-r", "1", "-s", "import mymod_for_timeit", "mymod_for_timeit.f()",
                 cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("args, needles", [
    (["x = = 1"], ["SyntaxError in the statement"]),
    (["-s", "import no_such_module_y", "pass"], ["the setup raised ModuleNotFoundError"]),
    (["1/0"], ["the statement raised ZeroDivisionError"]),
    (["-n", "0", "pass"], ["-n/--number", "1 or more"]),
    (["-r", "0", "pass"], ["-r/--repeat"]),
    (["-n", "many", "pass"], ["timeit", "-n/--number", "invalid int"]),
    (["--bogus"], ["unrecognized arguments: --bogus"]),
    (["-u", "weeks", "pass"], ["-u/--unit"]),
])
def test_cli_errors_are_one_line(tmp_path, args, needles):
    one_line_error(retracer("timeit", *args, cwd=tmp_path), *needles)


def test_help_lists_timeit():
    p = retracer("--help")
    assert "timeit" in p.stdout
    h = retracer("timeit", "--help")
    assert h.returncode == 0 and "IQR" in h.stdout and "--setup" in h.stdout
