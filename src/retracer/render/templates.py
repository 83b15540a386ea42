"""Page templates: files in ``retracer/render/assets`` with ``{{NAME}}``
placeholders, filled in one pass."""
from __future__ import annotations

import re
from importlib import resources

_PLACEHOLDER = re.compile(r"\{\{([A-Z]+)\}\}")


def asset(name: str) -> str:
    """The text of the asset file ``name`` (UTF-8)."""
    return resources.files("retracer.render").joinpath("assets", name).read_text(encoding="utf-8")


def fill(template: str, **values: str) -> str:
    """``template`` with each ``{{NAME}}`` of ``values`` replaced, in one pass: a
    value (a function or file name) that itself looks like a placeholder stays
    as it is; unknown placeholders are left unchanged."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def render(name: str, **values: str) -> str:
    """The asset ``name`` filled with ``values``."""
    return fill(asset(name), **values)
