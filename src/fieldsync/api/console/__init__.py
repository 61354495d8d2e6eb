"""The supervisor console (SPEC §8): server-rendered HTML at ``/console/``, no external resources.

Layout: ``data`` is the console's only door to fieldsync's services (the same calls the JSON API
makes); ``security`` holds the session cookie, CSRF tokens and security headers; ``web`` renders
pages and errors; ``auth``, ``reports``, ``overview``, ``devices`` and ``files`` are the pages;
``messages`` is the one message catalogue (Chinese and English); ``svgmap`` and ``charts`` draw.

Every console route lives under one Router that is left out of the OpenAPI document (the console
is not part of the JSON API), overrides the ``principal`` dependency with the session cookie,
renders its errors as HTML, and adds the security headers to every answer.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Router
from litestar.di import Provide
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from fieldsync.api.console.auth import ConsoleAuthController
from fieldsync.api.console.devices import ConsoleDevicesController
from fieldsync.api.console.files import ConsoleFilesController
from fieldsync.api.console.overview import ConsoleOverviewController
from fieldsync.api.console.reports import ConsoleReportsController
from fieldsync.api.console.security import provide_console_principal, security_headers_middleware
from fieldsync.api.console.web import CONSOLE_EXCEPTION_HANDLERS

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Jinja with autoescaping on for every template, whatever its file name."""
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True, lstrip_blocks=True,
    )
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))


def console_router() -> Router:
    static = create_static_files_router(
        path="/console/static", directories=[STATIC], name="console:static", include_in_schema=False,
        cache_control=None,
    )
    return Router(
        path="/",
        route_handlers=[
            ConsoleAuthController, ConsoleReportsController, ConsoleOverviewController, ConsoleDevicesController,
            ConsoleFilesController, static,
        ],
        dependencies={"principal": Provide(provide_console_principal)},
        exception_handlers=CONSOLE_EXCEPTION_HANDLERS,
        middleware=[security_headers_middleware],
        include_in_schema=False,
    )
