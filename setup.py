"""Builds the C code: the pure C engine in csrc/, compiled once into a static
library (retracer_core), and the three CPython extension modules that link it.

    retracer._engine   src/retracer/ext/ (all but export.c, view.c): hooks, capture glue, session
                       (zlib and a thread for the spool writer, csrc/rt_spool.c)
    retracer._export   src/retracer/ext/export.c: the exporters (zlib for pprof's gzip)
    retracer._view     src/retracer/ext/view.c: pattern folding

Each module takes from the library only the objects it uses. Everything is
compiled with hidden visibility: a module exports only its PyInit function.

The library does not depend on the Python version: its objects are kept in
build/core/ (one folder per compiler and flags) and reused by the next build, for
another interpreter's venv too, while no source, header or this file is newer.
Every compile runs on every core.
"""
import glob
import hashlib
import os
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_clib import build_clib
from setuptools.command.build_ext import build_ext

COMPILE_ARGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                "-Wno-missing-field-initializers", "-fno-strict-aliasing", "-fvisibility=hidden"]

CORE_SOURCES = sorted(glob.glob("csrc/rt_*.c"))
# the SIGTERM guard's POSIX timer (csrc/rt_sigguard.c): librt, part of the C library since glibc 2.34
RT_LIB = ["rt"] if sys.platform.startswith("linux") else []
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


def compile_on_every_core(compiler, reuse_after=None):
    """Make `compiler.compile` compile its sources on every core, one process per
    source (the compiler runs as a subprocess, so threads are enough). With
    `reuse_after` (a time), an object newer than its source and than that time is
    kept as it is."""
    serial = getattr(compiler, "retracer_serial", compiler.compile)

    def up_to_date(src, output_dir):
        if reuse_after is None:
            return False
        (obj,) = compiler.object_filenames([src], output_dir=output_dir)
        try:
            return os.path.getmtime(obj) > max(os.path.getmtime(src), reuse_after)
        except OSError:
            return False

    def compile(sources, output_dir=None, *args, **kwargs):
        todo = [src for src in sources if not up_to_date(src, output_dir)]
        jobs = min(len(todo), os.cpu_count() or 1)
        if jobs >= 2:
            with ThreadPoolExecutor(jobs) as pool:
                list(pool.map(lambda src: serial([src], output_dir, *args, **kwargs), todo))
        elif todo:
            serial(todo, output_dir, *args, **kwargs)
        return compiler.object_filenames(sources, output_dir=output_dir)

    compiler.compile = compile
    compiler.retracer_serial = serial


CORE_DIR = os.path.join("build", "core")


class BuildClib(build_clib):
    """The core library in build/core/ (kept between builds, see above)."""

    def finalize_options(self):
        super().finalize_options()
        self.build_clib = CORE_DIR          # build_ext links from here

    def build_libraries(self, libraries):
        # the objects of one compiler and set of flags in a folder of their own
        key = repr((self.compiler.compiler_so, COMPILE_ARGS, os.environ.get("CFLAGS"),
                    sysconfig.get_config_var("CC")))
        self.build_temp = os.path.join(CORE_DIR, hashlib.sha256(key.encode()).hexdigest()[:16])
        inputs = CORE_HEADERS + [__file__]
        compile_on_every_core(self.compiler, reuse_after=max(os.path.getmtime(f) for f in inputs))
        for name, _ in libraries:  # always archived again: cheap, and never stale
            lib = self.compiler.library_filename(name, output_dir=self.build_clib)
            if os.path.exists(lib):
                os.unlink(lib)
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
        extension("retracer._engine", ENGINE_SOURCES, libraries=["z", "pthread", *RT_LIB]),
        extension("retracer._export", [EXT_DIR + "/export.c"], libraries=["z"]),
        extension("retracer._view", [EXT_DIR + "/view.c"]),
    ],
    cmdclass={"build_clib": BuildClib, "build_ext": BuildExt},
)
