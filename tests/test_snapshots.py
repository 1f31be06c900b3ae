"""The incremental snapshot reader gives exactly what a full read gives.

:class:`SnapshotReader` keeps buckets and scans between snapshots and asks the
database only what changed. Every test here compares it with
:func:`take_snapshot`, which reads everything afresh, after writes at stamped
minutes (the current minute, finished hours, past days, late ones), renames,
hides, purges and time moving on, on every database.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from flask import Flask

from flask_server_status import get_state, page, queries, service
from flask_server_status.config import HISTOGRAM_SIZE
from flask_server_status.models import UNMATCHED_RULE
from flask_server_status.snapshots import Snapshot, SnapshotReader, take_snapshot

ROUTES = ("/", "/code/<int:code>", "/items/<int:item_id>")
#: Unknown paths are counted too, but never shown.
RULES = (*ROUTES, UNMATCHED_RULE)


def write(app: Flask, minute: datetime, rule: str, status: int, count: int) -> None:
    """Write ``count`` requests at ``minute`` through the store, as a flush would."""
    state = get_state(app)
    hist = [0] * HISTOGRAM_SIZE
    hist[min(count, HISTOGRAM_SIZE - 1)] = count  # a p95 that differs from row to row
    slot = [count, 7.0 * count, 3.0 + count, *hist]
    state.store.write({(rule, int(minute.timestamp()) // 60, status): slot}, state.route_ids())


def assert_same(app: Flask, reader: SnapshotReader, now: datetime) -> Snapshot:
    state = get_state(app)
    state.route_ids()
    kept = reader.snapshot(now)
    fresh = take_snapshot(state, now)
    assert kept.routes == fresh.routes
    assert kept.incidents == fresh.incidents
    assert kept.overall == fresh.overall
    return kept


def session_of(app: Flask) -> sa.orm.Session:
    return sa.orm.Session(get_state(app).engine)


def test_reader_matches_a_full_read_through_every_kind_of_change(db_url, make_app):
    app, _ = make_app(db_url)
    state = get_state(app)
    reader = SnapshotReader(state.engine, state.settings)
    now = queries.floor_minute(datetime.now(timezone.utc))
    # History: past days, finished hours of today, the last hour, the current minute.
    for days_ago in (1, 2, 6, 30, 89, 95):
        write(app, now - timedelta(days=days_ago), "/", 200, 40 + days_ago)
    write(app, now - timedelta(hours=3), "/code/<int:code>", 500, 9)  # an outage minute
    write(app, now - timedelta(hours=3), "/code/<int:code>", 200, 1)
    write(app, now - timedelta(minutes=20), "/items/<int:item_id>", 404, 3)  # and another
    write(app, now, "/", 200, 5)
    for back in (0, 90, 3 * 1440):  # unknown paths failing: never on the page
        write(app, now - timedelta(minutes=back), UNMATCHED_RULE, 404, 4)
    first = assert_same(app, reader, now)
    assert len(first.incidents) == 2

    # Nothing changed: the same snapshot, not a new one.
    assert reader.snapshot(now) is first

    # The current minute: only its buckets are new objects.
    write(app, now, "/", 200, 2)
    second = assert_same(app, reader, now)
    assert second.version != first.version
    old, new = first.routes[0], second.routes[0]
    assert all(a is b for a, b in zip(old.days[:-1], new.days[:-1], strict=True))
    assert all(a is b for a, b in zip(old.minutes[:-1], new.minutes[:-1], strict=True))
    assert new.minutes[-1] is not old.minutes[-1] and new.minutes[-1].total == 7

    # Late writes: into a past day, a finished hour (a new incident), an old minute.
    write(app, now - timedelta(days=30), "/", 500, 11)
    assert_same(app, reader, now)
    write(app, now - timedelta(days=3, minutes=7), "/items/<int:item_id>", 503, 4)
    late = assert_same(app, reader, now)
    assert len(late.incidents) == 3
    write(app, now - timedelta(minutes=50), "/code/<int:code>", 502, 6)
    assert_same(app, reader, now)

    # Renames, hiding, a purge, showing again.
    with session_of(app) as session:
        service.update_route(session, "/", {"name": "Home", "doc": "Renamed."})
    assert assert_same(app, reader, now).routes[0].name == "Home"
    with session_of(app) as session:
        service.set_hidden(session, ["/code/<int:code>"], True)
    hidden = assert_same(app, reader, now)
    assert "/code/<int:code>" not in {r.rule for r in hidden.routes}
    with session_of(app) as session:
        service.set_hidden(session, ["/code/<int:code>"], False)
    assert_same(app, reader, now)
    with session_of(app) as session:
        service.delete_route(session, "/items/<int:item_id>")
    assert_same(app, reader, now)
    with session_of(app) as session:
        service.set_hidden(session, ["/items/<int:item_id>"], False)
    shown = assert_same(app, reader, now)
    items = next(r for r in shown.routes if r.rule == "/items/<int:item_id>")
    assert items.last_data_at is None  # purged, so shown again with no history

    # Time moves on: minutes, across the hour, across midnight, and back.
    for step in (1, 7, 60, 61, 24 * 60, 24 * 60 + 5):
        later = now + timedelta(minutes=step)
        write(app, later, "/", 200, 1)
        assert_same(app, reader, later)
    assert_same(app, reader, now - timedelta(hours=2))


def test_reader_sees_other_processes_writes(db_url, make_app):
    """Fingerprints come from the database, so another app's flush shows too."""
    app, _ = make_app(db_url)
    other, _ = make_app(db_url)
    state = get_state(app)
    now = queries.floor_minute(datetime.now(timezone.utc))
    write(app, now - timedelta(minutes=3), "/", 200, 10)
    before = assert_same(app, state.reader, now)
    write(other, now - timedelta(minutes=3), "/", 500, 10)
    after = assert_same(app, state.reader, now)
    assert after.routes[0].minutes[-4].failure == 10
    assert after.version != before.version


