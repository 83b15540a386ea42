"""The exports of `retracer profile --format F -o FILE`, each loaded by a real consumer
(the Go pprof tool, pstats, JSON Schema validation against the published formats, an
XML parser for the flame graph) and checked against the trace's own numbers: the total
time equals the sum of the own times in func_stats, and the call count of every
function in scope equals its func_stats calls.  On the shared workloads, on a
5,000-frame recursion, and on names that need escaping.

The numbers are checked on every Python version (each records its traces with its own
hook). What only the consumers check -- the pprof tool reading the gzipped profile,
the chrome and speedscope files against their JSON Schemas -- tests the exporters' C
code, the same on every version: those tests are marked `once`.

The pprof tool is built by scripts/deps-pprof.sh into .venvs/bin/pprof (or set
RETRACER_PPROF to a pprof binary).  Without it the pprof tests fail; set
RETRACER_NO_PPROF=1 to skip them on a machine that cannot have it.
"""
from __future__ import annotations

import gzip
import json
import os
import pstats
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict

import pytest

from retracer.render.stream import FORMATS, export
from retracer.render.flamegraph import flamegraph_html, flamegraph_svg
from retracer.tracefile import FLAG_GENERATOR, FLAG_IN_SCOPE, TraceReader

from helpers import ROOT, WORKLOAD_ARGS, retracer as run_cli, run, trace

HERE = os.path.dirname(os.path.abspath(__file__))
PPROF = os.environ.get("RETRACER_PPROF") or os.path.join(ROOT, ".venvs", "bin", "pprof")
NO_PPROF = os.environ.get("RETRACER_NO_PPROF") == "1"
DEEP = 5000

DEEP_SRC = f"""\
import sys
sys.setrecursionlimit(20000)

def d(n):
    return 0 if n == 0 else d(n - 1) + 1

if __name__ == "__main__":
    print(d({DEEP - 1}))
"""

# Names that need escaping in JSON (quote, backslash, control characters) and
# non-ASCII, given to a real function through its code object; the file lives in a
# directory whose name needs escaping too.
WEIRD_NAME = 'we"ird\\name\n\t\x01\u00e9\u20ac'
WEIRD_SRC = f"""\
import types

def plain():
    return 1

code = plain.__code__.replace(co_name={WEIRD_NAME!r})
if hasattr(code, "co_qualname"):
    code = code.replace(co_qualname={WEIRD_NAME!r})
weird = types.FunctionType(code, globals())

if __name__ == "__main__":
    for _ in range(3):
        weird()
"""


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def traced(module_config_dir, workloads, tmp_path_factory):
    """traced(name) -> path of a trace of that workload (made once per module)."""
    made = {}
    base = tmp_path_factory.mktemp("traces")

    def get(name: str) -> str:
        if name not in made:
            d = base / name.replace(".py", "")
            d.mkdir()
            if name == "deep":
                script = d / "r.py"
                script.write_text(DEEP_SRC)
                args = [str(script)]
            elif name == "weird":
                sub = d / 'dir "q" \\ \u00e9'
                sub.mkdir()
                script = sub / "w.py"
                script.write_text(WEIRD_SRC)
                args = [str(script)]
            else:
                args = [str(workloads / name), *WORKLOAD_ARGS[name]]
            out = str(d / "out.trace")
            trace(out, *args, cwd=d, opts=["--no-capture"])
            made[name] = out
        return made[name]
    return get


# ------------------------------------------------------------- the truth

