"""Loops until killed; prints "ready" once spin() has run."""
import time


def spin(n):
    total = 0
    for i in range(n):
        total += i
    return total


for _ in range(10):
    spin(1000)
print("ready", flush=True)
while True:
    spin(1000)
    time.sleep(0.001)
