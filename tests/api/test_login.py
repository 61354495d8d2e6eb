"""POST /v1/auth/login: sessions, expiry, throttling, and what is (not) stored in the database."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
from typing import Any

import asyncpg
import httpx
import pytest

from fieldsync.settings import Settings
from tests.support import Actor, MutableClock, make_user, problem

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def alice(conn: asyncpg.Connection, clock: MutableClock) -> Actor:
    return await make_user(
        conn, role="supervisor", jurisdiction="140431", username="alice", password=PASSWORD, now=clock.now()
    )


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/v1/auth/login", json={"username": username, "password": password})


async def test_login_returns_a_session_token_that_authenticates(client: httpx.AsyncClient, alice: Actor, clock: MutableClock, settings: Settings) -> None:
    response = await _login(client, "alice", PASSWORD)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"].startswith("fsu_")
    assert dt.datetime.fromisoformat(body["expires_at"]) == clock.now() + dt.timedelta(seconds=settings.session_ttl_s)
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.json()["kind"] == "user"
    assert me.json()["username"] == "alice"


async def test_login_username_is_case_insensitive(client: httpx.AsyncClient, alice: Actor) -> None:
    response = await _login(client, "ALICE", PASSWORD)
    assert response.status_code == 200, response.text


async def test_wrong_password_and_unknown_user_answer_the_same(client: httpx.AsyncClient, alice: Actor) -> None:
    wrong = await _login(client, "alice", "not the password")
    unknown = await _login(client, "nobody", PASSWORD)

    for response in (wrong, unknown):
        assert response.status_code == 401
        assert problem(response)["code"] == "auth.bad_credentials"
        assert "token" not in response.json()
    assert problem(wrong)["detail"] == problem(unknown)["detail"]


async def test_user_without_password_cannot_log_in(client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock) -> None:
    await make_user(conn, role="inspector", jurisdiction="140431", username="nopass", now=clock.now())
    response = await _login(client, "nopass", "")
    assert response.status_code == 400
    response = await _login(client, "nopass", "anything-at-all")
    assert response.status_code == 401
    assert problem(response)["code"] == "auth.bad_credentials"


async def test_disabled_user_cannot_log_in_and_loses_its_sessions(client: httpx.AsyncClient, conn: asyncpg.Connection, alice: Actor, clock: MutableClock) -> None:
    token = (await _login(client, "alice", PASSWORD)).json()["token"]
    await conn.execute("UPDATE users SET disabled_at = $1 WHERE username = 'alice'", clock.now())

    refused = await _login(client, "alice", PASSWORD)
    assert refused.status_code == 401
    assert problem(refused)["code"] == "auth.bad_credentials"
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401
    assert problem(me)["code"] == "auth.revoked"


async def test_expired_session_token_is_refused_as_expired(client: httpx.AsyncClient, alice: Actor, clock: MutableClock, settings: Settings) -> None:
    token = (await _login(client, "alice", PASSWORD)).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}

    clock.advance(seconds=settings.session_ttl_s - 1)
    assert (await client.get("/v1/me", headers=headers)).status_code == 200

    clock.advance(seconds=1)
    expired = await client.get("/v1/me", headers=headers)
    assert expired.status_code == 401
    assert problem(expired)["code"] == "auth.expired"
    assert expired.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer fsu_not-a-real-token", "Bearer fsd_not-a-real-token", "Bearer something", "Basic YWxpY2U6cHc=", "Bearer"],
)
async def test_unknown_or_malformed_tokens_are_invalid(client: httpx.AsyncClient, authorization: str) -> None:
    response = await client.get("/v1/me", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert problem(response)["code"] == "auth.invalid_token"


async def test_token_in_the_url_is_never_accepted(client: httpx.AsyncClient, alice: Actor) -> None:
    token = (await _login(client, "alice", PASSWORD)).json()["token"]
    for query in (f"token={token}", f"access_token={token}"):
        response = await client.get(f"/v1/me?{query}")
        assert response.status_code == 401
        assert problem(response)["code"] == "auth.required"


async def test_repeated_bad_passwords_are_throttled_with_retry_after(client: httpx.AsyncClient, alice: Actor, settings: Settings) -> None:
    for _ in range(settings.throttle_max_failures):
        assert (await _login(client, "alice", "wrong password")).status_code == 401

    throttled = await _login(client, "alice", PASSWORD)

    assert throttled.status_code == 429
    assert problem(throttled)["code"] == "auth.throttled"
    retry_after = int(throttled.headers["retry-after"])
    assert 0 < retry_after <= settings.throttle_window_s + 1


async def test_throttle_lifts_after_the_window(client: httpx.AsyncClient, alice: Actor, clock: MutableClock, settings: Settings) -> None:
    for _ in range(settings.throttle_max_failures):
        await _login(client, "alice", "wrong password")
    throttled = await _login(client, "alice", PASSWORD)
    assert throttled.status_code == 429

    clock.advance(seconds=int(throttled.headers["retry-after"]))

    assert (await _login(client, "alice", PASSWORD)).status_code == 200


async def test_throttle_is_per_username(client: httpx.AsyncClient, conn: asyncpg.Connection, alice: Actor, clock: MutableClock, settings: Settings) -> None:
    await make_user(conn, role="inspector", jurisdiction="140431", username="bob", password=PASSWORD, now=clock.now())
    for _ in range(settings.throttle_max_failures):
        await _login(client, "alice", "wrong password")
    assert (await _login(client, "alice", PASSWORD)).status_code == 429
    assert (await _login(client, "bob", PASSWORD)).status_code == 200


async def test_successful_login_resets_the_failure_count(client: httpx.AsyncClient, alice: Actor, settings: Settings) -> None:
    for _ in range(settings.throttle_max_failures - 1):
        await _login(client, "alice", "wrong password")
    assert (await _login(client, "alice", PASSWORD)).status_code == 200
    for _ in range(settings.throttle_max_failures - 1):
        assert (await _login(client, "alice", "wrong password")).status_code == 401
    assert (await _login(client, "alice", PASSWORD)).status_code == 200


async def test_concurrent_bad_passwords_cannot_outrun_the_throttle(client: httpx.AsyncClient, alice: Actor, settings: Settings) -> None:
    """Guesses sent in parallel are counted before they are checked, not after."""
    attempts = settings.throttle_max_failures * 4
    responses = await asyncio.gather(*(_login(client, "alice", f"guess {i}") for i in range(attempts)))

    statuses = [r.status_code for r in responses]
    assert statuses.count(401) <= settings.throttle_max_failures, statuses
    assert statuses.count(429) == attempts - statuses.count(401)


async def test_password_is_stored_as_argon2_hash_only(client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock) -> None:
    admin = await make_user(conn, role="admin", jurisdiction="140000", now=clock.now())
    secret = "a-very-memorable-password-42"
    created = await client.post(
        "/v1/users",
        json={"username": "carol", "role": "inspector", "jurisdiction": "140431", "password": secret},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text

    stored = await conn.fetchval("SELECT password_hash FROM users WHERE username = 'carol'")
    assert stored.startswith("$argon2id$")
    assert secret not in stored
    row = await conn.fetchrow("SELECT * FROM users WHERE username = 'carol'")
    assert all(secret not in str(value) for value in row.values())
    assert (await _login(client, "carol", secret)).status_code == 200


async def test_session_and_device_tokens_are_stored_only_as_hashes(client: httpx.AsyncClient, conn: asyncpg.Connection, alice: Actor, clock: MutableClock) -> None:
    token = (await _login(client, "alice", PASSWORD)).json()["token"]
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    alice_headers = {"Authorization": f"Bearer {(await _login(client, 'alice', PASSWORD)).json()['token']}"}
    code = (await client.post("/v1/enrollments", json={"username": inspector.username}, headers=alice_headers)).json()[
        "code"
    ]
    device_token = (await client.post("/v1/devices/enroll", json={"code": code, "label": "phone"})).json()["token"]

    assert await conn.fetchval(
        "SELECT count(*) FROM sessions WHERE token_hash = $1", hashlib.sha256(token.encode()).digest()
    ) == 1
    assert await conn.fetchval(
        "SELECT count(*) FROM devices WHERE token_hash = $1", hashlib.sha256(device_token.encode()).digest()
    ) == 1
    assert await conn.fetchval(
        "SELECT count(*) FROM enrollments WHERE code_hash = $1", hashlib.sha256(code.encode()).digest()
    ) == 1
    for table in ("sessions", "devices", "enrollments", "users", "auth_failures"):
        dump = await conn.fetchval(f"SELECT coalesce(string_agg(t::text, '\n'), '') FROM {table} t")
        for secret in (token, device_token, code, token.removeprefix("fsu_"), device_token.removeprefix("fsd_")):
            assert secret not in dump, f"a secret is stored in clear in {table}"


@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice"},
        {"password": PASSWORD},
        {"username": "alice", "password": 12345678},
        {"username": "", "password": PASSWORD},
        {"username": "alice\u0000", "password": PASSWORD},
        {"username": "a" * 65, "password": PASSWORD},
        [],
    ],
)
async def test_invalid_login_bodies_answer_400(client: httpx.AsyncClient, alice: Actor, body: Any) -> None:
    response = await client.post("/v1/auth/login", json=body)
    assert response.status_code == 400, response.text
    assert problem(response)["code"] == "request.invalid"


async def test_rotating_usernames_from_one_client_meets_a_budget_of_its_own(
    client: httpx.AsyncClient, alice: Actor, settings: Settings
) -> None:
    """Five guesses per username would let a client try every username five times; the client's
    own budget (20 by default) stops it whatever names it rotates through."""
    budget = settings.throttle_client_max_failures
    statuses = [(await _login(client, f"guess-{n}", "hunter22")).status_code for n in range(budget + 3)]
    assert statuses[:budget] == [401] * budget
    assert statuses[budget:] == [429] * 3
    refused = await _login(client, "alice", PASSWORD)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0


async def test_a_good_password_does_not_buy_more_guesses(
    client: httpx.AsyncClient, alice: Actor, settings: Settings
) -> None:
    budget = settings.throttle_client_max_failures
    for n in range(budget - 1):
        assert (await _login(client, f"guess-{n}", "hunter22")).status_code == 401
    assert (await _login(client, "alice", PASSWORD)).status_code == 200
    assert (await _login(client, "guess-x", "hunter22")).status_code == 401
    assert (await _login(client, "guess-y", "hunter22")).status_code == 429


async def test_login_runs_argon2_on_threads_of_its_own(client: httpx.AsyncClient, alice: Actor) -> None:
    """Every thread of the default pool (where ingest decodes photos) is busy: a login still
    completes, because argon2 has its own small pool."""
    import threading

    loop = asyncio.get_running_loop()
    release = threading.Event()
    default_threads = min(32, (os.cpu_count() or 1) + 4)
    busy = [loop.run_in_executor(None, release.wait) for _ in range(default_threads)]
    try:
        response = await asyncio.wait_for(_login(client, "alice", PASSWORD), timeout=10)
    finally:
        release.set()
        await asyncio.gather(*busy)
    assert response.status_code == 200, response.text


async def test_sign_ins_beyond_the_argon2_queue_are_busy_and_count_as_no_failure(
    client: httpx.AsyncClient, alice: Actor, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    """argon2's own pool has a bounded queue: a sign-in beyond it answers 503 ``server.busy`` with
    Retry-After at once, instead of waiting behind a flood of guesses; more of them than the
    throttle allows failures still leave the account open."""
    import threading

    from fieldsync.services import identity

    monkeypatch.setattr(identity, "ARGON2_QUEUE", 1)
    release = threading.Event()
    holder = asyncio.create_task(identity._argon2(release.wait))
    await asyncio.sleep(0.05)
    try:
        busy = [await _login(client, "alice", PASSWORD) for _ in range(settings.throttle_max_failures + 1)]
    finally:
        release.set()
        await holder
    after = await _login(client, "alice", PASSWORD)

    assert {r.status_code for r in busy} == {503}, [r.text for r in busy]
    assert {problem(r)["code"] for r in busy} == {"server.busy"}
    assert all(int(r.headers["Retry-After"]) > 0 for r in busy)
    assert after.status_code == 200, after.text


async def test_unknown_methods_share_one_metrics_label(client: httpx.AsyncClient) -> None:
    for method in ("PROPFIND", "X-ANYTHING-1", "X-ANYTHING-2"):
        await client.request(method, "/healthz")
    metrics = (await client.get("/metrics")).text
    assert 'method="OTHER"' in metrics
    assert "PROPFIND" not in metrics and "X-ANYTHING" not in metrics
