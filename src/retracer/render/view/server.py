"""``retracer view --serve``: the page on 127.0.0.1."""
from __future__ import annotations

import sys
from typing import Any, TextIO

from ...errors import RetracerError

def serve(html: str, port: int, out: TextIO = sys.stderr) -> int:
    """Serve the page on 127.0.0.1 until Ctrl-C."""
    import http.server
    import socketserver

    body = html.encode("utf-8")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.split("?", 1)[0] in ("/", "/index.html"):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    try:
        httpd = Server(("127.0.0.1", port), Handler)
    except OSError as e:
        raise RetracerError(f"retracer: cannot serve on 127.0.0.1:{port} ({e.strerror}); "
                            f"pass another port (--serve PORT)") from None
    addr = f"http://127.0.0.1:{httpd.server_address[1]}/"
    print(f"retracer: serving the view at {addr} (Ctrl-C to stop)", file=out, flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("retracer: stopped serving", file=out, flush=True)
    finally:
        httpd.server_close()
    return 0
