"""Admin authentication: `Authorization: Bearer <ADMIN_API_TOKEN>` on every request.

An ASGI middleware in front of routing, so every path answers 401 without the token, the
OpenAPI document and unknown paths included: a caller without the token learns nothing, not even
which endpoints exist.
"""

from __future__ import annotations

import hmac
import json

SCHEME = "bearer"
UNAUTHORIZED = json.dumps({
    "error": "unauthorized",
    "message": "missing or wrong admin token (send Authorization: Bearer <ADMIN_API_TOKEN>)",
}).encode()


def token_matches(header: bytes | None, expected: bytes) -> bool:
    if not header:
        return False
    scheme, _, credentials = header.partition(b" ")
    if scheme.lower() != SCHEME.encode():
        return False
    # compare_digest takes time independent of where the bytes differ
    return hmac.compare_digest(credentials.strip(), expected)


class BearerAuth:
    def __init__(self, app, token: str):
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if token_matches(header, self._token):
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(UNAUTHORIZED)).encode()),
            (b"www-authenticate", b'Bearer realm="backup admin"'),
        ]})
        await send({"type": "http.response.body", "body": UNAUTHORIZED})
