"""The admin in a real browser (Playwright for Python + Debian's chromium).

An operator passes Basic auth, renames a route through the edit form, hides
another with the bulk action, and the public status data shows the new name
and no longer the hidden route. Screenshots of both lists are taken; with
``FLASK_STATUS_SAVE_SCREENSHOTS=1`` they are copied to ``docs/``.

Skips when chromium or Playwright is missing, unless
``FLASK_STATUS_REQUIRE_BROWSER=1`` (CI), which makes that a failure.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from flask_admin import Admin
from helpers import MakeApp, slot, write_counts
from werkzeug.security import generate_password_hash

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DOCS = Path(__file__).resolve().parent.parent / "docs"
USER, PASSWORD = "operator", "correct horse battery"


def _require_browser() -> Any:
    problem = None
    if not os.path.exists(CHROMIUM):
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = problem or "playwright is not installed (pip install playwright)"
        sync_playwright = None  # type: ignore[assignment]
    if problem:
        if os.environ.get("FLASK_STATUS_REQUIRE_BROWSER") == "1":
            pytest.fail(problem + "; FLASK_STATUS_REQUIRE_BROWSER=1 forbids skipping")
        pytest.skip(problem)
    return sync_playwright


def _history(app: Any, status: Any) -> None:
    """An hour of traffic with a few failures, so the lists have something to show."""
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    counts: dict[tuple[str, datetime | int, int], list[float]] = {}
    for back in range(0, 60, 4):
        minute = int((now - timedelta(minutes=back)).timestamp()) // 60
        for rule, code, count, latency, bucket in (
            ("/", 200, 40, 8.0, 1),
            ("/code/<int:code>", 200, 12, 30.0, 3),
            ("/code/<int:code>", 503 if back % 12 == 0 else 404, 2, 120.0, 5),
            ("/items/<int:item_id>", 200, 9, 15.0, 2),
            ("/boom", 500, 1, 3.0, 0),
        ):
            counts[(rule, minute, code)] = slot(count, latency, bucket=bucket)
    write_counts(app, counts)


def test_operator_renames_and_hides_in_the_browser(
    make_app: Callable[..., Any], sqlite_url: str, live_server: Any, tmp_path: Path
) -> None:
    sync_playwright = _require_browser()
    admin = Admin(name="Demo admin")
    app, status = make_app(
        sqlite_url,
        config={
            "FLASK_STATUS_ADMIN_USERNAME": USER,
            "FLASK_STATUS_ADMIN_PASSWORD_HASH": generate_password_hash(PASSWORD),
        },
        admin=admin,
    )
    admin.init_app(app)
    _history(app, status)
    server = live_server(app)
    new_name = "Front page <script>alert(1)</script>"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # Without credentials: refused with a Basic challenge. (A page
            # navigation would stop at the browser's own login prompt.)
            anonymous = browser.new_context()
            refused = anonymous.request.get(server.url + "/admin/flask-status/routes/")
            assert refused.status == 401
            assert refused.headers["www-authenticate"].startswith("Basic ")
            anonymous.close()

            context = browser.new_context(
                http_credentials={"username": USER, "password": PASSWORD},
                viewport={"width": 1280, "height": 760},
            )
            page = context.new_page()
            page.on("dialog", lambda dialog: dialog.accept())  # the actions' confirm()
            response = page.goto(server.url + "/admin/flask-status/routes/")
            assert response is not None and response.status == 200

            def row(rule: str) -> Any:
                cell = page.locator(
                    "td.col-rule", has_text=re.compile(rf"^\s*{re.escape(rule)}\s*$")
                )
                return page.locator("tr", has=cell)

            # Rename "/" through the edit form.
            row("/").locator('a[title="Edit Record"]').click()
            page.wait_for_url(re.compile(r"/edit/"))
            page.fill("#name", new_name)
            page.fill("#doc", "Where every visit starts.")
            page.click('input[type="submit"][value="Save"]')
            page.wait_for_url(re.compile(r"/admin/flask-status/routes/(\?.*)?$"))
            assert "Record was successfully saved." in page.content()
            assert row("/").locator("td.col-name").inner_text().strip() == new_name

            # Hide "/boom" with the bulk action.
            row("/boom").locator('input[name="rowid"]').check()
            page.click("text=With selected")
            page.click("a.dropdown-item:has-text('Hide')")
            page.wait_for_load_state("load")
            assert "1 route hidden." in page.content()
            assert row("/boom").locator("td.col-hidden").inner_text().strip() == "hidden"

            # The Status menu category is there once authenticated.
            assert page.locator("a.dropdown-toggle", has_text="Status").count() == 1

            page.screenshot(path=str(tmp_path / "admin-routes.png"), full_page=True)
            # The logs, filtered to the failures the way the "Add Filter" menu does.
            page.goto(server.url + "/admin/flask-status/logs/?flt0_outcome_equals=1")
            outcomes = {t.strip() for t in page.locator("td.col-outcome").all_inner_texts()}
            assert outcomes == {"failure"}
            page.screenshot(path=str(tmp_path / "admin-logs.png"), full_page=True)
            first_minute = page.locator("td.col-minute").first.inner_text().strip()
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", first_minute)

            # The public side sees both changes at once.
            summary = page.request.get(server.url + "/status/summary.json")
            assert summary.status == 200
            components = {c["rule"]: c for c in summary.json()["components"]}
            assert components["/"]["name"] == new_name
            assert "/boom" not in components
            assert "/code/<int:code>" in components

            page.goto(server.url + "/status")
            text = page.locator("body").inner_text()
            assert new_name in text  # shown as text: escaped, not run
            assert "Where every visit starts." in text
            html = page.content()
            assert "<script>alert(1)</script>" not in html
            assert "/boom" not in text
            context.close()
        finally:
            browser.close()

    if os.environ.get("FLASK_STATUS_SAVE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        for name in ("admin-routes.png", "admin-logs.png"):
            shutil.copyfile(tmp_path / name, DOCS / name)


def test_delete_confirmation_framing_and_csp_in_the_browser(
    make_app: MakeApp, sqlite_url: str, live_server: Any
) -> None:
    """What the headers and the Delete confirmation do in a real browser.

    * the row's Delete button asks what it does; dismissing changes nothing,
      accepting purges and hides;
    * our admin views refuse to be framed, the host's admin index does not;
    * the status page runs its script and stylesheet under its CSP, with no
      violation reported.
    """
    sync_playwright = _require_browser()
    admin = Admin(name="Demo admin")
    app, status = make_app(sqlite_url, admin=admin)
    admin.init_app(app)

    @app.route("/framer")
    def framer() -> str:
        return (
            '<iframe id="ours" src="/admin/flask-status/routes/"></iframe>'
            '<iframe id="host" src="/admin/"></iframe>'
        )

    _history(app, status)
    server = live_server(app)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            dialogs: list[str] = []
            answer = {"accept": False}

            def on_dialog(dialog: Any) -> None:
                dialogs.append(dialog.message)
                if answer["accept"]:
                    dialog.accept()
                else:
                    dialog.dismiss()

            page.on("dialog", on_dialog)
            page.goto(server.url + "/admin/flask-status/routes/")
            cell = page.locator("td.col-rule", has_text=re.compile(r"^\s*/items/<int:item_id>\s*$"))
            row = page.locator("tr", has=cell)
            row.locator('button[title="Delete history and hide"]').click()
            assert dialogs == [
                "Delete the history of item (/items/<int:item_id>) and hide it from the status"
                " page? Its minute, hour and day counts are purged for good; the route stays"
                " listed here, hidden, and showing it again starts from zero."
            ]
            assert row.locator("td.col-hidden").inner_text().strip() == "shown"  # dismissed
            answer["accept"] = True
            row.locator('button[title="Delete history and hide"]').click()
            page.wait_for_load_state("load")
            assert "history deleted and route hidden" in page.content()
            assert row.locator("td.col-hidden").inner_text().strip() == "hidden"

            # Framing: Chromium shows its error page in place of a refused frame.
            page.goto(server.url + "/framer")
            page.wait_for_load_state("load")
            frames = {
                frame.name or frame.url: frame.url
                for frame in page.frames
                if frame != page.main_frame
            }
            urls = sorted(frames.values())
            assert any(url.startswith("chrome-error://") for url in urls), urls
            assert server.url + "/admin/" in urls, urls

            # The public page under its CSP: script ran, stylesheet applied, no violation.
            console.clear()
            response = page.goto(server.url + "/status")
            assert response is not None
            assert "script-src 'self'" in response.headers["content-security-policy"]
            page.wait_for_load_state("load")
            # The script runs: its styled tooltip appears on hover...
            page.locator(".strip.days .sq").last.hover()
            page.locator("#tip").wait_for(state="visible")
            # ...and may fetch its JSON (connect-src 'self'): an old day's numbers.
            with page.expect_response(re.compile(r"/status/updates\.json")) as fetched:
                page.locator(".strip.days .sq").nth(3).hover()
            assert fetched.value.status == 200
            assert page.evaluate(
                "[...document.styleSheets].some(s => s.href && s.href.includes('status.css')"
                " && s.cssRules.length > 0)"
            )
            assert not [m for m in console if "Content Security Policy" in m], console
        finally:
            browser.close()
