"""The trace settings, declared once.

Each :class:`Setting` says its keyword name (``Tracer(max_function_count=...)``),
its command-line flag, its type, default and help text, its key in
``[tool.retracer]`` of pyproject.toml, and whether it is recorded in the trace's
``options``. The ``trace`` command's parser (:func:`add_arguments`), the config
reader (:func:`load_config`), :class:`retracer.Tracer`'s defaults
(:func:`resolve`) and the options saved into the trace derive from
:data:`SETTINGS`. Precedence: an explicit value (flag or keyword), then
``[tool.retracer]``, then the default.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from .errors import RetracerError


def _toml() -> Any:
    # imported only to read a pyproject.toml that names retracer (10 ms at every start otherwise)
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.9/3.10
        import tomli as tomllib
    return tomllib

DEFAULT_REDACT = ("password", "passwd", "secret", "token", "api_key", "apikey", "authorization", "cookie")


def _names_list(value: Any) -> List[str]:
    """'a, b' or ['a', 'b'] -> ['a', 'b']."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


class Setting(NamedTuple):
    """One trace option (a NamedTuple, not a dataclass: dataclasses imports inspect,
    before the traced program would)."""

    name: str                        # keyword of Tracer and key of the recorded options
    default: Any
    help: str
    type: Any = str                  # str, int, float, bool, list (of names) or "paths" (one or more paths)
    flag: Optional[str] = None       # command-line flag; None: not on the command line
    short: Optional[str] = None      # short flag, e.g. "-o"
    metavar: Optional[str] = None
    negate: bool = False             # a bool set by a --no-... flag (c_calls: --no-c-calls)
    config: bool = True              # readable from [tool.retracer] (key: name with dashes)
    path: bool = False               # a path: relative values are resolved against pyproject.toml's directory
    recorded: bool = True            # saved in the trace's meta "options"
    check: Optional[Callable[[Any], Optional[str]]] = None  # returns an error text for a bad value

    @property
    def key(self) -> str:
        """The [tool.retracer] key."""
        return self.name.replace("_", "-")

    @property
    def takes_value(self) -> bool:
        return self.type is not bool


def _at_least(n: float, what: str) -> Callable[[Any], Optional[str]]:
    def check(v: Any) -> Optional[str]:
        return None if v is None or v >= n else what
    return check


SETTINGS: Tuple[Setting, ...] = (
    Setting("output", "retracer.trace", "trace file to write (default: retracer.trace)",
            flag="--output", short="-o", metavar="FILE", path=True, recorded=False),
    Setting("max_function_count", 100,
            "calls captured per function (default 100; 0 captures none): the first 3/4, the rest only "
            "for calls whose argument shapes are new (see: python -m retracer help replay, 'Which calls are kept')",
            type=int, flag="--max-function-count", metavar="N",
            check=_at_least(0, "must be 0 or more; 0 captures no calls")),
    Setting("timeout", None, "stop tracing after S seconds and write the trace; the program runs on",
            type=float, flag="--timeout", metavar="S",
            check=lambda v: None if v is None or v > 0 else "must be a positive number of seconds"),
    Setting("only_functions", None,
            "only these functions (by name or qualified name) and their callees go into the call stream",
            type=list, flag="--only-functions", metavar="a,b"),
    Setting("scope", None, "your code (may be given several times; a directory inside site-packages is "
            "honoured): default the script's directory, or the current directory for -m",
            type="paths", flag="--scope", metavar="DIR", path=True),
    Setting("no_external_calls", False,
            "calls from your code to code outside the scope are not in the call stream",
            type=bool, flag="--no-external-calls"),
    Setting("no_imports", False, "import machinery and module bodies are not in the call stream",
            type=bool, flag="--no-imports"),
    Setting("no_capture", False, "record the profile and call stream only, not arguments and results",
            type=bool, flag="--no-capture"),
    Setting("c_calls", True, "do not record calls of C functions (builtins)",
            type=bool, flag="--no-c-calls", negate=True),
    Setting("follow", True,
            "do not trace the processes the program starts (multiprocessing, concurrent.futures, subprocess, "
            "os.fork, os.exec*): only this one", type=bool, flag="--no-follow", negate=True),
    Setting("capture_share", 0.2,
            "capture never takes more than this share of the run's time so far (default 0.2: 20%%): "
            "over it, calls are not captured until the run catches up; the trace says so", type=float, flag="--capture-share", metavar="F",
            check=lambda v: None if 0 < v <= 1 else "must be a share of the run's time, above 0 and at most 1"),
    Setting("max_capture_bytes", 32 << 20,
            "capture stops when the captured values take this many bytes (default 32 MiB)",
            type=int, flag="--max-capture-bytes", metavar="N",
            check=_at_least(1, "must be a positive number of bytes, e.g. 33554432")),
    Setting("max_stream_bytes", 32 << 20,
            "the call stream (the timeline) stops being recorded when it takes this many bytes, "
            "compressed (default 32 MiB; 0: no limit); the profile counts every call to the end",
            type=int, flag="--max-stream-bytes", metavar="N",
            check=_at_least(0, "must be 0 (no limit) or a number of bytes, e.g. 33554432")),
    Setting("max_value_bytes", 1 << 20,
            "size cap of one captured value, pickled (default 1 MiB); a call with a larger value is not "
            "replayable", type=int, flag="--max-value-bytes", metavar="N",
            check=_at_least(1, "must be a positive number of bytes, e.g. 1048576")),
    Setting("redact", list(DEFAULT_REDACT),
            "secret-looking names: a call whose argument, a key of a dict inside a value, or an "
            "attribute of an argument is named with a listed word (as the name or consecutive parts of it: "
            "db_password, apiKey), or whose function's name ends with one (get_token), is not written "
            "(a plain 'token' only when its value is a string); default " + ",".join(DEFAULT_REDACT),
            type=list, flag="--redact",
            metavar="a,b"),
    Setting("tests_root", None, "where replay tests go", flag="--tests-root", metavar="DIR", path=True,
            recorded=False),
    Setting("benchmarks_root", None, "where the project's benchmarks are (used by compare)",
            path=True, recorded=False),
)

