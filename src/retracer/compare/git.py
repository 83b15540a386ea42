"""Git for `retracer compare`: refs, a snapshot of the working tree, temporary
worktrees, and the line-level diff between two commits.

Every git command runs with a fixed environment (no pager, no external diff, C
locale, paths not quoted) and its failure becomes one :class:`RetracerError` line.

The working tree as HEAD: its files as they are on disk (tracked files with
their uncommitted changes, untracked files that are not ignored, deletions) are
added to a *temporary index* (``GIT_INDEX_FILE``; the user's index and branch are
not touched), written as a tree and wrapped in a commit object that no ref points
to (``git commit-tree``, as ``git stash`` does). From then on both sides are
plain commits: the same diff, ``git show`` and worktree code serves both.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..errors import RetracerError

__all__ = ["Repo", "FileChange", "Hunk", "WorktreeSet"]

_IDENT = {"GIT_AUTHOR_NAME": "retracer compare", "GIT_AUTHOR_EMAIL": "retracer@localhost",
          "GIT_COMMITTER_NAME": "retracer compare", "GIT_COMMITTER_EMAIL": "retracer@localhost"}


def _git_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    for k in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(k, None)
    env.update({"GIT_PAGER": "cat", "PAGER": "cat", "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0",
                "GIT_OPTIONAL_LOCKS": "0"})
    if extra:
        env.update(extra)
    return env


def _first_line(text: str) -> str:
    for line in (text or "").splitlines():
        line = line.strip()
        if line:
            return line.replace("fatal: ", "").replace("error: ", "")
    return "no message"


@dataclass(frozen=True)
class Hunk:
    """Lines changed by one hunk: ``old`` and ``new`` are (first line, count);
    a count of 0 means lines were only added (old) or only removed (new) after
    that line."""

    old: Tuple[int, int]
    new: Tuple[int, int]


@dataclass
class FileChange:
    """One changed file between two commits."""

    status: str                 # A(dded), D(eleted), M(odified), R(enamed), C(opied), T(ype change)
    old_path: Optional[str]     # None when added
    new_path: Optional[str]     # None when deleted
    hunks: List[Hunk]


class Repo:
    """The git repository around ``start`` (a directory)."""

    def __init__(self, start: str) -> None:
        start = os.path.abspath(start)
        if not os.path.isdir(start):
            raise RetracerError(f"retracer: {start} is not a directory")
        if shutil.which("git") is None:
            raise RetracerError("retracer: compare needs git, and git is not on PATH; install git")
        p = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True, text=True,
                           env=_git_env())
        if p.returncode != 0:
            raise RetracerError(f"retracer: {start} is not inside a git repository ({_first_line(p.stderr)}); "
                                f"run compare from your project's checkout")
        self.root = os.path.realpath(p.stdout.strip())

    # ------------------------------------------------------------ plumbing

    def git(self, *args: str, check: bool = True, env: Optional[Dict[str, str]] = None,
            cwd: Optional[str] = None, what: str = "") -> str:
        p = subprocess.run(["git", "-c", "core.quotePath=false", *args], cwd=cwd or self.root,
                           capture_output=True, text=True, env=_git_env(env), errors="surrogateescape")
        if check and p.returncode != 0:
            doing = what or f"git {' '.join(args[:2])}"
            raise RetracerError(f"retracer: {doing} failed: {_first_line(p.stderr or p.stdout)}")
        return p.stdout

    def resolve(self, ref: str) -> str:
        """The commit ``ref`` names (any git revision: branch, tag, sha, HEAD~2, ...)."""
        if not ref or ref.startswith("-"):
            raise RetracerError(f"retracer: '{ref}' is not a git ref; give a branch, tag or commit")
        p = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "--end-of-options", ref + "^{commit}"],
                           cwd=self.root, capture_output=True, text=True, env=_git_env())
        if p.returncode != 0 or not p.stdout.strip():
            raise RetracerError(f"retracer: unknown git ref '{ref}' in {self.root}; give a branch, tag or commit "
                                f"(see 'git log --oneline')")
        return p.stdout.strip()

    def short(self, commit: str) -> str:
        return self.git("rev-parse", "--short", commit).strip() or commit[:8]

    def head_commit(self) -> Optional[str]:
        p = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "HEAD^{commit}"], cwd=self.root,
                           capture_output=True, text=True, env=_git_env())
        return p.stdout.strip() or None

    def subject(self, commit: str) -> str:
        return self.git("log", "-1", "--format=%s", commit).strip()

    def snapshot_working_tree(self, scratch: str) -> Tuple[str, bool]:
        """(commit, dirty): a commit object holding the working tree's files as
        they are on disk (tracked, untracked not ignored; deletions), parent HEAD.
        ``dirty`` is False when it equals HEAD. Nothing the user sees changes: a
        temporary index in ``scratch`` is used and no ref is written."""
        head = self.head_commit()
        env = {"GIT_INDEX_FILE": os.path.join(scratch, "snapshot.index"), **_IDENT}
        hint = "; commit or stash the changes, or name HEAD explicitly (retracer compare BASE HEAD)"
        try:
            if head:
                self.git("read-tree", head, env=env, what="copying the working tree (git read-tree)")
            self.git("add", "-A", "--", ".", env=env, what="copying the working tree with its uncommitted "
                                                          "changes (git add -A)")
            tree = self.git("write-tree", env=env, what="copying the working tree (git write-tree)").strip()
        except RetracerError as e:
            raise RetracerError(str(e) + hint) from None
        if head and tree == self.git("rev-parse", head + "^{tree}").strip():
            return head, False
        args = ["commit-tree", tree, "-m", "retracer compare: the working tree with its uncommitted changes"]
        if head:
            args[2:2] = ["-p", head]
        commit = self.git(*args, env=_IDENT, what="copying the working tree (git commit-tree)").strip()
        return commit, True

    # ------------------------------------------------------------ content

    def show(self, commit: str, path: str) -> Optional[str]:
        """The text of ``path`` at ``commit`` (None if it is not there or not text)."""
        p = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=self.root, capture_output=True,
                           env=_git_env())
        if p.returncode != 0:
            return None
        try:
            return p.stdout.decode("utf-8")
        except UnicodeDecodeError:
            return p.stdout.decode("latin-1")

    def ls_files(self, commit: str, suffix: str = ".py") -> List[str]:
        out = self.git("ls-tree", "-r", "-z", "--name-only", commit)
        return [p for p in out.split("\0") if p and p.endswith(suffix)]

    def changes(self, base: str, head: str) -> List[FileChange]:
        """Every file changed from ``base`` to ``head`` (renames detected), with
        the line ranges of its hunks for text files."""
        out = self.git("diff", "--no-ext-diff", "--no-textconv", "--name-status", "-z", "-M", base, head,
                       what="git diff")
        parts = out.split("\0")
        files: List[FileChange] = []
        i = 0
        while i < len(parts) and parts[i]:
            status = parts[i][0]
            if status in "RC":
                old, new = parts[i + 1], parts[i + 2]
                i += 3
            else:
                path = parts[i + 1]
                old = None if status == "A" else path
                new = None if status == "D" else path
                i += 2
            files.append(FileChange(status, old, new, []))
        for fc in files:
            paths = [p for p in (fc.old_path, fc.new_path) if p]
            if not any(p.endswith(".py") for p in paths):
                continue
            fc.hunks = self._hunks(base, head, fc)
        return files

    def _hunks(self, base: str, head: str, fc: FileChange) -> List[Hunk]:
        spec = [f"{base}:{fc.old_path}" if fc.old_path else None, f"{head}:{fc.new_path}" if fc.new_path else None]
        if fc.old_path and fc.new_path:
            out = self.git("diff", "--no-ext-diff", "--no-textconv", "-U0", "--no-color", spec[0], spec[1],
                           what="git diff")
        else:  # added or deleted: every line is changed
            text = self.show(base if fc.old_path else head, fc.old_path or fc.new_path or "") or ""
            n = len(text.splitlines())
            return [Hunk((1, n), (0, 0))] if fc.old_path else [Hunk((0, 0), (1, n))]
        hunks = []
        for line in out.splitlines():
            if line.startswith("@@ "):
                old, new = line.split(" ")[1:3]
                hunks.append(Hunk(_range(old[1:]), _range(new[1:])))
        return hunks

    # ------------------------------------------------------------ worktrees

    def add_worktree(self, path: str, commit: str) -> None:
        self.git("worktree", "add", "--detach", "--quiet", path, commit, what=f"creating a worktree at {path}")

    def remove_worktree(self, path: str) -> None:
        subprocess.run(["git", "worktree", "remove", "--force", "--force", path], cwd=self.root,
                       capture_output=True, env=_git_env())
        if os.path.exists(path):
            shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=self.root, capture_output=True, env=_git_env())

    def worktrees(self) -> List[str]:
        out = self.git("worktree", "list", "--porcelain")
        return [line[len("worktree "):] for line in out.splitlines() if line.startswith("worktree ")]


def _range(s: str) -> Tuple[int, int]:
    if "," in s:
        a, b = s.split(",", 1)
        return int(a), int(b)
    return int(s), 1


class WorktreeSet:
    """Temporary worktrees under one private directory (``tempfile.mkdtemp``:
    names that cannot collide, also with another compare running at the same
    time). :meth:`close` removes every one and the directory, whatever happened;
    use it as a context manager."""

    def __init__(self, repo: Repo, parent: Optional[str] = None) -> None:
        self.repo = repo
        self.dir = os.path.realpath(tempfile.mkdtemp(prefix="retracer-compare-", dir=parent))
        self.paths: List[str] = []

    def scratch(self, name: str) -> str:
        p = os.path.join(self.dir, name)
        os.makedirs(p, exist_ok=True)
        return p

    def add(self, name: str, commit: str) -> str:
        path = os.path.join(self.dir, name)
        self.paths.append(path)
        self.repo.add_worktree(path, commit)
        return path

    def close(self) -> None:
        for p in reversed(self.paths):
            try:
                self.repo.remove_worktree(p)
            except Exception:
                shutil.rmtree(p, ignore_errors=True)
        self.paths = []
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "WorktreeSet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
