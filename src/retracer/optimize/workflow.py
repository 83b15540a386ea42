"""`retracer optimize`, start to end: :func:`run_optimize` returns the report
(the structure :mod:`.report` draws and ``--json`` prints).

1. **Trace** the program (``retracer trace`` in a subprocess: the program's
   output is its own), or load the trace of ``--replay-test``.
2. **Rank** its functions by possible saving (:mod:`retracer.analysis.ranking`)
   and keep those of the project with replayable calls.
3. **Copy** the project twice into a private temporary directory (git
   worktrees of a snapshot of the working tree, uncommitted changes included,
   as ``compare`` does; a plain copy outside git): ``original`` and
   ``candidate``. The user's files are not touched until the end.
4. **Baseline**: replay every recorded call of the targets and of their callers
   in scope on the original copy (:mod:`.verifychild`); only the calls that
   reproduce their recording there (deterministic, replayable) are the gate's.
   A target with none is left out.
5. For each target and each **candidate** (``--candidates DIR``, ``--from-ref``,
   ``--generator``, the built-in rewrites of :mod:`.rewrites`): put it in place
   in the candidate copy; **verify** every gate call of the function and of its
   callers, and the project's unit tests that name the function (under
   ``tests-root``; when they pass on the original); **time** it against the
   original on the recorded inputs with compare's interleaved rounds
   (:mod:`retracer.compare.rounds`, :class:`retracer.compare.bench.ReplayBench`)
   and statistics. Accepted: identical on every gate call and faster with the
   95% interval's lower bound above the noise floor. The fastest accepted wins.
6. **Together**: the winners are put in place one after the other, each
   re-verified with all the previous ones (one that breaks with the others is
   dropped), then the **end-to-end** run (the traced command, untraced) is
   timed, original against optimized, with compare's rounds.
7. **Apply**: a local branch ``retracer/optimize-...`` with one commit per
   function (default), pushed with a pull request when ``gh`` is installed and
   logged in; or with ``--no-pr`` the files of the working tree rewritten.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from .._version import VERSION
from ..analysis import stats
from ..errors import RetracerError
from ..compare.bench import BenchmarkFailed, CommandBench, ReplayBench, RoundTimeout, run_child
from ..compare.git import Repo, WorktreeSet, _git_env
from ..compare.rounds import RoundsOptions, run_rounds
from ..compare.sides import Side, prepare_environment
from . import rewrites
from .source import CandidateError, candidate_definitions, find_definition, splice

__all__ = ["OptimizeOptions", "run_optimize", "REPORT_VERSION"]

REPORT_VERSION = 1
#: below this time per call (ns), the stricter noise floor applies
FAST_CALL_NS = 10_000
#: a function whose recorded calls repeat their arguments this often is offered memoization
MEMO_REPEAT_RATE = 0.5
_CANDIDATE_SEP = re.compile(r"^# --- candidate ---\s*$", re.M)


@dataclass
class OptimizeOptions:
    program: List[str] = field(default_factory=list)      # script.py args / -m module args
    trace_args: List[str] = field(default_factory=list)   # passed to `retracer trace`
    trace: Optional[str] = None                            # the trace (written, or of --replay-test)
    existing_trace: bool = False                           # --replay-test: do not trace
    trust: bool = False
    trace_only: bool = False
    functions: Optional[str] = None
    top: int = 5
    candidates: Optional[str] = None
    from_ref: Optional[str] = None
    generator: Optional[str] = None
    generator_timeout: float = 60.0
    builtin: bool = True
    tests_root: Optional[str] = None
    no_pr: bool = False
    noise_floor: float = 0.05
    noise_floor_fast: float = 0.15
    rounds: int = 6
    max_rounds: int = 30
    round_time: float = 0.05
    candidate_timeout: float = 120.0
    end_to_end: bool = True
    program_output_to_stderr: bool = False                 # --json: stdout is the report's
    cwd: str = field(default_factory=os.getcwd)
    progress: Callable[[str], None] = lambda s: None
    log: Callable[[str], None] = lambda s: None


@dataclass
class Target:
    fid: int
    qualname: str
    module: str
    filename: str        # as traced
    rel: str             # path inside the project
    line: int
    calls: int
    own_ns: int
    cum_ns: int
    saving_ns: float
    share: float
    callers: List[int] = field(default_factory=list)
    gate: List[int] = field(default_factory=list)          # call ids of the target that reproduce
    caller_gate: List[int] = field(default_factory=list)   # call ids of callers that reproduce
    repeat_rate: float = 0.0


@dataclass
class Project:
    root: str                      # where the trace ran (the user's project)
    repo: Optional[Repo]
    scratch: str
    original: Side
    candidate: Side


# ------------------------------------------------------------------ helpers

def _trace_command(opts: OptimizeOptions) -> List[str]:
    return [sys.executable, "-m", "retracer", "trace", *opts.trace_args, *opts.program]


def _run_trace(opts: OptimizeOptions) -> None:
    opts.progress("")
    opts.log(f"retracer optimize: tracing {shlex.join(opts.program)}")
    p = subprocess.run(_trace_command(opts), cwd=opts.cwd,
                       stdout=sys.stderr.fileno() if opts.program_output_to_stderr else None)
    if not os.path.isfile(opts.trace or ""):
        raise RetracerError(f"retracer: optimize: tracing wrote no trace (the program exited with status "
                            f"{p.returncode}); run it with 'retracer trace' to see why")
    if p.returncode != 0:
        opts.log(f"retracer optimize: the program exited with status {p.returncode}; optimizing what it ran")


def _under(path: str, root: str) -> Optional[str]:
    rp = os.path.realpath(path)
    r = root.rstrip(os.sep) + os.sep
    return rp[len(r):].replace(os.sep, "/") if rp.startswith(r) else None


def _project_root(cwd: str, script: Optional[str]) -> Tuple[str, Optional[Repo]]:
    start = os.path.dirname(script) if script else cwd
    try:
        repo = Repo(start)
        return repo.root, repo
    except RetracerError:
        return os.path.realpath(cwd), None


_IGNORED = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".venv*", "venv", ".tox", "node_modules",
                                  "*.trace", ".mypy_cache", ".pytest_cache", "build", "dist")


def _make_copies(root: str, repo: Optional[Repo], wts: Optional[WorktreeSet], scratch: str,
                 rel_cwd: str, progress: Callable[[str], None]) -> Tuple[Side, Side]:
    progress("copying the project")
    sides = []
    if repo is not None and wts is not None:
        commit, _ = repo.snapshot_working_tree(scratch)
        for name, label in (("base", "original"), ("head", "candidate")):
            s = Side(name=name, ref="", commit=commit, short=repo.short(commit), label=label)
            s.root = wts.add(label, commit)
            sides.append(s)
    else:
        for name, label in (("base", "original"), ("head", "candidate")):
            s = Side(name=name, ref="", commit="", short="", label=label)
            s.root = os.path.join(scratch, label)
            shutil.copytree(root, s.root, ignore=_IGNORED, symlinks=True)
            sides.append(s)
    for s in sides:
        s.workdir = os.path.normpath(os.path.join(s.root, rel_cwd))
        os.makedirs(s.workdir, exist_ok=True)
        prepare_environment(s, False, scratch, None)
        s.env["PYTHONDONTWRITEBYTECODE"] = "1"
    return sides[0], sides[1]


def _read_trace(opts: OptimizeOptions) -> Dict[str, Any]:
    from ..analysis.ranking import rank, refindable
    from ..tracefile import TraceReader

    with TraceReader(opts.trace, trust=opts.trust) as r:
        ranking = rank(r)
        funcs = dict(r.functions)
        edges = r.edge_stats()
        meta = dict(r.meta)
        calls: Dict[int, List[Tuple[int, Optional[bytes]]]] = {}
        for row in r.iter_captured(values=False):
            if row.status == "ok":
                calls.setdefault(row.fid, []).append((row.call_id, bytes(row.args) if row.args else None))
    return {"ranking": ranking, "functions": funcs, "edges": edges, "meta": meta, "calls": calls,
            "refindable": refindable}


def _wanted(spec: Optional[str]) -> Optional[List[Tuple[Optional[str], str]]]:
    if not spec:
        return None
    out = []
    for part in re.split(r"[,;]", spec):
        part = part.strip()
        if not part:
            continue
        if "::" in part:
            f, q = part.split("::", 1)
            out.append((f.replace(os.sep, "/"), q))
        else:
            out.append((None, part))
    return out


def _matches(t: Target, wanted: List[Tuple[Optional[str], str]]) -> bool:
    for f, q in wanted:
        if q not in (t.qualname, t.qualname.rsplit(".", 1)[-1]):
            continue
        if f is None or t.rel == f or t.rel.endswith("/" + f):
            return True
    return False


def _targets(info: Dict[str, Any], root: str, opts: OptimizeOptions) -> List[Target]:
    ranking = info["ranking"]
    funcs = info["functions"]
    total = ranking.total_ns or 1
    by_fid = {r.fid: r for r in ranking.functions}
    callers: Dict[int, List[int]] = {}
    for e in info["edges"]:
        if e.caller_fid != e.callee_fid:
            callers.setdefault(e.callee_fid, []).append(e.caller_fid)
    wanted = _wanted(opts.functions)
    out = []
    for r in ranking.functions:
        f = funcs.get(r.fid)
        if f is None or r.kind != "py" or not r.in_scope or not r.replayable or not info["refindable"](f):
            continue
        if not f.filename or not f.qualname or "<locals>" in f.qualname:
            continue
        rel = _under(f.filename, root)
        if rel is None or not rel.endswith(".py"):
            continue
        t = Target(r.fid, f.qualname, f.module or "", f.filename, rel, f.firstlineno or 0, r.calls, r.own_ns,
                   r.cum_ns, r.saving_ns, r.saving_ns / total)
        if wanted is not None and not _matches(t, wanted):
            continue
        t.callers = [c for c in callers.get(r.fid, []) if c in by_fid and by_fid[c].in_scope
                     and by_fid[c].replayable and funcs.get(c) is not None and info["refindable"](funcs[c])
                     and "<locals>" not in (funcs[c].qualname or "<locals>")]
        keys = [k for _, k in info["calls"].get(r.fid, [])]
        if len(keys) >= 4 and all(k is not None for k in keys):
            t.repeat_rate = 1.0 - len(set(keys)) / len(keys)
        out.append(t)
    return out


def _fn_json(info: Dict[str, Any], fid: int) -> Dict[str, str]:
    f = info["functions"][fid]
    return {"module": f.module or "", "qualname": f.qualname}


def _verify(project: Project, side: Side, trace: str, fns: List[Dict[str, str]], calls: Optional[List[int]],
            timeout: float, tag: str) -> Dict[str, Dict[str, Any]]:
    out = os.path.join(project.scratch, f"verify-{tag}.json")
    if os.path.exists(out):
        os.unlink(out)
    cfg = {"trace": trace, "targets": fns, "calls": calls, "remap": [project.root, side.root],
           "paths": side.pythonpath, "out": out}
    cfg_path = os.path.join(project.scratch, f"verify-{tag}-config.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    run_child([side.python, "-m", "retracer.optimize.verifychild", cfg_path], side, timeout, project.scratch,
              what="replaying the recorded calls")
    with open(out) as f:
        return json.load(f)["calls"]


# ------------------------------------------------------------------ candidates

@dataclass
class Candidate:
    name: str                       # its file (--candidates), else its source: ref:REF, generator#1, builtin:rule
    source: str                     # the definition (dedented), or the whole candidate text
    kind: str                       # file | ref | generator | builtin
    error: Optional[str] = None     # could not even be read


def _from_dir(d: str, t: Target) -> List[Candidate]:
    out = []
    short = t.qualname.rsplit(".", 1)[-1]
    top = t.qualname.split(".", 1)[0]
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if not name.endswith(".py") or not os.path.isfile(p):
            continue
        with open(p, encoding="utf-8", errors="replace") as f:
            text = f.read()
        try:
            defs, _, _ = candidate_definitions(text, p)
        except CandidateError as e:
            # a file that does not parse: charged to the targets it seems to be about
            if re.search(rf"^\s*(async\s+)?(def|class)\s+({re.escape(short)}|{re.escape(top)})\b", text, re.M):
                out.append(Candidate(p, text, "file", error=str(e)))
            continue
        if t.qualname in defs:
            out.append(Candidate(p, text, "file"))
    return out


def _from_ref(project: Project, ref: str, t: Target) -> List[Candidate]:
    repo = project.repo
    if repo is None:
        return [Candidate(f"ref:{ref}", "", "ref", error="--from-ref needs a git repository")]
    commit = repo.resolve(ref)
    text = repo.show(commit, t.rel)
    if text is None:
        return []
    d = find_definition(text, t.qualname)
    if d is None:
        return []
    with open(os.path.join(project.original.root, t.rel), encoding="utf-8") as f:
        now = find_definition(f.read(), t.qualname)
    if now is not None and now.source.strip() == d.source.strip():
        return []
    import textwrap
    return [Candidate(f"ref:{ref}", textwrap.dedent(d.source), "ref")]


def _bounded_repr(v: Any, limit: int = 300) -> str:
    from ..record import redact  # noqa: F401 - redaction happened at capture: secrets were never recorded
    try:
        s = repr(v)
    except Exception as e:  # noqa: BLE001
        s = f"<unrepresentable {type(v).__name__}: {e}>"
    return s if len(s) <= limit else s[:limit] + f"... ({len(s)} chars)"


def _examples(project: Project, trace: str, t: Target, n: int = 3) -> List[Dict[str, str]]:
    """A few recorded inputs and outputs as bounded reprs (read in a child: unpickling needs the code)."""
    code = ("import json,sys\n"
            "from retracer.replay.replayer import Replayer\n"
            "cfg=json.loads(sys.argv[1])\n"
            "r=Replayer(cfg['trace'],trust=True)\n"
            "from retracer.optimize.workflow import _bounded_repr\n"
            "out=[]\n"
            "for c in r.cases:\n"
            "    if c.call_id in cfg['ids']:\n"
            "        try:\n"
            "            a=r._args(c); e=r.expected(c)\n"
            "            out.append({'args':_bounded_repr(a),'outcome':e.kind,"
            "'result':_bounded_repr(e.value if e.kind=='return' else e.exception)})\n"
            "        except Exception as x:\n"
            "            out.append({'error':_bounded_repr(x)})\n"
            "print(json.dumps(out))\n")
    side = project.original
    try:
        p = subprocess.run([side.python, "-c", code, json.dumps({"trace": trace, "ids": t.gate[:n]})],
                           cwd=side.workdir, env=side.env, capture_output=True, text=True, timeout=60)
        return json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 and p.stdout.strip() else []
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return []


def _from_generator(project: Project, opts: OptimizeOptions, info: Dict[str, Any], t: Target,
                    source: str) -> List[Candidate]:
    funcs = info["functions"]
    callees = []
    for e in info["edges"]:
        if e.caller_fid == t.fid and e.callee_fid != t.fid and e.callee_fid in funcs:
            g = funcs[e.callee_fid]
            callees.append({"name": g.qualname or g.name, "module": g.module or "", "calls": e.calls,
                            "cumulative_ns": e.cum_ns})
    request = {"retracer_optimize_request": 1, "function": t.qualname, "module": t.module, "file": t.rel,
               "line": t.line, "source": source, "callees": callees,
               "profile": {"calls": t.calls, "own_ns": t.own_ns, "cumulative_ns": t.cum_ns,
                           "per_call_ns": t.cum_ns / max(t.calls, 1), "share": t.share},
               "examples": _examples(project, opts.trace or "", t),
               "answer": "write one or more replacement definitions (def name / class Name: with the methods) "
                         "on stdout; separate several with a line '# --- candidate ---', or print JSON "
                         "{\"candidates\": [source, ...]}"}
    try:
        argv = shlex.split(opts.generator or "")
    except ValueError as e:
        raise RetracerError(f"retracer: optimize: --generator: {e}; quote the command") from None
    name = "generator"
    try:
        # untrusted: it runs in the scratch directory, not in the user's tree
        p = subprocess.run(argv, input=json.dumps(request), capture_output=True, text=True,
                           timeout=opts.generator_timeout, cwd=project.scratch, stdin=None)
    except FileNotFoundError:
        raise RetracerError(f"retracer: optimize: --generator: {argv[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        return [Candidate(name, "", "generator", error=f"the generator did not answer within "
                                                        f"{opts.generator_timeout:g} s")]
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or [""])[-1][:200]
        return [Candidate(name, "", "generator", error=f"the generator exited with status {p.returncode}: {tail}")]
    text = p.stdout
    pieces: List[str]
    try:
        data = json.loads(text)
        pieces = [str(s) for s in data.get("candidates", [])] if isinstance(data, dict) else []
    except ValueError:
        pieces = [s for s in _CANDIDATE_SEP.split(text) if s.strip()]
    return [Candidate(f"{name}#{i + 1}", s, "generator") for i, s in enumerate(pieces)]


def _builtin(t: Target, source: str) -> List[Candidate]:
    import textwrap
    src = textwrap.dedent(source)
    out = [Candidate(f"builtin:{rule}", new, "builtin") for rule, new in rewrites.propose(src)]
    if t.repeat_rate >= MEMO_REPEAT_RATE and "." not in t.qualname:
        new = rewrites.memoize(src)
        if new is not None:
            out.append(Candidate("builtin:memoize", "import functools\n\n" + new, "builtin"))
    return out


# ------------------------------------------------------------------ the gate

def _put_in_place(side: Side, rel: str, original_text: str, t: Target, cand: Candidate) -> str:
    """The file's new text with the candidate in place (CandidateError when it cannot be)."""
    if cand.error:
        raise CandidateError(cand.error)
    defs, imports, helpers = candidate_definitions(cand.source, cand.name)
    if t.qualname not in defs:
        raise CandidateError(f"it defines no {t.qualname}")
    have = set()
    import ast
    tree = ast.parse(original_text)
    have = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    helper_src = []
    if helpers:
        ctree = ast.parse(cand.source)
        lines = cand.source.splitlines(keepends=True)
        for n in ctree.body:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name not in have \
                    and n.name != t.qualname.split(".", 1)[0]:
                s = min([n.lineno] + [d.lineno for d in n.decorator_list])
                helper_src.append("".join(lines[s - 1:n.end_lineno]))
    new = splice(original_text, {t.qualname: defs[t.qualname]}, imports, helper_src)
    try:
        compile(new, os.path.join(side.root, rel), "exec", dont_inherit=True)
    except SyntaxError as e:
        raise CandidateError(f"SyntaxError in the file with the candidate in place: {e.msg} (line {e.lineno})") \
            from None
    return new


