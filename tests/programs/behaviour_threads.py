"""A thread that fails, a non-daemon thread still running when the main code
ends, and an atexit handler."""
import atexit
import threading
import time


main_done = threading.Event()


def late():
    main_done.wait()  # after "main done" (a busy machine must not change the order)
    time.sleep(0.3)   # still running when the main code has ended
    print("late thread done")


def bad():
    raise KeyError("in thread")


atexit.register(lambda: print("atexit ran"))
threading.Thread(target=late, name="Late").start()
t = threading.Thread(target=bad, name="Bad")
t.start()
t.join()
print("main done")
main_done.set()
