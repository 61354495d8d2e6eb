"""Rendering console pages and errors, and the small helpers every console handler shares.

A page is a Jinja template rendered with autoescaping (a report titled
``<script>alert(1)</script>`` shows as that text) and the common context: the translator ``t``,
the formatter ``fmt``, the signed-in ``principal``, the form ``csrf`` token and the language.
HTML is never cached (``Cache-Control: no-store``): pages carry decisions and personal data.

Errors raised under ``/console`` become HTML pages with the status the API would answer (from
``api.problems.status_for``), except "not signed in", which is a 303 to the login page.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.enums import MediaType
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.response import Redirect

from fieldsync import errors
from fieldsync.api.console import messages
from fieldsync.api.console.present import Format
from fieldsync.api.console.security import CSRF_FAILED, csrf_token, is_https
from fieldsync.api.problems import EXCEPTION_HANDLERS, status_for

LANG_COOKIE = "fieldsync_lang"
log = structlog.get_logger("fieldsync.console")

# The query parameters of GET /v1/reports, in the order the filter form shows them.
FILTER_PARAMS = (
    "kind", "category", "status", "grade", "jurisdiction", "observed_from", "observed_to", "updated_since",
    "bbox", "near", "q", "overdue", "listed", "missing_media", "has_duplicates",
)


def language(request: Request[Any, Any, Any]) -> str:
    return messages.negotiate(
        request.query_params.get("lang"), request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")
    )


def render(
    request: Request[Any, Any, Any], template: str, *, status: int = 200, cookies: Iterable[Cookie] = (),
    **context: Any,
) -> Response[str]:
    lang = language(request)
    t = messages.translator(lang)
    common = {
        "t": t, "lang": lang, "fmt": Format(t), "principal": request.scope["state"].get("principal"),
        "csrf": csrf_token(request), "path": request.url.path, "other_lang_url": other_language_url(request, lang),
    }
    engine = request.app.template_engine
    assert engine is not None, "create_app sets the console's template_config"
    html = engine.get_template(template).render(**common, **context)
    jar = list(cookies)
    chosen = request.query_params.get("lang")
    if chosen in messages.LANGUAGES:
        jar.append(Cookie(key=LANG_COOKIE, value=chosen, path="/console", samesite="lax", secure=is_https(request),
                          max_age=365 * 24 * 3600))
    return Response(
        html, status_code=status, media_type=MediaType.HTML, cookies=jar, headers={"Cache-Control": "no-store"}
    )


def other_language_url(request: Request[Any, Any, Any], lang: str) -> str:
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    pairs.append(("lang", "en" if lang == "zh" else "zh"))
    return request.url.path + "?" + urllib.parse.urlencode(pairs)


def see_other(url: str, *, cookies: Iterable[Cookie] = ()) -> Redirect:
    return Redirect(url, status_code=303, cookies=list(cookies))


def with_query(path: str, pairs: Iterable[tuple[str, str]] = (), **extra: str | int | None) -> str:
    items = list(pairs) + [(k, str(v)) for k, v in extra.items() if v is not None]
    return path + ("?" + urllib.parse.urlencode(items) if items else "")


def filter_pairs(request: Request[Any, Any, Any]) -> list[tuple[str, str]]:
    """The list filters of this request, as they came (repeated parameters kept), empties dropped."""
    return [(k, v) for k, v in request.query_params.multi_items() if k in FILTER_PARAMS and v != ""]


async def drop_empty_filters(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """A filter form submits every field, empty ones too; the API's reader would refuse an empty
    ``kind=``. Redirect once to the same URL without the empty ones."""
    items = list(request.query_params.multi_items())
    if not any(k in FILTER_PARAMS and v == "" for k, v in items):
        return None
    kept = [(k, v) for k, v in items if not (k in FILTER_PARAMS and v == "")]
    return see_other(with_query(request.url.path, kept))


def safe_next(target: object) -> str:
    """A post-login destination inside the console, never another site (open redirect)."""
    if isinstance(target, str) and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/reports"


# --- errors -------------------------------------------------------------------------------------


def _app_handler(exc: Exception) -> Any:
    for cls in type(exc).__mro__:
        if cls in EXCEPTION_HANDLERS:
            return EXCEPTION_HANDLERS[cls]
    return EXCEPTION_HANDLERS[Exception]


def error_message(t: messages.Translator, lang: str, code: str) -> str:
    key = f"error.{code}"
    return t(key) if messages.has(lang, key) else t("error.other", code=code)


def handle_console_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Errors under /console: a 303 to the login page when not signed in, else an HTML page."""
    if isinstance(exc, NotAuthorizedException):
        target = with_query("/console/login", next=request.url.path + (f"?{request.url.query}" if request.url.query else "")) \
            if request.method == "GET" else "/console/login"
        return see_other(target)
    if isinstance(exc, PermissionDeniedException) and exc.detail == CSRF_FAILED:
        status, code = 403, CSRF_FAILED
    elif isinstance(exc, errors.FieldsyncError):
        status, code = status_for(exc), exc.code
    elif isinstance(exc, HTTPException):
        status, code = exc.status_code, "request.invalid" if exc.status_code == 400 else "not_found" \
            if exc.status_code == 404 else "other"
    else:  # the API's handler logs it with the request id and knows its status
        answer = _app_handler(exc)(request, exc)
        status, code = answer.status_code, (answer.content or {}).get("code", "internal")
    lang = language(request)
    message = error_message(messages.translator(lang), lang, code)
    headers: Mapping[str, str] = {}
    if isinstance(exc, errors.RetryLater):
        headers = {"Retry-After": str(exc.retry_after_s)}
    response = render(request, "error.html", status=status, message=message, code=code)
    response.headers.update(headers)
    return response


# Every class the app maps, mapped here too: Litestar picks the handler by the exception's MRO
# over the merged maps, so ``Exception`` alone would leave FieldsyncError to the JSON handler.
CONSOLE_EXCEPTION_HANDLERS: dict[Any, Any] = {cls: handle_console_error for cls in EXCEPTION_HANDLERS}
