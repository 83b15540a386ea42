"""A script without an `if __name__ == "__main__":` guard whose body has a side
effect: each run appends a line to runs.log next to it."""
import os


def total(values):
    return sum(values)


def log_run(path):
    with open(path, "a") as f:
        f.write("ran\n")


print("total", total([1, 2, 3]))
log_run(os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs.log"))
