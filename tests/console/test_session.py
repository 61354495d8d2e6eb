"""Signing in and out of the console: the API's login and throttle, the cookie's attributes, CSRF
on the login form, and the redirect of every page without a session."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.console.conftest import PASSWORD, Browser, form_csrf
from tests.support import Actor

pytestmark = pytest.mark.timeout(60)


async def _login_form(client: httpx.AsyncClient) -> tuple[str, str]:
    page = await client.get("/console/login", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 200
    return form_csrf(page.text), page.cookies["fieldsync_login_csrf"]


async def _sign_in(client: httpx.AsyncClient, username: str, password: str, *, token: str | None, cookie: str) -> httpx.Response:
    form = {"username": username, "password": password, "next": "/console/map"}
    if token is not None:
        form["csrf_token"] = token
    return await client.post("/console/login", data=form, headers={"Cookie": f"fieldsync_login_csrf={cookie}"})


async def test_signing_in_sets_an_httponly_samesite_session_cookie_and_redirects(client, people):
    token, cookie = await _login_form(client)
    response = await _sign_in(client, "city.sup", PASSWORD, token=token, cookie=cookie)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/map"
    set_cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith("fieldsync_session="))
    assert "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie and "Path=/console" in set_cookie
    assert "Secure" not in set_cookie  # plain http: a Secure cookie would never come back
    session = re.match(r"fieldsync_session=([^;]+)", set_cookie).group(1)
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {session}"})
    assert me.json()["username"] == "city.sup"  # the API's own session token


async def test_the_session_cookie_is_secure_under_https(app, people):
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50001))
    from tests.conftest import running

    async with running(app), httpx.AsyncClient(transport=transport, base_url="https://console.example") as client:
        token, cookie = await _login_form(client)
        response = await _sign_in(client, "city.sup", PASSWORD, token=token, cookie=cookie)
    set_cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith("fieldsync_session="))
    assert "Secure" in set_cookie


@pytest.mark.parametrize("token", [None, "", "forged-token"])
async def test_login_without_a_valid_csrf_token_is_refused_403(client, people, token):
    _, cookie = await _login_form(client)
    response = await _sign_in(client, "city.sup", PASSWORD, token=token, cookie=cookie)
    assert response.status_code == 403
    assert "fieldsync_session" not in response.headers.get("set-cookie", "")


async def test_a_wrong_password_answers_401_with_the_form_again(client, people):
    token, cookie = await _login_form(client)
    response = await _sign_in(client, "city.sup", "wrong", token=token, cookie=cookie)
    assert response.status_code == 401
    assert "用户名或密码错误" in response.text and 'name="password"' in response.text


async def test_failed_logins_through_the_api_throttle_the_console_too(client, people, settings):
    for _ in range(settings.throttle_max_failures):
        response = await client.post("/v1/auth/login", json={"username": "city.sup", "password": "wrong"})
        assert response.status_code == 401
    token, cookie = await _login_form(client)
    response = await _sign_in(client, "city.sup", PASSWORD, token=token, cookie=cookie)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


async def test_an_open_redirect_after_login_goes_to_the_queue_instead(client, people):
    token, cookie = await _login_form(client)
    form = {"username": "city.sup", "password": PASSWORD, "csrf_token": token, "next": "//evil.example/x"}
    response = await client.post("/console/login", data=form, headers={"Cookie": f"fieldsync_login_csrf={cookie}"})
    assert response.headers["location"] == "/console/reports"


async def test_logout_revokes_the_session(client, browsers, people):
    city = browsers["city"]
    refused = await city.post("/console/logout", csrf=False)
    assert refused.status_code == 403
    response = await city.post("/console/logout")
    assert response.status_code == 303 and response.headers["location"].startswith("/console/login")
    assert 'fieldsync_session=""' in response.headers["set-cookie"] or "Max-Age=0" in response.headers["set-cookie"]
    assert (await city.get("/console/reports")).status_code == 303
    me = await client.get("/v1/me", headers=people["city"].headers)
    assert me.status_code == 401 and me.json()["code"] == "auth.revoked"


GET_PAGES = ["/console/reports", "/console/map", "/console/stats", "/console/devices",
             "/console/reports/6f1c1d8e-0c55-4d43-9b7e-2f0f6f7f0a11",
             "/console/incidents/6f1c1d8e-0c55-4d43-9b7e-2f0f6f7f0a11", "/console/export?format=csv",
             "/console/media/" + "a" * 64 + "/thumbnail"]


@pytest.mark.parametrize("path", GET_PAGES)
async def test_every_page_without_a_session_redirects_to_login(client, path):
    response = await client.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login?next=")


async def test_a_device_token_does_not_open_the_console(client, people, conn, clock):
    from tests.support import make_device, principal_of

    device = await make_device(conn, people["inspector"], principal_of(people["city"], "/140000/140400/"), now=clock.now())
    response = await Browser(client, Actor(device.user_id, "x", "inspector", "140431", device.token)).get("/console/reports")
    assert response.status_code == 303


async def test_responses_carry_a_content_security_policy_of_self(client, browsers, hazard):
    for response in (
        await client.get("/console/login"),
        await browsers["city"].get("/console/reports"),
        await browsers["other_county"].get(f"/console/reports/{hazard}"),  # an error page too
    ):
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_every_console_post_without_its_csrf_token_is_403_and_changes_nothing(
    app, client, browsers, people, hazard, conn, clock
):
    """Each handler checks its token: this sweep takes the POST routes from the app itself, so a
    new form that forgets the check fails here."""
    from tests.support import make_device, principal_of

    device = await make_device(conn, people["inspector"], principal_of(people["county"], "/140000/140400/140431/"),
                               now=clock.now())
    ids = {"report_id": hazard, "device_id": str(device.device_id)}
    paths = sorted({route.path for route in app.routes if route.path.startswith("/console") and "POST" in route.methods})
    assert len(paths) >= 7, paths
    form = {"username": people["inspector"].username, "password": PASSWORD, "body": "无令牌", "action": "verify",
            "version": "1", "label": "x"}
    answers = {}
    for path in paths:
        url = re.sub(r"\{(\w+):\w+\}", lambda m: ids[m.group(1)], path)
        answers[path] = (await browsers["county"].post(url, form, csrf=False)).status_code

    assert answers == dict.fromkeys(paths, 403)
    detail = (await client.get(f"/v1/reports/{hazard}", headers=people["county"].headers)).json()
    assert detail["status"] == "submitted" and detail["version"] == 1
    comments = await conn.fetchval("SELECT count(*) FROM comments WHERE report_id = $1::uuid", hazard)
    assert comments == 0
    devices = (await client.get("/v1/devices", headers=people["county"].headers)).json()["items"]
    assert [(d["id"], d["revoked_at"]) for d in devices] == [(str(device.device_id), None)]
    assert await conn.fetchval("SELECT count(*) FROM enrollments") == 1  # the one make_device used
    assert (await browsers["county"].get("/console/reports")).status_code == 200  # still signed in
