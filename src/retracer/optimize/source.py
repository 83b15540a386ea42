"""Finding a function's definition in a source file and putting another in its place.

A target is named by its qualified name (``f``, ``Class.method``); its
definition is found with :mod:`ast` (decorators included). A *candidate* is
Python source holding replacement definitions by the targets' own names: a
top-level ``def name(...)``, or ``class Name:`` holding the methods to replace
(``class Name`` may itself be nested in the candidate as it is in the file).
Imports at the top of a candidate that the file does not have are added after
the file's own imports; other top-level definitions of the candidate that the
file does not have (helpers) are added before the first replaced definition.
"""
from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

__all__ = ["Definition", "find_definition", "candidate_definitions", "splice", "CandidateError"]


class CandidateError(Exception):
    """A candidate that cannot be put in place (syntax error, names nothing)."""


@dataclass
class Definition:
    qualname: str
    start: int      # first line (1-based), decorators included
    end: int        # last line (inclusive)
    indent: str
    source: str     # the lines start..end


def _defs(tree: ast.AST, prefix: str = "") -> Dict[str, ast.AST]:
    out: Dict[str, ast.AST] = {}
    for node in getattr(tree, "body", []):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            q = f"{prefix}{node.name}"
            out.setdefault(q, node)
            if isinstance(node, ast.ClassDef):
                for k, v in _defs(node, q + ".").items():
                    out.setdefault(k, v)
    return out


def _span(node: ast.AST) -> Tuple[int, int]:
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return start, node.end_lineno or node.lineno


def find_definition(text: str, qualname: str) -> Optional[Definition]:
    """The definition of ``qualname`` in ``text``, or None."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    node = _defs(tree).get(qualname)
    if node is None:
        return None
    start, end = _span(node)
    lines = text.splitlines(keepends=True)
    first = lines[start - 1]
    indent = first[:len(first) - len(first.lstrip())]
    return Definition(qualname, start, end, indent, "".join(lines[start - 1:end]))


def candidate_definitions(text: str, filename: str = "<candidate>") -> Tuple[Dict[str, str], List[str], List[str]]:
    """(qualname -> definition source (dedented), import lines, helper definitions)
    of a candidate. Raises CandidateError on a syntax error."""
    try:
        tree = ast.parse(text, filename)
    except SyntaxError as e:
        raise CandidateError(f"SyntaxError: {e.msg} ({filename}, line {e.lineno})") from None
    lines = text.splitlines(keepends=True)
    defs: Dict[str, str] = {}
    imports: List[str] = []
    top: List[str] = []

    def src(node: ast.AST) -> str:
        s, e = _span(node)
        return textwrap.dedent("".join(lines[s - 1:e]))

    def walk(node: ast.AST, prefix: str) -> None:
        for child in getattr(node, "body", []):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                defs[f"{prefix}{child.name}"] = src(child)
            elif isinstance(child, ast.ClassDef):
                defs.setdefault(f"{prefix}{child.name}", src(child))
                walk(child, f"{prefix}{child.name}.")

    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(src(node).rstrip("\n"))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            top.append(node.name)
    walk(tree, "")
    return defs, imports, top


def _reindent(source: str, indent: str) -> str:
    return "".join((indent + line) if line.strip() else line
                   for line in textwrap.dedent(source).splitlines(keepends=True))


def splice(text: str, replacements: Dict[str, str], imports: Optional[List[str]] = None,
           helpers: Optional[List[str]] = None) -> str:
    """``text`` with the definition of each qualname of ``replacements`` replaced
    by its new source; missing ``imports`` added after the file's imports;
    ``helpers`` (top-level definitions' sources) added before the first
    replaced top-level definition. Raises CandidateError when a name is not
    defined in ``text``."""
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        raise CandidateError(f"the file does not parse: {e.msg} (line {e.lineno})") from None
    found = _defs(tree)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    spans = []
    for q, new in replacements.items():
        node = found.get(q)
        if node is None:
            raise CandidateError(f"{q} is not defined in the file")
        s, e = _span(node)
        first = lines[s - 1]
        indent = first[:len(first) - len(first.lstrip())]
        body = _reindent(new, indent)
        if not body.endswith("\n"):
            body += "\n"
        spans.append((s, e, body))
    spans.sort()
    for (s1, e1, _), (s2, _, _) in zip(spans, spans[1:]):
        if s2 <= e1:
            raise CandidateError("a candidate replaces a definition and one inside it at once")
    top_first = min((s for s, _, _ in spans), default=None)
    for s, e, body in reversed(spans):
        lines[s - 1:e] = [body]
    out = "".join(lines)
    if helpers:
        add = "".join(h if h.endswith("\n") else h + "\n" for h in helpers)
        if add.strip() and top_first is not None:
            # before the top-level statement holding the first replaced definition
            starts = [_span(n)[0] if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      else n.lineno for n in tree.body]
            line = max([x for x in starts if x <= top_first] or [1])
            ls = out.splitlines(keepends=True)
            ls[line - 1:line - 1] = [add, "\n\n"]
            out = "".join(ls)
    if imports:
        have = {ast.dump(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
        missing = []
        for imp in imports:
            try:
                node = ast.parse(imp).body[0]
            except (SyntaxError, IndexError):
                continue
            if ast.dump(node) not in have:
                missing.append(imp)
        if missing:
            out = _add_imports(out, missing)
    return out


def _add_imports(text: str, imports: List[str]) -> str:
    tree = ast.parse(text)
    after = 0
    for i, node in enumerate(tree.body):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            after = node.end_lineno or node.lineno
        elif i == 0 and isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant) \
                and isinstance(node.value.value, str):
            after = node.end_lineno or node.lineno  # the docstring
        else:
            break
    lines = text.splitlines(keepends=True)
    lines[after:after] = [imp + "\n" for imp in imports]
    return "".join(lines)