def _write(side: Side, rel: str, text: str) -> None:
    path = os.path.join(side.root, rel)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    cache = os.path.join(os.path.dirname(path), "__pycache__")
    stem = os.path.splitext(os.path.basename(path))[0] + "."
    if os.path.isdir(cache):
        for n in os.listdir(cache):
            if n.startswith(stem):
                try:
                    os.unlink(os.path.join(cache, n))
                except OSError:
                    pass


def _first_bad(res: Dict[str, Dict[str, Any]], ids: Sequence[int]) -> Optional[Tuple[str, str]]:
    """(verdict, message) of the first call that is not reproduced."""
    for cid in ids:
        r = res.get(str(cid))
        if r is None:
            return "error", f"call {cid} was not replayed (the function could not be found again)"
        if r["verdict"] == "mismatch":
            return "mismatch", f"{r['fn']} (recorded call {cid}): {r['message']}"
        if r["verdict"] in ("error", "skip"):
            return "error", f"{r['fn']} (recorded call {cid}): {r['message']}"
    return None


TestMap = Dict[Tuple[str, str], List[str]]


def _tests_by_function(project: Project, opts: OptimizeOptions, tests_root: Optional[str]) -> Optional[TestMap]:
    """Which test files exercise which function: (file relative to the project, qualname)
    -> the test files (relative) one of whose tests called it, directly or not. From a
    traced pytest run: the workflow's own trace when it was ``-m pytest`` over the tests
    root, else one ``retracer trace --no-capture -m pytest TESTS_ROOT`` of the original
    code in the scratch copy. None when there is no tests root or that run wrote no
    trace (the tests are then found by the function's name)."""
    if not tests_root:
        return None
    rel_root = _under(tests_root, project.root)
    if rel_root is None:
        return None
    prog = list(opts.program)
    if opts.trace and prog[:2] == ["-m", "pytest"]:
        found = _tests_from_trace(opts.trace, project.root, rel_root)
        if found:
            return found
    out = os.path.join(project.scratch, "unit-tests.trace")
    argv = [project.original.python, "-m", "retracer", "trace", "--no-capture", "--no-follow", "-q", "-o", out,
            "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header", rel_root]
    opts.progress("finding the unit tests of each function (a traced pytest run)")
    try:
        subprocess.run(argv, cwd=project.original.root, env=dict(project.original.env) or None,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=max(300.0, opts.candidate_timeout))
    except (OSError, subprocess.TimeoutExpired):
        return None
    if not os.path.isfile(out):
        return None
    return _tests_from_trace(out, project.original.root, rel_root)


