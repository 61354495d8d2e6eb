"""Console sessions, CSRF tokens and the security headers of every console response.

Session: the console signs in through ``services.identity.login`` (the API's login, with its
throttling) and keeps the API's own session token in a cookie: ``HttpOnly`` (no script reads it),
``SameSite=Lax`` (no cross-site POST carries it), ``Secure`` when the request came over https,
``Path=/console``. Logging out revokes that session in the database, so a copied cookie dies
with it. Device tokens never open the console.

CSRF: every form carries a hidden ``csrf_token``. Signed in, it is an HMAC of the session token
(a page of another site can neither read the cookie nor compute the token); before sign-in, the
login form uses a double-submit cookie. A POST whose token is missing or wrong is refused 403
before anything else happens.

Headers: ``Content-Security-Policy`` with ``default-src 'self'`` (plus the S3 endpoint for
images when photos are served by presigned URL), ``frame-ancestors 'none'``, ``form-action
'self'``; ``X-Content-Type-Options: nosniff``; ``Referrer-Policy: same-origin``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from litestar import Request
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from fieldsync import errors
from fieldsync.api.console import data
from fieldsync.api.deps import Connection, runtime_of
from fieldsync.domain.principals import Principal

SESSION_COOKIE = "fieldsync_session"
LOGIN_CSRF_COOKIE = "fieldsync_login_csrf"
CSRF_FIELD = "csrf_token"
COOKIE_PATH = "/console"
CSRF_FAILED = "csrf"


def is_https(request: Request[Any, Any, Any]) -> bool:
    return request.url.scheme == "https"


def session_cookie(request: Request[Any, Any, Any], token: str, *, max_age: int) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE, value=token, path=COOKIE_PATH, httponly=True, samesite="lax",
        secure=is_https(request), max_age=max_age,
    )


def expired_cookie(request: Request[Any, Any, Any], key: str) -> Cookie:
    return Cookie(key=key, value="", path=COOKIE_PATH, httponly=True, samesite="lax", secure=is_https(request), max_age=0)


def login_csrf_cookie(request: Request[Any, Any, Any], value: str) -> Cookie:
    return Cookie(
        key=LOGIN_CSRF_COOKIE, value=value, path=COOKIE_PATH, httponly=True, samesite="strict",
        secure=is_https(request), max_age=3600,
    )


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def csrf_for_session(token: str) -> str:
    digest = hmac.new(token.encode(), b"fieldsync console csrf v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def csrf_token(request: Request[Any, Any, Any]) -> str | None:
    """The token this request's forms must carry (None before sign-in: the login page has its own)."""
    token = request.scope["state"].get("console_session")
    return csrf_for_session(token) if token else None


def require_csrf(request: Request[Any, Any, Any], given: object, *, expected: str | None = None) -> None:
    """Refuse (403) unless the form's token equals the expected one."""
    wanted = expected if expected is not None else csrf_token(request)
    if not wanted or not isinstance(given, str) or not hmac.compare_digest(given.encode(), wanted.encode()):
        raise PermissionDeniedException(detail=CSRF_FAILED)


async def provide_console_principal(request: Request[Any, Any, Any], conn: Connection) -> Principal:
    """The signed-in user, or NotAuthorized (the console answers that with a 303 to the login page)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 200:
        raise NotAuthorizedException()
    try:
        principal = await data.session_principal(conn, token, now=runtime_of(request.app.state).clock.now())
    except errors.Unauthenticated:
        raise NotAuthorizedException() from None
    request.scope["state"]["principal"] = principal
    request.scope["state"]["console_session"] = token
    return principal


def content_security_policy(scope: Scope) -> bytes:
    images = "'self'"
    app = scope.get("app")
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    settings = getattr(runtime, "settings", None)
    if settings is not None and settings.media_url.startswith("s3://") and settings.s3_endpoint:
        endpoint = settings.s3_endpoint
        if "://" not in endpoint:
            endpoint = ("https://" if settings.s3_secure else "http://") + endpoint
        images += " " + endpoint  # photos may be served by a presigned URL on the store
    return (
        f"default-src 'self'; img-src {images}; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ).encode()


def security_headers_middleware(app: ASGIApp) -> ASGIApp:
    """Add the console's security headers to every response of its routes, error pages included."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        policy = content_security_policy(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", [])
                    if k.lower() not in (b"content-security-policy", b"x-content-type-options", b"referrer-policy")
                ]
                headers += [
                    (b"content-security-policy", policy),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped
