"""`retracer diff`: a workload before and after one function was made slower."""
from __future__ import annotations

import json
import os
import re

import pytest

from helpers import one_line_error, retracer, show, trace


@pytest.fixture(scope="module")
def before_after(tmp_path_factory, workloads, module_config_dir):
    d = tmp_path_factory.mktemp("diff")
    src = (workloads / "oop_sim.py").read_text()
    slow = src.replace("    def scale(self, k):\n        return Vec(self.x * k, self.y * k)",
                       "    def scale(self, k):\n        s = 0\n        for i in range(3000):\n            s += i\n"
                       "        return Vec(self.x * k, self.y * k)")
    assert slow != src, "oop_sim.py changed: update the test's edit"
    (d / "after").mkdir()
    (d / "after" / "oop_sim.py").write_text(slow)
    env = dict(os.environ, RETRACER_CONFIG_DIR=str(module_config_dir))
    trace("a.trace", str(workloads / "oop_sim.py"), "20", "20", cwd=d, opts=["--no-capture"], env=env)
    trace("b.trace", "after/oop_sim.py", "20", "20", cwd=d, opts=["--no-capture"], env=env)
    return d, env


def test_diff_table_marks_the_slower_function(before_after):
    d, env = before_after
    cp = retracer("diff", "a.trace", "b.trace", cwd=d, env=env)
    assert cp.returncode == 0, show(cp)
    rows = [ln for ln in cp.stdout.splitlines() if "  (" in ln and re.search(r"\(\S*oop_sim\.py:\d+\)$", ln)]
    assert rows, cp.stdout
    first = rows[0]
    assert "Vec.scale" in first and "*SLOWER" in first, cp.stdout   # the most changed, marked
    assert "not a statistical test" in cp.stdout
    assert "\x1b[" not in cp.stdout


def test_diff_json(before_after):
    d, env = before_after
    cp = retracer("diff", "a.trace", "b.trace", "--json", cwd=d, env=env)
    assert cp.returncode == 0, show(cp)
    doc = json.loads(cp.stdout)
    assert doc["retracer_diff"] == 1 and doc["significance"]["statistical_test"] is False
    scale = next(f for f in doc["functions"] if f["name"] == "Vec.scale")
    assert scale["own_verdict"] == "slower" and scale["significant"] is True
    assert scale["b"]["own_ns"] > scale["a"]["own_ns"] and scale["own_delta_ns"] > 0
    assert scale["a"]["calls"] == scale["b"]["calls"] == 800   # 20 particles x 20 steps x 2 per step
    assert doc["tree"]["v"] > 0 and doc["tree"]["c"]
    # same trace twice: nothing changed, nothing significant
    cp = retracer("diff", "a.trace", "a.trace", "--json", cwd=d, env=env)
    doc = json.loads(cp.stdout)
    assert not any(f["significant"] for f in doc["functions"]), doc


def test_diff_page(before_after):
    d, env = before_after
    cp = retracer("diff", "a.trace", "b.trace", "-o", "diff.html", cwd=d, env=env)
    assert cp.returncode == 0, show(cp)
    html = (d / "diff.html").read_text()
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"?https?:", html)   # nothing loaded
    data = json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', html, re.S).group(1))
    names = []

    def walk(n):
        names.append(n["n"])
        for c in n["c"]:
            walk(c)
    walk(data["tree"])
    assert any(n.startswith("Vec.scale (oop_sim.py)") for n in names), names[:20]
    assert any(f["name"] == "Vec.scale" and f["own_verdict"] == "slower" for f in data["functions"])


def test_diff_errors_are_one_line(before_after, tmp_path):
    d, env = before_after
    one_line_error(retracer("diff", "a.trace", str(tmp_path / "missing.trace"), cwd=d, env=env), "does not exist")
    one_line_error(retracer("diff", "a.trace", "b.trace", "-o", "x.txt", cwd=d, env=env), ".html")
