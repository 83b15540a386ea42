import sys


def inner(x):
    raise ValueError(f"bad value {x}")


def outer():
    inner(42)


def interrupt():
    raise KeyboardInterrupt


def chained():
    try:
        outer()
    except ValueError as e:
        raise RuntimeError("wrapped") from e


print("before the failure")
mode = sys.argv[1]
if mode == "value":
    outer()
elif mode == "kbd":
    interrupt()
elif mode == "chained":
    chained()
print("not reached")
