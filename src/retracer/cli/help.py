"""`retracer help [TOPIC]`: the documentation, offline."""
from __future__ import annotations

import argparse
import sys

from ..errors import RetracerError

DESCRIPTION = ("Print a documentation topic (the user guide's sections and the reference documents, shipped "
               "with the package); without TOPIC, list the topics.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("topic", nargs="?", help="a topic name or a word of its title (e.g. diff, sample, exports)")


def run(ns: argparse.Namespace) -> int:
    from .. import helptopics

    if not helptopics.topics():
        raise RetracerError("retracer: the help topics are not installed with this copy of retracer "
                            "(run python scripts/sync_help.py in a source checkout)")
    if not ns.topic:
        print(helptopics.listing())
        return 0
    hits = helptopics.find(ns.topic)
    if not hits:
        raise RetracerError(f"retracer: no help topic '{ns.topic}'; the topics: "
                            + ", ".join(t for t, _ in helptopics.topics()))
    if len(hits) > 1:
        print(f"retracer: '{ns.topic}' matches {len(hits)} topics: {', '.join(hits)}; showing {hits[0]}",
              file=sys.stderr)
    sys.stdout.write(helptopics.read(hits[0]))
    return 0