def test_reader_matches_a_full_read_after_random_changes(db_url, make_app):
    """A seeded random walk of writes, renames, hides, purges and clock moves."""
    app, _ = make_app(db_url, config={"FLASK_STATUS_INCIDENT_GAP": 1})
    state = get_state(app)
    reader = SnapshotReader(state.engine, state.settings)
    rng = random.Random(20261123)
    now = queries.floor_minute(datetime.now(timezone.utc))
    steps = 40 if db_url.startswith("sqlite") else 20
    for _ in range(steps):
        action = rng.random()
        rule = rng.choice(RULES if action < 0.7 else ROUTES)
        if action < 0.7:
            # Mostly near now, sometimes hours or days back (late flushes).
            back = rng.choice((0, 0, 1, 2, 5, 30, 59, 61, 180, 1500, 3 * 1440, 8 * 1440))
            status = rng.choice((200, 200, 200, 404, 500, 400))
            write(app, now - timedelta(minutes=back), rule, status, rng.randint(1, 30))
        elif action < 0.8:
            now += timedelta(minutes=rng.choice((1, 1, 3, 59, 60, 600)))
        elif action < 0.87:
            with session_of(app) as session:
                service.update_route(session, rule, {"name": f"Name {rng.randint(0, 9)}"})
        elif action < 0.94:
            with session_of(app) as session:
                service.set_hidden(session, [rule], rng.random() < 0.5)
        else:
            with session_of(app) as session:
                service.delete_route(session, rule)
        assert_same(app, reader, now)


def test_page_and_summary_from_kept_renderings_equal_fresh_ones(sqlite_url, make_app):
    """Squares and JSON entries copied from the previous answer read as new ones would."""
    app, _ = make_app(sqlite_url)
    client = app.test_client()
    now = queries.floor_minute(datetime.now(timezone.utc))
    for back in (0, 1, 2, 30, 24 * 60, 3 * 24 * 60):
        write(app, now - timedelta(minutes=back), "/", 200, 3)
        write(app, now - timedelta(minutes=back), "/code/<int:code>", 500, 1)
    client.get("/status")
    client.get("/status/summary.json")
    write(app, now, "/", 200, 4)
    write(app, now - timedelta(days=1), "/code/<int:code>", 500, 2)
    kept_page = client.get("/status").get_data(as_text=True)
    kept_summary = client.get("/status/summary.json").get_data(as_text=True)

    # The same answers from an app that has rendered nothing yet.
    fresh_app, _ = make_app(sqlite_url)
    fresh = fresh_app.test_client()
    assert fresh.get("/status").get_data(as_text=True) == kept_page
    assert fresh.get("/status/summary.json").get_data(as_text=True) == kept_summary

    # And the pieced-together JSON is build_summary's document.
    state = get_state(app)
    with app.test_request_context("/status"):
        snapshot = state.reader.snapshot()
        document = page.build_summary(state, snapshot, "http://localhost/status")
    assert json.loads(kept_summary) == document


def test_incidents_across_the_hours_and_the_window_edge(db_url, make_app):
    """Runs that cross hour boundaries, the window's moving start, and more runs than kept."""
    app, _ = make_app(db_url)
    state = get_state(app)
    reader = SnapshotReader(state.engine, state.settings)
    now = queries.floor_minute(datetime.now(timezone.utc)).replace(minute=30)
    week = timedelta(days=state.settings.minute_retention_days)
    # A run every 2 minutes (one incident) from 40 minutes before the window's start
    # to 40 after it, so the window cuts it as it moves.
    for m in range(-40, 41, 2):
        write(app, now - week + timedelta(minutes=m), "/", 500, 5)
        write(app, now - week + timedelta(minutes=m), "/", 200, 1)
    for step in (0, 1, 9, 10, 11, 25, 31, 39, 40, 41, 45):
        found = assert_same(app, reader, now + timedelta(minutes=step)).incidents
        [edge] = found if step <= 40 else [None]
        if edge is not None:  # from the first failing (even) minute in the window
            assert edge.start == now - week + timedelta(minutes=step + step % 2)
    # 80 separate one-minute runs (5 minutes apart: more than a snapshot keeps) over
    # the last 7 hours, and a run through the last two hour boundaries.
    traffic = {}
    for n in range(80):
        traffic[(now - timedelta(minutes=5 * n + 3), "/code/<int:code>")] = 2
    for m in range(-95, 1):
        traffic[(now + timedelta(minutes=m), "/items/<int:item_id>")] = 1
    for (minute, rule), failures in traffic.items():
        write(app, minute, rule, 500, failures)
        write(app, minute, rule, 200, 1)
    for step in (0, 1, 9, 10, 11, 25, 31, 45, 60, 61, 90):
        found = assert_same(app, reader, now + timedelta(minutes=step)).incidents
        assert len(found) == 50
        assert any(i.rule == "/items/<int:item_id>" for i in found)
