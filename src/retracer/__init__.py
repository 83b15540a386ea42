"""retracer: trace a Python program with a C engine, rank where the time goes,
and turn the real calls into replay tests."""
from ._version import VERSION as __version__

# Tracer and the rest are imported when first asked for (PEP 562): a process that
# needs only a part of the package (a replay child, `retracer profile`) does not pay
# for the tracer's imports.
_LAZY = {"RetracerError": "errors", "MECHANISM": "record.tracer", "Tracer": "record.tracer",
         "TraceSummary": "record.tracer"}


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'retracer' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


__all__ = ["Tracer", "TraceSummary", "RetracerError", "MECHANISM", "__version__", "load_ipython_extension"]


def load_ipython_extension(ip) -> None:
    """``%load_ext retracer``: register %%retrace, %%rprofile, %rtimeit and %%rtimeit
    (see retracer.magics). IPython is imported only here."""
    from .magics import load_ipython_extension as load

    load(ip)