def _tests_from_trace(path: str, root: str, rel_root: str) -> Optional[TestMap]:
    """The map of :func:`_tests_by_function` from a trace of pytest run in ``root``:
    the call trees of its threads (the C exporter's), each function's nodes charged to
    the nearest test function above them in a test file under ``rel_root``."""
    from ..render.stream import export
    from ..tracefile import TraceReader

    tree = path + ".calls.json"
    try:
        with TraceReader(path) as r:
            functions = dict(r.functions)
            export(r, "json", tree)
        with open(tree, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError, RetracerError):
        return None
    finally:
        try:
            os.unlink(tree)
        except OSError:
            pass
    prefix = rel_root.rstrip("/") + "/"
    rel: Dict[int, Optional[str]] = {}
    for fid, fn in functions.items():
        rel[fid] = _under(fn.filename, root) if fn.kind == "py" and fn.filename else None
    test_file: Dict[int, Optional[str]] = {}
    for fid, fn in functions.items():
        r_ = rel[fid]
        base = os.path.basename(r_) if r_ else ""
        is_test = (r_ is not None and (r_ + "/").startswith(prefix) and base.startswith("test")
                   and base.endswith(".py") and fn.name.startswith("test"))
        test_file[fid] = r_ if is_test else None
    found: Dict[Tuple[str, str], Set[str]] = {}
    for th in doc.get("threads", []):
        nodes = th.get("nodes", [])
        owner: List[Optional[str]] = []
        for parent, fid, *_ in nodes:
            above = owner[parent] if 0 <= parent < len(owner) else None
            mine = test_file.get(fid) or above
            owner.append(mine)
            if above and rel.get(fid) and fid in functions:
                found.setdefault((rel[fid], functions[fid].qualname), set()).add(above)
    return {k: sorted(v) for k, v in found.items()}


