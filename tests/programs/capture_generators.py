"""Generators, coroutines and async generators closed, thrown into and
garbage-collected in every state, with warnings turned into errors: under
`retracer trace` (capture on) the output must be the same as under plain Python.
Unraisable exceptions ("Exception ignored ...") are collected and printed."""
import asyncio, gc, sys, threading, warnings
warnings.simplefilter("error")
unraisable = []
sys.unraisablehook = lambda u: unraisable.append(f"{u.exc_type.__name__}: {u.exc_value}")

def gen():
    yield 1
    yield 2

def guarded(n):
    try:
        yield n
        yield n + 1
    finally:
        print("finally", n)

def stubborn():
    try:
        yield 1
    except GeneratorExit:
        yield 2   # ignores GeneratorExit: RuntimeError

def delegating(n):
    r = yield from guarded(n)
    return r

def batched(it, n):
    it = iter(it)
    while True:
        chunk = tuple(x for _, x in zip(range(n), it))
        if not chunk:
            return
        yield chunk

gen().close()                      # never started
g = gen(); next(g); g.close()      # suspended
g = guarded(1); next(g); g.close()
g = guarded(2); next(g)
try:
    g.throw(ValueError("thrown"))
except ValueError as e:
    print("caught", e)
try:
    gen().throw(KeyError("unstarted"))
except KeyError as e:
    print("caught", e)
g = stubborn(); next(g)
try:
    g.close()
except RuntimeError as e:
    print("RuntimeError", e)
g = delegating(3); next(g); g.close()
g = guarded(4); next(g); del g; gc.collect()          # suspended, collected
g = gen(); del g; gc.collect()                          # unstarted, collected
gens = [guarded(i) for i in range(10, 13)]
for x in gens:
    next(x)
del gens, x; gc.collect()
print(list(batched(range(7), 3)))
b = batched(range(100), 4); next(b); del b; gc.collect()
cyc = []
g = gen(); cyc.append(g); cyc.append(cyc); next(g); del g, cyc; gc.collect()   # in a cycle

def worker():
    g = guarded(20); next(g); g.close()
    g = gen(); del g
t = threading.Thread(target=worker); t.start(); t.join()

async def coro(x):
    await asyncio.sleep(0)
    return x

async def agen(n):
    try:
        for i in range(n):
            yield i
            await asyncio.sleep(0)
    finally:
        print("agen finally", n)

coro(0)                            # never awaited: RuntimeWarning, unraisable here
gc.collect()
c = coro(1); c.close()
c = coro(2); c.send(None); c.close()
c = coro(3); c.send(None); del c; gc.collect()
try:
    coro(4).throw(ValueError("into coro"))
except ValueError as e:
    print("caught", e)

async def main():
    a = agen(3)
    print(await a.__anext__())
    await a.aclose()
    a = agen(5)
    await a.__anext__()
    try:
        await a.athrow(KeyError("athrow"))
    except KeyError as e:
        print("caught", e)
    async for v in agen(2):
        print("v", v)
    a = agen(4)
    await a.__anext__()
    del a
    gc.collect()
    print(await coro(7))
    print(await asyncio.gather(*(coro(i) for i in range(3))))
    task = asyncio.ensure_future(coro(9))
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        print("cancelled")

asyncio.run(main())
gc.collect()
print("unraisable", unraisable)
print("done")
