"""Which functions changed between two commits, by qualified name.

Each side's own version of a file (``git show REF:path``) is parsed with
:mod:`ast` into its function definitions -- functions, methods, nested functions,
properties (getter, setter and deleter apart), class and static methods -- each
with its qualified name as Python spells ``__qualname__`` (``Class.method``,
``outer.<locals>.inner``) and its lines, decorators included (the line a traced
code object reports as its first line). Every line of a file belongs to the
innermost definition around it, so a changed line inside a nested function
changes that function, not the one around it.

The lines git's diff changed on the old side are mapped through the old file,
those of the new side through the new file; a definition touched on either side
is changed. Definitions are then matched across the sides by (path, qualified
name, part): present on both sides = modified (unless its source is the same on
both, i.e. only moved), only in HEAD = added, only in BASE = removed; a removed
and an added definition of the same file (a renamed file counts as the same) with
the same body (the def line left out), or similar bodies of three lines or more
(difflib ratio >= 0.75) = renamed.

``--functions "pkg/mod.py::f,Class.method;other.py::g"`` names definitions by
hand instead: a ``;``-separated list of ``path::names``, names ``,``-separated,
each a qualified name (``outer.inner`` also finds ``outer.<locals>.inner``); a name
without ``path::`` is looked for in every Python file of both sides.
"""
from __future__ import annotations

import ast
import difflib
import os
import textwrap
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

from ..errors import RetracerError
from .git import FileChange, Hunk, Repo

__all__ = ["FuncDef", "FileIndex", "ChangedFunction", "Changes", "index_source", "find_changes",
           "parse_functions_spec", "select_functions"]

_PART = {"property": "", "setter": " (setter)", "deleter": " (deleter)"}


@dataclass(frozen=True)
class FuncDef:
    """One definition in one side's file."""

    path: str        # repository-relative, '/'-separated
    qualname: str    # Python's __qualname__
    kind: str        # function | method | nested | property | setter | deleter | classmethod | staticmethod
    start: int       # first line, decorators included (the code object's co_firstlineno)
    end: int
    ordinal: int     # 0, or the how-manieth redefinition of the same qualname and part in the file
    source: str      # the definition's text, dedented

    @property
    def part(self) -> str:
        return self.kind if self.kind in ("setter", "deleter") else ""

    @property
    def key(self) -> Tuple[str, str, int]:
        return (self.qualname, self.part, self.ordinal)

    @property
    def display(self) -> str:
        """``Class.method``, ``outer.inner``, ``Class.size (setter)``."""
        return self.qualname.replace(".<locals>.", ".") + _PART.get(self.kind, "")

    @property
    def body(self) -> str:
        """The source without the lines up to the def line (for rename detection)."""
        lines = self.source.splitlines()
        for i, line in enumerate(lines):
            if line.lstrip().startswith(("def ", "async def ")):
                return "\n".join(lines[i + 1:])
        return self.source


def _decorator_kind(node: ast.AST) -> Optional[str]:
    for d in getattr(node, "decorator_list", []):
        if isinstance(d, ast.Name) and d.id in ("property", "cached_property"):
            return "property"
        if isinstance(d, ast.Attribute):
            if d.attr in ("setter", "deleter"):
                return d.attr
            if d.attr in ("getter", "cached_property"):
                return "property"
        if isinstance(d, ast.Name) and d.id in ("classmethod", "staticmethod"):
            return d.id
    return None


