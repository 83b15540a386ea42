"""The test helpers' own behaviour where a test relies on it: a hanging program fails
its test with where each of its processes waited (so that a rare hang seen once in a
CI run can be understood from its log)."""
from __future__ import annotations

import os
import sys

import pytest

from helpers import finish, popen


@pytest.mark.once
@pytest.mark.skipif(os.name != "posix" or not os.path.isdir("/proc"), reason="reads /proc")
def test_a_hang_fails_with_the_stacks_of_its_processes(tmp_path):
    prog = tmp_path / "hang.py"
    prog.write_text("import os, time\n"
                    "def wait_here():\n"
                    "    time.sleep(60)\n"
                    "if os.fork() == 0:\n"
                    "    wait_here()\n"
                    "print('started', flush=True)\n"
                    "wait_here()\n")
    p = popen([sys.executable, str(prog)], tmp_path)
    with pytest.raises(pytest.fail.Exception) as e:
        finish(p, timeout=3)
    text = str(e.value)
    assert "did not finish within 3 s" in text and "started" in text, text
    assert text.count("--- process ") == 2, text     # the program and its forked child
    assert text.count("wait_here") >= 2, text        # each one's Python stack
    assert "SigBlk" in text, text
    assert p.poll() is not None                      # and the group was killed
