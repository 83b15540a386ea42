"""Built-in mechanical rewrites: candidates made from the function's own source.

Each rule looks for one pattern in a function's definition and, where it
applies, returns the rewritten definition (made with libcst, which keeps the
rest of the source -- comments, formatting -- as it is). A rewrite is only a
*candidate*: it goes through the same gate as any other (identical on every
recorded call, faster by more than the noise floor); none is trusted to be
correct by construction.

The rules (the detections they come from: ruff's PERF and FURB rules, perflint,
refurb):

- ``set-membership`` -- ``x in [1, 2, 3]`` / ``x not in ("a", "b")`` with
  literal elements becomes a set literal: a hash lookup instead of a linear scan
  (ruff PLR6201 / refurb FURB108's family);
- ``comprehension`` -- ``out = []`` directly followed by ``for v in it: out.append(e)``
  (optionally under one ``if``) becomes ``out = [e for v in it if c]``
  (ruff PERF401, perflint W8401);
- ``str-join`` -- ``s += piece`` on a string inside a loop (quadratic in the worst
  case) collects the pieces in a list joined once after the loop;
- ``hoist-lookups`` -- ``obj.method(...)`` called in a loop where ``obj`` is not
  rebound in it is looked up once before the loop (perflint W8201/W8205: loop
  invariant attribute and global lookups);
- ``memoize`` -- ``functools.lru_cache`` on a function whose recorded calls repeat
  the same (hashable) arguments often; proposed only when the trace shows a high
  repeat rate (the caller decides; this module only adds the decorator).
"""
from __future__ import annotations

import textwrap
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import libcst as cst
import libcst.matchers as m

__all__ = ["RULES", "propose", "memoize"]


