"""Replay: call recorded functions again with their recorded inputs and judge
the outcome (:mod:`.replayer`), compare values (:mod:`.comparator`), run a whole
trace's calls to verdicts (:mod:`.verdicts`), and generate pytest files
(:mod:`.testgen`). Generated test files import :class:`ReplayTests` from here."""
from .testgen import ReplayTests, write_replay_tests

__all__ = ["ReplayTests", "write_replay_tests"]
