"""Prints what a script sees of its own start-up, on both streams."""
import sys


def describe():
    return {
        "argv": sys.argv,
        "name": __name__,
        "file": __file__,
        "path0": sys.path[0],
        "path": sys.path,
        "spec": __spec__,
        "package": __package__,
        "doc": __doc__,
        "loader": type(__loader__).__name__,
        "main_is_this": sys.modules["__main__"].__dict__ is globals(),
        "globals": sorted(k for k in globals() if k.startswith("__")),
        "builtins": type(__builtins__).__name__,
        "builtins_len": __builtins__.len("abc"),
    }


for key, value in describe().items():
    print(f"{key}: {value!r}")
print("to stderr, line 1", file=sys.stderr)
sys.stdout.flush()
print("to stderr, line 2", file=sys.stderr)
print("last stdout line")
