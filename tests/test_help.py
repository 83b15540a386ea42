"""`python -m retracer help TOPIC`, the pointers in --help, gzip exports, the
configured output's directory."""
from __future__ import annotations

import gzip
import json
import sys

from helpers import ROOT, WORKLOAD_ARGS, one_line_error, retracer, show, trace


def test_help_lists_and_prints_topics():
    cp = retracer("help", check=True)
    for topic in ("diff", "sample", "exports", "configuration", "trace-format", "terminal"):
        assert f"  {topic} " in cp.stdout, cp.stdout
    cp = retracer("help", "diff", check=True)
    assert cp.stdout.startswith("### What changed between two runs") and "not a statistical test" in cp.stdout
    cp = retracer("help", "trace-format", check=True)
    assert "CREATE TABLE" in cp.stdout
    one_line_error(retracer("help", "no-such-topic-here"), "no help topic")


def test_help_topics_are_in_sync_with_the_readme(tmp_path):
    """src/retracer/docs is generated from README.md and docs/: regenerate with
    python scripts/sync_help.py."""
    sys.path.insert(0, str(ROOT / "src"))
    from retracer import helptopics

    docs = {n: (ROOT / "docs" / f"{n}.md").read_text(encoding="utf-8") for n in helptopics.REFERENCE}
    want = helptopics.build((ROOT / "README.md").read_text(encoding="utf-8"), docs)
    have = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "src" / "retracer" / "docs").iterdir()}
    stale = sorted(n for n in set(want) | set(have) if want.get(n) != have.get(n))
    assert not stale, f"help topics out of date: {stale}; run python scripts/sync_help.py"


def test_help_texts_point_to_topics_not_the_readme():
    from retracer.cli import COMMANDS

    for name in COMMANDS:
        cp = retracer(name, "--help")
        assert cp.returncode == 0, show(cp)
        assert "README" not in cp.stdout, f"retracer {name} --help:\n{cp.stdout}"
        assert "http://" not in cp.stdout and "https://" not in cp.stdout
    cp = retracer("--help")
    assert "python -m retracer help" in cp.stdout
    cp = retracer("diff", "--help")
    assert "python -m retracer help diff" in cp.stdout.replace("\n", " ").replace("  ", " ")


def test_chrome_gz_export(tmp_path, workloads):
    trace("fib.trace", str(workloads / "calls_fib.py"), *WORKLOAD_ARGS["calls_fib.py"], cwd=tmp_path,
          opts=["--no-capture"])
    cp = retracer("profile", "fib.trace", "--format", "chrome", "-o", "run.json.gz", cwd=tmp_path)
    assert cp.returncode == 0, show(cp)
    raw = (tmp_path / "run.json.gz").read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    doc = json.loads(gzip.decompress(raw))
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    assert any(e.get("ph") == "X" and str(e.get("name", "")).startswith("fib") for e in events)
    cp = retracer("profile", "fib.trace", "--format", "chrome", "-o", "run.json", cwd=tmp_path, check=True)
    assert json.loads((tmp_path / "run.json").read_text()) == doc   # the same export, compressed
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".raw")]


def test_configured_output_directory_is_created(tmp_path, workloads):
    """The README's example: [tool.retracer] output = "traces/run.trace"."""
    (tmp_path / "pyproject.toml").write_text('[tool.retracer]\noutput = "traces/run.trace"\n')
    (tmp_path / "app.py").write_text("def f(n):\n    return n * 2\n\nprint(f(21))\n")
    cp = retracer("trace", "-q", "app.py", cwd=tmp_path)
    assert cp.returncode == 0, show(cp)
    assert cp.stdout == "42\n"
    assert (tmp_path / "traces" / "run.trace").is_file(), show(cp)
    retracer("profile", "traces/run.trace", cwd=tmp_path, check=True)
