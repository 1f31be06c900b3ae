"""The Flask-Admin views: Routes (list, search, sort, edit, delete, bulk actions)
and Logs (read-only list and filters), their access rules and CSRF.

Tests that touch data run on SQLite, PostgreSQL and MariaDB (``db_url``).
History is written through the normal write path (``state.store.write``) at
chosen minutes, so the figures the admin shows are known in advance.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from html import unescape as html_unescape
from html.parser import HTMLParser
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_admin import Admin, AdminIndexView
from flask_admin.contrib.sqla import ModelView
from flask_admin.form import SecureForm
from flask_sqlalchemy import SQLAlchemy
from helpers import MakeApp, route_row, slot, write_counts
from sqlalchemy.orm import Mapped, mapped_column
from test_outage import TcpProxy, through
from werkzeug.security import generate_password_hash

from flask_server_status import FlaskStatus, service
from flask_server_status.admin import (
    LOGS_ENDPOINT,
    ROUTES_ENDPOINT,
    LogView,
    RouteView,
    StatusIndexView,
)
from flask_server_status.models import UNMATCHED_RULE, Log, LogDay, LogHour, Route

ROUTES = "/admin/flask-status/routes/"
LOGS = "/admin/flask-status/logs/"


# -- helpers ------------------------------------------------------------------------------


class _Table(HTMLParser):
    """Rows of Flask-Admin's list table as ``{column: text}`` dicts (and row ids)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self._column: str | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if self._in_body and tag == "tr":
            self.rows.append({})
        elif self._in_body and tag == "input" and attributes.get("name") == "rowid":
            self.rows[-1]["_id"] = attributes.get("value") or ""
        elif self._in_body and tag == "td":
            classes = (attributes.get("class") or "").split()
            column = next((c[4:] for c in classes if c.startswith("col-")), None)
            self._column = column
            if column is not None:
                self.rows[-1][column] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._column = None
        elif tag == "thead":
            # Flask-Admin's list has no <tbody>: the rows follow the header.
            self._in_body = True
        elif tag == "table":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        if self._column is not None and self.rows:
            self.rows[-1][self._column] += data


def table(html: str) -> list[dict[str, str]]:
    parser = _Table()
    parser.feed(html)
    rows = [{k: " ".join(v.split()) for k, v in row.items()} for row in parser.rows]
    # Flask-Admin renders one placeholder row when the list is empty.
    return [row for row in rows if len(row) > 1]


def csrf_token(client: FlaskClient, url: str) -> str:
    html = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token"[^>]*value="([^"]+)"', html
    )
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def write(
    app: Flask, status: FlaskStatus, entries: list[tuple[str, datetime, int, int, float]]
) -> None:
    """Write ``(rule, minute, status code, count, latency ms each)`` through the store.

    Every request goes in the 10-25 ms histogram bucket, whatever its latency.
    """
    write_counts(
        app,
        {
            (rule, minute, code): slot(count, latency, bucket=2)
            for rule, minute, code, count, latency in entries
        },
    )


def this_minute() -> datetime:
    return datetime.now(timezone.utc).replace(second=0, microsecond=0)


def route_id(app: Flask, status: FlaskStatus, rule: str) -> int:
    return int(status.state(app).route_ids()[rule])


def count_rows(app: Flask, status: FlaskStatus, model: Any, rid: int) -> int:
    with status.state(app).engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(model).where(model.route_id == rid)
            ).scalar_one()
        )


@pytest.fixture
def admin_app(make_app: MakeApp) -> Callable[..., tuple[Flask, FlaskStatus, Admin]]:
    """``admin_app(url, index_view=None, config=None)`` -> (app, status, admin)."""

    def factory(
        url: str, index_view: AdminIndexView | None = None, config: dict[str, Any] | None = None
    ) -> tuple[Flask, FlaskStatus, Admin]:
        admin = Admin(index_view=index_view)
        app, status = make_app(url, config=config, admin=admin)
        # Bound after FlaskStatus added its views: they are registered here.
        admin.init_app(app)
        return app, status, admin

    return factory


# -- registration --------------------------------------------------------------------------


def _app(tmp_path: Any, name: str) -> Flask:
    app = Flask(name, instance_path=str(tmp_path / "instance"))
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'status.db'}",
        SECRET_KEY="k",
        FLASK_STATUS_FLUSH_INTERVAL=3600,
    )

    @app.route("/")
    def index() -> str:
        """
        # Index
        The landing page.
        """
        return "ok"

    return app


def _bound_before(tmp_path: Any) -> tuple[Flask, FlaskStatus, str]:
    app = _app(tmp_path, "bound_before")
    admin = Admin(app)
    return app, FlaskStatus(app, admin=admin), "/admin"


def _bound_after(tmp_path: Any) -> tuple[Flask, FlaskStatus, str]:
    app = _app(tmp_path, "bound_after")
    admin = Admin()
    status = FlaskStatus(app, admin=admin)
    admin.init_app(app)
    return app, status, "/admin"


def _init_app(tmp_path: Any) -> tuple[Flask, FlaskStatus, str]:
    status = FlaskStatus()
    app = _app(tmp_path, "factory")
    admin = Admin(app, url="/backoffice", endpoint="backoffice")
    status.init_app(app, admin=admin)
    return app, status, "/backoffice"


@pytest.mark.parametrize("build", [_bound_before, _bound_after, _init_app])
def test_views_are_added_however_the_admin_is_set_up(
    tmp_path: Any, build: Callable[[Any], tuple[Flask, FlaskStatus, str]]
) -> None:
    app, status, base = build(tmp_path)
    try:
        client = app.test_client()
        client.get("/")
        status.flush(app)
        routes = client.get(f"{base}/flask-status/routes/")
        logs = client.get(f"{base}/flask-status/logs/")
        assert routes.status_code == 200
        assert logs.status_code == 200
        assert [row["name"] for row in table(routes.get_data(as_text=True))] == ["Index"]
        assert table(logs.get_data(as_text=True))[0]["status"] == "200"
        menu = client.get(f"{base}/").get_data(as_text=True)
        assert re.search(r'class="dropdown-toggle[^"]*"[^>]*>\s*(<!--[^>]*-->\s*)?Status<', menu)
        assert f'href="{base}/flask-status/routes/"' in menu
        assert f'href="{base}/flask-status/logs/"' in menu
        # The default Bootstrap 4 theme renders them.
        assert "bootstrap4" in routes.get_data(as_text=True)
        assert set(app.blueprints) >= {ROUTES_ENDPOINT, LOGS_ENDPOINT}
    finally:
        status.state(app).buffer.stop(flush=False)
        status.state(app).engine.dispose()


