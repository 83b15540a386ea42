"""Regenerate src/retracer/docs/ (the `python -m retracer help` topics) from README.md and docs/*.md."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from retracer import helptopics  # noqa: E402


def main() -> int:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    docs = {}
    for name in helptopics.REFERENCE:
        with open(os.path.join(ROOT, "docs", name + ".md"), encoding="utf-8") as f:
            docs[name] = f.read()
    files = helptopics.build(readme, docs)
    out = os.path.join(ROOT, "src", "retracer", "docs")
    os.makedirs(out, exist_ok=True)
    for old in os.listdir(out):
        if old not in files and (old.endswith(".md") or old == helptopics.INDEX):
            os.unlink(os.path.join(out, old))
    for name, text in files.items():
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(text)
    print(f"{len(files) - 1} help topics written to {os.path.relpath(out, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
