"""A route's own failure codes, latency threshold and SLO target.

Set in three places (the configure API, the admin's edit form, ``flask status
set``), checked by one validation (:class:`~flask_server_status.forms.RouteForm`
through :mod:`~flask_server_status.service`), stored in the route row, and used
where the verdicts are made: failure codes when counts are written (the
store classifies), threshold and target when they are read (both readers).
Every test runs on SQLite, PostgreSQL and MariaDB; counts are written at
stamped minutes and read with the page's clock stood at a chosen minute.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_admin import Admin
from helpers import API, AUTH, CONFIGURE, MakeApp, must, route_row, slot, write_counts

from flask_server_status import get_state, queries, routes
from flask_server_status.config import FAILURE, NEUTRAL, SUCCESS
from flask_server_status.models import ROUTE_TABLE, Log

MINUTE = timedelta(minutes=1)
CODE = "/code/<int:code>"
ADMIN_ROUTES = "/admin/flask-status/routes/"


def base_minute() -> datetime:
    """Half an hour ago: minute rows well within retention, a clock we can move."""
    return queries.floor_minute(datetime.now(timezone.utc)) - timedelta(minutes=30)


def write(app: Flask, traffic: dict[tuple[str, datetime, int], int], ms: float = 20.0) -> None:
    write_counts(app, {key: slot(count, ms) for key, count in traffic.items()})


def read(app: Flask, now: datetime) -> tuple[dict[str, Any], dict[str, queries.RouteStatus]]:
    """summary.json at ``now`` and the statuses by rule; both readers must agree."""
    state = get_state(app)
    state.clock = lambda: now
    document = app.test_client().get("/status/summary.json").get_json()
    snapshot = state.reader.snapshot(now)
    assert snapshot.routes == queries.route_statuses(state, now=now)
    return document, {r.rule: r for r in snapshot.routes}


def component(document: dict[str, Any], rule: str) -> dict[str, Any]:
    return next(c for c in document["components"] if c["rule"] == rule)


def put(client: FlaskClient, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = client.put(CONFIGURE, headers=AUTH, json=body)
    return response.status_code, must(response.get_json())


# -- failure codes -----------------------------------------------------------------------------


def test_429_set_as_failure_through_the_api_fails_from_then_on(
    db_url: str, make_app: MakeApp
) -> None:
    app, status = make_app(db_url, config=API)
    client = app.test_client()
    # Before: 429 is the client's fault (neutral), as the global set says.
    for n in range(20):
        assert client.get(f"/code/429?n={n}").status_code == 429
    assert status.flush(app) == 20

    code, body = put(client, {"rule": CODE, "failure_codes": [429, 404, 429.0]})
    assert code == 200, body
    assert body["route"]["failure_codes"] == [404, 429]  # sorted, once each
    listed = must(client.get(CONFIGURE, headers=AUTH).get_json())["routes"]
    by_rule = {r["rule"]: r for r in listed}
    assert by_rule[CODE]["failure_codes"] == [404, 429]
    assert by_rule["/"]["failure_codes"] is None  # other routes keep the global set
    assert (by_rule[CODE]["latency_threshold_ms"], by_rule[CODE]["slo_target"]) == (None, None)

    # After: the next 20 429s are failures. The 20 written before keep the
    # classification they had: counts are classified when written.
    t0 = base_minute()
    write(app, {(CODE, t0, 429): 20})
    assert _outcome_counts(app, CODE) == {NEUTRAL: 20, FAILURE: 20}
    document, by = read(app, t0)
    assert (by[CODE].window.failure, by[CODE].window.classified) == (20, 20)
    assert by[CODE].status == "major_outage"
    assert (by[CODE].failure_codes, by["/"].failure_codes) == ([404, 429], None)
    assert component(document, CODE)["status"] == "major_outage"
    # Two such minutes make an incident, as for any failure.
    write(app, {(CODE, t0 + MINUTE, 429): 20})
    state = get_state(app)
    [incident] = queries.incidents(state, now=t0 + MINUTE)
    assert (incident.rule, incident.start, incident.failures) == (CODE, t0, 40)

    # null goes back to the global set: 429 is neutral again from the next write.
    code, body = put(client, {"rule": CODE, "failure_codes": None})
    assert code == 200 and body["route"]["failure_codes"] is None
    write(app, {(CODE, t0 + 2 * MINUTE, 429): 5})
    assert _outcome_counts(app, CODE) == {NEUTRAL: 25, FAILURE: 40}


def _outcome_counts(app: Flask, rule: str) -> dict[int, int]:
    state = get_state(app)
    rid = state.route_ids()[rule]
    query = (
        sa.select(Log.outcome, sa.func.sum(Log.count))
        .where(Log.route_id == rid)
        .group_by(Log.outcome)
    )
    with state.engine.connect() as conn:
        return {int(o): int(n) for o, n in conn.execute(query)}


def test_an_empty_list_makes_404_neutral_on_that_route_only(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url, config=API)
    code, body = put(app.test_client(), {"rule": "/", "failure_codes": []})
    assert code == 200 and body["route"]["failure_codes"] == []
    t0 = base_minute()
    write(app, {("/", t0, 404): 12, ("/boom", t0, 404): 12, ("/", t0, 503): 1})
    assert _outcome_counts(app, "/") == {NEUTRAL: 12, FAILURE: 1}  # every 5xx still fails
    assert _outcome_counts(app, "/boom") == {FAILURE: 12}


# -- latency and SLO, read per route ------------------------------------------------------------


def test_a_routes_own_latency_threshold_makes_it_degraded(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url, config=API)  # no global threshold
    t0 = base_minute()
    write(app, {("/", t0, 200): 30, ("/boom", t0, 200): 30}, ms=800.0)
    _, by = read(app, t0)
    assert by["/"].status == "operational" and not by["/"].latency_breach
    assert by["/"].latency["threshold_ms"] is None

    code, body = put(app.test_client(), {"rule": "/", "latency_threshold_ms": 500})
    assert code == 200 and body["route"]["latency_threshold_ms"] == 500
    document, by = read(app, t0)
    assert by["/"].latency_breach and by["/"].status == "degraded_performance"
    latency = component(document, "/")["latency"]
    assert latency["threshold_ms"] == 500 and latency["p95_ms"] > 500
    assert component(document, "/")["status"] == "degraded_performance"
    assert document["status"]["indicator"] == "minor"
    # The other route, as slow, has no threshold of its own and none globally.
    assert by["/boom"].status == "operational" and not by["/boom"].latency_breach

    # A route's own threshold replaces a global one, both ways.
    other, _ = make_app(db_url, config={**API, "FLASK_STATUS_LATENCY_THRESHOLD_MS": 100})
    put(other.test_client(), {"rule": "/", "latency_threshold_ms": 1000})
    _, by = read(other, t0)
    assert by["/"].status == "operational" and by["/"].latency_threshold_ms == 1000
    assert by["/boom"].status == "degraded_performance" and by["/boom"].latency_threshold_ms == 100


def test_a_routes_own_slo_in_summary_json(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url)
    t0 = base_minute()
    # 200 requests, 1 failure; 100 of them yesterday (out of the 1 h and 6 h windows).
    write(app, {("/", t0 - timedelta(days=1), 200): 100, ("/", t0, 200): 99, ("/", t0, 500): 1})
    code, out = cli(app, "set", "/", "--slo", "99")
    assert code == 0, out
    assert out.strip() == "/: failure codes global; latency threshold global; SLO target 99 %."
    document, _ = read(app, t0)
    assert component(document, "/")["slo"] == {
        "target": 99, "window_days": 30, "good": 199, "bad": 1,
        "budget_remaining": 0.5, "burn_rate_1h": 1.0, "burn_rate_6h": 1.0,
    }  # fmt: skip
    assert "slo" not in component(document, "/boom")  # no objective there, none globally
    # A tighter objective on the same counts: 99.9 % leaves 1 - 1/(0.001 x 200) = -4.
    cli(app, "set", "/", "--slo", "99.9")
    document, _ = read(app, t0)
    slo = component(document, "/")["slo"]
    assert slo["target"] == 99.9 and slo["budget_remaining"] == pytest.approx(-4.0)
    assert slo["burn_rate_1h"] == pytest.approx(10.0)
    # `none` goes back to the global setting: off here.
    assert cli(app, "set", "/", "--slo", "none")[0] == 0
    document, _ = read(app, t0)
    assert "slo" not in component(document, "/")


# -- one validation, three places ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"failure_codes": "429"}, 400, "failure_codes must be a list of status codes"),
        ({"failure_codes": [429, "500"]}, 400, "failure_codes must be a list of status codes"),
        ({"failure_codes": [True]}, 400, "failure_codes must be a list of status codes"),
        ({"failure_codes": [429.5]}, 400, "failure_codes must be a list of status codes"),
        (
            {"failure_codes": [200, 429]},
            422,
            "Failure codes must be between 400 and 599 (not 200).",
        ),
        ({"failure_codes": [600]}, 422, "Failure codes must be between 400 and 599 (not 600)."),
        ({"latency_threshold_ms": "500"}, 400, "latency_threshold_ms must be a number"),
        ({"latency_threshold_ms": False}, 400, "latency_threshold_ms must be a number"),
        ({"latency_threshold_ms": 0}, 422, "The latency threshold must be more than 0"),
        ({"latency_threshold_ms": 600_001}, 422, "The latency threshold must be more than 0"),
        ({"slo_target": [99]}, 400, "slo_target must be a percentage"),
        ({"slo_target": 100}, 422, "The SLO target must be a percentage between 0 and 100"),
        ({"slo_target": 0}, 422, "The SLO target must be a percentage between 0 and 100"),
        ({"slo_target": -1.5}, 422, "The SLO target must be a percentage between 0 and 100"),
    ],
)
def test_api_refuses_bad_overrides_and_changes_nothing(
    sqlite_url: str, make_app: MakeApp, body: dict[str, Any], status: int, message: str
) -> None:
    app, _ = make_app(sqlite_url, config=API)
    client = app.test_client()
    get_state(app).route_ids()
    before = route_row(app, CODE)
    # Valid fields given along are not applied either: never a partial change.
    code, answer = put(client, {"rule": CODE, "name": "Renamed", **body})
    assert code == status
    assert answer["error"].startswith(message), answer
    field = next(iter(body))
    assert field in answer["errors"]
    assert route_row(app, CODE) == before


def test_api_refuses_nan_sent_as_json(sqlite_url: str, make_app: MakeApp) -> None:
    # Python's JSON reader takes NaN and Infinity; no comparison lets them through.
    app, _ = make_app(sqlite_url, config=API)
    for raw in (
        '{"rule": "/", "slo_target": NaN}',
        '{"rule": "/", "latency_threshold_ms": Infinity}',
    ):
        response = app.test_client().put(
            CONFIGURE, headers={**AUTH, "Content-Type": "application/json"}, data=raw
        )
        assert response.status_code == 422, response.get_json()
    assert route_row(app, "/").slo_target is None
    assert route_row(app, "/").latency_threshold_ms is None


def cli(app: Flask, *args: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["status", *args])
    return result.exit_code, result.output


def test_cli_sets_and_clears_with_the_same_rules(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url)
    code, out = cli(
        app, "set", CODE, "--failure-codes", "404, 429", "--latency-ms", "500", "--slo", "99.9"
    )
    assert code == 0, out
    assert out.strip() == (
        f"{CODE}: failure codes 404, 429; latency threshold 500 ms; SLO target 99.9 %."
    )
    row = route_row(app, CODE)
    assert (row.failure_codes, row.latency_threshold_ms, row.slo_target) == ([404, 429], 500, 99.9)
    # The service's bounds, the service's message; nothing changed.
    code, out = cli(app, "set", CODE, "--latency-ms", "200", "--slo", "100")
    assert code == 1 and "The SLO target must be a percentage between 0 and 100" in out
    assert route_row(app, CODE).latency_threshold_ms == 500
    code, out = cli(app, "set", CODE, "--failure-codes", "404,abc")
    assert code == 2 and "'abc' is not a status code" in out
    code, out = cli(app, "set", CODE, "--failure-codes", "302")
    assert code == 1 and "Failure codes must be between 400 and 599 (not 302)." in out
    code, out = cli(app, "set", "/nope", "--slo", "99")
    assert code == 1 and "No route with rule '/nope'." in out
    code, out = cli(app, "set", CODE)
    assert code == 2 and "Give --failure-codes, --latency-ms and/or --slo." in out
    # `none` clears; `5xx` means no 4xx fails.
    code, out = cli(app, "set", CODE, "--failure-codes", "5xx", "--latency-ms", "none")
    assert code == 0 and "failure codes 5xx only; latency threshold global" in out
    row = route_row(app, CODE)
    assert (row.failure_codes, row.latency_threshold_ms, row.slo_target) == ([], None, 99.9)


def csrf_token(client: FlaskClient, url: str) -> str:
    html = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def test_admin_form_sets_and_refuses_with_the_same_rules(db_url: str, make_app: MakeApp) -> None:
    admin = Admin()
    app, _ = make_app(db_url, admin=admin)
    admin.init_app(app)
    client = app.test_client()
    rid = get_state(app).route_ids()[CODE]
    url = f"{ADMIN_ROUTES}edit/?id={rid}"
    form = {"name": "Any code", "doc": "Answers with the status code in the path."}

    html = client.get(url).get_data(as_text=True)
    for label in ("Failure codes", "Latency threshold (ms)", "SLO target (%)"):
        assert label in html
    response = client.post(
        url,
        data={
            **form,
            "csrf_token": csrf_token(client, url),
            "failure_codes": "429, 404",
            "latency_threshold_ms": "750",
            "slo_target": "99.5",
        },
    )
    assert response.status_code == 302
    row = route_row(app, CODE)
    assert (row.failure_codes, row.latency_threshold_ms, row.slo_target) == ([404, 429], 750, 99.5)
    assert not row.custom_name  # an untouched name is not pinned
    # The form shows them back as typed.
    html = client.get(url).get_data(as_text=True)
    assert 'value="404, 429"' in html and 'value="750"' in html and 'value="99.5"' in html

    # Refused: the field says why, nothing changes (the valid slo_target neither).
    for field, typed, message in (
        ("failure_codes", "404, 200", "Failure codes must be between 400 and 599 (not 200)."),
        ("failure_codes", "40x", "&#39;40x&#39; is not a status code"),
        ("latency_threshold_ms", "-3", "The latency threshold must be more than 0"),
        ("slo_target", "abc", "&#39;abc&#39; is not a number."),
    ):
        data = {**form, "csrf_token": csrf_token(client, url), "slo_target": "90", field: typed}
        response = client.post(url, data=data)
        assert response.status_code == 200
        assert message in response.get_data(as_text=True), (field, typed)
        row = route_row(app, CODE)
        assert (row.failure_codes, row.latency_threshold_ms, row.slo_target) == (
            [404, 429], 750, 99.5,
        )  # fmt: skip

    # Blank fields go back to the global settings.
    data = {**form, "csrf_token": csrf_token(client, url)}
    data.update(failure_codes="", latency_threshold_ms=" ", slo_target="none")
    assert client.post(url, data=data).status_code == 302
    row = route_row(app, CODE)
    assert (row.failure_codes, row.latency_threshold_ms, row.slo_target) == (None, None, None)


# -- an older route table gets the columns -------------------------------------------------------


def test_an_older_route_table_gets_the_override_columns(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url, config=API)
    state = get_state(app)
    state.route_ids()
    engine = state.engine
    quote = engine.dialect.identifier_preparer.quote
    for column in ("failure_codes", "latency_threshold_ms", "slo_target"):
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {quote(ROUTE_TABLE.name)} DROP COLUMN {column}")
    assert routes.add_missing_columns(engine) == [
        "failure_codes", "latency_threshold_ms", "slo_target",
    ]  # fmt: skip
    assert routes.add_missing_columns(engine) == []  # once only
    # Every route keeps the global settings (NULL), and the override works.
    assert route_row(app, CODE).failure_codes is None
    code, body = put(app.test_client(), {"rule": CODE, "failure_codes": [429]})
    assert code == 200 and body["route"]["failure_codes"] == [429]
    write(app, {(CODE, base_minute(), 429): 3})
    assert _outcome_counts(app, CODE) == {FAILURE: 3}
    assert SUCCESS not in _outcome_counts(app, CODE)
