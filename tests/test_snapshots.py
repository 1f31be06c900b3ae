"""The incremental snapshot reader gives exactly what a full read gives.

:class:`SnapshotReader` keeps buckets and scans between snapshots and asks the
database only what changed. Every test here compares it with
:func:`take_snapshot`, which reads everything afresh, after writes at stamped
minutes (the current minute, finished hours, past days, late ones), renames,
hides, purges and time moving on, on every database.
"""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from flask import Flask
from helpers import MakeApp, slot, write_counts
from markupsafe import Markup

from flask_server_status import get_state, i18n, page, queries, service
from flask_server_status.config import HISTOGRAM_SIZE
from flask_server_status.models import UNMATCHED_RULE
from flask_server_status.page import render, summary
from flask_server_status.page.memo import StripMemo
from flask_server_status.snapshots import Snapshot, SnapshotReader, take_snapshot

ROUTES = ("/", "/code/<int:code>", "/items/<int:item_id>")
#: Unknown paths are counted too, but never shown.
RULES = (*ROUTES, UNMATCHED_RULE)


def requests(count: int) -> list[float]:
    """A slot of ``count`` requests; the bucket is ``count``'s, so the p95 differs by row."""
    return slot(count, 7.0, max_ms=3.0 + count, bucket=min(count, HISTOGRAM_SIZE - 1))


def write(app: Flask, minute: datetime, rule: str, status: int, count: int) -> None:
    """Write ``count`` requests at ``minute`` through the store, as a flush would."""
    write_counts(app, {(rule, minute, status): requests(count)})


def write_many(app: Flask, counts: dict[tuple[datetime, str, int], int]) -> None:
    """Write ``{(minute, rule, status): count}`` in one flush."""
    write_counts(
        app,
        {
            (rule, minute, status): requests(count)
            for (minute, rule, status), count in counts.items()
        },
    )


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


def test_reader_matches_a_full_read_through_every_kind_of_change(
    db_url: str, make_app: MakeApp
) -> None:
    app, _ = make_app(db_url)
    state = get_state(app)
    reader = SnapshotReader(state.engine, state.settings)
    now = queries.floor_minute(datetime.now(timezone.utc))
    # History: past days, finished hours of today, the last hour, the current minute.
    for days_ago in (1, 2, 6, 30, 89, 95):
        write(app, now - timedelta(days=days_ago), "/", 200, 40 + days_ago)
    for back in (0, 1):  # an outage: two failing minutes in a row open an incident
        write(app, now - timedelta(hours=3, minutes=back), "/code/<int:code>", 500, 9)
        write(app, now - timedelta(hours=3, minutes=back), "/code/<int:code>", 200, 1)
    for back in (20, 21):  # and another (a 404 there would be a missing item: neutral)
        write(app, now - timedelta(minutes=back), "/items/<int:item_id>", 503, 3)
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
    for back in (7, 8):
        write(app, now - timedelta(days=3, minutes=back), "/items/<int:item_id>", 503, 4)
    for back in range(1, 7):  # traffic that closes it (silence would not)
        write(app, now - timedelta(days=3, minutes=back), "/items/<int:item_id>", 200, 2)
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


def test_reader_sees_other_processes_writes(db_url: str, make_app: MakeApp) -> None:
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


def test_reader_matches_a_full_read_after_random_changes(db_url: str, make_app: MakeApp) -> None:
    """A seeded random walk of writes, renames, hides, purges and clock moves."""
    # Incidents open on any failing minute and close quickly: many of them,
    # opened, closed and joined by writes on either side of every boundary.
    config = {
        "FLASK_STATUS_INCIDENT_MIN_FAILURES": 1,
        "FLASK_STATUS_INCIDENT_OPEN_MINUTES": 1,
        "FLASK_STATUS_INCIDENT_CLOSE_MINUTES": 2,
    }
    app, _ = make_app(db_url, config=config)
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


def test_page_and_summary_from_kept_renderings_equal_fresh_ones(
    sqlite_url: str, make_app: MakeApp
) -> None:
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
        # Relative: without FLASK_STATUS_PUBLIC_URL no public answer carries a host.
        document = page.build_summary(state, snapshot, "/status")
    assert json.loads(kept_summary) == document


