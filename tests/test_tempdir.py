"""The private run directories (retracer.tracefile.tempdir): a process cleaning
up after dead runs never removes a live run's directory, not even in the moment
between the directory's creation and its lock being taken."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from retracer.tracefile import tempdir


def test_stale_cleaning_keeps_live_runs_and_removes_dead_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("RETRACER_TMPDIR", str(tmp_path))
    root = tempdir.temp_root()
    # a live process whose directory has its lock file but not yet the lock
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        being_made = os.path.join(root, f"run-{live.pid}-abc")
        os.mkdir(being_made)
        open(os.path.join(being_made, "lock"), "w").close()
        # a process that is gone
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        gone = os.path.join(root, f"run-{dead.pid}-def")
        os.mkdir(gone)
        open(os.path.join(gone, "lock"), "w").close()
        # a live process whose lock is free and whose directory is old: left behind
        # by an earlier process that had the same pid
        old = os.path.join(root, f"run-{live.pid}-ghi")
        os.mkdir(old)
        open(os.path.join(old, "lock"), "w").close()
        t = time.time() - 2 * tempdir._STALE_AFTER_S
        os.utime(old, (t, t))
        assert tempdir.clean_stale(root) == 2
        with tempdir.RunDir() as mine:  # cleans up too: nothing more to remove
            assert sorted(os.listdir(root)) == sorted([os.path.basename(being_made), os.path.basename(mine.path)])
    finally:
        live.kill()
        live.wait()
