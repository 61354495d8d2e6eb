"""``OPTIONS`` answers list every method of the path in ``Allow``.

Litestar 2.x takes the automatic OPTIONS answer from one of the routes that share a path, so
``OPTIONS /v1/users`` said ``Allow: OPTIONS, POST`` although ``GET /v1/users`` exists too
(litestar issue #4169, fixed only in v3). Clients and CORS preflights trust that header, so this
middleware rewrites it from the app's route table, which knows every method of every path.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.types import ASGIApp, Message, Receive, Scope, Send


def methods_of(app: Litestar, path_template: str) -> list[str]:
    """Every HTTP method some route of ``app`` answers on ``path_template``, sorted."""
    methods: set[str] = set()
    for route in app.routes:
        if route.path_format == path_template:
            methods.update(getattr(route, "methods", ()))
    return sorted(methods)


def allow_header_middleware(app: ASGIApp) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "OPTIONS":
            await app(scope, receive, send)
            return
        methods = methods_of(scope["litestar_app"], scope.get("path_template", ""))

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and methods:
                headers = [(name, value) for name, value in message.get("headers", []) if name.lower() != b"allow"]
                headers.append((b"allow", ", ".join(methods).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_with_allow)

    return wrapped
