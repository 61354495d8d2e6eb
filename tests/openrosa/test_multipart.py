"""The submission reader streams: a large attachment goes to the spool chunk by chunk (memory
stays flat), limits stop the read early, and the XML may come after its attachments.
Budget: about 2 s."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fieldsync import errors
from fieldsync.api.openrosa import multipart
from fieldsync.storage.spool import Spool
from tests.openrosa.collect import multipart_body

CHUNK = 64 * 1024
LIMITS = multipart.Limits(max_body_bytes=64 * 1024 * 1024, max_xml_bytes=1024 * 1024, max_media_bytes=32 * 1024 * 1024)


class FakeRequest:
    """What ``read_submission`` reads of a request: headers and the body in server-sized chunks."""

    def __init__(self, body: bytes, content_type: str) -> None:
        self.headers = {"content-type": content_type, "content-length": str(len(body))}
        self.body = body

    async def stream(self) -> AsyncIterator[bytes]:
        view = memoryview(self.body)
        for start in range(0, len(self.body), CHUNK):
            yield bytes(view[start:start + CHUNK])


def wants(names: set[str]) -> Any:
    return lambda xml: names


async def test_a_20_mb_attachment_is_spooled_without_holding_it(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    await spool.ensure()
    big = hashlib.sha256(b"seed").digest() * (20 * 1024 * 1024 // 32)
    body, content_type = multipart_body("x.xml", b"<data/>", [("big.jpg", big)], incomplete=False)
    request = FakeRequest(body, content_type)
    tracemalloc.start()
    try:
        async with multipart.read_submission(request, spool, LIMITS, wants({"big.jpg"})) as parsed:  # type: ignore[arg-type]
            _, peak = tracemalloc.get_traced_memory()
            staged = parsed.attachments["big.jpg"].staged
            assert staged.size == len(big) and staged.sha256 == hashlib.sha256(big).hexdigest()
            assert Path(staged.path).read_bytes() == big
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes while reading a {len(big)}-byte attachment"
    assert not list((tmp_path / "spool").iterdir())  # spool files go with the block


async def test_attachments_before_the_xml_are_read_and_unwanted_ones_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    await spool.ensure()
    files = [("a.jpg", b"A" * 1000), ("x.bin", b"X" * 1000), ("b.jpg", b"B" * 10)]
    body, content_type = multipart_body("x.xml", b"<data/>", files, incomplete=True, xml_after=2)
    async with multipart.read_submission(FakeRequest(body, content_type), spool, LIMITS, wants({"a.jpg", "b.jpg"})) as parsed:  # type: ignore[arg-type]
        assert parsed.xml == b"<data/>" and parsed.incomplete is True
        assert sorted(parsed.attachments) == ["a.jpg", "b.jpg"]
        assert parsed.attachments["a.jpg"].content_type == "image/jpeg"


@pytest.mark.parametrize(
    ("limits", "error"),
    [
        (multipart.Limits(max_body_bytes=10_000, max_xml_bytes=1024, max_media_bytes=10**9), errors.SubmissionTooLarge),
        (multipart.Limits(max_body_bytes=10**9, max_xml_bytes=1024, max_media_bytes=5_000), errors.MediaTooLarge),
        (multipart.Limits(max_body_bytes=10**9, max_xml_bytes=10, max_media_bytes=10**9), errors.SubmissionTooLarge),
    ],
)
async def test_limits_stop_the_read(tmp_path: Path, limits: multipart.Limits, error: type[Exception]) -> None:
    spool = Spool(tmp_path / "spool")
    await spool.ensure()
    body, content_type = multipart_body("x.xml", b"<data>" + b" " * 100 + b"</data>", [("a.jpg", b"A" * 200_000)],
                                        incomplete=False)
    request = FakeRequest(body, content_type)
    request.headers.pop("content-length")  # chunked: the running total must catch it
    with pytest.raises(error):
        async with multipart.read_submission(request, spool, limits, wants({"a.jpg"})):  # type: ignore[arg-type]
            pass
    assert not list((tmp_path / "spool").iterdir())
