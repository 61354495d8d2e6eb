"""A fleet of simulated field devices, and the history of every request they made.

Each ``Device`` holds a queue of reports and photos, as a phone does after a day offline, and
sends it the way the field apps do: photos by ``PUT /v1/media/{sha256}`` or by tus
(``/v1/uploads``, in chunks, resuming from the offset the server reports), reports by
``PUT /v1/reports/{id}`` or in one ``POST /v1/sync/push``. Whatever gets no answer, a 5xx, a 409
``request.retry``/``upload.locked``, a 429 or a 507 is sent again, unchanged, after a short
jittered backoff (``Retry-After`` is honoured up to ``Policy.max_backoff_s``), until an answer is
final or ``Policy.deadline_s`` passes. Nothing is ever sent with new content or a new id: a
retry is the same request.

Every request and its answer (or the lack of one) is a ``Call`` in the ``History``; the history
also keeps, per report and per photo, what was sent and what was acknowledged. The checker
(``tests/faults/checker.py``) proves the server against it afterwards.

Photos are tiny random-noise JPEGs by default (``make_photo``): every one distinct, a few KiB,
cheap to make by the thousand; the point here is the protocol, not the pixels.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import hashlib
import io
import random
import ssl
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from PIL import Image

TUS = {"Tus-Resumable": "1.0.0"}
RETRY_CODES = {"request.retry", "upload.locked", "server.busy", "dependency.unavailable", "storage.full"}
NO_ANSWER = (httpx.TransportError,)


def make_photo(rng: random.Random, *, width: int = 64, height: int = 48) -> Photo:
    noise = bytes(rng.getrandbits(8) for _ in range(width * height * 3))
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), noise).save(out, "JPEG", quality=90)
    data = out.getvalue()
    return Photo(hashlib.sha256(data).hexdigest(), data)


def make_report(rng: random.Random, *, jurisdiction: str, photos: list[Photo], device: str) -> QueuedReport:
    """A hazard report that a device in ``jurisdiction`` could have written offline."""
    report_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    observed = dt.datetime(2026, 5, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=rng.randrange(40_000))
    body: dict[str, Any] = {
        "id": str(report_id),
        "kind": "hazard",
        "category": rng.choice(["coal_mine", "gas", "fire_safety", "construction", "hazardous_chemicals"]),
        "title": f"{device} 隐患 {report_id.hex[:8]}",
        "description": f"queued offline by {device}; {rng.getrandbits(64):x}",
        "jurisdiction": jurisdiction,
        "location": {"lat": round(36.0 + rng.random(), 6), "lon": round(112.0 + rng.random(), 6),
                     "accuracy_m": 5.0},
        "observed_at": observed.isoformat(),
        "media": [{"sha256": p.sha256, "role": "photo"} for p in photos],
        "severity": rng.choice(["red", "orange", "yellow", "blue"]),
        "enterprise": {"name": "沁源县某煤业有限公司", "credit_code": "91350100M000100Y43"},
        "grade": rng.choice(["general", "major"]),
    }
    return QueuedReport(report_id, body, photos)


@dataclasses.dataclass(frozen=True)
class Photo:
    sha256: str
    data: bytes
    content_type: str = "image/jpeg"


@dataclasses.dataclass
class QueuedReport:
    id: uuid.UUID
    body: dict[str, Any]
    photos: list[Photo]


@dataclasses.dataclass
class Call:
    """One request and what came back: a status and its decoded body, or no answer at all."""

    device: str
    op: str
    key: str
    started: float
    ended: float
    status: int | None = None
    error: str | None = None
    answer: Any = None
    retry_after: str | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def code(self) -> str | None:
        return self.answer.get("code") if isinstance(self.answer, dict) else None


@dataclasses.dataclass
class Ack:
    device: str
    answers: list[dict[str, Any]]


class GaveUp(Exception):
    """A device stopped resending after ``Policy.deadline_s``."""


@dataclasses.dataclass
class Policy:
    timeout_s: float = 30.0
    min_backoff_s: float = 0.05
    max_backoff_s: float = 1.0
    deadline_s: float = 120.0
    chunk_bytes: int = 16 * 1024
    pace_s: float = 0.0  # pause between two items of a queue, to spread a queue over time


class History:
    """Everything the fleet asked, was told, sent and had acknowledged."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.sent_reports: dict[uuid.UUID, tuple[str, QueuedReport]] = {}
        self.sent_photos: dict[str, tuple[str, Photo]] = {}
        self.report_acks: dict[uuid.UUID, Ack] = {}
        self.photo_acks: dict[str, Ack] = {}
        self.failures: list[str] = []
        self.inflight: Counter[str] = Counter()  # requests sent and not yet answered, by op

    def statuses(self) -> Counter[int | str]:
        return Counter(call.status if call.status is not None else f"no answer ({call.error})" for call in self.calls)

    def latencies(self, *ops: str) -> list[float]:
        return sorted(call.seconds for call in self.calls if call.status is not None and (not ops or call.op in ops))

    def percentile(self, fraction: float, *ops: str) -> float:
        values = self.latencies(*ops)
        if not values:
            return 0.0
        return values[min(len(values) - 1, int(fraction * len(values)))]

    def errors_5xx(self) -> list[Call]:
        return [call for call in self.calls if call.status is not None and call.status >= 500]

    def server_errors(self) -> list[Call]:
        """Answers no fault may ever produce: 500, or any 5xx that is not a 503/507 problem document
        with ``Retry-After`` (a HEAD answer has no body to carry the document)."""
        return [c for c in self.errors_5xx() if c.status not in (503, 507) or not c.retry_after
                or (c.code is None and not c.op.endswith(".head"))]