def test_only_the_changed_route_s_row_and_component_are_made_again(
    db_url: str, make_app: MakeApp
) -> None:
    """After new data on one route its row (and summary.json component) is made again and
    the others are the previous answer's very objects; a new minute, whose relative times
    ("1 min ago") differ, makes every row again; a hidden route's row is forgotten."""
    app, _ = make_app(db_url)
    state = get_state(app)
    now = queries.floor_minute(datetime.now(timezone.utc))
    for rule in ROUTES:
        write(app, now - timedelta(minutes=2), rule, 200, 3)
    t = i18n.texts("en")
    made: list[int] = []  # route ids, one per row.html rendering
    memo: StripMemo[Markup] = StripMemo()
    entries: StripMemo[str] = StripMemo()

    def answer(
        snapshot: Snapshot, memo: StripMemo[Markup] = memo, entries: StripMemo[str] = entries
    ) -> tuple[dict[int, Markup], int, str]:
        """The rows of one page answer by route id; components and series made; summary."""
        with app.test_request_context("/status"):
            template = app.jinja_env.get_template("flask_status/row.html")

            def render_row(row: dict[str, object]) -> str:
                made.append(row["route"].id)  # type: ignore[attr-defined]
                return template.render(row=row, t=t, status_classes=render.STATUS_CLASSES)

            run = memo.open("en")
            rows = render.page_context(snapshot, state.settings, t, {}, render_row, run)["rows"]
            run.close()
        summary_run = entries.open("entries")
        text = summary.summary_text(snapshot, state.settings, t, "S", "/status", summary_run)
        summary_run.close()
        ids = [r.id for r in snapshot.routes]
        return dict(zip(ids, rows, strict=True)), summary_run.made, text

    state.route_ids()
    first, components, _ = answer(state.reader.snapshot(now))
    ids = {r.rule: r.id for r in state.reader.snapshot(now).routes}
    assert sorted(made) == sorted(ids.values()) and components == 3 * len(ids)
    assert "2 min ago" in first[ids["/"]]

    made.clear()
    write(app, now, "/", 500, 4)
    snapshot = state.reader.snapshot(now)
    second, components, text = answer(snapshot)
    # The changed route's row alone; its component and its two series.
    assert made == [ids["/"]] and components == 3
    assert second[ids["/"]] != first[ids["/"]] and "just now" in second[ids["/"]]
    for rule in set(ids) - {"/"}:
        assert second[ids[rule]] is first[ids[rule]]  # the same fragment, not made again
    # Pieced together from kept parts, the answers are what empty memos write.
    fresh, _, fresh_text = answer(snapshot, StripMemo(), StripMemo())
    assert fresh == second and fresh_text == text

    # The same statuses a minute later: every relative time moved, every row is new.
    made.clear()
    third, _, _ = answer(dataclasses.replace(snapshot, now=now + timedelta(minutes=1)))
    assert sorted(made) == sorted(ids.values())
    assert "3 min ago" in third[ids["/code/<int:code>"]]
    assert "1 min ago" in third[ids["/"]]

    # A hidden route leaves the page, and what was kept of it leaves the memos.
    with session_of(app) as session:
        service.set_hidden(session, ["/items/<int:item_id>"], True)
    fourth, _, _ = answer(state.reader.snapshot(now + timedelta(minutes=1)))
    assert ids["/items/<int:item_id>"] not in fourth
    # A row and two strips, a component and two series, of each route still shown.
    assert len(memo) == len(entries) == 3 * (len(ids) - 1)


