"""Counting: exact totals, classification, roll-ups, on every database backend."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NoReturn

import pytest
import sqlalchemy as sa
from flask import Flask
from helpers import MakeApp, slot, stored, stored_rollups

from flask_server_status import FlaskStatus, get_state, queries
from flask_server_status.models import UNMATCHED_RULE, Log, LogDay, LogHour, Route


def test_n_requests_give_exactly_n(db_url: str, make_app: MakeApp) -> None:
    app, status = make_app(db_url)
    client = app.test_client()
    for _ in range(37):
        assert client.get("/").status_code == 200
    assert status.flush(app) == 37
    assert stored(app) == {("/", 200): 37}
    # A second flush with nothing new writes nothing and changes nothing.
    assert status.flush(app) == 0
    for _ in range(5):
        client.get("/")
    assert status.flush(app) == 5
    assert stored(app) == {("/", 200): 42}


CODES = {
    200: "success",
    201: "success",
    302: "success",
    400: "neutral",
    401: "neutral",
    403: "neutral",
    # /code/<int:code> has a URL variable: its 404 says "no such item", not an
    # outage (tests/test_verdicts.py has the 404 rules in full).
    404: "neutral",
    500: "failure",
    502: "failure",
    503: "failure",
    504: "failure",
}


def test_classification_of_each_code(db_url: str, make_app: MakeApp) -> None:
    app, status = make_app(db_url, config={"TESTING": True})
    client = app.test_client()
    for code in CODES:
        assert client.get(f"/code/{code}").status_code == code
    with pytest.raises(RuntimeError):  # testing mode propagates the exception
        client.get("/boom")
    assert status.flush(app) == len(CODES) + 1

    state = get_state(app)
    with state.engine.connect() as conn:
        outcomes = {
            (rule, code): outcome
            for rule, code, outcome in conn.execute(
                sa.select(Route.rule, Log.status, Log.outcome).join(Route)
            )
        }
    names = {0: "success", 1: "failure", 2: "neutral"}
    for code, expected in CODES.items():
        assert names[outcomes[("/code/<int:code>", code)]] == expected, code
    assert outcomes[("/boom", 500)] == 1

    totals = stored_rollups(app, LogDay)
    assert totals["/code/<int:code>"] == (11, 3, 4, 4)
    assert totals["/boom"] == (1, 0, 1, 0)
    assert stored_rollups(app, LogHour) == totals


def test_unhandled_exception_counts_as_500_when_not_propagated(
    db_url: str, make_app: MakeApp
) -> None:
    app, status = make_app(db_url)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    assert client.get("/boom").status_code == 500
    status.flush(app)
    assert stored(app) == {("/boom", 500): 1}


def test_unmatched_paths_counted_apart_and_never_shown(db_url: str, make_app: MakeApp) -> None:
    app, status = make_app(db_url)
    client = app.test_client()
    for n in range(25):
        assert client.get(f"/no/such/path/{n}").status_code == 404
    client.get("/")
    assert status.flush(app) == 26
    assert stored(app) == {(UNMATCHED_RULE, 404): 25, ("/", 200): 1}
    with app.app_context():
        shown = {r.rule for r in queries.route_statuses(get_state(app))}
    assert UNMATCHED_RULE not in shown
    assert shown == {"/", "/code/<int:code>", "/boom", "/items/<int:item_id>"}


def test_every_method_counts(db_url: str, make_app: MakeApp) -> None:
    app, status = make_app(db_url)
    client = app.test_client()
    client.post("/code/201")
    client.put("/code/200")
    client.delete("/code/204")
    client.head("/")
    status.flush(app)
    assert stored(app) == {
        ("/code/<int:code>", 201): 1,
        ("/code/<int:code>", 200): 1,
        ("/code/<int:code>", 204): 1,
        ("/", 200): 1,
    }


def test_latency_histogram_and_max(db_url: str, make_app: MakeApp) -> None:
    app, status = make_app(db_url)
    client = app.test_client()
    for _ in range(10):
        client.get("/")
    status.flush(app)
    state = get_state(app)
    with state.engine.connect() as conn:
        row = conn.execute(sa.select(Log).join(Route).where(Route.rule == "/")).one()
        hist = [getattr(row, f"h{i}") for i in range(12)]
    assert sum(hist) == 10
    # Row.count is the column here (a property at run time), not tuple.count.
    assert row.count == 10  # type: ignore[comparison-overlap]
    assert 0 < row.latency_max <= row.latency_sum


def test_statuses_and_uptime(db_url: str, make_app: MakeApp) -> None:
    app, status = make_app(db_url)
    client = app.test_client()
    for _ in range(9):
        client.get("/code/200")
    client.get("/code/503")  # 10 % failures: partial outage by default
    for _ in range(3):
        client.get("/code/403")  # neutral, out of uptime
    status.flush(app)
    with app.app_context():
        rows = {r.rule: r for r in queries.route_statuses(get_state(app))}
    route = rows["/code/<int:code>"]
    assert route.status == queries.PARTIAL_OUTAGE
    assert route.uptime == {"24h": 90.0, "7d": 90.0, "30d": 90.0, "90d": 90.0}
    assert route.days[-1].total == 13 and route.days[-1].failure == 1
    assert route.minutes[-1].total == 13 or route.minutes[-2].total == 13
    assert len(route.days) == 90 and len(route.minutes) == 60
    assert rows["/"].status == queries.NO_DATA
    assert rows["/"].uptime["24h"] is None


def test_routes_registered_after_the_extension_are_found(db_url: str, make_app: MakeApp) -> None:
    app, status = make_app(db_url, routes_first=False)
    client = app.test_client()
    client.get("/")
    assert status.flush(app) == 1
    assert stored(app) == {("/", 200): 1}
    with app.app_context():
        names = {r.rule: r.name for r in queries.route_statuses(get_state(app))}
    assert names["/"] == "Index"
    assert names["/boom"] == "boom"  # no "# Name" line: the endpoint


def test_routes_option_limits_what_is_tracked(db_url: str, make_app: MakeApp) -> None:
    app, status = make_app(db_url, routes=["/"])
    client = app.test_client()
    client.get("/")
    client.get("/code/200")
    status.flush(app)
    assert stored(app) == {("/", 200): 1}
    with app.app_context():
        assert [r.rule for r in queries.route_statuses(get_state(app))] == ["/"]


def test_static_and_own_endpoints_are_not_tracked(
    db_url: str, make_app: MakeApp, tmp_path: Path
) -> None:
    app, _status = make_app(db_url)
    with app.app_context():
        rules = {r.rule for r in queries.route_statuses(get_state(app))}
    assert not any(rule.startswith("/static") or rule.startswith("/status") for rule in rules)


def test_operator_name_survives_code_and_restart(db_url: str, make_app: MakeApp) -> None:
    from flask_server_status import service

    app, status = make_app(db_url)
    app.test_client().get("/")
    status.flush(app)
    db = get_state(app).db
    with app.app_context():
        service.update_route(db.session, "/", {"name": "Home page", "doc": "Ours"})
        db.session.remove()
    # A restart: a new app with the same code on the same database.
    app2, _status2 = make_app(db_url)
    with app2.app_context():
        rows = {r.rule: r for r in queries.route_statuses(get_state(app2))}
    assert rows["/"].name == "Home page"
    assert rows["/"].doc == "Ours"
    assert rows["/boom"].name == "boom"


def test_deleted_route_stays_deleted(db_url: str, make_app: MakeApp) -> None:
    from flask_server_status import service

    app, status = make_app(db_url)
    client = app.test_client()
    client.get("/")
    status.flush(app)
    db = get_state(app).db
    with app.app_context():
        service.delete_route(db.session, "/")
        db.session.remove()
    client.get("/")
    status.flush(app)
    app2, _ = make_app(db_url)
    with app2.app_context():
        assert "/" not in {r.rule for r in queries.route_statuses(get_state(app2))}
        # Its history went with it; the request after the delete is all there is.
        assert stored(app2) == {("/", 200): 1}


def test_two_apps_in_one_process_do_not_mix(make_app: MakeApp, tmp_path: Path) -> None:
    app1, status1 = make_app(f"sqlite:///{tmp_path / 'one.db'}")
    app2, status2 = make_app(f"sqlite:///{tmp_path / 'two.db'}")
    for _ in range(3):
        app1.test_client().get("/")
    app2.test_client().get("/code/500")
    assert status1.flush(app1) == 3
    assert status2.flush(app2) == 1
    assert stored(app1) == {("/", 200): 3}
    assert stored(app2) == {("/code/<int:code>", 500): 1}


def test_init_app_factory_and_double_registration(sqlite_url: str, tmp_path: Path) -> None:
    status = FlaskStatus()
    apps = []
    for n in range(2):
        app = Flask(f"factory{n}", instance_path=str(tmp_path / f"i{n}"))
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / f'f{n}.db'}"

        @app.route("/")
        def index() -> str:
            return "ok"

        status.init_app(app)
        apps.append(app)
    assert apps[0].extensions["flask-server-status"] is status
    assert status.state(apps[0]) is not status.state(apps[1])
    with pytest.raises(RuntimeError, match="already been registered"):
        status.init_app(apps[0])
    for app in apps:
        status.state(app).buffer.stop(flush=False)


def test_default_database_in_instance_folder_with_warning(tmp_path: Path) -> None:
    app = Flask("nouri", instance_path=str(tmp_path / "inst"))

    @app.route("/")
    def index() -> str:
        return "ok"

    with pytest.warns(UserWarning, match="SQLALCHEMY_DATABASE_URI is not set"):
        status = FlaskStatus(app)
    app.test_client().get("/")
    assert status.flush(app) == 1
    assert (tmp_path / "inst" / "flask_status.db").exists()
    status.state(app).buffer.stop(flush=False)


def test_separate_bind_for_status_tables(tmp_path: Path, make_app: MakeApp) -> None:
    host_url = f"sqlite:///{tmp_path / 'host.db'}"
    status_url = f"sqlite:///{tmp_path / 'status-only.db'}"
    app, status = make_app(host_url, config={"SQLALCHEMY_BINDS": {"flask_status": status_url}})
    app.test_client().get("/")
    assert status.flush(app) == 1
    assert "flask_status_log" in sa.inspect(sa.create_engine(status_url)).get_table_names()
    assert "flask_status_log" not in sa.inspect(sa.create_engine(host_url)).get_table_names()


def test_buffer_is_bounded_and_counts_what_it_drops(sqlite_url: str, make_app: MakeApp) -> None:
    app, status = make_app(sqlite_url, config={"FLASK_STATUS_BUFFER_MAX_KEYS": 3})
    client = app.test_client()
    for code in (200, 201, 202, 203, 204):
        client.get(f"/code/{code}")
    client.get("/code/200")  # an existing key still counts
    buffer = status.state(app).buffer
    assert buffer.dropped == 2
    assert buffer.pending() == 4
    assert status.flush(app) == 4


def test_failed_flush_keeps_counts_for_the_next(
    sqlite_url: str, make_app: MakeApp, tmp_path: Path
) -> None:
    app, status = make_app(sqlite_url)
    client = app.test_client()
    for _ in range(4):
        client.get("/")
    state = status.state(app)
    real_write = state.store.write
    calls: list[int] = []

    def broken(counts: Any, ids: Any, in_transaction: Any = None) -> NoReturn:
        calls.append(1)
        raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))

    state.store.write = broken  # type: ignore[method-assign]
    with pytest.raises(sa.exc.OperationalError):
        status.flush(app)
    # The stub (Store.write's signature: counts, ids, the journal's marker)
    # was the write that failed, once; the retry is the next flush's.
    assert calls == [1]
    assert state.buffer.pending() == 4 and state.buffer.failures == 1
    client.get("/")
    state.store.write = real_write  # type: ignore[method-assign]
    assert status.flush(app) == 5
    assert stored(app) == {("/", 200): 5}


def test_retention_prunes_old_minute_rows_only(db_url: str, make_app: MakeApp) -> None:
    app, status = make_app(db_url, config={"FLASK_STATUS_MINUTE_RETENTION_DAYS": 2})
    state = status.state(app)
    ids = state.route_ids()
    old = int((datetime.now(timezone.utc) - timedelta(days=3)).timestamp()) // 60
    new = int(datetime.now(timezone.utc).timestamp()) // 60
    four = slot(4, 2.5, max_ms=5.0)
    state.store.write({("/", old, 200): list(four), ("/", new, 200): list(four)}, ids)
    assert state.store.prune() == 1
    assert stored(app) == {("/", 200): 4}
    assert stored_rollups(app, LogDay)["/"][0] == 8  # day roll-ups keep the history


def test_concurrent_writers_add_up(db_url: str, make_app: MakeApp) -> None:
    """Several processes' flushes to the same rows add, never overwrite."""
    import threading

    app, status = make_app(db_url)
    state = status.state(app)
    ids = state.route_ids()
    minute = int(datetime.now(timezone.utc).timestamp()) // 60
    errors = []

    def writer() -> None:
        try:
            for _ in range(10):
                three = slot(3, 1.0)
                counts = {("/", minute, 200): three, ("/boom", minute, 500): list(three)}
                state.store.write(counts, ids)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert stored(app) == {("/", 200): 120, ("/boom", 500): 120}
    assert stored_rollups(app, LogDay)["/"] == (120, 120, 0, 0)


