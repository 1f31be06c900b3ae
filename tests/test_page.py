"""The public status page: summary.json, statuses, incidents, HTML, Atom, badges, caching.

Known traffic is written at stamped minutes through the normal write path
(``state.store.write``, which keeps the roll-ups) and read back with ``now=``,
so every figure below is computed by hand.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_server_status import get_state, page, queries, service
from flask_server_status.config import HISTOGRAM_SIZE

ROOT = Path(__file__).resolve().parent.parent
ATOM = "{http://www.w3.org/2005/Atom}"
SVG = "{http://www.w3.org/2000/svg}"
PAYLOADS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "</script>")


def epoch_minute(moment: datetime) -> int:
    return int(moment.timestamp()) // 60


def slot(count: int, latency_ms: float = 20.0) -> list[float]:
    """A counts slot of ``count`` requests, all in the 10-25 ms histogram bucket."""
    hist = [0] * HISTOGRAM_SIZE
    hist[2] = count
    return [count, latency_ms * count, latency_ms, *hist]


def write(app: Flask, traffic: dict[tuple[str, datetime, int], int]) -> None:
    """Write ``{(rule, minute, status): count}`` through the store, as a flush would."""
    state = get_state(app)
    counts = {
        (rule, epoch_minute(minute), code): slot(count)
        for (rule, minute, code), count in traffic.items()
    }
    state.store.write(counts, state.route_ids())


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


def test_summary_json_of_known_traffic(db_url, make_app):
    app, _ = make_app(db_url)
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
        "uptime", "days", "minutes",
    }  # fmt: skip
    # Minutes: 60, oldest first, the last is `now`.
    minutes = index["minutes"]
    assert len(minutes) == 60
    assert minutes[-1] == {
        "minute": now.strftime("%Y-%m-%dT%H:%M:00Z"),
        "total": 40, "success": 40, "failure": 0, "uptime": 100.0,
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
    assert index["updated_at"] == now.strftime("%Y-%m-%dT%H:%M:00Z")
    # Routes without traffic are "no data", never operational.
    boom = component(document, "/boom")
    assert boom["status"] == "no_data"
    assert boom["uptime"] == {"24h": None, "7d": None, "30d": None, "90d": None}
    assert boom["updated_at"] is None
    items = component(document, "/items/<int:item_id>")
    assert items["status"] == "no_data"  # its traffic is older than the window
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


def test_summary_json_over_http_after_real_requests(db_url, make_app):
    app, status = make_app(db_url)
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
    assert code["minutes"][-1] == {
        "minute": code["minutes"][-1]["minute"],
        "total": 3, "success": 0, "failure": 2, "uptime": 0.0,
    }  # fmt: skip
    assert code["status"] == "major_outage"
    assert document["status"]["indicator"] == "critical"
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
def test_statuses_at_the_default_thresholds(sqlite_url, make_app, failures, expected):
    app, _ = make_app(sqlite_url)
    now = base_minute()
    traffic = {("/", now, 200): 100 - failures}
    if failures:
        traffic[("/", now, 500)] = failures
    write(app, traffic)
    document = summary_at(app, now)
    assert component(document, "/")["status"] == expected


def test_thresholds_come_from_config(sqlite_url, make_app):
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


def test_only_neutral_requests_are_no_data(sqlite_url, make_app):
    app, _ = make_app(sqlite_url)
    now = base_minute()
    write(app, {("/", now, 400): 12, ("/", now, 429): 3})
    index = component(summary_at(app, now), "/")
    assert index["status"] == "no_data"
    assert index["minutes"][-1] == {
        "minute": now.strftime("%Y-%m-%dT%H:%M:00Z"),
        "total": 15, "success": 0, "failure": 0, "uptime": None,
    }  # fmt: skip


def test_status_window_is_the_last_minutes_only(sqlite_url, make_app):
    app, _ = make_app(sqlite_url, config={"FLASK_STATUS_STATUS_WINDOW": 3})
    t0 = base_minute()
    write(app, {("/", t0, 500): 10})
    assert component(summary_at(app, t0 + timedelta(minutes=2)), "/")["status"] == "major_outage"
    # Three minutes later the failing minute has left the window: no data, not green.
    assert component(summary_at(app, t0 + timedelta(minutes=3)), "/")["status"] == "no_data"


# -- the scripted outage -------------------------------------------------------------


def test_scripted_outage_gives_one_five_minute_incident(db_url, make_app):
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


def test_short_gaps_are_merged_into_one_incident(sqlite_url, make_app):
    app, _ = make_app(sqlite_url)  # FLASK_STATUS_INCIDENT_GAP = 2 minutes
    t0 = base_minute() - timedelta(minutes=10)
    write(
        app,
        {
            ("/", t0, 500): 5,
            ("/", t0 + timedelta(minutes=2), 500): 5,  # one healthy minute between: merged
            ("/", t0 + timedelta(minutes=9), 500): 5,  # six minutes later: a new one
        },
    )
    found = queries.incidents(get_state(app), now=t0 + timedelta(minutes=20))
    assert [(i.start, i.end, i.failures) for i in found] == [
        (t0 + timedelta(minutes=9), t0 + timedelta(minutes=10), 5),
        (t0, t0 + timedelta(minutes=3), 10),
    ]


# -- the HTML page ---------------------------------------------------------------------


def test_page_rows_squares_and_texts(sqlite_url, make_app):
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


def test_page_in_spanish_from_accept_language_and_from_config(sqlite_url, make_app):
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


def test_page_at_another_prefix_leaves_host_static_alone(sqlite_url, make_app, tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    (static / "status.css").write_text("/* the host's own */")
    app, _ = make_app(sqlite_url, url_prefix="health")
    app.static_folder = str(static)  # the host's, set by the test as a host would
    client = app.test_client()
    assert client.get("/health").status_code == 200
    with client.get("/static/status.css") as host_css:
        assert host_css.text == "/* the host's own */"
    with client.get("/health/static/status.css") as our_css:
        assert "flask-server-status" in our_css.text
    assert client.get("/status").status_code == 404


# -- escaping --------------------------------------------------------------------------


def rename(app: Flask, rule: str, **changes: Any) -> None:
    state = get_state(app)
    state.route_ids()  # the route rows exist from the first request or flush on
    with app.app_context():
        service.update_route(state.db.session, rule, changes)
        state.db.session.remove()


def test_user_text_is_escaped_in_html_json_svg_and_atom(sqlite_url, make_app):
    app, status = make_app(sqlite_url)
    rename(app, "/", name=PAYLOADS[0], doc=PAYLOADS[1])
    rename(app, "/code/<int:code>", name=PAYLOADS[2], doc=PAYLOADS[0])
    client = app.test_client()
    client.get("/")
    client.get("/code/500")
    status.flush(app)

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
    embedded = re.search(
        r'<script id="flask-status-config" type="application/json">(.*?)</script>', html, re.S
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
    assert tree.find(f"{SVG}title").text.startswith(PAYLOADS[0] + ": ")

    other = component(document, "/code/<int:code>")["id"]
    svg = client.get(f"/status/badge/{other}.svg")
    assert "</script>" not in svg.text
    assert ET.fromstring(svg.data).find(f"{SVG}title").text.startswith("</script>: ")

    feed = client.get("/status/history.atom")
    for payload in PAYLOADS:
        assert payload not in feed.text
    titles = [e.find(f"{ATOM}title").text for e in ET.fromstring(feed.data).iter(f"{ATOM}entry")]
    assert titles == ["Failures on </script> (ongoing)"]


def test_a_rename_or_new_data_shows_at_once_despite_the_page_cache(db_url, make_app):
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


def test_a_change_made_by_another_process_shows_at_once(sqlite_url, make_app):
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


def test_page_cache_can_be_turned_off(sqlite_url, make_app):
    app, status = make_app(sqlite_url, config={"FLASK_STATUS_PAGE_CACHE_SECONDS": 0})
    client = app.test_client()
    first = client.get("/status/summary.json")
    client.get("/")
    status.flush(app)
    second = client.get("/status/summary.json")
    assert second.headers["ETag"] != first.headers["ETag"]
    assert component(second.get_json(), "/")["days"][-1]["total"] == 1


# -- Atom, badges, caching, database down ----------------------------------------------


def test_history_atom_is_a_valid_feed(sqlite_url, make_app):
    app, _ = make_app(sqlite_url)
    t0 = base_minute() - timedelta(minutes=10)
    write(app, {("/", t0 + timedelta(minutes=m), 503): 4 for m in range(3)})
    response = app.test_client().get("/status/history.atom")
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    feed = ET.fromstring(response.data)
    assert feed.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated"):
        assert feed.find(f"{ATOM}{required}") is not None
    assert (
        feed.find(f"{ATOM}link[@rel='self']").get("href") == "http://localhost/status/history.atom"
    )
    [entry] = feed.findall(f"{ATOM}entry")
    assert entry.find(f"{ATOM}title").text == "Failures on Index (resolved)"
    assert entry.find(f"{ATOM}published").text == t0.strftime("%Y-%m-%dT%H:%M:00Z")
    assert entry.find(f"{ATOM}updated").text == (t0 + timedelta(minutes=3)).strftime(
        "%Y-%m-%dT%H:%M:00Z"
    )
    assert "3 min" in entry.find(f"{ATOM}summary").text
    assert entry.find(f"{ATOM}id").text.startswith("http://localhost/status#incident-")


def test_badge_shows_status_and_uptime_and_404s_unknown_or_hidden(sqlite_url, make_app):
    app, status = make_app(sqlite_url)
    client = app.test_client()
    for _ in range(3):
        client.get("/")
    status.flush(app)
    route_id = component(client.get("/status/summary.json").get_json(), "/")["id"]
    response = client.get(f"/status/badge/{route_id}.svg")
    assert response.status_code == 200
    svg = ET.fromstring(response.data)
    assert svg.find(f"{SVG}title").text == "Index: operational · 100.00%"
    assert client.get("/status/badge/9999.svg").status_code == 404
    rename(app, "/", hidden=True)
    assert client.get(f"/status/badge/{route_id}.svg").status_code == 404


@pytest.mark.parametrize("path", ["/status", "/status/summary.json", "/status/history.atom"])
def test_caching_headers_and_304(sqlite_url, make_app, path):
    app, status = make_app(sqlite_url)
    client = app.test_client()
    first = client.get(path)
    assert first.status_code == 200
    cache_control = first.headers["Cache-Control"]
    assert "public" in cache_control
    max_age = int(re.search(r"max-age=(\d+)", cache_control).group(1))
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


def test_etag_is_stable_within_a_minute_without_the_page_cache(sqlite_url, make_app):
    app, _ = make_app(sqlite_url, config={"FLASK_STATUS_PAGE_CACHE_SECONDS": 0})
    client = app.test_client()
    for path in ("/status", "/status/summary.json"):
        etag = client.get(path).headers["ETag"]
        assert client.get(path, headers={"If-None-Match": etag}).status_code == 304


def test_database_down_shows_unavailable_never_500(tmp_path, make_app):
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


def test_refresh_interval_is_configurable(sqlite_url, make_app):
    app, _ = make_app(sqlite_url, config={"FLASK_STATUS_REFRESH_SECONDS": 2})
    html = app.test_client().get("/status").text
    config = json.loads(re.search(r'type="application/json">(.*?)</script>', html, re.S).group(1))
    assert config["refresh"] == 2
    assert config["summary"] == "/status/summary.json"
    assert "every 2 seconds" in html


# -- the benchmark script keeps running -------------------------------------------------


def test_bench_page_smoke(tmp_path):
    docs = ROOT / "docs" / "benchmarks.md"
    before = docs.stat().st_mtime_ns if docs.exists() else None
    out = tmp_path / "page.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "page.py"), "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads(out.read_text())
    # The three histories, each written whole through the store.
    assert [r["history"] for r in results] == ["1 thousand", "same rows", "1 million"]
    assert results[0]["requests"] == 1_000
    assert results[2]["requests"] == 1_000_000
    for r in results:
        for mode in ("first", "new", "unchanged"):
            assert r[f"{mode}_page_ms"] > 0 and r[f"{mode}_summary_ms"] > 0, r
        assert r["page_bytes"] > 10_000 and r["summary_bytes"] > 10_000, r
    assert "After new data" in proc.stdout
    assert (docs.stat().st_mtime_ns if docs.exists() else None) == before