class Device:
    """One phone or tablet with its queue; ``run`` sends the queue until all of it is answered."""

    def __init__(
        self, name: str, token: str, *, user: str, reports: list[QueuedReport], report_mode: str = "put",
        photo_mode: str = "put", photos_first: bool = True, seed: int = 0, push_batch: int = 1000,
    ) -> None:
        assert report_mode in ("put", "push") and photo_mode in ("put", "tus")
        self.name = name
        self.user = user
        self.token = token
        self.reports = reports
        self.report_mode = report_mode
        self.photo_mode = photo_mode
        self.photos_first = photos_first
        self.push_batch = push_batch
        self.auth = {"Authorization": f"Bearer {token}"}
        self._rng = random.Random(seed)
        self.push_ids = {r.id: uuid.UUID(int=self._rng.getrandbits(128), version=4) for r in reports}

    @property
    def photos(self) -> list[Photo]:
        return [photo for report in self.reports for photo in report.photos]

    async def run(self, client: httpx.AsyncClient, history: History, policy: Policy) -> None:
        sender = _Sender(self, client, history, policy)
        if self.photos_first:
            await sender.send_photos()
            await sender.send_reports()
        else:
            await sender.send_reports()
            await sender.send_photos()
        await sender.send_photos(only=sender.reupload)