class FileIndex:
    """The definitions of one file at one commit and which definition owns each line."""

    def __init__(self, path: str, text: Optional[str]) -> None:
        self.path = path
        self.text = text
        self.defs: List[FuncDef] = []
        self.error: Optional[str] = None
        self._owner: List[Optional[int]] = []
        self.lines: List[str] = text.splitlines() if text is not None else []
        if text is None:
            return
        try:
            tree = ast.parse(text, filename=path)
        except (SyntaxError, ValueError) as e:
            self.error = f"{type(e).__name__}: {getattr(e, 'msg', e)} (line {getattr(e, 'lineno', '?')})"
            return
        lines = self.lines
        seen: Dict[Tuple[str, str], int] = {}

        def visit(node: ast.AST, prefix: str, in_class: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef):
                    visit(child, prefix + child.name + ".", True)
                elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    qual = prefix + child.name
                    kind = _decorator_kind(child) or ("method" if in_class else
                                                      "nested" if prefix.endswith("<locals>.") else "function")
                    start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    end = getattr(child, "end_lineno", None) or child.lineno
                    part = kind if kind in ("setter", "deleter") else ""
                    n = seen.get((qual, part), 0)
                    seen[(qual, part)] = n + 1
                    src = textwrap.dedent("\n".join(lines[start - 1:end]))
                    self.defs.append(FuncDef(path, qual, kind, start, end, n, src))
                    visit(child, qual + ".<locals>.", False)
                else:
                    visit(child, prefix, in_class)

        visit(tree, "", False)
        owner: List[Optional[int]] = [None] * (len(lines) + 2)
        for i in sorted(range(len(self.defs)), key=lambda k: (self.defs[k].start, -self.defs[k].end)):
            d = self.defs[i]
            for ln in range(d.start, min(d.end, len(lines)) + 1):
                owner[ln] = i
        self._owner = owner

    def owner(self, line: int) -> Optional[FuncDef]:
        if 0 < line < len(self._owner):
            i = self._owner[line]
            return self.defs[i] if i is not None else None
        return None

    def touched(self, hunks: Sequence[Hunk], side: str) -> Tuple[Set[int], bool]:
        """(indexes of the definitions the hunks touch on ``side``, whether a
        line outside every definition changed)."""
        out: Set[int] = set()
        outside = False
        for h in hunks:
            start, count = h.old if side == "old" else h.new
            if count == 0:
                # lines only removed on this side, after line `start`: a change of
                # the definition only when it runs on both sides of that point
                a, b = self.owner(start), self.owner(start + 1)
                if a is not None and a is b:
                    out.add(self.defs.index(a))
                continue
            for ln in range(start, start + count):
                i = self._owner[ln] if 0 < ln < len(self._owner) else None
                if i is None:
                    line = self.lines[ln - 1].strip() if 0 < ln <= len(self.lines) else ""
                    if line and not line.startswith("#"):
                        outside = True
                else:
                    out.add(i)
        return out, outside

    def find(self, name: str) -> List[FuncDef]:
        """Definitions called ``name``: the qualified name, or with the
        ``<locals>`` parts left out, with an optional ``(setter)``/``(deleter)``."""
        part = ""
        for p in ("setter", "deleter"):
            if name.endswith(f" ({p})"):
                name, part = name[: -len(p) - 3].strip(), p
        return [d for d in self.defs
                if (d.qualname == name or d.qualname.replace(".<locals>.", ".") == name) and d.part == part]

    def by_line(self, qualname: str, firstlineno: Optional[int]) -> Optional[FuncDef]:
        """The definition a traced code object (qualname, co_firstlineno) is."""
        cands = [d for d in self.defs if d.qualname == qualname]
        for d in cands:
            if d.start == firstlineno:
                return d
        for d in cands:  # a def line a decorator of a kind ast does not see moved
            if d.start <= (firstlineno or 0) <= d.end:
                return d
        return cands[0] if len(cands) == 1 else None


def index_source(path: str, text: Optional[str]) -> FileIndex:
    return FileIndex(path, text)


@dataclass
class ChangedFunction:
    """A function to compare: its definition on each side (None where it is not)."""

    status: str                  # modified | added | removed | renamed | selected
    base: Optional[FuncDef]
    head: Optional[FuncDef]

    @property
    def name(self) -> str:
        d = self.head or self.base
        assert d is not None
        return d.display

    @property
    def path(self) -> str:
        d = self.head or self.base
        assert d is not None
        return d.path

    @property
    def label(self) -> str:
        if self.status == "renamed" and self.base is not None and self.head is not None:
            return f"{self.base.display} -> {self.head.display}"
        return self.name


@dataclass
class Changes:
    functions: List[ChangedFunction] = field(default_factory=list)
    module_level: List[str] = field(default_factory=list)   # .py files changed outside any function
    other_files: List[str] = field(default_factory=list)    # changed files that are not Python
    unparsable: List[str] = field(default_factory=list)     # 'path at REF: error'
    files: List[FileChange] = field(default_factory=list)


class _Sides:
    """Both sides' indexes of files, read lazily from git."""

    def __init__(self, repo: Repo, base: str, head: str) -> None:
        self.repo, self.commits = repo, {"base": base, "head": head}
        self._cache: Dict[Tuple[str, str], FileIndex] = {}

    def index(self, side: str, path: Optional[str]) -> FileIndex:
        if path is None:
            return FileIndex("", None)
        key = (side, path)
        if key not in self._cache:
            self._cache[key] = FileIndex(path, self.repo.show(self.commits[side], path))
        return self._cache[key]