BY_NAME: Dict[str, Setting] = {s.name: s for s in SETTINGS}
BY_KEY: Dict[str, Setting] = {s.key: s for s in SETTINGS if s.config}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every setting that has a flag to ``parser`` (values default to None:
    'not given', so that [tool.retracer] and the defaults can apply)."""
    for s in SETTINGS:
        if s.flag is None:
            continue
        flags = [s.short, s.flag] if s.short else [s.flag]
        if s.type is bool:
            parser.add_argument(*flags, dest=s.name, action="store_const", const=not s.negate, default=None,
                                help=s.help)
        elif s.type == "paths":
            parser.add_argument(*flags, dest=s.name, action="append", metavar=s.metavar, default=None, help=s.help)
        else:
            conv = {int: int, float: float}.get(s.type, str)
            parser.add_argument(*flags, dest=s.name, type=conv, metavar=s.metavar, default=None, help=s.help)


def value_flags() -> Tuple[str, ...]:
    """The command-line flags that take a value (to split retracer's options from
    the traced program's command line)."""
    out: List[str] = []
    for s in SETTINGS:
        if s.flag and s.takes_value:
            out += [f for f in (s.short, s.flag) if f]
    return tuple(out)


def find_pyproject(start: str) -> Optional[str]:
    """The nearest pyproject.toml in `start` or a parent directory, or None."""
    d = os.path.abspath(start)
    while True:
        cand = os.path.join(d, "pyproject.toml")
        if os.path.isfile(cand):
            return cand
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


_TOML_TYPES = {str: (str,), int: (int,), float: (int, float), bool: (bool,), list: (list, str),
               "paths": (list, str)}


def load_config(config_file_path: Optional[str] = None, start: Optional[str] = None) -> Dict[str, Any]:
    """Read [tool.retracer]: {setting name: value}, plus ``_config_path``.

    Relative paths are resolved against the directory of the pyproject.toml
    they come from; name lists may be a TOML list or a comma-separated string.
    """
    path = config_file_path or find_pyproject(start or os.getcwd())
    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise RetracerError(f"retracer: cannot read config file {path}: {e.strerror}; check the path")
    if b"retracer" not in raw:
        return {}  # no [tool.retracer] table: the file is other tools' business
    tomllib = _toml()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RetracerError(f"retracer: {path} is not valid TOML ({e}); fix the file")
    section = data.get("tool", {}).get("retracer", {})
    if not isinstance(section, dict):
        raise RetracerError(f"retracer: [tool.retracer] in {path} must be a table")
    base = os.path.dirname(os.path.abspath(path))
    out: Dict[str, Any] = {}
    for key, value in section.items():
        s = BY_KEY.get(key)
        if s is None:
            known = ", ".join(sorted(BY_KEY))
            raise RetracerError(f"retracer: unknown key '{key}' in [tool.retracer] of {path}; known keys: {known}")
        want = _TOML_TYPES[s.type]
        if not isinstance(value, want) or (s.type in (int, float) and isinstance(value, bool)):
            raise RetracerError(f"retracer: '{key}' in [tool.retracer] of {path} has the wrong type "
                                f"({type(value).__name__}); see: python -m retracer help configuration")
        if s.type == "paths":
            value = [value] if isinstance(value, str) else value
            if not all(isinstance(v, str) for v in value):
                raise RetracerError(f"retracer: '{key}' in [tool.retracer] of {path} must be a path or a list of paths")
        if s.path:
            value = ([os.path.normpath(os.path.join(base, v)) for v in value] if isinstance(value, list)
                     else os.path.normpath(os.path.join(base, value)))
        if s.type is list:
            value = _names_list(value)
        out[s.name] = value
    out["_config_path"] = path
    return out


def resolve(explicit: Mapping[str, Any], config: Mapping[str, Any]) -> Dict[str, Any]:
    """Every setting's value: ``explicit`` (not None) wins over ``config``, which
    wins over the default. Values are converted to the setting's type and
    checked; a bad one raises RetracerError naming its flag and keyword."""
    out: Dict[str, Any] = {}
    for s in SETTINGS:
        v = explicit.get(s.name)
        if v is None:
            v = config.get(s.name, s.default)
        if v is not None:
            if s.type is list:
                v = _names_list(v)
            elif s.type == "paths":
                v = [v] if isinstance(v, str) else [str(p) for p in v]
            elif s.type is bool:
                v = bool(v)
            elif s.type is int:
                v = int(v)
            elif s.type is float:
                v = float(v)
        if s.check is not None:
            problem = s.check(v)
            if problem:
                flag = f"{s.flag} ({s.name})" if s.flag else s.name
                raise RetracerError(f"retracer: {flag} {problem}")
        out[s.name] = list(v) if isinstance(v, list) else v
    return out


def recorded(values: Mapping[str, Any]) -> Dict[str, Any]:
    """The options saved into a trace."""
    return {s.name: values.get(s.name) for s in SETTINGS if s.recorded}


def names(values: Optional[Sequence[str]]) -> Optional[List[str]]:
    """A list of names from 'a,b' or a sequence; None stays None."""
    return None if values is None else _names_list(values)
