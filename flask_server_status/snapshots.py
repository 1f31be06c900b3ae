"""What the status page shows, read incrementally: only what changed since the last look.

A page shows, per route, 90 day buckets, the last hour of minute buckets and
a week of incidents. Reading all of that for every view costs about a second
on SQLite once 50 busy routes have a week of minute rows, although almost all
of it is finished history: a flush adds to the current minute, hour and day,
and only late flushes, purges and retention ever touch the rest.

So :class:`SnapshotReader` keeps what it read, and each snapshot first asks
the database for *fingerprints*, ``(rows, requests)``: one over the past days
(then per day, only if it moved) and today's; per minute of the current hour,
and per hour before it (then per minute, only if one moved); per hour of the
days that changed. It then re-reads only the days and minutes, and re-scans
for failing minutes only the finished hours, whose fingerprint moved, and
makes the status again only for routes whose buckets changed. This is exact, not a time-based
cache: every write adds at least one request to each row it touches and to
their hour and day roll-ups in the same transaction, so an unchanged
fingerprint means unchanged rows. A purge removes rows (the row count
drops); and since a purge hides its route, a route leaving the page makes the
reader start over.

Unchanged buckets stay the same objects from one snapshot to the next, which
lets the page reuse their rendering (see :mod:`.page`). A snapshot's
:attr:`Snapshot.version` changes whenever anything in it may have changed.

The first snapshot of a process reads everything, as :func:`.queries.route_statuses`
and :func:`.queries.incidents` do; ``bench/page.py`` measures both cases.
"""

from __future__ import annotations

import functools
import heapq
import threading
from collections.abc import Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import queries
from .models import Log, LogDay, LogHour
from .queries import Bucket, FailingMinute, Incident, RouteStatus

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from .config import Settings
    from .queries import AnySelect
    from .state import StatusState

#: Fingerprint of a day, hour or minute with no rows.
EMPTY = (0, 0)
#: The newest incidents a snapshot holds: the page and summary.json show 10,
#: the Atom feed 50.
INCIDENTS_KEPT = 50

Fingerprint = tuple[int, int]


@dataclass
class Snapshot:
    """What one rendering of the page shows."""

    now: datetime
    routes: list[RouteStatus]
    #: The newest :data:`INCIDENTS_KEPT` incidents of the minute retention, newest first.
    incidents: list[Incident]
    overall: str
    #: Equal versions mean equal contents; None for a snapshot read without a reader.
    version: Hashable = None


def take_snapshot(state: StatusState, now: datetime | None = None) -> Snapshot:
    """Read a snapshot at ``now`` straight from the database, keeping nothing.

    :raises sqlalchemy.exc.SQLAlchemyError: when the database cannot answer.
    """
    now = (now or queries.utcnow()).astimezone(timezone.utc)
    routes = queries.route_statuses(state, now=now)
    found = queries.incidents(state, now=now, limit=INCIDENTS_KEPT)
    return Snapshot(now, routes, found, queries.overall_status(r.status for r in routes))


@functools.cache
def _prints(model: type[Log] | type[LogHour] | type[LogDay], column: str) -> AnySelect:
    """Fingerprints per minute, hour or day from ``:lo`` up to ``:hi`` (excluded).

    Built once per table: building a statement costs more than running these.
    """
    start = getattr(model, column)
    requests = getattr(model, "count" if model is Log else "total")
    return (
        sa.select(start, sa.func.count(), sa.func.sum(requests))
        .where(start >= sa.bindparam("lo"), start < sa.bindparam("hi"))
        .group_by(start)
    )


@functools.cache
def _past_days_sum() -> AnySelect:
    return sa.select(sa.func.count(), sa.func.sum(LogDay.total)).where(
        LogDay.day >= sa.bindparam("lo"), LogDay.day < sa.bindparam("hi")
    )


def _fingerprints(
    conn: sa.Connection, query: AnySelect, lo: datetime, hi: datetime
) -> dict[datetime, Fingerprint]:
    rows = conn.execute(query, {"lo": lo, "hi": hi})
    return {start: (int(count), int(total or 0)) for start, count, total in rows}


