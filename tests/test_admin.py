"""The Flask-Admin views: Routes (list, search, sort, edit, delete, bulk actions)
and Logs (read-only list and filters), their access rules and CSRF.

Tests that touch data run on SQLite, PostgreSQL and MariaDB (``db_url``).
History is written through the normal write path (``state.store.write``) at
chosen minutes, so the figures the admin shows are known in advance.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
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
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import generate_password_hash

from flask_server_status import FlaskStatus, service
from flask_server_status.admin import LOGS_ENDPOINT, ROUTES_ENDPOINT, LogView, RouteView
from flask_server_status.config import HISTOGRAM_SIZE
from flask_server_status.models import UNMATCHED_RULE, Log, LogDay, LogHour, Route

ROUTES = "/admin/flask-status/routes/"
LOGS = "/admin/flask-status/logs/"

MakeApp = Callable[..., tuple[Flask, FlaskStatus]]


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
    """Write ``(rule, minute, status code, count, latency ms each)`` through the store."""
    state = status.state(app)
    counts: dict[tuple[str, int, int], list[float]] = {}
    for rule, minute, code, count, latency in entries:
        histogram = [0] * HISTOGRAM_SIZE
        histogram[2] = count  # 10-25 ms
        counts[(rule, int(minute.timestamp()) // 60, code)] = [
            count,
            latency * count,
            latency,
            *histogram,
        ]
    state.store.write(counts, state.route_ids())


def this_minute() -> datetime:
    return datetime.now(timezone.utc).replace(second=0, microsecond=0)


def route_row(app: Flask, status: FlaskStatus, rule: str) -> Any:
    with status.state(app).engine.connect() as conn:
        return conn.execute(sa.select(Route.__table__).where(Route.rule == rule)).one()


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
    views = {view.endpoint: view for view in admin._views}
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
    row = route_row(app, status, "/")
    assert (row.name, row.doc, row.hidden) == ("Home page", "Front\ndoor", False)
    assert row.custom_name and row.custom_doc
    # The code's docstring no longer wins after a sync.
    status.state(app).store._synced_signature = None
    status.state(app).route_ids()
    assert route_row(app, status, "/").name == "Home page"
    rows = table(client.get(ROUTES).get_data(as_text=True))
    assert {row["rule"]: row["name"] for row in rows}["/"] == "Home page"


def test_edit_changing_only_hidden_leaves_the_name_to_the_code(admin_app: Any, db_url: str) -> None:
    app, status, _admin = admin_app(db_url)
    rid = route_id(app, status, "/boom")
    client = app.test_client()
    url = f"{ROUTES}edit/?id={rid}"
    token = csrf_token(client, url)
    before = route_row(app, status, "/boom")
    response = client.post(
        url, data={"csrf_token": token, "name": before.name, "doc": before.doc, "hidden": "y"}
    )
    assert response.status_code == 302
    row = route_row(app, status, "/boom")
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
    row = route_row(app, status, "/")
    assert (row.name, row.custom_name) == ("Index", False)


def test_edit_of_the_unmatched_row_is_refused(admin_app: Any, sqlite_url: str) -> None:
    app, status, _admin = admin_app(sqlite_url)
    rid = route_id(app, status, UNMATCHED_RULE)
    client = app.test_client()
    response = client.get(f"{ROUTES}edit/?id={rid}")
    assert response.status_code == 302
    assert route_row(app, status, UNMATCHED_RULE).name == "Unmatched requests"


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
    row = route_row(app, status, "/boom")
    assert bool(row.hidden) is True
    # Still hidden after the next sync: the row was kept, not deleted.
    status.state(app).store._synced_signature = None
    status.state(app).route_ids()
    assert bool(route_row(app, status, "/boom").hidden) is True
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
    assert [bool(route_row(app, status, r).hidden) for r in ("/", "/boom", "/code/<int:code>")] == [
        True,
        True,
        False,
    ]
    # History is kept by hide.
    assert "2 routes hidden." in client.get(ROUTES).get_data(as_text=True)
    assert _action(client, "show", ids[:1], token).status_code == 302
    assert [bool(route_row(app, status, r).hidden) for r in ("/", "/boom")] == [False, True]


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
    assert bool(route_row(app, status, "/").hidden) is True
    assert bool(route_row(app, status, "/code/<int:code>").hidden) is True
    assert count_rows(app, status, Log, route_id(app, status, "/boom")) == 1
    # The unmatched row is not reachable through the admin.
    assert route_row(app, status, UNMATCHED_RULE).rule == UNMATCHED_RULE


def test_bulk_actions_check_permissions(admin_app: Any, sqlite_url: str) -> None:
    app, status, admin = admin_app(sqlite_url)
    _history(app, status)
    rid = route_id(app, status, "/")
    client = app.test_client()
    # A valid token (one per session), taken while the list still has actions.
    token = csrf_token(client, ROUTES)
    view = next(v for v in admin._views if v.endpoint == ROUTES_ENDPOINT)
    view.can_edit = False
    view.can_delete = False
    for name in ("hide", "delete"):
        assert _action(client, name, [rid], token).status_code == 302
    assert bool(route_row(app, status, "/").hidden) is False
    assert count_rows(app, status, Log, rid) == 1
    # Called directly (as a host's own action might), they still refuse.
    with app.test_request_context(ROUTES):
        view.action_hide([str(rid)])
        view.action_delete((str(rid),))
    assert bool(route_row(app, status, "/").hidden) is False
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
    row = route_row(app, status, "/")
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
    assert bool(route_row(app, status, "/").hidden) is False


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
    assert bool(route_row(app, status, "/").hidden) is True
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

    class HostRoute(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "routes"
        id: Mapped[int] = mapped_column(primary_key=True)
        path: Mapped[str] = mapped_column(sa.String(100))

    class HostLog(db.Model):  # type: ignore[name-defined,misc]
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