def test_forms_carry_csrf_with_a_secret_key(admin_app: Any, sqlite_url: str) -> None:
    app, _status, admin = admin_app(sqlite_url)
    # Flask-Admin keeps its views in a private list and lists them nowhere public.
    # Flask-Admin keeps no public list of its views (only menu items).
    views = {view.endpoint: view for view in admin._views}  # noqa: SLF001
    assert issubclass(views[ROUTES_ENDPOINT].form_base_class, SecureForm)
    assert isinstance(views[ROUTES_ENDPOINT], RouteView)
    assert isinstance(views[LOGS_ENDPOINT], LogView)
    rid = route_id(app, _status, "/")
    html = app.test_client().get(f"{ROUTES}edit/?id={rid}").get_data(as_text=True)
    assert 'name="csrf_token"' in html


# -- Routes: list, search, sort -------------------------------------------------------------


def test_routes_list_shows_today_and_leaves_out_unmatched(admin_app: Any, db_url: str) -> None:
    app, status, _admin = admin_app(db_url)
    now = this_minute()
    yesterday = now - timedelta(days=1)
    write(
        app,
        status,
        [
            ("/", now, 200, 8, 12.0),
            ("/", now, 500, 2, 12.0),
            ("/", now, 429, 3, 12.0),  # neutral: counted, not in uptime
            ("/", yesterday, 200, 50, 12.0),  # another UTC day: not "today"
            ("/code/<int:code>", now, 503, 4, 12.0),
            (UNMATCHED_RULE, now, 404, 9, 1.0),
        ],
    )
    rows = table(app.test_client().get(ROUTES).get_data(as_text=True))
    by_rule = {row["rule"]: row for row in rows}
    assert UNMATCHED_RULE not in by_rule
    assert "Unmatched requests" not in [row["name"] for row in rows]
    assert set(by_rule) == {"/", "/code/<int:code>", "/boom", "/items/<int:item_id>"}
    index = by_rule["/"]
    if now.date() == (now + timedelta(minutes=1)).date():
        assert index["requests_today"] == "13"
        assert index["uptime_today"] == "80.00 %"
        assert by_rule["/code/<int:code>"]["uptime_today"] == "0.00 %"
    assert index["name"] == "Index"
    assert index["doc"] == "The landing page."
    assert index["hidden"] == "shown"
    assert by_rule["/boom"]["requests_today"] == "0"
    assert by_rule["/boom"]["uptime_today"] == "no data"
    # Registration order (position) by default.
    assert rows[0]["rule"] == "/"


def test_routes_list_escapes_operator_text(admin_app: Any, sqlite_url: str) -> None:
    app, status, _admin = admin_app(sqlite_url)
    status.state(app).route_ids()

    with app.app_context():
        service.update_route(status.state(app).db.session, "/", {"name": "<b>Bold</b> & co"})
    html = app.test_client().get(ROUTES).get_data(as_text=True)
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; co" in html
    assert "<b>Bold</b>" not in html
    # The flash after a delete names the route: escaped too.
    client = app.test_client()
    token = csrf_token(client, ROUTES)
    rid = route_id(app, status, "/")
    client.post(ROUTES + "delete/", data={"csrf_token": token, "id": str(rid)})
    html = client.get(ROUTES).get_data(as_text=True)
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; co: history deleted and route hidden" in html
    assert "<b>Bold</b>" not in html


def test_routes_search_by_name_and_rule(admin_app: Any, db_url: str) -> None:
    app, status, _admin = admin_app(db_url)
    status.state(app).route_ids()
    client = app.test_client()
    by_name = table(client.get(ROUTES + "?search=Any+code").get_data(as_text=True))
    assert [row["rule"] for row in by_name] == ["/code/<int:code>"]
    by_rule = table(client.get(ROUTES + "?search=items").get_data(as_text=True))
    assert [row["rule"] for row in by_rule] == ["/items/<int:item_id>"]
    # The unmatched row is out of reach of search too.
    assert table(client.get(ROUTES + "?search=unmatched").get_data(as_text=True)) == []


def test_routes_sort_by_rule(admin_app: Any, db_url: str) -> None:
    app, status, _admin = admin_app(db_url)
    status.state(app).route_ids()
    client = app.test_client()
    expected = ["/", "/boom", "/code/<int:code>", "/items/<int:item_id>"]
    ascending = table(client.get(ROUTES + "?sort=1").get_data(as_text=True))
    descending = table(client.get(ROUTES + "?sort=1&desc=1").get_data(as_text=True))
    assert [row["rule"] for row in ascending] == expected
    assert [row["rule"] for row in descending] == expected[::-1]


# -- Routes: edit ------------------------------------------------------------------------------


def test_edit_renames_through_the_service(admin_app: Any, db_url: str) -> None:
    app, status, _admin = admin_app(db_url)
    rid = route_id(app, status, "/")
    client = app.test_client()
    url = f"{ROUTES}edit/?id={rid}"
    token = csrf_token(client, url)
    response = client.post(
        url, data={"csrf_token": token, "name": "  Home page ", "doc": "Front\r\ndoor"}
    )
    assert response.status_code == 302
    row = route_row(app, "/")
    assert (row.name, row.doc, row.hidden) == ("Home page", "Front\ndoor", False)
    assert row.custom_name and row.custom_doc
    # The code's docstring no longer wins after a sync.
    status.state(app).store.routes.forget()
    status.state(app).route_ids()
    assert route_row(app, "/").name == "Home page"
    rows = table(client.get(ROUTES).get_data(as_text=True))
    assert {row["rule"]: row["name"] for row in rows}["/"] == "Home page"


