"""The route table: rules kept whole and told apart exactly, nothing dropped unseen,
a table restored behind the process's back, and ``routes=`` on a shared database.

Every test runs on SQLite, PostgreSQL and MariaDB; MariaDB matters most here,
as its default collation finds ``/Report`` equal to ``/report`` and ``/cafe``
to ``/café``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import conftest
import pytest
import sqlalchemy as sa
from flask import Flask
from helpers import MakeApp, slot

from flask_server_status import FlaskStatus, get_state, queries, routes, service
from flask_server_status.models import (
    DAY_TABLE,
    HOUR_TABLE,
    LOG_TABLE,
    ROUTE_TABLE,
    UNMATCHED_RULE,
    Base,
    Log,
    Route,
    rule_key,
)

#: Rules that MariaDB's default collation (utf8mb4_general_ci / uca1400_ai_ci) finds equal.
COLLIDING = ["/Report", "/report", "/cafe", "/café"]
LONG_300 = "/long/" + "a" * 294
LONG_2000 = "/longer/" + "é" * 1000 + "b" * 992


def stored_by_rule(app: Flask) -> dict[tuple[str, int], int]:
    """(rule, status) -> requests, read from the minute rows, grouped by route id.

    Grouped by id, not by rule text: MariaDB would group colliding rules together.
    """
    with get_state(app).engine.connect() as conn:
        rows = conn.execute(
            sa.select(Route.id, Route.rule, Log.status, sa.func.sum(Log.count))
            .join(Route, Route.id == Log.route_id)
            .group_by(Route.id, Route.rule, Log.status)
        ).all()
    found: dict[tuple[str, int], int] = {}
    for _id, rule, status, count in rows:
        assert (rule, status) not in found, f"two route rows for {rule!r}"
        found[(rule, status)] = int(count)
    return found


def route_rows(app: Flask) -> dict[str, Any]:
    """rule -> route row (id, rule_hash, hidden ...), every row of the table."""
    with get_state(app).engine.connect() as conn:
        return {row.rule: row for row in conn.execute(sa.select(ROUTE_TABLE))}


def add_rules(app: Flask, rules: list[str]) -> None:
    for number, rule in enumerate(rules):

        def view(**_kwargs: Any) -> str:
            return "ok"

        app.add_url_rule(rule, f"extra_{number}", view)


# -- exact rules -----------------------------------------------------------------------------


def test_rules_differing_in_case_or_accent_are_counted_apart(
    db_url: str, make_app: MakeApp
) -> None:
    app, status = make_app(db_url, routes_first=False)
    add_rules(app, COLLIDING)
    client = app.test_client()
    for rule in COLLIDING:
        for _ in range(10):
            assert client.get(rule).status_code == 200
    assert status.flush(app) == 40
    assert stored_by_rule(app) == {(rule, 200): 10 for rule in COLLIDING}
    rows = route_rows(app)
    assert {rule: rows[rule].rule_hash for rule in COLLIDING} == {
        rule: rule_key(rule) for rule in COLLIDING
    }
    assert get_state(app).buffer.dropped == 0

    # Looked up by rule, each finds its own row, on MariaDB too.
    db = get_state(app).db
    with app.app_context():
        for rule in COLLIDING:
            assert service.get_route(db.session, rule).id == rows[rule].id
        service.update_route(db.session, "/Report", {"name": "Upper"})
        assert service.set_hidden(db.session, ["/cafe"], True) == 1
        db.session.remove()
    rows = route_rows(app)
    assert [rows[r].name for r in COLLIDING] == ["Upper", "extra_1", "extra_2", "extra_3"]
    assert [bool(rows[r].hidden) for r in COLLIDING] == [False, False, True, False]
    with app.app_context():
        shown = {r.rule for r in queries.route_statuses(get_state(app))}
    assert shown >= {"/Report", "/report", "/café"} and "/cafe" not in shown


def test_long_rules_are_stored_whole(db_url: str, make_app: MakeApp) -> None:
    app, status = make_app(db_url)
    add_rules(app, [LONG_300, LONG_2000])
    client = app.test_client()
    for _ in range(3):
        assert client.get(LONG_300).status_code == 200
    for _ in range(4):
        assert client.get(LONG_2000).status_code == 200
    for _ in range(5):
        client.get("/")
    # Every route is counted: a long rule no longer makes the whole flush fail.
    assert status.flush(app) == 12
    assert stored_by_rule(app) == {(LONG_300, 200): 3, (LONG_2000, 200): 4, ("/", 200): 5}
    rows = route_rows(app)
    assert len(LONG_2000) == 2000
    assert rows[LONG_2000].rule == LONG_2000  # whole, not cut at 255
    assert rows[LONG_300].rule == LONG_300
    db = get_state(app).db
    with app.app_context():
        assert service.get_route(db.session, LONG_2000).id == rows[LONG_2000].id
        db.session.remove()
    # The next flush adds to the same rows.
    client.get(LONG_2000)
    assert status.flush(app) == 1
    assert stored_by_rule(app)[(LONG_2000, 200)] == 5


def test_a_rule_that_cannot_be_stored_is_logged_and_counted_as_dropped(
    db_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app, status = make_app(db_url, routes_first=False)
    bad = "/nul\x00byte"
    add_rules(app, [bad])
    state = get_state(app)
    for _ in range(3):
        state.buffer.add(bad, 200, 0.01)
    for _ in range(5):
        state.buffer.add("/", 200, 0.01)
    with caplog.at_level(logging.ERROR, logger="flask_server_status"):
        assert status.flush(app) == 5
    assert stored_by_rule(app) == {("/", 200): 5}
    assert state.buffer.dropped == 3
    assert state.buffer.pending() == 0  # dropped, not kept for a retry that cannot work
    assert bad not in state.route_ids()
    assert state.store.routes.refused == {bad: routes.storable(bad)}
    messages = [r.getMessage() for r in caplog.records]
    assert any("cannot be stored" in m and "NUL" in m for m in messages)
    assert any("dropped 3 requests" in m and "NUL" in m for m in messages)
    # And again on the next flush: every request is accounted for.
    state.buffer.add(bad, 500, 0.01)
    assert status.flush(app) == 0
    assert state.buffer.dropped == 4


def test_route_rows_are_synced_once_per_url_map_change(db_url: str, make_app: MakeApp) -> None:
    app, status = make_app(db_url)
    state = get_state(app)
    ids = dict(state.route_ids())
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(state.engine, "before_cursor_execute", count)
    try:
        assert dict(state.route_ids()) == ids
        assert statements == []  # from memory: the url_map did not change
        add_rules(app, ["/later"])
        later = state.route_ids()
    finally:
        sa.event.remove(state.engine, "before_cursor_execute", count)
    assert statements  # the new rule made a sync
    assert set(later) == set(ids) | {"/later"}
    assert {rule: later[rule] for rule in ids} == ids
    app.test_client().get("/later")
    assert status.flush(app) == 1
    assert stored_by_rule(app) == {("/later", 200): 1}


# -- a table changed behind the process's back -------------------------------------------------


def _empty_tables(app: Flask) -> None:
    with get_state(app).engine.begin() as conn:
        for table in (LOG_TABLE, HOUR_TABLE, DAY_TABLE, ROUTE_TABLE):
            conn.execute(table.delete())


@pytest.mark.parametrize("restore", ["ids_gone", "ids_moved"])
def test_a_restored_route_table_is_read_again(
    db_url: str, make_app: MakeApp, restore: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, status = make_app(db_url)
    state = get_state(app)
    client = app.test_client()
    client.get("/")
    assert status.flush(app) == 1
    old = dict(state.route_ids())
    rows = route_rows(app)
    # A restore or truncate behind the process's back: the rows are gone, or
    # back with their ids shuffled (each rule has another rule's id now).
    _empty_tables(app)
    if restore == "ids_moved":
        rules = sorted(old)
        shifted = {rule: old[rules[(n + 1) % len(rules)]] for n, rule in enumerate(rules)}
        with state.engine.begin() as conn:
            conn.execute(
                ROUTE_TABLE.insert(),
                [
                    {
                        # Row._mapping is SQLAlchemy's public API, underscored against clashes.
                        **{k: v for k, v in rows[rule]._mapping.items() if k != "id"},  # noqa: SLF001
                        "id": shifted[rule],
                    }
                    for rule in rules
                ],
            )
    for _ in range(3):
        client.get("/")
    client.get("/boom")
    with caplog.at_level(logging.WARNING, logger="flask_server_status"):
        assert status.flush(app) == 4  # not a failure forever, and not on the wrong rows
    assert stored_by_rule(app) == {("/", 200): 3, ("/boom", 500): 1}
    assert any("route table changed" in r.getMessage() for r in caplog.records)
    new = state.route_ids()
    assert set(new) == set(old)
    if restore == "ids_moved":
        assert dict(new) == shifted
    assert state.buffer.pending() == 0 and state.buffer.dropped == 0
    # And counting goes on normally.
    client.get("/")
    assert status.flush(app) == 1
    assert stored_by_rule(app)[("/", 200)] == 4


# -- routes= on a database shared with another app ---------------------------------------------


def test_routes_option_shows_only_its_rules_on_a_shared_database(
    db_url: str, make_app: MakeApp
) -> None:
    app1, status1 = make_app(db_url, routes=["/", "/alpha"])

    def alpha() -> str:
        """
        # Alpha
        """
        return "alpha"

    app1.add_url_rule("/alpha", "alpha", alpha)

    app2, status2 = make_app(db_url)  # every route, /boom among them
    for _ in range(4):
        app1.test_client().get("/")
    app1.test_client().get("/alpha")
    for _ in range(12):
        assert app2.test_client().get("/boom").status_code == 500
    app2.test_client().get("/")
    assert status1.flush(app1) == 5
    assert status2.flush(app2) == 13
    state2 = get_state(app2)
    boom_id = state2.route_ids()["/boom"]
    # And the minutes before: /boom has failed for three minutes in a row.
    now = int(datetime.now(timezone.utc).timestamp()) // 60
    twelve = slot(12, 1.0)
    earlier = {("/boom", now - n, 500): list(twelve) for n in (1, 2)}
    assert state2.store.write(earlier, state2.route_ids()) == 24
    assert "/boom" in route_rows(app1)  # the table holds it: app2 registered it

    client = app1.test_client()
    page = client.get("/status")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Alpha" in html and "/boom" not in html and "boom" not in html.lower()
    summary = client.get("/status/summary.json").get_json()
    assert [c["name"] for c in summary["components"]] == ["Index", "Alpha"]
    # app2's /boom failed for a whole minute: an incident on app2's page only.
    assert summary["incidents"] == []
    feed = client.get("/status/history.atom").get_data(as_text=True)
    assert "boom" not in feed.lower()
    assert client.get(f"/status/badge/{boom_id}.svg").status_code == 404
    index_id = get_state(app1).route_ids()["/"]
    assert client.get(f"/status/badge/{index_id}.svg").status_code == 200
    with app1.app_context():
        state1 = get_state(app1)
        assert [r.rule for r in queries.route_statuses(state1)] == ["/", "/alpha"]
        assert queries.incidents(state1) == []

    # The other app, without routes=, still shows everything, /boom's incident too.
    other = app2.test_client().get("/status/summary.json").get_json()
    names = [c["name"] for c in other["components"]]
    assert "boom" in names and "Alpha" in names
    assert [i["name"] for i in other["incidents"]] == ["Failures on boom"]


# -- tables made by the previous version -----------------------------------------------------------


def _old_route_table() -> sa.Table:
    """``flask_status_route`` as versions before the rule key made it."""
    metadata = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    return sa.Table(
        "flask_status_route",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("rule", sa.String(255), unique=True, nullable=False),
        sa.Column("endpoint", sa.String(255), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("doc", sa.Text, nullable=False),
        sa.Column("hidden", sa.Boolean, nullable=False),
        sa.Column("custom_name", sa.Boolean, nullable=False),
        sa.Column("custom_doc", sa.Boolean, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )


def test_a_route_table_of_the_previous_version_is_upgraded(db_url: str, tmp_path: Path) -> None:
    engine = sa.create_engine(db_url)
    old = _old_route_table()
    with engine.begin() as conn:
        old.create(conn)
        Base.metadata.create_all(conn)  # the other tables; the route table exists
        when = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
        conn.execute(
            old.insert(),
            [
                {
                    "id": 7,
                    "rule": "/",
                    "endpoint": "index",
                    "name": "Home page",
                    "doc": "",
                    "hidden": False,
                    "custom_name": True,
                    "custom_doc": False,
                    "position": 0,
                    "created_at": when,
                    "updated_at": when,
                },
                {
                    "id": 9,
                    "rule": "/report",
                    "endpoint": "extra_1",
                    "name": "extra_1",
                    "doc": "",
                    "hidden": False,
                    "custom_name": False,
                    "custom_doc": False,
                    "position": 5,
                    "created_at": when,
                    "updated_at": when,
                },
            ],
        )
        conn.execute(
            LOG_TABLE.insert(),
            [{"route_id": 7, "minute": when, "status": 200, "outcome": 0, "count": 11}],
        )
    engine.dispose()

    app = Flask("upgraded", instance_path=str(tmp_path / "instance"))
    app.config.update(SQLALCHEMY_DATABASE_URI=db_url, FLASK_STATUS_FLUSH_INTERVAL=3600)

    def index() -> str:
        """
        # Index
        """
        return "hi"

    app.add_url_rule("/", "index", index)

    add_rules(app, ["/Report", "/report", LONG_2000])
    status = FlaskStatus(app)
    try:
        client = app.test_client()
        for rule in ["/", "/Report", "/report", LONG_2000]:
            client.get(rule)
        assert status.flush(app) == 4
        rows = route_rows(app)
        # Ids, the operator's name and the history are kept; every row has its key.
        assert rows["/"].id == 7 and rows["/"].name == "Home page"
        assert rows["/report"].id == 9
        assert all(row.rule_hash == rule_key(rule) for rule, row in rows.items())
        assert stored_by_rule(app) == {
            ("/", 200): 12,
            ("/Report", 200): 1,
            ("/report", 200): 1,
            (LONG_2000, 200): 1,
        }
        assert rows[LONG_2000].rule == LONG_2000
        # A second start finds nothing to upgrade.
        assert routes.upgrade_route_table(get_state(app).engine) is False
    finally:
        get_state(app).buffer.stop(flush=False)
        get_state(app).engine.dispose()


def test_unmatched_row_is_hidden_and_never_shown(db_url: str, make_app: MakeApp) -> None:
    app, status = make_app(db_url)
    app.test_client().get("/no/such/path")
    assert status.flush(app) == 1
    row = route_rows(app)[UNMATCHED_RULE]
    assert bool(row.hidden) is True and row.rule_hash == rule_key(UNMATCHED_RULE)
    assert stored_by_rule(app) == {(UNMATCHED_RULE, 404): 1}


def test_a_row_the_database_refuses_leaves_the_others_counted(
    db_url: str, make_app: MakeApp
) -> None:
    """The batch insert falls back to row by row: one refused row blocks no other.

    A name longer than its column (collect() cuts names at 100; this spec does not)
    is refused by PostgreSQL and by MariaDB in strict mode; SQLite stores it.
    """
    app, _status = make_app(db_url)
    table = get_state(app).store.routes
    good = routes.RouteSpec("/fine", "fine", "Fine", "", 0)
    bad = routes.RouteSpec("/too-long-name", "bad", "n" * 500, "", 1)
    ids = table.sync({"/fine": good, "/too-long-name": bad}, "test")
    assert "/fine" in ids and UNMATCHED_RULE in ids
    if db_url.startswith("sqlite"):
        assert "/too-long-name" in ids and table.refused == {}
    else:
        assert "/too-long-name" not in ids
        reason = table.refused["/too-long-name"]
        assert "too long" in reason.lower() and "INSERT" not in reason  # not the SQL


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A clean PostgreSQL or MariaDB database (``db_url`` without SQLite)."""
    # The conftest's rule for server URLs (skip, or fail when databases are
    # required), reused rather than copied.
    url = conftest._server_url(request.param)  # noqa: SLF001
    conftest.drop_status_tables(url)
    yield url
    conftest.drop_status_tables(url)