def _names_in(node: cst.CSTNode) -> Set[str]:
    found: Set[str] = set()

    class V(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            found.add(n.value)
    node.visit(V())
    return found


def _assigned_in(node: cst.CSTNode) -> Set[str]:
    """Names bound anywhere inside ``node`` (assignments, loop targets, with-as, walrus, del)."""
    out: Set[str] = set()

    def targets(t: cst.CSTNode) -> None:
        if isinstance(t, cst.Name):
            out.add(t.value)
        elif isinstance(t, (cst.Tuple, cst.List)):
            for e in t.elements:
                targets(e.value)
        elif isinstance(t, cst.StarredElement):
            targets(t.value)

    class V(cst.CSTVisitor):
        def visit_AssignTarget(self, n: cst.AssignTarget) -> None:
            targets(n.target)

        def visit_AugAssign(self, n: cst.AugAssign) -> None:
            targets(n.target)

        def visit_AnnAssign(self, n: cst.AnnAssign) -> None:
            targets(n.target)

        def visit_For(self, n: cst.For) -> None:
            targets(n.target)

        def visit_CompFor(self, n: cst.CompFor) -> None:
            targets(n.target)

        def visit_AsName(self, n: cst.AsName) -> None:
            targets(n.name)

        def visit_NamedExpr(self, n: cst.NamedExpr) -> None:
            targets(n.target)

        def visit_Del(self, n: cst.Del) -> None:
            targets(n.target)

        def visit_Global(self, n: cst.Global) -> None:
            for x in n.names:
                out.add(x.name.value)

        def visit_Nonlocal(self, n: cst.Nonlocal) -> None:
            for x in n.names:
                out.add(x.name.value)
    node.visit(V())
    return out


# ---------------------------------------------------------------- set-membership

_LITERAL = (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString)


def _literal(e: cst.BaseExpression) -> bool:
    if isinstance(e, _LITERAL):
        return True
    if isinstance(e, cst.UnaryOperation) and isinstance(e.operator, cst.Minus):
        return isinstance(e.expression, (cst.Integer, cst.Float))
    return isinstance(e, cst.Name) and e.value in ("True", "False", "None")


class _SetMembership(cst.CSTTransformer):
    def __init__(self) -> None:
        self.changed = 0

    def leave_ComparisonTarget(self, original: cst.ComparisonTarget,
                               updated: cst.ComparisonTarget) -> cst.ComparisonTarget:
        if not isinstance(updated.operator, (cst.In, cst.NotIn)):
            return updated
        c = updated.comparator
        if not isinstance(c, (cst.List, cst.Tuple)) or len(c.elements) < 3:
            return updated
        if not all(isinstance(e, cst.Element) and _literal(e.value) for e in c.elements):
            return updated
        elements = [cst.Element(e.value) for e in c.elements]
        self.changed += 1
        return updated.with_changes(comparator=cst.Set(elements=elements))


# ---------------------------------------------------------------- comprehension

def _single_append(stmt: cst.BaseStatement, name: str) -> Optional[cst.BaseExpression]:
    """The appended expression when ``stmt`` is exactly ``name.append(expr)``."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return None
    e = stmt.body[0]
    if not m.matches(e, m.Expr(value=m.Call(func=m.Attribute(value=m.Name(name), attr=m.Name("append"))))):
        return None
    call = e.value  # type: ignore[attr-defined]
    if len(call.args) != 1 or call.args[0].keyword is not None or call.args[0].star:
        return None
    return call.args[0].value


def _body_statements(block: cst.BaseSuite) -> Sequence[cst.BaseStatement]:
    return block.body if isinstance(block, cst.IndentedBlock) else ()


class _Comprehension(cst.CSTTransformer):
    def __init__(self) -> None:
        self.changed = 0

    def _rewrite(self, body: Sequence[cst.BaseStatement]) -> List[cst.BaseStatement]:
        out: List[cst.BaseStatement] = []
        i = 0
        body = list(body)
        while i < len(body):
            s = body[i]
            nxt = body[i + 1] if i + 1 < len(body) else None
            new = self._pair(s, nxt, body[i + 2:]) if nxt is not None else None
            if new is not None:
                out.append(new)
                self.changed += 1
                i += 2
            else:
                out.append(s)
                i += 1
        return out

    def _pair(self, s: cst.BaseStatement, loop: cst.BaseStatement,
              rest: Sequence[cst.BaseStatement]) -> Optional[cst.BaseStatement]:
        if not m.matches(s, m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(target=m.Name())],
                                                                  value=m.List(elements=[]))])):
            return None
        assign = s.body[0]  # type: ignore[attr-defined]
        name = assign.targets[0].target.value
        if not isinstance(loop, cst.For) or loop.orelse is not None or loop.asynchronous is not None:
            return None
        stmts = _body_statements(loop.body)
        if len(stmts) != 1:
            return None
        ifs: List[cst.CompIf] = []
        inner = stmts[0]
        if isinstance(inner, cst.If) and inner.orelse is None:
            ib = _body_statements(inner.body)
            if len(ib) != 1:
                return None
            ifs = [cst.CompIf(test=inner.test)]
            inner = ib[0]
        elt = _single_append(inner, name)
        if elt is None or name in _names_in(elt) or any(name in _names_in(c.test) for c in ifs) \
                or name in _names_in(loop.iter):
            return None
        # the loop variable is gone after a comprehension: only when nothing after reads it
        loop_vars = _target_names(loop.target)
        later: Set[str] = set()
        for r in rest:
            later |= _names_in(r)
        if loop_vars & later:
            return None
        comp = cst.ListComp(elt=elt, for_in=cst.CompFor(target=loop.target, iter=loop.iter, ifs=ifs))
        return s.with_changes(body=[assign.with_changes(value=comp)])

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        return updated.with_changes(body=self._rewrite(updated.body))


def _target_names(t: cst.CSTNode) -> Set[str]:
    out: Set[str] = set()
    if isinstance(t, cst.Name):
        out.add(t.value)
    elif isinstance(t, (cst.Tuple, cst.List)):
        for e in t.elements:
            out |= _target_names(e.value)
    elif isinstance(t, cst.StarredElement):
        out |= _target_names(t.value)
    return out


# ---------------------------------------------------------------- str-join

class _Uses(cst.CSTVisitor):
    """Counts the reads of ``name`` and its ``name += ...`` statements (outside nested scopes)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.total = 0
        self.augs = 0

    def visit_Name(self, n: cst.Name) -> None:
        if n.value == self.name:
            self.total += 1

    def visit_AugAssign(self, n: cst.AugAssign) -> None:
        if isinstance(n.target, cst.Name) and n.target.value == self.name and isinstance(n.operator, cst.AddAssign):
            self.augs += 1
            if self.name in _names_in(n.value):
                self.augs = -10 ** 6  # s += s + x: reads it

    def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
        return False

    def visit_Lambda(self, n: cst.Lambda) -> bool:
        return False

    def visit_ClassDef(self, n: cst.ClassDef) -> bool:
        return False


class _AugToAppend(cst.CSTTransformer):
    def __init__(self, name: str, parts: str) -> None:
        self.name = name
        self.parts = parts

    def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
        return False

    def leave_AugAssign(self, original: cst.AugAssign, updated: cst.AugAssign):
        if isinstance(updated.target, cst.Name) and updated.target.value == self.name \
                and isinstance(updated.operator, cst.AddAssign):
            return cst.Expr(cst.Call(func=cst.Attribute(value=cst.Name(self.parts), attr=cst.Name("append")),
                                     args=[cst.Arg(updated.value)]))
        return updated


def _is_empty_str(e: cst.BaseExpression) -> bool:
    return isinstance(e, cst.SimpleString) and e.evaluated_value == ""


class _StrJoin(cst.CSTTransformer):
    def __init__(self, taken: Set[str]) -> None:
        self.changed = 0
        self.taken = taken

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        body = list(updated.body)
        strings: Set[str] = set()
        out: List[cst.BaseStatement] = []
        for s in body:
            if m.matches(s, m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(target=m.Name())])])):
                a = s.body[0]  # type: ignore[attr-defined]
                nm = a.targets[0].target.value
                if _is_empty_str(a.value):
                    strings.add(nm)
                else:
                    strings.discard(nm)
            if isinstance(s, (cst.For, cst.While)) and s.orelse is None:
                for nm in sorted(strings):
                    u = _Uses(nm)
                    s.visit(u)
                    if u.augs > 0 and u.total == u.augs:
                        parts = self._fresh(f"_{nm}_parts")
                        s = s.visit(_AugToAppend(nm, parts))  # type: ignore[assignment]
                        out.append(cst.parse_statement(f"{parts} = []\n"))
                        out.append(s)
                        s = cst.parse_statement(f"{nm} += ''.join({parts})\n")  # type: ignore[assignment]
                        self.changed += 1
                        break
            out.append(s)
        return updated.with_changes(body=out)

    def _fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            k += 1
            name = f"{base}{k}"
        self.taken.add(name)
        return name