def test_incidents_across_the_hours_and_the_window_edge(db_url: str, make_app: MakeApp) -> None:
    """Runs that cross hour boundaries, the window's moving start, and more runs than kept."""
    app, _ = make_app(db_url)
    state = get_state(app)
    reader = SnapshotReader(state.engine, state.settings)
    now = queries.floor_minute(datetime.now(timezone.utc)).replace(minute=30)
    week = timedelta(days=state.settings.minute_retention_days)
    # Flapping (two failing minutes, one good one: one incident) from 40 minutes
    # before the window's start to 40 after it, so the window cuts it as it moves.
    batch = {}
    for m in range(-40, 41):
        minute = now - week + timedelta(minutes=m)
        batch[(minute, "/", 200)] = 1 if m % 3 else 5
        if m % 3:
            batch[(minute, "/", 500)] = 5
    write_many(app, batch)
    for step in (0, 1, 9, 10, 11, 25, 31, 37, 38, 39, 40, 41, 45):
        found = assert_same(app, reader, now + timedelta(minutes=step)).incidents
        if step > 37:  # no two failing minutes in a row left in the window
            assert found == []
            continue
        [edge] = found
        # From the first pair of failing minutes (m % 3 == 1, 2) in the window.
        assert edge.start == now - week + timedelta(minutes=step + (1 - step) % 3)
        assert edge.end == now - week + timedelta(minutes=41)
    # 80 separate incidents (two failing minutes, then five good ones: more than a
    # snapshot keeps) over the last 10 hours, and one through the last two hour
    # boundaries.
    batch = {}
    for n in range(80):
        for m in range(7):
            minute = now - timedelta(minutes=7 * n + m + 3)
            batch[(minute, "/code/<int:code>", 200)] = 1
            if m >= 5:
                batch[(minute, "/code/<int:code>", 500)] = 3
    for m in range(-95, 1):
        batch[(now + timedelta(minutes=m), "/items/<int:item_id>", 500)] = 3
        batch[(now + timedelta(minutes=m), "/items/<int:item_id>", 200)] = 1
    write_many(app, batch)
    for step in (0, 1, 9, 10, 11, 25, 31, 45, 60, 61, 90):
        found = assert_same(app, reader, now + timedelta(minutes=step)).incidents
        assert len(found) == 50
        assert any(i.rule == "/items/<int:item_id>" for i in found)


def test_incidents_close_by_traffic_across_the_hours_and_late_writes(
    db_url: str, make_app: MakeApp
) -> None:
    """An incident closes after five minutes with traffic: part of them in finished
    hours (read from the database, kept) and part in the current one (from the
    minute buckets); a late write into a kept gap closes it too."""
    app, _ = make_app(db_url)
    state = get_state(app)
    reader = SnapshotReader(state.engine, state.settings)
    now = queries.floor_minute(datetime.now(timezone.utc)).replace(minute=10)
    hour = queries.floor_hour(now)
    outage = [hour - timedelta(minutes=m) for m in (3, 2)]  # 57 and 58 of the last hour
    write_many(app, {(m, rule, 503): 5 for m in outage for rule in ("/", "/code/<int:code>")})
    [one, two] = assert_same(app, reader, now).incidents
    assert one.ongoing and two.ongoing  # silence since: not shown to have recovered
    # Traffic: 2 minutes of "/" in the finished hour, 3 in the current one: closed.
    write_many(app, {(hour - timedelta(minutes=1), "/", 200): 1, (hour, "/", 200): 1})
    assert all(i.ongoing for i in assert_same(app, reader, now).incidents)
    write_many(app, {(hour + timedelta(minutes=m), "/", 200): 1 for m in (1, 2, 3)})
    found = {i.rule: i for i in assert_same(app, reader, now).incidents}
    assert not found["/"].ongoing and found["/"].end == hour - timedelta(minutes=1)
    assert found["/code/<int:code>"].ongoing
    # Late traffic into the finished hour: before the outage it changes nothing...
    write_many(
        app,
        {(hour - timedelta(minutes=30 - m), "/code/<int:code>", 200): 1 for m in range(5)},
    )
    found = {i.rule: i for i in assert_same(app, reader, now).incidents}
    assert found["/code/<int:code>"].ongoing and not found["/"].ongoing
    # ...after it, with four minutes in the current hour, it closes the other one.
    write_many(app, {(hour - timedelta(minutes=1), "/code/<int:code>", 200): 1})
    write_many(app, {(hour + timedelta(minutes=m), "/code/<int:code>", 200): 1 for m in range(4)})
    assert not any(i.ongoing for i in assert_same(app, reader, now).incidents)
    # A late failing minute in the gap joins the incident, which is ongoing again:
    # only three good minutes since.
    write_many(app, {(hour, "/", 500): 9})
    found = {i.rule: i for i in assert_same(app, reader, now).incidents}
    assert found["/"].end == hour + timedelta(minutes=1) and found["/"].ongoing
    for step in (1, 50, 51, 60):
        assert_same(app, reader, now + timedelta(minutes=step))
