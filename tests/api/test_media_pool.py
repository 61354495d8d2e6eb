"""PUT /v1/media/{sha256} holds no pooled database connection while its body streams.

scripts/bench/run.py found it: with 50 devices uploading 20 MB photos at once, the pool's 20
connections were all held by uploads still receiving bytes, and the rest waited 10 s for a
connection and got 503. A field network makes one upload last minutes, so the connection is
given back after authentication and taken again only for the row.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar

from tests import images
from tests.support import Actor, make_user


@pytest.fixture
async def inspector(conn, clock) -> Actor:
    return await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())


async def connections_in_use(app: Litestar) -> int:
    """The fewest pool connections in use over a few looks (a derivative worker's poll is brief)."""
    pool = app.state.runtime.pool
    seen = []
    for _ in range(5):
        seen.append(pool.get_size() - pool.get_idle_size())
        await asyncio.sleep(0.01)
    return min(seen)


async def test_upload_holds_no_connection_while_its_body_streams(client, app, inspector):
    data = images.jpeg(seed=7)
    halfway, go_on = asyncio.Event(), asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield data[:1000]
        halfway.set()
        await go_on.wait()
        yield data[1000:]

    upload = asyncio.create_task(
        client.put(
            f"/v1/media/{images.sha256(data)}",
            content=slow_body(),
            headers={**inspector.headers, "Content-Type": "image/jpeg"},
        )
    )
    await asyncio.wait_for(halfway.wait(), timeout=10)
    await asyncio.sleep(0.05)
    in_use_while_streaming = await connections_in_use(app)
    go_on.set()
    response = await asyncio.wait_for(upload, timeout=30)

    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == images.sha256(data)
    assert in_use_while_streaming == 0


class GatedBodies:
    """Request bodies that send 100 bytes, then wait at a gate until every one of them is mid-body."""

    def __init__(self, count: int) -> None:
        self.count, self.mid_body = count, 0
        self.all_mid_body, self.gate = asyncio.Event(), asyncio.Event()

    def body(self, data: bytes) -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            yield data[:100]
            self.mid_body += 1  # the server asked for more: this body is streaming
            if self.mid_body == self.count:
                self.all_mid_body.set()
            await self.gate.wait()
            yield data[100:]

        return chunks()


async def test_more_uploads_than_pool_connections_stream_at_once(client, app, inspector):
    photos = [images.jpeg(64, 48, seed=seed) for seed in range(30)]
    assert len(photos) > app.state.runtime.pool.get_max_size()
    bodies = GatedBodies(len(photos))
    uploads = [
        asyncio.create_task(
            client.put(
                f"/v1/media/{images.sha256(data)}",
                content=bodies.body(data),
                headers={**inspector.headers, "Content-Type": "image/jpeg"},
            )
        )
        for data in photos
    ]
    try:
        await asyncio.wait_for(bodies.all_mid_body.wait(), timeout=5)
    finally:
        streaming_at_once = bodies.mid_body
        bodies.gate.set()
        responses = await asyncio.wait_for(asyncio.gather(*uploads), timeout=60)

    assert streaming_at_once == len(photos)
    assert [r.status_code for r in responses] == [201] * len(photos)


class GatedStore:
    """The app's own store, whose puts of originals wait at a gate (a slow or hanging store)."""

    def __init__(self, store, count: int) -> None:
        self.store, self.count, self.waiting = store, count, 0
        self.all_waiting, self.gate = asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    async def put_file(self, key: str, path, **kwargs) -> None:
        self.waiting += 1
        if self.waiting == self.count:
            self.all_waiting.set()
        await self.gate.wait()
        await self.store.put_file(key, path, **kwargs)


def tus_creation(data: bytes) -> dict[str, str]:
    import base64

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
        "Upload-Metadata": f"sha256 {b64(images.sha256(data))},content_type {b64('image/jpeg')}",
        "Content-Type": "application/offset+octet-stream",
    }


async def test_finishing_uploads_hold_no_connection_while_their_photos_are_stored(client, app, inspector):
    """25 direct uploads and 25 tus uploads (their last byte sent) wait for a hanging store at
    once, more than the pool's 20 connections: none of them holds one, and the API answers."""
    runtime = app.state.runtime
    photos = [images.jpeg(64, 48, seed=100 + seed) for seed in range(50)]
    gated = GatedStore(runtime.media, len(photos))
    runtime.media = gated
    direct = [client.put(f"/v1/media/{images.sha256(data)}", content=data,
                         headers={**inspector.headers, "Content-Type": "image/jpeg"}) for data in photos[:25]]
    resumable = [client.post("/v1/uploads", content=data, headers={**inspector.headers, **tus_creation(data)})
                 for data in photos[25:]]
    sending = [asyncio.create_task(call) for call in direct + resumable]
    try:
        await asyncio.wait_for(gated.all_waiting.wait(), timeout=30)
        in_use = await connections_in_use(app)
        me = await asyncio.wait_for(client.get("/v1/me", headers=inspector.headers), timeout=5)
    finally:
        gated.gate.set()
        responses = await asyncio.wait_for(asyncio.gather(*sending), timeout=60)
    assert in_use == 0
    assert me.status_code == 200
    assert [r.status_code for r in responses] == [201] * 50, [r.text for r in responses if r.status_code != 201]
