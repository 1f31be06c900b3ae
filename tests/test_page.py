"""The public status page: summary.json, statuses, incidents, HTML, Atom, badges, caching.

Known traffic is written at stamped minutes through the normal write path
(``state.store.write``, which keeps the roll-ups) and read back with ``now=``,
so every figure below is computed by hand.
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from helpers import MakeApp, must, run_bench, slot, write_counts, xml_find, xml_text

from flask_server_status import get_state, page, queries, service

ROOT = Path(__file__).resolve().parent.parent
ATOM = "{http://www.w3.org/2005/Atom}"
SVG = "{http://www.w3.org/2000/svg}"
#: p50 and p95 the latency histogram estimates for requests of 20 ms each (``slot``'s
#: default): the median is interpolated inside the 20 ms bucket.
P50_20MS, P95_20MS = 17.5, 20.0
PAYLOADS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "</script>")


def write(app: Flask, traffic: dict[tuple[str, datetime, int], int]) -> None:
    """Write ``{(rule, minute, status): count}`` (20 ms each) through the store."""
    write_counts(app, {key: slot(count) for key, count in traffic.items()})


def base_minute() -> datetime:
    """A stamped start: 40 minutes ago, so minute rows are within retention."""
    return queries.floor_minute(datetime.now(timezone.utc)) - timedelta(minutes=40)


def component(document: dict[str, Any], rule: str) -> dict[str, Any]:
    return next(c for c in document["components"] if c["rule"] == rule)


def summary_at(app: Flask, now: datetime) -> dict[str, Any]:
    state = get_state(app)
    with app.test_request_context("/status"):
        snapshot = state.reader.snapshot(now)
        return page.build_summary(state, snapshot, "http://localhost/status")


# -- summary.json against known traffic, on every database -----------------------------


def test_summary_json_of_known_traffic(db_url: str, make_app: MakeApp) -> None:
    # One failing minute opens an incident and two minutes of traffic close it:
    # this test is about the JSON; tests/test_verdicts.py holds the default rule.
    config = {"FLASK_STATUS_INCIDENT_OPEN_MINUTES": 1, "FLASK_STATUS_INCIDENT_CLOSE_MINUTES": 2}
    app, _ = make_app(db_url, config=config)
    t0 = base_minute()
    now = t0 + timedelta(minutes=10)
    write(
        app,
        {
            ("/", t0, 200): 90,
            ("/", t0, 500): 10,
            ("/", t0 + timedelta(minutes=1), 200): 50,
            ("/", t0 + timedelta(minutes=1), 400): 7,  # neutral: in total, not in uptime
            ("/", now, 200): 40,
            ("/items/<int:item_id>", t0, 200): 3,
        },
    )
    document = summary_at(app, now)
    assert set(document) == {"page", "status", "components", "incidents"}
    assert document["page"]["url"] == "http://localhost/status"
    assert document["page"]["updated_at"] == now.strftime("%Y-%m-%dT%H:%M:00Z")
    index = component(document, "/")
    assert index["name"] == "Index"
    assert index["description"] == "The landing page."
    assert set(index) == {
        "id", "name", "rule", "description", "position", "status", "updated_at",
        "uptime", "window", "latency", "days", "minutes",
    }  # fmt: skip
    # Minutes: 60, oldest first, the last is `now`.
    minutes = index["minutes"]
    assert len(minutes) == 60
    assert minutes[-1] == {
        "minute": now.strftime("%Y-%m-%dT%H:%M:00Z"),
        "total": 40, "success": 40, "failure": 0, "uptime": 100.0,
        "p50_ms": P50_20MS, "p95_ms": P95_20MS,
    }  # fmt: skip
    by_minute = {m["minute"]: m for m in minutes}
    first = by_minute[t0.strftime("%Y-%m-%dT%H:%M:00Z")]
    assert (first["total"], first["success"], first["failure"], first["uptime"]) == (
        100, 90, 10, 90.0,
    )  # fmt: skip
    second = by_minute[(t0 + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:00Z")]
    assert (second["total"], second["success"], second["failure"], second["uptime"]) == (
        57, 50, 0, 100.0,
    )  # fmt: skip
    empty = by_minute[(t0 + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:00Z")]
    assert empty["total"] == 0 and empty["uptime"] is None
    # Days: 90 UTC days, oldest first; today holds everything (unless t0 was yesterday).
    days = index["days"]
    assert len(days) == 90
    assert days[-1]["date"] == now.strftime("%Y-%m-%d")
    assert days[0]["date"] == (now - timedelta(days=89)).strftime("%Y-%m-%d")
    day_totals = {d["date"]: (d["total"], d["success"], d["failure"]) for d in days if d["total"]}
    assert sum(v[0] for v in day_totals.values()) == 197
    assert sum(v[1] for v in day_totals.values()) == 180
    assert sum(v[2] for v in day_totals.values()) == 10
    # Uptime = success / (success + failure) = 180 / 190.
    expected = round(100 * 180 / 190, 3)
    assert index["uptime"] == {"24h": expected, "7d": expected, "30d": expected, "90d": expected}
    # Window = the last 5 minutes: only the 40 successes at `now`.
    assert index["status"] == "operational"
    assert index["window"] == {"minutes": 5, "requests": 40}
    assert index["latency"] == {"p50_ms": P50_20MS, "p95_ms": P95_20MS, "threshold_ms": None}
    assert "slo" not in index  # no objective set
    assert empty["p50_ms"] is None and empty["p95_ms"] is None
    assert index["updated_at"] == now.strftime("%Y-%m-%dT%H:%M:00Z")
    # Routes without traffic are "no data", never operational.
    boom = component(document, "/boom")
    assert boom["status"] == "no_data"
    assert boom["uptime"] == {"24h": None, "7d": None, "30d": None, "90d": None}
    assert boom["updated_at"] is None
    items = component(document, "/items/<int:item_id>")
    # Its 3 requests are older than the 5-minute window, which reaches back (up
    # to 60 minutes) for them; too few for anything worse than degraded anyway.
    assert items["status"] == "operational"
    assert items["uptime"]["24h"] == 100.0
    assert document["status"] == {"indicator": "none", "description": "All Systems Operational"}
    # 10 % failures at t0 is an incident (partial outage ratio 0.10) of one minute.
    [incident] = document["incidents"]
    assert incident["created_at"] == t0.strftime("%Y-%m-%dT%H:%M:00Z")
    assert incident["resolved_at"] == (t0 + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:00Z")
    assert incident["status"] == "resolved"
    assert incident["impact"] == "major"
    assert incident["component_ids"] == [index["id"]]
    assert incident["failures"] == 10
    assert incident["name"] == "Failures on Index"


def test_summary_json_over_http_after_real_requests(db_url: str, make_app: MakeApp) -> None:
    # Absolute links come from the configured public URL, never from the Host header.
    app, status = make_app(db_url, config={"FLASK_STATUS_PUBLIC_URL": "http://localhost"})
    client = app.test_client()
    for _ in range(8):
        assert client.get("/").status_code == 200
    for _ in range(2):
        assert client.get("/code/503").status_code == 503
    assert client.get("/code/418").status_code == 418
    assert status.flush(app) == 11
    response = client.get("/status/summary.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = response.get_json()
    index = component(document, "/")
    assert (index["minutes"][-1]["total"], index["minutes"][-1]["success"]) == (8, 8)
    assert index["days"][-1]["total"] == 8
    code = component(document, "/code/<int:code>")
    last = code["minutes"][-1]
    assert {k: last[k] for k in ("total", "success", "failure", "uptime")} == {
        "total": 3, "success": 0, "failure": 2, "uptime": 0.0,
    }  # fmt: skip
    # Real requests: real latencies, measured (a number, whatever the machine's speed).
    assert last["p95_ms"] > 0 and last["p50_ms"] <= last["p95_ms"]
    assert code["window"] == {"minutes": 60, "requests": 2}  # reached back: too few
    # 2 failures of 2 classified requests: too few (FLASK_STATUS_MIN_REQUESTS = 10)
    # for an outage, so degraded at worst.
    assert code["status"] == "degraded_performance"
    assert document["status"]["indicator"] == "minor"
    assert document["page"]["url"] == "http://localhost/status"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", document["page"]["updated_at"])
    # The extension's own requests are not components.
    assert not any(c["rule"].startswith("/status") for c in document["components"])


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        (0, "operational"),
        (1, "degraded_performance"),  # 1 % = FLASK_STATUS_DEGRADED_RATIO
        (9, "degraded_performance"),
        (10, "partial_outage"),  # 10 % = FLASK_STATUS_PARTIAL_OUTAGE_RATIO
        (49, "partial_outage"),
        (50, "major_outage"),  # 50 % = FLASK_STATUS_MAJOR_OUTAGE_RATIO
        (100, "major_outage"),
    ],
)
def test_statuses_at_the_default_thresholds(
    sqlite_url: str, make_app: MakeApp, failures: int, expected: str
) -> None:
    app, _ = make_app(sqlite_url)
    now = base_minute()
    traffic = {("/", now, 200): 100 - failures}
    if failures:
        traffic[("/", now, 500)] = failures
    write(app, traffic)
    document = summary_at(app, now)
    assert component(document, "/")["status"] == expected


def test_thresholds_come_from_config(sqlite_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(
        sqlite_url,
        config={
            "FLASK_STATUS_DEGRADED_RATIO": 0.2,
            "FLASK_STATUS_PARTIAL_OUTAGE_RATIO": 0.3,
            "FLASK_STATUS_MAJOR_OUTAGE_RATIO": 0.9,
        },
    )
    now = base_minute()
    write(app, {("/", now, 200): 85, ("/", now, 500): 15})
    assert component(summary_at(app, now), "/")["status"] == "operational"
    write(app, {("/", now, 500): 15})  # now 30 / 115 = 26 %
    assert component(summary_at(app, now), "/")["status"] == "degraded_performance"


def test_only_neutral_requests_are_no_data(sqlite_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(sqlite_url)
    now = base_minute()
    write(app, {("/", now, 400): 12, ("/", now, 429): 3})
    index = component(summary_at(app, now), "/")
    assert index["status"] == "no_data"
    assert index["minutes"][-1] == {
        "minute": now.strftime("%Y-%m-%dT%H:%M:00Z"),
        "total": 15, "success": 0, "failure": 0, "uptime": None,
        "p50_ms": P50_20MS, "p95_ms": P95_20MS,  # neutral requests took time too
    }  # fmt: skip


def test_status_window_is_the_last_minutes_only(sqlite_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(sqlite_url, config={"FLASK_STATUS_STATUS_WINDOW": 3})
    t0 = base_minute()
    write(app, {("/", t0, 500): 10})
    assert component(summary_at(app, t0 + timedelta(minutes=2)), "/")["status"] == "major_outage"
    # Three minutes later the window holds no request: it reaches back (up to 60
    # minutes) to the failing minute rather than say "no data".
    later = t0 + timedelta(minutes=3)
    assert component(summary_at(app, later), "/")["status"] == "major_outage"
    # Once the window holds enough requests, older minutes no longer count.
    write(app, {("/", later, 200): 10})
    assert component(summary_at(app, later), "/")["status"] == "operational"
    # Sixty minutes on, nothing is left to reach: no data, not green.
    assert component(summary_at(app, later + timedelta(minutes=60)), "/")["status"] == "no_data"


# -- the scripted outage -------------------------------------------------------------


def test_scripted_outage_gives_one_five_minute_incident(db_url: str, make_app: MakeApp) -> None:
    """A route answers 503 from minute 10 to minute 15 of a 20-minute run."""
    app, _ = make_app(db_url)
    t0 = base_minute() - timedelta(minutes=10)
    traffic = {}
    for minute in range(20):
        code = 503 if 10 <= minute < 15 else 200
        traffic[("/code/<int:code>", t0 + timedelta(minutes=minute), code)] = 6
        traffic[("/", t0 + timedelta(minutes=minute), 200)] = 6  # healthy all along
    write(app, traffic)
    state = get_state(app)
    end_of_run = t0 + timedelta(minutes=20)

    [incident] = queries.incidents(state, now=end_of_run)
    assert incident.rule == "/code/<int:code>"
    assert incident.start == t0 + timedelta(minutes=10)
    assert incident.end == t0 + timedelta(minutes=15)
    assert incident.duration == timedelta(minutes=5)
    assert incident.failures == 30
    assert not incident.ongoing

    document = summary_at(app, end_of_run)
    [entry] = document["incidents"]
    assert entry["created_at"] == (t0 + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:00Z")
    assert entry["resolved_at"] == (t0 + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:00Z")
    assert entry["status"] == "resolved"
    assert entry["impact"] == "critical"
    assert entry["failures"] == 30
    assert entry["component_ids"] == [component(document, "/code/<int:code>")["id"]]

    # During the outage: ongoing, and the route (not the other) is in major outage.
    during = summary_at(app, t0 + timedelta(minutes=13))
    [ongoing] = during["incidents"]
    assert ongoing["status"] == "investigating"
    assert ongoing["resolved_at"] is None
    assert component(during, "/code/<int:code>")["status"] == "major_outage"
    assert component(during, "/")["status"] == "operational"
    assert during["status"]["indicator"] == "critical"

    # The page lists it with start, end and duration.
    with app.test_request_context("/status"):
        snapshot = state.reader.snapshot(end_of_run)
    assert [i.duration for i in snapshot.incidents] == [timedelta(minutes=5)]


def test_short_gaps_are_merged_into_one_incident(sqlite_url: str, make_app: MakeApp) -> None:
    # Defaults: two failing minutes in a row open an incident, five minutes
    # with traffic and no failing minute close it.
    app, _ = make_app(sqlite_url)
    t0 = base_minute() - timedelta(minutes=10)
    traffic = {("/", t0 + timedelta(minutes=m), 200): 1 for m in range(30)}
    for m in (0, 1, 3, 10, 11, 16, 22):
        traffic[("/", t0 + timedelta(minutes=m), 500)] = 5
    write(app, traffic)
    found = queries.incidents(get_state(app), now=t0 + timedelta(minutes=30))
    # 0-1 open one; 3 (one good minute between) joins it; 10-11 (six good minutes
    # later) open a new one, which 16 (four good minutes later) joins; five good
    # minutes close it, so 22 stands alone: one failing minute opens nothing.
    assert [(i.start, i.end, i.failures, i.ongoing) for i in found] == [
        (t0 + timedelta(minutes=10), t0 + timedelta(minutes=17), 15, False),
        (t0, t0 + timedelta(minutes=4), 15, False),
    ]


# -- the HTML page ---------------------------------------------------------------------


def test_page_rows_squares_and_texts(sqlite_url: str, make_app: MakeApp) -> None:
    app, status = make_app(sqlite_url, config={"FLASK_STATUS_PAGE_TITLE": "Acme status"})
    client = app.test_client()
    client.get("/")
    client.get("/code/500")
    status.flush(app)
    response = client.get("/status")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "<title>Acme status</title>" in html
    rows = re.findall(r'<article class="row" data-id="(\d+)"', html)
    assert len(rows) == 4  # /, /code/<code>, /boom, /items/<id>
    for strip in ("days", "minutes"):
        strips = re.findall(rf'<div class="strip {strip}"[^>]*>(.*?)</div>', html)
        assert len(strips) == 4
        assert all(s.count('class="sq ') == (90 if strip == "days" else 60) for s in strips)
    # Every square has a title fallback with the numbers behind it.
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert re.search(rf'title="{today} UTC · Operational&#10;Requests: 1&#10;Failures: 0', html)
    assert "Major outage" in html  # /code/500: the label, not only the colour
    assert "Major System Outage" in html
    assert "Uptime = successful requests / (successful + failed requests)" in html
    assert "Days are UTC days" in html
    assert "Last 90 days (UTC days)" in html
    assert "Last data" in html and "never" in html  # /boom has no data
    assert "Incident feed (Atom)" in html
    assert "/status/static/status.js" in html and "/status/static/status.css" in html
    for name in ("status.js", "status.css"):
        with client.get(f"/status/static/{name}") as static:  # closes the file it streams
            assert static.status_code == 200


def test_page_in_spanish_from_accept_language_and_from_config(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app, _ = make_app(sqlite_url)
    client = app.test_client()
    html = client.get("/status", headers={"Accept-Language": "es-ES,es;q=0.9"}).text
    assert '<html lang="es">' in html
    assert "Estado del servicio" in html and "Sin datos" in html
    assert "días UTC" in html
    english = client.get("/status", headers={"Accept-Language": "de-DE"}).text
    assert '<html lang="en">' in english and "Service status" in english
    response = client.get("/status")
    assert "Accept-Language" in response.headers["Vary"]

    fixed, _ = make_app(sqlite_url, config={"FLASK_STATUS_LANGUAGE": "es"})
    html = fixed.test_client().get("/status", headers={"Accept-Language": "en"}).text
    assert '<html lang="es">' in html
    summary = fixed.test_client().get("/status/summary.json").get_json()
    assert summary["status"]["description"] == "Sin datos recientes"


def test_page_at_another_prefix_leaves_host_static_alone(
    sqlite_url: str, make_app: MakeApp, tmp_path: Path
) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (static / "status.css").write_text("/* the host's own */")
    app, _ = make_app(sqlite_url, url_prefix="health")
    app.static_folder = str(static)  # the host's, set by the test as a host would
    client = app.test_client()
    assert client.get("/health").status_code == 200
    host_css = client.get("/static/status.css")
    with host_css:
        assert host_css.text == "/* the host's own */"
    our_css = client.get("/health/static/status.css")
    with our_css:
        assert "flask-server-status" in our_css.text
    assert client.get("/status").status_code == 404


# -- escaping --------------------------------------------------------------------------


def rename(app: Flask, rule: str, **changes: Any) -> None:
    state = get_state(app)
    state.route_ids()  # the route rows exist from the first request or flush on
    with app.app_context():
        service.update_route(state.db.session, rule, changes)
        state.db.session.remove()


def test_user_text_is_escaped_in_html_json_svg_and_atom(sqlite_url: str, make_app: MakeApp) -> None:
    app, status = make_app(sqlite_url)
    rename(app, "/", name=PAYLOADS[0], doc=PAYLOADS[1])
    rename(app, "/code/<int:code>", name=PAYLOADS[2], doc=PAYLOADS[0])
    client = app.test_client()
    client.get("/")
    client.get("/code/500")
    status.flush(app)
    now = queries.floor_minute(datetime.now(timezone.utc))
    # Two failing minutes in a row: an incident whose title holds the payload.
    write(app, {("/code/<int:code>", now - timedelta(minutes=m), 500): 3 for m in (1, 2)})

    html = client.get("/status").text
    for payload in PAYLOADS[:2]:
        assert payload not in html
    assert html.count("</script>") == 2  # the closing tags of our own two scripts
    assert "&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert html.count("<script") == 2  # the config block and status.js, nothing else
    assert "<img" not in html
    # The JSON embedded for the script holds the names as data, with no "<" at all.
    embedded = must(
        re.search(
            r'<script id="flask-status-config" type="application/json">(.*?)</script>', html, re.S
        )
    ).group(1)
    assert "<" not in embedded and ">" not in embedded
    names = {c["name"] for c in json.loads(embedded)["components"]}
    assert {PAYLOADS[0], PAYLOADS[2]} <= names

    # summary.json carries the text as it was typed (JSON is not HTML).
    document = client.get("/status/summary.json").get_json()
    assert component(document, "/")["name"] == PAYLOADS[0]
    assert component(document, "/")["description"] == PAYLOADS[1]

    route_id = component(document, "/")["id"]
    svg = client.get(f"/status/badge/{route_id}.svg")
    assert svg.mimetype == "image/svg+xml"
    for payload in PAYLOADS:
        assert payload not in svg.text
    tree = ET.fromstring(svg.data)  # well-formed despite the payload
    assert xml_text(tree, f"{SVG}title").startswith(PAYLOADS[0] + ": ")

    other = component(document, "/code/<int:code>")["id"]
    svg = client.get(f"/status/badge/{other}.svg")
    assert "</script>" not in svg.text
    assert xml_text(ET.fromstring(svg.data), f"{SVG}title").startswith("</script>: ")

    feed = client.get("/status/history.atom")
    for payload in PAYLOADS:
        assert payload not in feed.text
    titles = [xml_text(e, f"{ATOM}title") for e in ET.fromstring(feed.data).iter(f"{ATOM}entry")]
    assert titles == ["Failures on </script> (ongoing)"]


def test_a_rename_or_new_data_shows_at_once_despite_the_page_cache(
    db_url: str, make_app: MakeApp
) -> None:
    app, status = make_app(db_url)  # FLASK_STATUS_PAGE_CACHE_SECONDS = 5
    client = app.test_client()
    assert ">Index</h2>" in client.get("/status").text
    rename(app, "/", name="Home page")
    html = client.get("/status").text
    assert ">Home page</h2>" in html and ">Index</h2>" not in html
    assert component(client.get("/status/summary.json").get_json(), "/")["name"] == "Home page"
    rename(app, "/", hidden=True)
    assert "Home page" not in client.get("/status").text
    rename(app, "/", hidden=False)
    client.get("/")
    status.flush(app)
    index = component(client.get("/status/summary.json").get_json(), "/")
    assert index["minutes"][-1]["total"] == 1


def test_a_change_made_by_another_process_shows_at_once(sqlite_url: str, make_app: MakeApp) -> None:
    """Two apps on one database stand for two workers: each has its own page cache."""
    worker_a, _ = make_app(sqlite_url)
    worker_b, status_b = make_app(sqlite_url)
    client_a = worker_a.test_client()
    assert ">Index</h2>" in client_a.get("/status").text
    rename(worker_b, "/", name="Renamed elsewhere")
    assert ">Renamed elsewhere</h2>" in client_a.get("/status").text
    worker_b.test_client().get("/")
    status_b.flush(worker_b)
    index = component(client_a.get("/status/summary.json").get_json(), "/")
    assert index["days"][-1]["total"] == 1


def test_page_cache_can_be_turned_off(sqlite_url: str, make_app: MakeApp) -> None:
    app, status = make_app(sqlite_url, config={"FLASK_STATUS_PAGE_CACHE_SECONDS": 0})
    client = app.test_client()
    first = client.get("/status/summary.json")
    client.get("/")
    status.flush(app)
    second = client.get("/status/summary.json")
    assert second.headers["ETag"] != first.headers["ETag"]
    assert component(second.get_json(), "/")["days"][-1]["total"] == 1


# -- Atom, badges, caching, database down ----------------------------------------------


def test_history_atom_is_a_valid_feed(sqlite_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(sqlite_url, config={"FLASK_STATUS_PUBLIC_URL": "http://localhost"})
    t0 = base_minute() - timedelta(minutes=10)
    write(app, {("/", t0 + timedelta(minutes=m), 503): 4 for m in range(3)})
    # Five minutes of traffic with no failing minute close it.
    write(app, {("/", t0 + timedelta(minutes=m), 200): 1 for m in range(3, 8)})
    response = app.test_client().get("/status/history.atom")
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    feed = ET.fromstring(response.data)
    assert feed.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated"):
        assert feed.find(f"{ATOM}{required}") is not None
    assert (
        xml_find(feed, f"{ATOM}link[@rel='self']").get("href")
        == "http://localhost/status/history.atom"
    )
    [entry] = feed.findall(f"{ATOM}entry")
    assert xml_text(entry, f"{ATOM}title") == "Failures on Index (resolved)"
    assert xml_text(entry, f"{ATOM}published") == t0.strftime("%Y-%m-%dT%H:%M:00Z")
    assert xml_text(entry, f"{ATOM}updated") == (t0 + timedelta(minutes=3)).strftime(
        "%Y-%m-%dT%H:%M:00Z"
    )
    assert "3 min" in xml_text(entry, f"{ATOM}summary")
    assert xml_text(entry, f"{ATOM}id").startswith("http://localhost/status#incident-")


def test_badge_shows_status_and_uptime_and_404s_unknown_or_hidden(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app, status = make_app(sqlite_url)
    client = app.test_client()
    for _ in range(3):
        client.get("/")
    status.flush(app)
    route_id = component(client.get("/status/summary.json").get_json(), "/")["id"]
    response = client.get(f"/status/badge/{route_id}.svg")
    assert response.status_code == 200
    svg = ET.fromstring(response.data)
    assert xml_text(svg, f"{SVG}title") == "Index: operational · 100.00%"
    assert client.get("/status/badge/9999.svg").status_code == 404
    rename(app, "/", hidden=True)
    assert client.get(f"/status/badge/{route_id}.svg").status_code == 404


@pytest.mark.parametrize("path", ["/status", "/status/summary.json", "/status/history.atom"])
def test_caching_headers_and_304(sqlite_url: str, make_app: MakeApp, path: str) -> None:
    app, status = make_app(sqlite_url)
    client = app.test_client()
    first = client.get(path)
    assert first.status_code == 200
    cache_control = first.headers["Cache-Control"]
    assert "public" in cache_control
    max_age = int(must(re.search(r"max-age=(\d+)", cache_control)).group(1))
    assert 0 < max_age <= 60
    etag = first.headers["ETag"]
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    # New data, new ETag: the revalidation gets the new body.
    client.get("/")
    status.flush(app)
    changed = client.get(path, headers={"If-None-Match": etag})
    if path.endswith(".atom"):
        assert changed.status_code == 304  # no incident: the feed did not change
    else:
        assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_etag_is_stable_within_a_minute_without_the_page_cache(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app, _ = make_app(sqlite_url, config={"FLASK_STATUS_PAGE_CACHE_SECONDS": 0})
    client = app.test_client()
    for path in ("/status", "/status/summary.json"):
        etag = client.get(path).headers["ETag"]
        assert client.get(path, headers={"If-None-Match": etag}).status_code == 304


def test_database_down_shows_unavailable_never_500(tmp_path: Path, make_app: MakeApp) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    app, _ = make_app(f"sqlite:///{folder / 'status.db'}")
    client = app.test_client()
    assert client.get("/status").status_code == 200
    shutil.rmtree(folder)
    get_state(app).engine.dispose()
    response = client.get("/status")
    assert response.status_code == 503
    assert "Status data unavailable" in response.text
    assert response.headers["Cache-Control"] == "no-store"
    summary = client.get("/status/summary.json")
    assert summary.status_code == 503
    assert summary.get_json() == {"error": "Status data unavailable"}
    assert client.get("/status/history.atom").status_code == 503
    assert client.get("/status/badge/1.svg").status_code == 503
    # The host's own routes keep answering.
    assert client.get("/").status_code == 200


def test_refresh_interval_is_configurable(sqlite_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(sqlite_url, config={"FLASK_STATUS_REFRESH_SECONDS": 2})
    html = app.test_client().get("/status").text
    config = json.loads(
        must(re.search(r'type="application/json">(.*?)</script>', html, re.S)).group(1)
    )
    assert config["refresh"] == 2
    assert config["summary"] == "/status/summary.json"
    assert "every 2 seconds" in html


# -- the benchmark script keeps running -------------------------------------------------


def test_bench_page_smoke(tmp_path: Path) -> None:
    # run_bench also checks that the script succeeded and left the docs alone.
    results, stdout = run_bench("page", tmp_path)
    # The three histories, each written whole through the store.
    assert [r["history"] for r in results] == ["1 thousand", "same rows", "1 million"]
    assert results[0]["requests"] == 1_000
    assert results[2]["requests"] == 1_000_000
    for r in results:
        for mode in ("first", "new", "unchanged"):
            assert r[f"{mode}_page_ms"] > 0 and r[f"{mode}_summary_ms"] > 0, r
        assert r["page_bytes"] > 10_000 and r["summary_bytes"] > 10_000, r
    assert "After new data" in stdout


# -- the page in parts: texts from the config, human times, weight, links, badges -------


def at_minute(app: Flask, now: datetime) -> None:
    """Stand the app's page at ``now`` (the page reads "now" from ``state.clock``)."""
    get_state(app).clock = lambda: now


