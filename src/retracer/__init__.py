"""retracer: trace a Python program with a C engine, rank where the time goes,
and turn the real calls into replay tests."""
from ._version import VERSION as __version__
from .errors import RetracerError
from .record.tracer import MECHANISM, Tracer, TraceSummary

__all__ = ["Tracer", "TraceSummary", "RetracerError", "MECHANISM", "__version__", "load_ipython_extension"]


def load_ipython_extension(ip) -> None:
    """``%load_ext retracer``: register %%retrace, %%rprofile, %rtimeit and %%rtimeit
    (see retracer.magics). IPython is imported only here."""
    from .magics import load_ipython_extension as load

    load(ip)
