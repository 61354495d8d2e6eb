"""SPEC §6: the disk under the data directory full.

The data directory (embedded PostgreSQL, spool, tus part files, filesystem media) lives on a
128 MiB tmpfs mounted for the test, so it runs as root only (CI runs as root); elsewhere it is
skipped with the reason. A filler file takes the space, in two steps:

1. below the reserve kept for the database (``FIELDSYNC_DISK_RESERVE_MB``, 16 here): photo PUTs
   and tus chunks answer 507 ``storage.full`` with ``Retry-After`` before their body is read,
   while report PUTs still answer 201 (naming the photo in ``missing_media``);
2. to the last byte: photo uploads 507; report PUTs 201 until PostgreSQL cannot extend a table,
   then 507 (never a 500); a fleet sending meanwhile gets 507s and keeps its queue.

Nothing is half-written (no spool file left, the photo and the refused reports absent, the tus
offset unchanged), and once the filler is deleted the same requests succeed, with the same
``fieldsync serve`` process, and the history checker is clean. Budget: 20 s.

How it was seen to fail: without the fixes, the photo was stored into the reserve (201) in step
1; with only the reserve kept, a report PUT on the full disk answered 500 ``internal`` (asyncpg's
``DiskFullError``); the second test shows the spool, tus and store writes without the reserve
(each raised a raw ``OSError``, answered 500, before ``storage.disk``).
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from fieldsync import errors
from fieldsync.ports import Progress, UploadBytes
from fieldsync.storage import FilesystemMediaStore, Spool, keys
from fieldsync.storage.uploads import PartFileArea
from tests.faults.checker import check, store_sizes
from tests.faults.fleet import TUS, Fleet, Photo, Policy, QueuedReport, make_photo, make_report, plan_devices
from tests.faults.harness import Server, copy_data_dir, enroll

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
MiB = 1024 * 1024


@pytest.fixture
def small_disk() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs under the data directory (CI runs as root)")
    root = Path(tempfile.mkdtemp(prefix="fieldsync-faults-disk-", dir="/tmp"))
    mount = root / "disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128m,mode=0755", "tmpfs", str(mount)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def fill(filler: Path, *, leave: int) -> None:
    """Grow ``filler`` until only ``leave`` bytes are free (0: until the disk refuses)."""
    with filler.open("ab") as out:
        block = b"\0" * MiB
        while True:
            free = shutil.disk_usage(filler.parent).free
            if free <= leave:
                return
            try:
                out.write(block[: min(MiB, free - leave)] if leave else block)
                out.flush()
            except OSError:
                return


def tus_metadata(sha256: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                    for k, v in (("sha256", sha256), ("content_type", "image/jpeg")))


class Probe:
    """One device's direct requests: a photo by PUT and by tus, and reports, against the disk."""

    def __init__(self, client: httpx.AsyncClient, location: str, photo: Photo, rng: random.Random) -> None:
        self.client, self.location, self.photo, self.rng = client, location, photo, rng

    async def put_photo(self) -> httpx.Response:
        return await self.client.put(f"/v1/media/{self.photo.sha256}", content=self.photo.data,
                                     headers={"Content-Type": "image/jpeg"})

    async def patch_photo(self) -> httpx.Response:
        return await self.client.patch(self.location, content=self.photo.data, headers={
            **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})

    async def below_the_reserve(self) -> httpx.Response:
        """Photos are refused (507) before their body is read; a report still goes in (201)."""
        upload, chunk = await self.put_photo(), await self.patch_photo()
        report = make_report(self.rng, jurisdiction="140431", photos=[self.photo], device="disk")
        kept = await self.client.put(f"/v1/reports/{report.id}", json=report.body)
        assert upload.status_code == 507 and upload.json()["code"] == "storage.full", upload.text
        assert upload.headers["retry-after"]
        assert chunk.status_code == 507 and chunk.json()["code"] == "storage.full", chunk.text
        assert kept.status_code == 201 and kept.json()["missing_media"] == [self.photo.sha256], kept.text
        return kept

    async def until_the_database_refuses(self) -> QueuedReport:
        """Reports until PostgreSQL cannot extend a table: 201 until then, 507 then, never a 500."""
        for _ in range(300):
            report = make_report(self.rng, jurisdiction="140431", photos=[], device="disk")
            report.body["description"] = os.urandom(6000).hex()
            answer = await self.client.put(f"/v1/reports/{report.id}", json=report.body)
            assert answer.status_code in (201, 507), answer.text
            if answer.status_code == 507:
                assert answer.json()["code"] == "storage.full" and answer.headers["retry-after"]
                return report
        raise AssertionError("PostgreSQL never ran out of room: the disk was not full")


async def test_full_disk_answers_507_keeps_nothing_half_written_and_recovers_when_freed(
    small_disk: Path, golden_dir: Path, admin_token: str, serve: Callable[..., Server]
) -> None:
    server = serve(data_dir=copy_data_dir(golden_dir, into=small_disk), FIELDSYNC_DISK_RESERVE_MB="16")
    pid = server.pid
    (_, _, token), = await enroll(server.base_url, admin_token, users=1, devices_per_user=1, prefix="disk")
    enrolled = await enroll(server.base_url, admin_token, users=2, devices_per_user=2, prefix="diskfleet")
    devices = plan_devices(enrolled, reports=4, photos_per_report=1, seed=14)
    filler = small_disk / "data" / "filler"
    rng = random.Random(15)
    photo = make_photo(rng, width=400, height=300)
    async with httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=30) as client:
        created = await client.post("/v1/uploads", headers={**TUS, "Upload-Length": str(len(photo.data)),
                                                            "Upload-Metadata": tus_metadata(photo.sha256)})
        probe = Probe(client, created.headers["location"], photo, rng)
        await asyncio.to_thread(fill, filler, leave=8 * MiB)
        kept = await probe.below_the_reserve()

        await asyncio.to_thread(fill, filler, leave=0)
        load = asyncio.create_task(Fleet(devices, server.base_url, Policy(max_backoff_s=0.3, deadline_s=60,
                                                                          chunk_bytes=4096)).run())
        assert (await probe.put_photo()).status_code == 507
        refused = await probe.until_the_database_refuses()
        await asyncio.sleep(1.0)
        assert not load.done(), "the fleet finished on a full disk: the test proved nothing"
        assert list((small_disk / "data" / "spool").glob("*.part")) == []
        assert (await client.head(f"/v1/media/{photo.sha256}")).status_code == 404
        assert (await client.head(probe.location, headers=TUS)).headers["upload-offset"] == "0"
        assert (await client.get(f"/v1/reports/{refused.id}")).status_code == 404

        filler.unlink()
        history = await load
        chunk = await probe.patch_photo()
        again = await client.put(f"/v1/reports/{refused.id}", json=refused.body)
        detail = await client.get(f"/v1/reports/{kept.json()['id']}")
    assert chunk.status_code == 204 and chunk.headers["fieldsync-media-sha256"] == photo.sha256
    assert again.status_code == 201 and detail.json()["missing_media"] == []
    assert any(c.status == 507 for c in history.calls), "no device met the full disk"
    assert server.pid == pid and server.process is not None and server.process.poll() is None
    problems = await check(history, base_url=server.base_url, devices=devices, database_url=server.database_url(),
                           store_sizes=await store_sizes(FilesystemMediaStore(server.data_dir / "media")))
    assert problems == []


async def no_parts() -> int:
    raise AssertionError("part files take no multipart part numbers")


async def test_writes_into_a_full_disk_are_storage_full_and_leave_nothing(small_disk: Path) -> None:
    """Below the reserve check: the spool, a tus part file and the filesystem store writing into a
    disk with no byte left (reserve 0). Fails without ``storage.disk.space_errors`` (a raw
    ``OSError``, which the API answered 500). Budget: 1 s."""
    spool = Spool(small_disk / "spool")
    await spool.ensure()
    area = PartFileArea(small_disk / "uploads")
    upload_id = uuid.uuid4()
    await area.create(upload_id)
    async with area.writer(UploadBytes(upload_id, 10 * MiB, 0), algorithm=None, allocate_part=no_parts) as part:
        await part.write(b"x" * 1000)
        assert await part.commit() == Progress(offset=1000)
    store = FilesystemMediaStore(small_disk / "media")
    await store.ensure_root()
    source = small_disk / "photo.jpg"
    source.write_bytes(b"y" * 5000)
    await asyncio.to_thread(fill, small_disk / "filler", leave=0)

    with pytest.raises(errors.StorageFull):
        async with spool.staged() as staged:
            await staged.write(os.urandom(3 * MiB))
            await staged.finish()
    with pytest.raises(errors.StorageFull):
        async with area.writer(UploadBytes(upload_id, 10 * MiB, 1000), algorithm=None,
                               allocate_part=no_parts) as part:
            try:
                await part.write(os.urandom(3 * MiB))
                await part.commit()
            except errors.StorageFull:
                await part.rollback()
                raise
    with pytest.raises(errors.StorageFull):
        await store.put_bytes(keys.original_key("a" * 64), os.urandom(3 * MiB), content_type="image/jpeg")

    assert list((small_disk / "spool").iterdir()) == []
    assert area.path(upload_id).stat().st_size == 1000
    assert [item async for item in store.list_keys()] == []
    assert not any(p.name.startswith(".tmp-") for p in (small_disk / "media").rglob("*"))
