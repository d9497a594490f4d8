"""A local HTTP receiver for Apprise's JSON target (`json://127.0.0.1:PORT/path`): it keeps
every POST, and can be stopped and started again on the same port (a target that is down)."""

from __future__ import annotations

import http.server
import json
import threading
from dataclasses import dataclass


@dataclass
class Post:
    path: str
    payload: dict


class HttpReceiver:
    def __init__(self, port: int):
        self.port = port
        self.posts: list[Post] = []
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/hooks/backup-token-7c1d9e") -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def start(self) -> HttpReceiver:
        posts = self.posts

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                posts.append(Post(self.path, json.loads(self.rfile.read(length) or b"{}")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None
