"""Verdicts people can trust: sample size, incidents with hysteresis, 404s by rule,
latency and error budgets.

The first half tests the pure functions of :mod:`flask_server_status.verdicts`
with hand-made numbers. The second writes real counts through the store at
stamped minutes, on SQLite, PostgreSQL and MariaDB, stands the page's clock at
a chosen minute (``state.clock``) and reads ``summary.json``, the snapshot
reader and the stateless readers, which must all agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask, abort
from helpers import MakeApp, slot, write_counts

from flask_server_status import get_state, queries
from flask_server_status.config import FAILURE, NEUTRAL, SUCCESS, read_settings
from flask_server_status.models import UNMATCHED_RULE
from flask_server_status.verdicts import (
    DEGRADED,
    MAJOR_OUTAGE,
    NO_DATA,
    OPERATIONAL,
    PARTIAL_OUTAGE,
    Outage,
    budget_remaining,
    burn_rate,
    classify,
    find_outages,
    judge,
    latency_breached,
    reach_back,
    slo_figures,
)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)
DEFAULTS = read_settings({})


def at(m: int) -> datetime:
    return T0 + m * MINUTE


# -- classification ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "rule", "config", "expected"),
    [
        (200, "/items/<int:id>", {}, SUCCESS),
        (302, "/", {}, SUCCESS),
        (404, "/about", {}, FAILURE),  # no variables: the page itself is missing
        (404, "/items/<int:id>", {}, NEUTRAL),  # that item does not exist
        (404, "/items/<int:id>", {"FLASK_STATUS_VARIABLE_RULE_404": "failure"}, FAILURE),
        (404, "/about", {"FLASK_STATUS_VARIABLE_RULE_404": "neutral"}, FAILURE),
        (404, UNMATCHED_RULE, {}, FAILURE),  # counted apart, classified as before
        (404, "/about", {"FLASK_STATUS_FAILURE_CODES": [429]}, NEUTRAL),  # 404 not a failure
        (429, "/api/search", {"FLASK_STATUS_FAILURE_CODES": [429]}, FAILURE),
        (400, "/", {}, NEUTRAL),
        (500, "/items/<int:id>", {}, FAILURE),
        (503, "/", {"FLASK_STATUS_FAILURE_CODES": []}, FAILURE),  # every 5xx, always
    ],
)
def test_classify_by_code_and_rule(
    code: int, rule: str, config: dict[str, Any], expected: int
) -> None:
    assert classify(read_settings(config), code, rule) == expected


def test_a_routes_own_failure_codes_replace_the_global_set() -> None:
    assert classify(DEFAULTS, 429, "/api/search") == NEUTRAL
    assert classify(DEFAULTS, 429, "/api/search", failure_codes={429}) == FAILURE
    assert classify(DEFAULTS, 404, "/about", failure_codes={429}) == NEUTRAL
    assert classify(DEFAULTS, 404, "/about", failure_codes=None) == FAILURE


# -- status from counts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "classified", "expected"),
    [
        (0, 0, NO_DATA),
        (1, 1, DEGRADED),  # one failed request on a quiet route: never an outage
        (9, 9, DEGRADED),  # still fewer than FLASK_STATUS_MIN_REQUESTS (10)
        (10, 10, MAJOR_OUTAGE),
        (1, 10, PARTIAL_OUTAGE),
        (0, 3, OPERATIONAL),
        (1, 100, DEGRADED),
        (0, 100, OPERATIONAL),
    ],
)
def test_judge_needs_enough_requests_for_an_outage(
    failures: int, classified: int, expected: str
) -> None:
    assert judge(failures, classified, DEFAULTS) == expected


def test_judge_takes_a_routes_own_sample_size() -> None:
    assert judge(3, 3, DEFAULTS, min_requests=3) == MAJOR_OUTAGE
    assert judge(3, 3, read_settings({"FLASK_STATUS_MIN_REQUESTS": 3})) == MAJOR_OUTAGE
    assert judge(3, 3, read_settings({"FLASK_STATUS_MIN_REQUESTS": 4})) == DEGRADED


def test_reach_back_adds_minutes_until_the_window_holds_enough() -> None:
    busy = [0] * 55 + [300, 300, 300, 300, 304]
    assert reach_back(busy, 5, 10) == 5  # the window holds 1,504: it stays 5 minutes
    quiet = [0] * 40 + [7] + [0] * 10 + [2] + [0] * 7 + [1]
    # 1 (now) + 2 (8 minutes back) + 7 (19 minutes back) = 10 at 20 minutes.
    assert reach_back(quiet, 5, 10) == 20
    assert reach_back(quiet, 5, 11) == 60  # never enough: the whole hour
    assert reach_back([0] * 60, 5, 10) == 60  # nothing at all: "no data" over 60 minutes
    assert reach_back([9] * 60, 5, 10) == 5
    assert reach_back([1] * 3, 5, 10) == 3  # no more history than that


def test_latency_breach_needs_a_threshold_and_enough_requests() -> None:
    assert latency_breached(900.0, 10, 500.0, 10)
    assert not latency_breached(900.0, 9, 500.0, 10)  # too few requests
    assert not latency_breached(500.0, 10, 500.0, 10)  # at the threshold is not over it
    assert not latency_breached(900.0, 10, None, 10)  # off
    assert not latency_breached(None, 0, 500.0, 10)


# -- incidents: hysteresis --------------------------------------------------------------


class Traffic:
    """The traffic a route had: a set of minutes with classified requests."""

    def __init__(self, minutes: set[int]) -> None:
        self.minutes = minutes
        self.asked: list[tuple[int, int]] = []

    def __call__(self, after: datetime, before: datetime) -> int:
        lo, hi = (int((m - T0) / MINUTE) for m in (after, before))
        self.asked.append((lo, hi))
        return sum(1 for m in self.minutes if lo < m < hi)


def outages(
    failing: dict[int, tuple[int, int]], traffic: set[int], now: int, open_: int = 2, close: int = 5
) -> list[Outage]:
    """Outages of ``{minute: (failures, classified)}``; failing minutes have traffic too."""
    items = [(at(m), f, c) for m, (f, c) in sorted(failing.items())]
    return find_outages(items, Traffic(traffic | set(failing)), at(now), open_, close)


def test_one_failing_minute_opens_nothing() -> None:
    assert outages({3: (20, 20)}, set(range(10)), now=9) == []
    assert outages({3: (20, 20), 5: (20, 20)}, set(range(10)), now=9) == []


def test_an_outage_opens_after_two_failing_minutes_and_ends_at_its_last() -> None:
    traffic = set(range(30))
    [outage] = outages({m: (20, 20) for m in (10, 11, 12)}, traffic, now=20)
    assert (outage.start, outage.end) == (at(10), at(13))
    assert (outage.failures, outage.requests, outage.peak_ratio) == (60, 60, 1.0)
    assert not outage.ongoing
    # While it lasts and for the next 4 minutes with traffic, it is ongoing.
    for now in (11, 12, 16):
        [outage] = outages({m: (20, 20) for m in (10, 11, 12) if m <= now}, traffic, now=now)
        assert outage.ongoing and outage.start == at(10), now
    [outage] = outages({m: (20, 20) for m in (10, 11, 12)}, traffic, now=17)
    assert not outage.ongoing  # 13-17: five minutes with traffic and no failing one


def test_flapping_gives_one_incident() -> None:
    # F F . F . F F . . F over 10 minutes, then recovery.
    failing = {m: (5, 20) for m in (0, 1, 3, 5, 6, 9)}
    [outage] = outages(failing, set(range(30)), now=29)
    assert (outage.start, outage.end, outage.failures, outage.requests) == (
        at(0), at(10), 30, 120,
    )  # fmt: skip
    assert outage.peak_ratio == 0.25


def test_five_good_minutes_close_an_incident_and_a_new_one_needs_two_again() -> None:
    failing = {m: (20, 20) for m in (0, 1, 7, 13, 14)}
    found = outages(failing, set(range(30)), now=29)
    # 2-6 close the first; 7 alone opens nothing; 13-14 open the second.
    assert [(o.start, o.end) for o in found] == [(at(0), at(2)), (at(13), at(15))]


def test_minutes_without_traffic_neither_close_nor_count() -> None:
    failing = {0: (20, 20), 1: (20, 20), 30: (20, 20)}
    # Silence from 2 to 29 (a quiet route has not shown it recovered), then 30 fails.
    [outage] = outages(failing, {0, 1, 30, 31}, now=31)
    assert (outage.start, outage.end, outage.ongoing) == (at(0), at(31), True)
    # Four minutes with traffic in the silence: still one; five: two outages.
    [outage] = outages(failing, {5, 9, 12, 20}, now=40)
    assert outage.end == at(31)
    found = outages(failing, {5, 9, 12, 20, 25}, now=40)
    assert [(o.start, o.end) for o in found] == [(at(0), at(2))]  # 30 alone opens nothing


def test_a_row_is_broken_by_a_minute_without_failures() -> None:
    assert outages({0: (3, 3), 2: (3, 3), 4: (3, 3)}, set(range(10)), now=9) == []
    assert outages({0: (3, 3), 1: (3, 3)}, set(range(10)), now=9, open_=3) == []
    [outage] = outages({0: (3, 3), 1: (3, 3)}, set(range(10)), now=9, open_=1)
    assert outage.start == at(0)


def test_traffic_is_asked_only_where_a_gap_could_close_an_incident() -> None:
    failing = [(at(m), 20, 20) for m in (0, 1, 3, 5, 20, 21, 23, 30)]
    traffic = Traffic(set(range(40)))
    found = find_outages(failing, traffic, at(40), 2, 5)
    # 1->3, 3->5, 21->23 are too short to hold five minutes; 5->20 closes the
    # first; 20->21 has no incident open; 23->30 closes the second, so 30 opens
    # nothing and the end (now) is not asked about.
    assert traffic.asked == [(5, 20), (23, 30)]
    assert [(o.start, o.end) for o in found] == [(at(0), at(6)), (at(20), at(24))]


# -- service level objectives ---------------------------------------------------------------


def test_slo_figures_from_exact_counts() -> None:
    # 200 requests, 1 failure, target 99 %: 2 failures allowed, 1 spent: half left.
    assert budget_remaining(199, 1, 99.0) == 0.5
    assert burn_rate(199, 1, 99.0) == 0.5
    assert budget_remaining(200, 0, 99.9) == 1.0
    assert budget_remaining(0, 0, 99.0) is None and burn_rate(0, 0, 99.0) is None
    assert budget_remaining(97, 3, 99.0) == -2.0  # three times the budget: overspent
    assert burn_rate(90, 10, 99.9) == pytest.approx(100.0)
    # 100 %: no budget at all; a failure has no finite figure.
    assert (budget_remaining(5, 0, 100.0), burn_rate(5, 0, 100.0)) == (1.0, 0.0)
    assert (budget_remaining(5, 1, 100.0), burn_rate(5, 1, 100.0)) == (None, None)
    slo = slo_figures(99.0, 30, (199, 1), (85, 15), (599, 1))
    assert slo.to_dict() == {
        "target": 99.0, "window_days": 30, "good": 199, "bad": 1,
        "budget_remaining": 0.5, "burn_rate_1h": 15.0, "burn_rate_6h": 1 / 6,
    }  # fmt: skip
    assert slo.paging  # 15 > 14.4: the classic "page someone" burn rate


# -- on the databases, through the readers ------------------------------------------------


def base_minute() -> datetime:
    """Half an hour ago: minute rows well within retention, a clock we can move."""
    return queries.floor_minute(datetime.now(timezone.utc)) - timedelta(minutes=30)


def write(app: Flask, traffic: dict[tuple[str, datetime, int], int], ms: float = 20.0) -> None:
    """Write ``{(rule, minute, status): count}`` (``ms`` each) through the store."""
    write_counts(app, {key: slot(count, ms) for key, count in traffic.items()})


def read(app: Flask, now: datetime) -> tuple[dict[str, Any], list[queries.RouteStatus], Any]:
    """summary.json at ``now`` (the page's clock stood there), the statuses, the incidents.

    The snapshot reader (the page) and the stateless readers (CLI, API)
    must give the same statuses and incidents.
    """
    state = get_state(app)
    state.clock = lambda: now
    document = app.test_client().get("/status/summary.json").get_json()
    snapshot = state.reader.snapshot(now)
    assert snapshot.routes == queries.route_statuses(state, now=now)
    assert snapshot.incidents == queries.incidents(state, now=now, limit=50)
    return document, snapshot.routes, snapshot.incidents


def component(document: dict[str, Any], rule: str) -> dict[str, Any]:
    return next(c for c in document["components"] if c["rule"] == rule)


def route(routes: list[queries.RouteStatus], rule: str) -> queries.RouteStatus:
    return next(r for r in routes if r.rule == rule)


def test_one_failure_on_a_quiet_route_is_degraded_at_worst(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url)
    t0 = base_minute()
    write(app, {("/", t0, 500): 1})
    document, routes, found = read(app, t0)
    assert component(document, "/")["status"] == "degraded_performance"
    assert document["status"]["indicator"] == "minor"
    assert document["incidents"] == [] and found == []
    # Based on one request, the window reached back the whole hour to find it.
    assert route(routes, "/").basis == {"minutes": 60, "requests": 1}
    # Two more failing minutes of one request each: still no outage, no incident.
    write(app, {("/", t0 + MINUTE, 500): 1, ("/", t0 + 2 * MINUTE, 500): 1})
    document, routes, found = read(app, t0 + 2 * MINUTE)
    assert component(document, "/")["status"] == "degraded_performance" and found == []
    # The count is exact all the same: three failures stored.
    assert sum(b.failure for b in route(routes, "/").minutes) == 3


def test_three_minutes_of_503s_are_one_major_outage(db_url: str, make_app: MakeApp) -> None:
    """20 requests a minute; minutes 10, 11 and 12 answer 503."""
    app, _ = make_app(db_url)
    t0 = base_minute() - timedelta(minutes=10)
    traffic = {}
    for m in range(25):
        code = 503 if 10 <= m <= 12 else 200
        traffic[("/", t0 + m * MINUTE, code)] = 20
    write(app, traffic)

    # Minute 10 alone: too early for an incident (two failing minutes open one).
    document, routes, found = read(app, t0 + 10 * MINUTE)
    assert found == [] and document["incidents"] == []
    assert route(routes, "/").basis == {"minutes": 5, "requests": 100}
    # Minute 12: the window holds 60 failures of 100 requests: major outage, and the
    # incident is open since the start of minute 10.
    document, routes, found = read(app, t0 + 12 * MINUTE)
    assert component(document, "/")["status"] == "major_outage"
    assert document["status"]["indicator"] == "critical"
    [incident] = found
    assert (incident.start, incident.ongoing) == (t0 + 10 * MINUTE, True)
    [entry] = document["incidents"]
    assert entry["created_at"] == iso(t0 + 10 * MINUTE) and entry["resolved_at"] is None
    # Five good minutes later it is resolved, from the start of minute 10 to the end of 12.
    document, routes, found = read(app, t0 + 17 * MINUTE)
    [incident] = found
    assert (incident.start, incident.end, incident.ongoing) == (
        t0 + 10 * MINUTE, t0 + 13 * MINUTE, False,
    )  # fmt: skip
    assert (incident.failures, incident.requests) == (60, 60)
    [entry] = document["incidents"]
    assert entry["created_at"] == iso(t0 + 10 * MINUTE)
    assert entry["resolved_at"] == iso(t0 + 13 * MINUTE)
    assert entry["status"] == "resolved"
    assert component(document, "/")["status"] == "operational"


def test_ten_minutes_of_flapping_are_one_incident(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url)
    t0 = base_minute() - timedelta(minutes=10)
    traffic = {}
    for m in range(25):
        traffic[("/", t0 + m * MINUTE, 200)] = 20
        if m in (0, 1, 3, 5, 6, 9):  # failing, fine, failing... for 10 minutes
            traffic[("/", t0 + m * MINUTE, 502)] = 10
    write(app, traffic)
    document, _, found = read(app, t0 + 24 * MINUTE)
    [incident] = found
    assert (incident.start, incident.end, incident.ongoing) == (t0, t0 + 10 * MINUTE, False)
    assert incident.failures == 60
    assert len(document["incidents"]) == 1


def app_with_a_missing_page(url: str, make_app: MakeApp, config: dict[str, Any]) -> Flask:
    """The demo routes plus ``/gone``, a rule without variables that answers 404."""
    app, status = make_app(url, config=config)

    @app.route("/gone")
    def gone() -> str:
        abort(404)

    client = app.test_client()
    for n in range(12):
        assert client.get(f"/code/404?n={n}").status_code == 404  # /code/<int:code>
        assert client.get("/gone").status_code == 404
        assert client.get(f"/no/such/path/{n}").status_code == 404
    assert status.flush(app) == 36
    return app


def test_404s_are_judged_by_the_rule(db_url: str, make_app: MakeApp) -> None:
    app = app_with_a_missing_page(db_url, make_app, {})
    document, routes, _ = read(app, queries.floor_minute(datetime.now(timezone.utc)))
    code = route(routes, "/code/<int:code>")
    # The item asked for does not exist; the service works: neutral. Every
    # request is counted all the same.
    assert (code.window.total, code.window.failure, code.window.neutral) == (12, 0, 12)
    assert component(document, "/code/<int:code>")["status"] == "no_data"
    # A rule without variables: the page itself is missing, a failure.
    gone = route(routes, "/gone")
    assert (gone.window.total, gone.window.failure) == (12, 12)
    assert component(document, "/gone")["status"] == "major_outage"
    # Unknown paths stay apart: never a component.
    assert not any(c["rule"] == UNMATCHED_RULE for c in document["components"])


def test_404s_of_rules_with_variables_can_count_as_failures(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = app_with_a_missing_page(
        sqlite_url, make_app, {"FLASK_STATUS_VARIABLE_RULE_404": "failure"}
    )
    document, routes, _ = read(app, queries.floor_minute(datetime.now(timezone.utc)))
    code = route(routes, "/code/<int:code>")
    assert (code.window.total, code.window.failure, code.window.neutral) == (12, 12, 0)
    assert component(document, "/code/<int:code>")["status"] == "major_outage"


def test_a_slow_route_is_degraded(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url, config={"FLASK_STATUS_LATENCY_THRESHOLD_MS": 500})
    t0 = base_minute()
    write(app, {("/", t0, 200): 6, ("/items/<int:item_id>", t0, 200): 20}, ms=2400.0)
    write(app, {("/code/<int:code>", t0, 200): 20}, ms=40.0)
    document, routes, _ = read(app, t0)
    slow = route(routes, "/items/<int:item_id>")
    assert slow.latency_breach and slow.status == "degraded_performance"
    assert slow.latency["threshold_ms"] == 500
    assert (slow.window.p95 or 0) > 500 and slow.latency["p95_ms"] == round(slow.window.p95 or 0, 1)
    assert component(document, "/items/<int:item_id>")["status"] == "degraded_performance"
    fast = route(routes, "/code/<int:code>")
    assert not fast.latency_breach and fast.status == "operational"
    assert 0 < (fast.window.p95 or 0) < 500
    # Six slow requests are too few to call the route slow.
    few = route(routes, "/")
    assert not few.latency_breach and few.status == "operational"


def test_slo_figures_for_a_known_count(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url, config={"FLASK_STATUS_SLO_TARGET": 99})
    t0 = base_minute()
    # 200 requests over the SLO window, 1 failure: half the budget is left. 100 of
    # them yesterday (out of the 1 h and 6 h windows), so both burn at 1 %/1 % = 1.
    write(app, {("/", t0 - timedelta(days=1), 200): 100, ("/", t0, 200): 99, ("/", t0, 500): 1})
    _, routes, _ = read(app, t0)
    slo = route(routes, "/").slo
    assert slo is not None
    assert slo.to_dict() == {
        "target": 99, "window_days": 30, "good": 199, "bad": 1,
        "budget_remaining": 0.5, "burn_rate_1h": 1.0, "burn_rate_6h": 1.0,
    }  # fmt: skip
    assert route(routes, "/boom").slo.budget_remaining is None  # type: ignore[union-attr]
    # Without an objective, no figures.
    other, _ = make_app(db_url)
    _, routes, _ = read(other, t0)
    assert route(routes, "/").slo is None


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:00Z")
