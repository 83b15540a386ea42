"""Installs its own SIGTERM handler, which prints and exits 4."""
import signal
import sys
import time


def handler(signum, frame):
    print("got signal", signum)
    sys.exit(4)


def spin():
    return sum(range(100))


signal.signal(signal.SIGTERM, handler)
spin()
print("ready", flush=True)
while True:
    spin()
    time.sleep(0.001)