def _runs(hours: Sequence[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted hours as ``(first, last)`` runs of consecutive hours."""
    runs: list[tuple[datetime, datetime]] = []
    for hour in hours:
        if runs and hour - runs[-1][1] == timedelta(hours=1):
            runs[-1] = (runs[-1][0], hour)
        else:
            runs.append((hour, hour))
    return runs


class SnapshotReader:
    """Snapshots of one app's status data, each reading only what changed.

    One per app and process, as ``get_state(app).reader``; thread-safe: one
    snapshot is read at a time and the others wait for it. Snapshots, their
    routes and buckets are shared: read them, never change them. A database
    error leaves what was kept consistent: each part is stored with its
    fingerprint only once it has been read whole.

    :param engine: the engine of the ``flask_status`` bind.
    :param settings: the app's settings (thresholds, windows, retention).
    :param routes: the app's ``routes=`` list, if any: only these rules are
        shown, though other apps sharing the database have rows of their own.
    """

    def __init__(
        self, engine: Engine, settings: Settings, routes: Collection[str] | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.only = frozenset(routes) if routes is not None else None
        self._lock = threading.Lock()
        self._generation = 0
        self._last: Snapshot | None = None
        self._routes: list[sa.Row[Any]] = []
        self._visible: set[int] = set()
        self._forget()

    def _forget(self) -> None:
        """Drop every kept bucket and scan: the next snapshot reads everything."""
        self._day_prints: dict[datetime, Fingerprint] = {}
        #: Fingerprints of the past days, and the sum over them they were read at.
        self._past_prints: dict[datetime, Fingerprint] = {}
        self._past_key: object = None
        self._by_day: dict[int, dict[datetime, Bucket]] = {}
        self._minute_prints: dict[datetime, Fingerprint] = {}
        #: Fingerprints of the hours before the current one that the minutes reach.
        self._earlier_hours: dict[datetime, Fingerprint] = {}
        self._by_minute: dict[int, dict[datetime, Bucket]] = {}
        #: Finished hours' failing minutes, and the hour's fingerprint when scanned.
        self._hour_prints: dict[datetime, Fingerprint] = {}
        self._failing: dict[datetime, list[FailingMinute]] = {}
        #: Past days whose finished hours were all checked, at this day fingerprint.
        self._checked_days: dict[datetime, Fingerprint] = {}
        #: Failing minutes of the finished hours after the oldest one, per route,
        #: and their key.
        self._runs: dict[int, list[FailingMinute]] = {}
        self._runs_key: object = None
        #: Per (route, after, before): minutes with traffic strictly between,
        #: both before the current hour; kept until a finished hour is re-scanned.
        self._gaps: dict[tuple[int, datetime, datetime], int] = {}
        self._gaps_hour: datetime | None = None
        #: Route statuses of the last snapshot, its minute and recent counts, and
        #: the routes whose buckets changed since.
        self._statuses: dict[int, RouteStatus] = {}
        self._statuses_minute: datetime | None = None
        self._statuses_recent: dict[int, queries.RecentCounts] = {}
        self._dirty: set[int] = set()
        self._generation += 1

    def after_fork(self) -> None:
        """In a forked child: a lock held by a parent thread at fork time is never released."""
        self._lock = threading.Lock()

    def snapshot(self, now: datetime | None = None) -> Snapshot:
        """The page's data at ``now`` (default: the current time), visible routes only.

        :raises sqlalchemy.exc.SQLAlchemyError: when the database cannot answer.
        """
        now = (now or queries.utcnow()).astimezone(timezone.utc)
        with self._lock:
            with self.engine.connect() as conn:
                self._read_routes(conn)
                day_prints = self._read_days(conn, now)
                self._read_minutes(conn, now)
                self._scan_hours(conn, now, day_prints)
                version = (queries.floor_minute(now), self._generation)
                if self._last is not None and self._last.version == version:
                    return self._last
                visible = [row for row in self._routes if row.id in self._visible]
                recent = queries.recent_counts(conn, [row.id for row in visible], now)
                found = self._incidents(conn, now, visible)
            routes = self._route_statuses(visible, recent, now)
            snapshot = Snapshot(
                now,
                routes,
                found,
                queries.overall_status(r.status for r in routes),
                version,
            )
            self._last = snapshot
            return snapshot

    # -- reading what changed ---------------------------------------------------------

    def _read_routes(self, conn: sa.Connection) -> None:
        # The route table is small: reading it whole is cheaper than doubting
        # a fingerprint of renames (MySQL keeps whole seconds of updated_at).
        rows = queries.visible_routes(conn, include_hidden=True, only=self.only)
        if rows == self._routes:
            return
        visible = {row.id for row in rows if not row.hidden}
        if self._visible - visible:
            # A route left the page: hidden, perhaps purged. Start over rather
            # than trust fingerprints across a deletion.
            self._forget()
        self._routes, self._visible = rows, visible
        self._statuses = {}  # names, positions and visibility are in them
        # New routes get empty buckets in what is kept, as a read would give them.
        self._store(self._by_day, {}, list(self._day_prints), only_missing=True)
        self._store(self._by_minute, {}, list(self._minute_prints), only_missing=True)
        self._generation += 1

    def _read_days(self, conn: sa.Connection, now: datetime) -> dict[datetime, Fingerprint]:
        """Re-read the day buckets whose fingerprint moved; return every day's fingerprint."""
        today = queries.floor_day(now)
        starts = [today - timedelta(days=n) for n in range(queries.DAY_SPAN - 1, -1, -1)]
        oldest = min(starts[0], queries.floor_day(queries.incident_since(now, self.settings)))
        # Past days hardly change: one sum over them first, per day only if it moved.
        past = conn.execute(_past_days_sum(), {"lo": oldest, "hi": today}).one()
        past_key = (oldest, today, int(past[0]), int(past[1] or 0))
        if past_key != self._past_key:
            self._past_prints = _fingerprints(conn, _prints(LogDay, "day"), oldest, today)
            self._past_key = past_key
        prints = dict(self._past_prints)
        prints.update(_fingerprints(conn, _prints(LogDay, "day"), today, today + timedelta(days=1)))
        stale = [d for d in starts if self._day_prints.get(d) != prints.get(d, EMPTY)]
        if stale:
            fresh = queries.day_series(conn, LogDay.day.in_(stale))
            self._renew(self._by_day, self._day_prints, fresh, stale, prints)
        self._evict(self._by_day, self._day_prints, starts[0], today)
        return prints

    def _read_minutes(self, conn: sa.Connection, now: datetime) -> None:
        this_minute = queries.floor_minute(now)
        length = queries.minute_span(self.settings)
        since = this_minute - timedelta(minutes=length - 1)
        starts = [this_minute - timedelta(minutes=n) for n in range(length - 1, -1, -1)]
        # The minutes before the current hour are only looked at one by one when
        # their hour's fingerprint moved (late flushes, mostly just after the hour).
        this_hour = queries.floor_hour(now)
        lowest = this_hour
        if since < this_hour:
            hour_prints = _fingerprints(
                conn, _prints(LogHour, "hour"), queries.floor_hour(since), this_hour
            )
            earlier = [m for m in starts if m < this_hour]
            if hour_prints != self._earlier_hours or any(
                m not in self._minute_prints for m in earlier
            ):
                lowest = since
            self._earlier_hours = hour_prints
        prints = _fingerprints(
            conn, _prints(Log, "minute"), lowest, this_minute + timedelta(minutes=1)
        )
        stale = [
            m for m in starts if m >= lowest and self._minute_prints.get(m) != prints.get(m, EMPTY)
        ]
        if stale:
            fresh = queries.minute_series(conn, Log.minute.in_(stale))
            self._renew(self._by_minute, self._minute_prints, fresh, stale, prints)
        self._evict(self._by_minute, self._minute_prints, since, this_minute)

    def _scan_hours(
        self, conn: sa.Connection, now: datetime, day_prints: dict[datetime, Fingerprint]
    ) -> None:
        """Re-scan for failing minutes the finished hours whose fingerprint moved.

        The current hour's failing minutes come from the minute buckets; a past
        day's hours are only looked at when the day's fingerprint moved.
        """
        this_hour = queries.floor_hour(now)
        today = queries.floor_day(now)
        first_hour = queries.floor_hour(queries.incident_since(now, self.settings))
        first_day = queries.floor_day(first_hour)
        days = [first_day + timedelta(days=n) for n in range((today - first_day).days + 1)]
        unchecked = [
            d for d in days if d == today or self._checked_days.get(d) != day_prints.get(d, EMPTY)
        ]
        start = max(first_hour, unchecked[0])
        if start < this_hour:
            prints = _fingerprints(conn, _prints(LogHour, "hour"), start, this_hour)
            checked = set(unchecked)
            hours = []
            hour = start
            while hour < this_hour:
                if queries.floor_day(hour) in checked and self._hour_prints.get(hour) != prints.get(
                    hour, EMPTY
                ):
                    hours.append(hour)
                hour += timedelta(hours=1)
            for first, last in _runs(hours):
                self._rescan_run(conn, first, last, prints)
            if hours:
                self._generation += 1
                self._runs_key = None
                self._gaps = {}  # traffic in finished hours may have moved
        for day in unchecked:
            if day != today:
                self._checked_days[day] = day_prints.get(day, EMPTY)
        for kept in (self._failing, self._hour_prints):
            for hour in [h for h in kept if h < first_hour or h >= this_hour]:
                del kept[hour]
        for day in [d for d in self._checked_days if d < first_day or d >= today]:
            del self._checked_days[day]

    def _rescan_run(
        self,
        conn: sa.Connection,
        first: datetime,
        last: datetime,
        prints: dict[datetime, Fingerprint],
    ) -> None:
        """Keep the failing minutes and fingerprints of the hours ``first``..``last``."""
        found = queries.failing_minutes(
            conn,
            self.settings,
            Log.minute >= first,
            Log.minute < last + timedelta(hours=1),
        )
        by_hour: dict[datetime, list[FailingMinute]] = {}
        for item in found:
            by_hour.setdefault(queries.floor_hour(item[1]), []).append(item)
        hour = first
        while hour <= last:
            self._failing[hour] = by_hour.get(hour, [])
            self._hour_prints[hour] = prints.get(hour, EMPTY)
            hour += timedelta(hours=1)

    def _route_statuses(
        self, visible: list[sa.Row[Any]], recent: dict[int, queries.RecentCounts], now: datetime
    ) -> list[RouteStatus]:
        """Statuses of the visible routes, made again only for routes whose data changed."""
        minute = queries.floor_minute(now)
        if minute != self._statuses_minute:
            self._statuses = {}  # the windows moved: every route changes
        previous = self._statuses_recent
        self._dirty |= {r for r in recent.keys() | previous if recent.get(r) != previous.get(r)}
        stale = [row for row in visible if row.id in self._dirty or row.id not in self._statuses]
        for status in queries.assemble_statuses(
            stale, self._by_minute, self._by_day, recent, now, self.settings
        ):
            self._statuses[status.id] = status
        self._statuses_minute, self._statuses_recent = minute, recent
        self._dirty.clear()
        return [self._statuses[row.id] for row in visible]

    def _incidents(
        self, conn: sa.Connection, now: datetime, visible: list[sa.Row[Any]]
    ) -> list[Incident]:
        """The newest incidents of visible routes, as :func:`.queries.incidents` finds them.

        A route's failing minutes come in three parts: the oldest hour of the
        window (cut at the window's start, which moves every minute), the
        finished hours after it (kept until an hour is re-scanned or the hour
        changes) and the current hour (from the minute buckets). Joined in
        time order, they are judged by :func:`.verdicts.find_outages`, which
        asks for the traffic between failing minutes only where a gap might
        close an incident: the finished hours' part of such a gap is read
        once and kept (:meth:`_traffic`), the current hour's counted in the
        minute buckets.
        """
        settings = self.settings
        since = queries.incident_since(now, settings)
        this_minute = queries.floor_minute(now)
        this_hour = queries.floor_hour(now)
        first_hour = queries.floor_hour(since)
        routes = {row.id: row for row in self._routes}

        head: dict[int, list[FailingMinute]] = {}
        if first_hour < this_hour:
            for item in self._failing.get(first_hour, []):
                if item[1] >= since and item[0] in routes:
                    head.setdefault(item[0], []).append(item)
        tail: dict[int, list[FailingMinute]] = {}
        minute = max(this_hour, since)
        while minute <= this_minute:
            for route_id, buckets in self._by_minute.items():
                bucket = buckets.get(minute)
                if (
                    bucket is not None
                    and bucket.failure
                    and route_id in routes
                    and queries.is_failing(bucket.failure, bucket.success, settings)
                ):
                    tail.setdefault(route_id, []).append(
                        (route_id, minute, bucket.failure, bucket.classified)
                    )
            minute += timedelta(minutes=1)
        middle = self._middle_failing(first_hour, this_hour, routes)

        def traffic(route_id: int, after: datetime, before: datetime) -> int:
            return self._traffic(conn, route_id, after, before, this_hour)

        failing: list[FailingMinute] = []
        for row in visible:
            for part in (head, middle, tail):
                failing.extend(part.get(row.id, ()))
        found = queries.detect_incidents(failing, routes, this_minute, settings, traffic)
        newest = heapq.nlargest(INCIDENTS_KEPT, found, key=lambda i: (i.start, i.route_id))
        return queries.finish_incidents(newest, INCIDENTS_KEPT)

    def _traffic(
        self,
        conn: sa.Connection,
        route_id: int,
        after: datetime,
        before: datetime,
        this_hour: datetime,
    ) -> int:
        """Minutes with classified traffic strictly between ``after`` and ``before``.

        Up to the current hour from the database (each gap asked once and kept
        while the finished hours stand still), within it from the minute buckets.
        """
        cap = self.settings.incident_close_minutes
        if this_hour != self._gaps_hour:
            # Gaps are cut at the current hour: last hour's answers are for other keys.
            self._gaps, self._gaps_hour = {}, this_hour
        found = 0
        if after < this_hour:
            cut = min(before, this_hour)
            key = (route_id, after, cut)
            if key not in self._gaps:
                self._gaps[key] = queries.traffic_minutes(conn, route_id, after, cut, cap)
            found = self._gaps[key]
        buckets = self._by_minute.get(route_id, {})
        minute = max(after + timedelta(minutes=1), this_hour)
        while minute < before and found < cap:
            bucket = buckets.get(minute)
            if bucket is not None and bucket.classified:
                found += 1
            minute += timedelta(minutes=1)
        return found

    def _middle_failing(
        self, first_hour: datetime, this_hour: datetime, routes: dict[int, sa.Row[Any]]
    ) -> dict[int, list[FailingMinute]]:
        """Per route, the failing minutes of the finished hours after ``first_hour``."""
        key = (first_hour, this_hour)
        if key != self._runs_key:
            failing: dict[int, list[FailingMinute]] = {}
            for hour in sorted(self._failing):
                if first_hour < hour < this_hour:
                    for item in self._failing[hour]:
                        if item[0] in routes:
                            failing.setdefault(item[0], []).append(item)
            self._runs = failing
            self._runs_key = key
        return self._runs

    # -- keeping buckets ----------------------------------------------------------------

    def _renew(
        self,
        kept: dict[int, dict[datetime, Bucket]],
        kept_prints: dict[datetime, Fingerprint],
        fresh: dict[int, dict[datetime, Bucket]],
        stale: list[datetime],
        prints: dict[datetime, Fingerprint],
    ) -> None:
        """Keep the ``fresh`` buckets of the ``stale`` starts, with their fingerprints."""
        self._store(kept, fresh, stale)
        for start in stale:
            kept_prints[start] = prints.get(start, EMPTY)
        self._generation += 1

    def _store(
        self,
        kept: dict[int, dict[datetime, Bucket]],
        fresh: dict[int, dict[datetime, Bucket]],
        starts: Iterable[datetime],
        only_missing: bool = False,
    ) -> None:
        """Replace the buckets of ``starts`` with ``fresh`` ones, empty where none.

        Every route gets a bucket for every start, so that an empty one, too,
        stays the same object until its data changes.
        """
        ids = {row.id for row in self._routes} | set(fresh)
        for start in starts:
            for route_id in ids:
                buckets = kept.setdefault(route_id, {})
                old = buckets.get(start)
                if only_missing and old is not None:
                    continue
                new = fresh.get(route_id, {}).get(start) or Bucket(start=start)
                # An equal bucket stays the same object: its route and rendering stand.
                if new != old:
                    buckets[start] = new
                    self._dirty.add(route_id)

    @staticmethod
    def _evict(
        kept: dict[int, dict[datetime, Bucket]],
        prints: dict[datetime, Fingerprint],
        oldest: datetime,
        newest: datetime,
    ) -> None:
        """Forget buckets outside ``oldest``-``newest``: the windows moved on."""
        gone = [start for start in prints if start < oldest or start > newest]
        for start in gone:
            del prints[start]
            for buckets in kept.values():
                buckets.pop(start, None)