def test_a_route_row_deleted_during_the_write_is_synced_again(
    server_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    """The row goes between the write's check of the ids and its insert: the
    foreign key refuses the insert, and the flush re-reads the table and retries.

    On the two servers only: SQLite does not enforce foreign keys (by default,
    and so here), and the check before the write is what covers it.
    """
    db_url = server_url
    app, status = make_app(db_url)
    state = get_state(app)
    client = app.test_client()
    client.get("/")
    assert status.flush(app) == 1
    other = sa.create_engine(db_url)
    deleted: list[int] = []

    def delete_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith("INSERT INTO flask_status_log ") and not deleted:
            with other.begin() as side:
                result = side.execute(ROUTE_TABLE.delete().where(ROUTE_TABLE.c.rule == "/"))
                deleted.append(result.rowcount)

    for _ in range(3):
        client.get("/")
    sa.event.listen(state.engine, "before_cursor_execute", delete_first)
    try:
        with caplog.at_level(logging.WARNING, logger="flask_server_status"):
            assert status.flush(app) == 3
    finally:
        sa.event.remove(state.engine, "before_cursor_execute", delete_first)
        other.dispose()
    assert deleted == [1]
    # The first request's row went with its route (ON DELETE CASCADE); the three new
    # ones are on the route's new row.
    assert stored_by_rule(app) == {("/", 200): 3}
    assert any("route table changed (" in r.getMessage() for r in caplog.records)
    assert state.buffer.pending() == 0
