"""The status page in a real browser: Debian's chromium driven by Playwright for Python.

The page is served by a real threaded server on loopback (``live_server``).
Without ``/usr/bin/chromium`` or Playwright these tests skip, unless
``FLASK_STATUS_REQUIRE_BROWSER=1`` (CI), which turns the skip into a failure.
The screenshots land in ``docs/status-mobile.png`` (360 px), ``docs/status-tablet.png``
(768 px) and ``docs/status-desktop.png`` (1280 px) when ``FLASK_STATUS_SAVE_SCREENSHOTS=1``,
else in the test's temporary folder.
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
from helpers import LiveServerFactory, MakeApp, write_counts
from helpers import slot as make_slot

from flask_server_status import get_state, queries, service

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

        def on_console(message: Any) -> None:
            if message.type == "error":
                self.errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))


def hits(url: str, n: int) -> None:
    for _ in range(n):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
        except urllib.error.HTTPError as error:  # a 5xx on purpose is an answer too
            error.close()


def test_rows_squares_tooltips_and_live_refresh(
    browser: Any, make_app: MakeApp, sqlite_url: str, live_server: LiveServerFactory
) -> None:
    app, status = make_app(
        sqlite_url, config={"FLASK_STATUS_REFRESH_SECONDS": 1, "FLASK_STATUS_SLO_TARGET": 99}
    )
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
    # What the verdict rests on: 3 requests, so the window reached back its 60 minutes.
    assert row.locator(".basis").text_content() == "last 60 min, 3 requests"
    assert row.locator(".budget-left").text_content() == "100.0% left"
    assert row.locator(".paging").is_hidden()

    # Hover: the styled tooltip shows the numbers behind the square.
    today = row.locator(".strip.days .sq").last
    today.hover()
    tip = page.locator("#tip")
    tip.wait_for(state="visible")
    assert "Requests: 3" in tip.text_content()
    assert "Uptime: 100.00%" in tip.text_content()
    assert "p95 latency: " in tip.text_content() and "p50 latency: " in tip.text_content()
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
    # Enough failures for a verdict worse than degraded (FLASK_STATUS_MIN_REQUESTS, 10).
    hits(server.url + "/code/503", 12)
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
        "current status, last 60 minutes: 7 successful / (7 successful + 0 failed)"
    )
    assert row.locator(".basis").text_content() == "last 60 min, 7 requests"
    assert row.locator('dd[data-window="7d"]').get_attribute("title") == (
        "7 successful / (7 successful + 0 failed)"
    )
    page.wait_for_function(
        "() => document.getElementById('banner-text').textContent === 'Major System Outage'",
        timeout=10_000,
    )
    code_row = page.locator("article.row", has=page.locator("code", has_text="/code/"))
    assert code_row.locator(".pill-text").text_content() == "Major outage"
    assert code_row.locator(".basis").text_content() == "last 5 min, 12 requests"
    # 12 of 12 failed against a 1 % budget: spent 100 times over, burning at 100.
    assert code_row.locator(".budget-left").text_content() == "-9900.0% left (overspent)"
    assert code_row.locator(".budget-burn").text_content() == "burn rate 1 h 100.00 · 6 h 100.00"
    assert code_row.locator(".bar").get_attribute("class") == "bar out"
    assert code_row.locator(".paging").is_visible()
    assert code_row.locator(".paging-text").text_content() == (
        "Page someone: 1 h burn rate 100.00, above 14.4"
    )
    assert row.locator(".paging").is_hidden()
    assert page.evaluate("window.__noReload") is True
    assert console.errors == []
    page.close()


def _fill_history(app: Any) -> None:
    """90 days of plausible traffic with a few bad days, for the screenshots."""
    now = datetime.now(timezone.utc)
    this_minute = int(now.timestamp()) // 60
    noon = int(now.replace(hour=12, minute=0, second=0, microsecond=0).timestamp()) // 60

    def slot(count: int) -> list[float]:
        return make_slot(count, 20.0, max_ms=40.0, bucket=2)

    counts: dict[tuple[str, datetime | int, int], list[float]] = {}
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
            # An outage a few minutes ago: 500 failures in the hour burn a 1 % budget
            # at about 15, above 14.4, so the row says "Page someone".
            for minute in range(3, 8):
                counts[(rule, this_minute - minute, 503)] = slot(100)
            counts[(rule, this_minute, 500)] = slot(2)
    write_counts(app, counts)


#: Run in the page: every problem of layout at the current width, as text.
LAYOUT_PROBLEMS = """() => {
  const width = document.documentElement.clientWidth;
  const problems = [];
  const shown = el => el.getClientRects().length > 0;
  for (const el of document.querySelectorAll("body *")) {
    if (!shown(el) || el.id === "tip") continue;
    const box = el.getBoundingClientRect();
    if (box.right > width + 0.5 || box.left < -0.5) {
      problems.push(`${el.tagName}.${el.className} sticks out: ${box.left}-${box.right}`);
    }
    const style = getComputedStyle(el);
    if (style.overflowX !== "visible" && el.scrollWidth > el.clientWidth + 1) {
      problems.push(`${el.tagName}.${el.className} cuts: ${el.scrollWidth} > ${el.clientWidth}`);
    }
  }
  // A word whose letters sit on two lines was broken inside.
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || !shown(parent) || parent.closest("script, #tip")) continue;
    for (const match of node.data.matchAll(/\\S+/g)) {
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const tops = new Set([...range.getClientRects()].filter(r => r.width > 0)
                                                      .map(r => Math.round(r.top)));
      if (tops.size > 1) problems.push(`"${match[0]}" is split over ${tops.size} lines`);
    }
  }
  return problems;
}"""


def test_screenshots_at_360_768_and_1280_without_overflow_or_split_words(
    browser: Any, make_app: MakeApp, sqlite_url: str, live_server: LiveServerFactory, tmp_path: Path
) -> None:
    # An objective and a latency threshold: the budget bars, p95 and the paging flag show.
    config = {
        "FLASK_STATUS_PAGE_TITLE": "Acme API status",
        "FLASK_STATUS_SLO_TARGET": 99,
        "FLASK_STATUS_LATENCY_THRESHOLD_MS": 500,
    }
    app, _ = make_app(sqlite_url, config=config)

    def product_details(product_id: int) -> str:
        return str(product_id)

    # A long rule and a long name, the case that broke at 360 px (issue 16).
    app.add_url_rule(
        "/api/products/<int:product_id>/details/prices-and-stock", "product", product_details
    )
    _fill_history(app)
    state = get_state(app)
    with app.app_context():
        service.update_route(
            state.db.session, "/items/<int:item_id>", {"name": "Items", "doc": "One item by id."}
        )
        # Its own failure codes, a long list: the row says so, and it must wrap at 360 px.
        service.update_route(
            state.db.session,
            "/code/<int:code>",
            {
                "name": "Payments",
                "doc": "Card payments.",
                "failure_codes": [404, 409, 410, 422, 429, 451, 498, 499],
            },
        )
        service.update_route(
            state.db.session,
            "/api/products/<int:product_id>/details/prices-and-stock",
            {
                "name": "Product details, prices and stock levels",
                "doc": "Everything the shop shows about one product, by its id.",
            },
        )
        state.db.session.remove()
    server = live_server(app)
    # docs/ is rewritten only on request, so a test run leaves the tree clean.
    out = DOCS if os.environ.get("FLASK_STATUS_SAVE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(exist_ok=True)
    for width, lang in ((360, "en"), (768, "en"), (1280, "en"), (360, "es")):
        page = browser.new_page(
            viewport={"width": width, "height": 800}, extra_http_headers={"Accept-Language": lang}
        )
        console = Console(page)
        page.goto(server.url + "/status")
        assert page.locator(".paging:visible").count() == 1  # Payments, and only it
        codes = page.locator(".codes")
        assert codes.count() == 1 and codes.is_visible()
        assert codes.inner_text().endswith(
            "5xx " + ("and" if lang == "en" else "y") + " 404, 409, 410, 422, 429, 451, 498, 499"
        )
        # Nothing wider than the viewport: the layout works at this width.
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width, (width, overflow)
        assert page.evaluate(LAYOUT_PROBLEMS) == [], (width, lang)
        # The same uptime layout on every row: as many lines, the same columns.
        layouts = page.evaluate(
            """() => [...document.querySelectorAll("dl.uptime")].map(dl =>
                 [...dl.children].map(d => {
                   const box = d.getBoundingClientRect();
                   return `${Math.round(box.left)}:${Math.round(box.height)}`;
                 }).join(","))"""
        )
        assert len(set(layouts)) == 1, layouts
        # An older day: its tooltip is built by the script from updates.json.
        page.locator("article.row").nth(1).locator(".strip.days .sq").nth(80).hover()
        page.locator("#tip").wait_for(state="visible")
        page.wait_for_function(
            "() => /Requests|Peticiones/.test(document.getElementById('tip').textContent)"
        )
        if lang == "en":
            name = {360: "mobile", 768: "tablet", 1280: "desktop"}[width]
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
