"""What a running app holds: settings, clock, database pool, media store, spool and the
derivative workers. Built in the lifespan; handlers reach it through the ``runtime`` dependency."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator

import asyncpg

from fieldsync.ports import Clock, MediaStore
from fieldsync.services import duplicates, feed, media
from fieldsync.settings import Settings
from fieldsync.storage.spool import Spool

log = logging.getLogger("fieldsync.workers")
IDLE_POLL_S = 5.0


@dataclasses.dataclass(slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    pool: asyncpg.Pool
    media: MediaStore
    spool: Spool
    _wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def wake_workers(self) -> None:
        self._wake.set()

    async def _worker(self) -> None:
        """Run due background jobs until none is due: fresh work first (derivatives of new photos,
        duplicate detection queued by bulk pushes), then the backfill of older photos'
        fingerprints, so that an upgrade's backlog never delays today's reports."""
        while True:
            try:
                while (
                    await media.run_one_derivative_job(self.pool, self.media, self.clock)
                    or await duplicates.run_duplicates_jobs(self.pool, self.clock)
                    or await feed.run_restamp_job(self.pool, self.clock)
                    or await media.run_one_fingerprint_job(
                        self.pool, self.media, self.clock, max_pixels=self.settings.max_media_pixels
                    )
                ):
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a worker must survive a database blip; jobs stay queued
                log.exception("derivative worker iteration failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=IDLE_POLL_S)

    @contextlib.asynccontextmanager
    async def workers(self, count: int) -> AsyncIterator[None]:
        """Run ``count`` background workers for the duration of the block."""
        tasks = [asyncio.create_task(self._worker(), name=f"worker-{i}") for i in range(count)]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
