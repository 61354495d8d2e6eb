"""Composition root of the HTTP service: ``create_app(settings)``. Nothing imports this module.

The lifespan starts the embedded PostgreSQL cluster when no database URL is configured, applies
migrations, opens the pool and the media store, and undoes all of it on shutdown, so that
SIGINT/SIGTERM leave no postgres process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Iterator

import asyncpg
from litestar import Litestar
from litestar.config.compression import CompressionConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from fieldsync import __version__
from fieldsync.api.allow import allow_header_middleware
from fieldsync.api.collect import CollectController
from fieldsync.api.console import console_router, template_config
from fieldsync.api.deps import DEPENDENCIES, connection_release_middleware
from fieldsync.api.identity import AuthController, DeviceController, EnrollmentController, UserController
from fieldsync.api.listing import ExportController, ReportListController
from fieldsync.api.media import MediaController
from fieldsync.api.observability import Metrics, observability_middleware_factory
from fieldsync.api.openapi import ConstrainedOpenAPIConfig
from fieldsync.api.openrosa.controller import OpenRosaController
from fieldsync.api.ops import OpsController
from fieldsync.api.problems import EXCEPTION_HANDLERS
from fieldsync.api.reference import ReferenceController
from fieldsync.api.reports import ReportController
from fieldsync.api.review import IncidentController, ReviewController
from fieldsync.api.runtime import Runtime
from fieldsync.api.stats import StatsController
from fieldsync.api.sync import SyncController
from fieldsync.api.uploads import UploadController
from fieldsync.api.webhooks import WebhookController
from fieldsync.db import embedded, roles
from fieldsync.db.migrate import migrate
from fieldsync.db.pool import connect, create_pool
from fieldsync.ports import Clock, MediaStore, SystemClock
from fieldsync.services import duplicates, feed, media
from fieldsync.services.delivery import delivering
from fieldsync.services.ingest import GroupCommit
from fieldsync.services.worker import Batched, Worker, seconds_to_next_job
from fieldsync.settings import Settings
from fieldsync.storage import open_media_store, open_spool, open_upload_area

ROUTE_HANDLERS = [
    OpsController,
    AuthController,
    UserController,
    EnrollmentController,
    DeviceController,
    ReferenceController,
    ReportController,
    ReportListController,
    ExportController,
    ReviewController,
    IncidentController,
    StatsController,
    MediaController,
    SyncController,
    UploadController,
    CollectController,
    OpenRosaController,
    WebhookController,
]


def openapi_config() -> OpenAPIConfig:
    return ConstrainedOpenAPIConfig(
        title="fieldsync",
        version=__version__,
        description="Offline-first field reporting for emergency-management inspectors.",
        path="/schema",
        render_plugins=[ScalarRenderPlugin()],
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(type="http", scheme="bearer", description="User or device token")
            }
        ),
    )


def background_worker(settings: Settings, clock: Clock, pool: asyncpg.Pool, store: MediaStore) -> Worker:
    """The job runners in the order the worker tries them: fresh work first, the backfill last;
    restamps after the searches that queue them (a burst's gather into one), unless overdue."""
    return Worker([
        lambda: feed.run_restamp_jobs(pool, clock, waited_s=feed.OVERDUE_S),
        lambda: media.run_one_derivative_job(pool, store, clock),
        Batched(lambda batch: duplicates.run_duplicates_jobs(pool, clock, batch), duplicates.DETECT_BATCH),
        lambda: feed.run_restamp_jobs(pool, clock),
        lambda: media.run_one_fingerprint_job(pool, store, clock, max_pixels=settings.max_media_pixels),
    ], next_due=lambda: seconds_to_next_job(pool, clock))


YOUNG_COLLECTION_EVERY = 10_000  # container allocations between collections of the youngest generation


@contextlib.contextmanager
def collector_for_serving() -> Iterator[None]:
    """The cyclic garbage collector tuned for serving (decisions/0019), as it was once the app stops.

    Everything startup made lives as long as the app: it is kept out of the collector's passes,
    which otherwise walk it again and again under load (about a tenth of the server's CPU per
    metadata report). And the youngest generation is collected every ``YOUNG_COLLECTION_EVERY``
    allocations instead of 700: a push of 1000 reports, a dense cell's search or a photo's
    processing allocates tens of thousands of short-lived containers that reference counting
    frees anyway, and at 700 the collector ran hundreds of times a second, with full passes over
    the whole heap among them (over a tenth of a push's server CPU)."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    clock = clock or SystemClock()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with embedded.database_url(settings.database_url.value, settings.data_dir) as dsn:
            owner_dsn = settings.migrate_database_url.value or dsn
            conn = await connect(owner_dsn)
            try:
                await migrate(conn)
                pool_dsn = await roles.service_dsn(conn, owner_dsn, app_dsn=dsn if settings.database_url else None)
            finally:
                await conn.close()
            store = await open_media_store(settings)
            spool = await open_spool(settings)
            pool = await create_pool(pool_dsn, max_size=settings.db_pool_size, reset_session=False)
            try:
                worker = background_worker(settings, clock, pool, store)
                app.state.runtime = Runtime(
                    settings=settings, clock=clock, pool=pool, media=store, spool=spool,
                    uploads=open_upload_area(settings, store, spool), worker=worker,
                    ingest=GroupCommit(pool, clock, clock_skew_s=settings.clock_skew_s),
                )
                webhooks = delivering(
                    pool_dsn, clock, concurrency=settings.webhook_concurrency, timeout_s=settings.webhook_timeout_s,
                    allow_private=settings.webhook_allow_private,
                )
                with collector_for_serving():
                    async with worker.running(settings.derivative_workers), webhooks:
                        yield
            finally:
                try:
                    await asyncio.wait_for(pool.close(), timeout=30)
                except TimeoutError:
                    pool.terminate()

    app = Litestar(
        route_handlers=[*ROUTE_HANDLERS, console_router()],
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[connection_release_middleware, allow_header_middleware],
        lifespan=[lifespan],
        openapi_config=openapi_config(),
        template_config=template_config(),
        request_max_body_size=settings.max_json_bytes,
        compression_config=CompressionConfig(backend="gzip", minimum_size=1024, gzip_compress_level=6),
        state=State({"metrics": metrics}),
        debug=False,
        logging_config=None,
    )
    # Around the whole app, not per route: unmatched paths (404) and wrong methods (405) are
    # answered before any route middleware runs, and they need a request id and a count too.
    app.asgi_handler = observability_middleware_factory(metrics)(app.asgi_handler)
    return app
