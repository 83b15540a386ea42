"""A program that checks its own memory with tracemalloc, as test suites do (more-itertools'
bounded-memory tests): 20,000 calls must not leave 64 KiB allocated. Under retracer, the
engine's buffers are not the program's memory."""
import tracemalloc


def f(i):
    return i + 1


def g(xs):
    return sum(xs)


f(0)
g([1])
tracemalloc.start()
for i in range(20000):
    f(i)
    g([i, i])
retained = tracemalloc.get_traced_memory()[0]
tracemalloc.stop()
print("retained less than 64 KiB:", retained < 64 * 1024)