def _unit_tests(project: Project, t: Target, tests_root: Optional[str], traced: Optional[TestMap] = None) -> List[str]:
    """Test files (relative to the project) under tests-root that exercise the function:
    from a traced pytest run (``traced``, see :func:`_tests_by_function`), else those
    that name it."""
    if traced is not None:
        return list(traced.get((t.rel, t.qualname), []))
    if not tests_root:
        return []
    rel_root = _under(tests_root, project.root)
    if rel_root is None:
        return []
    d = os.path.join(project.original.root, rel_root)
    if not os.path.isdir(d):
        return []
    short = t.qualname.rsplit(".", 1)[-1]
    pat = re.compile(rf"\b{re.escape(short)}\b")
    out = []
    for dp, dns, fns in os.walk(d):
        dns[:] = [x for x in dns if not x.startswith(".") and x != "__pycache__"]
        for fn in sorted(fns):
            if not (fn.startswith("test") and fn.endswith(".py")) or "__replay_test_" in fn:
                continue
            p = os.path.join(dp, fn)
            try:
                with open(p, encoding="utf-8", errors="replace") as f:
                    if pat.search(f.read()):
                        out.append(os.path.relpath(p, project.original.root))
            except OSError:
                pass
    return out


def _run_tests(side: Side, files: List[str], scratch: str, timeout: float) -> Tuple[bool, str]:
    argv = [side.python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header",
            *[os.path.join(side.root, f) for f in files]]
    try:
        run_child(argv, side, timeout, scratch, what="the unit tests")
        return True, ""
    except BenchmarkFailed as e:
        lines = [ln for ln in (e.output or "").strip().splitlines() if ln.strip()]
        return False, (lines[-1] if lines else str(e))[:300]
    except RoundTimeout:
        return False, f"the unit tests did not finish within {timeout:g} s"