class _Sender:
    def __init__(self, device: Device, client: httpx.AsyncClient, history: History, policy: Policy) -> None:
        self.device, self.client, self.history, self.policy = device, client, history, policy
        self.deadline = time.monotonic() + policy.deadline_s
        self.rng = random.Random(device.name)
        self.uploaded: set[str] = set()
        self.reupload: set[str] = set()

    async def send_photos(self, only: set[str] | None = None) -> None:
        """Every photo of the queue, or ``only`` those a receipt named missing after they had been
        stored (a field app uploads what ``missing_media`` lists)."""
        for photo in self.device.photos:
            if only is not None and photo.sha256 not in only:
                continue
            await self.pace()
            self.history.sent_photos.setdefault(photo.sha256, (self.device.name, photo))
            if self.device.photo_mode == "put":
                answer = await self.until_final("media.put", photo.sha256, lambda p=photo: self.put_photo(p))
            else:
                answer = await self.tus_upload(photo)
            if answer is not None:
                self.history.photo_acks.setdefault(photo.sha256, Ack(self.device.name, [])).answers.append(answer)
                self.uploaded.add(photo.sha256)

    async def send_reports(self) -> None:
        for report in self.device.reports:
            self.history.sent_reports[report.id] = (self.device.name, report)
        if self.device.report_mode == "put":
            for report in self.device.reports:
                await self.pace()
                answer = await self.until_final("report.put", str(report.id), lambda r=report: self.request(
                    "PUT", f"/v1/reports/{r.id}", json=r.body))
                if answer is not None:
                    self.ack_report(report.id, answer)
            return
        batch = self.device.push_batch
        for start in range(0, len(self.device.reports), batch):
            await self.pace()
            await self.push(self.device.reports[start:start + batch])

    async def push(self, reports: list[QueuedReport]) -> None:
        mutations = [{"mutation_id": str(self.device.push_ids[r.id]), "op": "upsert_report", "report": r.body}
                     for r in reports]
        key = ",".join(str(r.id) for r in reports)
        answer = await self.until_final("push", key, lambda: self.request("POST", "/v1/sync/push",
                                                                          json={"mutations": mutations}))
        for report, result in zip(reports, (answer or {}).get("results", []), strict=False):
            if result.get("status") in ("applied", "duplicate"):
                self.ack_report(report.id, result)
            else:
                self.history.failures.append(f"{self.device.name}: push result for {report.id}: {result}")

    async def pace(self) -> None:
        if self.policy.pace_s:
            await asyncio.sleep(self.policy.pace_s * (0.5 + self.rng.random()))

    def ack_report(self, report_id: uuid.UUID, answer: dict[str, Any]) -> None:
        self.history.report_acks.setdefault(report_id, Ack(self.device.name, [])).answers.append(answer)
        self.reupload.update(sha for sha in answer.get("missing_media") or () if sha in self.uploaded)

    # --- one request, recorded ------------------------------------------------------------------

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.device.auth, **kwargs.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, timeout=self.policy.timeout_s, **kwargs)

    async def call(
        self, op: str, key: str, send: Callable[[], Awaitable[httpx.Response]]
    ) -> tuple[Call, httpx.Response | None]:
        started = time.monotonic()
        record = Call(self.device.name, op, key, started, started)
        response: httpx.Response | None = None
        self.history.inflight[op] += 1
        try:
            response = await send()
            record.status = response.status_code
            record.retry_after = response.headers.get("retry-after")
            if response.content and "json" in response.headers.get("content-type", ""):
                try:
                    record.answer = response.json()
                except ValueError:
                    record.answer = None
        except NO_ANSWER as exc:
            record.error = exc.__class__.__name__
        finally:
            self.history.inflight[op] -= 1
        record.ended = time.monotonic()
        self.history.calls.append(record)
        return record, response

    async def until_final(self, op: str, key: str, send: Callable[[], Awaitable[httpx.Response]]) -> Any:
        """Send until a final answer: the 2xx body, or ``None`` after a final refusal (recorded)."""
        attempt = 0
        while True:
            record, response = await self.call(op, key, send)
            if response is not None and 200 <= response.status_code < 300:
                return record.answer if record.answer is not None else {}
            if response is not None and not self.retryable(record):
                self.history.failures.append(f"{self.device.name} {op} {key}: {record.status} {record.answer}")
                return None
            attempt += 1
            await self.backoff(attempt, response)

    def retryable(self, record: Call) -> bool:
        if record.status is None or record.status >= 500 or record.status in (429, 507):
            return True
        return record.status == 409 and record.code in RETRY_CODES

    async def backoff(self, attempt: int, response: httpx.Response | None) -> None:
        if time.monotonic() > self.deadline:
            raise GaveUp(f"{self.device.name} gave up after {self.policy.deadline_s} s")
        wait = min(self.policy.max_backoff_s, self.policy.min_backoff_s * 2 ** min(attempt, 8))
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after and retry_after.isdigit():
            wait = min(self.policy.max_backoff_s, max(wait, float(retry_after)))
        await asyncio.sleep(wait * (0.5 + self.rng.random()))

    # --- photos ---------------------------------------------------------------------------------

    async def put_photo(self, photo: Photo) -> httpx.Response:
        return await self.request("PUT", f"/v1/media/{photo.sha256}", content=photo.data,
                                  headers={"Content-Type": photo.content_type})

    async def tus_upload(self, photo: Photo) -> dict[str, Any] | None:
        """Create an upload, PATCH it chunk by chunk, and after any lost answer ask the offset
        (HEAD) and resume from there; a vanished upload (404/410) starts over."""
        metadata = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                            for k, v in (("sha256", photo.sha256), ("content_type", photo.content_type)))
        location: str | None = None
        offset = 0
        attempt = 0
        while True:
            if location is None:
                record, response = await self.call("tus.create", photo.sha256, lambda: self.request(
                    "POST", "/v1/uploads", headers={**TUS, "Upload-Length": str(len(photo.data)),
                                                    "Upload-Metadata": metadata}))
                if response is not None and response.status_code == 201:
                    location, offset = response.headers["location"], 0
                    continue
            else:
                end = min(len(photo.data), offset + self.policy.chunk_bytes)
                record, response = await self.call("tus.patch", photo.sha256, lambda o=offset, e=end: self.request(
                    "PATCH", location, content=photo.data[o:e],
                    headers={**TUS, "Upload-Offset": str(o), "Content-Type": "application/offset+octet-stream"}))
                if response is not None and response.status_code == 204:
                    offset = int(response.headers["upload-offset"])
                    if offset == len(photo.data):
                        return {"sha256": response.headers.get("fieldsync-media-sha256"), "via": "tus"}
                    attempt = 0
                    continue
                if response is not None and response.status_code in (404, 410):
                    location = None
                    continue
                if response is None or response.status_code in (409, 503, 507) or response.status_code >= 500:
                    resumed = await self.tus_offset(location, photo)
                    if resumed is None:
                        location = None
                    elif resumed == len(photo.data):
                        return {"sha256": photo.sha256, "via": "tus-head"}
                    else:
                        offset = resumed
            if response is not None and not self.retryable(record) and response.status_code not in (404, 409, 410):
                self.history.failures.append(f"{self.device.name} tus {photo.sha256}: {record.status} {record.answer}")
                return None
            attempt += 1
            await self.backoff(attempt, response)

    async def tus_offset(self, location: str, photo: Photo) -> int | None:
        """The server's offset for the upload (HEAD, resent until answered); None if it is gone."""
        attempt = 0
        while True:
            _, response = await self.call("tus.head", photo.sha256, lambda: self.request(
                "HEAD", location, headers=TUS))
            if response is not None and response.status_code == 200:
                return int(response.headers["upload-offset"])
            if response is not None and response.status_code in (404, 410):
                return None
            attempt += 1
            await self.backoff(attempt, response)