def test_edit_changing_only_hidden_leaves_the_name_to_the_code(admin_app: Any, db_url: str) -> None:
    app, status, _admin = admin_app(db_url)
    rid = route_id(app, status, "/boom")
    client = app.test_client()
    url = f"{ROUTES}edit/?id={rid}"
    token = csrf_token(client, url)
    before = route_row(app, "/boom")
    response = client.post(
        url, data={"csrf_token": token, "name": before.name, "doc": before.doc, "hidden": "y"}
    )
    assert response.status_code == 302
    row = route_row(app, "/boom")
    assert row.hidden is True or row.hidden == 1
    assert not row.custom_name and not row.custom_doc


@pytest.mark.parametrize(
    ("name", "doc", "message"),
    [
        ("   ", "", "The name cannot be empty."),
        ("x" * 101, "", "The name can be at most 100 characters."),
        ("Fine", "d" * 2001, "The description can be at most 2000 characters."),
    ],
    ids=["empty-name", "long-name", "long-doc"],
)
def test_edit_validation_errors_are_form_errors(
    admin_app: Any, db_url: str, name: str, doc: str, message: str
) -> None:
    app, status, _admin = admin_app(db_url)
    rid = route_id(app, status, "/")
    client = app.test_client()
    url = f"{ROUTES}edit/?id={rid}"
    token = csrf_token(client, url)
    response = client.post(url, data={"csrf_token": token, "name": name, "doc": doc})
    assert response.status_code == 200  # the form again, not a redirect
    html = response.get_data(as_text=True)
    # Rendered beside the field (Bootstrap 4's invalid-feedback), not only flashed.
    assert re.search(r'class="invalid-feedback">\s*<ul[^>]*>\s*<li>' + re.escape(message), html)
    row = route_row(app, "/")
    assert (row.name, row.custom_name) == ("Index", False)


def test_edit_of_the_unmatched_row_is_refused(admin_app: Any, sqlite_url: str) -> None:
    app, status, _admin = admin_app(sqlite_url)
    rid = route_id(app, status, UNMATCHED_RULE)
    client = app.test_client()
    response = client.get(f"{ROUTES}edit/?id={rid}")
    assert response.status_code == 302
    assert route_row(app, UNMATCHED_RULE).name == "Unmatched requests"


# -- Routes: delete and bulk actions -----------------------------------------------------------


def _history(app: Flask, status: FlaskStatus) -> None:
    now = this_minute()
    write(
        app,
        status,
        [
            (rule, now - timedelta(minutes=3), 200, 5, 10.0)
            for rule in ("/", "/boom", "/code/<int:code>")
        ],
    )


def test_delete_hides_and_purges_history(admin_app: Any, db_url: str) -> None:
    app, status, _admin = admin_app(db_url)
    _history(app, status)
    rid = route_id(app, status, "/boom")
    assert count_rows(app, status, Log, rid) == 1
    client = app.test_client()
    token = csrf_token(client, ROUTES)
    response = client.post(ROUTES + "delete/", data={"csrf_token": token, "id": str(rid)})
    assert response.status_code == 302
    assert [count_rows(app, status, m, rid) for m in (Log, LogHour, LogDay)] == [0, 0, 0]
    row = route_row(app, "/boom")
    assert bool(row.hidden) is True
    # Still hidden after the next sync: the row was kept, not deleted.
    status.state(app).store.routes.forget()
    status.state(app).route_ids()
    assert bool(route_row(app, "/boom").hidden) is True
    # Others untouched.
    assert count_rows(app, status, Log, route_id(app, status, "/")) == 1


def _action(client: FlaskClient, name: str, ids: list[int], token: str | None) -> Any:
    data: dict[str, Any] = {"action": name, "rowid": [str(i) for i in ids]}
    if token is not None:
        data["csrf_token"] = token
    return client.post(ROUTES + "action/", data=data)


def test_bulk_hide_and_show(admin_app: Any, db_url: str) -> None:
    app, status, _admin = admin_app(db_url)
    ids = [route_id(app, status, rule) for rule in ("/", "/boom")]
    client = app.test_client()
    token = csrf_token(client, ROUTES)
    assert _action(client, "hide", ids, token).status_code == 302
    assert [bool(route_row(app, r).hidden) for r in ("/", "/boom", "/code/<int:code>")] == [
        True,
        True,
        False,
    ]
    # History is kept by hide.
    assert "2 routes hidden." in client.get(ROUTES).get_data(as_text=True)
    assert _action(client, "show", ids[:1], token).status_code == 302
    assert [bool(route_row(app, r).hidden) for r in ("/", "/boom")] == [False, True]


def test_bulk_delete(admin_app: Any, db_url: str) -> None:
    app, status, _admin = admin_app(db_url)
    _history(app, status)
    ids = [route_id(app, status, rule) for rule in ("/", "/code/<int:code>")]
    unmatched = route_id(app, status, UNMATCHED_RULE)
    client = app.test_client()
    token = csrf_token(client, ROUTES)
    assert _action(client, "delete", [*ids, unmatched], token).status_code == 302
    for rid in ids:
        assert count_rows(app, status, Log, rid) == 0
        assert count_rows(app, status, LogDay, rid) == 0
    assert bool(route_row(app, "/").hidden) is True
    assert bool(route_row(app, "/code/<int:code>").hidden) is True
    assert count_rows(app, status, Log, route_id(app, status, "/boom")) == 1
    # The unmatched row is not reachable through the admin.
    assert route_row(app, UNMATCHED_RULE).rule == UNMATCHED_RULE


