"""Comparing values of numpy and pandas (imported only when a value comes from
them). Each adapter returns None (equal), a Mismatch, a list of child pairs to
compare, or NOT_HANDLED."""
from __future__ import annotations

import re
from typing import Any

from .mismatch import (Mismatch, _differs, _index_segment, _item, _Path, _qualname, _render,
                       _short_repr)

NOT_HANDLED = object()


def compare_numpy(cmp: Any, e: Any, a: Any, node: _Path) -> Any:
    """numpy arrays by dtype, shape, then values; numpy scalars like Python numbers."""
    import numpy as np

    if isinstance(e, np.ndarray):
        if e.dtype != a.dtype:
            return Mismatch(_render(node), f"dtype differs: {e.dtype} != {a.dtype}",
                            e, a)
        if e.shape != a.shape:
            return Mismatch(_render(node), f"shape differs: {e.shape} != {a.shape}",
                            e, a)
        if e.dtype.kind == "O":
            return [(e[idx], a[idx], (node, _index_segment(idx)))
                    for idx in np.ndindex(*e.shape)]
        if e.dtype.kind in "fc":
            if cmp.exact:
                if np.array_equal(e, a, equal_nan=True):
                    return None
                differ = ~((e == a) | (np.isnan(e) & np.isnan(a)))
            else:
                if np.allclose(e, a, equal_nan=True):
                    return None
                differ = ~np.isclose(e, a, equal_nan=True)
        else:
            try:
                if np.array_equal(e, a, equal_nan=True):
                    return None
            except TypeError:
                if np.array_equal(e, a):
                    return None
            try:
                differ = np.asarray(e != a, dtype=bool)
                if e.dtype.kind in "mM":
                    differ &= ~(np.isnat(e) & np.isnat(a))
            except Exception:  # noqa: BLE001
                differ = None
        reason = "array values differ"
        if differ is not None and differ.shape == e.shape and differ.any():
            idx = tuple(int(i) for i in np.argwhere(differ)[0])
            reason += (f" ({int(differ.sum())} of {e.size} elements), first at "
                       f"{_index_segment(idx)}: {_short_repr(_item(e[idx]))} != "
                       f"{_short_repr(_item(a[idx]))}")
        return Mismatch(_render(node), reason, e, a)
    if isinstance(e, np.generic):
        if e.dtype != a.dtype:
            return Mismatch(_render(node), f"dtype differs: {e.dtype} != {a.dtype}",
                            e, a)
        if isinstance(e, np.floating):
            same = cmp.float_eq(float(e), float(a))
        elif isinstance(e, np.complexfloating):
            same = cmp.complex_eq(complex(e), complex(a))
        else:
            try:
                same = bool(np.array_equal(np.asarray(e), np.asarray(a),
                                           equal_nan=True))
            except Exception:  # noqa: BLE001
                try:
                    same = bool(e == a)
                except Exception:  # noqa: BLE001
                    return NOT_HANDLED
        return None if same else _differs(node, e, a)
    return NOT_HANDLED

def compare_pandas(cmp: Any, e: Any, a: Any, node: _Path) -> Any:
    """pandas objects through pandas.testing."""
    import pandas as pd
    import pandas.testing as pdt

    if isinstance(e, pd.DataFrame):
        check, label = pdt.assert_frame_equal, "DataFrame"
    elif isinstance(e, pd.Series):
        check, label = pdt.assert_series_equal, "Series"
    elif isinstance(e, pd.Index):
        check, label = pdt.assert_index_equal, "Index"
    elif isinstance(e, pd.api.extensions.ExtensionArray):
        check, label = pdt.assert_extension_array_equal, _qualname(type(e))
    else:
        return NOT_HANDLED
    try:
        check(e, a)
    except AssertionError as exc:
        return Mismatch(_render(node), f"{label} differs: {_pandas_message(exc)}",
                        e, a)
    except Exception as exc:  # noqa: BLE001 - pandas could not compare them
        try:
            if e.equals(a):
                return None
        except Exception:  # noqa: BLE001
            pass
        return Mismatch(_render(node), f"{label} differs ({type(exc).__name__}: "
                        f"{exc})", e, a)
    return None


def _pandas_message(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = "; ".join(lines)
    text = text.replace("[left]", "[expected]").replace("[right]", "[got]")
    text = re.sub(r"\]:\s+", "]: ", text)
    return text if len(text) <= 400 else text[:397] + "..."
