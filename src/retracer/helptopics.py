"""``python -m retracer help [TOPIC]``: the README's sections and the reference
documents, shipped inside the package (``retracer/docs/``) so that a pip install has
them without a browser or a network.

The files are generated from ``README.md`` and ``docs/*.md`` by
``python scripts/sync_help.py`` (a test checks that they are in sync).
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

DOCS_DIR = os.path.join(os.path.dirname(__file__), "docs")
INDEX = "index.txt"

#: README headings -> topic names (other headings: their words, lowercased, joined by '-')
NAMES = {
    "Install": "install", "Use": "use", "Exports": "exports", "Trace options": "trace-options",
    "The ranked profile": "profile", "Real inputs and outputs, replayed": "replay",
    "See the run: `retracer view`": "view", "From Python": "python-api",
    "Micro-benchmarks: `retracer timeit`": "timeit", "Comparing two revisions: `retracer compare`": "compare",
    "What changed between two runs: `retracer diff`": "diff", "Sampling: `retracer sample`": "sample",
    "Terminal output": "terminal", "Help without a browser: `python -m retracer help`": "help",
    "IPython and Jupyter": "ipython", "Configuration": "configuration",
}
#: reference documents: docs/<name>.md -> topic <name>
REFERENCE = ("trace-format", "call-stream", "export-json", "folding")


def slug(heading: str) -> str:
    if heading in NAMES:
        return NAMES[heading]
    words = re.findall(r"[a-z0-9]+", heading.lower().replace("`", ""))
    return "-".join(words[:5]) or "topic"


def split_readme(text: str) -> List[Tuple[str, str, str]]:
    """(topic, title, body) for every ``##``/``###`` section of the README (a section
    ends at the next one; ``####`` headings stay inside)."""
    out: List[Tuple[str, str, str]] = []
    cur: Optional[List] = None
    fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"^(##|###) (.+)$", line)
        if m:
            if cur is not None:
                out.append((cur[0], cur[1], "\n".join(cur[2]).strip() + "\n"))
            title = m.group(2).strip()
            cur = [slug(title), title, [line]]
        elif cur is not None:
            cur[2].append(line)
    if cur is not None:
        out.append((cur[0], cur[1], "\n".join(cur[2]).strip() + "\n"))
    return out


def build(readme: str, docs: Dict[str, str]) -> Dict[str, str]:
    """The files of ``retracer/docs``: ``<topic>.md`` and the index (topic, tab, title)."""
    files: Dict[str, str] = {}
    index = []
    seen = set()
    for topic, title, body in split_readme(readme):
        base, n = topic, 2
        while topic in seen:
            topic, n = f"{base}-{n}", n + 1
        seen.add(topic)
        files[f"{topic}.md"] = body
        index.append(f"{topic}\t{title.replace('`', '')}")
    for name in REFERENCE:
        if name in docs:
            first = next((ln.lstrip("# ").strip() for ln in docs[name].splitlines() if ln.startswith("#")), name)
            files[f"{name}.md"] = docs[name]
            index.append(f"{name}\t{first}")
    files[INDEX] = "\n".join(index) + "\n"
    return files


def topics() -> List[Tuple[str, str]]:
    try:
        with open(os.path.join(DOCS_DIR, INDEX), encoding="utf-8") as f:
            return [tuple(line.split("\t", 1)) for line in f.read().splitlines() if "\t" in line]  # type: ignore
    except OSError:
        return []


def find(word: str) -> List[str]:
    """Topics named ``word``, else those whose name or title contains it."""
    word = word.lower().strip()
    names = topics()
    exact = [t for t, _ in names if t == word]
    if exact:
        return exact
    return [t for t, title in names if word in t or word in title.lower()]


def read(topic: str) -> str:
    with open(os.path.join(DOCS_DIR, f"{topic}.md"), encoding="utf-8") as f:
        return f.read()


def listing() -> str:
    names = topics()
    width = max([len(t) for t, _ in names] + [8])
    lines = ["retracer help topics (python -m retracer help TOPIC):", ""]
    lines += [f"  {t:<{width}}  {title}" for t, title in names]
    return "\n".join(lines)


def pointer(topic: str) -> str:
    """The URL-free pointer the --help texts use."""
    return f"python -m retracer help {topic}"


__all__: Sequence[str] = ("topics", "find", "read", "listing", "pointer", "build", "split_readme")
