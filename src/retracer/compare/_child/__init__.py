"""Files the rounds of `retracer compare` load in the benchmarked process.

They import nothing of retracer (only the standard library and pytest), so the
untimed parts of a round stay small and a side's own copy of retracer (when
retracer itself is compared) cannot get in the way. This directory goes last on
the round's ``PYTHONPATH``.
"""
