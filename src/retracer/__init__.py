"""retracer: trace a Python program with a C engine, rank where the time goes,
and turn the real calls into replay tests."""
from .errors import RetracerError
from .tracer import MECHANISM, Tracer, TraceSummary

__version__ = "0.1.0"
__all__ = ["Tracer", "TraceSummary", "RetracerError", "MECHANISM", "__version__"]
