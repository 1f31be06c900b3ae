"""The status page in a real browser: Debian's chromium driven by Playwright for Python.

The page is served by a real threaded server on loopback (``live_server``).
Without ``/usr/bin/chromium`` or Playwright these tests skip, unless
``FLASK_STATUS_REQUIRE_BROWSER=1`` (CI), which turns the skip into a failure.
The screenshots land in ``docs/status-desktop.png`` and ``docs/status-mobile.png``
when ``FLASK_STATUS_SAVE_SCREENSHOTS=1``, else in the test's temporary folder.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from flask_server_status import get_state, queries, service
from flask_server_status.config import HISTOGRAM_SIZE

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DOCS = Path(__file__).resolve().parent.parent / "docs"


def _browser_problem() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    problem = _browser_problem()
    if problem is not None:
        if os.environ.get("FLASK_STATUS_REQUIRE_BROWSER") == "1":
            pytest.fail(problem + "; FLASK_STATUS_REQUIRE_BROWSER=1 forbids skipping")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


class Console:
    """Console errors and uncaught exceptions of a page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))


def hits(url: str, n: int) -> None:
    for _ in range(n):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
        except urllib.error.HTTPError as error:  # a 5xx on purpose is an answer too
            error.close()


def test_rows_squares_tooltips_and_live_refresh(browser, make_app, sqlite_url, live_server):
    app, status = make_app(sqlite_url, config={"FLASK_STATUS_REFRESH_SECONDS": 1})
    server = live_server(app)
    hits(server.url + "/", 3)
    status.flush(app)
    index_id = get_state(app).route_ids()["/"]

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    console = Console(page)
    page.goto(server.url + "/status")
    assert page.title() == "Service status"
    assert page.locator("article.row").count() == 4
    row = page.locator(f'article.row[data-id="{index_id}"]')
    assert row.locator(".name").text_content() == "Index"
    assert row.locator(".strip.days .sq").count() == 90
    assert row.locator(".strip.minutes .sq").count() == 60
    assert row.locator(".pill-text").text_content() == "Operational"
    assert page.locator("#banner-text").text_content() == "All Systems Operational"

    # Hover: the styled tooltip shows the numbers behind the square.
    today = row.locator(".strip.days .sq").last
    today.hover()
    tip = page.locator("#tip")
    tip.wait_for(state="visible")
    assert "Requests: 3" in tip.text_content()
    assert "Uptime: 100.00%" in tip.text_content()
    assert "UTC" in tip.text_content()

    # Keyboard: Tab reaches the first strip (one tab stop), arrows move inside it.
    page.mouse.move(0, 0)
    page.locator("h1").click()
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.closest('.strip') !== null")
    assert focused
    tip.wait_for(state="visible")
    first_tip = tip.text_content()
    assert first_tip.startswith(datetime.now(timezone.utc).strftime("%Y-%m-%d"))
    page.keyboard.press("ArrowLeft")
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%d")
    page.wait_for_function(
        "d => document.getElementById('tip').textContent.startsWith(d)", arg=yesterday
    )
    page.keyboard.press("Escape")

    # New data appears without a reload: mark the window, add traffic, flush.
    page.evaluate("window.__noReload = true")
    hits(server.url + "/", 4)
    hits(server.url + "/code/503", 2)
    status.flush(app)
    page.wait_for_function(
        """id => {
            const row = document.querySelector(`article.row[data-id="${id}"]`);
            const sq = row.querySelector('.strip.days .sq:last-child');
            return (sq.dataset.tip || sq.title).includes('Requests: 7');
        }""",
        arg=str(index_id),
        timeout=10_000,
    )
    assert page.evaluate("window.__noReload") is True
    # The numbers behind the figures follow too.
    assert row.locator(".pill").get_attribute("title") == (
        "current status, last 5 minutes: 7 successful / (7 successful + 0 failed)"
    )
    assert row.locator('dd[data-window="7d"]').get_attribute("title") == (
        "7 successful / (7 successful + 0 failed)"
    )
    page.wait_for_function(
        "() => document.getElementById('banner-text').textContent === 'Major System Outage'",
        timeout=10_000,
    )
    code_row = page.locator("article.row", has=page.locator("code", has_text="/code/"))
    assert code_row.locator(".pill-text").text_content() == "Major outage"
    assert page.evaluate("window.__noReload") is True
    assert console.errors == []
    page.close()


def _fill_history(app: Any) -> None:
    """90 days of plausible traffic with a few bad days, for the screenshots."""
    state = get_state(app)
    ids = state.route_ids()
    now = datetime.now(timezone.utc)
    this_minute = int(now.timestamp()) // 60
    noon = int(now.replace(hour=12, minute=0, second=0, microsecond=0).timestamp()) // 60

    def slot(count: int, bucket: int = 2) -> list[float]:
        hist = [0] * HISTOGRAM_SIZE
        hist[bucket] = count
        return [count, 20.0 * count, 40.0, *hist]

    counts: dict[tuple[str, int, int], list[float]] = {}
    for n, rule in enumerate(["/", "/code/<int:code>", "/items/<int:item_id>"]):
        for day in range(1, 90):
            minute = noon - 1440 * day
            counts[(rule, minute, 200)] = slot(1000 + 37 * day)
            if (day + 7 * n) % 23 == 0:
                counts[(rule, minute, 503)] = slot(300)
            elif (day + n) % 11 == 0:
                counts[(rule, minute, 500)] = slot(30)
        for minute in range(60):
            counts[(rule, this_minute - minute, 200)] = slot(40 + minute % 7)
        if rule == "/code/<int:code>":
            for minute in range(3, 8):
                counts[(rule, this_minute - minute, 503)] = slot(25)
            counts[(rule, this_minute, 500)] = slot(2)
    state.store.write(counts, ids)


def test_screenshots_desktop_and_mobile(browser, make_app, sqlite_url, live_server, tmp_path):
    app, _ = make_app(sqlite_url, config={"FLASK_STATUS_PAGE_TITLE": "Acme API status"})
    _fill_history(app)
    state = get_state(app)
    with app.app_context():
        service.update_route(
            state.db.session, "/items/<int:item_id>", {"name": "Items", "doc": "One item by id."}
        )
        service.update_route(
            state.db.session, "/code/<int:code>", {"name": "Payments", "doc": "Card payments."}
        )
        state.db.session.remove()
    server = live_server(app)
    # docs/ is rewritten only on request, so a test run leaves the tree clean.
    out = DOCS if os.environ.get("FLASK_STATUS_SAVE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(exist_ok=True)
    for name, width in (("desktop", 1280), ("mobile", 360)):
        page = browser.new_page(viewport={"width": width, "height": 800})
        console = Console(page)
        page.goto(server.url + "/status")
        # Nothing wider than the viewport: the layout works at this width.
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width, (name, overflow)
        page.locator("article.row").first.locator(".strip.days .sq").last.hover()
        page.locator("#tip").wait_for(state="visible")
        page.screenshot(path=str(out / f"status-{name}.png"), full_page=True)
        assert console.errors == []
        page.close()
    # Dark mode follows the browser.
    dark = browser.new_page(viewport={"width": 800, "height": 600}, color_scheme="dark")
    dark.goto(server.url + "/status")
    background = dark.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 18, 22)", background
    dark.close()
    assert queries.overall_status(r.status for r in queries.route_statuses(state)) in {
        "partial_outage",
        "major_outage",
    }