# ---------------------------------------------------------------- hoist-lookups

class _CallAttrs(cst.CSTVisitor):
    def __init__(self) -> None:
        self.pairs: Dict[Tuple[str, str], int] = {}

    def visit_Call(self, n: cst.Call) -> None:
        f = n.func
        if isinstance(f, cst.Attribute) and isinstance(f.value, cst.Name):
            k = (f.value.value, f.attr.value)
            self.pairs[k] = self.pairs.get(k, 0) + 1

    def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
        return False

    def visit_Lambda(self, n: cst.Lambda) -> bool:
        return False


class _ReplaceAttrCalls(cst.CSTTransformer):
    def __init__(self, names: Dict[Tuple[str, str], str]) -> None:
        self.names = names

    def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
        return False

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        f = updated.func
        if isinstance(f, cst.Attribute) and isinstance(f.value, cst.Name):
            k = (f.value.value, f.attr.value)
            if k in self.names:
                return updated.with_changes(func=cst.Name(self.names[k]))
        return updated


class _Hoist(cst.CSTTransformer):
    def __init__(self, taken: Set[str]) -> None:
        self.changed = 0
        self.taken = taken
        self.depth = 0

    def visit_For(self, n: cst.For) -> bool:
        self.depth += 1
        return True

    def visit_While(self, n: cst.While) -> bool:
        self.depth += 1
        return True

    def leave_For(self, o, u):
        self.depth -= 1
        return u

    def leave_While(self, o, u):
        self.depth -= 1
        return u

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        if self.depth:  # only the outermost loops of a block outside loops
            return updated
        out: List[cst.BaseStatement] = []
        changed = False
        for s in updated.body:
            if isinstance(s, (cst.For, cst.While)):
                v = _CallAttrs()
                s.body.visit(v)
                if isinstance(s, cst.While):
                    s.test.visit(v)
                bound = _assigned_in(s)
                names: Dict[Tuple[str, str], str] = {}
                for (obj, attr), n in sorted(v.pairs.items()):
                    if obj in bound or obj == "super":
                        continue
                    nm = self._fresh(f"_{obj}_{attr}")
                    names[(obj, attr)] = nm
                if names:
                    for (obj, attr), nm in names.items():
                        out.append(cst.parse_statement(f"{nm} = {obj}.{attr}\n"))
                    s = s.with_changes(body=s.body.visit(_ReplaceAttrCalls(names)))
                    if isinstance(s, cst.While):
                        s = s.with_changes(test=s.test.visit(_ReplaceAttrCalls(names)))
                    changed = True
                    self.changed += 1
            out.append(s)
        return updated.with_changes(body=out) if changed else updated

    def _fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            k += 1
            name = f"{base}{k}"
        self.taken.add(name)
        return name


