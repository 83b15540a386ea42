"""Replay: call recorded functions again with their recorded inputs and judge
the outcome (:mod:`.replayer`), compare values (:mod:`.comparator`), run a whole
trace's calls to verdicts (:mod:`.verdicts`), and generate pytest files
(:mod:`.testgen`). Generated test files import :class:`ReplayTests` from here."""
__all__ = ["ReplayTests", "write_replay_tests"]


def __getattr__(name: str):
    """ReplayTests and write_replay_tests, imported when first asked for (PEP 562): the
    replay child imports this package's modules, not the test generator."""
    if name not in __all__:
        raise AttributeError(f"module 'retracer.replay' has no attribute {name!r}")
    from . import testgen

    value = getattr(testgen, name)
    globals()[name] = value
    return value
