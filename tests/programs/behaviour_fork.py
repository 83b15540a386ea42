"""Forks: a multiprocessing pool (fork start method) or a bare os.fork() whose
child ends with sys.exit. The children make many calls of their own."""
import multiprocessing
import os
import sys


def tiny(i):
    return i % 7


def work(x):
    s = 0
    for i in range(200000):
        s += tiny(i)
    return s + x


def parent_side():
    return sum(tiny(i) for i in range(1000))


if __name__ == "__main__":
    mode = sys.argv[1]
    print("parent", parent_side())
    sys.stdout.flush()
    if mode == "pool":
        with multiprocessing.get_context("fork").Pool(2) as pool:
            print("pool", sum(pool.map(work, range(4))))
    elif mode == "fork":
        pid = os.fork()
        if pid == 0:
            print("child", work(1))
            sys.stdout.flush()
            sys.exit(5)
        _, status = os.waitpid(pid, 0)
        print("child exit", os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1)
    print("parent", parent_side())
    print("done")
