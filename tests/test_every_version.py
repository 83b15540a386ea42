"""One or two tests of each file whose tests run on the first interpreter only
(conftest.py ONCE_FILES: the terminal tables, compare's and optimize's workflows,
the view, the reader's safety checks, the ranking, the help texts), collected here
again so that it runs on every Python version: code of those commands that would not
run on some version (a newer library call, a syntax) fails there too. The tests are
the files' own, with their fixtures; nothing is copied."""
from __future__ import annotations

import os


if os.name == "posix":  # the terminal tests drive a pseudo-terminal
    from test_terminal import oop_trace, test_piped_output_is_plain_and_whole, test_profile_fits_the_terminal  # noqa: F401
from test_compare import repo, test_faster_function_and_untouched_function, tmp  # noqa: F401
from test_optimize import project, test_builtin_rewrite_found_and_verified  # noqa: F401
from test_view import test_generators_threads_and_exceptions_fold, test_captured_calls_show_their_own_arguments  # noqa: F401
from test_security import traced, test_view_and_exports_never_run_a_payload_even_with_trust  # noqa: F401
from test_ranking import test_real_program_counts_savings_and_replayable  # noqa: F401
from test_help import test_help_lists_and_prints_topics  # noqa: F401


def test_every_module_of_retracer_imports():
    """Every module of the package imports on this version (the commands import
    theirs lazily, so a module no test here reaches would otherwise go unnoticed)."""
    import importlib
    import pkgutil

    import retracer

    names = [m.name for m in pkgutil.walk_packages(retracer.__path__, "retracer.")
             if not m.name.endswith("__main__") and "._boot" not in m.name]
    assert len(names) > 40, names
    failed = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - reported below
            failed[name] = f"{type(e).__name__}: {e}"
    assert not failed, failed
