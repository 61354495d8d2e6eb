"""What a running app holds: settings, clock, database pool, media store, spool, upload area, the
background worker and the group commit of single-report PUTs. Built in the lifespan; handlers
reach it through the ``runtime`` dependency."""

from __future__ import annotations

import dataclasses

import asyncpg

from fieldsync.ports import Clock, MediaStore, UploadArea
from fieldsync.services.ingest import GroupCommit
from fieldsync.services.worker import Worker
from fieldsync.settings import Settings
from fieldsync.storage.spool import Spool


@dataclasses.dataclass(slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    pool: asyncpg.Pool
    media: MediaStore
    spool: Spool
    uploads: UploadArea
    worker: Worker
    ingest: GroupCommit

    def wake_workers(self) -> None:
        """New work was queued: the background worker should look now, not at its next poll."""
        self.worker.wake()