def _time(project: Project, trace: str, info: Dict[str, Any], t: Target, opts: OptimizeOptions,
          deadline: float, floor: float) -> Dict[str, Any]:
    f = info["functions"][t.fid]
    bench = ReplayBench(trace, [{"key": t.qualname, "module": f.module or "", "trace_qualname": f.qualname,
                                 "qualname": {"base": f.qualname, "head": f.qualname}, "filename": f.filename,
                                 "calls": len(t.gate)}], project.root)
    # no warm-up rounds: the calibration run of each side is their warm-up
    ropts = RoundsOptions(min_rounds=opts.rounds, max_rounds=max(opts.rounds, opts.max_rounds), warmup=0,
                          trace_rounds=0, round_time=opts.round_time, min_effect=floor,
                          decided=lambda c: ("decided" if c.ci[0] > 1.0 + floor or c.ci[1] < 1.0 + floor else None))
    sides = {"base": project.original, "head": project.candidate}
    res = run_rounds(bench, sides, ropts, deadline, project.scratch, lambda s: opts.progress(f"{t.qualname}: {s}"),
                     per_function_traced=False)
    comp = stats.compare_samples(res.totals("base"), res.totals("head"), floor)
    n = max(1, len(t.gate))
    return {"speedup": comp.speedup, "ci": [comp.ci[0], comp.ci[1]], "p": comp.p,
            "before_per_call_ns": comp.base.median * 1e9 / n, "after_per_call_ns": comp.head.median * 1e9 / n,
            "rounds": comp.base.rounds, "stopped_by": res.stopped_by,
            "before": comp.base.to_json(), "after": comp.head.to_json()}


def _floor(opts: OptimizeOptions, per_call_ns: float) -> float:
    return opts.noise_floor_fast if per_call_ns < FAST_CALL_NS else opts.noise_floor


def _judge(project: Project, info: Dict[str, Any], t: Target, cand: Candidate, opts: OptimizeOptions,
           original_text: str, tests: List[str], tests_ok_on_original: bool, floor: float) -> Dict[str, Any]:
    row: Dict[str, Any] = {"file": cand.name, "source": cand.kind, "verdict": "error", "speedup": None, "ci": None,
                           "message": "", "calls_verified": 0, "callers_verified": 0}
    side = project.candidate
    try:
        new = _put_in_place(side, t.rel, original_text, t, cand)
    except CandidateError as e:
        row["message"] = str(e)
        return row
    row["definition"] = cand.source
    _write(side, t.rel, new)
    try:
        fns = [_fn_json(info, t.fid)] + [_fn_json(info, c) for c in t.callers]
        ids = t.gate + t.caller_gate
        opts.progress(f"{t.qualname}: verifying {cand.name} on {len(ids)} recorded calls")
        try:
            res = _verify(project, side, opts.trace or "", fns, ids, opts.candidate_timeout, "candidate")
        except BenchmarkFailed as e:
            row["message"] = f"replaying failed: {(e.output or str(e)).strip().splitlines()[-1][:300]}"
            return row
        except RoundTimeout:
            row["message"] = f"replaying did not finish within {opts.candidate_timeout:g} s"
            return row
        bad = _first_bad(res, ids)
        if bad is not None:
            row["verdict"], row["message"] = bad
            return row
        row["calls_verified"], row["callers_verified"] = len(t.gate), len(t.caller_gate)
        if tests and tests_ok_on_original:
            opts.progress(f"{t.qualname}: {cand.name}: running {len(tests)} unit test file(s)")
            ok, why = _run_tests(side, tests, project.scratch, opts.candidate_timeout)
            row["unit_tests"] = tests
            if not ok:
                row["verdict"], row["message"] = "mismatch", f"unit tests fail: {why}"
                return row
        try:
            tm = _time(project, opts.trace or "", info, t, opts, time.monotonic() + opts.candidate_timeout, floor)
        except (BenchmarkFailed, RetracerError) as e:
            row["message"] = f"timing failed: {str(e)[:300]}"
            return row
        row.update(speedup=tm["speedup"], ci=tm["ci"], timing=tm, noise_floor=floor)
        if tm["ci"][0] > 1.0 + floor:
            row["verdict"] = "accepted"
            row["message"] = f"{tm['speedup']:.2f}x faster, 95% CI [{tm['ci'][0]:.2f}, {tm['ci'][1]:.2f}]"
        else:
            row["verdict"] = "not-faster"
            row["message"] = (f"ratio {tm['speedup']:.2f}x, 95% CI [{tm['ci'][0]:.2f}, {tm['ci'][1]:.2f}]: the lower "
                              f"bound is not above the noise floor (+{100 * floor:.0f}%)")
        return row
    finally:
        _write(side, t.rel, original_text)