def test_bulk_actions_check_permissions(admin_app: Any, sqlite_url: str) -> None:
    app, status, admin = admin_app(sqlite_url)
    _history(app, status)
    rid = route_id(app, status, "/")
    client = app.test_client()
    # A valid token (one per session), taken while the list still has actions.
    token = csrf_token(client, ROUTES)
    # Flask-Admin keeps no public list of its views (only menu items).
    view = next(v for v in admin._views if v.endpoint == ROUTES_ENDPOINT)  # noqa: SLF001
    view.can_edit = False
    view.can_delete = False
    for name in ("hide", "delete"):
        assert _action(client, name, [rid], token).status_code == 302
    assert bool(route_row(app, "/").hidden) is False
    assert count_rows(app, status, Log, rid) == 1
    # Called directly (as a host's own action might), they still refuse.
    with app.test_request_context(ROUTES):
        view.action_hide([str(rid)])
        view.action_delete((str(rid),))
    assert bool(route_row(app, "/").hidden) is False
    assert count_rows(app, status, Log, rid) == 1


def test_csrf_refusal(admin_app: Any, db_url: str) -> None:
    app, status, _admin = admin_app(db_url)
    _history(app, status)
    rid = route_id(app, status, "/")
    client = app.test_client()
    client.get(ROUTES)  # a session exists, just no token sent
    edit = client.post(f"{ROUTES}edit/?id={rid}", data={"name": "Hacked", "doc": ""})
    assert edit.status_code == 200
    assert "Failed to save record." in edit.get_data(as_text=True)
    client.post(ROUTES + "delete/", data={"id": str(rid)})
    _action(client, "hide", [rid], None)
    assert "Failed to perform action." in client.get(ROUTES).get_data(as_text=True)
    _action(client, "delete", [rid], "forged-token")
    row = route_row(app, "/")
    assert (row.name, bool(row.hidden)) == ("Index", False)
    assert count_rows(app, status, Log, rid) == 1


# -- Logs -----------------------------------------------------------------------------------------


@pytest.fixture
def logged(admin_app: Any, db_url: str) -> Iterator[tuple[Flask, FlaskStatus, datetime]]:
    app, status, _admin = admin_app(db_url)
    now = this_minute()
    write(
        app,
        status,
        [
            ("/", now - timedelta(hours=2), 200, 7, 20.0),
            ("/", now - timedelta(minutes=10), 200, 5, 12.0),
            ("/code/<int:code>", now - timedelta(minutes=5), 503, 2, 20.0),
            ("/code/<int:code>", now - timedelta(minutes=3), 418, 1, 15.0),
        ],
    )
    yield app, status, now


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def test_logs_newest_first_with_figures(logged: tuple[Flask, FlaskStatus, datetime]) -> None:
    app, _status, now = logged
    rows = table(app.test_client().get(LOGS).get_data(as_text=True))
    assert [(r["route"], r["minute"], r["status"], r["outcome"], r["count"]) for r in rows] == [
        ("Any code", _fmt(now - timedelta(minutes=3)), "418", "neutral", "1"),
        ("Any code", _fmt(now - timedelta(minutes=5)), "503", "failure", "2"),
        ("Index", _fmt(now - timedelta(minutes=10)), "200", "success", "5"),
        ("Index", _fmt(now - timedelta(hours=2)), "200", "success", "7"),
    ]
    assert rows[2]["latency_mean"] == "12.0"
    # Every request in the 10-25 ms bucket, max 12 ms: the p95 is capped at the max.
    assert rows[2]["latency_p95"] == "12.0"


