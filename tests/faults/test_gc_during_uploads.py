"""SPEC §6: ``fieldsync gc`` running during uploads, at any grace: nothing an acknowledged report
references is removed.

``fieldsync gc`` runs in a loop, through the command line with ``FIELDSYNC_GC_GRACE_S=0`` (the
harshest grace), while twelve devices upload photos (PUT and tus) and send reports (PUT and
push), photos first on some devices and reports first on others. At grace 0 a photo nobody
references yet may go: a device whose receipt then names it in ``missing_media`` uploads it
again, as field apps do. The checker then requires every acknowledged report served with all its
acknowledged photos present and byte-identical. Budget: 20 s.

gc itself is the lead's; this test drives it only through the CLI and HTTP. How it was seen to
fail: on the ``faults`` branch before it was rebased on issue 10's gc fixes it failed in about
two runs of three, each time one of: an acknowledged photo whose object was gone while its row
stayed (gc listed the object before the upload committed its row, and deleted it as "without a
row"); an acknowledged report whose acknowledged photo was missing (gc's ``NOT EXISTS`` did not
see the report's uncommitted ``report_media`` row); and gc itself exiting 1 on a deadlock with
the derivative worker. On ``main``'s gc it passed every run (docs/RELIABILITY.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from fieldsync.storage import FilesystemMediaStore
from tests.faults.checker import check, store_sizes
from tests.faults.fleet import Fleet, Policy, plan_devices
from tests.faults.harness import Server, enroll

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def test_gc_at_grace_0_during_uploads_removes_nothing_an_acknowledged_report_references(
    serve: Callable[..., Server], admin_token: str
) -> None:
    server = serve(FIELDSYNC_GC_GRACE_S="0")
    enrolled = await enroll(server.base_url, admin_token, users=6, devices_per_user=2, prefix="gc")
    devices = plan_devices(enrolled, reports=6, photos_per_report=2, seed=17)
    fleet = Fleet(devices, server.base_url, Policy(max_backoff_s=0.3, deadline_s=120, chunk_bytes=4096, pace_s=0.1))
    load = asyncio.create_task(fleet.run())
    runs, failed = [], []
    while not load.done():
        result = await asyncio.to_thread(server.cli, "gc")
        if result.returncode == 0:
            runs.append(result.stdout.splitlines()[0])
        else:
            failed.append(result.stderr.strip().splitlines()[-3:])
    history = await load
    removed = sum(int(line.split("removed: ")[1].split(" ")[0]) for line in runs if "removed: " in line)
    print(f"gc ran {len(runs)} times during the uploads and removed {removed} unreferenced photos; "
          f"{len(failed)} runs failed: {failed[:2]}")
    assert len(runs) >= 3, "gc did not run during the uploads"
    assert failed == [], "gc itself failed while uploads ran"

    problems = await check(history, base_url=server.base_url, devices=devices, database_url=server.database_url(),
                           store_sizes=await store_sizes(FilesystemMediaStore(server.data_dir / "media")))
    assert problems == [], "\n".join(problems)
