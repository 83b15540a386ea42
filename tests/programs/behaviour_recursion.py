"""How deep can the program recurse, and what does the RecursionError look like."""
import sys


def depth(n):
    try:
        return depth(n + 1)
    except RecursionError:
        return n


def boom(n):
    return boom(n + 1)


print("max depth", depth(0))
boom(0)
