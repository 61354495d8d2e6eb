"""Disk space under the data directory: a full disk is ``storage.full`` (507), never a 500.

Two rules, used by the spool, the tus part files and the filesystem store:

- An ``OSError`` of "no space" (``ENOSPC``, ``EDQUOT``) while writing becomes ``StorageFull``.
  The writer has already removed or truncated what it wrote (spool file unlinked, part file cut
  back to its persisted offset, store temp file removed), so nothing half-written stays.
- An upload is refused up front when it would leave less than the reserve free
  (``FIELDSYNC_DISK_RESERVE_MB``). In the default embedded setup PostgreSQL lives on the same
  disk; when photos fill it to the last byte, PostgreSQL can no longer extend a table (every
  report is then refused) or, worse, write WAL (it stops). The reserve makes photos stop first
  while reports, which are small, keep arriving; the refusal comes before the body is read, so a
  phone does not send megabytes to be told no.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

from fieldsync.errors import StorageFull

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


@contextlib.contextmanager
def space_errors(what: str) -> Iterator[None]:
    """Turn "no space left" raised inside the block into ``StorageFull``; other errors pass."""
    try:
        yield
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise StorageFull(f"{what}: no space left on the server's disk; nothing was kept") from exc
        raise


def ensure_room(directory: Path, incoming: int, reserve: int) -> None:
    """Refuse (``StorageFull``) ``incoming`` bytes that would leave less than ``reserve`` free."""
    if reserve <= 0 and incoming <= 0:
        return
    try:
        free = shutil.disk_usage(directory).free
    except FileNotFoundError:
        return  # created on first use; the write itself will say if there is no room
    if free - incoming < reserve:
        raise StorageFull(
            f"the server's disk has {free // (1024 * 1024)} MiB free and keeps {reserve // (1024 * 1024)} MiB for "
            "the database; nothing was kept"
        )
