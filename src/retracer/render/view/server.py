"""``retracer view --serve``: the page on 127.0.0.1, to requests for 127.0.0.1 only.

A request whose ``Host`` header is not the address and port served (a page of
another site after DNS rebinding, say) gets 421 and not the page."""
from __future__ import annotations

import sys
from typing import Any, Set, TextIO

from ...errors import RetracerError

def serve(html: str, port: int, out: TextIO = sys.stderr) -> int:
    """Serve the page on 127.0.0.1 until Ctrl-C."""
    import http.server
    import socketserver

    body = html.encode("utf-8")

    allowed: Set[str] = set()  # filled in once the port is known

    class Handler(http.server.BaseHTTPRequestHandler):
        def _host_ok(self) -> bool:
            # DNS rebinding: a page of another site whose name now resolves to
            # 127.0.0.1 sends its own name as Host; only our address is answered
            host = (self.headers.get("Host") or "").strip().lower()
            if host in allowed:
                return True
            msg = f"retracer serves this page at {sorted(allowed)[0]} only\n".encode()
            self.send_response(421, "Misdirected Request")
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return False

        def do_GET(self) -> None:  # noqa: N802
            if not self._host_ok():
                return
            if self.path.split("?", 1)[0] in ("/", "/index.html"):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Cross-Origin-Resource-Policy", "same-origin")
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
    bound = httpd.server_address[1]
    allowed.add(f"127.0.0.1:{bound}")
    if bound == 80:
        allowed.add("127.0.0.1")
    addr = f"http://127.0.0.1:{bound}/"
    print(f"retracer: serving the view at {addr} (Ctrl-C to stop)", file=out, flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("retracer: stopped serving", file=out, flush=True)
    finally:
        httpd.server_close()
    return 0