# ------------------------------------------------------------------ the loop

def run_optimize(opts: OptimizeOptions) -> Dict[str, Any]:
    t0 = time.monotonic()
    if not opts.existing_trace:
        _run_trace(opts)
    if opts.trace_only:
        return {"trace_only": True, "trace": opts.trace}
    progress = opts.progress
    progress("reading the trace")
    info = _read_trace(opts)
    meta = info["meta"]
    trace_cwd = meta.get("cwd") if isinstance(meta.get("cwd"), str) else opts.cwd
    command = [str(c) for c in (meta.get("command") or [])]
    script = None
    if command and command[0] != "-m":
        script = command[0] if os.path.isabs(command[0]) else os.path.join(trace_cwd, command[0])
    root, repo = _project_root(trace_cwd, script)
    rel_cwd = os.path.relpath(os.path.realpath(trace_cwd), root)
    if rel_cwd.startswith(".."):
        rel_cwd = "."
    candidates_dir = opts.candidates
    if candidates_dir and not os.path.isdir(candidates_dir):
        raise RetracerError(f"retracer: optimize: --candidates {candidates_dir} is not a directory")
    if opts.from_ref and repo is None:
        raise RetracerError("retracer: optimize: --from-ref needs the project to be a git repository")
    if opts.from_ref and repo is not None:
        repo.resolve(opts.from_ref)
    targets = _targets(info, root, opts)
    ranked_count = len(targets)
    rep: Dict[str, Any] = {"retracer_optimize": REPORT_VERSION, "retracer_version": VERSION,
                           "trace": os.path.abspath(opts.trace or ""), "project": root,
                           "command": command, "functions": [], "skipped": [], "end_to_end": None,
                           "applied": None, "warnings": [],
                           "settings": {"noise_floor": opts.noise_floor, "noise_floor_fast": opts.noise_floor_fast,
                                        "fast_call_ns": FAST_CALL_NS, "top": opts.top, "rounds": opts.rounds,
                                        "max_rounds": opts.max_rounds, "round_time_s": opts.round_time,
                                        "confidence": 0.95}}
    if not targets:
        rep["warnings"].append("no function of the project has replayable recorded calls"
                               + (" among --functions" if opts.functions else ""))
        rep["elapsed_s"] = time.monotonic() - t0
        return rep
    tmp_parent = tempfile.mkdtemp(prefix="retracer-optimize-")
    wts = WorktreeSet(repo, tmp_parent) if repo is not None else None
    try:
        scratch = wts.scratch("scratch") if wts is not None else os.path.join(tmp_parent, "scratch")
        os.makedirs(scratch, exist_ok=True)
        orig, cand = _make_copies(root, repo, wts, scratch, rel_cwd, progress)
        project = Project(root, repo, scratch, orig, cand)
        _loop(project, info, targets, opts, rep, command)
    finally:
        if wts is not None:
            wts.close()
        shutil.rmtree(tmp_parent, ignore_errors=True)
    rep["ranked_with_replayable_calls"] = ranked_count
    rep["elapsed_s"] = time.monotonic() - t0
    return rep