def test_logs_filters(logged: tuple[Flask, FlaskStatus, datetime]) -> None:
    app, status, now = logged
    client = app.test_client()

    def statuses(query: str) -> list[str]:
        return [r["status"] for r in table(client.get(LOGS + "?" + query).get_data(as_text=True))]

    code = route_id(app, status, "/code/<int:code>")
    assert statuses(f"flt0_route_equals={code}") == ["418", "503"]
    assert statuses("flt0_status_code_equals=200") == ["200", "200"]
    assert statuses("flt0_outcome_equals=1") == ["503"]
    assert statuses("flt0_outcome_equals=2") == ["418"]
    start = (now - timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M:%S")
    end = (now - timedelta(minutes=4)).strftime("%Y-%m-%d %H:%M:%S")
    assert statuses(f"flt0_minute_utc_between={start}+to+{end}") == ["503", "200"]
    assert statuses(f"flt0_minute_utc_greater_than={start}") == ["418", "503", "200"]
    assert statuses(f"flt0_minute_utc_smaller_than={start}") == ["200"]
    # Filters combine.
    assert statuses(f"flt0_route_equals={code}&flt1_outcome_equals=2") == ["418"]
    # The route filter offers the routes by name (as JSON, escaped for HTML).
    html = client.get(LOGS).get_data(as_text=True)
    assert "Any code (/code/\\u003cint:code\\u003e)" in html


def test_logs_are_read_only(logged: tuple[Flask, FlaskStatus, datetime]) -> None:
    app, status, _now = logged
    client = app.test_client()
    with status.state(app).engine.connect() as conn:
        log_id = conn.execute(sa.select(sa.func.min(Log.id))).scalar_one()
        before = conn.execute(sa.select(sa.func.count()).select_from(Log)).scalar_one()
    assert client.get(LOGS + "new/").status_code == 302
    assert client.get(f"{LOGS}edit/?id={log_id}").status_code == 302
    token = csrf_token(client, ROUTES)
    client.post(LOGS + "delete/", data={"csrf_token": token, "id": str(log_id)})
    client.post(
        LOGS + "action/", data={"csrf_token": token, "action": "delete", "rowid": [str(log_id)]}
    )
    with status.state(app).engine.connect() as conn:
        after = conn.execute(sa.select(sa.func.count()).select_from(Log)).scalar_one()
    assert after == before == 4
    html = client.get(LOGS).get_data(as_text=True)
    assert 'name="rowid"' not in html
    assert "/new/" not in html


# -- access ----------------------------------------------------------------------------------------


class _LockedIndex(AdminIndexView):
    def is_accessible(self) -> bool:
        return False


class _HeaderIndex(AdminIndexView):
    """Open only to requests carrying ``X-Operator: yes``, like a host's login check."""

    def is_accessible(self) -> bool:
        from flask import request

        return request.headers.get("X-Operator") == "yes"


def test_access_follows_a_protecting_index_view(admin_app: Any, sqlite_url: str) -> None:
    app, _status, _admin = admin_app(sqlite_url, index_view=_LockedIndex())
    client = app.test_client()
    for url in (ROUTES, LOGS, ROUTES + "edit/?id=1"):
        assert client.get(url).status_code == 403
    assert (
        client.post(ROUTES + "action/", data={"action": "hide", "rowid": ["1"]}).status_code == 403
    )


def test_access_granted_exactly_when_the_index_view_is(admin_app: Any, sqlite_url: str) -> None:
    app, _status, _admin = admin_app(sqlite_url, index_view=_HeaderIndex())
    client = app.test_client()
    assert client.get(ROUTES).status_code == 403
    assert client.get(LOGS).status_code == 403
    assert client.get(ROUTES, headers={"X-Operator": "yes"}).status_code == 200
    assert client.get(LOGS, headers={"X-Operator": "yes"}).status_code == 200


class _RedirectingIndex(_LockedIndex):
    def inaccessible_callback(self, name: Any, **kwargs: Any) -> Any:
        from flask import redirect

        return redirect("/login")


def test_refusal_uses_the_index_views_own_answer(admin_app: Any, sqlite_url: str) -> None:
    app, _status, _admin = admin_app(sqlite_url, index_view=_RedirectingIndex())
    client = app.test_client()
    for url in (ROUTES, LOGS):
        response = client.get(url)
        assert response.status_code == 302
        assert response.headers["Location"] == "/login"


def test_a_host_subclass_added_by_hand(tmp_path: Any) -> None:
    """The customising recipe of the docs: a read-only Routes view, no admin=."""

    class ReadOnlyRoutes(RouteView):
        can_edit = False
        can_delete = False

    app = _app(tmp_path, "by_hand")
    admin = Admin(app)
    status = FlaskStatus(app)
    admin.add_view(
        ReadOnlyRoutes(
            Route,
            status.state(app).db,
            name="Routes",
            category="Status",
            endpoint=ROUTES_ENDPOINT,
            url="flask-status/routes",
        )
    )
    try:
        client = app.test_client()
        html = client.get(ROUTES).get_data(as_text=True)
        assert [row["rule"] for row in table(html)] == ["/"]
        assert "Edit Record" not in html
        assert 'name="rowid"' not in html
    finally:
        status.state(app).buffer.stop(flush=False)
        status.state(app).engine.dispose()


BASIC = {
    "FLASK_STATUS_ADMIN_USERNAME": "operator",
    "FLASK_STATUS_ADMIN_PASSWORD_HASH": generate_password_hash("s3cret pass"),
}


@pytest.mark.parametrize(
    "credentials",
    [None, ("operator", "wrong"), ("intruder", "s3cret pass"), ("operator", "")],
    ids=["missing", "wrong-password", "wrong-user", "empty-password"],
)
def test_basic_auth_refuses_wrong_credentials(
    admin_app: Any, sqlite_url: str, credentials: tuple[str, str] | None
) -> None:
    app, status, _admin = admin_app(sqlite_url, config=BASIC)
    rid = route_id(app, status, "/")
    client = app.test_client()
    for url in (ROUTES, LOGS):
        response = client.get(url, auth=credentials)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
        assert 'realm="flask-server-status admin"' in response.headers["WWW-Authenticate"]
    response = client.post(
        ROUTES + "action/", data={"action": "hide", "rowid": [str(rid)]}, auth=credentials
    )
    assert response.status_code == 401
    assert bool(route_row(app, "/").hidden) is False


def test_basic_auth_lets_the_operator_in(admin_app: Any, sqlite_url: str) -> None:
    app, status, _admin = admin_app(sqlite_url, config=BASIC)
    rid = route_id(app, status, "/")
    client = app.test_client()
    auth = ("operator", "s3cret pass")
    assert client.get(ROUTES, auth=auth).status_code == 200
    assert client.get(LOGS, auth=auth).status_code == 200
    token = csrf_token_auth(client, ROUTES, auth)
    response = client.post(
        ROUTES + "action/",
        data={"csrf_token": token, "action": "hide", "rowid": [str(rid)]},
        auth=auth,
    )
    assert response.status_code == 302
    assert bool(route_row(app, "/").hidden) is True
    # The host's own admin pages are not behind our Basic auth, and they list
    # the Status menu before any credentials were sent (opening it asks).
    home = app.test_client().get("/admin/")
    assert home.status_code == 200
    assert 'href="/admin/flask-status/routes/"' in home.get_data(as_text=True)


def csrf_token_auth(client: FlaskClient, url: str, auth: tuple[str, str]) -> str:
    html = client.get(url, auth=auth).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match
    return match.group(1)


def test_basic_auth_does_not_override_the_index_view(admin_app: Any, sqlite_url: str) -> None:
    app, _status, _admin = admin_app(sqlite_url, index_view=_LockedIndex(), config=BASIC)
    client = app.test_client()
    assert client.get(ROUTES, auth=("operator", "s3cret pass")).status_code == 403
    assert client.get(LOGS, auth=("operator", "s3cret pass")).status_code == 403


# -- a host with its own Route and Log models ---------------------------------------------------


def test_host_with_its_own_route_and_log_models(db_url: str, tmp_path: Any) -> None:
    db = SQLAlchemy()

    class HostRoute(db.Model):  # type: ignore[name-defined]
        __tablename__ = "routes"
        id: Mapped[int] = mapped_column(primary_key=True)
        path: Mapped[str] = mapped_column(sa.String(100))

    class HostLog(db.Model):  # type: ignore[name-defined]
        __tablename__ = "logs"
        id: Mapped[int] = mapped_column(primary_key=True)
        line: Mapped[str] = mapped_column(sa.String(100))

    # Flask-Admin names a view's blueprint after the model unless told otherwise.
    HostRoute.__name__ = "Route"
    HostLog.__name__ = "Log"

    app = Flask("host_app", instance_path=str(tmp_path / "instance"))
    app.config.update(
        SQLALCHEMY_DATABASE_URI=db_url, SECRET_KEY="k", FLASK_STATUS_FLUSH_INTERVAL=3600
    )
    db.init_app(app)
    admin = Admin(app)
    admin.add_view(ModelView(HostRoute, db))
    admin.add_view(ModelView(HostLog, db))

    @app.route("/")
    def index() -> str:
        """
        # Index
        The landing page.
        """
        return "ok"

    status = FlaskStatus(app, admin=admin)
    state = status.state(app)
    try:
        with app.app_context():
            db.drop_all()
            db.create_all()
            db.session.add_all([HostRoute(path="/host-only"), HostLog(line="host log line")])
            db.session.commit()
        client = app.test_client()
        client.get("/")
        status.flush(app)
        assert client.get("/admin/route/").status_code == 200
        assert "/host-only" in client.get("/admin/route/").get_data(as_text=True)
        assert "host log line" in client.get("/admin/log/").get_data(as_text=True)
        ours = table(client.get(ROUTES).get_data(as_text=True))
        assert [row["rule"] for row in ours] == ["/"]
        assert table(client.get(LOGS).get_data(as_text=True))[0]["route"] == "Index"
        # Flask-Admin's own endpoints are not listed as routes of the page.
        assert all(not r.startswith("/admin") for r in state.route_ids())
        with app.app_context():
            assert (
                db.session.execute(sa.select(sa.func.count()).select_from(HostRoute)).scalar() == 1
            )
            # End the read's transaction first: MariaDB's DROP would wait for its lock.
            db.session.remove()
            db.drop_all()
    finally:
        state.buffer.stop(flush=False)
        state.engine.dispose()
        # The host's own engines too: the status engine is not always one of them.
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()


def test_status_tables_in_their_own_bind(tmp_path: Any) -> None:
    """With SQLALCHEMY_BINDS["flask_status"], the admin reads and writes that database."""
    app = _app(tmp_path, "own_bind")
    status_db = tmp_path / "status-only.db"
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'host.db'}"
    app.config["SQLALCHEMY_BINDS"] = {"flask_status": f"sqlite:///{status_db}"}
    admin = Admin(app)
    status = FlaskStatus(app, admin=admin)
    state = status.state(app)
    try:
        rid = state.route_ids()["/"]
        client = app.test_client()
        url = f"{ROUTES}edit/?id={rid}"
        token = csrf_token(client, url)
        response = client.post(url, data={"csrf_token": token, "name": "Bound", "doc": ""})
        assert response.status_code == 302
        engine = sa.create_engine(f"sqlite:///{status_db}")
        with engine.connect() as conn:
            name = conn.execute(sa.select(Route.name).where(Route.rule == "/")).scalar_one()
        engine.dispose()
        assert name == "Bound"
        assert [row["name"] for row in table(client.get(ROUTES).get_data(as_text=True))] == [
            "Bound"
        ]
    finally:
        state.buffer.stop(flush=False)
        state.engine.dispose()


