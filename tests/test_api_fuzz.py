"""Fuzzing the configure API: schemathesis against its OpenAPI document, and hypothesis.

* schemathesis reads ``/flask-status/openapi.json`` from a real server on
  loopback and sends generated requests (valid and invalid) with a valid
  token: no 500, every response inside the document.
* hypothesis sends random bodies and Authorization headers and checks each
  answer against a model of the route table: the table changes only for a
  valid, authorised call, and exactly as that call asks.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from flask import Flask
from helpers import API, AUTH, CONFIGURE, SECRET
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flask_server_status import get_state
from flask_server_status.models import Route

# -- schemathesis -----------------------------------------------------------------------


@pytest.fixture
def api_schema(sqlite_url: str, make_app: Any, live_server: Any) -> Iterator[Any]:
    app, _ = make_app(sqlite_url, config=API)
    server = live_server(app)
    app.test_client().get(CONFIGURE, headers=AUTH)  # route rows in place
    yield schemathesis.openapi.from_url(f"{server.url}/flask-status/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_schemathesis(case: Any) -> None:
    case.call_and_validate(headers=AUTH, timeout=10)


# -- hypothesis: random bodies and headers against a model ------------------------------

RULES = ["/", "/code/<int:code>", "/boom", "/items/<int:item_id>"]
#: Bidi controls and zero-width characters, refused in names and descriptions alike.
INVISIBLE = {chr(c) for c in [*range(0x200B, 0x2010), *range(0x202A, 0x202F), 0x2060]} | {
    chr(c) for c in [*range(0x2066, 0x206A), 0xFEFF]
}
FORBIDDEN_NAME = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]} | INVISIBLE
FORBIDDEN_DOC = {chr(c) for c in [*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]} | INVISIBLE


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Pick among strategies with integer weights (one_of draws them evenly)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


# Text that reaches every branch of validation: blanks, control characters,
# lone surrogates, 4-byte characters, markup, lengths around the limits.
_chars = st.characters(codec=None, exclude_categories=())
text = st.one_of(
    st.text(_chars, max_size=20),
    st.text(_chars, max_size=3).map(lambda t: f" {t}\n"),
    st.text(
        st.sampled_from(
            " \t\n\x00\x01\x7f\x85\u00a0\u2028a<>&'\"\U0001f600\ud800\u202e\u200b\ufeff\u2066"
        ),
        max_size=8,
    ),
    st.integers(95, 105).map(lambda n: "n" * n),
    st.integers(1995, 2005).map(lambda n: "d" * n),
    st.sampled_from(["Hello World!", "", "  padded  "]),
)
rules = weighted(
    (4, st.sampled_from(RULES)),
    (1, st.sampled_from(["<unmatched>", "/nope", "/BOOM", "/boom ", " /", "/\x00"])),
    (1, text),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


# Mostly well-formed bodies with tricky values, so that the calls reach the
# database; then wild objects, any JSON, and bytes.
near_valid = st.fixed_dictionaries(
    {"rule": rules}, optional={"name": text, "doc": text, "hidden": st.booleans()}
)
wild = st.fixed_dictionaries(
    {},
    optional={
        "rule": st.one_of(rules, json_values),
        "name": json_values,
        "doc": json_values,
        "hidden": json_values,
        "id": json_values,
        "endpoint": json_values,
    },
)
bodies = weighted(
    (6, near_valid.map(lambda v: json.dumps(v).encode())),
    (2, wild.map(lambda v: json.dumps(v).encode())),
    (1, json_values.map(lambda v: json.dumps(v).encode())),
    (1, st.binary(max_size=40)),
)
# Each header with whether it authorises, decided here rather than by the code under test.
valid_headers = st.sampled_from(
    [
        ({"Authorization": f"Bearer {SECRET}"}, True),
        ({"Authorization": f"bearer   {SECRET}  "}, True),
    ]
)
invalid_headers = st.one_of(
    st.sampled_from(
        [
            ({}, False),
            ({"Authorization": f"Bearer {SECRET[:-1]}"}, False),
            ({"Authorization": f"Bearer {SECRET}="}, False),
            ({"Authorization": f"Basic {SECRET}"}, False),
            ({"Authorization": SECRET}, False),
        ]
    ),
    st.text(string.printable.strip("\r\n\x0b\x0c"), max_size=30).map(
        lambda h: ({"Authorization": h}, False)
    ),
)
headers = weighted((3, valid_headers), (1, invalid_headers))
methods = st.sampled_from(["PUT"] * 6 + ["DELETE"] * 2 + ["GET", "POST", "PATCH"])


def snapshot(app: Flask) -> dict[str, tuple[str, str, bool]]:
    with get_state(app).engine.connect() as conn:
        rows = conn.execute(sa.select(Route.rule, Route.name, Route.doc, Route.hidden))
        return {rule: (name, doc, bool(hidden)) for rule, name, doc, hidden in rows}


def expected_change(
    method: str, authorised: bool, raw: bytes, table: dict[str, tuple[str, str, bool]]
) -> tuple[set[int], dict[str, tuple[str, str, bool]]]:
    """The statuses the model allows, and the table after the call."""
    early = _status_before_the_body(method, authorised)
    if early is not None:
        return {early}, table
    request = _well_formed(method, raw)
    if request is None:
        return {400}, table
    rule, body = request
    if rule not in table or rule == "<unmatched>":
        return {404}, table
    name, doc, hidden = table[rule]
    if method == "DELETE":
        return {200}, {**table, rule: (name, doc, True)}
    changed = _changed_route(body, (name, doc, hidden))
    if changed is None:
        return {422}, table
    return {200}, {**table, rule: changed}


def _status_before_the_body(method: str, authorised: bool) -> int | None:
    """405, 401 or (a GET) 200, answered before the body is read; None if it is read."""
    if method in ("POST", "PATCH"):
        return 405
    if not authorised:
        return 401
    if method == "GET":
        return 200
    return None


def _well_formed(method: str, raw: bytes) -> tuple[str, dict[str, Any]] | None:
    """``(rule, the other fields)`` of a well-formed body for ``method``; None: a 400."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or not isinstance(body.get("rule"), str):
        return None
    rule = body.pop("rule")
    allowed = {"name", "doc", "hidden"} if method == "PUT" else set()
    if set(body) - allowed:
        return None
    if method == "PUT":
        if not body:
            return None
        for field, kind in (("name", str), ("doc", str), ("hidden", bool)):
            if field in body and type(body[field]) is not kind:
                return None
    return rule, body


