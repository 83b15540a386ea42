"""retracer: this Python process was started by a traced program, so it traces
itself too (see retracer/record/follow.py). Then the sitecustomize this one
hides, if there is one, runs as it would have."""


def _retracer_follow() -> None:
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    raw = os.environ.get("RETRACER_FOLLOW")
    # sys.path as python would make it without this directory
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    try:
        if raw and not sys.flags.isolated:
            try:
                from retracer.record import follow
            except ImportError:
                import json

                lib = json.loads(raw).get("lib")
                if not isinstance(lib, str):
                    raise
                sys.path.append(lib)
                try:
                    from retracer.record import follow
                finally:
                    if sys.path and sys.path[-1] == lib:
                        sys.path.pop()
            follow.child_start(raw)
    except Exception:
        pass  # never in the program's way: it runs untraced
    # the program's own sitecustomize, later on sys.path, runs as python would run it
    import importlib.machinery
    import importlib.util

    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
    if spec is not None and spec.loader is not None:
        mod = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = mod
        spec.loader.exec_module(mod)

_retracer_follow()
del _retracer_follow