# ---------------------------------------------------------------- driver

def _apply(source: str, make: Callable[[Set[str]], cst.CSTTransformer]) -> Optional[str]:
    try:
        mod = cst.parse_module(textwrap.dedent(source))
    except cst.ParserSyntaxError:
        return None
    t = make(_names_in(mod))
    new = mod.visit(t)
    if not getattr(t, "changed", 0):
        return None
    code = new.code
    return code if code != mod.code else None


#: rule name -> transformer factory (given the names the source already uses)
RULES: Dict[str, Callable[[Set[str]], cst.CSTTransformer]] = {
    "set-membership": lambda taken: _SetMembership(),
    "comprehension": lambda taken: _Comprehension(),
    "str-join": lambda taken: _StrJoin(taken),
    "hoist-lookups": lambda taken: _Hoist(taken),
}


def propose(source: str) -> List[Tuple[str, str]]:
    """[(rule, rewritten definition)] of every rule that applies to ``source`` (a
    definition, dedented), then all of them together when more than one does."""
    out: List[Tuple[str, str]] = []
    for name, make in RULES.items():
        new = _apply(source, make)
        if new is not None:
            out.append((name, new))
    if len(out) > 1:
        cur = source
        used = []
        for name, make in RULES.items():
            new = _apply(cur, make)
            if new is not None:
                cur, used = new, used + [name]
        if len(used) > 1:
            out.append(("+".join(used), cur))
    return out


def memoize(source: str) -> Optional[str]:
    """``source`` (a plain function's definition) with ``@functools.lru_cache(maxsize=None)``
    added; None when it is not a plain def (a method, a generator, already decorated)."""
    try:
        mod = cst.parse_module(textwrap.dedent(source))
    except cst.ParserSyntaxError:
        return None
    if len(mod.body) != 1 or not isinstance(mod.body[0], cst.FunctionDef):
        return None
    fn = mod.body[0]
    if fn.decorators or fn.asynchronous is not None:
        return None
    if m.findall(fn, m.Yield()) or m.findall(fn, m.Global()) or m.findall(fn, m.Nonlocal()):
        return None
    params = fn.params
    if params.star_arg is not cst.MaybeSentinel.DEFAULT and isinstance(params.star_arg, cst.Param) \
            or params.star_kwarg is not None:
        return None
    if params.params and params.params[0].name.value in ("self", "cls"):
        return None
    deco = cst.Decorator(decorator=cst.parse_expression("functools.lru_cache(maxsize=None)"))
    return mod.with_changes(body=[fn.with_changes(decorators=[deco])]).code
