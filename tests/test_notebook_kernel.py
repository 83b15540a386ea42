"""The IPython magics in a real Jupyter kernel (ipykernel), driven by nbclient as
`jupyter nbconvert --execute` does: a notebook's cells run in the kernel, and their
outputs are what a notebook front end would show. test_magics.py checks the magics in
an IPython shell on every version; this checks what a kernel sends the front end.
"""
from __future__ import annotations

import html
import json
import os
import re
import sys

import nbclient  # the test extras (pyproject.toml) have nbclient, nbformat and ipykernel
import nbformat
import pytest

pytestmark = pytest.mark.once

CELLS = [
    "%load_ext retracer",
    "%%rprofile\n"
    "def fib(n):\n"
    "    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
    "fib(18)",
    "%%retrace -o nb.trace\n"
    "def area(w, h):\n"
    "    return w * h\n"
    "total = sum(area(i, i + 1) for i in range(50))\n"
    "print(total)",
    "%rtimeit -n 5 sum(range(1000))",
]


def test_magics_in_a_real_kernel(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    # the kernel of this very interpreter (its venv has retracer), not whatever is installed
    kdir = tmp_path / "kernels" / "rt-test"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "rt", "language": "python"}))
    os.environ["JUPYTER_PATH"] = str(tmp_path)
    try:
        client = nbclient.NotebookClient(nb, timeout=300, kernel_name="rt-test",
                                         resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
    finally:
        os.environ.pop("JUPYTER_PATH", None)
    errors = [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    # %%rprofile: the ranking as an HTML table, and the flame graph in a sandboxed iframe
    prof = nb.cells[1].outputs
    htmls = [o["data"]["text/html"] for o in prof if o.output_type == "display_data" and "text/html" in o["data"]]
    assert any("<table" in h and "fib" in h for h in htmls), prof
    frames = [h for h in htmls if "<iframe" in h]
    assert len(frames) == 1 and 'sandbox="allow-scripts"' in frames[0], frames
    page = html.unescape(re.search(r'srcdoc="([^"]*)"', frames[0]).group(1))
    assert "fib" in page and "<script" in page
    # only the cell's own threads: nothing of the kernel's (its event loop, its heartbeat)
    assert not any(k in page for k in ("zmq", "tornado", "dispatch_shell", "_run_once", "heartbeat")), page[:3000]
    # %%retrace: the cell's output, then the trace written beside the notebook
    text = "".join(o.get("text", "") for o in nb.cells[2].outputs if o.output_type == "stream")
    assert str(sum(i * (i + 1) for i in range(50))) in text and "trace written to" in text, nb.cells[2].outputs
    assert (tmp_path / "nb.trace").is_file()
    # %rtimeit: its distribution of times, as in a shell
    t = "".join(o.get("text", "") for o in nb.cells[3].outputs if o.output_type == "stream")
    assert re.search(r"min [\d.]+ .s, median [\d.]+ .s, IQR", t) and "5 loops" in t, nb.cells[3].outputs
