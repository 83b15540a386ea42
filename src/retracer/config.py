"""`[tool.retracer]` in pyproject.toml: found from a start directory upwards."""
from __future__ import annotations

import os
import sys
from typing import Any, Dict, Optional

from .errors import RetracerError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10
    import tomli as tomllib

#: keys accepted in [tool.retracer] and the type each must have
KNOWN_KEYS = {
    "output": str,
    "max-function-count": int,
    "timeout": (int, float),
    "only-functions": (list, str),
    "scope": str,
    "no-external-calls": bool,
    "no-imports": bool,
    "no-capture": bool,
    "c-calls": bool,
    "max-value-bytes": int,
    "redact": (list, str),
    "tests-root": str,
    "benchmarks-root": str,
}


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


def load_config(config_file_path: Optional[str] = None, start: Optional[str] = None) -> Dict[str, Any]:
    """Read [tool.retracer]; keys are returned with dashes replaced by underscores.

    Relative paths (scope, tests-root, benchmarks-root, output) are resolved
    against the directory of the pyproject.toml they come from.
    """
    path = config_file_path or find_pyproject(start or os.getcwd())
    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise RetracerError(f"retracer: cannot read config file {path}: {e.strerror}; check the path")
    except tomllib.TOMLDecodeError as e:
        raise RetracerError(f"retracer: {path} is not valid TOML ({e}); fix the file")
    section = data.get("tool", {}).get("retracer", {})
    if not isinstance(section, dict):
        raise RetracerError(f"retracer: [tool.retracer] in {path} must be a table")
    base = os.path.dirname(os.path.abspath(path))
    out: Dict[str, Any] = {}
    for key, value in section.items():
        if key not in KNOWN_KEYS:
            known = ", ".join(sorted(KNOWN_KEYS))
            raise RetracerError(f"retracer: unknown key '{key}' in [tool.retracer] of {path}; known keys: {known}")
        want = KNOWN_KEYS[key]
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise RetracerError(f"retracer: '{key}' in [tool.retracer] of {path} has the wrong type; see README")
        if key in ("scope", "tests-root", "benchmarks-root", "output"):
            value = os.path.normpath(os.path.join(base, value))
        if key in ("only-functions", "redact") and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        out[key.replace("-", "_")] = value
    out["_config_path"] = path
    return out
