"""The lease an upload's writer holds (``db.uploads``): what makes two PATCHes to one upload, on
one replica or two, never interleave, without a pooled connection held while a body streams.

    take (poll up to LOCK_WAIT_S, else upload.locked) ─▶ kept alive (renewed every lease_s/3, on
    a connection borrowed for one statement) ─▶ given back (shielded, whatever happened)

A replica that dies holding a lease stops renewing it; it runs out ``lease_s`` later on the
database's clock and the next request takes it. A writer whose renewal finds the lease taken by
another (it stalled past the end: a long pause, a lost database) is cancelled and answers
``upload.locked``; its writes are fenced anyway (``record_progress`` names the token).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Protocol

import anyio
import asyncpg
import structlog

from fieldsync import errors
from fieldsync.db import uploads as q

log = structlog.get_logger("fieldsync.uploads")

LOCK_WAIT_S = 2.0
POLL_S = 0.05


class Connections(Protocol):
    """The request's database connection, which a long body must not hold."""

    async def acquire(self) -> asyncpg.Connection:
        """The request's connection, taken from the pool again if it was given back."""
        ...

    async def release(self) -> None:
        """Give the connection back to the pool until the next ``acquire``."""
        ...

    def borrow(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        """Another pooled connection for one short statement, beside the request's own."""
        ...


class Lease:
    """A lease held on one upload row; ``token`` fences every write of its progress."""

    def __init__(self, db: Connections, upload_id: uuid.UUID, token: uuid.UUID, lease_s: float) -> None:
        self.db = db
        self.upload_id = upload_id
        self.token = token
        self.lease_s = lease_s
        self.lost = False
        self._valid_until = time.monotonic() + lease_s

    async def allocate_part(self) -> int:
        """A multipart part number of its own (``ports.AllocatePart``)."""
        async with self.db.borrow() as conn:
            number = await q.allocate_part(conn, self.upload_id, token=self.token)
        if number is None:
            raise errors.UploadLocked("another request took over this upload; read its offset and retry")
        return number

    @contextlib.asynccontextmanager
    async def kept_alive(self) -> AsyncIterator[None]:
        """Renew the lease while the block runs; if it is lost, the block is cancelled and this
        raises ``upload.locked``."""
        failure: Exception | None = None
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._renew, tasks.cancel_scope)
            try:
                yield
            except Exception as exc:  # raised as itself below, not wrapped in an exception group
                failure = exc
            finally:
                tasks.cancel_scope.cancel()
        if failure is not None:
            raise failure
        if self.lost:
            raise errors.UploadLocked("this request lost the upload's lease to another; read its offset and retry")

    async def _renew(self, scope: anyio.CancelScope) -> None:
        while True:
            await anyio.sleep(self.lease_s / 3)
            started = time.monotonic()
            try:
                with anyio.CancelScope(shield=True):
                    async with self.db.borrow() as conn:
                        held = await q.renew_lease(conn, self.upload_id, token=self.token, lease_s=self.lease_s)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError, errors.FieldsyncError):
                log.warning("upload_lease_not_renewed", upload_id=str(self.upload_id))
                held = time.monotonic() < self._valid_until  # keep going while it cannot have run out
            else:
                self._valid_until = started + self.lease_s
            if not held:
                self.lost = True
                scope.cancel()
                return


async def take(db: Connections, upload_id: uuid.UUID, *, lease_s: float) -> tuple[Lease, asyncpg.Record] | None:
    """The lease and the row as it is under it; None if there is no such upload. Waits up to
    ``LOCK_WAIT_S`` for a lease another request holds, then raises ``upload.locked``."""
    token = uuid.uuid4()
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        conn = await db.acquire()
        row = await q.take_lease(conn, upload_id, token=token, lease_s=lease_s)
        if row is not None:
            return Lease(db, upload_id, token, lease_s), row
        if await q.get_upload(conn, upload_id) is None:
            return None
        if time.monotonic() >= deadline:
            raise errors.UploadLocked("another request is writing to this upload; read its offset and retry")
        await anyio.sleep(POLL_S)


async def give_back(lease: Lease) -> None:
    """Release the lease (shielded: it runs when the request is cut off, too)."""
    with anyio.CancelScope(shield=True):
        try:
            await q.release_lease(await lease.db.acquire(), lease.upload_id, token=lease.token)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError, errors.FieldsyncError):
            log.warning("upload_lease_not_released", upload_id=str(lease.upload_id), detail="it runs out by itself")
