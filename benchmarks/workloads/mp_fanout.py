"""Multi-process workload: a pool per start method, a process pool executor and a
Python subprocess, each doing call-heavy work. Prints one result line."""
import multiprocessing as mp
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor


def score(x):
    s = 0
    for i in range(50):
        s += (x * i) % 7
    return s


def batch(n):
    return sum(score(i) for i in range(n))


def main(n):
    total = 0
    for method in ("fork", "spawn", "forkserver"):
        with mp.get_context(method).Pool(2) as pool:
            total += sum(pool.map(batch, [n // 4] * 4))
    with ProcessPoolExecutor(2) as ex:
        total += sum(ex.map(batch, [n // 4] * 4))
    here = __file__.rsplit("/", 1)[0]
    out = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                          "import mp_fanout; print(mp_fanout.batch(int(sys.argv[2])))", here, str(n)],
                         capture_output=True, text=True, check=True)
    total += int(out.stdout)
    print(total)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