def _changed_route(
    body: dict[str, Any], current: tuple[str, str, bool]
) -> tuple[str, str, bool] | None:
    """A route's ``(name, doc, hidden)`` after a PUT of ``body``; None: a 422."""
    name, doc, hidden = current
    if "name" in body:
        new = body["name"].strip()
        if not new or len(new) > 100 or FORBIDDEN_NAME & set(new) or _surrogates(new):
            return None
        name = new
    if "doc" in body:
        new = body["doc"].strip()
        if len(new) > 2000 or FORBIDDEN_DOC & set(new) or _surrogates(new):
            return None
        doc = new
    hidden = body.get("hidden", hidden)
    return name, doc, hidden


def _surrogates(value: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in value)


def test_random_bodies_and_headers(db_url: str, make_app: Any) -> None:
    app, _ = make_app(db_url, config=API)
    client = app.test_client()
    client.get(CONFIGURE, headers=AUTH)

    valid = (AUTH, True)

    @given(method=methods, header=headers, raw=bodies)
    # Each answer at least once, whatever the random draw.
    @example(method="PUT", header=valid, raw=b'{"rule": "/", "name": " \\u0000 "}')
    @example(method="PUT", header=valid, raw=b'{"rule": "/nope", "hidden": true}')
    @example(method="PUT", header=valid, raw=b'{"rule": "/", "name": "Example"}')
    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    def check(method: str, header: tuple[dict[str, str], bool], raw: bytes) -> None:
        before = snapshot(app)
        allowed, after = expected_change(method, header[1], raw, before)
        r = client.open(CONFIGURE, method=method, headers=header[0], data=raw)
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code in allowed, (r.status_code, r.data[:300])
        assert r.is_json and isinstance(r.json, dict)
        assert ("error" in r.json) == (r.status_code != 200)
        assert snapshot(app) == after

    seen: dict[int, int] = {}
    check()
    # The generators reach every answer, so the model was checked on each.
    assert set(seen) >= {200, 400, 401, 404, 405, 422}, seen
