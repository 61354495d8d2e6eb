"""Signing in and out of the console (SPEC §8): ``GET``/``POST /console/login``, ``POST /console/logout``.

Signing in is ``POST /v1/auth/login``'s use case with its throttle (failures counted per
username and client, shared with the API); the session token it issues becomes the cookie.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Controller, Request, Response, get, post

from fieldsync import errors
from fieldsync.api.console import data, messages
from fieldsync.api.console.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    expired_cookie,
    login_csrf_cookie,
    new_login_csrf,
    require_csrf,
    session_cookie,
)
from fieldsync.api.console.web import language, render, safe_next, see_other
from fieldsync.api.deps import Connection
from fieldsync.api.runtime import Runtime
from fieldsync.domain.principals import Principal


def _client(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def _login_page(
    request: Request[Any, Any, Any], *, status: int = 200, notice: str | None = None, notice_kind: str = "error",
    username: str = "", next_url: str = "",
) -> Response[str]:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_login_csrf()
    return render(
        request, "login.html", status=status, cookies=[login_csrf_cookie(request, token)], login_csrf=token,
        notice=notice, notice_kind=notice_kind, username=username, next=next_url,
    )


class ConsoleAuthController(Controller):
    path = "/console"

    @get("/", name="console:home")
    async def home(self) -> Response[Any]:
        return see_other("/console/reports")

    @get("/login", name="console:login")
    async def login_form(self, request: Request[Any, Any, Any]) -> Response[str]:
        signed_out = request.query_params.get("signed_out") == "1"
        t = messages.translator(language(request))
        return _login_page(
            request, notice=t("login.signed_out") if signed_out else None, notice_kind="ok",
            next_url=safe_next(request.query_params.get("next")),
        )

    @post("/login", name="console:login-submit")
    async def login(
        self, request: Request[Any, Any, Any], conn: Connection, runtime: Runtime, now: dt.datetime
    ) -> Response[Any]:
        form = await request.form()
        require_csrf(request, form.get("csrf_token"), expected=request.cookies.get(LOGIN_CSRF_COOKIE) or "")
        username, password = str(form.get("username") or ""), str(form.get("password") or "")
        next_url = safe_next(form.get("next"))
        t = messages.translator(language(request))
        try:
            token, _ = await data.sign_in(
                conn, runtime, username=username[:64], password=password[:200], client=_client(request), now=now
            )
        except errors.Throttled as exc:
            page = _login_page(request, status=429, notice=t("login.throttled", seconds=exc.retry_after_s),
                               username=username[:64], next_url=next_url)
            page.headers["Retry-After"] = str(exc.retry_after_s)
            return page
        except errors.BadCredentials:
            return _login_page(request, status=401, notice=t("login.failed"), username=username[:64], next_url=next_url)
        cookies = [
            session_cookie(request, token, max_age=runtime.settings.session_ttl_s),
            expired_cookie(request, LOGIN_CSRF_COOKIE),
        ]
        return see_other(next_url, cookies=cookies)

    @post("/logout", name="console:logout")
    async def logout(
        self, request: Request[Any, Any, Any], principal: Principal, conn: Connection, now: dt.datetime
    ) -> Response[Any]:
        form = await request.form()
        require_csrf(request, form.get("csrf_token"))
        await data.sign_out(conn, request.cookies[SESSION_COOKIE], now=now)
        return see_other("/console/login?signed_out=1", cookies=[expired_cookie(request, SESSION_COOKIE)])