def _loop(project: Project, info: Dict[str, Any], targets: List[Target], opts: OptimizeOptions,
          rep: Dict[str, Any], command: List[str]) -> None:
    progress = opts.progress
    trace = opts.trace or ""
    # the baseline: which recorded calls reproduce on the original code
    fids: Set[int] = set()
    for t in targets:
        fids.add(t.fid)
        fids.update(t.callers)
    progress(f"replaying the recorded calls of {len(fids)} functions on the original code")
    try:
        base = _verify(project, project.original, trace, [_fn_json(info, f) for f in sorted(fids)], None,
                       max(opts.candidate_timeout, 300.0), "original")
    except BenchmarkFailed as e:
        raise RetracerError(f"retracer: optimize: replaying the recorded calls on the original code failed: "
                            f"{(e.output or str(e)).strip().splitlines()[-1][:300]}") from None
    good: Dict[int, List[int]] = {}
    fid_of = {cid: fid for fid, lst in info["calls"].items() for cid, _ in lst}
    for cid, r in base.items():
        if r["verdict"] == "ok":
            good.setdefault(fid_of.get(int(cid), -1), []).append(int(cid))
    chosen: List[Target] = []
    for t in targets:
        t.gate = sorted(good.get(t.fid, []))
        t.caller_gate = sorted(c for f in t.callers for c in good.get(f, []))
        if not t.gate:
            rep["skipped"].append({"name": t.qualname, "file": t.rel,
                                   "why": "no recorded call reproduces its recording on the original code "
                                          "(not deterministic, or not replayable)"})
            continue
        chosen.append(t)
        if len(chosen) >= opts.top:
            break
    tests_root = opts.tests_root
    if tests_root is None:
        d = os.path.join(project.root, "tests")
        tests_root = d if os.path.isdir(d) else None
    traced_tests = _tests_by_function(project, opts, tests_root)
    rep["unit_tests_found_by"] = ("none" if not tests_root else
                                  "a traced pytest run" if traced_tests is not None else "the function's name")
    winners: List[Tuple[Target, Dict[str, Any], str, str]] = []
    for i, t in enumerate(chosen, 1):
        progress(f"[{i}/{len(chosen)}] {t.qualname}: collecting candidates")
        path = os.path.join(project.original.root, t.rel)
        with open(path, encoding="utf-8") as f:
            original_text = f.read()
        d = find_definition(original_text, t.qualname)
        cands: List[Candidate] = []
        if opts.candidates:
            cands += _from_dir(opts.candidates, t)
        if opts.from_ref:
            cands += _from_ref(project, opts.from_ref, t)
        if opts.generator and d is not None:
            cands += _from_generator(project, opts, info, t, d.source)
        if opts.builtin and d is not None:
            cands += _builtin(t, d.source)
        per_call = t.cum_ns / max(t.calls, 1)
        floor = _floor(opts, per_call)
        tests = _unit_tests(project, t, tests_root, traced_tests)
        tests_ok = False
        if tests and cands:
            progress(f"{t.qualname}: running {len(tests)} unit test file(s) on the original code")
            tests_ok, why = _run_tests(project.original, tests, project.scratch, opts.candidate_timeout)
            if not tests_ok:
                rep["warnings"].append(f"{t.qualname}: its unit tests fail on the original code ({why}); "
                                       f"not used to judge its candidates")
        fn_row: Dict[str, Any] = {"name": t.qualname, "module": t.module, "file": t.rel, "line": t.line,
                                  "share": t.share, "recorded_calls": t.calls, "calls_verified": len(t.gate),
                                  "callers": [info["functions"][c].qualname for c in t.callers],
                                  "caller_calls_verified": len(t.caller_gate), "noise_floor": floor,
                                  "unit_tests": tests if tests_ok else [], "candidates": [], "accepted": None,
                                  "before_per_call_ns": None, "after_per_call_ns": None, "speedup": None,
                                  "ci": None}
        if not cands:
            fn_row["note"] = "no candidate"
        for k, c in enumerate(cands, 1):
            progress(f"[{i}/{len(chosen)}] {t.qualname}: candidate {k}/{len(cands)} ({c.name})")
            row = _judge(project, info, t, c, opts, original_text, tests, tests_ok, floor)
            fn_row["candidates"].append(row)
            opts.log(f"retracer optimize: {t.qualname}: {c.name}: {row['verdict']}"
                     + (f" ({row['message']})" if row["message"] else ""))
        acc = [r for r in fn_row["candidates"] if r["verdict"] == "accepted"]
        if acc:
            best = max(acc, key=lambda r: r["speedup"])
            fn_row["accepted"] = best["file"]
            tm = best["timing"]
            fn_row.update(before_per_call_ns=tm["before_per_call_ns"], after_per_call_ns=tm["after_per_call_ns"],
                          speedup=best["speedup"], ci=best["ci"])
            winners.append((t, best, original_text, next(c for c in cands if c.name == best["file"]).source))
        timed = [r for r in fn_row["candidates"] if r.get("timing")]
        if timed and fn_row["before_per_call_ns"] is None:   # the original's time, from its first timing
            fn_row["before_per_call_ns"] = timed[0]["timing"]["before_per_call_ns"]
        rep["functions"].append(fn_row)
    for r in rep["functions"]:
        for c in r["candidates"]:
            c.pop("definition", None)
    if not winners:
        return
    # all together, one after the other
    final: Dict[str, str] = {}     # rel -> text with every kept change
    kept: List[Tuple[Target, Dict[str, Any], str]] = []
    by_name = {r["name"]: r for r in rep["functions"]}
    for t, best, original_text, source in winners:
        text = final.get(t.rel)
        if text is None:
            with open(os.path.join(project.original.root, t.rel), encoding="utf-8") as f:
                text = f.read()
        try:
            new = _put_in_place(project.candidate, t.rel, text, t, Candidate(best["file"], source, "x"))
        except CandidateError as e:
            _drop(by_name[t.qualname], f"does not fit with the changes accepted before it: {e}")
            continue
        _write(project.candidate, t.rel, new)
        fns = sorted({f for k, _, _ in kept + [(t, best, "")] for f in [k.fid] + k.callers})
        ids = sorted({c for k, _, _ in kept + [(t, best, "")] for c in k.gate + k.caller_gate})
        progress(f"re-verifying {len(kept) + 1} accepted change(s) together on {len(ids)} recorded calls")
        try:
            res = _verify(project, project.candidate, trace, [_fn_json(info, f) for f in fns], ids,
                          max(opts.candidate_timeout, 300.0), "together")
            bad = _first_bad(res, ids)
        except (BenchmarkFailed, RoundTimeout) as e:
            bad = ("error", str(e))
        if bad is not None:
            _write(project.candidate, t.rel, text)
            _drop(by_name[t.qualname], f"breaks together with the other accepted changes: {bad[1]}")
            continue
        final[t.rel] = new
        kept.append((t, best, source))
    if not kept:
        return
    if opts.end_to_end and command:
        rep["end_to_end"] = _end_to_end(project, command, opts)
        e = rep["end_to_end"]
        if e and e.get("verdict") == "slower":
            # honest to the end: a change that makes the workflow itself slower is not applied
            rep["warnings"].append(f"end to end the optimized program was slower ({e['speedup']:.2f}x, 95% CI "
                                   f"[{e['ci'][0]:.2f}, {e['ci'][1]:.2f}]): the functions' gains do not show in "
                                   f"this run (start-up or another cost dominates), so nothing was applied; "
                                   f"the accepted candidates are in the report")
            rep["applied"] = None
            return
    rep["applied"] = _apply(project, kept, opts, rep)


def _drop(fn_row: Dict[str, Any], why: str) -> None:
    for c in fn_row["candidates"]:
        if c["file"] == fn_row["accepted"]:
            c["verdict"] = "error"
            c["message"] = why
    fn_row["accepted"] = None
    fn_row["note"] = why