def test_a_flusher_that_cannot_start_does_not_break_requests(
    sqlite_url: str, make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    app, status = make_app(sqlite_url)

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    client = app.test_client()
    for _ in range(3):
        assert client.get("/").status_code == 200
    monkeypatch.undo()
    assert status.flush(app) == 3
    assert stored(app) == {("/", 200): 3}
    status.state(app).buffer.stop(flush=False)  # joins nothing: the thread never ran


@pytest.mark.parametrize("raised", [SystemExit, KeyboardInterrupt])
def test_a_request_ended_by_any_exception_is_a_500_on_its_rule(
    db_url: str, make_app: MakeApp, raised: type[BaseException]
) -> None:
    """SystemExit (gunicorn aborting a worker on its timeout) and KeyboardInterrupt
    never reach Flask's error handling, yet the request failed on its rule."""
    app, status = make_app(db_url)

    def abort_worker(n: int) -> str:
        raise raised()

    app.add_url_rule("/abort/<int:n>", "abort_worker", abort_worker)
    client = app.test_client()
    for n in range(3):
        with pytest.raises(raised):
            client.get(f"/abort/{n}")
    client.get("/")
    assert status.flush(app) == 4
    assert stored(app) == {("/abort/<int:n>", 500): 3, ("/", 200): 1}


def test_dropped_is_a_plain_counter(sqlite_url: str, make_app: MakeApp) -> None:
    app, _status = make_app(sqlite_url)
    buffer = get_state(app).buffer
    assert buffer.dropped == 0
    buffer.count_dropped()
    buffer.count_dropped(41)
    assert buffer.dropped == 42


def test_a_body_that_starts_its_response_lazily_counts_its_own_status(
    db_url: str, make_app: MakeApp
) -> None:
    """A WSGI layer inside the capture may call ``start_response`` only when its
    body is iterated, after the capture has queued the event: the drain reads
    the status then, and the request counts on its rule with its real code."""
    app, status = make_app(db_url)
    capture: Any = app.wsgi_app
    inner = capture.wsgi_app

    def lazy(environ: dict[str, Any], start_response: Any) -> Any:
        def body() -> Any:
            yield from inner(environ, start_response)

        return body()

    capture.wsgi_app = lazy
    client = app.test_client()
    assert client.get("/code/201").status_code == 201
    assert client.get("/code/404").status_code == 404
    assert status.flush(app) == 2
    assert stored(app) == {("/code/<int:code>", 201): 1, ("/code/<int:code>", 404): 1}


def test_queued_events_hold_nothing_the_collector_tracks(
    sqlite_url: str, make_app: MakeApp
) -> None:
    """Issue 15: an event waiting for the drain must not be promoted to the old
    generation (whose growth triggers full collections), so it holds only
    strings, floats and None, and the collector stops tracking it."""
    import gc

    app, status = make_app(sqlite_url)
    rule = next(r for r in app.url_map.iter_rules() if r.rule == "/code/<int:code>")
    buffer = get_state(app).buffer
    buffer.record([("200 OK", rule)], 1.0, 1.5)
    event = buffer._events[-1]  # noqa: SLF001 - the queued event itself is what is checked
    assert event == ("200 OK", "/code/<int:code>", 1.0, 1.5)
    gc.collect()
    assert not gc.is_tracked(event)
    assert status.flush(app) == 1
    assert stored(app) == {("/code/<int:code>", 200): 1}
