"""`retracer compare BASE [HEAD]`: before/after benchmarks of two git revisions.

- :mod:`.git` -- refs, the working-tree snapshot, temporary worktrees, the diff;
- :mod:`.changes` -- the changed functions, by qualified name, on both sides;
- :mod:`.sides` -- each side's checkout and environment;
- :mod:`.bench` -- what a round runs (a command, the benchmark files, replayed calls);
- :mod:`.rounds` -- interleaved, calibrated, adaptive rounds under a time budget;
- :mod:`.functions` -- per-function numbers from the traced rounds;
- :mod:`.report` -- the report: terminal table, Markdown, JSON;
- :mod:`.workflow` -- :func:`run_compare`, the whole command.

The statistics are :mod:`retracer.analysis.stats`.
"""