# -- a database outage: a 503 page, one log line, nothing changed --------------------------------


OVERVIEW = "/admin/flask-status/"


def _take_the_database_away(app: Flask, db_url: str, proxy: Any) -> None:
    """Make the status database really unreachable (never the shared server itself).

    SQLite: the file is replaced by a directory, which no connection can
    open. PostgreSQL and MariaDB: the TCP proxy the app talks through is cut,
    as a server that died would be.
    """
    state = status_state(app)
    if db_url.startswith("sqlite"):
        path = sa.engine.make_url(db_url).database
        assert path
        os.replace(path, path + ".away")
        os.mkdir(path)
    else:
        proxy.cut()
    # Pooled connections were opened before; the next checkout must connect.
    state.engine.dispose()


def _bring_it_back(app: Flask, db_url: str, proxy: Any) -> None:
    if db_url.startswith("sqlite"):
        path = sa.engine.make_url(db_url).database
        assert path
        os.rmdir(path)
        os.replace(path + ".away", path)
    else:
        proxy.restore()
    status_state(app).engine.dispose()


def status_state(app: Flask) -> Any:
    from flask_server_status import get_state

    return get_state(app)


@pytest.fixture
def proxied_url(db_url: str) -> Iterator[tuple[str, TcpProxy | None]]:
    """``db_url`` through a TCP proxy the test can cut (SQLite: no proxy)."""
    if db_url.startswith("sqlite"):
        yield db_url, None
        return
    parsed = sa.engine.make_url(db_url)
    proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 0)
    try:
        yield through(db_url, proxy.port), proxy
    finally:
        proxy.close()


