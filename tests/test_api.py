"""The configure API: the original README's calls, every error, auth, config, concurrency.

Database tests take ``db_url`` and run on SQLite, PostgreSQL and MariaDB.
Calls go through ``requests`` to a real server on loopback, as a script's would.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from helpers import (
    API,
    AUTH,
    CONFIGURE,
    SECRET,
    LiveServerFactory,
    MakeApp,
    must,
    slot,
    write_counts,
)

from flask_server_status import get_state, queries, service
from flask_server_status.api import MAX_BODY_BYTES, REALM, openapi_document
from flask_server_status.config import ConfigError
from flask_server_status.forms import DOC_MAX, NAME_MAX, validate_changes
from flask_server_status.headers import PAGE_CSP
from flask_server_status.models import Log, LogDay, LogHour, Route

CURRENT = {"name": "Index", "doc": "", "hidden": False}


# -- helpers --------------------------------------------------------------------------


def routes_table(app: Flask) -> list[tuple[Any, ...]]:
    """Every column of every route row, by id: the thing a refused call must not change."""
    state = get_state(app)
    with state.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(Route.__table__).order_by(Route.id))]


def history_counts(app: Flask) -> dict[str, int]:
    """Rows and requests stored per table."""
    state = get_state(app)
    with state.engine.connect() as conn:
        return {
            "log_rows": conn.execute(sa.select(sa.func.count()).select_from(Log)).scalar_one(),
            "log_requests": int(
                conn.execute(sa.select(sa.func.coalesce(sa.func.sum(Log.count), 0))).scalar_one()
            ),
            "hour_rows": conn.execute(sa.select(sa.func.count()).select_from(LogHour)).scalar_one(),
            "day_rows": conn.execute(sa.select(sa.func.count()).select_from(LogDay)).scalar_one(),
        }


def route_history(app: Flask, rule: str) -> int:
    """Requests stored in the minute rows of ``rule``."""
    state = get_state(app)
    with state.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(Log.count), 0))
                .join(Route, Route.id == Log.route_id)
                .where(Route.rule == rule)
            ).scalar_one()
        )


def write_history(app: Flask, rule: str, minutes_ago: list[int], count: int = 10) -> None:
    """Synthetic traffic at chosen minutes, through the normal write path."""
    now_minute = int(time.time() // 60)
    write_counts(
        app,
        {
            (rule, now_minute - ago, 200): slot(count, 20.0, max_ms=30.0, bucket=3)
            for ago in minutes_ago
        },
    )


def status_of(app: Flask, rule: str, include_hidden: bool = False) -> queries.RouteStatus | None:
    with app.app_context():
        found = [
            s
            for s in queries.route_statuses(get_state(app), include_hidden=include_hidden)
            if s.rule == rule
        ]
    return found[0] if found else None


def summary_component(server_url: str, rule: str) -> dict[str, Any] | None:
    body = requests.get(f"{server_url}/status/summary.json", timeout=10).json()
    found = [c for c in body["components"] if c["rule"] == rule]
    return found[0] if found else None


# -- the original README's two calls --------------------------------------------------


def test_original_readme_calls_on_a_live_server(
    db_url: str, make_app: MakeApp, live_server: LiveServerFactory
) -> None:
    app, status = make_app(db_url, config=API)
    write_history(app, "/", [0, 1, 2, 60 * 24 * 3])  # now, recent minutes, three days ago
    server = live_server(app)
    before = status_of(app, "/")
    assert before is not None and before.name == "Index" and before.doc == "The landing page."
    assert before.days[-1].total == 30 and before.days[-4].total == 10

    r = requests.put(
        f"{server.url}/flask-status/configure",
        headers={"Authorization": "Bearer tSx0L5exSjiPqqXs"},
        json={"rule": "/", "name": "Hello World!", "doc": ""},
        timeout=10,
    )
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert body["message"] == "Route modified"
    assert {k: body["route"][k] for k in ("rule", "name", "doc", "hidden", "endpoint")} == {
        "rule": "/",
        "name": "Hello World!",
        "doc": "",
        "hidden": False,
        "endpoint": "index",
    }
    after = status_of(app, "/")
    assert after is not None and (after.name, after.doc) == ("Hello World!", "")
    assert after.days[-1].total == 30  # renaming keeps the history
    component = summary_component(server.url, "/")
    assert component is not None
    assert component["name"] == "Hello World!" and component["description"] == ""
    page = requests.get(f"{server.url}/status", timeout=10).text
    assert "Hello World!" in page

    r = requests.delete(
        f"{server.url}/flask-status/configure",
        headers={"Authorization": "Bearer tSx0L5exSjiPqqXs"},
        json={"rule": "/"},
        timeout=10,
    )
    assert (r.status_code, r.json()) == (200, {"message": "Route deleted"})
    assert status_of(app, "/") is None  # off the page
    gone = status_of(app, "/", include_hidden=True)
    assert gone is not None and gone.hidden
    assert all(day.total == 0 for day in gone.days)  # and its history with it
    assert route_history(app, "/") == 0
    assert summary_component(server.url, "/") is None
    assert "Hello World!" not in requests.get(f"{server.url}/status", timeout=10).text

    # New traffic does not bring it back...
    for _ in range(5):
        assert requests.get(f"{server.url}/", timeout=10).status_code == 200
    status.flush(app)
    assert status_of(app, "/") is None
    assert summary_component(server.url, "/") is None

    # ...nor does a restart (a new app on the same database).
    app2, _ = make_app(db_url, config=API)
    assert status_of(app2, "/") is None
    hidden = status_of(app2, "/", include_hidden=True)
    assert hidden is not None and hidden.name == "Hello World!"


def test_deleted_route_shows_again_without_its_old_history(db_url: str, make_app: MakeApp) -> None:
    app, status = make_app(db_url, config=API)
    write_history(app, "/", [0, 5])
    client = app.test_client()
    client.get("/")  # buffered, not yet flushed: the delete must purge it too
    assert client.delete(CONFIGURE, headers=AUTH, json={"rule": "/"}).status_code == 200
    status.flush(app)
    assert route_history(app, "/") == 0
    r = client.put(CONFIGURE, headers=AUTH, json={"rule": "/", "hidden": False})
    assert r.status_code == 200 and must(r.json)["route"]["hidden"] is False
    shown = status_of(app, "/")
    assert shown is not None and sum(day.total for day in shown.days) == 0


def test_put_changes_only_the_fields_given(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url, config=API)
    client = app.test_client()
    r = client.put(
        CONFIGURE, headers=AUTH, json={"rule": "/items/<int:item_id>", "doc": "  Items.  "}
    )
    assert r.status_code == 200
    route = must(r.json)["route"]
    assert (route["name"], route["doc"]) == ("item", "Items.")
    r = client.put(CONFIGURE, headers=AUTH, json={"rule": "/items/<int:item_id>", "hidden": True})
    route = must(r.json)["route"]
    assert (route["name"], route["doc"], route["hidden"]) == (
        "item",
        "Items.",
        True,
    )
    assert status_of(app, "/items/<int:item_id>") is None
    # Boundaries that are accepted: 100 characters, 4-byte characters, markup kept as text.
    for name in ("x" * 100, "Stat\U0001f4c8 ✓", "<b>bold</b> & 'quoted'"):
        r = client.put(CONFIGURE, headers=AUTH, json={"rule": "/", "name": name})
        assert r.status_code == 200, r.json
        assert must(r.json)["route"]["name"] == name
        assert status_of(app, "/").name == name  # type: ignore[union-attr]
    r = client.put(CONFIGURE, headers=AUTH, json={"rule": "/", "doc": "line one\n\tline two"})
    assert r.status_code == 200 and must(r.json)["route"]["doc"] == "line one\n\tline two"


def test_a_name_set_by_the_api_survives_a_restart(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url, config=API)
    app.test_client().put(CONFIGURE, headers=AUTH, json={"rule": "/", "name": "Front door"})
    app2, _ = make_app(db_url, config=API)  # its docstring still says "# Index"
    assert status_of(app2, "/").name == "Front door"  # type: ignore[union-attr]


def test_get_lists_every_route_hidden_ones_too(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url, config=API)
    client = app.test_client()
    client.delete(CONFIGURE, headers=AUTH, json={"rule": "/boom"})
    r = client.get(CONFIGURE, headers=AUTH)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    routes = must(r.json)["routes"]
    assert [(x["rule"], x["name"], x["hidden"]) for x in routes] == [
        ("/", "Index", False),
        ("/code/<int:code>", "Any code", False),
        ("/boom", "boom", True),
        ("/items/<int:item_id>", "item", False),
    ]
    assert set(routes[0]) == {
        "id",
        "rule",
        "endpoint",
        "name",
        "doc",
        "hidden",
        "position",
        "updated_at",
        "failure_codes",
        "latency_threshold_ms",
        "slo_target",
    }
    assert routes[0]["updated_at"].endswith("Z")
    assert client.head(CONFIGURE, headers=AUTH).status_code == 200


# -- every refused call, each with its status and body, nothing changed ---------------

NOT_OBJECT = 'The body must be a JSON object, e.g. {"rule": "/"}.'
MISSING_AUTH = "Authentication required: send 'Authorization: Bearer <API_SECRET>'."
UNKNOWN = "Unknown fields: {}; only " + ", ".join(service.EDITABLE) + "."
INVISIBLE = "{} cannot contain invisible or text-direction characters (found U+{})."

#: (id, method, headers, body as JSON or raw bytes, status, exact JSON body)
REFUSED: list[tuple[str, str, dict[str, str], Any, int, dict[str, Any]]] = [
    ("no token", "PUT", {}, {"rule": "/", "name": "X"}, 401, {"error": MISSING_AUTH}),
    ("no token GET", "GET", {}, None, 401, {"error": MISSING_AUTH}),
    ("no token DELETE", "DELETE", {}, {"rule": "/"}, 401, {"error": MISSING_AUTH}),
    (
        "wrong token",
        "PUT",
        {"Authorization": "Bearer nope"},
        {"rule": "/", "name": "X"},
        401,
        {"error": "Invalid token."},
    ),
    (
        "secret plus a char",
        "DELETE",
        {"Authorization": f"Bearer {SECRET}x"},
        {"rule": "/"},
        401,
        {"error": "Invalid token."},
    ),
    (
        "secret prefix",
        "DELETE",
        {"Authorization": f"Bearer {SECRET[:-1]}"},
        {"rule": "/"},
        401,
        {"error": "Invalid token."},
    ),
    (
        "empty bearer",
        "PUT",
        {"Authorization": "Bearer "},
        {"rule": "/", "name": "X"},
        401,
        {"error": MISSING_AUTH},
    ),
    (
        "secret without scheme",
        "PUT",
        {"Authorization": SECRET},
        {"rule": "/", "name": "X"},
        401,
        {"error": MISSING_AUTH},
    ),
    (
        "basic scheme",
        "PUT",
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"rule": "/", "name": "X"},
        401,
        {"error": MISSING_AUTH},
    ),
    (
        "token scheme",
        "PUT",
        {"Authorization": f"Token {SECRET}"},
        {"rule": "/", "name": "X"},
        401,
        {"error": MISSING_AUTH},
    ),
    (
        "not json",
        "PUT",
        AUTH,
        b'{"rule": "/", "name": ',
        400,
        {"error": "The body is not valid JSON."},
    ),
    (
        "not utf-8",
        "PUT",
        AUTH,
        b'{"rule": "/", "name": "\xff"}',
        400,
        {"error": "The body is not valid JSON."},
    ),
    ("deeply nested", "PUT", AUTH, b"[" * 30000, 400, {"error": "The body is not valid JSON."}),
    ("empty body", "PUT", AUTH, b"", 400, {"error": NOT_OBJECT}),
    ("json null", "PUT", AUTH, b"null", 400, {"error": NOT_OBJECT}),
    ("json array", "PUT", AUTH, [{"rule": "/", "name": "X"}], 400, {"error": NOT_OBJECT}),
    ("json string", "DELETE", AUTH, "/", 400, {"error": NOT_OBJECT}),
    ("json number", "DELETE", AUTH, 1, 400, {"error": NOT_OBJECT}),
    (
        "missing rule",
        "PUT",
        AUTH,
        {"name": "X"},
        400,
        {"error": "Missing field: rule.", "errors": {"rule": ["This field is required."]}},
    ),
    (
        "missing rule DELETE",
        "DELETE",
        AUTH,
        {},
        400,
        {"error": "Missing field: rule.", "errors": {"rule": ["This field is required."]}},
    ),
    (
        "rule not a string",
        "PUT",
        AUTH,
        {"rule": 1, "name": "X"},
        400,
        {"error": "rule must be a string.", "errors": {"rule": ["rule must be a string."]}},
    ),
    (
        "rule null",
        "DELETE",
        AUTH,
        {"rule": None},
        400,
        {"error": "rule must be a string.", "errors": {"rule": ["rule must be a string."]}},
    ),
    (
        "unknown field id",
        "PUT",
        AUTH,
        {"rule": "/", "id": 99},
        400,
        {"error": UNKNOWN.format("id")},
    ),
    (
        "unknown beside valid",
        "PUT",
        AUTH,
        {"rule": "/", "name": "X", "endpoint": "evil"},
        400,
        {"error": UNKNOWN.format("endpoint")},
    ),
    (
        "unknown fields listed",
        "PUT",
        AUTH,
        {"rule": "/", "custom_name": False, "position": 0},
        400,
        {"error": UNKNOWN.format("custom_name, position")},
    ),
    (
        "DELETE extra field",
        "DELETE",
        AUTH,
        {"rule": "/", "name": "X"},
        400,
        {"error": "Unknown fields: name; DELETE takes only rule."},
    ),
    (
        "nothing to change",
        "PUT",
        AUTH,
        {"rule": "/"},
        400,
        {"error": "Nothing to change: give any of " + ", ".join(service.EDITABLE) + "."},
    ),
    (
        "name a number",
        "PUT",
        AUTH,
        {"rule": "/", "name": 123},
        400,
        {"error": "name must be a string.", "errors": {"name": ["name must be a string."]}},
    ),
    (
        "name null",
        "PUT",
        AUTH,
        {"rule": "/", "name": None},
        400,
        {"error": "name must be a string.", "errors": {"name": ["name must be a string."]}},
    ),
    (
        "name a list",
        "PUT",
        AUTH,
        {"rule": "/", "name": ["X"]},
        400,
        {"error": "name must be a string.", "errors": {"name": ["name must be a string."]}},
    ),
    (
        "doc null",
        "PUT",
        AUTH,
        {"rule": "/", "doc": None},
        400,
        {"error": "doc must be a string.", "errors": {"doc": ["doc must be a string."]}},
    ),
    (
        "hidden a string",
        "PUT",
        AUTH,
        {"rule": "/", "hidden": "true"},
        400,
        {
            "error": "hidden must be true or false.",
            "errors": {"hidden": ["hidden must be true or false."]},
        },
    ),
    (
        "hidden 1",
        "PUT",
        AUTH,
        {"rule": "/", "hidden": 1},
        400,
        {
            "error": "hidden must be true or false.",
            "errors": {"hidden": ["hidden must be true or false."]},
        },
    ),
    (
        "two wrong types",
        "PUT",
        AUTH,
        {"rule": "/", "name": 1, "hidden": "no"},
        400,
        {
            "error": "name must be a string. hidden must be true or false.",
            "errors": {
                "name": ["name must be a string."],
                "hidden": ["hidden must be true or false."],
            },
        },
    ),
    (
        "unknown rule",
        "PUT",
        AUTH,
        {"rule": "/nope", "name": "X"},
        404,
        {"error": "No route with rule '/nope'."},
    ),
    (
        "unknown rule DELETE",
        "DELETE",
        AUTH,
        {"rule": "/nope"},
        404,
        {"error": "No route with rule '/nope'."},
    ),
    (
        "rule in another case",
        "PUT",
        AUTH,
        {"rule": "/BOOM", "name": "X"},
        404,
        {"error": "No route with rule '/BOOM'."},
    ),
    (
        "rule with a trailing space",
        "DELETE",
        AUTH,
        {"rule": "/boom "},
        404,
        {"error": "No route with rule '/boom '."},
    ),
    (
        "rule with NUL",
        "DELETE",
        AUTH,
        {"rule": "/\u0000"},
        404,
        {"error": "No route with rule '/\\x00'."},
    ),
    (
        "the unmatched row",
        "DELETE",
        AUTH,
        {"rule": "<unmatched>"},
        404,
        {"error": "No route with rule '<unmatched>'."},
    ),
    (
        "empty name",
        "PUT",
        AUTH,
        {"rule": "/", "name": ""},
        422,
        {"error": "The name cannot be empty.", "errors": {"name": ["The name cannot be empty."]}},
    ),
    (
        "blank name",
        "PUT",
        AUTH,
        {"rule": "/", "name": " \t "},
        422,
        {"error": "The name cannot be empty.", "errors": {"name": ["The name cannot be empty."]}},
    ),
    (
        "name too long",
        "PUT",
        AUTH,
        {"rule": "/", "name": "x" * 101},
        422,
        {
            "error": "The name can be at most 100 characters.",
            "errors": {"name": ["The name can be at most 100 characters."]},
        },
    ),
    (
        "name with a newline",
        "PUT",
        AUTH,
        {"rule": "/", "name": "two\nlines"},
        422,
        {
            "error": "The name cannot contain control characters.",
            "errors": {"name": ["The name cannot contain control characters."]},
        },
    ),
    (
        "name with NUL",
        "PUT",
        AUTH,
        {"rule": "/", "name": "a\u0000b"},
        422,
        {
            "error": "The name cannot contain control characters.",
            "errors": {"name": ["The name cannot contain control characters."]},
        },
    ),
    (
        "name with a lone surrogate",
        "PUT",
        AUTH,
        b'{"rule": "/", "name": "a\\ud800b"}',
        422,
        {
            "error": "The name cannot contain control characters.",
            "errors": {"name": ["The name cannot contain control characters."]},
        },
    ),
    (
        "doc too long beside a valid name",
        "PUT",
        AUTH,
        {"rule": "/", "name": "Fine", "doc": "d" * 2001},
        422,
        {
            "error": "The description can be at most 2000 characters.",
            "errors": {"doc": ["The description can be at most 2000 characters."]},
        },
    ),
    (
        "doc with NUL",
        "PUT",
        AUTH,
        {"rule": "/", "doc": "a\u0000"},
        422,
        {
            "error": "The description cannot contain control characters.",
            "errors": {"doc": ["The description cannot contain control characters."]},
        },
    ),
    (
        "name with a right-to-left override",
        "PUT",
        AUTH,
        {"rule": "/", "name": "Pay\u202emoc.live"},
        422,
        {
            "error": INVISIBLE.format("The name", "202E"),
            "errors": {"name": [INVISIBLE.format("The name", "202E")]},
        },
    ),
    (
        "name with a zero-width joiner",
        "PUT",
        AUTH,
        {"rule": "/", "name": "In\u200ddex", "doc": "fine"},
        422,
        {
            "error": INVISIBLE.format("The name", "200D"),
            "errors": {"name": [INVISIBLE.format("The name", "200D")]},
        },
    ),
    (
        "doc with a byte-order mark",
        "PUT",
        AUTH,
        {"rule": "/", "doc": "\ufeffHello"},
        422,
        {
            "error": INVISIBLE.format("The description", "FEFF"),
            "errors": {"doc": [INVISIBLE.format("The description", "FEFF")]},
        },
    ),
    (
        "doc with an isolate",
        "PUT",
        AUTH,
        {"rule": "/", "doc": "a \u2068b\u2069"},
        422,
        {
            "error": INVISIBLE.format("The description", "2068"),
            "errors": {"doc": [INVISIBLE.format("The description", "2068")]},
        },
    ),
    (
        "body too large",
        "PUT",
        AUTH,
        {"rule": "/", "doc": "d" * MAX_BODY_BYTES},
        413,
        {"error": f"The body is larger than {MAX_BODY_BYTES} bytes."},
    ),
    (
        "POST",
        "POST",
        AUTH,
        {"rule": "/", "name": "X"},
        405,
        {"error": "Method POST is not allowed here."},
    ),
    (
        "PATCH",
        "PATCH",
        AUTH,
        {"rule": "/", "name": "X"},
        405,
        {"error": "Method PATCH is not allowed here."},
    ),
]


def _send(url: str, method: str, headers: dict[str, str], body: Any) -> requests.Response:
    if isinstance(body, bytes):
        return requests.request(method, url, headers=headers, data=body, timeout=10)
    if body is None and method == "GET":
        return requests.request(method, url, headers=headers, timeout=10)
    return requests.request(method, url, headers=headers, json=body, timeout=10)


def test_every_refused_call_answers_json_and_changes_nothing(
    db_url: str, make_app: MakeApp, live_server: LiveServerFactory
) -> None:
    app, status = make_app(db_url, config=API)
    write_history(app, "/", [0, 1, 90])
    server = live_server(app)
    url = f"{server.url}{CONFIGURE}"
    _send(url, "GET", AUTH, None)  # syncs the route rows, so the snapshot is complete
    table, history = routes_table(app), history_counts(app)
    assert len(table) == 5 and history["log_requests"] == 30
    for case_id, method, headers, body, code, expected in REFUSED:
        r = _send(url, method, headers, body)
        where = f"{case_id}: {r.status_code} {r.text[:200]}"
        assert r.status_code == code, where
        assert r.headers["Content-Type"] == "application/json", where
        assert r.json() == expected, where
        if code == 401:
            challenge = f'Bearer realm="{REALM}"'
            if expected["error"] == "Invalid token.":
                challenge += ', error="invalid_token"'
            assert r.headers["WWW-Authenticate"] == challenge, where
        if code == 405:
            assert r.headers["Allow"] == "GET, HEAD, PUT, DELETE, OPTIONS", where
        assert routes_table(app) == table, where
        assert history_counts(app) == history, where
    status.flush(app)  # what the API's own requests left in the buffer is not ours to check


def test_options_and_other_paths_answer_json(
    sqlite_url: str, make_app: MakeApp, live_server: LiveServerFactory
) -> None:
    app, _ = make_app(sqlite_url, config=API)
    server = live_server(app)
    r = requests.options(f"{server.url}{CONFIGURE}", timeout=10)
    assert (r.status_code, r.headers["Allow"]) == (204, "GET, HEAD, PUT, DELETE, OPTIONS")
    r = requests.put(f"{server.url}/flask-status/openapi.json", headers=AUTH, timeout=10)
    assert (r.status_code, r.headers["Allow"]) == (405, "GET, HEAD, OPTIONS")
    assert r.json() == {"error": "Method PUT is not allowed here."}
    for path in ("/flask-status/", "/flask-status/configure/x", "/flask-status/nope"):
        r = requests.get(f"{server.url}{path}", headers=AUTH, timeout=10)
        assert r.status_code == 404, path
        assert r.json() == {
            "error": "Not found: the configure API has /configure and /openapi.json."
        }


def test_a_database_that_is_down_answers_503(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 1: every connection is refused at once.
    app, _ = make_app(
        "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2", config=API
    )
    client = app.test_client()
    for method, body in (
        ("GET", None),
        ("PUT", {"rule": "/", "name": "X"}),
        ("DELETE", {"rule": "/"}),
    ):
        r = client.open(CONFIGURE, method=method, headers=AUTH, json=body)
        assert r.status_code == 503, (method, r.data)
        assert r.json == {"error": "The status database is not available; nothing was changed."}
    assert SECRET not in caplog.text


# -- the secret -----------------------------------------------------------------------


def test_the_secret_is_never_logged_nor_echoed(
    sqlite_url: str,
    make_app: MakeApp,
    live_server: LiveServerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    app, _ = make_app(sqlite_url, config=API)
    server = live_server(app)
    url = f"{server.url}{CONFIGURE}"
    responses = [
        requests.get(url, headers=AUTH, timeout=10),
        requests.put(url, headers=AUTH, json={"rule": "/", "name": SECRET}, timeout=10),
        requests.put(url, headers={"Authorization": "Bearer wrong-token-XYZ"}, timeout=10),
        requests.put(url, headers=AUTH, json={"rule": f"/{SECRET}"}, timeout=10),
        requests.get(f"{server.url}/flask-status/openapi.json", timeout=10),
        requests.post(url, headers=AUTH, timeout=10),
    ]
    assert [r.status_code for r in responses] == [200, 200, 401, 400, 200, 405]
    # Only where the caller itself put the secret into a value is it answered back.
    assert SECRET in responses[1].text
    for r in (responses[0], *responses[2:]):
        assert SECRET not in r.text and SECRET not in str(r.headers)
        assert "wrong-token-XYZ" not in r.text and "wrong-token-XYZ" not in str(r.headers)
    assert SECRET not in caplog.text and "wrong-token-XYZ" not in caplog.text


def test_secret_with_bearer_prefix_and_with_inner_equals_sign(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app, _ = make_app(sqlite_url, config={"API_ENABLED": True, "API_SECRET": "Bearer  s3cr=t=="})
    client = app.test_client()
    assert client.get(CONFIGURE, headers={"Authorization": "Bearer s3cr=t=="}).status_code == 200
    assert client.get(CONFIGURE, headers={"Authorization": "bearer s3cr=t=="}).status_code == 200
    assert client.get(CONFIGURE, headers={"Authorization": "Bearer s3cr=t"}).status_code == 401
    assert client.get(CONFIGURE, headers={"Authorization": "Bearer s3cr"}).status_code == 401
    r = client.get(CONFIGURE, headers={"Authorization": "Bearer Bearer s3cr=t=="})
    assert r.status_code == 401


# -- configuration --------------------------------------------------------------------


def test_api_is_absent_unless_enabled(sqlite_url: str, make_app: MakeApp) -> None:
    for config in ({}, {"API_SECRET": SECRET}, {"API_ENABLED": False, "API_SECRET": SECRET}):
        app, _ = make_app(sqlite_url, config=config)
        assert "flask_status_api" not in app.blueprints, config
        r = app.test_client().put(CONFIGURE, headers=AUTH, json={"rule": "/", "name": "X"})
        assert r.status_code == 404, config


@pytest.mark.parametrize(
    "config",
    [
        {"API_ENABLED": True},
        {"API_ENABLED": True, "API_SECRET": ""},
        {"API_ENABLED": True, "API_SECRET": "Bearer "},
        {"FLASK_STATUS_API_ENABLED": "true", "API_SECRET": "   "},
    ],
)
def test_enabled_without_a_secret_is_an_error_at_start_up(
    sqlite_url: str, make_app: MakeApp, config: dict[str, Any]
) -> None:
    # Refused by the configuration check, before anything is registered on the app.
    with pytest.raises(ConfigError, match="API_ENABLED is set but API_SECRET is not"):
        make_app(sqlite_url, config=config)


def test_prefixed_keys_work_and_win(sqlite_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(
        sqlite_url, config={"FLASK_STATUS_API_ENABLED": True, "FLASK_STATUS_API_SECRET": "new"}
    )
    assert (
        app.test_client().get(CONFIGURE, headers={"Authorization": "Bearer new"}).status_code == 200
    )

    app, _ = make_app(
        sqlite_url,
        config={"API_ENABLED": True, "API_SECRET": "old", "FLASK_STATUS_API_SECRET": "new"},
    )
    client = app.test_client()
    assert client.get(CONFIGURE, headers={"Authorization": "Bearer new"}).status_code == 200
    assert client.get(CONFIGURE, headers={"Authorization": "Bearer old"}).status_code == 401

    app, _ = make_app(
        sqlite_url,
        config={"API_ENABLED": True, "FLASK_STATUS_API_ENABLED": False, "API_SECRET": "old"},
    )
    assert "flask_status_api" not in app.blueprints


# -- concurrency ----------------------------------------------------------------------


def test_eight_threads_renaming_one_route(
    db_url: str, make_app: MakeApp, live_server: LiveServerFactory
) -> None:
    app, _ = make_app(db_url, config=API)
    server = live_server(app)
    url = f"{server.url}{CONFIGURE}"
    requests.get(url, headers=AUTH, timeout=10)  # route rows in place before the race
    for round_ in range(3):
        # Long, distinct names: a mix of two would be visible.
        names = [f"{chr(65 + i) * 40} round {round_} thread {i}" for i in range(8)]
        barrier = threading.Barrier(8)
        results: list[Any] = [None] * 8

        def rename(
            i: int,
            names: list[str] = names,
            barrier: threading.Barrier = barrier,
            results: list[Any] = results,
        ) -> None:
            try:
                with requests.Session() as session:
                    barrier.wait(10)
                    body = {"rule": "/", "name": names[i], "doc": names[i]}
                    r = session.put(url, headers=AUTH, json=body, timeout=30)
                    results[i] = (r.status_code, r.json())
            except BaseException as exc:  # reported by the assertion below
                results[i] = exc

        threads = [threading.Thread(target=rename, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(isinstance(x, tuple) and x[0] == 200 for x in results), results
        final = status_of(app, "/")
        assert final is not None
        assert final.name in names, final.name
        assert final.doc == final.name  # both fields of one call, not of two
        listed = requests.get(url, headers=AUTH, timeout=10).json()["routes"]
        assert [x["name"] for x in listed if x["rule"] == "/"] == [final.name]


# -- the OpenAPI document --------------------------------------------------------------


def _served_methods(app: Flask) -> dict[str, set[str]]:
    """Path -> the methods the API really serves, found by asking each one.

    Every method is routed to our views (so that refusals are JSON); one the
    resource lacks answers 405. The catch-all rules that answer 404 for any
    other path are left out: they are not part of the API.
    """
    client = app.test_client()
    served: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("flask_status_api.") or "not_found" in rule.endpoint:
            continue
        path = rule.rule.removeprefix("/flask-status")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            r = client.open(rule.rule, method=method, headers=AUTH, json={"rule": "/nope"})
            assert r.status_code != 500, (method, path)
            if r.status_code != 405:
                served.setdefault(path, set()).add(method)
    return served


def test_openapi_document_matches_the_routes(sqlite_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(sqlite_url, config=API)
    r = app.test_client().get("/flask-status/openapi.json")
    assert r.status_code == 200
    document = r.json
    assert document == openapi_document("/flask-status")
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": "/flask-status"}]
    documented = {
        path: {method.upper() for method in operations}
        for path, operations in document["paths"].items()
    }
    # Both ways: every path and method the app serves is documented, and
    # every documented one is served.
    assert _served_methods(app) == documented
    assert documented == {"/configure": {"GET", "PUT", "DELETE"}, "/openapi.json": {"GET"}}
    put = document["paths"]["/configure"]["put"]
    assert set(put["responses"]) == {"200", "400", "401", "404", "413", "422", "503"}
    change = document["components"]["schemas"]["RouteChange"]
    assert change["properties"]["name"]["maxLength"] == NAME_MAX == 100
    assert change["properties"]["doc"]["maxLength"] == DOC_MAX == 2000
    assert change["additionalProperties"] is False
    challenge = document["paths"]["/configure"]["get"]["responses"]["401"]["headers"]
    assert REALM in challenge["WWW-Authenticate"]["description"]


def test_openapi_document_follows_the_mount_point(sqlite_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(sqlite_url, config=API)
    # Mounted below /prefix (SCRIPT_NAME), as behind a proxy or DispatcherMiddleware.
    served = app.test_client().get("/flask-status/openapi.json", base_url="http://localhost/prefix")
    assert must(served.json)["servers"] == [{"url": "/prefix/flask-status"}]
    # The file is package data and is not changed by serving it.
    assert openapi_document()["servers"] == [{"url": "/flask-status"}]


def test_openapi_document_names_no_rule_of_the_app(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url, config=API)
    client = app.test_client()
    r = client.put(CONFIGURE, headers=AUTH, json={"rule": "/boom", "hidden": True})
    assert r.status_code == 200
    text = client.get("/flask-status/openapi.json").get_data(as_text=True)
    # Hidden or shown, the app's rules are for callers with the token only.
    for rule in ("/boom", "/items/", "/code/"):
        assert rule not in text, rule


def test_openapi_patterns_agree_with_the_form() -> None:
    """The document's name/doc patterns accept exactly what RouteForm accepts."""
    schema = openapi_document()["components"]["schemas"]["RouteChange"]["properties"]
    name = re.compile(schema["name"]["pattern"])
    doc = re.compile(schema["doc"]["pattern"])
    samples = [chr(c) for c in (*range(0x00, 0xA1), *range(0x2000, 0x2070), 0xFEFF, 0x1F600)]
    for char in samples:
        # Inside the text, where trimming (the form's, not the pattern's) cannot reach.
        text = f"a{char}b"
        errors = validate_changes({"name": text, "doc": text}, CURRENT)
        assert bool(name.search(text)) == ("name" not in errors), hex(ord(char))
        assert bool(doc.search(text)) == ("doc" not in errors), hex(ord(char))
    assert not name.search("Pay\u202emoc.live") and not doc.search("\ufeffHello")


