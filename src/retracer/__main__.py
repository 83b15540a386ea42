"""`python -m retracer` is the same as the `retracer` command."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
