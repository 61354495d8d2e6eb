"""A device model: the tablets of one inspector play their offline queues against the real server.

Hypothesis drives one or two devices of one inspector (with a supervisor of the township they
report in pulling too, and an inspector of another county writing alongside) through what field
tablets do: create a report (queued), revise a report the device holds (``base_version`` = the
version it last saw, moving it to the next township now and then), send the queue with
``POST /v1/sync/push`` or its head with ``PUT /v1/reports/{id}``, lose a response after the
server applied it (the mutations stay queued), send a mutation twice in one batch, reorder the
queue, send it again while the first send is still in flight, and pull a page at a time with
small limits (so a pass spans other steps).

The harness sees every answer, even those the device "lost", and checks:
- every report version the server holds was answered ``applied`` exactly once, to the mutation
  whose content it holds, and every ``applied`` / ``duplicate`` answer names a version with that
  content: nothing acknowledged is lost and no mutation is applied twice (each mutation carries
  a unique title, so a second application would be a second version with the same content);
- a replayed ``mutation_id`` answers exactly its first result;
- at the end of every pull pass, each difference between the puller's view (id → version,
  title, status) and the server's state (the user's reports; the supervisor's township) comes
  from a change that committed after the pass began: nothing committed earlier is skipped.
  Writes during a pass are the steps in between and the server's own background duplicate
  detection, which re-stamps reports; once the server is idle, the teardown's pass must leave
  every view exactly equal to the server's;
- neither the devices nor the supervisor ever receive the other county's reports.

The app runs in-process over httpx's ASGI transport on an event loop of its own (an anyio
blocking portal), since Hypothesis machines are synchronous. It is started once per test on a
database cloned from the template; examples stay independent because each one gets fresh
townships and users, and every check is scoped to them. Concurrent sends make the server's
choices (which send applies first) vary between runs, so a failure found with them may replay
as "flaky" while Hypothesis shrinks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio.from_thread
import asyncpg
import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from fieldsync.app import create_app
from fieldsync.db.pool import connect
from fieldsync.domain.principals import Principal, Role
from fieldsync.services import sync
from fieldsync.settings import Settings
from tests.conftest import running
from tests.support import MutableClock, hazard_report, make_device, make_user

T = TypeVar("T")
COUNTY, COUNTY_PATH = "140431", "/140000/140400/140431/"
FOREIGN_COUNTY = "140403"
LIMITS = st.sampled_from([1, 2, 3, 1000])
CONFLICT_CODES = {"report.conflict", "report.stale_version"}


@dataclasses.dataclass
class Server:
    """What every example shares: the portal's loop, the app's client, a checking connection."""

    portal: anyio.from_thread.BlockingPortal
    client: httpx.AsyncClient
    conn: asyncpg.Connection
    clock: MutableClock
    issuer: Principal
    townships: itertools.count[int] = dataclasses.field(default_factory=lambda: itertools.count(1))

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return self.portal.call(fn, *args)


@contextlib.asynccontextmanager
async def serve(settings_: Settings, clock: MutableClock) -> AsyncIterator[tuple[httpx.AsyncClient, asyncpg.Connection, Principal]]:
    app = create_app(settings_, clock=clock)
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as client:
            conn = await connect(settings_.database_url.value)
            try:
                admin = await make_user(conn, role="admin", jurisdiction="140000", now=clock.now())
                issuer = Principal(admin.user_id, admin.username, Role.ADMIN, "140000", "/140000/")
                yield client, conn, issuer
            finally:
                await conn.close()


def retry_later(response: httpx.Response) -> bool:
    """409 ``request.retry``: the transaction lost a deadlock or a serialization race (with the
    background duplicate detection, say) and was rolled back; nothing changed, send it again."""
    return response.status_code == 409 and response.json().get("code") == "request.retry"


@dataclasses.dataclass
class Mutation:
    """A queued ``upsert_report``; its title is unique, so its content is too."""

    mutation_id: str
    report_id: str
    title: str
    jurisdiction: str
    base_version: int | None

    def report(self) -> dict[str, Any]:
        return {**hazard_report(title=self.title, jurisdiction=self.jurisdiction), "id": self.report_id}

    def wire(self) -> dict[str, Any]:
        mutation = {"mutation_id": self.mutation_id, "op": "upsert_report", "report": self.report()}
        if self.base_version is not None:
            mutation["base_version"] = self.base_version
        return mutation


@dataclasses.dataclass
class Puller:
    """A client pulling the feed: its view and its cursor."""

    name: str
    headers: dict[str, str]
    view: dict[str, tuple[int, str, str]] = dataclasses.field(default_factory=dict)
    cursor: str | None = None
    mid_pass: bool = False


@dataclasses.dataclass
class Device(Puller):
    queue: list[Mutation] = dataclasses.field(default_factory=list)
    known: dict[str, int] = dataclasses.field(default_factory=dict)  # report id → last version seen
    places: dict[str, str] = dataclasses.field(default_factory=dict)  # report id → last jurisdiction

    def saw(self, report_id: str, version: int | None) -> None:
        if version is not None:
            self.known[report_id] = max(self.known.get(report_id, 0), version)


class DeviceModel(RuleBasedStateMachine):
    server: Server  # set by the test on a subclass

    def __init__(self) -> None:
        super().__init__()
        self.devices: list[Device] = []
        self.first_result: dict[str, dict[str, Any]] = {}
        self.applied: dict[tuple[str, int], str] = {}  # (report id, version) → title, as answered
        self.acknowledged: list[tuple[str, int, str]] = []  # applied or duplicate: (id, version, title)
        self.foreign_ids: set[str] = set()
        self.foreign_reports: dict[str, int] = {}

    # --- set-up ---------------------------------------------------------------------------------

    @initialize(devices=st.integers(1, 2))
    def set_up(self, devices: int) -> None:
        self.server.run(self._set_up, devices)

    async def _set_up(self, devices: int) -> None:
        conn, clock = self.server.conn, self.server.clock
        self.townships = []
        for _ in range(2):
            code = f"{COUNTY}{next(self.server.townships):06d}"
            path = f"{COUNTY_PATH}{code}/"
            await conn.execute(
                "INSERT INTO jurisdictions (code, parent_code, name_zh, level, path) VALUES ($1, $2, $3, 'township', $4)",
                code, COUNTY, f"乡镇{code[-6:]}", path,
            )
            self.townships.append((code, path))
        self.inspector = await make_user(conn, role="inspector", jurisdiction=COUNTY, now=clock.now())
        self.supervisor_actor = await make_user(conn, role="supervisor", jurisdiction=self.townships[0][0],
                                                now=clock.now())
        self.foreigner = await make_user(conn, role="inspector", jurisdiction=FOREIGN_COUNTY, now=clock.now())
        for n in range(devices):
            device = await make_device(conn, self.inspector, self.server.issuer, now=clock.now())
            self.devices.append(Device(name=f"device {n + 1}", headers=device.headers))
        self.supervisor = Puller(name="supervisor", headers=self.supervisor_actor.headers)

    def device(self, index: int) -> Device:
        return self.devices[index % len(self.devices)]

    # --- offline edits --------------------------------------------------------------------------

    @rule(which=st.integers(0, 1), township=st.integers(0, 1))
    def create(self, which: int, township: int) -> None:
        device = self.device(which)
        report_id = str(uuid.uuid4())
        device.queue.append(self.mutation(report_id, self.townships[township][0], base_version=None))
        device.places[report_id] = self.townships[township][0]
        device.known.setdefault(report_id, 1)  # the device holds its own draft as version 1

    @precondition(lambda self: any(d.known for d in self.devices))
    @rule(which=st.integers(0, 1), pick=st.integers(0, 10**6), move=st.booleans())
    def revise(self, which: int, pick: int, move: bool) -> None:
        device = next(d for d in (self.device(which), *self.devices) if d.known)
        held = sorted(device.known)
        report_id = held[pick % len(held)]
        township = device.places[report_id]
        if move:
            township = self.townships[1][0] if township == self.townships[0][0] else self.townships[0][0]
        device.places[report_id] = township
        device.queue.append(self.mutation(report_id, township, base_version=device.known[report_id]))

    @precondition(lambda self: any(len(d.queue) > 1 for d in self.devices))
    @rule(which=st.integers(0, 1), seed=st.randoms(use_true_random=False))
    def reorder(self, which: int, seed: random.Random) -> None:
        device = next(d for d in (self.device(which), *self.devices) if len(d.queue) > 1)
        seed.shuffle(device.queue)

    # --- sending --------------------------------------------------------------------------------

    @precondition(lambda self: any(d.queue for d in self.devices))
    @rule(which=st.integers(0, 1), lose_answer=st.booleans(), twice=st.booleans())
    def push(self, which: int, lose_answer: bool, twice: bool) -> None:
        """Send the whole queue; ``twice`` sends its head a second time at the end of the batch."""
        device = next(d for d in (self.device(which), *self.devices) if d.queue)
        sent = list(device.queue) + ([device.queue[0]] if twice else [])
        response = self.server.run(self._post, "/v1/sync/push", {"mutations": [m.wire() for m in sent]},
                                   device.headers)
        if retry_later(response):
            return
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["mutation_id"] for r in results] == [m.mutation_id for m in sent]
        for mutation, result in zip(sent, results, strict=True):
            self.record(mutation, result)
        if not lose_answer:
            for mutation, result in zip(sent, results, strict=True):
                self.settle(device, mutation, result)

    @precondition(lambda self: any(d.queue for d in self.devices))
    @rule(which=st.integers(0, 1), reverse=st.booleans())
    def push_while_in_flight(self, which: int, reverse: bool) -> None:
        """The device times out and sends its queue again (maybe reordered) while the first send is
        still running; with two devices, the other one sends its queue at the same moment too."""
        device = next(d for d in (self.device(which), *self.devices) if d.queue)
        sends = [(device, list(device.queue)), (device, device.queue[::-1] if reverse else list(device.queue))]
        sends += [(other, list(other.queue)) for other in self.devices if other is not device and other.queue]
        responses = self.server.run(self._post_at_once, [
            ("/v1/sync/push", {"mutations": [m.wire() for m in sent]}, sender.headers) for sender, sent in sends
        ])
        answered = [(sender, sent, r) for (sender, sent), r in zip(sends, responses, strict=True) if not retry_later(r)]
        for _, sent, response in answered:
            assert response.status_code == 200, response.text
            for mutation, result in zip(sent, response.json()["results"], strict=True):
                self.record(mutation, result)
        for sender, sent, response in answered:
            for mutation, result in zip(sent, response.json()["results"], strict=True):
                self.settle(sender, mutation, result)

    @precondition(lambda self: any(d.queue for d in self.devices))
    @rule(which=st.integers(0, 1), lose_answer=st.booleans())
    def put_head(self, which: int, lose_answer: bool) -> None:
        """Send the head of the queue on its own, the way a foreground save does: PUT, no mutation id."""
        device = next(d for d in (self.device(which), *self.devices) if d.queue)
        mutation = device.queue[0]
        body = mutation.report() | ({"base_version": mutation.base_version} if mutation.base_version else {})
        response = self.server.run(self._put, f"/v1/reports/{mutation.report_id}", body, device.headers)
        if retry_later(response):
            return
        payload = response.json()
        if response.status_code in (200, 201):
            assert response.status_code == 200 or not payload["duplicate"]
            status = "duplicate" if payload["duplicate"] else "applied"
            result = {"status": status, "report_id": payload["id"], "version": payload["version"]}
        else:
            assert response.status_code == 409 and payload["code"] in CONFLICT_CODES, response.text
            result = {"status": "conflict", "report_id": mutation.report_id, "version": payload.get("version"),
                      "error": {"code": payload["code"]}}
        self.record(mutation, result, replayable=False)
        if not lose_answer:
            self.settle(device, mutation, result)

    @precondition(lambda self: len(self.foreign_ids) + sum(self.foreign_reports.values()) < 6)
    @rule(revise=st.booleans())
    def foreign_write(self, revise: bool) -> None:
        """The other county's inspector writes too (a few times per example); none of it may reach
        this township's pulls."""
        if revise and self.foreign_reports:
            report_id, version = next(iter(self.foreign_reports.items()))
            body = hazard_report(title=f"foreign {uuid.uuid4()}", jurisdiction=FOREIGN_COUNTY, base_version=version)
        else:
            report_id, body = str(uuid.uuid4()), hazard_report(title=f"foreign {uuid.uuid4()}",
                                                               jurisdiction=FOREIGN_COUNTY)
        for _ in range(10):
            response = self.server.run(self._put, f"/v1/reports/{report_id}", body, self.foreigner.headers)
            if not retry_later(response):
                break
        assert response.status_code in (200, 201), response.text
        self.foreign_ids.add(report_id)
        self.foreign_reports[report_id] = response.json()["version"]
        self.applied[(report_id, response.json()["version"])] = body["title"]

    # --- pulling --------------------------------------------------------------------------------

    @rule(which=st.integers(0, 1), limit=LIMITS)
    def pull_page(self, which: int, limit: int) -> None:
        self.pull(self.device(which), limit)

    @rule(limit=LIMITS)
    def supervisor_pull_page(self, limit: int) -> None:
        self.pull(self.supervisor, limit)

    def pull(self, puller: Puller, limit: int) -> bool:
        """One page. At the end of a pass, every difference between the view and the server must
        come from a change that committed after the pass began; returns whether there was none."""
        params: dict[str, Any] = {"limit": limit, **({"cursor": puller.cursor} if puller.cursor else {})}
        response = self.server.run(self._get, "/v1/sync/pull", params, puller.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["changes"]) <= limit
        for change in page["changes"]:
            assert change["id"] not in self.foreign_ids, f"{puller.name} received the other county's report"
            if change.get("deleted"):
                assert puller is self.supervisor, "only a report that leaves a subtree is a tombstone"
                puller.view.pop(change["id"], None)
                continue
            if puller is self.supervisor:
                assert change["jurisdiction"] == self.townships[0][0]
            else:
                assert change["author"]["id"] == str(self.inspector.user_id)
                assert isinstance(puller, Device)
                puller.saw(change["id"], change["version"])
                puller.places[change["id"]] = change["jurisdiction"]
            puller.view[change["id"]] = (change["version"], change["title"], change["status"])
        puller.cursor = page["next_cursor"]
        puller.mid_pass = page["has_more"]
        if page["has_more"]:
            return False
        server = self.server.run(self._server_view, puller)
        differing = sorted(i for i in server.keys() | puller.view.keys() if server.get(i) != puller.view.get(i))
        if differing:
            # The finished pass's cursor holds the snapshot it began with (its ``upto``): a report
            # whose last change was visible in it must be in the view as the server has it.
            began = sync.Cursor.decode(puller.cursor).base
            skipped = self.server.run(self._visible_in, differing, began)
            assert not skipped, f"{puller.name} missed changes committed before its pass began: {skipped}"
        return not differing

    # --- the harness's books --------------------------------------------------------------------

    def mutation(self, report_id: str, jurisdiction: str, *, base_version: int | None) -> Mutation:
        mutation_id = str(uuid.uuid4())
        return Mutation(mutation_id, report_id, f"m {mutation_id}", jurisdiction, base_version)

    def record(self, mutation: Mutation, result: dict[str, Any], *, replayable: bool = True) -> None:
        """Book an answer the server gave, whether or not the device gets to see it."""
        if replayable:
            first = self.first_result.setdefault(mutation.mutation_id, result)
            assert result == first, "a replayed mutation_id must answer its first result"
        status = result["status"]
        assert status in {"applied", "duplicate", "conflict"}, result
        if status == "conflict":
            assert result["error"]["code"] in CONFLICT_CODES, result
            return
        assert result["report_id"] == mutation.report_id
        key = (mutation.report_id, result["version"])
        if status == "applied" and (replayable is False or result is first):
            assert key not in self.applied, f"version {key} was answered 'applied' twice"
            self.applied[key] = mutation.title
        self.acknowledged.append((*key, mutation.title))

    def settle(self, device: Device, mutation: Mutation, result: dict[str, Any]) -> None:
        """The device got an answer: the mutation leaves the queue, the version is remembered."""
        device.queue = [m for m in device.queue if m.mutation_id != mutation.mutation_id]
        device.saw(mutation.report_id, result.get("version"))

    @invariant()
    def versions_are_exactly_the_applied_answers(self) -> None:
        if not hasattr(self, "inspector"):
            return
        rows = self.server.run(self._versions)
        held = {(r["report_id"], r["version"]): r["title"] for r in rows}
        assert held == self.applied, "report_versions differ from the versions answered 'applied'"
        for report_id, version, title in self.acknowledged:
            assert held.get((report_id, version)) == title, f"acknowledged {(report_id, version)} lost"
        current = self.server.run(self._current_versions)
        for report_id, version in current.items():
            assert {v for (i, v) in held if i == report_id} == set(range(1, version + 1)), report_id

    def teardown(self) -> None:
        """Once the server is idle (duplicate detection runs in the background and re-stamps
        reports), one more pass leaves every view exactly equal to the server's."""
        if not hasattr(self, "inspector"):
            return
        self.server.run(self._background_jobs_done)
        for puller in (*self.devices, self.supervisor):
            while puller.mid_pass:
                self.pull(puller, 1000)
            assert self.pull(puller, 1000), f"{puller.name} differs from the server after a pass on an idle server"

    # --- I/O on the portal's loop ---------------------------------------------------------------

    async def _post(self, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
        return await self.server.client.post(path, json=body, headers=headers)

    async def _post_at_once(self, sends: list[tuple[str, Any, dict[str, str]]]) -> list[httpx.Response]:
        return list(await asyncio.gather(*(self._post(*send) for send in sends)))

    async def _put(self, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
        return await self.server.client.put(path, json=body, headers=headers)

    async def _get(self, path: str, params: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        return await self.server.client.get(path, params=params, headers=headers)

    async def _server_view(self, puller: Puller) -> dict[str, tuple[int, str, str]]:
        if puller is self.supervisor:
            rows = await self.server.conn.fetch(
                """
                SELECT r.id::text, r.version, r.title, r.status FROM reports r
                JOIN jurisdictions j ON j.code = r.jurisdiction WHERE j.path LIKE $1 || '%'
                """,
                self.townships[0][1],
            )
        else:
            rows = await self.server.conn.fetch(
                "SELECT id::text, version, title, status FROM reports WHERE author_id = $1", self.inspector.user_id
            )
        return {r["id"]: (r["version"], r["title"], r["status"]) for r in rows}

    async def _visible_in(self, ids: list[str], snapshot: str | None) -> list[str]:
        rows = await self.server.conn.fetch(
            """
            SELECT id::text FROM reports
            WHERE id = ANY($1::uuid[]) AND pg_visible_in_snapshot(change_xid, $2::text::pg_snapshot)
            """,
            [uuid.UUID(i) for i in ids], snapshot,
        )
        return [r["id"] for r in rows]

    async def _background_jobs_done(self) -> None:
        for _ in range(500):
            if not await self.server.conn.fetchval("SELECT count(*) FROM jobs"):
                return
            await asyncio.sleep(0.02)
        raise AssertionError("background jobs never finished")

    async def _versions(self) -> list[asyncpg.Record]:
        return await self.server.conn.fetch(
            """
            SELECT report_id::text, version, body->>'title' AS title FROM report_versions
            WHERE author_id = ANY($1::uuid[])
            """,
            [self.inspector.user_id, self.foreigner.user_id],
        )

    async def _current_versions(self) -> dict[str, int]:
        rows = await self.server.conn.fetch(
            "SELECT id::text, version FROM reports WHERE author_id = ANY($1::uuid[])",
            [self.inspector.user_id, self.foreigner.user_id],
        )
        return {r["id"]: r["version"] for r in rows}


def test_device_queues_converge_with_the_server(database_url: str, tmp_path: Path) -> None:
    app_settings = Settings.from_env(
        {}, data_dir=tmp_path / "data", database_url=database_url, media_url=f"file://{tmp_path / 'media'}",
        log_json=False,
    )
    clock = MutableClock()
    with anyio.from_thread.start_blocking_portal() as portal, \
            portal.wrap_async_context_manager(serve(app_settings, clock)) as (client, conn, issuer):
        server = Server(portal=portal, client=client, conn=conn, clock=clock, issuer=issuer)
        machine = type("DeviceModelHere", (DeviceModel,), {"server": server})
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=30,
                stateful_step_count=40,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