def _end_to_end(project: Project, command: List[str], opts: OptimizeOptions) -> Dict[str, Any]:
    def remap(side: Side) -> List[str]:
        out = []
        for a in command:
            r = _under(a, project.root) if os.path.isabs(a) else None
            out.append(os.path.join(side.root, r) if r is not None else a)
        return out
    # CommandBench runs the same argv on both sides; script paths inside the project are each side's
    bench_b = CommandBench(["python"] + remap(project.original))
    bench_h = CommandBench(["python"] + remap(project.candidate))

    class _Both(CommandBench):
        def command(self, side: Side) -> List[str]:  # type: ignore[override]
            return (bench_b if side.name == "base" else bench_h).command(side)

    bench = _Both(["python"] + command)
    ropts = RoundsOptions(min_rounds=opts.rounds, max_rounds=max(opts.rounds, opts.max_rounds), warmup=1,
                          trace_rounds=0, round_time=max(opts.round_time, 0.1), min_effect=0.02)
    try:
        res = run_rounds(bench, {"base": project.original, "head": project.candidate}, ropts,
                         time.monotonic() + max(opts.candidate_timeout, 60.0), project.scratch,
                         lambda s: opts.progress(f"end to end: {s}"), per_function_traced=False)
    except (BenchmarkFailed, RetracerError) as e:
        return {"error": str(e).splitlines()[0][:300], "command": command}
    comp = stats.compare_samples(res.totals("base"), res.totals("head"), 0.02)
    e2e = comp.to_json()
    e2e.update(command=command, unit="s", description="the traced command, untraced: original against optimized "
                                                      "(compare's interleaved rounds)")
    return e2e


# ------------------------------------------------------------------ applying

def _commit_message(t: Target, best: Dict[str, Any]) -> str:
    ci = best["ci"]
    return (f"optimize {t.qualname} ({t.rel}): {best['speedup']:.2f}x faster\n\n"
            f"Candidate: {best['file']}\n"
            f"Speedup on the recorded inputs: {best['speedup']:.2f}x, 95% CI [{ci[0]:.2f}, {ci[1]:.2f}]\n"
            f"Verified identical on {best['calls_verified']} real recorded calls of {t.qualname}"
            + (f" and {best['callers_verified']} of its callers" if best.get("callers_verified") else "")
            + f"\n\nMade by retracer optimize {VERSION}.\n")


def _apply(project: Project, kept: List[Tuple[Target, Dict[str, Any], str]], opts: OptimizeOptions,
           rep: Dict[str, Any]) -> Dict[str, Any]:
    if opts.no_pr:
        files = []
        for t, best, source in kept:
            path = os.path.join(project.root, t.rel)
            with open(path, encoding="utf-8") as f:
                now = f.read()
            new = _put_in_place(project.candidate, t.rel, now, t, Candidate(best["file"], source, "x"))
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            files.append(t.rel)
        return {"mode": "working-tree", "files": sorted(set(files)),
                "note": "written into the working tree; nothing committed"}
    repo = project.repo
    if repo is None:
        return {"mode": "none", "note": "the project is not a git repository: nothing applied; run again with "
                                        "--no-pr to write the changes into the files"}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    branch = f"retracer/optimize-{stamp}"
    k = 1
    while repo.git("branch", "--list", branch).strip():
        k += 1
        branch = f"retracer/optimize-{stamp}-{k}"
    head = repo.head_commit()
    if head is None:
        return {"mode": "none", "note": "the repository has no commit yet: nothing applied; use --no-pr"}
    wt = os.path.join(project.scratch, "apply")
    repo.git("worktree", "add", "--quiet", "-b", branch, wt, head)
    commits = []
    try:
        for t, best, source in kept:
            path = os.path.join(wt, t.rel)
            with open(path, encoding="utf-8") as f:
                now = f.read()
            new = _put_in_place(project.candidate, t.rel, now, t, Candidate(best["file"], source, "x"))
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            env = _git_env()
            subprocess.run(["git", "add", "--", t.rel], cwd=wt, check=True, env=env, capture_output=True)
            msg = _commit_message(t, best)
            p = subprocess.run(["git", "commit", "-q", "-m", msg], cwd=wt, env=env, capture_output=True, text=True)
            if p.returncode != 0:
                p = subprocess.run(["git", "-c", "user.name=retracer", "-c", "user.email=retracer@localhost",
                                    "commit", "-q", "-m", msg], cwd=wt, env=env, capture_output=True, text=True)
            if p.returncode == 0:
                commits.append(subprocess.run(["git", "rev-parse", "HEAD"], cwd=wt, capture_output=True,
                                              text=True).stdout.strip())
    finally:
        repo.git("worktree", "remove", "--force", wt, check=False)
    out: Dict[str, Any] = {"mode": "branch", "branch": branch, "commits": commits, "base": head}
    out.update(_pull_request(repo, branch))
    return out


def _pull_request(repo: Repo, branch: str) -> Dict[str, Any]:
    how = (f"to open a pull request: git push -u origin {branch} && gh pr create --head {branch} --fill "
           f"(or switch to it: git switch {branch})")
    gh = shutil.which("gh")
    if gh is None:
        return {"pull_request": None, "note": how + "; gh is not installed"}
    if subprocess.run([gh, "auth", "status"], capture_output=True, cwd=repo.root).returncode != 0:
        return {"pull_request": None, "note": how + "; gh is not logged in (gh auth login)"}
    p = subprocess.run(["git", "push", "-u", "origin", branch], capture_output=True, text=True, cwd=repo.root)
    if p.returncode != 0:
        return {"pull_request": None, "note": how + f"; git push failed: {(p.stderr.strip().splitlines() or [''])[-1]}"}
    p = subprocess.run([gh, "pr", "create", "--head", branch, "--fill"], capture_output=True, text=True,
                       cwd=repo.root)
    if p.returncode != 0:
        return {"pull_request": None, "note": how + f"; gh pr create failed: "
                                                    f"{(p.stderr.strip().splitlines() or [''])[-1]}"}
    return {"pull_request": p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""}
