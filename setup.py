"""Builds the C extensions: the pure C engine in csrc/ plus the CPython bindings."""
import glob
import sys

from setuptools import Extension, setup

COMPILE_ARGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                "-Wno-missing-field-initializers", "-fno-strict-aliasing"]
# the exporters (rt_export.c, linked with zlib for pprof's gzip) live in their own module
EXPORT_SOURCES = sorted(glob.glob("csrc/rt_export*.c")) + ["csrc/rt_walk.c", "csrc/rt_stream.c", "csrc/rt_map.c",
                  "csrc/rt_common.c"]
engine_sources = [s for s in sorted(glob.glob("csrc/rt_*.c"))
                  if "rt_export" not in s and not s.endswith("rt_fold.c")]

ext = Extension(
    "retracer._engine",
    sources=["src/retracer/_engine.c"] + engine_sources,
    include_dirs=["csrc"],
    extra_compile_args=COMPILE_ARGS,
)

export_ext = Extension(
    "retracer._export",
    sources=["src/retracer/_export.c"] + EXPORT_SOURCES,
    include_dirs=["csrc"],
    libraries=["z"],
    extra_compile_args=COMPILE_ARGS,
)


# pattern folding for `retracer view` (rt_fold.c over rt_walk.c) in its own module too
VIEW_SOURCES = ["csrc/rt_fold.c", "csrc/rt_walk.c", "csrc/rt_stream.c", "csrc/rt_map.c",
                "csrc/rt_common.c"]
view_ext = Extension(
    "retracer._view",
    sources=["src/retracer/_view.c"] + VIEW_SOURCES,
    include_dirs=["csrc"],
    extra_compile_args=COMPILE_ARGS,
)

setup(ext_modules=[ext, export_ext, view_ext])