@dataclasses.dataclass
class Fleet:
    devices: list[Device]
    base_url: str
    policy: Policy = dataclasses.field(default_factory=Policy)
    keepalive: bool = True
    history: History = dataclasses.field(default_factory=History)

    async def run(self, *, concurrency: int | None = None) -> History:
        """Every device sends its queue at once (``concurrency`` caps how many run together).

        Each device has a client (one connection) of its own, as a phone does; one client with
        a pool of hundreds of connections costs httpx time in proportion to the pool per request.
        """
        gate = asyncio.Semaphore(concurrency or len(self.devices))
        limits = httpx.Limits(max_connections=2, max_keepalive_connections=1 if self.keepalive else 0)
        tls = ssl.create_default_context()  # loading the CA bundle once, not 30 ms per client

        async def one(device: Device) -> None:
            async with gate, httpx.AsyncClient(base_url=self.base_url, limits=limits, verify=tls) as client:
                await device.run(client, self.history, self.policy)

        results = await asyncio.gather(*(one(d) for d in self.devices), return_exceptions=True)
        for device, result in zip(self.devices, results, strict=True):
            if isinstance(result, BaseException):
                self.history.failures.append(f"{device.name}: {result!r}")
        return self.history


def plan_devices(
    enrolled: list[tuple[str, str, str]],
    *,
    reports: int,
    photos_per_report: int,
    seed: int = 16,
    jurisdiction: str = "140431",
    report_modes: tuple[str, ...] = ("put", "push"),
    photo_modes: tuple[str, ...] = ("put", "tus"),
    photos_per_device: int | None = None,
) -> list[Device]:
    """Devices with queues: ``reports`` each, ``photos_per_report`` photos per report (or, with
    ``photos_per_device``, one photo on each of that many reports); the send modes rotate over
    the devices (and so does whether photos or reports go first)."""
    rng = random.Random(seed)
    devices: list[Device] = []
    for index, (name, user, token) in enumerate(enrolled):
        queue = []
        for number in range(reports):
            count = photos_per_report if photos_per_device is None else int(number < photos_per_device)
            photos = [make_photo(rng) for _ in range(count)]
            queue.append(make_report(rng, jurisdiction=jurisdiction, photos=photos, device=name))
        devices.append(Device(
            name, token, user=user, reports=queue, report_mode=report_modes[index % len(report_modes)],
            photo_mode=photo_modes[(index // len(report_modes)) % len(photo_modes)],
            photos_first=index % 3 != 2, seed=rng.getrandbits(32),
        ))
    return devices