def test_footer_explains_the_failure_codes_in_force(sqlite_url: str, make_app: MakeApp) -> None:
    default, _ = make_app(sqlite_url)
    html = default.test_client().get("/status").text
    assert "Failed: 5xx and 404; other 4xx" in html
    custom, _ = make_app(sqlite_url, config={"FLASK_STATUS_FAILURE_CODES": [404, 429, 409]})
    html = custom.test_client().get("/status").text
    assert "Failed: 5xx and 404, 409, 429; other 4xx" in html
    assert "5xx and 404;" not in html
    spanish = custom.test_client().get("/status", headers={"Accept-Language": "es"}).text
    assert "Fallidas: 5xx y 404, 409, 429;" in spanish
    # The thresholds are the configured ones too.
    ratios, _ = make_app(
        sqlite_url,
        config={
            "FLASK_STATUS_DEGRADED_RATIO": 0.05,
            "FLASK_STATUS_PARTIAL_OUTAGE_RATIO": 0.2,
            "FLASK_STATUS_MAJOR_OUTAGE_RATIO": 0.8,
            "FLASK_STATUS_STATUS_WINDOW": 7,
        },
    )
    html = ratios.test_client().get("/status").text
    assert "last 7 minutes, or as many more (up to 60)" in html
    assert "failure ratio ≥ 5% degraded, ≥ 20% partial outage, ≥ 80%" in html


