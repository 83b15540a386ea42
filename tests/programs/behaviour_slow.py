"""Runs about 3 seconds in small steps, then prints "done"."""
import time


def step(i):
    time.sleep(0.05)
    return i * 2


total = 0
for i in range(60):
    total += step(i)
print("total", total)
print("done")
