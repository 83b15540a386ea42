"""The function flag bits have one source: the engine's RT_F_* (csrc/rt_engine.h),
which the binding writes into the trace's functions.flags. The trace-file schema's
FLAG_* (tracefile/schema.py) and the binding's exported constants must agree with
them, and Python code tests the bits by name, never by number."""
from __future__ import annotations

import os
import re

from retracer import _engine
from retracer.tracefile import schema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# engine name (RT_F_<name>) -> schema name
NAMES = {
    "SCOPE": "FLAG_IN_SCOPE",
    "IMPORT": "FLAG_IMPORT_MACHINERY",
    "MODULE": "FLAG_MODULE_BODY",
    "ONLY": "FLAG_ONLY_FUNCTIONS",
    "GEN": "FLAG_GENERATOR",
    "C": "FLAG_C_FUNCTION",
}


def _defines(path: str, prefix: str) -> dict:
    """NAME -> value of `#define <prefix>NAME <int>u` / `(1u << n)` lines of a C header."""
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"#define\s+%s(\w+)\s+\(?(\d+)u?(?:\s*<<\s*(\d+))?\)?" % prefix, line)
            if m:
                out[m.group(1)] = int(m.group(2)) << int(m.group(3) or 0)
    return out


def test_schema_flags_are_the_engines():
    engine = _defines(os.path.join(ROOT, "csrc", "rt_engine.h"), "RT_F_")
    assert engine, "no RT_F_* found in csrc/rt_engine.h"
    assert set(engine) == set(NAMES), "a flag was added on one side only: name it in NAMES and schema.py"
    schema_flags = {n: v for n, v in vars(schema).items() if n.startswith("FLAG_")}
    assert set(schema_flags) == set(NAMES.values())
    for c_name, py_name in NAMES.items():
        assert schema_flags[py_name] == engine[c_name], (c_name, py_name)
        assert getattr(_engine, py_name) == engine[c_name], py_name  # what the built binding uses
    values = list(engine.values())
    assert len(set(values)) == len(values) and all(v & (v - 1) == 0 for v in values), "one bit each"


def test_the_bindings_own_bit_is_not_a_trace_flag():
    """RT_FB_CORO marks coroutines inside the binding only; stop() strips it."""
    own = _defines(os.path.join(ROOT, "src", "retracer", "ext", "binding.h"), "RT_FB_")
    assert own, "no RT_FB_* found in src/retracer/ext/binding.h"
    engine = _defines(os.path.join(ROOT, "csrc", "rt_engine.h"), "RT_F_")
    for bit in own.values():
        assert all(bit & v == 0 for v in engine.values())


def test_python_tests_flag_bits_by_name():
    bare = re.compile(r"\bflags\)?\s*&\s*(0x[0-9a-fA-F]+|\d+)\b")
    offenders = []
    for top in ("src", "tests", "benchmarks", "scripts", "examples"):
        for d, _dirs, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(d, name)
                with open(path, encoding="utf-8") as f:
                    for no, line in enumerate(f, 1):
                        if bare.search(line.replace("co_flags", "")) and "bare =" not in line:
                            offenders.append(f"{os.path.relpath(path, ROOT)}:{no}: {line.strip()}")
    assert offenders == []