def test_security_headers_on_every_api_answer_and_not_on_the_hosts(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app, _ = make_app(sqlite_url, config=API)
    client = app.test_client()
    answers = [
        client.get(CONFIGURE, headers=AUTH),
        client.get(CONFIGURE),
        client.put(CONFIGURE, headers=AUTH, data=b"nope"),
        client.post(CONFIGURE, headers=AUTH),
        client.options(CONFIGURE),
        client.get("/flask-status/openapi.json"),
        client.get("/flask-status/nowhere"),
    ]
    assert [r.status_code for r in answers] == [200, 401, 400, 405, 204, 200, 404]
    for r in answers:
        assert r.headers["X-Content-Type-Options"] == "nosniff", r.status_code
        assert r.headers["Content-Security-Policy"] == (
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
        ), r.status_code
    host = client.get("/")
    assert host.status_code == 200
    assert "X-Content-Type-Options" not in host.headers
    assert "Content-Security-Policy" not in host.headers


def test_security_headers_on_the_page_its_json_feed_and_badges(
    sqlite_url: str, make_app: MakeApp
) -> None:
    # headers.py serves page, API and admin alike; the page's own tests are in test_page.py.
    app, _ = make_app(sqlite_url)
    client = app.test_client()
    route_id = get_state(app).route_ids()["/"]
    paths = [
        "/status",
        "/status/summary.json",
        "/status/updates.json",
        "/status/history.atom",
        f"/status/badge/{route_id}.svg",
        f"/status/routes/{route_id}",
        "/status/static/status.css",
        "/status/static/status.js",
    ]
    for path in paths:
        with client.get(path) as r:  # static files are streamed: close them
            assert r.status_code == 200, path
            assert r.headers["X-Content-Type-Options"] == "nosniff", path
            assert r.headers["Content-Security-Policy"] == PAGE_CSP, path
            assert "X-Frame-Options" not in r.headers, path  # the page may be embedded
    for path in ("/", "/code/418"):
        r = client.get(path)
        assert "X-Content-Type-Options" not in r.headers, path
        assert "Content-Security-Policy" not in r.headers, path


def test_openapi_document_is_a_valid_openapi_31_document() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(openapi_document())


def test_put_does_not_change_updated_at_of_other_routes(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url, config=API)
    client = app.test_client()
    client.get(CONFIGURE, headers=AUTH)
    before = {row[1]: row for row in routes_table(app)}
    time.sleep(1.1)  # updated_at has second resolution in the JSON, microseconds in rows
    client.put(CONFIGURE, headers=AUTH, json={"rule": "/boom", "name": "Boom"})
    after = {row[1]: row for row in routes_table(app)}
    assert {rule for rule in before if before[rule] != after[rule]} == {"/boom"}
    changed = dict(zip([c.name for c in Route.__table__.columns], after["/boom"], strict=True))
    assert changed["name"] == "Boom" and changed["custom_name"] and not changed["custom_doc"]
    assert changed["updated_at"] > datetime.now(timezone.utc) - timedelta(seconds=30)


def test_body_is_read_as_json_whatever_the_content_type(
    sqlite_url: str, make_app: MakeApp, live_server: LiveServerFactory
) -> None:
    # curl -d sends application/x-www-form-urlencoded unless told otherwise.
    app, _ = make_app(sqlite_url, config=API)
    server = live_server(app)
    r = requests.put(
        f"{server.url}{CONFIGURE}",
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
        data=json.dumps({"rule": "/", "name": "From curl"}),
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["route"]["name"] == "From curl"
    r = requests.delete(f"{server.url}{CONFIGURE}", headers=AUTH, data='{"rule": "/"}', timeout=10)
    assert (r.status_code, r.json()) == (200, {"message": "Route deleted"})
