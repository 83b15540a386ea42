"""Builds the C extension: the pure C engine in csrc/ plus the CPython binding."""
import glob
import sys

from setuptools import Extension, setup

engine_sources = sorted(glob.glob("csrc/rt_*.c"))

ext = Extension(
    "retracer._engine",
    sources=["src/retracer/_engine.c"] + engine_sources,
    include_dirs=["csrc"],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                        "-Wno-missing-field-initializers", "-fno-strict-aliasing"],
)

# Pattern folding for `retracer view` (its own module: _engine.c is the tracer's binding).
view_ext = Extension(
    "retracer._view",
    sources=["src/retracer/_view.c"] + engine_sources,
    include_dirs=["csrc"],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                        "-Wno-missing-field-initializers", "-fno-strict-aliasing"],
)

setup(ext_modules=[ext, view_ext])