def test_admin_answers_503_during_an_outage(
    admin_app: Any,
    db_url: str,
    proxied_url: tuple[str, TcpProxy | None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, proxy = proxied_url
    app, status, _admin = admin_app(url)
    _history(app, status)
    rid = route_id(app, status, "/")
    client = app.test_client()
    token = csrf_token(client, ROUTES)
    before = route_row(app, "/")

    _take_the_database_away(app, db_url, proxy)
    caplog.clear()
    calls = [
        ("GET", OVERVIEW, None),
        ("GET", ROUTES, None),
        ("GET", ROUTES + "?search=Index", None),
        ("GET", LOGS, None),
        ("GET", f"{LOGS}?flt0_status_code_equals=200", None),
        ("GET", f"{ROUTES}edit/?id={rid}", None),
        ("POST", f"{ROUTES}edit/?id={rid}", {"csrf_token": token, "name": "Changed", "doc": ""}),
        ("POST", ROUTES + "delete/", {"csrf_token": token, "id": str(rid)}),
        ("POST", ROUTES + "action/", {"csrf_token": token, "action": "hide", "rowid": [str(rid)]}),
        ("POST", ROUTES + "action/", {"csrf_token": token, "action": "delete", "rowid": [rid]}),
    ]
    for method, path, data in calls:
        response = client.open(path, method=method, data=data)
        where = f"{method} {path}: {response.status_code}"
        assert response.status_code == 503, where
        assert response.headers["Retry-After"] == "30", where
        assert response.headers["X-Frame-Options"] == "DENY", where
        html = response.get_data(as_text=True)
        assert "The status database is not available" in html, where
        assert "Traceback" not in html and "SELECT" not in html, where
    # One log line per request, naming the error's type: no traceback, no SQL.
    ours = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(ours) == len(calls), [r.getMessage() for r in ours]
    for record in ours:
        assert record.exc_info is None
        assert "status database unavailable" in record.getMessage()
        assert "SELECT" not in record.getMessage() and "UPDATE" not in record.getMessage()

    _bring_it_back(app, db_url, proxy)
    assert client.get(ROUTES).status_code == 200
    after = route_row(app, "/")
    assert (after.name, bool(after.hidden)) == (before.name, False)
    assert count_rows(app, status, Log, rid) == 1


# -- Logs: absurd filter and paging values are validation errors, never a 500 ----------------------

ABSURD_INTEGERS = [
    "99999999999999999999999",
    "-99999999999999999999999",
    str(2**63),
    str(2**31),
    "1e400",
    "-1e400",
    "nan",
    "inf",
    "0x10",
    "1.5",
    "",
    " ",
    "abc",
    "9" * 5000,
    "٣",  # an Arabic-Indic digit: int() reads it, the bounds decide
    "\x00",
]
ABSURD_MOMENTS = [
    "0001-01-01 00:00:00",
    "9999-12-31 23:59:59",
    "99999-01-01 00:00:00",
    "2026-13-45 25:61:61",
    "1e400",
    "",
    "\x00",
]


def test_logs_filters_refuse_absurd_values(logged: tuple[Flask, FlaskStatus, datetime]) -> None:
    app, _status, _now = logged
    client = app.test_client()
    everything = table(client.get(LOGS).get_data(as_text=True))
    assert len(everything) == 4
    queries = [
        f"{name}={value}"
        for name in ("flt0_route_equals", "flt0_status_code_equals", "flt0_outcome_equals")
        for value in ABSURD_INTEGERS
    ]
    queries += [
        f"{name}={value}"
        for name in ("flt0_minute_utc_greater_than", "flt0_minute_utc_smaller_than")
        for value in ABSURD_MOMENTS
    ]
    queries += [
        f"flt0_minute_utc_between={a}+to+{b}" for a in ABSURD_MOMENTS for b in ABSURD_MOMENTS
    ]
    queries += [f"page={v}" for v in ("99999999999999999999999", "-5", str(2**63))]
    queries += [f"page_size={v}" for v in ("99999999999999999999999", "-1", str(2**31))]
    queries += ["sort=99999999999999999999999", "desc=99999999999999999999999"]
    for query in queries:
        response = client.get(LOGS + "?" + query.replace("\x00", "%00"))
        assert response.status_code == 200, (query, response.status_code)
    # A refused value is said so, and the list is shown without that filter.
    for query, message in [
        ("flt0_status_code_equals=99999999999999999999999", "Invalid Filter Value"),
        ("flt0_route_equals=1e400", "Invalid Filter Value"),
        ("flt0_outcome_equals=-99999999999999999999999", "Invalid Filter Value"),
        ("page=99999999999999999999999", "Invalid page number"),
        ("page=-5", "Invalid page number"),
    ]:
        html = client.get(LOGS + "?" + query).get_data(as_text=True)
        assert message in html, query
        assert table(html) == everything, query
    # Values inside the bounds still filter.
    assert [
        r["status"]
        for r in table(client.get(LOGS + "?flt0_status_code_equals=418").get_data(as_text=True))
    ] == ["418"]


# -- Routes: the row Delete button, the edit form, invisible characters --------------------------


def test_row_delete_says_what_happens(admin_app: Any, sqlite_url: str) -> None:
    app, status, _admin = admin_app(sqlite_url)
    client = app.test_client()
    token = csrf_token(client, ROUTES)
    rid = route_id(app, status, "/")
    name = 'It\'s "quoted" </script><b>x</b>'
    response = client.post(
        f"{ROUTES}edit/?id={rid}", data={"csrf_token": token, "name": name, "doc": ""}
    )
    assert response.status_code == 302
    html = client.get(ROUTES).get_data(as_text=True)
    assert "Are you sure you want to delete this record?" not in html
    confirms = re.findall(r"onclick='return faHelpers\.safeConfirm\((.*?)\);'", html)
    assert len(confirms) == len(table(html)) == 4
    # A JSON string inside a single-quoted attribute: the name stays text.
    mine = [json.loads(html_unescape(c)) for c in confirms if "quoted" in c]
    assert mine == [
        f"Delete the history of {name} (/) and hide it from the status page? Its minute,"
        " hour and day counts are purged for good; the route stays listed here, hidden,"
        " and showing it again starts from zero."
    ]
    assert "</script><b>" not in html
    # The button still posts to Flask-Admin's delete view, with its CSRF token.
    assert html.count(f'action="{ROUTES}delete/"') == 4


def test_edit_form_shows_the_rule_read_only(admin_app: Any, db_url: str) -> None:
    app, status, _admin = admin_app(db_url)
    rid = route_id(app, status, "/code/<int:code>")
    client = app.test_client()
    html = client.get(f"{ROUTES}edit/?id={rid}").get_data(as_text=True)
    match = re.search(r'<input id="flask-status-rule"[^>]*>', html)
    assert match, html[:2000]
    assert 'value="/code/&lt;int:code&gt;"' in match.group(0)
    assert "readonly" in match.group(0) and "name=" not in match.group(0)
    # A rule posted along is ignored: only name, doc and hidden are editable.
    token = csrf_token(client, ROUTES)
    client.post(
        f"{ROUTES}edit/?id={rid}",
        data={"csrf_token": token, "name": "Codes", "doc": "", "rule": "/evil"},
    )
    assert route_row(app, "/code/<int:code>").name == "Codes"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "name",
            "Pay\u202emoc.live",
            "The name cannot contain invisible or text-direction characters (found U+202E).",
        ),
        (
            "name",
            "In\u200bdex",
            "The name cannot contain invisible or text-direction characters (found U+200B).",
        ),
        (
            "doc",
            "\ufeffFront door",
            "The description cannot contain invisible or text-direction characters (found U+FEFF).",
        ),
        (
            "doc",
            "left \u2066isolate\u2069",
            "The description cannot contain invisible or text-direction characters (found U+2066).",
        ),
    ],
)
def test_edit_refuses_invisible_characters(
    admin_app: Any, db_url: str, field: str, value: str, message: str
) -> None:
    app, status, _admin = admin_app(db_url)
    rid = route_id(app, status, "/")
    client = app.test_client()
    url = f"{ROUTES}edit/?id={rid}"
    data = {"csrf_token": csrf_token(client, url), "name": "Index", "doc": "The landing page."}
    data[field] = value
    response = client.post(url, data=data)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert re.search(r'class="invalid-feedback">\s*<ul[^>]*>\s*<li>' + re.escape(message), html)
    row = route_row(app, "/")
    assert (row.name, row.doc, row.custom_name, row.custom_doc) == (
        "Index",
        "The landing page.",
        False,
        False,
    )