class Truth:
    """What the trace itself says: func_stats totals and calls."""

    def __init__(self, path: str) -> None:
        with TraceReader(path) as r:
            self.functions = dict(r.functions)
            self.stats = {s.fid: s for s in r.func_stats()}
            self.threads = list(r.threads)
            self.meta = dict(r.meta)
        assert self.meta["complete"] is True
        self.total_ns = sum(s.own_ns for s in self.stats.values())
        assert self.total_ns > 0
        names = Counter(f.qualname for f in self.functions.values())
        # functions whose every call is in the call stream, identified by a unique qualname
        self.scope_fids = [fid for fid, f in self.functions.items()
                           if (f.flags or 0) & FLAG_IN_SCOPE and fid in self.stats and names[f.qualname] == 1]
        assert self.scope_fids

    def calls_by_name(self, generators: bool = True) -> dict:
        return {self.functions[f].qualname: self.stats[f].calls for f in self.scope_fids
                if generators or not (self.functions[f].flags or 0) & FLAG_GENERATOR}

    def key(self, fid: int) -> tuple:
        f = self.functions[fid]
        return f.qualname, f.filename, f.firstlineno


# --------------------------------------------------------------- readers

def read_chrome(path: str):
    """(spans per thread as [name, start_ns, end_ns, args], thread names by tid)."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    spans = defaultdict(list)
    names = {}
    for ev in doc["traceEvents"]:
        if ev["ph"] == "X":
            ts, dur = round(ev["ts"] * 1000), round(ev["dur"] * 1000)
            assert abs(ev["ts"] * 1000 - ts) < 1e-3 and abs(ev["dur"] * 1000 - dur) < 1e-3  # at most 3 decimals
            spans[ev["tid"]].append([ev["name"], ts, ts + dur, ev.get("args", {})])
        elif ev["name"] == "thread_name":
            names[ev["tid"]] = ev["args"]["name"]
    return doc, spans, names


def chrome_roots_total(spans) -> int:
    """Sum of the durations of the outermost spans of each thread (nesting by time)."""
    total = 0
    for evs in spans.values():
        evs.sort(key=lambda s: (s[1], -(s[2] - s[1])))
        end = None
        for _, t0, t1, _ in evs:
            if end is None or t0 >= end:
                total += t1 - t0
                end = t1
            else:
                assert t1 <= end, "X events of one thread must nest"
    return total


def replay_speedscope(doc):
    """Check the O/C events nest and return (total root time, O events per frame name, max depth)."""
    frames = doc["shared"]["frames"]
    opens = Counter()
    total = 0
    max_depth = 0
    for prof in doc["profiles"]:
        stack = []
        last = prof["startValue"]
        for ev in prof["events"]:
            assert ev["at"] >= last
            last = ev["at"]
            if ev["type"] == "O":
                stack.append((ev["frame"], ev["at"]))
                max_depth = max(max_depth, len(stack))
                opens[frames[ev["frame"]]["name"]] += 1
            else:
                fr, t0 = stack.pop()
                assert fr == ev["frame"], "a C event closes the innermost open frame"
                if not stack:
                    total += ev["at"] - t0
        assert not stack
        assert last <= prof["endValue"]
    return total, opens, max_depth


def read_folded(path: str):
    """(sum of weights, number of lines, most frames on one line)."""
    total = lines = deepest = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            stack, _, weight = line.rstrip("\n").rpartition(" ")
            assert stack and weight.isdigit(), line[:200]
            total += int(weight)
            lines += 1
            deepest = max(deepest, stack.count(";") + 1)
    return total, lines, deepest


def pprof_bin() -> str:
    if NO_PPROF:
        pytest.skip("RETRACER_NO_PPROF=1: the pprof tool is not available here")
    if not os.access(PPROF, os.X_OK):
        pytest.fail(f"the pprof tool is missing at {PPROF}: run 'bash scripts/test.sh' (scripts/deps-pprof.sh "
                    f"builds it) or set RETRACER_PPROF; RETRACER_NO_PPROF=1 skips the pprof tests")
    return PPROF


def pprof_raw(path: str):
    """Samples [(calls, wall, [location ids leaf first])] and locations {id: (name, file, line)} as pprof reads them."""
    p = run([pprof_bin(), "-raw", path])
    assert p.returncode == 0, p.stderr
    samples, locs = [], {}
    section = None
    for line in p.stdout.splitlines():
        if line in ("Samples:", "Locations", "Mappings"):
            section = line
            continue
        if section == "Samples:":
            m = re.match(r"^\s+(\d+)\s+(\d+): ([\d ]+)$", line)
            if m:
                samples.append((int(m.group(1)), int(m.group(2)), [int(x) for x in m.group(3).split()]))
            else:
                assert line.startswith("calls/count wall/nanoseconds"), line
        elif section == "Locations":
            m = re.match(r"^\s+(\d+): 0x0 M=1 (.*) (\S*):(\d+) s=\d+", line)
            assert m, line
            locs[int(m.group(1))] = (m.group(2), m.group(3), int(m.group(4)))
    return p.stdout, samples, locs


# ------------------------------------------------------ per-format checks

SCHEMAS = {"chrome": "chrome-trace-event-schema.json", "speedscope": "speedscope-file-format-schema.json"}


def check_schema(path, fmt):
    """The file is what the format's published JSON Schema (tests/data/) allows."""
    import jsonschema
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    with open(os.path.join(HERE, "data", SCHEMAS[fmt]), encoding="utf-8") as f:
        jsonschema.validate(doc, json.load(f))


