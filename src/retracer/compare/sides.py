"""The two sides of a comparison: each a commit checked out into its own
temporary worktree, with the environment its rounds run in.

The environment. A project that builds (a C extension: ``ext_modules`` in
setup.py, or a compiling build backend such as scikit-build, meson-python,
maturin, setuptools-rust, Cython, cffi, pybind11) is installed, per side, with
``pip install --no-deps --target DIR`` from that side's worktree into a directory
of its own (first without build isolation, using the build tools of the running
environment; if that fails, with isolation). ``DIR`` goes first on
``PYTHONPATH``, ``DIR/bin`` first on ``PATH``: the side's own build shadows any
installed copy, while the project's dependencies come from the running
environment. What the build made (extension modules, generated files) is also
copied into the worktree beside the package's sources, since a script run from
the worktree imports the package from there. A project that does not build runs from its tree: the worktree (and
its ``src/`` when there is one) first on ``PYTHONPATH``. ``--install yes|no``
overrides the detection.

Both sides run with the interpreter compare runs under (``sys.executable``), in
the worktree's counterpart of the current directory.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..errors import RetracerError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Side", "needs_build", "prepare_environment", "keep_log"]

_COMPILING = ("scikit-build", "scikit_build", "meson-python", "mesonpy", "maturin", "setuptools-rust",
              "setuptools_rust", "cython", "cffi", "pybind11", "nanobind", "numpy.distutils")


@dataclass
class Side:
    """One side (``base`` or ``head``) of a comparison."""

    name: str                      # 'base' | 'head'
    ref: str                       # as the user wrote it ('' for the working tree)
    commit: str
    short: str
    label: str                     # 'main (1a2b3c4)', 'working tree (1a2b3c4 + uncommitted changes)'
    root: str = ""                 # the worktree
    workdir: str = ""              # where the rounds run (the current directory's counterpart)
    python: str = sys.executable
    pythonpath: List[str] = field(default_factory=list)
    install_dir: Optional[str] = None
    env: Dict[str, str] = field(default_factory=dict)
    repo_files: List[str] = field(default_factory=list)   # the commit's .py files (for installed copies)

    def relpath(self, filename: Optional[str]) -> Optional[str]:
        """The repository path of a file this side ran ('/'-separated), or None
        when it is not the project's (stdlib, site-packages, <string>)."""
        if not filename or filename.startswith("<"):
            return None
        f = os.path.realpath(filename)
        root = self.root.rstrip(os.sep) + os.sep
        if f.startswith(root):
            return f[len(root):].replace(os.sep, "/")
        if self.install_dir:
            inst = self.install_dir.rstrip(os.sep) + os.sep
            if f.startswith(inst):
                rel = f[len(inst):].replace(os.sep, "/")
                hits = [p for p in self.repo_files if p == rel or p.endswith("/" + rel)]
                if len(hits) == 1:
                    return hits[0]
                if hits:
                    return min(hits, key=len)
        return None


def needs_build(root: str) -> bool:
    """Whether the project in ``root`` compiles something when installed."""
    setup_py = os.path.join(root, "setup.py")
    if os.path.isfile(setup_py):
        try:
            with open(setup_py, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
        if re.search(r"\bext_modules\b|\bExtension\s*\(|\bcythonize\s*\(|\bcffi_modules\b|\brust_extensions\b",
                     text):
            return True
    pyproject = os.path.join(root, "pyproject.toml")
    if os.path.isfile(pyproject):
        try:
            with open(pyproject, "rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError):
            return False
        bs = data.get("build-system", {}) or {}
        names = " ".join([str(bs.get("build-backend", ""))] + [str(r) for r in bs.get("requires", []) or []]).lower()
        if any(c in names for c in _COMPILING):
            return True
        st = (data.get("tool", {}) or {}).get("setuptools", {}) or {}
        if st.get("ext-modules"):
            return True
    return False


def keep_log(name: str, text: str) -> str:
    """Write ``text`` to a file that outlives the comparison's temporary
    directory (so an error line can point at the full output)."""
    fd, path = tempfile.mkstemp(prefix=f"retracer-compare-{name}-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as f:
        f.write(text)
    return path


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


_BUILT = (".so", ".pyd", ".dylib")


def _complete_tree(installed: str, root: str) -> None:
    """Copy what the build made (extension modules, generated files such as a
    version module) from the install directory into the side's worktree, next to
    the package's sources: a script run from the worktree (``python bench.py``)
    has the worktree first on ``sys.path`` and imports the package from there."""
    for dirpath, dirnames, filenames in os.walk(installed):
        rel_dir = os.path.relpath(dirpath, installed)
        top = rel_dir.split(os.sep)[0]
        if rel_dir == "." or top == "bin" or top.endswith((".dist-info", ".egg-info", ".data")) \
                or top == "__pycache__":
            if rel_dir == ".":
                for f in filenames:  # top-level modules (a single-file extension)
                    if f.endswith(_BUILT):
                        _copy_if_missing(os.path.join(dirpath, f), [os.path.join(root, f),
                                                                     os.path.join(root, "src", f)])
            continue
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for f in filenames:
            rel = os.path.join(rel_dir, f)
            _copy_if_missing(os.path.join(dirpath, f), [os.path.join(root, rel), os.path.join(root, "src", rel)])


def _copy_if_missing(src: str, candidates: List[str]) -> None:
    import shutil

    for dst in candidates:
        if os.path.isdir(os.path.dirname(dst)):
            if not os.path.exists(dst) or src.endswith(_BUILT):
                try:
                    shutil.copy2(src, dst)
                except OSError:
                    pass
            return


def prepare_environment(side: Side, install: bool, scratch: str, timeout: Optional[float]) -> None:
    """Fill ``side.pythonpath``, ``side.install_dir`` and ``side.env``."""
    paths: List[str] = []
    if install:
        target = os.path.join(scratch, f"{side.name}-env")
        os.makedirs(target, exist_ok=True)
        base_cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "--no-warn-script-location", "--target", target]
        output = ""
        for extra in (["--no-build-isolation"], []):
            try:
                p = subprocess.run(base_cmd + extra + [side.root], capture_output=True, text=True,
                                   timeout=timeout, cwd=side.root, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise RetracerError(f"retracer: installing {side.label} did not finish within the --timeout; "
                                    f"raise --timeout") from None
            output += f"$ {' '.join(base_cmd + extra + [side.root])}\n{p.stdout}{p.stderr}\n"
            if p.returncode == 0:
                break
        else:
            log = keep_log(f"{side.name}-install", output)
            raise RetracerError(f"retracer: installing {side.label} failed: {_last_line(output)}; "
                                f"its full output is in {log}")
        side.install_dir = os.path.realpath(target)
        _complete_tree(side.install_dir, side.root)
        paths.append(side.install_dir)
    else:
        src = os.path.join(side.root, "src")
        if os.path.isdir(src) and any(
                os.path.isfile(os.path.join(src, d, "__init__.py")) or d.endswith(".py") for d in os.listdir(src)):
            paths.append(src)
        paths.append(side.root)
    side.pythonpath = paths
    env = dict(os.environ)
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(paths + ([old] if old else []))
    if side.install_dir:
        env["PATH"] = os.path.join(side.install_dir, "bin") + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONSTARTUP", None)
    side.env = env
