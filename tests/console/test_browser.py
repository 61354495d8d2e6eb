"""The console in a real browser: Debian's Chromium driven by Playwright against a real
``fieldsync serve`` process holding the 长治市 demo (``fieldsync demo``).

One browser session walks a city supervisor's morning: sign in, filter the queue to one county's
overdue hazards, open one and see its photos load, assign a verified hazard's rectification with
the five implementations, accept a rectified one, look at the map and the statistics, and make an
ODK Collect QR code that scans (read back from the screenshot).
A screenshot of each page (1366×768, the bureau's usual screen) goes to
``test-output/console/`` at the repository root; docs/console.md shows two of them.

Chromium comes from the OS (``apt-get install chromium``; .ci/run installs it): Playwright's own
browser download cannot work here. Without it the test is skipped locally and fails in CI.
Budget: about 40 s (demo load ~10 s, server start ~5 s, the walk ~15 s).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fieldsync.services.demo import DEMO_PASSWORD
from tests.e2e.server import ServerProcess, cli, postgres_pids

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "console"
CITY_USER = "changzhi.city"


@pytest.fixture(scope="module")
def demo_server() -> Iterator[ServerProcess]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run must apt-get install chromium")
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    data_dir = Path(tempfile.mkdtemp(prefix="fieldsync-console-", dir="/tmp"))
    server: ServerProcess | None = None
    try:
        cli(data_dir, "demo")
        server = ServerProcess(data_dir)
        server.wait_ready()
        yield server
    finally:
        if server is not None:
            server.stop()
        for pid in postgres_pids(data_dir):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)


def _county_with_overdue_hazards(server: ServerProcess) -> str:
    """Which county's hazards are overdue today, asked through the API (the demo's history is
    replayed relative to now)."""
    login = httpx.post(f"{server.base_url}/v1/auth/login", json={"username": CITY_USER, "password": DEMO_PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    found = httpx.get(f"{server.base_url}/v1/reports", params={"kind": "hazard", "overdue": "true", "limit": 1},
                      headers=headers).json()["items"]
    assert found, "the demo has no overdue hazard"
    return str(found[0]["jurisdiction"])


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{name}.png"))


def _open_first(page, query: str, action: str) -> None:  # type: ignore[no-untyped-def]
    """Open the first report of a queue query that offers ``action``."""
    page.goto(f"/console/reports?{query}")
    links = page.locator("td.title > a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    for href in links:
        page.goto(href)
        if page.locator(f"form.action-{action}").count():
            return
    pytest.fail(f"no report of {query} offers {action}")


def test_a_city_supervisor_reviews_in_the_browser(demo_server: ServerProcess) -> None:
    from playwright.sync_api import expect, sync_playwright

    county = _county_with_overdue_hazards(demo_server)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=demo_server.base_url, locale="zh-CN", viewport={"width": 1366, "height": 768})
        page = context.new_page()
        try:
            _walk(page, county, expect, demo_server.base_url)
        finally:
            context.close()
            browser.close()


def _walk(page, county: str, expect, base_url: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/console/reports")
    expect(page).to_have_url(re.compile(r"/console/login\?next=%2Fconsole%2Freports$"))
    _shot(page, "login")
    page.fill("input[name=username]", CITY_USER)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("form button[type=submit]")
    expect(page.locator("h1")).to_have_text("审核队列")

    # the queue, filtered through its own form to one county's overdue hazards
    page.check("form.filters input[name=kind][value=hazard]")
    page.select_option("form.filters select[name=jurisdiction]", county)
    page.select_option("form.filters select[name=overdue]", "true")
    page.click("form.filters .filters-head button")
    # the click may return before the new page has loaded; wait for the filtered queue's load event
    page.wait_for_url(lambda url: all(part in url for part in ("overdue=true", f"jurisdiction={county}", "kind=hazard")))
    rows = page.locator("table.queue tbody tr")
    assert rows.count() > 0
    assert page.locator("table.queue tbody tr .marker.overdue").count() == rows.count()
    _shot(page, "queue")

    # one of them, with its photos loaded
    page.locator("td.title > a").first.click()
    expect(page.locator("section.card h2").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    images = page.locator("figure.photo img")
    assert images.count() > 0
    assert page.evaluate("() => [...document.querySelectorAll('figure.photo img')].every(i => i.complete && i.naturalWidth > 0)")
    _shot(page, "report")

    # assign rectification (五落实) on a verified hazard
    _open_first(page, "kind=hazard&status=verified", "assign_rectification")
    form = page.locator("form.action-assign_rectification")
    form.locator("input[name=responsible_person]").fill("王建国")
    form.locator("textarea[name=measures]").fill("停产整顿，更换失效的保护装置并复测")
    form.locator("input[name=funds_cny]").fill("120000")
    deadline = (dt.datetime.now() + dt.timedelta(days=30)).strftime("%Y-%m-%dT18:00")
    form.locator("input[name=deadline]").fill(deadline)
    form.locator("textarea[name=contingency_plan]").fill("作业区域警戒，人员撤离预案")
    form.locator("button[type=submit]").click()
    expect(page.locator("p.flash.ok")).to_contain_text("下达整改")
    expect(page.locator(".report-head .status")).to_have_text("整改中")
    _shot(page, "assigned")

    # accept a rectification (销号)
    _open_first(page, "kind=hazard&status=rectified", "accept_rectification")
    page.locator("form.action-accept_rectification button[type=submit]").click()
    expect(page.locator("p.flash.ok")).to_contain_text("验收销号")
    expect(page.locator(".report-head .status")).to_have_text("已销号")

    # the map and the statistics
    page.goto("/console/map")
    assert page.locator("svg.map circle").count() > 100
    assert page.locator("svg.map .labels text").count() >= 12
    _shot(page, "map")
    page.goto("/console/stats")
    assert page.locator("figure.chart svg rect.cur").count() >= 12
    assert page.locator("figure.chart svg rect.prev").count() >= 12
    _shot(page, "stats")
    _collect_qr(page, base_url)


def _collect_qr(page, base_url: str) -> None:  # type: ignore[no-untyped-def]
    """The devices page's Collect QR code, read back from the screenshot as Collect would scan it."""
    import zxingcpp
    from PIL import Image

    from fieldsync.domain.collect import settings_of_qr_text

    page.goto("/console/devices")
    page.select_option("form[action='/console/devices/collect'] select[name=username]", "qinyuan.insp1")
    page.fill("form[action='/console/devices/collect'] input[name=label]", "沁源巡查手机")
    page.click("form[action='/console/devices/collect'] button[type=submit]")
    page.locator("[data-qr] svg").scroll_into_view_if_needed()
    _shot(page, "devices")
    found = zxingcpp.read_barcodes(Image.open(OUTPUT / "devices.png"))
    assert len(found) == 1, "the QR code on the page does not scan"
    settings = settings_of_qr_text(found[0].text)
    assert settings["general"]["server_url"].startswith(f"{base_url}/openrosa/key/fsd_")
