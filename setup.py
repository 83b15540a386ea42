"""Builds the C code: the pure C engine in csrc/, compiled once into a static
library (retracer_core), and the three CPython extension modules that link it.

    retracer._engine   src/retracer/ext/ (all but export.c, view.c): hooks, capture glue, session
                       (zlib and a thread for the spool writer, csrc/rt_spool.c)
    retracer._export   src/retracer/ext/export.c: the exporters (zlib for pprof's gzip)
    retracer._view     src/retracer/ext/view.c: pattern folding

Each module takes from the library only the objects it uses. Everything is
compiled with hidden visibility: a module exports only its PyInit function.
"""
import glob
import os
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_clib import build_clib
from setuptools.command.build_ext import build_ext

COMPILE_ARGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                "-Wno-missing-field-initializers", "-fno-strict-aliasing", "-fvisibility=hidden"]

CORE_SOURCES = sorted(glob.glob("csrc/rt_*.c"))
CORE_HEADERS = sorted(glob.glob("csrc/rt_*.h"))
EXT_DIR = "src/retracer/ext"
EXT_HEADERS = sorted(glob.glob(EXT_DIR + "/*.h"))
MODULE_FILES = {EXT_DIR + "/export.c", EXT_DIR + "/view.c"}
ENGINE_SOURCES = [s for s in sorted(glob.glob(EXT_DIR + "/*.c")) if s not in MODULE_FILES]

core = ("retracer_core", {
    "sources": CORE_SOURCES,
    "include_dirs": ["csrc"],
    "cflags": COMPILE_ARGS + ["-fPIC"],  # linked into shared objects
    "obj_deps": {"": CORE_HEADERS},      # rebuild when a header changes
})


def extension(name, sources, libraries=()):
    return Extension(
        name,
        sources=sources,
        include_dirs=["csrc", EXT_DIR],
        # the core first, then what it needs, so the linker resolves in order
        libraries=["retracer_core", *libraries],
        extra_compile_args=COMPILE_ARGS,
        depends=CORE_HEADERS + EXT_HEADERS,
    )


def compile_on_every_core(compiler):
    """Make `compiler.compile` compile its sources on every core, one process per
    source (the compiler runs as a subprocess, so threads are enough)."""
    if getattr(compiler, "retracer_parallel", False):
        return
    serial = compiler.compile

    def compile(sources, *args, **kwargs):
        jobs = min(len(sources), os.cpu_count() or 1)
        if jobs < 2:
            return serial(sources, *args, **kwargs)
        with ThreadPoolExecutor(jobs) as pool:
            parts = list(pool.map(lambda src: serial([src], *args, **kwargs), sources))
        return [obj for part in parts for obj in part]

    compiler.compile = compile
    compiler.retracer_parallel = True


class BuildClib(build_clib):
    def build_libraries(self, libraries):
        compile_on_every_core(self.compiler)
        super().build_libraries(libraries)


class BuildExt(build_ext):
    """Build the core library before the modules, also for `pip install -e .`
    (which runs build_ext on its own)."""

    def run(self):
        self.run_command("build_clib")
        super().run()

    def build_extension(self, ext):
        compile_on_every_core(self.compiler)
        super().build_extension(ext)


setup(
    libraries=[core],
    ext_modules=[
        extension("retracer._engine", ENGINE_SOURCES, libraries=["z", "pthread"]),
        extension("retracer._export", [EXT_DIR + "/export.c"], libraries=["z"]),
        extension("retracer._view", [EXT_DIR + "/view.c"]),
    ],
    cmdclass={"build_clib": BuildClib, "build_ext": BuildExt},
)
