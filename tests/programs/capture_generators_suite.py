"""Run by pytest with -W error (as a test suite that turns warnings into errors
does): generators left suspended, closed early, shared between threads."""
import gc
import itertools
import threading


def batched(iterable, n):
    it = iter(iterable)
    while True:
        batch = tuple(itertools.islice(it, n))
        if not batch:
            return
        yield batch


def numbers(n):
    try:
        for i in range(n):
            yield i
    finally:
        pass


class Tee:
    def __init__(self, it):
        self.it = iter(it)
        self.lock = threading.Lock()

    def __iter__(self):
        return self

    def __next__(self):
        with self.lock:
            return next(self.it)


def test_batched_left_suspended():
    b = batched(range(10), 3)
    assert next(b) == (0, 1, 2)
    del b
    gc.collect()


def test_batched_never_started():
    batched(range(10), 3)
    gc.collect()


def test_closed_early():
    g = numbers(5)
    assert next(g) == 0
    g.close()
    numbers(3).close()


def test_concurrent_generator():
    t = Tee(numbers(2000))
    out = []

    def consume():
        for x in t:
            out.append(x)

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(out) == list(range(2000))


def test_many():
    for i in range(300):
        g = numbers(i + 2)
        next(g)
        if i % 3 == 0:
            g.close()
        elif i % 3 == 1:
            del g
    gc.collect()