def find_changes(repo: Repo, base: str, head: str, labels: Tuple[str, str] = ("BASE", "HEAD")) -> Changes:
    """The functions changed from commit ``base`` to commit ``head``."""
    sides = _Sides(repo, base, head)
    out = Changes(files=repo.changes(base, head))
    for fc in out.files:
        paths = [p for p in (fc.old_path, fc.new_path) if p]
        if not any(p.endswith(".py") for p in paths):
            out.other_files.append(fc.new_path or fc.old_path or "?")
            continue
        old = sides.index("base", fc.old_path if fc.old_path and fc.old_path.endswith(".py") else None)
        new = sides.index("head", fc.new_path if fc.new_path and fc.new_path.endswith(".py") else None)
        for idx, lab in ((old, labels[0]), (new, labels[1])):
            if idx.error:
                out.unparsable.append(f"{idx.path} at {lab}: {idx.error}")
        t_old, outside_old = old.touched(fc.hunks, "old") if old.text is not None else (set(), False)
        t_new, outside_new = new.touched(fc.hunks, "new") if new.text is not None else (set(), False)
        if outside_old or outside_new:
            out.module_level.append(fc.new_path or fc.old_path or "?")
        old_by_key = {d.key: d for d in old.defs}
        new_by_key = {d.key: d for d in new.defs}
        keys: List[Tuple[str, str, int]] = []
        for i in sorted(t_old):
            k = old.defs[i].key
            if k not in keys:
                keys.append(k)
        for i in sorted(t_new):
            k = new.defs[i].key
            if k not in keys:
                keys.append(k)
        removed: List[FuncDef] = []
        added: List[FuncDef] = []
        for k in keys:
            b, h = old_by_key.get(k), new_by_key.get(k)
            if b is not None and h is not None:
                if b.source != h.source:
                    out.functions.append(ChangedFunction("modified", b, h))
            elif h is not None:
                added.append(h)
            elif b is not None:
                removed.append(b)
        # renamed: a removed and an added definition with similar bodies
        pairs = []
        for b in removed:
            for h in added:
                if b.body.strip() == h.body.strip():
                    pairs.append((2.0, b, h))
                    continue
                if min(_code_lines(b.body), _code_lines(h.body)) < 3:
                    continue  # short bodies look alike by chance
                ratio = difflib.SequenceMatcher(None, b.body, h.body, autojunk=False).ratio()
                if ratio >= 0.75:
                    pairs.append((ratio, b, h))
        pairs.sort(key=lambda t: -t[0])
        used_b: Set[int] = set()
        used_h: Set[int] = set()
        for _, b, h in pairs:
            if id(b) in used_b or id(h) in used_h:
                continue
            used_b.add(id(b))
            used_h.add(id(h))
            out.functions.append(ChangedFunction("renamed", b, h))
        out.functions += [ChangedFunction("added", None, h) for h in added if id(h) not in used_h]
        out.functions += [ChangedFunction("removed", b, None) for b in removed if id(b) not in used_b]
    return out


def _code_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))


def parse_functions_spec(spec: str) -> List[Tuple[Optional[str], str]]:
    """``"a.py::f,C.m;b.py::g"`` -> [('a.py', 'f'), ('a.py', 'C.m'), ('b.py', 'g')];
    a name without ``path::`` gets path None."""
    out: List[Tuple[Optional[str], str]] = []
    for group in spec.split(";"):
        group = group.strip()
        if not group:
            continue
        if "::" in group:
            path, names = group.split("::", 1)
            path = path.strip()
            if not path:
                raise RetracerError(f"retracer: --functions: '{group}' has no file before '::'; "
                                    f"write path/to/file.py::name")
        else:
            path, names = None, group
        for name in names.split(","):
            name = name.strip()
            if name:
                out.append((path, name))
    if not out:
        raise RetracerError("retracer: --functions names no function; write \"path/mod.py::f,Class.method;other.py::g\"")
    return out


def select_functions(repo: Repo, base: str, head: str, spec: str, cwd: str,
                     labels: Tuple[str, str] = ("BASE", "HEAD")) -> List[ChangedFunction]:
    """The functions ``--functions`` names, on both sides."""
    sides = _Sides(repo, base, head)
    all_files: Optional[List[str]] = None
    out: List[ChangedFunction] = []
    for path, name in parse_functions_spec(spec):
        if path is None:
            if all_files is None:
                all_files = sorted(set(repo.ls_files(base)) | set(repo.ls_files(head)))
            files = all_files
        else:
            files = [_repo_path(repo, path, cwd)]
        found: List[ChangedFunction] = []
        for f in files:
            b = sides.index("base", f).find(name)
            h = sides.index("head", f).find(name)
            if not b and not h:
                continue
            if len(b) > 1 or len(h) > 1:
                b, h = b[:1], h[:1]
            found.append(ChangedFunction("selected" if b and h else ("added" if h else "removed"),
                                         b[0] if b else None, h[0] if h else None))
        if not found:
            where = f"in {files[0]}" if path is not None else "in any Python file"
            raise RetracerError(f"retracer: --functions: no function '{name}' {where} at {labels[0]} or {labels[1]}; "
                                f"give its qualified name (Class.method, outer.inner)")
        if len(found) > 1:
            raise RetracerError(f"retracer: --functions: '{name}' is defined in several files "
                                f"({', '.join(c.path for c in found[:4])}); write path.py::{name}")
        if not any(c.base == found[0].base and c.head == found[0].head for c in out):
            out.append(found[0])
    return out


def _repo_path(repo: Repo, path: str, cwd: str) -> str:
    """A --functions path (relative to the repository root or to the current
    directory, or absolute) as a repository-relative '/'-separated path."""
    cands = []
    if os.path.isabs(path):
        cands.append(os.path.relpath(os.path.realpath(path), repo.root))
    else:
        cands.append(os.path.normpath(path))
        rel_cwd = os.path.relpath(os.path.realpath(cwd), repo.root)
        if rel_cwd != ".":
            cands.insert(0, os.path.normpath(os.path.join(rel_cwd, path)))
    for c in cands:
        if os.path.exists(os.path.join(repo.root, c)):
            return c.replace(os.sep, "/")
    return cands[-1].replace(os.sep, "/")