# -- the overview, and StatusIndexView -------------------------------------------------------------


def test_overview_shows_state_failing_routes_and_last_minute(admin_app: Any, db_url: str) -> None:
    app, status, _admin = admin_app(db_url)
    now = this_minute()
    write(
        app,
        status,
        [
            ("/", now - timedelta(minutes=1), 200, 50, 10.0),
            ("/boom", now - timedelta(minutes=1), 500, 20, 10.0),
            ("/boom", now - timedelta(minutes=2), 200, 5, 10.0),
            ("/code/<int:code>", now - timedelta(minutes=2), 200, 30, 10.0),
        ],
    )
    client = app.test_client()
    client.get("/")  # one request waiting in this process's buffer
    html = client.get(OVERVIEW).get_data(as_text=True)
    summary = _summary(html)
    assert summary["overall"] == "Major outage"
    assert summary["failing"] == "boom /boom : Major outage"
    last = (now - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M UTC")
    assert re.fullmatch(re.escape(last) + r" , (just now|\d+ min ago)", summary["last_stored"])
    assert summary["process"] == "1 request waiting for the next flush"
    assert 'data-status="major_outage"' in html
    # In the Status menu, first.
    menu = client.get("/admin/").get_data(as_text=True)
    assert menu.index(f'href="{OVERVIEW}"') < menu.index(f'href="{ROUTES}"')
    # The host's own index stays blank: the summary there is opt-in.
    assert "flask-status-summary" not in menu


def test_overview_of_a_fresh_app(admin_app: Any, sqlite_url: str) -> None:
    app, _status, _admin = admin_app(sqlite_url)
    summary = _summary(app.test_client().get(OVERVIEW).get_data(as_text=True))
    assert summary == {
        "overall": "No data",
        "failing": "none (of 4 shown on the page)",
        "last_stored": "nothing stored yet",
        "process": "0 requests waiting for the next flush",
    }


def test_status_index_view_puts_the_summary_on_the_admin_home(tmp_path: Any) -> None:
    app = _app(tmp_path, "status_index")
    admin = Admin(app, index_view=StatusIndexView())
    status = FlaskStatus(app, admin=admin)
    try:
        client = app.test_client()
        home = client.get("/admin/")
        assert home.status_code == 200
        assert _summary(home.get_data(as_text=True))["overall"] == "No data"
        assert home.headers["X-Frame-Options"] == "DENY"
    finally:
        status.state(app).buffer.stop(flush=False)
        status.state(app).engine.dispose()


def _summary(html: str) -> dict[str, str]:
    found = {}
    for key in ("overall", "failing", "last-stored", "process"):
        match = re.search(rf'<dd[^>]*id="flask-status-{key}"[^>]*>(.*?)</dd>', html, re.S)
        assert match, key
        found[key.replace("-", "_")] = " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())
    return found


# -- security headers: ours on our views, none on the host's ---------------------------------------


def test_security_headers_on_our_views_only(admin_app: Any, sqlite_url: str) -> None:
    app, status, _admin = admin_app(sqlite_url)
    rid = route_id(app, status, "/")
    client = app.test_client()
    for url in (OVERVIEW, ROUTES, LOGS, f"{ROUTES}edit/?id={rid}", f"{ROUTES}edit/?id=999999"):
        response = client.get(url)
        assert response.headers["X-Frame-Options"] == "DENY", url
        assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'", url
        assert response.headers["X-Content-Type-Options"] == "nosniff", url
    # The host's admin index and the host's own pages are the host's business.
    for url in ("/admin/", "/"):
        response = client.get(url)
        assert response.status_code == 200, url
        for header in ("X-Frame-Options", "Content-Security-Policy", "X-Content-Type-Options"):
            assert header not in response.headers, (url, header)


def test_log_outcome_help_is_written_from_the_settings(admin_app: Any, sqlite_url: str) -> None:
    """Issue 11: the admin's "failure: ..." help follows FLASK_STATUS_FAILURE_CODES."""
    default, _status, _admin = admin_app(sqlite_url)
    html = html_unescape(default.test_client().get(LOGS).get_data(as_text=True))
    assert "failure: 5xx and 404; neutral: other 4xx." in html
    assert "A 404 from a rule with URL variables (/items/<int:id>) is neutral." in html
    custom, _status, _admin = admin_app(
        sqlite_url, config={"FLASK_STATUS_FAILURE_CODES": [429, 409]}
    )
    html = html_unescape(custom.test_client().get(LOGS).get_data(as_text=True))
    assert "failure: 5xx and 409, 429; neutral: other 4xx." in html
    assert "5xx and 404" not in html and "URL variables" not in html
