"""A SIGTERM the main thread does not see arrive: another thread takes it while
the main thread waits on a multiprocessing semaphore (as a pool worker waits for
its next task). Without retracer SIGTERM's default action ends the process; a
Python-level handler would only run once the main thread's wait is interrupted,
which this signal never does (it was handled on the other thread)."""
import multiprocessing
import signal
import threading
import time


def spin(n):
    return sum(range(n))


def signal_myself():
    time.sleep(0.3)
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)


for _ in range(10):
    spin(1000)
print("waiting", flush=True)
threading.Thread(target=signal_myself, name="Signaller").start()
multiprocessing.Semaphore(0).acquire()  # never released
print("not reached")
