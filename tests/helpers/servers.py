"""A tiny HTTP server on 127.0.0.1 for the devtools' own tests: GET says hello, POST says how
many bytes it read; every request is recorded in `hits`."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the registry

    def _reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # http.server's naming
        self.server.hits.append(("GET", self.path))
        self._reply(b"hello")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.hits.append(("POST", self.path))
        self._reply(str(len(body)).encode())

    def log_message(self, *args: object) -> None:
        pass


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), EchoHandler)
        self.hits: list[tuple[str, str]] = []

    def handle_error(self, request, client_address) -> None:
        pass  # cut uploads make the handler fail; that is the point
