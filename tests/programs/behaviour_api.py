"""Uses the Tracer API; argv: MODE [OUTPUT]."""
import sys

from retracer import Tracer


def square(x):
    return x * x


def work(n):
    return sum(square(i) for i in range(n))


mode = sys.argv[1]
out = sys.argv[2] if len(sys.argv) > 2 else None
if mode == "with":
    with Tracer(output=out):
        result = work(10)
elif mode == "decorator":
    @Tracer(output=out)
    def main():
        return work(10)

    result = main()
    result += main()  # a decorated function can be called more than once
elif mode == "disable":
    with Tracer(output=out, disable=True):
        result = work(10)
elif mode == "config":
    with Tracer():
        result = work(10)
elif mode == "explicit":
    with Tracer(output=out, max_function_count=7):
        result = work(10)
else:
    raise SystemExit(f"unknown mode {mode}")
print("result", result)
