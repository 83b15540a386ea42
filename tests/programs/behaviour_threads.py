"""A thread that fails, a non-daemon thread still running when the main code
ends, and an atexit handler."""
import atexit
import threading
import time


def late():
    time.sleep(0.3)
    print("late thread done")


def bad():
    raise KeyError("in thread")


atexit.register(lambda: print("atexit ran"))
threading.Thread(target=late, name="Late").start()
t = threading.Thread(target=bad, name="Bad")
t.start()
t.join()
print("main done")