def check_chrome(path, truth: Truth):
    doc, spans, names = read_chrome(path)
    assert chrome_roots_total(spans) == truth.total_ns
    calls = Counter(s[0] for evs in spans.values() for s in evs if "start" not in s[3])
    for name, n in truth.calls_by_name().items():
        assert calls[name] == n, name
    # every thread of the trace, by name
    assert sorted(names.values()) == sorted(t.name for t in truth.threads)
    return doc


def check_speedscope(path, truth: Truth):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    assert all(p["type"] == "evented" and p["unit"] == "nanoseconds" for p in doc["profiles"])
    assert len(doc["profiles"]) == len(truth.threads)
    total, opens, _ = replay_speedscope(doc)
    assert total == truth.total_ns
    for name, n in truth.calls_by_name(generators=False).items():  # a generator opens once per slice
        assert opens[name] == n, name
    # frames are shared: one per function
    assert len({(fr["name"], fr.get("file"), fr.get("line")) for fr in doc["shared"]["frames"]}) == \
        len(doc["shared"]["frames"])


def check_folded(path, truth: Truth):
    total, lines, _ = read_folded(path)
    assert total == truth.total_ns
    assert lines > 0


def check_pprof(path, truth: Truth):
    with open(path, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"  # gzipped
    _, samples, locs = pprof_raw(path)
    assert sum(s[1] for s in samples) == truth.total_ns
    assert sum(s[0] for s in samples) == truth.meta["stream_calls"]
    by_key = Counter()
    for calls, _, ids in samples:
        name, file, line = locs[ids[0]]
        by_key[(name, file, line)] += calls
    for fid in truth.scope_fids:
        name, file, line = truth.key(fid)
        assert by_key[(name, file, line)] == truth.stats[fid].calls, name
    # one sample per distinct stack
    assert len({tuple(ids) for _, _, ids in samples}) == len(samples)


def check_json(path, truth: Truth):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    assert doc["format"] == "retracer-profile" and doc["version"] == 1 and doc["unit"] == "ns"
    fns = {f["fid"]: f for f in doc["functions"]}
    calls = Counter()
    total = 0
    assert [t["thread"] for t in doc["threads"]] == [t.thread_idx for t in truth.threads]
    for th in doc["threads"]:
        nodes = th["nodes"]
        for i, (parent, fid, c, tot, own) in enumerate(nodes):
            assert -1 <= parent < i and fid in fns and 0 <= own <= tot
            calls[fid] += c
        # a node's total is its own time plus its children's totals
        child_sum = [0] * len(nodes)
        for parent, _, _, tot, _ in nodes:
            if parent >= 0:
                child_sum[parent] += tot
        assert all(n[3] == n[4] + child_sum[i] for i, n in enumerate(nodes))
        assert th["total_ns"] == sum(n[3] for n in nodes if n[0] < 0)
        assert th["calls"] == sum(n[2] for n in nodes)
        total += th["total_ns"]
    assert total == truth.total_ns
    for fid in truth.scope_fids:
        assert calls[fid] == truth.stats[fid].calls
        f = truth.functions[fid]
        assert (fns[fid]["name"], fns[fid]["file"], fns[fid]["line"]) == (f.qualname, f.filename, f.firstlineno)
    return doc


CHECKS = {"chrome": check_chrome, "speedscope": check_speedscope, "folded": check_folded,
          "pprof": check_pprof, "json": check_json}


# ------------------------------------------------------------------ tests

def once_for(*names):
    """The formats as parameters, those in `names` marked `once` (their checks run the
    pprof tool on the exporter's output: the same C code on every Python version)."""
    return [pytest.param(f, marks=pytest.mark.once) if f in names else f for f in FORMATS]


@pytest.mark.parametrize("workload", sorted(WORKLOAD_ARGS))
@pytest.mark.parametrize("fmt", once_for("pprof"))
def test_export_agrees_with_the_trace(traced, tmp_path, workload, fmt):
    path = traced(workload)
    out = str(tmp_path / f"out.{fmt}")
    stats = export(path, fmt, out)
    assert stats["bytes"] == os.path.getsize(out) > 0
    assert stats["anomalies"] == 0
    CHECKS[fmt](out, Truth(path))


@pytest.mark.once
@pytest.mark.parametrize("workload", sorted(WORKLOAD_ARGS))
@pytest.mark.parametrize("fmt", sorted(SCHEMAS))
def test_export_matches_its_published_schema(traced, tmp_path, workload, fmt):
    """`retracer profile TRACE --format chrome|speedscope -o FILE` writes what the
    format's JSON Schema allows (the exporters' JSON writer: the same C code on every
    Python version; the numbers in the files are checked on each, above)."""
    out = str(tmp_path / f"out.{fmt}")
    p = run_cli("profile", traced(workload), "--format", fmt, "-o", out)
    assert p.returncode == 0, p.stderr
    check_schema(out, fmt)


@pytest.mark.parametrize("fmt", once_for("pprof") + ["flamegraph", "pstats"])
def test_cli_writes_each_format(traced, tmp_path, fmt):
    path = traced("calls_fib.py")
    out = str(tmp_path / ("flame.html" if fmt == "flamegraph" else f"fib.{fmt}"))
    p = run_cli("profile", path, "--format", fmt, "-o", out)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    assert len(p.stderr.splitlines()) == 1 and out in p.stderr
    assert os.listdir(tmp_path) == [os.path.basename(out)]  # no temporary file left
    truth = Truth(path)
    if fmt == "pstats":
        st = pstats.Stats(out)
        assert sum(v[1] for v in st.stats.values()) == sum(s.calls for s in truth.stats.values())
    elif fmt == "flamegraph":
        assert "RtFlame.mount" in open(out, encoding="utf-8").read()
    else:
        CHECKS[fmt](out, truth)


@pytest.mark.once
def test_pprof_top_lists_the_hot_function(traced, tmp_path):
    """`pprof -top` (what users run) works on the file and ranks fib first with its exact call count."""
    path = traced("calls_fib.py")
    out = str(tmp_path / "fib.pb.gz")
    export(path, "pprof", out)
    p = run([pprof_bin(), "-top", "-sample_index=calls", out])
    assert p.returncode == 0, p.stderr
    rows = [l.split() for l in p.stdout.splitlines() if l.strip().endswith(" fib")]
    assert rows and int(rows[0][0]) == 8361  # fib(18) makes 8,361 calls
    p = run([pprof_bin(), "-top", "-unit=ns", out])
    assert p.returncode == 0, p.stderr
    m = re.search(r"of (\d+)ns total", p.stdout)
    assert m and int(m.group(1)) == Truth(path).total_ns


def test_chrome_generator_slices_and_fractional_microseconds(traced, tmp_path):
    path = traced("text_pipeline.py")
    out = str(tmp_path / "t.json")
    export(path, "chrome", out)
    doc, spans, _ = read_chrome(out)
    xs = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert any(isinstance(e["ts"], float) and e["ts"] != int(e["ts"]) for e in xs)  # ns precision kept
    truth = Truth(path)
    gens = {f.qualname for fid, f in truth.functions.items() if (f.flags or 0) & FLAG_GENERATOR and fid in truth.scope_fids}
    assert gens
    resumed = Counter(e["name"] for e in xs if e.get("args", {}).get("start") == "resume")
    assert any(resumed[g] > 0 for g in gens)  # a generator's later slices are their own X events


def test_threads_each_get_their_own_timeline(traced, tmp_path):
    path = traced("threads_work.py")
    truth = Truth(path)
    assert len(truth.threads) >= 2
    out = str(tmp_path / "t.json")
    export(path, "chrome", out)
    _, spans, names = read_chrome(out)
    assert len(names) == len(truth.threads) and len(set(names)) == len(names)
    assert all(spans[tid] for tid in names)


def test_deep_recursion_every_format(traced, tmp_path):
    """A 5,000-frame recursion: every exporter handles it (no recursion anywhere)."""
    path = traced("deep")
    truth = Truth(path)
    d_fid = next(fid for fid, f in truth.functions.items() if f.qualname == "d")
    assert truth.stats[d_fid].calls == DEEP
    for fmt in FORMATS:
        out = str(tmp_path / f"deep.{fmt}")
        stats = export(path, fmt, out)
        assert stats["max_depth"] >= DEEP + 1, fmt  # <module> -> d x 5000
        if fmt == "chrome":
            _, spans, _ = read_chrome(out)
            assert chrome_roots_total(spans) == truth.total_ns
            assert sum(1 for evs in spans.values() for s in evs if s[0] == "d") == DEEP
        elif fmt == "speedscope":
            with open(out, encoding="utf-8") as f:
                total, opens, depth = replay_speedscope(json.load(f))
            assert total == truth.total_ns and opens["d"] == DEEP and depth >= DEEP + 1
        elif fmt == "folded":
            total, lines, deepest = read_folded(out)
            assert total == truth.total_ns and deepest >= DEEP + 1
        elif fmt == "pprof":  # what the pprof tool reads from it: test_deep_recursion_pprof
            with open(out, "rb") as f:
                assert gzip.decompress(f.read())
        elif fmt == "json":
            doc = check_json(out, truth)
            nodes = doc["threads"][0]["nodes"]
            depth = [0] * len(nodes)
            for i, n in enumerate(nodes):
                depth[i] = 1 if n[0] < 0 else depth[n[0]] + 1
            assert max(depth) >= DEEP + 1
        os.unlink(out)
    data = flame_page_data(flamegraph_html(path))
    assert data["total"] == truth.total_ns
    depth = []
    for n in data["nodes"]:
        depth.append(1 if n[0] < 0 else depth[n[0]] + 1)
    assert max(depth) > DEEP // 2  # the narrow innermost frames may be left out


@pytest.mark.once
def test_deep_recursion_pprof(traced, tmp_path):
    """The 5,000-frame recursion in the pprof export, as the pprof tool reads it."""
    path = traced("deep")
    truth = Truth(path)
    out = str(tmp_path / "deep.pprof")
    export(path, "pprof", out)
    p = run([pprof_bin(), "-top", "-unit=ns", "-sample_index=wall", out])
    assert p.returncode == 0, p.stderr
    m = re.search(r"of (\d+)ns total", p.stdout)
    assert m and int(m.group(1)) == truth.total_ns
    p = run([pprof_bin(), "-top", "-sample_index=calls", out])
    assert re.search(rf"^\s+{DEEP}\s.*\sd$", p.stdout, re.M), p.stdout


def test_names_needing_escapes_round_trip(traced, tmp_path):
    """Quotes, backslashes, control characters and non-ASCII in function and file
    names: every JSON export parses and gives the names back exactly."""
    path = traced("weird")
    truth = Truth(path)
    fid = next(fid for fid, f in truth.functions.items() if f.name == WEIRD_NAME)
    fn = truth.functions[fid]
    assert truth.stats[fid].calls == 3
    for fmt in ("chrome", "speedscope", "json"):
        out = str(tmp_path / f"w.{fmt}")
        export(path, fmt, out)
        with open(out, "rb") as f:
            raw = f.read()
        doc = json.loads(raw.decode("utf-8"))  # strict UTF-8, valid JSON
        if fmt == "chrome":
            assert sum(1 for e in doc["traceEvents"] if e.get("name") == fn.qualname) == 3
        elif fmt == "speedscope":
            assert {"name": fn.qualname, "file": fn.filename, "line": fn.firstlineno} in doc["shared"]["frames"]
        else:
            assert {"fid": fid, "name": fn.qualname, "system_name": f"__main__.{fn.qualname}", "file": fn.filename,
                    "line": fn.firstlineno, "kind": "py"} in doc["functions"]
    out = str(tmp_path / "w.folded")
    export(path, "folded", out)
    text = open(out, encoding="utf-8").read()
    assert all(len(l.rpartition(" ")[0]) and l.rpartition(" ")[2].isdigit() for l in text.splitlines())
    assert 'we"ird\\name \t\x01' in text  # the line break became a space: one stack per line
    html = flamegraph_html(path)
    assert WEIRD_NAME in [f[0] for f in flame_page_data(html)["functions"]]  # the data is JSON, names exact
    svg = flamegraph_svg(path)
    ET.fromstring(svg.encode("utf-8"))  # well-formed: names are escaped
    assert "we&quot;ird\\name" in svg


def flame_page_data(html: str) -> dict:
    """The data the flame graph page's script is given."""
    return json.loads(re.search(r'<script type="application/json" id="rtf-data">(.*?)</script>', html, re.S).group(1))


def test_flamegraph_page_is_self_contained(traced, tmp_path):
    path = traced("calls_fib.py")
    truth = Truth(path)
    html = flamegraph_html(path)
    assert html.startswith("<!DOCTYPE html>")
    # nothing is loaded from anywhere: no src/href attributes, no URLs, a CSP that blocks the network
    assert not re.search(r"\b(src|href)\s*=", html)
    assert re.findall(r"https?://[^\s\"'<>]+", html) == []
    assert "default-src 'none'" in html
    data = flame_page_data(html)
    assert data["total"] == truth.total_ns
    main_fn = next(f for f in truth.functions.values() if f.qualname == "main")
    labels = [f[1] for f in data["functions"]]
    assert any(re.fullmatch(rf"main \(.*{re.escape(os.path.basename(main_fn.filename))}:{main_fn.firstlineno}\)", l)
               for l in labels), labels
    # one renderer: the view page's (flame.js)
    assert "RtFlame.mount" in html and "<h1" not in html


def test_flamegraph_svg_output(traced, tmp_path):
    path = traced("oop_sim.py")
    out = str(tmp_path / "flame.svg")
    p = run_cli("profile", path, "--format", "flamegraph", "-o", out)
    assert p.returncode == 0, p.stderr
    root = ET.parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    ns = "{http://www.w3.org/2000/svg}"
    assert any(g.get("data-label") == "Particle.step" for g in root.iter(ns + "g"))
    assert root.find(ns + "script") is not None


# ------------------------------------------------------------------ errors

def test_output_file_is_required(traced):
    path = traced("calls_fib.py")
    for fmt in ("chrome", "pprof", "flamegraph"):
        p = run_cli("profile", path, "--format", fmt)
        assert p.returncode == 2
        assert p.stderr.count("\n") == 1 and p.stderr.startswith(f"retracer: --format {fmt} writes a file: add -o")


def test_bad_trace_is_one_line(tmp_path):
    bad = tmp_path / "bad.trace"
    bad.write_text("not a trace")
    out = tmp_path / "out.json"
    p = run_cli("profile", str(bad), "--format", "chrome", "-o", str(out))
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "is not a retracer trace" in p.stderr and "Traceback" not in p.stderr
    assert not out.exists()
    p = run_cli("profile", str(tmp_path / "missing.trace"), "--format", "json", "-o", str(out))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "does not exist" in p.stderr


def test_unwritable_output_is_one_line(traced, tmp_path):
    path = traced("calls_fib.py")
    p = run_cli("profile", path, "--format", "folded", "-o", str(tmp_path / "no" / "such" / "dir.folded"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "does not exist" in p.stderr
    p = run_cli("profile", path, "--format", "json", "-o", str(tmp_path))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "is a directory" in p.stderr


def test_corrupt_stream_leaves_no_half_written_file(traced, tmp_path):
    """A chunk the decoder refuses: one line, exit 2, the previous output kept, no temporary file."""
    import shutil
    import sqlite3
    import zlib
    src = traced("calls_fib.py")
    bad = str(tmp_path / "bad.trace")
    shutil.copyfile(src, bad)
    conn = sqlite3.connect(bad)
    seq, codec, data = conn.execute(
        "SELECT seq, codec, data FROM chunks WHERE thread_idx = 0 ORDER BY seq DESC").fetchone()
    data = zlib.decompress(data) if codec == "zlib" else bytes(data)  # the tracer compresses chunks
    data += b"\x80"  # a varint that never ends
    conn.execute("UPDATE chunks SET data = ?, raw_size = ?, codec = 'raw' WHERE thread_idx = 0 AND seq = ?",
                 (data, len(data), seq))
    conn.commit()
    conn.close()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for fmt in FORMATS:
        out = out_dir / f"x.{fmt}"
        out.write_text("previous")
        p = run_cli("profile", bad, "--trust", "--format", fmt, "-o", str(out))
        assert p.returncode == 2, (fmt, p.stderr)
        err = "".join(ln for ln in p.stderr.splitlines(True) if not ln.startswith("retracer: warning: "))
        assert err.count("\n") == 1 and "is truncated or corrupt" in err and "malformed" in err
        assert out.read_text() == "previous"
    assert sorted(os.listdir(out_dir)) == sorted(f"x.{fmt}" for fmt in FORMATS)


def test_export_api_refuses_unknown_format(traced, tmp_path):
    from retracer.errors import RetracerError
    with pytest.raises(RetracerError, match="unknown export format 'svg'"):
        export(traced("calls_fib.py"), "svg", str(tmp_path / "x"))


def test_binding_reports_output_errors(tmp_path):
    """The binding turns the C exporter's errors into Python exceptions."""
    from retracer import _export

    def failing(_data):
        raise OSError(28, "No space left on device")
    ex = _export.Exporter("chrome", failing)
    ex.add_function(0, "f", None, "/f.py", 1, None, "py")
    ex.thread_begin(0, 1, "Main")
    ex.feed(bytes([5, 0, 10, (1 << 3) | 1]))
    with pytest.raises(OSError, match="No space left"):
        ex.finish()
    ex = _export.Exporter("json", lambda b: None)
    with pytest.raises(RuntimeError, match="outside a thread"):
        ex.feed(b"\x05")
    ex = _export.Exporter("folded", lambda b: None)
    ex.thread_begin(0, 1, None)
    with pytest.raises(ValueError, match="malformed call-stream chunk"):
        ex.feed(bytes([5, 1 << 3, 0x80]))
    with pytest.raises(ValueError, match="unknown export format"):
        _export.Exporter("svg", lambda b: None)
    gz = []
    ex = _export.Exporter("pprof", gz.append)
    ex.finish()
    assert gzip.decompress(b"".join(gz))  # a valid gzip stream even when empty