def test_times_are_relative_with_the_exact_minute_for_people_and_machines(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app, _ = make_app(sqlite_url)
    now = base_minute() + timedelta(minutes=40)  # the current minute
    at_minute(app, now + timedelta(seconds=30))
    quiet_minute = now - timedelta(days=2, hours=3, minutes=17)
    write(
        app,
        {
            ("/", now - timedelta(minutes=3), 200): 5,
            # Older than the 60-minute strip: its last minute comes from the minute rows.
            ("/items/<int:item_id>", quiet_minute, 200): 2,
            # An outage still going on at `now`.
            ("/code/<int:code>", now - timedelta(minutes=2), 503): 10,
            ("/code/<int:code>", now - timedelta(minutes=1), 503): 10,
            ("/code/<int:code>", now, 503): 10,
        },
    )
    html = app.test_client().get("/status").text
    iso_last = (now - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:00Z")
    exact = (now - timedelta(minutes=3)).strftime("%Y-%m-%d %H:%M UTC")
    assert f'<time datetime="{iso_last}" title="{exact}" tabindex="0">3 min ago</time>' in html
    quiet_iso = quiet_minute.strftime("%Y-%m-%dT%H:%M:00Z")
    assert (
        f'<time datetime="{quiet_iso}" title="{quiet_minute.strftime("%Y-%m-%d %H:%M UTC")}"'
        ' tabindex="0">2 d 3 h ago</time>'
    ) in html
    # No day bucket's start shown as if it were the exact last minute.
    assert quiet_minute.strftime("%Y-%m-%dT00:00:00Z") not in html
    # The open incident: "Ongoing", never "Ended ongoing".
    meta = must(re.search(r'<li class="incident ongoing"[^>]*>(.*?)</li>', html, re.S)).group(1)
    assert "Ongoing" in meta and "Ended" not in meta
    start = (now - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:00Z")
    assert f'<time datetime="{start}"' in meta and "2 min ago" in meta
    assert "Duration 3 min" in meta
    # The footer's "updated" is the clock's minute.
    assert f'<time id="updated" datetime="{now.strftime("%Y-%m-%dT%H:%M:00Z")}"' in html


def test_relative_times_in_spanish(sqlite_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(sqlite_url, config={"FLASK_STATUS_LANGUAGE": "es"})
    now = base_minute() + timedelta(minutes=40)
    at_minute(app, now)
    write(app, {("/", now - timedelta(minutes=130), 200): 5})
    html = app.test_client().get("/status").text
    assert ">hace 2 h 10 min</time>" in html


def test_footer_credit_is_on_by_default_and_off_by_config(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app, _ = make_app(sqlite_url)
    credit = 'Powered by <a href="https://pypi.org/project/flask-server-status/">'
    assert credit in app.test_client().get("/status").text
    off, _ = make_app(sqlite_url, config={"FLASK_STATUS_SHOW_CREDIT": False})
    html = off.test_client().get("/status").text
    assert credit not in html and 'class="credit"' not in html


@pytest.mark.parametrize(
    "path", ["/status", "/status/summary.json", "/status/history.atom", "/status/updates.json"]
)
def test_a_forged_host_never_reaches_a_public_answer(
    sqlite_url: str, make_app: MakeApp, path: str
) -> None:
    app, _ = make_app(sqlite_url)
    t0 = base_minute()
    write(app, {("/", t0 + timedelta(minutes=m), 503): 4 for m in range(3)})  # an incident
    client = app.test_client()
    forged = client.get(path, headers={"Host": "evil.example"})
    assert forged.status_code == 200
    assert "evil.example" not in forged.text
    if path.endswith("summary.json"):
        assert forged.get_json()["page"]["url"] == "/status"
    configured, _ = make_app(
        sqlite_url, config={"FLASK_STATUS_PUBLIC_URL": "https://status.example.com"}
    )
    answer = configured.test_client().get(path, headers={"Host": "evil.example"})
    assert "evil.example" not in answer.text
    if path.endswith("summary.json"):
        assert answer.get_json()["page"]["url"] == "https://status.example.com/status"
    if path.endswith(".atom"):
        feed = ET.fromstring(answer.data)
        assert xml_find(feed, f"{ATOM}link[@rel='self']").get("href") == (
            "https://status.example.com/status/history.atom"
        )
        [entry] = feed.findall(f"{ATOM}entry")
        assert xml_text(entry, f"{ATOM}id").startswith("https://status.example.com/status#")


def test_updates_json_sends_what_changed_since_the_pages_minute(
    sqlite_url: str, make_app: MakeApp
) -> None:
    # Flushes every minute: a minute older than 1 + 2 minutes no longer changes.
    app, _ = make_app(sqlite_url, config={"FLASK_STATUS_FLUSH_INTERVAL": 60})
    now = base_minute() + timedelta(minutes=40)
    at_minute(app, now)
    earlier = now - timedelta(minutes=30)
    write(app, {("/", now, 200): 38, ("/", now, 500): 2, ("/", earlier, 200): 9})
    client = app.test_client()
    full = client.get("/status/updates.json").get_json()
    assert full["full"] is True
    index_id = component(client.get("/status/summary.json").get_json(), "/")["id"]
    index = next(c for c in full["components"] if c["id"] == index_id)
    assert len(index["minutes"]) == 60 and len(index["days"]) == 90
    assert index["minutes"][-1][:3] == [40, 2, 0]
    assert index["minutes"][-31][:3] == [9, 0, 0]
    assert index["minutes"][-2] == 0  # an empty minute is a single 0
    # The status window (5 minutes) holds the 40 requests of `now`: 2 failed, 5 %.
    assert index["window"] == [5, 38, 2] and index["status"] == "degraded_performance"
    assert full["now"] == now.strftime("%Y-%m-%dT%H:%M:00Z")

    since = (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:00Z")
    delta = client.get(f"/status/updates.json?since={since}").get_json()
    lag = page.summary.late_minutes(get_state(app).settings)
    assert delta["full"] is False
    assert delta["minutes_from"] == (now - timedelta(minutes=1 + lag)).strftime(
        "%Y-%m-%dT%H:%M:00Z"
    )
    index = next(c for c in delta["components"] if c["id"] == index["id"])
    assert len(index["minutes"]) == lag + 2
    assert index["minutes"][-1][:3] == [40, 2, 0]
    assert len(index["days"]) in (1, 2)  # today, and yesterday when the lag crosses midnight
    # A `since` too old or unreadable gets the whole series.
    for bad in ("yesterday", (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:00Z")):
        assert client.get(f"/status/updates.json?since={bad}").get_json()["full"] is True


def _app_with_routes(url: str, n: int, **config: Any) -> tuple[Flask, Any]:
    from flask_server_status import FlaskStatus

    app = Flask(f"weight_{n}")
    app.config.update(SQLALCHEMY_DATABASE_URI=url, **config)
    for i in range(n):

        def view(i: int = i) -> str:
            return str(i)

        view.__doc__ = f"# Product details {i}\nOne product of the catalogue, by its id."
        app.add_url_rule(f"/api/products/<int:product_id>/details/{i}", f"r{i}", view)
    return app, FlaskStatus(app)


def test_page_weight_for_50_routes_and_90_days(tmp_path: Path) -> None:
    """Issue 16: at most 300 KB of HTML, at most 30 KB a minute for the live refresh,
    with everything on: an objective and a latency threshold (budget bars, p95)."""
    app, _ = _app_with_routes(
        f"sqlite:///{tmp_path / 'weight.db'}",
        50,
        FLASK_STATUS_SLO_TARGET=99.9,
        FLASK_STATUS_LATENCY_THRESHOLD_MS=500,
    )
    state = get_state(app)
    now = queries.floor_minute(datetime.now(timezone.utc))
    at_minute(app, now)
    rules = [f"/api/products/<int:product_id>/details/{i}" for i in range(50)]
    counts = {}
    for n, rule in enumerate(rules):
        for day in range(1, 90):  # a busy day: 21,600 requests, a few hundred failing
            minute = now - timedelta(days=day)
            counts[(rule, minute, 200)] = slot(21_300 + n)
            counts[(rule, minute, 500)] = slot(300 - n)
        for back in range(60):  # 15 requests a minute, one failing now and then
            minute = now - timedelta(minutes=back)
            counts[(rule, minute, 200)] = slot(14 if back % 3 else 15)
            if back % 3 == 0:
                counts[(rule, minute, 404)] = slot(1)
    write_counts(app, counts)
    client = app.test_client()
    html = client.get("/status")
    assert html.status_code == 200 and html.text.count('<i class="sq ') == 50 * 150
    assert len(html.data) <= 300 * 1024, len(html.data)
    assert html.text.count('<meter class="bar') == 50
    # A minute later, new traffic everywhere; the page asks for what changed.
    later = now + timedelta(minutes=1)
    at_minute(app, later)
    write_counts(app, {(rule, later, 200): slot(15) for rule in rules})
    since = now.strftime("%Y-%m-%dT%H:%M:00Z")
    refresh = client.get(f"/status/updates.json?since={since}")
    assert refresh.get_json()["full"] is False
    assert len(refresh.data) <= 30 * 1024, len(refresh.data)
    print(f"weight: page {len(html.data)} B, refresh {len(refresh.data)} B")
    state.buffer.stop(flush=False)


def test_route_details_page_shows_every_bucket_without_javascript(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app, _ = make_app(sqlite_url)
    now = base_minute() + timedelta(minutes=40)
    at_minute(app, now)
    rename(app, "/", name=PAYLOADS[0])
    four_ago = now - timedelta(minutes=4)
    write(app, {("/", four_ago, 200): 7, ("/", four_ago, 500): 3})
    client = app.test_client()
    route_id = component(client.get("/status/summary.json").get_json(), "/")["id"]
    assert f'href="/status/routes/{route_id}"' in client.get("/status").text
    response = client.get(f"/status/routes/{route_id}")
    assert response.status_code == 200
    html = response.text
    assert PAYLOADS[0] not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count('<tr><th scope="row">') == 60 + 90
    minute = (now - timedelta(minutes=4)).strftime("%Y-%m-%d %H:%M UTC")
    row = must(re.search(rf'<tr><th scope="row">{minute}</th>(.*?)</tr>', html)).group(1)
    assert "Partial outage" in row and "<td>10</td><td>3</td><td>70.00%</td>" in row
    assert client.get("/status/routes/9999").status_code == 404


def test_badge_boxes_fit_their_text(sqlite_url: str, make_app: MakeApp) -> None:
    from flask_server_status.page import badge

    # Verdana 11px: an "i" is narrow, an "M" wide; a box is its text plus padding.
    assert badge.text_width("iiii") < badge.text_width("MMMM")
    assert badge.box_width("ok") == round(badge.text_width("ok")) + 2 * badge.PADDING
    assert 13 <= badge.text_width("ok") <= 14
    short, long = badge.box_width("API"), badge.box_width("Product details and prices")
    assert long - 2 * badge.PADDING > 6 * (short - 2 * badge.PADDING)
    app, status = make_app(sqlite_url)
    rename(app, "/", name="A")
    client = app.test_client()
    client.get("/")
    status.flush(app)
    route_id = component(client.get("/status/summary.json").get_json(), "/")["id"]
    svg = ET.fromstring(client.get(f"/status/badge/{route_id}.svg").data)
    rects = svg.findall(f"{SVG}g/{SVG}rect")
    left, right = int(must(rects[0].get("width"))), int(must(rects[1].get("width")))
    assert left == badge.box_width("A") < 25  # a one-letter label gets a small box
    assert right == badge.box_width("operational · 100.00%")
    assert int(must(svg.get("width"))) == left + right


def test_format_writes_percent_time_and_duration_one_way() -> None:
    from flask_server_status import format as fmt

    moment = datetime(2026, 12, 1, 0, 51, tzinfo=timezone.utc)
    assert fmt.iso(moment) == "2026-12-01T00:51:00Z"
    assert fmt.utc_time(moment) == "2026-12-01 00:51 UTC"
    assert fmt.percent(99.996) == "99.99%" and fmt.percent(None) == "\u2013"
    assert fmt.duration(timedelta(hours=2, minutes=10)) == "2 h 10 min"
    assert fmt.duration(timedelta(days=1, minutes=5)) == "1 d 0 h 5 min"
    assert fmt.relative(moment - timedelta(minutes=3), moment) == "3 min ago"
    assert fmt.relative(moment - timedelta(hours=2, minutes=10), moment) == "2 h 10 min ago"
    assert fmt.relative(moment - timedelta(days=3, hours=4), moment) == "3 d 4 h ago"
    assert fmt.relative(moment - timedelta(seconds=20), moment) == "just now"


# -- what a verdict rests on: window, latency, error budget (issue 11) ------------------


def test_error_budget_in_json_page_and_badge(db_url: str, make_app: MakeApp) -> None:
    """200 requests, 1 failure, target 99 %: half the budget is left, everywhere."""
    app, _ = make_app(db_url, config={"FLASK_STATUS_SLO_TARGET": 99})
    now = base_minute() + timedelta(minutes=40)
    at_minute(app, now)
    # All in the last hour: burn rate 1 h = 6 h = (1/200) / (1 - 0.99) = 0.5.
    # /boom: 80 good, 20 bad in the last hour: burn rate (20/100) / 0.01 = 20 > 14.4.
    write(
        app,
        {
            ("/", now - timedelta(minutes=20), 200): 99,
            ("/", now, 200): 100,
            ("/", now, 500): 1,
            ("/boom", now - timedelta(minutes=10), 200): 80,
            ("/boom", now - timedelta(minutes=10), 500): 20,
        },
    )
    client = app.test_client()
    document = client.get("/status/summary.json").get_json()
    index = component(document, "/")
    assert index["slo"] == {
        "target": 99.0, "window_days": 30, "good": 199, "bad": 1,
        "budget_remaining": 0.5, "burn_rate_1h": 0.5, "burn_rate_6h": 0.5,
    }  # fmt: skip
    assert component(document, "/boom")["slo"]["burn_rate_1h"] == 20.0
    assert component(document, "/code/<int:code>")["slo"]["budget_remaining"] is None
    # updates.json carries the same figures, compact, so the refresh keeps the bar right:
    # [budget left, burn rate 1 h, burn rate 6 h, page someone].
    updates = client.get("/status/updates.json").get_json()
    refresh = {c["id"]: c for c in updates["components"]}
    assert refresh[index["id"]]["slo"] == [0.5, 0.5, 0.5, 0]
    assert refresh[component(document, "/boom")["id"]]["slo"] == [-19.0, 20.0, 20.0, 1]

    html = client.get("/status").text
    row = must(re.search(rf'<article class="row" data-id="{index["id"]}".*?</article>', html, re.S))
    text = row.group(0)
    assert '<meter class="bar low" max="100" value="50.0" aria-hidden="true"></meter>' in text
    assert "50.0% left" in text and "objective 99% over 30 days" in text
    assert "burn rate 1 h 0.50 · 6 h 0.50" in text
    assert '<p class="paging" hidden>' in text  # 0.5 is no reason to wake anyone
    boom_id = component(document, "/boom")["id"]
    boom = must(re.search(rf'<article class="row" data-id="{boom_id}".*?</article>', html, re.S))
    assert '<p class="paging">' in boom.group(0)
    assert "Page someone: 1 h burn rate 20.00, above 14.4" in boom.group(0)
    spanish = client.get("/status", headers={"Accept-Language": "es"}).text
    assert "queda 50.0%" in spanish and "tasa de consumo 1 h 0.50 · 6 h 0.50" in spanish

    svg = ET.fromstring(client.get(f"/status/badge/{index['id']}.svg?metric=budget").data)
    assert xml_text(svg, f"{SVG}title") == "budget: 50.0%"
    rects = svg.findall(f"{SVG}g/{SVG}rect")
    assert int(must(rects[1].get("width"))) == page.badge.box_width("50.0%")
    # The default metric is the status; an unknown one is a 400 that still draws why.
    status_svg = ET.fromstring(client.get(f"/status/badge/{index['id']}.svg?metric=status").data)
    assert xml_text(status_svg, f"{SVG}title").startswith("Index: ")
    wrong = client.get(f"/status/badge/{index['id']}.svg?metric=<b>")
    assert wrong.status_code == 400 and wrong.mimetype == "image/svg+xml"
    assert xml_text(ET.fromstring(wrong.data), f"{SVG}title") == "metric: unknown metric"


def test_budget_badge_without_an_objective(sqlite_url: str, make_app: MakeApp) -> None:
    app, status = make_app(sqlite_url)
    client = app.test_client()
    client.get("/")
    status.flush(app)
    document = client.get("/status/summary.json").get_json()
    index = component(document, "/")
    assert "slo" not in index
    svg = ET.fromstring(client.get(f"/status/badge/{index['id']}.svg?metric=budget").data)
    assert xml_text(svg, f"{SVG}title") == "budget: no objective"
    assert 'class="budget"' not in client.get("/status").text


def test_latency_breach_shows_the_p95_and_degraded(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url, config={"FLASK_STATUS_LATENCY_THRESHOLD_MS": 250})
    now = base_minute() + timedelta(minutes=40)
    at_minute(app, now)
    # 20 successful requests of 400 ms each: no failure, but p95 400 ms > 250 ms.
    write_counts(app, {("/", now, 200): slot(20, 400.0), ("/boom", now, 200): slot(20)})
    client = app.test_client()
    document = client.get("/status/summary.json").get_json()
    index = component(document, "/")
    assert index["status"] == "degraded_performance"
    assert index["latency"] == {"p50_ms": 375.0, "p95_ms": 400.0, "threshold_ms": 250.0}
    assert index["minutes"][-1]["p95_ms"] == 400.0 and index["minutes"][-1]["p50_ms"] == 375.0
    assert index["days"][-1]["p95_ms"] == 400.0
    fast = component(document, "/boom")
    assert fast["status"] == "operational" and fast["latency"]["p95_ms"] == P95_20MS
    html = client.get("/status").text
    row = must(re.search(rf'<article class="row" data-id="{index["id"]}".*?</article>', html, re.S))
    assert "Degraded performance" in row.group(0)
    assert (
        '<span class="latency over">p95 400 ms (threshold 250 ms), over the threshold</span>'
        in row.group(0)
    )
    fast_row = must(re.search(rf'data-id="{fast["id"]}".*?</article>', html, re.S)).group(0)
    assert '<span class="latency">p95 20 ms (threshold 250 ms)</span>' in fast_row
    # The refresh sends the same figures and the breach.
    updates = client.get("/status/updates.json").get_json()
    entry = next(c for c in updates["components"] if c["id"] == index["id"])
    assert entry["latency"] == [375.0, 400.0, 250.0, 1]  # p50, p95, threshold, over it
    assert entry["window"] == [5, 20, 0] and "slo" not in entry
    assert entry["minutes"][-1] == [20, 0, 0, 400, 375]


def test_the_page_says_what_each_verdict_is_based_on(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url)
    now = base_minute() + timedelta(minutes=40)
    at_minute(app, now)
    # Busy: 1,204 requests in the current minute. Quiet: 3 requests 30 minutes ago,
    # so the window reaches back its full 60 minutes and still holds only 3.
    write(
        app,
        {
            ("/", now, 200): 1204,
            ("/boom", now - timedelta(minutes=30), 200): 2,
            ("/boom", now - timedelta(minutes=30), 500): 1,
        },
    )
    client = app.test_client()
    document = client.get("/status/summary.json").get_json()
    busy, quiet = component(document, "/"), component(document, "/boom")
    assert busy["window"] == {"minutes": 5, "requests": 1204}
    assert quiet["window"] == {"minutes": 60, "requests": 3}
    assert quiet["status"] == "degraded_performance"  # 1 of 3 failed: too few for an outage
    html = client.get("/status").text
    busy_row = must(re.search(rf'data-id="{busy["id"]}".*?</article>', html, re.S)).group(0)
    quiet_row = must(re.search(rf'data-id="{quiet["id"]}".*?</article>', html, re.S)).group(0)
    assert '<span class="basis">last 5 min, 1,204 requests</span>' in busy_row
    assert '<span class="basis">last 60 min, 3 requests</span>' in quiet_row
    assert "current status, last 60 minutes: 2 successful" in quiet_row
    spanish = client.get("/status", headers={"Accept-Language": "es"}).text
    assert "últimos 60 min, 3 peticiones" in spanish
    assert "últimos 5 min, 1,204 peticiones" in spanish


def test_footer_explains_sample_size_latency_and_objective_in_force(
    sqlite_url: str, make_app: MakeApp
) -> None:
    default, _ = make_app(sqlite_url)
    html = default.test_client().get("/status").text
    # One sentence: the window, how far it reaches back and for how many requests.
    assert (
        "current status comes from its last 5 minutes, or as many more"
        " (up to 60) as it takes to hold 10 classified requests: failure ratio"
    ) in html
    assert "never worse than degraded on fewer than 10 requests" in html
    assert "no classified request in 60 minutes means no data." in html
    assert "p95 latency over" not in html and "Error budget:" not in html
    config = {
        "FLASK_STATUS_MIN_REQUESTS": 20,
        "FLASK_STATUS_LATENCY_THRESHOLD_MS": 250,
        "FLASK_STATUS_SLO_TARGET": 99.5,
    }
    custom, _ = make_app(sqlite_url, config=config)
    footer = must(
        re.search(r'<p class="formula">(.*?)</p>', custom.test_client().get("/status").text)
    )
    text = footer.group(1)
    assert "last 5 minutes, or as many more (up to 60) as it takes to hold 20 classified" in text
    assert "When those minutes" not in text  # the old second sentence is gone
    assert "A p95 latency over 250 ms across the window makes a route degraded." in text
    assert "Error budget: objective 99.5% over 30 UTC days" in text
    spanish = custom.test_client().get("/status", headers={"Accept-Language": "es"}).text
    assert "Una latencia p95 por encima de 250 ms" in spanish
    assert (
        "sale de sus últimos 5 minutos, o de tantos más (hasta 60) como hagan falta para"
        " reunir 20 peticiones clasificadas"
    ) in spanish


def test_a_routes_own_failure_codes_show_on_its_row_only_where_they_differ(
    db_url: str, make_app: MakeApp
) -> None:
    """Issue 11 item 6: the footer states the global set; a row says its own when different."""
    app, _ = make_app(db_url)
    rename(app, "/code/<int:code>", failure_codes=[429, 404])
    rename(app, "/boom", failure_codes=[404])  # the global set again: nothing to say
    rename(app, "/", failure_codes=[])  # only the 5xx fail here
    client = app.test_client()
    document = client.get("/status/summary.json").get_json()
    ids = {rule: component(document, rule)["id"] for rule in ("/", "/code/<int:code>", "/boom")}
    html = client.get("/status").text

    def row(rule: str, text: str) -> str:
        return must(re.search(rf'data-id="{ids[rule]}".*?</article>', text, re.S)).group(0)

    assert '<p class="codes">failures here: 5xx and 404, 429</p>' in row("/code/<int:code>", html)
    assert '<p class="codes">failures here: every 5xx</p>' in row("/", html)
    assert 'class="codes"' not in row("/boom", html)
    assert html.count('class="codes"') == 2
    assert "Failed: 5xx and 404; other 4xx" in html  # the footer keeps the global set
    spanish = client.get("/status", headers={"Accept-Language": "es"}).text
    assert '<p class="codes">fallidas aquí: 5xx y 404, 429</p>' in row("/code/<int:code>", spanish)
    assert '<p class="codes">fallidas aquí: todas las 5xx</p>' in row("/", spanish)

    # The same set in another order as the global one is no difference either.
    other, _ = make_app(db_url, config={"FLASK_STATUS_FAILURE_CODES": [429, 404]})
    html = other.test_client().get("/status").text
    assert html.count('class="codes"') == 2  # "/" ([]) and /boom ([404]) differ now
    assert "failures here: 5xx and 404<" in html and "404, 429</p>" not in html
