"""A small program to try retracer on: parse records, score them, rank them."""
import sys
from collections import Counter


def parse(line):
    name, _, rest = line.partition(":")
    return name.strip(), [int(x) for x in rest.split(",") if x.strip()]


def score(values):
    total = 0
    for v in values:
        total += slow_square(v)
    return total


def slow_square(x):
    # deliberately slow: the profile should point here
    return sum(x for _ in range(x))


def rank(records):
    return sorted(records, key=lambda r: (-r[1], r[0]))


def main(n=2000):
    lines = [f"item{i}: {i % 7}, {i % 11}, {i % 13}" for i in range(n)]
    records = [(name, score(vals)) for name, vals in map(parse, lines)]
    top = rank(records)[:3]
    words = Counter(name[:5] for name, _ in records)
    print("top:", top, "prefixes:", len(words))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
